/* SPDX-License-Identifier: MIT */
/*
 * What every test suite shares: time units, a sleep that finishes its interval, the stress scale
 * read once and strictly, and a per-test watchdog for cmocka so that a hang names its test.
 *
 * Watchdog: register tests with SWARM_TEST(fn) (or SWARM_TEST_T(fn, seconds)) instead of
 * cmocka_unit_test(fn). Each test's setup arms an alarm; if the test is still running when it
 * rings, the handler prints "<suite>: test <name> hung for N s" and exits the process with status
 * 1, so the run fails in seconds and says where, instead of costing the binary its whole meson
 * timeout. Teardown disarms it. Tests that need their own setup/teardown call
 * swarm_test_watch()/swarm_test_unwatch() from them.
 */
#ifndef SWARM_TESTS_HELPERS_H
#define SWARM_TESTS_HELPERS_H

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define US  (INT64_C(1000))
#define MS  (INT64_C(1000000))
#define SEC (INT64_C(1000000000))

/* Sleeps the whole interval, resuming after signals. */
static inline void sleep_ns(int64_t ns)
{
    if (ns <= 0)
        return;
    struct timespec ts = {(time_t)(ns / SEC), (long)(ns % SEC)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* SWARM_STRESS_SCALE: a positive float that scales item counts (the sanitizer setups lower it);
 * default 1. A value that is not a positive number stops the suite with a message rather than
 * silently running at some other scale. */
static inline double swarm_test_stress_scale(void)
{
    const char *s = getenv("SWARM_STRESS_SCALE");
    if (s == NULL || *s == '\0')
        return 1.0;
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !(v > 0.0) || v > 1e6) {
        fprintf(stderr, "SWARM_STRESS_SCALE=%s is not a positive number\n", s);
        exit(2);
    }
    return v;
}

/* Scales a count, at least 1. */
static inline uint64_t swarm_test_scaled(uint64_t n)
{
    double v = (double)n * swarm_test_stress_scale();
    return v < 1.0 ? 1 : (uint64_t)v;
}

/* ---- per-test watchdog ----------------------------------------------------------------------- */

#ifndef SWARM_TEST_TIMEOUT_S
#    define SWARM_TEST_TIMEOUT_S 60
#endif

typedef struct swarm_test_watch_info {
    const char *name;
    unsigned seconds;
} swarm_test_watch_info;

static const swarm_test_watch_info *swarm_test_current_;

static inline void swarm_test_alarm_(int sig)
{
    (void)sig;
    /* Only async-signal-safe calls here. */
    const swarm_test_watch_info *w = swarm_test_current_;
    static const char pre[] = "watchdog: test ", post[] = " hung past its time limit\n";
    ssize_t r = write(2, pre, sizeof pre - 1);
    if (w != NULL && w->name != NULL)
        r = write(2, w->name, strlen(w->name));
    r = write(2, post, sizeof post - 1);
    (void)r;
    _exit(1);
}

static inline void swarm_test_watch(const swarm_test_watch_info *w)
{
    /* Under sanitizers and valgrind everything is slower: SWARM_TEST_TIMEOUT_MULT scales. */
    unsigned mult = 1;
    const char *m = getenv("SWARM_TEST_TIMEOUT_MULT");
    if (m != NULL && atoi(m) > 0)
        mult = (unsigned)atoi(m);
    swarm_test_current_ = w;
    signal(SIGALRM, swarm_test_alarm_);
    alarm(w->seconds * mult);
}

static inline void swarm_test_unwatch(void)
{
    alarm(0);
    swarm_test_current_ = NULL;
}

static inline int swarm_test_setup_(void **state)
{
    swarm_test_watch((const swarm_test_watch_info *)*state);
    *state = NULL;
    return 0;
}

static inline int swarm_test_teardown_(void **state)
{
    (void)state;
    swarm_test_unwatch();
    return 0;
}

/* One watched cmocka test: its name and limit live in a static info block passed as prestate. */
#define SWARM_TEST_T(fn, secs)                                                                     \
    {                                                                                              \
#        fn, fn, swarm_test_setup_, swarm_test_teardown_, (void *)&(const swarm_test_watch_info)   \
        {                                                                                          \
#            fn, (secs)                                                                            \
        }                                                                                          \
    }
#define SWARM_TEST(fn) SWARM_TEST_T(fn, SWARM_TEST_TIMEOUT_S)

#endif /* SWARM_TESTS_HELPERS_H */
