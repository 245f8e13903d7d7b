/* SPDX-License-Identifier: MIT */
/*
 * Circuit breaker decorator (resilience4j's state machine): CLOSED records outcomes in a count or
 * time window and opens on a failure rate; OPEN fails fast until open_ns has passed; HALF_OPEN
 * admits a fixed number of probes whose outcomes decide CLOSED or OPEN.
 *
 * Lock order: `mu` is a leaf; the transition callback and the inner engine run without it.
 * Every transition bumps `gen`, so an outcome that returns after the state it was admitted in
 * has ended is dropped rather than polluting the new state's counts.
 */
#include <string.h>

#include "engine_internal.h"
#include "opts_v1.h"
#include "platform.h"

typedef struct bucket {
    int64_t sec;
    uint32_t calls, fails;
} bucket;

typedef struct breaker_engine {
    swarm_engine *inner;
    swarm_breaker_opts o;
    swarm_clock_fn clock;
    void *clock_ctx;
    swarm_allocator alloc;
    swarm__scratch_pool scratch; /* batch scratch blocks (breaker_scratch) */
    swarm__mutex mu;
    /* Guarded by mu. */
    int state;
    bool need_clock; /* slow calls or a time window: read the clock on every call */
    uint64_t gen;
    int64_t since_ns;
    uint8_t *ring;           /* COUNT: outcomes, 1 = failure */
    bucket *buckets;         /* TIME: one per second */
    uint32_t head, n, fails; /* ring head; outcomes and failures in the window */
    int64_t last_sec;        /* TIME: the newest second the buckets describe */
    uint32_t probes_issued, probes_done, probe_fails;
    uint64_t calls, rejected, failures, slow_calls, transitions, opened;
} breaker_engine;

typedef struct permit {
    uint64_t gen;
    int state;
    int64_t start_ns;
} permit;

typedef struct transition {
    int from, to;
    int64_t at;
} transition;

int swarm_breaker_opts_init(swarm_breaker_opts *opts)
{
    if (opts == NULL)
        return SWARM_EINVAL;
    memset(opts, 0, sizeof *opts);
    opts->size = (uint32_t)sizeof *opts;
    opts->window_kind = SWARM_BREAKER_WINDOW_COUNT;
    opts->window_size = 100;
    opts->minimum_calls = 20;
    opts->failure_rate_pct = 50;
    opts->half_open_probes = 10;
    opts->open_ns = (int64_t)30 * 1000000000;
    return 0;
}

static void window_clear(breaker_engine *b)
{
    b->head = b->n = b->fails = 0;
    if (b->buckets != NULL)
        memset(b->buckets, 0, sizeof(bucket) * b->o.window_size);
}

static void set_state(breaker_engine *b, int to, int64_t now, transition *tr, int *ntr)
{
    if (!b->need_clock && now == 0)
        now = b->clock(b->clock_ctx); /* transitions are rare: read the clock only here */
    tr[*ntr].from = b->state;
    tr[*ntr].to = to;
    tr[*ntr].at = now;
    (*ntr)++;
    b->state = to;
    b->since_ns = now;
    b->gen++;
    b->transitions++;
    if (to == SWARM_BREAKER_OPEN)
        b->opened++;
    b->probes_issued = b->probes_done = b->probe_fails = 0;
    if (to == SWARM_BREAKER_CLOSED)
        window_clear(b);
}

/*
 * Time window: one bucket per second in a ring, with running totals. Advancing to a new second
 * expires the buckets that fell out of the window, at most window_size of them however long the
 * gap, so the cost per call is amortized O(1). Called with mu held.
 */
static void time_advance(breaker_engine *b, int64_t now)
{
    int64_t sec = now / 1000000000;
    if (sec <= b->last_sec)
        return;
    int64_t steps = sec - b->last_sec;
    if (steps > (int64_t)b->o.window_size)
        steps = b->o.window_size;
    for (int64_t s = sec - steps + 1; s <= sec; s++) {
        bucket *k = &b->buckets[(uint64_t)s % b->o.window_size];
        b->n -= k->calls;
        b->fails -= k->fails;
        k->calls = k->fails = 0;
        k->sec = s;
    }
    b->last_sec = sec;
}

static void time_totals(breaker_engine *b, int64_t now, uint32_t *calls, uint32_t *fails)
{
    time_advance(b, now);
    *calls = b->n;
    *fails = b->fails;
}

