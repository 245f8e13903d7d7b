/* SPDX-License-Identifier: MIT */
/*
 * Scaling-policy decision cost: ns per swarm_policy_decide() for each mode, with short and long
 * histories (the rings full of in-window entries, the worst case for the window scans).
 *
 * Usage: bench_policy [decisions]   (default 200000 per configuration)
 * Prints one line per configuration: mode, history, median ns/decision over 5 runs.
 *
 *        bench_policy --sim [trace.csv] [--csv out.csv]
 * A small simulator: replays an arrival trace ("t_seconds,requests_per_second" lines, piecewise
 * constant; a built-in trace when none is given) through each mode, strict upstream and with
 * libswarm's extensions, against a queueing model (Poisson arrivals, 1 s exponential service, one
 * request per replica, 30 s replica start-up for the model load), and reports latency
 * percentiles, replica-seconds and scale events. --csv writes the per-second time series.
 */
#include <math.h>
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

/* ---- simulator ------------------------------------------------------------------------- */

#define SIM_DT 0.1           /* s per simulation tick */
#define SIM_STARTUP 30.0     /* s for a new replica to become ready */
#define SIM_MAXQ (1 << 20)
#define SIM_MAXR 512

typedef struct trace_pt {
    double t, rate;
} trace_pt;

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static double rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return ((double)(rng_state >> 11) + 0.5) / 9007199254740992.0;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct sim_result {
    double p50, p95, p99, replica_s;
    int events, peak;
    long done;
} sim_result;

static sim_result simulate(const swarm_policy_opts *o, double period_s, const trace_pt *tr,
                           int ntr, double horizon, FILE *csv, const char *label)
{
    swarm_policy *p = NULL;
    if (swarm_policy_create(&p, o) != 0)
        exit(1);
    static double queue[SIM_MAXQ];       /* arrival times, FIFO ring */
    static double busy_until[SIM_MAXR];  /* per replica; < 0: idle */
    static double ready_at[SIM_MAXR];    /* per replica: when it becomes ready */
    static double busy_arrival[SIM_MAXR];
    size_t qh = 0, qt = 0;
    int nrep = 1;
    for (int i = 0; i < SIM_MAXR; i++) {
        busy_until[i] = -1;
        ready_at[i] = 0;
    }
    size_t lat_cap = 1 << 22, nlat = 0;
    double *lat = malloc(lat_cap * sizeof *lat);
    double next_arrival = 0, next_eval = 0;
    sim_result res = {0, 0, 0, 0, 0, 1, 0};
    rng_state = 0x2545f4914f6cdd1dull;
    int ti = 0;
    for (double t = 0; t < horizon; t += SIM_DT) {
        while (ti + 1 < ntr && tr[ti + 1].t <= t)
            ti++;
        double rate = tr[ti].rate;
        /* Arrivals. */
        if (rate > 0) {
            if (next_arrival < t)
                next_arrival = t - log(rnd()) / rate;
            while (next_arrival < t + SIM_DT) {
                if (qt - qh < SIM_MAXQ)
                    queue[qt++ % SIM_MAXQ] = next_arrival;
                next_arrival += -log(rnd()) / rate;
            }
        } else {
            next_arrival = t + SIM_DT;
        }
        /* Service: completions, then idle ready replicas take the oldest request. */
        int ready = 0, starting = 0, busy = 0;
        for (int i = 0; i < nrep; i++) {
            if (busy_until[i] >= 0 && busy_until[i] <= t + SIM_DT) {
                if (nlat < lat_cap)
                    lat[nlat++] = busy_until[i] - busy_arrival[i];
                res.done++;
                busy_until[i] = -1;
            }
            if (ready_at[i] > t) {
                starting++;
                continue;
            }
            ready++;
            if (busy_until[i] < 0 && qt > qh) {
                double arr = queue[qh++ % SIM_MAXQ];
                double start = t > arr ? t : arr;
                busy_arrival[i] = arr;
                busy_until[i] = start - log(rnd()) * 1.0;
            }
            if (busy_until[i] >= 0)
                busy++;
        }
        res.replica_s += nrep * SIM_DT;
        /* Reconcile. */
        if (t >= next_eval) {
            next_eval = t + period_s;
            swarm_policy_obs ob;
            memset(&ob, 0, sizeof ob);
            ob.size = sizeof ob;
            ob.current_replicas = nrep;
            ob.ready_replicas = ready;
            ob.starting_replicas = starting;
            ob.n_metrics = 1;
            ob.metrics[0] = (swarm_policy_metric){SWARM_METRIC_TOTAL, 0, (double)(qt - qh),
                                                  (double)busy, o->mode == SWARM_POLICY_KPA ? 1 : 2,
                                                  0};
            swarm_policy_decision d;
            memset(&d, 0, sizeof d);
            d.size = sizeof d;
            swarm_policy_decide(p, (int64_t)llround(t * 1e9), &ob, &d);
            int want = d.replicas > SIM_MAXR ? SIM_MAXR : d.replicas;
            if (want != nrep) {
                res.events++;
                if (want > nrep) {
                    for (int i = nrep; i < want; i++) {
                        busy_until[i] = -1;
                        ready_at[i] = t + SIM_STARTUP;
                    }
                } else {
                    /* Drain hint: retire starting replicas first, then idle ones, then busy
                     * ones (whose request goes back to the queue head). Compact the arrays. */
                    int retire = nrep - want;
                    for (int pass = 0; pass < 3 && retire > 0; pass++) {
                        for (int i = nrep - 1; i >= 0 && retire > 0; i--) {
                            int st = ready_at[i] > t, idle = !st && busy_until[i] < 0;
                            if ((pass == 0 && st) || (pass == 1 && idle) || pass == 2) {
                                if (pass == 2 && busy_until[i] >= 0 && qh > 0)
                                    queue[--qh % SIM_MAXQ] = busy_arrival[i];
                                busy_until[i] = busy_until[nrep - 1];
                                ready_at[i] = ready_at[nrep - 1];
                                busy_arrival[i] = busy_arrival[nrep - 1];
                                nrep--;
                                retire--;
                            }
                        }
                    }
                }
                nrep = want;
                if (nrep > res.peak)
                    res.peak = nrep;
            }
            if (csv && fmod(t + 1e-9, 1.0) < SIM_DT)
                fprintf(csv, "%s,%.1f,%.1f,%zu,%d,%d,%d\n", label, t, rate, qt - qh, ready,
                        starting, nrep);
        }
    }
    qsort(lat, nlat, sizeof *lat, cmp_d);
    if (nlat) {
        res.p50 = lat[nlat / 2];
        res.p95 = lat[(size_t)(nlat * 0.95)];
        res.p99 = lat[(size_t)(nlat * 0.99)];
    }
    free(lat);
    swarm_policy_destroy(p);
    return res;
}

