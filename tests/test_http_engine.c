/* SPDX-License-Identifier: MIT */
/*
 * The HTTP engine (examples/http_engine.c) against real servers on loopback, started by
 * tests/http_servers.py:
 *   test_http_engine mockllm   the third-party @dwmkerr/mock-llm (SWARM_MOCK_LLM_URL), rules in
 *                              tests/mock_llm_rules.yaml
 *   test_http_engine stub      the project's tests/openai_stub.py (SWARM_STUB_URL) for what
 *                              mock-llm cannot produce: Retry-After headers, a stream cut or
 *                              failed after output, the legacy API streamed
 * Exits 77 (skip) when the server's URL is not set. No timing assertions: deadlines and tokens
 * are checked by their status and by the output being cut short.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <swarm/swarm.h>

#include "http_engine.h"

#include "helpers.h"

static const char *base_url;

/* ---- helpers ------------------------------------------------------------------------------- */

typedef struct finish_rec {
    char reason[32];
    int calls;
} finish_rec;

static void rec_finish(void *ctx, uint64_t id, const char *reason)
{
    (void)id;
    finish_rec *f = ctx;
    snprintf(f->reason, sizeof f->reason, "%s", reason);
    f->calls++;
}

static swarm_engine *new_http(int stream, http_engine **impl, finish_rec *fr)
{
    http_engine_opts o;
    http_engine_opts_init(&o);
    o.base_url = base_url;
    o.model = "test-model";
    o.stream = stream;
    o.api_key = "";
    if (fr != NULL) {
        o.on_finish = rec_finish;
        o.finish_ctx = fr;
    }
    swarm_engine *e = NULL;
    assert_int_equal(http_engine_create(&e, impl, &o), 0);
    return e;
}

static swarm_response *new_resp(void)
{
    swarm_response *r = NULL;
    assert_int_equal(swarm_response_create(&r, NULL), 0);
    return r;
}

static int call(swarm_engine *e, swarm_response *r, const char *prompt, int64_t timeout_ns,
                swarm_cancel *tok)
{
    swarm_request q;
    swarm_request_init(&q);
    q.id = 7;
    q.payload = prompt;
    q.payload_len = strlen(prompt);
    q.deadline_ns = timeout_ns > 0 ? swarm_now_ns() + timeout_ns : 0;
    q.cancel = tok;
    swarm_response_reset(r);
    return swarm_engine_infer(e, &q, r);
}

static const char *out(const swarm_response *r)
{
    return swarm_response_data(r, NULL);
}

static swarm_response_info info_of(const swarm_response *r)
{
    swarm_response_info info = {.size = sizeof info};
    assert_int_equal(swarm_response_get_info(r, &info), 0);
    return info;
}

typedef struct chunks {
    int n, stop_after;
    swarm_cancel *fire_after; /* fire this token after stop_after chunks instead of stopping */
} chunks;

static int on_chunk(void *ctx, uint64_t id, const void *p, size_t len)
{
    (void)id, (void)p, (void)len;
    chunks *c = ctx;
    c->n++;
    if (c->stop_after > 0 && c->n >= c->stop_after) {
        if (c->fire_after != NULL) {
            swarm_cancel_trigger(c->fire_after);
            return 0;
        }
        return 1;
    }
    return 0;
}

static swarm_engine *with_retry(swarm_engine *inner)
{
    swarm_retry_opts ro;
    swarm_retry_opts_init(&ro);
    ro.base_ns = 1 * MS;
    ro.cap_ns = 5 * MS;
    ro.honor_retry_after = 2; /* the stub's hints are seconds long: ignore them here */
    swarm_engine *r = NULL;
    assert_int_equal(swarm_engine_retry_create(&r, inner, &ro), 0);
    return r;
}

/* ---- mock-llm: the third-party server -------------------------------------------------------- */

