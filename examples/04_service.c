/* SPDX-License-Identifier: MIT */
/*
 * 04_service: the way to wire libswarm into a service, end to end.
 *
 *   3 producers --swarm_pool_submit--> [bounded channel] --> pool --> retry(breaker(timeout(C)))
 *     (request params, correlation ids)                          |
 *   collector thread <--[result channel: results own their output]--+
 *   reconcile loop (KEDA-mode policy) resizes the pool; metrics rendered for Prometheus.
 *
 * At the end it checks an exactly-once ledger: every request was answered once (or handed back
 * by the graceful shutdown), with the output that belongs to its id. Exit status 0 when it holds.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <swarm/swarm.h>

enum { PRODUCERS = 3, PER_PRODUCER = 300, N = PRODUCERS * PER_PRODUCER };

static swarm_pool *pool;
static swarm_chan *requests, *results;
static char prompts[N][32];      /* payloads live until their result arrives */
static _Atomic int seen[N];      /* the ledger: deliveries per correlation id */
static _Atomic int wrong_output; /* outputs that do not belong to their id */
static _Atomic unsigned attempts, next_id;

/* The C engine: echoes the prompt in capitals, at most max_tokens bytes, after a short
 * cancel-aware "think"; one attempt in 13 fails with a retryable error. */
static int shout_infer(void *self, const swarm_request *req, swarm_response *resp)
{
    (void)self;
    if (atomic_fetch_add(&attempts, 1) % 13 == 12)
        return SWARM_EUNAVAILABLE; /* the retry decorator tries again */
    int rc; /* think 0.1-0.4 ms, waking early if the request is canceled (stop deadline) */
    if ((rc = swarm_sleep_ns(100000 + (int64_t)(req->id % 4) * 100000, req->cancel)) != 0)
        return rc;
    char out[32];
    size_t n =
        req->payload_len < req->params.max_tokens ? req->payload_len : req->params.max_tokens;
    for (size_t i = 0; i < n && i < sizeof out; i++) {
        char c = ((const char *)req->payload)[i];
        out[i] = c >= 'a' && c <= 'z' ? (char)(c - 32) : c;
    }
    swarm_response_set_usage(resp, req->payload_len, n);
    return swarm_response_write(resp, out, n);
}

static swarm_infer_params params = {.temperature = 0.0, .top_p = 1.0, .max_tokens = 24};

static void *producer(void *arg)
{
    (void)arg;
    for (int k = 0; k < PER_PRODUCER; k++) {
        int id = (int)atomic_fetch_add(&next_id, 1);
        snprintf(prompts[id], sizeof prompts[id], "request %d", id);
        swarm_task t = {.id = (uint64_t)id,
                        .payload = prompts[id],
                        .payload_len = strlen(prompts[id]),
                        .params = &params};
        if (swarm_pool_submit(pool, &t, SWARM_WAIT_FOREVER) != 0) /* stamps enqueued_ns */
            return NULL;                                          /* closed: shutting down */
    }
    return NULL;
}

/* Checks one result against the ledger and releases the output it owns. */
static void account(swarm_pool_result *r)
{
    atomic_fetch_add(&seen[r->task.id], 1);
    char want[32];
    snprintf(want, sizeof want, "REQUEST %d", (int)r->task.id);
    if (r->status == 0 && (!r->output || strcmp(r->output, want) != 0)) /* failed: answered */
        atomic_fetch_add(&wrong_output, 1);
    swarm_pool_result_release(pool, r);
}

static void *collect(void *arg)
{
    (void)arg;
    swarm_pool_result r;
    while (swarm_chan_recv(results, &r) == 0) /* until closed and drained */
        account(&r);
    return NULL;
}

