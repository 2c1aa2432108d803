/*
 * sockmsg.c - the socket's message path: the application's sending half
 * (send queue, blocking, pollable descriptors) and the kernel half (the
 * send pump, delivery batching, backpressure).  The receiving half is
 * sockrecv.c.
 *
 * The send queue is filled by application threads and drained by the
 * kernel; the receive queue the other way round.  Each side wakes the
 * other only on the empty -> non-empty (or full -> not-full) transition.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ep.h"
#include "pipe.h"
#include "sock.h"
#include "stats.h"

#define PUMP_BATCH 64
#define PUMP_LIMIT 2048 /* messages per turn before yielding to I/O */
/* Messages per turn once some went to inproc peers.  Their deliveries (and
 * the wake-up of a thread waiting for them) are tasks that run after the
 * pump: a pump that took a whole window of requests before the replier
 * got the first made the two threads take turns, each idle while the
 * other worked (inproc, 64 in flight: +18%).  Stream pipes are not sliced:
 * there the tasks are writes, and smaller writes only cost system calls. */
#define PUMP_SLICE 16

/* A thread blocked on a full queue is woken only once the queue is down to
 * half: woken at the first free slot, a sender refills one slot and
 * sleeps again (and a paused pipe delivers one message and pauses again),
 * a wake-up and a command per message exactly when the other side is the
 * bottleneck, which kept a slow run slow.  The eventfds still follow the
 * exact full/not-full state. */
size_t
ik_low_water(int cap)
{
	return cap > 1 ? (size_t) cap / 2 : 0;
}

/* ------------------------------------------------------------ eventfds */

/* Descriptors are made on first request (IOK_OPT_RECVFD/SENDFD): callers
 * that only block in iok_recv never pay an eventfd syscall. */
void
ik_efd_raise(int fd)
{
	uint64_t one = 1;
	if (fd < 0) {
		return;
	}
	if (write(fd, &one, sizeof(one)) < 0) {
		/* EAGAIN cannot happen: the counter is only ever 0 or 1. */
	}
}

void
ik_efd_clear(int fd)
{
	uint64_t v;
	if (fd < 0) {
		return;
	}
	if (read(fd, &v, sizeof(v)) < 0) {
		/* already clear */
	}
}

