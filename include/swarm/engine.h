/* SPDX-License-Identifier: MIT */
/*
 * swarm_engine: the inference-engine contract, its resilience decorators and the mock engine.
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
    uint32_t version;   /**< SWARM_ENGINE_OPS_VERSION the engine was built against */
    uint32_t reserved_; /**< keep 0 */
    const char *name;   /**< for logs and stats (copied at create); NULL: "engine" */
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
 *         SWARM_ENGINE_OPS_VERSION, infer is NULL, or @p alloc lacks a hook; SWARM_ENOMEM.
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

/* ============================================================================================ */
/* Decorators: engines that wrap engines. Each takes over the caller's reference to the engines */
/* it wraps on success (destroying the decorator destroys them); on error the caller keeps them. */
/* They stack in any order. Batches pass through every decorator as batches (in chunks of at   */
/* most 256 requests); retry re-runs only the failed requests of a batch, as a smaller batch.   */
/* A decorator's batch scratch is heap memory it owns: one block allocated at create, another   */
/* only when more batch calls run through it at once than ever before (then kept), so the       */
/* steady state allocates nothing and each layer uses well under 1 KB of the caller's stack     */
/* (deep stacks run on small thread stacks). Should that allocation fail, the call proceeds in  */
/* chunks of 8 requests instead.                                                                */
/*                                                                                              */
/* A sensible order, outermost first (Polly / Microsoft.Extensions.Http.Resilience):            */
/*   fallback -> timeout (total) -> split -> retry -> breaker -> timeout (per attempt) -> engine */
/* with the batcher right above the engine (or above the per-attempt timeout), so that a batch  */
/* is one attempt and every layer above sees single requests.                                   */
/* ============================================================================================ */

/* ---- timeout -------------------------------------------------------------------------------- */

/** Timeout options. */
typedef struct swarm_timeout_opts {
    /** sizeof(swarm_timeout_opts). Accepted from the 0.1.0 size (the fields through alloc) up; a
     *  smaller size, a larger one with a nonzero byte past this struct, or one above 4096:
     *  SWARM_EINVAL. */
    uint32_t size;
    uint32_t reserved_;           /**< keep 0 */
    int64_t timeout_ns;           /**< per-call budget; 0: default 30 s (Polly); < 0: EINVAL */
    swarm_clock_fn clock;         /**< NULL: swarm_now_ns() */
    void *clock_ctx;              /**< passed to clock */
    const swarm_allocator *alloc; /**< NULL: libc */
} swarm_timeout_opts;

/** Fill defaults (30 s). @return 0; SWARM_EINVAL for NULL. */
SWARM_API int swarm_timeout_opts_init(swarm_timeout_opts *opts);

/**
 * A per-call deadline. Each call runs the inner engine on a copy of the request whose deadline
 * is min(req->deadline_ns, now + timeout_ns). Enforcement is cooperative: engines see it through
 * swarm_request_should_stop() and the deadline field. A call whose deadline has already passed
 * fails with SWARM_ETIMEDOUT without reaching the inner engine; an inner SWARM_ECANCELED caused by
 * the deadline (not by the caller's token) is reported as SWARM_ETIMEDOUT. A success that arrives
 * late is kept (output may already have been streamed).
 *
 * @return 0; SWARM_EINVAL (NULL @p out or @p inner, negative timeout, bad opts); SWARM_ENOMEM.
 * Ownership: takes over @p inner on success. Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_engine_timeout_create(swarm_engine **out, swarm_engine *inner,
                                          const swarm_timeout_opts *opts);

/* ---- retry ---------------------------------------------------------------------------------- */

/** Retry options. Defaults follow AWS "standard" mode and gRPC A6 throttling. */
/** What the retry decorator does with an engine's retry-after hint (swarm_retry_opts). */
typedef enum swarm_retry_hints {
    SWARM_RETRY_HONOR_HINTS = 1, /**< wait max(backoff with jitter, the hint) */
    SWARM_RETRY_IGNORE_HINTS = 2 /**< backoff with jitter only */
} swarm_retry_hints;

