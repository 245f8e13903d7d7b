/* SPDX-License-Identifier: MIT */
/*
 * The scaling policy object: configuration, all state, and swarm_policy_decide(), which strings
 * the upstream building blocks of policy_algo.c together per mode and records every rule that
 * changed the count. One allocation at create holds the object and its rings; decide() never
 * allocates.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "policy_internal.h"

#define NS SWARM__NS_PER_S
#define MAX_HISTORY_CAP 65536u
#define DEFAULT_HISTORY_CAP 256u

/* One 1 s bucket of KPA samples. */
typedef struct kpa_bucket {
    int64_t index; /* floor(t / 1 s) of the samples it holds */
    double sum;
    uint32_t n;
    uint32_t pad_;
} kpa_bucket;

struct swarm_policy {
    swarm_policy_opts o;  /* normalized copy; o.alloc is NULL (the copy lives in alloc) */
    swarm_allocator alloc;
    size_t block_size;

    /* Derived configuration. */
    int32_t min, max;
    int hpa_behavior;
    swarm__hpa_rules up, down;
    double tol_up, tol_down;
    int64_t cooldown_ns, initial_cooldown_ns, legacy_window_ns, zero_grace_ns;
    int64_t pending_hold_ns; /* INT64_MAX: no limit */
    double legacy_factor, legacy_minimum;
    swarm__kpa_spec kpa; /* target_value and total_value are filled per decision */
    int64_t panic_window_ns;
    uint32_t ext_cold_start, ext_pending, ext_fallback_zero;
    swarm__load_cfg load_cfg; /* SWARM_POLICY_LOAD */

    /* Rings, sized at create. */
    uint32_t cap, n_buckets, n_delay;
    swarm__hpa_rec *recs;
    swarm__hpa_event *ev_up, *ev_down;
    kpa_bucket *buckets;
    swarm__kpa_maxent *delay_ents;

    /* ---- state (exported) ---- */
    uint32_t started;
    int64_t last_now, created_ns;
    uint32_t n_recs, n_up, n_down;
    uint32_t fail[SWARM_POLICY_MAX_METRICS];
    uint32_t has_last_active;
    int64_t last_active_ns;
    uint32_t kpa_started;
    swarm__kpa_state kst;
    uint32_t has_nonzero;
    int64_t last_nonzero_ns;
    uint32_t kb_has_write;
    int64_t kb_first_idx, kb_last_idx;
    swarm__kpa_maxwin delay;
    uint32_t pending_active; /* a scale-up has been held for starting replicas ... */
    int64_t pending_since_ns; /* ... since this decision */
    swarm__load_state load;   /* SWARM_POLICY_LOAD estimator */
};

/* ---- rule names ---------------------------------------------------------------------------- */

const char *swarm_policy_rule_name(uint32_t rule)
{
    switch (rule) {
    case SWARM_RULE_RAW: return "raw";
    case SWARM_RULE_METRIC_FAILED: return "metric_failed";
    case SWARM_RULE_TOLERANCE: return "tolerance";
    case SWARM_RULE_PARTIAL_METRICS: return "partial_metrics";
    case SWARM_RULE_NO_METRICS: return "no_metrics";
    case SWARM_RULE_FALLBACK: return "fallback";
    case SWARM_RULE_ACTIVATION: return "activation";
    case SWARM_RULE_COLD_START: return "cold_start";
    case SWARM_RULE_COOLDOWN: return "cooldown";
    case SWARM_RULE_IDLE: return "idle";
    case SWARM_RULE_STABILIZATION: return "stabilization";
    case SWARM_RULE_RATE_LIMIT: return "rate_limit";
    case SWARM_RULE_MIN: return "min";
    case SWARM_RULE_MAX: return "max";
    case SWARM_RULE_PANIC: return "panic";
    case SWARM_RULE_SCALE_DOWN_DELAY: return "scale_down_delay";
    case SWARM_RULE_ACTIVATION_SCALE: return "activation_scale";
    case SWARM_RULE_PENDING_CAPACITY: return "pending_capacity";
    case SWARM_RULE_PAUSE: return "pause";
    case SWARM_RULE_CLOCK_CLAMPED: return "clock_clamped";
    case SWARM_RULE_HPA_DISABLED: return "hpa_disabled";
    case SWARM_RULE_NO_DATA: return "no_data";
    case SWARM_RULE_LOAD_RATE: return "load_rate";
    case SWARM_RULE_LOAD_SERVICE: return "load_service";
    case SWARM_RULE_LOAD_ERLANG: return "load_erlang";
    case SWARM_RULE_LOAD_DRAIN: return "load_drain";
    case SWARM_RULE_LOAD_IDLE: return "load_idle";
    case SWARM_RULE_LOAD_HYSTERESIS: return "load_hysteresis";
    case SWARM_RULE_LOAD_RESET: return "load_reset";
    case SWARM_RULE_LOAD_NO_SIGNAL: return "load_no_signal";
    default: return "unknown";
    }
}

/* ---- options ------------------------------------------------------------------------------- */

int swarm_policy_opts_init(swarm_policy_opts *opts)
{
    if (opts == NULL)
        return SWARM_EINVAL;
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
    return 0;
}

static int bad_double(double d) { return !isfinite(d); }

static int check_rules(const swarm_policy_hpa_rules *r)
{
    if (r->window_ns > 3600 * NS || r->select > SWARM_POLICY_SELECT_DISABLED ||
        r->n_policies > SWARM_POLICY_MAX_RATES || bad_double(r->tolerance))
        return SWARM_EINVAL;
    for (uint32_t i = 0; i < r->n_policies; i++) {
        const swarm_policy_rate *p = &r->policies[i];
        if ((p->type != SWARM_RATE_PODS && p->type != SWARM_RATE_PERCENT) || p->value <= 0 ||
            p->period_ns < NS || p->period_ns > 1800 * NS)
            return SWARM_EINVAL;
    }
    return 0;
}

