/*
 * ep.c - what dialers and listeners share (see ep.h): creation, options,
 * close, handle lookup and the fork hooks (the transport options' codec is
 * topts.c).  Dialing is in dialer.c,
 * listening in listener.c, sharing a dialer's pipes in share.c.  All of it
 * lives on the kernel thread; the public functions reach it through
 * commands.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "ep.h"
#include "pipe.h"
#include "discovery/discovery.h"
#include "discovery/resolve.h"

static void ep_close_k(ik_cmd *c);

#define UPSTREAMS_TEXT_MAX 16384

int
ik_uv_err(int uverr)
{
	switch (uverr) {
	case UV_ECONNREFUSED:
	case UV_ENOENT: /* ipc path not there */
		return IOK_ECONNREFUSED;
	case UV_EADDRINUSE:
		return IOK_EADDRINUSE;
	case UV_EADDRNOTAVAIL:
	case UV_EINVAL:
		return IOK_EADDRINVAL;
	case UV_EACCES:
	case UV_EPERM:
		return IOK_EPERM;
	case UV_ETIMEDOUT:
		return IOK_ETIMEDOUT;
	case UV_ENETUNREACH:
	case UV_EHOSTUNREACH:
		return IOK_EUNREACHABLE;
	case UV_ECONNRESET:
	case UV_EPIPE:
		return IOK_ECONNRESET;
	case UV_ECONNABORTED:
		return IOK_ECONNABORTED;
	case UV_EMFILE:
	case UV_ENFILE:
		return IOK_ENOFILES;
	case UV_ENOMEM:
	case UV_ENOBUFS:
		return IOK_ENOMEM;
	case UV_ECANCELED:
		return IOK_ECANCELED;
	default:
		return IOK_EUNREACHABLE;
	}
}

/* ------------------------------------- socket options reaching endpoints */

static void
ep_apply_recv_max(ik_ep *ep)
{
	ik_node *n;
	for (n = ik_list_first(&ep->pipes); n != NULL; n = ik_list_next(&ep->pipes, n)) {
		ik_pipe_set_recv_max(ik_container_of(n, ik_pipe, enode), ep->topts.recv_max);
	}
}

/* The socket-level options whose changes reach endpoints already open:
 * the receive limit, and the health checks (read at each use). */
static bool
is_health_opt(const char *name)
{
	return strncmp(name, "health:", 7) == 0;
}

void
ik_eps_opt_changed(ik_sock *s, const char *name)
{
	bool     rmax = strcmp(name, IOK_OPT_RECVMAXSZ) == 0, health = is_health_opt(name);
	ik_node *n;
	for (n = ik_list_first(&s->eps); n != NULL && (rmax || health);
	     n = ik_list_next(&s->eps, n)) {
		ik_ep *ep = ik_container_of(n, ik_ep, snode);
		if (rmax && !ep->own_recv_max) {
			ep->topts.recv_max = s->topts.recv_max;
			ep_apply_recv_max(ep);
		}
		if (health && !ep->own_health) {
			ep->topts.health_ivl   = s->topts.health_ivl;
			ep->topts.health_timeo = s->topts.health_timeo;
			ep->topts.eject_errors = s->topts.eject_errors;
			ep->topts.eject_ms     = s->topts.eject_ms;
		}
	}
}

/* ------------------------------------------------------------ lifecycle */

static void
ep_destroy(ik_obj *o)
{
	ik_ep *ep = (ik_ep *) o;
	ik_url_free(&ep->url);
	free(ep->disc_backend);
	free(ep->disc_target);
	free(ep);
}

static void
ep_handle_closed(uv_handle_t *h)
{
	ik_ep *ep = h->data;
	ep->handles_open--;
	ik_ep_maybe_finish(ep);
}