typedef struct swarm_retry_opts {
    /** sizeof(swarm_retry_opts). Accepted from the 0.1.0 size (the fields through alloc) up; a
     *  smaller size, a larger one with a nonzero byte past this struct, or one above 4096:
     *  SWARM_EINVAL. */
    uint32_t size;
    uint32_t max_attempts;        /**< total attempts, first included, 1..100; default 3;
                                       1: no retry; 0 is rejected with SWARM_EINVAL */
    int64_t base_ns;              /**< backoff base; default 100 ms */
    int64_t cap_ns;               /**< backoff cap; default 2 s. Sleep before retry n (1-based):
                                       uniform [0, min(cap, base * 2^(n-1))] (full jitter) */
    uint32_t budget_max_tokens;   /**< retry budget bucket size; default 10; UINT32_MAX: off */
    uint32_t budget_ratio_milli;  /**< tokens (x1000) a success returns; default 100 (0.1) */
    uint64_t seed;                /**< jitter PRNG seed; 0: default fixed seed */
    uint32_t honor_retry_after;   /**< swarm_retry_hints: SWARM_RETRY_HONOR_HINTS (default; 0
                                       means it too) or SWARM_RETRY_IGNORE_HINTS */
    uint32_t reserved_;           /**< keep 0 */
    swarm_clock_fn clock;         /**< NULL: swarm_now_ns() */
    swarm_sleep_fn sleep;         /**< NULL: real cancel-aware sleep */
    void *clock_ctx;              /**< passed to clock and sleep */
    const swarm_allocator *alloc; /**< NULL: libc */
} swarm_retry_opts;

/** Retry counters. Set stats->size first. */
typedef struct swarm_retry_stats {
    uint32_t size;            /**< sizeof(swarm_retry_stats) */
    uint32_t budget_milli;    /**< tokens x1000 in the budget bucket now */
    uint64_t calls;           /**< calls served */
    uint64_t attempts;        /**< inner calls made */
    uint64_t retries;         /**< attempts after the first */
    uint64_t budget_denied;   /**< retries refused by the budget */
    uint64_t after_stream;    /**< retries refused because output was already streamed */
    uint64_t deadline_denied; /**< retries refused because the backoff would pass the deadline */
    int64_t slept_ns;         /**< total backoff */
} swarm_retry_stats;

/** Fill defaults (3 attempts, 100 ms base, 2 s cap, budget 10 tokens / 0.1). */
SWARM_API int swarm_retry_opts_init(swarm_retry_opts *opts);

/**
 * Retry retryable failures (swarm_engine_error_retryable()) with exponential backoff and full
 * jitter, honouring retry-after hints, never after output has reached a stream callback, never
 * past the request's deadline, and only while the retry budget (gRPC A6 token bucket: a failure
 * takes 1 token, a success returns ratio; retries only while tokens > max/2) allows. A refused
 * retry returns the last attempt's error. Output buffered by a failed attempt is discarded.
 * The backoff sleep wakes early, with SWARM_ECANCELED, if the request's token fires.
 *
 * @return 0; SWARM_EINVAL (NULL @p out/@p inner, max_attempts 0 or > 100, negative base or
 *         cap, base > cap, bad opts); SWARM_ENOMEM.
 * Ownership: takes over @p inner on success. Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_engine_retry_create(swarm_engine **out, swarm_engine *inner,
                                        const swarm_retry_opts *opts);

/** Copy counters of a retry engine. @return 0; SWARM_EINVAL for NULL or another kind. */
SWARM_API int swarm_engine_retry_get_stats(swarm_engine *e, swarm_retry_stats *stats);

/* ---- circuit breaker ------------------------------------------------------------------------ */

/** Breaker states. */
typedef enum swarm_breaker_state {
    SWARM_BREAKER_CLOSED = 0,   /**< calls flow, outcomes recorded */
    SWARM_BREAKER_OPEN = 1,     /**< calls fail fast with SWARM_EBREAKER_OPEN */
    SWARM_BREAKER_HALF_OPEN = 2 /**< a limited number of probe calls decide */
} swarm_breaker_state;

/** Window kinds. */
typedef enum swarm_breaker_window {
    SWARM_BREAKER_WINDOW_COUNT = 0, /**< the last window_size calls */
    SWARM_BREAKER_WINDOW_TIME = 1   /**< calls in the last window_size seconds */
} swarm_breaker_window;

