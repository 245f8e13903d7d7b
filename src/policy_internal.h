/* SPDX-License-Identifier: MIT */
/*
 * The scaling policy's building blocks: the exact upstream algorithms (Kubernetes HPA, Knative
 * KPA, KEDA's scale executor) as pure functions over caller-owned arrays. swarm_policy_decide()
 * is built from these, and the conformance runner (tests/conformance) calls them directly, so the
 * upstream vectors exercise the very code the policy runs (tests/conformance/check_shipped.py
 * fails if the runner calls one that no exported function reaches). None of them allocates,
 * reads a clock or keeps hidden state.
 *
 * Times are int64 nanoseconds on any clock the caller likes; "inside the last W" means
 * t > now - W, so a timestamp exactly on the boundary is outside (upstream records strictly
 * before the instant it evaluates).
 */
#ifndef SWARM_POLICY_INTERNAL_H
#define SWARM_POLICY_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "swarm/policy.h"

#define SWARM__NS_PER_S INT64_C(1000000000)

/* ---- HPA: recommendations and scale events ------------------------------------------------ */

/* One raw recommendation (HPA's timestampedRecommendation). */
typedef struct swarm__hpa_rec {
    int32_t replicas; /* the recommendation; the largest one merged into this entry */
    int32_t low;      /* the smallest one merged into this entry (== replicas unless merged) */
    int64_t t_ns;     /* when it was recorded (the latest of the merged ones) */
} swarm__hpa_rec;

/* One scale event (HPA's timestampedScaleEvent). */
typedef struct swarm__hpa_event {
    int32_t change; /* >= 0: replicas added (up list) or removed (down list) */
    int32_t outdated;
    int64_t t_ns;
} swarm__hpa_event;

/* Limiting reasons, as HPA's ScalingLimited condition names them. */
enum {
    SWARM__HPA_WITHIN = 0, /* DesiredWithinRange */
    SWARM__HPA_SCALE_UP_LIMIT,
    SWARM__HPA_SCALE_DOWN_LIMIT,
    SWARM__HPA_TOO_MANY,
    SWARM__HPA_TOO_FEW,
};
const char *swarm__hpa_reason_name(int reason);

/* A fully defaulted HPA scaling rule (HPAScalingRules after GenerateHPAScale*Rules). */
typedef struct swarm__hpa_rules {
    int64_t window_ns;
    uint32_t select; /* SWARM_POLICY_SELECT_MAX / _MIN / _DISABLED */
    uint32_t n_policies;
    swarm_policy_rate policies[SWARM_POLICY_MAX_RATES];
} swarm__hpa_rules;

/* Defaulting of one direction's rules from the public form (upstream GenerateHPAScale*Rules plus
 * the controller's 300 s scale-down window). @up selects the scale-up defaults. */
void swarm__hpa_rules_default(swarm__hpa_rules *out, const swarm_policy_hpa_rules *in, int up);

/* convertDesiredReplicasWithRules (legacy path, behavior == nil). */
int32_t swarm__hpa_legacy_limits(int32_t current, int32_t desired, int32_t min, int32_t max,
                                 double factor, double minimum, int *reason);

/* stabilizeRecommendation: max over recs inside @window_ns, then store (desired, now) in the last
 * slot older than the window, else append; when the array is full and nothing is old, the oldest
 * entry is overwritten. *n is updated. @gran_ns > 0 merges a recommendation into the newest
 * entry when both fall in the same gran-long bucket (libswarm: a fixed array then holds the
 * window at any decision rate, see swarm__hpa_gran()); 0 stores every one, as upstream. */
int32_t swarm__hpa_stabilize_legacy(swarm__hpa_rec *recs, uint32_t *n, uint32_t cap,
                                    int32_t desired, int64_t now_ns, int64_t window_ns,
                                    int64_t gran_ns);

/* stabilizeRecommendationWithBehaviors (the up window reads each entry's low, the down window
 * its replicas); *stabilized_dir is +1 if the up window held the value below @desired, -1 if the
 * down window held it above, 0 otherwise. @gran_ns as above. */
