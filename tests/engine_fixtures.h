/* SPDX-License-Identifier: MIT */
/*
 * Shared fixtures for the engine unit suites (test_engine_*.c): an injected fake clock whose sleep
 * hook only advances time, a counting allocator, request/response helpers, the mock engine
 * constructor and the small test engines and decorator constructors used by more than one suite.
 * Everything is static inline so that a suite using only part of it still builds with -Werror.
 */
#ifndef SWARM_TESTS_ENGINE_FIXTURES_H
#define SWARM_TESTS_ENGINE_FIXTURES_H

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

#include "helpers.h"

typedef struct fake_clock {
    _Atomic int64_t now;
    int64_t slept[256];
    _Atomic int n_slept;
} fake_clock;

static inline int64_t fc_now(void *ctx)
{
    return atomic_load(&((fake_clock *)ctx)->now);
}

static inline int fc_sleep(void *ctx, int64_t ns, swarm_cancel *cancel)
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

static inline void fc_init(fake_clock *c)
{
    memset(c, 0, sizeof *c);
    atomic_store(&c->now, 1000 * SEC);
}

typedef struct counting_alloc {
    _Atomic long allocs, frees;
    long fail_after; /* fail the allocation with this index (0-based); -1 never */
} counting_alloc;

static inline void *ca_alloc(void *ctx, size_t size, size_t align)
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

static inline void ca_free(void *ctx, void *p, size_t size)
{
    (void)size;
    atomic_fetch_add(&((counting_alloc *)ctx)->frees, 1);
    free(p);
}

static inline swarm_response *new_resp(void)
{
    swarm_response *r = NULL;
    assert_int_equal(swarm_response_create(&r, NULL), 0);
    return r;
}

static inline void req_init(swarm_request *q, uint64_t id, const char *payload)
{
    swarm_request_init(q);
    q->id = id;
    q->payload = payload;
    q->payload_len = payload ? strlen(payload) : 0;
}

static inline swarm_engine *new_mock(fake_clock *fc, swarm_mock_opts *o)
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

static inline int run1(swarm_engine *e, swarm_response *r, uint64_t id, const char *payload)
{
    swarm_request q;
    req_init(&q, id, payload);
    swarm_response_reset(r);
    return swarm_engine_infer(e, &q, r);
}

static inline uint64_t mock_calls(swarm_engine *m)
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

static inline int echo_infer(void *self, const swarm_request *req, swarm_response *resp)
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

static inline void echo_destroy(void *self)
{
    atomic_fetch_add(&((echo *)self)->destroyed, 1);
}

static inline swarm_engine *new_echo(echo *st)
{
    swarm_engine_ops ops = {.version = SWARM_ENGINE_OPS_VERSION,
                            .name = "echo",
                            .infer = echo_infer,
                            .destroy = echo_destroy};
    swarm_engine *e = NULL;
    assert_int_equal(swarm_engine_create(&e, &ops, st, NULL), 0);
    return e;
}

typedef struct counter {
    int completions;
    int chunks;
    int stop_after;
    char seen[256];
    size_t seen_len;
} counter;

static inline int on_chunk(void *ctx, uint64_t id, const void *chunk, size_t len)
{
    (void)id;
    counter *c = ctx;
    memcpy(c->seen + c->seen_len, chunk, len);
    c->seen_len += len;
    c->chunks++;
    return c->stop_after > 0 && c->chunks >= c->stop_after;
}

static inline swarm_engine *new_retry(swarm_engine *inner, fake_clock *fc, swarm_retry_opts *o)
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

typedef struct trlog {
    int from[16], to[16];
    int n;
} trlog;

static inline void on_transition(void *ctx, int from, int to, int64_t now)
{
    (void)now;
    trlog *t = ctx;
    if (t->n < 16) {
        t->from[t->n] = from;
        t->to[t->n] = to;
    }
    t->n++;
}

static inline swarm_engine *new_breaker(swarm_engine *inner, fake_clock *fc, trlog *tl,
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

static inline void script_n(swarm_engine *m, int32_t code, int n)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(swarm_engine_mock_script(m, &code, 1), 0);
}

#endif /* SWARM_TESTS_ENGINE_FIXTURES_H */
