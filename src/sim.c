/* SPDX-License-Identifier: MIT */
/*
 * The simulator (include/swarm/sim.h): a discrete-event queueing model on simulated time that
 * drives the real policy through the real reconcile loop (swarm_reconcile_step() with injected
 * time). Events are processed in time order; on equal times: completions and replica-ready
 * events, then arrivals, then the metrics-lag snapshot, then the decision (so that it sees
 * everything that happened at its instant), and last the timeline sample.
 *
 * Randomness: three xoshiro256** streams seeded from one seed (arrivals, service times, start-up
 * jitter). Each request draws its service time when it arrives, so the request sequence (arrival
 * and service times) is identical for every policy run with the same seed and trace: policies
 * are compared on the same requests (common random numbers).
 */
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "opts_v1.h"
#include "swarm/reconcile.h"
#include "swarm/sim.h"

#define SIM_INF      HUGE_VAL
#define SIM_HARD_CAP 100000
#define SIM_LAG_DT   0.1 /* s: resolution of the metrics-lag history */

/* Input bounds: traces of at most 16 M rows, times up to 10^8 s (three years), offered loads the
 * O(servers) Erlang search handles in milliseconds. Beyond them: SWARM_ERANGE / SWARM_EINVAL. */
#define SIM_MAX_ROWS    ((size_t)1 << 24)
#define SIM_MAX_SECONDS 1e8
#define SIM_MAX_OFFERED 1e7
/* ---- random numbers ------------------------------------------------------------------------ */

