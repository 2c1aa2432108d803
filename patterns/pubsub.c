/*
 * pubsub.c - PUB and SUB (nng's pubsub0).  No SP header on the wire.
 *
 * PUB broadcasts every message to every connected subscriber and never
 * blocks: send() always takes the message.  Each pipe gets its own copy
 * (see fanout_copy).  While a pipe's write queue is above its high-water
 * mark, copies wait in a small per-pipe queue of "pub:queue-length"
 * messages (default 16, nng's per-pipe pub queue); when that is full one
 * message is dropped and counted in stat:tx-dropped: the oldest queued one
 * by default ("pub:drop-oldest" true, what nng 1.5 pub does: subscribers
 * want the freshest data), or the new one when the option is false.  So a
 * slow subscriber costs the publisher at most the pipe's high-water mark
 * plus queue-length messages, and never slows the other subscribers.
 * With "pub:nodrop" true (libzmq's ZMQ_XPUB_NODROP) nothing is dropped:
 * while some subscriber's queue is full the pattern refuses the next
 * message, so it waits in the send queue and a send blocks (up to
 * IOK_OPT_SENDTIMEO) until the slowest subscriber drains; the price is that
 * one stuck subscriber stops the publisher until it catches up or leaves.
 * A sub never sends; a message from one is a protocol error and its pipe
 * is closed, as nng does.
 *
 * SUB filters at the subscriber, as nng: a message is delivered when some
 * subscription (IOK_OPT_SUB_SUBSCRIBE, arbitrary bytes; empty = everything)
 * is a prefix of its body.  Messages that match nothing are not losses:
 * they are counted in the read-only uint64 option "sub:filtered", not in
 * stat:rx-dropped, so rx-dropped means "wanted but lost to a full queue"
 * and can be alarmed on.  A full receive queue: with IOK_OPT_SUB_PREFNEW
 * true (nng's default) the oldest queued message is dropped for the new
 * one (counted in stat:rx-dropped); false keeps the old ones by pushing
 * back: the pipe pauses, and the publisher, which never blocks, drops for
 * this subscriber in its own queue (libzmq's policy, cheaper than reading
 * messages only to drop them).  A connection shared with another socket's
 * replies is never paused: there the new message is dropped instead.
 *
 * Matching: the subscriptions are kept in a sorted array of distinct byte
 * strings (binary search for subscribe/unsubscribe), and, rebuilt lazily
 * after a change, a sorted prefix-free subset of it (a topic that has
 * another subscribed topic as a prefix adds nothing to matching).  In a
 * sorted prefix-free set at most one member can be a prefix of the body,
 * and if one is, it is the greatest member <= the body; so a message costs
 * one binary search: O(log n) comparisons of at most the topic length,
 * whatever the number of subscriptions.  A trie would cost O(body prefix)
 * pointer hops and much more memory per topic; the arrays are compact and
 * cache-friendly, and subscribing (an O(n) pointer move, plus one O(n)
 * rebuild before the next message) is rare next to matching.
 *
 * Raw mode: raw pub is cooked pub that keeps the message header; raw sub
 * delivers everything (no filtering, no subscription options, as nng's
 * xsub) and by default drops the new message when its queue is full, as
 * nng's xsub does (IOK_OPT_SUB_PREFNEW still works on it).
 *
 * Differences from nng, on purpose: nng's unsubscribe also purges queued
 * messages that no longer match; here messages already queued for the
 * application stay (the queue belongs to the core).
 *
 * SUB over a server that pushes (a transport with IK_TF_PUSH, reached by
 * sharing another socket's dialer with iok_dialer_share, e.g. a sub socket
 * on the Redis connection of a pipelined-db socket): the server filters.
 * Subscriptions (sub:subscribe / sub:unsubscribe: channels;
 * sub:psubscribe / sub:punsubscribe: patterns, kept in a second sorted
 * set) are sent to it with ik_pipe_subscribe on ONE such connection at a
 * time - the subscribed pipe - so a pool of several connections to one
 * server does not deliver every message several times: all of them when
 * it joins (which is how they come back after a reconnect), then each
 * change as it is made; if it leaves, the next push connection gets them
 * all.  (A sub socket sharing the dialers of several independent servers
 * therefore hears one of them at a time.)  A change made while the owner
 * holds the connection for a session goes out when the session ends (see
 * ik_pipe_hold_subscribe): the option returns before the server saw it,
 * as always; the server's confirmation push tells when it did.  Pushes
 * are delivered without local filtering, body = the raw push frame (for
 * Redis the RESP3 '>' frame, subscribe confirmations included),
 * iok_msg_is_push() true; the application decodes them.  A subscription the server side refuses (a
 * RESP2 connection: IOK_ENOTSUP) fails the option and is not kept; a push
 * connection that cannot take the subscriptions already made is refused
 * (it keeps serving its owner).  When the sub socket closes or stops
 * sharing, it unsubscribes on the connection it leaves.  psubscribe and
 * punsubscribe are stored on a sub with no push connection, for one to
 * come; they never filter SP messages.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "pattern.h"
#include "pipeset.h"
#include "../src/tflags.h"

#define OPT_PUB_QLEN "pub:queue-length"       /* int, 1..1048576, default 16 */
#define OPT_PUB_DROP_OLDEST "pub:drop-oldest" /* bool, default true */
#define OPT_PUB_NODROP "pub:nodrop"           /* bool, default false */
#define OPT_SUB_FILTERED "sub:filtered"       /* uint64, read-only */

