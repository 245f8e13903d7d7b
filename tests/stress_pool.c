/* SPDX-License-Identifier: MIT */
/*
 * Stress test for swarm_pool under a reconcile loop: producers send tasks while a threaded
 * reconcile loop (random observations through a real KEDA policy, and random overrides in its
 * actuate callback) and a second thread resize the pool at random, workers warm up for random
 * short times (so retirements hit starting, idle and busy workers), and the run ends with a stop
 * that drains or one that hits a deadline while producers are still sending. The ledger checks
 * that every task a producer managed to send was delivered exactly once or handed back by stop.
 *
 * Item counts scale with the environment variable SWARM_STRESS_SCALE (default 1.0).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <swarm/swarm.h>

#include "helpers.h"

#define PRODUCERS 4

static double scale(void)
{
    return swarm_test_stress_scale();
}

static uint64_t xs(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* ---- engine: mostly instant, sometimes a few microseconds, occasionally failing ----------- */

static _Atomic uint64_t engine_calls;

static int st_infer(void *self, const swarm_request *req, swarm_response *resp)
{
    (void)self;
    uint64_t n = atomic_fetch_add_explicit(&engine_calls, 1, memory_order_relaxed);
    if (n % 97 == 0)
        sleep_ns(20 * US);
    if (n % 101 == 0)
        return SWARM_EOVERLOADED;
    return swarm_response_write(resp, &req->id, sizeof req->id);
}

/* ---- the run ------------------------------------------------------------------------------ */

typedef struct run {
    uint64_t per_producer;
    uint64_t total;
    _Atomic uint8_t *sent; /* 1 once the send succeeded */
    _Atomic uint32_t *delivered;
    _Atomic uint64_t bad_output;
    swarm_chan *ch;
    swarm_pool *pool;
    _Atomic int stop_chaos;
    _Atomic uint64_t resizes;
    uint32_t max_workers;
} run;

static void on_result(void *ctx, const swarm_pool_result *res)
{
    run *r = ctx;
    uint64_t id = res->task.id;
    if (id >= r->total) {
        atomic_fetch_add(&r->bad_output, 1);
        return;
    }
    atomic_fetch_add_explicit(&r->delivered[id], 1, memory_order_relaxed);
    if (res->status == 0) {
        size_t len = 0;
        const void *out = swarm_response_data(res->response, &len);
        uint64_t echoed = 0;
        if (len != sizeof echoed)
            atomic_fetch_add(&r->bad_output, 1);
        else if (memcpy(&echoed, out, sizeof echoed), echoed != id)
            atomic_fetch_add(&r->bad_output, 1);
    }
}

static int warmup(void *ctx, uint32_t worker, swarm_cancel *cancel)
{
    (void)ctx;
    uint64_t s = (uint64_t)worker * 7919 + (uint64_t)swarm_now_ns();
    int64_t d = (int64_t)(xs(&s) % 200) * US;
    int64_t end = swarm_now_ns() + d;
    while (swarm_now_ns() < end) {
        if (swarm_cancel_is_canceled(cancel))
            return SWARM_ECANCELED;
        sleep_ns(20 * US);
    }
    return 0;
}

typedef struct prod_arg {
    run *r;
    uint32_t index;
} prod_arg;

static void *producer(void *arg)
{
    prod_arg *a = arg;
    run *r = a->r;
    uint64_t base = a->index * r->per_producer;
    for (uint64_t i = 0; i < r->per_producer; i++) {
        swarm_task t;
        memset(&t, 0, sizeof t);
        t.id = base + i;
        t.enqueued_ns = swarm_now_ns();
        if (swarm_chan_send(r->ch, &t) != 0)
            break; /* closed by a deadline stop */
        atomic_store_explicit(&r->sent[t.id], 1, memory_order_relaxed);
    }
    return NULL;
}

/* A second source of resizes, from another thread. */
static void *chaos(void *arg)
{
    run *r = arg;
    uint64_t s = 0x1234567u;
    while (!atomic_load(&r->stop_chaos)) {
        int rc = swarm_pool_resize(r->pool, (uint32_t)(xs(&s) % (r->max_workers + 1)));
        if (rc != 0 && rc != SWARM_ESTATE)
            fail_msg("resize: %s", swarm_strerror(rc));
        atomic_fetch_add(&r->resizes, 1);
        sleep_ns((int64_t)(xs(&s) % 300) * US);
    }
    return NULL;
}

