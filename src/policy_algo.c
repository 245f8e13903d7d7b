/* SPDX-License-Identifier: MIT */
/*
 * The upstream algorithms behind the scaling policy, transcribed as pure functions (see
 * policy_internal.h). Integer behaviour follows Go: int32(float) truncates toward zero, and
 * every float -> int conversion here is clamped first so that C never meets an out-of-range
 * conversion (undefined behaviour where Go would wrap).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "policy_internal.h"

/* Go's int32(f) for the values upstream produces, clamped instead of wrapping; NaN gives 0. */
static int32_t f2i32(double f)
{
    if (!(f == f))
        return 0;
    if (f >= 2147483647.0)
        return INT32_MAX;
    if (f <= -2147483648.0)
        return INT32_MIN;
    return (int32_t)f;
}

static int64_t f2i64(double f)
{
    if (!(f == f))
        return 0;
    if (f >= 9223372036854775807.0)
        return INT64_MAX;
    if (f <= -9223372036854775808.0)
        return INT64_MIN;
    return (int64_t)f;
}

static int32_t min32(int32_t a, int32_t b) { return a < b ? a : b; }
static int32_t max32(int32_t a, int32_t b) { return a > b ? a : b; }

/* a +/- b on int32 without overflow (saturating); Go would wrap, but no upstream test relies on
 * wrapping and saturation keeps the result meaningful. */
static int32_t sat_add32(int32_t a, int64_t b)
{
    int64_t r = (int64_t)a + b;
    if (r > INT32_MAX)
        return INT32_MAX;
    if (r < INT32_MIN)
        return INT32_MIN;
    return (int32_t)r;
}

const char *swarm__hpa_reason_name(int reason)
{
    switch (reason) {
    case SWARM__HPA_WITHIN: return "DesiredWithinRange";
    case SWARM__HPA_SCALE_UP_LIMIT: return "ScaleUpLimit";
    case SWARM__HPA_SCALE_DOWN_LIMIT: return "ScaleDownLimit";
    case SWARM__HPA_TOO_MANY: return "TooManyReplicas";
    case SWARM__HPA_TOO_FEW: return "TooFewReplicas";
    default: return "Unknown";
    }
}

int swarm__hpa_within(double ratio, double tol_up, double tol_down)
{
    return (1.0 - tol_down) <= ratio && ratio <= (1.0 + tol_up);
}

/* ---- rules and defaults ------------------------------------------------------------------- */

void swarm__hpa_rules_default(swarm__hpa_rules *out, const swarm_policy_hpa_rules *in, int up)
{
    memset(out, 0, sizeof *out);
    if (in->window_ns > 0)
        out->window_ns = in->window_ns;
    else if (in->window_ns < 0)
        out->window_ns = 0;
    else
        out->window_ns = up ? 0 : 300 * SWARM__NS_PER_S;
    out->select = in->select == SWARM_POLICY_SELECT_DEFAULT ? SWARM_POLICY_SELECT_MAX : in->select;
    if (in->n_policies > 0) {
        out->n_policies = in->n_policies > SWARM_POLICY_MAX_RATES ? SWARM_POLICY_MAX_RATES
                                                                   : in->n_policies;
        memcpy(out->policies, in->policies, out->n_policies * sizeof out->policies[0]);
    } else if (up) {
        out->n_policies = 2;
        out->policies[0] = (swarm_policy_rate){SWARM_RATE_PODS, 4, 15 * SWARM__NS_PER_S};
        out->policies[1] = (swarm_policy_rate){SWARM_RATE_PERCENT, 100, 15 * SWARM__NS_PER_S};
    } else {
        out->n_policies = 1;
        out->policies[0] = (swarm_policy_rate){SWARM_RATE_PERCENT, 100, 15 * SWARM__NS_PER_S};
    }
}

/* ---- legacy path -------------------------------------------------------------------------- */

