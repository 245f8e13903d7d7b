/* SPDX-License-Identifier: MIT */
/*
 * The engine contract: requests, library-owned responses, the versioned vtable handle and the
 * dispatch functions that supply defaults for NULL slots and complete each response exactly once.
 */
#include <limits.h>
#include <string.h>

#include "engine_internal.h"
#include "opts_v1.h"
#include "platform.h"

/* ---- requests ------------------------------------------------------------------------------ */

int swarm_request_init(swarm_request *req)
{
    if (req == NULL)
        return SWARM_EINVAL;
    memset(req, 0, sizeof *req);
    req->size = (uint32_t)sizeof *req;
    req->params.temperature = 1.0;
    req->params.top_p = 1.0;
    return 0;
}

/* The smallest request a caller may hand us: everything up to and including params. */
#define REQ_MIN_SIZE ((uint32_t)sizeof(swarm_request))

int swarm_request_should_stop(const swarm_request *req)
{
    if (req == NULL)
        return SWARM_EINVAL;
    if (req->cancel != NULL && swarm_cancel_is_canceled(req->cancel))
        return SWARM_ECANCELED;
    if (swarm__has_deadline(req->deadline_ns) && swarm__clock_ns() >= req->deadline_ns)
        return SWARM_ETIMEDOUT;
    return 0;
}

/* ---- responses ----------------------------------------------------------------------------- */

#define RESP_DEFAULT_CAP 4096u
#define RESP_DEFAULT_MAX ((uint64_t)64 << 20)

int swarm_response_opts_init(swarm_response_opts *opts)
{
    if (opts == NULL)
        return SWARM_EINVAL;
    memset(opts, 0, sizeof *opts);
    opts->size = (uint32_t)sizeof *opts;
    opts->initial_capacity = RESP_DEFAULT_CAP;
    opts->max_bytes = RESP_DEFAULT_MAX;
    return 0;
}

int swarm_response_create(swarm_response **out, const swarm_response_opts *opts)
{
    swarm_response_opts o;
    swarm_response_opts_init(&o);
    if (out == NULL)
        return SWARM_EINVAL;
    if (opts != NULL && SWARM__OPTS_COPY(response_opts, &o, opts) != 0)
        return SWARM_EINVAL;
    if (o.initial_capacity == 0)
        o.initial_capacity = RESP_DEFAULT_CAP;
    if (o.max_bytes == 0)
        o.max_bytes = RESP_DEFAULT_MAX;
    if (o.max_bytes > (SIZE_MAX >> 2))
        o.max_bytes = SIZE_MAX >> 2;
    if (o.initial_capacity > o.max_bytes)
        return SWARM_EINVAL;
    swarm_allocator a;
    if (swarm__alloc_init(&a, o.alloc) != 0)
        return SWARM_EINVAL;
    swarm_response *r = swarm__alloc(&a, sizeof *r, _Alignof(swarm_response));
    if (r == NULL)
        return SWARM_ENOMEM;
    r->buf = swarm__alloc(&a, (size_t)o.initial_capacity + 1, 16);
    if (r->buf == NULL) {
        swarm__free(&a, r, sizeof *r);
        return SWARM_ENOMEM;
    }
    r->cap = (size_t)o.initial_capacity;
    r->max = (size_t)o.max_bytes;
    r->alloc = a;
    r->status = SWARM_EAGAIN;
    *out = r;
    return 0;
}

void swarm_response_destroy(swarm_response *resp)
{
    if (resp == NULL)
        return;
    swarm_allocator a = resp->alloc;
    swarm__free(&a, resp->buf, resp->cap + 1);
    swarm__free(&a, resp, sizeof *resp);
}

static void resp_clear(swarm_response *r)
{
    r->len = 0;
    r->buf[0] = '\0';
    r->state = SWARM__RESP_FRESH;
    r->attempts = 0;
    r->status = SWARM_EAGAIN;
    r->err_code = 0;
    r->retry_after_ns = 0;
    r->req_id = 0;
    r->n_chunks = r->n_streamed = 0;
    r->in_units = r->out_units = 0;
    r->start_ns = r->first_out_ns = r->end_ns = 0;
    r->msg[0] = '\0';
}

