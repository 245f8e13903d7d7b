/* SPDX-License-Identifier: MIT */
/*
 * Engine unit tests, the batcher decorator: filling within linger, preferred sizes, infer-only
 * engines and expiry. Split out of the former test_engine.c; shared fixtures are in
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        SWARM_TEST(test_batcher_fills_batch_within_linger),
        SWARM_TEST(test_batcher_preferred_sizes_split),
        SWARM_TEST(test_batcher_infer_only_engine_and_expiry),
    };
    return cmocka_run_group_tests_name("engine_batcher", tests, NULL, NULL);
}
