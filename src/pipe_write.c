/*
 * pipe_write.c - a pipe's output (see pipe.h).
 *
 * Writing: messages are framed into a batch; the batch goes out with
 * one writev at the end of the loop iteration, while the next one fills.
 * The codec's own requests (probe, subscriptions, release) queue their
 * bytes the same way.  Inproc pipes push to the peer's inbox instead.
 */
#include <stdlib.h>
#include <string.h>

#include "ep.h"
#include "pipe_int.h"

#define COPY_MAX (8 * 1024)    /* larger bodies are written in place */
#define WRITE_HWM (256 * 1024) /* bytes queued before a pipe says "full" */

static void flush_writes(ik_pipe *p);
static void inproc_send(ik_pipe *p, iok_msg *m);

#define KEEP_IDLE (64 * 1024) /* batch buffer an idle connection may keep */

/* Empty a written batch.  keep_cap: more is queued behind it, so its
 * buffer will fill again at once; freeing a big one here made every write
 * of a busy connection regrow it by doubling (a fifth of a fan-out
 * publisher's time in realloc copies). */
static void
wbatch_reset(ik_wbatch *b, bool keep_cap)
{
	for (size_t i = 0; i < b->nsegs; i++) {
		iok_msg_free(b->segs[i].msg);
	}
	b->nsegs      = 0;
	b->total      = 0;
	b->last_bytes = b->bytes.len;
	b->bytes.len  = 0;
	/* Do not let one burst pin a big buffer on an idle connection. */
	if (!keep_cap && b->bytes.cap > KEEP_IDLE) {
		ik_buf_fini(&b->bytes);
	}
}

void
ik_pipe_writes_fini(ik_pipe *p)
{
	for (int i = 0; i < 2; i++) {
		wbatch_reset(&p->wb[i], false);
		ik_buf_fini(&p->wb[i].bytes);
		free(p->wb[i].segs);
		free(p->wb[i].bufs);
	}
}

/* ------------------------------------------------------------ messages out */

static int
wseg_reserve(ik_wbatch *b, size_t n)
{
	if (b->capsegs - b->nsegs >= n) {
		return 0;
	}
	size_t   cap = b->capsegs ? b->capsegs * 2 : 8;
	ik_wseg *ns;
	while (cap - b->nsegs < n) {
		cap *= 2;
	}
	if ((ns = realloc(b->segs, cap * sizeof(*ns))) == NULL) {
		return IOK_ENOMEM;
	}
	b->segs    = ns;
	b->capsegs = cap;
	return 0;
}

static int
wseg_add(ik_wbatch *b, iok_msg *msg, size_t off, size_t len)
{
	if (msg == NULL && b->nsegs > 0) {
		ik_wseg *last = &b->segs[b->nsegs - 1];
		if (last->msg == NULL && last->off + last->len == off) {
			last->len += len; /* consecutive copied frames: one iovec */
			return 0;
		}
	}
	if (b->nsegs == b->capsegs) {
		size_t   n  = b->capsegs ? b->capsegs * 2 : 8;
		ik_wseg *ns = realloc(b->segs, n * sizeof(*ns));
		if (ns == NULL) {
			return IOK_ENOMEM;
		}
		b->segs    = ns;
		b->capsegs = n;
	}
	b->segs[b->nsegs++] = (ik_wseg) { .msg = msg, .off = off, .len = len };
	return 0;
}

/* Queue raw bytes (handshakes) ahead of anything else in the batch. */
int
ik_pipe_queue_bytes(ik_pipe *p, const void *data, size_t len)
{
	ik_wbatch *b   = &p->wb[p->wfill];
	size_t     off = b->bytes.len;
	int        rv;
	if ((rv = ik_buf_append(&b->bytes, data, len)) != 0 ||
	    (rv = wseg_add(b, NULL, off, len)) != 0) {
		return rv;
	}
	b->total += len;
	ik_task_schedule(&p->task);
	return 0;
}

/* frame_full: the codec writes the whole wire form into the batch (the
 * message's bytes are not sent as they are), so m is always done with. */
