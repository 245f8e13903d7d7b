/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the engine contract, the decorators and the mock engine. Decorators run on an
 * injected clock whose sleep hook only advances time, so backoff and breaker timing need no
 * real sleeps; there are no timing assertions.
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

#define MS  1000000LL
#define SEC 1000000000LL

/* ---- helpers ------------------------------------------------------------------------------- */

typedef struct fake_clock {
    _Atomic int64_t now;
    int64_t slept[256];
    _Atomic int n_slept;
} fake_clock;

static int64_t fc_now(void *ctx)
{
    return atomic_load(&((fake_clock *)ctx)->now);
}

static int fc_sleep(void *ctx, int64_t ns, swarm_cancel *cancel)
{
    fake_clock *c = ctx;
    if (cancel != NULL && swarm_cancel_is_canceled(cancel))
        return SWARM_ECANCELED;
    int i = atomic_fetch_add(&c->n_slept, 1);
    if (i < 256)
        c->slept[i] = ns;
    atomic_fetch_add(&c->now, ns);
    return 0;
}

static void fc_init(fake_clock *c)
{
    memset(c, 0, sizeof *c);
    atomic_store(&c->now, 1000 * SEC);
}

typedef struct counting_alloc {
    _Atomic long allocs, frees;
    long fail_after; /* fail the allocation with this index (0-based); -1 never */
} counting_alloc;

static void *ca_alloc(void *ctx, size_t size, size_t align)
{
    counting_alloc *c = ctx;
    long i = atomic_fetch_add(&c->allocs, 1);
    if (c->fail_after >= 0 && i >= c->fail_after)
        return NULL;
    void *p = NULL;
    if (posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size) != 0)
        return NULL;
    return p;
}

static void ca_free(void *ctx, void *p, size_t size)
{
    (void)size;
    atomic_fetch_add(&((counting_alloc *)ctx)->frees, 1);
    free(p);
}

static swarm_response *new_resp(void)
{
    swarm_response *r = NULL;
    assert_int_equal(swarm_response_create(&r, NULL), 0);
    return r;
}

static void req_init(swarm_request *q, uint64_t id, const char *payload)
{
    swarm_request_init(q);
    q->id = id;
    q->payload = payload;
    q->payload_len = payload ? strlen(payload) : 0;
}

static swarm_engine *new_mock(fake_clock *fc, swarm_mock_opts *o)
{
    swarm_mock_opts d;
    if (o == NULL) {
        swarm_mock_opts_init(&d);
        o = &d;
    }
    if (fc != NULL) {
        o->clock = fc_now;
        o->sleep = fc_sleep;
        o->clock_ctx = fc;
    }
    swarm_engine *e = NULL;
    assert_int_equal(swarm_engine_mock_create(&e, o), 0);
    return e;
}

static int run1(swarm_engine *e, swarm_response *r, uint64_t id, const char *payload)
{
    swarm_request q;
    req_init(&q, id, payload);
    swarm_response_reset(r);
    return swarm_engine_infer(e, &q, r);
}

static uint64_t mock_calls(swarm_engine *m)
{
    swarm_mock_stats s = {.size = sizeof s};
    assert_int_equal(swarm_engine_mock_get_stats(m, &s), 0);
    return s.calls;
}

/* A user engine with only infer: echoes, or writes a chunk then fails with `fail`. */
typedef struct echo {
    int fail;
    _Atomic int calls;
    _Atomic int destroyed;
} echo;

static int echo_infer(void *self, const swarm_request *req, swarm_response *resp)
{
    echo *e = self;
    atomic_fetch_add(&e->calls, 1);
    int rc = swarm_response_write(resp, req->payload, (size_t)req->payload_len);
    if (rc != 0)
        return rc;
    if (e->fail)
        return e->fail;
    swarm_response_set_usage(resp, req->payload_len, 7);
    return 0;
}

static void echo_destroy(void *self)
{
    atomic_fetch_add(&((echo *)self)->destroyed, 1);
}

