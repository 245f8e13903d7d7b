/* SPDX-License-Identifier: MIT */
/*
 * swarm_metrics: a fixed-size registry of borrowed objects, rendered as Prometheus text or JSON
 * into the caller's buffer.
 *
 * Each statistic is one row of a per-kind table (name, help, type, value format, offset into the
 * snapshot), so both formats and the size bound walk the same rows and cannot disagree. The
 * Prometheus format must group every series of a family together, so a render first takes one
 * snapshot of every object into scratch space allocated at create (one get_stats call per object,
 * which also keeps an object's values consistent across families), then walks families x objects.
 *
 * Lock order: the registry mutex, then whatever lock an object's get_stats takes (pool state
 * mutex, reconcile lock); those are leaves that never call back into us, and no user callback
 * runs here.
 *
 * Numbers are formatted by hand, never with printf: printf's %g follows LC_NUMERIC (a host in a
 * German locale would emit "0,5", which both formats reject), and durations are exact decimals of
 * integer nanoseconds.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "internal.h"
#include "opts_v1.h"
#include "platform.h"
#include "swarm/metrics.h"

#define DEFAULT_MAX_OBJECTS 16
#define NAME_CAP            (SWARM_METRICS_NAME_MAX + 1)
#define HIST_N              16 /* histogram bounds, +Inf excluded */
#define N_REASONS           SWARM_RECONCILE_REASONS

/* Kinds of registered objects. The three engine kinds share the Prometheus prefix "engine", the
 * label "engine" and the JSON key "engines"; their row names carry the decorator
 * ("breaker_state"), so their families never collide. */
enum kind {
    K_CHAN = 0,
    K_POOL = 1,
    K_LOOP = 2,
    K_RETRY = 3,
    K_BREAKER = 4,
    K_BATCHER = 5,
    N_KINDS = 6
};

/* How a row's value is stored in the snapshot and printed. */
enum vfmt {
    V_U32,     /* uint32_t */
    V_I32,     /* int32_t */
    V_U64,     /* uint64_t */
    V_I64,     /* int64_t */
    V_SEC,     /* int64_t ns, printed as seconds */
    V_QSEC,    /* three int64_t ns (p50, p90, p99) in a row: three gauges in seconds, the
                  percentile in the name ("queue_wait_seconds" -> "queue_wait_p50_seconds"),
                  kept for compatibility next to the histograms */
    V_CODE,    /* int64_t rule code of the last decision; JSON adds its name */
    V_HIST,    /* struct hist_snap: _bucket{le}, _sum (seconds) and _count */
    V_REASONS, /* uint64_t[N_REASONS] counters, one series per non-zero reason (label) */
    V_MILLI    /* int64_t thousandths, printed as an exact decimal */
};

enum mtype { T_GAUGE, T_COUNTER, T_HISTOGRAM };

enum rflag {
    F_POLICY = 1 /* only for loops whose bounds were set (swarm_metrics_set_loop_bounds) */
};

typedef struct row {
    const char *name; /* Prometheus name after "swarm_<kind>_"; JSON key without "_total" */
    const char *help;
    uint8_t type;  /* enum mtype */
    uint8_t fmt;   /* enum vfmt */
    uint8_t flags; /* enum rflag */
    uint16_t off;  /* offset of the value in struct snap */
} row;

typedef struct hist_snap {
    uint64_t cum[HIST_N]; /* cumulative counts at hist_le_ns[] */
    uint64_t count;
    int64_t sum_ns;
} hist_snap;

typedef struct snap {
    union {
        swarm_chan_stats ch;
        swarm_pool_stats pool;
        swarm_reconcile_stats loop;
        swarm_retry_stats retry;
        swarm_breaker_stats breaker;
        swarm_batcher_stats batcher;
    } u;
    uint64_t backlog;     /* pool: queued + in_flight */
    hist_snap wait;       /* pool */
    hist_snap service;    /* pool */
    int64_t reason;       /* loop: rule code of the last decision, 0 before the first */
    uint64_t rejected;    /* chan: host-reported refused sends */
    int64_t min_replicas; /* loop, F_POLICY */
    int64_t max_replicas; /* loop, F_POLICY */
    int64_t target_milli; /* loop, F_POLICY */
    int64_t budget_milli; /* retry: tokens x1000 */
    int has_policy;       /* loop: bounds were set */
    int ok;               /* every read succeeded; objects that failed are left out */
} snap;

#define OFF(m) ((uint16_t)offsetof(snap, m))

/* Histogram upper bounds: 1 ms .. 5 min, roughly x2.5 apart, fixed so that series of every pod
 * share their le values and aggregate (sum by (le) ...). */
static const int64_t hist_le_ns[HIST_N] = {
    1000000,     2500000,     5000000,     10000000,     25000000,   50000000,
    100000000,   250000000,   500000000,   1000000000,   2500000000, 5000000000,
    10000000000, 30000000000, 60000000000, 300000000000,
};

static const row chan_rows[] = {
    {"length", "Elements queued now.", T_GAUGE, V_U64, 0, OFF(u.ch.length)},
    {"capacity", "Capacity in elements.", T_GAUGE, V_U64, 0, OFF(u.ch.capacity)},
    {"high_watermark", "Largest length seen.", T_GAUGE, V_U64, 0, OFF(u.ch.high_watermark)},
    {"blocked_senders", "Threads parked in a send now.", T_GAUGE, V_U32, 0,
     OFF(u.ch.blocked_senders)},
    {"blocked_receivers", "Threads parked in a receive now.", T_GAUGE, V_U32, 0,
     OFF(u.ch.blocked_receivers)},
    {"closed", "1 once the channel is closed.", T_GAUGE, V_U32, 0, OFF(u.ch.closed)},
    {"sent_total", "Elements accepted by sends.", T_COUNTER, V_U64, 0, OFF(u.ch.sent)},
    {"received_total", "Elements delivered to receivers.", T_COUNTER, V_U64, 0, OFF(u.ch.received)},
    {"dropped_total", "Elements dropped by the full mode.", T_COUNTER, V_U64, 0, OFF(u.ch.dropped)},
    {"rejected_total",
     "Sends refused or failed (full, timed out, closed), as reported by the host.", T_COUNTER,
     V_U64, 0, OFF(rejected)},
    {"send_blocked_seconds_total", "Time senders spent parked (backpressure).", T_COUNTER, V_SEC, 0,
     OFF(u.ch.send_blocked_ns)},
    {"recv_blocked_seconds_total", "Time receivers spent parked (idle).", T_COUNTER, V_SEC, 0,
     OFF(u.ch.recv_blocked_ns)},
};

