/* SPDX-License-Identifier: MIT */
/*
 * Fuzz harness for the metrics registry: hostile object names (any bytes, overlong, duplicates,
 * every kind), odd buffer sizes (0, 1, one short, exact, random) for both formats, rejected-send
 * counts up to UINT64_MAX (wrapping), policy bounds with NaN, infinite, negative and huge
 * targets, and loop decisions in between.
 *
 * Checks: no crash or UB (run under ASan/UBSan); a name is accepted iff it is
 * [A-Za-z_][A-Za-z0-9_-]{0,62} and new for its kind; a render never writes past buf_len, and
 * returns 0 with written == strlen(buf) or SWARM_ERANGE with the exact size it needed (so that a
 * render into exactly that size succeeds with the same length while nothing changed); the bound
 * from swarm_metrics_render_bound() is never exceeded; Prometheus output is whole lines, each
 * sample "name{...} value" or "name value", and JSON output has balanced braces outside strings.
 *
 * libFuzzer: -Dfuzzing=true with CC=clang (links -fsanitize=fuzzer). Without libFuzzer, main()
 * replays the files (or directories' files) given as arguments (e.g. tests/fuzz/corpus_metrics),
 * then a built-in deterministic random sweep.
 */
#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <swarm/swarm.h>

#include "replay_main.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_metrics: check failed at line %d: %s\n", __LINE__, #cond);       \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct rd {
    const uint8_t *p;
    size_t n, off;
} rd;

static uint8_t u8(rd *r)
{
    return r->off < r->n ? r->p[r->off++] : 0;
}
static uint64_t u64(rd *r)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)u8(r) << (8 * i);
    return v;
}

static double dbl(rd *r)
{
    static const double special[] = {0.0,  -1.0,   1e-9,  0.0005,   0.0015,    1.0, 2.5,
                                     9e15, 9.1e15, 1e300, HUGE_VAL, -HUGE_VAL, NAN};
    uint8_t b = u8(r);
    if (b < sizeof special / sizeof special[0])
        return special[b];
    return (double)b / 7.0;
}

/* Objects shared by every input: created once, never destroyed (the process ends). */
static swarm_chan *chans[3];
static swarm_pool *pool;
static swarm_reconcile *loop;
static swarm_engine *engines[4]; /* retry, breaker, batcher, plain mock */
static int32_t loop_replicas;
static int64_t loop_now;

static int observe(void *ctx, swarm_policy_obs *obs)
{
    (void)ctx;
    obs->current_replicas = loop_replicas;
    obs->ready_replicas = loop_replicas;
    obs->n_metrics = 1;
    obs->metrics[0].kind = SWARM_METRIC_TOTAL;
    obs->metrics[0].value = (double)(loop_now / 1000000000 % 97);
    obs->metrics[0].target = 5;
    return 0;
}

static int actuate(void *ctx, int32_t desired, const swarm_policy_decision *d)
{
    (void)ctx, (void)d;
    loop_replicas = desired;
    return 0;
}

static void setup(void)
{
    if (loop != NULL)
        return;
    swarm_chan_opts co;
    for (int i = 0; i < 3; i++) {
        swarm_chan_opts_init(&co);
        co.capacity = 4;
        co.elem_size = i == 0 ? sizeof(swarm_task) : 8;
        CHECK(swarm_chan_create(&chans[i], &co) == 0);
    }
    swarm_mock_opts mo;
    swarm_mock_opts_init(&mo);
    swarm_engine *m0 = NULL, *m1 = NULL, *m2 = NULL;
    CHECK(swarm_engine_mock_create(&m0, &mo) == 0 && swarm_engine_mock_create(&m1, &mo) == 0 &&
          swarm_engine_mock_create(&m2, &mo) == 0 &&
          swarm_engine_mock_create(&engines[3], &mo) == 0);
    CHECK(swarm_engine_retry_create(&engines[0], m0, NULL) == 0);
    CHECK(swarm_engine_breaker_create(&engines[1], m1, NULL) == 0);
    CHECK(swarm_engine_batcher_create(&engines[2], m2, NULL) == 0);
    swarm_pool_opts po;
    swarm_pool_opts_init(&po);
    po.input = chans[0];
    po.engine = engines[3];
    po.workers = 1;
    CHECK(swarm_pool_create(&pool, &po) == 0);
    swarm_policy_opts pol;
    swarm_policy_opts_init(&pol);
    pol.mode = SWARM_POLICY_KEDA;
    swarm_policy *policy = NULL;
    CHECK(swarm_policy_create(&policy, &pol) == 0);
    swarm_reconcile_opts ro;
    swarm_reconcile_opts_init(&ro);
    ro.policy = policy;
    ro.observe = observe;
    ro.actuate = actuate;
    CHECK(swarm_reconcile_create(&loop, &ro) == 0);
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SWARM_METRICS_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        bool digit = (c >= '0' && c <= '9') || c == '-';
        if (!(alpha || (i > 0 && digit)))
            return false;
    }
    return true;
}