/* Validates @o (already size-normalized) and fills the derived fields of @p. */
static int configure(swarm_policy *p, const swarm_policy_opts *o)
{
    if (o->mode < SWARM_POLICY_KEDA || o->mode > SWARM_POLICY_LOAD)
        return SWARM_EINVAL;
    if (o->mode == SWARM_POLICY_LOAD && swarm__load_config(&p->load_cfg, o) < 0)
        return SWARM_EINVAL;
    if (o->min_replicas < 0 || o->max_replicas < 0 || o->history_cap > MAX_HISTORY_CAP ||
        o->paused_replicas < 0 || o->fallback_replicas < 0 ||
        o->fallback_behavior > SWARM_FALLBACK_CURRENT_IF_LOWER ||
        o->hpa_path > SWARM_POLICY_HPA_LEGACY)
        return SWARM_EINVAL;
    if (o->cooldown_ns > 366 * 86400 * NS || o->initial_cooldown_ns < 0 ||
        o->initial_cooldown_ns > 366 * 86400 * NS || o->legacy_window_ns < 0 ||
        o->legacy_window_ns > 3600 * NS || o->zero_grace_ns < 0 || o->zero_grace_ns > 3600 * NS ||
        o->pending_hold_max_ns > 3600 * NS)
        return SWARM_EINVAL;
    if (bad_double(o->tolerance) || bad_double(o->legacy_factor) ||
        bad_double(o->legacy_minimum) || o->legacy_factor < 0 || o->legacy_minimum < 0)
        return SWARM_EINVAL;
    if (check_rules(&o->scale_up) < 0 || check_rules(&o->scale_down) < 0)
        return SWARM_EINVAL;
    if (o->stable_window_ns != 0 && (o->stable_window_ns < 6 * NS || o->stable_window_ns > 3600 * NS))
        return SWARM_EINVAL;
    if (bad_double(o->panic_window_pct) || o->panic_window_pct < 0 || o->panic_window_pct > 100 ||
        bad_double(o->panic_threshold_pct) || o->panic_threshold_pct < 0 ||
        bad_double(o->max_scale_up_rate) || bad_double(o->max_scale_down_rate) ||
        (o->max_scale_up_rate != 0 && o->max_scale_up_rate <= 1) ||
        (o->max_scale_down_rate != 0 && o->max_scale_down_rate <= 1) ||
        o->scale_down_delay_ns < 0 || o->scale_down_delay_ns > 3600 * NS ||
        o->activation_scale < 0 || bad_double(o->target_burst_capacity) ||
        bad_double(o->total_value) || o->total_value < 0)
        return SWARM_EINVAL;

    int32_t min = o->min_replicas;
    int32_t max = o->max_replicas;
    if (o->mode == SWARM_POLICY_HPA && min == 0)
        min = 1;
    if (max == 0)
        max = o->mode == SWARM_POLICY_KPA ? INT32_MAX : 100;
    if (min > max)
        return SWARM_EINVAL;
    if (o->use_idle && (o->idle_replicas < 0 || o->idle_replicas >= min))
        return SWARM_EINVAL;

    p->min = min;
    p->max = max;
    switch (o->hpa_path) {
    case SWARM_POLICY_HPA_BEHAVIOR: p->hpa_behavior = 1; break;
    case SWARM_POLICY_HPA_LEGACY: p->hpa_behavior = 0; break;
    default: {
        static const swarm_policy_hpa_rules zero;
        p->hpa_behavior = memcmp(&o->scale_up, &zero, sizeof zero) != 0 ||
                          memcmp(&o->scale_down, &zero, sizeof zero) != 0;
    }
    }
    swarm__hpa_rules_default(&p->up, &o->scale_up, 1);
    swarm__hpa_rules_default(&p->down, &o->scale_down, 0);
    double tol = o->tolerance == 0 ? 0.1 : (o->tolerance < 0 ? 0 : o->tolerance);
    p->tol_up = p->tol_down = tol;
    if (p->hpa_behavior) {
        if (o->scale_up.tolerance != 0)
            p->tol_up = o->scale_up.tolerance < 0 ? 0 : o->scale_up.tolerance;
        if (o->scale_down.tolerance != 0)
            p->tol_down = o->scale_down.tolerance < 0 ? 0 : o->scale_down.tolerance;
    }
    p->cooldown_ns = o->cooldown_ns == 0 ? 300 * NS : (o->cooldown_ns < 0 ? 0 : o->cooldown_ns);
    p->initial_cooldown_ns = o->initial_cooldown_ns;
    p->legacy_window_ns = o->legacy_window_ns == 0 ? 300 * NS : o->legacy_window_ns;
    p->legacy_factor = o->legacy_factor == 0 ? 2.0 : o->legacy_factor;
    p->legacy_minimum = o->legacy_minimum == 0 ? 4.0 : o->legacy_minimum;
    p->zero_grace_ns = o->zero_grace_ns == 0 ? 30 * NS : o->zero_grace_ns;
    p->pending_hold_ns = o->pending_hold_max_ns == 0  ? 300 * NS
                         : o->pending_hold_max_ns < 0 ? INT64_MAX
                                                      : o->pending_hold_max_ns;

    memset(&p->kpa, 0, sizeof p->kpa);
    p->kpa.stable_window_ns = o->stable_window_ns == 0 ? 60 * NS : o->stable_window_ns;
    double pct = o->panic_window_pct == 0 ? 10.0 : o->panic_window_pct;
    /* Knative: panic window = stable * pct / 100, rounded to whole seconds, at least 1 s. */
    double pw_s = round((double)p->kpa.stable_window_ns / (double)NS * pct / 100.0);
    p->panic_window_ns = pw_s < 1 ? NS : (int64_t)pw_s * NS;
    p->kpa.panic_threshold = (o->panic_threshold_pct == 0 ? 200.0 : o->panic_threshold_pct) / 100.0;
    p->kpa.max_scale_up_rate = o->max_scale_up_rate == 0 ? 1000.0 : o->max_scale_up_rate;
    p->kpa.max_scale_down_rate = o->max_scale_down_rate == 0 ? 2.0 : o->max_scale_down_rate;
    p->kpa.scale_down_delay_ns = o->scale_down_delay_ns;
    p->kpa.activation_scale = o->activation_scale;
    p->kpa.reachable = o->unreachable ? 0 : 1;
    p->kpa.target_burst_capacity =
        o->target_burst_capacity == 0 ? 211.0 : (o->target_burst_capacity < 0 ? -1.0
                                                                             : o->target_burst_capacity);
    uint32_t dis = o->disable;
    p->ext_cold_start = !(dis & SWARM_POLICY_NO_COLD_START_JUMP);
    p->ext_pending = !(dis & SWARM_POLICY_NO_PENDING_CAPACITY);
    p->ext_fallback_zero = !(dis & SWARM_POLICY_NO_FALLBACK_AT_ZERO);
    return 0;
}

/* Ring sizes implied by a configuration. */
static void ring_sizes(const swarm_policy *p, const swarm_policy_opts *o, uint32_t *cap,
                       uint32_t *nb, uint32_t *nd)
{
    *cap = o->history_cap == 0 ? DEFAULT_HISTORY_CAP : o->history_cap;
    if (o->mode == SWARM_POLICY_KPA) {
        *nb = (uint32_t)(p->kpa.stable_window_ns / NS) + 1;
        /* Knative: ceil(delay / 2 s) buckets of 2 s. */
        *nd = (uint32_t)((o->scale_down_delay_ns + 2 * NS - 1) / (2 * NS));
    } else if (o->mode == SWARM_POLICY_LOAD) {
        *nb = 0;
        *nd = swarm__load_window_buckets(&p->load_cfg); /* the down window, 1 s buckets */
    } else {
        *nb = 0;
        *nd = 0;
    }
}

static size_t align8(size_t n) { return (n + 7) & ~(size_t)7; }

