/* SPDX-License-Identifier: MIT */
/*
 * swarm_reconcile: observe -> decide -> actuate, stepped by the host or by a thread of its own.
 *
 * One step at a time: `in_step` (an atomic flag) excludes overlapping steps without holding a
 * lock across the host's callbacks. The policy, the last good observation and the PRNG belong to
 * whoever holds `in_step`. `mu` guards the schedule (next_tick, in_backoff), the stop request,
 * the counters and the copy of the last decision, and is never held while a callback runs; the
 * thread sleeps on `cv` (CLOCK_MONOTONIC) until the next tick, a kick or a stop.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "opts_v1.h"
#include "platform.h"
#include "pool_internal.h"
#include "swarm/reconcile.h"

struct swarm_reconcile {
    swarm_allocator alloc;
    swarm_reconcile_opts opts;

    _Atomic uint32_t in_step; /* 1 while a step runs; acq_rel exchange pairs with the release
                               * store that ends the previous step, so each step sees the last
                               * one's writes to the step-owned fields below */
    /* Step-owned. */
    uint64_t rng;
    double backoff;        /* the delay of the error streak's last step, before jitter; grows by
                            * the factor per error (O(1) per step, whatever the streak) */
    uint32_t obs_failures; /* consecutive observe failures */
    bool have_good;
    int32_t spec_since_good;    /* count actuated after the last good observation; -1: none */
    swarm_policy_obs good;      /* last good observation */
    swarm_policy_decision work; /* the decision being made */

    swarm__mutex mu;
    swarm__cond cv;
    bool running, stop_req, joining;
    swarm__thread thread;
    int64_t next_tick;  /* under mu; 0: due now */
    bool in_backoff;    /* under mu: next_tick is a backoff deadline, kicks do not advance it */
    bool have_decision; /* under mu */
    swarm_reconcile_stats st;   /* under mu */
    swarm_policy_decision last; /* under mu */
    uint64_t fork_gen;          /* the fork generation the loop was created in */
    void *bind;                 /* swarm_reconcile_create_for_pool()'s context, owned */
    size_t bind_size;
};

static inline bool forked(const swarm_reconcile *r)
{
    return SWARM_UNLIKELY(swarm__fork_gen() != r->fork_gen);
}

/* xorshift64*: small, fast and good enough for jitter. */
static double rng_unit(swarm_reconcile *r)
{
    uint64_t x = r->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->rng = x;
    return (double)((x * UINT64_C(2685821657736338717)) >> 11) * (1.0 / 9007199254740992.0);
}

static int64_t scale_ns(int64_t d, double f)
{
    return swarm__double_to_ns((double)d * f);
}

static int64_t add_sat(int64_t a, int64_t b)
{
    return swarm__time_add(a, b);
}

int swarm__reconcile_opts_init(swarm_reconcile_opts *opts)
{
    if (!opts)
        return SWARM_EINVAL;
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
    opts->interval_ns = INT64_C(1000000000);
    opts->backoff_base_ns = INT64_C(5000000);
    opts->backoff_factor = 2.0;
    opts->backoff_cap_ns = INT64_C(30000000000);
    opts->backoff_jitter = 0.1;
    return 0;
}

/* The rule that set a decision's count, as a decisions_by_reason index: the last step that
 * changed the count, else the last step; 0 without steps or for codes beyond the array. */
static uint32_t decision_reason(const swarm_policy_decision *d)
{
    uint32_t n = d->n_steps < SWARM_POLICY_MAX_STEPS ? d->n_steps : SWARM_POLICY_MAX_STEPS;
    uint32_t reason = n > 0 ? d->steps[n - 1].rule : 0;
    for (uint32_t i = n; i-- > 0;) {
        if (d->steps[i].before != d->steps[i].after) {
            reason = d->steps[i].rule;
            break;
        }
    }
    return reason < SWARM_RECONCILE_REASONS ? reason : 0;
}

