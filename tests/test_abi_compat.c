/* SPDX-License-Identifier: MIT */
/*
 * Binary compatibility with 0.1 (src/compat.c): a program linked against 0.1 resolves
 * swarm_{policy,reconcile,pool}_opts_init@LIBSWARM_0.1, whose structs were smaller. Loads the
 * shared library given as argv[1] and calls both versions of each through dlvsym(): the 0.1
 * version must write exactly the 0.1 size (a canary right behind it stays intact) and report that
 * size, the 0.2 version the whole struct; and the library must accept the 0.1-sized opts.
 * Before the versioning, the one definition wrote the 0.2 size over the canary.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include <swarm/swarm.h>

#include "opts_v1.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "abi_compat: %s:%d: %s\n", __FILE__, __LINE__, #c);                    \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

typedef int (*init_fn)(void *);

static int one(void *lib, const char *name, size_t v1, size_t v2)
{
    init_fn old = (init_fn)(uintptr_t)dlvsym(lib, name, "LIBSWARM_0.1");
    init_fn cur = (init_fn)(uintptr_t)dlvsym(lib, name, "LIBSWARM_0.2");
    init_fn dflt = (init_fn)(uintptr_t)dlsym(lib, name);
    CHECK(old != NULL && cur != NULL && old != cur);
    CHECK(dflt == cur); /* what a program linked today records */
    unsigned char buf[1024];
    memset(buf, 0xA5, sizeof buf);
    CHECK(old(buf) == 0);
    uint32_t size;
    memcpy(&size, buf, sizeof size);
    CHECK(size == v1);
    for (size_t i = v1; i < sizeof buf; i++)
        CHECK(buf[i] == 0xA5); /* nothing written past the 0.1 struct */
    memset(buf, 0xA5, sizeof buf);
    CHECK(cur(buf) == 0);
    memcpy(&size, buf, sizeof size);
    CHECK(size == v2);
    CHECK(buf[v2] == 0xA5);
    CHECK(old(NULL) == SWARM_EINVAL);
    printf("abi_compat: %s: 0.1 writes %zu bytes, 0.2 writes %zu\n", name, v1, v2);
    return 0;
}

int main(int argc, char **argv)
{
    CHECK(argc == 2);
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "abi_compat: %s\n", dlerror());
        return 1;
    }
    int bad = 0;
    /* The 0.1 sizes: the library's one table of first-release layouts (src/opts_v1.h). */
    bad |= one(lib, "swarm_policy_opts_init", SWARM__OPTS_V1_SIZE(policy_opts),
               sizeof(swarm_policy_opts));
    bad |= one(lib, "swarm_reconcile_opts_init", SWARM__OPTS_V1_SIZE(reconcile_opts),
               sizeof(swarm_reconcile_opts));
    bad |=
        one(lib, "swarm_pool_opts_init", SWARM__OPTS_V1_SIZE(pool_opts), sizeof(swarm_pool_opts));
    /* A 0.1-sized policy opts is accepted and means the defaults for the appended fields. */
    typedef int (*create_fn)(swarm_policy **, const swarm_policy_opts *);
    typedef void (*destroy_fn)(swarm_policy *);
    init_fn old = (init_fn)(uintptr_t)dlvsym(lib, "swarm_policy_opts_init", "LIBSWARM_0.1");
    create_fn create = (create_fn)(uintptr_t)dlsym(lib, "swarm_policy_create");
    destroy_fn destroy = (destroy_fn)(uintptr_t)dlsym(lib, "swarm_policy_destroy");
    CHECK(old && create && destroy);
    swarm_policy_opts o;
    memset(&o, 0, sizeof o);
    CHECK(old(&o) == 0);
    o.mode = SWARM_POLICY_KEDA;
    swarm_policy *p = NULL;
    CHECK(create(&p, &o) == 0);
    destroy(p);
    dlclose(lib);
    return bad;
}
