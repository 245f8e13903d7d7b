/* SPDX-License-Identifier: MIT */
/*
 * swarm_metrics: one snapshot of every registered channel, pool and reconcile loop, rendered as
 * Prometheus text exposition (format 0.0.4) or as JSON for KEDA's metrics-api scaler.
 *
 * The host creates a registry with a fixed number of slots, adds the objects it wants exported
 * under a name, and renders into its own buffer whenever a scraper asks:
 *
 *     swarm_metrics *m;
 *     swarm_metrics_opts o;
 *     swarm_metrics_opts_init(&o);
 *     swarm_metrics_create(&m, &o);
 *     swarm_metrics_add_chan(m, "requests", chan);
 *     swarm_metrics_add_pool(m, "agents", pool);
 *     ...
 *     size_t n;
 *     int rc = swarm_metrics_render(m, SWARM_METRICS_PROMETHEUS, buf, sizeof buf, &n);
 *
 * Prometheus: one family per statistic, named swarm_<kind>_<stat>, with the object's name in a
 * label named after its kind: swarm_channel_length{channel="requests"},
 * swarm_pool_backlog{pool="agents"}, swarm_reconcile_desired_replicas{loop="scaler"}. Counters end
 * in _total; durations are in seconds (exact decimals of the nanosecond counters).
 *
 * Engine decorators (retry, circuit breaker, batcher) are exported with label engine="<name>":
 * swarm_engine_breaker_state{engine="llm"}, swarm_engine_retry_retries_total{engine="llm"}.
 * Pools export queue-wait and service-time histograms (swarm_pool_queue_wait_seconds_bucket{le},
 * _sum, _count) with fixed bounds of 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
 * 2.5, 5, 10, 30, 60 and 300 s, the same in every process so that pods aggregate
 * (histogram_quantile(0.99, sum by (le) (rate(..._bucket[5m])))). Every render starts with
 * swarm_build_info{version="X.Y.Z"} 1 and swarm_metrics_objects_skipped (objects left out of
 * this render because a statistics read failed). A family appears only with at least one series.
 *
 * JSON: {"channels":{"requests":{"length":3,...}},"pools":{"agents":{...}},"loops":{...},
 * "engines":{"llm":{"retry_retries":0,"breaker_state":0,...}},"registry":{"version":"X.Y.Z",
 * "objects_skipped":0}}, the same statistics without the swarm_<kind>_ prefix and the _total
 * suffix (histograms as <name>_count and <name>_sum; decisions by reason as an object keyed by
 * reason), so that a KEDA metrics-api trigger can point valueLocation at
 * "channels.requests.length" or "pools.agents.backlog". Every top-level key is always present;
 * the decorators of one engine name merge into one object.
 *
 * Registered objects are borrowed: they must outlive every render (destroy the registry, or stop
 * rendering, before destroying them). Rendering reads them only through their get_stats
 * functions, so it is safe against concurrent traffic. Nothing is allocated after create, and
 * numbers are formatted without printf, so the output does not depend on the C locale.
 */
#ifndef SWARM_METRICS_H
#define SWARM_METRICS_H

#include "swarm/common.h"
#include "swarm/chan.h"
#include "swarm/engine.h"
#include "swarm/pool.h"
#include "swarm/reconcile.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Longest object name, in bytes, without the terminating NUL. */
#define SWARM_METRICS_NAME_MAX 63

/** Most objects a registry can hold (the largest max_objects). */
#define SWARM_METRICS_MAX_OBJECTS 1024

/** Output formats of swarm_metrics_render(). */
typedef enum swarm_metrics_format {
    SWARM_METRICS_PROMETHEUS = 1, /**< text exposition 0.0.4 (Content-Type: text/plain;
                                       version=0.0.4; charset=utf-8) */
    SWARM_METRICS_JSON = 2        /**< one JSON object (Content-Type: application/json) */
} swarm_metrics_format;

/** Creation options. Fill with swarm_metrics_opts_init(), then set fields. */
typedef struct swarm_metrics_opts {
    /** sizeof(swarm_metrics_opts), set by _opts_init(). Accepted from the 0.1.0 size (the fields
     * through alloc) up; a smaller size, a larger one with a nonzero byte past this struct, or one
     * above 4096: SWARM_EINVAL. */
    uint32_t size;
    uint32_t max_objects;         /**< slots for channels + pools + loops, 1..1024; default 16 */
    const swarm_allocator *alloc; /**< NULL: libc. Copied at create */
} swarm_metrics_opts;

