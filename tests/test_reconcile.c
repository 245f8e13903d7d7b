/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for swarm_reconcile. Most drive swarm_reconcile_step() with a fake clock and fake
 * observe/actuate callbacks over a real KEDA policy, so interval, jitter bounds, kicks, lag and
 * backoff growth and reset are checked exactly, without sleeping. A few run the loop's own
 * thread for kick and stop latency, with generous bounds only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <swarm/swarm.h>

#include "helpers.h"

/* ---- fake world ---------------------------------------------------------------------------- */

typedef struct world {
    _Atomic int32_t replicas; /* the actual count (what actuate sets) */
    _Atomic int32_t queued;   /* backlog observed */
    _Atomic int observe_fail; /* observe returns this (0: ok) */
    _Atomic int actuate_fail; /* actuate returns this (0: ok) */
    _Atomic int observes, actuates;
    _Atomic int32_t last_desired;
    _Atomic int stop_from_callback; /* actuate calls swarm_reconcile_stop() on itself */
    _Atomic int stop_rc;
    swarm_reconcile *self;
    char last_text[SWARM_POLICY_TEXT_LEN];
} world;

static int w_observe(void *ctx, swarm_policy_obs *obs)
{
    world *w = ctx;
    atomic_fetch_add(&w->observes, 1);
    int f = atomic_load(&w->observe_fail);
    if (f)
        return f;
    int32_t r = atomic_load(&w->replicas);
    obs->current_replicas = r;
    obs->ready_replicas = r;
    obs->starting_replicas = 0;
    obs->n_metrics = 1;
    obs->metrics[0].kind = SWARM_METRIC_TOTAL;
    obs->metrics[0].value = atomic_load(&w->queued);
    obs->metrics[0].in_flight = 0;
    obs->metrics[0].target = 5;
    obs->metrics[0].activation = 0;
    return 0;
}

static int w_actuate(void *ctx, int32_t desired, const swarm_policy_decision *d)
{
    world *w = ctx;
    atomic_fetch_add(&w->actuates, 1);
    atomic_store(&w->last_desired, desired);
    memcpy(w->last_text, d->text, sizeof w->last_text);
    w->last_text[sizeof w->last_text - 1] = 0;
    if (atomic_load(&w->stop_from_callback))
        atomic_store(&w->stop_rc, swarm_reconcile_stop(w->self));
    int f = atomic_load(&w->actuate_fail);
    if (f)
        return f;
    atomic_store(&w->replicas, desired);
    return 0;
}

static swarm_policy *make_policy(uint32_t fallback_failures, int32_t fallback_replicas)
{
    swarm_policy_opts po;
    swarm_policy_opts_init(&po);
    po.mode = SWARM_POLICY_KEDA;
    po.min_replicas = 0;
    po.max_replicas = 20;
    po.cooldown_ns = 10 * SEC;
    po.fallback_failures = fallback_failures;
    po.fallback_behavior = SWARM_FALLBACK_STATIC;
    po.fallback_replicas = fallback_replicas;
    swarm_policy *p = NULL;
    assert_int_equal(swarm_policy_create(&p, &po), 0);
    return p;
}

static swarm_reconcile *make_loop(world *w, swarm_policy *pol, int64_t interval, double jitter)
{
    swarm_reconcile_opts o;
    swarm_reconcile_opts_init(&o);
    o.policy = pol;
    o.observe = w_observe;
    o.actuate = w_actuate;
    o.user = w;
    o.interval_ns = interval;
    o.jitter = jitter;
    o.backoff_jitter = -1; /* exact backoff values */
    o.backoff_base_ns = 5 * MS;
    o.backoff_cap_ns = 30 * MS;
    swarm_reconcile *r = NULL;
    assert_int_equal(swarm_reconcile_create(&r, &o), 0);
    w->self = r;
    return r;
}