#define PUB_QLEN_DEFAULT 16
#define PUB_QLEN_MAX (1 << 20)

/* ------------------------------------------------------------------ PUB */

typedef struct pub_pipe {
	ik_pipe  *pipe;
	int       slot; /* index in pub_sock.pipes */
	iok_msg **q;    /* ring of waiting copies, cap entries */
	uint32_t  cap, head, len;
} pub_pipe;

typedef struct pub_sock {
	ik_sock   *sock;
	int        raw;
	ik_pipeset pipes;
	uint32_t   qlen;
	int        drop_oldest;
	int        nodrop;
} pub_sock;

static iok_msg *
pq_pop(pub_pipe *pi)
{
	iok_msg *m = pi->q[pi->head];
	pi->head   = (pi->head + 1) % pi->cap;
	pi->len--;
	return m;
}

/* Drop the newest queued copy. */
static iok_msg *
pq_pop_newest(pub_pipe *pi)
{
	pi->len--;
	return pi->q[(pi->head + pi->len) % pi->cap];
}

/* Make the ring hold at least want entries.  0 or IOK_ENOMEM. */
static int
pq_reserve(pub_pipe *pi, uint32_t want)
{
	iok_msg **nq;
	if (want <= pi->cap) {
		return 0;
	}
	if ((nq = malloc((size_t) want * sizeof(*nq))) == NULL) {
		return IOK_ENOMEM;
	}
	for (uint32_t i = 0; i < pi->len; i++) {
		nq[i] = pi->q[(pi->head + i) % pi->cap];
	}
	free(pi->q);
	pi->q    = nq;
	pi->cap  = want;
	pi->head = 0;
	return 0;
}

/* Send what waits while the pipe takes it. */
static void
pub_drain(pub_pipe *pi)
{
	while (pi->len > 0 && ik_pipe_writable(pi->pipe)) {
		ik_pipe_send(pi->pipe, pq_pop(pi));
	}
}

/* Hand one copy to one pipe: straight to it if it can take it and nothing
 * waits ahead (order is kept), else into its queue, dropping per policy. */
static void
pub_pipe_put(pub_sock *ps, pub_pipe *pi, iok_msg *m)
{
	if (pi->len > 0) {
		pub_drain(pi);
	}
	if (pi->len == 0 && ik_pipe_writable(pi->pipe)) {
		ik_pipe_send(pi->pipe, m);
		return;
	}
	if (pi->len >= ps->qlen) {
		ik_sock_stat(ps->sock, IK_STAT_TX_DROPPED, 1);
		if (!ps->drop_oldest) {
			iok_msg_free(m);
			return;
		}
		iok_msg_free(pq_pop(pi));
	}
	if (pq_reserve(pi, ps->qlen) != 0) {
		iok_msg_free(m);
		ik_sock_stat(ps->sock, IK_STAT_TX_DROPPED, 1);
		return;
	}
	pi->q[(pi->head + pi->len) % pi->cap] = m;
	pi->len++;
}