int swarm_reconcile_create(swarm_reconcile **out, const swarm_reconcile_opts *opts)
{
    if (!out || !opts)
        return SWARM_EINVAL;
    swarm_reconcile_opts o;
    swarm_reconcile_opts_init(&o);
    int rc = SWARM__OPTS_COPY(reconcile_opts, &o, opts);
    if (rc != 0)
        return rc;
    if (o.backoff_factor == 0)
        o.backoff_factor = 2.0;
    if (o.backoff_jitter == 0)
        o.backoff_jitter = 0.1;
    else if (o.backoff_jitter < 0)
        o.backoff_jitter = 0;
    if (o.fail_after == 0)
        o.fail_after = 1;
    if (!o.policy || !o.observe || !o.actuate || o.interval_ns <= 0 || !(o.jitter >= 0) ||
        o.jitter > 10 || o.backoff_base_ns < 0 || o.backoff_cap_ns < o.backoff_base_ns ||
        !(o.backoff_factor >= 1) || !(o.backoff_jitter <= 10) || o.sliding > 1 ||
        o.max_replicas < 0)
        return SWARM_EINVAL;
    swarm_allocator a;
    if ((rc = swarm__alloc_init(&a, o.alloc)) != 0)
        return rc;
    swarm_reconcile *r = swarm__alloc(&a, sizeof *r, SWARM_CACHELINE);
    if (!r)
        return SWARM_ENOMEM;
    r->alloc = a;
    r->opts = o;
    r->opts.alloc = NULL;
    r->rng = o.seed ? o.seed : UINT64_C(0x9e3779b97f4a7c15);
    r->fork_gen = swarm__fork_watch();
    r->spec_since_good = -1;
    swarm__mutex_init(&r->mu);
    swarm__cond_init(&r->cv);
    r->st.size = sizeof r->st;
    r->st.last_desired = -1;
    r->st.last_actuated = -1;
    *out = r;
    return 0;
}

void swarm_reconcile_destroy(swarm_reconcile *r)
{
    if (!r || forked(r))
        return;
    (void)swarm_reconcile_stop(r);
    swarm__cond_destroy(&r->cv);
    swarm__mutex_destroy(&r->mu);
    swarm_allocator a = r->alloc;
    swarm__free(&a, r->bind, r->bind_size);
    swarm__free(&a, r, sizeof *r);
}

/* Appends a step to a decision's explanation (dropped when the steps are full, as the policy
 * does) and the same words to its text line. */
