/* SPDX-License-Identifier: MIT */
/*
 * The peer-harness workload (../shared/peers/README.md, section 3), shared by bench_chan and
 * chan_peer: P producers send the values 1..N (producer i the range N*i/P+1 .. N*(i+1)/P) as
 * 8-byte messages; C consumers sum what they receive until the channel is closed and drained.
 * Wall time spans thread creation to the last join; CPU time is the process's user+sys delta.
 */
#ifndef CHAN_WORKLOAD_H
#define CHAN_WORKLOAD_H

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* A channel implementation under test. recv returns 0 or <0 once closed and drained; recv_many
 * (optional) fills up to max and returns the count or <0. */
typedef struct wl_ops {
    const char *name;
    void *(*create)(unsigned cap);
    void (*destroy)(void *q);
    int (*send)(void *q, uint64_t v);
    int (*recv)(void *q, uint64_t *v);
    int (*recv_many)(void *q, uint64_t *v, int max);
    void (*close)(void *q);
} wl_ops;

typedef struct wl_result {
    double wall_s, cpu_s;
    uint64_t sum, count;
    int ok;
} wl_result;

typedef struct wl_run {
    const wl_ops *ops;
    void *q;
    int P, C, batch;
    uint64_t n;
    struct {
        _Alignas(64) uint64_t sum;
        uint64_t count;
    } * per_consumer;
    int next_producer, next_consumer;
    pthread_mutex_t lock;
} wl_run;

static double wl_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double wl_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static void *wl_producer(void *arg)
{
    wl_run *r = arg;
    pthread_mutex_lock(&r->lock);
    int i = r->next_producer++;
    pthread_mutex_unlock(&r->lock);
    uint64_t lo = r->n * (uint64_t)i / (uint64_t)r->P + 1;
    uint64_t hi = r->n * (uint64_t)(i + 1) / (uint64_t)r->P;
    for (uint64_t v = lo; v <= hi; v++)
        if (r->ops->send(r->q, v) != 0)
            abort();
    return NULL;
}

static void *wl_consumer(void *arg)
{
    wl_run *r = arg;
    pthread_mutex_lock(&r->lock);
    int i = r->next_consumer++;
    pthread_mutex_unlock(&r->lock);
    uint64_t sum = 0, count = 0;
    if (r->batch > 1 && r->ops->recv_many != NULL) {
        uint64_t buf[256];
        int k;
        while ((k = r->ops->recv_many(r->q, buf, r->batch)) > 0) {
            for (int j = 0; j < k; j++)
                sum += buf[j];
            count += (uint64_t)k;
        }
    } else {
        uint64_t v;
        while (r->ops->recv(r->q, &v) == 0) {
            sum += v;
            count++;
        }
    }
    r->per_consumer[i].sum = sum;
    r->per_consumer[i].count = count;
    return NULL;
}

/* Runs one measurement. batch > 1 makes consumers use recv_many. */
static wl_result wl_measure(const wl_ops *ops, int P, int C, unsigned cap, uint64_t n, int batch)
{
    wl_run r;
    memset(&r, 0, sizeof r);
    r.ops = ops;
    r.P = P;
    r.C = C;
    r.n = n;
    r.batch = batch > 256 ? 256 : batch;
    r.q = ops->create(cap);
    pthread_mutex_init(&r.lock, NULL);
    r.per_consumer = calloc((size_t)C, sizeof *r.per_consumer);
    pthread_t *t = calloc((size_t)(P + C), sizeof *t);
    if (r.q == NULL || r.per_consumer == NULL || t == NULL)
        abort();

    double w0 = wl_wall(), c0 = wl_cpu();
    for (int i = 0; i < C; i++)
        pthread_create(&t[P + i], NULL, wl_consumer, &r);
    for (int i = 0; i < P; i++)
        pthread_create(&t[i], NULL, wl_producer, &r);
    for (int i = 0; i < P; i++)
        pthread_join(t[i], NULL);
    ops->close(r.q);
    for (int i = 0; i < C; i++)
        pthread_join(t[P + i], NULL);
    wl_result res = {wl_wall() - w0, wl_cpu() - c0, 0, 0, 0};

    for (int i = 0; i < C; i++) {
        res.sum += r.per_consumer[i].sum;
        res.count += r.per_consumer[i].count;
    }
    res.ok = res.count == n && res.sum == n * (n + 1) / 2;
    ops->destroy(r.q);
    free(t);
    free(r.per_consumer);
    pthread_mutex_destroy(&r.lock);
    return res;
}

/* ---- libswarm as a workload implementation ---- */
#include <swarm/swarm.h>

static void *sw_create(unsigned cap)
{
    swarm_chan_opts o;
    swarm_chan_opts_init(&o);
    o.capacity = cap;
    o.elem_size = sizeof(uint64_t);
    /* Tuning knob for experiments: SWARM_BENCH_SPIN sets swarm_chan_opts.spin. */
    if (getenv("SWARM_BENCH_SPIN") != NULL)
        o.spin = (uint32_t)strtoul(getenv("SWARM_BENCH_SPIN"), NULL, 10);
    swarm_chan *ch = NULL;
    return swarm_chan_create(&ch, &o) == 0 ? ch : NULL;
}
static void sw_destroy(void *q)
{
    swarm_chan_destroy(q);
}
static int sw_send(void *q, uint64_t v)
{
    return swarm_chan_send(q, &v);
}
static int sw_recv(void *q, uint64_t *v)
{
    return swarm_chan_recv(q, v);
}
static int sw_recv_many(void *q, uint64_t *v, int max)
{
    return swarm_chan_recv_batch(q, v, (size_t)max, 1, 0, SWARM_WAIT_FOREVER, NULL);
}
static void sw_close(void *q)
{
    swarm_chan_close(q);
}
static const wl_ops libswarm_ops = {"libswarm", sw_create,    sw_destroy, sw_send,
                                    sw_recv,    sw_recv_many, sw_close};

#endif /* CHAN_WORKLOAD_H */
