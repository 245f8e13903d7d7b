/* SPDX-License-Identifier: MIT */
/* Unit tests for the simulator: the queueing model against closed forms (Erlang C for M/M/c,
 * Little's law), exactly-once accounting of requests across scaling, determinism per seed,
 * trace and configuration parsing with line numbers, and bad input. No timing assertions. */
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

/* ---- helpers ----------------------------------------------------------------------------- */

static swarm_sim_trace *constant(double rps, double until)
{
    swarm_sim_point rows[2] = {{0, rps}, {until, rps}};
    swarm_sim_trace *tr = NULL;
    assert_int_equal(swarm_sim_trace_create(&tr, rows, 2, NULL), 0);
    return tr;
}

static swarm_sim_trace *shape(uint32_t sh, uint64_t seed)
{
    swarm_sim_gen_opts g;
    swarm_sim_gen_opts_init(&g);
    g.shape = sh;
    g.seed = seed;
    swarm_sim_trace *tr = NULL;
    assert_int_equal(swarm_sim_trace_generate(&tr, &g, NULL), 0);
    return tr;
}

static swarm_sim_result run(const swarm_sim_trace *tr, const swarm_sim_opts *o, swarm_sim **keep)
{
    swarm_sim *s = NULL;
    assert_int_equal(swarm_sim_create(&s, tr, o), 0);
    assert_int_equal(swarm_sim_run(s), 0);
    swarm_sim_result r;
    memset(&r, 0, sizeof r);
    r.size = sizeof r;
    assert_int_equal(swarm_sim_get_result(s, &r), 0);
    if (keep)
        *keep = s;
    else
        swarm_sim_destroy(s);
    return r;
}

static swarm_sim_opts fixed_opts(int32_t n)
{
    swarm_sim_opts o;
    swarm_sim_opts_init(&o);
    o.kind = SWARM_SIM_FIXED;
    o.fixed_replicas = n;
    o.tail_s = -1;
    return o;
}

static swarm_policy_opts upstream(uint32_t mode)
{
    swarm_policy_opts p;
    swarm_policy_opts_init(&p);
    p.mode = mode;
    p.disable = SWARM_POLICY_STRICT_UPSTREAM;
    if (mode != SWARM_POLICY_KPA)
        p.hpa_path = SWARM_POLICY_HPA_BEHAVIOR;
    p.max_replicas = 100;
    return p;
}

/* ---- closed forms ------------------------------------------------------------------------ */

static void test_sim_erlang_c_known_values(void **state)
{
    (void)state;
    double pw = 0;
    /* M/M/2 at a = 1: P_wait = (1/2 * 2) / (1 + 1 + 1) = 1/3. */
    assert_int_equal(swarm_sim_erlang_c(2, 1.0, &pw), 0);
    assert_true(fabs(pw - 1.0 / 3.0) < 1e-12);
    /* M/M/1: P_wait = rho. */
    assert_int_equal(swarm_sim_erlang_c(1, 0.7, &pw), 0);
    assert_true(fabs(pw - 0.7) < 1e-12);
    assert_int_equal(swarm_sim_erlang_c(3, 3.0, &pw), 0);
    assert_true(pw == 1.0);
    assert_int_equal(swarm_sim_erlang_c(5, 0, &pw), 0);
    assert_true(pw == 0.0);
    assert_int_equal(swarm_sim_erlang_c(-1, 1, &pw), SWARM_EINVAL);
    assert_int_equal(swarm_sim_erlang_c(1, NAN, &pw), SWARM_EINVAL);
    assert_int_equal(swarm_sim_erlang_c(1, 1, NULL), SWARM_EINVAL);

    /* The server search returns the smallest c meeting the tail bound. */
    int32_t c = 0;
    assert_int_equal(swarm_sim_erlang_servers(40, 0.1, 1.0, 0.99, 1000, &c), 0);
    double p1 = 0, p0 = 0;
    swarm_sim_erlang_c(c, 40, &p1);
    swarm_sim_erlang_c(c - 1, 40, &p0);
    assert_true(p1 * exp(-(c - 40) * 1.0 / 0.1) <= 0.01);
    assert_true(c - 1 <= 40 || p0 * exp(-(c - 1 - 40) * 1.0 / 0.1) > 0.01);
    assert_int_equal(swarm_sim_erlang_servers(0, 0.1, 1.0, 0.99, 1000, &c), 0);
    assert_int_equal(c, 0);
    assert_int_equal(swarm_sim_erlang_servers(400, 0.1, 0, 0.99, 10, &c), SWARM_ERANGE);
    assert_int_equal(c, 10);
    assert_int_equal(swarm_sim_erlang_servers(4, 0.1, 1, 1.0, 10, &c), SWARM_EINVAL);
    assert_int_equal(swarm_sim_erlang_servers(4, 0, 1, 0.9, 10, &c), SWARM_EINVAL);
}

