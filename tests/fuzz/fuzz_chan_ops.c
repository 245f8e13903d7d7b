/* SPDX-License-Identifier: MIT */
/*
 * Fuzz harness for the channel: a random single-threaded sequence of operations (try and
 * zero-timeout sends, batch sends, receives, batch receives, close, stats, destroy) on a channel
 * of random capacity, element size and full mode, checked step by step against a model (a plain
 * FIFO). Checks: every return code is the one the header documents for the model's state; every
 * element received is the one the model says, byte for byte, in FIFO order; every drop reaches the
 * drop callback with the right element and reason; the statistics agree with the model; destroy
 * hands back exactly what is still queued. Concurrency is the stress suites' job; this one pins
 * the sequential semantics, including the ring's wrap-around and the drop modes at the edges.
 *
 * libFuzzer: -Dfuzzing=true with clang links it (see tests/meson.build). Without libFuzzer, main()
 * replays the files (or directories' files) given as arguments, then a deterministic random
 * sweep.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <swarm/swarm.h>

#include "replay_main.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_CAP   64
#define MAX_ELEM  40
#define MAX_BATCH 16

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_chan_ops: check failed at %s:%d: %s\n", __FILE__, __LINE__,      \
                    #cond);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct rd {
    const uint8_t *p;
    size_t n, off;
} rd;

static uint8_t u8(rd *r)
{
    return r->off < r->n ? r->p[r->off++] : 0;
}

/* The model: a FIFO of element ids, plus the drops the channel is expected to report next. */
typedef struct model {
    uint64_t q[MAX_CAP];
    uint32_t head, len, cap;
    uint64_t next_id;
    int closed, mode;
    uint64_t sent, received, dropped;
    /* Drops the model predicts, consumed in order by the callback. */
    uint64_t want_drop[MAX_BATCH + MAX_CAP + 1];
    int want_reason[MAX_BATCH + MAX_CAP + 1];
    uint32_t n_want, n_seen;
    size_t elem;
} model;

static void fill(uint8_t *buf, size_t elem, uint64_t id)
{
    for (size_t k = 0; k < elem; k++)
        buf[k] = k < 8 ? (uint8_t)(id >> (8 * k)) : (uint8_t)(id * 31u + k);
}

static void check_elem(const uint8_t *buf, size_t elem, uint64_t id)
{
    uint8_t want[MAX_ELEM];
    fill(want, elem, id);
    CHECK(memcmp(buf, want, elem) == 0);
}

static void on_drop(void *ctx, const void *elem, int reason)
{
    model *m = ctx;
    CHECK(m->n_seen < m->n_want);
    CHECK(reason == m->want_reason[m->n_seen]);
    check_elem(elem, m->elem, m->want_drop[m->n_seen]);
    m->n_seen++;
}

static void expect_drop(model *m, uint64_t id, int reason)
{
    CHECK(m->n_want < sizeof m->want_drop / sizeof m->want_drop[0]);
    m->want_drop[m->n_want] = id;
    m->want_reason[m->n_want] = reason;
    m->n_want++;
}

static void drops_done(model *m)
{
    CHECK(m->n_seen == m->n_want);
    m->n_seen = m->n_want = 0;
}

static uint64_t *at(model *m, uint32_t i)
{
    return &m->q[(m->head + i) % m->cap];
}

/* The model's one-element send: the code the channel must return. */
static int model_send(model *m, uint64_t id)
{
    if (m->closed)
        return SWARM_ECLOSED;
    if (m->len < m->cap) {
        *at(m, m->len++) = id;
        m->sent++;
        return 0;
    }
    switch (m->mode) {
    case SWARM_FULL_WAIT:
        return SWARM_EAGAIN;
    case SWARM_FULL_DROP_OLDEST:
        expect_drop(m, *at(m, 0), SWARM_DROP_EVICTED_OLDEST);
        m->head = (m->head + 1) % m->cap;
        *at(m, m->len - 1) = id;
        break;
    case SWARM_FULL_DROP_NEWEST:
        expect_drop(m, *at(m, m->len - 1), SWARM_DROP_EVICTED_NEWEST);
        *at(m, m->len - 1) = id;
        break;
    default:
        expect_drop(m, id, SWARM_DROP_WRITE);
        break;
    }
    m->dropped++;
    m->sent++;
    return 0;
}

static void check_stats(swarm_chan *ch, const model *m)
{
    swarm_chan_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    CHECK(swarm_chan_get_stats(ch, &st) == 0);
    CHECK(st.length == m->len);
    CHECK(swarm_chan_len(ch) == m->len);
    CHECK(st.capacity == m->cap);
    CHECK(st.closed == (uint32_t)m->closed);
    CHECK(swarm_chan_is_closed(ch) == m->closed);
    CHECK(st.sent == m->sent);
    CHECK(st.received == m->received);
    CHECK(st.dropped == m->dropped);
    CHECK(st.high_watermark <= m->cap);
    CHECK(st.blocked_senders == 0 && st.blocked_receivers == 0);
}

