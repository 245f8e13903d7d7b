/* SPDX-License-Identifier: MIT */
/* Unit tests for SWARM_POLICY_LOAD (src/policy_load.c): the Erlang C helpers against closed
 * forms, the rate and service-time estimator (first decision, counter resets, 0.1 callers), the
 * direction rules (up at once, down only after the window and outside the band, never a
 * reversal on noisy steady load), explanations, state export/import and bad input. Pure
 * decide() calls on made-up times: no sleeps, no timing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <swarm/swarm.h>

#include "helpers.h"

#include "policy_internal.h"

#define S INT64_C(1000000000)

static swarm_policy *make_load(const swarm_policy_opts *o)
{
    swarm_policy *p = NULL;
    assert_int_equal(swarm_policy_create(&p, o), 0);
    return p;
}

static swarm_policy_opts load_opts(void)
{
    swarm_policy_opts o;
    swarm_policy_opts_init(&o);
    o.mode = SWARM_POLICY_LOAD;
    o.max_replicas = 200;
    return o;
}

/* A host's view: cumulative counters plus the backlog in metrics[0]. */
typedef struct host {
    uint64_t arrivals, completions;
    double service_total;
    int32_t cur, ready, starting;
    double queued, in_flight;
    uint64_t rng;
} host;

static swarm_policy_obs host_obs(const host *h)
{
    swarm_policy_obs ob;
    memset(&ob, 0, sizeof ob);
    ob.size = sizeof ob;
    ob.current_replicas = h->cur;
    ob.ready_replicas = h->ready;
    ob.starting_replicas = h->starting;
    ob.n_metrics = 1;
    ob.metrics[0].kind = SWARM_METRIC_TOTAL;
    ob.metrics[0].value = h->queued;
    ob.metrics[0].in_flight = h->in_flight;
    ob.metrics[0].target = 1;
    ob.arrivals = h->arrivals;
    ob.completions = h->completions;
    ob.service_total_s = h->service_total;
    ob.concurrency = 1;
    return ob;
}

static swarm_policy_decision decide(swarm_policy *p, int64_t now, const swarm_policy_obs *ob)
{
    swarm_policy_decision d;
    memset(&d, 0, sizeof d);
    d.size = sizeof d;
    assert_int_equal(swarm_policy_decide(p, now, ob, &d), 0);
    return d;
}

static const swarm_policy_step *find_step(const swarm_policy_decision *d, uint32_t rule)
{
    for (uint32_t i = 0; i < d->n_steps; i++)
        if (d->steps[i].rule == rule)
            return &d->steps[i];
    return NULL;
}

/* Poisson(mean) by inversion with a xorshift stream (deterministic per seed). */
static uint64_t poisson(uint64_t *x, double mean)
{
    double l = exp(-mean), prod = 1;
    uint64_t k = 0;
    for (;;) {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        prod *= ((double)(*x >> 11) + 0.5) / 9007199254740992.0;
        if (prod < l)
            return k;
        k++;
    }
}

/* One second of a steady system: @rate arrivals (Poisson when noisy), as many completions at
 * @svc seconds each, the host actuating at once (ready = current). */
static swarm_policy_decision tick(swarm_policy *p, host *h, int64_t t, double rate, double svc,
                                  int noisy)
{
    uint64_t n = noisy ? poisson(&h->rng, rate) : (uint64_t)rate;
    h->arrivals += n;
    h->completions += n;
    h->service_total += (double)n * svc;
    h->in_flight = rate * svc;
    swarm_policy_obs ob = host_obs(h);
    swarm_policy_decision d = decide(p, t * S, &ob);
    h->cur = h->ready = d.replicas;
    return d;
}

/* ---- Erlang C ------------------------------------------------------------------------------ */

static double erlang_c_exact(int64_t c, double a)
{
    double b = 1;
    for (int64_t n = 1; n <= c; n++)
        b = a * b / ((double)n + a * b);
    return (double)c * b / ((double)c - a * (1 - b));
}