int32_t swarm__hpa_legacy_limits(int32_t current, int32_t desired, int32_t min, int32_t max,
                                 double factor, double minimum, int *reason)
{
    double lim = factor * (double)current;
    int32_t scale_up_limit = f2i32(lim > minimum ? lim : minimum);
    int32_t max_allowed;
    int why;
    if (max > scale_up_limit) {
        max_allowed = scale_up_limit;
        why = SWARM__HPA_SCALE_UP_LIMIT;
    } else {
        max_allowed = max;
        why = SWARM__HPA_TOO_MANY;
    }
    if (desired < min) {
        *reason = SWARM__HPA_TOO_FEW;
        return min;
    }
    if (desired > max_allowed) {
        *reason = why;
        return max_allowed;
    }
    *reason = SWARM__HPA_WITHIN;
    return desired;
}

/* Index of the entry with the smallest timestamp (first on ties). */
static uint32_t oldest_rec(const swarm__hpa_rec *recs, uint32_t n)
{
    uint32_t o = 0;
    for (uint32_t i = 1; i < n; i++)
        if (recs[i].t_ns < recs[o].t_ns)
            o = i;
    return o;
}

static void store_rec(swarm__hpa_rec *recs, uint32_t *n, uint32_t cap, int found, uint32_t idx,
                      int32_t desired, int64_t now_ns)
{
    if (!found) {
        if (*n < cap) {
            idx = (*n)++;
        } else if (cap > 0) {
            idx = oldest_rec(recs, *n);
        } else {
            return;
        }
    }
    recs[idx].replicas = desired;
    recs[idx].low = desired;
    recs[idx].t_ns = now_ns;
}

/* t is inside the window W ending at now iff t > now - W (strictly: the boundary is outside).
 * Written as now - t < W to stay clear of overflow for far-past times. */
static int inside(int64_t t, int64_t now, int64_t w)
{
    if (t >= now)
        return w > 0 || t > now; /* recorded at now: inside any positive window */
    uint64_t age = (uint64_t)now - (uint64_t)t;
    return w > 0 && age < (uint64_t)w;
}

int32_t swarm__hpa_stabilize_legacy(swarm__hpa_rec *recs, uint32_t *n, uint32_t cap,
                                    int32_t desired, int64_t now_ns, int64_t window_ns)
{
    int32_t best = desired;
    int found = 0;
    uint32_t idx = 0;
    for (uint32_t i = 0; i < *n; i++) {
        if (!inside(recs[i].t_ns, now_ns, window_ns)) {
            found = 1;
            idx = i;
        } else if (recs[i].replicas > best) {
            best = recs[i].replicas;
        }
    }
    store_rec(recs, n, cap, found, idx, desired, now_ns);
    return best;
}

int32_t swarm__hpa_stabilize(swarm__hpa_rec *recs, uint32_t *n, uint32_t cap, int32_t current,
                             int32_t desired, int64_t now_ns, int64_t up_window_ns,
                             int64_t down_window_ns, int *stabilized_dir)
{
    int32_t up_rec = desired, down_rec = desired;
    int found = 0;
    uint32_t idx = 0;
    for (uint32_t i = 0; i < *n; i++) {
        int in_up = inside(recs[i].t_ns, now_ns, up_window_ns);
        int in_down = inside(recs[i].t_ns, now_ns, down_window_ns);
        if (in_up)
            up_rec = min32(recs[i].low, up_rec);
        if (in_down)
            down_rec = max32(recs[i].replicas, down_rec);
        if (!in_up && !in_down) {
            found = 1;
            idx = i;
        }
    }
    int32_t r = current;
    if (r < up_rec)
        r = up_rec;
    if (r > down_rec)
        r = down_rec;
    store_rec(recs, n, cap, found, idx, desired, now_ns);
    *stabilized_dir = r < desired ? 1 : (r > desired ? -1 : 0);
    return r;
}

/* ---- behavior rate limits ----------------------------------------------------------------- */

int32_t swarm__hpa_change_in_period(const swarm__hpa_event *ev, uint32_t n, int64_t now_ns,
                                    int64_t period_ns)
{
    int64_t sum = 0;
    for (uint32_t i = 0; i < n; i++)
        if (inside(ev[i].t_ns, now_ns, period_ns))
            sum += ev[i].change;
    return sum > INT32_MAX ? INT32_MAX : (int32_t)sum;
}

static int32_t period_start(int32_t current, const swarm__hpa_event *up, uint32_t n_up,
                            const swarm__hpa_event *down, uint32_t n_down, int64_t now_ns,
                            int64_t period_ns)
{
    int64_t added = swarm__hpa_change_in_period(up, n_up, now_ns, period_ns);
    int64_t removed = swarm__hpa_change_in_period(down, n_down, now_ns, period_ns);
    return sat_add32(current, removed - added);
}

