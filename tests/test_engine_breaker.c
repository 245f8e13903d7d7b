/* SPDX-License-Identifier: MIT */
/*
 * Engine unit tests, the circuit breaker decorator: the state machine, half-open probes, slow calls
 * and the time window. Split out of the former test_engine.c; shared fixtures are in
 * engine_fixtures.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <swarm/swarm.h>

#include "engine_fixtures.h"
#include "helpers.h"

static void test_breaker_state_machine(void **state)
{
    (void)state;
    fake_clock fc;
    fc_init(&fc);
    trlog tl = {0};
    swarm_engine *m = new_mock(&fc, NULL);
    swarm_breaker_opts bo;
    swarm_breaker_opts_init(&bo);
    assert_int_equal(bo.window_size, 100);
    assert_int_equal(bo.failure_rate_pct, 50);
    assert_int_equal(bo.open_ns, 30 * SEC);
    bo.window_size = 10;
    bo.minimum_calls = 6;
    bo.half_open_probes = 2;
    bo.open_ns = 10 * SEC;
    swarm_engine *b = new_breaker(m, &fc, &tl, &bo);
    swarm_response *r = new_resp();
    /* Ignored outcomes (EINVAL, ECANCELED) do not count; 3 ok + 3 failures reach 50 %. */
    script_n(m, SWARM_EINVAL, 4);
    script_n(m, SWARM_ECANCELED, 4);
    script_n(m, 0, 3);
    script_n(m, SWARM_EUNAVAILABLE, 2);
    for (int i = 0; i < 13; i++)
        run1(b, r, (uint64_t)i, "x");
    assert_int_equal(swarm_engine_breaker_state(b), SWARM_BREAKER_CLOSED);
    script_n(m, SWARM_EINTERNAL, 1);
    assert_int_equal(run1(b, r, 13, "x"), SWARM_EINTERNAL);
    assert_int_equal(swarm_engine_breaker_state(b), SWARM_BREAKER_OPEN);
    assert_int_equal(swarm_engine_health(b), SWARM_EBREAKER_OPEN);
    /* Open: fail fast with a retry-after hint, the engine is not called. */
    uint64_t calls = mock_calls(m);
    atomic_fetch_add(&fc.now, 4 * SEC);
    assert_int_equal(run1(b, r, 14, "x"), SWARM_EBREAKER_OPEN);
    swarm_response_info info = {.size = sizeof info};
    swarm_response_get_info(r, &info);
    assert_int_equal(info.retry_after_ns, 6 * SEC);
    assert_int_equal(mock_calls(m), calls);
    /* After open_ns: half-open with 2 probes; the 3rd concurrent caller would be refused. */
    atomic_fetch_add(&fc.now, 6 * SEC);
    assert_int_equal(swarm_engine_breaker_state(b), SWARM_BREAKER_HALF_OPEN);
    script_n(m, SWARM_EUNAVAILABLE, 1);
    assert_int_equal(run1(b, r, 15, "x"), SWARM_EUNAVAILABLE);
    assert_int_equal(swarm_engine_breaker_state(b), SWARM_BREAKER_HALF_OPEN);
    assert_int_equal(run1(b, r, 16, "x"), 0); /* 1 of 2 failed = 50 %: open again */
    assert_int_equal(swarm_engine_breaker_state(b), SWARM_BREAKER_OPEN);
    atomic_fetch_add(&fc.now, 10 * SEC);
    assert_int_equal(run1(b, r, 17, "x"), 0);
    assert_int_equal(run1(b, r, 18, "x"), 0);
    assert_int_equal(swarm_engine_breaker_state(b), SWARM_BREAKER_CLOSED);
    swarm_breaker_stats st = {.size = sizeof st};
    assert_int_equal(swarm_engine_breaker_get_stats(b, &st), 0);
    assert_int_equal(st.window_calls, 0); /* cleared on close */
    assert_int_equal(st.opened, 2);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.transitions, 5);
    int want_from[5] = {0, 1, 2, 1, 2}, want_to[5] = {1, 2, 1, 2, 0};
    assert_int_equal(tl.n, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(tl.from[i], want_from[i]);
        assert_int_equal(tl.to[i], want_to[i]);
    }
    swarm_response_destroy(r);
    swarm_engine_destroy(b);
}

