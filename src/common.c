/* SPDX-License-Identifier: MIT */
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "opts_v1.h"
#include "platform.h"

#define SWARM_STR_(x) #x
#define SWARM_STR(x)  SWARM_STR_(x)

const char *swarm_strerror(int err)
{
    if (err >= 0)
        return "success";
    switch (err) {
#define XX(name, val, msg)                                                                         \
    case SWARM_##name:                                                                             \
        return msg;
        SWARM_ERR_MAP(XX)
#undef XX
    default:
        return "unknown error";
    }
}

const char *swarm_err_name(int err)
{
    if (err >= 0)
        return "SWARM_OK";
    switch (err) {
#define XX(name, val, msg)                                                                         \
    case SWARM_##name:                                                                             \
        return "SWARM_" #name;
        SWARM_ERR_MAP(XX)
#undef XX
    default:
        return "SWARM_EUNKNOWN";
    }
}

uint32_t swarm_version(void)
{
    return SWARM_VERSION_HEX;
}

const char *swarm_version_string(void)
{
    return SWARM_STR(SWARM_VERSION_MAJOR) "." SWARM_STR(SWARM_VERSION_MINOR) "." SWARM_STR(
        SWARM_VERSION_PATCH);
}

int64_t swarm_now_ns(void)
{
    return swarm__clock_ns();
}

int64_t swarm__deadline(int64_t timeout_ns)
{
    if (timeout_ns < 0)
        return INT64_MAX;
    int64_t now = swarm__clock_ns();
    return timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;
}

int64_t swarm_deadline_after(int64_t timeout_ns)
{
    if (timeout_ns < 0)
        return SWARM_NO_DEADLINE;
    return swarm__time_add(swarm__clock_ns(), timeout_ns);
}

/* ---- sleep ---------------------------------------------------------------------------------- */

static void sleep_wake(void *ctx)
{
    _Atomic uint32_t *w = ctx;
    /* Release pairs with the acquire load in swarm_sleep_ns()'s loop. */
    atomic_store_explicit(w, 1, memory_order_release);
    swarm__unpark(w, INT32_MAX);
}

int swarm_sleep_ns(int64_t ns, swarm_cancel *cancel)
{
    if (ns < -1 || (ns == SWARM_WAIT_FOREVER && cancel == NULL))
        return SWARM_EINVAL;
    if (ns == 0)
        return swarm_cancel_is_canceled(cancel) ? SWARM_ECANCELED : 0;
    int64_t deadline = swarm__deadline(ns);
    _Atomic uint32_t word;
    atomic_init(&word, 0);
    swarm__cancel_watch w = {.wake = sleep_wake, .ctx = &word};
    if (cancel != NULL && swarm__cancel_watch_add(cancel, &w) != 0)
        return SWARM_ECANCELED;
    int rc = 0;
    for (;;) {
        if (atomic_load_explicit(&word, memory_order_acquire) != 0) {
            rc = SWARM_ECANCELED;
            break;
        }
        if (swarm__park(&word, 0, deadline) == SWARM_ETIMEDOUT)
            break;
    }
    if (cancel != NULL)
        swarm__cancel_watch_del(cancel, &w);
    return rc;
}

/* ---- allocation ---------------------------------------------------------------------------- */

static void *libc_alloc(void *ctx, size_t size, size_t align)
{
    (void)ctx;
    void *p = NULL;
    if (align < sizeof(void *))
        align = sizeof(void *);
    if (posix_memalign(&p, align, size) != 0)
        return NULL;
    return p;
}

static void libc_free(void *ctx, void *p, size_t size)
{
    (void)ctx;
    (void)size;
    free(p);
}

int swarm__alloc_init(swarm_allocator *dst, const swarm_allocator *src)
{
    if (src == NULL) {
        dst->ctx = NULL;
        dst->alloc = libc_alloc;
        dst->free = libc_free;
        return 0;
    }
    if (src->alloc == NULL || src->free == NULL)
        return SWARM_EINVAL;
    *dst = *src;
    return 0;
}

void *swarm__alloc(const swarm_allocator *a, size_t size, size_t align)
{
    if (size == 0 || size > (SIZE_MAX >> 1))
        return NULL;
    void *p = a->alloc(a->ctx, size, align);
    if (p != NULL)
        memset(p, 0, size);
    return p;
}

void swarm__free(const swarm_allocator *a, void *p, size_t size)
{
    if (p != NULL)
        a->free(a->ctx, p, size);
}

int swarm__opts_copy(void *dst, size_t want, const void *src, size_t v1_size, size_t v1_end)
{
    uint32_t given;
    memcpy(&given, src, sizeof given);
    if (given < v1_size || given > SWARM__OPTS_MAX)
        return SWARM_EINVAL;
    size_t n = given < want ? given : want;
    if (given == v1_size)
        n = v1_end; /* a v1 caller: its tail padding may hold an appended field's bytes */
    for (size_t i = want; i < given; i++)
        if (((const unsigned char *)src)[i] != 0)
            return SWARM_EINVAL; /* a newer caller set a field this library does not have */
    memcpy(dst, src, n);
    memcpy(dst, &(uint32_t){(uint32_t)want}, sizeof(uint32_t));
    return 0;
}

