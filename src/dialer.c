/*
 * dialer.c - dialers (see ep.h).
 *
 * A dialer follows its target's set of addresses, which discovery
 * (src/discovery) keeps current: one upstream per address, each kept at
 * IOK_OPT_POOL_SIZE connections.  An address that appears is dialled; one
 * that leaves has its connections closed (their requests fail or are
 * retried by the pattern, never dropped silently).  Each upstream
 * reconnects on its own, after a backoff that doubles from
 * reconnect-time-min up to reconnect-time-max, and a failed connection
 * makes discovery look again at once.  ipc and inproc dialers have one
 * upstream, their path.  Kernel thread, except the public functions at
 * the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include "discovery/discovery.h"
#include "ep.h"
#include "pipe.h"

static ik_list inproc_waiting = { { &inproc_waiting.head, &inproc_waiting.head } };

static void up_kick(ik_upstream *up);

/* ----------------------------------------------------------- upstreams */

static void up_close_pipes(ik_upstream *up, int err);

/* One timer per upstream: the backoff before the next attempt, the
 * connect's bound while one is under way, the drain's bound once removed. */
static void
up_retry_cb(void *arg)
{
	ik_upstream *up = arg;
	if (up->connecting) {
		/* The connect outlasted IOK_OPT_CONNECT_TIMEOUT (a blackholed
		 * address): cancel it; connect_cb reports IOK_ETIMEDOUT. */
		if (up->conn_pipe != NULL && !uv_is_closing(&up->conn_pipe->h.handle)) {
			up->conn_timed_out = true;
			ik_pipe_discard(up->conn_pipe);
		}
		return;
	}
	if (up->removed) {
		up_close_pipes(up, IOK_ECONNSHUT); /* the drain took too long */
		return;
	}
	up_kick(up);
}

static ik_upstream *
up_new(ik_ep *ep, const ik_disc_entry *e)
{
	ik_upstream *up = calloc(1, sizeof(*up));
	if (up == NULL || (up->timer = ik_timer_new(up_retry_cb, up)) == NULL) {
		free(up);
		return NULL;
	}
	up->ep      = ep;
	up->backoff = ep->topts.reconn_min;
	up->weight  = 1; /* a path: its only upstream */
	if (e != NULL) {
		up->sa     = e->sa;
		up->weight = e->weight;
	}
	ik_list_append(&ep->ups, &up->node);
	return up;
}

static void
up_maybe_free(ik_upstream *up)
{
	if (!up->removed || up->connecting || up->refs > 0) {
		return;
	}
	ik_list_remove(&up->node);
	ik_timer_free(up->timer);
	ik_upstream_health_fini(up);
	free(up->xs);
	free(up);
}

/* Pipes of up not closing (handshaking ones too: they fill the pool), or
 * only those past their handshake. */
static int
up_count(const ik_upstream *up, bool active_only)
{
	const ik_ep *ep   = up->ep;
	int          live = 0;
	for (ik_node *n = ik_list_first(&ep->pipes); n != NULL; n = ik_list_next(&ep->pipes, n)) {
		const ik_pipe *p = ik_container_of(n, ik_pipe, enode);
		if (p->state != IK_PIPE_CLOSING && !p->dialing && (p->up == up || p->up == NULL) &&
		    (!active_only || p->state == IK_PIPE_ACTIVE)) {
			live++;
		}
	}
	return live;
}

static int
up_live(const ik_upstream *up)
{
	return up_count(up, false);
}

/* The upstream a dialer's pipe belongs to (inproc pairs are made without
 * one: their dialer has a single upstream). */
static ik_upstream *
pipe_upstream(ik_ep *ep, ik_pipe *p)
{
	if (p->up != NULL || !ep->dialer || ik_list_empty(&ep->ups)) {
		return p->up;
	}
	return ik_container_of(ik_list_first(&ep->ups), ik_upstream, node);
}

static void
schedule_retry(ik_upstream *up)
{
	ik_ep       *ep    = up->ep;
	iok_duration delay = up->backoff;
	if (ep->closing || up->removed) {
		return;
	}
	if (delay < ep->topts.reconn_min) {
		delay = ep->topts.reconn_min;
	}
	if (ep->topts.reconn_max > 0 && delay > ep->topts.reconn_max) {
		delay = ep->topts.reconn_max;
	}
	/* Double for next time: a dead peer never sees a hot loop. */
	up->backoff = delay * 2;
	if (ep->topts.reconn_max > 0 && up->backoff > ep->topts.reconn_max) {
		up->backoff = ep->topts.reconn_max;
	}
	if (ep->topts.reconn_max == 0) {
		up->backoff = delay; /* no maximum: stay at the minimum */
	}
	ik_timer_start(up->timer, (uint64_t) delay);
}

