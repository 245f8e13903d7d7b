/* SPDX-License-Identifier: MIT */
/*
 * swarm_pool: elastic worker threads between a channel of swarm_task and an engine.
 *
 * Each worker runs in a slot. Slots are allocated the first time they are needed (in create or
 * resize) and kept until destroy, with their response(s), request and task arrays, histograms and
 * a wake token, so that neither tasks nor worker restarts allocate.
 *
 * Retirement never loses a task because a worker leaves only at the top of its loop, between
 * tasks: resize marks a slot `retire` and fires the slot's wake token, which makes a receive that
 * is parked return SWARM_ECANCELED. The channel guarantees that a receive returning
 * SWARM_ECANCELED took nothing and that one returning a task (or a batch) took it exactly once,
 * so a worker either has a task, which it runs and delivers before looking at `retire` again, or
 * has none and may leave.
 *
 * Locks. `ctl` serializes resize and stop (thread creation, joins). `mu` guards the worker
 * accounting (live, retiring, slot hand-over between FREE/STARTING/EXITED, the retire flags'
 * writes and the wake tokens' resets) and the stats scratch array. Lock order: ctl, then mu.
 * No result or warm-up callback runs under either; the allocator hooks may (in resize).
 *
 * Hot path per task: one receive, relaxed single-writer counter stores into the worker's own
 * cache lines, the engine call, the delivery. No lock, no shared read-modify-write, and no clock
 * read for most fast calls: a clock read costs 80-170 ns on a virtual machine (kvm-clock), more
 * than a whole channel hand-off, so calls are timed by sampling (see slot_timed()), with each
 * sample weighted by the inverse of its sampling rate so that histograms stay unbiased.
 *
 * Results through a result channel own their output: the worker sends its response with the
 * result and takes a recycled one from `spare` (a channel of response pointers, lock-free), or
 * allocates one while the working set grows. Every such response is registered in `all` so that
 * destroy frees the ones the host never released.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "opts_v1.h"
#include "platform.h"
#include "pool_hist.h"
#include "pool_internal.h"
#include "swarm/pool.h"

enum {
    SLOT_FREE = 0,     /* no thread; may be (re)used by resize */
    SLOT_STARTING = 1, /* thread running the warm-up hook */
    SLOT_IDLE = 2,     /* waiting for a task */
    SLOT_BUSY = 3,     /* running a task or a batch */
    SLOT_EXITED = 4    /* thread has left its loop; resize or stop joins it */
};

#define POOL_MAX_WORKERS 4096u
#define POOL_MAX_BATCH   4096u

/* Sampling: calls at least this long are always timed; faster ones one in SAMPLE_EVERY. */
#define TIME_ALWAYS_NS 20000
#define SAMPLE_EVERY   16u
/* Single-task mode with a fast engine (the last timed call under TIME_ALWAYS_NS): a worker takes
 * up to PREFETCH queued tasks per receive (one channel operation instead of PREFETCH) and runs
 * them one by one, or, for an engine with SWARM_ENGINE_F_SEQUENTIAL_BATCH, as one run through
 * infer_batch (one engine entry instead of PREFETCH). A slow engine never prefetches, so no task
 * waits behind another worker's. */
#define PREFETCH 16u
/* A run takes at most RUN_MAX tasks, and at most its fair share of what is queued (queued / target
 * workers), so one worker does not hoard what idle workers could serve. */
#define RUN_MAX 64u

/* The pool whose worker this thread is (NULL elsewhere): stop and destroy refuse to run there. */
static _Thread_local const struct swarm_pool *tls_pool;

typedef struct pool_slot {
    /* Written by the worker, read by stats: the worker's own line. */
    _Alignas(SWARM_CACHELINE) _Atomic uint32_t state;
    _Atomic uint32_t in_flight;
    _Atomic uint64_t taken;
    _Atomic uint64_t completed;
    _Atomic uint64_t failed;
    _Atomic uint64_t undelivered;
    _Atomic uint64_t batches;
    _Atomic uint64_t outputs_dropped;
    uint32_t skip;      /* worker-private: untimed calls left before the next timed one */
    uint32_t weight;    /* worker-private: weight of the next timed sample (the sampling period) */
    bool custom_params; /* worker-private: some request may still hold a task's params */
    bool fast;          /* worker-private: the last timed call took under TIME_ALWAYS_NS */
    uint32_t pf_next, pf_count; /* worker-private: prefetched tasks pf[pf_next..pf_count) */
    uint32_t n_resps;           /* worker-private: resps[0..n_resps) exist (runs grow it) */
    swarm_task *pf;             /* [PREFETCH] when batch == 1 without runs */

    /* Set by resize/stop under mu with release; the worker's acquire load at the top of its
     * loop pairs with it, and the worker re-checks under mu before it acts. */
    _Alignas(SWARM_CACHELINE) _Atomic uint32_t retire;
    uint32_t index;
    bool joinable; /* written under ctl and mu, read under either: a thread to join */
    swarm__thread thread;
    struct swarm_pool *pool;
    swarm_cancel *wake; /* wakes this worker's receive or warm-up; reset under mu */

    swarm_task *tasks;              /* [slot_cap] */
    swarm_request *reqs;            /* [slot_cap] */
    const swarm_request **req_ptrs; /* [slot_cap] */
    swarm_response **resps;         /* [slot_cap] */
    swarm_pool_result *held;        /* [held_cap]: undelivered results kept for the host */
    _Atomic uint32_t n_held;        /* written by the worker, read after it was joined */
    swarm__hist wait_hist;
    swarm__hist service_hist;
} pool_slot;

struct swarm_pool {
    swarm_allocator alloc;
    swarm_pool_opts opts;
    uint32_t batch;    /* tasks per engine call, >= 1 */
    uint32_t slot_cap; /* requests and responses per slot: batch, or RUN_MAX with runs */
    bool runs;         /* batch == 1 and a sequential-batch engine: prefetched tasks run as one
                        * infer_batch call */
    uint32_t held_cap; /* undelivered results a slot keeps: what a worker may hold at a stop
                        * deadline (its batch, or its prefetched run) */

    swarm_chan *held_input; /* referenced channels (swarm__chan_retain), released at free */
    swarm_chan *held_results;

    swarm__mutex ctl;
    swarm__mutex mu;
    swarm__cond exited_cv; /* a worker left (signalled under mu) */

    _Atomic uint32_t target;
    _Atomic uint32_t stopping;
    _Atomic uint32_t draining; /* keep_input_open stop: workers drain without waiting */
    uint32_t live;             /* under mu: threads between spawn and EXITED */
    uint32_t retiring;         /* under mu: live slots with retire set */
    uint64_t started, retired, start_failures; /* under mu */