static const row pool_rows[] = {
    {"workers_target", "Workers asked for by the last resize.", T_GAUGE, V_U32, 0,
     OFF(u.pool.target)},
    {"workers_live", "Worker threads running.", T_GAUGE, V_U32, 0, OFF(u.pool.live)},
    {"workers_starting", "Workers in warm-up (pending capacity).", T_GAUGE, V_U32, 0,
     OFF(u.pool.starting)},
    {"workers_ready", "Workers past warm-up.", T_GAUGE, V_U32, 0, OFF(u.pool.ready)},
    {"workers_busy", "Workers running tasks.", T_GAUGE, V_U32, 0, OFF(u.pool.busy)},
    {"workers_idle", "Ready workers waiting for work.", T_GAUGE, V_U32, 0, OFF(u.pool.idle)},
    {"workers_retiring", "Workers asked to leave.", T_GAUGE, V_U32, 0, OFF(u.pool.retiring)},
    {"stopped", "1 once stop began.", T_GAUGE, V_U32, 0, OFF(u.pool.stopped)},
    {"queued", "Tasks waiting in the input channel.", T_GAUGE, V_U64, 0, OFF(u.pool.queued)},
    {"in_flight", "Tasks taken and not yet delivered.", T_GAUGE, V_U64, 0, OFF(u.pool.in_flight)},
    {"backlog", "Queued plus in-flight tasks: the signal to scale on.", T_GAUGE, V_U64, 0,
     OFF(backlog)},
    {"tasks_taken_total", "Tasks taken from the channel.", T_COUNTER, V_U64, 0, OFF(u.pool.taken)},
    {"tasks_completed_total", "Results delivered with status 0.", T_COUNTER, V_U64, 0,
     OFF(u.pool.completed)},
    {"tasks_failed_total", "Results delivered with an error.", T_COUNTER, V_U64, 0,
     OFF(u.pool.failed)},
    {"results_undelivered_total", "Results the closed result channel refused.", T_COUNTER, V_U64, 0,
     OFF(u.pool.undelivered)},
    {"batches_total", "Engine calls.", T_COUNTER, V_U64, 0, OFF(u.pool.batches)},
    {"workers_started_total", "Workers started.", T_COUNTER, V_U64, 0, OFF(u.pool.started)},
    {"workers_retired_total", "Workers that left.", T_COUNTER, V_U64, 0, OFF(u.pool.retired)},
    {"worker_start_failures_total", "Warm-ups that failed.", T_COUNTER, V_U64, 0,
     OFF(u.pool.start_failures)},
    {"queue_wait_seconds", "Time from enqueue to the start of the engine call.", T_HISTOGRAM,
     V_HIST, 0, OFF(wait)},
    {"service_seconds", "Engine call time.", T_HISTOGRAM, V_HIST, 0, OFF(service)},
    {"queue_wait_seconds", "Queue wait percentile since create (0 before the first sample).",
     T_GAUGE, V_QSEC, 0, OFF(u.pool.wait_p50_ns)},
    {"queue_wait_max_seconds", "Largest queue wait seen.", T_GAUGE, V_SEC, 0,
     OFF(u.pool.wait_max_ns)},
    {"service_seconds", "Engine call time percentile since create (0 before the first sample).",
     T_GAUGE, V_QSEC, 0, OFF(u.pool.service_p50_ns)},
    {"service_max_seconds", "Largest engine call time seen.", T_GAUGE, V_SEC, 0,
     OFF(u.pool.service_max_ns)},
};

static const row loop_rows[] = {
    {"desired_replicas", "Replicas of the last decision (-1 before the first).", T_GAUGE, V_I32, 0,
     OFF(u.loop.last_desired)},
    {"actuated_replicas", "Last count actuate accepted (-1 before the first).", T_GAUGE, V_I32, 0,
     OFF(u.loop.last_actuated)},
    {"min_replicas", "Lower bound of the policy.", T_GAUGE, V_I64, F_POLICY, OFF(min_replicas)},
    {"max_replicas", "Upper bound of the policy.", T_GAUGE, V_I64, F_POLICY, OFF(max_replicas)},
    {"target_per_replica", "Per-replica target of the scaling metric.", T_GAUGE, V_MILLI, F_POLICY,
     OFF(target_milli)},
    {"last_reason",
     "Rule code that set the last decision (0: none yet; names in "
     "swarm_reconcile_decisions_by_reason_total).",
     T_GAUGE, V_CODE, 0, OFF(reason)},
    {"running", "1 while the loop's thread runs.", T_GAUGE, V_U32, 0, OFF(u.loop.running)},
    {"consecutive_errors", "Failed steps in a row.", T_GAUGE, V_U32, 0,
     OFF(u.loop.consecutive_errors)},
    {"last_error", "Code of the last failed step (0: none).", T_GAUGE, V_I32, 0,
     OFF(u.loop.last_error)},
    {"ticks_total", "Steps run.", T_COUNTER, V_U64, 0, OFF(u.loop.ticks)},
    {"errors_total", "Failed steps.", T_COUNTER, V_U64, 0, OFF(u.loop.errors)},
    {"observe_errors_total", "Observe calls that failed.", T_COUNTER, V_U64, 0,
     OFF(u.loop.observe_errors)},
    {"actuate_errors_total", "Actuate calls that failed.", T_COUNTER, V_U64, 0,
     OFF(u.loop.actuate_errors)},
    {"decide_errors_total", "Observations the policy rejected.", T_COUNTER, V_U64, 0,
     OFF(u.loop.decide_errors)},
    {"decisions_total", "Policy decisions made.", T_COUNTER, V_U64, 0, OFF(u.loop.decisions)},
    {"decisions_by_reason_total", "Policy decisions by the rule that set their count.", T_COUNTER,
     V_REASONS, 0, OFF(u.loop.decisions_by_reason)},
    {"actuations_total", "Actuate calls that succeeded.", T_COUNTER, V_U64, 0,
     OFF(u.loop.actuations)},
    {"kicks_total", "Kicks received.", T_COUNTER, V_U64, 0, OFF(u.loop.kicks)},
    {"backoff_seconds", "Delay chosen by the last failed step (0 after a success).", T_GAUGE, V_SEC,
     0, OFF(u.loop.backoff_ns)},
    {"last_lag_seconds", "Lateness of the last scheduled tick.", T_GAUGE, V_SEC, 0,
     OFF(u.loop.last_lag_ns)},
    {"max_lag_seconds", "Largest tick lateness seen.", T_GAUGE, V_SEC, 0, OFF(u.loop.max_lag_ns)},
    {"last_step_seconds", "Duration of the last threaded step.", T_GAUGE, V_SEC, 0,
     OFF(u.loop.last_step_ns)},
};

