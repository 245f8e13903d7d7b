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
#include <time.h>

#include <swarm/swarm.h>

#define MS  1000000LL
#define SEC 1000000000LL

static void sleep_ns(int64_t ns)
{
    struct timespec ts = {(time_t)(ns / SEC), (long)(ns % SEC)};
    nanosleep(&ts, NULL);
}

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
    char buf[128];
    size_t n = 99;
    assert_int_equal(swarm_metrics_render(m, SWARM_METRICS_PROMETHEUS, buf, sizeof buf, &n), 0);
    assert_int_equal(n, 0);
    assert_string_equal(buf, "");
    assert_int_equal(swarm_metrics_render(m, SWARM_METRICS_JSON, buf, sizeof buf, &n), 0);
    assert_string_equal(buf, "{\"channels\":{},\"pools\":{},\"loops\":{}}\n");
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
    snprintf(want, sizeof want,
             "# HELP swarm_channel_length Elements queued now.\n"
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
             "\"received\":2,\"dropped\":0,\"send_blocked_seconds\":0,"
             "\"recv_blocked_seconds\":0},"
             "\"other\":{\"length\":0,\"capacity\":2,\"high_watermark\":0,"
             "\"blocked_senders\":0,\"blocked_receivers\":0,\"closed\":1,\"sent\":0,"
             "\"received\":0,\"dropped\":0,\"send_blocked_seconds\":0,"
             "\"recv_blocked_seconds\":0}"
             "},\"pools\":{},\"loops\":{}}\n",
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

static void pool_world_start(pool_world *w, uint32_t workers)
{
    w->in = make_chan(64, sizeof(swarm_task));
    swarm_mock_opts mo;
    swarm_mock_opts_init(&mo);
    assert_int_equal(swarm_engine_mock_create(&w->eng, &mo), 0);
    swarm_pool_opts po;
    swarm_pool_opts_init(&po);
    po.workers = workers;
    po.max_workers = 8;
    po.input = w->in;
    po.engine = w->eng;
    assert_int_equal(swarm_pool_create(&w->pool, &po), 0);
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
    assert_non_null(strstr(json, "}},\"loops\":{}}\n"));

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
    assert_has_line(prom, "swarm_reconcile_last_reason{loop=\"scaler\",reason=\"none\"} 0");
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
    snprintf(line, sizeof line, "swarm_reconcile_last_reason{loop=\"scaler\",reason=\"%s\"} %d",
             swarm_policy_rule_name(SWARM_RULE_COLD_START), (int)SWARM_RULE_COLD_START);
    assert_has_line(prom, line);
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

    swarm_metrics *m = make_metrics(4);
    size_t empty = 0;
    assert_int_equal(swarm_metrics_render_bound(m, SWARM_METRICS_PROMETHEUS, &empty), 0);
    assert_int_equal(empty, 1);
    assert_int_equal(swarm_metrics_add_chan(m, "requests", ch), 0);
    assert_int_equal(swarm_metrics_add_pool(m, "agents", w.pool), 0);
    assert_int_equal(swarm_metrics_add_reconcile(m, "scaler", r), 0);
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
    swarm_metrics *m = make_metrics(4);
    swarm_metrics_add_chan(m, "requests", ch);
    swarm_metrics_add_chan(m, "tasks", w.in);
    swarm_metrics_add_pool(m, "agents", w.pool);
    swarm_metrics_add_reconcile(m, "scaler", r);
    size_t bound = 0;
    swarm_metrics_render_bound(m, format, &bound);
    char *buf = malloc(bound);
    size_t n = 0;
    int rc = buf != NULL ? swarm_metrics_render(m, format, buf, bound, &n) : SWARM_ENOMEM;
    if (rc == 0)
        fwrite(buf, 1, n, stdout);
    free(buf);
    swarm_metrics_destroy(m);
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
        cmocka_unit_test(test_metrics_create_invalid_args),
        cmocka_unit_test(test_metrics_create_enomem),
        cmocka_unit_test(test_metrics_add_rejects_bad_names_and_overflow),
        cmocka_unit_test(test_metrics_render_bad_args),
        cmocka_unit_test(test_metrics_render_empty_registry),
        cmocka_unit_test(test_metrics_render_chan_prometheus_exact),
        cmocka_unit_test(test_metrics_render_chan_json_exact),
        cmocka_unit_test(test_metrics_render_seconds_are_exact),
        cmocka_unit_test(test_metrics_render_pool_lines),
        cmocka_unit_test(test_metrics_render_reconcile_lines),
        cmocka_unit_test(test_metrics_render_too_small_returns_erange),
        cmocka_unit_test(test_metrics_render_bound_covers_every_value),
        cmocka_unit_test(test_metrics_render_races_traffic),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
