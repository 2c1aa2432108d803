/*
 * req.c - REQ (nng's req0).  The wire format is in reqrep.c.
 *
 * Every request gets an id from a per-socket counter (random start, high
 * bit set) and an entry in a hash table by id, so a reply finds its
 * request in O(1) however many are outstanding.  The entry keeps the
 * request as sent (header = id) for resends.  The plain API has one
 * current request: a new send abandons it, and its late reply is dropped.
 * iok_request (IK_MSG_REQUEST) requests are independent, each with its own
 * id, tracked by token (reqtrack.h) for cancel, and each completes exactly
 * once: its reply (tagged with the token), an IOK_ETIMEDOUT completion
 * when req:timeout expires, or silently on iok_cancel.  Resends
 * (req:resend-time) are kept in a list sorted by deadline (tail insertion:
 * O(1) with a fixed duration) and share the tracker's one timer with the
 * timeouts.  A request whose pipe goes away is sent again at once on
 * another pipe (as nng).  Requests go out round-robin over writable pipes;
 * with none the plain API refuses (IK_BUSY: the core keeps the message
 * queued) while iok_request accepts up to REQ_WAITQ_MAX into a waiting
 * list so its timeout runs.
 *
 * Raw mode (as nng's xreq): the application's header is sent as is, and
 * replies are delivered with their backtrace as the header.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "entcache.h"
#include "pattern.h"
#include "pipeset.h"
#include "../src/plain.h"
#include "reqrep.h"
#include "reqtrack.h"
#include "../src/list.h"

#define REQ_RESEND_DEFAULT 60000 /* nng's req:resend-time */
#define REQ_WAITQ_MAX 1024       /* iok_request messages held with no pipe */
#define REQ_MAX_INFLIGHT 65536   /* req:max-inflight default */
#define MAX_PIPES 65536

typedef struct req_sock req_sock;

typedef struct req_pipe {
	ik_pipe  *pipe;
	req_sock *s;
	int       slot; /* in s->pipes */
	ik_list   ents; /* requests last sent on this pipe */
} req_pipe;

/* Entries are reused unzeroed: a new field must be set in ent_init. */
typedef struct req_ent {
	ik_rt_ent    rt; /* token (0: the plain API's request), expiry */
	uint32_t     id;
	iok_msg     *msg;   /* as sent: header = id */
	req_pipe    *pipe;  /* where it went last; NULL while waiting */
	ik_node      pnode; /* in pipe->ents, or s->waitq while waiting */
	ik_node      rnode; /* in s->resends */
	ik_node      anode; /* in s->all */
	uint64_t     resend_at;
	iok_duration resend_ms; /* the socket's value when it was sent */
} req_ent;

struct req_sock {
	ik_sock     *sock;
	int          raw;
	ik_pipeset   pipes;
	ik_reqtrack  rt;    /* tokens, expiries, the timer */
	ik_idmap    *ids;   /* request id -> entry (answerable ones) */
	ik_entcache  spare; /* freed entries, for the next requests */
	req_ent     *cur;   /* the plain API's request */
	ik_list      waitq; /* accepted, waiting for a writable pipe */
	int          nwait;
	ik_list      resends; /* by resend_at */
	ik_list      all;
	bool         kick; /* flush the waiting list at the next timer */
	iok_duration resend_ms;
	iok_duration timeout_ms;
	uint32_t     next_id;
	uint32_t     nents;        /* requests outstanding (s->all) */
	bool         capped;       /* refused a request for max_inflight */
	int          max_inflight; /* beyond it send() says IK_BUSY */
};

static uint64_t
rnode_key(const ik_node *n)
{
	return ik_container_of(n, req_ent, rnode)->resend_at;
}

static void
node_unlink(ik_node *n)
{
	if (ik_node_linked(n)) {
		ik_list_remove(n);
	}
}

static void req_fire(void *arg);

