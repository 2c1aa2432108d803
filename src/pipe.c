/*
 * pipe.c - connections (see pipe.h).
 *
 * Reading: bytes land in p->in; the codec cuts frames; each frame becomes a
 * message handed to the pattern.  A refused message is held and reading
 * pauses until the socket has room (backpressure reaches the peer through
 * TCP).  Writing: messages are framed into a batch; the batch goes out with
 * one writev at the end of the loop iteration, while the next one fills.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>

#include "ep.h"
#include "pipe.h"
#include "../transports/sp.h"

#define READ_MIN (8 * 1024)    /* an idle connection keeps this little */
#define READ_MAX (256 * 1024)  /* grown to this while reads fill it */
#define COPY_MAX (8 * 1024)    /* larger bodies are written in place */
#define WRITE_HWM (256 * 1024) /* bytes queued before a pipe says "full" */
#define INPROC_HWM 1024        /* messages queued to an inproc peer */

static uint32_t next_pipe_id = 1;

static void pipe_task_fn(ik_task *t);
static int  queue_bytes(ik_pipe *p, const void *data, size_t len);
static void process_input(ik_pipe *p);
static void start_reading(ik_pipe *p);
static void pipe_fail(ik_pipe *p, int err);

uint32_t
ik_pipe_id(const ik_pipe *p)
{
	return p->id;
}

uint16_t
ik_pipe_peer(const ik_pipe *p)
{
	return p->peer;
}

unsigned
ik_pipe_flags(const ik_pipe *p)
{
	return p->tran->flags;
}

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
		rv = -queue_bytes(p, out.data, out.len);
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

unsigned
ik_pipe_rank(const ik_pipe *p)
{
	if (p->tran->rank == NULL) {
		return 0;
	}
	if (p->state != IK_PIPE_ACTIVE) {
		return IK_RANK_GONE; /* closing: never preferred over a live one */
	}
	return (unsigned) p->tran->rank(p->tstate);
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
		rv = queue_bytes(p, out.data, out.len);
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
		rv = -queue_bytes(p, out.data, out.len);
	}
	ik_buf_fini(&out);
	if (rv != 0) {
		ik_pipe_close(p, -rv); /* never hand on a connection in a transaction */
	}
	return -rv;
}

static size_t
align16(size_t n)
{
	return (n + 15) & ~(size_t) 15;
}

static ik_pipe *
pipe_alloc(ik_sock *s, ik_ep *ep, const ik_transport *t)
{
	size_t   base = align16(sizeof(ik_pipe));
	size_t   tsz  = align16(t->state_size);
	ik_pipe *p    = calloc(1, base + tsz + s->pat->pipe_size);
	if (p == NULL) {
		return NULL;
	}
	p->id = next_pipe_id++;
	if (next_pipe_id > 0x7fffffff) {
		next_pipe_id = 1; /* SP backtraces use 31-bit pipe ids */
	}
	p->sock     = s;
	p->ep       = ep;
	p->tran     = t;
	p->tstate   = (char *) p + base;
	p->recv_max = ep->topts.recv_max;
	p->state    = IK_PIPE_HANDSHAKE;
	for (int i = 0; i < 2; i++) {
		p->att[i].pipe = p;
		ik_node_init(&p->att[i].snode);
		ik_node_init(&p->att[i].pnode);
	}
	p->att[0].sock  = s;
	p->att[0].pdata = (char *) p + base + tsz;
	ik_node_init(&p->enode);
	ik_task_init(&p->task, pipe_task_fn);
	ik_buf_init(&p->in);
	ik_buf_init(&p->hsout);
	ik_buf_init(&p->sub_held);
	for (int i = 0; i < 2; i++) {
		ik_buf_init(&p->wb[i].bytes);
		p->wb[i].req.data = p;
	}
	ik_list_append(&ep->pipes, &p->enode);
	s->npipes++;
	if (ep->sharer != NULL) {
		(void) ik_pipe_attach(p, ep->sharer); /* joins it when active */
	}
	return p;
}

