/* SPDX-License-Identifier: MIT */
/*
 * Engine findings of the adversarial pass (issue 14): extreme but accepted times and values,
 * aliasing arguments and deep decorator stacks. Each test reproduced its finding before the fix
 * (a hang, a double destroy, a UBSan abort or a stack overflow) and checks the documented
 * behaviour now. Time comes from injected clocks; there are no timing assertions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <swarm/swarm.h>

#include "helpers.h"

/* ---- helpers ------------------------------------------------------------------------------- */

typedef struct fake_clock {
    _Atomic int64_t now;
    _Atomic int n_slept;
    _Atomic int64_t slept_ns;
} fake_clock;

static int64_t fc_now(void *ctx)
{
    return atomic_load(&((fake_clock *)ctx)->now);
}

/* Advances time by the sleep (saturating, so a huge sleep cannot wrap the fake clock). */
static int fc_sleep(void *ctx, int64_t ns, swarm_cancel *cancel)
{
    fake_clock *c = ctx;
    if (cancel != NULL && swarm_cancel_is_canceled(cancel))
        return SWARM_ECANCELED;
    atomic_fetch_add(&c->n_slept, 1);
    atomic_store(&c->slept_ns, ns);
    int64_t now = atomic_load(&c->now), next;
    if (__builtin_add_overflow(now, ns, &next))
        next = ns > 0 ? INT64_MAX : INT64_MIN;
    atomic_store(&c->now, next);
    return 0;
}

static void fc_init(fake_clock *c, int64_t now)
{
    memset(c, 0, sizeof *c);
    atomic_store(&c->now, now);
}

static void req_init(swarm_request *q, uint64_t id, const char *payload)
{
    swarm_request_init(q);
    q->id = id;
    q->payload = payload;
    q->payload_len = payload ? strlen(payload) : 0;
}

static swarm_response *new_resp(void)
{
    swarm_response *r = NULL;
    assert_int_equal(swarm_response_create(&r, NULL), 0);
    return r;
}

/* A user engine that fails every call with `code` and retry-after hint `hint`, and records the
 * deadline it saw. */
typedef struct hinted {
    int code;
    int64_t hint;
    _Atomic int calls;
    _Atomic int64_t seen_deadline;
    _Atomic int destroyed;
    fake_clock *jump; /* if set, the call moves this clock to jump_to (a call "takes" that long) */
    int64_t jump_to;
} hinted;

static int hinted_infer(void *self, const swarm_request *req, swarm_response *resp)
{
    hinted *h = self;
    atomic_fetch_add(&h->calls, 1);
    atomic_store(&h->seen_deadline, req->deadline_ns);
    if (h->jump != NULL)
        atomic_store(&h->jump->now, h->jump_to);
    if (h->code == 0)
        return swarm_response_write(resp, "ok", 2);
    swarm_response_set_error(resp, h->code, "hinted failure", h->hint);
    return h->code;
}

static void hinted_destroy(void *self)
{
    atomic_fetch_add(&((hinted *)self)->destroyed, 1);
}

static swarm_engine *new_hinted(hinted *h)
{
    swarm_engine_ops ops = {.version = SWARM_ENGINE_OPS_VERSION,
                            .name = "hinted",
                            .infer = hinted_infer,
                            .destroy = hinted_destroy};
    swarm_engine *e = NULL;
    assert_int_equal(swarm_engine_create(&e, &ops, h, NULL), 0);
    return e;
}

static swarm_engine *new_retry(swarm_engine *inner, fake_clock *fc)
{
    swarm_retry_opts ro;
    swarm_retry_opts_init(&ro);
    ro.base_ns = 10 * MS;
    ro.cap_ns = 100 * MS;
    ro.clock = fc_now;
    ro.sleep = fc_sleep;
    ro.clock_ctx = fc;
    swarm_engine *r = NULL;
    assert_int_equal(swarm_engine_retry_create(&r, inner, &ro), 0);
    return r;
}

/* ---- 1: retry-after near INT64_MAX never waits past the deadline --------------------------- */

