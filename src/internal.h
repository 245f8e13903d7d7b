/* SPDX-License-Identifier: MIT */
/* Private helpers shared by every module: allocation through the hooks, cancel-token watchers. */
#ifndef SWARM_INTERNAL_H
#define SWARM_INTERNAL_H

#include <stdbool.h>

#include "swarm/common.h"

#define SWARM_CACHELINE 64

#if defined(__GNUC__)
#  define SWARM_LIKELY(x) __builtin_expect(!!(x), 1)
#  define SWARM_UNLIKELY(x) __builtin_expect(!!(x), 0)
#  define SWARM_NOINLINE __attribute__((noinline))
#else
#  define SWARM_LIKELY(x) (x)
#  define SWARM_UNLIKELY(x) (x)
#  define SWARM_NOINLINE
#endif

/* Validates and copies an allocator: NULL selects libc. Returns SWARM_EINVAL for a struct that
 * lacks a hook. */
int swarm__alloc_init(swarm_allocator *dst, const swarm_allocator *src);

/* Zeroed, aligned allocation through the hooks (align: power of two, at most 4096). NULL on
 * failure or on size overflow. */
void *swarm__alloc(const swarm_allocator *a, size_t size, size_t align);
void swarm__free(const swarm_allocator *a, void *p, size_t size);

/* Reads an options struct that begins with uint32_t size: copies min(size, want) bytes over a
 * defaulted copy. Returns SWARM_EINVAL if the caller's size cannot hold the first field set. */
int swarm__opts_copy(void *dst, size_t want, const void *src, size_t min_size);

/* The other direction, for get_stats(): copies a library-filled snapshot @src of @have bytes
 * (a struct that begins with uint32_t size) into the caller's @dst, writing only as many bytes
 * as the caller's dst->size says it holds, and sets dst->size to the count written. The caller
 * has already checked that dst->size covers the fields it must have. */
void swarm__stats_copy_out(void *dst, const void *src, size_t have);

/*
 * A watcher registered on a cancel token. The node lives on the blocked caller's stack; wake()
 * runs on the thread that fires the token, with the token's internal lock held, so it must only
 * do library-internal, non-blocking work (bump a futex word and wake it).
 */
typedef struct swarm__cancel_watch {
    struct swarm__cancel_watch *prev, *next;
    void (*wake)(void *ctx);
    void *ctx;
} swarm__cancel_watch;

/* Registers @w; returns SWARM_ECANCELED (and registers nothing) if the token already fired. */
int swarm__cancel_watch_add(swarm_cancel *c, swarm__cancel_watch *w);
/* Unregisters @w; after it returns, w->wake is not running and will not run. */
void swarm__cancel_watch_del(swarm_cancel *c, swarm__cancel_watch *w);

/* Converts a relative timeout (-1 forever, >= 0) into an absolute deadline on swarm_now_ns()'s
 * clock; INT64_MAX means none. */
int64_t swarm__deadline(int64_t timeout_ns);

/* Saturating time arithmetic: every place that adds or subtracts times or durations (ns) uses
 * these, so extreme but accepted values clamp to INT64_MIN/INT64_MAX instead of overflowing
 * (signed overflow is undefined behaviour). */
static inline int64_t swarm__time_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

static inline int64_t swarm__time_sub(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_sub_overflow(a, b, &r))
        return b < 0 ? INT64_MAX : INT64_MIN;
    return r;
}

/* Converts a double (seconds or ns) to int64 ns, saturating; NaN gives 0. */
static inline int64_t swarm__double_to_ns(double v)
{
    if (v != v)
        return 0;
    if (v >= 9.2233720368547748e18)
        return INT64_MAX;
    if (v <= -9.2233720368547758e18)
        return INT64_MIN;
    return (int64_t)v;
}

#endif /* SWARM_INTERNAL_H */
