/* SPDX-License-Identifier: MIT */
/*
 * Engine decorators: engines that wrap engines to add a timeout, retries (backoff, full jitter,
 * retry budget), a circuit breaker, a fallback, a weighted split or micro-batching. Each returns
 * an ordinary swarm_engine, so they stack and a pool serves any stack of them. The engine
 * contract they build on (requests, responses, the vtable, error classes, clock hooks) is in
 * swarm/engine.h, which also includes this header: programs that include only swarm/engine.h
 * keep compiling.
 */
#ifndef SWARM_ENGINE_DECORATORS_H
#define SWARM_ENGINE_DECORATORS_H

#include "swarm/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ============================================================================================ */
/* Decorators: engines that wrap engines. Each takes over the caller's reference to the engines */
/* it wraps on success (destroying the decorator destroys them); on error the caller keeps them. */
/* They stack in any order. Batches pass through every decorator as batches (in chunks of at   */
/* most 256 requests); retry re-runs only the failed requests of a batch, as a smaller batch.   */
/* A decorator's batch scratch is heap memory it owns: one block allocated at create, another   */
/* only when more batch calls run through it at once than ever before (then kept), so the       */
/* steady state allocates nothing and each layer uses well under 1 KB of the caller's stack     */
/* (deep stacks run on small thread stacks). Should that allocation fail, the call proceeds in  */
/* chunks of 8 requests instead.                                                                */
/*                                                                                              */
/* A sensible order, outermost first (Polly / Microsoft.Extensions.Http.Resilience):            */
/*   fallback -> timeout (total) -> split -> retry -> breaker -> timeout (per attempt) -> engine */
/* with the batcher right above the engine (or above the per-attempt timeout), so that a batch  */
/* is one attempt and every layer above sees single requests.                                   */
/* ============================================================================================ */

/* ---- timeout -------------------------------------------------------------------------------- */

/** Timeout options. */
typedef struct swarm_timeout_opts {
    /** sizeof(swarm_timeout_opts). Accepted from the 0.1.0 size (the fields through alloc) up; a
     *  smaller size, a larger one with a nonzero byte past this struct, or one above 4096:
     *  SWARM_EINVAL. */
    uint32_t size;
    uint32_t reserved_;           /**< keep 0 */
    int64_t timeout_ns;           /**< per-call budget; 0: default 30 s (Polly); < 0: EINVAL */
    swarm_clock_fn clock;         /**< NULL: swarm_now_ns() */
    void *clock_ctx;              /**< passed to clock */
    const swarm_allocator *alloc; /**< NULL: libc */
} swarm_timeout_opts;

/** Fill defaults (30 s). @return 0; SWARM_EINVAL for NULL. */
SWARM_API int swarm_timeout_opts_init(swarm_timeout_opts *opts);

/**
 * A per-call deadline. Each call runs the inner engine on a copy of the request whose deadline
 * is min(req->deadline_ns, now + timeout_ns). Enforcement is cooperative: engines see it through
 * swarm_request_should_stop() and the deadline field. A call whose deadline has already passed
 * fails with SWARM_ETIMEDOUT without reaching the inner engine; an inner SWARM_ECANCELED caused by
 * the deadline (not by the caller's token) is reported as SWARM_ETIMEDOUT. A success that arrives
 * late is kept (output may already have been streamed).
 *
 * @return 0; SWARM_EINVAL (NULL @p out or @p inner, negative timeout, bad opts); SWARM_ENOMEM.
 * Ownership: takes over @p inner on success. Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_engine_timeout_create(swarm_engine **out, swarm_engine *inner,
                                          const swarm_timeout_opts *opts);

/* ---- retry ---------------------------------------------------------------------------------- */

/** Retry options. Defaults follow AWS "standard" mode and gRPC A6 throttling. */
/** What the retry decorator does with an engine's retry-after hint (swarm_retry_opts). */
typedef enum swarm_retry_hints {
    SWARM_RETRY_HONOR_HINTS = 1, /**< wait max(backoff with jitter, the hint) */
    SWARM_RETRY_IGNORE_HINTS = 2 /**< backoff with jitter only */
} swarm_retry_hints;