/* Every subscriber gets m, never a copy of it: a stream pipe that can
 * take it now gets the bytes framed straight into its write batch, an
 * inproc one a view of it (msg.h), and a pipe that is behind holds a
 * reference to it in its queue (8 bytes per queued message, whatever the
 * number of subscribers). */
static void
pub_fanout(pub_sock *ps, iok_msg *m)
{
	for (int i = 0; i < ps->pipes.n; i++) {
		pub_pipe *pi = ik_pipeset_at(&ps->pipes, i);
		if (pi->len > 0) {
			pub_drain(pi);
		}
		if (pi->len == 0 && ik_pipe_writable(pi->pipe)) {
			(void) ik_pipe_send_copy(pi->pipe, m); /* failures are counted */
			continue;
		}
		pub_pipe_put(ps, pi, ik_msg_ref(m));
	}
	iok_msg_free(m); /* the publisher's own reference */
}

static int
pub_init(void *arg, ik_sock *s, int raw)
{
	pub_sock *ps    = arg;
	ps->sock        = s;
	ps->raw         = raw;
	ps->qlen        = PUB_QLEN_DEFAULT;
	ps->drop_oldest = 1;
	IK_PIPESET_INIT(&ps->pipes, pub_pipe, 0);
	return 0;
}

static void
pub_fini(void *arg)
{
	pub_sock *ps = arg;
	ik_pipeset_fini(&ps->pipes);
}

static int
pub_pipe_add(void *arg, void *pp, ik_pipe *p)
{
	pub_sock *ps = arg;
	pub_pipe *pi = pp;
	pi->pipe     = p;
	return ik_pipeset_add(&ps->pipes, pi);
}

static void
pub_pipe_rm(void *arg, void *pp)
{
	pub_sock *ps = arg;
	pub_pipe *pi = pp;
	/* Copies that never left are lost to this subscriber. */
	if (pi->len > 0) {
		ik_sock_stat(ps->sock, IK_STAT_TX_DROPPED, pi->len);
	}
	bool was_full = pi->len >= ps->qlen;
	while (pi->len > 0) {
		iok_msg_free(pq_pop(pi));
	}
	free(pi->q);
	pi->q   = NULL;
	pi->cap = 0;
	ik_pipeset_rm(&ps->pipes, pi);
	if (ps->nodrop && was_full) {
		ik_sock_send_ready_later(ps->sock); /* it held the publisher */
	}
}

/* nodrop: would m drop for some subscriber?  A full queue first hands its
 * pipe what it can take (as pub_fanout would), so a pipe that drained
 * since pipe_ready does not hold the publisher. */
static bool
pub_someone_full(pub_sock *ps)
{
	for (int i = 0; i < ps->pipes.n; i++) {
		pub_pipe *pi = ik_pipeset_at(&ps->pipes, i);
		if (pi->len >= ps->qlen) {
			pub_drain(pi);
			if (pi->len >= ps->qlen) {
				return true;
			}
		}
	}
	return false;
}

static int
pub_send(void *arg, iok_msg *m)
{
	pub_sock *ps = arg;
	if (ps->nodrop && pub_someone_full(ps)) {
		return IK_BUSY; /* offered again when a queue drains (pipe_ready) */
	}
	if (!ps->raw) {
		iok_msg_header_clear(m);
	}
	pub_fanout(ps, m);
	return IK_OK; /* a publisher never waits */
}

static int
pub_recv(void *arg, void *pp, iok_msg *m)
{
	pub_sock *ps = arg;
	pub_pipe *pi = pp;
	/* Subscribers never send (nng closes such a pipe too). */
	iok_msg_free(m);
	ik_sock_stat(ps->sock, IK_STAT_PROTO_ERRORS, 1);
	ik_pipe_close(pi->pipe, IOK_EPROTO);
	return IK_OK;
}

static void
pub_pipe_ready(void *arg, void *pp)
{
	(void) arg;
	pub_drain(pp);
}