static void reset_state(swarm_policy *p)
{
    p->started = 0;
    p->last_now = 0;
    p->created_ns = 0;
    p->n_recs = p->n_up = p->n_down = 0;
    memset(p->fail, 0, sizeof p->fail);
    p->has_last_active = 0;
    p->last_active_ns = 0;
    p->kpa_started = 0;
    memset(&p->kst, 0, sizeof p->kst);
    p->has_nonzero = 0;
    p->last_nonzero_ns = 0;
    p->kb_has_write = 0;
    p->kb_first_idx = p->kb_last_idx = 0;
    p->delay.first = p->delay.length = 0;
    p->pending_active = 0;
    p->pending_since_ns = 0;
    memset(&p->load, 0, sizeof p->load);
    memset(p->recs, 0, p->cap * sizeof *p->recs);
    memset(p->ev_up, 0, p->cap * sizeof *p->ev_up);
    memset(p->ev_down, 0, p->cap * sizeof *p->ev_down);
    if (p->n_buckets)
        memset(p->buckets, 0, p->n_buckets * sizeof *p->buckets);
    if (p->n_delay)
        memset(p->delay_ents, 0, p->n_delay * sizeof *p->delay_ents);
}

int swarm_policy_create(swarm_policy **out, const swarm_policy_opts *opts)
{
    if (out == NULL || opts == NULL)
        return SWARM_EINVAL;
    swarm_policy tmp;
    memset(&tmp, 0, sizeof tmp);
    swarm_policy_opts o;
    swarm_policy_opts_init(&o);
    if (swarm__opts_copy(&o, sizeof o, opts, offsetof(swarm_policy_opts, min_replicas)) < 0)
        return SWARM_EINVAL;
    int rc = configure(&tmp, &o);
    if (rc < 0)
        return rc;
    swarm_allocator a;
    if (swarm__alloc_init(&a, o.alloc) < 0)
        return SWARM_EINVAL;
    uint32_t cap, nb, nd;
    ring_sizes(&tmp, &o, &cap, &nb, &nd);
    size_t off_recs = align8(sizeof(swarm_policy));
    size_t off_up = off_recs + align8(cap * sizeof(swarm__hpa_rec));
    size_t off_down = off_up + align8(cap * sizeof(swarm__hpa_event));
    size_t off_b = off_down + align8(cap * sizeof(swarm__hpa_event));
    size_t off_d = off_b + align8(nb * sizeof(kpa_bucket));
    size_t total = off_d + align8(nd * sizeof(swarm__kpa_maxent));
    char *block = swarm__alloc(&a, total, 64);
    if (block == NULL)
        return SWARM_ENOMEM;
    swarm_policy *p = (swarm_policy *)block;
    *p = tmp;
    p->o = o;
    p->o.alloc = NULL;
    p->alloc = a;
    p->block_size = total;
    p->cap = cap;
    p->n_buckets = nb;
    p->n_delay = nd;
    p->recs = (swarm__hpa_rec *)(block + off_recs);
    p->ev_up = (swarm__hpa_event *)(block + off_up);
    p->ev_down = (swarm__hpa_event *)(block + off_down);
    p->buckets = (kpa_bucket *)(block + off_b);
    p->delay_ents = (swarm__kpa_maxent *)(block + off_d);
    p->delay.n_buckets = nd;
    p->delay.gran_ns = o.mode == SWARM_POLICY_LOAD ? NS : 2 * NS;
    reset_state(p);
    *out = p;
    return 0;
}

void swarm_policy_destroy(swarm_policy *p)
{
    if (p == NULL)
        return;
    swarm_allocator a = p->alloc;
    swarm__free(&a, p, p->block_size);
}

int swarm_policy_update(swarm_policy *p, const swarm_policy_opts *opts)
{
    if (p == NULL || opts == NULL)
        return SWARM_EINVAL;
    swarm_policy_opts o;
    swarm_policy_opts_init(&o);
    if (swarm__opts_copy(&o, sizeof o, opts, offsetof(swarm_policy_opts, min_replicas)) < 0)
        return SWARM_EINVAL;
    swarm_policy tmp = *p;
    int rc = configure(&tmp, &o);
    if (rc < 0)
        return rc;
    uint32_t cap, nb, nd;
    ring_sizes(&tmp, &o, &cap, &nb, &nd);
    if (o.mode != p->o.mode || cap != p->cap || nb != p->n_buckets || nd != p->n_delay)
        return SWARM_EINVAL;
    tmp.o = o;
    tmp.o.alloc = NULL;
    *p = tmp;
    return 0;
}

int swarm_policy_reset(swarm_policy *p)
{
    if (p == NULL)
        return SWARM_EINVAL;
    reset_state(p);
    return 0;
}

/* ---- decision helpers ---------------------------------------------------------------------- */

static void step(swarm_policy_decision *d, uint32_t rule, int32_t metric, int32_t before,
                 int32_t after, int64_t value)
{
    if (d->n_steps >= SWARM_POLICY_MAX_STEPS)
        return;
    d->steps[d->n_steps++] = (swarm_policy_step){rule, metric, before, after, value};
}

/* now - then, saturating (imported state may hold any value). */
static int64_t sat_elapsed(int64_t now, int64_t then)
{
    if (then < 0 && now > INT64_MAX + then)
        return INT64_MAX;
    if (then > 0 && now < INT64_MIN + then)
        return INT64_MIN;
    return now - then;
}

/* What is left of @window after @el has elapsed, in [0, window]. */
static int64_t remaining(int64_t window, int64_t el)
{
    if (el <= 0)
        return window;
    return el >= window ? 0 : window - el;
}

static int32_t clamp_i32(double f)
{
    if (!(f == f) || f <= 0)
        return 0;
    if (f >= 2147483647.0)
        return INT32_MAX;
    return (int32_t)f;
}

/* The metric's usable value, or -1 if the read counts as failed. */
static double metric_value(const swarm_policy_metric *m)
{
    if (m->failed || !isfinite(m->value))
        return -1;
    double v = m->value < 0 ? 0 : m->value;
    if (m->kind == SWARM_METRIC_TOTAL && isfinite(m->in_flight) && m->in_flight > 0)
        v += m->in_flight;
    return v;
}

static int32_t fallback_replicas(const swarm_policy *p, int32_t current)
{
    int32_t f = p->o.fallback_replicas;
    switch (p->o.fallback_behavior) {
    case SWARM_FALLBACK_CURRENT: return current;
    case SWARM_FALLBACK_CURRENT_IF_HIGHER: return current > f ? current : f;
    case SWARM_FALLBACK_CURRENT_IF_LOWER: return current < f ? current : f;
    default: return f;
    }
}

/* Per-metric proposals shared by the KEDA and HPA modes. */
typedef struct proposals {
    int n_valid, n_invalid, any_active, any_fallback, any_error;
    int32_t max_valid;  /* -1 if none */
    int32_t need_total; /* max of ceil(value / target) over valid metrics: the cold-start count */
} proposals;