int32_t swarm__hpa_stabilize(swarm__hpa_rec *recs, uint32_t *n, uint32_t cap, int32_t current,
                             int32_t desired, int64_t now_ns, int64_t up_window_ns,
                             int64_t down_window_ns, int64_t gran_ns, int *stabilized_dir);

/* The merge bucket for @cap entries holding a window of @window_ns: entries in distinct buckets
 * span at least (cap - 2) buckets, so gran = ceil(window / (cap - 2)) keeps the whole window.
 * 0 (exact) for a zero window or cap < 3 (too small to hold one: the oldest is overwritten). */
int64_t swarm__hpa_gran(int64_t window_ns, uint32_t cap);

/* getReplicasChangePerPeriod. */
int32_t swarm__hpa_change_in_period(const swarm__hpa_event *ev, uint32_t n, int64_t now_ns,
                                    int64_t period_ns);

/* calculateScaleUpLimitWithScalingRules / calculateScaleDownLimitWithBehaviors. */
int32_t swarm__hpa_scale_up_limit(int32_t current, const swarm__hpa_event *up, uint32_t n_up,
                                  const swarm__hpa_event *down, uint32_t n_down,
                                  const swarm__hpa_rules *rules, int64_t now_ns);
int32_t swarm__hpa_scale_down_limit(int32_t current, const swarm__hpa_event *up, uint32_t n_up,
                                    const swarm__hpa_event *down, uint32_t n_down,
                                    const swarm__hpa_rules *rules, int64_t now_ns);

/* convertDesiredReplicasWithBehaviorRate. */
int32_t swarm__hpa_behavior_rate(int32_t current, int32_t desired, int32_t min, int32_t max,
                                 const swarm__hpa_event *up, uint32_t n_up,
                                 const swarm__hpa_event *down, uint32_t n_down,
                                 const swarm__hpa_rules *up_rules,
                                 const swarm__hpa_rules *down_rules, int64_t now_ns, int *reason);

/* storeScaleEvent for one list: marks events older than @longest_period_ns outdated, reuses the
 * last outdated slot, else appends (else overwrites the oldest when full). @gran_ns > 0 merges
 * the change into the newest live event of the same gran-long bucket (libswarm, as for the
 * recommendations: swarm__hpa_gran(longest period, cap)); 0 stores every event, as upstream. */
void swarm__hpa_store_event(swarm__hpa_event *ev, uint32_t *n, uint32_t cap, int32_t change,
                            int64_t now_ns, int64_t longest_period_ns, int64_t gran_ns);
int64_t swarm__hpa_longest_period(const swarm__hpa_rules *rules);

/* ---- HPA: replica calculator ------------------------------------------------------------ */

enum {
    SWARM__CALC_PODS = 1,         /* Pods AverageValue (GetMetricReplicas) */
    SWARM__CALC_OBJECT_VALUE,     /* Object Value */
    SWARM__CALC_OBJECT_AVERAGE,   /* Object AverageValue (per pod) */
    SWARM__CALC_EXTERNAL_VALUE,   /* External Value */
    SWARM__CALC_EXTERNAL_AVERAGE, /* External AverageValue (per pod) */
};

/*
 * One metric's input to HPA's replica calculator, in Kubernetes' milli-units, with the pods
 * already grouped the way upstream's groupPods does for a non-CPU metric (the host's view of
 * its replicas: swarm_policy_decide() passes ready and starting replicas; the conformance
 * runner groups the vectors' pod lists).
 */
typedef struct swarm__hpa_calc_in {
    uint32_t kind;   /* SWARM__CALC_* */
    int32_t current; /* the replica count upstream passes (spec or status) */
    double tol_up, tol_down;
    int64_t target_milli; /* value / average value target, > 0 */
    /* Pods: the samples of ready pods plus samples that match no pod (upstream keeps them). */
    int64_t sample_total_milli; /* their sum (saturating) */
    int64_t n_samples;          /* their count */
    int64_t n_ready;            /* Pods: ready pods with a sample; Object/External Value:
                                   pods Running with Ready=True */
    int64_t n_unready;          /* Pods: pending pods */
    int64_t n_missing;          /* Pods: pods without a sample */
    int64_t n_pods;             /* Object/External Value: pods the selector returns */
    int64_t usage_milli;        /* Object value, or the sum of External values (saturating) */
} swarm__hpa_calc_in;

