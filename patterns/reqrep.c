/*
 * reqrep.c - REQ and REP (nng's reqrep0), the responder engine that REP
 * and RESPONDENT share, and the small helpers survey.c uses too.
 *
 * Wire format (as nng): a message's SP header is a backtrace of 32-bit
 * big-endian words.  The last word is the request (or survey) id and has
 * its high bit set; the words before it are pipe ids that devices pushed
 * on the way (high bit clear).  A receiver reads at most ttl-max words; a
 * longer backtrace is dropped (stat:rx-dropped), one that ends before its
 * id word is malformed (stat:rx-malformed).  Either way only the message
 * goes: the connection and the socket keep serving.
 *
 * REQ (cooked).  Every request gets an id from a per-socket counter
 * (random start, high bit set) and an entry in a hash table by id, so a
 * reply finds its request in O(1) however many are outstanding.  The
 * entry keeps the request as sent (header = id) for resends.  The plain
 * API has one current request: a new send abandons it, and its late reply
 * is dropped.  iok_request (IK_MSG_REQUEST) requests are independent, each
 * with its own id, also found by token (hash table) for cancel, and each
 * completes exactly once: its reply (tagged with the token), an
 * IOK_ETIMEDOUT completion when req:timeout expires, or silently on
 * iok_cancel.  Resends (req:resend-time) and timeouts live in two lists
 * kept sorted by deadline; with a fixed duration a new deadline is always
 * the latest, so insertion at the tail is O(1), and one timer per socket
 * serves both lists.  A request whose pipe goes away is sent again at once
 * on another pipe (as nng).  Requests go out round-robin over writable
 * pipes; with none the plain API refuses (IK_BUSY: the core keeps the
 * message queued) while iok_request accepts up to REQ_WAITQ_MAX into a
 * waiting list so its timeout runs.
 *
 * REP (cooked).  Each request received gets a token from a counter in the
 * pattern, stored (hash table) with its pipe and backtrace; the message
 * is delivered with that token, and a reply (IK_MSG_REPLY, from iok_reply
 * or a plain send the core tagged with the last token) goes back with the
 * backtrace as its header to that pipe if it is still there (else it is
 * dropped, stat:tx-dropped).  Unanswered requests are forgotten when their
 * pipe goes, and the oldest are forgotten beyond RSP_MAX_PENDING.  Replies
 * to a pipe over its high-water mark wait in a per-pipe queue
 * (RSP_PIPE_QMAX), so a client that reads slowly does not hold up the
 * replies to the others; only when that queue is full too does the reply
 * wait in the core (IK_BUSY), as nng's cooked rep blocks its sender.
 *
 * Raw mode (as nng's xreq/xrep): raw REQ sends the header the application
 * gives and delivers replies with their backtrace as the header; raw REP
 * delivers requests with header = [pipe id] + backtrace and, on send,
 * pops the first header word to pick the pipe (a reply for a gone or
 * hopelessly full pipe is dropped, as nng's xrep).  That is what lets
 * iok_device(rep_raw, req_raw) forward requests out and replies back.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "pattern.h"
#include "../src/list.h"

/* ------------------------------------------------------- shared helpers */

/* These are shared with survey.c, which declares them again (the pattern
 * files have no header of their own): keep both lists in step. */
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
#define IK_RR_BT_SHORT 1 /* ended before its id word: malformed */
#define IK_RR_BT_HOPS 2  /* more than ttl-max words */

/* A hash table from non-zero 64-bit keys (request ids, tokens, pipe ids)
 * to pointers: open addressing, linear probing, deletion by backward
 * shift, so every operation is O(1) on average with no tombstones. */
struct ik_rr_map {
	uint64_t *keys; /* 0 = empty slot */
	void    **vals;
	uint32_t  cap;  /* power of two, or 0 */
	uint32_t  n;
};

#define MAP_MIN 16

static uint32_t
map_slot(uint64_t k, uint32_t mask)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ULL;
	k ^= k >> 33;
	return (uint32_t) k & mask;
}

ik_rr_map *
ik_rr_map_new(void)
{
	return calloc(1, sizeof(ik_rr_map));
}

void
ik_rr_map_free(ik_rr_map *m)
{
	if (m != NULL) {
		free(m->keys);
		free(m->vals);
		free(m);
	}
}