static void test_policy_load_erlang_c_closed_forms(void **state)
{
    (void)state;
    /* M/M/1: P(wait) = rho. M/M/2: a^2 / (2 + a). */
    assert_true(fabs(swarm__erlang_c(1, 0.7) - 0.7) < 1e-12);
    assert_true(fabs(swarm__erlang_c(2, 1.5) - 1.5 * 1.5 / 3.5) < 1e-12);
    /* The textbook table value: 8 Erlangs on 10 servers wait with probability 0.4092. */
    assert_true(fabs(swarm__erlang_c(10, 8) - 0.40918015) < 1e-7);
    /* Large loads start the recurrence near a: it must agree with the full recurrence. */
    double want = erlang_c_exact(430, 400);
    assert_true(fabs(swarm__erlang_c(430, 400) - want) < 1e-9 * want);
    want = erlang_c_exact(5100, 5000);
    assert_true(fabs(swarm__erlang_c(5100, 5000) - want) < 1e-9 * want);
    /* Overload waits surely; no load never waits. */
    assert_true(swarm__erlang_c(5, 5) == 1);
    assert_true(swarm__erlang_c(3, 0) == 0);
}

static void test_policy_load_erlang_servers_is_the_fewest(void **state)
{
    (void)state;
    static const struct {
        double a, t_over_s, tail;
    } cases[] = {{14, 10, 0.01},    {14, 1, 0.01},     {0.3, 2, 0.05},
                 {400, 0.5, 0.001}, {2500, 0.2, 0.01}, {8, 0.01, 0.2}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double a = cases[i].a, t = cases[i].t_over_s, tail = cases[i].tail;
        int64_t c = swarm__erlang_servers(a, t, tail, 100000);
        assert_true((double)c > a);
        double pc = swarm__erlang_c(c, a) * exp(-((double)c - a) * t);
        assert_true(pc <= tail * (1 + 1e-9));
        if ((double)(c - 1) > a) {
            double pb = swarm__erlang_c(c - 1, a) * exp(-((double)(c - 1) - a) * t);
            assert_true(pb > tail);
        }
    }
    assert_int_equal(swarm__erlang_servers(0, 1, 0.01, 10), 0);
    assert_int_equal(swarm__erlang_servers(50, 1, 0.01, 10), 11); /* beyond the limit */
}

/* ---- sizing -------------------------------------------------------------------------------- */

static void test_policy_load_sizes_steady_load_by_erlang_c(void **state)
{
    (void)state;
    swarm_policy_opts o = load_opts();
    swarm_policy *p = make_load(&o);
    host h = {.cur = 1, .ready = 1, .rng = 7};
    swarm_policy_decision d;
    for (int t = 0; t < 120; t++)
        d = tick(p, &h, t, 140, 0.1, 0);
    /* 140 rps x 0.1 s = 14 Erlangs; with a 1 s target at p99 and 100 ms service, Erlang C
     * needs 15 servers; the rate's noise margin (2 sd of the 5 s average) makes it 16. */
    assert_int_equal(d.replicas, 16);
    const swarm_policy_step *st = find_step(&d, SWARM_RULE_LOAD_ERLANG);
    assert_non_null(st);
    assert_int_equal(st->before, 15); /* Little's law: ceil(14.8) */
    assert_int_equal(st->after, 16);
    st = find_step(&d, SWARM_RULE_LOAD_SERVICE);
    assert_non_null(st);
    assert_int_equal(st->metric, 1); /* measured, not the prior */
    assert_true(llabs(st->value - 100000000) < 1000);
    st = find_step(&d, SWARM_RULE_LOAD_RATE);
    assert_non_null(st);
    assert_true(st->value > 140000 && st->value < 148000);
    assert_int_equal(strncmp(d.text, "load 16->16", 11), 0);
    swarm_policy_destroy(p);
}