typedef struct loop_ctx {
    run *r;
    uint64_t rng;
} loop_ctx;

static int observe(void *ctx, swarm_policy_obs *obs)
{
    loop_ctx *c = ctx;
    swarm_pool_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    swarm_pool_get_stats(c->r->pool, &st);
    int32_t cur = (int32_t)st.target;
    int32_t ready = (int32_t)(st.ready < st.target ? st.ready : st.target);
    int32_t starting = (int32_t)st.starting;
    if (starting > cur - ready)
        starting = cur - ready;
    obs->current_replicas = cur;
    obs->ready_replicas = ready;
    obs->starting_replicas = starting;
    obs->n_metrics = 1;
    obs->metrics[0].kind = SWARM_METRIC_TOTAL;
    /* The real backlog, or a random one, to make the policy move. */
    obs->metrics[0].value = (xs(&c->rng) & 1) ? (double)st.queued : (double)(xs(&c->rng) % 64);
    obs->metrics[0].in_flight = (double)st.in_flight;
    obs->metrics[0].target = 4;
    return 0;
}

static int actuate(void *ctx, int32_t desired, const swarm_policy_decision *d)
{
    (void)d;
    loop_ctx *c = ctx;
    uint32_t n = (xs(&c->rng) % 4 == 0) ? (uint32_t)(xs(&c->rng) % (c->r->max_workers + 1))
                                        : (uint32_t)desired;
    int rc = swarm_pool_resize(c->r->pool, n);
    atomic_fetch_add(&c->r->resizes, 1);
    return rc == SWARM_ESTATE ? 0 : rc;
}

