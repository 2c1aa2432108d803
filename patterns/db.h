/*
 * db.h - what the files of the pipelined-db pattern share: db.c (the
 * pattern's entry points, connections), db_req.c (a request's life),
 * db_route.c (routing), db_session.c (sessions), db_health.c (health
 * probes).  The rules are at the top of db.c.  Kernel thread only.
 */
#ifndef IK_DB_H
#define IK_DB_H

#include <stdbool.h>
#include <stdint.h>

#include "entcache.h"
#include "idmap.h"
#include "pattern.h"
#include "pipeset.h"
#include "reqtrack.h"
#include "../src/list.h"

#define DB_INFLIGHT_DEFAULT 1024
#define DB_INFLIGHT_MAX 65536
#define DB_QUEUE_MAX 1024    /* pending + sessions waiting for a connection */
#define DB_SESSION_QMAX 1024 /* one pinned session's requests waiting */
#define DB_MAX_PIPES 65536

typedef struct db_sock db_sock;
typedef struct db_pipe db_pipe;
typedef struct db_sess db_sess;

/* Where a request is. */
enum { R_PENDING = 1, R_SESSQ, R_FIFO };

typedef struct db_req {
	ik_rt_ent rt;       /* token (0: the plain API's request), expiry */
	uint64_t  seq;      /* order of arrival */
	iok_msg  *msg;      /* while queued; in flight only if kept to retry */
	db_pipe  *pipe;     /* in flight on */
	db_sess  *sess;     /* NULL: no session */
	ik_node   qnode;    /* in s->pending, sess->queue or pipe->fifo */
	uint8_t   head[32]; /* first bytes of the request, for the debug endpoint */
	uint8_t   nhead;
	int       where; /* R_* */
	bool      dead;  /* in flight but given up: drop its reply */
	bool      idem;  /* may be sent again once */
	bool      retried;
} db_req;

struct db_pipe {
	ik_pipe *pipe;
	db_sock *s;
	int      slot; /* index in s->pipes */
	ik_list  fifo; /* requests in flight, oldest first */
	uint32_t nfifo;
	db_sess *pinned;
	bool     draining; /* its address left the set: close once idle */
	/* A cancel reaches the server on a side connection and can arrive
	 * before the request it is for has started (the server then ignores
	 * it): while that request still heads the FIFO, cancel again. */
	ik_timer *recancel;
	uint64_t  cancel_seq; /* the request being cancelled (its seq) */
	bool      closed;     /* asked the core to close it */
	/* Active health check (db_health.c): a probe goes out only with
	 * nothing in flight, so the next reply is its answer. */
	ik_timer *health;
	uint64_t  last_ms;  /* last reply (or connect), ik_now_ms */
	uint64_t  probe_ms; /* when the probe went out */
	bool      probe_out;
};

struct db_sess {
	uint32_t id;
	db_pipe *pipe;  /* the pinned connection; NULL until pinned / failed */
	ik_list  queue; /* its requests not yet sent, in order */
	uint32_t nqueue;
	uint32_t nout;   /* its requests queued or in flight (dead ones too) */
	ik_node  wnode;  /* in s->waiting: has requests, no connection yet */
	ik_node  anode;  /* in s->sessions_all */
	bool     failed; /* its connection dropped */
	bool     closing;
};

struct db_sock {
	ik_sock     *sock;
	ik_pipeset   pipes; /* next: the round-robin among equals */
	int          npinned;
	ik_reqtrack  rt;       /* live requests by token, expiries, the
	                          timer, completions waiting for room */
	ik_entcache  spare;    /* freed requests, for the next ones */
	ik_idmap    *sessions; /* id -> session */
	ik_list      sessions_all;
	ik_list      pending; /* requests without a session, waiting */
	ik_list      waiting; /* sessions waiting to pin a connection */
	uint32_t     npending;
	uint32_t     nglobal;   /* npending + requests of waiting sessions */
	uint64_t     ninflight; /* across pipes, dead ones included */
	int          ndraining; /* pipes draining, not yet closed */
	uint64_t     nqueued;   /* every request not yet sent */
	uint64_t     seq;
	uint64_t     accepted; /* send() calls that took a message */
	db_req      *plain;    /* the plain API's current request */
	bool         busy;     /* refused a message: re-offer when things move */
	bool         draining; /* taking the whole send queue: never busy */
	bool         dispatching, again;
	bool         token_mode; /* iok_request has been used */
	bool         fail_fast;  /* no connection possible: fail, not queue */
	int          max_inflight;
	int          max_up;     /* db:max-inflight-per-upstream, 0: none */
	bool         up_limited; /* the last pick found every upstream full */
	iok_duration timeout_ms;
};