static void test_mockllm_plain_chat(void **state)
{
    (void)state;
    finish_rec fr = {{0}, 0};
    swarm_engine *e = new_http(0, NULL, &fr);
    swarm_response *r = new_resp();
    assert_int_equal(call(e, r, "hello world", 10 * SEC, NULL), 0);
    assert_string_equal(out(r), "hello world");
    swarm_response_info in = info_of(r);
    assert_int_equal(in.input_units, 7);
    assert_int_equal(in.output_units, 5);
    assert_string_equal(fr.reason, "stop");
    swarm_response_destroy(r);
    swarm_engine_destroy(e);
}

static void test_mockllm_streamed_chat(void **state)
{
    (void)state;
    finish_rec fr = {{0}, 0};
    swarm_engine *e = new_http(1, NULL, &fr);
    swarm_response *r = new_resp();
    chunks c = {0, 0, NULL};
    swarm_response_set_stream(r, on_chunk, &c);
    const char *text = "streaming hello there, friend";
    assert_int_equal(call(e, r, text, 10 * SEC, NULL), 0);
    assert_string_equal(out(r), text);
    swarm_response_info in = info_of(r);
    size_t expect = (strlen(text) + 3) / 4; /* mock-llm streams 4 characters per chunk */
    assert_int_equal(in.n_chunks, expect);
    assert_int_equal(c.n, (int)expect);        /* each delta reached the callback as it arrived */
    assert_int_equal(in.output_units, expect); /* no usage event: deltas are counted */
    assert_string_equal(fr.reason, "stop");
    swarm_response_destroy(r);
    swarm_engine_destroy(e);
}

static void test_mockllm_params_reach_the_body(void **state)
{
    (void)state;
    http_engine_opts o;
    http_engine_opts_init(&o);
    o.base_url = base_url;
    o.model = "default-model";
    o.api_key = "sk-test";
    o.system_prompt = "be brief";
    o.stream = 0;
    finish_rec fr = {{0}, 0};
    o.on_finish = rec_finish;
    o.finish_ctx = &fr;
    swarm_engine *e = NULL;
    assert_int_equal(http_engine_create(&e, NULL, &o), 0);
    swarm_response *r = new_resp();
    swarm_request q;
    swarm_request_init(&q);
    q.payload = "echo-params";
    q.payload_len = strlen(q.payload);
    q.params.model_version = "m1";
    q.params.temperature = 0.25;
    q.params.top_p = 0.5;
    q.params.max_tokens = 17;
    q.params.seed = 99;
    swarm_kv stop = {"stop", "END"};
    q.params.extras = &stop;
    q.params.n_extras = 1;
    assert_int_equal(swarm_engine_infer(e, &q, r), 0);
    assert_string_equal(out(r), "model=m1 temperature=0.25 top_p=0.5 max_tokens=17 seed=99 "
                                "stop=END n=2 system=be brief auth=Bearer sk-test");
    assert_string_equal(fr.reason, "length");
    swarm_response_destroy(r);
    swarm_engine_destroy(e);
}

static void test_mockllm_json_messages_payload(void **state)
{
    (void)state;
    swarm_engine *e = new_http(1, NULL, NULL);
    swarm_response *r = new_resp();
    assert_int_equal(call(e, r,
                          "[{\"role\": \"system\", \"content\": \"S\"},"
                          " {\"role\": \"user\", \"content\": \"from json\"}]",
                          10 * SEC, NULL),
                     0);
    assert_string_equal(out(r), "from json");
    assert_int_equal(
        call(e, r, "{\"messages\": [{\"role\": \"user\", \"content\": \"obj\"}]}", 10 * SEC, NULL),
        0);
    assert_string_equal(out(r), "obj");
    swarm_response_destroy(r);
    swarm_engine_destroy(e);
}

