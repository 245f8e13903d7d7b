/* SPDX-License-Identifier: MIT */
/*
 * libswarm simulator: replays an arrival-rate trace through a queueing model (Poisson arrivals,
 * a service-time distribution, replicas that take a while to start) driven by the REAL scaling
 * policy (swarm_policy_decide()) and the REAL reconcile loop (swarm_reconcile_step()) on
 * simulated time, and reports queue-wait percentiles, SLO violation, replica-seconds, flaps and
 * a per-second timeline.
 *
 * Pure: simulated time only (no clock reads), no threads, its own seeded random number
 * generators (one stream each for arrivals, service times and start-up jitter, so every policy
 * run with the same seed sees the very same requests). The same trace, options and seed always
 * give the same result.
 *
 * The model, exactly:
 *   - Arrivals are Poisson with the trace's piecewise-constant rate. Each row (t_s, rps) holds
 *     from t_s until the next row; the last row's rate holds through tail_s more seconds, so
 *     queued work drains and scale-down shows. Each request draws its service time on arrival.
 *   - A replica serves up to `concurrency` requests at once; requests wait in one FIFO queue.
 *     A new replica becomes ready startup_s + U(0, startup_jitter_s) after it was ordered.
 *   - The host: every decision interval the reconcile loop observes (metrics[0] = TOTAL backlog:
 *     queued + in flight, per-replica target; current/ready/starting replicas; the cumulative
 *     load signals arrivals, completions, service_total_s and concurrency), asks the policy, and
 *     actuates the desired count when it differs from the current one. The metrics (backlog and
 *     load counters) are those of metrics_lag_s ago (0.1 s resolution); replica counts are live.
 *   - Actuation: scale-up first takes back replicas that are retiring (still finishing work),
 *     then orders new ones. Scale-down removes starting replicas first (newest first), then idle
 *     ready ones, then busy ones, which stop taking work, finish what they run, and exit.
 *     Retiring replicas still count in replica-seconds.
 */
#ifndef SWARM_SIM_H
#define SWARM_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "swarm/common.h"
#include "swarm/policy.h"

