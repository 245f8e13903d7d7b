/* SPDX-License-Identifier: MIT */
/*
 * Stress suite for swarm_chan: P producers x C consumers over every full mode and several
 * capacities, with random timeouts, random cancellations (a chaos thread fires the threads'
 * tokens), random batch sends and receives, and in some runs a close racing the traffic.
 *
 * Every element carries (producer, sequence, check). A ledger with one byte per element proves
 * that each element the producers attempted ended exactly once as received, dropped (drop
 * callback) or returned to its sender (its send failed), never two of these and never twice, and
 * that nothing was invented. Each consumer checks that the sequence numbers it sees from each
 * producer increase (per-producer FIFO; in drop modes the seen subsequence still increases). At
 * quiescence the channel's own statistics must agree with the ledger.
 *
 * SWARM_STRESS_SCALE (float, default 1.0) scales the item counts; SWARM_STRESS_SEED fixes the
 * random seed (printed at start). A watchdog aborts with diagnostics if no progress is made for
 * a long time, so a lost wake-up or a livelock fails instead of hanging.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <swarm/swarm.h>

#include "helpers.h"
#define MAX_THREADS 16
#define MAX_BATCH   32

enum { ST_NONE = 0, ST_RECEIVED = 1, ST_DROPPED = 2, ST_RETURNED = 3 };
static const char *const st_name[] = {"none", "received", "dropped", "returned"};

typedef struct item {
    uint32_t pid;
    uint32_t check;
    uint64_t seq;
} item;

static uint32_t item_check(uint32_t pid, uint64_t seq)
{
    uint64_t h = (seq + 1) * UINT64_C(0x9E3779B97F4A7C15) ^ ((uint64_t)pid << 40);
    return (uint32_t)(h >> 29) ^ 0xA5A5A5A5u;
}

static double g_scale = 1.0;
static uint64_t g_seed;
static uint64_t g_total_items;
static double g_total_secs;

/* ---- small helpers ------------------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * UINT64_C(0x2545F4914F6CDD1D);
}

static uint64_t rng_below(uint64_t *s, uint64_t n)
{
    return n == 0 ? 0 : rng_next(s) % n;
}

static uint64_t rng_seed(uint64_t a, uint64_t b)
{
    uint64_t s = g_seed ^ (a * UINT64_C(0xD6E8FEB86659FD93)) ^ (b * UINT64_C(0xA0761D6478BD642F));
    s ^= s >> 31;
    return s == 0 ? 1 : s;
}

/* A random timeout: 0 (never wait), a few microseconds, up to ~2 ms, or forever. */
static int64_t random_timeout(uint64_t *r)
{
    switch (rng_below(r, 4)) {
    case 0:
        return 0;
    case 1:
        return (int64_t)(1 + rng_below(r, 50)) * US;
    case 2:
        return (int64_t)(50 + rng_below(r, 2000)) * US;
    default:
        return SWARM_WAIT_FOREVER;
    }
}

/* ---- one run ------------------------------------------------------------------------------- */

struct cfg {
    int producers, consumers;
    uint64_t capacity;
    uint32_t mode;
    uint64_t items; /* total over all producers */
    int close_race;
};

struct run {
    struct cfg cfg;
    swarm_chan *ch;
    uint64_t per; /* items per producer */
    _Atomic uint8_t *ledger;
    uint64_t attempted[MAX_THREADS]; /* seqs [0, attempted) were handed to the channel */
    swarm_cancel *ptok[MAX_THREADS];
    swarm_cancel *ctok[MAX_THREADS];

    _Atomic uint64_t sent_ok;         /* sends that returned success (counting batch elements) */
    _Atomic uint64_t received;        /* elements received */
    _Atomic uint64_t returned;        /* elements returned to the sender */
    _Atomic uint64_t dropped_mode;    /* drop callback with the mode's reason */
    _Atomic uint64_t dropped_destroy; /* drop callback with SWARM_DROP_DESTROY */
    _Atomic uint64_t cancels, timeouts, batches_sent, batches_recv;
    _Atomic uint64_t errors;
    _Atomic int in_destroy;
    _Atomic int producers_done;
    _Atomic int p_finished, c_finished;
    _Atomic int stop_chaos;
    char first_error[256];
    pthread_mutex_t err_lock;
};

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void
report(struct run *r, const char *fmt, ...);