typedef struct rng {
    uint64_t s[4];
} rng;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ull);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* Uniform in (0, 1): never 0, so log() is finite. */
static double rng_u01(rng *r)
{
    return ((double)(rng_next(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static double rng_exp(rng *r, double mean)
{
    return -log(rng_u01(r)) * mean;
}

static double rng_normal(rng *r)
{
    double u = rng_u01(r), v = rng_u01(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* ---- traces -------------------------------------------------------------------------------- */

struct swarm_sim_trace {
    swarm_allocator alloc;
    size_t n;
    swarm_sim_point *rows;
};

static int trace_new(swarm_sim_trace **out, const swarm_allocator *alloc, size_t n)
{
    swarm_allocator a;
    int rc = swarm__alloc_init(&a, alloc);
    if (rc < 0)
        return rc;
    if (n > SIZE_MAX / sizeof(swarm_sim_point))
        return SWARM_ENOMEM;
    swarm_sim_trace *t = swarm__alloc(&a, sizeof *t, _Alignof(swarm_sim_trace));
    if (t == NULL)
        return SWARM_ENOMEM;
    t->alloc = a;
    t->n = n;
    t->rows = swarm__alloc(&a, (n ? n : 1) * sizeof *t->rows, _Alignof(swarm_sim_point));
    if (t->rows == NULL) {
        swarm__free(&a, t, sizeof *t);
        return SWARM_ENOMEM;
    }
    *out = t;
    return 0;
}

static bool row_ok(const swarm_sim_point *p, const swarm_sim_point *prev)
{
    if (!isfinite(p->t_s) || p->t_s < 0 || !isfinite(p->rps) || p->rps < 0)
        return false;
    return prev == NULL || p->t_s > prev->t_s;
}

int swarm_sim_trace_create(swarm_sim_trace **out, const swarm_sim_point *rows, size_t n,
                           const swarm_allocator *alloc)
{
    if (out == NULL || rows == NULL || n == 0)
        return SWARM_EINVAL;
    if (n > SIM_MAX_ROWS)
        return SWARM_ERANGE;
    for (size_t i = 0; i < n; i++)
        if (!row_ok(&rows[i], i ? &rows[i - 1] : NULL))
            return SWARM_EINVAL;
    swarm_sim_trace *t;
    int rc = trace_new(&t, alloc, n);
    if (rc < 0)
        return rc;
    memcpy(t->rows, rows, n * sizeof *rows);
    *out = t;
    return 0;
}

void swarm_sim_trace_destroy(swarm_sim_trace *tr)
{
    if (tr == NULL)
        return;
    swarm_allocator a = tr->alloc;
    swarm__free(&a, tr->rows, (tr->n ? tr->n : 1) * sizeof *tr->rows);
    swarm__free(&a, tr, sizeof *tr);
}

size_t swarm_sim_trace_len(const swarm_sim_trace *tr)
{
    return tr ? tr->n : 0;
}

int swarm_sim_trace_get(const swarm_sim_trace *tr, size_t i, swarm_sim_point *out)
{
    if (tr == NULL || out == NULL || i >= tr->n)
        return SWARM_EINVAL;
    *out = tr->rows[i];
    return 0;
}

/* Parses a number spanning [p, end) exactly (surrounding blanks allowed). */
static bool parse_num(const char *p, const char *end, double *v)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        end--;
    if (p == end || end - p > 63)
        return false;
    char buf[64];
    memcpy(buf, p, (size_t)(end - p));
    buf[end - p] = 0;
    char *e = NULL;
    double x = strtod(buf, &e);
    if (e == buf || *e != 0 || !isfinite(x))
        return false;
    *v = x;
    return true;
}

/* Growable row buffer used while parsing and generating. */
typedef struct rowbuf {
    swarm_allocator a;
    swarm_sim_point *p;
    size_t n, cap;
    bool oom;
    bool too_long; /* more than SIM_MAX_ROWS rows */
} rowbuf;

static void rb_append(rowbuf *b, double t, double rps)
{
    if (b->oom)
        return;
    if (b->n >= SIM_MAX_ROWS) {
        b->oom = true; /* reported as SWARM_ERANGE by the callers */
        b->too_long = true;
        return;
    }
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 64;
        swarm_sim_point *np = swarm__alloc(&b->a, nc * sizeof *np, _Alignof(swarm_sim_point));
        if (np == NULL) {
            b->oom = true;
            return;
        }
        if (b->n)
            memcpy(np, b->p, b->n * sizeof *np);
        swarm__free(&b->a, b->p, b->cap * sizeof *b->p);
        b->p = np;
        b->cap = nc;
    }
    b->p[b->n++] = (swarm_sim_point){t, rps};
}

/* Generators: a row at or before the previous one, or repeating its rate, adds nothing. */
static void rb_push(rowbuf *b, double t, double rps)
{
    if (b->n > 0 && (b->p[b->n - 1].t_s >= t || b->p[b->n - 1].rps == rps))
        return;
    rb_append(b, t, rps);
}

/* Makes the trace; with @end_t > the last row's time, a final row restates the last rate at
 * end_t, so that the simulated time (last row + tail) covers the whole generated shape. */
static int rb_finish(rowbuf *b, swarm_sim_trace **out, double end_t)
{
    if (b->n > 0 && end_t > b->p[b->n - 1].t_s)
        rb_append(b, end_t, b->p[b->n - 1].rps);
    int rc = b->too_long ? SWARM_ERANGE
             : b->oom    ? SWARM_ENOMEM
             : b->n      ? swarm_sim_trace_create(out, b->p, b->n, &b->a)
                         : SWARM_EINVAL;
    swarm__free(&b->a, b->p, b->cap * sizeof *b->p);
    return rc;
}

int swarm_sim_trace_parse(swarm_sim_trace **out, const char *text, size_t len, uint32_t *err_line,
                          const swarm_allocator *alloc)
{
    if (err_line)
        *err_line = 0;
    if (out == NULL || (text == NULL && len > 0))
        return SWARM_EINVAL;
    rowbuf b = {0};
    int rc = swarm__alloc_init(&b.a, alloc);
    if (rc < 0)
        return rc;
    const char *p = text, *end = text + len;
    uint32_t line = 0;
    while (p < end) {
        line++;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *q = p;
        while (q < le && (*q == ' ' || *q == '\t' || *q == '\r'))
            q++;
        if (q < le && *q != '#') {
            const char *comma = memchr(q, ',', (size_t)(le - q));
            double t = 0, r = 0;
            swarm_sim_point row;
            if (comma == NULL || !parse_num(q, comma, &t) || !parse_num(comma + 1, le, &r) ||
                (row = (swarm_sim_point){t, r}, !row_ok(&row, b.n ? &b.p[b.n - 1] : NULL))) {
                if (err_line)
                    *err_line = line;
                swarm__free(&b.a, b.p, b.cap * sizeof *b.p);
                return SWARM_EINVAL;
            }
            rb_append(&b, row.t_s, row.rps);
            if (b.oom) {
                swarm__free(&b.a, b.p, b.cap * sizeof *b.p);
                if (b.too_long && err_line)
                    *err_line = line;
                return b.too_long ? SWARM_ERANGE : SWARM_ENOMEM;
            }
        }
        p = nl ? nl + 1 : end;
    }
    if (b.n == 0) {
        swarm__free(&b.a, b.p, b.cap * sizeof *b.p);
        return SWARM_EINVAL;
    }
    return rb_finish(&b, out, 0);
}

int swarm_sim_gen_opts_init(swarm_sim_gen_opts *opts)
{
    if (opts == NULL)
        return SWARM_EINVAL;
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
    return 0;
}

static double dflt(double v, double d)
{
    return v > 0 ? v : d;
}

/* Bursts of burst_s at peak over base, starting as a Poisson process of mean gap gap_s. */
static void gen_bursts(rowbuf *b, rng *r, double base, double peak, double burst, double gap,
                       double dur, bool at_least_one)
{
    double t = 0;
    int n = 0;
    rb_push(b, 0, base);
    while (!b->oom) {
        double start = t + rng_exp(r, gap);
        if (start + burst > dur) {
            if (n == 0 && at_least_one && dur > burst) {
                /* Seeds whose first gap overshoots still get one burst, in the middle. */
                start = (dur - burst) / 2;
            } else {
                break;
            }
        }
        rb_push(b, start, peak);
        rb_push(b, start + burst, base);
        t = start + burst;
        n++;
    }
}

int swarm_sim_trace_generate(swarm_sim_trace **out, const swarm_sim_gen_opts *opts,
                             const swarm_allocator *alloc)
{
    if (out == NULL || opts == NULL)
        return SWARM_EINVAL;
    swarm_sim_gen_opts o;
    swarm_sim_gen_opts_init(&o);
    if (SWARM__OPTS_COPY(sim_gen_opts, &o, opts) != 0)
        return SWARM_EINVAL;
    const double f[] = {o.base_rps, o.peak_rps, o.duration_s, o.period_s, o.burst_s, o.gap_s};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (!isfinite(f[i]) || f[i] < 0 || (i >= 2 && f[i] > SIM_MAX_SECONDS))
            return SWARM_EINVAL;
    /* Bursts and gaps shorter than a millisecond would only make the row cap the limit. */
    if ((o.burst_s > 0 && o.burst_s < 1e-3) || (o.gap_s > 0 && o.gap_s < 1e-3) ||
        (o.period_s > 0 && o.period_s < 1e-3))
        return SWARM_EINVAL;
    rowbuf b = {0};
    int rc = swarm__alloc_init(&b.a, alloc);
    if (rc < 0)
        return rc;
    rng r;
    rng_seed(&r, o.seed ? o.seed : 0x5157a4d5eedull, 7);
    double end_t = 0;
    switch (o.shape) {
    case SWARM_SIM_SHAPE_STEP: {
        double base = dflt(o.base_rps, 20), peak = dflt(o.peak_rps, 10 * base);
        rb_push(&b, 0, base);
        rb_push(&b, 300, peak);
        rb_push(&b, 900, base);
        end_t = dflt(o.duration_s, 1500);
        break;
    }
    case SWARM_SIM_SHAPE_SINE: {
        double base = dflt(o.base_rps, 10), peak = dflt(o.peak_rps, 200);
        double period = dflt(o.period_s, 3600), dur = dflt(o.duration_s, period);
        for (double t = 0; t < dur && !b.oom; t += 10) {
            double ph = 6.283185307179586 * (t + 5) / period; /* mid-step value */
            rb_push(&b, t, round(base + (peak - base) * (1 - cos(ph)) / 2));
        }
        end_t = dur;
        break;
    }
    case SWARM_SIM_SHAPE_SPIKES: {
        double base = dflt(o.base_rps, 20), peak = dflt(o.peak_rps, 200);
        double dur = dflt(o.duration_s, 3600);
        gen_bursts(&b, &r, base, peak, dflt(o.burst_s, 60), dflt(o.gap_s, 300), dur, true);
        end_t = dur;
        break;
    }
    case SWARM_SIM_SHAPE_FLASH: {
        double peak = dflt(o.peak_rps, 400);
        rb_push(&b, 0, o.base_rps);
        rb_push(&b, 60, peak);
        for (int i = 0; i < 60; i++)
            rb_push(&b, 360 + 10.0 * i, round(peak * (60 - i) / 60.0 + o.base_rps * i / 60.0));
        rb_push(&b, 960, o.base_rps);
        end_t = dflt(o.duration_s, 960);
        break;
    }
    case SWARM_SIM_SHAPE_IDLE_BURSTS: {
        double dur = dflt(o.duration_s, 3600);
        gen_bursts(&b, &r, o.base_rps, dflt(o.peak_rps, 50), dflt(o.burst_s, 30),
                   dflt(o.gap_s, 900), dur, true);
        end_t = dur;
        break;
    }
    default:
        return SWARM_EINVAL;
    }
    return rb_finish(&b, out, end_t);
}

/* ---- Erlang C ------------------------------------------------------------------------------ */

static double erlang_c(int32_t c, double a)
{
    if (a <= 0)
        return 0;
    if ((double)c <= a)
        return 1;
    /* Past a few million servers the recurrence costs more than it tells: at c >= a + 40 sqrt(a)
     * (and above 10^6 servers) the probability of waiting is far below 1e-300, i.e. 0. */
    if (c > 1000000 && (double)c > a + 40.0 * sqrt(a) + 40.0)
        return 0;
    /* Erlang B by its recurrence (stable for c in the thousands), then C from B. */
    double b = 1;
    for (int32_t n = 1; n <= c; n++)
        b = a * b / (n + a * b);
    return c * b / (c - a * (1 - b));
}

int swarm_sim_erlang_c(int32_t servers, double offered, double *p_wait)
{
    if (p_wait == NULL || servers < 0 || !isfinite(offered) || offered < 0)
        return SWARM_EINVAL;
    *p_wait = erlang_c(servers, offered);
    return 0;
}

int swarm_sim_erlang_servers(double offered, double service_s, double wait_s, double quantile,
                             int32_t max_servers, int32_t *out)
{
    if (out == NULL || !isfinite(offered) || offered < 0 || !isfinite(service_s) ||
        service_s <= 0 || !isfinite(wait_s) || wait_s < 0 || !(quantile > 0 && quantile < 1) ||
        max_servers < 0)
        return SWARM_EINVAL;
    if (offered == 0) {
        *out = 0;
        return 0;
    }
    if (offered >= (double)max_servers || offered > SIM_MAX_OFFERED) {
        /* No count within the bound exceeds the load (or the load is beyond what the O(c)
         * search is for): the answer is the bound, out of range. */
        *out = max_servers;
        return SWARM_ERANGE;
    }
    double allow = 1 - quantile;
    /* Start just above the load (c must exceed a) and walk up; B is recomputed by extending
     * the recurrence, so the whole search is O(c). */
    double b = 1;
    int32_t n = 0;
    for (int32_t c = 1; c <= max_servers; c++) {
        while (n < c) {
            n++;
            b = offered * b / (n + offered * b);
        }
        if ((double)c <= offered)
            continue;
        double pw = c * b / (c - offered * (1 - b));
        if (pw * exp(-(c - offered) * wait_s / service_s) <= allow) {
            *out = c;
            return 0;
        }
    }
    *out = max_servers;
    return SWARM_ERANGE;
}

/* ---- the simulation ------------------------------------------------------------------------ */

enum { R_FREE = 0, R_STARTING, R_READY, R_RETIRING };
enum { EV_DONE = 0, EV_READY = 1 };

typedef struct qent {
    double arr, svc;
} qent;

typedef struct event {
    double t;
    double arr; /* EV_DONE: arrival time of the request */
    double svc; /* EV_DONE: its service time */
    uint32_t rep;
    uint32_t type_gen; /* low bit: type; EV_READY: gen << 1 */
} event;

typedef struct replica {
    uint32_t state;
    uint32_t gen; /* bumped when the slot is freed: stale ready events are ignored */
    uint32_t inflight;
    uint32_t in_avail;
    int32_t prev, next; /* avail list (ready, not retiring, inflight < k); free list via next */
    double ready_at;
} replica;

typedef struct snap {
    int64_t k; /* sample index: time k * SIM_LAG_DT */
    double queued, in_flight, service_total;
    uint64_t arrivals, completions;
} snap;

struct swarm_sim {
    swarm_allocator alloc;
    swarm_sim_opts o;
    swarm_policy_opts popts;
    const swarm_sim_trace *tr;
    swarm_policy *pol;
    swarm_reconcile *loop;
    int state; /* 0 created, 1 ran, 2 failed */
    int err;
    rng r_arr, r_svc, r_start;

    double end_t, interval_s, target, slo, svc_mean, ln_mu, ln_sigma, lookahead;
    uint32_t k;
    int32_t cap, min_rep;

    double now;
    size_t arr_seg, tl_seg, or_seg;
    double next_arr, next_dec, next_tl, next_lag;

    qent *q;
    size_t qcap, qhead, qlen;
    event *h;
    size_t hlen, hcap;
    replica *rep;
    uint32_t nrep_cap;
    int32_t free_head, avail_head;
    int32_t n_starting, n_ready, n_retiring;
    uint64_t inflight;

    uint64_t arrivals, dropped, completions, waited, slo_miss, nzero;
    double service_total, sum_wait, sum_sojourn, max_wait;
    float *waits;
    size_t nwaits, waits_cap;

    double replica_s, area, slo_violation;
    uint64_t max_queue;
    int32_t peak, desired;
    int last_dir;
    double last_change_t;
    uint32_t flaps, scale_events;
    uint64_t decisions;

    swarm_sim_sample *tl;
    size_t ntl, tlcap;
    uint64_t arrivals_at_sample;
    snap *lag;
    size_t nlag;

    swarm_sim_result res;
};

int swarm_sim_opts_init(swarm_sim_opts *opts)
{
    if (opts == NULL)
        return SWARM_EINVAL;
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
    return 0;
}

/* Grows an array to hold at least @need elements (doubling). */
static bool grow(swarm_sim *s, void **p, size_t *cap, size_t need, size_t elem, size_t align)
{
    if (need <= *cap)
        return true;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) {
        if (nc > SIZE_MAX / 2 / elem)
            return false;
        nc *= 2;
    }
    void *np = swarm__alloc(&s->alloc, nc * elem, align);
    if (np == NULL)
        return false;
    if (*cap)
        memcpy(np, *p, *cap * elem);
    swarm__free(&s->alloc, *p, *cap * elem);
    *p = np;
    *cap = nc;
    return true;
}

static void fail(swarm_sim *s, int err)
{
    if (s->err == 0)
        s->err = err;
}

/* ---- event heap ---- */

static void heap_push(swarm_sim *s, event e)
{
    if (!grow(s, (void **)&s->h, &s->hcap, s->hlen + 1, sizeof(event), _Alignof(event))) {
        fail(s, SWARM_ENOMEM);
        return;
    }
    size_t i = s->hlen++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (s->h[p].t <= e.t)
            break;
        s->h[i] = s->h[p];
        i = p;
    }
    s->h[i] = e;
}

static event heap_pop(swarm_sim *s)
{
    event top = s->h[0], last = s->h[--s->hlen];
    size_t i = 0, n = s->hlen;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && s->h[c + 1].t < s->h[c].t)
            c++;
        if (last.t <= s->h[c].t)
            break;
        s->h[i] = s->h[c];
        i = c;
    }
    if (n)
        s->h[i] = last;
    return top;
}

