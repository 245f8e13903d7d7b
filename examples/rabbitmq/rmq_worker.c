/* SPDX-License-Identifier: MIT */
/*
 * rmq_worker: a RabbitMQ worker process around a libswarm pool (an "agent pod").
 *
 *   RabbitMQ durable queue --basic.deliver--> [I/O thread] --swarm_chan_try_send--> [channel]
 *        ^    ^  basic.qos = window                 |  ^                                  |
 *        |    +-------------------------------------+  | done channel (slot pointers)     v
 *        |  basic.publish(reply_to, correlation_id) |  +---- on_result <--- pool workers --> engine
 *        +-- basic.ack (after the reply is published, and confirmed with --confirm)
 *                          reconcile loop (KEDA mode) --observe pool/channel--> resize(pool)
 *
 * Exactly one thread (the I/O thread, main) talks to the broker: rabbitmq-c connections are
 * not thread-safe. Pool workers hand each result back through a swarm channel and wake the I/O
 * thread through a pipe.
 *
 * Backpressure. Every delivery stays unacknowledged until its reply is published, so the
 * broker's per-channel prefetch (basic.qos, global) is a hard bound on what this process holds:
 * tasks queued in the swarm channel + running + waiting for their reply to be published or
 * confirmed. The window is min(channel capacity, (pool target + 1) * --per-worker): it follows
 * the pool as the reconcile loop resizes it (basic.qos is re-sent; RabbitMQ applies a channel
 * prefetch change at once), and it never exceeds the channel's capacity, so the I/O thread's
 * try_send into the channel cannot fail for lack of room. When the pool is slow the window fills,
 * the broker stops delivering, and the backlog stays in the broker, where KEDA's rabbitmq trigger
 * sees it, instead of in this process's memory.
 *
 * At-least-once, idempotent by task id. A task's id is its correlation_id (else message_id).
 * A bounded set of recent ids (FIFO eviction, --dedupe entries) remembers what this process is
 * running and what it has answered:
 *   - a duplicate of a task still running here: its delivery tag is attached and acked together
 *     with the original's once the reply is out (no second run, no second reply);
 *   - a duplicate of a task answered on this connection (or answered and confirmed): acked
 *     without running it again and without a second reply;
 *   - a duplicate of a task answered on an earlier connection without a confirm: that reply may
 *     have been lost with the connection, so the task runs again and is answered again (the
 *     gateway dedupes replies by id).
 * A worker that dies (kill -9) after publishing a reply but before its ack reaches the broker
 * leaves a redelivery that another worker answers again: a raw duplicate reply, which is why the
 * gateway dedupes too.
 *
 * Reconnect. When the connection fails (broker restart, network) the I/O thread drops the
 * tasks still queued in the swarm channel (the broker requeues every unacked delivery, so they
 * come back), keeps the running ones (their replies are published after the reconnect, and
 * redeliveries of them are attached or suppressed as above), and reconnects with exponential
 * backoff and full jitter (100 ms .. 5 s), re-declaring the queue, the prefetch and the consumer.
 *
 * Shutdown (SIGTERM/SIGINT). Cancel the consumer, hand back (basic.nack requeue) every task not
 * started yet, let the running ones finish within --grace-s and publish their replies; at the
 * deadline the pool cancels what still runs (the engine sees SWARM_ECANCELED) and those are
 * nacked too. Then the connection closes and the process prints its final counters.
 *
 * Limits, stated plainly. Without --confirm a broker crash (not a restart) can lose a reply whose
 * task ack got through; with --confirm (here and in the gateway) nothing is lost. Replies are
 * published on the consuming connection, so RabbitMQ's flow control on publishers also delays
 * the acks of this connection (a busy broker can stall one worker for a moment); a second
 * connection for publishing would avoid that but needs confirms to keep publish-before-ack.
 * Acks are sent one by one (multiple=0).
 *
 *   usage: rmq_worker --queue=NAME [--host=H] [--port=P] [--user=U] [--pass=P] [--vhost=V]
 *            [--heartbeat=S] [--capacity=N] [--per-worker=N] [--workers=N] [--max-workers=N]
 *            [--target=N] [--interval-ms=N] [--cooldown-s=S] [--latency-ms=LO[,HI]]
 *            [--confirm] [--grace-s=S] [--dedupe=N] [--stats-ms=N] [--name=S]
 *            [--test-kill-before-ack=N]
 *
 * --test-kill-before-ack=N (a test hook) makes the process SIGKILL itself right after the N-th
 * reply is out (confirmed, with --confirm) and before that task's ack: the worst moment to die,
 * which leaves a reply in the broker and its task to be answered again by another worker.
 *
 * The engine echoes the payload (a no-op engine) after an optional simulated latency, uniform in
 * [LO, HI] ms per task, which polls its cancel token.
 *
 * Output: "worker NAME: ..." lines with key=value counters on stdout (periodic with --stats-ms,
 * and a final one); errors on stderr. Exit status 0 after a clean shutdown.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>
#include <swarm/swarm.h>

#include "rmq_common.h"

#define MS         INT64_C(1000000)
#define SEC        INT64_C(1000000000)
#define CH         1
#define MAX_TAGS   4  /* delivery tags one running task can carry (original + duplicates) */
#define RID_INLINE 40 /* id bytes kept for comparison next to the 64-bit hash */
#define LEFT_CAP   64

/* ---- configuration --------------------------------------------------------------------------- */