static int
map_resize(ik_rr_map *m, uint32_t ncap)
{
	uint64_t *nk = calloc(ncap, sizeof(*nk));
	void    **nv = calloc(ncap, sizeof(*nv));
	if (nk == NULL || nv == NULL) {
		free(nk);
		free(nv);
		return IOK_ENOMEM;
	}
	for (uint32_t i = 0; i < m->cap; i++) {
		if (m->keys[i] != 0) {
			uint32_t j = map_slot(m->keys[i], ncap - 1);
			while (nk[j] != 0) {
				j = (j + 1) & (ncap - 1);
			}
			nk[j] = m->keys[i];
			nv[j] = m->vals[i];
		}
	}
	free(m->keys);
	free(m->vals);
	m->keys = nk;
	m->vals = nv;
	m->cap  = ncap;
	return 0;
}

/* Insert or replace.  0 or IOK_ENOMEM. */
int
ik_rr_map_put(ik_rr_map *m, uint64_t key, void *val)
{
	uint32_t i;
	if ((m->n + 1) * 2 > m->cap) {
		int rv = map_resize(m, m->cap ? m->cap * 2 : MAP_MIN);
		if (rv != 0) {
			return rv;
		}
	}
	for (i = map_slot(key, m->cap - 1); m->keys[i] != 0; i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == key) {
			m->vals[i] = val;
			return 0;
		}
	}
	m->keys[i] = key;
	m->vals[i] = val;
	m->n++;
	return 0;
}

static int
map_find(const ik_rr_map *m, uint64_t key, uint32_t *slot)
{
	if (m->n == 0 || key == 0) {
		return 0;
	}
	for (uint32_t i = map_slot(key, m->cap - 1); m->keys[i] != 0; i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == key) {
			*slot = i;
			return 1;
		}
	}
	return 0;
}

void *
ik_rr_map_get(const ik_rr_map *m, uint64_t key)
{
	uint32_t i;
	return map_find(m, key, &i) ? m->vals[i] : NULL;
}

/* Remove key; returns its value (NULL if absent). */
void *
ik_rr_map_del(ik_rr_map *m, uint64_t key)
{
	uint32_t i, j, mask;
	void    *val;
	if (!map_find(m, key, &i)) {
		return NULL;
	}
	val  = m->vals[i];
	mask = m->cap - 1;
	/* Shift back the entries of the run after i that may move. */
	for (j = (i + 1) & mask; m->keys[j] != 0; j = (j + 1) & mask) {
		uint32_t home = map_slot(m->keys[j], mask);
		/* Entry j may fill hole i unless its home lies cyclically
		 * in (i, j]. */
		bool stays = (i < j) ? (home > i && home <= j) : (home > i || home <= j);
		if (!stays) {
			m->keys[i] = m->keys[j];
			m->vals[i] = m->vals[j];
			i          = j;
		}
	}
	m->keys[i] = 0;
	m->vals[i] = NULL;
	m->n--;
	if (m->cap > MAP_MIN && m->n * 8 < m->cap) {
		(void) map_resize(m, m->cap / 2); /* after a burst: give memory back */
	}
	return val;
}

uint32_t
ik_rr_map_count(const ik_rr_map *m)
{
	return m->n;
}

/* Move the backtrace from the front of m's body to the end of its header:
 * words up to and including the first with the high bit set, at most ttl
 * of them (nng's rule: a message with more hops is dropped, one that ends
 * early is malformed). */
int
ik_rr_bt_parse(iok_msg *m, int ttl)
{
	for (int hops = 0;; hops++) {
		if (hops >= ttl) {
			return IK_RR_BT_HOPS;
		}
		if (m->len < 4) {
			return IK_RR_BT_SHORT;
		}
		uint32_t w = ik_get_u32(m->body);
		if (iok_msg_header_append(m, m->body, 4) != 0) {
			return IK_RR_BT_HOPS; /* cannot happen: ttl-max <= 15 */
		}
		(void) iok_msg_trim(m, 4);
		if (w & 0x80000000u) {
			return IK_RR_BT_OK;
		}
	}
}

/* A random 32-bit start for id counters, so ids from a restarted process
 * do not collide with its predecessor's late replies (as nng). */