static const row retry_rows[] = {
    {"retry_budget_tokens", "Tokens in the retry budget now.", T_GAUGE, V_MILLI, 0,
     OFF(budget_milli)},
    {"retry_calls_total", "Calls served.", T_COUNTER, V_U64, 0, OFF(u.retry.calls)},
    {"retry_attempts_total", "Inner calls made.", T_COUNTER, V_U64, 0, OFF(u.retry.attempts)},
    {"retry_retries_total", "Attempts after the first.", T_COUNTER, V_U64, 0, OFF(u.retry.retries)},
    {"retry_budget_denied_total", "Retries refused by the retry budget.", T_COUNTER, V_U64, 0,
     OFF(u.retry.budget_denied)},
    {"retry_after_stream_denied_total", "Retries refused because output was already streamed.",
     T_COUNTER, V_U64, 0, OFF(u.retry.after_stream)},
    {"retry_deadline_denied_total", "Retries refused because the backoff would pass the deadline.",
     T_COUNTER, V_U64, 0, OFF(u.retry.deadline_denied)},
    {"retry_backoff_seconds_total", "Time slept between attempts.", T_COUNTER, V_SEC, 0,
     OFF(u.retry.slept_ns)},
};

static const row breaker_rows[] = {
    {"breaker_state", "Circuit state: 0 closed, 1 open, 2 half-open.", T_GAUGE, V_I32, 0,
     OFF(u.breaker.state)},
    {"breaker_window_calls", "Outcomes in the window now.", T_GAUGE, V_U32, 0,
     OFF(u.breaker.window_calls)},
    {"breaker_window_failures", "Failures (slow calls included) in the window now.", T_GAUGE, V_U32,
     0, OFF(u.breaker.window_failures)},
    {"breaker_calls_total", "Calls admitted.", T_COUNTER, V_U64, 0, OFF(u.breaker.calls)},
    {"breaker_rejected_total", "Calls refused while open.", T_COUNTER, V_U64, 0,
     OFF(u.breaker.rejected)},
    {"breaker_failures_total", "Failures recorded.", T_COUNTER, V_U64, 0, OFF(u.breaker.failures)},
    {"breaker_slow_calls_total", "Successes counted as failures for being slow.", T_COUNTER, V_U64,
     0, OFF(u.breaker.slow_calls)},
    {"breaker_transitions_total", "State changes.", T_COUNTER, V_U64, 0,
     OFF(u.breaker.transitions)},
    {"breaker_opened_total", "Transitions into open.", T_COUNTER, V_U64, 0, OFF(u.breaker.opened)},
};

static const row batcher_rows[] = {
    {"batcher_max_batch_seen", "Largest batch dispatched.", T_GAUGE, V_U32, 0,
     OFF(u.batcher.max_seen)},
    {"batcher_queued", "Requests waiting for a batch now.", T_GAUGE, V_U64, 0,
     OFF(u.batcher.queued)},
    {"batcher_requests_total", "Requests dispatched.", T_COUNTER, V_U64, 0,
     OFF(u.batcher.requests)},
    {"batcher_batches_total", "Batches dispatched (inner engine calls).", T_COUNTER, V_U64, 0,
     OFF(u.batcher.batches)},
    {"batcher_skipped_total", "Requests completed without the engine (canceled, expired).",
     T_COUNTER, V_U64, 0, OFF(u.batcher.skipped)},
};

typedef struct kind_info {
    const char *prefix;   /* "swarm_<prefix>_" */
    const char *label;    /* the Prometheus label carrying the object's name */
    const char *json_key; /* the top-level JSON key */
    const row *rows;
    size_t n_rows;
} kind_info;

#define ROWS(r) r, sizeof r / sizeof r[0]
static const kind_info kinds[N_KINDS] = {
    {"channel", "channel", "channels", ROWS(chan_rows)},
    {"pool", "pool", "pools", ROWS(pool_rows)},
    {"reconcile", "loop", "loops", ROWS(loop_rows)},
    {"engine", "engine", "engines", ROWS(retry_rows)},
    {"engine", "engine", "engines", ROWS(breaker_rows)},
    {"engine", "engine", "engines", ROWS(batcher_rows)},
};

/* JSON groups: the top-level keys, in order, and the kinds each one holds. */
static const struct {
    const char *key;
    uint32_t first, last;
} json_groups[] = {
    {"channels", K_CHAN, K_CHAN},
    {"pools", K_POOL, K_POOL},
    {"loops", K_LOOP, K_LOOP},
    {"engines", K_RETRY, K_BATCHER},
};

static const char *const quantile_keys[3] = {"p50", "p90", "p99"};

typedef struct entry {
    uint32_t kind;
    char name[NAME_CAP];
    const void *obj;           /* the object: borrowed */
    _Atomic uint64_t rejected; /* chan: bumped lock-free by swarm_metrics_chan_rejected() */
    int has_policy;            /* loop: under the registry mutex */
    int32_t min_replicas, max_replicas;
    int64_t target_milli;
} entry;

