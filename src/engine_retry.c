/* SPDX-License-Identifier: MIT */
/*
 * Retry decorator: capped exponential backoff with full jitter (AWS), retryable codes only,
 * retry-after hints, never after streamed output, never past the deadline, and a gRPC A6 retry
 * budget (token bucket) so that retries cannot multiply load during an outage.
 */
#include <string.h>

#include "engine_internal.h"
#include "opts_v1.h"

typedef struct retry_engine {
    swarm_engine *inner;
    uint32_t max_attempts;
    uint32_t honor_retry_after;
    int64_t base_ns, cap_ns;
    int64_t budget_max_milli; /* < 0: budget off */
    int64_t budget_ratio_milli;
    swarm_clock_fn clock;
    swarm_sleep_fn sleep;
    void *clock_ctx;
    swarm_allocator alloc;
    swarm__scratch_pool scratch; /* batch scratch blocks (retry_scratch) */
    _Alignas(SWARM_CACHELINE) _Atomic uint64_t rng;
    _Atomic int64_t budget_milli;
    /* Statistics: relaxed counters, read individually. */
    _Atomic uint64_t calls, attempts, retries, budget_denied, after_stream, deadline_denied;
    _Atomic int64_t slept_ns;
} retry_engine;

int swarm_retry_opts_init(swarm_retry_opts *opts)
{
    if (opts == NULL)
        return SWARM_EINVAL;
    memset(opts, 0, sizeof *opts);
    opts->size = (uint32_t)sizeof *opts;
    opts->max_attempts = 3;
    opts->base_ns = 100 * 1000000LL;
    opts->cap_ns = 2000 * 1000000LL;
    opts->budget_max_tokens = 10;
    opts->budget_ratio_milli = 100;
    opts->honor_retry_after = SWARM_RETRY_HONOR_HINTS;
    return 0;
}

#define RELAXED memory_order_relaxed

/* Budget: a failure takes one token (floor 0), a success returns ratio (cap max); retries are
 * allowed only above half. Relaxed CAS loops: the bucket is a heuristic shared counter and
 * publishes no other data. */
static void budget_add(retry_engine *r, int64_t delta)
{
    if (r->budget_max_milli < 0)
        return;
    int64_t cur = atomic_load_explicit(&r->budget_milli, RELAXED), next;
    do {
        next = cur + delta;
        if (next < 0)
            next = 0;
        if (next > r->budget_max_milli)
            next = r->budget_max_milli;
        if (next == cur)
            return;
    } while (
        !atomic_compare_exchange_weak_explicit(&r->budget_milli, &cur, next, RELAXED, RELAXED));
}

static bool budget_allows(retry_engine *r)
{
    return r->budget_max_milli < 0 ||
           atomic_load_explicit(&r->budget_milli, RELAXED) * 2 > r->budget_max_milli;
}

/* Full jitter: uniform in [0, min(cap, base * 2^(n-1))] for retry n >= 1. */
static int64_t backoff(retry_engine *r, uint32_t n)
{
    int64_t ceil = r->base_ns;
    for (uint32_t i = 1; i < n && ceil < r->cap_ns; i++)
        ceil = ceil > r->cap_ns / 2 ? r->cap_ns : ceil * 2;
    if (ceil > r->cap_ns)
        ceil = r->cap_ns;
    if (ceil <= 0)
        return 0;
    return (int64_t)(swarm__rng_next(&r->rng) % ((uint64_t)ceil + 1));
}

/* A clock not read yet: the decision reads it only for a request that has a deadline. */
#define NOW_UNREAD INT64_MIN

/*
 * The retry decision, shared by the single and the batch paths: after attempt @p attempt left
 * @p resp with status resp->err_code, either returns the backoff (>= 0) before the next attempt,
 * or -1 when the status stands (success, not retryable, out of attempts, output already
 * streamed, budget exhausted, or the backoff would reach the deadline). Updates the budget and
 * the refusal counters. @p now caches one clock read across calls (NOW_UNREAD: not read yet).
 */