int32_t swarm__hpa_scale_up_limit(int32_t current, const swarm__hpa_event *up, uint32_t n_up,
                                  const swarm__hpa_event *down, uint32_t n_down,
                                  const swarm__hpa_rules *rules, int64_t now_ns)
{
    if (rules->select == SWARM_POLICY_SELECT_DISABLED)
        return current;
    int use_min = rules->select == SWARM_POLICY_SELECT_MIN;
    int32_t result = use_min ? INT32_MAX : INT32_MIN;
    for (uint32_t i = 0; i < rules->n_policies; i++) {
        const swarm_policy_rate *pol = &rules->policies[i];
        int32_t start = period_start(current, up, n_up, down, n_down, now_ns, pol->period_ns);
        int32_t proposed;
        if (pol->type == SWARM_RATE_PODS)
            proposed = sat_add32(start, pol->value);
        else
            proposed = f2i32(ceil((double)start * (1.0 + (double)pol->value / 100.0)));
        result = use_min ? min32(result, proposed) : max32(result, proposed);
    }
    return result;
}

int32_t swarm__hpa_scale_down_limit(int32_t current, const swarm__hpa_event *up, uint32_t n_up,
                                    const swarm__hpa_event *down, uint32_t n_down,
                                    const swarm__hpa_rules *rules, int64_t now_ns)
{
    if (rules->select == SWARM_POLICY_SELECT_DISABLED)
        return current;
    int use_min = rules->select == SWARM_POLICY_SELECT_MIN;
    int32_t result = use_min ? INT32_MIN : INT32_MAX;
    for (uint32_t i = 0; i < rules->n_policies; i++) {
        const swarm_policy_rate *pol = &rules->policies[i];
        int32_t start = period_start(current, up, n_up, down, n_down, now_ns, pol->period_ns);
        int32_t proposed;
        if (pol->type == SWARM_RATE_PODS)
            proposed = sat_add32(start, -(int64_t)pol->value);
        else
            proposed = f2i32((double)start * (1.0 - (double)pol->value / 100.0));
        result = use_min ? max32(result, proposed) : min32(result, proposed);
    }
    return result;
}

int32_t swarm__hpa_behavior_rate(int32_t current, int32_t desired, int32_t min, int32_t max,
                                 const swarm__hpa_event *up, uint32_t n_up,
                                 const swarm__hpa_event *down, uint32_t n_down,
                                 const swarm__hpa_rules *up_rules,
                                 const swarm__hpa_rules *down_rules, int64_t now_ns,
                                 int *reason)
{
    if (desired > current) {
        int32_t limit =
            swarm__hpa_scale_up_limit(current, up, n_up, down, n_down, up_rules, now_ns);
        if (limit < current)
            limit = current;
        int32_t allowed = max;
        int why = SWARM__HPA_TOO_MANY;
        if (allowed > limit) {
            allowed = limit;
            why = SWARM__HPA_SCALE_UP_LIMIT;
        }
        if (desired > allowed) {
            *reason = why;
            return allowed;
        }
    } else if (desired < current) {
        int32_t limit =
            swarm__hpa_scale_down_limit(current, up, n_up, down, n_down, down_rules, now_ns);
        if (limit > current)
            limit = current;
        int32_t allowed = min;
        int why = SWARM__HPA_TOO_FEW;
        if (allowed < limit) {
            allowed = limit;
            why = SWARM__HPA_SCALE_DOWN_LIMIT;
        }
        if (desired < allowed) {
            *reason = why;
            return allowed;
        }
    }
    *reason = SWARM__HPA_WITHIN;
    return desired;
}

int64_t swarm__hpa_longest_period(const swarm__hpa_rules *rules)
{
    int64_t p = 0;
    for (uint32_t i = 0; i < rules->n_policies; i++)
        if (rules->policies[i].period_ns > p)
            p = rules->policies[i].period_ns;
    return p;
}