static void test_retry_huge_hint_respects_deadline_single(void **state)
{
    (void)state;
    fake_clock fc;
    fc_init(&fc, 1000 * SEC);
    hinted h = {.code = SWARM_EUNAVAILABLE, .hint = INT64_MAX - 5};
    swarm_engine *r = new_retry(new_hinted(&h), &fc);
    swarm_response *resp = new_resp();
    swarm_request q;
    req_init(&q, 1, "x");
    q.deadline_ns = 1001 * SEC; /* 1 s left */
    int rc = swarm_engine_infer(r, &q, resp);
    assert_int_equal(rc, SWARM_EUNAVAILABLE);
    assert_int_equal(atomic_load(&h.calls), 1);
    assert_int_equal(atomic_load(&fc.n_slept), 0); /* the 292-year sleep never starts */
    swarm_retry_stats st = {.size = sizeof st};
    assert_int_equal(swarm_engine_retry_get_stats(r, &st), 0);
    assert_int_equal(st.deadline_denied, 1);
    /* Without a deadline the hint is honoured as given (the caller asked for no bound). */
    swarm_response_destroy(resp);
    swarm_engine_destroy(r);
}

static void test_retry_huge_hint_respects_deadline_batch(void **state)
{
    (void)state;
    fake_clock fc;
    fc_init(&fc, 1000 * SEC);
    hinted h = {.code = SWARM_EOVERLOADED, .hint = INT64_MAX};
    swarm_engine *r = new_retry(new_hinted(&h), &fc);
    swarm_response *r0 = new_resp(), *r1 = new_resp();
    swarm_request q0, q1;
    req_init(&q0, 1, "a");
    req_init(&q1, 2, "b");
    q0.deadline_ns = q1.deadline_ns = 1001 * SEC;
    const swarm_request *qs[2] = {&q0, &q1};
    swarm_response *rs[2] = {r0, r1};
    assert_int_equal(swarm_engine_infer_batch(r, qs, rs, 2), 0);
    assert_int_equal(swarm_response_status(r0), SWARM_EOVERLOADED);
    assert_int_equal(swarm_response_status(r1), SWARM_EOVERLOADED);
    assert_int_equal(atomic_load(&h.calls), 2);
    assert_int_equal(atomic_load(&fc.n_slept), 0);
    swarm_retry_stats st = {.size = sizeof st};
    assert_int_equal(swarm_engine_retry_get_stats(r, &st), 0);
    assert_int_equal(st.deadline_denied, 2);
    swarm_response_destroy(r0);
    swarm_response_destroy(r1);
    swarm_engine_destroy(r);
}

/* A clock near INT64_MAX plus an ordinary backoff must not wrap either. */
static void test_retry_clock_near_max_does_not_wrap(void **state)
{
    (void)state;
    fake_clock fc;
    fc_init(&fc, INT64_MAX - 1000);
    hinted h = {.code = SWARM_EUNAVAILABLE, .hint = 5 * SEC};
    swarm_engine *r = new_retry(new_hinted(&h), &fc);
    swarm_response *resp = new_resp();
    swarm_request q;
    req_init(&q, 1, "x");
    q.deadline_ns = INT64_MAX - 10; /* a real deadline, 990 ns away */
    assert_int_equal(swarm_engine_infer(r, &q, resp), SWARM_EUNAVAILABLE);
    assert_int_equal(atomic_load(&fc.n_slept), 0);
    swarm_response_destroy(resp);
    swarm_engine_destroy(r);
}

/* ---- 2: split refuses the same engine twice ------------------------------------------------ */

static void test_split_rejects_duplicate_engine(void **state)
{
    (void)state;
    hinted h = {.code = 0};
    swarm_engine *e = new_hinted(&h), *s = NULL;
    swarm_engine *two[2] = {e, e};
    uint32_t w[2] = {1, 1};
    assert_int_equal(swarm_engine_split_create(&s, two, w, 2, NULL), SWARM_EINVAL);
    assert_null(s);
    assert_int_equal(atomic_load(&h.destroyed), 0);
    hinted h2 = {.code = 0};
    swarm_engine *e2 = new_hinted(&h2);
    swarm_engine *three[3] = {e, e2, e};
    uint32_t w3[3] = {1, 1, 0};
    assert_int_equal(swarm_engine_split_create(&s, three, w3, 3, NULL), SWARM_EINVAL);
    /* The caller still owns both, and a distinct pair is accepted. */
    swarm_engine *ok[2] = {e, e2};
    assert_int_equal(swarm_engine_split_create(&s, ok, w, 2, NULL), 0);
    swarm_engine_destroy(s);
    assert_int_equal(atomic_load(&h.destroyed), 1);
    assert_int_equal(atomic_load(&h2.destroyed), 1);
}

/* ---- 9: a duplicated response leaves every response untouched ----------------------------- */