int main(void)
{
    swarm_chan_opts co;
    swarm_chan_opts_init(&co);
    co.capacity = 64; /* bounded: producers feel backpressure */
    co.elem_size = sizeof(swarm_task);
    swarm_chan_create(&requests, &co);
    co.elem_size = sizeof(swarm_pool_result);
    swarm_chan_create(&results, &co);

    swarm_engine_ops ops = {
        .version = SWARM_ENGINE_OPS_VERSION, .name = "shout", .infer = shout_infer};
    swarm_engine *e, *t, *b, *engine = NULL;
    swarm_timeout_opts to;
    swarm_timeout_opts_init(&to);
    to.timeout_ns = 200 * 1000000LL; /* per attempt; retry and breaker keep their defaults */
    if (swarm_engine_create(&e, &ops, NULL, NULL) || swarm_engine_timeout_create(&t, e, &to) ||
        swarm_engine_breaker_create(&b, t, NULL) || swarm_engine_retry_create(&engine, b, NULL))
        return 1; /* engine = retry(breaker(timeout(shout))): it owns the whole stack */
    swarm_pool_opts po;
    swarm_pool_opts_init(&po);
    po.input = requests;
    po.engine = engine;
    po.max_workers = 8; /* starts with 1 worker */
    po.results = results;
    if (swarm_pool_create(&pool, &po) != 0)
        return 1;
    swarm_engine_destroy(engine); /* the pool holds its own reference */

    swarm_policy_opts pol;
    swarm_policy_opts_init(&pol);
    pol.mode = SWARM_POLICY_KEDA; /* max 100: the loop clamps it to the pool's 8 */
    swarm_policy *policy;
    swarm_policy_create(&policy, &pol);
    swarm_reconcile_opts lo;
    swarm_reconcile_opts_init(&lo);
    lo.interval_ns = 20 * 1000000LL;
    swarm_reconcile_pool_opts ao;
    swarm_reconcile_pool_opts_init(&ao);
    ao.pool = pool;
    ao.policy = policy;
    ao.target_per_worker = 4; /* backlog (queued + in flight) per agent */
    ao.loop = &lo;
    swarm_reconcile *scaler;
    if (swarm_reconcile_create_for_pool(&scaler, &ao) != 0) /* started: autoscaling from now */
        return 1;

    swarm_metrics *metrics;
    swarm_metrics_create(&metrics, NULL);
    swarm_metrics_add_chan(metrics, "requests", requests);
    swarm_metrics_add_pool(metrics, "agents", pool);
    swarm_metrics_add_reconcile(metrics, "scaler", scaler);

    pthread_t prod[PRODUCERS], coll;
    pthread_create(&coll, NULL, collect, NULL);
    for (int i = 0; i < PRODUCERS; i++)
        pthread_create(&prod[i], NULL, producer, NULL);
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(prod[i], NULL);

    /* Graceful shutdown: stop scaling, drain the pool for up to 10 s, then the results. */
    static char text[1 << 16];
    size_t len = 0;
    swarm_metrics_render(metrics, SWARM_METRICS_PROMETHEUS, text, sizeof text, &len);
    swarm_policy_decision why = {.size = sizeof why};
    swarm_reconcile_last_decision(scaler, &why);
    swarm_reconcile_destroy(scaler);
    static swarm_task left[N];
    uint64_t n_left = 0;
    int moved = swarm_pool_stop(pool, 10 * 1000000000LL, left, N, &n_left);
    static swarm_pool_result held[64];
    int n_held = swarm_pool_take_undelivered(pool, held, 64);
    for (int i = 0; i < n_held; i++)
        account(&held[i]);
    for (int i = 0; i < moved; i++)
        atomic_fetch_add(&seen[left[i].id], 1); /* never ran: handed back */
    swarm_chan_close(results);
    pthread_join(coll, NULL);

    int missing = 0, twice = 0;
    for (int i = 0; i < N; i++)
        missing += seen[i] == 0, twice += seen[i] > 1;
    swarm_pool_stats st = {.size = sizeof st};
    swarm_pool_get_stats(pool, &st);
    printf("%s", text); /* what Prometheus would scrape (examples/05_metrics_http.c serves it) */
    printf("# last scaling decision: %s\n", why.text);
    printf("summary: %d requests, %llu ok, %llu failed, %d handed back, %d missing, %d twice, "
           "%d wrong, p99 wait %.1f ms\n",
           N, (unsigned long long)st.completed, (unsigned long long)st.failed, moved, missing,
           twice, (int)wrong_output, st.wait_p99_ns / 1e6);

    swarm_metrics_destroy(metrics);
    swarm_pool_destroy(pool);
    swarm_policy_destroy(policy);
    swarm_chan_destroy(results);
    swarm_chan_destroy(requests);
    return missing || twice || wrong_output || n_left != (uint64_t)moved ? 1 : 0;
}
