/* SPDX-License-Identifier: MIT */
/*
 * Engine unit tests, the retry decorator: full-jitter backoff, retryable codes, Retry-After and
 * deadlines, streamed output, the retry budget, cancellation and batches. Split out of the former
 * test_engine.c; shared fixtures are in engine_fixtures.h.
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

static void test_retry_backoff_full_jitter(void **state)
{
    (void)state;
    fake_clock fc;
    fc_init(&fc);
    swarm_engine *m = new_mock(&fc, NULL);
    swarm_retry_opts ro;
    swarm_retry_opts_init(&ro);
    assert_int_equal(ro.max_attempts, 3);
    assert_int_equal(ro.base_ns, 100 * MS);
    assert_int_equal(ro.cap_ns, 2 * SEC);
    ro.max_attempts = 6;
    ro.budget_max_tokens = UINT32_MAX; /* budget off: test the backoff alone */
    swarm_engine *e = new_retry(m, &fc, &ro);
    int32_t codes[5] = {SWARM_EUNAVAILABLE, SWARM_EOVERLOADED, SWARM_ETIMEDOUT, SWARM_EUNAVAILABLE,
                        SWARM_EUNAVAILABLE};
    swarm_engine_mock_script(m, codes, 5);
    swarm_response *r = new_resp();
    assert_int_equal(run1(e, r, 1, "hi"), 0);
    assert_string_equal(swarm_response_data(r, NULL), "hi");
    swarm_response_info info = {.size = sizeof info};
    swarm_response_get_info(r, &info);
    assert_int_equal(info.attempts, 6);
    assert_int_equal(atomic_load(&fc.n_slept), 5);
    int64_t ceil = 100 * MS;
    for (int i = 0; i < 5; i++) {
        assert_true(fc.slept[i] >= 0 && fc.slept[i] <= ceil);
        ceil = ceil * 2 > 2 * SEC ? 2 * SEC : ceil * 2;
    }
    swarm_retry_stats st = {.size = sizeof st};
    assert_int_equal(swarm_engine_retry_get_stats(e, &st), 0);
    assert_int_equal(st.attempts, 6);
    assert_int_equal(st.retries, 5);
    /* Jitter is spread out: many backoffs for the first retry are not all equal. */
    int64_t lo = INT64_MAX, hi = 0;
    for (int i = 0; i < 50; i++) {
        int32_t one = SWARM_EUNAVAILABLE;
        swarm_engine_mock_script(m, &one, 1);
        int n0 = atomic_load(&fc.n_slept);
        assert_int_equal(run1(e, r, 2, "x"), 0);
        int64_t s = fc.slept[n0 < 256 ? n0 : 255];
        lo = s < lo ? s : lo;
        hi = s > hi ? s : hi;
    }
    assert_true(hi - lo > 20 * MS);
    swarm_response_destroy(r);
    swarm_engine_destroy(e);
}

static void test_retry_only_retryable_and_max_attempts(void **state)
{
    (void)state;
    fake_clock fc;
    fc_init(&fc);
    swarm_engine *m = new_mock(&fc, NULL);
    swarm_engine *e = new_retry(m, &fc, NULL);
    swarm_response *r = new_resp();
    int32_t inv = SWARM_EINVAL, internal = SWARM_EINTERNAL, canc = SWARM_ECANCELED;
    swarm_engine_mock_script(m, &inv, 1);
    assert_int_equal(run1(e, r, 1, "x"), SWARM_EINVAL);
    swarm_engine_mock_script(m, &internal, 1);
    assert_int_equal(run1(e, r, 2, "x"), SWARM_EINTERNAL);
    swarm_engine_mock_script(m, &canc, 1);
    assert_int_equal(run1(e, r, 3, "x"), SWARM_ECANCELED);
    assert_int_equal(mock_calls(m), 3);
    assert_int_equal(atomic_load(&fc.n_slept), 0);
    int32_t four[4] = {SWARM_EUNAVAILABLE, SWARM_EUNAVAILABLE, SWARM_EUNAVAILABLE, 0};
    swarm_engine_mock_script(m, four, 4);
    assert_int_equal(run1(e, r, 4, "x"), SWARM_EUNAVAILABLE); /* 3 attempts total */
    assert_int_equal(mock_calls(m), 6);
    assert_int_equal(run1(e, r, 5, "x"), 0); /* the scripted 0 */
    swarm_retry_opts ro;
    swarm_retry_opts_init(&ro);
    ro.max_attempts = 0;
    swarm_engine *bad = NULL;
    assert_int_equal(swarm_engine_retry_create(&bad, m, &ro), SWARM_EINVAL);
    swarm_retry_opts_init(&ro);
    ro.base_ns = 3 * SEC;
    assert_int_equal(swarm_engine_retry_create(&bad, m, &ro), SWARM_EINVAL);
    assert_int_equal(swarm_engine_retry_create(&bad, NULL, NULL), SWARM_EINVAL);
    assert_int_equal(swarm_engine_retry_get_stats(m, &(swarm_retry_stats){.size = 64}),
                     SWARM_EINVAL);
    swarm_response_destroy(r);
    swarm_engine_destroy(e);
}

