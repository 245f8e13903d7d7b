/* SPDX-License-Identifier: MIT */
/*
 * swarm-sim: replay an arrival trace through libswarm's scaling policies on simulated time and
 * compare them: queue-wait percentiles, SLO violation, replica-seconds, flaps; a per-second CSV
 * timeline and an SVG plot drawn here. Everything is computed by the library's simulator
 * (include/swarm/sim.h), which drives the real policy and reconcile code.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <swarm/swarm.h>

#define MAX_POL 32

static const char usage_text[] =
    "usage: swarm-sim [options] [TRACE.csv]\n"
    "\n"
    "Replays an arrival-rate trace through scaling policies on simulated time (Poisson\n"
    "arrivals, a service-time distribution, replicas that take a while to start) and compares\n"
    "queue waits, SLO violation, replica-seconds and flaps. Deterministic for a seed.\n"
    "\n"
    "trace (one of):\n"
    "  TRACE.csv, --trace FILE   rows 't_seconds,rps' (no header; '#' comments); the rate holds\n"
    "                            from each row's time to the next; the run ends --tail-s after\n"
    "                            the last row, at the last row's rate\n"
    "  --gen SHAPE               built-in: step, sine, spikes, flash, idle-bursts (default flash)\n"
    "  --gen-base RPS --gen-peak RPS --gen-duration S   override the shape's rates and length\n"
    "  --tail-s S                simulated seconds after the last row (600)\n"
    "model:\n"
    "  --service-ms MS           mean service time (100)\n"
    "  --service-dist D          exp | fixed | lognormal (exp)\n"
    "  --service-cv X            lognormal coefficient of variation (1.0)\n"
    "  --concurrency N           requests one replica serves at once (1)\n"
    "  --startup-s S             start-up time of a new replica (30)\n"
    "  --startup-jitter-s S      plus uniform 0..S (0)\n"
    "  --metrics-lag-s S         age of the metrics the policy sees (0)\n"
    "  --queue-cap N             queued requests beyond N are dropped (0: unlimited)\n"
    "  --cold-start              start each policy at its minimum replica count; by default\n"
    "                            the service starts warm: with the replicas the first row's\n"
    "                            rate needs (Erlang C for the SLO), as if it had been running\n"
    "policies:\n"
    "  --policy LIST             comma list of keda, hpa, kpa (upstream defaults, strict: every\n"
    "                            libswarm extension off), recommended (SWARM_POLICY_LOAD),\n"
    "                            fixed:N, oracle (clairvoyant Erlang C lower bound)\n"
    "                            (default keda,hpa,kpa,recommended,oracle)\n"
    "  --policy-file FILE        a custom policy: 'key = value' lines naming swarm_policy_opts\n"
    "                            fields (mode = keda|hpa|kpa|load, min_replicas, cooldown_s,\n"
    "                            scale_down.window_s, ...; see swarm_sim_config_parse()) and\n"
    "                            interval_s, target; repeatable\n"
    "  --target X                per-replica backlog target (queued + in flight); default\n"
    "                            concurrency, kpa 0.7 x concurrency (Knative's 70 %)\n"
    "  --min N, --max N          replica bounds (policy min as upstream; max 100)\n"
    "  --interval-s S            decision interval for every policy (default as upstream: keda\n"
    "                            30, hpa 15, kpa 2; recommended 1, oracle 1)\n"
    "  --slo-ms MS               queue-wait objective (1000); the oracle meets it at p99\n"
    "runs and output:\n"
    "  --seed N                  seed of the requests and of --gen's random shapes (1)\n"
    "  --runs N                  average over seeds seed..seed+N-1 (same trace, other\n"
    "                            requests; max wait and max queue: the largest) (1)\n"
    "  --json                    one JSON object per policy per line instead of the table\n"
    "  --csv FILE                per-second timeline of every policy (first seed)\n"
    "  --svg FILE                plot: rate, queue, ready and starting replicas over time,\n"
    "                            one panel per policy (first seed)\n"
    "  --explain                 print each scaling decision (time, policy, explanation) to\n"
    "                            stderr (policies driven by swarm_policy_decide)\n"
    "  --help                    this text\n";

typedef struct pol {
    char name[64];
    uint32_t kind;
    swarm_policy_opts po;
    swarm_sim_opts so; /* per-policy overrides from a policy file (interval, target, ...) */
    int32_t fixed;
    int ok;
    swarm_sim_result avg;
    swarm_sim_sample *tl;
    size_t ntl;
} pol;