/* A synchronous start hears of a failure only once nothing is left
 * trying: another address may still answer. */
static void
answer_start_failed(ik_ep *ep, int err)
{
	if (ep->start_cmd == NULL) {
		return;
	}
	for (ik_node *n = ik_list_first(&ep->ups); n != NULL; n = ik_list_next(&ep->ups, n)) {
		ik_upstream *u = ik_container_of(n, ik_upstream, node);
		if (!u->removed && (u->connecting || up_live(u) > 0)) {
			return;
		}
	}
	ik_cmd_done(ep->start_cmd, err);
	ep->start_cmd = NULL;
}

static void
up_failed(ik_upstream *up, int err)
{
	ik_ep   *ep  = up->ep;
	ik_sock *s   = ep->sock;
	ep->last_err = err;
	up->failing  = true;
	up->errors++;
	if (err != IOK_ESTATE && err != IOK_ENOMEM) {
		/* Not a server in the wrong role (?role=), nor our memory. */
		ik_upstream_error(up, err);
	}
	answer_start_failed(ep, err);
	if (strcmp(ep->tran->scheme, "inproc") == 0 && !ik_node_linked(&ep->inproc_node)) {
		/* Woken as soon as a listener takes the name. */
		ik_list_append(&inproc_waiting, &ep->inproc_node);
	}
	if (ep->disc != NULL) {
		ik_disc_refresh(ep->disc); /* the service may have moved */
	}
	schedule_retry(up);
	if (!s->closing && s->pat->dial_failed != NULL) {
		s->pat->dial_failed(s->pdata, err);
	}
	ik_sock_linger_check(s);
}

static void
connect_cb(uv_connect_t *req, int status)
{
	ik_upstream *up        = req->data;
	ik_ep       *ep        = up->ep;
	ik_pipe     *p         = up->conn_pipe;
	bool         cancelled = uv_is_closing(&p->h.handle);
	bool         timed_out = up->conn_timed_out;
	up->conn_pipe          = NULL;
	up->connecting         = false;
	up->conn_timed_out     = false;
	p->dialing             = false;
	ik_timer_stop(up->timer); /* the connect's bound */
	if (ep->closing || up->removed) {
		if (!cancelled) {
			ik_pipe_discard(p);
		}
		up_maybe_free(up);
		ik_ep_maybe_finish(ep);
		return;
	}
	if (cancelled && !timed_out) {
		/* Abandoned after a fork: the attempt was the parent's too. */
		up_kick(up);
		return;
	}
	if (status < 0 || timed_out) {
		if (!cancelled) {
			ik_pipe_discard(p);
		}
		up_failed(up, timed_out ? IOK_ETIMEDOUT : ik_uv_err(status));
		return;
	}
	up->connects++;
	up->connect_us = (uv_hrtime() - up->t_start) / 1000;
	ik_pipe_begin(p);
}

static void
dial_stream(ik_upstream *up)
{
	ik_ep   *ep  = up->ep;
	bool     tcp = ep->tran->addr != IK_ADDR_UNIX;
	ik_pipe *p   = ik_pipe_new_stream(ep->sock, ep, tcp);
	int      rv  = 0;
	if (p == NULL) {
		up_failed(up, IOK_ENOMEM);
		return;
	}
	p->up = up;
	up->refs++;
	up->conn_pipe  = p;
	up->connecting = true;
	p->dialing     = true;
	up->creq.data  = up;
	up->t_start    = uv_hrtime();
	if (tcp) {
		rv = uv_tcp_connect(
		    &up->creq, &p->h.tcp, (const struct sockaddr *) &up->sa, connect_cb);
	} else {
		uv_pipe_connect(&up->creq, &p->h.unix_pipe, ep->url.path, connect_cb);
	}
	if (rv != 0) {
		up->conn_pipe  = NULL;
		up->connecting = false;
		p->dialing     = false;
		ik_pipe_discard(p);
		up_failed(up, ik_uv_err(rv));
		return;
	}
	if (ep->topts.conn_timeo > 0) {
		ik_timer_start(up->timer, (uint64_t) ep->topts.conn_timeo);
	}
}