static swarm_reconcile_stats rstats(swarm_reconcile *r)
{
    swarm_reconcile_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    assert_int_equal(swarm_reconcile_get_stats(r, &st), 0);
    return st;
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_reconcile_create_invalid_args(void **state)
{
    (void)state;
    world w;
    memset(&w, 0, sizeof w);
    swarm_policy *pol = make_policy(0, 0);
    swarm_reconcile_opts o;
    swarm_reconcile *r = NULL;
    assert_int_equal(swarm_reconcile_opts_init(NULL), SWARM_EINVAL);
    swarm_reconcile_opts_init(&o);
    assert_int_equal(swarm_reconcile_create(&r, &o), SWARM_EINVAL); /* no policy/callbacks */
    o.policy = pol;
    o.observe = w_observe;
    o.actuate = w_actuate;
    o.interval_ns = 0;
    assert_int_equal(swarm_reconcile_create(&r, &o), SWARM_EINVAL);
    o.interval_ns = SEC;
    o.jitter = -0.5;
    assert_int_equal(swarm_reconcile_create(&r, &o), SWARM_EINVAL);
    o.jitter = 0;
    o.backoff_factor = 0.5;
    assert_int_equal(swarm_reconcile_create(&r, &o), SWARM_EINVAL);
    o.backoff_factor = 2;
    o.backoff_cap_ns = 1;
    assert_int_equal(swarm_reconcile_create(&r, &o), SWARM_EINVAL);
    assert_null(r);
    assert_int_equal(swarm_reconcile_create(NULL, &o), SWARM_EINVAL);
    assert_int_equal(swarm_reconcile_step(NULL, 0, NULL), SWARM_EINVAL);
    assert_int_equal(swarm_reconcile_start(NULL), SWARM_EINVAL);
    assert_int_equal(swarm_reconcile_stop(NULL), SWARM_EINVAL);
    assert_int_equal(swarm_reconcile_kick(NULL), SWARM_EINVAL);
    swarm_reconcile_destroy(NULL);

    o.backoff_cap_ns = SEC;
    assert_int_equal(swarm_reconcile_create(&r, &o), 0);
    swarm_policy_decision d;
    memset(&d, 0, sizeof d);
    d.size = sizeof d;
    assert_int_equal(swarm_reconcile_last_decision(r, &d), SWARM_EAGAIN);
    d.size = 8;
    assert_int_equal(swarm_reconcile_last_decision(r, &d), SWARM_EINVAL);
    swarm_reconcile_stats st;
    st.size = 2;
    assert_int_equal(swarm_reconcile_get_stats(r, &st), SWARM_EINVAL);
    st = rstats(r);
    assert_int_equal(st.last_desired, -1);
    assert_int_equal(st.last_actuated, -1);
    assert_int_equal(st.ticks, 0);
    swarm_reconcile_destroy(r);
    swarm_policy_destroy(pol);
}

static void test_reconcile_step_interval_and_actuate_on_change(void **state)
{
    (void)state;
    world w;
    memset(&w, 0, sizeof w);
    atomic_store(&w.replicas, 1);
    atomic_store(&w.queued, 5); /* wants 1 */
    swarm_policy *pol = make_policy(0, 0);
    swarm_reconcile *r = make_loop(&w, pol, SEC, 0);
    int64_t now = 100 * SEC, next = 0;

    assert_int_equal(swarm_reconcile_step(r, now, &next), 0);
    assert_int_equal(next, now + SEC);
    assert_int_equal(atomic_load(&w.actuates), 0); /* desired == current */
    swarm_reconcile_stats st = rstats(r);
    assert_int_equal(st.ticks, 1);
    assert_int_equal(st.decisions, 1);
    assert_int_equal(st.last_desired, 1);
    assert_int_equal(st.next_tick_ns, now + SEC);
    assert_int_equal(st.last_tick_ns, now);

    /* A burst: desired goes up, actuate is called with it and an explanation. */
    atomic_store(&w.queued, 40);
    now = next;
    assert_int_equal(swarm_reconcile_step(r, now, &next), 0);
    assert_int_equal(atomic_load(&w.actuates), 1);
    int32_t up = atomic_load(&w.last_desired);
    assert_true(up > 1);
    assert_int_equal(atomic_load(&w.replicas), up);
    assert_true(strlen(w.last_text) > 0);
    swarm_policy_decision d;
    memset(&d, 0, sizeof d);
    d.size = sizeof d;
    assert_int_equal(swarm_reconcile_last_decision(r, &d), 0);
    assert_int_equal(d.replicas, up);
    assert_true(d.n_steps > 0);
    st = rstats(r);
    assert_int_equal(st.actuations, 1);
    assert_int_equal(st.last_actuated, up);

    /* Level-triggered: if the actual state drifts (a worker died), the next tick repairs it. */
    atomic_store(&w.replicas, 1);
    now = next;
    assert_int_equal(swarm_reconcile_step(r, now, &next), 0);
    assert_int_equal(atomic_load(&w.actuates), 2);
    swarm_reconcile_destroy(r);
    swarm_policy_destroy(pol);
}

static void test_reconcile_jitter_bounds(void **state)
{
    (void)state;
    world w;
    memset(&w, 0, sizeof w);
    atomic_store(&w.queued, 0);
    swarm_policy *pol = make_policy(0, 0);
    swarm_reconcile *r = make_loop(&w, pol, 100 * MS, 0.5);
    int64_t now = 10 * SEC, next = 0, lo = INT64_MAX, hi = 0;
    for (int i = 0; i < 500; i++) {
        assert_int_equal(swarm_reconcile_step(r, now, &next), 0);
        int64_t d = next - now;
        assert_true(d >= 100 * MS);
        assert_true(d < 150 * MS);
        if (d < lo)
            lo = d;
        if (d > hi)
            hi = d;
        now = next;
    }
    assert_true(hi - lo > 25 * MS); /* actually jittered, not constant */
    swarm_reconcile_destroy(r);
    swarm_policy_destroy(pol);
}

static void test_reconcile_lag_and_kick(void **state)
{
    (void)state;
    world w;
    memset(&w, 0, sizeof w);
    swarm_policy *pol = make_policy(0, 0);
    swarm_reconcile *r = make_loop(&w, pol, SEC, 0);
    int64_t now = 50 * SEC, next = 0;
    assert_int_equal(swarm_reconcile_step(r, now, &next), 0);
    /* Late by 7 ms. */
    assert_int_equal(swarm_reconcile_step(r, next + 7 * MS, &next), 0);
    swarm_reconcile_stats st = rstats(r);
    assert_int_equal(st.last_lag_ns, 7 * MS);
    assert_int_equal(st.max_lag_ns, 7 * MS);
    /* A kick makes the next tick due now; kicks coalesce. */
    assert_int_equal(swarm_reconcile_kick(r), 0);
    assert_int_equal(swarm_reconcile_kick(r), 0);
    st = rstats(r);
    assert_int_equal(st.next_tick_ns, 0);
    assert_int_equal(st.kicks, 2);
    /* The kicked tick does not count as lag. */
    assert_int_equal(swarm_reconcile_step(r, next - 500 * MS, &next), 0);
    st = rstats(r);
    assert_int_equal(st.last_lag_ns, 7 * MS);
    assert_true(st.next_tick_ns > 0);
    swarm_reconcile_destroy(r);
    swarm_policy_destroy(pol);
}

static void test_reconcile_backoff_grows_caps_and_resets(void **state)
{
    (void)state;
    world w;
    memset(&w, 0, sizeof w);
    swarm_policy *pol = make_policy(0, 0);
    swarm_reconcile *r = make_loop(&w, pol, SEC, 0);
    int64_t now = 10 * SEC, next = 0;
    atomic_store(&w.observe_fail, SWARM_EUNAVAILABLE);
    static const int64_t want[] = {5 * MS, 10 * MS, 20 * MS, 30 * MS, 30 * MS};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(swarm_reconcile_step(r, now, &next), SWARM_EUNAVAILABLE);
        assert_int_equal(next - now, want[i]);
        now = next;
    }
    swarm_reconcile_stats st = rstats(r);
    assert_int_equal(st.consecutive_errors, 5);
    assert_int_equal(st.observe_errors, 5);
    assert_int_equal(st.errors, 5);
    assert_int_equal(st.backoff_ns, 30 * MS);
    assert_int_equal(st.last_error, SWARM_EUNAVAILABLE);
    assert_int_equal(st.decisions, 0); /* never a good observation: nothing to decide on */
    /* A kick does not cut a backoff short. */
    swarm_reconcile_kick(r);
    assert_int_equal(rstats(r).next_tick_ns, next);
    /* Success resets. */
    atomic_store(&w.observe_fail, 0);
    assert_int_equal(swarm_reconcile_step(r, now, &next), 0);
    assert_int_equal(next - now, SEC);
    st = rstats(r);
    assert_int_equal(st.consecutive_errors, 0);
    assert_int_equal(st.backoff_ns, 0);
    /* Actuate errors back off too, and the actuation is retried on the next tick. */
    atomic_store(&w.queued, 50);
    atomic_store(&w.actuate_fail, SWARM_EINTERNAL);
    now = next;
    assert_int_equal(swarm_reconcile_step(r, now, &next), SWARM_EINTERNAL);
    assert_int_equal(next - now, 5 * MS);
    assert_int_equal(atomic_load(&w.actuates), 1);
    atomic_store(&w.actuate_fail, 0);
    now = next;
    assert_int_equal(swarm_reconcile_step(r, now, &next), 0);
    assert_int_equal(atomic_load(&w.actuates), 2);
    assert_true(atomic_load(&w.replicas) > 0);
    st = rstats(r);
    assert_int_equal(st.actuate_errors, 1);
    assert_int_equal(st.consecutive_errors, 0);
    swarm_reconcile_destroy(r);
    swarm_policy_destroy(pol);
}