    swarm_cancel *abort; /* every request's cancel token; fired at a stop deadline */

    pool_slot **slots; /* [opts.max_workers]; entries set under mu, kept until destroy */
    uint32_t n_slots;  /* under mu: slots allocated */
    uint64_t *scratch; /* under mu: SWARM__HIST_BUCKETS, for percentiles */

    uint64_t fork_gen;        /* the fork generation the pool was created in */
    _Atomic uint32_t stopped; /* 1 once stop has joined every worker (release; pairs with the
                               * acquire load in take_undelivered) */
    swarm_response_opts ropts;

    /* Owned outputs (result channel mode only). */
    bool owned_outputs;
    swarm_chan *spare;    /* swarm_response * recycled by swarm_pool_result_release() */
    swarm_response **all; /* [all_cap]: every response the pool created */
    uint32_t all_cap;
    _Atomic uint32_t n_all; /* claimed entries of all (fetch_add) */
};

/* ---- small helpers ------------------------------------------------------------------------- */

static void slot_free(swarm_pool *p, pool_slot *s)
{
    if (!s)
        return;
    size_t b = p->slot_cap;
    if (s->resps) {
        /* With owned outputs every response is in `all` and freed from there. */
        if (!p->owned_outputs)
            for (size_t i = 0; i < b; i++)
                swarm_response_destroy(s->resps[i]);
        swarm__free(&p->alloc, s->resps, b * sizeof *s->resps);
    }
    swarm__free(&p->alloc, s->held, p->held_cap * sizeof *s->held);
    swarm__free(&p->alloc, s->pf, PREFETCH * sizeof *s->pf);
    swarm__free(&p->alloc, s->tasks, b * sizeof *s->tasks);
    swarm__free(&p->alloc, s->reqs, b * sizeof *s->reqs);
    swarm__free(&p->alloc, (void *)s->req_ptrs, b * sizeof *s->req_ptrs);
    swarm_cancel_destroy(s->wake);
    swarm__free(&p->alloc, s, sizeof *s);
}

/* Creates a response for the pool and, with owned outputs, registers it in `all` (which bounds
 * how many exist). NULL when the allocation fails or the bound is reached. */
static swarm_response *resp_new(swarm_pool *p)
{
    uint32_t idx = 0;
    if (p->owned_outputs) {
        idx = atomic_fetch_add_explicit(&p->n_all, 1, memory_order_relaxed);
        if (idx >= p->all_cap) {
            atomic_fetch_sub_explicit(&p->n_all, 1, memory_order_relaxed);
            return NULL;
        }
    }
    swarm_response *r = NULL;
    if (swarm_response_create(&r, &p->ropts) != 0) {
        r = NULL;
    } else if (p->opts.on_stream) {
        (void)swarm_response_set_stream(r, p->opts.on_stream, p->opts.stream_ctx);
    }
    if (p->owned_outputs) {
        /* A failed create leaves a NULL entry; destroy skips it. The entry is written before
         * the response can reach another thread (through the result channel, whose send
         * publishes it); destroy reads `all` after joining every worker. */
        p->all[idx] = r;
    }
    return r;
}

static pool_slot *slot_alloc(swarm_pool *p, uint32_t index)
{
    pool_slot *s = swarm__alloc(&p->alloc, sizeof *s, SWARM_CACHELINE);
    if (!s)
        return NULL;
    size_t b = p->slot_cap;
    bool pf = p->batch == 1 && !p->runs;
    s->index = index;
    s->pool = p;
    s->tasks = swarm__alloc(&p->alloc, b * sizeof *s->tasks, 16);
    s->reqs = swarm__alloc(&p->alloc, b * sizeof *s->reqs, 16);
    s->req_ptrs = swarm__alloc(&p->alloc, b * sizeof *s->req_ptrs, 16);
    s->resps = swarm__alloc(&p->alloc, b * sizeof *s->resps, 16);
    s->held = swarm__alloc(&p->alloc, p->held_cap * sizeof *s->held, 16);
    if (pf)
        s->pf = swarm__alloc(&p->alloc, PREFETCH * sizeof *s->pf, 16);
    if (!s->tasks || !s->reqs || !s->req_ptrs || !s->resps || !s->held || (pf && !s->pf) ||
        swarm_cancel_create(&s->wake, &p->alloc) != 0)
        goto fail;
    for (size_t i = 0; i < b; i++) {
        swarm_request_init(&s->reqs[i]);
        s->req_ptrs[i] = &s->reqs[i];
    }
    /* With runs only the first response is made here; a run grows the rest as the queue
     * first asks for them (slot_grow), so a worker that never sees a long queue keeps one. */
    s->n_resps = p->runs ? 1 : (uint32_t)b;
    for (size_t i = 0; i < s->n_resps; i++)
        if (!(s->resps[i] = resp_new(p)))
            goto fail;
    s->weight = 1;
    return s;
fail:
    slot_free(p, s);
    return NULL;
}

/* ---- the worker ---------------------------------------------------------------------------- */

/* Makes responses for runs of up to @want tasks (at most 63 allocations over a slot's life: the
 * array only grows); a failed allocation only keeps runs shorter. */
static void slot_grow(swarm_pool *p, pool_slot *s, uint32_t want)
{
    while (s->n_resps < want) {
        swarm_response *r = resp_new(p);
        if (!r)
            return;
        s->resps[s->n_resps++] = r;
    }
}

/* Leaves the loop: called by the worker with mu held. */
static void worker_leave_locked(swarm_pool *p, pool_slot *s, bool start_failed)
{
    bool retiring = atomic_load_explicit(&s->retire, memory_order_relaxed) != 0;
    if (retiring)
        p->retiring--;
    /* A warm-up that failed because resize canceled it is a retirement, not a failure. */
    if (start_failed && !retiring)
        p->start_failures++;
    else
        p->retired++;
    p->live--;
    atomic_store_explicit(&s->in_flight, 0, memory_order_relaxed);
    atomic_store_explicit(&s->state, SLOT_EXITED, memory_order_relaxed);
    swarm__cond_broadcast(&p->exited_cv);
}

