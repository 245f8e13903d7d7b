/* SPDX-License-Identifier: MIT */
/*
 * swarm_chan: a bounded multi-producer/multi-consumer channel with backpressure.
 *
 * Elements have a fixed size set at creation and are copied in and out (a pointer is just an
 * 8-byte element). Order is FIFO. The fast path is lock-free; a thread parks on a futex only when
 * it must wait, after a short bounded spin, and a sender or receiver issues a wake-up system call
 * only when someone sleeps. Nothing is allocated after swarm_chan_create().
 *
 * Exactly-once contract: every element accepted by a send is either received by exactly one
 * receiver or handed exactly once to the drop callback (drop modes, or swarm_chan_destroy() on a
 * non-empty channel), whatever the interleaving of send, receive, close and cancel.
 *
 * fork(): a channel holds no lock, so a child process may go on using a channel it inherited,
 * with one condition: no thread of the parent was inside a send or receive on it at the moment of
 * the fork. An operation caught half-way (a slot claimed, its element not yet published) is never
 * finished in the child, and the child's receivers would wait for that slot forever. Threads
 * blocked in the parent do not exist in the child. Pools, reconcile loops and metrics registries
 * are not usable in a child (see their headers); the Python binding marks every inherited handle
 * dead.
 */
#ifndef SWARM_CHAN_H
#define SWARM_CHAN_H

#include "swarm/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct swarm_chan swarm_chan;

/** What a send does when the channel is full. Modeled on .NET's BoundedChannelFullMode. */
typedef enum swarm_full_mode {
    SWARM_FULL_WAIT = 0,        /**< block (backpressure); the default */
    SWARM_FULL_DROP_OLDEST = 1, /**< evict the oldest queued element, then enqueue */
    SWARM_FULL_DROP_NEWEST = 2, /**< evict the newest queued element, then enqueue */
    SWARM_FULL_DROP_WRITE = 3   /**< discard the element being sent */
} swarm_full_mode;

/** Why the drop callback was called. */
typedef enum swarm_drop_reason {
    SWARM_DROP_EVICTED_OLDEST = 1, /**< SWARM_FULL_DROP_OLDEST made room */
    SWARM_DROP_EVICTED_NEWEST = 2, /**< SWARM_FULL_DROP_NEWEST made room */
    SWARM_DROP_WRITE = 3,          /**< SWARM_FULL_DROP_WRITE refused the element being sent */
    SWARM_DROP_DESTROY = 4         /**< swarm_chan_destroy() found it still queued */
} swarm_drop_reason;

/**
 * Receives each dropped element so that its owner can free what it points to.
 * @p elem points to elem_size bytes that are valid only during the call. It runs on the thread of
 * the send (or destroy) that dropped the element; no lock of the library is held, but the slot
 * holding the element stays reserved until it returns, so keep it short, and do not call into the
 * same channel from it.
 */
typedef void (*swarm_chan_drop_fn)(void *ctx, const void *elem, int reason);

/** Creation options. Fill with swarm_chan_opts_init(), then set fields. */
typedef struct swarm_chan_opts {
    /** sizeof(swarm_chan_opts), set by swarm_chan_opts_init(). Accepted from the 0.1.0 size (the
     * fields through reserved_) up; a smaller size, a larger one with a nonzero byte past this
     * struct, or one above 4096: SWARM_EINVAL. */
    uint32_t size;
    uint32_t full_mode;           /**< a swarm_full_mode; default SWARM_FULL_WAIT */
    uint64_t capacity;            /**< elements, >= 1; default 1024 */
    uint64_t elem_size;           /**< bytes per element, 1 .. 1 MiB; default 8 (a pointer) */
    swarm_chan_drop_fn drop_fn;   /**< optional; see swarm_chan_drop_fn */
    void *drop_ctx;               /**< passed to drop_fn */
    const swarm_allocator *alloc; /**< NULL: libc. Copied at create */
    uint32_t spin;                /**< busy-wait rounds before parking; 0: the default 10
                                       (7 growing pause bursts, then 3 yields); larger
                                       values are clamped to 1000; UINT32_MAX: never spin.
                                       Timeouts and cancel tokens are honoured while
                                       spinning. Since 0.3.1 each direction learns: a phase
                                       (bursts, yields) whose waits keep ending without
                                       the element is skipped, and tried again every 16th
                                       wait */
    uint32_t reserved_;           /**< keep 0 */
} swarm_chan_opts;

/** A snapshot of the channel's counters. Exact when the channel is quiescent; while traffic
 *  flows each field is individually accurate but they are read one after another. */