static int
pub_setopt(void *arg, const char *name, const void *v, size_t sz, int type)
{
	pub_sock *ps = arg;
	int       rv, val;
	if (strcmp(name, OPT_PUB_QLEN) == 0) {
		if ((rv = ik_opt_get_int(v, sz, type, 1, PUB_QLEN_MAX, &val)) != 0) {
			return rv;
		}
		ps->qlen = (uint32_t) val;
		/* Shrinking applies now, dropping per the policy. */
		for (int i = 0; i < ps->pipes.n; i++) {
			pub_pipe *pi = ik_pipeset_at(&ps->pipes, i);
			while (pi->len > ps->qlen) {
				iok_msg_free(ps->drop_oldest ? pq_pop(pi) : pq_pop_newest(pi));
				ik_sock_stat(ps->sock, IK_STAT_TX_DROPPED, 1);
			}
		}
		return 0;
	}
	if (strcmp(name, OPT_PUB_DROP_OLDEST) == 0) {
		if ((rv = ik_opt_get_bool(v, sz, type, &val)) != 0) {
			return rv;
		}
		ps->drop_oldest = val;
		return 0;
	}
	if (strcmp(name, OPT_PUB_NODROP) == 0) {
		if ((rv = ik_opt_get_bool(v, sz, type, &val)) != 0) {
			return rv;
		}
		ps->nodrop = val;
		if (!val) {
			ik_sock_send_ready_later(ps->sock); /* what it held goes now */
		}
		return 0;
	}
	return IOK_ENOTSUP;
}

static int
pub_getopt(void *arg, const char *name, void *v, size_t *sz, int type)
{
	pub_sock *ps = arg;
	if (strcmp(name, OPT_PUB_QLEN) == 0) {
		return ik_opt_put_int((int) ps->qlen, v, sz, type);
	}
	if (strcmp(name, OPT_PUB_DROP_OLDEST) == 0) {
		return ik_opt_put_bool(ps->drop_oldest, v, sz, type);
	}
	if (strcmp(name, OPT_PUB_NODROP) == 0) {
		return ik_opt_put_bool(ps->nodrop, v, sz, type);
	}
	return IOK_ENOTSUP;
}

/* ------------------------------------------------------------------ SUB */

typedef struct sub_topic {
	size_t  len;
	uint8_t b[];
} sub_topic;

/* A topic set: sorted, distinct byte strings. */
typedef struct sub_set {
	sub_topic **v;
	size_t      n, cap;
} sub_set;

typedef struct sub_pipe sub_pipe;

typedef struct sub_sock {
	ik_sock    *sock;
	int         raw;
	int         prefnew;
	sub_topic **all; /* every subscription, sorted, distinct */
	size_t      nall, capall;
	sub_topic **match; /* sorted prefix-free subset of all */
	size_t      nmatch, capmatch;
	int         dirty; /* match needs rebuilding */
	uint64_t    filtered;
	sub_set     pats;   /* psubscribe patterns (push transports) */
	sub_pipe   *pipes;  /* every pipe (list) */
	sub_pipe   *subbed; /* the push pipe carrying the subscriptions */
} sub_sock;

struct sub_pipe {
	ik_pipe  *pipe;
	sub_pipe *next, *prev;
	int       push; /* the transport has IK_TF_PUSH */
};

/* Lexicographic byte order; a proper prefix sorts first. */
static int
topic_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int    c = n > 0 ? memcmp(a, b, n) : 0;
	if (c != 0) {
		return c;
	}
	return alen < blen ? -1 : alen > blen;
}

static int
is_prefix(const sub_topic *t, const uint8_t *b, size_t len)
{
	return t->len <= len && (t->len == 0 || memcmp(t->b, b, t->len) == 0);
}

/* First index in arr[0..n) whose topic is > (b, len) when upper, or
 * >= when not. */
static size_t
topic_search(sub_topic *const *arr, size_t n, const uint8_t *b, size_t len, int upper)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int    c   = topic_cmp(arr[mid]->b, arr[mid]->len, b, len);
		if (c < 0 || (upper && c == 0)) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return lo;
}

/* The members of all that have no other member as a prefix.  In sorted
 * order a topic's extensions follow it contiguously, so one pass that
 * remembers the last kept topic finds them. */
static int
sub_rebuild(sub_sock *ps)
{
	if (ps->capmatch < ps->nall) {
		sub_topic **nm = realloc(ps->match, ps->nall * sizeof(*nm));
		if (nm == NULL) {
			return IOK_ENOMEM;
		}
		ps->match    = nm;
		ps->capmatch = ps->nall;
	}
	sub_topic *kept = NULL;
	ps->nmatch      = 0;
	for (size_t i = 0; i < ps->nall; i++) {
		sub_topic *t = ps->all[i];
		if (kept != NULL && is_prefix(kept, t->b, t->len)) {
			continue;
		}
		ps->match[ps->nmatch++] = kept = t;
	}
	ps->dirty = 0;
	return 0;
}

