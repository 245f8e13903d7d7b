/* SPDX-License-Identifier: MIT */
/*
 * Bounded MPMC channel.
 *
 * The ring is the array design of Dmitry Vyukov's bounded queue as refined by crossbeam-channel:
 * every slot carries a stamp, and head/tail are positions that encode (lap, index) so that the
 * capacity is exact without a modulo. With mark_bit = next_pow2(capacity + 1) and one_lap =
 * 2 * mark_bit, a position is lap + index (index < capacity); the successor of the last index is
 * the next lap's index 0. Bit mark_bit of the tail is the "closed" flag, so a close and a send
 * cannot cross: once it is set no send can claim a position.
 *
 *   slot free for the producer at position p:    stamp == p
 *   slot holds the element of position p:        stamp == p + 1
 *   released by the consumer of position p:      stamp == p + one_lap (free for the next lap)
 *
 * A producer claims a position by CAS on tail, copies the element, then publishes the stamp; a
 * consumer claims by CAS on head, copies out, then releases the stamp. A slot can be claimed but
 * not yet published; a thread that meets such a slot spins/yields briefly instead of reporting
 * empty or full, so try-operations fail only when head and tail say so.
 *
 * Waiting: two event counts, one per direction (receivers wait for "not empty", senders for "not
 * full"). A waiter reads the count's sequence, registers in `waiters` (seq_cst), re-tries its
 * operation, and only then parks on the sequence word. A successful operation loads the opposite
 * direction's `waiters` after its seq_cst CAS on head/tail and, only if someone waits, bumps the
 * sequence and wakes: no system call when nobody sleeps. Why no wake-up is lost: a waiter's
 * re-check decides "empty"/"full" from head and tail after a seq_cst fence, and a notifier loads
 * `waiters` after its seq_cst CAS on the same positions, so either the waiter sees the new
 * position (and does not sleep; it spins until the stamp is published) or the notifier sees the
 * waiter (and wakes it); a wake that lands between the waiter's sequence read and its futex call
 * changes the sequence, so the futex call returns at once.
 *
 * Drop modes. DROP_WRITE hands the caller's element to the drop callback. DROP_OLDEST makes room
 * by popping the head into the drop callback. DROP_NEWEST replaces the element at the position
 * before tail: the evicting sender marks that slot's stamp with EVICT_BIT (CAS), then checks that
 * tail has not moved and the channel is still full, otherwise it unmarks and retries. A consumer
 * of a DROP_NEWEST channel re-reads the stamp after its head CAS and waits while it is marked.
 * Both sides use seq_cst (evictor: CAS stamp, load head; consumer: CAS head, load stamp), so at
 * least one of them sees the other: the evictor backs off, or the consumer waits and then reads
 * the replacement.
 *
 * Lock order: the channel has no locks. Cancel tokens call ec_wake_all() under the token's lock.
 */
#include "swarm/chan.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "internal.h"
#include "opts_v1.h"
#include "platform.h"

#define EVICT_BIT      (UINT64_C(1) << 63)
#define MAX_ELEM_SIZE  (UINT64_C(1) << 20)
#define MAX_RING_BYTES (UINT64_C(1) << 40)
#define DEFAULT_SPIN   10u
/* Larger spin options are clamped: past a few hundred yields spinning only burns a core. */
#define MAX_SPIN        1000u
#define HWM_SAMPLE_MASK 63u

/* Spin rounds: SPIN_BURSTS growing bursts of pause instructions (1, 2, 4, ... 64), then yields. */
#define SPIN_BURSTS 7u

/*
 * Adaptive spinning, per direction and per phase (the pause bursts, the yields). A wait that ends
 * in a phase scores a hit for it (+SPIN_HIT); a phase it went through without a hit scores a miss
 * (-1); scores stay in [-SPIN_SCORE_MAX, SPIN_SCORE_MAX]. A phase at SPIN_OFF or below is
 * skipped, except by every SPIN_PROBE_EVERY-th wait, which spins in full to find out whether it
 * pays again. Bursts that keep missing mean the element comes from a thread that needs this CPU
 * (two threads handing work back and forth, which the scheduler keeps on one core, as Python
 * threads behind their global lock are): pausing only delays it. Yields that keep missing mean the
 * element comes later than a time slice: parking at once saves the CPU and the wait. Measured on
 * Python channels (issue 11): ping-pong waits never hit in the bursts and 18% in the yields, a
 * 2x2 pipeline's 90% in the yields.
 */
#define SPIN_HIT         4
#define SPIN_SCORE_MAX   16
#define SPIN_OFF         (-8)
#define SPIN_PROBE_EVERY 16u

/* An event count: waiters park on seq; wakers bump seq and then wake. */
struct ec {
    _Atomic uint32_t seq;
    _Atomic uint32_t waiters;
    /* Adaptive spinning (above); relaxed: only a heuristic, lost updates are harmless. */
    _Atomic int32_t burst_score;
    _Atomic int32_t yield_score;
    _Atomic uint32_t spin_probe;
};

struct swarm_chan {
    /* Read-only after create. */
    unsigned char *slots;
    size_t stride; /* bytes per slot: 8-byte stamp + element, rounded up to 8 */
    uint64_t cap;
    uint64_t mark_bit;
    uint64_t one_lap;
    size_t elem_size;
    uint32_t mode;
    uint32_t spin;
    swarm_chan_drop_fn drop_fn;
    void *drop_ctx;
    swarm_allocator alloc;
    size_t alloc_size;
    /* References: the creator's, plus one per library object that reads the channel (a pool's
     * input or result channel). swarm_chan_destroy() drops the creator's; the last one frees.
     * acq_rel on the decrement orders every user's accesses before the free. */
    _Atomic uint32_t refs;

    /* Producers' and consumers' positions on their own cache lines (CK's padding). */
    _Alignas(SWARM_CACHELINE) _Atomic uint64_t tail;
    _Alignas(SWARM_CACHELINE) _Atomic uint64_t head;

