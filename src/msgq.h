/*
 * msgq.h - a ring of message pointers.  No locking of its own: the socket
 * queues guard it with the socket's mutex, kernel-only users need none.
 */
#ifndef IK_MSGQ_H
#define IK_MSGQ_H

#include <stddef.h>

#include "msg.h"

typedef struct ik_msgq {
	iok_msg **ring;
	size_t    mask; /* ring size - 1 (a power of two) */
	size_t    head; /* index of the oldest message */
	size_t    len;
} ik_msgq;

/* ik_msgq_init sizes the ring for at least n messages. 0 or IOK_ENOMEM. */
int ik_msgq_init(ik_msgq *q, size_t n);
/* ik_msgq_fini frees the ring and every message still in it. */
void ik_msgq_fini(ik_msgq *q);
/* ik_msgq_reserve grows the ring to hold at least n (keeps contents). */
int ik_msgq_reserve(ik_msgq *q, size_t n);
/* ik_msgq_clear frees every message in the queue. */
void ik_msgq_clear(ik_msgq *q);

static inline size_t
ik_msgq_room(const ik_msgq *q)
{
	return q->mask + 1 - q->len;
}

/* Callers check room first. */
static inline void
ik_msgq_push(ik_msgq *q, iok_msg *m)
{
	q->ring[(q->head + q->len) & q->mask] = m;
	q->len++;
}

static inline iok_msg *
ik_msgq_pop(ik_msgq *q)
{
	iok_msg *m;
	if (q->len == 0) {
		return NULL;
	}
	m       = q->ring[q->head];
	q->head = (q->head + 1) & q->mask;
	q->len--;
	return m;
}

/* ik_msgq_peek returns the i-th oldest message (i < len). */
static inline iok_msg *
ik_msgq_peek(const ik_msgq *q, size_t i)
{
	return q->ring[(q->head + i) & q->mask];
}

#endif
