/*
 * rep.c - the responder engine that REP (nng's rep0) and RESPONDENT
 * (respondent0, REP towards a surveyor) share.  The wire format is in
 * reqrep.c.
 *
 * Each request received is delivered with a token, and a reply
 * (IK_MSG_REPLY, from iok_reply or a plain send the core tagged with the
 * last token) goes back with the request's backtrace as its header to the
 * pipe it came on if that is still there (else it is dropped,
 * stat:tx-dropped).  A rep0 request that came straight from its requester
 * (a backtrace of one word, the request id, whose top bit is always set)
 * needs nothing stored: its token is the pipe id and the request id
 * (token_of), and the reply finds both in it.  Any other request (through
 * devices, or any respondent0 one: a surveyor takes every answer to a
 * survey, so a second answer to one request must stop here) gets a token
 * from a counter with that bit clear, stored (hash table) with its pipe and
 * backtrace.  Stored requests are forgotten when their pipe goes, and the
 * oldest are forgotten beyond RSP_MAX_PENDING.  Replies
 * to a pipe over its high-water mark wait in a per-pipe queue
 * (RSP_PIPE_QMAX), so a client that reads slowly does not hold up the
 * replies to the others; only when that queue is full too does the reply
 * wait in the core (IK_BUSY), as nng's cooked rep blocks its sender.
 *
 * Raw mode (as nng's xrep): requests are delivered with header = [pipe id]
 * + backtrace and, on send, the first header word picks the pipe (a reply
 * for a gone or hopelessly full pipe is dropped, as nng's xrep).  That is
 * what lets iok_device(rep_raw, req_raw) forward requests out and replies
 * back.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "entcache.h"
#include "idmap.h"
#include "pattern.h"
#include "../src/plain.h"
#include "reqrep.h"
#include "../src/list.h"

#define RSP_MAX_PENDING 65536 /* unanswered requests remembered per socket */
#define RSP_PIPE_QMAX 1024    /* replies waiting for a full pipe */

typedef struct rsp_sock rsp_sock;

typedef struct rsp_pipe {
	ik_pipe  *pipe;
	rsp_sock *s;
	uint32_t  id;
	ik_node   node; /* in s->pipes */
	ik_list   reqs; /* unanswered requests that came on this pipe */
	iok_msg **q;    /* replies waiting for room (ring) */
	uint32_t  qhead, qlen, qcap;
} rsp_pipe;

typedef struct rsp_req {
	uint64_t  token;
	rsp_pipe *pipe;
	ik_node   pnode; /* in pipe->reqs */
	ik_node   anode; /* in s->age, oldest first */
	uint32_t  bt_len;
	uint8_t   bt[IOK_MSG_HEADER_MAX];
} rsp_req;

struct rsp_sock {
	ik_sock    *sock;
	int         raw;
	ik_list     pipes;
	ik_idmap   *byid;  /* pipe id -> rsp_pipe */
	ik_idmap   *reqs;  /* token -> rsp_req */
	ik_entcache spare; /* freed rsp_reqs, for the next requests */
	ik_list     age;
	uint64_t    next_token;
	bool        direct; /* rep0, cooked: one-hop requests are not stored */
	bool        busy;   /* refused a reply: a full pipe holds the core up */
};

/* A token's bit 31 says which kind it is: set for a direct request (the
 * request id's own top bit), clear for a stored one. */
#define RSP_DIRECT_BIT 0x80000000u

static uint64_t
token_of(const rsp_pipe *p, uint32_t request_id)
{
	return ((uint64_t) p->id << 32) | request_id;
}

static void
node_unlink(ik_node *n)
{
	if (ik_node_linked(n)) {
		ik_list_remove(n);
	}
}

static int
rsp_init(void *arg, ik_sock *sock, int raw)
{
	rsp_sock *s   = arg;
	s->sock       = sock;
	s->raw        = raw;
	s->next_token = ((uint64_t) ik_rr_seed(s) << 16) + 1;
	ik_list_init(&s->pipes);
	ik_list_init(&s->age);
	if ((s->byid = ik_idmap_new()) == NULL || (s->reqs = ik_idmap_new()) == NULL) {
		ik_idmap_free(s->byid);
		ik_idmap_free(s->reqs);
		return IOK_ENOMEM;
	}
	return 0;
}

