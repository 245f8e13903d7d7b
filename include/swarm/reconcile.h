/* SPDX-License-Identifier: MIT */
/*
 * swarm_reconcile: the in-process KEDA operator. A level-triggered loop that, on each tick,
 * observes the actual state through a host callback, asks a swarm_policy for the desired replica
 * count, and actuates through a second host callback when the desired count differs from the
 * observed one:
 *
 *     observe(user, &obs) --> swarm_policy_decide(policy, now, &obs, &decision)
 *                                   --> actuate(user, decision.replicas, &decision)
 *
 * Level-triggered (controller-runtime): a tick carries no event, it reads the whole state anew,
 * so missed or coalesced kicks are harmless and a lost actuation is repeated on the next tick.
 *
 * Two ways to drive it:
 *   - swarm_reconcile_step(r, now_ns, &next_ns) from the host's own event loop or a simulator:
 *     time is injected, the loop reads no clock, and next_ns says when to call again.
 *   - swarm_reconcile_start() runs the same step on a thread of its own every interval (with
 *     jitter, fixed or sliding period); swarm_reconcile_kick() makes the next tick due at once
 *     (e.g. when a channel crosses a watermark); swarm_reconcile_stop() returns promptly, even
 *     in the middle of a sleep.
 *
 * Errors: a step whose observe or actuate fails (or whose decide rejects the observation) backs
 * off: the next tick comes after base * factor^(n-1) (capped) plus jitter, for the n-th error in
 * a row, instead of the interval; one successful step resets it. When observe keeps failing, the
 * loop still asks the policy, with the last good observation (its current_replicas replaced by
 * the count actuated since) and every metric marked failed, so that the policy's fallback (KEDA
 * fallback replicas) takes over.
 *
 * Time is int64_t nanoseconds on swarm_now_ns()'s clock (or the host's, with step()); every sum
 * and difference of times saturates, so extreme injected times cannot overflow.
 *
 * fork(): a loop created before fork() is dead in the child (its thread does not exist there):
 * every call returns SWARM_ESTATE without taking a lock and destroy does nothing. See common.h.
 */
#ifndef SWARM_RECONCILE_H
#define SWARM_RECONCILE_H

#include "swarm/common.h"
#include "swarm/policy.h"
#include "swarm/pool.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Fill @p obs with the actual state: current_replicas (the count asked for, e.g. the pool's
 * target), ready and starting replicas, and the metrics (queue length, in-flight work, targets).
 * The loop zeroes @p obs and sets obs->size before the call. A metric that could not be read may
 * be marked failed while the call still returns 0.
 * Return 0, or a negative swarm_err if the state could not be read at all (counted, backed off).
 * Runs on the stepping thread, no library lock held.
 */
typedef int (*swarm_reconcile_observe_fn)(void *ctx, swarm_policy_obs *obs);

/**
 * Make the actual replica count @p desired (e.g. swarm_pool_resize()). @p decision explains why
 * (decision->text is one log line) and carries drain hints. Must be idempotent: level-triggered
 * loops repeat it. Return 0, or a negative swarm_err (counted, backed off, retried next tick).
 * Runs on the stepping thread, no library lock held.
 */
typedef int (*swarm_reconcile_actuate_fn)(void *ctx, int32_t desired,
                                          const swarm_policy_decision *decision);

