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
#  if defined(SWARM_BUILDING_LIBRARY)
#    define SWARM_API __declspec(dllexport)
#  else
#    define SWARM_API
#  endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#  define SWARM_API __attribute__((visibility("default")))
#else
#  define SWARM_API
#endif

/** Timeout argument meaning "wait as long as it takes". 0 means "never wait". */
#define SWARM_WAIT_FOREVER ((int64_t)-1)

/*
 * The error table. One X-macro drives the enum, swarm_strerror() and swarm_err_name(); the
 * Python binding carries the same table and a test checks that they agree. Codes are appended and
 * never renumbered.
 */
#define SWARM_ERR_MAP(XX)                                                       \
    XX(EINVAL, -1, "invalid argument")                                          \
    XX(ENOMEM, -2, "out of memory")                                             \
    XX(EAGAIN, -3, "operation would block")                                     \
    XX(ETIMEDOUT, -4, "timed out")                                              \
    XX(ECLOSED, -5, "object closed")                                            \
    XX(ECANCELED, -6, "operation canceled")                                     \
    XX(ENOTSUP, -7, "not supported")                                            \
    XX(ESTATE, -8, "object in wrong state")                                     \
    XX(EUNAVAILABLE, -9, "service unavailable")                                 \
    XX(EOVERLOADED, -10, "service overloaded")                                  \
    XX(EBREAKER_OPEN, -11, "circuit breaker open")                              \
    XX(EBUDGET, -12, "retry budget exhausted")                                  \
    XX(ERANGE, -13, "value out of range")                                       \
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

#ifdef __cplusplus
}
#endif

#endif /* SWARM_COMMON_H */
