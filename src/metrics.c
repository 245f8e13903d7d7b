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
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "internal.h"
#include "swarm/metrics.h"

#define DEFAULT_MAX_OBJECTS 16
#define NAME_CAP            (SWARM_METRICS_NAME_MAX + 1)

enum kind { K_CHAN = 0, K_POOL = 1, K_LOOP = 2, N_KINDS = 3 };

/* How a row's value is stored in the snapshot and printed. */
enum vfmt {
    V_U32,   /* uint32_t */
    V_I32,   /* int32_t */
    V_U64,   /* uint64_t */
    V_SEC,   /* int64_t ns, printed as seconds */
    V_QSEC,  /* three int64_t ns (p50, p90, p99) in a row: three gauges in seconds, the
                percentile in the name ("queue_wait_seconds" -> "queue_wait_p50_seconds"). A
                summary with a quantile label would need _sum and _count, which the pool does
                not keep, and promtool rejects a quantile label on a gauge */
    V_REASON /* int64_t rule code, with the rule's name as a label */
};

enum mtype { T_GAUGE, T_COUNTER };

typedef struct row {
    const char *name; /* Prometheus name after "swarm_<kind>_"; JSON key without "_total" */
    const char *help;
    uint8_t type; /* enum mtype */
    uint8_t fmt;  /* enum vfmt */
    uint16_t off; /* offset of the value in struct snap */
} row;

typedef struct snap {
    union {
        swarm_chan_stats ch;
        swarm_pool_stats pool;
        swarm_reconcile_stats loop;
    } u;
    uint64_t backlog; /* pool: queued + in_flight */
    int64_t reason;   /* loop: rule code of the last decision, 0 before the first */
    int ok;           /* get_stats succeeded; objects that failed are left out of the render */
} snap;

#define OFF(m) ((uint16_t)offsetof(snap, m))

static const row chan_rows[] = {
    {"length", "Elements queued now.", T_GAUGE, V_U64, OFF(u.ch.length)},
    {"capacity", "Capacity in elements.", T_GAUGE, V_U64, OFF(u.ch.capacity)},
    {"high_watermark", "Largest length seen.", T_GAUGE, V_U64, OFF(u.ch.high_watermark)},
    {"blocked_senders", "Threads parked in a send now.", T_GAUGE, V_U32, OFF(u.ch.blocked_senders)},
    {"blocked_receivers", "Threads parked in a receive now.", T_GAUGE, V_U32,
     OFF(u.ch.blocked_receivers)},
    {"closed", "1 once the channel is closed.", T_GAUGE, V_U32, OFF(u.ch.closed)},
    {"sent_total", "Elements accepted by sends.", T_COUNTER, V_U64, OFF(u.ch.sent)},
    {"received_total", "Elements delivered to receivers.", T_COUNTER, V_U64, OFF(u.ch.received)},
    {"dropped_total", "Elements dropped by the full mode.", T_COUNTER, V_U64, OFF(u.ch.dropped)},
    {"send_blocked_seconds_total", "Time senders spent parked (backpressure).", T_COUNTER, V_SEC,
     OFF(u.ch.send_blocked_ns)},
    {"recv_blocked_seconds_total", "Time receivers spent parked (idle).", T_COUNTER, V_SEC,
     OFF(u.ch.recv_blocked_ns)},
};

