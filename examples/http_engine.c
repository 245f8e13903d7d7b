/* SPDX-License-Identifier: MIT */
/* The OpenAI-compatible HTTP engine; the contract is in http_engine.h. */
#include "http_engine.h"

#include <cJSON.h>
#include <curl/curl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MS 1000000LL

/* How often a running transfer re-checks the request's token and deadline. */
#define POLL_MS 20
/* Error bodies are kept for the message only; plain bodies up to this size. */
#define ERR_BODY_MAX 4096
#define BODY_MAX     ((size_t)64 << 20)
#define HEALTH_MS    2000

/* A pooled connection: the easy handle runs inside its own multi handle, whose connection cache
 * keeps the kept-alive connection between calls. */
typedef struct conn {
    CURL *easy;
    CURLM *multi;
    struct conn *next;
} conn;

struct http_engine {
    char url[600];    /* the completions endpoint */
    char health[600]; /* the health URL */
    char model[128];
    char *system_prompt;
    int api, stream, stream_usage, reuse;
    long connect_timeout_ms;
    http_finish_fn on_finish;
    void *finish_ctx;
    struct curl_slist *headers; /* built once, read-only afterwards */
    pthread_mutex_t mu;         /* guards idle */
    conn *idle;
    _Atomic uint64_t calls, connects, handles;
};

typedef struct xfer {
    http_engine *h;
    const swarm_request *req;
    swarm_response *resp;
    CURL *curl;
    long status;
    bool streaming; /* the 200 response is text/event-stream (decided on the first bytes) */
    char *buf;      /* SSE line buffer, or the whole body */
    size_t len, cap;
    char *event; /* SSE: data lines of the event being assembled */
    size_t ev_len, ev_cap;
    char ev_name[32]; /* SSE "event:" field */
    int stop_rc;      /* why we aborted the transfer ourselves: 0, or a swarm_err */
    int err_rc;       /* an error object seen in a 200 body or stream */
    char err_msg[200];
    int64_t retry_after_ns;
    uint64_t in_units, out_units, deltas;
    bool have_usage, done;
    char finish[32];
} xfer;

/* ---- options ------------------------------------------------------------------------------- */

void http_engine_opts_init(http_engine_opts *o)
{
    memset(o, 0, sizeof *o);
    o->api = HTTP_API_CHAT;
    o->stream = 1;
    o->stream_usage = 1;
    o->reuse = 1;
    o->connect_timeout_ms = 5000;
}

int http_engine_parse_opt(http_engine_opts *o, const char *a)
{
#define VAL(k) (strncmp(a, k "=", sizeof(k)) == 0 ? a + sizeof(k) : NULL)
    const char *v;
    if ((v = VAL("--url")) != NULL)
        o->base_url = v;
    else if ((v = VAL("--model")) != NULL)
        o->model = v;
    else if ((v = VAL("--api-key")) != NULL)
        o->api_key = v;
    else if ((v = VAL("--system")) != NULL)
        o->system_prompt = v;
    else if ((v = VAL("--health-path")) != NULL)
        o->health_path = v;
    else if ((v = VAL("--api")) != NULL) {
        if (strcmp(v, "chat") == 0)
            o->api = HTTP_API_CHAT;
        else if (strcmp(v, "completions") == 0)
            o->api = HTTP_API_COMPLETIONS;
        else
            return -1;
    } else if (strcmp(a, "--no-stream") == 0)
        o->stream = 0;
    else if (strcmp(a, "--no-reuse") == 0)
        o->reuse = 0;
    else
        return 0;
    return 1;
#undef VAL
}

/* ---- status mapping ------------------------------------------------------------------------ */

int http_engine_map_status(long status)
{
    if (status == 200)
        return 0;
    if (status == 429 || status == 529)
        return SWARM_EOVERLOADED;
    if (status == 408)
        return SWARM_ETIMEDOUT;
    if (status == 409 || status == 425)
        return SWARM_EUNAVAILABLE;
    if (status == 501)
        return SWARM_ENOTSUP;
    if (status >= 500 && status <= 599)
        return SWARM_EUNAVAILABLE;
    if (status >= 400 && status <= 499)
        return SWARM_EINVAL; /* our request is wrong: retrying cannot help */
    return SWARM_EINTERNAL;
}

/* An OpenAI-style error object, in a body or inside a stream: its class from a numeric status or
 * code, else from the type/code words. */
