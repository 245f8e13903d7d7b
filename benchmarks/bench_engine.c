/* SPDX-License-Identifier: MIT */
/*
 * Engine benchmarks.
 *
 *   bench_engine                 overhead per call of each decorator over a no-op engine (ns,
 *                                median of 5 runs), then batcher throughput vs batch size and
 *                                linger with 8 callers and a mock whose batch costs 50 us.
 *   bench_engine one <variant> N run one variant N times and nothing else, for
 *                                valgrind --tool=callgrind --toggle-collect=swarm_engine_infer
 *                                (variants: direct noop timeout retry breaker fallback split
 *                                batcher stack)
 *
 * The steady-state path allocates nothing: responses are created once and reset per call.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <swarm/swarm.h>

#define US 1000LL
#define MS 1000000LL

static int noop_infer(void *self, const swarm_request *req, swarm_response *resp)
{
    (void)self;
    (void)req;
    (void)resp;
    return 0;
}

static swarm_engine *noop(void)
{
    swarm_engine_ops ops = {
        .version = SWARM_ENGINE_OPS_VERSION, .name = "noop", .infer = noop_infer};
    swarm_engine *e = NULL;
    if (swarm_engine_create(&e, &ops, NULL, NULL) != 0)
        abort();
    return e;
}

static swarm_engine *make(const char *variant)
{
    swarm_engine *e = NULL, *in = NULL;
    int rc = 0;
    if (strcmp(variant, "noop") == 0 || strcmp(variant, "direct") == 0)
        return noop();
    if (strcmp(variant, "timeout") == 0) {
        rc = swarm_engine_timeout_create(&e, noop(), NULL);
    } else if (strcmp(variant, "retry") == 0) {
        rc = swarm_engine_retry_create(&e, noop(), NULL);
    } else if (strcmp(variant, "breaker") == 0) {
        rc = swarm_engine_breaker_create(&e, noop(), NULL);
    } else if (strcmp(variant, "fallback") == 0) {
        rc = swarm_engine_fallback_create(&e, noop(), noop(), NULL);
    } else if (strcmp(variant, "split") == 0) {
        swarm_engine *two[2] = {noop(), noop()};
        uint32_t w[2] = {90, 10};
        rc = swarm_engine_split_create(&e, two, w, 2, NULL);
    } else if (strcmp(variant, "batcher") == 0) {
        rc = swarm_engine_batcher_create(&e, noop(), NULL);
    } else if (strcmp(variant, "stack") == 0) {
        if (swarm_engine_timeout_create(&in, noop(), NULL) != 0 ||
            swarm_engine_breaker_create(&e, in, NULL) != 0)
            abort();
        in = e;
        rc = swarm_engine_retry_create(&e, in, NULL);
    } else {
        fprintf(stderr, "unknown variant %s\n", variant);
        exit(2);
    }
    if (rc != 0)
        abort();
    return e;
}

static double run(swarm_engine *e, swarm_response *r, long n, int direct)
{
    swarm_request q;
    swarm_request_init(&q);
    q.payload = "x";
    q.payload_len = 1;
    int64_t t0 = swarm_now_ns();
    for (long i = 0; i < n; i++) {
        q.id = (uint64_t)i;
        swarm_response_reset(r);
        if (direct)
            noop_infer(NULL, &q, r);
        else
            swarm_engine_infer(e, &q, r);
    }
    return (double)(swarm_now_ns() - t0) / (double)n;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void overhead(void)
{
    static const char *variants[] = {"direct",   "noop",  "timeout", "retry", "breaker",
                                     "fallback", "split", "batcher", "stack"};
    swarm_response *r = NULL;
    swarm_response_create(&r, NULL);
    const long n = 2000000;
    double base = 0;
    printf("decorator overhead, 1 thread, %ld calls x 5 runs, median ns/call\n", n);
    printf("%-10s %10s %12s\n", "variant", "ns/call", "over noop");
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        swarm_engine *e = make(variants[v]);
        int direct = v == 0;
        double t[5];
        run(e, r, n / 10, direct); /* warm up */
        for (int k = 0; k < 5; k++)
            t[k] = run(e, r, n, direct);
        qsort(t, 5, sizeof t[0], cmp_d);
        if (v == 1)
            base = t[2];
        if (v == 0)
            printf("%-10s %10.1f %12s\n", "direct fn", t[2], "(baseline)");
        else
            printf("%-10s %10.1f %12.1f\n", variants[v], t[2], v == 1 ? 0.0 : t[2] - base);
        swarm_engine_destroy(e);
    }
    swarm_response_destroy(r);
}

