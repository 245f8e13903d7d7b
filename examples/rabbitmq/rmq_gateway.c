/* SPDX-License-Identifier: MIT */
/*
 * rmq_gateway: publishes tasks to the durable task queue and collects the workers' replies.
 *
 * Each task is a persistent message with correlation_id = message_id = "<run>-<index>",
 * reply_to = this gateway's reply queue (durable, so replies survive a broker restart and a
 * reconnect), and a payload the echo engine sends back, so each reply is checked against the
 * task it answers.
 *
 * "Answered once" at the gateway: replies are deduplicated by correlation id. The first reply
 * for an id counts (answered); every further reply for the same id is a raw duplicate, counted
 * in dup_replies and discarded. The run succeeds when every id has been answered, no reply
 * carries an unknown id or a body that differs from its task's payload, and none reports a
 * failure. Raw duplicates are legitimate under at-least-once delivery (a worker killed between
 * publishing a reply and acking the task) and are reported, not failed.
 *
 * With --confirm the gateway uses publisher confirms on its task channel (at most --window
 * unconfirmed) and, after a reconnect, publishes again every task whose confirm it had not
 * seen, so that a broker restart loses nothing; without it, tasks in flight at a broker crash
 * can be lost (reported as missing).
 *
 *   usage: rmq_gateway --count=N [--queue=NAME] [--reply-queue=NAME] [--payload-bytes=N]
 *            [--confirm] [--window=N] [--rate=N] [--timeout-s=S] [--progress-ms=N] [--run=ID]
 *            [--duplicate-every=K] [--keep-reply-queue] [--host=H] [--port=P] [--user=U]
 *            [--pass=P] [--vhost=V] [--heartbeat=S]
 *
 * --duplicate-every=K publishes every K-th task twice in a row (as a publisher that retries
 * would): the workers should answer each id once anyway.
 *
 * Output: "gateway: published ..." once every task is published (and confirmed), periodic
 * "gateway: progress ..." lines and one "gateway: final ..." line, all key=value. Exit status 0
 * when every task was answered correctly, 1 otherwise, 2 on usage errors.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>
#include <swarm/swarm.h>

#include "rmq_common.h"

#define MS       INT64_C(1000000)
#define SEC      INT64_C(1000000000)
#define CH_PUB   1
#define CH_REPLY 2

static struct {
    rmq_conn_opts conn;
    const char *queue, *reply_queue, *run;
    uint32_t count, payload_bytes, window, duplicate_every;
    double rate;
    int64_t timeout_s, progress_ms;
    int confirm, keep_reply_queue;
} cfg = {.queue = "swarm.tasks",
         .payload_bytes = 32,
         .window = 1024,
         .timeout_s = 120,
         .progress_ms = 500};

static int parse_args(int argc, char **argv)
{
    rmq_conn_opts_init(&cfg.conn);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = rmq_conn_parse_arg(&cfg.conn, a);
        if (r < 0)
            return -1;
        if (r > 0)
            continue;
        const char *eq = strchr(a, '=');
        const char *v = eq ? eq + 1 : "";
        size_t k = eq ? (size_t)(eq - a) : strlen(a);
#define KEY(s) (k == strlen(s) && strncmp(a, s, k) == 0)
        if (KEY("--queue"))
            cfg.queue = v;
        else if (KEY("--reply-queue"))
            cfg.reply_queue = v;
        else if (KEY("--run"))
            cfg.run = v;
        else if (KEY("--count"))
            cfg.count = (uint32_t)strtoul(v, NULL, 10);
        else if (KEY("--payload-bytes"))
            cfg.payload_bytes = (uint32_t)strtoul(v, NULL, 10);
        else if (KEY("--window"))
            cfg.window = (uint32_t)strtoul(v, NULL, 10);
        else if (KEY("--duplicate-every"))
            cfg.duplicate_every = (uint32_t)strtoul(v, NULL, 10);
        else if (KEY("--rate"))
            cfg.rate = atof(v);
        else if (KEY("--timeout-s"))
            cfg.timeout_s = atoll(v);
        else if (KEY("--progress-ms"))
            cfg.progress_ms = atoll(v);
        else if (KEY("--confirm"))
            cfg.confirm = 1;
        else if (KEY("--keep-reply-queue"))
            cfg.keep_reply_queue = 1;
        else
            return -1;
#undef KEY
    }
    static char run[32], rq[300];
    if (!cfg.run) {
        snprintf(run, sizeof run, "r%ld", (long)getpid());
        cfg.run = run;
    }
    if (!cfg.reply_queue) {
        snprintf(rq, sizeof rq, "%s.replies.%s", cfg.queue, cfg.run);
        cfg.reply_queue = rq;
    }
    /* Durations are bounded so that now + duration in ns cannot overflow. */
    if (cfg.count == 0 || cfg.window < 2 || cfg.payload_bytes > (64u << 20) || cfg.timeout_s <= 0 ||
        cfg.timeout_s > 7 * 86400 || cfg.progress_ms < 0 || cfg.progress_ms > 3600000 ||
        !(cfg.rate >= 0) || strlen(cfg.run) > 64)
        return -1;
    return 0;
}

