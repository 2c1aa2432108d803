/*
 * dialer.c - dialers (see ep.h).
 *
 * A dialer keeps its socket connected: resolve (c-ares), connect to each
 * address in turn, hand the stream to a pipe, and when the pipe goes away
 * or nothing answers, try again after a backoff that doubles from
 * reconnect-time-min up to reconnect-time-max.  Kernel thread, except the
 * public functions at the end.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ep.h"
#include "pipe.h"
#include "resolve.h"

static ik_list inproc_waiting   = {{&inproc_waiting.head, &inproc_waiting.head}};

/* -------------------------------------------------------------- dialer */

static void
retry_cb(uv_timer_t *t)
{
	ik_dialer_kick(t->data);
}

static void
schedule_retry(ik_ep *ep)
{
	iok_duration delay = ep->backoff;
	if (ep->closing) {
		return;
	}
	if (delay < ep->topts.reconn_min) {
		delay = ep->topts.reconn_min;
	}
	if (ep->topts.reconn_max > 0 && delay > ep->topts.reconn_max) {
		delay = ep->topts.reconn_max;
	}
	/* Double for next time: a dead peer never sees a hot loop. */
	ep->backoff = delay * 2;
	if (ep->topts.reconn_max > 0 && ep->backoff > ep->topts.reconn_max) {
		ep->backoff = ep->topts.reconn_max;
	}
	if (ep->topts.reconn_max == 0) {
		ep->backoff = delay; /* no maximum: stay at the minimum */
	}
	uv_timer_start(&ep->timer, retry_cb, (uint64_t) delay, 0);
}

static void
dial_failed(ik_ep *ep, int err)
{
	ep->last_err = err;
	if (ep->start_cmd != NULL) {
		ik_cmd_done(ep->start_cmd, err);
		ep->start_cmd = NULL;
	}
	if (ep->url.scheme != NULL && strcmp(ep->tran->scheme, "inproc") == 0 &&
	    !ik_node_linked(&ep->inproc_node)) {
		/* Woken as soon as a listener takes the name. */
		ik_list_append(&inproc_waiting, &ep->inproc_node);
	}
	schedule_retry(ep);
}

static void connect_next(ik_ep *ep);

static void
connect_cb(uv_connect_t *req, int status)
{
	ik_ep   *ep = req->data;
	ik_pipe *p  = ep->conn_pipe;
	bool     cancelled = uv_is_closing(&p->h.handle);
	ep->conn_pipe  = NULL;
	ep->connecting = false;
	if (ep->closing) {
		if (!cancelled) {
			ik_pipe_discard(p);
		}
		ik_ep_maybe_finish(ep);
		return;
	}
	if (cancelled) {
		/* Abandoned after a fork: the attempt was the parent's too. */
		ik_dialer_kick(ep);
		return;
	}
	if (status < 0) {
		ik_pipe_discard(p);
		ep->last_err = ik_uv_err(status);
		ep->addr_idx++;
		if (ep->addr_idx < ep->naddrs) {
			connect_next(ep); /* try the next address of the name */
		} else {
			dial_failed(ep, ep->last_err);
		}
		return;
	}
	ik_pipe_begin(p);
}

static void
connect_next(ik_ep *ep)
{
	ik_pipe *p = ik_pipe_new_stream(ep->sock, ep, 1);
	int      rv;
	if (p == NULL) {
		dial_failed(ep, IOK_ENOMEM);
		return;
	}
	ep->conn_pipe  = p;
	ep->connecting = true;
	ep->creq.data  = ep;
	rv = uv_tcp_connect(&ep->creq, &p->h.tcp, (const struct sockaddr *) &ep->addrs[ep->addr_idx], connect_cb);
	if (rv != 0) {
		ep->conn_pipe  = NULL;
		ep->connecting = false;
		ik_pipe_discard(p);
		dial_failed(ep, ik_uv_err(rv));
	}
}

static int
set_addrs(ik_ep *ep, const struct sockaddr_storage *a, int n)
{
	struct sockaddr_storage *na = malloc((size_t) n * sizeof(*na));
	if (na == NULL) {
		return IOK_ENOMEM;
	}
	memcpy(na, a, (size_t) n * sizeof(*na));
	free(ep->addrs);
	ep->addrs    = na;
	ep->naddrs   = n;
	ep->addr_idx = 0;
	return 0;
}

static void
resolved_cb(void *arg, int err, const struct sockaddr_storage *addrs, int n)
{
	ik_ep *ep = arg;
	ep->res   = NULL;
	if (err == 0) {
		err = set_addrs(ep, addrs, n);
	}
	if (err != 0) {
		dial_failed(ep, err);
		return;
	}
	connect_next(ep);
}

