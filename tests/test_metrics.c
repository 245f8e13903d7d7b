/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for swarm_metrics: exact Prometheus and JSON output for a channel with known
 * traffic, the lines of a pool and of a reconcile loop, exact seconds formatting, the size query
 * and too-small buffers (never written past their end), the worst-case bound, bad input, OOM, and
 * renders racing traffic.
 *
 * With `--print prometheus` or `--print json` it instead builds a small world (a channel, a pool
 * over the mock engine, a reconcile loop) and prints one render to stdout, for the promtool and
 * JSON-parser checks in tests/meson.build.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <swarm/swarm.h>

#include "helpers.h"

/* The series every render starts with (build info, skipped objects). */
#define REGISTRY_PROM(skipped)                                                                     \
    "# HELP swarm_build_info libswarm version of this process (always 1).\n"                       \
    "# TYPE swarm_build_info gauge\n"                                                              \
    "swarm_build_info{version=\"" SWARM_TEST_VERSION "\"} 1\n"                                     \
    "# HELP swarm_metrics_objects_skipped Registered objects left out of this render because "     \
    "their statistics could not be read.\n"                                                        \
    "# TYPE swarm_metrics_objects_skipped gauge\n"                                                 \
    "swarm_metrics_objects_skipped " skipped "\n"
#define STR_(x) #x
#define STR(x)  STR_(x)
#define SWARM_TEST_VERSION                                                                         \
    STR(SWARM_VERSION_MAJOR) "." STR(SWARM_VERSION_MINOR) "." STR(SWARM_VERSION_PATCH)
#define REGISTRY_JSON(skipped)                                                                     \
    ",\"registry\":{\"version\":\"" SWARM_TEST_VERSION "\","                                       \
    "\"objects_skipped\":" skipped "}}\n"

static swarm_metrics *make_metrics(uint32_t max_objects)
{
    swarm_metrics_opts o;
    assert_int_equal(swarm_metrics_opts_init(&o), 0);
    o.max_objects = max_objects;
    swarm_metrics *m = NULL;
    assert_int_equal(swarm_metrics_create(&m, &o), 0);
    assert_non_null(m);
    return m;
}

static swarm_chan *make_chan(uint64_t capacity, uint64_t elem_size)
{
    swarm_chan_opts co;
    swarm_chan_opts_init(&co);
    co.capacity = capacity;
    co.elem_size = elem_size;
    swarm_chan *ch = NULL;
    assert_int_equal(swarm_chan_create(&ch, &co), 0);
    return ch;
}

static swarm_chan_stats chan_stats(const swarm_chan *ch)
{
    swarm_chan_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    assert_int_equal(swarm_chan_get_stats(ch, &st), 0);
    return st;
}

static swarm_engine *make_mock(void);

/* Renders into a fresh heap buffer (the test's, not the library's). */
static char *render(swarm_metrics *m, int format)
{
    size_t need = 0;
    int rc = swarm_metrics_render(m, format, NULL, 0, &need);
    assert_int_equal(rc, SWARM_ERANGE);
    need += 4096; /* headroom: counters may grow between the two calls */
    char *buf = malloc(need);
    assert_non_null(buf);
    size_t n = 0;
    assert_int_equal(swarm_metrics_render(m, format, buf, need, &n), 0);
    assert_int_equal(strlen(buf), n);
    return buf;
}

/* Independent seconds formatter for the expectations: "%lld.%09lld" with trailing zeros cut. */
static void fmt_seconds(char *dst, size_t cap, int64_t ns)
{
    snprintf(dst, cap, "%lld.%09lld", (long long)(ns / SEC), (long long)(ns % SEC));
    size_t n = strlen(dst);
    while (dst[n - 1] == '0')
        dst[--n] = '\0';
    if (dst[n - 1] == '.')
        dst[n - 1] = '\0';
}

/* ---- lifecycle and bad input --------------------------------------------------------------- */

static void test_metrics_create_invalid_args(void **state)
{
    (void)state;
    swarm_metrics *m = NULL;
    swarm_metrics_opts o;
    assert_int_equal(swarm_metrics_opts_init(NULL), SWARM_EINVAL);
    assert_int_equal(swarm_metrics_create(NULL, NULL), SWARM_EINVAL);
    swarm_metrics_opts_init(&o);
    o.max_objects = SWARM_METRICS_MAX_OBJECTS + 1;
    assert_int_equal(swarm_metrics_create(&m, &o), SWARM_EINVAL);
    swarm_metrics_opts_init(&o);
    o.size = 4;
    assert_int_equal(swarm_metrics_create(&m, &o), SWARM_EINVAL);
    swarm_allocator half = {NULL, NULL, NULL};
    swarm_metrics_opts_init(&o);
    o.alloc = &half;
    assert_int_equal(swarm_metrics_create(&m, &o), SWARM_EINVAL);
    assert_null(m);
    swarm_metrics_destroy(NULL);

    assert_int_equal(swarm_metrics_create(&m, NULL), 0); /* all defaults */
    assert_int_equal(swarm_metrics_count(m), 0);
    assert_int_equal(swarm_metrics_count(NULL), 0);
    swarm_metrics_destroy(m);
}

static void *fail_alloc(void *ctx, size_t size, size_t align)
{
    (void)ctx, (void)size, (void)align;
    return NULL;
}

static void never_free(void *ctx, void *p, size_t size)
{
    (void)ctx, (void)p, (void)size;
    fail();
}

static void test_metrics_create_enomem(void **state)
{
    (void)state;
    swarm_allocator a = {NULL, fail_alloc, never_free};
    swarm_metrics_opts o;
    swarm_metrics_opts_init(&o);
    o.alloc = &a;
    swarm_metrics *m = NULL;
    assert_int_equal(swarm_metrics_create(&m, &o), SWARM_ENOMEM);
    assert_null(m);
}

static void test_metrics_add_rejects_bad_names_and_overflow(void **state)
{
    (void)state;
    swarm_metrics *m = make_metrics(3);
    swarm_chan *ch = make_chan(4, 8);
    char long_name[SWARM_METRICS_NAME_MAX + 2];
    memset(long_name, 'a', sizeof long_name);
    long_name[SWARM_METRICS_NAME_MAX + 1] = '\0';

    assert_int_equal(swarm_metrics_add_chan(NULL, "a", ch), SWARM_EINVAL);
    assert_int_equal(swarm_metrics_add_chan(m, NULL, ch), SWARM_EINVAL);
    assert_int_equal(swarm_metrics_add_chan(m, "a", NULL), SWARM_EINVAL);
    assert_int_equal(swarm_metrics_add_pool(m, "a", NULL), SWARM_EINVAL);
    assert_int_equal(swarm_metrics_add_reconcile(m, "a", NULL), SWARM_EINVAL);
    const char *bad[] = {"",     "1abc", "-a",   "a.b",         "a b", "a\"b",
                         "a\\b", "a\nb", "a{b}", "caf\xc3\xa9", "a=b", long_name};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(swarm_metrics_add_chan(m, bad[i], ch), SWARM_EINVAL);
    assert_int_equal(swarm_metrics_count(m), 0);

    long_name[SWARM_METRICS_NAME_MAX] = '\0'; /* exactly the maximum: fine */
    assert_int_equal(swarm_metrics_add_chan(m, long_name, ch), 0);
    assert_int_equal(swarm_metrics_add_chan(m, "_in-1", ch), 0);
    assert_int_equal(swarm_metrics_add_chan(m, "_in-1", ch), SWARM_EINVAL); /* duplicate */
    assert_int_equal(swarm_metrics_count(m), 2);
    /* The same object may be exported twice under different names. */
    assert_int_equal(swarm_metrics_add_chan(m, "Z9", ch), 0);
    assert_int_equal(swarm_metrics_add_chan(m, "more", ch), SWARM_EINVAL); /* full */
    assert_int_equal(swarm_metrics_count(m), 3);

    swarm_metrics_destroy(m);
    swarm_chan_destroy(ch);
}

