/* SPDX-License-Identifier: MIT */
/*
 * Engine unit tests, the engine contract: the vtable and its defaults, requests and responses,
 * infer and infer_batch statuses, streaming and completion, error classes. Split out of the former
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

static void test_engine_create_rejects_bad_input(void **state)
{
    (void)state;
    swarm_engine *e = NULL;
    swarm_engine_ops ops = {.version = SWARM_ENGINE_OPS_VERSION, .infer = echo_infer};
    assert_int_equal(swarm_engine_create(&e, NULL, NULL, NULL), SWARM_EINVAL);
    assert_int_equal(swarm_engine_create(NULL, &ops, NULL, NULL), SWARM_EINVAL);
    ops.infer = NULL;
    assert_int_equal(swarm_engine_create(&e, &ops, NULL, NULL), SWARM_EINVAL);
    ops.infer = echo_infer;
    ops.version = 0;
    assert_int_equal(swarm_engine_create(&e, &ops, NULL, NULL), SWARM_EINVAL);
    ops.version = SWARM_ENGINE_OPS_VERSION + 1;
    assert_int_equal(swarm_engine_create(&e, &ops, NULL, NULL), SWARM_EINVAL);
    swarm_allocator bad = {0};
    ops.version = SWARM_ENGINE_OPS_VERSION;
    assert_int_equal(swarm_engine_create(&e, &ops, NULL, &bad), SWARM_EINVAL);
    assert_null(e);
    assert_int_equal(swarm_engine_infer(NULL, NULL, NULL), SWARM_EINVAL);
    assert_int_equal(swarm_engine_cancel(NULL, 1), SWARM_EINVAL);
    assert_int_equal(swarm_engine_health(NULL), SWARM_EINVAL);
    assert_string_equal(swarm_engine_name(NULL), "");
    swarm_engine_destroy(NULL);
}

static void test_engine_null_slots_get_defaults(void **state)
{
    (void)state;
    echo st = {0};
    swarm_engine *e = new_echo(&st);
    assert_string_equal(swarm_engine_name(e), "echo");
    assert_int_equal(swarm_engine_cancel(e, 1), SWARM_ENOTSUP);
    assert_int_equal(swarm_engine_health(e), 0);
    /* A batch on an engine with only infer runs infer per request. */
    swarm_request q[3];
    const swarm_request *qp[3];
    swarm_response *rp[3];
    const char *p[3] = {"a", "bb", "ccc"};
    for (int i = 0; i < 3; i++) {
        req_init(&q[i], (uint64_t)i, p[i]);
        qp[i] = &q[i];
        rp[i] = new_resp();
    }
    assert_int_equal(swarm_engine_infer_batch(e, qp, rp, 3), 0);
    for (int i = 0; i < 3; i++) {
        size_t len;
        const char *d = swarm_response_data(rp[i], &len);
        assert_string_equal(d, p[i]);
        assert_int_equal(swarm_response_status(rp[i]), 0);
        swarm_response_destroy(rp[i]);
    }
    assert_int_equal(atomic_load(&st.calls), 3);
    /* References: the last destroy runs ops->destroy once. */
    assert_int_equal(swarm_engine_retain(e), 0);
    swarm_engine_destroy(e);
    assert_int_equal(atomic_load(&st.destroyed), 0);
    swarm_engine_destroy(e);
    assert_int_equal(atomic_load(&st.destroyed), 1);
}

static void on_complete(void *ctx, const swarm_request *req, swarm_response *resp)
{
    (void)req;
    (void)resp;
    ((counter *)ctx)->completions++;
}

