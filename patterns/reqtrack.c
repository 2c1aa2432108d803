/*
 * reqtrack.c - request tracking shared by req, surveyor and pipelined-db
 * (see reqtrack.h).
 */
#include <stdlib.h>

#include "reqtrack.h"

/* Unknown tokens cancelled before their request reached the pattern: past
 * this many (the application cancels tokens it never got) start over. */
#define RT_PRECANCEL_MAX 1024

static void
rt_timer_cb(void *arg)
{
	ik_reqtrack *t = arg;
	t->armed       = false;
	t->fire(t->arg);
}

int
ik_rt_init(ik_reqtrack *t, ik_sock *sock, void (*fire)(void *), void *arg)
{
	t->sock = sock;
	t->fire = fire;
	t->arg  = arg;
	ik_list_init(&t->deadlines);
	if ((t->tokens = ik_idmap_new()) == NULL) {
		return IOK_ENOMEM;
	}
	return 0;
}

static void
owed_clear(ik_reqtrack *t)
{
	while (t->olen > 0) {
		iok_msg_free(t->owed[t->ohead]);
		t->ohead = (t->ohead + 1) % t->ocap;
		t->olen--;
	}
}

void
ik_rt_forget_all(ik_reqtrack *t)
{
	ik_node *n;
	while ((n = ik_list_first(&t->deadlines)) != NULL) {
		ik_list_remove(n);
	}
	ik_idmap_free(t->precancel);
	t->precancel = NULL;
	owed_clear(t);
	if (t->timer != NULL) {
		ik_timer_stop(t->timer);
	}
	t->armed = false;
}

void
ik_rt_fini(ik_reqtrack *t)
{
	ik_rt_forget_all(t);
	ik_timer_free(t->timer);
	t->timer = NULL;
	ik_idmap_free(t->tokens);
	t->tokens = NULL;
	free(t->owed);
	t->owed = NULL;
}

/* ------------------------------------------------------- tokens */

bool
ik_rt_precancelled(ik_reqtrack *t, uint64_t token)
{
	if (t->precancel == NULL || ik_idmap_del(t->precancel, token) == NULL) {
		return false;
	}
	ik_rt_seen(t, token);
	return true;
}

void
ik_rt_seen(ik_reqtrack *t, uint64_t token)
{
	if (token > t->max_token) {
		t->max_token = token;
	}
}

int
ik_rt_add(ik_reqtrack *t, ik_rt_ent *e, uint64_t token)
{
	int rv = ik_idmap_put(t->tokens, token, e);
	if (rv == 0) {
		e->token = token;
		ik_rt_seen(t, token);
	}
	return rv;
}

ik_rt_ent *
ik_rt_find(const ik_reqtrack *t, uint64_t token)
{
	return ik_idmap_get(t->tokens, token);
}

void
ik_rt_remove(ik_reqtrack *t, ik_rt_ent *e)
{
	if (e->token != 0) {
		(void) ik_idmap_del_if(t->tokens, e->token, e);
	}
	if (ik_node_linked(&e->dnode)) {
		ik_list_remove(&e->dnode);
	}
}

ik_rt_ent *
ik_rt_cancel(ik_reqtrack *t, uint64_t token)
{
	ik_rt_ent *e = ik_idmap_get(t->tokens, token);
	if (e != NULL || token <= t->max_token) {
		return e;
	}
	/* Still in the core's send queue: drop it when it arrives. */
	if (t->precancel != NULL && ik_idmap_count(t->precancel) >= RT_PRECANCEL_MAX) {
		ik_idmap_free(t->precancel);
		t->precancel = NULL;
	}
	if (t->precancel == NULL && (t->precancel = ik_idmap_new()) == NULL) {
		return NULL;
	}
	(void) ik_idmap_put(t->precancel, token, t);
	return NULL;
}

/* ---------------------------------------------------- deadlines */

static uint64_t
dnode_key(const ik_node *n)
{
	return ik_container_of(n, ik_rt_ent, dnode)->deadline;
}

