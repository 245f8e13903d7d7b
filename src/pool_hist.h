/* SPDX-License-Identifier: MIT */
/*
 * A fixed-memory log-linear latency histogram (HdrHistogram's idea at one precision): values
 * below 16 get their own bucket, larger ones fall into 16 sub-buckets per power of two, so a
 * reported percentile is within about 3 % of the true value (bucket midpoint) for any value from
 * 1 ns to 2^63 ns, in 8 KiB and with one relaxed add per sample.
 *
 * One writer per histogram (each pool worker owns its own), any number of readers: counts are
 * atomics so that a concurrent snapshot reads torn-free values; readers merge histograms into a
 * plain array and take percentiles from that.
 */
#ifndef SWARM_POOL_HIST_H
#define SWARM_POOL_HIST_H

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#define SWARM__HIST_SUB_BITS 4
#define SWARM__HIST_SUB      (1u << SWARM__HIST_SUB_BITS)
#define SWARM__HIST_BUCKETS  (64u * SWARM__HIST_SUB)

typedef struct swarm__hist {
    _Atomic uint64_t bucket[SWARM__HIST_BUCKETS];
    _Atomic int64_t max;
    _Atomic int64_t sum; /* saturating sum of the samples, ns (Prometheus _sum) */
} swarm__hist;

static inline uint32_t swarm__hist_index(int64_t v)
{
    if (v < (int64_t)SWARM__HIST_SUB)
        return v < 0 ? 0u : (uint32_t)v;
    uint64_t u = (uint64_t)v;
    uint32_t msb = 63u - (uint32_t)__builtin_clzll(u);
    uint32_t shift = msb - SWARM__HIST_SUB_BITS;
    uint32_t sub = (uint32_t)(u >> shift) & (SWARM__HIST_SUB - 1u);
    return (msb - SWARM__HIST_SUB_BITS + 1u) * SWARM__HIST_SUB + sub;
}

/* The midpoint of a bucket: the value a percentile falling into it reports. */
static inline int64_t swarm__hist_value(uint32_t idx)
{
    if (idx < SWARM__HIST_SUB)
        return (int64_t)idx;
    uint32_t msb = idx / SWARM__HIST_SUB + SWARM__HIST_SUB_BITS - 1u;
    uint32_t sub = idx % SWARM__HIST_SUB;
    uint32_t shift = msb - SWARM__HIST_SUB_BITS;
    uint64_t low = ((uint64_t)(SWARM__HIST_SUB + sub)) << shift;
    uint64_t mid = low + (((uint64_t)1 << shift) >> 1);
    return mid > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)mid;
}

/* Single writer: a load and a store instead of a read-modify-write keeps the hot path free of
 * locked instructions; readers only need each counter untorn, which relaxed atomics give. */
/* Adds a sample of weight @w (>= 1): a sampled recorder that times one call in w adds each
 * sample with weight w, so counts, sum and percentiles estimate the whole population without
 * bias (every call had the same 1/w chance of being timed). */
static inline void swarm__hist_add_w(swarm__hist *h, int64_t v, uint32_t w)
{
    _Atomic uint64_t *b = &h->bucket[swarm__hist_index(v)];
    atomic_store_explicit(b, atomic_load_explicit(b, memory_order_relaxed) + w,
                          memory_order_relaxed);
    int64_t sum = atomic_load_explicit(&h->sum, memory_order_relaxed);
    int64_t add = v < 0 ? 0 : v;
    if (w > 1)
        add = add > INT64_MAX / (int64_t)w ? INT64_MAX : add * (int64_t)w;
    atomic_store_explicit(&h->sum, sum > INT64_MAX - add ? INT64_MAX : sum + add,
                          memory_order_relaxed);
    if (v > atomic_load_explicit(&h->max, memory_order_relaxed))
        atomic_store_explicit(&h->max, v, memory_order_relaxed);
}

static inline void swarm__hist_add(swarm__hist *h, int64_t v)
{
    swarm__hist_add_w(h, v, 1);
}

/* Adds @h into the plain array @acc; returns h's max. */
static inline int64_t swarm__hist_merge(uint64_t *acc, const swarm__hist *h)
{
    for (uint32_t i = 0; i < SWARM__HIST_BUCKETS; i++)
        acc[i] += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
    return atomic_load_explicit(&h->max, memory_order_relaxed);
}

/* The upper edge of a bucket (inclusive): every sample counted in it is <= this value. */
static inline int64_t swarm__hist_upper(uint32_t idx)
{
    if (idx < SWARM__HIST_SUB)
        return (int64_t)idx;
    uint32_t msb = idx / SWARM__HIST_SUB + SWARM__HIST_SUB_BITS - 1u;
    uint32_t sub = idx % SWARM__HIST_SUB;
    uint32_t shift = msb - SWARM__HIST_SUB_BITS;
    uint64_t low = ((uint64_t)(SWARM__HIST_SUB + sub)) << shift;
    uint64_t high = low + (((uint64_t)1 << shift) - 1u);
    return high > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)high;
}

/* The @q-quantile (0 < q <= 1) of a merged array: 0 when empty. */
static inline int64_t swarm__hist_quantile(const uint64_t *acc, double q)
{
    uint64_t total = 0;
    for (uint32_t i = 0; i < SWARM__HIST_BUCKETS; i++)
        total += acc[i];
    if (total == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)total + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > total)
        rank = total;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < SWARM__HIST_BUCKETS; i++) {
        seen += acc[i];
        if (seen >= rank)
            return swarm__hist_value(i);
    }
    return swarm__hist_value(SWARM__HIST_BUCKETS - 1u);
}

#endif /* SWARM_POOL_HIST_H */