static void test_reconcile_backoff_jitter_bounds(void **state)
{
    (void)state;
    world w;
    memset(&w, 0, sizeof w);
    swarm_policy *pol = make_policy(0, 0);
    swarm_reconcile_opts o;
    swarm_reconcile_opts_init(&o);
    o.policy = pol;
    o.observe = w_observe;
    o.actuate = w_actuate;
    o.user = &w;
    o.backoff_base_ns = 10 * MS;
    o.backoff_cap_ns = SEC;
    o.backoff_jitter = 0.5;
    swarm_reconcile *r = NULL;
    assert_int_equal(swarm_reconcile_create(&r, &o), 0);
    atomic_store(&w.observe_fail, SWARM_ETIMEDOUT);
    int64_t now = SEC, next = 0, base = 10 * MS;
    for (int i = 0; i < 8; i++) {
        swarm_reconcile_step(r, now, &next);
        int64_t d = next - now;
        int64_t b = base > SEC ? SEC : base;
        assert_true(d >= b);
        assert_true(d < b + b / 2 + 1);
        base *= 2;
        now = next;
    }
    swarm_reconcile_destroy(r);
    swarm_policy_destroy(pol);
}

static void test_reconcile_observe_failures_reach_policy_fallback(void **state)
{
    (void)state;
    world w;
    memset(&w, 0, sizeof w);
    atomic_store(&w.replicas, 2);
    atomic_store(&w.queued, 10); /* wants 2 */
    swarm_policy *pol = make_policy(2, 7);
    swarm_reconcile *r = make_loop(&w, pol, SEC, 0);
    int64_t now = 1000 * SEC, next = 0;
    assert_int_equal(swarm_reconcile_step(r, now, &next), 0);
    assert_int_equal(atomic_load(&w.actuates), 0);
    atomic_store(&w.observe_fail, SWARM_EUNAVAILABLE);
    for (int i = 0; i < 4; i++) {
        now = next;
        assert_int_equal(swarm_reconcile_step(r, now, &next), SWARM_EUNAVAILABLE);
    }
    /* The policy saw failed metrics and scaled towards its fallback (7 replicas), within the
     * HPA rate limit; later ticks reach it. */
    assert_true(atomic_load(&w.replicas) > 2);
    for (int i = 0; i < 10 && atomic_load(&w.replicas) != 7; i++)
        swarm_reconcile_step(r, now += 16 * SEC, &next);
    assert_int_equal(atomic_load(&w.replicas), 7);
    swarm_policy_decision d;
    memset(&d, 0, sizeof d);
    d.size = sizeof d;
    assert_int_equal(swarm_reconcile_last_decision(r, &d), 0);
    assert_true(d.flags & SWARM_DECISION_FALLBACK);
    swarm_reconcile_stats st = rstats(r);
    assert_int_equal(st.decisions, st.ticks);
    assert_int_equal(st.observe_errors, st.ticks - 1);
    swarm_reconcile_destroy(r);
    swarm_policy_destroy(pol);
}