typedef struct swarm_retry_opts {
    /** sizeof(swarm_retry_opts). Accepted from the 0.1.0 size (the fields through alloc) up; a
     *  smaller size, a larger one with a nonzero byte past this struct, or one above 4096:
     *  SWARM_EINVAL. */
    uint32_t size;
    uint32_t max_attempts;        /**< total attempts, first included, 1..100; default 3;
                                       1: no retry; 0 is rejected with SWARM_EINVAL */
    int64_t base_ns;              /**< backoff base; default 100 ms */
    int64_t cap_ns;               /**< backoff cap; default 2 s. Sleep before retry n (1-based):
                                       uniform [0, min(cap, base * 2^(n-1))] (full jitter) */
    uint32_t budget_max_tokens;   /**< retry budget bucket size; default 10; UINT32_MAX: off */
    uint32_t budget_ratio_milli;  /**< tokens (x1000) a success returns; default 100 (0.1) */
    uint64_t seed;                /**< jitter PRNG seed; 0: default fixed seed */
    uint32_t honor_retry_after;   /**< swarm_retry_hints: SWARM_RETRY_HONOR_HINTS (default; 0
                                       means it too) or SWARM_RETRY_IGNORE_HINTS */
    uint32_t reserved_;           /**< keep 0 */
    swarm_clock_fn clock;         /**< NULL: swarm_now_ns() */
    swarm_sleep_fn sleep;         /**< NULL: real cancel-aware sleep */
    void *clock_ctx;              /**< passed to clock and sleep */
    const swarm_allocator *alloc; /**< NULL: libc */
} swarm_retry_opts;

/** Retry counters. Set stats->size first. */
typedef struct swarm_retry_stats {
    uint32_t size;            /**< sizeof(swarm_retry_stats) */
    uint32_t budget_milli;    /**< tokens x1000 in the budget bucket now */
    uint64_t calls;           /**< calls served */
    uint64_t attempts;        /**< inner calls made */
    uint64_t retries;         /**< attempts after the first */
    uint64_t budget_denied;   /**< retries refused by the budget */
    uint64_t after_stream;    /**< retries refused because output was already streamed */
    uint64_t deadline_denied; /**< retries refused because the backoff would pass the deadline */
    int64_t slept_ns;         /**< total backoff */
} swarm_retry_stats;

/** Fill defaults (3 attempts, 100 ms base, 2 s cap, budget 10 tokens / 0.1). */
SWARM_API int swarm_retry_opts_init(swarm_retry_opts *opts);

/**
 * Retry retryable failures (swarm_engine_error_retryable()) with exponential backoff and full
 * jitter, honouring retry-after hints, never after output has reached a stream callback, never
 * past the request's deadline, and only while the retry budget (gRPC A6 token bucket: a failure
 * takes 1 token, a success returns ratio; retries only while tokens > max/2) allows. A refused
 * retry returns the last attempt's error. Output buffered by a failed attempt is discarded.
 * The backoff sleep wakes early, with SWARM_ECANCELED, if the request's token fires.
 *
 * @return 0; SWARM_EINVAL (NULL @p out/@p inner, max_attempts 0 or > 100, negative base or
 *         cap, base > cap, bad opts); SWARM_ENOMEM.
 * Ownership: takes over @p inner on success. Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_engine_retry_create(swarm_engine **out, swarm_engine *inner,
                                        const swarm_retry_opts *opts);

/** Copy counters of a retry engine. @return 0; SWARM_EINVAL for NULL or another kind. */
SWARM_API int swarm_engine_retry_get_stats(swarm_engine *e, swarm_retry_stats *stats);

/* ---- circuit breaker ------------------------------------------------------------------------ */

/** Breaker states. */
typedef enum swarm_breaker_state {
    SWARM_BREAKER_CLOSED = 0,   /**< calls flow, outcomes recorded */
    SWARM_BREAKER_OPEN = 1,     /**< calls fail fast with SWARM_EBREAKER_OPEN */
    SWARM_BREAKER_HALF_OPEN = 2 /**< a limited number of probe calls decide */
} swarm_breaker_state;