static void test_engine_completes_exactly_once(void **state)
{
    (void)state;
    echo st = {0};
    swarm_engine *e = new_echo(&st);
    swarm_response *r = new_resp();
    counter c = {0};
    swarm_response_set_complete(r, on_complete, &c);
    swarm_request q;
    req_init(&q, 42, "hello");
    assert_int_equal(swarm_response_status(r), SWARM_EAGAIN);
    assert_int_equal(swarm_engine_infer(e, &q, r), 0);
    assert_int_equal(c.completions, 1);
    /* A completed response refuses a second call and any write until reset. */
    assert_int_equal(swarm_engine_infer(e, &q, r), SWARM_ESTATE);
    assert_int_equal(swarm_response_write(r, "x", 1), SWARM_ESTATE);
    assert_int_equal(swarm_response_set_error(r, SWARM_EINTERNAL, "x", 0), SWARM_ESTATE);
    assert_int_equal(c.completions, 1);
    swarm_response_info info = {.size = sizeof info};
    assert_int_equal(swarm_response_get_info(r, &info), 0);
    assert_int_equal(info.complete, 1);
    assert_int_equal(info.request_id, 42);
    assert_int_equal(info.attempts, 1);
    assert_int_equal(info.output_bytes, 5);
    assert_int_equal(info.input_units, 5);
    assert_int_equal(info.output_units, 7);
    assert_true(info.end_ns >= info.start_ns && info.first_output_ns >= info.start_ns);
    assert_int_equal(swarm_response_reset(r), 0);
    assert_int_equal(swarm_engine_infer(e, &q, r), 0);
    assert_int_equal(c.completions, 2);
    /* Batches: each response completes once; a duplicate response is refused untouched. */
    swarm_response *r2 = new_resp();
    swarm_response_reset(r);
    const swarm_request *qp[2] = {&q, &q};
    swarm_response *rp[2] = {r, r};
    assert_int_equal(swarm_engine_infer_batch(e, qp, rp, 2), SWARM_ESTATE);
    assert_int_equal(swarm_response_status(r), SWARM_EAGAIN);
    rp[1] = r2;
    assert_int_equal(swarm_engine_infer_batch(e, qp, rp, 2), 0);
    assert_int_equal(c.completions, 3);
    assert_int_equal(swarm_engine_infer_batch(e, qp, rp, 0), SWARM_EINVAL);
    swarm_response_destroy(r2);
    swarm_response_destroy(r);
    swarm_engine_destroy(e);
}

static void test_response_write_copies_and_streams(void **state)
{
    (void)state;
    swarm_response *r = new_resp();
    counter c = {.stop_after = 2};
    assert_int_equal(swarm_response_set_stream(r, on_chunk, &c), 0);
    echo st = {0};
    swarm_engine *e = new_echo(&st);
    char buf[16];
    strcpy(buf, "token");
    swarm_request q;
    req_init(&q, 1, buf);
    assert_int_equal(swarm_engine_infer(e, &q, r), 0);
    memset(buf, 'X', 5); /* the response copied; freeing the source is fine */
    size_t len;
    assert_string_equal(swarm_response_data(r, &len), "token");
    assert_int_equal(c.chunks, 1);
    assert_int_equal(c.seen_len, 5);
    swarm_response_info info = {.size = sizeof info};
    swarm_response_get_info(r, &info);
    assert_int_equal(info.n_streamed, 1);
    swarm_engine_destroy(e);
    /* The stream callback asks to stop on its second chunk: that write returns ECANCELED and
     * the engine stops. */
    swarm_mock_opts mo;
    swarm_mock_opts_init(&mo);
    mo.chunk_bytes = 1;
    swarm_engine *m = new_mock(NULL, &mo);
    memset(&c, 0, sizeof c);
    c.stop_after = 2;
    assert_int_equal(run1(m, r, 2, "abcd"), SWARM_ECANCELED);
    assert_int_equal(c.chunks, 2);
    assert_string_equal(swarm_response_data(r, NULL), "ab");
    /* Bad writes. */
    assert_int_equal(swarm_response_write(NULL, "a", 1), SWARM_EINVAL);
    assert_int_equal(swarm_response_reset(NULL), SWARM_EINVAL);
    assert_int_equal(swarm_response_status(NULL), SWARM_EINVAL);
    swarm_response_destroy(r);
    swarm_engine_destroy(m);
}

static void test_response_reuse_does_not_allocate(void **state)
{
    (void)state;
    counting_alloc ca = {.fail_after = -1};
    swarm_allocator a = {.ctx = &ca, .alloc = ca_alloc, .free = ca_free};
    swarm_response_opts ro;
    swarm_response_opts_init(&ro);
    ro.alloc = &a;
    ro.initial_capacity = 16;
    swarm_response *r = NULL;
    assert_int_equal(swarm_response_create(&r, &ro), 0);
    swarm_mock_opts mo;
    swarm_mock_opts_init(&mo);
    mo.output_bytes = 5000;
    mo.chunk_bytes = 7;
    swarm_engine *m = new_mock(NULL, &mo);
    assert_int_equal(run1(m, r, 1, "x"), 0);
    assert_int_equal(swarm_response_get_info(r, &(swarm_response_info){.size = 64}), 0);
    size_t len;
    swarm_response_data(r, &len);
    assert_int_equal(len, 5000);
    long before = atomic_load(&ca.allocs);
    assert_true(before <= 2 + 10); /* struct + buffer + O(log n) doublings */
    for (int i = 0; i < 100; i++)
        assert_int_equal(run1(m, r, (uint64_t)i, "x"), 0);
    assert_int_equal(atomic_load(&ca.allocs), before); /* steady state: nothing */
    swarm_response_destroy(r);
    assert_int_equal(atomic_load(&ca.allocs), atomic_load(&ca.frees));
    swarm_engine_destroy(m);
}