typedef struct cli {
    const char *trace_path, *gen, *csv, *svg;
    double gen_base, gen_peak, gen_dur;
    double tail_s, service_ms, service_cv, startup_s, jitter_s, lag_s, target, interval_s, slo_ms;
    uint32_t dist, conc, queue_cap;
    int32_t min, max;
    int have_min, json, runs, explain, cold;
    uint64_t seed;
} cli;

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...);
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "swarm-sim: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

static double num(const char *opt, const char *v, double lo, double hi)
{
    char *e = NULL;
    errno = 0;
    double x = strtod(v, &e);
    if (e == v || *e || errno || !isfinite(x) || x < lo || x > hi) {
        fprintf(stderr, "swarm-sim: bad value for --%s: '%s' (expected %g..%g)\n", opt, v, lo, hi);
        exit(2);
    }
    return x;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die("cannot open %s", path);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n == cap)
            buf = realloc(buf, cap *= 2);
        size_t r = fread(buf + n, 1, cap - n, f);
        if (r == 0)
            break;
        n += r;
    }
    fclose(f);
    *len = n;
    return buf;
}

static void add_builtin(pol *ps, int *np, const char *tok, const cli *c)
{
    if (*np >= MAX_POL)
        die("too many policies (%s)", tok);
    pol *p = &ps[*np];
    memset(p, 0, sizeof *p);
    swarm_policy_opts_init(&p->po);
    swarm_sim_opts_init(&p->so);
    snprintf(p->name, sizeof p->name, "%s", tok);
    p->kind = SWARM_SIM_POLICY;
    if (strcmp(tok, "keda") == 0 || strcmp(tok, "hpa") == 0 || strcmp(tok, "kpa") == 0) {
        p->po.mode = tok[0] == 'k' && tok[1] == 'e' ? SWARM_POLICY_KEDA
                     : tok[0] == 'h'                ? SWARM_POLICY_HPA
                                                    : SWARM_POLICY_KPA;
        p->po.disable = SWARM_POLICY_STRICT_UPSTREAM;
        if (p->po.mode != SWARM_POLICY_KPA)
            p->po.hpa_path = SWARM_POLICY_HPA_BEHAVIOR; /* autoscaling/v2 defaults behavior */
    } else if (strcmp(tok, "recommended") == 0 || strcmp(tok, "load") == 0) {
        p->po.mode = SWARM_POLICY_LOAD;
    } else if (strncmp(tok, "fixed:", 6) == 0) {
        p->kind = SWARM_SIM_FIXED;
        p->fixed = (int32_t)num("policy fixed:N", tok + 6, 0, 100000);
    } else if (strcmp(tok, "oracle") == 0) {
        p->kind = SWARM_SIM_ORACLE;
    } else {
        die("unknown policy '%s' (keda, hpa, kpa, recommended, fixed:N, oracle)", tok);
    }
    (void)c;
    (*np)++;
}

static void add_file(pol *ps, int *np, const char *path)
{
    if (*np >= MAX_POL)
        die("too many policies (%s)", path);
    pol *p = &ps[*np];
    memset(p, 0, sizeof *p);
    swarm_policy_opts_init(&p->po);
    swarm_sim_opts_init(&p->so);
    p->kind = SWARM_SIM_POLICY;
    size_t len;
    char *text = read_file(path, &len);
    uint32_t line = 0;
    int rc = swarm_sim_config_parse(text, len, &p->so, &p->po, &line);
    free(text);
    if (rc < 0) {
        fprintf(stderr, "swarm-sim: %s:%u: bad line (unknown key or bad value)\n", path, line);
        exit(2);
    }
    if (p->po.mode == 0) {
        fprintf(stderr, "swarm-sim: %s: no 'mode = keda|hpa|kpa|load' line\n", path);
        exit(2);
    }
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(p->name, sizeof p->name, "%s", base);
    char *dot = strrchr(p->name, '.');
    if (dot && dot != p->name)
        *dot = 0;
    (*np)++;
}