static void test_reconcile_fail_after_skips_early_failures(void **state)
{
    (void)state;
    world w;
    memset(&w, 0, sizeof w);
    atomic_store(&w.replicas, 1);
    atomic_store(&w.queued, 5);
    swarm_policy *pol = make_policy(0, 0);
    swarm_reconcile_opts o;
    swarm_reconcile_opts_init(&o);
    o.policy = pol;
    o.observe = w_observe;
    o.actuate = w_actuate;
    o.user = &w;
    o.fail_after = 3;
    swarm_reconcile *r = NULL;
    assert_int_equal(swarm_reconcile_create(&r, &o), 0);
    int64_t now = SEC, next = 0;
    assert_int_equal(swarm_reconcile_step(r, now, &next), 0);
    atomic_store(&w.observe_fail, SWARM_EUNAVAILABLE);
    for (int i = 0; i < 3; i++)
        swarm_reconcile_step(r, now += SEC, &next);
    swarm_reconcile_stats st = rstats(r);
    assert_int_equal(st.decisions, 2); /* the good one and the third failure */
    swarm_reconcile_destroy(r);
    swarm_policy_destroy(pol);
}

static void test_reconcile_thread_kick_and_stop_latency(void **state)
{
    (void)state;
    world w;
    memset(&w, 0, sizeof w);
    swarm_policy *pol = make_policy(0, 0);
    swarm_reconcile *r = make_loop(&w, pol, 3600 * SEC, 0); /* would sleep an hour */
    assert_int_equal(swarm_reconcile_start(r), 0);
    assert_int_equal(swarm_reconcile_start(r), SWARM_ESTATE);
    assert_int_equal(swarm_reconcile_step(r, 0, NULL), SWARM_ESTATE);
    int64_t end = swarm_now_ns() + 10 * SEC;
    while (rstats(r).ticks < 1 && swarm_now_ns() < end) /* first tick at once */
        sleep_ns(MS);
    assert_int_equal(rstats(r).ticks, 1);
    assert_int_equal(rstats(r).running, 1);
    swarm_reconcile_kick(r);
    while (rstats(r).ticks < 2 && swarm_now_ns() < end)
        sleep_ns(MS);
    assert_int_equal(rstats(r).ticks, 2);
    /* Stop wakes the hour-long sleep at once. */
    int64_t t0 = swarm_now_ns();
    assert_int_equal(swarm_reconcile_stop(r), 0);
    assert_true(swarm_now_ns() - t0 < 2 * SEC);
    assert_int_equal(swarm_reconcile_stop(r), 0); /* idempotent */
    assert_int_equal(rstats(r).running, 0);
    /* Stepping by hand works again, and so does a restart. */
    assert_int_equal(swarm_reconcile_step(r, swarm_now_ns(), NULL), 0);
    assert_int_equal(swarm_reconcile_start(r), 0);
    swarm_reconcile_destroy(r); /* stops */
    swarm_policy_destroy(pol);
}