static int map_error_object(const cJSON *err, char *msg, size_t msg_len)
{
    const cJSON *m = NULL, *type = NULL, *code = NULL, *status = NULL;
    if (cJSON_IsObject(err)) {
        m = cJSON_GetObjectItemCaseSensitive(err, "message");
        type = cJSON_GetObjectItemCaseSensitive(err, "type");
        code = cJSON_GetObjectItemCaseSensitive(err, "code");
        status = cJSON_GetObjectItemCaseSensitive(err, "status");
    }
    snprintf(msg, msg_len, "stream error: %.150s",
             cJSON_IsString(m)     ? m->valuestring
             : cJSON_IsString(err) ? err->valuestring
                                   : "(no message)");
    if (cJSON_IsNumber(status) && status->valuedouble >= 400)
        return http_engine_map_status((long)status->valuedouble);
    if (cJSON_IsNumber(code) && code->valuedouble >= 400)
        return http_engine_map_status((long)code->valuedouble);
    const char *words[2] = {cJSON_IsString(type) ? type->valuestring : "",
                            cJSON_IsString(code) ? code->valuestring : ""};
    for (int i = 0; i < 2; i++) {
        const char *w = words[i];
        if (strstr(w, "rate_limit") || strstr(w, "overloaded") || strstr(w, "quota"))
            return SWARM_EOVERLOADED;
        if (strstr(w, "server_error") || strstr(w, "unavailable") || strstr(w, "timeout"))
            return strstr(w, "timeout") ? SWARM_ETIMEDOUT : SWARM_EUNAVAILABLE;
        if (strstr(w, "invalid") || strstr(w, "authentication") || strstr(w, "permission") ||
            strstr(w, "not_found"))
            return SWARM_EINVAL;
    }
    return SWARM_EINTERNAL;
}

/* ---- handle pool --------------------------------------------------------------------------- */

static conn *take_conn(http_engine *h)
{
    pthread_mutex_lock(&h->mu);
    conn *c = h->idle;
    if (c != NULL)
        h->idle = c->next;
    pthread_mutex_unlock(&h->mu);
    if (c != NULL)
        return c;
    c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->easy = curl_easy_init();
    c->multi = curl_multi_init();
    if (c->easy == NULL || c->multi == NULL) {
        if (c->easy)
            curl_easy_cleanup(c->easy);
        if (c->multi)
            curl_multi_cleanup(c->multi);
        free(c);
        return NULL;
    }
    atomic_fetch_add_explicit(&h->handles, 1, memory_order_relaxed);
    return c;
}

static void give_conn(http_engine *h, conn *c)
{
    curl_easy_reset(c->easy); /* options only: the multi keeps the connection */
    pthread_mutex_lock(&h->mu);
    c->next = h->idle;
    h->idle = c;
    pthread_mutex_unlock(&h->mu);
}

/* ---- buffers ------------------------------------------------------------------------------- */

static int grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 1024;
    while (ncap < need)
        ncap *= 2;
    char *nb = realloc(*buf, ncap);
    if (nb == NULL)
        return -1;
    *buf = nb;
    *cap = ncap;
    return 0;
}

static int buf_append(xfer *x, const char *p, size_t n)
{
    if (grow(&x->buf, &x->cap, x->len + n + 1) != 0)
        return -1;
    memcpy(x->buf + x->len, p, n);
    x->len += n;
    x->buf[x->len] = '\0';
    return 0;
}

/* ---- response parsing ---------------------------------------------------------------------- */

static void take_usage(xfer *x, const cJSON *root)
{
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
    if (!cJSON_IsObject(usage))
        return;
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens");
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens");
    if (cJSON_IsNumber(pt) && pt->valuedouble >= 0)
        x->in_units = (uint64_t)pt->valuedouble;
    if (cJSON_IsNumber(ct) && ct->valuedouble >= 0)
        x->out_units = (uint64_t)ct->valuedouble;
    x->have_usage = cJSON_IsNumber(pt) || cJSON_IsNumber(ct);
}

/* One completion object: a whole body, or one streamed chunk. Writes its text, keeps usage and
 * the finish reason, records an error object. Returns 0 or what swarm_response_write returned. */
