/*
 * msgpool.c - small message blocks recycled across threads.
 *
 * Messages are usually allocated by one thread (the application's) and
 * freed by another (the kernel's), which defeats malloc's per-thread
 * caches: at millions of messages a second the arena lock and brk
 * dominate.  Each thread therefore keeps, per size class, two arrays of
 * block pointers (one it allocates from, one it frees into), and threads
 * swap FULL ARRAYS through one global pool.  An exchange moves one
 * pointer under the lock and never touches the blocks themselves: the
 * blocks were last written by another core, and walking a free list of
 * them (one cache miss per block, in series, under the lock) was a third
 * of the receiving process's time at 64 B.
 */
#include <pthread.h>
#include <stdlib.h>

#include "bigpool.h"
#include "msg.h"
#include "msgpool.h"

#define BATCH 64     /* blocks per array, the unit of exchange */
#define POOL_MAX 256 /* full arrays per class in the pool (16384 blocks) */

typedef struct batch {
	struct batch *next;
	int           n;
	void         *p[BATCH];
} batch;

typedef struct local_cache {
	batch *get[IK_POOL_NCLASS]; /* allocate from here */
	batch *put[IK_POOL_NCLASS]; /* free into here */
} local_cache;

static pthread_mutex_t            pool_mu = PTHREAD_MUTEX_INITIALIZER;
static batch                     *pool_full[IK_POOL_NCLASS];
static int                        pool_nfull[IK_POOL_NCLASS];
static batch                     *pool_empty; /* spare arrays, any class */
static pthread_key_t              local_key;
static pthread_once_t             local_once = PTHREAD_ONCE_INIT;
static _Thread_local local_cache *local;

static void
drain(batch *b)
{
	while (b->n > 0) {
		free(b->p[--b->n]);
	}
}

/* A thread that ends hands its blocks back. */
static void
local_destroy(void *arg)
{
	local_cache *lc = arg;
	for (int c = 0; c < IK_POOL_NCLASS; c++) {
		batch *bs[2] = { lc->get[c], lc->put[c] };
		for (int i = 0; i < 2; i++) {
			if (bs[i] == NULL) {
				continue;
			}
			pthread_mutex_lock(&pool_mu);
			if (bs[i]->n > 0 && pool_nfull[c] < POOL_MAX) {
				bs[i]->next  = pool_full[c];
				pool_full[c] = bs[i];
				pool_nfull[c]++;
				bs[i] = NULL;
			}
			pthread_mutex_unlock(&pool_mu);
			if (bs[i] != NULL) {
				drain(bs[i]);
				free(bs[i]);
			}
		}
	}
	free(lc);
}

static void
local_key_init(void)
{
	pthread_key_create(&local_key, local_destroy);
}

static local_cache *
local_get(void)
{
	if (local == NULL) {
		pthread_once(&local_once, local_key_init);
		if ((local = calloc(1, sizeof(*local))) != NULL) {
			pthread_setspecific(local_key, local);
		}
	}
	return local;
}

static batch *
new_batch(void)
{
	batch *b;
	pthread_mutex_lock(&pool_mu);
	if ((b = pool_empty) != NULL) {
		pool_empty = b->next;
	}
	pthread_mutex_unlock(&pool_mu);
	if (b == NULL && (b = malloc(sizeof(*b))) == NULL) {
		return NULL;
	}
	b->n    = 0;
	b->next = NULL;
	return b;
}

void *
ik_pool_get(int c, size_t size)
{
	local_cache *lc = local_get();
	batch       *b;
	if (lc == NULL) {
		return malloc(size);
	}
	if ((b = lc->get[c]) == NULL || b->n == 0) {
		if (lc->put[c] != NULL && lc->put[c]->n > 0) {
			/* Blocks this thread freed itself: still in its cache. */
			lc->get[c] = lc->put[c];
			lc->put[c] = b;
		} else {
			batch *full;
			pthread_mutex_lock(&pool_mu);
			if ((full = pool_full[c]) != NULL) {
				pool_full[c] = full->next;
				pool_nfull[c]--;
				if (b != NULL) {
					b->next    = pool_empty;
					pool_empty = b;
				}
				lc->get[c] = full;
			}
			pthread_mutex_unlock(&pool_mu);
			if (full == NULL) {
				return malloc(size);
			}
		}
		b = lc->get[c];
	}
	return b->p[--b->n];
}

void
ik_pool_put(int c, void *p)
{
	local_cache *lc = local_get();
	batch       *b;
	if (lc == NULL) {
		free(p);
		return;
	}
	if ((b = lc->put[c]) == NULL || b->n == BATCH) {
		batch *fresh = new_batch();
		if (fresh == NULL) {
			free(p);
			return;
		}
		if (b != NULL) {
			/* Hand the full array to the pool, where the allocating
			 * thread takes it in one exchange. */
			pthread_mutex_lock(&pool_mu);
			if (pool_nfull[c] < POOL_MAX) {
				b->next      = pool_full[c];
				pool_full[c] = b;
				pool_nfull[c]++;
				b = NULL;
			}
			pthread_mutex_unlock(&pool_mu);
			if (b != NULL) { /* the pool is full: really free */
				drain(b);
				free(b);
			}
		}
		lc->put[c] = b = fresh;
	}
	b->p[b->n++] = p;
}

/* Fork: the pools' locks are held across fork by the kernel's fork
 * handlers. */
void
ik_msg_pool_lock(void)
{
	pthread_mutex_lock(&pool_mu);
	ik_big_lock();
}

void
ik_msg_pool_unlock(void)
{
	ik_big_unlock();
	pthread_mutex_unlock(&pool_mu);
}

void
ik_msg_pool_fork_child(void)
{
	pthread_mutex_init(&pool_mu, NULL);
	ik_big_fork_child();
}