static void
wbatch_reset(ik_wbatch *b)
{
	for (size_t i = 0; i < b->nsegs; i++) {
		iok_msg_free(b->segs[i].msg);
	}
	b->nsegs     = 0;
	b->total     = 0;
	b->bytes.len = 0;
	/* Do not let one burst pin a big buffer on an idle connection. */
	if (b->bytes.cap > 64 * 1024) {
		ik_buf_fini(&b->bytes);
	}
}

static void sharer_release(ik_att *a);

static void
pipe_free(ik_pipe *p)
{
	ik_sock *s  = p->sock;
	ik_ep   *ep = p->ep;

	/* The endpoint going away may drop the last socket reference. */
	ik_obj_ref(&s->obj);
	/* A pipe that never got to close_task_fn (a failed connect, freed by
	 * ik_pipe_discard) still holds the sharer it was attached to. */
	sharer_release(&p->att[IK_ATT_SHARER]);
	if (p->tran->fini != NULL && p->tstate != NULL) {
		p->tran->fini(p->tstate);
	}
	for (int i = 0; i < 2; i++) {
		wbatch_reset(&p->wb[i]);
		ik_buf_fini(&p->wb[i].bytes);
		free(p->wb[i].segs);
		free(p->wb[i].bufs);
	}
	ik_buf_fini(&p->in);
	ik_buf_fini(&p->hsout);
	ik_buf_fini(&p->sub_held);
	ik_msgq_fini(&p->inbox);
	iok_msg_free(p->held);
	ik_task_cancel(&p->task);
	ik_list_remove(&p->enode);
	s->npipes--;
	ik_ep_pipe_gone(ep, p);
	free(p->xs);
	free(p);
	ik_sock_maybe_finish_close(s);
	ik_sock_rele(s);
}

/* Forget one attachment: the pattern's pipe_rm, lists, held message. */
static void
att_remove(ik_att *a)
{
	ik_pipe *p = a->pipe;
	ik_sock *s = a->sock;
	if (a->added) {
		a->added = false;
		ik_list_remove(&a->snode);
		s->pat->pipe_rm(s->pdata, a->pdata);
		if (--s->stats[IK_STAT_PIPES] == 0) {
			ik_sock_peers_crossed(s);
		}
		ik_sock_peer_limits(s);
	}
	if (ik_node_linked(&a->pnode)) {
		ik_list_remove(&a->pnode);
	}
	if (p->held != NULL && &p->att[p->held_att] == a) {
		iok_msg_free(p->held);
		p->held   = NULL;
		p->paused = false;
	}
}

/* The sharer's part goes at once; the pipe carries on for its owner. */
static void
sharer_release(ik_att *a)
{
	ik_sock *s = a->sock;
	if (s == NULL) {
		return;
	}
	att_remove(a);
	if (a->own_pdata) {
		free(a->pdata);
	}
	a->pdata     = NULL;
	a->own_pdata = false;
	a->sock      = NULL;
	s->npipes--;
	ik_sock_maybe_finish_close(s);
	ik_sock_rele(s);
}

static void
handle_closed(uv_handle_t *h)
{
	ik_pipe *p = h->data;
	/* Freed when its handles are closed and close_task_fn has run (a
	 * fork can close the stream before the task). */
	if (--p->handles_open == 0 && p->close_done) {
		pipe_free(p);
	}
}

/* Close the stream handle now: libuv closes the descriptor at once. */
static void
close_stream_now(ik_pipe *p)
{
	if (p->is_stream && !uv_is_closing(&p->h.handle)) {
		p->handles_open++;
		uv_close(&p->h.handle, handle_closed);
	}
}