static void run_once(uint32_t batch, int deadline_stop)
{
    run r;
    memset(&r, 0, sizeof r);
    r.per_producer = (uint64_t)(200000 * scale());
    if (r.per_producer < 100)
        r.per_producer = 100;
    r.total = r.per_producer * PRODUCERS;
    r.max_workers = 12;
    r.sent = calloc(r.total, sizeof *r.sent);
    r.delivered = calloc(r.total, sizeof *r.delivered);
    assert_non_null(r.sent);
    assert_non_null(r.delivered);

    swarm_chan_opts co;
    swarm_chan_opts_init(&co);
    co.capacity = 256;
    co.elem_size = sizeof(swarm_task);
    assert_int_equal(swarm_chan_create(&r.ch, &co), 0);

    swarm_engine_ops ops;
    memset(&ops, 0, sizeof ops);
    ops.version = SWARM_ENGINE_OPS_VERSION;
    ops.name = "stress";
    ops.infer = st_infer;
    swarm_engine *e = NULL;
    assert_int_equal(swarm_engine_create(&e, &ops, NULL, NULL), 0);

    swarm_pool_opts po;
    swarm_pool_opts_init(&po);
    po.input = r.ch;
    po.engine = e;
    po.workers = 2;
    po.max_workers = r.max_workers;
    po.batch_max = batch;
    po.batch_linger_ns = batch > 1 ? 50 * US : 0;
    po.on_result = on_result;
    po.result_ctx = &r;
    po.warmup = warmup;
    assert_int_equal(swarm_pool_create(&r.pool, &po), 0);

    swarm_policy_opts pol;
    swarm_policy_opts_init(&pol);
    pol.mode = SWARM_POLICY_KEDA;
    pol.max_replicas = (int32_t)r.max_workers;
    pol.cooldown_ns = 2 * MS;
    pol.scale_down.window_ns = -1;
    swarm_policy *policy = NULL;
    assert_int_equal(swarm_policy_create(&policy, &pol), 0);
    loop_ctx lc = {&r, 0xdeadbeefu};
    swarm_reconcile_opts ro;
    swarm_reconcile_opts_init(&ro);
    ro.policy = policy;
    ro.observe = observe;
    ro.actuate = actuate;
    ro.user = &lc;
    ro.interval_ns = 500 * US;
    ro.jitter = 1.0;
    ro.actuate_always = 1;
    swarm_reconcile *loop = NULL;
    assert_int_equal(swarm_reconcile_create(&loop, &ro), 0);
    assert_int_equal(swarm_reconcile_start(loop), 0);

    pthread_t prod[PRODUCERS], ch_th;
    prod_arg pa[PRODUCERS];
    for (uint32_t i = 0; i < PRODUCERS; i++) {
        pa[i] = (prod_arg){&r, i};
        pthread_create(&prod[i], NULL, producer, &pa[i]);
    }
    pthread_create(&ch_th, NULL, chaos, &r);

    swarm_task *left = calloc(r.total, sizeof *left);
    uint64_t n_left = 0;
    int moved;
    if (deadline_stop) {
        /* Stop while producers are still sending: the channel closes under them. */
        int64_t end = swarm_now_ns() + 30 * SEC;
        for (;;) {
            uint64_t got = 0;
            for (uint64_t i = 0; i < r.total; i += 97)
                got += atomic_load_explicit(&r.sent[i], memory_order_relaxed);
            if (got * 97 >= r.total / 2 || swarm_now_ns() > end)
                break;
            sleep_ns(MS);
        }
        atomic_store(&r.stop_chaos, 1);
        pthread_join(ch_th, NULL);
        swarm_reconcile_stop(loop);
        /* One slow-ish worker against four producers: a backlog builds for stop to hand back. */
        assert_int_equal(swarm_pool_resize(r.pool, 1), 0);
        sleep_ns(2 * MS);
        moved = swarm_pool_stop(r.pool, 0, left, r.total, &n_left);
        for (uint32_t i = 0; i < PRODUCERS; i++)
            pthread_join(prod[i], NULL);
    } else {
        for (uint32_t i = 0; i < PRODUCERS; i++)
            pthread_join(prod[i], NULL);
        atomic_store(&r.stop_chaos, 1);
        pthread_join(ch_th, NULL);
        swarm_reconcile_stop(loop);
        moved = swarm_pool_stop(r.pool, SWARM_WAIT_FOREVER, left, r.total, &n_left);
        assert_int_equal(moved, 0);
    }
    assert_true(moved >= 0);
    assert_int_equal((uint64_t)moved, n_left);

    uint8_t *returned = calloc(r.total, 1);
    for (int i = 0; i < moved; i++) {
        assert_true(left[i].id < r.total);
        returned[left[i].id]++;
    }
    uint64_t n_sent = 0, n_deliv = 0;
    for (uint64_t i = 0; i < r.total; i++) {
        uint32_t s = atomic_load(&r.sent[i]);
        uint32_t d = atomic_load(&r.delivered[i]);
        n_sent += s;
        n_deliv += d;
        /* A task whose send succeeded: once delivered or once returned. A task never sent: not
         * seen at all (its send may have raced the close and failed). */
        if (d + returned[i] != s)
            fail_msg("task %" PRIu64 ": sent %u delivered %u returned %u", i, s, d, returned[i]);
    }
    assert_int_equal(atomic_load(&r.bad_output), 0);
    swarm_pool_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    assert_int_equal(swarm_pool_get_stats(r.pool, &st), 0);
    assert_int_equal(st.completed + st.failed, n_deliv);
    assert_int_equal(st.taken, n_deliv);
    assert_int_equal(st.live, 0);
    swarm_reconcile_stats rs;
    memset(&rs, 0, sizeof rs);
    rs.size = sizeof rs;
    swarm_reconcile_get_stats(loop, &rs);
    printf("# batch %u %s: sent %" PRIu64 " delivered %" PRIu64 " returned %d; workers started "
           "%" PRIu64 " retired %" PRIu64 "; resizes %" PRIu64 "; reconcile ticks %" PRIu64 "\n",
           batch, deadline_stop ? "deadline" : "drain", n_sent, n_deliv, moved, st.started,
           st.retired, atomic_load(&r.resizes), rs.ticks);

    swarm_reconcile_destroy(loop);
    swarm_policy_destroy(policy);
    swarm_pool_destroy(r.pool);
    swarm_engine_destroy(e);
    swarm_chan_destroy(r.ch);
    free(returned);
    free(left);
    free((void *)r.sent);
    free((void *)r.delivered);
}

static void test_pool_stress_single_drain(void **state)
{
    (void)state;
    run_once(1, 0);
}

static void test_pool_stress_batch_drain(void **state)
{
    (void)state;
    run_once(8, 0);
}

static void test_pool_stress_single_deadline(void **state)
{
    (void)state;
    run_once(1, 1);
}

static void test_pool_stress_batch_deadline(void **state)
{
    (void)state;
    run_once(8, 1);
}

