/* msgq.c - ring of message pointers (see msgq.h). */
#include <stdlib.h>

#include "msgq.h"

static size_t
pow2_at_least(size_t n)
{
	size_t p = 4;
	while (p < n) {
		p <<= 1;
	}
	return p;
}

int
ik_msgq_init(ik_msgq *q, size_t n)
{
	size_t size = pow2_at_least(n);
	q->ring     = calloc(size, sizeof(*q->ring));
	if (q->ring == NULL) {
		return IOK_ENOMEM;
	}
	q->mask = size - 1;
	q->head = 0;
	q->len  = 0;
	return 0;
}

void
ik_msgq_clear(ik_msgq *q)
{
	iok_msg *m;
	while ((m = ik_msgq_pop(q)) != NULL) {
		iok_msg_free(m);
	}
}

void
ik_msgq_fini(ik_msgq *q)
{
	if (q->ring != NULL) {
		ik_msgq_clear(q);
		free(q->ring);
		q->ring = NULL;
	}
}

int
ik_msgq_reserve(ik_msgq *q, size_t n)
{
	if (n <= q->mask + 1) {
		return 0;
	}
	size_t    size = pow2_at_least(n);
	iok_msg **r    = calloc(size, sizeof(*r));
	if (r == NULL) {
		return IOK_ENOMEM;
	}
	for (size_t i = 0; i < q->len; i++) {
		r[i] = ik_msgq_peek(q, i);
	}
	free(q->ring);
	q->ring = r;
	q->mask = size - 1;
	q->head = 0;
	return 0;
}
