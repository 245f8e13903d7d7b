/* SPDX-License-Identifier: MIT */
/*
 * The bad-input table: every exported function called with NULL, zero, negative, huge, NaN and
 * extreme-time arguments. Each case runs in its own forked child with an alarm, so that a crash,
 * a sanitizer report or a hang names the case instead of taking the whole suite down; the parent
 * prints one line per failing case and a count.
 *
 * A case states what the function must return: an exact code (the header's documented error), any
 * negative code, or anything at all (extreme but legal values, where the promise is only "no
 * crash, no undefined behaviour, no hang"). The final check reads src/libswarm.map and fails if an
 * exported function has no case here, so a new export cannot skip the table.
 *
 * Children leave objects unfreed on purpose (they exit with _exit(), which skips LeakSanitizer's
 * atexit hook): the subject is the call, not the teardown, which the module suites cover.
 */
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <swarm/swarm.h>

#define ANY_NEG INT_MIN       /* any negative swarm_err */
#define ANY     (INT_MIN + 1) /* anything: only no crash, no UB, no hang */
#define NONNEG  (INT_MIN + 2) /* >= 0 */

typedef long long (*case_fn)(void);
typedef struct bad_case {
    const char *fn;    /* the exported function under test */
    const char *label; /* what is bad about the arguments */
    long long want;
    case_fn run;
} bad_case;

static bad_case cases[1024];
static int n_cases;

static void reg(const char *fn, const char *label, long long want, case_fn run)
{
    if (n_cases < (int)(sizeof cases / sizeof cases[0]))
        cases[n_cases++] = (bad_case){fn, label, want, run};
}