static void report(struct run *r, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&r->err_lock);
    if (atomic_fetch_add(&r->errors, 1) == 0)
        snprintf(r->first_error, sizeof r->first_error, "%s", buf);
    pthread_mutex_unlock(&r->err_lock);
    if (atomic_load(&r->errors) <= 10)
        fprintf(stderr, "stress_chan: %s\n", buf);
}

/* Validates an element and moves its ledger entry from none to `state`. */
static int ledger_mark(struct run *r, const item *it, int state, const char *who)
{
    if (it->pid >= (uint32_t)r->cfg.producers || it->seq >= r->per) {
        report(r, "%s: element out of range (pid %" PRIu32 ", seq %" PRIu64 ")", who, it->pid,
               it->seq);
        return -1;
    }
    if (it->check != item_check(it->pid, it->seq)) {
        report(r, "%s: torn or corrupted element (pid %" PRIu32 ", seq %" PRIu64 ")", who, it->pid,
               it->seq);
        return -1;
    }
    uint8_t old = atomic_exchange_explicit(&r->ledger[(uint64_t)it->pid * r->per + it->seq],
                                           (uint8_t)state, memory_order_relaxed);
    if (old != ST_NONE) {
        report(r, "%s: element (pid %" PRIu32 ", seq %" PRIu64 ") %s, then %s", who, it->pid,
               it->seq, st_name[old], st_name[state]);
        return -1;
    }
    return 0;
}

static void on_drop(void *ctx, const void *elem, int reason)
{
    struct run *r = ctx;
    item it;
    memcpy(&it, elem, sizeof it);
    int expect = 0;
    switch (r->cfg.mode) {
    case SWARM_FULL_DROP_OLDEST:
        expect = SWARM_DROP_EVICTED_OLDEST;
        break;
    case SWARM_FULL_DROP_NEWEST:
        expect = SWARM_DROP_EVICTED_NEWEST;
        break;
    case SWARM_FULL_DROP_WRITE:
        expect = SWARM_DROP_WRITE;
        break;
    default:
        break;
    }
    if (reason == SWARM_DROP_DESTROY) {
        if (!atomic_load(&r->in_destroy))
            report(r, "drop: SWARM_DROP_DESTROY outside destroy");
        atomic_fetch_add_explicit(&r->dropped_destroy, 1, memory_order_relaxed);
    } else {
        if (reason != expect)
            report(r, "drop: reason %d in mode %" PRIu32, reason, r->cfg.mode);
        atomic_fetch_add_explicit(&r->dropped_mode, 1, memory_order_relaxed);
    }
    ledger_mark(r, &it, ST_DROPPED, "drop");
}

struct thread_arg {
    struct run *run;
    int id;
};

static void make_item(item *it, uint32_t pid, uint64_t seq)
{
    it->pid = pid;
    it->seq = seq;
    it->check = item_check(pid, seq);
}

