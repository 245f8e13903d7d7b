/* SPDX-License-Identifier: MIT */
/* The mock engine: seeded latency and fault distributions, scripted outcomes, hangs until cancel,
 * chunked streaming output. Used by the tests, benchmarks and demos. */
#include <math.h>
#include <string.h>

#include "engine_internal.h"
#include "opts_v1.h"
#include "platform.h"

#define MOCK_MAX_FAULTS 16
#define MOCK_SCRIPT_MAX 256
#define HANG_SLICE_NS   1000000 /* re-check token and deadline every 1 ms while hung */

static const char pattern[] = "the quick brown fox jumps over the lazy dog. ";

typedef struct mock_engine {
    swarm_mock_opts o;
    swarm_mock_fault faults[MOCK_MAX_FAULTS];
    swarm_clock_fn clock;
    swarm_sleep_fn sleep;
    swarm_allocator alloc;
    swarm__mutex mu; /* guards the script ring; a leaf lock */
    int32_t script[MOCK_SCRIPT_MAX];
    uint32_t script_head;
    _Atomic uint32_t script_n; /* written under mu; read lock-free as a hint */
    _Atomic uint64_t rng;
    _Atomic uint64_t calls, batch_calls, failures, hangs, canceled, cancel_calls;
    _Atomic uint32_t max_batch;
} mock_engine;

#define RELAXED memory_order_relaxed

int swarm_mock_opts_init(swarm_mock_opts *opts)
{
    if (opts == NULL)
        return SWARM_EINVAL;
    memset(opts, 0, sizeof *opts);
    opts->size = (uint32_t)sizeof *opts;
    opts->lognormal_sigma = 0.5;
    return 0;
}

/* Pops one scripted outcome into *code; false if the script is empty. */
static bool script_pop(mock_engine *m, int *code)
{
    /* Relaxed hint: a stale zero only means this call uses the random draw, as it would have
     * had the script been pushed a moment later. */
    if (atomic_load_explicit(&m->script_n, RELAXED) == 0)
        return false;
    bool got = false;
    swarm__mutex_lock(&m->mu);
    uint32_t n = atomic_load_explicit(&m->script_n, RELAXED);
    if (n > 0) {
        *code = m->script[m->script_head];
        m->script_head = (m->script_head + 1) % MOCK_SCRIPT_MAX;
        atomic_store_explicit(&m->script_n, n - 1, RELAXED);
        got = true;
    }
    swarm__mutex_unlock(&m->mu);
    return got;
}

static int64_t draw_latency(mock_engine *m)
{
    switch (m->o.latency_kind) {
    case SWARM_MOCK_LATENCY_FIXED:
        return m->o.latency_ns;
    case SWARM_MOCK_LATENCY_UNIFORM: {
        uint64_t span = (uint64_t)(m->o.latency_max_ns - m->o.latency_ns);
        return m->o.latency_ns + (int64_t)(swarm__rng_next(&m->rng) % (span + 1));
    }
    case SWARM_MOCK_LATENCY_LOGNORMAL: {
        /* Box-Muller: one standard normal from two uniforms. */
        double u1 = swarm__rng_unit(&m->rng), u2 = swarm__rng_unit(&m->rng);
        if (u1 < 1e-300)
            u1 = 1e-300;
        double z = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
        /* sigma is finite (checked at create) but may be huge: the product can still be inf
         * or, for z == 0 with sigma * z, exactly representable; the conversion saturates. */
        double v = (double)m->o.latency_ns * exp(m->o.lognormal_sigma * z);
        int64_t ns = swarm__double_to_ns(v);
        return ns < 0 ? 0 : ns;
    }
    default:
        return 0;
    }
}

static int stop_check(mock_engine *m, const swarm_request *req)
{
    if (req->cancel != NULL && swarm_cancel_is_canceled(req->cancel))
        return SWARM_ECANCELED;
    if (swarm__has_deadline(req->deadline_ns) && m->clock(m->o.clock_ctx) >= req->deadline_ns)
        return SWARM_ETIMEDOUT;
    return 0;
}

/* Sleeps @p ns, cut short by the request's token (ECANCELED) or deadline (ETIMEDOUT). */
static int wait_for(mock_engine *m, const swarm_request *req, int64_t ns)
{
    int rc = stop_check(m, req);
    if (rc != 0 || ns <= 0)
        return rc;
    bool cut = false;
    if (swarm__has_deadline(req->deadline_ns)) {
        int64_t rem = swarm__time_sub(req->deadline_ns, m->clock(m->o.clock_ctx));
        if (rem <= ns) {
            ns = rem;
            cut = true;
        }
    }
    if (m->sleep(m->o.clock_ctx, ns, req->cancel) == SWARM_ECANCELED)
        return SWARM_ECANCELED;
    return cut ? SWARM_ETIMEDOUT : 0;
}