    _Alignas(SWARM_CACHELINE) struct ec not_empty; /* receivers wait here */
    _Alignas(SWARM_CACHELINE) struct ec not_full;  /* senders wait here */

    /* Senders in their spin phase now: with more than one, runs are kept short (relaxed: a
     * heuristic, never needed for correctness). */
    _Alignas(SWARM_CACHELINE) _Atomic uint32_t spinning_senders;

    /* Counters touched only on slow paths (drops, parking, sampling). */
    _Alignas(SWARM_CACHELINE) _Atomic uint64_t hwm;
    _Atomic uint64_t evicted_oldest;
    _Atomic uint64_t evicted_newest;
    _Atomic uint64_t dropped_write;
    _Atomic int64_t send_blocked_ns;
    _Atomic int64_t recv_blocked_ns;
};

/* ---- positions and slots ------------------------------------------------------------------- */

static inline _Atomic uint64_t *stamp_of(const swarm_chan *ch, uint64_t pos)
{
    size_t index = (size_t)(pos & (ch->mark_bit - 1));
    return (_Atomic uint64_t *)(void *)(ch->slots + index * ch->stride);
}

static inline unsigned char *data_of(const swarm_chan *ch, uint64_t pos)
{
    return ch->slots + (size_t)(pos & (ch->mark_bit - 1)) * ch->stride + sizeof(uint64_t);
}

/* Copies one element; the 8-byte case (a pointer or an id) compiles to a single move. */
static inline void copy_elem(void *dst, const void *src, size_t n)
{
    if (SWARM_LIKELY(n == sizeof(uint64_t)))
        memcpy(dst, src, sizeof(uint64_t));
    else
        memcpy(dst, src, n);
}

static inline uint64_t next_pos(const swarm_chan *ch, uint64_t pos)
{
    uint64_t index = pos & (ch->mark_bit - 1);
    uint64_t lap = pos & ~(ch->one_lap - 1);
    return index + 1 < ch->cap ? pos + 1 : lap + ch->one_lap;
}

/* Advances a (position, slot pointer) cursor by one slot: within a lap both step by one, and the
 * successor of the last index is the next lap's index 0 at the start of the ring. The one
 * wrap-around step of the ring; every walk over slots uses it. */
static inline void cursor_step(const swarm_chan *ch, uint64_t *pos, unsigned char **slot)
{
    if (SWARM_LIKELY((*pos & (ch->mark_bit - 1)) + 1 < ch->cap)) {
        (*pos)++;
        *slot += ch->stride;
    } else {
        *pos = (*pos & ~(ch->one_lap - 1)) + ch->one_lap;
        *slot = ch->slots;
    }
}

/* Number of operations a position stands for (laps x capacity + index). */
static inline uint64_t pos_count(const swarm_chan *ch, uint64_t pos)
{
    pos &= ~ch->mark_bit;
    return (pos / ch->one_lap) * ch->cap + (pos & (ch->mark_bit - 1));
}

/* Elements between two position snapshots; clamped, since the two loads are not atomic together. */
static inline uint64_t queued_len(const swarm_chan *ch, uint64_t head, uint64_t tail)
{
    uint64_t h = pos_count(ch, head), t = pos_count(ch, tail);
    uint64_t len = t > h ? t - h : 0;
    return len > ch->cap ? ch->cap : len;
}

/* A short, bounded backoff for slots that are claimed but not yet published. */
static inline void snooze(unsigned *step)
{
    if (*step < 6) {
        for (unsigned i = 0; i < (1u << *step); i++)
            swarm__cpu_relax();
    } else {
        swarm__yield();
    }
    if (*step < 10)
        (*step)++;
}

/* ---- event counts -------------------------------------------------------------------------- */

static inline void ec_notify(struct ec *ec, int n)
{
    /* Sequenced after the caller's seq_cst CAS on head or tail; see the file comment. */
    if (atomic_load_explicit(&ec->waiters, memory_order_seq_cst) != 0) {
        atomic_fetch_add_explicit(&ec->seq, 1, memory_order_release);
        swarm__unpark(&ec->seq, n);
    }
}

static void hwm_update(swarm_chan *ch);

/* Wakes receivers after a send; a wake-up is a slow path anyway, so it also samples the high
 * watermark there (the header promises that). */
static inline void notify_receivers(swarm_chan *ch, int n)
{
    if (atomic_load_explicit(&ch->not_empty.waiters, memory_order_seq_cst) != 0) {
        hwm_update(ch);
        atomic_fetch_add_explicit(&ch->not_empty.seq, 1, memory_order_release);
        swarm__unpark(&ch->not_empty.seq, n);
    }
}

static void ec_wake_all(void *ctx)
{
    struct ec *ec = ctx;
    atomic_fetch_add_explicit(&ec->seq, 1, memory_order_release);
    swarm__unpark(&ec->seq, INT_MAX);
}

static void hwm_update(swarm_chan *ch)
{
    uint64_t tail = atomic_load_explicit(&ch->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&ch->head, memory_order_relaxed);
    uint64_t len = queued_len(ch, head, tail);
    uint64_t cur = atomic_load_explicit(&ch->hwm, memory_order_relaxed);
    while (len > cur && !atomic_compare_exchange_weak_explicit(
                            &ch->hwm, &cur, len, memory_order_relaxed, memory_order_relaxed)) {
    }
}

/* ---- the lock-free core -------------------------------------------------------------------- */

/* Claims up to max free positions at tail and copies elements in. Returns the count (>= 1),
 * SWARM_EAGAIN when full, SWARM_ECLOSED when closed. */
