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
 * Depth and spreading.  At most db:max-inflight requests (default 1024,
 * 1..65536) are in flight per connection.  A request goes to the connection
 * with the fewest in flight among those with room (not pinned, below the
 * depth, write queue below its high-water mark), ties broken round-robin;
 * with the default pool-size of 1 that is the one connection per upstream.
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
 * it takes everything (the send queue bounds each burst).
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
 * other request is routed to it until "db:session-close" (what
 * iok_session_close sets) releases it, once the session's queued and
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
 * it is closed.  iok_session_close travels as an option, not
 * through the send queue, so before acting on it the pattern takes every
 * request still in the socket's send queue (whatever its bounds): the
 * session's requests sent before the close are then all known.
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
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "pattern.h"
#include "../src/list.h"
#include "../transports/transport.h"

/* Shared with reqrep.c, which defines them (as survey.c declares them). */
typedef struct ik_rr_map ik_rr_map;
ik_rr_map *ik_rr_map_new(void);
void       ik_rr_map_free(ik_rr_map *m);
int        ik_rr_map_put(ik_rr_map *m, uint64_t key, void *val);
void      *ik_rr_map_get(const ik_rr_map *m, uint64_t key);
void      *ik_rr_map_del(ik_rr_map *m, uint64_t key);
uint32_t   ik_rr_map_count(const ik_rr_map *m);
void       ik_rr_sorted_insert(ik_list *l, ik_node *n, uint64_t (*key)(const ik_node *));

#define DB_INFLIGHT_DEFAULT 1024
#define DB_INFLIGHT_MAX 65536
#define DB_QUEUE_MAX 1024    /* pending + sessions waiting for a connection */
#define DB_SESSION_QMAX 1024 /* one pinned session's requests waiting */
#define DB_MAX_PIPES 65536
#define PRECANCEL_MAX 1024

#define OPT_SESSION_CLOSE "db:session-close"
#define OPT_INFLIGHT "db:inflight"
#define OPT_QUEUED "db:queued"

typedef struct db_sock db_sock;
typedef struct db_pipe db_pipe;
typedef struct db_sess db_sess;

/* Where a request is. */
enum { R_PENDING = 1, R_SESSQ, R_FIFO };

typedef struct db_req {
	uint64_t token;   /* 0: the plain API's request */
	uint64_t seq;     /* order of arrival */
	iok_msg *msg;     /* while queued; in flight only if kept to retry */
	db_pipe *pipe;    /* in flight on */
	db_sess *sess;    /* NULL: no session */
	ik_node  qnode;   /* in s->pending, sess->queue or pipe->fifo */
	ik_node  xnode;   /* in s->expiries */
	uint64_t expire_at;
	uint64_t since;    /* accepted at (loop ms), for the debug endpoint */
	uint64_t sent_ns;  /* written at (ik_clock_ns), for latency; 0 once read */
	uint8_t  head[32]; /* first bytes of the request, for the same */
	uint8_t  nhead;
	int      where;   /* R_* */
	bool     dead;    /* in flight but given up: drop its reply */
	bool     idem;    /* may be sent again once */
	bool     retried;
} db_req;

struct db_pipe {
	ik_pipe *pipe;
	db_sock *s;
	int      slot; /* index in s->pipes */
	ik_list  fifo; /* requests in flight, oldest first */
	uint32_t nfifo;
	db_sess *pinned;
};

struct db_sess {
	uint32_t id;
	db_pipe *pipe;   /* the pinned connection; NULL until pinned / failed */
	ik_list  queue;  /* its requests not yet sent, in order */
	uint32_t nqueue;
	uint32_t nout;   /* its requests queued or in flight (dead ones too) */
	ik_node  wnode;  /* in s->waiting: has requests, no connection yet */
	ik_node  anode;  /* in s->sessions_all */
	bool     failed; /* its connection dropped */
	bool     closing;
};