static void test_metrics_render_bad_args(void **state)
{
    (void)state;
    swarm_metrics *m = make_metrics(1);
    char buf[64];
    size_t n = 0;
    assert_int_equal(swarm_metrics_render(NULL, SWARM_METRICS_JSON, buf, sizeof buf, &n),
                     SWARM_EINVAL);
    assert_int_equal(swarm_metrics_render(m, 0, buf, sizeof buf, &n), SWARM_EINVAL);
    assert_int_equal(swarm_metrics_render(m, 3, buf, sizeof buf, &n), SWARM_EINVAL);
    assert_int_equal(swarm_metrics_render(m, SWARM_METRICS_JSON, NULL, 10, &n), SWARM_EINVAL);
    assert_int_equal(swarm_metrics_render_bound(NULL, SWARM_METRICS_JSON, &n), SWARM_EINVAL);
    assert_int_equal(swarm_metrics_render_bound(m, SWARM_METRICS_JSON, NULL), SWARM_EINVAL);
    assert_int_equal(swarm_metrics_render_bound(m, 7, &n), SWARM_EINVAL);
    swarm_metrics_destroy(m);
}

static void test_metrics_render_empty_registry(void **state)
{
    (void)state;
    swarm_metrics *m = make_metrics(1);
    char buf[1024];
    size_t n = 99;
    assert_int_equal(swarm_metrics_render(m, SWARM_METRICS_PROMETHEUS, buf, sizeof buf, &n), 0);
    assert_string_equal(buf, REGISTRY_PROM("0"));
    assert_int_equal(n, strlen(buf));
    assert_string_equal(swarm_version_string(), SWARM_TEST_VERSION);
    assert_int_equal(swarm_metrics_render(m, SWARM_METRICS_JSON, buf, sizeof buf, &n), 0);
    assert_string_equal(
        buf, "{\"channels\":{},\"pools\":{},\"loops\":{},\"engines\":{}" REGISTRY_JSON("0"));
    assert_int_equal(n, strlen(buf));
    swarm_metrics_destroy(m);
}

/* ---- exact output for a channel ------------------------------------------------------------ */

/* capacity 16; 5 sent, 2 received: length 3. No thread ever blocked. */
static swarm_chan *chan_with_traffic(void)
{
    swarm_chan *ch = make_chan(16, 8);
    for (uint64_t i = 0; i < 5; i++)
        assert_int_equal(swarm_chan_try_send(ch, &i), 0);
    uint64_t v;
    assert_int_equal(swarm_chan_try_recv(ch, &v), 0);
    assert_int_equal(swarm_chan_try_recv(ch, &v), 0);
    return ch;
}

static void test_metrics_render_chan_prometheus_exact(void **state)
{
    (void)state;
    swarm_chan *ch = chan_with_traffic();
    swarm_metrics *m = make_metrics(4);
    assert_int_equal(swarm_metrics_add_chan(m, "requests", ch), 0);
    swarm_chan_stats st = chan_stats(ch);
    char *got = render(m, SWARM_METRICS_PROMETHEUS);
    char want[4096];
    snprintf(
        want, sizeof want,
        REGISTRY_PROM(
            "0") "# HELP swarm_channel_length Elements queued now.\n"
                 "# TYPE swarm_channel_length gauge\n"
                 "swarm_channel_length{channel=\"requests\"} 3\n"
                 "# HELP swarm_channel_capacity Capacity in elements.\n"
                 "# TYPE swarm_channel_capacity gauge\n"
                 "swarm_channel_capacity{channel=\"requests\"} 16\n"
                 "# HELP swarm_channel_high_watermark Largest length seen.\n"
                 "# TYPE swarm_channel_high_watermark gauge\n"
                 "swarm_channel_high_watermark{channel=\"requests\"} %llu\n"
                 "# HELP swarm_channel_blocked_senders Threads parked in a send now.\n"
                 "# TYPE swarm_channel_blocked_senders gauge\n"
                 "swarm_channel_blocked_senders{channel=\"requests\"} 0\n"
                 "# HELP swarm_channel_blocked_receivers Threads parked in a receive now.\n"
                 "# TYPE swarm_channel_blocked_receivers gauge\n"
                 "swarm_channel_blocked_receivers{channel=\"requests\"} 0\n"
                 "# HELP swarm_channel_closed 1 once the channel is closed.\n"
                 "# TYPE swarm_channel_closed gauge\n"
                 "swarm_channel_closed{channel=\"requests\"} 0\n"
                 "# HELP swarm_channel_sent_total Elements accepted by sends.\n"
                 "# TYPE swarm_channel_sent_total counter\n"
                 "swarm_channel_sent_total{channel=\"requests\"} 5\n"
                 "# HELP swarm_channel_received_total Elements delivered to receivers.\n"
                 "# TYPE swarm_channel_received_total counter\n"
                 "swarm_channel_received_total{channel=\"requests\"} 2\n"
                 "# HELP swarm_channel_dropped_total Elements dropped by the full mode.\n"
                 "# TYPE swarm_channel_dropped_total counter\n"
                 "swarm_channel_dropped_total{channel=\"requests\"} 0\n"
                 "# HELP swarm_channel_rejected_total Sends refused or failed (full, timed out, "
                 "closed), as reported by the host.\n"
                 "# TYPE swarm_channel_rejected_total counter\n"
                 "swarm_channel_rejected_total{channel=\"requests\"} 0\n"
                 "# HELP swarm_channel_send_blocked_seconds_total Time senders spent parked "
                 "(backpressure).\n"
                 "# TYPE swarm_channel_send_blocked_seconds_total counter\n"
                 "swarm_channel_send_blocked_seconds_total{channel=\"requests\"} 0\n"
                 "# HELP swarm_channel_recv_blocked_seconds_total Time receivers spent parked "
                 "(idle).\n"
                 "# TYPE swarm_channel_recv_blocked_seconds_total counter\n"
                 "swarm_channel_recv_blocked_seconds_total{channel=\"requests\"} 0\n",
        (unsigned long long)st.high_watermark);
    assert_string_equal(got, want);
    free(got);
    swarm_metrics_destroy(m);
    swarm_chan_destroy(ch);
}

static void test_metrics_render_chan_json_exact(void **state)
{
    (void)state;
    swarm_chan *ch = chan_with_traffic();
    swarm_chan *other = make_chan(2, 8);
    swarm_metrics *m = make_metrics(4);
    assert_int_equal(swarm_metrics_add_chan(m, "requests", ch), 0);
    assert_int_equal(swarm_metrics_add_chan(m, "other", other), 0);
    assert_int_equal(swarm_chan_close(other), 0);
    swarm_chan_stats st = chan_stats(ch);
    char *got = render(m, SWARM_METRICS_JSON);
    char want[2048];
    snprintf(want, sizeof want,
             "{\"channels\":{"
             "\"requests\":{\"length\":3,\"capacity\":16,\"high_watermark\":%llu,"
             "\"blocked_senders\":0,\"blocked_receivers\":0,\"closed\":0,\"sent\":5,"
             "\"received\":2,\"dropped\":0,\"rejected\":0,\"send_blocked_seconds\":0,"
             "\"recv_blocked_seconds\":0},"
             "\"other\":{\"length\":0,\"capacity\":2,\"high_watermark\":0,"
             "\"blocked_senders\":0,\"blocked_receivers\":0,\"closed\":1,\"sent\":0,"
             "\"received\":0,\"dropped\":0,\"rejected\":0,\"send_blocked_seconds\":0,"
             "\"recv_blocked_seconds\":0}"
             "},\"pools\":{},\"loops\":{},\"engines\":{}" REGISTRY_JSON("0"),
             (unsigned long long)st.high_watermark);
    assert_string_equal(got, want);
    free(got);
    swarm_metrics_destroy(m);
    swarm_chan_destroy(ch);
    swarm_chan_destroy(other);
}