static swarm_engine *new_echo(echo *st)
{
    swarm_engine_ops ops = {.version = SWARM_ENGINE_OPS_VERSION,
                            .name = "echo",
                            .infer = echo_infer,
                            .destroy = echo_destroy};
    swarm_engine *e = NULL;
    assert_int_equal(swarm_engine_create(&e, &ops, st, NULL), 0);
    return e;
}

/* ---- contract ------------------------------------------------------------------------------ */

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

typedef struct counter {
    int completions;
    int chunks;
    int stop_after;
    char seen[256];
    size_t seen_len;
} counter;

static void on_complete(void *ctx, const swarm_request *req, swarm_response *resp)
{
    (void)req;
    (void)resp;
    ((counter *)ctx)->completions++;
}

static int on_chunk(void *ctx, uint64_t id, const void *chunk, size_t len)
{
    (void)id;
    counter *c = ctx;
    memcpy(c->seen + c->seen_len, chunk, len);
    c->seen_len += len;
    c->chunks++;
    return c->stop_after > 0 && c->chunks >= c->stop_after;
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

/* ---- mock ---------------------------------------------------------------------------------- */

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

/* ---- timeout ------------------------------------------------------------------------------- */

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

/* ---- retry --------------------------------------------------------------------------------- */

static swarm_engine *new_retry(swarm_engine *inner, fake_clock *fc, swarm_retry_opts *o)
{
    swarm_retry_opts d;
    if (o == NULL) {
        swarm_retry_opts_init(&d);
        o = &d;
    }
    o->clock = fc_now;
    o->sleep = fc_sleep;
    o->clock_ctx = fc;
    o->seed = 99;
    swarm_engine *e = NULL;
    assert_int_equal(swarm_engine_retry_create(&e, inner, o), 0);
    return e;
}

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

/* ---- breaker ------------------------------------------------------------------------------- */

typedef struct trlog {
    int from[16], to[16];
    int n;
} trlog;

static void on_transition(void *ctx, int from, int to, int64_t now)
{
    (void)now;
    trlog *t = ctx;
    if (t->n < 16) {
        t->from[t->n] = from;
        t->to[t->n] = to;
    }
    t->n++;
}

static swarm_engine *new_breaker(swarm_engine *inner, fake_clock *fc, trlog *tl,
                                 swarm_breaker_opts *o)
{
    o->clock = fc_now;
    o->clock_ctx = fc;
    o->on_transition = on_transition;
    o->transition_ctx = tl;
    swarm_engine *e = NULL;
    assert_int_equal(swarm_engine_breaker_create(&e, inner, o), 0);
    return e;
}

static void script_n(swarm_engine *m, int32_t code, int n)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(swarm_engine_mock_script(m, &code, 1), 0);
}

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

/* ---- fallback ------------------------------------------------------------------------------ */

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

/* ---- split --------------------------------------------------------------------------------- */

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

/* ---- stacking ------------------------------------------------------------------------------ */

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

/* ---- batcher ------------------------------------------------------------------------------- */

typedef struct bt_arg {
    swarm_engine *e;
    pthread_barrier_t *bar;
    uint64_t id;
    int rc;
    char out[32];
} bt_arg;

static void *bt_main(void *p)
{
    bt_arg *a = p;
    char payload[32];
    snprintf(payload, sizeof payload, "req-%llu", (unsigned long long)a->id);
    swarm_response *r = NULL;
    swarm_response_create(&r, NULL);
    swarm_request q;
    swarm_request_init(&q);
    q.id = a->id;
    q.payload = payload;
    q.payload_len = strlen(payload);
    pthread_barrier_wait(a->bar);
    a->rc = swarm_engine_infer(a->e, &q, r);
    snprintf(a->out, sizeof a->out, "%s", (const char *)swarm_response_data(r, NULL));
    swarm_response_destroy(r);
    return NULL;
}