struct db_sock {
	ik_sock     *sock;
	db_pipe    **pipes; /* dense */
	int          npipes, cap, rr;
	int          npinned;
	ik_rr_map   *tokens;   /* token -> live request */
	ik_rr_map   *sessions; /* id -> session */
	ik_rr_map   *precancel;
	ik_list      sessions_all;
	ik_list      pending;  /* requests without a session, waiting */
	ik_list      waiting;  /* sessions waiting to pin a connection */
	ik_list      expiries; /* by expire_at */
	uint32_t     npending;
	uint32_t     nglobal;   /* npending + requests of waiting sessions */
	uint64_t     ninflight; /* across pipes, dead ones included */
	uint64_t     nqueued;   /* every request not yet sent */
	uint64_t     seq;
	uint64_t     max_token;
	uint64_t     accepted; /* send() calls that took a message */
	db_req      *plain;    /* the plain API's current request */
	iok_msg    **owed;     /* completions waiting for room (ring) */
	uint32_t     ohead, olen, ocap;
	ik_timer    *timer;
	bool         armed;
	uint64_t     armed_at;
	bool         busy;      /* refused a message: re-offer when things move */
	bool         draining;  /* taking the whole send queue: never busy */
	bool         dispatching, again;
	bool         token_mode; /* iok_request has been used */
	int          max_inflight;
	iok_duration timeout_ms;
};

static uint64_t
xnode_key(const ik_node *n)
{
	return ik_container_of(n, db_req, xnode)->expire_at;
}

static void node_unlink(ik_node *n);
static void db_timer_cb(void *arg);

/* -------------------------------------------------------- completions */

static void
owed_push(db_sock *s, iok_msg *m)
{
	if (s->olen == s->ocap) {
		uint32_t  ncap = s->ocap ? s->ocap * 2 : 16;
		iok_msg **nq   = malloc(ncap * sizeof(*nq));
		if (nq == NULL) {
			/* Out of memory: the completion is lost, but say so. */
			iok_msg_free(m);
			ik_sock_stat(s->sock, IK_STAT_RX_DROPPED, 1);
			return;
		}
		for (uint32_t i = 0; i < s->olen; i++) {
			nq[i] = s->owed[(s->ohead + i) % s->ocap];
		}
		free(s->owed);
		s->owed  = nq;
		s->ocap  = ncap;
		s->ohead = 0;
	}
	s->owed[(s->ohead + s->olen) % s->ocap] = m;
	s->olen++;
}

/* Deliver what waits, in order, while there is room. */
static void
owed_flush(db_sock *s)
{
	while (s->olen > 0) {
		iok_msg *m = s->owed[s->ohead];
		if (ik_sock_deliver(s->sock, m) != IK_OK) {
			return;
		}
		s->ohead = (s->ohead + 1) % s->ocap;
		s->olen--;
	}
}

static void
owed_clear(db_sock *s)
{
	while (s->olen > 0) {
		iok_msg_free(s->owed[s->ohead]);
		s->ohead = (s->ohead + 1) % s->ocap;
		s->olen--;
	}
}

/* Forget owed completions of the plain API (a new plain request makes
 * them stale, as the core clears its receive queue). */
static void
owed_drop_plain(db_sock *s)
{
	uint32_t n = s->olen, kept = 0;
	for (uint32_t i = 0; i < n; i++) {
		iok_msg *m = s->owed[(s->ohead + i) % s->ocap];
		if (m->token == 0) {
			iok_msg_free(m);
		} else {
			s->owed[(s->ohead + kept++) % s->ocap] = m;
		}
	}
	s->olen = kept;
}

/* Complete token with err, now or as soon as there is room. */
static void
complete(db_sock *s, uint64_t token, uint32_t session, int err)
{
	iok_msg *m = ik_msg_error(token, err);
	if (m == NULL) {
		ik_sock_stat(s->sock, IK_STAT_RX_DROPPED, 1);
		return;
	}
	m->session = session;
	if (s->olen > 0 || ik_sock_deliver(s->sock, m) != IK_OK) {
		owed_push(s, m);
	}
}