static int consume_json(xfer *x, const char *json, bool chunk)
{
    cJSON *root = cJSON_Parse(json);
    if (root == NULL) {
        if (x->err_rc == 0) {
            x->err_rc = SWARM_EINTERNAL;
            snprintf(x->err_msg, sizeof x->err_msg, "unparsable %s: %.120s",
                     chunk ? "stream event" : "body", json);
        }
        return 0;
    }
    int rc = 0;
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (err != NULL && !cJSON_IsNull(err)) {
        if (x->err_rc == 0)
            x->err_rc = map_error_object(err, x->err_msg, sizeof x->err_msg);
        cJSON_Delete(root);
        return 0;
    }
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
    const cJSON *first = cJSON_IsArray(choices) ? cJSON_GetArrayItem(choices, 0) : NULL;
    if (first != NULL) {
        const cJSON *text = NULL;
        if (x->h->api == HTTP_API_COMPLETIONS) {
            text = cJSON_GetObjectItemCaseSensitive(first, "text");
        } else {
            const cJSON *msg = cJSON_GetObjectItemCaseSensitive(first, chunk ? "delta" : "message");
            text = cJSON_IsObject(msg) ? cJSON_GetObjectItemCaseSensitive(msg, "content") : NULL;
        }
        if (cJSON_IsString(text) && text->valuestring[0] != '\0') {
            /* swarm_response_write copies: the cJSON tree can go right after. */
            rc = swarm_response_write(x->resp, text->valuestring, strlen(text->valuestring));
            x->deltas++;
        }
        const cJSON *fr = cJSON_GetObjectItemCaseSensitive(first, "finish_reason");
        if (cJSON_IsString(fr))
            snprintf(x->finish, sizeof x->finish, "%s", fr->valuestring);
    } else if (!chunk && !cJSON_IsArray(choices)) {
        if (x->err_rc == 0) {
            x->err_rc = SWARM_EINTERNAL;
            snprintf(x->err_msg, sizeof x->err_msg, "no choices in the response: %.120s", json);
        }
    }
    take_usage(x, root);
    cJSON_Delete(root);
    return rc;
}

/* Dispatches the assembled SSE event. */
static int sse_dispatch(xfer *x)
{
    int rc = 0;
    if (x->ev_len > 0) {
        x->event[x->ev_len] = '\0';
        if (strcmp(x->event, "[DONE]") == 0) {
            x->done = true;
        } else if (strcmp(x->ev_name, "error") == 0 && x->event[0] != '{') {
            if (x->err_rc == 0) {
                x->err_rc = SWARM_EUNAVAILABLE;
                snprintf(x->err_msg, sizeof x->err_msg, "stream error: %.150s", x->event);
            }
        } else {
            rc = consume_json(x, x->event, true);
            if (strcmp(x->ev_name, "error") == 0 && x->err_rc == 0) {
                x->err_rc = SWARM_EUNAVAILABLE;
                snprintf(x->err_msg, sizeof x->err_msg, "stream error event");
            }
        }
    }
    x->ev_len = 0;
    x->ev_name[0] = '\0';
    return rc;
}

/* One SSE line (without its end of line). */
static int sse_line(xfer *x, char *line)
{
    if (line[0] == '\0')
        return sse_dispatch(x); /* a blank line ends the event */
    if (line[0] == ':')
        return 0; /* a comment (keep-alive ping) */
    char *colon = strchr(line, ':');
    const char *val = "";
    if (colon != NULL) {
        *colon = '\0';
        val = colon + 1;
        if (*val == ' ')
            val++;
    }
    if (strcmp(line, "data") == 0) {
        size_t n = strlen(val);
        if (grow(&x->event, &x->ev_cap, x->ev_len + n + 2) != 0)
            return SWARM_ENOMEM;
        if (x->ev_len > 0)
            x->event[x->ev_len++] = '\n';
        memcpy(x->event + x->ev_len, val, n);
        x->ev_len += n;
    } else if (strcmp(line, "event") == 0) {
        snprintf(x->ev_name, sizeof x->ev_name, "%s", val);
    }
    return 0;
}

/* Handles every complete line in the buffer; keeps the incomplete tail. */
static int consume_sse(xfer *x)
{
    char *start = x->buf, *nl;
    int rc = 0;
    while (rc == 0 && (nl = memchr(start, '\n', x->len - (size_t)(start - x->buf))) != NULL) {
        *nl = '\0';
        if (nl > start && nl[-1] == '\r')
            nl[-1] = '\0';
        rc = sse_line(x, start);
        start = nl + 1;
    }
    size_t rest = x->len - (size_t)(start - x->buf);
    memmove(x->buf, start, rest);
    x->len = rest;
    if (x->buf != NULL)
        x->buf[rest] = '\0';
    return rc;
}