static struct {
    rmq_conn_opts conn;
    const char *queue;
    const char *name;
    uint32_t capacity, per_worker, workers, max_workers, dedupe;
    double target;
    int64_t interval_ms, cooldown_s, lat_lo_ms, lat_hi_ms, grace_s, stats_ms;
    uint64_t max_body;
    uint64_t kill_before_ack;
    int confirm;
} cfg = {
    .queue = "swarm.tasks",
    .name = NULL,
    .capacity = 512,
    .per_worker = 16,
    .workers = 1,
    .max_workers = 8,
    .dedupe = 65536,
    .target = 4,
    .interval_ms = 200,
    .cooldown_s = 10,
    .grace_s = 10,
    .stats_ms = 0,
    .max_body = 16u << 20,
};

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
        else if (KEY("--name"))
            cfg.name = v;
        else if (KEY("--capacity"))
            cfg.capacity = (uint32_t)strtoul(v, NULL, 10);
        else if (KEY("--per-worker"))
            cfg.per_worker = (uint32_t)strtoul(v, NULL, 10);
        else if (KEY("--workers"))
            cfg.workers = (uint32_t)strtoul(v, NULL, 10);
        else if (KEY("--max-workers"))
            cfg.max_workers = (uint32_t)strtoul(v, NULL, 10);
        else if (KEY("--target"))
            cfg.target = atof(v);
        else if (KEY("--interval-ms"))
            cfg.interval_ms = atoll(v);
        else if (KEY("--cooldown-s"))
            cfg.cooldown_s = atoll(v);
        else if (KEY("--latency-ms")) {
            char *end = NULL;
            cfg.lat_lo_ms = strtoll(v, &end, 10);
            cfg.lat_hi_ms = (end && *end == ',') ? strtoll(end + 1, NULL, 10) : cfg.lat_lo_ms;
        } else if (KEY("--confirm"))
            cfg.confirm = 1;
        else if (KEY("--grace-s"))
            cfg.grace_s = atoll(v);
        else if (KEY("--dedupe"))
            cfg.dedupe = (uint32_t)strtoul(v, NULL, 10);
        else if (KEY("--stats-ms"))
            cfg.stats_ms = atoll(v);
        else if (KEY("--test-kill-before-ack"))
            cfg.kill_before_ack = strtoull(v, NULL, 10);
        else
            return -1;
#undef KEY
    }
    if (!cfg.name) {
        static char buf[32];
        snprintf(buf, sizeof buf, "%ld", (long)getpid());
        cfg.name = buf;
    }
    /* The prefetch count is 16-bit in AMQP 0-9-1. The id set must hold every running task with
     * room to spare for answered ones. Durations are bounded so that now + duration in ns
     * cannot overflow. */
    if (cfg.capacity == 0 || cfg.capacity > 65535 || cfg.per_worker == 0 || cfg.workers == 0 ||
        cfg.max_workers < cfg.workers || cfg.max_workers > 4096 || cfg.target <= 0 ||
        cfg.interval_ms <= 0 || cfg.interval_ms > 3600000 || cfg.cooldown_s < 0 ||
        cfg.cooldown_s > 86400 || cfg.lat_lo_ms < 0 || cfg.lat_hi_ms < cfg.lat_lo_ms ||
        cfg.lat_hi_ms > 3600000 || cfg.grace_s < 0 || cfg.grace_s > 86400 ||
        cfg.dedupe < 4 * cfg.capacity || cfg.dedupe > (1u << 26) || cfg.stats_ms < 0 ||
        cfg.stats_ms > 3600000)
        return -1;
    return 0;
}

/* ---- the engine: echo after an optional simulated latency ------------------------------------ */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33, x *= 0xff51afd7ed558ccdu, x ^= x >> 33, x *= 0xc4ceb9fe1a85ec53u, x ^= x >> 33;
    return x;
}

static int echo_infer(void *self, const swarm_request *req, swarm_response *resp)
{
    (void)self;
    if (cfg.lat_hi_ms > 0) {
        int64_t span = (cfg.lat_hi_ms - cfg.lat_lo_ms) * MS;
        int64_t d =
            cfg.lat_lo_ms * MS + (span > 0 ? (int64_t)(mix64(req->id) % (uint64_t)span) : 0);
        int64_t end = swarm_now_ns() + d;
        for (;;) {
            int rc = swarm_request_should_stop(req);
            if (rc != 0)
                return rc;
            int64_t left = end - swarm_now_ns();
            if (left <= 0)
                break;
            if (left > 2 * MS)
                left = 2 * MS;
            struct timespec ts = {0, (long)left};
            nanosleep(&ts, NULL);
        }
    }
    return swarm_response_write(resp, req->payload, (size_t)req->payload_len);
}

/* ---- slots: one per delivery this process holds (bounded by the prefetch window) ------------- */

enum { SLOT_FREE, SLOT_RUNNING, SLOT_READY, SLOT_CONFIRMING };

typedef struct slot {
    struct slot *next;          /* free list / publish queue (I/O thread only) */
    uint32_t state;             /* SLOT_* (I/O thread only) */
    uint32_t entry;             /* index of its recent-id entry */
    uint32_t n_tags;            /* delivery tags of the current connection to settle */
    uint32_t confirmed, nacked; /* publisher confirm seen for its reply */
    uint64_t tags[MAX_TAGS];
    uint64_t seq; /* publish sequence number of its reply (--confirm) */
    uint8_t corr_len, reply_len;
    char corr[256], reply_to[256];
    uint8_t *body;
    size_t body_len, body_cap;
    /* Written by the pool worker in on_result, read by the I/O thread after the hand-off through
     * the done channel (whose send/receive order the writes before the read). */
    int status;
    uint8_t *out;
    size_t out_len, out_cap;
} slot;

static slot *slots;
static slot *free_slots;
static uint32_t n_slots, slots_used;

static slot *slot_alloc(void)
{
    slot *s = free_slots;
    if (!s)
        return NULL;
    free_slots = s->next;
    s->next = NULL;
    s->n_tags = 0;
    s->confirmed = s->nacked = 0;
    slots_used++;
    return s;
}

static void slot_free(slot *s)
{
    s->state = SLOT_FREE;
    s->next = free_slots;
    free_slots = s;
    slots_used--;
}

/* ---- the bounded recent-id set --------------------------------------------------------------- */

enum { RID_FREE, RID_INFLIGHT, RID_DONE };