/* ------------------------------------------------------- bookkeeping */

static void
node_unlink(ik_node *n)
{
	if (ik_node_linked(n)) {
		ik_list_remove(n);
	}
}

static void
list_prepend(ik_list *l, ik_node *n)
{
	n->next            = l->head.next;
	n->prev            = &l->head;
	l->head.next->prev = n;
	l->head.next       = n;
}

/* The session is done with: unpin, forget. */
static void
sess_free(db_sock *s, db_sess *se)
{
	db_req *r;
	ik_node *n;
	while ((n = ik_list_first(&se->queue)) != NULL) {
		r = ik_container_of(n, db_req, qnode);
		ik_list_remove(n);
		r->where = 0;
		r->sess  = NULL;
	}
	if (se->pipe != NULL) {
		ik_pipe_hold_subscribe(se->pipe->pipe, 0);
		se->pipe->pinned = NULL;
		se->pipe         = NULL;
		s->npinned--;
	}
	node_unlink(&se->wnode);
	node_unlink(&se->anode);
	if (ik_rr_map_get(s->sessions, se->id) == se) {
		(void) ik_rr_map_del(s->sessions, se->id);
	}
	free(se);
}

/* Release a closing session once its last request is done. */
static void
sess_maybe_release(db_sock *s, db_sess *se)
{
	if (se->closing && se->nout == 0) {
		sess_free(s, se);
		s->again = true; /* its connection is free for others */
	}
}

/* Take r out of every structure that names it (not its FIFO or queue:
 * the caller did that) and free it. */
static void
req_free(db_sock *s, db_req *r)
{
	node_unlink(&r->xnode);
	if (r->token != 0 && ik_rr_map_get(s->tokens, r->token) == r) {
		(void) ik_rr_map_del(s->tokens, r->token);
	}
	if (s->plain == r) {
		s->plain = NULL;
	}
	iok_msg_free(r->msg);
	if (r->sess != NULL) {
		db_sess *se = r->sess;
		r->sess     = NULL;
		se->nout--;
		sess_maybe_release(s, se);
	}
	free(r);
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
static void
give_up(db_sock *s, db_req *r, int err)
{
	uint64_t token   = r->token;
	uint32_t session = r->sess != NULL ? r->sess->id : 0;
	if (r->where == R_FIFO) {
		r->dead = true;
		node_unlink(&r->xnode);
		if (r->token != 0) {
			(void) ik_rr_map_del(s->tokens, r->token);
		}
		if (s->plain == r) {
			s->plain = NULL;
		}
		iok_msg_free(r->msg); /* no retry for it now */
		r->msg = NULL;
	} else {
		unqueue(s, r);
		req_free(s, r);
	}
	if (err != 0) {
		complete(s, token, session, err);
	}
}

/* -------------------------------------------------------------- routing */

static bool
room(const db_sock *s, const db_pipe *p)
{
	return p->nfifo < (uint32_t) s->max_inflight && ik_pipe_writable(p->pipe);
}

/* The unpinned connection with room and the fewest in flight; ties go
 * round-robin.  NULL if none. */
static db_pipe *
pick_free(db_sock *s)
{
	db_pipe *best = NULL;
	int      bk   = 0;
	for (int i = 0; i < s->npipes; i++) {
		int      k = (s->rr + i) % s->npipes;
		db_pipe *p = s->pipes[k];
		if (p->pinned != NULL || !room(s, p)) {
			continue;
		}
		if (best == NULL || p->nfifo < best->nfifo) {
			best = p;
			bk   = k;
			if (p->nfifo == 0) {
				break;
			}
		}
	}
	if (best != NULL) {
		s->rr = (bk + 1) % s->npipes;
	}
	return best;
}

/* May send() refuse now without risking a deadlock?  Only if the queue
 * drains by itself: some connection is not pinned, or none is. */
static bool
can_refuse(const db_sock *s)
{
	return !s->draining && (s->npinned == 0 || s->npinned < s->npipes);
}

/* Put r on the wire through p. */
static void
transmit(db_sock *s, db_pipe *p, db_req *r)
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
	r->pipe  = p;
	r->where = R_FIFO;
	ik_list_append(&p->fifo, &r->qnode);
	p->nfifo++;
	s->ninflight++;
	r->sent_ns = ik_clock_ns();
	if ((rv = ik_pipe_send(p->pipe, out)) == 0) {
		ik_sock_stat(s->sock, IK_STAT_REQUESTS, 1);
	} else {
		/* Never on the wire: no reply will come for it. */
		ik_list_remove(&r->qnode);
		p->nfifo--;
		s->ninflight--;
		r->where = 0;
		r->pipe  = NULL;
		uint64_t token   = r->token;
		uint32_t session = r->sess != NULL ? r->sess->id : 0;
		req_free(s, r);
		complete(s, token, session, rv == IOK_ENOMEM ? IOK_ENOMEM : rv == IOK_EINVAL ? IOK_EINVAL : IOK_ECONNRESET);
	}
}

