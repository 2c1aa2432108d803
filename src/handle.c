/* handle.c - the handle table (see handle.h). */
#include <pthread.h>
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