typedef struct swarm__hpa_calc_out {
    int32_t replicas;
    int32_t want;        /* the count without the tolerance (and unready damping) */
    int64_t usage_milli; /* first-pass usage */
    char error[160];     /* set when the call returns < 0 */
} swarm__hpa_calc_out;

/* ReplicaCalculator.Get*Replicas. Returns 0, or SWARM_EINVAL with out->error set to upstream's
 * message. */
int swarm__hpa_replica_calc(const swarm__hpa_calc_in *in, swarm__hpa_calc_out *out);

/* Tolerance test: (1 - down) <= r <= (1 + up), in float64 exactly as upstream writes it. */
int swarm__hpa_within(double ratio, double tol_up, double tol_down);

/* ---- KPA --------------------------------------------------------------------------------- */

/* Knative's DeciderSpec, no defaults applied. */
typedef struct swarm__kpa_spec {
    double target_value, total_value, target_burst_capacity, panic_threshold;
    double max_scale_up_rate, max_scale_down_rate;
    int64_t stable_window_ns, scale_down_delay_ns;
    int32_t activation_scale;
    uint32_t reachable;
} swarm__kpa_spec;

/* The delay window: Knative's max.TimeWindow (ascending-minima deque over bucket indices). */
typedef struct swarm__kpa_maxwin {
    uint32_t n_buckets; /* window length in buckets; 0 = no window */
    uint32_t first, length;
    int64_t gran_ns;
} swarm__kpa_maxwin;

typedef struct swarm__kpa_maxent {
    int64_t index;
    int32_t value;
    int32_t pad_;
} swarm__kpa_maxent;

void swarm__kpa_maxwin_record(swarm__kpa_maxwin *w, swarm__kpa_maxent *ents, int64_t now_ns,
                              int32_t value);
int32_t swarm__kpa_maxwin_current(const swarm__kpa_maxwin *w, const swarm__kpa_maxent *ents);

/* Autoscaler state that survives between Scale() calls. */
typedef struct swarm__kpa_state {
    int64_t panic_time_ns; /* valid only when in_panic */
    uint32_t in_panic;
    int32_t max_panic_pods;
} swarm__kpa_state;

typedef struct swarm__kpa_result {
    int32_t desired;
    int32_t ebc;
    uint32_t valid;
    /* Explanation pieces. */
    int32_t stable_pods, panic_pods, dspc_clamped_from, delayed_from;
    uint32_t panic_entered, panic_exited, activation_applied, ratchet_held;
} swarm__kpa_result;

/* newAutoscaler: starts in panic (panic time = @now_ns) when @ready_pods > 1. */
void swarm__kpa_init(swarm__kpa_state *st, int64_t now_ns, int32_t ready_pods);

/* autoscaler.Scale() with observed stable and panic values already aggregated. @capacity_pods is
 * the ready pod count (libswarm's pending-capacity extension passes ready + starting). @delay
 * may be NULL. */
void swarm__kpa_scale(swarm__kpa_state *st, const swarm__kpa_spec *spec, int64_t now_ns,
                      int32_t ready_pods, int32_t capacity_pods, double stable, double panic,
                      swarm__kpa_maxwin *delay, swarm__kpa_maxent *delay_ents,
                      swarm__kpa_result *out);

/* ---- KEDA -------------------------------------------------------------------------------- */

enum { SWARM__KEDA_COND_TRUE = 1, SWARM__KEDA_COND_FALSE, SWARM__KEDA_COND_UNKNOWN };

typedef struct swarm__keda_cond {
    uint32_t set;       /* 0: the call left this condition alone */
    uint32_t status;    /* SWARM__KEDA_COND_* */
    const char *reason; /* static strings, upstream's wording */
    const char *message;
} swarm__keda_cond;

