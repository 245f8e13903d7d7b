/* SPDX-License-Identifier: MIT */
/*
 * Conformance runner: evaluates upstream-transcribed vectors (../shared/conformance/ *.json, see
 * its README) through libswarm's own policy code. The runner only parses JSON (libcjson, test
 * only), maps each case onto the library's building blocks (src/policy_internal.h) and compares
 * results; it computes nothing itself.
 *
 * Usage: conformance [-v] FILE.json...    prints "N passed, M failed"; exits 1 on any failure.
 *
 * Time mapping: a vector's "t" (seconds relative to the evaluation instant) becomes t * 1e9 ns;
 * Go's zero time becomes ZERO_NS, far in the past but finite. KPA cases add KPA_BASE_NS so that
 * the library's floor(now / 2 s) bucket index groups seconds the way Go's truncating
 * Unix(time.Time{} + t) / 2 does (upstream's base is an even, negative Unix time).
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_internal.h"

#define NS          INT64_C(1000000000)
#define ZERO_NS     (INT64_MIN / 2)
#define KPA_BASE_NS NS
#define MAX_ITEMS   256

static int verbose;

static const char *nz(const char *s)
{
    return s ? s : "";
}
static char why[1024];

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static int
fail(const char *fmt, ...);
static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return 0;
}

/* ---- JSON helpers --------------------------------------------------------------------------- */

static const cJSON *get(const cJSON *o, const char *k)
{
    return o ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}
static int is_null(const cJSON *o)
{
    return o == NULL || cJSON_IsNull(o);
}
static double num(const cJSON *o, const char *k, double dflt)
{
    const cJSON *v = get(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}
/* int64 milli-values: cJSON keeps a double, which holds the vectors' large values (powers of
 * two, MaxInt64 rounding up to 2^63) exactly enough; clamp instead of overflowing. */
static int64_t d2i64(double d)
{
    if (d >= 9223372036854775807.0)
        return INT64_MAX;
    if (d <= -9223372036854775808.0)
        return INT64_MIN;
    return (int64_t)d;
}
static int64_t i64(const cJSON *o, const char *k, int64_t dflt)
{
    const cJSON *v = get(o, k);
    return cJSON_IsNumber(v) ? d2i64(v->valuedouble) : dflt;
}
static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = get(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}
static int truthy(const cJSON *o, const char *k)
{
    const cJSON *v = get(o, k);
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v);
    if (cJSON_IsString(v))
        return strcmp(v->valuestring, "true") == 0;
    if (cJSON_IsNumber(v))
        return v->valuedouble != 0;
    return 0;
}
/* A time: seconds relative to now, or "zero". */
static int64_t tns_of(const cJSON *v)
{
    if (cJSON_IsString(v) && strcmp(v->valuestring, "zero") == 0)
        return ZERO_NS;
    if (cJSON_IsNumber(v))
        return (int64_t)llround(v->valuedouble * 1e9);
    return ZERO_NS;
}
static int64_t tns(const cJSON *o, const char *k)
{
    return tns_of(get(o, k));
}

/* ---- HPA rules ------------------------------------------------------------------------------ */

static int parse_public_rules(const cJSON *r, swarm_policy_hpa_rules *out)
{
    memset(out, 0, sizeof *out);
    if (is_null(r))
        return 0;
    const cJSON *w = get(r, "stabilization_window_seconds");
    if (!is_null(w))
        out->window_ns = w->valuedouble == 0 ? -1 : (int64_t)llround(w->valuedouble * 1e9);
    const char *sel = str(r, "select_policy");
    if (sel)
        out->select = strcmp(sel, "Min") == 0        ? SWARM_POLICY_SELECT_MIN
                      : strcmp(sel, "Disabled") == 0 ? SWARM_POLICY_SELECT_DISABLED
                                                     : SWARM_POLICY_SELECT_MAX;
    const cJSON *pols = get(r, "policies");
    if (cJSON_IsArray(pols)) {
        const cJSON *pol;
        cJSON_ArrayForEach(pol, pols)
        {
            if (out->n_policies >= SWARM_POLICY_MAX_RATES)
                return -1;
            swarm_policy_rate *x = &out->policies[out->n_policies++];
            const char *t = str(pol, "type");
            x->type = t && strcmp(t, "Percent") == 0 ? SWARM_RATE_PERCENT : SWARM_RATE_PODS;
            x->value = (int32_t)num(pol, "value", 0);
            x->period_ns = (int64_t)num(pol, "period_seconds", 0) * NS;
        }
    }
    const cJSON *tol = get(r, "tolerance");
    if (cJSON_IsNumber(tol))
        out->tolerance = tol->valuedouble == 0 ? -1 : tol->valuedouble;
    return 0;
}