/* ---- tasks ------------------------------------------------------------------------------------
 */

enum { T_UNSENT, T_UNCONFIRMED, T_SENT };

static uint8_t *tstate;  /* T_* per task */
static uint8_t *answers; /* replies seen per task (saturating) */
static uint32_t next_unsent;
static uint32_t *retry; /* tasks to publish again (unconfirmed at a reconnect) */
static uint32_t n_retry;
static uint32_t *ring; /* --confirm: task index per unconfirmed publish, in seq order */
static uint8_t *ring_done;
static uint32_t ring_head, ring_count;
static uint64_t ring_head_seq, pub_seq;

static struct {
    uint64_t published, republished, confirmed, confirm_nacks, answered, dup_replies, unknown;
    uint64_t bad, failed, reconnects, replies;
} st;

static char *payload_buf, *expect_buf;
static size_t payload_cap;

static size_t make_payload(char *buf, uint32_t idx)
{
    int n = snprintf(buf, payload_cap, "task %s-%u ", cfg.run, idx);
    size_t len = (size_t)n;
    if (len < cfg.payload_bytes) {
        memset(buf + len, 'x', cfg.payload_bytes - len);
        len = cfg.payload_bytes;
    }
    return len;
}

/* ---- connection ------------------------------------------------------------------------------ */

static amqp_connection_state_t conn;
static int connected;

static int connect_once(void)
{
    char err[512];
    if (rmq_connect(&conn, &cfg.conn, 2, err, sizeof err) != 0)
        goto fail_nc;
    if (cfg.confirm) {
        amqp_confirm_select(conn, CH_PUB);
        if (rmq_rpc_ok(amqp_get_rpc_reply(conn), "confirm.select", err, sizeof err) != 0)
            goto fail;
    }
    if (rmq_declare_queue(conn, CH_PUB, cfg.queue, err, sizeof err) != 0 ||
        rmq_declare_queue(conn, CH_REPLY, cfg.reply_queue, err, sizeof err) != 0)
        goto fail;
    amqp_basic_qos(conn, CH_REPLY, 0, 4096, 0);
    if (rmq_rpc_ok(amqp_get_rpc_reply(conn), "basic.qos", err, sizeof err) != 0)
        goto fail;
    amqp_basic_consume(conn, CH_REPLY, amqp_cstring_bytes(cfg.reply_queue), amqp_empty_bytes, 0, 0,
                       0, amqp_empty_table);
    if (rmq_rpc_ok(amqp_get_rpc_reply(conn), "basic.consume", err, sizeof err) != 0)
        goto fail;
    connected = 1;
    pub_seq = 0;
    return 0;
fail:
    amqp_destroy_connection(conn);
fail_nc:
    conn = NULL;
    fprintf(stderr, "gateway: %s\n", err);
    return -1;
}

static void disconnect(void)
{
    if (conn)
        amqp_destroy_connection(conn);
    conn = NULL;
    connected = 0;
    /* Publishes without a confirm may be lost: send them again (the workers dedupe by id). */
    while (ring_count) {
        uint32_t idx = ring[ring_head];
        int was_done = ring_done[ring_head];
        ring_head = (ring_head + 1) % cfg.window;
        ring_count--;
        if (!was_done && tstate[idx] == T_UNCONFIRMED) {
            tstate[idx] = T_UNSENT;
            if (!answers[idx])
                retry[n_retry++] = idx;
            else
                tstate[idx] = T_SENT;
        }
    }
    ring_head_seq = 0;
    pub_seq = 0;
}