/* A sender parks on a full channel for ~20 ms: the blocked time is printed as exact seconds. */
static void *blocked_sender(void *arg)
{
    uint64_t v = 7;
    assert_int_equal(swarm_chan_send(arg, &v), 0);
    return NULL;
}

static void test_metrics_render_seconds_are_exact(void **state)
{
    (void)state;
    swarm_chan *ch = make_chan(1, 8);
    uint64_t v = 1;
    assert_int_equal(swarm_chan_try_send(ch, &v), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, blocked_sender, ch), 0);
    while (chan_stats(ch).blocked_senders == 0)
        sleep_ns(MS);
    sleep_ns(20 * MS);
    assert_int_equal(swarm_chan_recv(ch, &v), 0);
    pthread_join(t, NULL);
    swarm_chan_stats st = chan_stats(ch);
    assert_true(st.send_blocked_ns > 0);

    swarm_metrics *m = make_metrics(1);
    assert_int_equal(swarm_metrics_add_chan(m, "q", ch), 0);
    char secs[64], line[160];
    fmt_seconds(secs, sizeof secs, st.send_blocked_ns);
    char *prom = render(m, SWARM_METRICS_PROMETHEUS);
    snprintf(line, sizeof line, "\nswarm_channel_send_blocked_seconds_total{channel=\"q\"} %s\n",
             secs);
    assert_non_null(strstr(prom, line));
    char *json = render(m, SWARM_METRICS_JSON);
    snprintf(line, sizeof line, "\"send_blocked_seconds\":%s,", secs);
    assert_non_null(strstr(json, line));
    free(prom);
    free(json);
    swarm_metrics_destroy(m);
    swarm_chan_destroy(ch);
}

/* ---- pool and reconcile loop --------------------------------------------------------------- */

typedef struct pool_world {
    swarm_chan *in;
    swarm_engine *eng;
    swarm_pool *pool;
} pool_world;

static void pool_world_start_latency(pool_world *w, uint32_t workers, int64_t latency_ns)
{
    w->in = make_chan(64, sizeof(swarm_task));
    swarm_mock_opts mo;
    swarm_mock_opts_init(&mo);
    if (latency_ns > 0) {
        mo.latency_kind = SWARM_MOCK_LATENCY_FIXED;
        mo.latency_ns = latency_ns;
    }
    assert_int_equal(swarm_engine_mock_create(&w->eng, &mo), 0);
    swarm_pool_opts po;
    swarm_pool_opts_init(&po);
    po.workers = workers;
    po.max_workers = 8;
    po.input = w->in;
    po.engine = w->eng;
    assert_int_equal(swarm_pool_create(&w->pool, &po), 0);
}

static void pool_world_start(pool_world *w, uint32_t workers)
{
    pool_world_start_latency(w, workers, 0);
}

static swarm_pool_stats pool_stats(swarm_pool *p)
{
    swarm_pool_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    assert_int_equal(swarm_pool_get_stats(p, &st), 0);
    return st;
}

static void pool_world_run(pool_world *w, uint64_t n_tasks)
{
    static const char payload[] = "hello";
    for (uint64_t i = 0; i < n_tasks; i++) {
        swarm_task t;
        memset(&t, 0, sizeof t);
        t.id = i + 1;
        t.payload = payload;
        t.payload_len = sizeof payload - 1;
        t.enqueued_ns = swarm_now_ns();
        assert_int_equal(swarm_chan_send(w->in, &t), 0);
    }
    for (int i = 0; i < 5000; i++) {
        swarm_pool_stats st = pool_stats(w->pool);
        if (st.completed + st.failed == n_tasks && st.in_flight == 0 && st.busy == 0 &&
            st.idle == st.live)
            return;
        sleep_ns(MS);
    }
    fail_msg("pool did not finish its tasks");
}

static void pool_world_stop(pool_world *w)
{
    swarm_pool_destroy(w->pool);
    swarm_engine_destroy(w->eng);
    swarm_chan_destroy(w->in);
}

static void assert_has_line(const char *text, const char *line)
{
    char needle[512];
    snprintf(needle, sizeof needle, "\n%s\n", line);
    if (strncmp(text, line, strlen(line)) != 0 && strstr(text, needle) == NULL)
        fail_msg("missing line: %s\n--- output ---\n%s", line, text);
}

static void test_metrics_render_pool_lines(void **state)
{
    (void)state;
    pool_world w;
    pool_world_start(&w, 2);
    pool_world_run(&w, 10);
    swarm_metrics *m = make_metrics(2);
    assert_int_equal(swarm_metrics_add_pool(m, "agents", w.pool), 0);
    char *prom = render(m, SWARM_METRICS_PROMETHEUS);
    assert_has_line(prom, "# TYPE swarm_pool_backlog gauge");
    assert_has_line(prom, "swarm_pool_workers_target{pool=\"agents\"} 2");
    assert_has_line(prom, "swarm_pool_workers_live{pool=\"agents\"} 2");
    assert_has_line(prom, "swarm_pool_workers_busy{pool=\"agents\"} 0");
    assert_has_line(prom, "swarm_pool_queued{pool=\"agents\"} 0");
    assert_has_line(prom, "swarm_pool_in_flight{pool=\"agents\"} 0");
    assert_has_line(prom, "swarm_pool_backlog{pool=\"agents\"} 0");
    assert_has_line(prom, "# TYPE swarm_pool_tasks_completed_total counter");
    assert_has_line(prom, "swarm_pool_tasks_completed_total{pool=\"agents\"} 10");
    assert_has_line(prom, "swarm_pool_tasks_taken_total{pool=\"agents\"} 10");
    assert_has_line(prom, "swarm_pool_tasks_failed_total{pool=\"agents\"} 0");
    assert_has_line(prom, "swarm_pool_workers_started_total{pool=\"agents\"} 2");
    assert_has_line(prom, "# TYPE swarm_pool_queue_wait_p50_seconds gauge");
    assert_non_null(strstr(prom, "\nswarm_pool_queue_wait_p50_seconds{pool=\"agents\"} "));
    assert_non_null(strstr(prom, "\nswarm_pool_service_p99_seconds{pool=\"agents\"} "));
    assert_null(strstr(prom, "swarm_channel_")); /* no families for kinds without objects */

    char *json = render(m, SWARM_METRICS_JSON);
    assert_int_equal(strncmp(json,
                             "{\"channels\":{},\"pools\":{\"agents\":{\"workers_target\":2,"
                             "\"workers_live\":2,",
                             56),
                     0);
    assert_non_null(strstr(json, ",\"queued\":0,\"in_flight\":0,\"backlog\":0,"
                                 "\"tasks_taken\":10,\"tasks_completed\":10,\"tasks_failed\":0,"));
    assert_non_null(strstr(json, ",\"queue_wait_p50_seconds\":"));
    assert_non_null(strstr(json, ",\"service_p99_seconds\":"));
    assert_non_null(strstr(json, "}},\"loops\":{},\"engines\":{},"));

    /* Backlog counts queued plus in-flight: with no workers, queued tasks show up at once. */
    assert_int_equal(swarm_pool_resize(w.pool, 0), 0);
    for (int i = 0; i < 5000 && pool_stats(w.pool).live > 0; i++)
        sleep_ns(MS);
    swarm_task t;
    memset(&t, 0, sizeof t);
    t.id = 99;
    for (int i = 0; i < 3; i++)
        assert_int_equal(swarm_chan_send(w.in, &t), 0);
    free(prom);
    prom = render(m, SWARM_METRICS_PROMETHEUS);
    assert_has_line(prom, "swarm_pool_workers_target{pool=\"agents\"} 0");
    assert_has_line(prom, "swarm_pool_backlog{pool=\"agents\"} 3");
    free(prom);
    free(json);
    swarm_metrics_destroy(m);
    pool_world_stop(&w);
}

