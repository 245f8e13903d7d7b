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

#include "internal.h"
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

static int32_t min32(int32_t a, int32_t b)
{
    return a < b ? a : b;
}
static int32_t max32(int32_t a, int32_t b)
{
    return a > b ? a : b;
}

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

/* floor(a / b) for b > 0. */
static int64_t floor_div64(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

const char *swarm__hpa_reason_name(int reason)
{
    switch (reason) {
    case SWARM__HPA_WITHIN:
        return "DesiredWithinRange";
    case SWARM__HPA_SCALE_UP_LIMIT:
        return "ScaleUpLimit";
    case SWARM__HPA_SCALE_DOWN_LIMIT:
        return "ScaleDownLimit";
    case SWARM__HPA_TOO_MANY:
        return "TooManyReplicas";
    case SWARM__HPA_TOO_FEW:
        return "TooFewReplicas";
    default:
        return "Unknown";
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
        out->n_policies =
            in->n_policies > SWARM_POLICY_MAX_RATES ? SWARM_POLICY_MAX_RATES : in->n_policies;
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

/*
 * Stores (desired, now): into slot @idx if @found (upstream reuses the last entry that fell out
 * of every window), else appended; on a full array the oldest entry is overwritten.
 *
 * libswarm: with @gran_ns > 0, a recommendation in the same gran-long time bucket as the newest
 * entry merges into it (largest and smallest kept, the later time), so an array of n entries
 * spans (n - 2) buckets and holds a window of (n - 2) * gran whatever the decision rate: the
 * window never shrinks (an upstream array grows without bound instead). A merged value may
 * leave the window up to one bucket late. 0: exact, as upstream.
 */
static void store_rec(swarm__hpa_rec *recs, uint32_t *n, uint32_t cap, int found, uint32_t idx,
                      int32_t desired, int64_t now_ns, int64_t gran_ns)
{
    if (gran_ns > 0 && *n > 0) {
        uint32_t newest = 0;
        for (uint32_t i = 1; i < *n; i++)
            if (recs[i].t_ns > recs[newest].t_ns)
                newest = i;
        swarm__hpa_rec *r = &recs[newest];
        if (floor_div64(r->t_ns, gran_ns) == floor_div64(now_ns, gran_ns) && r->t_ns <= now_ns) {
            r->replicas = max32(r->replicas, desired);
            r->low = min32(r->low, desired);
            r->t_ns = now_ns;
            return;
        }
    }
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
                                    int32_t desired, int64_t now_ns, int64_t window_ns,
                                    int64_t gran_ns)
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
    store_rec(recs, n, cap, found, idx, desired, now_ns, gran_ns);
    return best;
}

int32_t swarm__hpa_stabilize(swarm__hpa_rec *recs, uint32_t *n, uint32_t cap, int32_t current,
                             int32_t desired, int64_t now_ns, int64_t up_window_ns,
                             int64_t down_window_ns, int64_t gran_ns, int *stabilized_dir)
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
    store_rec(recs, n, cap, found, idx, desired, now_ns, gran_ns);
    *stabilized_dir = r < desired ? 1 : (r > desired ? -1 : 0);
    return r;
}

int64_t swarm__hpa_gran(int64_t window_ns, uint32_t cap)
{
    if (window_ns <= 0 || cap < 3)
        return 0;
    int64_t span = (int64_t)cap - 2;
    return window_ns / span + (window_ns % span != 0);
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
                                 const swarm__hpa_rules *down_rules, int64_t now_ns, int *reason)
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
                            int64_t now_ns, int64_t longest_period_ns, int64_t gran_ns)
{
    int found = 0, have_newest = 0;
    uint32_t idx = 0, newest = 0;
    for (uint32_t i = 0; i < *n; i++) {
        if (!inside(ev[i].t_ns, now_ns, longest_period_ns))
            ev[i].outdated = 1;
        if (ev[i].outdated) {
            found = 1;
            idx = i;
        } else if (!have_newest || ev[i].t_ns > ev[newest].t_ns) {
            have_newest = 1;
            newest = i;
        }
    }
    /* libswarm: merge into the newest live event of the same gran-long bucket (the sum kept,
     * the later time), so the list holds the longest period at any rescale rate. */
    if (gran_ns > 0 && have_newest && ev[newest].t_ns <= now_ns &&
        floor_div64(ev[newest].t_ns, gran_ns) == floor_div64(now_ns, gran_ns)) {
        int64_t sum = (int64_t)ev[newest].change + change;
        ev[newest].change = sum > INT32_MAX ? INT32_MAX : (int32_t)sum;
        ev[newest].t_ns = now_ns;
        return;
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

/* Overflow-safe sum that saturates at INT64_MAX / INT64_MIN (upstream's external-metric sum). */
static int64_t sat_add64(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

/* a * b for b >= 0, saturating. */
static int64_t sat_mul64(int64_t a, int64_t b)
{
    if (b == 0 || a == 0)
        return 0;
    if (a > 0 ? a > INT64_MAX / b : a < INT64_MIN / b)
        return a > 0 ? INT64_MAX : INT64_MIN;
    return a * b;
}

/* calcPlainMetricReplicas over the grouped pods: usage = total // count, then the amended set
 * (missing pods at the target on a scale-down and at 0 on a scale-up, unready pods at 0 on a
 * scale-up) decides whether the scale goes ahead. */
static int calc_pods(const swarm__hpa_calc_in *in, swarm__hpa_calc_out *out)
{
    if (in->n_ready + in->n_unready + in->n_missing == 0 && in->n_samples == 0) {
        snprintf(out->error, sizeof out->error,
                 "no pods returned by selector while calculating replica count");
        return SWARM_EINVAL;
    }
    if (in->n_samples <= 0) {
        snprintf(out->error, sizeof out->error,
                 "did not receive metrics for targeted pods (pods might be unready)");
        return SWARM_EINVAL;
    }
    int64_t usage = in->sample_total_milli / in->n_samples;
    double ratio = (double)usage / (double)in->target_milli;
    out->usage_milli = usage;
    out->want = f2i32(ceil(ratio * (double)in->n_ready));

    int scale_up_unready = in->n_unready > 0 && ratio > 1.0;
    if (!scale_up_unready && in->n_missing == 0) {
        out->replicas =
            swarm__hpa_within(ratio, in->tol_up, in->tol_down) ? in->current : out->want;
        return 0;
    }
    int64_t total = in->sample_total_milli, count = in->n_samples;
    /* At exactly 1.0 upstream adds nothing for missing pods. */
    if (in->n_missing > 0 && ratio != 1.0) {
        if (ratio < 1.0)
            total = sat_add64(total, sat_mul64(in->target_milli, in->n_missing));
        count = sat_add64(count, in->n_missing);
    }
    if (scale_up_unready)
        count = sat_add64(count, in->n_unready);
    double new_ratio = (double)(total / count) / (double)in->target_milli;
    if (swarm__hpa_within(new_ratio, in->tol_up, in->tol_down) ||
        (ratio > 1.0 && new_ratio < 1.0) || (ratio < 1.0 && new_ratio > 1.0)) {
        out->replicas = in->current;
        return 0;
    }
    int32_t nr = f2i32(ceil(new_ratio * (double)count));
    if ((new_ratio < 1.0 && nr > in->current) || (new_ratio > 1.0 && nr < in->current))
        out->replicas = in->current;
    else
        out->replicas = nr;
    return 0;
}

static int calc_value(const swarm__hpa_calc_in *in, swarm__hpa_calc_out *out)
{
    int64_t usage = in->usage_milli;
    out->usage_milli = usage;
    double ratio = (double)usage / (double)in->target_milli;
    if (in->kind == SWARM__CALC_OBJECT_VALUE || in->kind == SWARM__CALC_EXTERNAL_VALUE) {
        if (in->current != 0) {
            out->want = f2i32(ceil(ratio * (double)in->n_ready));
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
            out->replicas = out->want;
        } else {
            out->replicas = out->want = f2i32(ceil(ratio));
        }
        return 0;
    }
    /* AverageValue per pod: current is the status replica count. */
    double r = (double)usage / ((double)in->target_milli * (double)in->current);
    out->want = f2i32(ceil((double)usage / (double)in->target_milli));
    out->replicas = swarm__hpa_within(r, in->tol_up, in->tol_down) ? in->current : out->want;
    if (usage == INT64_MAX)
        out->usage_milli = INT64_MAX;
    else
        out->usage_milli = f2i64(ceil((double)usage / (double)in->current));
    return 0;
}

int swarm__hpa_replica_calc(const swarm__hpa_calc_in *in, swarm__hpa_calc_out *out)
{
    memset(out, 0, sizeof *out);
    if (in->target_milli > 0) {
        switch (in->kind) {
        case SWARM__CALC_PODS:
            return calc_pods(in, out);
        case SWARM__CALC_OBJECT_VALUE:
        case SWARM__CALC_EXTERNAL_VALUE:
        case SWARM__CALC_OBJECT_AVERAGE:
        case SWARM__CALC_EXTERNAL_AVERAGE:
            return calc_value(in, out);
        default:
            break;
        }
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
        int64_t end = swarm__time_add(st->panic_time_ns, spec->stable_window_ns);
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
    int64_t end = swarm__time_add(t, d);
    return end <= now;
}

void swarm__keda_request_scale(const swarm__keda_in *in, swarm__keda_out *out)
{
    memset(out, 0, sizeof *out);
    out->replicas = in->current;
    /* Ready until something below says otherwise (upstream sets it first, so a scaler error
     * with a fallback, a pause or a scale from zero leave it True). */
    cond(&out->ready, SWARM__KEDA_COND_TRUE, "ScaledObjectReady",
         "ScaledObject is defined correctly and is ready for scaling");
    if (in->paused) {
        cond(&out->paused, SWARM__KEDA_COND_TRUE, "ScaledObjectPaused", "ScaledObject is paused");
        return;
    }
    int active = in->is_active || in->force_activation;
    if (active) {
        cond(&out->active, SWARM__KEDA_COND_TRUE, "ScalerActive",
             in->force_activation
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
        return;
    }
    cond(&out->active, SWARM__KEDA_COND_FALSE, "ScalerNotActive",
         "Scaling is not performed because triggers are not active");
    if (in->is_error && in->has_fallback && in->fallback_replicas != 0)
        return; /* the HPA applies the fallback replicas; scaling to zero would defeat it */
    if (in->is_error && !in->has_fallback) {
        cond(&out->ready, SWARM__KEDA_COND_FALSE, "TriggerError",
             "Triggers defined in ScaledObject are not working correctly");
        return;
    }
    if ((in->idle >= 0 && in->current > in->idle) || (in->current > 0 && in->min == 0)) {
        if (in->paused_scale_in)
            return;
        int go = in->has_last_active
                     ? elapsed(in->last_active_ns, in->cooldown_ns, in->now_ns)
                     : elapsed(in->creation_ns, in->initial_cooldown_ns, in->now_ns);
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