static int publish(uint32_t idx)
{
    char id[96];
    int idlen = snprintf(id, sizeof id, "%s-%u", cfg.run, idx);
    size_t len = make_payload(payload_buf, idx);
    amqp_basic_properties_t p;
    memset(&p, 0, sizeof p);
    p._flags = AMQP_BASIC_CORRELATION_ID_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
               AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
               AMQP_BASIC_CONTENT_TYPE_FLAG;
    p.correlation_id = (amqp_bytes_t){(size_t)idlen, id};
    p.message_id = p.correlation_id;
    p.reply_to = amqp_cstring_bytes(cfg.reply_queue);
    p.delivery_mode = 2;
    p.content_type = amqp_cstring_bytes("application/octet-stream");
    int rc = amqp_basic_publish(conn, CH_PUB, amqp_empty_bytes, amqp_cstring_bytes(cfg.queue), 0, 0,
                                &p, (amqp_bytes_t){len, payload_buf});
    if (rc != AMQP_STATUS_OK) {
        fprintf(stderr, "gateway: publish: %s\n", amqp_error_string2(rc));
        return -1;
    }
    if (cfg.confirm) {
        uint64_t seq = ++pub_seq;
        if (ring_count == 0)
            ring_head_seq = seq;
        uint32_t pos = (ring_head + ring_count) % cfg.window;
        ring[pos] = idx;
        ring_done[pos] = 0;
        ring_count++;
        tstate[idx] = T_UNCONFIRMED;
    } else {
        tstate[idx] = T_SENT;
    }
    return 0;
}

static void on_confirm(uint64_t tag, int multiple, int nack)
{
    if (ring_count == 0 || tag < ring_head_seq)
        return;
    uint64_t last = ring_head_seq + ring_count - 1;
    uint64_t from = multiple ? ring_head_seq : tag, to = tag < last ? tag : last;
    for (uint64_t q = from; q <= to; q++) {
        uint32_t pos = (uint32_t)((ring_head + (q - ring_head_seq)) % cfg.window);
        if (ring_done[pos])
            continue;
        ring_done[pos] = 1;
        uint32_t idx = ring[pos];
        if (nack) {
            st.confirm_nacks++;
            tstate[idx] = T_UNSENT;
            retry[n_retry++] = idx;
        } else {
            st.confirmed++;
            if (tstate[idx] == T_UNCONFIRMED)
                tstate[idx] = T_SENT;
        }
    }
    while (ring_count && ring_done[ring_head]) {
        ring_head = (ring_head + 1) % cfg.window;
        ring_count--;
        ring_head_seq++;
    }
}

static int64_t t_start, t_first_reply, t_last_answer;
static char *reply_buf;
static size_t reply_cap;

static int wait_frame(amqp_frame_t *f)
{
    struct timeval tv = {30, 0};
    int rc = amqp_simple_wait_frame_noblock(conn, f, &tv);
    if (rc != AMQP_STATUS_OK) {
        fprintf(stderr, "gateway: reading a frame: %s\n", amqp_error_string2(rc));
        return -1;
    }
    return 0;
}

static uint64_t reply_tag_to_ack;

static int on_reply(const amqp_basic_deliver_t *d)
{
    amqp_frame_t f;
    if (wait_frame(&f) != 0 || f.frame_type != AMQP_FRAME_HEADER)
        return -1;
    const amqp_basic_properties_t *p = f.payload.properties.decoded;
    uint64_t size = f.payload.properties.body_size;
    char id[256] = "";
    if (p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) {
        size_t n = p->correlation_id.len < 255 ? p->correlation_id.len : 255;
        memcpy(id, p->correlation_id.bytes, n);
        id[n] = 0;
    }
    int ok_type = (p->_flags & AMQP_BASIC_TYPE_FLAG) && p->type.len == 2 &&
                  memcmp(p->type.bytes, "ok", 2) == 0;
    if (size > reply_cap) {
        size_t cap = reply_cap ? reply_cap : 256;
        while (cap < size)
            cap *= 2;
        char *nb = realloc(reply_buf, cap);
        if (!nb)
            return -1;
        reply_buf = nb;
        reply_cap = cap;
    }
    uint64_t got = 0;
    while (got < size) {
        if (wait_frame(&f) != 0 || f.frame_type != AMQP_FRAME_BODY)
            return -1;
        size_t n = f.payload.body_fragment.len;
        if (n > size - got)
            n = (size_t)(size - got);
        memcpy(reply_buf + got, f.payload.body_fragment.bytes, n);
        got += n;
    }
    st.replies++;
    int64_t now = swarm_now_ns();
    if (!t_first_reply)
        t_first_reply = now;
    /* "<run>-<index>" of this run, else unknown. */
    size_t rl = strlen(cfg.run);
    char *end = NULL;
    unsigned long idx = 0;
    if (strncmp(id, cfg.run, rl) == 0 && id[rl] == '-' && id[rl + 1])
        idx = strtoul(id + rl + 1, &end, 10);
    if (!end || *end || idx >= cfg.count) {
        st.unknown++;
    } else if (answers[idx]) {
        st.dup_replies++;
        if (answers[idx] < 255)
            answers[idx]++;
    } else {
        answers[idx] = 1;
        size_t len = make_payload(expect_buf, (uint32_t)idx);
        if (!ok_type)
            st.failed++;
        else if (len != size || memcmp(expect_buf, reply_buf, len) != 0)
            st.bad++;
        st.answered++;
        t_last_answer = now;
    }
    reply_tag_to_ack = d->delivery_tag;
    return 0;
}