static void add_step(swarm_policy_decision *d, uint32_t rule, int32_t before, int32_t after,
                     int64_t value, const char *what)
{
    if (d->n_steps < SWARM_POLICY_MAX_STEPS) {
        swarm_policy_step *s = &d->steps[d->n_steps++];
        s->rule = rule;
        s->metric = -1;
        s->before = before;
        s->after = after;
        s->value = value;
    }
    size_t len = strnlen(d->text, SWARM_POLICY_TEXT_LEN - 1);
    char num[24];
    int nl = 0;
    int32_t v = after;
    char tmp[12];
    int tl = 0;
    do {
        tmp[tl++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0 && tl < (int)sizeof tmp);
    while (tl > 0)
        num[nl++] = tmp[--tl];
    num[nl] = '\0';
    const char *parts[] = {"; ", what, " ", num};
    for (size_t i = 0; i < 4; i++)
        for (const char *c = parts[i]; *c && len + 1 < SWARM_POLICY_TEXT_LEN; c++)
            d->text[len++] = *c;
    d->text[len] = '\0';
}

/* Bounds the policy's decision to what the actuator can do (opts.max_replicas), so that a policy
 * max above the actuator's (100 vs a pool's 64) never makes actuate fail and the loop back off
 * while the target stays small. The clamp shows in the explanation as a SWARM_RULE_MAX step. */
static void clamp_decision(swarm_reconcile *r, swarm_policy_decision *d)
{
    int32_t max = r->opts.max_replicas;
    if (max <= 0 || d->replicas <= max)
        return;
    int32_t before = d->replicas;
    d->replicas = max;
    d->retire = d->current > max ? d->current - max : 0;
    if (d->retire_starting > d->retire)
        d->retire_starting = d->retire;
    add_step(d, SWARM_RULE_MAX, before, max, max, "actuator max");
}

/* The step proper; the caller holds in_step. @end_clock: read the clock after the callbacks
 * (threaded mode) for the sliding period and the step duration. */
static int do_step(swarm_reconcile *r, int64_t now, bool end_clock, int64_t *next_out)
{
    const swarm_reconcile_opts *o = &r->opts;

    swarm__mutex_lock(&r->mu);
    int64_t planned = r->next_tick;
    uint64_t kicks0 = r->st.kicks;
    swarm__mutex_unlock(&r->mu);

    /* Observe. */
    int err = 0;
    bool obs_failed = false, actuated = false, decided = false;
    int obs_rc = 0, dec_rc = 0, act_rc = 0;
    swarm_policy_obs obs;
    memset(&obs, 0, sizeof obs);
    obs.size = sizeof obs;
    obs_rc = o->observe(o->user, &obs);
    const swarm_policy_obs *use = NULL;
    if (obs_rc == 0) {
        r->good = obs;
        r->have_good = true;
        r->spec_since_good = -1;
        r->obs_failures = 0;
        use = &r->good;
    } else {
        obs_failed = true;
        err = obs_rc < 0 ? obs_rc : SWARM_EINTERNAL;
        if (r->obs_failures < UINT32_MAX)
            r->obs_failures++;
        /* Level-triggered fallback: the policy sees the last known shape with every metric
         * failed, so its consecutive-failure counters advance. */
        if (r->have_good && r->obs_failures >= o->fail_after) {
            obs = r->good;
            for (uint32_t i = 0; i < obs.n_metrics && i < SWARM_POLICY_MAX_METRICS; i++)
                obs.metrics[i].failed = 1;
            /* What we actuated since is the spec now; the counts we cannot see stay within it. */
            if (r->spec_since_good >= 0) {
                obs.current_replicas = r->spec_since_good;
                if (obs.ready_replicas > obs.current_replicas)
                    obs.ready_replicas = obs.current_replicas;
                if (obs.starting_replicas > obs.current_replicas - obs.ready_replicas)
                    obs.starting_replicas = obs.current_replicas - obs.ready_replicas;
            }
            use = &obs;
        }
    }

    /* Decide, and actuate when the desired count differs from the actual one. */
    if (use) {
        memset(&r->work, 0, sizeof r->work);
        r->work.size = sizeof r->work;
        dec_rc = swarm_policy_decide(o->policy, now, use, &r->work);
        if (dec_rc != 0) {
            if (!err)
                err = dec_rc;
        } else {
            decided = true;
            clamp_decision(r, &r->work);
            if (o->actuate_always || r->work.replicas != use->current_replicas) {
                act_rc = o->actuate(o->user, r->work.replicas, &r->work);
                if (act_rc != 0) {
                    if (!err)
                        err = act_rc < 0 ? act_rc : SWARM_EINTERNAL;
                } else {
                    actuated = true;
                    r->spec_since_good = r->work.replicas;
                }
            }
        }
    }

    int64_t end = end_clock ? swarm_now_ns() : now;

    /* Schedule. */
    swarm__mutex_lock(&r->mu);
    swarm_reconcile_stats *st = &r->st;
    st->ticks++;
    st->last_tick_ns = now;
    st->last_step_ns = swarm__time_sub(end, now);
    if (planned > 0) {
        int64_t lag = swarm__time_sub(now, planned);
        if (lag < 0)
            lag = 0;
        st->last_lag_ns = lag;
        if (lag > st->max_lag_ns)
            st->max_lag_ns = lag;
    }
    if (obs_failed)
        st->observe_errors++;
    if (dec_rc != 0)
        st->decide_errors++;
    if (act_rc != 0)
        st->actuate_errors++;
    if (decided) {
        st->decisions++;
        st->decisions_by_reason[decision_reason(&r->work)]++;
        st->last_desired = r->work.replicas;
        r->last = r->work;
        r->have_decision = true;
    }
    if (actuated) {
        st->actuations++;
        st->last_actuated = r->work.replicas;
    }
    int64_t next;
    if (err) {
        st->errors++;
        st->last_error = err;
        if (st->consecutive_errors < UINT32_MAX)
            st->consecutive_errors++;
        /* base * factor^(n-1), capped, then jittered: kept as a running value so that a step
         * costs the same whatever the streak (a loop up to the streak length made a long streak
         * quadratic when base was 0 or the factor 1, since the cap was never reached). */
        double d = st->consecutive_errors <= 1 ? (double)o->backoff_base_ns
                                               : r->backoff * o->backoff_factor;
        if (d > (double)o->backoff_cap_ns)
            d = (double)o->backoff_cap_ns;
        r->backoff = d;
        int64_t delay = d >= (double)o->backoff_cap_ns ? o->backoff_cap_ns : (int64_t)d;
        if (o->backoff_jitter > 0)
            delay = add_sat(delay, scale_ns(delay, rng_unit(r) * o->backoff_jitter));
        st->backoff_ns = delay;
        next = add_sat(end, delay);
        r->in_backoff = true;
    } else {
        st->consecutive_errors = 0;
        st->backoff_ns = 0;
        r->backoff = 0;
        int64_t period = o->interval_ns;
        if (o->jitter > 0)
            period = add_sat(period, scale_ns(period, rng_unit(r) * o->jitter));
        next = add_sat(o->sliding ? end : now, period);
        r->in_backoff = false;
    }
    /* A kick that arrived during the step keeps the next tick due at once. */
    if (st->kicks != kicks0 && !err)
        next = 0;
    r->next_tick = next;
    st->next_tick_ns = next;
    swarm__mutex_unlock(&r->mu);

    if (next_out)
        *next_out = next == 0 ? end : next;
    return err;
}

int swarm_reconcile_step(swarm_reconcile *r, int64_t now_ns, int64_t *next_ns)
{
    if (!r)
        return SWARM_EINVAL;
    if (forked(r))
        return SWARM_ESTATE;
    swarm__mutex_lock(&r->mu);
    bool running = r->running;
    swarm__mutex_unlock(&r->mu);
    if (running)
        return SWARM_ESTATE;
    /* Pairs with the release store below (the previous step's end). */
    if (atomic_exchange_explicit(&r->in_step, 1, memory_order_acq_rel))
        return SWARM_ESTATE;
    int rc = do_step(r, now_ns, false, next_ns);
    atomic_store_explicit(&r->in_step, 0, memory_order_release);
    return rc;
}

static void *loop_main(void *arg)
{
    swarm_reconcile *r = arg;
    swarm__mutex_lock(&r->mu);
    for (;;) {
        if (r->stop_req)
            break;
        int64_t now = swarm_now_ns();
        if (now < r->next_tick) {
            (void)swarm__cond_wait_until(&r->cv, &r->mu, r->next_tick);
            continue;
        }
        swarm__mutex_unlock(&r->mu);
        (void)do_step(r, now, true, NULL);
        swarm__mutex_lock(&r->mu);
    }
    swarm__mutex_unlock(&r->mu);
    return NULL;
}

int swarm_reconcile_start(swarm_reconcile *r)
{
    if (!r)
        return SWARM_EINVAL;
    if (forked(r))
        return SWARM_ESTATE;
    /* Owning in_step for the thread's whole life keeps step() out. */
    if (atomic_exchange_explicit(&r->in_step, 1, memory_order_acq_rel))
        return SWARM_ESTATE;
    swarm__mutex_lock(&r->mu);
    if (r->running) {
        swarm__mutex_unlock(&r->mu);
        atomic_store_explicit(&r->in_step, 0, memory_order_release);
        return SWARM_ESTATE;
    }
    r->stop_req = false;
    r->running = true;
    r->st.running = 1;
    if (swarm__thread_create(&r->thread, "reconcile-loop", loop_main, r) != 0) {
        r->running = false;
        r->st.running = 0;
        swarm__mutex_unlock(&r->mu);
        atomic_store_explicit(&r->in_step, 0, memory_order_release);
        return SWARM_EINTERNAL;
    }
    swarm__mutex_unlock(&r->mu);
    return 0;
}

int swarm_reconcile_stop(swarm_reconcile *r)
{
    if (!r)
        return SWARM_EINVAL;
    if (forked(r))
        return SWARM_ESTATE;
    swarm__mutex_lock(&r->mu);
    if (!r->running) {
        swarm__mutex_unlock(&r->mu);
        return 0;
    }
    if (swarm__thread_is_self(r->thread)) {
        swarm__mutex_unlock(&r->mu);
        return SWARM_ESTATE;
    }
    if (r->joining) {
        /* Another stop() is joining the thread: wait for it to finish. */
        while (r->running)
            swarm__cond_wait(&r->cv, &r->mu);
        swarm__mutex_unlock(&r->mu);
        return 0;
    }
    r->joining = true;
    r->stop_req = true;
    swarm__cond_broadcast(&r->cv);
    swarm__mutex_unlock(&r->mu);
    swarm__thread_join(r->thread);
    /* Release the step slot before announcing the stop, so a step() that sees running == false
     * can take it. */
    atomic_store_explicit(&r->in_step, 0, memory_order_release);
    swarm__mutex_lock(&r->mu);
    r->running = false;
    r->joining = false;
    r->st.running = 0;
    swarm__cond_broadcast(&r->cv);
    swarm__mutex_unlock(&r->mu);
    return 0;
}

int swarm_reconcile_kick(swarm_reconcile *r)
{
    if (!r)
        return SWARM_EINVAL;
    if (forked(r))
        return SWARM_ESTATE;
    swarm__mutex_lock(&r->mu);
    r->st.kicks++;
    if (!r->in_backoff) {
        r->next_tick = 0;
        r->st.next_tick_ns = 0;
        swarm__cond_broadcast(&r->cv);
    }
    swarm__mutex_unlock(&r->mu);
    return 0;
}

int swarm_reconcile_get_stats(swarm_reconcile *r, swarm_reconcile_stats *stats)
{
    if (!r || !stats || stats->size < offsetof(swarm_reconcile_stats, ticks))
        return SWARM_EINVAL;
    if (forked(r))
        return SWARM_ESTATE;
    swarm__mutex_lock(&r->mu);
    swarm__stats_copy_out(stats, &r->st, sizeof r->st);
    swarm__mutex_unlock(&r->mu);
    return 0;
}

int swarm_reconcile_last_decision(swarm_reconcile *r, swarm_policy_decision *out)
{
    if (!r || !out || out->size < sizeof *out)
        return SWARM_EINVAL;
    if (forked(r))
        return SWARM_ESTATE;
    swarm__mutex_lock(&r->mu);
    int rc = r->have_decision ? 0 : SWARM_EAGAIN;
    if (rc == 0)
        *out = r->last;
    swarm__mutex_unlock(&r->mu);
    return rc;
}

/* ---- one call that autoscales a pool -------------------------------------------------------- */

typedef struct pool_bind {
    swarm_pool *pool;
    double target_per_worker;
    double activation;
} pool_bind;

static int bind_observe(void *ctx, swarm_policy_obs *obs)
{
    const pool_bind *b = ctx;
    return swarm_pool_observe(b->pool, b->target_per_worker, b->activation, obs);
}

static int bind_actuate(void *ctx, int32_t desired, const swarm_policy_decision *d)
{
    (void)d;
    const pool_bind *b = ctx;
    return swarm_pool_resize(b->pool, desired < 0 ? 0u : (uint32_t)desired);
}

int swarm_reconcile_pool_opts_init(swarm_reconcile_pool_opts *opts)
{
    if (!opts)
        return SWARM_EINVAL;
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
    return 0;
}

int swarm_reconcile_create_for_pool(swarm_reconcile **out, const swarm_reconcile_pool_opts *opts)
{
    if (!out || !opts)
        return SWARM_EINVAL;
    swarm_reconcile_pool_opts o;
    swarm_reconcile_pool_opts_init(&o);
    int rc = SWARM__OPTS_COPY(reconcile_pool_opts, &o, opts);
    if (rc != 0)
        return rc;
    if (!o.pool || !o.policy || o.manual > 1 || !(o.target_per_worker >= 0) ||
        o.target_per_worker > 1e300 || !(o.activation >= 0) || o.activation > 1e300)
        return SWARM_EINVAL;
    swarm__pool_obs po;
    if ((rc = swarm__pool_observe(o.pool, &po)) != 0)
        return rc;
    swarm_reconcile_opts lo;
    swarm_reconcile_opts_init(&lo);
    if (o.loop && (rc = SWARM__OPTS_COPY(reconcile_opts, &lo, o.loop)) != 0)
        return rc;
    swarm_allocator a;
    if ((rc = swarm__alloc_init(&a, lo.alloc)) != 0)
        return rc;
    pool_bind *b = swarm__alloc(&a, sizeof *b, 16);
    if (!b)
        return SWARM_ENOMEM;
    b->pool = o.pool;
    b->target_per_worker = o.target_per_worker;
    b->activation = o.activation;
    lo.policy = o.policy;
    lo.observe = bind_observe;
    lo.actuate = bind_actuate;
    lo.user = b;
    int32_t pmax = po.max_workers > INT32_MAX ? INT32_MAX : (int32_t)po.max_workers;
    if (lo.max_replicas <= 0 || lo.max_replicas > pmax)
        lo.max_replicas = pmax;
    swarm_reconcile *r = NULL;
    if ((rc = swarm_reconcile_create(&r, &lo)) != 0) {
        swarm__free(&a, b, sizeof *b);
        return rc;
    }
    r->bind = b;
    r->bind_size = sizeof *b;
    if (!o.manual && (rc = swarm_reconcile_start(r)) != 0) {
        swarm_reconcile_destroy(r);
        return rc;
    }
    *out = r;
    return 0;
}