/* Library defaulting of a rules object (with nulls). */
static int rules_of(const cJSON *r, int up, swarm__hpa_rules *out)
{
    swarm_policy_hpa_rules pub;
    if (parse_public_rules(r, &pub) < 0)
        return -1;
    swarm__hpa_rules_default(out, &pub, up);
    return 0;
}

/* Checks the library's defaulting against effective_behavior (a fully defaulted object, whose
 * null scale-down window the controller fills with 300 s). */
static int check_effective(const cJSON *eff, const swarm__hpa_rules *mine, int up)
{
    if (is_null(eff))
        return 1;
    const cJSON *w = get(eff, "stabilization_window_seconds");
    int64_t want_w = is_null(w) ? (up ? 0 : 300 * NS) : (int64_t)llround(w->valuedouble * 1e9);
    if (want_w != mine->window_ns)
        return fail("defaulted %s window %lld != effective %lld", up ? "up" : "down",
                    (long long)mine->window_ns, (long long)want_w);
    swarm__hpa_rules e;
    swarm_policy_hpa_rules pub;
    parse_public_rules(eff, &pub);
    swarm__hpa_rules_default(&e, &pub, up);
    if (e.select != mine->select || e.n_policies != mine->n_policies ||
        memcmp(e.policies, mine->policies, e.n_policies * sizeof e.policies[0]) != 0)
        return fail("defaulted %s rules differ from effective_behavior", up ? "up" : "down");
    return 1;
}

static uint32_t parse_events(const cJSON *arr, swarm__hpa_event *ev, uint32_t cap)
{
    uint32_t n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        if (n >= cap)
            break;
        ev[n].change = (int32_t)num(e, "replica_change", 0);
        ev[n].outdated = truthy(e, "outdated");
        ev[n].t_ns = tns(e, "t");
        n++;
    }
    return n;
}

static uint32_t parse_recs(const cJSON *arr, swarm__hpa_rec *recs, uint32_t cap)
{
    uint32_t n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        if (n >= cap)
            break;
        recs[n].replicas = (int32_t)num(e, "replicas", 0);
        recs[n].low = recs[n].replicas;
        recs[n].t_ns = tns(e, "t");
        n++;
    }
    return n;
}

static int reason_ok(const cJSON *exp, int reason)
{
    const char *want = str(exp, "limited_reason");
    if (want && strcmp(want, swarm__hpa_reason_name(reason)) != 0)
        return fail("reason %s, want %s", swarm__hpa_reason_name(reason), want);
    return 1;
}

static int run_legacy_limits(const cJSON *c)
{
    const cJSON *cfg = get(c, "config"), *in = get(c, "input"), *exp = get(c, "expected");
    int reason;
    int32_t r = swarm__hpa_legacy_limits(
        (int32_t)num(in, "current_replicas", 0), (int32_t)num(in, "desired_replicas", 0),
        (int32_t)num(cfg, "min_replicas", 0), (int32_t)num(cfg, "max_replicas", 0),
        num(cfg, "scale_up_limit_factor", 2.0), num(cfg, "scale_up_limit_minimum", 4.0), &reason);
    if (r != (int32_t)num(exp, "replicas", -1))
        return fail("replicas %d, want %d", r, (int)num(exp, "replicas", -1));
    return reason_ok(exp, reason);
}

static int run_legacy_stab(const cJSON *c)
{
    const cJSON *cfg = get(c, "config"), *in = get(c, "input"), *exp = get(c, "expected");
    swarm__hpa_rec recs[MAX_ITEMS];
    uint32_t n = parse_recs(get(in, "recommendations"), recs, MAX_ITEMS - 1);
    int32_t r = swarm__hpa_stabilize_legacy(
        recs, &n, n + 1, (int32_t)num(in, "prenormalized_desired_replicas", 0), 0,
        (int64_t)num(cfg, "downscale_stabilization_window_seconds", 300) * NS, 0);
    if (r != (int32_t)num(exp, "replicas", -1))
        return fail("replicas %d, want %d", r, (int)num(exp, "replicas", -1));
    if (get(exp, "recommendations_len") && n != (uint32_t)num(exp, "recommendations_len", -1))
        return fail("recommendations_len %u, want %d", n, (int)num(exp, "recommendations_len", -1));
    return 1;
}