static int64_t retry_decide(retry_engine *r, const swarm_request *req, const swarm_response *resp,
                            swarm__resp_mark mark, uint32_t attempt, int64_t *now)
{
    int rc = resp->err_code;
    if (rc == 0) {
        budget_add(r, r->budget_ratio_milli);
        return -1;
    }
    if (!swarm_engine_error_retryable(rc))
        return -1;
    budget_add(r, -1000);
    if (attempt >= r->max_attempts)
        return -1;
    if (swarm__resp_streamed_since(resp, mark)) {
        atomic_fetch_add_explicit(&r->after_stream, 1, RELAXED);
        return -1;
    }
    if (!budget_allows(r)) {
        atomic_fetch_add_explicit(&r->budget_denied, 1, RELAXED);
        return -1;
    }
    int64_t delay = backoff(r, attempt);
    if (r->honor_retry_after != SWARM_RETRY_IGNORE_HINTS && resp->retry_after_ns > delay)
        delay = resp->retry_after_ns; /* >= 0: swarm_response_set_error() refuses negatives */
    if (swarm__has_deadline(req->deadline_ns)) {
        if (*now == NOW_UNREAD)
            *now = r->clock(r->clock_ctx);
        /* Saturating: a hint near INT64_MAX must not wrap "now + delay" into the past and
         * start a sleep of centuries under a one-second deadline. */
        if (swarm__time_add(*now, delay) >= req->deadline_ns) {
            atomic_fetch_add_explicit(&r->deadline_denied, 1, RELAXED);
            return -1;
        }
    }
    return delay;
}

static int retry_infer(void *self, const swarm_request *req, swarm_response *resp)
{
    retry_engine *r = self;
    atomic_fetch_add_explicit(&r->calls, 1, RELAXED);
    swarm__resp_mark mark = swarm__resp_mark_get(resp);
    for (uint32_t attempt = 1;; attempt++) {
        atomic_fetch_add_explicit(&r->attempts, 1, RELAXED);
        int rc = swarm__engine_call(r->inner, req, resp);
        int64_t now = NOW_UNREAD;
        int64_t delay = retry_decide(r, req, resp, mark, attempt, &now);
        if (delay < 0)
            return rc;
        swarm__resp_rollback(resp, mark);
        atomic_fetch_add_explicit(&r->retries, 1, RELAXED);
        atomic_fetch_add_explicit(&r->slept_ns, delay, RELAXED);
        if (delay > 0 && r->sleep(r->clock_ctx, delay, req->cancel) == SWARM_ECANCELED) {
            swarm__resp_fail(resp, SWARM_ECANCELED, "canceled during retry backoff", 0);
            return SWARM_ECANCELED;
        }
    }
}

/* Per-call scratch of the batch path (one chunk), from the decorator's scratch pool. */
typedef struct retry_scratch {
    swarm__resp_mark marks[SWARM__BATCH_CHUNK];
    const swarm_request *rq[SWARM__BATCH_CHUNK];
    swarm_response *rs[SWARM__BATCH_CHUNK];
    uint16_t idx[SWARM__BATCH_CHUNK];
} retry_scratch;