/** Window kinds. */
typedef enum swarm_breaker_window {
    SWARM_BREAKER_WINDOW_COUNT = 0, /**< the last window_size calls */
    SWARM_BREAKER_WINDOW_TIME = 1   /**< calls in the last window_size seconds */
} swarm_breaker_window;

/** Called on every state change, on the thread whose call caused it, no library lock held. */
typedef void (*swarm_breaker_transition_fn)(void *ctx, int from_state, int to_state,
                                            int64_t now_ns);

/** Breaker options. Defaults from resilience4j / the reference notes. */
typedef struct swarm_breaker_opts {
    /** sizeof(swarm_breaker_opts). Accepted from the 0.1.0 size (the fields through alloc) up; a
     *  smaller size, a larger one with a nonzero byte past this struct, or one above 4096:
     *  SWARM_EINVAL. */
    uint32_t size;
    uint32_t window_kind;      /**< swarm_breaker_window; default COUNT */
    uint32_t window_size;      /**< calls (COUNT) or seconds (TIME), 1..10000; default 100 */
    uint32_t minimum_calls;    /**< outcomes needed before the rate is judged; default 20 */
    uint32_t failure_rate_pct; /**< open when failures (incl. slow) >= this % ; 1..100;
                                    default 50 */
    uint32_t half_open_probes; /**< calls let through in half-open; default 10 */
    int64_t open_ns;           /**< time open before half-open; default 30 s */
    int64_t slow_call_ns;      /**< a call slower than this counts as a failure; 0: off
                                    (default) */
    swarm_breaker_transition_fn on_transition; /**< optional */
    void *transition_ctx;                      /**< passed to on_transition */
    swarm_clock_fn clock;         /**< NULL: swarm_now_ns(). May be called with the breaker's
                                       lock held: it must not call into the breaker. Read only
                                       when needed (a closed count-window breaker without
                                       slow-call detection reads it only on transitions) */
    void *clock_ctx;              /**< passed to clock */
    const swarm_allocator *alloc; /**< NULL: libc */
} swarm_breaker_opts;

/** Breaker counters. Set stats->size first. */
typedef struct swarm_breaker_stats {
    uint32_t size;            /**< sizeof(swarm_breaker_stats) */
    int32_t state;            /**< swarm_breaker_state now */
    uint32_t window_calls;    /**< outcomes in the window now */
    uint32_t window_failures; /**< failures (incl. slow) in the window now */
    uint64_t calls;           /**< calls admitted */
    uint64_t rejected;        /**< calls refused with SWARM_EBREAKER_OPEN */
    uint64_t failures;        /**< recorded failures */
    uint64_t slow_calls;      /**< successes counted as failures for being slow */
    uint64_t transitions;     /**< state changes */
    uint64_t opened;          /**< transitions into OPEN */
    int64_t state_since_ns;   /**< when the current state began (breaker clock) */
} swarm_breaker_stats;

/** Fill defaults (count window 100, minimum 20, 50 %, 10 probes, open 30 s, no slow calls). */
SWARM_API int swarm_breaker_opts_init(swarm_breaker_opts *opts);

/**
 * A circuit breaker. CLOSED: calls flow and outcomes (failure = swarm_engine_error_is_failure()
 * or slower than slow_call_ns) enter the window; once it holds >= minimum_calls outcomes and the
 * failure rate reaches failure_rate_pct it opens. OPEN: calls fail with SWARM_EBREAKER_OPEN (with
 * a retry-after hint of the remaining open time) until open_ns has passed, then HALF_OPEN lets
 * half_open_probes calls through; when they have all finished, the rate decides CLOSED (window
 * cleared) or OPEN again. SWARM_EINVAL and SWARM_ECANCELED outcomes are ignored.
 *
 * @return 0; SWARM_EINVAL (NULL arguments, window_size 0 or > 10000, failure_rate_pct 0 or
 *         > 100, negative durations, unknown window kind); SWARM_ENOMEM.
 * Ownership: takes over @p inner on success. Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_engine_breaker_create(swarm_engine **out, swarm_engine *inner,
                                          const swarm_breaker_opts *opts);

/** @return the breaker's swarm_breaker_state (after applying an elapsed open period), or
 *  SWARM_EINVAL for NULL or another kind of engine. */