static void test_policy_load_first_decision_uses_littles_law(void **state)
{
    (void)state;
    swarm_policy_opts o = load_opts();
    swarm_policy *p = make_load(&o);
    host h = {.cur = 3,
              .ready = 3,
              .arrivals = 5000,
              .completions = 4990,
              .service_total = 499,
              .in_flight = 10};
    swarm_policy_obs ob = host_obs(&h);
    swarm_policy_decision d = decide(p, 0, &ob);
    /* No rate yet: the 10 in service are the offered load (10 Erlangs). */
    assert_non_null(find_step(&d, SWARM_RULE_LOAD_NO_SIGNAL));
    assert_true(d.replicas >= 11 && d.replicas <= 14);
    swarm_policy_destroy(p);

    /* A 0.1 caller (no counters at all) gets the same fallback every time. */
    p = make_load(&o);
    ob.size = (uint32_t)SWARM_POLICY_OBS_V1_SIZE;
    for (int t = 0; t < 5; t++) {
        d = decide(p, t * S, &ob);
        assert_non_null(find_step(&d, SWARM_RULE_LOAD_NO_SIGNAL));
    }
    swarm_policy_destroy(p);
}

static void test_policy_load_scales_up_at_once_and_drains(void **state)
{
    (void)state;
    swarm_policy_opts o = load_opts();
    swarm_policy *p = make_load(&o);
    host h = {.cur = 1, .ready = 1, .rng = 3};
    swarm_policy_decision d;
    for (int t = 0; t < 60; t++)
        d = tick(p, &h, t, 20, 0.1, 0);
    int32_t before = d.replicas;
    assert_true(before >= 3 && before <= 6);
    /* x10 step: the very next decision sizes for 200 rps (20 Erlangs: at least 21). */
    h.arrivals += 200;
    h.queued = 150;
    swarm_policy_obs ob = host_obs(&h);
    d = decide(p, 60 * S, &ob);
    assert_true(d.replicas >= 21);
    assert_non_null(find_step(&d, SWARM_RULE_LOAD_DRAIN));
    /* A large backlog adds what drains it within the drain time (10 s): 5000 x 0.1 / 10. */
    h.cur = h.ready = d.replicas;
    h.arrivals += 200;
    h.queued = 5000;
    ob = host_obs(&h);
    d = decide(p, 61 * S, &ob);
    const swarm_policy_step *st = find_step(&d, SWARM_RULE_LOAD_DRAIN);
    assert_non_null(st);
    assert_true(st->after - st->before >= 40);
    assert_int_equal(st->value, 5000);
    swarm_policy_destroy(p);
}

static void test_policy_load_scale_down_waits_for_the_window(void **state)
{
    (void)state;
    swarm_policy_opts o = load_opts();
    o.load_down_window_ns = 60 * S;
    swarm_policy *p = make_load(&o);
    host h = {.cur = 1, .ready = 1};
    swarm_policy_decision d;
    for (int t = 0; t < 100; t++)
        d = tick(p, &h, t, 200, 0.1, 0);
    int32_t high = d.replicas;
    /* The load drops to a tenth: nothing moves for the window (60 s from the last high need;
     * the rate average takes a few seconds to fall), then one step down. */
    int32_t first_down = -1;
    for (int t = 100; t < 260; t++) {
        d = tick(p, &h, t, 20, 0.1, 0);
        if (d.replicas < high && first_down < 0)
            first_down = t;
        if (first_down < 0 && t > 101)
            assert_non_null(find_step(&d, SWARM_RULE_LOAD_HYSTERESIS));
    }
    assert_true(first_down >= 160);
    assert_true(first_down <= 185);
    assert_true(d.replicas >= 3 && d.replicas <= 6);
    swarm_policy_destroy(p);
}