/* The pattern forgets the pipe; then its handles close and it is freed. */
static void
close_task_fn(ik_task *t)
{
	ik_pipe *p = ik_container_of(t, ik_pipe, task);

	sharer_release(&p->att[IK_ATT_SHARER]);
	att_remove(&p->att[IK_ATT_OWNER]);
	iok_msg_free(p->held);
	p->held = NULL;
	if (p->is_stream) {
		if (p->hs_timer_on && !uv_is_closing((uv_handle_t *) &p->hs_timer)) {
			p->handles_open++;
			uv_close((uv_handle_t *) &p->hs_timer, handle_closed);
		}
		close_stream_now(p);
		p->close_done = true;
		if (p->handles_open == 0) {
			pipe_free(p); /* everything closed already */
		}
	} else {
		ik_pipe *peer = p->peer_pipe;
		if (peer != NULL) {
			peer->peer_pipe = NULL;
			ik_pipe_close(peer, IOK_ECONNRESET);
		}
		pipe_free(p);
	}
}

void
ik_pipe_close(ik_pipe *p, int err)
{
	if (p->state == IK_PIPE_CLOSING) {
		return;
	}
	p->state     = IK_PIPE_CLOSING;
	p->close_err = err;
	if (p->is_stream && p->reading) {
		uv_read_stop(&p->h.stream);
		p->reading = false;
	}
	/* Reuse the pipe's task: nothing else is worth doing once closing. */
	ik_task_cancel(&p->task);
	p->task.fn = close_task_fn;
	ik_task_schedule(&p->task);
}

/* A protocol-level failure: count it, then close. */
static void
pipe_fail(ik_pipe *p, int err)
{
	ik_sock *s = p->sock;
	if (p->tran->error_text != NULL && p->begun) {
		char why[sizeof(s->last_error)];
		why[0] = '\0';
		p->tran->error_text(p->tstate, why, sizeof(why));
		if (why[0] != '\0') {
			memcpy(s->last_error, why, sizeof(why));
		}
	}
	if (err == IOK_EMSGSIZE) {
		s->stats[IK_STAT_RX_OVERSIZE]++;
	} else if (err == IOK_EPROTO || err == IOK_EPEERAUTH) {
		s->stats[IK_STAT_PROTO_ERRORS]++;
	}
	ik_pipe_close(p, err);
}

/* ------------------------------------------------------------ activation */

static int
att_add(ik_att *a)
{
	ik_sock *s = a->sock;
	int      rv;
	if ((rv = s->pat->pipe_add(s->pdata, a->pdata, a->pipe)) != 0) {
		return rv;
	}
	a->added = true;
	ik_list_append(&s->pipes, &a->snode);
	if (++s->stats[IK_STAT_PIPES] == 1) {
		ik_sock_peers_crossed(s);
	}
	s->stats[IK_STAT_PIPES_OPENED]++;
	ik_sock_peer_limits(s);
	return 0;
}

void
ik_pipe_set_recv_max(ik_pipe *p, size_t recv_max)
{
	p->recv_max = recv_max;
	if (p->is_stream) {
		if (p->begun && p->tran->set_recv_max != NULL) {
			p->tran->set_recv_max(p->tstate, recv_max);
		}
	} else if (p->peer_pipe != NULL && p->peer_pipe->att[IK_ATT_OWNER].added) {
		ik_sock_peer_limits(p->peer_pipe->sock);
	}
}

int
ik_pipe_attach(ik_pipe *p, ik_sock *s)
{
	ik_att *a = &p->att[IK_ATT_SHARER];
	int     rv;
	if (a->sock != NULL || p->state == IK_PIPE_CLOSING) {
		return IOK_EBUSY;
	}
	if (s->pat->pipe_size > 0 && (a->pdata = calloc(1, s->pat->pipe_size)) == NULL) {
		return IOK_ENOMEM;
	}
	a->own_pdata = a->pdata != NULL;
	a->sock      = s;
	s->npipes++;
	ik_obj_ref(&s->obj);
	if (p->state == IK_PIPE_ACTIVE && (rv = att_add(a)) != 0) {
		sharer_release(a);
		return rv;
	}
	if (p->state == IK_PIPE_ACTIVE) {
		ik_sock_pump(s);
	}
	return 0;
}