static int handle_frame(const amqp_frame_t *f)
{
    if (f->frame_type != AMQP_FRAME_METHOD)
        return 0;
    switch (f->payload.method.id) {
    case AMQP_BASIC_DELIVER_METHOD:
        return on_reply(f->payload.method.decoded);
    case AMQP_BASIC_ACK_METHOD: {
        const amqp_basic_ack_t *a = f->payload.method.decoded;
        on_confirm(a->delivery_tag, a->multiple, 0);
        return 0;
    }
    case AMQP_BASIC_NACK_METHOD: {
        const amqp_basic_nack_t *n = f->payload.method.decoded;
        on_confirm(n->delivery_tag, n->multiple, 1);
        return 0;
    }
    case AMQP_CHANNEL_CLOSE_METHOD:
    case AMQP_CONNECTION_CLOSE_METHOD:
    case AMQP_BASIC_CANCEL_METHOD:
        fprintf(stderr, "gateway: the broker closed the channel or connection\n");
        return -1;
    default:
        return 0;
    }
}

static int pump_frames(void)
{
    struct timeval zero = {0, 0};
    for (int i = 0; i < 1024; i++) {
        amqp_frame_t f;
        int rc = amqp_simple_wait_frame_noblock(conn, &f, &zero);
        if (rc == AMQP_STATUS_TIMEOUT)
            break;
        if (rc != AMQP_STATUS_OK) {
            fprintf(stderr, "gateway: connection lost: %s\n", amqp_error_string2(rc));
            return -1;
        }
        if (handle_frame(&f) != 0)
            return -1;
    }
    /* Replies are handled in delivery order, so one multiple-ack settles all of them. */
    if (reply_tag_to_ack) {
        if (amqp_basic_ack(conn, CH_REPLY, reply_tag_to_ack, 1) != AMQP_STATUS_OK)
            return -1;
        reply_tag_to_ack = 0;
    }
    amqp_maybe_release_buffers(conn);
    return 0;
}

static void print_line(const char *what)
{
    int64_t now = swarm_now_ns();
    double el = (double)(now - t_start) / SEC;
    double span = t_last_answer > t_first_reply ? (double)(t_last_answer - t_first_reply) / SEC : 0;
    printf("gateway: %s count=%u published=%" PRIu64 " republished=%" PRIu64 " confirmed=%" PRIu64
           " answered=%" PRIu64 " missing=%" PRIu64 " dup_replies=%" PRIu64 " unknown=%" PRIu64
           " bad=%" PRIu64 " failed=%" PRIu64 " reconnects=%" PRIu64
           " elapsed_s=%.3f reply_rate=%.0f\n",
           what, cfg.count, st.published, st.republished, st.confirmed, st.answered,
           (uint64_t)cfg.count - st.answered, st.dup_replies, st.unknown, st.bad, st.failed,
           st.reconnects, el, span > 0 ? (double)(st.answered - 1) / span : 0.0);
    fflush(stdout);
}

/* Set by the signal handler, which may run on any thread (a library or server thread too):
 * a lock-free atomic, not a volatile sig_atomic_t (that is safe only within one thread). */
