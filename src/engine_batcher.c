/* SPDX-License-Identifier: MIT */
/*
 * Batcher decorator: dynamic batching with no thread of its own (leader/follower).
 *
 * A caller of infer() queues a pointer to a slot on its own stack in a swarm_chan, then either
 * becomes the leader (trylock on `lead`) or parks on `gen`. The leader takes batches with
 * swarm_chan_recv_batch() (up to max_batch, lingering max_wait_ns after the first), runs them
 * through the inner engine, marks each slot done and wakes the parked callers (bumping `gen`),
 * until its own slot is done; then it lets go and bumps `gen` again, so that a caller still
 * queued takes over as leader.
 *
 * Liveness: only a leader dequeues, and a leader finishes every batch it takes before letting go,
 * so while a caller's slot is not done its pointer is still in the channel; a caller that holds
 * `lead` therefore always finds work, and a caller that parks is woken by the next `gen` bump.
 *
 * Lock order: `lead` is held across the inner engine call (it is the batching token, never taken
 * by anything the engine can call). No other lock.
 */
#include <string.h>

#include "engine_internal.h"
#include "opts_v1.h"
#include "platform.h"
#include "swarm/chan.h"

typedef struct slot {
    const swarm_request *req;
    swarm_response *resp;
    int rc;
    _Atomic uint32_t done; /* release store by the leader; acquire load by the owner */
} slot;

typedef struct batcher_engine {
    swarm_engine *inner;
    swarm_chan *ch;
    uint32_t max_batch;
    int64_t max_wait_ns;
    uint32_t n_pref;
    uint32_t pref[32]; /* descending */
    swarm_allocator alloc;
    swarm__mutex lead;
    /* Leader-only scratch (guarded by lead): no allocation per batch. */
    slot **items;
    const swarm_request **reqs;
    swarm_response **resps;
    _Alignas(SWARM_CACHELINE) _Atomic uint32_t gen;
    _Atomic uint32_t waiters;
    _Alignas(SWARM_CACHELINE) _Atomic uint64_t requests, batches, skipped;
    _Atomic uint32_t max_seen;
} batcher_engine;

#define RELAXED memory_order_relaxed

int swarm_batcher_opts_init(swarm_batcher_opts *opts)
{
    if (opts == NULL)
        return SWARM_EINVAL;
    memset(opts, 0, sizeof *opts);
    opts->size = (uint32_t)sizeof *opts;
    opts->max_batch = 8;
    opts->queue_capacity = 1024;
    return 0;
}

static void finish(slot *s, int rc)
{
    s->rc = rc;
    /* Release: the owner's acquire load of done sees the response the leader filled. After this
     * store the slot may vanish with its owner's stack frame, so it is the last touch. */
    atomic_store_explicit(&s->done, 1, memory_order_release);
}

static void bump(batcher_engine *b)
{
    /* seq_cst pairs with the waiter's seq_cst increment of waiters before it re-reads gen: either
     * we see the waiter and wake it, or it sees the new gen and does not sleep. */
    atomic_fetch_add_explicit(&b->gen, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&b->waiters, memory_order_seq_cst) != 0)
        swarm__unpark(&b->gen, INT32_MAX);
}

/* Size of the next sub-batch out of @p left collected requests. */
static size_t next_size(const batcher_engine *b, size_t left)
{
    for (uint32_t i = 0; i < b->n_pref; i++)
        if (b->pref[i] <= left)
            return b->pref[i];
    return left;
}

static void run(batcher_engine *b, size_t k)
{
    uint32_t seen = atomic_load_explicit(&b->max_seen, RELAXED);
    while (k > seen && !atomic_compare_exchange_weak_explicit(&b->max_seen, &seen, (uint32_t)k,
                                                              RELAXED, RELAXED)) {
    }
    atomic_fetch_add_explicit(&b->batches, 1, RELAXED);
    atomic_fetch_add_explicit(&b->requests, k, RELAXED);
    swarm__engine_call_batch(b->inner, b->reqs, b->resps, k);
}