static void run(const uint8_t *data, size_t size)
{
    rd r = {data, size, 0};
    static const size_t elems[] = {1, 3, 8, 16, 40};
    model m;
    memset(&m, 0, sizeof m);
    m.cap = 1u + u8(&r) % MAX_CAP;
    m.mode = u8(&r) % 4;
    m.elem = elems[u8(&r) % 5];
    m.next_id = 1;

    swarm_chan_opts o;
    swarm_chan_opts_init(&o);
    o.capacity = m.cap;
    o.elem_size = m.elem;
    o.full_mode = (uint32_t)m.mode;
    o.drop_fn = on_drop;
    o.drop_ctx = &m;
    o.spin = u8(&r) & 1 ? UINT32_MAX : 0;
    swarm_chan *ch = NULL;
    CHECK(swarm_chan_create(&ch, &o) == 0);

    uint8_t buf[MAX_BATCH * MAX_ELEM];
    while (r.off < r.n) {
        uint8_t op = u8(&r) % 10;
        switch (op) {
        case 0:   /* try_send */
        case 1:   /* send_timeout(0): the same contract */
        case 2: { /* blocking send, only where it cannot block */
            if (op == 2 && m.mode == SWARM_FULL_WAIT && !m.closed && m.len == m.cap)
                break;
            uint64_t id = m.next_id++;
            fill(buf, m.elem, id);
            int want = model_send(&m, id);
            int got = op == 0   ? swarm_chan_try_send(ch, buf)
                      : op == 1 ? swarm_chan_send_timeout(ch, buf, 0)
                                : swarm_chan_send(ch, buf);
            CHECK(got == want);
            drops_done(&m);
            break;
        }
        case 3: { /* send_batch with timeout 0: sends what fits, in order */
            uint32_t n = 1u + u8(&r) % MAX_BATCH;
            int want = 0, first_err = 0;
            for (uint32_t i = 0; i < n; i++) {
                uint64_t id = m.next_id + i;
                fill(buf + i * m.elem, m.elem, id);
            }
            for (uint32_t i = 0; i < n; i++) {
                int rc = model_send(&m, m.next_id + i);
                if (rc != 0) {
                    first_err = rc;
                    break;
                }
                want++;
            }
            m.next_id += n;
            int got = swarm_chan_send_batch(ch, buf, n, 0, NULL);
            CHECK(got == (want > 0 ? want : first_err));
            drops_done(&m);
            break;
        }
        case 4:   /* try_recv */
        case 5: { /* recv_timeout(0) */
            int want = m.len > 0 ? 0 : (m.closed ? SWARM_ECLOSED : SWARM_EAGAIN);
            int got = op == 4 ? swarm_chan_try_recv(ch, buf) : swarm_chan_recv_timeout(ch, buf, 0);
            CHECK(got == want);
            if (want == 0) {
                check_elem(buf, m.elem, *at(&m, 0));
                m.head = (m.head + 1) % m.cap;
                m.len--;
                m.received++;
            }
            break;
        }
        case 6: { /* recv_batch: everything ready up to max, never waiting */
            uint32_t max = 1u + u8(&r) % MAX_BATCH;
            uint32_t min = u8(&r) % (max + 1);
            uint32_t take = m.len < max ? m.len : max;
            int want = take > 0 ? (int)take : (m.closed ? SWARM_ECLOSED : SWARM_EAGAIN);
            int got = swarm_chan_recv_batch(ch, buf, max, min, 0, 0, NULL);
            CHECK(got == want);
            for (uint32_t i = 0; i < take; i++) {
                check_elem(buf + i * m.elem, m.elem, *at(&m, 0));
                m.head = (m.head + 1) % m.cap;
                m.len--;
                m.received++;
            }
            break;
        }
        case 7: /* close: idempotent */
            if (u8(&r) % 4 == 0) {
                CHECK(swarm_chan_close(ch) == 0);
                m.closed = 1;
            }
            break;
        case 8: /* a batch receive that could wait must not, when elements are ready */
            if (m.len > 0) {
                int got = swarm_chan_recv_batch(ch, buf, 1, 1, 0, SWARM_WAIT_FOREVER, NULL);
                CHECK(got == 1);
                check_elem(buf, m.elem, *at(&m, 0));
                m.head = (m.head + 1) % m.cap;
                m.len--;
                m.received++;
            }
            break;
        default:
            check_stats(ch, &m);
            break;
        }
    }
    check_stats(ch, &m);
    /* Destroy hands back exactly what is still queued, oldest first. */
    for (uint32_t i = 0; i < m.len; i++)
        expect_drop(&m, *at(&m, i), SWARM_DROP_DESTROY);
    swarm_chan_destroy(ch);
    drops_done(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(data, size);
    return 0;
}

#ifndef SWARM_FUZZ_LIBFUZZER
int main(int argc, char **argv)
{
    return fuzz_replay_main(argc, argv, "fuzz_chan_ops", 0x2545f4914f6cdd1dull, 4000, 8, 2048);
}
#endif