#define CAT2(a, b) a##b
#define CAT(a, b)  CAT2(a, b)
/* BAD(function, label, expected, expression): one case. */
#define BAD(fn, label, want, expr)                                                                 \
    static long long CAT(bad_run_, __LINE__)(void)                                                 \
    {                                                                                              \
        return (long long)(expr);                                                                  \
    }                                                                                              \
    __attribute__((constructor)) static void CAT(bad_reg_, __LINE__)(void)                         \
    {                                                                                              \
        reg(#fn, label, want, CAT(bad_run_, __LINE__));                                            \
    }
/* BADV: a void function; the case passes if the statement returns. */
#define BADV(fn, label, stmt)                                                                      \
    static long long CAT(bad_run_, __LINE__)(void)                                                 \
    {                                                                                              \
        stmt;                                                                                      \
        return 0;                                                                                  \
    }                                                                                              \
    __attribute__((constructor)) static void CAT(bad_reg_, __LINE__)(void)                         \
    {                                                                                              \
        reg(#fn, label, 0, CAT(bad_run_, __LINE__));                                               \
    }

/* ---- fixtures: valid objects to pair with one bad argument -------------------------------- */

static swarm_chan *chan_of(uint64_t cap, uint64_t elem)
{
    swarm_chan_opts o;
    swarm_chan_opts_init(&o);
    o.capacity = cap;
    o.elem_size = elem;
    swarm_chan *ch = NULL;
    if (swarm_chan_create(&ch, &o) != 0)
        abort();
    return ch;
}
static swarm_chan *chan8(void)
{
    return chan_of(4, 8);
}
static swarm_chan *closed_chan(void)
{
    swarm_chan *ch = chan8();
    swarm_chan_close(ch);
    return ch;
}
static swarm_chan *task_chan(void)
{
    return chan_of(16, sizeof(swarm_task));
}

static swarm_cancel *token(void)
{
    swarm_cancel *c = NULL;
    if (swarm_cancel_create(&c, NULL) != 0)
        abort();
    return c;
}

static swarm_engine *mock(void)
{
    swarm_mock_opts o;
    swarm_mock_opts_init(&o);
    swarm_engine *e = NULL;
    if (swarm_engine_mock_create(&e, &o) != 0)
        abort();
    return e;
}

static swarm_response *response(void)
{
    swarm_response *r = NULL;
    if (swarm_response_create(&r, NULL) != 0)
        abort();
    return r;
}

static swarm_request request(void)
{
    swarm_request q;
    swarm_request_init(&q);
    q.id = 7;
    q.payload = "x";
    q.payload_len = 1;
    return q;
}

static swarm_policy *policy_of(uint32_t mode)
{
    swarm_policy_opts o;
    swarm_policy_opts_init(&o);
    o.mode = mode;
    swarm_policy *p = NULL;
    if (swarm_policy_create(&p, &o) != 0)
        abort();
    return p;
}
static swarm_policy *keda(void)
{
    return policy_of(SWARM_POLICY_KEDA);
}

static swarm_policy_obs obs_of(int32_t cur, double value)
{
    swarm_policy_obs o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.current_replicas = cur;
    o.ready_replicas = cur;
    o.n_metrics = 1;
    o.metrics[0].kind = SWARM_METRIC_TOTAL;
    o.metrics[0].value = value;
    o.metrics[0].target = 10;
    return o;
}

static swarm_policy_decision decision(void)
{
    swarm_policy_decision d;
    memset(&d, 0, sizeof d);
    d.size = sizeof d;
    return d;
}

static long long decide_with(uint32_t mode, int64_t now, swarm_policy_obs o)
{
    swarm_policy *p = policy_of(mode);
    swarm_policy_decision d = decision();
    int rc = swarm_policy_decide(p, now, &o, &d);
    if (rc == 0 && d.replicas < 0)
        return -1000; /* a negative replica count is never a valid decision */
    return rc;
}

static long long decide_twice(uint32_t mode, int64_t t1, int64_t t2, double v1, double v2)
{
    swarm_policy *p = policy_of(mode);
    swarm_policy_decision d = decision();
    swarm_policy_obs o = obs_of(2, v1);
    int rc = swarm_policy_decide(p, t1, &o, &d);
    if (rc < 0)
        return rc;
    o = obs_of(d.replicas, v2);
    rc = swarm_policy_decide(p, t2, &o, &d);
    return rc == 0 && d.replicas < 0 ? -1000 : rc;
}

static int observe_ok(void *user, swarm_policy_obs *obs)
{
    (void)user;
    *obs = obs_of(obs->current_replicas > 0 ? obs->current_replicas : 1, 5);
    return 0;
}
static int actuate_ok(void *user, int32_t desired, const swarm_policy_decision *d)
{
    (void)user;
    (void)desired;
    (void)d;
    return 0;
}

static swarm_reconcile *loop(void)
{
    swarm_reconcile_opts o;
    swarm_reconcile_opts_init(&o);
    o.policy = keda();
    o.observe = observe_ok;
    o.actuate = actuate_ok;
    swarm_reconcile *r = NULL;
    if (swarm_reconcile_create(&r, &o) != 0)
        abort();
    return r;
}

static swarm_pool *pool_on(swarm_chan *in)
{
    swarm_pool_opts o;
    swarm_pool_opts_init(&o);
    o.input = in;
    o.engine = mock();
    o.workers = 1;
    swarm_pool *p = NULL;
    if (swarm_pool_create(&p, &o) != 0)
        abort();
    return p;
}
static swarm_pool *pool(void)
{
    return pool_on(task_chan());
}

static swarm_metrics *metrics(void)
{
    swarm_metrics *m = NULL;
    if (swarm_metrics_create(&m, NULL) != 0)
        abort();
    return m;
}

static const uint64_t one = 1;
static uint64_t sink[64];
static char text[1 << 16];

/* ---- common -------------------------------------------------------------------------------- */
BAD(swarm_strerror, "unknown code", ANY, swarm_strerror(INT_MIN) != NULL ? 0 : -1)
BAD(swarm_strerror, "positive", ANY, swarm_strerror(INT_MAX) != NULL ? 0 : -1)
BAD(swarm_err_name, "unknown code", ANY, swarm_err_name(-12345) != NULL ? 0 : -1)
BAD(swarm_version, "no argument", ANY, (long long)swarm_version())
BAD(swarm_version_string, "no argument", ANY, swarm_version_string() != NULL ? 0 : -1)
BAD(swarm_now_ns, "no argument", NONNEG, swarm_now_ns())
BAD(swarm_cancel_create, "NULL out", SWARM_EINVAL, swarm_cancel_create(NULL, NULL))
BAD(swarm_cancel_create, "allocator without hooks", SWARM_EINVAL, ({
        swarm_allocator a = {0};
        swarm_cancel *c;
        swarm_cancel_create(&c, &a);
    }))
BAD(swarm_cancel_trigger, "NULL", SWARM_EINVAL, swarm_cancel_trigger(NULL))
BAD(swarm_cancel_trigger, "twice", 0, ({
        swarm_cancel *c = token();
        swarm_cancel_trigger(c);
        swarm_cancel_trigger(c);
    }))
BAD(swarm_cancel_is_canceled, "NULL", ANY, swarm_cancel_is_canceled(NULL))
BAD(swarm_cancel_reset, "NULL", SWARM_EINVAL, swarm_cancel_reset(NULL))
BADV(swarm_cancel_destroy, "NULL", swarm_cancel_destroy(NULL))

BAD(swarm_deadline_after, "INT64_MAX", INT64_MAX, swarm_deadline_after(INT64_MAX))
BAD(swarm_deadline_after, "INT64_MIN", SWARM_NO_DEADLINE, swarm_deadline_after(INT64_MIN))
BAD(swarm_sleep_ns, "forever without a token", SWARM_EINVAL,
    swarm_sleep_ns(SWARM_WAIT_FOREVER, NULL))
BAD(swarm_sleep_ns, "INT64_MIN", SWARM_EINVAL, swarm_sleep_ns(INT64_MIN, NULL))
BAD(swarm_sleep_ns, "INT64_MAX with a fired token", SWARM_ECANCELED, ({
        swarm_cancel *c = token();
        swarm_cancel_trigger(c);
        swarm_sleep_ns(INT64_MAX, c);
    }))

BAD(swarm_thread_hooks_init, "NULL", SWARM_EINVAL, swarm_thread_hooks_init(NULL))
BAD(swarm_thread_hooks_set, "size 0", SWARM_EINVAL, ({
        swarm_thread_hooks h = {.size = 0};
        swarm_thread_hooks_set(&h);
    }))
BAD(swarm_thread_hooks_set, "larger struct, NULL functions", 0, ({
        struct {
            swarm_thread_hooks h;
            char tail[64];
        } big = {.h.size = sizeof big};
        swarm_thread_hooks_set(&big.h);
    }))
BAD(swarm_thread_hooks_get, "NULL", SWARM_EINVAL, swarm_thread_hooks_get(NULL))
BAD(swarm_thread_hooks_get, "size 0", SWARM_EINVAL, ({
        swarm_thread_hooks h = {.size = 0};
        swarm_thread_hooks_get(&h);
    }))

/* ---- chan ---------------------------------------------------------------------------------- */
BAD(swarm_chan_opts_init, "NULL", SWARM_EINVAL, swarm_chan_opts_init(NULL))
BAD(swarm_chan_create, "NULL out", SWARM_EINVAL, swarm_chan_create(NULL, NULL))
BAD(swarm_chan_create, "capacity 0", SWARM_EINVAL, ({
        swarm_chan_opts o;
        swarm_chan_opts_init(&o);
        o.capacity = 0;
        swarm_chan *ch;
        swarm_chan_create(&ch, &o);
    }))
BAD(swarm_chan_create, "capacity UINT64_MAX", SWARM_EINVAL, ({
        swarm_chan_opts o;
        swarm_chan_opts_init(&o);
        o.capacity = UINT64_MAX;
        swarm_chan *ch;
        swarm_chan_create(&ch, &o);
    }))
BAD(swarm_chan_create, "elem_size 0", SWARM_EINVAL, ({
        swarm_chan_opts o;
        swarm_chan_opts_init(&o);
        o.elem_size = 0;
        swarm_chan *ch;
        swarm_chan_create(&ch, &o);
    }))
BAD(swarm_chan_create, "elem_size huge", SWARM_EINVAL, ({
        swarm_chan_opts o;
        swarm_chan_opts_init(&o);
        o.elem_size = UINT64_MAX;
        swarm_chan *ch;
        swarm_chan_create(&ch, &o);
    }))
BAD(swarm_chan_create, "full_mode 7", SWARM_EINVAL, ({
        swarm_chan_opts o;
        swarm_chan_opts_init(&o);
        o.full_mode = 7;
        swarm_chan *ch;
        swarm_chan_create(&ch, &o);
    }))
BAD(swarm_chan_create, "opts size 0", SWARM_EINVAL, ({
        swarm_chan_opts o;
        swarm_chan_opts_init(&o);
        o.size = 0;
        swarm_chan *ch;
        swarm_chan_create(&ch, &o);
    }))
BAD(swarm_chan_create, "spin UINT32_MAX-1 (clamped)", 0, ({
        swarm_chan_opts o;
        swarm_chan_opts_init(&o);
        o.spin = UINT32_MAX - 1;
        swarm_chan *ch;
        swarm_chan_create(&ch, &o);
    }))
BADV(swarm_chan_destroy, "NULL", swarm_chan_destroy(NULL))
BAD(swarm_chan_close, "NULL", SWARM_EINVAL, swarm_chan_close(NULL))
BAD(swarm_chan_send, "NULL chan", SWARM_EINVAL, swarm_chan_send(NULL, &one))
BAD(swarm_chan_send, "NULL elem", SWARM_EINVAL, swarm_chan_send(chan8(), NULL))
BAD(swarm_chan_send, "closed", SWARM_ECLOSED, swarm_chan_send(closed_chan(), &one))
BAD(swarm_chan_try_send, "NULL chan", SWARM_EINVAL, swarm_chan_try_send(NULL, &one))
BAD(swarm_chan_try_send, "NULL elem", SWARM_EINVAL, swarm_chan_try_send(chan8(), NULL))
BAD(swarm_chan_send_timeout, "timeout -2", SWARM_EINVAL, swarm_chan_send_timeout(chan8(), &one, -2))
BAD(swarm_chan_send_timeout, "timeout INT64_MIN", SWARM_EINVAL,
    swarm_chan_send_timeout(chan8(), &one, INT64_MIN))
BAD(swarm_chan_send_timeout, "timeout INT64_MAX, room", 0,
    swarm_chan_send_timeout(chan8(), &one, INT64_MAX))
BAD(swarm_chan_send_timeout, "timeout INT64_MAX, full", SWARM_ECLOSED, ({
        swarm_chan *ch = chan_of(1, 8);
        swarm_chan_send(ch, &one);
        swarm_chan_close(ch);
        swarm_chan_send_timeout(ch, &one, INT64_MAX);
    }))
BAD(swarm_chan_send_ex, "NULL chan", SWARM_EINVAL, swarm_chan_send_ex(NULL, &one, 0, NULL))
BAD(swarm_chan_send_ex, "fired token, full", SWARM_ECANCELED, ({
        swarm_chan *ch = chan_of(1, 8);
        swarm_chan_send(ch, &one);
        swarm_cancel *c = token();
        swarm_cancel_trigger(c);
        swarm_chan_send_ex(ch, &one, SWARM_WAIT_FOREVER, c);
    }))
BAD(swarm_chan_recv, "NULL chan", SWARM_EINVAL, swarm_chan_recv(NULL, sink))
BAD(swarm_chan_recv, "NULL out", SWARM_EINVAL, swarm_chan_recv(chan8(), NULL))
BAD(swarm_chan_recv, "closed and empty", SWARM_ECLOSED, swarm_chan_recv(closed_chan(), sink))
BAD(swarm_chan_try_recv, "NULL chan", SWARM_EINVAL, swarm_chan_try_recv(NULL, sink))
BAD(swarm_chan_try_recv, "NULL out", SWARM_EINVAL, swarm_chan_try_recv(chan8(), NULL))
BAD(swarm_chan_recv_timeout, "timeout -2", SWARM_EINVAL, swarm_chan_recv_timeout(chan8(), sink, -2))
BAD(swarm_chan_recv_timeout, "timeout INT64_MIN", SWARM_EINVAL,
    swarm_chan_recv_timeout(chan8(), sink, INT64_MIN))
BAD(swarm_chan_recv_timeout, "timeout INT64_MAX, closed", SWARM_ECLOSED,
    swarm_chan_recv_timeout(closed_chan(), sink, INT64_MAX))
BAD(swarm_chan_recv_timeout, "timeout INT64_MAX-1, closed", SWARM_ECLOSED,
    swarm_chan_recv_timeout(closed_chan(), sink, INT64_MAX - 1))
BAD(swarm_chan_recv_ex, "NULL out", SWARM_EINVAL, swarm_chan_recv_ex(chan8(), NULL, 0, NULL))
BAD(swarm_chan_recv_ex, "fired token, empty", SWARM_ECANCELED, ({
        swarm_cancel *c = token();
        swarm_cancel_trigger(c);
        swarm_chan_recv_ex(chan8(), sink, SWARM_WAIT_FOREVER, c);
    }))
BAD(swarm_chan_send_batch, "NULL elems", SWARM_EINVAL,
    swarm_chan_send_batch(chan8(), NULL, 2, 0, NULL))
BAD(swarm_chan_send_batch, "n 0", 0, swarm_chan_send_batch(chan8(), sink, 0, 0, NULL))
BAD(swarm_chan_send_batch, "n SIZE_MAX", ANY, ({
        /* Only what fits is read: the 4-slot channel takes 4 elements and the timeout ends it. */
        swarm_chan_send_batch(chan8(), sink, SIZE_MAX, 0, NULL);
    }))
BAD(swarm_chan_send_batch, "timeout -5", SWARM_EINVAL,
    swarm_chan_send_batch(chan8(), sink, 1, -5, NULL))
BAD(swarm_chan_recv_batch, "max 0", SWARM_EINVAL,
    swarm_chan_recv_batch(chan8(), sink, 0, 0, 0, 0, NULL))
BAD(swarm_chan_recv_batch, "min > max", SWARM_EINVAL,
    swarm_chan_recv_batch(chan8(), sink, 2, 3, 0, 0, NULL))
BAD(swarm_chan_recv_batch, "max SIZE_MAX", SWARM_EINVAL,
    swarm_chan_recv_batch(chan8(), sink, SIZE_MAX, 0, 0, 0, NULL))
BAD(swarm_chan_recv_batch, "linger -1", SWARM_EINVAL,
    swarm_chan_recv_batch(chan8(), sink, 2, 1, -1, 0, NULL))
BAD(swarm_chan_recv_batch, "linger INT64_MAX, closed", SWARM_ECLOSED,
    swarm_chan_recv_batch(closed_chan(), sink, 2, 1, INT64_MAX, INT64_MAX, NULL))
BAD(swarm_chan_recv_batch, "linger INT64_MAX with one queued", 1, ({
        swarm_chan *ch = chan8();
        swarm_chan_send(ch, &one);
        swarm_chan_close(ch);
        swarm_chan_recv_batch(ch, sink, 2, 2, INT64_MAX, INT64_MAX, NULL);
    }))
BAD(swarm_chan_get_stats, "NULL stats", SWARM_EINVAL, swarm_chan_get_stats(chan8(), NULL))
BAD(swarm_chan_get_stats, "size 0", SWARM_EINVAL, ({
        swarm_chan_stats st = {0};
        swarm_chan_get_stats(chan8(), &st);
    }))
BAD(swarm_chan_get_stats, "NULL chan", SWARM_EINVAL, ({
        swarm_chan_stats st = {.size = sizeof st};
        swarm_chan_get_stats(NULL, &st);
    }))
BAD(swarm_chan_len, "NULL", 0, (long long)swarm_chan_len(NULL))
BAD(swarm_chan_capacity, "NULL", 0, (long long)swarm_chan_capacity(NULL))
BAD(swarm_chan_elem_size, "NULL", 0, (long long)swarm_chan_elem_size(NULL))
BAD(swarm_chan_is_closed, "NULL", ANY, swarm_chan_is_closed(NULL))

/* ---- engine: requests and responses --------------------------------------------------------- */
BAD(swarm_request_init, "NULL", SWARM_EINVAL, swarm_request_init(NULL))
BAD(swarm_request_should_stop, "NULL", ANY, swarm_request_should_stop(NULL))
BAD(swarm_request_should_stop, "deadline INT64_MIN", SWARM_ETIMEDOUT, ({
        swarm_request q = request();
        q.deadline_ns = INT64_MIN;
        swarm_request_should_stop(&q);
    }))
BAD(swarm_request_should_stop, "deadline -1", ANY, ({
        swarm_request q = request();
        q.deadline_ns = -1;
        swarm_request_should_stop(&q);
    }))
BAD(swarm_response_opts_init, "NULL", SWARM_EINVAL, swarm_response_opts_init(NULL))
BAD(swarm_response_create, "NULL out", SWARM_EINVAL, swarm_response_create(NULL, NULL))
BAD(swarm_response_create, "capacity huge", ANY_NEG, ({
        swarm_response_opts o;
        swarm_response_opts_init(&o);
        o.initial_capacity = UINT64_MAX;
        swarm_response *r;
        swarm_response_create(&r, &o);
    }))
BADV(swarm_response_destroy, "NULL", swarm_response_destroy(NULL))
BAD(swarm_response_reset, "NULL", SWARM_EINVAL, swarm_response_reset(NULL))
BAD(swarm_response_set_stream, "NULL", SWARM_EINVAL, swarm_response_set_stream(NULL, NULL, NULL))
BAD(swarm_response_set_complete, "NULL", SWARM_EINVAL,
    swarm_response_set_complete(NULL, NULL, NULL))
BAD(swarm_response_write, "NULL resp", SWARM_EINVAL, swarm_response_write(NULL, "x", 1))
BAD(swarm_response_write, "NULL data, len 5", SWARM_EINVAL,
    swarm_response_write(response(), NULL, 5))
BAD(swarm_response_write, "len SIZE_MAX", ANY_NEG, swarm_response_write(response(), "x", SIZE_MAX))
BAD(swarm_response_set_error, "NULL", SWARM_EINVAL,
    swarm_response_set_error(NULL, SWARM_EINVAL, NULL, 0))
BAD(swarm_response_set_error, "code 0", SWARM_EINVAL,
    swarm_response_set_error(response(), 0, NULL, 0))
BAD(swarm_response_set_error, "code positive", SWARM_EINVAL,
    swarm_response_set_error(response(), 5, NULL, 0))
BAD(swarm_response_set_error, "retry_after negative", SWARM_EINVAL,
    swarm_response_set_error(response(), SWARM_EUNAVAILABLE, NULL, -1))
BAD(swarm_response_set_error, "retry_after INT64_MAX", ANY,
    swarm_response_set_error(response(), SWARM_EUNAVAILABLE, "m", INT64_MAX))
BAD(swarm_response_set_usage, "NULL", SWARM_EINVAL, swarm_response_set_usage(NULL, 1, 1))
BAD(swarm_response_set_usage, "UINT64_MAX, no call running", SWARM_ESTATE,
    swarm_response_set_usage(response(), UINT64_MAX, UINT64_MAX))
BAD(swarm_response_data, "NULL", 0, (long long)(intptr_t)swarm_response_data(NULL, NULL))
BAD(swarm_response_status, "NULL", SWARM_EINVAL, swarm_response_status(NULL))
BAD(swarm_response_error_message, "NULL", ANY, swarm_response_error_message(NULL) ? 0 : 1)
BAD(swarm_response_get_info, "NULL info", SWARM_EINVAL, swarm_response_get_info(response(), NULL))
BAD(swarm_response_get_info, "size 0", SWARM_EINVAL, ({
        swarm_response_info in = {0};
        swarm_response_get_info(response(), &in);
    }))

/* ---- engine: the vtable and the decorators --------------------------------------------------- */
static int noop_infer(void *self, const swarm_request *req, swarm_response *resp)
{
    (void)self;
    (void)req;
    (void)resp;
    return 0;
}
BAD(swarm_engine_create, "NULL ops", SWARM_EINVAL, ({
        swarm_engine *e;
        swarm_engine_create(&e, NULL, NULL, NULL);
    }))
BAD(swarm_engine_create, "ops without infer", SWARM_EINVAL, ({
        swarm_engine_ops ops = {.version = SWARM_ENGINE_OPS_VERSION, .name = "x"};
        swarm_engine *e;
        swarm_engine_create(&e, &ops, NULL, NULL);
    }))
BAD(swarm_engine_create, "ops version 0", ANY_NEG, ({
        swarm_engine_ops ops = {.version = 0, .name = "x", .infer = noop_infer};
        swarm_engine *e;
        swarm_engine_create(&e, &ops, NULL, NULL);
    }))
BAD(swarm_engine_create, "ops version huge", ANY_NEG, ({
        swarm_engine_ops ops = {.version = UINT32_MAX, .name = "x", .infer = noop_infer};
        swarm_engine *e;
        swarm_engine_create(&e, &ops, NULL, NULL);
    }))
BAD(swarm_engine_create, "NULL out", SWARM_EINVAL, ({
        swarm_engine_ops ops = {.version = SWARM_ENGINE_OPS_VERSION, .infer = noop_infer};
        swarm_engine_create(NULL, &ops, NULL, NULL);
    }))
BAD(swarm_engine_retain, "NULL", SWARM_EINVAL, swarm_engine_retain(NULL))
BADV(swarm_engine_destroy, "NULL", swarm_engine_destroy(NULL))
BAD(swarm_engine_name, "NULL", ANY, swarm_engine_name(NULL) ? 0 : 1)
BAD(swarm_engine_infer, "NULL req", SWARM_EINVAL, swarm_engine_infer(mock(), NULL, response()))
BAD(swarm_engine_infer, "NULL resp", SWARM_EINVAL, ({
        swarm_request q = request();
        swarm_engine_infer(mock(), &q, NULL);
    }))
BAD(swarm_engine_infer, "req size 0", SWARM_EINVAL, ({
        swarm_request q = request();
        q.size = 0;
        swarm_engine_infer(mock(), &q, response());
    }))
BAD(swarm_engine_infer, "NULL payload, len 9", SWARM_EINVAL, ({
        swarm_request q = request();
        q.payload = NULL;
        q.payload_len = 9;
        swarm_engine_infer(mock(), &q, response());
    }))
BAD(swarm_engine_infer, "deadline INT64_MIN", SWARM_ETIMEDOUT, ({
        swarm_request q = request();
        q.deadline_ns = INT64_MIN;
        swarm_engine_infer(mock(), &q, response());
    }))
BAD(swarm_engine_infer, "NaN temperature", ANY, ({
        swarm_request q = request();
        q.params.temperature = NAN;
        q.params.top_p = -INFINITY;
        swarm_engine_infer(mock(), &q, response());
    }))
BAD(swarm_engine_infer_batch, "NULL arrays", SWARM_EINVAL,
    swarm_engine_infer_batch(mock(), NULL, NULL, 2))
BAD(swarm_engine_infer_batch, "n 0", ANY, swarm_engine_infer_batch(mock(), NULL, NULL, 0))
BAD(swarm_engine_infer_batch, "NULL element", SWARM_EINVAL, ({
        swarm_request q = request();
        const swarm_request *qs[2] = {&q, NULL};
        swarm_response *rs[2] = {response(), response()};
        swarm_engine_infer_batch(mock(), qs, rs, 2);
    }))
BAD(swarm_engine_infer_batch, "same response twice", SWARM_ESTATE, ({
        swarm_request q = request(), q2 = request();
        const swarm_request *qs[2] = {&q, &q2};
        swarm_response *r = response();
        swarm_response *rs[2] = {r, r};
        swarm_engine_infer_batch(mock(), qs, rs, 2);
    }))
BAD(swarm_engine_cancel, "NULL", SWARM_EINVAL, swarm_engine_cancel(NULL, 1))
BAD(swarm_engine_cancel, "unknown id", ANY, swarm_engine_cancel(mock(), UINT64_MAX))
BAD(swarm_engine_health, "NULL", SWARM_EINVAL, swarm_engine_health(NULL))
BAD(swarm_engine_error_retryable, "unknown code", 0, swarm_engine_error_retryable(INT_MIN))
BAD(swarm_engine_error_is_failure, "unknown code", ANY, swarm_engine_error_is_failure(INT_MAX))
BAD(swarm_timeout_opts_init, "NULL", SWARM_EINVAL, swarm_timeout_opts_init(NULL))
BAD(swarm_engine_timeout_create, "NULL inner", SWARM_EINVAL, ({
        swarm_engine *e;
        swarm_engine_timeout_create(&e, NULL, NULL);
    }))
BAD(swarm_engine_timeout_create, "timeout negative", SWARM_EINVAL, ({
        swarm_timeout_opts o;
        swarm_timeout_opts_init(&o);
        o.timeout_ns = -1;
        swarm_engine *e;
        swarm_engine_timeout_create(&e, mock(), &o);
    }))
BAD(swarm_engine_timeout_create, "timeout INT64_MAX, then infer", ANY, ({
        swarm_timeout_opts o;
        swarm_timeout_opts_init(&o);
        o.timeout_ns = INT64_MAX;
        swarm_engine *e;
        int rc = swarm_engine_timeout_create(&e, mock(), &o);
        swarm_request q = request();
        rc < 0 ? rc : swarm_engine_infer(e, &q, response());
    }))
static int64_t clock_min(void *ctx)
{
    (void)ctx;
    return INT64_MIN + 5;
}
static int64_t clock_max(void *ctx)
{
    (void)ctx;
    return INT64_MAX - 5;
}
BAD(swarm_engine_timeout_create, "clock near INT64_MIN, then infer", ANY, ({
        swarm_timeout_opts o;
        swarm_timeout_opts_init(&o);
        o.clock = clock_min;
        swarm_engine *e;
        int rc = swarm_engine_timeout_create(&e, mock(), &o);
        swarm_request q = request();
        rc < 0 ? rc : swarm_engine_infer(e, &q, response());
    }))
BAD(swarm_engine_timeout_create, "clock near INT64_MAX, then infer", ANY, ({
        swarm_timeout_opts o;
        swarm_timeout_opts_init(&o);
        o.clock = clock_max;
        swarm_engine *e;
        int rc = swarm_engine_timeout_create(&e, mock(), &o);
        swarm_request q = request();
        rc < 0 ? rc : swarm_engine_infer(e, &q, response());
    }))
BAD(swarm_retry_opts_init, "NULL", SWARM_EINVAL, swarm_retry_opts_init(NULL))
BAD(swarm_engine_retry_create, "max_attempts 0", SWARM_EINVAL, ({
        swarm_retry_opts o;
        swarm_retry_opts_init(&o);
        o.max_attempts = 0;
        swarm_engine *e;
        swarm_engine_retry_create(&e, mock(), &o);
    }))
BAD(swarm_engine_retry_create, "max_attempts huge", SWARM_EINVAL, ({
        swarm_retry_opts o;
        swarm_retry_opts_init(&o);
        o.max_attempts = UINT32_MAX;
        swarm_engine *e;
        swarm_engine_retry_create(&e, mock(), &o);
    }))
BAD(swarm_engine_retry_create, "base negative", SWARM_EINVAL, ({
        swarm_retry_opts o;
        swarm_retry_opts_init(&o);
        o.base_ns = -1;
        swarm_engine *e;
        swarm_engine_retry_create(&e, mock(), &o);
    }))
BAD(swarm_engine_retry_create, "NULL inner", SWARM_EINVAL, ({
        swarm_engine *e;
        swarm_engine_retry_create(&e, NULL, NULL);
    }))
/* Issue 14 finding 1: a retry-after hint near INT64_MAX with a 1 ms deadline must not sleep. */
static int hint_max_infer(void *self, const swarm_request *req, swarm_response *resp)
{
    (void)self;
    (void)req;
    swarm_response_set_error(resp, SWARM_EUNAVAILABLE, "busy", INT64_MAX - 1);
    return SWARM_EUNAVAILABLE;
}
BAD(swarm_engine_retry_create, "retry-after INT64_MAX with a deadline", ANY_NEG, ({
        swarm_engine_ops ops = {
            .version = SWARM_ENGINE_OPS_VERSION, .name = "h", .infer = hint_max_infer};
        swarm_engine *in, *e;
        swarm_engine_create(&in, &ops, NULL, NULL);
        swarm_engine_retry_create(&e, in, NULL);
        swarm_request q = request();
        q.deadline_ns = swarm_now_ns() + 1000000;
        swarm_engine_infer(e, &q, response());
    }))
BAD(swarm_engine_retry_get_stats, "NULL stats", SWARM_EINVAL, ({
        swarm_engine *e;
        swarm_engine_retry_create(&e, mock(), NULL);
        swarm_engine_retry_get_stats(e, NULL);
    }))
BAD(swarm_engine_retry_get_stats, "not a retry engine", ANY_NEG, ({
        swarm_retry_stats st = {.size = sizeof st};
        swarm_engine_retry_get_stats(mock(), &st);
    }))
BAD(swarm_breaker_opts_init, "NULL", SWARM_EINVAL, swarm_breaker_opts_init(NULL))
BAD(swarm_engine_breaker_create, "failure_rate 0", SWARM_EINVAL, ({
        swarm_breaker_opts o;
        swarm_breaker_opts_init(&o);
        o.failure_rate_pct = 101;
        swarm_engine *e;
        swarm_engine_breaker_create(&e, mock(), &o);
    }))
BAD(swarm_engine_breaker_create, "window 0 -> default or EINVAL", ANY, ({
        swarm_breaker_opts o;
        swarm_breaker_opts_init(&o);
        o.window_size = UINT32_MAX;
        swarm_engine *e;
        swarm_engine_breaker_create(&e, mock(), &o);
    }))
static int fail_infer(void *self, const swarm_request *req, swarm_response *resp)
{
    (void)self;
    (void)req;
    (void)resp;
    return SWARM_EUNAVAILABLE;
}
BAD(swarm_engine_breaker_create, "open_ns INT64_MAX, tripped", ANY_NEG, ({
        swarm_engine_ops ops = {
            .version = SWARM_ENGINE_OPS_VERSION, .name = "f", .infer = fail_infer};
        swarm_engine *in, *e;
        swarm_engine_create(&in, &ops, NULL, NULL);
        swarm_breaker_opts o;
        swarm_breaker_opts_init(&o);
        o.open_ns = INT64_MAX;
        o.minimum_calls = 1;
        o.window_size = 1;
        swarm_engine_breaker_create(&e, in, &o);
        swarm_request q = request();
        for (int i = 0; i < 3; i++)
            swarm_engine_infer(e, &q, response());
        swarm_response *r = response();
        swarm_engine_infer(e, &q, r);
    }))
BAD(swarm_engine_breaker_create, "NULL inner", SWARM_EINVAL, ({
        swarm_engine *e;
        swarm_engine_breaker_create(&e, NULL, NULL);
    }))
BAD(swarm_engine_breaker_state, "NULL", ANY_NEG, swarm_engine_breaker_state(NULL))
BAD(swarm_engine_breaker_state, "not a breaker", ANY_NEG, swarm_engine_breaker_state(mock()))
BAD(swarm_engine_breaker_get_stats, "NULL stats", SWARM_EINVAL,
    swarm_engine_breaker_get_stats(mock(), NULL))
BAD(swarm_engine_fallback_create, "same engine twice", SWARM_EINVAL, ({
        swarm_engine *m = mock(), *e;
        swarm_engine_fallback_create(&e, m, m, NULL);
    }))
BAD(swarm_engine_fallback_create, "NULL secondary", SWARM_EINVAL, ({
        swarm_engine *e;
        swarm_engine_fallback_create(&e, mock(), NULL, NULL);
    }))
BAD(swarm_fallback_opts_init, "NULL", SWARM_EINVAL, swarm_fallback_opts_init(NULL))
BAD(swarm_engine_fallback_create_ex, "same engine twice", SWARM_EINVAL, ({
        swarm_engine *m = mock(), *e;
        swarm_engine_fallback_create_ex(&e, m, m, NULL);
    }))
BAD(swarm_engine_fallback_create_ex, "opts size 1", SWARM_EINVAL, ({
        swarm_fallback_opts o;
        swarm_fallback_opts_init(&o);
        o.size = 1;
        swarm_engine *e;
        swarm_engine_fallback_create_ex(&e, mock(), mock(), &o);
    }))
BAD(swarm_engine_fallback_create_ex, "allocator without hooks", SWARM_EINVAL, ({
        swarm_allocator a = {0};
        swarm_fallback_opts o;
        swarm_fallback_opts_init(&o);
        o.alloc = &a;
        swarm_engine *e;
        swarm_engine_fallback_create_ex(&e, mock(), mock(), &o);
    }))
BAD(swarm_split_opts_init, "NULL", SWARM_EINVAL, swarm_split_opts_init(NULL))
BAD(swarm_engine_split_create, "same engine twice", SWARM_EINVAL, ({
        swarm_engine *m = mock(), *e;
        swarm_engine *es[2] = {m, m};
        uint32_t w[2] = {1, 1};
        swarm_engine_split_create(&e, es, w, 2, NULL);
    }))
BAD(swarm_engine_split_create, "n 0", SWARM_EINVAL, ({
        swarm_engine *e;
        swarm_engine_split_create(&e, NULL, NULL, 0, NULL);
    }))
BAD(swarm_engine_split_create, "weights all 0", ANY_NEG, ({
        swarm_engine *es[2] = {mock(), mock()}, *e;
        uint32_t w[2] = {0, 0};
        swarm_engine_split_create(&e, es, w, 2, NULL);
    }))
BAD(swarm_engine_split_create, "weights UINT32_MAX", ANY, ({
        swarm_engine *es[2] = {mock(), mock()}, *e;
        uint32_t w[2] = {UINT32_MAX, UINT32_MAX};
        int rc = swarm_engine_split_create(&e, es, w, 2, NULL);
        swarm_request q = request();
        rc < 0 ? rc : swarm_engine_infer(e, &q, response());
    }))
BAD(swarm_engine_split_create, "n SIZE_MAX", SWARM_EINVAL, ({
        swarm_engine *es[2] = {mock(), mock()}, *e;
        uint32_t w[2] = {1, 1};
        swarm_engine_split_create(&e, es, w, SIZE_MAX, NULL);
    }))
BAD(swarm_engine_split_set_weights, "not a split", ANY_NEG, ({
        uint32_t w[1] = {1};
        swarm_engine_split_set_weights(mock(), w, 1);
    }))
BAD(swarm_engine_split_get_counts, "NULL", SWARM_EINVAL,
    swarm_engine_split_get_counts(NULL, NULL, 0))
BAD(swarm_batcher_opts_init, "NULL", SWARM_EINVAL, swarm_batcher_opts_init(NULL))
BAD(swarm_engine_batcher_create, "max_batch huge", SWARM_EINVAL, ({
        swarm_batcher_opts o;
        swarm_batcher_opts_init(&o);
        o.max_batch = UINT32_MAX;
        swarm_engine *e;
        swarm_engine_batcher_create(&e, mock(), &o);
    }))
BAD(swarm_engine_batcher_create, "max_wait negative", SWARM_EINVAL, ({
        swarm_batcher_opts o;
        swarm_batcher_opts_init(&o);
        o.max_wait_ns = -1;
        swarm_engine *e;
        swarm_engine_batcher_create(&e, mock(), &o);
    }))
BAD(swarm_engine_batcher_create, "preferred sizes NULL with n 3", SWARM_EINVAL, ({
        swarm_batcher_opts o;
        swarm_batcher_opts_init(&o);
        o.n_preferred = 3;
        swarm_engine *e;
        swarm_engine_batcher_create(&e, mock(), &o);
    }))
BAD(swarm_engine_batcher_get_stats, "not a batcher", ANY_NEG, ({
        swarm_batcher_stats st = {.size = sizeof st};
        swarm_engine_batcher_get_stats(mock(), &st);
    }))
BAD(swarm_mock_opts_init, "NULL", SWARM_EINVAL, swarm_mock_opts_init(NULL))
BAD(swarm_engine_mock_create, "latency kind 99", SWARM_EINVAL, ({
        swarm_mock_opts o;
        swarm_mock_opts_init(&o);
        o.latency_kind = 99;
        swarm_engine *e;
        swarm_engine_mock_create(&e, &o);
    }))
BAD(swarm_engine_mock_create, "lognormal sigma inf, then infer", ANY, ({
        swarm_mock_opts o;
        swarm_mock_opts_init(&o);
        o.latency_kind = SWARM_MOCK_LATENCY_LOGNORMAL;
        o.latency_ns = 1000;
        o.lognormal_sigma = INFINITY;
        swarm_engine *e;
        int rc = swarm_engine_mock_create(&e, &o);
        swarm_request q = request();
        q.deadline_ns = swarm_now_ns() + 1000000;
        rc < 0 ? rc : swarm_engine_infer(e, &q, response());
    }))
BAD(swarm_engine_mock_create, "lognormal sigma NaN", ANY, ({
        swarm_mock_opts o;
        swarm_mock_opts_init(&o);
        o.latency_kind = SWARM_MOCK_LATENCY_LOGNORMAL;
        o.latency_ns = 1000;
        o.lognormal_sigma = NAN;
        swarm_engine *e;
        int rc = swarm_engine_mock_create(&e, &o);
        swarm_request q = request();
        q.deadline_ns = swarm_now_ns() + 1000000;
        rc < 0 ? rc : swarm_engine_infer(e, &q, response());
    }))
BAD(swarm_engine_mock_create, "hang probability 2", ANY_NEG, ({
        swarm_mock_opts o;
        swarm_mock_opts_init(&o);
        o.hang_probability = 2;
        swarm_engine *e;
        swarm_engine_mock_create(&e, &o);
    }))
BAD(swarm_engine_mock_create, "n_faults 17", SWARM_EINVAL, ({
        swarm_mock_opts o;
        swarm_mock_opts_init(&o);
        o.n_faults = 17;
        swarm_engine *e;
        swarm_engine_mock_create(&e, &o);
    }))
BAD(swarm_engine_mock_script, "NULL codes, n 3", SWARM_EINVAL,
    swarm_engine_mock_script(mock(), NULL, 3))
BAD(swarm_engine_mock_script, "not a mock", ANY_NEG, ({
        int32_t c[1] = {0};
        swarm_engine *e;
        swarm_engine_retry_create(&e, mock(), NULL);
        swarm_engine_mock_script(e, c, 1);
    }))
BAD(swarm_engine_mock_get_stats, "NULL", SWARM_EINVAL, swarm_engine_mock_get_stats(NULL, NULL))

/* ---- policy -------------------------------------------------------------------------------- */
BAD(swarm_policy_opts_init, "NULL", SWARM_EINVAL, swarm_policy_opts_init(NULL))
BAD(swarm_policy_create, "mode 0", SWARM_EINVAL, ({
        swarm_policy_opts o;
        swarm_policy_opts_init(&o);
        swarm_policy *p;
        swarm_policy_create(&p, &o);
    }))
BAD(swarm_policy_create, "mode 99", SWARM_EINVAL, ({
        swarm_policy_opts o;
        swarm_policy_opts_init(&o);
        o.mode = 99;
        swarm_policy *p;
        swarm_policy_create(&p, &o);
    }))
BAD(swarm_policy_create, "min > max", SWARM_EINVAL, ({
        swarm_policy_opts o;
        swarm_policy_opts_init(&o);
        o.mode = SWARM_POLICY_HPA;
        o.min_replicas = 10;
        o.max_replicas = 2;
        swarm_policy *p;
        swarm_policy_create(&p, &o);
    }))
BAD(swarm_policy_create, "negative min", SWARM_EINVAL, ({
        swarm_policy_opts o;
        swarm_policy_opts_init(&o);
        o.mode = SWARM_POLICY_KEDA;
        o.min_replicas = -1;
        swarm_policy *p;
        swarm_policy_create(&p, &o);
    }))
BAD(swarm_policy_create, "NaN tolerance", SWARM_EINVAL, ({
        swarm_policy_opts o;
        swarm_policy_opts_init(&o);
        o.mode = SWARM_POLICY_HPA;
        o.tolerance = NAN;
        swarm_policy *p;
        swarm_policy_create(&p, &o);
    }))
BAD(swarm_policy_create, "history_cap huge", ANY_NEG, ({
        swarm_policy_opts o;
        swarm_policy_opts_init(&o);
        o.mode = SWARM_POLICY_HPA;
        o.history_cap = UINT32_MAX;
        swarm_policy *p;
        swarm_policy_create(&p, &o);
    }))
BAD(swarm_policy_create, "KPA stable window 1 ns", SWARM_EINVAL, ({
        swarm_policy_opts o;
        swarm_policy_opts_init(&o);
        o.mode = SWARM_POLICY_KPA;
        o.stable_window_ns = 1;
        swarm_policy *p;
        swarm_policy_create(&p, &o);
    }))
BAD(swarm_policy_create, "cooldown INT64_MAX, then decide", ANY, ({
        swarm_policy_opts o;
        swarm_policy_opts_init(&o);
        o.mode = SWARM_POLICY_KEDA;
        o.cooldown_ns = INT64_MAX;
        swarm_policy *p;
        int rc = swarm_policy_create(&p, &o);
        swarm_policy_obs ob = obs_of(3, 0);
        swarm_policy_decision d = decision();
        if (rc == 0)
            rc = swarm_policy_decide(p, INT64_MAX - 1, &ob, &d);
        rc;
    }))
BADV(swarm_policy_destroy, "NULL", swarm_policy_destroy(NULL))
BAD(swarm_policy_update, "NULL opts", SWARM_EINVAL, swarm_policy_update(keda(), NULL))
BAD(swarm_policy_update, "mode change", ANY_NEG, ({
        swarm_policy_opts o;
        swarm_policy_opts_init(&o);
        o.mode = SWARM_POLICY_HPA;
        swarm_policy_update(keda(), &o);
    }))
BAD(swarm_policy_decide, "NULL obs", SWARM_EINVAL, ({
        swarm_policy_decision d = decision();
        swarm_policy_decide(keda(), 0, NULL, &d);
    }))
BAD(swarm_policy_decide, "obs size 0", SWARM_EINVAL, ({
        swarm_policy_obs o = obs_of(1, 1);
        o.size = 0;
        swarm_policy_decision d = decision();
        swarm_policy_decide(keda(), 0, &o, &d);
    }))
BAD(swarm_policy_decide, "decision size 0", SWARM_EINVAL, ({
        swarm_policy_obs o = obs_of(1, 1);
        swarm_policy_decision d = {0};
        swarm_policy_decide(keda(), 0, &o, &d);
    }))
BAD(swarm_policy_decide, "n_metrics 0", SWARM_EINVAL, ({
        swarm_policy_obs o = obs_of(1, 1);
        o.n_metrics = 0;
        decide_with(SWARM_POLICY_KEDA, 0, o);
    }))
BAD(swarm_policy_decide, "n_metrics 99", SWARM_EINVAL, ({
        swarm_policy_obs o = obs_of(1, 1);
        o.n_metrics = 99;
        decide_with(SWARM_POLICY_HPA, 0, o);
    }))
BAD(swarm_policy_decide, "target 0", SWARM_EINVAL, ({
        swarm_policy_obs o = obs_of(1, 1);
        o.metrics[0].target = 0;
        decide_with(SWARM_POLICY_HPA, 0, o);
    }))
BAD(swarm_policy_decide, "target NaN", SWARM_EINVAL, ({
        swarm_policy_obs o = obs_of(1, 1);
        o.metrics[0].target = NAN;
        decide_with(SWARM_POLICY_KPA, 0, o);
    }))
BAD(swarm_policy_decide, "ready > current", SWARM_EINVAL, ({
        swarm_policy_obs o = obs_of(1, 1);
        o.ready_replicas = 5;
        decide_with(SWARM_POLICY_HPA, 0, o);
    }))
BAD(swarm_policy_decide, "negative current", SWARM_EINVAL,
    decide_with(SWARM_POLICY_KEDA, 0, obs_of(-1, 1)))
BAD(swarm_policy_decide, "KEDA value NaN", NONNEG,
    decide_with(SWARM_POLICY_KEDA, 0, obs_of(2, NAN)))
BAD(swarm_policy_decide, "HPA value +inf", NONNEG,
    decide_with(SWARM_POLICY_HPA, 0, obs_of(2, INFINITY)))
BAD(swarm_policy_decide, "KPA value DBL_MAX", NONNEG,
    decide_with(SWARM_POLICY_KPA, 0, obs_of(2, DBL_MAX)))
BAD(swarm_policy_decide, "KPA value -inf", NONNEG,
    decide_with(SWARM_POLICY_KPA, 0, obs_of(2, -INFINITY)))
BAD(swarm_policy_decide, "HPA value -1", NONNEG, decide_with(SWARM_POLICY_HPA, 0, obs_of(2, -1)))
BAD(swarm_policy_decide, "current INT32_MAX", NONNEG,
    decide_with(SWARM_POLICY_HPA, 0, obs_of(INT32_MAX, 1e300)))
BAD(swarm_policy_decide, "KPA ready + starting INT32_MAX", NONNEG, ({
        swarm_policy_obs o = obs_of(INT32_MAX, 5);
        o.starting_replicas = INT32_MAX;
        decide_with(SWARM_POLICY_KPA, 0, o);
    }))
BAD(swarm_policy_decide, "now INT64_MIN (beyond +-2^62)", SWARM_EINVAL,
    decide_with(SWARM_POLICY_KPA, INT64_MIN, obs_of(1, 5)))
BAD(swarm_policy_decide, "now INT64_MAX (beyond +-2^62)", SWARM_EINVAL,
    decide_with(SWARM_POLICY_HPA, INT64_MAX, obs_of(1, 5)))
BAD(swarm_policy_decide, "clock jumps 2^63 back", NONNEG,
    decide_twice(SWARM_POLICY_KEDA, INT64_C(1) << 62, -(INT64_C(1) << 62), 5, 5))
BAD(swarm_policy_decide, "KPA clock jumps -2^62 to 2^62", NONNEG,
    decide_twice(SWARM_POLICY_KPA, -(INT64_C(1) << 62), INT64_C(1) << 62, DBL_MAX, DBL_MAX))
BAD(swarm_policy_decide, "HPA two DBL_MAX in one second", NONNEG,
    decide_twice(SWARM_POLICY_HPA, 0, 1, DBL_MAX, DBL_MAX))
BAD(swarm_policy_decide, "LOAD mode counters wrap", ANY, ({
        swarm_policy_opts po;
        swarm_policy_opts_init(&po);
        po.mode = SWARM_POLICY_LOAD;
        swarm_policy *p = NULL;
        long long rc = swarm_policy_create(&p, &po);
        if (rc == 0) {
            swarm_policy_obs o = obs_of(2, 5);
            o.arrivals = UINT64_MAX;
            o.completions = UINT64_MAX;
            o.service_total_s = DBL_MAX;
            swarm_policy_decision d = decision();
            rc = swarm_policy_decide(p, 0, &o, &d);
            o.arrivals = 3;
            o.completions = 1;
            o.service_total_s = NAN;
            if (rc == 0)
                rc = swarm_policy_decide(p, 1000000000, &o, &d);
            if (rc == 0 && d.replicas < 0)
                rc = -1000;
        }
        rc;
    }))
BAD(swarm_policy_state_size, "NULL", 0, (long long)swarm_policy_state_size(NULL))
BAD(swarm_policy_export_state, "NULL buf, len 10", SWARM_EINVAL, ({
        size_t w;
        swarm_policy_export_state(keda(), NULL, 10, &w);
    }))
BAD(swarm_policy_export_state, "buffer too small", ANY_NEG, ({
        size_t w;
        char b[4];
        swarm_policy_export_state(keda(), b, sizeof b, &w);
    }))
BAD(swarm_policy_import_state, "garbage", ANY_NEG, ({
        char b[256];
        memset(b, 0xA5, sizeof b);
        swarm_policy_import_state(keda(), b, sizeof b);
    }))
BAD(swarm_policy_import_state, "truncated export", ANY_NEG, ({
        swarm_policy *p = keda();
        static char b[1 << 16];
        size_t w = 0;
        swarm_policy_export_state(p, b, sizeof b, &w);
        swarm_policy_import_state(keda(), b, w / 2);
    }))
BAD(swarm_policy_import_state, "NULL buf", SWARM_EINVAL,
    swarm_policy_import_state(keda(), NULL, 10))
BAD(swarm_policy_reset, "NULL", SWARM_EINVAL, swarm_policy_reset(NULL))
BAD(swarm_policy_rule_name, "unknown rule", ANY, swarm_policy_rule_name(UINT32_MAX) ? 0 : 1)

/* ---- reconcile ----------------------------------------------------------------------------- */
BAD(swarm_reconcile_opts_init, "NULL", SWARM_EINVAL, swarm_reconcile_opts_init(NULL))
BAD(swarm_reconcile_create, "no policy", SWARM_EINVAL, ({
        swarm_reconcile_opts o;
        swarm_reconcile_opts_init(&o);
        o.observe = observe_ok;
        o.actuate = actuate_ok;
        swarm_reconcile *r;
        swarm_reconcile_create(&r, &o);
    }))
BAD(swarm_reconcile_create, "interval negative", SWARM_EINVAL, ({
        swarm_reconcile_opts o;
        swarm_reconcile_opts_init(&o);
        o.policy = keda();
        o.observe = observe_ok;
        o.actuate = actuate_ok;
        o.interval_ns = -1;
        swarm_reconcile *r;
        swarm_reconcile_create(&r, &o);
    }))
BAD(swarm_reconcile_create, "jitter NaN", SWARM_EINVAL, ({
        swarm_reconcile_opts o;
        swarm_reconcile_opts_init(&o);
        o.policy = keda();
        o.observe = observe_ok;
        o.actuate = actuate_ok;
        o.jitter = NAN;
        swarm_reconcile *r;
        swarm_reconcile_create(&r, &o);
    }))
BAD(swarm_reconcile_create, "backoff factor 0.5", SWARM_EINVAL, ({
        swarm_reconcile_opts o;
        swarm_reconcile_opts_init(&o);
        o.policy = keda();
        o.observe = observe_ok;
        o.actuate = actuate_ok;
        o.backoff_factor = 0.5;
        swarm_reconcile *r;
        swarm_reconcile_create(&r, &o);
    }))
BADV(swarm_reconcile_destroy, "NULL", swarm_reconcile_destroy(NULL))
BAD(swarm_reconcile_step, "NULL", SWARM_EINVAL, swarm_reconcile_step(NULL, 0, NULL))
BAD(swarm_reconcile_step, "now INT64_MIN", ANY, swarm_reconcile_step(loop(), INT64_MIN, NULL))
BAD(swarm_reconcile_step, "now INT64_MAX then INT64_MIN", ANY, ({
        swarm_reconcile *r = loop();
        int64_t next;
        swarm_reconcile_step(r, INT64_MAX, &next);
        swarm_reconcile_step(r, INT64_MIN, &next);
    }))
BAD(swarm_reconcile_start, "NULL", SWARM_EINVAL, swarm_reconcile_start(NULL))
BAD(swarm_reconcile_stop, "not started", ANY, swarm_reconcile_stop(loop()))
BAD(swarm_reconcile_kick, "NULL", SWARM_EINVAL, swarm_reconcile_kick(NULL))
BAD(swarm_reconcile_get_stats, "NULL stats", SWARM_EINVAL, swarm_reconcile_get_stats(loop(), NULL))
BAD(swarm_reconcile_last_decision, "NULL out", SWARM_EINVAL,
    swarm_reconcile_last_decision(loop(), NULL))

/* ---- pool ---------------------------------------------------------------------------------- */
BAD(swarm_pool_opts_init, "NULL", SWARM_EINVAL, swarm_pool_opts_init(NULL))
BAD(swarm_pool_create, "no input", SWARM_EINVAL, ({
        swarm_pool_opts o;
        swarm_pool_opts_init(&o);
        o.engine = mock();
        swarm_pool *p;
        swarm_pool_create(&p, &o);
    }))
BAD(swarm_pool_create, "input of wrong element size", SWARM_EINVAL, ({
        swarm_pool_opts o;
        swarm_pool_opts_init(&o);
        o.engine = mock();
        o.input = chan8();
        swarm_pool *p;
        swarm_pool_create(&p, &o);
    }))
BAD(swarm_pool_create, "max_workers 0", SWARM_EINVAL, ({
        swarm_pool_opts o;
        swarm_pool_opts_init(&o);
        o.engine = mock();
        o.input = task_chan();
        o.max_workers = 0;
        swarm_pool *p;
        swarm_pool_create(&p, &o);
    }))
BAD(swarm_pool_create, "workers > max", SWARM_EINVAL, ({
        swarm_pool_opts o;
        swarm_pool_opts_init(&o);
        o.engine = mock();
        o.input = task_chan();
        o.workers = 100;
        o.max_workers = 2;
        swarm_pool *p;
        swarm_pool_create(&p, &o);
    }))
BAD(swarm_pool_create, "linger negative", SWARM_EINVAL, ({
        swarm_pool_opts o;
        swarm_pool_opts_init(&o);
        o.engine = mock();
        o.input = task_chan();
        o.batch_max = 4;
        o.batch_linger_ns = -1;
        swarm_pool *p;
        swarm_pool_create(&p, &o);
    }))
BAD(swarm_pool_resize, "NULL", SWARM_EINVAL, swarm_pool_resize(NULL, 1))
BAD(swarm_pool_resize, "UINT32_MAX", SWARM_ERANGE, swarm_pool_resize(pool(), UINT32_MAX))
BAD(swarm_pool_stop, "timeout -2", SWARM_EINVAL, swarm_pool_stop(pool(), -2, NULL, 0, NULL))
BAD(swarm_pool_stop, "NULL left, cap 3", SWARM_EINVAL, swarm_pool_stop(pool(), 0, NULL, 3, NULL))
BAD(swarm_pool_stop, "timeout INT64_MAX", NONNEG, swarm_pool_stop(pool(), INT64_MAX, NULL, 0, NULL))
BAD(swarm_pool_stop, "twice", SWARM_ESTATE, ({
        swarm_pool *p = pool();
        swarm_pool_stop(p, 0, NULL, 0, NULL);
        swarm_pool_stop(p, 0, NULL, 0, NULL);
    }))
BAD(swarm_pool_stop, "task deadline -1", NONNEG, ({
        swarm_chan *in = task_chan();
        swarm_pool *p = pool_on(in);
        swarm_task t = {.id = 1, .payload = "x", .payload_len = 1, .deadline_ns = -1};
        swarm_chan_send(in, &t);
        swarm_pool_stop(p, SWARM_WAIT_FOREVER, NULL, 0, NULL);
    }))
BAD(swarm_pool_stop, "task deadline INT64_MIN, enqueued INT64_MAX", NONNEG, ({
        swarm_chan *in = task_chan();
        swarm_pool *p = pool_on(in);
        swarm_task t = {.id = 1,
                        .payload = "x",
                        .payload_len = 1,
                        .deadline_ns = INT64_MIN,
                        .enqueued_ns = INT64_MAX};
        swarm_chan_send(in, &t);
        t.enqueued_ns = INT64_MIN;
        swarm_chan_send(in, &t);
        swarm_pool_stop(p, SWARM_WAIT_FOREVER, NULL, 0, NULL);
    }))
BADV(swarm_pool_destroy, "NULL", swarm_pool_destroy(NULL))
BAD(swarm_pool_get_stats, "NULL stats", SWARM_EINVAL, swarm_pool_get_stats(pool(), NULL))
BAD(swarm_pool_get_stats, "size 0", SWARM_EINVAL, ({
        swarm_pool_stats st = {0};
        swarm_pool_get_stats(pool(), &st);
    }))
BAD(swarm_pool_get_histogram, "kind 9", SWARM_EINVAL,
    swarm_pool_get_histogram(pool(), 9, NULL, 0, NULL, NULL, NULL))
BAD(swarm_pool_get_histogram, "n_le huge", SWARM_EINVAL, ({
        int64_t le[1] = {1};
        swarm_pool_get_histogram(pool(), 0, le, UINT32_MAX, sink, NULL, NULL);
    }))
BAD(swarm_pool_get_histogram, "negative bound", SWARM_EINVAL, ({
        int64_t le[1] = {-1};
        swarm_pool_get_histogram(pool(), 0, le, 1, sink, NULL, NULL);
    }))
BAD(swarm_pool_get_histogram, "INT64_MAX bound", 0, ({
        int64_t le[2] = {0, INT64_MAX};
        swarm_pool_get_histogram(pool(), 1, le, 2, sink, NULL, NULL);
    }))
BAD(swarm_pool_target, "NULL", 0, (long long)swarm_pool_target(NULL))

BAD(swarm_pool_submit, "NULL task", SWARM_EINVAL, swarm_pool_submit(pool(), NULL, 0))
BAD(swarm_pool_submit, "timeout -2", SWARM_EINVAL, ({
        swarm_task t = {.id = 1, .payload = "x", .payload_len = 1};
        swarm_pool_submit(pool(), &t, -2);
    }))
BAD(swarm_pool_submit, "stopped pool, timeout INT64_MAX", SWARM_ECLOSED, ({
        swarm_pool *p = pool();
        swarm_pool_stop(p, 0, NULL, 0, NULL);
        swarm_task t = {.id = 1, .payload = "x", .payload_len = 1};
        swarm_pool_submit(p, &t, INT64_MAX);
    }))
BAD(swarm_pool_submit, "deadline INT64_MIN, enqueued INT64_MAX", ANY, ({
        swarm_task t = {.id = 1,
                        .payload = "x",
                        .payload_len = 1,
                        .deadline_ns = INT64_MIN,
                        .enqueued_ns = INT64_MAX};
        swarm_pool *p = pool();
        int rc = swarm_pool_submit(p, &t, 0);
        swarm_pool_stop(p, SWARM_WAIT_FOREVER, NULL, 0, NULL);
        rc;
    }))
BAD(swarm_pool_result_release, "NULL result", SWARM_EINVAL, swarm_pool_result_release(pool(), NULL))
BAD(swarm_pool_result_release, "zeroed result", ANY, ({
        swarm_pool_result r;
        memset(&r, 0, sizeof r);
        swarm_pool_result_release(pool(), &r);
    }))
BAD(swarm_pool_take_undelivered, "before stop", SWARM_ESTATE,
    swarm_pool_take_undelivered(pool(), NULL, 0))
BAD(swarm_pool_take_undelivered, "NULL out, cap 4", SWARM_EINVAL, ({
        swarm_pool *p = pool();
        swarm_pool_stop(p, 0, NULL, 0, NULL);
        swarm_pool_take_undelivered(p, NULL, 4);
    }))
BAD(swarm_pool_observe, "target NaN", SWARM_EINVAL, ({
        swarm_policy_obs o = obs_of(1, 1);
        swarm_pool_observe(pool(), NAN, 0, &o);
    }))
BAD(swarm_pool_observe, "target -1", SWARM_EINVAL, ({
        swarm_policy_obs o = obs_of(1, 1);
        swarm_pool_observe(pool(), -1, 0, &o);
    }))
BAD(swarm_pool_observe, "obs size 1", SWARM_EINVAL, ({
        swarm_policy_obs o = obs_of(1, 1);
        o.size = 1;
        swarm_pool_observe(pool(), 1, 0, &o);
    }))
BAD(swarm_pool_observe, "activation -inf", ANY_NEG, ({
        swarm_policy_obs o = obs_of(1, 1);
        swarm_pool_observe(pool(), 1, -INFINITY, &o);
    }))
BAD(swarm_reconcile_pool_opts_init, "NULL", SWARM_EINVAL, swarm_reconcile_pool_opts_init(NULL))
BAD(swarm_reconcile_create_for_pool, "no pool", SWARM_EINVAL, ({
        swarm_reconcile_pool_opts o;
        swarm_reconcile_pool_opts_init(&o);
        o.policy = keda();
        swarm_reconcile *r;
        swarm_reconcile_create_for_pool(&r, &o);
    }))
BAD(swarm_reconcile_create_for_pool, "target inf", SWARM_EINVAL, ({
        swarm_reconcile_pool_opts o;
        swarm_reconcile_pool_opts_init(&o);
        o.policy = keda();
        o.pool = pool();
        o.target_per_worker = INFINITY;
        swarm_reconcile *r;
        swarm_reconcile_create_for_pool(&r, &o);
    }))
BAD(swarm_reconcile_create_for_pool, "manual 7", SWARM_EINVAL, ({
        swarm_reconcile_pool_opts o;
        swarm_reconcile_pool_opts_init(&o);
        o.policy = keda();
        o.pool = pool();
        o.manual = 7;
        swarm_reconcile *r;
        swarm_reconcile_create_for_pool(&r, &o);
    }))
BAD(swarm_reconcile_create_for_pool, "NULL out", SWARM_EINVAL,
    swarm_reconcile_create_for_pool(NULL, NULL))

/* ---- sim ---------------------------------------------------------------------------------- */
static swarm_sim_trace *trace2(double r1, double r2)
{
    swarm_sim_point pts[2] = {{0, r1}, {10, r2}};
    swarm_sim_trace *t = NULL;
    if (swarm_sim_trace_create(&t, pts, 2, NULL) != 0)
        abort();
    return t;
}
static long long sim_fixed(int32_t n, double service_s, double startup_s, double rps)
{
    swarm_sim_opts o;
    swarm_sim_opts_init(&o);
    o.kind = SWARM_SIM_FIXED;
    o.fixed_replicas = n;
    o.service_mean_s = service_s;
    o.startup_s = startup_s;
    o.tail_s = 5;
    swarm_sim *s = NULL;
    long long rc = swarm_sim_create(&s, trace2(rps, rps), &o);
    if (rc == 0)
        rc = swarm_sim_run(s);
    return rc;
}
BAD(swarm_sim_trace_create, "NULL rows, n 2", SWARM_EINVAL, ({
        swarm_sim_trace *t;
        swarm_sim_trace_create(&t, NULL, 2, NULL);
    }))
BAD(swarm_sim_trace_create, "rate NaN", SWARM_EINVAL, ({
        swarm_sim_point p[1] = {{0, NAN}};
        swarm_sim_trace *t;
        swarm_sim_trace_create(&t, p, 1, NULL);
    }))
BAD(swarm_sim_trace_create, "time going back", SWARM_EINVAL, ({
        swarm_sim_point p[2] = {{5, 1}, {1, 1}};
        swarm_sim_trace *t;
        swarm_sim_trace_create(&t, p, 2, NULL);
    }))
BAD(swarm_sim_trace_create, "rate 1e300", ANY, ({
        swarm_sim_point p[2] = {{0, 1e300}, {1e300, 1}};
        swarm_sim_trace *t;
        swarm_sim_trace_create(&t, p, 2, NULL);
    }))
BAD(swarm_sim_trace_create, "n SIZE_MAX", SWARM_ERANGE, ({
        swarm_sim_point p[1] = {{0, 1}};
        swarm_sim_trace *t;
        swarm_sim_trace_create(&t, p, SIZE_MAX, NULL);
    }))
BAD(swarm_sim_trace_parse, "NULL text", SWARM_EINVAL, ({
        swarm_sim_trace *t;
        swarm_sim_trace_parse(&t, NULL, 5, NULL, NULL);
    }))
BAD(swarm_sim_trace_parse, "garbage names line 2", 2, ({
        swarm_sim_trace *t;
        uint32_t line = 0;
        const char *txt = "0,1\nnot,a,row\n";
        int rc = swarm_sim_trace_parse(&t, txt, strlen(txt), &line, NULL);
        rc < 0 ? (long long)line : -1000;
    }))
BAD(swarm_sim_trace_parse, "inf and huge numbers", ANY_NEG, ({
        swarm_sim_trace *t;
        const char *txt = "0,inf\n1e999,5\n";
        swarm_sim_trace_parse(&t, txt, strlen(txt), NULL, NULL);
    }))
BAD(swarm_sim_trace_parse, "no terminator, len past text", ANY, ({
        swarm_sim_trace *t;
        static const char txt[4] = {'0', ',', '1', '0'};
        swarm_sim_trace_parse(&t, txt, sizeof txt, NULL, NULL);
    }))
BAD(swarm_sim_gen_opts_init, "NULL", SWARM_EINVAL, swarm_sim_gen_opts_init(NULL))
BAD(swarm_sim_trace_generate, "shape 0", SWARM_EINVAL, ({
        swarm_sim_gen_opts g;
        swarm_sim_gen_opts_init(&g);
        swarm_sim_trace *t;
        swarm_sim_trace_generate(&t, &g, NULL);
    }))
BAD(swarm_sim_trace_generate, "spikes, duration 1e18 s", SWARM_EINVAL, ({
        swarm_sim_gen_opts g;
        swarm_sim_gen_opts_init(&g);
        g.shape = SWARM_SIM_SHAPE_SPIKES;
        g.base_rps = 1;
        g.peak_rps = 10;
        g.duration_s = 1e18;
        g.burst_s = 1e-9;
        g.gap_s = 1e-9;
        swarm_sim_trace *t;
        swarm_sim_trace_generate(&t, &g, NULL);
    }))
BAD(swarm_sim_trace_generate, "spikes needing 10^10 rows", SWARM_ERANGE, ({
        swarm_sim_gen_opts g;
        swarm_sim_gen_opts_init(&g);
        g.shape = SWARM_SIM_SHAPE_SPIKES;
        g.base_rps = 1;
        g.peak_rps = 10;
        g.duration_s = 1e8;
        g.burst_s = 1e-3;
        g.gap_s = 1e-3;
        swarm_sim_trace *t;
        swarm_sim_trace_generate(&t, &g, NULL);
    }))
BAD(swarm_sim_trace_generate, "sine, period NaN", ANY_NEG, ({
        swarm_sim_gen_opts g;
        swarm_sim_gen_opts_init(&g);
        g.shape = SWARM_SIM_SHAPE_SINE;
        g.period_s = NAN;
        g.duration_s = NAN;
        swarm_sim_trace *t;
        swarm_sim_trace_generate(&t, &g, NULL);
    }))
BAD(swarm_sim_trace_len, "NULL", 0, (long long)swarm_sim_trace_len(NULL))
BAD(swarm_sim_trace_get, "index past end", ANY_NEG, ({
        swarm_sim_point p;
        swarm_sim_trace_get(trace2(1, 2), SIZE_MAX, &p);
    }))
BADV(swarm_sim_trace_destroy, "NULL", swarm_sim_trace_destroy(NULL))
BAD(swarm_sim_opts_init, "NULL", SWARM_EINVAL, swarm_sim_opts_init(NULL))
BAD(swarm_sim_config_parse, "NULL text", SWARM_EINVAL, ({
        swarm_sim_opts so;
        swarm_policy_opts po;
        swarm_sim_opts_init(&so);
        swarm_policy_opts_init(&po);
        swarm_sim_config_parse(NULL, 3, &so, &po, NULL);
    }))
BAD(swarm_sim_config_parse, "hostile lines", ANY_NEG, ({
        swarm_sim_opts so;
        swarm_policy_opts po;
        swarm_sim_opts_init(&so);
        swarm_policy_opts_init(&po);
        const char *txt = "mode=keda\nmax_replicas=99999999999999999999\n=\n\x01\n";
        swarm_sim_config_parse(txt, strlen(txt), &so, &po, NULL);
    }))
BAD(swarm_sim_create, "NULL trace", SWARM_EINVAL, ({
        swarm_sim *s;
        swarm_sim_create(&s, NULL, NULL);
    }))
BAD(swarm_sim_create, "policy kind without a policy", ANY_NEG, ({
        swarm_sim_opts o;
        swarm_sim_opts_init(&o);
        o.kind = SWARM_SIM_POLICY;
        o.policy = NULL;
        swarm_sim *s;
        swarm_sim_create(&s, trace2(1, 1), &o);
    }))
BAD(swarm_sim_create, "service mean NaN", SWARM_EINVAL, sim_fixed(2, NAN, 0, 1))
BAD(swarm_sim_create, "startup -5", ANY_NEG, sim_fixed(2, 0.1, -5, 1))
BAD(swarm_sim_create, "fixed -1", SWARM_EINVAL, sim_fixed(-1, 0.1, 0, 1))
BAD(swarm_sim_run, "NULL", SWARM_EINVAL, swarm_sim_run(NULL))
BAD(swarm_sim_run, "service 1e-12 s, 1e6 rps", ANY, sim_fixed(1, 1e-12, 0, 1e6))
BAD(swarm_sim_run, "service 1e12 s", ANY, sim_fixed(1, 1e12, 0, 10))
BAD(swarm_sim_run, "fixed INT32_MAX replicas", ANY, sim_fixed(INT32_MAX, 0.1, 1e9, 1))
BAD(swarm_sim_get_result, "NULL out", SWARM_EINVAL, ({
        swarm_sim_opts o;
        swarm_sim_opts_init(&o);
        o.kind = SWARM_SIM_FIXED;
        o.fixed_replicas = 1;
        swarm_sim *s;
        swarm_sim_create(&s, trace2(1, 1), &o);
        swarm_sim_get_result(s, NULL);
    }))
BAD(swarm_sim_timeline_len, "NULL", 0, (long long)swarm_sim_timeline_len(NULL))
BAD(swarm_sim_get_timeline, "NULL sim", SWARM_EINVAL, swarm_sim_get_timeline(NULL, 0, NULL, 1))
BADV(swarm_sim_destroy, "NULL", swarm_sim_destroy(NULL))
BAD(swarm_sim_erlang_c, "servers 0", ANY, ({
        double pw;
        swarm_sim_erlang_c(0, 1, &pw);
    }))
BAD(swarm_sim_erlang_c, "offered NaN", SWARM_EINVAL, ({
        double pw;
        swarm_sim_erlang_c(4, NAN, &pw);
    }))
BAD(swarm_sim_erlang_c, "INT32_MAX servers, offered 1e9", ANY, ({
        double pw;
        swarm_sim_erlang_c(INT32_MAX, 1e9, &pw);
    }))
BAD(swarm_sim_erlang_servers, "quantile 2", SWARM_EINVAL, ({
        int32_t n;
        swarm_sim_erlang_servers(10, 0.1, 1, 2, 100, &n);
    }))
BAD(swarm_sim_erlang_servers, "offered 1e300", SWARM_ERANGE, ({
        int32_t n;
        swarm_sim_erlang_servers(1e300, 0.1, 1, 0.99, INT32_MAX, &n);
    }))

/* ---- metrics ------------------------------------------------------------------------------- */
BAD(swarm_metrics_opts_init, "NULL", SWARM_EINVAL, swarm_metrics_opts_init(NULL))
BAD(swarm_metrics_create, "max_objects 0 -> default or EINVAL", ANY, ({
        swarm_metrics_opts o;
        swarm_metrics_opts_init(&o);
        o.max_objects = UINT32_MAX;
        swarm_metrics *m;
        swarm_metrics_create(&m, &o);
    }))
BAD(swarm_metrics_create, "NULL out", SWARM_EINVAL, swarm_metrics_create(NULL, NULL))
BADV(swarm_metrics_destroy, "NULL", swarm_metrics_destroy(NULL))
BAD(swarm_metrics_add_chan, "NULL name", SWARM_EINVAL,
    swarm_metrics_add_chan(metrics(), NULL, chan8()))
BAD(swarm_metrics_add_chan, "empty name", SWARM_EINVAL,
    swarm_metrics_add_chan(metrics(), "", chan8()))
BAD(swarm_metrics_add_chan, "hostile name", ANY, ({
        swarm_metrics *m = metrics();
        int rc = swarm_metrics_add_chan(m, "a\"b\\c\nd}{=,", chan8());
        size_t w = 0;
        if (rc == 0)
            rc = swarm_metrics_render(m, SWARM_METRICS_PROMETHEUS, text, sizeof text, &w);
        rc;
    }))
BAD(swarm_metrics_add_chan, "name of 10k chars", ANY, ({
        static char name[10000];
        memset(name, 'a', sizeof name - 1);
        swarm_metrics *m = metrics();
        int rc = swarm_metrics_add_chan(m, name, chan8());
        size_t w = 0;
        if (rc == 0)
            rc = swarm_metrics_render(m, SWARM_METRICS_JSON, text, sizeof text, &w);
        rc;
    }))
BAD(swarm_metrics_add_pool, "NULL pool", SWARM_EINVAL, swarm_metrics_add_pool(metrics(), "p", NULL))
BAD(swarm_metrics_add_reconcile, "NULL loop", SWARM_EINVAL,
    swarm_metrics_add_reconcile(metrics(), "r", NULL))
BAD(swarm_metrics_count, "NULL", 0, (long long)swarm_metrics_count(NULL))
BAD(swarm_metrics_add_engine, "NULL engine", SWARM_EINVAL,
    swarm_metrics_add_engine(metrics(), "e", NULL))
BAD(swarm_metrics_add_engine, "not a decorator", SWARM_ENOTSUP,
    swarm_metrics_add_engine(metrics(), "e", mock()))
BAD(swarm_metrics_chan_rejected, "NULL registry", SWARM_EINVAL,
    swarm_metrics_chan_rejected(NULL, chan8(), 1))
BAD(swarm_metrics_chan_rejected, "unregistered channel", SWARM_EINVAL,
    swarm_metrics_chan_rejected(metrics(), chan8(), UINT64_MAX))
BAD(swarm_metrics_set_loop_bounds, "NULL loop", SWARM_EINVAL,
    swarm_metrics_set_loop_bounds(metrics(), NULL, 0, 1, 1))
BAD(swarm_metrics_set_loop_bounds, "NaN target", SWARM_EINVAL, ({
        swarm_metrics *m = metrics();
        swarm_reconcile *r = loop();
        swarm_metrics_add_reconcile(m, "r", r);
        swarm_metrics_set_loop_bounds(m, r, 0, 1, NAN);
    }))
BAD(swarm_metrics_set_loop_bounds, "max below min", SWARM_EINVAL, ({
        swarm_metrics *m = metrics();
        swarm_reconcile *r = loop();
        swarm_metrics_add_reconcile(m, "r", r);
        swarm_metrics_set_loop_bounds(m, r, 5, 2, 1);
    }))
BAD(swarm_metrics_render, "format 9", SWARM_EINVAL, ({
        size_t w;
        swarm_metrics_render(metrics(), 9, text, sizeof text, &w);
    }))
BAD(swarm_metrics_render, "NULL buf", SWARM_EINVAL, ({
        size_t w;
        swarm_metrics_render(metrics(), SWARM_METRICS_PROMETHEUS, NULL, 10, &w);
    }))
BAD(swarm_metrics_render, "buf of 1 byte", ANY_NEG, ({
        swarm_metrics *m = metrics();
        swarm_metrics_add_chan(m, "c", chan8());
        size_t w;
        char b[1];
        swarm_metrics_render(m, SWARM_METRICS_PROMETHEUS, b, sizeof b, &w);
    }))
BAD(swarm_metrics_render_bound, "NULL size", SWARM_EINVAL,
    swarm_metrics_render_bound(metrics(), SWARM_METRICS_JSON, NULL))

/* ---- the runner ---------------------------------------------------------------------------- */

static int matches(long long got, long long want)
{
    if (want == ANY)
        return 1;
    if (want == ANY_NEG)
        return got < 0 && got >= -100;
    if (want == NONNEG)
        return got >= 0;
    return got == want;
}

/* A case's time limit: 20 s, times SWARM_TEST_TIMEOUT_MULT under sanitizers (the meson test
 * setups set it; a TSan run once took more than 20 s for a generator that allocates 2^24 rows
 * on a loaded machine). */
static unsigned case_alarm_s(void)
{
    const char *m = getenv("SWARM_TEST_TIMEOUT_MULT");
    int mult = m != NULL ? atoi(m) : 1;
    return 20u * (unsigned)(mult > 0 && mult < 100 ? mult : 1);
}

/* Runs one case in a child: 0 pass, 1 wrong result, 2 crash or sanitizer abort, 3 hang. */
static int run_case(const bad_case *c, long long *got, int *sig)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        return 2;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        alarm(case_alarm_s());
        long long r = c->run();
        ssize_t wr = write(pfd[1], &r, sizeof r);
        (void)wr;
        _exit(matches(r, c->want) ? 0 : 1);
    }
    close(pfd[1]);
    *got = 0;
    ssize_t rd = read(pfd[0], got, sizeof *got);
    (void)rd;
    close(pfd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    *sig = 0;
    if (WIFSIGNALED(status)) {
        *sig = WTERMSIG(status);
        return *sig == SIGALRM ? 3 : 2;
    }
    return WEXITSTATUS(status) == 0 ? 0 : (WEXITSTATUS(status) == 1 ? 1 : 2);
}

/* Every name in the version script has at least one case. */
static int check_coverage(const char *map_path)
{
    FILE *f = fopen(map_path, "r");
    if (!f) {
        fprintf(stderr, "cannot read %s\n", map_path);
        return 1;
    }
    char line[256];
    int missing = 0, exports = 0;
    while (fgets(line, sizeof line, f)) {
        char name[200];
        if (sscanf(line, " %199[a-z0-9_];", name) != 1 || strncmp(name, "swarm_", 6) != 0)
            continue;
        exports++;
        int found = 0;
        for (int i = 0; i < n_cases && !found; i++)
            found = strcmp(cases[i].fn, name) == 0;
        if (!found) {
            printf("not covered: %s (add a BAD() case in tests/test_badinput.c)\n", name);
            missing++;
        }
    }
    fclose(f);
    printf("coverage: %d exported functions, %d without a case\n", exports, missing);
    return missing != 0;
}

int main(int argc, char **argv)
{
    int failed = 0;
    const char *only = getenv("BADINPUT_ONLY");
    for (int i = 0; i < n_cases; i++) {
        const bad_case *c = &cases[i];
        if (only && strcmp(only, c->fn) != 0)
            continue;
        long long got;
        int sig;
        int rc = run_case(c, &got, &sig);
        if (rc != 0) {
            failed++;
            if (rc == 1)
                printf("FAIL %s [%s]: returned %lld\n", c->fn, c->label, got);
            else if (rc == 3)
                printf("FAIL %s [%s]: hung (%u s alarm)\n", c->fn, c->label, case_alarm_s());
            else
                printf("FAIL %s [%s]: crashed (signal %d) or sanitizer report\n", c->fn, c->label,
                       sig);
        }
    }
    int uncovered = argc > 1 ? check_coverage(argv[1]) : 0;
    printf("%d passed, %d failed\n", n_cases - failed, failed);
    return failed || uncovered ? 1 : 0;
}