void swarm__hpa_store_event(swarm__hpa_event *ev, uint32_t *n, uint32_t cap, int32_t change,
                            int64_t now_ns, int64_t longest_period_ns)
{
    int found = 0;
    uint32_t idx = 0;
    for (uint32_t i = 0; i < *n; i++) {
        if (!inside(ev[i].t_ns, now_ns, longest_period_ns))
            ev[i].outdated = 1;
        if (ev[i].outdated) {
            found = 1;
            idx = i;
        }
    }
    if (!found) {
        if (*n < cap) {
            idx = (*n)++;
        } else if (cap > 0) {
            idx = 0;
            for (uint32_t i = 1; i < *n; i++)
                if (ev[i].t_ns < ev[idx].t_ns)
                    idx = i;
        } else {
            return;
        }
    }
    ev[idx] = (swarm__hpa_event){change, 0, now_ns};
}

/* ---- replica calculator ------------------------------------------------------------------- */

int swarm__hpa_group_pod(const swarm__hpa_pod *pod, int cpu, int64_t now_ns,
                         int64_t cpu_init_ns, int64_t delay_ready_ns)
{
    if (pod->deleted || pod->phase == SWARM__POD_FAILED)
        return SWARM__GROUP_IGNORED;
    if (pod->phase == SWARM__POD_PENDING)
        return SWARM__GROUP_UNREADY;
    if (!pod->has_sample)
        return SWARM__GROUP_MISSING;
    if (cpu) {
        if (pod->ready_cond == SWARM__COND_NONE || !pod->has_start)
            return SWARM__GROUP_UNREADY;
        int unready;
        /* Times may be Go's zero time (about -6e19 ns); saturating arithmetic keeps it finite. */
        int64_t start_plus = pod->start_ns > INT64_MAX - cpu_init_ns ? INT64_MAX
                                                                      : pod->start_ns + cpu_init_ns;
        if (start_plus > now_ns) {
            int64_t ltt_plus = pod->ready_ltt_ns > INT64_MAX - pod->sample_window_ns
                                   ? INT64_MAX
                                   : pod->ready_ltt_ns + pod->sample_window_ns;
            unready = pod->ready_cond == SWARM__COND_FALSE || pod->sample_ts_ns < ltt_plus;
        } else {
            int64_t s = pod->start_ns > INT64_MAX - delay_ready_ns ? INT64_MAX
                                                                   : pod->start_ns + delay_ready_ns;
            unready = pod->ready_cond == SWARM__COND_FALSE && s > pod->ready_ltt_ns;
        }
        if (unready)
            return SWARM__GROUP_UNREADY;
    }
    return SWARM__GROUP_READY;
}