struct swarm_metrics {
    swarm__mutex lock;  /* guards adds, the policy fields of entries and snaps; held for a
                              whole render */
    _Atomic uint32_t n; /* registered. Stored with release after the entry is filled; pairs
                           with the acquire loads of the lock-free readers (_count(),
                           _chan_rejected()), which then see the entry's kind and object */
    uint32_t cap;
    entry *entries;
    snap *snaps; /* render scratch: one per slot */
    swarm_allocator alloc;
    size_t alloc_size;
};

/* ---- output buffer ------------------------------------------------------------------------- */

/* Counts every byte it is given and stores those that fit, so one pass both renders and sizes. */
typedef struct out {
    char *buf;
    size_t cap;
    size_t len;
} out;

static void put(out *o, const char *s, size_t n)
{
    if (o->len < o->cap) {
        size_t room = o->cap - o->len;
        memcpy(o->buf + o->len, s, n < room ? n : room);
    }
    o->len += n;
}

static void puts_(out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void putc_(out *o, char c)
{
    put(o, &c, 1);
}

static void put_u64(out *o, uint64_t v)
{
    char tmp[20];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    put(o, tmp + i, sizeof tmp - i);
}

static void put_i64(out *o, int64_t v)
{
    if (v < 0) {
        putc_(o, '-');
        put_u64(o, (uint64_t)0 - (uint64_t)v); /* exact for INT64_MIN too */
    } else {
        put_u64(o, (uint64_t)v);
    }
}

/* Nanoseconds as an exact decimal number of seconds: 1500000 -> "0.0015", 2000000000 -> "2". */
static void put_seconds(out *o, int64_t ns)
{
    uint64_t a = (uint64_t)ns;
    if (ns < 0) {
        putc_(o, '-');
        a = (uint64_t)0 - a;
    }
    put_u64(o, a / 1000000000u);
    uint64_t frac = a % 1000000000u;
    if (frac == 0)
        return;
    char tmp[10];
    tmp[0] = '.';
    for (int i = 9; i >= 1; i--) {
        tmp[i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    size_t n = 10;
    while (tmp[n - 1] == '0')
        n--;
    put(o, tmp, n);
}

/* A Prometheus label value: backslash, double quote and newline are escaped (format 0.0.4). */
static void put_label_value(out *o, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\')
            puts_(o, "\\\\");
        else if (*s == '"')
            puts_(o, "\\\"");
        else if (*s == '\n')
            puts_(o, "\\n");
        else
            putc_(o, *s);
    }
}

/* A JSON string body: quote, backslash and control characters are escaped. */
static void put_json_string(out *o, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    putc_(o, '"');
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            putc_(o, '\\');
            putc_(o, (char)c);
        } else if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            put(o, esc, sizeof esc);
        } else {
            putc_(o, (char)c);
        }
    }
    putc_(o, '"');
}

/* ---- values -------------------------------------------------------------------------------- */

static const char *reason_name(int64_t code)
{
    return code == 0 ? "none" : swarm_policy_rule_name((uint32_t)code);
}

/* The label of decisions_by_reason[i]: the rule's name, "none" for 0, and "rule_<i>" for codes
 * this build cannot name (they must stay distinct series). */
static void put_reason_label(out *o, uint32_t i)
{
    const char *name = reason_name(i);
    if (i != 0 && strcmp(name, "unknown") == 0) {
        puts_(o, "rule_");
        put_u64(o, i);
    } else {
        puts_(o, name); /* rule names are [a-z_]: no escaping in either format */
    }
}

/* The reason name with the longest escaped form, for the size bound. Rule codes are small
 * consecutive integers; 64 covers them with room to grow. */
static int64_t widest_reason(void)
{
    int64_t best = 0;
    size_t best_len = 0;
    for (int64_t code = 0; code < 64; code++) {
        /* The code is printed next to the name in JSON, so their widths add up. */
        out j = {NULL, 0, 0};
        put_json_string(&j, reason_name(code));
        out c = {NULL, 0, 0};
        put_i64(&c, code);
        size_t len = j.len + c.len;
        if (len > best_len) {
            best_len = len;
            best = code;
        }
    }
    return best;
}

/* Thousandths as an exact decimal: 1500 -> "1.5", -250 -> "-0.25". */
static void put_milli(out *o, int64_t milli)
{
    uint64_t a = (uint64_t)milli;
    if (milli < 0) {
        putc_(o, '-');
        a = (uint64_t)0 - a;
    }
    put_u64(o, a / 1000u);
    uint64_t frac = a % 1000u;
    if (frac == 0)
        return;
    char tmp[4] = {'.', (char)('0' + frac / 100), (char)('0' + frac / 10 % 10),
                   (char)('0' + frac % 10)};
    size_t n = 4;
    while (tmp[n - 1] == '0')
        n--;
    put(o, tmp, n);
}

static const void *field(const snap *s, const row *r)
{
    return (const unsigned char *)s + r->off;
}

/* Prints the value of @r at index @q (0 for single-valued rows). */
static void put_value(out *o, const snap *s, const row *r, int q)
{
    const unsigned char *base = field(s, r);
    switch (r->fmt) {
    case V_U32: {
        uint32_t v;
        memcpy(&v, base, sizeof v);
        put_u64(o, v);
        break;
    }
    case V_I32: {
        int32_t v;
        memcpy(&v, base, sizeof v);
        put_i64(o, v);
        break;
    }
    case V_U64: {
        uint64_t v;
        memcpy(&v, base, sizeof v);
        put_u64(o, v);
        break;
    }
    case V_I64:
    case V_CODE: {
        int64_t v;
        memcpy(&v, base, sizeof v);
        put_i64(o, v);
        break;
    }
    case V_MILLI: {
        int64_t v;
        memcpy(&v, base, sizeof v);
        put_milli(o, v);
        break;
    }
    case V_SEC:
    case V_QSEC: {
        int64_t v;
        memcpy(&v, base + (size_t)q * sizeof(int64_t), sizeof v);
        put_seconds(o, v);
        break;
    }
    default:
        break;
    }
}

