/*
 * sockrecv.c - the application's receiving half of the socket's message
 * path: taking messages off the receive queue the kernel fills, in
 * batches where the pattern allows, blocking per the receive timeout, and
 * keeping the readable descriptor exact (sockmsg.c has the rest).
 */
#define _GNU_SOURCE /* ppoll */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>

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
	if (left > 0) {
		ik_sock_watch_poke(s, atomic_load_explicit(&s->recv_watch, memory_order_relaxed));
	}
}

/* ------------------------------------------------- watching the wire */

/* A receiver that sleeps on the socket's futex wakes only after the kernel
 * thread has woken (from epoll), read and delivered: two sleeps in a row
 * on every reply.  With one stream connection, the first receiver to wait
 * (after its spin, if that caught nothing) sleeps in ppoll on that
 * connection's descriptor instead (and on watch_efd, which the kernel
 * raises for anything else): the bytes wake it and the kernel thread at
 * once, and it spins for the delivery while the kernel reads.  Only where
 * the application sent since it last received (a request and its reply, or
 * the next request after an answer): a receiver that only receives would
 * wake twice for every batch of a stream, and its spin take the CPU the
 * kernel thread reads with (64 B push/pull -20-30%); and only with at most
 * one answer outstanding: with many in flight replies stream in, the
 * descriptor is mostly readable already, and the spin takes the CPU the
 * other threads need (64 requests in flight -10-20%).  Only on
 * request/reply patterns (conn_fd is only set there, socket.c): two pair
 * sockets streaming both ways in step pass the rule above and lost 15%
 * watching.  Not where the connection's other end is in this process
 * (pipe_local.c).  Once per send; IOK_RECV_WATCH=0 turns it off. */
enum { WATCH_SPIN_NS = 50 * 1000 };

static int watch_setting = -1; /* -1: not read yet */

static bool
watch_enabled(void)
{
	int v = __atomic_load_n(&watch_setting, __ATOMIC_RELAXED);
	if (v < 0) {
		const char *e = getenv("IOK_RECV_WATCH");
		v             = e != NULL && e[0] == '0' && e[1] == '\0' ? 0 : 1;
		__atomic_store_n(&watch_setting, v, __ATOMIC_RELAXED);
	}
	return v != 0;
}

/* Nanoseconds from now to a CLOCK_MONOTONIC deadline (<= 0: passed). */
static long
ns_left(const struct timespec *deadline)
{
	return (deadline->tv_sec * 1000000000L + deadline->tv_nsec) - ik_mono_ns();
}

/* For ppoll: the time from now to deadline in **relp (which points at
 * the caller's timespec), or *relp = NULL for no deadline; IOK_ETIMEDOUT
 * if it has passed. */
static int
time_left(const struct timespec *deadline, struct timespec **relp)
{
	if (deadline == NULL) {
		*relp = NULL;
		return 0;
	}
	long left = ns_left(deadline);
	if (left <= 0) {
		return IOK_ETIMEDOUT;
	}
	**relp = (struct timespec) { left / 1000000000L, left % 1000000000L };
	return 0;
}

/* Under mu, nothing queued: sleep in ppoll on recv_fd (level-triggered:
 * raised under mu for what arrives) with the caller's signal mask.
 * Returns 0, IOK_ETIMEDOUT or IOK_EINTR; mu held again. */
static int
signal_wait(ik_sock *s, const struct timespec *deadline, const sigset_t *sigmask)
{
	struct timespec rel, *relp = &rel;
	if (time_left(deadline, &relp) != 0) {
		return IOK_ETIMEDOUT;
	}
	struct pollfd pf = { .fd = s->recv_fd, .events = POLLIN };
	pthread_mutex_unlock(&s->mu);
	int n = ppoll(&pf, 1, relp, sigmask);
	pthread_mutex_lock(&s->mu);
	return n == 0 ? IOK_ETIMEDOUT : n < 0 && errno == EINTR ? IOK_EINTR : 0;
}

/* Under mu, nothing queued: sleep in ppoll on fd and watch_efd (and
 * recv_fd, with a signal mask: iok_recv_wait) until one is readable, the
 * deadline (NULL: none) passes or, with sigmask, a signal arrives; if fd
 * woke it, spin for the delivery.  Returns as ik_wait_on, or IOK_EINTR;
 * mu held again.  Once per send: a receiver woken by a part of a message
 * would find the descriptor readable again at once. */
