/* SPDX-License-Identifier: MIT */
/*
 * 05_metrics_http: export a live pool's metrics over HTTP for Prometheus and KEDA.
 *
 * A channel carries tasks to an elastic pool (the mock engine, behind a circuit breaker, stands
 * in for a model); an in-process reconcile loop resizes the pool on its backlog; a registry
 * exports the channel, the pool, the loop (with its policy bounds) and the breaker; and
 * libmicrohttpd (one thread per connection, so an idle or slow client never delays another)
 * serves
 *
 *   GET  /metrics      Prometheus text exposition (scrape it, or KEDA's prometheus trigger)
 *   GET  /keda         JSON for KEDA's metrics-api trigger, e.g. valueLocation
 *                      "pools.agents.backlog"
 *   GET  /healthz      "ok" (200) while serving, 503 once shutdown began: a probe that reads
 *                      no statistics
 *   POST /work?n=N     enqueue N tasks (how a load generator reaches the pods in deploy/); sends
 *                      the full channel refuses are answered 503 and counted in
 *                      swarm_channel_rejected_total
 *
 * HEAD works on every GET path and answers the Content-Length the GET would have. Renders go
 * into one buffer sized once with swarm_metrics_render_bound() (under a mutex: renders serialize
 * in the registry anyway), then libmicrohttpd copies the body into its response.
 *
 *   usage: 05_metrics_http [--bind ADDR] [--port N] [--seconds S] [--rate R] [--service-ms MS]
 *                          [--max-workers N] [--target-per-worker T] [--self-check]
 *     --bind         address to listen on (default 127.0.0.1; 0.0.0.0 in a pod)
 *     --port         TCP port (default 9464; 0 picks a free one); the first line printed is
 *                    "listening on http://ADDR:PORT/"
 *     --seconds      run time (default 5; 0: until SIGTERM or SIGINT)
 *     --rate         tasks per second generated in-process: the first half of each 10 s cycle
 *                    at R, the second at R/20 (default 300; 0: only POST /work)
 *     --service-ms   engine time per task (default 20)
 *     --max-workers  in-process scaling bound (default 8)
 *     --target-per-worker  backlog per worker thread the in-process loop aims for (default 4);
 *                    deploy/ sets KEDA's per-pod target to max-workers x this
 *     --self-check   fetch the endpoints from a client thread and verify them; exit 1 if wrong
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <swarm/swarm.h>

#define MS  1000000LL
#define SEC 1000000000LL

static const char *bind_addr = "127.0.0.1";
static int port = 9464;
static double run_seconds = 5;
static double rate = 300;
static int64_t service_ns = 20 * MS;
static uint32_t max_workers = 8;
static double target_per_worker = 4;
static int self_check;

/* Set by the signal handler, which may run on any thread (a library or server thread too):
 * a lock-free atomic, not a volatile sig_atomic_t (that is safe only within one thread). */
static atomic_int got_signal;
static atomic_int stopping;
static swarm_chan *requests;
static swarm_pool *pool;
static swarm_metrics *registry;
static atomic_ullong sent, rejected;
static uint64_t next_id = 1;
static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store_explicit(&got_signal, 1, memory_order_relaxed);
}

static void sleep_ns(int64_t ns)
{
    struct timespec ts = {(time_t)(ns / SEC), (long)(ns % SEC)};
    nanosleep(&ts, NULL);
}

static int enqueue(int64_t timeout_ns)
{
    static const char payload[] = "summarize: the quick brown fox";
    swarm_task t;
    memset(&t, 0, sizeof t);
    pthread_mutex_lock(&id_lock);
    t.id = next_id++;
    pthread_mutex_unlock(&id_lock);
    t.payload = payload;
    t.payload_len = sizeof payload - 1;
    t.enqueued_ns = swarm_now_ns();
    int rc = swarm_chan_send_timeout(requests, &t, timeout_ns);
    if (rc == 0) {
        atomic_fetch_add(&sent, 1);
    } else {
        /* The channel cannot see a send that did not happen: count it where operators look. */
        atomic_fetch_add(&rejected, 1);
        (void)swarm_metrics_chan_rejected(registry, requests, 1);
    }
    return rc;
}

