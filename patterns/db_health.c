/*
 * db_health.c - pipelined-db's active health checks of idle connections.
 *
 * A connection with nothing in flight that has received nothing for
 * health:interval gets the transport's probe (ik_pipe_probe: Redis PING,
 * PostgreSQL an empty query).  The probe is the pattern's own request:
 * it is sent only when the FIFO is empty, so it is ahead of every request
 * sent after it and the next reply on the connection is its answer, which
 * is consumed here and never delivered.  No answer within health:timeout
 * closes the connection with IOK_ETIMEDOUT (ik_pipe_probe_timeout):
 * requests written behind the probe then fail or are retried as for any
 * lost connection, and the upstream counts an error (outlier ejection).
 * A connection pinned by a session (a transaction may be open), draining,
 * or busy is not probed: with requests in flight, req:timeout watches
 * them.  One timer per connection, re-armed from the last reply, so
 * traffic costs a timestamp per reply and nothing else.
 */
#include "db.h"

static void
arm(db_pipe *p, uint64_t ms)
{
	if (p->health != NULL) {
		ik_timer_start(p->health, ms);
	}
}

static void
health_cb(void *arg)
{
	db_pipe *p   = arg;
	uint64_t now = ik_now_ms(), ivl, to;

	if (p->closed) {
		return;
	}
	ik_pipe_health_ms(p->pipe, &ivl, &to);
	if (p->probe_out) {
		uint64_t waited = now - p->probe_ms;
		if (waited >= to) {
			ik_pipe_probe_timeout(p->pipe); /* pipe_rm follows */
		} else {
			arm(p, to - waited);
		}
		return;
	}
	if (ivl == 0) {
		return; /* turned off: the next connection reads it again */
	}
	if (now - p->last_ms < ivl) {
		arm(p, ivl - (now - p->last_ms));
		return;
	}
	if (p->nfifo > 0 || p->pinned != NULL || p->draining || !ik_pipe_writable(p->pipe)) {
		arm(p, ivl); /* busy or not ours to touch: look again later */
		return;
	}
	if (ik_pipe_probe(p->pipe) != 0) {
		return; /* no probe for this transport, or the pipe is closing */
	}
	p->probe_out = true;
	p->probe_ms  = now;
	arm(p, to);
}

void
ik_db_health_start(db_pipe *p)
{
	uint64_t ivl, to;
	p->probe_out = false;
	p->last_ms   = ik_now_ms();
	ik_pipe_health_ms(p->pipe, &ivl, &to);
	if (ivl > 0 && (p->health = ik_timer_new(health_cb, p)) != NULL) {
		arm(p, ivl);
	}
}

void
ik_db_health_stop(db_pipe *p)
{
	ik_timer_free(p->health);
	p->health    = NULL;
	p->probe_out = false;
}

bool
ik_db_health_reply(db_sock *s, db_pipe *p, iok_msg *m)
{
	uint64_t ivl, to;
	p->last_ms = ik_now_ms();
	if (!p->probe_out) {
		return false;
	}
	p->probe_out = false;
	if (ik_pipe_probe_answer(p->pipe, m) != 0) {
		ik_sock_stat(s->sock, IK_STAT_PROTO_ERRORS, 1);
		ik_pipe_close(p->pipe, IOK_EPROTO);
		return true;
	}
	ik_pipe_health_ms(p->pipe, &ivl, &to);
	if (ivl > 0) {
		arm(p, ivl);
	}
	return true;
}