typedef struct rid_entry {
    uint64_t hash;
    uint64_t gen;  /* connection generation its reply went out on (DONE) */
    uint32_t next; /* bucket chain: index + 1, 0 ends */
    uint8_t state, confirmed, len, pad_;
    slot *s; /* INFLIGHT: the slot running it */
    char id[RID_INLINE];
} rid_entry;

static rid_entry *rids;
static uint32_t *rid_bucket, rid_mask, rid_cursor;

static uint64_t id_hash(const char *id, size_t len)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)id[i]) * 0x100000001b3u;
    return mix64(h);
}

static int rid_init(uint32_t n)
{
    uint32_t nb = 1;
    while (nb < n)
        nb <<= 1;
    rids = calloc(n, sizeof *rids);
    rid_bucket = calloc(nb, sizeof *rid_bucket);
    rid_mask = nb - 1;
    return rids && rid_bucket ? 0 : -1;
}

static rid_entry *rid_find(uint64_t h, const char *id, size_t len)
{
    size_t cmp = len < RID_INLINE ? len : RID_INLINE;
    for (uint32_t i = rid_bucket[h & rid_mask]; i; i = rids[i - 1].next) {
        rid_entry *e = &rids[i - 1];
        if (e->hash == h && e->len == len && memcmp(e->id, id, cmp) == 0)
            return e;
    }
    return NULL;
}

static void rid_unlink(rid_entry *e)
{
    uint32_t idx = (uint32_t)(e - rids) + 1;
    uint32_t *link = &rid_bucket[e->hash & rid_mask];
    while (*link && *link != idx)
        link = &rids[*link - 1].next;
    if (*link)
        *link = e->next;
    e->state = RID_FREE;
    e->s = NULL;
}

static uint64_t rid_evictions;

/* Reuse the next entry in round-robin order that is not running (FIFO eviction of answered
 * ids). Running entries are at most n_slots, far fewer than the set's size. */
static rid_entry *rid_insert(uint64_t h, const char *id, size_t len)
{
    uint32_t n = cfg.dedupe;
    for (uint32_t tries = 0; tries < n; tries++) {
        rid_entry *e = &rids[rid_cursor];
        rid_cursor = rid_cursor + 1 == n ? 0 : rid_cursor + 1;
        if (e->state == RID_INFLIGHT)
            continue;
        if (e->state == RID_DONE) {
            rid_unlink(e);
            rid_evictions++;
        }
        e->hash = h;
        e->len = (uint8_t)len;
        memcpy(e->id, id, len < RID_INLINE ? len : RID_INLINE);
        e->gen = 0;
        e->confirmed = 0;
        e->state = RID_INFLIGHT;
        e->next = rid_bucket[h & rid_mask];
        rid_bucket[h & rid_mask] = (uint32_t)(e - rids) + 1;
        return e;
    }
    return NULL;
}

/* ---- state of the I/O thread ----------------------------------------------------------------- */

static swarm_chan *tasks; /* I/O thread -> pool: swarm_task */
static swarm_chan *done;  /* pool -> I/O thread: slot * */
static swarm_pool *pool;
static swarm_reconcile *loop;
static int wake_pipe[2];
static atomic_int wake_pending;
/* Set by the signal handler, which may run on any thread (a library or server thread too):
 * a lock-free atomic, not a volatile sig_atomic_t (that is safe only within one thread). */
static atomic_int got_signal;

static amqp_connection_state_t conn;
static int connected;
static uint64_t gen; /* connection generation; bumped on each successful connect */
static char consumer_tag[256];
static size_t consumer_tag_len;
static uint32_t cur_prefetch;
static uint64_t pub_seq; /* last publish sequence number on this connection (--confirm) */

static slot *pubq_head, *pubq_tail; /* results ready to publish */

static slot **ring; /* replies waiting for their confirm, in publish order */
static uint32_t ring_head, ring_count;
static uint64_t ring_head_seq;

static struct {
    uint64_t deliveries, redelivered, tasks, replies, acks, nacks, rejects, failed, canceled;
    uint64_t dup_attached, dup_suppressed, dup_rerun, dropped_on_reconnect, republished;
    uint64_t confirms, confirm_nacks, reconnects, connect_failures, qos_updates;
    uint64_t tags_out, max_tags_out, max_slots, max_queued;
} st;

static void wake(void)
{
    /* Pairs with the exchange in drain_wake(): a worker whose exchange reads 1 knows the I/O
     * thread has not cleared the flag yet, so it will drain the done channel after clearing. */
    if (atomic_exchange_explicit(&wake_pending, 1, memory_order_acq_rel) == 0) {
        char b = 1;
        ssize_t r = write(wake_pipe[1], &b, 1);
        (void)r;
    }
}

static void drain_wake(void)
{
    char buf[64];
    while (read(wake_pipe[0], buf, sizeof buf) > 0) {
    }
    atomic_exchange_explicit(&wake_pending, 0, memory_order_acq_rel);
}

static void on_signal(int sig)
{
    (void)sig;
    atomic_store_explicit(&got_signal, 1, memory_order_relaxed);
    char b = 2;
    ssize_t r = write(wake_pipe[1], &b, 1);
    (void)r;
}

/* Pool callback, on a worker thread: copy the output into the slot and hand it back. */
static void on_result(void *ctx, const swarm_pool_result *res)
{
    (void)ctx;
    slot *s = res->task.user;
    size_t len = 0;
    const void *data = res->response ? swarm_response_data(res->response, &len) : NULL;
    s->status = res->status;
    if (len > s->out_cap) {
        size_t cap = s->out_cap ? s->out_cap : 256;
        while (cap < len)
            cap *= 2;
        uint8_t *p = realloc(s->out, cap);
        if (!p) {
            s->status = SWARM_ENOMEM;
            len = 0;
        } else {
            s->out = p;
            s->out_cap = cap;
        }
    }
    if (len)
        memcpy(s->out, data, len);
    s->out_len = len;
    /* Capacity n_slots: every slot is in the done channel at most once, so this never waits. */
    swarm_chan_send(done, &s);
    wake();
}

