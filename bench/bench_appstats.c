/*
 * bench_appstats - what the application pays per counter increment,
 * timer record and marker pass (iok_counter_add & co, include/iok.h), on
 * one thread and with several threads updating the same name.
 *
 *   bench_appstats [iterations per thread, default 50,000,000]
 *
 * Prints nanoseconds per call, wall clock over the whole loop.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "iok.h"

static long        iters = 50000000;
static iok_counter counter;
static iok_timer   timer;
static iok_marker  marker;

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void *
inc_loop(void *arg)
{
	(void) arg;
	for (long i = 0; i < iters; i++) {
		iok_counter_add(counter, 1);
	}
	return NULL;
}

static void *
timer_loop(void *arg)
{
	(void) arg;
	for (long i = 0; i < iters / 10; i++) {
		iok_timer_record(timer, (uint64_t) i & 0xfffff);
	}
	return NULL;
}

static void *
marker_loop(void *arg)
{
	(void) arg;
	for (long i = 0; i < iters / 10; i++) {
		iok_marker_pass(marker);
	}
	return NULL;
}

static void
run(const char *what, void *(*fn)(void *), int threads, long calls)
{
	pthread_t th[16];
	double    t0 = now_s();
	for (int i = 0; i < threads; i++) {
		pthread_create(&th[i], NULL, fn, NULL);
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
	}
	double dt = now_s() - t0;
	printf("%-22s threads=%d  %6.2f ns/call (per thread)\n", what, threads,
	    dt * 1e9 / (double) calls);
}

int
main(int argc, char **argv)
{
	if (argc > 1) {
		iters = atol(argv[1]);
	}
	if (iok_counter_get("bench.counter", &counter) != 0 ||
	    iok_timer_get("bench.timer", &timer) != 0 ||
	    iok_marker_get("bench.marker", &marker) != 0) {
		fprintf(stderr, "bench_appstats: cannot register names\n");
		return 1;
	}
	run("iok_counter_add", inc_loop, 1, iters);
	run("iok_counter_add", inc_loop, 2, iters);
	run("iok_timer_record", timer_loop, 1, iters / 10);
	run("iok_marker_pass", marker_loop, 1, iters / 10);
	if (iok_counter_value(counter) != (uint64_t) iters * 3) {
		fprintf(stderr, "bench_appstats: lost increments\n");
		return 1;
	}
	return 0;
}