void
ik_ep_maybe_finish(ik_ep *ep)
{
	if (!ep->closing || ep->handles_open > 0 || !ik_list_empty(&ep->pipes) ||
	    !ik_list_empty(&ep->ups) || ep->finished) {
		return;
	}
	ep->finished = true;
	ik_ep_unshare(ep);
	if (ep->close_cmd != NULL) {
		ik_cmd_done(ep->close_cmd, 0);
		ep->close_cmd = NULL;
	}
	ik_sock_ep_gone(ep->sock, ep);
	ik_obj_rele(&ep->obj); /* the kernel's reference */
}

/* Kernel thread: stop the endpoint, close its connections. */
void
ik_ep_close(ik_ep *ep)
{
	ik_node *n, *tmp;
	if (ep->closing) {
		return;
	}
	ep->closing = true;
	(void) ik_obj_unregister(&ep->obj); /* the handle is stale from now */
	if (ep->start_cmd != NULL) {
		ik_cmd_done(ep->start_cmd, IOK_ECLOSED);
		ep->start_cmd = NULL;
	}
	if (ik_node_linked(&ep->inproc_node)) {
		ik_list_remove(&ep->inproc_node);
	}
	if (ep->res != NULL) {
		ik_resolve_cancel(ep->res);
		ep->res = NULL;
	}
	if (ep->dormant_fd >= 0) {
		close(ep->dormant_fd);
		ep->dormant_fd = -1;
	}
	if (ep->dialer) {
		ik_dialer_close(ep);
	} else if (ep->listening) {
		ep->listening = false;
		ep->handles_open++;
		uv_close(&ep->lh.handle, ep_handle_closed);
	}
	ik_list_foreach_safe(&ep->pipes, n, tmp)
	{
		ik_pipe *p = ik_container_of(n, ik_pipe, enode);
		if (!p->dialing) {
			ik_pipe_close(p, IOK_ECLOSED);
		}
	}
	ik_ep_maybe_finish(ep);
}

int
ik_ep_family(const ik_ep *ep)
{
	switch (ep->tran->addr) {
	case IK_ADDR_TCP4:
		return AF_INET;
	case IK_ADDR_TCP6:
		return AF_INET6;
	default:
		return AF_UNSPEC;
	}
}

uint16_t
ik_ep_port(const ik_ep *ep)
{
	return ep->url.has_port ? ep->url.port : ep->tran->def_port;
}

/* ----------------------------------- create, start and close by handle */

struct ep_cmd {
	ik_cmd      cmd;
	ik_ep      *ep;
	int         flags;
	const char *name;
	const void *in;
	void       *out;
	size_t      sz;
	size_t     *outsz;
	int         type;
};

static void
create_k(ik_cmd *c)
{
	struct ep_cmd *ec = (struct ep_cmd *) c;
	ik_ep         *ep = ec->ep;
	if (ep->sock->closing) {
		ik_cmd_done(c, IOK_ECLOSED);
		return;
	}
	ep->topts = ep->sock->topts;
	ik_list_append(&ep->sock->eps, &ep->snode);
	ik_obj_ref(&ep->sock->obj); /* dropped when the endpoint is freed */
	ik_cmd_done(c, 0);
}

static int
tscheme_known(const char *scheme)
{
	return ik_transport_find(scheme) != NULL;
}

/* A dialer's target is checked now, so a typo fails iok_dial at once:
 * every entry of a static list needs a port (its own or the
 * transport's); other backends need to exist. */
static int
check_dial_target(ik_ep *ep)
{
	iok_discovery_addr a[IK_DISC_MAX];
	char              *storage;
	int                n;
	if (strcmp(ep->disc_backend, "static") != 0) {
		return ik_disc_backend_find(ep->disc_backend) != NULL ? 0 : IOK_ENOTSUP;
	}
	if ((n = ik_disc_parse_list(ep->disc_target, a, IK_DISC_MAX, &storage)) < 0) {
		return n == -IOK_ENOMEM ? IOK_ENOMEM : IOK_EADDRINVAL;
	}
	for (int i = 0; i < n; i++) {
		if (a[i].port == 0 && ep->tran->def_port == 0) {
			n = -1;
			break;
		}
	}
	free(storage);
	return n < 0 ? IOK_EADDRINVAL : 0;
}