static void
dial_inproc(ik_upstream *up)
{
	ik_ep *ep  = up->ep;
	ik_ep *lep = ik_inproc_find(ep->url.path);
	int    rv;
	if (lep == NULL) {
		up_failed(up, IOK_ECONNREFUSED);
		return;
	}
	if ((rv = ik_pipe_inproc_pair(ep->sock, ep, lep->sock, lep)) != 0) {
		up_failed(up, rv);
	}
}

/* Start a connection attempt unless one is under way or the pool is
 * full. */
static void
up_kick(ik_upstream *up)
{
	ik_ep *ep = up->ep;
	if (ep->closing || up->removed || up->connecting || !ep->started || ep->dormant) {
		return;
	}
	if (up_live(up) >= ep->topts.pool) {
		return;
	}
	ik_timer_stop(up->timer);
	if (ik_node_linked(&ep->inproc_node)) {
		ik_list_remove(&ep->inproc_node);
	}
	if (ep->tran->addr == IK_ADDR_NONE) {
		dial_inproc(up);
	} else {
		dial_stream(up);
	}
}

static void
up_close_pipes(ik_upstream *up, int err)
{
	ik_node *n, *tmp;
	ik_list_foreach_safe(&up->ep->pipes, n, tmp)
	{
		ik_pipe *p = ik_container_of(n, ik_pipe, enode);
		if (p->up == up && !p->dialing && p->state != IK_PIPE_CLOSING) {
			ik_pipe_close(p, err);
		}
	}
}

/* The address left the set: no new connections.  A pattern that can
 * drain (pipelined-db) lets the requests in flight there finish and then
 * closes the connection; other connections close now, and their pattern
 * resends (req) or fails what was in flight.  Nothing is dropped
 * silently either way. */
static void
up_remove(ik_upstream *up, int err)
{
	ik_ep   *ep = up->ep;
	ik_node *n, *tmp;
	bool     draining = false;
	up->removed       = true;
	ik_timer_stop(up->timer);
	if (up->connecting && up->conn_pipe != NULL && !uv_is_closing(&up->conn_pipe->h.handle)) {
		ik_pipe_discard(up->conn_pipe); /* connect_cb sees it cancelled */
	}
	ik_list_foreach_safe(&ep->pipes, n, tmp)
	{
		ik_pipe *p = ik_container_of(n, ik_pipe, enode);
		ik_att  *a = &p->att[IK_ATT_OWNER];
		if (p->up != up || p->dialing || p->state == IK_PIPE_CLOSING) {
			continue;
		}
		if (p->state == IK_PIPE_ACTIVE && a->added && a->sock->pat->pipe_drain != NULL) {
			draining = true;
			a->sock->pat->pipe_drain(a->sock->pdata, a->pdata);
		} else {
			ik_pipe_close(p, err);
		}
	}
	if (draining) {
		ik_timer_start(up->timer, IK_DRAIN_MAX_MS);
	}
	up_maybe_free(up);
}

/* --------------------------------------------------------- discovery */

static void
set_changed(void *arg, int err, const ik_disc_entry *set, int n)
{
	ik_ep   *ep = arg;
	ik_node *node, *tmp;
	bool     seen[IK_DISC_MAX] = { false };

	if (err != 0) {
		ep->last_err = err; /* nothing known yet; discovery retries */
		answer_start_failed(ep, err);
		return;
	}
	ik_list_foreach_safe(&ep->ups, node, tmp)
	{
		ik_upstream *up    = ik_container_of(node, ik_upstream, node);
		bool         found = false;
		if (up->removed) {
			continue;
		}
		for (int i = 0; i < n && !found; i++) {
			if (memcmp(&set[i].sa, &up->sa, sizeof(up->sa)) == 0) {
				found      = true;
				seen[i]    = true;
				up->weight = set[i].weight;
			}
		}
		if (!found) {
			up_remove(up, IOK_ECONNSHUT);
		}
	}
	for (int i = 0; i < n; i++) {
		ik_upstream *up;
		if (!seen[i] && (up = up_new(ep, &set[i])) != NULL) {
			up_kick(up);
		}
	}
	if (n == 0) {
		answer_start_failed(ep, IOK_EADDRINVAL);
	}
}

