/* SPDX-License-Identifier: MIT */
/*
 * bench_pool: what the agent pool costs over the raw channel it reads from.
 *
 *   1. Throughput, single tasks: P producers send N swarm_task; C consumers either receive them
 *      raw (swarm_chan_recv, nothing else) or are a pool of C workers running a no-op engine and
 *      delivering each result to a counting callback. Same element type, same channel capacity,
 *      same thread counts. Target: pool >= 70 % of raw.
 *   2. The same with batches of up to 32 (swarm_chan_recv_batch vs a pool with batch_max 32
 *      and an engine with infer_batch).
 *   Between them, "direct": hand-rolled consumers doing the pool's per-task engine work (reset,
 *      swarm_engine_infer, the same callback) on the raw channel, so pool/direct is the pool's own
 *      overhead and raw/direct the engine layer's.
 *   3. Per-task CPU cost as workers grow (1 producer, 1..8 workers, single tasks): process CPU
 *      ns per task for the raw channel and the pool side by side, so a pool cost that grew with
 *      the worker count (shared counters, a global lock) would show.
 *   4. Reconcile tick overhead: ns per swarm_reconcile_step() with trivial callbacks (one KEDA
 *      decision per tick) and the same with the loop's thread driven by kicks.
 *
 * Runs of each variant are interleaved so machine drift hits both; medians are printed.
 *
 *   usage: bench_pool [runs=5] [n=1000000]
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <swarm/swarm.h>

#define BATCH 32

static uint64_t n_items = 1000000;

/* ---- producers --------------------------------------------------------------------------- */

typedef struct prod {
    swarm_chan *ch;
    uint64_t first, count;
} prod;

static void *producer(void *arg)
{
    prod *p = arg;
    swarm_task t;
    memset(&t, 0, sizeof t);
    for (uint64_t i = 0; i < p->count; i++) {
        t.id = p->first + i;
        if (swarm_chan_send(p->ch, &t) != 0)
            abort();
    }
    return NULL;
}

static swarm_chan *make_chan(void)
{
    swarm_chan_opts co;
    swarm_chan_opts_init(&co);
    co.capacity = 1024;
    co.elem_size = sizeof(swarm_task);
    swarm_chan *ch = NULL;
    if (swarm_chan_create(&ch, &co) != 0)
        abort();
    return ch;
}

static void start_producers(swarm_chan *ch, unsigned np, pthread_t *th, prod *pa)
{
    for (unsigned i = 0; i < np; i++) {
        pa[i] = (prod){ch, i * (n_items / np), n_items / np};
        pthread_create(&th[i], NULL, producer, &pa[i]);
    }
}

/* ---- raw channel consumers ---------------------------------------------------------------- */

typedef struct raw_cons {
    swarm_chan *ch;
    unsigned batch;
    uint64_t got;
    uint64_t sum;
} raw_cons;

static void *raw_consumer(void *arg)
{
    raw_cons *c = arg;
    swarm_task buf[BATCH];
    for (;;) {
        int n;
        if (c->batch > 1) {
            n = swarm_chan_recv_batch(c->ch, buf, c->batch, 1, 0, SWARM_WAIT_FOREVER, NULL);
        } else {
            n = swarm_chan_recv(c->ch, &buf[0]);
            n = n == 0 ? 1 : n;
        }
        if (n < 0)
            break;
        for (int i = 0; i < n; i++)
            c->sum += buf[i].id;
        c->got += (uint64_t)n;
    }
    return NULL;
}

static double run_raw(unsigned np, unsigned nc, unsigned batch)
{
    swarm_chan *ch = make_chan();
    pthread_t pt[8], ct[8];
    prod pa[8];
    raw_cons cc[8];
    int64_t t0 = swarm_now_ns();
    for (unsigned i = 0; i < nc; i++) {
        cc[i] = (raw_cons){ch, batch, 0, 0};
        pthread_create(&ct[i], NULL, raw_consumer, &cc[i]);
    }
    start_producers(ch, np, pt, pa);
    for (unsigned i = 0; i < np; i++)
        pthread_join(pt[i], NULL);
    swarm_chan_close(ch);
    uint64_t got = 0;
    for (unsigned i = 0; i < nc; i++) {
        pthread_join(ct[i], NULL);
        got += cc[i].got;
    }
    int64_t dt = swarm_now_ns() - t0;
    if (got != (n_items / np) * np)
        abort();
    swarm_chan_destroy(ch);
    return (double)got / ((double)dt / 1e9);
}

