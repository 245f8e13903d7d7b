/* SPDX-License-Identifier: MIT */
/*
 * swarm_engine: the inference-engine contract. The resilience decorators (timeout, retry, circuit
 * breaker, fallback, split, batcher) are declared in swarm/engine_decorators.h and the mock engine
 * in swarm/engine_mock.h; this header includes both at its end, so that every program written
 * against 0.1 or 0.2 (which had them all here) compiles unchanged. Each of the two can also be
 * included on its own (each includes this one).
 *
 * An engine is a vtable (swarm_engine_ops) plus a `void *self`, wrapped by the library in an
 * opaque handle (swarm_engine). Callers always go through swarm_engine_infer() and friends,
 * which check the vtable version and supply a default for every NULL optional slot: an engine
 * that implements only infer() still serves batches.
 *
 * Requests (swarm_request) are plain structs in caller storage, filled by swarm_request_init().
 * Responses (swarm_response) are library objects: create one per worker once, then
 * swarm_response_reset() it before each request. The engine appends output with
 * swarm_response_write(), which copies (so Python bytes or token pieces can be freed right after)
 * and feeds an optional stream callback. The output buffer grows through the allocator only when a
 * response is larger than any before it (geometric growth, amortized O(1)), so a reused response
 * does not allocate in the steady state.
 *
 * Completion: the outermost swarm_engine_infer() (or _infer_batch()) call on a response completes
 * it exactly once: it fixes the status, stamps the end time and calls the response's complete
 * callback, if any. Decorators call their inner engines through the same functions; nested calls
 * do not complete the response. A completed response refuses another call (SWARM_ESTATE) until
 * it is reset.
 *
 * Error codes and what the resilience layer does with them:
 *   SWARM_EINVAL                                    never retried, not counted as a failure
 *   SWARM_EUNAVAILABLE, SWARM_EOVERLOADED,
 *   SWARM_ETIMEDOUT                                 retried, counted
 *   SWARM_ECANCELED                                 neither retried nor counted
 *   SWARM_EBREAKER_OPEN                             not retried, counted (fallback takes over)
 *   SWARM_EINTERNAL and every other negative code   counted, not retried
 * An engine can attach a retry-after hint (HTTP Retry-After, gRPC pushback) with
 * swarm_response_set_error(); the retry decorator honours it.
 *
 * Time is int64_t nanoseconds on the monotonic clock of swarm_now_ns().
 */
#ifndef SWARM_ENGINE_H
#define SWARM_ENGINE_H

#include "swarm/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ============================================================================================ */
/* Requests                                                                                     */
/* ============================================================================================ */

/** A string key/value pair: backend-specific extras ("stop" = "\n", "grammar" = ...). */
typedef struct swarm_kv {
    const char *key;   /**< NUL-terminated */
    const char *value; /**< NUL-terminated */
} swarm_kv;

/** Inference parameters. swarm_request_init() fills the defaults given here. */
typedef struct swarm_infer_params {
    const char *model_version; /**< NULL: the engine's default model */
    double temperature;        /**< >= 0; 0 means greedy; default 1.0 */
    double top_p;              /**< (0, 1]; values outside mean 1.0 (off); default 1.0 */
    uint32_t max_tokens;       /**< output units to generate; 0: the engine's default */
    uint32_t n_extras;         /**< entries in extras */
    uint64_t seed;             /**< sampling seed; 0: derived from the request id */
    const swarm_kv *extras;    /**< n_extras key/value pairs, or NULL */
} swarm_infer_params;

/**
 * One inference request, in caller storage. Fill with swarm_request_init(), then set fields.
 * Engines and decorators read it and never keep it after their call returns; decorators that
 * need to change a field (e.g. the timeout decorator's deadline) work on a copy.
 */
typedef struct swarm_request {
    uint32_t size;             /**< sizeof(swarm_request), set by swarm_request_init() */
    int32_t priority;          /**< larger is more urgent; default 0 (advisory) */
    uint64_t id;               /**< request id, also the correlation id; split hashes it */
    const void *payload;       /**< input bytes (prompt), borrowed for the call */
    uint64_t payload_len;      /**< bytes at payload */
    int64_t deadline_ns;       /**< absolute, on swarm_now_ns()'s clock; 0 or INT64_MAX: none */
    swarm_cancel *cancel;      /**< optional token; engines poll swarm_request_should_stop() */
    void *user;                /**< the caller's, passed through untouched */
    swarm_infer_params params; /**< inference parameters */
} swarm_request;

