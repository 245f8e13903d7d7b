/* SPDX-License-Identifier: MIT */
/*
 * Talk to any OpenAI-compatible server (OpenAI, vLLM, llama.cpp's server, Ollama, a gateway)
 * through the HTTP engine of examples/http_engine.c, wrapped in the retry decorator: one chat
 * completion, streamed to stdout as the deltas arrive, then the status, usage and finish reason.
 *
 *   03_http_engine BASE_URL [prompt] [options]
 *     BASE_URL             e.g. http://127.0.0.1:8080 or https://api.openai.com/v1
 *     --model=NAME         model (default $SWARM_MODEL, else "default")
 *     --api=completions    the legacy /v1/completions API instead of chat completions
 *     --system=TEXT        a system prompt before the user text
 *     --api-key=KEY        bearer token (default $OPENAI_API_KEY)
 *     --no-stream          one JSON body instead of server-sent events
 *     --max-tokens=N --temperature=T --top-p=P --seed=N --stop=S --timeout-ms=N
 *     --health             only GET /v1/models and print the engine's health
 *     --bench=S --workers=N  throughput: N threads call the engine back to back for S seconds
 *                          (add --no-reuse to pay a TCP handshake per call)
 *
 * The prompt may also be a JSON array of chat messages, sent as they are.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <swarm/swarm.h>

#include "http_engine.h"

#define MS 1000000LL

static int print_chunk(void *ctx, uint64_t id, const void *chunk, size_t len)
{
    (void)ctx, (void)id;
    fwrite(chunk, 1, len, stdout);
    fflush(stdout);
    return 0;
}

static void on_finish(void *ctx, uint64_t id, const char *reason)
{
    (void)id;
    snprintf(ctx, 32, "%s", reason);
}

/* ---- --bench: requests per second --------------------------------------------------------- */

typedef struct bench {
    swarm_engine *e;
    const char *prompt;
    int64_t end_ns;
    _Atomic uint64_t ok, failed;
} bench;

static void *bench_worker(void *p)
{
    bench *b = p;
    swarm_response *r = NULL;
    if (swarm_response_create(&r, NULL) != 0)
        return NULL;
    swarm_request q;
    swarm_request_init(&q);
    q.payload = b->prompt;
    q.payload_len = strlen(b->prompt);
    q.params.max_tokens = 16;
    while (swarm_now_ns() < b->end_ns) {
        swarm_response_reset(r);
        q.deadline_ns = swarm_now_ns() + 10000 * MS;
        if (swarm_engine_infer(b->e, &q, r) == 0)
            atomic_fetch_add(&b->ok, 1);
        else
            atomic_fetch_add(&b->failed, 1);
    }
    swarm_response_destroy(r);
    return NULL;
}

static int run_bench(swarm_engine *e, http_engine *impl, const char *prompt, double seconds,
                     int workers)
{
    bench b = {.e = e, .prompt = prompt};
    pthread_t *th = calloc((size_t)workers, sizeof *th);
    if (th == NULL)
        return 1;
    int64_t t0 = swarm_now_ns();
    b.end_ns = t0 + (int64_t)(seconds * 1e9);
    int started = 0;
    for (; started < workers; started++)
        if (pthread_create(&th[started], NULL, bench_worker, &b) != 0)
            break;
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    double took = (double)(swarm_now_ns() - t0) / 1e9;
    free(th);
    http_engine_stats st;
    http_engine_get_stats(impl, &st);
    printf("bench: %d workers, %.1f s: %llu ok, %llu failed, %.0f req/s; %llu connections, "
           "%llu handles\n",
           started, took, (unsigned long long)b.ok, (unsigned long long)b.failed,
           (double)b.ok / took, (unsigned long long)st.connects, (unsigned long long)st.handles);
    return b.failed > 0 || b.ok == 0;
}