/** Creation options. Fill with swarm_reconcile_opts_init(), then set policy and callbacks. */
typedef struct swarm_reconcile_opts {
    /** sizeof(swarm_reconcile_opts). Accepted from the 0.1.0 size (the fields through alloc) up; a
     *  smaller size, a larger one with a nonzero byte past this struct, or one above 4096:
     *  SWARM_EINVAL. */
    uint32_t size;
    uint32_t sliding;     /**< 0 (default): fixed period, measured from the start of a step
                               (a slow step eats into it); 1: sliding, measured from its end */
    swarm_policy *policy; /**< required, borrowed; only the loop may call it while it runs */
    swarm_reconcile_observe_fn observe; /**< required */
    swarm_reconcile_actuate_fn actuate; /**< required */
    void *user;                         /**< passed to observe and actuate */
    int64_t interval_ns;                /**< period between ticks, > 0; default 1 s */
    double jitter;                /**< each period is interval * (1 + u * jitter), u uniform in
                                       [0, 1) (apimachinery's wait.Jitter); 0 (default): none;
                                       0..10 */
    int64_t backoff_base_ns;      /**< delay after the first error in a row; default 5 ms
                                       (controller-runtime) */
    double backoff_factor;        /**< growth per further error, >= 1; 0: 2.0 */
    int64_t backoff_cap_ns;       /**< largest delay before jitter; default 30 s */
    double backoff_jitter;        /**< delay * (1 + u * backoff_jitter); 0: 0.1; negative: none */
    uint32_t actuate_always;      /**< 1: actuate on every successful decide; 0 (default): only
                                       when the decision differs from obs.current_replicas */
    uint32_t fail_after;          /**< consecutive observe failures before the policy sees failed
                                       metrics; 0: 1 (at once). Before that, a failed observe skips
                                       the decision */
    uint64_t seed;                /**< jitter PRNG seed; 0: a fixed default (deterministic) */
    const swarm_allocator *alloc; /**< NULL: libc */
    /* Appended in 0.2: a size that predates them reads the defaults. */
    int32_t max_replicas; /**< the actuator's own bound (e.g. the pool's max_workers): a
                               decision above it is lowered to it before actuate, and the
                               explanation gets a SWARM_RULE_MAX step ("actuator max N").
                               0 (default): no bound; negative: SWARM_EINVAL */
    uint32_t reserved_;   /**< keep 0 */
} swarm_reconcile_opts;

/** Slots of swarm_reconcile_stats.decisions_by_reason (rule codes 0..31). */
#define SWARM_RECONCILE_REASONS 32

/** Introspection snapshot. Set stats->size first. */
typedef struct swarm_reconcile_stats {
    uint32_t size;               /**< sizeof(swarm_reconcile_stats) */
    uint32_t running;            /**< 1 while the loop's thread runs */
    uint32_t consecutive_errors; /**< failed steps in a row (drives the backoff) */
    int32_t last_error;          /**< code of the last failed step, 0 if none yet */
    int32_t last_desired;        /**< last decision's replicas; -1 before the first */
    int32_t last_actuated;       /**< last count actuate accepted; -1 before the first */
    uint64_t ticks;              /**< steps run */
    uint64_t errors;             /**< failed steps */
    uint64_t observe_errors;     /**< observe calls that failed */
    uint64_t actuate_errors;     /**< actuate calls that failed */
    uint64_t decide_errors;      /**< observations the policy rejected */
    uint64_t decisions;          /**< policy decisions made */
    uint64_t actuations;         /**< actuate calls that succeeded */
    uint64_t kicks;              /**< swarm_reconcile_kick() calls */
    int64_t last_tick_ns;        /**< time of the last step; 0 before the first */
    int64_t next_tick_ns;        /**< when the next step is due (0: now, after a kick) */
    int64_t backoff_ns;          /**< the delay the last failed step chose; 0 after a success */
    int64_t last_lag_ns;         /**< actual minus planned time of the last scheduled tick
                                      (KEDA's scale_loop_latency); kicked ticks are not counted */
    int64_t max_lag_ns;          /**< largest lag seen */
    int64_t last_step_ns;        /**< how long the last step took (threaded mode; 0 with step()) */
    /* Appended in 0.2: a caller built against 0.1 passes the smaller size and never sees it. */
    uint64_t decisions_by_reason[SWARM_RECONCILE_REASONS]; /**< decisions counted by the rule
                                     that set their count (the last explanation step that changed
                                     it, else the last step), indexed by swarm_policy_rule; index 0
                                     counts decisions without steps and rule codes >=
                                     SWARM_RECONCILE_REASONS. They sum to decisions */
} swarm_reconcile_stats;

