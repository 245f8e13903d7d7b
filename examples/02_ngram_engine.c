/* SPDX-License-Identifier: MIT */
/*
 * A real CPU engine: a character n-gram model trained at start-up on a text this example ships,
 * served through the libswarm engine contract and wrapped in the resilience decorators.
 * Tokens stream to stdout through the response's stream callback as they are generated.
 *
 *   02_ngram_engine ["prompt" [temperature [top_p [seed [max_tokens]]]]]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <swarm/swarm.h>

#include "ngram.h"

static int print_chunk(void *ctx, uint64_t id, const void *chunk, size_t len)
{
    (void)ctx;
    (void)id;
    fwrite(chunk, 1, len, stdout);
    fflush(stdout);
    return 0; /* keep going */
}

static int generate(swarm_engine *e, swarm_response *r, uint64_t id, const char *prompt,
                    double temperature, double top_p, uint64_t seed, uint32_t max_tokens)
{
    swarm_request q;
    swarm_request_init(&q);
    q.id = id;
    q.payload = prompt;
    q.payload_len = strlen(prompt);
    q.params.temperature = temperature;
    q.params.top_p = top_p;
    q.params.seed = seed;
    q.params.max_tokens = max_tokens;
    q.deadline_ns = swarm_now_ns() + 5 * 1000000000LL;
    swarm_response_reset(r);
    printf("--- T=%.2f top_p=%.2f seed=%llu ---\n%s", temperature, top_p, (unsigned long long)seed,
           prompt);
    int rc = swarm_engine_infer(e, &q, r);
    swarm_response_info info = {.size = sizeof info};
    swarm_response_get_info(r, &info);
    printf("\n[%s: %llu tokens in %.2f ms]\n", swarm_err_name(rc),
           (unsigned long long)info.output_units, (double)(info.end_ns - info.start_ns) / 1e6);
    return rc;
}

int main(int argc, char **argv)
{
    const char *prompt = argc > 1 ? argv[1] : "The scouts ";
    double temperature = argc > 2 ? atof(argv[2]) : 0.8;
    double top_p = argc > 3 ? atof(argv[3]) : 0.95;
    uint64_t seed = argc > 4 ? strtoull(argv[4], NULL, 10) : 42;
    uint32_t max_tokens = argc > 5 ? (uint32_t)atoi(argv[5]) : 160;

    int64_t t0 = swarm_now_ns();
    ngram_model *m = NULL;
    if (ngram_train(&m, ngram_corpus, strlen(ngram_corpus), 6) != 0)
        return 1;
    printf("trained a 6-gram model on %zu bytes: %zu entries in %.1f ms\n", strlen(ngram_corpus),
           ngram_size(m), (double)(swarm_now_ns() - t0) / 1e6);

    swarm_engine *engine = NULL, *timed = NULL, *resilient = NULL;
    if (ngram_engine_create(&engine, m) != 0)
        return 1;
    swarm_timeout_opts to;
    swarm_timeout_opts_init(&to);
    to.timeout_ns = 2 * 1000000000LL;
    if (swarm_engine_timeout_create(&timed, engine, &to) != 0 ||
        swarm_engine_retry_create(&resilient, timed, NULL) != 0)
        return 1;
    printf("engine: %s\n", swarm_engine_name(resilient));

    swarm_response *r = NULL;
    if (swarm_response_create(&r, NULL) != 0)
        return 1;
    swarm_response_set_stream(r, print_chunk, NULL);

    int rc = generate(resilient, r, 1, prompt, temperature, top_p, seed, max_tokens);
    if (argc <= 1) {
        /* A short tour: greedy, hot, and the same seed twice (identical output). */
        rc |= generate(resilient, r, 2, "A good worker pool ", 0.0, 1.0, 1, 120);
        rc |= generate(resilient, r, 3, "In the winter ", 1.3, 0.9, 7, 120);
        char first[256];
        rc |= generate(resilient, r, 4, "The queue ", 0.9, 0.9, 99, 80);
        snprintf(first, sizeof first, "%s", (const char *)swarm_response_data(r, NULL));
        rc |= generate(resilient, r, 5, "The queue ", 0.9, 0.9, 99, 80);
        if (strcmp(first, swarm_response_data(r, NULL)) != 0) {
            fprintf(stderr, "same seed gave different output\n");
            rc = 1;
        }
    }
    swarm_response_destroy(r);
    swarm_engine_destroy(resilient);
    return rc == 0 ? 0 : 1;
}
