/*
 * pipe.c - connections (see pipe.h): a pipe's life.  Made (a stream, or an
 * inproc pair), handshake, activation (the patterns take it), a second
 * socket's attachment, close and free.  Input is pipe_read.c, output
 * pipe_write.c; pipe_int.h is what the three share.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>

#include "ep.h"
#include "pipe_int.h"
#include "../transports/sp.h"

static uint32_t next_pipe_id = 1;

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
	ik_node_init(&p->lnode);
	ik_task_init(&p->task, ik_pipe_task_fn);
	ik_buf_init(&p->in);
	ik_buf_init(&p->in_spare);
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
	ik_pipe_writes_fini(p);
	ik_pipe_input_fini(p);
	ik_buf_fini(&p->hsout);
	ik_buf_fini(&p->sub_held);
	ik_msgq_fini(&p->inbox);
	iok_msg_free(p->held);
	ik_task_cancel(&p->task);
	ik_list_remove(&p->enode);
	ik_pipe_local_forget(p);
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
void
ik_pipe_fail(ik_pipe *p, int err)
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
		ik_pipe_process_input(p); /* a message held for the sharer is gone */
		ik_pipe_start_reading(p);
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
	ik_pipe_local_check(p); /* before the socket looks at it (att_add) */
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

/* -------------------------------------------------------------- inproc */

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
		ik_pipe_fail(p, IOK_ETIMEDOUT);
	}
}

void
ik_pipe_handshake_step(ik_pipe *p)
{
	ik_sock *s    = p->sock;
	size_t   used = 0;
	int      rv;

	p->hsout.len      = 0;
	const uint8_t *in = p->in.data != NULL ? p->in.data + p->in_off : NULL;
	rv = p->tran->handshake(p->tstate, in, p->in.len - p->in_off, &used, &p->hsout);
	p->in_off += used;
	if (p->hsout.len > 0 && ik_pipe_queue_bytes(p, p->hsout.data, p->hsout.len) != 0) {
		rv = -IOK_ENOMEM;
	}
	if (rv < 0) {
		ik_pipe_fail(p, -rv);
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
			ik_pipe_fail(p, IOK_EPROTO);
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
		ik_pipe_fail(p, rv < 0 ? -rv : rv);
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
	ik_pipe_handshake_step(p); /* sends our opening bytes */
	ik_pipe_start_reading(p);
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
