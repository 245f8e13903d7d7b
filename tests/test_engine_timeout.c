/* SPDX-License-Identifier: MIT */
/*
 * Engine unit tests, the timeout decorator: deadlines, cancellation, and the timeout and breaker
 * batch paths. Split out of the former test_engine.c; shared fixtures are in engine_fixtures.h.
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

static void test_timeout_deadline_and_cancel(void **state)
{
    (void)state;
    fake_clock fc;
    fc_init(&fc);
    swarm_mock_opts mo;
    swarm_mock_opts_init(&mo);
    mo.latency_kind = SWARM_MOCK_LATENCY_FIXED;
    mo.latency_ns = 2 * SEC;
    swarm_engine *m = new_mock(&fc, &mo);
    swarm_timeout_opts to;
    swarm_timeout_opts_init(&to);
    assert_int_equal(to.timeout_ns, 30 * SEC);
    to.timeout_ns = 1 * SEC;
    to.clock = fc_now;
    to.clock_ctx = &fc;
    swarm_engine *t = NULL;
    assert_int_equal(swarm_engine_timeout_create(&t, m, &to), 0);
    assert_string_equal(swarm_engine_name(t), "timeout(mock)");
    swarm_response *r = new_resp();
    int64_t t0 = atomic_load(&fc.now);
    assert_int_equal(run1(t, r, 1, "x"), SWARM_ETIMEDOUT);
    assert_int_equal(atomic_load(&fc.now) - t0, 1 * SEC); /* cut at the deadline */
    /* The caller's tighter deadline wins; an expired one never reaches the engine. */
    swarm_request q;
    req_init(&q, 2, "x");
    q.deadline_ns = atomic_load(&fc.now) - 1;
    swarm_response_reset(r);
    uint64_t before = mock_calls(m);
    assert_int_equal(swarm_engine_infer(t, &q, r), SWARM_ETIMEDOUT);
    assert_int_equal(mock_calls(m), before);
    /* The caller's token is a cancel, not a timeout. */
    swarm_cancel *c = NULL;
    swarm_cancel_create(&c, NULL);
    swarm_cancel_trigger(c);
    req_init(&q, 3, "x");
    q.cancel = c;
    swarm_response_reset(r);
    assert_int_equal(swarm_engine_infer(t, &q, r), SWARM_ECANCELED);
    swarm_cancel_destroy(c);
    /* Within budget: success. */
    to.timeout_ns = 5 * SEC;
    swarm_engine *m2 = new_mock(&fc, &mo), *t2 = NULL;
    assert_int_equal(swarm_engine_timeout_create(&t2, m2, &to), 0);
    assert_int_equal(run1(t2, r, 4, "x"), 0);
    to.timeout_ns = -1;
    swarm_engine *bad = NULL;
    assert_int_equal(swarm_engine_timeout_create(&bad, m2, &to), SWARM_EINVAL);
    assert_int_equal(swarm_engine_timeout_create(&bad, NULL, NULL), SWARM_EINVAL);
    swarm_response_destroy(r);
    swarm_engine_destroy(t);
    swarm_engine_destroy(t2);
}

static void test_timeout_and_breaker_batch_paths(void **state)
{
    (void)state;
    fake_clock fc;
    fc_init(&fc);
    swarm_mock_opts mo;
    swarm_mock_opts_init(&mo);
    mo.batch = 1;
    swarm_engine *m = new_mock(&fc, &mo);
    swarm_timeout_opts to;
    swarm_timeout_opts_init(&to);
    to.clock = fc_now;
    to.clock_ctx = &fc;
    swarm_engine *t = NULL;
    assert_int_equal(swarm_engine_timeout_create(&t, m, &to), 0);
    trlog tl = {0};
    swarm_breaker_opts bo;
    swarm_breaker_opts_init(&bo);
    swarm_engine *b = new_breaker(t, &fc, &tl, &bo);
    swarm_request q[20];
    const swarm_request *qp[20];
    swarm_response *rp[20];
    for (int i = 0; i < 20; i++) {
        req_init(&q[i], (uint64_t)i, "p");
        if (i % 4 == 0)
            q[i].deadline_ns = atomic_load(&fc.now) - 1; /* already expired */
        qp[i] = &q[i];
        rp[i] = new_resp();
    }
    assert_int_equal(swarm_engine_infer_batch(b, qp, rp, 20), 0);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(swarm_response_status(rp[i]), i % 4 == 0 ? SWARM_ETIMEDOUT : 0);
        swarm_response_destroy(rp[i]);
    }
    swarm_breaker_stats st = {.size = sizeof st};
    swarm_engine_breaker_get_stats(b, &st);
    assert_int_equal(st.calls, 20);
    assert_int_equal(st.failures, 5);
    swarm_mock_stats ms = {.size = sizeof ms};
    swarm_engine_mock_get_stats(m, &ms);
    assert_int_equal(ms.calls, 15);
    assert_int_equal(ms.batch_calls, 1);
    swarm_engine_destroy(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SWARM_TEST(test_timeout_deadline_and_cancel),
        SWARM_TEST(test_timeout_and_breaker_batch_paths),
    };
    return cmocka_run_group_tests_name("engine_timeout", tests, NULL, NULL);
}
