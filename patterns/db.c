/*
 * db.c - pipelined-db: request/reply without an SP header, over database
 * transports whose replies come back in request order (IK_TF_INORDER;
 * pipes of other transports are refused).
 *
 * Matching.  Each connection ("pipe") keeps a FIFO of the requests written
 * on it; a reply belongs to the FIFO's head.  Nothing is ever taken out of
 * the middle of a FIFO: a request the application cancels (iok_cancel) or
 * that times out stays in place, marked dead, so its reply, which still
 * comes on the wire, is consumed and dropped (stat:rx-dropped) and the
 * next reply still finds its own request.  A reply arriving with nothing
 * in flight means the stream is out of step: stat:proto-errors, and the
 * connection is closed.  A message the transport cannot encode (for Redis:
 * not exactly one command) never enters a FIFO: it completes at once with
 * IOK_EINVAL.
 *
 * Depth and spreading (which connection a request goes to): db_route.c.
 * Draining.  When a connection's address leaves its dialer's target
 * (discovery), pipe_drain marks it: no new request is routed there (a
 * session pinned to it carries on), and once nothing is in flight on it
 * and no session holds it, it is closed.  The core closes it after
 * IK_DRAIN_MAX_MS regardless (then the usual IOK_ECONNRESET / retry).
 *
 * Queueing and flow control.  Requests that find no room wait in order in
 * a pending queue, where req:timeout (default infinite, as req0) runs on
 * them as on requests in flight.  That queue (with the queues of sessions
 * still waiting for a connection) holds DB_QUEUE_MAX requests; beyond it
 * send() says IK_BUSY and the request waits in the socket's send queue
 * (so iok_request blocks or says IOK_EAGAIN as for any full socket).  To
 * never deadlock against sessions, the pattern refuses only when its
 * queue can drain without the application's help: when some connection is
 * not pinned, or none is pinned at all; while every connection is pinned
 * it takes everything (the send queue bounds each burst).  With
 * db:fail-fast (default on), while no connection is up and every dialer's
 * last attempt failed (ik_sock_connect_error), requests do not wait: they
 * complete at once with that error, and those waiting fail when an
 * attempt fails (dial_failed).  A reply the pipe skipped for being over
 * IOK_OPT_RECVMAXSZ arrives in its place as an empty message with status
 * IOK_EMSGSIZE and completes its request with that error.
 *
 * Completion.  Every request completes exactly once: its reply (tagged
 * with its token and session), or an error completion (ik_msg_error):
 * IOK_ETIMEDOUT when req:timeout expires (queued or in flight),
 * IOK_ECONNRESET when its connection drops while it is in flight, IOK_EINVAL
 * when the transport refuses it; or nothing, silently, on iok_cancel.  A
 * request sent with IOK_FLAG_IDEMPOTENT (and no session) that was in flight
 * on a connection that dropped is instead sent once more, ahead of the
 * pending queue, on the next connection with room; a second loss fails it.
 * Completions the full receive queue refuses wait in order in the pattern
 * and go at recv_ready.
 *
 * Sessions (affinity).  A request with m->session != 0 belongs to that
 * session.  The session's first request pins a connection (one with room,
 * not pinned; fewest in flight), which is then the session's alone: no
 * other request is routed to it until iok_session_close (session_close)
 * releases it, once the session's queued and
 * in-flight requests are done (requests of others already in flight on it
 * when it was pinned finish normally).  The session's requests go there in
 * order; those that find it full wait in the session's own queue
 * (DB_SESSION_QMAX, then IK_BUSY: only the session's own progress can
 * clear it).  If every connection is pinned, everything else waits - with
 * pool-size 1 an open session blocks all other requests of the socket until
 * it is closed: keep sessions short, or give the dialer a bigger pool.  If
 * the pinned connection drops, the session's queued and in-flight requests
 * and every later one complete with IOK_ECONNRESET (never retried: a
 * transaction cannot move) until the session is closed.  A session still
 * waiting for a connection keeps its place in the order of arrival
 * against the pending queue.  While a connection is pinned, subscription
 * commands of a socket sharing it (iok_dialer_share) are held back and
 * sent when it is released (ik_pipe_hold_subscribe): inside a Redis MULTI a
 * SUBSCRIBE would be queued and answered with a reply.  Close a session
 * only once its transaction has ended (EXEC / DISCARD / COMMIT): the
 * connection goes back to everyone in whatever state it was left.  A
 * session whose connection failed stays known (failing its requests) until
 * it is closed.  iok_session_close reaches the pattern as a kernel call,
 * not through the send queue, so before acting on it the pattern takes
 * every request still in the socket's send queue (whatever its bounds):
 * the session's requests sent before the close are then all known.
 *
 * Plain API (iok_send/iok_recv, token 0): one request at a time, as req0
 * and as the core (which clears stale replies on each plain send) expects;
 * a new plain request abandons the previous one, whose reply is then
 * dropped.  Replies come in order, the connection stays matched.
 *
 * Pushes.  Frames the transport marks as pushes (RESP3 '>') go to a socket
 * sharing the connection (iok_dialer_share) when there is one and never
 * touch the FIFOs.  Without one they reach this socket: once iok_request
 * has been used they are delivered with token 0 and iok_msg_is_push() true;
 * on a socket used plainly they would read as the reply to the current
 * request, so they are dropped and counted in stat:rx-dropped.
 *
 * Fork: in the child every request, queue, session and completion is
 * forgotten (they are the parent's); nothing is sent twice.
 *
 * Read-only statistics: "db:inflight" and "db:queued" (uint64): requests
 * on the wire now (dead ones included), and requests waiting to be sent.
 */
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "../src/plain.h"
#include "../src/tflags.h"