/**
 * Fill @p req with defaults: zero id and payload, no deadline, no token, temperature 1.0,
 * top_p 1.0, max_tokens 0 (engine default), seed 0; sets req->size.
 * @return 0; SWARM_EINVAL if @p req is NULL.
 * Thread safety: any thread (caller storage). Blocking: no.
 */
SWARM_API int swarm_request_init(swarm_request *req);

/**
 * Whether an engine should stop working on @p req: the cheap poll for engines' inner loops.
 * @return 0 to go on; SWARM_ECANCELED if req->cancel has fired; SWARM_ETIMEDOUT if the deadline
 *         has passed (one monotonic clock read, only when a deadline is set); SWARM_EINVAL for
 *         NULL.
 * Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_request_should_stop(const swarm_request *req);

/* ============================================================================================ */
/* Responses                                                                                    */
/* ============================================================================================ */

typedef struct swarm_response swarm_response;

/**
 * Sees each chunk as swarm_response_write() appends it, on the engine's thread, with no library
 * lock held. @p chunk is valid only during the call. Return 0 to continue or non-zero to ask the
 * engine to stop: that write then returns SWARM_ECANCELED (the chunk stays in the response).
 */
typedef int (*swarm_response_stream_fn)(void *ctx, uint64_t request_id, const void *chunk,
                                        size_t len);

/**
 * Called exactly once per request, when the outermost swarm_engine_infer() or
 * swarm_engine_infer_batch() completes @p resp, on that caller's thread, no library lock held.
 * swarm_response_status() is final by then. Do not reset or destroy @p resp from it.
 */
typedef void (*swarm_response_complete_fn)(void *ctx, const swarm_request *req,
                                           swarm_response *resp);

/** Response creation options. Fill with swarm_response_opts_init(). */
typedef struct swarm_response_opts {
    /** sizeof(swarm_response_opts). Accepted from the 0.1.0 size (the fields through alloc) up; a
     *  smaller size, a larger one with a nonzero byte past this struct, or one above 4096:
     *  SWARM_EINVAL. */
    uint32_t size;
    uint32_t reserved_;           /**< keep 0 */
    uint64_t initial_capacity;    /**< output bytes reserved at create; default 4096 */
    uint64_t max_bytes;           /**< output cap; writes beyond fail with SWARM_ERANGE;
                                       0: default 64 MiB */
    const swarm_allocator *alloc; /**< NULL: libc. Copied at create */
} swarm_response_opts;

/** Timings, usage and outcome of a response. Set info->size before swarm_response_get_info(). */
typedef struct swarm_response_info {
    uint32_t size;           /**< set by the caller to sizeof(swarm_response_info) */
    int32_t status;          /**< 0 or a negative swarm_err; SWARM_EAGAIN while not complete */
    uint32_t complete;       /**< 1 once completed */
    uint32_t attempts;       /**< calls that reached a leaf (non-decorator) engine */
    uint64_t request_id;     /**< id of the request being or last served */
    uint64_t output_bytes;   /**< bytes written */
    uint64_t n_chunks;       /**< writes */
    uint64_t n_streamed;     /**< chunks handed to the stream callback */
    uint64_t input_units;    /**< set by the engine (e.g. prompt tokens); 0 if never set */
    uint64_t output_units;   /**< set by the engine (e.g. generated tokens) */
    int64_t retry_after_ns;  /**< the engine's retry-after hint; 0: none */
    int64_t start_ns;        /**< outermost call entered */
    int64_t first_output_ns; /**< first write; 0 if none */
    int64_t end_ns;          /**< completed; 0 while running */
} swarm_response_info;

/**
 * Fill @p opts with defaults (initial capacity 4096 bytes, max 64 MiB, libc).
 * @return 0; SWARM_EINVAL if @p opts is NULL.
 */
SWARM_API int swarm_response_opts_init(swarm_response_opts *opts);