static int
frame_full(ik_pipe *p, iok_msg *m, bool keep)
{
	ik_wbatch *b   = &p->wb[p->wfill];
	size_t     off = b->bytes.len;
	int        rv;

	if (wseg_reserve(b, 1) != 0) {
		return IOK_ENOMEM;
	}
	rv = p->tran->encode_full(p->tstate, m->hdr, m->hdr_len, m->body, m->len, &b->bytes);
	if (rv < 0) {
		b->bytes.len = off; /* nothing half-written goes out */
		if (rv != -IOK_ENOMEM) {
			p->sock->stats[IK_STAT_TX_DROPPED]++;
		}
		return -rv;
	}
	(void) wseg_add(b, NULL, off, b->bytes.len - off);
	b->total += b->bytes.len - off;
	if (!keep) {
		iok_msg_free(m);
	}
	ik_task_schedule(&p->task);
	return 0;
}

/* Frame m into the filling batch.  Small bodies are copied (keep says
 * whether m stays the caller's); big ones are written in place, so the
 * batch takes m (never with keep).  0 or IOK_E*; on error m is untouched. */
static int
frame_into_batch(ik_pipe *p, iok_msg *m, bool keep)
{
	uint8_t    prefix[IK_PREFIX_MAX];
	ssize_t    pl;
	ik_wbatch *b;
	size_t     off;

	if (p->tran->encode_full != NULL) {
		return frame_full(p, m, keep);
	}
	pl = p->tran->encode(p->tstate, m->hdr, m->hdr_len, m->body, m->len, prefix);
	if (pl < 0) {
		p->sock->stats[IK_STAT_TX_DROPPED]++;
		return (int) -pl;
	}
	b             = &p->wb[p->wfill];
	off           = b->bytes.len;
	bool   copy   = m->len <= COPY_MAX;
	size_t nbytes = (size_t) pl + m->hdr_len + (copy ? m->len : 0);
	/* A freed buffer comes back as big as the last batch needed, at once:
	 * growing it by doubling copied a busy connection's bytes again. */
	if (b->bytes.cap == 0 && b->last_bytes > nbytes) {
		(void) ik_buf_reserve(&b->bytes, b->last_bytes); /* else: below */
	}
	/* Room for everything first, so a failure leaves the batch as it was
	 * (a prefix sent without its body would break the stream). */
	if (ik_buf_reserve(&b->bytes, nbytes) != 0 || wseg_reserve(b, 2) != 0) {
		return IOK_ENOMEM;
	}
	if (nbytes > 0) {
		/* (None at all for a big body without prefix: a Redis command
		 * is written as is, and the buffer may not exist yet.) */
		(void) wseg_add(b, NULL, off, nbytes);
		memcpy(b->bytes.data + off, prefix, (size_t) pl);
		if (m->hdr_len > 0) {
			memcpy(b->bytes.data + off + pl, m->hdr, m->hdr_len);
		}
		if (copy && m->len > 0) {
			memcpy(b->bytes.data + off + (size_t) pl + m->hdr_len, m->body, m->len);
		}
	}
	b->bytes.len += nbytes;
	b->total += (size_t) pl + m->hdr_len + m->len;
	if (!copy) {
		b->segs[b->nsegs++] = (ik_wseg) { .msg = m, .off = 0, .len = m->len };
	} else if (!keep) {
		iok_msg_free(m);
	}
	ik_task_schedule(&p->task);
	return 0;
}

int
ik_pipe_send(ik_pipe *p, iok_msg *m)
{
	int rv;
	if (p->state != IK_PIPE_ACTIVE) {
		iok_msg_free(m);
		p->sock->stats[IK_STAT_TX_DROPPED]++;
		return IOK_ECLOSED;
	}
	if (!p->is_stream) {
		inproc_send(p, m);
		return 0;
	}
	size_t len = m->len;
	if ((rv = frame_into_batch(p, m, false)) != 0) {
		iok_msg_free(m);
		if (rv == IOK_ENOMEM) {
			ik_pipe_close(p, IOK_ENOMEM);
		}
		return rv;
	}
	p->tx_msgs++;
	p->tx_bytes += len;
	return 0;
}