/** Called on every state change, on the thread whose call caused it, no library lock held. */
typedef void (*swarm_breaker_transition_fn)(void *ctx, int from_state, int to_state,
                                            int64_t now_ns);

/** Breaker options. Defaults from resilience4j / the reference notes. */
typedef struct swarm_breaker_opts {
    /** sizeof(swarm_breaker_opts). Accepted from the 0.1.0 size (the fields through alloc) up; a
     *  smaller size, a larger one with a nonzero byte past this struct, or one above 4096:
     *  SWARM_EINVAL. */
    uint32_t size;
    uint32_t window_kind;      /**< swarm_breaker_window; default COUNT */
    uint32_t window_size;      /**< calls (COUNT) or seconds (TIME), 1..10000; default 100 */
    uint32_t minimum_calls;    /**< outcomes needed before the rate is judged; default 20 */
    uint32_t failure_rate_pct; /**< open when failures (incl. slow) >= this % ; 1..100;
                                    default 50 */
    uint32_t half_open_probes; /**< calls let through in half-open; default 10 */
    int64_t open_ns;           /**< time open before half-open; default 30 s */
    int64_t slow_call_ns;      /**< a call slower than this counts as a failure; 0: off
                                    (default) */
    swarm_breaker_transition_fn on_transition; /**< optional */
    void *transition_ctx;                      /**< passed to on_transition */
    swarm_clock_fn clock;         /**< NULL: swarm_now_ns(). May be called with the breaker's
                                       lock held: it must not call into the breaker. Read only
                                       when needed (a closed count-window breaker without
                                       slow-call detection reads it only on transitions) */
    void *clock_ctx;              /**< passed to clock */
    const swarm_allocator *alloc; /**< NULL: libc */
} swarm_breaker_opts;

/** Breaker counters. Set stats->size first. */
typedef struct swarm_breaker_stats {
    uint32_t size;            /**< sizeof(swarm_breaker_stats) */
    int32_t state;            /**< swarm_breaker_state now */
    uint32_t window_calls;    /**< outcomes in the window now */
    uint32_t window_failures; /**< failures (incl. slow) in the window now */
    uint64_t calls;           /**< calls admitted */
    uint64_t rejected;        /**< calls refused with SWARM_EBREAKER_OPEN */
    uint64_t failures;        /**< recorded failures */
    uint64_t slow_calls;      /**< successes counted as failures for being slow */
    uint64_t transitions;     /**< state changes */
    uint64_t opened;          /**< transitions into OPEN */
    int64_t state_since_ns;   /**< when the current state began (breaker clock) */
} swarm_breaker_stats;

/** Fill defaults (count window 100, minimum 20, 50 %, 10 probes, open 30 s, no slow calls). */
SWARM_API int swarm_breaker_opts_init(swarm_breaker_opts *opts);

/**
 * A circuit breaker. CLOSED: calls flow and outcomes (failure = swarm_engine_error_is_failure()
 * or slower than slow_call_ns) enter the window; once it holds >= minimum_calls outcomes and the
 * failure rate reaches failure_rate_pct it opens. OPEN: calls fail with SWARM_EBREAKER_OPEN (with
 * a retry-after hint of the remaining open time) until open_ns has passed, then HALF_OPEN lets
 * half_open_probes calls through; when they have all finished, the rate decides CLOSED (window
 * cleared) or OPEN again. SWARM_EINVAL and SWARM_ECANCELED outcomes are ignored.
 *
 * @return 0; SWARM_EINVAL (NULL arguments, window_size 0 or > 10000, failure_rate_pct 0 or
 *         > 100, negative durations, unknown window kind); SWARM_ENOMEM.
 * Ownership: takes over @p inner on success. Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_engine_breaker_create(swarm_engine **out, swarm_engine *inner,
                                          const swarm_breaker_opts *opts);

/** @return the breaker's swarm_breaker_state (after applying an elapsed open period), or
 *  SWARM_EINVAL for NULL or another kind of engine. */
SWARM_API int swarm_engine_breaker_state(swarm_engine *e);

/** Copy counters. @return 0; SWARM_EINVAL for NULL or another kind. */
SWARM_API int swarm_engine_breaker_get_stats(swarm_engine *e, swarm_breaker_stats *stats);

