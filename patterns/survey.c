/*
 * survey.c - SURVEYOR (nng's survey0).  RESPONDENT is the responder engine
 * in reqrep.c (REP with other protocol ids).
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
 * completion; iok_cancel forgets one silently.  Survey ends are kept in a
 * list sorted by deadline (tail insertion: O(1) with a fixed survey time),
 * served by one timer per socket.
 *
 * Raw mode (as nng's xsurveyor): the application's header is sent as is,
 * and responses are delivered with their backtrace as the header.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "pattern.h"
#include "../src/list.h"

/* Shared with reqrep.c, which defines them: keep both lists in step. */
typedef struct ik_rr_map ik_rr_map;
ik_rr_map *ik_rr_map_new(void);
void       ik_rr_map_free(ik_rr_map *m);
int        ik_rr_map_put(ik_rr_map *m, uint64_t key, void *val);
void      *ik_rr_map_get(const ik_rr_map *m, uint64_t key);
void      *ik_rr_map_del(ik_rr_map *m, uint64_t key);
uint32_t   ik_rr_map_count(const ik_rr_map *m);
int        ik_rr_bt_parse(iok_msg *m, int ttl);
uint32_t   ik_rr_seed(const void *salt);
void       ik_rr_clean(iok_msg *m);
void       ik_rr_sorted_insert(ik_list *l, ik_node *n, uint64_t (*key)(const ik_node *));
#define IK_RR_BT_OK 0
#define IK_RR_BT_SHORT 1
#define IK_RR_BT_HOPS 2

#define SURVEY_TIME_DEFAULT 1000 /* nng's surveyor:survey-time */
#define RETRY_MS 10              /* an end the full queue refused, again */
#define PRECANCEL_MAX 1024

typedef struct srv_sock srv_sock;

typedef struct srv_pipe {
	ik_pipe *pipe;
	ik_node  node; /* in s->pipes */
} srv_pipe;

typedef struct srv_survey {
	uint32_t id;     /* 0 once ended (its end waits for room) */
	uint64_t token;  /* 0: the plain API's survey */
	uint64_t end_at; /* 0: never */
	uint64_t since;  /* sent at (loop ms), for the debug endpoint */
	uint8_t  head[32]; /* first bytes, for the same */
	uint8_t  nhead;
	ik_node  dnode;  /* in s->ends, by end_at */
	ik_node  anode;  /* in s->all */
} srv_survey;

struct srv_sock {
	ik_sock     *sock;
	int          raw;
	ik_list      pipes;
	ik_rr_map   *ids;    /* survey id -> survey (still collecting) */
	ik_rr_map   *tokens; /* token -> survey (iok_request) */
	ik_rr_map   *precancel;
	uint64_t     max_token;
	srv_survey  *cur; /* the plain API's survey */
	ik_list      ends;
	ik_list      all;
	ik_timer    *timer;
	bool         armed;
	uint64_t     armed_at;
	iok_duration survey_ms;
	uint32_t     next_id;
};

static uint64_t
dnode_key(const ik_node *n)
{
	return ik_container_of(n, srv_survey, dnode)->end_at;
}

static void srv_timer_cb(void *arg);

static int
srv_init(void *arg, ik_sock *sock, int raw)
{
	srv_sock *s = arg;
	s->sock      = sock;
	s->raw       = raw;
	s->survey_ms = SURVEY_TIME_DEFAULT;
	s->next_id   = ik_rr_seed(s);
	ik_list_init(&s->pipes);
	ik_list_init(&s->ends);
	ik_list_init(&s->all);
	if ((s->ids = ik_rr_map_new()) == NULL || (s->tokens = ik_rr_map_new()) == NULL) {
		ik_rr_map_free(s->ids);
		ik_rr_map_free(s->tokens);
		return IOK_ENOMEM;
	}
	return 0;
}

static void
survey_free(srv_sock *s, srv_survey *sv)
{
	if (ik_node_linked(&sv->dnode)) {
		ik_list_remove(&sv->dnode);
	}
	if (ik_node_linked(&sv->anode)) {
		ik_list_remove(&sv->anode);
	}
	if (sv->id != 0 && ik_rr_map_get(s->ids, sv->id) == sv) {
		(void) ik_rr_map_del(s->ids, sv->id);
	}
	if (sv->token != 0 && ik_rr_map_get(s->tokens, sv->token) == sv) {
		(void) ik_rr_map_del(s->tokens, sv->token);
	}
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
	ik_rr_map_free(s->precancel);
	s->precancel = NULL;
	if (s->timer != NULL) {
		ik_timer_stop(s->timer);
	}
	s->armed = false;
}

static void
srv_fini(void *arg)
{
	srv_sock *s = arg;
	srv_forget_all(s);
	ik_timer_free(s->timer);
	ik_rr_map_free(s->ids);
	ik_rr_map_free(s->tokens);
}

static void
srv_fork_child(void *arg)
{
	srv_forget_all(arg); /* the parent's surveys */
}

static void
srv_arm(srv_sock *s)
{
	ik_node *n = ik_list_first(&s->ends);
	uint64_t now, when;
	if (n == NULL) {
		if (s->armed) {
			ik_timer_stop(s->timer);
			s->armed = false;
		}
		return;
	}
	when = dnode_key(n);
	if (s->armed && s->armed_at <= when) {
		return;
	}
	if (s->timer == NULL && (s->timer = ik_timer_new(srv_timer_cb, s)) == NULL) {
		return;
	}
	now = ik_now_ms();
	ik_timer_start(s->timer, when > now ? when - now : 0);
	s->armed    = true;
	s->armed_at = when;
}