static void test_retry_honours_retry_after_and_deadline(void **state)
{
    (void)state;
    fake_clock fc;
    fc_init(&fc);
    swarm_mock_fault f = {.code = SWARM_EOVERLOADED, .probability = 1.0, .retry_after_ns = 5 * SEC};
    swarm_mock_opts mo;
    swarm_mock_opts_init(&mo);
    mo.faults = &f;
    mo.n_faults = 1;
    swarm_engine *m = new_mock(&fc, &mo);
    swarm_engine *e = new_retry(m, &fc, NULL);
    swarm_response *r = new_resp();
    assert_int_equal(run1(e, r, 1, "x"), SWARM_EOVERLOADED);
    assert_int_equal(atomic_load(&fc.n_slept), 2);
    assert_int_equal(fc.slept[0], 5 * SEC); /* the hint beats the jitter */
    assert_int_equal(fc.slept[1], 5 * SEC);
    /* A deadline closer than the hint: no retry at all. */
    swarm_request q;
    req_init(&q, 2, "x");
    q.deadline_ns = atomic_load(&fc.now) + 1 * SEC;
    swarm_response_reset(r);
    assert_int_equal(swarm_engine_infer(e, &q, r), SWARM_EOVERLOADED);
    assert_int_equal(atomic_load(&fc.n_slept), 2);
    swarm_retry_stats st = {.size = sizeof st};
    swarm_engine_retry_get_stats(e, &st);
    assert_int_equal(st.deadline_denied, 1);
    swarm_response_destroy(r);
    swarm_engine_destroy(e);
}

static void test_retry_never_after_streamed_output(void **state)
{
    (void)state;
    fake_clock fc;
    fc_init(&fc);
    echo st = {.fail = SWARM_EUNAVAILABLE};
    swarm_engine *e = new_retry(new_echo(&st), &fc, NULL);
    swarm_response *r = new_resp();
    /* Without a stream callback, buffered output of a failed attempt is discarded and retried. */
    assert_int_equal(run1(e, r, 1, "abc"), SWARM_EUNAVAILABLE);
    assert_int_equal(atomic_load(&st.calls), 3);
    assert_string_equal(swarm_response_data(r, NULL), "abc"); /* only the last attempt's */
    /* With a stream callback that saw output: one attempt only. */
    counter c = {0};
    swarm_response_set_stream(r, on_chunk, &c);
    assert_int_equal(run1(e, r, 2, "abc"), SWARM_EUNAVAILABLE);
    assert_int_equal(atomic_load(&st.calls), 4);
    swarm_retry_stats rs = {.size = sizeof rs};
    swarm_engine_retry_get_stats(e, &rs);
    assert_int_equal(rs.after_stream, 1);
    swarm_response_destroy(r);
    swarm_engine_destroy(e);
}

static void test_retry_budget_limits_retries_in_outage(void **state)
{
    (void)state;
    fake_clock fc;
    fc_init(&fc);
    swarm_mock_fault f = {.code = SWARM_EUNAVAILABLE, .probability = 1.0};
    swarm_mock_opts mo;
    swarm_mock_opts_init(&mo);
    mo.faults = &f;
    mo.n_faults = 1;
    swarm_engine *m = new_mock(&fc, &mo);
    swarm_engine *e = new_retry(m, &fc, NULL); /* bucket 10, retries while > 5 */
    swarm_response *r = new_resp();
    for (int i = 0; i < 100; i++)
        assert_int_equal(run1(e, r, (uint64_t)i, "x"), SWARM_EUNAVAILABLE);
    swarm_retry_stats st = {.size = sizeof st};
    swarm_engine_retry_get_stats(e, &st);
    /* Without a budget: 300 attempts. With it: the bucket drains after a few calls. */
    assert_true(st.retries <= 6);
    assert_true(st.budget_denied >= 90);
    assert_int_equal(st.attempts, 100 + st.retries);
    assert_int_equal(st.budget_milli, 0);
    swarm_response_destroy(r);
    swarm_engine_destroy(e);
}