/* ---- fallback ------------------------------------------------------------------------------- */

/**
 * Primary, then secondary: the secondary serves a call when the primary fails with a failure
 * code (swarm_engine_error_is_failure(), which includes SWARM_EBREAKER_OPEN), unless output has
 * already reached a stream callback. Buffered primary output is discarded first.
 *
 * @return 0; SWARM_EINVAL (NULL arguments, @p primary == @p secondary); SWARM_ENOMEM.
 * Ownership: takes over both engines on success. Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_engine_fallback_create(swarm_engine **out, swarm_engine *primary,
                                           swarm_engine *secondary, const swarm_allocator *alloc);

/** Options of the fallback decorator, like the other decorators' (fill with
 *  swarm_fallback_opts_init()). */
typedef struct swarm_fallback_opts {
    /** sizeof(swarm_fallback_opts). Accepted from the 0.2.0 size (the fields through alloc) up; a
     *  smaller size, a larger one with a nonzero byte past this struct, or one above 4096:
     *  SWARM_EINVAL. */
    uint32_t size;
    uint32_t reserved_;           /**< keep 0 */
    const swarm_allocator *alloc; /**< NULL: libc */
} swarm_fallback_opts;

/**
 * Fill @p opts with the defaults (libc allocator) and set its size.
 * @return 0; SWARM_EINVAL if @p opts is NULL. Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_fallback_opts_init(swarm_fallback_opts *opts);

/**
 * swarm_engine_fallback_create() with an options struct (NULL: the defaults), the form every
 * other decorator takes. Only opts->size bytes are read.
 * @return as swarm_engine_fallback_create(); also SWARM_EINVAL for an opts->size below the
 *         first field set or an allocator without hooks.
 * Ownership: takes over both engines on success. Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_engine_fallback_create_ex(swarm_engine **out, swarm_engine *primary,
                                              swarm_engine *secondary,
                                              const swarm_fallback_opts *opts);

/* ---- split ---------------------------------------------------------------------------------- */

/** Split options. */
/** How the split decorator picks an engine (swarm_split_opts). */
typedef enum swarm_split_routing {
    SWARM_SPLIT_STICKY = 1, /**< by a hash of the request id: one id, one engine */
    SWARM_SPLIT_RANDOM = 2  /**< a weighted random draw per call */
} swarm_split_routing;

typedef struct swarm_split_opts {
    /** sizeof(swarm_split_opts). Accepted from the 0.1.0 size (the fields through alloc) up; a
     *  smaller size, a larger one with a nonzero byte past this struct, or one above 4096:
     *  SWARM_EINVAL. */
    uint32_t size;
    uint32_t sticky;              /**< swarm_split_routing: SWARM_SPLIT_STICKY (default; 0 means
                                       it too): by a hash of the request id, so one id always
                                       lands on one engine; SWARM_SPLIT_RANDOM: per call */
    uint64_t seed;                /**< hash / PRNG seed; 0: default fixed seed */
    const swarm_allocator *alloc; /**< NULL: libc */
} swarm_split_opts;

/** Fill defaults (sticky). */
SWARM_API int swarm_split_opts_init(swarm_split_opts *opts);

/**
 * Weighted routing over @p n engines (canary, A/B): engine i serves weights[i] / sum(weights) of
 * the requests (Istio's relative weights; 0 gets none). A batch is routed per request.
 *
 * @return 0; SWARM_EINVAL (NULL arguments, n == 0 or > 256, a NULL engine, the same engine
 *         twice, all weights 0, sum above 2^32); SWARM_ENOMEM.
 * Ownership: takes over all @p engines on success; the arrays are copied.
 * Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_engine_split_create(swarm_engine **out, swarm_engine *const *engines,
                                        const uint32_t *weights, size_t n,
                                        const swarm_split_opts *opts);

/**
 * Replace the weights atomically with respect to routing (a call sees the old or new set).
 * @return 0; SWARM_EINVAL (NULL, another kind, all zero, sum above 2^32).
 * Thread safety: any thread, concurrently with calls. Blocking: briefly (a lock).
 */
SWARM_API int swarm_engine_split_set_weights(swarm_engine *e, const uint32_t *weights, size_t n);