static inline void bump(_Atomic uint64_t *c)
{
    /* Single writer (the slot's worker): a load and a store, no locked instruction. */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* Delivers result @i of the slot's current batch. */
static void deliver(swarm_pool *p, pool_slot *s, uint32_t i, int status, uint32_t n,
                    const swarm__resp_outcome *oc)
{
    swarm_pool_result r;
    r.size = sizeof r;
    r.status = status;
    r.worker = s->index;
    r.batch = n;
    r.task = s->tasks[i];
    r.start_ns = oc->start_ns;
    r.end_ns = oc->end_ns;
    r.output_len = oc->len;
    r.reserved2_ = 0;
    bump(status == 0 ? &s->completed : &s->failed);
    if (p->opts.on_result) {
        r.response = s->resps[i];
        r.output = oc->data;
        r.owned = 0;
        p->opts.on_result(p->opts.result_ctx, &r);
        return;
    }
    if (!p->opts.results)
        return;
    /* The response travels with the result; the slot continues with a recycled one. */
    swarm_response *fresh = NULL;
    if (swarm_chan_try_recv(p->spare, &fresh) != 0)
        fresh = resp_new(p);
    if (fresh) {
        r.response = s->resps[i];
        r.output = oc->data;
        r.owned = 1;
    } else {
        r.response = NULL;
        r.output = NULL;
        r.owned = 0;
        bump(&s->outputs_dropped);
    }
    /* Waits while the result channel is full, but not past a stop deadline: stop fires `abort`
     * then, and the result is held for swarm_pool_take_undelivered() instead. */
    int rc = swarm_chan_send_ex(p->opts.results, &r, SWARM_WAIT_FOREVER, p->abort);
    if (rc == 0) {
        if (fresh)
            s->resps[i] = fresh;
        return;
    }
    bump(&s->undelivered);
    uint32_t h = atomic_load_explicit(&s->n_held, memory_order_relaxed);
    if (h < p->held_cap) {
        s->held[h] = r;
        atomic_store_explicit(&s->n_held, h + 1, memory_order_relaxed);
        if (fresh)
            s->resps[i] = fresh;
    } else if (fresh) {
        /* Only counted: the slot keeps its response, the fresh one goes back. */
        (void)swarm_chan_try_send(p->spare, &fresh);
    }
}

/* Whether the slot's next call is timed; consumes one step of the sampling period. */
static inline bool slot_timed(pool_slot *s)
{
    if (s->skip == 0)
        return true;
    s->skip--;
    return false;
}

/* After a timed single call that took @svc ns: keep timing every call of TIME_ALWAYS_NS or more,
 * sample faster ones. The next sample's weight is the period it stands for. */
static inline void slot_sampled(swarm_pool *p, pool_slot *s, int64_t svc)
{
    s->fast = svc < TIME_ALWAYS_NS;
    if (p->opts.timing == SWARM_POOL_TIME_EVERY || svc >= TIME_ALWAYS_NS) {
        s->skip = 0;
        s->weight = 1;
    } else {
        s->skip = SAMPLE_EVERY - 1;
        s->weight = SAMPLE_EVERY;
    }
}

/*
 * Runs one task or one batch. The times come from the responses, which the engine layer stamps
 * when the call enters and completes (for single tasks only when slot_timed() says so): the pool
 * reads no clock of its own per task. Queue wait is enqueued_ns to the engine call's start.
 */
static void run_tasks(swarm_pool *p, pool_slot *s, uint32_t n, uint32_t taken)
{
    /* In flight: this call's tasks and any prefetched ones still waiting in the slot. */
    atomic_store_explicit(&s->in_flight, n + (s->pf_count - s->pf_next), memory_order_relaxed);
    atomic_store_explicit(&s->state, SLOT_BUSY, memory_order_relaxed);
    if (taken)
        atomic_store_explicit(&s->taken,
                              atomic_load_explicit(&s->taken, memory_order_relaxed) + taken,
                              memory_order_relaxed);
    bool any_params = false;
    for (uint32_t i = 0; i < n; i++) {
        const swarm_task *t = &s->tasks[i];
        swarm_request *rq = &s->reqs[i];
        rq->id = t->id;
        rq->payload = t->payload;
        rq->payload_len = t->payload_len;
        /* Every negative deadline means none (common.h); the engine layer reads 0 as none. */
        rq->deadline_ns = t->deadline_ns < 0 ? SWARM_NO_DEADLINE : t->deadline_ns;
        rq->priority = t->priority;
        rq->user = t->user;
        rq->cancel = p->abort;
        /* Requests keep swarm_request_init()'s default params between tasks that carry none,
         * so a task without params costs one test here. */
        if (SWARM_UNLIKELY(t->params != NULL)) {
            rq->params = *t->params;
            any_params = true;
        } else if (SWARM_UNLIKELY(s->custom_params)) {
            memset(&rq->params, 0, sizeof rq->params);
            rq->params.temperature = 1.0;
            rq->params.top_p = 1.0;
        }
        if (n > 1)
            (void)swarm_response_reset(s->resps[i]);
    }
    /* Once a batch has reset every request, none holds a task's params any more. */
    if (any_params)
        s->custom_params = true;
    else if (n == p->slot_cap)
        s->custom_params = false;
    int rc;
    uint32_t weight = 1;
    swarm__resp_outcome oc;
    if (n == 1) {
        bool timed = slot_timed(s);
        weight = s->weight;
        rc = swarm__engine_run1(p->opts.engine, &s->reqs[0], s->resps[0], timed, &oc);
    } else {
        rc = swarm_engine_infer_batch(p->opts.engine, s->req_ptrs, s->resps, n);
    }
    bump(&s->batches);
    bool run = p->runs && n > 1;
    for (uint32_t i = 0; i < n; i++) {
        if (n > 1)
            swarm__resp_outcome_get(s->resps[i], &oc);
        int st;
        if (oc.complete) {
            st = n == 1 ? rc : oc.status;
        } else {
            /* The engine layer refused the call without touching the response. */
            st = rc < 0 ? rc : SWARM_EINTERNAL;
            oc.start_ns = oc.end_ns = 0;
            oc.len = 0;
        }
        if (oc.start_ns > 0) {
            int64_t enq = s->tasks[i].enqueued_ns;
            int64_t start = oc.start_ns;
            int64_t svc = oc.end_ns >= oc.start_ns ? swarm__time_sub(oc.end_ns, oc.start_ns) : -1;
            if (run && svc >= 0) {
                /* A run has one start and one end: task i is taken to start after i mean
                 * service times, and to take the mean. */
                svc /= n;
                start += svc * i;
            }
            if (enq > 0)
                swarm__hist_add_w(&s->wait_hist, swarm__time_sub(start, enq), weight);
            if (svc >= 0) {
                swarm__hist_add_w(&s->service_hist, svc, weight);
                if (n == 1 || (run && i == 0))
                    slot_sampled(p, s, svc);
            }
        }
        deliver(p, s, i, st, n, &oc);
    }
    atomic_store_explicit(&s->in_flight, s->pf_count - s->pf_next, memory_order_relaxed);
}

static void *worker_main(void *arg)
{
    pool_slot *s = arg;
    swarm_pool *p = s->pool;
    tls_pool = p;

    while (p->opts.warmup) {
        int rc = p->opts.warmup(p->opts.warmup_ctx, s->index, s->wake);
        if (rc == 0)
            break;
        swarm__mutex_lock(&p->mu);
        if (!atomic_load_explicit(&s->retire, memory_order_relaxed) &&
            swarm_cancel_is_canceled(s->wake)) {
            /* A retirement canceled the warm-up and a later resize took it back: warm up
             * again. With retire clear under mu nobody fires the token concurrently. */
            (void)swarm_cancel_reset(s->wake);
            swarm__mutex_unlock(&p->mu);
            continue;
        }
        worker_leave_locked(p, s, true);
        swarm__mutex_unlock(&p->mu);
        return NULL;
    }

    for (;;) {
        /* Prefetched tasks were taken from the channel: they run before the worker may leave
         * (a stop deadline cancels them through the abort token; they are still delivered). */
        if (s->pf_next < s->pf_count) {
            s->tasks[0] = s->pf[s->pf_next++];
            run_tasks(p, s, 1, 0);
            continue;
        }
        /* Pairs with the release store in resize/stop; the re-check under mu decides, because
         * a later resize may take the retirement back. */
        if (atomic_load_explicit(&s->retire, memory_order_acquire)) {
            swarm__mutex_lock(&p->mu);
            if (atomic_load_explicit(&s->retire, memory_order_relaxed)) {
                worker_leave_locked(p, s, false);
                swarm__mutex_unlock(&p->mu);
                return NULL;
            }
            swarm__mutex_unlock(&p->mu);
        }
        atomic_store_explicit(&s->state, SLOT_IDLE, memory_order_relaxed);
        /* A stop that keeps the input open drains it without waiting: an empty channel means
         * the worker is done (acquire pairs with the release store in pool_stop()). */
        bool drain = atomic_load_explicit(&p->draining, memory_order_acquire) != 0;
        int64_t wait = drain ? 0 : SWARM_WAIT_FOREVER;
        swarm_cancel *tok = drain ? NULL : s->wake;
        int n;
        if (p->runs && s->fast) {
            uint64_t share = swarm_chan_len(p->opts.input);
            uint32_t t = atomic_load_explicit(&p->target, memory_order_relaxed);
            share = t > 1 ? share / t : share;
            if (share > RUN_MAX)
                share = RUN_MAX;
            if (share > s->n_resps) {
                slot_grow(p, s, (uint32_t)share);
                if (share > s->n_resps)
                    share = s->n_resps;
            }
            n = swarm_chan_recv_batch(p->opts.input, s->tasks, share > 1 ? (size_t)share : 1, 1, 0,
                                      wait, tok);
        } else if (p->batch == 1 && s->fast) {
            n = swarm_chan_recv_batch(p->opts.input, s->pf, PREFETCH, 1, 0, wait, tok);
            if (n > 0) {
                s->pf_count = (uint32_t)n;
                s->pf_next = 1;
                s->tasks[0] = s->pf[0];
                run_tasks(p, s, 1, (uint32_t)n);
                continue;
            }
        } else if (p->batch == 1) {
            n = swarm_chan_recv_ex(p->opts.input, &s->tasks[0], wait, tok);
            if (n == 0)
                n = 1;
        } else {
            n = swarm_chan_recv_batch(p->opts.input, s->tasks, p->batch, p->opts.batch_min,
                                      drain ? 0 : p->opts.batch_linger_ns, wait, tok);
        }
        if (n > 0) {
            run_tasks(p, s, (uint32_t)n, (uint32_t)n);
            continue;
        }
        if (n == SWARM_ECANCELED) {
            /* Woken for retirement, or by a retirement that resize has taken back since: only
             * then re-arm the token. Resize fires it only after setting retire under mu, so
             * with retire clear under mu nobody fires it concurrently and the reset is safe. */
            swarm__mutex_lock(&p->mu);
            if (!atomic_load_explicit(&s->retire, memory_order_relaxed))
                (void)swarm_cancel_reset(s->wake);
            swarm__mutex_unlock(&p->mu);
            continue;
        }
        if (drain && n != SWARM_ECLOSED && n != SWARM_EAGAIN && n != SWARM_ETIMEDOUT)
            continue;
        /* SWARM_ECLOSED: the channel is closed and drained (or, draining an open channel, it is
         * empty); nothing else is expected. */
        swarm__mutex_lock(&p->mu);
        worker_leave_locked(p, s, false);
        swarm__mutex_unlock(&p->mu);
        return NULL;
    }
}

/* ---- worker management (ctl and mu held) -------------------------------------------------- */

/* Joins slots whose thread has left. Their last action under mu marked them EXITED, so the
 * join only waits for the thread's return. */
static void reap_locked(swarm_pool *p)
{
    for (uint32_t i = 0; i < p->n_slots; i++) {
        pool_slot *s = p->slots[i];
        if (s->joinable && atomic_load_explicit(&s->state, memory_order_relaxed) == SLOT_EXITED) {
            swarm__thread_join(s->thread);
            s->joinable = false;
            atomic_store_explicit(&s->state, SLOT_FREE, memory_order_relaxed);
        }
    }
}

static int spawn_locked(swarm_pool *p)
{
    pool_slot *s = NULL;
    for (uint32_t i = 0; i < p->n_slots; i++) {
        if (atomic_load_explicit(&p->slots[i]->state, memory_order_relaxed) == SLOT_FREE &&
            !p->slots[i]->joinable) {
            s = p->slots[i];
            break;
        }
    }
    if (!s && p->n_slots >= p->opts.max_workers) {
        /* Every slot is taken; a worker that has left since the reap frees one. */
        reap_locked(p);
        for (uint32_t i = 0; i < p->n_slots && !s; i++) {
            if (atomic_load_explicit(&p->slots[i]->state, memory_order_relaxed) == SLOT_FREE)
                s = p->slots[i];
        }
    }
    if (!s) {
        if (p->n_slots >= p->opts.max_workers)
            return SWARM_EINTERNAL; /* cannot happen: live <= max_workers */
        s = slot_alloc(p, p->n_slots);
        if (!s)
            return SWARM_ENOMEM;
        p->slots[p->n_slots++] = s;
    }
    /* The slot's previous thread (if any) was joined, so nobody watches the token. */
    (void)swarm_cancel_reset(s->wake);
    atomic_store_explicit(&s->retire, 0, memory_order_relaxed);
    atomic_store_explicit(&s->state, SLOT_STARTING, memory_order_relaxed);
    int trc = swarm__thread_create(&s->thread, "pool-worker", worker_main, s);
    if (trc != 0) {
        atomic_store_explicit(&s->state, SLOT_FREE, memory_order_relaxed);
        return trc;
    }
    s->joinable = true;
    p->live++;
    p->started++;
    return 0;
}

static void retire_slot_locked(swarm_pool *p, pool_slot *s)
{
    /* Release pairs with the worker's acquire load at the top of its loop. */
    atomic_store_explicit(&s->retire, 1, memory_order_release);
    p->retiring++;
    (void)swarm_cancel_trigger(s->wake);
}

static bool slot_live(const pool_slot *s)
{
    uint32_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
    return s->joinable && st != SLOT_EXITED && st != SLOT_FREE;
}

/* Makes the number of workers not retiring equal @n. */
static int apply_target_locked(swarm_pool *p, uint32_t n)
{
    uint32_t effective = p->live - p->retiring;
    int err = 0;
    if (n > effective) {
        uint32_t need = n - effective;
        /* Take back retirements first: a worker that has not left keeps going. Its token may
         * have fired: a receive then returns SWARM_ECANCELED and a warm-up may fail, and the
         * worker, seeing retire clear, re-arms the token and carries on (warming up again).
         * Since every live slot is either kept or retiring, this and the spawns below always
         * reach @n (slots of workers that have left are reaped on the way). */
        for (uint32_t i = 0; i < p->n_slots && need > 0; i++) {
            pool_slot *s = p->slots[i];
            if (slot_live(s) && atomic_load_explicit(&s->retire, memory_order_relaxed)) {
                atomic_store_explicit(&s->retire, 0, memory_order_relaxed);
                p->retiring--;
                need--;
            }
        }
        /* A closed, drained channel would make new workers leave at once. */
        if (need > 0 && swarm_chan_is_closed(p->opts.input) && swarm_chan_len(p->opts.input) == 0)
            return 0;
        while (need > 0) {
            if (p->live >= p->opts.max_workers) /* cannot happen: see above */
                break;
            int rc = spawn_locked(p);
            if (rc != 0) {
                err = rc;
                break;
            }
            need--;
        }
    } else if (n < effective) {
        uint32_t k = effective - n;
        /* Starting first, then idle, then busy; newest slots first within each class. */
        static const uint32_t order[] = {SLOT_STARTING, SLOT_IDLE, SLOT_BUSY};
        for (size_t o = 0; o < 3 && k > 0; o++) {
            for (uint32_t i = p->n_slots; i-- > 0 && k > 0;) {
                pool_slot *s = p->slots[i];
                if (!slot_live(s) || atomic_load_explicit(&s->retire, memory_order_relaxed) ||
                    atomic_load_explicit(&s->state, memory_order_relaxed) != order[o])
                    continue;
                retire_slot_locked(p, s);
                k--;
            }
        }
        /* A worker may have changed state between the passes: sweep whatever is left. */
        for (uint32_t i = p->n_slots; i-- > 0 && k > 0;) {
            pool_slot *s = p->slots[i];
            if (slot_live(s) && !atomic_load_explicit(&s->retire, memory_order_relaxed)) {
                retire_slot_locked(p, s);
                k--;
            }
        }
    }
    return err;
}

/* ---- public API ---------------------------------------------------------------------------- */

int swarm__pool_opts_init(swarm_pool_opts *opts)
{
    if (!opts)
        return SWARM_EINVAL;
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
    opts->workers = 1;
    opts->max_workers = 64;
    return 0;
}

static void pool_free(swarm_pool *p)
{
    if (p->slots) {
        for (uint32_t i = 0; i < p->n_slots; i++)
            slot_free(p, p->slots[i]);
        swarm__free(&p->alloc, p->slots, p->opts.max_workers * sizeof *p->slots);
    }
    if (p->all) {
        uint32_t n = atomic_load_explicit(&p->n_all, memory_order_relaxed);
        for (uint32_t i = 0; i < n && i < p->all_cap; i++)
            swarm_response_destroy(p->all[i]);
        swarm__free(&p->alloc, p->all, (size_t)p->all_cap * sizeof *p->all);
    }
    swarm_chan_destroy(p->spare);
    swarm__free(&p->alloc, p->scratch, SWARM__HIST_BUCKETS * sizeof *p->scratch);
    swarm_cancel_destroy(p->abort);
    swarm_engine_destroy(p->opts.engine); /* NULL before the reference was taken */
    swarm_chan_destroy(p->held_input);    /* the channel references, likewise */
    swarm_chan_destroy(p->held_results);
    swarm_allocator a = p->alloc;
    swarm__free(&a, p, sizeof *p);
}

int swarm_pool_create(swarm_pool **out, const swarm_pool_opts *opts)
{
    if (!out || !opts)
        return SWARM_EINVAL;
    swarm_pool_opts o;
    swarm_pool_opts_init(&o);
    int rc = SWARM__OPTS_COPY(pool_opts, &o, opts);
    if (rc != 0)
        return rc;
    if (!o.input || !o.engine || o.max_workers == 0 || o.max_workers > POOL_MAX_WORKERS ||
        o.workers > o.max_workers || o.batch_max > POOL_MAX_BATCH ||
        o.batch_min > (o.batch_max > 1 ? o.batch_max : 1) || o.batch_linger_ns < 0 ||
        o.keep_input_open > 1 || o.timing > SWARM_POOL_TIME_EVERY)
        return SWARM_EINVAL;
    if (swarm_chan_elem_size(o.input) != sizeof(swarm_task))
        return SWARM_EINVAL;
    if (o.results && swarm_chan_elem_size(o.results) != sizeof(swarm_pool_result))
        return SWARM_EINVAL;
    swarm_allocator a;
    if ((rc = swarm__alloc_init(&a, o.alloc)) != 0)
        return rc;

    swarm_pool *p = swarm__alloc(&a, sizeof *p, SWARM_CACHELINE);
    if (!p)
        return SWARM_ENOMEM;
    p->alloc = a;
    p->opts = o;
    p->opts.alloc = NULL;  /* the copy in p->alloc is what counts */
    p->opts.engine = NULL; /* set once the reference is taken, below */
    p->fork_gen = swarm__fork_watch();
    p->batch = o.batch_max > 1 ? o.batch_max : 1;
    p->runs = p->batch == 1 && swarm__engine_runs_sequential(o.engine);
    p->slot_cap = p->runs ? RUN_MAX : p->batch;
    p->held_cap = p->batch > 1 ? p->batch : p->runs ? RUN_MAX : PREFETCH;
    swarm_response_opts_init(&p->ropts);
    if (o.response_capacity)
        p->ropts.initial_capacity = o.response_capacity;
    p->ropts.alloc = &p->alloc;
    p->owned_outputs = !o.on_result && o.results;
    rc = SWARM_ENOMEM;
    if (p->owned_outputs) {
        /* Responses in slots, in the result channel, held, and received but not released yet:
         * bounded so that the recycling channel can always take every one back. */
        uint64_t cap = 2 * swarm_chan_capacity(o.results) +
                       (uint64_t)(p->slot_cap + p->held_cap) * o.max_workers;
        p->all_cap = cap > (1u << 22) ? (1u << 22) : (uint32_t)cap;
        p->all = swarm__alloc(&a, (size_t)p->all_cap * sizeof *p->all, 16);
        swarm_chan_opts co;
        swarm_chan_opts_init(&co);
        co.capacity = p->all_cap;
        co.elem_size = sizeof(swarm_response *);
        co.alloc = &p->alloc;
        if (!p->all || (rc = swarm_chan_create(&p->spare, &co)) != 0) {
            pool_free(p);
            return rc == 0 ? SWARM_ENOMEM : rc;
        }
    }
    p->slots = swarm__alloc(&a, o.max_workers * sizeof *p->slots, 16);
    p->scratch = swarm__alloc(&a, SWARM__HIST_BUCKETS * sizeof *p->scratch, 16);
    if (!p->slots || !p->scratch || swarm_cancel_create(&p->abort, &a) != 0) {
        pool_free(p);
        return SWARM_ENOMEM;
    }
    swarm_engine_retain(o.engine);
    p->opts.engine = o.engine;
    /* The pool keeps its channels alive too: a host that destroys a channel before the pool
     * drops only its own reference, and the pool goes on using valid memory. */
    swarm__chan_retain(o.input);
    p->held_input = o.input;
    if (o.results) {
        swarm__chan_retain(o.results);
        p->held_results = o.results;
    }
    swarm__cond_init(&p->exited_cv);
    swarm__mutex_init(&p->mu);
    swarm__mutex_init(&p->ctl);
    atomic_store_explicit(&p->target, o.workers, memory_order_relaxed);

    swarm__mutex_lock(&p->ctl);
    swarm__mutex_lock(&p->mu);
    rc = apply_target_locked(p, o.workers);
    if (rc != 0) {
        /* Undo: retire and join what started. */
        apply_target_locked(p, 0);
        while (p->live > 0)
            swarm__cond_wait(&p->exited_cv, &p->mu);
        reap_locked(p);
    }
    swarm__mutex_unlock(&p->mu);
    swarm__mutex_unlock(&p->ctl);
    if (rc != 0) {
        swarm__cond_destroy(&p->exited_cv);
        swarm__mutex_destroy(&p->mu);
        swarm__mutex_destroy(&p->ctl);
        pool_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

static inline bool forked(const swarm_pool *p)
{
    return SWARM_UNLIKELY(swarm__fork_gen() != p->fork_gen);
}

int swarm_pool_resize(swarm_pool *p, uint32_t n)
{
    if (!p)
        return SWARM_EINVAL;
    if (forked(p))
        return SWARM_ESTATE;
    swarm__mutex_lock(&p->ctl);
    int rc;
    if (atomic_load_explicit(&p->stopping, memory_order_relaxed)) {
        rc = SWARM_ESTATE;
    } else if (n > p->opts.max_workers) {
        rc = SWARM_ERANGE;
    } else {
        swarm__mutex_lock(&p->mu);
        reap_locked(p);
        atomic_store_explicit(&p->target, n, memory_order_relaxed);
        rc = apply_target_locked(p, n);
        swarm__mutex_unlock(&p->mu);
    }
    swarm__mutex_unlock(&p->ctl);
    return rc;
}

uint32_t swarm_pool_target(const swarm_pool *p)
{
    return p ? atomic_load_explicit(&p->target, memory_order_relaxed) : 0;
}

static int pool_stop(swarm_pool *p, int64_t timeout_ns, swarm_task *left, size_t left_cap,
                     uint64_t *n_left)
{
    swarm__mutex_lock(&p->ctl);
    if (atomic_load_explicit(&p->stopping, memory_order_relaxed)) {
        swarm__mutex_unlock(&p->ctl);
        return SWARM_ESTATE;
    }
    /* From here on resize fails with SWARM_ESTATE, so the waits below can run without ctl: a
     * result callback that calls resize must not block on it while stop waits for its worker. */
    atomic_store_explicit(&p->stopping, 1, memory_order_relaxed);
    int64_t deadline = swarm__deadline(timeout_ns);
    bool keep_open = p->opts.keep_input_open != 0;
    if (!keep_open)
        (void)swarm_chan_close(p->opts.input);
    swarm__mutex_lock(&p->mu);
    reap_locked(p);
    if (keep_open) {
        /* Workers drain without waiting from now on; wake the parked ones (they re-arm their
         * token, see worker_main). Release pairs with the acquire load in worker_main(). */
        atomic_store_explicit(&p->draining, 1, memory_order_release);
        for (uint32_t i = 0; i < p->n_slots; i++)
            if (slot_live(p->slots[i]))
                (void)swarm_cancel_trigger(p->slots[i]->wake);
    }
    /* Draining needs a worker: if every live worker is leaving and work is queued, start one. */
    if (timeout_ns != 0 && p->live == p->retiring && swarm_chan_len(p->opts.input) > 0)
        (void)spawn_locked(p);
    swarm__mutex_unlock(&p->mu);
    swarm__mutex_unlock(&p->ctl);

    /* Workers leave by themselves once the closed channel is drained. */
    swarm__mutex_lock(&p->mu);
    if (deadline != INT64_MAX) {
        while (p->live > 0) {
            if (swarm__cond_wait_until(&p->exited_cv, &p->mu, deadline) == SWARM_ETIMEDOUT)
                break;
        }
    } else {
        while (p->live > 0)
            swarm__cond_wait(&p->exited_cv, &p->mu);
    }
    if (p->live > 0) {
        /* Deadline: everyone leaves after the current task, which is asked to stop. The slot
         * table only changes under ctl and mu, and nothing adds slots once stopping is set. */
        for (uint32_t i = 0; i < p->n_slots; i++) {
            pool_slot *s = p->slots[i];
            if (slot_live(s) && !atomic_load_explicit(&s->retire, memory_order_relaxed))
                retire_slot_locked(p, s);
        }
        (void)swarm_cancel_trigger(p->abort);
        while (p->live > 0)
            swarm__cond_wait(&p->exited_cv, &p->mu);
    }
    swarm__mutex_unlock(&p->mu);

    swarm__mutex_lock(&p->ctl);
    swarm__mutex_lock(&p->mu);
    reap_locked(p);
    atomic_store_explicit(&p->target, 0, memory_order_relaxed);
    swarm__mutex_unlock(&p->mu);
    swarm__mutex_unlock(&p->ctl);
    /* Every worker was joined: their held results are final. Release pairs with the acquire
     * load in swarm_pool_take_undelivered(). */
    atomic_store_explicit(&p->stopped, 1, memory_order_release);

    /* No worker is left: whatever the channel still holds was never taken. A shared channel's
     * queue belongs to its other consumers. */
    size_t moved = 0;
    if (keep_open) {
        if (n_left)
            *n_left = 0;
        return 0;
    }
    while (moved < left_cap && swarm_chan_try_recv(p->opts.input, &left[moved]) == 0)
        moved++;
    if (n_left)
        *n_left = moved + swarm_chan_len(p->opts.input);
    return (int)(moved > INT32_MAX ? INT32_MAX : moved);
}

int swarm_pool_stop(swarm_pool *p, int64_t timeout_ns, swarm_task *left, size_t left_cap,
                    uint64_t *n_left)
{
    if (!p || timeout_ns < -1 || (!left && left_cap > 0) || left_cap > INT32_MAX)
        return SWARM_EINVAL;
    /* On a worker of this pool the wait for every worker to leave would wait for itself. */
    if (tls_pool == p || forked(p))
        return SWARM_ESTATE;
    return pool_stop(p, timeout_ns, left, left_cap, n_left);
}

void swarm_pool_destroy(swarm_pool *p)
{
    if (!p || tls_pool == p || forked(p))
        return;
    if (!atomic_load_explicit(&p->stopping, memory_order_relaxed))
        (void)pool_stop(p, 0, NULL, 0, NULL);
    swarm__cond_destroy(&p->exited_cv);
    swarm__mutex_destroy(&p->mu);
    swarm__mutex_destroy(&p->ctl);
    pool_free(p);
}

int swarm_pool_get_histogram(swarm_pool *p, uint32_t kind, const int64_t *le_ns, uint32_t n_le,
                             uint64_t *cum_counts, uint64_t *count, int64_t *sum_ns)
{
    if (!p || kind > SWARM_POOL_HIST_SERVICE || n_le > 256 || (n_le > 0 && (!le_ns || !cum_counts)))
        return SWARM_EINVAL;
    if (forked(p))
        return SWARM_ESTATE;
    for (uint32_t i = 0; i < n_le; i++)
        if (le_ns[i] < 0 || (i > 0 && le_ns[i] <= le_ns[i - 1]))
            return SWARM_EINVAL;
    uint64_t total = 0;
    int64_t sum = 0;
    swarm__mutex_lock(&p->mu);
    memset(p->scratch, 0, SWARM__HIST_BUCKETS * sizeof *p->scratch);
    for (uint32_t i = 0; i < p->n_slots; i++) {
        const swarm__hist *h =
            kind == SWARM_POOL_HIST_WAIT ? &p->slots[i]->wait_hist : &p->slots[i]->service_hist;
        (void)swarm__hist_merge(p->scratch, h);
        int64_t s = atomic_load_explicit(&h->sum, memory_order_relaxed);
        sum = sum > INT64_MAX - s ? INT64_MAX : sum + s;
    }
    /* Buckets ascend, so one pass walks the bounds in step. */
    uint32_t j = 0;
    uint64_t acc = 0;
    for (uint32_t b = 0; b < SWARM__HIST_BUCKETS; b++) {
        int64_t up = swarm__hist_upper(b);
        while (j < n_le && up > le_ns[j])
            cum_counts[j++] = acc;
        acc += p->scratch[b];
    }
    while (j < n_le)
        cum_counts[j++] = acc;
    total = acc;
    swarm__mutex_unlock(&p->mu);
    if (count)
        *count = total;
    if (sum_ns)
        *sum_ns = sum;
    return 0;
}

int swarm_pool_get_stats(swarm_pool *p, swarm_pool_stats *stats)
{
    if (!p || !stats || stats->size < offsetof(swarm_pool_stats, in_flight))
        return SWARM_EINVAL;
    if (forked(p))
        return SWARM_ESTATE;
    swarm_pool_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    swarm__mutex_lock(&p->mu);
    st.target = atomic_load_explicit(&p->target, memory_order_relaxed);
    st.live = p->live;
    st.retiring = p->retiring;
    st.stopped = atomic_load_explicit(&p->stopping, memory_order_relaxed);
    st.started = p->started;
    st.retired = p->retired;
    st.start_failures = p->start_failures;
    int64_t wmax = 0, smax = 0;
    for (int pass = 0; pass < 2; pass++) {
        memset(p->scratch, 0, SWARM__HIST_BUCKETS * sizeof *p->scratch);
        for (uint32_t i = 0; i < p->n_slots; i++) {
            pool_slot *s = p->slots[i];
            int64_t m = swarm__hist_merge(p->scratch, pass ? &s->service_hist : &s->wait_hist);
            if (pass == 0) {
                if (m > wmax)
                    wmax = m;
                uint32_t state = atomic_load_explicit(&s->state, memory_order_relaxed);
                if (slot_live(s)) {
                    if (state == SLOT_STARTING)
                        st.starting++;
                    else if (state == SLOT_BUSY)
                        st.busy++;
                    else if (state == SLOT_IDLE)
                        st.idle++;
                }
                st.in_flight += atomic_load_explicit(&s->in_flight, memory_order_relaxed);
                st.taken += atomic_load_explicit(&s->taken, memory_order_relaxed);
                st.completed += atomic_load_explicit(&s->completed, memory_order_relaxed);
                st.failed += atomic_load_explicit(&s->failed, memory_order_relaxed);
                st.undelivered += atomic_load_explicit(&s->undelivered, memory_order_relaxed);
                st.batches += atomic_load_explicit(&s->batches, memory_order_relaxed);
                st.outputs_dropped +=
                    atomic_load_explicit(&s->outputs_dropped, memory_order_relaxed);
                st.held += atomic_load_explicit(&s->n_held, memory_order_relaxed);
                st.wait_sum_ns = swarm__time_add(
                    st.wait_sum_ns, atomic_load_explicit(&s->wait_hist.sum, memory_order_relaxed));
            } else {
                if (m > smax)
                    smax = m;
                st.service_sum_ns =
                    swarm__time_add(st.service_sum_ns, atomic_load_explicit(&s->service_hist.sum,
                                                                            memory_order_relaxed));
            }
        }
        if (pass == 0) {
            st.wait_p50_ns = swarm__hist_quantile(p->scratch, 0.50);
            st.wait_p90_ns = swarm__hist_quantile(p->scratch, 0.90);
            st.wait_p99_ns = swarm__hist_quantile(p->scratch, 0.99);
        } else {
            st.service_p50_ns = swarm__hist_quantile(p->scratch, 0.50);
            st.service_p90_ns = swarm__hist_quantile(p->scratch, 0.90);
            st.service_p99_ns = swarm__hist_quantile(p->scratch, 0.99);
        }
    }
    swarm__mutex_unlock(&p->mu);
    st.wait_max_ns = wmax;
    st.service_max_ns = smax;
    if (st.starting > st.live)
        st.starting = st.live;
    st.ready = st.live - st.starting;
    st.queued = swarm_chan_len(p->opts.input);
    swarm__stats_copy_out(stats, &st, sizeof st);
    return 0;
}

int swarm_pool_submit(swarm_pool *p, swarm_task *task, int64_t timeout_ns)
{
    if (!p || !task || timeout_ns < -1)
        return SWARM_EINVAL;
    if (forked(p))
        return SWARM_ESTATE;
    if (task->enqueued_ns == 0)
        task->enqueued_ns = swarm_now_ns();
    if (task->deadline_ns < 0)
        task->deadline_ns = SWARM_NO_DEADLINE;
    return swarm_chan_send_timeout(p->opts.input, task, timeout_ns);
}

int swarm_pool_result_release(swarm_pool *p, swarm_pool_result *r)
{
    if (!p || !r)
        return SWARM_EINVAL;
    if (r->owned && r->response && p->spare) {
        /* The recycling channel holds every response the pool may create (all_cap), so this
         * never finds it full; the worker that takes it back resets it before use. */
        swarm_response *resp = r->response;
        (void)swarm_chan_try_send(p->spare, &resp);
    }
    r->response = NULL;
    r->output = NULL;
    r->owned = 0;
    return 0;
}

int swarm_pool_take_undelivered(swarm_pool *p, swarm_pool_result *out, size_t cap)
{
    if (!p || (!out && cap > 0))
        return SWARM_EINVAL;
    if (forked(p) || !atomic_load_explicit(&p->stopped, memory_order_acquire))
        return SWARM_ESTATE;
    size_t moved = 0;
    swarm__mutex_lock(&p->mu);
    for (uint32_t i = 0; i < p->n_slots && moved < cap; i++) {
        pool_slot *s = p->slots[i];
        uint32_t h = atomic_load_explicit(&s->n_held, memory_order_relaxed);
        while (h > 0 && moved < cap) {
            out[moved++] = s->held[--h];
            atomic_store_explicit(&s->n_held, h, memory_order_relaxed);
        }
    }
    swarm__mutex_unlock(&p->mu);
    return (int)(moved > INT32_MAX ? INT32_MAX : moved);
}

/* ---- for the autoscaler (pool_internal.h) --------------------------------------------------- */

int swarm__pool_observe(swarm_pool *p, swarm__pool_obs *o)
{
    if (forked(p))
        return SWARM_ESTATE;
    memset(o, 0, sizeof *o);
    swarm__mutex_lock(&p->mu);
    o->target = atomic_load_explicit(&p->target, memory_order_relaxed);
    for (uint32_t i = 0; i < p->n_slots; i++) {
        pool_slot *s = p->slots[i];
        o->in_flight += atomic_load_explicit(&s->in_flight, memory_order_relaxed);
        o->completions += atomic_load_explicit(&s->completed, memory_order_relaxed) +
                          atomic_load_explicit(&s->failed, memory_order_relaxed);
        o->service_sum_ns = swarm__time_add(
            o->service_sum_ns, atomic_load_explicit(&s->service_hist.sum, memory_order_relaxed));
        /* Retiring workers are leaving: neither ready nor pending capacity. */
        if (!slot_live(s) || atomic_load_explicit(&s->retire, memory_order_relaxed))
            continue;
        if (atomic_load_explicit(&s->state, memory_order_relaxed) == SLOT_STARTING)
            o->starting++;
        else
            o->ready++;
    }
    swarm__mutex_unlock(&p->mu);
    o->queued = swarm_chan_len(p->opts.input);
    o->max_workers = p->opts.max_workers;
    o->concurrency = p->batch;
    o->input = p->opts.input;
    return 0;
}

uint64_t swarm__pool_fork_gen(const swarm_pool *p)
{
    return p->fork_gen;
}

bool swarm__pool_on_worker(const swarm_pool *p)
{
    return tls_pool == p;
}

int swarm_pool_observe(swarm_pool *p, double target_per_worker, double activation,
                       swarm_policy_obs *obs)
{
    if (!p || !obs || obs->size < SWARM_POLICY_OBS_V1_SIZE || !(target_per_worker >= 0) ||
        target_per_worker > 1e300 || !(activation >= 0) || activation > 1e300)
        return SWARM_EINVAL;
    swarm__pool_obs po;
    int rc = swarm__pool_observe(p, &po);
    if (rc != 0)
        return rc;
    swarm_chan_stats cs;
    memset(&cs, 0, sizeof cs);
    cs.size = sizeof cs;
    (void)swarm_chan_get_stats(po.input, &cs);
    swarm_policy_obs o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    int32_t cur = po.target > INT32_MAX ? INT32_MAX : (int32_t)po.target;
    int32_t ready = po.ready > (uint32_t)cur ? cur : (int32_t)po.ready;
    int32_t starting = po.starting > (uint32_t)(cur - ready) ? cur - ready : (int32_t)po.starting;
    o.current_replicas = cur;
    o.ready_replicas = ready;
    o.starting_replicas = starting;
    o.n_metrics = 1;
    o.metrics[0].kind = SWARM_METRIC_TOTAL;
    o.metrics[0].value = (double)po.queued;
    o.metrics[0].in_flight = (double)po.in_flight;
    o.metrics[0].target = target_per_worker > 0 ? target_per_worker : (double)po.concurrency;
    o.metrics[0].activation = activation;
    o.arrivals = cs.sent;
    o.completions = po.completions;
    o.service_total_s = (double)po.service_sum_ns / 1e9;
    o.concurrency = po.concurrency;
    uint32_t want = obs->size < sizeof o ? obs->size : (uint32_t)sizeof o;
    memcpy(obs, &o, want);
    obs->size = want;
    return 0;
}
