/* SPDX-License-Identifier: MIT */
/*
 * libswarm scaling policy: a pure, deterministic function from (policy state, now, observation)
 * to a replica count, with KEDA, Kubernetes HPA v2 and Knative KPA semantics and their upstream
 * defaults, plus fixes for what their users complain about. Every decision carries its
 * explanation (the raw recommendation per metric and each rule that changed it, in order), and
 * the whole state can be exported and imported so that a restarted host resumes the same
 * decisions.
 *
 * No clock reads, threads, I/O or allocation after swarm_policy_create(): the host passes the
 * time in and owns every buffer.
 */
#ifndef SWARM_POLICY_H
#define SWARM_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "swarm/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Most metrics one observation can carry. */
#define SWARM_POLICY_MAX_METRICS 8
/** Most rate policies per HPA direction. */
#define SWARM_POLICY_MAX_RATES 4
/** Most explanation steps one decision records (any further ones are dropped). */
#define SWARM_POLICY_MAX_STEPS 24
/** Size of the decision's one-line explanation buffer, NUL included. */
#define SWARM_POLICY_TEXT_LEN 320
/** Version of the exported state format (swarm_policy_export_state()). */
#define SWARM_POLICY_STATE_VERSION 4u

/** Which upstream the policy follows. */
typedef enum swarm_policy_mode {
    SWARM_POLICY_KEDA = 1, /**< KEDA ScaledObject: activation and 0<->1 by KEDA, 1<->N by its HPA */
    SWARM_POLICY_HPA = 2,  /**< Kubernetes HPA autoscaling/v2 */
    SWARM_POLICY_KPA = 3,  /**< Knative Pod Autoscaler (stable/panic windows) */
    /** libswarm's load-aware mode. It estimates the arrival rate (deltas of obs.arrivals
     *  between decisions, a moving average over load_rate_tau_ns that jumps to a new level at
     *  once when a rise is far beyond Poisson noise) and the mean service time (delta of
     *  obs.service_total_s over delta of obs.completions; load_service_prior_ns until the first
     *  completion), sizes replicas by Erlang C so that the load_percentile of the queue wait
     *  stays under load_wait_ns (concurrency servers per replica), adds what drains the current
     *  backlog (metrics[0], kind TOTAL) within load_drain_ns, and counts starting replicas as
     *  capacity already ordered. Up: at once. Down: never within load_up_hold_ns of asking
     *  for more, then only to the largest need of the last load_down_window_ns plus a margin,
     *  and only when that is more than load_down_band below current, so it does not flap. A host
     * should fill arrivals, completions, service_total_s and concurrency (>= 1, which also marks
     * counters still at 0 as observed); without them (a 0.1 caller) it sizes from the work in
     * service (Little).
     *
     *  Pick it when the work is a queue of tasks with a measurable service time and a
     *  queue-wait objective: it reacts to a step on the next decision instead of ramping by
     *  rate limits, holds about the Erlang C count instead of a backlog multiple, and in the
     *  simulator (benchmarks/bench_scaling: five traces x three start-up times) used 6-84 % of
     *  the best upstream default's replica-seconds, with no flaps except on random spikes. Prefer
     * the upstream modes when the deployment must behave exactly like a KEDA/HPA/Knative one (the
     * same YAML elsewhere, conformance), when the signal is not a queue (CPU, latency or a custom
     * metric: HPA's Value/Average kinds), or when the counters cannot be observed. No mode can beat
     * the replica start-up time on a sudden burst from a small count: capacity ordered now serves
     * after it. */
    SWARM_POLICY_LOAD = 4
} swarm_policy_mode;

/** What a metric sample's value means. */
typedef enum swarm_policy_metric_kind {
    /** Total backlog: queued (value) plus in-flight (in_flight). Wants ceil(total / target).
     *  KEDA/HPA "AverageValue" on an external metric; KPA total concurrency. */
    SWARM_METRIC_TOTAL = 1,
    /** Average per ready replica. Wants ceil(ready * value / target) (HPA Pods AverageValue). */
    SWARM_METRIC_AVERAGE = 2,
    /** A value such as latency. Wants ceil(ready * value / target); from zero ceil(value/target)
     *  (HPA/KEDA "Value"). */
    SWARM_METRIC_VALUE = 3
} swarm_policy_metric_kind;