static int push_many(swarm_chan *ch, const unsigned char *src, size_t max)
{
    uint64_t tail = atomic_load_explicit(&ch->tail, memory_order_relaxed);
    unsigned step = 0;
    for (;;) {
        if (tail & ch->mark_bit)
            return SWARM_ECLOSED;
        uint64_t stamp = atomic_load_explicit(stamp_of(ch, tail), memory_order_acquire);
        if (stamp == tail) {
            /* Extend the claim over following free slots (batch sends). */
            uint64_t end = next_pos(ch, tail);
            size_t k = 1;
            while (k < max &&
                   atomic_load_explicit(stamp_of(ch, end), memory_order_acquire) == end) {
                end = next_pos(ch, end);
                k++;
            }
            if (atomic_compare_exchange_weak_explicit(&ch->tail, &tail, end, memory_order_seq_cst,
                                                      memory_order_relaxed)) {
                uint64_t pos = tail;
                unsigned char *slot = (unsigned char *)stamp_of(ch, pos);
                for (size_t i = 0; i < k; i++) {
                    copy_elem(slot + sizeof(uint64_t), src + i * ch->elem_size, ch->elem_size);
                    /* Publish the element before the stamp; pairs with the acquire loads of
                     * the stamp in pop_many(). */
                    atomic_store_explicit((_Atomic uint64_t *)(void *)slot, pos + 1,
                                          memory_order_release);
                    cursor_step(ch, &pos, &slot);
                }
                if (SWARM_UNLIKELY((tail & HWM_SAMPLE_MASK) == 0))
                    hwm_update(ch);
                return (int)k;
            }
            swarm__cpu_relax();
        } else if (stamp + ch->one_lap == tail + 1) {
            /* The slot still holds last lap's element: full, unless a consumer has claimed it
             * and is about to release it. The fence orders our view of head after tail. */
            atomic_thread_fence(memory_order_seq_cst);
            uint64_t head = atomic_load_explicit(&ch->head, memory_order_relaxed);
            if (head + ch->one_lap == tail)
                return SWARM_EAGAIN;
            snooze(&step);
            tail = atomic_load_explicit(&ch->tail, memory_order_relaxed);
        } else {
            /* Another producer claimed this position; catch up. */
            snooze(&step);
            tail = atomic_load_explicit(&ch->tail, memory_order_relaxed);
        }
    }
}

/* The single-element claim of push_many(), kept separate and small: it is the hot path. */
static inline int push_one(swarm_chan *ch, const void *src)
{
    uint64_t tail = atomic_load_explicit(&ch->tail, memory_order_relaxed);
    for (;;) {
        if (SWARM_UNLIKELY(tail & ch->mark_bit))
            return SWARM_ECLOSED;
        _Atomic uint64_t *stamp = stamp_of(ch, tail);
        uint64_t seen = atomic_load_explicit(stamp, memory_order_acquire);
        if (SWARM_LIKELY(seen == tail)) {
            if (atomic_compare_exchange_weak_explicit(&ch->tail, &tail, next_pos(ch, tail),
                                                      memory_order_seq_cst, memory_order_relaxed)) {
                copy_elem((unsigned char *)stamp + sizeof(uint64_t), src, ch->elem_size);
                /* Publish the element before the stamp; pairs with the acquire stamp loads of
                 * the receivers. */
                atomic_store_explicit(stamp, tail + 1, memory_order_release);
                if (SWARM_UNLIKELY((tail & HWM_SAMPLE_MASK) == 0))
                    hwm_update(ch);
                return 0;
            }
            swarm__cpu_relax();
            continue;
        }
        /* Full, or a slot in flux: push_many() has the full analysis. */
        int r = push_many(ch, src, 1);
        return r > 0 ? 0 : r;
    }
}

/* In a DROP_NEWEST channel, a consumer that claimed pos waits until no eviction holds the slot. */
static void await_unmarked(swarm_chan *ch, uint64_t pos)
{
    unsigned step = 0;
    /* seq_cst: pairs with the evictor's CAS of the stamp and its seq_cst load of head. */
    while (atomic_load_explicit(stamp_of(ch, pos), memory_order_seq_cst) & EVICT_BIT)
        snooze(&step);
}

/*
 * Claims up to max ready positions at head. Copies them to dst, or, when dst is NULL, hands each
 * to the drop callback with `reason` (evictions and destroy). Returns the count (>= 1),
 * SWARM_EAGAIN when empty, SWARM_ECLOSED when empty and closed.
 */
static int pop_many(swarm_chan *ch, unsigned char *dst, size_t max, int reason)
{
    uint64_t head = atomic_load_explicit(&ch->head, memory_order_relaxed);
    unsigned step = 0;
    for (;;) {
        uint64_t stamp = atomic_load_explicit(stamp_of(ch, head), memory_order_acquire);
        if (stamp == head + 1) {
            size_t k = 1;
            uint64_t end = next_pos(ch, head);
            if (max > 1) {
                /* Extend the claim over following ready slots (batch receives), across the
                 * wrap; within a lap positions and slots are contiguous, so walk by pointer.
                 * `end` is always the position of the slot at `slot`. */
                unsigned char *slot = (unsigned char *)stamp_of(ch, end);
                while (k < max && atomic_load_explicit((_Atomic uint64_t *)(void *)slot,
                                                       memory_order_acquire) == end + 1) {
                    k++;
                    cursor_step(ch, &end, &slot);
                }
            }
            if (atomic_compare_exchange_weak_explicit(&ch->head, &head, end, memory_order_seq_cst,
                                                      memory_order_relaxed)) {
                /* Walk the claimed slots with a pointer; positions step by one within a lap. */
                uint64_t pos = head;
                unsigned char *slot = (unsigned char *)stamp_of(ch, pos);
                size_t i = 0;
                if (dst != NULL && ch->mode != SWARM_FULL_DROP_NEWEST) {
                    /* The common batch: copy out up to the wrap in a tight loop (no per-slot
                     * mode, callback or wrap tests), then finish below. */
                    size_t seg = (size_t)(ch->cap - (pos & (ch->mark_bit - 1)));
                    if (seg > k)
                        seg = k;
                    size_t esz = ch->elem_size;
                    for (; i < seg; i++) {
                        copy_elem(dst + i * esz, slot + sizeof(uint64_t), esz);
                        /* Release for the next lap's producer; pairs with the acquire stamp
                         * loads in push_many() and push_one(). */
                        atomic_store_explicit((_Atomic uint64_t *)(void *)slot, pos + ch->one_lap,
                                              memory_order_release);
                        pos++;
                        slot += ch->stride;
                    }
                    if (i < k) {
                        pos = ((pos - 1) & ~(ch->one_lap - 1)) + ch->one_lap;
                        slot = ch->slots;
                    }
                }
                for (; i < k; i++) {
                    _Atomic uint64_t *st = (_Atomic uint64_t *)(void *)slot;
                    if (ch->mode == SWARM_FULL_DROP_NEWEST)
                        await_unmarked(ch, pos);
                    if (dst != NULL)
                        copy_elem(dst + i * ch->elem_size, slot + sizeof(uint64_t), ch->elem_size);
                    else if (ch->drop_fn != NULL)
                        ch->drop_fn(ch->drop_ctx, slot + sizeof(uint64_t), reason);
                    /* Release the slot for the next lap's producer; pairs with the acquire
                     * stamp loads in push_many(). */
                    atomic_store_explicit(st, pos + ch->one_lap, memory_order_release);
                    cursor_step(ch, &pos, &slot);
                }
                return (int)k;
            }
            swarm__cpu_relax();
        } else if (stamp == head) {
            /* Not yet written for this lap: empty, unless a producer has claimed it. */
            atomic_thread_fence(memory_order_seq_cst);
            uint64_t tail = atomic_load_explicit(&ch->tail, memory_order_relaxed);
            if ((tail & ~ch->mark_bit) == head)
                return (tail & ch->mark_bit) ? SWARM_ECLOSED : SWARM_EAGAIN;
            snooze(&step);
            head = atomic_load_explicit(&ch->head, memory_order_relaxed);
        } else {
            /* Another consumer took it, or an eviction holds it. */
            snooze(&step);
            head = atomic_load_explicit(&ch->head, memory_order_relaxed);
        }
    }
}

