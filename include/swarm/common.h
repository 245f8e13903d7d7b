/* SPDX-License-Identifier: MIT */
/*
 * libswarm common definitions: export macro, error codes, allocator hook, monotonic time,
 * version queries and the cancellation token that every blocking call can watch.
 */
#ifndef SWARM_COMMON_H
#define SWARM_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "swarm/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#    if defined(SWARM_BUILDING_LIBRARY)
#        define SWARM_API __declspec(dllexport)
#    else
#        define SWARM_API
#    endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#    define SWARM_API __attribute__((visibility("default")))
#else
#    define SWARM_API
#endif

/*
 * "None" sentinels: one rule for every timeout and every deadline in libswarm.
 *
 *   Timeouts are relative durations (arguments and fields named *timeout_ns):
 *     SWARM_WAIT_FOREVER (-1)  no limit: wait as long as it takes;
 *     0                        never wait (poll);
 *     > 0                      wait at most that many ns;
 *     < -1                     SWARM_EINVAL.
 *   Deadlines are absolute times on swarm_now_ns()'s clock (fields and arguments named
 *   *deadline_ns):
 *     SWARM_NO_DEADLINE (0)    none; INT64_MAX (a saturated "now + forever") is none too;
 *     > 0                      the call or task stops (SWARM_ETIMEDOUT) once the clock reaches it.
 *   A negative deadline is never a real time on the monotonic clock. Where the pool takes a
 *   deadline (swarm_task.deadline_ns, swarm_pool_submit()), a negative one means none, so that
 *   SWARM_WAIT_FOREVER written into a deadline by mistake means what it says instead of
 *   "already expired". swarm_deadline_after() turns a timeout into a deadline by these rules.
 */

/** Timeout argument meaning "wait as long as it takes". 0 means "never wait". */
#define SWARM_WAIT_FOREVER ((int64_t)-1)

/** Deadline value meaning "none" (the zero a zeroed struct holds). INT64_MAX means none too. */
#define SWARM_NO_DEADLINE ((int64_t)0)

/*
 * The error table. One X-macro drives the enum, swarm_strerror() and swarm_err_name(); the
 * Python binding carries the same table and a test checks that they agree. Codes are appended and
 * never renumbered.
 */
#define SWARM_ERR_MAP(XX)                                                                          \
    XX(EINVAL, -1, "invalid argument")                                                             \
    XX(ENOMEM, -2, "out of memory")                                                                \
    XX(EAGAIN, -3, "operation would block")                                                        \
    XX(ETIMEDOUT, -4, "timed out")                                                                 \
    XX(ECLOSED, -5, "object closed")                                                               \
    XX(ECANCELED, -6, "operation canceled")                                                        \
    XX(ENOTSUP, -7, "not supported")                                                               \
    XX(ESTATE, -8, "object in wrong state")                                                        \
    XX(EUNAVAILABLE, -9, "service unavailable")                                                    \
    XX(EOVERLOADED, -10, "service overloaded")                                                     \
    XX(EBREAKER_OPEN, -11, "circuit breaker open")                                                 \
    XX(EBUDGET, -12, "retry budget exhausted")                                                     \
    XX(ERANGE, -13, "value out of range")                                                          \
    XX(EINTERNAL, -99, "internal error (bug)")

/** Every error code the library returns. Success is 0 (or a count, for batch calls). */
typedef enum swarm_err {
    SWARM_OK = 0,
#define SWARM_XX_(name, val, msg) SWARM_##name = (val),
    SWARM_ERR_MAP(SWARM_XX_)
#undef SWARM_XX_
        SWARM_ERR_MIN_ = -100 /**< not a code: keeps the enum signed and wide enough */
} swarm_err;

/**
 * Describe an error code.
 *
 * @return a static, NUL-terminated string, never NULL: "success" for 0 and for any count
 *         (> 0), the code's message for a known code, "unknown error" otherwise.
 * Thread safety: any thread, any time. Blocking: no.
 */
SWARM_API const char *swarm_strerror(int err);

/**
 * Name an error code, e.g. "SWARM_ECLOSED" for SWARM_ECLOSED; "SWARM_OK" for 0 and counts,
 * "SWARM_EUNKNOWN" for a value the table does not hold. Static string, never NULL.
 * Thread safety: any thread. Blocking: no.
 */
SWARM_API const char *swarm_err_name(int err);

/** Library version packed as 0xMMmmpp (major, minor, patch); compare with SWARM_VERSION_HEX. */
SWARM_API uint32_t swarm_version(void);