static void
srv_timer_cb(void *arg)
{
	srv_sock *s   = arg;
	uint64_t  now = ik_now_ms();
	ik_node  *n;

	s->armed = false;
	while ((n = ik_list_first(&s->ends)) != NULL && dnode_key(n) <= now) {
		srv_survey *sv = ik_container_of(n, srv_survey, dnode);
		iok_msg    *m;
		if (sv->id != 0) {
			(void) ik_rr_map_del(s->ids, sv->id); /* responses are late now */
			sv->id = 0;
		}
		m = ik_msg_error(sv->token, IOK_ETIMEDOUT);
		if (m != NULL && ik_sock_deliver(s->sock, m) == IK_OK) {
			survey_free(s, sv);
		} else {
			iok_msg_free(m);
			ik_list_remove(&sv->dnode);
			sv->end_at = now + RETRY_MS;
			ik_rr_sorted_insert(&s->ends, &sv->dnode, dnode_key);
		}
	}
	srv_arm(s);
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
		iok_msg  *d;
		if (!ik_pipe_writable(p->pipe) || iok_msg_dup(&d, m) != 0) {
			ik_sock_stat(s->sock, IK_STAT_TX_DROPPED, 1);
			continue;
		}
		ik_pipe_send(p->pipe, d);
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

	if (s->raw) {
		srv_broadcast(s, m);
		return IK_OK;
	}
	if (tok) {
		if (token > s->max_token) {
			s->max_token = token;
		}
		if (s->precancel != NULL && ik_rr_map_del(s->precancel, token) != NULL) {
			iok_msg_free(m); /* cancelled before it got here */
			return IK_OK;
		}
	} else if (s->cur != NULL) {
		survey_free(s, s->cur); /* a new survey ends the last one */
	}
	if ((sv = calloc(1, sizeof(*sv))) == NULL) {
		goto nomem;
	}
	do {
		sv->id = (s->next_id++) | 0x80000000u;
	} while (ik_rr_map_get(s->ids, sv->id) != NULL);
	sv->token = token;
	sv->since = ik_now_ms();
	sv->nhead = (uint8_t) (iok_msg_len(m) < sizeof(sv->head) ? iok_msg_len(m) : sizeof(sv->head));
	memcpy(sv->head, iok_msg_body(m), sv->nhead);
	if (ik_rr_map_put(s->ids, sv->id, sv) != 0) {
		free(sv);
		goto nomem;
	}
	if (tok && ik_rr_map_put(s->tokens, token, sv) != 0) {
		(void) ik_rr_map_del(s->ids, sv->id);
		free(sv);
		goto nomem;
	}
	ik_list_append(&s->all, &sv->anode);
	if (!tok) {
		s->cur = sv;
	}
	if (s->survey_ms >= 0) {
		sv->end_at = ik_now_ms() + (uint64_t) s->survey_ms;
		ik_rr_sorted_insert(&s->ends, &sv->dnode, dnode_key);
		srv_arm(s);
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
		iok_msg *err = ik_msg_error(token, IOK_ENOMEM);
		if (err != NULL && ik_sock_deliver(s->sock, err) != IK_OK) {
			iok_msg_free(err);
		}
	}
	return IK_OK;
}

static int
srv_recv(void *arg, void *pp, iok_msg *m)
{
	srv_sock   *s = arg;
	srv_survey *sv;
	(void) pp;

	if (!(m->flags & IK_MSG_PARSED)) {
		iok_msg_header_clear(m);
		if (s->raw) {
			int rv = ik_rr_bt_parse(m, ik_sock_max_ttl(s->sock));
			if (rv != IK_RR_BT_OK) {
				iok_msg_free(m);
				ik_sock_stat(s->sock, rv == IK_RR_BT_HOPS ? IK_STAT_RX_DROPPED : IK_STAT_RX_MALFORMED, 1);
				return IK_OK;
			}
		} else {
			/* A response to us has no hops left: its first word is
			 * the survey id. */
			if (m->len < 4 || !(ik_get_u32(m->body) & 0x80000000u)) {
				iok_msg_free(m);
				ik_sock_stat(s->sock, IK_STAT_RX_MALFORMED, 1);
				return IK_OK;
			}
			(void) iok_msg_header_append(m, m->body, 4);
			(void) iok_msg_trim(m, 4);
		}
		m->flags = IK_MSG_PARSED;
	}
	if (s->raw) {
		return ik_sock_deliver(s->sock, m);
	}
	if ((sv = ik_rr_map_get(s->ids, ik_get_u32(m->hdr))) == NULL) {
		/* Late (the survey ended, was replaced or cancelled). */
		iok_msg_free(m);
		ik_sock_stat(s->sock, IK_STAT_RX_DROPPED, 1);
		return IK_OK;
	}
	m->token   = sv->token;
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
	srv_sock   *s  = arg;
	srv_survey *sv = ik_rr_map_get(s->tokens, token);
	if (sv != NULL) {
		survey_free(s, sv);
		return;
	}
	if (token > s->max_token && !s->raw) {
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
		if (sv->id != 0) {
			fn(farg, NULL, sv->since, sv->head, sv->nhead);
		}
	}
}

const ik_pattern ik_pattern_surveyor0 = {
	.name       = "surveyor0",
	.peer_name  = "respondent0",
	.proto      = 0x62,
	.peer       = 0x63,
	.flags      = IK_PF_SEND | IK_PF_RECV | IK_PF_RAW | IK_PF_REQUEST | IK_PF_MULTI_REPLY,
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
};