static void test_mockllm_error_statuses(void **state)
{
    (void)state;
    static const struct {
        const char *prompt;
        int code;
    } cases[] = {
        {"error-429", SWARM_EOVERLOADED},  {"error-503", SWARM_EUNAVAILABLE},
        {"error-500", SWARM_EUNAVAILABLE}, {"error-400", SWARM_EINVAL},
        {"error-401", SWARM_EINVAL},
    };
    /* Plain: the HTTP status decides. Streamed: mock-llm sends the error as an event inside a
     * 200 stream, so the error object's type decides; both must land in the same class. */
    for (int stream = 0; stream <= 1; stream++) {
        swarm_engine *e = new_http(stream, NULL, NULL);
        swarm_response *r = new_resp();
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            int rc = call(e, r, cases[i].prompt, 10 * SEC, NULL);
            if (rc != cases[i].code)
                fail_msg("%s (stream %d): %s, want %s (%s)", cases[i].prompt, stream,
                         swarm_err_name(rc), swarm_err_name(cases[i].code),
                         swarm_response_error_message(r));
            assert_true(swarm_response_error_message(r)[0] != '\0');
            assert_int_equal(info_of(r).output_bytes, 0);
        }
        swarm_response_destroy(r);
        swarm_engine_destroy(e);
    }
}

static void test_mockllm_retry_recovers_from_503(void **state)
{
    (void)state;
    swarm_engine *e = with_retry(new_http(0, NULL, NULL));
    swarm_response *r = new_resp();
    assert_int_equal(call(e, r, "flaky", 10 * SEC, NULL), 0);
    assert_string_equal(out(r), "recovered");
    assert_int_equal(info_of(r).attempts, 2);
    swarm_response_destroy(r);
    swarm_engine_destroy(e);
}

static void test_mockllm_health_and_refused(void **state)
{
    (void)state;
    swarm_engine *e = new_http(1, NULL, NULL);
    assert_int_equal(swarm_engine_health(e), 0);
    swarm_engine_destroy(e);
    http_engine_opts o;
    http_engine_opts_init(&o);
    o.base_url = base_url;
    o.health_path = "/no-such-path";
    assert_int_equal(http_engine_create(&e, NULL, &o), 0);
    assert_int_equal(swarm_engine_health(e), SWARM_EINVAL); /* 404 */
    swarm_engine_destroy(e);
    /* A port nobody listens on: connection refused is "unavailable", for health and calls. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &al), 0);
    close(s);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(a.sin_port));
    o.base_url = url;
    o.health_path = NULL;
    assert_int_equal(http_engine_create(&e, NULL, &o), 0);
    assert_int_equal(swarm_engine_health(e), SWARM_EUNAVAILABLE);
    swarm_response *r = new_resp();
    assert_int_equal(call(e, r, "anyone?", 5 * SEC, NULL), SWARM_EUNAVAILABLE);
    swarm_response_destroy(r);
    swarm_engine_destroy(e);
}

static void test_mockllm_slow_stream_cut_by_deadline(void **state)
{
    (void)state;
    swarm_engine *e = new_http(1, NULL, NULL);
    swarm_response *r = new_resp();
    int rc = call(e, r, "slow-stream", 300 * MS, NULL);
    assert_int_equal(rc, SWARM_ETIMEDOUT);
    size_t len = 0;
    swarm_response_data(r, &len);
    assert_true(len < 4000); /* the full reply is ~4 KB: the stream was cut */
    /* The engine is fine afterwards. */
    assert_int_equal(call(e, r, "after the cut", 10 * SEC, NULL), 0);
    assert_string_equal(out(r), "after the cut");
    swarm_response_destroy(r);
    swarm_engine_destroy(e);
}

static void test_mockllm_slow_stream_cut_by_token(void **state)
{
    (void)state;
    swarm_engine *e = new_http(1, NULL, NULL);
    swarm_response *r = new_resp();
    swarm_cancel *tok = NULL;
    assert_int_equal(swarm_cancel_create(&tok, NULL), 0);
    /* The token fires from the stream callback after 5 chunks: deterministic, no sleeps. */
    chunks c = {0, 5, tok};
    swarm_response_set_stream(r, on_chunk, &c);
    assert_int_equal(call(e, r, "slow-stream", 30 * SEC, tok), SWARM_ECANCELED);
    assert_true(c.n >= 5 && c.n < 1000);
    swarm_response_set_stream(r, NULL, NULL);
    /* A token fired before the call: not even sent. */
    assert_int_equal(call(e, r, "slow-stream", 30 * SEC, tok), SWARM_ECANCELED);
    assert_int_equal(info_of(r).output_bytes, 0);
    swarm_cancel_destroy(tok);
    swarm_response_destroy(r);
    swarm_engine_destroy(e);
}