static int
req_init(void *arg, ik_sock *sock, int raw)
{
	req_sock *s     = arg;
	s->sock         = sock;
	s->raw          = raw;
	s->resend_ms    = REQ_RESEND_DEFAULT;
	s->timeout_ms   = IOK_DURATION_INFINITE;
	s->max_inflight = REQ_MAX_INFLIGHT;
	s->next_id      = ik_rr_seed(s);
	IK_PIPESET_INIT(&s->pipes, req_pipe, MAX_PIPES);
	ik_list_init(&s->waitq);
	ik_list_init(&s->resends);
	ik_list_init(&s->all);
	if ((s->ids = ik_idmap_new()) == NULL) {
		return IOK_ENOMEM;
	}
	if (ik_rt_init(&s->rt, sock, req_fire, s) != 0) {
		ik_idmap_free(s->ids);
		return IOK_ENOMEM;
	}
	return 0;
}

/* Forget e entirely: no completion. */
static void
ent_free(req_sock *s, req_ent *e)
{
	if (ik_node_linked(&e->pnode)) {
		if (e->pipe == NULL) {
			s->nwait--;
		}
		ik_list_remove(&e->pnode);
	}
	node_unlink(&e->rnode);
	if (ik_node_linked(&e->anode)) {
		ik_list_remove(&e->anode);
		if (--s->nents < (uint32_t) s->max_inflight && s->capped) {
			s->capped = false;
			ik_sock_send_ready_later(s->sock); /* requests held back may go */
		}
	}
	ik_rt_remove(&s->rt, &e->rt);
	(void) ik_idmap_del_if(s->ids, e->id, e);
	if (s->cur == e) {
		s->cur = NULL;
	}
	iok_msg_free(e->msg);
	ik_entcache_put(&s->spare, e);
}

static void
req_forget_all(req_sock *s)
{
	ik_node *n, *tmp;
	s->capped = false; /* nothing to wake while forgetting */
	ik_list_foreach_safe(&s->all, n, tmp)
	{
		ent_free(s, ik_container_of(n, req_ent, anode));
	}
	ik_rt_forget_all(&s->rt);
	s->kick = false;
}

static void
req_fini(void *arg)
{
	req_sock *s = arg;
	req_forget_all(s);
	ik_rt_fini(&s->rt);
	ik_idmap_free(s->ids);
	ik_entcache_fini(&s->spare);
	ik_pipeset_fini(&s->pipes);
}

static void
req_fork_child(void *arg)
{
	req_forget_all(arg); /* the parent's requests: never sent twice */
}

/* Set the timer for the earliest thing to do: a kick, a resend or an
 * expiry. */
static void
req_arm(req_sock *s)
{
	uint64_t also = UINT64_MAX;
	ik_node *n;
	if (s->kick) {
		also = ik_now_ms();
	} else if ((n = ik_list_first(&s->resends)) != NULL) {
		also = rnode_key(n);
	}
	ik_rt_arm(&s->rt, also);
}

static void
req_wait(req_sock *s, req_ent *e)
{
	e->pipe = NULL;
	ik_list_append(&s->waitq, &e->pnode);
	s->nwait++;
}

/* Put e on the wire through p and schedule its resend.  e keeps its
 * message for resends, and the pipe takes only its bytes (a stream frames
 * them into its write batch): over tcp and ipc no request is copied. */
static void
req_transmit(req_sock *s, req_ent *e, req_pipe *p)
{
	int rv;
	node_unlink(&e->rnode);
	e->rt.sent_ns = ik_clock_ns();
	if ((rv = ik_pipe_send_copy(p->pipe, e->msg)) == IOK_ENOMEM) {
		/* Out of memory: try again a little later. */
		req_wait(s, e);
		s->kick = true;
		return;
	}
	if (rv == 0) {
		ik_sock_stat(s->sock, IK_STAT_REQUESTS, 1);
	}
	e->pipe = p;
	ik_list_append(&p->ents, &e->pnode);
	if (e->resend_ms > 0) {
		e->resend_at = ik_now_ms() + (uint64_t) e->resend_ms;
		ik_rt_sorted_insert(&s->resends, &e->rnode, rnode_key);
	}
}