static int
sub_matches(sub_sock *ps, const uint8_t *body, size_t len)
{
	if (ps->dirty && sub_rebuild(ps) != 0) {
		/* Out of memory: fall back to a plain scan of everything. */
		for (size_t i = 0; i < ps->nall; i++) {
			if (is_prefix(ps->all[i], body, len)) {
				return 1;
			}
		}
		return 0;
	}
	size_t k = topic_search(ps->match, ps->nmatch, body, len, 1);
	return k > 0 && is_prefix(ps->match[k - 1], body, len);
}

/* Insert (b, len) into the sorted set *v: 0 added, 1 already there, or
 * IOK_ENOMEM. */
static int
topic_add(sub_topic ***v, size_t *n, size_t *cap, const uint8_t *b, size_t len)
{
	size_t     k = topic_search(*v, *n, b, len, 0);
	sub_topic *t;
	if (k < *n && topic_cmp((*v)[k]->b, (*v)[k]->len, b, len) == 0) {
		return 1;
	}
	if (*n == *cap) {
		size_t      ncap = *cap ? *cap * 2 : 8;
		sub_topic **na   = realloc(*v, ncap * sizeof(*na));
		if (na == NULL) {
			return IOK_ENOMEM;
		}
		*v   = na;
		*cap = ncap;
	}
	if ((t = malloc(sizeof(*t) + len)) == NULL) {
		return IOK_ENOMEM;
	}
	t->len = len;
	if (len > 0) {
		memcpy(t->b, b, len);
	}
	memmove(&(*v)[k + 1], &(*v)[k], (*n - k) * sizeof(**v));
	(*v)[k] = t;
	(*n)++;
	return 0;
}

/* Remove (b, len) from the sorted set: 0, or IOK_ENOENT. */
static int
topic_del(sub_topic **v, size_t *n, const uint8_t *b, size_t len)
{
	size_t k = topic_search(v, *n, b, len, 0);
	if (k == *n || topic_cmp(v[k]->b, v[k]->len, b, len) != 0) {
		return IOK_ENOENT;
	}
	free(v[k]);
	memmove(&v[k], &v[k + 1], (*n - k - 1) * sizeof(*v));
	(*n)--;
	return 0;
}

static int
sub_init(void *arg, ik_sock *s, int raw)
{
	sub_sock *ps = arg;
	ps->sock     = s;
	ps->raw      = raw;
	ps->prefnew  = !raw; /* nng: sub prefers new; xsub drops the new */
	return 0;
}

static void
sub_fini(void *arg)
{
	sub_sock *ps = arg;
	for (size_t i = 0; i < ps->nall; i++) {
		free(ps->all[i]);
	}
	for (size_t i = 0; i < ps->pats.n; i++) {
		free(ps->pats.v[i]);
	}
	free(ps->all);
	free(ps->match);
	free(ps->pats.v);
}

/* Ask the server behind pi for every subscription (on) or to drop them
 * all (off).  The first error, 0 if none. */
static int
sub_push_all(sub_sock *ps, sub_pipe *pi, unsigned on)
{
	int rv = 0, r;
	for (size_t i = 0; i < ps->nall; i++) {
		r = ik_pipe_subscribe(pi->pipe, ps->all[i]->b, ps->all[i]->len, on);
		if (rv == 0) {
			rv = r;
		}
	}
	for (size_t i = 0; i < ps->pats.n; i++) {
		r = ik_pipe_subscribe(
		    pi->pipe, ps->pats.v[i]->b, ps->pats.v[i]->len, on | IK_SUB_PATTERN);
		if (rv == 0) {
			rv = r;
		}
	}
	return rv;
}

/* Give the subscriptions to a push pipe if none carries them. */
static void
sub_pick_subbed(sub_sock *ps)
{
	for (sub_pipe *pi = ps->pipes; pi != NULL && ps->subbed == NULL; pi = pi->next) {
		if (pi->push && sub_push_all(ps, pi, IK_SUB_ON) == 0) {
			ps->subbed = pi;
		}
	}
}