typedef struct fire_later {
    swarm_cancel *tok;
    int64_t after_ns;
} fire_later;

static void *fire_main(void *p)
{
    fire_later *f = p;
    struct timespec ts = {0, (long)f->after_ns};
    nanosleep(&ts, NULL);
    swarm_cancel_trigger(f->tok);
    return NULL;
}

/* A server that accepts connections (the kernel's backlog does) and never answers: only the
 * engine's own polling can notice the token. Without it the call would end at its 30 s
 * deadline with SWARM_ETIMEDOUT. */
static void test_token_cuts_a_silent_server(void **state)
{
    (void)state;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s, 8), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &al), 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(a.sin_port));
    for (int stream = 0; stream <= 1; stream++) {
        http_engine_opts o;
        http_engine_opts_init(&o);
        o.base_url = url;
        o.stream = stream;
        swarm_engine *e = NULL;
        assert_int_equal(http_engine_create(&e, NULL, &o), 0);
        swarm_response *r = new_resp();
        swarm_cancel *tok = NULL;
        assert_int_equal(swarm_cancel_create(&tok, NULL), 0);
        fire_later f = {tok, 200 * MS};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, fire_main, &f), 0);
        assert_int_equal(call(e, r, "anyone?", 30 * SEC, tok), SWARM_ECANCELED);
        pthread_join(th, NULL);
        swarm_cancel_destroy(tok);
        swarm_response_destroy(r);
        swarm_engine_destroy(e);
    }
    close(s);
}

static void test_mockllm_connection_reuse(void **state)
{
    (void)state;
    for (int reuse = 1; reuse >= 0; reuse--) {
        http_engine_opts o;
        http_engine_opts_init(&o);
        o.base_url = base_url;
        o.stream = 0;
        o.reuse = reuse;
        swarm_engine *e = NULL;
        http_engine *impl = NULL;
        assert_int_equal(http_engine_create(&e, &impl, &o), 0);
        swarm_response *r = new_resp();
        for (int i = 0; i < 10; i++)
            assert_int_equal(call(e, r, "again", 10 * SEC, NULL), 0);
        http_engine_stats st;
        http_engine_get_stats(impl, &st);
        assert_int_equal(st.calls, 10);
        assert_int_equal(st.handles, 1);
        /* Kept alive: one TCP handshake for ten calls; without reuse, one per call. */
        assert_int_equal(st.connects, reuse ? 1 : 10);
        swarm_response_destroy(r);
        swarm_engine_destroy(e);
    }
}

typedef struct par {
    swarm_engine *e;
    int id, ok;
} par;

static void *par_main(void *p)
{
    par *a = p;
    swarm_response *r = NULL;
    if (swarm_response_create(&r, NULL) != 0)
        return NULL;
    char prompt[64];
    for (int i = 0; i < 10; i++) {
        snprintf(prompt, sizeof prompt, "thread %d call %d", a->id, i);
        if (call(a->e, r, prompt, 10 * SEC, NULL) == 0 && strcmp(out(r), prompt) == 0)
            a->ok++;
    }
    swarm_response_destroy(r);
    return NULL;
}

static void test_mockllm_concurrent_calls_keep_one_connection_each(void **state)
{
    (void)state;
    http_engine *impl = NULL;
    swarm_engine *e = new_http(1, &impl, NULL);
    enum { T = 8 };
    par ps[T];
    pthread_t th[T];
    for (int i = 0; i < T; i++) {
        ps[i] = (par){.e = e, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, par_main, &ps[i]), 0);
    }
    int ok = 0;
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        ok += ps[i].ok;
    }
    assert_int_equal(ok, T * 10);
    http_engine_stats st;
    http_engine_get_stats(impl, &st);
    assert_int_equal(st.calls, T * 10);
    assert_true(st.handles >= 1 && st.handles <= T);
    assert_true(st.connects <= st.handles + 2); /* a pooled handle keeps its connection */
    swarm_engine_destroy(e);
}