/** Fallback replica choice after repeated metric failures (KEDA fallback.behavior). */
typedef enum swarm_policy_fallback {
    SWARM_FALLBACK_STATIC = 0,            /**< fallback_replicas */
    SWARM_FALLBACK_CURRENT = 1,           /**< current replicas */
    SWARM_FALLBACK_CURRENT_IF_HIGHER = 2, /**< max(current, fallback_replicas) */
    SWARM_FALLBACK_CURRENT_IF_LOWER = 3   /**< min(current, fallback_replicas) */
} swarm_policy_fallback;

/** HPA selectPolicy. */
typedef enum swarm_policy_select {
    SWARM_POLICY_SELECT_DEFAULT = 0, /**< Max */
    SWARM_POLICY_SELECT_MAX = 1,     /**< the policy allowing the largest change */
    SWARM_POLICY_SELECT_MIN = 2,     /**< the policy allowing the smallest change */
    SWARM_POLICY_SELECT_DISABLED = 3 /**< no scaling in this direction */
} swarm_policy_select;

/** HPA rate policy type. */
typedef enum swarm_policy_rate_type {
    SWARM_RATE_PODS = 1,   /**< at most value replicas per period */
    SWARM_RATE_PERCENT = 2 /**< at most value percent of the period's start count per period */
} swarm_policy_rate_type;

/** One HPA scaling policy (HPAScalingPolicy). */
typedef struct swarm_policy_rate {
    uint32_t type;     /**< swarm_policy_rate_type */
    int32_t value;     /**< > 0 */
    int64_t period_ns; /**< 1 s .. 1800 s */
} swarm_policy_rate;

/** One HPA direction (HPAScalingRules). All zero means "unset": the upstream defaults apply. */
typedef struct swarm_policy_hpa_rules {
    /** Stabilization window, ns, at most 3600 s. 0: default (up 0 s, down 300 s);
     *  negative: explicitly no window. */
    int64_t window_ns;
    uint32_t select;     /**< swarm_policy_select; 0: Max */
    uint32_t n_policies; /**< 0: defaults (up: Pods 4 and Percent 100 per 15 s; down: Percent
                              100 per 15 s) */
    swarm_policy_rate policies[SWARM_POLICY_MAX_RATES];
    /** Tolerance for this direction; 0: opts.tolerance; negative: explicitly none. */
    double tolerance;
} swarm_policy_hpa_rules;

/** Bits of swarm_policy_opts.disable: libswarm's extensions over upstream, all on by default. */
enum {
    /** Turns off the cold-start jump even where swarm_policy_opts.enable asks for it (the jump
     *  is off by default since 0.2: see SWARM_POLICY_COLD_START_JUMP). */
    SWARM_POLICY_NO_COLD_START_JUMP = 1u << 0,
    /** Count replicas still starting as pending capacity: KPA's panic ratio and rate bases use
     *  ready + starting, and a metric per ready replica with none ready keeps the count. With
     *  pending_hold_max_ns > 0 also no scale-up while some are starting, for at most that long
     *  (off by default: it halved ramps in the simulator, issue 9 finding 2). */
    SWARM_POLICY_NO_PENDING_CAPACITY = 1u << 1,
    /** Fallback also wakes a target at zero (KEDA's only works through the HPA, at >= 1). */
    SWARM_POLICY_NO_FALLBACK_AT_ZERO = 1u << 2,
    /** Exactly upstream: every extension above off. */
    SWARM_POLICY_STRICT_UPSTREAM = 0xffffu
};

/** Bits of swarm_policy_opts.enable: libswarm extensions that are off unless asked for,
 *  because they did not win against upstream on every trace of the simulator (issue 9). */