static int
sub_pipe_add(void *arg, void *pp, ik_pipe *p)
{
	sub_sock *ps = arg;
	sub_pipe *pi = pp;
	pi->pipe     = p;
	pi->push     = (ik_pipe_flags(p) & IK_TF_PUSH) != 0;
	if (pi->push && !ps->raw && ps->subbed == NULL) {
		int rv = sub_push_all(ps, pi, IK_SUB_ON);
		if (rv == IOK_ENOTSUP) {
			return rv; /* e.g. RESP2: cannot carry our subscriptions */
		}
		if (rv == 0) {
			ps->subbed = pi;
		}
	}
	pi->prev = NULL;
	pi->next = ps->pipes;
	if (ps->pipes != NULL) {
		ps->pipes->prev = pi;
	}
	ps->pipes = pi;
	return 0;
}

static void
sub_pipe_rm(void *arg, void *pp)
{
	sub_sock *ps = arg;
	sub_pipe *pi = pp;
	if (pi->prev != NULL) {
		pi->prev->next = pi->next;
	} else {
		ps->pipes = pi->next;
	}
	if (pi->next != NULL) {
		pi->next->prev = pi->prev;
	}
	if (ps->subbed == pi) {
		/* A shared connection that goes on without us stops pushing
		 * (a closing one just fails to take the bytes). */
		(void) sub_push_all(ps, pi, 0);
		ps->subbed = NULL;
		sub_pick_subbed(ps);
	}
}

static int
sub_send(void *arg, iok_msg *m)
{
	(void) arg;
	iok_msg_free(m); /* unreachable: the core refuses sends on sub */
	return IK_OK;
}

static int
sub_recv(void *arg, void *pp, iok_msg *m)
{
	sub_sock *ps = arg;
	sub_pipe *pi = pp;
	/* Pushes were filtered by the server. */
	bool pushed = (m->flags & IK_MSG_PUSH) || (pi != NULL && pi->push);
	if (!ps->raw && !pushed && !sub_matches(ps, m->body, m->len)) {
		iok_msg_free(m);
		ps->filtered++;
		return IK_OK;
	}
	if (ps->prefnew) {
		ik_sock_deliver_drop_oldest(ps->sock, m);
		return IK_OK;
	}
	if (!pushed) {
		/* Keep the old: push back, so the publisher's per-subscriber
		 * queue drops instead (it never blocks) and nothing is read
		 * only to be thrown away here. */
		return ik_sock_deliver(ps->sock, m);
	}
	/* A shared connection also carries its owner's replies: never
	 * pause it, drop the new message instead. */
	if (ik_sock_deliver(ps->sock, m) == IK_BUSY) {
		iok_msg_free(m);
		ik_sock_stat(ps->sock, IK_STAT_RX_DROPPED, 1);
	}
	return IK_OK;
}

/* A topic from an option value: bytes as given, or a C string without its
 * terminating NUL. */
static int
topic_arg(const void *v, size_t sz, int type, const uint8_t **b, size_t *len)
{
	if (type != IK_OPT_BYTES && type != IK_OPT_STRING) {
		return IOK_EBADTYPE;
	}
	if (v == NULL && sz > 0) {
		return IOK_EINVAL;
	}
	if (type == IK_OPT_STRING && sz > 0 && ((const uint8_t *) v)[sz - 1] == '\0') {
		sz--;
	}
	*b   = v;
	*len = sz;
	return 0;
}

/* A subscription change, applied locally and, if a push pipe carries the
 * subscriptions, sent to its server; undone locally if the server side
 * refuses it. */
static int
sub_change(sub_sock *ps, int pattern, int on, const uint8_t *b, size_t len)
{
	int      rv;
	unsigned how = (on ? IK_SUB_ON : 0) | (pattern ? IK_SUB_PATTERN : 0);
	if (on) {
		rv = pattern ? topic_add(&ps->pats.v, &ps->pats.n, &ps->pats.cap, b, len)
		             : topic_add(&ps->all, &ps->nall, &ps->capall, b, len);
		if (rv == 1) {
			return 0; /* already subscribed: nothing to send */
		}
	} else {
		rv = pattern ? topic_del(ps->pats.v, &ps->pats.n, b, len)
		             : topic_del(ps->all, &ps->nall, b, len);
	}
	if (rv != 0) {
		return rv;
	}
	if (!pattern) {
		ps->dirty = 1;
	}
	if (ps->subbed == NULL) {
		sub_pick_subbed(ps); /* a push pipe that could not take them before */
		return 0;
	}
	if ((rv = ik_pipe_subscribe(ps->subbed->pipe, b, len, how)) != 0 && on) {
		(void) (pattern ? topic_del(ps->pats.v, &ps->pats.n, b, len)
		                : topic_del(ps->all, &ps->nall, b, len));
		return rv;
	}
	return 0;
}