/* M/M/c with fixed replicas: the long-run mean queue wait and the share of requests that wait
 * match Erlang C. c = 10 servers at a = 8 Erlangs (rho 0.8), 20,000 simulated seconds (about
 * 1.6 million requests); also as 5 replicas x concurrency 2, which is the same M/M/10. */
static void test_sim_mmc_matches_erlang_c(void **state)
{
    (void)state;
    const double lam = 80, svc = 0.1, a = lam * svc;
    swarm_sim_trace *tr = constant(lam, 20000);
    double pw = 0;
    assert_int_equal(swarm_sim_erlang_c(10, a, &pw), 0);
    double wq = pw * svc / (10 - a);
    for (int v = 0; v < 2; v++) {
        swarm_sim_opts o = fixed_opts(v ? 5 : 10);
        o.concurrency = v ? 2 : 1;
        o.service_mean_s = svc;
        o.seed = 42;
        o.no_timeline = 1;
        swarm_sim_result r = run(tr, &o, NULL);
        print_message("M/M/10 (variant %d): mean wait %.5f s (Erlang C %.5f), waited %.4f "
                      "(C %.4f)\n",
                      v, r.mean_wait_s, wq, r.waited_frac, pw);
        assert_true(fabs(r.mean_wait_s - wq) / wq < 0.05);
        assert_true(fabs(r.waited_frac - pw) < 0.02);
        /* The observed rate is the trace's. */
        assert_true(fabs((double)r.arrivals / r.sim_seconds - lam) / lam < 0.01);
        assert_int_equal(r.dropped, 0);
        assert_true(fabs(r.replica_seconds - (v ? 5 : 10) * 20000.0) < 1e-6);
    }
    swarm_sim_trace_destroy(tr);
}

/* Little's law holds on every sample path: the time integral of the number in system equals
 * the summed time in system of the accepted requests (unfinished ones up to the end). Checked
 * on runs with scaling, start-up, lag, concurrency and drops. */
static void test_sim_littles_law(void **state)
{
    (void)state;
    swarm_sim_trace *tr = shape(SWARM_SIM_SHAPE_SPIKES, 3);
    uint32_t modes[] = {SWARM_POLICY_KEDA, SWARM_POLICY_HPA, SWARM_POLICY_KPA};
    for (int i = 0; i < 4; i++) {
        swarm_policy_opts p = upstream(modes[i % 3]);
        swarm_sim_opts o;
        swarm_sim_opts_init(&o);
        o.policy = &p;
        o.startup_s = 30;
        o.startup_jitter_s = 5;
        o.metrics_lag_s = i == 1 ? 7 : 0;
        o.concurrency = i == 2 ? 4 : 1;
        o.queue_cap = i == 3 ? 500 : 0;
        o.service_dist = (uint32_t)(i % 3);
        o.seed = 9;
        if (i == 3) {
            o.kind = SWARM_SIM_ORACLE;
            o.policy = NULL;
        }
        swarm_sim_result r = run(tr, &o, NULL);
        double lam = (double)(r.arrivals - r.dropped) / r.sim_seconds;
        double l = lam * r.mean_sojourn_s;
        print_message("run %d: L %.6f, lambda W %.6f\n", i, r.mean_in_system, l);
        assert_true(r.arrivals > 10000);
        assert_true(fabs(r.mean_in_system - l) <= 1e-6 * (1 + l));
        /* Exactly once: every accepted request completed or is still in the system. */
        assert_int_equal(r.completions + r.unfinished + r.dropped, r.arrivals);
    }
    swarm_sim_trace_destroy(tr);
}

/* ---- the model --------------------------------------------------------------------------- */