static void *producer_main(void *p)
{
    struct thread_arg *a = p;
    struct run *r = a->run;
    const uint32_t pid = (uint32_t)a->id;
    swarm_cancel *tok = r->ptok[pid];
    uint64_t rng = rng_seed(0x100 + pid, r->cfg.items + r->cfg.capacity);
    item buf[MAX_BATCH];
    uint64_t seq = 0;
    int closed = 0;
    while (seq < r->per && !closed) {
        /* Drop-mode sends never wait, so a producer would race far ahead and drop nearly
         * everything; yielding often keeps evictions racing with receives. */
        if (r->cfg.mode != SWARM_FULL_WAIT && rng_below(&rng, 4) == 0)
            sched_yield();
        swarm_cancel *c = rng_below(&rng, 2) ? tok : NULL;
        int64_t timeout = random_timeout(&rng);
        int rc;
        if (rng_below(&rng, 8) == 0) {
            size_t n = 1 + (size_t)rng_below(&rng, MAX_BATCH);
            if (n > r->per - seq)
                n = (size_t)(r->per - seq);
            for (size_t i = 0; i < n; i++)
                make_item(&buf[i], pid, seq + i);
            rc = swarm_chan_send_batch(r->ch, buf, n, timeout, c);
            if (rc > 0) {
                if ((size_t)rc > n)
                    report(r, "send_batch returned %d for %zu", rc, n);
                seq += (uint64_t)rc;
                atomic_fetch_add_explicit(&r->sent_ok, (uint64_t)rc, memory_order_relaxed);
                atomic_fetch_add_explicit(&r->batches_sent, 1, memory_order_relaxed);
                continue;
            }
            if (rc == 0)
                report(r, "send_batch returned 0 for n %zu", n);
        } else {
            make_item(&buf[0], pid, seq);
            rc = swarm_chan_send_ex(r->ch, &buf[0], timeout, c);
            if (rc == 0) {
                seq++;
                atomic_fetch_add_explicit(&r->sent_ok, 1, memory_order_relaxed);
                continue;
            }
        }
        /* Nothing of the call was queued: element `seq` is still ours. */
        make_item(&buf[0], pid, seq);
        switch (rc) {
        case SWARM_EAGAIN:
            if (timeout != 0)
                report(r, "send: EAGAIN with timeout %" PRId64, timeout);
            break;
        case SWARM_ETIMEDOUT:
            if (timeout <= 0)
                report(r, "send: ETIMEDOUT with timeout %" PRId64, timeout);
            atomic_fetch_add_explicit(&r->timeouts, 1, memory_order_relaxed);
            break;
        case SWARM_ECANCELED:
            if (c == NULL)
                report(r, "send: ECANCELED without a token");
            atomic_fetch_add_explicit(&r->cancels, 1, memory_order_relaxed);
            if (swarm_cancel_reset(tok) != 0)
                report(r, "cancel_reset failed for an unwatched token");
            /* Half the time the sender gives up on the element: it is returned. */
            if (rng_below(&rng, 2)) {
                ledger_mark(r, &buf[0], ST_RETURNED, "producer");
                atomic_fetch_add_explicit(&r->returned, 1, memory_order_relaxed);
                seq++;
            }
            break;
        case SWARM_ECLOSED:
            ledger_mark(r, &buf[0], ST_RETURNED, "producer");
            atomic_fetch_add_explicit(&r->returned, 1, memory_order_relaxed);
            seq++;
            closed = 1;
            if (!swarm_chan_is_closed(r->ch))
                report(r, "send: ECLOSED on an open channel");
            break;
        default:
            report(r, "send: unexpected %s", swarm_err_name(rc));
            closed = 1;
            break;
        }
        if (r->cfg.mode != SWARM_FULL_WAIT && rc != SWARM_ECLOSED)
            report(r, "send in drop mode %" PRIu32 " failed with %s", r->cfg.mode,
                   swarm_err_name(rc));
    }
    r->attempted[pid] = seq;
    atomic_fetch_add(&r->p_finished, 1);
    return NULL;
}