/* In-process load: a square wave, so the in-process loop has something to scale on. */
static void *producer(void *arg)
{
    (void)arg;
    int64_t start = swarm_now_ns();
    while (!atomic_load(&stopping)) {
        int64_t phase = (swarm_now_ns() - start) % (10 * SEC);
        double r = phase < 5 * SEC ? rate : rate / 20;
        if (r <= 0) {
            sleep_ns(50 * MS);
            continue;
        }
        (void)enqueue(10 * MS);
        sleep_ns((int64_t)(SEC / r));
    }
    return NULL;
}

/* ---- the in-process loop: observe the pool, resize it ------------------------------------- */

static int observe(void *ctx, swarm_policy_obs *obs)
{
    (void)ctx;
    swarm_pool_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    int rc = swarm_pool_get_stats(pool, &st);
    if (rc != 0)
        return rc;
    obs->current_replicas = (int32_t)st.target;
    obs->ready_replicas = (int32_t)(st.ready < st.target ? st.ready : st.target);
    obs->starting_replicas = (int32_t)st.starting;
    if (obs->ready_replicas + obs->starting_replicas > obs->current_replicas)
        obs->starting_replicas = obs->current_replicas - obs->ready_replicas;
    obs->n_metrics = 1;
    obs->metrics[0].kind = SWARM_METRIC_TOTAL;
    obs->metrics[0].value = (double)st.queued;
    obs->metrics[0].in_flight = (double)st.in_flight;
    obs->metrics[0].target = target_per_worker; /* backlog per worker thread */
    return 0;
}

static int actuate(void *ctx, int32_t desired, const swarm_policy_decision *d)
{
    (void)ctx, (void)d;
    return swarm_pool_resize(pool, (uint32_t)desired);
}

/* ---- HTTP: libmicrohttpd, one thread per connection ---------------------------------------- */

typedef struct server {
    swarm_metrics *m;
    pthread_mutex_t buf_lock; /* guards buf: connections run on their own threads */
    char *buf;                /* render buffer, sized by swarm_metrics_render_bound() */
    size_t buf_len;
    atomic_ullong served_metrics, served_keda, served_work, served_health;
} server;

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type,
                             const char *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned code, const char *text)
{
    return reply(c, code, "text/plain; charset=utf-8", text, strlen(text));
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_len, void **con_cls)
{
    (void)version, (void)upload;
    server *s = cls;
    static int first_call_marker;
    if (*con_cls == NULL) { /* headers only so far; answer once the (empty) body is in */
        *con_cls = &first_call_marker;
        return MHD_YES;
    }
    if (*upload_len != 0) { /* /work takes no body: discard whatever comes */
        *upload_len = 0;
        return MHD_YES;
    }
    bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, "HEAD") == 0;
    if (strcmp(url, "/healthz") == 0) {
        if (!get)
            return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET\n");
        atomic_fetch_add(&s->served_health, 1);
        return atomic_load(&stopping) ? reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "stopping\n")
                                      : reply_text(c, MHD_HTTP_OK, "ok\n");
    }
    if (strcmp(url, "/work") == 0) {
        if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
            return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use POST\n");
        if (atomic_load(&stopping)) { /* draining: the work would only be dropped */
            (void)swarm_metrics_chan_rejected(s->m, requests, 1);
            atomic_fetch_add(&rejected, 1);
            return reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "stopping\n");
        }
        const char *q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "n");
        long n = q != NULL ? strtol(q, NULL, 10) : 1;
        n = n < 0 ? 0 : (n > 100000 ? 100000 : n);
        long accepted = 0;
        while (accepted < n && enqueue(0) == 0)
            accepted++;
        if (accepted < n) /* enqueue() counted the first refusal; the rest were never tried */
            (void)swarm_metrics_chan_rejected(s->m, requests, (uint64_t)(n - accepted - 1));
        char body[64];
        int bl = snprintf(body, sizeof body, "{\"accepted\":%ld,\"requested\":%ld}\n", accepted, n);
        atomic_fetch_add(&s->served_work, 1);
        return reply(c, accepted == n ? MHD_HTTP_ACCEPTED : MHD_HTTP_SERVICE_UNAVAILABLE,
                     "application/json", body, (size_t)bl);
    }
    int format;
    const char *type;
    if (strcmp(url, "/metrics") == 0) {
        format = SWARM_METRICS_PROMETHEUS;
        type = "text/plain; version=0.0.4; charset=utf-8";
    } else if (strcmp(url, "/keda") == 0) {
        format = SWARM_METRICS_JSON;
        type = "application/json";
    } else {
        return reply_text(c, MHD_HTTP_NOT_FOUND, "try /metrics, /keda or /healthz\n");
    }
    if (!get)
        return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET\n");
    /* HEAD: libmicrohttpd sends the headers of this full response, Content-Length included,
     * and leaves the body out. */
    pthread_mutex_lock(&s->buf_lock);
    size_t n = 0;
    int rc = swarm_metrics_render(s->m, format, s->buf, s->buf_len, &n);
    enum MHD_Result ret = rc == 0
                              ? reply(c, MHD_HTTP_OK, type, s->buf, n)
                              : reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, swarm_strerror(rc));
    pthread_mutex_unlock(&s->buf_lock);
    atomic_fetch_add(format == SWARM_METRICS_PROMETHEUS ? &s->served_metrics : &s->served_keda, 1);
    return ret;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ---- --self-check: a client on another thread ---------------------------------------------- */

