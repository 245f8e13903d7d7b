/* SPDX-License-Identifier: MIT */
/*
 * An engine for OpenAI-compatible HTTP servers (llama.cpp server, vLLM, Ollama, ...):
 * POST {base}/v1/completions, streaming with server-sent events, the request's deadline and
 * cancel token mapped onto the transfer, and HTTP 429 / 503 mapped to SWARM_EOVERLOADED /
 * SWARM_EUNAVAILABLE with the Retry-After hint, so the retry and breaker decorators do the
 * right thing. HTTP goes through libcurl and JSON through cJSON; libswarm itself stays
 * libc + pthreads.
 *
 *   03_http_engine BASE_URL [prompt]      one streamed completion (e.g. http://127.0.0.1:8080)
 *   03_http_engine BASE_URL --selftest    the scenarios tests/openai_stub.py serves
 *
 * Environment: OPENAI_API_KEY (optional bearer token), SWARM_MODEL (default "default").
 */
#include <cJSON.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <swarm/swarm.h>

#define MS  1000000LL
#define SEC 1000000000LL

/* ---- the engine ---------------------------------------------------------------------------- */

#define POOL_MAX 16

typedef struct http_engine {
    char url[512];
    char model[128];
    char auth[512];
    int stream; /* 1: ask for SSE streaming (default) */
    pthread_mutex_t mu;
    CURL *pool[POOL_MAX]; /* idle easy handles: reusing them keeps connections alive */
    int n_pool;
} http_engine;

typedef struct xfer {
    const swarm_request *req;
    swarm_response *resp;
    CURL *curl;
    int stream;
    long status;
    char *buf; /* SSE line buffer, or the whole body when not streaming / on errors */
    size_t len, cap;
    int stop_rc; /* why we aborted the transfer ourselves: 0, or a swarm_err */
    int64_t retry_after_ns;
    uint64_t in_units, out_units;
    bool done;
} xfer;

static CURL *take_handle(http_engine *h)
{
    CURL *c = NULL;
    pthread_mutex_lock(&h->mu);
    if (h->n_pool > 0)
        c = h->pool[--h->n_pool];
    pthread_mutex_unlock(&h->mu);
    return c != NULL ? c : curl_easy_init();
}

static void give_handle(http_engine *h, CURL *c)
{
    curl_easy_reset(c); /* keeps the connection cache */
    pthread_mutex_lock(&h->mu);
    if (h->n_pool < POOL_MAX) {
        h->pool[h->n_pool++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&h->mu);
    if (c != NULL)
        curl_easy_cleanup(c);
}

static int buf_append(xfer *x, const char *p, size_t n)
{
    if (x->len + n + 1 > x->cap) {
        size_t ncap = x->cap ? x->cap * 2 : 4096;
        while (ncap < x->len + n + 1)
            ncap *= 2;
        char *nb = realloc(x->buf, ncap);
        if (nb == NULL)
            return -1;
        x->buf = nb;
        x->cap = ncap;
    }
    memcpy(x->buf + x->len, p, n);
    x->len += n;
    x->buf[x->len] = '\0';
    return 0;
}

/* Takes text and usage out of one completion object (a whole body or one SSE event). */
static int consume_json(xfer *x, const char *json)
{
    cJSON *root = cJSON_Parse(json);
    if (root == NULL)
        return SWARM_EINTERNAL;
    int rc = 0;
    cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
    cJSON *first = cJSON_IsArray(choices) ? cJSON_GetArrayItem(choices, 0) : NULL;
    cJSON *text = first ? cJSON_GetObjectItemCaseSensitive(first, "text") : NULL;
    if (cJSON_IsString(text) && text->valuestring[0] != '\0') {
        /* swarm_response_write copies: the cJSON tree can go right after. */
        rc = swarm_response_write(x->resp, text->valuestring, strlen(text->valuestring));
        if (x->stream && rc == 0)
            x->out_units++; /* one event, one token, until a usage object says otherwise */
    }
    cJSON *usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
    if (cJSON_IsObject(usage)) {
        cJSON *pt = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens");
        cJSON *ct = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens");
        if (cJSON_IsNumber(pt))
            x->in_units = (uint64_t)pt->valuedouble;
        if (cJSON_IsNumber(ct))
            x->out_units = (uint64_t)ct->valuedouble;
    }
    cJSON_Delete(root);
    return rc;
}

/* Handles every complete line of the SSE stream in the buffer. */
static int consume_sse(xfer *x)
{
    char *start = x->buf, *nl;
    int rc = 0;
    while (rc == 0 && (nl = memchr(start, '\n', x->len - (size_t)(start - x->buf))) != NULL) {
        *nl = '\0';
        if (nl > start && nl[-1] == '\r')
            nl[-1] = '\0';
        if (strncmp(start, "data:", 5) == 0) {
            const char *d = start + 5;
            while (*d == ' ')
                d++;
            if (strcmp(d, "[DONE]") == 0)
                x->done = true;
            else if (*d != '\0')
                rc = consume_json(x, d);
        }
        start = nl + 1;
    }
    size_t rest = x->len - (size_t)(start - x->buf);
    memmove(x->buf, start, rest);
    x->len = rest;
    x->buf[rest] = '\0';
    return rc;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    size_t len = size * n;
    if (len > 12 && strncasecmp(p, "retry-after:", 12) == 0) {
        /* Seconds (the HTTP-date form is rare from inference servers and is ignored). */
        double s = atof(p + 12);
        if (s > 0)
            x->retry_after_ns = (int64_t)(s * 1e9);
    }
    return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    size_t len = size * n;
    if (x->status == 0)
        curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &x->status);
    if (x->status != 200 || !x->stream) {
        /* Errors and plain bodies are parsed when the transfer ends (errors capped at 4 KiB). */
        if (x->status != 200 && x->len > 4096)
            return len;
        return buf_append(x, p, len) == 0 ? len : 0;
    }
    if (buf_append(x, p, len) != 0)
        return 0;
    int rc = consume_sse(x);
    if (rc != 0) {
        x->stop_rc = rc; /* e.g. the stream callback asked to stop: abort the transfer */
        return 0;
    }
    return len;
}