static void *consumer_main(void *p)
{
    struct thread_arg *a = p;
    struct run *r = a->run;
    swarm_cancel *tok = r->ctok[a->id];
    uint64_t rng = rng_seed(0x200 + (uint64_t)a->id, r->cfg.items + r->cfg.capacity);
    int64_t last[MAX_THREADS];
    for (int i = 0; i < MAX_THREADS; i++)
        last[i] = -1;
    item buf[MAX_BATCH];
    for (;;) {
        swarm_cancel *c = rng_below(&rng, 2) ? tok : NULL;
        int64_t timeout = random_timeout(&rng);
        int rc;
        size_t max = 1;
        if (rng_below(&rng, 4) == 0) {
            max = 1 + (size_t)rng_below(&rng, MAX_BATCH);
            size_t min = (size_t)rng_below(&rng, max + 1);
            int64_t linger = rng_below(&rng, 2) ? 0 : (int64_t)rng_below(&rng, 200) * US;
            rc = swarm_chan_recv_batch(r->ch, buf, max, min, linger, timeout, c);
            if (rc > 0)
                atomic_fetch_add_explicit(&r->batches_recv, 1, memory_order_relaxed);
        } else {
            rc = swarm_chan_recv_ex(r->ch, &buf[0], timeout, c);
            if (rc == 0)
                rc = 1;
        }
        if (rc > 0) {
            if ((size_t)rc > max)
                report(r, "recv returned %d for max %zu", rc, max);
            for (int i = 0; i < rc; i++) {
                if (ledger_mark(r, &buf[i], ST_RECEIVED, "consumer") != 0)
                    continue;
                if ((int64_t)buf[i].seq <= last[buf[i].pid])
                    report(r,
                           "consumer %d: producer %" PRIu32 " seq %" PRIu64 " after %" PRId64
                           " (FIFO violated)",
                           a->id, buf[i].pid, buf[i].seq, last[buf[i].pid]);
                last[buf[i].pid] = (int64_t)buf[i].seq;
            }
            atomic_fetch_add_explicit(&r->received, (uint64_t)rc, memory_order_relaxed);
            continue;
        }
        if (rc == 0) {
            report(r, "recv_batch returned 0");
            continue;
        }
        switch (rc) {
        case SWARM_EAGAIN:
            if (timeout != 0)
                report(r, "recv: EAGAIN with timeout %" PRId64, timeout);
            break;
        case SWARM_ETIMEDOUT:
            if (timeout <= 0)
                report(r, "recv: ETIMEDOUT with timeout %" PRId64, timeout);
            atomic_fetch_add_explicit(&r->timeouts, 1, memory_order_relaxed);
            break;
        case SWARM_ECANCELED:
            if (c == NULL)
                report(r, "recv: ECANCELED without a token");
            atomic_fetch_add_explicit(&r->cancels, 1, memory_order_relaxed);
            if (swarm_cancel_reset(tok) != 0)
                report(r, "cancel_reset failed for an unwatched token");
            break;
        case SWARM_ECLOSED:
            if (!swarm_chan_is_closed(r->ch))
                report(r, "recv: ECLOSED on an open channel");
            atomic_fetch_add(&r->c_finished, 1);
            return NULL;
        default:
            report(r, "recv: unexpected %s", swarm_err_name(rc));
            atomic_fetch_add(&r->c_finished, 1);
            return NULL;
        }
    }
}

static void *chaos_main(void *p)
{
    struct run *r = p;
    uint64_t rng = rng_seed(0x300, r->cfg.items + r->cfg.capacity);
    int n = r->cfg.producers + r->cfg.consumers;
    while (!atomic_load(&r->stop_chaos)) {
        sleep_ns((int64_t)(20 + rng_below(&rng, 500)) * US);
        int k = (int)rng_below(&rng, (uint64_t)n);
        swarm_cancel_trigger(k < r->cfg.producers ? r->ptok[k] : r->ctok[k - r->cfg.producers]);
    }
    return NULL;
}

static void *closer_main(void *p)
{
    struct run *r = p;
    uint64_t rng = rng_seed(0x400, r->cfg.items + r->cfg.capacity);
    /* Close once a random 20..90% of the items have been sent. */
    uint64_t at = r->cfg.items * (20 + rng_below(&rng, 71)) / 100;
    while (atomic_load(&r->sent_ok) < at && !atomic_load(&r->producers_done))
        sleep_ns(50 * US);
    swarm_chan_close(r->ch);
    return NULL;
}

static uint64_t progress_of(struct run *r)
{
    return atomic_load(&r->received) + atomic_load(&r->dropped_mode) + atomic_load(&r->returned) +
           atomic_load(&r->sent_ok) + atomic_load(&r->timeouts) + atomic_load(&r->cancels);
}

static const char *mode_name(uint32_t mode)
{
    static const char *const names[] = {"wait", "drop_oldest", "drop_newest", "drop_write"};
    return mode < 4 ? names[mode] : "?";
}