static void lead_one(batcher_engine *b)
{
    int n = swarm_chan_recv_batch(b->ch, b->items, b->max_batch, 1, b->max_wait_ns,
                                  SWARM_WAIT_FOREVER, NULL);
    if (n <= 0)
        return; /* cannot happen while our own slot is queued; the caller loops */
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        slot *s = b->items[i];
        int stop = swarm_request_should_stop(s->req);
        if (stop != 0) {
            swarm__resp_fail(s->resp, stop, "expired while queued for a batch", 0);
            atomic_fetch_add_explicit(&b->skipped, 1, RELAXED);
            finish(s, stop);
            continue;
        }
        b->items[k++] = s;
    }
    size_t kept = k;
    for (size_t off = 0; off < kept;) {
        size_t m = next_size(b, kept - off);
        for (size_t i = 0; i < m; i++) {
            b->reqs[i] = b->items[off + i]->req;
            b->resps[i] = b->items[off + i]->resp;
        }
        run(b, m);
        off += m;
    }
    for (size_t i = 0; i < kept; i++)
        finish(b->items[i], b->items[i]->resp->err_code);
    /* Wake the callers of this batch now, not when we stop leading: our own request may sit
     * further back in the queue. Callers still pending re-check and park again. */
    bump(b);
}

static int batcher_infer(void *self, const swarm_request *req, swarm_response *resp)
{
    batcher_engine *b = self;
    slot s = {.req = req, .resp = resp, .rc = 0};
    atomic_init(&s.done, 0);
    slot *p = &s;
    int rc = swarm_chan_send_ex(b->ch, &p, SWARM_WAIT_FOREVER, req->cancel);
    if (rc != 0)
        return rc;
    for (;;) {
        uint32_t g = atomic_load_explicit(&b->gen, memory_order_seq_cst);
        if (atomic_load_explicit(&s.done, memory_order_acquire))
            break;
        if (swarm__mutex_trylock(&b->lead)) {
            while (!atomic_load_explicit(&s.done, memory_order_acquire))
                lead_one(b);
            swarm__mutex_unlock(&b->lead);
            bump(b);
            break;
        }
        atomic_fetch_add_explicit(&b->waiters, 1, memory_order_seq_cst);
        if (atomic_load_explicit(&b->gen, memory_order_seq_cst) == g &&
            !atomic_load_explicit(&s.done, memory_order_acquire))
            swarm__park(&b->gen, g, INT64_MAX);
        atomic_fetch_sub_explicit(&b->waiters, 1, memory_order_relaxed);
    }
    return s.rc;
}

static int batcher_infer_batch(void *self, const swarm_request *const *reqs,
                               swarm_response *const *resps, size_t n)
{
    return swarm__engine_call_batch(((batcher_engine *)self)->inner, reqs, resps, n);
}

static int batcher_cancel(void *self, uint64_t id)
{
    return swarm_engine_cancel(((batcher_engine *)self)->inner, id);
}

static int batcher_health(void *self)
{
    return swarm_engine_health(((batcher_engine *)self)->inner);
}

static void batcher_free(batcher_engine *b)
{
    swarm_allocator a = b->alloc;
    swarm__free(&a, b->items, sizeof(slot *) * b->max_batch);
    swarm__free(&a, b->reqs, sizeof(swarm_request *) * b->max_batch);
    swarm__free(&a, b->resps, sizeof(swarm_response *) * b->max_batch);
    swarm_chan_destroy(b->ch);
    swarm__free(&a, b, sizeof *b);
}

static void batcher_destroy(void *self)
{
    batcher_engine *b = self;
    swarm_engine_destroy(b->inner);
    swarm__mutex_destroy(&b->lead);
    batcher_free(b);
}

static const swarm_engine_ops batcher_ops = {
    .version = SWARM_ENGINE_OPS_VERSION,
    .infer = batcher_infer,
    .infer_batch = batcher_infer_batch,
    .cancel = batcher_cancel,
    .health = batcher_health,
    .destroy = batcher_destroy,
};