typedef struct loop_world {
    int32_t replicas;
    int32_t queued;
} loop_world;

static int lw_observe(void *ctx, swarm_policy_obs *obs)
{
    loop_world *w = ctx;
    obs->current_replicas = w->replicas;
    obs->ready_replicas = w->replicas;
    obs->n_metrics = 1;
    obs->metrics[0].kind = SWARM_METRIC_TOTAL;
    obs->metrics[0].value = w->queued;
    obs->metrics[0].target = 5;
    return 0;
}

static int lw_actuate(void *ctx, int32_t desired, const swarm_policy_decision *d)
{
    (void)d;
    ((loop_world *)ctx)->replicas = desired;
    return 0;
}

static void make_loop(loop_world *w, swarm_policy **pol, swarm_reconcile **r)
{
    swarm_policy_opts po;
    swarm_policy_opts_init(&po);
    po.mode = SWARM_POLICY_KEDA;
    po.max_replicas = 20;
    po.enable = SWARM_POLICY_COLD_START_JUMP; /* opt-in since issue 9 */
    assert_int_equal(swarm_policy_create(pol, &po), 0);
    swarm_reconcile_opts ro;
    swarm_reconcile_opts_init(&ro);
    ro.policy = *pol;
    ro.observe = lw_observe;
    ro.actuate = lw_actuate;
    ro.user = w;
    assert_int_equal(swarm_reconcile_create(r, &ro), 0);
}

static void test_metrics_render_reconcile_lines(void **state)
{
    (void)state;
    loop_world w = {0, 12};
    swarm_policy *pol = NULL;
    swarm_reconcile *r = NULL;
    make_loop(&w, &pol, &r);
    swarm_metrics *m = make_metrics(2);
    assert_int_equal(swarm_metrics_add_reconcile(m, "scaler", r), 0);

    /* Before the first tick: -1 replicas and reason 0 "none". */
    char *prom = render(m, SWARM_METRICS_PROMETHEUS);
    assert_has_line(prom, "swarm_reconcile_desired_replicas{loop=\"scaler\"} -1");
    assert_has_line(prom, "swarm_reconcile_last_reason{loop=\"scaler\"} 0");
    /* No decision yet: the by-reason family has no series, so it is left out entirely. */
    assert_null(strstr(prom, "# TYPE swarm_reconcile_decisions_by_reason_total"));
    assert_has_line(prom, "swarm_reconcile_ticks_total{loop=\"scaler\"} 0");
    free(prom);

    /* From zero with 12 queued and a target of 5: the cold-start jump straight to 3. */
    assert_int_equal(swarm_reconcile_step(r, 1 * SEC, NULL), 0);
    assert_int_equal(w.replicas, 3);
    swarm_policy_decision d;
    memset(&d, 0, sizeof d);
    d.size = sizeof d;
    assert_int_equal(swarm_reconcile_last_decision(r, &d), 0);
    prom = render(m, SWARM_METRICS_PROMETHEUS);
    assert_has_line(prom, "# TYPE swarm_reconcile_desired_replicas gauge");
    assert_has_line(prom, "swarm_reconcile_desired_replicas{loop=\"scaler\"} 3");
    assert_has_line(prom, "swarm_reconcile_actuated_replicas{loop=\"scaler\"} 3");
    char line[160];
    snprintf(line, sizeof line, "swarm_reconcile_last_reason{loop=\"scaler\"} %d",
             (int)SWARM_RULE_COLD_START);
    assert_has_line(prom, line);
    assert_has_line(prom, "# TYPE swarm_reconcile_decisions_by_reason_total counter");
    assert_has_line(
        prom, "swarm_reconcile_decisions_by_reason_total{loop=\"scaler\",reason=\"cold_start\"} 1");
    assert_has_line(prom, "swarm_reconcile_ticks_total{loop=\"scaler\"} 1");
    assert_has_line(prom, "swarm_reconcile_decisions_total{loop=\"scaler\"} 1");
    assert_has_line(prom, "swarm_reconcile_actuations_total{loop=\"scaler\"} 1");
    assert_has_line(prom, "swarm_reconcile_errors_total{loop=\"scaler\"} 0");
    assert_has_line(prom, "swarm_reconcile_backoff_seconds{loop=\"scaler\"} 0");

    char *json = render(m, SWARM_METRICS_JSON);
    snprintf(line, sizeof line,
             "\"loops\":{\"scaler\":{\"desired_replicas\":3,\"actuated_replicas\":3,"
             "\"last_reason\":%d,\"last_reason_name\":\"cold_start\",\"running\":0,",
             (int)SWARM_RULE_COLD_START);
    assert_non_null(strstr(json, line));
    free(prom);
    free(json);
    swarm_metrics_destroy(m);
    swarm_reconcile_destroy(r);
    swarm_policy_destroy(pol);
}

/* ---- sizes --------------------------------------------------------------------------------- */

static void test_metrics_render_too_small_returns_erange(void **state)
{
    (void)state;
    swarm_chan *ch = chan_with_traffic();
    swarm_metrics *m = make_metrics(2);
    assert_int_equal(swarm_metrics_add_chan(m, "requests", ch), 0);
    for (int format = SWARM_METRICS_PROMETHEUS; format <= SWARM_METRICS_JSON; format++) {
        size_t need = 0;
        assert_int_equal(swarm_metrics_render(m, format, NULL, 0, &need), SWARM_ERANGE);
        assert_true(need > 1);
        assert_int_equal(swarm_metrics_render(m, format, NULL, 0, NULL), SWARM_ERANGE);
        /* One byte short: SWARM_ERANGE, the same size reported, nothing written past the end. */
        char *buf = malloc(need + 16);
        assert_non_null(buf);
        memset(buf, 'X', need + 16);
        size_t got = 0;
        assert_int_equal(swarm_metrics_render(m, format, buf, need - 1, &got), SWARM_ERANGE);
        assert_int_equal(got, need);
        for (size_t i = need - 1; i < need + 16; i++)
            assert_int_equal(buf[i], 'X');
        assert_int_equal(swarm_metrics_render(m, format, buf, 1, &got), SWARM_ERANGE);
        assert_int_equal(buf[0], '\0');
        /* Exactly the size: fits, NUL-terminated, length = need - 1. */
        assert_int_equal(swarm_metrics_render(m, format, buf, need, &got), 0);
        assert_int_equal(got, need - 1);
        assert_int_equal(strlen(buf), need - 1);
        assert_int_equal(buf[need], 'X');
        free(buf);
    }
    swarm_metrics_destroy(m);
    swarm_chan_destroy(ch);
}

