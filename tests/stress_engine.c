/* SPDX-License-Identifier: MIT */
/*
 * Stress: many threads call two decorated stacks at once, with failures, hangs, cancellations
 * and deadlines injected. A ledger checks that every request completes exactly once (one
 * completion callback) with the status its id dictates and with its own output.
 *
 *   deterministic: split(retry(timeout(det)), retry(breaker(timeout(det))))
 *                  det's outcome is a function of the request id and attempt number;
 *   chaos:         batcher(fallback(retry(breaker(timeout(mock with faults, hangs, latency))),
 *                  echo)), where every request must end in success (or ECANCELED when its
 *                  token was fired before the call).
 *
 * SWARM_STRESS_SCALE (default 1) scales the request count (the tsan setup sets 0.1).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <swarm/swarm.h>

#include "helpers.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static int n_threads = 8;
static int per_thread = 4000;
static _Atomic uint32_t *ledger; /* completions per request id */
static swarm_engine *det_stack, *chaos_stack[2];

/* det: id % 5 == 0 invalid; 1 fails once then succeeds; 2 internal error; else echo. */
static int det_infer(void *self, const swarm_request *req, swarm_response *resp)
{
    (void)self;
    swarm_response_info info = {.size = sizeof info};
    swarm_response_get_info(resp, &info);
    switch (req->id % 5) {
    case 0:
        return SWARM_EINVAL;
    case 1:
        if (info.attempts == 1) {
            swarm_response_write(resp, "partial", 7); /* discarded by the retry */
            return SWARM_EUNAVAILABLE;
        }
        break;
    case 2:
        swarm_response_set_error(resp, SWARM_EINTERNAL, "det: internal", 0);
        return 0;
    default:
        break;
    }
    return swarm_response_write(resp, req->payload, (size_t)req->payload_len);
}

static int echo_infer(void *self, const swarm_request *req, swarm_response *resp)
{
    (void)self;
    return swarm_response_write(resp, req->payload, (size_t)req->payload_len);
}

static int expected_det(uint64_t id)
{
    switch (id % 5) {
    case 0:
        return SWARM_EINVAL;
    case 2:
        return SWARM_EINTERNAL;
    default:
        return 0;
    }
}

static void on_complete(void *ctx, const swarm_request *req, swarm_response *resp)
{
    (void)ctx;
    (void)resp;
    atomic_fetch_add_explicit(&ledger[req->id], 1, memory_order_relaxed);
}

static swarm_engine *wrap_timeout(swarm_engine *e, int64_t ns)
{
    swarm_timeout_opts o;
    swarm_timeout_opts_init(&o);
    o.timeout_ns = ns;
    swarm_engine *t = NULL;
    CHECK(swarm_engine_timeout_create(&t, e, &o) == 0);
    return t;
}

static swarm_engine *wrap_retry(swarm_engine *e, uint32_t budget)
{
    swarm_retry_opts o;
    swarm_retry_opts_init(&o);
    o.base_ns = 20 * US;
    o.cap_ns = 200 * US;
    o.budget_max_tokens = budget;
    swarm_engine *r = NULL;
    CHECK(swarm_engine_retry_create(&r, e, &o) == 0);
    return r;
}

static swarm_engine *wrap_breaker(swarm_engine *e, uint32_t min_calls)
{
    swarm_breaker_opts o;
    swarm_breaker_opts_init(&o);
    o.minimum_calls = min_calls;
    o.window_size = 50;
    o.open_ns = 2 * MS;
    o.half_open_probes = 3;
    swarm_engine *b = NULL;
    CHECK(swarm_engine_breaker_create(&b, e, &o) == 0);
    return b;
}

static swarm_engine *user_engine(const char *name,
                                 int (*fn)(void *, const swarm_request *, swarm_response *))
{
    swarm_engine_ops ops = {.version = SWARM_ENGINE_OPS_VERSION, .name = name, .infer = fn};
    swarm_engine *e = NULL;
    CHECK(swarm_engine_create(&e, &ops, NULL, NULL) == 0);
    return e;
}