static void test_retry_backoff_wakes_on_cancel(void **state)
{
    (void)state;
    /* The real sleep: with an hour of backoff, a fired token makes it return at once. The echo
     * engine ignores the token, so the retry path is reached. */
    echo st = {.fail = SWARM_EUNAVAILABLE};
    swarm_retry_opts ro;
    swarm_retry_opts_init(&ro);
    ro.base_ns = ro.cap_ns = 3600 * SEC;
    swarm_engine *e = NULL;
    assert_int_equal(swarm_engine_retry_create(&e, new_echo(&st), &ro), 0);
    swarm_cancel *c = NULL;
    swarm_cancel_create(&c, NULL);
    swarm_cancel_trigger(c);
    swarm_request q;
    req_init(&q, 1, "x");
    q.cancel = c;
    swarm_response *r = new_resp();
    assert_int_equal(swarm_engine_infer(e, &q, r), SWARM_ECANCELED);
    assert_int_equal(atomic_load(&st.calls), 1);
    swarm_cancel_destroy(c);
    swarm_response_destroy(r);
    swarm_engine_destroy(e);
}

static void test_retry_batch_reruns_only_failed(void **state)
{
    (void)state;
    fake_clock fc;
    fc_init(&fc);
    swarm_mock_opts mo;
    swarm_mock_opts_init(&mo);
    mo.batch = 1;
    swarm_engine *m = new_mock(&fc, &mo);
    swarm_engine *e = new_retry(m, &fc, NULL);
    int32_t codes[4] = {SWARM_EUNAVAILABLE, 0, SWARM_EINVAL, SWARM_EOVERLOADED};
    swarm_engine_mock_script(m, codes, 4);
    swarm_request q[4];
    const swarm_request *qp[4];
    swarm_response *rp[4];
    for (int i = 0; i < 4; i++) {
        req_init(&q[i], (uint64_t)i, "abc");
        qp[i] = &q[i];
        rp[i] = new_resp();
    }
    assert_int_equal(swarm_engine_infer_batch(e, qp, rp, 4), 0);
    int want[4] = {0, 0, SWARM_EINVAL, 0};
    unsigned attempts[4] = {2, 1, 1, 2};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(swarm_response_status(rp[i]), want[i]);
        swarm_response_info info = {.size = sizeof info};
        swarm_response_get_info(rp[i], &info);
        assert_int_equal(info.attempts, attempts[i]);
        if (want[i] == 0)
            assert_string_equal(swarm_response_data(rp[i], NULL), "abc");
        swarm_response_destroy(rp[i]);
    }
    swarm_mock_stats ms = {.size = sizeof ms};
    swarm_engine_mock_get_stats(m, &ms);
    assert_int_equal(ms.batch_calls, 2);
    assert_int_equal(ms.max_batch, 4);
    assert_int_equal(atomic_load(&fc.n_slept), 1);
    swarm_retry_stats st = {.size = sizeof st};
    swarm_engine_retry_get_stats(e, &st);
    assert_int_equal(st.retries, 2);
    assert_int_equal(st.attempts, 6);
    swarm_engine_destroy(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SWARM_TEST(test_retry_backoff_full_jitter),
        SWARM_TEST(test_retry_only_retryable_and_max_attempts),
        SWARM_TEST(test_retry_honours_retry_after_and_deadline),
        SWARM_TEST(test_retry_never_after_streamed_output),
        SWARM_TEST(test_retry_budget_limits_retries_in_outage),
        SWARM_TEST(test_retry_backoff_wakes_on_cancel),
        SWARM_TEST(test_retry_batch_reruns_only_failed),
    };
    return cmocka_run_group_tests_name("engine_retry", tests, NULL, NULL);
}