/* ---- batcher throughput -------------------------------------------------------------------- */

typedef struct targ {
    swarm_engine *e;
    _Atomic int *stop;
    long done;
    int id;
} targ;

static void *caller(void *p)
{
    targ *a = p;
    swarm_response *r = NULL;
    swarm_response_create(&r, NULL);
    swarm_request q;
    swarm_request_init(&q);
    q.payload = "hello";
    q.payload_len = 5;
    while (!atomic_load_explicit(a->stop, memory_order_relaxed)) {
        q.id = ((uint64_t)a->id << 32) | (uint64_t)a->done;
        swarm_response_reset(r);
        if (swarm_engine_infer(a->e, &q, r) == 0)
            a->done++;
    }
    swarm_response_destroy(r);
    return NULL;
}

static void throughput(void)
{
    enum { THREADS = 8 };
    const uint32_t sizes[] = {1, 2, 4, 8};
    const int64_t lingers[] = {0, 50 * US, 200 * US};
    printf("\nbatcher throughput: %d callers, mock batch latency 50 us fixed, 300 ms per cell\n",
           THREADS);
    printf("%-10s %-10s %12s %12s\n", "max_batch", "linger_us", "req/s", "mean batch");
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        for (size_t li = 0; li < sizeof lingers / sizeof lingers[0]; li++) {
            swarm_mock_opts mo;
            swarm_mock_opts_init(&mo);
            mo.batch = 1;
            mo.latency_kind = SWARM_MOCK_LATENCY_FIXED;
            mo.latency_ns = 50 * US;
            swarm_engine *m = NULL, *b = NULL;
            swarm_engine_mock_create(&m, &mo);
            swarm_batcher_opts bo;
            swarm_batcher_opts_init(&bo);
            bo.max_batch = sizes[si];
            bo.max_wait_ns = lingers[li];
            if (swarm_engine_batcher_create(&b, m, &bo) != 0)
                abort();
            _Atomic int stop = 0;
            pthread_t th[THREADS];
            targ a[THREADS];
            int64_t t0 = swarm_now_ns();
            for (int i = 0; i < THREADS; i++) {
                a[i] = (targ){.e = b, .stop = &stop, .id = i};
                pthread_create(&th[i], NULL, caller, &a[i]);
            }
            struct timespec ts = {0, 300 * MS};
            nanosleep(&ts, NULL);
            atomic_store(&stop, 1);
            long total = 0;
            for (int i = 0; i < THREADS; i++) {
                pthread_join(th[i], NULL);
                total += a[i].done;
            }
            double secs = (double)(swarm_now_ns() - t0) / 1e9;
            swarm_batcher_stats st = {.size = sizeof st};
            swarm_engine_batcher_get_stats(b, &st);
            printf("%-10u %-10lld %12.0f %12.2f\n", sizes[si], (long long)(lingers[li] / US),
                   (double)total / secs,
                   st.batches ? (double)st.requests / (double)st.batches : 0.0);
            swarm_engine_destroy(b);
        }
    }
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "one") == 0) {
        swarm_engine *e = make(argv[2]);
        swarm_response *r = NULL;
        swarm_response_create(&r, NULL);
        double ns = run(e, r, atol(argv[3]), strcmp(argv[2], "direct") == 0);
        printf("%s: %.1f ns/call\n", argv[2], ns);
        swarm_response_destroy(r);
        swarm_engine_destroy(e);
        return 0;
    }
    overhead();
    throughput();
    return 0;
}
