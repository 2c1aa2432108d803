/*
 * survey.c - SURVEYOR (nng's survey0).  RESPONDENT is the responder engine
 * in rep.c (REP with other protocol ids); the wire format is in reqrep.c.
 *
 * A survey goes to every connected respondent (a copy per pipe; a pipe
 * over its high-water mark misses it, stat:tx-dropped; with no pipe at all
 * it goes nowhere, as nng).  Its header is one 32-bit survey id with the
 * high bit set, from a per-socket counter (random start).  Responses are
 * matched by id (hash table) and delivered until the survey time
 * (surveyor:survey-time, default 1 s as nng; negative = never) passes;
 * then the survey ends with one message whose status is IOK_ETIMEDOUT, so
 * a plain iok_recv returns IOK_ETIMEDOUT, and later responses are dropped
 * (stat:rx-dropped).
 *
 * Plain API: one survey at a time; a new survey ends the previous one
 * silently.  iok_request (IK_MSG_REQUEST): any number at once, each with
 * its own id, its responses tagged with its token and its own ETIMEDOUT
 * completion; iok_cancel forgets one silently.  Surveys are tracked by
 * token and by deadline (the survey's end) in a reqtrack.h tracker: one
 * timer per socket; an end the full receive queue refuses waits there and
 * goes at recv_ready.
 *
 * Raw mode (as nng's xsurveyor): the application's header is sent as is,
 * and responses are delivered with their backtrace as the header.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "idmap.h"
#include "pattern.h"
#include "../src/plain.h"
#include "reqrep.h"
#include "reqtrack.h"
#include "../src/list.h"

#define SURVEY_TIME_DEFAULT 1000 /* nng's surveyor:survey-time */

typedef struct srv_sock srv_sock;

typedef struct srv_pipe {
	ik_pipe *pipe;
	ik_node  node; /* in s->pipes */
} srv_pipe;

typedef struct srv_survey {
	ik_rt_ent rt; /* token (0: the plain API's survey), end */
	uint32_t  id;
	ik_node   anode;    /* in s->all */
	uint8_t   head[32]; /* first bytes, for the debug endpoint */
	uint8_t   nhead;
} srv_survey;

struct srv_sock {
	ik_sock     *sock;
	int          raw;
	ik_list      pipes;
	ik_idmap    *ids; /* survey id -> survey (still collecting) */
	ik_reqtrack  rt;  /* tokens, ends, the timer */
	srv_survey  *cur; /* the plain API's survey */
	ik_list      all;
	iok_duration survey_ms;
	uint32_t     next_id;
};

static void srv_fire(void *arg);

static int
srv_init(void *arg, ik_sock *sock, int raw)
{
	srv_sock *s  = arg;
	s->sock      = sock;
	s->raw       = raw;
	s->survey_ms = SURVEY_TIME_DEFAULT;
	s->next_id   = ik_rr_seed(s);
	ik_list_init(&s->pipes);
	ik_list_init(&s->all);
	if ((s->ids = ik_idmap_new()) == NULL) {
		return IOK_ENOMEM;
	}
	if (ik_rt_init(&s->rt, sock, srv_fire, s) != 0) {
		ik_idmap_free(s->ids);
		return IOK_ENOMEM;
	}
	return 0;
}

static void
survey_free(srv_sock *s, srv_survey *sv)
{
	if (ik_node_linked(&sv->anode)) {
		ik_list_remove(&sv->anode);
	}
	(void) ik_idmap_del_if(s->ids, sv->id, sv);
	ik_rt_remove(&s->rt, &sv->rt);
	if (s->cur == sv) {
		s->cur = NULL;
	}
	free(sv);
}

static void
srv_forget_all(srv_sock *s)
{
	ik_node *n, *tmp;
	ik_list_foreach_safe(&s->all, n, tmp)
	{
		survey_free(s, ik_container_of(n, srv_survey, anode));
	}
	ik_rt_forget_all(&s->rt);
}