static void build(void)
{
    /* Deterministic: the breaker never reaches its minimum, so outcomes depend on ids only. */
    swarm_engine *a =
        wrap_retry(wrap_timeout(user_engine("det", det_infer), 1000 * MS), UINT32_MAX);
    swarm_engine *b = wrap_retry(
        wrap_breaker(wrap_timeout(user_engine("det", det_infer), 1000 * MS), 10000), UINT32_MAX);
    swarm_engine *pair[2] = {a, b};
    uint32_t w[2] = {1, 1};
    CHECK(swarm_engine_split_create(&det_stack, pair, w, 2, NULL) == 0);

    /* Two chaos stacks: one whose mock implements infer_batch (batches flow through every
     * decorator), one whose mock has infer only (the library's per-request default). */
    for (int k = 0; k < 2; k++) {
        swarm_mock_fault faults[2] = {
            {.code = SWARM_EUNAVAILABLE, .probability = 0.1},
            {.code = SWARM_EOVERLOADED, .probability = 0.05, .retry_after_ns = 50 * US}};
        swarm_mock_opts mo;
        swarm_mock_opts_init(&mo);
        mo.latency_kind = SWARM_MOCK_LATENCY_UNIFORM;
        mo.latency_ns = 0;
        mo.latency_max_ns = 20 * US;
        mo.faults = faults;
        mo.n_faults = 2;
        mo.hang_probability = 0.002;
        mo.chunk_bytes = 4;
        mo.seed = 12345 + (uint64_t)k;
        mo.batch = (uint32_t)k;
        swarm_engine *m = NULL;
        CHECK(swarm_engine_mock_create(&m, &mo) == 0);
        swarm_engine *primary = wrap_retry(wrap_breaker(wrap_timeout(m, 2 * MS), 20), 10);
        swarm_engine *f = NULL;
        CHECK(swarm_engine_fallback_create(&f, primary, user_engine("echo", echo_infer), NULL) ==
              0);
        swarm_batcher_opts bo;
        swarm_batcher_opts_init(&bo);
        bo.max_batch = 8;
        bo.max_wait_ns = 50 * US;
        CHECK(swarm_engine_batcher_create(&chaos_stack[k], f, &bo) == 0);
    }
}

static void *worker(void *p)
{
    int t = (int)(intptr_t)p;
    swarm_response *r = NULL;
    CHECK(swarm_response_create(&r, NULL) == 0);
    CHECK(swarm_response_set_complete(r, on_complete, NULL) == 0);
    swarm_cancel *tok = NULL;
    CHECK(swarm_cancel_create(&tok, NULL) == 0);
    char payload[64];
    for (int i = 0; i < per_thread; i++) {
        uint64_t id = (uint64_t)t * (uint64_t)per_thread + (uint64_t)i;
        int len = snprintf(payload, sizeof payload, "payload-%llu", (unsigned long long)id);
        swarm_request q;
        swarm_request_init(&q);
        q.id = id;
        q.payload = payload;
        q.payload_len = (uint64_t)len;
        bool chaos = (id & 1) != 0;
        bool canceled = chaos && id % 17 == 3;
        swarm_cancel_reset(tok);
        if (canceled)
            swarm_cancel_trigger(tok);
        q.cancel = tok;
        CHECK(swarm_response_reset(r) == 0);
        int rc = swarm_engine_infer(chaos ? chaos_stack[(id >> 1) & 1] : det_stack, &q, r);
        CHECK(rc == swarm_response_status(r));
        int want = canceled ? SWARM_ECANCELED : chaos ? 0 : expected_det(id);
        if (rc != want) {
            fprintf(stderr, "id %llu: got %s, want %s (%s)\n", (unsigned long long)id,
                    swarm_err_name(rc), swarm_err_name(want), swarm_response_error_message(r));
            abort();
        }
        if (rc == 0) {
            size_t n;
            const char *d = swarm_response_data(r, &n);
            CHECK(n == (size_t)len && memcmp(d, payload, n) == 0);
        }
    }
    swarm_cancel_destroy(tok);
    swarm_response_destroy(r);
    return NULL;
}

int main(void)
{
    per_thread = (int)(per_thread * swarm_test_stress_scale()) + 1;
    size_t total = (size_t)n_threads * (size_t)per_thread;
    ledger = calloc(total, sizeof *ledger);
    CHECK(ledger != NULL);
    build();
    pthread_t th[64];
    for (int t = 0; t < n_threads; t++)
        CHECK(pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t) == 0);
    for (int t = 0; t < n_threads; t++)
        pthread_join(th[t], NULL);
    for (size_t i = 0; i < total; i++) {
        if (atomic_load(&ledger[i]) != 1) {
            fprintf(stderr, "request %zu completed %u times\n", i, atomic_load(&ledger[i]));
            return 1;
        }
    }
    for (int k = 0; k < 2; k++) {
        swarm_batcher_stats bs = {.size = sizeof bs};
        swarm_engine_batcher_get_stats(chaos_stack[k], &bs);
        printf("chaos stack %d (%s): batches %llu (max %u), skipped %llu\n", k,
               swarm_engine_name(chaos_stack[k]), (unsigned long long)bs.batches, bs.max_seen,
               (unsigned long long)bs.skipped);
        swarm_engine_destroy(chaos_stack[k]);
    }
    printf("ok: %zu requests by %d threads, each completed exactly once with its status\n", total,
           n_threads);
    swarm_engine_destroy(det_stack);
    free(ledger);
    return 0;
}