/* The single-element claim of pop_many(), kept separate and small: it is the hot path. */
static inline int pop_one(swarm_chan *ch, void *dst)
{
    uint64_t head = atomic_load_explicit(&ch->head, memory_order_relaxed);
    for (;;) {
        _Atomic uint64_t *stamp = stamp_of(ch, head);
        uint64_t seen = atomic_load_explicit(stamp, memory_order_acquire);
        if (SWARM_LIKELY(seen == head + 1 && ch->mode != SWARM_FULL_DROP_NEWEST)) {
            if (atomic_compare_exchange_weak_explicit(&ch->head, &head, next_pos(ch, head),
                                                      memory_order_seq_cst, memory_order_relaxed)) {
                copy_elem(dst, (unsigned char *)stamp + sizeof(uint64_t), ch->elem_size);
                /* Release the slot for the next lap's producer; pairs with the acquire stamp
                 * loads of the senders. */
                atomic_store_explicit(stamp, head + ch->one_lap, memory_order_release);
                return 0;
            }
            swarm__cpu_relax();
            continue;
        }
        /* Empty, a slot in flux, or a DROP_NEWEST channel: pop_many() handles all of it. */
        int r = pop_many(ch, dst, 1, 0);
        return r > 0 ? 0 : r;
    }
}

/* DROP_NEWEST: replaces the element before tail with src. Returns 0, SWARM_EAGAIN to retry the
 * push (the channel changed under us), or SWARM_ECLOSED. */
static int evict_newest(swarm_chan *ch, const void *src)
{
    uint64_t tail = atomic_load_explicit(&ch->tail, memory_order_seq_cst);
    if (tail & ch->mark_bit)
        return SWARM_ECLOSED;
    uint64_t index = tail & (ch->mark_bit - 1);
    uint64_t lap = tail & ~(ch->one_lap - 1);
    if (index == 0 && lap == 0)
        return SWARM_EAGAIN; /* nothing was ever sent */
    uint64_t prev = index > 0 ? tail - 1 : (lap - ch->one_lap) + (ch->cap - 1);
    uint64_t full = prev + 1;
    _Atomic uint64_t *stamp = stamp_of(ch, prev);
    if (!atomic_compare_exchange_strong_explicit(stamp, &full, (prev + 1) | EVICT_BIT,
                                                 memory_order_seq_cst, memory_order_relaxed))
        return SWARM_EAGAIN; /* not published yet, or being evicted by someone else */
    uint64_t head = atomic_load_explicit(&ch->head, memory_order_seq_cst);
    uint64_t tail2 = atomic_load_explicit(&ch->tail, memory_order_seq_cst);
    if (tail2 != tail || head + ch->one_lap != tail) {
        /* Room appeared, or the newest moved: undo and let the caller push again. A consumer
         * that claimed prev without seeing our mark may already have released the slot (its
         * store overwrote the mark; we wrote nothing), so undo only if the mark is still ours. */
        uint64_t marked = (prev + 1) | EVICT_BIT;
        atomic_compare_exchange_strong_explicit(stamp, &marked, prev + 1, memory_order_release,
                                                memory_order_relaxed);
        return SWARM_EAGAIN;
    }
    if (ch->drop_fn != NULL)
        ch->drop_fn(ch->drop_ctx, data_of(ch, prev), SWARM_DROP_EVICTED_NEWEST);
    memcpy(data_of(ch, prev), src, ch->elem_size);
    /* Unmark: publishes the replacement; pairs with await_unmarked(). */
    atomic_store_explicit(stamp, prev + 1, memory_order_release);
    atomic_fetch_add_explicit(&ch->evicted_newest, 1, memory_order_relaxed);
    return 0;
}

/* One element, honouring the full mode. Returns 0, SWARM_EAGAIN (wait mode, full) or
 * SWARM_ECLOSED. Notifies receivers on success. */
