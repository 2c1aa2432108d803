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
struct map_ent {
	uint64_t key; /* 0 = empty slot */
	void    *val; /* beside its key: one cache line per probe */
};

struct ik_idmap {
	struct map_ent *ents;
	uint32_t        cap; /* power of two, or 0 */
	uint32_t        n;
	uint32_t        shift; /* 64 - log2(cap): map_slot takes the top bits */
};

#define MAP_MIN 16
/* Tables up to this many slots (4 KiB) never shrink: a requester keeping
 * tens of requests in flight swings between few and many entries all the
 * time, and shrinking at every lull and growing again at the next burst
 * was 10% of an inproc 64-outstanding run (calloc and rehash). */
#define MAP_KEEP 256

/* Fibonacci hashing: one multiply, the product's top bits.  The keys are
 * counters (request ids, tokens) and ids with a random high part, which
 * it spreads evenly; a remove rehashes every entry it shifts, so the
 * hash is on the hot path (two multiplies and three shifts before). */
static uint32_t
map_slot(const ik_idmap *m, uint64_t k)
{
	return (uint32_t) ((k * 0x9e3779b97f4a7c15ULL) >> m->shift);
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
		free(m->ents);
		free(m);
	}
}

static int
map_resize(ik_idmap *m, uint32_t ncap)
{
	struct map_ent *old = m->ents, *ne = calloc(ncap, sizeof(*ne));
	uint32_t        ocap = m->cap;
	if (ne == NULL) {
		return IOK_ENOMEM;
	}
	m->ents  = ne;
	m->cap   = ncap;
	m->shift = 64 - (uint32_t) __builtin_ctz(ncap);
	for (uint32_t i = 0; i < ocap; i++) {
		if (old[i].key != 0) {
			uint32_t j = map_slot(m, old[i].key);
			while (ne[j].key != 0) {
				j = (j + 1) & (ncap - 1);
			}
			ne[j] = old[i];
		}
	}
	free(old);
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
	for (i = map_slot(m, key); m->ents[i].key != 0; i = (i + 1) & (m->cap - 1)) {
		if (m->ents[i].key == key) {
			if (replace) {
				m->ents[i].val = val;
			}
			return 1;
		}
	}
	m->ents[i].key = key;
	m->ents[i].val = val;
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
	for (uint32_t i = map_slot(m, key); m->ents[i].key != 0; i = (i + 1) & (m->cap - 1)) {
		if (m->ents[i].key == key) {
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
	return map_find(m, key, &i) ? m->ents[i].val : NULL;
}

/* Empty slot i, shifting back the entries after it that may move. */
static void
map_remove_at(ik_idmap *m, uint32_t i)
{
	uint32_t j, mask = m->cap - 1;
	/* Shift back the entries of the run after i that may move. */
	for (j = (i + 1) & mask; m->ents[j].key != 0; j = (j + 1) & mask) {
		uint32_t home = map_slot(m, m->ents[j].key);
		/* Entry j may fill hole i unless its home lies cyclically
		 * in (i, j]. */
		bool stays = (i < j) ? (home > i && home <= j) : (home > i || home <= j);
		if (!stays) {
			m->ents[i] = m->ents[j];
			i          = j;
		}
	}
	m->ents[i].key = 0;
	m->ents[i].val = NULL;
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
	val = m->ents[i].val;
	map_remove_at(m, i);
	return val;
}

bool
ik_idmap_del_if(ik_idmap *m, uint64_t key, const void *val)
{
	uint32_t i;
	if (!map_find(m, key, &i) || m->ents[i].val != val) {
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