int swarm_engine_batcher_create(swarm_engine **out, swarm_engine *inner,
                                const swarm_batcher_opts *opts)
{
    swarm_batcher_opts o;
    swarm_batcher_opts_init(&o);
    if (out == NULL || inner == NULL)
        return SWARM_EINVAL;
    if (opts != NULL && SWARM__OPTS_COPY(batcher_opts, &o, opts) != 0)
        return SWARM_EINVAL;
    if (o.max_batch == 0 || o.max_batch > 4096 || o.max_wait_ns < 0 || o.n_preferred > 32 ||
        (o.n_preferred > 0 && o.preferred_sizes == NULL))
        return SWARM_EINVAL;
    for (uint32_t i = 0; i < o.n_preferred; i++)
        if (o.preferred_sizes[i] == 0 || o.preferred_sizes[i] > o.max_batch)
            return SWARM_EINVAL;
    if (o.queue_capacity == 0)
        o.queue_capacity = 1024;
    swarm_allocator a;
    if (swarm__alloc_init(&a, o.alloc) != 0)
        return SWARM_EINVAL;
    batcher_engine *b = swarm__alloc(&a, sizeof *b, _Alignof(batcher_engine));
    if (b == NULL)
        return SWARM_ENOMEM;
    b->alloc = a;
    b->inner = inner;
    b->max_batch = o.max_batch;
    b->max_wait_ns = o.max_wait_ns;
    /* Preferred sizes sorted descending, duplicates dropped, for the greedy split. */
    for (uint32_t i = 0; i < o.n_preferred; i++) {
        uint32_t v = o.preferred_sizes[i], j = b->n_pref;
        bool dup = false;
        for (uint32_t k = 0; k < b->n_pref; k++)
            dup |= b->pref[k] == v;
        if (dup)
            continue;
        while (j > 0 && b->pref[j - 1] < v) {
            b->pref[j] = b->pref[j - 1];
            j--;
        }
        b->pref[j] = v;
        b->n_pref++;
    }
    b->items = swarm__alloc(&a, sizeof(slot *) * o.max_batch, _Alignof(slot *));
    b->reqs = swarm__alloc(&a, sizeof(swarm_request *) * o.max_batch, _Alignof(void *));
    b->resps = swarm__alloc(&a, sizeof(swarm_response *) * o.max_batch, _Alignof(void *));
    swarm_chan_opts co;
    swarm_chan_opts_init(&co);
    co.capacity = o.queue_capacity;
    co.elem_size = sizeof(slot *);
    co.alloc = o.alloc;
    int rc = SWARM_ENOMEM;
    if (b->items == NULL || b->reqs == NULL || b->resps == NULL ||
        (rc = swarm_chan_create(&b->ch, &co)) != 0 || swarm__mutex_init(&b->lead) != 0) {
        batcher_free(b);
        return rc != 0 ? rc : SWARM_ENOMEM;
    }
    char name[SWARM__NAME_MAX];
    swarm__engine_name2(name, "batcher", inner, NULL);
    rc = swarm__engine_wrap(out, &batcher_ops, b, SWARM__ENGINE_BATCHER, o.alloc, name);
    if (rc != 0) {
        swarm__mutex_destroy(&b->lead);
        batcher_free(b);
    }
    return rc;
}

int swarm_engine_batcher_get_stats(swarm_engine *e, swarm_batcher_stats *stats)
{
    if (e == NULL || e->kind != SWARM__ENGINE_BATCHER || stats == NULL ||
        stats->size < offsetof(swarm_batcher_stats, requests))
        return SWARM_EINVAL;
    batcher_engine *b = e->self;
    swarm_batcher_stats s;
    memset(&s, 0, sizeof s);
    s.max_seen = atomic_load_explicit(&b->max_seen, RELAXED);
    s.requests = atomic_load_explicit(&b->requests, RELAXED);
    s.batches = atomic_load_explicit(&b->batches, RELAXED);
    s.skipped = atomic_load_explicit(&b->skipped, RELAXED);
    s.queued = swarm_chan_len(b->ch);
    swarm__stats_copy_out(stats, &s, sizeof s);
    return 0;
}