/* ---- queue ---- */

static void q_push(swarm_sim *s, qent e)
{
    if (s->qlen == s->qcap) {
        size_t nc = s->qcap ? s->qcap * 2 : 1024;
        qent *nq = swarm__alloc(&s->alloc, nc * sizeof *nq, _Alignof(qent));
        if (nq == NULL) {
            fail(s, SWARM_ENOMEM);
            return;
        }
        for (size_t i = 0; i < s->qlen; i++)
            nq[i] = s->q[(s->qhead + i) % s->qcap];
        swarm__free(&s->alloc, s->q, s->qcap * sizeof *s->q);
        s->q = nq;
        s->qcap = nc;
        s->qhead = 0;
    }
    s->q[(s->qhead + s->qlen) % s->qcap] = e;
    s->qlen++;
    if (s->qlen > s->max_queue)
        s->max_queue = s->qlen;
}

static qent q_pop(swarm_sim *s)
{
    qent e = s->q[s->qhead];
    s->qhead = (s->qhead + 1) % s->qcap;
    s->qlen--;
    return e;
}

/* ---- replicas ---- */

static void avail_add(swarm_sim *s, int32_t i)
{
    replica *r = &s->rep[i];
    if (r->in_avail)
        return;
    r->in_avail = 1;
    r->prev = -1;
    r->next = s->avail_head;
    if (s->avail_head >= 0)
        s->rep[s->avail_head].prev = i;
    s->avail_head = i;
}

static void avail_del(swarm_sim *s, int32_t i)
{
    replica *r = &s->rep[i];
    if (!r->in_avail)
        return;
    r->in_avail = 0;
    if (r->prev >= 0)
        s->rep[r->prev].next = r->next;
    else
        s->avail_head = r->next;
    if (r->next >= 0)
        s->rep[r->next].prev = r->prev;
}

static int32_t rep_alloc(swarm_sim *s)
{
    if (s->free_head < 0) {
        size_t cap = s->nrep_cap;
        if (!grow(s, (void **)&s->rep, &cap, (size_t)s->nrep_cap + 1, sizeof(replica),
                  _Alignof(replica))) {
            fail(s, SWARM_ENOMEM);
            return -1;
        }
        for (size_t i = cap; i-- > s->nrep_cap;) {
            s->rep[i].state = R_FREE;
            s->rep[i].next = s->free_head;
            s->free_head = (int32_t)i;
        }
        s->nrep_cap = (uint32_t)cap;
    }
    int32_t i = s->free_head;
    s->free_head = s->rep[i].next;
    s->rep[i].inflight = 0;
    s->rep[i].in_avail = 0;
    s->rep[i].prev = s->rep[i].next = -1;
    return i;
}