/* Send a pinned session's queued requests while its connection has room. */
static void
sess_flush(db_sock *s, db_sess *se)
{
	ik_node *n;
	se->nout++; /* a request failing to go must not free se under us */
	while (se->pipe != NULL && (n = ik_list_first(&se->queue)) != NULL && room(s, se->pipe)) {
		db_req *r = ik_container_of(n, db_req, qnode);
		ik_list_remove(n);
		se->nqueue--;
		s->nqueued--;
		transmit(s, se->pipe, r);
	}
	se->nout--;
	sess_maybe_release(s, se);
}

static void
pin(db_sock *s, db_sess *se, db_pipe *p)
{
	node_unlink(&se->wnode);
	s->nglobal -= se->nqueue;
	se->pipe  = p;
	p->pinned = se;
	s->npinned++;
	/* A sharer's SUBSCRIBE must not land inside the session's MULTI. */
	ik_pipe_hold_subscribe(p->pipe, 1);
}

/* Move whatever can move.  Not re-entered: a nested call asks the
 * running one to loop again. */
static void
dispatch(db_sock *s)
{
	if (s->dispatching) {
		s->again = true;
		return;
	}
	s->dispatching = true;
	do {
		s->again = false;
		for (int i = 0; i < s->npipes; i++) {
			db_pipe *p = s->pipes[i];
			if (p->pinned != NULL && p->pinned->nqueue > 0) {
				sess_flush(s, p->pinned);
			}
		}
		for (;;) {
			ik_node *an = ik_list_first(&s->pending);
			ik_node *bn = ik_list_first(&s->waiting);
			db_req  *a  = an ? ik_container_of(an, db_req, qnode) : NULL;
			db_sess *b  = bn ? ik_container_of(bn, db_sess, wnode) : NULL;
			db_pipe *p;
			if (a == NULL && b == NULL) {
				break;
			}
			if ((p = pick_free(s)) == NULL) {
				break;
			}
			db_req *bfirst = b ? ik_container_of(ik_list_first(&b->queue), db_req, qnode) : NULL;
			if (b != NULL && (a == NULL || bfirst->seq < a->seq)) {
				pin(s, b, p);
				sess_flush(s, b);
			} else {
				ik_list_remove(&a->qnode);
				s->npending--;
				s->nglobal--;
				s->nqueued--;
				transmit(s, p, a);
			}
		}
	} while (s->again);
	s->dispatching = false;
}

static void
arm(db_sock *s)
{
	ik_node *n   = ik_list_first(&s->expiries);
	uint64_t now = ik_now_ms();
	if (n == NULL) {
		if (s->armed) {
			ik_timer_stop(s->timer);
			s->armed = false;
		}
		return;
	}
	uint64_t when = xnode_key(n);
	if (s->armed && s->armed_at <= when) {
		return; /* fires first anyway, and re-arms */
	}
	if (s->timer == NULL && (s->timer = ik_timer_new(db_timer_cb, s)) == NULL) {
		return; /* out of memory: the next arm tries again */
	}
	ik_timer_start(s->timer, when > now ? when - now : 0);
	s->armed    = true;
	s->armed_at = when;
}