static void compute_proposals(swarm_policy *p, const swarm_policy_obs *obs, proposals *pr,
                              swarm_policy_decision *d)
{
    int32_t cur = obs->current_replicas;
    memset(pr, 0, sizeof *pr);
    pr->max_valid = -1;
    for (uint32_t i = 0; i < obs->n_metrics; i++) {
        const swarm_policy_metric *m = &obs->metrics[i];
        double v = metric_value(m);
        int32_t rec;
        if (v < 0) {
            pr->any_error = 1;
            if (p->fail[i] < UINT32_MAX)
                p->fail[i]++;
            step(d, SWARM_RULE_METRIC_FAILED, (int32_t)i, cur, cur, p->fail[i]);
            if (p->o.fallback_failures > 0 && p->fail[i] > p->o.fallback_failures) {
                rec = fallback_replicas(p, cur);
                pr->any_fallback = 1;
                step(d, SWARM_RULE_FALLBACK, (int32_t)i, cur, rec, p->fail[i]);
            } else {
                d->metric_raw[i] = -1;
                pr->n_invalid++;
                continue;
            }
        } else {
            p->fail[i] = 0;
            if (v > m->activation)
                pr->any_active = 1;
            double ratio = v / m->target;
            int32_t need = clamp_i32(ceil(ratio));
            if (need > pr->need_total)
                pr->need_total = need;
            if (m->kind == SWARM_METRIC_TOTAL) {
                /* External AverageValue: ratio against the current count only for tolerance. */
                if (cur != 0 && swarm__hpa_within(v / (m->target * (double)cur), p->tol_up,
                                                  p->tol_down)) {
                    rec = cur;
                    if (need != cur)
                        step(d, SWARM_RULE_TOLERANCE, (int32_t)i, need, cur, 0);
                } else {
                    rec = need;
                }
            } else if (cur == 0) {
                rec = need;
            } else if (swarm__hpa_within(ratio, p->tol_up, p->tol_down)) {
                int32_t want = clamp_i32(ceil(ratio * (double)obs->ready_replicas));
                rec = cur;
                if (want != cur)
                    step(d, SWARM_RULE_TOLERANCE, (int32_t)i, want, cur, 0);
            } else if (obs->ready_replicas == 0 && p->ext_pending) {
                /* No ready replica measured anything: the ones starting are pending capacity. */
                rec = cur;
                step(d, SWARM_RULE_PENDING_CAPACITY, (int32_t)i, 0, cur, obs->starting_replicas);
            } else {
                rec = clamp_i32(ceil(ratio * (double)obs->ready_replicas));
            }
        }
        d->metric_raw[i] = rec;
        step(d, SWARM_RULE_RAW, (int32_t)i, cur, rec, 0);
        pr->n_valid++;
        if (rec > pr->max_valid)
            pr->max_valid = rec;
    }
    d->raw = pr->max_valid;
}

/* Records a rescale for the HPA rate limits (upstream storeScaleEvent: only with behavior, on
 * every rescale, including the min/max corrections). A change that a pause direction will block
 * is not a rescale. */
static void store_scale_event(swarm_policy *p, int32_t current, int32_t desired, int64_t now)
{
    if (!p->hpa_behavior || desired == current)
        return;
    if ((p->o.pause & SWARM_POLICY_PAUSED_SCALE_IN) && desired < current)
        return;
    if ((p->o.pause & SWARM_POLICY_PAUSED_SCALE_OUT) && desired > current)
        return;
    if (desired > current)
        swarm__hpa_store_event(p->ev_up, &p->n_up, p->cap, desired - current, now,
                               swarm__hpa_longest_period(&p->up));
    else
        swarm__hpa_store_event(p->ev_down, &p->n_down, p->cap, current - desired, now,
                               swarm__hpa_longest_period(&p->down));
}

/* The HPA controller's reconcile from "current within bounds" on: combine, normalize, record.
 * Returns the desired count. */
/*
 * libswarm's pending-capacity rule: while replicas are still starting (a slow model load), the
 * capacity asked for has not arrived, and the backlog grows because of that alone; scaling up
 * again on it over-provisions (knative#13284). So a scale-up waits until the starting replicas
 * are ready, but for at most pending_hold_ns from the first held decision: a warm-up that hangs
 * must not block scaling for good. Scale-downs and the bounds are unaffected.
 */
static int32_t pending_hold(swarm_policy *p, int64_t now, int32_t starting, int32_t cur,
                            int32_t r, swarm_policy_decision *d)
{
    if (!p->ext_pending || starting <= 0) {
        p->pending_active = 0;
        return r;
    }
    if (r <= cur)
        return r;
    if (!p->pending_active) {
        p->pending_active = 1;
        p->pending_since_ns = now;
    }
    if (p->pending_hold_ns != INT64_MAX &&
        sat_elapsed(now, p->pending_since_ns) >= p->pending_hold_ns)
        return r; /* held long enough: scale as upstream would */
    step(d, SWARM_RULE_PENDING_CAPACITY, -1, r, cur, starting);
    return cur;
}

static int32_t hpa_phase(swarm_policy *p, int64_t now, int32_t cur, int32_t min, int32_t max,
                         int32_t starting, const proposals *pr, swarm_policy_decision *d)
{
    if (cur > max) {
        step(d, SWARM_RULE_MAX, -1, cur, max, max);
        store_scale_event(p, cur, max, now);
        return max;
    }
    if (cur < min) {
        step(d, SWARM_RULE_MIN, -1, cur, min, min);
        store_scale_event(p, cur, min, now);
        return min;
    }
    if (pr->n_valid == 0) {
        step(d, SWARM_RULE_NO_METRICS, -1, cur, cur, pr->n_invalid);
        d->flags |= SWARM_DECISION_HOLD;
        return cur;
    }
    int32_t desired = pr->max_valid;
    if (pr->n_invalid > 0 && desired < cur) {
        step(d, SWARM_RULE_PARTIAL_METRICS, -1, desired, cur, pr->n_invalid);
        return cur;
    }
    int reason = 0;
    if (!p->hpa_behavior) {
        int32_t s = swarm__hpa_stabilize_legacy(p->recs, &p->n_recs, p->cap, desired, now,
                                                p->legacy_window_ns);
        if (s != desired)
            step(d, SWARM_RULE_STABILIZATION, -1, desired, s, p->legacy_window_ns);
        int32_t r = swarm__hpa_legacy_limits(cur, s, min, max, p->legacy_factor,
                                             p->legacy_minimum, &reason);
        if (r != s)
            step(d, reason == SWARM__HPA_TOO_FEW ? SWARM_RULE_MIN
                    : reason == SWARM__HPA_TOO_MANY ? SWARM_RULE_MAX
                                                    : SWARM_RULE_RATE_LIMIT,
                 -1, s, r, reason);
        return pending_hold(p, now, starting, cur, r, d);
    }
    int dir = 0;
    int32_t s = swarm__hpa_stabilize(p->recs, &p->n_recs, p->cap, cur, desired, now,
                                     p->up.window_ns, p->down.window_ns, &dir);
    if (s != desired)
        step(d, SWARM_RULE_STABILIZATION, -1, desired, s, dir);
    int32_t r = swarm__hpa_behavior_rate(cur, s, min, max, p->ev_up, p->n_up, p->ev_down,
                                         p->n_down, &p->up, &p->down, now, &reason);
    if (r != s)
        step(d, reason == SWARM__HPA_TOO_FEW ? SWARM_RULE_MIN
                : reason == SWARM__HPA_TOO_MANY ? SWARM_RULE_MAX
                                                : SWARM_RULE_RATE_LIMIT,
             -1, s, r, reason);
    r = pending_hold(p, now, starting, cur, r, d);
    store_scale_event(p, cur, r, now);
    return r;
}

