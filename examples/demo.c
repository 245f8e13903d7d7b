/* SPDX-License-Identifier: MIT */
/*
 * demo: the whole loop in one process, the way the seed's SwarmOrchestrator meant it.
 *
 *   producers --bursty traffic--> [bounded channel] --> agent pool --> engine (mock 50-200 ms,
 *                                                                       or --engine=ngram)
 *                                        |                  ^
 *                                        | observe          | resize(desired)
 *                                        +--> reconcile loop (KEDA-style policy) --+
 *
 * Traffic runs quiet, then a burst, then quiet again. The reconcile loop observes the backlog
 * (queued + in flight, per replica target), the policy decides, and the pool scales up under the
 * burst (new agents first warm up and count as "starting") and back down after the cooldown,
 * retiring idle agents first so that no task is lost. A live timeline shows each step; the
 * summary proves that every task sent was completed, failed, or dropped by the producers when
 * the channel stayed full (load shedding), and that none was lost.
 *
 *   usage: demo [--quick] [--quiet1=S] [--burst=S] [--quiet2=S] [--quiet-rate=N] [--burst-rate=N]
 *               [--producers=N] [--capacity=N] [--target=N] [--min=N] [--max=N] [--cooldown=S]
 *               [--interval-ms=N] [--print-ms=N] [--warmup-ms=N] [--latency-ms=LO,HI]
 *               [--fail-rate=P] [--batch=N] [--policy=keda|hpa|kpa] [--engine=mock|ngram|http]
 *               [--seed=N] [--url=URL --model=M --api=chat|completions --api-key=K --system=S
 *               --no-stream]
 *
 * --engine=ngram serves each task with the character n-gram model of examples/ngram.c (real CPU
 * inference, trained at start-up) instead of the mock; the summary shows one generated text.
 *
 * --engine=http --url=http://127.0.0.1:8080 serves each task through the HTTP engine of
 * examples/http_engine.c (wrapped in the retry decorator) from any OpenAI-compatible server:
 * vLLM, llama.cpp's server, Ollama (http://127.0.0.1:11434), OpenAI (https://api.openai.com/v1,
 * key from OPENAI_API_KEY or --api-key). Built when libcurl and libcjson are found.
 *
 * Defaults run for about 20 seconds; --quick runs a few seconds (used by the test suite).
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <swarm/swarm.h>

#include "ngram.h"
#ifdef SWARM_DEMO_HTTP
#    include "http_engine.h"
#endif

#define MS  INT64_C(1000000)
#define SEC INT64_C(1000000000)

/* ---- configuration --------------------------------------------------------------------------- */

typedef struct config {
    double quiet1_s, burst_s, quiet2_s; /* phases */
    double quiet_rate, burst_rate;      /* tasks per second, all producers together */
    uint32_t producers;
    uint32_t capacity;
    double target; /* backlog per agent */
    int32_t min_agents, max_agents;
    double cooldown_s;
    int64_t interval_ms, print_ms, warmup_ms;
    int64_t lat_lo_ms, lat_hi_ms;
    double fail_rate;
    uint32_t batch;
    uint32_t policy_mode;
    int ngram;
    uint64_t seed;
} config;

static config cfg = {
    .quiet1_s = 4,
    .burst_s = 6,
    .quiet2_s = 10,
    .quiet_rate = 4,
    .burst_rate = 100,
    .producers = 2,
    .capacity = 256,
    .target = 3,
    .min_agents = 1,
    .max_agents = 24,
    .cooldown_s = 3,
    .interval_ms = 250,
    .print_ms = 500,
    .warmup_ms = 400,
    .lat_lo_ms = 50,
    .lat_hi_ms = 200,
    .fail_rate = 0.02,
    .batch = 0,
    .policy_mode = SWARM_POLICY_KEDA,
    .seed = 42,
};

#ifdef SWARM_DEMO_HTTP
static http_engine_opts http_o; /* --engine=http: --url, --model, --api, ... */
#endif

