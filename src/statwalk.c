/*
 * statwalk.c - one walk over the sockets for the statistics that the
 * debug endpoint and the exporters show (see statwalk.h).
 */
#include "statwalk.h"

static void
count_cb(void *arg, ik_pipe *p, uint64_t since, const void *head, size_t len)
{
	ik_inflight *in = arg;
	(void) since;
	(void) head;
	(void) len;
	in->total++;
	if (p == NULL) {
		in->queued++;
		return;
	}
	for (int i = 0; i < in->npc; i++) {
		if (in->pc[i].pipe == p) {
			in->pc[i].n++;
			return;
		}
	}
}

void
ik_inflight_foreach(ik_sock *s, ik_inflight_fn fn, void *arg)
{
	if (s->pat->inflight != NULL && s->pdata != NULL && !s->finished) {
		s->pat->inflight(s->pdata, fn, arg);
	}
}

void
ik_inflight_count(ik_sock *s, ik_inflight *in)
{
	ik_inflight_foreach(s, count_cb, in);
}

struct walk {
	void (*fn)(const ik_sock_view *v, void *arg);
	void *arg;
};

static void
walk_sock(ik_sock *s, void *arg)
{
	struct walk *w  = arg;
	ik_inflight  in = { 0 };
	ik_sock_view v  = { .s = s };

	pthread_mutex_lock(&s->mu);
	ik_sock_app_stats(s);
	v.sq     = s->sq.len;
	v.rq     = s->rq.len + atomic_load(&s->taken_len);
	v.sq_cap = s->sq_cap;
	v.rq_cap = s->rq_cap;
	pthread_mutex_unlock(&s->mu);
	ik_inflight_count(s, &in);
	v.inflight = in.total;
	w->fn(&v, w->arg);
}

void
ik_statwalk(void (*fn)(const ik_sock_view *v, void *arg), void *arg)
{
	struct walk w = { fn, arg };
	ik_sockets_foreach(walk_sock, &w);
}
