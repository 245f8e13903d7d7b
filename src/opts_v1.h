/* SPDX-License-Identifier: MIT */
/*
 * The first-release ("v1") layout of every options struct, recorded once: the smallest `size`
 * each *_create() accepts.
 *
 * A caller fills an options struct and sets its `size` (swarm_*_opts_init() writes sizeof).
 * Structs only grow by appending, so a program built against an older header passes a smaller
 * size, and the library reads that many bytes and defaults the rest. How small may it be? Not
 * "where the first optional field begins" (an accident of today's field order), but the size the
 * struct had in the release that introduced it: every program ever compiled passes at least that
 * (a 0.1.0 binary passes the full 0.1.0 sizeof). Anything smaller was never a real layout and
 * gets SWARM_EINVAL. Linux does the same with CLONE_ARGS_SIZE_VER0 and OPEN_HOW_SIZE_VER0.
 *
 * The structs hold pointers, so the size is not one number: each first-release layout is kept as
 * a frozen private mirror (struct swarm__chan_opts_v1, ...) generated from a field list, and its
 * sizeof is the minimum on every ABI. The checks below tie each mirror to the live public
 * struct: every v1 field at the same offset with the same type, so a reorder, a removal or a type
 * change breaks the build. A struct that grows without its row naming the first appended field
 * breaks the build too: the name gives swarm__<name>_v1_end, where the v1 fields end, so that a
 * v1-sized caller's tail padding is never read as an appended field (see SWARM__V1_END).
 *
 * Releases: 0.1.0 is commit fe3906f (the 0.1 headers: `git show fe3906f:include/swarm/chan.h`);
 * 0.2.0 added fallback_opts, reconcile_pool_opts, sim_gen_opts and sim_opts, whose v1 is their
 * 0.2.0 layout. src/compat.c writes these same v1 sizes for the 0.1 versions of the three
 * *_opts_init() whose structs grew (policy, reconcile, pool).
 *
 * Adding an options struct: add its field list and a row to SWARM__OPTS_V1_TABLE. Never edit a
 * list once released: new fields go only into the public struct.
 */
#ifndef SWARM_OPTS_V1_H
#define SWARM_OPTS_V1_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "swarm/chan.h"
#include "swarm/engine.h"
#include "swarm/metrics.h"
#include "swarm/policy.h"
#include "swarm/pool.h"
#include "swarm/reconcile.h"
#include "swarm/sim.h"

/* clang-format off */
/* swarm_thread_hooks: 0.3.0 */
#define SWARM__THREAD_HOOKS_V1(F, S) \
    F(S, uint32_t, size) \
    F(S, swarm_thread_hook_fn, start) \
    F(S, swarm_thread_hook_fn, stop) \
    F(S, void *, user)

/* swarm_chan_opts: 0.1.0 */
#define SWARM__CHAN_OPTS_V1(F, S) \
    F(S, uint32_t, size) \
    F(S, uint32_t, full_mode) \
    F(S, uint64_t, capacity) \
    F(S, uint64_t, elem_size) \
    F(S, swarm_chan_drop_fn, drop_fn) \
    F(S, void *, drop_ctx) \
    F(S, const swarm_allocator *, alloc) \
    F(S, uint32_t, spin) \
    F(S, uint32_t, reserved_)

/* swarm_response_opts: 0.1.0 */
#define SWARM__RESPONSE_OPTS_V1(F, S) \
    F(S, uint32_t, size) \
    F(S, uint32_t, reserved_) \
    F(S, uint64_t, initial_capacity) \
    F(S, uint64_t, max_bytes) \
    F(S, const swarm_allocator *, alloc)

/* swarm_timeout_opts: 0.1.0 */
#define SWARM__TIMEOUT_OPTS_V1(F, S) \
    F(S, uint32_t, size) \
    F(S, uint32_t, reserved_) \
    F(S, int64_t, timeout_ns) \
    F(S, swarm_clock_fn, clock) \
    F(S, void *, clock_ctx) \
    F(S, const swarm_allocator *, alloc)

/* swarm_retry_opts: 0.1.0 */
#define SWARM__RETRY_OPTS_V1(F, S) \
    F(S, uint32_t, size) \
    F(S, uint32_t, max_attempts) \
    F(S, int64_t, base_ns) \
    F(S, int64_t, cap_ns) \
    F(S, uint32_t, budget_max_tokens) \
    F(S, uint32_t, budget_ratio_milli) \
    F(S, uint64_t, seed) \
    F(S, uint32_t, honor_retry_after) \
    F(S, uint32_t, reserved_) \
    F(S, swarm_clock_fn, clock) \
    F(S, swarm_sleep_fn, sleep) \
    F(S, void *, clock_ctx) \
    F(S, const swarm_allocator *, alloc)