int
ik_pipe_send_copy(ik_pipe *p, const iok_msg *m)
{
	int rv;
	if (p->state == IK_PIPE_ACTIVE && p->is_stream && m->len <= COPY_MAX) {
		/* Fan-out: the bytes go straight into the batch, no copy of m. */
		if ((rv = frame_into_batch(p, (iok_msg *) m, true)) == IOK_ENOMEM) {
			ik_pipe_close(p, IOK_ENOMEM);
		} else if (rv == 0) {
			p->tx_msgs++;
			p->tx_bytes += m->len;
		}
		return rv;
	}
	if (p->state == IK_PIPE_ACTIVE && !p->is_stream && m->hdr_len > 0) {
		/* Inproc hands header and body over as one body: a view of m
		 * would copy both into its own room anyway, after a reference
		 * on m taken here and dropped on the peer's thread.  Copy them
		 * flat at once (a req's kept requests: no atomic on them). */
		iok_msg *c = ik_msg_alloc(m->hdr_len + m->len);
		if (c == NULL) {
			return IOK_ENOMEM;
		}
		memcpy(c->body, m->hdr, m->hdr_len);
		if (m->len > 0) {
			memcpy(c->body + m->hdr_len, m->body, m->len);
		}
		return ik_pipe_send(p, c);
	}
	/* Otherwise the pipe holds m too (read-only; inproc delivery makes
	 * the peer a view of it, see msg.h): no copy of the body. */
	return ik_pipe_send(p, ik_msg_ref((iok_msg *) m));
}

int
ik_pipe_writable(const ik_pipe *p)
{
	if (p->state != IK_PIPE_ACTIVE) {
		return 0;
	}
	if (p->is_stream) {
		if (p->wb[0].total + p->wb[1].total >= WRITE_HWM) {
			((ik_pipe *) p)->was_full = true;
			return 0;
		}
		return 1;
	}
	if (p->peer_pipe == NULL || p->peer_pipe->inbox.len >= IK_INPROC_HWM) {
		((ik_pipe *) p)->was_full = true;
		return 0;
	}
	return 1;
}

/* The pipe drained below its mark: the pattern may route to it again. */
void
ik_pipe_writable_again(ik_pipe *p)
{
	if (p->was_full && p->state == IK_PIPE_ACTIVE) {
		p->was_full = false;
		for (int i = 0; i < 2; i++) {
			ik_att *a = &p->att[i];
			if (a->added && a->sock->pat->pipe_ready != NULL) {
				a->sock->pat->pipe_ready(a->sock->pdata, a->pdata);
			}
		}
		for (int i = 0; i < 2; i++) {
			if (p->att[i].added) {
				ik_sock_pump(p->att[i].sock);
			}
		}
	}
}

static void
write_cb(uv_write_t *req, int status)
{
	ik_pipe   *p    = req->data;
	ik_wbatch *b    = ik_container_of(req, ik_wbatch, req);
	ik_wbatch *next = &p->wb[p->wfill];
	/* The batch that filled meanwhile goes next; the written one fills
	 * behind it.  Nothing filled: the connection went quiet, and neither
	 * keeps a big buffer. */
	bool busy = next->total > 0;
	wbatch_reset(b, busy);
	if (!busy && next->bytes.cap > KEEP_IDLE) {
		ik_buf_fini(&next->bytes);
	}
	p->writing = false;
	if (status < 0) {
		if (p->state != IK_PIPE_CLOSING) {
			ik_pipe_close(p, IOK_ECONNRESET);
		}
		return;
	}
	if (p->state == IK_PIPE_CLOSING) {
		return;
	}
	flush_writes(p);
	if (p->wb[0].total + p->wb[1].total < WRITE_HWM) {
		ik_pipe_writable_again(p);
	}
	if (p->sock->closing) {
		ik_sock_maybe_finish_close(p->sock);
	}
}