static void test_breaker_half_open_limits_probes(void **state)
{
    (void)state;
    fake_clock fc;
    fc_init(&fc);
    trlog tl = {0};
    swarm_breaker_opts bo;
    swarm_breaker_opts_init(&bo);
    bo.minimum_calls = 1;
    bo.half_open_probes = 1;
    /* An engine that runs a nested call on the breaker while its probe is in flight. */
    swarm_engine *m = new_mock(&fc, NULL);
    swarm_engine *b = new_breaker(m, &fc, &tl, &bo);
    swarm_response *r = new_resp();
    script_n(m, SWARM_EUNAVAILABLE, 1);
    run1(b, r, 1, "x");
    assert_int_equal(swarm_engine_breaker_state(b), SWARM_BREAKER_OPEN);
    atomic_fetch_add(&fc.now, 30 * SEC);
    /* Batch of 3 in half-open: one probe admitted, two refused. */
    swarm_request q[3];
    const swarm_request *qp[3];
    swarm_response *rp[3];
    for (int i = 0; i < 3; i++) {
        req_init(&q[i], (uint64_t)i, "x");
        qp[i] = &q[i];
        rp[i] = new_resp();
    }
    assert_int_equal(swarm_engine_infer_batch(b, qp, rp, 3), 0);
    assert_int_equal(swarm_response_status(rp[0]), 0);
    assert_int_equal(swarm_response_status(rp[1]), SWARM_EBREAKER_OPEN);
    assert_int_equal(swarm_response_status(rp[2]), SWARM_EBREAKER_OPEN);
    for (int i = 0; i < 3; i++)
        swarm_response_destroy(rp[i]);
    assert_int_equal(swarm_engine_breaker_state(b), SWARM_BREAKER_CLOSED);
    swarm_response_destroy(r);
    swarm_engine_destroy(b);
}

static void test_breaker_slow_calls_and_time_window(void **state)
{
    (void)state;
    fake_clock fc;
    fc_init(&fc);
    trlog tl = {0};
    swarm_mock_opts mo;
    swarm_mock_opts_init(&mo);
    mo.latency_kind = SWARM_MOCK_LATENCY_FIXED;
    mo.latency_ns = 2 * SEC;
    swarm_engine *m = new_mock(&fc, &mo);
    swarm_breaker_opts bo;
    swarm_breaker_opts_init(&bo);
    bo.minimum_calls = 4;
    bo.slow_call_ns = 1 * SEC;
    swarm_engine *b = new_breaker(m, &fc, &tl, &bo);
    swarm_response *r = new_resp();
    for (int i = 0; i < 4; i++)
        assert_int_equal(run1(b, r, (uint64_t)i, "x"), 0); /* succeed, but slowly */
    assert_int_equal(swarm_engine_breaker_state(b), SWARM_BREAKER_OPEN);
    swarm_breaker_stats st = {.size = sizeof st};
    swarm_engine_breaker_get_stats(b, &st);
    assert_int_equal(st.slow_calls, 4);
    swarm_engine_destroy(b);
    /* Time window of 10 s: failures older than the window expire. */
    swarm_engine *m2 = new_mock(&fc, NULL);
    swarm_breaker_opts_init(&bo);
    bo.window_kind = SWARM_BREAKER_WINDOW_TIME;
    bo.window_size = 10;
    bo.minimum_calls = 4;
    b = new_breaker(m2, &fc, &tl, &bo);
    script_n(m2, SWARM_EUNAVAILABLE, 3);
    for (int i = 0; i < 3; i++)
        run1(b, r, (uint64_t)i, "x");
    swarm_engine_breaker_get_stats(b, &st);
    assert_int_equal(st.window_calls, 3);
    assert_int_equal(st.window_failures, 3);
    atomic_fetch_add(&fc.now, 20 * SEC);
    swarm_engine_breaker_get_stats(b, &st);
    assert_int_equal(st.window_calls, 0);
    script_n(m2, SWARM_EUNAVAILABLE, 1);
    for (int i = 0; i < 3; i++)
        run1(b, r, (uint64_t)i, "x"); /* 1 failure of 3: not enough calls yet */
    assert_int_equal(swarm_engine_breaker_state(b), SWARM_BREAKER_CLOSED);
    run1(b, r, 9, "x"); /* 1 of 4 = 25 % */
    assert_int_equal(swarm_engine_breaker_state(b), SWARM_BREAKER_CLOSED);
    /* Bad options. */
    swarm_engine *bad = NULL;
    bo.failure_rate_pct = 0;
    assert_int_equal(swarm_engine_breaker_create(&bad, m2, &bo), SWARM_EINVAL);
    bo.failure_rate_pct = 50;
    bo.window_size = 0;
    assert_int_equal(swarm_engine_breaker_create(&bad, m2, &bo), SWARM_EINVAL);
    bo.window_size = 10;
    bo.window_kind = 7;
    assert_int_equal(swarm_engine_breaker_create(&bad, m2, &bo), SWARM_EINVAL);
    assert_int_equal(swarm_engine_breaker_state(m2), SWARM_EINVAL);
    swarm_response_destroy(r);
    swarm_engine_destroy(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SWARM_TEST(test_breaker_state_machine),
        SWARM_TEST(test_breaker_half_open_limits_probes),
        SWARM_TEST(test_breaker_slow_calls_and_time_window),
    };
    return cmocka_run_group_tests_name("engine_breaker", tests, NULL, NULL);
}
