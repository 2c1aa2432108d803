/*
 * list.h - intrusive doubly linked lists (a node lives inside its owner).
 */
#ifndef IK_LIST_H
#define IK_LIST_H

#include <stddef.h>

typedef struct ik_node {
	struct ik_node *next;
	struct ik_node *prev;
} ik_node;

typedef struct ik_list {
	ik_node head;
} ik_list;

#define ik_container_of(ptr, type, member) \
	((type *) (void *) ((char *) (ptr) -offsetof(type, member)))

static inline void
ik_list_init(ik_list *l)
{
	l->head.next = l->head.prev = &l->head;
}

static inline void
ik_node_init(ik_node *n)
{
	n->next = n->prev = NULL;
}

static inline int
ik_node_linked(const ik_node *n)
{
	return n->next != NULL;
}

static inline int
ik_list_empty(const ik_list *l)
{
	return l->head.next == &l->head;
}

static inline void
ik_list_append(ik_list *l, ik_node *n)
{
	n->prev            = l->head.prev;
	n->next            = &l->head;
	l->head.prev->next = n;
	l->head.prev       = n;
}

static inline void
ik_list_remove(ik_node *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = n->prev = NULL;
}

static inline ik_node *
ik_list_first(const ik_list *l)
{
	return ik_list_empty(l) ? NULL : l->head.next;
}

static inline ik_node *
ik_list_next(const ik_list *l, const ik_node *n)
{
	return n->next == &l->head ? NULL : n->next;
}

/* Iterate where the body may unlink the current node. */
#define ik_list_foreach_safe(l, n, tmp)                                  \
	for ((n) = (l)->head.next, (tmp) = (n)->next; (n) != &(l)->head; \
	     (n) = (tmp), (tmp) = (n)->next)

#endif