typedef struct swarm_chan_stats {
    uint32_t size;              /**< set by the caller to sizeof(swarm_chan_stats) */
    uint32_t blocked_senders;   /**< threads parked in a send right now */
    uint32_t blocked_receivers; /**< threads parked in a receive right now */
    uint32_t closed;            /**< 1 once swarm_chan_close() ran */
    uint64_t capacity;          /**< elements */
    uint64_t elem_size;         /**< bytes */
    uint64_t length;            /**< elements queued now */
    uint64_t sent;              /**< elements accepted by sends (including DROP_WRITE drops) */
    uint64_t received;          /**< elements delivered to receivers */
    uint64_t dropped;           /**< elements handed to the drop callback by a full mode */
    uint64_t high_watermark;    /**< largest length seen: checked on every send that found the
                                     channel full or woke a receiver, and every 64th send */
    int64_t send_blocked_ns;    /**< total time senders spent parked: the backpressure signal */
    int64_t recv_blocked_ns;    /**< total time receivers spent parked: the idle signal */
} swarm_chan_stats;

/**
 * Fill @p opts with the defaults (capacity 1024, elem_size 8, SWARM_FULL_WAIT) and set its size.
 * @return 0; SWARM_EINVAL if @p opts is NULL.
 */
SWARM_API int swarm_chan_opts_init(swarm_chan_opts *opts);

/**
 * Create a channel.
 *
 * @param out   receives the channel; untouched on error.
 * @param opts  options, or NULL for all defaults. Only opts->size bytes are read.
 * @return 0; SWARM_EINVAL for a NULL @p out, a too-small opts->size, capacity 0, elem_size 0 or
 *         above 1 MiB, capacity x slot size overflowing or above 2^40 bytes, an unknown full mode,
 *         an allocator without both hooks; SWARM_ENOMEM if allocation fails (nothing leaks).
 * Ownership: the caller owns the channel; release it with swarm_chan_destroy().
 * Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_chan_create(swarm_chan **out, const swarm_chan_opts *opts);

/**
 * Destroy a channel. Elements still queued go to the drop callback (reason SWARM_DROP_DESTROY),
 * if there is one. No call of the host's may be using the channel: close it and join its
 * threads first. A library object that reads the channel (a swarm_pool's input or result
 * channel) holds its own reference: then this drops only the caller's, and the channel is freed
 * (and its drop callback runs) when that object is destroyed. NULL is a no-op.
 */
SWARM_API void swarm_chan_destroy(swarm_chan *ch);

/**
 * Close the channel: later sends fail with SWARM_ECLOSED, receivers drain what is queued and then
 * get SWARM_ECLOSED, and every blocked sender and receiver wakes. Idempotent.
 *
 * @return 0; SWARM_EINVAL if @p ch is NULL.
 * Thread safety: any thread, concurrently with every other call. Blocking: no.
 */
SWARM_API int swarm_chan_close(swarm_chan *ch);

/**
 * Send one element, copied from @p elem (elem_size bytes), waiting while the channel is full
 * (SWARM_FULL_WAIT). In the drop modes a send never waits: it evicts or drops as the mode says,
 * calls the drop callback, and returns 0.
 *
 * @return 0 once the element is queued (or, in SWARM_FULL_DROP_WRITE, dropped); SWARM_ECLOSED if
 *         the channel is or becomes closed before the element is queued; SWARM_EINVAL for NULL
 *         arguments.
 * Ownership: the bytes are copied; on error the channel holds nothing of the call.
 * Thread safety: any number of concurrent senders and receivers.
 * Blocking: yes, while full; see swarm_chan_try_send() and swarm_chan_send_ex().
 */
SWARM_API int swarm_chan_send(swarm_chan *ch, const void *elem);

/** As swarm_chan_send(), but never waits: SWARM_EAGAIN if the channel is full (wait mode). */
SWARM_API int swarm_chan_try_send(swarm_chan *ch, const void *elem);

/** As swarm_chan_send(), waiting at most @p timeout_ns (-1 forever, 0 never): SWARM_ETIMEDOUT
 *  when it elapses (SWARM_EAGAIN for 0), and SWARM_EINVAL for a timeout below -1. */
SWARM_API int swarm_chan_send_timeout(swarm_chan *ch, const void *elem, int64_t timeout_ns);

/**
 * The general send: waits at most @p timeout_ns and also returns SWARM_ECANCELED promptly if
 * @p cancel (may be NULL) fires before the element is queued; a token that has already fired
 * fails the call with SWARM_ECANCELED unless the element can be queued without waiting.
 */
