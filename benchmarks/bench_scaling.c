/* SPDX-License-Identifier: MIT */
/*
 * Scaling quality: five traffic shapes x replica start-up {5, 30, 60} s x every policy, through
 * the simulator (include/swarm/sim.h: the real policy and reconcile code on simulated time).
 * 100 ms exponential service, one request per replica, SLO 1 s queue wait, seed 1. Warm start:
 * every policy begins with the replicas the first row's rate needs (as if the service had been
 * running), so the table measures the reaction to the traffic shape, not a cold start at t = 0.
 *
 * Policies: keda, hpa, kpa (upstream defaults, strict: every libswarm extension off),
 * recommended (SWARM_POLICY_LOAD, skipped when this build lacks it), oracle (clairvoyant
 * Erlang C lower bound), fixed (the Erlang C count for the trace's peak rate, all the time).
 *
 * Goal for recommended, per trace x start-up: p99 wait no worse than the best upstream
 * default's (the one of keda/hpa/kpa with the lowest p99; ties: fewer replica-seconds), at most
 * 80 % of that policy's replica-seconds, zero flaps, and at most 1.3 x the oracle's
 * replica-seconds.
 *
 * Usage: bench_scaling [--md FILE] [--seed N] [--runs N] [--startup LIST] [--trace NAME]
 * --runs N: each cell is the mean over seeds seed..seed+N-1 (same traces, other requests).
 * Prints one table (and writes it as Markdown with --md), then the simulation speed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <swarm/swarm.h>

enum { P_KEDA, P_HPA, P_KPA, P_REC, P_ORACLE, P_FIXED, NP };
static const char *pol_names[NP] = {"keda", "hpa", "kpa", "recommended", "oracle", "fixed"};
static const char *shape_names[] = {"", "step", "sine", "spikes", "flash", "idle-bursts"};

typedef struct cell {
    int ok;
    swarm_sim_result r;
    int32_t fixed_n;
} cell;

static double wall_total, wall_max, sim_total;

static int run_one(const swarm_sim_trace *tr, int p, double startup, uint64_t seed, cell *out)
{
    swarm_policy_opts po;
    swarm_policy_opts_init(&po);
    po.max_replicas = 100;
    swarm_sim_opts so;
    swarm_sim_opts_init(&so);
    so.startup_s = startup;
    so.service_mean_s = 0.1;
    so.slo_s = 1.0;
    so.seed = seed;
    so.no_timeline = 1;
    so.max_replicas = 100;
    so.warm_start = 1; /* the service runs at the first row's rate before the trace starts */
    switch (p) {
    case P_KEDA:
    case P_HPA:
    case P_KPA:
        po.mode = p == P_KEDA  ? SWARM_POLICY_KEDA
                  : p == P_HPA ? SWARM_POLICY_HPA
                               : SWARM_POLICY_KPA;
        po.disable = SWARM_POLICY_STRICT_UPSTREAM;
        if (p != P_KPA)
            po.hpa_path = SWARM_POLICY_HPA_BEHAVIOR;
        so.policy = &po;
        break;
    case P_REC:
        po.mode = SWARM_POLICY_LOAD;
        po.load_wait_ns = INT64_C(1000000000); /* the SLO: 1 s at p99 (its defaults) */
        so.policy = &po;
        break;
    case P_ORACLE:
        so.kind = SWARM_SIM_ORACLE;
        break;
    default: {
        double peak = 0;
        for (size_t i = 0; i < swarm_sim_trace_len(tr); i++) {
            swarm_sim_point pt;
            swarm_sim_trace_get(tr, i, &pt);
            if (pt.rps > peak)
                peak = pt.rps;
        }
        int32_t n = 0;
        swarm_sim_erlang_servers(peak * 0.1, 0.1, 1.0, 0.99, 100, &n);
        so.kind = SWARM_SIM_FIXED;
        so.fixed_replicas = n;
        out->fixed_n = n;
    }
    }
    swarm_sim *s = NULL;
    clock_t t0 = clock(); /* CPU time: the machine is shared, wall time drifts */
    int rc = swarm_sim_create(&s, tr, &so);
    if (rc == 0)
        rc = swarm_sim_run(s);
    if (rc == 0) {
        out->r.size = sizeof out->r;
        swarm_sim_get_result(s, &out->r);
        out->ok = 1;
        double w = (double)(clock() - t0) / CLOCKS_PER_SEC;
        wall_total += w;
        sim_total += out->r.sim_seconds;
        if (w > wall_max)
            wall_max = w;
    }
    swarm_sim_destroy(s);
    return rc;
}