static void
srv_fini(void *arg)
{
	srv_sock *s = arg;
	srv_forget_all(s);
	ik_rt_fini(&s->rt);
	ik_idmap_free(s->ids);
}

static void
srv_fork_child(void *arg)
{
	srv_forget_all(arg); /* the parent's surveys */
}

/* Surveys whose time is up end: later responses are dropped, and the
 * completion goes now or, if the receive queue is full, at recv_ready. */
static void
srv_fire(void *arg)
{
	srv_sock  *s   = arg;
	uint64_t   now = ik_now_ms();
	ik_rt_ent *x;

	while ((x = ik_rt_due(&s->rt, now)) != NULL) {
		uint64_t token = x->token;
		survey_free(s, ik_container_of(x, srv_survey, rt));
		ik_rt_complete(&s->rt, token, 0, IOK_ETIMEDOUT);
	}
	ik_rt_arm(&s->rt, UINT64_MAX);
}

static int
srv_pipe_add(void *arg, void *pp, ik_pipe *pipe)
{
	srv_sock *s = arg;
	srv_pipe *p = pp;
	p->pipe     = pipe;
	ik_list_append(&s->pipes, &p->node);
	return 0;
}

static void
srv_pipe_rm(void *arg, void *pp)
{
	srv_pipe *p = pp;
	(void) arg;
	ik_list_remove(&p->node);
}

/* A copy of m to every pipe that can take it; m is consumed. */
static void
srv_broadcast(srv_sock *s, iok_msg *m)
{
	ik_node *n;
	ik_rr_clean(m);
	for (n = ik_list_first(&s->pipes); n != NULL; n = ik_list_next(&s->pipes, n)) {
		srv_pipe *p = ik_container_of(n, srv_pipe, node);
		if (!ik_pipe_writable(p->pipe)) {
			ik_sock_stat(s->sock, IK_STAT_TX_DROPPED, 1);
			continue;
		}
		(void) ik_pipe_send_copy(p->pipe, m); /* failures are counted */
	}
	iok_msg_free(m);
}