/* swarm_breaker_opts: 0.1.0 */
#define SWARM__BREAKER_OPTS_V1(F, S) \
    F(S, uint32_t, size) \
    F(S, uint32_t, window_kind) \
    F(S, uint32_t, window_size) \
    F(S, uint32_t, minimum_calls) \
    F(S, uint32_t, failure_rate_pct) \
    F(S, uint32_t, half_open_probes) \
    F(S, int64_t, open_ns) \
    F(S, int64_t, slow_call_ns) \
    F(S, swarm_breaker_transition_fn, on_transition) \
    F(S, void *, transition_ctx) \
    F(S, swarm_clock_fn, clock) \
    F(S, void *, clock_ctx) \
    F(S, const swarm_allocator *, alloc)

/* swarm_fallback_opts: 0.2.0 */
#define SWARM__FALLBACK_OPTS_V1(F, S) \
    F(S, uint32_t, size) \
    F(S, uint32_t, reserved_) \
    F(S, const swarm_allocator *, alloc)

/* swarm_split_opts: 0.1.0 */
#define SWARM__SPLIT_OPTS_V1(F, S) \
    F(S, uint32_t, size) \
    F(S, uint32_t, sticky) \
    F(S, uint64_t, seed) \
    F(S, const swarm_allocator *, alloc)

/* swarm_batcher_opts: 0.1.0 */
#define SWARM__BATCHER_OPTS_V1(F, S) \
    F(S, uint32_t, size) \
    F(S, uint32_t, max_batch) \
    F(S, int64_t, max_wait_ns) \
    F(S, uint32_t, queue_capacity) \
    F(S, uint32_t, n_preferred) \
    F(S, const uint32_t *, preferred_sizes) \
    F(S, const swarm_allocator *, alloc)

/* swarm_mock_opts: 0.1.0 */
#define SWARM__MOCK_OPTS_V1(F, S) \
    F(S, uint32_t, size) \
    F(S, uint32_t, latency_kind) \
    F(S, int64_t, latency_ns) \
    F(S, int64_t, latency_max_ns) \
    F(S, double, lognormal_sigma) \
    F(S, uint64_t, seed) \
    F(S, const swarm_mock_fault *, faults) \
    F(S, uint32_t, n_faults) \
    F(S, uint32_t, chunk_bytes) \
    F(S, double, hang_probability) \
    F(S, uint64_t, output_bytes) \
    F(S, uint32_t, batch) \
    F(S, uint32_t, reserved_) \
    F(S, swarm_clock_fn, clock) \
    F(S, swarm_sleep_fn, sleep) \
    F(S, void *, clock_ctx) \
    F(S, const swarm_allocator *, alloc)

/* swarm_metrics_opts: 0.1.0 */
#define SWARM__METRICS_OPTS_V1(F, S) \
    F(S, uint32_t, size) \
    F(S, uint32_t, max_objects) \
    F(S, const swarm_allocator *, alloc)

/* swarm_policy_opts: 0.1.0 */
#define SWARM__POLICY_OPTS_V1(F, S) \
    F(S, uint32_t, size) \
    F(S, uint32_t, mode) \
    F(S, int32_t, min_replicas) \
    F(S, int32_t, max_replicas) \
    F(S, uint32_t, history_cap) \
    F(S, uint32_t, disable) \
    F(S, uint32_t, pause) \
    F(S, int32_t, paused_replicas) \
    F(S, const swarm_allocator *, alloc) \
    F(S, double, tolerance) \
    F(S, int64_t, cooldown_ns) \
    F(S, int64_t, initial_cooldown_ns) \
    F(S, int32_t, idle_replicas) \
    F(S, uint32_t, use_idle) \
    F(S, uint32_t, fallback_failures) \
    F(S, uint32_t, fallback_behavior) \
    F(S, int32_t, fallback_replicas) \
    F(S, int32_t, pad0_) \
    F(S, uint32_t, hpa_path) \
    F(S, uint32_t, pad1_) \
    F(S, swarm_policy_hpa_rules, scale_up) \
    F(S, swarm_policy_hpa_rules, scale_down) \
    F(S, int64_t, legacy_window_ns) \
    F(S, double, legacy_factor) \
    F(S, double, legacy_minimum) \
    F(S, int64_t, stable_window_ns) \
    F(S, double, panic_window_pct) \
    F(S, double, panic_threshold_pct) \
    F(S, double, max_scale_up_rate) \
    F(S, double, max_scale_down_rate) \
    F(S, int64_t, scale_down_delay_ns) \
    F(S, int32_t, activation_scale) \
    F(S, uint32_t, unreachable) \
    F(S, double, target_burst_capacity) \
    F(S, double, total_value) \
    F(S, int64_t, zero_grace_ns) \
    F(S, int64_t, pending_hold_max_ns)