/* Whether object @s has a series of row @r. */
static bool row_present(const snap *s, const row *r)
{
    if (!s->ok)
        return false;
    if ((r->flags & F_POLICY) && !s->has_policy)
        return false;
    if (r->fmt == V_REASONS) {
        const uint64_t *c = field(s, r);
        for (uint32_t i = 0; i < N_REASONS; i++)
            if (c[i] != 0)
                return true;
        return false;
    }
    return true;
}

/* Fills @s with the widest value of every field, for swarm_metrics_render_bound(). */
static void fill_widest(snap *s, uint32_t kind, int64_t reason)
{
    const kind_info *k = &kinds[kind];
    memset(s, 0, sizeof *s);
    s->ok = 1;
    s->has_policy = 1;
    for (size_t i = 0; i < k->n_rows; i++) {
        unsigned char *base = (unsigned char *)s + k->rows[i].off;
        switch (k->rows[i].fmt) {
        case V_U32: {
            uint32_t v = UINT32_MAX;
            memcpy(base, &v, sizeof v);
            break;
        }
        case V_I32: {
            int32_t v = INT32_MIN;
            memcpy(base, &v, sizeof v);
            break;
        }
        case V_U64: {
            uint64_t v = UINT64_MAX;
            memcpy(base, &v, sizeof v);
            break;
        }
        case V_I64:
        case V_MILLI: {
            int64_t v = INT64_MIN;
            memcpy(base, &v, sizeof v);
            break;
        }
        case V_CODE:
            memcpy(base, &reason, sizeof reason);
            break;
        case V_SEC:
        case V_QSEC: {
            /* INT64_MIN ns is the longest decimal: "-9223372036.854775808". */
            int64_t v = INT64_MIN;
            for (int q = 0; q < (k->rows[i].fmt == V_QSEC ? 3 : 1); q++)
                memcpy(base + (size_t)q * sizeof v, &v, sizeof v);
            break;
        }
        case V_HIST: {
            hist_snap h;
            for (int b = 0; b < HIST_N; b++)
                h.cum[b] = UINT64_MAX;
            h.count = UINT64_MAX;
            h.sum_ns = INT64_MIN;
            memcpy(base, &h, sizeof h);
            break;
        }
        case V_REASONS: {
            uint64_t v = UINT64_MAX;
            for (uint32_t r = 0; r < N_REASONS; r++)
                memcpy(base + r * sizeof v, &v, sizeof v);
            break;
        }
        default:
            break;
        }
    }
}

/* The rule that set the decision: the last step that changed the count, else the last step. */
static int64_t decision_reason(const swarm_policy_decision *d)
{
    uint32_t n = d->n_steps < SWARM_POLICY_MAX_STEPS ? d->n_steps : SWARM_POLICY_MAX_STEPS;
    int64_t reason = n > 0 ? (int64_t)d->steps[n - 1].rule : 0;
    for (uint32_t i = n; i-- > 0;) {
        if (d->steps[i].before != d->steps[i].after) {
            reason = (int64_t)d->steps[i].rule;
            break;
        }
    }
    return reason;
}

static int read_hist(swarm_pool *p, uint32_t which, hist_snap *h)
{
    return swarm_pool_get_histogram(p, which, hist_le_ns, HIST_N, h->cum, &h->count, &h->sum_ns);
}

/* Reads one object. Any failed read (e.g. SWARM_ESTATE from an object that refuses to be read,
 * such as one inherited across fork) leaves the whole object out of this render. Called with
 * the registry mutex held. */
static void take_snapshot(entry *e, snap *s)
{
    memset(s, 0, sizeof *s);
    int rc = SWARM_EINVAL;
    switch (e->kind) {
    case K_CHAN:
        s->u.ch.size = sizeof s->u.ch;
        rc = swarm_chan_get_stats((const swarm_chan *)e->obj, &s->u.ch);
        s->rejected = atomic_load_explicit(&e->rejected, memory_order_relaxed);
        break;
    case K_POOL: {
        swarm_pool *p = (swarm_pool *)(uintptr_t)e->obj;
        s->u.pool.size = sizeof s->u.pool;
        rc = swarm_pool_get_stats(p, &s->u.pool);
        if (rc == 0)
            rc = read_hist(p, SWARM_POOL_HIST_WAIT, &s->wait);
        if (rc == 0)
            rc = read_hist(p, SWARM_POOL_HIST_SERVICE, &s->service);
        s->backlog = s->u.pool.queued + s->u.pool.in_flight;
        break;
    }
    case K_LOOP: {
        swarm_reconcile *r = (swarm_reconcile *)(uintptr_t)e->obj;
        s->u.loop.size = sizeof s->u.loop;
        rc = swarm_reconcile_get_stats(r, &s->u.loop);
        /* A library whose stats predate decisions_by_reason copies fewer bytes; the rest stays
         * zero (the memset above). */
        swarm_policy_decision d;
        memset(&d, 0, sizeof d);
        d.size = sizeof d;
        if (rc == 0 && swarm_reconcile_last_decision(r, &d) == 0)
            s->reason = decision_reason(&d);
        s->has_policy = e->has_policy;
        s->min_replicas = e->min_replicas;
        s->max_replicas = e->max_replicas;
        s->target_milli = e->target_milli;
        break;
    }
    case K_RETRY:
        s->u.retry.size = sizeof s->u.retry;
        rc = swarm_engine_retry_get_stats((swarm_engine *)(uintptr_t)e->obj, &s->u.retry);
        s->budget_milli = s->u.retry.budget_milli;
        break;
    case K_BREAKER:
        s->u.breaker.size = sizeof s->u.breaker;
        rc = swarm_engine_breaker_get_stats((swarm_engine *)(uintptr_t)e->obj, &s->u.breaker);
        break;
    case K_BATCHER:
        s->u.batcher.size = sizeof s->u.batcher;
        rc = swarm_engine_batcher_get_stats((swarm_engine *)(uintptr_t)e->obj, &s->u.batcher);
        break;
    default:
        break;
    }
    s->ok = rc == 0;
}

/* ---- formats ------------------------------------------------------------------------------- */

/* A row's name for value @q: "queue_wait_seconds" becomes "queue_wait_p50_seconds" for V_QSEC;
 * with @json, a trailing "_total" is left out. */