static void
flush_writes(ik_pipe *p)
{
	ik_wbatch *b = &p->wb[p->wfill];
	if (p->writing || b->total == 0 || p->state == IK_PIPE_CLOSING) {
		return;
	}
	p->sock->stats[IK_STAT_TX_WRITES]++;
	if (b->capbufs < b->nsegs) {
		uv_buf_t *nb = realloc(b->bufs, b->nsegs * sizeof(*nb));
		if (nb == NULL) {
			ik_pipe_close(p, IOK_ENOMEM);
			return;
		}
		b->bufs    = nb;
		b->capbufs = b->nsegs;
	}
	for (size_t i = 0; i < b->nsegs; i++) {
		ik_wseg *sg   = &b->segs[i];
		char    *base = sg->msg ? (char *) sg->msg->body : (char *) b->bytes.data + sg->off;
		b->bufs[i]    = uv_buf_init(base, (unsigned int) sg->len);
	}
	/* Nothing is in flight: write now.  Usually all of it goes, and then
	 * there is no write request, and libuv re-arms no POLLOUT watcher
	 * (one epoll_ctl per write, i.e. per round trip, otherwise). */
	uv_buf_t *bufs  = b->bufs;
	size_t    nbufs = b->nsegs;
	int       n     = uv_try_write(&p->h.stream, bufs, (unsigned int) nbufs);
	if (n < 0 && n != UV_EAGAIN && n != UV_ENOSYS) {
		ik_pipe_close(p, IOK_ECONNRESET);
		return;
	}
	for (size_t done = n > 0 ? (size_t) n : 0; done > 0 && nbufs > 0;) {
		if (done >= bufs->len) {
			done -= bufs->len;
			bufs++;
			nbufs--;
		} else {
			bufs->base += done;
			bufs->len -= done;
			done = 0;
		}
	}
	if (nbufs == 0) {
		wbatch_reset(b, false);
		if (p->wb[0].total + p->wb[1].total < WRITE_HWM) {
			ik_pipe_writable_again(p);
		}
		if (p->sock->closing) {
			ik_sock_maybe_finish_close(p->sock);
		}
		return;
	}
	if (uv_write(&b->req, &p->h.stream, bufs, (unsigned int) nbufs, write_cb) != 0) {
		ik_pipe_close(p, IOK_ECONNRESET);
		return;
	}
	p->writing = true;
	p->wfill ^= 1;
}

/* -------------------------------------------------------------- inproc */

static void
inproc_send(ik_pipe *p, iok_msg *m)
{
	ik_pipe *peer = p->peer_pipe;
	iok_msg *own;
	/* The peer may not be active yet (pairs activate one after the
	 * other): its inbox holds the message until it is.  A message other
	 * pipes hold too (fan-out) reaches the peer as a view of it. */
	if (peer == NULL || peer->state == IK_PIPE_CLOSING || (own = ik_msg_private(m)) == NULL ||
	    ik_msg_header_to_body(m = own) != 0) {
		iok_msg_free(m);
		p->sock->stats[IK_STAT_TX_DROPPED]++;
		return;
	}
	if (peer->recv_max > 0 && m->len > peer->recv_max) {
		/* Both ends are ours: refuse it here, where it is counted
		 * against the sender, rather than hand it over. */
		iok_msg_free(m);
		p->sock->stats[IK_STAT_TX_OVERSIZE]++;
		return;
	}
	if (ik_msgq_room(&peer->inbox) == 0 &&
	    ik_msgq_reserve(&peer->inbox, peer->inbox.len * 2) != 0) {
		iok_msg_free(m);
		ik_pipe_close(p, IOK_ENOMEM);
		return;
	}
	/* Arrive as a message off the wire would: the sender's routing facts
	 * (e.g. IK_MSG_PARSED set when a device forwards a received message)
	 * must not make the peer's pattern skip its header. */
	m->pipe   = peer->id;
	m->flags  = 0;
	m->token  = 0;
	m->status = 0;
	p->tx_msgs++;
	p->tx_bytes += m->len;
	peer->rx_msgs++;
	peer->rx_bytes += m->len;
	ik_msgq_push(&peer->inbox, m);
	ik_task_schedule(&peer->task);
	p->sock->handed_inproc = true; /* the pump slices its turn (PUMP_SLICE) */
}

void
ik_pipe_task_fn(ik_task *t)
{
	ik_pipe *p = ik_container_of(t, ik_pipe, task);
	if (p->is_stream) {
		flush_writes(p);
	} else {
		ik_pipe_inproc_deliver(p);
	}
}

/* ------------------------------------------------------ codec requests */

