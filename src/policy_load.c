/* SPDX-License-Identifier: MIT */
/*
 * SWARM_POLICY_LOAD: libswarm's load-aware scaling mode.
 *
 * KEDA, HPA and KPA react to a level (a backlog or a concurrency). This mode instead estimates
 * what the level comes from: the arrival rate (deltas of the host's cumulative arrival counter
 * between decisions, a time-weighted moving average) and the mean service time (delta of the
 * summed service time over delta of the completions, the same average, a configured prior until
 * the first completion). Their product is the offered load a (Erlangs, Little's law), and Erlang
 * C gives the fewest servers for which the chosen percentile of the queue wait stays under the
 * target. On top comes what drains the current backlog within the drain time (c >= a + Q*S/D).
 *
 * Direction rules: a need above the current count (which includes replicas still starting, so
 * they count as pending capacity) is applied at once; a smaller one never within the up hold
 * (65 s) of the last decision that asked for more, then only to the largest need of the down
 * window (30 s) plus a margin, and only outside a hysteresis band: a scale-up is never reversed
 * within a minute and small wobbles never move the count.
 *
 * Pure and deterministic like the rest of the policy: the estimator lives in swarm__load_state,
 * the down window in the caller's ring, and every rule that shaped the count is recorded.
 */
#include <math.h>
#include <string.h>

#include "internal.h"
#include "policy_internal.h"

#define NS SWARM__NS_PER_S

/* How far (standard deviations of the rate estimate) the sizing stays above it: the moving
 * average of a Poisson count has variance rate / (2 tau), and sizing exactly at the estimate
 * would put the true load above capacity half of the time. */
#define RATE_Z   2.0
#define JUMP_Z   5.0
#define JUMP_REL 0.5

static void step(swarm_policy_decision *d, uint32_t rule, int32_t metric, int32_t before,
                 int32_t after, int64_t value)
{
    if (d->n_steps >= SWARM_POLICY_MAX_STEPS)
        return;
    d->steps[d->n_steps++] = (swarm_policy_step){rule, metric, before, after, value};
}

static int64_t f2i64_sat(double f)
{
    if (!(f == f) || f <= 0)
        return 0;
    if (f >= 9.2e18)
        return INT64_MAX;
    return (int64_t)f;
}

static int32_t ceil_i32(double f)
{
    if (!(f == f) || f <= 0)
        return 0;
    f = ceil(f);
    return f >= 2147483647.0 ? INT32_MAX : (int32_t)f;
}

int swarm__load_config(swarm__load_cfg *c, const swarm_policy_opts *o)
{
    const int64_t hour = 3600 * NS;
    if (o->load_wait_ns < 0 || o->load_wait_ns > hour || !isfinite(o->load_percentile) ||
        o->load_percentile < 0 || o->load_percentile >= 1 || o->load_drain_ns < 0 ||
        (o->load_drain_ns != 0 && o->load_drain_ns < NS) || o->load_drain_ns > hour ||
        o->load_service_prior_ns < 0 || o->load_service_prior_ns > hour ||
        o->load_rate_tau_ns < 0 || (o->load_rate_tau_ns != 0 && o->load_rate_tau_ns < NS) ||
        o->load_rate_tau_ns > hour || o->load_down_window_ns < 0 ||
        (o->load_down_window_ns != 0 && o->load_down_window_ns < NS) ||
        o->load_down_window_ns > hour || !isfinite(o->load_down_band) || o->load_down_band > 1 ||
        o->load_up_hold_ns > hour)
        return SWARM_EINVAL;
    c->wait_s = (double)(o->load_wait_ns == 0 ? NS : o->load_wait_ns) / (double)NS;
    c->tail = 1.0 - (o->load_percentile == 0 ? 0.99 : o->load_percentile);
    c->drain_s = (double)(o->load_drain_ns == 0 ? 10 * NS : o->load_drain_ns) / (double)NS;
    c->prior_s =
        (double)(o->load_service_prior_ns == 0 ? NS / 10 : o->load_service_prior_ns) / (double)NS;
    c->tau_s = (double)(o->load_rate_tau_ns == 0 ? 5 * NS : o->load_rate_tau_ns) / (double)NS;
    c->band = o->load_down_band == 0 ? 0.1 : (o->load_down_band < 0 ? 0 : o->load_down_band);
    c->down_window_ns = o->load_down_window_ns == 0 ? 30 * NS : o->load_down_window_ns;
    c->up_hold_ns =
        o->load_up_hold_ns == 0 ? 65 * NS : (o->load_up_hold_ns < 0 ? 0 : o->load_up_hold_ns);
    return 0;
}

