/*
 * appstats.c - the application's own counters, timers and markers, in one
 * mmap'd region per process.  Application threads update them with
 * relaxed atomic operations only: no lock, no system call, no command to
 * the kernel thread (iok_counter_add is inline in iok.h).  The kernel
 * thread reads them when it reports (debug endpoint, export).
 *
 * Slots are claimed once per name and kind under a mutex (iok_*_get is
 * not a per-request call) and published with a release store of the
 * number of slots in use, so readers never lock.  Slots are never
 * released: a handle stays valid for the life of the process (a forked
 * child keeps the parent's values, a private copy).
 */
#define _GNU_SOURCE /* gettid via syscall */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "iok.h"
#include "appstats.h"

/* The counter's value is the slot's first word: iok_counter_add (inline,
 * in iok.h) adds to the address the handle holds. */
typedef struct slot {
	uint64_t value;   /* counter: total; timer, marker: times recorded/passed */
	uint64_t sum_ns;  /* timer: total; marker: time spent inside (leave) */
	uint64_t max_ns;  /* timer: largest; marker: longest stay */
	uint64_t last_ns; /* marker: when it was last passed (CLOCK_MONOTONIC) */
	uint64_t last_tid;
	uint64_t leaves; /* marker: iok_marker_leave calls */
	uint32_t kind;
	char     name[IK_APP_NAME_MAX + 1];
	uint64_t buckets[IK_APP_BUCKETS]; /* timer: by power of two of ns */
} slot;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static slot           *slots;  /* IK_APP_SLOTS, mmap'd on first use */
static uint32_t        nslots; /* published: atomic, release/acquire */
static pthread_once_t  once = PTHREAD_ONCE_INIT;

static void
atfork_child(void)
{
	pthread_mutex_init(&mu, NULL);
}

static void
map_once(void)
{
	void *p = mmap(NULL, sizeof(slot) * IK_APP_SLOTS, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p != MAP_FAILED) {
		slots = p;
	}
	pthread_atfork(NULL, NULL, atfork_child);
}

static int
claim(const char *name, uint32_t kind, slot **out)
{
	uint32_t n;
	size_t   len;
	if (name == NULL || (len = strlen(name)) == 0 || len > IK_APP_NAME_MAX) {
		return IOK_EINVAL;
	}
	pthread_once(&once, map_once);
	if (slots == NULL) {
		return IOK_ENOMEM;
	}
	pthread_mutex_lock(&mu);
	n = __atomic_load_n(&nslots, __ATOMIC_RELAXED);
	for (uint32_t i = 0; i < n; i++) {
		if (slots[i].kind == kind && strcmp(slots[i].name, name) == 0) {
			pthread_mutex_unlock(&mu);
			*out = &slots[i];
			return 0;
		}
	}
	if (n == IK_APP_SLOTS) {
		pthread_mutex_unlock(&mu);
		return IOK_ENOSPC;
	}
	slots[n].kind = kind;
	memcpy(slots[n].name, name, len + 1);
	/* The name and kind are visible to a reader that sees the count. */
	__atomic_store_n(&nslots, n + 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&mu);
	*out = &slots[n];
	return 0;
}

int
iok_counter_get(const char *name, iok_counter *c)
{
	slot *s;
	int   rv = c == NULL ? IOK_EINVAL : claim(name, IK_APP_COUNTER, &s);
	if (rv == 0) {
		c->v = &s->value;
	}
	return rv;
}

int
iok_timer_get(const char *name, iok_timer *t)
{
	slot *s;
	int   rv = t == NULL ? IOK_EINVAL : claim(name, IK_APP_TIMER, &s);
	if (rv == 0) {
		t->p = s;
	}
	return rv;
}

int
iok_marker_get(const char *name, iok_marker *m)
{
	slot *s;
	int   rv = m == NULL ? IOK_EINVAL : claim(name, IK_APP_MARKER, &s);
	if (rv == 0) {
		m->p = s;
	}
	return rv;
}

