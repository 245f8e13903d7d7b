/* SPDX-License-Identifier: MIT */
/*
 * Scaling-policy decision cost: ns per swarm_policy_decide() for each mode, with short and long
 * histories (the rings full of in-window entries, the worst case for the window scans).
 *
 * Usage: bench_policy [decisions]   (default 200000 per configuration)
 * Prints one line per configuration: mode, history, median ns/decision over 5 runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <swarm/swarm.h>

#define S INT64_C(1000000000)

typedef struct cfg {
    const char *name;
    swarm_policy_opts o;
    int64_t step_ns; /* time between decisions */
} cfg;

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double run(const cfg *c, long n)
{
    swarm_policy *p = NULL;
    if (swarm_policy_create(&p, &c->o) != 0) {
        fprintf(stderr, "create failed for %s\n", c->name);
        exit(1);
    }
    swarm_policy_obs ob;
    memset(&ob, 0, sizeof ob);
    ob.size = sizeof ob;
    ob.n_metrics = 2;
    ob.metrics[0] = (swarm_policy_metric){SWARM_METRIC_TOTAL, 0, 0, 0, 10, 0};
    ob.metrics[1] = (swarm_policy_metric){SWARM_METRIC_VALUE, 0, 0, 0, 100, 0};
    swarm_policy_decision d;
    memset(&d, 0, sizeof d);
    d.size = sizeof d;
    int32_t cur = 1;
    int64_t now = 0;
    /* Warm-up fills the histories; the measured loop then runs with full rings. */
    long warm = (long)c->o.history_cap * 2 + 4000;
    uint64_t x = 12345;
    int64_t t0 = 0;
    for (long i = 0; i < warm + n; i++) {
        if (i == warm)
            t0 = swarm_now_ns();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ob.current_replicas = ob.ready_replicas = cur;
        ob.metrics[0].value = (double)(x % 5000);
        ob.metrics[1].value = (double)(x % 300);
        now += c->step_ns;
        swarm_policy_decide(p, now, &ob, &d);
        cur = d.replicas;
    }
    int64_t t1 = swarm_now_ns();
    swarm_policy_destroy(p);
    return (double)(t1 - t0) / (double)n;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    if (n <= 0)
        n = 200000;
    cfg cfgs[8];
    int nc = 0;
    for (int mode = SWARM_POLICY_KEDA; mode <= SWARM_POLICY_KPA; mode++) {
        for (int longh = 0; longh < 2; longh++) {
            cfg *c = &cfgs[nc++];
            memset(c, 0, sizeof *c);
            swarm_policy_opts_init(&c->o);
            c->o.mode = (uint32_t)mode;
            c->o.max_replicas = 1000;
            c->o.fallback_failures = 3;
            c->o.fallback_replicas = 5;
            if (mode != SWARM_POLICY_KPA) {
                c->o.hpa_path = SWARM_POLICY_HPA_BEHAVIOR;
                /* Long: 1 h windows and periods, 4096-entry rings, one decision a second:
                 * every entry stays inside the window. Short: upstream defaults, 15 s syncs. */
                if (longh) {
                    c->o.history_cap = 4096;
                    c->o.scale_down.window_ns = 3600 * S;
                    c->o.scale_up.window_ns = 1800 * S;
                    c->o.scale_up.n_policies = 2;
                    c->o.scale_up.policies[0] = (swarm_policy_rate){SWARM_RATE_PODS, 4, 1800 * S};
                    c->o.scale_up.policies[1] =
                        (swarm_policy_rate){SWARM_RATE_PERCENT, 100, 1800 * S};
                    c->o.scale_down.n_policies = 1;
                    c->o.scale_down.policies[0] =
                        (swarm_policy_rate){SWARM_RATE_PERCENT, 10, 1800 * S};
                    c->step_ns = S;
                } else {
                    c->o.history_cap = 64;
                    c->step_ns = 15 * S;
                }
                c->name = mode == SWARM_POLICY_KEDA ? "keda" : "hpa";
            } else {
                c->name = "kpa";
                if (longh) {
                    c->o.stable_window_ns = 3600 * S; /* 3601 one-second buckets */
                    c->o.scale_down_delay_ns = 3600 * S;
                    c->step_ns = S;
                } else {
                    c->step_ns = 2 * S;
                }
            }
        }
    }
    printf("%-5s %-34s %12s\n", "mode", "history", "ns/decision");
    for (int i = 0; i < nc; i++) {
        int64_t r[5];
        for (int k = 0; k < 5; k++)
            r[k] = (int64_t)(run(&cfgs[i], n) * 1000);
        qsort(r, 5, sizeof r[0], cmp_i64);
        const char *hist = (i % 2) == 0 ? "short (defaults)" : "long (1 h windows, full rings)";
        printf("%-5s %-34s %12.1f\n", cfgs[i].name, hist, (double)r[2] / 1000.0);
    }
    return 0;
}