static int
rep_init(void *arg, ik_sock *sock, int raw)
{
	rsp_sock *s = arg;
	int       rv;
	if ((rv = rsp_init(arg, sock, raw)) == 0) {
		s->direct = !raw;
	}
	return rv;
}

static void
rsp_req_free(rsp_sock *s, rsp_req *r)
{
	node_unlink(&r->pnode);
	node_unlink(&r->anode);
	(void) ik_idmap_del(s->reqs, r->token);
	ik_entcache_put(&s->spare, r);
}

static void
rsp_pipe_drop_queue(rsp_pipe *p)
{
	while (p->qlen > 0) {
		iok_msg_free(p->q[p->qhead]);
		p->qhead = (p->qhead + 1) % p->qcap;
		p->qlen--;
	}
}

static void
rsp_forget_all(rsp_sock *s)
{
	ik_node *n, *tmp;
	ik_list_foreach_safe(&s->age, n, tmp)
	{
		rsp_req_free(s, ik_container_of(n, rsp_req, anode));
	}
	for (n = ik_list_first(&s->pipes); n != NULL; n = ik_list_next(&s->pipes, n)) {
		rsp_pipe_drop_queue(ik_container_of(n, rsp_pipe, node));
	}
}

static void
rsp_fini(void *arg)
{
	rsp_sock *s = arg;
	rsp_forget_all(s);
	ik_idmap_free(s->byid);
	ik_idmap_free(s->reqs);
	ik_entcache_fini(&s->spare);
}

static void
rsp_fork_child(void *arg)
{
	rsp_forget_all(arg); /* the parent's requests, and its replies */
}

static int
rsp_pipe_add(void *arg, void *pp, ik_pipe *pipe)
{
	rsp_sock *s = arg;
	rsp_pipe *p = pp;
	p->pipe     = pipe;
	p->s        = s;
	p->id       = ik_pipe_id(pipe);
	ik_list_init(&p->reqs);
	if (ik_idmap_put(s->byid, p->id, p) != 0) {
		return IOK_ENOMEM;
	}
	ik_list_append(&s->pipes, &p->node);
	return 0;
}

static void
rsp_pipe_rm(void *arg, void *pp)
{
	rsp_sock *s = arg;
	rsp_pipe *p = pp;
	ik_node  *n;
	/* Its requests can no longer be answered. */
	while ((n = ik_list_first(&p->reqs)) != NULL) {
		rsp_req_free(s, ik_container_of(n, rsp_req, pnode));
	}
	ik_sock_stat(s->sock, IK_STAT_TX_DROPPED, p->qlen);
	rsp_pipe_drop_queue(p);
	free(p->q);
	p->q = NULL;
	(void) ik_idmap_del(s->byid, p->id);
	ik_list_remove(&p->node);
	if (s->busy) {
		/* The reply the core holds may have been for this pipe: offer
		 * it again (it is dropped now), no pipe_ready will come. */
		s->busy = false;
		ik_sock_send_ready(s->sock);
	}
}

/* Is p's reply queue full (the pipe over its mark, and RSP_PIPE_QMAX
 * replies waiting behind it)? */
static bool
rsp_full(const rsp_pipe *p)
{
	return p->qlen >= RSP_PIPE_QMAX;
}

/* Send m on p now, or after what already waits for room.  The caller
 * checked rsp_full; if growing the queue fails the reply is dropped. */