/* ---- owned outputs through a result channel, a stalling reader, autoscaling, the stop hang --- */

typedef struct rc_run {
    run *r;
    swarm_chan *results;
    _Atomic int stall; /* 1: the reader stops reading (the stop-hang scenario) */
    _Atomic int done;
    _Atomic uint64_t got;
} rc_run;

static void check_result(rc_run *c, swarm_pool_result *res)
{
    run *r = c->r;
    uint64_t id = res->task.id;
    if (id >= r->total) {
        atomic_fetch_add(&r->bad_output, 1);
        return;
    }
    atomic_fetch_add_explicit(&r->delivered[id], 1, memory_order_relaxed);
    if (res->status == 0) {
        uint64_t echoed = 0;
        if (!res->owned || !res->output || res->output_len != sizeof echoed)
            atomic_fetch_add(&r->bad_output, 1);
        else if (memcpy(&echoed, res->output, sizeof echoed), echoed != id)
            atomic_fetch_add(&r->bad_output, 1);
    }
    swarm_pool_result_release(r->pool, res);
    atomic_fetch_add(&c->got, 1);
}

static void *reader(void *arg)
{
    rc_run *c = arg;
    swarm_pool_result res;
    uint64_t s = 99;
    while (!atomic_load(&c->done)) {
        if (atomic_load(&c->stall)) {
            sleep_ns(100 * US);
            continue;
        }
        int rc = swarm_chan_recv_timeout(c->results, &res, MS);
        if (rc == 0)
            check_result(c, &res);
        if (xs(&s) % 1000 == 0)
            sleep_ns((int64_t)(xs(&s) % 500) * US); /* irregular reader */
    }
    return NULL;
}

static void *submitter(void *arg)
{
    prod_arg *a = arg;
    run *r = a->r;
    uint64_t base = a->index * r->per_producer;
    for (uint64_t i = 0; i < r->per_producer; i++) {
        swarm_task t;
        memset(&t, 0, sizeof t);
        t.id = base + i;
        if (swarm_pool_submit(r->pool, &t, SWARM_WAIT_FOREVER) != 0)
            break; /* closed by the stop */
        atomic_store_explicit(&r->sent[t.id], 1, memory_order_relaxed);
    }
    return NULL;
}