/* swarm_pool_opts: 0.1.0 */
#define SWARM__POOL_OPTS_V1(F, S) \
    F(S, uint32_t, size) \
    F(S, uint32_t, workers) \
    F(S, uint32_t, max_workers) \
    F(S, uint32_t, batch_max) \
    F(S, uint32_t, batch_min) \
    F(S, uint32_t, reserved_) \
    F(S, int64_t, batch_linger_ns) \
    F(S, swarm_chan *, input) \
    F(S, swarm_engine *, engine) \
    F(S, swarm_pool_result_fn, on_result) \
    F(S, void *, result_ctx) \
    F(S, swarm_chan *, results) \
    F(S, swarm_pool_warmup_fn, warmup) \
    F(S, void *, warmup_ctx) \
    F(S, uint64_t, response_capacity) \
    F(S, const swarm_allocator *, alloc)

/* swarm_reconcile_opts: 0.1.0 */
#define SWARM__RECONCILE_OPTS_V1(F, S) \
    F(S, uint32_t, size) \
    F(S, uint32_t, sliding) \
    F(S, swarm_policy *, policy) \
    F(S, swarm_reconcile_observe_fn, observe) \
    F(S, swarm_reconcile_actuate_fn, actuate) \
    F(S, void *, user) \
    F(S, int64_t, interval_ns) \
    F(S, double, jitter) \
    F(S, int64_t, backoff_base_ns) \
    F(S, double, backoff_factor) \
    F(S, int64_t, backoff_cap_ns) \
    F(S, double, backoff_jitter) \
    F(S, uint32_t, actuate_always) \
    F(S, uint32_t, fail_after) \
    F(S, uint64_t, seed) \
    F(S, const swarm_allocator *, alloc)

/* swarm_reconcile_pool_opts: 0.2.0 */
#define SWARM__RECONCILE_POOL_OPTS_V1(F, S) \
    F(S, uint32_t, size) \
    F(S, uint32_t, manual) \
    F(S, swarm_pool *, pool) \
    F(S, swarm_policy *, policy) \
    F(S, double, target_per_worker) \
    F(S, double, activation) \
    F(S, const swarm_reconcile_opts *, loop)

/* swarm_sim_gen_opts: 0.2.0 */
#define SWARM__SIM_GEN_OPTS_V1(F, S) \
    F(S, uint32_t, size) \
    F(S, uint32_t, shape) \
    F(S, double, base_rps) \
    F(S, double, peak_rps) \
    F(S, double, duration_s) \
    F(S, double, period_s) \
    F(S, double, burst_s) \
    F(S, double, gap_s) \
    F(S, uint64_t, seed)

/* swarm_sim_opts: 0.2.0 */
#define SWARM__SIM_OPTS_V1(F, S) \
    F(S, uint32_t, size) \
    F(S, uint32_t, kind) \
    F(S, const swarm_policy_opts *, policy) \
    F(S, const swarm_allocator *, alloc) \
    F(S, int64_t, interval_ns) \
    F(S, int32_t, fixed_replicas) \
    F(S, int32_t, initial_replicas) \
    F(S, int32_t, max_replicas) \
    F(S, uint32_t, concurrency) \
    F(S, uint32_t, service_dist) \
    F(S, uint32_t, queue_cap) \
    F(S, double, service_mean_s) \
    F(S, double, service_cv) \
    F(S, double, startup_s) \
    F(S, double, startup_jitter_s) \
    F(S, double, metrics_lag_s) \
    F(S, double, target) \
    F(S, double, slo_s) \
    F(S, double, slo_quantile) \
    F(S, double, tail_s) \
    F(S, double, flap_window_s) \
    F(S, uint64_t, seed) \
    F(S, uint32_t, no_timeline) \
    F(S, uint32_t, pad_) \
    F(S, swarm_sim_scale_fn, on_scale) \
    F(S, void *, on_scale_ctx) \
    F(S, uint32_t, warm_start) \
    F(S, uint32_t, pad2_)

/* One row per options struct: X(name, v1 field list, first field appended after v1 (size when
 * none yet), release that introduced it). name is the public type without its swarm_ prefix. */