/** Library version as "MAJOR.MINOR.PATCH"; a static string. */
SWARM_API const char *swarm_version_string(void);

/**
 * Current time on the monotonic clock in nanoseconds: the time base of every deadline and
 * duration in libswarm. Thread safety: any thread. Blocking: no.
 */
SWARM_API int64_t swarm_now_ns(void);

/**
 * Convert a relative timeout into an absolute deadline by the sentinel rules above.
 *
 * @return SWARM_NO_DEADLINE for SWARM_WAIT_FOREVER (or any negative timeout); otherwise
 *         swarm_now_ns() + @p timeout_ns, saturating at INT64_MAX (which also means none).
 * Thread safety: any thread. Blocking: no (one clock read, none for a negative timeout).
 */
SWARM_API int64_t swarm_deadline_after(int64_t timeout_ns);

/**
 * Memory hooks for one object. A NULL `const swarm_allocator *` in any options struct means libc.
 * The library copies the struct at create time; @p ctx must stay valid until the object is
 * destroyed. The library allocates only in create and resize calls, never on hot paths.
 */
typedef struct swarm_allocator {
    void *ctx; /**< passed back to both hooks */
    /** Returns @p size bytes aligned to @p align (a power of two <= 4096), or NULL. */
    void *(*alloc)(void *ctx, size_t size, size_t align);
    /** Releases a block from alloc(); @p size is the size that was asked for. */
    void (*free)(void *ctx, void *p, size_t size);
} swarm_allocator;

/**
 * A cancellation token. Firing it wakes every blocked libswarm call that watches it, and those
 * calls return SWARM_ECANCELED. A token can be watched by any number of calls on any number of
 * objects and threads.
 */
typedef struct swarm_cancel swarm_cancel;

/**
 * Create an unfired token.
 *
 * @param out    receives the token; untouched on error.
 * @param alloc  allocator hooks, or NULL for libc (copied).
 * @return 0; SWARM_EINVAL if @p out is NULL or @p alloc lacks a hook; SWARM_ENOMEM.
 * Ownership: the caller owns the token and releases it with swarm_cancel_destroy().
 * Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_cancel_create(swarm_cancel **out, const swarm_allocator *alloc);

/**
 * Fire the token: from now on swarm_cancel_is_canceled() is true, every blocked call watching it
 * wakes with SWARM_ECANCELED, and later calls that watch it fail with SWARM_ECANCELED before they
 * block. Idempotent.
 *
 * @return 0; SWARM_EINVAL if @p c is NULL.
 * Thread safety: any thread, concurrently with watchers. Blocking: briefly takes the token's
 * internal lock; never waits for a watcher.
 */
SWARM_API int swarm_cancel_trigger(swarm_cancel *c);

/**
 * @return 1 if @p c has fired, 0 if not or if @p c is NULL.
 * Thread safety: any thread; a plain atomic load (acquire). Blocking: no.
 */
SWARM_API int swarm_cancel_is_canceled(const swarm_cancel *c);

/**
 * Re-arm a fired token so that it can be reused.
 *
 * @return 0; SWARM_EINVAL if @p c is NULL; SWARM_ESTATE if a blocked call is watching it.
 * Thread safety: any thread, but racing a trigger makes the outcome order-dependent.
 */
SWARM_API int swarm_cancel_reset(swarm_cancel *c);

/**
 * Destroy a token. No call may be watching it any more. NULL is a no-op.
 */
SWARM_API void swarm_cancel_destroy(swarm_cancel *c);

/**
 * Sleep @p ns nanoseconds on the monotonic clock, waking early if @p cancel fires: the
 * cancel-aware sleep for engine authors (and the default of the swarm_sleep_fn hooks). It
 * matches swarm_sleep_fn's contract with no context argument.
 *
 * @param ns      > 0: sleep that long; 0: do not sleep (only check the token);
 *                SWARM_WAIT_FOREVER: sleep until @p cancel fires (which must then be non-NULL).
 * @param cancel  token to watch, or NULL.
 * @return 0 after the full sleep; SWARM_ECANCELED if @p cancel had fired or fires meanwhile;
 *         SWARM_EINVAL for @p ns below -1, or SWARM_WAIT_FOREVER without a token.
 * Thread safety: any thread; any number of sleepers may watch one token.
 * Blocking: yes, at most @p ns (spurious wake-ups are absorbed). Allocation: none.
 */
SWARM_API int swarm_sleep_ns(int64_t ns, swarm_cancel *cancel);