typedef struct check {
    int port;
    int ok;
    char why[256];
} check;

/* GET or POST @path; the whole response (headers and body) goes into @out. */
static int http(int p, const char *method, const char *path, char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)p);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char req[300];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.0\r\nHost: localhost\r\n\r\n", method, path);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 || send_all(fd, req, (size_t)n) != 0) {
        close(fd);
        return -1;
    }
    size_t len = 0;
    for (;;) {
        ssize_t r = recv(fd, out + len, cap - 1 - len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || (len += (size_t)r) >= cap - 1)
            break;
    }
    out[len] = '\0';
    close(fd);
    return 0;
}

static void *self_check_thread(void *arg)
{
    check *c = arg;
    static char resp[1 << 16];
    sleep_ns(300 * MS); /* let some traffic flow */
#define EXPECT(cond, msg)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            snprintf(c->why, sizeof c->why, "%s", msg);                                            \
            return NULL;                                                                           \
        }                                                                                          \
    } while (0)
    EXPECT(http(c->port, "POST", "/work?n=20", resp, sizeof resp) == 0, "POST /work failed");
    EXPECT(strncmp(resp + 8, " 202 ", 5) == 0, "POST /work: not 202");
    EXPECT(http(c->port, "GET", "/metrics", resp, sizeof resp) == 0, "GET /metrics failed");
    EXPECT(strncmp(resp + 8, " 200 OK\r\n", 9) == 0, "GET /metrics: not 200");
    EXPECT(strstr(resp, "Content-Type: text/plain; version=0.0.4") != NULL, "metrics type");
    EXPECT(strstr(resp, "\n# TYPE swarm_channel_length gauge\n") != NULL, "no channel family");
    EXPECT(strstr(resp, "\nswarm_channel_sent_total{channel=\"requests\"} ") != NULL,
           "no channel counter");
    EXPECT(strstr(resp, "\nswarm_pool_backlog{pool=\"agents\"} ") != NULL, "no pool backlog");
    EXPECT(strstr(resp, "\nswarm_reconcile_desired_replicas{loop=\"scaler\"} ") != NULL, "no loop");
    EXPECT(http(c->port, "GET", "/keda", resp, sizeof resp) == 0, "GET /keda failed");
    EXPECT(strncmp(resp + 8, " 200 OK\r\n", 9) == 0, "GET /keda: not 200");
    const char *body = strstr(resp, "\r\n\r\n");
    EXPECT(body != NULL && strncmp(body + 4, "{\"channels\":{\"requests\":{\"length\":", 34) == 0,
           "JSON does not start with channels.requests.length");
    EXPECT(strstr(body, "\"pools\":{\"agents\":{\"workers_target\":") != NULL, "no pool JSON");
    EXPECT(strstr(body, ",\"backlog\":") != NULL, "no backlog in JSON");
    EXPECT(strstr(body, "\"engines\":{\"model\":{\"breaker_state\":0,") != NULL, "no breaker");
    EXPECT(http(c->port, "GET", "/nope", resp, sizeof resp) == 0, "GET /nope failed");
    EXPECT(strncmp(resp + 8, " 404 ", 5) == 0, "GET /nope: not 404");
    EXPECT(http(c->port, "GET", "/healthz", resp, sizeof resp) == 0, "GET /healthz failed");
    EXPECT(strncmp(resp + 8, " 200 OK\r\n", 9) == 0, "GET /healthz: not 200");
    EXPECT(http(c->port, "HEAD", "/healthz", resp, sizeof resp) == 0, "HEAD /healthz failed");
    EXPECT(strstr(resp, "Content-Length: 3\r\n") != NULL, "HEAD /healthz: Content-Length");
    EXPECT(strstr(resp, "\r\n\r\n")[4] == '\0', "HEAD /healthz: a body");
    EXPECT(http(c->port, "HEAD", "/keda", resp, sizeof resp) == 0, "HEAD /keda failed");
    const char *cl = strstr(resp, "Content-Length: ");
    EXPECT(cl != NULL && atol(cl + 16) > 100, "HEAD /keda: no real Content-Length");
    EXPECT(strstr(resp, "\r\n\r\n")[4] == '\0', "HEAD /keda: a body");