static void test_sim_deterministic_per_seed(void **state)
{
    (void)state;
    swarm_sim_trace *tr = shape(SWARM_SIM_SHAPE_STEP, 1);
    swarm_policy_opts p = upstream(SWARM_POLICY_KPA);
    swarm_sim_opts o;
    swarm_sim_opts_init(&o);
    o.policy = &p;
    o.startup_s = 10;
    o.startup_jitter_s = 4;
    o.service_dist = SWARM_SIM_DIST_LOGNORMAL;
    o.seed = 77;
    swarm_sim *a = NULL, *b = NULL, *c = NULL;
    swarm_sim_result ra = run(tr, &o, &a), rb = run(tr, &o, &b);
    assert_memory_equal(&ra, &rb, sizeof ra);
    size_t n = swarm_sim_timeline_len(a);
    assert_true(n > 2000);
    assert_int_equal(swarm_sim_timeline_len(b), n);
    swarm_sim_sample *ta = calloc(n, sizeof *ta), *tb = calloc(n, sizeof *tb);
    assert_int_equal(swarm_sim_get_timeline(a, 0, ta, n), (int)n);
    assert_int_equal(swarm_sim_get_timeline(b, 0, tb, n), (int)n);
    assert_memory_equal(ta, tb, n * sizeof *ta);
    /* Another seed gives other requests. */
    o.seed = 78;
    swarm_sim_result rc = run(tr, &o, &c);
    assert_true(rc.arrivals != ra.arrivals || rc.mean_wait_s != ra.mean_wait_s);
    free(ta);
    free(tb);
    swarm_sim_destroy(a);
    swarm_sim_destroy(b);
    swarm_sim_destroy(c);
    swarm_sim_trace_destroy(tr);
}

/* Every policy sees the same requests for a seed (common random numbers). */
static void test_sim_same_requests_for_every_policy(void **state)
{
    (void)state;
    swarm_sim_trace *tr = shape(SWARM_SIM_SHAPE_FLASH, 1);
    swarm_sim_opts f = fixed_opts(50);
    f.tail_s = 0;
    f.seed = 5;
    swarm_policy_opts p = upstream(SWARM_POLICY_HPA);
    swarm_sim_opts h;
    swarm_sim_opts_init(&h);
    h.policy = &p;
    h.startup_s = 60;
    h.seed = 5;
    swarm_sim_result a = run(tr, &f, NULL), b = run(tr, &h, NULL);
    assert_int_equal(a.arrivals, b.arrivals);
    swarm_sim_trace_destroy(tr);
}

/* The timeline: one sample per whole second; arrivals per second add up; a replica ordered at
 * t is starting for startup_s, then ready. */
static void test_sim_timeline_and_startup(void **state)
{
    (void)state;
    swarm_sim_point rows[] = {{0, 0}, {100, 50}, {400, 0}};
    swarm_sim_trace *tr = NULL;
    assert_int_equal(swarm_sim_trace_create(&tr, rows, 3, NULL), 0);
    swarm_policy_opts p = upstream(SWARM_POLICY_KEDA);
    swarm_sim_opts o;
    swarm_sim_opts_init(&o);
    o.policy = &p;
    o.startup_s = 20;
    o.tail_s = 900;
    swarm_sim *s = NULL;
    swarm_sim_result r = run(tr, &o, &s);
    size_t n = swarm_sim_timeline_len(s);
    assert_int_equal(n, 1301); /* t = 0 .. 1300 */
    swarm_sim_sample *t = calloc(n, sizeof *t);
    assert_int_equal(swarm_sim_get_timeline(s, 0, t, n), (int)n);
    uint64_t sum = 0;
    int first_start = -1, first_ready = -1;
    for (size_t i = 0; i < n; i++) {
        assert_true(t[i].t_s == (double)i);
        assert_true(t[i].rate_rps == (i >= 100 && i < 400 ? 50.0 : 0.0));
        sum += t[i].arrived;
        if (first_start < 0 && t[i].starting > 0)
            first_start = (int)i;
        if (first_ready < 0 && t[i].ready > 0)
            first_ready = (int)i;
        assert_true(t[i].replicas >= t[i].ready + t[i].starting);
    }
    assert_int_equal(sum, r.arrivals);
    /* KEDA polls every 30 s: the first poll after the burst starts (t = 120) orders, and the
     * replica is ready 20 s later. */
    assert_int_equal(first_start, 120);
    assert_int_equal(first_ready, 140);
    assert_int_equal(t[n - 1].replicas, 0); /* scaled back to zero after the cooldown */
    assert_int_equal(swarm_sim_get_timeline(s, n, t, 5), 0);
    assert_int_equal(swarm_sim_get_timeline(s, n - 2, t, 5), 2);
    free(t);
    swarm_sim_destroy(s);
    swarm_sim_trace_destroy(tr);
}

