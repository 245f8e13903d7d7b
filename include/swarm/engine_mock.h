/* SPDX-License-Identifier: MIT */
/*
 * The mock engine: a configurable, seeded fake for tests, benchmarks and demos (latency
 * distributions, injected faults and hangs, scripted outcomes, chunked output, optional batch
 * support). The engine contract is in swarm/engine.h, which also includes this header: programs
 * that include only swarm/engine.h keep compiling.
 */
#ifndef SWARM_ENGINE_MOCK_H
#define SWARM_ENGINE_MOCK_H

#include "swarm/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ============================================================================================ */
/* The mock engine                                                                              */
/* ============================================================================================ */

/** Latency distributions of the mock engine. */
typedef enum swarm_mock_latency {
    SWARM_MOCK_LATENCY_NONE = 0,     /**< no delay (default) */
    SWARM_MOCK_LATENCY_FIXED = 1,    /**< latency_ns */
    SWARM_MOCK_LATENCY_UNIFORM = 2,  /**< uniform in [latency_ns, latency_max_ns] */
    SWARM_MOCK_LATENCY_LOGNORMAL = 3 /**< median latency_ns, shape lognormal_sigma */
} swarm_mock_latency;

/** One injected fault: fail with @p code with @p probability. */
typedef struct swarm_mock_fault {
    int32_t code;           /**< negative swarm_err to return */
    uint32_t reserved_;     /**< keep 0 */
    double probability;     /**< 0..1, independent per call, faults tried in order */
    int64_t retry_after_ns; /**< hint attached to the failure; 0: none */
} swarm_mock_fault;

/** Mock options. */
typedef struct swarm_mock_opts {
    /** sizeof(swarm_mock_opts). Accepted from the 0.1.0 size (the fields through alloc) up; a
     *  smaller size, a larger one with a nonzero byte past this struct, or one above 4096:
     *  SWARM_EINVAL. */
    uint32_t size;
    uint32_t latency_kind;          /**< swarm_mock_latency; default NONE */
    int64_t latency_ns;             /**< FIXED value, UNIFORM low, LOGNORMAL median */
    int64_t latency_max_ns;         /**< UNIFORM high */
    double lognormal_sigma;         /**< LOGNORMAL shape, finite and >= 0; default 0.5 */
    uint64_t seed;                  /**< PRNG seed; 0: default fixed seed */
    const swarm_mock_fault *faults; /**< copied; tried in order after scripted outcomes */
    uint32_t n_faults;              /**< entries in faults, <= 16 */
    uint32_t chunk_bytes;           /**< output written in chunks of this size; 0: one write */
    double hang_probability;        /**< a call hangs until its token fires or deadline passes */
    uint64_t output_bytes;          /**< output length; 0: echo the payload */
    uint32_t batch;                 /**< 1: implement infer_batch (one latency draw per batch);
                                         0 (default): infer only */
    uint32_t reserved_;             /**< keep 0 */
    swarm_clock_fn clock;           /**< NULL: swarm_now_ns() */
    swarm_sleep_fn sleep;           /**< NULL: real cancel-aware sleep */
    void *clock_ctx;                /**< passed to clock and sleep */
    const swarm_allocator *alloc;   /**< NULL: libc */
} swarm_mock_opts;

/** Mock counters. Set stats->size first. */
typedef struct swarm_mock_stats {
    uint32_t size;         /**< sizeof(swarm_mock_stats) */
    uint32_t max_batch;    /**< largest batch seen by infer_batch */
    uint64_t calls;        /**< requests served (batched ones included) */
    uint64_t batch_calls;  /**< infer_batch invocations */
    uint64_t failures;     /**< requests failed by scripts or faults */
    uint64_t hangs;        /**< requests that hung */
    uint64_t canceled;     /**< requests stopped by token, deadline or stream callback */
    uint64_t cancel_calls; /**< cancel slot invocations */
} swarm_mock_stats;

/** Fill defaults (no latency, no faults, echo, one write). */
SWARM_API int swarm_mock_opts_init(swarm_mock_opts *opts);

/**
 * A configurable fake engine for tests, benchmarks and demos. Each call: take the next scripted
 * outcome if any (swarm_engine_mock_script()), else draw faults and hangs from the seeded PRNG;
 * sleep the latency (through opts->sleep, waking on the token); write the output (echo of the
 * payload or output_bytes of a pattern) in chunks, stopping if the token fires, the deadline
 * passes or the stream callback asks; set usage (payload bytes in, bytes out).
 * Draws are deterministic for a given seed and call order.
 *
 * @return 0; SWARM_EINVAL (bad opts, unknown latency kind, lognormal_sigma negative, NaN or
 *         infinite, fault code >= 0, probability outside [0, 1], more than 16 faults);
 *         SWARM_ENOMEM. Drawn latencies saturate at INT64_MAX ns.
 * Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_engine_mock_create(swarm_engine **out, const swarm_mock_opts *opts);

/**
 * Queue scripted outcomes: the next @p n requests (batched ones count one each) take codes[i]
 * in order instead of the random draws: 0 succeeds normally, a negative code fails after the
 * latency with that code. At most 256 queued.
 * @return 0; SWARM_EINVAL (NULL, another kind); SWARM_ERANGE if the script would exceed 256.
 * Thread safety: any thread. Blocking: briefly (a lock).
 */
SWARM_API int swarm_engine_mock_script(swarm_engine *e, const int32_t *codes, size_t n);

/** Copy counters. @return 0; SWARM_EINVAL for NULL or another kind. */
SWARM_API int swarm_engine_mock_get_stats(swarm_engine *e, swarm_mock_stats *stats);

#ifdef __cplusplus
}
#endif

#endif /* SWARM_ENGINE_MOCK_H */
