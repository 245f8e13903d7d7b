/* SPDX-License-Identifier: MIT */
/* Timeout decorator: tightens each request's deadline; enforcement is cooperative (engines poll
 * swarm_request_should_stop() or read the deadline). */
#include <string.h>

#include "engine_internal.h"
#include "opts_v1.h"

typedef struct timeout_engine {
    swarm_engine *inner;
    int64_t timeout_ns;
    swarm_clock_fn clock;
    void *clock_ctx;
    swarm_allocator alloc;
    swarm__scratch_pool scratch; /* batch scratch blocks (timeout_scratch) */
} timeout_engine;

int swarm_timeout_opts_init(swarm_timeout_opts *opts)
{
    if (opts == NULL)
        return SWARM_EINVAL;
    memset(opts, 0, sizeof *opts);
    opts->size = (uint32_t)sizeof *opts;
    opts->timeout_ns = (int64_t)30 * 1000000000;
    return 0;
}

static int64_t tighten(const timeout_engine *t, int64_t deadline, int64_t now)
{
    /* Saturating: a clock hook near either end of the range must not wrap the deadline. */
    int64_t mine = swarm__time_add(now, t->timeout_ns);
    if (!swarm__has_deadline(deadline) || mine < deadline)
        return mine;
    return deadline;
}

/* An inner ECANCELED that our deadline caused, rather than the caller's token, is a timeout. */
static int map_rc(const timeout_engine *t, const swarm_request *orig, int64_t deadline, int rc)
{
    if (rc == SWARM_ECANCELED && !(orig->cancel && swarm_cancel_is_canceled(orig->cancel)) &&
        t->clock(t->clock_ctx) >= deadline)
        return SWARM_ETIMEDOUT;
    return rc;
}

static int timeout_infer(void *self, const swarm_request *req, swarm_response *resp)
{
    timeout_engine *t = self;
    int64_t now = t->clock(t->clock_ctx);
    swarm_request r = *req;
    r.deadline_ns = tighten(t, req->deadline_ns, now);
    if (now >= r.deadline_ns) {
        swarm__resp_fail(resp, SWARM_ETIMEDOUT, "deadline passed before the call", 0);
        return SWARM_ETIMEDOUT;
    }
    int rc = swarm__engine_call(t->inner, &r, resp);
    return map_rc(t, req, r.deadline_ns, rc);
}

/* Per-call scratch of the batch path (one chunk), from the decorator's scratch pool. */
typedef struct timeout_scratch {
    swarm_request copies[SWARM__BATCH_CHUNK];
    const swarm_request *ptrs[SWARM__BATCH_CHUNK];
    swarm_response *rps[SWARM__BATCH_CHUNK];
} timeout_scratch;

static void timeout_chunks(timeout_engine *t, const swarm_request *const *reqs,
                           swarm_response *const *resps, size_t n, swarm_request *copies,
                           const swarm_request **ptrs, swarm_response **rps, size_t cap)
{
    for (size_t base = 0; base < n; base += cap) {
        size_t m = n - base < cap ? n - base : cap, k = 0;
        int64_t now = t->clock(t->clock_ctx);
        for (size_t i = 0; i < m; i++) {
            const swarm_request *q = reqs[base + i];
            copies[k] = *q;
            copies[k].deadline_ns = tighten(t, q->deadline_ns, now);
            if (now >= copies[k].deadline_ns) {
                swarm__resp_fail(resps[base + i], SWARM_ETIMEDOUT,
                                 "deadline passed before the call", 0);
                continue;
            }
            ptrs[k] = &copies[k];
            rps[k] = resps[base + i];
            k++;
        }
        if (k == 0)
            continue;
        swarm__engine_call_batch(t->inner, ptrs, rps, k);
        /* The copies carry the caller's token, so they can stand in for the originals. */
        for (size_t i = 0; i < k; i++)
            rps[i]->err_code = map_rc(t, ptrs[i], ptrs[i]->deadline_ns, rps[i]->err_code);
    }
}

/* Without a pooled scratch block (allocation failed): small chunks on the stack. */
static SWARM_NOINLINE void timeout_chunks_small(timeout_engine *t, const swarm_request *const *reqs,
                                                swarm_response *const *resps, size_t n)
{
    swarm_request copies[SWARM__BATCH_SMALL];
    const swarm_request *ptrs[SWARM__BATCH_SMALL];
    swarm_response *rps[SWARM__BATCH_SMALL];
    timeout_chunks(t, reqs, resps, n, copies, ptrs, rps, SWARM__BATCH_SMALL);
}

static int timeout_infer_batch(void *self, const swarm_request *const *reqs,
                               swarm_response *const *resps, size_t n)
{
    timeout_engine *t = self;
    timeout_scratch *s = swarm__scratch_get(&t->scratch);
    if (s == NULL) {
        timeout_chunks_small(t, reqs, resps, n);
        return 0;
    }
    timeout_chunks(t, reqs, resps, n, s->copies, s->ptrs, s->rps, SWARM__BATCH_CHUNK);
    swarm__scratch_put(&t->scratch, s);
    return 0;
}

static int timeout_cancel(void *self, uint64_t id)
{
    return swarm_engine_cancel(((timeout_engine *)self)->inner, id);
}

static int timeout_health(void *self)
{
    return swarm_engine_health(((timeout_engine *)self)->inner);
}

static void timeout_destroy(void *self)
{
    timeout_engine *t = self;
    swarm_engine_destroy(t->inner);
    swarm__scratch_fini(&t->scratch);
    swarm_allocator a = t->alloc;
    swarm__free(&a, t, sizeof *t);
}

static const swarm_engine_ops timeout_ops = {
    .version = SWARM_ENGINE_OPS_VERSION,
    .infer = timeout_infer,
    .infer_batch = timeout_infer_batch,
    .cancel = timeout_cancel,
    .health = timeout_health,
    .destroy = timeout_destroy,
};

int swarm_engine_timeout_create(swarm_engine **out, swarm_engine *inner,
                                const swarm_timeout_opts *opts)
{
    swarm_timeout_opts o;
    swarm_timeout_opts_init(&o);
    if (out == NULL || inner == NULL)
        return SWARM_EINVAL;
    if (opts != NULL && SWARM__OPTS_COPY(timeout_opts, &o, opts) != 0)
        return SWARM_EINVAL;
    if (o.timeout_ns < 0)
        return SWARM_EINVAL;
    if (o.timeout_ns == 0)
        o.timeout_ns = (int64_t)30 * 1000000000;
    swarm_allocator a;
    if (swarm__alloc_init(&a, o.alloc) != 0)
        return SWARM_EINVAL;
    timeout_engine *t = swarm__alloc(&a, sizeof *t, _Alignof(timeout_engine));
    if (t == NULL)
        return SWARM_ENOMEM;
    t->inner = inner;
    t->timeout_ns = o.timeout_ns;
    t->clock = o.clock != NULL ? o.clock : swarm__engine_clock;
    t->clock_ctx = o.clock_ctx;
    t->alloc = a;
    if (swarm__scratch_init(&t->scratch, &a, sizeof(timeout_scratch)) != 0) {
        swarm__free(&a, t, sizeof *t);
        return SWARM_ENOMEM;
    }
    char name[SWARM__NAME_MAX];
    swarm__engine_name2(name, "timeout", inner, NULL);
    int rc = swarm__engine_wrap(out, &timeout_ops, t, SWARM__ENGINE_TIMEOUT, o.alloc, name);
    if (rc != 0) {
        swarm__scratch_fini(&t->scratch);
        swarm__free(&a, t, sizeof *t);
    }
    return rc;
}