static int parse_args(int argc, char **argv)
{
#ifdef SWARM_DEMO_HTTP
    http_engine_opts_init(&http_o);
#endif
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
#ifdef SWARM_DEMO_HTTP
        int hr = http_engine_parse_opt(&http_o, a);
        if (hr < 0)
            return -1;
        if (hr > 0)
            continue;
#endif
        const char *eq = strchr(a, '=');
        const char *v = eq ? eq + 1 : "";
        size_t klen = eq ? (size_t)(eq - a) : strlen(a);
#define KEY(k) (klen == strlen(k) && strncmp(a, k, klen) == 0)
        if (KEY("--quick")) {
            cfg.quiet1_s = 0.6, cfg.burst_s = 1.6, cfg.quiet2_s = 2.2;
            cfg.cooldown_s = 0.8, cfg.interval_ms = 100, cfg.print_ms = 250, cfg.warmup_ms = 150;
        } else if (KEY("--quiet1")) {
            cfg.quiet1_s = atof(v);
        } else if (KEY("--burst")) {
            cfg.burst_s = atof(v);
        } else if (KEY("--quiet2")) {
            cfg.quiet2_s = atof(v);
        } else if (KEY("--quiet-rate")) {
            cfg.quiet_rate = atof(v);
        } else if (KEY("--burst-rate")) {
            cfg.burst_rate = atof(v);
        } else if (KEY("--producers")) {
            cfg.producers = (uint32_t)strtoul(v, NULL, 10);
        } else if (KEY("--capacity")) {
            cfg.capacity = (uint32_t)strtoul(v, NULL, 10);
        } else if (KEY("--target")) {
            cfg.target = atof(v);
        } else if (KEY("--min")) {
            cfg.min_agents = atoi(v);
        } else if (KEY("--max")) {
            cfg.max_agents = atoi(v);
        } else if (KEY("--cooldown")) {
            cfg.cooldown_s = atof(v);
        } else if (KEY("--interval-ms")) {
            cfg.interval_ms = atoll(v);
        } else if (KEY("--print-ms")) {
            cfg.print_ms = atoll(v);
        } else if (KEY("--warmup-ms")) {
            cfg.warmup_ms = atoll(v);
        } else if (KEY("--latency-ms")) {
            if (sscanf(v, "%" SCNd64 ",%" SCNd64, &cfg.lat_lo_ms, &cfg.lat_hi_ms) != 2)
                return -1;
        } else if (KEY("--fail-rate")) {
            cfg.fail_rate = atof(v);
        } else if (KEY("--batch")) {
            cfg.batch = (uint32_t)strtoul(v, NULL, 10);
        } else if (KEY("--engine")) {
            if (strcmp(v, "mock") == 0)
                cfg.ngram = 0;
            else if (strcmp(v, "ngram") == 0)
                cfg.ngram = 1;
#ifdef SWARM_DEMO_HTTP
            else if (strcmp(v, "http") == 0)
                cfg.ngram = 2; /* not the n-gram: the HTTP engine (engine kind 2) */
#endif
            else
                return -1;
        } else if (KEY("--seed")) {
            cfg.seed = strtoull(v, NULL, 10);
        } else if (KEY("--policy")) {
            if (strcmp(v, "keda") == 0)
                cfg.policy_mode = SWARM_POLICY_KEDA;
            else if (strcmp(v, "hpa") == 0)
                cfg.policy_mode = SWARM_POLICY_HPA;
            else if (strcmp(v, "kpa") == 0)
                cfg.policy_mode = SWARM_POLICY_KPA;
            else
                return -1;
        } else {
            return -1;
        }
#undef KEY
    }
    if (cfg.producers == 0 || cfg.capacity == 0 || cfg.target <= 0 || cfg.max_agents < 1 ||
        cfg.min_agents < 0 || cfg.min_agents > cfg.max_agents || cfg.interval_ms <= 0 ||
        cfg.print_ms <= 0 || cfg.lat_lo_ms < 0 || cfg.lat_hi_ms < cfg.lat_lo_ms ||
        cfg.fail_rate < 0 || cfg.fail_rate > 1)
        return -1;
    return 0;
}

