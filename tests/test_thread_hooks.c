/* SPDX-License-Identifier: MIT */
/*
 * Thread hooks (common.h): every thread the library creates runs start on itself before its
 * first callback and stop after its last, paired with the registration it started under; NULL
 * removes them; get copies them; fork never inherits the hooks lock held.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <swarm/swarm.h>

#include "helpers.h"

#if defined(__SANITIZE_THREAD__)
#    define SWARM_TEST_TSAN 1
#elif defined(__has_feature)
#    if __has_feature(thread_sanitizer)
#        define SWARM_TEST_TSAN 1
#    endif
#endif
#ifndef SWARM_TEST_TSAN
#    define SWARM_TEST_TSAN 0
#endif

/* One registration's counters. */
typedef struct hook_counts {
    _Atomic int starts, stops;
    _Atomic int pool_starts, loop_starts;
    _Atomic int wrong_thread; /* stop on a thread that did not run this registration's start */
} hook_counts;

/* Per thread: which registration's start ran here (checked by stop and by every callback). */
static _Thread_local hook_counts *started_by;

static void h_start(void *user, const char *role)
{
    hook_counts *c = user;
    if (started_by != NULL)
        atomic_fetch_add(&c->wrong_thread, 1); /* started twice */
    started_by = c;
    atomic_fetch_add(&c->starts, 1);
    if (strcmp(role, "pool-worker") == 0)
        atomic_fetch_add(&c->pool_starts, 1);
    else if (strcmp(role, "reconcile-loop") == 0)
        atomic_fetch_add(&c->loop_starts, 1);
}

static void h_stop(void *user, const char *role)
{
    (void)role;
    hook_counts *c = user;
    if (started_by != c)
        atomic_fetch_add(&c->wrong_thread, 1);
    started_by = NULL;
    atomic_fetch_add(&c->stops, 1);
}

static void install(hook_counts *c)
{
    memset(c, 0, sizeof *c);
    swarm_thread_hooks h = {.size = sizeof h, .start = h_start, .stop = h_stop, .user = c};
    assert_int_equal(swarm_thread_hooks_set(&h), 0);
}

/* ---- a pool whose engine checks that it runs on a hooked thread ----------------------------- */

static _Atomic int unhooked_calls; /* engine calls on a thread no start hook ran on */
static _Atomic int expect_hooked;

static int check_infer(void *self, const swarm_request *req, swarm_response *resp)
{
    (void)self;
    if (atomic_load(&expect_hooked) && started_by == NULL)
        atomic_fetch_add(&unhooked_calls, 1);
    return swarm_response_write(resp, req->payload, (size_t)req->payload_len);
}

typedef struct rig {
    swarm_chan *in;
    swarm_engine *eng;
    swarm_pool *pool;
    _Atomic uint64_t delivered;
} rig;

static void on_result(void *ctx, const swarm_pool_result *res)
{
    (void)res;
    rig *r = ctx;
    atomic_fetch_add(&r->delivered, 1);
}

static void rig_up(rig *r, uint32_t workers)
{
    memset(r, 0, sizeof *r);
    swarm_chan_opts co;
    swarm_chan_opts_init(&co);
    co.capacity = 256;
    co.elem_size = sizeof(swarm_task);
    assert_int_equal(swarm_chan_create(&r->in, &co), 0);
    swarm_engine_ops ops;
    memset(&ops, 0, sizeof ops);
    ops.version = SWARM_ENGINE_OPS_VERSION;
    ops.name = "check";
    ops.infer = check_infer;
    assert_int_equal(swarm_engine_create(&r->eng, &ops, NULL, NULL), 0);
    swarm_pool_opts po;
    swarm_pool_opts_init(&po);
    po.input = r->in;
    po.engine = r->eng;
    po.workers = workers;
    po.max_workers = 16;
    po.on_result = on_result;
    po.result_ctx = r;
    assert_int_equal(swarm_pool_create(&r->pool, &po), 0);
}

static void rig_feed(rig *r, uint64_t n)
{
    static const char msg[] = "x";
    uint64_t before = atomic_load(&r->delivered);
    for (uint64_t i = 0; i < n; i++) {
        swarm_task t;
        memset(&t, 0, sizeof t);
        t.id = i;
        t.payload = msg;
        t.payload_len = 1;
        assert_int_equal(swarm_chan_send(r->in, &t), 0);
    }
    while (atomic_load(&r->delivered) < before + n)
        sleep_ns(MS);
}

static void rig_down(rig *r)
{
    swarm_pool_destroy(r->pool);
    swarm_engine_destroy(r->eng);
    swarm_chan_destroy(r->in);
}