/* ---- pool with a no-op engine ------------------------------------------------------------- */

static int noop_infer(void *self, const swarm_request *req, swarm_response *resp)
{
    (void)self;
    (void)req;
    (void)resp;
    return 0;
}

static int noop_infer_batch(void *self, const swarm_request *const *reqs,
                            swarm_response *const *resps, size_t n)
{
    (void)self;
    (void)reqs;
    (void)resps;
    (void)n;
    return 0;
}

/* Per-worker counters, padded, so the callback adds no shared contention of its own. */
typedef struct counter {
    _Alignas(64) uint64_t n;
    uint64_t sum;
} counter;
static counter counters[64];

static void on_result(void *ctx, const swarm_pool_result *r)
{
    (void)ctx;
    counter *c = &counters[r->worker & 63];
    c->n++;
    c->sum += r->task.id;
}

static swarm_engine *noop_engine(void)
{
    swarm_engine_ops ops;
    memset(&ops, 0, sizeof ops);
    ops.version = SWARM_ENGINE_OPS_VERSION;
    ops.name = "noop";
    ops.infer = noop_infer;
    ops.infer_batch = noop_infer_batch;
    swarm_engine *e = NULL;
    if (swarm_engine_create(&e, &ops, NULL, NULL) != 0)
        abort();
    return e;
}

static double run_pool(unsigned np, unsigned nc, unsigned batch)
{
    swarm_chan *ch = make_chan();
    swarm_engine *e = noop_engine();
    memset(counters, 0, sizeof counters);
    swarm_pool_opts po;
    swarm_pool_opts_init(&po);
    po.input = ch;
    po.engine = e;
    po.workers = nc;
    po.batch_max = batch;
    po.on_result = on_result;
    swarm_pool *p = NULL;
    pthread_t pt[8];
    prod pa[8];
    int64_t t0 = swarm_now_ns();
    if (swarm_pool_create(&p, &po) != 0)
        abort();
    start_producers(ch, np, pt, pa);
    for (unsigned i = 0; i < np; i++)
        pthread_join(pt[i], NULL);
    if (swarm_pool_stop(p, SWARM_WAIT_FOREVER, NULL, 0, NULL) != 0)
        abort();
    int64_t dt = swarm_now_ns() - t0;
    uint64_t got = 0;
    for (unsigned i = 0; i < 64; i++)
        got += counters[i].n;
    if (got != (n_items / np) * np)
        abort();
    swarm_pool_destroy(p);
    swarm_engine_destroy(e);
    swarm_chan_destroy(ch);
    return (double)got / ((double)dt / 1e9);
}

/* ---- hand-rolled consumers doing the pool's per-task work (the engine layer's cost) ------- */

typedef struct direct_cons {
    swarm_chan *ch;
    swarm_engine *e;
    unsigned batch, index;
} direct_cons;

static void *direct_consumer(void *arg)
{
    direct_cons *c = arg;
    swarm_task buf[BATCH];
    swarm_request req[BATCH];
    const swarm_request *rp[BATCH];
    swarm_response *resp[BATCH];
    for (unsigned i = 0; i < BATCH; i++) {
        swarm_request_init(&req[i]);
        rp[i] = &req[i];
        if (swarm_response_create(&resp[i], NULL) != 0)
            abort();
    }
    for (;;) {
        int n;
        if (c->batch > 1) {
            n = swarm_chan_recv_batch(c->ch, buf, c->batch, 1, 0, SWARM_WAIT_FOREVER, NULL);
        } else {
            n = swarm_chan_recv(c->ch, &buf[0]);
            n = n == 0 ? 1 : n;
        }
        if (n < 0)
            break;
        for (int i = 0; i < n; i++) {
            req[i].id = buf[i].id;
            swarm_response_reset(resp[i]);
        }
        if (n == 1)
            swarm_engine_infer(c->e, &req[0], resp[0]);
        else
            swarm_engine_infer_batch(c->e, rp, resp, (size_t)n);
        for (int i = 0; i < n; i++) {
            swarm_pool_result r;
            memset(&r, 0, sizeof r);
            r.worker = c->index;
            r.task = buf[i];
            r.status = swarm_response_status(resp[i]);
            r.response = resp[i];
            on_result(NULL, &r);
        }
    }
    for (unsigned i = 0; i < BATCH; i++)
        swarm_response_destroy(resp[i]);
    return NULL;
}

