/* SPDX-License-Identifier: MIT */
#include "platform.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>

#include "swarm/common.h"
#include "internal.h"

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

/* ---- fork generation (the fork contract in common.h) ---------------------------------------- */

/* Bumped in every child by the atfork handler. Relaxed is enough: the child runs the handler on
 * its only thread before fork() returns there, and objects compare it on that thread. */
static _Atomic uint64_t fork_gen;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

/* The thread hooks (common.h) and their lock. The lock is held only to copy four words, and
 * across fork() (prepare/parent/child handlers), so a child never inherits it locked. */
static pthread_mutex_t hooks_lock = PTHREAD_MUTEX_INITIALIZER;
static swarm_thread_hooks hooks;

static void fork_child(void)
{
    atomic_fetch_add_explicit(&fork_gen, 1, memory_order_relaxed);
    pthread_mutex_unlock(&hooks_lock); /* taken by fork_prepare in the parent's forking thread */
}

static void fork_prepare(void)
{
    pthread_mutex_lock(&hooks_lock);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&hooks_lock);
}

static void fork_register(void)
{
    (void)pthread_atfork(fork_prepare, fork_parent, fork_child);
}

uint64_t swarm__fork_watch(void)
{
    (void)pthread_once(&fork_once, fork_register);
    return atomic_load_explicit(&fork_gen, memory_order_relaxed);
}

uint64_t swarm__fork_gen(void)
{
    return atomic_load_explicit(&fork_gen, memory_order_relaxed);
}

int swarm__mutex_init(swarm__mutex *m)
{
    return pthread_mutex_init(m, NULL) == 0 ? 0 : SWARM_ENOMEM;
}

int swarm__cond_init(swarm__cond *c)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        return SWARM_ENOMEM;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(c, &attr);
    pthread_condattr_destroy(&attr);
    return rc == 0 ? 0 : SWARM_ENOMEM;
}

int swarm__cond_wait_until(swarm__cond *c, swarm__mutex *m, int64_t deadline_ns)
{
    if (deadline_ns == INT64_MAX) {
        pthread_cond_wait(c, m);
        return 0;
    }
    struct timespec ts = swarm__ns_to_timespec(deadline_ns);
    return pthread_cond_timedwait(c, m, &ts) == ETIMEDOUT ? SWARM_ETIMEDOUT : 0;
}

/* ---- threads and their hooks ----------------------------------------------------------------- */

void swarm__thread_hooks_store(const swarm_thread_hooks *h)
{
    (void)pthread_once(&fork_once, fork_register);
    pthread_mutex_lock(&hooks_lock);
    hooks = *h;
    pthread_mutex_unlock(&hooks_lock);
}

void swarm__thread_hooks_load(swarm_thread_hooks *out)
{
    (void)pthread_once(&fork_once, fork_register);
    pthread_mutex_lock(&hooks_lock);
    *out = hooks;
    pthread_mutex_unlock(&hooks_lock);
}

/* What a hooked thread starts with: its function and the hooks in force when it was created. */
struct thread_start {
    void *(*fn)(void *);
    void *arg;
    const char *role;
    swarm_thread_hooks hooks;
};

static void *thread_main(void *p)
{
    struct thread_start st = *(struct thread_start *)p;
    free(p);
    if (st.hooks.start != NULL)
        st.hooks.start(st.hooks.user, st.role);
    void *ret = st.fn(st.arg);
    if (st.hooks.stop != NULL)
        st.hooks.stop(st.hooks.user, st.role);
    return ret;
}

int swarm__thread_create(swarm__thread *t, const char *role, void *(*fn)(void *), void *arg)
{
    swarm_thread_hooks h;
    swarm__thread_hooks_load(&h);
    int rc;
    if (h.start == NULL && h.stop == NULL) {
        rc = pthread_create(t, NULL, fn, arg);
    } else {
        struct thread_start *st = malloc(sizeof *st);
        if (st == NULL)
            return SWARM_ENOMEM;
        *st = (struct thread_start){.fn = fn, .arg = arg, .role = role, .hooks = h};
        rc = pthread_create(t, NULL, thread_main, st);
        if (rc != 0)
            free(st);
    }
    return rc == 0 ? 0 : (rc == ENOMEM ? SWARM_ENOMEM : SWARM_EINTERNAL);
}

#if defined(__linux__) && !defined(SWARM_NO_FUTEX)

#    include <linux/futex.h>
#    include <sys/syscall.h>
#    include <unistd.h>

int swarm__park(_Atomic uint32_t *addr, uint32_t expected, int64_t deadline_ns)
{
    struct timespec ts, *tsp = NULL;
    if (deadline_ns != INT64_MAX) {
        /* FUTEX_WAIT takes a relative CLOCK_MONOTONIC timeout. */
        int64_t now = swarm__clock_ns();
        if (deadline_ns <= now)
            return SWARM_ETIMEDOUT;
        ts = swarm__ns_to_timespec(deadline_ns - now);
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

#    define PARK_BUCKETS 64

static struct park_bucket {
    swarm__mutex lock;
    swarm__cond cond;
} park_table[PARK_BUCKETS];
static pthread_once_t park_once = PTHREAD_ONCE_INIT;

static void park_init(void)
{
    for (int i = 0; i < PARK_BUCKETS; i++) {
        swarm__mutex_init(&park_table[i].lock);
        swarm__cond_init(&park_table[i].cond);
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
    swarm__mutex_lock(&b->lock);
    /* The waker changes *addr before taking the bucket lock, so checking under the lock cannot
     * miss a wake-up. */
    if (atomic_load_explicit(addr, memory_order_acquire) == expected)
        rc = swarm__cond_wait_until(&b->cond, &b->lock, deadline_ns);
    swarm__mutex_unlock(&b->lock);
    return rc;
}

void swarm__unpark(_Atomic uint32_t *addr, int n)
{
    (void)n; /* buckets are shared between addresses: wake everyone, waiters re-check */
    struct park_bucket *b = bucket_of(addr);
    swarm__mutex_lock(&b->lock);
    swarm__cond_broadcast(&b->cond);
    swarm__mutex_unlock(&b->lock);
}

#endif