static void test_reconcile_thread_interval_ticks(void **state)
{
    (void)state;
    world w;
    memset(&w, 0, sizeof w);
    swarm_policy *pol = make_policy(0, 0);
    swarm_reconcile_opts o;
    swarm_reconcile_opts_init(&o);
    o.policy = pol;
    o.observe = w_observe;
    o.actuate = w_actuate;
    o.user = &w;
    o.interval_ns = 5 * MS;
    o.jitter = 0.2;
    o.sliding = 1;
    swarm_reconcile *r = NULL;
    assert_int_equal(swarm_reconcile_create(&r, &o), 0);
    assert_int_equal(swarm_reconcile_start(r), 0);
    int64_t end = swarm_now_ns() + 10 * SEC;
    while (rstats(r).ticks < 10 && swarm_now_ns() < end)
        sleep_ns(MS);
    assert_true(rstats(r).ticks >= 10);
    assert_int_equal(swarm_reconcile_stop(r), 0);
    swarm_reconcile_stats st = rstats(r);
    assert_true(st.max_lag_ns >= 0);
    assert_true(st.last_step_ns >= 0);
    swarm_reconcile_destroy(r);
    swarm_policy_destroy(pol);
}

static void test_reconcile_stop_from_callback_refused(void **state)
{
    (void)state;
    world w;
    memset(&w, 0, sizeof w);
    atomic_store(&w.queued, 30);
    atomic_store(&w.stop_from_callback, 1);
    atomic_store(&w.stop_rc, 1);
    swarm_policy *pol = make_policy(0, 0);
    swarm_reconcile *r = make_loop(&w, pol, 3600 * SEC, 0);
    assert_int_equal(swarm_reconcile_start(r), 0);
    int64_t end = swarm_now_ns() + 10 * SEC;
    while (atomic_load(&w.actuates) < 1 && swarm_now_ns() < end)
        sleep_ns(MS);
    assert_int_equal(atomic_load(&w.actuates), 1);
    while (atomic_load(&w.stop_rc) == 1 && swarm_now_ns() < end)
        sleep_ns(MS);
    assert_int_equal(atomic_load(&w.stop_rc), SWARM_ESTATE);
    assert_int_equal(swarm_reconcile_stop(r), 0);
    swarm_reconcile_destroy(r);
    swarm_policy_destroy(pol);
}

/* ---- issue 14: hostile values --------------------------------------------------------------- */

/* Item 8: with factor 1 (or base 0) the backoff never reached the cap and every step looped over
 * the whole error streak: 300k failing steps cost ~4.5e10 multiplications (minutes; meson's
 * timeout failed this test). Now a step costs the same whatever the streak. */
static void run_long_streak(int64_t base, double factor, int64_t want_delay)
{
    world w;
    memset(&w, 0, sizeof w);
    atomic_store(&w.observe_fail, SWARM_EUNAVAILABLE);
    swarm_policy *pol = make_policy(0, 0);
    swarm_reconcile_opts o;
    swarm_reconcile_opts_init(&o);
    o.policy = pol;
    o.observe = w_observe;
    o.actuate = w_actuate;
    o.user = &w;
    o.backoff_jitter = -1;
    o.backoff_base_ns = base;
    o.backoff_factor = factor;
    o.backoff_cap_ns = 30 * SEC;
    swarm_reconcile *r = NULL;
    assert_int_equal(swarm_reconcile_create(&r, &o), 0);
    enum { STREAK = 300000 };
    int64_t now = SEC;
    for (int i = 0; i < STREAK; i++)
        assert_int_equal(swarm_reconcile_step(r, now += MS, NULL), SWARM_EUNAVAILABLE);
    swarm_reconcile_stats st = rstats(r);
    assert_int_equal(st.consecutive_errors, STREAK);
    assert_int_equal(st.backoff_ns, want_delay);
    swarm_reconcile_destroy(r);
    swarm_policy_destroy(pol);
}

static void test_reconcile_backoff_step_cost_flat_with_factor_one(void **state)
{
    (void)state;
    run_long_streak(5 * MS, 1.0, 5 * MS);
}

static void test_reconcile_backoff_step_cost_flat_with_base_zero(void **state)
{
    (void)state;
    run_long_streak(0, 2.0, 0);
}

static void test_reconcile_backoff_tiny_factor_grows_to_cap(void **state)
{
    (void)state;
    /* 1.0001^n reaches 6000x (5 ms -> 30 s) after ~87k errors; the old loop re-multiplied from
     * the base each step. */
    run_long_streak(5 * MS, 1.0001, 30 * SEC);
}

/* Item 6: the lag `now - planned` overflowed (UBSan abort; at -O2 a wrapped lag near INT64_MAX
 * was reported). Observe fails throughout so that the policy (which clamps a backwards clock
 * itself) is not involved. */
static void test_reconcile_lag_saturates_on_extreme_times(void **state)
{
    (void)state;
    world w;
    memset(&w, 0, sizeof w);
    atomic_store(&w.observe_fail, SWARM_EUNAVAILABLE);
    swarm_policy *pol = make_policy(0, 0);
    swarm_reconcile *r = make_loop(&w, pol, SEC, 0);
    assert_int_equal(swarm_reconcile_step(r, 1, NULL), SWARM_EUNAVAILABLE);
    assert_int_equal(swarm_reconcile_step(r, INT64_MIN + 5, NULL), SWARM_EUNAVAILABLE);
    swarm_reconcile_stats st = rstats(r);
    assert_true(st.last_lag_ns == 0); /* saturated to INT64_MIN, then "early" */
    assert_true(st.max_lag_ns == 0);
    assert_int_equal(swarm_reconcile_step(r, INT64_MAX, NULL), SWARM_EUNAVAILABLE);
    st = rstats(r);
    assert_true(st.next_tick_ns == INT64_MAX); /* now + backoff saturated */
    swarm_reconcile_destroy(r);
    swarm_policy_destroy(pol);
}