static double run_direct(unsigned np, unsigned nc, unsigned batch)
{
    swarm_chan *ch = make_chan();
    swarm_engine *e = noop_engine();
    memset(counters, 0, sizeof counters);
    pthread_t pt[8], ct[8];
    prod pa[8];
    direct_cons cc[8];
    int64_t t0 = swarm_now_ns();
    for (unsigned i = 0; i < nc; i++) {
        cc[i] = (direct_cons){ch, e, batch, i};
        pthread_create(&ct[i], NULL, direct_consumer, &cc[i]);
    }
    start_producers(ch, np, pt, pa);
    for (unsigned i = 0; i < np; i++)
        pthread_join(pt[i], NULL);
    swarm_chan_close(ch);
    for (unsigned i = 0; i < nc; i++)
        pthread_join(ct[i], NULL);
    int64_t dt = swarm_now_ns() - t0;
    uint64_t got = 0;
    for (unsigned i = 0; i < 64; i++)
        got += counters[i].n;
    if (got != (n_items / np) * np)
        abort();
    swarm_engine_destroy(e);
    swarm_chan_destroy(ch);
    return (double)got / ((double)dt / 1e9);
}

/* ---- reconcile tick overhead -------------------------------------------------------------- */

static int rc_observe(void *ctx, swarm_policy_obs *obs)
{
    (void)ctx;
    obs->current_replicas = 4;
    obs->ready_replicas = 4;
    obs->n_metrics = 1;
    obs->metrics[0].kind = SWARM_METRIC_TOTAL;
    obs->metrics[0].value = 17;
    obs->metrics[0].target = 5;
    return 0;
}

static int rc_actuate(void *ctx, int32_t desired, const swarm_policy_decision *d)
{
    (void)ctx;
    (void)desired;
    (void)d;
    return 0;
}

static double reconcile_ns_per_tick(uint64_t ticks)
{
    swarm_policy_opts pol;
    swarm_policy_opts_init(&pol);
    pol.mode = SWARM_POLICY_KEDA;
    swarm_policy *policy = NULL;
    if (swarm_policy_create(&policy, &pol) != 0)
        abort();
    swarm_reconcile_opts ro;
    swarm_reconcile_opts_init(&ro);
    ro.policy = policy;
    ro.observe = rc_observe;
    ro.actuate = rc_actuate;
    swarm_reconcile *r = NULL;
    if (swarm_reconcile_create(&r, &ro) != 0)
        abort();
    int64_t now = INT64_C(1000000000000);
    int64_t t0 = swarm_now_ns();
    for (uint64_t i = 0; i < ticks; i++) {
        swarm_reconcile_step(r, now, NULL);
        now += INT64_C(1000000000);
    }
    int64_t dt = swarm_now_ns() - t0;
    swarm_reconcile_destroy(r);
    swarm_policy_destroy(policy);
    return (double)dt / (double)ticks;
}

static double kick_to_tick_ns(unsigned n)
{
    swarm_policy_opts pol;
    swarm_policy_opts_init(&pol);
    pol.mode = SWARM_POLICY_KEDA;
    swarm_policy *policy = NULL;
    if (swarm_policy_create(&policy, &pol) != 0)
        abort();
    swarm_reconcile_opts ro;
    swarm_reconcile_opts_init(&ro);
    ro.policy = policy;
    ro.observe = rc_observe;
    ro.actuate = rc_actuate;
    ro.interval_ns = INT64_C(3600000000000);
    swarm_reconcile *r = NULL;
    if (swarm_reconcile_create(&r, &ro) != 0 || swarm_reconcile_start(r) != 0)
        abort();
    swarm_reconcile_stats st;
    st.size = sizeof st;
    int64_t total = 0;
    for (unsigned i = 0; i < n; i++) {
        swarm_reconcile_get_stats(r, &st);
        uint64_t ticks = st.ticks;
        int64_t t0 = swarm_now_ns();
        swarm_reconcile_kick(r);
        do
            swarm_reconcile_get_stats(r, &st);
        while (st.ticks == ticks);
        total += swarm_now_ns() - t0;
    }
    swarm_reconcile_destroy(r);
    swarm_policy_destroy(policy);
    return (double)total / n;
}