/* A name from the input: mostly short identifiers, sometimes raw bytes or overlong. */
static void read_name(rd *r, char *out, size_t cap)
{
    uint8_t mode = u8(r);
    size_t len = (size_t)u8(r) % (mode & 1 ? 80 : 6);
    size_t i = 0;
    for (; i < len && i + 1 < cap; i++) {
        uint8_t b = u8(r);
        out[i] = mode & 2 ? (char)b : "abcXYZ_-09.\"\\ \n"[b % 15];
        if (out[i] == '\0')
            out[i] = 'q';
    }
    out[i] = '\0';
}

/* Structural checks of a successful render. */
static void check_output(int format, const char *buf, size_t n)
{
    CHECK(strlen(buf) == n);
    if (format == SWARM_METRICS_PROMETHEUS) {
        CHECK(n > 0 && buf[n - 1] == '\n');
        const char *line = buf;
        while (*line != '\0') {
            const char *nl = strchr(line, '\n');
            CHECK(nl != NULL);
            if (line[0] != '#') {
                const char *sp = memchr(line, ' ', (size_t)(nl - line));
                CHECK(sp != NULL && sp > line && sp + 1 < nl);
                const char *brace = memchr(line, '{', (size_t)(sp - line));
                if (brace != NULL)
                    CHECK(sp[-1] == '}');
                for (const char *c = sp + 1; c < nl; c++)
                    CHECK((*c >= '0' && *c <= '9') || *c == '.' || *c == '-');
            }
            line = nl + 1;
        }
    } else {
        int depth = 0;
        bool in_str = false;
        for (size_t i = 0; i < n; i++) {
            char c = buf[i];
            if (in_str) {
                if (c == '\\')
                    i++;
                else if (c == '"')
                    in_str = false;
                continue;
            }
            if (c == '"')
                in_str = true;
            else if (c == '{')
                depth++;
            else if (c == '}')
                CHECK(--depth >= 0);
        }
        CHECK(depth == 0 && !in_str && buf[n - 1] == '\n');
    }
}

static uint8_t out_buf[1 << 18];