void
ik_deadline_after(struct timespec *ts, iok_duration ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long) (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

void
ik_sock_watch_poke(ik_sock *s, int watch)
{
	if (watch == WATCH_NONE) {
		return;
	}
	/* A spinner watches the sequence: no system call for it.  A watcher
	 * that was in ppoll when watch was read may be spinning by now, so
	 * the sequence moves for it too. */
	atomic_fetch_add_explicit(&s->recv_ev.seq, 1, memory_order_release);
	if (watch == WATCH_POLL) {
		atomic_store_explicit(&s->watch_raised, 1, memory_order_relaxed);
		ik_efd_raise(s->watch_efd);
	}
}

/* A queued command holds a reference, so the socket outlives it even if
 * every application reference goes away meanwhile. */
void
ik_sock_post(ik_sock *s, ik_cmd *c)
{
	ik_obj_ref(&s->obj);
	if (!ik_cmd_post(c)) {
		ik_sock_rele(s); /* already queued: it holds one */
	}
}

/* ------------------------------------------------------ sending (app) */

int
ik_wait_on(ik_event *ev, pthread_mutex_t *mu, atomic_int *waiters, iok_duration timeo,
    const struct timespec *deadline)
{
	int rv;
	(*waiters)++;
	rv = ik_event_wait(ev, mu, timeo < 0 ? NULL : deadline);
	(*waiters)--;
	return rv == ETIMEDOUT ? IOK_ETIMEDOUT : 0;
}

/* Enqueue m on the send queue; m belongs to iok only on success.  A
 * plain send on a pattern with app-side hooks asks them first, in the same
 * critical section as the push: a plain request that drops the replies
 * still queued from the previous one could, done later, drop its own fast
 * reply.  With token non-NULL, m is an iok_request: it gets its token in
 * that critical section too (one lock a request, and tokens reach the
 * kernel in the order they were given, which iok_cancel's pre-cancel
 * relies on). */
static int enqueue_send_ex(ik_sock *s, iok_msg *m, int flags, bool plain, uint64_t *token);

/* Would a message of len bytes overflow the send queue?  (Under mu.) */
static bool
sq_no_room(const ik_sock *s, size_t len)
{
	return s->sq.len >= (size_t) s->sq_cap ||
	       (s->sq_max_bytes > 0 && s->sq.len > 0 && s->sq_bytes + len > s->sq_max_bytes);
}

/* The pump took messages off the send queue (before: its length and
 * bytes until then): do its blocked senders wake?  Once it is down to half
 * by count, or by bytes under a byte limit: one wake-up per batch, not per
 * message.  A waiter whose message needs more than half the byte limit
 * may still find no room then; it is woken again when the queue empties,
 * where any message fits.  (Under mu.) */
static bool
sq_waiters_wake(const ik_sock *s, size_t before, size_t before_bytes)
{
	size_t low = ik_low_water(s->sq_cap);
	if (before > low && s->sq.len <= low) {
		return true;
	}
	if (s->sq_max_bytes == 0) {
		return false;
	}
	return s->sq.len == 0 ||
	       (before_bytes > s->sq_max_bytes / 2 && s->sq_bytes <= s->sq_max_bytes / 2);
}

static int
enqueue_send(ik_sock *s, iok_msg *m, int flags)
{
	return enqueue_send_ex(s, m, flags, false, NULL);
}

static int
enqueue_send_ex(ik_sock *s, iok_msg *m, int flags, bool plain, uint64_t *token)
{
	struct timespec deadline;
	bool            post;
	pthread_mutex_lock(&s->mu);
	if (s->send_timeo > 0) {
		ik_deadline_after(&deadline, s->send_timeo);
	}
	while (!s->closed && sq_no_room(s, m->len)) {
		s->send_waits++;
		if ((flags & IOK_FLAG_NONBLOCK) || s->send_timeo == 0) {
			pthread_mutex_unlock(&s->mu);
			return IOK_EAGAIN;
		}
		if (ik_wait_on(&s->send_ev, &s->mu, &s->send_waiters, s->send_timeo, &deadline) !=
		        0 &&
		    sq_no_room(s, m->len) && !s->closed) {
			pthread_mutex_unlock(&s->mu);
			return IOK_ETIMEDOUT;
		}
	}
	if (s->closed) {
		pthread_mutex_unlock(&s->mu);
		return IOK_ECLOSED;
	}
	if (plain) {
		bool drop = false;
		int  rv   = s->pat->app->send(s->app, m, &drop);
		if (rv != 0) {
			pthread_mutex_unlock(&s->mu);
			return rv;
		}
		if (drop && s->rq.len > 0) {
			ik_msgq_clear(&s->rq);
			s->rq_bytes = 0;
			ik_efd_clear(s->recv_fd);
		}
	}
	if (token != NULL) {
		if (++s->next_token == 0) {
			++s->next_token;
		}
		m->token = *token = s->next_token;
		if (s->pat->app != NULL && s->pat->app->request != NULL) {
			s->pat->app->request(s->app);
		}
	}
	post = s->sq.len == 0;
	ik_msgq_push(&s->sq, m);
	s->sent_since_recv = true;
	if (s->app_balance < IK_BALANCE_MAX) {
		s->app_balance++;
	}
	s->sq_bytes += m->len;
	if (ik_sq_full(s)) {
		ik_efd_clear(s->send_fd);
	}
	pthread_mutex_unlock(&s->mu);
	if (post) {
		ik_sock_post(s, &s->send_cmd);
	}
	return 0;
}

static int
sock_sendmsg(ik_sock *s, iok_msg *m, int flags)
{
	size_t lim = atomic_load_explicit(&s->send_max, memory_order_relaxed);
	if (!(s->pat->flags & IK_PF_SEND)) {
		return IOK_ENOTSUP;
	}
	if (lim > 0 && m->len + m->hdr_len > lim) {
		/* No peer would take it (inproc: their limits are known). */
		atomic_fetch_add_explicit(&s->tx_oversize_app, 1, memory_order_relaxed);
		return IOK_EMSGSIZE;
	}
	/* The pattern's app-side hooks say what a plain send means (a request
	 * replacing the last one, a reply to the last request...). */
	bool plain = s->pat->app != NULL && s->pat->app->send != NULL && !s->raw;
	return enqueue_send_ex(s, m, flags, plain, NULL);
}

int
iok_sendmsg(iok_socket h, iok_msg *m, int flags)
{
	ik_sock *s;
	int      rv;
	if (m == NULL) {
		return IOK_EINVAL;
	}
	if ((rv = ik_sock_use(h, &s)) != 0) {
		return rv;
	}
	m->flags &= ~(uint32_t) (IK_MSG_REQUEST | IK_MSG_REPLY);
	rv = sock_sendmsg(s, m, flags);
	return rv;
}

int
iok_send(iok_socket h, const void *data, size_t size, int flags)
{
	ik_sock *s;
	iok_msg *m;
	int      rv;
	if (data == NULL && (size > 0 || (flags & IOK_FLAG_ALLOC))) {
		return IOK_EINVAL;
	}
	if ((rv = ik_sock_use(h, &s)) != 0) {
		return rv;
	}
	if (flags & IOK_FLAG_ALLOC) {
		/* nng's zero-copy send: the iok_alloc buffer becomes the body
		 * and is iok's on success, still the caller's on failure. */
		if ((m = ik_msg_adopt((void *) data, size, 0, size)) == NULL) {
			return IOK_ENOMEM;
		}
		if ((rv = sock_sendmsg(s, m, flags)) != 0) {
			ik_msg_release(m);
		}
		return rv;
	}
	if ((m = ik_msg_alloc(size)) == NULL) {
		return IOK_ENOMEM;
	}
	if (size > 0) {
		memcpy(m->body, data, size);
	}
	if ((rv = sock_sendmsg(s, m, flags)) != 0) {
		iok_msg_free(m);
	}
	return rv;
}

int
iok_request(iok_socket h, iok_msg *m, uint64_t *token, int flags)
{
	ik_sock *s;
	int      rv;
	if (m == NULL) {
		return IOK_EINVAL;
	}
	if ((rv = ik_sock_use(h, &s)) != 0) {
		return rv;
	}
	if (!(s->pat->flags & IK_PF_REQUEST) || s->raw) {
		return IOK_ENOTSUP;
	}
	uint64_t tok;
	m->flags = (m->flags & ~(uint32_t) (IK_MSG_REPLY | IK_MSG_IDEMPOTENT)) | IK_MSG_REQUEST;
	if (flags & IOK_FLAG_IDEMPOTENT) {
		m->flags |= IK_MSG_IDEMPOTENT;
	}
	if ((rv = enqueue_send_ex(s, m, flags, false, &tok)) == 0 && token != NULL) {
		*token = tok;
	}
	return rv;
}

int
iok_reply(iok_socket h, iok_msg *m, uint64_t token, int flags)
{
	ik_sock *s;
	int      rv;
	if (m == NULL || token == 0) {
		return IOK_EINVAL;
	}
	if ((rv = ik_sock_use(h, &s)) != 0) {
		return rv;
	}
	if (!(s->pat->flags & IK_PF_REPLY) || s->raw) {
		return IOK_ENOTSUP;
	}
	m->token = token;
	m->flags = (m->flags & ~(uint32_t) IK_MSG_REQUEST) | IK_MSG_REPLY;
	return enqueue_send(s, m, flags);
}

struct cancel_cmd {
	ik_cmd   cmd;
	ik_sock *s;
	uint64_t token;
};

static void
cancel_k(ik_cmd *c)
{
	struct cancel_cmd *cc = (struct cancel_cmd *) c;
	if (!cc->s->closing && cc->s->pat->cancel != NULL) {
		cc->s->pat->cancel(cc->s->pdata, cc->token);
	}
	ik_cmd_done(c, 0);
}

int
iok_cancel(iok_socket h, uint64_t token)
{
	ik_sock *s;
	int      rv;
	if ((rv = ik_sock_hold(h, &s)) != 0) {
		return rv;
	}
	struct cancel_cmd cc = { .s = s, .token = token };
	rv                   = ik_cmd_call(&cc.cmd, cancel_k);
	ik_sock_rele(s);
	return rv;
}

int
iok_session_open(iok_socket h, uint32_t *session)
{
	ik_sock *s;
	int      rv;
	if (session == NULL) {
		return IOK_EINVAL;
	}
	if ((rv = ik_sock_hold(h, &s)) != 0) {
		return rv;
	}
	if (!(s->pat->flags & IK_PF_SESSIONS)) {
		rv = IOK_ENOTSUP;
	} else {
		pthread_mutex_lock(&s->mu);
		if (++s->next_session == 0) {
			++s->next_session;
		}
		*session = s->next_session;
		pthread_mutex_unlock(&s->mu);
	}
	ik_sock_rele(s);
	return rv;
}

struct session_cmd {
	ik_cmd   cmd;
	ik_sock *s;
	uint32_t session;
};

static void
session_close_k(ik_cmd *c)
{
	struct session_cmd *sc = (struct session_cmd *) c;
	if (!sc->s->closing) {
		/* The pattern takes what is still queued first (so the close
		 * is in order with the session's requests), and releases the
		 * pin once they are done. */
		sc->s->pat->session_close(sc->s->pdata, sc->session);
		ik_sock_pump(sc->s); /* it may take queued messages now */
	}
	ik_cmd_done(c, 0);
}

int
iok_session_close(iok_socket h, uint32_t session)
{
	ik_sock *s;
	int      rv;
	if (session == 0) {
		return IOK_EINVAL;
	}
	if ((rv = ik_sock_hold(h, &s)) != 0) {
		return rv;
	}
	if (!(s->pat->flags & IK_PF_SESSIONS) || s->pat->session_close == NULL) {
		ik_sock_rele(s);
		return IOK_ENOTSUP;
	}
	struct session_cmd sc = { .s = s, .session = session };
	rv                    = ik_cmd_call(&sc.cmd, session_close_k);
	ik_sock_rele(s);
	return rv;
}

/* -------------------------------------------------- kernel: send pump */

void
ik_sock_send_cmd_fn(ik_cmd *c)
{
	ik_sock *s = ik_container_of(c, ik_sock, send_cmd);
	ik_sock_pump(s);
	ik_sock_rele(s);
}

void
ik_sock_send_ready(ik_sock *s)
{
	ik_sock_pump(s);
}

void
ik_sock_send_ready_later(ik_sock *s)
{
	if (!s->finished) {
		ik_task_schedule(&s->pump_task);
	}
}

void
ik_sock_pump_task_fn(ik_task *t)
{
	ik_sock_pump(ik_container_of(t, ik_sock, pump_task));
}

void
ik_sock_pump(ik_sock *s)
{
	iok_msg *batch[PUMP_BATCH];
	size_t   n = 0, taken = 0, done = 0, bytes = 0;
	bool     busy = false, held = false;

	if (s->finished) {
		return;
	}
	ik_task_cancel(&s->pump_task);
	s->send_busy = false;
	/* A slice's continuation counts on towards PUMP_LIMIT. */
	size_t sliced    = s->pump_sliced;
	bool   inproc    = s->handed_inproc; /* the last turn's, for the first batch */
	s->pump_sliced   = 0;
	s->handed_inproc = false;
	for (;;) {
		/* Stop here?  Decided before the lock, which also pops the
		 * batch taken last time round (one hold for both). */
		bool stop = busy || held;
		if (!stop && sliced + done >= PUMP_LIMIT) {
			/* The application keeps the queue full: let this loop
			 * iteration write what we gave the pipes, then go on. */
			ik_task_schedule_next(&s->pump_task);
			stop = true;
		} else if (!stop && s->handed_inproc && done >= PUMP_SLICE) {
			/* Let the inproc peers take what we gave them (their
			 * flush wakes their threads) before pumping on, in this
			 * same iteration: see PUMP_SLICE. */
			s->pump_sliced = sliced + done;
			ik_task_schedule(&s->pump_task);
			stop = true;
		}
		if (stop && taken == 0) {
			break;
		}
		size_t cap  = inproc || s->handed_inproc ? PUMP_SLICE : PUMP_BATCH;
		bool   wake = false;
		pthread_mutex_lock(&s->mu);
		if (taken > 0) {
			size_t before   = s->sq.len;
			size_t before_b = s->sq_bytes;
			bool   was_full = ik_sq_full(s);
			for (size_t i = 0; i < taken; i++) {
				(void) ik_msgq_pop(&s->sq);
			}
			s->sq_bytes -= bytes;
			if (was_full && !ik_sq_full(s) && !s->closed) {
				ik_efd_raise(s->send_fd);
			}
			if (s->send_waiters > 0 && sq_waiters_wake(s, before, before_b)) {
				wake = true;
			}
		}
		n = 0;
		if (!stop) {
			n = s->sq.len < cap ? s->sq.len : cap;
			for (size_t i = 0; i < n; i++) {
				batch[i] = ik_msgq_peek(&s->sq, i);
			}
		}
		pthread_mutex_unlock(&s->mu);
		if (wake) {
			ik_event_wake(&s->send_ev, INT_MAX);
		}
		/* Senders that found the queue non-empty did not wake us:
		 * loop until it is empty or the pattern pushes back. */
		if (n == 0) {
			break;
		}
		/* Only this thread pops, so the peeked messages stay put.  A
		 * message's length is read before the pattern owns it. */
		bytes = 0;
		for (taken = 0; taken < n; taken++) {
			iok_msg *m   = batch[taken];
			size_t   len = m->len;
			if (s->tearing) {
				/* Teardown: what could not be flushed is dropped. */
				iok_msg_free(m);
				s->stats[IK_STAT_TX_DROPPED]++;
				bytes += len;
				continue;
			}
			if (!ik_throttle_take(s)) {
				held = true; /* the rate limit's timer pumps again */
				break;
			}
			if (s->pat->send(s->pdata, m) == IK_BUSY) {
				busy = true;
				break;
			}
			bytes += len;
			s->stats[IK_STAT_TX_MSGS]++;
			s->stats[IK_STAT_TX_BYTES] += len;
		}
		done += taken;
	}
	s->send_busy = busy;
	/* A device feeding this socket waits for it to take messages. */
	if (!busy && s->dev_src != NULL) {
		ik_sock *src = s->dev_src;
		ik_node *p, *tmp;
		ik_list_foreach_safe(&src->paused, p, tmp)
		{
			ik_pipe_resume(ik_container_of(p, ik_att, pnode)->pipe);
		}
	}
	if (s->closing) {
		ik_sock_maybe_finish_close(s);
	}
}

/* ---------------------------------------------- kernel: deliveries */

void
ik_sock_flush_task_fn(ik_task *t)
{
	ik_sock *s = ik_container_of(t, ik_sock, flush_task);
	iok_msg *m;
	int      wake  = 0; /* waiters to wake: 0, 1 or INT_MAX */
	int      watch = WATCH_NONE;
	bool     woke  = false; /* a waiter, a watcher or a poller of the descriptor */
	pthread_mutex_lock(&s->mu);
	bool   was_empty = s->rq.len == 0;
	size_t n         = s->staged.len;
	while ((m = ik_msgq_pop(&s->staged)) != NULL) {
		s->stats[IK_STAT_RX_MSGS]++;
		s->stats[IK_STAT_RX_BYTES] += m->len;
		s->rq_bytes += m->len;
		ik_msgq_push(&s->rq, m);
	}
	s->staged_bytes   = 0;
	s->rq_known       = s->rq.len;
	s->rq_bytes_known = s->rq_bytes;
	if (was_empty && n > 0) {
		if (!s->closed && s->recv_fd >= 0) {
			ik_efd_raise(s->recv_fd);
			woke = true;
		}
		wake  = s->recv_waiters == 0 ? 0 : n == 1 ? 1 : INT_MAX;
		watch = atomic_load_explicit(&s->recv_watch, memory_order_relaxed);
		woke |= watch != WATCH_NONE;
	}
	pthread_mutex_unlock(&s->mu);
	ik_sock_watch_poke(s, watch);
	if ((woke || wake != 0) && (s->pat->flags & IK_PF_SEND)) {
		ik_kernel_spin_arm(); /* its answer is likely a moment away */
	}
	/* Signalled after unlocking, so the woken thread does not wake up
	 * only to wait for the mutex we still hold. */
	if (wake != 0) {
		ik_event_wake(&s->recv_ev, wake);
	}
}

/* Is the receive queue (with what is staged) full?  The kernel's count is
 * an upper bound (the application only removes), refreshed when it says
 * full. */
static bool
rq_full(ik_sock *s)
{
	/* By bytes too (recv-buffer-bytes; rq_max_bytes only changes under
	 * the lock, on this thread); one message always fits. */
	bool bytes_ok = s->rq_max_bytes == 0 || s->staged.len + s->rq_known == 0 ||
	                s->staged_bytes + s->rq_bytes_known < s->rq_max_bytes;
	if (s->staged.len + s->rq_known < (size_t) s->rq_cap && bytes_ok) {
		return false;
	}
	pthread_mutex_lock(&s->mu);
	s->rq_known       = s->rq.len;
	s->rq_bytes_known = s->rq_bytes;
	bool full         = s->staged.len + s->rq_known >= (size_t) s->rq_cap ||
	            (s->rq_max_bytes > 0 && s->staged.len + s->rq_known > 0 &&
	                s->staged_bytes + s->rq_bytes_known >= s->rq_max_bytes);
	if (full) {
		s->recv_blocked = true; /* the next receive tells us */
	}
	pthread_mutex_unlock(&s->mu);
	return full;
}

int
ik_sock_deliver(ik_sock *s, iok_msg *m)
{
	if (s->dev_peer != NULL) {
		s->stats[IK_STAT_RX_MSGS]++;
		return ik_device_forward(s->dev_peer, m);
	}
	if (s->closing) {
		iok_msg_free(m);
		return IK_OK;
	}
	if (rq_full(s)) {
		return IK_BUSY;
	}
	if (m->status != 0) {
		ik_stats_completion(s, m->status); /* errors by kind */
	}
	ik_msgq_push(&s->staged, m);
	s->staged_bytes += m->len;
	ik_task_schedule(&s->flush_task);
	return IK_OK;
}

void
ik_sock_deliver_drop_oldest(ik_sock *s, iok_msg *m)
{
	if (s->dev_peer != NULL || s->closing) {
		if (ik_sock_deliver(s, m) == IK_BUSY) {
			iok_msg_free(m);
			s->stats[IK_STAT_RX_DROPPED]++;
		}
		return;
	}
	if (rq_full(s)) {
		iok_msg *old = NULL;
		pthread_mutex_lock(&s->mu);
		s->recv_blocked = false;
		if (s->rq.len > 0) {
			old = ik_msgq_pop(&s->rq);
			s->rq_bytes -= old->len;
			s->rq_known       = s->rq.len;
			s->rq_bytes_known = s->rq_bytes;
		}
		pthread_mutex_unlock(&s->mu);
		if (old == NULL && (old = ik_msgq_pop(&s->staged)) != NULL) {
			s->staged_bytes -= old->len;
		}
		iok_msg_free(old);
		s->stats[IK_STAT_RX_DROPPED]++;
	}
	ik_msgq_push(&s->staged, m);
	ik_task_schedule(&s->flush_task);
}

void
ik_sock_att_paused(ik_sock *s, ik_att *a)
{
	if (!ik_node_linked(&a->pnode)) {
		ik_list_append(&s->paused, &a->pnode);
	}
}

void
ik_sock_resume_paused(ik_sock *s)
{
	ik_node *n, *tmp;
	ik_list_foreach_safe(&s->paused, n, tmp)
	{
		ik_pipe_resume(ik_container_of(n, ik_att, pnode)->pipe);
		if (rq_full(s)) {
			break;
		}
	}
}

void
ik_sock_space_cmd_fn(ik_cmd *c)
{
	ik_sock *s = ik_container_of(c, ik_sock, space_cmd);
	if (!s->finished) {
		pthread_mutex_lock(&s->mu);
		s->rq_known = s->rq.len;
		pthread_mutex_unlock(&s->mu);
		ik_sock_resume_paused(s);
		if (s->pat->recv_ready != NULL && !s->closing) {
			s->pat->recv_ready(s->pdata);
		}
	}
	ik_sock_rele(s);
}
