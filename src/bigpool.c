/* bigpool.c - big storage blocks kept for reuse (see bigpool.h). */
#include <pthread.h>
#include <stdlib.h>

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
#define KEEP(p, n) ((void) 0)
#define REUSE(p, n) ((void) 0)
#endif

#define PER_CLASS 32 /* blocks kept per class at most (and the budget) */

static pthread_mutex_t big_mu = PTHREAD_MUTEX_INITIALIZER;
static void           *kept[IK_BIG_NCLASS][PER_CLASS];
static int             nkept[IK_BIG_NCLASS];
static size_t          kept_bytes;

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
	if (nkept[c] > 0) {
		p = kept[c][--nkept[c]];
		kept_bytes -= ik_big_cap(c);
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
	size_t cap = ik_big_cap(c);
	KEEP(p, cap);
	pthread_mutex_lock(&big_mu);
	if (nkept[c] < PER_CLASS && kept_bytes + cap <= IK_BIG_BUDGET) {
		kept[c][nkept[c]++] = p;
		kept_bytes += cap;
		p = NULL;
	}
	pthread_mutex_unlock(&big_mu);
	if (p != NULL) {
		REUSE(p, cap);
		free(p);
	}
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