void
ik_rt_sorted_insert(ik_list *l, ik_node *n, uint64_t (*key)(const ik_node *))
{
	uint64_t k = key(n);
	ik_node *p = l->head.prev;
	while (p != &l->head && key(p) > k) {
		p = p->prev;
	}
	n->prev       = p;
	n->next       = p->next;
	p->next->prev = n;
	p->next       = n;
}

void
ik_rt_set_deadline(ik_reqtrack *t, ik_rt_ent *e, uint64_t at)
{
	if (ik_node_linked(&e->dnode)) {
		ik_list_remove(&e->dnode);
	}
	e->deadline = at;
	ik_rt_sorted_insert(&t->deadlines, &e->dnode, dnode_key);
}

ik_rt_ent *
ik_rt_due(const ik_reqtrack *t, uint64_t now)
{
	ik_node *n = ik_list_first(&t->deadlines);
	if (n == NULL || dnode_key(n) > now) {
		return NULL;
	}
	return ik_container_of(n, ik_rt_ent, dnode);
}

void
ik_rt_arm(ik_reqtrack *t, uint64_t also)
{
	ik_node *n    = ik_list_first(&t->deadlines);
	uint64_t when = also;
	uint64_t now;
	if (n != NULL && dnode_key(n) < when) {
		when = dnode_key(n);
	}
	if (when == UINT64_MAX) {
		if (t->armed) {
			ik_timer_stop(t->timer);
			t->armed = false;
		}
		return;
	}
	if (t->armed && t->armed_at <= when) {
		return; /* it fires first anyway, and re-arms */
	}
	if (t->timer == NULL && (t->timer = ik_timer_new(rt_timer_cb, t)) == NULL) {
		return; /* out of memory: the next arm tries again */
	}
	now = ik_now_ms();
	ik_timer_start(t->timer, when > now ? when - now : 0);
	t->armed    = true;
	t->armed_at = when;
}

/* -------------------------------------------------- completions */

static void
owed_push(ik_reqtrack *t, iok_msg *m)
{
	if (t->olen == t->ocap) {
		uint32_t  ncap = t->ocap ? t->ocap * 2 : 16;
		iok_msg **nq   = malloc(ncap * sizeof(*nq));
		if (nq == NULL) {
			/* Out of memory: the completion is lost, but say so. */
			iok_msg_free(m);
			ik_sock_stat(t->sock, IK_STAT_RX_DROPPED, 1);
			return;
		}
		for (uint32_t i = 0; i < t->olen; i++) {
			nq[i] = t->owed[(t->ohead + i) % t->ocap];
		}
		free(t->owed);
		t->owed  = nq;
		t->ocap  = ncap;
		t->ohead = 0;
	}
	t->owed[(t->ohead + t->olen) % t->ocap] = m;
	t->olen++;
}

void
ik_rt_complete(ik_reqtrack *t, uint64_t token, uint32_t session, int err)
{
	iok_msg *m = ik_msg_error(token, err);
	if (m == NULL) {
		ik_sock_stat(t->sock, IK_STAT_RX_DROPPED, 1);
		return;
	}
	m->session = session;
	if (t->olen > 0 || ik_sock_deliver(t->sock, m) != IK_OK) {
		owed_push(t, m);
	}
}

void
ik_rt_recv_ready(ik_reqtrack *t)
{
	while (t->olen > 0) {
		if (ik_sock_deliver(t->sock, t->owed[t->ohead]) != IK_OK) {
			return;
		}
		t->ohead = (t->ohead + 1) % t->ocap;
		t->olen--;
	}
}

void
ik_rt_drop_plain(ik_reqtrack *t)
{
	uint32_t n = t->olen, kept = 0;
	for (uint32_t i = 0; i < n; i++) {
		iok_msg *m = t->owed[(t->ohead + i) % t->ocap];
		if (m->token == 0) {
			iok_msg_free(m);
		} else {
			t->owed[(t->ohead + kept++) % t->ocap] = m;
		}
	}
	t->olen = kept;
}
