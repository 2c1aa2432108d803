/*
 * pair.c - PAIR v0 and v1: one peer at a time, messages both ways.
 *
 * v0 has no header.  v1 carries a 32-bit hop count (as nng): a cooked
 * sender writes 0 and each send adds one, so the wire says 1; the receiver
 * drops messages that travelled more than ttl-max hops and closes a pipe
 * that sends a count over 255 (malformed).  In polyamorous mode a v1
 * socket talks to many peers, routing each send by iok_msg_set_pipe().
 */
#include <string.h>

#include "pattern.h"

typedef struct pair_pipe {
	ik_pipe *pipe;
} pair_pipe;

typedef struct pair_sock {
	ik_sock   *sock;
	int        raw;
	int        v1;
	int        poly;
	pair_pipe *peer;   /* the one peer (not poly) */
	int        npipes; /* poly: how many */
} pair_sock;

static int
pair0_init(void *arg, ik_sock *s, int raw)
{
	pair_sock *ps = arg;
	ps->sock      = s;
	ps->raw       = raw;
	return 0;
}

static int
pair1_init(void *arg, ik_sock *s, int raw)
{
	pair_sock *ps = arg;
	ps->sock      = s;
	ps->raw       = raw;
	ps->v1        = 1;
	return 0;
}

static void
pair_fini(void *arg)
{
	(void) arg;
}

static int
pair_pipe_add(void *arg, void *pp, ik_pipe *p)
{
	pair_sock *ps = arg;
	pair_pipe *pi = pp;
	if (!ps->poly && ps->peer != NULL) {
		return IOK_EBUSY; /* already paired: refuse, as nng does */
	}
	pi->pipe = p;
	if (!ps->poly) {
		ps->peer = pi;
	}
	ps->npipes++;
	return 0;
}

static void
pair_pipe_rm(void *arg, void *pp)
{
	pair_sock *ps = arg;
	if (ps->peer == pp) {
		ps->peer = NULL;
	}
	ps->npipes--;
}

/* Pair1 header on the way out: the hop count, plus one for this hop. */
static int
v1_prepare(pair_sock *ps, iok_msg *m)
{
	uint32_t hops = 0;
	if (ps->raw) {
		if (iok_msg_header_len(m) != 4 || (hops = ik_get_u32(iok_msg_header(m))) >= 0xff) {
			return IOK_EPROTO;
		}
	}
	iok_msg_header_clear(m);
	return iok_msg_header_append_u32(m, hops + 1);
}

static int
pair_send(void *arg, iok_msg *m)
{
	pair_sock *ps = arg;
	ik_pipe   *p  = NULL;

	if (ps->poly) {
		/* Route by the message's pipe id; an unknown or absent id has
		 * nowhere to go and is dropped (as nng's poly mode does). */
		p = NULL;
		if (iok_msg_get_pipe(m) == 0) {
			iok_msg_free(m);
			ik_sock_stat(ps->sock, IK_STAT_TX_DROPPED, 1);
			return IK_OK;
		}
		p = ik_sock_pipe_by_id(ps->sock, iok_msg_get_pipe(m));
		if (p == NULL) {
			iok_msg_free(m);
			ik_sock_stat(ps->sock, IK_STAT_TX_DROPPED, 1);
			return IK_OK;
		}
		if (!ik_pipe_writable(p)) {
			return IK_BUSY;
		}
	} else {
		if (ps->peer == NULL || !ik_pipe_writable(ps->peer->pipe)) {
			return IK_BUSY; /* wait for a peer, as nng blocks */
		}
		p = ps->peer->pipe;
	}
	if (ps->v1) {
		if (v1_prepare(ps, m) != 0) {
			iok_msg_free(m);
			ik_sock_stat(ps->sock, IK_STAT_TX_DROPPED, 1);
			return IK_OK;
		}
	} else if (!ps->raw) {
		iok_msg_header_clear(m);
	}
	ik_pipe_send(p, m);
	return IK_OK;
}

static int
pair_recv(void *arg, void *pp, iok_msg *m)
{
	pair_sock *ps = arg;
	pair_pipe *pi = pp;
	if (ps->v1 && !(m->flags & IK_MSG_PARSED)) {
		uint32_t hops;
		if (iok_msg_trim_u32(m, &hops) != 0 || hops > 0xff) {
			iok_msg_free(m);
			ik_sock_stat(ps->sock, IK_STAT_RX_MALFORMED, 1);
			ik_pipe_close(pi->pipe, IOK_EPROTO);
			return IK_OK;
		}
		if ((int) hops > ik_sock_max_ttl(ps->sock)) {
			iok_msg_free(m);
			ik_sock_stat(ps->sock, IK_STAT_RX_DROPPED, 1);
			return IK_OK;
		}
		iok_msg_header_append_u32(m, hops);
		m->flags |= IK_MSG_PARSED;
	}
	return ik_sock_deliver(ps->sock, m);
}

static int
pair_setopt(void *arg, const char *name, const void *v, size_t sz, int type)
{
	pair_sock *ps = arg;
	if (ps->v1 && strcmp(name, IOK_OPT_PAIR1_POLY) == 0) {
		int on, rv;
		if ((rv = ik_opt_get_bool(v, sz, type, &on)) != 0) {
			return rv;
		}
		if (ps->npipes > 0) {
			return IOK_ESTATE; /* only before connecting, as nng */
		}
		ps->poly = on;
		return 0;
	}
	return IOK_ENOTSUP;
}

static int
pair_getopt(void *arg, const char *name, void *v, size_t *sz, int type)
{
	pair_sock *ps = arg;
	if (ps->v1 && strcmp(name, IOK_OPT_PAIR1_POLY) == 0) {
		return ik_opt_put_bool(ps->poly, v, sz, type);
	}
	return IOK_ENOTSUP;
}

const ik_pattern ik_pattern_pair0 = {
	.name      = "pair0",
	.peer_name = "pair0",
	.proto     = 0x10,
	.peer      = 0x10,
	.flags     = IK_PF_SEND | IK_PF_RECV | IK_PF_RAW,
	.sock_size = sizeof(pair_sock),
	.pipe_size = sizeof(pair_pipe),
	.init      = pair0_init,
	.fini      = pair_fini,
	.pipe_add  = pair_pipe_add,
	.pipe_rm   = pair_pipe_rm,
	.send      = pair_send,
	.recv      = pair_recv,
};

const ik_pattern ik_pattern_pair1 = {
	.name      = "pair1",
	.peer_name = "pair1",
	.proto     = 0x11,
	.peer      = 0x11,
	.flags     = IK_PF_SEND | IK_PF_RECV | IK_PF_RAW,
	.sock_size = sizeof(pair_sock),
	.pipe_size = sizeof(pair_pipe),
	.init      = pair1_init,
	.fini      = pair_fini,
	.pipe_add  = pair_pipe_add,
	.pipe_rm   = pair_pipe_rm,
	.send      = pair_send,
	.recv      = pair_recv,
	.setopt    = pair_setopt,
	.getopt    = pair_getopt,
};
