/* SPDX-License-Identifier: MIT */
/*
 * 01_channel: producers and consumers over a bounded channel with backpressure.
 *
 * Four producers send numbered jobs into a small channel; three consumers take them, in batches
 * when they can. The channel's statistics show the backpressure (time senders spent blocked) and
 * the program checks that every job arrived exactly once.
 *
 *   usage: 01_channel [jobs-per-producer]
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <swarm/swarm.h>

#define PRODUCERS 4
#define CONSUMERS 3

typedef struct job {
    uint32_t producer;
    uint32_t seq;
} job;

static swarm_chan *jobs;
static uint32_t per_producer = 250000;
static uint64_t received[CONSUMERS];
static uint64_t checksum[CONSUMERS];

static void *producer(void *arg)
{
    uint32_t id = (uint32_t)(uintptr_t)arg;
    for (uint32_t i = 0; i < per_producer; i++) {
        job j = {id, i};
        int rc = swarm_chan_send(jobs, &j); /* blocks while the channel is full */
        if (rc != 0) {
            fprintf(stderr, "send: %s\n", swarm_strerror(rc));
            break;
        }
    }
    return NULL;
}

static void *consumer(void *arg)
{
    size_t id = (size_t)(uintptr_t)arg;
    job batch[32];
    for (;;) {
        /* Up to 32 jobs; return once at least 1 is here (no linger), wait forever for it. */
        int n = swarm_chan_recv_batch(jobs, batch, 32, 1, 0, SWARM_WAIT_FOREVER, NULL);
        if (n == SWARM_ECLOSED)
            break; /* closed and drained */
        if (n < 0) {
            fprintf(stderr, "recv: %s\n", swarm_strerror(n));
            break;
        }
        for (int i = 0; i < n; i++)
            checksum[id] += (uint64_t)batch[i].producer * per_producer + batch[i].seq;
        received[id] += (uint64_t)n;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        per_producer = (uint32_t)strtoul(argv[1], NULL, 10);
    printf("libswarm %s: %d producers -> channel(capacity 64) -> %d consumers, %u jobs each\n",
           swarm_version_string(), PRODUCERS, CONSUMERS, per_producer);

    swarm_chan_opts o;
    swarm_chan_opts_init(&o);
    o.capacity = 64;
    o.elem_size = sizeof(job);
    int rc = swarm_chan_create(&jobs, &o);
    if (rc != 0) {
        fprintf(stderr, "create: %s\n", swarm_strerror(rc));
        return 1;
    }

    int64_t t0 = swarm_now_ns();
    pthread_t p[PRODUCERS], c[CONSUMERS];
    for (size_t i = 0; i < CONSUMERS; i++)
        pthread_create(&c[i], NULL, consumer, (void *)(uintptr_t)i);
    for (size_t i = 0; i < PRODUCERS; i++)
        pthread_create(&p[i], NULL, producer, (void *)(uintptr_t)i);
    for (size_t i = 0; i < PRODUCERS; i++)
        pthread_join(p[i], NULL);
    swarm_chan_close(jobs); /* consumers drain what is left, then see SWARM_ECLOSED */
    for (size_t i = 0; i < CONSUMERS; i++)
        pthread_join(c[i], NULL);
    double secs = (double)(swarm_now_ns() - t0) / 1e9;

    swarm_chan_stats s = {.size = sizeof s};
    swarm_chan_get_stats(jobs, &s);
    uint64_t total = 0, sum = 0, n = (uint64_t)PRODUCERS * per_producer;
    for (size_t i = 0; i < CONSUMERS; i++) {
        total += received[i];
        sum += checksum[i];
        printf("  consumer %zu took %" PRIu64 " jobs\n", i, received[i]);
    }
    printf("sent %" PRIu64 ", received %" PRIu64 ", dropped %" PRIu64 ", high watermark %" PRIu64
           "/%" PRIu64 "\n",
           s.sent, s.received, s.dropped, s.high_watermark, s.capacity);
    printf("senders blocked %.1f ms in total (backpressure), receivers idle %.1f ms\n",
           (double)s.send_blocked_ns / 1e6, (double)s.recv_blocked_ns / 1e6);
    printf("%.2f M jobs/s\n", (double)n / secs / 1e6);
    swarm_chan_destroy(jobs);

    uint64_t want = n * (n - 1) / 2;
    if (total != n || sum != want || s.sent != n || s.received != n) {
        printf("FAIL: lost or duplicated jobs\n");
        return 1;
    }
    printf("OK: every job received exactly once\n");
    return 0;
}
