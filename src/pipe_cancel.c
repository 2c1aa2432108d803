/*
 * pipe_cancel.c - out-of-band cancellation over a side connection.
 *
 * PostgreSQL cancels a running query only through a NEW connection to the
 * server carrying a CancelRequest (the backend's pid and secret key); the
 * server closes it without a reply.  ik_pipe_cancel opens one to the address
 * the pipe is connected to, writes the transport's packet, and closes.
 * Fire and forget: the cancelled request still completes on its own
 * connection (with the server's "canceling statement" error) or times out.
 * Kernel thread only.
 */
#include <stdlib.h>
#include <string.h>

#include "pipe.h"

typedef struct cancel_conn {
	union {
		uv_handle_t handle;
		uv_stream_t stream;
		uv_tcp_t    tcp;
		uv_pipe_t   unix_pipe;
	} h;
	uv_connect_t creq;
	uv_write_t   wreq;
	uint8_t      pkt[16];
} cancel_conn;

static void
cancel_closed(uv_handle_t *h)
{
	free(h->data);
}

static void
cancel_written(uv_write_t *w, int status)
{
	cancel_conn *c = w->data;
	(void) status;
	uv_close(&c->h.handle, cancel_closed);
}

static void
cancel_connected(uv_connect_t *req, int status)
{
	cancel_conn *c = req->data;
	uv_buf_t     b = uv_buf_init((char *) c->pkt, sizeof(c->pkt));
	if (status != 0 || uv_write(&c->wreq, &c->h.stream, &b, 1, cancel_written) != 0) {
		uv_close(&c->h.handle, cancel_closed);
	}
}

int
ik_pipe_cancel(ik_pipe *p)
{
	struct sockaddr_storage sa;
	int                     salen = sizeof(sa);
	char                    path[512];
	size_t                  plen = sizeof(path);
	cancel_conn            *c;
	int                     rv;

	if (p->tran->cancel_packet == NULL || !p->is_stream || p->state != IK_PIPE_ACTIVE) {
		return IOK_ENOTSUP;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		return IOK_ENOMEM;
	}
	if (p->tran->cancel_packet(p->tstate, c->pkt) != 0) {
		free(c);
		return IOK_ENOTSUP;
	}
	c->h.handle.data = c;
	c->creq.data     = c;
	c->wreq.data     = c;
	if (p->h.handle.type == UV_TCP) {
		if (uv_tcp_getpeername(&p->h.tcp, (struct sockaddr *) &sa, &salen) != 0 ||
		    uv_tcp_init(ik_loop(), &c->h.tcp) != 0) {
			free(c);
			return IOK_ECONNRESET;
		}
		rv = uv_tcp_connect(&c->creq, &c->h.tcp, (struct sockaddr *) &sa, cancel_connected);
	} else {
		if (uv_pipe_getpeername(&p->h.unix_pipe, path, &plen) != 0 ||
		    plen >= sizeof(path) || uv_pipe_init(ik_loop(), &c->h.unix_pipe, 0) != 0) {
			free(c);
			return IOK_ECONNRESET;
		}
		path[plen] = '\0';
		uv_pipe_connect(&c->creq, &c->h.unix_pipe, path, cancel_connected);
		rv = 0;
	}
	if (rv != 0) {
		uv_close(&c->h.handle, cancel_closed);
		return IOK_ECONNRESET;
	}
	return 0;
}