static inline int send_once(swarm_chan *ch, const void *src)
{
    unsigned step = 0;
    for (;;) {
        int r = push_one(ch, src);
        if (SWARM_LIKELY(r == 0)) {
            notify_receivers(ch, 1);
            return 0;
        }
        if (r != SWARM_EAGAIN || ch->mode == SWARM_FULL_WAIT) {
            if (r == SWARM_EAGAIN)
                atomic_store_explicit(&ch->hwm, ch->cap, memory_order_relaxed);
            return r;
        }
        atomic_store_explicit(&ch->hwm, ch->cap, memory_order_relaxed);
        switch (ch->mode) {
        case SWARM_FULL_DROP_WRITE:
            if (ch->drop_fn != NULL)
                ch->drop_fn(ch->drop_ctx, src, SWARM_DROP_WRITE);
            atomic_fetch_add_explicit(&ch->dropped_write, 1, memory_order_relaxed);
            return 0;
        case SWARM_FULL_DROP_OLDEST:
            if (pop_many(ch, NULL, 1, SWARM_DROP_EVICTED_OLDEST) > 0) {
                atomic_fetch_add_explicit(&ch->evicted_oldest, 1, memory_order_relaxed);
                continue; /* room made; the waiting-senders side never blocks in this mode */
            }
            break;
        case SWARM_FULL_DROP_NEWEST:
            r = evict_newest(ch, src);
            if (r != SWARM_EAGAIN) {
                /* The replacement is an element receivers may wait for (capacity 1). */
                if (r == 0)
                    notify_receivers(ch, 1);
                return r;
            }
            break;
        default:
            return SWARM_EINTERNAL;
        }
        snooze(&step);
    }
}

/* ---- waiting ------------------------------------------------------------------------------- */

/*
 * While it spins, a sender that found the channel full waits until a run of slots is free
 * instead of one: a quarter of the capacity, at most 256 slots, or at most 64 when other senders
 * are spinning too. Otherwise it refills each slot the moment a receiver releases it, and the two
 * threads take turns on the same cache line for every element. Measured on 2 vCPUs at capacity
 * 1024 (bench_chan): 1x1 fell from 40-60 to 6-14 M msgs/s in that lockstep; with 2x2 and
 * more, long runs collapsed instead (4-6 M msgs/s when the vCPUs sat far apart), hence the
 * shorter runs when crowded. Only the spin phase waits for a run; a parked sender takes the
 * first free slot.
 */
static inline bool room_for_burst(swarm_chan *ch, bool crowded)
{
    uint64_t run = ch->cap / 4;
    uint64_t limit = crowded ? 64 : 256;
    if (run > limit)
        run = limit;
    if (run < 2)
        return true;
    uint64_t head = atomic_load_explicit(&ch->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&ch->tail, memory_order_relaxed);
    return queued_len(ch, head, tail) + run <= ch->cap || (tail & ch->mark_bit);
}

typedef int (*attempt_fn)(swarm_chan *ch, void *arg);

/*
 * Spins briefly, then parks on `ec` until attempt() stops returning SWARM_EAGAIN, the deadline
 * passes, or `cancel` fires. attempt() is always retried after a wake-up before a timeout or a
 * cancellation is reported, so a wake-up meant for an element is never swallowed.
 */
static void spin_score(_Atomic int32_t *score, bool hit)
{
    int32_t sc = atomic_load_explicit(score, memory_order_relaxed);
    int32_t next = hit ? sc + SPIN_HIT : sc - 1;
    if (next > SPIN_SCORE_MAX)
        next = SPIN_SCORE_MAX;
    if (next < -SPIN_SCORE_MAX)
        next = -SPIN_SCORE_MAX;
    if (next != sc)
        atomic_store_explicit(score, next, memory_order_relaxed);
}

static int wait_for(swarm_chan *ch, struct ec *ec, attempt_fn attempt, void *arg, int64_t deadline,
                    swarm_cancel *cancel, _Atomic int64_t *blocked_ns)
{
    int r = SWARM_EAGAIN;
    bool sender = ec == &ch->not_full;
    bool crowded = false;
    uint32_t first = 0, rounds = ch->spin;
    if (rounds > 0) {
        bool bursts = atomic_load_explicit(&ec->burst_score, memory_order_relaxed) > SPIN_OFF;
        bool yields = atomic_load_explicit(&ec->yield_score, memory_order_relaxed) > SPIN_OFF;
        if ((!bursts || !yields) &&
            atomic_fetch_add_explicit(&ec->spin_probe, 1, memory_order_relaxed) %
                    SPIN_PROBE_EVERY !=
                0) {
            /* Not a probe: skip what has kept missing here. */
            if (!bursts)
                first = SPIN_BURSTS;
            if (!yields && rounds > SPIN_BURSTS)
                rounds = SPIN_BURSTS;
            if (first >= rounds)
                rounds = first = 0;
        }
    }
    if (sender)
        crowded = atomic_fetch_add_explicit(&ch->spinning_senders, 1, memory_order_relaxed) > 0;
    uint32_t round = first;
    for (; round < rounds; round++) {
        if (round < SPIN_BURSTS) {
            for (unsigned i = 0; i < (1u << round); i++)
                swarm__cpu_relax();
        } else {
            /* The yield phase can be long (a large spin option, a busy machine): it honours the
             * deadline and the token like the parked phase does. attempt() ran just before, so
             * nothing ready is skipped; the park loop below reports the timeout or the cancel
             * after one more attempt. */
            if ((cancel != NULL && swarm_cancel_is_canceled(cancel)) ||
                (deadline != INT64_MAX && swarm__clock_ns() >= deadline))
                break;
            swarm__yield();
        }
        if (sender && round + 1 < rounds && !room_for_burst(ch, crowded))
            continue;
        r = attempt(ch, arg);
        if (r != SWARM_EAGAIN)
            break;
    }
    if (sender)
        atomic_fetch_sub_explicit(&ch->spinning_senders, 1, memory_order_relaxed);
    if (rounds > 0) {
        bool hit = r != SWARM_EAGAIN;
        if (first < SPIN_BURSTS)
            spin_score(&ec->burst_score, hit && round < SPIN_BURSTS);
        if (rounds > SPIN_BURSTS && (round >= SPIN_BURSTS || !hit))
            spin_score(&ec->yield_score, hit);
        if (hit)
            return r;
    }

    swarm__cancel_watch watch = {.wake = ec_wake_all, .ctx = ec};
    if (cancel != NULL && swarm__cancel_watch_add(cancel, &watch) != 0)
        return SWARM_ECANCELED;
    int64_t t0 = swarm__clock_ns();
    for (;;) {
        uint32_t key = atomic_load_explicit(&ec->seq, memory_order_acquire);
        atomic_fetch_add_explicit(&ec->waiters, 1, memory_order_seq_cst);
        /* Pairs with the seq_cst CAS + waiters load in ec_notify()'s callers. */
        atomic_thread_fence(memory_order_seq_cst);
        r = attempt(ch, arg);
        if (r == SWARM_EAGAIN) {
            if (cancel != NULL && swarm_cancel_is_canceled(cancel))
                r = SWARM_ECANCELED;
            else if (swarm__park(&ec->seq, key, deadline) == SWARM_ETIMEDOUT &&
                     swarm__clock_ns() >= deadline)
                r = SWARM_ETIMEDOUT;
        }
        atomic_fetch_sub_explicit(&ec->waiters, 1, memory_order_relaxed);
        if (r == SWARM_ETIMEDOUT) {
            /* One last try: a wake-up may have raced the timeout. */
            int last = attempt(ch, arg);
            if (last != SWARM_EAGAIN)
                r = last;
        }
        if (r != SWARM_EAGAIN)
            break;
    }
    if (cancel != NULL)
        swarm__cancel_watch_del(cancel, &watch);
    atomic_fetch_add_explicit(blocked_ns, swarm__clock_ns() - t0, memory_order_relaxed);
    return r;
}