#define OPT_INFLIGHT "db:inflight"
#define OPT_QUEUED "db:queued"

/* Complete token with err, now or as soon as there is room. */
static void
complete(db_sock *s, uint64_t token, uint32_t session, int err)
{
	ik_rt_complete(&s->rt, token, session, err);
}

/* ------------------------------------------------------- bookkeeping */

static void
list_prepend(ik_list *l, ik_node *n)
{
	n->next            = l->head.next;
	n->prev            = &l->head;
	l->head.next->prev = n;
	l->head.next       = n;
}

/* Drained connections with nothing left on them go. */
static void
close_drained(db_sock *s)
{
	for (int i = 0; i < s->pipes.n && s->ndraining > 0; i++) {
		db_pipe *p = ik_pipeset_at(&s->pipes, i);
		if (p->draining && !p->closed && p->nfifo == 0 && p->pinned == NULL) {
			p->closed = true;
			s->ndraining--;
			ik_pipe_close(p->pipe, IOK_ECONNSHUT);
		}
	}
}

/* After every event: move what can move, set the timer, and let the core
 * offer again what we refused. */
void
ik_db_settle(db_sock *s, bool in_send)
{
	ik_db_dispatch(s);
	if (s->ndraining > 0) {
		close_drained(s);
	}
	ik_rt_arm(&s->rt, UINT64_MAX);
	if (s->busy && !in_send) {
		s->busy = false;
		ik_sock_send_ready(s->sock);
	}
}

/* ------------------------------------------------------------- pattern */

static int
db_init(void *arg, ik_sock *sock, int raw)
{
	db_sock *s = arg;
	(void) raw;
	s->sock         = sock;
	s->max_inflight = DB_INFLIGHT_DEFAULT;
	s->timeout_ms   = IOK_DURATION_INFINITE;
	s->fail_fast    = true;
	ik_list_init(&s->sessions_all);
	ik_list_init(&s->pending);
	ik_list_init(&s->waiting);
	IK_PIPESET_INIT(&s->pipes, db_pipe, DB_MAX_PIPES);
	if ((s->sessions = ik_idmap_new()) == NULL) {
		return IOK_ENOMEM;
	}
	if (ik_rt_init(&s->rt, sock, ik_db_fire, s) != 0) {
		ik_idmap_free(s->sessions);
		return IOK_ENOMEM;
	}
	return 0;
}