static const row pool_rows[] = {
    {"workers_target", "Workers asked for by the last resize.", T_GAUGE, V_U32, OFF(u.pool.target)},
    {"workers_live", "Worker threads running.", T_GAUGE, V_U32, OFF(u.pool.live)},
    {"workers_starting", "Workers in warm-up (pending capacity).", T_GAUGE, V_U32,
     OFF(u.pool.starting)},
    {"workers_ready", "Workers past warm-up.", T_GAUGE, V_U32, OFF(u.pool.ready)},
    {"workers_busy", "Workers running tasks.", T_GAUGE, V_U32, OFF(u.pool.busy)},
    {"workers_idle", "Ready workers waiting for work.", T_GAUGE, V_U32, OFF(u.pool.idle)},
    {"workers_retiring", "Workers asked to leave.", T_GAUGE, V_U32, OFF(u.pool.retiring)},
    {"stopped", "1 once stop began.", T_GAUGE, V_U32, OFF(u.pool.stopped)},
    {"queued", "Tasks waiting in the input channel.", T_GAUGE, V_U64, OFF(u.pool.queued)},
    {"in_flight", "Tasks taken and not yet delivered.", T_GAUGE, V_U64, OFF(u.pool.in_flight)},
    {"backlog", "Queued plus in-flight tasks: the signal to scale on.", T_GAUGE, V_U64,
     OFF(backlog)},
    {"tasks_taken_total", "Tasks taken from the channel.", T_COUNTER, V_U64, OFF(u.pool.taken)},
    {"tasks_completed_total", "Results delivered with status 0.", T_COUNTER, V_U64,
     OFF(u.pool.completed)},
    {"tasks_failed_total", "Results delivered with an error.", T_COUNTER, V_U64,
     OFF(u.pool.failed)},
    {"results_undelivered_total", "Results the closed result channel refused.", T_COUNTER, V_U64,
     OFF(u.pool.undelivered)},
    {"batches_total", "Engine calls.", T_COUNTER, V_U64, OFF(u.pool.batches)},
    {"workers_started_total", "Workers started.", T_COUNTER, V_U64, OFF(u.pool.started)},
    {"workers_retired_total", "Workers that left.", T_COUNTER, V_U64, OFF(u.pool.retired)},
    {"worker_start_failures_total", "Warm-ups that failed.", T_COUNTER, V_U64,
     OFF(u.pool.start_failures)},
    {"queue_wait_seconds", "Queue wait percentile since create (0 before the first sample).",
     T_GAUGE, V_QSEC, OFF(u.pool.wait_p50_ns)},
    {"queue_wait_max_seconds", "Largest queue wait seen.", T_GAUGE, V_SEC, OFF(u.pool.wait_max_ns)},
    {"service_seconds", "Engine call time percentile since create (0 before the first sample).",
     T_GAUGE, V_QSEC, OFF(u.pool.service_p50_ns)},
    {"service_max_seconds", "Largest engine call time seen.", T_GAUGE, V_SEC,
     OFF(u.pool.service_max_ns)},
};

static const row loop_rows[] = {
    {"desired_replicas", "Replicas of the last decision (-1 before the first).", T_GAUGE, V_I32,
     OFF(u.loop.last_desired)},
    {"actuated_replicas", "Last count actuate accepted (-1 before the first).", T_GAUGE, V_I32,
     OFF(u.loop.last_actuated)},
    {"last_reason", "Rule that set the last decision (code; name in the reason label).", T_GAUGE,
     V_REASON, OFF(reason)},
    {"running", "1 while the loop's thread runs.", T_GAUGE, V_U32, OFF(u.loop.running)},
    {"consecutive_errors", "Failed steps in a row.", T_GAUGE, V_U32,
     OFF(u.loop.consecutive_errors)},
    {"last_error", "Code of the last failed step (0: none).", T_GAUGE, V_I32,
     OFF(u.loop.last_error)},
    {"ticks_total", "Steps run.", T_COUNTER, V_U64, OFF(u.loop.ticks)},
    {"errors_total", "Failed steps.", T_COUNTER, V_U64, OFF(u.loop.errors)},
    {"observe_errors_total", "Observe calls that failed.", T_COUNTER, V_U64,
     OFF(u.loop.observe_errors)},
    {"actuate_errors_total", "Actuate calls that failed.", T_COUNTER, V_U64,
     OFF(u.loop.actuate_errors)},
    {"decide_errors_total", "Observations the policy rejected.", T_COUNTER, V_U64,
     OFF(u.loop.decide_errors)},
    {"decisions_total", "Policy decisions made.", T_COUNTER, V_U64, OFF(u.loop.decisions)},
    {"actuations_total", "Actuate calls that succeeded.", T_COUNTER, V_U64, OFF(u.loop.actuations)},
    {"kicks_total", "Kicks received.", T_COUNTER, V_U64, OFF(u.loop.kicks)},
    {"backoff_seconds", "Delay chosen by the last failed step (0 after a success).", T_GAUGE, V_SEC,
     OFF(u.loop.backoff_ns)},
    {"last_lag_seconds", "Lateness of the last scheduled tick.", T_GAUGE, V_SEC,
     OFF(u.loop.last_lag_ns)},
    {"max_lag_seconds", "Largest tick lateness seen.", T_GAUGE, V_SEC, OFF(u.loop.max_lag_ns)},
    {"last_step_seconds", "Duration of the last threaded step.", T_GAUGE, V_SEC,
     OFF(u.loop.last_step_ns)},
};

typedef struct kind_info {
    const char *prefix;   /* "swarm_<prefix>_" */
    const char *label;    /* the Prometheus label carrying the object's name */
    const char *json_key; /* the top-level JSON key */
    const row *rows;
    size_t n_rows;
} kind_info;