/* ---- libcurl callbacks --------------------------------------------------------------------- */

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    size_t len = size * n;
    char line[256];
    size_t k = len < sizeof line - 1 ? len : sizeof line - 1;
    memcpy(line, p, k);
    line[k] = '\0';
    if (strncasecmp(line, "HTTP/", 5) == 0) {
        x->retry_after_ns = 0; /* a new response (e.g. after 100-continue) */
    } else if (strncasecmp(line, "retry-after-ms:", 15) == 0) {
        double ms = atof(line + 15);
        if (ms > 0 && ms < 1e12)
            x->retry_after_ns = (int64_t)(ms * 1e6);
    } else if (strncasecmp(line, "retry-after:", 12) == 0 && x->retry_after_ns == 0) {
        const char *v = line + 12;
        while (*v == ' ')
            v++;
        char *end = NULL;
        double s = strtod(v, &end);
        if (end != v && s >= 0 && s < 1e9) {
            x->retry_after_ns = (int64_t)(s * 1e9);
        } else {
            /* The HTTP-date form: the time left until then. */
            time_t when = curl_getdate(v, NULL);
            time_t now = time(NULL);
            if (when != (time_t)-1 && when > now && when - now < 1000000000)
                x->retry_after_ns = (int64_t)(when - now) * 1000 * MS;
        }
    }
    return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    size_t len = size * n;
    if (x->status == 0) {
        curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &x->status);
        const char *ct = NULL;
        curl_easy_getinfo(x->curl, CURLINFO_CONTENT_TYPE, &ct);
        x->streaming = x->status == 200 && ct != NULL && strstr(ct, "text/event-stream") != NULL;
    }
    if (!x->streaming) {
        /* Errors and plain bodies are parsed when the transfer ends. */
        size_t cap = x->status == 200 ? BODY_MAX : ERR_BODY_MAX;
        if (x->len + len > cap)
            return x->status == 200 ? 0 : len;
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

/* ---- the request body ---------------------------------------------------------------------- */

static cJSON *user_messages(const http_engine *h, const char *text)
{
    cJSON *msgs = cJSON_CreateArray();
    if (h->system_prompt != NULL) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "role", "system");
        cJSON_AddStringToObject(s, "content", h->system_prompt);
        cJSON_AddItemToArray(msgs, s);
    }
    cJSON *u = cJSON_CreateObject();
    cJSON_AddStringToObject(u, "role", "user");
    cJSON_AddStringToObject(u, "content", text);
    cJSON_AddItemToArray(msgs, u);
    return msgs;
}