SWARM_API int swarm_engine_breaker_state(swarm_engine *e);

/** Copy counters. @return 0; SWARM_EINVAL for NULL or another kind. */
SWARM_API int swarm_engine_breaker_get_stats(swarm_engine *e, swarm_breaker_stats *stats);

/* ---- fallback ------------------------------------------------------------------------------- */

/**
 * Primary, then secondary: the secondary serves a call when the primary fails with a failure
 * code (swarm_engine_error_is_failure(), which includes SWARM_EBREAKER_OPEN), unless output has
 * already reached a stream callback. Buffered primary output is discarded first.
 *
 * @return 0; SWARM_EINVAL (NULL arguments, @p primary == @p secondary); SWARM_ENOMEM.
 * Ownership: takes over both engines on success. Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_engine_fallback_create(swarm_engine **out, swarm_engine *primary,
                                           swarm_engine *secondary, const swarm_allocator *alloc);

/** Options of the fallback decorator, like the other decorators' (fill with
 *  swarm_fallback_opts_init()). */
typedef struct swarm_fallback_opts {
    /** sizeof(swarm_fallback_opts). Accepted from the 0.2.0 size (the fields through alloc) up; a
     *  smaller size, a larger one with a nonzero byte past this struct, or one above 4096:
     *  SWARM_EINVAL. */
    uint32_t size;
    uint32_t reserved_;           /**< keep 0 */
    const swarm_allocator *alloc; /**< NULL: libc */
} swarm_fallback_opts;

/**
 * Fill @p opts with the defaults (libc allocator) and set its size.
 * @return 0; SWARM_EINVAL if @p opts is NULL. Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_fallback_opts_init(swarm_fallback_opts *opts);

/**
 * swarm_engine_fallback_create() with an options struct (NULL: the defaults), the form every
 * other decorator takes. Only opts->size bytes are read.
 * @return as swarm_engine_fallback_create(); also SWARM_EINVAL for an opts->size below the
 *         first field set or an allocator without hooks.
 * Ownership: takes over both engines on success. Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_engine_fallback_create_ex(swarm_engine **out, swarm_engine *primary,
                                              swarm_engine *secondary,
                                              const swarm_fallback_opts *opts);

/* ---- split ---------------------------------------------------------------------------------- */

/** Split options. */
/** How the split decorator picks an engine (swarm_split_opts). */
typedef enum swarm_split_routing {
    SWARM_SPLIT_STICKY = 1, /**< by a hash of the request id: one id, one engine */
    SWARM_SPLIT_RANDOM = 2  /**< a weighted random draw per call */
} swarm_split_routing;

typedef struct swarm_split_opts {
    /** sizeof(swarm_split_opts). Accepted from the 0.1.0 size (the fields through alloc) up; a
     *  smaller size, a larger one with a nonzero byte past this struct, or one above 4096:
     *  SWARM_EINVAL. */
    uint32_t size;
    uint32_t sticky;              /**< swarm_split_routing: SWARM_SPLIT_STICKY (default; 0 means
                                       it too): by a hash of the request id, so one id always
                                       lands on one engine; SWARM_SPLIT_RANDOM: per call */
    uint64_t seed;                /**< hash / PRNG seed; 0: default fixed seed */
    const swarm_allocator *alloc; /**< NULL: libc */
} swarm_split_opts;

/** Fill defaults (sticky). */
SWARM_API int swarm_split_opts_init(swarm_split_opts *opts);