static int hang(mock_engine *m, const swarm_request *req)
{
    atomic_fetch_add_explicit(&m->hangs, 1, RELAXED);
    for (;;) {
        int rc = wait_for(m, req, HANG_SLICE_NS);
        if (rc != 0)
            return rc;
    }
}

static int write_output(mock_engine *m, const swarm_request *req, swarm_response *resp)
{
    uint64_t total = m->o.output_bytes ? m->o.output_bytes : req->payload_len;
    size_t chunk = m->o.chunk_bytes ? m->o.chunk_bytes : (size_t)total;
    uint64_t done = 0;
    while (done < total) {
        size_t k = total - done < chunk ? (size_t)(total - done) : chunk;
        const char *src;
        if (m->o.output_bytes == 0) {
            src = (const char *)req->payload + done;
        } else {
            size_t off = (size_t)(done % (sizeof pattern - 1));
            if (k > sizeof pattern - 1 - off)
                k = sizeof pattern - 1 - off;
            src = pattern + off;
        }
        if (done > 0) {
            int rc = stop_check(m, req);
            if (rc != 0)
                return rc;
        }
        int rc = swarm_response_write(resp, src, k);
        if (rc != 0)
            return rc;
        done += k;
    }
    swarm_response_set_usage(resp, req->payload_len, done);
    return 0;
}

/* Serves one request after the latency has been waited (or not, for batches). */
static int serve(mock_engine *m, const swarm_request *req, swarm_response *resp, bool do_latency)
{
    atomic_fetch_add_explicit(&m->calls, 1, RELAXED);
    int code = 0;
    int64_t retry_after = 0;
    bool hung = false;
    if (!script_pop(m, &code)) {
        if (m->o.hang_probability > 0 && swarm__rng_unit(&m->rng) < m->o.hang_probability)
            hung = true;
        for (uint32_t i = 0; !hung && i < m->o.n_faults; i++) {
            if (swarm__rng_unit(&m->rng) < m->faults[i].probability) {
                code = m->faults[i].code;
                retry_after = m->faults[i].retry_after_ns;
                break;
            }
        }
    }
    int rc = hung ? hang(m, req) : do_latency ? wait_for(m, req, draw_latency(m)) : 0;
    if (rc == 0 && code < 0) {
        atomic_fetch_add_explicit(&m->failures, 1, RELAXED);
        swarm__resp_fail(resp, code, "mock: injected failure", retry_after);
        return code;
    }
    if (rc == 0)
        rc = write_output(m, req, resp);
    if (rc == SWARM_ECANCELED || rc == SWARM_ETIMEDOUT)
        atomic_fetch_add_explicit(&m->canceled, 1, RELAXED);
    return rc;
}

static int mock_infer(void *self, const swarm_request *req, swarm_response *resp)
{
    return serve(self, req, resp, true);
}

static int mock_infer_batch(void *self, const swarm_request *const *reqs,
                            swarm_response *const *resps, size_t n)
{
    mock_engine *m = self;
    atomic_fetch_add_explicit(&m->batch_calls, 1, RELAXED);
    uint32_t seen = atomic_load_explicit(&m->max_batch, RELAXED);
    while (n > seen && !atomic_compare_exchange_weak_explicit(&m->max_batch, &seen, (uint32_t)n,
                                                              RELAXED, RELAXED)) {
    }
    /* One latency for the whole batch: the point of batching. It watches no token (the batch is
     * shared); each request checks its own token and deadline afterwards. */
    int64_t lat = draw_latency(m);
    if (lat > 0)
        m->sleep(m->o.clock_ctx, lat, NULL);
    for (size_t i = 0; i < n; i++) {
        int rc = serve(m, reqs[i], resps[i], false);
        if (rc < 0 && resps[i]->err_code == 0)
            swarm__resp_fail(resps[i], rc, NULL, 0);
    }
    return 0;
}

static int mock_cancel(void *self, uint64_t id)
{
    (void)id;
    atomic_fetch_add_explicit(&((mock_engine *)self)->cancel_calls, 1, RELAXED);
    return 0;
}

static void mock_destroy(void *self)
{
    mock_engine *m = self;
    swarm__mutex_destroy(&m->mu);
    swarm_allocator a = m->alloc;
    swarm__free(&a, m, sizeof *m);
}

static const swarm_engine_ops mock_ops = {
    .version = SWARM_ENGINE_OPS_VERSION,
    .infer = mock_infer,
    .infer_batch = mock_infer_batch,
    .cancel = mock_cancel,
    .destroy = mock_destroy,
};

