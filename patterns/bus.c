/*
 * bus.c - BUS (nng's bus0): every message sent goes to every connected
 * peer; every message received is delivered.  Nothing is forwarded
 * automatically (a message from peer X reaches only this socket's
 * application), so a bus is a full mesh, or uses a device.
 *
 * Sending never blocks, like nng: a peer whose write queue is above its
 * high-water mark misses the message (stat:tx-dropped); the others still
 * get theirs.  Receiving is lossless within bounds: when the receive queue
 * is full the pipe pauses, so the loss, if any, is counted by the sender
 * whose pipe to us stays full.
 *
 * No header on the wire.  Raw mode, as nng: a received message carries the
 * id of the pipe it came on as a 32-bit header, and a raw send whose header
 * starts with a pipe id goes to every peer except that pipe.  That is how a
 * bus device (iok_device(raw, raw-or-none)) forwards without echoing a
 * message back to where it came from.
 */
#include <stdlib.h>

#include "pattern.h"
#include "pipeset.h"

typedef struct bus_pipe {
	ik_pipe *pipe;
	int      slot; /* index in bus_sock.pipes */
} bus_pipe;

typedef struct bus_sock {
	ik_sock   *sock;
	int        raw;
	ik_pipeset pipes;
} bus_sock;

static int
bus_init(void *arg, ik_sock *s, int raw)
{
	bus_sock *ps = arg;
	ps->sock     = s;
	ps->raw      = raw;
	IK_PIPESET_INIT(&ps->pipes, bus_pipe, 0);
	return 0;
}

static void
bus_fini(void *arg)
{
	bus_sock *ps = arg;
	ik_pipeset_fini(&ps->pipes);
}

static int
bus_pipe_add(void *arg, void *pp, ik_pipe *p)
{
	bus_sock *ps = arg;
	bus_pipe *pi = pp;
	pi->pipe     = p;
	return ik_pipeset_add(&ps->pipes, pi);
}

static void
bus_pipe_rm(void *arg, void *pp)
{
	bus_sock *ps = arg;
	bus_pipe *pi = pp;
	ik_pipeset_rm(&ps->pipes, pi);
}

static int
bus_send(void *arg, iok_msg *m)
{
	bus_sock *ps     = arg;
	uint32_t  sender = 0;
	int       last   = -1;

	if (ps->raw) {
		/* A device resending what came in on pipe `sender`. */
		if (iok_msg_header_len(m) >= 4) {
			(void) iok_msg_header_trim_u32(m, &sender);
		}
	} else {
		iok_msg_header_clear(m);
	}
	/* Who can take it now; the last of them gets m itself. */
	for (int i = 0; i < ps->pipes.n; i++) {
		ik_pipe *p = ik_pipeset_pipe(&ps->pipes, i);
		if (ik_pipe_id(p) == sender) {
			continue;
		}
		if (!ik_pipe_writable(p)) {
			ik_sock_stat(ps->sock, IK_STAT_TX_DROPPED, 1);
			continue;
		}
		last = i;
	}
	for (int i = 0; i < last; i++) {
		ik_pipe *p = ik_pipeset_pipe(&ps->pipes, i);
		if (ik_pipe_id(p) == sender || !ik_pipe_writable(p)) {
			continue;
		}
		/* Framed straight into a stream's batch, or shared (msg.h):
		 * never a copy of the message; failures are counted. */
		(void) ik_pipe_send_copy(p, m);
	}
	if (last >= 0) {
		ik_pipe_send(ik_pipeset_pipe(&ps->pipes, last), m);
	} else {
		iok_msg_free(m); /* no peer (or none could take it: counted) */
	}
	return IK_OK; /* a bus never waits */
}

static int
bus_recv(void *arg, void *pp, iok_msg *m)
{
	bus_sock *ps = arg;
	bus_pipe *pi = pp;
	if (ps->raw && !(m->flags & IK_MSG_PARSED)) {
		if (iok_msg_header_append_u32(m, ik_pipe_id(pi->pipe)) != 0) {
			iok_msg_free(m);
			ik_sock_stat(ps->sock, IK_STAT_RX_DROPPED, 1);
			return IK_OK;
		}
		m->flags |= IK_MSG_PARSED;
	}
	return ik_sock_deliver(ps->sock, m);
}

const ik_pattern ik_pattern_bus0 = {
	.name      = "bus0",
	.peer_name = "bus0",
	.proto     = 0x70,
	.peer      = 0x70,
	.flags     = IK_PF_SEND | IK_PF_RECV | IK_PF_RAW,
	.sock_size = sizeof(bus_sock),
	.pipe_size = sizeof(bus_pipe),
	.init      = bus_init,
	.fini      = bus_fini,
	.pipe_add  = bus_pipe_add,
	.pipe_rm   = bus_pipe_rm,
	.send      = bus_send,
	.recv      = bus_recv,
};
