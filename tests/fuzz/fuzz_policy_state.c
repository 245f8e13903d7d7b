/* SPDX-License-Identifier: MIT */
/*
 * Fuzz harness for the policy's exported state: import-then-decide with the round-trip
 * invariant. From the input it builds a configuration, runs a few decisions to get a real
 * export, patches bytes of it (or of a version-1/2 style header), imports the result, then
 * decides on hostile times (backwards, far jumps, the ends of the accepted range) and values.
 * Checks, besides no crash or UB (run under ASan/UBSan):
 *   - import returns 0 or a documented error; on error the state is unchanged;
 *   - every state import() accepts, export() reproduces byte for byte;
 *   - every state export() writes, import() accepts (after every decision);
 *   - a policy restored from an export decides exactly like the original while the clock does
 *     not run behind the exported last decision;
 *   - every decision is within [min, max] or one of the documented exceptions.
 *
 * libFuzzer: meson -Dfuzzing=true with clang. Without libFuzzer, main() replays the files (or
 * directories' files) given as arguments (tests/fuzz/corpus_policy_state), then a built-in
 * deterministic random sweep.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <swarm/swarm.h>

#include "replay_main.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define S        INT64_C(1000000000)
#define TIME_LIM (INT64_C(1) << 62)

typedef struct rd {
    const uint8_t *p;
    size_t n, off;
} rd;

static uint8_t u8(rd *r)
{
    return r->off < r->n ? r->p[r->off++] : 0;
}
static uint32_t u32(rd *r)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)u8(r) << (8 * i);
    return v;
}

static double dbl(rd *r)
{
    uint8_t b = u8(r);
    switch (b) {
    case 0xff:
        return NAN;
    case 0xfe:
        return INFINITY;
    case 0xfd:
        return 1.7976931348623157e308; /* DBL_MAX */
    case 0xfc:
        return -1.0;
    case 0xfb:
        return 1e300;
    case 0xfa:
        return 0.0;
    default:
        return (double)b * (1.0 + (b & 3) * 0.37);
    }
}

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_policy_state: check failed: %s (line %d)\n", #c, __LINE__);      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void check_bounds(const swarm_policy_opts *o, const swarm_policy_obs *ob,
                         const swarm_policy_decision *d)
{
    int32_t min = o->min_replicas, max = o->max_replicas;
    if (o->mode == SWARM_POLICY_HPA && min == 0)
        min = 1;
    if (max == 0)
        max = o->mode == SWARM_POLICY_KPA ? INT32_MAX : 100;
    int32_t r = d->replicas, cur = ob->current_replicas;
    CHECK(r >= 0);
    CHECK(d->retire == (r < cur ? cur - r : 0));
    if (d->flags & (SWARM_DECISION_PAUSED | SWARM_DECISION_HOLD))
        return;
    if (r == 0 && (o->mode != SWARM_POLICY_HPA ? o->min_replicas == 0 : cur == 0))
        return;
    CHECK(r >= min && r <= max);
}

/* A time step: mostly forward, sometimes backwards, far, or at the ends of the range. */
static int64_t next_now(rd *r, int64_t now)
{
    /* The harness's own clock stays within +-2^63 / 2; an INT64_MIN step is rejected. */
    if (now < INT64_MIN / 2 || now > INT64_MAX / 2)
        now = 0;
    uint8_t t = u8(r);
    switch (t) {
    case 0xff:
        return now - 7 * S;
    case 0xfe:
        return now + 86400 * S;
    case 0xfd:
        return TIME_LIM;
    case 0xfc:
        return -TIME_LIM;
    case 0xfb:
        return INT64_MIN; /* rejected */
    case 0xfa:
        return (int64_t)u32(r) * 1000; /* the clock restarts (a reboot) */
    default:
        return now + (int64_t)t * 250000000;
    }
}

static void obs_from(rd *r, swarm_policy_obs *ob, int32_t cur)
{
    memset(ob, 0, sizeof *ob);
    ob->size = sizeof *ob;
    uint8_t s = u8(r);
    if (s == 0xfd)
        cur = INT32_MAX;
    ob->current_replicas = cur;
    ob->ready_replicas = cur > 0 ? cur - (int32_t)(u8(r) % ((uint32_t)cur % 251u + 1u)) : 0;
    ob->starting_replicas = cur - ob->ready_replicas;
    ob->n_metrics = 1 + u8(r) % 2;
    for (uint32_t i = 0; i < ob->n_metrics; i++) {
        swarm_policy_metric *m = &ob->metrics[i];
        uint8_t k = u8(r);
        m->kind = 1 + k % 3;
        m->failed = (k >> 3) % 9 == 0;
        m->value = dbl(r);
        m->target = 1 + u8(r) % 20;
        m->activation = (k & 0x20) ? dbl(r) : 0;
    }
}

static unsigned char *export_all(swarm_policy *p, size_t n)
{
    unsigned char *b = malloc(n);
    CHECK(b != NULL);
    size_t w = 0;
    CHECK(swarm_policy_export_state(p, b, n, &w) == 0 && w == n);
    return b;
}

/* Import @b into a fresh policy: it must be accepted and re-export the same bytes. */
static swarm_policy *reimport(const swarm_policy_opts *o, const unsigned char *b, size_t n)
{
    swarm_policy *q = NULL;
    CHECK(swarm_policy_create(&q, o) == 0);
    CHECK(swarm_policy_import_state(q, b, n) == 0);
    unsigned char *again = export_all(q, n);
    CHECK(memcmp(again, b, n) == 0);
    free(again);
    return q;
}