static void rep_free(swarm_sim *s, int32_t i)
{
    replica *r = &s->rep[i];
    avail_del(s, i);
    r->state = R_FREE;
    r->gen++;
    r->next = s->free_head;
    s->free_head = i;
}

static void record_wait(swarm_sim *s, double w)
{
    if (w < 0)
        w = 0;
    s->sum_wait += w;
    if (w > s->max_wait)
        s->max_wait = w;
    if (w > s->slo)
        s->slo_miss++;
    if (w <= 0) {
        s->nzero++;
        return;
    }
    s->waited++;
    if (!grow(s, (void **)&s->waits, &s->waits_cap, s->nwaits + 1, sizeof(float),
              _Alignof(float))) {
        fail(s, SWARM_ENOMEM);
        return;
    }
    s->waits[s->nwaits++] = (float)w;
}

static void start_service(swarm_sim *s, int32_t i, qent e)
{
    replica *r = &s->rep[i];
    record_wait(s, s->now - e.arr);
    r->inflight++;
    s->inflight++;
    if (r->inflight >= s->k)
        avail_del(s, i);
    heap_push(s, (event){s->now + e.svc, e.arr, e.svc, (uint32_t)i, EV_DONE});
}

/* A ready replica with free slots takes queued work. */
static void fill(swarm_sim *s, int32_t i)
{
    while (s->qlen > 0 && s->rep[i].inflight < s->k)
        start_service(s, i, q_pop(s));
    if (s->rep[i].inflight < s->k)
        avail_add(s, i);
}

static double draw_service(swarm_sim *s)
{
    switch (s->o.service_dist) {
    case SWARM_SIM_DIST_FIXED:
        return s->svc_mean;
    case SWARM_SIM_DIST_LOGNORMAL:
        return exp(s->ln_mu + s->ln_sigma * rng_normal(&s->r_svc));
    default:
        return rng_exp(&s->r_svc, s->svc_mean);
    }
}

static int32_t alive(const swarm_sim *s)
{
    return s->n_starting + s->n_ready + s->n_retiring;
}

static void new_replica(swarm_sim *s, bool ready_now)
{
    int32_t i = rep_alloc(s);
    if (i < 0)
        return;
    replica *r = &s->rep[i];
    if (ready_now) {
        r->state = R_READY;
        r->ready_at = s->now;
        s->n_ready++;
        fill(s, i);
    } else {
        double j = s->o.startup_jitter_s > 0 ? s->o.startup_jitter_s * rng_u01(&s->r_start) : 0;
        r->state = R_STARTING;
        r->ready_at = s->now + s->o.startup_s + j;
        s->n_starting++;
        heap_push(s, (event){r->ready_at, 0, 0, (uint32_t)i, (r->gen << 1) | EV_READY});
    }
}

/* Makes the count of non-retiring replicas (the spec) @want. */
static void actuate(swarm_sim *s, int32_t want)
{
    if (want < 0)
        want = 0;
    if (want > s->cap)
        want = s->cap;
    int32_t cur = s->n_starting + s->n_ready;
    if (want == cur)
        return;
    int dir = want > cur ? 1 : -1;
    if (s->last_dir != 0 && dir != s->last_dir && s->now - s->last_change_t <= s->o.flap_window_s)
        s->flaps++;
    s->last_dir = dir;
    s->last_change_t = s->now;
    s->scale_events++;
    if (want > cur) {
        int32_t need = want - cur;
        /* Take back retiring replicas first: they are warm. */
        for (uint32_t i = 0; i < s->nrep_cap && need > 0 && s->n_retiring > 0; i++) {
            if (s->rep[i].state != R_RETIRING)
                continue;
            s->rep[i].state = R_READY;
            s->n_retiring--;
            s->n_ready++;
            need--;
            fill(s, (int32_t)i);
        }
        while (need-- > 0 && s->err == 0)
            new_replica(s, s->o.startup_s <= 0 && s->o.startup_jitter_s <= 0);
    } else {
        int32_t drop = cur - want;
        /* Starting replicas first, newest first: they have served nothing yet. */
        while (drop > 0 && s->n_starting > 0) {
            int32_t best = -1;
            for (uint32_t i = 0; i < s->nrep_cap; i++)
                if (s->rep[i].state == R_STARTING &&
                    (best < 0 || s->rep[i].ready_at > s->rep[best].ready_at))
                    best = (int32_t)i;
            rep_free(s, best);
            s->n_starting--;
            drop--;
        }
        /* Then idle ready replicas, then busy ones, which retire after their work. */
        for (int pass = 0; pass < 2 && drop > 0; pass++) {
            for (uint32_t i = s->nrep_cap; i-- > 0 && drop > 0;) {
                replica *r = &s->rep[i];
                if (r->state != R_READY || (pass == 0 && r->inflight > 0))
                    continue;
                s->n_ready--;
                drop--;
                if (r->inflight == 0) {
                    rep_free(s, (int32_t)i);
                } else {
                    avail_del(s, (int32_t)i);
                    r->state = R_RETIRING;
                    s->n_retiring++;
                }
            }
        }
    }
    if (alive(s) > s->peak)
        s->peak = alive(s);
}

/* Index of the trace row in force at @t (cursor moves forward only); SIZE_MAX before row 0. */
static size_t seg_at(const swarm_sim_trace *tr, double t, size_t *cur)
{
    size_t i = *cur;
    while (i + 1 < tr->n && tr->rows[i + 1].t_s <= t)
        i++;
    *cur = i;
    return t < tr->rows[0].t_s ? SIZE_MAX : i;
}

static double rate_at(swarm_sim *s, double t, size_t *cur)
{
    size_t i = seg_at(s->tr, t, cur);
    return i == SIZE_MAX ? 0 : s->tr->rows[i].rps;
}

static double next_arrival(swarm_sim *s, double t)
{
    const swarm_sim_trace *tr = s->tr;
    for (;;) {
        if (t >= s->end_t)
            return SIM_INF;
        size_t i = seg_at(tr, t, &s->arr_seg);
        double seg_end, r;
        if (i == SIZE_MAX) {
            seg_end = tr->rows[0].t_s;
            r = 0;
        } else {
            seg_end = i + 1 < tr->n ? tr->rows[i + 1].t_s : s->end_t;
            r = tr->rows[i].rps;
        }
        if (seg_end > s->end_t)
            seg_end = s->end_t;
        if (r > 0) {
            /* Memoryless: a draw that overshoots the segment is simply redrawn from its end
             * at the next rate. */
            double dt = rng_exp(&s->r_arr, 1.0 / r);
            if (t + dt < seg_end)
                return t + dt;
        }
        t = seg_end;
    }
}

/* Highest trace rate over [a, b]. */
static double max_rate(swarm_sim *s, double a, double b)
{
    size_t i = seg_at(s->tr, a, &s->or_seg);
    double m = i == SIZE_MAX ? 0 : s->tr->rows[i].rps;
    size_t j = i == SIZE_MAX ? 0 : i + 1;
    for (; j < s->tr->n && s->tr->rows[j].t_s <= b; j++)
        if (s->tr->rows[j].rps > m)
            m = s->tr->rows[j].rps;
    return m;
}

/* Replicas whose servers meet the SLO at rate @lam by Erlang C (capped at the count cap). */
static int32_t erlang_replicas(swarm_sim *s, double lam)
{
    int32_t c = 0;
    int64_t maxc = (int64_t)s->cap * s->k;
    swarm_sim_erlang_servers(lam * s->svc_mean, s->svc_mean, s->slo, s->o.slo_quantile,
                             maxc > INT32_MAX ? INT32_MAX : (int32_t)maxc, &c);
    return (int32_t)((c + s->k - 1) / s->k);
}

