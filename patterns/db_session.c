/*
 * db_session.c - pipelined-db sessions (affinity): a session pins one
 * connection for its requests alone until it is closed.  The rules are at
 * the top of db.c; the shared state in db.h.
 */
#include <stdlib.h>

#include "db.h"

/* The session is done with: unpin, forget. */
static void
sess_free(db_sock *s, db_sess *se)
{
	db_req  *r;
	ik_node *n;
	while ((n = ik_list_first(&se->queue)) != NULL) {
		r = ik_container_of(n, db_req, qnode);
		ik_list_remove(n);
		r->where = 0;
		r->sess  = NULL;
	}
	if (se->pipe != NULL) {
		/* Clean up (PostgreSQL: roll back a transaction left open)
		 * before the connection serves anyone else. */
		(void) ik_pipe_release(se->pipe->pipe);
		ik_pipe_hold_subscribe(se->pipe->pipe, 0);
		se->pipe->pinned = NULL;
		se->pipe         = NULL;
		s->npinned--;
	}
	node_unlink(&se->wnode);
	node_unlink(&se->anode);
	(void) ik_idmap_del_if(s->sessions, se->id, se);
	free(se);
}

/* Release a closing session once its last request is done. */
void
ik_db_sess_maybe_release(db_sock *s, db_sess *se)
{
	if (se->closing && se->nout == 0) {
		sess_free(s, se);
		s->again = true; /* its connection is free for others */
	}
}

/* Send a pinned session's queued requests while its connection has room. */
void
ik_db_sess_flush(db_sock *s, db_sess *se)
{
	ik_node *n;
	se->nout++; /* a request failing to go must not free se under us */
	while (se->pipe != NULL && (n = ik_list_first(&se->queue)) != NULL &&
	       ik_db_room(s, se->pipe)) {
		db_req *r = ik_container_of(n, db_req, qnode);
		ik_list_remove(n);
		se->nqueue--;
		s->nqueued--;
		ik_db_transmit(s, se->pipe, r);
	}
	se->nout--;
	ik_db_sess_maybe_release(s, se);
}

void
ik_db_sess_pin(db_sock *s, db_sess *se, db_pipe *p)
{
	node_unlink(&se->wnode);
	s->nglobal -= se->nqueue;
	se->pipe  = p;
	p->pinned = se;
	s->npinned++;
	/* A sharer's SUBSCRIBE must not land inside the session's MULTI. */
	ik_pipe_hold_subscribe(p->pipe, 1);
}

/* Take every request still in the socket's send queue, whatever the
 * bounds, so that the requests sent before a close are all known. */
static void
drain_send_queue(db_sock *s)
{
	uint64_t before;
	s->draining = true;
	do {
		before  = s->accepted;
		s->busy = false;
		ik_sock_send_ready(s->sock);
	} while (s->accepted != before);
	s->draining = false;
}

/* iok_session_close, on the kernel thread: release the session once its
 * queued and in-flight requests are done.  The session's requests sent
 * before the close may still be in the socket's send queue: take them
 * first, so they all count. */
void
ik_db_session_close(void *arg, uint32_t session)
{
	db_sock *s = arg;
	db_sess *se;
	drain_send_queue(s);
	if ((se = ik_idmap_get(s->sessions, session)) != NULL) {
		se->closing = true;
		ik_db_sess_maybe_release(s, se);
	}
	ik_db_settle(s, false);
}

db_sess *
ik_db_sess_get(db_sock *s, uint32_t id)
{
	db_sess *se = ik_idmap_get(s->sessions, id);
	if (se != NULL) {
		return se;
	}
	if ((se = calloc(1, sizeof(*se))) == NULL) {
		return NULL;
	}
	se->id = id;
	ik_list_init(&se->queue);
	if (ik_idmap_put(s->sessions, id, se) != 0) {
		free(se);
		return NULL;
	}
	ik_list_append(&s->sessions_all, &se->anode);
	return se;
}

void
ik_db_sess_enqueue(db_sock *s, db_sess *se, db_req *r)
{
	r->sess = se;
	se->nout++;
	ik_list_append(&se->queue, &r->qnode);
	r->where = R_SESSQ;
	se->nqueue++;
	s->nqueued++;
	if (se->pipe != NULL) {
		ik_db_sess_flush(s, se);
	} else {
		s->nglobal++;
		if (!ik_node_linked(&se->wnode)) {
			ik_list_append(&s->waiting, &se->wnode);
		}
	}
}

db_sess *
ik_db_sess_lost(db_sock *s, db_pipe *p)
{
	db_sess *se = p->pinned;
	ik_node *n;
	if (se == NULL) {
		return NULL;
	}
	/* It cannot move to another connection: it fails. */
	se->failed = true;
	se->pipe   = NULL;
	p->pinned  = NULL;
	s->npinned--;
	se->nout++; /* hold it while its requests complete */
	while ((n = ik_list_first(&se->queue)) != NULL) {
		ik_db_give_up(s, ik_container_of(n, db_req, qnode), IOK_ECONNRESET);
	}
	return se;
}

void
ik_db_sess_unhold(db_sock *s, db_sess *se)
{
	se->nout--;
	ik_db_sess_maybe_release(s, se);
}

void
ik_db_sess_forget_all(db_sock *s)
{
	ik_node *n;
	while ((n = ik_list_first(&s->sessions_all)) != NULL) {
		db_sess *se = ik_container_of(n, db_sess, anode);
		se->closing = false;
		while ((n = ik_list_first(&se->queue)) != NULL) {
			db_req *r = ik_container_of(n, db_req, qnode);
			ik_list_remove(n);
			r->sess = NULL;
			ik_db_req_free(s, r);
		}
		se->nqueue = 0;
		sess_free(s, se);
	}
}