/* The policy sees metrics metrics_lag_s old: the first scale-up comes later by about the lag. */
static void test_sim_metrics_lag_delays_reaction(void **state)
{
    (void)state;
    swarm_sim_point rows[] = {{0, 0}, {50, 100}};
    swarm_sim_trace *tr = NULL;
    assert_int_equal(swarm_sim_trace_create(&tr, rows, 2, NULL), 0);
    int first[2];
    for (int v = 0; v < 2; v++) {
        swarm_policy_opts p = upstream(SWARM_POLICY_KPA);
        swarm_sim_opts o;
        swarm_sim_opts_init(&o);
        o.policy = &p;
        o.interval_ns = 1000000000;
        o.metrics_lag_s = v ? 10 : 0;
        o.tail_s = 100;
        swarm_sim *s = NULL;
        run(tr, &o, &s);
        size_t n = swarm_sim_timeline_len(s);
        swarm_sim_sample *t = calloc(n, sizeof *t);
        swarm_sim_get_timeline(s, 0, t, n);
        first[v] = -1;
        for (size_t i = 0; i < n && first[v] < 0; i++)
            if (t[i].desired > 0)
                first[v] = (int)i;
        free(t);
        swarm_sim_destroy(s);
    }
    print_message("first scale-up: %d s without lag, %d s with 10 s lag\n", first[0], first[1]);
    assert_true(first[0] >= 50 && first[0] <= 52);
    assert_true(first[1] >= first[0] + 9 && first[1] <= first[0] + 11);
    swarm_sim_trace_destroy(tr);
}

typedef struct scale_log {
    int calls;
    double last_t;
    int32_t last_replicas;
    int bad;
} scale_log;

static void on_scale(void *ctx, double t_s, const swarm_policy_decision *d)
{
    scale_log *l = ctx;
    if (t_s < l->last_t || d->text[0] == 0 || d->replicas == d->current)
        l->bad++;
    l->calls++;
    l->last_t = t_s;
    l->last_replicas = d->replicas;
}

/* on_scale sees every actuation with the decision (and its explanation) that caused it. */
static void test_sim_on_scale_explains_every_actuation(void **state)
{
    (void)state;
    swarm_sim_trace *tr = shape(SWARM_SIM_SHAPE_STEP, 1);
    swarm_policy_opts p = upstream(SWARM_POLICY_HPA);
    scale_log l = {0, 0, -1, 0};
    swarm_sim_opts o;
    swarm_sim_opts_init(&o);
    o.policy = &p;
    o.startup_s = 10;
    o.on_scale = on_scale;
    o.on_scale_ctx = &l;
    swarm_sim *s = NULL;
    swarm_sim_result r = run(tr, &o, &s);
    assert_true(l.calls >= 2);
    assert_int_equal(l.calls, (int)r.scale_events);
    assert_int_equal(l.bad, 0);
    /* The last actuated count is the count at the end. */
    swarm_sim_sample last;
    size_t n = swarm_sim_timeline_len(s);
    assert_int_equal(swarm_sim_get_timeline(s, n - 1, &last, 1), 1);
    assert_int_equal(last.ready + last.starting, l.last_replicas);
    swarm_sim_destroy(s);
    swarm_sim_trace_destroy(tr);
}

/* A warm start begins with the Erlang C count for the first row's rate, ready at t = 0; a cold
 * start with the policy's min. */
static void test_sim_warm_start(void **state)
{
    (void)state;
    swarm_sim_trace *tr = shape(SWARM_SIM_SHAPE_STEP, 1); /* 20 rps first */
    int32_t need = 0;
    assert_int_equal(swarm_sim_erlang_servers(20 * 0.1, 0.1, 1.0, 0.99, 1000, &need), 0);
    for (int warm = 0; warm < 2; warm++) {
        swarm_policy_opts p = upstream(SWARM_POLICY_HPA);
        swarm_sim_opts o;
        swarm_sim_opts_init(&o);
        o.policy = &p;
        o.warm_start = (uint32_t)warm;
        swarm_sim *s = NULL;
        run(tr, &o, &s);
        swarm_sim_sample t0;
        assert_int_equal(swarm_sim_get_timeline(s, 0, &t0, 1), 1);
        assert_int_equal(t0.ready, warm ? need : 1); /* HPA's min is 1 */
        swarm_sim_destroy(s);
    }
    assert_true(need >= 3);
    swarm_sim_trace_destroy(tr);
}

/* Requests still queued at the end count with their wait so far. With no replicas at all,
 * every request is still queued, and the largest wait is the first arrival's age. */
