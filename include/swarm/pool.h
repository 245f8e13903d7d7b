/* SPDX-License-Identifier: MIT */
/*
 * swarm_pool: an elastic pool of agent workers, the in-process actuator of the scaling loop.
 *
 * N worker threads take tasks (swarm_task, carried by value) from a host-owned channel, one at a
 * time or as dynamic batches through swarm_chan_recv_batch(), run them through an engine, and
 * deliver each result with its correlation id to a callback or a result channel.
 *
 *   producers --swarm_pool_submit(swarm_task)--> [input channel] --> workers --> engine
 *                                                                     |
 *                                   result callback / result channel <+
 *
 * swarm_pool_resize() may be called at any time from any thread. Scale-up starts workers;
 * scale-down retires workers that are starting or idle first, and busy workers only after they
 * finish their current task. A worker leaves only between tasks, so a task taken from the channel
 * is always run and delivered: across resize and stop, every task sent is either delivered once
 * (callback or result channel) or handed back by swarm_pool_stop() (the task) or by
 * swarm_pool_take_undelivered() (its result), never lost and never run twice.
 *
 * Workers that are running the host's warm-up hook (e.g. a model load) are "starting": they take
 * no work and are reported separately, so that a scaling policy can count them as pending
 * capacity rather than as ready replicas.
 *
 * Lock order (src/pool.c): the control mutex (resize, stop), then the state mutex. No callback
 * runs while either is held. Allocation happens in create and in resize (the first time a worker
 * slot is used), never per task; with a result channel, the outputs handed to it are responses
 * that the pool allocates until the working set is reached, then recycles.
 *
 * Lifetimes. The pool holds a reference to its engine (swarm_engine_retain()), so the host may
 * drop its own at any time, and to its input and result channels: a host that destroys a channel
 * before the pool drops only its own reference, the pool keeps using it, and the channel (with
 * what is still queued, through its drop callback) is released when the pool is. By default
 * swarm_pool_stop() closes the input channel, as 0.1.0 did; with keep_input_open the pool only
 * borrows it, so several pools can serve one channel (blue/green replacement). Calls that cannot
 * work from a pool's own worker thread (stop and destroy from a result, stream or warm-up callback
 * or from inside the engine) return SWARM_ESTATE instead of deadlocking.
 *
 * Timing. Queue-wait and service-time statistics come from the engine calls the pool times. An
 * engine call that takes 20 us or more is always timed; for faster ones (where two clock reads
 * would cost more than the call) the pool times one call in 16 and weighs each sample by 16, so
 * counts, sums and percentiles stay unbiased estimates. opts.timing = SWARM_POOL_TIME_EVERY times
 * every call. With such a fast engine a single-task worker also takes up to 16 queued tasks per
 * receive and runs them one by one (one channel operation per run); they count as in flight. An
 * engine flagged SWARM_ENGINE_F_SEQUENTIAL_BATCH (engine.h) instead gets them as one run through
 * its infer_batch: up to 64 tasks, at most queued / target workers, one engine entry per run;
 * a run is always timed, and each of its tasks counts the run's mean service time.
 *
 * fork(): a pool created before fork() is dead in the child: every call returns SWARM_ESTATE
 * (destroy does nothing) instead of deadlocking on a lock a vanished thread held. See common.h.
 */
#ifndef SWARM_POOL_H
#define SWARM_POOL_H

