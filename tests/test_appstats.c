/*
 * test_appstats.c - application counters, timers and markers: no
 * increment lost across threads, the kernel's reports (iok_debug_text
 * "stats" and "markers") show what the application recorded, bad names
 * are refused, and a full table says IOK_ENOSPC.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "testutil.h"

#define THREADS 4
#define PER_THREAD 200000

static iok_counter shared;

static void *
adder(void *arg)
{
	(void) arg;
	for (int i = 0; i < PER_THREAD; i++) {
		iok_counter_add(shared, 1);
	}
	return NULL;
}

static void
test_counters(void **state)
{
	pthread_t   th[THREADS];
	iok_counter again;
	char       *text;
	(void) state;
	IOK_OK(iok_counter_get("requests handled", &shared));
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_create(&th[i], NULL, adder, NULL), 0);
	}
	/* The kernel reads while the threads add (TSan checks this). */
	IOK_OK(iok_debug_text("stats", &text));
	assert_non_null(strstr(text, "counter=\"requests handled\" value="));
	iok_strfree(text);
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
	}
	assert_int_equal(iok_counter_value(shared), THREADS * PER_THREAD);
	/* The same name is the same counter. */
	IOK_OK(iok_counter_get("requests handled", &again));
	iok_counter_add(again, 5);
	assert_int_equal(iok_counter_value(shared), THREADS * PER_THREAD + 5);
	IOK_OK(iok_debug_text("stats", &text));
	char want[100];
	snprintf(want, sizeof(want), "counter=\"requests handled\" value=%d\n",
	    THREADS * PER_THREAD + 5);
	assert_non_null(strstr(text, want));
	iok_strfree(text);
}

static void
test_timer(void **state)
{
	iok_timer t;
	char     *text;
	(void) state;
	IOK_OK(iok_timer_get("db query", &t));
	for (int i = 0; i < 99; i++) {
		iok_timer_record(t, 1000); /* 1 us */
	}
	iok_timer_record(t, 5000000); /* 5 ms */
	IOK_OK(iok_debug_text("stats", &text));
	/* p50 within a factor of two of 1 us, max exact. */
	const char *line = strstr(text, "timer=\"db query\" count=100 ");
	assert_non_null(line);
	assert_non_null(strstr(line, "p50_us=1.0 "));
	assert_non_null(strstr(line, "max_us=5000.0\n"));
	iok_strfree(text);
}

static void *
pass_in_thread(void *arg)
{
	iok_marker *m = arg;
	iok_marker_pass(*m);
	return (void *) (intptr_t) syscall(SYS_gettid);
}

static void
test_markers(void **state)
{
	iok_marker m, idle;
	pthread_t  th;
	void      *tid;
	char      *text, want[100];
	uint64_t   t0;
	(void) state;
	IOK_OK(iok_marker_get("rendering", &m));
	IOK_OK(iok_marker_get("never passed", &idle));
	t0 = iok_marker_pass(m);
	assert_true(t0 > 0);
	iok_marker_leave(m, t0);
	assert_int_equal(pthread_create(&th, NULL, pass_in_thread, &m), 0);
	pthread_join(th, &tid);
	IOK_OK(iok_debug_text("markers", &text));
	snprintf(want, sizeof(want),
	    "marker=\"rendering\" passes=2 last_thread=%d ago_ms=", (int) (intptr_t) tid);
	assert_non_null(strstr(text, want));
	assert_non_null(strstr(text, " left=1 inside_avg_us="));
	assert_non_null(strstr(text, "marker=\"never passed\" passes=0\n"));
	iok_strfree(text);
	assert_int_equal(iok_debug_text("bogus", &text), IOK_EINVAL);
}

static void
test_names(void **state)
{
	iok_counter c;
	iok_timer   t;
	char        name[100];
	int         rv = 0, made = 0;
	(void) state;
	assert_int_equal(iok_counter_get(NULL, &c), IOK_EINVAL);
	assert_int_equal(iok_counter_get("", &c), IOK_EINVAL);
	assert_int_equal(iok_counter_get("x", NULL), IOK_EINVAL);
	memset(name, 'n', 64);
	name[64] = '\0';
	assert_int_equal(iok_timer_get(name, &t), IOK_EINVAL);
	name[63] = '\0';
	IOK_OK(iok_timer_get(name, &t));
	/* Fill the table (this test runs last). */
	for (int i = 0; i < 5000 && rv == 0; i++) {
		snprintf(name, sizeof(name), "filler %d", i);
		if ((rv = iok_counter_get(name, &c)) == 0) {
			made++;
		}
	}
	assert_int_equal(rv, IOK_ENOSPC);
	assert_true(made > 1000 - 16);
	/* Existing names still resolve. */
	IOK_OK(iok_counter_get("filler 0", &c));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counters),
		cmocka_unit_test(test_timer),
		cmocka_unit_test(test_markers),
		cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
