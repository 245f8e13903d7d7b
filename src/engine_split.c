/* SPDX-License-Identifier: MIT */
/*
 * Split decorator: weighted routing over N engines (Istio's relative weights), sticky by a hash
 * of the request id or random per call. The cumulative weight table is swapped under a lock by
 * swarm_engine_split_set_weights(); routing reads it under the same lock, held for a binary
 * search only. Lock order: `mu` is a leaf.
 */
#include <string.h>

#include "engine_internal.h"
#include "opts_v1.h"
#include "platform.h"

#define SPLIT_MAX 256

typedef struct split_engine {
    size_t n;
    uint32_t sticky;
    uint64_t seed;
    swarm_allocator alloc;
    swarm__scratch_pool scratch; /* batch scratch blocks (split_scratch) */
    swarm__mutex mu;
    uint64_t total;           /* guarded by mu */
    uint64_t *cum;            /* n cumulative weights, guarded by mu */
    swarm_engine **engines;   /* n */
    _Atomic uint64_t *counts; /* n; relaxed statistics */
    _Atomic uint64_t rng;
} split_engine;

static int check_weights(const uint32_t *w, size_t n, uint64_t *total)
{
    uint64_t t = 0;
    for (size_t i = 0; i < n; i++)
        t += w[i];
    if (t == 0 || t > ((uint64_t)1 << 32))
        return SWARM_EINVAL;
    *total = t;
    return 0;
}