typedef struct swarm_reconcile swarm_reconcile;

/**
 * Fill @p opts with defaults (1 s fixed period, no jitter, backoff 5 ms x2 up to 30 s with 10 %
 * jitter, actuate on change) and set its size.
 * @return 0; SWARM_EINVAL if @p opts is NULL.
 */
SWARM_API int swarm_reconcile_opts_init(swarm_reconcile_opts *opts);

/**
 * Create a loop (not started). The first tick is due at once.
 *
 * @return 0; SWARM_EINVAL for a NULL @p out, @p opts, policy or callback, a non-positive
 *         interval, jitter outside 0..10 or NaN, a negative backoff base, a cap below the base,
 *         a factor below 1, an allocator without hooks; SWARM_ENOMEM.
 * Ownership: the caller owns the loop (swarm_reconcile_destroy()); the policy stays the caller's
 *            and must outlive the loop.
 * Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_reconcile_create(swarm_reconcile **out, const swarm_reconcile_opts *opts);

/** Stop (if started) and free the loop. NULL is a no-op. No other call may run or follow. */
SWARM_API void swarm_reconcile_destroy(swarm_reconcile *r);

/**
 * Run one tick at @p now_ns: observe, decide, actuate if needed, then schedule the next tick.
 * Reads no clock: @p now_ns is the time for the policy, the lag and the schedule.
 *
 * @param next_ns  receives when the next tick is due (now + period, or now + backoff after an
 *                 error); may be NULL.
 * @return 0 if the tick succeeded; the negative code of the failed observe, decide or actuate
 *         (the tick still counts, and backs off); SWARM_EINVAL if @p r is NULL; SWARM_ESTATE while
 *         the loop's own thread runs or another step() is in progress (nothing is done), or in
 *         a forked child.
 * Thread safety: any thread; steps never overlap. Blocking: for as long as the callbacks take.
 */
SWARM_API int swarm_reconcile_step(swarm_reconcile *r, int64_t now_ns, int64_t *next_ns);

/**
 * Start the loop's thread: it steps whenever the next tick is due, on swarm_now_ns()'s clock.
 * @return 0; SWARM_EINVAL if @p r is NULL; SWARM_ESTATE if already running;
 *         SWARM_EINTERNAL if the thread could not be created.
 * Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_reconcile_start(swarm_reconcile *r);

/**
 * Stop the loop's thread and join it. Returns as soon as a step in progress (its callbacks)
 * returns; a sleeping loop wakes at once. Idempotent: stopping a stopped loop returns 0. The loop
 * may be started again.
 * @return 0; SWARM_EINVAL if @p r is NULL; SWARM_ESTATE if called from the loop's own callbacks.
 * Thread safety: any thread except the loop's. Blocking: until the thread has left.
 */
SWARM_API int swarm_reconcile_stop(swarm_reconcile *r);

/**
 * Make the next tick due now (the running loop wakes at once; with step(), stats.next_tick_ns
 * becomes 0). Kicks coalesce. While the loop is backing off after errors, the tick stays at the
 * end of the backoff.
 * @return 0; SWARM_EINVAL if @p r is NULL.
 * Thread safety: any thread, including callbacks (e.g. a channel watermark hook). Blocking: no
 * (a short internal lock).
 */
SWARM_API int swarm_reconcile_kick(swarm_reconcile *r);

/**
 * Copy counters into @p stats (set stats->size first; only that many bytes are written).
 * @return 0; SWARM_EINVAL for NULL arguments or a too-small size.
 * Thread safety: any thread, concurrently with the loop. Blocking: briefly (internal lock).
 */
SWARM_API int swarm_reconcile_get_stats(swarm_reconcile *r, swarm_reconcile_stats *stats);