#include "swarm/common.h"
#include "swarm/chan.h"
#include "swarm/engine.h"
#include "swarm/policy.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * One unit of work, carried by value through the input channel, whose elem_size must be
 * sizeof(swarm_task). The pool never dereferences payload or user; it passes them to the engine
 * (as the request's payload and user) and back with the result, so the host frees them there.
 */
typedef struct swarm_task {
    uint64_t id;          /**< correlation id; becomes the request id */
    const void *payload;  /**< input bytes, owned by the host until the result is delivered */
    uint64_t payload_len; /**< bytes at payload */
    void *user;           /**< the host's, passed through untouched */
    int64_t enqueued_ns;  /**< swarm_now_ns() when sent; 0: unknown (queue wait not recorded) */
    int64_t deadline_ns;  /**< absolute deadline for the engine; SWARM_NO_DEADLINE (0),
                               INT64_MAX or any negative value: none (see common.h) */
    int32_t priority;     /**< copied to the request (advisory) */
    uint32_t reserved_;   /**< keep 0 */
    /** Inference parameters for the request (max tokens, temperature ...), borrowed like the
     *  payload until the result is delivered; NULL: swarm_request_init()'s defaults. (0.2) */
    const swarm_infer_params *params;
} swarm_task;

/**
 * The outcome of one task. Delivered to the result callback (valid only during the call) or sent
 * by value to the result channel (elem_size sizeof(swarm_pool_result)).
 *
 * Through a result channel the result owns its output: response and output stay valid until
 * swarm_pool_result_release() (once per result received), which recycles the response. If the
 * receiver holds more outputs unreleased than the pool keeps (the result channel's capacity, once
 * more in the receiver's hands, plus what the workers hold), further results arrive with
 * response and output NULL and are counted in stats.outputs_dropped.
 */
typedef struct swarm_pool_result {
    uint32_t size;       /**< sizeof(swarm_pool_result) */
    int32_t status;      /**< 0, or the engine's negative swarm_err (SWARM_ECANCELED when a
                              stop deadline interrupted it) */
    uint32_t worker;     /**< index of the worker slot that ran it */
    uint32_t batch;      /**< size of the batch it ran in (1: single; for an engine with
                              SWARM_ENGINE_F_SEQUENTIAL_BATCH, the length of the run of
                              prefetched tasks it was served in, whose call times
                              start_ns/end_ns are; the service-time statistics count each task
                              of a run as the run's mean) */
    swarm_task task;     /**< the task as received (payload and user still the host's) */
    int64_t start_ns;    /**< engine call started; 0 if the pool did not time it (see the
                              timing note at the top) */
    int64_t end_ns;      /**< engine call returned; 0 if not timed */
    uint64_t output_len; /**< bytes of output */
    /** The response: read the output, error message and usage with swarm_response_*(). In the
     *  result callback it is the worker's, valid during the call. Through a result channel it is
     *  owned by the result until swarm_pool_result_release() (NULL if outputs_dropped). */
    swarm_response *response;
    /** The output bytes (NUL-terminated), valid as long as response; NULL when response is. */
    const void *output;
    uint32_t owned;      /**< 1: response belongs to this result (result channel) and must be
                              released with swarm_pool_result_release(); 0: borrowed */
    uint32_t reserved2_; /**< 0 */
} swarm_pool_result;

/**
 * Receives each result, on the worker thread that ran the task, no library lock held. It may call
 * any pool function except swarm_pool_stop() and swarm_pool_destroy() of the same pool, which
 * return SWARM_ESTATE there (destroy does nothing); it may call swarm_pool_resize(). @p res and
 * its response are valid only during the call.
 */
typedef void (*swarm_pool_result_fn)(void *ctx, const swarm_pool_result *res);

/**
 * Warm-up hook: runs on a new worker's thread before it takes any task (load a model, open a
 * connection). The worker counts as starting meanwhile. @p cancel fires if the worker is retired
 * (scale-down) or the pool stops during warm-up; long hooks should watch it (e.g. pass it to
 * swarm_chan_recv_ex() or poll swarm_cancel_is_canceled()). Return 0 to become ready, or a
 * negative swarm_err: the worker then exits without taking work (counted in start_failures) and
 * the next swarm_pool_resize() to a larger target than live workers starts a replacement.
 * No library lock is held.
 */
typedef int (*swarm_pool_warmup_fn)(void *ctx, uint32_t worker, swarm_cancel *cancel);

/** Creation options. Fill with swarm_pool_opts_init(), then set at least input and engine. */
typedef struct swarm_pool_opts {
    /** sizeof(swarm_pool_opts), set by swarm_pool_opts_init(). Accepted from the 0.1.0 size (the
     * fields through alloc) up; a smaller size, a larger one with a nonzero byte past this struct,
     * or one above 4096: SWARM_EINVAL. */
    uint32_t size;
    uint32_t workers;        /**< workers started by create; default 1 (0 is allowed: idle pool) */
    uint32_t max_workers;    /**< upper bound for resize, 1..4096; default 64 */
    uint32_t batch_max;      /**< 0 or 1: one task per engine call (default; a fast engine
                                  with SWARM_ENGINE_F_SEQUENTIAL_BATCH gets runs of up to 64
                                  already queued tasks per infer_batch call, each at most its
                                  share of the queue); > 1: dynamic
                                  batches of up to this many through infer_batch, <= 4096 */
    uint32_t batch_min;      /**< batch: tasks to wait for before the linger ends early;
                                  0: 1 */
    uint32_t reserved_;      /**< keep 0 */
    int64_t batch_linger_ns; /**< batch: time to wait for more after the first task; default 0
                                  (take what is queued) */
    swarm_chan *input;       /**< required, borrowed: elem_size == sizeof(swarm_task) */
    swarm_engine *engine;    /**< required; the pool takes a reference (swarm_engine_retain())
                                  and drops it in destroy, so the host may drop its own */
    swarm_pool_result_fn on_result; /**< optional: called for each result */
    void *result_ctx;               /**< passed to on_result */
    swarm_chan *results;            /**< optional, borrowed: elem_size == sizeof(swarm_pool_result);
                                         used when on_result is NULL. Sends block while it is full */
    swarm_pool_warmup_fn warmup;    /**< optional: see swarm_pool_warmup_fn */
    void *warmup_ctx;               /**< passed to warmup */
    uint64_t response_capacity;     /**< initial output bytes per response; 0: 4096 */
    const swarm_allocator *alloc;   /**< NULL: libc. Copied at create */
    /* Appended in 0.2: a size that predates them reads the defaults. */
    uint32_t keep_input_open; /**< 0 (default, as 0.1.0): swarm_pool_stop() closes the input
                                   channel. 1: the pool only borrows it: stop leaves it open and
                                   queued tasks stay in it for other consumers (see stop) */
    uint32_t timing;          /**< SWARM_POOL_TIME_SAMPLED (0, default) or SWARM_POOL_TIME_EVERY */
    swarm_response_stream_fn on_stream; /**< optional: sees every chunk each engine writes, on
                                   the worker's thread (streaming through a pool); non-zero
                                   return asks the engine to stop */
    void *stream_ctx;                   /**< passed to on_stream */
} swarm_pool_opts;

/** swarm_pool_opts.timing values. */
enum {
    SWARM_POOL_TIME_SAMPLED = 0, /**< time every call of 20 us or more, 1 in 16 faster ones */
    SWARM_POOL_TIME_EVERY = 1    /**< two clock reads per engine call, every call */
};

/** A snapshot of the pool. Counts of workers are read one after another while workers move. */
typedef struct swarm_pool_stats {
    uint32_t size;           /**< set by the caller to sizeof(swarm_pool_stats) */
    uint32_t target;         /**< workers asked for by the last resize (or create) */
    uint32_t live;           /**< worker threads running (starting + idle + busy, retiring
                                  included) */
    uint32_t starting;       /**< running the warm-up hook: pending capacity */
    uint32_t ready;          /**< live minus starting */
    uint32_t busy;           /**< running tasks */
    uint32_t idle;           /**< ready and waiting for work */
    uint32_t retiring;       /**< asked to leave, finishing their current task */
    uint32_t stopped;        /**< 1 once swarm_pool_stop() began */
    uint32_t reserved_;      /**< 0 */
    uint64_t in_flight;      /**< tasks taken from the channel and not yet delivered */
    uint64_t queued;         /**< tasks waiting in the input channel */
    uint64_t taken;          /**< tasks taken from the channel */
    uint64_t completed;      /**< results delivered with status 0 */
    uint64_t failed;         /**< results delivered with a negative status */
    uint64_t undelivered;    /**< results the result channel refused (closed); counted in
                                  completed/failed too */
    uint64_t batches;        /**< engine calls (a single task is a batch of 1) */
    uint64_t started;        /**< workers started, ever */
    uint64_t retired;        /**< workers that left (scale-down, stop, closed channel) */
    uint64_t start_failures; /**< warm-up hooks that failed (or response allocation) */
    int64_t wait_p50_ns;     /**< queue wait (enqueued_ns to engine call start), ns; 0 if */
    int64_t wait_p90_ns;     /**<   no sample yet. From a fixed log-linear histogram with */
    int64_t wait_p99_ns;     /**<   about 3 % relative error */
    int64_t service_p50_ns;  /**< engine call time percentiles, ns */
    int64_t service_p90_ns;  /**< */
    int64_t service_p99_ns;  /**< */
    int64_t wait_max_ns;     /**< largest queue wait seen */
    int64_t service_max_ns;  /**< largest engine call time seen */
    /* Appended in 0.2. */
    int64_t wait_sum_ns;      /**< summed queue wait of all tasks, ns (estimated when sampled) */
    int64_t service_sum_ns;   /**< summed engine call time of all tasks, ns (estimated when
                                   sampled): with completed + failed, the mean service time the
                                   load-aware policy needs */
    uint64_t held;            /**< undelivered results waiting for swarm_pool_take_undelivered() */
    uint64_t outputs_dropped; /**< results sent to the result channel without their output */
} swarm_pool_stats;

typedef struct swarm_pool swarm_pool;

/**
 * Fill @p opts with defaults (1 worker, at most 64, single tasks) and set its size.
 * @return 0; SWARM_EINVAL if @p opts is NULL.
 * Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_pool_opts_init(swarm_pool_opts *opts);

/**
 * Create a pool and start opts->workers workers.
 *
 * @param out   receives the pool; untouched on error.
 * @param opts  options; input and engine are required. Only opts->size bytes are read.
 * @return 0; SWARM_EINVAL for a NULL argument, no input or engine, an input (or result) channel
 *         of the wrong element size, workers > max_workers, max_workers 0 or > 4096,
 *         batch_max > 4096, batch_min > batch_max, a negative linger, an allocator without
 *         hooks; SWARM_ENOMEM; SWARM_EINTERNAL if a thread could not be started (nothing is
 *         left running or allocated on error).
 * Ownership: the caller owns the pool (release with swarm_pool_destroy()); the pool holds its
 *            own references to the engine and to the channels, so they may be destroyed by the
 *            caller in any order.
 * Thread safety: any thread. Blocking: no (workers run their warm-up on their own threads).
 */
SWARM_API int swarm_pool_create(swarm_pool **out, const swarm_pool_opts *opts);

/**
 * Set the number of workers to @p n. Scale-up starts workers (first taking back workers that were
 * asked to retire and have not left yet). Scale-down asks the surplus to leave: starting workers
 * first (their warm-up is canceled), then idle ones, then busy ones, which finish their current
 * task (or batch) first. Workers that have left are joined here. Returns without waiting for
 * retiring workers.
 *
 * @return 0; SWARM_EINVAL if @p p is NULL; SWARM_ERANGE if @p n > max_workers (nothing
 *         changes); SWARM_ESTATE after swarm_pool_stop() began or in a forked child;
 *         SWARM_ENOMEM or SWARM_EINTERNAL
 *         if a new worker could not be allocated or started (the target is still @p n, the
 *         workers started so far keep running, a later resize retries).
 * Thread safety: any thread, concurrently with everything but destroy (resize calls serialize).
 * Blocking: briefly (thread creation, joining workers that have already left).
 */
SWARM_API int swarm_pool_resize(swarm_pool *p, uint32_t n);

/**
 * Stop the pool: close the input channel (later sends by producers fail with SWARM_ECLOSED), let
 * workers take and run what is queued until @p timeout_ns passes, then retire every worker and
 * join them all. If the target is 0 while tasks are queued, one worker is started to drain.
 *
 * With keep_input_open the channel stays open: workers take what is queued (and what producers
 * add meanwhile) until the channel is empty or @p timeout_ns passes; what is still queued then
 * stays in the channel for its other consumers and is neither moved to @p left nor counted in
 * @p n_left.
 *
 * A stop with a timeout returns by its deadline (plus the time in-flight engine calls take to
 * notice their cancel token) even if nobody reads the result channel: a result the full channel
 * cannot take by then is not lost but held, counted in stats.held and stats.undelivered, and
 * handed back by swarm_pool_take_undelivered().
 *
 * With @p timeout_ns = SWARM_WAIT_FOREVER (-1) everything queued is run (drain). With a timeout
 * (0 stops at once), at the deadline the tasks still in flight (a worker's batch, or the up to 16
 * tasks a single-task worker took at once, 64 in a run) are asked to stop through their request's
 * cancel token (the engine sees SWARM_ECANCELED; their results are still delivered or held), and
 * the tasks still queued are not run: up to @p left_cap of them are moved to @p left (may be NULL
 * when left_cap is 0); any beyond that stay in the (closed) channel for the host to receive.
 *
 * @param n_left  receives the number of tasks not run (moved to @p left plus still queued); may
 *                be NULL.
 * @return the number of tasks moved to @p left (>= 0); SWARM_EINVAL if @p p is NULL, timeout is
 *         below -1, or @p left is NULL with left_cap > 0; SWARM_ESTATE if the pool was already
 *         stopped, when called on one of the pool's own worker threads (a result, stream or
 *         warm-up callback, or the engine; nothing is done) or in a forked child.
 * Ownership: tasks moved to @p left are the caller's again (payload and user included).
 * Thread safety: any thread except a pool callback's; once per pool.
 * Blocking: until every worker has left (in-flight engine calls must return).
 */
SWARM_API int swarm_pool_stop(swarm_pool *p, int64_t timeout_ns, swarm_task *left, size_t left_cap,
                              uint64_t *n_left);

/**
 * Destroy the pool: stops it first if needed (as swarm_pool_stop(p, 0, NULL, 0, NULL), leaving
 * queued tasks in the channel), then frees everything, and drops the pool's engine reference.
 * Results still held (see swarm_pool_take_undelivered()) and outputs not yet released are freed:
 * take and release them first. NULL is a no-op. Called on one of the pool's own worker threads or
 * in a forked child it does nothing (it cannot work there; the pool stays as it was).
 * Thread safety: no other call on @p p may be running or follow. Blocking: as swarm_pool_stop().
 */
SWARM_API void swarm_pool_destroy(swarm_pool *p);

/**
 * Copy a snapshot into @p stats (set stats->size = sizeof(*stats) first; only that many bytes
 * are written).
 * @return 0; SWARM_EINVAL for NULL arguments or a size too small for the first fields;
 *         SWARM_ESTATE in a forked child.
 * Thread safety: any thread, concurrently with traffic. Blocking: briefly (the state mutex).
 */
SWARM_API int swarm_pool_get_stats(swarm_pool *p, swarm_pool_stats *stats);

/** Which latency swarm_pool_get_histogram() reads. */
typedef enum swarm_pool_hist_kind {
    SWARM_POOL_HIST_WAIT = 0,   /**< queue wait: enqueued_ns to engine call start */
    SWARM_POOL_HIST_SERVICE = 1 /**< engine call time */
} swarm_pool_hist_kind;

/**
 * Read a latency histogram as cumulative counts at caller-chosen upper bounds, the shape of a
 * Prometheus histogram (`_bucket{le=...}`, `_sum`, `_count`), over the pool's whole life.
 *
 * The pool records samples in fixed log-linear buckets (about 3 % wide); a sample counts toward
 * @p le_ns[i] when its whole bucket lies at or below that bound, so a count may lag the exact one
 * by the samples of the one bucket that straddles the bound, never exceed it.
 *
 * @param kind       swarm_pool_hist_kind.
 * @param le_ns      @p n_le upper bounds in ns, strictly increasing, each >= 0 (the implicit
 *                   `+Inf` bucket is @p count).
 * @param cum_counts receives @p n_le cumulative counts (may be NULL when n_le is 0).
 * @param count      receives the number of samples (may be NULL).
 * @param sum_ns     receives their sum in ns, saturating at INT64_MAX (may be NULL).
 * @return 0; SWARM_EINVAL for a NULL pool, an unknown kind, NULL arrays with n_le > 0, more than
 *         256 bounds, or bounds that are negative or not increasing.
 * Thread safety: any thread, concurrently with traffic. Blocking: briefly (the state mutex).
 * Allocation: none.
 */
SWARM_API int swarm_pool_get_histogram(swarm_pool *p, uint32_t kind, const int64_t *le_ns,
                                       uint32_t n_le, uint64_t *cum_counts, uint64_t *count,
                                       int64_t *sum_ns);

/** @return the current target worker count (0 for NULL). Lock-free. */
SWARM_API uint32_t swarm_pool_target(const swarm_pool *p);

/**
 * Submit a task to the pool's input channel: stamps task->enqueued_ns with swarm_now_ns() when
 * it is 0 (so queue-wait statistics are never silently empty) and turns a negative deadline into
 * SWARM_NO_DEADLINE, then sends the task (copied) with swarm_chan_send_timeout().
 *
 * @param task        the task; id, payload, user and params as for a raw send. Written back
 *                    with the stamped fields.
 * @param timeout_ns  how long to wait while the channel is full: SWARM_WAIT_FOREVER, 0 (try) or
 *                    > 0.
 * @return 0; SWARM_EAGAIN (timeout 0) or SWARM_ETIMEDOUT while full; SWARM_ECLOSED once the input
 *         is closed (e.g. the pool stopped); SWARM_EINVAL for NULL arguments or a timeout below
 *         -1; SWARM_ESTATE in a forked child.
 * Ownership: on success the pool runs the task and delivers its result; on error the caller
 *            still owns everything the task points to.
 * Thread safety: any number of concurrent submitters. Blocking: as described.
 */
SWARM_API int swarm_pool_submit(swarm_pool *p, swarm_task *task, int64_t timeout_ns);

/**
 * Release the output a result received from the result channel owns (result->owned): the
 * response goes back to the pool for reuse, and response and output become NULL. A result that
 * owns nothing (callback results, outputs_dropped) is left as it is.
 *
 * @return 0; SWARM_EINVAL for NULL arguments.
 * Ownership: call it once per result received (not once per copy of the struct), before
 *            swarm_pool_destroy().
 * Thread safety: any thread, concurrently with the workers. Blocking: no. Allocation: none.
 */
SWARM_API int swarm_pool_result_release(swarm_pool *p, swarm_pool_result *result);

/**
 * Hand back results that could not be delivered (the stop deadline came while the result channel
 * was full, or the result channel was closed): up to @p cap of them are moved to @p out, in no
 * particular order, with their task (payload and user are the host's again) and output (owned:
 * release each with swarm_pool_result_release()). Each worker holds at most one batch (16 in
 * single-task mode: what it may have taken at once; 64 with runs); results beyond that, which only
 * a result channel closed while the pool runs can produce, are only counted (stats.undelivered).
 *
 * @return the number moved (>= 0); SWARM_EINVAL for a NULL pool, or @p out NULL with cap > 0;
 *         SWARM_ESTATE before swarm_pool_stop() has returned (workers may still hold results) or
 *         in a forked child.
 * Thread safety: any thread, after stop. Blocking: briefly (the state mutex).
 */
SWARM_API int swarm_pool_take_undelivered(swarm_pool *p, swarm_pool_result *out, size_t cap);

/**
 * The pool's state as a scaling-policy observation, built the way swarm_policy_decide() needs it
 * (what swarm_reconcile_create_for_pool() observes each tick; for hosts that run their own loop):
 *   current_replicas = the target; ready_replicas = warmed-up workers that are not retiring, at
 *   most current; starting_replicas = workers in warm-up that are not retiring, at most
 *   current - ready; one SWARM_METRIC_TOTAL metric: value = tasks queued in the input channel,
 *   in_flight = tasks taken and not yet delivered (retiring workers' included), target =
 *   @p target_per_worker, activation = @p activation; and the load signals (when obs->size holds
 *   them): arrivals = the input channel's sent count (it already includes what a full mode
 *   dropped), completions = completed + failed, service_total_s = stats.service_sum_ns in s,
 *   concurrency = tasks one worker runs at once (the batch size).
 *
 * @param target_per_worker  backlog per worker to aim for, > 0 and finite; 0: the concurrency.
 * @param activation         KEDA activation threshold on the backlog, >= 0 and finite.
 * @param obs                receives the observation; set obs->size first (at least
 *                           SWARM_POLICY_OBS_V1_SIZE; only that many bytes are written).
 * @return 0; SWARM_EINVAL for NULL arguments, a small size or bad numbers; SWARM_ESTATE in a
 *         forked child.
 * Thread safety: any thread, concurrently with traffic. Blocking: briefly (the state mutex).
 */
SWARM_API int swarm_pool_observe(swarm_pool *p, double target_per_worker, double activation,
                                 swarm_policy_obs *obs);

#ifdef __cplusplus
}
#endif

#endif /* SWARM_POOL_H */