static void run_config(const struct cfg *cfg)
{
    struct run *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->cfg = *cfg;
    r->per = cfg->items / (uint64_t)cfg->producers;
    if (r->per == 0)
        r->per = 1;
    r->cfg.items = r->per * (uint64_t)cfg->producers;
    pthread_mutex_init(&r->err_lock, NULL);
    r->ledger = calloc((size_t)r->cfg.items, 1);
    assert_non_null(r->ledger);

    swarm_chan_opts o;
    swarm_chan_opts_init(&o);
    o.capacity = cfg->capacity;
    o.elem_size = sizeof(item);
    o.full_mode = cfg->mode;
    o.drop_fn = on_drop;
    o.drop_ctx = r;
    assert_int_equal(swarm_chan_create(&r->ch, &o), 0);
    for (int i = 0; i < cfg->producers; i++)
        assert_int_equal(swarm_cancel_create(&r->ptok[i], NULL), 0);
    for (int i = 0; i < cfg->consumers; i++)
        assert_int_equal(swarm_cancel_create(&r->ctok[i], NULL), 0);

    int64_t t0 = swarm_now_ns();
    pthread_t pt[MAX_THREADS], ct[MAX_THREADS], chaos, closer;
    struct thread_arg pa[MAX_THREADS], ca[MAX_THREADS];
    for (int i = 0; i < cfg->consumers; i++) {
        ca[i] = (struct thread_arg){r, i};
        assert_int_equal(pthread_create(&ct[i], NULL, consumer_main, &ca[i]), 0);
    }
    for (int i = 0; i < cfg->producers; i++) {
        pa[i] = (struct thread_arg){r, i};
        assert_int_equal(pthread_create(&pt[i], NULL, producer_main, &pa[i]), 0);
    }
    assert_int_equal(pthread_create(&chaos, NULL, chaos_main, r), 0);
    if (cfg->close_race)
        assert_int_equal(pthread_create(&closer, NULL, closer_main, r), 0);

    /* Watchdog: wait for the producers, failing loudly if progress stops. */
    const int64_t stall_limit = 15 * SEC;
    uint64_t last_progress = progress_of(r);
    int64_t last_change = swarm_now_ns();
    int phase = 0; /* 0: producers running, 1: consumers draining */
    int joined_p = 0, joined_c = 0;
    for (;;) {
        sleep_ns(2 * MS);
        if (phase == 0) {
            joined_p = atomic_load(&r->p_finished);
            if (joined_p == cfg->producers) {
                for (int i = 0; i < cfg->producers; i++)
                    pthread_join(pt[i], NULL);
                atomic_store(&r->producers_done, 1);
                swarm_chan_close(r->ch);
                phase = 1;
            }
        } else {
            joined_c = atomic_load(&r->c_finished);
            if (joined_c == cfg->consumers) {
                for (int i = 0; i < cfg->consumers; i++)
                    pthread_join(ct[i], NULL);
                break;
            }
        }
        uint64_t pr = progress_of(r);
        int64_t now = swarm_now_ns();
        if (pr != last_progress) {
            last_progress = pr;
            last_change = now;
        } else if (now - last_change > stall_limit) {
            swarm_chan_stats s = {.size = sizeof s};
            swarm_chan_get_stats(r->ch, &s);
            fprintf(stderr,
                    "stress_chan: STALL %dx%d cap %" PRIu64 " mode %s: no progress for %ds "
                    "(phase %d, producers joined %d, consumers joined %d)\n"
                    "  sent_ok %" PRIu64 " received %" PRIu64 " dropped %" PRIu64
                    " returned %" PRIu64 "\n  stats: length %" PRIu64 " sent %" PRIu64
                    " received %" PRIu64 " dropped %" PRIu64 " closed %u blocked_s %u "
                    "blocked_r %u\n",
                    cfg->producers, cfg->consumers, cfg->capacity, mode_name(cfg->mode),
                    (int)(stall_limit / SEC), phase, joined_p, joined_c, atomic_load(&r->sent_ok),
                    atomic_load(&r->received), atomic_load(&r->dropped_mode),
                    atomic_load(&r->returned), s.length, s.sent, s.received, s.dropped, s.closed,
                    s.blocked_senders, s.blocked_receivers);
            fflush(stderr);
            /* Threads are stuck inside the library: leak the run (they still use it) and fail.
             * DROP_NEWEST runs last so that the stuck threads slow down no other mode. */
            atomic_store(&r->stop_chaos, 1);
            fail_msg("%dx%d cap %" PRIu64 " %s: stalled (threads stuck in the channel)",
                     cfg->producers, cfg->consumers, cfg->capacity, mode_name(cfg->mode));
        }
    }
    atomic_store(&r->stop_chaos, 1);
    pthread_join(chaos, NULL);
    if (cfg->close_race)
        pthread_join(closer, NULL);
    double secs = (double)(swarm_now_ns() - t0) / 1e9;

    /* Quiescent: the channel's statistics agree with the ledger. */
    swarm_chan_stats s = {.size = sizeof s};
    assert_int_equal(swarm_chan_get_stats(r->ch, &s), 0);
    if (s.sent != s.received + s.dropped + s.length)
        report(r,
               "stats: sent %" PRIu64 " != received %" PRIu64 " + dropped %" PRIu64
               " + length %" PRIu64,
               s.sent, s.received, s.dropped, s.length);
    if (s.length != 0)
        report(r, "stats: length %" PRIu64 " after consumers saw ECLOSED", s.length);
    if (s.sent != atomic_load(&r->sent_ok))
        report(r, "stats: sent %" PRIu64 " but senders saw %" PRIu64 " successes", s.sent,
               atomic_load(&r->sent_ok));
    if (s.received != atomic_load(&r->received))
        report(r, "stats: received %" PRIu64 " but receivers got %" PRIu64, s.received,
               atomic_load(&r->received));
    if (s.dropped != atomic_load(&r->dropped_mode))
        report(r, "stats: dropped %" PRIu64 " but the callback saw %" PRIu64, s.dropped,
               atomic_load(&r->dropped_mode));
    if (cfg->mode == SWARM_FULL_WAIT && s.dropped != 0)
        report(r, "stats: dropped %" PRIu64 " in wait mode", s.dropped);
    if (s.closed != 1 || s.blocked_senders != 0 || s.blocked_receivers != 0)
        report(r, "stats: closed %u blocked %u/%u at quiescence", s.closed, s.blocked_senders,
               s.blocked_receivers);
    if (s.high_watermark > cfg->capacity)
        report(r, "stats: high_watermark %" PRIu64 " above capacity", s.high_watermark);

    atomic_store(&r->in_destroy, 1);
    swarm_chan_destroy(r->ch);
    for (int i = 0; i < cfg->producers; i++)
        swarm_cancel_destroy(r->ptok[i]);
    for (int i = 0; i < cfg->consumers; i++)
        swarm_cancel_destroy(r->ctok[i]);

    /* The ledger: everything attempted has exactly one fate; nothing else appeared. */
    uint64_t counts[4] = {0};
    uint64_t attempted = 0;
    for (int p = 0; p < cfg->producers; p++) {
        attempted += r->attempted[p];
        for (uint64_t q = 0; q < r->per; q++) {
            uint8_t st =
                atomic_load_explicit(&r->ledger[(uint64_t)p * r->per + q], memory_order_relaxed);
            counts[st]++;
            if (q < r->attempted[p] && st == ST_NONE)
                report(r, "ledger: element (pid %d, seq %" PRIu64 ") missing", p, q);
            if (q >= r->attempted[p] && st != ST_NONE)
                report(r, "ledger: element (pid %d, seq %" PRIu64 ") never sent but %s", p, q,
                       st_name[st]);
        }
    }
    if (!cfg->close_race && attempted != r->cfg.items)
        report(r, "producers attempted %" PRIu64 " of %" PRIu64 " without a close race", attempted,
               r->cfg.items);
    if (counts[ST_RECEIVED] != atomic_load(&r->received))
        report(r, "ledger received %" PRIu64 " != %" PRIu64, counts[ST_RECEIVED],
               atomic_load(&r->received));

    printf("stress_chan: %2dx%-2d cap %4" PRIu64 " %-11s%s items %8" PRIu64 " recv %8" PRIu64
           " drop %7" PRIu64 " ret %6" PRIu64 " cancels %6" PRIu64 " timeouts %6" PRIu64
           " batches %6" PRIu64 "/%-6" PRIu64 " %6.2fs %s\n",
           cfg->producers, cfg->consumers, cfg->capacity, mode_name(cfg->mode),
           cfg->close_race ? " +close" : "       ", attempted, counts[ST_RECEIVED],
           counts[ST_DROPPED], counts[ST_RETURNED], atomic_load(&r->cancels),
           atomic_load(&r->timeouts), atomic_load(&r->batches_sent), atomic_load(&r->batches_recv),
           secs, atomic_load(&r->errors) ? "FAIL" : "ok");
    fflush(stdout);
    g_total_items += attempted;
    g_total_secs += secs;

    uint64_t errors = atomic_load(&r->errors);
    char first[256];
    snprintf(first, sizeof first, "%s", r->first_error);
    pthread_mutex_destroy(&r->err_lock);
    free(r->ledger);
    free(r);
    if (errors != 0)
        fail_msg("%" PRIu64 " error(s); first: %s", errors, first);
}