static int run_behavior_stab(const cJSON *c)
{
    const cJSON *cfg = get(c, "config"), *in = get(c, "input"), *exp = get(c, "expected");
    swarm__hpa_rec recs[MAX_ITEMS];
    uint32_t n = parse_recs(get(in, "recommendations"), recs, MAX_ITEMS - 1);
    int dir;
    int32_t r = swarm__hpa_stabilize(
        recs, &n, n + 1, (int32_t)num(in, "current_replicas", 0),
        (int32_t)num(in, "prenormalized_desired_replicas", 0), 0,
        (int64_t)llround(num(cfg, "scale_up_stabilization_window_seconds", 0) * 1e9),
        (int64_t)llround(num(cfg, "scale_down_stabilization_window_seconds", 0) * 1e9), 0, &dir);
    if (r != (int32_t)num(exp, "replicas", -1))
        return fail("replicas %d, want %d", r, (int)num(exp, "replicas", -1));
    const cJSON *after = get(exp, "recommendations_after");
    if (cJSON_IsArray(after)) {
        if ((uint32_t)cJSON_GetArraySize(after) != n)
            return fail("recommendations_after has %u entries, want %d", n,
                        cJSON_GetArraySize(after));
        uint32_t i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, after)
        {
            int want = cJSON_IsNumber(e) ? (int)e->valuedouble : (int)num(e, "replicas", -1);
            if (recs[i].replicas != want)
                return fail("recommendations_after[%u] = %d, want %d", i, recs[i].replicas, want);
            i++;
        }
    }
    return 1;
}

static int run_rate_limit(const cJSON *c)
{
    const cJSON *cfg = get(c, "config"), *in = get(c, "input"), *exp = get(c, "expected");
    const cJSON *beh = get(cfg, "behavior"), *eff = get(cfg, "effective_behavior");
    swarm__hpa_rules up, down;
    if (rules_of(get(beh, "scale_up"), 1, &up) < 0 ||
        rules_of(get(beh, "scale_down"), 0, &down) < 0)
        return fail("too many policies for SWARM_POLICY_MAX_RATES");
    if (!check_effective(get(eff, "scale_up"), &up, 1) ||
        !check_effective(get(eff, "scale_down"), &down, 0))
        return 0;
    swarm__hpa_event ue[MAX_ITEMS], de[MAX_ITEMS];
    uint32_t nu = parse_events(get(in, "scale_up_events"), ue, MAX_ITEMS);
    uint32_t nd = parse_events(get(in, "scale_down_events"), de, MAX_ITEMS);
    int reason;
    int32_t r = swarm__hpa_behavior_rate(
        (int32_t)num(in, "current_replicas", 0), (int32_t)num(in, "desired_replicas", 0),
        (int32_t)num(cfg, "min_replicas", 1), (int32_t)num(cfg, "max_replicas", 0), ue, nu, de, nd,
        &up, &down, 0, &reason);
    if (r != (int32_t)num(exp, "replicas", -1))
        return fail("replicas %d, want %d", r, (int)num(exp, "replicas", -1));
    return reason_ok(exp, reason);
}

static int run_limit(const cJSON *c, int up)
{
    const cJSON *cfg = get(c, "config"), *in = get(c, "input"), *exp = get(c, "expected");
    swarm__hpa_rules rules;
    if (rules_of(get(cfg, "rules"), up, &rules) < 0)
        return fail("too many policies");
    swarm__hpa_event ue[MAX_ITEMS], de[MAX_ITEMS];
    uint32_t nu = parse_events(get(in, "scale_up_events"), ue, MAX_ITEMS);
    uint32_t nd = parse_events(get(in, "scale_down_events"), de, MAX_ITEMS);
    int32_t cur = (int32_t)num(in, "current_replicas", 0);
    int32_t r = up ? swarm__hpa_scale_up_limit(cur, ue, nu, de, nd, &rules, 0)
                   : swarm__hpa_scale_down_limit(cur, ue, nu, de, nd, &rules, 0);
    if (r != (int32_t)num(exp, "limit", -1))
        return fail("limit %d, want %d", r, (int)num(exp, "limit", -1));
    return 1;
}