/* ---- publishing, settling ------------------------------------------------------------------ */

static void pubq_push(slot *s)
{
    s->next = NULL;
    if (pubq_tail)
        pubq_tail->next = s;
    else
        pubq_head = s;
    pubq_tail = s;
}

static slot *pubq_pop(void)
{
    slot *s = pubq_head;
    if (s) {
        pubq_head = s->next;
        if (!pubq_head)
            pubq_tail = NULL;
        s->next = NULL;
    }
    return s;
}

static void pubq_push_front(slot *s)
{
    s->next = pubq_head;
    pubq_head = s;
    if (!pubq_tail)
        pubq_tail = s;
}

__attribute__((format(printf, 1, 2))) static void log_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "worker %s: ", cfg.name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    fflush(stderr);
    va_end(ap);
}

static int ack_tag(uint64_t tag)
{
    int rc = amqp_basic_ack(conn, CH, tag, 0);
    if (rc != AMQP_STATUS_OK)
        return -1;
    st.acks++;
    st.tags_out--;
    return 0;
}

static int nack_tag(uint64_t tag)
{
    int rc = amqp_basic_nack(conn, CH, tag, 0, /*requeue*/ 1);
    if (rc != AMQP_STATUS_OK)
        return -1;
    st.nacks++;
    st.tags_out--;
    return 0;
}

/* The reply of @p s is out (and confirmed, or on this live connection): ack every delivery of
 * it, remember the id as answered, free the slot. */
static int settle_done(slot *s, int confirmed)
{
    int rc = 0;
    if (cfg.kill_before_ack && s->reply_len && st.replies >= cfg.kill_before_ack) {
        printf("worker %s: test hook: SIGKILL before acking a task whose reply is out\n", cfg.name);
        fflush(stdout);
        raise(SIGKILL);
    }
    for (uint32_t i = 0; i < s->n_tags && rc == 0; i++)
        rc = ack_tag(s->tags[i]);
    s->n_tags = 0;
    rid_entry *e = &rids[s->entry];
    e->state = RID_DONE;
    e->gen = gen;
    e->confirmed = (uint8_t)confirmed;
    e->s = NULL;
    slot_free(s);
    return rc;
}

/* Give the task back to the broker (requeue) and forget it here. */
static int settle_nack(slot *s)
{
    int rc = 0;
    for (uint32_t i = 0; i < s->n_tags && rc == 0 && connected; i++)
        rc = nack_tag(s->tags[i]);
    s->n_tags = 0;
    rid_unlink(&rids[s->entry]);
    slot_free(s);
    return rc;
}

static int publish_reply(slot *s)
{
    amqp_basic_properties_t p;
    memset(&p, 0, sizeof p);
    p._flags = AMQP_BASIC_CORRELATION_ID_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
               AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
    p.correlation_id = (amqp_bytes_t){s->corr_len, s->corr};
    p.delivery_mode = 2; /* persistent: the reply queue is durable */
    p.content_type = amqp_cstring_bytes("application/octet-stream");
    p.type = amqp_cstring_bytes(s->status == 0 ? "ok" : swarm_err_name(s->status));
    amqp_bytes_t body = {s->status == 0 ? s->out_len : 0, s->out};
    int rc = amqp_basic_publish(conn, CH, amqp_empty_bytes,
                                (amqp_bytes_t){s->reply_len, s->reply_to}, 0, 0, &p, body);
    if (rc != AMQP_STATUS_OK)
        return -1;
    st.replies++;
    return 0;
}

/* Publish every ready reply; ack at once, or after the confirm with --confirm. */
static int flush_publish(void)
{
    slot *s;
    while ((s = pubq_pop())) {
        if (s->reply_len && publish_reply(s) != 0) {
            pubq_push_front(s);
            return -1;
        }
        if (cfg.confirm && s->reply_len) {
            s->seq = ++pub_seq;
            if (ring_count == 0)
                ring_head_seq = s->seq;
            ring[(ring_head + ring_count) % n_slots] = s;
            ring_count++;
            s->state = SLOT_CONFIRMING;
            continue;
        }
        if (settle_done(s, 0) != 0)
            return -1;
    }
    return 0;
}

/* basic.ack / basic.nack from the broker for our replies (publisher confirms). */
static int on_confirm(uint64_t tag, int multiple, int nack)
{
    if (!cfg.confirm || ring_count == 0 || tag < ring_head_seq)
        return 0;
    uint64_t last = ring_head_seq + ring_count - 1;
    uint64_t from = multiple ? ring_head_seq : tag, to = tag < last ? tag : last;
    for (uint64_t q = from; q <= to; q++) {
        slot *s = ring[(ring_head + (q - ring_head_seq)) % n_slots];
        if (nack)
            s->nacked = 1;
        else
            s->confirmed = 1;
    }
    while (ring_count) {
        slot *s = ring[ring_head];
        if (!s->confirmed && !s->nacked)
            break;
        ring_head = (ring_head + 1) % n_slots;
        ring_count--;
        ring_head_seq++;
        if (s->nacked) { /* the broker could not take it: publish again */
            st.confirm_nacks++;
            s->nacked = 0;
            s->state = SLOT_READY;
            pubq_push(s);
            continue;
        }
        st.confirms++;
        if (settle_done(s, 1) != 0)
            return -1;
    }
    return 0;
}

/* A result from the pool. */
static int on_result_ready(slot *s)
{
    if (s->status == SWARM_ECANCELED) { /* interrupted by the shutdown deadline */
        st.canceled++;
        return settle_nack(s);
    }
    if (s->status != 0)
        st.failed++; /* answered with an error type; at-least-once does not retry it forever */
    s->state = SLOT_READY;
    pubq_push(s);
    return 0;
}

/* ---- the window ------------------------------------------------------------------------------ */