/* Every worker of every size runs start first and stop last, on itself, paired. */
static void test_pool_workers_are_hooked(void **state)
{
    (void)state;
    hook_counts c;
    install(&c);
    atomic_store(&unhooked_calls, 0);
    atomic_store(&expect_hooked, 1);
    rig r;
    rig_up(&r, 3);
    rig_feed(&r, 200);
    static const uint32_t sizes[] = {1, 6, 0, 4, 2, 8, 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        assert_int_equal(swarm_pool_resize(r.pool, sizes[i]), 0);
        if (sizes[i] > 0)
            rig_feed(&r, 100);
    }
    assert_int_equal(swarm_pool_stop(r.pool, SWARM_WAIT_FOREVER, NULL, 0, NULL), 0);
    rig_down(&r);
    assert_int_equal(swarm_thread_hooks_set(NULL), 0);
    atomic_store(&expect_hooked, 0);

    assert_int_equal(atomic_load(&unhooked_calls), 0);
    assert_int_equal(atomic_load(&c.wrong_thread), 0);
    assert_true(atomic_load(&c.starts) >=
                8); /* the largest size; a resize may take a retirement back */
    assert_int_equal(atomic_load(&c.starts), atomic_load(&c.stops));
    assert_int_equal(atomic_load(&c.starts), atomic_load(&c.pool_starts));
}

/* A thread keeps the registration it started under; threads created later get the new one. */
static void test_change_while_running_keeps_pairs(void **state)
{
    (void)state;
    hook_counts a, b;
    install(&a);
    rig r;
    rig_up(&r, 2);
    rig_feed(&r, 50);
    install(&b);
    assert_int_equal(swarm_pool_resize(r.pool, 5), 0);
    rig_feed(&r, 50);
    assert_int_equal(swarm_thread_hooks_set(NULL), 0);
    assert_int_equal(swarm_pool_resize(r.pool, 7), 0); /* two unhooked threads */
    rig_feed(&r, 50);
    rig_down(&r);

    assert_int_equal(atomic_load(&a.starts), 2);
    assert_int_equal(atomic_load(&a.stops), 2);
    assert_int_equal(atomic_load(&b.starts), 3);
    assert_int_equal(atomic_load(&b.stops), 3);
    assert_int_equal(atomic_load(&a.wrong_thread) + atomic_load(&b.wrong_thread), 0);
}

/* ---- reconcile loop ---------------------------------------------------------------------------
 */

static _Atomic int loop_unhooked;
static _Atomic int loop_observes;

static int observe(void *ctx, swarm_policy_obs *obs)
{
    (void)ctx;
    if (started_by == NULL)
        atomic_fetch_add(&loop_unhooked, 1);
    atomic_fetch_add(&loop_observes, 1);
    obs->current_replicas = 1;
    obs->ready_replicas = 1;
    return 0;
}

static int actuate(void *ctx, int32_t desired, const swarm_policy_decision *d)
{
    (void)ctx, (void)desired, (void)d;
    return 0;
}

static void test_reconcile_loop_is_hooked(void **state)
{
    (void)state;
    hook_counts c;
    install(&c);
    swarm_policy_opts pol;
    swarm_policy_opts_init(&pol);
    pol.mode = SWARM_POLICY_KEDA;
    swarm_policy *p = NULL;
    assert_int_equal(swarm_policy_create(&p, &pol), 0);
    swarm_reconcile_opts ro;
    swarm_reconcile_opts_init(&ro);
    ro.policy = p;
    ro.observe = observe;
    ro.actuate = actuate;
    ro.interval_ns = MS;
    swarm_reconcile *r = NULL;
    assert_int_equal(swarm_reconcile_create(&r, &ro), 0);
    for (int round = 0; round < 3; round++) {
        int seen = atomic_load(&loop_observes);
        assert_int_equal(swarm_reconcile_start(r), 0);
        while (atomic_load(&loop_observes) < seen + 3)
            sleep_ns(MS);
        assert_int_equal(swarm_reconcile_stop(r), 0);
        /* stop joined the thread: its stop hook has run */
        assert_int_equal(atomic_load(&c.stops), round + 1);
    }
    swarm_reconcile_destroy(r);
    swarm_policy_destroy(p);
    assert_int_equal(swarm_thread_hooks_set(NULL), 0);
    assert_int_equal(atomic_load(&loop_unhooked), 0);
    assert_int_equal(atomic_load(&c.loop_starts), 3);
    assert_int_equal(atomic_load(&c.starts), 3);
    assert_int_equal(atomic_load(&c.wrong_thread), 0);
}

/* ---- set / get / bad input --------------------------------------------------------------------
 */