static int
start_discovery(ik_ep *ep)
{
	ik_disc_params p = {
		.backend     = ep->disc_backend,
		.target      = ep->disc_target,
		.def_port    = ep->tran->def_port,
		.family      = ik_ep_family(ep),
		.ttl_min     = ep->topts.ttl_min,
		.ttl_max     = ep->topts.ttl_max,
		.dns_servers = ep->topts.dns_servers,
	};
	return ik_disc_start(&ep->disc, &p, set_changed, ep);
}

/* Connect whatever is missing: start discovery the first time, then top
 * up every upstream's pool. */
void
ik_dialer_kick(ik_ep *ep)
{
	ik_node *n, *tmp;
	int      rv;
	if (ep->closing || !ep->started || ep->dormant) {
		return;
	}
	if (ep->tran->addr == IK_ADDR_NONE || ep->tran->addr == IK_ADDR_UNIX) {
		if (ik_list_empty(&ep->ups) && up_new(ep, NULL) == NULL) {
			ep->last_err = IOK_ENOMEM;
			answer_start_failed(ep, IOK_ENOMEM);
			return;
		}
	} else if (ep->disc == NULL) {
		if ((rv = start_discovery(ep)) != 0) {
			ep->last_err = rv;
			answer_start_failed(ep, rv);
			return;
		}
	}
	ik_list_foreach_safe(&ep->ups, n, tmp)
	{
		up_kick(ik_container_of(n, ik_upstream, node));
	}
}

void
ik_dialer_close(ik_ep *ep)
{
	ik_node *n, *tmp;
	ik_disc_stop(ep->disc);
	ep->disc = NULL;
	ik_list_foreach_safe(&ep->ups, n, tmp)
	{
		ik_upstream *up = ik_container_of(n, ik_upstream, node);
		up->removed     = true;
		ik_timer_stop(up->timer);
		if (up->connecting && up->conn_pipe != NULL &&
		    !uv_is_closing(&up->conn_pipe->h.handle)) {
			ik_pipe_discard(up->conn_pipe); /* connect_cb runs with UV_ECANCELED */
		}
		up_maybe_free(up);
	}
}

void
ik_dialer_fork_child(ik_ep *ep)
{
	ik_node *n;
	/* The resolver's sockets were the parent's: look again when woken. */
	ik_disc_stop(ep->disc);
	ep->disc = NULL;
	for (n = ik_list_first(&ep->ups); n != NULL; n = ik_list_next(&ep->ups, n)) {
		ik_upstream *up = ik_container_of(n, ik_upstream, node);
		ik_timer_stop(up->timer);
		ik_upstream_health_fork(up);
		if (up->connecting && up->conn_pipe != NULL &&
		    !uv_is_closing(&up->conn_pipe->h.handle)) {
			ik_pipe_discard(up->conn_pipe); /* connect_cb sees it closing */
		}
		up->backoff = ep->topts.reconn_min;
	}
}

void
ik_upstream_addr(const ik_upstream *up, char *buf, size_t cap)
{
	char     host[INET6_ADDRSTRLEN + 2] = "";
	unsigned port                       = 0;
	if (up->sa.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *) &up->sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
	} else if (up->sa.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) &up->sa;
		host[0]                        = '[';
		inet_ntop(AF_INET6, &in6->sin6_addr, host + 1, sizeof(host) - 2);
		strcat(host, "]");
		port = ntohs(in6->sin6_port);
	} else {
		/* ipc and inproc: the path is the address. */
		snprintf(buf, cap, "%s", up->ep->url.path != NULL ? up->ep->url.path : "?");
		return;
	}
	snprintf(buf, cap, "%s:%u", host, port);
}

bool
ik_upstream_listed(const ik_upstream *up)
{
	return !(up->removed && (up->ep->closing || up_live(up) == 0));
}

int
ik_upstream_pipes(const ik_upstream *up)
{
	return up_count(up, true);
}