/* Send what waits, while pipes take it. */
static void
req_flush(req_sock *s)
{
	ik_node  *n;
	req_pipe *p;
	while ((n = ik_list_first(&s->waitq)) != NULL &&
	       (p = ik_pipeset_next_writable(&s->pipes)) != NULL) {
		req_ent *e = ik_container_of(n, req_ent, pnode);
		ik_list_remove(&e->pnode);
		s->nwait--;
		req_transmit(s, e, p);
	}
}

static void
req_fire(void *arg)
{
	req_sock  *s   = arg;
	uint64_t   now = ik_now_ms();
	ik_rt_ent *x;
	ik_node   *n;

	if (s->kick) {
		s->kick = false;
		req_flush(s);
	}
	while ((x = ik_rt_due(&s->rt, now)) != NULL) {
		/* Over: a reply is late now, no resend; the completion waits
		 * in the tracker if the receive queue is full. */
		uint64_t token = x->token;
		ent_free(s, ik_container_of(x, req_ent, rt));
		ik_rt_complete(&s->rt, token, 0, IOK_ETIMEDOUT);
	}
	while ((n = ik_list_first(&s->resends)) != NULL && rnode_key(n) <= now) {
		req_ent  *e = ik_container_of(n, req_ent, rnode);
		req_pipe *p;
		ik_list_remove(&e->rnode);
		if (ik_node_linked(&e->pnode)) {
			if (e->pipe == NULL) {
				s->nwait--;
			}
			ik_list_remove(&e->pnode);
		}
		if ((p = ik_pipeset_next_writable(&s->pipes)) != NULL) {
			req_transmit(s, e, p);
		} else {
			req_wait(s, e); /* goes out when a pipe can take it */
		}
	}
	req_arm(s);
}

static int
req_pipe_add(void *arg, void *pp, ik_pipe *pipe)
{
	req_sock *s = arg;
	req_pipe *p = pp;
	p->pipe     = pipe;
	p->s        = s;
	if (ik_pipeset_add(&s->pipes, p) != 0) {
		return IOK_ENOMEM;
	}
	ik_list_init(&p->ents);
	/* The pipe turns active only after this returns: requests waiting
	 * for a pipe go at the next timer tick. */
	if (s->nwait > 0) {
		s->kick = true;
		req_arm(s);
	}
	return 0;
}

static void
req_pipe_rm(void *arg, void *pp)
{
	req_sock *s = arg;
	req_pipe *p = pp;
	ik_node  *n;

	ik_pipeset_rm(&s->pipes, p);
	/* Requests that were on this pipe go again at once, elsewhere (as
	 * nng): a lost connection must not cost a resend interval. */
	while ((n = ik_list_first(&p->ents)) != NULL) {
		req_ent *e = ik_container_of(n, req_ent, pnode);
		ik_list_remove(&e->pnode);
		node_unlink(&e->rnode);
		req_wait(s, e);
	}
	req_flush(s);
	req_arm(s);
}

static void
req_pipe_ready(void *arg, void *pp)
{
	req_sock *s = arg;
	(void) pp;
	req_flush(s);
	req_arm(s);
}

/* A taken entry's every field, as a zeroed one would have them: not
 * linked anywhere, no token, nothing sent (the rest is set before use). */
static void
ent_init(req_ent *e)
{
	e->rt.token    = 0;
	e->rt.deadline = 0;
	e->rt.dnode    = (ik_node) { NULL, NULL };
	e->rt.sent_ns  = 0;
	e->msg         = NULL;
	e->pipe        = NULL;
	e->pnode       = (ik_node) { NULL, NULL };
	e->rnode       = (ik_node) { NULL, NULL };
	e->anode       = (ik_node) { NULL, NULL };
	e->resend_at   = 0;
}

/* Give e a new request id (high bit set, not in use) and enter it in
 * s->ids: 0 or IOK_ENOMEM. */
static int
req_add_id(req_sock *s, req_ent *e)
{
	int rv;
	do {
		e->id = (s->next_id++) | 0x80000000u;
	} while ((rv = ik_idmap_add(s->ids, e->id, e)) == IOK_EEXIST);
	return rv;
}