int swarm_response_reset(swarm_response *resp)
{
    if (resp == NULL)
        return SWARM_EINVAL;
    if (resp->state == SWARM__RESP_RUNNING)
        return SWARM_ESTATE;
    resp_clear(resp);
    return 0;
}

int swarm_response_set_stream(swarm_response *resp, swarm_response_stream_fn fn, void *ctx)
{
    if (resp == NULL)
        return SWARM_EINVAL;
    if (resp->state == SWARM__RESP_RUNNING)
        return SWARM_ESTATE;
    resp->stream_fn = fn;
    resp->stream_ctx = ctx;
    return 0;
}

int swarm_response_set_complete(swarm_response *resp, swarm_response_complete_fn fn, void *ctx)
{
    if (resp == NULL)
        return SWARM_EINVAL;
    if (resp->state == SWARM__RESP_RUNNING)
        return SWARM_ESTATE;
    resp->complete_fn = fn;
    resp->complete_ctx = ctx;
    return 0;
}

/* Grows the buffer geometrically so that a response that keeps growing costs O(log n)
 * allocations, and a reused response none once it has held its largest output. */
static int resp_reserve(swarm_response *r, size_t need)
{
    if (need <= r->cap)
        return 0;
    if (need > r->max)
        return SWARM_ERANGE;
    size_t ncap = r->cap ? r->cap : RESP_DEFAULT_CAP;
    while (ncap < need)
        ncap = ncap > r->max / 2 ? r->max : ncap * 2;
    char *nb = swarm__alloc(&r->alloc, ncap + 1, 16);
    if (nb == NULL)
        return SWARM_ENOMEM;
    memcpy(nb, r->buf, r->len + 1);
    swarm__free(&r->alloc, r->buf, r->cap + 1);
    r->buf = nb;
    r->cap = ncap;
    return 0;
}

int swarm_response_write(swarm_response *resp, const void *data, size_t len)
{
    if (resp == NULL || (data == NULL && len > 0))
        return SWARM_EINVAL;
    if (resp->state != SWARM__RESP_RUNNING)
        return SWARM_ESTATE;
    if (len > resp->max - resp->len)
        return SWARM_ERANGE;
    int rc = resp_reserve(resp, resp->len + len);
    if (rc != 0)
        return rc;
    if (len > 0)
        memcpy(resp->buf + resp->len, data, len);
    resp->len += len;
    resp->buf[resp->len] = '\0';
    if (resp->n_chunks++ == 0)
        resp->first_out_ns = swarm__clock_ns();
    if (resp->stream_fn != NULL) {
        resp->n_streamed++;
        if (resp->stream_fn(resp->stream_ctx, resp->req_id, data, len) != 0)
            return SWARM_ECANCELED;
    }
    return 0;
}

void swarm__resp_fail(swarm_response *r, int code, const char *msg, int64_t retry_after_ns)
{
    r->err_code = code;
    r->retry_after_ns = retry_after_ns;
    if (msg != NULL) {
        size_t n = strlen(msg);
        if (n >= SWARM__MSG_MAX)
            n = SWARM__MSG_MAX - 1;
        memcpy(r->msg, msg, n);
        r->msg[n] = '\0';
    }
}

int swarm_response_set_error(swarm_response *resp, int code, const char *msg,
                             int64_t retry_after_ns)
{
    if (resp == NULL || code >= 0 || retry_after_ns < 0)
        return SWARM_EINVAL;
    if (resp->state != SWARM__RESP_RUNNING)
        return SWARM_ESTATE;
    swarm__resp_fail(resp, code, msg, retry_after_ns);
    return 0;
}