static int attempt_send(swarm_chan *ch, void *arg)
{
    return send_once(ch, arg);
}

static inline int attempt_recv(swarm_chan *ch, void *arg)
{
    int r = pop_one(ch, arg);
    if (SWARM_LIKELY(r == 0))
        ec_notify(&ch->not_full, 1);
    return r;
}

/* ---- public API ---------------------------------------------------------------------------- */

int swarm_chan_opts_init(swarm_chan_opts *opts)
{
    if (opts == NULL)
        return SWARM_EINVAL;
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
    opts->full_mode = SWARM_FULL_WAIT;
    opts->capacity = 1024;
    opts->elem_size = 8;
    return 0;
}

int swarm_chan_create(swarm_chan **out, const swarm_chan_opts *opts)
{
    swarm_chan_opts o;
    swarm_chan_opts_init(&o);
    if (out == NULL)
        return SWARM_EINVAL;
    if (opts != NULL && SWARM__OPTS_COPY(chan_opts, &o, opts) != 0)
        return SWARM_EINVAL;
    if (o.capacity == 0 || o.elem_size == 0 || o.elem_size > MAX_ELEM_SIZE ||
        o.full_mode > SWARM_FULL_DROP_WRITE)
        return SWARM_EINVAL;
    uint64_t stride = (sizeof(uint64_t) + o.elem_size + 7) & ~UINT64_C(7);
    if (o.capacity > MAX_RING_BYTES / stride)
        return SWARM_EINVAL;
    swarm_allocator a;
    if (swarm__alloc_init(&a, o.alloc) != 0)
        return SWARM_EINVAL;

    size_t header = (sizeof(swarm_chan) + SWARM_CACHELINE - 1) & ~(size_t)(SWARM_CACHELINE - 1);
    size_t total = header + (size_t)(o.capacity * stride);
    unsigned char *mem = swarm__alloc(&a, total, SWARM_CACHELINE);
    if (mem == NULL)
        return SWARM_ENOMEM;
    swarm_chan *ch = (swarm_chan *)(void *)mem;
    ch->slots = mem + header;
    ch->stride = (size_t)stride;
    ch->cap = o.capacity;
    uint64_t mark = 1;
    while (mark < o.capacity + 1)
        mark <<= 1;
    ch->mark_bit = mark;
    ch->one_lap = mark << 1;
    ch->elem_size = (size_t)o.elem_size;
    ch->mode = o.full_mode;
    ch->spin = o.spin == 0 ? DEFAULT_SPIN
                           : (o.spin == UINT32_MAX ? 0 : (o.spin > MAX_SPIN ? MAX_SPIN : o.spin));
    ch->drop_fn = o.drop_fn;
    ch->drop_ctx = o.drop_ctx;
    ch->alloc = a;
    ch->alloc_size = total;
    atomic_init(&ch->tail, 0);
    atomic_init(&ch->head, 0);
    for (uint64_t i = 0; i < o.capacity; i++)
        atomic_init(stamp_of(ch, i), i);
    atomic_init(&ch->not_empty.seq, 0);
    atomic_init(&ch->not_empty.waiters, 0);
    atomic_init(&ch->not_empty.burst_score, 0);
    atomic_init(&ch->not_empty.yield_score, 0);
    atomic_init(&ch->not_empty.spin_probe, 0);
    atomic_init(&ch->not_full.burst_score, 0);
    atomic_init(&ch->not_full.yield_score, 0);
    atomic_init(&ch->not_full.spin_probe, 0);
    atomic_init(&ch->not_full.seq, 0);
    atomic_init(&ch->not_full.waiters, 0);
    atomic_init(&ch->spinning_senders, 0);
    atomic_init(&ch->refs, 1);
    atomic_init(&ch->hwm, 0);
    atomic_init(&ch->evicted_oldest, 0);
    atomic_init(&ch->evicted_newest, 0);
    atomic_init(&ch->dropped_write, 0);
    atomic_init(&ch->send_blocked_ns, 0);
    atomic_init(&ch->recv_blocked_ns, 0);
    *out = ch;
    return 0;
}

void swarm__chan_retain(swarm_chan *ch)
{
    atomic_fetch_add_explicit(&ch->refs, 1, memory_order_relaxed);
}

