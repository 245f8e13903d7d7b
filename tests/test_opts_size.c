/* SPDX-License-Identifier: MIT */
/*
 * The size rule of every options struct, through the function that reads it:
 *   - size = its first-release (v1) size is accepted, and nothing past that size is read (the
 *     bytes between the v1 fields' end and today's sizeof are poisoned);
 *   - size = v1 - 1 and size = 0 are SWARM_EINVAL;
 *   - size = this library's sizeof is accepted; a larger size is accepted when the extra bytes
 *     are zero and refused (SWARM_EINVAL) when one of them is not; above 4096, SWARM_EINVAL.
 * The v1 sizes come from the library's one table (src/opts_v1.h); on x86-64 they are also
 * checked against the numbers measured by compiling the 0.1.0 headers (fe3906f).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include <swarm/swarm.h>
#include <swarm/sim.h>

#include "helpers.h"
#include "opts_v1.h"

/* ---- creating and destroying each struct's reader ------------------------------------------ */

static swarm_engine *new_mock(void)
{
    swarm_engine *e = NULL;
    assert_int_equal(swarm_engine_mock_create(&e, NULL), 0);
    return e;
}

static int use_engine(int rc, swarm_engine *e, swarm_engine *inner)
{
    swarm_engine_destroy(rc == 0 ? e : inner); /* decorators take over inner on success only */
    return rc;
}

/* The readers that need nothing else: create, destroy, return the create's code. */
#define TRY_ALONE(name, type, create, destroy)                                                     \
    static int try_##name(void *o)                                                                 \
    {                                                                                              \
        type *h = NULL;                                                                            \
        int rc = create(&h, o);                                                                    \
        destroy(h);                                                                                \
        return rc;                                                                                 \
    }
TRY_ALONE(chan_opts, swarm_chan, swarm_chan_create, swarm_chan_destroy)
TRY_ALONE(response_opts, swarm_response, swarm_response_create, swarm_response_destroy)
TRY_ALONE(mock_opts, swarm_engine, swarm_engine_mock_create, swarm_engine_destroy)
TRY_ALONE(metrics_opts, swarm_metrics, swarm_metrics_create, swarm_metrics_destroy)

/* The decorators that wrap one engine (a mock). */
#define TRY_WRAPPING(name, create)                                                                 \
    static int try_##name(void *o)                                                                 \
    {                                                                                              \
        swarm_engine *in = new_mock(), *e = NULL;                                                  \
        return use_engine(create(&e, in, o), e, in);                                               \
    }
TRY_WRAPPING(timeout_opts, swarm_engine_timeout_create)
TRY_WRAPPING(retry_opts, swarm_engine_retry_create)
TRY_WRAPPING(breaker_opts, swarm_engine_breaker_create)
TRY_WRAPPING(batcher_opts, swarm_engine_batcher_create)

static int try_fallback_opts(void *o)
{
    swarm_engine *a = new_mock(), *b = new_mock(), *e = NULL;
    int rc = swarm_engine_fallback_create_ex(&e, a, b, o);
    if (rc != 0)
        swarm_engine_destroy(b);
    return use_engine(rc, e, a);
}

static int try_split_opts(void *o)
{
    swarm_engine *es[2] = {new_mock(), new_mock()}, *e = NULL;
    const uint32_t w[2] = {1, 1};
    int rc = swarm_engine_split_create(&e, es, w, 2, o);
    if (rc != 0)
        swarm_engine_destroy(es[1]);
    return use_engine(rc, e, es[0]);
}

static int try_policy_opts(void *o)
{
    ((swarm_policy_opts *)o)->mode = SWARM_POLICY_HPA;
    swarm_policy *p = NULL;
    int rc = swarm_policy_create(&p, o);
    swarm_policy_destroy(p);
    return rc;
}

static swarm_chan *task_chan(void)
{
    swarm_chan_opts co;
    swarm_chan_opts_init(&co);
    co.capacity = 4;
    co.elem_size = sizeof(swarm_task);
    swarm_chan *ch = NULL;
    assert_int_equal(swarm_chan_create(&ch, &co), 0);
    return ch;
}

static int try_pool_opts(void *o)
{
    swarm_pool_opts *po = o;
    po->input = task_chan();
    po->engine = new_mock();
    swarm_pool *p = NULL;
    int rc = swarm_pool_create(&p, po);
    swarm_pool_destroy(p); /* the pool held its own references */
    swarm_chan_destroy(po->input);
    swarm_engine_destroy(po->engine);
    return rc;
}