static int
watch_wait(ik_sock *s, int fd, const struct timespec *deadline, const sigset_t *sigmask)
{
	struct timespec rel, *relp = &rel;
	if (s->watch_efd < 0 && (s->watch_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		if (sigmask != NULL) {
			return signal_wait(s, deadline, sigmask);
		}
		return ik_wait_on(
		    &s->recv_ev, &s->mu, &s->recv_waiters, deadline == NULL ? -1 : 0, deadline);
	}
	if (time_left(deadline, &relp) != 0) {
		return IOK_ETIMEDOUT;
	}
	unsigned      seen  = atomic_load_explicit(&s->recv_ev.seq, memory_order_relaxed);
	struct pollfd pf[3] = { { .fd = s->watch_efd, .events = POLLIN },
		{ .fd = fd, .events = POLLIN }, { .fd = s->recv_fd, .events = POLLIN } };
	nfds_t        npf   = sigmask != NULL && s->recv_fd >= 0 ? 3 : 2;
	atomic_store_explicit(&s->recv_watch, WATCH_POLL, memory_order_relaxed);
	s->recv_watches++;
	s->sent_since_recv = false;
	pthread_mutex_unlock(&s->mu);
	int n  = ppoll(pf, npf, relp, sigmask);
	int rv = n == 0                                       ? IOK_ETIMEDOUT
	         : n < 0 && errno == EINTR && sigmask != NULL ? IOK_EINTR
	                                                      : 0;
	if (n > 0 && pf[0].revents == 0 && pf[1].revents == POLLIN &&
	    (npf < 3 || pf[2].revents == 0)) {
		atomic_store_explicit(&s->recv_watch, WATCH_SPIN, memory_order_relaxed);
		long start = ik_mono_ns();
		while (atomic_load_explicit(&s->recv_ev.seq, memory_order_acquire) == seen &&
		       ik_mono_ns() - start < WATCH_SPIN_NS) {
			ik_cpu_relax();
		}
	}
	pthread_mutex_lock(&s->mu);
	atomic_store_explicit(&s->recv_watch, WATCH_NONE, memory_order_relaxed);
	if (atomic_exchange_explicit(&s->watch_raised, 0, memory_order_relaxed)) {
		/* A raise still on its way is left for the next watch: it
		 * returns at once and that receive sleeps on the futex. */
		ik_efd_clear(s->watch_efd);
	}
	return rv;
}

/* ------------------------------------------------ spinning for it */

/* A receiver whose socket answers (it can send: req, rep, pair, bus,
 * surveyor, respondent, db) spins a moment before it sleeps, and before it
 * watches the wire: its message is most often the answer to what it just
 * sent, or the next request of a window, a few microseconds away.  A sleep
 * costs a futex call or a ppoll on each side and, where the CPU goes idle,
 * its wake-up (25-40 us on these VMs), and those set how fast a round trip
 * or a window of requests goes.  The spin yields the CPU as it goes
 * (ik_event_spin), so the thread that will answer is not kept off it; a
 * spin with pauses alone lost.  A spin that caught nothing makes the next
 * ones rarer (1, 2, 4 ... 64 receives skip it), so a receiver whose
 * messages are far apart spins in about one receive of 64 that wait.
 * Receivers that only receive (pull, sub) do not spin: they are fed in
 * batches, and the spin took the CPU the kernel thread reads with (1 MiB
 * push/pull over tcp -29%).  IOK_RECV_SPIN_US sets the budget (kernel.c);
 * 0 turns it off. */
enum { RECV_SPIN_BACKOFF_MAX = 64 };

/* Under mu, nothing queued: spin for a message if this receive may; true
 * if it spun, caught or not: the caller looks at the queue again before
 * it sleeps (a delivery can land while the spinner takes mu back, its
 * wake-up made before the sleep would read the sequence). */
static bool
recv_spin(ik_sock *s, const struct timespec *deadline)
{
	long budget = s->recv_spin_us >= 0 ? s->recv_spin_us * 1000L : ik_recv_spin_ns();
	if (budget == 0 || !(s->pat->flags & IK_PF_SEND) ||
	    atomic_load_explicit(&s->recv_waiters, memory_order_relaxed) > 0) {
		return false; /* one spinner: the others sleep */
	}
	if (ik_backoff_pass(&s->spin_backoff)) {
		return false;
	}
	if (deadline != NULL) {
		long left = ns_left(deadline);
		if (left <= 0) {
			return false;
		}
		budget = left < budget ? left : budget;
	}
	s->recv_spins++;
	atomic_fetch_add(&s->recv_waiters, 1); /* so wakers bump the sequence */
	bool woke = ik_event_spin(&s->recv_ev, &s->mu, budget);
	atomic_fetch_sub(&s->recv_waiters, 1);
	s->recv_spin_hits += woke;
	ik_backoff_note(&s->spin_backoff, woke, RECV_SPIN_BACKOFF_MAX);
	return true;
}

/* What the waits of one receive did: it watches the wire or spins at
 * most once. */
struct waits {
	bool watched;   /* a wait watched the wire */
	bool spun_once; /* a wait spun (or skipped its turn to) */
	bool spun;      /* the last wait spun and did not sleep */
};

/* Under mu, nothing queued: wait for a message.  The first wait of a
 * receive spins if it may; a wait after that watches the wire if it may
 * (once); else, and after those, it sleeps: with a signal mask
 * (iok_recv_wait, recv_fd made) in ppoll, interruptible (a spin runs with
 * the caller's mask: a signal that comes meanwhile ends the ppoll after
 * it), else on the futex. */
static int
recv_wait(ik_sock *s, const struct timespec *deadline, struct waits *w, const sigset_t *sigmask)
{
	int fd  = -1;
	w->spun = false;
	if (!w->spun_once) {
		w->spun_once = true;
		if (recv_spin(s, deadline)) {
			w->spun = true;
			return 0;
		}
	}
	if (!w->watched && s->sent_since_recv && s->app_balance <= 1 && watch_enabled() &&
	    atomic_load_explicit(&s->recv_waiters, memory_order_relaxed) == 0 &&
	    atomic_load_explicit(&s->recv_watch, memory_order_relaxed) == WATCH_NONE &&
	    (fd = atomic_load_explicit(&s->conn_fd, memory_order_relaxed)) >= 0) {
		w->watched = true;
		return watch_wait(s, fd, deadline, sigmask);
	}
	if (sigmask != NULL) {
		return signal_wait(s, deadline, sigmask);
	}
	return ik_wait_on(
	    &s->recv_ev, &s->mu, &s->recv_waiters, deadline == NULL ? -1 : 0, deadline);
}

/* Under mu, nothing queued: 0 to wait, or the app-side hook's error
 * (IOK_ESTATE: a plain req with no request out has nothing coming). */
static int
empty_verdict(ik_sock *s)
{
	const ik_app_hooks *app = s->raw ? NULL : s->pat->app;
	return app != NULL && app->recv_empty != NULL ? app->recv_empty(s->app) : 0;
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
	size_t n_ahead                        = 0;
	if (!batch) {
		max = 1; /* one at a time: batches() */
	}
	s->sent_since_recv = false;
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
			n_ahead++;
		}
		atomic_store_explicit(&s->taken_len, s->taken.len, memory_order_relaxed);
	}
	s->app_balance -= (int) (n + n_ahead < IK_BALANCE_MAX ? n + n_ahead : IK_BALANCE_MAX);
	if (s->app_balance < -IK_BALANCE_MAX) {
		s->app_balance = -IK_BALANCE_MAX;
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
	struct waits    waits = { 0 };

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
			if ((rv = empty_verdict(s)) != 0) {
				break; /* e.g. nothing can ever arrive (nng) */
			}
			if ((flags & IOK_FLAG_NONBLOCK) || s->recv_timeo == 0) {
				rv = IOK_EAGAIN;
			} else if (recv_wait(s, s->recv_timeo < 0 ? NULL : &deadline, &waits,
			               NULL) != 0 &&
			           nothing_queued(s) && !s->closed) {
				rv             = IOK_ETIMEDOUT;
				s->app_balance = 0; /* what timed out will not be answered */
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
iok_recv_wait(iok_socket h, iok_duration timeout, const sigset_t *sigmask)
{
	struct timespec deadline;
	ik_sock        *s;
	struct waits    waits = { 0 };
	bool            woke  = false; /* a wait slept and woke */
	int             rv;
	if ((rv = ik_sock_use(h, &s)) != 0) {
		return rv;
	}
	if (!(s->pat->flags & IK_PF_RECV)) {
		return IOK_ENOTSUP;
	}
	if (sigmask != NULL && (rv = ik_sock_ensure_fds(s)) != 0) {
		return rv;
	}
	if (timeout > 0) {
		ik_deadline_after(&deadline, timeout);
	}
	pthread_mutex_lock(&s->mu);
	for (;;) {
		if (!nothing_queued(s)) {
			rv = 0;
			break;
		}
		if (s->closed) {
			rv = IOK_ECLOSED;
			break;
		}
		if ((rv = empty_verdict(s)) != 0) {
			break;
		}
		if (timeout == 0 || (woke && sigmask != NULL)) {
			/* With a mask, one wake-up ends the call: the caller
			 * looks (a binding's own raise of recv_fd wakes it
			 * too) and comes back. */
			rv = timeout == 0 ? IOK_ETIMEDOUT : 0;
			break;
		}
		rv   = recv_wait(s, timeout < 0 ? NULL : &deadline, &waits, sigmask);
		woke = !waits.spun;
		if (rv == IOK_EINTR) {
			break;
		}
		if (rv == IOK_ETIMEDOUT && nothing_queued(s) && !s->closed) {
			s->app_balance = 0; /* as a receive that times out */
			break;
		}
	}
	pthread_mutex_unlock(&s->mu);
	return rv;
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