int swarm_response_set_usage(swarm_response *resp, uint64_t input_units, uint64_t output_units)
{
    if (resp == NULL)
        return SWARM_EINVAL;
    if (resp->state != SWARM__RESP_RUNNING)
        return SWARM_ESTATE;
    resp->in_units = input_units;
    resp->out_units = output_units;
    return 0;
}

const void *swarm_response_data(const swarm_response *resp, size_t *len)
{
    if (resp == NULL) {
        if (len != NULL)
            *len = 0;
        return NULL;
    }
    if (len != NULL)
        *len = resp->len;
    return resp->buf;
}

int swarm_response_status(const swarm_response *resp)
{
    if (resp == NULL)
        return SWARM_EINVAL;
    return resp->state == SWARM__RESP_COMPLETE ? resp->status : SWARM_EAGAIN;
}

const char *swarm_response_error_message(const swarm_response *resp)
{
    return resp == NULL ? "" : resp->msg;
}

int swarm_response_get_info(const swarm_response *resp, swarm_response_info *info)
{
    if (resp == NULL || info == NULL || info->size < offsetof(swarm_response_info, request_id))
        return SWARM_EINVAL;
    swarm_response_info t;
    memset(&t, 0, sizeof t);
    t.size = info->size < sizeof t ? info->size : (uint32_t)sizeof t;
    t.status = resp->state == SWARM__RESP_COMPLETE ? resp->status : SWARM_EAGAIN;
    t.complete = resp->state == SWARM__RESP_COMPLETE;
    t.attempts = resp->attempts;
    t.request_id = resp->req_id;
    t.output_bytes = resp->len;
    t.n_chunks = resp->n_chunks;
    t.n_streamed = resp->n_streamed;
    t.input_units = resp->in_units;
    t.output_units = resp->out_units;
    t.retry_after_ns = resp->retry_after_ns;
    t.start_ns = resp->start_ns;
    t.first_output_ns = resp->first_out_ns;
    t.end_ns = resp->end_ns;
    memcpy(info, &t, t.size);
    return 0;
}

void swarm__resp_rollback(swarm_response *r, swarm__resp_mark m)
{
    r->len = m.len;
    r->buf[r->len] = '\0';
    r->n_chunks = m.n_chunks;
    if (m.n_chunks == 0)
        r->first_out_ns = 0;
    r->err_code = 0;
    r->retry_after_ns = 0;
    r->msg[0] = '\0';
    r->in_units = r->out_units = 0;
}

/* ---- engine handles ------------------------------------------------------------------------ */

int swarm__engine_wrap(swarm_engine **out, const swarm_engine_ops *ops, void *self, uint32_t kind,
                       const swarm_allocator *alloc, const char *name)
{
    swarm_allocator a;
    if (swarm__alloc_init(&a, alloc) != 0)
        return SWARM_EINVAL;
    swarm_engine *e = swarm__alloc(&a, sizeof *e, _Alignof(swarm_engine));
    if (e == NULL)
        return SWARM_ENOMEM;
    e->ops.version = ops->version;
    e->ops.name = e->name;
    e->ops.infer = ops->infer;
    e->ops.flags = ops->flags;
    /* Slots of version 1. A later version appends its slots here, each behind a version test
     * (SQLite's iVersion discipline), so a v1 engine never has a v2 slot read. */
    if (ops->version >= 1) {
        e->ops.infer_batch = ops->infer_batch;
        e->ops.cancel = ops->cancel;
        e->ops.health = ops->health;
        e->ops.destroy = ops->destroy;
    }
    e->self = self;
    atomic_init(&e->refs, 1);
    e->kind = kind;
    e->is_decorator = kind != SWARM__ENGINE_USER && kind != SWARM__ENGINE_MOCK;
    e->alloc = a;
    size_t off = 0;
    swarm__name_cat(e->name, &off, name != NULL ? name : "engine");
    *out = e;
    return 0;
}