/**
 * A thread hook (see swarm_thread_hooks_set()). Hooks run on every thread the library creates
 * (pool workers, reconcile loops), on that thread itself: @c start before the thread's first call
 * into user code, @c stop after its last one, just before the thread exits. They are how a language
 * runtime attaches the library's threads once instead of on every callback (a Python binding keeps
 * one thread state per thread; JNI has AttachCurrentThread / DetachCurrentThread), and a place to
 * name threads, set their affinity or open a tracing span.
 *
 * @c role is a static string naming what the thread is: "pool-worker" or "reconcile-loop".
 * Either function pointer may be NULL. @c user is passed back unchanged; it must stay valid
 * until every thread started under these hooks has exited.
 */
typedef void (*swarm_thread_hook_fn)(void *user, const char *role);

/** See swarm_thread_hook_fn. The minimum size is this struct's 0.3.0 size (all four fields). */
typedef struct swarm_thread_hooks {
    uint32_t size;              /**< sizeof(swarm_thread_hooks), set by the caller */
    swarm_thread_hook_fn start; /**< runs first on each new library thread; may be NULL */
    swarm_thread_hook_fn stop;  /**< runs last, on the same thread; may be NULL */
    void *user;                 /**< passed to both */
} swarm_thread_hooks;

/**
 * Zero @p hooks (no hooks) and set its size.
 * @return 0; SWARM_EINVAL if @p hooks is NULL. Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_thread_hooks_init(swarm_thread_hooks *hooks);

/**
 * Install process-wide thread hooks (NULL removes them). Each library thread takes a copy of
 * the hooks installed when it is created, so a thread that ran one registration's @c start
 * always runs the same registration's @c stop, even if the hooks change meanwhile; threads
 * already running are not affected by the change.
 *
 * @c start runs before the thread has touched its object and @c stop after it has left it:
 * neither may call functions of the object the thread belongs to (its pool or loop), whose
 * internal lock a thread joining this one may hold. Other libswarm calls are fine. The object
 * waits for neither hook to start working (a slow @c start delays only that thread's first
 * task), but a call that retires threads (swarm_pool_stop, swarm_pool_destroy,
 * swarm_pool_resize, swarm_reconcile_stop, swarm_reconcile_destroy) joins them and so waits
 * for their @c stop, holding the object's internal lock while it does: a host whose @c stop
 * needs a lock of its own (a Python binding: the GIL) must not hold it across those calls, nor
 * across any other call on the same pool or loop (which may wait for that internal lock). A
 * thread killed inside a callback (pthread_exit) runs no @c stop.
 *
 * @param hooks  the hooks, copied; @c hooks->size must be at least the size of this struct in
 *               the release that introduced it (0.3.0, where it has the four fields above);
 *               bytes a newer header adds beyond those must be zero. NULL: remove.
 * @return 0; SWARM_EINVAL for a size below the 0.3.0 one, above 4096, or with a non-zero byte
 *         past this library's struct (a field it does not know).
 * Thread safety: any thread; serialized with thread creation. Blocking: no. Allocation: none.
 */
SWARM_API int swarm_thread_hooks_set(const swarm_thread_hooks *hooks);

/**
 * Copy the installed hooks to @p out (all fields zero but @c size if none are installed), for
 * example to chain to them from a new registration.
 *
 * @param out  its @c size must be set; fields beyond it are not written.
 * @return 0; SWARM_EINVAL if @p out is NULL or its @c size is too small.
 * Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_thread_hooks_get(swarm_thread_hooks *out);

/*
 * fork(): the contract. In a child process forked while libswarm objects exist, only the
 * parent's calling thread exists, so the library's worker and loop threads are gone and any
 * internal lock one of them held stays locked forever. Therefore, in the child:
 *   - channels (swarm_chan) and policies keep working: they hold no lock that a vanished
 *     thread could leave held. One caveat: a channel that a parent thread was sending to at the
 *     instant of fork may hold a slot that thread claimed and never published, and receivers in
 *     the child would wait for it; use channels created in the child, or ones the parent had
 *     quiesced. Cancellation tokens and stateful engines (breaker, split, mock, the host's own)
 *     have short internal locks: create fresh ones in the child;
 *   - pools, reconcile loops and autoscalers created before the fork are dead: every call on
 *     them returns SWARM_ESTATE without taking a lock (void destroy functions do nothing and
 *     leak the object, as the parent's other memory is), so nothing deadlocks;
 *   - objects created in the child work normally.
 * The check is a fork generation counter bumped by a pthread_atfork() child handler, compared
 * with the one an object was created in.
 */

#ifdef __cplusplus
}
#endif

#endif /* SWARM_COMMON_H */