enum {
    /** KEDA/HPA from zero: go at once where the HPA phase's first sync would go from
     *  max(min, 1) (its scale-up rate limit, e.g. 0 -> 4), not to max(min, 1) and a sync later
     *  further; the jump is recorded, so the scale-down window holds it. In bench_scaling it
     *  cut p99 waits on the idle-burst and flash traces by a quarter, but on the step trace at
     *  5 s start-up it doubled p99 and cost a third more replica-seconds. */
    SWARM_POLICY_COLD_START_JUMP = 1u << 0
};

/** Pause bits for swarm_policy_opts.pause (KEDA annotations; honoured in every mode). */
enum {
    SWARM_POLICY_PAUSED = 1u << 0,           /**< hold the current count (or paused_replicas) */
    SWARM_POLICY_PAUSED_SCALE_IN = 1u << 1,  /**< never decrease */
    SWARM_POLICY_PAUSED_SCALE_OUT = 1u << 2, /**< never increase */
    SWARM_POLICY_FORCE_ACTIVATION = 1u << 3  /**< KEDA: treat triggers as active */
};

/** HPA normalization path. */
enum {
    SWARM_POLICY_HPA_AUTO = 0,     /**< behavior path iff scale_up or scale_down has a field set */
    SWARM_POLICY_HPA_BEHAVIOR = 1, /**< behavior path, defaults for unset fields */
    SWARM_POLICY_HPA_LEGACY = 2    /**< no behavior: 5 min max-stabilization, x2/+4 limit */
};

/**
 * Policy configuration. Fill with swarm_policy_opts_init(); a zero field means the documented
 * (upstream) default. Fixed-width fields only, so ctypes can mirror it.
 */