int swarm_engine_create(swarm_engine **out, const swarm_engine_ops *ops, void *self,
                        const swarm_allocator *alloc)
{
    if (out == NULL || ops == NULL || ops->version == 0 ||
        ops->version > SWARM_ENGINE_OPS_VERSION || ops->infer == NULL ||
        (ops->flags & ~SWARM_ENGINE_F_SEQUENTIAL_BATCH) != 0)
        return SWARM_EINVAL;
    return swarm__engine_wrap(out, ops, self, SWARM__ENGINE_USER, alloc, ops->name);
}

int swarm__engine_runs_sequential(const swarm_engine *e)
{
    return (e->ops.flags & SWARM_ENGINE_F_SEQUENTIAL_BATCH) != 0 && e->ops.infer_batch != NULL;
}

int swarm_engine_retain(swarm_engine *e)
{
    if (e == NULL)
        return SWARM_EINVAL;
    atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
    return 0;
}

void swarm_engine_destroy(swarm_engine *e)
{
    if (e == NULL)
        return;
    /* acq_rel: the release publishes this owner's use of the engine, the acquire on the last
     * decrement makes every other owner's use visible before the engine is torn down. */
    if (atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (e->ops.destroy != NULL)
        e->ops.destroy(e->self);
    swarm_allocator a = e->alloc;
    swarm__free(&a, e, sizeof *e);
}

const char *swarm_engine_name(const swarm_engine *e)
{
    return e == NULL ? "" : e->name;
}

void swarm__name_cat(char *dst, size_t *off, const char *src)
{
    while (*src != '\0' && *off + 1 < SWARM__NAME_MAX)
        dst[(*off)++] = *src++;
    dst[*off] = '\0';
}

void swarm__engine_name2(char *dst, const char *prefix, const swarm_engine *inner,
                         const swarm_engine *inner2)
{
    size_t off = 0;
    dst[0] = '\0';
    swarm__name_cat(dst, &off, prefix);
    if (inner == NULL)
        return;
    swarm__name_cat(dst, &off, "(");
    swarm__name_cat(dst, &off, inner->name);
    if (inner2 != NULL) {
        swarm__name_cat(dst, &off, ",");
        swarm__name_cat(dst, &off, inner2->name);
    }
    swarm__name_cat(dst, &off, ")");
}

/* ---- dispatch ------------------------------------------------------------------------------ */

/* Makes the return code and the response's running status agree: an engine may return 0 after
 * swarm_response_set_error(), or a code without a message. Positive returns are bugs. */
static inline int settle(swarm_response *resp, int rc)
{
    if (SWARM_UNLIKELY(rc > 0))
        rc = SWARM_EINTERNAL;
    if (rc == 0)
        return resp->err_code;
    resp->err_code = rc;
    return rc;
}

int swarm__engine_call(swarm_engine *e, const swarm_request *req, swarm_response *resp)
{
    if (!e->is_decorator)
        resp->attempts++;
    return settle(resp, e->ops.infer(e->self, req, resp));
}

int swarm__engine_call_batch(swarm_engine *e, const swarm_request *const *reqs,
                             swarm_response *const *resps, size_t n)
{
    if (e->ops.infer_batch == NULL) {
        /* The default batch: one infer per request, in order. */
        for (size_t i = 0; i < n; i++)
            swarm__engine_call(e, reqs[i], resps[i]);
        return 0;
    }
    if (!e->is_decorator)
        for (size_t i = 0; i < n; i++)
            resps[i]->attempts++;
    int rc = e->ops.infer_batch(e->self, reqs, resps, n);
    if (SWARM_UNLIKELY(rc > 0))
        rc = SWARM_EINTERNAL;
    if (rc < 0)
        for (size_t i = 0; i < n; i++)
            if (resps[i]->err_code == 0)
                resps[i]->err_code = rc;
    return rc;
}

static inline void begin(swarm_response *resp, const swarm_request *req, int64_t now)
{
    resp->state = SWARM__RESP_RUNNING;
    resp->req_id = req->id;
    resp->start_ns = now;
}

static inline void complete(swarm_response *resp, const swarm_request *req, int status)
{
    resp->status = status;
    resp->end_ns = swarm__clock_ns();
    resp->state = SWARM__RESP_COMPLETE;
    if (resp->complete_fn != NULL)
        resp->complete_fn(resp->complete_ctx, req, resp);
}

int swarm_engine_infer(swarm_engine *e, const swarm_request *req, swarm_response *resp)
{
    return swarm__engine_infer_t(e, req, resp, 1);
}

/* The pool's single-task call in one: reset, run (timed or not), read the outcome. The pool's
 * arguments are never NULL and its requests come from swarm_request_init(), so the checks of
 * swarm_engine_infer() reduce to the response's state. */
int swarm__engine_run1(swarm_engine *e, const swarm_request *req, swarm_response *resp, int timed,
                       swarm__resp_outcome *oc)
{
    int rc = SWARM_ESTATE;
    if (SWARM_LIKELY(resp->state != SWARM__RESP_RUNNING)) {
        resp_clear(resp);
        begin(resp, req, timed ? swarm__clock_ns() : 0);
        rc = swarm__engine_call(e, req, resp);
        if (timed) {
            complete(resp, req, rc);
        } else {
            resp->status = rc;
            resp->state = SWARM__RESP_COMPLETE;
            if (resp->complete_fn != NULL)
                resp->complete_fn(resp->complete_ctx, req, resp);
        }
    }
    oc->complete = resp->state == SWARM__RESP_COMPLETE;
    oc->status = resp->status;
    oc->start_ns = resp->start_ns;
    oc->end_ns = resp->end_ns;
    oc->len = resp->len;
    oc->data = resp->buf;
    return rc;
}

/* swarm_engine_infer() with the two clock reads optional: on a virtual machine a clock read can
 * cost more than a whole channel hand-off, so the pool times only a sample of its calls
 * (start_ns and end_ns stay 0 when @timed is 0). */
int swarm__engine_infer_t(swarm_engine *e, const swarm_request *req, swarm_response *resp,
                          int timed)
{
    if (SWARM_UNLIKELY(e == NULL || req == NULL || resp == NULL || req->size < REQ_MIN_SIZE ||
                       (req->payload == NULL && req->payload_len != 0)))
        return SWARM_EINVAL;
    if (SWARM_UNLIKELY(resp->state != SWARM__RESP_FRESH))
        return SWARM_ESTATE;
    begin(resp, req, timed ? swarm__clock_ns() : 0);
    int rc = swarm__engine_call(e, req, resp);
    if (timed) {
        complete(resp, req, rc);
    } else {
        resp->status = rc;
        resp->state = SWARM__RESP_COMPLETE;
        if (resp->complete_fn != NULL)
            resp->complete_fn(resp->complete_ctx, req, resp);
    }
    return rc;
}

void swarm__resp_outcome_get(const swarm_response *r, swarm__resp_outcome *out)
{
    out->complete = r->state == SWARM__RESP_COMPLETE;
    out->status = r->status;
    out->start_ns = r->start_ns;
    out->end_ns = r->end_ns;
    out->len = r->len;
    out->data = r->buf;
}

int swarm_engine_infer_batch(swarm_engine *e, const swarm_request *const *reqs,
                             swarm_response *const *resps, size_t n)
{
    if (e == NULL || reqs == NULL || resps == NULL || n == 0)
        return SWARM_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (reqs[i] == NULL || resps[i] == NULL || reqs[i]->size < REQ_MIN_SIZE ||
            (reqs[i]->payload == NULL && reqs[i]->payload_len != 0))
            return SWARM_EINVAL;
    int64_t now = swarm__clock_ns();
    for (size_t i = 0; i < n; i++) {
        if (resps[i]->state != SWARM__RESP_FRESH) {
            /* Not fresh, or a duplicate we marked a moment ago: undo and refuse. */
            for (size_t j = 0; j < i; j++) {
                /* A fresh response holds no id or start time: put back exactly that. */
                resps[j]->state = SWARM__RESP_FRESH;
                resps[j]->req_id = 0;
                resps[j]->start_ns = 0;
            }
            return SWARM_ESTATE;
        }
        begin(resps[i], reqs[i], now);
    }
    int rc = swarm__engine_call_batch(e, reqs, resps, n);
    for (size_t i = 0; i < n; i++)
        complete(resps[i], reqs[i], resps[i]->err_code);
    return rc;
}

int swarm_engine_cancel(swarm_engine *e, uint64_t request_id)
{
    if (e == NULL)
        return SWARM_EINVAL;
    if (e->ops.cancel == NULL)
        return SWARM_ENOTSUP;
    return e->ops.cancel(e->self, request_id);
}

int swarm_engine_health(swarm_engine *e)
{
    if (e == NULL)
        return SWARM_EINVAL;
    if (e->ops.health == NULL)
        return 0;
    int rc = e->ops.health(e->self);
    return rc > 0 ? 0 : rc;
}

int swarm_engine_error_retryable(int code)
{
    return code == SWARM_EUNAVAILABLE || code == SWARM_EOVERLOADED || code == SWARM_ETIMEDOUT;
}

int swarm_engine_error_is_failure(int code)
{
    return code < 0 && code != SWARM_EINVAL && code != SWARM_ECANCELED;
}

/* ---- clock and sleep ----------------------------------------------------------------------- */

int64_t swarm__engine_clock(void *ctx)
{
    (void)ctx;
    return swarm__clock_ns();
}

int swarm__engine_sleep(void *ctx, int64_t ns, swarm_cancel *cancel)
{
    (void)ctx;
    /* The exported cancel-aware sleep; a non-positive duration only polls the token. */
    return swarm_sleep_ns(ns > 0 ? ns : 0, cancel);
}

/* ---- batch scratch pool -------------------------------------------------------------------- */

int swarm__scratch_init(swarm__scratch_pool *p, const swarm_allocator *a, size_t size)
{
    for (size_t i = 0; i < SWARM__SCRATCH_SLOTS; i++)
        atomic_init(&p->slots[i], NULL);
    p->size = size;
    p->alloc = *a;
    void *b = swarm__alloc(&p->alloc, size, 16);
    if (b == NULL)
        return SWARM_ENOMEM;
    atomic_init(&p->slots[0], b);
    return 0;
}

void *swarm__scratch_get(swarm__scratch_pool *p)
{
    for (size_t i = 0; i < SWARM__SCRATCH_SLOTS; i++) {
        if (atomic_load_explicit(&p->slots[i], memory_order_relaxed) == NULL)
            continue;
        /* Acquire pairs with the release in swarm__scratch_put(): the previous user's writes
         * to the block happen before ours. */
        void *b = atomic_exchange_explicit(&p->slots[i], NULL, memory_order_acquire);
        if (b != NULL)
            return b;
    }
    /* More batch calls at once than ever before: grow (kept afterwards). */
    return swarm__alloc(&p->alloc, p->size, 16);
}

void swarm__scratch_put(swarm__scratch_pool *p, void *block)
{
    for (size_t i = 0; i < SWARM__SCRATCH_SLOTS; i++) {
        void *expect = NULL;
        /* Release pairs with the acquire exchange in swarm__scratch_get(). */
        if (atomic_compare_exchange_strong_explicit(&p->slots[i], &expect, block,
                                                    memory_order_release, memory_order_relaxed))
            return;
    }
    swarm__free(&p->alloc, block, p->size);
}

void swarm__scratch_fini(swarm__scratch_pool *p)
{
    for (size_t i = 0; i < SWARM__SCRATCH_SLOTS; i++) {
        void *b = atomic_load_explicit(&p->slots[i], memory_order_acquire);
        if (b != NULL)
            swarm__free(&p->alloc, b, p->size);
        atomic_store_explicit(&p->slots[i], NULL, memory_order_relaxed);
    }
}