/* After every event: move what can move, set the timer, and let the core
 * offer again what we refused. */
static void
settle(db_sock *s, bool in_send)
{
	dispatch(s);
	arm(s);
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
	ik_list_init(&s->sessions_all);
	ik_list_init(&s->pending);
	ik_list_init(&s->waiting);
	ik_list_init(&s->expiries);
	if ((s->tokens = ik_rr_map_new()) == NULL || (s->sessions = ik_rr_map_new()) == NULL) {
		ik_rr_map_free(s->tokens);
		ik_rr_map_free(s->sessions);
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
	while ((n = ik_list_first(&s->sessions_all)) != NULL) {
		db_sess *se = ik_container_of(n, db_sess, anode);
		se->closing = false;
		while ((n = ik_list_first(&se->queue)) != NULL) {
			db_req *r = ik_container_of(n, db_req, qnode);
			ik_list_remove(n);
			r->sess = NULL;
			req_free(s, r);
		}
		se->nqueue = 0;
		sess_free(s, se);
	}
	for (int i = 0; i < s->npipes; i++) {
		db_pipe *p = s->pipes[i];
		while ((n = ik_list_first(&p->fifo)) != NULL) {
			db_req *r = ik_container_of(n, db_req, qnode);
			ik_list_remove(n);
			r->sess = NULL;
			req_free(s, r);
		}
		p->nfifo  = 0;
		p->pinned = NULL;
	}
	while ((n = ik_list_first(&s->pending)) != NULL) {
		db_req *r = ik_container_of(n, db_req, qnode);
		ik_list_remove(n);
		req_free(s, r);
	}
	owed_clear(s);
	ik_rr_map_free(s->precancel);
	s->precancel = NULL;
	s->plain     = NULL;
	s->npending = s->nglobal = 0;
	s->ninflight = s->nqueued = 0;
	s->npinned = 0;
	s->busy     = false;
	if (s->timer != NULL) {
		ik_timer_stop(s->timer);
	}
	s->armed = false;
}

static void
db_fini(void *arg)
{
	db_sock *s = arg;
	forget_all(s);
	ik_timer_free(s->timer);
	ik_rr_map_free(s->tokens);
	ik_rr_map_free(s->sessions);
	free(s->owed);
	free(s->pipes);
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
	if (s->npipes == s->cap) {
		int       ncap = s->cap ? s->cap * 2 : 4;
		db_pipe **np;
		if (ncap > DB_MAX_PIPES || (np = realloc(s->pipes, (size_t) ncap * sizeof(*np))) == NULL) {
			return IOK_ENOMEM;
		}
		s->pipes = np;
		s->cap   = ncap;
	}
	p->pipe   = pipe;
	p->s      = s;
	p->slot   = s->npipes;
	p->pinned = NULL;
	p->nfifo  = 0;
	ik_list_init(&p->fifo);
	s->pipes[s->npipes++] = p;
	/* The pipe is active already: what waits for a connection goes. */
	settle(s, false);
	return 0;
}

static void
db_pipe_rm(void *arg, void *pp)
{
	db_sock *s = arg;
	db_pipe *p = pp;
	ik_node *n;
	ik_list  retry;

	s->pipes[p->slot]       = s->pipes[s->npipes - 1];
	s->pipes[p->slot]->slot = p->slot;
	s->npipes--;
	if (s->rr >= s->npipes) {
		s->rr = 0;
	}
	/* The pinned session fails: it cannot move to another connection. */
	db_sess *se = p->pinned;
	if (se != NULL) {
		se->failed = true;
		se->pipe   = NULL;
		p->pinned  = NULL;
		s->npinned--;
		se->nout++; /* hold it while its requests complete */
		while ((n = ik_list_first(&se->queue)) != NULL) {
			give_up(s, ik_container_of(n, db_req, qnode), IOK_ECONNRESET);
		}
	}
	/* What was in flight: dead ones go quietly, idempotent ones once more
	 * ahead of everything pending, the others fail. */
	ik_list_init(&retry);
	while ((n = ik_list_first(&p->fifo)) != NULL) {
		db_req *r = ik_container_of(n, db_req, qnode);
		ik_list_remove(n);
		p->nfifo--;
		s->ninflight--;
		r->where = 0;
		r->pipe  = NULL;
		if (r->dead) {
			req_free(s, r);
		} else if (r->idem && !r->retried && r->sess == NULL && r->msg != NULL) {
			r->retried = true;
			ik_list_append(&retry, &r->qnode);
		} else {
			uint64_t token   = r->token;
			uint32_t session = r->sess != NULL ? r->sess->id : 0;
			req_free(s, r);
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
		se->nout--;
		sess_maybe_release(s, se);
	}
	settle(s, false);
}

static void
db_pipe_ready(void *arg, void *pp)
{
	(void) pp;
	settle(arg, false);
}

/* A new plain request abandons the previous one (as req0). */
static void
abandon_plain(db_sock *s)
{
	if (s->plain != NULL) {
		give_up(s, s->plain, 0);
		s->plain = NULL;
	}
	owed_drop_plain(s);
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

	if (tok && s->precancel != NULL && ik_rr_map_get(s->precancel, token) != NULL) {
		(void) ik_rr_map_del(s->precancel, token);
		if (token > s->max_token) {
			s->max_token = token;
		}
		iok_msg_free(m); /* cancelled before it got here */
		s->accepted++;
		return IK_OK;
	}
	if (sid != 0) {
		se = ik_rr_map_get(s->sessions, sid);
		if (se != NULL && se->failed) {
			/* Its connection is gone: so is the session. */
			if (!tok) {
				abandon_plain(s);
			} else if (token > s->max_token) {
				s->max_token = token;
			}
			iok_msg_free(m);
			complete(s, token, sid, IOK_ECONNRESET);
			s->accepted++;
			return IK_OK;
		}
		if (se != NULL && se->pipe != NULL) {
			if (se->nqueue >= DB_SESSION_QMAX && !s->draining) {
				s->busy = true;
				return IK_BUSY;
			}
		} else if (s->nglobal >= DB_QUEUE_MAX && can_refuse(s)) {
			s->busy = true;
			return IK_BUSY;
		}
	} else {
		if (s->npending == 0 && ik_list_empty(&s->waiting)) {
			p = pick_free(s);
		}
		if (p == NULL && s->nglobal >= DB_QUEUE_MAX && can_refuse(s)) {
			s->busy = true;
			return IK_BUSY;
		}
	}

	/* Taken. */
	s->accepted++;
	if (tok) {
		s->token_mode = true;
		if (token > s->max_token) {
			s->max_token = token;
		}
	} else {
		abandon_plain(s);
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		goto nomem;
	}
	if (se == NULL && sid != 0) {
		if ((se = calloc(1, sizeof(*se))) == NULL) {
			free(r);
			goto nomem;
		}
		se->id = sid;
		ik_list_init(&se->queue);
		if (ik_rr_map_put(s->sessions, sid, se) != 0) {
			free(se);
			free(r);
			goto nomem;
		}
		ik_list_append(&s->sessions_all, &se->anode);
	}
	if (tok && ik_rr_map_put(s->tokens, token, r) != 0) {
		free(r);
		goto nomem;
	}
	r->token = token;
	r->seq   = ++s->seq;
	r->msg   = m;
	r->since = ik_now_ms();
	r->nhead = (uint8_t) (iok_msg_len(m) < sizeof(r->head) ? iok_msg_len(m) : sizeof(r->head));
	memcpy(r->head, iok_msg_body(m), r->nhead);
	r->idem  = (m->flags & IK_MSG_IDEMPOTENT) != 0;
	if (!tok) {
		s->plain = r;
	}
	if (s->timeout_ms >= 0) {
		r->expire_at = ik_now_ms() + (uint64_t) s->timeout_ms;
		ik_rr_sorted_insert(&s->expiries, &r->xnode, xnode_key);
	}
	if (se != NULL) {
		r->sess = se;
		se->nout++;
		ik_list_append(&se->queue, &r->qnode);
		r->where = R_SESSQ;
		se->nqueue++;
		s->nqueued++;
		if (se->pipe != NULL) {
			sess_flush(s, se);
		} else {
			s->nglobal++;
			if (!ik_node_linked(&se->wnode)) {
				ik_list_append(&s->waiting, &se->wnode);
			}
		}
	} else if (p != NULL) {
		transmit(s, p, r);
	} else {
		ik_list_append(&s->pending, &r->qnode);
		r->where = R_PENDING;
		s->npending++;
		s->nglobal++;
		s->nqueued++;
	}
	settle(s, true);
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
	if ((n = ik_list_first(&p->fifo)) == NULL) {
		/* A reply to nothing: the stream is out of step. */
		iok_msg_free(m);
		ik_sock_stat(s->sock, IK_STAT_PROTO_ERRORS, 1);
		ik_pipe_close(p->pipe, IOK_EPROTO);
		return IK_OK;
	}
	r = ik_container_of(n, db_req, qnode);
	if (r->sent_ns != 0) {
		/* Read now (once, even if offered again; dead ones too: the
		 * upstream answered). */
		ik_sock_req_done(s->sock, p->pipe, r->sent_ns);
		r->sent_ns = 0;
	}
	if (r->dead) {
		iok_msg_free(m); /* late: cancelled, timed out or abandoned */
		ik_sock_stat(s->sock, IK_STAT_RX_DROPPED, 1);
	} else {
		m->token   = r->token;
		m->session = r->sess != NULL ? r->sess->id : 0;
		m->flags   = 0;
		m->status  = 0;
		if (ik_sock_deliver(s->sock, m) != IK_OK) {
			m->token   = 0;
			m->session = 0;
			return IK_BUSY; /* offered again when there is room */
		}
	}
	ik_list_remove(n);
	p->nfifo--;
	s->ninflight--;
	r->where = 0;
	r->pipe  = NULL;
	req_free(s, r);
	settle(s, false);
	return IK_OK;
}

static void
db_cancel(void *arg, uint64_t token)
{
	db_sock *s = arg;
	db_req  *r = ik_rr_map_get(s->tokens, token);
	if (r != NULL) {
		give_up(s, r, 0);
		settle(s, false);
		return;
	}
	if (token > s->max_token) {
		/* Still in the core's send queue: drop it when it arrives. */
		if (s->precancel == NULL && (s->precancel = ik_rr_map_new()) == NULL) {
			return;
		}
		if (ik_rr_map_count(s->precancel) >= PRECANCEL_MAX) {
			ik_rr_map_free(s->precancel);
			if ((s->precancel = ik_rr_map_new()) == NULL) {
				return;
			}
		}
		(void) ik_rr_map_put(s->precancel, token, s);
	}
}

static void
db_timer_cb(void *arg)
{
	db_sock *s   = arg;
	uint64_t now = ik_now_ms();
	ik_node *n;
	s->armed = false;
	while ((n = ik_list_first(&s->expiries)) != NULL && xnode_key(n) <= now) {
		give_up(s, ik_container_of(n, db_req, xnode), IOK_ETIMEDOUT);
	}
	settle(s, false);
}

static void
db_recv_ready(void *arg)
{
	db_sock *s = arg;
	owed_flush(s);
}

/* Take every request still in the socket's send queue, whatever the
 * bounds, so that requests sent before an option are all known. */
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

static int
session_close(db_sock *s, const void *v, size_t sz, int type)
{
	uint64_t id;
	if (type == IK_OPT_UINT64 && sz == sizeof(uint64_t)) {
		memcpy(&id, v, sizeof(id));
	} else if (type == IK_OPT_INT && sz == sizeof(int)) {
		int i;
		memcpy(&i, v, sizeof(i));
		if (i < 0) {
			return IOK_EINVAL;
		}
		id = (uint64_t) i;
	} else {
		return IOK_EBADTYPE;
	}
	if (id == 0 || id > UINT32_MAX) {
		return IOK_EINVAL;
	}
	drain_send_queue(s);
	db_sess *se = ik_rr_map_get(s->sessions, id);
	if (se != NULL) {
		se->closing = true;
		sess_maybe_release(s, se);
	}
	settle(s, false);
	return 0;
}

static int
db_setopt(void *arg, const char *name, const void *v, size_t sz, int type)
{
	db_sock *s = arg;
	int      rv, val;
	if (strcmp(name, IOK_OPT_DB_MAX_INFLIGHT) == 0) {
		if ((rv = ik_opt_get_int(v, sz, type, 1, DB_INFLIGHT_MAX, &val)) == 0) {
			s->max_inflight = val;
			settle(s, false);
		}
		return rv;
	}
	if (strcmp(name, IOK_OPT_REQ_TIMEOUT) == 0) {
		return ik_opt_get_ms(v, sz, type, &s->timeout_ms);
	}
	if (strcmp(name, OPT_SESSION_CLOSE) == 0) {
		return session_close(s, v, sz, type);
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
	if (strcmp(name, IOK_OPT_REQ_TIMEOUT) == 0) {
		return ik_opt_put_ms(s->timeout_ms, v, sz, type);
	}
	if (strcmp(name, OPT_INFLIGHT) == 0) {
		return ik_opt_put_uint64(s->ninflight, v, sz, type);
	}
	if (strcmp(name, OPT_QUEUED) == 0) {
		return ik_opt_put_uint64(s->nqueued, v, sz, type);
	}
	if (strcmp(name, OPT_SESSION_CLOSE) == 0) {
		return IOK_EWRITEONLY;
	}
	return IOK_ENOTSUP;
}

static void
inflight_list(ik_list *l, ik_inflight_fn fn, void *farg)
{
	for (ik_node *n = ik_list_first(l); n != NULL; n = ik_list_next(l, n)) {
		db_req *r = ik_container_of(n, db_req, qnode);
		if (!r->dead) {
			fn(farg, r->where == R_FIFO ? r->pipe->pipe : NULL, r->since, r->head, r->nhead);
		}
	}
}

static void
db_inflight(void *arg, ik_inflight_fn fn, void *farg)
{
	db_sock *s = arg;
	for (int i = 0; i < s->npipes; i++) {
		inflight_list(&s->pipes[i]->fifo, fn, farg);
	}
	inflight_list(&s->pending, fn, farg);
	for (ik_node *n = ik_list_first(&s->sessions_all); n != NULL;
	     n = ik_list_next(&s->sessions_all, n)) {
		inflight_list(&ik_container_of(n, db_sess, anode)->queue, fn, farg);
	}
}

const ik_pattern ik_pattern_db = {
	.name       = "pipelined-db",
	.peer_name  = "",
	.proto      = 0,
	.peer       = 0,
	.flags      = IK_PF_SEND | IK_PF_RECV | IK_PF_NOSP | IK_PF_REQUEST,
	.sock_size  = sizeof(db_sock),
	.pipe_size  = sizeof(db_pipe),
	.init       = db_init,
	.fini       = db_fini,
	.pipe_add   = db_pipe_add,
	.pipe_rm    = db_pipe_rm,
	.send       = db_send,
	.recv       = db_recv,
	.pipe_ready = db_pipe_ready,
	.setopt     = db_setopt,
	.getopt     = db_getopt,
	.cancel     = db_cancel,
	.fork_child = db_fork_child,
	.recv_ready = db_recv_ready,
	.inflight   = db_inflight,
};