/* ---- shared state ---------------------------------------------------------------------------- */

static swarm_chan *queue;
static swarm_pool *pool;
static swarm_reconcile *loop;
static int64_t t0;
static _Atomic uint64_t next_id, sent, dropped;

static const char prompt[] = "summarize the incident report";

static void sleep_ns(int64_t ns)
{
    if (ns <= 0)
        return;
    struct timespec ts = {(time_t)(ns / SEC), (long)(ns % SEC)};
    nanosleep(&ts, NULL);
}

static double phase_rate(int64_t since_start)
{
    double s = (double)since_start / SEC;
    if (s < cfg.quiet1_s)
        return cfg.quiet_rate;
    if (s < cfg.quiet1_s + cfg.burst_s)
        return cfg.burst_rate;
    if (s < cfg.quiet1_s + cfg.burst_s + cfg.quiet2_s)
        return cfg.quiet_rate;
    return -1; /* done */
}

/* Producers: Poisson arrivals at the phase's rate. A send waits up to 100 ms for room
 * (backpressure), then sheds the task (counted as dropped). */
static void *producer(void *arg)
{
    uint64_t rng = cfg.seed * 0x9e3779b97f4a7c15u + (uintptr_t)arg + 1;
    uint32_t watermark = cfg.capacity / 4 ? cfg.capacity / 4 : 1;
    for (;;) {
        double rate = phase_rate(swarm_now_ns() - t0);
        if (rate < 0)
            break;
        if (rate == 0) {
            sleep_ns(10 * MS);
            continue;
        }
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        double u = ((double)(rng >> 11) + 0.5) / 9007199254740992.0;
        double gap_s = -log(u) / (rate / cfg.producers);
        sleep_ns((int64_t)(gap_s * SEC));
        swarm_task t;
        memset(&t, 0, sizeof t);
        t.id = atomic_fetch_add(&next_id, 1);
        t.payload = prompt;
        t.payload_len = sizeof prompt - 1;
        t.enqueued_ns = swarm_now_ns();
        atomic_fetch_add(&sent, 1);
        int rc = swarm_chan_send_timeout(queue, &t, 100 * MS);
        if (rc != 0)
            atomic_fetch_add(&dropped, 1);
        /* A backlog above the watermark wakes the scaler now instead of at its next tick. */
        if (swarm_chan_len(queue) > watermark)
            swarm_reconcile_kick(loop);
    }
    return NULL;
}

/* ---- the host's side of the reconcile loop --------------------------------------------------- */

static int observe(void *ctx, swarm_policy_obs *obs)
{
    (void)ctx;
    swarm_pool_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    int rc = swarm_pool_get_stats(pool, &st);
    if (rc != 0)
        return rc;
    int32_t cur = (int32_t)st.target;
    int32_t ready = (int32_t)(st.ready < st.target ? st.ready : st.target);
    int32_t starting = (int32_t)st.starting;
    if (starting > cur - ready)
        starting = cur - ready;
    obs->current_replicas = cur;
    obs->ready_replicas = ready;
    obs->starting_replicas = starting;
    obs->n_metrics = 1;
    obs->metrics[0].kind = SWARM_METRIC_TOTAL;
    obs->metrics[0].value = (double)st.queued;
    obs->metrics[0].in_flight = (double)st.in_flight;
    obs->metrics[0].target = cfg.target;
    obs->metrics[0].activation = 0;
    return 0;
}

static int actuate(void *ctx, int32_t desired, const swarm_policy_decision *d)
{
    (void)ctx;
    (void)d;
    return swarm_pool_resize(pool, desired < 0 ? 0 : (uint32_t)desired);
}

/* Each result: keep the first generated text to show at the end. Payloads are static, so there
 * is nothing to free. */
static _Atomic int have_sample;
static char sample[96];