/* Forget everything without a completion (fini, fork child). */
static void
forget_all(db_sock *s)
{
	ik_node *n;
	/* Sessions first, so freeing requests does not release them. */
	ik_db_sess_forget_all(s);
	for (int i = 0; i < s->pipes.n; i++) {
		db_pipe *p = ik_pipeset_at(&s->pipes, i);
		while ((n = ik_list_first(&p->fifo)) != NULL) {
			db_req *r = ik_container_of(n, db_req, qnode);
			ik_list_remove(n);
			r->sess = NULL;
			ik_db_req_free(s, r);
			ik_pipe_inflight_add(p->pipe, -1);
		}
		p->nfifo     = 0;
		p->probe_out = false; /* the parent's probe, if any */
		p->pinned    = NULL;
		if (p->health != NULL) {
			ik_timer_stop(p->health);
		}
	}
	while ((n = ik_list_first(&s->pending)) != NULL) {
		db_req *r = ik_container_of(n, db_req, qnode);
		ik_list_remove(n);
		ik_db_req_free(s, r);
	}
	ik_rt_forget_all(&s->rt);
	s->plain    = NULL;
	s->npending = s->nglobal = 0;
	s->ninflight = s->nqueued = 0;
	s->npinned                = 0;
	s->busy                   = false;
}

static void
db_fini(void *arg)
{
	db_sock *s = arg;
	forget_all(s);
	ik_entcache_fini(&s->spare);
	ik_rt_fini(&s->rt);
	ik_idmap_free(s->sessions);
	ik_pipeset_fini(&s->pipes);
}

static void
db_fork_child(void *arg)
{
	forget_all(arg); /* the parent's requests: never sent twice */
}

static int
db_pipe_add(void *arg, void *pp, ik_pipe *pipe)
{
	db_sock *s = arg;
	db_pipe *p = pp;
	if (!(ik_pipe_flags(pipe) & IK_TF_INORDER)) {
		return IOK_EPROTO; /* replies could not be matched by order */
	}
	p->pipe     = pipe;
	p->s        = s;
	p->pinned   = NULL;
	p->nfifo    = 0;
	p->recancel = NULL;
	if (ik_pipeset_add(&s->pipes, p) != 0) {
		return IOK_ENOMEM;
	}
	ik_list_init(&p->fifo);
	ik_db_health_start(p);
	/* The pipe is active already: what waits for a connection goes. */
	ik_db_settle(s, false);
	return 0;
}

static void
db_pipe_drain(void *arg, void *pp)
{
	db_sock *s = arg;
	db_pipe *p = pp;
	if (!p->draining) {
		p->draining = true;
		s->ndraining++;
		ik_db_settle(s, false); /* closes it now if nothing is in flight */
	}
}

static void
db_pipe_rm(void *arg, void *pp)
{
	db_sock *s = arg;
	db_pipe *p = pp;
	ik_node *n;
	ik_list  retry;

	if (p->draining && !p->closed) {
		s->ndraining--; /* went before it was idle (or the drain ran out) */
	}
	if (p->recancel != NULL) {
		ik_timer_free(p->recancel);
		p->recancel = NULL;
	}
	ik_db_health_stop(p);
	ik_pipeset_rm(&s->pipes, p);
	/* The pinned session fails: it cannot move to another connection. */
	db_sess *se = ik_db_sess_lost(s, p);
	/* What was in flight: dead ones go quietly, idempotent ones once more
	 * ahead of everything pending, the others fail. */
	ik_list_init(&retry);
	while ((n = ik_list_first(&p->fifo)) != NULL) {
		db_req *r = ik_container_of(n, db_req, qnode);
		ik_list_remove(n);
		p->nfifo--;
		s->ninflight--;
		ik_pipe_inflight_add(p->pipe, -1);
		r->where = 0;
		r->pipe  = NULL;
		if (r->dead) {
			ik_db_req_free(s, r);
		} else if (r->idem && !r->retried && r->sess == NULL && r->msg != NULL) {
			r->retried = true;
			ik_list_append(&retry, &r->qnode);
		} else {
			uint64_t token   = r->rt.token;
			uint32_t session = r->sess != NULL ? r->sess->id : 0;
			ik_db_req_free(s, r);
			complete(s, token, session, IOK_ECONNRESET);
		}
	}
	while ((n = retry.head.prev) != &retry.head) {
		db_req *r = ik_container_of(n, db_req, qnode);
		ik_list_remove(n);
		list_prepend(&s->pending, &r->qnode);
		r->where = R_PENDING;
		s->npending++;
		s->nglobal++;
		s->nqueued++;
	}
	if (se != NULL) {
		ik_db_sess_unhold(s, se);
	}
	ik_db_settle(s, false);
}