static void test_sim_unfinished_requests_count(void **state)
{
    (void)state;
    swarm_sim_trace *tr = constant(10, 100);
    swarm_sim_opts o = fixed_opts(0);
    o.tail_s = 50;
    swarm_sim_result r = run(tr, &o, NULL);
    assert_true(r.arrivals > 1000);
    assert_int_equal(r.unfinished, r.arrivals);
    assert_int_equal(r.completions, 0);
    assert_int_equal(r.max_queue, r.arrivals);
    assert_true(r.max_wait_s > 149 && r.max_wait_s <= 150);
    assert_true(r.p50_wait_s > 60 && r.p50_wait_s < 90);
    /* The queue head is older than the SLO from t = first arrival + 1 s to the end. */
    assert_true(r.slo_violation_s > 148 && r.slo_violation_s < 149.01);
    assert_true(fabs(r.slo_miss_frac - 1.0) < 0.01);
    /* A queue cap drops the excess. */
    o.queue_cap = 10;
    r = run(tr, &o, NULL);
    assert_int_equal(r.max_queue, 10);
    assert_int_equal(r.dropped, r.arrivals - 10);
    swarm_sim_trace_destroy(tr);
}

/* Scale-down lets in-flight work finish: with long fixed service times and a policy that drops
 * to zero, every request that started completes. */
static void test_sim_scale_down_finishes_in_flight(void **state)
{
    (void)state;
    swarm_sim_point rows[] = {{0, 20}, {60, 0}};
    swarm_sim_trace *tr = NULL;
    assert_int_equal(swarm_sim_trace_create(&tr, rows, 2, NULL), 0);
    swarm_policy_opts p = upstream(SWARM_POLICY_KPA);
    swarm_sim_opts o;
    swarm_sim_opts_init(&o);
    o.policy = &p;
    o.service_dist = SWARM_SIM_DIST_FIXED;
    o.service_mean_s = 5;
    o.initial_replicas = 5;
    o.tail_s = 1200;
    swarm_sim_result r = run(tr, &o, NULL);
    assert_int_equal(r.completions, r.arrivals);
    assert_int_equal(r.unfinished, 0);
    assert_true(r.scale_events >= 2);
    swarm_sim_trace_destroy(tr);
}

/* Scale-down removes idle replicas before busy ones: with a few long requests in flight and a
 * policy that shrinks from 10 towards what they need, no busy replica is ever retired (the live
 * count always equals the spec: none is left finishing work). */
static void test_sim_scale_down_retires_idle_first(void **state)
{
    (void)state;
    swarm_sim_point rows[] = {{0, 0.02}, {300, 0}};
    swarm_sim_trace *tr = NULL;
    assert_int_equal(swarm_sim_trace_create(&tr, rows, 2, NULL), 0);
    swarm_policy_opts p = upstream(SWARM_POLICY_KPA);
    swarm_sim_opts o;
    swarm_sim_opts_init(&o);
    o.policy = &p;
    o.service_dist = SWARM_SIM_DIST_FIXED;
    o.service_mean_s = 5000;
    o.initial_replicas = 10;
    o.tail_s = 600;
    o.seed = 3;
    swarm_sim *s = NULL;
    swarm_sim_result r = run(tr, &o, &s);
    size_t n = swarm_sim_timeline_len(s);
    swarm_sim_sample *t = calloc(n, sizeof *t);
    swarm_sim_get_timeline(s, 0, t, n);
    int32_t min_live = 10;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(t[i].replicas, t[i].ready + t[i].starting);
        assert_true((int32_t)t[i].in_flight <= t[i].ready);
        if (t[i].replicas < min_live)
            min_live = t[i].replicas;
    }
    print_message("%llu requests, live replicas down to %d\n", (unsigned long long)r.arrivals,
                  min_live);
    assert_true(r.arrivals >= 2 && r.arrivals <= 15);
    assert_true(min_live < 10);         /* it did scale down */
    assert_int_equal(r.completions, 0); /* and every request is still being served */
    assert_int_equal(r.unfinished, r.arrivals);
    free(t);
    swarm_sim_destroy(s);
    swarm_sim_trace_destroy(tr);
}

/* The oracle knows the trace: on a flash crowd with 30 s start-up it meets the SLO at p99 with
 * capacity that fits the load, and never flaps. */