static void test_infer_batch_duplicate_response_touches_nothing(void **state)
{
    (void)state;
    hinted h = {.code = 0};
    swarm_engine *e = new_hinted(&h);
    swarm_response *a = new_resp(), *b = new_resp();
    swarm_request q0, q1, q2;
    req_init(&q0, 41, "a");
    req_init(&q1, 42, "b");
    req_init(&q2, 43, "c");
    const swarm_request *qs[3] = {&q0, &q1, &q2};
    swarm_response *rs[3] = {a, b, a};
    assert_int_equal(swarm_engine_infer_batch(e, qs, rs, 3), SWARM_ESTATE);
    assert_int_equal(atomic_load(&h.calls), 0);
    swarm_response *both[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        swarm_response_info info = {.size = sizeof info};
        assert_int_equal(swarm_response_get_info(both[i], &info), 0);
        assert_int_equal(info.request_id, 0);
        assert_int_equal(info.start_ns, 0);
        assert_int_equal(info.complete, 0);
        assert_int_equal(swarm_response_status(both[i]), SWARM_EAGAIN);
    }
    /* Still fresh: usable without a reset. */
    assert_int_equal(swarm_engine_infer(e, &q0, a), 0);
    swarm_response_destroy(a);
    swarm_response_destroy(b);
    swarm_engine_destroy(e);
}

/* ---- 6: extreme times and values ------------------------------------------------------------ */

static void test_breaker_open_forever_hint_saturates(void **state)
{
    (void)state;
    fake_clock fc;
    fc_init(&fc, 1000 * SEC);
    hinted h = {.code = SWARM_EUNAVAILABLE};
    swarm_breaker_opts bo;
    swarm_breaker_opts_init(&bo);
    bo.window_size = 1;
    bo.minimum_calls = 1;
    bo.failure_rate_pct = 100;
    bo.open_ns = INT64_MAX;
    bo.clock = fc_now;
    bo.clock_ctx = &fc;
    swarm_engine *b = NULL;
    assert_int_equal(swarm_engine_breaker_create(&b, new_hinted(&h), &bo), 0);
    swarm_response *resp = new_resp();
    swarm_request q;
    req_init(&q, 1, "x");
    assert_int_equal(swarm_engine_infer(b, &q, resp), SWARM_EUNAVAILABLE);
    assert_int_equal(swarm_engine_breaker_state(b), SWARM_BREAKER_OPEN);
    atomic_store(&fc.now, 2000 * SEC);
    swarm_response_reset(resp);
    assert_int_equal(swarm_engine_infer(b, &q, resp), SWARM_EBREAKER_OPEN);
    swarm_response_info info = {.size = sizeof info};
    swarm_response_get_info(resp, &info);
    /* Open "forever": the hint is the saturated remaining time, never negative or zero. */
    assert_true(info.retry_after_ns >= INT64_MAX - 2001 * SEC);
    /* A clock that jumps to the far end still does not wrap the open-time test. */
    atomic_store(&fc.now, INT64_MAX);
    assert_int_equal(swarm_engine_breaker_state(b), SWARM_BREAKER_OPEN);
    swarm_response_destroy(resp);
    swarm_engine_destroy(b);
}

static void test_breaker_clock_extremes(void **state)
{
    (void)state;
    fake_clock fc;
    fc_init(&fc, INT64_MIN + 10);
    /* The call "takes" the whole range: the slow-call test subtracts the two ends. */
    hinted h = {.code = 0, .jump = &fc, .jump_to = INT64_MAX - 10};
    swarm_breaker_opts bo;
    swarm_breaker_opts_init(&bo);
    bo.slow_call_ns = 1;
    bo.window_kind = SWARM_BREAKER_WINDOW_TIME;
    bo.window_size = 10;
    bo.clock = fc_now;
    bo.clock_ctx = &fc;
    swarm_engine *b = NULL;
    assert_int_equal(swarm_engine_breaker_create(&b, new_hinted(&h), &bo), 0);
    swarm_response *resp = new_resp();
    swarm_request q;
    req_init(&q, 1, "x");
    assert_int_equal(swarm_engine_infer(b, &q, resp), 0);
    swarm_breaker_stats st = {.size = sizeof st};
    assert_int_equal(swarm_engine_breaker_get_stats(b, &st), 0);
    assert_int_equal(st.calls, 1);
    assert_int_equal(st.slow_calls, 1); /* saturated duration: slower than 1 ns, not negative */
    swarm_response_destroy(resp);
    swarm_engine_destroy(b);
}