static void render_at(swarm_metrics *m, int format, size_t len)
{
    size_t bound = 0;
    CHECK(swarm_metrics_render_bound(m, format, &bound) == 0);
    if (len > sizeof out_buf - 64)
        len = sizeof out_buf - 64;
    memset(out_buf, 0xA5, len + 64);
    size_t written = 12345;
    int rc = swarm_metrics_render(m, format, len ? (char *)out_buf : NULL, len, &written);
    for (size_t i = len; i < len + 64; i++)
        CHECK(out_buf[i] == 0xA5); /* never past the end */
    if (rc == 0) {
        CHECK(written < len && written + 1 <= bound);
        check_output(format, (const char *)out_buf, written);
    } else {
        CHECK(rc == SWARM_ERANGE);
        CHECK(written > len && written <= bound);
        if (len > 0)
            CHECK(out_buf[len - 1] == 0);
        /* Exactly the size it asked for. Nothing runs concurrently here, but the loop's and
         * the pool's counters may still move (the idle pool worker), so allow the bound. */
        size_t need = written;
        rc = swarm_metrics_render(m, format, (char *)out_buf, bound, &written);
        CHECK(rc == 0 && written + 1 <= bound && written + 1 >= need - 64);
        check_output(format, (const char *)out_buf, written);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    rd r = {data, size, 0};
    swarm_metrics_opts o;
    swarm_metrics_opts_init(&o);
    o.max_objects = 1 + u8(&r) % 12;
    swarm_metrics *m = NULL;
    CHECK(swarm_metrics_create(&m, &o) == 0);
    /* Names taken so far, per kind, to predict duplicates. */
    static char taken[6][16][SWARM_METRICS_NAME_MAX + 1];
    int n_taken[6] = {0};
    uint32_t count = 0;
    for (int step = 0; step < 48 && r.off < r.n; step++) {
        uint8_t op = u8(&r) % 10;
        if (op < 4) { /* add something */
            char name[96];
            uint8_t which = u8(&r) % 8;
            read_name(&r, name, sizeof name);
            int kind, rc;
            if (which < 3) {
                kind = 0;
                rc = swarm_metrics_add_chan(m, name, chans[which]);
            } else if (which == 3) {
                kind = 1;
                rc = swarm_metrics_add_pool(m, name, pool);
            } else if (which == 4) {
                kind = 2;
                rc = swarm_metrics_add_reconcile(m, name, loop);
            } else {
                kind = 3 + (which - 5);
                rc = swarm_metrics_add_engine(m, name, engines[which - 5]);
            }
            bool dup = false;
            for (int i = 0; i < n_taken[kind]; i++)
                dup = dup || strcmp(taken[kind][i], name) == 0;
            bool expect = name_ok(name) && !dup && count < o.max_objects;
            CHECK((rc == 0) == expect);
            CHECK(rc == 0 || rc == SWARM_EINVAL);
            if (rc == 0) {
                count++;
                if (n_taken[kind] < 16)
                    strcpy(taken[kind][n_taken[kind]++], name);
            }
            CHECK(swarm_metrics_count(m) == count);
        } else if (op == 4) {
            CHECK(swarm_metrics_add_engine(m, "mock", engines[3]) == SWARM_ENOTSUP);
        } else if (op == 5) {
            uint64_t n = u64(&r);
            int rc = swarm_metrics_chan_rejected(m, chans[u8(&r) % 3], n);
            CHECK(rc == 0 || rc == SWARM_EINVAL);
        } else if (op == 6) {
            int32_t lo = (int32_t)(int8_t)u8(&r), hi = (int32_t)(int8_t)u8(&r);
            double t = dbl(&r);
            int rc = swarm_metrics_set_loop_bounds(m, loop, lo, hi, t);
            if (lo < 0 || hi < lo || !(t > 0) || t > 9e15)
                CHECK(rc == SWARM_EINVAL);
            else
                CHECK(rc == 0 || rc == SWARM_EINVAL); /* EINVAL: loop not registered here */
        } else if (op == 7) {
            loop_now += (int64_t)u8(&r) * 1000000000;
            (void)swarm_reconcile_step(loop, loop_now, NULL);
        } else {
            int format = op == 8 ? SWARM_METRICS_PROMETHEUS : SWARM_METRICS_JSON;
            size_t need = 0;
            CHECK(swarm_metrics_render(m, format, NULL, 0, &need) == SWARM_ERANGE);
            uint8_t how = u8(&r);
            size_t len = how % 5 == 0   ? 0
                         : how % 5 == 1 ? 1
                         : how % 5 == 2 ? need - 1
                         : how % 5 == 3 ? need
                                        : (size_t)u64(&r) % (need + 100);
            render_at(m, format, len);
        }
    }
    render_at(m, SWARM_METRICS_PROMETHEUS, sizeof out_buf - 64);
    render_at(m, SWARM_METRICS_JSON, sizeof out_buf - 64);
    swarm_metrics_destroy(m);
    return 0;
}

#ifndef SWARM_FUZZ_LIBFUZZER
int main(int argc, char **argv)
{
    return fuzz_replay_main(argc, argv, "fuzz_metrics", 0x2545f4914f6cdd1dull, 1500, 16, 512);
}
#endif