/**
 * Create a response, ready for one request (as if just reset).
 *
 * @param out   receives the response; untouched on error.
 * @param opts  options or NULL for defaults; only opts->size bytes are read.
 * @return 0; SWARM_EINVAL (NULL @p out, bad opts, initial_capacity > max_bytes, allocator
 *         without hooks); SWARM_ENOMEM.
 * Ownership: the caller owns it; release with swarm_response_destroy().
 * Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_response_create(swarm_response **out, const swarm_response_opts *opts);

/** Destroy a response that no call is using. NULL is a no-op. */
SWARM_API void swarm_response_destroy(swarm_response *resp);

/**
 * Make @p resp ready for the next request: clears output (keeping the buffer's capacity),
 * status, message, usage, timings and counters. Keeps the stream and complete callbacks.
 * Never allocates.
 * @return 0; SWARM_EINVAL for NULL; SWARM_ESTATE if a call is running on it.
 * Thread safety: not concurrently with other calls on the same response. Blocking: no.
 */
SWARM_API int swarm_response_reset(swarm_response *resp);

/**
 * Set (or clear, with NULL @p fn) the stream callback. Kept across resets.
 * @return 0; SWARM_EINVAL for NULL @p resp; SWARM_ESTATE while a call is running.
 */
SWARM_API int swarm_response_set_stream(swarm_response *resp, swarm_response_stream_fn fn,
                                        void *ctx);

/**
 * Set (or clear) the completion callback. Kept across resets.
 * @return 0; SWARM_EINVAL for NULL @p resp; SWARM_ESTATE while a call is running.
 */
SWARM_API int swarm_response_set_complete(swarm_response *resp, swarm_response_complete_fn fn,
                                          void *ctx);

/**
 * Append @p len bytes of output, copied, then hand them to the stream callback (if set).
 * Called by engines from inside their infer or infer_batch slot.
 *
 * @return 0; SWARM_ECANCELED if the stream callback asked to stop (the engine should finish
 *         now, typically returning SWARM_ECANCELED); SWARM_ERANGE if max_bytes would be
 *         exceeded (nothing appended); SWARM_ENOMEM if growing the buffer failed (nothing
 *         appended); SWARM_ESTATE if no call is running on @p resp (e.g. after completion);
 *         SWARM_EINVAL for NULL @p resp, or NULL @p data with @p len > 0.
 * Ownership: @p data is borrowed for the call only.
 * Thread safety: one writer at a time per response. Blocking: only inside the stream callback.
 * Allocation: only when the output outgrows the buffer (doubling; amortized, and never once a
 *             reused response has seen its largest output).
 */
SWARM_API int swarm_response_write(swarm_response *resp, const void *data, size_t len);

/**
 * Record an error for the request being served: @p code (negative), a message (copied,
 * truncated to 255 bytes; NULL for none) and a retry-after hint in ns (0: none). An engine
 * returning a negative code from infer may call this first to attach the message and hint; in
 * infer_batch it is how one request of a batch fails.
 * @return 0; SWARM_EINVAL for NULL @p resp or @p code >= 0 or negative @p retry_after_ns;
 *         SWARM_ESTATE if no call is running on @p resp.
 * Thread safety: one writer at a time per response. Blocking: no.
 */
SWARM_API int swarm_response_set_error(swarm_response *resp, int code, const char *msg,
                                       int64_t retry_after_ns);

/**
 * Record usage counts (e.g. prompt and generated tokens). Last call wins.
 * @return 0; SWARM_EINVAL for NULL; SWARM_ESTATE if no call is running on @p resp.
 */
SWARM_API int swarm_response_set_usage(swarm_response *resp, uint64_t input_units,
                                       uint64_t output_units);

/**
 * The output written so far. @p len (may be NULL) receives its length.
 * @return a pointer valid until the next write, reset or destroy (NULL for NULL @p resp); the
 *         bytes are followed by a NUL that is not counted, so text output is a C string.
 * Thread safety: not concurrently with writes. Blocking: no.
 */
SWARM_API const void *swarm_response_data(const swarm_response *resp, size_t *len);

/**
 * @return the final status once complete (0 or a negative swarm_err); SWARM_EAGAIN while not
 *         complete; SWARM_EINVAL for NULL.
 */
SWARM_API int swarm_response_status(const swarm_response *resp);

/** @return the error message ("" if none; never NULL), valid until the next reset. */
SWARM_API const char *swarm_response_error_message(const swarm_response *resp);