static void test_response_limits_and_enomem(void **state)
{
    (void)state;
    counting_alloc ca = {.fail_after = 0};
    swarm_allocator a = {.ctx = &ca, .alloc = ca_alloc, .free = ca_free};
    swarm_response_opts ro;
    swarm_response_opts_init(&ro);
    ro.alloc = &a;
    swarm_response *r = NULL;
    assert_int_equal(swarm_response_create(&r, &ro), SWARM_ENOMEM);
    ca.fail_after = 1;
    atomic_store(&ca.allocs, 0);
    assert_int_equal(swarm_response_create(&r, &ro), SWARM_ENOMEM);
    assert_int_equal(atomic_load(&ca.frees), 1); /* nothing leaks */
    assert_null(r);
    /* Growth failure: nothing appended, ENOMEM returned. */
    ca.fail_after = 2;
    atomic_store(&ca.allocs, 0);
    ro.initial_capacity = 4;
    assert_int_equal(swarm_response_create(&r, &ro), 0);
    swarm_mock_opts mo;
    swarm_mock_opts_init(&mo);
    mo.output_bytes = 100;
    swarm_engine *m = new_mock(NULL, &mo);
    assert_int_equal(run1(m, r, 1, "x"), SWARM_ENOMEM);
    swarm_response_destroy(r);
    /* max_bytes caps output with ERANGE. */
    ca.fail_after = -1;
    ro.max_bytes = 10;
    assert_int_equal(swarm_response_create(&r, &ro), 0);
    assert_int_equal(run1(m, r, 1, "x"), SWARM_ERANGE);
    swarm_response_destroy(r);
    ro.initial_capacity = 100;
    assert_int_equal(swarm_response_create(&r, &ro), SWARM_EINVAL);
    assert_int_equal(swarm_response_create(NULL, NULL), SWARM_EINVAL);
    swarm_engine_destroy(m);
}

/* A batch engine: fails the whole batch with `batch_rc`, or request 1 via set_error. */
typedef struct batchy {
    int batch_rc;
    int batches;
} batchy;

static int batchy_infer(void *self, const swarm_request *req, swarm_response *resp)
{
    (void)self;
    (void)req;
    (void)resp;
    return SWARM_EINTERNAL; /* must not be used when infer_batch exists */
}

static int batchy_batch(void *self, const swarm_request *const *reqs, swarm_response *const *resps,
                        size_t n)
{
    batchy *b = self;
    b->batches++;
    if (b->batch_rc)
        return b->batch_rc;
    for (size_t i = 0; i < n; i++) {
        if (reqs[i]->id == 1)
            swarm_response_set_error(resps[i], SWARM_EOVERLOADED, "busy", 5 * MS);
        else
            swarm_response_write(resps[i], "ok", 2);
    }
    return 0;
}

static void test_engine_batch_statuses(void **state)
{
    (void)state;
    batchy b = {0};
    swarm_engine_ops ops = {.version = 1, .infer = batchy_infer, .infer_batch = batchy_batch};
    swarm_engine *e = NULL;
    assert_int_equal(swarm_engine_create(&e, &ops, &b, NULL), 0);
    assert_string_equal(swarm_engine_name(e), "engine");
    swarm_request q[3];
    const swarm_request *qp[3];
    swarm_response *rp[3];
    for (int i = 0; i < 3; i++) {
        req_init(&q[i], (uint64_t)i, "p");
        qp[i] = &q[i];
        rp[i] = new_resp();
    }
    assert_int_equal(swarm_engine_infer_batch(e, qp, rp, 3), 0);
    assert_int_equal(b.batches, 1);
    assert_int_equal(swarm_response_status(rp[0]), 0);
    assert_int_equal(swarm_response_status(rp[1]), SWARM_EOVERLOADED);
    assert_string_equal(swarm_response_error_message(rp[1]), "busy");
    swarm_response_info info = {.size = sizeof info};
    swarm_response_get_info(rp[1], &info);
    assert_int_equal(info.retry_after_ns, 5 * MS);
    assert_int_equal(swarm_response_status(rp[2]), 0);
    b.batch_rc = SWARM_EUNAVAILABLE;
    for (int i = 0; i < 3; i++)
        swarm_response_reset(rp[i]);
    assert_int_equal(swarm_engine_infer_batch(e, qp, rp, 3), SWARM_EUNAVAILABLE);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(swarm_response_status(rp[i]), SWARM_EUNAVAILABLE);
        swarm_response_destroy(rp[i]);
    }
    swarm_engine_destroy(e);
}