void
ik_pipe_detach(ik_pipe *p)
{
	sharer_release(&p->att[IK_ATT_SHARER]);
	if (!p->paused && p->is_stream && p->state == IK_PIPE_ACTIVE) {
		process_input(p); /* a message held for the sharer is gone */
		start_reading(p);
	}
}

static bool
activate(ik_pipe *p)
{
	ik_sock *s = p->sock;
	int      rv;

	if (s->tearing) {
		/* Lingering sockets still take a peer, to flush to it. */
		ik_pipe_close(p, IOK_ECLOSED);
		return false;
	}
	/* Active first, so the pattern may send from pipe_add. */
	p->state = IK_PIPE_ACTIVE;
	if ((rv = att_add(&p->att[IK_ATT_OWNER])) != 0) {
		ik_pipe_close(p, rv);
		return false;
	}
	p->ever_active = true;
	if (p->att[IK_ATT_SHARER].sock != NULL && att_add(&p->att[IK_ATT_SHARER]) == 0) {
		ik_sock_pump(p->att[IK_ATT_SHARER].sock);
	}
	if (!p->is_stream && p->inbox.len > 0) {
		ik_task_schedule(&p->task); /* sent to us before we were up */
	}
	ik_ep_pipe_up(p->ep, p);
	ik_sock_pump(s); /* messages may have waited for a peer */
	return p->state == IK_PIPE_ACTIVE;
}

/* ------------------------------------------------------------ messages in */

/* Offer m to the pattern of attachment ai; false if it was refused (the
 * pipe now pauses). */
static bool
offer(ik_pipe *p, int ai, iok_msg *m)
{
	ik_att  *a = &p->att[ai];
	ik_sock *s = a->sock;
	if (s == NULL || !a->added) {
		iok_msg_free(m); /* nobody takes pushes here */
		p->sock->stats[IK_STAT_RX_DROPPED]++;
		return true;
	}
	if (s->pat->recv(s->pdata, a->pdata, m) == IK_BUSY) {
		p->held     = m;
		p->held_att = ai;
		p->paused   = true;
		ik_sock_att_paused(s, a);
		if (p->reading) {
			uv_read_stop(&p->h.stream);
			p->reading = false;
		}
		return false;
	}
	return true;
}

static iok_msg *
frame_to_msg(ik_pipe *p, size_t flen, const ik_frame *f)
{
	uint8_t *start = p->in.data + p->in_off;
	size_t   rest  = p->in.len - p->in_off - flen;
	iok_msg *m;

	if (f->body_len >= 64 * 1024 && rest < 4096) {
		/* Big frame: hand the whole input buffer to the message instead
		 * of copying it; the few bytes after it move to a new buffer. */
		ik_buf nb;
		ik_buf_init(&nb);
		if (ik_buf_reserve(&nb, rest > READ_MIN ? rest : READ_MIN) != 0) {
			return NULL;
		}
		m = ik_msg_adopt(p->in.data, p->in.cap, p->in_off + f->body_off, f->body_len);
		if (m == NULL) {
			ik_buf_fini(&nb);
			return NULL;
		}
		p->rx_msgs++;
		p->rx_bytes += f->body_len;
		if (rest > 0) {
			memcpy(nb.data, start + flen, rest);
		}
		nb.len    = rest;
		p->in     = nb;
		p->in_off = 0;
		return m;
	}
	if ((m = ik_msg_alloc(f->body_len)) == NULL) {
		return NULL;
	}
	if (f->body_len > 0) {
		memcpy(m->body, start + f->body_off, f->body_len);
	}
	p->in_off += flen;
	p->rx_msgs++;
	p->rx_bytes += f->body_len;
	return m;
}

static void handshake_step(ik_pipe *p);

/* A frame over recv_max on a transport that can skip it: the request it
 * answers fails with IOK_EMSGSIZE, the connection and every other request
 * on it carry on.  False if the frame must close the pipe instead. */