static void on_result(void *ctx, const swarm_pool_result *res)
{
    (void)ctx;
    if (res->status != 0 || atomic_load_explicit(&have_sample, memory_order_relaxed))
        return;
    int expected = 0;
    if (!atomic_compare_exchange_strong(&have_sample, &expected, 1))
        return;
    size_t len = 0;
    const char *out = swarm_response_data(res->response, &len);
    size_t n = len < sizeof sample - 1 ? len : sizeof sample - 1;
    for (size_t i = 0; i < n; i++)
        sample[i] = (out[i] == '\n' || out[i] == '\r') ? ' ' : out[i];
    sample[n] = 0;
    atomic_store(&have_sample, 2); /* published; main reads after the pool stopped */
}

/* Agents load their model before serving: they show up as "starting" meanwhile. */
static int warmup(void *ctx, uint32_t worker, swarm_cancel *cancel)
{
    (void)ctx;
    (void)worker;
    int64_t end = swarm_now_ns() + cfg.warmup_ms * MS;
    while (swarm_now_ns() < end) {
        if (swarm_cancel_is_canceled(cancel))
            return SWARM_ECANCELED;
        sleep_ns(5 * MS);
    }
    return 0;
}

/* ---- output ---------------------------------------------------------------------------------- */

/* The rules that shaped the decision, e.g. "cold_start" or "stabilization", else "target". */
static void reason_of(const swarm_policy_decision *d, char *buf, size_t len)
{
    buf[0] = 0;
    size_t used = 0;
    for (uint32_t i = 0; i < d->n_steps && i < SWARM_POLICY_MAX_STEPS; i++) {
        uint32_t rule = d->steps[i].rule;
        if (rule == SWARM_RULE_RAW || d->steps[i].before == d->steps[i].after)
            continue;
        int n =
            snprintf(buf + used, len - used, "%s%s", used ? "," : "", swarm_policy_rule_name(rule));
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
    }
    if (!used)
        snprintf(buf, len, "%s", d->replicas == d->current ? "steady" : "target");
}

static void print_header(void)
{
    printf("%6s %6s %6s %6s %6s %5s  %-24s %7s %5s %5s %8s\n", "t", "queue", "inflt", "ready",
           "start", "want", "decision", "done", "fail", "drop", "p99wait");
}

static void print_line(void)
{
    swarm_pool_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    swarm_pool_get_stats(pool, &st);
    swarm_policy_decision d;
    memset(&d, 0, sizeof d);
    d.size = sizeof d;
    char reason[25] = "-";
    int want = -1;
    if (swarm_reconcile_last_decision(loop, &d) == 0) {
        want = d.replicas;
        reason_of(&d, reason, sizeof reason);
    }
    printf("%5.1fs %6" PRIu64 " %6" PRIu64 " %6u %6u %5d  %-24s %7" PRIu64 " %5" PRIu64 " %5" PRIu64
           " %6.0fms\n",
           (double)(swarm_now_ns() - t0) / SEC, st.queued, st.in_flight, st.ready, st.starting,
           want, reason, st.completed, st.failed, atomic_load(&dropped),
           (double)st.wait_p99_ns / MS);
    fflush(stdout);
}

/* ---- main ------------------------------------------------------------------------------------ */

static int fail(const char *what, int rc)
{
    fprintf(stderr, "demo: %s: %s\n", what, swarm_strerror(rc));
    return 2;
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv) != 0) {
        fprintf(stderr, "usage: see the comment at the top of examples/demo.c\n");
        return 2;
    }
    int rc;

    /* The bounded channel between producers and agents. */
    swarm_chan_opts co;
    swarm_chan_opts_init(&co);
    co.capacity = cfg.capacity;
    co.elem_size = sizeof(swarm_task);
    if ((rc = swarm_chan_create(&queue, &co)) != 0)
        return fail("channel", rc);

    /* The engine: mock latency uniform in [lo, hi] with a few transient failures, or the n-gram
     * model (real CPU work). */
    swarm_engine *engine = NULL;