/**
 * Weighted routing over @p n engines (canary, A/B): engine i serves weights[i] / sum(weights) of
 * the requests (Istio's relative weights; 0 gets none). A batch is routed per request.
 *
 * @return 0; SWARM_EINVAL (NULL arguments, n == 0 or > 256, a NULL engine, the same engine
 *         twice, all weights 0, sum above 2^32); SWARM_ENOMEM.
 * Ownership: takes over all @p engines on success; the arrays are copied.
 * Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_engine_split_create(swarm_engine **out, swarm_engine *const *engines,
                                        const uint32_t *weights, size_t n,
                                        const swarm_split_opts *opts);

/**
 * Replace the weights atomically with respect to routing (a call sees the old or new set).
 * @return 0; SWARM_EINVAL (NULL, another kind, all zero, sum above 2^32).
 * Thread safety: any thread, concurrently with calls. Blocking: briefly (a lock).
 */
SWARM_API int swarm_engine_split_set_weights(swarm_engine *e, const uint32_t *weights, size_t n);

/** Copy per-engine call counts (up to @p n entries) into @p counts. @return the number of
 *  engines; SWARM_EINVAL for NULL or another kind. */
SWARM_API int swarm_engine_split_get_counts(swarm_engine *e, uint64_t *counts, size_t n);

/* ---- batcher -------------------------------------------------------------------------------- */

/** Batcher options. Defaults follow Triton's dynamic batcher. */
typedef struct swarm_batcher_opts {
    /** sizeof(swarm_batcher_opts). Accepted from the 0.1.0 size (the fields through alloc) up; a
     *  smaller size, a larger one with a nonzero byte past this struct, or one above 4096:
     *  SWARM_EINVAL. */
    uint32_t size;
    uint32_t max_batch;              /**< requests per infer_batch call, 1..4096; default 8 */
    int64_t max_wait_ns;             /**< linger after the first request of a batch; default 0
                                          (Triton: no delay, batch what is queued) */
    uint32_t queue_capacity;         /**< requests waiting; default 1024; a full queue blocks */
    uint32_t n_preferred;            /**< entries in preferred_sizes */
    const uint32_t *preferred_sizes; /**< optional; copied. A collected batch is split greedily
                                       into the largest preferred sizes that fit */
    const swarm_allocator *alloc;    /**< NULL: libc */
} swarm_batcher_opts;

/** Batcher counters. Set stats->size first. */
typedef struct swarm_batcher_stats {
    uint32_t size;     /**< sizeof(swarm_batcher_stats) */
    uint32_t max_seen; /**< largest batch dispatched */
    uint64_t requests; /**< requests dispatched */
    uint64_t batches;  /**< infer_batch calls made */
    uint64_t skipped;  /**< requests completed without the engine (canceled, expired) */
    uint64_t queued;   /**< requests waiting in the queue now */
} swarm_batcher_stats;

/** Fill defaults (max_batch 8, no linger, queue 1024). */
SWARM_API int swarm_batcher_opts_init(swarm_batcher_opts *opts);

/**
 * Dynamic batching without threads of its own (leader/follower): concurrent swarm_engine_infer()
 * callers queue their request in a swarm_chan; one of them at a time becomes the leader, takes a
 * batch with swarm_chan_recv_batch() (up to max_batch, lingering max_wait_ns after the first),
 * runs it through the inner engine's infer_batch (or infer per request) and completes every
 * caller of the batch; the others park until their request is done. A request whose token has
 * fired or whose deadline has passed when its batch forms completes with SWARM_ECANCELED or
 * SWARM_ETIMEDOUT without reaching the engine. Calls to the batcher's own infer_batch go straight
 * to the inner engine. Stream callbacks of every request in a batch run on the leader's thread.
 *
 * @return 0; SWARM_EINVAL (NULL arguments, max_batch 0 or > 4096, negative wait, a preferred size
 *         0 or > max_batch); SWARM_ENOMEM.
 * Ownership: takes over @p inner on success. Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_engine_batcher_create(swarm_engine **out, swarm_engine *inner,
                                          const swarm_batcher_opts *opts);

/** Copy counters. @return 0; SWARM_EINVAL for NULL or another kind. */
SWARM_API int swarm_engine_batcher_get_stats(swarm_engine *e, swarm_batcher_stats *stats);

#ifdef __cplusplus
}
#endif

#endif /* SWARM_ENGINE_DECORATORS_H */