static bool
oversize_begin(ik_pipe *p)
{
	ik_sock *s   = p->sock;
	ik_att  *a   = &p->att[IK_ATT_OWNER];
	int      cls = IK_FRAME_REPLY;
	iok_msg *m;

	if (p->tran->skip == NULL) {
		return false;
	}
	if (p->tran->classify != NULL) {
		/* Only the frame's start is here: enough to tell a push. */
		cls = p->tran->classify(p->tstate, p->in.data + p->in_off, p->in.len - p->in_off);
	}
	s->stats[IK_STAT_RX_OVERSIZE]++;
	(void) p->tran->skip(p->tstate, NULL, 0);
	p->skipping = true;
	p->need     = 0;
	if (cls != IK_FRAME_REPLY || !a->added || !(a->sock->pat->flags & IK_PF_REQUEST)) {
		return true; /* nobody waits for it: dropped, counted */
	}
	/* The reply's place in the stream, as an error completion. */
	if ((m = ik_msg_alloc(0)) == NULL) {
		ik_pipe_close(p, IOK_ENOMEM);
		return true;
	}
	m->pipe   = p->id;
	m->status = IOK_EMSGSIZE;
	(void) offer(p, IK_ATT_OWNER, m); /* refused: held, skipping resumes */
	return true;
}

/* Step over the oversize frame: drop what the codec is done with, so the
 * buffer never holds more than a read's worth of it.  True once it is
 * passed. */
static bool
oversize_skip(ik_pipe *p)
{
	ik_frame f = { 0 };
	ssize_t  n = p->tran->frame(p->tstate, p->in.data + p->in_off, p->in.len - p->in_off, &f);
	if (n > 0) {
		p->in_off += (size_t) n;
		p->skipping = false;
		return true;
	}
	if (n < 0) {
		pipe_fail(p, (int) -n);
		return false;
	}
	p->in_off += p->tran->skip(p->tstate, p->in.data + p->in_off, p->in.len - p->in_off);
	p->need = 0;
	return false;
}

static void
process_input(ik_pipe *p)
{
	if (p->state == IK_PIPE_HANDSHAKE) {
		handshake_step(p);
	}
	while (p->state == IK_PIPE_ACTIVE && !p->paused && p->in.len > p->in_off) {
		if (p->skipping) {
			if (!oversize_skip(p)) {
				break;
			}
			continue;
		}
		ik_frame f = { 0 };
		ssize_t  n =
		    p->tran->frame(p->tstate, p->in.data + p->in_off, p->in.len - p->in_off, &f);
		if (n == 0) {
			p->need = f.need;
			break;
		}
		if (n == -IOK_EMSGSIZE && oversize_begin(p)) {
			continue;
		}
		if (n < 0) {
			pipe_fail(p, (int) -n);
			return;
		}
		p->need = 0;
		int cls = p->tran->classify
		              ? p->tran->classify(p->tstate, p->in.data + p->in_off, (size_t) n)
		              : IK_FRAME_REPLY;
		if (cls == IK_FRAME_SKIP) {
			p->in_off += (size_t) n;
			continue;
		}
		if (cls == IK_FRAME_SKIP_LAST) {
			/* The server is no longer what the URL asked for. */
			p->in_off += (size_t) n;
			ik_pipe_close(p, IOK_ECONNSHUT);
			return;
		}
		iok_msg *m = frame_to_msg(p, (size_t) n, &f);
		if (m == NULL) {
			ik_pipe_close(p, IOK_ENOMEM);
			return;
		}
		m->pipe = p->id;
		int ai  = IK_ATT_OWNER;
		if (cls == IK_FRAME_PUSH) {
			m->flags |= IK_MSG_PUSH;
			if (p->att[IK_ATT_SHARER].sock != NULL) {
				ai = IK_ATT_SHARER;
			}
		}
		if (!offer(p, ai, m)) {
			p->close_after_held = cls == IK_FRAME_LAST;
			break;
		}
		if (cls == IK_FRAME_LAST) {
			/* The reply went to its request; what follows it on this
			 * connection fails (or is retried) when it closes. */
			ik_pipe_close(p, IOK_ECONNSHUT);
			return;
		}
	}
	if (p->in_off == p->in.len) {
		p->in.len = 0;
		p->in_off = 0;
	}
}