static void test_policy_load_noisy_steady_load_never_flaps(void **state)
{
    (void)state;
    swarm_policy_opts o = load_opts();
    swarm_policy *p = make_load(&o);
    for (int k = 0; k < 3; k++) {
        double rate = k == 0 ? 5 : k == 1 ? 50 : 140;
        swarm_policy_reset(p);
        host h = {.cur = 1, .ready = 1, .rng = 0x9e3779b97f4a7c15ull + (uint64_t)k};
        int32_t last = -1;
        int changes = 0, reversals = 0, last_dir = 0, last_t = -1000;
        for (int t = 0; t < 3600; t++) {
            swarm_policy_decision d = tick(p, &h, t, rate, 0.1, 1);
            if (last >= 0 && d.replicas != last) {
                int dir = d.replicas > last ? 1 : -1;
                if (last_dir != 0 && dir != last_dir && t - last_t <= 60)
                    reversals++;
                last_dir = dir;
                last_t = t;
                if (t > 300)
                    changes++;
            }
            last = d.replicas;
        }
        /* Poisson noise (even 5 rps) never reverses a change within a minute, and moves the
         * count at most a couple of times an hour once settled: the rate's noise margin, the
         * band, the window and the up hold absorb it. */
        assert_int_equal(reversals, 0);
        assert_true(changes <= 2);
    }
    swarm_policy_destroy(p);
}

static void test_policy_load_up_is_never_reversed_within_the_hold(void **state)
{
    (void)state;
    swarm_policy_opts o = load_opts();
    swarm_policy *p = make_load(&o);
    host h = {.cur = 1, .ready = 1};
    swarm_policy_decision d;
    for (int t = 0; t < 100; t++)
        d = tick(p, &h, t, 20, 0.1, 0);
    int32_t base = d.replicas;
    d = tick(p, &h, 100, 300, 0.1, 0); /* a burst: up at once */
    int32_t high = d.replicas;
    assert_true(high > base);
    /* It vanishes the next second: the count holds for the 65 s hold (the 30 s down window
     * alone would let it go after 30 s), then comes down. */
    for (int t = 101; t < 165; t++) {
        d = tick(p, &h, t, 20, 0.1, 0);
        assert_int_equal(d.replicas, high);
    }
    for (int t = 165; t < 200; t++)
        d = tick(p, &h, t, 20, 0.1, 0);
    assert_true(d.replicas < high);
    swarm_policy_destroy(p);
    /* Negative: no hold; only the down window (30 s) applies. */
    o.load_up_hold_ns = -1;
    p = make_load(&o);
    h = (host){.cur = 1, .ready = 1};
    for (int t = 0; t < 100; t++)
        tick(p, &h, t, 20, 0.1, 0);
    tick(p, &h, 100, 300, 0.1, 0);
    for (int t = 101; t < 140; t++)
        d = tick(p, &h, t, 20, 0.1, 0);
    assert_true(d.replicas < high);
    swarm_policy_destroy(p);
}

static void test_policy_load_idle_goes_to_min_after_the_window(void **state)
{
    (void)state;
    for (int min = 0; min < 3; min += 2) {
        swarm_policy_opts o = load_opts();
        o.min_replicas = min;
        swarm_policy *p = make_load(&o);
        host h = {.cur = 1, .ready = 1};
        swarm_policy_decision d;
        for (int t = 0; t < 30; t++)
            d = tick(p, &h, t, 50, 0.1, 0);
        h.in_flight = 0;
        for (int t = 30; t < 300; t++) {
            swarm_policy_obs ob = host_obs(&h);
            d = decide(p, t * S, &ob);
            h.cur = h.ready = d.replicas;
        }
        assert_int_equal(d.replicas, min);
        if (min == 0)
            assert_non_null(find_step(&d, SWARM_RULE_LOAD_IDLE));
        swarm_policy_destroy(p);
    }
}

static void test_policy_load_starting_replicas_are_pending_capacity(void **state)
{
    (void)state;
    swarm_policy_opts o = load_opts();
    swarm_policy *p = make_load(&o);
    host h = {.cur = 1, .ready = 1};
    swarm_policy_decision d;
    for (int t = 0; t < 30; t++)
        d = tick(p, &h, t, 100, 0.1, 0);
    /* The count asked for is there, most of it still starting: no further order. */
    int32_t want = d.replicas;
    h.cur = want;
    h.ready = 2;
    h.starting = want - 2;
    h.arrivals += 100;
    swarm_policy_obs ob = host_obs(&h);
    d = decide(p, 30 * S, &ob);
    assert_int_equal(d.replicas, want);
    const swarm_policy_step *st = find_step(&d, SWARM_RULE_PENDING_CAPACITY);
    assert_non_null(st);
    assert_int_equal(st->value, want - 2);
    swarm_policy_destroy(p);
}