/* ---- issue 10: the actuator's bound and one call that autoscales a pool -------------------- */

static void test_reconcile_clamps_to_actuator_max_with_rule_step(void **state)
{
    (void)state;
    world w;
    memset(&w, 0, sizeof w);
    atomic_store(&w.replicas, 1);
    atomic_store(&w.queued, 1000); /* policy (max 20) wants 20 */
    swarm_policy *pol = make_policy(0, 0);
    swarm_reconcile_opts o;
    swarm_reconcile_opts_init(&o);
    o.policy = pol;
    o.observe = w_observe;
    o.actuate = w_actuate;
    o.user = &w;
    o.max_replicas = 3; /* below the policy's first step (its rate limit allows 4) */
    swarm_reconcile *r = NULL;
    assert_int_equal(swarm_reconcile_create(&r, &o), 0);
    assert_int_equal(swarm_reconcile_step(r, SEC, NULL), 0);
    assert_int_equal(atomic_load(&w.last_desired), 3);
    swarm_policy_decision d;
    memset(&d, 0, sizeof d);
    d.size = sizeof d;
    assert_int_equal(swarm_reconcile_last_decision(r, &d), 0);
    assert_int_equal(d.replicas, 3);
    assert_true(d.n_steps >= 1);
    const swarm_policy_step *last = &d.steps[d.n_steps - 1];
    assert_int_equal(last->rule, SWARM_RULE_MAX);
    assert_true(last->before > 3);
    assert_int_equal(last->after, 3);
    assert_non_null(strstr(d.text, "actuator max 3"));
    assert_non_null(strstr(w.last_text, "actuator max 3"));
    swarm_reconcile_stats st = rstats(r);
    assert_int_equal(st.errors, 0);
    swarm_reconcile_destroy(r);
    o.max_replicas = -1;
    assert_int_equal(swarm_reconcile_create(&r, &o), SWARM_EINVAL);
    swarm_policy_destroy(pol);
}

/* A blocking engine: runs until its request's token fires (a stop deadline) or `release`. */
static _Atomic int engine_release;
static _Atomic int engine_busy;

static int block_infer(void *self, const swarm_request *req, swarm_response *resp)
{
    (void)self;
    atomic_fetch_add(&engine_busy, 1);
    while (!atomic_load(&engine_release)) {
        int rc = swarm_request_should_stop(req);
        if (rc != 0) {
            atomic_fetch_sub(&engine_busy, 1);
            return rc;
        }
        sleep_ns(MS);
    }
    atomic_fetch_sub(&engine_busy, 1);
    return swarm_response_write(resp, "done", 4);
}

typedef struct pool_env {
    swarm_engine *e;
    swarm_chan *ch;
    swarm_pool *p;
    _Atomic uint64_t results;
} pool_env;

static void env_on_result(void *ctx, const swarm_pool_result *r)
{
    (void)r;
    pool_env *env = ctx;
    atomic_fetch_add(&env->results, 1);
}

static void env_open(pool_env *env, uint32_t workers, uint32_t max_workers)
{
    memset(env, 0, sizeof *env);
    atomic_store(&engine_release, 0);
    atomic_store(&engine_busy, 0);
    swarm_engine_ops ops;
    memset(&ops, 0, sizeof ops);
    ops.version = SWARM_ENGINE_OPS_VERSION;
    ops.infer = block_infer;
    assert_int_equal(swarm_engine_create(&env->e, &ops, NULL, NULL), 0);
    swarm_chan_opts co;
    swarm_chan_opts_init(&co);
    co.capacity = 256;
    co.elem_size = sizeof(swarm_task);
    assert_int_equal(swarm_chan_create(&env->ch, &co), 0);
    swarm_pool_opts po;
    swarm_pool_opts_init(&po);
    po.input = env->ch;
    po.engine = env->e;
    po.workers = workers;
    po.max_workers = max_workers;
    po.on_result = env_on_result;
    po.result_ctx = env;
    assert_int_equal(swarm_pool_create(&env->p, &po), 0);
    swarm_engine_destroy(env->e); /* the pool holds its own reference */
}

static void env_send(pool_env *env, int n)
{
    for (int i = 0; i < n; i++) {
        swarm_task t;
        memset(&t, 0, sizeof t);
        t.id = (uint64_t)i;
        assert_int_equal(swarm_pool_submit(env->p, &t, SWARM_WAIT_FOREVER), 0);
    }
}

static void env_close(pool_env *env)
{
    atomic_store(&engine_release, 1);
    assert_int_equal(swarm_pool_stop(env->p, SWARM_WAIT_FOREVER, NULL, 0, NULL), 0);
    swarm_pool_destroy(env->p);
    swarm_chan_destroy(env->ch);
}