/**
 * Copy timings, usage and counters into @p info (set info->size first).
 * @return 0; SWARM_EINVAL for NULL arguments or a too-small size.
 */
SWARM_API int swarm_response_get_info(const swarm_response *resp, swarm_response_info *info);

/* ============================================================================================ */
/* The engine vtable and handle                                                                 */
/* ============================================================================================ */

/**
 * swarm_engine_ops.flags: the engine's infer_batch serves its requests one after another, each
 * exactly as infer() would (no model batching: request i's outcome does not depend on the others
 * being in the same call). A pool in single-task mode may then hand a fast engine a run of up to
 * 64 queued tasks (and at most its share of the queue: queued / target workers) in one
 * infer_batch call instead of one call per task, which pays off where
 * entering the engine costs more than the work itself (a callback into a language runtime that
 * takes a global lock, like a Python engine). Results of such a run report `batch` = the run's
 * length and the run's call times. Ignored without an infer_batch slot.
 */
#define SWARM_ENGINE_F_SEQUENTIAL_BATCH 0x1u

/** Version of swarm_engine_ops this header describes. Slots are only appended; each append
 *  bumps it. The library accepts any version from 1 to this one and reads only that version's
 *  slots. */
#define SWARM_ENGINE_OPS_VERSION 1u

/**
 * An engine implementation. Slots after `version` and `name` may be NULL unless marked required.
 * Every slot may be called concurrently from several threads and must be thread-safe.
 * Slots must not keep @p req or @p resp after returning.
 */
typedef struct swarm_engine_ops {
    uint32_t version; /**< SWARM_ENGINE_OPS_VERSION the engine was built against */
    union {
        uint32_t flags;     /**< SWARM_ENGINE_F_* bits (since 0.3.1; 0: none) */
        uint32_t reserved_; /**< the name of `flags` before 0.3.1, kept for source compatibility */
    };
    const char *name; /**< for logs and stats (copied at create); NULL: "engine" */
    /* ---- version 1 ---- */
    /** Required. Serve one request: write output with swarm_response_write(), usage with
     *  swarm_response_set_usage(); return 0 or a negative swarm_err (optionally after
     *  swarm_response_set_error() for a message and retry-after hint). Poll
     *  swarm_request_should_stop() in long loops. May block. */
    int (*infer)(void *self, const swarm_request *req, swarm_response *resp);
    /** Optional. Serve @p n requests at once. Per-request failures: swarm_response_set_error()
     *  on that response and return 0. A negative return fails every response of the batch that
     *  carries no error of its own. NULL: the library calls infer() for each. */
    int (*infer_batch)(void *self, const swarm_request *const *reqs, swarm_response *const *resps,
                       size_t n);
    /** Optional. Push notice that request @p request_id should stop (best effort; the request's
     *  token is the primary mechanism). NULL: SWARM_ENOTSUP. */
    int (*cancel)(void *self, uint64_t request_id);
    /** Optional. 0 if ready to serve, else a negative swarm_err (e.g. SWARM_EUNAVAILABLE).
     *  NULL: 0. Must not block for long. */
    int (*health)(void *self);
    /** Optional. Release @p self. Called once, by swarm_engine_destroy(), after every other call
     *  has returned. */
    void (*destroy)(void *self);
} swarm_engine_ops;

/** An engine handle: a copy of the ops, the implementation's self, and a reference count. */
typedef struct swarm_engine swarm_engine;

/**
 * Wrap an implementation into a handle.
 *
 * @param out    receives the engine; untouched on error.
 * @param ops    the vtable; the slots of ops->version and the name are copied, so @p ops need
 *               not outlive the call.
 * @param self   passed as the first argument of every slot.
 * @param alloc  allocator for the handle, or NULL for libc (copied).
 * @return 0; SWARM_EINVAL if @p out or @p ops is NULL, ops->version is 0 or greater than
 *         SWARM_ENGINE_OPS_VERSION, infer is NULL, ops->flags holds a bit other than
 *         SWARM_ENGINE_F_SEQUENTIAL_BATCH, or @p alloc lacks a hook; SWARM_ENOMEM.
 *         On error ops->destroy is not called.
 * Ownership: the caller holds one reference; on success the handle owns @p self and calls
 *            ops->destroy(self) when the last reference goes.
 * Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_engine_create(swarm_engine **out, const swarm_engine_ops *ops, void *self,
                                  const swarm_allocator *alloc);

/**
 * Take another reference (e.g. to use one engine in two decorators).
 * @return 0; SWARM_EINVAL for NULL. Thread safety: any thread (atomic).
 */
