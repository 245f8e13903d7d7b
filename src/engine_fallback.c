/* SPDX-License-Identifier: MIT */
/* Fallback decorator: the secondary serves a call when the primary fails (or its breaker is
 * open), unless output has already been streamed to the caller. */
#include <string.h>

#include "engine_internal.h"
#include "opts_v1.h"

typedef struct fallback_engine {
    swarm_engine *primary, *secondary;
    swarm_allocator alloc;
    swarm__scratch_pool scratch; /* batch scratch blocks (fallback_scratch) */
} fallback_engine;

static int fallback_infer(void *self, const swarm_request *req, swarm_response *resp)
{
    fallback_engine *f = self;
    swarm__resp_mark mark = swarm__resp_mark_get(resp);
    int rc = swarm__engine_call(f->primary, req, resp);
    if (!swarm_engine_error_is_failure(rc) || swarm__resp_streamed_since(resp, mark))
        return rc;
    swarm__resp_rollback(resp, mark);
    return swarm__engine_call(f->secondary, req, resp);
}

/* Per-call scratch of the batch path (one chunk), from the decorator's scratch pool. */
typedef struct fallback_scratch {
    swarm__resp_mark marks[SWARM__BATCH_CHUNK];
    const swarm_request *rq[SWARM__BATCH_CHUNK];
    swarm_response *rs[SWARM__BATCH_CHUNK];
} fallback_scratch;

static void fallback_chunks(fallback_engine *f, const swarm_request *const *reqs,
                            swarm_response *const *resps, size_t n, swarm__resp_mark *marks,
                            const swarm_request **rq, swarm_response **rs, size_t cap)
{
    for (size_t base = 0; base < n; base += cap) {
        size_t m = n - base < cap ? n - base : cap, k = 0;
        for (size_t i = 0; i < m; i++)
            marks[i] = swarm__resp_mark_get(resps[base + i]);
        swarm__engine_call_batch(f->primary, reqs + base, resps + base, m);
        for (size_t i = 0; i < m; i++) {
            swarm_response *r = resps[base + i];
            if (!swarm_engine_error_is_failure(r->err_code) ||
                swarm__resp_streamed_since(r, marks[i]))
                continue;
            swarm__resp_rollback(r, marks[i]);
            rq[k] = reqs[base + i];
            rs[k] = r;
            k++;
        }
        if (k > 0)
            swarm__engine_call_batch(f->secondary, rq, rs, k);
    }
}

/* Without a pooled scratch block (allocation failed): small chunks on the stack. */
static SWARM_NOINLINE void fallback_chunks_small(fallback_engine *f,
                                                 const swarm_request *const *reqs,
                                                 swarm_response *const *resps, size_t n)
{
    swarm__resp_mark marks[SWARM__BATCH_SMALL];
    const swarm_request *rq[SWARM__BATCH_SMALL];
    swarm_response *rs[SWARM__BATCH_SMALL];
    fallback_chunks(f, reqs, resps, n, marks, rq, rs, SWARM__BATCH_SMALL);
}

static int fallback_infer_batch(void *self, const swarm_request *const *reqs,
                                swarm_response *const *resps, size_t n)
{
    fallback_engine *f = self;
    fallback_scratch *s = swarm__scratch_get(&f->scratch);
    if (s == NULL) {
        fallback_chunks_small(f, reqs, resps, n);
        return 0;
    }
    fallback_chunks(f, reqs, resps, n, s->marks, s->rq, s->rs, SWARM__BATCH_CHUNK);
    swarm__scratch_put(&f->scratch, s);
    return 0;
}

static int fallback_cancel(void *self, uint64_t id)
{
    fallback_engine *f = self;
    int a = swarm_engine_cancel(f->primary, id), b = swarm_engine_cancel(f->secondary, id);
    return a == 0 || b == 0 ? 0 : a;
}

static int fallback_health(void *self)
{
    fallback_engine *f = self;
    int a = swarm_engine_health(f->primary);
    return a == 0 ? 0 : swarm_engine_health(f->secondary);
}

static void fallback_destroy(void *self)
{
    fallback_engine *f = self;
    swarm_engine_destroy(f->primary);
    swarm_engine_destroy(f->secondary);
    swarm__scratch_fini(&f->scratch);
    swarm_allocator a = f->alloc;
    swarm__free(&a, f, sizeof *f);
}

static const swarm_engine_ops fallback_ops = {
    .version = SWARM_ENGINE_OPS_VERSION,
    .infer = fallback_infer,
    .infer_batch = fallback_infer_batch,
    .cancel = fallback_cancel,
    .health = fallback_health,
    .destroy = fallback_destroy,
};

int swarm_engine_fallback_create(swarm_engine **out, swarm_engine *primary, swarm_engine *secondary,
                                 const swarm_allocator *alloc)
{
    if (out == NULL || primary == NULL || secondary == NULL || primary == secondary)
        return SWARM_EINVAL;
    swarm_allocator a;
    if (swarm__alloc_init(&a, alloc) != 0)
        return SWARM_EINVAL;
    fallback_engine *f = swarm__alloc(&a, sizeof *f, _Alignof(fallback_engine));
    if (f == NULL)
        return SWARM_ENOMEM;
    f->primary = primary;
    f->secondary = secondary;
    f->alloc = a;
    if (swarm__scratch_init(&f->scratch, &a, sizeof(fallback_scratch)) != 0) {
        swarm__free(&a, f, sizeof *f);
        return SWARM_ENOMEM;
    }
    char name[SWARM__NAME_MAX];
    swarm__engine_name2(name, "fallback", primary, secondary);
    int rc = swarm__engine_wrap(out, &fallback_ops, f, SWARM__ENGINE_FALLBACK, alloc, name);
    if (rc != 0) {
        swarm__scratch_fini(&f->scratch);
        swarm__free(&a, f, sizeof *f);
    }
    return rc;
}

int swarm_fallback_opts_init(swarm_fallback_opts *opts)
{
    if (opts == NULL)
        return SWARM_EINVAL;
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
    return 0;
}

int swarm_engine_fallback_create_ex(swarm_engine **out, swarm_engine *primary,
                                    swarm_engine *secondary, const swarm_fallback_opts *opts)
{
    swarm_fallback_opts o;
    swarm_fallback_opts_init(&o);
    if (opts != NULL && SWARM__OPTS_COPY(fallback_opts, &o, opts) != 0)
        return SWARM_EINVAL;
    return swarm_engine_fallback_create(out, primary, secondary, o.alloc);
}