static void test_mockllm_legacy_completions(void **state)
{
    (void)state;
    http_engine_opts o;
    http_engine_opts_init(&o);
    o.base_url = base_url;
    o.api = HTTP_API_COMPLETIONS;
    o.stream = 0;
    finish_rec fr = {{0}, 0};
    o.on_finish = rec_finish;
    o.finish_ctx = &fr;
    swarm_engine *e = NULL;
    assert_int_equal(http_engine_create(&e, NULL, &o), 0);
    swarm_response *r = new_resp();
    assert_int_equal(call(e, r, "legacy prompt", 10 * SEC, NULL), 0);
    assert_string_equal(out(r), "legacy prompt");
    assert_string_equal(fr.reason, "length");
    assert_int_equal(info_of(r).input_units, 2);
    swarm_response_destroy(r);
    swarm_engine_destroy(e);
}

/* ---- the project's stub: what mock-llm cannot produce ------------------------------------- */

static void test_stub_retry_after_headers(void **state)
{
    (void)state;
    swarm_engine *e = new_http(1, NULL, NULL);
    swarm_response *r = new_resp();
    assert_int_equal(call(e, r, "#429", 10 * SEC, NULL), SWARM_EOVERLOADED);
    assert_int_equal(info_of(r).retry_after_ns, 2 * SEC);
    assert_int_equal(call(e, r, "#429-ms", 10 * SEC, NULL), SWARM_EOVERLOADED);
    assert_int_equal(info_of(r).retry_after_ns, 1500 * MS); /* retry-after-ms wins */
    assert_int_equal(call(e, r, "#503", 10 * SEC, NULL), SWARM_EUNAVAILABLE);
    assert_int_equal(info_of(r).retry_after_ns, 1 * SEC);
    assert_int_equal(call(e, r, "#503-date", 10 * SEC, NULL), SWARM_EUNAVAILABLE);
    int64_t ra = info_of(r).retry_after_ns;
    assert_true(ra >= 1 * SEC && ra <= 4 * SEC); /* an HTTP-date 3 s ahead, 1 s resolution */
    assert_int_equal(call(e, r, "#400", 10 * SEC, NULL), SWARM_EINVAL);
    swarm_response_destroy(r);
    swarm_engine_destroy(e);
}

static void test_stub_stream_without_done_is_unavailable(void **state)
{
    (void)state;
    swarm_engine *e = new_http(1, NULL, NULL);
    swarm_response *r = new_resp();
    assert_int_equal(call(e, r, "#truncated", 10 * SEC, NULL), SWARM_EUNAVAILABLE);
    assert_string_equal(out(r), "Echo: #truncated"); /* what arrived stays */
    assert_non_null(strstr(swarm_response_error_message(r), "[DONE]"));
    swarm_response_destroy(r);
    swarm_engine_destroy(e);
}

static void test_stub_error_event_after_output_never_retried(void **state)
{
    (void)state;
    swarm_engine *e = with_retry(new_http(1, NULL, NULL));
    swarm_response *r = new_resp();
    chunks c = {0, 0, NULL};
    swarm_response_set_stream(r, on_chunk, &c);
    assert_int_equal(call(e, r, "#midstream-error", 10 * SEC, NULL), SWARM_EUNAVAILABLE);
    assert_string_equal(out(r), "Echo: #midstream-error");
    assert_non_null(strstr(swarm_response_error_message(r), "backend crashed"));
    assert_int_equal(info_of(r).attempts, 1);
    swarm_retry_stats st = {.size = sizeof st};
    assert_int_equal(swarm_engine_retry_get_stats(e, &st), 0);
    assert_int_equal(st.after_stream, 1);
    /* Without a stream callback nothing reached the caller: the buffered output is discarded
     * and the request retried. */
    swarm_response_set_stream(r, NULL, NULL);
    assert_int_equal(call(e, r, "#midstream-error", 10 * SEC, NULL), SWARM_EUNAVAILABLE);
    assert_true(info_of(r).attempts > 1);
    assert_string_equal(out(r), "Echo: #midstream-error"); /* the last attempt's output only */
    swarm_response_destroy(r);
    swarm_engine_destroy(e);
}