static void
db_pipe_ready(void *arg, void *pp)
{
	(void) pp;
	ik_db_settle(arg, false);
}

/* A new plain request abandons the previous one (as req0). */
static void
abandon_plain(db_sock *s)
{
	if (s->plain != NULL) {
		ik_db_give_up(s, s->plain, 0);
		s->plain = NULL;
	}
	ik_rt_drop_plain(&s->rt);
}

static int
db_send(void *arg, iok_msg *m)
{
	db_sock *s     = arg;
	bool     tok   = (m->flags & IK_MSG_REQUEST) && m->token != 0;
	uint64_t token = tok ? m->token : 0;
	uint32_t sid   = m->session;
	db_sess *se    = NULL;
	db_pipe *p     = NULL;
	db_req  *r;

	if (tok && ik_rt_precancelled(&s->rt, token)) {
		iok_msg_free(m); /* cancelled before it got here */
		s->accepted++;
		return IK_OK;
	}
	int nocon = s->fail_fast && s->pipes.n == 0 ? ik_sock_connect_error(s->sock) : 0;
	if (sid != 0 || nocon != 0) {
		se = sid != 0 ? ik_idmap_get(s->sessions, sid) : NULL;
		if ((se != NULL && se->failed) || nocon != 0) {
			/* A lost session fails as it did; with no connection to
			 * be had (db:fail-fast), a request fails at once with the
			 * connect error. */
			if (!tok) {
				abandon_plain(s);
			} else {
				ik_rt_seen(&s->rt, token);
			}
			iok_msg_free(m);
			complete(s, token, sid, se != NULL && se->failed ? IOK_ECONNRESET : nocon);
			s->accepted++;
			return IK_OK;
		}
		if (se != NULL && se->pipe != NULL) {
			if (se->nqueue >= DB_SESSION_QMAX && !s->draining) {
				s->busy = true;
				return IK_BUSY;
			}
		} else if (s->nglobal >= DB_QUEUE_MAX && ik_db_can_refuse(s)) {
			s->busy = true;
			return IK_BUSY;
		}
	} else {
		if (s->npending == 0 && ik_list_empty(&s->waiting)) {
			p = ik_db_pick_free(s);
		}
		if (p == NULL && s->nglobal >= DB_QUEUE_MAX && ik_db_can_refuse(s)) {
			s->busy = true;
			return IK_BUSY;
		}
	}

	/* Taken. */
	s->accepted++;
	if (tok) {
		s->token_mode = true;
		ik_rt_seen(&s->rt, token);
	} else {
		abandon_plain(s);
	}
	if ((r = ik_entcache_get(&s->spare, sizeof(*r))) == NULL) {
		goto nomem;
	}
	if (se == NULL && sid != 0 && (se = ik_db_sess_get(s, sid)) == NULL) {
		ik_entcache_put(&s->spare, r);
		goto nomem;
	}
	if (tok && ik_rt_add(&s->rt, &r->rt, token) != 0) {
		ik_entcache_put(&s->spare, r);
		goto nomem;
	}
	r->seq      = ++s->seq;
	r->msg      = m;
	r->rt.since = ik_now_ms();
	r->nhead = (uint8_t) (iok_msg_len(m) < sizeof(r->head) ? iok_msg_len(m) : sizeof(r->head));
	memcpy(r->head, iok_msg_body(m), r->nhead);
	r->idem = (m->flags & IK_MSG_IDEMPOTENT) != 0;
	if (!tok) {
		s->plain = r;
	}
	if (s->timeout_ms >= 0) {
		ik_rt_set_deadline(&s->rt, &r->rt, ik_now_ms() + (uint64_t) s->timeout_ms);
	}
	if (se != NULL) {
		ik_db_sess_enqueue(s, se, r);
	} else if (p != NULL) {
		ik_db_transmit(s, p, r);
	} else {
		ik_list_append(&s->pending, &r->qnode);
		r->where = R_PENDING;
		s->npending++;
		s->nglobal++;
		s->nqueued++;
		if (s->up_limited) {
			ik_sock_stat(s->sock, IK_STAT_UPSTREAM_WAITS, 1);
		}
	}
	ik_db_settle(s, true);
	return IK_OK;

nomem:
	iok_msg_free(m);
	ik_sock_stat(s->sock, IK_STAT_TX_DROPPED, 1);
	complete(s, token, sid, IOK_ENOMEM); /* still exactly once */
	return IK_OK;
}

