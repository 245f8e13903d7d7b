/* SPDX-License-Identifier: MIT */
/*
 * Platform layer: everything the modules need from the operating system, in one place (nng's
 * platform split). Park/wake on a 32-bit word (a futex on Linux, a hashed mutex+condvar table
 * elsewhere), the monotonic clock and its conversions, threads, mutexes, condition variables that
 * wait on the monotonic clock, a CPU relax hint for spin loops, and atomic maximum. Only this
 * header and platform.c name pthreads; a port to another thread library changes these two files.
 *
 * Errors: the wrappers return 0 or a negative swarm_err (thread creation SWARM_EINTERNAL or
 * SWARM_ENOMEM, timed waits SWARM_ETIMEDOUT); lock and unlock of a valid mutex cannot fail.
 */
#ifndef SWARM_PLATFORM_H
#define SWARM_PLATFORM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

/* Blocks while *addr == expected, until a wake on addr, a spurious wake-up, or the absolute
 * monotonic deadline (INT64_MAX: none). Returns 0 after a wake-up or a value mismatch,
 * SWARM_ETIMEDOUT once the deadline has passed. */
int swarm__park(_Atomic uint32_t *addr, uint32_t expected, int64_t deadline_ns);

/* Wakes up to n threads parked on addr (n = INT32_MAX for all). */
void swarm__unpark(_Atomic uint32_t *addr, int n);

int64_t swarm__clock_ns(void);

static inline void swarm__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

void swarm__yield(void);

/* An absolute or relative time in ns as a timespec (negative values clamp to 0). */
static inline struct timespec swarm__ns_to_timespec(int64_t ns)
{
    if (ns < 0)
        ns = 0;
    struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    return ts;
}

/* ---- mutexes and condition variables --------------------------------------------------------- */

typedef pthread_mutex_t swarm__mutex;
typedef pthread_cond_t swarm__cond;

int swarm__mutex_init(swarm__mutex *m);
static inline void swarm__mutex_destroy(swarm__mutex *m)
{
    pthread_mutex_destroy(m);
}
static inline void swarm__mutex_lock(swarm__mutex *m)
{
    pthread_mutex_lock(m);
}
static inline void swarm__mutex_unlock(swarm__mutex *m)
{
    pthread_mutex_unlock(m);
}
/* Takes the mutex if it is free: 1 taken, 0 held elsewhere. */
static inline int swarm__mutex_trylock(swarm__mutex *m)
{
    return pthread_mutex_trylock(m) == 0;
}

/* A condition variable whose timed waits use the monotonic clock (swarm__clock_ns()). */
int swarm__cond_init(swarm__cond *c);
static inline void swarm__cond_destroy(swarm__cond *c)
{
    pthread_cond_destroy(c);
}
static inline void swarm__cond_wait(swarm__cond *c, swarm__mutex *m)
{
    pthread_cond_wait(c, m);
}
/* Waits until signalled or the absolute monotonic deadline (INT64_MAX: none); returns 0 or
 * SWARM_ETIMEDOUT. Spurious wake-ups happen: callers loop on their predicate. */
int swarm__cond_wait_until(swarm__cond *c, swarm__mutex *m, int64_t deadline_ns);
static inline void swarm__cond_signal(swarm__cond *c)
{
    pthread_cond_signal(c);
}
static inline void swarm__cond_broadcast(swarm__cond *c)
{
    pthread_cond_broadcast(c);
}

/* ---- threads --------------------------------------------------------------------------------- */

typedef pthread_t swarm__thread;

/* Starts fn(arg) on a new thread, wrapped in the thread hooks installed now (common.h; role is
 * the static string they receive); SWARM_EINTERNAL (or SWARM_ENOMEM) if it could not start. */
int swarm__thread_create(swarm__thread *t, const char *role, void *(*fn)(void *), void *arg);
/* The process-wide thread hooks (common.h): a copy in, a copy out, under a fork-safe lock. */
struct swarm_thread_hooks;
void swarm__thread_hooks_store(const struct swarm_thread_hooks *h);
void swarm__thread_hooks_load(struct swarm_thread_hooks *out);
static inline void swarm__thread_join(swarm__thread t)
{
    pthread_join(t, NULL);
}
static inline int swarm__thread_is_self(swarm__thread t)
{
    return pthread_equal(t, pthread_self());
}

/* ---- atomic maximum -------------------------------------------------------------------------- */

/* Raises *a to v if v is larger (relaxed: a statistic, read on its own). */
static inline void swarm__atomic_max_u32(_Atomic uint32_t *a, uint32_t v)
{
    uint32_t seen = atomic_load_explicit(a, memory_order_relaxed);
    while (v > seen && !atomic_compare_exchange_weak_explicit(a, &seen, v, memory_order_relaxed,
                                                              memory_order_relaxed)) {
    }
}

static inline void swarm__atomic_max_u64(_Atomic uint64_t *a, uint64_t v)
{
    uint64_t seen = atomic_load_explicit(a, memory_order_relaxed);
    while (v > seen && !atomic_compare_exchange_weak_explicit(a, &seen, v, memory_order_relaxed,
                                                              memory_order_relaxed)) {
    }
}

#endif /* SWARM_PLATFORM_H */