#define SWARM__OPTS_V1_TABLE(X) \
    X(chan_opts, SWARM__CHAN_OPTS_V1, size, "0.1.0") \
    X(response_opts, SWARM__RESPONSE_OPTS_V1, size, "0.1.0") \
    X(timeout_opts, SWARM__TIMEOUT_OPTS_V1, size, "0.1.0") \
    X(retry_opts, SWARM__RETRY_OPTS_V1, size, "0.1.0") \
    X(breaker_opts, SWARM__BREAKER_OPTS_V1, size, "0.1.0") \
    X(fallback_opts, SWARM__FALLBACK_OPTS_V1, size, "0.2.0") \
    X(split_opts, SWARM__SPLIT_OPTS_V1, size, "0.1.0") \
    X(batcher_opts, SWARM__BATCHER_OPTS_V1, size, "0.1.0") \
    X(mock_opts, SWARM__MOCK_OPTS_V1, size, "0.1.0") \
    X(metrics_opts, SWARM__METRICS_OPTS_V1, size, "0.1.0") \
    X(policy_opts, SWARM__POLICY_OPTS_V1, load_wait_ns, "0.1.0") \
    X(pool_opts, SWARM__POOL_OPTS_V1, keep_input_open, "0.1.0") \
    X(reconcile_opts, SWARM__RECONCILE_OPTS_V1, max_replicas, "0.1.0") \
    X(reconcile_pool_opts, SWARM__RECONCILE_POOL_OPTS_V1, size, "0.2.0") \
    X(sim_gen_opts, SWARM__SIM_GEN_OPTS_V1, size, "0.2.0") \
    X(sim_opts, SWARM__SIM_OPTS_V1, size, "0.2.0") \
    X(thread_hooks, SWARM__THREAD_HOOKS_V1, size, "0.3.0")
/* clang-format on */

/* The mirrors: struct swarm__<name>_v1, the first-release layout. */
#define SWARM__V1_MEMBER(S, type, field) type field;
#define SWARM__V1_STRUCT(name, list, appended, release)                                            \
    struct swarm__##name##_v1 {                                                                    \
        list(SWARM__V1_MEMBER, name)                                                               \
    };
SWARM__OPTS_V1_TABLE(SWARM__V1_STRUCT)

/* The minimum size of swarm_<name> (e.g. SWARM__OPTS_V1_SIZE(chan_opts)): its v1 sizeof. */
#define SWARM__OPTS_V1_SIZE(name) sizeof(struct swarm__##name##_v1)

/* The live struct starts with the v1 layout: same offset, same type, field by field. */
#define SWARM__V1_FIELD_CHECK(name, type, field)                                                   \
    _Static_assert(offsetof(swarm_##name, field) == offsetof(struct swarm__##name##_v1, field) &&  \
                       _Generic(((swarm_##name *)0)->field, type : 1, default : 0),                \
                   "swarm_" #name "." #field " moved or changed type since its first release");
#define SWARM__V1_CHECK(name, list, appended, release)                                             \
    list(SWARM__V1_FIELD_CHECK, name) _Static_assert(                                              \
        offsetof(swarm_##name, appended) != 0 ||                                                   \
            sizeof(swarm_##name) == SWARM__OPTS_V1_SIZE(name),                                     \
        "swarm_" #name " grew since " release ": name its first appended field in "                \
        "SWARM__OPTS_V1_TABLE");                                                                   \
    _Static_assert(offsetof(swarm_##name, appended) <= SWARM__OPTS_V1_SIZE(name),                  \
                   "swarm_" #name ": the table names a later field, not the first appended one");
SWARM__OPTS_V1_TABLE(SWARM__V1_CHECK)

/* Where the v1 fields end: the first appended field's offset, or the v1 sizeof if none. Below
 * the v1 sizeof when an appended field sits in the v1 tail padding (pool_opts and reconcile_opts
 * on 32-bit ABIs that align int64_t to 8, such as armv7: there the 0.1 sizeof covers the first
 * 0.2 field, in bytes a 0.1 caller never set). */
#define SWARM__V1_END(name, list, appended, release)                                               \
    enum {                                                                                         \
        swarm__##name##_v1_end = offsetof(swarm_##name, appended) != 0                             \
                                     ? (int)offsetof(swarm_##name, appended)                       \
                                     : (int)SWARM__OPTS_V1_SIZE(name)                              \
    };
SWARM__OPTS_V1_TABLE(SWARM__V1_END)

/* Copies the caller's options of type swarm_<name> over the defaulted @dst (see
 * swarm__opts_copy): SWARM_EINVAL below the v1 size. */
#define SWARM__OPTS_COPY(name, dst, src)                                                           \
    swarm__opts_copy((dst), sizeof(swarm_##name), (src), SWARM__OPTS_V1_SIZE(name),                \
                     (size_t)swarm__##name##_v1_end)

#endif /* SWARM_OPTS_V1_H */
