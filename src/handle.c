/* handle.c - the handle table (see handle.h). */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "handle.h"
#include "iok.h"

/* Every API call looks its handle up: readers share the lock, so threads
 * working on different sockets never wait for each other here. */
static pthread_rwlock_t tbl_mu = PTHREAD_RWLOCK_INITIALIZER;
static ik_obj         **buckets;
static uint32_t         nbuckets; /* power of two */
static uint32_t         count;
static uint32_t         next_id = 1;
/* Bumped (under the write lock) whenever an object leaves the table: a
 * thread's cached lookups made before are stale. */
static atomic_uint tbl_gen;

/* Each thread's last few lookups by ik_obj_use, each holding a reference
 * so the object outlives any close until the thread looks again. */
#define CACHE_WAYS 4
struct obj_cache {
	struct {
		uint32_t id;
		unsigned gen;
		ik_obj  *obj;
	} way[CACHE_WAYS];
	bool keyed; /* the thread-exit destructor is registered */
};
static _Thread_local struct obj_cache cache;
static pthread_key_t                  cache_key;
static pthread_once_t                 cache_once = PTHREAD_ONCE_INIT;

void
ik_obj_init(ik_obj *o, int type, void (*destroy)(ik_obj *))
{
	o->id      = 0;
	o->type    = type;
	o->hnext   = NULL;
	o->destroy = destroy;
	atomic_init(&o->refs, 1);
}

static int
grow(void)
{
	uint32_t n  = nbuckets ? nbuckets * 2 : 64;
	ik_obj **nb = calloc(n, sizeof(*nb));
	if (nb == NULL) {
		return IOK_ENOMEM;
	}
	for (uint32_t i = 0; i < nbuckets; i++) {
		ik_obj *o = buckets[i], *next;
		for (; o != NULL; o = next) {
			next       = o->hnext;
			ik_obj **b = &nb[o->id & (n - 1)];
			o->hnext   = *b;
			*b         = o;
		}
	}
	free(buckets);
	buckets  = nb;
	nbuckets = n;
	return 0;
}

int
ik_obj_register(ik_obj *o)
{
	int rv = 0;
	pthread_rwlock_wrlock(&tbl_mu);
	if (count + 1 > nbuckets / 2 && (rv = grow()) != 0) {
		pthread_rwlock_unlock(&tbl_mu);
		return rv;
	}
	if (next_id == 0 || next_id > 0x7fffffff) {
		next_id = 1; /* after 2^31 objects; old ids are long gone */
	}
	o->id      = next_id++;
	ik_obj **b = &buckets[o->id & (nbuckets - 1)];
	o->hnext   = *b;
	*b         = o;
	count++;
	atomic_fetch_add(&o->refs, 1);
	pthread_rwlock_unlock(&tbl_mu);
	return 0;
}

int
ik_obj_unregister(ik_obj *o)
{
	int found = 0;
	pthread_rwlock_wrlock(&tbl_mu);
	if (nbuckets != 0) {
		for (ik_obj **p = &buckets[o->id & (nbuckets - 1)]; *p != NULL; p = &(*p)->hnext) {
			if (*p == o) {
				*p    = o->hnext;
				found = 1;
				count--;
				break;
			}
		}
	}
	if (found) {
		atomic_fetch_add_explicit(&tbl_gen, 1, memory_order_release);
	}
	pthread_rwlock_unlock(&tbl_mu);
	if (!found) {
		return IOK_ECLOSED;
	}
	ik_obj_rele(o);
	return 0;
}

ik_obj *
ik_obj_hold(uint32_t id, int type)
{
	ik_obj *o = NULL;
	if (id == 0) {
		return NULL;
	}
	pthread_rwlock_rdlock(&tbl_mu);
	if (nbuckets != 0) {
		for (o = buckets[id & (nbuckets - 1)]; o != NULL; o = o->hnext) {
			if (o->id == id) {
				break;
			}
		}
		if (o != NULL && o->type == type) {
			atomic_fetch_add(&o->refs, 1);
		} else {
			o = NULL;
		}
	}
	pthread_rwlock_unlock(&tbl_mu);
	return o;
}

static void
cache_release(void *arg)
{
	struct obj_cache *c = arg;
	for (int i = 0; i < CACHE_WAYS; i++) {
		ik_obj *o     = c->way[i].obj;
		c->way[i].id  = 0;
		c->way[i].obj = NULL;
		if (o != NULL) {
			ik_obj_rele(o);
		}
	}
}

static void
cache_key_make(void)
{
	(void) pthread_key_create(&cache_key, cache_release);
}

ik_obj *
ik_obj_use(uint32_t id, int type)
{
	/* Read before the lookup: an object that leaves the table after it
	 * makes the entry stale. */
	unsigned gen = atomic_load_explicit(&tbl_gen, memory_order_acquire);
	unsigned i   = id & (CACHE_WAYS - 1);
	if (cache.way[i].id == id && cache.way[i].gen == gen && id != 0) {
		return cache.way[i].obj; /* its type was checked when cached */
	}
	ik_obj *o = ik_obj_hold(id, type);
	if (o == NULL) {
		return NULL;
	}
	if (!cache.keyed) {
		(void) pthread_once(&cache_once, cache_key_make);
		(void) pthread_setspecific(cache_key, &cache);
		cache.keyed = true;
	}
	/* Stale entries can never hit again: let their objects go now (a
	 * closed socket's memory and descriptors). */
	ik_obj *old[CACHE_WAYS];
	int     nold = 0;
	for (unsigned j = 0; j < CACHE_WAYS; j++) {
		if (cache.way[j].obj != NULL && (j == i || cache.way[j].gen != gen)) {
			old[nold++]      = cache.way[j].obj;
			cache.way[j].id  = 0;
			cache.way[j].obj = NULL;
		}
	}
	cache.way[i].id  = id;
	cache.way[i].gen = gen;
	cache.way[i].obj = o; /* the reference ik_obj_hold took */
	while (nold > 0) {
		ik_obj_rele(old[--nold]);
	}
	return o;
}

void
ik_obj_cache_drop(void)
{
	cache_release(&cache);
}

void
ik_obj_ref(ik_obj *o)
{
	atomic_fetch_add(&o->refs, 1);
}

void
ik_obj_rele(ik_obj *o)
{
	if (atomic_fetch_sub(&o->refs, 1) == 1) {
		o->destroy(o);
	}
}

void
ik_table_lock(void)
{
	pthread_rwlock_wrlock(&tbl_mu);
}

void
ik_table_unlock(void)
{
	pthread_rwlock_unlock(&tbl_mu);
}

void
ik_table_fork_child(void)
{
	pthread_rwlock_init(&tbl_mu, NULL);
}

void
ik_table_foreach(int type, void (*fn)(ik_obj *, void *), void *arg)
{
	for (uint32_t i = 0; i < nbuckets; i++) {
		for (ik_obj *o = buckets[i]; o != NULL; o = o->hnext) {
			if (o->type == type) {
				fn(o, arg);
			}
		}
	}
}