static void test_sim_oracle_meets_slo(void **state)
{
    (void)state;
    swarm_sim_trace *tr = shape(SWARM_SIM_SHAPE_FLASH, 1);
    swarm_sim_opts o;
    swarm_sim_opts_init(&o);
    o.kind = SWARM_SIM_ORACLE;
    o.startup_s = 30;
    swarm_sim_result r = run(tr, &o, NULL);
    print_message("oracle: p99 %.3f s, replica-s %.0f, peak %d\n", r.p99_wait_s, r.replica_seconds,
                  r.peak_replicas);
    assert_true(r.p99_wait_s <= 1.0);
    assert_int_equal(r.flaps, 0);
    assert_true(r.peak_replicas >= 41 && r.peak_replicas <= 50);
    swarm_sim_trace_destroy(tr);
}

/* ---- parsing ----------------------------------------------------------------------------- */

static uint32_t parse_line(const char *text, int *rc)
{
    swarm_sim_trace *tr = NULL;
    uint32_t line = 99;
    *rc = swarm_sim_trace_parse(&tr, text, strlen(text), &line, NULL);
    swarm_sim_trace_destroy(tr);
    return line;
}

static void test_sim_trace_parse_errors_name_the_line(void **state)
{
    (void)state;
    int rc;
    assert_int_equal(parse_line("0,1\n10,2\nabc\n", &rc), 3);
    assert_int_equal(rc, SWARM_EINVAL);
    assert_int_equal(parse_line("t_seconds,rps\n0,1\n", &rc), 1); /* no header allowed */
    assert_int_equal(rc, SWARM_EINVAL);
    assert_int_equal(parse_line("0,1\n5,2\n5,3\n", &rc), 3);       /* time not increasing */
    assert_int_equal(parse_line("0,1\n\n# note\n4,-2\n", &rc), 4); /* negative rate */
    assert_int_equal(parse_line("-1,1\n", &rc), 1);
    assert_int_equal(parse_line("0,1,2\n", &rc), 1);
    assert_int_equal(parse_line("0;1\n", &rc), 1);
    assert_int_equal(parse_line("0,nan\n", &rc), 1);
    assert_int_equal(parse_line("0,1\n2,\n", &rc), 2);
    assert_int_equal(parse_line("", &rc), 0); /* no rows: an error without a line */
    assert_int_equal(rc, SWARM_EINVAL);
    assert_int_equal(parse_line("# only a comment\n\n", &rc), 0);
    assert_int_equal(rc, SWARM_EINVAL);

    /* Good input: blanks, comments, CRLF, no final newline; rows kept as written. */
    const char *ok = "# trace\r\n0, 5\r\n\r\n 30 ,5\r\n60,0.5";
    swarm_sim_trace *tr = NULL;
    uint32_t line = 99;
    assert_int_equal(swarm_sim_trace_parse(&tr, ok, strlen(ok), &line, NULL), 0);
    assert_int_equal(line, 0);
    assert_int_equal(swarm_sim_trace_len(tr), 3);
    swarm_sim_point pt;
    assert_int_equal(swarm_sim_trace_get(tr, 2, &pt), 0);
    assert_true(pt.t_s == 60 && pt.rps == 0.5);
    assert_int_equal(swarm_sim_trace_get(tr, 3, &pt), SWARM_EINVAL);
    swarm_sim_trace_destroy(tr);
    assert_int_equal(swarm_sim_trace_parse(NULL, ok, 3, NULL, NULL), SWARM_EINVAL);
}

static void test_sim_generators(void **state)
{
    (void)state;
    for (uint32_t sh = SWARM_SIM_SHAPE_STEP; sh <= SWARM_SIM_SHAPE_IDLE_BURSTS; sh++) {
        swarm_sim_trace *a = shape(sh, 11), *b = shape(sh, 11);
        size_t n = swarm_sim_trace_len(a);
        assert_true(n >= 2);
        assert_int_equal(swarm_sim_trace_len(b), n);
        double peak = 0;
        for (size_t i = 0; i < n; i++) {
            swarm_sim_point x, y;
            swarm_sim_trace_get(a, i, &x);
            swarm_sim_trace_get(b, i, &y);
            assert_memory_equal(&x, &y, sizeof x);
            if (x.rps > peak)
                peak = x.rps;
        }
        const double want[] = {0, 200, 200, 200, 400, 50};
        assert_true(fabs(peak - want[sh]) < 1e-9);
        swarm_sim_trace_destroy(a);
        swarm_sim_trace_destroy(b);
    }
    swarm_sim_gen_opts g;
    swarm_sim_gen_opts_init(&g);
    swarm_sim_trace *tr = NULL;
    assert_int_equal(swarm_sim_trace_generate(&tr, &g, NULL), SWARM_EINVAL); /* no shape */
    g.shape = SWARM_SIM_SHAPE_SINE;
    g.peak_rps = -1;
    assert_int_equal(swarm_sim_trace_generate(&tr, &g, NULL), SWARM_EINVAL);
}