static int run_event_store(const cJSON *c)
{
    const cJSON *cfg = get(c, "config"), *in = get(c, "input"), *exp = get(c, "expected");
    const cJSON *rj = get(cfg, "scaling_rules");
    if (!rj)
        rj = get(cfg, "rules");
    for (int up = 1; up >= 0; up--) {
        swarm__hpa_event ev[MAX_ITEMS];
        uint32_t n = parse_events(get(in, "previous_events"), ev, MAX_ITEMS - 1);
        int32_t change =
            swarm__hpa_change_in_period(ev, n, 0, (int64_t)num(in, "sum_period_seconds", 60) * NS);
        if (get(exp, "replicas_change_in_period") &&
            change != (int32_t)num(exp, "replicas_change_in_period", -1))
            return fail("replicas_change_in_period %d, want %d", change,
                        (int)num(exp, "replicas_change_in_period", -1));
        /* behavior == nil: the controller stores nothing. */
        if (!is_null(rj)) {
            swarm__hpa_rules rules;
            if (rules_of(rj, up, &rules) < 0)
                return fail("too many policies");
            swarm__hpa_store_event(ev, &n, n + 1, (int32_t)num(in, "replica_change", 0), 0,
                                   swarm__hpa_longest_period(&rules), 0);
        }
        const cJSON *after = get(exp, "events_after");
        if (cJSON_IsArray(after)) {
            if ((uint32_t)cJSON_GetArraySize(after) != n)
                return fail("%s events: %u entries, want %d", up ? "up" : "down", n,
                            cJSON_GetArraySize(after));
            uint32_t i = 0;
            const cJSON *e;
            cJSON_ArrayForEach(e, after)
            {
                if (ev[i].change != (int32_t)num(e, "replica_change", -1) ||
                    (int)ev[i].outdated != truthy(e, "outdated"))
                    return fail("%s events[%u] = {%d, %d}, want {%d, %d}", up ? "up" : "down", i,
                                ev[i].change, ev[i].outdated, (int)num(e, "replica_change", -1),
                                truthy(e, "outdated"));
                i++;
            }
        }
    }
    return 1;
}

/* ---- replica calculator ------------------------------------------------------------------- */

/*
 * libswarm's policy observes replica counts, not Kubernetes pods: a host reports how many of its
 * replicas are ready and how many are starting. The runner plays that host for the vectors' pod
 * lists, with upstream's groupPods rules for a non-CPU metric (deleted or Failed: ignored;
 * Pending: unready; no sample: missing; else ready), and hands the grouped counts to the
 * library's calculator, the one swarm_policy_decide() calls.
 */
enum { POD_READY, POD_UNREADY, POD_MISSING, POD_IGNORED };

typedef struct pod {
    const char *name;
    int group_base;    /* POD_IGNORED / POD_UNREADY, or POD_READY before the sample is known */
    int running_ready; /* phase Running with Ready=True (Object/External Value readiness) */
    int has_sample;
    int64_t sample_milli;
} pod;

typedef struct pods_ctx {
    pod pods[MAX_ITEMS];
    uint32_t n_pods;
    int64_t extra_total; /* samples that match no pod (upstream keeps them in the set) */
    int64_t n_extra;
} pods_ctx;

static int64_t sat_add(int64_t a, int64_t b)
{
    int64_t r;
    return __builtin_add_overflow(a, b, &r) ? (b > 0 ? INT64_MAX : INT64_MIN) : r;
}

static int find_pod(pods_ctx *pc, const char *name)
{
    for (uint32_t i = 0; i < pc->n_pods; i++)
        if (name && pc->pods[i].name && strcmp(pc->pods[i].name, name) == 0)
            return (int)i;
    return -1;
}

static int parse_pods(const cJSON *in, pods_ctx *pc)
{
    memset(pc, 0, sizeof *pc);
    if (get(in, "resource_metrics"))
        return fail("not expressible: resource metrics (pod CPU requests are not part of the "
                    "module)");
    const cJSON *p;
    cJSON_ArrayForEach(p, get(in, "pods"))
    {
        if (pc->n_pods >= MAX_ITEMS)
            return fail("too many pods");
        pod *x = &pc->pods[pc->n_pods++];
        x->name = str(p, "name");
        const char *phase = str(p, "phase");
        const char *ready = str(get(p, "ready_condition"), "status");
        if (truthy(p, "deleted") || (phase && strcmp(phase, "Failed") == 0))
            x->group_base = POD_IGNORED;
        else if (phase && strcmp(phase, "Pending") == 0)
            x->group_base = POD_UNREADY;
        else
            x->group_base = POD_READY;
        x->running_ready =
            (!phase || strcmp(phase, "Running") == 0) && ready && strcmp(ready, "True") == 0;
    }
    static const char *const keys[2] = {"pod_metrics", "metrics"};
    for (int k = 0; k < 2; k++) {
        const cJSON *m;
        cJSON_ArrayForEach(m, get(in, keys[k]))
        {
            int64_t v = get(m, "value_milli") ? i64(m, "value_milli", 0) : i64(m, "value", 0);
            int i = find_pod(pc, str(m, "pod"));
            if (i < 0) {
                pc->extra_total = sat_add(pc->extra_total, v);
                pc->n_extra++;
                continue;
            }
            pc->pods[i].has_sample = 1;
            pc->pods[i].sample_milli = v;
        }
    }
    return 1;
}