static void run_threads(swarm_engine *e, int n)
{
    pthread_t th[16];
    bt_arg args[16];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        args[i] = (bt_arg){.e = e, .bar = &bar, .id = (uint64_t)i};
        pthread_create(&th[i], NULL, bt_main, &args[i]);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].rc, 0);
        char want[32];
        snprintf(want, sizeof want, "req-%d", i);
        assert_string_equal(args[i].out, want); /* each caller got its own output */
    }
    pthread_barrier_destroy(&bar);
}

static void test_batcher_fills_batch_within_linger(void **state)
{
    (void)state;
    swarm_mock_opts mo;
    swarm_mock_opts_init(&mo);
    mo.batch = 1;
    swarm_engine *m = new_mock(NULL, &mo);
    swarm_batcher_opts bo;
    swarm_batcher_opts_init(&bo);
    assert_int_equal(bo.max_batch, 8);
    bo.max_batch = 4;
    bo.max_wait_ns = 60 * SEC; /* a full batch must not wait for the linger */
    swarm_engine *b = NULL;
    assert_int_equal(swarm_engine_batcher_create(&b, m, &bo), 0);
    assert_string_equal(swarm_engine_name(b), "batcher(mock)");
    run_threads(b, 4);
    swarm_batcher_stats st = {.size = sizeof st};
    assert_int_equal(swarm_engine_batcher_get_stats(b, &st), 0);
    assert_int_equal(st.batches, 1);
    assert_int_equal(st.requests, 4);
    assert_int_equal(st.max_seen, 4);
    swarm_mock_stats ms = {.size = sizeof ms};
    swarm_engine_mock_get_stats(m, &ms);
    assert_int_equal(ms.batch_calls, 1);
    assert_int_equal(ms.max_batch, 4);
    swarm_engine_destroy(b);
}

static void test_batcher_preferred_sizes_split(void **state)
{
    (void)state;
    swarm_mock_opts mo;
    swarm_mock_opts_init(&mo);
    mo.batch = 1;
    swarm_engine *m = new_mock(NULL, &mo);
    swarm_batcher_opts bo;
    swarm_batcher_opts_init(&bo);
    uint32_t pref[2] = {2, 4};
    bo.max_batch = 7;
    bo.max_wait_ns = 60 * SEC;
    bo.preferred_sizes = pref;
    bo.n_preferred = 2;
    swarm_engine *b = NULL;
    assert_int_equal(swarm_engine_batcher_create(&b, m, &bo), 0);
    run_threads(b, 7);
    swarm_batcher_stats st = {.size = sizeof st};
    swarm_engine_batcher_get_stats(b, &st);
    assert_int_equal(st.batches, 3); /* 7 = 4 + 2 + 1 */
    assert_int_equal(st.max_seen, 4);
    swarm_engine_destroy(b);
}

