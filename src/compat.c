/* SPDX-License-Identifier: MIT */
/*
 * Binary compatibility with programs built against 0.1 (symbol versioning, as glibc does it).
 *
 * Three option structs grew in 0.2 (fields appended to swarm_policy_opts, swarm_reconcile_opts
 * and swarm_pool_opts). Every function that reads them honours the caller's size field, but
 * *_opts_init() fills the whole struct, and a program compiled against 0.1 passes a smaller one.
 * So each of the three names has two definitions in the shared library: the 0.2 one is the
 * default version (swarm_pool_opts_init@@LIBSWARM_0.2, what programs linked now record), and a
 * program linked against 0.1, which recorded swarm_pool_opts_init@LIBSWARM_0.1, gets the one
 * below that writes only the 0.1 bytes and sets size to the 0.1 size; the library then reads
 * the appended fields as their defaults.
 *
 * Not covered: swarm_task and swarm_pool_result grew too (request parameters, owned outputs), and
 * the pool requires channels of their current element sizes, so a 0.1 binary that creates a pool
 * gets SWARM_EINVAL from swarm_pool_create() (a clean error, never a misread element) and must be
 * recompiled. Its other calls keep working.
 */
#include <stddef.h>
#include <string.h>

#include "internal.h"
#include "opts_v1.h"
#include "swarm/policy.h"
#include "swarm/pool.h"
#include "swarm/reconcile.h"

/* The 0.1 sizes come from the one table of first-release layouts (src/opts_v1.h), the same
 * minimum every *_create() enforces: x86-64 has 384, 112 and 104 bytes. */
#define POLICY_OPTS_V1    SWARM__OPTS_V1_SIZE(policy_opts)
#define RECONCILE_OPTS_V1 SWARM__OPTS_V1_SIZE(reconcile_opts)
#define POOL_OPTS_V1      SWARM__OPTS_V1_SIZE(pool_opts)

#define COMPAT_INIT(type, name, v1_size)                                                           \
    SWARM_API int name##_v02(type *opts);                                                          \
    SWARM_API int name##_v02(type *opts)                                                           \
    {                                                                                              \
        return swarm__##name(opts);                                                                \
    }                                                                                              \
    SWARM_API int name##_v01(type *opts);                                                          \
    SWARM_API int name##_v01(type *opts)                                                           \
    {                                                                                              \
        if (opts == NULL)                                                                          \
            return SWARM_EINVAL;                                                                   \
        type full;                                                                                 \
        int rc = swarm__##name(&full);                                                             \
        if (rc != 0)                                                                               \
            return rc;                                                                             \
        full.size = (uint32_t)(v1_size);                                                           \
        memcpy(opts, &full, (v1_size));                                                            \
        return 0;                                                                                  \
    }

COMPAT_INIT(swarm_policy_opts, policy_opts_init, POLICY_OPTS_V1)
COMPAT_INIT(swarm_reconcile_opts, reconcile_opts_init, RECONCILE_OPTS_V1)
COMPAT_INIT(swarm_pool_opts, pool_opts_init, POOL_OPTS_V1)

__asm__(".symver policy_opts_init_v02, swarm_policy_opts_init@@LIBSWARM_0.2");
__asm__(".symver policy_opts_init_v01, swarm_policy_opts_init@LIBSWARM_0.1");
__asm__(".symver reconcile_opts_init_v02, swarm_reconcile_opts_init@@LIBSWARM_0.2");
__asm__(".symver reconcile_opts_init_v01, swarm_reconcile_opts_init@LIBSWARM_0.1");
__asm__(".symver pool_opts_init_v02, swarm_pool_opts_init@@LIBSWARM_0.2");
__asm__(".symver pool_opts_init_v01, swarm_pool_opts_init@LIBSWARM_0.1");