static void
ep_destroy_with_sock(ik_obj *o)
{
	ik_sock *s = ((ik_ep *) o)->sock;
	ep_destroy(o);
	ik_sock_rele(s);
}

int
ik_ep_create(ik_ep **out, iok_socket h, const char *url, bool dialer)
{
	ik_sock *s;
	ik_ep   *ep;
	int      rv;

	if (url == NULL) {
		return IOK_EADDRINVAL;
	}
	if ((rv = ik_sock_hold(h, &s)) != 0) {
		return rv;
	}
	if ((ep = calloc(1, sizeof(*ep))) == NULL) {
		ik_sock_rele(s);
		return IOK_ENOMEM;
	}
	ik_obj_init(&ep->obj, dialer ? IK_OBJ_DIALER : IK_OBJ_LISTENER, ep_destroy);
	ep->dialer     = dialer;
	ep->dormant_fd = -1;
	ep->sock       = s;
	ik_list_init(&ep->pipes);
	ik_list_init(&ep->ups);
	ik_node_init(&ep->snode);
	ik_node_init(&ep->share_node);
	ik_node_init(&ep->inproc_node);
	if (dialer) {
		/* Where the addresses come from, and the URL the transport sees
		 * (credentials, path, query). */
		char *turl;
		if ((rv = ik_disc_split_url(
		         url, tscheme_known, &ep->disc_backend, &ep->disc_target, &turl)) != 0) {
			goto fail;
		}
		rv = ik_url_parse(&ep->url, turl);
		free(turl);
		if (rv == 0) {
			char *raw = strdup(url);
			if (raw == NULL) {
				rv = IOK_ENOMEM;
				goto fail;
			}
			free(ep->url.raw);
			ep->url.raw = raw; /* IOK_OPT_URL gives what the user gave */
		}
	} else {
		rv = ik_url_parse(&ep->url, url);
	}
	if (rv != 0) {
		goto fail;
	}
	if ((ep->tran = ik_transport_find(ep->url.scheme)) == NULL) {
		rv = IOK_ENOTSUP;
		goto fail;
	}
	/* SP patterns need SP transports (or inproc); pipelined-db needs the
	 * database ones. */
	bool sp_tran = (ep->tran->flags & (IK_TF_SP | IK_TF_INPROC)) != 0;
	bool sp_pat  = !(s->pat->flags & IK_PF_NOSP);
	if (sp_tran != sp_pat || (!dialer && !(ep->tran->flags & IK_TF_LISTEN))) {
		rv = IOK_ENOTSUP;
		goto fail;
	}
	if (dialer && ep->tran->addr == IK_ADDR_TCP && strcmp(ep->disc_backend, "static") == 0 &&
	    strncmp(ep->url.scheme, "postgres", 8) == 0) {
		/* libpq's ?host=h1,h2&port=p1,p2 overrides the authority. */
		char *list;
		if ((rv = ik_url_pg_hosts(&ep->url, &list)) != 0) {
			goto fail;
		}
		if (list != NULL) {
			free(ep->disc_target);
			ep->disc_target = list;
		}
	}
	if (ep->tran->addr == IK_ADDR_NONE || ep->tran->addr == IK_ADDR_UNIX) {
		if (ep->url.path == NULL || ep->url.path[0] == '\0' ||
		    (ep->tran->addr == IK_ADDR_UNIX &&
		        strlen(ep->url.path) >= sizeof(((struct sockaddr_un *) 0)->sun_path))) {
			rv = IOK_EADDRINVAL; /* never a silently shortened path */
			goto fail;
		}
		if (dialer && strcmp(ep->disc_backend, "static") != 0) {
			rv = IOK_EADDRINVAL; /* ipc+srv:// ... */
			goto fail;
		}
	} else if (dialer && (rv = check_dial_target(ep)) != 0) {
		goto fail;
	} else {
		/* Other backends report their own ports. */
		bool listed = !dialer || strcmp(ep->disc_backend, "static") == 0;
		if (listed && (ep->url.host == NULL || (dialer && ep->url.host[0] == '\0') ||
		                  (!ep->url.has_port && ep->tran->def_port == 0) ||
		                  (dialer && ik_ep_port(ep) == 0))) {
			rv = IOK_EADDRINVAL;
			goto fail;
		}
		if (ep->url.path != NULL && (ep->tran->flags & IK_TF_SP) &&
		    strcmp(ep->url.path, "/") != 0) {
			rv = IOK_EADDRINVAL; /* tcp://host:port/extra */
			goto fail;
		}
	}
	struct ep_cmd ec = { .ep = ep };
	/* Ours until the handle is registered: once create_k has attached the
	 * endpoint, a concurrent iok_close of the socket may close it and drop
	 * the kernel's reference before we are done with it. */
	ik_obj_ref(&ep->obj);
	if ((rv = ik_cmd_call(&ec.cmd, create_k)) != 0) {
		goto fail;
	}
	/* From here the endpoint holds a socket reference. */
	ep->obj.destroy = ep_destroy_with_sock;
	if ((rv = ik_obj_register(&ep->obj)) != 0) {
		struct ep_cmd cc = { .ep = ep };
		(void) ik_cmd_call(&cc.cmd, ep_close_k);
		ik_obj_rele(&ep->obj);
		ik_sock_rele(s);
		return rv;
	}
	ik_obj_rele(&ep->obj);
	ik_sock_rele(s);
	*out = ep;
	return 0;
fail:
	ep_destroy(&ep->obj);
	ik_sock_rele(s);
	return rv;
}