static swarm_policy_obs pool_obs(swarm_pool *p, double tpw)
{
    swarm_policy_obs obs;
    memset(&obs, 0, sizeof obs);
    obs.size = sizeof obs;
    assert_int_equal(swarm_pool_observe(p, tpw, 0, &obs), 0);
    return obs;
}

/* Trap 1: after resize(1) with 4 busy workers the 0.1.0 stats said target 1, ready 4, which
 * swarm_policy_decide() rejects. The observation excludes retiring workers. */
static void test_reconcile_pool_observation_excludes_retiring(void **state)
{
    (void)state;
    pool_env env;
    env_open(&env, 4, 8);
    env_send(&env, 4);
    while (atomic_load(&engine_busy) < 4)
        sleep_ns(MS);
    assert_int_equal(swarm_pool_resize(env.p, 1), 0);
    swarm_pool_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    assert_int_equal(swarm_pool_get_stats(env.p, &st), 0);
    assert_int_equal(st.target, 1);
    assert_int_equal(st.ready, 4); /* the raw stats still count the retiring workers */
    swarm_policy_obs obs = pool_obs(env.p, 1);
    assert_int_equal(obs.current_replicas, 1);
    assert_int_equal(obs.ready_replicas, 1);
    assert_int_equal(obs.starting_replicas, 0);
    assert_int_equal(obs.n_metrics, 1);
    assert_int_equal(obs.metrics[0].kind, SWARM_METRIC_TOTAL);
    assert_true(obs.metrics[0].in_flight == 4.0);
    assert_true(obs.metrics[0].value == 0.0);
    assert_int_equal(obs.arrivals, 4);
    assert_int_equal(obs.concurrency, 1);
    swarm_policy *pol = make_policy(0, 0);
    swarm_policy_decision d;
    memset(&d, 0, sizeof d);
    d.size = sizeof d;
    assert_int_equal(swarm_policy_decide(pol, SEC, &obs, &d), 0);
    swarm_policy_destroy(pol);
    /* A 0.1-sized observation gets only the 0.1 fields. */
    swarm_policy_obs v1;
    memset(&v1, 0xab, sizeof v1);
    v1.size = (uint32_t)SWARM_POLICY_OBS_V1_SIZE;
    assert_int_equal(swarm_pool_observe(env.p, 1, 0, &v1), 0);
    assert_int_equal(v1.size, SWARM_POLICY_OBS_V1_SIZE);
    assert_int_equal(v1.arrivals, 0xababababababababull);
    v1.size = 8;
    assert_int_equal(swarm_pool_observe(env.p, 1, 0, &v1), SWARM_EINVAL);
    assert_int_equal(swarm_pool_observe(env.p, -1, 0, &obs), SWARM_EINVAL);
    assert_int_equal(swarm_pool_observe(env.p, 1, 0.0 / 0.0, &obs), SWARM_EINVAL);
    assert_int_equal(swarm_pool_observe(NULL, 1, 0, &obs), SWARM_EINVAL);
    env_close(&env);
}

/* Load signals: cumulative arrivals, completions and service time. */
static void test_reconcile_pool_observation_load_signals(void **state)
{
    (void)state;
    pool_env env;
    env_open(&env, 2, 8);
    atomic_store(&engine_release, 1);
    env_send(&env, 50);
    while (atomic_load(&env.results) < 50)
        sleep_ns(MS);
    swarm_policy_obs obs = pool_obs(env.p, 0);
    assert_int_equal(obs.arrivals, 50);
    assert_int_equal(obs.completions, 50);
    assert_true(obs.service_total_s > 0);
    assert_true(obs.metrics[0].target == 1.0); /* 0: the concurrency */
    env_close(&env);
}

/* Traps 1 + 2 through the one call: policy max 100 vs pool max 4 must not make resize fail
 * (SWARM_ERANGE) and the loop back off; the clamp is explained. */