static void window_add(breaker_engine *b, bool fail, int64_t now, uint32_t *calls, uint32_t *fails)
{
    if (b->o.window_kind == SWARM_BREAKER_WINDOW_COUNT) {
        if (b->n == b->o.window_size) {
            b->fails -= b->ring[b->head];
        } else {
            b->n++;
        }
        b->ring[b->head] = fail;
        b->fails += fail;
        b->head = (b->head + 1) % b->o.window_size;
        *calls = b->n;
        *fails = b->fails;
        return;
    }
    time_advance(b, now);
    bucket *k = &b->buckets[(uint64_t)(now / 1000000000) % b->o.window_size];
    k->calls++;
    k->fails += fail;
    b->n++;
    b->fails += fail;
    *calls = b->n;
    *fails = b->fails;
}

/* Moves OPEN to HALF_OPEN once the open period is over. Called with mu held. */
static void maybe_half_open(breaker_engine *b, int64_t now, transition *tr, int *ntr)
{
    if (b->state == SWARM_BREAKER_OPEN && swarm__time_sub(now, b->since_ns) >= b->o.open_ns)
        set_state(b, SWARM_BREAKER_HALF_OPEN, now, tr, ntr);
}

static void notify(breaker_engine *b, const transition *tr, int ntr)
{
    if (b->o.on_transition == NULL)
        return;
    for (int i = 0; i < ntr; i++)
        b->o.on_transition(b->o.transition_ctx, tr[i].from, tr[i].to, tr[i].at);
}

/* Returns 0 and fills @p p if the call may go ahead, else SWARM_EBREAKER_OPEN with the remaining
 * open time in @p retry_after. */
static int acquire(breaker_engine *b, permit *p, int64_t *retry_after)
{
    transition tr[2] = {{0, 0, 0}, {0, 0, 0}};
    int ntr = 0, rc = 0;
    /* The clock is read only when the outcome needs it: slow-call detection, a time window, or
     * a breaker that is not closed. A closed count-window breaker reads no clock at all. */
    int64_t now = b->need_clock ? b->clock(b->clock_ctx) : 0;
    swarm__mutex_lock(&b->mu);
    if (!b->need_clock && b->state != SWARM_BREAKER_CLOSED)
        now = b->clock(b->clock_ctx); /* a cheap hook; documented as called under the lock */
    maybe_half_open(b, now, tr, &ntr);
    if (b->state == SWARM_BREAKER_OPEN) {
        rc = SWARM_EBREAKER_OPEN;
        /* Saturating: open_ns may be INT64_MAX ("open until reset"). */
        *retry_after = swarm__time_sub(swarm__time_add(b->since_ns, b->o.open_ns), now);
    } else if (b->state == SWARM_BREAKER_HALF_OPEN) {
        if (b->probes_issued < b->o.half_open_probes) {
            b->probes_issued++;
        } else {
            rc = SWARM_EBREAKER_OPEN;
            *retry_after = 0;
        }
    }
    if (rc == 0) {
        b->calls++;
        p->gen = b->gen;
        p->state = b->state;
        p->start_ns = now;
    } else {
        b->rejected++;
    }
    swarm__mutex_unlock(&b->mu);
    notify(b, tr, ntr);
    return rc;
}

static void record(breaker_engine *b, const permit *p, int rc)
{
    transition tr[2] = {{0, 0, 0}, {0, 0, 0}};
    int ntr = 0;
    int64_t now = b->need_clock ? b->clock(b->clock_ctx) : 0;
    bool ignored = rc < 0 && !swarm_engine_error_is_failure(rc);
    bool slow =
        rc == 0 && b->o.slow_call_ns > 0 && swarm__time_sub(now, p->start_ns) > b->o.slow_call_ns;
    bool fail = swarm_engine_error_is_failure(rc) || slow;
    swarm__mutex_lock(&b->mu);
    if (!ignored) {
        b->failures += fail;
        b->slow_calls += slow;
    }
    if (p->gen != b->gen) {
        /* Admitted under a state that has since ended: drop the outcome. */
    } else if (p->state == SWARM_BREAKER_HALF_OPEN) {
        if (ignored) {
            b->probes_issued--; /* give the permit back */
        } else {
            b->probes_done++;
            b->probe_fails += fail;
            if (b->probes_done >= b->o.half_open_probes) {
                bool open = (uint64_t)b->probe_fails * 100 >=
                            (uint64_t)b->o.failure_rate_pct * b->probes_done;
                set_state(b, open ? SWARM_BREAKER_OPEN : SWARM_BREAKER_CLOSED, now, tr, &ntr);
            }
        }
    } else if (!ignored) {
        uint32_t calls, fails;
        window_add(b, fail, now, &calls, &fails);
        if (calls >= b->o.minimum_calls &&
            (uint64_t)fails * 100 >= (uint64_t)b->o.failure_rate_pct * calls)
            set_state(b, SWARM_BREAKER_OPEN, now, tr, &ntr);
    }
    swarm__mutex_unlock(&b->mu);
    notify(b, tr, ntr);
}

