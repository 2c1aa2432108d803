/*
 * pipeset.h - a pattern's set of pipes: a dense array of the pattern's
 * per-pipe states, grown by doubling, with O(1) removal (the last member
 * moves into the hole) and a round-robin cursor.
 *
 * The set needs two fields of each member: `ik_pipe *pipe` and `int slot`
 * (its index, kept up to date by the set).  IK_PIPESET_INIT finds them by
 * name.  Kernel thread only; no locks.
 */
#ifndef IK_PIPESET_H
#define IK_PIPESET_H

#include <stddef.h>
#include <stdlib.h>

#include "pattern.h"

typedef struct ik_pipeset {
	void **v; /* members, dense */
	int    n, cap;
	int    next;     /* where the round-robin resumes */
	int    max;      /* largest capacity (0: no limit) */
	size_t pipe_off; /* offsetof(member, pipe) */
	size_t slot_off; /* offsetof(member, slot) */
} ik_pipeset;

/* IK_PIPESET_INIT(set, member type, max): an empty set whose capacity
 * never grows beyond max members (0: no limit). */
#define IK_PIPESET_INIT(set, type, maxn) \
	ik_pipeset_init((set), offsetof(type, pipe), offsetof(type, slot), (maxn))

static inline void
ik_pipeset_init(ik_pipeset *s, size_t pipe_off, size_t slot_off, int max)
{
	s->v        = NULL;
	s->n        = 0;
	s->cap      = 0;
	s->next     = 0;
	s->max      = max;
	s->pipe_off = pipe_off;
	s->slot_off = slot_off;
}

static inline void
ik_pipeset_fini(ik_pipeset *s)
{
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}

static inline int *
ik_pipeset_slot_(const ik_pipeset *s, void *pp)
{
	return (int *) (void *) ((char *) pp + s->slot_off);
}

/* The i-th member (0 <= i < n). */
static inline void *
ik_pipeset_at(const ik_pipeset *s, int i)
{
	return s->v[i];
}

/* The i-th member's pipe. */
static inline ik_pipe *
ik_pipeset_pipe(const ik_pipeset *s, int i)
{
	return *(ik_pipe **) (void *) ((char *) s->v[i] + s->pipe_off);
}

/* ik_pipeset_add appends pp (its pipe field already set): 0, or
 * IOK_ENOMEM (out of memory, or the set is at its limit). */
static inline int
ik_pipeset_add(ik_pipeset *s, void *pp)
{
	if (s->n == s->cap) {
		int    ncap = s->cap ? s->cap * 2 : 8;
		void **nv;
		if ((s->max > 0 && ncap > s->max) ||
		    (nv = realloc(s->v, (size_t) ncap * sizeof(*nv))) == NULL) {
			return IOK_ENOMEM;
		}
		s->v   = nv;
		s->cap = ncap;
	}
	*ik_pipeset_slot_(s, pp) = s->n;
	s->v[s->n++]             = pp;
	return 0;
}

/* ik_pipeset_rm takes pp out: the last member moves into its slot. */
static inline void
ik_pipeset_rm(ik_pipeset *s, void *pp)
{
	int slot                         = *ik_pipeset_slot_(s, pp);
	s->v[slot]                       = s->v[s->n - 1];
	*ik_pipeset_slot_(s, s->v[slot]) = slot;
	s->n--;
	if (s->next >= s->n) {
		s->next = 0;
	}
}

/* ik_pipeset_next_writable: the next member, round-robin, whose pipe is
 * below its high-water mark; NULL if none. */
static inline void *
ik_pipeset_next_writable(ik_pipeset *s)
{
	for (int i = 0; i < s->n; i++) {
		int k = (s->next + i) % s->n;
		if (ik_pipe_writable(ik_pipeset_pipe(s, k))) {
			s->next = (k + 1) % s->n;
			return s->v[k];
		}
	}
	return NULL;
}

#endif /* IK_PIPESET_H */
