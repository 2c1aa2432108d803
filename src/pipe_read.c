/*
 * pipe_read.c - a pipe's input (see pipe.h).
 *
 * Reading: bytes land in p->in; the codec cuts frames; each frame becomes a
 * message handed to the pattern.  A refused message is held and reading
 * pauses until the socket has room (backpressure reaches the peer through
 * TCP).  An inproc pipe offers its inbox the same way.
 */
#include <stdlib.h>
#include <string.h>

#include "bigpool.h"
#include "pipe_int.h"

#define READ_MIN (8 * 1024)   /* an idle connection keeps this little */
#define READ_MAX (256 * 1024) /* grown to this while reads fill it */

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

/* ------------------------------------------------------------ big frames */

/* A frame of at least IK_BIG_MIN is read straight into a big block
 * (bigpool.h) that becomes its message's storage: no copy, and pages that
 * stay mapped from one such message to the next. */

/* Back to the usual buffer, keeping the bytes from in_off on. */
static int
big_leave(ik_pipe *p)
{
	size_t avail = p->in.len - p->in_off;
	ik_buf small = p->in_spare;
	if (ik_buf_reserve(&small, avail) != 0) {
		return IOK_ENOMEM;
	}
	if (avail > 0) {
		memcpy(small.data, p->in.data + p->in_off, avail);
	}
	small.len = avail;
	ik_big_put(p->in_bigc, p->in.data);
	p->in     = small;
	p->in_off = 0;
	p->in_big = false;
	ik_buf_init(&p->in_spare);
	return 0;
}

/* Read into blk, of class c, from now on; the unread bytes move into it
 * and the usual buffer waits in in_spare. */
static void
big_take(ik_pipe *p, uint8_t *blk, int c)
{
	size_t avail = p->in.len - p->in_off;
	if (avail > 0) {
		memcpy(blk, p->in.data + p->in_off, avail);
	}
	p->in_spare     = p->in;
	p->in_spare.len = 0;
	p->in.data      = blk;
	p->in.cap       = ik_big_cap(c);
	p->in.len       = avail;
	p->in_off       = 0;
	p->in_big       = true;
	p->in_bigc      = (int8_t) c;
}

/* The frame at in_off needs p->need bytes: into a big block if that is a
 * big class.  The bytes already here move with it.  A block the frame
 * outgrew (a RESP array's next element) or is done with goes back. */
static int
big_enter(ik_pipe *p)
{
	size_t avail = p->in.len - p->in_off;
	int    c;
	if (p->in_big) {
		if (p->need > avail && p->need <= p->in.cap - p->in_off) {
			return 0; /* the block's frame, still coming */
		}
		int rv = big_leave(p);
		if (rv != 0) {
			return rv;
		}
	}
	if ((c = ik_big_class(p->need)) < 0 || p->need <= avail) {
		return 0;
	}
	uint8_t *blk = ik_big_get(c);
	if (blk != NULL) {
		big_take(p, blk, c); /* else the usual buffer */
	}
	return 0;
}

/* The big frame [in_off, in_off + flen) is whole: the block becomes its
 * message, what follows it goes back to the usual buffer. */
static iok_msg *
big_to_msg(ik_pipe *p, size_t flen, const ik_frame *f)
{
	size_t   rest  = p->in.len - p->in_off - flen;
	ik_buf   small = p->in_spare;
	iok_msg *m;
	if (ik_buf_reserve(&small, rest) != 0) {
		return NULL;
	}
	if ((m = ik_msg_adopt_big(p->in.data, p->in_bigc, p->in_off + f->body_off, f->body_len)) ==
	    NULL) {
		p->in_spare = small; /* keeps what the reserve grew */
		return NULL;
	}
	if (rest > 0) {
		memcpy(small.data, p->in.data + p->in_off + flen, rest);
	}
	small.len = rest;
	p->in     = small;
	p->in_off = 0;
	p->in_big = false;
	ik_buf_init(&p->in_spare);
	if (rest == 0) {
		p->in_guess     = (int8_t) (m->buf_big + 1); /* big frames come in runs */
		p->in_guess_len = flen;
	}
	p->rx_msgs++;
	p->rx_bytes += f->body_len;
	return m;
}