static int
sub_setopt(void *arg, const char *name, const void *v, size_t sz, int type)
{
	sub_sock      *ps = arg;
	const uint8_t *b;
	size_t         len;
	int            rv, val, pattern, on;
	if (strcmp(name, IOK_OPT_SUB_PREFNEW) == 0) {
		if ((rv = ik_opt_get_bool(v, sz, type, &val)) == 0) {
			ps->prefnew = val;
		}
		return rv;
	}
	if (ps->raw) {
		return IOK_ENOTSUP; /* raw sub does not filter (nng's xsub) */
	}
	if (strcmp(name, IOK_OPT_SUB_SUBSCRIBE) == 0) {
		pattern = 0, on = 1;
	} else if (strcmp(name, IOK_OPT_SUB_UNSUBSCRIBE) == 0) {
		pattern = 0, on = 0;
	} else if (strcmp(name, IOK_OPT_SUB_PSUBSCRIBE) == 0) {
		pattern = 1, on = 1;
	} else if (strcmp(name, IOK_OPT_SUB_PUNSUBSCRIBE) == 0) {
		pattern = 1, on = 0;
	} else if (strcmp(name, OPT_SUB_FILTERED) == 0) {
		return IOK_EREADONLY;
	} else {
		return IOK_ENOTSUP;
	}
	if ((rv = topic_arg(v, sz, type, &b, &len)) != 0) {
		return rv;
	}
	return sub_change(ps, pattern, on, b, len);
}

static int
sub_getopt(void *arg, const char *name, void *v, size_t *sz, int type)
{
	sub_sock *ps = arg;
	if (strcmp(name, IOK_OPT_SUB_PREFNEW) == 0) {
		return ik_opt_put_bool(ps->prefnew, v, sz, type);
	}
	if (ps->raw) {
		return IOK_ENOTSUP;
	}
	if (strcmp(name, IOK_OPT_SUB_SUBSCRIBE) == 0 ||
	    strcmp(name, IOK_OPT_SUB_UNSUBSCRIBE) == 0 ||
	    strcmp(name, IOK_OPT_SUB_PSUBSCRIBE) == 0 ||
	    strcmp(name, IOK_OPT_SUB_PUNSUBSCRIBE) == 0) {
		return IOK_EWRITEONLY;
	}
	if (strcmp(name, OPT_SUB_FILTERED) == 0) {
		return ik_opt_put_uint64(ps->filtered, v, sz, type);
	}
	return IOK_ENOTSUP;
}

const ik_pattern ik_pattern_pub0 = {
	.name       = "pub0",
	.peer_name  = "sub0",
	.proto      = 0x20,
	.peer       = 0x21,
	.flags      = IK_PF_SEND | IK_PF_RAW,
	.sock_size  = sizeof(pub_sock),
	.pipe_size  = sizeof(pub_pipe),
	.init       = pub_init,
	.fini       = pub_fini,
	.pipe_add   = pub_pipe_add,
	.pipe_rm    = pub_pipe_rm,
	.send       = pub_send,
	.recv       = pub_recv,
	.pipe_ready = pub_pipe_ready,
	.setopt     = pub_setopt,
	.getopt     = pub_getopt,
};

const ik_pattern ik_pattern_sub0 = {
	.name      = "sub0",
	.peer_name = "pub0",
	.proto     = 0x21,
	.peer      = 0x20,
	.flags     = IK_PF_RECV | IK_PF_RAW,
	.sock_size = sizeof(sub_sock),
	.pipe_size = sizeof(sub_pipe),
	.init      = sub_init,
	.fini      = sub_fini,
	.pipe_add  = sub_pipe_add,
	.pipe_rm   = sub_pipe_rm,
	.send      = sub_send,
	.recv      = sub_recv,
	.setopt    = sub_setopt,
	.getopt    = sub_getopt,
};
