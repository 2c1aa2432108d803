/*
 * listener.c - listeners (see ep.h): bind, accept, and the inproc registry
 * dialers look names up in.  Kernel thread, except the public functions at
 * the end.
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ep.h"
#include "pipe.h"
#include "discovery/resolve.h"

static ik_list inproc_listeners = { { &inproc_listeners.head, &inproc_listeners.head } };

/* ------------------------------------------------------------- listener */

void
ik_listener_accept_cb(uv_stream_t *server, int status)
{
	ik_ep   *ep = server->data;
	ik_pipe *p;
	if (status < 0 || ep->closing) {
		return;
	}
	if ((p = ik_pipe_new_stream(ep->sock, ep, ep->tran->addr != IK_ADDR_UNIX)) == NULL) {
		return; /* the connection waits in the backlog */
	}
	if (uv_accept(server, &p->h.stream) != 0) {
		ik_pipe_discard(p);
		return;
	}
	ik_pipe_begin(p);
}

ik_ep *
ik_inproc_find(const char *name)
{
	ik_node *n;
	for (n = ik_list_first(&inproc_listeners); n != NULL;
	     n = ik_list_next(&inproc_listeners, n)) {
		ik_ep *ep = ik_container_of(n, ik_ep, inproc_node);
		if (strcmp(ep->url.path, name) == 0) {
			return ep;
		}
	}
	return NULL;
}

static int
listen_inproc(ik_ep *ep)
{
	if (ik_inproc_find(ep->url.path) != NULL) {
		return IOK_EADDRINUSE;
	}
	ik_list_append(&inproc_listeners, &ep->inproc_node);
	ik_inproc_wake_dialers(ep->url.path);
	return 0;
}

/* A socket file nobody listens on (left by a crashed process) may be
 * replaced; a live one may not. */
static int
unix_path_stale(const char *path)
{
	struct stat        st;
	struct sockaddr_un sa;
	int                fd, rv;
	if (stat(path, &st) != 0 || !S_ISSOCK(st.st_mode) || strlen(path) >= sizeof(sa.sun_path)) {
		return 0;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		return 0;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, path);
	/* A local connect answers at once: refused means nobody is there. */
	rv = connect(fd, (struct sockaddr *) &sa, sizeof(sa));
	rv = rv != 0 && errno == ECONNREFUSED;
	close(fd);
	return rv;
}

static int
listen_unix(ik_ep *ep)
{
	int rv;
	uv_pipe_init(ik_loop(), &ep->lh.unix_pipe, 0);
	ep->lh.handle.data = ep;
	ep->listening      = true;
	rv                 = uv_pipe_bind(&ep->lh.unix_pipe, ep->url.path);
	if (rv == UV_EADDRINUSE && unix_path_stale(ep->url.path)) {
		unlink(ep->url.path);
		rv = uv_pipe_bind(&ep->lh.unix_pipe, ep->url.path);
	}
	if (rv == 0) {
		rv = uv_listen(&ep->lh.stream, 128, ik_listener_accept_cb);
	}
	/* A missing directory is "no such entry" here, not a refusal. */
	return rv == 0 ? 0 : rv == UV_ENOENT ? IOK_ENOENT : ik_uv_err(rv);
}

static int
listen_tcp_at(ik_ep *ep, const struct sockaddr_storage *sa)
{
	struct sockaddr_storage bound;
	int                     len = sizeof(bound);
	int                     rv;
	uv_tcp_init(ik_loop(), &ep->lh.tcp);
	ep->lh.handle.data = ep;
	ep->listening      = true;
	rv                 = uv_tcp_bind(&ep->lh.tcp, (const struct sockaddr *) sa,
            ep->tran->addr == IK_ADDR_TCP6 ? UV_TCP_IPV6ONLY : 0);
	if (rv == 0) {
		/* libuv reports EADDRINUSE from listen, not bind. */
		rv = uv_listen(&ep->lh.stream, 128, ik_listener_accept_cb);
	}
	if (rv != 0) {
		return ik_uv_err(rv);
	}
	if (uv_tcp_getsockname(&ep->lh.tcp, (struct sockaddr *) &bound, &len) == 0) {
		ep->bound_port =
		    ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *) &bound)->sin6_port
		                                      : ((struct sockaddr_in *) &bound)->sin_port);
	}
	return 0;
}

static void
listen_resolved_cb(void *arg, int err, const struct sockaddr_storage *addrs, int n, uint32_t ttl)
{
	ik_ep *ep = arg;
	(void) ttl;
	ep->res = NULL;
	if (err == 0) {
		err = n > 0 ? listen_tcp_at(ep, &addrs[0]) : IOK_EADDRINVAL;
	}
	if (ep->start_cmd != NULL) {
		ik_cmd_done(ep->start_cmd, err);
		ep->start_cmd = NULL;
	}
}

/* Returns 0, an error, or -1: "answered later" (a name to resolve). */
int
ik_listener_start(ik_ep *ep)
{
	struct sockaddr_storage sa;
	int                     rv;
	switch (ep->tran->addr) {
	case IK_ADDR_NONE:
		return listen_inproc(ep);
	case IK_ADDR_UNIX:
		return listen_unix(ep);
	default:
		break;
	}
	rv = ik_resolve_numeric(ep->url.host, ik_ep_port(ep), ik_ep_family(ep), 1, &sa);
	if (rv == 0) {
		return listen_tcp_at(ep, &sa);
	}
	if (rv != IOK_ENOENT) {
		return rv;
	}
	ep->res = ik_resolve_start(ep->topts.dns_servers, ep->url.host, ik_ep_port(ep),
	    ik_ep_family(ep), listen_resolved_cb, ep);
	return ep->res == NULL ? IOK_ENOMEM : -1;
}

/* --------------------------------------------------------- public API */

int
iok_listener_create(iok_listener *lp, iok_socket s, const char *url)
{
	ik_ep *ep;
	int    rv;
	if (lp == NULL) {
		return IOK_EINVAL;
	}
	lp->id = 0;
	if ((rv = ik_ep_create(&ep, s, url, false)) == 0) {
		lp->id = ep->obj.id;
	}
	return rv;
}

int
iok_listener_start(iok_listener l, int flags)
{
	/* As nng: NONBLOCK is accepted and changes nothing, since a listen
	 * must report whether the address could be bound. */
	if (flags & ~(int) IOK_FLAG_NONBLOCK) {
		return IOK_EINVAL;
	}
	return ik_ep_start(l.id, IK_OBJ_LISTENER, 0);
}

int
iok_listener_close(iok_listener l)
{
	return ik_ep_close_id(l.id, IK_OBJ_LISTENER);
}

int
iok_listener_id(iok_listener l)
{
	return l.id > 0 ? (int) l.id : -1;
}

int
iok_listen(iok_socket s, const char *url, iok_listener *lp, int flags)
{
	iok_listener l;
	int          rv;
	if (flags & ~(int) IOK_FLAG_NONBLOCK) {
		return IOK_EINVAL;
	}
	if ((rv = iok_listener_create(&l, s, url)) != 0) {
		return rv;
	}
	if ((rv = iok_listener_start(l, flags)) != 0) {
		(void) iok_listener_close(l);
		return rv;
	}
	if (lp != NULL) {
		*lp = l;
	}
	return 0;
}
