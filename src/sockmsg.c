/*
 * sockmsg.c - the socket's message path: the application half (send and
 * receive queues, blocking, pollable descriptors) and the kernel half (the
 * send pump, delivery batching, backpressure).
 *
 * The send queue is filled by application threads and drained by the
 * kernel; the receive queue the other way round.  Each side wakes the
 * other only on the empty -> non-empty (or full -> not-full) transition.
 */
#include <errno.h>
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

/* A thread blocked on a full queue is woken only once the queue is down to
 * half: woken at the first free slot, a sender refills one slot and
 * sleeps again (and a paused pipe delivers one message and pauses again),
 * a wake-up and a command per message exactly when the other side is the
 * bottleneck, which kept a slow run slow.  The eventfds still follow the
 * exact full/not-full state. */
static size_t
low_water(int cap)
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

static void
deadline_after(struct timespec *ts, iok_duration ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long) (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* A queued command holds a reference, so the socket outlives it even if
 * every application reference goes away meanwhile. */
static void
sock_post(ik_sock *s, ik_cmd *c)
{
	ik_obj_ref(&s->obj);
	if (!ik_cmd_post(c)) {
		ik_sock_rele(s); /* already queued: it holds one */
	}
}

/* ------------------------------------------------------ sending (app) */

static int
wait_on(pthread_cond_t *cv, pthread_mutex_t *mu, atomic_int *waiters, iok_duration timeo,
    const struct timespec *deadline)
{
	int rv = 0;
	(*waiters)++;
	if (timeo < 0) {
		pthread_cond_wait(cv, mu);
	} else {
		rv = pthread_cond_timedwait(cv, mu, deadline);
	}
	(*waiters)--;
	return rv == ETIMEDOUT ? IOK_ETIMEDOUT : 0;
}

/* Enqueue m on the send queue; m belongs to iok only on success.  A
 * plain send on a pattern with app-side hooks asks them first, in the same
 * critical section as the push: a plain request that drops the replies
 * still queued from the previous one could, done later, drop its own fast
 * reply. */
static int enqueue_send_ex(ik_sock *s, iok_msg *m, int flags, bool plain);

/* Would a message of len bytes overflow the send queue?  (Under mu.) */
static bool
sq_no_room(const ik_sock *s, size_t len)
{
	return s->sq.len >= (size_t) s->sq_cap ||
	       (s->sq_max_bytes > 0 && s->sq.len > 0 && s->sq_bytes + len > s->sq_max_bytes);
}

static int
enqueue_send(ik_sock *s, iok_msg *m, int flags)
{
	return enqueue_send_ex(s, m, flags, false);
}

static int
enqueue_send_ex(ik_sock *s, iok_msg *m, int flags, bool plain)
{
	struct timespec deadline;
	bool            post;
	pthread_mutex_lock(&s->mu);
	if (s->send_timeo > 0) {
		deadline_after(&deadline, s->send_timeo);
	}
	while (!s->closed && sq_no_room(s, m->len)) {
		s->send_waits++;
		if ((flags & IOK_FLAG_NONBLOCK) || s->send_timeo == 0) {
			pthread_mutex_unlock(&s->mu);
			return IOK_EAGAIN;
		}
		if (wait_on(&s->send_cv, &s->mu, &s->send_waiters, s->send_timeo, &deadline) != 0 &&
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
	post = s->sq.len == 0;
	ik_msgq_push(&s->sq, m);
	s->sq_bytes += m->len;
	if (ik_sq_full(s)) {
		ik_efd_clear(s->send_fd);
	}
	pthread_mutex_unlock(&s->mu);
	if (post) {
		sock_post(s, &s->send_cmd);
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
	return enqueue_send_ex(s, m, flags, plain);
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
	pthread_mutex_lock(&s->mu);
	uint64_t tok = ++s->next_token;
	if (tok == 0) {
		tok = ++s->next_token;
	}
	if (s->pat->app != NULL && s->pat->app->request != NULL) {
		s->pat->app->request(s->app);
	}
	pthread_mutex_unlock(&s->mu);
	m->token = tok;
	m->flags = (m->flags & ~(uint32_t) (IK_MSG_REPLY | IK_MSG_IDEMPOTENT)) | IK_MSG_REQUEST;
	if (flags & IOK_FLAG_IDEMPOTENT) {
		m->flags |= IK_MSG_IDEMPOTENT;
	}
	if ((rv = enqueue_send(s, m, flags)) == 0 && token != NULL) {
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

/* ---------------------------------------------------- receiving (app) */

/* May a receive take several messages at once and keep the rest in taken?
 * Not where a plain receive sets what the next send means (the request a
 * rep answers, the reply that ends a plain req's request): the app-side
 * hook says.  Under mu (the hook's state is guarded by it). */
static bool
batches(const ik_sock *s)
{
	const ik_app_hooks *app = s->raw ? NULL : s->pat->app;
	return app == NULL || app->recv == NULL || (app->batches != NULL && app->batches(s->app));
}

/* Under mu: nothing for a receiver in rq nor in taken (taken_len only
 * grows under mu too). */
static bool
nothing_queued(ik_sock *s)
{
	return s->rq.len == 0 && atomic_load_explicit(&s->taken_len, memory_order_relaxed) == 0;
}

/* Under mu, after taking: if messages remain and threads wait, wake one;
 * it wakes the next in turn.  The kernel's flush wakes waiters only when rq
 * was empty, so without this a second waiter could sleep beside messages
 * (several flushes before the first woken thread runs, or a batch moved
 * to taken by a thread that was not waiting). */
static void
pass_the_baton(ik_sock *s, size_t left)
{
	if (left > 0 && atomic_load_explicit(&s->recv_waiters, memory_order_relaxed) > 0) {
		pthread_cond_signal(&s->recv_cv);
	}
}

/* Under mu and take_mu, rq not empty, taken empty: take up to max for the
 * caller, and where batches() allows, move a batch of what follows into
 * taken.  True if the kernel is to be told there is room again. */
static bool
take_rq(ik_sock *s, iok_msg **mv, size_t max, size_t *np)
{
	const ik_app_hooks *app               = s->raw ? NULL : s->pat->app;
	void (*hook)(void *, const iok_msg *) = app != NULL ? app->recv : NULL;
	bool   batch                          = batches(s);
	size_t n                              = 0;
	if (!batch) {
		max = 1; /* one at a time: batches() */
	}
	do {
		iok_msg *m = ik_msgq_pop(&s->rq);
		s->rq_bytes -= m->len;
		if (hook != NULL) {
			hook(s->app, m);
		}
		mv[n++] = m;
	} while (n < max && s->rq.len > 0);
	if (batch) {
		size_t bytes = 0;
		while (s->rq.len > 0 && s->taken.len < IK_TAKE_MAX &&
		       (s->taken.len == 0 || bytes < IK_TAKE_BYTES)) {
			iok_msg *m = ik_msgq_pop(&s->rq);
			s->rq_bytes -= m->len;
			bytes += m->len;
			if (hook != NULL) {
				hook(s->app, m);
			}
			ik_msgq_push(&s->taken, m);
		}
		atomic_store_explicit(&s->taken_len, s->taken.len, memory_order_relaxed);
	}
	pass_the_baton(s, s->rq.len + s->taken.len);
	if (s->rq.len == 0 && s->taken.len == 0) {
		ik_efd_clear(s->recv_fd);
	}
	*np = n;
	if (s->recv_blocked && s->rq.len <= low_water(s->rq_cap)) {
		s->recv_blocked = false;
		return true;
	}
	return false;
}

/* Wait (per flags and the receive timeout) for a message, then take up
 * to max of those waiting into mv; *np says how many.  Every message
 * taken is the oldest not yet taken: from taken first, from rq only with
 * taken empty and take_mu held, so one thread never sees a later message
 * before an earlier one.  A call takes max, or all there is: a caller that
 * reads the descriptor itself (the Python binding clears its own raise
 * that way) knows a short take emptied the queue. */
static int
sock_recvmsgs(ik_sock *s, iok_msg **mv, size_t max, size_t *np, int flags)
{
	struct timespec deadline;
	bool            post = false, timed = false;

	if (!(s->pat->flags & IK_PF_RECV)) {
		return IOK_ENOTSUP;
	}
	for (;;) {
		size_t n = 0;
		pthread_mutex_lock(&s->take_mu);
		while (n < max && s->taken.len > 0) {
			mv[n++] = ik_msgq_pop(&s->taken);
		}
		if (n > 0) {
			atomic_store_explicit(&s->taken_len, s->taken.len, memory_order_relaxed);
		}
		if (n == max && s->taken.len > 0 &&
		    atomic_load_explicit(&s->recv_waiters, memory_order_relaxed) == 0) {
			pthread_mutex_unlock(&s->take_mu); /* the common case: no lock of mu */
			*np = n;
			return 0;
		}
		pthread_mutex_lock(&s->mu);
		if (n == 0 && s->closed) {
			pthread_mutex_unlock(&s->mu);
			pthread_mutex_unlock(&s->take_mu);
			return IOK_ECLOSED;
		}
		if (n < max && s->rq.len > 0) {
			size_t k;
			post = take_rq(s, mv + n, max - n, &k); /* taken is empty */
			n += k;
		} else {
			if (s->rq.len == 0 && s->taken.len == 0) {
				ik_efd_clear(s->recv_fd);
			}
			pass_the_baton(s, s->rq.len + s->taken.len);
		}
		if (n > 0) {
			pthread_mutex_unlock(&s->mu);
			pthread_mutex_unlock(&s->take_mu);
			*np = n;
			break;
		}
		/* Never wait holding take_mu: each waiter keeps its own
		 * timeout. */
		pthread_mutex_unlock(&s->take_mu);
		if (!timed && s->recv_timeo > 0) {
			deadline_after(&deadline, s->recv_timeo);
			timed = true;
		}
		int rv = 0;
		while (rv == 0 && nothing_queued(s) && !s->closed) {
			if (s->pat->app != NULL && s->pat->app->recv_empty != NULL && !s->raw &&
			    (rv = s->pat->app->recv_empty(s->app)) != 0) {
				break; /* e.g. nothing can ever arrive (nng) */
			}
			if ((flags & IOK_FLAG_NONBLOCK) || s->recv_timeo == 0) {
				rv = IOK_EAGAIN;
			} else if (wait_on(&s->recv_cv, &s->mu, &s->recv_waiters, s->recv_timeo,
			               &deadline) != 0 &&
			           nothing_queued(s) && !s->closed) {
				rv = IOK_ETIMEDOUT;
			}
		}
		pthread_mutex_unlock(&s->mu);
		if (rv != 0) {
			return rv;
		}
		/* Something arrived (or the socket closed): take it from the
		 * top, in order with what another receiver may have moved to
		 * taken meanwhile. */
	}
	if (post) {
		sock_post(s, &s->space_cmd);
	}
	return 0;
}

static int
sock_recvmsg(ik_sock *s, iok_msg **mp, int flags)
{
	size_t n;
	return sock_recvmsgs(s, mp, 1, &n, flags);
}

int
iok_recvmsg(iok_socket h, iok_msg **mp, int flags)
{
	ik_sock *s;
	int      rv;
	if (mp == NULL) {
		return IOK_EINVAL;
	}
	if ((rv = ik_sock_use(h, &s)) != 0) {
		return rv;
	}
	rv = sock_recvmsg(s, mp, flags);
	/* A fan-out copy may still share its body with the other recipients
	 * (msg.h): the application may write it through iok_msg_body, so it
	 * gets a body of its own, copied here on its own thread. */
	if (rv == 0 && (rv = ik_msg_writable(*mp)) != 0) {
		iok_msg_free(*mp);
		*mp = NULL;
	}
	return rv;
}

int
iok_recvmsg_many(iok_socket h, iok_msg **mv, size_t max, size_t *np, int flags)
{
	ik_sock *s;
	size_t   n = 0;
	int      rv;
	if (mv == NULL || np == NULL || max == 0) {
		return IOK_EINVAL;
	}
	*np = 0;
	if ((rv = ik_sock_use(h, &s)) != 0) {
		return rv;
	}
	rv = sock_recvmsgs(s, mv, max, &n, flags);
	/* As iok_recvmsg: bodies of their own (a shortage of memory loses
	 * the messages from the first it hits on). */
	for (size_t i = 0; rv == 0 && i < n; i++) {
		if ((rv = ik_msg_writable(mv[i])) != 0) {
			while (i < n) {
				iok_msg_free(mv[i]);
				mv[i++] = NULL;
			}
		}
	}
	for (*np = 0; *np < n && mv[*np] != NULL; (*np)++) {
	}
	return *np > 0 ? 0 : rv;
}

int
iok_recv(iok_socket h, void *data, size_t *sizep, int flags)
{
	ik_sock *s;
	iok_msg *m;
	int      rv;
	if (data == NULL || sizep == NULL) {
		return IOK_EINVAL;
	}
	if ((rv = ik_sock_use(h, &s)) != 0) {
		return rv;
	}
	rv = sock_recvmsg(s, &m, flags);
	if (rv != 0) {
		return rv;
	}
	if (m->status != 0) {
		rv = m->status;
		iok_msg_free(m);
		return rv;
	}
	if (flags & IOK_FLAG_ALLOC) {
		void *buf = iok_alloc(m->len);
		if (buf == NULL) {
			iok_msg_free(m);
			return IOK_ENOMEM;
		}
		memcpy(buf, m->body, m->len);
		*(void **) data = buf;
	} else {
		memcpy(data, m->body, m->len < *sizep ? m->len : *sizep);
	}
	*sizep = m->len;
	iok_msg_free(m);
	return 0;
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
	size_t   n, taken, done = 0, bytes;
	bool     busy = false, held = false;

	if (s->finished) {
		return;
	}
	ik_task_cancel(&s->pump_task);
	s->send_busy = false;
	for (;;) {
		if (done >= PUMP_LIMIT) {
			/* The application keeps the queue full: let this loop
			 * iteration write what we gave the pipes, then go on. */
			ik_task_schedule_next(&s->pump_task);
			break;
		}
		pthread_mutex_lock(&s->mu);
		n = s->sq.len < PUMP_BATCH ? s->sq.len : PUMP_BATCH;
		for (size_t i = 0; i < n; i++) {
			batch[i] = ik_msgq_peek(&s->sq, i);
		}
		pthread_mutex_unlock(&s->mu);
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
		if (taken > 0) {
			bool wake = false;
			pthread_mutex_lock(&s->mu);
			size_t before   = s->sq.len;
			bool   was_full = ik_sq_full(s);
			for (size_t i = 0; i < taken; i++) {
				(void) ik_msgq_pop(&s->sq);
			}
			s->sq_bytes -= bytes;
			if (was_full && !ik_sq_full(s) && !s->closed) {
				ik_efd_raise(s->send_fd);
			}
			/* Blocked senders wake once the queue is down to half (one
			 * wake-up per batch, not per message); under a byte limit a
			 * waiter's message may need more room than that, so any
			 * progress wakes it. */
			if (s->send_waiters > 0 &&
			    (s->sq_max_bytes > 0 || (before > low_water(s->sq_cap) &&
			                                s->sq.len <= low_water(s->sq_cap)))) {
				wake = true;
			}
			pthread_mutex_unlock(&s->mu);
			if (wake) {
				pthread_cond_broadcast(&s->send_cv);
			}
		}
		/* Senders that found the queue non-empty did not wake us:
		 * loop until it is empty or the pattern pushes back. */
		if (busy || held) {
			break;
		}
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
	int      wake = 0;
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
		if (!s->closed) {
			ik_efd_raise(s->recv_fd);
		}
		wake = s->recv_waiters > 0 ? (n == 1 ? 1 : 2) : 0;
	}
	pthread_mutex_unlock(&s->mu);
	/* Signalled after unlocking, so the woken thread does not wake up
	 * only to wait for the mutex we still hold. */
	if (wake == 1) {
		pthread_cond_signal(&s->recv_cv);
	} else if (wake == 2) {
		pthread_cond_broadcast(&s->recv_cv);
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