typedef struct swarm_metrics swarm_metrics;

/**
 * Fill @p opts with the defaults (16 objects, libc allocator) and set its size.
 * @return 0; SWARM_EINVAL if @p opts is NULL.
 * Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_metrics_opts_init(swarm_metrics_opts *opts);

/**
 * Create an empty registry. Every slot and the render scratch space are allocated here, once.
 *
 * @param out   receives the registry; untouched on error.
 * @param opts  options, or NULL for all defaults. Only opts->size bytes are read.
 * @return 0; SWARM_EINVAL for a NULL @p out, a too-small opts->size, max_objects above
 *         SWARM_METRICS_MAX_OBJECTS, an allocator without both hooks; SWARM_ENOMEM (nothing
 *         leaks).
 * Ownership: the caller owns the registry; release it with swarm_metrics_destroy().
 * Thread safety: any thread. Blocking: no.
 */
SWARM_API int swarm_metrics_create(swarm_metrics **out, const swarm_metrics_opts *opts);

/**
 * Destroy a registry. The registered objects are not touched (they stay the caller's). No call
 * on @p m may be running or follow. NULL is a no-op.
 */
SWARM_API void swarm_metrics_destroy(swarm_metrics *m);

/**
 * Export channel @p ch under @p name (label channel="<name>", JSON "channels.<name>").
 *
 * A name is 1..SWARM_METRICS_NAME_MAX bytes of [A-Za-z0-9_-], starting with a letter or '_':
 * safe as a Prometheus label value without escaping, and as a GJSON path segment (no '.').
 *
 * @return 0; SWARM_EINVAL for NULL arguments, an invalid name, a name already used by another
 *         channel of this registry, or a registry whose max_objects slots are all taken.
 * Ownership: @p name is copied; @p ch is borrowed and must outlive every later render.
 * Thread safety: any thread, concurrently with renders and other adds (an internal mutex).
 * Blocking: briefly (the registry's mutex, which a render holds while it runs).
 */
SWARM_API int swarm_metrics_add_chan(swarm_metrics *m, const char *name, const swarm_chan *ch);

/**
 * Export pool @p p under @p name (label pool="<name>", JSON "pools.<name>"): workers by state,
 * queued, in-flight and their sum backlog (the signal to scale pods on), task and worker
 * counters, queue-wait and service-time percentiles.
 *
 * @return as swarm_metrics_add_chan() (names are unique among pools).
 * Ownership: @p name is copied; @p p is borrowed and must outlive every later render.
 * Thread safety and blocking: as swarm_metrics_add_chan().
 */
SWARM_API int swarm_metrics_add_pool(swarm_metrics *m, const char *name, swarm_pool *p);

/**
 * Export reconcile loop @p r under @p name (label loop="<name>", JSON "loops.<name>"): desired
 * and actuated replicas, the reason code of the last decision (the last rule of its explanation
 * that changed the count; 0 "none" before the first decision), tick, decision, actuation and
 * error counters, backoff and tick lag.
 *
 * @return as swarm_metrics_add_chan() (names are unique among loops).
 * Ownership: @p name is copied; @p r is borrowed and must outlive every later render.
 * Thread safety and blocking: as swarm_metrics_add_chan().
 */
SWARM_API int swarm_metrics_add_reconcile(swarm_metrics *m, const char *name, swarm_reconcile *r);

/**
 * Export engine decorator @p e under @p name (label engine="<name>", JSON "engines.<name>"): a
 * retry engine (calls, attempts, retries, budget denials, tokens, backoff time), a circuit
 * breaker (state 0 closed / 1 open / 2 half-open, window, calls, rejections, failures,
 * transitions, openings) or a batcher (requests, batches, skipped, queued, largest batch). Keep
 * the pointer each decorator's _create returned and register the layers you want; the layers of
 * one stack may share a name (names are unique per decorator kind).
 *
 * @return 0; SWARM_ENOTSUP if @p e is not a retry, breaker or batcher engine; otherwise as
 *         swarm_metrics_add_chan().
 * Ownership: @p name is copied; @p e is borrowed (no reference is taken) and must outlive every
 *            later render: destroying the outermost engine of its stack destroys it.
 * Thread safety and blocking: as swarm_metrics_add_chan().
 */