static atomic_int got_signal;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store_explicit(&got_signal, 1, memory_order_relaxed);
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv) != 0) {
        fprintf(stderr, "usage: see the comment at the top of examples/rabbitmq/rmq_gateway.c\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    payload_cap = (size_t)cfg.payload_bytes + 128;
    payload_buf = malloc(payload_cap);
    expect_buf = malloc(payload_cap);
    tstate = calloc(cfg.count, 1);
    answers = calloc(cfg.count, 1);
    retry = calloc((size_t)cfg.count, sizeof *retry);
    ring = calloc(cfg.window, sizeof *ring);
    ring_done = calloc(cfg.window, 1);
    if (!payload_buf || !expect_buf || !tstate || !answers || !retry || !ring || !ring_done) {
        fprintf(stderr, "gateway: out of memory\n");
        return 2;
    }

    uint64_t rng = (uint64_t)getpid() * 0x9e3779b97f4a7c15u;
    uint32_t attempts = 0;
    t_start = swarm_now_ns();
    int64_t deadline = t_start + cfg.timeout_s * SEC, next_connect = 0;
    int64_t next_progress = t_start + cfg.progress_ms * MS;
    int announced = 0;
    while (!atomic_load_explicit(&got_signal, memory_order_relaxed)) {
        int64_t now = swarm_now_ns();
        if (now >= deadline) {
            fprintf(stderr, "gateway: timed out after %" PRId64 " s\n", cfg.timeout_s);
            break;
        }
        if (!connected) {
            if (now >= next_connect) {
                if (connect_once() == 0) {
                    if (attempts)
                        st.reconnects++;
                    attempts = 0;
                } else {
                    attempts++;
                    next_connect = now + rmq_backoff_ns(attempts, 100 * MS, 5 * SEC, &rng);
                }
            }
            if (!connected) {
                struct timespec ts = {0, 20 * MS};
                nanosleep(&ts, NULL);
                continue;
            }
        }
        /* Publish a bounded batch: tasks to resend first, then new ones (rate-limited). */
        int failed = 0, more = 0;
        for (int b = 0; b < 256 && !failed; b++) {
            if (cfg.confirm && ring_count + 2 > cfg.window)
                break;
            uint32_t idx;
            if (n_retry) {
                idx = retry[n_retry - 1];
                if (answers[idx]) { /* answered meanwhile: nothing to resend */
                    n_retry--;
                    tstate[idx] = T_SENT;
                    continue;
                }
                if (publish(idx) != 0) {
                    failed = 1;
                    break;
                }
                n_retry--;
                st.republished++;
            } else if (next_unsent < cfg.count) {
                if (cfg.rate > 0 && (double)next_unsent > cfg.rate * (double)(now - t_start) / SEC)
                    break;
                idx = next_unsent;
                if (publish(idx) != 0) {
                    failed = 1;
                    break;
                }
                next_unsent++;
                st.published++;
                if (cfg.duplicate_every && idx % cfg.duplicate_every == 0) {
                    if (publish(idx) != 0) {
                        failed = 1;
                        break;
                    }
                    st.published++;
                }
            } else {
                break;
            }
            more = 1;
        }
        if (failed || pump_frames() != 0) {
            disconnect();
            attempts++;
            next_connect = swarm_now_ns() + rmq_backoff_ns(attempts, 100 * MS, 5 * SEC, &rng);
            continue;
        }
        if (!announced && next_unsent == cfg.count && n_retry == 0 && ring_count == 0) {
            announced = 1;
            print_line("published");
        }
        if (st.answered == cfg.count)
            break;
        now = swarm_now_ns();
        if (cfg.progress_ms > 0 && now >= next_progress) {
            print_line("progress");
            next_progress = now + cfg.progress_ms * MS;
        }
        if (!more && !amqp_data_in_buffer(conn) && !amqp_frames_enqueued(conn)) {
            struct pollfd pfd = {amqp_get_sockfd(conn), POLLIN, 0};
            if (poll(&pfd, 1, 50) < 0 && errno != EINTR)
                break;
        }
    }
    /* Linger briefly for late duplicates, so that the count of raw duplicates is honest. */
    if (connected && st.answered == cfg.count) {
        int64_t end = swarm_now_ns() + 300 * MS;
        while (swarm_now_ns() < end && pump_frames() == 0) {
            struct pollfd pfd = {amqp_get_sockfd(conn), POLLIN, 0};
            poll(&pfd, 1, 50);
        }
    }
    print_line("final");
    int ok = st.answered == cfg.count && st.bad == 0 && st.unknown == 0 && st.failed == 0;
    if (connected) {
        if (!cfg.keep_reply_queue) {
            amqp_queue_delete(conn, CH_REPLY, amqp_cstring_bytes(cfg.reply_queue), 0, 0);
        }
        rmq_close(conn);
    }
    free(payload_buf);
    free(expect_buf);
    free(tstate);
    free(answers);
    free(retry);
    free(ring);
    free(ring_done);
    free(reply_buf);
    return ok ? 0 : 1;
}