void swarm_chan_destroy(swarm_chan *ch)
{
    if (ch == NULL)
        return;
    if (atomic_fetch_sub_explicit(&ch->refs, 1, memory_order_acq_rel) != 1)
        return;
    while (pop_many(ch, NULL, INT32_MAX, SWARM_DROP_DESTROY) > 0) {
    }
    swarm_allocator a = ch->alloc;
    swarm__free(&a, ch, ch->alloc_size);
}

int swarm_chan_close(swarm_chan *ch)
{
    if (ch == NULL)
        return SWARM_EINVAL;
    /* seq_cst RMW: a sender's CAS on tail either precedes it (and its element stays drainable)
     * or fails and sees the mark. */
    atomic_fetch_or_explicit(&ch->tail, ch->mark_bit, memory_order_seq_cst);
    ec_wake_all(&ch->not_empty);
    ec_wake_all(&ch->not_full);
    return 0;
}

/* The slow halves of send and receive: drop modes, waiting, cancellation. Kept out of line so
 * that the fast paths below stay small (no register spills, no stack frame to speak of). */
static SWARM_NOINLINE int send_slow(swarm_chan *ch, const void *elem, int64_t timeout_ns,
                                    swarm_cancel *cancel)
{
    int r = send_once(ch, elem);
    if (r != SWARM_EAGAIN || timeout_ns == 0)
        return r;
    if (cancel != NULL && swarm_cancel_is_canceled(cancel))
        return SWARM_ECANCELED;
    return wait_for(ch, &ch->not_full, attempt_send, (void *)elem, swarm__deadline(timeout_ns),
                    cancel, &ch->send_blocked_ns);
}

static SWARM_NOINLINE int recv_slow(swarm_chan *ch, void *out, int64_t timeout_ns,
                                    swarm_cancel *cancel)
{
    int r = attempt_recv(ch, out);
    if (r != SWARM_EAGAIN || timeout_ns == 0)
        return r;
    if (cancel != NULL && swarm_cancel_is_canceled(cancel))
        return SWARM_ECANCELED;
    return wait_for(ch, &ch->not_empty, attempt_recv, out, swarm__deadline(timeout_ns), cancel,
                    &ch->recv_blocked_ns);
}

static inline int chan_send(swarm_chan *ch, const void *elem, int64_t timeout_ns,
                            swarm_cancel *cancel)
{
    if (SWARM_UNLIKELY(ch == NULL || elem == NULL || timeout_ns < -1))
        return SWARM_EINVAL;
    if (SWARM_LIKELY(ch->mode == SWARM_FULL_WAIT) && SWARM_LIKELY(push_one(ch, elem) == 0)) {
        notify_receivers(ch, 1);
        return 0;
    }
    return send_slow(ch, elem, timeout_ns, cancel);
}

static inline int chan_recv(swarm_chan *ch, void *out, int64_t timeout_ns, swarm_cancel *cancel)
{
    if (SWARM_UNLIKELY(ch == NULL || out == NULL || timeout_ns < -1))
        return SWARM_EINVAL;
    if (SWARM_LIKELY(pop_one(ch, out) == 0)) {
        ec_notify(&ch->not_full, 1);
        return 0;
    }
    return recv_slow(ch, out, timeout_ns, cancel);
}

int swarm_chan_send_ex(swarm_chan *ch, const void *elem, int64_t timeout_ns, swarm_cancel *cancel)
{
    return chan_send(ch, elem, timeout_ns, cancel);
}

int swarm_chan_send(swarm_chan *ch, const void *elem)
{
    return chan_send(ch, elem, SWARM_WAIT_FOREVER, NULL);
}

int swarm_chan_try_send(swarm_chan *ch, const void *elem)
{
    return chan_send(ch, elem, 0, NULL);
}

int swarm_chan_send_timeout(swarm_chan *ch, const void *elem, int64_t timeout_ns)
{
    return chan_send(ch, elem, timeout_ns, NULL);
}

int swarm_chan_recv_ex(swarm_chan *ch, void *out, int64_t timeout_ns, swarm_cancel *cancel)
{
    return chan_recv(ch, out, timeout_ns, cancel);
}

int swarm_chan_recv(swarm_chan *ch, void *out)
{
    return chan_recv(ch, out, SWARM_WAIT_FOREVER, NULL);
}

int swarm_chan_try_recv(swarm_chan *ch, void *out)
{
    return chan_recv(ch, out, 0, NULL);
}

int swarm_chan_recv_timeout(swarm_chan *ch, void *out, int64_t timeout_ns)
{
    return chan_recv(ch, out, timeout_ns, NULL);
}

/* ---- batches ------------------------------------------------------------------------------- */

struct batch {
    unsigned char *buf;
    size_t want; /* elements still wanted */
    size_t got;  /* elements moved by the last attempt */
};

static int attempt_send_batch(swarm_chan *ch, void *arg)
{
    struct batch *b = arg;
    if (ch->mode != SWARM_FULL_WAIT) {
        int r = send_once(ch, b->buf);
        b->got = r == 0 ? 1 : 0;
        return r;
    }
    int r = push_many(ch, b->buf, b->want);
    if (r > 0) {
        notify_receivers(ch, r);
        b->got = (size_t)r;
        return 0;
    }
    return r;
}

static int attempt_recv_batch(swarm_chan *ch, void *arg)
{
    struct batch *b = arg;
    int r = pop_many(ch, b->buf, b->want, 0);
    if (r > 0) {
        ec_notify(&ch->not_full, r);
        b->got = (size_t)r;
        return 0;
    }
    return r;
}