/* Runs requests in chunks of at most @p cap through the retry loop, using the given arrays. */
static void retry_chunks(retry_engine *r, const swarm_request *const *reqs,
                         swarm_response *const *resps, size_t n, swarm__resp_mark *marks,
                         const swarm_request **rq, swarm_response **rs, uint16_t *idx, size_t cap)
{
    for (size_t base = 0; base < n; base += cap) {
        size_t m = n - base < cap ? n - base : cap, k = m;
        atomic_fetch_add_explicit(&r->calls, m, RELAXED);
        for (size_t i = 0; i < m; i++) {
            marks[i] = swarm__resp_mark_get(resps[base + i]);
            rq[i] = reqs[base + i];
            rs[i] = resps[base + i];
            idx[i] = (uint16_t)i;
        }
        for (uint32_t attempt = 1; k > 0; attempt++) {
            atomic_fetch_add_explicit(&r->attempts, k, RELAXED);
            swarm__engine_call_batch(r->inner, rq, rs, k);
            size_t again = 0;
            int64_t delay = 0, now = NOW_UNREAD;
            for (size_t j = 0; j < k; j++) {
                int64_t d = retry_decide(r, rq[j], rs[j], marks[idx[j]], attempt, &now);
                if (d < 0)
                    continue;
                delay = d > delay ? d : delay;
                rq[again] = rq[j];
                rs[again] = rs[j];
                idx[again] = idx[j];
                again++;
            }
            k = again;
            if (k == 0)
                break;
            atomic_fetch_add_explicit(&r->retries, k, RELAXED);
            atomic_fetch_add_explicit(&r->slept_ns, delay, RELAXED);
            if (delay > 0)
                r->sleep(r->clock_ctx, delay, NULL);
            size_t live = 0;
            for (size_t j = 0; j < k; j++) {
                swarm__resp_rollback(rs[j], marks[idx[j]]);
                if (rq[j]->cancel != NULL && swarm_cancel_is_canceled(rq[j]->cancel)) {
                    swarm__resp_fail(rs[j], SWARM_ECANCELED, "canceled during retry backoff", 0);
                    continue;
                }
                rq[live] = rq[j];
                rs[live] = rs[j];
                idx[live] = idx[j];
                live++;
            }
            k = live;
        }
    }
}

/* Without a pooled scratch block (allocation failed): small chunks on the stack. */
static SWARM_NOINLINE void retry_chunks_small(retry_engine *r, const swarm_request *const *reqs,
                                              swarm_response *const *resps, size_t n)
{
    swarm__resp_mark marks[SWARM__BATCH_SMALL];
    const swarm_request *rq[SWARM__BATCH_SMALL];
    swarm_response *rs[SWARM__BATCH_SMALL];
    uint16_t idx[SWARM__BATCH_SMALL];
    retry_chunks(r, reqs, resps, n, marks, rq, rs, idx, SWARM__BATCH_SMALL);
}

/*
 * Batches: the whole batch runs once, then only the requests that failed with a retryable code
 * (and pass every check of the single-request path) run again as a smaller batch, after one
 * backoff that is the largest of theirs. The backoff watches no token (the requests may carry
 * different ones); a request whose token fired meanwhile is completed with SWARM_ECANCELED
 * instead of being retried.
 */
static int retry_infer_batch(void *self, const swarm_request *const *reqs,
                             swarm_response *const *resps, size_t n)
{
    retry_engine *r = self;
    retry_scratch *s = swarm__scratch_get(&r->scratch);
    if (s == NULL) {
        retry_chunks_small(r, reqs, resps, n);
        return 0;
    }
    retry_chunks(r, reqs, resps, n, s->marks, s->rq, s->rs, s->idx, SWARM__BATCH_CHUNK);
    swarm__scratch_put(&r->scratch, s);
    return 0;
}

static int retry_cancel(void *self, uint64_t id)
{
    return swarm_engine_cancel(((retry_engine *)self)->inner, id);
}

static int retry_health(void *self)
{
    return swarm_engine_health(((retry_engine *)self)->inner);
}

static void retry_destroy(void *self)
{
    retry_engine *r = self;
    swarm_engine_destroy(r->inner);
    swarm__scratch_fini(&r->scratch);
    swarm_allocator a = r->alloc;
    swarm__free(&a, r, sizeof *r);
}

static const swarm_engine_ops retry_ops = {
    .version = SWARM_ENGINE_OPS_VERSION,
    .infer = retry_infer,
    .infer_batch = retry_infer_batch,
    .cancel = retry_cancel,
    .health = retry_health,
    .destroy = retry_destroy,
};