/* Polled by libcurl about once per second and on every chunk: the cancel token and deadline. */
static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    xfer *x = ud;
    int rc = swarm_request_should_stop(x->req);
    if (rc != 0) {
        x->stop_rc = rc;
        return 1;
    }
    return 0;
}

static char *build_body(const http_engine *h, const swarm_request *req, int stream)
{
    cJSON *o = cJSON_CreateObject();
    char *prompt = malloc((size_t)req->payload_len + 1);
    if (o == NULL || prompt == NULL) {
        cJSON_Delete(o);
        free(prompt);
        return NULL;
    }
    if (req->payload_len > 0)
        memcpy(prompt, req->payload, (size_t)req->payload_len);
    prompt[req->payload_len] = '\0';
    const swarm_infer_params *pp = &req->params;
    cJSON_AddStringToObject(o, "model", pp->model_version ? pp->model_version : h->model);
    cJSON_AddStringToObject(o, "prompt", prompt);
    free(prompt);
    if (pp->max_tokens > 0)
        cJSON_AddNumberToObject(o, "max_tokens", pp->max_tokens);
    cJSON_AddNumberToObject(o, "temperature", pp->temperature);
    if (pp->top_p > 0 && pp->top_p <= 1)
        cJSON_AddNumberToObject(o, "top_p", pp->top_p);
    if (pp->seed != 0)
        cJSON_AddNumberToObject(o, "seed", (double)pp->seed);
    for (uint32_t i = 0; i < pp->n_extras && pp->extras != NULL; i++)
        cJSON_AddStringToObject(o, pp->extras[i].key, pp->extras[i].value);
    cJSON_AddBoolToObject(o, "stream", stream);
    if (stream) {
        cJSON *so = cJSON_AddObjectToObject(o, "stream_options");
        cJSON_AddBoolToObject(so, "include_usage", 1);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static int map_http(xfer *x)
{
    char msg[200];
    const char *detail = x->buf ? x->buf : "";
    snprintf(msg, sizeof msg, "HTTP %ld: %.150s", x->status, detail);
    int code;
    switch (x->status) {
    case 429:
        code = SWARM_EOVERLOADED;
        break;
    case 503:
    case 502:
    case 504:
        code = SWARM_EUNAVAILABLE;
        break;
    case 400:
    case 401:
    case 403:
    case 404:
    case 413:
    case 422:
        code = SWARM_EINVAL; /* our request is wrong: retrying cannot help */
        break;
    default:
        code = SWARM_EINTERNAL;
        break;
    }
    swarm_response_set_error(x->resp, code, msg, x->retry_after_ns);
    return code;
}

static int http_infer(void *self, const swarm_request *req, swarm_response *resp)
{
    http_engine *h = self;
    int rc = swarm_request_should_stop(req);
    if (rc != 0)
        return rc;
    xfer x = {.req = req, .resp = resp, .stream = h->stream};
    char *body = build_body(h, req, x.stream);
    x.curl = take_handle(h);
    if (body == NULL || x.curl == NULL) {
        free(body);
        if (x.curl)
            curl_easy_cleanup(x.curl);
        return SWARM_ENOMEM;
    }
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (h->auth[0] != '\0')
        hdrs = curl_slist_append(hdrs, h->auth);
    CURL *c = x.curl;
    curl_easy_setopt(c, CURLOPT_URL, h->url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* we are called from worker threads */
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &x);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    if (req->deadline_ns != 0 && req->deadline_ns != INT64_MAX) {
        /* The deadline becomes the transfer's total timeout; the progress callback also
         * checks it, and the token, while bytes flow. */
        int64_t left_ms = (req->deadline_ns - swarm_now_ns()) / MS;
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(left_ms > 0 ? left_ms : 1));
    }
    CURLcode cc = curl_easy_perform(c);
    if (x.status == 0)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &x.status);
    if (x.stop_rc != 0) {
        rc = x.stop_rc;
    } else if (cc == CURLE_OPERATION_TIMEDOUT) {
        rc = SWARM_ETIMEDOUT;
    } else if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
               cc == CURLE_RECV_ERROR || cc == CURLE_SEND_ERROR || cc == CURLE_GOT_NOTHING ||
               cc == CURLE_PARTIAL_FILE) {
        swarm_response_set_error(resp, SWARM_EUNAVAILABLE, curl_easy_strerror(cc), 0);
        rc = SWARM_EUNAVAILABLE;
    } else if (cc != CURLE_OK) {
        swarm_response_set_error(resp, SWARM_EINTERNAL, curl_easy_strerror(cc), 0);
        rc = SWARM_EINTERNAL;
    } else if (x.status != 200) {
        rc = map_http(&x);
    } else if (!x.stream) {
        rc = x.buf ? consume_json(&x, x.buf) : SWARM_EINTERNAL;
    } else if (x.len > 0) {
        rc = consume_sse(&x);
    }
    if (rc == 0 || x.out_units > 0)
        swarm_response_set_usage(resp, x.in_units ? x.in_units : req->payload_len, x.out_units);
    curl_slist_free_all(hdrs);
    free(body);
    free(x.buf);
    give_handle(h, c);
    return rc;
}