static size_t pick(split_engine *s, uint64_t id)
{
    uint64_t x =
        s->sticky == SWARM_SPLIT_RANDOM ? swarm__rng_next(&s->rng) : swarm__mix64(id ^ s->seed);
    swarm__mutex_lock(&s->mu);
    /* total <= 2^32, so the modulo bias of a 64-bit hash is below 2^-32. */
    uint64_t r = x % s->total;
    size_t lo = 0, hi = s->n - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r < s->cum[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    swarm__mutex_unlock(&s->mu);
    atomic_fetch_add_explicit(&s->counts[lo], 1, memory_order_relaxed);
    return lo;
}

static int split_infer(void *self, const swarm_request *req, swarm_response *resp)
{
    split_engine *s = self;
    return swarm__engine_call(s->engines[pick(s, req->id)], req, resp);
}

/* Per-call scratch of the batch path (one chunk), from the decorator's scratch pool. */
typedef struct split_scratch {
    uint16_t route[SWARM__BATCH_CHUNK];
    const swarm_request *rq[SWARM__BATCH_CHUNK];
    swarm_response *rs[SWARM__BATCH_CHUNK];
} split_scratch;

static void split_chunks(split_engine *s, const swarm_request *const *reqs,
                         swarm_response *const *resps, size_t n, uint16_t *route,
                         const swarm_request **rq, swarm_response **rs, size_t cap)
{
    for (size_t base = 0; base < n; base += cap) {
        size_t m = n - base < cap ? n - base : cap;
        uint32_t used_lo = UINT32_MAX, used_hi = 0;
        for (size_t i = 0; i < m; i++) {
            route[i] = (uint16_t)pick(s, reqs[base + i]->id);
            used_lo = route[i] < used_lo ? route[i] : used_lo;
            used_hi = route[i] > used_hi ? route[i] : used_hi;
        }
        /* One sub-batch per engine that got requests, in engine order. */
        for (uint32_t e = used_lo; e <= used_hi; e++) {
            size_t k = 0;
            for (size_t i = 0; i < m; i++) {
                if (route[i] == e) {
                    rq[k] = reqs[base + i];
                    rs[k] = resps[base + i];
                    k++;
                }
            }
            if (k > 0)
                swarm__engine_call_batch(s->engines[e], rq, rs, k);
        }
    }
}

/* Without a pooled scratch block (allocation failed): small chunks on the stack. */
static SWARM_NOINLINE void split_chunks_small(split_engine *s, const swarm_request *const *reqs,
                                              swarm_response *const *resps, size_t n)
{
    uint16_t route[SWARM__BATCH_SMALL];
    const swarm_request *rq[SWARM__BATCH_SMALL];
    swarm_response *rs[SWARM__BATCH_SMALL];
    split_chunks(s, reqs, resps, n, route, rq, rs, SWARM__BATCH_SMALL);
}

static int split_infer_batch(void *self, const swarm_request *const *reqs,
                             swarm_response *const *resps, size_t n)
{
    split_engine *s = self;
    split_scratch *sc = swarm__scratch_get(&s->scratch);
    if (sc == NULL) {
        split_chunks_small(s, reqs, resps, n);
        return 0;
    }
    split_chunks(s, reqs, resps, n, sc->route, sc->rq, sc->rs, SWARM__BATCH_CHUNK);
    swarm__scratch_put(&s->scratch, sc);
    return 0;
}

static int split_cancel(void *self, uint64_t id)
{
    split_engine *s = self;
    int rc = SWARM_ENOTSUP;
    for (size_t i = 0; i < s->n; i++)
        if (swarm_engine_cancel(s->engines[i], id) == 0)
            rc = 0;
    return rc;
}

static int split_health(void *self)
{
    split_engine *s = self;
    int rc = SWARM_EUNAVAILABLE;
    for (size_t i = 0; i < s->n; i++)
        if ((rc = swarm_engine_health(s->engines[i])) == 0)
            return 0;
    return rc;
}

static void split_free(split_engine *s)
{
    swarm_allocator a = s->alloc;
    swarm__scratch_fini(&s->scratch); /* also safe on a pool never initialised (zeroed) */
    swarm__free(&a, s->cum, sizeof(uint64_t) * s->n);
    swarm__free(&a, s->engines, sizeof(swarm_engine *) * s->n);
    swarm__free(&a, (void *)s->counts, sizeof(uint64_t) * s->n);
    swarm__free(&a, s, sizeof *s);
}

static void split_destroy(void *self)
{
    split_engine *s = self;
    for (size_t i = 0; i < s->n; i++)
        swarm_engine_destroy(s->engines[i]);
    swarm__mutex_destroy(&s->mu);
    split_free(s);
}

static const swarm_engine_ops split_ops = {
    .version = SWARM_ENGINE_OPS_VERSION,
    .infer = split_infer,
    .infer_batch = split_infer_batch,
    .cancel = split_cancel,
    .health = split_health,
    .destroy = split_destroy,
};

int swarm_split_opts_init(swarm_split_opts *opts)
{
    if (opts == NULL)
        return SWARM_EINVAL;
    memset(opts, 0, sizeof *opts);
    opts->size = (uint32_t)sizeof *opts;
    opts->sticky = SWARM_SPLIT_STICKY;
    return 0;
}

static void load_weights(split_engine *s, const uint32_t *w, uint64_t total)
{
    uint64_t c = 0;
    for (size_t i = 0; i < s->n; i++) {
        c += w[i];
        s->cum[i] = c;
    }
    s->total = total;
}

int swarm_engine_split_create(swarm_engine **out, swarm_engine *const *engines,
                              const uint32_t *weights, size_t n, const swarm_split_opts *opts)
{
    swarm_split_opts o;
    swarm_split_opts_init(&o);
    uint64_t total;
    if (out == NULL || engines == NULL || weights == NULL || n == 0 || n > SPLIT_MAX)
        return SWARM_EINVAL;
    if (opts != NULL && SWARM__OPTS_COPY(split_opts, &o, opts))
        return SWARM_EINVAL;
    if (o.sticky > SWARM_SPLIT_RANDOM || check_weights(weights, n, &total) != 0)
        return SWARM_EINVAL;
    /* The split takes over one reference per entry and destroys each entry once: the same
     * handle twice would be destroyed twice (fallback refuses primary == secondary alike). */
    for (size_t i = 0; i < n; i++) {
        if (engines[i] == NULL)
            return SWARM_EINVAL;
        for (size_t j = 0; j < i; j++)
            if (engines[j] == engines[i])
                return SWARM_EINVAL;
    }
    swarm_allocator a;
    if (swarm__alloc_init(&a, o.alloc) != 0)
        return SWARM_EINVAL;
    split_engine *s = swarm__alloc(&a, sizeof *s, _Alignof(split_engine));
    if (s == NULL)
        return SWARM_ENOMEM;
    s->n = n;
    s->alloc = a;
    s->sticky = o.sticky == 0 ? SWARM_SPLIT_STICKY : o.sticky;
    s->seed = o.seed ? o.seed : SWARM__DEFAULT_SEED;
    atomic_init(&s->rng, s->seed);
    s->cum = swarm__alloc(&a, sizeof(uint64_t) * n, _Alignof(uint64_t));
    s->engines = swarm__alloc(&a, sizeof(swarm_engine *) * n, _Alignof(swarm_engine *));
    s->counts = swarm__alloc(&a, sizeof(uint64_t) * n, _Alignof(uint64_t));
    if (s->cum == NULL || s->engines == NULL || s->counts == NULL ||
        swarm__scratch_init(&s->scratch, &a, sizeof(split_scratch)) != 0 ||
        swarm__mutex_init(&s->mu) != 0) {
        split_free(s);
        return SWARM_ENOMEM;
    }
    memcpy(s->engines, engines, sizeof(swarm_engine *) * n);
    load_weights(s, weights, total);
    char name[SWARM__NAME_MAX];
    size_t off = 0;
    swarm__name_cat(name, &off, "split(");
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            swarm__name_cat(name, &off, ",");
        swarm__name_cat(name, &off, engines[i]->name);
    }
    swarm__name_cat(name, &off, ")");
    int rc = swarm__engine_wrap(out, &split_ops, s, SWARM__ENGINE_SPLIT, o.alloc, name);
    if (rc != 0) {
        swarm__mutex_destroy(&s->mu);
        split_free(s);
    }
    return rc;
}

int swarm_engine_split_set_weights(swarm_engine *e, const uint32_t *weights, size_t n)
{
    uint64_t total;
    if (e == NULL || e->kind != SWARM__ENGINE_SPLIT || weights == NULL)
        return SWARM_EINVAL;
    split_engine *s = e->self;
    if (n != s->n || check_weights(weights, n, &total) != 0)
        return SWARM_EINVAL;
    swarm__mutex_lock(&s->mu);
    load_weights(s, weights, total);
    swarm__mutex_unlock(&s->mu);
    return 0;
}

int swarm_engine_split_get_counts(swarm_engine *e, uint64_t *counts, size_t n)
{
    if (e == NULL || e->kind != SWARM__ENGINE_SPLIT || (counts == NULL && n > 0))
        return SWARM_EINVAL;
    split_engine *s = e->self;
    for (size_t i = 0; i < n && i < s->n; i++)
        counts[i] = atomic_load_explicit(&s->counts[i], memory_order_relaxed);
    return (int)s->n;
}