static void
atomic_max(uint64_t *p, uint64_t v)
{
	uint64_t cur = __atomic_load_n(p, __ATOMIC_RELAXED);
	while (v > cur &&
	       !__atomic_compare_exchange_n(p, &cur, v, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
	}
}

static int
bucket_of(uint64_t ns)
{
	return ns == 0 ? 0 : 64 - __builtin_clzll(ns); /* 0..64 */
}

void
iok_timer_record(iok_timer t, uint64_t ns)
{
	slot *s = t.p;
	if (s == NULL) {
		return;
	}
	__atomic_fetch_add(&s->value, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&s->sum_ns, ns, __ATOMIC_RELAXED);
	__atomic_fetch_add(&s->buckets[bucket_of(ns)], 1, __ATOMIC_RELAXED);
	atomic_max(&s->max_ns, ns);
}

static uint64_t
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* gettid is a system call: once per thread. */
static _Thread_local uint64_t my_tid;

uint64_t
iok_marker_pass(iok_marker m)
{
	slot    *s   = m.p;
	uint64_t now = now_ns();
	if (s == NULL) {
		return now;
	}
	if (my_tid == 0) {
		my_tid = (uint64_t) syscall(SYS_gettid);
	}
	__atomic_store_n(&s->last_tid, my_tid, __ATOMIC_RELAXED);
	__atomic_store_n(&s->last_ns, now, __ATOMIC_RELAXED);
	__atomic_fetch_add(&s->value, 1, __ATOMIC_RELAXED);
	return now;
}

void
iok_marker_leave(iok_marker m, uint64_t entered_ns)
{
	slot    *s = m.p;
	uint64_t now, d;
	if (s == NULL) {
		return;
	}
	now = now_ns();
	d   = now > entered_ns ? now - entered_ns : 0;
	__atomic_fetch_add(&s->leaves, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&s->sum_ns, d, __ATOMIC_RELAXED);
	atomic_max(&s->max_ns, d);
}

uint64_t
iok_clock_ns(void)
{
	return now_ns();
}

/* ------------------------------------------------------ kernel reader */

int
ik_app_read(uint32_t i, ik_app_view *v)
{
	slot *s;
	if (slots == NULL || i >= __atomic_load_n(&nslots, __ATOMIC_ACQUIRE)) {
		return 0;
	}
	s           = &slots[i];
	v->kind     = s->kind;
	v->name     = s->name;
	v->value    = __atomic_load_n(&s->value, __ATOMIC_RELAXED);
	v->sum_ns   = __atomic_load_n(&s->sum_ns, __ATOMIC_RELAXED);
	v->max_ns   = __atomic_load_n(&s->max_ns, __ATOMIC_RELAXED);
	v->last_ns  = __atomic_load_n(&s->last_ns, __ATOMIC_RELAXED);
	v->last_tid = __atomic_load_n(&s->last_tid, __ATOMIC_RELAXED);
	v->leaves   = __atomic_load_n(&s->leaves, __ATOMIC_RELAXED);
	for (int b = 0; b < IK_APP_BUCKETS; b++) {
		v->buckets[b] = __atomic_load_n(&s->buckets[b], __ATOMIC_RELAXED);
	}
	return 1;
}

uint64_t
ik_app_quantile(const ik_app_view *v, double q)
{
	uint64_t total = 0, want, seen = 0;
	for (int b = 0; b < IK_APP_BUCKETS; b++) {
		total += v->buckets[b];
	}
	if (total == 0) {
		return 0;
	}
	want = (uint64_t) (q * (double) total + 0.999999);
	want = want == 0 ? 1 : want;
	for (int b = 0; b < IK_APP_BUCKETS; b++) {
		seen += v->buckets[b];
		if (seen >= want) {
			/* Bucket b holds [2^(b-1), 2^b): report its top, capped. */
			uint64_t hi = b == 0 ? 0 : b >= 64 ? UINT64_MAX : ((uint64_t) 1 << b) - 1;
			return hi < v->max_ns ? hi : v->max_ns;
		}
	}
	return v->max_ns;
}

uint64_t
ik_app_now_ns(void)
{
	return now_ns();
}