static void accumulate(swarm_sim_result *a, const swarm_sim_result *r, int runs)
{
    double w = 1.0 / runs;
    a->p50_wait_s += r->p50_wait_s * w;
    a->p95_wait_s += r->p95_wait_s * w;
    a->p99_wait_s += r->p99_wait_s * w;
    if (r->max_wait_s > a->max_wait_s)
        a->max_wait_s = r->max_wait_s;
    a->mean_wait_s += r->mean_wait_s * w;
    a->slo_violation_s += r->slo_violation_s * w;
    a->slo_miss_frac += r->slo_miss_frac * w;
    a->replica_seconds += r->replica_seconds * w;
    a->sim_seconds = r->sim_seconds;
    if (r->max_queue > a->max_queue)
        a->max_queue = r->max_queue;
    a->flaps += r->flaps;     /* summed; divided at the end */
    a->dropped += r->dropped; /* summed */
    a->arrivals += r->arrivals;
    a->completions += r->completions;
    a->unfinished += r->unfinished;
    a->decisions += r->decisions;
    a->scale_events += r->scale_events;
    if (r->peak_replicas > a->peak_replicas)
        a->peak_replicas = r->peak_replicas;
}

static void explain_cb(void *ctx, double t_s, const swarm_policy_decision *d)
{
    fprintf(stderr, "%8.1f s  %-12s %s\n", t_s, (const char *)ctx, d->text);
}

/* ---- SVG ---------------------------------------------------------------------------------- */

