/* SPDX-License-Identifier: MIT */
/* Private engine plumbing shared by src/engine*.c: the handle, nested calls, response marks,
 * clock/sleep defaults and the jitter PRNG. */
#ifndef SWARM_ENGINE_INTERNAL_H
#define SWARM_ENGINE_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>

#include "internal.h"
#include "swarm/engine.h"

/* Which constructor made a handle; typed getters (breaker state, stats) check it. */
enum {
    SWARM__ENGINE_USER = 0,
    SWARM__ENGINE_TIMEOUT,
    SWARM__ENGINE_RETRY,
    SWARM__ENGINE_BREAKER,
    SWARM__ENGINE_FALLBACK,
    SWARM__ENGINE_SPLIT,
    SWARM__ENGINE_BATCHER,
    SWARM__ENGINE_MOCK
};

#define SWARM__NAME_MAX 128

struct swarm_engine {
    swarm_engine_ops ops; /* copy of the caller's slots; slots beyond its version stay NULL */
    void *self;
    _Atomic uint32_t refs; /* acq_rel decrement pairs with itself so the last owner sees all
                            * writes of the others before destroying */
    uint32_t kind;
    uint32_t is_decorator; /* leaf calls count as attempts; decorator calls do not */
    swarm_allocator alloc;
    char name[SWARM__NAME_MAX];
};

/* Response lifecycle. */
enum { SWARM__RESP_FRESH = 0, SWARM__RESP_RUNNING = 1, SWARM__RESP_COMPLETE = 2 };

#define SWARM__MSG_MAX 256

struct swarm_response {
    char *buf; /* cap + 1 bytes, NUL after len */
    size_t len, cap, max;
    uint32_t state;
    uint32_t attempts;
    int32_t status;   /* final status, valid once COMPLETE */
    int32_t err_code; /* running status: 0 or the last error recorded */
    int64_t retry_after_ns;
    uint64_t req_id;
    uint64_t n_chunks, n_streamed;
    uint64_t in_units, out_units;
    int64_t start_ns, first_out_ns, end_ns;
    swarm_response_stream_fn stream_fn;
    void *stream_ctx;
    swarm_response_complete_fn complete_fn;
    void *complete_ctx;
    swarm_allocator alloc;
    char msg[SWARM__MSG_MAX];
};

/* Wraps ops+self into a handle of the given kind (the ops are trusted: no version check). */
int swarm__engine_wrap(swarm_engine **out, const swarm_engine_ops *ops, void *self, uint32_t kind,
                       const swarm_allocator *alloc, const char *name);

/* Nested calls: run an engine on a response that is already RUNNING (no completion). After
 * return, resp->err_code equals the returned status (0 or negative). */
int swarm__engine_call(swarm_engine *e, const swarm_request *req, swarm_response *resp);
/* Nested batch: afterwards each resps[i]->err_code is that request's status. Returns the
 * whole-batch code (0 or negative). */
int swarm__engine_call_batch(swarm_engine *e, const swarm_request *const *reqs,
                             swarm_response *const *resps, size_t n);

/* A point in a response to roll back to before a retry or fallback. */
typedef struct swarm__resp_mark {
    size_t len;
    uint64_t n_chunks, n_streamed;
} swarm__resp_mark;

static inline swarm__resp_mark swarm__resp_mark_get(const swarm_response *r)
{
    swarm__resp_mark m = {r->len, r->n_chunks, r->n_streamed};
    return m;
}

static inline bool swarm__resp_streamed_since(const swarm_response *r, swarm__resp_mark m)
{
    return r->n_streamed > m.n_streamed;
}

/* Discards output written after @m and clears the recorded error and usage. */
void swarm__resp_rollback(swarm_response *r, swarm__resp_mark m);

/* Sets the running error (message optional) without state checks. */
void swarm__resp_fail(swarm_response *r, int code, const char *msg, int64_t retry_after_ns);

/* Default clock and cancel-aware sleep. */
int64_t swarm__engine_clock(void *ctx);
int swarm__engine_sleep(void *ctx, int64_t ns, swarm_cancel *cancel);

/* Deadline normalisation: 0 and INT64_MAX both mean none. */
static inline bool swarm__has_deadline(int64_t d)
{
    return d != 0 && d != INT64_MAX;
}

/* splitmix64: a lock-free shared PRNG whose sequence is fixed by the seed (draws from several
 * threads interleave, each draw stays a good random number). */
static inline uint64_t swarm__mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t swarm__rng_next(_Atomic uint64_t *state)
{
    /* Relaxed: the counter only has to hand out distinct values; nothing is published. */
    uint64_t s = atomic_fetch_add_explicit(state, 0x9E3779B97F4A7C15ull, memory_order_relaxed);
    return swarm__mix64(s + 0x9E3779B97F4A7C15ull);
}

static inline double swarm__rng_unit(_Atomic uint64_t *state)
{
    return (double)(swarm__rng_next(state) >> 11) * 0x1.0p-53;
}

#define SWARM__DEFAULT_SEED 0x5EED5EED5EED5EEDull

/*
 * Batch scratch. A decorator's batch path needs per-call arrays (request copies, sub-batch
 * pointers, marks, permits) for up to SWARM__BATCH_CHUNK requests at a time. On the stack they
 * cost ~30 KB per layer, so deep or mixed stacks overflowed thread stacks (issue 14, item 10).
 * Each decorator instead owns a pool of heap blocks: one allocated at create, more only when
 * more batch calls run through that decorator at once than ever before (kept for reuse, up to
 * SWARM__SCRATCH_SLOTS idle blocks), so the steady state allocates nothing. If an allocation
 * fails the call falls back to chunks of SWARM__BATCH_SMALL on the stack (a few hundred bytes),
 * so a batch never fails for want of scratch and stack use per layer stays small and bounded.
 */
#define SWARM__BATCH_CHUNK   256
#define SWARM__BATCH_SMALL   8
#define SWARM__SCRATCH_SLOTS 64

typedef struct swarm__scratch_pool {
    _Atomic(void *) slots[SWARM__SCRATCH_SLOTS]; /* idle blocks; NULL: empty slot */
    size_t size;                                 /* bytes per block */
    swarm_allocator alloc;
} swarm__scratch_pool;

/* Prepares the pool and allocates its first block. Returns 0 or SWARM_ENOMEM (nothing held). */
int swarm__scratch_init(swarm__scratch_pool *p, const swarm_allocator *a, size_t size);
/* An idle block, or a new one; NULL if allocation failed. Any thread. */
void *swarm__scratch_get(swarm__scratch_pool *p);
/* Gives a block back (freed if every slot is taken). Any thread. */
void swarm__scratch_put(swarm__scratch_pool *p, void *block);
/* Frees the idle blocks; no call may be using the pool. */
void swarm__scratch_fini(swarm__scratch_pool *p);

/* Appends src to dst (SWARM__NAME_MAX bytes) at *off, truncating. */
void swarm__name_cat(char *dst, size_t *off, const char *src);
/* Builds "prefix(inner)" or "prefix(inner,inner2)" into dst (truncated). */
void swarm__engine_name2(char *dst, const char *prefix, const swarm_engine *inner,
                         const swarm_engine *inner2);

#endif /* SWARM_ENGINE_INTERNAL_H */