/* ---- the configurations -------------------------------------------------------------------- */

static const int pc[][2] = {{1, 1}, {2, 2}, {4, 4}, {8, 8}, {16, 1}, {1, 16}};
static const uint64_t caps[] = {1, 2, 16, 1024};

/* Items per configuration at scale 1, by capacity: small capacities cost a wake-up per element. */
static uint64_t items_for(uint64_t cap, uint32_t mode)
{
    uint64_t base;
    switch (cap) {
    case 1:
        base = 150000;
        break;
    case 2:
        base = 200000;
        break;
    case 16:
        base = 500000;
        break;
    default:
        base = 800000;
        break;
    }
    (void)mode;
    uint64_t n = (uint64_t)((double)base * g_scale);
    return n < 64 ? 64 : n;
}

static void run_mode(uint32_t mode)
{
    int idx = 0;
    for (size_t i = 0; i < sizeof pc / sizeof pc[0]; i++) {
        for (size_t j = 0; j < sizeof caps / sizeof caps[0]; j++, idx++) {
            struct cfg cfg = {
                .producers = pc[i][0],
                .consumers = pc[i][1],
                .capacity = caps[j],
                .mode = mode,
                .items = items_for(caps[j], mode),
                .close_race = (idx + (int)mode) % 3 == 0,
            };
            run_config(&cfg);
        }
    }
}