static void test_pool_stress_result_channel_owned_outputs_stop_hang(void **state)
{
    (void)state;
    run r;
    memset(&r, 0, sizeof r);
    r.per_producer = (uint64_t)(50000 * scale());
    if (r.per_producer < 1000)
        r.per_producer = 1000;
    r.total = r.per_producer * PRODUCERS;
    r.max_workers = 8;
    r.sent = calloc(r.total, 1);
    r.delivered = calloc(r.total, sizeof *r.delivered);
    swarm_chan_opts co;
    swarm_chan_opts_init(&co);
    co.capacity = 256;
    co.elem_size = sizeof(swarm_task);
    assert_int_equal(swarm_chan_create(&r.ch, &co), 0);
    rc_run c = {.r = &r};
    co.capacity = 32;
    co.elem_size = sizeof(swarm_pool_result);
    assert_int_equal(swarm_chan_create(&c.results, &co), 0);
    swarm_engine_ops ops;
    memset(&ops, 0, sizeof ops);
    ops.version = SWARM_ENGINE_OPS_VERSION;
    ops.infer = st_infer;
    swarm_engine *e = NULL;
    assert_int_equal(swarm_engine_create(&e, &ops, NULL, NULL), 0);
    swarm_pool_opts po;
    swarm_pool_opts_init(&po);
    po.input = r.ch;
    po.engine = e;
    po.workers = 2;
    po.max_workers = r.max_workers;
    po.results = c.results;
    po.warmup = warmup;
    assert_int_equal(swarm_pool_create(&r.pool, &po), 0);
    swarm_engine_destroy(e);
    /* Autoscaled by the one-call loop, while the chaos thread resizes too. */
    swarm_policy_opts pol_o;
    swarm_policy_opts_init(&pol_o);
    pol_o.mode = SWARM_POLICY_KEDA;
    pol_o.cooldown_ns = 20 * MS;
    swarm_policy *pol = NULL;
    assert_int_equal(swarm_policy_create(&pol, &pol_o), 0);
    swarm_reconcile_opts lo;
    swarm_reconcile_opts_init(&lo);
    lo.interval_ns = MS;
    swarm_reconcile_pool_opts ro;
    swarm_reconcile_pool_opts_init(&ro);
    ro.pool = r.pool;
    ro.policy = pol;
    ro.loop = &lo;
    ro.target_per_worker = 16;
    swarm_reconcile *loop = NULL;
    assert_int_equal(swarm_reconcile_create_for_pool(&loop, &ro), 0);
    pthread_t pt[PRODUCERS], ct, rt;
    prod_arg pa[PRODUCERS];
    assert_int_equal(pthread_create(&rt, NULL, reader, &c), 0);
    assert_int_equal(pthread_create(&ct, NULL, chaos, &r), 0);
    for (uint32_t i = 0; i < PRODUCERS; i++) {
        pa[i] = (prod_arg){&r, i};
        assert_int_equal(pthread_create(&pt[i], NULL, submitter, &pa[i]), 0);
    }
    /* Run until about half is through, then the reader stalls with the result channel full. */
    while (atomic_load(&c.got) < r.total / 2)
        sleep_ns(MS);
    atomic_store(&c.stall, 1);
    sleep_ns(20 * MS);
    atomic_store(&r.stop_chaos, 1);
    pthread_join(ct, NULL);
    swarm_reconcile_destroy(loop);
    size_t cap = 1024;
    swarm_task *left = calloc(cap, sizeof *left);
    uint64_t n_left = 0;
    /* Before 0.2 this never returned: workers sat in a plain send on the full channel. */
    int moved = swarm_pool_stop(r.pool, 30 * MS, left, cap, &n_left);
    assert_true(moved >= 0);
    for (uint32_t i = 0; i < PRODUCERS; i++)
        pthread_join(pt[i], NULL);
    uint64_t returned = 0;
    for (int i = 0; i < moved; i++) {
        atomic_fetch_add(&r.delivered[left[i].id], 1);
        returned++;
    }
    swarm_task t;
    while (swarm_chan_try_recv(r.ch, &t) == 0) { /* beyond the left array */
        atomic_fetch_add(&r.delivered[t.id], 1);
        returned++;
    }
    assert_int_equal(returned, n_left);
    swarm_pool_result held[64];
    int nh;
    uint64_t n_held = 0;
    while ((nh = swarm_pool_take_undelivered(r.pool, held, 64)) > 0)
        for (int i = 0; i < nh; i++, n_held++)
            check_result(&c, &held[i]);
    atomic_store(&c.stall, 0);
    swarm_chan_close(c.results);
    atomic_store(&c.done, 1);
    pthread_join(rt, NULL);
    swarm_pool_result res;
    while (swarm_chan_try_recv(c.results, &res) == 0)
        check_result(&c, &res);
    swarm_pool_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    assert_int_equal(swarm_pool_get_stats(r.pool, &st), 0);
    assert_int_equal(st.outputs_dropped, 0);
    assert_int_equal(st.held, 0);
    assert_true(st.undelivered >= n_held);
    assert_int_equal(atomic_load(&r.bad_output), 0);
    uint64_t sent = 0;
    for (uint64_t i = 0; i < r.total; i++) {
        uint32_t d = atomic_load(&r.delivered[i]);
        if (r.sent[i])
            sent++;
        if (d != (r.sent[i] ? 1u : 0u))
            fail_msg("task %" PRIu64 ": sent %u, delivered or returned %u times", i,
                     (unsigned)r.sent[i], d);
    }
    printf("owned outputs: sent %" PRIu64 ", held at stop %" PRIu64 ", returned %" PRIu64
           ", resizes %" PRIu64 "\n",
           sent, n_held, returned, atomic_load(&r.resizes));
    swarm_pool_destroy(r.pool);
    swarm_policy_destroy(pol);
    swarm_chan_destroy(c.results);
    swarm_chan_destroy(r.ch);
    free(left);
    free((void *)r.sent);
    free((void *)r.delivered);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SWARM_TEST_T(test_pool_stress_single_drain, 600),
        SWARM_TEST_T(test_pool_stress_batch_drain, 600),
        SWARM_TEST_T(test_pool_stress_single_deadline, 600),
        SWARM_TEST_T(test_pool_stress_batch_deadline, 600),
        SWARM_TEST_T(test_pool_stress_result_channel_owned_outputs_stop_hang, 600),
    };
    return cmocka_run_group_tests_name("pool_stress", tests, NULL, NULL);
}