static void
start_k(ik_cmd *c)
{
	struct ep_cmd *ec = (struct ep_cmd *) c;
	ik_ep         *ep = ec->ep;
	int            rv;
	if (ep->closing || ep->sock->closing) {
		ik_cmd_done(c, IOK_ECLOSED);
		return;
	}
	if (ep->started) {
		ik_cmd_done(c, IOK_ESTATE);
		return;
	}
	ep->started = true;
	if (ep->dialer) {
		if (!(ec->flags & IOK_FLAG_NONBLOCK)) {
			/* nng's default: the first attempt answers the call. */
			ep->start_cmd = c;
		} else {
			ik_cmd_done(c, 0);
		}
		ik_dialer_kick(ep);
		return;
	}
	rv = ik_listener_start(ep);
	if (rv == -1) {
		ep->start_cmd = c; /* answered after resolving */
		return;
	}
	if (rv != 0) {
		ep->started = false;
	}
	ik_cmd_done(c, rv);
}

static void
ep_close_k(ik_cmd *c)
{
	struct ep_cmd *ec = (struct ep_cmd *) c;
	ik_ep         *ep = ec->ep;
	if (ep->closing) {
		ik_cmd_done(c, IOK_ECLOSED);
		return;
	}
	ep->close_cmd = c;
	ik_ep_close(ep);
}

int
ik_ep_hold(uint32_t id, int type, ik_ep **out)
{
	ik_obj *o = ik_obj_hold(id, type);
	if (o == NULL) {
		return IOK_ECLOSED;
	}
	*out = (ik_ep *) o;
	return 0;
}

int
ik_ep_start(uint32_t id, int type, int flags)
{
	ik_ep *ep;
	int    rv;
	if ((rv = ik_ep_hold(id, type, &ep)) != 0) {
		return rv;
	}
	struct ep_cmd ec = { .ep = ep, .flags = flags };
	rv               = ik_cmd_call(&ec.cmd, start_k);
	ik_obj_rele(&ep->obj);
	return rv;
}

int
ik_ep_close_id(uint32_t id, int type)
{
	ik_ep *ep;
	int    rv;
	if ((rv = ik_ep_hold(id, type, &ep)) != 0) {
		return rv;
	}
	struct ep_cmd ec = { .ep = ep };
	rv               = ik_cmd_call(&ec.cmd, ep_close_k);
	if (rv == IOK_ECLOSED) {
		/* Closed with its socket before ep_create registered it: the
		 * handle registered afterwards is stale; drop it. */
		(void) ik_obj_unregister(&ep->obj);
	}
	ik_obj_rele(&ep->obj);
	return rv;
}