#ifdef SWARM_DEMO_HTTP
    if (cfg.ngram == 2) {
        if (http_o.base_url == NULL) {
            fprintf(stderr, "demo: --engine=http needs --url=BASE_URL\n");
            return 2;
        }
        swarm_engine *http = NULL;
        if ((rc = http_engine_create(&http, NULL, &http_o)) != 0)
            return fail("http engine", rc);
        if ((rc = swarm_engine_health(http)) != 0) {
            fprintf(stderr, "demo: %s is not answering GET /v1/models: %s\n", http_o.base_url,
                    swarm_strerror(rc));
            swarm_engine_destroy(http);
            return 2;
        }
        if ((rc = swarm_engine_retry_create(&engine, http, NULL)) != 0)
            return fail("retry", rc);
    } else
#endif
        if (cfg.ngram) {
        ngram_model *m = NULL;
        if ((rc = ngram_train(&m, ngram_corpus, strlen(ngram_corpus), 6)) != 0)
            return fail("ngram train", rc);
        if ((rc = ngram_engine_create(&engine, m)) != 0)
            return fail("ngram engine", rc);
    } else {
        swarm_mock_opts mo;
        swarm_mock_opts_init(&mo);
        mo.latency_kind = SWARM_MOCK_LATENCY_UNIFORM;
        mo.latency_ns = cfg.lat_lo_ms * MS;
        mo.latency_max_ns = cfg.lat_hi_ms * MS;
        mo.seed = cfg.seed;
        mo.batch = cfg.batch > 1;
        mo.output_bytes = 64;
        static swarm_mock_fault fault;
        fault = (swarm_mock_fault){SWARM_EUNAVAILABLE, 0, cfg.fail_rate, 0};
        if (cfg.fail_rate > 0) {
            mo.faults = &fault;
            mo.n_faults = 1;
        }
        if ((rc = swarm_engine_mock_create(&engine, &mo)) != 0)
            return fail("engine", rc);
    }

    /* The pool of agents. */
    swarm_pool_opts po;
    swarm_pool_opts_init(&po);
    po.input = queue;
    po.engine = engine;
    po.workers = (uint32_t)cfg.min_agents;
    po.max_workers = (uint32_t)cfg.max_agents;
    po.batch_max = cfg.batch;
    po.batch_linger_ns = cfg.batch > 1 ? 5 * MS : 0;
    po.warmup = warmup;
    po.on_result = on_result;
    if ((rc = swarm_pool_create(&pool, &po)) != 0)
        return fail("pool", rc);

    /* The policy: KEDA-style queue scaling, fast enough to see within seconds. */
    swarm_policy_opts pol;
    swarm_policy_opts_init(&pol);
    pol.mode = cfg.policy_mode;
    pol.min_replicas = cfg.min_agents;
    pol.max_replicas = cfg.max_agents;
    pol.cooldown_ns = (int64_t)(cfg.cooldown_s * SEC);
    pol.scale_down.window_ns = (int64_t)(cfg.cooldown_s * SEC);
    pol.scale_up.window_ns = -1;
    pol.scale_up.n_policies = 2;
    pol.scale_up.policies[0] = (swarm_policy_rate){SWARM_RATE_PODS, 4, SEC};
    pol.scale_up.policies[1] = (swarm_policy_rate){SWARM_RATE_PERCENT, 200, SEC};
    if (cfg.policy_mode == SWARM_POLICY_KPA) {
        pol.stable_window_ns =
            (int64_t)(cfg.cooldown_s * SEC) > 6 * SEC ? (int64_t)(cfg.cooldown_s * SEC) : 6 * SEC;
    }
    swarm_policy *policy = NULL;
    if ((rc = swarm_policy_create(&policy, &pol)) != 0)
        return fail("policy", rc);

    /* The reconcile loop, closing it. */
    swarm_reconcile_opts ro;
    swarm_reconcile_opts_init(&ro);
    ro.policy = policy;
    ro.observe = observe;
    ro.actuate = actuate;
    ro.interval_ns = cfg.interval_ms * MS;
    ro.jitter = 0.1;
    if ((rc = swarm_reconcile_create(&loop, &ro)) != 0)
        return fail("reconcile", rc);

    printf("libswarm %s demo: %u producers, quiet %.1fs @%.0f/s, burst %.1fs @%.0f/s, quiet "
           "%.1fs; agents %d..%d, target %.1f per agent, cooldown %.1fs; engine %s\n\n",
           swarm_version_string(), cfg.producers, cfg.quiet1_s, cfg.quiet_rate, cfg.burst_s,
           cfg.burst_rate, cfg.quiet2_s, cfg.min_agents, cfg.max_agents, cfg.target, cfg.cooldown_s,
           swarm_engine_name(engine));
    print_header();

    t0 = swarm_now_ns();
    if ((rc = swarm_reconcile_start(loop)) != 0)
        return fail("reconcile start", rc);
    pthread_t *prod = calloc(cfg.producers, sizeof *prod);
    for (uint32_t i = 0; i < cfg.producers; i++)
        pthread_create(&prod[i], NULL, producer, (void *)(uintptr_t)i);

    /* Timeline until traffic ends and the backlog is gone (bounded). */
    int64_t traffic_end = t0 + (int64_t)((cfg.quiet1_s + cfg.burst_s + cfg.quiet2_s) * SEC);
    int64_t next_print = t0 + cfg.print_ms * MS;
    for (;;) {
        sleep_ns(next_print - swarm_now_ns());
        next_print += cfg.print_ms * MS;
        print_line();
        if (swarm_now_ns() >= traffic_end)
            break;
    }
    for (uint32_t i = 0; i < cfg.producers; i++)
        pthread_join(prod[i], NULL);
    free(prod);

    /* Shut down in order: stop scaling, drain the agents (bounded), account for everything. */
    swarm_reconcile_stop(loop);
    swarm_task left[64];
    uint64_t n_left = 0;
    int moved = swarm_pool_stop(pool, 10 * SEC, left, 64, &n_left);
    if (moved < 0)
        return fail("pool stop", moved);

    swarm_pool_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    swarm_pool_get_stats(pool, &st);
    swarm_reconcile_stats rs;
    memset(&rs, 0, sizeof rs);
    rs.size = sizeof rs;
    swarm_reconcile_get_stats(loop, &rs);
    uint64_t s = atomic_load(&sent), dr = atomic_load(&dropped);
    uint64_t accounted = st.completed + st.failed + dr + n_left;
    int64_t lost = (int64_t)s - (int64_t)accounted;

    printf("\nagents: started %" PRIu64 ", retired %" PRIu64 ", peak-capable max %d; reconcile: "
           "%" PRIu64 " ticks, %" PRIu64 " resizes, %" PRIu64 " kicks, max lag %.1f ms\n",
           st.started, st.retired, cfg.max_agents, rs.ticks, rs.actuations, rs.kicks,
           (double)rs.max_lag_ns / MS);
    printf("latency: queue wait p50 %.1f ms, p90 %.1f ms, p99 %.1f ms; service p50 %.1f ms, "
           "p99 %.1f ms\n",
           (double)st.wait_p50_ns / MS, (double)st.wait_p90_ns / MS, (double)st.wait_p99_ns / MS,
           (double)st.service_p50_ns / MS, (double)st.service_p99_ns / MS);
    if (atomic_load(&have_sample) == 2)
        printf("sample output: \"%s\"\n", sample);
    printf("summary: sent=%" PRIu64 " completed=%" PRIu64 " failed=%" PRIu64 " dropped=%" PRIu64
           " left=%" PRIu64 " lost=%" PRId64 " %s\n",
           s, st.completed, st.failed, dr, n_left, lost,
           lost == 0 ? "OK (sent = completed + failed + dropped + left)" : "MISMATCH");

    swarm_reconcile_destroy(loop);
    swarm_pool_destroy(pool);
    swarm_policy_destroy(policy);
    swarm_engine_destroy(engine);
    swarm_chan_destroy(queue);
    return lost == 0 ? 0 : 1;
}
