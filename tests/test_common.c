/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <swarm/swarm.h>

#include "helpers.h"

static void test_common_every_code_has_name_and_message(void **state)
{
    (void)state;
    static const int codes[] = {
#define XX(name, val, msg) SWARM_##name,
        SWARM_ERR_MAP(XX)
#undef XX
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        assert_true(codes[i] < 0);
        assert_string_not_equal(swarm_strerror(codes[i]), "unknown error");
        assert_true(strncmp(swarm_err_name(codes[i]), "SWARM_E", 7) == 0);
        for (size_t j = 0; j < i; j++)
            assert_int_not_equal(codes[i], codes[j]);
    }
    assert_string_equal(swarm_err_name(SWARM_ECLOSED), "SWARM_ECLOSED");
    assert_string_equal(swarm_strerror(SWARM_ETIMEDOUT), "timed out");
    assert_string_equal(swarm_strerror(0), "success");
    assert_string_equal(swarm_strerror(17), "success");
    assert_string_equal(swarm_strerror(-12345), "unknown error");
    assert_string_equal(swarm_err_name(-12345), "SWARM_EUNKNOWN");
    assert_int_equal(SWARM_EINVAL, -1);
    assert_int_equal(SWARM_EINTERNAL, -99);
}

static void test_common_version_matches_header(void **state)
{
    (void)state;
    assert_int_equal(swarm_version(), SWARM_VERSION_HEX);
    char buf[32];
    snprintf(buf, sizeof buf, "%d.%d.%d", SWARM_VERSION_MAJOR, SWARM_VERSION_MINOR,
             SWARM_VERSION_PATCH);
    assert_string_equal(swarm_version_string(), buf);
}

static void test_common_now_is_monotonic(void **state)
{
    (void)state;
    int64_t a = swarm_now_ns();
    int64_t b = swarm_now_ns();
    assert_true(a > 0);
    assert_true(b >= a);
}

static void test_common_cancel_lifecycle(void **state)
{
    (void)state;
    swarm_cancel *c = NULL;
    assert_int_equal(swarm_cancel_create(NULL, NULL), SWARM_EINVAL);
    assert_int_equal(swarm_cancel_create(&c, NULL), 0);
    assert_int_equal(swarm_cancel_is_canceled(c), 0);
    assert_int_equal(swarm_cancel_trigger(c), 0);
    assert_int_equal(swarm_cancel_trigger(c), 0); /* idempotent */
    assert_int_equal(swarm_cancel_is_canceled(c), 1);
    assert_int_equal(swarm_cancel_reset(c), 0);
    assert_int_equal(swarm_cancel_is_canceled(c), 0);
    swarm_cancel_destroy(c);
    swarm_cancel_destroy(NULL);
    assert_int_equal(swarm_cancel_trigger(NULL), SWARM_EINVAL);
    assert_int_equal(swarm_cancel_reset(NULL), SWARM_EINVAL);
    assert_int_equal(swarm_cancel_is_canceled(NULL), 0);
}

static int fail_allocs;
static void *failing_alloc(void *ctx, size_t size, size_t align)
{
    (void)ctx;
    (void)align;
    if (fail_allocs)
        return NULL;
    return test_malloc(size); /* cmocka tracks leaks */
}
static void failing_free(void *ctx, void *p, size_t size)
{
    (void)ctx;
    (void)size;
    test_free(p);
}

static void test_common_cancel_create_enomem_and_bad_allocator(void **state)
{
    (void)state;
    swarm_cancel *c = NULL;
    swarm_allocator a = {NULL, failing_alloc, failing_free};
    fail_allocs = 1;
    assert_int_equal(swarm_cancel_create(&c, &a), SWARM_ENOMEM);
    assert_null(c);
    fail_allocs = 0;
    assert_int_equal(swarm_cancel_create(&c, &a), 0);
    swarm_cancel_destroy(c);
    swarm_allocator bad = {NULL, failing_alloc, NULL};
    assert_int_equal(swarm_cancel_create(&c, &bad), SWARM_EINVAL);
}

/* ---- issue 10: "none" sentinels and the exported cancel-aware sleep ------------------------- */

static void test_common_deadline_sentinels(void **state)
{
    (void)state;
    assert_true(SWARM_NO_DEADLINE == 0);
    assert_true(swarm_deadline_after(SWARM_WAIT_FOREVER) == SWARM_NO_DEADLINE);
    assert_true(swarm_deadline_after(-12345) == SWARM_NO_DEADLINE);
    int64_t before = swarm_now_ns();
    int64_t d = swarm_deadline_after(0);
    assert_true(d >= before && d <= swarm_now_ns());
    int64_t d2 = swarm_deadline_after(1000000000LL);
    assert_true(d2 >= before + 1000000000LL);
    assert_true(swarm_deadline_after(INT64_MAX) == INT64_MAX); /* saturates: still "none" */
}

typedef struct waker {
    swarm_cancel *c;
    int64_t after_ns;
} waker;

static void *wake_later(void *arg)
{
    waker *w = arg;
    struct timespec ts = {0, (long)w->after_ns};
    nanosleep(&ts, NULL);
    swarm_cancel_trigger(w->c);
    return NULL;
}

static void test_common_sleep_ns_contract(void **state)
{
    (void)state;
    assert_int_equal(swarm_sleep_ns(-2, NULL), SWARM_EINVAL);
    assert_int_equal(swarm_sleep_ns(SWARM_WAIT_FOREVER, NULL), SWARM_EINVAL); /* would hang */
    assert_int_equal(swarm_sleep_ns(0, NULL), 0);
    int64_t t0 = swarm_now_ns();
    assert_int_equal(swarm_sleep_ns(2000000, NULL), 0);
    assert_true(swarm_now_ns() - t0 >= 2000000); /* slept at least that long (never less) */
    swarm_cancel *c = NULL;
    assert_int_equal(swarm_cancel_create(&c, NULL), 0);
    assert_int_equal(swarm_sleep_ns(0, c), 0);
    /* A token that fires during a "forever" sleep ends it with SWARM_ECANCELED. */
    waker w = {c, 5000000};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, wake_later, &w), 0);
    assert_int_equal(swarm_sleep_ns(SWARM_WAIT_FOREVER, c), SWARM_ECANCELED);
    pthread_join(th, NULL);
    /* Already fired: no sleep at all. */
    assert_int_equal(swarm_sleep_ns(0, c), SWARM_ECANCELED);
    assert_int_equal(swarm_sleep_ns(3600LL * 1000000000LL, c), SWARM_ECANCELED);
    assert_int_equal(swarm_cancel_reset(c), 0); /* no watcher left behind */
    swarm_cancel_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SWARM_TEST(test_common_every_code_has_name_and_message),
        SWARM_TEST(test_common_version_matches_header),
        SWARM_TEST(test_common_now_is_monotonic),
        SWARM_TEST(test_common_cancel_lifecycle),
        SWARM_TEST(test_common_cancel_create_enomem_and_bad_allocator),
        SWARM_TEST(test_common_deadline_sentinels),
        SWARM_TEST(test_common_sleep_ns_contract),
    };
    return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