uint32_t
ik_rr_seed(const void *salt)
{
	uint32_t v = 0;
	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t) sizeof(v)) {
		uint64_t x = (uint64_t) (uintptr_t) salt ^ ((uint64_t) getpid() << 32) ^ ik_now_ms();
		x ^= x >> 33;
		x *= 0xff51afd7ed558ccdULL;
		x ^= x >> 33;
		v = (uint32_t) x;
	}
	return v;
}

/* A message leaving for a pipe carries only header and body: none of the
 * routing facts it had on this side (a received message a device forwards
 * still says IK_MSG_PARSED). */
void
ik_rr_clean(iok_msg *m)
{
	m->flags  = 0;
	m->token  = 0;
	m->status = 0;
}

/* Insert n into l, kept in ascending key order.  The scan starts at the
 * tail: with a fixed duration every new deadline is the latest, O(1). */
void
ik_rr_sorted_insert(ik_list *l, ik_node *n, uint64_t (*key)(const ik_node *))
{
	uint64_t k = key(n);
	ik_node *p = l->head.prev;
	while (p != &l->head && key(p) > k) {
		p = p->prev;
	}
	n->prev       = p;
	n->next       = p->next;
	p->next->prev = n;
	p->next       = n;
}

static void
node_unlink(ik_node *n)
{
	if (ik_node_linked(n)) {
		ik_list_remove(n);
	}
}

/* A completion or reply the full receive queue refused is offered again
 * after this many ms (the pattern has no "room again" callback). */
#define RETRY_MS 10
/* Unknown tokens cancelled before their request reached the pattern. */
#define PRECANCEL_MAX 1024

/* ================================================================== REQ */

#define REQ_RESEND_DEFAULT 60000 /* nng's req:resend-time */
#define REQ_WAITQ_MAX 1024       /* iok_request messages held with no pipe */
#define REQ_MAX_INFLIGHT 65536   /* req:max-inflight default */
#define MAX_PIPES 65536

typedef struct req_sock req_sock;

typedef struct req_pipe {
	ik_pipe  *pipe;
	req_sock *s;
	int       slot; /* index in s->pipes */
	ik_list   ents; /* requests last sent on this pipe */
} req_pipe;

typedef struct req_ent {
	uint32_t     id;
	uint64_t     token;  /* 0: the plain API's request */
	iok_msg     *msg;    /* as sent: header = id */
	req_pipe    *pipe;   /* where it went last; NULL while waiting */
	ik_node      pnode;  /* in pipe->ents, or s->waitq while waiting */
	ik_node      rnode;  /* in s->resends */
	ik_node      xnode;  /* in s->expiries */
	ik_node      anode;  /* in s->all */
	uint64_t     resend_at;
	uint64_t     expire_at;
	uint64_t     since;     /* accepted at (loop ms), for the debug endpoint */
	uint64_t     sent_ns;   /* last written at (ik_clock_ns), for latency */
	iok_duration resend_ms; /* the socket's value when it was sent */
	bool         failed;    /* timed out: its completion waits for room */
} req_ent;