static void test_mock_lognormal_nonfinite_sigma_rejected(void **state)
{
    (void)state;
    swarm_mock_opts mo;
    swarm_mock_opts_init(&mo);
    mo.latency_kind = SWARM_MOCK_LATENCY_LOGNORMAL;
    mo.latency_ns = 0;
    swarm_engine *m = NULL;
    mo.lognormal_sigma = INFINITY;
    assert_int_equal(swarm_engine_mock_create(&m, &mo), SWARM_EINVAL);
    mo.lognormal_sigma = NAN;
    assert_int_equal(swarm_engine_mock_create(&m, &mo), SWARM_EINVAL);
    assert_null(m);
    /* A huge but finite sigma and a huge median saturate instead of overflowing. */
    fake_clock fc;
    fc_init(&fc, 0);
    mo.lognormal_sigma = 1e300;
    mo.latency_ns = INT64_MAX;
    mo.clock = fc_now;
    mo.sleep = fc_sleep;
    mo.clock_ctx = &fc;
    assert_int_equal(swarm_engine_mock_create(&m, &mo), 0);
    swarm_response *resp = new_resp();
    swarm_request q;
    req_init(&q, 1, "x");
    for (int i = 0; i < 32; i++) {
        atomic_store(&fc.now, 0);
        swarm_response_reset(resp);
        q.id = (uint64_t)i;
        assert_int_equal(swarm_engine_infer(m, &q, resp), 0);
        assert_true(atomic_load(&fc.slept_ns) >= 0);
    }
    swarm_response_destroy(resp);
    swarm_engine_destroy(m);
}

static void test_mock_deadline_with_clock_extremes(void **state)
{
    (void)state;
    fake_clock fc;
    fc_init(&fc, INT64_MIN + 5);
    swarm_mock_opts mo;
    swarm_mock_opts_init(&mo);
    mo.latency_kind = SWARM_MOCK_LATENCY_FIXED;
    mo.latency_ns = 10 * MS;
    mo.clock = fc_now;
    mo.sleep = fc_sleep;
    mo.clock_ctx = &fc;
    swarm_engine *m = NULL;
    assert_int_equal(swarm_engine_mock_create(&m, &mo), 0);
    swarm_response *resp = new_resp();
    swarm_request q;
    req_init(&q, 1, "x");
    q.deadline_ns = INT64_MAX - 1; /* far away from a clock near INT64_MIN */
    assert_int_equal(swarm_engine_infer(m, &q, resp), 0);
    assert_int_equal(atomic_load(&fc.slept_ns), 10 * MS);
    swarm_response_destroy(resp);
    swarm_engine_destroy(m);
}

static void test_timeout_clock_near_min(void **state)
{
    (void)state;
    fake_clock fc;
    fc_init(&fc, INT64_MIN + 5);
    hinted h = {.code = 0};
    swarm_timeout_opts to;
    swarm_timeout_opts_init(&to);
    to.timeout_ns = 1 * SEC;
    to.clock = fc_now;
    to.clock_ctx = &fc;
    swarm_engine *t = NULL;
    assert_int_equal(swarm_engine_timeout_create(&t, new_hinted(&h), &to), 0);
    swarm_response *resp = new_resp();
    swarm_request q;
    req_init(&q, 1, "x");
    assert_int_equal(swarm_engine_infer(t, &q, resp), 0);
    /* The inner engine saw now + timeout, not "no deadline". */
    assert_int_equal(atomic_load(&h.seen_deadline), INT64_MIN + 5 + 1 * SEC);
    /* The batch path computes the same deadline. */
    swarm_response_reset(resp);
    const swarm_request *qs[1] = {&q};
    swarm_response *rs[1] = {resp};
    assert_int_equal(swarm_engine_infer_batch(t, qs, rs, 1), 0);
    assert_int_equal(atomic_load(&h.seen_deadline), INT64_MIN + 5 + 1 * SEC);
    /* And near the top the deadline saturates instead of wrapping to the past. */
    atomic_store(&fc.now, INT64_MAX - 5);
    swarm_response_reset(resp);
    assert_int_equal(swarm_engine_infer(t, &q, resp), 0);
    assert_int_equal(atomic_load(&h.seen_deadline), INT64_MAX);
    swarm_response_destroy(resp);
    swarm_engine_destroy(t);
}