uint32_t swarm__load_window_buckets(const swarm__load_cfg *c)
{
    /* 2 s buckets (the KPA delay ring's); a need recorded in bucket i stays until bucket
     * i + n: one extra bucket makes that at least the whole window. */
    return (uint32_t)((c->down_window_ns + 2 * NS - 1) / (2 * NS)) + 1;
}

int swarm__load_state_check(const swarm__load_state *st)
{
    if (!isfinite(st->base_service_s) || st->base_service_s < 0 || !isfinite(st->rate) ||
        st->rate < 0 || !isfinite(st->svc_s) || st->svc_s < 0 || (st->has_svc && st->svc_s == 0))
        return -1;
    return 0;
}

/* ---- Erlang C ------------------------------------------------------------------------------ */

/*
 * Erlang B by its stable recurrence B(n) = a B(n-1) / (n + a B(n-1)), carried as its inverse
 * I(n) = 1 / B(n) = 1 + I(n-1) * n / a (one multiply-add per server, no division). Far below a
 * the recurrence forgets its start (each step shrinks an error by about n / a), so it starts
 * 6 standard deviations below a from the overload limit B ~ 1 - n / a: after the ~6 sqrt(a)
 * steps up to a the start's error has shrunk by about exp(-18). Small loads start at B(0) = 1.
 */
static int64_t erlang_start(double a, double *inv)
{
    double n0 = floor(a - 6.0 * sqrt(a) - 2.0);
    if (n0 < 1) {
        *inv = 1.0;
        return 0;
    }
    *inv = a / (a - n0);
    return (int64_t)n0;
}

double swarm__erlang_c(int64_t c, double a)
{
    if (!(a > 0))
        return 0;
    if ((double)c <= a)
        return 1;
    double inv;
    int64_t n = erlang_start(a, &inv);
    double ia = 1.0 / a;
    for (n = n + 1; n <= c; n++)
        inv = 1.0 + inv * ((double)n * ia);
    /* C = c B / (c - a (1 - B)) = c / (I (c - a) + a) */
    return (double)c / (inv * ((double)c - a) + a);
}

int64_t swarm__erlang_servers(double a, double t_over_s, double tail, int64_t limit)
{
    if (!(a > 0))
        return 0;
    if (!(a < (double)limit))
        return limit + 1;
    double inv;
    int64_t n = erlang_start(a, &inv);
    double ia = 1.0 / a;
    int64_t cmin = (int64_t)floor(a) + 1;
    /* exp(-(c - a) t / S) for c = cmin, then one factor per server. */
    double decay = exp(-t_over_s);
    double e = exp(-((double)cmin - a) * t_over_s);
    for (n = n + 1;; n++) {
        inv = 1.0 + inv * ((double)n * ia);
        if (n < cmin)
            continue;
        double cw = (double)n / (inv * ((double)n - a) + a);
        if (cw * e <= tail || n > limit)
            return n > limit ? limit + 1 : n;
        e *= decay;
    }
}

/* ---- the estimator ------------------------------------------------------------------------- */

/* Whether the host sends the load counters: a 0.2 observation with a counter moved or the
 * concurrency set (so that counters still at zero, before the first task, count as observed). */
static int has_signals(const swarm_policy_obs *obs)
{
    return obs->size >= sizeof *obs && (obs->arrivals != 0 || obs->completions != 0 ||
                                        obs->service_total_s != 0 || obs->concurrency != 0);
}

