/* SPDX-License-Identifier: MIT */
/*
 * Engine unit tests, the fallback and split decorators: failover on failure and open breaker,
 * weights, stickiness, random mode and batches. Split out of the former test_engine.c; shared
 * fixtures are in engine_fixtures.h.
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

static void test_fallback_on_failure_and_open_breaker(void **state)
{
    (void)state;
    fake_clock fc;
    fc_init(&fc);
    swarm_engine *p = new_mock(&fc, NULL);
    echo st = {0};
    swarm_engine *s = new_echo(&st);
    swarm_engine *f = NULL;
    assert_int_equal(swarm_engine_fallback_create(&f, p, p, NULL), SWARM_EINVAL);
    assert_int_equal(swarm_engine_fallback_create(&f, p, s, NULL), 0);
    assert_string_equal(swarm_engine_name(f), "fallback(mock,echo)");
    swarm_response *r = new_resp();
    assert_int_equal(run1(f, r, 1, "x"), 0);
    assert_int_equal(atomic_load(&st.calls), 0);
    script_n(p, SWARM_EUNAVAILABLE, 1);
    assert_int_equal(run1(f, r, 2, "y"), 0);
    assert_int_equal(atomic_load(&st.calls), 1);
    swarm_response_info info = {.size = sizeof info};
    swarm_response_get_info(r, &info);
    assert_int_equal(info.attempts, 2);
    assert_string_equal(swarm_response_error_message(r), "");
    /* Invalid requests are the caller's fault: no fallback. */
    script_n(p, SWARM_EINVAL, 1);
    assert_int_equal(run1(f, r, 3, "z"), SWARM_EINVAL);
    assert_int_equal(atomic_load(&st.calls), 1);
    /* Batches: only the failed requests go to the secondary. */
    script_n(p, 0, 1);
    script_n(p, SWARM_EINTERNAL, 1);
    swarm_request q[2];
    const swarm_request *qp[2] = {&q[0], &q[1]};
    swarm_response *rp[2] = {new_resp(), new_resp()};
    req_init(&q[0], 10, "a");
    req_init(&q[1], 11, "b");
    assert_int_equal(swarm_engine_infer_batch(f, qp, rp, 2), 0);
    assert_int_equal(swarm_response_status(rp[0]), 0);
    assert_int_equal(swarm_response_status(rp[1]), 0);
    assert_int_equal(atomic_load(&st.calls), 2);
    swarm_response_destroy(rp[0]);
    swarm_response_destroy(rp[1]);
    swarm_engine_destroy(f);
    /* An open breaker on the primary sends everything to the secondary. */
    trlog tl = {0};
    swarm_breaker_opts bo;
    swarm_breaker_opts_init(&bo);
    bo.minimum_calls = 1;
    swarm_engine *pm = new_mock(&fc, NULL);
    swarm_engine *pb = new_breaker(pm, &fc, &tl, &bo);
    echo st2 = {0};
    assert_int_equal(swarm_engine_fallback_create(&f, pb, new_echo(&st2), NULL), 0);
    script_n(pm, SWARM_EOVERLOADED, 1);
    assert_int_equal(run1(f, r, 20, "x"), 0);
    assert_int_equal(swarm_engine_breaker_state(pb), SWARM_BREAKER_OPEN);
    for (int i = 0; i < 5; i++)
        assert_int_equal(run1(f, r, 21, "x"), 0);
    assert_int_equal(atomic_load(&st2.calls), 6);
    assert_int_equal(mock_calls(pm), 1);
    swarm_response_destroy(r);
    swarm_engine_destroy(f);
}

/* The options form (issue 13 item 11): the same decorator, its allocator from the opts. */
static void test_fallback_create_ex_takes_opts(void **state)
{
    (void)state;
    fake_clock fc;
    fc_init(&fc);
    swarm_engine *p = new_mock(&fc, NULL);
    echo st = {0};
    swarm_engine *s = new_echo(&st);
    swarm_fallback_opts o;
    memset(&o, 0xAB, sizeof o);
    assert_int_equal(swarm_fallback_opts_init(&o), 0);
    assert_int_equal(o.size, sizeof o);
    assert_null(o.alloc);
    swarm_engine *f = NULL;
    assert_int_equal(swarm_engine_fallback_create_ex(&f, p, p, &o), SWARM_EINVAL);
    o.size = 1;
    assert_int_equal(swarm_engine_fallback_create_ex(&f, p, s, &o), SWARM_EINVAL);
    o.size = sizeof o;
    assert_int_equal(swarm_engine_fallback_create_ex(&f, p, s, &o), 0);
    assert_string_equal(swarm_engine_name(f), "fallback(mock,echo)");
    swarm_response *r = new_resp();
    script_n(p, SWARM_EUNAVAILABLE, 1);
    assert_int_equal(run1(f, r, 1, "x"), 0);
    assert_int_equal(atomic_load(&st.calls), 1);
    swarm_response_destroy(r);
    swarm_engine_destroy(f);
    /* NULL opts: the defaults. */
    p = new_mock(&fc, NULL);
    s = new_echo(&st);
    assert_int_equal(swarm_engine_fallback_create_ex(&f, p, s, NULL), 0);
    swarm_engine_destroy(f);
}