int main(int argc, char **argv)
{
    http_engine_opts ho;
    http_engine_opts_init(&ho);
    ho.model = getenv("SWARM_MODEL");
    char finish[32] = "";
    ho.on_finish = on_finish;
    ho.finish_ctx = finish;
    const char *prompt = "Once upon a time";
    swarm_request q;
    swarm_request_init(&q);
    q.id = 1;
    q.params.max_tokens = 64;
    int64_t timeout_ms = 60000;
    int health_only = 0, workers = 1;
    double bench_s = 0;
    swarm_kv stop = {"stop", NULL};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = http_engine_parse_opt(&ho, a);
        if (r < 0) {
            fprintf(stderr, "bad option %s\n", a);
            return 2;
        }
        if (r > 0)
            continue;
        if (strncmp(a, "--max-tokens=", 13) == 0)
            q.params.max_tokens = (uint32_t)strtoul(a + 13, NULL, 10);
        else if (strncmp(a, "--temperature=", 14) == 0)
            q.params.temperature = atof(a + 14);
        else if (strncmp(a, "--top-p=", 8) == 0)
            q.params.top_p = atof(a + 8);
        else if (strncmp(a, "--seed=", 7) == 0)
            q.params.seed = strtoull(a + 7, NULL, 10);
        else if (strncmp(a, "--stop=", 7) == 0)
            stop.value = a + 7;
        else if (strncmp(a, "--timeout-ms=", 13) == 0)
            timeout_ms = atoll(a + 13);
        else if (strncmp(a, "--bench=", 8) == 0)
            bench_s = atof(a + 8);
        else if (strncmp(a, "--workers=", 10) == 0)
            workers = atoi(a + 10);
        else if (strcmp(a, "--health") == 0)
            health_only = 1;
        else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "unknown option %s\n", a);
            return 2;
        } else if (ho.base_url == NULL)
            ho.base_url = a;
        else
            prompt = a;
    }
    if (ho.base_url == NULL) {
        fprintf(stderr, "usage: %s BASE_URL [prompt] [--model=M] [--api=chat|completions] ...\n",
                argv[0]);
        return 2;
    }
    swarm_engine *http = NULL, *e = NULL;
    http_engine *impl = NULL;
    int rc = http_engine_create(&http, &impl, &ho);
    if (rc != 0) {
        fprintf(stderr, "http engine: %s\n", swarm_strerror(rc));
        return 1;
    }
    if (health_only) {
        rc = swarm_engine_health(http);
        printf("health: %s\n", rc == 0 ? "ok" : swarm_err_name(rc));
        swarm_engine_destroy(http);
        return rc != 0;
    }
    if (bench_s > 0) {
        rc = run_bench(http, impl, prompt, bench_s, workers > 0 ? workers : 1);
        swarm_engine_destroy(http);
        return rc;
    }
    swarm_retry_opts ro;
    swarm_retry_opts_init(&ro);
    if ((rc = swarm_engine_retry_create(&e, http, &ro)) != 0) {
        swarm_engine_destroy(http);
        return 1;
    }
    if (stop.value != NULL) {
        q.params.extras = &stop;
        q.params.n_extras = 1;
    }
    q.payload = prompt;
    q.payload_len = strlen(prompt);
    q.deadline_ns = timeout_ms > 0 ? swarm_now_ns() + timeout_ms * MS : 0;
    swarm_response *r = NULL;
    swarm_response_create(&r, NULL);
    swarm_response_set_stream(r, print_chunk, NULL);
    rc = swarm_engine_infer(e, &q, r);
    swarm_response_info info = {.size = sizeof info};
    swarm_response_get_info(r, &info);
    printf("\n[%s%s%s; %u attempt(s); usage %llu in / %llu out; finish %s]\n", swarm_err_name(rc),
           rc ? ": " : "", swarm_response_error_message(r), info.attempts,
           (unsigned long long)info.input_units, (unsigned long long)info.output_units,
           finish[0] ? finish : "-");
    swarm_response_destroy(r);
    swarm_engine_destroy(e);
    return rc != 0;
}