static int observe_fails(void *ctx, swarm_policy_obs *obs)
{
    (void)ctx;
    (void)obs;
    return SWARM_EUNAVAILABLE;
}

static int actuate_nothing(void *ctx, int32_t desired, const swarm_policy_decision *d)
{
    (void)ctx;
    (void)desired;
    (void)d;
    return 0;
}

static swarm_policy *hpa_policy(void)
{
    swarm_policy_opts po;
    swarm_policy_opts_init(&po);
    po.mode = SWARM_POLICY_HPA;
    swarm_policy *p = NULL;
    assert_int_equal(swarm_policy_create(&p, &po), 0);
    return p;
}

static int try_reconcile_opts(void *o)
{
    swarm_reconcile_opts *ro = o;
    ro->policy = hpa_policy();
    ro->observe = observe_fails;
    ro->actuate = actuate_nothing;
    swarm_reconcile *r = NULL;
    int rc = swarm_reconcile_create(&r, ro);
    swarm_reconcile_destroy(r);
    swarm_policy_destroy(ro->policy);
    return rc;
}

static int try_reconcile_pool_opts(void *o)
{
    swarm_reconcile_pool_opts *ro = o;
    swarm_pool_opts po;
    swarm_pool_opts_init(&po);
    po.input = task_chan();
    po.engine = new_mock();
    assert_int_equal(swarm_pool_create(&ro->pool, &po), 0);
    ro->policy = hpa_policy();
    ro->manual = 1;
    swarm_reconcile *r = NULL;
    int rc = swarm_reconcile_create_for_pool(&r, ro);
    swarm_reconcile_destroy(r);
    swarm_pool_destroy(ro->pool);
    swarm_policy_destroy(ro->policy);
    swarm_chan_destroy(po.input);
    swarm_engine_destroy(po.engine);
    return rc;
}

static int try_sim_gen_opts(void *o)
{
    ((swarm_sim_gen_opts *)o)->shape = SWARM_SIM_SHAPE_STEP;
    swarm_sim_trace *tr = NULL;
    int rc = swarm_sim_trace_generate(&tr, o, NULL);
    swarm_sim_trace_destroy(tr);
    return rc;
}

static int try_sim_opts(void *o)
{
    swarm_sim_gen_opts go;
    swarm_sim_gen_opts_init(&go);
    go.shape = SWARM_SIM_SHAPE_STEP;
    swarm_sim_trace *tr = NULL;
    assert_int_equal(swarm_sim_trace_generate(&tr, &go, NULL), 0);
    swarm_policy_opts po;
    swarm_policy_opts_init(&po);
    po.mode = SWARM_POLICY_HPA;
    ((swarm_sim_opts *)o)->policy = &po;
    swarm_sim *s = NULL;
    int rc = swarm_sim_create(&s, tr, o);
    swarm_sim_destroy(s);
    swarm_sim_trace_destroy(tr);
    return rc;
}

static int try_thread_hooks(void *o)
{
    int rc = swarm_thread_hooks_set(o);
    (void)swarm_thread_hooks_set(NULL);
    return rc;
}

/* ---- the table ------------------------------------------------------------------------------ */

typedef struct opts_case {
    const char *name;
    size_t v1, v1_end, cur;
    size_t x86_64_v1; /* measured with the headers of the release that introduced it, on x86-64 */
    int (*init)(void *o);
    int (*try_create)(void *o);
} opts_case;

#define CASE(n, x86)                                                                               \
    {                                                                                              \
#        n, SWARM__OPTS_V1_SIZE(n), (size_t)swarm__##n##_v1_end, sizeof(swarm_##n), x86, init_##n, \
            try_##n                                                                                \
    }

/* The *_opts_init functions behind one signature. */
#define INIT_ROW(name, list, appended, release)                                                    \
    static int init_##name(void *o)                                                                \
    {                                                                                              \
        return swarm_##name##_init(o);                                                             \
    }
SWARM__OPTS_V1_TABLE(INIT_ROW)