/* ------------------------------------------------------------ options */

static void
ep_setopt_k(ik_cmd *c)
{
	struct ep_cmd *ec = (struct ep_cmd *) c;
	ik_ep         *ep = ec->ep;
	int            rv;
	if (strcmp(ec->name, IOK_OPT_URL) == 0 || strcmp(ec->name, IOK_OPT_TCP_BOUND_PORT) == 0 ||
	    strcmp(ec->name, IOK_OPT_UPSTREAMS) == 0 ||
	    strcmp(ec->name, IOK_OPT_DISC_REJECTED) == 0) {
		rv = IOK_EREADONLY;
	} else {
		rv = ik_topts_set(&ep->topts, ec->name, ec->in, ec->sz, ec->type);
		if (rv == 0 && strcmp(ec->name, IOK_OPT_RECVMAXSZ) == 0) {
			ep->own_recv_max = true; /* the socket's changes pass it by */
			ep_apply_recv_max(ep);
		}
		if (rv == 0 && is_health_opt(ec->name)) {
			ep->own_health = true;
		}
		if (rv == 0 && ep->dialer) {
			ik_dialer_kick(ep); /* a bigger pool connects at once */
		}
	}
	ik_cmd_done(c, rv);
}

static void
ep_getopt_k(ik_cmd *c)
{
	struct ep_cmd *ec = (struct ep_cmd *) c;
	ik_ep         *ep = ec->ep;
	int            rv;
	if (strcmp(ec->name, IOK_OPT_URL) == 0) {
		rv = ik_put_string(ep->url.raw, ec->out, ec->outsz, ec->type);
	} else if (strcmp(ec->name, IOK_OPT_UPSTREAMS) == 0) {
		char *buf = ep->dialer ? malloc(UPSTREAMS_TEXT_MAX) : NULL;
		rv        = !ep->dialer   ? IOK_ENOTSUP
		            : buf == NULL ? IOK_ENOMEM
		                          : ik_dialer_upstreams(ep, buf, UPSTREAMS_TEXT_MAX);
		if (rv == 0) {
			rv = ik_put_string(buf, ec->out, ec->outsz, ec->type);
		}
		free(buf);
	} else if (strcmp(ec->name, IOK_OPT_DISC_REJECTED) == 0) {
		rv = !ep->dialer
		         ? IOK_ENOTSUP
		         : ik_opt_put_int(ik_disc_rejected(ep->disc), ec->out, ec->outsz, ec->type);
	} else if (strcmp(ec->name, IOK_OPT_TCP_BOUND_PORT) == 0) {
		rv = ep->dialer || ep->tran->addr == IK_ADDR_UNIX || ep->tran->addr == IK_ADDR_NONE
		         ? IOK_ENOTSUP
		         : ik_opt_put_int(ep->bound_port, ec->out, ec->outsz, ec->type);
	} else {
		rv = ik_topts_get(&ep->topts, ec->name, ec->out, ec->outsz, ec->type);
	}
	ik_cmd_done(c, rv);
}

static int
ep_setopt(uint32_t id, int type, const char *name, const void *v, size_t sz, int otype)
{
	ik_ep *ep;
	int    rv;
	if (name == NULL) {
		return IOK_EINVAL;
	}
	if ((rv = ik_ep_hold(id, type, &ep)) != 0) {
		return rv;
	}
	struct ep_cmd ec = { .ep = ep, .name = name, .in = v, .sz = sz, .type = otype };
	rv               = ik_cmd_call(&ec.cmd, ep_setopt_k);
	ik_obj_rele(&ep->obj);
	return rv;
}

static int
ep_getopt(uint32_t id, int type, const char *name, void *v, size_t *sz, int otype)
{
	ik_ep *ep;
	int    rv;
	if (name == NULL) {
		return IOK_EINVAL;
	}
	if ((rv = ik_ep_hold(id, type, &ep)) != 0) {
		return rv;
	}
	struct ep_cmd ec = { .ep = ep, .name = name, .out = v, .outsz = sz, .type = otype };
	rv               = ik_cmd_call(&ec.cmd, ep_getopt_k);
	ik_obj_rele(&ep->obj);
	return rv;
}