static void test_policy_load_counter_reset_rebaselines(void **state)
{
    (void)state;
    swarm_policy_opts o = load_opts();
    swarm_policy *p = make_load(&o);
    host h = {.cur = 1, .ready = 1};
    swarm_policy_decision d;
    for (int t = 0; t < 60; t++)
        d = tick(p, &h, t, 100, 0.1, 0);
    int32_t steady = d.replicas;
    /* The host restarted its channel and pool: the counters start again from small values. */
    h.arrivals = 100;
    h.completions = 100;
    h.service_total = 10;
    swarm_policy_obs ob = host_obs(&h);
    d = decide(p, 60 * S, &ob);
    assert_non_null(find_step(&d, SWARM_RULE_LOAD_RESET));
    assert_int_equal(d.replicas, steady); /* the estimates so far stay */
    for (int t = 61; t < 90; t++)
        d = tick(p, &h, t, 100, 0.1, 0);
    assert_int_equal(d.replicas, steady);
    swarm_policy_destroy(p);
}

static void test_policy_load_failed_backlog_never_scales_down(void **state)
{
    (void)state;
    swarm_policy_opts o = load_opts();
    o.load_down_window_ns = 10 * S;
    swarm_policy *p = make_load(&o);
    host h = {.cur = 40, .ready = 40};
    swarm_policy_decision d;
    for (int t = 0; t < 60; t++) {
        h.arrivals += 10;
        h.completions += 10;
        h.service_total += 1;
        swarm_policy_obs ob = host_obs(&h);
        ob.metrics[0].failed = 1;
        d = decide(p, t * S, &ob);
        assert_int_equal(d.replicas, 40);
    }
    assert_non_null(find_step(&d, SWARM_RULE_PARTIAL_METRICS));
    assert_non_null(find_step(&d, SWARM_RULE_METRIC_FAILED));
    swarm_policy_destroy(p);
}

static void test_policy_load_export_import_continues_identically(void **state)
{
    (void)state;
    swarm_policy_opts o = load_opts();
    swarm_policy *a = make_load(&o);
    host h = {.cur = 1, .ready = 1, .rng = 11};
    for (int t = 0; t < 200; t++)
        tick(a, &h, t, t < 100 ? 150 : 30, 0.12, 1);
    size_t n = swarm_policy_state_size(a);
    unsigned char *buf = malloc(n);
    assert_non_null(buf);
    size_t w = 0;
    assert_int_equal(swarm_policy_export_state(a, buf, n, &w), 0);
    assert_int_equal(w, n);
    swarm_policy *b = make_load(&o);
    assert_int_equal(swarm_policy_import_state(b, buf, n), 0);
    host hb = h;
    for (int t = 200; t < 400; t++) {
        swarm_policy_decision da = tick(a, &h, t, 40, 0.12, 1);
        swarm_policy_decision db = tick(b, &hb, t, 40, 0.12, 1);
        assert_memory_equal(&da, &db, sizeof da);
    }
    /* Import refuses estimator values decide() never produces. */
    swarm__load_state st;
    memset(&st, 0, sizeof st);
    assert_int_equal(swarm__load_state_check(&st), 0);
    st.rate = -1;
    assert_int_equal(swarm__load_state_check(&st), -1);
    st.rate = 5;
    st.svc_s = NAN;
    assert_int_equal(swarm__load_state_check(&st), -1);
    st.svc_s = 0;
    st.has_svc = 1;
    assert_int_equal(swarm__load_state_check(&st), -1);
    swarm_policy_destroy(a);
    swarm_policy_destroy(b);
    free(buf);
}

