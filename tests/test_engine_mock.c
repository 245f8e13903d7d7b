/* SPDX-License-Identifier: MIT */
/*
 * Engine unit tests, the mock engine: seeded latency distributions, failure rate, hangs, scripts
 * and streaming. Split out of the former test_engine.c; shared fixtures are in engine_fixtures.h.
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

static void test_mock_latency_distributions_are_seeded(void **state)
{
    (void)state;
    for (int kind = SWARM_MOCK_LATENCY_FIXED; kind <= SWARM_MOCK_LATENCY_LOGNORMAL; kind++) {
        int64_t first[2][32];
        for (int run = 0; run < 2; run++) {
            fake_clock fc;
            fc_init(&fc);
            swarm_mock_opts mo;
            swarm_mock_opts_init(&mo);
            mo.latency_kind = (uint32_t)kind;
            mo.latency_ns = 10 * MS;
            mo.latency_max_ns = 20 * MS;
            mo.seed = 7;
            swarm_engine *m = new_mock(&fc, &mo);
            swarm_response *r = new_resp();
            for (int i = 0; i < 32; i++)
                assert_int_equal(run1(m, r, (uint64_t)i, "x"), 0);
            assert_int_equal(atomic_load(&fc.n_slept), 32);
            for (int i = 0; i < 32; i++) {
                first[run][i] = fc.slept[i];
                if (kind == SWARM_MOCK_LATENCY_FIXED)
                    assert_int_equal(fc.slept[i], 10 * MS);
                if (kind == SWARM_MOCK_LATENCY_UNIFORM)
                    assert_true(fc.slept[i] >= 10 * MS && fc.slept[i] <= 20 * MS);
                if (kind == SWARM_MOCK_LATENCY_LOGNORMAL)
                    assert_true(fc.slept[i] > 0);
            }
            swarm_response_destroy(r);
            swarm_engine_destroy(m);
        }
        assert_memory_equal(first[0], first[1], sizeof first[0]); /* same seed, same draws */
    }
}

static void test_mock_failure_rate_and_bad_opts(void **state)
{
    (void)state;
    swarm_mock_fault f[2] = {
        {.code = SWARM_EUNAVAILABLE, .probability = 0.2},
        {.code = SWARM_EOVERLOADED, .probability = 0.25, .retry_after_ns = 3 * MS}};
    swarm_mock_opts mo;
    swarm_mock_opts_init(&mo);
    mo.faults = f;
    mo.n_faults = 2;
    swarm_engine *m = new_mock(NULL, &mo);
    swarm_response *r = new_resp();
    int unav = 0, over = 0, ok = 0;
    const int n = 10000;
    for (int i = 0; i < n; i++) {
        int rc = run1(m, r, (uint64_t)i, "x");
        unav += rc == SWARM_EUNAVAILABLE;
        over += rc == SWARM_EOVERLOADED;
        ok += rc == 0;
        if (rc == SWARM_EOVERLOADED) {
            swarm_response_info info = {.size = sizeof info};
            swarm_response_get_info(r, &info);
            assert_int_equal(info.retry_after_ns, 3 * MS);
        }
    }
    assert_int_equal(unav + over + ok, n);
    /* Expected 2000 and 0.8 * 0.25 * n = 2000, sd about 40: allow 6 sd. */
    assert_true(unav > 1750 && unav < 2250);
    assert_true(over > 1750 && over < 2250);
    swarm_response_destroy(r);
    swarm_engine_destroy(m);
    swarm_engine *e = NULL;
    f[0].code = 1;
    assert_int_equal(swarm_engine_mock_create(&e, &mo), SWARM_EINVAL);
    f[0].code = SWARM_EUNAVAILABLE;
    f[0].probability = 1.5;
    assert_int_equal(swarm_engine_mock_create(&e, &mo), SWARM_EINVAL);
    swarm_mock_opts_init(&mo);
    mo.latency_kind = 9;
    assert_int_equal(swarm_engine_mock_create(&e, &mo), SWARM_EINVAL);
    mo.latency_kind = 0;
    mo.size = 4;
    assert_int_equal(swarm_engine_mock_create(&e, &mo), SWARM_EINVAL);
    assert_int_equal(swarm_engine_mock_create(NULL, NULL), SWARM_EINVAL);
    assert_null(e);
}

static void test_mock_hang_until_deadline_or_cancel(void **state)
{
    (void)state;
    fake_clock fc;
    fc_init(&fc);
    swarm_mock_opts mo;
    swarm_mock_opts_init(&mo);
    mo.hang_probability = 1.0;
    swarm_engine *m = new_mock(&fc, &mo);
    swarm_response *r = new_resp();
    swarm_request q;
    req_init(&q, 1, "x");
    q.deadline_ns = atomic_load(&fc.now) + 50 * MS;
    assert_int_equal(swarm_engine_infer(m, &q, r), SWARM_ETIMEDOUT);
    assert_true(atomic_load(&fc.now) >= q.deadline_ns);
    swarm_cancel *c = NULL;
    swarm_cancel_create(&c, NULL);
    swarm_cancel_trigger(c);
    req_init(&q, 2, "x");
    q.cancel = c;
    swarm_response_reset(r);
    assert_int_equal(swarm_engine_infer(m, &q, r), SWARM_ECANCELED);
    swarm_mock_stats st = {.size = sizeof st};
    swarm_engine_mock_get_stats(m, &st);
    assert_int_equal(st.hangs, 2);
    assert_int_equal(st.canceled, 2);
    assert_int_equal(swarm_engine_cancel(m, 2), 0);
    swarm_cancel_destroy(c);
    swarm_response_destroy(r);
    swarm_engine_destroy(m);
}

static void test_mock_script_and_streaming(void **state)
{
    (void)state;
    swarm_mock_opts mo;
    swarm_mock_opts_init(&mo);
    mo.chunk_bytes = 3;
    swarm_engine *m = new_mock(NULL, &mo);
    int32_t codes[3] = {SWARM_EUNAVAILABLE, 0, SWARM_EINTERNAL};
    assert_int_equal(swarm_engine_mock_script(m, codes, 3), 0);
    swarm_response *r = new_resp();
    counter c = {0};
    swarm_response_set_stream(r, on_chunk, &c);
    assert_int_equal(run1(m, r, 1, "abcdefgh"), SWARM_EUNAVAILABLE);
    assert_string_equal(swarm_response_error_message(r), "mock: injected failure");
    assert_int_equal(run1(m, r, 2, "abcdefgh"), 0);
    assert_int_equal(c.chunks, 3);
    assert_int_equal(run1(m, r, 3, "abcdefgh"), SWARM_EINTERNAL);
    assert_int_equal(run1(m, r, 4, "abcdefgh"), 0);
    int32_t big[257] = {0};
    assert_int_equal(swarm_engine_mock_script(m, big, 257), SWARM_ERANGE);
    assert_int_equal(swarm_engine_mock_script(NULL, big, 1), SWARM_EINVAL);
    swarm_response_destroy(r);
    swarm_engine_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SWARM_TEST(test_mock_latency_distributions_are_seeded),
        SWARM_TEST(test_mock_failure_rate_and_bad_opts),
        SWARM_TEST(test_mock_hang_until_deadline_or_cancel),
        SWARM_TEST(test_mock_script_and_streaming),
    };
    return cmocka_run_group_tests_name("engine_mock", tests, NULL, NULL);
}