static int run_replica_calc(const cJSON *c)
{
    const cJSON *cfg = get(c, "config"), *in = get(c, "input"), *exp = get(c, "expected");
    const cJSON *metric = get(in, "metric"), *target = get(metric, "target");
    const char *mt = str(metric, "type"), *tt = str(target, "type");
    if (!mt || !tt)
        return fail("metric or target type missing");
    if (strcmp(mt, "Resource") == 0 || strcmp(mt, "ContainerResource") == 0)
        return fail("not expressible: resource metrics (pod CPU requests are not part of the "
                    "module)");
    static pods_ctx pc;
    if (!parse_pods(in, &pc))
        return 0;
    swarm__hpa_calc_in ci;
    memset(&ci, 0, sizeof ci);
    ci.current = (int32_t)num(in, "current_replicas", 0);
    const cJSON *tol = get(cfg, "tolerance");
    ci.tol_up = num(tol, "scale_up", 0.1);
    ci.tol_down = num(tol, "scale_down", 0.1);
    int avg = strcmp(tt, "AverageValue") == 0;
    ci.target_milli = avg ? i64(target, "average_value_milli", 0) : i64(target, "value_milli", 0);
    if (strcmp(mt, "Pods") == 0) {
        ci.kind = SWARM__CALC_PODS;
        for (uint32_t i = 0; i < pc.n_pods; i++) {
            const pod *x = &pc.pods[i];
            if (x->group_base == POD_IGNORED)
                continue;
            if (x->group_base == POD_UNREADY) {
                ci.n_unready++;
            } else if (!x->has_sample) {
                ci.n_missing++;
            } else {
                ci.n_ready++;
                ci.n_samples++;
                ci.sample_total_milli = sat_add(ci.sample_total_milli, x->sample_milli);
            }
        }
        ci.n_samples += pc.n_extra;
        ci.sample_total_milli = sat_add(ci.sample_total_milli, pc.extra_total);
    } else if (strcmp(mt, "Object") == 0 || strcmp(mt, "External") == 0) {
        int ext = strcmp(mt, "External") == 0;
        ci.kind = ext ? (avg ? SWARM__CALC_EXTERNAL_AVERAGE : SWARM__CALC_EXTERNAL_VALUE)
                      : (avg ? SWARM__CALC_OBJECT_AVERAGE : SWARM__CALC_OBJECT_VALUE);
        if (ext) {
            const cJSON *v;
            cJSON_ArrayForEach(v, get(in, "external_values_milli"))
            {
                if (cJSON_IsNumber(v))
                    ci.usage_milli = sat_add(ci.usage_milli, d2i64(v->valuedouble));
            }
        } else {
            ci.usage_milli = i64(in, "object_value_milli", 0);
        }
        ci.n_pods = pc.n_pods;
        for (uint32_t i = 0; i < pc.n_pods; i++)
            ci.n_ready += pc.pods[i].running_ready;
    } else {
        return fail("not expressible: metric type %s", mt);
    }
    swarm__hpa_calc_out co;
    int rc = swarm__hpa_replica_calc(&ci, &co);
    const char *want_err = str(exp, "error");
    if (want_err) {
        if (rc >= 0)
            return fail("expected error containing \"%s\", got replicas %d", want_err, co.replicas);
        if (!strstr(co.error, want_err))
            return fail("error \"%s\" lacks \"%s\"", co.error, want_err);
        return 1;
    }
    if (rc < 0)
        return fail("unexpected error: %s", co.error);
    if (get(exp, "replicas") && co.replicas != (int32_t)num(exp, "replicas", -1))
        return fail("replicas %d, want %d", co.replicas, (int)num(exp, "replicas", -1));
    if (get(exp, "usage_milli") && co.usage_milli != i64(exp, "usage_milli", -1))
        return fail("usage %lld, want %lld", (long long)co.usage_milli,
                    (long long)i64(exp, "usage_milli", -1));
    if (get(exp, "utilization") || get(exp, "raw_average_value_milli"))
        return fail("not expressible: resource utilization (not part of the module)");
    return 1;
}

/* ---- KPA ---------------------------------------------------------------------------------- */

static void kpa_spec_of(const cJSON *s, swarm__kpa_spec *k)
{
    memset(k, 0, sizeof *k);
    k->target_value = num(s, "target_value", 0);
    k->total_value = num(s, "total_value", 0);
    k->target_burst_capacity = num(s, "target_burst_capacity", 0);
    k->panic_threshold = num(s, "panic_threshold", 0);
    k->max_scale_up_rate = num(s, "max_scale_up_rate", 0);
    k->max_scale_down_rate = num(s, "max_scale_down_rate", 0);
    k->stable_window_ns = (int64_t)llround(num(s, "stable_window_seconds", 0) * 1e9);
    k->scale_down_delay_ns = (int64_t)llround(num(s, "scale_down_delay_seconds", 0) * 1e9);
    k->activation_scale = (int32_t)num(s, "activation_scale", 0);
    k->reachable = truthy(s, "reachable");
}