static int32_t decide_hpa(swarm_policy *p, int64_t now, const swarm_policy_obs *obs,
                          swarm_policy_decision *d)
{
    int32_t cur = obs->current_replicas;
    proposals pr;
    compute_proposals(p, obs, &pr, d);
    if (pr.any_fallback)
        d->flags |= SWARM_DECISION_FALLBACK;
    if (cur == 0 && p->min != 0) {
        if (p->ext_cold_start && pr.n_valid > 0 && pr.max_valid > 0) {
            int32_t r = pr.max_valid < p->min ? p->min : pr.max_valid;
            r = r > p->max ? p->max : r;
            step(d, SWARM_RULE_COLD_START, -1, 0, r, pr.max_valid);
            store_scale_event(p, cur, r, now);
            return r;
        }
        step(d, SWARM_RULE_HPA_DISABLED, -1, 0, 0, 0);
        return 0;
    }
    return hpa_phase(p, now, cur, p->min, p->max, obs->starting_replicas, &pr, d);
}

static int32_t decide_keda(swarm_policy *p, int64_t now, const swarm_policy_obs *obs,
                           swarm_policy_decision *d)
{
    int32_t cur = obs->current_replicas;
    proposals pr;
    compute_proposals(p, obs, &pr, d);
    if (pr.any_fallback)
        d->flags |= SWARM_DECISION_FALLBACK;
    int32_t hpa_min = p->min > 0 ? p->min : 1;

    swarm__keda_in in;
    memset(&in, 0, sizeof in);
    in.min = p->min;
    in.idle = p->o.use_idle ? p->o.idle_replicas : -1;
    in.has_fallback = p->o.fallback_failures > 0;
    in.cooldown_ns = p->cooldown_ns;
    in.initial_cooldown_ns = p->initial_cooldown_ns;
    in.paused_scale_in = (p->o.pause & SWARM_POLICY_PAUSED_SCALE_IN) != 0;
    in.paused_scale_out = (p->o.pause & SWARM_POLICY_PAUSED_SCALE_OUT) != 0;
    in.force_activation = (p->o.pause & SWARM_POLICY_FORCE_ACTIVATION) != 0;
    in.current = cur;
    in.is_active = (uint32_t)pr.any_active;
    /* libswarm: fallback also wakes a target at zero (KEDA's works only through the HPA). */
    if (p->ext_fallback_zero && pr.any_fallback && cur == 0 && pr.max_valid > 0)
        in.is_active = 1;
    in.is_error = (uint32_t)pr.any_error;
    in.has_last_active = p->has_last_active;
    in.last_active_ns = p->last_active_ns;
    in.creation_ns = p->created_ns;
    in.now_ns = now;
    swarm__keda_out ko;
    swarm__keda_request_scale(&in, &ko);
    if (ko.last_active_set) {
        p->has_last_active = 1;
        p->last_active_ns = now;
    }
    if (in.is_active || in.force_activation)
        d->flags |= SWARM_DECISION_ACTIVE;

    if (ko.scaled_from_zero) {
        int32_t r = ko.replicas;
        if (p->ext_cold_start && pr.n_valid > 0) {
            int32_t need = pr.any_fallback ? pr.max_valid : pr.need_total;
            if (need > p->max)
                need = p->max;
            if (need > r) {
                step(d, SWARM_RULE_COLD_START, -1, r, need, pr.need_total);
                r = need;
            }
        } else {
            step(d, SWARM_RULE_COLD_START, -1, cur, r, 0);
        }
        return r;
    }
    if (!in.is_active && !in.force_activation)
        step(d, SWARM_RULE_ACTIVATION, -1, cur, cur, 0);
    if (ko.scaled_to_idle) {
        step(d, SWARM_RULE_IDLE, -1, cur, ko.replicas, in.idle);
        return ko.replicas;
    }
    if (ko.cooling_down)
        step(d, SWARM_RULE_COOLDOWN, -1, cur, cur,
             p->has_last_active ? remaining(p->cooldown_ns, sat_elapsed(now, p->last_active_ns))
                                : 0);
    if (!in.is_active && !in.force_activation && in.is_error && !in.has_fallback) {
        step(d, SWARM_RULE_NO_METRICS, -1, cur, cur, pr.n_invalid);
        d->flags |= SWARM_DECISION_HOLD;
        return cur;
    }
    if (ko.scale_updated) {
        step(d, SWARM_RULE_MIN, -1, cur, ko.replicas, p->min);
        return ko.replicas;
    }
    if (cur == 0)
        return 0; /* KEDA owns zero; its HPA is disabled there */
    if (in.is_active && in.paused_scale_out && in.idle >= 0 && cur < p->min)
        return cur;
    return hpa_phase(p, now, cur, hpa_min, p->max, obs->starting_replicas, &pr, d);
}

/* ---- KPA ---------------------------------------------------------------------------------- */

static void kpa_record(swarm_policy *p, int64_t now, double v)
{
    int64_t idx = now / NS; /* now >= 0 is not required: see floor below */
    if (now < 0 && now % NS != 0)
        idx--;
    kpa_bucket *b = &p->buckets[(uint64_t)idx % p->n_buckets];
    if (b->index != idx || b->n == 0) {
        b->index = idx;
        b->sum = 0;
        b->n = 0;
    }
    b->sum += v;
    b->n++;
    if (!p->kb_has_write) {
        p->kb_has_write = 1;
        p->kb_first_idx = idx;
    }
    p->kb_last_idx = idx;
}

/* Average over the last @w_ns: buckets without samples since the first write count as 0, and a
 * partial window divides by the buckets seen so far (Knative's WindowAverage). */
static double kpa_avg(const swarm_policy *p, int64_t now, int64_t w_ns)
{
    int64_t idx = now / NS;
    if (now < 0 && now % NS != 0)
        idx--;
    int64_t wb = w_ns / NS;
    if (wb < 1)
        wb = 1;
    if (wb > (int64_t)p->n_buckets)
        wb = p->n_buckets;
    if (!p->kb_has_write || idx - p->kb_last_idx >= wb)
        return 0;
    double sum = 0;
    for (int64_t j = idx - wb + 1; j <= idx; j++) {
        const kpa_bucket *b = &p->buckets[(uint64_t)j % p->n_buckets];
        if (b->index == j && b->n > 0)
            sum += b->sum / b->n;
    }
    int64_t seen = idx - p->kb_first_idx + 1;
    int64_t nb = seen < wb ? seen : wb;
    return nb > 0 ? sum / (double)nb : 0;
}