static void
rsp_out(rsp_sock *s, rsp_pipe *p, iok_msg *m)
{
	ik_rr_clean(m);
	if (p->qlen == 0 && ik_pipe_writable(p->pipe)) {
		ik_pipe_send(p->pipe, m);
		return;
	}
	if (p->qlen == p->qcap) {
		uint32_t  ncap = p->qcap ? p->qcap * 2 : 16;
		iok_msg **nq;
		if (ncap > RSP_PIPE_QMAX || (nq = malloc(ncap * sizeof(*nq))) == NULL) {
			iok_msg_free(m);
			ik_sock_stat(s->sock, IK_STAT_TX_DROPPED, 1);
			return;
		}
		for (uint32_t i = 0; i < p->qlen; i++) {
			nq[i] = p->q[(p->qhead + i) % p->qcap];
		}
		free(p->q);
		p->q     = nq;
		p->qcap  = ncap;
		p->qhead = 0;
	}
	p->q[(p->qhead + p->qlen) % p->qcap] = m;
	p->qlen++;
}

static void
rsp_pipe_ready(void *arg, void *pp)
{
	rsp_pipe *p = pp;
	(void) arg;
	while (p->qlen > 0 && ik_pipe_writable(p->pipe)) {
		iok_msg *m = p->q[p->qhead];
		p->qhead   = (p->qhead + 1) % p->qcap;
		p->qlen--;
		ik_pipe_send(p->pipe, m);
	}
}

static int
rsp_send(void *arg, iok_msg *m)
{
	rsp_sock *s = arg;
	rsp_pipe *p;

	if (s->raw) {
		uint32_t id;
		if (iok_msg_header_trim_u32(m, &id) != 0 ||
		    (p = ik_idmap_get(s->byid, id)) == NULL || rsp_full(p)) {
			/* No pipe id, the pipe is gone, or its peer does not
			 * read (as nng's raw rep: drop, never hold up the
			 * device's other traffic). */
			iok_msg_free(m);
			ik_sock_stat(s->sock, IK_STAT_TX_DROPPED, 1);
			return IK_OK;
		}
		rsp_out(s, p, m);
		return IK_OK;
	}
	/* Where the reply goes and its backtrace: from the token itself (a
	 * direct request) or from the stored request. */
	bool           reply = (m->flags & IK_MSG_REPLY) != 0;
	rsp_req       *r     = NULL;
	uint8_t        word[4];
	const uint8_t *bt     = word;
	uint32_t       bt_len = 4;
	p                     = NULL;
	if (reply && s->direct && (m->token & RSP_DIRECT_BIT)) {
		p = ik_idmap_get(s->byid, (uint32_t) (m->token >> 32));
		ik_put_u32(word, (uint32_t) m->token);
	} else if (reply && (r = ik_idmap_get(s->reqs, m->token)) != NULL) {
		p      = r->pipe;
		bt     = r->bt;
		bt_len = r->bt_len;
	}
	if (p == NULL) {
		/* Unknown or answered token, or its pipe is gone. */
		iok_msg_free(m);
		ik_sock_stat(s->sock, IK_STAT_TX_DROPPED, 1);
		return IK_OK;
	}
	if (rsp_full(p)) {
		/* As nng's rep: the reply waits (and so does the replier, once
		 * the send queue is full) rather than being lost. */
		s->busy = true;
		return IK_BUSY;
	}
	iok_msg_header_clear(m);
	(void) iok_msg_header_append(m, bt, bt_len);
	if (r != NULL) {
		rsp_req_free(s, r);
	}
	rsp_out(s, p, m);
	return IK_OK;
}