static void test_get_set_clear(void **state)
{
    (void)state;
    swarm_thread_hooks got;
    memset(&got, 0xab, sizeof got);
    got.size = sizeof got;
    assert_int_equal(swarm_thread_hooks_set(NULL), 0);
    assert_int_equal(swarm_thread_hooks_get(&got), 0);
    assert_null(got.start);
    assert_null(got.stop);
    assert_null(got.user);

    hook_counts c;
    install(&c);
    assert_int_equal(swarm_thread_hooks_get(&got), 0);
    assert_ptr_equal(got.start, h_start);
    assert_ptr_equal(got.stop, h_stop);
    assert_ptr_equal(got.user, &c);
    assert_int_equal(got.size, sizeof got);

    /* A too small size is refused and changes nothing. */
    swarm_thread_hooks small = {.size = sizeof small - 1, .start = h_stop};
    assert_int_equal(swarm_thread_hooks_set(&small), SWARM_EINVAL);
    small.size = 0;
    assert_int_equal(swarm_thread_hooks_set(&small), SWARM_EINVAL);
    assert_int_equal(swarm_thread_hooks_get(&small), SWARM_EINVAL);
    assert_int_equal(swarm_thread_hooks_get(NULL), SWARM_EINVAL);
    assert_int_equal(swarm_thread_hooks_get(&got), 0);
    assert_ptr_equal(got.start, h_start);

    /* A larger struct from a newer header: accepted; get leaves its unknown tail alone. */
    struct {
        swarm_thread_hooks h;
        uint64_t future;
    } big;
    memset(&big, 0, sizeof big);
    big.h.size = sizeof big;
    big.h.stop = h_stop;
    assert_int_equal(swarm_thread_hooks_set(&big.h), 0);
    big.future = 42;
    assert_int_equal(swarm_thread_hooks_get(&big.h), 0);
    assert_null(big.h.start);
    assert_ptr_equal(big.h.stop, h_stop);
    assert_int_equal(big.future, 42);
    assert_int_equal(swarm_thread_hooks_set(NULL), 0);
}

/* Only one hook set: the other is simply skipped. */
static void test_only_stop_hook(void **state)
{
    (void)state;
    hook_counts c;
    memset(&c, 0, sizeof c);
    swarm_thread_hooks h = {.size = sizeof h, .stop = h_stop, .user = &c};
    assert_int_equal(swarm_thread_hooks_set(&h), 0);
    rig r;
    rig_up(&r, 2);
    rig_feed(&r, 20);
    rig_down(&r);
    assert_int_equal(swarm_thread_hooks_set(NULL), 0);
    assert_int_equal(atomic_load(&c.starts), 0);
    assert_int_equal(atomic_load(&c.stops), 2);
    /* start never ran, so stop saw no matching start on its thread */
    assert_int_equal(atomic_load(&c.wrong_thread), 2);
}

/* ---- fork: the hooks lock is never inherited held ------------------------------------------ */

static _Atomic int churn_stop;

static void *churn(void *arg)
{
    hook_counts *c = arg;
    swarm_thread_hooks h = {.size = sizeof h, .start = h_start, .stop = h_stop, .user = c};
    while (!atomic_load(&churn_stop)) {
        (void)swarm_thread_hooks_set(&h);
        (void)swarm_thread_hooks_set(NULL);
    }
    return NULL;
}

static void test_fork_while_setting(void **state)
{
    (void)state;
    hook_counts c;
    memset(&c, 0, sizeof c);
    atomic_store(&churn_stop, 0);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, churn, &c), 0);
    for (int i = 0; i < 40; i++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            alarm(10); /* a lock inherited held would hang here: die instead */
            hook_counts cc;
            memset(&cc, 0, sizeof cc);
            swarm_thread_hooks h = {
                .size = sizeof h, .start = h_start, .stop = h_stop, .user = &cc};
            swarm_thread_hooks got = {.size = sizeof got};
            if (swarm_thread_hooks_get(&got) != 0 || swarm_thread_hooks_set(&h) != 0)
                _exit(2);
            if (SWARM_TEST_TSAN)
                _exit(0); /* TSan cannot start threads after a multi-threaded fork */
            rig r;
            rig_up(&r, 2);
            rig_feed(&r, 10);
            rig_down(&r);
            _exit(atomic_load(&cc.starts) == 2 && atomic_load(&cc.stops) == 2 ? 0 : 3);
        }
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail_msg("fork child %d: status 0x%x", i, st);
    }
    atomic_store(&churn_stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(swarm_thread_hooks_set(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SWARM_TEST(test_get_set_clear),
        SWARM_TEST(test_pool_workers_are_hooked),
        SWARM_TEST(test_change_while_running_keeps_pairs),
        SWARM_TEST(test_only_stop_hook),
        SWARM_TEST(test_reconcile_loop_is_hooked),
        SWARM_TEST(test_fork_while_setting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