static int32_t oracle_count(swarm_sim *s, double t)
{
    return erlang_replicas(s, max_rate(s, t, t + s->lookahead));
}

static void advance(swarm_sim *s, double t1)
{
    double dt = t1 - s->now;
    if (dt <= 0)
        return;
    s->replica_s += alive(s) * dt;
    s->area += ((double)s->qlen + (double)s->inflight) * dt;
    if (s->qlen > 0) {
        double v = s->q[s->qhead].arr + s->slo;
        if (v < t1)
            s->slo_violation += t1 - (v > s->now ? v : s->now);
    }
    s->now = t1;
}

/* ---- host callbacks for the reconcile loop ---- */

static int sim_observe(void *ctx, swarm_policy_obs *obs)
{
    swarm_sim *s = ctx;
    double queued = (double)s->qlen, infl = (double)s->inflight, svc = s->service_total;
    uint64_t arr = s->arrivals, done = s->completions;
    if (s->nlag) {
        double to = s->now - s->o.metrics_lag_s;
        if (to < 0) {
            queued = infl = svc = 0;
            arr = done = 0;
        } else {
            int64_t kq = (int64_t)floor(to / SIM_LAG_DT + 1e-9);
            const snap *sn = &s->lag[(size_t)kq % s->nlag];
            if (sn->k == kq) {
                queued = sn->queued;
                infl = sn->in_flight;
                svc = sn->service_total;
                arr = sn->arrivals;
                done = sn->completions;
            }
        }
    }
    obs->current_replicas = s->n_starting + s->n_ready;
    obs->ready_replicas = s->n_ready;
    obs->starting_replicas = s->n_starting;
    obs->n_metrics = 1;
    obs->metrics[0].kind = SWARM_METRIC_TOTAL;
    obs->metrics[0].value = queued;
    obs->metrics[0].in_flight = infl;
    obs->metrics[0].target = s->target;
    obs->metrics[0].activation = 0;
    obs->arrivals = arr;
    obs->completions = done;
    obs->service_total_s = svc;
    obs->concurrency = s->k;
    return 0;
}

static int sim_actuate(void *ctx, int32_t desired, const swarm_policy_decision *d)
{
    swarm_sim *s = ctx;
    actuate(s, desired);
    if (s->o.on_scale)
        s->o.on_scale(s->o.on_scale_ctx, s->now, d);
    return 0;
}

/* ---- create / run ---- */

static int64_t default_interval_ns(uint32_t kind, uint32_t mode)
{
    const int64_t sec = INT64_C(1000000000);
    if (kind != SWARM_SIM_POLICY)
        return sec;
    switch (mode) {
    case SWARM_POLICY_KEDA:
        return 30 * sec;
    case SWARM_POLICY_HPA:
        return 15 * sec;
    case SWARM_POLICY_KPA:
        return 2 * sec;
    default:
        return sec;
    }
}

static bool fin_nonneg(double v)
{
    return isfinite(v) && v >= 0;
}

int swarm_sim_create(swarm_sim **out, const swarm_sim_trace *trace, const swarm_sim_opts *opts)
{
    if (out == NULL || trace == NULL || opts == NULL)
        return SWARM_EINVAL;
    swarm_sim_opts o;
    swarm_sim_opts_init(&o);
    int rc = SWARM__OPTS_COPY(sim_opts, &o, opts);
    if (rc < 0)
        return rc;
    if (o.kind == 0)
        o.kind = SWARM_SIM_POLICY;
    if (o.kind > SWARM_SIM_ORACLE || o.service_dist > SWARM_SIM_DIST_LOGNORMAL ||
        (o.kind == SWARM_SIM_POLICY && o.policy == NULL) || o.interval_ns < 0 ||
        (o.interval_ns > 0 && o.interval_ns < INT64_C(1000000)) || o.fixed_replicas < 0 ||
        o.initial_replicas < 0 || o.max_replicas < 0 || o.max_replicas > SIM_HARD_CAP ||
        !fin_nonneg(o.service_mean_s) || !fin_nonneg(o.service_cv) || !fin_nonneg(o.startup_s) ||
        !fin_nonneg(o.startup_jitter_s) || !fin_nonneg(o.metrics_lag_s) || !fin_nonneg(o.target) ||
        !fin_nonneg(o.slo_s) || !fin_nonneg(o.flap_window_s) || !isfinite(o.tail_s) ||
        !isfinite(o.slo_quantile) || o.slo_quantile < 0 || o.slo_quantile >= 1 ||
        o.concurrency > 1000000)
        return SWARM_EINVAL;
    if (o.kind == SWARM_SIM_FIXED && o.fixed_replicas > SIM_HARD_CAP)
        return SWARM_EINVAL;
    swarm_policy_opts po;
    memset(&po, 0, sizeof po);
    if (o.kind == SWARM_SIM_POLICY) {
        swarm_policy_opts_init(&po);
        rc = SWARM__OPTS_COPY(policy_opts, &po, o.policy);
        if (rc < 0)
            return rc;
    }
    o.policy = NULL;
    /* Resolve the defaults. */
    if (o.concurrency == 0)
        o.concurrency = 1;
    if (o.service_mean_s == 0)
        o.service_mean_s = 0.1;
    if (o.service_cv == 0)
        o.service_cv = 1.0;
    if (o.slo_s == 0)
        o.slo_s = 1.0;
    if (o.slo_quantile == 0)
        o.slo_quantile = 0.99;
    if (o.tail_s == 0)
        o.tail_s = 600;
    if (o.tail_s < 0)
        o.tail_s = 0;
    if (o.flap_window_s == 0)
        o.flap_window_s = 60;
    if (o.seed == 0)
        o.seed = 0x9e3779b97f4a7c15ull;
    if (o.interval_ns == 0)
        o.interval_ns = default_interval_ns(o.kind, po.mode);

    swarm_allocator a;
    rc = swarm__alloc_init(&a, o.alloc);
    if (rc < 0)
        return rc;
    swarm_sim *s = swarm__alloc(&a, sizeof *s, _Alignof(swarm_sim));
    if (s == NULL)
        return SWARM_ENOMEM;
    s->alloc = a;
    s->o = o;
    s->popts = po;
    s->tr = trace;
    s->k = o.concurrency;
    s->svc_mean = o.service_mean_s;
    double sig2 = log(1 + o.service_cv * o.service_cv);
    s->ln_sigma = sqrt(sig2);
    s->ln_mu = log(o.service_mean_s) - sig2 / 2;
    s->slo = o.slo_s;
    s->interval_s = (double)o.interval_ns / 1e9;
    s->end_t = trace->rows[trace->n - 1].t_s + o.tail_s;
    s->lookahead = o.startup_s + o.startup_jitter_s + s->interval_s;
    s->target =
        o.target > 0 ? o.target : (po.mode == SWARM_POLICY_KPA ? 0.7 : 1.0) * (double)o.concurrency;
    s->free_head = s->avail_head = -1;
    rng_seed(&s->r_arr, o.seed, 1);
    rng_seed(&s->r_svc, o.seed, 2);
    rng_seed(&s->r_start, o.seed, 3);

    /* Bounds of the count. */
    int32_t cap = o.max_replicas, minr = 0;
    if (o.kind == SWARM_SIM_POLICY) {
        minr = po.min_replicas > 0 ? po.min_replicas : (po.mode == SWARM_POLICY_HPA ? 1 : 0);
        if (cap == 0)
            cap = po.max_replicas > 0                                             ? po.max_replicas
                  : (po.mode == SWARM_POLICY_KEDA || po.mode == SWARM_POLICY_HPA) ? 100
                                                                                  : SIM_HARD_CAP;
    } else if (o.kind == SWARM_SIM_ORACLE && cap == 0) {
        cap = 1000;
    } else if (o.kind == SWARM_SIM_FIXED && cap == 0) {
        cap = SIM_HARD_CAP;
    }
    if (cap > SIM_HARD_CAP)
        cap = SIM_HARD_CAP;
    s->cap = cap;
    s->min_rep = minr;

    if (o.kind == SWARM_SIM_POLICY) {
        rc = swarm_policy_create(&s->pol, &po);
        if (rc == 0) {
            swarm_reconcile_opts ro;
            swarm_reconcile_opts_init(&ro);
            ro.policy = s->pol;
            ro.observe = sim_observe;
            ro.actuate = sim_actuate;
            ro.user = s;
            ro.interval_ns = o.interval_ns;
            ro.alloc = o.alloc;
            rc = swarm_reconcile_create(&s->loop, &ro);
        }
        if (rc < 0) {
            swarm_sim_destroy(s);
            return rc;
        }
    }
    if (o.metrics_lag_s > 0) {
        s->nlag = (size_t)ceil(o.metrics_lag_s / SIM_LAG_DT) + 3;
        s->lag = swarm__alloc(&a, s->nlag * sizeof *s->lag, _Alignof(snap));
        if (s->lag == NULL) {
            swarm_sim_destroy(s);
            return SWARM_ENOMEM;
        }
        for (size_t i = 0; i < s->nlag; i++)
            s->lag[i].k = -1;
    }
    *out = s;
    return 0;
}