static const swarm_engine_ops mock_ops_single = {
    .version = SWARM_ENGINE_OPS_VERSION,
    .infer = mock_infer,
    .cancel = mock_cancel,
    .destroy = mock_destroy,
};

int swarm_engine_mock_create(swarm_engine **out, const swarm_mock_opts *opts)
{
    swarm_mock_opts o;
    swarm_mock_opts_init(&o);
    if (out == NULL)
        return SWARM_EINVAL;
    if (opts != NULL && SWARM__OPTS_COPY(mock_opts, &o, opts) != 0)
        return SWARM_EINVAL;
    if (o.latency_kind > SWARM_MOCK_LATENCY_LOGNORMAL || o.latency_ns < 0 ||
        (o.latency_kind == SWARM_MOCK_LATENCY_UNIFORM && o.latency_max_ns < o.latency_ns) ||
        !(o.lognormal_sigma >= 0) || !isfinite(o.lognormal_sigma) || o.n_faults > MOCK_MAX_FAULTS ||
        (o.n_faults > 0 && o.faults == NULL) || !(o.hang_probability >= 0) ||
        o.hang_probability > 1 || o.batch > 1)
        return SWARM_EINVAL;
    for (uint32_t i = 0; i < o.n_faults; i++)
        if (o.faults[i].code >= 0 || !(o.faults[i].probability >= 0) ||
            o.faults[i].probability > 1 || o.faults[i].retry_after_ns < 0)
            return SWARM_EINVAL;
    swarm_allocator a;
    if (swarm__alloc_init(&a, o.alloc) != 0)
        return SWARM_EINVAL;
    mock_engine *m = swarm__alloc(&a, sizeof *m, _Alignof(mock_engine));
    if (m == NULL)
        return SWARM_ENOMEM;
    if (swarm__mutex_init(&m->mu) != 0) {
        swarm__free(&a, m, sizeof *m);
        return SWARM_ENOMEM;
    }
    m->o = o;
    if (o.n_faults > 0)
        memcpy(m->faults, o.faults, sizeof(swarm_mock_fault) * o.n_faults);
    m->o.faults = NULL;
    m->clock = o.clock != NULL ? o.clock : swarm__engine_clock;
    m->sleep = o.sleep != NULL ? o.sleep : swarm__engine_sleep;
    m->alloc = a;
    atomic_init(&m->rng, o.seed ? o.seed : SWARM__DEFAULT_SEED);
    int rc = swarm__engine_wrap(out, o.batch ? &mock_ops : &mock_ops_single, m, SWARM__ENGINE_MOCK,
                                o.alloc, "mock");
    if (rc != 0)
        mock_destroy(m);
    return rc;
}

int swarm_engine_mock_script(swarm_engine *e, const int32_t *codes, size_t n)
{
    if (e == NULL || e->kind != SWARM__ENGINE_MOCK || (codes == NULL && n > 0))
        return SWARM_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (codes[i] > 0)
            return SWARM_EINVAL;
    mock_engine *m = e->self;
    int rc = 0;
    swarm__mutex_lock(&m->mu);
    uint32_t have = atomic_load_explicit(&m->script_n, RELAXED);
    if (n > MOCK_SCRIPT_MAX - have) {
        rc = SWARM_ERANGE;
    } else {
        for (size_t i = 0; i < n; i++)
            m->script[(m->script_head + have + i) % MOCK_SCRIPT_MAX] = codes[i];
        atomic_store_explicit(&m->script_n, have + (uint32_t)n, RELAXED);
    }
    swarm__mutex_unlock(&m->mu);
    return rc;
}

int swarm_engine_mock_get_stats(swarm_engine *e, swarm_mock_stats *stats)
{
    if (e == NULL || e->kind != SWARM__ENGINE_MOCK || stats == NULL ||
        stats->size < offsetof(swarm_mock_stats, calls))
        return SWARM_EINVAL;
    mock_engine *m = e->self;
    swarm_mock_stats s;
    memset(&s, 0, sizeof s);
    s.max_batch = atomic_load_explicit(&m->max_batch, RELAXED);
    s.calls = atomic_load_explicit(&m->calls, RELAXED);
    s.batch_calls = atomic_load_explicit(&m->batch_calls, RELAXED);
    s.failures = atomic_load_explicit(&m->failures, RELAXED);
    s.hangs = atomic_load_explicit(&m->hangs, RELAXED);
    s.canceled = atomic_load_explicit(&m->canceled, RELAXED);
    s.cancel_calls = atomic_load_explicit(&m->cancel_calls, RELAXED);
    swarm__stats_copy_out(stats, &s, sizeof s);
    return 0;
}