typedef struct swarm_policy_opts {
    /** sizeof(swarm_policy_opts), set by swarm_policy_opts_init(). Accepted from the 0.1.0 size
     * (the fields through pending_hold_max_ns) up; a smaller size, a larger one with a nonzero byte
     * past this struct, or one above 4096: SWARM_EINVAL. */
    uint32_t size;
    uint32_t mode;           /**< swarm_policy_mode; required */
    int32_t min_replicas;    /**< KEDA/KPA 0; HPA: 0 means 1 */
    int32_t max_replicas;    /**< 0: 100 (KEDA/HPA), unlimited (KPA) */
    uint32_t history_cap;    /**< entries per history ring (recommendations, events); 0: 256.
                                  Each ring keeps its whole window (stabilization window, longest
                                  rate period) at any decision rate: entries closer than
                                  ceil(window / (history_cap - 2)) merge (largest and smallest
                                  recommendation, summed changes), and a merged one leaves the
                                  window at most that much late (1.18 s for 300 s and 256
                                  entries). Below 3 the oldest entry is dropped instead. */
    uint32_t disable;        /**< SWARM_POLICY_NO_* bits; 0: every extension on */
    uint32_t pause;          /**< SWARM_POLICY_PAUSED* bits */
    int32_t paused_replicas; /**< with SWARM_POLICY_PAUSED: > 0 pins this count; 0 holds current */
    const swarm_allocator *alloc; /**< NULL: libc */
    double tolerance;             /**< HPA/KEDA ratio tolerance; 0: 0.1; negative: none */

    /* KEDA */
    int64_t cooldown_ns;         /**< before N -> 0 (or idle); 0: 300 s; negative: none */
    int64_t initial_cooldown_ns; /**< after the first decision, before any scale-in; 0: 0 s */
    int32_t idle_replicas;       /**< idleReplicaCount; used only with use_idle */
    uint32_t use_idle;           /**< nonzero: idle_replicas is set (must be < min) */
    uint32_t fallback_failures;  /**< fallback after more than this many consecutive failures
                                      of a metric; 0: no fallback */
    uint32_t fallback_behavior;  /**< swarm_policy_fallback */
    int32_t fallback_replicas;   /**< for STATIC / IF_HIGHER / IF_LOWER */
    int32_t pad0_;

    /* HPA (also KEDA's 1<->N phase) */
    uint32_t hpa_path; /**< SWARM_POLICY_HPA_AUTO / _BEHAVIOR / _LEGACY */
    uint32_t pad1_;
    swarm_policy_hpa_rules scale_up;
    swarm_policy_hpa_rules scale_down;
    int64_t legacy_window_ns; /**< legacy downscale stabilization; 0: 300 s */
    double legacy_factor;     /**< legacy scale-up limit factor; 0: 2.0 */
    double legacy_minimum;    /**< legacy scale-up limit minimum; 0: 4 */

    /* KPA */
    int64_t stable_window_ns;     /**< 0: 60 s; 6 s .. 3600 s */
    double panic_window_pct;      /**< 0: 10 (% of the stable window; at least 1 s) */
    double panic_threshold_pct;   /**< 0: 200 (% of ready capacity) */
    double max_scale_up_rate;     /**< 0: 1000 (> 1) */
    double max_scale_down_rate;   /**< 0: 2 (> 1) */
    int64_t scale_down_delay_ns;  /**< 0: none; at most 3600 s */
    int32_t activation_scale;     /**< 0/1: none; else the least non-zero scale */
    uint32_t unreachable;         /**< KPA "reachable" inverted: 1 drops the scale-down floor */
    double target_burst_capacity; /**< for the EBC output; 0: 211; negative: unlimited (-1) */
    double total_value;           /**< per-replica capacity for EBC; 0: target / 0.7 */
    int64_t zero_grace_ns;        /**< desired must be 0 this long before 1 -> 0; 0: 30 s */

    /* libswarm extensions */
    int64_t pending_hold_max_ns; /**< > 0: scale-ups wait for replicas that are still starting
                                      (pending capacity) at most this long, counted from the
                                      first held decision; then they proceed as upstream would,
                                      so a warm-up that never finishes cannot block scaling.
                                      0: no hold (the default: in the simulator the hold lost
                                      to upstream on every trace); negative: no limit;
                                      at most 3600 s */

    /* SWARM_POLICY_LOAD (appended in 0.2; the other modes ignore these) */
    int64_t load_wait_ns;          /**< queue-wait target: the load_percentile of the wait of an
                                        arriving task stays under this (Erlang C). 0: 1 s;
                                        at most 3600 s */
    double load_percentile;        /**< the quantile the wait target is for, in (0, 1).
                                        0: 0.99 */
    int64_t load_drain_ns;         /**< capacity beyond the steady need drains the current backlog
                                        (metrics[0] value) within this time. 0: 10 s; 1 s .. 3600 s */
    int64_t load_service_prior_ns; /**< service time assumed until completions are observed.
                                      0: 1 s; at most 3600 s */
    int64_t load_rate_tau_ns;      /**< time constant of the arrival-rate and service-time moving
                                        averages. 0: 5 s; 1 s .. 3600 s */
    int64_t load_down_window_ns;   /**< scale down only to the largest need of this window (plus
                                        a margin of half the band, at least one replica).
                                        0: 30 s; 1 s .. 3600 s */
    double load_down_band;         /**< and only when that need is below current by more than this
                                        fraction of current (at least one replica). 0: 0.1;
                                        negative: none; at most 1 */
    int64_t load_up_hold_ns;       /**< no scale-down this long after a decision that asked for
                                        more, so a scale-up is never reversed within a minute (a
                                        flap). 0: 65 s; negative: none; at most 3600 s */
    uint32_t enable;               /**< SWARM_POLICY_COLD_START_JUMP ...: opt-in extensions;
                                        0: none */
    uint32_t pad3_;                /**< keep 0 */
} swarm_policy_opts;

