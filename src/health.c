/*
 * health.c - upstream health: passive outlier ejection (Envoy's
 * consecutive errors), the per-upstream in-flight count pipelined-db
 * limits, and the pattern services behind active health checks.
 *
 * An upstream (one address of a dialer's target) collects
 * connection-level errors: failed connects and handshakes, connections
 * the peer reset or closed, probe timeouts, protocol errors (never a
 * server's error reply: the server answered).  health:eject-errors of
 * them in a row eject it from routing for health:eject-ms, doubled for
 * each ejection that follows without a reply in between (capped); its
 * connections stay and reconnect, but the pattern routes nothing new to
 * them until the ejection ends.  The last upstream with a live connection
 * is never ejected (Envoy's max ejection percent, kept to "at least
 * one"): its count stays, and the next error looks again.  Kernel thread.
 */
#include <stdio.h>
#include <stdlib.h>

#include "ep.h"
#include "pipe.h"

#define EJECT_CAP_MS 300000 /* Envoy's max_ejection_time default */

static bool
ejected(const ik_upstream *up)
{
	return up != NULL && up->ejected_until != 0;
}

/* Would routing still have somewhere to go without up: a connection of
 * the socket, past its handshake, that is not up's and not ejected. */
static bool
others_live(const ik_upstream *up)
{
	ik_sock *s = up->ep->sock;
	for (ik_node *n = ik_list_first(&s->eps); n != NULL; n = ik_list_next(&s->eps, n)) {
		ik_ep *ep = ik_container_of(n, ik_ep, snode);
		for (ik_node *m = ik_list_first(&ep->pipes); m != NULL;
		     m          = ik_list_next(&ep->pipes, m)) {
			const ik_pipe *p = ik_container_of(m, ik_pipe, enode);
			if (p->state == IK_PIPE_ACTIVE && p->up != up && !ejected(p->up) &&
			    !(p->up != NULL && p->up->removed)) {
				return true;
			}
		}
	}
	return false;
}

/* The ejection ended: the pattern may route there again, so tell it as
 * if each connection had just become writable. */
static void
eject_end_cb(void *arg)
{
	ik_upstream *up   = arg;
	ik_ep       *ep   = up->ep;
	up->ejected_until = 0;
	for (ik_node *n = ik_list_first(&ep->pipes); n != NULL; n = ik_list_next(&ep->pipes, n)) {
		ik_pipe *p = ik_container_of(n, ik_pipe, enode);
		ik_att  *a = &p->att[IK_ATT_OWNER];
		if (p->up == up && p->state == IK_PIPE_ACTIVE && a->added &&
		    a->sock->pat->pipe_ready != NULL) {
			a->sock->pat->pipe_ready(a->sock->pdata, a->pdata);
		}
	}
	ik_sock_pump(ep->sock);
}

static void
eject(ik_upstream *up)
{
	ik_ep   *ep  = up->ep;
	uint64_t ms  = (uint64_t) ep->topts.eject_ms;
	uint64_t cap = ms > EJECT_CAP_MS ? ms : EJECT_CAP_MS;
	for (uint32_t i = 0; i < up->eject_level && ms < cap; i++) {
		ms *= 2;
	}
	ms = ms > cap ? cap : ms;
	if (up->eject_timer == NULL && (up->eject_timer = ik_timer_new(eject_end_cb, up)) == NULL) {
		return; /* without a timer it could never come back */
	}
	up->eject_level++;
	up->ejections++;
	up->consec_errors = 0;
	up->ejected_until = ik_now_ms() + ms;
	ep->sock->stats[IK_STAT_EJECTIONS]++;
	ik_timer_start(up->eject_timer, ms);
}

void
ik_upstream_error(ik_upstream *up, int err)
{
	int limit = up->ep->topts.eject_errors;
	(void) err;
	up->consec_errors++;
	if (limit > 0 && !ejected(up) && !up->removed && up->consec_errors >= (uint32_t) limit &&
	    others_live(up)) {
		eject(up);
	}
}

void
ik_upstream_ok(ik_upstream *up)
{
	up->consec_errors = 0;
	if (!ejected(up)) {
		/* Answers while ejected are probes of idle connections: they
		 * do not make a repeat offender's next ejection shorter. */
		up->eject_level = 0;
	}
}

void
ik_upstream_health_fini(ik_upstream *up)
{
	ik_timer_free(up->eject_timer);
	up->eject_timer = NULL;
}

void
ik_upstream_health_fork(ik_upstream *up)
{
	if (up->eject_timer != NULL) {
		ik_timer_stop(up->eject_timer);
	}
	up->ejected_until = 0;
	up->consec_errors = 0;
	up->eject_level   = 0;
	up->inflight      = 0;
}

int
ik_upstream_health_text(const ik_upstream *up, char *buf, size_t cap)
{
	uint64_t now  = ik_now_ms();
	uint64_t left = ejected(up) && up->ejected_until > now ? up->ejected_until - now : 0;
	return snprintf(buf, cap,
	    " inflight=%llu health=%s consec-errors=%u ejections=%llu probe-timeouts=%llu "
	    "eject-ms-left=%llu",
	    (unsigned long long) up->inflight, ejected(up) ? "ejected" : "ok", up->consec_errors,
	    (unsigned long long) up->ejections, (unsigned long long) up->probe_timeouts,
	    (unsigned long long) left);
}

/* ------------------------------------------------- pattern services */

void
ik_pipe_health_ms(const ik_pipe *p, uint64_t *interval, uint64_t *timeout)
{
	const ik_tran_opts *o = &p->ep->topts;
	*interval             = o->health_ivl > 0 ? (uint64_t) o->health_ivl : 0;
	*timeout              = o->health_timeo > 0 ? (uint64_t) o->health_timeo : 1;
}

void
ik_pipe_probe_timeout(ik_pipe *p)
{
	p->sock->stats[IK_STAT_PROBE_TIMEOUTS]++;
	if (p->up != NULL) {
		p->up->probe_timeouts++;
	}
	/* Counted as the upstream's error when the pipe is gone (dialer.c). */
	ik_pipe_close(p, IOK_ETIMEDOUT);
}

bool
ik_pipe_ejected(const ik_pipe *p)
{
	return ejected(p->up);
}

void
ik_pipe_inflight_add(ik_pipe *p, int delta)
{
	if (p->up == NULL) {
		return;
	}
	if (delta < 0 && p->up->inflight < (uint64_t) -delta) {
		p->up->inflight = 0;
	} else {
		p->up->inflight += (uint64_t) (int64_t) delta;
	}
}

uint64_t
ik_pipe_up_inflight(const ik_pipe *p)
{
	return p->up != NULL ? p->up->inflight : 0;
}