static uint32_t window_now(void)
{
    uint64_t t = swarm_pool_target(pool);
    uint64_t w = (t + 1) * cfg.per_worker;
    return (uint32_t)(w < cfg.capacity ? w : cfg.capacity);
}

static int update_qos(void)
{
    uint32_t w = window_now();
    if (w == cur_prefetch)
        return 0;
    amqp_basic_qos_t q = {0, (uint16_t)w, 1};
    if (amqp_send_method(conn, CH, AMQP_BASIC_QOS_METHOD, &q) != AMQP_STATUS_OK)
        return -1;
    cur_prefetch = w;
    st.qos_updates++;
    return 0;
}

/* ---- connection ------------------------------------------------------------------------------ */

static int wait_frame(amqp_frame_t *f)
{
    struct timeval tv = {30, 0}; /* content frames follow their method at once */
    int rc = amqp_simple_wait_frame_noblock(conn, f, &tv);
    if (rc != AMQP_STATUS_OK) {
        log_err("reading a frame: %s", amqp_error_string2(rc));
        return -1;
    }
    return 0;
}

static int shutting_down;

static int on_deliver(const amqp_basic_deliver_t *d)
{
    uint64_t tag = d->delivery_tag;
    st.deliveries++;
    if (d->redelivered)
        st.redelivered++;
    if (++st.tags_out > st.max_tags_out)
        st.max_tags_out = st.tags_out;

    amqp_frame_t f;
    if (wait_frame(&f) != 0)
        return -1;
    if (f.frame_type != AMQP_FRAME_HEADER || f.channel != CH) {
        log_err("protocol: expected a content header");
        return -1;
    }
    const amqp_basic_properties_t *p = f.payload.properties.decoded;
    uint64_t size = f.payload.properties.body_size;
    char id[256];
    size_t idlen = 0;
    if ((p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) && p->correlation_id.len) {
        idlen = p->correlation_id.len;
        memcpy(id, p->correlation_id.bytes, idlen);
    } else if ((p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) && p->message_id.len) {
        idlen = p->message_id.len;
        memcpy(id, p->message_id.bytes, idlen);
    }
    size_t rlen = (p->_flags & AMQP_BASIC_REPLY_TO_FLAG) ? p->reply_to.len : 0;
    char reply_to[256];
    if (rlen)
        memcpy(reply_to, p->reply_to.bytes, rlen);

    enum { NEW, ATTACH, ACK_DUP, NACK, REJECT } action = NEW;
    slot *s = NULL;
    rid_entry *e = NULL;
    uint64_t h = 0;
    if (shutting_down) {
        action = NACK;
    } else if (idlen == 0 || size > cfg.max_body) {
        action = REJECT; /* no id to answer by, or too large: dead-letter, never requeue */
    } else {
        h = id_hash(id, idlen);
        e = rid_find(h, id, idlen);
        if (e && e->state == RID_INFLIGHT) {
            action = e->s->n_tags < MAX_TAGS ? ATTACH : NACK;
        } else if (e && e->state == RID_DONE && (e->confirmed || e->gen == gen)) {
            action = ACK_DUP;
        } else {
            if (e)
                st.dup_rerun++; /* answered on a lost connection, unconfirmed: answer again */
            s = slot_alloc();
            if (!s) {
                action = NACK; /* cannot happen while the window <= slots; be safe */
            } else {
                if (!e)
                    e = rid_insert(h, id, idlen);
                if (!e) {
                    slot_free(s);
                    s = NULL;
                    action = NACK;
                } else {
                    e->state = RID_INFLIGHT;
                    e->s = s;
                    s->entry = (uint32_t)(e - rids);
                }
            }
        }
    }
    if (s && size > s->body_cap) {
        size_t cap = s->body_cap ? s->body_cap : 256;
        while (cap < size)
            cap *= 2;
        uint8_t *nb = realloc(s->body, cap);
        if (!nb) {
            rid_unlink(e);
            slot_free(s);
            s = NULL;
            action = NACK;
        } else {
            s->body = nb;
            s->body_cap = cap;
        }
    }
    uint64_t got = 0;
    while (got < size) {
        if (wait_frame(&f) != 0 || f.frame_type != AMQP_FRAME_BODY || f.channel != CH) {
            if (s) {
                rid_unlink(e);
                slot_free(s);
            }
            return -1;
        }
        size_t n = f.payload.body_fragment.len;
        if (n > size - got)
            n = (size_t)(size - got);
        if (s)
            memcpy(s->body + got, f.payload.body_fragment.bytes, n);
        got += n;
    }

    switch (action) {
    case NEW: {
        if (slots_used > st.max_slots)
            st.max_slots = slots_used;
        s->state = SLOT_RUNNING;
        s->body_len = (size_t)size;
        s->tags[0] = tag;
        s->n_tags = 1;
        s->corr_len = (uint8_t)idlen;
        memcpy(s->corr, id, idlen);
        s->reply_len = (uint8_t)rlen;
        memcpy(s->reply_to, reply_to, rlen);
        s->status = 0;
        s->out_len = 0;
        swarm_task t;
        memset(&t, 0, sizeof t);
        t.id = h;
        t.payload = s->body;
        t.payload_len = s->body_len;
        t.user = s;
        t.enqueued_ns = swarm_now_ns();
        /* The window keeps deliveries <= capacity, so there is always room. */
        if (swarm_chan_try_send(tasks, &t) != 0)
            return settle_nack(s);
        st.tasks++;
        uint64_t q = swarm_chan_len(tasks);
        if (q > st.max_queued)
            st.max_queued = q;
        return 0;
    }
    case ATTACH:
        e->s->tags[e->s->n_tags++] = tag;
        st.dup_attached++;
        return 0;
    case ACK_DUP:
        st.dup_suppressed++;
        return ack_tag(tag);
    case NACK:
        return nack_tag(tag);
    case REJECT:
        st.rejects++;
        st.tags_out--;
        return amqp_basic_reject(conn, CH, tag, 0) == AMQP_STATUS_OK ? 0 : -1;
    }
    return 0;
}