static void test_chan_stress_wait(void **state)
{
    (void)state;
    run_mode(SWARM_FULL_WAIT);
}

static void test_chan_stress_drop_oldest(void **state)
{
    (void)state;
    run_mode(SWARM_FULL_DROP_OLDEST);
}

static void test_chan_stress_drop_newest(void **state)
{
    (void)state;
    run_mode(SWARM_FULL_DROP_NEWEST);
}

static void test_chan_stress_drop_write(void **state)
{
    (void)state;
    run_mode(SWARM_FULL_DROP_WRITE);
}

static void *idle_main(void *p)
{
    return p;
}

int main(void)
{
    g_scale = swarm_test_stress_scale();
    /* The one prerequisite: enough threads (16 + 16 workers, chaos, closer). Skip if absent. */
    {
        pthread_t th[2 * MAX_THREADS + 2];
        int made = 0;
        while (made < 2 * MAX_THREADS + 2 && pthread_create(&th[made], NULL, idle_main, NULL) == 0)
            made++;
        for (int i = 0; i < made; i++)
            pthread_join(th[i], NULL);
        if (made < 2 * MAX_THREADS + 2) {
            fprintf(stderr, "stress_chan: cannot create %d threads; skipping\n",
                    2 * MAX_THREADS + 2);
            return 77;
        }
    }
    const char *sd = getenv("SWARM_STRESS_SEED");
    g_seed = (sd != NULL && *sd != '\0') ? strtoull(sd, NULL, 0)
                                         : (uint64_t)swarm_now_ns() ^ (uint64_t)time(NULL);
    printf("stress_chan: scale %.3g seed 0x%" PRIx64 " (SWARM_STRESS_SEED to replay)\n", g_scale,
           g_seed);
    fflush(stdout);
    const struct CMUnitTest tests[] = {
        SWARM_TEST_T(test_chan_stress_wait, 600),
        SWARM_TEST_T(test_chan_stress_drop_oldest, 600),
        SWARM_TEST_T(test_chan_stress_drop_write, 600),
        SWARM_TEST_T(test_chan_stress_drop_newest, 600),
    };
    int rc = cmocka_run_group_tests_name("chan_stress", tests, NULL, NULL);
    printf("stress_chan: TOTAL items %" PRIu64 " in %.2fs (%.2f M items/s)\n", g_total_items,
           g_total_secs, g_total_secs > 0 ? (double)g_total_items / g_total_secs / 1e6 : 0.0);
    return rc;
}