static void test_metrics_render_bound_covers_every_value(void **state)
{
    (void)state;
    swarm_chan *ch = chan_with_traffic();
    pool_world w;
    pool_world_start(&w, 1);
    pool_world_run(&w, 3);
    loop_world lw = {0, 12};
    swarm_policy *pol = NULL;
    swarm_reconcile *r = NULL;
    make_loop(&lw, &pol, &r);
    assert_int_equal(swarm_reconcile_step(r, SEC, NULL), 0);

    swarm_metrics *m = make_metrics(8);
    size_t empty = 0;
    assert_int_equal(swarm_metrics_render_bound(m, SWARM_METRICS_PROMETHEUS, &empty), 0);
    assert_int_equal(empty, strlen(REGISTRY_PROM("4294967295")) + 1);
    assert_int_equal(swarm_metrics_add_chan(m, "requests", ch), 0);
    assert_int_equal(swarm_metrics_add_pool(m, "agents", w.pool), 0);
    assert_int_equal(swarm_metrics_add_reconcile(m, "scaler", r), 0);
    assert_int_equal(swarm_metrics_set_loop_bounds(m, r, 0, 20, 1.5), 0);
    assert_int_equal(swarm_metrics_chan_rejected(m, ch, UINT64_MAX), 0); /* the widest count */
    swarm_engine *retry = NULL, *breaker = NULL, *batcher = NULL;
    assert_int_equal(swarm_engine_retry_create(&retry, make_mock(), NULL), 0);
    assert_int_equal(swarm_engine_breaker_create(&breaker, make_mock(), NULL), 0);
    assert_int_equal(swarm_engine_batcher_create(&batcher, make_mock(), NULL), 0);
    assert_int_equal(swarm_metrics_add_engine(m, "e", retry), 0);
    assert_int_equal(swarm_metrics_add_engine(m, "e", breaker), 0);
    assert_int_equal(swarm_metrics_add_engine(m, "e", batcher), 0);
    for (int format = SWARM_METRICS_PROMETHEUS; format <= SWARM_METRICS_JSON; format++) {
        size_t bound = 0, need = 0;
        assert_int_equal(swarm_metrics_render_bound(m, format, &bound), 0);
        assert_int_equal(swarm_metrics_render(m, format, NULL, 0, &need), SWARM_ERANGE);
        assert_true(bound >= need);
        /* Every number is at most 21 characters wide, so the bound cannot be far above. */
        assert_true(bound < need * 3);
        char *buf = malloc(bound);
        assert_non_null(buf);
        size_t got = 0;
        assert_int_equal(swarm_metrics_render(m, format, buf, bound, &got), 0);
        free(buf);
    }
    swarm_metrics_destroy(m);
    swarm_engine_destroy(retry);
    swarm_engine_destroy(breaker);
    swarm_engine_destroy(batcher);
    swarm_reconcile_destroy(r);
    swarm_policy_destroy(pol);
    pool_world_stop(&w);
    swarm_chan_destroy(ch);
}

/* ---- concurrency --------------------------------------------------------------------------- */

typedef struct race {
    swarm_chan *ch;
    swarm_metrics *m;
    _Atomic int stop;
    _Atomic uint64_t renders;
} race;

static void *race_producer(void *arg)
{
    race *r = arg;
    for (uint64_t i = 0; !atomic_load(&r->stop); i++)
        (void)swarm_chan_send_timeout(r->ch, &i, MS);
    return NULL;
}

static void *race_consumer(void *arg)
{
    race *r = arg;
    uint64_t v;
    while (!atomic_load(&r->stop))
        (void)swarm_chan_recv_timeout(r->ch, &v, MS);
    return NULL;
}

static void *race_renderer(void *arg)
{
    race *r = arg;
    char buf[8192];
    int format = SWARM_METRICS_PROMETHEUS;
    while (!atomic_load(&r->stop)) {
        size_t n = 0;
        int rc = swarm_metrics_render(r->m, format, buf, sizeof buf, &n);
        if (rc != 0 || n != strlen(buf) || buf[n - 1] != '\n')
            atomic_store(&r->stop, 2);
        atomic_fetch_add(&r->renders, 1);
        format = format == SWARM_METRICS_JSON ? SWARM_METRICS_PROMETHEUS : SWARM_METRICS_JSON;
    }
    return NULL;
}

static void test_metrics_render_races_traffic(void **state)
{
    (void)state;
    race r;
    memset(&r, 0, sizeof r);
    r.ch = make_chan(8, 8);
    r.m = make_metrics(4);
    assert_int_equal(swarm_metrics_add_chan(r.m, "hot", r.ch), 0);
    pthread_t t[6];
    void *(*fns[6])(void *) = {race_producer, race_producer, race_consumer,
                               race_consumer, race_renderer, race_renderer};
    for (int i = 0; i < 6; i++)
        assert_int_equal(pthread_create(&t[i], NULL, fns[i], &r), 0);
    /* Adds race the renders too. */
    for (int i = 0; i < 3; i++) {
        char name[8] = {'c', (char)('0' + i), 0};
        sleep_ns(30 * MS);
        assert_int_equal(swarm_metrics_add_chan(r.m, name, r.ch), 0);
    }
    sleep_ns(100 * MS);
    int expected = 0;
    atomic_compare_exchange_strong(&r.stop, &expected, 1);
    for (int i = 0; i < 6; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&r.stop), 1); /* 2: a render failed */
    assert_true(atomic_load(&r.renders) > 0);
    swarm_metrics_destroy(r.m);
    swarm_chan_destroy(r.ch);
}

/* ---- histograms ---------------------------------------------------------------------------- */

/* The documented bounds, written out independently of the library's table. */
static const int64_t doc_le_ns[16] = {
    1 * MS,   2500000, 5 * MS,    10 * MS, 25 * MS,  50 * MS,  100 * MS, 250 * MS,
    500 * MS, 1 * SEC, 2500 * MS, 5 * SEC, 10 * SEC, 30 * SEC, 60 * SEC, 300 * SEC,
};

/* The value of the sample line that starts with @prefix (up to the space), or fail. */
static const char *sample_value(const char *text, const char *prefix)
{
    char needle[512];
    snprintf(needle, sizeof needle, "\n%s ", prefix);
    const char *at = strstr(text, needle);
    if (at == NULL)
        fail_msg("missing sample: %s\n--- output ---\n%s", prefix, text);
    return at + strlen(needle);
}

static uint64_t sample_u64(const char *text, const char *prefix)
{
    return strtoull(sample_value(text, prefix), NULL, 10);
}

static void check_histogram(const char *prom, const char *json, swarm_pool *pool, uint32_t kind,
                            const char *family, uint64_t expect_count)
{
    uint64_t cum[16], count = 0;
    int64_t sum_ns = 0;
    assert_int_equal(swarm_pool_get_histogram(pool, kind, doc_le_ns, 16, cum, &count, &sum_ns), 0);
    assert_int_equal(count, expect_count);
    char line[256], secs[64];
    snprintf(line, sizeof line, "# TYPE swarm_pool_%s histogram", family);
    assert_has_line(prom, line);
    uint64_t prev = 0;
    for (int b = 0; b < 16; b++) {
        fmt_seconds(secs, sizeof secs, doc_le_ns[b]);
        snprintf(line, sizeof line, "swarm_pool_%s_bucket{pool=\"agents\",le=\"%s\"}", family,
                 secs);
        uint64_t got = sample_u64(prom, line);
        assert_int_equal(got, cum[b]); /* the pool's own cumulative count at that bound */
        assert_true(got >= prev);      /* cumulative */
        prev = got;
    }
    snprintf(line, sizeof line, "swarm_pool_%s_bucket{pool=\"agents\",le=\"+Inf\"}", family);
    assert_int_equal(sample_u64(prom, line), count);
    snprintf(line, sizeof line, "swarm_pool_%s_count{pool=\"agents\"}", family);
    assert_int_equal(sample_u64(prom, line), count);
    fmt_seconds(secs, sizeof secs, sum_ns);
    snprintf(line, sizeof line, "swarm_pool_%s_sum{pool=\"agents\"} %s", family, secs);
    assert_has_line(prom, line);
    snprintf(line, sizeof line, "\"%s_count\":%llu,\"%s_sum\":%s", family,
             (unsigned long long)count, family, secs);
    assert_non_null(strstr(json, line));
}