void swarm_sim_destroy(swarm_sim *s)
{
    if (s == NULL)
        return;
    swarm_reconcile_destroy(s->loop);
    swarm_policy_destroy(s->pol);
    swarm_allocator a = s->alloc;
    swarm__free(&a, s->q, s->qcap * sizeof *s->q);
    swarm__free(&a, s->h, s->hcap * sizeof *s->h);
    swarm__free(&a, s->rep, s->nrep_cap * sizeof *s->rep);
    swarm__free(&a, s->waits, s->waits_cap * sizeof *s->waits);
    swarm__free(&a, s->tl, s->tlcap * sizeof *s->tl);
    swarm__free(&a, s->lag, s->nlag * sizeof *s->lag);
    swarm__free(&a, s, sizeof *s);
}

static void take_sample(swarm_sim *s)
{
    if (!grow(s, (void **)&s->tl, &s->tlcap, s->ntl + 1, sizeof(swarm_sim_sample),
              _Alignof(swarm_sim_sample))) {
        fail(s, SWARM_ENOMEM);
        return;
    }
    swarm_sim_sample *x = &s->tl[s->ntl++];
    memset(x, 0, sizeof *x);
    x->t_s = s->now;
    x->rate_rps = rate_at(s, s->now, &s->tl_seg);
    x->arrived = (uint32_t)(s->arrivals - s->arrivals_at_sample);
    s->arrivals_at_sample = s->arrivals;
    x->queued = (uint32_t)s->qlen;
    x->in_flight = (uint32_t)s->inflight;
    x->ready = s->n_ready;
    x->starting = s->n_starting;
    x->desired = s->desired;
    x->replicas = alive(s);
}

static void decide(swarm_sim *s)
{
    if (s->o.kind == SWARM_SIM_ORACLE) {
        int32_t want = oracle_count(s, s->now);
        if (want < s->min_rep)
            want = s->min_rep;
        s->desired = want > s->cap ? s->cap : want;
        s->decisions++;
        actuate(s, s->desired);
        s->next_dec = s->now + s->interval_s;
        return;
    }
    int64_t now_ns = swarm__double_to_ns(s->now * 1e9), next_ns = 0;
    swarm_reconcile_step(s->loop, now_ns, &next_ns);
    swarm_reconcile_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    if (swarm_reconcile_get_stats(s->loop, &st) == 0) {
        if (st.last_desired >= 0)
            s->desired = st.last_desired;
        s->decisions = st.decisions;
    }
    double nd = (double)next_ns / 1e9;
    s->next_dec = nd > s->now ? nd : s->now + s->interval_s;
}

/* k-th smallest of a[0..n) (quickselect, in place). */
static float select_k(float *a, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        float piv = a[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < piv)
                i++;
            while (a[j] > piv)
                j--;
            if (i <= j) {
                float t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return a[k];
    }
    return a[k];
}

static double pct(swarm_sim *s, double q)
{
    uint64_t n = s->nzero + s->nwaits;
    if (n == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)n);
    if (rank < 1)
        rank = 1;
    if (rank <= s->nzero)
        return 0;
    return (double)select_k(s->waits, s->nwaits, (size_t)(rank - 1 - s->nzero));
}