static int
rsp_recv(void *arg, void *pp, iok_msg *m)
{
	rsp_sock *s = arg;
	rsp_pipe *p = pp;
	rsp_req  *r;
	int       rv;

	if (!(m->flags & IK_MSG_PARSED)) {
		iok_msg_header_clear(m);
		if (s->raw) {
			(void) iok_msg_header_append_u32(m, p->id);
		}
		if ((rv = ik_rr_bt_parse(m, ik_sock_max_ttl(s->sock))) != IK_RR_BT_OK) {
			iok_msg_free(m);
			ik_sock_stat(s->sock,
			    rv == IK_RR_BT_HOPS ? IK_STAT_RX_DROPPED : IK_STAT_RX_MALFORMED, 1);
			return IK_OK;
		}
		m->flags = IK_MSG_PARSED;
	}
	if (s->raw) {
		return ik_sock_deliver(s->sock, m);
	}
	/* A direct request needs nothing stored; any other is stored with
	 * its pipe and backtrace under a counter's token. */
	uint64_t token;
	r = NULL;
	if (s->direct && m->hdr_len == 4) {
		token = token_of(p, ik_get_u32(m->hdr));
	} else {
		if ((r = ik_entcache_get(&s->spare, sizeof(*r))) == NULL) {
			iok_msg_free(m);
			ik_sock_stat(s->sock, IK_STAT_RX_DROPPED, 1);
			return IK_OK;
		}
		do {
			r->token = s->next_token++ & ~(uint64_t) RSP_DIRECT_BIT;
		} while (r->token == 0 || (rv = ik_idmap_add(s->reqs, r->token, r)) == IOK_EEXIST);
		if (rv != 0) {
			ik_entcache_put(&s->spare, r);
			iok_msg_free(m);
			ik_sock_stat(s->sock, IK_STAT_RX_DROPPED, 1);
			return IK_OK;
		}
		r->pipe   = p;
		r->bt_len = m->hdr_len;
		memcpy(r->bt, m->hdr, m->hdr_len);
		token = r->token;
	}

	uint32_t bt_len = m->hdr_len;
	m->token        = token;
	m->flags        = 0;
	m->hdr_len      = 0;
	if (ik_sock_deliver(s->sock, m) != IK_OK) {
		/* Offered again later: as parsed, the backtrace still there. */
		m->token   = 0;
		m->flags   = IK_MSG_PARSED;
		m->hdr_len = bt_len;
		if (r != NULL) {
			(void) ik_idmap_del(s->reqs, r->token);
			ik_entcache_put(&s->spare, r);
		}
		return IK_BUSY;
	}
	if (r != NULL) {
		ik_list_append(&p->reqs, &r->pnode);
		ik_list_append(&s->age, &r->anode);
		if (ik_idmap_count(s->reqs) > RSP_MAX_PENDING) {
			/* A flood of requests nobody answers: forget the oldest. */
			rsp_req_free(s, ik_container_of(ik_list_first(&s->age), rsp_req, anode));
		}
	}
	return IK_OK;
}

static void
rsp_cancel(void *arg, uint64_t token)
{
	rsp_sock *s = arg;
	rsp_req  *r = ik_idmap_get(s->reqs, token);
	if (r != NULL) {
		rsp_req_free(s, r); /* the application will not answer it */
	}
}

const ik_pattern ik_pattern_rep0 = {
	.name       = "rep0",
	.peer_name  = "req0",
	.proto      = 0x31,
	.peer       = 0x30,
	.flags      = IK_PF_SEND | IK_PF_RECV | IK_PF_RAW | IK_PF_REPLY,
	.app        = &ik_plain_reply,
	.sock_size  = sizeof(rsp_sock),
	.pipe_size  = sizeof(rsp_pipe),
	.init       = rep_init,
	.fini       = rsp_fini,
	.pipe_add   = rsp_pipe_add,
	.pipe_rm    = rsp_pipe_rm,
	.send       = rsp_send,
	.recv       = rsp_recv,
	.pipe_ready = rsp_pipe_ready,
	.cancel     = rsp_cancel,
	.fork_child = rsp_fork_child,
};

/* RESPONDENT is REP towards a surveyor (survey.c has the surveyor). */
const ik_pattern ik_pattern_respondent0 = {
	.name       = "respondent0",
	.peer_name  = "surveyor0",
	.proto      = 0x63,
	.peer       = 0x62,
	.flags      = IK_PF_SEND | IK_PF_RECV | IK_PF_RAW | IK_PF_REPLY,
	.app        = &ik_plain_reply,
	.sock_size  = sizeof(rsp_sock),
	.pipe_size  = sizeof(rsp_pipe),
	.init       = rsp_init,
	.fini       = rsp_fini,
	.pipe_add   = rsp_pipe_add,
	.pipe_rm    = rsp_pipe_rm,
	.send       = rsp_send,
	.recv       = rsp_recv,
	.pipe_ready = rsp_pipe_ready,
	.cancel     = rsp_cancel,
	.fork_child = rsp_fork_child,
};
