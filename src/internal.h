/* SPDX-License-Identifier: MIT */
/* Private helpers shared by every module: allocation through the hooks, cancel-token watchers. */
#ifndef SWARM_INTERNAL_H
#define SWARM_INTERNAL_H

#include <stdbool.h>

#include "swarm/common.h"

#define SWARM_CACHELINE 64

#if defined(__GNUC__)
#    define SWARM_LIKELY(x)   __builtin_expect(!!(x), 1)
#    define SWARM_UNLIKELY(x) __builtin_expect(!!(x), 0)
#    define SWARM_NOINLINE    __attribute__((noinline))
#else
#    define SWARM_LIKELY(x)   (x)
#    define SWARM_UNLIKELY(x) (x)
#    define SWARM_NOINLINE
#endif

/* Validates and copies an allocator: NULL selects libc. Returns SWARM_EINVAL for a struct that
 * lacks a hook. */
int swarm__alloc_init(swarm_allocator *dst, const swarm_allocator *src);

/* Zeroed, aligned allocation through the hooks (align: power of two, at most 4096). NULL on
 * failure or on size overflow. */
void *swarm__alloc(const swarm_allocator *a, size_t size, size_t align);
void swarm__free(const swarm_allocator *a, void *p, size_t size);

/*
 * Reads the caller's options struct @src (it begins with uint32_t size) over @dst, a copy
 * already holding the defaults, and sets dst's size to @want (this library's sizeof). Callers go
 * through SWARM__OPTS_COPY (src/opts_v1.h), which supplies the struct's first-release size
 * @v1_size and where its v1 fields end, @v1_end. The rule, documented in every public header:
 *   - size < v1_size (never a real layout) or > SWARM__OPTS_MAX: SWARM_EINVAL, nothing read
 *     past size;
 *   - v1_size <= size <= want: the first size bytes are read, the rest keep their defaults
 *     (exactly v1_size: only up to v1_end, so tail padding is never read as a field);
 *   - size > want (a newer header): the extra bytes must be zero, else SWARM_EINVAL (the caller
 *     set a field this library does not know; ignoring it would be silent), as Linux's
 *     copy_struct_from_user() does.
 */
#define SWARM__OPTS_MAX 4096
int swarm__opts_copy(void *dst, size_t want, const void *src, size_t v1_size, size_t v1_end);

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

/* Takes a reference on a channel for a library object that reads it (a pool): the channel
 * outlives its creator's swarm_chan_destroy() until the object drops the reference with
 * swarm_chan_destroy() itself. */
struct swarm_chan;
void swarm__chan_retain(struct swarm_chan *ch);

/* The option initialisers whose structs grew in 0.2. Each is exported twice under its public
 * name (src/compat.c): the 0.2 default version calls these; the 0.1 version writes only the 0.1
 * size into a 0.1 caller's smaller struct. */
struct swarm_policy_opts;
struct swarm_reconcile_opts;
struct swarm_pool_opts;
int swarm__policy_opts_init(struct swarm_policy_opts *opts);
int swarm__reconcile_opts_init(struct swarm_reconcile_opts *opts);
int swarm__pool_opts_init(struct swarm_pool_opts *opts);

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

/* fork contract (common.h): swarm__fork_watch() registers the pthread_atfork child handler once
 * and returns the current fork generation, which an object records at create; before taking a
 * lock, its calls compare swarm__fork_gen() with it and return SWARM_ESTATE in a forked child. */
uint64_t swarm__fork_watch(void);
uint64_t swarm__fork_gen(void);

/* Response accessors for the pool (the response is the engine module's object): the outcome
 * and timings of a completed call, without swarm_response_get_info()'s full copy. */
typedef struct swarm__resp_outcome {
    int complete; /* 1 once the outermost engine call completed it */
    int status;   /* final status when complete */
    int64_t start_ns, end_ns;
    uint64_t len;     /* output bytes */
    const void *data; /* the output (NUL-terminated) */
} swarm__resp_outcome;
struct swarm_response;
void swarm__resp_outcome_get(const struct swarm_response *r, swarm__resp_outcome *out);
/* swarm_engine_infer() that reads the clock (start_ns, end_ns) only when @timed is nonzero. */
struct swarm_engine;
struct swarm_request;
int swarm__engine_infer_t(struct swarm_engine *e, const struct swarm_request *req,
                          struct swarm_response *resp, int timed);
/* Whether the pool may hand @e runs of tasks through infer_batch
 * (SWARM_ENGINE_F_SEQUENTIAL_BATCH with an infer_batch slot). */
int swarm__engine_runs_sequential(const struct swarm_engine *e);
/* The pool's single-task call: resets @resp (SWARM_ESTATE, untouched, if it is running), runs
 * swarm__engine_infer_t() and fills @oc, in one call. */
int swarm__engine_run1(struct swarm_engine *e, const struct swarm_request *req,
                       struct swarm_response *resp, int timed, swarm__resp_outcome *oc);

#endif /* SWARM_INTERNAL_H */
