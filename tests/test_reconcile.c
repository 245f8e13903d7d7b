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

#define MS 1000000LL
#define SEC 1000000000LL

/* ---- fake world ---------------------------------------------------------------------------- */

typedef struct world {
    _Atomic int32_t replicas;  /* the actual count (what actuate sets) */
    _Atomic int32_t queued;    /* backlog observed */
    _Atomic int observe_fail;  /* observe returns this (0: ok) */
    _Atomic int actuate_fail;  /* actuate returns this (0: ok) */
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

static void sleep_ns(int64_t ns)
{
    struct timespec ts = {(time_t)(ns / SEC), (long)(ns % SEC)};
    nanosleep(&ts, NULL);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reconcile_create_invalid_args),
        cmocka_unit_test(test_reconcile_step_interval_and_actuate_on_change),
        cmocka_unit_test(test_reconcile_jitter_bounds),
        cmocka_unit_test(test_reconcile_lag_and_kick),
        cmocka_unit_test(test_reconcile_backoff_grows_caps_and_resets),
        cmocka_unit_test(test_reconcile_backoff_jitter_bounds),
        cmocka_unit_test(test_reconcile_observe_failures_reach_policy_fallback),
        cmocka_unit_test(test_reconcile_fail_after_skips_early_failures),
        cmocka_unit_test(test_reconcile_thread_kick_and_stop_latency),
        cmocka_unit_test(test_reconcile_thread_interval_ticks),
        cmocka_unit_test(test_reconcile_stop_from_callback_refused),
    };
    return cmocka_run_group_tests_name("reconcile", tests, NULL, NULL);
}