static int breaker_infer(void *self, const swarm_request *req, swarm_response *resp)
{
    breaker_engine *b = self;
    permit p;
    int64_t retry_after = 0;
    if (acquire(b, &p, &retry_after) != 0) {
        swarm__resp_fail(resp, SWARM_EBREAKER_OPEN, "circuit breaker open",
                         retry_after > 0 ? retry_after : 0);
        return SWARM_EBREAKER_OPEN;
    }
    int rc = swarm__engine_call(b->inner, req, resp);
    record(b, &p, rc);
    return rc;
}

/* Per-call scratch of the batch path (one chunk), from the decorator's scratch pool. */
typedef struct breaker_scratch {
    const swarm_request *rq[SWARM__BATCH_CHUNK];
    swarm_response *rs[SWARM__BATCH_CHUNK];
    permit ps[SWARM__BATCH_CHUNK];
} breaker_scratch;

static void breaker_chunks(breaker_engine *b, const swarm_request *const *reqs,
                           swarm_response *const *resps, size_t n, const swarm_request **rq,
                           swarm_response **rs, permit *ps, size_t cap)
{
    for (size_t base = 0; base < n; base += cap) {
        size_t m = n - base < cap ? n - base : cap, k = 0;
        for (size_t i = 0; i < m; i++) {
            int64_t retry_after = 0;
            if (acquire(b, &ps[k], &retry_after) != 0) {
                swarm__resp_fail(resps[base + i], SWARM_EBREAKER_OPEN, "circuit breaker open",
                                 retry_after > 0 ? retry_after : 0);
                continue;
            }
            rq[k] = reqs[base + i];
            rs[k] = resps[base + i];
            k++;
        }
        if (k == 0)
            continue;
        swarm__engine_call_batch(b->inner, rq, rs, k);
        for (size_t i = 0; i < k; i++)
            record(b, &ps[i], rs[i]->err_code);
    }
}

/* Without a pooled scratch block (allocation failed): small chunks on the stack. */
static SWARM_NOINLINE void breaker_chunks_small(breaker_engine *b, const swarm_request *const *reqs,
                                                swarm_response *const *resps, size_t n)
{
    const swarm_request *rq[SWARM__BATCH_SMALL];
    swarm_response *rs[SWARM__BATCH_SMALL];
    permit ps[SWARM__BATCH_SMALL];
    breaker_chunks(b, reqs, resps, n, rq, rs, ps, SWARM__BATCH_SMALL);
}

static int breaker_infer_batch(void *self, const swarm_request *const *reqs,
                               swarm_response *const *resps, size_t n)
{
    breaker_engine *b = self;
    breaker_scratch *s = swarm__scratch_get(&b->scratch);
    if (s == NULL) {
        breaker_chunks_small(b, reqs, resps, n);
        return 0;
    }
    breaker_chunks(b, reqs, resps, n, s->rq, s->rs, s->ps, SWARM__BATCH_CHUNK);
    swarm__scratch_put(&b->scratch, s);
    return 0;
}

static int breaker_cancel(void *self, uint64_t id)
{
    return swarm_engine_cancel(((breaker_engine *)self)->inner, id);
}

static int breaker_health(void *self)
{
    breaker_engine *b = self;
    transition tr[2] = {{0, 0, 0}, {0, 0, 0}};
    int ntr = 0;
    int64_t now = b->clock(b->clock_ctx);
    swarm__mutex_lock(&b->mu);
    maybe_half_open(b, now, tr, &ntr);
    int st = b->state;
    swarm__mutex_unlock(&b->mu);
    notify(b, tr, ntr);
    if (st == SWARM_BREAKER_OPEN)
        return SWARM_EBREAKER_OPEN;
    return swarm_engine_health(b->inner);
}

static void breaker_free(breaker_engine *b)
{
    swarm_allocator a = b->alloc;
    swarm__scratch_fini(&b->scratch); /* also safe on a pool never initialised (zeroed) */
    swarm__free(&a, b->ring, b->o.window_size);
    swarm__free(&a, b->buckets, sizeof(bucket) * b->o.window_size);
    swarm__free(&a, b, sizeof *b);
}

static void breaker_destroy(void *self)
{
    breaker_engine *b = self;
    swarm_engine_destroy(b->inner);
    swarm__mutex_destroy(&b->mu);
    breaker_free(b);
}