static void test_metrics_pool_histograms_match_the_pool(void **state)
{
    (void)state;
    pool_world w;
    /* 200 us per call: a pool that samples the timing of very fast calls still times every one
     * of these, so the counts are exact. */
    pool_world_start_latency(&w, 2, 200000);
    pool_world_run(&w, 50);
    swarm_metrics *m = make_metrics(2);
    assert_int_equal(swarm_metrics_add_pool(m, "agents", w.pool), 0);
    char *prom = render(m, SWARM_METRICS_PROMETHEUS);
    char *json = render(m, SWARM_METRICS_JSON);
    check_histogram(prom, json, w.pool, SWARM_POOL_HIST_WAIT, "queue_wait_seconds", 50);
    check_histogram(prom, json, w.pool, SWARM_POOL_HIST_SERVICE, "service_seconds", 50);
    /* The percentile gauges stay for compatibility. */
    assert_non_null(strstr(prom, "\nswarm_pool_queue_wait_p99_seconds{pool=\"agents\"} "));
    free(prom);
    free(json);
    swarm_metrics_destroy(m);
    pool_world_stop(&w);
}

/* ---- rejected sends ------------------------------------------------------------------------ */

typedef struct bump_ctx {
    swarm_metrics *m;
    swarm_chan *ch;
    _Atomic int stop;
} bump_ctx;

static void *bumper(void *arg)
{
    bump_ctx *c = arg;
    for (int i = 0; i < 20000; i++)
        assert_int_equal(swarm_metrics_chan_rejected(c->m, c->ch, 1), 0);
    return NULL;
}

static void *bump_renderer(void *arg)
{
    bump_ctx *c = arg;
    char buf[16384];
    while (!atomic_load(&c->stop))
        assert_int_equal(
            swarm_metrics_render(c->m, SWARM_METRICS_PROMETHEUS, buf, sizeof buf, NULL), 0);
    return NULL;
}

/* A full channel refuses a try_send; the host reports it and the counter says so exactly,
 * including under concurrent reports and renders. */
static void test_metrics_chan_rejected_counts_exactly(void **state)
{
    (void)state;
    swarm_chan *ch = make_chan(1, 8);
    swarm_chan *other = make_chan(1, 8);
    swarm_metrics *m = make_metrics(4);
    assert_int_equal(swarm_metrics_add_chan(m, "requests", ch), 0);
    uint64_t v = 1;
    assert_int_equal(swarm_chan_try_send(ch, &v), 0);
    assert_int_equal(swarm_chan_try_send(ch, &v), SWARM_EAGAIN);
    assert_int_equal(swarm_metrics_chan_rejected(m, ch, 1), 0);
    char *prom = render(m, SWARM_METRICS_PROMETHEUS);
    assert_has_line(prom, "swarm_channel_rejected_total{channel=\"requests\"} 1");
    free(prom);

    assert_int_equal(swarm_metrics_chan_rejected(NULL, ch, 1), SWARM_EINVAL);
    assert_int_equal(swarm_metrics_chan_rejected(m, NULL, 1), SWARM_EINVAL);
    assert_int_equal(swarm_metrics_chan_rejected(m, other, 1), SWARM_EINVAL); /* not registered */

    bump_ctx c = {m, ch, 0};
    pthread_t t[5];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, bumper, &c), 0);
    assert_int_equal(pthread_create(&t[4], NULL, bump_renderer, &c), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    atomic_store(&c.stop, 1);
    pthread_join(t[4], NULL);
    prom = render(m, SWARM_METRICS_PROMETHEUS);
    assert_has_line(prom, "swarm_channel_rejected_total{channel=\"requests\"} 80001");
    char *json = render(m, SWARM_METRICS_JSON);
    assert_non_null(strstr(json, "\"rejected\":80001,"));
    free(prom);
    free(json);
    swarm_metrics_destroy(m);
    swarm_chan_destroy(ch);
    swarm_chan_destroy(other);
}

/* ---- decisions by reason, policy bounds ---------------------------------------------------- */

static void test_metrics_decisions_counted_by_reason(void **state)
{
    (void)state;
    loop_world w = {0, 12};
    swarm_policy *pol = NULL;
    swarm_reconcile *r = NULL;
    make_loop(&w, &pol, &r);
    swarm_metrics *m = make_metrics(2);
    assert_int_equal(swarm_metrics_add_reconcile(m, "scaler", r), 0);
    /* Cold start to 3; then a queue far above the max of 20 replicas: capped by max; then an
     * empty queue for a while (cooldown holds, then idle). Every decision lands in one reason. */
    int64_t now = SEC;
    assert_int_equal(swarm_reconcile_step(r, now, NULL), 0);
    w.queued = 1000;
    for (int i = 0; i < 3; i++)
        assert_int_equal(swarm_reconcile_step(r, now += SEC, NULL), 0);
    w.queued = 0;
    for (int i = 0; i < 5; i++)
        assert_int_equal(swarm_reconcile_step(r, now += 100 * SEC, NULL), 0);

    swarm_reconcile_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    assert_int_equal(swarm_reconcile_get_stats(r, &st), 0);
    assert_int_equal(st.decisions, 9);
    char *prom = render(m, SWARM_METRICS_PROMETHEUS);
    uint64_t sum = 0, series = 0;
    for (uint32_t i = 0; i < SWARM_RECONCILE_REASONS; i++) {
        char line[200];
        const char *name = i == 0 ? "none" : swarm_policy_rule_name(i);
        snprintf(line, sizeof line,
                 "\nswarm_reconcile_decisions_by_reason_total{loop=\"scaler\",reason=\"%s\"} ",
                 name);
        const char *at = strstr(prom, line);
        if (st.decisions_by_reason[i] == 0) {
            assert_null(at); /* a reason never seen has no series */
            continue;
        }
        assert_non_null(at);
        assert_int_equal(strtoull(at + strlen(line), NULL, 10), st.decisions_by_reason[i]);
        sum += st.decisions_by_reason[i];
        series++;
    }
    assert_int_equal(sum, st.decisions); /* every decision counted once */
    assert_true(series >= 3);            /* cold_start, max, and the scale-in reasons */
    assert_true(st.decisions_by_reason[SWARM_RULE_COLD_START] == 1);
    assert_true(st.decisions_by_reason[SWARM_RULE_MAX] >= 1);
    char *json = render(m, SWARM_METRICS_JSON);
    assert_non_null(strstr(json, "\"decisions_by_reason\":{"));
    assert_non_null(strstr(json, "\"cold_start\":1"));
    free(prom);
    free(json);
    swarm_metrics_destroy(m);
    swarm_reconcile_destroy(r);
    swarm_policy_destroy(pol);
}