static void fmt_cell(char *buf, size_t n, const cell *c)
{
    if (!c->ok) {
        snprintf(buf, n, "n/a");
        return;
    }
    snprintf(buf, n, "%.2f / %.0f / %u", c->r.p99_wait_s, c->r.replica_seconds, c->r.flaps);
}

int main(int argc, char **argv)
{
    const char *md_path = NULL, *only = NULL;
    uint64_t seed = 1;
    int runs = 1;
    double startups[3] = {5, 30, 60};
    int nst = 3;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--md") == 0 && i + 1 < argc) {
            md_path = argv[++i];
        } else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            runs = atoi(argv[++i]);
            if (runs < 1)
                runs = 1;
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--trace") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else if (strcmp(argv[i], "--startup") == 0 && i + 1 < argc) {
            nst = 0;
            char *dup = strdup(argv[++i]), *save = NULL;
            for (char *t = strtok_r(dup, ",", &save); t && nst < 3; t = strtok_r(NULL, ",", &save))
                startups[nst++] = atof(t);
            free(dup);
        } else {
            fprintf(stderr,
                    "usage: bench_scaling [--md FILE] [--seed N] [--runs N] [--startup 5,30,60] "
                    "[--trace step|sine|spikes|flash|idle-bursts]\n");
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    FILE *md = md_path ? fopen(md_path, "w") : NULL;
    if (md_path && !md) {
        fprintf(stderr, "cannot write %s\n", md_path);
        return 1;
    }
    printf("scaling quality: 100 ms exp service, 1 request/replica, SLO 1 s, max 100, seed %llu, "
           "runs %d\ncells: p99 queue wait s / replica-seconds / flaps%s\n\n",
           (unsigned long long)seed, runs, runs > 1 ? " (means over the runs)" : "");
    printf("%-12s %5s", "trace", "start");
    for (int p = 0; p < NP; p++)
        printf(" %-22s", pol_names[p]);
    printf(" %s\n", "recommended meets goal?");
    if (md) {
        fprintf(md, "| trace | start-up s |");
        for (int p = 0; p < NP; p++)
            fprintf(md, " %s |", pol_names[p]);
        fprintf(md, " recommended vs goal |\n|---|---|");
        for (int p = 0; p < NP; p++)
            fprintf(md, "---|");
        fprintf(md, "---|\n");
    }
    int rec_missing = 0, met = 0, cases = 0;
    for (int sh = SWARM_SIM_SHAPE_STEP; sh <= SWARM_SIM_SHAPE_IDLE_BURSTS; sh++) {
        if (only && strcmp(only, shape_names[sh]) != 0)
            continue;
        swarm_sim_gen_opts g;
        swarm_sim_gen_opts_init(&g);
        g.shape = (uint32_t)sh;
        g.seed = seed;
        swarm_sim_trace *tr = NULL;
        if (swarm_sim_trace_generate(&tr, &g, NULL) < 0)
            return 1;
        for (int si = 0; si < nst; si++) {
            cell c[NP];
            memset(c, 0, sizeof c);
            for (int p = 0; p < NP; p++) {
                int rc = 0;
                swarm_sim_result sum;
                memset(&sum, 0, sizeof sum);
                uint32_t flaps = 0;
                for (int k = 0; k < runs && rc == 0; k++) {
                    rc = run_one(tr, p, startups[si], seed + (uint64_t)k, &c[p]);
                    sum.p99_wait_s += c[p].r.p99_wait_s / runs;
                    sum.replica_seconds += c[p].r.replica_seconds / runs;
                    flaps += c[p].r.flaps;
                }
                if (rc == 0 && runs > 1) { /* means over the seeds; flaps rounded */
                    c[p].r.p99_wait_s = sum.p99_wait_s;
                    c[p].r.replica_seconds = sum.replica_seconds;
                    c[p].r.flaps = (flaps + (uint32_t)runs / 2) / (uint32_t)runs;
                }
                if (rc < 0 && p == P_REC)
                    rec_missing = 1;
                else if (rc < 0)
                    fprintf(stderr, "%s failed: %s\n", pol_names[p], swarm_strerror(rc));
            }
            /* Best upstream default: lowest p99, then fewest replica-seconds. */
            int best = -1;
            for (int p = P_KEDA; p <= P_KPA; p++)
                if (c[p].ok && (best < 0 || c[p].r.p99_wait_s < c[best].r.p99_wait_s ||
                                (c[p].r.p99_wait_s == c[best].r.p99_wait_s &&
                                 c[p].r.replica_seconds < c[best].r.replica_seconds)))
                    best = p;
            char verdict[200] = "n/a (no SWARM_POLICY_LOAD)";
            if (c[P_REC].ok && best >= 0 && c[P_ORACLE].ok) {
                const swarm_sim_result *r = &c[P_REC].r, *b = &c[best].r, *o = &c[P_ORACLE].r;
                int p99_ok = r->p99_wait_s <= b->p99_wait_s + 1e-3;
                double vs_best = r->replica_seconds / b->replica_seconds;
                double vs_oracle = r->replica_seconds / o->replica_seconds;
                int ok = p99_ok && vs_best <= 0.8 && r->flaps == 0 && vs_oracle <= 1.3;
                cases++;
                met += ok;
                snprintf(verdict, sizeof verdict,
                         "%s (best %s; p99 %+.2f s%s; %.0f%% of its replica-s%s; %.2fx oracle%s; "
                         "%u flaps%s)",
                         ok ? "YES" : "no", pol_names[best], r->p99_wait_s - b->p99_wait_s,
                         p99_ok ? "" : " MISS", 100 * vs_best, vs_best <= 0.8 ? "" : " MISS",
                         vs_oracle, vs_oracle <= 1.3 ? "" : " MISS", r->flaps,
                         r->flaps == 0 ? "" : " MISS");
            }
            printf("%-12s %5.0f", shape_names[sh], startups[si]);
            char buf[64];
            for (int p = 0; p < NP; p++) {
                fmt_cell(buf, sizeof buf, &c[p]);
                if (p == P_FIXED && c[p].ok) {
                    size_t l = strlen(buf);
                    snprintf(buf + l, sizeof buf - l, " (%d)", c[p].fixed_n);
                }
                printf(" %-22s", buf);
            }
            printf(" %s\n", verdict);
            if (md) {
                fprintf(md, "| %s | %.0f |", shape_names[sh], startups[si]);
                for (int p = 0; p < NP; p++) {
                    fmt_cell(buf, sizeof buf, &c[p]);
                    if (p == P_FIXED && c[p].ok) {
                        size_t l = strlen(buf);
                        snprintf(buf + l, sizeof buf - l, " (n=%d)", c[p].fixed_n);
                    }
                    fprintf(md, " %s |", buf);
                }
                fprintf(md, " %s |\n", verdict);
            }
            fflush(stdout);
        }
        swarm_sim_trace_destroy(tr);
    }
    if (rec_missing)
        printf("\nrecommended: skipped, this libswarm has no SWARM_POLICY_LOAD mode yet\n");
    else
        printf("\nrecommended meets the goal in %d of %d cases\n", met, cases);
    printf("simulation speed: %.0f simulated s per CPU s; slowest run %.0f ms of CPU\n",
           wall_total > 0 ? sim_total / wall_total : 0, wall_max * 1e3);
    if (md) {
        fprintf(
            md,
            "\nCells: p99 queue wait (s) / replica-seconds / flaps. 100 ms exponential "
            "service, one request per replica, SLO 1 s, max 100 replicas, warm start, seed %llu, "
            "%d run(s) per cell (means over seeds seed..seed+runs-1). "
            "fixed: the Erlang C count for the trace's peak (n).\n",
            (unsigned long long)seed, runs);
        if (!rec_missing)
            fprintf(md, "\nrecommended meets the goal in %d of %d cases.\n", met, cases);
        fclose(md);
    }
    return 0;
}