#undef EXPECT
    c->ok = 1;
    return NULL;
}

/* ---- main ---------------------------------------------------------------------------------- */

static int usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s [--bind ADDR] [--port N] [--seconds S] [--rate R] [--service-ms MS]\n"
            "          [--max-workers N] [--target-per-worker T] [--self-check]\n",
            prog);
    return 2;
}

static int check_rc(int rc, const char *what)
{
    if (rc < 0)
        fprintf(stderr, "%s: %s\n", what, swarm_strerror(rc));
    return rc;
}

int main(int argc, char **argv)
{
    /* Flags take their value as the next argument or after '=' (--port=9464). */
    static char flag[32];
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        const char *eq = strchr(argv[i], '=');
        size_t flen = eq != NULL ? (size_t)(eq - argv[i]) : strlen(argv[i]);
        if (flen >= sizeof flag)
            return usage(argv[0]);
        memcpy(flag, argv[i], flen);
        flag[flen] = '\0';
        if (strcmp(flag, "--self-check") == 0 && eq == NULL) {
            self_check = 1;
            continue;
        }
        if (eq != NULL)
            v = eq + 1;
        else if (i + 1 < argc)
            v = argv[++i];
        else
            return usage(argv[0]);
        if (strcmp(flag, "--bind") == 0)
            bind_addr = v;
        else if (strcmp(flag, "--port") == 0)
            port = atoi(v);
        else if (strcmp(flag, "--seconds") == 0)
            run_seconds = atof(v);
        else if (strcmp(flag, "--rate") == 0)
            rate = atof(v);
        else if (strcmp(flag, "--service-ms") == 0)
            service_ns = (int64_t)(atof(v) * MS);
        else if (strcmp(flag, "--max-workers") == 0)
            max_workers = (uint32_t)atoi(v);
        else if (strcmp(flag, "--target-per-worker") == 0)
            target_per_worker = atof(v);
        else
            return usage(argv[0]);
    }
    if (port < 0 || port > 65535 || run_seconds < 0 || rate < 0 || max_workers == 0 ||
        max_workers > 4096 || !(target_per_worker > 0) ||
        (self_check && run_seconds > 0 && run_seconds < 1))
        return usage(argv[0]);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    /* The listening socket first, so that a bad address fails before anything starts. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (lfd < 0 || inet_pton(AF_INET, bind_addr, &addr.sin_addr) != 1 ||
        bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(lfd, 16) != 0) {
        perror("listen");
        return 1;
    }
    socklen_t alen = sizeof addr;
    getsockname(lfd, (struct sockaddr *)&addr, &alen);
    port = ntohs(addr.sin_port);

    /* The service: channel -> pool (mock engine), resized by a reconcile loop. */
    swarm_chan_opts co;
    swarm_chan_opts_init(&co);
    co.capacity = 1024;
    co.elem_size = sizeof(swarm_task);
    swarm_mock_opts mo;
    swarm_mock_opts_init(&mo);
    mo.latency_kind = SWARM_MOCK_LATENCY_FIXED;
    mo.latency_ns = service_ns;
    swarm_engine *model = NULL, *engine = NULL;
    if (check_rc(swarm_chan_create(&requests, &co), "channel") < 0 ||
        check_rc(swarm_engine_mock_create(&model, &mo), "engine") < 0 ||
        check_rc(swarm_engine_breaker_create(&engine, model, NULL), "breaker") < 0)
        return 1;
    swarm_pool_opts po;
    swarm_pool_opts_init(&po);
    po.workers = 1;
    po.max_workers = max_workers;
    po.input = requests;
    po.engine = engine;
    if (check_rc(swarm_pool_create(&pool, &po), "pool") < 0)
        return 1;
    swarm_policy_opts pol_o;
    swarm_policy_opts_init(&pol_o);
    pol_o.mode = SWARM_POLICY_KEDA;
    pol_o.min_replicas = 1;
    pol_o.max_replicas = (int32_t)max_workers;
    /* Threads are cheap: grow by up to max_workers per second (HPA's default for pods is +4 or
     * +100 % per 15 s) and settle after 3 s instead of 5 min. */
    pol_o.scale_up.n_policies = 1;
    pol_o.scale_up.policies[0].type = SWARM_RATE_PODS;
    pol_o.scale_up.policies[0].value = (int32_t)max_workers;
    pol_o.scale_up.policies[0].period_ns = SEC;
    pol_o.scale_down.window_ns = 3 * SEC;
    swarm_policy *policy = NULL;
    if (check_rc(swarm_policy_create(&policy, &pol_o), "policy") < 0)
        return 1;
    swarm_reconcile_opts ro;
    swarm_reconcile_opts_init(&ro);
    ro.policy = policy;
    ro.observe = observe;
    ro.actuate = actuate;
    ro.interval_ns = 250 * MS;
    ro.jitter = 0.1;
    swarm_reconcile *loop = NULL;
    if (check_rc(swarm_reconcile_create(&loop, &ro), "reconcile") < 0 ||
        check_rc(swarm_reconcile_start(loop), "reconcile start") < 0)
        return 1;

    /* The registry, and one render buffer large enough for any values of these objects. */
    swarm_metrics *m = NULL;
    if (check_rc(swarm_metrics_create(&m, NULL), "metrics") < 0 ||
        check_rc(swarm_metrics_add_chan(m, "requests", requests), "add channel") < 0 ||
        check_rc(swarm_metrics_add_pool(m, "agents", pool), "add pool") < 0 ||
        check_rc(swarm_metrics_add_reconcile(m, "scaler", loop), "add loop") < 0 ||
        check_rc(swarm_metrics_set_loop_bounds(m, loop, pol_o.min_replicas, pol_o.max_replicas,
                                               target_per_worker),
                 "loop bounds") < 0 ||
        check_rc(swarm_metrics_add_engine(m, "model", engine), "add engine") < 0)
        return 1;
    registry = m;
    size_t bound_prom = 0, bound_json = 0;
    swarm_metrics_render_bound(m, SWARM_METRICS_PROMETHEUS, &bound_prom);
    swarm_metrics_render_bound(m, SWARM_METRICS_JSON, &bound_json);
    static server srv;
    srv.m = m;
    pthread_mutex_init(&srv.buf_lock, NULL);
    srv.buf_len = bound_prom > bound_json ? bound_prom : bound_json;
    srv.buf = malloc(srv.buf_len);
    if (srv.buf == NULL)
        return 1;

    /* One thread per connection: a client that connects and sends nothing holds only its own
     * thread (until the 10 s connection timeout), never the next scrape or probe. */
    struct MHD_Daemon *httpd = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL, handle,
        &srv, MHD_OPTION_LISTEN_SOCKET, lfd, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)128, MHD_OPTION_END);
    if (httpd == NULL) {
        fprintf(stderr, "libmicrohttpd did not start\n");
        return 1;
    }
    printf("listening on http://%s:%d/ (GET /metrics, /keda, /healthz; POST /work?n=N)\n",
           bind_addr, port);
    fflush(stdout);

    pthread_t prod, checker;
    pthread_create(&prod, NULL, producer, NULL);
    check chk = {port, 0, "did not finish"};
    if (self_check)
        pthread_create(&checker, NULL, self_check_thread, &chk);

    int64_t deadline = run_seconds > 0 ? swarm_now_ns() + (int64_t)(run_seconds * SEC) : INT64_MAX;
    int64_t next_report = swarm_now_ns() + SEC;
    while (!atomic_load_explicit(&got_signal, memory_order_relaxed) && swarm_now_ns() < deadline) {
        sleep_ns(50 * MS);
        if (swarm_now_ns() >= next_report) {
            next_report += SEC;
            swarm_pool_stats st;
            memset(&st, 0, sizeof st);
            st.size = sizeof st;
            swarm_pool_get_stats(pool, &st);
            printf("workers=%u busy=%u backlog=%llu completed=%llu\n", st.target, st.busy,
                   (unsigned long long)(st.queued + st.in_flight),
                   (unsigned long long)st.completed);
            fflush(stdout);
        }
    }
    atomic_store(&stopping, 1); /* /healthz answers 503 from here on */
    pthread_join(prod, NULL);
    if (self_check)
        pthread_join(checker, NULL);

    /* Shut down in dependency order: the loop (which resizes the pool), the pool (closes its
     * input, so POST /work now answers 503, and drains what is queued for up to 2 s), then the
     * HTTP server, then the registry before the objects it borrows. HTTP stays up while the pool
     * drains: /healthz says 503 (Kubernetes takes the pod out of the Service) and /metrics shows
     * the drain. */
    swarm_reconcile_stop(loop);
    uint64_t left = 0;
    swarm_pool_stop(pool, 2 * SEC, NULL, 0, &left);
    MHD_stop_daemon(httpd); /* closes the listening socket and joins connection threads */
    swarm_pool_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    swarm_pool_get_stats(pool, &st);
    printf("summary: sent=%llu rejected=%llu completed=%llu failed=%llu left=%llu "
           "served_metrics=%llu served_keda=%llu served_work=%llu served_health=%llu\n",
           (unsigned long long)atomic_load(&sent), (unsigned long long)atomic_load(&rejected),
           (unsigned long long)st.completed, (unsigned long long)st.failed,
           (unsigned long long)left, (unsigned long long)atomic_load(&srv.served_metrics),
           (unsigned long long)atomic_load(&srv.served_keda),
           (unsigned long long)atomic_load(&srv.served_work),
           (unsigned long long)atomic_load(&srv.served_health));
    swarm_metrics_destroy(m);
    swarm_reconcile_destroy(loop);
    swarm_policy_destroy(policy);
    swarm_pool_destroy(pool);
    swarm_engine_destroy(engine);
    swarm_chan_destroy(requests);
    free(srv.buf);
    pthread_mutex_destroy(&srv.buf_lock);

    if (self_check) {
        printf("self-check: %s%s%s\n", chk.ok ? "OK" : "FAILED: ", chk.ok ? "" : chk.why, "");
        return chk.ok ? 0 : 1;
    }
    return 0;
}