/* ---- main --------------------------------------------------------------------------------- */

static int64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    if (runs < 1 || runs > 64)
        runs = 5;
    if (argc > 2)
        n_items = strtoull(argv[2], NULL, 10);
    if (n_items < 1000)
        n_items = 1000;

    printf("bench_pool: %" PRIu64 " tasks of %zu bytes per run, channel capacity 1024, "
           "%d interleaved runs, medians\n\n",
           n_items, sizeof(swarm_task), runs);
    printf("raw: bare channel receive; direct: channel + the engine layer by hand (reset, "
           "swarm_engine_infer, callback); pool: swarm_pool\n\n");
    printf("%-7s %-7s %5s %9s %9s %9s %9s %12s\n", "mode", "threads", "batch", "raw M/s", "direct",
           "pool M/s", "pool/raw", "pool/direct");
    static const struct {
        unsigned np, nc, batch;
    } cases[] = {{1, 1, 1}, {1, 2, 1}, {2, 2, 1}, {1, 1, BATCH}, {1, 2, BATCH}, {2, 2, BATCH}};
    int worst_ok = 1;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        double raw[64], direct[64], pool[64];
        for (int i = 0; i < runs; i++) {
            raw[i] = run_raw(cases[k].np, cases[k].nc, cases[k].batch);
            direct[i] = run_direct(cases[k].np, cases[k].nc, cases[k].batch);
            pool[i] = run_pool(cases[k].np, cases[k].nc, cases[k].batch);
        }
        double mr = median(raw, runs), md = median(direct, runs), mp = median(pool, runs);
        char th[16];
        snprintf(th, sizeof th, "%uP/%uC", cases[k].np, cases[k].nc);
        printf("%-7s %-7s %5u %9.2f %9.2f %9.2f %8.0f%% %11.0f%%\n",
               cases[k].batch > 1 ? "batch" : "single", th, cases[k].batch, mr / 1e6, md / 1e6,
               mp / 1e6, 100.0 * mp / mr, 100.0 * mp / md);
        if (cases[k].batch == 1 && mp < 0.7 * mr)
            worst_ok = 0;
    }
    printf("\nper-task CPU cost as workers grow (1 producer, single tasks), process CPU ns per "
           "task:\n%-8s %9s %9s %9s\n",
           "workers", "raw", "pool", "pool-raw");
    static const unsigned wk[] = {1, 2, 4, 8};
    for (size_t k = 0; k < sizeof wk / sizeof wk[0]; k++) {
        double raw[64], pool[64];
        for (int i = 0; i < runs; i++) {
            int64_t c0 = cpu_ns();
            (void)run_raw(1, wk[k], 1);
            int64_t c1 = cpu_ns();
            (void)run_pool(1, wk[k], 1);
            int64_t c2 = cpu_ns();
            raw[i] = (double)(c1 - c0) / (double)n_items;
            pool[i] = (double)(c2 - c1) / (double)n_items;
        }
        double mr = median(raw, runs), mp = median(pool, runs);
        printf("%-8u %9.0f %9.0f %9.0f\n", wk[k], mr, mp, mp - mr);
    }
    double tick[64];
    for (int i = 0; i < runs; i++)
        tick[i] = reconcile_ns_per_tick(20000);
    printf("\nreconcile step (observe + KEDA decide + compare), injected time: %.0f ns/tick\n",
           median(tick, runs));
    double kick[64];
    for (int i = 0; i < runs; i++)
        kick[i] = kick_to_tick_ns(200);
    printf("reconcile thread, kick() to completed tick: %.1f us\n", median(kick, runs) / 1e3);
    printf("\nsingle-task pool throughput %s the 70%% of raw channel target (the engine layer's "
           "per-call cost counts against it; pool/direct isolates the pool's own overhead)\n",
           worst_ok ? "meets" : "MISSES");
    return 0;
}