int
ik_dialer_upstreams(const ik_ep *ep, char *buf, size_t cap)
{
	size_t off = 0;
	buf[0]     = '\0';
	for (ik_node *n = ik_list_first(&ep->ups); n != NULL; n = ik_list_next(&ep->ups, n)) {
		const ik_upstream *up = ik_container_of(n, ik_upstream, node);
		char               addr[INET6_ADDRSTRLEN + 16];
		if (!ik_upstream_listed(up)) {
			continue;
		}
		ik_upstream_addr(up, addr, sizeof(addr));
		int w = snprintf(buf + off, cap - off,
		    "%s state=%s weight=%u pipes=%d connects=%llu errors=%llu drops=%llu "
		    "connect-us=%llu "
		    "replies=%llu latency-us=%llu\n",
		    addr, up->removed ? "draining" : "live", up->weight, up_count(up, true),
		    (unsigned long long) up->connects, (unsigned long long) up->errors,
		    (unsigned long long) up->drops, (unsigned long long) up->connect_us,
		    (unsigned long long) up->replies, (unsigned long long) up->latency_us);
		if (w < 0 || (size_t) w >= cap - off) {
			return IOK_ENOSPC;
		}
		off += (size_t) w - 1; /* over the newline */
		w = ik_upstream_health_text(up, buf + off, cap - off);
		if (w < 0 || (size_t) w + 1 >= cap - off) {
			return IOK_ENOSPC;
		}
		off += (size_t) w;
		buf[off++] = '\n';
		buf[off]   = '\0';
	}
	return 0;
}

/* ------------------------------------------------ upstream statistics */

void
ik_pipe_note_reply(ik_pipe *p, uint64_t latency_us)
{
	ik_upstream *up = p->up;
	if (up == NULL) {
		return;
	}
	up->replies++;
	ik_upstream_ok(up);
	if (up->latency_us == 0) {
		up->latency_us = latency_us > 0 ? latency_us : 1;
	} else {
		/* An average over the last few replies (1/8 each): follows a
		 * replica getting slower within tens of requests. */
		int64_t d      = (int64_t) latency_us - (int64_t) up->latency_us;
		up->latency_us = (uint64_t) ((int64_t) up->latency_us + d / 8);
		if (up->latency_us == 0) {
			up->latency_us = 1;
		}
	}
}

uint64_t
ik_pipe_latency_us(const ik_pipe *p)
{
	return p->up != NULL ? p->up->latency_us : 0;
}

unsigned
ik_pipe_weight(const ik_pipe *p)
{
	return p->up != NULL && p->up->weight > 0 ? p->up->weight : 1;
}

bool
ik_dialer_trying(const ik_ep *ep)
{
	bool known = false;
	for (ik_node *n = ik_list_first(&ep->ups); n != NULL; n = ik_list_next(&ep->ups, n)) {
		const ik_upstream *up = ik_container_of(n, ik_upstream, node);
		if (!up->removed) {
			known = true;
			if (up->connecting) {
				return true;
			}
		}
	}
	return ep->started && !known && ep->last_err == 0;
}

/* A dialer is failing when it has no connection past its handshake and
 * every address it knows failed its last attempt (or, knowing none yet,
 * the look-up itself failed). */
static bool
dialer_failing(const ik_ep *ep)
{
	bool any = false;
	for (ik_node *n = ik_list_first(&ep->pipes); n != NULL; n = ik_list_next(&ep->pipes, n)) {
		if (ik_container_of(n, ik_pipe, enode)->state == IK_PIPE_ACTIVE) {
			return false;
		}
	}
	for (ik_node *n = ik_list_first(&ep->ups); n != NULL; n = ik_list_next(&ep->ups, n)) {
		const ik_upstream *up = ik_container_of(n, ik_upstream, node);
		if (up->removed) {
			continue;
		}
		if (!up->failing) {
			return false;
		}
		any = true;
	}
	return any || ep->last_err != 0;
}

int
ik_sock_connect_error(ik_sock *s)
{
	int err = 0;
	for (ik_node *n = ik_list_first(&s->eps); n != NULL; n = ik_list_next(&s->eps, n)) {
		ik_ep *ep = ik_container_of(n, ik_ep, snode);
		if (ep->closing) {
			continue;
		}
		if (!ep->dialer || !dialer_failing(ep)) {
			return 0;
		}
		err = ep->last_err;
	}
	return err;
}

/* --------------------------------------------------- pipe notifications */