#ifdef __cplusplus
extern "C" {
#endif

/** One trace row: from t_s on (until the next row) requests arrive at rps per second. */
typedef struct swarm_sim_point {
    double t_s; /**< seconds, >= 0, strictly increasing */
    double rps; /**< arrival rate, >= 0 and finite */
} swarm_sim_point;

/** An arrival-rate trace (a validated, owned copy of its rows). Opaque. */
typedef struct swarm_sim_trace swarm_sim_trace;

/** Built-in trace shapes (swarm_sim_trace_generate()). */
typedef enum swarm_sim_shape {
    /** Step x10 burst: base for 300 s, 10 x base for 600 s, base for 600 s (base 20 rps). */
    SWARM_SIM_SHAPE_STEP = 1,
    /** Diurnal sine: base + (peak - base) * (1 - cos(2 pi t / period)) / 2, in 10 s steps, over
     *  one period (base 10, peak 200 rps, period 3600 s). */
    SWARM_SIM_SHAPE_SINE = 2,
    /** Poisson spikes: base rps with spikes at peak rps lasting burst_s, arriving as a Poisson
     *  process with mean gap gap_s (base 20, peak 200 rps, 60 s spikes every 300 s on average,
     *  3600 s). Seeded. */
    SWARM_SIM_SHAPE_SPIKES = 3,
    /** Flash crowd: 0 rps for 60 s, a jump to peak for 300 s, then a linear decay to 0 over
     *  600 s in 10 s steps (peak 400 rps). */
    SWARM_SIM_SHAPE_FLASH = 4,
    /** Idle with rare bursts: 0 rps, with bursts of burst_s seconds at peak rps arriving as a
     *  Poisson process with mean gap gap_s (peak 50 rps, 30 s bursts, every 900 s on average,
     *  3600 s, at least one burst). Seeded. */
    SWARM_SIM_SHAPE_IDLE_BURSTS = 5
} swarm_sim_shape;

/** Parameters of a built-in shape. Fill with swarm_sim_gen_opts_init(); zero means the shape's
 *  default listed in swarm_sim_shape. */
typedef struct swarm_sim_gen_opts {
    /** sizeof(swarm_sim_gen_opts), set by swarm_sim_gen_opts_init(). Accepted from the 0.2.0 size
     * (the fields through seed) up; a smaller size, a larger one with a nonzero byte past this
     * struct, or one above 4096: SWARM_EINVAL. */
    uint32_t size;
    uint32_t shape;    /**< swarm_sim_shape; required */
    double base_rps;   /**< the quiet rate */
    double peak_rps;   /**< the burst / peak rate */
    double duration_s; /**< total length (SPIKES, IDLE_BURSTS; SINE: one period) */
    double period_s;   /**< SINE period */
    double burst_s;    /**< SPIKES / IDLE_BURSTS burst length */
    double gap_s;      /**< SPIKES / IDLE_BURSTS mean time between burst starts */
    uint64_t seed;     /**< SPIKES / IDLE_BURSTS; 0: a fixed default */
} swarm_sim_gen_opts;

/** What drives the replica count. */
typedef enum swarm_sim_kind {
    /** swarm_policy_decide() through swarm_reconcile_step() every interval (opts.policy). */
    SWARM_SIM_POLICY = 1,
    /** A fixed count (opts.fixed_replicas), ready from the start. */
    SWARM_SIM_FIXED = 2,
    /** Clairvoyant lower bound: knows the trace's rate; every interval it asks for the Erlang C
     *  count that meets the SLO (P(wait > slo_s) <= 1 - slo_quantile) for the highest rate
     *  within the next startup_s + startup_jitter_s + interval, so capacity is ready before the
     *  load arrives and is released as soon as it is not needed within a start-up time. It
     *  ignores the realised backlog. Starts with the count the rate at 0 needs, ready. */
    SWARM_SIM_ORACLE = 3
} swarm_sim_kind;

/** See swarm_sim_opts.on_scale. */
typedef void (*swarm_sim_scale_fn)(void *ctx, double t_s, const swarm_policy_decision *decision);

/** Service-time distributions. */
typedef enum swarm_sim_dist {
    SWARM_SIM_DIST_EXP = 0,      /**< exponential with mean service_mean_s */
    SWARM_SIM_DIST_FIXED = 1,    /**< always service_mean_s */
    SWARM_SIM_DIST_LOGNORMAL = 2 /**< lognormal with mean service_mean_s, CV service_cv */
} swarm_sim_dist;

/**
 * Simulation options. Fill with swarm_sim_opts_init(); a zero field means the default given.
 * Fixed-width fields only, so ctypes can mirror it; fields are only ever appended.
 */
typedef struct swarm_sim_opts {
    /** sizeof(swarm_sim_opts), set by swarm_sim_opts_init(). Accepted from the 0.2.0 size (the
     * fields through pad2_) up; a smaller size, a larger one with a nonzero byte past this struct,
     * or one above 4096: SWARM_EINVAL. */
    uint32_t size;
    uint32_t kind; /**< swarm_sim_kind; 0: SWARM_SIM_POLICY */
    /** SWARM_SIM_POLICY: the policy configuration (copied at create; borrowed only during the
     *  call). Its min_replicas/max_replicas bound the count. */
    const swarm_policy_opts *policy;
    const swarm_allocator *alloc; /**< NULL: libc */
    int64_t interval_ns;          /**< decision interval; 0: by policy mode, as upstream: KEDA
                                       30 s (pollingInterval), HPA 15 s (sync period), KPA 2 s
                                       (tick), LOAD 1 s (the reconcile loop's default); oracle
                                       1 s */
    int32_t fixed_replicas;       /**< SWARM_SIM_FIXED: the count, >= 0 */
    int32_t initial_replicas;     /**< replicas ready at t = 0 (raised to the policy's min);
                                       0: the policy's min (see warm_start) */
    int32_t max_replicas;         /**< hard cap on the count for every kind; 0: the policy's max
                                       (oracle: 1000), at most 100000 */
    uint32_t concurrency;         /**< requests one replica serves at once; 0: 1 */
    uint32_t service_dist;        /**< swarm_sim_dist; 0: exponential */
    uint32_t queue_cap;           /**< most queued requests; arrivals beyond are dropped;
                                       0: unlimited */
    double service_mean_s;        /**< mean service time, s; 0: 0.1 */
    double service_cv;            /**< LOGNORMAL coefficient of variation; 0: 1.0 */
    double startup_s;             /**< start-up time of a new replica, s; 0: none */
    double startup_jitter_s;      /**< plus U(0, this), s; 0: none */
    double metrics_lag_s;         /**< age of the metrics the host observes, s; 0: none */
    double target;                /**< per-replica target of metrics[0] (TOTAL backlog); 0: by
                                       mode: KPA 0.7 x concurrency (Knative's 70 % target
                                       utilization), others 1 x concurrency */
    double slo_s;                 /**< queue-wait objective, s; 0: 1.0 */
    double slo_quantile;          /**< the oracle's quantile for slo_s; 0: 0.99 */
    double tail_s;                /**< simulated time after the last row; 0: 600; negative: 0 */
    double flap_window_s;         /**< a reversal within this long counts as a flap; 0: 60 */
    uint64_t seed;                /**< 0: a fixed default */
    uint32_t no_timeline;         /**< nonzero: do not record the per-second timeline */
    uint32_t pad_;                /**< keep 0 */
    /** SWARM_SIM_POLICY: called whenever the reconcile loop actuates a new count, with the
     *  simulated time and the decision that asked for it (its explanation: steps and text).
     *  Runs inside swarm_sim_run() on the caller's thread, no lock held; must not call
     *  swarm_sim_* on the same simulation. NULL: none. */
    swarm_sim_scale_fn on_scale;
    void *on_scale_ctx; /**< passed to on_scale */
    /** Nonzero: a warm start, as if the service had been running at the first row's rate: when
     *  initial_replicas is 0, start with the Erlang C count that meets the SLO at that rate
     *  (ready, at least the policy's min), instead of the policy's min; and the policy's
     *  first decision comes one interval in (the loop has been running), not at t = 0. */
    uint32_t warm_start;
    uint32_t pad2_; /**< keep 0 */
} swarm_sim_opts;

/** The outcome of a run. Set size before swarm_sim_get_result(). Waits are queue waits (from
 *  arrival to the start of service); requests still queued at the end count with their wait so
 *  far; dropped requests have none. */
typedef struct swarm_sim_result {
    uint32_t size;     /**< sizeof(swarm_sim_result), set by the caller */
    uint32_t flaps;    /**< direction reversals of the actuated count within
                            flap_window_s of the previous change */
    double p50_wait_s; /**< nearest-rank percentiles of the queue wait */
    double p95_wait_s;
    double p99_wait_s;
    double max_wait_s;
    double mean_wait_s;
    double waited_frac;     /**< share of requests that waited at all (Erlang C's P_wait) */
    double slo_miss_frac;   /**< share of requests that waited longer than slo_s */
    double slo_violation_s; /**< simulated seconds during which some queued request had
                                 waited longer than slo_s */
    double replica_seconds; /**< integral of live replicas (starting, ready, retiring) */
    double sim_seconds;     /**< simulated time */
    double mean_in_system;  /**< time average of queued + in-flight requests (Little's L) */
    double mean_sojourn_s;  /**< mean time in system of accepted requests, unfinished ones
                                 up to the end (Little's W: L = accepted / sim_seconds * W) */
    uint64_t arrivals;      /**< requests that arrived (accepted + dropped) */
    uint64_t completions;   /**< requests finished */
    uint64_t dropped;       /**< arrivals refused by queue_cap */
    uint64_t unfinished;    /**< queued or in flight at the end */
    uint64_t max_queue;     /**< most requests queued (not in flight) at once */
    uint64_t decisions;     /**< policy decisions (oracle: its decisions) */
    uint32_t scale_events;  /**< changes of the actuated count */
    int32_t peak_replicas;  /**< most live replicas at once */
} swarm_sim_result;

/** One timeline sample, taken at each whole simulated second. */
typedef struct swarm_sim_sample {
    double t_s;         /**< the second */
    double rate_rps;    /**< the trace's rate at t_s */
    uint32_t arrived;   /**< arrivals in (t_s - 1, t_s] */
    uint32_t queued;    /**< requests queued (not in flight) */
    uint32_t in_flight; /**< requests being served */
    int32_t ready;      /**< ready replicas taking work */
    int32_t starting;   /**< replicas ordered but not ready */
    int32_t desired;    /**< the last decision's count (fixed: the count) */
    int32_t replicas;   /**< live replicas (starting + ready + retiring) */
    uint32_t pad_;
} swarm_sim_sample;

/** A simulation: trace copy, model state, policy, loop, results. Opaque. */
typedef struct swarm_sim swarm_sim;

/**
 * Create a trace from @p n rows (copied).
 * @return 0; SWARM_EINVAL for NULL arguments, n == 0, a negative, non-finite or non-increasing
 *         time, a negative or non-finite rate; SWARM_ERANGE for more than 2^24 rows (checked
 *         before any row is read); SWARM_ENOMEM.
 * Ownership: the caller owns the trace (swarm_sim_trace_destroy()).
 * Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_sim_trace_create(swarm_sim_trace **out, const swarm_sim_point *rows, size_t n,
                                     const swarm_allocator *alloc);

/**
 * Parse a CSV trace: one `t_seconds,rps` row per line, no header. Blank lines and lines whose
 * first non-blank character is '#' are skipped; spaces around the numbers are allowed; "\r\n"
 * line ends are accepted.
 *
 * @param text      the bytes (need not be NUL-terminated).
 * @param err_line  on a bad row receives its 1-based line number (0 when the error has no line,
 *                  e.g. an empty trace); may be NULL.
 * @return 0; SWARM_EINVAL for NULL arguments, a row that is not two numbers, a time that is
 *         negative or not after the previous row's, a negative rate, or no rows at all;
 *         SWARM_ERANGE past 2^24 rows (err_line names the first row over); SWARM_ENOMEM.
 * Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_sim_trace_parse(swarm_sim_trace **out, const char *text, size_t len,
                                    uint32_t *err_line, const swarm_allocator *alloc);

/** Fill @p opts with defaults and set its size. @return 0; SWARM_EINVAL if NULL. */
SWARM_API int swarm_sim_gen_opts_init(swarm_sim_gen_opts *opts);

/**
 * Generate a built-in shape (swarm_sim_shape). Deterministic for the seed.
 * @return 0; SWARM_EINVAL for NULL arguments, an unknown shape, negative or non-finite
 *         parameters, times above 10^8 s, or a burst, gap or period below 1 ms; SWARM_ERANGE if
 *         the shape would need more than 2^24 rows; SWARM_ENOMEM.
 * Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_sim_trace_generate(swarm_sim_trace **out, const swarm_sim_gen_opts *opts,
                                       const swarm_allocator *alloc);

/** Rows in @p tr (0 if NULL). Thread safety: any thread. */
SWARM_API size_t swarm_sim_trace_len(const swarm_sim_trace *tr);

/**
 * Copy row @p i of @p tr into @p out.
 * @return 0; SWARM_EINVAL for NULL arguments or @p i out of range.
 */
SWARM_API int swarm_sim_trace_get(const swarm_sim_trace *tr, size_t i, swarm_sim_point *out);

/** Destroy a trace; NULL is a no-op. Traces in use by a simulation must outlive it. */
SWARM_API void swarm_sim_trace_destroy(swarm_sim_trace *tr);

/** Fill @p opts with defaults and set its size. @return 0; SWARM_EINVAL if NULL. */
SWARM_API int swarm_sim_opts_init(swarm_sim_opts *opts);

/**
 * Parse a custom policy configuration: `key = value` lines ('#' comments and blank lines
 * skipped) that set fields of @p policy (swarm_policy_opts, by field name; durations in seconds
 * with an `_s` suffix instead of `_ns`, e.g. `cooldown_s = 120`, `scale_down.window_s = 60`,
 * `scale_up.policies = pods:4:15,percent:100:15`; `mode = keda|hpa|kpa|load`;
 * `disable = strict|none|<number>`) and simulation fields of @p sim (`interval_s`, `target`,
 * `concurrency`, `initial_replicas`, `metrics_lag_s`). Call the opts_init functions first: keys
 * absent from the text keep their values.
 *
 * @param err_line  receives the 1-based line of the first bad line (unknown key, bad value);
 *                  may be NULL.
 * @return 0; SWARM_EINVAL for NULL arguments or a bad line (the structs may be partly set).
 * Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_sim_config_parse(const char *text, size_t len, swarm_sim_opts *sim,
                                     swarm_policy_opts *policy, uint32_t *err_line);

/**
 * Create a simulation of @p trace under @p opts (not run yet). The policy (if any) and a
 * reconcile loop driven by swarm_reconcile_step() are created here.
 *
 * @return 0; SWARM_EINVAL for NULL arguments, an unknown kind or distribution, a missing policy,
 *         negative or non-finite times, a fixed count < 0, slo_quantile outside (0, 1), or
 *         whatever swarm_policy_create() rejects (e.g. a mode this build lacks); SWARM_ENOMEM.
 * Ownership: the caller owns the simulation (swarm_sim_destroy()); @p trace is borrowed and
 *            must outlive it; @p opts and opts->policy are copied.
 * Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_sim_create(swarm_sim **out, const swarm_sim_trace *trace,
                               const swarm_sim_opts *opts);

/**
 * Run the simulation to the end (the trace's last row plus tail_s).
 * @return 0; SWARM_EINVAL if @p s is NULL; SWARM_ESTATE if it already ran; SWARM_ENOMEM (the
 *         queue, the timeline and the wait record grow as needed; the run cannot be resumed).
 * Thread safety: not concurrently with other calls on @p s. Blocking: no (CPU only; a one-hour
 * trace at a few hundred requests per second takes well under a second).
 */
SWARM_API int swarm_sim_run(swarm_sim *s);

/**
 * Copy the results into @p out (set out->size first; only that many bytes are written).
 * @return 0; SWARM_EINVAL for NULL arguments or a too-small size; SWARM_ESTATE before a
 *         successful swarm_sim_run().
 */
SWARM_API int swarm_sim_get_result(const swarm_sim *s, swarm_sim_result *out);

/** Number of timeline samples recorded (0 before the run or with no_timeline). */
SWARM_API size_t swarm_sim_timeline_len(const swarm_sim *s);

/**
 * Copy up to @p n timeline samples starting at index @p first into @p buf.
 * @return the number copied (0 past the end); SWARM_EINVAL for a NULL @p s, or a NULL @p buf
 *         with n > 0.
 */
SWARM_API int swarm_sim_get_timeline(const swarm_sim *s, size_t first, swarm_sim_sample *buf,
                                     size_t n);

/** Destroy a simulation (and its policy and loop); NULL is a no-op. */
SWARM_API void swarm_sim_destroy(swarm_sim *s);

/**
 * Erlang C: the probability that an arrival waits in an M/M/c queue with @p servers servers and
 * offered load @p offered = rate x mean service time (Erlangs). 1 when servers <= offered.
 * @return 0; SWARM_EINVAL for a NULL @p p_wait, servers < 0, or offered negative or not finite.
 */
SWARM_API int swarm_sim_erlang_c(int32_t servers, double offered, double *p_wait);

/**
 * The fewest servers c for which P(wait > @p wait_s) = C(c, a) exp(-(c - a) wait_s / service_s)
 * is at most 1 - @p quantile, with a = @p offered (Erlangs). 0 when offered is 0.
 * @return 0; SWARM_EINVAL for NULL @p out, negative or non-finite arguments, service_s <= 0,
 *         quantile outside (0, 1); SWARM_ERANGE if more than @p max_servers would be needed, or
 *         the load exceeds 10^7 (then *out = max_servers). The search is O(servers).
 */
SWARM_API int swarm_sim_erlang_servers(double offered, double service_s, double wait_s,
                                       double quantile, int32_t max_servers, int32_t *out);

#ifdef __cplusplus
}
#endif

#endif /* SWARM_SIM_H */
