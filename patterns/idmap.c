/*
 * idmap.c - the patterns' hash table (see idmap.h).
 */
#include <stdbool.h>
#include <stdlib.h>

#include "iok.h"
#include "idmap.h"

/* A hash table from non-zero 64-bit keys (request ids, tokens, pipe ids)
 * to pointers: open addressing, linear probing, deletion by backward
 * shift, so every operation is O(1) on average with no tombstones. */
struct ik_idmap {
	uint64_t *keys; /* 0 = empty slot */
	void    **vals;
	uint32_t  cap; /* power of two, or 0 */
	uint32_t  n;
};

#define MAP_MIN 16
/* Tables up to this many slots (4 KiB) never shrink: a requester keeping
 * tens of requests in flight swings between few and many entries all the
 * time, and shrinking at every lull and growing again at the next burst
 * was 10% of an inproc 64-outstanding run (calloc and rehash). */
#define MAP_KEEP 256

static uint32_t
map_slot(uint64_t k, uint32_t mask)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ULL;
	k ^= k >> 33;
	return (uint32_t) k & mask;
}

ik_idmap *
ik_idmap_new(void)
{
	return calloc(1, sizeof(ik_idmap));
}

void
ik_idmap_free(ik_idmap *m)
{
	if (m != NULL) {
		free(m->keys);
		free(m->vals);
		free(m);
	}
}

static int
map_resize(ik_idmap *m, uint32_t ncap)
{
	uint64_t *nk = calloc(ncap, sizeof(*nk));
	void    **nv = calloc(ncap, sizeof(*nv));
	if (nk == NULL || nv == NULL) {
		free(nk);
		free(nv);
		return IOK_ENOMEM;
	}
	for (uint32_t i = 0; i < m->cap; i++) {
		if (m->keys[i] != 0) {
			uint32_t j = map_slot(m->keys[i], ncap - 1);
			while (nk[j] != 0) {
				j = (j + 1) & (ncap - 1);
			}
			nk[j] = m->keys[i];
			nv[j] = m->vals[i];
		}
	}
	free(m->keys);
	free(m->vals);
	m->keys = nk;
	m->vals = nv;
	m->cap  = ncap;
	return 0;
}

/* Insert key, or if it is there replace its value (replace) or leave it
 * (not replace).  0 inserted, 1 it was there, or IOK_ENOMEM. */
static int
map_insert(ik_idmap *m, uint64_t key, void *val, bool replace)
{
	uint32_t i;
	if ((m->n + 1) * 2 > m->cap) {
		int rv = map_resize(m, m->cap ? m->cap * 2 : MAP_MIN);
		if (rv != 0) {
			return rv;
		}
	}
	for (i = map_slot(key, m->cap - 1); m->keys[i] != 0; i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == key) {
			if (replace) {
				m->vals[i] = val;
			}
			return 1;
		}
	}
	m->keys[i] = key;
	m->vals[i] = val;
	m->n++;
	return 0;
}

int
ik_idmap_put(ik_idmap *m, uint64_t key, void *val)
{
	int rv = map_insert(m, key, val, true);
	return rv == 1 ? 0 : rv;
}

int
ik_idmap_add(ik_idmap *m, uint64_t key, void *val)
{
	int rv = map_insert(m, key, val, false);
	return rv == 1 ? IOK_EEXIST : rv;
}

static int
map_find(const ik_idmap *m, uint64_t key, uint32_t *slot)
{
	if (m->n == 0 || key == 0) {
		return 0;
	}
	for (uint32_t i = map_slot(key, m->cap - 1); m->keys[i] != 0; i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == key) {
			*slot = i;
			return 1;
		}
	}
	return 0;
}

void *
ik_idmap_get(const ik_idmap *m, uint64_t key)
{
	uint32_t i;
	return map_find(m, key, &i) ? m->vals[i] : NULL;
}

/* Empty slot i, shifting back the entries after it that may move. */
static void
map_remove_at(ik_idmap *m, uint32_t i)
{
	uint32_t j, mask = m->cap - 1;
	/* Shift back the entries of the run after i that may move. */
	for (j = (i + 1) & mask; m->keys[j] != 0; j = (j + 1) & mask) {
		uint32_t home = map_slot(m->keys[j], mask);
		/* Entry j may fill hole i unless its home lies cyclically
		 * in (i, j]. */
		bool stays = (i < j) ? (home > i && home <= j) : (home > i || home <= j);
		if (!stays) {
			m->keys[i] = m->keys[j];
			m->vals[i] = m->vals[j];
			i          = j;
		}
	}
	m->keys[i] = 0;
	m->vals[i] = NULL;
	m->n--;
	if (m->cap > MAP_KEEP && m->n * 8 < m->cap) {
		(void) map_resize(m, m->cap / 2); /* after a burst: give memory back */
	}
}

/* Remove key; returns its value (NULL if absent). */
void *
ik_idmap_del(ik_idmap *m, uint64_t key)
{
	uint32_t i;
	void    *val;
	if (!map_find(m, key, &i)) {
		return NULL;
	}
	val = m->vals[i];
	map_remove_at(m, i);
	return val;
}

bool
ik_idmap_del_if(ik_idmap *m, uint64_t key, const void *val)
{
	uint32_t i;
	if (!map_find(m, key, &i) || m->vals[i] != val) {
		return false;
	}
	map_remove_at(m, i);
	return true;
}

uint32_t
ik_idmap_count(const ik_idmap *m)
{
	return m->n;
}
