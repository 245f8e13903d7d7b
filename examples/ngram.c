/* SPDX-License-Identifier: MIT */
/* Character-level n-gram model: counts of (context, next byte) in one open-addressing table,
 * for every context length from 0 to order-1, so sampling can back off to shorter contexts. */
#include "ngram.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    uint64_t ctx;  /* up to 7 context bytes, packed, plus its length in the top byte */
    uint32_t next; /* next byte, or 256 for the context's total */
    uint32_t count;
} entry;

struct ngram_model {
    int order;
    size_t cap, used;
    entry *tab;
};

static uint64_t pack(const unsigned char *s, size_t n)
{
    uint64_t k = (uint64_t)n << 56;
    for (size_t i = 0; i < n; i++)
        k |= (uint64_t)s[i] << (8 * i);
    return k;
}

static uint64_t hash(uint64_t ctx, uint32_t next)
{
    uint64_t z = ctx ^ ((uint64_t)next * 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static entry *slot(const ngram_model *m, uint64_t ctx, uint32_t next)
{
    size_t i = (size_t)hash(ctx, next) & (m->cap - 1);
    for (;;) {
        entry *e = &m->tab[i];
        if (e->count == 0 || (e->ctx == ctx && e->next == next))
            return e;
        i = (i + 1) & (m->cap - 1);
    }
}

static uint32_t get(const ngram_model *m, uint64_t ctx, uint32_t next)
{
    return slot(m, ctx, next)->count;
}

static int add(ngram_model *m, uint64_t ctx, uint32_t next)
{
    if ((m->used + 1) * 2 > m->cap) {
        size_t ncap = m->cap * 2;
        entry *old = m->tab, *nt = calloc(ncap, sizeof *nt);
        if (nt == NULL)
            return SWARM_ENOMEM;
        size_t ocap = m->cap;
        m->tab = nt;
        m->cap = ncap;
        for (size_t i = 0; i < ocap; i++)
            if (old[i].count)
                *slot(m, old[i].ctx, old[i].next) = old[i];
        free(old);
    }
    entry *e = slot(m, ctx, next);
    if (e->count == 0) {
        e->ctx = ctx;
        e->next = next;
        m->used++;
    }
    e->count++;
    return 0;
}

int ngram_train(ngram_model **out, const char *text, size_t len, int order)
{
    if (out == NULL || text == NULL || order < 2 || order > 8)
        return SWARM_EINVAL;
    ngram_model *m = calloc(1, sizeof *m);
    if (m == NULL)
        return SWARM_ENOMEM;
    m->order = order;
    m->cap = 1 << 12;
    m->tab = calloc(m->cap, sizeof *m->tab);
    if (m->tab == NULL) {
        free(m);
        return SWARM_ENOMEM;
    }
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len; i++) {
        for (int k = 0; k < order && (size_t)k <= i; k++) {
            uint64_t ctx = pack(s + i - k, (size_t)k);
            if (add(m, ctx, s[i]) != 0 || add(m, ctx, 256) != 0) {
                ngram_free(m);
                return SWARM_ENOMEM;
            }
        }
    }
    *out = m;
    return 0;
}

void ngram_free(ngram_model *m)
{
    if (m == NULL)
        return;
    free(m->tab);
    free(m);
}

size_t ngram_size(const ngram_model *m)
{
    return m ? m->used : 0;
}

static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct cand {
    double p;
    int byte;
} cand;

static int cmp_cand(const void *a, const void *b)
{
    double x = ((const cand *)a)->p, y = ((const cand *)b)->p;
    return x > y ? -1 : x < y;
}

int ngram_next(const ngram_model *m, const char *ctx, size_t ctx_len, double temperature,
               double top_p, uint64_t *rng)
{
    const unsigned char *c = (const unsigned char *)ctx;
    size_t k = ctx_len < (size_t)(m->order - 1) ? ctx_len : (size_t)(m->order - 1);
    /* Back off to the longest context seen in training. */
    uint64_t key = 0;
    for (;; k--) {
        key = pack(c + ctx_len - k, k);
        if (get(m, key, 256) > 0 || k == 0)
            break;
    }
    cand cs[256];
    int n = 0;
    for (int b = 0; b < 256; b++) {
        uint32_t cnt = get(m, key, (uint32_t)b);
        if (cnt > 0)
            cs[n++] = (cand){(double)cnt, b};
    }
    if (n == 0)
        return ' ';
    qsort(cs, (size_t)n, sizeof cs[0], cmp_cand);
    if (temperature <= 0)
        return cs[0].byte; /* greedy */
    double total = 0;
    for (int i = 0; i < n; i++) {
        cs[i].p = pow(cs[i].p, 1.0 / temperature);
        total += cs[i].p;
    }
    if (!(top_p > 0 && top_p < 1))
        top_p = 1;
    double mass = 0;
    int keep = 0;
    while (keep < n && mass < top_p * total)
        mass += cs[keep++].p;
    double r = (double)(next_u64(rng) >> 11) * 0x1.0p-53 * mass;
    for (int i = 0; i < keep; i++) {
        if (r < cs[i].p)
            return cs[i].byte;
        r -= cs[i].p;
    }
    return cs[keep - 1].byte;
}

/* ---- the engine ---------------------------------------------------------------------------- */

#define CTX_MAX 8

static int ngram_infer(void *self, const swarm_request *req, swarm_response *resp)
{
    const ngram_model *m = self;
    if (req->payload_len > 0 && req->payload == NULL)
        return SWARM_EINVAL;
    if (req->params.temperature < 0)
        return SWARM_EINVAL;
    uint32_t max = req->params.max_tokens ? req->params.max_tokens : 120;
    uint64_t rng = req->params.seed ? req->params.seed : req->id * 0x2545F4914F6CDD1Dull + 1;
    /* The context window slides over the prompt, then over what we generate. */
    char ctx[CTX_MAX];
    size_t n = 0;
    const char *p = req->payload;
    for (uint64_t i = req->payload_len > CTX_MAX ? req->payload_len - CTX_MAX : 0;
         i < req->payload_len; i++)
        ctx[n++] = p[i];
    uint32_t produced = 0;
    int rc = 0;
    for (; produced < max; produced++) {
        if ((rc = swarm_request_should_stop(req)) != 0)
            break;
        char b = (char)ngram_next(m, ctx, n, req->params.temperature, req->params.top_p, &rng);
        if (n == CTX_MAX) {
            memmove(ctx, ctx + 1, CTX_MAX - 1);
            n--;
        }
        ctx[n++] = b;
        /* Copied by the library: the one-byte token on our stack may go right after. */
        if ((rc = swarm_response_write(resp, &b, 1)) != 0) {
            produced++;
            break;
        }
    }
    swarm_response_set_usage(resp, req->payload_len, produced);
    return rc;
}

static void ngram_destroy(void *self)
{
    ngram_free(self);
}

int ngram_engine_create(swarm_engine **out, ngram_model *m)
{
    static const swarm_engine_ops ops = {
        .version = SWARM_ENGINE_OPS_VERSION,
        .name = "ngram",
        .infer = ngram_infer,
        .destroy = ngram_destroy,
    };
    if (m == NULL)
        return SWARM_EINVAL;
    return swarm_engine_create(out, &ops, m, NULL);
}

/* Training text, written for this example (MIT like the rest). */
const char ngram_corpus[] =
    "A swarm is not a crowd. A crowd pushes in one direction and hopes for the best; a swarm "
    "listens. Each bee in a swarm follows a few small rules: keep close to your neighbours, do "
    "not collide, and move toward the place the scouts are dancing about. No bee holds the map, "
    "and yet the swarm finds the hollow tree, settles, and begins to build.\n"
    "The scouts go out first. They fly far from the cluster and look at every crack and cavity "
    "they can find. When a scout finds a good place she comes back and dances, and the better "
    "the place, the longer she dances. Other scouts watch the dance, fly out to see for "
    "themselves, and come back to dance if they agree. The quiet ones stop dancing after a "
    "while. In the end one site has so many dancers that the swarm lifts off and goes there.\n"
    "A good worker pool is built the same way. Work arrives in a queue. Workers take what they "
    "can carry, do it, and come back for more. When the queue grows, the pool adds workers; "
    "when the queue is empty for long enough, the pool lets them rest. Nobody needs to know the "
    "whole plan. The queue length is the dance, and the dance says where to go.\n"
    "There are failure modes. If every worker retries at the same moment, the service that "
    "failed is hit again by all of them at once, and it falls over again. So the workers wait "
    "a random time before they try again, and they stop trying when too many tries have "
    "failed. If one service keeps failing, the breaker opens and the workers go somewhere "
    "else for a while, then send a few careful probes to see whether it has healed.\n"
    "The honey is made slowly. Nectar comes in wet and thin; the bees fan their wings over the "
    "cells until the water leaves and the honey is thick enough to keep. Then they cap it with "
    "wax and move on. It is patient work, done by many small hands, and it keeps the colony "
    "alive through the winter.\n"
    "In the winter the bees cluster together and shiver to keep warm. The ones on the outside "
    "move in, the ones on the inside move out, and the queen stays in the middle where it is "
    "warmest. When spring comes the cluster loosens, the first flowers open, and the scouts go "
    "out again to see what the new year has brought.\n";
