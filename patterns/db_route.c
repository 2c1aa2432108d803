/*
 * db_route.c - pipelined-db routing: which connection a request goes to,
 * and moving queued requests and waiting sessions onto connections as
 * they get room.  The other rules are at the top of db.c; the shared state
 * in db.h.
 *
 * Depth and spreading.  At most db:max-inflight requests (default 1024,
 * 1..65536) are in flight per connection.  A request goes to the connection
 * that costs least among those with room (not pinned, below the depth,
 * write queue below its high-water mark): requests in flight (plus one)
 * times the reply latency of its upstream (the address it connects to,
 * a moving average the kernel keeps), over the upstream's weight from
 * discovery; ties broken round-robin.  With one address that is simply
 * the fewest in flight; over several, a slow replica gets less.  Only
 * connections of the best rank the transport gives (ik_pipe_rank) among
 * those up are candidates: PostgreSQL's prefer-standby goes to a primary
 * only while no standby is up.  db:max-inflight-per-upstream (0: none)
 * bounds the requests in flight on all of one upstream's connections
 * together: routing passes over an upstream at its limit, and when every
 * one is, requests wait in the pending queue (db.c, Queueing;
 * stat:upstream-waits).
 * Connections of an upstream ejected by outlier detection (src/health.c)
 * get nothing new while any other connection is up; idle connections get
 * health probes (db_health.c), whose replies never reach the application.
 */
#include "db.h"

/* p's upstream has db:max-inflight-per-upstream requests in flight (a
 * pipe without an upstream, accepted, counts alone). */
static bool
up_full(const db_sock *s, const db_pipe *p)
{
	uint64_t n = ik_pipe_up_inflight(p->pipe);
	return s->max_up > 0 && (n > p->nfifo ? n : p->nfifo) >= (uint64_t) s->max_up;
}

bool
ik_db_room(const db_sock *s, const db_pipe *p)
{
	/* A draining connection takes only its pinned session's requests
	 * (a transaction cannot move). */
	return p->nfifo < (uint32_t) s->max_inflight && ik_pipe_writable(p->pipe) &&
	       (!p->draining || p->pinned != NULL) && !up_full(s, p);
}

/* What sending one more request on p costs: its requests in flight (this
 * one included) times its upstream's reply latency, over the upstream's
 * weight (Finagle's least-loaded, weighted by latency), as a fraction
 * num / den.  An upstream without a latency sample yet counts as fast, so
 * it gets traffic and a sample. */
static void
cost(const db_pipe *p, uint64_t *num, uint64_t *den)
{
	uint64_t lat = ik_pipe_latency_us(p->pipe);
	if (lat == 0) {
		lat = 1;
	}
	if (lat > 100000000) {
		lat = 100000000; /* keeps the products below 2^64 */
	}
	*num = ((uint64_t) p->nfifo + 1) * lat;
	*den = ik_pipe_weight(p->pipe);
}

/* The lowest rank (ik_pipe_rank) among the connections others may use
 * (passing over ejected ones while others are up: see pick): a server that
 * is only a fallback (prefer-standby's primary) is used while nothing
 * better is up, even when the better one is busy now. */
static unsigned
best_rank(db_sock *s, bool others)
{
	unsigned best = ~0u;
	for (int i = 0; i < s->pipes.n; i++) {
		db_pipe *p = ik_pipeset_at(&s->pipes, i);
		unsigned r;
		if (p->pinned == NULL && !p->draining && !(others && ik_pipe_ejected(p->pipe)) &&
		    (r = ik_pipe_rank(p->pipe)) < best) {
			best = r;
		}
	}
	return best;
}

/* The unpinned connection of the best rank with room that costs least
 * (see cost(): with one upstream, the fewest in flight); ties go
 * round-robin.  Connections of ejected upstreams (outlier detection) are
 * passed over while any other connection is up at all.  NULL if none; then
 * s->up_limited says whether per-upstream limits were why. */
db_pipe *
ik_db_pick_free(db_sock *s)
{
	db_pipe *best = NULL;
	int      bk   = 0;
	uint64_t bn = 0, bd = 1;
	bool     others = false, limited = false;
	for (int i = 0; i < s->pipes.n; i++) {
		if (!ik_pipe_ejected(((db_pipe *) ik_pipeset_at(&s->pipes, i))->pipe)) {
			others = true; /* somewhere to go without the ejected */
			break;
		}
	}
	unsigned rank = best_rank(s, others);
	for (int i = 0; i < s->pipes.n; i++) {
		int      k = (s->pipes.next + i) % s->pipes.n;
		db_pipe *p = ik_pipeset_at(&s->pipes, k);
		uint64_t n, d;
		if (p->pinned != NULL || (others && ik_pipe_ejected(p->pipe)) ||
		    ik_pipe_rank(p->pipe) != rank) {
			continue;
		}
		if (!ik_db_room(s, p)) {
			limited |= up_full(s, p);
			continue;
		}
		cost(p, &n, &d);
		if (best == NULL || n * bd < bn * d) {
			best = p;
			bk   = k;
			bn   = n;
			bd   = d;
		}
	}
	if (best != NULL) {
		s->pipes.next = (bk + 1) % s->pipes.n;
	}
	s->up_limited = best == NULL && limited;
	return best;
}

/* May send() refuse now without risking a deadlock?  Only if the queue
 * drains by itself: some connection is not pinned, or none is. */
bool
ik_db_can_refuse(const db_sock *s)
{
	return !s->draining && (s->npinned == 0 || s->npinned < s->pipes.n);
}

/* Move whatever can move.  Not re-entered: a nested call asks the
 * running one to loop again. */
void
ik_db_dispatch(db_sock *s)
{
	if (s->dispatching) {
		s->again = true;
		return;
	}
	s->dispatching = true;
	do {
		s->again = false;
		for (int i = 0; i < s->pipes.n; i++) {
			db_pipe *p = ik_pipeset_at(&s->pipes, i);
			if (p->pinned != NULL && p->pinned->nqueue > 0) {
				ik_db_sess_flush(s, p->pinned);
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
			if ((p = ik_db_pick_free(s)) == NULL) {
				break;
			}
			db_req *bfirst =
			    b ? ik_container_of(ik_list_first(&b->queue), db_req, qnode) : NULL;
			if (b != NULL && (a == NULL || bfirst->seq < a->seq)) {
				ik_db_sess_pin(s, b, p);
				ik_db_sess_flush(s, b);
			} else {
				ik_list_remove(&a->qnode);
				s->npending--;
				s->nglobal--;
				s->nqueued--;
				ik_db_transmit(s, p, a);
			}
		}
	} while (s->again);
	s->dispatching = false;
}
