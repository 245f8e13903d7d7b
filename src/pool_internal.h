/* SPDX-License-Identifier: MIT */
/* Pool internals the autoscaler (src/autoscale.c) reads. */
#ifndef SWARM_POOL_INTERNAL_H
#define SWARM_POOL_INTERNAL_H

#include <stdbool.h>

#include "swarm/pool.h"

/* What a scaling policy needs from a pool, read in one pass under the pool's state mutex. */
typedef struct swarm__pool_obs {
    uint32_t target;   /* workers asked for */
    uint32_t ready;    /* live, warmed up, not retiring */
    uint32_t starting; /* live, warming up, not retiring */
    uint32_t max_workers;
    uint32_t concurrency; /* tasks one worker runs at once (the batch size) */
    uint64_t queued;      /* in the input channel */
    uint64_t in_flight;   /* taken and not yet delivered (retiring workers' included) */
    uint64_t completions; /* completed + failed */
    int64_t service_sum_ns;
    swarm_chan *input;
} swarm__pool_obs;

/* 0, or SWARM_ESTATE in a forked child. */
int swarm__pool_observe(swarm_pool *p, swarm__pool_obs *o);
uint64_t swarm__pool_fork_gen(const swarm_pool *p);
/* Whether the calling thread is one of @p's workers. */
bool swarm__pool_on_worker(const swarm_pool *p);

#endif /* SWARM_POOL_INTERNAL_H */