static void run(const uint8_t *data, size_t size)
{
    rd r = {data, size, 0};
    swarm_policy_opts o;
    swarm_policy_opts_init(&o);
    o.mode = 1 + u8(&r) % 3;
    uint8_t f = u8(&r);
    o.min_replicas = (int32_t)(u8(&r) % 4);
    o.max_replicas = (int32_t)(u8(&r) % 64);
    o.history_cap = 1 + u8(&r) % 8;
    o.disable = (f & 1) ? SWARM_POLICY_STRICT_UPSTREAM : 0;
    o.hpa_path = (f >> 1) % 3;
    if (f & 0x08)
        o.scale_down.window_ns = (int64_t)(1 + u8(&r) % 60) * S;
    if (f & 0x10)
        o.scale_up.window_ns = (int64_t)(u8(&r) % 30) * S;
    o.cooldown_ns = (int64_t)(u8(&r) % 40) * S;
    o.fallback_failures = u8(&r) % 3;
    o.fallback_replicas = u8(&r) % 5;
    o.stable_window_ns = (int64_t)(6 + u8(&r) % 20) * S;
    o.scale_down_delay_ns = (f & 0x20) ? (int64_t)(u8(&r) % 12) * S : 0;
    o.zero_grace_ns = (f & 0x40) ? (int64_t)(1 + u8(&r) % 30) * S : 0;

    swarm_policy *p = NULL;
    if (swarm_policy_create(&p, &o) < 0)
        return;
    size_t n = swarm_policy_state_size(p);

    /* A real history first. */
    int64_t now = (int64_t)u32(&r) * 1000 - (f & 0x80 ? TIME_LIM / 2 : 0);
    int32_t cur = u8(&r) % 8;
    int steps = u8(&r) % 24;
    for (int i = 0; i < steps && r.off < r.n; i++) {
        swarm_policy_obs ob;
        obs_from(&r, &ob, cur);
        now = next_now(&r, now);
        swarm_policy_decision d;
        memset(&d, 0, sizeof d);
        d.size = sizeof d;
        int rc = swarm_policy_decide(p, now, &ob, &d);
        CHECK(rc == 0 || rc == SWARM_EINVAL);
        if (rc == 0)
            cur = d.replicas < 1000 ? d.replicas : 1000;
    }
    unsigned char *st = export_all(p, n);
    swarm_policy_destroy(reimport(&o, st, n));

    /* Patch it: (offset, byte) pairs, sometimes a whole 8-byte value. */
    unsigned char *mut = malloc(n);
    CHECK(mut != NULL);
    memcpy(mut, st, n);
    int patches = u8(&r) % 6;
    for (int i = 0; i < patches; i++) {
        uint32_t at = u32(&r) % (uint32_t)n;
        uint8_t how = u8(&r);
        if (how < 0x40 && at + 8 <= n) {
            int64_t v = how & 1 ? TIME_LIM : -TIME_LIM - (how & 2 ? 2 * S : 0);
            memcpy(mut + at, &v, 8);
        } else {
            mut[at] = u8(&r);
        }
    }
    swarm_policy *q = NULL;
    CHECK(swarm_policy_create(&q, &o) == 0);
    unsigned char *before = export_all(q, n);
    int rc = swarm_policy_import_state(q, mut, n);
    CHECK(rc == 0 || rc == SWARM_EINVAL || rc == SWARM_ESTATE || rc == SWARM_ENOTSUP);
    unsigned char *after = export_all(q, n);
    if (rc != 0) {
        CHECK(memcmp(before, after, n) == 0); /* unchanged on error */
    } else {
        CHECK(memcmp(mut, after, n) == 0); /* import accepted => export reproduces */
    }
    free(before);
    free(after);

    /* Decide on the imported state (or the untouched one), re-exporting after each decision;
     * a copy restored from each export must agree while the clock is not behind it. */
    for (int i = 0; i < 24 && r.off < r.n; i++) {
        swarm_policy_obs ob;
        obs_from(&r, &ob, cur);
        now = next_now(&r, now);
        swarm_policy_decision d, dc;
        memset(&d, 0, sizeof d);
        d.size = sizeof d;
        dc = d;
        unsigned char *e = export_all(q, n);
        swarm_policy *c = reimport(&o, e, n);
        free(e);
        int rq = swarm_policy_decide(q, now, &ob, &d);
        int rcc = swarm_policy_decide(c, now, &ob, &dc);
        CHECK(rq == 0 || rq == SWARM_EINVAL);
        CHECK(rcc == rq);
        if (rq == 0) {
            check_bounds(&o, &ob, &d);
            /* The restored copy re-anchors when the clock is behind its last decision, where
             * q clamps (CLOCK_CLAMPED). Otherwise both follow the same timeline. */
            int clamped = 0;
            for (uint32_t k = 0; k < d.n_steps; k++)
                clamped |= d.steps[k].rule == SWARM_RULE_CLOCK_CLAMPED;
            if (!clamped)
                CHECK(memcmp(&d, &dc, sizeof d) == 0);
            cur = d.replicas < 1000 ? d.replicas : 1000;
        }
        swarm_policy_destroy(c);
        e = export_all(q, n);
        swarm_policy_destroy(reimport(&o, e, n)); /* export => import accepts */
        free(e);
    }
    free(mut);
    free(st);
    swarm_policy_destroy(p);
    swarm_policy_destroy(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(data, size);
    return 0;
}

#ifndef SWARM_FUZZ_LIBFUZZER
int main(int argc, char **argv)
{
    return fuzz_replay_main(argc, argv, "fuzz_policy_state", 0x2545f4914f6cdd1dull, 1500, 16, 512);
}
#endif