/* Overflow-safe sum that saturates at INT64_MAX / INT64_MIN (upstream's external-metric sum). */
static int64_t sat_add64(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

/* The amended sample set of the plain / resource calculation. */
typedef struct calc_set {
    int64_t total;     /* sum of samples (saturating) */
    int64_t req_total; /* resource: sum of requests of samples that have one */
    int64_t count;     /* number of samples */
    int64_t req_count; /* resource: samples with a request */
} calc_set;

/* usage ratio for the current set; resource: utilization via requests. */
static int set_ratio(const swarm__hpa_calc_in *in, const calc_set *s, double *ratio,
                     int64_t *usage, int32_t *util, swarm__hpa_calc_out *out)
{
    if (in->kind == SWARM__CALC_RESOURCE) {
        if (s->req_total == 0) {
            snprintf(out->error, sizeof out->error, "no metrics returned matched known pods");
            return SWARM_EINVAL;
        }
        /* metricsTotal*100 in int64, as upstream; saturate instead of wrapping. */
        int64_t t100 = s->total > INT64_MAX / 100 ? INT64_MAX : s->total * 100;
        int64_t u = t100 / s->req_total;
        *util = u > INT32_MAX ? INT32_MAX : (int32_t)u;
        *usage = s->req_count ? s->total / s->req_count : 0;
        *ratio = (double)*util / (double)in->target_utilization;
        return 0;
    }
    *usage = s->count ? s->total / s->count : 0;
    *ratio = (double)*usage / (double)in->target_milli;
    return 0;
}

static int calc_pods(const swarm__hpa_calc_in *in, swarm__hpa_calc_out *out)
{
    int resource = in->kind == SWARM__CALC_RESOURCE;
    if (in->n_pods == 0) {
        snprintf(out->error, sizeof out->error,
                 "no pods returned by selector while calculating replica count");
        return SWARM_EINVAL;
    }
    if (resource) {
        for (uint32_t i = 0; i < in->n_pods; i++) {
            if (!in->pods[i].has_request) {
                snprintf(out->error, sizeof out->error,
                         "missing request for cpu in container %s of Pod %s",
                         in->pods[i].missing_request_container ? in->pods[i].missing_request_container
                                                               : "",
                         in->pods[i].name ? in->pods[i].name : "");
                return SWARM_EINVAL;
            }
        }
    }
    int cpu = (int)in->cpu;
    int64_t ready = 0, n_unready = 0, n_missing = 0;
    calc_set s = {0, 0, 0, 0};
    for (uint32_t i = 0; i < in->n_pods; i++) {
        const swarm__hpa_pod *p = &in->pods[i];
        int g = swarm__hpa_group_pod(p, cpu, in->now_ns, in->cpu_init_ns, in->delay_ready_ns);
        if (g == SWARM__GROUP_READY) {
            ready++;
            s.total = sat_add64(s.total, p->sample_milli);
            s.count++;
            s.req_total = sat_add64(s.req_total, p->request_milli);
            s.req_count++;
        } else if (g == SWARM__GROUP_UNREADY) {
            n_unready++;
        } else if (g == SWARM__GROUP_MISSING) {
            n_missing++;
        }
    }
    /* Samples for pods the lister does not know stay in the set (no request for resource). */
    for (uint32_t i = 0; i < in->n_extra; i++) {
        s.total = resource ? s.total : sat_add64(s.total, in->extra_samples[i]);
        s.count++;
    }
    if (s.count == 0) {
        snprintf(out->error, sizeof out->error,
                 "did not receive metrics for targeted pods (pods might be unready)");
        return SWARM_EINVAL;
    }
    double ratio;
    int64_t usage;
    int32_t util = 0;
    int rc = set_ratio(in, &s, &ratio, &usage, &util, out);
    if (rc < 0)
        return rc;
    out->usage_milli = usage;
    out->utilization = util;

    int scale_up_unready = n_unready > 0 && ratio > 1.0;
    if (!scale_up_unready && n_missing == 0) {
        if (swarm__hpa_within(ratio, in->tol_up, in->tol_down))
            out->replicas = in->current;
        else
            out->replicas = f2i32(ceil(ratio * (double)ready));
        return 0;
    }
    /* Amend the set: missing pods count as the target on a scale-down and 0 on a scale-up;
     * unready pods count as 0 when scaling up. */
    for (uint32_t i = 0; i < in->n_pods; i++) {
        const swarm__hpa_pod *p = &in->pods[i];
        int g = swarm__hpa_group_pod(p, cpu, in->now_ns, in->cpu_init_ns, in->delay_ready_ns);
        if (g == SWARM__GROUP_MISSING) {
            /* At exactly 1.0 upstream adds nothing for missing pods. */
            if (ratio == 1.0)
                continue;
            int64_t v = 0;
            if (ratio < 1.0) {
                if (resource) {
                    int64_t pct = in->target_utilization > 100 ? in->target_utilization : 100;
                    v = p->request_milli * pct / 100;
                } else {
                    v = in->target_milli;
                }
            }
            s.total = sat_add64(s.total, v);
            s.count++;
            s.req_total = sat_add64(s.req_total, p->request_milli);
            s.req_count++;
        } else if (g == SWARM__GROUP_UNREADY && scale_up_unready) {
            s.count++;
            s.req_total = sat_add64(s.req_total, p->request_milli);
            s.req_count++;
        }
    }
    double new_ratio;
    int64_t u2;
    int32_t util2 = 0;
    rc = set_ratio(in, &s, &new_ratio, &u2, &util2, out);
    if (rc < 0)
        return rc;
    if (swarm__hpa_within(new_ratio, in->tol_up, in->tol_down) ||
        (ratio > 1.0 && new_ratio < 1.0) || (ratio < 1.0 && new_ratio > 1.0)) {
        out->replicas = in->current;
        return 0;
    }
    int32_t nr = f2i32(ceil(new_ratio * (double)s.count));
    if ((new_ratio < 1.0 && nr > in->current) || (new_ratio > 1.0 && nr < in->current))
        out->replicas = in->current;
    else
        out->replicas = nr;
    return 0;
}

static int calc_value(const swarm__hpa_calc_in *in, swarm__hpa_calc_out *out)
{
    int64_t usage = 0;
    for (uint32_t i = 0; i < in->n_values; i++)
        usage = sat_add64(usage, in->values_milli[i]);
    out->usage_milli = usage;
    double ratio = (double)usage / (double)in->target_milli;
    if (in->kind == SWARM__CALC_OBJECT_VALUE || in->kind == SWARM__CALC_EXTERNAL_VALUE) {
        if (in->current != 0) {
            if (swarm__hpa_within(ratio, in->tol_up, in->tol_down)) {
                out->replicas = in->current;
                return 0;
            }
            if (in->n_pods == 0) {
                snprintf(out->error, sizeof out->error,
                         "unable to calculate ready pods: no pods returned by selector while "
                         "calculating replica count");
                return SWARM_EINVAL;
            }
            int64_t ready = 0;
            for (uint32_t i = 0; i < in->n_pods; i++)
                if (in->pods[i].phase == SWARM__POD_RUNNING &&
                    in->pods[i].ready_cond == SWARM__COND_TRUE)
                    ready++;
            out->replicas = f2i32(ceil(ratio * (double)ready));
        } else {
            out->replicas = f2i32(ceil(ratio));
        }
        return 0;
    }
    /* AverageValue per pod: current is the status replica count. */
    int32_t replicas = in->current;
    double r = (double)usage / ((double)in->target_milli * (double)replicas);
    if (!swarm__hpa_within(r, in->tol_up, in->tol_down))
        replicas = f2i32(ceil((double)usage / (double)in->target_milli));
    out->replicas = replicas;
    if (usage == INT64_MAX)
        out->usage_milli = INT64_MAX;
    else
        out->usage_milli = f2i64(ceil((double)usage / (double)in->current));
    return 0;
}

int swarm__hpa_replica_calc(const swarm__hpa_calc_in *in, swarm__hpa_calc_out *out)
{
    memset(out, 0, sizeof *out);
    switch (in->kind) {
    case SWARM__CALC_PODS:
        if (in->target_milli == 0)
            break;
        return calc_pods(in, out);
    case SWARM__CALC_RESOURCE:
        if (in->target_utilization <= 0)
            break;
        return calc_pods(in, out);
    case SWARM__CALC_OBJECT_VALUE:
    case SWARM__CALC_EXTERNAL_VALUE:
    case SWARM__CALC_OBJECT_AVERAGE:
    case SWARM__CALC_EXTERNAL_AVERAGE:
        if (in->target_milli == 0)
            break;
        return calc_value(in, out);
    default:
        break;
    }
    snprintf(out->error, sizeof out->error, "invalid metric or zero target");
    return SWARM_EINVAL;
}

/* ---- KPA -------------------------------------------------------------------------------- */

/* Go's integer division truncates toward zero; the bucket index of Knative's max.TimeWindow is
 * Unix(now)/granularity. libswarm's clock is arbitrary, so the policy uses floor division, which
 * equals truncation for non-negative times. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

void swarm__kpa_maxwin_record(swarm__kpa_maxwin *w, swarm__kpa_maxent *ents, int64_t now_ns,
                              int32_t value)
{
    if (w->n_buckets == 0)
        return;
    int64_t index = floor_div(now_ns, w->gran_ns);
    uint32_t cap = w->n_buckets;
    /* Drop every entry that is <= value: it can never be the maximum again. */
    while (w->length > 0 && ents[(w->first + w->length - 1) % cap].value <= value)
        w->length--;
    /* Drop entries that fell out of the window. */
    while (w->length > 0 && ents[w->first].index <= index - (int64_t)cap) {
        w->first = (w->first + 1) % cap;
        w->length--;
    }
    /* Several records in one bucket keep the largest (Knative's step 2b). */
    if (w->length > 0) {
        swarm__kpa_maxent *last = &ents[(w->first + w->length - 1) % cap];
        if (last->index == index) {
            if (last->value > value)
                value = last->value;
            w->length--;
        }
    }
    if (w->length == cap) { /* cannot happen with monotonic indices; keep it memory-safe */
        w->first = (w->first + 1) % cap;
        w->length--;
    }
    ents[(w->first + w->length) % cap] = (swarm__kpa_maxent){index, value, 0};
    w->length++;
}