/* ---- 10: deep decorator stacks run batches on small stacks --------------------------------- */

typedef struct stack_job {
    swarm_engine *e;
    size_t n;
    int rc, ok;
} stack_job;

static void *stack_job_main(void *p)
{
    stack_job *j = p;
    enum { N = 64 };
    swarm_request qs[N];
    const swarm_request *qp[N];
    swarm_response *rs[N];
    for (size_t i = 0; i < j->n; i++) {
        req_init(&qs[i], i + 1, "deep");
        qp[i] = &qs[i];
        rs[i] = NULL;
        if (swarm_response_create(&rs[i], NULL) != 0)
            return NULL;
    }
    j->rc = swarm_engine_infer_batch(j->e, qp, rs, j->n);
    for (size_t i = 0; i < j->n; i++) {
        size_t len = 0;
        const char *d = swarm_response_data(rs[i], &len);
        j->ok += swarm_response_status(rs[i]) == 0 && len == 4 && memcmp(d, "deep", 4) == 0;
        swarm_response_destroy(rs[i]);
    }
    return NULL;
}

/* Runs one batch of @p n through @p e on a thread whose stack is @p stack bytes. */
static void run_on_stack(swarm_engine *e, size_t n, size_t stack)
{
    pthread_attr_t at;
    pthread_attr_init(&at);
    assert_int_equal(pthread_attr_setstacksize(&at, stack), 0);
    stack_job j = {.e = e, .n = n, .rc = -1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, &at, stack_job_main, &j), 0);
    pthread_join(th, NULL);
    pthread_attr_destroy(&at);
    assert_int_equal(j.rc, 0);
    assert_int_equal(j.ok, (int)n);
}

static swarm_engine *new_batch_mock(void)
{
    swarm_mock_opts mo;
    swarm_mock_opts_init(&mo);
    mo.batch = 1;
    swarm_engine *m = NULL;
    assert_int_equal(swarm_engine_mock_create(&m, &mo), 0);
    return m;
}

/* The sanitizers' frames are larger; the bounds are sized for them with room to spare. */
#define SMALL_STACK (128 * 1024)
#define DEEP_STACK  (2 * 1024 * 1024)

static void test_deep_timeout_stack_batch_fits_small_stack(void **state)
{
    (void)state;
    swarm_engine *e = new_batch_mock();
    for (int i = 0; i < 300; i++) {
        swarm_engine *t = NULL;
        assert_int_equal(swarm_engine_timeout_create(&t, e, NULL), 0);
        e = t;
    }
    run_on_stack(e, 64, DEEP_STACK);
    swarm_engine_destroy(e);
}