void
ik_pipe_input_fini(ik_pipe *p)
{
	if (p->in_big) {
		ik_big_put(p->in_bigc, p->in.data);
		p->in = p->in_spare;
		ik_buf_init(&p->in_spare);
		p->in_big = false;
	}
	ik_buf_fini(&p->in);
}

static iok_msg *
frame_to_msg(ik_pipe *p, size_t flen, const ik_frame *f)
{
	uint8_t *start = p->in.data + p->in_off;
	size_t   rest  = p->in.len - p->in_off - flen;
	iok_msg *m;

	if (p->in_big && f->body_len >= IK_BIG_MIN) {
		return big_to_msg(p, flen, f);
	}
	if (!p->in_big && f->body_len >= IK_BIG_MIN && rest < 4096) {
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
		ik_pipe_fail(p, (int) -n);
		return false;
	}
	p->in_off += p->tran->skip(p->tstate, p->in.data + p->in_off, p->in.len - p->in_off);
	p->need = 0;
	return false;
}

void
ik_pipe_process_input(ik_pipe *p)
{
	if (p->state == IK_PIPE_HANDSHAKE) {
		ik_pipe_handshake_step(p);
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
			ik_pipe_fail(p, (int) -n);
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
		if (p->in_big && big_leave(p) != 0) {
			ik_pipe_close(p, IOK_ENOMEM);
			return;
		}
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

	if ((p->need >= IK_BIG_MIN || p->in_big) && big_enter(p) != 0) {
		buf->base = NULL;
		buf->len  = 0;
		return;
	}
	if (!p->in_big && p->in_guess > 0 && avail == 0) {
		/* After a big frame the next one is likely as big: read it into
		 * a block from its first byte (a wrong guess only holds a few
		 * small frames, copied out as usual, and goes back).  At most
		 * the last frame's length: a run of equal frames then never
		 * reads past one's end, and a longer frame's header sets need. */
		int      c   = p->in_guess - 1;
		uint8_t *blk = ik_big_get(c);
		p->in_guess  = 0;
		if (blk != NULL) {
			big_take(p, blk, c);
			buf->base = (char *) blk;
			buf->len  = p->in_guess_len;
			return;
		}
	}
	p->in_guess = 0;
	if (p->in_big) {
		/* Up to the frame's end when that is known: what follows starts
		 * in the usual buffer, and the block goes whole to the message. */
		buf->base = (char *) p->in.data + p->in.len;
		buf->len  = p->need > avail ? p->need - avail : p->in.cap - p->in.len;
		return;
	}
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
	/* What one read brought arrived together: its replies share one clock
	 * reading for their latency (ik_clock_batch), where each read it. */
	ik_clock_batch(true);
	ik_pipe_process_input(p);
	ik_clock_batch(false);
	if (filled && !p->in_big && p->in.cap < READ_MAX && p->state != IK_PIPE_CLOSING) {
		(void) ik_buf_reserve(&p->in, p->in.cap); /* double it */
	}
}

void
ik_pipe_start_reading(ik_pipe *p)
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
		ik_pipe_process_input(p);
		ik_pipe_start_reading(p);
	} else {
		ik_task_schedule(&p->task); /* more may wait in the inbox */
	}
}

void
ik_pipe_inproc_deliver(ik_pipe *p)
{
	iok_msg *m;
	size_t   before = p->inbox.len;
	while (!p->paused && p->state == IK_PIPE_ACTIVE && (m = ik_msgq_pop(&p->inbox)) != NULL) {
		if (!offer(p, IK_ATT_OWNER, m)) {
			break;
		}
	}
	ik_pipe *src = p->peer_pipe;
	if (src != NULL && before >= IK_INPROC_HWM && p->inbox.len < IK_INPROC_HWM) {
		ik_pipe_writable_again(src);
	}
}