static double nice_step(double range, int ticks)
{
    double raw = range / ticks, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

/* Bucket maximum of a timeline field over columns, for a compact plot. */
typedef double (*field_fn)(const swarm_sim_sample *);
static double f_rate(const swarm_sim_sample *x)
{
    return x->rate_rps;
}
static double f_ready(const swarm_sim_sample *x)
{
    return x->ready;
}
static double f_total(const swarm_sim_sample *x)
{
    return x->ready + x->starting;
}
static double f_queue(const swarm_sim_sample *x)
{
    return x->queued;
}

static void series(FILE *f, const pol *p, field_fn fn, int cols, double x0, double w, double y0,
                   double h, double ymax, double tmax, int area, const char *style)
{
    if (p->ntl == 0)
        return;
    fprintf(f, "<path %s d=\"", style);
    double cy = 0, cx = 0;
    int open = 0;
    for (int c = 0; c < cols; c++) {
        size_t a = (size_t)((double)c / cols * p->ntl);
        size_t b = (size_t)((double)(c + 1) / cols * p->ntl);
        if (b <= a)
            b = a + 1;
        if (b > p->ntl)
            b = p->ntl;
        double v = 0;
        for (size_t i = a; i < b; i++) {
            double y = fn(&p->tl[i]);
            if (y > v)
                v = y;
        }
        double xa = x0 + p->tl[a].t_s / tmax * w, xb = x0 + p->tl[b - 1].t_s / tmax * w;
        double yy = y0 + h - (ymax > 0 ? (v > ymax ? ymax : v) / ymax * h : 0);
        /* Runs of equal values become one horizontal segment (keeps the file small). */
        if (!open) {
            if (area)
                fprintf(f, "M%.1f %.1fL%.1f %.1f", xa, y0 + h, xa, yy);
            else
                fprintf(f, "M%.1f %.1f", xa, yy);
            open = 1;
        } else if (fabs(yy - cy) >= 0.05) {
            fprintf(f, "L%.1f %.1fL%.1f %.1f", cx, cy, xa, yy);
        }
        cy = yy;
        cx = xb;
    }
    fprintf(f, "L%.1f %.1f", cx, cy);
    if (area)
        fprintf(f, "L%.1f %.1fZ", cx, y0 + h);
    fprintf(f, "\"/>\n");
}

static void write_svg(const char *path, pol *ps, int np, const char *title)
{
    FILE *f = fopen(path, "w");
    if (!f)
        die("cannot write %s", path);
    int n = 0;
    double tmax = 1, rmax = 1, repmax = 1;
    for (int i = 0; i < np; i++) {
        if (!ps[i].ok)
            continue;
        n++;
        for (size_t j = 0; j < ps[i].ntl; j++) {
            const swarm_sim_sample *x = &ps[i].tl[j];
            if (x->t_s > tmax)
                tmax = x->t_s;
            if (x->rate_rps > rmax)
                rmax = x->rate_rps;
            if (x->ready + x->starting > repmax)
                repmax = x->ready + x->starting;
        }
    }
    const double W = 960, L = 70, R = 70, top = 56, ph = 150, qh = 46, gap = 48;
    const double pw = W - L - R;
    double H = top + n * (ph + qh + gap) + 30;
    int cols = 480;
    rmax *= 1.08; /* headroom: the rate line should not sit on the frame */
    double rstep = nice_step(rmax, 5), pstep = nice_step(repmax, 4);
    rmax = ceil(rmax / rstep) * rstep;
    repmax = ceil(repmax / pstep) * pstep;
    double tstep = nice_step(tmax / 60, 8) * 60;
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
            "viewBox=\"0 0 %.0f %.0f\" font-family=\"DejaVu Sans, Arial, sans-serif\" "
            "font-size=\"12\">\n",
            W, H, W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%.0f\" y=\"22\" font-size=\"15\" font-weight=\"bold\">%s</text>\n", L,
            title);
    /* Legend. */
    double lx = L;
    const char *names[] = {"ready replicas", "starting replicas", "arrival rate (rps, right axis)",
                           "queued requests (own scale)"};
    const char *cols_[] = {"#2e8b57", "#f0a030", "#444", "#d62728"};
    for (int i = 0; i < 4; i++) {
        fprintf(f,
                "<rect x=\"%.0f\" y=\"32\" width=\"14\" height=\"10\" fill=\"%s\"/>"
                "<text x=\"%.0f\" y=\"41\">%s</text>\n",
                lx, cols_[i], lx + 18, names[i]);
        lx += 18 + 7.0 * (double)strlen(names[i]) + 22;
    }
    int k = 0;
    for (int i = 0; i < np; i++) {
        pol *p = &ps[i];
        if (!p->ok)
            continue;
        double y0 = top + k * (ph + qh + gap) + 20, qy = y0 + ph + 6;
        k++;
        fprintf(f,
                "<text x=\"%.0f\" y=\"%.0f\" font-weight=\"bold\">%s</text>"
                "<text x=\"%.0f\" y=\"%.0f\" fill=\"#333\">p99 wait %.2f s, replica-s %.0f, "
                "flaps %u, SLO violated %.0f s</text>\n",
                L, y0 - 6, p->name, L + 130, y0 - 6, p->avg.p99_wait_s, p->avg.replica_seconds,
                p->avg.flaps, p->avg.slo_violation_s);
        fprintf(f,
                "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
                "stroke=\"#bbb\"/>\n",
                L, y0, pw, ph);
        for (double v = pstep; v <= repmax + 1e-9; v += pstep) {
            double y = y0 + ph - v / repmax * ph;
            fprintf(f,
                    "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
                    "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                    L, L + pw, y, y, L - 6, y + 4, v);
        }
        for (double v = rstep; v <= rmax + 1e-9; v += rstep) {
            double y = y0 + ph - v / rmax * ph;
            fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" fill=\"#444\">%g</text>\n", L + pw + 6, y + 4,
                    v);
        }
        fprintf(f,
                "<text transform=\"translate(%.0f %.0f) rotate(-90)\" text-anchor=\"middle\">"
                "replicas</text>\n",
                L - 44, y0 + ph / 2);
        fprintf(f,
                "<text transform=\"translate(%.0f %.0f) rotate(90)\" text-anchor=\"middle\">"
                "rps</text>\n",
                L + pw + 52, y0 + ph / 2);
        series(f, p, f_total, cols, L, pw, y0, ph, repmax, tmax, 1, "fill=\"#f0a030\"");
        series(f, p, f_ready, cols, L, pw, y0, ph, repmax, tmax, 1, "fill=\"#2e8b57\"");
        series(f, p, f_rate, cols, L, pw, y0, ph, rmax, tmax, 0,
               "fill=\"none\" stroke=\"#444\" stroke-width=\"1.3\"");
        /* Queue strip on its own scale. */
        double qmax = 0;
        for (size_t j = 0; j < p->ntl; j++)
            if (p->tl[j].queued > qmax)
                qmax = p->tl[j].queued;
        fprintf(f,
                "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
                "stroke=\"#bbb\"/>\n",
                L, qy, pw, qh);
        fprintf(f,
                "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\">queue</text>"
                "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\" fill=\"#d62728\">"
                "max %.0f</text>\n",
                L - 6, qy + qh / 2 + 4, L + pw - 4, qy + 13, qmax);
        if (qmax > 0)
            series(f, p, f_queue, cols, L, pw, qy, qh, qmax, tmax, 1, "fill=\"#d62728\"");
        for (double t = 0; t <= tmax + 1e-9; t += tstep) {
            double x = L + t / tmax * pw;
            fprintf(f,
                    "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.0f\" y2=\"%.0f\" stroke=\"#999\"/>"
                    "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\" fill=\"#555\">%g</text>\n",
                    x, x, qy + qh, qy + qh + 4, x, qy + qh + 16, t / 60);
        }
    }
    fprintf(f,
            "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\" fill=\"#555\">"
            "simulated time (minutes)</text>\n</svg>\n",
            L + pw / 2, H - 8);
    fclose(f);
}