static void rebase(swarm__load_state *st, int64_t now, const swarm_policy_obs *obs)
{
    st->has_base = 1;
    st->base_ns = now;
    st->base_arrivals = obs->arrivals;
    st->base_completions = obs->completions;
    st->base_service_s = obs->service_total_s;
}

/* Folds the counters' deltas since the baseline into the moving averages. A counter that went
 * backwards (the host restarted its channel or pool) re-baselines without a sample: the
 * estimates so far stay. Several decisions at one instant accumulate into the next sample. */
static void estimate(const swarm__load_cfg *c, swarm__load_state *st, int64_t now,
                     const swarm_policy_obs *obs, swarm_policy_decision *d, int32_t cur)
{
    if (!has_signals(obs) || !isfinite(obs->service_total_s) || obs->service_total_s < 0)
        return;
    if (!st->has_base) {
        rebase(st, now, obs);
        return;
    }
    if (obs->arrivals < st->base_arrivals || obs->completions < st->base_completions ||
        obs->service_total_s < st->base_service_s) {
        step(d, SWARM_RULE_LOAD_RESET, -1, cur, cur, 0);
        rebase(st, now, obs);
        return;
    }
    if (now <= st->base_ns)
        return;
    double dt = (double)swarm__time_sub(now, st->base_ns) / (double)NS;
    double alpha = 1.0 - exp(-dt / c->tau_s);
    double arrived = (double)(obs->arrivals - st->base_arrivals);
    double inst = arrived / dt;
    /* A rise the moving average cannot explain (more than JUMP_Z standard deviations of a
     * Poisson count above it, and more than half of it) is a new level: adopt it at once instead of
     * ramping towards it over tau, so a step or a burst out of idle is sized on its first decision.
     * Falls stay smoothed; the down window holds capacity anyway. */
    double floor_rate = st->rate > 1.0 / dt ? st->rate : 1.0 / dt;
    double jump = JUMP_Z * sqrt(floor_rate / dt);
    if (jump < JUMP_REL * st->rate)
        jump = JUMP_REL * st->rate;
    if (!st->has_rate || inst - st->rate > jump)
        st->rate = inst;
    else
        st->rate += alpha * (inst - st->rate);
    st->has_rate = 1;
    st->last_arrived = arrived > 0;
    uint64_t done = obs->completions - st->base_completions;
    double busy = obs->service_total_s - st->base_service_s;
    if (done > 0 && busy > 0 && isfinite(busy)) {
        double s = busy / (double)done;
        st->svc_s = st->has_svc ? st->svc_s + alpha * (s - st->svc_s) : s;
        st->has_svc = 1;
    }
    rebase(st, now, obs);
}

/* ---- the decision -------------------------------------------------------------------------- */