static void test_reconcile_create_for_pool_clamps_and_explains(void **state)
{
    (void)state;
    pool_env env;
    env_open(&env, 1, 3);
    env_send(&env, 60);
    while (atomic_load(&engine_busy) < 1) /* ready, not starting (pending capacity) */
        sleep_ns(MS);
    swarm_policy_opts po;
    swarm_policy_opts_init(&po);
    po.mode = SWARM_POLICY_KEDA; /* max 100 by default */
    swarm_policy *pol = NULL;
    assert_int_equal(swarm_policy_create(&pol, &po), 0);
    swarm_reconcile_pool_opts ro;
    swarm_reconcile_pool_opts_init(&ro);
    ro.pool = env.p;
    ro.policy = pol;
    ro.target_per_worker = 1;
    ro.manual = 1;
    swarm_reconcile *r = NULL;
    assert_int_equal(swarm_reconcile_create_for_pool(&r, &ro), 0);
    assert_int_equal(swarm_reconcile_step(r, SEC, NULL), 0);
    assert_int_equal(swarm_pool_target(env.p), 3);
    swarm_reconcile_stats st = rstats(r);
    assert_int_equal(st.errors, 0);
    assert_int_equal(st.actuations, 1);
    swarm_policy_decision d;
    memset(&d, 0, sizeof d);
    d.size = sizeof d;
    assert_int_equal(swarm_reconcile_last_decision(r, &d), 0);
    assert_int_equal(d.replicas, 3);
    assert_int_equal(d.steps[d.n_steps - 1].rule, SWARM_RULE_MAX);
    assert_non_null(strstr(d.text, "actuator max 3"));
    /* Invalid arguments. */
    swarm_reconcile *bad = NULL;
    assert_int_equal(swarm_reconcile_create_for_pool(NULL, &ro), SWARM_EINVAL);
    assert_int_equal(swarm_reconcile_create_for_pool(&bad, NULL), SWARM_EINVAL);
    ro.target_per_worker = -1;
    assert_int_equal(swarm_reconcile_create_for_pool(&bad, &ro), SWARM_EINVAL);
    ro.target_per_worker = 1;
    ro.policy = NULL;
    assert_int_equal(swarm_reconcile_create_for_pool(&bad, &ro), SWARM_EINVAL);
    ro.policy = pol;
    swarm_reconcile_opts lo;
    swarm_reconcile_opts_init(&lo);
    lo.interval_ns = -5;
    ro.loop = &lo;
    assert_int_equal(swarm_reconcile_create_for_pool(&bad, &ro), SWARM_EINVAL);
    assert_null(bad);
    swarm_reconcile_destroy(r);
    env_close(&env);
    swarm_policy_destroy(pol);
}

/* Threaded: the loop scales the pool up under a backlog, and back to zero once it is gone. */
static void test_reconcile_create_for_pool_threaded_up_and_down(void **state)
{
    (void)state;
    pool_env env;
    env_open(&env, 0, 6);
    swarm_policy_opts po;
    swarm_policy_opts_init(&po);
    po.mode = SWARM_POLICY_KEDA;
    po.cooldown_ns = 50 * MS;
    po.scale_down.window_ns = -1; /* no stabilization: scale down at once */
    swarm_policy *pol = NULL;
    assert_int_equal(swarm_policy_create(&pol, &po), 0);
    swarm_reconcile_opts lo;
    swarm_reconcile_opts_init(&lo);
    lo.interval_ns = 5 * MS;
    swarm_reconcile_pool_opts ro;
    swarm_reconcile_pool_opts_init(&ro);
    ro.pool = env.p;
    ro.policy = pol;
    ro.loop = &lo;
    swarm_reconcile *r = NULL;
    assert_int_equal(swarm_reconcile_create_for_pool(&r, &ro), 0);
    env_send(&env, 20);
    int64_t end = swarm_now_ns() + 20 * SEC;
    while (swarm_pool_target(env.p) < 6 && swarm_now_ns() < end)
        sleep_ns(MS);
    assert_int_equal(swarm_pool_target(env.p), 6);
    atomic_store(&engine_release, 1);
    while (swarm_pool_target(env.p) > 0 && swarm_now_ns() < end)
        sleep_ns(MS);
    assert_int_equal(swarm_pool_target(env.p), 0);
    assert_int_equal(atomic_load(&env.results), 20);
    swarm_reconcile_stats st = rstats(r);
    assert_int_equal(st.running, 1);
    assert_int_equal(st.actuate_errors, 0);
    assert_int_equal(st.decide_errors, 0);
    swarm_reconcile_destroy(r);
    env_close(&env);
    swarm_policy_destroy(pol);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SWARM_TEST(test_reconcile_create_invalid_args),
        SWARM_TEST(test_reconcile_step_interval_and_actuate_on_change),
        SWARM_TEST(test_reconcile_jitter_bounds),
        SWARM_TEST(test_reconcile_lag_and_kick),
        SWARM_TEST(test_reconcile_backoff_grows_caps_and_resets),
        SWARM_TEST(test_reconcile_backoff_jitter_bounds),
        SWARM_TEST(test_reconcile_observe_failures_reach_policy_fallback),
        SWARM_TEST(test_reconcile_fail_after_skips_early_failures),
        SWARM_TEST(test_reconcile_thread_kick_and_stop_latency),
        SWARM_TEST(test_reconcile_thread_interval_ticks),
        SWARM_TEST(test_reconcile_stop_from_callback_refused),
        SWARM_TEST(test_reconcile_backoff_step_cost_flat_with_factor_one),
        SWARM_TEST(test_reconcile_backoff_step_cost_flat_with_base_zero),
        SWARM_TEST(test_reconcile_backoff_tiny_factor_grows_to_cap),
        SWARM_TEST(test_reconcile_lag_saturates_on_extreme_times),
        SWARM_TEST(test_reconcile_clamps_to_actuator_max_with_rule_step),
        SWARM_TEST(test_reconcile_pool_observation_excludes_retiring),
        SWARM_TEST(test_reconcile_pool_observation_load_signals),
        SWARM_TEST(test_reconcile_create_for_pool_clamps_and_explains),
        SWARM_TEST(test_reconcile_create_for_pool_threaded_up_and_down),
    };
    return cmocka_run_group_tests_name("reconcile", tests, NULL, NULL);
}