int32_t swarm__kpa_maxwin_current(const swarm__kpa_maxwin *w, const swarm__kpa_maxent *ents)
{
    if (w->n_buckets == 0 || w->length == 0)
        return 0;
    return ents[w->first].value;
}

void swarm__kpa_init(swarm__kpa_state *st, int64_t now_ns, int32_t ready_pods)
{
    memset(st, 0, sizeof *st);
    if (ready_pods > 1) {
        st->in_panic = 1;
        st->panic_time_ns = now_ns;
    }
    st->max_panic_pods = ready_pods > 0 ? ready_pods : 0;
}

void swarm__kpa_scale(swarm__kpa_state *st, const swarm__kpa_spec *spec, int64_t now_ns,
                      int32_t ready_pods, int32_t capacity_pods, double stable, double panic,
                      swarm__kpa_maxwin *delay, swarm__kpa_maxent *delay_ents,
                      swarm__kpa_result *out)
{
    memset(out, 0, sizeof *out);
    double ready = capacity_pods > 1 ? (double)capacity_pods : 1.0;
    double max_up = ceil(spec->max_scale_up_rate * ready);
    double max_down = spec->reachable ? floor(ready / spec->max_scale_down_rate) : 0.0;
    double dspc = ceil(stable / spec->target_value);
    double dppc = ceil(panic / spec->target_value);
    int32_t stable_pods = f2i32(fmin(fmax(dspc, max_down), max_up));
    int32_t panic_pods = f2i32(fmin(fmax(dppc, max_down), max_up));
    out->dspc_clamped_from = f2i32(dspc);
    if (spec->activation_scale > 1) {
        if (dspc > 0 && spec->activation_scale > stable_pods) {
            stable_pods = spec->activation_scale;
            out->activation_applied = 1;
        }
        if (dppc > 0 && spec->activation_scale > panic_pods) {
            panic_pods = spec->activation_scale;
            out->activation_applied = 1;
        }
    }
    out->stable_pods = stable_pods;
    out->panic_pods = panic_pods;
    int over = dppc / ready >= spec->panic_threshold;
    if (!st->in_panic && over) {
        st->in_panic = 1;
        st->panic_time_ns = now_ns;
        out->panic_entered = 1;
    } else if (over) {
        st->panic_time_ns = now_ns;
    } else if (st->in_panic && !over) {
        /* panicTime + stableWindow strictly before now */
        int64_t end = st->panic_time_ns > INT64_MAX - spec->stable_window_ns
                          ? INT64_MAX
                          : st->panic_time_ns + spec->stable_window_ns;
        if (end < now_ns) {
            st->in_panic = 0;
            st->panic_time_ns = 0;
            st->max_panic_pods = 0;
            out->panic_exited = 1;
        }
    }
    int32_t desired = stable_pods;
    if (st->in_panic) {
        if (desired < panic_pods)
            desired = panic_pods;
        if (desired > st->max_panic_pods)
            st->max_panic_pods = desired;
        else if (desired < st->max_panic_pods)
            out->ratchet_held = 1;
        desired = st->max_panic_pods;
    }
    out->delayed_from = desired;
    if (spec->reachable && delay != NULL && delay->n_buckets > 0) {
        swarm__kpa_maxwin_record(delay, delay_ents, now_ns, desired);
        desired = swarm__kpa_maxwin_current(delay, delay_ents);
    }
    double ebc = -1.0;
    if (spec->target_burst_capacity == 0)
        ebc = 0;
    else if (spec->target_burst_capacity > 0)
        ebc = floor((double)ready_pods * spec->total_value - spec->target_burst_capacity - panic);
    out->desired = desired;
    out->ebc = f2i32(ebc);
    out->valid = 1;
}