static char *build_body(const http_engine *h, const swarm_request *req)
{
    char *text = malloc((size_t)req->payload_len + 1);
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || text == NULL) {
        cJSON_Delete(o);
        free(text);
        return NULL;
    }
    if (req->payload_len > 0)
        memcpy(text, req->payload, (size_t)req->payload_len);
    text[req->payload_len] = '\0';
    const swarm_infer_params *pp = &req->params;
    cJSON_AddStringToObject(o, "model", pp->model_version ? pp->model_version : h->model);
    cJSON *payload_obj = NULL;
    if (h->api == HTTP_API_CHAT) {
        /* A JSON payload carries the messages itself; anything else is one user message. */
        const char *t = text;
        while (*t == ' ' || *t == '\n' || *t == '\t' || *t == '\r')
            t++;
        cJSON *pj = (*t == '[' || *t == '{') ? cJSON_Parse(t) : NULL;
        if (cJSON_IsArray(pj)) {
            cJSON_AddItemToObject(o, "messages", pj);
        } else if (cJSON_IsObject(pj) &&
                   cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(pj, "messages"))) {
            cJSON_AddItemToObject(o, "messages",
                                  cJSON_DetachItemFromObjectCaseSensitive(pj, "messages"));
            payload_obj = pj;
        } else {
            cJSON_Delete(pj);
            cJSON_AddItemToObject(o, "messages", user_messages(h, text));
        }
    } else {
        cJSON_AddStringToObject(o, "prompt", text);
    }
    free(text);
    if (pp->max_tokens > 0)
        cJSON_AddNumberToObject(o, "max_tokens", pp->max_tokens);
    cJSON_AddNumberToObject(o, "temperature", pp->temperature);
    if (pp->top_p > 0 && pp->top_p < 1)
        cJSON_AddNumberToObject(o, "top_p", pp->top_p);
    if (pp->seed != 0)
        cJSON_AddNumberToObject(o, "seed", (double)pp->seed);
    for (uint32_t i = 0; i < pp->n_extras && pp->extras != NULL; i++) {
        const swarm_kv *kv = &pp->extras[i];
        if (kv->key == NULL || kv->value == NULL)
            continue;
        cJSON_DeleteItemFromObjectCaseSensitive(o, kv->key);
        if (strcmp(kv->key, "stop") == 0) {
            cJSON *stop = cJSON_AddArrayToObject(o, "stop");
            cJSON_AddItemToArray(stop, cJSON_CreateString(kv->value));
            continue;
        }
        cJSON *v = cJSON_Parse(kv->value);
        if (v != NULL && !cJSON_IsString(v) && !cJSON_IsNull(v))
            cJSON_AddItemToObject(o, kv->key, v);
        else {
            cJSON_Delete(v);
            cJSON_AddStringToObject(o, kv->key, kv->value);
        }
    }
    /* The payload object's other keys (tools, response_format, ...) unless already set. */
    if (payload_obj != NULL) {
        cJSON *it = payload_obj->child;
        while (it != NULL) {
            cJSON *next = it->next;
            if (it->string != NULL && strcmp(it->string, "stream") != 0 &&
                strcmp(it->string, "stream_options") != 0 && !cJSON_HasObjectItem(o, it->string)) {
                cJSON *d = cJSON_DetachItemViaPointer(payload_obj, it);
                cJSON_AddItemToObject(o, d->string, d);
            }
            it = next;
        }
        cJSON_Delete(payload_obj);
    }
    cJSON_AddBoolToObject(o, "stream", h->stream);
    if (h->stream && h->stream_usage) {
        cJSON *so = cJSON_AddObjectToObject(o, "stream_options");
        cJSON_AddBoolToObject(so, "include_usage", 1);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* ---- transfers ----------------------------------------------------------------------------- */

/* Milliseconds until @p deadline_ns (at least 0), without overflow for any deadline. */
static int64_t ms_left(int64_t deadline_ns)
{
    int64_t now = swarm_now_ns();
    if (deadline_ns <= now)
        return 0;
    uint64_t left = (uint64_t)deadline_ns - (uint64_t)now; /* > 0 and fits: no wrap */
    return (int64_t)(left / (uint64_t)MS);
}

static int map_curl(CURLcode cc)
{
    switch (cc) {
    case CURLE_OK:
        return 0;
    case CURLE_OPERATION_TIMEDOUT:
        return SWARM_ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return SWARM_EUNAVAILABLE;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return SWARM_EINVAL;
    case CURLE_OUT_OF_MEMORY:
        return SWARM_ENOMEM;
    default:
        return SWARM_EINTERNAL;
    }
}

/* Runs the transfer in the connection's multi handle, re-checking the request's token and
 * deadline every POLL_MS so that both cut a stalled stream promptly. */
static CURLcode perform(conn *c, xfer *x)
{
    CURLcode cc = CURLE_OK;
    if (curl_multi_add_handle(c->multi, c->easy) != CURLM_OK)
        return CURLE_FAILED_INIT;
    for (;;) {
        int running = 0;
        CURLMcode mc = curl_multi_perform(c->multi, &running);
        if (mc != CURLM_OK) {
            cc = CURLE_FAILED_INIT;
            break;
        }
        if (running == 0) {
            int q = 0;
            CURLMsg *m;
            while ((m = curl_multi_info_read(c->multi, &q)) != NULL)
                if (m->msg == CURLMSG_DONE && m->easy_handle == c->easy)
                    cc = m->data.result;
            break;
        }
        if (x->stop_rc != 0) {
            cc = CURLE_ABORTED_BY_CALLBACK;
            break;
        }
        int stop = x->req != NULL ? swarm_request_should_stop(x->req) : 0;
        if (stop != 0) {
            x->stop_rc = stop;
            cc = CURLE_ABORTED_BY_CALLBACK;
            break;
        }
        int wait_ms = POLL_MS;
        if (x->req != NULL && x->req->deadline_ns != 0 && x->req->deadline_ns != INT64_MAX) {
            int64_t left = ms_left(x->req->deadline_ns) + 1;
            if (left < wait_ms)
                wait_ms = left > 0 ? (int)left : 0;
        }
        curl_multi_poll(c->multi, NULL, 0, wait_ms, NULL);
    }
    curl_multi_remove_handle(c->multi, c->easy);
    return cc;
}

static void common_opts(http_engine *h, conn *c, xfer *x, const char *url)
{
    CURL *e = c->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L); /* we are called from worker threads */
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    if (!h->reuse) {
        curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    }
}