static void test_policy_load_validates_opts(void **state)
{
    (void)state;
    swarm_policy *p = NULL;
    swarm_policy_opts o = load_opts();
    o.load_percentile = 1.0;
    assert_int_equal(swarm_policy_create(&p, &o), SWARM_EINVAL);
    o = load_opts();
    o.load_percentile = NAN;
    assert_int_equal(swarm_policy_create(&p, &o), SWARM_EINVAL);
    o = load_opts();
    o.load_drain_ns = S / 2;
    assert_int_equal(swarm_policy_create(&p, &o), SWARM_EINVAL);
    o = load_opts();
    o.load_down_window_ns = 3601 * S;
    assert_int_equal(swarm_policy_create(&p, &o), SWARM_EINVAL);
    o = load_opts();
    o.load_down_band = 1.5;
    assert_int_equal(swarm_policy_create(&p, &o), SWARM_EINVAL);
    o = load_opts();
    o.load_wait_ns = -1;
    assert_int_equal(swarm_policy_create(&p, &o), SWARM_EINVAL);
    o = load_opts();
    o.load_rate_tau_ns = S / 2;
    assert_int_equal(swarm_policy_create(&p, &o), SWARM_EINVAL);
    o = load_opts();
    o.load_up_hold_ns = 3601 * S;
    assert_int_equal(swarm_policy_create(&p, &o), SWARM_EINVAL);
    o = load_opts();
    o.load_service_prior_ns = 3601 * S;
    assert_int_equal(swarm_policy_create(&p, &o), SWARM_EINVAL);
    assert_null(p);
    /* The ring follows the window, so update() cannot change it; other fields can. */
    o = load_opts();
    p = make_load(&o);
    swarm_policy_opts u = o;
    u.load_down_window_ns = 300 * S;
    assert_int_equal(swarm_policy_update(p, &u), SWARM_EINVAL);
    u = o;
    u.load_wait_ns = 2 * S;
    u.load_down_band = -1;
    assert_int_equal(swarm_policy_update(p, &u), 0);
    swarm_policy_destroy(p);
    assert_string_equal(swarm_policy_rule_name(SWARM_RULE_LOAD_ERLANG), "load_erlang");
    assert_string_equal(swarm_policy_rule_name(SWARM_RULE_LOAD_NO_SIGNAL), "load_no_signal");
}

static void test_policy_load_deterministic_and_bounded(void **state)
{
    (void)state;
    swarm_policy_opts o = load_opts();
    o.min_replicas = 2;
    o.max_replicas = 30;
    swarm_policy *a = make_load(&o), *b = make_load(&o);
    host ha = {.cur = 2, .ready = 2, .rng = 5}, hb = ha;
    for (int t = 0; t < 900; t++) {
        double rate = (t / 100) % 2 ? 400 : 3;
        swarm_policy_decision da = tick(a, &ha, t, rate, 0.1, 1);
        swarm_policy_decision db = tick(b, &hb, t, rate, 0.1, 1);
        assert_memory_equal(&da, &db, sizeof da);
        assert_true(da.replicas >= 2 && da.replicas <= 30);
    }
    swarm_policy_destroy(a);
    swarm_policy_destroy(b);
}

/* Random observations, counters included (backwards, huge, NaN service totals, zero
 * concurrency, failed metrics), with random times: every decision succeeds, stays in bounds
 * (or holds current), explains itself, and an export taken at any point imports. */
