/* SPDX-License-Identifier: MIT */
/*
 * Engine unit tests, stacked decorators: retry + breaker + timeout, a timeout outside retry, and a
 * steady state that allocates nothing. Split out of the former test_engine.c; shared fixtures are
 * in engine_fixtures.h.
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

static void test_stack_retry_breaker_timeout(void **state)
{
    (void)state;
    fake_clock fc;
    fc_init(&fc);
    trlog tl = {0};
    swarm_mock_opts mo;
    swarm_mock_opts_init(&mo);
    mo.latency_kind = SWARM_MOCK_LATENCY_FIXED;
    mo.latency_ns = 100 * MS;
    swarm_engine *m = new_mock(&fc, &mo);
    swarm_timeout_opts to;
    swarm_timeout_opts_init(&to);
    to.timeout_ns = 1 * SEC;
    to.clock = fc_now;
    to.clock_ctx = &fc;
    swarm_engine *t = NULL;
    assert_int_equal(swarm_engine_timeout_create(&t, m, &to), 0);
    swarm_breaker_opts bo;
    swarm_breaker_opts_init(&bo);
    bo.minimum_calls = 4;
    bo.window_size = 4;
    swarm_engine *b = new_breaker(t, &fc, &tl, &bo);
    swarm_engine *e = new_retry(b, &fc, NULL);
    assert_string_equal(swarm_engine_name(e), "retry(breaker(timeout(mock)))");
    swarm_response *r = new_resp();
    /* A transient failure is retried through the breaker and succeeds. */
    script_n(m, SWARM_EUNAVAILABLE, 1);
    assert_int_equal(run1(e, r, 1, "x"), 0);
    swarm_response_info info = {.size = sizeof info};
    swarm_response_get_info(r, &info);
    assert_int_equal(info.attempts, 2);
    /* The breaker counts each attempt: window F S F F reaches 75 % and opens on the second
     * attempt; the third attempt meets the open breaker, which is not retried. */
    script_n(m, SWARM_EUNAVAILABLE, 2);
    assert_int_equal(run1(e, r, 2, "x"), SWARM_EBREAKER_OPEN);
    assert_int_equal(swarm_engine_breaker_state(b), SWARM_BREAKER_OPEN);
    /* Open breaker: not retried (fail fast). */
    uint64_t calls = mock_calls(m);
    assert_int_equal(run1(e, r, 3, "x"), SWARM_EBREAKER_OPEN);
    assert_int_equal(mock_calls(m), calls);
    swarm_response_destroy(r);
    swarm_engine_destroy(e);
}

static void test_stack_timeout_outside_retry_bounds_total(void **state)
{
    (void)state;
    fake_clock fc;
    fc_init(&fc);
    swarm_mock_opts mo;
    swarm_mock_opts_init(&mo);
    mo.latency_kind = SWARM_MOCK_LATENCY_FIXED;
    mo.latency_ns = 400 * MS;
    swarm_mock_fault f = {.code = SWARM_EUNAVAILABLE, .probability = 1.0};
    mo.faults = &f;
    mo.n_faults = 1;
    swarm_engine *m = new_mock(&fc, &mo);
    swarm_retry_opts ro;
    swarm_retry_opts_init(&ro);
    ro.max_attempts = 10;
    ro.base_ns = ro.cap_ns = 300 * MS;
    ro.budget_max_tokens = UINT32_MAX;
    swarm_engine *rt = new_retry(m, &fc, &ro);
    swarm_timeout_opts to;
    swarm_timeout_opts_init(&to);
    to.timeout_ns = 1 * SEC;
    to.clock = fc_now;
    to.clock_ctx = &fc;
    swarm_engine *t = NULL;
    assert_int_equal(swarm_engine_timeout_create(&t, rt, &to), 0);
    swarm_response *r = new_resp();
    int64_t t0 = atomic_load(&fc.now);
    int rc = run1(t, r, 1, "x");
    assert_true(rc == SWARM_EUNAVAILABLE || rc == SWARM_ETIMEDOUT);
    assert_true(atomic_load(&fc.now) - t0 <= 1 * SEC); /* the total deadline held */
    assert_true(mock_calls(m) < 10);
    swarm_response_destroy(r);
    swarm_engine_destroy(t);
}

static void test_stack_steady_state_allocates_nothing(void **state)
{
    (void)state;
    counting_alloc ca = {.fail_after = -1};
    swarm_allocator a = {.ctx = &ca, .alloc = ca_alloc, .free = ca_free};
    swarm_mock_opts mo;
    swarm_mock_opts_init(&mo);
    mo.alloc = &a;
    mo.batch = 1;
    mo.chunk_bytes = 2;
    swarm_engine *m1 = NULL, *m2 = NULL, *t = NULL, *b = NULL, *r = NULL, *f = NULL, *s = NULL,
                 *top = NULL;
    assert_int_equal(swarm_engine_mock_create(&m1, &mo), 0);
    assert_int_equal(swarm_engine_mock_create(&m2, &mo), 0);
    swarm_timeout_opts to;
    swarm_timeout_opts_init(&to);
    to.alloc = &a;
    assert_int_equal(swarm_engine_timeout_create(&t, m1, &to), 0);
    swarm_breaker_opts bo;
    swarm_breaker_opts_init(&bo);
    bo.alloc = &a;
    assert_int_equal(swarm_engine_breaker_create(&b, t, &bo), 0);
    swarm_retry_opts ro;
    swarm_retry_opts_init(&ro);
    ro.alloc = &a;
    assert_int_equal(swarm_engine_retry_create(&r, b, &ro), 0);
    assert_int_equal(swarm_engine_fallback_create(&f, r, m2, &a), 0);
    swarm_engine *one[1] = {f};
    uint32_t w[1] = {1};
    swarm_split_opts so;
    swarm_split_opts_init(&so);
    so.alloc = &a;
    assert_int_equal(swarm_engine_split_create(&s, one, w, 1, &so), 0);
    swarm_batcher_opts ba;
    swarm_batcher_opts_init(&ba);
    ba.alloc = &a;
    assert_int_equal(swarm_engine_batcher_create(&top, s, &ba), 0);
    swarm_response_opts rop;
    swarm_response_opts_init(&rop);
    rop.alloc = &a;
    swarm_response *resp = NULL;
    assert_int_equal(swarm_response_create(&resp, &rop), 0);
    counter c = {0};
    swarm_response_set_stream(resp, on_chunk, &c);
    assert_int_equal(run1(top, resp, 0, "warm"), 0);
    long before = atomic_load(&ca.allocs);
    for (int i = 1; i <= 200; i++) {
        c.seen_len = 0;
        assert_int_equal(run1(top, resp, (uint64_t)i, "steady"), 0);
    }
    assert_int_equal(atomic_load(&ca.allocs), before);
    swarm_response_destroy(resp);
    swarm_engine_destroy(top);
    assert_int_equal(atomic_load(&ca.allocs), atomic_load(&ca.frees)); /* nothing leaked */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SWARM_TEST(test_stack_retry_breaker_timeout),
        SWARM_TEST(test_stack_timeout_outside_retry_bounds_total),
        SWARM_TEST(test_stack_steady_state_allocates_nothing),
    };
    return cmocka_run_group_tests_name("engine_stack", tests, NULL, NULL);
}