static int handle_frame(const amqp_frame_t *f)
{
    if (f->frame_type != AMQP_FRAME_METHOD)
        return 0;
    switch (f->payload.method.id) {
    case AMQP_BASIC_DELIVER_METHOD:
        return on_deliver(f->payload.method.decoded);
    case AMQP_BASIC_ACK_METHOD: {
        const amqp_basic_ack_t *a = f->payload.method.decoded;
        return on_confirm(a->delivery_tag, a->multiple, 0);
    }
    case AMQP_BASIC_NACK_METHOD: {
        const amqp_basic_nack_t *n = f->payload.method.decoded;
        return on_confirm(n->delivery_tag, n->multiple, 1);
    }
    case AMQP_BASIC_CANCEL_METHOD: /* the server dropped our consumer (queue deleted) */
        log_err("the broker canceled the consumer");
        return -1;
    case AMQP_CHANNEL_CLOSE_METHOD: {
        const amqp_channel_close_t *m = f->payload.method.decoded;
        char txt[256];
        snprintf(txt, sizeof txt, "%u %.*s", m->reply_code, (int)m->reply_text.len,
                 (const char *)m->reply_text.bytes);
        log_err("channel closed by the broker: %s", txt);
        return -1;
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
        const amqp_connection_close_t *m = f->payload.method.decoded;
        char txt[256];
        snprintf(txt, sizeof txt, "%u %.*s", m->reply_code, (int)m->reply_text.len,
                 (const char *)m->reply_text.bytes);
        log_err("connection closed by the broker: %s", txt);
        amqp_connection_close_ok_t ok;
        amqp_send_method(conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        return -1;
    }
    default: /* qos-ok, consume-ok, cancel-ok, ... */
        return 0;
    }
}

static int pump_frames(void)
{
    struct timeval zero = {0, 0};
    for (int i = 0; i < 256; i++) {
        amqp_frame_t f;
        int rc = amqp_simple_wait_frame_noblock(conn, &f, &zero);
        if (rc == AMQP_STATUS_TIMEOUT)
            break;
        if (rc != AMQP_STATUS_OK) {
            log_err("connection lost: %s", amqp_error_string2(rc));
            return -1;
        }
        if (handle_frame(&f) != 0)
            return -1;
    }
    amqp_maybe_release_buffers(conn);
    return 0;
}

/* Steal the tasks not started yet back from the pool's channel. */
static void steal_queued(int nack)
{
    swarm_task t;
    while (swarm_chan_try_recv(tasks, &t) == 0) {
        slot *s = t.user;
        if (nack) {
            settle_nack(s);
        } else {
            st.dropped_on_reconnect++;
            s->n_tags = 0;
            rid_unlink(&rids[s->entry]);
            slot_free(s);
        }
    }
}

static void disconnect(void)
{
    if (conn)
        amqp_destroy_connection(conn);
    conn = NULL;
    connected = 0;
    st.tags_out = 0;
    cur_prefetch = 0;
    /* Every delivery tag died with the channel: the broker requeues those messages. */
    for (uint32_t i = 0; i < n_slots; i++)
        slots[i].n_tags = 0;
    /* Replies not confirmed may be lost: publish them again on the next connection. */
    while (ring_count) {
        slot *s = ring[ring_head];
        ring_head = (ring_head + 1) % n_slots;
        ring_count--;
        s->confirmed = s->nacked = 0;
        s->state = SLOT_READY;
        pubq_push(s);
        st.republished++;
    }
    pub_seq = 0;
    /* Tasks not started will be redelivered: drop them instead of running them twice. */
    steal_queued(0);
}

static int connect_once(void)
{
    char err[512];
    if (rmq_connect(&conn, &cfg.conn, 1, err, sizeof err) != 0) {
        log_err("%s", err);
        conn = NULL;
        return -1;
    }
    if (cfg.confirm) {
        amqp_confirm_select(conn, CH);
        if (rmq_rpc_ok(amqp_get_rpc_reply(conn), "confirm.select", err, sizeof err) != 0)
            goto fail;
    }
    if (rmq_declare_queue(conn, CH, cfg.queue, err, sizeof err) != 0)
        goto fail;
    uint32_t w = window_now();
    amqp_basic_qos(conn, CH, 0, (uint16_t)w, /*global: per channel, changeable live*/ 1);
    if (rmq_rpc_ok(amqp_get_rpc_reply(conn), "basic.qos", err, sizeof err) != 0)
        goto fail;
    cur_prefetch = w;
    amqp_basic_consume_ok_t *ok =
        amqp_basic_consume(conn, CH, amqp_cstring_bytes(cfg.queue), amqp_empty_bytes, 0,
                           /*no_ack*/ 0, 0, amqp_empty_table);
    if (rmq_rpc_ok(amqp_get_rpc_reply(conn), "basic.consume", err, sizeof err) != 0)
        goto fail;
    consumer_tag_len = ok->consumer_tag.len < sizeof consumer_tag ? ok->consumer_tag.len : 0;
    memcpy(consumer_tag, ok->consumer_tag.bytes, consumer_tag_len);
    connected = 1;
    gen++;
    pub_seq = 0;
    return 0;
fail:
    log_err("%s", err);
    amqp_destroy_connection(conn);
    conn = NULL;
    return -1;
}

/* ---- autoscaling: the existing reconcile + policy API, KEDA mode ----------------------------- */

static int observe(void *ctx, swarm_policy_obs *obs)
{
    (void)ctx;
    swarm_pool_stats ps;
    memset(&ps, 0, sizeof ps);
    ps.size = sizeof ps;
    int rc = swarm_pool_get_stats(pool, &ps);
    if (rc != 0)
        return rc;
    int32_t cur = (int32_t)ps.target;
    int32_t ready = (int32_t)(ps.ready < ps.target ? ps.ready : ps.target);
    obs->current_replicas = cur;
    obs->ready_replicas = ready;
    obs->starting_replicas = 0;
    obs->n_metrics = 1;
    obs->metrics[0].kind = SWARM_METRIC_TOTAL;
    obs->metrics[0].value = (double)ps.queued;
    obs->metrics[0].in_flight = (double)ps.in_flight;
    obs->metrics[0].target = cfg.target;
    obs->metrics[0].activation = 0;
    return 0;
}

static int actuate(void *ctx, int32_t desired, const swarm_policy_decision *d)
{
    (void)ctx;
    (void)d;
    int rc = swarm_pool_resize(pool, desired < 1 ? 1 : (uint32_t)desired);
    wake(); /* the I/O thread re-sends basic.qos for the new window */
    return rc;
}

/* ---- shutdown helper ----------------------------------------------------------------------- */

static atomic_int stopper_done;
static swarm_task left[LEFT_CAP];
static int n_moved;

static void *stopper(void *arg)
{
    (void)arg;
    uint64_t n_left = 0;
    n_moved = swarm_pool_stop(pool, cfg.grace_s * SEC, left, LEFT_CAP, &n_left);
    atomic_store(&stopper_done, 1);
    wake();
    return NULL;
}

/* ---- output ---------------------------------------------------------------------------------- */

static void print_stats(const char *what)
{
    swarm_pool_stats ps;
    memset(&ps, 0, sizeof ps);
    ps.size = sizeof ps;
    swarm_pool_get_stats(pool, &ps);
    printf("worker %s: %s connected=%d deliveries=%" PRIu64 " redelivered=%" PRIu64
           " tasks=%" PRIu64 " replies=%" PRIu64 " acks=%" PRIu64 " nacks=%" PRIu64
           " rejects=%" PRIu64 " failed=%" PRIu64 " canceled=%" PRIu64 " dup_attached=%" PRIu64
           " dup_suppressed=%" PRIu64 " dup_rerun=%" PRIu64 " dropped_on_reconnect=%" PRIu64
           " republished=%" PRIu64 " confirms=%" PRIu64 " reconnects=%" PRIu64 " unacked=%" PRIu64
           " max_unacked=%" PRIu64 " held=%u max_held=%" PRIu64 " queued=%" PRIu64
           " max_queued=%" PRIu64 " prefetch=%u workers=%u completed=%" PRIu64 " evictions=%" PRIu64
           " rss_kib=%ld\n",
           cfg.name, what, connected, st.deliveries, st.redelivered, st.tasks, st.replies, st.acks,
           st.nacks, st.rejects, st.failed, st.canceled, st.dup_attached, st.dup_suppressed,
           st.dup_rerun, st.dropped_on_reconnect, st.republished, st.confirms, st.reconnects,
           st.tags_out, st.max_tags_out, slots_used, st.max_slots, swarm_chan_len(tasks),
           st.max_queued, cur_prefetch, ps.target, ps.completed, rid_evictions, rmq_rss_kib(0));
    fflush(stdout);
}

/* ---- main ------------------------------------------------------------------------------------ */

static int die(const char *what, int rc)
{
    fprintf(stderr, "worker: %s: %s\n", what, swarm_strerror(rc));
    return 2;
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv) != 0) {
        fprintf(stderr, "usage: see the comment at the top of examples/rabbitmq/rmq_worker.c\n");
        return 2;
    }
    int rc;
    if (pipe(wake_pipe) != 0)
        return 2;
    fcntl(wake_pipe[0], F_SETFL, O_NONBLOCK);
    fcntl(wake_pipe[1], F_SETFL, O_NONBLOCK);

    /* Signals go to this (the I/O) thread only: block them before any thread starts. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    n_slots = cfg.capacity;
    slots = calloc(n_slots, sizeof *slots);
    ring = calloc(n_slots, sizeof *ring);
    if (!slots || !ring || rid_init(cfg.dedupe) != 0)
        return die("allocation", SWARM_ENOMEM);
    for (uint32_t i = n_slots; i-- > 0;) {
        slots[i].next = free_slots;
        free_slots = &slots[i];
    }

    swarm_chan_opts co;
    swarm_chan_opts_init(&co);
    co.capacity = cfg.capacity;
    co.elem_size = sizeof(swarm_task);
    if ((rc = swarm_chan_create(&tasks, &co)) != 0)
        return die("task channel", rc);
    co.elem_size = sizeof(slot *);
    if ((rc = swarm_chan_create(&done, &co)) != 0)
        return die("done channel", rc);

    static const swarm_engine_ops echo_ops = {
        .version = SWARM_ENGINE_OPS_VERSION, .name = "echo", .infer = echo_infer};
    swarm_engine *engine = NULL;
    if ((rc = swarm_engine_create(&engine, &echo_ops, NULL, NULL)) != 0)
        return die("engine", rc);

    swarm_pool_opts po;
    swarm_pool_opts_init(&po);
    po.input = tasks;
    po.engine = engine;
    po.workers = cfg.workers;
    po.max_workers = cfg.max_workers;
    po.on_result = on_result;
    if ((rc = swarm_pool_create(&pool, &po)) != 0)
        return die("pool", rc);

    swarm_policy_opts pol;
    swarm_policy_opts_init(&pol);
    pol.mode = SWARM_POLICY_KEDA;
    pol.min_replicas = (int32_t)cfg.workers;
    pol.max_replicas = (int32_t)cfg.max_workers;
    pol.cooldown_ns = cfg.cooldown_s * SEC;
    pol.scale_down.window_ns = cfg.cooldown_s > 0 ? cfg.cooldown_s * SEC : -1;
    pol.scale_up.window_ns = -1;
    swarm_policy *policy = NULL;
    if ((rc = swarm_policy_create(&policy, &pol)) != 0)
        return die("policy", rc);
    swarm_reconcile_opts ro;
    swarm_reconcile_opts_init(&ro);
    ro.policy = policy;
    ro.observe = observe;
    ro.actuate = actuate;
    ro.interval_ns = cfg.interval_ms * MS;
    ro.jitter = 0.1;
    if ((rc = swarm_reconcile_create(&loop, &ro)) != 0)
        return die("reconcile", rc);
    if (cfg.max_workers > cfg.workers && (rc = swarm_reconcile_start(loop)) != 0)
        return die("reconcile start", rc);

    pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
    printf("worker %s: queue=%s broker=%s:%d capacity=%u workers=%u..%u confirm=%d engine=echo "
           "latency=%" PRId64 "..%" PRId64 "ms\n",
           cfg.name, cfg.queue, cfg.conn.host, cfg.conn.port, cfg.capacity, cfg.workers,
           cfg.max_workers, cfg.confirm, cfg.lat_lo_ms, cfg.lat_hi_ms);
    fflush(stdout);

    uint64_t rng = (uint64_t)getpid() * 0x9e3779b97f4a7c15u;
    uint32_t attempts = 0;
    int64_t next_connect = 0, next_stats = swarm_now_ns() + cfg.stats_ms * MS;
    int64_t shutdown_deadline = 0;
    pthread_t stop_thread;
    int stop_started = 0;

    for (;;) {
        int64_t now = swarm_now_ns();

        /* Shutdown begins: stop consuming, hand back what has not started, stop the pool. */
        if (atomic_load_explicit(&got_signal, memory_order_relaxed) && !shutting_down) {
            shutting_down = 1;
            shutdown_deadline = now + cfg.grace_s * SEC;
            print_stats("stopping");
            if (connected) {
                amqp_basic_cancel_t m = {{consumer_tag_len, consumer_tag}, 0};
                if (amqp_send_method(conn, CH, AMQP_BASIC_CANCEL_METHOD, &m) != AMQP_STATUS_OK)
                    disconnect();
            }
            steal_queued(connected);
            swarm_reconcile_stop(loop);
            if (pthread_create(&stop_thread, NULL, stopper, NULL) == 0)
                stop_started = 1;
        }

        /* Results from the pool. Read the stopper's flag first: once it is set, every result
         * is already in the done channel, so the drain below sees them all. */
        int stopped = atomic_load(&stopper_done);
        drain_wake();
        slot *s;
        while (swarm_chan_try_recv(done, &s) == 0) {
            if (on_result_ready(s) != 0 && connected)
                disconnect();
        }

        if (shutting_down && stopped) {
            for (int i = 0; i < n_moved; i++)
                settle_nack(left[i].user);
            n_moved = 0;
            /* Done when every reply is out and settled, or the broker is gone, or the confirms
             * have not come within a second past the grace period. */
            if (!connected || (pubq_head == NULL && ring_count == 0) ||
                now > shutdown_deadline + SEC)
                break;
        }

        if (!connected) {
            if (shutting_down) {
                if (atomic_load(&stopper_done))
                    break;
            } else if (now >= next_connect) {
                if (connect_once() == 0) {
                    if (gen > 1)
                        st.reconnects++;
                    printf("worker %s: consuming queue=%s prefetch=%u connection=%" PRIu64
                           " after_attempts=%u rss_kib=%ld\n",
                           cfg.name, cfg.queue, cur_prefetch, gen, attempts, rmq_rss_kib(0));
                    fflush(stdout);
                    attempts = 0;
                } else {
                    st.connect_failures++;
                    attempts++;
                    next_connect = now + rmq_backoff_ns(attempts, 100 * MS, 5 * SEC, &rng);
                }
            }
        }

        if (connected) {
            if (flush_publish() != 0 || (!shutting_down && update_qos() != 0) ||
                pump_frames() != 0) {
                disconnect();
                next_connect = swarm_now_ns() + rmq_backoff_ns(++attempts, 100 * MS, 5 * SEC, &rng);
                continue;
            }
        }

        if (cfg.stats_ms > 0 && now >= next_stats) {
            print_stats("stats");
            next_stats = now + cfg.stats_ms * MS;
        }

        /* Wait for the socket, a result or a signal. */
        struct pollfd pfd[2] = {{wake_pipe[0], POLLIN, 0}, {-1, POLLIN, 0}};
        int nfd = 1;
        int timeout_ms = 1000;
        if (connected) {
            pfd[1].fd = amqp_get_sockfd(conn);
            nfd = 2;
            if (amqp_data_in_buffer(conn) || amqp_frames_enqueued(conn) || pubq_head)
                timeout_ms = 0;
        } else if (!shutting_down) {
            int64_t wait = next_connect - swarm_now_ns();
            timeout_ms = wait <= 0 ? 0 : (int)(wait / MS) + 1;
            if (timeout_ms > 1000)
                timeout_ms = 1000;
        }
        if (cfg.stats_ms > 0 && timeout_ms > cfg.stats_ms)
            timeout_ms = (int)cfg.stats_ms;
        if (atomic_load_explicit(&got_signal, memory_order_relaxed) && !shutting_down)
            timeout_ms = 0;
        if (poll(pfd, (nfds_t)nfd, timeout_ms) < 0 && errno != EINTR)
            break;
    }

    if (stop_started)
        pthread_join(stop_thread, NULL);
    else
        swarm_pool_stop(pool, 0, NULL, 0, NULL);
    /* Anything still here was not answered: the broker requeues it when the connection goes. */
    if (connected)
        rmq_close(conn);
    conn = NULL;
    connected = 0;
    print_stats("final");

    swarm_reconcile_destroy(loop);
    swarm_pool_destroy(pool);
    swarm_policy_destroy(policy);
    swarm_engine_destroy(engine);
    /* Drain leftovers (results that arrived after the loop ended) before destroying. */
    slot *s;
    while (swarm_chan_try_recv(done, &s) == 0) {
    }
    swarm_chan_destroy(tasks);
    swarm_chan_destroy(done);
    for (uint32_t i = 0; i < n_slots; i++) {
        free(slots[i].body);
        free(slots[i].out);
    }
    free(slots);
    free(ring);
    free(rids);
    free(rid_bucket);
    return 0;
}