static inline void
node_unlink(ik_node *n)
{
	if (ik_node_linked(n)) {
		ik_list_remove(n);
	}
}

/* db.c */
/* ik_db_settle, after every event: move what can move, set the timer, let
 * the core offer again what was refused (not from inside send). */
void ik_db_settle(db_sock *s, bool in_send);

/* db_req.c */
/* ik_db_transmit puts r on the wire through p (or completes it with the
 * error if p cannot take it). */
void ik_db_transmit(db_sock *s, db_pipe *p, db_req *r);
/* ik_db_give_up ends r with err (0: silently): a queued one leaves at
 * once, one in flight stays in its FIFO, dead, so its reply is consumed. */
void ik_db_give_up(db_sock *s, db_req *r, int err);
/* ik_db_req_free forgets r (already out of its FIFO or queue). */
void ik_db_req_free(db_sock *s, db_req *r);
/* ik_db_cancel is the pattern's cancel (iok_cancel: silently). */
void ik_db_cancel(void *arg, uint64_t token);
/* ik_db_fire is the request tracker's timer: requests past req:timeout
 * complete with IOK_ETIMEDOUT. */
void ik_db_fire(void *arg);

/* db_route.c */
/* ik_db_room: p can take another request now (below db:max-inflight and
 * its write queue's high-water mark). */
bool ik_db_room(const db_sock *s, const db_pipe *p);
/* ik_db_pick_free: the connection a request without a session goes to
 * now (NULL: none has room; then s->up_limited says whether
 * per-upstream limits were why). */
db_pipe *ik_db_pick_free(db_sock *s);
/* ik_db_can_refuse: send() may say IK_BUSY without risking a deadlock
 * (the queue drains without the application's help). */
bool ik_db_can_refuse(const db_sock *s);
/* ik_db_dispatch moves pending requests and waiting sessions onto
 * connections with room, in order of arrival (not re-entered). */
void ik_db_dispatch(db_sock *s);

/* db_health.c: ik_db_health_start arms p's idle check (pipe_add);
 * ik_db_health_stop frees it (pipe_rm); ik_db_health_reply is told of
 * every reply on p and returns true if m was the probe's answer (then it
 * took m, and closed p if m did not answer the probe). */
void ik_db_health_start(db_pipe *p);
void ik_db_health_stop(db_pipe *p);
bool ik_db_health_reply(db_sock *s, db_pipe *p, iok_msg *m);

/* db_session.c */
/* ik_db_sess_get: session id's state, created if new (NULL: out of
 * memory). */
db_sess *ik_db_sess_get(db_sock *s, uint32_t id);
/* ik_db_sess_enqueue appends r (just accepted) to its session se. */
void ik_db_sess_enqueue(db_sock *s, db_sess *se, db_req *r);
/* ik_db_sess_flush sends a pinned session's queued requests while its
 * connection has room. */
void ik_db_sess_flush(db_sock *s, db_sess *se);
/* ik_db_sess_pin gives connection p to the waiting session se. */
void ik_db_sess_pin(db_sock *s, db_sess *se, db_pipe *p);
/* ik_db_sess_maybe_release frees a closing session once its last request
 * is done. */
void ik_db_sess_maybe_release(db_sock *s, db_sess *se);
/* ik_db_sess_lost: p, pinned by a session, is going: the session fails
 * (its queued requests complete with IOK_ECONNRESET).  Returns the
 * session, held (nout + 1) until the caller has failed its requests in
 * flight and calls ik_db_sess_unhold; NULL if p was not pinned. */
db_sess *ik_db_sess_lost(db_sock *s, db_pipe *p);
void     ik_db_sess_unhold(db_sock *s, db_sess *se);
/* ik_db_sess_forget_all frees every session and its queued requests,
 * without completions (fini, fork child). */
void ik_db_sess_forget_all(db_sock *s);
/* ik_db_session_close is the pattern's session_close. */
void ik_db_session_close(void *arg, uint32_t session);

#endif /* IK_DB_H */