static void put_row_name(out *o, const row *r, int q, bool json)
{
    size_t len = strlen(r->name);
    if (json && len > 6 && memcmp(r->name + len - 6, "_total", 6) == 0)
        len -= 6;
    if (r->fmt == V_QSEC) {
        size_t stem = len - (sizeof "_seconds" - 1);
        put(o, r->name, stem);
        putc_(o, '_');
        puts_(o, quantile_keys[q]);
        put(o, r->name + stem, len - stem);
    } else {
        put(o, r->name, len);
    }
}

static void put_family_name(out *o, const kind_info *k, const row *r, int q)
{
    puts_(o, "swarm_");
    puts_(o, k->prefix);
    putc_(o, '_');
    put_row_name(o, r, q, false);
}

/* `<family><suffix>{<label>="<name>"` without the closing brace. */
static void put_series_start(out *o, const kind_info *k, const row *r, int q, const char *suffix,
                             const entry *e)
{
    put_family_name(o, k, r, q);
    puts_(o, suffix);
    putc_(o, '{');
    puts_(o, k->label);
    puts_(o, "=\"");
    put_label_value(o, e->name);
    putc_(o, '"');
}

static void put_prom_series(out *o, const kind_info *k, const row *r, int q, const entry *e,
                            const snap *s)
{
    if (r->fmt == V_HIST) {
        hist_snap h;
        memcpy(&h, field(s, r), sizeof h);
        for (int b = 0; b <= HIST_N; b++) {
            put_series_start(o, k, r, q, "_bucket", e);
            puts_(o, ",le=\"");
            if (b < HIST_N)
                put_seconds(o, hist_le_ns[b]);
            else
                puts_(o, "+Inf");
            puts_(o, "\"} ");
            put_u64(o, b < HIST_N ? h.cum[b] : h.count);
            putc_(o, '\n');
        }
        put_series_start(o, k, r, q, "_sum", e);
        puts_(o, "} ");
        put_seconds(o, h.sum_ns);
        putc_(o, '\n');
        put_series_start(o, k, r, q, "_count", e);
        puts_(o, "} ");
        put_u64(o, h.count);
        putc_(o, '\n');
        return;
    }
    if (r->fmt == V_REASONS) {
        const unsigned char *base = field(s, r);
        for (uint32_t i = 0; i < N_REASONS; i++) {
            uint64_t v;
            memcpy(&v, base + i * sizeof v, sizeof v);
            if (v == 0)
                continue;
            put_series_start(o, k, r, q, "", e);
            puts_(o, ",reason=\"");
            put_reason_label(o, i);
            puts_(o, "\"} ");
            put_u64(o, v);
            putc_(o, '\n');
        }
        return;
    }
    put_series_start(o, k, r, q, "", e);
    puts_(o, "} ");
    put_value(o, s, r, q);
    putc_(o, '\n');
}

static void render_registry_prometheus(out *o, uint32_t skipped)
{
    puts_(o, "# HELP swarm_build_info libswarm version of this process (always 1).\n"
             "# TYPE swarm_build_info gauge\n"
             "swarm_build_info{version=\"");
    put_label_value(o, swarm_version_string());
    puts_(o, "\"} 1\n"
             "# HELP swarm_metrics_objects_skipped Registered objects left out of this render "
             "because their statistics could not be read.\n"
             "# TYPE swarm_metrics_objects_skipped gauge\n"
             "swarm_metrics_objects_skipped ");
    put_u64(o, skipped);
    putc_(o, '\n');
}

static void render_prometheus(const swarm_metrics *m, uint32_t n, uint32_t skipped, out *o)
{
    render_registry_prometheus(o, skipped);
    for (uint32_t kind = 0; kind < N_KINDS; kind++) {
        const kind_info *k = &kinds[kind];
        for (size_t ri = 0; ri < k->n_rows; ri++) {
            const row *r = &k->rows[ri];
            bool any = false;
            for (uint32_t i = 0; i < n && !any; i++)
                any = m->entries[i].kind == kind && row_present(&m->snaps[i], r);
            if (!any)
                continue; /* a family without series is left out, HELP and TYPE too */
            int nq = r->fmt == V_QSEC ? 3 : 1;
            for (int q = 0; q < nq; q++) {
                /* HELP texts are ours and contain neither backslashes nor newlines. */
                puts_(o, "# HELP ");
                put_family_name(o, k, r, q);
                putc_(o, ' ');
                puts_(o, r->help);
                puts_(o, "\n# TYPE ");
                put_family_name(o, k, r, q);
                puts_(o, r->type == T_COUNTER     ? " counter\n"
                         : r->type == T_HISTOGRAM ? " histogram\n"
                                                  : " gauge\n");
                for (uint32_t i = 0; i < n; i++) {
                    if (m->entries[i].kind == kind && row_present(&m->snaps[i], r))
                        put_prom_series(o, k, r, q, &m->entries[i], &m->snaps[i]);
                }
            }
        }
    }
}

static void put_json_key(out *o, const row *r, int q, const char *suffix)
{
    putc_(o, '"');
    put_row_name(o, r, q, true);
    puts_(o, suffix);
    puts_(o, "\":");
}

/* The rows of one object as JSON members; @first says whether a comma is due. */
static void put_json_rows(out *o, const kind_info *k, const snap *s, bool *first)
{
    for (size_t ri = 0; ri < k->n_rows; ri++) {
        const row *r = &k->rows[ri];
        if ((r->flags & F_POLICY) && !s->has_policy)
            continue;
        int nq = r->fmt == V_QSEC ? 3 : 1;
        for (int q = 0; q < nq; q++) {
            if (!*first)
                putc_(o, ',');
            *first = false;
            if (r->fmt == V_HIST) {
                /* Count and sum only: bucket bounds would need dots in keys, which valueLocation
                 * (GJSON) cannot address; Prometheus has the buckets. */
                hist_snap h;
                memcpy(&h, field(s, r), sizeof h);
                put_json_key(o, r, q, "_count");
                put_u64(o, h.count);
                putc_(o, ',');
                put_json_key(o, r, q, "_sum");
                put_seconds(o, h.sum_ns);
            } else if (r->fmt == V_REASONS) {
                put_json_key(o, r, q, "");
                putc_(o, '{');
                const unsigned char *base = field(s, r);
                bool first_reason = true;
                for (uint32_t i = 0; i < N_REASONS; i++) {
                    uint64_t v;
                    memcpy(&v, base + i * sizeof v, sizeof v);
                    if (v == 0)
                        continue;
                    if (!first_reason)
                        putc_(o, ',');
                    first_reason = false;
                    putc_(o, '"');
                    put_reason_label(o, i);
                    puts_(o, "\":");
                    put_u64(o, v);
                }
                putc_(o, '}');
            } else {
                put_json_key(o, r, q, "");
                put_value(o, s, r, q);
            }
        }
        if (r->fmt == V_CODE) {
            int64_t code;
            memcpy(&code, field(s, r), sizeof code);
            puts_(o, ",\"last_reason_name\":");
            put_json_string(o, reason_name(code));
        }
    }
}