static const swarm_engine_ops breaker_ops = {
    .version = SWARM_ENGINE_OPS_VERSION,
    .infer = breaker_infer,
    .infer_batch = breaker_infer_batch,
    .cancel = breaker_cancel,
    .health = breaker_health,
    .destroy = breaker_destroy,
};

int swarm_engine_breaker_create(swarm_engine **out, swarm_engine *inner,
                                const swarm_breaker_opts *opts)
{
    swarm_breaker_opts o;
    swarm_breaker_opts_init(&o);
    if (out == NULL || inner == NULL)
        return SWARM_EINVAL;
    if (opts != NULL && SWARM__OPTS_COPY(breaker_opts, &o, opts) != 0)
        return SWARM_EINVAL;
    if (o.window_kind > SWARM_BREAKER_WINDOW_TIME || o.window_size == 0 || o.window_size > 10000 ||
        o.failure_rate_pct == 0 || o.failure_rate_pct > 100 || o.open_ns < 0 || o.slow_call_ns < 0)
        return SWARM_EINVAL;
    if (o.half_open_probes == 0)
        o.half_open_probes = 10;
    if (o.open_ns == 0)
        o.open_ns = (int64_t)30 * 1000000000;
    swarm_allocator a;
    if (swarm__alloc_init(&a, o.alloc) != 0)
        return SWARM_EINVAL;
    breaker_engine *b = swarm__alloc(&a, sizeof *b, _Alignof(breaker_engine));
    if (b == NULL)
        return SWARM_ENOMEM;
    b->o = o;
    b->alloc = a;
    b->inner = inner;
    b->clock = o.clock != NULL ? o.clock : swarm__engine_clock;
    b->clock_ctx = o.clock_ctx;
    if (o.window_kind == SWARM_BREAKER_WINDOW_COUNT)
        b->ring = swarm__alloc(&a, o.window_size, 1);
    else
        b->buckets = swarm__alloc(&a, sizeof(bucket) * o.window_size, _Alignof(bucket));
    if ((b->ring == NULL && b->buckets == NULL) ||
        swarm__scratch_init(&b->scratch, &a, sizeof(breaker_scratch)) != 0 ||
        swarm__mutex_init(&b->mu) != 0) {
        breaker_free(b);
        return SWARM_ENOMEM;
    }
    b->state = SWARM_BREAKER_CLOSED;
    b->need_clock = o.slow_call_ns > 0 || o.window_kind == SWARM_BREAKER_WINDOW_TIME;
    b->since_ns = b->clock(b->clock_ctx);
    char name[SWARM__NAME_MAX];
    swarm__engine_name2(name, "breaker", inner, NULL);
    int rc = swarm__engine_wrap(out, &breaker_ops, b, SWARM__ENGINE_BREAKER, o.alloc, name);
    if (rc != 0) {
        swarm__mutex_destroy(&b->mu);
        breaker_free(b);
    }
    return rc;
}

int swarm_engine_breaker_state(swarm_engine *e)
{
    if (e == NULL || e->kind != SWARM__ENGINE_BREAKER)
        return SWARM_EINVAL;
    breaker_engine *b = e->self;
    transition tr[2] = {{0, 0, 0}, {0, 0, 0}};
    int ntr = 0;
    int64_t now = b->clock(b->clock_ctx);
    swarm__mutex_lock(&b->mu);
    maybe_half_open(b, now, tr, &ntr);
    int st = b->state;
    swarm__mutex_unlock(&b->mu);
    notify(b, tr, ntr);
    return st;
}

int swarm_engine_breaker_get_stats(swarm_engine *e, swarm_breaker_stats *stats)
{
    if (e == NULL || e->kind != SWARM__ENGINE_BREAKER || stats == NULL ||
        stats->size < offsetof(swarm_breaker_stats, calls))
        return SWARM_EINVAL;
    breaker_engine *b = e->self;
    swarm_breaker_stats s;
    memset(&s, 0, sizeof s);
    int st = swarm_engine_breaker_state(e);
    int64_t now = b->clock(b->clock_ctx);
    swarm__mutex_lock(&b->mu);
    s.state = st;
    if (b->o.window_kind == SWARM_BREAKER_WINDOW_COUNT) {
        s.window_calls = b->n;
        s.window_failures = b->fails;
    } else {
        time_totals(b, now, &s.window_calls, &s.window_failures);
    }
    s.calls = b->calls;
    s.rejected = b->rejected;
    s.failures = b->failures;
    s.slow_calls = b->slow_calls;
    s.transitions = b->transitions;
    s.opened = b->opened;
    s.state_since_ns = b->since_ns;
    swarm__mutex_unlock(&b->mu);
    swarm__stats_copy_out(stats, &s, sizeof s);
    return 0;
}