/* ---- main --------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    cli c;
    memset(&c, 0, sizeof c);
    c.tail_s = 600;
    c.service_ms = 100;
    c.service_cv = 1.0;
    c.startup_s = 30;
    c.slo_ms = 1000;
    c.conc = 1;
    c.max = 100;
    c.seed = 1;
    c.runs = 1;
    static pol ps[MAX_POL];
    int np = 0;
    const char *policy_list = NULL;
    const char *policy_files[MAX_POL];
    int nfiles = 0;
    enum {
        O_TRACE = 256,
        O_GEN,
        O_GBASE,
        O_GPEAK,
        O_GDUR,
        O_TAIL,
        O_SVC,
        O_DIST,
        O_CV,
        O_CONC,
        O_START,
        O_JIT,
        O_LAG,
        O_QCAP,
        O_POL,
        O_PFILE,
        O_TARGET,
        O_MIN,
        O_MAX,
        O_INT,
        O_SLO,
        O_SEED,
        O_RUNS,
        O_JSON,
        O_CSV,
        O_SVG,
        O_EXPLAIN,
        O_COLD,
        O_HELP
    };
    static const struct option lo[] = {
        {"trace", 1, 0, O_TRACE},       {"gen", 1, 0, O_GEN},
        {"gen-base", 1, 0, O_GBASE},    {"gen-peak", 1, 0, O_GPEAK},
        {"gen-duration", 1, 0, O_GDUR}, {"tail-s", 1, 0, O_TAIL},
        {"service-ms", 1, 0, O_SVC},    {"service-dist", 1, 0, O_DIST},
        {"service-cv", 1, 0, O_CV},     {"concurrency", 1, 0, O_CONC},
        {"startup-s", 1, 0, O_START},   {"startup-jitter-s", 1, 0, O_JIT},
        {"metrics-lag-s", 1, 0, O_LAG}, {"queue-cap", 1, 0, O_QCAP},
        {"policy", 1, 0, O_POL},        {"policy-file", 1, 0, O_PFILE},
        {"target", 1, 0, O_TARGET},     {"min", 1, 0, O_MIN},
        {"max", 1, 0, O_MAX},           {"interval-s", 1, 0, O_INT},
        {"slo-ms", 1, 0, O_SLO},        {"seed", 1, 0, O_SEED},
        {"runs", 1, 0, O_RUNS},         {"json", 0, 0, O_JSON},
        {"csv", 1, 0, O_CSV},           {"svg", 1, 0, O_SVG},
        {"explain", 0, 0, O_EXPLAIN},   {"cold-start", 0, 0, O_COLD},
        {"help", 0, 0, O_HELP},         {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case O_TRACE:
            c.trace_path = optarg;
            break;
        case O_GEN:
            c.gen = optarg;
            break;
        case O_GBASE:
            c.gen_base = num("gen-base", optarg, 0, 1e7);
            break;
        case O_GPEAK:
            c.gen_peak = num("gen-peak", optarg, 0, 1e7);
            break;
        case O_GDUR:
            c.gen_dur = num("gen-duration", optarg, 0, 1e7);
            break;
        case O_TAIL:
            c.tail_s = num("tail-s", optarg, 0, 1e7);
            break;
        case O_SVC:
            c.service_ms = num("service-ms", optarg, 0.001, 1e9);
            break;
        case O_DIST:
            if (strcmp(optarg, "exp") == 0)
                c.dist = SWARM_SIM_DIST_EXP;
            else if (strcmp(optarg, "fixed") == 0)
                c.dist = SWARM_SIM_DIST_FIXED;
            else if (strcmp(optarg, "lognormal") == 0)
                c.dist = SWARM_SIM_DIST_LOGNORMAL;
            else
                die("bad --service-dist '%s' (exp, fixed, lognormal)", optarg);
            break;
        case O_CV:
            c.service_cv = num("service-cv", optarg, 0.01, 100);
            break;
        case O_CONC:
            c.conc = (uint32_t)num("concurrency", optarg, 1, 100000);
            break;
        case O_START:
            c.startup_s = num("startup-s", optarg, 0, 1e6);
            break;
        case O_JIT:
            c.jitter_s = num("startup-jitter-s", optarg, 0, 1e6);
            break;
        case O_LAG:
            c.lag_s = num("metrics-lag-s", optarg, 0, 1e5);
            break;
        case O_QCAP:
            c.queue_cap = (uint32_t)num("queue-cap", optarg, 0, 4e9);
            break;
        case O_POL:
            policy_list = optarg;
            break;
        case O_PFILE:
            if (nfiles < MAX_POL)
                policy_files[nfiles++] = optarg;
            break;
        case O_TARGET:
            c.target = num("target", optarg, 1e-6, 1e9);
            break;
        case O_MIN:
            c.min = (int32_t)num("min", optarg, 0, 100000);
            c.have_min = 1;
            break;
        case O_MAX:
            c.max = (int32_t)num("max", optarg, 1, 100000);
            break;
        case O_INT:
            c.interval_s = num("interval-s", optarg, 0.001, 86400);
            break;
        case O_SLO:
            c.slo_ms = num("slo-ms", optarg, 0.001, 1e9);
            break;
        case O_SEED:
            c.seed = (uint64_t)num("seed", optarg, 0, 9e15);
            break;
        case O_RUNS:
            c.runs = (int)num("runs", optarg, 1, 100000);
            break;
        case O_JSON:
            c.json = 1;
            break;
        case O_CSV:
            c.csv = optarg;
            break;
        case O_SVG:
            c.svg = optarg;
            break;
        case O_EXPLAIN:
            c.explain = 1;
            break;
        case O_COLD:
            c.cold = 1;
            break;
        case 'h':
        case O_HELP:
            fputs(usage_text, stdout);
            return 0;
        default:
            fputs(usage_text, stderr);
            return 2;
        }
    }
    if (optind < argc) {
        if (c.trace_path || optind + 1 < argc)
            die("one trace only (unexpected '%s')", argv[optind]);
        c.trace_path = argv[optind];
    }
    if (c.trace_path && c.gen)
        die("give a trace file or --gen, not both");
    if (c.min > c.max)
        die("--min is above --max");

    /* The trace. */
    swarm_sim_trace *tr = NULL;
    char title[256];
    if (c.trace_path) {
        size_t len;
        char *text = read_file(c.trace_path, &len);
        uint32_t line = 0;
        int rc = swarm_sim_trace_parse(&tr, text, len, &line, NULL);
        free(text);
        if (rc < 0) {
            if (line)
                fprintf(stderr,
                        "swarm-sim: %s:%u: bad row (expected 't_seconds,rps' with times "
                        "increasing and rps >= 0)\n",
                        c.trace_path, line);
            else
                fprintf(stderr, "swarm-sim: %s: %s\n", c.trace_path,
                        rc == SWARM_EINVAL ? "no rows" : swarm_strerror(rc));
            return 2;
        }
        snprintf(title, sizeof title, "%s", c.trace_path);
    } else {
        const char *g = c.gen ? c.gen : "flash";
        swarm_sim_gen_opts go;
        swarm_sim_gen_opts_init(&go);
        static const char *shapes[] = {"step", "sine", "spikes", "flash", "idle-bursts"};
        for (uint32_t i = 0; i < 5; i++)
            if (strcmp(g, shapes[i]) == 0)
                go.shape = i + 1;
        if (go.shape == 0)
            die("unknown --gen '%s' (step, sine, spikes, flash, idle-bursts)", g);
        go.base_rps = c.gen_base;
        go.peak_rps = c.gen_peak;
        go.duration_s = c.gen_dur;
        go.seed = c.seed;
        if (swarm_sim_trace_generate(&tr, &go, NULL) < 0)
            die("cannot generate '%s'", g);
        snprintf(title, sizeof title, "%s", g);
    }
    {
        char more[200];
        snprintf(more, sizeof more,
                 " trace, %g ms %s service, start-up %g s, concurrency %u, "
                 "SLO %g ms",
                 c.service_ms,
                 c.dist == SWARM_SIM_DIST_EXP     ? "exp"
                 : c.dist == SWARM_SIM_DIST_FIXED ? "fixed"
                                                  : "lognormal",
                 c.startup_s, c.conc, c.slo_ms);
        strncat(title, more, sizeof title - strlen(title) - 1);
    }

    /* The policies. */
    const char *list = policy_list ? policy_list : nfiles ? "" : "keda,hpa,kpa,recommended,oracle";
    char *dup = strdup(list);
    for (char *save = NULL, *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save))
        add_builtin(ps, &np, t, &c);
    free(dup);
    for (int i = 0; i < nfiles; i++)
        add_file(ps, &np, policy_files[i]);
    if (np == 0)
        die("no policy given");

    FILE *csv = NULL;
    if (c.csv) {
        csv = fopen(c.csv, "w");
        if (!csv)
            die("cannot write %s", c.csv);
        fprintf(csv, "policy,t_s,rate_rps,arrived,queued,in_flight,ready,starting,desired,"
                     "replicas\n");
    }
    if (!c.json)
        printf("# %s\n%-14s %9s %9s %9s %9s %10s %12s %9s %6s %8s %5s\n", title, "policy", "p50 s",
               "p95 s", "p99 s", "max s", "slo-viol s", "replica-s", "max-q", "flaps", "dropped",
               "peak");
    int failures = 0;
    for (int i = 0; i < np; i++) {
        pol *p = &ps[i];
        swarm_sim_opts so = p->so; /* file overrides first, CLI knobs fill the rest */
        so.size = sizeof so;
        so.kind = p->kind;
        so.fixed_replicas = p->fixed;
        so.concurrency = so.concurrency ? so.concurrency : c.conc;
        so.service_dist = c.dist;
        so.queue_cap = c.queue_cap;
        so.service_mean_s = c.service_ms / 1000.0;
        so.service_cv = c.service_cv;
        so.startup_s = c.startup_s;
        so.startup_jitter_s = c.jitter_s;
        if (so.metrics_lag_s == 0)
            so.metrics_lag_s = c.lag_s;
        if (so.target == 0)
            so.target = c.target;
        so.slo_s = c.slo_ms / 1000.0;
        so.warm_start = c.cold ? 0 : 1;
        so.tail_s = c.tail_s > 0 ? c.tail_s : -1;
        if (c.interval_s > 0)
            so.interval_ns = (int64_t)llround(c.interval_s * 1e9);
        so.max_replicas = p->kind == SWARM_SIM_FIXED ? 0 : c.max; /* fixed:N means N */
        swarm_policy_opts po = p->po;
        if (p->kind == SWARM_SIM_POLICY) {
            if (po.max_replicas == 0 || po.max_replicas > c.max)
                po.max_replicas = c.max;
            if (c.have_min)
                po.min_replicas = c.min;
            if (po.mode == SWARM_POLICY_LOAD && po.load_wait_ns == 0)
                po.load_wait_ns = (int64_t)llround(c.slo_ms * 1e6); /* the same objective */
            so.policy = &po;
        } else if (p->kind == SWARM_SIM_ORACLE && c.have_min) {
            so.initial_replicas = c.min;
        }
        memset(&p->avg, 0, sizeof p->avg);
        p->ok = 1;
        for (int r = 0; r < c.runs && p->ok; r++) {
            so.seed = c.seed + (uint64_t)r;
            so.no_timeline = r > 0 || (!c.csv && !c.svg);
            so.on_scale = c.explain && r == 0 ? explain_cb : NULL;
            so.on_scale_ctx = p->name;
            swarm_sim *s = NULL;
            int rc = swarm_sim_create(&s, tr, &so);
            if (rc == 0)
                rc = swarm_sim_run(s);
            if (rc < 0) {
                fflush(stdout);
                if (po.mode == SWARM_POLICY_LOAD && p->kind == SWARM_SIM_POLICY &&
                    rc == SWARM_EINVAL)
                    fprintf(stderr,
                            "swarm-sim: skipping %s: this libswarm has no "
                            "SWARM_POLICY_LOAD mode, or rejects its options (%s)\n",
                            p->name, swarm_strerror(rc));
                else
                    fprintf(stderr, "swarm-sim: skipping %s: %s\n", p->name, swarm_strerror(rc));
                swarm_sim_destroy(s);
                p->ok = 0;
                failures++;
                break;
            }
            swarm_sim_result res;
            memset(&res, 0, sizeof res);
            res.size = sizeof res;
            swarm_sim_get_result(s, &res);
            accumulate(&p->avg, &res, c.runs);
            if (r == 0 && !so.no_timeline) {
                p->ntl = swarm_sim_timeline_len(s);
                p->tl = calloc(p->ntl ? p->ntl : 1, sizeof *p->tl);
                swarm_sim_get_timeline(s, 0, p->tl, p->ntl);
            }
            swarm_sim_destroy(s);
        }
        if (!p->ok)
            continue;
        swarm_sim_result *a = &p->avg;
        double flaps = (double)a->flaps / c.runs, dropped = (double)a->dropped / c.runs;
        a->flaps = (uint32_t)llround(flaps);
        if (c.json) {
            printf("{\"policy\": \"%s\", \"p50_wait_s\": %.6g, \"p95_wait_s\": %.6g, "
                   "\"p99_wait_s\": %.6g, \"max_wait_s\": %.6g, \"mean_wait_s\": %.6g, "
                   "\"slo_violation_s\": %.6g, \"slo_miss_frac\": %.6g, "
                   "\"replica_seconds\": %.6g, \"max_queue\": %llu, \"flaps\": %.6g, "
                   "\"dropped\": %.6g, \"peak_replicas\": %d, \"scale_events\": %.6g, "
                   "\"arrivals\": %.6g, \"unfinished\": %.6g, \"decisions\": %.6g, "
                   "\"sim_seconds\": %.6g, \"runs\": %d, \"seed\": %llu, \"startup_s\": %g}\n",
                   p->name, a->p50_wait_s, a->p95_wait_s, a->p99_wait_s, a->max_wait_s,
                   a->mean_wait_s, a->slo_violation_s, a->slo_miss_frac, a->replica_seconds,
                   (unsigned long long)a->max_queue, flaps, dropped, a->peak_replicas,
                   (double)a->scale_events / c.runs, (double)a->arrivals / c.runs,
                   (double)a->unfinished / c.runs, (double)a->decisions / c.runs, a->sim_seconds,
                   c.runs, (unsigned long long)c.seed, c.startup_s);
        } else {
            printf("%-14s %9.3f %9.3f %9.3f %9.3f %10.0f %12.0f %9llu %6.3g %8.0f %5d\n", p->name,
                   a->p50_wait_s, a->p95_wait_s, a->p99_wait_s, a->max_wait_s, a->slo_violation_s,
                   a->replica_seconds, (unsigned long long)a->max_queue, flaps, dropped,
                   a->peak_replicas);
        }
        if (csv)
            for (size_t j = 0; j < p->ntl; j++) {
                const swarm_sim_sample *x = &p->tl[j];
                fprintf(csv, "%s,%.0f,%g,%u,%u,%u,%d,%d,%d,%d\n", p->name, x->t_s, x->rate_rps,
                        x->arrived, x->queued, x->in_flight, x->ready, x->starting, x->desired,
                        x->replicas);
            }
        fflush(stdout);
    }
    if (csv)
        fclose(csv);
    if (c.svg)
        write_svg(c.svg, ps, np, title);
    for (int i = 0; i < np; i++)
        free(ps[i].tl);
    swarm_sim_trace_destroy(tr);
    return failures == np ? 1 : 0;
}