static int
ep_get_string(uint32_t id, int type, const char *name, char **val)
{
	size_t cap = 1024;
	for (;;) {
		char  *buf = malloc(cap);
		size_t sz  = cap;
		int    rv =
                    buf == NULL ? IOK_ENOMEM : ep_getopt(id, type, name, buf, &sz, IK_OPT_STRING);
		if (rv != 0 || sz <= cap) {
			if (rv == 0) {
				buf[cap - 1] = '\0';
				*val         = buf;
			} else {
				free(buf);
			}
			return rv;
		}
		free(buf); /* longer than we guessed (the upstreams list): again */
		cap = sz;
	}
}

#define EP_OPTS(kind, KIND)                                                                   \
	int iok_##kind##_set_bool(iok_##kind e, const char *n, bool v)                        \
	{                                                                                     \
		int iv = v; /* options carry bools as int inside */                           \
		return ep_setopt(e.id, KIND, n, &iv, sizeof(iv), IK_OPT_BOOL);                \
	}                                                                                     \
	int iok_##kind##_set_int(iok_##kind e, const char *n, int v)                          \
	{                                                                                     \
		return ep_setopt(e.id, KIND, n, &v, sizeof(v), IK_OPT_INT);                   \
	}                                                                                     \
	int iok_##kind##_set_ms(iok_##kind e, const char *n, iok_duration v)                  \
	{                                                                                     \
		return ep_setopt(e.id, KIND, n, &v, sizeof(v), IK_OPT_MS);                    \
	}                                                                                     \
	int iok_##kind##_set_size(iok_##kind e, const char *n, size_t v)                      \
	{                                                                                     \
		return ep_setopt(e.id, KIND, n, &v, sizeof(v), IK_OPT_SIZE);                  \
	}                                                                                     \
	int iok_##kind##_set_string(iok_##kind e, const char *n, const char *v)               \
	{                                                                                     \
		return v == NULL ? IOK_EINVAL                                                 \
		                 : ep_setopt(e.id, KIND, n, v, strlen(v) + 1, IK_OPT_STRING); \
	}                                                                                     \
	int iok_##kind##_get_bool(iok_##kind e, const char *n, bool *v)                       \
	{                                                                                     \
		int    iv;                                                                    \
		size_t sz = sizeof(iv);                                                       \
		int    rv = ep_getopt(e.id, KIND, n, &iv, &sz, IK_OPT_BOOL);                  \
		if (rv == 0) {                                                                \
			*v = iv != 0;                                                         \
		}                                                                             \
		return rv;                                                                    \
	}                                                                                     \
	int iok_##kind##_get_int(iok_##kind e, const char *n, int *v)                         \
	{                                                                                     \
		size_t sz = sizeof(*v);                                                       \
		return ep_getopt(e.id, KIND, n, v, &sz, IK_OPT_INT);                          \
	}                                                                                     \
	int iok_##kind##_get_ms(iok_##kind e, const char *n, iok_duration *v)                 \
	{                                                                                     \
		size_t sz = sizeof(*v);                                                       \
		return ep_getopt(e.id, KIND, n, v, &sz, IK_OPT_MS);                           \
	}                                                                                     \
	int iok_##kind##_get_size(iok_##kind e, const char *n, size_t *v)                     \
	{                                                                                     \
		size_t sz = sizeof(*v);                                                       \
		return ep_getopt(e.id, KIND, n, v, &sz, IK_OPT_SIZE);                         \
	}                                                                                     \
	int iok_##kind##_get_uint64(iok_##kind e, const char *n, uint64_t *v)                 \
	{                                                                                     \
		size_t sz = sizeof(*v);                                                       \
		return ep_getopt(e.id, KIND, n, v, &sz, IK_OPT_UINT64);                       \
	}                                                                                     \
	int iok_##kind##_get_string(iok_##kind e, const char *n, char **v)                    \
	{                                                                                     \
		return ep_get_string(e.id, KIND, n, v);                                       \
	}

