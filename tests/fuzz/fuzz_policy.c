/* SPDX-License-Identifier: MIT */
/*
 * Fuzz harness for the scaling policy: random configurations (valid or not) and observation
 * sequences, including NaN/infinite/negative metrics, zero targets and time running backwards.
 * Checks: no crash or UB (run under ASan/UBSan), every decision deterministic (two policies fed
 * the same inputs agree byte for byte), a third policy restored from an export taken mid-way
 * agrees from then on, and every result is within [min, max] or one of the documented
 * exceptions (0 or idle where the mode owns them, current on hold or pause).
 *
 * libFuzzer: clang -fsanitize=fuzzer,address,undefined -DSWARM_FUZZ_LIBFUZZER ...
 * Without libFuzzer, main() replays the files (or directories' files) given as arguments (e.g.
 * tests/fuzz/corpus_policy, a sample of a libFuzzer corpus), then a built-in deterministic random
 * sweep.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <swarm/swarm.h>

#include "replay_main.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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

/* A double from one byte: mostly small ordinary values, sometimes pathological. */
static double dbl(rd *r)
{
    uint8_t b = u8(r);
    switch (b) {
    case 0xff:
        return NAN;
    case 0xfe:
        return INFINITY;
    case 0xfd:
        return -INFINITY;
    case 0xfc:
        return -1.0;
    case 0xfb:
        return 1e300;
    case 0xfa:
        return 0.0;
    case 0xf9:
        return 1e-300;
    default:
        return (double)b * (1.0 + (b & 3) * 0.37);
    }
}

static int64_t dur(rd *r)
{
    uint8_t b = u8(r);
    if (b == 0xff)
        return INT64_MAX;
    if (b == 0xfe)
        return -1;
    return (int64_t)b * 1000000000LL * ((b & 1) ? 1 : 15);
}

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_policy: check failed: %s (line %d)\n", #c, __LINE__);            \
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
    CHECK(d->retire_starting >= 0 && d->retire_starting <= d->retire);
    CHECK(d->n_steps <= SWARM_POLICY_MAX_STEPS);
    CHECK(memchr(d->text, '\0', sizeof d->text) != NULL);
    if (d->flags & SWARM_DECISION_PAUSED) {
        CHECK(r == cur || r == o->paused_replicas);
        return;
    }
    if (d->flags & SWARM_DECISION_HOLD) {
        CHECK(r == cur);
        return;
    }
    if (r == 0 && ((o->mode != SWARM_POLICY_HPA && o->min_replicas == 0) ||
                   (o->mode == SWARM_POLICY_KEDA && o->use_idle) ||
                   (o->mode == SWARM_POLICY_HPA && cur == 0)))
        return;
    if (o->mode == SWARM_POLICY_KEDA && o->use_idle && r == o->idle_replicas)
        return;
    CHECK(r >= min && r <= max);
}