/** One metric sample. */
typedef struct swarm_policy_metric {
    uint32_t kind;     /**< swarm_policy_metric_kind */
    uint32_t failed;   /**< nonzero: the read failed, value ignored (counts toward fallback) */
    double value;      /**< TOTAL: queued; AVERAGE: per ready replica; VALUE: the value. NaN or
                            infinite counts as a failed read; negative clamps to 0 */
    double in_flight;  /**< TOTAL only: work being processed, added to value (>= 0) */
    double target;     /**< per-replica target, > 0 and finite */
    double activation; /**< KEDA: the metric is active iff value (+ in_flight) > activation */
} swarm_policy_metric;

/**
 * What the host observed at one instant. KEDA and HPA modes use every metric (the largest
 * proposal wins, HPA-style); KPA mode scales on metrics[0] (total concurrency or backlog, kind
 * SWARM_METRIC_TOTAL semantics) and ignores the others.
 */
typedef struct swarm_policy_obs {
    uint32_t size;             /**< sizeof(swarm_policy_obs) */
    int32_t current_replicas;  /**< replicas asked for (spec), >= 0 */
    int32_t ready_replicas;    /**< replicas serving, 0..current */
    int32_t starting_replicas; /**< replicas started but not ready yet (slow model loads) */
    uint32_t n_metrics;        /**< 1..SWARM_POLICY_MAX_METRICS */
    uint32_t pad_;
    swarm_policy_metric metrics[SWARM_POLICY_MAX_METRICS];
    /* Load signals (appended in 0.2; a caller built against 0.1 passes the smaller size and they
     * read as 0). Read by SWARM_POLICY_LOAD; the other modes ignore them. They are cumulative
     * counters so that the pure policy estimates rates from the deltas between its decisions;
     * 0 means unknown. */
    uint64_t arrivals;      /**< tasks arrived so far (e.g. channel sent + dropped) */
    uint64_t completions;   /**< tasks finished so far (e.g. pool completed + failed) */
    double service_total_s; /**< summed service time of those completions, seconds */
    uint32_t concurrency;   /**< tasks one replica runs at once; 0: 1 */
    uint32_t pad2_;         /**< keep 0 */
} swarm_policy_obs;

/** Size of a swarm_policy_obs built against 0.1 (before the load signals). */
#define SWARM_POLICY_OBS_V1_SIZE (offsetof(swarm_policy_obs, arrivals))

/**
 * Rule codes of the explanation, in the order they can apply: one table drives the enum and
 * swarm_policy_rule_name() (code, name, meaning). Codes are appended, never renumbered.
 */
