/* SPDX-License-Identifier: MIT */
#include "platform.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <time.h>

#include "swarm/common.h"

int64_t swarm__clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void swarm__yield(void)
{
    sched_yield();
}

#if defined(__linux__) && !defined(SWARM_NO_FUTEX)

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

int swarm__park(_Atomic uint32_t *addr, uint32_t expected, int64_t deadline_ns)
{
    struct timespec ts, *tsp = NULL;
    if (deadline_ns != INT64_MAX) {
        /* FUTEX_WAIT takes a relative CLOCK_MONOTONIC timeout. */
        int64_t left = deadline_ns - swarm__clock_ns();
        if (left <= 0)
            return SWARM_ETIMEDOUT;
        ts.tv_sec = (time_t)(left / 1000000000);
        ts.tv_nsec = (long)(left % 1000000000);
        tsp = &ts;
    }
    long r = syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, expected, tsp, NULL, 0);
    if (r != 0 && errno == ETIMEDOUT)
        return SWARM_ETIMEDOUT;
    return 0; /* woken, EAGAIN (value changed) or EINTR: the caller re-checks either way */
}

void swarm__unpark(_Atomic uint32_t *addr, int n)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

#else /* portable fallback: a fixed table of mutex+condvar buckets hashed by address */

#include <pthread.h>

#define PARK_BUCKETS 64

static struct park_bucket {
    pthread_mutex_t lock;
    pthread_cond_t cond;
} park_table[PARK_BUCKETS];
static pthread_once_t park_once = PTHREAD_ONCE_INIT;

static void park_init(void)
{
    for (int i = 0; i < PARK_BUCKETS; i++) {
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_mutex_init(&park_table[i].lock, NULL);
        pthread_cond_init(&park_table[i].cond, &attr);
        pthread_condattr_destroy(&attr);
    }
}

static struct park_bucket *bucket_of(const void *addr)
{
    pthread_once(&park_once, park_init);
    uintptr_t h = (uintptr_t)addr;
    h ^= h >> 17;
    h *= 0x9E3779B97F4A7C15u;
    return &park_table[(h >> 58) % PARK_BUCKETS];
}

int swarm__park(_Atomic uint32_t *addr, uint32_t expected, int64_t deadline_ns)
{
    struct park_bucket *b = bucket_of(addr);
    int rc = 0;
    pthread_mutex_lock(&b->lock);
    /* The waker changes *addr before taking the bucket lock, so checking under the lock cannot
     * miss a wake-up. */
    if (atomic_load_explicit(addr, memory_order_acquire) == expected) {
        if (deadline_ns == INT64_MAX) {
            pthread_cond_wait(&b->cond, &b->lock);
        } else {
            struct timespec ts = {(time_t)(deadline_ns / 1000000000),
                                  (long)(deadline_ns % 1000000000)};
            if (pthread_cond_timedwait(&b->cond, &b->lock, &ts) == ETIMEDOUT)
                rc = SWARM_ETIMEDOUT;
        }
    }
    pthread_mutex_unlock(&b->lock);
    return rc;
}

void swarm__unpark(_Atomic uint32_t *addr, int n)
{
    (void)n; /* buckets are shared between addresses: wake everyone, waiters re-check */
    struct park_bucket *b = bucket_of(addr);
    pthread_mutex_lock(&b->lock);
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

#endif