static void test_engine_error_classes(void **state)
{
    (void)state;
    assert_true(swarm_engine_error_retryable(SWARM_EUNAVAILABLE));
    assert_true(swarm_engine_error_retryable(SWARM_EOVERLOADED));
    assert_true(swarm_engine_error_retryable(SWARM_ETIMEDOUT));
    assert_false(swarm_engine_error_retryable(SWARM_EINVAL));
    assert_false(swarm_engine_error_retryable(SWARM_ECANCELED));
    assert_false(swarm_engine_error_retryable(SWARM_EINTERNAL));
    assert_false(swarm_engine_error_retryable(SWARM_EBREAKER_OPEN));
    assert_true(swarm_engine_error_is_failure(SWARM_EUNAVAILABLE));
    assert_true(swarm_engine_error_is_failure(SWARM_EINTERNAL));
    assert_true(swarm_engine_error_is_failure(SWARM_EBREAKER_OPEN));
    assert_false(swarm_engine_error_is_failure(SWARM_EINVAL));
    assert_false(swarm_engine_error_is_failure(SWARM_ECANCELED));
    assert_false(swarm_engine_error_is_failure(0));
}

static void test_request_should_stop(void **state)
{
    (void)state;
    swarm_request q;
    assert_int_equal(swarm_request_init(NULL), SWARM_EINVAL);
    assert_int_equal(swarm_request_init(&q), 0);
    assert_true(q.params.temperature == 1.0 && q.params.top_p == 1.0);
    assert_int_equal(swarm_request_should_stop(&q), 0);
    q.deadline_ns = swarm_now_ns() - 1;
    assert_int_equal(swarm_request_should_stop(&q), SWARM_ETIMEDOUT);
    swarm_cancel *c = NULL;
    swarm_cancel_create(&c, NULL);
    q.cancel = c;
    q.deadline_ns = 0;
    assert_int_equal(swarm_request_should_stop(&q), 0);
    swarm_cancel_trigger(c);
    assert_int_equal(swarm_request_should_stop(&q), SWARM_ECANCELED);
    swarm_cancel_destroy(c);
    assert_int_equal(swarm_request_should_stop(NULL), SWARM_EINVAL);
}

static int positive_infer(void *self, const swarm_request *req, swarm_response *resp)
{
    (void)self, (void)req, (void)resp;
    return 5; /* a bug in the engine: positive codes are not statuses */
}

static void test_engine_ops_are_copied_and_rc_normalized(void **state)
{
    (void)state;
    swarm_engine_ops ops = {.version = 1, .name = "pos", .infer = positive_infer};
    swarm_engine *e = NULL;
    assert_int_equal(swarm_engine_create(&e, &ops, NULL, NULL), 0);
    memset(&ops, 0xff, sizeof ops); /* the caller's table need not outlive create */
    swarm_response *r = new_resp();
    assert_int_equal(run1(e, r, 1, "x"), SWARM_EINTERNAL);
    assert_int_equal(swarm_response_status(r), SWARM_EINTERNAL);
    assert_string_equal(swarm_engine_name(e), "pos");
    swarm_response_destroy(r);
    swarm_engine_destroy(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SWARM_TEST(test_engine_create_rejects_bad_input),
        SWARM_TEST(test_engine_null_slots_get_defaults),
        SWARM_TEST(test_engine_completes_exactly_once),
        SWARM_TEST(test_response_write_copies_and_streams),
        SWARM_TEST(test_response_reuse_does_not_allocate),
        SWARM_TEST(test_response_limits_and_enomem),
        SWARM_TEST(test_engine_batch_statuses),
        SWARM_TEST(test_engine_error_classes),
        SWARM_TEST(test_request_should_stop),
        SWARM_TEST(test_engine_ops_are_copied_and_rc_normalized),
    };
    return cmocka_run_group_tests_name("engine_core", tests, NULL, NULL);
}