static void finish_xfer(http_engine *h, conn *c, xfer *x)
{
    long nc = 0;
    if (curl_easy_getinfo(c->easy, CURLINFO_NUM_CONNECTS, &nc) == CURLE_OK && nc > 0)
        atomic_fetch_add_explicit(&h->connects, (uint64_t)nc, memory_order_relaxed);
    free(x->buf);
    free(x->event);
    give_conn(h, c);
}

static int http_infer(void *self, const swarm_request *req, swarm_response *resp)
{
    http_engine *h = self;
    int rc = swarm_request_should_stop(req);
    if (rc != 0)
        return rc;
    char *body = build_body(h, req);
    conn *c = body != NULL ? take_conn(h) : NULL;
    if (c == NULL) {
        free(body);
        return SWARM_ENOMEM;
    }
    atomic_fetch_add_explicit(&h->calls, 1, memory_order_relaxed);
    xfer x = {.h = h, .req = req, .resp = resp, .curl = c->easy};
    common_opts(h, c, &x, h->url);
    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, body);
    if (req->deadline_ns != 0 && req->deadline_ns != INT64_MAX) {
        /* The deadline also bounds the transfer inside libcurl (connect included). */
        int64_t left_ms = ms_left(req->deadline_ns);
        curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS,
                         (long)(left_ms <= 0         ? 1
                                : left_ms > LONG_MAX ? LONG_MAX
                                                     : left_ms));
    }
    CURLcode cc = perform(c, &x);
    if (x.status == 0)
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &x.status);
    char msg[256];
    msg[0] = '\0';
    if (x.stop_rc != 0) {
        rc = x.stop_rc; /* token, deadline, or the stream callback */
        snprintf(msg, sizeof msg, "%s",
                 rc == SWARM_ETIMEDOUT   ? "deadline passed during the call"
                 : rc == SWARM_ECANCELED ? "canceled during the call"
                                         : "stopped");
    } else if (cc != CURLE_OK) {
        rc = map_curl(cc);
        snprintf(msg, sizeof msg, "%s", curl_easy_strerror(cc));
    } else if (x.status != 200) {
        rc = http_engine_map_status(x.status);
        snprintf(msg, sizeof msg, "HTTP %ld: %.200s", x.status, x.buf ? x.buf : "");
    } else {
        if (x.streaming) {
            if (x.len > 0) /* a last line without its newline */
                rc = buf_append(&x, "\n", 1) == 0 ? consume_sse(&x) : SWARM_ENOMEM;
            if (rc == 0)
                rc = sse_dispatch(&x);
        } else if (x.buf != NULL) {
            rc = consume_json(&x, x.buf, false);
        } else {
            x.err_rc = SWARM_EINTERNAL;
            snprintf(x.err_msg, sizeof x.err_msg, "empty body");
        }
        if (rc == 0 && x.err_rc != 0) {
            rc = x.err_rc;
            snprintf(msg, sizeof msg, "%s", x.err_msg);
        } else if (rc == 0 && x.streaming && !x.done && x.finish[0] == '\0') {
            rc = SWARM_EUNAVAILABLE;
            snprintf(msg, sizeof msg, "stream ended without [DONE]");
        }
    }
    if (rc != 0 && rc != SWARM_ECANCELED && msg[0] != '\0')
        swarm_response_set_error(resp, rc, msg, x.retry_after_ns);
    else if (rc == SWARM_ECANCELED)
        swarm_response_set_error(resp, rc, msg, 0);
    if (x.have_usage)
        swarm_response_set_usage(resp, x.in_units, x.out_units);
    else if (x.deltas > 0)
        swarm_response_set_usage(resp, 0, x.deltas);
    if (x.finish[0] != '\0' && h->on_finish != NULL)
        h->on_finish(h->finish_ctx, req->id, x.finish);
    free(body);
    finish_xfer(h, c, &x);
    return rc;
}