static int32_t decide_kpa(swarm_policy *p, int64_t now, const swarm_policy_obs *obs,
                          swarm_policy_decision *d)
{
    int32_t cur = obs->current_replicas;
    int32_t ready = obs->ready_replicas;
    if (!p->kpa_started) {
        swarm__kpa_init(&p->kst, now, ready);
        p->kpa_started = 1;
        if (p->kst.in_panic)
            step(d, SWARM_RULE_PANIC, -1, cur, cur, 1);
    }
    const swarm_policy_metric *m = &obs->metrics[0];
    double v = metric_value(m);
    if (v < 0) {
        if (p->fail[0] < UINT32_MAX)
            p->fail[0]++;
        step(d, SWARM_RULE_METRIC_FAILED, 0, cur, cur, p->fail[0]);
        d->metric_raw[0] = -1;
        if (p->o.fallback_failures > 0 && p->fail[0] > p->o.fallback_failures &&
            (cur > 0 || p->ext_fallback_zero)) {
            int32_t f = fallback_replicas(p, cur);
            d->flags |= SWARM_DECISION_FALLBACK;
            step(d, SWARM_RULE_FALLBACK, 0, cur, f, p->fail[0]);
            return f;
        }
        /* Upstream: a metric error gives an invalid result, and nothing changes. */
        step(d, SWARM_RULE_NO_METRICS, -1, cur, cur, 1);
        d->flags |= SWARM_DECISION_HOLD;
        return cur;
    }
    p->fail[0] = 0;
    kpa_record(p, now, v);
    double stable = kpa_avg(p, now, p->kpa.stable_window_ns);
    double panic = kpa_avg(p, now, p->panic_window_ns);
    swarm__kpa_spec spec = p->kpa;
    spec.target_value = m->target;
    spec.total_value = p->o.total_value > 0 ? p->o.total_value : m->target / 0.7;
    int32_t capacity = ready;
    if (p->ext_pending && obs->starting_replicas > 0) {
        capacity = ready + obs->starting_replicas;
        if (capacity < ready) /* overflow */
            capacity = INT32_MAX;
        step(d, SWARM_RULE_PENDING_CAPACITY, -1, ready, capacity, obs->starting_replicas);
    }
    uint32_t was_panic = p->kst.in_panic;
    swarm__kpa_result r;
    swarm__kpa_scale(&p->kst, &spec, now, ready, capacity, stable, panic, &p->delay,
                     p->delay_ents, &r);
    d->excess_burst_capacity = r.ebc;
    int32_t raw = clamp_i32(ceil(stable / spec.target_value));
    d->metric_raw[0] = raw;
    d->raw = raw;
    step(d, SWARM_RULE_RAW, 0, cur, raw, 0);
    if (r.stable_pods != raw && !r.activation_applied)
        step(d, SWARM_RULE_RATE_LIMIT, -1, raw, r.stable_pods, 0);
    if (r.activation_applied)
        step(d, SWARM_RULE_ACTIVATION_SCALE, -1, raw, r.stable_pods, spec.activation_scale);
    if (r.panic_entered)
        step(d, SWARM_RULE_PANIC, -1, r.stable_pods, r.delayed_from, 1);
    else if (p->kst.in_panic)
        step(d, SWARM_RULE_PANIC, -1, r.stable_pods, r.delayed_from, 2);
    else if (was_panic)
        step(d, SWARM_RULE_PANIC, -1, r.stable_pods, r.delayed_from, 3);
    if (r.desired != r.delayed_from)
        step(d, SWARM_RULE_SCALE_DOWN_DELAY, -1, r.delayed_from, r.desired,
             p->kpa.scale_down_delay_ns);
    if (p->kst.in_panic)
        d->flags |= SWARM_DECISION_PANIC;
    int32_t want = pending_hold(p, now, obs->starting_replicas, cur, r.desired, d);
    if (want > 0) {
        p->has_nonzero = 1;
        p->last_nonzero_ns = now;
    } else if (cur > 0 && p->min == 0) {
        /* Scale to zero only after desired has been 0 for the grace period (Knative holds at 1
         * for a stable window plus the 30 s grace before the activator takes over). */
        int64_t since = p->has_nonzero ? p->last_nonzero_ns : p->created_ns;
        int64_t el = sat_elapsed(now, since);
        if (el < p->zero_grace_ns) {
            step(d, SWARM_RULE_COOLDOWN, -1, 0, 1, remaining(p->zero_grace_ns, el));
            want = 1;
        }
    }
    return want;
}

/* ---- decide -------------------------------------------------------------------------------- */

static const char *mode_name(uint32_t mode)
{
    return mode == SWARM_POLICY_KEDA  ? "keda"
           : mode == SWARM_POLICY_HPA ? "hpa"
           : mode == SWARM_POLICY_KPA ? "kpa"
                                      : "load";
}

static void format_text(const swarm_policy *p, swarm_policy_decision *d, uint32_t n_metrics)
{
    char *buf = d->text;
    size_t cap = sizeof d->text, len = 0;
    int n = snprintf(buf, cap, "%s %d->%d", mode_name(p->o.mode), d->current, d->replicas);
    len = n > 0 ? (size_t)n : 0;
#define APPEND(...)                                                                          \
    do {                                                                                     \
        if (len < cap) {                                                                     \
            int k_ = snprintf(buf + len, cap - len, __VA_ARGS__);                            \
            if (k_ > 0)                                                                      \
                len += (size_t)k_;                                                           \
        }                                                                                    \
    } while (0)
    APPEND(" raw");
    for (uint32_t i = 0; i < n_metrics; i++) {
        if (d->metric_raw[i] < 0)
            APPEND(" m%u=fail", i);
        else
            APPEND(" m%u=%d", i, d->metric_raw[i]);
    }
    int first = 1;
    for (uint32_t i = 0; i < d->n_steps; i++) {
        const swarm_policy_step *s = &d->steps[i];
        if (s->rule == SWARM_RULE_RAW)
            continue;
        APPEND(first ? " |" : ";");
        first = 0;
        if (s->metric >= 0)
            APPEND(" %s(m%d) %d->%d", swarm_policy_rule_name(s->rule), s->metric, s->before,
                   s->after);
        else
            APPEND(" %s %d->%d", swarm_policy_rule_name(s->rule), s->before, s->after);
        if (s->rule == SWARM_RULE_RATE_LIMIT && p->o.mode != SWARM_POLICY_KPA)
            APPEND(" (%s)", swarm__hpa_reason_name((int)s->value));
    }
    if (d->retire > 0)
        APPEND(" | retire %d (starting %d, idle first)", d->retire, d->retire_starting);
#undef APPEND
    if (len >= cap && cap >= 4)
        memcpy(buf + cap - 4, "...", 4);
}

static int check_obs(const swarm_policy *p, const swarm_policy_obs *obs)
{
    if (obs->size < SWARM_POLICY_OBS_V1_SIZE || obs->current_replicas < 0 || obs->ready_replicas < 0 ||
        obs->starting_replicas < 0 || obs->n_metrics == 0 ||
        obs->n_metrics > SWARM_POLICY_MAX_METRICS ||
        obs->ready_replicas > obs->current_replicas ||
        obs->starting_replicas > obs->current_replicas)
        return SWARM_EINVAL;
    for (uint32_t i = 0; i < obs->n_metrics; i++) {
        const swarm_policy_metric *m = &obs->metrics[i];
        if (m->kind < SWARM_METRIC_TOTAL || m->kind > SWARM_METRIC_VALUE)
            return SWARM_EINVAL;
        if (!isfinite(m->target) || m->target <= 0)
            return SWARM_EINVAL;
        if (isnan(m->activation))
            return SWARM_EINVAL;
    }
    (void)p;
    return 0;
}