SWARM_API int swarm_engine_retain(swarm_engine *e);

/**
 * Drop a reference; the last one destroys the engine (ops->destroy, then any engines a decorator
 * holds). No call may be running on it when the last reference goes. NULL is a no-op.
 */
SWARM_API void swarm_engine_destroy(swarm_engine *e);

/** @return the engine's name, e.g. "retry(breaker(timeout(mock)))"; "" for NULL. */
SWARM_API const char *swarm_engine_name(const swarm_engine *e);

/**
 * Serve one request. The outermost call on @p resp requires a fresh (created or reset)
 * response and completes it exactly once before returning.
 *
 * @return the request's status, also readable with swarm_response_status(): 0, or the engine's
 *         negative error; SWARM_EINVAL for NULL arguments, req->size too small, or a NULL
 *         payload with payload_len > 0 (the response is then not touched); SWARM_ESTATE if
 *         @p resp is not fresh (not touched either).
 * Ownership: @p req is borrowed for the call; output lands in @p resp.
 * Thread safety: any number of concurrent calls on one engine, each with its own response.
 * Blocking: as long as the engine takes (bounded by req->deadline_ns for engines that poll).
 */
SWARM_API int swarm_engine_infer(swarm_engine *e, const swarm_request *req, swarm_response *resp);

/**
 * Serve @p n requests as one batch (the engine's infer_batch, or infer() for each if it has
 * none). Each response is completed exactly once, in array order, before the call returns.
 *
 * @return 0 if the batch ran (per-request statuses are in the responses), or the negative code
 *         that failed the whole batch (also stored in every response without its own error);
 *         SWARM_EINVAL for NULL arguments, n == 0 or a NULL element (nothing touched);
 *         SWARM_ESTATE if a response is not fresh or appears twice (nothing touched).
 * Thread safety and blocking: as swarm_engine_infer().
 */
SWARM_API int swarm_engine_infer_batch(swarm_engine *e, const swarm_request *const *reqs,
                                       swarm_response *const *resps, size_t n);

/**
 * Push a cancel notice for @p request_id to the engine (decorators forward it inward).
 * @return the engine's answer; SWARM_ENOTSUP if it has no cancel slot; SWARM_EINVAL for NULL.
 * Thread safety: any thread, concurrently with infer calls. Blocking: no (engine-defined).
 */
SWARM_API int swarm_engine_cancel(swarm_engine *e, uint64_t request_id);

/**
 * @return 0 if the engine is ready; a negative swarm_err otherwise (SWARM_EBREAKER_OPEN for an
 *         open breaker); SWARM_EINVAL for NULL. Thread safety: any thread.
 */
SWARM_API int swarm_engine_health(swarm_engine *e);

/** @return 1 if the resilience layer retries @p code (EUNAVAILABLE, EOVERLOADED, ETIMEDOUT). */
SWARM_API int swarm_engine_error_retryable(int code);

/** @return 1 if @p code counts as an engine failure (breaker, fallback): every negative code
 *  except SWARM_EINVAL and SWARM_ECANCELED. */
SWARM_API int swarm_engine_error_is_failure(int code);

/* ============================================================================================ */
/* Clock hooks (tests drive decorators without sleeping)                                        */
/* ============================================================================================ */

/** Returns now in ns on a monotonic clock. Default: swarm_now_ns(). */
typedef int64_t (*swarm_clock_fn)(void *ctx);

/**
 * Sleeps @p ns nanoseconds or until @p cancel (may be NULL) fires; returns 0 after the full
 * sleep, SWARM_ECANCELED if woken by the token. Default: a real, cancel-aware sleep.
 */
typedef int (*swarm_sleep_fn)(void *ctx, int64_t ns, swarm_cancel *cancel);

#ifdef __cplusplus
}
#endif

/* The rest of the engine API, here for source compatibility (see the top of this file). */
#include "swarm/engine_decorators.h"
#include "swarm/engine_mock.h"

#endif /* SWARM_ENGINE_H */