int swarm_engine_retry_create(swarm_engine **out, swarm_engine *inner, const swarm_retry_opts *opts)
{
    swarm_retry_opts o;
    swarm_retry_opts_init(&o);
    if (out == NULL || inner == NULL)
        return SWARM_EINVAL;
    if (opts != NULL && SWARM__OPTS_COPY(retry_opts, &o, opts) != 0)
        return SWARM_EINVAL;
    if (o.max_attempts == 0 || o.max_attempts > 100 || o.base_ns < 0 || o.cap_ns < 0 ||
        o.base_ns > o.cap_ns || o.honor_retry_after > SWARM_RETRY_IGNORE_HINTS)
        return SWARM_EINVAL;
    swarm_allocator a;
    if (swarm__alloc_init(&a, o.alloc) != 0)
        return SWARM_EINVAL;
    retry_engine *r = swarm__alloc(&a, sizeof *r, _Alignof(retry_engine));
    if (r == NULL)
        return SWARM_ENOMEM;
    r->inner = inner;
    r->max_attempts = o.max_attempts;
    r->honor_retry_after = o.honor_retry_after == 0 ? SWARM_RETRY_HONOR_HINTS : o.honor_retry_after;
    r->base_ns = o.base_ns;
    r->cap_ns = o.cap_ns;
    if (o.budget_max_tokens == UINT32_MAX) {
        r->budget_max_milli = -1;
    } else {
        r->budget_max_milli = (int64_t)(o.budget_max_tokens ? o.budget_max_tokens : 10) * 1000;
    }
    r->budget_ratio_milli = o.budget_ratio_milli;
    r->clock = o.clock != NULL ? o.clock : swarm__engine_clock;
    r->sleep = o.sleep != NULL ? o.sleep : swarm__engine_sleep;
    r->clock_ctx = o.clock_ctx;
    r->alloc = a;
    atomic_init(&r->rng, o.seed ? o.seed : SWARM__DEFAULT_SEED);
    atomic_init(&r->budget_milli, r->budget_max_milli < 0 ? 0 : r->budget_max_milli);
    if (swarm__scratch_init(&r->scratch, &a, sizeof(retry_scratch)) != 0) {
        swarm__free(&a, r, sizeof *r);
        return SWARM_ENOMEM;
    }
    char name[SWARM__NAME_MAX];
    swarm__engine_name2(name, "retry", inner, NULL);
    int rc = swarm__engine_wrap(out, &retry_ops, r, SWARM__ENGINE_RETRY, o.alloc, name);
    if (rc != 0) {
        swarm__scratch_fini(&r->scratch);
        swarm__free(&a, r, sizeof *r);
    }
    return rc;
}

int swarm_engine_retry_get_stats(swarm_engine *e, swarm_retry_stats *stats)
{
    if (e == NULL || e->kind != SWARM__ENGINE_RETRY || stats == NULL ||
        stats->size < offsetof(swarm_retry_stats, calls))
        return SWARM_EINVAL;
    retry_engine *r = e->self;
    swarm_retry_stats s;
    memset(&s, 0, sizeof s);
    int64_t b = atomic_load_explicit(&r->budget_milli, RELAXED);
    s.budget_milli = (uint32_t)(r->budget_max_milli < 0 ? UINT32_MAX : b);
    s.calls = atomic_load_explicit(&r->calls, RELAXED);
    s.attempts = atomic_load_explicit(&r->attempts, RELAXED);
    s.retries = atomic_load_explicit(&r->retries, RELAXED);
    s.budget_denied = atomic_load_explicit(&r->budget_denied, RELAXED);
    s.after_stream = atomic_load_explicit(&r->after_stream, RELAXED);
    s.deadline_denied = atomic_load_explicit(&r->deadline_denied, RELAXED);
    s.slept_ns = atomic_load_explicit(&r->slept_ns, RELAXED);
    swarm__stats_copy_out(stats, &s, sizeof s);
    return 0;
}