static int http_health(void *self)
{
    (void)self;
    return 0; /* a real deployment would GET /health here (llama.cpp and vLLM serve one) */
}

static void http_destroy(void *self)
{
    http_engine *h = self;
    for (int i = 0; i < h->n_pool; i++)
        curl_easy_cleanup(h->pool[i]);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

static int http_engine_create(swarm_engine **out, const char *base_url, const char *model,
                              const char *api_key, int stream)
{
    static const swarm_engine_ops ops = {
        .version = SWARM_ENGINE_OPS_VERSION,
        .name = "http",
        .infer = http_infer,
        .health = http_health,
        .destroy = http_destroy,
    };
    http_engine *h = calloc(1, sizeof *h);
    if (h == NULL)
        return SWARM_ENOMEM;
    snprintf(h->url, sizeof h->url, "%s/v1/completions", base_url);
    snprintf(h->model, sizeof h->model, "%s", model ? model : "default");
    if (api_key != NULL && api_key[0] != '\0')
        snprintf(h->auth, sizeof h->auth, "Authorization: Bearer %.400s", api_key);
    h->stream = stream;
    pthread_mutex_init(&h->mu, NULL);
    int rc = swarm_engine_create(out, &ops, h, NULL);
    if (rc != 0)
        http_destroy(h);
    return rc;
}

/* ---- demo and self-test -------------------------------------------------------------------- */

static int print_chunk(void *ctx, uint64_t id, const void *chunk, size_t len)
{
    (void)ctx, (void)id;
    fwrite(chunk, 1, len, stdout);
    fflush(stdout);
    return 0;
}

typedef struct stop_after {
    int n, limit;
} stop_after;

static int stop_chunk(void *ctx, uint64_t id, const void *chunk, size_t len)
{
    (void)id, (void)chunk, (void)len;
    stop_after *s = ctx;
    return ++s->n >= s->limit;
}

static int failures;

#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                 \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static int call(swarm_engine *e, swarm_response *r, uint64_t id, const char *prompt,
                int64_t timeout_ns, swarm_cancel *tok)
{
    swarm_request q;
    swarm_request_init(&q);
    q.id = id;
    q.payload = prompt;
    q.payload_len = strlen(prompt);
    q.params.max_tokens = 32;
    q.params.temperature = 0.7;
    q.params.seed = 11;
    q.deadline_ns = timeout_ns > 0 ? swarm_now_ns() + timeout_ns : 0;
    q.cancel = tok;
    swarm_response_reset(r);
    return swarm_engine_infer(e, &q, r);
}