static void render_json(const swarm_metrics *m, uint32_t n, uint32_t skipped, out *o)
{
    putc_(o, '{');
    for (size_t g = 0; g < sizeof json_groups / sizeof json_groups[0]; g++) {
        if (g > 0)
            putc_(o, ',');
        put_json_string(o, json_groups[g].key);
        puts_(o, ":{");
        bool first_obj = true;
        for (uint32_t i = 0; i < n; i++) {
            const entry *e = &m->entries[i];
            if (e->kind < json_groups[g].first || e->kind > json_groups[g].last || !m->snaps[i].ok)
                continue;
            /* One JSON object per name: the engine kinds of one name (a retry and a breaker of
             * the same stack) merge into it, in registration order, at the name's first
             * appearance. */
            bool seen = false;
            for (uint32_t j = 0; j < i && !seen; j++)
                seen = m->entries[j].kind >= json_groups[g].first &&
                       m->entries[j].kind <= json_groups[g].last && m->snaps[j].ok &&
                       strcmp(m->entries[j].name, e->name) == 0;
            if (seen)
                continue;
            if (!first_obj)
                putc_(o, ',');
            first_obj = false;
            put_json_string(o, e->name);
            puts_(o, ":{");
            bool first = true;
            for (uint32_t j = i; j < n; j++) {
                const entry *f = &m->entries[j];
                if (f->kind >= json_groups[g].first && f->kind <= json_groups[g].last &&
                    m->snaps[j].ok && strcmp(f->name, e->name) == 0)
                    put_json_rows(o, &kinds[f->kind], &m->snaps[j], &first);
            }
            putc_(o, '}');
        }
        putc_(o, '}');
    }
    puts_(o, ",\"registry\":{\"version\":");
    put_json_string(o, swarm_version_string());
    puts_(o, ",\"objects_skipped\":");
    put_u64(o, skipped);
    puts_(o, "}}\n");
}

/* ---- public API ---------------------------------------------------------------------------- */

int swarm_metrics_opts_init(swarm_metrics_opts *opts)
{
    if (opts == NULL)
        return SWARM_EINVAL;
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
    opts->max_objects = DEFAULT_MAX_OBJECTS;
    return 0;
}

int swarm_metrics_create(swarm_metrics **out_m, const swarm_metrics_opts *opts)
{
    swarm_metrics_opts o;
    swarm_metrics_opts_init(&o);
    if (out_m == NULL)
        return SWARM_EINVAL;
    if (opts != NULL && SWARM__OPTS_COPY(metrics_opts, &o, opts) != 0)
        return SWARM_EINVAL;
    if (o.max_objects == 0)
        o.max_objects = DEFAULT_MAX_OBJECTS;
    if (o.max_objects > SWARM_METRICS_MAX_OBJECTS)
        return SWARM_EINVAL;
    swarm_allocator a;
    if (swarm__alloc_init(&a, o.alloc) != 0)
        return SWARM_EINVAL;

    size_t head = (sizeof(swarm_metrics) + 15) & ~(size_t)15;
    size_t ents = ((sizeof(entry) * o.max_objects) + 15) & ~(size_t)15;
    size_t total = head + ents + sizeof(snap) * o.max_objects;
    unsigned char *mem = swarm__alloc(&a, total, 16);
    if (mem == NULL)
        return SWARM_ENOMEM;
    swarm_metrics *m = (swarm_metrics *)(void *)mem;
    if (swarm__mutex_init(&m->lock) != 0) {
        swarm__free(&a, mem, total);
        return SWARM_ENOMEM;
    }
    atomic_init(&m->n, 0);
    m->cap = o.max_objects;
    m->entries = (entry *)(void *)(mem + head);
    m->snaps = (snap *)(void *)(mem + head + ents);
    m->alloc = a;
    m->alloc_size = total;
    *out_m = m;
    return 0;
}

void swarm_metrics_destroy(swarm_metrics *m)
{
    if (m == NULL)
        return;
    swarm__mutex_destroy(&m->lock);
    swarm_allocator a = m->alloc;
    swarm__free(&a, m, m->alloc_size);
}