static int http_health(void *self)
{
    http_engine *h = self;
    conn *c = take_conn(h);
    if (c == NULL)
        return SWARM_ENOMEM;
    xfer x = {.h = h, .curl = c->easy};
    common_opts(h, c, &x, h->health);
    curl_easy_setopt(c->easy, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS, (long)HEALTH_MS);
    CURLcode cc = perform(c, &x);
    if (x.status == 0)
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &x.status);
    int rc = cc != CURLE_OK ? map_curl(cc) : http_engine_map_status(x.status);
    finish_xfer(h, c, &x);
    return rc;
}

static void http_destroy(void *self)
{
    http_engine *h = self;
    while (h->idle != NULL) {
        conn *c = h->idle;
        h->idle = c->next;
        curl_easy_cleanup(c->easy);
        curl_multi_cleanup(c->multi);
        free(c);
    }
    curl_slist_free_all(h->headers);
    pthread_mutex_destroy(&h->mu);
    free(h->system_prompt);
    free(h);
}

static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

int http_engine_create(swarm_engine **out, http_engine **impl, const http_engine_opts *o)
{
    static const swarm_engine_ops ops = {
        .version = SWARM_ENGINE_OPS_VERSION,
        .name = "http",
        .infer = http_infer,
        .health = http_health,
        .destroy = http_destroy,
    };
    if (out == NULL || o == NULL || o->base_url == NULL || o->base_url[0] == '\0' ||
        (o->api != HTTP_API_CHAT && o->api != HTTP_API_COMPLETIONS))
        return SWARM_EINVAL;
    pthread_once(&global_once, global_init);
    http_engine *h = calloc(1, sizeof *h);
    if (h == NULL)
        return SWARM_ENOMEM;
    /* Accept the base with or without the OpenAI-style "/v1" suffix. */
    char base[512];
    snprintf(base, sizeof base, "%s", o->base_url);
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        base[--bl] = '\0';
    if (bl >= 3 && strcmp(base + bl - 3, "/v1") == 0)
        base[bl - 3] = '\0';
    snprintf(h->url, sizeof h->url, "%s%s", base,
             o->api == HTTP_API_CHAT ? "/v1/chat/completions" : "/v1/completions");
    snprintf(h->health, sizeof h->health, "%s%s", base,
             o->health_path != NULL ? o->health_path : "/v1/models");
    snprintf(h->model, sizeof h->model, "%s", o->model != NULL ? o->model : "default");
    h->system_prompt = o->system_prompt != NULL ? strdup(o->system_prompt) : NULL;
    h->api = o->api;
    h->stream = o->stream != 0;
    h->stream_usage = o->stream_usage != 0;
    h->reuse = o->reuse != 0;
    h->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 5000;
    h->on_finish = o->on_finish;
    h->finish_ctx = o->finish_ctx;
    pthread_mutex_init(&h->mu, NULL);
    const char *key = o->api_key != NULL ? o->api_key : getenv("OPENAI_API_KEY");
    h->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (h->headers != NULL)
        h->headers = curl_slist_append(h->headers, "Accept: application/json, text/event-stream");
    if (h->headers != NULL && key != NULL && key[0] != '\0') {
        char auth[600];
        snprintf(auth, sizeof auth, "Authorization: Bearer %.500s", key);
        struct curl_slist *n = curl_slist_append(h->headers, auth);
        if (n == NULL) {
            curl_slist_free_all(h->headers);
            h->headers = NULL;
        } else {
            h->headers = n;
        }
    }
    if (h->headers == NULL || (o->system_prompt != NULL && h->system_prompt == NULL)) {
        http_destroy(h);
        return SWARM_ENOMEM;
    }
    int rc = swarm_engine_create(out, &ops, h, NULL);
    if (rc != 0) {
        http_destroy(h);
        return rc;
    }
    if (impl != NULL)
        *impl = h;
    return 0;
}

void http_engine_get_stats(const http_engine *h, http_engine_stats *st)
{
    http_engine *m = (http_engine *)h;
    st->calls = atomic_load_explicit(&m->calls, memory_order_relaxed);
    st->connects = atomic_load_explicit(&m->connects, memory_order_relaxed);
    st->handles = atomic_load_explicit(&m->handles, memory_order_relaxed);
}