static void test_sim_config_parse(void **state)
{
    (void)state;
    swarm_sim_opts so;
    swarm_policy_opts po;
    swarm_sim_opts_init(&so);
    swarm_policy_opts_init(&po);
    const char *text = "# a tuned HPA\n"
                       "mode = hpa\n"
                       "disable = strict\n"
                       "min_replicas = 2\n"
                       "  max_replicas=40  \n"
                       "scale_down.window_s = 60\n"
                       "scale_up.policies = pods:8:15,percent:200:15\n"
                       "scale_up.select = max\n"
                       "tolerance = 0.05\n"
                       "interval_s = 5\n"
                       "target = 1.5\n";
    uint32_t line = 99;
    assert_int_equal(swarm_sim_config_parse(text, strlen(text), &so, &po, &line), 0);
    assert_int_equal(line, 0);
    assert_int_equal(po.mode, SWARM_POLICY_HPA);
    assert_int_equal(po.disable, SWARM_POLICY_STRICT_UPSTREAM);
    assert_int_equal(po.min_replicas, 2);
    assert_int_equal(po.max_replicas, 40);
    assert_true(po.scale_down.window_ns == INT64_C(60000000000));
    assert_int_equal(po.scale_up.n_policies, 2);
    assert_int_equal(po.scale_up.policies[1].type, SWARM_RATE_PERCENT);
    assert_int_equal(po.scale_up.policies[1].value, 200);
    assert_true(po.scale_up.policies[0].period_ns == INT64_C(15000000000));
    assert_int_equal(po.scale_up.select, SWARM_POLICY_SELECT_MAX);
    assert_true(po.tolerance == 0.05);
    assert_true(so.interval_ns == INT64_C(5000000000));
    assert_true(so.target == 1.5);

    const char *bad[] = {"mode = hpa\nnope = 1\n", "mode = hpa\n\nmin_replicas = x\n",
                         "mode = zeta\n", "mode = hpa\nmin_replicas\n",
                         "scale_up.policies = pods:4\n"};
    const uint32_t lines[] = {2, 3, 1, 2, 1};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(swarm_sim_config_parse(bad[i], strlen(bad[i]), &so, &po, &line),
                         SWARM_EINVAL);
        assert_int_equal(line, lines[i]);
    }
}

/* ---- allocation failures ----------------------------------------------------------------- */

typedef struct counting {
    long calls, fail_at; /* fail the fail_at-th allocation (0-based); -1: never */
    long live;
    size_t bytes;
} counting;

static void *c_alloc(void *ctx, size_t size, size_t align)
{
    counting *c = ctx;
    if (c->fail_at >= 0 && c->calls++ == c->fail_at)
        return NULL;
    void *p = NULL;
    if (posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size) != 0)
        return NULL;
    c->live++;
    c->bytes += size;
    return p;
}

static void c_free(void *ctx, void *p, size_t size)
{
    counting *c = ctx;
    c->live--;
    c->bytes -= size;
    free(p);
}

/* Every allocation of trace, create and run can fail: the call returns SWARM_ENOMEM and, after
 * the destroys, nothing is left allocated (sizes are freed as allocated). */
static void test_sim_enomem_leaks_nothing(void **state)
{
    (void)state;
    int ok = 0;
    for (long k = 0; k < 400 && !ok; k++) {
        counting c = {0, k, 0, 0};
        swarm_allocator a = {&c, c_alloc, c_free};
        swarm_sim_gen_opts g;
        swarm_sim_gen_opts_init(&g);
        g.shape = SWARM_SIM_SHAPE_SPIKES;
        g.duration_s = 600;
        swarm_sim_trace *tr = NULL;
        int rc = swarm_sim_trace_generate(&tr, &g, &a);
        if (rc == 0) {
            swarm_policy_opts p = upstream(SWARM_POLICY_HPA);
            p.alloc = &a;
            swarm_sim_opts o;
            swarm_sim_opts_init(&o);
            o.policy = &p;
            o.alloc = &a;
            o.startup_s = 10;
            o.metrics_lag_s = 2;
            swarm_sim *s = NULL;
            rc = swarm_sim_create(&s, tr, &o);
            if (rc == 0) {
                rc = swarm_sim_run(s);
                if (rc == 0)
                    ok = 1;
                else
                    assert_int_equal(swarm_sim_run(s), SWARM_ESTATE); /* no resume */
                swarm_sim_destroy(s);
            }
            swarm_sim_trace_destroy(tr);
        }
        assert_true(rc == 0 || rc == SWARM_ENOMEM);
        assert_int_equal(c.live, 0);
        assert_int_equal(c.bytes, 0);
    }
    assert_true(ok);
}