typedef struct swarm__keda_in {
    int32_t min;               /* minReplicaCount (0 when unset) */
    int32_t idle;              /* idleReplicaCount, or -1 when unset */
    uint32_t has_fallback;     /* spec.fallback is set ... */
    int32_t fallback_replicas; /* ... with these replicas (0 does not hold a failing target) */
    int64_t cooldown_ns, initial_cooldown_ns;
    uint32_t paused, paused_scale_in, paused_scale_out, force_activation;
    int32_t current;
    uint32_t is_active, is_error;
    uint32_t has_last_active;
    int64_t last_active_ns;
    int64_t creation_ns;
    int64_t now_ns;
} swarm__keda_in;

typedef struct swarm__keda_out {
    int32_t replicas; /* target replicas afterwards */
    uint32_t scale_updated;
    uint32_t last_active_set;  /* lastActiveTime := now */
    uint32_t scaled_from_zero; /* the KEDAScaleTargetActivated event fired */
    uint32_t scaled_to_idle;   /* the KEDAScaleTargetDeactivated event fired */
    uint32_t cooling_down;
    swarm__keda_cond active, ready, paused;
} swarm__keda_out;

/* scaleExecutor.RequestScale for a ScaledObject. */
void swarm__keda_request_scale(const swarm__keda_in *in, swarm__keda_out *out);

/* ---- LOAD: libswarm's load-aware mode (policy_load.c) ---------------------------------- */

/* Defaulted LOAD configuration (seconds as doubles for the model). */
typedef struct swarm__load_cfg {
    double wait_s;  /* queue-wait target */
    double tail;    /* allowed P(wait > wait_s) = 1 - percentile */
    double drain_s; /* backlog drain time */
    double prior_s; /* service time until one is measured */
    double tau_s;   /* moving-average time constant */
    double band;    /* scale-down hysteresis band, fraction of current (0: none) */
    int64_t down_window_ns;
    int64_t up_hold_ns; /* no scale-down this long after asking for more (0: none) */
} swarm__load_cfg;

/* The estimator: everything LOAD keeps between decisions besides its down window. */
typedef struct swarm__load_state {
    uint32_t has_base;     /* base_* hold the counters of an earlier decision */
    uint32_t has_rate;     /* rate holds an estimate */
    uint32_t has_svc;      /* svc_s was measured (else the prior applies) */
    uint32_t last_arrived; /* the last rate sample saw arrivals (0: idle interval) */
    uint32_t has_up;       /* up_ns holds the last decision that asked for more */
    uint32_t pad_;
    int64_t up_ns;
    int64_t base_ns;
    uint64_t base_arrivals, base_completions;
    double base_service_s;
    double rate;  /* arrivals per second, moving average */
    double svc_s; /* mean service time, seconds, moving average */
} swarm__load_state;

/* Validates and defaults the LOAD fields of @o. Returns 0 or SWARM_EINVAL. */
int swarm__load_config(swarm__load_cfg *c, const swarm_policy_opts *o);

/* Buckets (2 s each, in the KPA delay ring) of the down window. */
uint32_t swarm__load_window_buckets(const swarm__load_cfg *c);

/* Whether an imported estimator holds only values decide() itself produces: 0, or -1. */
int swarm__load_state_check(const swarm__load_state *st);

/* One LOAD decision before the generic bounds and pause rules; records its steps in @d. */
int32_t swarm__load_decide(const swarm__load_cfg *c, swarm__load_state *st, swarm__kpa_maxwin *win,
                           swarm__kpa_maxent *ents, int32_t min, int32_t max, int64_t now_ns,
                           const swarm_policy_obs *obs, swarm_policy_decision *d);

/* Erlang C: probability that an arrival waits in M/M/c with offered load @a (Erlangs). */
double swarm__erlang_c(int64_t c, double a);

/* The fewest servers c > a with Erlang C's P(wait > t) = C(c, a) * exp(-(c - a) * t / S) at most
 * @tail, where @t_over_s = t / S. Returns @limit + 1 when more than @limit would be needed; 0 for
 * a = 0. Cost O(sqrt(a)) plus the answer's distance above a. */
int64_t swarm__erlang_servers(double a, double t_over_s, double tail, int64_t limit);

#endif /* SWARM_POLICY_INTERNAL_H */