/* Ready count for a step or check; returns 0 when the pod counter fails (not NotFound). */
static int ready_of(const cJSON *o, const char *k, const char *errk, int32_t *ready)
{
    const char *err = str(o, errk);
    *ready = (int32_t)num(o, k, 0);
    if (err) {
        /* NotFound presumes 0 ready pods; any other error invalidates the step. Accept the
         * spellings "NotFound", "not_found", "not found". */
        char norm[32];
        size_t len = 0;
        for (const char *c = err; *c && len + 1 < sizeof norm; c++)
            if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z'))
                norm[len++] = (char)(*c | 0x20);
        norm[len] = '\0';
        *ready = 0;
        return strcmp(norm, "notfound") == 0;
    }
    return 1;
}

static int run_kpa_new(const cJSON *c)
{
    const cJSON *in = get(c, "input"), *exp = get(c, "expected");
    const cJSON *checks = get(in, "checks"), *want = get(exp, "checks");
    int n = cJSON_GetArraySize(checks);
    for (int i = 0; i < n; i++) {
        const cJSON *ck = cJSON_GetArrayItem(checks, i), *w = cJSON_GetArrayItem(want, i);
        int32_t ready;
        ready_of(ck, "ready_pods", "ready_pods_error", &ready);
        swarm__kpa_state st;
        swarm__kpa_init(&st, KPA_BASE_NS, ready);
        if (get(w, "max_panic_pods") && st.max_panic_pods != (int32_t)num(w, "max_panic_pods", -1))
            return fail("check %d: max_panic_pods %d, want %d", i, st.max_panic_pods,
                        (int)num(w, "max_panic_pods", -1));
        if (get(w, "in_panic") && (int)st.in_panic != truthy(w, "in_panic"))
            return fail("check %d: in_panic %u", i, st.in_panic);
    }
    return 1;
}

static int run_kpa(const cJSON *c)
{
    const cJSON *cfg = get(c, "config"), *in = get(c, "input");
    swarm__kpa_spec spec;
    kpa_spec_of(get(cfg, "decider_spec"), &spec);
    int32_t init_ready;
    ready_of(cfg, "initial_ready_pods", "initial_ready_pods_error", &init_ready);
    swarm__kpa_state st;
    swarm__kpa_init(&st, KPA_BASE_NS, init_ready);
    swarm__kpa_maxwin win;
    memset(&win, 0, sizeof win);
    static swarm__kpa_maxent ents[4096];
    if (truthy(cfg, "use_scale_down_delay_window") && spec.scale_down_delay_ns > 0) {
        int64_t gran = (int64_t)llround(num(cfg, "tick_interval_seconds", 2) * 1e9);
        win.gran_ns = gran;
        win.n_buckets = (uint32_t)((spec.scale_down_delay_ns + gran - 1) / gran);
        if (win.n_buckets > 4096)
            return fail("delay window too long for the runner");
    }
    int i = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, get(in, "steps"))
    {
        const cJSON *e = get(s, "expected");
        if (get(s, "spec_update"))
            kpa_spec_of(get(s, "spec_update"), &spec);
        const cJSON *ov = get(s, "state_override");
        if (ov) {
            const cJSON *pt = get(ov, "panic_time");
            if (pt) {
                st.in_panic = !is_null(pt);
                st.panic_time_ns = st.in_panic ? KPA_BASE_NS + tns_of(pt) : 0;
            }
            if (get(ov, "max_panic_pods"))
                st.max_panic_pods = (int32_t)num(ov, "max_panic_pods", 0);
        }
        int64_t now = KPA_BASE_NS + tns(s, "t");
        int32_t ready;
        int ok = ready_of(s, "ready_pods", "ready_pods_error", &ready);
        int32_t desired = 0, ebc = 0;
        int valid = 0;
        if (ok && is_null(get(s, "metric_error"))) {
            swarm__kpa_result r;
            swarm__kpa_scale(&st, &spec, now, ready, ready, num(s, "stable_value", 0),
                             num(s, "panic_value", 0), win.n_buckets ? &win : NULL, ents, &r);
            desired = r.desired;
            ebc = r.ebc;
            valid = (int)r.valid;
        }
        if (get(e, "desired_pod_count") && desired != (int32_t)num(e, "desired_pod_count", -1))
            return fail("step %d: desired %d, want %d", i, desired,
                        (int)num(e, "desired_pod_count", -1));
        if (get(e, "excess_burst_capacity") &&
            llabs((long long)ebc - (long long)num(e, "excess_burst_capacity", 0)) > 1)
            return fail("step %d: ebc %d, want %d", i, ebc,
                        (int)num(e, "excess_burst_capacity", 0));
        if (get(e, "scale_valid") && valid != truthy(e, "scale_valid"))
            return fail("step %d: valid %d", i, valid);
        const cJSON *pt = get(e, "panic_time");
        if (pt) {
            if (is_null(pt) && st.in_panic)
                return fail("step %d: still panicking", i);
            if (!is_null(pt) && (!st.in_panic || st.panic_time_ns != KPA_BASE_NS + tns_of(pt)))
                return fail("step %d: panic %u at %lld, want at %g s", i, st.in_panic,
                            (long long)(st.panic_time_ns - KPA_BASE_NS), pt->valuedouble);
        }
        i++;
    }
    return 1;
}