static void
alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	ik_pipe *p     = h->data;
	size_t   avail = p->in.len - p->in_off;
	size_t   want  = READ_MIN;
	(void) suggested;

	if (p->in_off > 0 && (avail == 0 || p->in.cap - p->in.len < READ_MIN)) {
		memmove(p->in.data, p->in.data + p->in_off, avail);
		p->in.len = avail;
		p->in_off = 0;
	}
	if (p->need > avail && p->need - avail > want) {
		want = p->need - avail; /* a big frame: room for all of it */
	}
	if (ik_buf_reserve(&p->in, want) != 0) {
		buf->base = NULL;
		buf->len  = 0;
		return;
	}
	buf->base = (char *) p->in.data + p->in.len;
	buf->len  = p->in.cap - p->in.len;
}

static void
read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	ik_pipe *p = st->data;
	(void) buf;
	if (n < 0) {
		p->peer_closed = p->state != IK_PIPE_CLOSING; /* a health error */
		ik_pipe_close(p, n == UV_EOF       ? IOK_ECONNSHUT
		                 : n == UV_ENOBUFS ? IOK_ENOMEM
		                                   : IOK_ECONNRESET);
		return;
	}
	if (p->state == IK_PIPE_CLOSING) {
		return;
	}
	bool filled = (size_t) n == buf->len;
	p->in.len += (size_t) n;
	process_input(p);
	if (filled && p->in.cap < READ_MAX && p->state != IK_PIPE_CLOSING) {
		(void) ik_buf_reserve(&p->in, p->in.cap); /* double it */
	}
}

static void
start_reading(ik_pipe *p)
{
	if (!p->reading && !p->paused && p->state != IK_PIPE_CLOSING) {
		if (uv_read_start(&p->h.stream, alloc_cb, read_cb) == 0) {
			p->reading = true;
		} else {
			ik_pipe_close(p, IOK_ECONNRESET);
		}
	}
}