SWARM_API int swarm_chan_send_ex(swarm_chan *ch, const void *elem, int64_t timeout_ns,
                                 swarm_cancel *cancel);

/**
 * Receive one element into @p out (elem_size bytes), waiting while the channel is empty.
 *
 * @return 0; SWARM_ECLOSED once the channel is closed and drained; SWARM_EINVAL for NULL
 *         arguments.
 * Thread safety: any number of concurrent senders and receivers.
 * Blocking: yes, while empty; see swarm_chan_try_recv() and swarm_chan_recv_ex().
 */
SWARM_API int swarm_chan_recv(swarm_chan *ch, void *out);

/** As swarm_chan_recv(), but never waits: SWARM_EAGAIN if empty and open. */
SWARM_API int swarm_chan_try_recv(swarm_chan *ch, void *out);

/** As swarm_chan_recv(), waiting at most @p timeout_ns: SWARM_ETIMEDOUT when it elapses. */
SWARM_API int swarm_chan_recv_timeout(swarm_chan *ch, void *out, int64_t timeout_ns);

/** The general receive: a timeout and an optional cancellation token (SWARM_ECANCELED). */
SWARM_API int swarm_chan_recv_ex(swarm_chan *ch, void *out, int64_t timeout_ns,
                                 swarm_cancel *cancel);

/**
 * Send up to @p n elements stored back to back at @p elems, in order, waiting for room while
 * full (wait mode) for at most @p timeout_ns overall; @p cancel may be NULL.
 *
 * @return the number sent (n on full success; fewer if the timeout elapsed, the channel closed
 *         or the token fired after some were sent); if none was sent, the negative code that
 *         stopped it (SWARM_EAGAIN for timeout 0, SWARM_ETIMEDOUT, SWARM_ECLOSED,
 *         SWARM_ECANCELED). 0 for n == 0. SWARM_EINVAL for NULL arguments or a bad timeout.
 * Thread safety and blocking: as swarm_chan_send_ex(). The batch is not atomic: elements of
 * other senders may interleave.
 */
SWARM_API int swarm_chan_send_batch(swarm_chan *ch, const void *elems, size_t n, int64_t timeout_ns,
                                    swarm_cancel *cancel);

/**
 * Receive a batch into @p out (room for @p max elements): the dynamic-batching primitive.
 *
 * Returns as soon as @p max elements have been taken, or once at least @p min (0 counts as 1)
 * have been taken and @p linger_ns has passed since the first was taken, or when @p timeout_ns
 * elapses, the channel is closed and drained, or @p cancel fires, whichever comes first. Elements
 * taken are always returned, never lost: a timeout, close or cancel after the first element
 * returns the count so far. @p timeout_ns bounds the whole call; linger_ns 0 means "return with
 * whatever is ready once min is reached".
 *
 * @return the count taken (1..max); with none taken: SWARM_EAGAIN (timeout 0), SWARM_ETIMEDOUT,
 *         SWARM_ECLOSED, SWARM_ECANCELED; SWARM_EINVAL for NULL arguments, max == 0, min > max,
 *         max > INT32_MAX, a negative linger or a timeout below -1.
 * Thread safety: any number of concurrent callers. Blocking: as described.
 */
SWARM_API int swarm_chan_recv_batch(swarm_chan *ch, void *out, size_t max, size_t min,
                                    int64_t linger_ns, int64_t timeout_ns, swarm_cancel *cancel);

/**
 * Copy a snapshot of the counters into @p stats. Set stats->size = sizeof(*stats) first; only
 * that many bytes are written.
 * @return 0; SWARM_EINVAL for NULL arguments or a size too small for the first fields.
 * Thread safety: any thread, concurrently with traffic; lock-free. Blocking: no.
 */
SWARM_API int swarm_chan_get_stats(const swarm_chan *ch, swarm_chan_stats *stats);

/** Elements queued now (0 for NULL). Lock-free; approximate while traffic flows. */
SWARM_API uint64_t swarm_chan_len(const swarm_chan *ch);

/** Capacity in elements (0 for NULL). */
SWARM_API uint64_t swarm_chan_capacity(const swarm_chan *ch);

/** Element size in bytes (0 for NULL). */
SWARM_API uint64_t swarm_chan_elem_size(const swarm_chan *ch);

/** 1 once the channel is closed, else 0 (0 for NULL). */
SWARM_API int swarm_chan_is_closed(const swarm_chan *ch);

#ifdef __cplusplus
}
#endif

#endif /* SWARM_CHAN_H */
