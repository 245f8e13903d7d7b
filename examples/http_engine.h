/* SPDX-License-Identifier: MIT */
/*
 * An engine for OpenAI-compatible HTTP servers (OpenAI, vLLM, llama.cpp's server, Ollama,
 * gateways): POST {base}/v1/chat/completions by default, legacy {base}/v1/completions as an
 * option. HTTP goes through libcurl and JSON through cJSON; libswarm itself stays libc + pthreads,
 * so this file lives in examples/ and is built only when both are found.
 *
 * Requests. The payload is either
 *   - a JSON array of chat messages ([{"role": "user", "content": "hi"}, ...]),
 *   - a JSON object with "messages" (its other keys, e.g. "tools", are passed through into the
 *     body unless the engine sets them itself), or
 *   - plain text: sent as one user message, after opts.system_prompt as a system message if set
 *     (the legacy API sends it as "prompt").
 * Parameters map to the body: params.model_version -> "model" (else opts.model), temperature,
 * top_p (only inside (0, 1)), max_tokens (when > 0), seed (when != 0); extras: "stop" becomes
 * "stop": [value], any other key is passed as JSON if its value parses as a JSON number, bool,
 * array or object, else as a string.
 *
 * Responses. Streamed deltas (server-sent events) are written with swarm_response_write() as
 * they arrive, so a stream callback sees them live; "usage" (prompt / completion tokens) becomes
 * the response's usage (without a usage object, output units count the content deltas and input
 * units stay 0); the finish reason ("stop", "length", ...) is handed to opts.on_finish.
 *
 * Errors, in the classes the retry and breaker decorators expect (include/swarm/engine.h):
 *   HTTP 429, 529                        SWARM_EOVERLOADED   (Retry-After / retry-after-ms kept
 *   HTTP 503, 500, 502, 504, other 5xx,                        as the retry-after hint)
 *        409, 425, connection refused,
 *        reset or dropped, a stream that
 *        ends without [DONE] and without
 *        a finish reason                 SWARM_EUNAVAILABLE
 *   HTTP 408, transfer timeout           SWARM_ETIMEDOUT
 *   the request's deadline               SWARM_ETIMEDOUT     (checked every 20 ms in transfer)
 *   the request's cancel token, or the
 *        stream callback asking to stop  SWARM_ECANCELED     (checked every 20 ms in transfer)
 *   HTTP 501                             SWARM_ENOTSUP
 *   other 4xx, a malformed URL           SWARM_EINVAL        (never retried, not counted)
 *   an unparsable 200 body, anything
 *        else                            SWARM_EINTERNAL
 * An error event inside a stream ({"error": {...}}, with or without "event: error") maps its
 * status, code or type the same way (rate_limit -> OVERLOADED, server_error / overloaded ->
 * UNAVAILABLE / OVERLOADED, invalid_request -> EINVAL) and fails the request after the output
 * already written; that output stays in the response, and the retry decorator never retries a
 * request whose output reached a stream callback.
 *
 * Connections. Each call takes a (curl easy + multi) handle pair from the engine's pool and gives
 * it back afterwards, so every worker thread reuses a kept-alive connection and a call does not
 * pay a TCP handshake (opts.reuse = 0 forbids reuse, for comparison). The pool grows to the
 * number of concurrent calls and is freed by swarm_engine_destroy().
 *
 * Thread safety: any number of concurrent infer calls. health() does one GET {base}{health_path}
 * (default /v1/models) bounded by 2 s.
 */
#ifndef SWARM_EXAMPLE_HTTP_ENGINE_H
#define SWARM_EXAMPLE_HTTP_ENGINE_H

#include <stdint.h>

#include <swarm/swarm.h>

enum { HTTP_API_CHAT = 0, HTTP_API_COMPLETIONS = 1 };

/** Called once per successful or failed request that got a finish reason, on the engine's
 *  thread: @p finish_reason is e.g. "stop" or "length", valid during the call only. */
typedef void (*http_finish_fn)(void *ctx, uint64_t request_id, const char *finish_reason);

typedef struct http_engine_opts {
    const char *base_url;      /**< "http://127.0.0.1:8080" or ".../v1"; required */
    const char *model;         /**< default model; NULL: "default" */
    const char *api_key;       /**< bearer token; NULL: $OPENAI_API_KEY if set; "": none */
    const char *system_prompt; /**< system message before a plain-text payload; NULL: none */
    const char *health_path;   /**< NULL: "/v1/models" */
    int api;                   /**< HTTP_API_CHAT (default) or HTTP_API_COMPLETIONS */
    int stream;                /**< 1 (default): ask for SSE streaming; 0: one JSON body */
    int stream_usage;          /**< 1 (default): ask for a usage event (stream_options) */
    int reuse;                 /**< 1 (default): keep connections alive; 0: new one per call */
    long connect_timeout_ms;   /**< default 5000 */
    http_finish_fn on_finish;  /**< optional */
    void *finish_ctx;          /**< passed to on_finish */
} http_engine_opts;

typedef struct http_engine_stats {
    uint64_t calls;    /**< infer calls that reached the network */
    uint64_t connects; /**< new TCP connections made (CURLINFO_NUM_CONNECTS summed) */
    uint64_t handles;  /**< handle pairs created (the pool's high-water mark) */
} http_engine_stats;

typedef struct http_engine http_engine;

/** Fills defaults (chat API, streaming with usage, reuse, 5 s connect timeout). */
void http_engine_opts_init(http_engine_opts *o);

/**
 * Parses one command-line option into @p o: --url=, --model=, --api-key=, --system=,
 * --api=chat|completions, --no-stream, --no-reuse, --health-path=. The strings are borrowed
 * from @p arg. @return 1 if consumed, 0 if not an HTTP option, -1 if malformed.
 */
int http_engine_parse_opt(http_engine_opts *o, const char *arg);

/**
 * Creates the engine (name "http"). @p impl (optional) receives the implementation for
 * http_engine_get_stats(), valid until the engine is destroyed.
 * @return 0; SWARM_EINVAL (NULL arguments, no base_url, bad api); SWARM_ENOMEM.
 */
int http_engine_create(swarm_engine **out, http_engine **impl, const http_engine_opts *o);

/** Copies the counters (relaxed atomics). */
void http_engine_get_stats(const http_engine *h, http_engine_stats *st);

/** Maps an HTTP status to the SWARM_E* class above (0 for 200). */
int http_engine_map_status(long status);

#endif /* SWARM_EXAMPLE_HTTP_ENGINE_H */