int swarm_sim_run(swarm_sim *s)
{
    if (s == NULL)
        return SWARM_EINVAL;
    if (s->state != 0)
        return SWARM_ESTATE;
    s->state = 2;
    s->now = 0;
    /* Initial replicas, ready at t = 0. */
    int32_t init = s->o.initial_replicas;
    if (s->o.kind == SWARM_SIM_FIXED)
        init = s->o.fixed_replicas;
    else if (s->o.kind == SWARM_SIM_ORACLE && init == 0)
        init = oracle_count(s, 0);
    else if (s->o.warm_start && init == 0)
        init = erlang_replicas(s, rate_at(s, 0, &s->tl_seg));
    if (init < s->min_rep)
        init = s->min_rep;
    if (init > s->cap)
        init = s->cap;
    for (int32_t i = 0; i < init && s->err == 0; i++)
        new_replica(s, true);
    s->desired = init;
    s->peak = init;
    s->next_arr = next_arrival(s, 0);
    /* A warm start also means the loop has been running: its first tick is one interval in,
     * when the replicas carry the load they were sized for (deciding at t = 0 on an empty
     * queue would undo the warm start at once). */
    s->next_dec = s->o.kind == SWARM_SIM_FIXED                       ? SIM_INF
                  : s->o.warm_start && s->o.kind == SWARM_SIM_POLICY ? s->interval_s
                                                                     : 0;
    s->next_tl = s->o.no_timeline ? SIM_INF : 0;
    s->next_lag = s->nlag ? 0 : SIM_INF;
    int64_t lag_k = 0, tl_k = 0;

    while (s->err == 0) {
        double te = s->hlen ? s->h[0].t : SIM_INF;
        double t = te;
        if (s->next_arr < t)
            t = s->next_arr;
        if (s->next_lag < t)
            t = s->next_lag;
        if (s->next_tl < t)
            t = s->next_tl;
        if (s->next_dec < t)
            t = s->next_dec;
        if (t > s->end_t)
            break;
        advance(s, t);
        if (te == t) {
            event e = heap_pop(s);
            replica *r = &s->rep[e.rep];
            if ((e.type_gen & 1) == EV_READY) {
                if (r->state == R_STARTING && r->gen == (e.type_gen >> 1)) {
                    r->state = R_READY;
                    s->n_starting--;
                    s->n_ready++;
                    fill(s, (int32_t)e.rep);
                }
                continue;
            }
            s->completions++;
            s->service_total += e.svc;
            s->sum_sojourn += t - e.arr;
            s->inflight--;
            r->inflight--;
            if (r->state == R_RETIRING) {
                if (r->inflight == 0) {
                    s->n_retiring--;
                    rep_free(s, (int32_t)e.rep);
                }
            } else {
                fill(s, (int32_t)e.rep);
            }
            continue;
        }
        if (s->next_arr == t) {
            s->arrivals++;
            qent q = {t, draw_service(s)};
            if (s->avail_head >= 0) {
                start_service(s, s->avail_head, q);
            } else if (s->o.queue_cap && s->qlen >= s->o.queue_cap) {
                s->dropped++;
            } else {
                q_push(s, q);
            }
            s->next_arr = next_arrival(s, t);
            continue;
        }
        if (s->next_lag == t) {
            snap *sn = &s->lag[(size_t)lag_k % s->nlag];
            *sn = (snap){lag_k,       (double)s->qlen, (double)s->inflight, s->service_total,
                         s->arrivals, s->completions};
            lag_k++;
            s->next_lag = (double)lag_k * SIM_LAG_DT;
            continue;
        }
        if (s->next_dec == t) {
            decide(s);
            continue;
        }
        take_sample(s);
        tl_k++;
        s->next_tl = (double)tl_k;
    }
    if (s->err)
        return s->err;
    advance(s, s->end_t);

    /* Requests still queued count with their wait so far; in-flight ones already have theirs. */
    double unfinished_sojourn = 0;
    for (size_t i = 0; i < s->qlen; i++) {
        double arr = s->q[(s->qhead + i) % s->qcap].arr;
        record_wait(s, s->end_t - arr);
        unfinished_sojourn += s->end_t - arr;
    }
    for (size_t i = 0; i < s->hlen; i++)
        if ((s->h[i].type_gen & 1) == EV_DONE)
            unfinished_sojourn += s->end_t - s->h[i].arr;
    if (s->err)
        return s->err;

    swarm_sim_result *r = &s->res;
    memset(r, 0, sizeof *r);
    r->size = sizeof *r;
    uint64_t accepted = s->arrivals - s->dropped;
    uint64_t nw = s->nzero + s->nwaits;
    r->p50_wait_s = pct(s, 0.50);
    r->p95_wait_s = pct(s, 0.95);
    r->p99_wait_s = pct(s, 0.99);
    r->max_wait_s = s->max_wait;
    r->mean_wait_s = nw ? s->sum_wait / (double)nw : 0;
    r->waited_frac = nw ? (double)s->waited / (double)nw : 0;
    r->slo_miss_frac = nw ? (double)s->slo_miss / (double)nw : 0;
    r->slo_violation_s = s->slo_violation;
    r->replica_seconds = s->replica_s;
    r->sim_seconds = s->end_t;
    r->mean_in_system = s->end_t > 0 ? s->area / s->end_t : 0;
    r->mean_sojourn_s = accepted ? (s->sum_sojourn + unfinished_sojourn) / (double)accepted : 0;
    r->arrivals = s->arrivals;
    r->completions = s->completions;
    r->dropped = s->dropped;
    r->unfinished = s->qlen + s->inflight;
    r->max_queue = s->max_queue;
    r->decisions = s->decisions;
    r->flaps = s->flaps;
    r->scale_events = s->scale_events;
    r->peak_replicas = s->peak;
    s->state = 1;
    return 0;
}

int swarm_sim_get_result(const swarm_sim *s, swarm_sim_result *out)
{
    if (s == NULL || out == NULL || out->size < offsetof(swarm_sim_result, p50_wait_s))
        return SWARM_EINVAL;
    if (s->state != 1)
        return SWARM_ESTATE;
    uint32_t size = out->size;
    memcpy(out, &s->res, size < sizeof s->res ? size : sizeof s->res);
    out->size = size;
    return 0;
}

size_t swarm_sim_timeline_len(const swarm_sim *s)
{
    return s && s->state == 1 ? s->ntl : 0;
}

int swarm_sim_get_timeline(const swarm_sim *s, size_t first, swarm_sim_sample *buf, size_t n)
{
    if (s == NULL || (buf == NULL && n > 0))
        return SWARM_EINVAL;
    size_t len = swarm_sim_timeline_len(s);
    if (first >= len)
        return 0;
    if (n > len - first)
        n = len - first;
    if (n > INT32_MAX)
        n = INT32_MAX;
    memcpy(buf, s->tl + first, n * sizeof *buf);
    return (int)n;
}

/* ---- custom policy configuration ------------------------------------------------------------ */

enum { T_I32, T_U32, T_F64, T_NS, T_MODE, T_DISABLE, T_SELECT, T_RATES, T_HPAPATH, T_FALLBACK };
enum { W_POL, W_SIM };

typedef struct cfg_key {
    const char *name;
    uint8_t where, type;
    size_t off;
} cfg_key;

#define PK(n, t, f)                                                                                \
    {                                                                                              \
        n, W_POL, t, offsetof(swarm_policy_opts, f)                                                \
    }
#define SK(n, t, f)                                                                                \
    {                                                                                              \
        n, W_SIM, t, offsetof(swarm_sim_opts, f)                                                   \
    }
static const cfg_key cfg_keys[] = {
    PK("mode", T_MODE, mode),
    PK("min_replicas", T_I32, min_replicas),
    PK("max_replicas", T_I32, max_replicas),
    PK("history_cap", T_U32, history_cap),
    PK("disable", T_DISABLE, disable),
    PK("pause", T_U32, pause),
    PK("paused_replicas", T_I32, paused_replicas),
    PK("tolerance", T_F64, tolerance),
    PK("cooldown_s", T_NS, cooldown_ns),
    PK("initial_cooldown_s", T_NS, initial_cooldown_ns),
    PK("idle_replicas", T_I32, idle_replicas),
    PK("use_idle", T_U32, use_idle),
    PK("fallback_failures", T_U32, fallback_failures),
    PK("fallback_behavior", T_FALLBACK, fallback_behavior),
    PK("fallback_replicas", T_I32, fallback_replicas),
    PK("hpa_path", T_HPAPATH, hpa_path),
    PK("scale_up.window_s", T_NS, scale_up.window_ns),
    PK("scale_up.select", T_SELECT, scale_up.select),
    PK("scale_up.policies", T_RATES, scale_up),
    PK("scale_up.tolerance", T_F64, scale_up.tolerance),
    PK("scale_down.window_s", T_NS, scale_down.window_ns),
    PK("scale_down.select", T_SELECT, scale_down.select),
    PK("scale_down.policies", T_RATES, scale_down),
    PK("scale_down.tolerance", T_F64, scale_down.tolerance),
    PK("legacy_window_s", T_NS, legacy_window_ns),
    PK("legacy_factor", T_F64, legacy_factor),
    PK("legacy_minimum", T_F64, legacy_minimum),
    PK("stable_window_s", T_NS, stable_window_ns),
    PK("panic_window_pct", T_F64, panic_window_pct),
    PK("panic_threshold_pct", T_F64, panic_threshold_pct),
    PK("max_scale_up_rate", T_F64, max_scale_up_rate),
    PK("max_scale_down_rate", T_F64, max_scale_down_rate),
    PK("scale_down_delay_s", T_NS, scale_down_delay_ns),
    PK("activation_scale", T_I32, activation_scale),
    PK("unreachable", T_U32, unreachable),
    PK("target_burst_capacity", T_F64, target_burst_capacity),
    PK("total_value", T_F64, total_value),
    PK("zero_grace_s", T_NS, zero_grace_ns),
    PK("pending_hold_max_s", T_NS, pending_hold_max_ns),
    PK("load_wait_s", T_NS, load_wait_ns),
    PK("load_percentile", T_F64, load_percentile),
    PK("load_drain_s", T_NS, load_drain_ns),
    PK("load_service_prior_s", T_NS, load_service_prior_ns),
    PK("load_rate_tau_s", T_NS, load_rate_tau_ns),
    PK("load_down_window_s", T_NS, load_down_window_ns),
    PK("load_down_band", T_F64, load_down_band),
    SK("interval_s", T_NS, interval_ns),
    SK("target", T_F64, target),
    SK("concurrency", T_U32, concurrency),
    SK("initial_replicas", T_I32, initial_replicas),
    SK("metrics_lag_s", T_F64, metrics_lag_s),
};

