/* SPDX-License-Identifier: MIT */
/*
 * bench_chan: libswarm's channel and a mutex+condvar baseline side by side in one process, on the
 * peer-harness workload (chan_workload.h). Runs are interleaved (run 1 of each, then run 2, ...)
 * so machine drift hits both alike; prints medians of throughput (M msgs/s) and CPU ns per
 * message, and the ratio libswarm / baseline.
 *
 *   usage: bench_chan [runs=3] [n_cap1024=4000000] [n_cap16=1000000]
 *          bench_chan ops [pairs=1000000]   single-thread send+recv pairs, for a stable
 *                                           instruction count under valgrind --tool=callgrind
 */
#include <stdio.h>

#include "chan_workload.h"

/* ---- baseline: ring + one mutex + two condvars, signalling on every operation ---- */
typedef struct mcq {
    pthread_mutex_t mu;
    pthread_cond_t not_full, not_empty;
    uint64_t *buf;
    unsigned cap, head, count;
    int closed;
} mcq;

static void *mcq_create(unsigned cap)
{
    mcq *q = calloc(1, sizeof *q);
    q->buf = calloc(cap, sizeof *q->buf);
    q->cap = cap;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->not_full, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    return q;
}
static void mcq_destroy(void *p)
{
    mcq *q = p;
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->not_full);
    pthread_cond_destroy(&q->not_empty);
    free(q->buf);
    free(q);
}
static int mcq_send(void *p, uint64_t v)
{
    mcq *q = p;
    pthread_mutex_lock(&q->mu);
    while (q->count == q->cap && !q->closed)
        pthread_cond_wait(&q->not_full, &q->mu);
    if (q->closed) {
        pthread_mutex_unlock(&q->mu);
        return -1;
    }
    q->buf[(q->head + q->count) % q->cap] = v;
    q->count++;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
    return 0;
}
static int mcq_recv_many(void *p, uint64_t *v, int max)
{
    mcq *q = p;
    pthread_mutex_lock(&q->mu);
    while (q->count == 0 && !q->closed)
        pthread_cond_wait(&q->not_empty, &q->mu);
    int n = 0;
    while (q->count > 0 && n < max) {
        v[n++] = q->buf[q->head];
        q->head = (q->head + 1) % q->cap;
        q->count--;
    }
    if (n > 0)
        pthread_cond_broadcast(&q->not_full);
    pthread_mutex_unlock(&q->mu);
    return n > 0 ? n : -1;
}
static int mcq_recv(void *p, uint64_t *v)
{
    return mcq_recv_many(p, v, 1) == 1 ? 0 : -1;
}
static void mcq_close(void *p)
{
    mcq *q = p;
    pthread_mutex_lock(&q->mu);
    q->closed = 1;
    pthread_cond_broadcast(&q->not_full);
    pthread_cond_broadcast(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
}
static const wl_ops mutex_ops = {"mutex+condvar", mcq_create,    mcq_destroy, mcq_send,
                                 mcq_recv,        mcq_recv_many, mcq_close};

/* ---- medians ---- */
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

#define MAX_RUNS 15

/* One table row: both implementations, interleaved runs, medians. */
static int row(int P, int C, unsigned cap, uint64_t n, int batch, int runs)
{
    const wl_ops *impl[2] = {&libswarm_ops, &mutex_ops};
    double rate[2][MAX_RUNS], cpu[2][MAX_RUNS];
    int failed = 0;
    for (int r = 0; r < runs; r++) {
        for (int i = 0; i < 2; i++) {
            wl_result res = wl_measure(impl[i], P, C, cap, n, batch);
            if (!res.ok) {
                fprintf(stderr, "%s %dx%d cap %u: lost or duplicated messages\n", impl[i]->name, P,
                        C, cap);
                failed = 1;
            }
            rate[i][r] = (double)res.count / res.wall_s / 1e6;
            cpu[i][r] = res.cpu_s * 1e9 / (double)n;
        }
    }
    double ls = median(rate[0], runs), mu = median(rate[1], runs);
    double lc = median(cpu[0], runs), mc = median(cpu[1], runs);
    char cfg[32];
    snprintf(cfg, sizeof cfg, "%dx%d%s", P, C, batch > 1 ? " batch" : "");
    printf("| %5u | %-9s | %8llu | %8.2f | %8.2f | %6.2fx | %8.0f | %8.0f |\n", cap, cfg,
           (unsigned long long)n, ls, mu, ls / mu, lc, mc);
    fflush(stdout);
    return failed;
}

/* Single-thread drain: recv vs recv_batch(32) on a full channel, the consumer-side cost alone. */
static void drain_rates(int runs)
{
    const uint64_t n = 1u << 22;
    double single[MAX_RUNS], batched[MAX_RUNS];
    swarm_chan *ch = sw_create(1024);
    uint64_t buf[32];
    for (int r = 0; r < runs; r++) {
        for (int mode = 0; mode < 2; mode++) {
            double t = 0;
            for (uint64_t done = 0; done < n; done += 1024) {
                for (uint64_t v = 0; v < 1024; v++)
                    swarm_chan_try_send(ch, &v);
                double t0 = wl_wall();
                if (mode == 0) {
                    for (int k = 0; k < 1024; k++)
                        swarm_chan_try_recv(ch, buf);
                } else {
                    for (int k = 0; k < 1024; k += 32)
                        swarm_chan_recv_batch(ch, buf, 32, 1, 0, 0, NULL);
                }
                t += wl_wall() - t0;
            }
            (mode == 0 ? single : batched)[r] = (double)n / t / 1e6;
        }
    }
    double s = median(single, runs), b = median(batched, runs);
    printf("\nsingle-thread receive from a full channel (cap 1024): recv %.1f M/s, "
           "recv_batch(32) %.1f M/s: %.1fx\n",
           s, b, b / s);
    sw_destroy(ch);
}

/* Uncontended cost: batches of 512 sends then 512 receives on one thread. Under callgrind,
 * (Collected - setup) / (2 * pairs) is the instructions per operation. */
static int ops_mode(uint64_t pairs)
{
    swarm_chan *ch = sw_create(1024);
    uint64_t v = 0, sum = 0;
    double t0 = wl_wall();
    for (uint64_t done = 0; done < pairs; done += 512) {
        for (int i = 0; i < 512; i++) {
            v++;
            swarm_chan_send(ch, &v);
        }
        for (int i = 0; i < 512; i++) {
            swarm_chan_recv(ch, &v);
            sum += v;
        }
    }
    double ns = (wl_wall() - t0) * 1e9 / (double)(2 * pairs);
    printf("single thread: %.2f ns per operation (send or recv), checksum %llu\n", ns,
           (unsigned long long)(sum & 0xffff));
    sw_destroy(ch);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "ops") == 0)
        return ops_mode(argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000);
    int runs = argc > 1 ? atoi(argv[1]) : 3;
    uint64_t n_big = argc > 2 ? strtoull(argv[2], NULL, 10) : 4000000;
    uint64_t n_small = argc > 3 ? strtoull(argv[3], NULL, 10) : 1000000;
    if (runs < 1 || runs > MAX_RUNS)
        runs = 3;
    printf("bench_chan: libswarm %s vs mutex+condvar, medians of %d interleaved runs\n\n",
           swarm_version_string(), runs);
    printf("|   cap | P x C     |     msgs | libswarm |    mutex |  ratio | ls cpu ns | mx cpu ns "
           "|\n");
    printf(
        "|------:|:----------|---------:|---------:|---------:|-------:|---------:|---------:|\n");
    int failed = 0;
    static const int cfg[][2] = {{1, 1}, {2, 2}, {4, 4}, {8, 8}};
    for (int c = 0; c < 4; c++)
        failed |= row(cfg[c][0], cfg[c][1], 1024, n_big, 1, runs);
    for (int c = 0; c < 4; c++)
        failed |= row(cfg[c][0], cfg[c][1], 16, n_small, 1, runs);
    failed |= row(1, 1, 1024, n_big, 32, runs);
    failed |= row(4, 4, 1024, n_big, 32, runs);
    drain_rates(runs);
    return failed;
}
