/*
 * sockrecv.c - the application's receiving half of the socket's message
 * path: taking messages off the receive queue the kernel fills, in
 * batches where the pattern allows, blocking per the receive timeout, and
 * keeping the readable descriptor exact (sockmsg.c has the rest).
 */
#include <stdlib.h>
#include <string.h>

#include "sock.h"

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

/* Does a receive move messages ahead into taken but hand them over one
 * at a time, the app-side hook running as each is handed over (under
 * take_mu)?  A constant of the pattern: no lock needed to ask. */
static bool
takes_ahead(const ik_sock *s)
{
	const ik_app_hooks *app = s->raw ? NULL : s->pat->app;
	return app != NULL && app->take_ahead && app->batches == NULL;
}

/* Under take_mu: hand over m from taken (the hook of a take-ahead
 * socket runs now, not when m was moved). */
static iok_msg *
pop_taken(ik_sock *s, bool ahead)
{
	iok_msg *m = ik_msgq_pop(&s->taken);
	if (ahead && s->pat->app->recv != NULL) {
		s->pat->app->recv(s->app, m);
	}
	return m;
}

/* Under mu: nothing for a receiver in rq nor in taken.  taken_len grows
 * only under mu; it shrinks under take_mu alone, and a stale (larger)
 * value only sends a waiter round the loop once more. */
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
		ik_event_wake(&s->recv_ev, 1);
	}
}

/* Under mu and take_mu, rq not empty, taken empty: take up to max for the
 * caller, and where batches() or takes_ahead() allows, move a batch of
 * what follows into taken.  True if the kernel is to be told there is room
 * again. */
static bool
take_rq(ik_sock *s, iok_msg **mv, size_t max, size_t *np)
{
	const ik_app_hooks *app               = s->raw ? NULL : s->pat->app;
	void (*hook)(void *, const iok_msg *) = app != NULL ? app->recv : NULL;
	bool   batch                          = batches(s);
	bool   ahead                          = takes_ahead(s);
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
	if (batch || ahead) {
		size_t bytes = 0;
		while (s->rq.len > 0 && s->taken.len < IK_TAKE_MAX &&
		       (s->taken.len == 0 || bytes < IK_TAKE_BYTES)) {
			iok_msg *m = ik_msgq_pop(&s->rq);
			s->rq_bytes -= m->len;
			bytes += m->len;
			if (hook != NULL && !ahead) {
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
	if (s->recv_blocked && s->rq.len <= ik_low_water(s->rq_cap)) {
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
	bool ahead = takes_ahead(s);
	if (ahead) {
		max = 1; /* handed over one at a time; the hook runs per message */
	}
	for (;;) {
		size_t n = 0;
		pthread_mutex_lock(&s->take_mu);
		while (n < max && s->taken.len > 0) {
			mv[n++] = pop_taken(s, ahead);
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
			ik_deadline_after(&deadline, s->recv_timeo);
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
			} else if (ik_wait_on(&s->recv_ev, &s->mu, &s->recv_waiters, s->recv_timeo,
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
		ik_sock_post(s, &s->space_cmd);
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