static bool streq_n(const char *a, size_t n, const char *b)
{
    return strlen(b) == n && memcmp(a, b, n) == 0;
}

static bool parse_int(const char *v, long long lo, long long hi, long long *out)
{
    char *e = NULL;
    long long x = strtoll(v, &e, 0);
    if (e == v || *e != 0 || x < lo || x > hi)
        return false;
    *out = x;
    return true;
}

static bool parse_rates(const char *v, swarm_policy_hpa_rules *r)
{
    /* "pods:4:15,percent:100:15" (type:value:period_s) */
    uint32_t n = 0;
    const char *p = v;
    while (*p) {
        if (n == SWARM_POLICY_MAX_RATES)
            return false;
        char buf[64];
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (len == 0 || len >= sizeof buf)
            return false;
        memcpy(buf, p, len);
        buf[len] = 0;
        char *a = strchr(buf, ':'), *b = a ? strchr(a + 1, ':') : NULL;
        if (!a || !b)
            return false;
        *a = *b = 0;
        long long val = 0;
        double per = 0;
        uint32_t type;
        if (strcmp(buf, "pods") == 0)
            type = SWARM_RATE_PODS;
        else if (strcmp(buf, "percent") == 0)
            type = SWARM_RATE_PERCENT;
        else
            return false;
        if (!parse_int(a + 1, 1, INT32_MAX, &val) || !parse_num(b + 1, b + 1 + strlen(b + 1), &per))
            return false;
        r->policies[n].type = type;
        r->policies[n].value = (int32_t)val;
        r->policies[n].period_ns = swarm__double_to_ns(per * 1e9);
        n++;
        p = c ? c + 1 : p + len;
    }
    r->n_policies = n;
    return n > 0;
}

static bool set_key(const cfg_key *k, const char *v, swarm_sim_opts *sim, swarm_policy_opts *pol)
{
    char *base = k->where == W_POL ? (char *)pol : (char *)sim;
    void *f = base + k->off;
    long long iv = 0;
    double dv = 0;
    switch (k->type) {
    case T_I32:
        if (!parse_int(v, INT32_MIN, INT32_MAX, &iv))
            return false;
        *(int32_t *)f = (int32_t)iv;
        return true;
    case T_U32:
        if (!parse_int(v, 0, UINT32_MAX, &iv))
            return false;
        *(uint32_t *)f = (uint32_t)iv;
        return true;
    case T_F64:
        if (!parse_num(v, v + strlen(v), &dv))
            return false;
        *(double *)f = dv;
        return true;
    case T_NS:
        if (!parse_num(v, v + strlen(v), &dv))
            return false;
        *(int64_t *)f = swarm__double_to_ns(dv * 1e9);
        return true;
    case T_MODE:
        if (strcmp(v, "keda") == 0)
            iv = SWARM_POLICY_KEDA;
        else if (strcmp(v, "hpa") == 0)
            iv = SWARM_POLICY_HPA;
        else if (strcmp(v, "kpa") == 0)
            iv = SWARM_POLICY_KPA;
        else if (strcmp(v, "load") == 0 || strcmp(v, "recommended") == 0)
            iv = SWARM_POLICY_LOAD;
        else
            return false;
        *(uint32_t *)f = (uint32_t)iv;
        return true;
    case T_DISABLE:
        if (strcmp(v, "strict") == 0)
            iv = SWARM_POLICY_STRICT_UPSTREAM;
        else if (strcmp(v, "none") == 0)
            iv = 0;
        else if (!parse_int(v, 0, UINT32_MAX, &iv))
            return false;
        *(uint32_t *)f = (uint32_t)iv;
        return true;
    case T_SELECT:
        if (strcmp(v, "max") == 0)
            iv = SWARM_POLICY_SELECT_MAX;
        else if (strcmp(v, "min") == 0)
            iv = SWARM_POLICY_SELECT_MIN;
        else if (strcmp(v, "disabled") == 0)
            iv = SWARM_POLICY_SELECT_DISABLED;
        else
            return false;
        *(uint32_t *)f = (uint32_t)iv;
        return true;
    case T_RATES:
        return parse_rates(v, (swarm_policy_hpa_rules *)f);
    case T_HPAPATH:
        if (strcmp(v, "auto") == 0)
            iv = SWARM_POLICY_HPA_AUTO;
        else if (strcmp(v, "behavior") == 0)
            iv = SWARM_POLICY_HPA_BEHAVIOR;
        else if (strcmp(v, "legacy") == 0)
            iv = SWARM_POLICY_HPA_LEGACY;
        else
            return false;
        *(uint32_t *)f = (uint32_t)iv;
        return true;
    case T_FALLBACK:
        if (strcmp(v, "static") == 0)
            iv = SWARM_FALLBACK_STATIC;
        else if (strcmp(v, "current") == 0)
            iv = SWARM_FALLBACK_CURRENT;
        else if (strcmp(v, "current_if_higher") == 0)
            iv = SWARM_FALLBACK_CURRENT_IF_HIGHER;
        else if (strcmp(v, "current_if_lower") == 0)
            iv = SWARM_FALLBACK_CURRENT_IF_LOWER;
        else
            return false;
        *(uint32_t *)f = (uint32_t)iv;
        return true;
    default:
        return false;
    }
}

int swarm_sim_config_parse(const char *text, size_t len, swarm_sim_opts *sim,
                           swarm_policy_opts *policy, uint32_t *err_line)
{
    if (err_line)
        *err_line = 0;
    if ((text == NULL && len > 0) || sim == NULL || policy == NULL || sim->size < sizeof *sim ||
        policy->size < sizeof *policy)
        return SWARM_EINVAL;
    const char *p = text, *end = text + len;
    uint32_t line = 0;
    while (p < end) {
        line++;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *a = p;
        while (a < le && (*a == ' ' || *a == '\t' || *a == '\r'))
            a++;
        const char *b = le;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t' || b[-1] == '\r'))
            b--;
        p = nl ? nl + 1 : end;
        if (a == b || *a == '#')
            continue;
        const char *eq = memchr(a, '=', (size_t)(b - a));
        bool ok = eq != NULL;
        if (ok) {
            const char *ke = eq;
            while (ke > a && (ke[-1] == ' ' || ke[-1] == '\t'))
                ke--;
            const char *v = eq + 1;
            while (v < b && (*v == ' ' || *v == '\t'))
                v++;
            char val[256];
            size_t vl = (size_t)(b - v);
            ok = vl > 0 && vl < sizeof val;
            const cfg_key *k = NULL;
            for (size_t i = 0; ok && i < sizeof cfg_keys / sizeof cfg_keys[0]; i++)
                if (streq_n(a, (size_t)(ke - a), cfg_keys[i].name))
                    k = &cfg_keys[i];
            ok = ok && k != NULL;
            if (ok) {
                memcpy(val, v, vl);
                val[vl] = 0;
                ok = set_key(k, val, sim, policy);
            }
        }
        if (!ok) {
            if (err_line)
                *err_line = line;
            return SWARM_EINVAL;
        }
    }
    return 0;
}