static void test_mixed_stack_batch_fits_small_stack(void **state)
{
    (void)state;
    swarm_engine *e = new_batch_mock();
    for (int i = 0; i < 4; i++) {
        swarm_engine *t = NULL, *r = NULL, *b = NULL, *f = NULL, *s = NULL;
        assert_int_equal(swarm_engine_timeout_create(&t, e, NULL), 0);
        swarm_breaker_opts bo;
        swarm_breaker_opts_init(&bo);
        assert_int_equal(swarm_engine_breaker_create(&b, t, &bo), 0);
        assert_int_equal(swarm_engine_retry_create(&r, b, NULL), 0);
        assert_int_equal(swarm_engine_fallback_create(&f, r, new_batch_mock(), NULL), 0);
        swarm_engine *one[1] = {f};
        uint32_t w[1] = {1};
        assert_int_equal(swarm_engine_split_create(&s, one, w, 1, NULL), 0);
        e = s;
    }
    /* 20 layers of every batching decorator. */
    run_on_stack(e, 64, SMALL_STACK);
    /* Concurrent batches each get their own scratch. */
    stack_job js[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        js[i] = (stack_job){.e = e, .n = 16, .rc = -1};
        assert_int_equal(pthread_create(&th[i], NULL, stack_job_main, &js[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(js[i].rc, 0);
        assert_int_equal(js[i].ok, 16);
    }
    swarm_engine_destroy(e);
}

/* When a concurrent batch finds the decorator's scratch taken and allocating another fails, it
 * still runs, in chunks of 8 on the stack. */
typedef struct gated {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int entered, released, calls;
    size_t sizes[16];
} gated;

static int gated_infer(void *self, const swarm_request *req, swarm_response *resp)
{
    (void)self;
    return swarm_response_write(resp, req->payload, (size_t)req->payload_len);
}

static int gated_batch(void *self, const swarm_request *const *reqs, swarm_response *const *resps,
                       size_t n)
{
    gated *g = self;
    pthread_mutex_lock(&g->mu);
    int call = g->calls++;
    if (call < 16)
        g->sizes[call] = n;
    if (call == 0) { /* the first batch holds the scratch until released */
        g->entered = 1;
        pthread_cond_broadcast(&g->cv);
        while (!g->released)
            pthread_cond_wait(&g->cv, &g->mu);
    }
    pthread_mutex_unlock(&g->mu);
    for (size_t i = 0; i < n; i++)
        swarm_response_write(resps[i], reqs[i]->payload, (size_t)reqs[i]->payload_len);
    return 0;
}

typedef struct fail_alloc {
    _Atomic long allocs, frees;
    _Atomic int fail;
} fail_alloc;

static void *fa_alloc(void *ctx, size_t size, size_t align)
{
    fail_alloc *f = ctx;
    if (atomic_load(&f->fail))
        return NULL;
    atomic_fetch_add(&f->allocs, 1);
    void *p = NULL;
    return posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size) == 0 ? p
                                                                                          : NULL;
}

static void fa_free(void *ctx, void *p, size_t size)
{
    (void)size;
    atomic_fetch_add(&((fail_alloc *)ctx)->frees, 1);
    free(p);
}

static void test_scratch_exhausted_falls_back_to_small_chunks(void **state)
{
    (void)state;
    gated g = {.calls = 0};
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    swarm_engine_ops ops = {.version = SWARM_ENGINE_OPS_VERSION,
                            .name = "gated",
                            .infer = gated_infer,
                            .infer_batch = gated_batch};
    swarm_engine *inner = NULL, *t = NULL;
    assert_int_equal(swarm_engine_create(&inner, &ops, &g, NULL), 0);
    fail_alloc fa = {0};
    swarm_allocator a = {.ctx = &fa, .alloc = fa_alloc, .free = fa_free};
    swarm_timeout_opts to;
    swarm_timeout_opts_init(&to);
    to.alloc = &a;
    assert_int_equal(swarm_engine_timeout_create(&t, inner, &to), 0);
    atomic_store(&fa.fail, 1); /* from now on every allocation fails */
    stack_job held = {.e = t, .n = 4, .rc = -1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stack_job_main, &held), 0);
    pthread_mutex_lock(&g.mu);
    while (!g.entered)
        pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    /* The scratch is held by the first batch: this one cannot get or allocate another. */
    stack_job mine = {.e = t, .n = 20, .rc = -1};
    stack_job_main(&mine);
    assert_int_equal(mine.rc, 0);
    assert_int_equal(mine.ok, 20);
    pthread_mutex_lock(&g.mu);
    g.released = 1;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    pthread_join(th, NULL);
    assert_int_equal(held.rc, 0);
    assert_int_equal(held.ok, 4);
    assert_int_equal(g.calls, 4);
    assert_int_equal(g.sizes[0], 4);
    assert_int_equal(g.sizes[1], 8);
    assert_int_equal(g.sizes[2], 8);
    assert_int_equal(g.sizes[3], 4);
    swarm_engine_destroy(t);
    assert_int_equal(atomic_load(&fa.allocs), atomic_load(&fa.frees));
    pthread_cond_destroy(&g.cv);
    pthread_mutex_destroy(&g.mu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SWARM_TEST(test_retry_huge_hint_respects_deadline_single),
        SWARM_TEST(test_retry_huge_hint_respects_deadline_batch),
        SWARM_TEST(test_retry_clock_near_max_does_not_wrap),
        SWARM_TEST(test_split_rejects_duplicate_engine),
        SWARM_TEST(test_infer_batch_duplicate_response_touches_nothing),
        SWARM_TEST(test_breaker_open_forever_hint_saturates),
        SWARM_TEST(test_breaker_clock_extremes),
        SWARM_TEST(test_mock_lognormal_nonfinite_sigma_rejected),
        SWARM_TEST(test_mock_deadline_with_clock_extremes),
        SWARM_TEST(test_timeout_clock_near_min),
        SWARM_TEST(test_deep_timeout_stack_batch_fits_small_stack),
        SWARM_TEST(test_mixed_stack_batch_fits_small_stack),
        SWARM_TEST(test_scratch_exhausted_falls_back_to_small_chunks),
    };
    return cmocka_run_group_tests_name("engine_hostile", tests, NULL, NULL);
}