int swarm_policy_decide(swarm_policy *p, int64_t now_ns, const swarm_policy_obs *obs,
                        swarm_policy_decision *out)
{
    if (p == NULL || obs == NULL || out == NULL || out->size < sizeof *out)
        return SWARM_EINVAL;
    int rc = check_obs(p, obs);
    if (rc < 0)
        return rc;
    /* Read only obs->size bytes: a 0.1 caller's observation lacks the load signals. */
    swarm_policy_obs full;
    if (obs->size < sizeof full) {
        memset(&full, 0, sizeof full);
        memcpy(&full, obs, obs->size);
        obs = &full;
    }
    swarm_policy_decision *d = out;
    uint32_t size = d->size;
    memset(d, 0, sizeof *d);
    d->size = size;
    d->current = obs->current_replicas;
    d->raw = -1;
    for (uint32_t i = 0; i < SWARM_POLICY_MAX_METRICS; i++)
        d->metric_raw[i] = -1;

    int64_t now = now_ns;
    if (!p->started) {
        p->started = 1;
        p->created_ns = now;
        p->last_now = now;
    } else if (now < p->last_now) {
        step(d, SWARM_RULE_CLOCK_CLAMPED, -1, obs->current_replicas, obs->current_replicas,
             p->last_now - now);
        now = p->last_now;
    }
    p->last_now = now;

    int32_t cur = obs->current_replicas;
    int32_t r;
    if (p->o.pause & SWARM_POLICY_PAUSED) {
        r = p->o.paused_replicas > 0 ? p->o.paused_replicas : cur;
        step(d, SWARM_RULE_PAUSE, -1, cur, r, p->o.paused_replicas);
        d->flags |= SWARM_DECISION_PAUSED;
    } else {
        switch (p->o.mode) {
        case SWARM_POLICY_KEDA: r = decide_keda(p, now, obs, d); break;
        case SWARM_POLICY_HPA: r = decide_hpa(p, now, obs, d); break;
        case SWARM_POLICY_LOAD:
            r = swarm__load_decide(&p->load_cfg, &p->load, &p->delay, p->delay_ents, p->min,
                                   p->max, now, obs, d);
            break;
        default: r = decide_kpa(p, now, obs, d); break;
        }
        int hold = (d->flags & SWARM_DECISION_HOLD) != 0;
        /* Bounds. Zero (and the idle count) are legal results where the mode owns them. */
        int zero_ok = (p->o.mode != SWARM_POLICY_HPA && p->min == 0) ||
                      (p->o.mode == SWARM_POLICY_KEDA && p->o.use_idle) ||
                      (p->o.mode == SWARM_POLICY_HPA && cur == 0 && r == 0);
        int idle_ok = p->o.mode == SWARM_POLICY_KEDA && p->o.use_idle && r == p->o.idle_replicas;
        if (!hold && !idle_ok && !(zero_ok && r == 0)) {
            if (r > p->max) {
                step(d, SWARM_RULE_MAX, -1, r, p->max, p->max);
                r = p->max;
            }
            if (r < p->min) {
                step(d, SWARM_RULE_MIN, -1, r, p->min, p->min);
                r = p->min;
            }
        }
        if ((p->o.pause & SWARM_POLICY_PAUSED_SCALE_IN) && r < cur) {
            step(d, SWARM_RULE_PAUSE, -1, r, cur, SWARM_POLICY_PAUSED_SCALE_IN);
            r = cur;
            d->flags |= SWARM_DECISION_PAUSED;
        }
        if ((p->o.pause & SWARM_POLICY_PAUSED_SCALE_OUT) && r > cur) {
            step(d, SWARM_RULE_PAUSE, -1, r, cur, SWARM_POLICY_PAUSED_SCALE_OUT);
            r = cur;
            d->flags |= SWARM_DECISION_PAUSED;
        }
    }
    d->replicas = r;
    if (r < cur) {
        d->retire = cur - r;
        d->retire_starting = obs->starting_replicas < d->retire ? obs->starting_replicas
                                                                : d->retire;
        d->prefer_idle = 1;
    }
    format_text(p, d, obs->n_metrics);
    return 0;
}

/* ---- state export / import ----------------------------------------------------------------- */

/*
 * Format, version 2, all integers little-endian, doubles as their IEEE-754 bits:
 *   "SWPS" u32 version u32 mode u32 cap u32 n_buckets u32 n_delay
 *   u32 started i64 last_now i64 created
 *   u32 fail[8]
 *   u32 has_last_active i64 last_active
 *   u32 kpa_started u32 in_panic i64 panic_time i32 max_panic_pods
 *   u32 has_nonzero i64 last_nonzero
 *   u32 kb_has_write i64 kb_first_idx i64 kb_last_idx
 *   u32 delay_first u32 delay_length
 *   u32 n_recs u32 n_up u32 n_down
 *   u32 pending_active i64 pending_since            (version 2)
 *   cap x (i32 replicas i64 t)            recommendations
 *   cap x (i32 change u32 outdated i64 t) scale-up events, then scale-down events
 *   n_buckets x (i64 index f64 sum u32 n) KPA buckets
 *   n_delay x (i64 index i32 value)       KPA scale-down delay window
 */
#define HDR_BYTES (4 + 4 * 5)
#define FIXED_BYTES                                                                          \
    (HDR_BYTES + 4 + 8 + 8 + 4 * SWARM_POLICY_MAX_METRICS + 4 + 8 + 4 + 4 + 8 + 4 + 4 + 8 +  \
     4 + 8 + 8 + 4 + 4 + 4 * 3 + 4 + 8)

typedef struct wbuf {
    unsigned char *p;
    size_t off, len;
    int err;
} wbuf;

static void put(wbuf *w, uint64_t v, int n)
{
    if (w->off + (size_t)n > w->len) {
        w->err = 1;
        return;
    }
    for (int i = 0; i < n; i++)
        w->p[w->off++] = (unsigned char)(v >> (8 * i));
}
static void put32(wbuf *w, uint32_t v) { put(w, v, 4); }
static void put64(wbuf *w, int64_t v) { put(w, (uint64_t)v, 8); }
static void putf(wbuf *w, double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    put(w, u, 8);
}