/** Copy per-engine call counts (up to @p n entries) into @p counts. @return the number of
 *  engines; SWARM_EINVAL for NULL or another kind. */
SWARM_API int swarm_engine_split_get_counts(swarm_engine *e, uint64_t *counts, size_t n);

/* ---- batcher -------------------------------------------------------------------------------- */

/** Batcher options. Defaults follow Triton's dynamic batcher. */
typedef struct swarm_batcher_opts {
    /** sizeof(swarm_batcher_opts). Accepted from the 0.1.0 size (the fields through alloc) up; a
     *  smaller size, a larger one with a nonzero byte past this struct, or one above 4096:
     *  SWARM_EINVAL. */
    uint32_t size;
    uint32_t max_batch;              /**< requests per infer_batch call, 1..4096; default 8 */
    int64_t max_wait_ns;             /**< linger after the first request of a batch; default 0
                                          (Triton: no delay, batch what is queued) */
    uint32_t queue_capacity;         /**< requests waiting; default 1024; a full queue blocks */
    uint32_t n_preferred;            /**< entries in preferred_sizes */
    const uint32_t *preferred_sizes; /**< optional; copied. A collected batch is split greedily
                                       into the largest preferred sizes that fit */
    const swarm_allocator *alloc;    /**< NULL: libc */
} swarm_batcher_opts;

/** Batcher counters. Set stats->size first. */
typedef struct swarm_batcher_stats {
    uint32_t size;     /**< sizeof(swarm_batcher_stats) */
    uint32_t max_seen; /**< largest batch dispatched */
    uint64_t requests; /**< requests dispatched */
    uint64_t batches;  /**< infer_batch calls made */
    uint64_t skipped;  /**< requests completed without the engine (canceled, expired) */
    uint64_t queued;   /**< requests waiting in the queue now */
} swarm_batcher_stats;

/** Fill defaults (max_batch 8, no linger, queue 1024). */
SWARM_API int swarm_batcher_opts_init(swarm_batcher_opts *opts);

/**
 * Dynamic batching without threads of its own (leader/follower): concurrent swarm_engine_infer()
 * callers queue their request in a swarm_chan; one of them at a time becomes the leader, takes a
 * batch with swarm_chan_recv_batch() (up to max_batch, lingering max_wait_ns after the first),
 * runs it through the inner engine's infer_batch (or infer per request) and completes every
 * caller of the batch; the others park until their request is done. A request whose token has
 * fired or whose deadline has passed when its batch forms completes with SWARM_ECANCELED or
 * SWARM_ETIMEDOUT without reaching the engine. Calls to the batcher's own infer_batch go straight
 * to the inner engine. Stream callbacks of every request in a batch run on the leader's thread.
 *
 * @return 0; SWARM_EINVAL (NULL arguments, max_batch 0 or > 4096, negative wait, a preferred size
 *         0 or > max_batch); SWARM_ENOMEM.
 * Ownership: takes over @p inner on success. Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_engine_batcher_create(swarm_engine **out, swarm_engine *inner,
                                          const swarm_batcher_opts *opts);

/** Copy counters. @return 0; SWARM_EINVAL for NULL or another kind. */
SWARM_API int swarm_engine_batcher_get_stats(swarm_engine *e, swarm_batcher_stats *stats);

/* ============================================================================================ */
/* The mock engine                                                                              */
/* ============================================================================================ */

/** Latency distributions of the mock engine. */
typedef enum swarm_mock_latency {
    SWARM_MOCK_LATENCY_NONE = 0,     /**< no delay (default) */
    SWARM_MOCK_LATENCY_FIXED = 1,    /**< latency_ns */
    SWARM_MOCK_LATENCY_UNIFORM = 2,  /**< uniform in [latency_ns, latency_max_ns] */
    SWARM_MOCK_LATENCY_LOGNORMAL = 3 /**< median latency_ns, shape lognormal_sigma */
} swarm_mock_latency;

/** One injected fault: fail with @p code with @p probability. */
typedef struct swarm_mock_fault {
    int32_t code;           /**< negative swarm_err to return */
    uint32_t reserved_;     /**< keep 0 */
    double probability;     /**< 0..1, independent per call, faults tried in order */
    int64_t retry_after_ns; /**< hint attached to the failure; 0: none */
} swarm_mock_fault;

