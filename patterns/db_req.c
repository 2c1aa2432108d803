/*
 * db_req.c - a pipelined-db request once accepted: putting it on the wire,
 * giving it up (iok_cancel, req:timeout; a request the server is running
 * when it times out is also cancelled there), freeing it.  The rules
 * (Matching, Completion) are at the top of db.c; the shared state in db.h.
 */
#include <stdlib.h>

#include "db.h"

/* Take r out of every structure that names it (not its FIFO or queue:
 * the caller did that) and free it. */
void
ik_db_req_free(db_sock *s, db_req *r)
{
	ik_rt_remove(&s->rt, &r->rt);
	if (s->plain == r) {
		s->plain = NULL;
	}
	iok_msg_free(r->msg);
	if (r->sess != NULL) {
		db_sess *se = r->sess;
		r->sess     = NULL;
		se->nout--;
		ik_db_sess_maybe_release(s, se);
	}
	ik_entcache_put(&s->spare, r);
}

/* Remove a queued (not yet sent) request from its queue. */
static void
unqueue(db_sock *s, db_req *r)
{
	if (r->where == R_PENDING) {
		ik_list_remove(&r->qnode);
		s->npending--;
		s->nglobal--;
	} else if (r->where == R_SESSQ) {
		db_sess *se = r->sess;
		ik_list_remove(&r->qnode);
		se->nqueue--;
		if (se->pipe == NULL && !se->failed) {
			s->nglobal--; /* a waiting session's request */
		}
		if (se->nqueue == 0) {
			node_unlink(&se->wnode);
		}
	}
	s->nqueued--;
	r->where = 0;
}

/* Give up on r with err: queued ones leave at once, one in flight stays
 * in its FIFO (dead) so its reply is still consumed. */
void
ik_db_give_up(db_sock *s, db_req *r, int err)
{
	uint64_t token   = r->rt.token;
	uint32_t session = r->sess != NULL ? r->sess->id : 0;
	if (r->where == R_FIFO) {
		r->dead = true;
		ik_rt_remove(&s->rt, &r->rt);
		if (s->plain == r) {
			s->plain = NULL;
		}
		iok_msg_free(r->msg); /* no retry for it now */
		r->msg = NULL;
	} else {
		unqueue(s, r);
		ik_db_req_free(s, r);
	}
	if (err != 0) {
		ik_rt_complete(&s->rt, token, session, err);
	}
}

/* Put r on the wire through p. */
void
ik_db_transmit(db_sock *s, db_pipe *p, db_req *r)
{
	iok_msg *out = r->msg;
	int      rv;

	r->msg = NULL;
	if (r->idem && !r->retried && r->sess == NULL) {
		/* Keep the request to send it again if the connection drops
		 * (without memory for a copy, it just cannot be retried). */
		iok_msg *copy;
		if (iok_msg_dup(&copy, out) == 0) {
			r->msg = out;
			out    = copy;
		} else {
			r->idem = false;
		}
	}
	out->flags  = 0;
	out->token  = 0;
	out->status = 0;
	r->pipe     = p;
	r->where    = R_FIFO;
	ik_list_append(&p->fifo, &r->qnode);
	p->nfifo++;
	s->ninflight++;
	ik_pipe_inflight_add(p->pipe, 1);
	r->rt.sent_ns = ik_clock_ns(); /* latency, and the upstream's average */
	if ((rv = ik_pipe_send(p->pipe, out)) == 0) {
		ik_sock_stat(s->sock, IK_STAT_REQUESTS, 1);
	} else {
		/* Never on the wire: no reply will come for it. */
		ik_list_remove(&r->qnode);
		p->nfifo--;
		s->ninflight--;
		ik_pipe_inflight_add(p->pipe, -1);
		r->where         = 0;
		r->pipe          = NULL;
		uint64_t token   = r->rt.token;
		uint32_t session = r->sess != NULL ? r->sess->id : 0;
		ik_db_req_free(s, r);
		ik_rt_complete(&s->rt, token, session,
		    rv == IOK_ENOMEM   ? IOK_ENOMEM
		    : rv == IOK_EINVAL ? IOK_EINVAL
		                       : IOK_ECONNRESET);
	}
}

void
ik_db_cancel(void *arg, uint64_t token)
{
	db_sock   *s = arg;
	ik_rt_ent *x = ik_rt_cancel(&s->rt, token);
	if (x != NULL) {
		ik_db_give_up(s, ik_container_of(x, db_req, rt), 0);
		ik_db_settle(s, false);
	}
}

#define DB_RECANCEL_MS 500

/* The request a cancel was sent for still runs: send another. */
static void
db_recancel(void *arg)
{
	db_pipe *p = arg;
	ik_node *n = ik_list_first(&p->fifo);
	if (n != NULL) {
		db_req *r = ik_container_of(n, db_req, qnode);
		if (r->dead && r->seq == p->cancel_seq && ik_pipe_cancel(p->pipe) == 0) {
			ik_timer_start(p->recancel, DB_RECANCEL_MS);
		}
	}
}

/* Ask the server to stop r, which heads p's FIFO (PostgreSQL
 * CancelRequest); its reply is still consumed. */
static void
cancel_running(db_pipe *p, db_req *r)
{
	if (ik_pipe_cancel(p->pipe) != 0) {
		return; /* the transport cannot cancel */
	}
	if (p->recancel == NULL && (p->recancel = ik_timer_new(db_recancel, p)) == NULL) {
		return;
	}
	p->cancel_seq = r->seq;
	ik_timer_start(p->recancel, DB_RECANCEL_MS);
}

void
ik_db_fire(void *arg)
{
	db_sock   *s   = arg;
	uint64_t   now = ik_now_ms();
	ik_rt_ent *x;
	while ((x = ik_rt_due(&s->rt, now)) != NULL) {
		db_req *r = ik_container_of(x, db_req, rt);
		if (r->where == R_FIFO && ik_list_first(&r->pipe->fifo) == &r->qnode) {
			cancel_running(r->pipe, r); /* the server is running it */
		}
		ik_db_give_up(s, r, IOK_ETIMEDOUT);
	}
	ik_db_settle(s, false);
}