#define SWARM_POLICY_RULE_MAP(XX)                                                                  \
    /* a metric's raw recommendation (metric = index) */                                           \
    XX(RAW, 1, "raw")                                                                              \
    /* a metric failed to read (value = consecutive failures) */                                   \
    XX(METRIC_FAILED, 2, "metric_failed")                                                          \
    /* ratio within tolerance: the metric keeps current */                                         \
    XX(TOLERANCE, 3, "tolerance")                                                                  \
    /* some metrics failed: no scale-down */                                                       \
    XX(PARTIAL_METRICS, 4, "partial_metrics")                                                      \
    /* every metric failed: hold */                                                                \
    XX(NO_METRICS, 5, "no_metrics")                                                                \
    /* fallback replicas replaced a failing metric */                                              \
    XX(FALLBACK, 6, "fallback")                                                                    \
    /* KEDA: inactive (no metric above activation) */                                              \
    XX(ACTIVATION, 7, "activation")                                                                \
    /* from zero: jump to the needed count */                                                      \
    XX(COLD_START, 8, "cold_start")                                                                \
    /* scale to zero/idle waits for the cooldown */                                                \
    XX(COOLDOWN, 9, "cooldown")                                                                    \
    /* inactive: scaled to zero/idle */                                                            \
    XX(IDLE, 10, "idle")                                                                           \
    /* HPA stabilization window held the value */                                                  \
    XX(STABILIZATION, 11, "stabilization")                                                         \
    /* HPA policies / KPA max up/down rates / legacy x2+4 */                                       \
    XX(RATE_LIMIT, 12, "rate_limit")                                                               \
    /* raised to min */                                                                            \
    XX(MIN, 13, "min")                                                                             \
    /* lowered to max */                                                                           \
    XX(MAX, 14, "max")                                                                             \
    /* KPA panic mode (value: 1 enter, 2 in, 3 exit) */                                            \
    XX(PANIC, 15, "panic")                                                                         \
    /* KPA scale-down delay window */                                                              \
    XX(SCALE_DOWN_DELAY, 16, "scale_down_delay")                                                   \
    /* KPA activation scale */                                                                     \
    XX(ACTIVATION_SCALE, 17, "activation_scale")                                                   \
    /* starting replicas counted as capacity */                                                    \
    XX(PENDING_CAPACITY, 18, "pending_capacity")                                                   \
    /* paused (or paused in this direction) */                                                     \
    XX(PAUSE, 19, "pause")                                                                         \
    /* now went backwards: the last time was used */                                               \
    XX(CLOCK_CLAMPED, 20, "clock_clamped")                                                         \
    /* HPA at zero with min > 0: scaling disabled (upstream) */                                    \
    XX(HPA_DISABLED, 21, "hpa_disabled")                                                           \
    /* KPA: no samples yet; hold */                                                                \
    XX(NO_DATA, 22, "no_data")                                                                     \
    /* LOAD: arrival-rate estimate used for sizing (value: requests/s x 1000) */                   \
    XX(LOAD_RATE, 23, "load_rate")                                                                 \
    /* LOAD: service-time estimate (value: ns; metric 0: the prior, 1: measured) */                \
    XX(LOAD_SERVICE, 24, "load_service")                                                           \
    /* LOAD: Erlang C count for the wait target (before: Little's law minimum */                   \
    /* ceil(rate x service / concurrency); value: offered load, milli-Erlangs) */                  \
    XX(LOAD_ERLANG, 25, "load_erlang")                                                             \
    /* LOAD: raised to drain the backlog within the drain time (value: queued) */                  \
    XX(LOAD_DRAIN, 26, "load_drain")                                                               \
    /* LOAD: no arrivals and no work: zero needed */                                               \
    XX(LOAD_IDLE, 27, "load_idle")                                                                 \
    /* LOAD: scale-down held by the down window or the band (value: window max) */                 \
    XX(LOAD_HYSTERESIS, 28, "load_hysteresis")                                                     \
    /* LOAD: a load counter went backwards (host restart): re-baselined */                         \
    XX(LOAD_RESET, 29, "load_reset")                                                               \
    /* LOAD: no rate yet: the work in service is the offered load (Little) */                      \
    XX(LOAD_NO_SIGNAL, 30, "load_no_signal")

/** Rule codes of the explanation (SWARM_POLICY_RULE_MAP). */
typedef enum swarm_policy_rule {
#define SWARM_RULE_XX_(name, val, str) SWARM_RULE_##name = (val),
    SWARM_POLICY_RULE_MAP(SWARM_RULE_XX_)
#undef SWARM_RULE_XX_
} swarm_policy_rule;

/** One explanation step. */
typedef struct swarm_policy_step {
    uint32_t rule;  /**< swarm_policy_rule */
    int32_t metric; /**< metric index, or -1 */
    int32_t before; /**< replica count before the rule */
    int32_t after;  /**< and after it */
    int64_t value;  /**< rule-specific detail (e.g. failure count, panic phase) */
} swarm_policy_step;

/** Decision flags. */
enum {
    SWARM_DECISION_ACTIVE = 1u << 0,   /**< some metric above activation (KEDA) */
    SWARM_DECISION_PANIC = 1u << 1,    /**< KPA in panic mode */
    SWARM_DECISION_FALLBACK = 1u << 2, /**< fallback replicas in use */
    SWARM_DECISION_PAUSED = 1u << 3,
    SWARM_DECISION_HOLD = 1u << 4 /**< no valid signal: replicas = current */
};

