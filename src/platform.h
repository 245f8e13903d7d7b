/* SPDX-License-Identifier: MIT */
/*
 * Platform layer: park/wake on a 32-bit word (a futex on Linux, a hashed mutex+condvar table
 * elsewhere), the monotonic clock, and a CPU relax hint for spin loops.
 */
#ifndef SWARM_PLATFORM_H
#define SWARM_PLATFORM_H

#include <stdatomic.h>
#include <stdint.h>

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

#endif /* SWARM_PLATFORM_H */