static void test_split_weights_and_stickiness(void **state)
{
    (void)state;
    swarm_engine *e[3] = {new_mock(NULL, NULL), new_mock(NULL, NULL), new_mock(NULL, NULL)};
    uint32_t w[3] = {70, 30, 0};
    swarm_engine *s = NULL;
    uint32_t zero[3] = {0, 0, 0};
    assert_int_equal(swarm_engine_split_create(&s, e, zero, 3, NULL), SWARM_EINVAL);
    assert_int_equal(swarm_engine_split_create(&s, e, w, 0, NULL), SWARM_EINVAL);
    assert_int_equal(swarm_engine_split_create(&s, NULL, w, 3, NULL), SWARM_EINVAL);
    assert_int_equal(swarm_engine_split_create(&s, e, w, 3, NULL), 0);
    assert_string_equal(swarm_engine_name(s), "split(mock,mock,mock)");
    swarm_response *r = new_resp();
    const int n = 20000;
    for (int i = 0; i < n; i++)
        assert_int_equal(run1(s, r, (uint64_t)i, "x"), 0);
    uint64_t c[3];
    assert_int_equal(swarm_engine_split_get_counts(s, c, 3), 3);
    /* Binomial sd = sqrt(20000 * 0.21) ~ 65: allow 6 sd around 14000. */
    assert_true(c[0] > 14000 - 390 && c[0] < 14000 + 390);
    assert_int_equal(c[0] + c[1], n);
    assert_int_equal(c[2], 0);
    assert_int_equal(mock_calls(e[0]), c[0]);
    /* Sticky: one id always lands on the same engine. */
    for (int k = 0; k < 20; k++) {
        uint64_t before[3];
        swarm_engine_split_get_counts(s, before, 3);
        for (int i = 0; i < 10; i++)
            run1(s, r, 1000 + (uint64_t)k, "x");
        uint64_t after[3];
        swarm_engine_split_get_counts(s, after, 3);
        int moved = 0;
        for (int j = 0; j < 3; j++)
            moved += after[j] != before[j];
        assert_int_equal(moved, 1);
    }
    /* New weights take effect; bad ones are refused. */
    uint32_t w2[3] = {0, 0, 5};
    assert_int_equal(swarm_engine_split_set_weights(s, w2, 3), 0);
    uint64_t before = mock_calls(e[2]);
    for (int i = 0; i < 100; i++)
        run1(s, r, (uint64_t)i, "x");
    assert_int_equal(mock_calls(e[2]), before + 100);
    assert_int_equal(swarm_engine_split_set_weights(s, zero, 3), SWARM_EINVAL);
    assert_int_equal(swarm_engine_split_set_weights(s, w2, 2), SWARM_EINVAL);
    assert_int_equal(swarm_engine_split_get_counts(e[0], c, 3), SWARM_EINVAL);
    swarm_response_destroy(r);
    swarm_engine_destroy(s);
}

static void test_split_random_mode_and_batches(void **state)
{
    (void)state;
    swarm_mock_opts mo;
    swarm_mock_opts_init(&mo);
    mo.batch = 1;
    swarm_engine *e[2] = {new_mock(NULL, &mo), new_mock(NULL, &mo)};
    uint32_t w[2] = {1, 3};
    swarm_split_opts so;
    swarm_split_opts_init(&so);
    so.sticky = 2;
    so.seed = 5;
    swarm_engine *s = NULL;
    uint32_t huge[2] = {UINT32_MAX, 2};
    assert_int_equal(swarm_engine_split_create(&s, e, huge, 2, &so), SWARM_EINVAL);
    so.sticky = 3;
    assert_int_equal(swarm_engine_split_create(&s, e, w, 2, &so), SWARM_EINVAL);
    so.sticky = 2;
    assert_int_equal(swarm_engine_split_create(&s, e, w, 2, &so), 0);
    swarm_response *r = new_resp();
    for (int i = 0; i < 8000; i++)
        run1(s, r, 7, "x"); /* the same id, spread by the PRNG */
    uint64_t c[2];
    swarm_engine_split_get_counts(s, c, 2);
    assert_true(c[0] > 2000 - 300 && c[0] < 2000 + 300); /* sd ~39 */
    /* A batch is routed per request, one sub-batch per engine. */
    swarm_request q[40];
    const swarm_request *qp[40];
    swarm_response *rp[40];
    for (int i = 0; i < 40; i++) {
        req_init(&q[i], (uint64_t)i, "b");
        qp[i] = &q[i];
        rp[i] = new_resp();
    }
    assert_int_equal(swarm_engine_infer_batch(s, qp, rp, 40), 0);
    swarm_mock_stats m0 = {.size = sizeof m0}, m1 = {.size = sizeof m1};
    swarm_engine_mock_get_stats(e[0], &m0);
    swarm_engine_mock_get_stats(e[1], &m1);
    assert_int_equal(m0.batch_calls + m1.batch_calls, 2); /* one sub-batch per engine */
    for (int i = 0; i < 40; i++) {
        assert_int_equal(swarm_response_status(rp[i]), 0);
        swarm_response_destroy(rp[i]);
    }
    swarm_response_destroy(r);
    swarm_engine_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SWARM_TEST(test_fallback_on_failure_and_open_breaker),
        SWARM_TEST(test_fallback_create_ex_takes_opts),
        SWARM_TEST(test_split_weights_and_stickiness),
        SWARM_TEST(test_split_random_mode_and_batches),
    };
    return cmocka_run_group_tests_name("engine_fallback_split", tests, NULL, NULL);
}
