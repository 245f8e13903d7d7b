/* SPDX-License-Identifier: MIT */
/*
 * Scaling-policy decision cost: ns per swarm_policy_decide() for each mode, with short and long
 * histories (the rings full of in-window entries, the worst case for the window scans).
 *
 * Usage: bench_policy [decisions]   (default 200000 per configuration)
 * Prints one line per configuration: mode, history, median CPU ns/decision over 5 runs.
 *
 * SWARM_POLICY_LOAD gets its own row (with the load signals filled in every observation) when
 * this build has that mode; the target is under 1 us per decision.
 *
 *        bench_policy --sim [trace.csv]
 * The scaling quality of each mode, strict upstream and with libswarm's extensions, through the
 * simulator module (include/swarm/sim.h; the same code as the swarm-sim tool, which has every
 * knob: service time and distribution, start-up, concurrency, lag, plots). Here: 100 ms
 * exponential service, 30 s start-up, one request per replica, the trace given (CSV
 * "t_seconds,rps") or a built-in flash crowd.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* CPU time of this process, ns: the machine is shared, so wall time includes other programs'
 * turns; the decision loop is single-threaded, so CPU time is its cost. */
static int64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double run(const cfg *c, long n)
{
    swarm_policy *p = NULL;
    if (swarm_policy_create(&p, &c->o) != 0)
        return -1; /* e.g. SWARM_POLICY_LOAD in a build without it */
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
            t0 = cpu_ns();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ob.current_replicas = ob.ready_replicas = cur;
        ob.metrics[0].value = (double)(x % 5000);
        ob.metrics[1].value = (double)(x % 300);
        /* Load signals (read by SWARM_POLICY_LOAD only): cumulative counters moving by a
         * varying rate each step, 100 ms mean service. */
        uint64_t arrived = x % 400, done = (x >> 20) % 400;
        ob.arrivals += arrived;
        ob.completions += done < arrived ? done : arrived;
        ob.service_total_s += 0.1 * (double)(done < arrived ? done : arrived);
        ob.concurrency = 1;
        now += c->step_ns;
        swarm_policy_decide(p, now, &ob, &d);
        cur = d.replicas;
    }
    int64_t t1 = cpu_ns();
    swarm_policy_destroy(p);
    return (double)(t1 - t0) / (double)n;
}

/* ---- scaling quality through the simulator module ---------------------------------------- */

static int sim_main(int argc, char **argv)
{
    swarm_sim_trace *tr = NULL;
    int rc;
    if (argc > 2) {
        if (strcmp(argv[2], "--help") == 0) {
            printf("usage: bench_policy --sim [trace.csv]   (swarm-sim --help has every knob)\n");
            return 0;
        }
        FILE *f = fopen(argv[2], "rb");
        if (!f) {
            fprintf(stderr, "cannot read %s\n", argv[2]);
            return 1;
        }
        static char text[1 << 20];
        size_t n = fread(text, 1, sizeof text, f);
        fclose(f);
        uint32_t line = 0;
        rc = swarm_sim_trace_parse(&tr, text, n, &line, NULL);
        if (rc < 0) {
            fprintf(stderr, "%s:%u: bad row\n", argv[2], line);
            return 1;
        }
    } else {
        swarm_sim_gen_opts g;
        swarm_sim_gen_opts_init(&g);
        g.shape = SWARM_SIM_SHAPE_FLASH;
        if (swarm_sim_trace_generate(&tr, &g, NULL) < 0)
            return 1;
    }
    printf("%-16s %8s %8s %8s %12s %6s %5s\n", "config", "p50 s", "p95 s", "p99 s", "replica-s",
           "flaps", "peak");
    for (uint32_t mode = SWARM_POLICY_KEDA; mode <= SWARM_POLICY_LOAD; mode++) {
        for (int strict = 1; strict >= 0; strict--) {
            if (mode == SWARM_POLICY_LOAD && strict)
                continue;
            swarm_policy_opts o;
            swarm_policy_opts_init(&o);
            o.mode = mode;
            o.max_replicas = 100;
            o.disable = strict ? SWARM_POLICY_STRICT_UPSTREAM : 0;
            if (mode == SWARM_POLICY_KEDA || mode == SWARM_POLICY_HPA)
                o.hpa_path = SWARM_POLICY_HPA_BEHAVIOR;
            swarm_sim_opts so;
            swarm_sim_opts_init(&so);
            so.policy = &o;
            so.startup_s = 30;
            so.no_timeline = 1;
            const char *names[] = {"", "keda", "hpa", "kpa", "load"};
            char label[32];
            snprintf(label, sizeof label, "%s-%s", names[mode], strict ? "upstream" : "libswarm");
            swarm_sim *s = NULL;
            rc = swarm_sim_create(&s, tr, &so);
            if (rc == 0)
                rc = swarm_sim_run(s);
            if (rc < 0) {
                printf("%-16s skipped: %s\n", label, swarm_strerror(rc));
                swarm_sim_destroy(s);
                continue;
            }
            swarm_sim_result r;
            memset(&r, 0, sizeof r);
            r.size = sizeof r;
            swarm_sim_get_result(s, &r);
            swarm_sim_destroy(s);
            printf("%-16s %8.2f %8.2f %8.2f %12.0f %6u %5d\n", label, r.p50_wait_s, r.p95_wait_s,
                   r.p99_wait_s, r.replica_seconds, r.flaps, r.peak_replicas);
        }
    }
    swarm_sim_trace_destroy(tr);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--sim") == 0)
        return sim_main(argc, argv);
    long n = argc > 1 ? atol(argv[1]) : 200000;
    if (n <= 0)
        n = 200000;
    cfg cfgs[10];
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
    /* SWARM_POLICY_LOAD: default options, one decision a second (the reconcile loop's
     * default interval); its state is a few estimators, so one history length only. */
    {
        cfg *c = &cfgs[nc++];
        memset(c, 0, sizeof *c);
        swarm_policy_opts_init(&c->o);
        c->o.mode = SWARM_POLICY_LOAD;
        c->o.max_replicas = 1000;
        c->name = "load";
        c->step_ns = S;
    }
    printf("%-5s %-34s %12s\n", "mode", "history", "CPU ns/dec");
    for (int i = 0; i < nc; i++) {
        int64_t r[5];
        int skipped = 0;
        for (int k = 0; k < 5 && !skipped; k++) {
            double ns = run(&cfgs[i], n);
            skipped = ns < 0;
            r[k] = (int64_t)(ns * 1000);
        }
        const char *hist = cfgs[i].o.mode == SWARM_POLICY_LOAD ? "defaults, 1 s decisions"
                           : (i % 2) == 0                      ? "short (defaults)"
                                                               : "long (1 h windows, full rings)";
        if (skipped) {
            printf("%-5s %-34s %12s\n", cfgs[i].name, hist, "n/a (mode not in this build)");
            continue;
        }
        qsort(r, 5, sizeof r[0], cmp_i64);
        printf("%-5s %-34s %12.1f\n", cfgs[i].name, hist, (double)r[2] / 1000.0);
    }
    return 0;
}