static int
db_recv(void *arg, void *pp, iok_msg *m)
{
	db_sock *s = arg;
	db_pipe *p = pp;
	ik_node *n;
	db_req  *r;

	if (m->flags & IK_MSG_PUSH) {
		/* Unsolicited: never matched against a request. */
		if (!s->token_mode) {
			iok_msg_free(m);
			ik_sock_stat(s->sock, IK_STAT_RX_DROPPED, 1);
			return IK_OK;
		}
		m->token  = 0;
		m->status = 0;
		return ik_sock_deliver(s->sock, m);
	}
	if (ik_db_health_reply(s, p, m)) {
		return IK_OK; /* the probe's answer: ours, never delivered */
	}
	if ((n = ik_list_first(&p->fifo)) == NULL) {
		/* A reply to nothing: the stream is out of step. */
		iok_msg_free(m);
		ik_sock_stat(s->sock, IK_STAT_PROTO_ERRORS, 1);
		ik_pipe_close(p->pipe, IOK_EPROTO);
		return IK_OK;
	}
	r = ik_container_of(n, db_req, qnode);
	if (r->rt.sent_ns != 0) {
		/* Read now (once, even if offered again; dead ones too: the
		 * upstream answered). */
		ik_sock_req_done(s->sock, p->pipe, r->rt.sent_ns);
		r->rt.sent_ns = 0;
	}
	if (r->dead) {
		iok_msg_free(m); /* late: cancelled, timed out or abandoned */
		ik_sock_stat(s->sock, IK_STAT_RX_DROPPED, 1);
	} else {
		m->token   = r->rt.token;
		m->session = r->sess != NULL ? r->sess->id : 0;
		m->flags   = 0;
		/* status stays: the pipe says IOK_EMSGSIZE for a reply over
		 * recv_max that it skipped (the connection carries on). */
		if (ik_sock_deliver(s->sock, m) != IK_OK) {
			m->token   = 0;
			m->session = 0;
			return IK_BUSY; /* offered again when there is room */
		}
	}
	ik_list_remove(n);
	p->nfifo--;
	s->ninflight--;
	ik_pipe_inflight_add(p->pipe, -1);
	r->where = 0;
	r->pipe  = NULL;
	ik_db_req_free(s, r);
	ik_db_settle(s, false);
	return IK_OK;
}

/* Every dialer is failing and no connection is up: what waits for one
 * fails now with the connect error rather than at its timeout. */
static void
db_dial_failed(void *arg, int err)
{
	db_sock *s = arg;
	ik_node *n, *tmp;
	if (!s->fail_fast || s->pipes.n > 0 || (err = ik_sock_connect_error(s->sock)) == 0) {
		return;
	}
	while ((n = ik_list_first(&s->pending)) != NULL) {
		ik_db_give_up(s, ik_container_of(n, db_req, qnode), err);
	}
	ik_list_foreach_safe(&s->waiting, n, tmp)
	{
		db_sess *se = ik_container_of(n, db_sess, wnode);
		ik_node *q;
		se->nout++; /* hold it while its requests complete */
		while ((q = ik_list_first(&se->queue)) != NULL) {
			ik_db_give_up(s, ik_container_of(q, db_req, qnode), err);
		}
		se->nout--;
		ik_db_sess_maybe_release(s, se);
	}
	ik_db_settle(s, false);
}

static void
db_recv_ready(void *arg)
{
	db_sock *s = arg;
	ik_rt_recv_ready(&s->rt);
}