void
ik_ep_pipe_up(ik_ep *ep, ik_pipe *p)
{
	ik_upstream *up;
	if (!ep->dialer || (up = pipe_upstream(ep, p)) == NULL) {
		return;
	}
	up->backoff = ep->topts.reconn_min;
	up->failing = false;
	/* A reconnect replaces a connection this upstream lost: not another
	 * address's first connection, nor a pool's next one. */
	if (up->unreplaced > 0) {
		up->unreplaced--;
		ep->sock->stats[IK_STAT_RECONNECTS]++;
		ep->reconnects++;
	}
	if (ep->start_cmd != NULL) {
		ik_cmd_done(ep->start_cmd, 0);
		ep->start_cmd = NULL;
	}
	up_kick(up); /* the next connection of the pool */
}

void
ik_ep_pipe_gone(ik_ep *ep, ik_pipe *p)
{
	ik_upstream *up = pipe_upstream(ep, p);
	if (p->up != NULL) {
		p->up->refs--;
	}
	if (up != NULL && up->removed) {
		up_maybe_free(up); /* its last pipe may be this one */
		ik_ep_maybe_finish(ep);
		return;
	}
	if (ep->closing) {
		ik_ep_maybe_finish(ep);
		return;
	}
	if (!ep->dialer || up == NULL || p == up->conn_pipe || (!p->begun && p->is_stream)) {
		return; /* a failed connect is handled by connect_cb */
	}
	if (!p->ever_active) {
		/* Handshake failed or the pattern refused: back off. */
		up_failed(up, p->close_err ? p->close_err : IOK_ECONNREFUSED);
	} else {
		/* Lost an established connection: reconnect after the minimum
		 * delay, doubling if it keeps failing, and look the name up
		 * again (the service may have moved). */
		up->drops++;
		up->unreplaced++;
		if (p->peer_closed || p->close_err == IOK_ECONNRESET ||
		    p->close_err == IOK_ETIMEDOUT || p->close_err == IOK_EPROTO) {
			/* Lost by the peer, a probe or the stream (not closed by
			 * us, e.g. drained or a demoted server's last reply). */
			ik_upstream_error(up, p->close_err);
		}
		if (ep->disc != NULL) {
			ik_disc_refresh(ep->disc);
		}
		schedule_retry(up);
	}
}

/* A listener took the name: inproc dialers waiting for it retry at once. */
void
ik_inproc_wake_dialers(const char *name)
{
	ik_node *n, *tmp, *un;
	ik_list_foreach_safe(&inproc_waiting, n, tmp)
	{
		ik_ep *d = ik_container_of(n, ik_ep, inproc_node);
		if (strcmp(d->url.path, name) == 0) {
			ik_list_remove(n);
			for (un = ik_list_first(&d->ups); un != NULL;
			     un = ik_list_next(&d->ups, un)) {
				ik_timer_start(ik_container_of(un, ik_upstream, node)->timer, 0);
			}
		}
	}
}

/* --------------------------------------------------------- public API */

int
iok_dialer_create(iok_dialer *dp, iok_socket s, const char *url)
{
	ik_ep *ep;
	int    rv;
	if (dp == NULL) {
		return IOK_EINVAL;
	}
	dp->id = 0;
	if ((rv = ik_ep_create(&ep, s, url, true)) == 0) {
		dp->id = ep->obj.id;
	}
	return rv;
}

int
iok_dialer_start(iok_dialer d, int flags)
{
	/* IOK_FLAG_SYNC is accepted and means nothing: it is the default. */
	if (flags & ~(int) (IOK_FLAG_SYNC | IOK_FLAG_NONBLOCK)) {
		return IOK_EINVAL;
	}
	return ik_ep_start(d.id, IK_OBJ_DIALER, flags);
}

int
iok_dialer_close(iok_dialer d)
{
	return ik_ep_close_id(d.id, IK_OBJ_DIALER);
}

int
iok_dialer_id(iok_dialer d)
{
	return d.id > 0 ? (int) d.id : -1;
}

int
iok_dial(iok_socket s, const char *url, iok_dialer *dp, int flags)
{
	iok_dialer d;
	int        rv;
	if ((rv = iok_dialer_create(&d, s, url)) != 0) {
		return rv;
	}
	if ((rv = iok_dialer_start(d, flags)) != 0) {
		(void) iok_dialer_close(d); /* as nng: a failed dial leaves nothing */
		return rv;
	}
	if (dp != NULL) {
		*dp = d;
	}
	return 0;
}