/* ---- KEDA --------------------------------------------------------------------------------- */

static const char *cond_status(uint32_t s)
{
    return s == SWARM__KEDA_COND_TRUE ? "True" : s == SWARM__KEDA_COND_FALSE ? "False" : "Unknown";
}

static int cond_ok(const char *which, const cJSON *want, const swarm__keda_cond *got)
{
    if (is_null(want))
        return 1;
    const char *status = got->set ? cond_status(got->status) : "Unknown";
    const char *ws = str(want, "status"), *wn = str(want, "status_not");
    const char *wr = str(want, "reason"), *wm = str(want, "message");
    if (ws && strcmp(ws, status) != 0)
        return fail("%s condition %s, want %s", which, status, ws);
    if (wn && strcmp(wn, status) == 0)
        return fail("%s condition is %s", which, status);
    if (wr && (!got->set || strcmp(wr, got->reason) != 0))
        return fail("%s reason %s, want %s", which, got->set ? got->reason : "-", wr);
    if (wm && (!got->set || strcmp(wm, got->message) != 0))
        return fail("%s message \"%s\", want \"%s\"", which, got->set ? got->message : "-", wm);
    return 1;
}

static int run_keda(const cJSON *c)
{
    const cJSON *cfg = get(c, "config"), *in = get(c, "input"), *exp = get(c, "expected");
    const cJSON *ann = get(cfg, "annotations");
    swarm__keda_in ki;
    memset(&ki, 0, sizeof ki);
    ki.min = is_null(get(cfg, "min_replica_count")) ? 0 : (int32_t)num(cfg, "min_replica_count", 0);
    ki.idle =
        is_null(get(cfg, "idle_replica_count")) ? -1 : (int32_t)num(cfg, "idle_replica_count", 0);
    ki.has_fallback = !is_null(get(cfg, "fallback_replicas"));
    ki.fallback_replicas = (int32_t)num(cfg, "fallback_replicas", 0);
    ki.cooldown_ns = is_null(get(cfg, "cooldown_period_seconds"))
                         ? 300 * NS
                         : (int64_t)llround(num(cfg, "cooldown_period_seconds", 0) * 1e9);
    ki.initial_cooldown_ns =
        is_null(get(cfg, "initial_cooldown_period_seconds"))
            ? 0
            : (int64_t)llround(num(cfg, "initial_cooldown_period_seconds", 0) * 1e9);
    ki.paused = truthy(ann, "autoscaling.keda.sh/paused") ||
                get(ann, "autoscaling.keda.sh/paused-replicas") != NULL;
    ki.paused_scale_in = truthy(ann, "autoscaling.keda.sh/paused-scale-in");
    ki.paused_scale_out = truthy(ann, "autoscaling.keda.sh/paused-scale-out");
    ki.force_activation = truthy(ann, "autoscaling.keda.sh/force-activation");
    ki.current = (int32_t)num(in, "current_replicas", 0);
    ki.is_active = truthy(in, "is_active");
    ki.is_error = truthy(in, "is_error");
    const cJSON *la = get(in, "last_active_time");
    ki.has_last_active = !is_null(la);
    ki.last_active_ns = ki.has_last_active ? tns_of(la) : 0;
    ki.creation_ns = tns(in, "creation_time");
    ki.now_ns = 0;
    swarm__keda_out ko;
    swarm__keda_request_scale(&ki, &ko);
    if (get(exp, "replicas") && ko.replicas != (int32_t)num(exp, "replicas", -1))
        return fail("replicas %d, want %d", ko.replicas, (int)num(exp, "replicas", -1));
    if (get(exp, "scale_updated") && (int)ko.scale_updated != truthy(exp, "scale_updated"))
        return fail("scale_updated %u", ko.scale_updated);
    if (get(exp, "last_active_time_set") &&
        (int)ko.last_active_set != truthy(exp, "last_active_time_set"))
        return fail("last_active_time_set %u", ko.last_active_set);
    if (!cond_ok("active", get(exp, "active_condition"), &ko.active) ||
        !cond_ok("ready", get(exp, "ready_condition"), &ko.ready) ||
        !cond_ok("paused", get(exp, "paused_condition"), &ko.paused))
        return 0;
    const char *ev = str(exp, "event");
    if (ev) {
        /* The library reports which event fired and the counts; the runner formats upstream's
         * message from them (names and trigger list are the vector's own input). */
        char buf[512] = "";
        const char *kind = str(in, "scale_target_kind");
        if (ko.scaled_from_zero && ko.scale_updated) {
            int n = snprintf(buf, sizeof buf,
                             "Normal KEDAScaleTargetActivated Scaled %s %s/%s "
                             "from %d to %d, ",
                             nz(kind), nz(str(in, "namespace")), nz(str(in, "name")), ki.current,
                             ko.replicas);
            size_t at = n > 0 ? (size_t)n : 0;
            if (ki.force_activation) {
                snprintf(buf + at, sizeof buf - at, "caused by forced activation annotation");
            } else {
                n = snprintf(buf + at, sizeof buf - at, "triggered by ");
                at += n > 0 ? (size_t)n : 0;
                int first = 1;
                const cJSON *t;
                cJSON_ArrayForEach(t, get(in, "active_triggers"))
                {
                    if (cJSON_IsString(t) && at < sizeof buf) {
                        n = snprintf(buf + at, sizeof buf - at, "%s%s", first ? "" : ";",
                                     t->valuestring);
                        at += n > 0 ? (size_t)n : 0;
                        first = 0;
                    }
                }
            }
        } else if (ko.scaled_to_idle && ko.scale_updated) {
            snprintf(buf, sizeof buf,
                     "Normal KEDAScaleTargetDeactivated Deactivated %s %s/%s "
                     "from %d to %d",
                     nz(kind), nz(str(in, "namespace")), nz(str(in, "name")), ki.current,
                     ko.replicas);
        }
        if (strcmp(buf, ev) != 0)
            return fail("event \"%s\", want \"%s\"", buf, ev);
    }
    return 1;
}