/* ---- KEDA ------------------------------------------------------------------------------- */

static void cond(swarm__keda_cond *c, uint32_t status, const char *reason, const char *msg)
{
    c->set = 1;
    c->status = status;
    c->reason = reason;
    c->message = msg;
}

/* elapsed(t + d <= now): upstream compares "t + d before now" with t recorded strictly before
 * now, so equality counts as elapsed. Saturates instead of overflowing. */
static int elapsed(int64_t t, int64_t d, int64_t now)
{
    int64_t end = (d > 0 && t > INT64_MAX - d) ? INT64_MAX : t + d;
    return end <= now;
}

void swarm__keda_request_scale(const swarm__keda_in *in, swarm__keda_out *out)
{
    memset(out, 0, sizeof *out);
    out->replicas = in->current;
    if (in->paused) {
        cond(&out->paused, SWARM__KEDA_COND_TRUE, "ScaledObjectPaused", "ScaledObject is paused");
        return;
    }
    int active = in->is_active || in->force_activation;
    if (active) {
        cond(&out->active, SWARM__KEDA_COND_TRUE, "ScalerActive",
             in->force_activation && !in->is_active
                 ? "Scaling is performed because activation is being forced by annotation"
                 : "Scaling is performed because triggers are active");
        if ((in->idle >= 0 && in->current < in->min) || in->current == 0) {
            if (!in->paused_scale_out) {
                out->replicas = in->min > 0 ? in->min : 1;
                out->scale_updated = out->replicas != in->current;
                out->last_active_set = 1;
                out->scaled_from_zero = 1;
            }
        } else if (in->is_error) {
            cond(&out->ready, SWARM__KEDA_COND_UNKNOWN, "PartialTriggerError",
                 "Some triggers defined in ScaledObject are not working correctly");
        } else {
            out->last_active_set = 1;
        }
        if (!in->is_error)
            cond(&out->ready, SWARM__KEDA_COND_TRUE, "ScaledObjectReady",
                 "ScaledObject is defined correctly and is ready for scaling");
        return;
    }
    cond(&out->active, SWARM__KEDA_COND_FALSE, "ScalerNotActive",
         "Scaling is not performed because triggers are not active");
    if (in->is_error) {
        if (!in->has_fallback)
            cond(&out->ready, SWARM__KEDA_COND_FALSE, "TriggerError",
                 "Triggers defined in ScaledObject are not working correctly");
        return;
    }
    cond(&out->ready, SWARM__KEDA_COND_TRUE, "ScaledObjectReady",
         "ScaledObject is defined correctly and is ready for scaling");
    if ((in->idle >= 0 && in->current > in->idle) || (in->current > 0 && in->min == 0)) {
        if (in->paused_scale_in)
            return;
        int go = in->has_last_active ? elapsed(in->last_active_ns, in->cooldown_ns, in->now_ns)
                                     : elapsed(in->creation_ns, in->initial_cooldown_ns,
                                               in->now_ns);
        if (go) {
            out->replicas = in->idle >= 0 ? in->idle : in->min;
            out->scale_updated = out->replicas != in->current;
            out->scaled_to_idle = 1;
        } else {
            out->cooling_down = 1;
            cond(&out->active, SWARM__KEDA_COND_FALSE, "ScalerCooldown",
                 "Scaler cooling down because triggers are not active");
        }
    } else if (in->idle < 0 && in->current < in->min) {
        out->replicas = in->min;
        out->scale_updated = 1;
    }
}

char *swarm__keda_event(char *buf, size_t len, const swarm__keda_out *out, const char *kind,
                        const char *ns, const char *name, int32_t from,
                        const char *const *triggers, uint32_t n_triggers)
{
    if (len == 0)
        return buf;
    buf[0] = '\0';
    if (out->scaled_from_zero && out->scale_updated) {
        int n = snprintf(buf, len, "Normal KEDAScaleTargetActivated Scaled %s %s/%s from %d to %d, "
                         "triggered by ", kind, ns, name, from, out->replicas);
        size_t at = n > 0 ? (size_t)n : 0;
        for (uint32_t i = 0; i < n_triggers && at < len; i++) {
            n = snprintf(buf + at, len - at, "%s%s", i ? ";" : "", triggers[i]);
            at += n > 0 ? (size_t)n : 0;
        }
    } else if (out->scaled_to_idle && out->scale_updated) {
        snprintf(buf, len, "Normal KEDAScaleTargetDeactivated Deactivated %s %s/%s from %d to %d",
                 kind, ns, name, from, out->replicas);
    }
    return buf;
}