static int
req_send_raw(req_sock *s, iok_msg *m)
{
	req_pipe *p = ik_pipeset_next_writable(&s->pipes);
	if (p == NULL) {
		return IK_BUSY;
	}
	ik_rr_clean(m);
	ik_pipe_send(p->pipe, m);
	return IK_OK;
}

static int
req_send(void *arg, iok_msg *m)
{
	req_sock *s     = arg;
	bool      tok   = (m->flags & IK_MSG_REQUEST) && m->token != 0;
	uint64_t  token = tok ? m->token : 0;
	req_pipe *p     = NULL;
	req_ent  *e;

	if (s->raw) {
		return req_send_raw(s, m);
	}
	req_flush(s);
	if (s->nents >= (uint32_t) s->max_inflight &&
	    !(!(m->flags & IK_MSG_REQUEST) && s->cur != NULL)) {
		/* Throttled: the request waits in the send queue (a plain send
		 * that replaces the current request always goes). */
		s->capped = true;
		return IK_BUSY;
	}
	if (tok) {
		if (ik_rt_precancelled(&s->rt, token)) {
			iok_msg_free(m); /* cancelled before it got here */
			return IK_OK;
		}
		if (s->nwait == 0) {
			p = ik_pipeset_next_writable(&s->pipes);
		}
		if (p == NULL && s->nwait >= REQ_WAITQ_MAX) {
			return IK_BUSY;
		}
		ik_rt_seen(&s->rt, token);
	} else if ((p = ik_pipeset_next_writable(&s->pipes)) == NULL) {
		return IK_BUSY; /* as nng: a request waits for a pipe */
	}

	if ((e = ik_entcache_take(&s->spare, sizeof(*e))) == NULL) {
		goto nomem;
	}
	ent_init(e);
	if (req_add_id(s, e) != 0) {
		ik_entcache_put(&s->spare, e);
		goto nomem;
	}
	if (tok && ik_rt_add(&s->rt, &e->rt, token) != 0) {
		(void) ik_idmap_del(s->ids, e->id);
		ik_entcache_put(&s->spare, e);
		goto nomem;
	}
	if (!tok) {
		if (s->cur != NULL) {
			ent_free(s, s->cur); /* a new send abandons the old request */
		}
		s->cur = e;
	}
	ik_list_append(&s->all, &e->anode);
	s->nents++;
	iok_msg_header_clear(m);
	(void) iok_msg_header_append_u32(m, e->id);
	ik_rr_clean(m);
	e->msg       = m;
	e->rt.since  = ik_now_ms();
	e->resend_ms = s->resend_ms;
	if (tok && s->timeout_ms >= 0) {
		ik_rt_set_deadline(&s->rt, &e->rt, ik_now_ms() + (uint64_t) s->timeout_ms);
	}
	if (p != NULL) {
		req_transmit(s, e, p);
	} else {
		req_wait(s, e);
	}
	req_arm(s);
	return IK_OK;

nomem:
	iok_msg_free(m);
	ik_sock_stat(s->sock, IK_STAT_TX_DROPPED, 1);
	if (tok) {
		ik_rt_complete(&s->rt, token, 0, IOK_ENOMEM); /* still exactly once */
	}
	return IK_OK;
}

static int
req_recv(void *arg, void *pp, iok_msg *m)
{
	req_sock *s     = arg;
	req_pipe *rp    = pp;
	bool      first = !(m->flags & IK_MSG_PARSED); /* not offered before */
	req_ent  *e;
	uint32_t  id;

	if (!ik_rr_reply_parse(s->sock, m, s->raw)) {
		return IK_OK;
	}
	if (s->raw) {
		return ik_sock_deliver(s->sock, m);
	}
	id = ik_get_u32(m->hdr);
	if ((e = ik_idmap_get(s->ids, id)) == NULL) {
		/* Late: a duplicate of an answered request, an abandoned,
		 * cancelled or timed-out one. */
		iok_msg_free(m);
		ik_sock_stat(s->sock, IK_STAT_RX_DROPPED, 1);
		return IK_OK;
	}
	if (first) {
		/* Read now, whenever the application takes it. */
		ik_sock_req_done(s->sock, rp->pipe, e->rt.sent_ns);
	}
	m->token   = e->rt.token;
	m->flags   = 0;
	m->hdr_len = 0;
	if (ik_sock_deliver(s->sock, m) != IK_OK) {
		m->token   = 0;
		m->flags   = IK_MSG_PARSED;
		m->hdr_len = 4; /* the id is still there */
		return IK_BUSY;
	}
	ent_free(s, e);
	return IK_OK;
}