static void run(const uint8_t *data, size_t size)
{
    rd r = {data, size, 0};
    swarm_policy_opts o;
    swarm_policy_opts_init(&o);
    o.mode = 1 + u8(&r) % 3;
    uint8_t f = u8(&r);
    o.min_replicas = (int32_t)(u8(&r) % 12) - (f == 0xee ? 3 : 0);
    o.max_replicas = (int32_t)(u8(&r) % 64);
    o.history_cap = 1 + u8(&r) % 32;
    o.disable = (f & 1) ? SWARM_POLICY_STRICT_UPSTREAM : (f >> 1) & 7;
    o.pause = (f >> 4) & 7 ? (u8(&r) & 0xf) : 0;
    o.paused_replicas = u8(&r) % 8;
    o.tolerance = (f & 0x40) ? dbl(&r) / 100.0 : 0;
    o.cooldown_ns = dur(&r);
    o.initial_cooldown_ns = dur(&r);
    o.use_idle = u8(&r) & 1;
    o.idle_replicas = u8(&r) % 4;
    o.fallback_failures = u8(&r) % 5;
    o.fallback_behavior = u8(&r) % 5;
    o.fallback_replicas = u8(&r) % 20;
    o.hpa_path = u8(&r) % 4;
    swarm_policy_hpa_rules *rules[2] = {&o.scale_up, &o.scale_down};
    for (int i = 0; i < 2; i++) {
        uint8_t b = u8(&r);
        if (b & 1)
            continue;
        rules[i]->window_ns = dur(&r);
        rules[i]->select = u8(&r) % 5;
        rules[i]->n_policies = u8(&r) % 6;
        for (uint32_t k = 0; k < rules[i]->n_policies && k < SWARM_POLICY_MAX_RATES; k++) {
            rules[i]->policies[k].type = 1 + u8(&r) % 3;
            rules[i]->policies[k].value = (int32_t)(u8(&r) % 200) - 2;
            rules[i]->policies[k].period_ns = dur(&r);
        }
        rules[i]->tolerance = (b & 2) ? dbl(&r) / 100.0 : 0;
    }
    o.stable_window_ns = (f & 0x80) ? dur(&r) : 0;
    o.panic_window_pct = u8(&r) % 120;
    o.panic_threshold_pct = u8(&r) * 3;
    o.max_scale_up_rate = (u8(&r) & 1) ? dbl(&r) : 0;
    o.max_scale_down_rate = (u8(&r) & 1) ? dbl(&r) : 0;
    o.scale_down_delay_ns = (u8(&r) & 1) ? dur(&r) : 0;
    o.activation_scale = u8(&r) % 5;
    o.unreachable = u8(&r) & 1;
    o.zero_grace_ns = (u8(&r) & 1) ? dur(&r) : 0;

    swarm_policy *a = NULL, *b = NULL, *c = NULL;
    int rc = swarm_policy_create(&a, &o);
    if (rc < 0) {
        CHECK(rc == SWARM_EINVAL && a == NULL);
        return;
    }
    CHECK(swarm_policy_create(&b, &o) == 0);
    size_t n_state = swarm_policy_state_size(a);
    unsigned char *state = malloc(n_state);
    CHECK(state != NULL);

    int64_t now = (int64_t)u32(&r) * 1000;
    int64_t last = INT64_MIN; /* the latest time a decision was taken at (a's last_now) */
    int c_fresh = 0;          /* c was imported and has not decided yet */
    int32_t cur = u8(&r) % 20;
    for (int step = 0; step < 64 && r.off < r.n; step++) {
        swarm_policy_obs ob;
        memset(&ob, 0, sizeof ob);
        ob.size = sizeof ob;
        uint8_t s = u8(&r);
        if (s == 0xfd)
            cur = (int32_t)u32(&r) % 100000; /* may be negative: must be rejected */
        ob.current_replicas = cur;
        ob.ready_replicas = cur > 0 ? cur - (int32_t)(u8(&r) % ((uint32_t)cur + 1u)) : 0;
        ob.starting_replicas = cur - ob.ready_replicas;
        if (s == 0xfc && cur < INT32_MAX)
            ob.ready_replicas = cur + 1; /* invalid */
        ob.n_metrics = 1 + u8(&r) % 3;
        if (s == 0xfb)
            ob.n_metrics = 0;
        for (uint32_t i = 0; i < ob.n_metrics && i < SWARM_POLICY_MAX_METRICS; i++) {
            swarm_policy_metric *m = &ob.metrics[i];
            uint8_t k = u8(&r);
            m->kind = 1 + k % 3 + (k == 0xff ? 5 : 0);
            m->failed = (k >> 3) % 7 == 0;
            m->value = dbl(&r) * ((k & 0x40) ? 10 : 1);
            m->in_flight = (k & 0x80) ? dbl(&r) : 0;
            m->target = 1 + u8(&r) % 20;
            if (k == 0xfe)
                m->target = 0; /* zero target: EINVAL */
            m->activation = (k & 0x20) ? dbl(&r) : 0;
        }
        /* Time mostly forward, sometimes backwards or jumping far. */
        uint8_t t = u8(&r);
        if (t == 0xff)
            now -= 5000000000LL;
        else if (t == 0xfe)
            now += 86400000000000LL;
        else
            now += (int64_t)t * 250000000LL;

        swarm_policy_decision da, db, dc;
        memset(&da, 0, sizeof da);
        memset(&db, 0, sizeof db);
        da.size = db.size = dc.size = sizeof da;
        int ra = swarm_policy_decide(a, now, &ob, &da);
        int rb = swarm_policy_decide(b, now, &ob, &db);
        CHECK(ra == rb);
        CHECK(ra == 0 || ra == SWARM_EINVAL);
        if (ra == 0) {
            CHECK(memcmp(&da, &db, sizeof da) == 0);
            check_bounds(&o, &ob, &da);
        }
        if (c != NULL && c_fresh && ra == 0 && now < last) {
            /* The clock is behind the exported state's last decision: c takes it for another
             * boot and resumes its timeline at now, where a clamps to its last time. They no
             * longer share a timeline; stop comparing. */
            swarm_policy_destroy(c);
            c = NULL;
        }
        if (c != NULL) {
            if (ra == 0)
                c_fresh = 0; /* a rejected observation leaves c's state (and resume) alone */
            memset(&dc, 0, sizeof dc);
            dc.size = sizeof dc;
            int rcc = swarm_policy_decide(c, now, &ob, &dc);
            CHECK(rcc == ra);
            if (ra == 0)
                CHECK(memcmp(&da, &dc, sizeof da) == 0);
        }
        if (step == 8) {
            size_t w = 0;
            CHECK(swarm_policy_export_state(a, state, n_state, &w) == 0 && w == n_state);
            CHECK(swarm_policy_create(&c, &o) == 0);
            CHECK(swarm_policy_import_state(c, state, n_state) == 0);
            c_fresh = 1;
        }
        if (ra == 0 && now > last)
            last = now;
        if (ra == 0 && (s & 3) != 0)
            cur = da.replicas; /* usually the host actuates */
        if (cur < 0)
            cur = 0;
    }
    /* Importing garbage never crashes and either succeeds or is rejected. */
    if (r.off < r.n && n_state > 0) {
        size_t k = (r.n - r.off) < n_state ? (r.n - r.off) : n_state;
        CHECK(swarm_policy_export_state(a, state, n_state, NULL) == 0);
        memcpy(state + 24, r.p + r.off, k > 24 ? k - 24 : 0);
        int ri = swarm_policy_import_state(b, state, n_state);
        CHECK(ri == 0 || ri == SWARM_EINVAL);
        swarm_policy_obs ob;
        memset(&ob, 0, sizeof ob);
        ob.size = sizeof ob;
        ob.current_replicas = ob.ready_replicas = 3;
        ob.n_metrics = 1;
        ob.metrics[0] = (swarm_policy_metric){SWARM_METRIC_TOTAL, 0, 17, 1, 5, 0};
        swarm_policy_decision d;
        memset(&d, 0, sizeof d);
        d.size = sizeof d;
        CHECK(swarm_policy_decide(b, now + 1, &ob, &d) == 0);
    }
    free(state);
    swarm_policy_destroy(a);
    swarm_policy_destroy(b);
    swarm_policy_destroy(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(data, size);
    return 0;
}

#ifndef SWARM_FUZZ_LIBFUZZER
int main(int argc, char **argv)
{
    return fuzz_replay_main(argc, argv, "fuzz_policy", 0x9e3779b97f4a7c15ull, 3000, 32, 768);
}
#endif