/* [A-Za-z_][A-Za-z0-9_-]{0,62}: needs no escaping as a label value and is one GJSON segment. */
static bool valid_name(const char *name)
{
    if (name == NULL)
        return false;
    size_t i = 0;
    for (; name[i] != '\0'; i++) {
        char c = name[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        bool digit = (c >= '0' && c <= '9') || c == '-';
        if (i >= SWARM_METRICS_NAME_MAX || !(alpha || (i > 0 && digit)))
            return false;
    }
    return i > 0;
}

static int add(swarm_metrics *m, uint32_t kind, const char *name, const void *obj)
{
    if (m == NULL || obj == NULL || !valid_name(name))
        return SWARM_EINVAL;
    int rc = 0;
    swarm__mutex_lock(&m->lock);
    uint32_t n = atomic_load_explicit(&m->n, memory_order_relaxed);
    if (n >= m->cap) {
        rc = SWARM_EINVAL;
    } else {
        for (uint32_t i = 0; i < n; i++)
            if (m->entries[i].kind == kind && strcmp(m->entries[i].name, name) == 0)
                rc = SWARM_EINVAL;
    }
    if (rc == 0) {
        entry *e = &m->entries[n];
        e->kind = kind;
        memset(e->name, 0, sizeof e->name);
        memcpy(e->name, name, strlen(name));
        e->obj = obj;
        atomic_init(&e->rejected, 0);
        e->has_policy = 0;
        e->min_replicas = 0;
        e->max_replicas = 0;
        e->target_milli = 0;
        /* Publish the filled entry; pairs with the acquire loads in find_entry() and _count(). */
        atomic_store_explicit(&m->n, n + 1, memory_order_release);
    }
    swarm__mutex_unlock(&m->lock);
    return rc;
}

/* The published entry of kind @kind for @obj, or NULL. Lock-free: published entries never
 * change their kind or object. */
static entry *find_entry(swarm_metrics *m, uint32_t kind, const void *obj)
{
    uint32_t n = atomic_load_explicit(&m->n, memory_order_acquire);
    for (uint32_t i = 0; i < n; i++)
        if (m->entries[i].kind == kind && m->entries[i].obj == obj)
            return &m->entries[i];
    return NULL;
}

int swarm_metrics_add_chan(swarm_metrics *m, const char *name, const swarm_chan *ch)
{
    return add(m, K_CHAN, name, ch);
}

int swarm_metrics_add_pool(swarm_metrics *m, const char *name, swarm_pool *p)
{
    return add(m, K_POOL, name, p);
}

int swarm_metrics_add_reconcile(swarm_metrics *m, const char *name, swarm_reconcile *r)
{
    return add(m, K_LOOP, name, r);
}

int swarm_metrics_add_engine(swarm_metrics *m, const char *name, swarm_engine *e)
{
    if (e == NULL)
        return SWARM_EINVAL;
    /* The decorator's kind, from the stats call that accepts it. */
    swarm_retry_stats rs = {.size = sizeof rs};
    swarm_breaker_stats bs = {.size = sizeof bs};
    swarm_batcher_stats ts = {.size = sizeof ts};
    uint32_t kind;
    if (swarm_engine_retry_get_stats(e, &rs) == 0)
        kind = K_RETRY;
    else if (swarm_engine_breaker_get_stats(e, &bs) == 0)
        kind = K_BREAKER;
    else if (swarm_engine_batcher_get_stats(e, &ts) == 0)
        kind = K_BATCHER;
    else
        return SWARM_ENOTSUP;
    return add(m, kind, name, e);
}

int swarm_metrics_chan_rejected(swarm_metrics *m, const swarm_chan *ch, uint64_t n)
{
    if (m == NULL || ch == NULL)
        return SWARM_EINVAL;
    entry *e = find_entry(m, K_CHAN, ch);
    if (e == NULL)
        return SWARM_EINVAL;
    /* A statistic: no ordering with anything else is needed. */
    atomic_fetch_add_explicit(&e->rejected, n, memory_order_relaxed);
    return 0;
}

int swarm_metrics_set_loop_bounds(swarm_metrics *m, const swarm_reconcile *r, int32_t min_replicas,
                                  int32_t max_replicas, double target)
{
    if (m == NULL || r == NULL || min_replicas < 0 || max_replicas < min_replicas ||
        !(target > 0) || target > 9.0e15)
        return SWARM_EINVAL;
    swarm__mutex_lock(&m->lock);
    entry *e = find_entry(m, K_LOOP, r);
    if (e != NULL) {
        e->min_replicas = min_replicas;
        e->max_replicas = max_replicas;
        /* Thousandths, rounded half away from zero, like KEDA's milli-quantities. */
        e->target_milli = (int64_t)(target * 1000.0 + 0.5);
        e->has_policy = 1;
    }
    swarm__mutex_unlock(&m->lock);
    return e != NULL ? 0 : SWARM_EINVAL;
}

uint32_t swarm_metrics_count(const swarm_metrics *m)
{
    return m == NULL ? 0 : atomic_load_explicit(&m->n, memory_order_acquire);
}

/* Renders into @o; with @widest, every value is replaced by its widest form and no object is
 * read. Called with the mutex held. */
static void render_locked(swarm_metrics *m, int format, bool widest, out *o)
{
    uint32_t n = atomic_load_explicit(&m->n, memory_order_relaxed);
    int64_t wide_reason = widest ? widest_reason() : 0;
    uint32_t skipped = widest ? UINT32_MAX : 0;
    for (uint32_t i = 0; i < n; i++) {
        if (widest) {
            fill_widest(&m->snaps[i], m->entries[i].kind, wide_reason);
        } else {
            take_snapshot(&m->entries[i], &m->snaps[i]);
            skipped += m->snaps[i].ok ? 0u : 1u;
        }
    }
    if (format == SWARM_METRICS_PROMETHEUS)
        render_prometheus(m, n, skipped, o);
    else
        render_json(m, n, skipped, o);
}

int swarm_metrics_render(swarm_metrics *m, int format, char *buf, size_t buf_len, size_t *written)
{
    if (m == NULL || (buf == NULL && buf_len > 0) ||
        (format != SWARM_METRICS_PROMETHEUS && format != SWARM_METRICS_JSON))
        return SWARM_EINVAL;
    out o = {buf, buf_len, 0};
    swarm__mutex_lock(&m->lock);
    render_locked(m, format, false, &o);
    swarm__mutex_unlock(&m->lock);
    if (o.len >= buf_len) {
        if (buf_len > 0)
            buf[buf_len - 1] = '\0';
        if (written != NULL)
            *written = o.len + 1;
        return SWARM_ERANGE;
    }
    buf[o.len] = '\0';
    if (written != NULL)
        *written = o.len;
    return 0;
}

int swarm_metrics_render_bound(swarm_metrics *m, int format, size_t *size)
{
    if (m == NULL || size == NULL ||
        (format != SWARM_METRICS_PROMETHEUS && format != SWARM_METRICS_JSON))
        return SWARM_EINVAL;
    out o = {NULL, 0, 0};
    swarm__mutex_lock(&m->lock);
    render_locked(m, format, true, &o);
    swarm__mutex_unlock(&m->lock);
    *size = o.len + 1;
    return 0;
}