EP_OPTS(dialer, IK_OBJ_DIALER)
EP_OPTS(listener, IK_OBJ_LISTENER)

/* ----------------------------------------------------------------- fork */

void
ik_eps_fork_child(ik_sock *s)
{
	ik_node *n;
	for (n = ik_list_first(&s->eps); n != NULL; n = ik_list_next(&s->eps, n)) {
		ik_ep *ep = ik_container_of(n, ik_ep, snode);
		/* Their waiters are threads of the parent. */
		ep->start_cmd = NULL;
		ep->close_cmd = NULL;
	}
}

/* On the child's kernel thread, before anything runs: every inherited
 * endpoint goes dormant.  A connection attempt in progress is the parent's
 * too, so ours is dropped; an inherited listening socket stops accepting
 * here (the descriptor is kept) so a child that never uses the socket
 * cannot steal the parent's connections. */
static void
dormant_listener_closed(uv_handle_t *h)
{
	ik_ep *ep = h->data;
	ep->handles_open--;
	if (ep->wake_pending) {
		ep->wake_pending = false;
		ik_eps_fork_activate(ep->sock);
	}
	ik_ep_maybe_finish(ep);
}

void
ik_eps_fork_child_kernel(ik_sock *s)
{
	ik_node *n;
	for (n = ik_list_first(&s->eps); n != NULL; n = ik_list_next(&s->eps, n)) {
		ik_ep *ep = ik_container_of(n, ik_ep, snode);
		if (ep->closing) {
			continue;
		}
		ep->dormant = true;
		if (ep->dialer) {
			ik_dialer_fork_child(ep);
		} else if (ep->listening) {
			uv_os_fd_t fd;
			if (uv_fileno(&ep->lh.handle, &fd) == 0) {
				ep->dormant_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
			}
			if (ep->lh.handle.type == UV_NAMED_PIPE &&
			    ep->lh.unix_pipe.pipe_fname != NULL) {
				/* libuv unlinks a listening pipe's path on close: that
				 * path is the parent's, so it must stay. */
				free((void *) ep->lh.unix_pipe.pipe_fname);
				ep->lh.unix_pipe.pipe_fname = NULL;
			}
			ep->listening = false;
			ep->handles_open++;
			uv_close(&ep->lh.handle, dormant_listener_closed);
		}
	}
}

/* The child used the socket: its dialers dial, its listeners accept. */
void
ik_eps_fork_activate(ik_sock *s)
{
	ik_node *n;
	for (n = ik_list_first(&s->eps); n != NULL; n = ik_list_next(&s->eps, n)) {
		ik_ep *ep = ik_container_of(n, ik_ep, snode);
		if (!ep->dormant || ep->closing) {
			continue;
		}
		if (ep->dialer) {
			ep->dormant = false;
			ik_dialer_kick(ep);
			continue;
		}
		if (ep->handles_open > 0) {
			ep->wake_pending = true; /* after the old handle closes */
			continue;
		}
		ep->dormant = false;
		if (ep->dormant_fd < 0) {
			continue;
		}
		int rv;
		if (ep->tran->addr == IK_ADDR_UNIX) {
			uv_pipe_init(ik_loop(), &ep->lh.unix_pipe, 0);
			rv = uv_pipe_open(&ep->lh.unix_pipe, ep->dormant_fd);
		} else {
			uv_tcp_init(ik_loop(), &ep->lh.tcp);
			rv = uv_tcp_open(&ep->lh.tcp, ep->dormant_fd);
		}
		ep->lh.handle.data = ep;
		ep->listening      = true; /* the handle must be closed either way */
		if (rv == 0) {
			rv = uv_listen(&ep->lh.stream, 128, ik_listener_accept_cb);
		}
		if (rv != 0) {
			ep->listening = false;
			ep->handles_open++;
			uv_close(&ep->lh.handle, ep_handle_closed);
		}
		ep->dormant_fd = -1; /* the handle owns it now */
	}
}