/* ---- driver ------------------------------------------------------------------------------- */

static int run_case(const cJSON *c)
{
    const char *kind = str(c, "kind");
    why[0] = '\0';
    if (!kind)
        return fail("no kind");
    if (strcmp(kind, "legacy_normalize_limits") == 0)
        return run_legacy_limits(c);
    if (strcmp(kind, "legacy_stabilization") == 0)
        return run_legacy_stab(c);
    if (strcmp(kind, "behavior_stabilization") == 0)
        return run_behavior_stab(c);
    if (strcmp(kind, "behavior_rate_limit") == 0)
        return run_rate_limit(c);
    if (strcmp(kind, "scale_up_limit") == 0)
        return run_limit(c, 1);
    if (strcmp(kind, "scale_down_limit") == 0)
        return run_limit(c, 0);
    if (strcmp(kind, "scale_event_store") == 0)
        return run_event_store(c);
    if (strcmp(kind, "replica_calc") == 0)
        return run_replica_calc(c);
    if (strcmp(kind, "group_pods") == 0)
        return fail("not expressible: the policy observes replica counts, not pods (the host "
                    "groups them; see run_replica_calc)");
    if (strcmp(kind, "kpa_autoscaler") == 0)
        return run_kpa(c);
    if (strcmp(kind, "kpa_new") == 0)
        return run_kpa_new(c);
    if (strcmp(kind, "keda_request_scale") == 0)
        return run_keda(c);
    return fail("not expressible: unknown kind \"%s\"", kind);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf)
        buf[n] = '\0';
    fclose(f);
    return buf;
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0, files = 0;
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "-v") == 0) {
            verbose = 1;
            continue;
        }
        files++;
        char *text = slurp(argv[a]);
        cJSON *root = text ? cJSON_Parse(text) : NULL;
        free(text);
        if (!cJSON_IsArray(root)) {
            fprintf(stderr, "%s: cannot read a JSON array of cases\n", argv[a]);
            failed++;
            cJSON_Delete(root);
            continue;
        }
        int fp = 0, ff = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, root)
        {
            const char *id = str(c, "id");
            if (run_case(c)) {
                fp++;
                if (verbose)
                    printf("ok   %s %s\n", id ? id : "?", nz(str(c, "kind")));
            } else {
                ff++;
                printf("FAIL %s %s: %s\n", id ? id : "?", nz(str(c, "kind")), why);
            }
        }
        printf("%s: %d passed, %d failed\n", argv[a], fp, ff);
        passed += fp;
        failed += ff;
        cJSON_Delete(root);
    }
    if (files == 0) {
        fprintf(stderr, "usage: %s [-v] vectors.json...\n", argv[0]);
        return 2;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
