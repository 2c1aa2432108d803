/* bigpool.c - big storage blocks kept for reuse (see bigpool.h). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "bigpool.h"

#if defined(__SANITIZE_ADDRESS__)
#define IK_BIG_POISON 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define IK_BIG_POISON 1
#endif
#endif
#ifdef IK_BIG_POISON
/* A kept block is poisoned: a use after free stays visible to ASan. */
#include <sanitizer/asan_interface.h>
#define KEEP(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define REUSE(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define KEEP(p, n) ((void) (p), (void) (n))
#define REUSE(p, n) ((void) (p), (void) (n))
#endif

#define PER_CLASS 32 /* blocks kept per class at most (and the budget) */

static pthread_mutex_t big_mu = PTHREAD_MUTEX_INITIALIZER;
static void           *kept[IK_BIG_NCLASS][PER_CLASS];
static int             nkept[IK_BIG_NCLASS];
static size_t          kept_bytes;
static atomic_bool     kept_any;           /* kept_bytes > 0, for readers without the lock */
static unsigned long   gets, gets_at_trim; /* blocks taken; at the last trim */
static void (*first_keep)(void);

size_t
ik_big_cap(int c)
{
	return (IK_BIG_MIN << c) + IK_BIG_SLACK;
}

int
ik_big_class(size_t size)
{
	if (size < IK_BIG_MIN) {
		return -1;
	}
	for (int c = 0; c < IK_BIG_NCLASS; c++) {
		if (size <= ik_big_cap(c)) {
			return c;
		}
	}
	return -1;
}

void *
ik_big_get(int c)
{
	void *p = NULL;
	pthread_mutex_lock(&big_mu);
	gets++;
	if (nkept[c] > 0) {
		p = kept[c][--nkept[c]];
		kept_bytes -= ik_big_cap(c);
		if (kept_bytes == 0) {
			atomic_store_explicit(&kept_any, false, memory_order_relaxed);
		}
	}
	pthread_mutex_unlock(&big_mu);
	if (p != NULL) {
		REUSE(p, ik_big_cap(c));
		return p;
	}
	return malloc(ik_big_cap(c));
}

void
ik_big_put(int c, void *p)
{
	size_t cap   = ik_big_cap(c);
	bool   first = false;
	KEEP(p, cap);
	pthread_mutex_lock(&big_mu);
	if (nkept[c] < PER_CLASS && kept_bytes + cap <= IK_BIG_BUDGET) {
		kept[c][nkept[c]++] = p;
		if (kept_bytes == 0) {
			first = true;
			atomic_store_explicit(&kept_any, true, memory_order_relaxed);
		}
		kept_bytes += cap;
		p = NULL;
	}
	void (*fn)(void) = first ? first_keep : NULL;
	pthread_mutex_unlock(&big_mu);
	if (p != NULL) {
		REUSE(p, cap);
		free(p);
	}
	if (fn != NULL) {
		fn();
	}
}

bool
ik_big_kept_any(void)
{
	return atomic_load_explicit(&kept_any, memory_order_relaxed);
}

size_t
ik_big_kept_bytes(void)
{
	pthread_mutex_lock(&big_mu);
	size_t n = kept_bytes;
	pthread_mutex_unlock(&big_mu);
	return n;
}

void
ik_big_on_first_keep(void (*fn)(void))
{
	pthread_mutex_lock(&big_mu);
	first_keep = fn;
	pthread_mutex_unlock(&big_mu);
}

bool
ik_big_trim(void)
{
	void *out[IK_BIG_NCLASS * PER_CLASS];
	int   cls[IK_BIG_NCLASS * PER_CLASS];
	int   n = 0;
	pthread_mutex_lock(&big_mu);
	if (gets != gets_at_trim) {
		/* Taken from since the last look: not idle yet. */
		gets_at_trim = gets;
		bool more    = kept_bytes > 0;
		pthread_mutex_unlock(&big_mu);
		return more;
	}
	for (int c = 0; c < IK_BIG_NCLASS; c++) {
		while (nkept[c] > 0) {
			cls[n]   = c;
			out[n++] = kept[c][--nkept[c]];
		}
	}
	kept_bytes = 0;
	atomic_store_explicit(&kept_any, false, memory_order_relaxed);
	pthread_mutex_unlock(&big_mu);
	for (int i = 0; i < n; i++) {
		REUSE(out[i], ik_big_cap(cls[i]));
		free(out[i]);
	}
#ifdef __GLIBC__
	if (n > 0) {
		/* Freed blocks sit in glibc's arenas (its mmap threshold rises
		 * after the first big free): hand their pages back too. */
		(void) malloc_trim(0);
	}
#endif
	return false;
}

void
ik_big_lock(void)
{
	pthread_mutex_lock(&big_mu);
}

void
ik_big_unlock(void)
{
	pthread_mutex_unlock(&big_mu);
}

void
ik_big_fork_child(void)
{
	pthread_mutex_init(&big_mu, NULL); /* the kept blocks are the child's too */
}
