/*
 * sp.c - the SP wire protocol of nng/nanomsg over tcp and ipc, as a
 * sans-I/O codec.
 *
 * Handshake (both sides send at once): 00 'S' 'P' 00 <proto u16 BE> 00 00.
 * Frames: tcp: u64 BE length + payload; ipc: 0x01 + u64 BE length +
 * payload.  The payload is the SP header followed by the body; which bytes
 * are header is the pattern's business, not ours.
 */
#include <stdint.h>
#include <string.h>

#include "iok.h"
#include "../src/msg.h"
#include "sp.h"

typedef struct sp_state {
	uint16_t self, peer;
	int      ipc;
	int      sent;
	size_t   recv_max;
} sp_state;

static int
sp_init_common(void *st, const ik_tran_params *p, int ipc)
{
	sp_state *s = st;
	memset(s, 0, sizeof(*s));
	s->self     = p->self_proto;
	s->recv_max = p->recv_max;
	s->ipc      = ipc;
	return 0;
}

static int
sp_init_tcp(void *st, const ik_tran_params *p)
{
	return sp_init_common(st, p, 0);
}

static int
sp_init_ipc(void *st, const ik_tran_params *p)
{
	return sp_init_common(st, p, 1);
}

int
ik_sp_handshake(void *st, const uint8_t *in, size_t len, size_t *used, ik_buf *out)
{
	sp_state *s = st;
	*used       = 0;
	if (!s->sent) {
		uint8_t h[8] = { 0, 'S', 'P', 0, (uint8_t) (s->self >> 8), (uint8_t) s->self, 0,
			0 };
		if (ik_buf_append(out, h, sizeof(h)) != 0) {
			return -IOK_ENOMEM;
		}
		s->sent = 1;
	}
	if (len < 8) {
		/* Reject garbage early rather than waiting for 8 bytes. */
		static const uint8_t magic[4] = { 0, 'S', 'P', 0 };
		if (len > 0 && memcmp(in, magic, len < 4 ? len : 4) != 0) {
			return -IOK_EPROTO;
		}
		return IK_HS_MORE;
	}
	if (in[0] != 0 || in[1] != 'S' || in[2] != 'P' || in[3] != 0 || in[6] != 0 || in[7] != 0) {
		return -IOK_EPROTO;
	}
	s->peer = (uint16_t) ((in[4] << 8) | in[5]);
	*used   = 8;
	return IK_HS_DONE;
}

uint16_t
ik_sp_peer_proto(void *st)
{
	return ((sp_state *) st)->peer;
}

ssize_t
ik_sp_frame(void *st, const uint8_t *buf, size_t len, ik_frame *f)
{
	sp_state *s   = st;
	size_t    off = s->ipc ? 9 : 8;
	uint64_t  n;

	if (s->ipc && len >= 1 && buf[0] != 0x01) {
		return -IOK_EPROTO; /* the only ipc message type */
	}
	if (len < off) {
		f->need = off;
		return 0;
	}
	n = ik_get_u64(buf + off - 8);
	if ((s->recv_max > 0 && n > s->recv_max) || n > SIZE_MAX / 2) {
		return -IOK_EMSGSIZE; /* before a single byte of it is buffered */
	}
	if (len - off < n) {
		f->need = off + (size_t) n;
		return 0;
	}
	f->body_off = off;
	f->body_len = (size_t) n;
	return (ssize_t) (off + n);
}

ssize_t
ik_sp_encode(void *st, const uint8_t *hdr, size_t hdr_len, const uint8_t *body, size_t body_len,
    uint8_t *prefix)
{
	sp_state *s = st;
	(void) hdr;
	(void) body;
	if (s->ipc) {
		prefix[0] = 0x01;
		ik_put_u64(prefix + 1, (uint64_t) hdr_len + body_len);
		return 9;
	}
	ik_put_u64(prefix, (uint64_t) hdr_len + body_len);
	return 8;
}

#define SP_TCP(sym, name, kind)                        \
	const ik_transport sym = {                     \
		.scheme     = name,                    \
		.flags      = IK_TF_SP | IK_TF_LISTEN, \
		.addr       = kind,                    \
		.state_size = sizeof(sp_state),        \
		.init       = sp_init_tcp,             \
		.handshake  = ik_sp_handshake,         \
		.peer_proto = ik_sp_peer_proto,        \
		.frame      = ik_sp_frame,             \
		.encode     = ik_sp_encode,            \
	};

SP_TCP(ik_tran_tcp, "tcp", IK_ADDR_TCP)
SP_TCP(ik_tran_tcp4, "tcp4", IK_ADDR_TCP4)
SP_TCP(ik_tran_tcp6, "tcp6", IK_ADDR_TCP6)

const ik_transport ik_tran_ipc = {
	.scheme     = "ipc",
	.flags      = IK_TF_SP | IK_TF_LISTEN,
	.addr       = IK_ADDR_UNIX,
	.state_size = sizeof(sp_state),
	.init       = sp_init_ipc,
	.handshake  = ik_sp_handshake,
	.peer_proto = ik_sp_peer_proto,
	.frame      = ik_sp_frame,
	.encode     = ik_sp_encode,
};

/* inproc moves messages between sockets of one process without bytes; the
 * pipe code handles it entirely, so it has no codec. */
const ik_transport ik_tran_inproc = {
	.scheme = "inproc",
	.flags  = IK_TF_INPROC | IK_TF_LISTEN,
	.addr   = IK_ADDR_NONE,
};