void swarm__stats_copy_out(void *dst, const void *src, size_t have)
{
    uint32_t room;
    memcpy(&room, dst, sizeof room);
    uint32_t n = room < have ? room : (uint32_t)have;
    memcpy(dst, src, n);
    memcpy(dst, &n, sizeof n);
}

/* ---- thread hooks ---------------------------------------------------------------------------- */

int swarm_thread_hooks_init(swarm_thread_hooks *hooks)
{
    if (hooks == NULL)
        return SWARM_EINVAL;
    *hooks = (swarm_thread_hooks){.size = (uint32_t)sizeof *hooks};
    return 0;
}

int swarm_thread_hooks_set(const swarm_thread_hooks *hooks)
{
    swarm_thread_hooks copy = {0};
    if (hooks != NULL && SWARM__OPTS_COPY(thread_hooks, &copy, hooks) != 0)
        return SWARM_EINVAL;
    swarm__thread_hooks_store(&copy);
    return 0;
}

int swarm_thread_hooks_get(swarm_thread_hooks *out)
{
    if (out == NULL || out->size < SWARM__OPTS_V1_SIZE(thread_hooks))
        return SWARM_EINVAL;
    swarm_thread_hooks copy;
    swarm__thread_hooks_load(&copy);
    swarm__stats_copy_out(out, &copy, sizeof copy); /* a larger struct keeps its own tail */
    return 0;
}

/* ---- cancellation token -------------------------------------------------------------------- */

/*
 * Lock order: the token's lock is a leaf. Watchers' wake() functions run under it and only bump
 * futex words, so they take no other lock.
 */
struct swarm_cancel {
    _Atomic uint32_t fired; /* 0 or 1; release on trigger, acquire on read */
    swarm__mutex lock;      /* guards watchers */
    swarm__cancel_watch *watchers;
    swarm_allocator alloc;
};

int swarm_cancel_create(swarm_cancel **out, const swarm_allocator *alloc)
{
    swarm_allocator a;
    if (out == NULL || swarm__alloc_init(&a, alloc) != 0)
        return SWARM_EINVAL;
    swarm_cancel *c = swarm__alloc(&a, sizeof *c, _Alignof(swarm_cancel));
    if (c == NULL)
        return SWARM_ENOMEM;
    if (swarm__mutex_init(&c->lock) != 0) {
        swarm__free(&a, c, sizeof *c);
        return SWARM_ENOMEM;
    }
    atomic_init(&c->fired, 0);
    c->watchers = NULL;
    c->alloc = a;
    *out = c;
    return 0;
}

void swarm_cancel_destroy(swarm_cancel *c)
{
    if (c == NULL)
        return;
    swarm__mutex_destroy(&c->lock);
    swarm_allocator a = c->alloc;
    swarm__free(&a, c, sizeof *c);
}

int swarm_cancel_trigger(swarm_cancel *c)
{
    if (c == NULL)
        return SWARM_EINVAL;
    swarm__mutex_lock(&c->lock);
    /* Pairs with the acquire load in swarm_cancel_is_canceled() and with the check made under
     * the lock in swarm__cancel_watch_add(), so a watcher either sees the flag or is woken. */
    atomic_store_explicit(&c->fired, 1, memory_order_release);
    for (swarm__cancel_watch *w = c->watchers; w != NULL; w = w->next)
        w->wake(w->ctx);
    swarm__mutex_unlock(&c->lock);
    return 0;
}

int swarm_cancel_is_canceled(const swarm_cancel *c)
{
    if (c == NULL)
        return 0;
    return (int)atomic_load_explicit(&((swarm_cancel *)c)->fired, memory_order_acquire);
}

int swarm_cancel_reset(swarm_cancel *c)
{
    if (c == NULL)
        return SWARM_EINVAL;
    int rc = 0;
    swarm__mutex_lock(&c->lock);
    if (c->watchers != NULL)
        rc = SWARM_ESTATE;
    else
        atomic_store_explicit(&c->fired, 0, memory_order_relaxed);
    swarm__mutex_unlock(&c->lock);
    return rc;
}

int swarm__cancel_watch_add(swarm_cancel *c, swarm__cancel_watch *w)
{
    int rc = 0;
    swarm__mutex_lock(&c->lock);
    if (atomic_load_explicit(&c->fired, memory_order_relaxed)) {
        rc = SWARM_ECANCELED;
    } else {
        w->prev = NULL;
        w->next = c->watchers;
        if (c->watchers != NULL)
            c->watchers->prev = w;
        c->watchers = w;
    }
    swarm__mutex_unlock(&c->lock);
    return rc;
}

void swarm__cancel_watch_del(swarm_cancel *c, swarm__cancel_watch *w)
{
    swarm__mutex_lock(&c->lock);
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        c->watchers = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    swarm__mutex_unlock(&c->lock);
}