/* ---- bad input --------------------------------------------------------------------------- */

static void test_sim_bad_arguments(void **state)
{
    (void)state;
    swarm_sim_trace *tr = constant(1, 10);
    swarm_sim *s = NULL;
    swarm_sim_opts o;
    swarm_sim_opts_init(&o);
    assert_int_equal(swarm_sim_create(&s, tr, &o), SWARM_EINVAL); /* policy kind, no policy */
    assert_int_equal(swarm_sim_create(NULL, tr, &o), SWARM_EINVAL);
    assert_int_equal(swarm_sim_create(&s, NULL, &o), SWARM_EINVAL);
    o.kind = 9;
    assert_int_equal(swarm_sim_create(&s, tr, &o), SWARM_EINVAL);
    o = fixed_opts(1);
    o.startup_s = -1;
    assert_int_equal(swarm_sim_create(&s, tr, &o), SWARM_EINVAL);
    o = fixed_opts(1);
    o.slo_quantile = 1.0;
    assert_int_equal(swarm_sim_create(&s, tr, &o), SWARM_EINVAL);
    o = fixed_opts(-1);
    assert_int_equal(swarm_sim_create(&s, tr, &o), SWARM_EINVAL);
    /* The policy's own errors come back as they are. */
    swarm_policy_opts p = upstream(SWARM_POLICY_HPA);
    p.min_replicas = 10;
    p.max_replicas = 5;
    swarm_sim_opts_init(&o);
    o.policy = &p;
    assert_int_equal(swarm_sim_create(&s, tr, &o), SWARM_EINVAL);
    assert_null(s);
    /* Lifecycle. */
    o = fixed_opts(1);
    assert_int_equal(swarm_sim_create(&s, tr, &o), 0);
    swarm_sim_result r;
    r.size = sizeof r;
    assert_int_equal(swarm_sim_get_result(s, &r), SWARM_ESTATE);
    assert_int_equal(swarm_sim_timeline_len(s), 0);
    assert_int_equal(swarm_sim_run(s), 0);
    assert_int_equal(swarm_sim_run(s), SWARM_ESTATE);
    r.size = 4;
    assert_int_equal(swarm_sim_get_result(s, &r), SWARM_EINVAL);
    assert_int_equal(swarm_sim_get_timeline(s, 0, NULL, 1), SWARM_EINVAL);
    swarm_sim_destroy(s);
    swarm_sim_destroy(NULL);
    swarm_sim_trace_destroy(NULL);
    swarm_sim_point rows[] = {{0, 1}, {0, 2}};
    assert_int_equal(swarm_sim_trace_create(&tr, rows, 2, NULL), SWARM_EINVAL);
    assert_int_equal(swarm_sim_trace_create(&tr, rows, 0, NULL), SWARM_EINVAL);
    assert_int_equal(swarm_sim_opts_init(NULL), SWARM_EINVAL);
    swarm_sim_trace_destroy(tr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SWARM_TEST(test_sim_erlang_c_known_values),
        SWARM_TEST(test_sim_mmc_matches_erlang_c),
        SWARM_TEST(test_sim_littles_law),
        SWARM_TEST(test_sim_deterministic_per_seed),
        SWARM_TEST(test_sim_same_requests_for_every_policy),
        SWARM_TEST(test_sim_timeline_and_startup),
        SWARM_TEST(test_sim_metrics_lag_delays_reaction),
        SWARM_TEST(test_sim_on_scale_explains_every_actuation),
        SWARM_TEST(test_sim_warm_start),
        SWARM_TEST(test_sim_unfinished_requests_count),
        SWARM_TEST(test_sim_scale_down_finishes_in_flight),
        SWARM_TEST(test_sim_scale_down_retires_idle_first),
        SWARM_TEST(test_sim_oracle_meets_slo),
        SWARM_TEST(test_sim_trace_parse_errors_name_the_line),
        SWARM_TEST(test_sim_generators),
        SWARM_TEST(test_sim_config_parse),
        SWARM_TEST(test_sim_enomem_leaks_nothing),
        SWARM_TEST(test_sim_bad_arguments),
    };
    return cmocka_run_group_tests_name("sim", tests, NULL, NULL);
}