static void *fire_later(void *p)
{
    struct timespec ts = {0, 150 * MS};
    nanosleep(&ts, NULL);
    swarm_cancel_trigger(p);
    return NULL;
}

typedef struct par {
    swarm_engine *e;
    int id, ok;
} par;

static void *par_main(void *p)
{
    par *a = p;
    swarm_response *r = NULL;
    swarm_response_create(&r, NULL);
    char prompt[64];
    for (int i = 0; i < 5; i++) {
        snprintf(prompt, sizeof prompt, "thread %d call %d", a->id, i);
        if (call(a->e, r, (uint64_t)(1000 + a->id * 10 + i), prompt, 10 * SEC, NULL) == 0 &&
            strstr(swarm_response_data(r, NULL), prompt) != NULL)
            a->ok++;
    }
    swarm_response_destroy(r);
    return NULL;
}

static int selftest(const char *base)
{
    swarm_engine *plain = NULL, *stream = NULL, *retried = NULL, *inner = NULL;
    if (http_engine_create(&plain, base, "stub", NULL, 0) != 0 ||
        http_engine_create(&stream, base, "stub", "sk-test", 1) != 0 ||
        http_engine_create(&inner, base, "stub", NULL, 1) != 0)
        return 1;
    swarm_retry_opts ro;
    swarm_retry_opts_init(&ro);
    ro.base_ns = 10 * MS;
    ro.cap_ns = 50 * MS;
    if (swarm_engine_retry_create(&retried, inner, &ro) != 0)
        return 1;
    swarm_response *r = NULL;
    swarm_response_create(&r, NULL);
    swarm_response_info info = {.size = sizeof info};
    int rc;

    rc = call(plain, r, 1, "hello world", 5 * SEC, NULL);
    EXPECT(rc == 0, "%s %s", swarm_err_name(rc), swarm_response_error_message(r));
    EXPECT(strcmp(swarm_response_data(r, NULL), "Echo: hello world") == 0, "'%s'",
           (const char *)swarm_response_data(r, NULL));
    swarm_response_get_info(r, &info);
    EXPECT(info.output_units == 3 && info.input_units == 2, "usage %llu/%llu",
           (unsigned long long)info.input_units, (unsigned long long)info.output_units);
    printf("ok   non-streaming completion\n");

    rc = call(stream, r, 2, "stream me please", 5 * SEC, NULL);
    swarm_response_get_info(r, &info);
    EXPECT(rc == 0, "%s %s", swarm_err_name(rc), swarm_response_error_message(r));
    EXPECT(strcmp(swarm_response_data(r, NULL), "Echo: stream me please") == 0, "'%s'",
           (const char *)swarm_response_data(r, NULL));
    EXPECT(info.n_chunks == 4 && info.output_units == 4, "chunks %llu units %llu",
           (unsigned long long)info.n_chunks, (unsigned long long)info.output_units);
    printf("ok   streaming completion (%llu SSE chunks)\n", (unsigned long long)info.n_chunks);

    rc = call(stream, r, 3, "#429", 5 * SEC, NULL);
    swarm_response_get_info(r, &info);
    EXPECT(rc == SWARM_EOVERLOADED, "%s", swarm_err_name(rc));
    EXPECT(info.retry_after_ns == 2 * SEC, "retry_after %lld", (long long)info.retry_after_ns);
    printf("ok   429 -> SWARM_EOVERLOADED, Retry-After 2 s (%s)\n",
           swarm_response_error_message(r));

    rc = call(plain, r, 4, "#503", 5 * SEC, NULL);
    swarm_response_get_info(r, &info);
    EXPECT(rc == SWARM_EUNAVAILABLE, "%s", swarm_err_name(rc));
    EXPECT(info.retry_after_ns == 1 * SEC, "retry_after %lld", (long long)info.retry_after_ns);
    printf("ok   503 -> SWARM_EUNAVAILABLE, Retry-After 1 s\n");

    rc = call(plain, r, 5, "#400", 5 * SEC, NULL);
    EXPECT(rc == SWARM_EINVAL, "%s", swarm_err_name(rc));
    printf("ok   400 -> SWARM_EINVAL\n");

    int64_t t0 = swarm_now_ns();
    rc = call(stream, r, 6, "#slow", 300 * MS, NULL);
    int64_t took = swarm_now_ns() - t0;
    EXPECT(rc == SWARM_ETIMEDOUT, "%s", swarm_err_name(rc));
    EXPECT(took < 3 * SEC, "took %lld ms", (long long)(took / MS));
    printf("ok   slow stream, 300 ms deadline -> SWARM_ETIMEDOUT after %lld ms (partial '%s')\n",
           (long long)(took / MS), (const char *)swarm_response_data(r, NULL));

    swarm_cancel *tok = NULL;
    swarm_cancel_create(&tok, NULL);
    pthread_t th;
    pthread_create(&th, NULL, fire_later, tok);
    t0 = swarm_now_ns();
    rc = call(stream, r, 7, "#slow", 20 * SEC, tok);
    took = swarm_now_ns() - t0;
    pthread_join(th, NULL);
    EXPECT(rc == SWARM_ECANCELED, "%s", swarm_err_name(rc));
    EXPECT(took < 3 * SEC, "took %lld ms", (long long)(took / MS));
    printf("ok   cancel token fired after 150 ms -> SWARM_ECANCELED after %lld ms\n",
           (long long)(took / MS));
    swarm_cancel_destroy(tok);

    stop_after sa = {0, 2};
    swarm_response_set_stream(r, stop_chunk, &sa);
    rc = call(stream, r, 8, "#slow", 20 * SEC, NULL);
    swarm_response_set_stream(r, NULL, NULL);
    EXPECT(rc == SWARM_ECANCELED && sa.n == 2, "%s after %d chunks", swarm_err_name(rc), sa.n);
    printf("ok   stream callback stop after 2 chunks -> SWARM_ECANCELED\n");

    rc = call(retried, r, 9, "#flaky-a", 10 * SEC, NULL);
    swarm_response_get_info(r, &info);
    EXPECT(rc == 0 && info.attempts == 2, "%s attempts %u", swarm_err_name(rc), info.attempts);
    EXPECT(strcmp(swarm_response_data(r, NULL), "Echo: #flaky-a") == 0, "'%s'",
           (const char *)swarm_response_data(r, NULL));
    printf("ok   retry(http): 503 then 200 -> success in %u attempts\n", info.attempts);

    par ps[4];
    pthread_t pt[4];
    for (int i = 0; i < 4; i++) {
        ps[i] = (par){.e = retried, .id = i};
        pthread_create(&pt[i], NULL, par_main, &ps[i]);
    }
    int ok = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(pt[i], NULL);
        ok += ps[i].ok;
    }
    EXPECT(ok == 20, "%d of 20", ok);
    printf("ok   4 threads x 5 concurrent streamed calls\n");

    swarm_response_destroy(r);
    swarm_engine_destroy(plain);
    swarm_engine_destroy(stream);
    swarm_engine_destroy(retried);
    printf(failures ? "FAILED: %d\n" : "all http engine checks passed\n", failures);
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s BASE_URL [prompt | --selftest]\n", argv[0]);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc;
    if (argc > 2 && strcmp(argv[2], "--selftest") == 0) {
        rc = selftest(argv[1]);
    } else {
        swarm_engine *e = NULL, *t = NULL;
        http_engine_create(&e, argv[1], getenv("SWARM_MODEL"), getenv("OPENAI_API_KEY"), 1);
        swarm_engine_retry_create(&t, e, NULL);
        swarm_response *r = NULL;
        swarm_response_create(&r, NULL);
        swarm_response_set_stream(r, print_chunk, NULL);
        rc = call(t, r, 1, argc > 2 ? argv[2] : "Once upon a time", 60 * SEC, NULL);
        printf("\n[%s %s]\n", swarm_err_name(rc), swarm_response_error_message(r));
        swarm_response_destroy(r);
        swarm_engine_destroy(t);
        rc = rc != 0;
    }
    curl_global_cleanup();
    return rc;
}