static const kind_info kinds[N_KINDS] = {
    {"channel", "channel", "channels", chan_rows, sizeof chan_rows / sizeof chan_rows[0]},
    {"pool", "pool", "pools", pool_rows, sizeof pool_rows / sizeof pool_rows[0]},
    {"reconcile", "loop", "loops", loop_rows, sizeof loop_rows / sizeof loop_rows[0]},
};

static const char *const quantile_keys[3] = {"p50", "p90", "p99"};

typedef struct entry {
    uint32_t kind;
    char name[NAME_CAP];
    const void *obj; /* swarm_chan *, swarm_pool * or swarm_reconcile *: borrowed */
} entry;

struct swarm_metrics {
    pthread_mutex_t lock; /* guards entries, n and snaps; held for a whole render */
    _Atomic uint32_t n;   /* registered; written under lock, read relaxed by _count() */
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

/* The reason name with the longest escaped form, for the size bound. Rule codes are small
 * consecutive integers; 64 covers them with room to grow. */
static int64_t widest_reason(void)
{
    int64_t best = 0;
    size_t best_len = 0;
    for (int64_t code = 0; code < 64; code++) {
        /* The code is printed next to the name in both formats, so their widths add up. */
        out o = {NULL, 0, 0};
        put_label_value(&o, reason_name(code));
        out j = {NULL, 0, 0};
        put_json_string(&j, reason_name(code));
        out c = {NULL, 0, 0};
        put_i64(&c, code);
        size_t len = (o.len > j.len ? o.len : j.len) + c.len;
        if (len > best_len) {
            best_len = len;
            best = code;
        }
    }
    return best;
}

/* Prints the value of @r at index @q (0 for single-valued rows). */
static void put_value(out *o, const snap *s, const row *r, int q)
{
    const unsigned char *base = (const unsigned char *)s + r->off;
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
    case V_REASON: {
        int64_t v;
        memcpy(&v, base, sizeof v);
        put_i64(o, v);
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

/* Fills @s with the widest value of every field, for swarm_metrics_render_bound(). */
static void fill_widest(snap *s, uint32_t kind, int64_t reason)
{
    const kind_info *k = &kinds[kind];
    memset(s, 0, sizeof *s);
    s->ok = 1;
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
        case V_REASON:
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

static void take_snapshot(const entry *e, snap *s)
{
    memset(s, 0, sizeof *s);
    int rc = SWARM_EINVAL;
    switch (e->kind) {
    case K_CHAN:
        s->u.ch.size = sizeof s->u.ch;
        rc = swarm_chan_get_stats((const swarm_chan *)e->obj, &s->u.ch);
        break;
    case K_POOL:
        s->u.pool.size = sizeof s->u.pool;
        rc = swarm_pool_get_stats((swarm_pool *)(uintptr_t)e->obj, &s->u.pool);
        s->backlog = s->u.pool.queued + s->u.pool.in_flight;
        break;
    case K_LOOP: {
        swarm_reconcile *r = (swarm_reconcile *)(uintptr_t)e->obj;
        s->u.loop.size = sizeof s->u.loop;
        rc = swarm_reconcile_get_stats(r, &s->u.loop);
        swarm_policy_decision d;
        memset(&d, 0, sizeof d);
        d.size = sizeof d;
        if (rc == 0 && swarm_reconcile_last_decision(r, &d) == 0)
            s->reason = decision_reason(&d);
        break;
    }
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

static void render_prometheus(const swarm_metrics *m, uint32_t n, out *o)
{
    for (uint32_t kind = 0; kind < N_KINDS; kind++) {
        const kind_info *k = &kinds[kind];
        bool any = false;
        for (uint32_t i = 0; i < n; i++)
            any = any || (m->entries[i].kind == kind && m->snaps[i].ok);
        if (!any)
            continue;
        for (size_t ri = 0; ri < k->n_rows; ri++) {
            const row *r = &k->rows[ri];
            int nq = r->fmt == V_QSEC ? 3 : 1;
            for (int q = 0; q < nq; q++) {
                /* HELP texts are ours and contain neither backslashes nor newlines. */
                puts_(o, "# HELP ");
                put_family_name(o, k, r, q);
                putc_(o, ' ');
                puts_(o, r->help);
                puts_(o, "\n# TYPE ");
                put_family_name(o, k, r, q);
                puts_(o, r->type == T_COUNTER ? " counter\n" : " gauge\n");
                for (uint32_t i = 0; i < n; i++) {
                    const entry *e = &m->entries[i];
                    const snap *s = &m->snaps[i];
                    if (e->kind != kind || !s->ok)
                        continue;
                    put_family_name(o, k, r, q);
                    putc_(o, '{');
                    puts_(o, k->label);
                    puts_(o, "=\"");
                    put_label_value(o, e->name);
                    putc_(o, '"');
                    if (r->fmt == V_REASON) {
                        int64_t code;
                        memcpy(&code, (const unsigned char *)s + r->off, sizeof code);
                        puts_(o, ",reason=\"");
                        put_label_value(o, reason_name(code));
                        putc_(o, '"');
                    }
                    puts_(o, "} ");
                    put_value(o, s, r, q);
                    putc_(o, '\n');
                }
            }
        }
    }
}

static void put_json_key(out *o, const row *r, int q)
{
    putc_(o, '"');
    put_row_name(o, r, q, true);
    puts_(o, "\":");
}

static void render_json(const swarm_metrics *m, uint32_t n, out *o)
{
    putc_(o, '{');
    for (uint32_t kind = 0; kind < N_KINDS; kind++) {
        const kind_info *k = &kinds[kind];
        if (kind > 0)
            putc_(o, ',');
        put_json_string(o, k->json_key);
        puts_(o, ":{");
        bool first_obj = true;
        for (uint32_t i = 0; i < n; i++) {
            const entry *e = &m->entries[i];
            const snap *s = &m->snaps[i];
            if (e->kind != kind || !s->ok)
                continue;
            if (!first_obj)
                putc_(o, ',');
            first_obj = false;
            put_json_string(o, e->name);
            puts_(o, ":{");
            for (size_t ri = 0; ri < k->n_rows; ri++) {
                const row *r = &k->rows[ri];
                int nq = r->fmt == V_QSEC ? 3 : 1;
                for (int q = 0; q < nq; q++) {
                    if (ri > 0 || q > 0)
                        putc_(o, ',');
                    put_json_key(o, r, q);
                    put_value(o, s, r, q);
                }
                if (r->fmt == V_REASON) {
                    int64_t code;
                    memcpy(&code, (const unsigned char *)s + r->off, sizeof code);
                    puts_(o, ",\"last_reason_name\":");
                    put_json_string(o, reason_name(code));
                }
            }
            putc_(o, '}');
        }
        putc_(o, '}');
    }
    puts_(o, "}\n");
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
    if (opts != NULL &&
        swarm__opts_copy(&o, sizeof o, opts, offsetof(swarm_metrics_opts, alloc)) != 0)
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
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
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
    pthread_mutex_destroy(&m->lock);
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
    pthread_mutex_lock(&m->lock);
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
        /* Readers of the entries hold the mutex; _count() only needs the number itself. */
        atomic_store_explicit(&m->n, n + 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
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

uint32_t swarm_metrics_count(const swarm_metrics *m)
{
    return m == NULL ? 0 : atomic_load_explicit(&m->n, memory_order_relaxed);
}

/* Renders into @o; with @widest, every value is replaced by its widest form and no object is
 * read. Called with the mutex held. */
static void render_locked(swarm_metrics *m, int format, bool widest, out *o)
{
    uint32_t n = atomic_load_explicit(&m->n, memory_order_relaxed);
    int64_t wide_reason = widest ? widest_reason() : 0;
    for (uint32_t i = 0; i < n; i++) {
        if (widest)
            fill_widest(&m->snaps[i], m->entries[i].kind, wide_reason);
        else
            take_snapshot(&m->entries[i], &m->snaps[i]);
    }
    if (format == SWARM_METRICS_PROMETHEUS)
        render_prometheus(m, n, o);
    else
        render_json(m, n, o);
}

int swarm_metrics_render(swarm_metrics *m, int format, char *buf, size_t buf_len, size_t *written)
{
    if (m == NULL || (buf == NULL && buf_len > 0) ||
        (format != SWARM_METRICS_PROMETHEUS && format != SWARM_METRICS_JSON))
        return SWARM_EINVAL;
    out o = {buf, buf_len, 0};
    pthread_mutex_lock(&m->lock);
    render_locked(m, format, false, &o);
    pthread_mutex_unlock(&m->lock);
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
    pthread_mutex_lock(&m->lock);
    render_locked(m, format, true, &o);
    pthread_mutex_unlock(&m->lock);
    *size = o.len + 1;
    return 0;
}