static int sim_main(int argc, char **argv)
{
    trace_pt tr[4096];
    int ntr = 0;
    const char *csv_path = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--csv") == 0 && i + 1 < argc) {
            csv_path = argv[++i];
            continue;
        }
        FILE *f = fopen(argv[i], "r");
        if (!f) {
            fprintf(stderr, "cannot read %s\n", argv[i]);
            return 1;
        }
        while (ntr < 4096 && fscanf(f, "%lf,%lf", &tr[ntr].t, &tr[ntr].rate) == 2)
            ntr++;
        fclose(f);
    }
    if (ntr == 0) {
        static const trace_pt def[] = {{0, 2}, {300, 40}, {600, 8}, {1200, 0}, {1800, 12},
                                       {2400, 0}};
        memcpy(tr, def, sizeof def);
        ntr = (int)(sizeof def / sizeof def[0]);
    }
    double horizon = tr[ntr - 1].t + 600;
    FILE *csv = csv_path ? fopen(csv_path, "w") : NULL;
    if (csv)
        fprintf(csv, "config,t,rate,queued,ready,starting,replicas\n");
    printf("%-16s %8s %8s %8s %12s %7s %5s\n", "config", "p50 s", "p95 s", "p99 s",
           "replica-s", "events", "peak");
    for (uint32_t mode = SWARM_POLICY_KEDA; mode <= SWARM_POLICY_KPA; mode++) {
        for (int strict = 1; strict >= 0; strict--) {
            swarm_policy_opts o;
            swarm_policy_opts_init(&o);
            o.mode = mode;
            o.max_replicas = 200;
            o.disable = strict ? SWARM_POLICY_STRICT_UPSTREAM : 0;
            if (mode != SWARM_POLICY_KPA)
                o.hpa_path = SWARM_POLICY_HPA_BEHAVIOR;
            if (mode == SWARM_POLICY_HPA)
                o.min_replicas = 1;
            char label[32];
            snprintf(label, sizeof label, "%s-%s", mode == SWARM_POLICY_KEDA ? "keda"
                                                   : mode == SWARM_POLICY_HPA ? "hpa" : "kpa",
                     strict ? "upstream" : "libswarm");
            sim_result r = simulate(&o, mode == SWARM_POLICY_KPA ? 2.0 : 15.0, tr, ntr, horizon,
                                    csv, label);
            printf("%-16s %8.2f %8.2f %8.2f %12.0f %7d %5d\n", label, r.p50, r.p95, r.p99,
                   r.replica_s, r.events, r.peak);
        }
    }
    if (csv)
        fclose(csv);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--sim") == 0)
        return sim_main(argc, argv);
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