/** The output of swarm_policy_decide(). The caller provides it and sets size. */
typedef struct swarm_policy_decision {
    uint32_t size;                 /**< sizeof(swarm_policy_decision), set by the caller */
    uint32_t flags;                /**< SWARM_DECISION_* */
    int32_t replicas;              /**< the desired replica count */
    int32_t current;               /**< current replicas, as observed */
    int32_t raw;                   /**< max of the metrics' raw recommendations (-1: none valid) */
    int32_t retire;                /**< drain hint: replicas to retire (current - replicas, or 0) */
    int32_t retire_starting;       /**< of those, how many to take from starting replicas first */
    uint32_t prefer_idle;          /**< drain hint: retire idle replicas before busy ones (1) */
    int32_t excess_burst_capacity; /**< KPA EBC (0 in other modes) */
    uint32_t n_steps;              /**< steps recorded (<= SWARM_POLICY_MAX_STEPS) */
    int32_t metric_raw[SWARM_POLICY_MAX_METRICS]; /**< per metric raw recommendation, -1 failed */
    swarm_policy_step steps[SWARM_POLICY_MAX_STEPS];
    char text[SWARM_POLICY_TEXT_LEN]; /**< one line for logs, NUL-terminated, maybe truncated */
} swarm_policy_decision;

/** A policy: configuration plus all state. Opaque. */
typedef struct swarm_policy swarm_policy;

/**
 * Fill @p opts with defaults (every field zero) and set its size.
 *
 * @return 0; SWARM_EINVAL if @p opts is NULL.
 * Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_policy_opts_init(swarm_policy_opts *opts);

/**
 * Create a policy. All history rings are allocated here, once; nothing allocates later.
 *
 * @param out   receives the policy; untouched on error.
 * @param opts  configuration (copied); mode is required.
 * @return 0; SWARM_EINVAL for NULL arguments, an unknown mode, min > max, negative counts,
 *         windows or periods out of range (HPA windows 0..3600 s, periods 1..1800 s, KPA stable
 *         window 6..3600 s, scale-down delay <= 3600 s, rates <= 1), idle >= min, history_cap >
 *         65536 or a tolerance that is NaN; SWARM_ENOMEM.
 * Ownership: the caller owns the policy; release it with swarm_policy_destroy().
 * Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_policy_create(swarm_policy **out, const swarm_policy_opts *opts);

/** Destroy a policy; NULL is a no-op. Thread safety: not concurrently with other calls on @p p. */
SWARM_API void swarm_policy_destroy(swarm_policy *p);

/**
 * Change the configuration while keeping all state (e.g. pause, bounds, tolerances, HPA rules,
 * KPA rates). The ring sizes cannot change: mode, history_cap and, in KPA mode, the stable window
 * and the scale-down delay (rounded to their bucket counts) must match the ones given at create.
 * The allocator is not changed.
 *
 * @return 0; SWARM_EINVAL as in swarm_policy_create() or if a ring size would change (then the
 *         policy is unchanged).
 * Thread safety: not concurrently with other calls on @p p. Blocking: no.
 */
SWARM_API int swarm_policy_update(swarm_policy *p, const swarm_policy_opts *opts);

/**
 * Decide the replica count at @p now_ns for @p obs, update the state, and explain.
 *
 * Deterministic: the same policy state, now and observation always give the same decision.
 * If @p now_ns is earlier than the previous call's, the previous time is used instead (step
 * SWARM_RULE_CLOCK_CLAMPED), so windows never run backwards. @p now_ns must lie within
 * +-2^62 ns (146 years) of the clock's origin, so that differences of accepted times never
 * overflow. Metric values and targets are read in milli-units, as Kubernetes quantities are
 * (round(v * 1000); a target below 0.0005 acts as 0.001).
 *
 * The result is within [min, max], except: KEDA (and KPA with min 0) may return 0 or the idle
 * count; SWARM_POLICY_PAUSED returns current (or paused_replicas); a hold (no valid metric)
 * returns current.
 *
 * @return 0; SWARM_EINVAL if an argument is NULL, obs->size or out->size is too small, counts
 *         are negative or ready/starting exceed current, n_metrics is 0 or too large, a kind is
 *         unknown, a target is not finite and > 0, or @p now_ns is beyond +-2^62. On error
 *         neither the state nor @p out change.
 * Ownership: nothing is kept from @p obs. Thread safety: not concurrently with other calls on
 * @p p (distinct policies are independent). Blocking: no; no allocation, I/O or clock read.
 */