static void test_metrics_loop_bounds_and_target(void **state)
{
    (void)state;
    loop_world w = {0, 12};
    swarm_policy *pol = NULL, *pol2 = NULL;
    swarm_reconcile *r = NULL, *r2 = NULL;
    make_loop(&w, &pol, &r);
    make_loop(&w, &pol2, &r2); /* not registered */
    swarm_metrics *m = make_metrics(2);
    assert_int_equal(swarm_metrics_add_reconcile(m, "scaler", r), 0);
    char *prom = render(m, SWARM_METRICS_PROMETHEUS);
    assert_null(strstr(prom, "swarm_reconcile_min_replicas")); /* not set: not rendered */
    assert_null(strstr(prom, "swarm_reconcile_target_per_replica"));
    free(prom);
    assert_int_equal(swarm_metrics_set_loop_bounds(NULL, r, 0, 1, 1), SWARM_EINVAL);
    assert_int_equal(swarm_metrics_set_loop_bounds(m, NULL, 0, 1, 1), SWARM_EINVAL);
    assert_int_equal(swarm_metrics_set_loop_bounds(m, r2, 0, 1, 1), SWARM_EINVAL);
    assert_int_equal(swarm_metrics_set_loop_bounds(m, r, -1, 1, 1), SWARM_EINVAL);
    assert_int_equal(swarm_metrics_set_loop_bounds(m, r, 3, 2, 1), SWARM_EINVAL);
    assert_int_equal(swarm_metrics_set_loop_bounds(m, r, 0, 2, 0), SWARM_EINVAL);
    assert_int_equal(swarm_metrics_set_loop_bounds(m, r, 0, 2, 0.0 / 0.0), SWARM_EINVAL);
    assert_int_equal(swarm_metrics_set_loop_bounds(m, r, 0, 2, 1e300), SWARM_EINVAL);
    assert_int_equal(swarm_metrics_set_loop_bounds(m, r, 1, 20, 2.5), 0);
    prom = render(m, SWARM_METRICS_PROMETHEUS);
    assert_has_line(prom, "# TYPE swarm_reconcile_min_replicas gauge");
    assert_has_line(prom, "swarm_reconcile_min_replicas{loop=\"scaler\"} 1");
    assert_has_line(prom, "swarm_reconcile_max_replicas{loop=\"scaler\"} 20");
    assert_has_line(prom, "swarm_reconcile_target_per_replica{loop=\"scaler\"} 2.5");
    char *json = render(m, SWARM_METRICS_JSON);
    assert_non_null(strstr(json, "\"min_replicas\":1,\"max_replicas\":20,"
                                 "\"target_per_replica\":2.5,"));
    free(prom);
    free(json);
    assert_int_equal(swarm_metrics_set_loop_bounds(m, r, 0, 100, 0.0005), 0);
    prom = render(m, SWARM_METRICS_PROMETHEUS);
    assert_has_line(prom, "swarm_reconcile_target_per_replica{loop=\"scaler\"} 0.001");
    free(prom);
    swarm_metrics_destroy(m);
    swarm_reconcile_destroy(r);
    swarm_reconcile_destroy(r2);
    swarm_policy_destroy(pol);
    swarm_policy_destroy(pol2);
}

/* ---- engine decorators --------------------------------------------------------------------- */

static swarm_engine *make_mock(void)
{
    swarm_mock_opts mo;
    swarm_mock_opts_init(&mo);
    swarm_engine *e = NULL;
    assert_int_equal(swarm_engine_mock_create(&e, &mo), 0);
    return e;
}

static int no_sleep(void *ctx, int64_t ns, swarm_cancel *cancel)
{
    (void)ctx, (void)ns, (void)cancel;
    return 0;
}

static int call(swarm_engine *e, uint64_t id)
{
    swarm_request q;
    swarm_request_init(&q);
    q.id = id;
    q.payload = "x";
    q.payload_len = 1;
    swarm_response *resp = NULL;
    assert_int_equal(swarm_response_create(&resp, NULL), 0);
    int rc = swarm_engine_infer(e, &q, resp);
    swarm_response_destroy(resp);
    return rc;
}

static void test_metrics_engine_decorators(void **state)
{
    (void)state;
    /* retry(mock): two unavailable outcomes, then success: 3 attempts, 2 retries. */
    swarm_engine *mock1 = make_mock();
    int32_t codes[] = {SWARM_EUNAVAILABLE, SWARM_EUNAVAILABLE, 0};
    assert_int_equal(swarm_engine_mock_script(mock1, codes, 3), 0);
    swarm_retry_opts ro;
    swarm_retry_opts_init(&ro);
    ro.sleep = no_sleep;
    swarm_engine *retry = NULL;
    assert_int_equal(swarm_engine_retry_create(&retry, mock1, &ro), 0);
    /* breaker(mock): minimum 2 calls, 50 %: two failures open it; the next call is refused. */
    swarm_engine *mock2 = make_mock();
    int32_t fails[] = {SWARM_EUNAVAILABLE, SWARM_EUNAVAILABLE};
    assert_int_equal(swarm_engine_mock_script(mock2, fails, 2), 0);
    swarm_breaker_opts bo;
    swarm_breaker_opts_init(&bo);
    bo.window_size = 4;
    bo.minimum_calls = 2;
    swarm_engine *breaker = NULL;
    assert_int_equal(swarm_engine_breaker_create(&breaker, mock2, &bo), 0);
    swarm_engine *batcher = NULL;
    assert_int_equal(swarm_engine_batcher_create(&batcher, make_mock(), NULL), 0);
    swarm_engine *plain = make_mock();

    swarm_metrics *m = make_metrics(8);
    assert_int_equal(swarm_metrics_add_engine(m, "llm", retry), 0);
    assert_int_equal(swarm_metrics_add_engine(m, "llm", breaker), 0); /* another kind: ok */
    assert_int_equal(swarm_metrics_add_engine(m, "llm", retry), SWARM_EINVAL); /* same kind */
    assert_int_equal(swarm_metrics_add_engine(m, "batch", batcher), 0);
    assert_int_equal(swarm_metrics_add_engine(m, "mock", plain), SWARM_ENOTSUP);
    assert_int_equal(swarm_metrics_add_engine(m, "x", NULL), SWARM_EINVAL);
    assert_int_equal(swarm_metrics_add_engine(m, "bad name", batcher), SWARM_EINVAL);

    assert_int_equal(call(retry, 1), 0);
    assert_int_equal(call(breaker, 2), SWARM_EUNAVAILABLE);
    assert_int_equal(call(breaker, 3), SWARM_EUNAVAILABLE);
    assert_int_equal(call(breaker, 4), SWARM_EBREAKER_OPEN);
    assert_int_equal(call(batcher, 5), 0);

    char *prom = render(m, SWARM_METRICS_PROMETHEUS);
    assert_has_line(prom, "# TYPE swarm_engine_retry_retries_total counter");
    assert_has_line(prom, "swarm_engine_retry_calls_total{engine=\"llm\"} 1");
    assert_has_line(prom, "swarm_engine_retry_attempts_total{engine=\"llm\"} 3");
    assert_has_line(prom, "swarm_engine_retry_retries_total{engine=\"llm\"} 2");
    assert_has_line(prom, "swarm_engine_retry_budget_denied_total{engine=\"llm\"} 0");
    assert_has_line(prom, "# TYPE swarm_engine_breaker_state gauge");
    assert_has_line(prom, "swarm_engine_breaker_state{engine=\"llm\"} 1");
    assert_has_line(prom, "swarm_engine_breaker_opened_total{engine=\"llm\"} 1");
    assert_has_line(prom, "swarm_engine_breaker_transitions_total{engine=\"llm\"} 1");
    assert_has_line(prom, "swarm_engine_breaker_rejected_total{engine=\"llm\"} 1");
    assert_has_line(prom, "swarm_engine_breaker_failures_total{engine=\"llm\"} 2");
    assert_has_line(prom, "swarm_engine_batcher_requests_total{engine=\"batch\"} 1");
    assert_has_line(prom, "swarm_engine_batcher_batches_total{engine=\"batch\"} 1");
    assert_null(strstr(prom, "engine=\"mock\""));
    /* The budget (10 tokens by default, two failures took 2, a success returned 0.1). */
    swarm_retry_stats rs = {.size = sizeof rs};
    assert_int_equal(swarm_engine_retry_get_stats(retry, &rs), 0);
    char tokens[32], line[160];
    snprintf(tokens, sizeof tokens, "%u.%03u", rs.budget_milli / 1000, rs.budget_milli % 1000);
    for (size_t n = strlen(tokens); tokens[n - 1] == '0' || tokens[n - 1] == '.';) {
        char c = tokens[n - 1];
        tokens[--n] = '\0';
        if (c == '.')
            break;
    }
    assert_true(rs.budget_milli < 10000); /* two failures took tokens */
    snprintf(line, sizeof line, "swarm_engine_retry_budget_tokens{engine=\"llm\"} %s", tokens);
    assert_has_line(prom, line);
    char *json = render(m, SWARM_METRICS_JSON);
    /* One object per name, the layers merged in registration order. */
    assert_non_null(strstr(json, "\"engines\":{\"llm\":{\"retry_budget_tokens\":"));
    assert_non_null(strstr(json, ",\"retry_retries\":2,"));
    assert_non_null(strstr(json, ",\"breaker_state\":1,"));
    assert_non_null(strstr(json, "},\"batch\":{\"batcher_max_batch_seen\":1,"));
    free(prom);
    free(json);
    swarm_metrics_destroy(m);
    swarm_engine_destroy(retry);
    swarm_engine_destroy(breaker);
    swarm_engine_destroy(batcher);
    swarm_engine_destroy(plain);
}