static void test_policy_load_random_observations_stay_sane(void **state)
{
    (void)state;
    uint64_t x = 0x1234567u;
#define RND() (x ^= x << 13, x ^= x >> 7, x ^= x << 17, x)
    for (int run = 0; run < 40; run++) {
        swarm_policy_opts o = load_opts();
        o.min_replicas = (int32_t)(RND() % 4);
        o.max_replicas = o.min_replicas + 1 + (int32_t)(RND() % 60);
        o.load_down_band = (RND() % 3 == 0) ? -1 : 0;
        swarm_policy *p = make_load(&o);
        int32_t cur = (int32_t)(RND() % 10);
        int64_t now = (int64_t)(RND() % 100000) * S;
        swarm_policy_obs ob;
        memset(&ob, 0, sizeof ob);
        ob.size = sizeof ob;
        ob.n_metrics = 1;
        ob.metrics[0].kind = SWARM_METRIC_TOTAL;
        ob.metrics[0].target = 1;
        for (int i = 0; i < 300; i++) {
            uint64_t r = RND();
            now += (int64_t)(r % 5000) * 1000000 - (r % 97 == 0 ? 3 * S : 0);
            ob.current_replicas = cur;
            ob.ready_replicas = cur - (int32_t)(r % (uint64_t)(cur + 1));
            ob.starting_replicas = cur - ob.ready_replicas;
            ob.metrics[0].value = (double)(r % 2000);
            ob.metrics[0].in_flight = (double)((r >> 12) % 50);
            ob.metrics[0].failed = (r >> 20) % 17 == 0;
            ob.arrivals = (r >> 24) % 13 == 0 ? (r >> 30) : ob.arrivals + (r >> 40) % 500;
            ob.completions = (r >> 28) % 11 == 0 ? 0 : ob.completions + (r >> 44) % 500;
            ob.service_total_s = (r >> 33) % 29 == 0 ? NAN
                                 : (r >> 35) % 31 == 0
                                     ? -5.0
                                     : ob.service_total_s + (double)((r >> 48) % 100) * 0.01;
            if (!isfinite(ob.service_total_s) || ob.service_total_s < 0)
                ob.service_total_s = (r >> 35) % 2 ? ob.service_total_s : 0;
            ob.concurrency = (uint32_t)((r >> 52) % 4);
            swarm_policy_decision d = decide(p, now, &ob);
            assert_true(d.n_steps > 0);
            if (!(d.flags & SWARM_DECISION_HOLD)) {
                assert_true(d.replicas <= o.max_replicas);
                assert_true(d.replicas >= o.min_replicas || d.replicas == 0);
            } else {
                assert_int_equal(d.replicas, cur);
            }
            cur = d.replicas;
            if (i % 50 == 49) {
                size_t n = swarm_policy_state_size(p);
                unsigned char *buf = malloc(n);
                assert_int_equal(swarm_policy_export_state(p, buf, n, NULL), 0);
                swarm_policy *q = make_load(&o);
                assert_int_equal(swarm_policy_import_state(q, buf, n), 0);
                swarm_policy_destroy(q);
                free(buf);
            }
        }
        swarm_policy_destroy(p);
    }
#undef RND
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SWARM_TEST(test_policy_load_erlang_c_closed_forms),
        SWARM_TEST(test_policy_load_erlang_servers_is_the_fewest),
        SWARM_TEST(test_policy_load_sizes_steady_load_by_erlang_c),
        SWARM_TEST(test_policy_load_first_decision_uses_littles_law),
        SWARM_TEST(test_policy_load_scales_up_at_once_and_drains),
        SWARM_TEST(test_policy_load_scale_down_waits_for_the_window),
        SWARM_TEST(test_policy_load_noisy_steady_load_never_flaps),
        SWARM_TEST(test_policy_load_up_is_never_reversed_within_the_hold),
        SWARM_TEST(test_policy_load_idle_goes_to_min_after_the_window),
        SWARM_TEST(test_policy_load_starting_replicas_are_pending_capacity),
        SWARM_TEST(test_policy_load_counter_reset_rebaselines),
        SWARM_TEST(test_policy_load_failed_backlog_never_scales_down),
        SWARM_TEST(test_policy_load_export_import_continues_identically),
        SWARM_TEST(test_policy_load_validates_opts),
        SWARM_TEST(test_policy_load_deterministic_and_bounded),
        SWARM_TEST(test_policy_load_random_observations_stay_sane),
    };
    return cmocka_run_group_tests_name("policy_load", tests, NULL, NULL);
}