static void
dial_unix(ik_ep *ep)
{
	ik_pipe *p = ik_pipe_new_stream(ep->sock, ep, 0);
	if (p == NULL) {
		dial_failed(ep, IOK_ENOMEM);
		return;
	}
	ep->conn_pipe  = p;
	ep->connecting = true;
	ep->creq.data  = ep;
	ep->addr_idx   = 0;
	ep->naddrs     = 0;
	uv_pipe_connect(&ep->creq, &p->h.unix_pipe, ep->url.path, connect_cb);
}

static void
dial_inproc(ik_ep *ep)
{
	ik_ep *lep = ik_inproc_find(ep->url.path);
	int    rv;
	if (lep == NULL) {
		dial_failed(ep, IOK_ECONNREFUSED);
		return;
	}
	if ((rv = ik_pipe_inproc_pair(ep->sock, ep, lep->sock, lep)) != 0) {
		dial_failed(ep, rv);
	}
}

/* Start a connection attempt unless one is under way or we are up. */
void
ik_dialer_kick(ik_ep *ep)
{
	ik_node *n;
	int      live = 0;
	if (ep->closing || ep->connecting || ep->res != NULL || !ep->started || ep->dormant) {
		return;
	}
	for (n = ik_list_first(&ep->pipes); n != NULL; n = ik_list_next(&ep->pipes, n)) {
		if (ik_container_of(n, ik_pipe, enode)->state != IK_PIPE_CLOSING) {
			live++;
		}
	}
	if (live >= ep->topts.pool) {
		return;
	}
	uv_timer_stop(&ep->timer);
	if (ik_node_linked(&ep->inproc_node)) {
		ik_list_remove(&ep->inproc_node);
	}
	switch (ep->tran->addr) {
	case IK_ADDR_NONE:
		dial_inproc(ep);
		return;
	case IK_ADDR_UNIX:
		dial_unix(ep);
		return;
	default:
		break;
	}
	struct sockaddr_storage sa;
	int rv = ik_resolve_numeric(ep->url.host, ik_ep_port(ep), ik_ep_family(ep), 0, &sa);
	if (rv == 0) {
		if ((rv = set_addrs(ep, &sa, 1)) != 0) {
			dial_failed(ep, rv);
			return;
		}
		connect_next(ep);
	} else if (rv == IOK_ENOENT) {
		/* A name: re-resolved on every attempt, so a moved service is
		 * found again. */
		if ((ep->res = ik_resolve_start(ep->url.host, ik_ep_port(ep), ik_ep_family(ep), resolved_cb, ep)) == NULL) {
			dial_failed(ep, IOK_ENOMEM);
		}
	} else {
		dial_failed(ep, rv);
	}
}

/* --------------------------------------------------- pipe notifications */

void
ik_ep_pipe_up(ik_ep *ep, ik_pipe *p)
{
	(void) p;
	if (ep->dialer) {
		ep->backoff = ep->topts.reconn_min;
		if (ep->ever_connected) {
			ep->sock->stats[IK_STAT_RECONNECTS]++;
			ep->reconnects++;
		}
		ep->ever_connected = true;
		if (ep->start_cmd != NULL) {
			ik_cmd_done(ep->start_cmd, 0);
			ep->start_cmd = NULL;
		}
		ik_dialer_kick(ep); /* the next connection of the pool */
	}
}

void
ik_ep_pipe_gone(ik_ep *ep, ik_pipe *p)
{
	if (ep->closing) {
		ik_ep_maybe_finish(ep);
		return;
	}
	if (!ep->dialer || p == ep->conn_pipe || (!p->begun && p->is_stream)) {
		return; /* a failed connect is handled by connect_cb */
	}
	if (!p->ever_active) {
		/* Handshake failed or the pattern refused: back off. */
		dial_failed(ep, p->close_err ? p->close_err : IOK_ECONNREFUSED);
	} else {
		/* Lost an established connection: reconnect after the minimum
		 * delay, doubling if it keeps failing. */
		schedule_retry(ep);
	}
}

/* A listener took the name: inproc dialers waiting for it retry at once. */
void
ik_inproc_wake_dialers(const char *name)
{
	ik_node *n, *tmp;
	ik_list_foreach_safe(&inproc_waiting, n, tmp)
	{
		ik_ep *d = ik_container_of(n, ik_ep, inproc_node);
		if (strcmp(d->url.path, name) == 0) {
			ik_list_remove(n);
			uv_timer_start(&d->timer, retry_cb, 0, 0);
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