struct req_sock {
	ik_sock     *sock;
	int          raw;
	req_pipe   **pipes; /* dense, for round-robin */
	int          npipes, cap, next;
	ik_rr_map   *ids;    /* request id -> entry (answerable ones) */
	ik_rr_map   *tokens; /* token -> entry (iok_request) */
	ik_rr_map   *precancel;
	uint64_t     max_token; /* highest request token seen */
	req_ent     *cur;       /* the plain API's request */
	ik_list      waitq;     /* accepted, waiting for a writable pipe */
	int          nwait;
	ik_list      resends;  /* by resend_at */
	ik_list      expiries; /* by expire_at */
	ik_list      all;
	ik_timer    *timer;
	bool         armed;
	uint64_t     armed_at;
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

static uint64_t
xnode_key(const ik_node *n)
{
	return ik_container_of(n, req_ent, xnode)->expire_at;
}

static void req_timer_cb(void *arg);

static int
req_init(void *arg, ik_sock *sock, int raw)
{
	req_sock *s = arg;
	s->sock       = sock;
	s->raw        = raw;
	s->resend_ms  = REQ_RESEND_DEFAULT;
	s->timeout_ms = IOK_DURATION_INFINITE;
	s->max_inflight = REQ_MAX_INFLIGHT;
	s->next_id    = ik_rr_seed(s);
	ik_list_init(&s->waitq);
	ik_list_init(&s->resends);
	ik_list_init(&s->expiries);
	ik_list_init(&s->all);
	if ((s->ids = ik_rr_map_new()) == NULL || (s->tokens = ik_rr_map_new()) == NULL) {
		ik_rr_map_free(s->ids);
		ik_rr_map_free(s->tokens);
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
	node_unlink(&e->xnode);
	if (ik_node_linked(&e->anode)) {
		ik_list_remove(&e->anode);
		if (--s->nents < (uint32_t) s->max_inflight && s->capped) {
			s->capped = false;
			ik_sock_send_ready_later(s->sock); /* requests held back may go */
		}
	}
	if (ik_rr_map_get(s->ids, e->id) == e) {
		(void) ik_rr_map_del(s->ids, e->id);
	}
	if (e->token != 0 && ik_rr_map_get(s->tokens, e->token) == e) {
		(void) ik_rr_map_del(s->tokens, e->token);
	}
	if (s->cur == e) {
		s->cur = NULL;
	}
	iok_msg_free(e->msg);
	free(e);
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
	ik_rr_map_free(s->precancel);
	s->precancel = NULL;
	s->kick      = false;
	if (s->timer != NULL) {
		ik_timer_stop(s->timer);
	}
	s->armed = false;
}

static void
req_fini(void *arg)
{
	req_sock *s = arg;
	req_forget_all(s);
	ik_timer_free(s->timer);
	ik_rr_map_free(s->ids);
	ik_rr_map_free(s->tokens);
	free(s->pipes);
}

static void
req_fork_child(void *arg)
{
	req_forget_all(arg); /* the parent's requests: never sent twice */
}

/* Set the timer for the earliest thing to do. */
static void
req_arm(req_sock *s)
{
	uint64_t when = UINT64_MAX;
	uint64_t now  = ik_now_ms();
	ik_node *n;
	if (s->kick) {
		when = now;
	}
	if ((n = ik_list_first(&s->resends)) != NULL && rnode_key(n) < when) {
		when = rnode_key(n);
	}
	if ((n = ik_list_first(&s->expiries)) != NULL && xnode_key(n) < when) {
		when = xnode_key(n);
	}
	if (when == UINT64_MAX) {
		if (s->armed) {
			ik_timer_stop(s->timer);
			s->armed = false;
		}
		return;
	}
	if (s->armed && s->armed_at <= when) {
		return; /* it fires first anyway, and re-arms */
	}
	if (s->timer == NULL && (s->timer = ik_timer_new(req_timer_cb, s)) == NULL) {
		return; /* out of memory: the next arm tries again */
	}
	ik_timer_start(s->timer, when > now ? when - now : 0);
	s->armed    = true;
	s->armed_at = when;
}

/* The next writable pipe, round-robin; NULL if none. */
static req_pipe *
req_pick(req_sock *s)
{
	for (int i = 0; i < s->npipes; i++) {
		int k = (s->next + i) % s->npipes;
		if (ik_pipe_writable(s->pipes[k]->pipe)) {
			s->next = (k + 1) % s->npipes;
			return s->pipes[k];
		}
	}
	return NULL;
}

static void
req_wait(req_sock *s, req_ent *e)
{
	e->pipe = NULL;
	ik_list_append(&s->waitq, &e->pnode);
	s->nwait++;
}

/* Put e on the wire through p (a copy: e keeps its message for resends),
 * and schedule its resend. */
static void
req_transmit(req_sock *s, req_ent *e, req_pipe *p)
{
	iok_msg *d;
	node_unlink(&e->rnode);
	if (iok_msg_dup(&d, e->msg) != 0) {
		/* Out of memory: try again a little later. */
		req_wait(s, e);
		s->kick = true;
		return;
	}
	ik_rr_clean(d);
	e->sent_ns = ik_clock_ns();
	if (ik_pipe_send(p->pipe, d) == 0) {
		ik_sock_stat(s->sock, IK_STAT_REQUESTS, 1);
	}
	e->pipe = p;
	ik_list_append(&p->ents, &e->pnode);
	if (e->resend_ms > 0) {
		e->resend_at = ik_now_ms() + (uint64_t) e->resend_ms;
		ik_rr_sorted_insert(&s->resends, &e->rnode, rnode_key);
	}
}

/* Send what waits, while pipes take it. */
static void
req_flush(req_sock *s)
{
	ik_node  *n;
	req_pipe *p;
	while ((n = ik_list_first(&s->waitq)) != NULL && (p = req_pick(s)) != NULL) {
		req_ent *e = ik_container_of(n, req_ent, pnode);
		ik_list_remove(&e->pnode);
		s->nwait--;
		req_transmit(s, e, p);
	}
}

/* Complete e with an error; false if the receive queue had no room. */
static bool
req_fail(req_sock *s, req_ent *e, int err)
{
	iok_msg *m = ik_msg_error(e->token, err);
	if (m == NULL || ik_sock_deliver(s->sock, m) != IK_OK) {
		iok_msg_free(m);
		return false;
	}
	return true;
}

static void
req_timer_cb(void *arg)
{
	req_sock *s   = arg;
	uint64_t  now = ik_now_ms();
	ik_node  *n;

	s->armed = false;
	if (s->kick) {
		s->kick = false;
		req_flush(s);
	}
	while ((n = ik_list_first(&s->expiries)) != NULL && xnode_key(n) <= now) {
		req_ent *e = ik_container_of(n, req_ent, xnode);
		if (!e->failed) {
			/* From now on it is over: a reply is late, no resend. */
			e->failed = true;
			(void) ik_rr_map_del(s->ids, e->id);
			node_unlink(&e->rnode);
			if (ik_node_linked(&e->pnode)) {
				if (e->pipe == NULL) {
					s->nwait--;
				}
				ik_list_remove(&e->pnode);
			}
			e->pipe = NULL;
		}
		if (req_fail(s, e, IOK_ETIMEDOUT)) {
			ent_free(s, e);
		} else {
			ik_list_remove(&e->xnode);
			e->expire_at = now + RETRY_MS;
			ik_rr_sorted_insert(&s->expiries, &e->xnode, xnode_key);
		}
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
		if ((p = req_pick(s)) != NULL) {
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
	if (s->npipes == s->cap) {
		int        ncap = s->cap ? s->cap * 2 : 8;
		req_pipe **np;
		if (ncap > MAX_PIPES || (np = realloc(s->pipes, (size_t) ncap * sizeof(*np))) == NULL) {
			return IOK_ENOMEM;
		}
		s->pipes = np;
		s->cap   = ncap;
	}
	p->pipe                = pipe;
	p->s                   = s;
	p->slot                = s->npipes;
	s->pipes[s->npipes++]  = p;
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

	s->pipes[p->slot]       = s->pipes[s->npipes - 1];
	s->pipes[p->slot]->slot = p->slot;
	s->npipes--;
	if (s->next >= s->npipes) {
		s->next = 0;
	}
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

/* A new request id: high bit set, not in use. */
static uint32_t
req_new_id(req_sock *s)
{
	uint32_t id;
	do {
		id = (s->next_id++) | 0x80000000u;
	} while (ik_rr_map_get(s->ids, id) != NULL);
	return id;
}

static int
req_send_raw(req_sock *s, iok_msg *m)
{
	req_pipe *p = req_pick(s);
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
	if (s->nents >= (uint32_t) s->max_inflight && !(!(m->flags & IK_MSG_REQUEST) && s->cur != NULL)) {
		/* Throttled: the request waits in the send queue (a plain send
		 * that replaces the current request always goes). */
		s->capped = true;
		return IK_BUSY;
	}
	if (tok) {
		if (token > s->max_token) {
			s->max_token = token;
		}
		if (s->precancel != NULL && ik_rr_map_del(s->precancel, token) != NULL) {
			iok_msg_free(m); /* cancelled before it got here */
			return IK_OK;
		}
		if (s->nwait == 0) {
			p = req_pick(s);
		}
		if (p == NULL && s->nwait >= REQ_WAITQ_MAX) {
			return IK_BUSY;
		}
	} else if ((p = req_pick(s)) == NULL) {
		return IK_BUSY; /* as nng: a request waits for a pipe */
	}

	if ((e = calloc(1, sizeof(*e))) == NULL) {
		goto nomem;
	}
	e->id    = req_new_id(s);
	e->token = token;
	if (ik_rr_map_put(s->ids, e->id, e) != 0) {
		free(e);
		goto nomem;
	}
	if (tok && ik_rr_map_put(s->tokens, token, e) != 0) {
		(void) ik_rr_map_del(s->ids, e->id);
		free(e);
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
	e->since     = ik_now_ms();
	e->resend_ms = s->resend_ms;
	if (tok && s->timeout_ms >= 0) {
		e->expire_at = ik_now_ms() + (uint64_t) s->timeout_ms;
		ik_rr_sorted_insert(&s->expiries, &e->xnode, xnode_key);
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
		/* Still complete it exactly once, if there is memory for that. */
		iok_msg *err = ik_msg_error(token, IOK_ENOMEM);
		if (err != NULL && ik_sock_deliver(s->sock, err) != IK_OK) {
			iok_msg_free(err);
		}
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

	if (first) {
		iok_msg_header_clear(m);
		if (s->raw) {
			int rv = ik_rr_bt_parse(m, ik_sock_max_ttl(s->sock));
			if (rv != IK_RR_BT_OK) {
				iok_msg_free(m);
				ik_sock_stat(s->sock, rv == IK_RR_BT_HOPS ? IK_STAT_RX_DROPPED : IK_STAT_RX_MALFORMED, 1);
				return IK_OK;
			}
		} else {
			/* A reply to us has no hops left: its first word is the
			 * request id. */
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
	id = ik_get_u32(m->hdr);
	if ((e = ik_rr_map_get(s->ids, id)) == NULL) {
		/* Late: a duplicate of an answered request, an abandoned,
		 * cancelled or timed-out one. */
		iok_msg_free(m);
		ik_sock_stat(s->sock, IK_STAT_RX_DROPPED, 1);
		return IK_OK;
	}
	if (first) {
		/* Read now, whenever the application takes it. */
		ik_sock_req_done(s->sock, rp->pipe, e->sent_ns);
	}
	m->token   = e->token;
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
	req_sock *s = arg;
	req_ent  *e = ik_rr_map_get(s->tokens, token);
	if (e != NULL) {
		ent_free(s, e);
		return;
	}
	if (token > s->max_token && !s->raw) {
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
req_inflight(void *arg, ik_inflight_fn fn, void *farg)
{
	req_sock *s = arg;
	for (ik_node *n = ik_list_first(&s->all); n != NULL; n = ik_list_next(&s->all, n)) {
		req_ent *e = ik_container_of(n, req_ent, anode);
		if (!e->failed && e->msg != NULL) {
			fn(farg, e->pipe != NULL ? e->pipe->pipe : NULL, e->since, iok_msg_body(e->msg),
			   iok_msg_len(e->msg));
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
		return ik_opt_get_int(v, sz, type, 1, 1 << 24, &s->max_inflight); /* the core pumps */
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
};

/* ======================================== responder: REP and RESPONDENT */

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
	ik_sock   *sock;
	int        raw;
	ik_list    pipes;
	ik_rr_map *byid; /* pipe id -> rsp_pipe */
	ik_rr_map *reqs; /* token -> rsp_req */
	ik_list    age;
	uint64_t   next_token;
	bool       busy; /* refused a reply: a full pipe holds the core up */
};

static int
rsp_init(void *arg, ik_sock *sock, int raw)
{
	rsp_sock *s = arg;
	s->sock       = sock;
	s->raw        = raw;
	s->next_token = ((uint64_t) ik_rr_seed(s) << 16) + 1;
	ik_list_init(&s->pipes);
	ik_list_init(&s->age);
	if ((s->byid = ik_rr_map_new()) == NULL || (s->reqs = ik_rr_map_new()) == NULL) {
		ik_rr_map_free(s->byid);
		ik_rr_map_free(s->reqs);
		return IOK_ENOMEM;
	}
	return 0;
}

static void
rsp_req_free(rsp_sock *s, rsp_req *r)
{
	node_unlink(&r->pnode);
	node_unlink(&r->anode);
	(void) ik_rr_map_del(s->reqs, r->token);
	free(r);
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
	ik_rr_map_free(s->byid);
	ik_rr_map_free(s->reqs);
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
	if (ik_rr_map_put(s->byid, p->id, p) != 0) {
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
	(void) ik_rr_map_del(s->byid, p->id);
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
		if (iok_msg_header_trim_u32(m, &id) != 0 || (p = ik_rr_map_get(s->byid, id)) == NULL ||
		    rsp_full(p)) {
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
	rsp_req *r = (m->flags & IK_MSG_REPLY) ? ik_rr_map_get(s->reqs, m->token) : NULL;
	if (r == NULL) {
		/* Unknown or answered token, or its pipe is gone. */
		iok_msg_free(m);
		ik_sock_stat(s->sock, IK_STAT_TX_DROPPED, 1);
		return IK_OK;
	}
	p = r->pipe;
	if (rsp_full(p)) {
		/* As nng's rep: the reply waits (and so does the replier, once
		 * the send queue is full) rather than being lost. */
		s->busy = true;
		return IK_BUSY;
	}
	iok_msg_header_clear(m);
	(void) iok_msg_header_append(m, r->bt, r->bt_len);
	rsp_req_free(s, r);
	rsp_out(s, p, m);
	return IK_OK;
}

static int
rsp_recv(void *arg, void *pp, iok_msg *m)
{
	rsp_sock *s = arg;
	rsp_pipe *p = pp;
	rsp_req  *r;

	if (!(m->flags & IK_MSG_PARSED)) {
		int rv;
		iok_msg_header_clear(m);
		if (s->raw) {
			(void) iok_msg_header_append_u32(m, p->id);
		}
		if ((rv = ik_rr_bt_parse(m, ik_sock_max_ttl(s->sock))) != IK_RR_BT_OK) {
			iok_msg_free(m);
			ik_sock_stat(s->sock, rv == IK_RR_BT_HOPS ? IK_STAT_RX_DROPPED : IK_STAT_RX_MALFORMED, 1);
			return IK_OK;
		}
		m->flags = IK_MSG_PARSED;
	}
	if (s->raw) {
		return ik_sock_deliver(s->sock, m);
	}

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		iok_msg_free(m);
		ik_sock_stat(s->sock, IK_STAT_RX_DROPPED, 1);
		return IK_OK;
	}
	do {
		r->token = s->next_token++;
	} while (r->token == 0 || ik_rr_map_get(s->reqs, r->token) != NULL);
	if (ik_rr_map_put(s->reqs, r->token, r) != 0) {
		free(r);
		iok_msg_free(m);
		ik_sock_stat(s->sock, IK_STAT_RX_DROPPED, 1);
		return IK_OK;
	}
	r->pipe   = p;
	r->bt_len = m->hdr_len;
	memcpy(r->bt, m->hdr, m->hdr_len);

	m->token   = r->token;
	m->flags   = 0;
	m->hdr_len = 0;
	if (ik_sock_deliver(s->sock, m) != IK_OK) {
		m->token   = 0;
		m->flags   = IK_MSG_PARSED;
		m->hdr_len = r->bt_len;
		(void) ik_rr_map_del(s->reqs, r->token);
		free(r);
		return IK_BUSY;
	}
	ik_list_append(&p->reqs, &r->pnode);
	ik_list_append(&s->age, &r->anode);
	if (ik_rr_map_count(s->reqs) > RSP_MAX_PENDING) {
		/* A flood of requests nobody answers: forget the oldest. */
		rsp_req_free(s, ik_container_of(ik_list_first(&s->age), rsp_req, anode));
	}
	return IK_OK;
}

static void
rsp_cancel(void *arg, uint64_t token)
{
	rsp_sock *s = arg;
	rsp_req  *r = ik_rr_map_get(s->reqs, token);
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

/* RESPONDENT is REP towards a surveyor (survey.c has the surveyor). */
const ik_pattern ik_pattern_respondent0 = {
	.name       = "respondent0",
	.peer_name  = "surveyor0",
	.proto      = 0x63,
	.peer       = 0x62,
	.flags      = IK_PF_SEND | IK_PF_RECV | IK_PF_RAW | IK_PF_REPLY,
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