static void
req_cancel(void *arg, uint64_t token)
{
	req_sock  *s = arg;
	ik_rt_ent *x;
	if (s->raw) {
		return; /* raw sockets have no tokens */
	}
	if ((x = ik_rt_cancel(&s->rt, token)) != NULL) {
		ent_free(s, ik_container_of(x, req_ent, rt));
	}
}

static void
req_recv_ready(void *arg)
{
	req_sock *s = arg;
	ik_rt_recv_ready(&s->rt);
}

static void
req_inflight(void *arg, ik_inflight_fn fn, void *farg)
{
	req_sock *s = arg;
	for (ik_node *n = ik_list_first(&s->all); n != NULL; n = ik_list_next(&s->all, n)) {
		req_ent *e = ik_container_of(n, req_ent, anode);
		if (e->msg != NULL) {
			fn(farg, e->pipe != NULL ? e->pipe->pipe : NULL, e->rt.since,
			    iok_msg_body(e->msg), iok_msg_len(e->msg));
		}
	}
}

static int
req_setopt(void *arg, const char *name, const void *v, size_t sz, int type)
{
	req_sock *s = arg;
	if (!s->raw && strcmp(name, IOK_OPT_REQ_RESENDTIME) == 0) {
		return ik_opt_get_ms(v, sz, type, &s->resend_ms);
	}
	if (!s->raw && strcmp(name, IOK_OPT_REQ_TIMEOUT) == 0) {
		return ik_opt_get_ms(v, sz, type, &s->timeout_ms);
	}
	if (!s->raw && strcmp(name, IOK_OPT_REQ_MAXINFLIGHT) == 0) {
		return ik_opt_get_int(
		    v, sz, type, 1, 1 << 24, &s->max_inflight); /* the core pumps */
	}
	return IOK_ENOTSUP;
}

static int
req_getopt(void *arg, const char *name, void *v, size_t *sz, int type)
{
	req_sock *s = arg;
	if (!s->raw && strcmp(name, IOK_OPT_REQ_RESENDTIME) == 0) {
		return ik_opt_put_ms(s->resend_ms, v, sz, type);
	}
	if (!s->raw && strcmp(name, IOK_OPT_REQ_TIMEOUT) == 0) {
		return ik_opt_put_ms(s->timeout_ms, v, sz, type);
	}
	if (!s->raw && strcmp(name, IOK_OPT_REQ_MAXINFLIGHT) == 0) {
		return ik_opt_put_int(s->max_inflight, v, sz, type);
	}
	return IOK_ENOTSUP;
}

const ik_pattern ik_pattern_req0 = {
	.name       = "req0",
	.peer_name  = "rep0",
	.proto      = 0x30,
	.peer       = 0x31,
	.flags      = IK_PF_SEND | IK_PF_RECV | IK_PF_RAW | IK_PF_REQUEST,
	.app        = &ik_plain_request,
	.sock_size  = sizeof(req_sock),
	.pipe_size  = sizeof(req_pipe),
	.init       = req_init,
	.fini       = req_fini,
	.pipe_add   = req_pipe_add,
	.pipe_rm    = req_pipe_rm,
	.send       = req_send,
	.recv       = req_recv,
	.pipe_ready = req_pipe_ready,
	.setopt     = req_setopt,
	.getopt     = req_getopt,
	.cancel     = req_cancel,
	.inflight   = req_inflight,
	.fork_child = req_fork_child,
	.recv_ready = req_recv_ready,
};