/**
 * Copy the last decision, with its explanation (steps and text), into @p out (set out->size to
 * sizeof(swarm_policy_decision) first).
 * @return 0; SWARM_EAGAIN if no decision was made yet; SWARM_EINVAL for NULL arguments or a
 *         too-small size.
 * Thread safety: any thread, concurrently with the loop. Blocking: briefly (internal lock).
 */
SWARM_API int swarm_reconcile_last_decision(swarm_reconcile *r, swarm_policy_decision *out);

/* ============================================================================================ */
/* One call that autoscales a pool                                                              */
/* ============================================================================================ */

/** Options of swarm_reconcile_create_for_pool(). Fill with swarm_reconcile_pool_opts_init(). */
typedef struct swarm_reconcile_pool_opts {
    /** sizeof(swarm_reconcile_pool_opts). Accepted from the 0.2.0 size (the fields through loop)
     * up; a smaller size, a larger one with a nonzero byte past this struct, or one above 4096:
     *  SWARM_EINVAL. */
    uint32_t size;
    uint32_t manual;          /**< 0 (default): create starts the loop's thread; 1: not
                                   started (drive it with swarm_reconcile_step(), or start it) */
    swarm_pool *pool;         /**< required, borrowed: must outlive the loop */
    swarm_policy *policy;     /**< required, borrowed: only the loop may use it while it runs */
    double target_per_worker; /**< backlog (queued + in flight) per worker to aim for, > 0;
                                   0 (default): the pool's concurrency (its batch size) */
    double activation;        /**< KEDA activation threshold on the backlog; default 0 */
    /** Loop tuning (interval, jitter, backoff, seed, allocator ...), or NULL for the defaults of
     *  swarm_reconcile_opts_init(). Its policy, observe, actuate and user are ignored; its
     *  max_replicas, if set, further lowers the pool's max_workers bound. */
    const swarm_reconcile_opts *loop;
} swarm_reconcile_pool_opts;

/**
 * Fill @p opts with defaults (thread started, target per worker = concurrency, no activation,
 * default loop) and set its size.
 * @return 0; SWARM_EINVAL if @p opts is NULL. Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_reconcile_pool_opts_init(swarm_reconcile_pool_opts *opts);

/**
 * Autoscale a pool in one call: a reconcile loop that observes @p opts->pool with
 * swarm_pool_observe() (retiring workers excluded, ready <= current, starting counted, backlog =
 * queued + in flight, and the arrival/service signals of SWARM_POLICY_LOAD), asks the policy,
 * and actuates with swarm_pool_resize(). Decisions above the pool's max_workers are lowered to it
 * (a SWARM_RULE_MAX step "actuator max N" in the explanation) instead of failing the resize and
 * backing off. The C counterpart of Python's ReconcileLoop.for_pool().
 *
 * The result is an ordinary loop: swarm_reconcile_get_stats(), swarm_reconcile_last_decision()
 * (the explained decision), kick, step (with manual), stop and swarm_metrics_add_reconcile() all
 * apply. Destroy the loop before stopping the pool: a stopped pool refuses resizes
 * (SWARM_ESTATE), which the loop would count as errors.
 *
 * @return 0; SWARM_EINVAL for NULL arguments, no pool or policy, a target or activation that is
 *         negative or not finite, manual > 1, or invalid loop options (as
 *         swarm_reconcile_create()); SWARM_ESTATE for a pool created before a fork (in the
 *         child); SWARM_ENOMEM; SWARM_EINTERNAL if the thread could not start (nothing is left
 *         allocated on error).
 * Ownership: the caller owns the loop (swarm_reconcile_destroy()); pool and policy stay the
 *            caller's.
 * Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_reconcile_create_for_pool(swarm_reconcile **out,
                                              const swarm_reconcile_pool_opts *opts);

#ifdef __cplusplus
}
#endif

#endif /* SWARM_RECONCILE_H */