/** Mock options. */
typedef struct swarm_mock_opts {
    /** sizeof(swarm_mock_opts). Accepted from the 0.1.0 size (the fields through alloc) up; a
     *  smaller size, a larger one with a nonzero byte past this struct, or one above 4096:
     *  SWARM_EINVAL. */
    uint32_t size;
    uint32_t latency_kind;          /**< swarm_mock_latency; default NONE */
    int64_t latency_ns;             /**< FIXED value, UNIFORM low, LOGNORMAL median */
    int64_t latency_max_ns;         /**< UNIFORM high */
    double lognormal_sigma;         /**< LOGNORMAL shape, finite and >= 0; default 0.5 */
    uint64_t seed;                  /**< PRNG seed; 0: default fixed seed */
    const swarm_mock_fault *faults; /**< copied; tried in order after scripted outcomes */
    uint32_t n_faults;              /**< entries in faults, <= 16 */
    uint32_t chunk_bytes;           /**< output written in chunks of this size; 0: one write */
    double hang_probability;        /**< a call hangs until its token fires or deadline passes */
    uint64_t output_bytes;          /**< output length; 0: echo the payload */
    uint32_t batch;                 /**< 1: implement infer_batch (one latency draw per batch);
                                         0 (default): infer only */
    uint32_t reserved_;             /**< keep 0 */
    swarm_clock_fn clock;           /**< NULL: swarm_now_ns() */
    swarm_sleep_fn sleep;           /**< NULL: real cancel-aware sleep */
    void *clock_ctx;                /**< passed to clock and sleep */
    const swarm_allocator *alloc;   /**< NULL: libc */
} swarm_mock_opts;

/** Mock counters. Set stats->size first. */
typedef struct swarm_mock_stats {
    uint32_t size;         /**< sizeof(swarm_mock_stats) */
    uint32_t max_batch;    /**< largest batch seen by infer_batch */
    uint64_t calls;        /**< requests served (batched ones included) */
    uint64_t batch_calls;  /**< infer_batch invocations */
    uint64_t failures;     /**< requests failed by scripts or faults */
    uint64_t hangs;        /**< requests that hung */
    uint64_t canceled;     /**< requests stopped by token, deadline or stream callback */
    uint64_t cancel_calls; /**< cancel slot invocations */
} swarm_mock_stats;

/** Fill defaults (no latency, no faults, echo, one write). */
SWARM_API int swarm_mock_opts_init(swarm_mock_opts *opts);

/**
 * A configurable fake engine for tests, benchmarks and demos. Each call: take the next scripted
 * outcome if any (swarm_engine_mock_script()), else draw faults and hangs from the seeded PRNG;
 * sleep the latency (through opts->sleep, waking on the token); write the output (echo of the
 * payload or output_bytes of a pattern) in chunks, stopping if the token fires, the deadline
 * passes or the stream callback asks; set usage (payload bytes in, bytes out).
 * Draws are deterministic for a given seed and call order.
 *
 * @return 0; SWARM_EINVAL (bad opts, unknown latency kind, lognormal_sigma negative, NaN or
 *         infinite, fault code >= 0, probability outside [0, 1], more than 16 faults);
 *         SWARM_ENOMEM. Drawn latencies saturate at INT64_MAX ns.
 * Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_engine_mock_create(swarm_engine **out, const swarm_mock_opts *opts);

/**
 * Queue scripted outcomes: the next @p n requests (batched ones count one each) take codes[i]
 * in order instead of the random draws: 0 succeeds normally, a negative code fails after the
 * latency with that code. At most 256 queued.
 * @return 0; SWARM_EINVAL (NULL, another kind); SWARM_ERANGE if the script would exceed 256.
 * Thread safety: any thread. Blocking: briefly (a lock).
 */
SWARM_API int swarm_engine_mock_script(swarm_engine *e, const int32_t *codes, size_t n);

/** Copy counters. @return 0; SWARM_EINVAL for NULL or another kind. */
SWARM_API int swarm_engine_mock_get_stats(swarm_engine *e, swarm_mock_stats *stats);

#ifdef __cplusplus
}
#endif

#endif /* SWARM_ENGINE_H */