static int
srv_send(void *arg, iok_msg *m)
{
	srv_sock   *s     = arg;
	bool        tok   = (m->flags & IK_MSG_REQUEST) && m->token != 0;
	uint64_t    token = tok ? m->token : 0;
	srv_survey *sv;
	int         rv;

	if (s->raw) {
		srv_broadcast(s, m);
		return IK_OK;
	}
	if (tok) {
		if (ik_rt_precancelled(&s->rt, token)) {
			iok_msg_free(m); /* cancelled before it got here */
			return IK_OK;
		}
		ik_rt_seen(&s->rt, token);
	} else {
		if (s->cur != NULL) {
			survey_free(s, s->cur); /* a new survey ends the last one */
		}
		ik_rt_drop_plain(&s->rt); /* and so does its end, if waiting */
	}
	if ((sv = calloc(1, sizeof(*sv))) == NULL) {
		goto nomem;
	}
	do {
		sv->id = (s->next_id++) | 0x80000000u;
	} while ((rv = ik_idmap_add(s->ids, sv->id, sv)) == IOK_EEXIST);
	if (rv != 0) {
		free(sv);
		goto nomem;
	}
	sv->rt.since = ik_now_ms();
	sv->nhead =
	    (uint8_t) (iok_msg_len(m) < sizeof(sv->head) ? iok_msg_len(m) : sizeof(sv->head));
	memcpy(sv->head, iok_msg_body(m), sv->nhead);
	if (tok && ik_rt_add(&s->rt, &sv->rt, token) != 0) {
		(void) ik_idmap_del(s->ids, sv->id);
		free(sv);
		goto nomem;
	}
	ik_list_append(&s->all, &sv->anode);
	if (!tok) {
		s->cur = sv;
	}
	if (s->survey_ms >= 0) {
		ik_rt_set_deadline(&s->rt, &sv->rt, ik_now_ms() + (uint64_t) s->survey_ms);
		ik_rt_arm(&s->rt, UINT64_MAX);
	}
	iok_msg_header_clear(m);
	(void) iok_msg_header_append_u32(m, sv->id);
	ik_sock_stat(s->sock, IK_STAT_REQUESTS, 1);
	srv_broadcast(s, m);
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
srv_recv(void *arg, void *pp, iok_msg *m)
{
	srv_sock   *s = arg;
	srv_survey *sv;
	(void) pp;

	if (!ik_rr_reply_parse(s->sock, m, s->raw)) {
		return IK_OK;
	}
	if (s->raw) {
		return ik_sock_deliver(s->sock, m);
	}
	if ((sv = ik_idmap_get(s->ids, ik_get_u32(m->hdr))) == NULL) {
		/* Late (the survey ended, was replaced or cancelled). */
		iok_msg_free(m);
		ik_sock_stat(s->sock, IK_STAT_RX_DROPPED, 1);
		return IK_OK;
	}
	m->token   = sv->rt.token;
	m->flags   = 0;
	m->hdr_len = 0;
	if (ik_sock_deliver(s->sock, m) != IK_OK) {
		m->token   = 0;
		m->flags   = IK_MSG_PARSED;
		m->hdr_len = 4;
		return IK_BUSY;
	}
	return IK_OK;
}

static void
srv_cancel(void *arg, uint64_t token)
{
	srv_sock  *s = arg;
	ik_rt_ent *x;
	if (s->raw) {
		return; /* raw sockets have no tokens */
	}
	if ((x = ik_rt_cancel(&s->rt, token)) != NULL) {
		survey_free(s, ik_container_of(x, srv_survey, rt));
	}
}

static void
srv_recv_ready(void *arg)
{
	srv_sock *s = arg;
	ik_rt_recv_ready(&s->rt);
}

static int
srv_setopt(void *arg, const char *name, const void *v, size_t sz, int type)
{
	srv_sock *s = arg;
	if (!s->raw && strcmp(name, IOK_OPT_SURVEYOR_SURVEYTIME) == 0) {
		return ik_opt_get_ms(v, sz, type, &s->survey_ms);
	}
	return IOK_ENOTSUP;
}

static int
srv_getopt(void *arg, const char *name, void *v, size_t *sz, int type)
{
	srv_sock *s = arg;
	if (!s->raw && strcmp(name, IOK_OPT_SURVEYOR_SURVEYTIME) == 0) {
		return ik_opt_put_ms(s->survey_ms, v, sz, type);
	}
	return IOK_ENOTSUP;
}

/* A survey goes to every pipe: it is listed without one. */
static void
srv_inflight(void *arg, ik_inflight_fn fn, void *farg)
{
	srv_sock *s = arg;
	for (ik_node *n = ik_list_first(&s->all); n != NULL; n = ik_list_next(&s->all, n)) {
		srv_survey *sv = ik_container_of(n, srv_survey, anode);
		fn(farg, NULL, sv->rt.since, sv->head, sv->nhead);
	}
}

const ik_pattern ik_pattern_surveyor0 = {
	.name       = "surveyor0",
	.peer_name  = "respondent0",
	.proto      = 0x62,
	.peer       = 0x63,
	.flags      = IK_PF_SEND | IK_PF_RECV | IK_PF_RAW | IK_PF_REQUEST | IK_PF_MULTI_REPLY,
	.app        = &ik_plain_request_multi,
	.sock_size  = sizeof(srv_sock),
	.pipe_size  = sizeof(srv_pipe),
	.init       = srv_init,
	.fini       = srv_fini,
	.pipe_add   = srv_pipe_add,
	.pipe_rm    = srv_pipe_rm,
	.send       = srv_send,
	.recv       = srv_recv,
	.setopt     = srv_setopt,
	.getopt     = srv_getopt,
	.cancel     = srv_cancel,
	.fork_child = srv_fork_child,
	.inflight   = srv_inflight,
	.recv_ready = srv_recv_ready,
};