int32_t swarm__load_decide(const swarm__load_cfg *c, swarm__load_state *st, swarm__kpa_maxwin *win,
                           swarm__kpa_maxent *ents, int32_t min, int32_t max, int64_t now,
                           const swarm_policy_obs *obs, swarm_policy_decision *d)
{
    int32_t cur = obs->current_replicas;
    double k = obs->concurrency > 0 ? (double)obs->concurrency : 1.0;
    /* The backlog: metrics[0], kind TOTAL (queued in value, in service in in_flight). */
    const swarm_policy_metric *m = &obs->metrics[0];
    int backlog_ok = m->kind == SWARM_METRIC_TOTAL && !m->failed && isfinite(m->value);
    double queued = backlog_ok && m->value > 0 ? m->value : 0;
    double in_flight = backlog_ok && isfinite(m->in_flight) && m->in_flight > 0 ? m->in_flight : 0;
    if (!backlog_ok && m->kind == SWARM_METRIC_TOTAL)
        step(d, SWARM_RULE_METRIC_FAILED, 0, cur, cur, 1);

    estimate(c, st, now, obs, d, cur);
    double svc = st->has_svc ? st->svc_s : c->prior_s;
    step(d, SWARM_RULE_LOAD_SERVICE, st->has_svc ? 1 : 0, cur, cur, f2i64_sat(svc * (double)NS));

    double a;
    if (st->has_rate) {
        /* Size for an upper bound of the rate: the estimate plus RATE_Z of its noise. */
        double rate = st->rate + RATE_Z * sqrt(st->rate / (2.0 * c->tau_s));
        step(d, SWARM_RULE_LOAD_RATE, -1, cur, cur, f2i64_sat(rate * 1000.0));
        a = rate * svc;
    } else if (backlog_ok) {
        /* No rate yet (first decision): the work in service is the offered load (Little). */
        a = in_flight;
        step(d, SWARM_RULE_LOAD_NO_SIGNAL, -1, cur, cur, f2i64_sat(in_flight));
    } else {
        step(d, SWARM_RULE_NO_METRICS, -1, cur, cur, 1);
        d->flags |= SWARM_DECISION_HOLD;
        return cur;
    }

    int32_t need;
    int idle = st->has_rate && !st->last_arrived && backlog_ok && queued == 0 && in_flight == 0;
    if (idle) {
        need = 0;
        step(d, SWARM_RULE_LOAD_IDLE, -1, cur, 0, 0);
    } else {
        int64_t lim = (int64_t)max * (int64_t)k;
        int64_t servers = swarm__erlang_servers(a, c->wait_s / svc, c->tail, lim);
        int32_t little = ceil_i32(a / k);
        need = ceil_i32((double)servers / k);
        if (need > max)
            need = max;
        step(d, SWARM_RULE_LOAD_ERLANG, -1, little, need, f2i64_sat(a * 1000.0));
        if (queued > 0) {
            /* While the capacity asked for (ready + starting) is short of the offered load,
             * the backlog keeps growing at the difference: size for the backlog as it will
             * be one drain time from now, not as it is. */
            double have = (double)cur * k;
            double backlog = queued;
            if (have < a)
                backlog += (a - have) / svc * c->drain_s;
            int32_t drain = ceil_i32((a + backlog * svc / c->drain_s) / k);
            if (drain > max)
                drain = max;
            if (drain > need) {
                step(d, SWARM_RULE_LOAD_DRAIN, -1, need, drain, f2i64_sat(queued));
                need = drain;
            }
        }
    }
    if (need < min)
        need = min; /* the window remembers needs within the bounds */
    d->metric_raw[0] = need;
    d->raw = need;
    step(d, SWARM_RULE_RAW, 0, cur, need, 0);
    if (obs->starting_replicas > 0)
        step(d, SWARM_RULE_PENDING_CAPACITY, -1, obs->ready_replicas, cur, obs->starting_replicas);

    swarm__kpa_maxwin_record(win, ents, now, need);
    int32_t held = swarm__kpa_maxwin_current(win, ents);
    if (held < need)
        held = need;
    if (need > cur) {
        st->has_up = 1;
        st->up_ns = now;
    }
    if (need >= cur)
        return need; /* up (or unchanged) at once */
    if (!backlog_ok) {
        /* Without the backlog the need may be too low: no scale-down on partial data. */
        step(d, SWARM_RULE_PARTIAL_METRICS, -1, need, cur, 1);
        return cur;
    }
    /* Down only when the window's largest need is below current by more than the band, and
     * then to a margin above it (half the band, at least one replica unless the need is min),
     * so that the need has to rise past the whole window's maximum and that margin before a
     * scale-up reverses the step. */
    int32_t margin = held > min ? ceil_i32((double)held * c->band / 2.0) : 0;
    if (held > min && margin < 1)
        margin = 1;
    int64_t above = (int64_t)held + margin;
    int32_t r = above > INT32_MAX ? INT32_MAX : (int32_t)above;
    if (r >= cur || (double)cur - (double)held <= c->band * (double)cur)
        r = cur;
    /* And never within up_hold of the last decision that asked for more: a scale-up is not
     * reversed inside the hold, whatever the need does (load that came and went at once). */
    if (r < cur && st->has_up && c->up_hold_ns > 0 &&
        swarm__time_sub(now, st->up_ns) < c->up_hold_ns)
        r = cur;
    if (r != need)
        step(d, SWARM_RULE_LOAD_HYSTERESIS, -1, need, r, held);
    return r;
}