SWARM_API int swarm_metrics_add_engine(swarm_metrics *m, const char *name, swarm_engine *e);

/**
 * Count @p n sends to the registered channel @p ch that the host refused or that failed (a
 * try_send that returned SWARM_EAGAIN and became an HTTP 503, a timed-out or closed send):
 * swarm_channel_rejected_total{channel="<name>"}, JSON "rejected". The channel itself cannot
 * see sends that never happened; this is where the host says so.
 *
 * @return 0; SWARM_EINVAL for NULL arguments or a channel not registered in @p m (a channel
 *         registered under several names counts under the first).
 * Thread safety: any thread, lock-free (one relaxed atomic add after a scan of the slots).
 * Blocking: no. Allocation: none.
 */
SWARM_API int swarm_metrics_chan_rejected(swarm_metrics *m, const swarm_chan *ch, uint64_t n);

/**
 * Export the scaling policy's bounds and target next to the registered loop @p r (the policy
 * itself is pure and keeps no readable configuration): swarm_reconcile_min_replicas,
 * swarm_reconcile_max_replicas and swarm_reconcile_target_per_replica{loop="<name>"} (JSON
 * min_replicas, max_replicas, target_per_replica). Until the first call these are not rendered.
 * Call again after swarm_policy_update().
 *
 * @param target  the per-replica target of the scaling metric, > 0; rendered in thousandths.
 * @return 0; SWARM_EINVAL for NULL arguments, a loop not registered in @p m, a negative
 *         @p min_replicas, @p max_replicas below @p min_replicas, a target not > 0, NaN or
 *         above 9e15.
 * Thread safety and blocking: as swarm_metrics_add_chan().
 */
SWARM_API int swarm_metrics_set_loop_bounds(swarm_metrics *m, const swarm_reconcile *r,
                                            int32_t min_replicas, int32_t max_replicas,
                                            double target);

/** @return the number of objects registered (0 for NULL). Thread safety: any thread. */
SWARM_API uint32_t swarm_metrics_count(const swarm_metrics *m);

/**
 * Render one snapshot of every registered object into @p buf, NUL-terminated.
 *
 * Each object's statistics are read once (one get_stats call, plus the two histograms of a
 * pool) per render, so the values of one object are mutually consistent as far as its get_stats
 * makes them; objects are read one after another. An object whose read fails (any error, e.g.
 * SWARM_ESTATE from an object that refuses reads in a forked child) is left out of the render
 * and counted in swarm_metrics_objects_skipped; the render still succeeds. An empty registry
 * renders only the registry's own series (Prometheus) or the empty objects (JSON).
 *
 * @param format   SWARM_METRICS_PROMETHEUS or SWARM_METRICS_JSON.
 * @param buf      destination; may be NULL only when @p buf_len is 0 (a size query).
 * @param buf_len  bytes at @p buf.
 * @param written  receives, on success, the length of the output without the NUL; on
 *                 SWARM_ERANGE, the buffer size this snapshot needed (NUL included). Counters only
 *                 grow, so allow headroom (see swarm_metrics_render_bound()). May be NULL.
 * @return 0; SWARM_ERANGE if @p buf_len is too small (the contents of @p buf are then
 *         unspecified, but never written beyond @p buf_len); SWARM_EINVAL for a NULL @p m, an
 *         unknown format, or a NULL @p buf with @p buf_len > 0.
 * Ownership: nothing is kept. Allocation: none.
 * Thread safety: any thread, concurrently with traffic on the objects; renders of one registry
 *                serialize on its mutex (they share the snapshot space allocated at create).
 * Blocking: briefly: the registry's mutex, and the pools' and loops' internal locks taken by
 *           their get_stats.
 */
SWARM_API int swarm_metrics_render(swarm_metrics *m, int format, char *buf, size_t buf_len,
                                   size_t *written);

/**
 * The largest buffer (NUL included) that swarm_metrics_render() can need in @p format for the
 * objects registered now, whatever values their counters reach: allocate this once and renders
 * never fail with SWARM_ERANGE until another object is added.
 *
 * @return 0; SWARM_EINVAL for a NULL @p m or @p size, or an unknown format.
 * Thread safety and blocking: as swarm_metrics_render() (it reads no object).
 */
SWARM_API int swarm_metrics_render_bound(swarm_metrics *m, int format, size_t *size);

#ifdef __cplusplus
}
#endif

#endif /* SWARM_METRICS_H */