void
ik_pipe_resume(ik_pipe *p)
{
	if (!p->paused || p->state == IK_PIPE_CLOSING) {
		return;
	}
	iok_msg *m  = p->held;
	int      ai = p->held_att;
	p->held     = NULL;
	p->paused   = false;
	if (ik_node_linked(&p->att[ai].pnode)) {
		ik_list_remove(&p->att[ai].pnode);
	}
	if (!offer(p, ai, m)) {
		return;
	}
	if (p->close_after_held) {
		ik_pipe_close(p, IOK_ECONNSHUT);
		return;
	}
	if (p->is_stream) {
		process_input(p);
		start_reading(p);
	} else {
		ik_task_schedule(&p->task); /* more may wait in the inbox */
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
static int
queue_bytes(ik_pipe *p, const void *data, size_t len)
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

static void inproc_send(ik_pipe *p, iok_msg *m);

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
	if (p->peer_pipe == NULL || p->peer_pipe->inbox.len >= INPROC_HWM) {
		((ik_pipe *) p)->was_full = true;
		return 0;
	}
	return 1;
}

/* The pipe drained below its mark: the pattern may route to it again. */
static void
writable_again(ik_pipe *p)
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

static void flush_writes(ik_pipe *p);

static void
write_cb(uv_write_t *req, int status)
{
	ik_pipe   *p = req->data;
	ik_wbatch *b = ik_container_of(req, ik_wbatch, req);
	wbatch_reset(b);
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
		writable_again(p);
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
		wbatch_reset(b);
		if (p->wb[0].total + p->wb[1].total < WRITE_HWM) {
			writable_again(p);
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
}

static void
inproc_deliver(ik_pipe *p)
{
	iok_msg *m;
	size_t   before = p->inbox.len;
	while (!p->paused && p->state == IK_PIPE_ACTIVE && (m = ik_msgq_pop(&p->inbox)) != NULL) {
		if (!offer(p, IK_ATT_OWNER, m)) {
			break;
		}
	}
	ik_pipe *src = p->peer_pipe;
	if (src != NULL && before >= INPROC_HWM && p->inbox.len < INPROC_HWM) {
		writable_again(src);
	}
}

static void
pipe_task_fn(ik_task *t)
{
	ik_pipe *p = ik_container_of(t, ik_pipe, task);
	if (p->is_stream) {
		flush_writes(p);
	} else {
		inproc_deliver(p);
	}
}

int
ik_pipe_inproc_pair(ik_sock *ds, ik_ep *dep, ik_sock *ls, ik_ep *lep)
{
	ik_pipe *a, *b;
	if (ds->pat->peer != ls->pat->proto || ls->pat->peer != ds->pat->proto) {
		ds->stats[IK_STAT_PROTO_ERRORS]++;
		ls->stats[IK_STAT_PROTO_ERRORS]++;
		return IOK_EPROTO;
	}
	if ((a = pipe_alloc(ds, dep, &ik_tran_inproc)) == NULL) {
		return IOK_ENOMEM;
	}
	if ((b = pipe_alloc(ls, lep, &ik_tran_inproc)) == NULL) {
		pipe_free(a);
		return IOK_ENOMEM;
	}
	if (ik_msgq_init(&a->inbox, 64) != 0 || ik_msgq_init(&b->inbox, 64) != 0) {
		ik_pipe_close(a, IOK_ENOMEM);
		ik_pipe_close(b, IOK_ENOMEM);
		return IOK_ENOMEM;
	}
	a->peer_pipe = b;
	b->peer_pipe = a;
	a->peer      = ls->pat->proto;
	b->peer      = ds->pat->proto;
	if (activate(b)) {
		(void) activate(a); /* a failure closes both via the link */
	} else {
		ik_pipe_close(a, IOK_ECONNREFUSED);
	}
	return 0;
}

/* -------------------------------------------------------------- streams */

ik_pipe *
ik_pipe_new_stream(ik_sock *s, ik_ep *ep, int is_tcp)
{
	ik_pipe *p = pipe_alloc(s, ep, ep->tran);
	if (p == NULL) {
		return NULL;
	}
	p->is_stream = true;
	if (is_tcp) {
		uv_tcp_init(ik_loop(), &p->h.tcp);
	} else {
		uv_pipe_init(ik_loop(), &p->h.unix_pipe, 0);
	}
	p->h.handle.data = p;
	return p;
}

uv_stream_t *
ik_pipe_stream(ik_pipe *p)
{
	return &p->h.stream;
}

void
ik_pipe_discard(ik_pipe *p)
{
	p->state      = IK_PIPE_CLOSING;
	p->close_err  = IOK_ECONNREFUSED;
	p->close_done = true; /* nothing for a close task to do */
	close_stream_now(p);
}

static void
hs_timeout_cb(uv_timer_t *t)
{
	ik_pipe *p = t->data;
	if (p->state == IK_PIPE_HANDSHAKE) {
		pipe_fail(p, IOK_ETIMEDOUT);
	}
}

static void
handshake_step(ik_pipe *p)
{
	ik_sock *s    = p->sock;
	size_t   used = 0;
	int      rv;

	p->hsout.len      = 0;
	const uint8_t *in = p->in.data != NULL ? p->in.data + p->in_off : NULL;
	rv = p->tran->handshake(p->tstate, in, p->in.len - p->in_off, &used, &p->hsout);
	p->in_off += used;
	if (p->hsout.len > 0 && queue_bytes(p, p->hsout.data, p->hsout.len) != 0) {
		rv = -IOK_ENOMEM;
	}
	if (rv < 0) {
		pipe_fail(p, -rv);
		return;
	}
	if (rv != IK_HS_DONE) {
		return;
	}
	if (p->hs_timer_on) {
		uv_timer_stop(&p->hs_timer);
	}
	if (p->tran->flags & IK_TF_SP) {
		p->peer = p->tran->peer_proto(p->tstate);
		if (p->peer != s->pat->peer) {
			/* A peer of the wrong protocol (nng rejects it the same way). */
			pipe_fail(p, IOK_EPROTO);
			return;
		}
	}
	(void) activate(p);
}

/* TCP keepalive is the SP connections' health check: it follows
 * health:interval (idle time) and health:timeout (between probes), 3
 * unanswered probes and the kernel resets the connection. */
static void
keepalive(ik_pipe *p, const ik_tran_opts *o)
{
	unsigned idle = o->health_ivl > 0 ? (unsigned) ((o->health_ivl + 999) / 1000) : 60;
	uv_tcp_keepalive(&p->h.tcp, o->keepalive, idle);
#if defined(TCP_KEEPINTVL) && defined(TCP_KEEPCNT)
	uv_os_fd_t fd;
	if (o->keepalive && o->health_ivl > 0 && uv_fileno(&p->h.handle, &fd) == 0) {
		int intvl = (int) ((o->health_timeo + 999) / 1000), cnt = 3;
		intvl = intvl < 1 ? 1 : intvl;
		(void) setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
		(void) setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	}
#endif
}

void
ik_pipe_begin(ik_pipe *p)
{
	ik_sock       *s  = p->sock;
	ik_ep         *ep = p->ep;
	ik_tran_params tp = {
		.self_proto = s->pat->proto,
		.dialer     = ep->dialer,
		.recv_max   = p->recv_max,
		.url        = &ep->url,
		.shared     = p->att[IK_ATT_SHARER].sock != NULL,
	};
	int rv;

	if (p->h.handle.type == UV_TCP) {
		uv_tcp_nodelay(&p->h.tcp, ep->topts.nodelay);
		keepalive(p, &ep->topts);
	}
	/* Begun before init: a codec refusing the URL (e.g. an unknown
	 * option) is then a failed attempt the dialer hears of, not a failed
	 * connect (which connect_cb reports), and a sync dial returns it. */
	p->begun = true;
	if ((rv = p->tran->init(p->tstate, &tp)) != 0) {
		pipe_fail(p, rv < 0 ? -rv : rv);
		return;
	}
	uv_timer_init(ik_loop(), &p->hs_timer);
	p->hs_timer.data = p;
	p->hs_timer_on   = true;
	if (ep->topts.conn_timeo > 0) {
		/* A peer that accepts and never answers must not hold a
		 * synchronous dial (or a lingering close) forever. */
		uv_timer_start(&p->hs_timer, hs_timeout_cb, (uint64_t) ep->topts.conn_timeo, 0);
	}
	handshake_step(p); /* sends our opening bytes */
	start_reading(p);
}

void
ik_pipe_abandon_all_of(ik_sock *s)
{
	ik_node *en, *pn, *tmp;
	for (en = ik_list_first(&s->eps); en != NULL; en = ik_list_next(&s->eps, en)) {
		ik_ep *ep = ik_container_of(en, ik_ep, snode);
		ik_list_foreach_safe(&ep->pipes, pn, tmp)
		{
			if (ik_container_of(pn, ik_pipe, enode)->dialing) {
				continue; /* the dialer cancels its own attempt */
			}
			/* Closed now, before the child's loop first polls:
			 * uv_loop_fork re-arms every inherited watcher, and a
			 * poll would read the parent's bytes or write its queued
			 * ones.  uv_close closes our descriptor at once, without
			 * shutdown(), and cancels queued writes unsent. */
			ik_pipe *ip = ik_container_of(pn, ik_pipe, enode);
			ik_pipe_close(ip, IOK_ECLOSED);
			close_stream_now(ip);
		}
	}
}