static void test_stub_streamed_usage_and_legacy_stream(void **state)
{
    (void)state;
    finish_rec fr = {{0}, 0};
    swarm_engine *e = new_http(1, NULL, &fr);
    swarm_response *r = new_resp();
    assert_int_equal(call(e, r, "a b c", 10 * SEC, NULL), 0);
    assert_string_equal(out(r), "Echo: a b c");
    swarm_response_info in = info_of(r);
    assert_int_equal(in.input_units, 3);
    assert_int_equal(in.output_units, 4);
    assert_string_equal(fr.reason, "stop");
    swarm_engine_destroy(e);
    http_engine_opts o;
    http_engine_opts_init(&o);
    o.base_url = base_url;
    o.api = HTTP_API_COMPLETIONS;
    assert_int_equal(http_engine_create(&e, NULL, &o), 0);
    assert_int_equal(call(e, r, "legacy words", 10 * SEC, NULL), 0);
    assert_string_equal(out(r), "Echo: legacy words");
    assert_int_equal(info_of(r).n_chunks, 3);
    swarm_response_destroy(r);
    swarm_engine_destroy(e);
}

static void test_stub_stream_callback_stop(void **state)
{
    (void)state;
    swarm_engine *e = new_http(1, NULL, NULL);
    swarm_response *r = new_resp();
    chunks c = {0, 2, NULL};
    swarm_response_set_stream(r, on_chunk, &c);
    assert_int_equal(call(e, r, "#slow", 30 * SEC, NULL), SWARM_ECANCELED);
    assert_int_equal(c.n, 2);
    swarm_response_destroy(r);
    swarm_engine_destroy(e);
}

int main(int argc, char **argv)
{
    const char *which = argc > 1 ? argv[1] : "mockllm";
    const struct CMUnitTest mockllm[] = {
        SWARM_TEST(test_mockllm_plain_chat),
        SWARM_TEST(test_mockllm_streamed_chat),
        SWARM_TEST(test_mockllm_params_reach_the_body),
        SWARM_TEST(test_mockllm_json_messages_payload),
        SWARM_TEST(test_mockllm_error_statuses),
        SWARM_TEST(test_mockllm_retry_recovers_from_503),
        SWARM_TEST(test_mockllm_health_and_refused),
        SWARM_TEST(test_mockllm_slow_stream_cut_by_deadline),
        SWARM_TEST(test_mockllm_slow_stream_cut_by_token),
        SWARM_TEST(test_token_cuts_a_silent_server),
        SWARM_TEST(test_mockllm_connection_reuse),
        SWARM_TEST(test_mockllm_concurrent_calls_keep_one_connection_each),
        SWARM_TEST(test_mockllm_legacy_completions),
    };
    const struct CMUnitTest stub[] = {
        SWARM_TEST(test_stub_retry_after_headers),
        SWARM_TEST(test_stub_stream_without_done_is_unavailable),
        SWARM_TEST(test_stub_error_event_after_output_never_retried),
        SWARM_TEST(test_stub_streamed_usage_and_legacy_stream),
        SWARM_TEST(test_stub_stream_callback_stop),
    };
    if (strcmp(which, "stub") == 0) {
        base_url = getenv("SWARM_STUB_URL");
        if (base_url == NULL) {
            printf("skip: SWARM_STUB_URL not set (run through tests/http_servers.py --stub)\n");
            return 77;
        }
        return cmocka_run_group_tests_name("http_engine_stub", stub, NULL, NULL);
    }
    base_url = getenv("SWARM_MOCK_LLM_URL");
    if (base_url == NULL) {
        printf("skip: SWARM_MOCK_LLM_URL not set (run through tests/http_servers.py --mock-llm)\n");
        return 77;
    }
    return cmocka_run_group_tests_name("http_engine_mockllm", mockllm, NULL, NULL);
}