static int
db_setopt(void *arg, const char *name, const void *v, size_t sz, int type)
{
	db_sock *s = arg;
	int      rv, val;
	if (strcmp(name, IOK_OPT_DB_MAX_INFLIGHT) == 0) {
		if ((rv = ik_opt_get_int(v, sz, type, 1, DB_INFLIGHT_MAX, &val)) == 0) {
			s->max_inflight = val;
			ik_db_settle(s, false);
		}
		return rv;
	}
	if (strcmp(name, IOK_OPT_DB_MAX_INFLIGHT_UPSTREAM) == 0) {
		if ((rv = ik_opt_get_int(v, sz, type, 0, DB_INFLIGHT_MAX, &val)) == 0) {
			s->max_up = val;
			ik_db_settle(s, false);
		}
		return rv;
	}
	if (strcmp(name, IOK_OPT_REQ_TIMEOUT) == 0) {
		return ik_opt_get_ms(v, sz, type, &s->timeout_ms);
	}
	if (strcmp(name, IOK_OPT_DB_FAIL_FAST) == 0) {
		if ((rv = ik_opt_get_bool(v, sz, type, &val)) == 0) {
			s->fail_fast = val != 0;
		}
		return rv;
	}
	if (strcmp(name, OPT_INFLIGHT) == 0 || strcmp(name, OPT_QUEUED) == 0) {
		return IOK_EREADONLY;
	}
	return IOK_ENOTSUP;
}

static int
db_getopt(void *arg, const char *name, void *v, size_t *sz, int type)
{
	db_sock *s = arg;
	if (strcmp(name, IOK_OPT_DB_MAX_INFLIGHT) == 0) {
		return ik_opt_put_int(s->max_inflight, v, sz, type);
	}
	if (strcmp(name, IOK_OPT_DB_MAX_INFLIGHT_UPSTREAM) == 0) {
		return ik_opt_put_int(s->max_up, v, sz, type);
	}
	if (strcmp(name, IOK_OPT_REQ_TIMEOUT) == 0) {
		return ik_opt_put_ms(s->timeout_ms, v, sz, type);
	}
	if (strcmp(name, IOK_OPT_DB_FAIL_FAST) == 0) {
		return ik_opt_put_bool(s->fail_fast, v, sz, type);
	}
	if (strcmp(name, OPT_INFLIGHT) == 0) {
		return ik_opt_put_uint64(s->ninflight, v, sz, type);
	}
	if (strcmp(name, OPT_QUEUED) == 0) {
		return ik_opt_put_uint64(s->nqueued, v, sz, type);
	}
	return IOK_ENOTSUP;
}

static void
inflight_list(ik_list *l, ik_inflight_fn fn, void *farg)
{
	for (ik_node *n = ik_list_first(l); n != NULL; n = ik_list_next(l, n)) {
		db_req *r = ik_container_of(n, db_req, qnode);
		if (!r->dead) {
			fn(farg, r->where == R_FIFO ? r->pipe->pipe : NULL, r->rt.since, r->head,
			    r->nhead);
		}
	}
}

static void
db_inflight(void *arg, ik_inflight_fn fn, void *farg)
{
	db_sock *s = arg;
	for (int i = 0; i < s->pipes.n; i++) {
		inflight_list(&((db_pipe *) ik_pipeset_at(&s->pipes, i))->fifo, fn, farg);
	}
	inflight_list(&s->pending, fn, farg);
	for (ik_node *n = ik_list_first(&s->sessions_all); n != NULL;
	     n          = ik_list_next(&s->sessions_all, n)) {
		inflight_list(&ik_container_of(n, db_sess, anode)->queue, fn, farg);
	}
}

const ik_pattern ik_pattern_db = {
	.name          = "pipelined-db",
	.peer_name     = "",
	.proto         = 0,
	.peer          = 0,
	.flags         = IK_PF_SEND | IK_PF_RECV | IK_PF_NOSP | IK_PF_REQUEST | IK_PF_SESSIONS,
	.app           = &ik_plain_request,
	.sock_size     = sizeof(db_sock),
	.pipe_size     = sizeof(db_pipe),
	.init          = db_init,
	.fini          = db_fini,
	.pipe_add      = db_pipe_add,
	.pipe_rm       = db_pipe_rm,
	.send          = db_send,
	.recv          = db_recv,
	.pipe_ready    = db_pipe_ready,
	.setopt        = db_setopt,
	.getopt        = db_getopt,
	.cancel        = ik_db_cancel,
	.fork_child    = db_fork_child,
	.recv_ready    = db_recv_ready,
	.pipe_drain    = db_pipe_drain,
	.session_close = ik_db_session_close,
	.dial_failed   = db_dial_failed,
	.inflight      = db_inflight,
};