int
ik_pipe_probe(ik_pipe *p)
{
	ik_buf out;
	int    rv;
	if (p->tran->probe == NULL || p->tran->probe_ok == NULL) {
		return IOK_ENOTSUP;
	}
	if (p->state != IK_PIPE_ACTIVE) {
		return IOK_ECLOSED;
	}
	ik_buf_init(&out);
	rv = p->tran->probe(p->tstate, &out);
	if (rv == 0 && out.len > 0) {
		rv = -ik_pipe_queue_bytes(p, out.data, out.len);
	}
	ik_buf_fini(&out);
	if (rv != 0) {
		ik_pipe_close(p, -rv); /* the codec may expect a reply it never gets */
		return -rv;
	}
	p->sock->stats[IK_STAT_PROBES]++;
	return 0;
}

int
ik_pipe_probe_answer(ik_pipe *p, iok_msg *m)
{
	/* A reply the pipe skipped for its size (status set) is still an
	 * answer. */
	int ok = m->status != 0 || p->tran->probe_ok(p->tstate, iok_msg_body(m), iok_msg_len(m));
	iok_msg_free(m);
	if (!ok) {
		return IOK_EPROTO;
	}
	if (p->up != NULL) {
		ik_upstream_ok(p->up);
	}
	return 0;
}

/* Held subscriptions are kept as (how, len, topic) records and encoded
 * only when released, so a transport that tracks its own requests (the
 * PostgreSQL codec counts its LISTENs' replies) sees them in wire order. */
static int
sub_encode(ik_pipe *p, const void *topic, size_t len, unsigned how)
{
	ik_buf out;
	int    rv;
	ik_buf_init(&out);
	rv = p->tran->subscribe(p->tstate, topic, len, how, &out);
	if (rv == 0 && out.len > 0) {
		rv = ik_pipe_queue_bytes(p, out.data, out.len);
	}
	ik_buf_fini(&out);
	return rv < 0 ? -rv : rv;
}

int
ik_pipe_subscribe(ik_pipe *p, const void *topic, size_t len, unsigned how)
{
	uint8_t rec[8];
	if (p->tran->subscribe == NULL) {
		return IOK_ENOTSUP;
	}
	if (p->state != IK_PIPE_ACTIVE) {
		return IOK_ECLOSED;
	}
	if (!p->sub_hold) {
		return sub_encode(p, topic, len, how);
	}
	if (p->tran->encode_full == NULL) {
		/* A stateless codec: try it now, for its verdict. */
		ik_buf out;
		int    rv;
		ik_buf_init(&out);
		rv = p->tran->subscribe(p->tstate, topic, len, how, &out);
		ik_buf_fini(&out);
		if (rv != 0) {
			return rv < 0 ? -rv : rv;
		}
	}
	ik_put_u32(rec, how);
	ik_put_u32(rec + 4, (uint32_t) len);
	if (ik_buf_append(&p->sub_held, rec, 8) != 0 ||
	    ik_buf_append(&p->sub_held, topic, len) != 0) {
		return IOK_ENOMEM;
	}
	return 0;
}

void
ik_pipe_hold_subscribe(ik_pipe *p, int hold)
{
	p->sub_hold = hold != 0;
	if (!p->sub_hold && p->sub_held.len > 0) {
		size_t off = 0;
		while (p->state == IK_PIPE_ACTIVE && p->sub_held.len - off >= 8) {
			unsigned how = ik_get_u32(p->sub_held.data + off);
			size_t   len = ik_get_u32(p->sub_held.data + off + 4);
			if (sub_encode(p, p->sub_held.data + off + 8, len, how) == IOK_ENOMEM) {
				ik_pipe_close(p, IOK_ENOMEM);
			}
			off += 8 + len;
		}
		p->sub_held.len = 0;
	}
}

int
ik_pipe_release(ik_pipe *p)
{
	ik_buf out;
	int    rv;
	if (p->tran->release == NULL || p->state != IK_PIPE_ACTIVE) {
		return 0;
	}
	ik_buf_init(&out);
	rv = p->tran->release(p->tstate, &out);
	if (rv == 0 && out.len > 0) {
		rv = -ik_pipe_queue_bytes(p, out.data, out.len);
	}
	ik_buf_fini(&out);
	if (rv != 0) {
		ik_pipe_close(p, -rv); /* never hand on a connection in a transaction */
	}
	return -rv;
}