static void test_batcher_infer_only_engine_and_expiry(void **state)
{
    (void)state;
    echo est = {0};
    swarm_engine *b = NULL;
    swarm_batcher_opts bo;
    swarm_batcher_opts_init(&bo);
    assert_int_equal(swarm_engine_batcher_create(&b, new_echo(&est), &bo), 0);
    swarm_response *r = new_resp();
    for (int i = 0; i < 10; i++) {
        assert_int_equal(run1(b, r, (uint64_t)i, "hey"), 0);
        assert_string_equal(swarm_response_data(r, NULL), "hey");
    }
    assert_int_equal(atomic_load(&est.calls), 10);
    /* An expired request completes without reaching the engine. */
    swarm_request q;
    req_init(&q, 99, "x");
    q.deadline_ns = swarm_now_ns() - 1;
    swarm_response_reset(r);
    assert_int_equal(swarm_engine_infer(b, &q, r), SWARM_ETIMEDOUT);
    assert_int_equal(atomic_load(&est.calls), 10);
    swarm_cancel *c = NULL;
    swarm_cancel_create(&c, NULL);
    swarm_cancel_trigger(c);
    req_init(&q, 100, "x");
    q.cancel = c;
    swarm_response_reset(r);
    assert_int_equal(swarm_engine_infer(b, &q, r), SWARM_ECANCELED);
    swarm_cancel_destroy(c);
    swarm_batcher_stats st = {.size = sizeof st};
    swarm_engine_batcher_get_stats(b, &st);
    assert_int_equal(st.skipped, 2); /* queued without waiting, then skipped */
    assert_int_equal(st.batches, 10);
    /* Direct batches go straight through. */
    swarm_request qs[2];
    const swarm_request *qp[2] = {&qs[0], &qs[1]};
    swarm_response *rp[2] = {new_resp(), new_resp()};
    req_init(&qs[0], 1, "a");
    req_init(&qs[1], 2, "b");
    assert_int_equal(swarm_engine_infer_batch(b, qp, rp, 2), 0);
    assert_string_equal(swarm_response_data(rp[1], NULL), "b");
    swarm_response_destroy(rp[0]);
    swarm_response_destroy(rp[1]);
    /* Bad options. */
    swarm_engine *bad = NULL;
    bo.max_batch = 0;
    assert_int_equal(swarm_engine_batcher_create(&bad, b, &bo), SWARM_EINVAL);
    bo.max_batch = 4;
    uint32_t pref = 5;
    bo.preferred_sizes = &pref;
    bo.n_preferred = 1;
    assert_int_equal(swarm_engine_batcher_create(&bad, b, &bo), SWARM_EINVAL);
    swarm_response_destroy(r);
    swarm_engine_destroy(b);
}

/* ---- more contract edges ------------------------------------------------------------------ */

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
        cmocka_unit_test(test_engine_create_rejects_bad_input),
        cmocka_unit_test(test_engine_null_slots_get_defaults),
        cmocka_unit_test(test_engine_completes_exactly_once),
        cmocka_unit_test(test_response_write_copies_and_streams),
        cmocka_unit_test(test_response_reuse_does_not_allocate),
        cmocka_unit_test(test_response_limits_and_enomem),
        cmocka_unit_test(test_engine_batch_statuses),
        cmocka_unit_test(test_engine_error_classes),
        cmocka_unit_test(test_request_should_stop),
        cmocka_unit_test(test_mock_latency_distributions_are_seeded),
        cmocka_unit_test(test_mock_failure_rate_and_bad_opts),
        cmocka_unit_test(test_mock_hang_until_deadline_or_cancel),
        cmocka_unit_test(test_mock_script_and_streaming),
        cmocka_unit_test(test_timeout_deadline_and_cancel),
        cmocka_unit_test(test_retry_backoff_full_jitter),
        cmocka_unit_test(test_retry_only_retryable_and_max_attempts),
        cmocka_unit_test(test_retry_honours_retry_after_and_deadline),
        cmocka_unit_test(test_retry_never_after_streamed_output),
        cmocka_unit_test(test_retry_budget_limits_retries_in_outage),
        cmocka_unit_test(test_retry_backoff_wakes_on_cancel),
        cmocka_unit_test(test_retry_batch_reruns_only_failed),
        cmocka_unit_test(test_breaker_state_machine),
        cmocka_unit_test(test_breaker_half_open_limits_probes),
        cmocka_unit_test(test_breaker_slow_calls_and_time_window),
        cmocka_unit_test(test_fallback_on_failure_and_open_breaker),
        cmocka_unit_test(test_split_weights_and_stickiness),
        cmocka_unit_test(test_stack_retry_breaker_timeout),
        cmocka_unit_test(test_stack_timeout_outside_retry_bounds_total),
        cmocka_unit_test(test_stack_steady_state_allocates_nothing),
        cmocka_unit_test(test_batcher_fills_batch_within_linger),
        cmocka_unit_test(test_batcher_preferred_sizes_split),
        cmocka_unit_test(test_batcher_infer_only_engine_and_expiry),
        cmocka_unit_test(test_engine_ops_are_copied_and_rc_normalized),
        cmocka_unit_test(test_split_random_mode_and_batches),
        cmocka_unit_test(test_timeout_and_breaker_batch_paths),
    };
    return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}