int swarm_chan_send_batch(swarm_chan *ch, const void *elems, size_t n, int64_t timeout_ns,
                          swarm_cancel *cancel)
{
    if (ch == NULL || (elems == NULL && n > 0) || timeout_ns < -1 || n > INT32_MAX)
        return SWARM_EINVAL;
    int64_t deadline = INT64_MIN; /* computed on the first wait only */
    size_t done = 0;
    while (done < n) {
        struct batch b = {(unsigned char *)elems + done * ch->elem_size, n - done, 0};
        int r = attempt_send_batch(ch, &b);
        if (r == SWARM_EAGAIN && timeout_ns != 0) {
            if (cancel != NULL && swarm_cancel_is_canceled(cancel)) {
                r = SWARM_ECANCELED;
            } else {
                if (deadline == INT64_MIN)
                    deadline = swarm__deadline(timeout_ns);
                r = wait_for(ch, &ch->not_full, attempt_send_batch, &b, deadline, cancel,
                             &ch->send_blocked_ns);
            }
        }
        if (r != 0)
            return done > 0 ? (int)done : r;
        done += b.got;
    }
    return (int)done;
}

int swarm_chan_recv_batch(swarm_chan *ch, void *out, size_t max, size_t min, int64_t linger_ns,
                          int64_t timeout_ns, swarm_cancel *cancel)
{
    if (ch == NULL || out == NULL || max == 0 || min > max || max > INT32_MAX || linger_ns < 0 ||
        timeout_ns < -1)
        return SWARM_EINVAL;
    if (min == 0)
        min = 1;
    int64_t deadline = INT64_MIN; /* computed lazily: the fast path reads no clock */
    int64_t linger_end = INT64_MAX;
    size_t n = 0;
    for (;;) {
        struct batch b = {(unsigned char *)out + n * ch->elem_size, max - n, 0};
        int r = attempt_recv_batch(ch, &b);
        if (r == SWARM_EAGAIN && n < min && timeout_ns != 0) {
            if (cancel != NULL && swarm_cancel_is_canceled(cancel))
                return n > 0 ? (int)n : SWARM_ECANCELED;
            if (deadline == INT64_MIN)
                deadline = swarm__deadline(timeout_ns);
            r = wait_for(ch, &ch->not_empty, attempt_recv_batch, &b, deadline, cancel,
                         &ch->recv_blocked_ns);
        } else if (r == SWARM_EAGAIN && linger_ns > 0 && n < max && timeout_ns != 0) {
            /* min reached: wait for more until the linger since the first element ends. */
            int64_t until = deadline == INT64_MIN ? swarm__deadline(timeout_ns) : deadline;
            deadline = until;
            if (linger_end < until)
                until = linger_end;
            if (swarm__clock_ns() >= until)
                return (int)n;
            r = wait_for(ch, &ch->not_empty, attempt_recv_batch, &b, until, cancel,
                         &ch->recv_blocked_ns);
        }
        if (r == 0) {
            if (n == 0 && linger_ns > 0)
                linger_end = swarm__deadline(linger_ns);
            n += b.got;
            if (n == max)
                return (int)n;
            continue; /* take whatever else is ready before deciding to wait */
        }
        if (n > 0 && (r == SWARM_EAGAIN || r == SWARM_ETIMEDOUT || r == SWARM_ECLOSED ||
                      r == SWARM_ECANCELED))
            return (int)n; /* min reached (or the wait ended): return what we have */
        return r;          /* nothing taken: EAGAIN (timeout 0), ETIMEDOUT, ECLOSED, ECANCELED */
    }
}

/* ---- introspection ------------------------------------------------------------------------- */

int swarm_chan_get_stats(const swarm_chan *cch, swarm_chan_stats *stats)
{
    if (cch == NULL || stats == NULL || stats->size < offsetof(swarm_chan_stats, length))
        return SWARM_EINVAL;
    swarm_chan *ch = (swarm_chan *)cch;
    swarm_chan_stats s;
    memset(&s, 0, sizeof s);
    uint64_t eo = atomic_load_explicit(&ch->evicted_oldest, memory_order_relaxed);
    uint64_t en = atomic_load_explicit(&ch->evicted_newest, memory_order_relaxed);
    uint64_t dw = atomic_load_explicit(&ch->dropped_write, memory_order_relaxed);
    uint64_t headw = atomic_load_explicit(&ch->head, memory_order_acquire);
    uint64_t tailw = atomic_load_explicit(&ch->tail, memory_order_acquire);
    uint64_t head = pos_count(ch, headw), tail = pos_count(ch, tailw);
    s.blocked_senders = atomic_load_explicit(&ch->not_full.waiters, memory_order_relaxed);
    s.blocked_receivers = atomic_load_explicit(&ch->not_empty.waiters, memory_order_relaxed);
    s.closed = (tailw & ch->mark_bit) ? 1 : 0;
    s.capacity = ch->cap;
    s.elem_size = ch->elem_size;
    s.length = queued_len(ch, headw, tailw);
    s.sent = tail + en + dw;
    s.received = head >= eo ? head - eo : 0;
    s.dropped = eo + en + dw;
    uint64_t hwm = atomic_load_explicit(&ch->hwm, memory_order_relaxed);
    s.high_watermark = hwm > s.length ? hwm : s.length;
    s.send_blocked_ns = atomic_load_explicit(&ch->send_blocked_ns, memory_order_relaxed);
    s.recv_blocked_ns = atomic_load_explicit(&ch->recv_blocked_ns, memory_order_relaxed);
    swarm__stats_copy_out(stats, &s, sizeof s);
    return 0;
}

uint64_t swarm_chan_len(const swarm_chan *ch)
{
    if (ch == NULL)
        return 0;
    swarm_chan *c = (swarm_chan *)ch;
    uint64_t head = atomic_load_explicit(&c->head, memory_order_acquire);
    return queued_len(ch, head, atomic_load_explicit(&c->tail, memory_order_acquire));
}

uint64_t swarm_chan_capacity(const swarm_chan *ch)
{
    return ch == NULL ? 0 : ch->cap;
}

uint64_t swarm_chan_elem_size(const swarm_chan *ch)
{
    return ch == NULL ? 0 : ch->elem_size;
}

int swarm_chan_is_closed(const swarm_chan *ch)
{
    if (ch == NULL)
        return 0;
    return (atomic_load_explicit(&((swarm_chan *)ch)->tail, memory_order_acquire) & ch->mark_bit)
               ? 1
               : 0;
}