/* ---- robustness: a forked child ------------------------------------------------------------ */

/* A render in a forked child (whose objects may refuse reads with SWARM_ESTATE, or read fine
 * when no other thread held their locks) returns promptly with the registry's own series and
 * every object either rendered or counted as skipped, never a hang or a crash. */
static void test_metrics_render_in_forked_child(void **state)
{
    (void)state;
    pool_world w;
    pool_world_start(&w, 2);
    pool_world_run(&w, 5);
    loop_world lw = {0, 12};
    swarm_policy *pol = NULL;
    swarm_reconcile *r = NULL;
    make_loop(&lw, &pol, &r);
    swarm_metrics *m = make_metrics(4);
    assert_int_equal(swarm_metrics_add_pool(m, "agents", w.pool), 0);
    assert_int_equal(swarm_metrics_add_reconcile(m, "scaler", r), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(30); /* a hang kills the child, and the parent sees the signal */
        static char buf[65536];
        size_t n = 0;
        int rc = swarm_metrics_render(m, SWARM_METRICS_PROMETHEUS, buf, sizeof buf, &n);
        if (rc != 0 || strstr(buf, "swarm_build_info{") == NULL)
            _exit(1);
        bool pool_in = strstr(buf, "{pool=\"agents\"}") != NULL;
        bool loop_in = strstr(buf, "{loop=\"scaler\"}") != NULL;
        char want[64];
        snprintf(want, sizeof want, "\nswarm_metrics_objects_skipped %d\n",
                 (int)!pool_in + (int)!loop_in);
        _exit(strstr(buf, want) != NULL ? 0 : 2);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    swarm_metrics_destroy(m);
    swarm_reconcile_destroy(r);
    swarm_policy_destroy(pol);
    pool_world_stop(&w);
}

/* ---- --print mode -------------------------------------------------------------------------- */

static int print_example(const char *what)
{
    int format;
    if (strcmp(what, "prometheus") == 0)
        format = SWARM_METRICS_PROMETHEUS;
    else if (strcmp(what, "json") == 0)
        format = SWARM_METRICS_JSON;
    else
        return 2;
    swarm_chan *ch = chan_with_traffic();
    pool_world w;
    pool_world_start(&w, 2);
    pool_world_run(&w, 20);
    loop_world lw = {0, 12};
    swarm_policy *pol = NULL;
    swarm_reconcile *r = NULL;
    make_loop(&lw, &pol, &r);
    (void)swarm_reconcile_step(r, SEC, NULL);
    swarm_engine *retry = NULL, *breaker = NULL, *batcher = NULL;
    swarm_engine_retry_create(&retry, make_mock(), NULL);
    swarm_engine_breaker_create(&breaker, make_mock(), NULL);
    swarm_engine_batcher_create(&batcher, make_mock(), NULL);
    (void)call(retry, 1);
    (void)call(batcher, 2);
    swarm_metrics *m = make_metrics(8);
    swarm_metrics_add_chan(m, "requests", ch);
    swarm_metrics_add_chan(m, "tasks", w.in);
    swarm_metrics_add_pool(m, "agents", w.pool);
    swarm_metrics_add_reconcile(m, "scaler", r);
    swarm_metrics_set_loop_bounds(m, r, 0, 20, 5);
    swarm_metrics_add_engine(m, "llm", retry);
    swarm_metrics_add_engine(m, "llm", breaker);
    swarm_metrics_add_engine(m, "llm", batcher);
    swarm_metrics_chan_rejected(m, ch, 3);
    size_t bound = 0;
    swarm_metrics_render_bound(m, format, &bound);
    char *buf = malloc(bound);
    size_t n = 0;
    int rc = buf != NULL ? swarm_metrics_render(m, format, buf, bound, &n) : SWARM_ENOMEM;
    if (rc == 0)
        fwrite(buf, 1, n, stdout);
    free(buf);
    swarm_metrics_destroy(m);
    swarm_engine_destroy(retry);
    swarm_engine_destroy(breaker);
    swarm_engine_destroy(batcher);
    swarm_reconcile_destroy(r);
    swarm_policy_destroy(pol);
    pool_world_stop(&w);
    swarm_chan_destroy(ch);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--print") == 0)
        return print_example(argv[2]);
    const struct CMUnitTest tests[] = {
        SWARM_TEST(test_metrics_create_invalid_args),
        SWARM_TEST(test_metrics_create_enomem),
        SWARM_TEST(test_metrics_add_rejects_bad_names_and_overflow),
        SWARM_TEST(test_metrics_render_bad_args),
        SWARM_TEST(test_metrics_render_empty_registry),
        SWARM_TEST(test_metrics_render_chan_prometheus_exact),
        SWARM_TEST(test_metrics_render_chan_json_exact),
        SWARM_TEST(test_metrics_render_seconds_are_exact),
        SWARM_TEST(test_metrics_render_pool_lines),
        SWARM_TEST(test_metrics_render_reconcile_lines),
        SWARM_TEST(test_metrics_render_too_small_returns_erange),
        SWARM_TEST(test_metrics_render_bound_covers_every_value),
        SWARM_TEST(test_metrics_render_races_traffic),
        SWARM_TEST(test_metrics_pool_histograms_match_the_pool),
        SWARM_TEST(test_metrics_chan_rejected_counts_exactly),
        SWARM_TEST(test_metrics_decisions_counted_by_reason),
        SWARM_TEST(test_metrics_loop_bounds_and_target),
        SWARM_TEST(test_metrics_engine_decorators),
        SWARM_TEST(test_metrics_render_in_forked_child),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