static const opts_case cases[] = {
    CASE(chan_opts, 56),       CASE(response_opts, 32),       CASE(timeout_opts, 40),
    CASE(retry_opts, 80),      CASE(breaker_opts, 80),        CASE(fallback_opts, 16),
    CASE(split_opts, 24),      CASE(batcher_opts, 40),        CASE(mock_opts, 112),
    CASE(metrics_opts, 16),    CASE(policy_opts, 384),        CASE(pool_opts, 104),
    CASE(reconcile_opts, 112), CASE(reconcile_pool_opts, 48), CASE(sim_gen_opts, 64),
    CASE(sim_opts, 176),       CASE(thread_hooks, 32),
};
#define NCASES (sizeof cases / sizeof cases[0])

/* Every options struct the library has is in the table (the library's table has 17 rows). */
#define COUNT_ROW(name, list, appended, release) +1
_Static_assert(NCASES == 0 SWARM__OPTS_V1_TABLE(COUNT_ROW), "a struct of opts_v1.h is not tested");

static _Alignas(16) unsigned char buf[2 * SWARM__OPTS_MAX];

/* Fills buf with the defaults, sets size, optionally poisons [from, to), calls the reader. */
static int run(const opts_case *c, size_t size, size_t poison_from, size_t poison_to)
{
    memset(buf, 0, sizeof buf);
    assert_int_equal(c->init(buf), 0);
    assert_int_equal(*(uint32_t *)buf, c->cur);
    if (poison_from < poison_to)
        memset(buf + poison_from, 0xA5, poison_to - poison_from);
    uint32_t s = (uint32_t)size;
    memcpy(buf, &s, sizeof s);
    return c->try_create(buf);
}

static void test_v1_sizes_match_the_first_releases(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCASES; i++) {
        const opts_case *c = &cases[i];
        assert_true(c->v1 > sizeof(uint32_t));
        assert_true(c->v1 <= c->cur);
        assert_true(c->v1_end <= c->v1);
#if defined(__x86_64__)
        if (c->v1 != c->x86_64_v1)
            fail_msg("%s: v1 size %zu, 0.1.0 had %zu", c->name, c->v1, c->x86_64_v1);
#endif
    }
}

static void test_v1_size_is_accepted_and_nothing_past_it_is_read(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCASES; i++) {
        const opts_case *c = &cases[i];
        if (run(c, c->v1, c->v1_end, c->cur) != 0)
            fail_msg("%s: size %zu (v1) refused", c->name, c->v1);
        if (run(c, c->cur, 0, 0) != 0)
            fail_msg("%s: size %zu (current) refused", c->name, c->cur);
    }
}

static void test_below_v1_is_einval(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCASES; i++) {
        const opts_case *c = &cases[i];
        if (run(c, c->v1 - 1, 0, 0) != SWARM_EINVAL)
            fail_msg("%s: size %zu (v1 - 1) not refused", c->name, c->v1 - 1);
        if (run(c, sizeof(uint32_t), 0, 0) != SWARM_EINVAL)
            fail_msg("%s: size 4 not refused", c->name);
        if (run(c, 0, 0, 0) != SWARM_EINVAL)
            fail_msg("%s: size 0 not refused", c->name);
    }
}

static void test_larger_needs_a_zero_tail(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCASES; i++) {
        const opts_case *c = &cases[i];
        size_t big = c->cur + 64;
        if (run(c, big, 0, 0) != 0)
            fail_msg("%s: size %zu with a zero tail refused", c->name, big);
        if (run(c, big, big - 1, big) != SWARM_EINVAL)
            fail_msg("%s: size %zu with a set last byte accepted", c->name, big);
        if (run(c, c->cur + 1, c->cur, c->cur + 1) != SWARM_EINVAL)
            fail_msg("%s: size %zu with a set first extra byte accepted", c->name, c->cur + 1);
        if (run(c, SWARM__OPTS_MAX, 0, 0) != 0)
            fail_msg("%s: size %d with a zero tail refused", c->name, SWARM__OPTS_MAX);
        if (run(c, SWARM__OPTS_MAX + 1, 0, 0) != SWARM_EINVAL)
            fail_msg("%s: size %d accepted", c->name, SWARM__OPTS_MAX + 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SWARM_TEST(test_v1_sizes_match_the_first_releases),
        SWARM_TEST(test_v1_size_is_accepted_and_nothing_past_it_is_read),
        SWARM_TEST(test_below_v1_is_einval),
        SWARM_TEST(test_larger_needs_a_zero_tail),
    };
    return cmocka_run_group_tests_name("opts_size", tests, NULL, NULL);
}