static uint64_t get(wbuf *r, int n)
{
    if (r->off + (size_t)n > r->len) {
        r->err = 1;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)r->p[r->off++] << (8 * i);
    return v;
}
static uint32_t get32(wbuf *r) { return (uint32_t)get(r, 4); }
static int64_t get64(wbuf *r) { return (int64_t)get(r, 8); }
static double getf(wbuf *r)
{
    uint64_t u = get(r, 8);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

size_t swarm_policy_state_size(const swarm_policy *p)
{
    if (p == NULL)
        return 0;
    return FIXED_BYTES + (size_t)p->cap * (12 + 16 + 16) + (size_t)p->n_buckets * 20 +
           (size_t)p->n_delay * 12;
}

int swarm_policy_export_state(const swarm_policy *p, void *buf, size_t len, size_t *written)
{
    if (p == NULL || buf == NULL)
        return SWARM_EINVAL;
    if (len < swarm_policy_state_size(p))
        return SWARM_ERANGE;
    wbuf w = {buf, 0, len, 0};
    memcpy(w.p, "SWPS", 4);
    w.off = 4;
    put32(&w, SWARM_POLICY_STATE_VERSION);
    put32(&w, p->o.mode);
    put32(&w, p->cap);
    put32(&w, p->n_buckets);
    put32(&w, p->n_delay);
    put32(&w, p->started);
    put64(&w, p->last_now);
    put64(&w, p->created_ns);
    for (int i = 0; i < SWARM_POLICY_MAX_METRICS; i++)
        put32(&w, p->fail[i]);
    put32(&w, p->has_last_active);
    put64(&w, p->last_active_ns);
    put32(&w, p->kpa_started);
    put32(&w, p->kst.in_panic);
    put64(&w, p->kst.panic_time_ns);
    put32(&w, (uint32_t)p->kst.max_panic_pods);
    put32(&w, p->has_nonzero);
    put64(&w, p->last_nonzero_ns);
    put32(&w, p->kb_has_write);
    put64(&w, p->kb_first_idx);
    put64(&w, p->kb_last_idx);
    put32(&w, p->delay.first);
    put32(&w, p->delay.length);
    put32(&w, p->n_recs);
    put32(&w, p->n_up);
    put32(&w, p->n_down);
    put32(&w, p->pending_active);
    put64(&w, p->pending_since_ns);
    for (uint32_t i = 0; i < p->cap; i++) {
        put32(&w, (uint32_t)p->recs[i].replicas);
        put64(&w, p->recs[i].t_ns);
    }
    const swarm__hpa_event *lists[2] = {p->ev_up, p->ev_down};
    for (int l = 0; l < 2; l++)
        for (uint32_t i = 0; i < p->cap; i++) {
            put32(&w, (uint32_t)lists[l][i].change);
            put32(&w, (uint32_t)lists[l][i].outdated);
            put64(&w, lists[l][i].t_ns);
        }
    for (uint32_t i = 0; i < p->n_buckets; i++) {
        put64(&w, p->buckets[i].index);
        putf(&w, p->buckets[i].sum);
        put32(&w, p->buckets[i].n);
    }
    for (uint32_t i = 0; i < p->n_delay; i++) {
        put64(&w, p->delay_ents[i].index);
        put32(&w, (uint32_t)p->delay_ents[i].value);
    }
    if (w.err)
        return SWARM_EINTERNAL;
    if (written != NULL)
        *written = w.off;
    return 0;
}

int swarm_policy_import_state(swarm_policy *p, const void *buf, size_t len)
{
    if (p == NULL || buf == NULL || len < HDR_BYTES)
        return SWARM_EINVAL;
    wbuf r = {(unsigned char *)(uintptr_t)buf, 0, len, 0};
    if (memcmp(r.p, "SWPS", 4) != 0)
        return SWARM_EINVAL;
    r.off = 4;
    if (get32(&r) != SWARM_POLICY_STATE_VERSION)
        return SWARM_ENOTSUP;
    uint32_t mode = get32(&r), cap = get32(&r), nb = get32(&r), nd = get32(&r);
    if (mode != p->o.mode || cap != p->cap || nb != p->n_buckets || nd != p->n_delay)
        return SWARM_ESTATE;
    if (len < swarm_policy_state_size(p))
        return SWARM_EINVAL;
    /* Decode into a scratch copy of the scalar state first, validate, then commit. */
    swarm_policy s = *p;
    s.started = get32(&r) != 0;
    s.last_now = get64(&r);
    s.created_ns = get64(&r);
    for (int i = 0; i < SWARM_POLICY_MAX_METRICS; i++)
        s.fail[i] = get32(&r);
    s.has_last_active = get32(&r) != 0;
    s.last_active_ns = get64(&r);
    s.kpa_started = get32(&r) != 0;
    s.kst.in_panic = get32(&r) != 0;
    s.kst.panic_time_ns = get64(&r);
    s.kst.max_panic_pods = (int32_t)get32(&r);
    s.has_nonzero = get32(&r) != 0;
    s.last_nonzero_ns = get64(&r);
    s.kb_has_write = get32(&r) != 0;
    s.kb_first_idx = get64(&r);
    s.kb_last_idx = get64(&r);
    s.delay.first = get32(&r);
    s.delay.length = get32(&r);
    s.n_recs = get32(&r);
    s.n_up = get32(&r);
    s.n_down = get32(&r);
    s.pending_active = get32(&r) != 0;
    s.pending_since_ns = get64(&r);
    if (r.err || s.n_recs > cap || s.n_up > cap || s.n_down > cap ||
        (nd == 0 ? (s.delay.first | s.delay.length) != 0
                 : (s.delay.first >= nd || s.delay.length > nd)))
        return SWARM_EINVAL;
    const int64_t lim = INT64_MAX / NS;
    if (s.kb_first_idx > lim || s.kb_first_idx < -lim || s.kb_last_idx > lim ||
        s.kb_last_idx < -lim || s.kb_first_idx > s.kb_last_idx)
        return SWARM_EINVAL;
    size_t rings = r.off;
    /* Validate the rings' contents before touching the policy. */
    for (uint32_t i = 0; i < nb; i++) {
        wbuf t = {r.p, rings + (size_t)cap * 44 + (size_t)i * 20, len, 0};
        int64_t bi = get64(&t);
        double sum = getf(&t);
        if (bi > lim || bi < -lim || !isfinite(sum))
            return SWARM_EINVAL;
    }
    for (uint32_t i = 0; i < nd; i++) {
        wbuf t = {r.p, rings + (size_t)cap * 44 + (size_t)nb * 20 + (size_t)i * 12, len, 0};
        int64_t di = get64(&t);
        if (di > lim || di < -lim)
            return SWARM_EINVAL;
    }
    for (uint32_t i = 0; i < cap; i++) {
        s.recs[i].replicas = (int32_t)get32(&r);
        s.recs[i].pad_ = 0;
        s.recs[i].t_ns = get64(&r);
    }
    swarm__hpa_event *lists[2] = {s.ev_up, s.ev_down};
    for (int l = 0; l < 2; l++)
        for (uint32_t i = 0; i < cap; i++) {
            lists[l][i].change = (int32_t)get32(&r);
            lists[l][i].outdated = get32(&r) != 0;
            lists[l][i].t_ns = get64(&r);
        }
    for (uint32_t i = 0; i < nb; i++) {
        s.buckets[i].index = get64(&r);
        s.buckets[i].sum = getf(&r);
        s.buckets[i].n = get32(&r);
        s.buckets[i].pad_ = 0;
    }
    for (uint32_t i = 0; i < nd; i++) {
        s.delay_ents[i].index = get64(&r);
        s.delay_ents[i].value = (int32_t)get32(&r);
        s.delay_ents[i].pad_ = 0;
    }
    if (r.err)
        return SWARM_EINTERNAL; /* sizes were checked above */
    *p = s;
    return 0;
}