SWARM_API int swarm_policy_decide(swarm_policy *p, int64_t now_ns, const swarm_policy_obs *obs,
                                  swarm_policy_decision *out);

/**
 * Bytes swarm_policy_export_state() writes for @p p (constant for a given policy).
 * @return the size, or 0 if @p p is NULL. Thread safety: any thread. Blocking: no.
 */
SWARM_API size_t swarm_policy_state_size(const swarm_policy *p);

/**
 * Export all state (histories, events, panic state, KEDA last-active time, failure counters,
 * last time) in a versioned, fixed-layout little-endian form: "SWPS", u32 version
 * (SWARM_POLICY_STATE_VERSION), u32 mode, u32 history_cap, u32 KPA buckets, u32 KPA delay
 * buckets, i64 anchor, then the fields (one table in src/policy.c describes them). Every time
 * is written relative to the anchor (the last decision's time rounded down to 2 s), so the
 * bytes do not depend on the clock's origin: a state moves between processes, boots and hosts.
 * Ages beyond 146 years are written as 146 years (they act the same).
 *
 * @param buf   destination, at least swarm_policy_state_size() bytes.
 * @param len   size of @p buf.
 * @param written receives the byte count; may be NULL.
 * @return 0; SWARM_EINVAL for NULL @p p / @p buf; SWARM_ERANGE if @p len is too small.
 * Thread safety: not concurrently with swarm_policy_decide() on @p p. Blocking: no.
 */
SWARM_API int swarm_policy_export_state(const swarm_policy *p, void *buf, size_t len,
                                        size_t *written);

/**
 * Replace the state with an export from a policy of the same mode and history_cap (format
 * versions 1 to SWARM_POLICY_STATE_VERSION; older ones are converted).
 *
 * The next swarm_policy_decide() places the imported timeline on this host's clock. If its now
 * is at or after the exported last decision (on the exporter's clock), the clock is taken to
 * continue the exporter's (a process restart on the same boot): every time comes back exactly
 * and the downtime counts as elapsed. If it is earlier, the clock restarted (a reboot, another
 * host): the timeline moves so that the exported last decision lies just before now (less than
 * 2 s), and every window, cooldown and hold resumes where it stopped; the downtime does not
 * count. A clock that is ahead of the exporter's cannot be told from downtime.
 *
 * Import accepts exactly the states export writes (so export reproduces an accepted buffer
 * byte for byte, and every export imports again).
 *
 * @return 0; SWARM_EINVAL for NULL arguments, a bad magic, a truncated buffer, counts that do
 *         not fit, or values export never writes (a time after the last decision, a bool other
 *         than 0/1, a used-looking unused slot, a non-finite bucket sum); SWARM_ENOTSUP for an
 *         unknown format version; SWARM_ESTATE for another mode, history_cap or KPA window. On
 *         error the state is unchanged.
 * Thread safety: not concurrently with other calls on @p p. Blocking: no.
 */
SWARM_API int swarm_policy_import_state(swarm_policy *p, const void *buf, size_t len);

/**
 * Forget all state, as if just created (configuration kept).
 * @return 0; SWARM_EINVAL if @p p is NULL. Thread safety: not concurrent with other calls.
 */
SWARM_API int swarm_policy_reset(swarm_policy *p);

/**
 * Name a rule code: "tolerance", "stabilization", ... A static string, never NULL ("unknown"
 * for unknown codes). Thread safety: any thread. Blocking: no.
 */
SWARM_API const char *swarm_policy_rule_name(uint32_t rule);

#ifdef __cplusplus
}
#endif

#endif /* SWARM_POLICY_H */
