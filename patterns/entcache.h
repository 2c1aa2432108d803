/*
 * entcache.h - a socket's spare request entries, kept for the next
 * request.  Kernel thread only, like everything in patterns/.
 *
 * A socket with requests in flight allocates an entry per request and
 * frees it at the reply; over inproc that calloc/free pair was about a
 * seventh of the kernel thread's time (64 outstanding), and the kernel
 * thread is what bounds that figure.  A LIFO list of up to ENTCACHE_MAX
 * freed entries hands the warm ones back; beyond it they go to free().
 * Sanitizer builds keep none (IK_NO_RECYCLE, as the message pool), so a
 * use after free of an entry stays visible.
 */
#ifndef IK_ENTCACHE_H
#define IK_ENTCACHE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/msgpool.h" /* IK_NO_RECYCLE */

#define ENTCACHE_MAX 256

typedef struct ik_entcache {
	void    *head; /* a spare entry's first word links the next */
	uint32_t n;
} ik_entcache;

/* ik_entcache_take: an entry of size bytes (the same size every call for
 * one cache) holding whatever its last user left, NULL if out of memory:
 * for a caller that sets every field itself, where zeroing the whole
 * entry first was a visible part of a request's cost. */
static inline void *
ik_entcache_take(ik_entcache *c, size_t size)
{
	void *e = c->head;
	if (e == NULL) {
		return calloc(1, size);
	}
	memcpy(&c->head, e, sizeof(void *));
	c->n--;
	return e;
}

/* ik_entcache_get: a zeroed entry of size bytes, NULL if out of memory. */
static inline void *
ik_entcache_get(ik_entcache *c, size_t size)
{
	void *e = ik_entcache_take(c, size);
	if (e != NULL) {
		memset(e, 0, size);
	}
	return e;
}

/* ik_entcache_put keeps e for the next get, or frees it. */
static inline void
ik_entcache_put(ik_entcache *c, void *e)
{
#ifdef IK_NO_RECYCLE
	const uint32_t keep = 0;
#else
	const uint32_t keep = ENTCACHE_MAX;
#endif
	if (c->n >= keep) {
		free(e);
		return;
	}
	memcpy(e, &c->head, sizeof(void *));
	c->head = e;
	c->n++;
}

/* ik_entcache_fini frees every spare entry. */
static inline void
ik_entcache_fini(ik_entcache *c)
{
	while (c->head != NULL) {
		void *e = c->head;
		memcpy(&c->head, e, sizeof(void *));
		free(e);
	}
	c->n = 0;
}

#endif /* IK_ENTCACHE_H */
