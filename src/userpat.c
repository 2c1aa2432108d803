/*
 * userpat.c - patterns from outside the library (iok_pattern_register).
 *
 * The public table (iok_pattern) is a reduced form of the internal one
 * (ik_pattern), so the internal one can keep changing.  Each registered
 * pattern gets an internal table of trampolines: the socket state starts
 * with a pointer to the public table, followed by the user's state.  The
 * services are the internal ones under public names; the opaque public
 * socket and pipe types are ik_sock and ik_pipe.  Kernel thread, except
 * iok_pattern_register.
 */
#include <stdalign.h>
#include <stdlib.h>

#include "sock.h"

_Static_assert(IOK_PATTERN_OK == IK_OK && IOK_PATTERN_BUSY == IK_BUSY,
    "the public return values are the internal ones");

/* What a registered pattern is inside: the core sees ik, the trampolines
 * find pub from it (a socket's s->pat). */
struct upat {
	ik_pattern  ik;
	iok_pattern pub;
};

/* The user's socket state follows this, aligned for anything. */
struct upat_hdr {
	const iok_pattern *pub;
};
#define HDR_SIZE                                                                       \
	((sizeof(struct upat_hdr) + alignof(max_align_t) - 1) / alignof(max_align_t) * \
	    alignof(max_align_t))

static const iok_pattern *
pub_of(void *ps)
{
	return ((struct upat_hdr *) ps)->pub;
}

static void *
user_of(void *ps)
{
	return (char *) ps + HDR_SIZE;
}

static int
t_init(void *ps, ik_sock *s, int raw)
{
	const struct upat *u          = ik_container_of(s->pat, struct upat, ik);
	((struct upat_hdr *) ps)->pub = &u->pub;
	return u->pub.init ? u->pub.init(user_of(ps), (iok_pattern_socket *) s, raw) : 0;
}

static void
t_fini(void *ps)
{
	if (pub_of(ps)->fini != NULL) {
		pub_of(ps)->fini(user_of(ps));
	}
}

static int
t_pipe_add(void *ps, void *pp, ik_pipe *p)
{
	const iok_pattern *pub = pub_of(ps);
	return pub->pipe_add ? pub->pipe_add(user_of(ps), pp, (iok_pattern_pipe *) p) : 0;
}

static void
t_pipe_rm(void *ps, void *pp)
{
	if (pub_of(ps)->pipe_rm != NULL) {
		pub_of(ps)->pipe_rm(user_of(ps), pp);
	}
}

static int
t_send(void *ps, iok_msg *m)
{
	return pub_of(ps)->send(user_of(ps), m);
}

static int
t_recv(void *ps, void *pp, iok_msg *m)
{
	return pub_of(ps)->recv(user_of(ps), pp, m);
}

static void
t_pipe_ready(void *ps, void *pp)
{
	if (pub_of(ps)->pipe_ready != NULL) {
		pub_of(ps)->pipe_ready(user_of(ps), pp);
	}
}

int
iok_pattern_register(const iok_pattern *p)
{
	struct upat *u;
	int          rv;
	if (p == NULL || p->name == NULL || p->name[0] == '\0' || p->recv == NULL ||
	    ((p->flags & IOK_PATTERN_SEND) && p->send == NULL) ||
	    (p->flags & ~(unsigned) (IOK_PATTERN_SEND | IOK_PATTERN_RECV)) ||
	    p->sock_size > SIZE_MAX - HDR_SIZE) {
		return IOK_EINVAL;
	}
	/* Built-in names first, so a user pattern cannot shadow one. */
	(void) ik_pattern_find(NULL);
	if (ik_pattern_find(p->name) != NULL) {
		return IOK_EEXIST;
	}
	if ((u = calloc(1, sizeof(*u))) == NULL) {
		return IOK_ENOMEM;
	}
	u->pub          = *p;
	u->ik.name      = u->pub.name;
	u->ik.peer_name = u->pub.peer_name ? u->pub.peer_name : u->pub.name;
	u->ik.proto     = p->proto;
	u->ik.peer      = p->peer;
	u->ik.flags     = ((p->flags & IOK_PATTERN_SEND) ? IK_PF_SEND : 0) |
	              ((p->flags & IOK_PATTERN_RECV) ? IK_PF_RECV : 0);
	u->ik.sock_size  = HDR_SIZE + p->sock_size;
	u->ik.pipe_size  = p->pipe_size;
	u->ik.init       = t_init;
	u->ik.fini       = t_fini;
	u->ik.pipe_add   = t_pipe_add;
	u->ik.pipe_rm    = t_pipe_rm;
	u->ik.send       = t_send;
	u->ik.recv       = t_recv;
	u->ik.pipe_ready = t_pipe_ready;
	if ((rv = ik_pattern_register(&u->ik)) != 0) {
		free(u);
	}
	/* On success u lives as long as the process: the registry keeps it. */
	return rv;
}

uint32_t
iok_pattern_pipe_id(const iok_pattern_pipe *p)
{
	return ik_pipe_id((const ik_pipe *) p);
}

int
iok_pattern_pipe_send(iok_pattern_pipe *p, iok_msg *m)
{
	return ik_pipe_send((ik_pipe *) p, m);
}

int
iok_pattern_pipe_writable(const iok_pattern_pipe *p)
{
	return ik_pipe_writable((const ik_pipe *) p);
}

void
iok_pattern_pipe_close(iok_pattern_pipe *p, int err)
{
	ik_pipe_close((ik_pipe *) p, err);
}

int
iok_pattern_deliver(iok_pattern_socket *s, iok_msg *m)
{
	return ik_sock_deliver((ik_sock *) s, m);
}

void
iok_pattern_send_ready(iok_pattern_socket *s)
{
	ik_sock_send_ready((ik_sock *) s);
}
