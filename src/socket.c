/*
 * socket.c - the socket's lifecycle: open, close, linger, teardown and
 * fork.  The message path (the application's send and receive, the
 * kernel's send pump and deliveries) is in sockmsg.c, options in
 * sockopt.c, devices in device.c.
 *
 * The only cross-thread state is the part of ik_sock guarded by s->mu
 * (see sockmsg.c for how the two sides wake each other).
 */
#define _GNU_SOURCE /* PTHREAD_MUTEX_ADAPTIVE_NP */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "ep.h"
#include "pipe.h"
#include "sock.h"

#define DEFAULT_QLEN 1024
/* Each queue holds at most this many bytes of bodies by default too: 1024
 * messages of 1 MiB were 2 GiB in flight, and a pipeline that big spends
 * its time faulting pages in (1 MiB push/pull over tcp: 1.7-2.4 GB/s and
 * 1.2-2.5 GB of RSS unbounded, 3.5-4.4 GB/s and 32 MiB bounded). */
#define DEFAULT_QBYTES ((size_t) 16 * 1024 * 1024)

static ik_list all_socks = { { &all_socks.head, &all_socks.head } };
static int     live_socks;

/* ---------------------------------------------------------- lifecycle */

static void
sock_destroy(ik_obj *o)
{
	ik_sock *s = (ik_sock *) o;
	ik_msgq_fini(&s->rq);
	ik_msgq_fini(&s->sq);
	ik_msgq_fini(&s->staged);
	ik_msgq_fini(&s->taken);
	if (s->recv_fd >= 0)
		close(s->recv_fd);
	if (s->send_fd >= 0)
		close(s->send_fd);
	if (s->peers_fd >= 0)
		close(s->peers_fd);
	if (s->watch_efd >= 0)
		close(s->watch_efd);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->take_mu);
	free(s->xs);
	free(s);
}

struct activate_cmd {
	ik_cmd   cmd;
	ik_sock *s;
};

/* In a forked child, an inherited socket wakes when first used. */
static void
activate_k(ik_cmd *c)
{
	ik_sock *s = ((struct activate_cmd *) c)->s;
	if (atomic_load(&s->epoch) != ik_fork_epoch()) {
		atomic_store(&s->epoch, ik_fork_epoch());
		if (!s->closing) {
			ik_eps_fork_activate(s);
		}
	}
	ik_cmd_done(c, 0);
}

/* The lookups' common end: a socket first used in a forked child wakes. */
static int
found(ik_obj *o, ik_sock **sp)
{
	if (o == NULL) {
		return IOK_ECLOSED;
	}
	*sp = (ik_sock *) o;
	if (atomic_load_explicit(&(*sp)->epoch, memory_order_relaxed) != ik_fork_epoch()) {
		struct activate_cmd ac = { .s = *sp };
		(void) ik_cmd_call(&ac.cmd, activate_k);
	}
	return 0;
}

int
ik_sock_hold(iok_socket h, ik_sock **sp)
{
	return found(ik_obj_hold(h.id, IK_OBJ_SOCK), sp);
}

int
ik_sock_use(iok_socket h, ik_sock **sp)
{
	return found(ik_obj_use(h.id, IK_OBJ_SOCK), sp);
}

void
ik_sock_rele(ik_sock *s)
{
	ik_obj_rele(&s->obj);
}

struct close_cmd {
	ik_cmd   cmd;
	ik_sock *s;
};
static void close_k(ik_cmd *c);
static void linger_check_fn(ik_task *t);

struct open_cmd {
	ik_cmd   cmd;
	ik_sock *s;
};

static void
open_k(ik_cmd *c)
{
	struct open_cmd *oc = (struct open_cmd *) c;
	ik_sock         *s  = oc->s;
	int              rv = s->pat->init(s->pdata, s, s->raw);
	if (rv == 0) {
		ik_list_append(&all_socks, &s->knode);
		live_socks++;
	}
	ik_cmd_done(c, rv);
}

/* The socket mutex is held for a few dozen instructions at a time by an
 * application thread and the kernel thread at once: spinning a moment
 * (glibc's adaptive mutex) is cheaper than the futex sleep and wake-up
 * a plain mutex does as soon as it is contended. */
static void
sock_mutex_init(pthread_mutex_t *mu)
{
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
	pthread_mutex_init(mu, &a);
	pthread_mutexattr_destroy(&a);
}

static int
sock_open(iok_socket *out, const char *name, int raw)
{
	const ik_pattern *pat = ik_pattern_find(name);
	ik_sock          *s;
	int               rv;

	if (out == NULL) {
		return IOK_EINVAL;
	}
	out->id = 0;
	if (pat == NULL) {
		return IOK_ENOTSUP;
	}
	if (raw && !(pat->flags & IK_PF_RAW)) {
		return IOK_ENOTSUP;
	}
	if ((rv = ik_kernel_ensure()) != 0) {
		return rv;
	}
	/* The pattern's state follows the socket, 16-byte aligned. */
	size_t base = (sizeof(ik_sock) + 15) & ~(size_t) 15;
	size_t app  = (base + pat->sock_size + 15) & ~(size_t) 15;
	/* Cache-line aligned: sock.h keeps what each thread writes on lines
	 * of its own. */
	size_t size = (app + (pat->app ? pat->app->size : 0) + 63) & ~(size_t) 63;
	if ((s = aligned_alloc(64, size)) == NULL) {
		return IOK_ENOMEM;
	}
	memset(s, 0, size);
	ik_obj_init(&s->obj, IK_OBJ_SOCK, sock_destroy);
	s->pat     = pat;
	s->pdata   = (char *) s + base;
	s->app     = (char *) s + app;
	s->raw     = raw;
	s->recv_fd = s->send_fd = -1;
	s->peers_fd             = -1;
	s->watch_efd            = -1;
	atomic_init(&s->conn_fd, -1);
	atomic_init(&s->recv_watch, WATCH_NONE);
	atomic_init(&s->watch_raised, 0);
	atomic_init(&s->epoch, ik_fork_epoch());
	sock_mutex_init(&s->mu);
	pthread_mutex_init(&s->take_mu, NULL);
	ik_event_init(&s->recv_ev);
	ik_event_init(&s->send_ev);
	s->rq_cap       = DEFAULT_QLEN;
	s->sq_cap       = DEFAULT_QLEN;
	s->rq_max_bytes = DEFAULT_QBYTES;
	s->sq_max_bytes = DEFAULT_QBYTES;
	s->recv_timeo   = IOK_DURATION_INFINITE;
	s->recv_spin_us = -1;
	s->send_timeo   = IOK_DURATION_INFINITE;
	s->linger       = 1000;
	s->max_ttl      = 8;
	/* SP keeps nng's 1 MiB; a database reply is as big as the value
	 * asked for, so database patterns have no limit unless set. */
	s->topts.recv_max     = (pat->flags & IK_PF_NOSP) ? 0 : 1024 * 1024;
	s->topts.reconn_min   = 100;
	s->topts.reconn_max   = 2000;
	s->topts.nodelay      = 1;
	s->topts.keepalive    = 0;
	s->topts.pool         = 1;
	s->topts.conn_timeo   = 10000;
	s->topts.ttl_min      = 1000;
	s->topts.ttl_max      = 60000;
	s->topts.health_ivl   = 5000;
	s->topts.health_timeo = 2000;
	s->topts.eject_errors = 5; /* Envoy's consecutive-error default */
	s->topts.eject_ms     = 30000;
	ik_list_init(&s->pipes);
	ik_list_init(&s->paused);
	ik_list_init(&s->eps);
	ik_list_init(&s->shared);
	ik_node_init(&s->knode);
	ik_task_init(&s->flush_task, ik_sock_flush_task_fn);
	ik_task_init(&s->pump_task, ik_sock_pump_task_fn);
	ik_task_init(&s->linger_task, linger_check_fn);
	s->send_cmd.fn  = ik_sock_send_cmd_fn;
	s->space_cmd.fn = ik_sock_space_cmd_fn;
	if (ik_msgq_init(&s->rq, DEFAULT_QLEN) != 0 || ik_msgq_init(&s->sq, DEFAULT_QLEN) != 0 ||
	    ik_msgq_init(&s->staged, DEFAULT_QLEN) != 0 ||
	    ik_msgq_init(&s->taken, IK_TAKE_MAX) != 0) {
		sock_destroy(&s->obj);
		return IOK_ENOMEM;
	}
	/* Token 0 means "none"; start elsewhere so tokens are not small
	 * integers a caller could confuse with indices. */
	s->next_token = ((uint64_t) (uintptr_t) s >> 4) & 0xffffff;

	struct open_cmd oc = { .s = s };
	if ((rv = ik_cmd_call(&oc.cmd, open_k)) != 0) {
		sock_destroy(&s->obj);
		return rv;
	}
	if ((rv = ik_obj_register(&s->obj)) != 0) {
		/* Out of memory for the table: close it like any other socket;
		 * the kernel drops the creator's reference. */
		struct close_cmd cc = { .s = s };
		(void) ik_cmd_call(&cc.cmd, close_k);
		return rv;
	}
	snprintf(s->name, sizeof(s->name), "%u", s->obj.id);
	/* From here the kernel holds the creator's reference until teardown. */
	out->id = s->obj.id;
	return 0;
}

int
iok_socket_open(iok_socket *s, const char *pattern)
{
	return sock_open(s, pattern, 0);
}

int
iok_socket_open_raw(iok_socket *s, const char *pattern)
{
	return sock_open(s, pattern, 1);
}

#define OPENER(fn, name)                       \
	int iok_##fn##_open(iok_socket *s)     \
	{                                      \
		return sock_open(s, name, 0);  \
	}                                      \
	int iok_##fn##_open_raw(iok_socket *s) \
	{                                      \
		return sock_open(s, name, 1);  \
	}
OPENER(pair0, "pair0")
OPENER(pair1, "pair1")
OPENER(push0, "push0")
OPENER(pull0, "pull0")
OPENER(req0, "req0")
OPENER(rep0, "rep0")
OPENER(pub0, "pub0")
OPENER(sub0, "sub0")
OPENER(surveyor0, "surveyor0")
OPENER(respondent0, "respondent0")
OPENER(bus0, "bus0")

int
iok_pair1_open_poly(iok_socket *s)
{
	int rv = sock_open(s, "pair1", 0);
	if (rv == 0 && (rv = iok_socket_set_bool(*s, IOK_OPT_PAIR1_POLY, 1)) != 0) {
		iok_close(*s);
		s->id = 0;
	}
	return rv;
}

int
iok_db_open(iok_socket *s)
{
	return sock_open(s, "pipelined-db", 0);
}

int
iok_socket_id(iok_socket s)
{
	return s.id > 0 ? (int) s.id : -1;
}

/* Mark the application half closed: every waiter wakes, both descriptors
 * turn readable so pollers notice. */
static void
close_app_half(ik_sock *s)
{
	pthread_mutex_lock(&s->mu);
	if (!s->closed) {
		s->closed = true;
		if (s->rq.len == 0) {
			ik_efd_raise(s->recv_fd);
		}
		if (ik_sq_full(s)) {
			ik_efd_raise(s->send_fd);
		}
		ik_event_wake(&s->recv_ev, INT_MAX);
		ik_event_wake(&s->send_ev, INT_MAX);
		ik_sock_watch_poke(s, atomic_load_explicit(&s->recv_watch, memory_order_relaxed));
	}
	pthread_mutex_unlock(&s->mu);
}

/* --------------------------------------------------- kernel-side close */

static bool
flushed(ik_sock *s)
{
	ik_node *n;
	pthread_mutex_lock(&s->mu);
	bool empty = s->sq.len == 0;
	pthread_mutex_unlock(&s->mu);
	if (!empty) {
		return false;
	}
	for (n = ik_list_first(&s->pipes); n != NULL; n = ik_list_next(&s->pipes, n)) {
		ik_pipe *p = ik_container_of(n, ik_att, snode)->pipe;
		if (p->is_stream && (p->wb[0].total > 0 || p->wb[1].total > 0)) {
			return false;
		}
	}
	return true;
}

/* Could queued messages still leave?  Only through a connection that is
 * up or handshaking, or one a dialer is making (a peer still connecting).
 * A dialer backing off after a refusal, a listener nobody has connected
 * to, a peer that left: nothing will ever take them, so lingering would
 * only make close() wait. */
static bool
can_flush(ik_sock *s)
{
	ik_node *n, *pn;
	if (!ik_list_empty(&s->pipes)) {
		return true; /* including pipes of dialers we share */
	}
	for (n = ik_list_first(&s->eps); n != NULL; n = ik_list_next(&s->eps, n)) {
		ik_ep *ep = ik_container_of(n, ik_ep, snode);
		if (ep->dialer && ik_dialer_trying(ep)) {
			return true;
		}
		for (pn = ik_list_first(&ep->pipes); pn != NULL;
		     pn = ik_list_next(&ep->pipes, pn)) {
			if (ik_container_of(pn, ik_pipe, enode)->state != IK_PIPE_CLOSING) {
				return true;
			}
		}
	}
	return false;
}

static void
teardown(ik_sock *s)
{
	ik_node *n, *tmp;
	/* Closing the last endpoint may finish (and free) the socket. */
	ik_obj_ref(&s->obj);
	s->tearing = true;
	if (s->linger_timer != NULL) {
		ik_timer_free(s->linger_timer);
		s->linger_timer = NULL;
	}
	ik_list_foreach_safe(&s->eps, n, tmp)
	{
		ik_ep_close(ik_container_of(n, ik_ep, snode));
	}
	ik_list_foreach_safe(&s->pipes, n, tmp)
	{
		ik_att *a = ik_container_of(n, ik_att, snode);
		if (a == &a->pipe->att[IK_ATT_OWNER]) {
			ik_pipe_close(a->pipe, IOK_ECLOSED);
		}
	}
	ik_unshare_all(s); /* pipes we only share carry on without us */
	ik_sock_maybe_finish_close(s);
	ik_sock_rele(s);
}

static void
linger_expired(void *arg)
{
	ik_sock *s = arg;
	ik_timer_free(s->linger_timer);
	s->linger_timer = NULL;
	teardown(s);
}

static void
close_begin(ik_sock *s, ik_cmd *cmd)
{
	if (s->closing) {
		if (cmd != NULL) {
			ik_cmd_done(cmd, IOK_ECLOSED);
		}
		return;
	}
	s->closing   = true;
	s->close_cmd = cmd;
	close_app_half(s);
	ik_devices_unlink(s);
	/* While lingering, connections, dialers and listeners all stay: a
	 * push that listens flushes to a peer that connects in that time, as
	 * an nng push would have waited for one. */
	ik_sock_pump(s);
	if (s->linger > 0 && !flushed(s) && can_flush(s)) {
		s->linger_timer = ik_timer_new(linger_expired, s);
		if (s->linger_timer != NULL) {
			ik_timer_start(s->linger_timer, (uint64_t) s->linger);
			return;
		}
	}
	teardown(s);
}

void
ik_sock_maybe_finish_close(ik_sock *s)
{
	if (!s->closing || s->finished) {
		return;
	}
	if (!s->tearing) {
		/* Lingering (or still inside close_begin): finish early once
		 * everything queued went out, or nothing ever can. */
		if (s->linger_timer != NULL && (flushed(s) || !can_flush(s))) {
			ik_timer_free(s->linger_timer);
			s->linger_timer = NULL;
			teardown(s);
		}
		return;
	}
	if (!ik_list_empty(&s->eps) || s->npipes > 0) {
		return;
	}
	s->finished = true;
	/* Everything that pointed at the socket is gone. */
	ik_task_cancel(&s->flush_task);
	ik_task_cancel(&s->pump_task);
	ik_task_cancel(&s->linger_task);
	s->pat->fini(s->pdata);
	ik_throttle_fini(s);
	ik_list_remove(&s->knode);
	live_socks--;
	ik_msgq_clear(&s->staged);
	pthread_mutex_lock(&s->mu);
	ik_msgq_clear(&s->sq);
	pthread_mutex_unlock(&s->mu);
	if (s->close_cmd != NULL) {
		ik_cmd_done(s->close_cmd, 0);
		s->close_cmd = NULL;
	}
	ik_sock_rele(s); /* the kernel's (creator's) reference */
}

void
ik_sock_peer_limits(ik_sock *s)
{
	ik_node *n;
	size_t   lim = 0;
	for (n = ik_list_first(&s->pipes); n != NULL; n = ik_list_next(&s->pipes, n)) {
		ik_pipe *p = ik_container_of(n, ik_att, snode)->pipe;
		if (p->is_stream || p->peer_pipe == NULL || p->peer_pipe->recv_max == 0) {
			lim = 0; /* a peer whose limit we do not know, or none */
			break;
		}
		if (p->peer_pipe->recv_max > lim) {
			lim = p->peer_pipe->recv_max;
		}
	}
	atomic_store_explicit(&s->send_max, lim, memory_order_relaxed);

	/* With exactly one stream connection, to another process, a blocking
	 * receiver on a request/reply socket may watch its descriptor
	 * (sockrecv.c says why only these). */
	int      fd = -1;
	ik_node *f  = ik_list_first(&s->pipes);
	if (f != NULL && ik_list_next(&s->pipes, f) == NULL &&
	    (s->pat->flags & (IK_PF_REQUEST | IK_PF_REPLY))) {
		ik_pipe   *p = ik_container_of(f, ik_att, snode)->pipe;
		uv_os_fd_t ufd;
		if (p->is_stream && !p->local_peer && uv_fileno(&p->h.handle, &ufd) == 0) {
			fd = ufd;
		}
	}
	atomic_store_explicit(&s->conn_fd, fd, memory_order_relaxed);
}

static void
linger_check_fn(ik_task *t)
{
	ik_sock_maybe_finish_close(ik_container_of(t, ik_sock, linger_task));
}

void
ik_sock_linger_check(ik_sock *s)
{
	if (s->closing && !s->tearing && s->linger_timer != NULL) {
		ik_task_schedule(&s->linger_task);
	}
}

void
ik_sock_ep_gone(ik_sock *s, ik_ep *ep)
{
	ik_list_remove(&ep->snode);
	ik_sock_maybe_finish_close(s);
}

static void
close_k(ik_cmd *c)
{
	struct close_cmd *cc = (struct close_cmd *) c;
	close_begin(cc->s, c);
}

int
iok_close(iok_socket h)
{
	ik_obj  *o = ik_obj_hold(h.id, IK_OBJ_SOCK); /* no fork wake-up */
	ik_sock *s = (ik_sock *) o;
	int      rv;
	if (o == NULL) {
		return IOK_ECLOSED;
	}
	if ((rv = ik_obj_unregister(&s->obj)) != 0) {
		ik_sock_rele(s); /* closed by another thread meanwhile */
		return rv;
	}
	/* Wake blocked callers first: close must not wait for them. */
	close_app_half(s);
	struct close_cmd cc = { .s = s };
	rv                  = ik_cmd_call(&cc.cmd, close_k);
	ik_sock_rele(s);
	ik_obj_cache_drop(); /* this thread's cached reference, if any */
	return rv == IOK_ECLOSED ? 0 : rv;
}

/* iok_fini / exit: the kernel closes every socket itself. */
static void
unregister_cb(ik_obj *o, void *arg)
{
	(void) o;
	(void) arg;
}

void
ik_sockets_close_all(void)
{
	ik_node *n, *tmp;
	(void) unregister_cb;
	ik_list_foreach_safe(&all_socks, n, tmp)
	{
		ik_sock *s = ik_container_of(n, ik_sock, knode);
		(void) ik_obj_unregister(&s->obj);
		s->linger = s->linger > 200 ? 200 : s->linger; /* exit: be brief */
		close_begin(s, NULL);
	}
}

int
ik_sockets_live(void)
{
	return live_socks;
}

void
ik_sockets_foreach(void (*fn)(ik_sock *, void *), void *arg)
{
	ik_node *n, *tmp;
	ik_list_foreach_safe(&all_socks, n, tmp)
	{
		fn(ik_container_of(n, ik_sock, knode), arg);
	}
}

void
iok_fini(void)
{
	ik_kernel_stop();
	ik_obj_cache_drop();
}

void
ik_sock_stat(ik_sock *s, int stat, uint64_t n)
{
	if (stat >= 0 && stat < IK_STAT_COUNT) {
		s->stats[stat] += n;
	}
}

ik_pipe *
ik_sock_pipe_by_id(ik_sock *s, uint32_t id)
{
	ik_node *n;
	for (n = ik_list_first(&s->pipes); n != NULL; n = ik_list_next(&s->pipes, n)) {
		ik_pipe *p = ik_container_of(n, ik_att, snode)->pipe;
		if (p->id == id) {
			return p;
		}
	}
	return NULL;
}

int
ik_sock_max_ttl(const ik_sock *s)
{
	return s->max_ttl;
}

/* ----------------------------------------------------------------- fork */

void
ik_sockets_fork_prepare(void)
{
	ik_node *n;
	ik_table_lock();
	for (n = ik_list_first(&all_socks); n != NULL; n = ik_list_next(&all_socks, n)) {
		ik_sock *s = ik_container_of(n, ik_sock, knode);
		pthread_mutex_lock(&s->take_mu);
		pthread_mutex_lock(&s->mu);
	}
}

void
ik_sockets_fork_parent(void)
{
	ik_node *n;
	for (n = ik_list_first(&all_socks); n != NULL; n = ik_list_next(&all_socks, n)) {
		ik_sock *s = ik_container_of(n, ik_sock, knode);
		pthread_mutex_unlock(&s->mu);
		pthread_mutex_unlock(&s->take_mu);
	}
	ik_table_unlock();
}

/* Give the child its own descriptor at the same number: an eventfd shared
 * with the parent would let each process consume the other's wakeups. */
static void
fresh_eventfd(int fd, int readable)
{
	if (fd < 0) {
		return; /* never handed out */
	}
	int nfd = eventfd(readable ? 1 : 0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (nfd >= 0) {
		if (dup2(nfd, fd) >= 0) {
			(void) fcntl(fd, F_SETFD, FD_CLOEXEC);
		}
		close(nfd);
	}
}

void
ik_sockets_fork_child(void)
{
	ik_node *n;
	ik_table_fork_child();
	for (n = ik_list_first(&all_socks); n != NULL; n = ik_list_next(&all_socks, n)) {
		ik_sock *s = ik_container_of(n, ik_sock, knode);
		sock_mutex_init(&s->mu);
		pthread_mutex_init(&s->take_mu, NULL);
		ik_event_init(&s->recv_ev);
		ik_event_init(&s->send_ev);
		/* Queued messages are the parent's: never delivered or sent
		 * twice. */
		ik_msgq_clear(&s->taken);
		atomic_store(&s->taken_len, 0);
		ik_msgq_clear(&s->rq);
		ik_msgq_clear(&s->sq);
		ik_msgq_clear(&s->staged);
		s->rq_bytes = s->sq_bytes = s->staged_bytes = s->rq_bytes_known = 0;
		s->rq_known                                                     = 0;
		s->recv_waiters                                                 = 0;
		s->send_waiters                                                 = 0;
		s->recv_blocked                                                 = false;
		if (s->pat->app != NULL && s->pat->app->fork_child != NULL) {
			s->pat->app->fork_child(s->app);
		}
		/* Commands queued in the parent held references; the child's
		 * queue starts empty, so give them back. */
		if (s->send_cmd.queued) {
			atomic_fetch_sub(&s->obj.refs, 1);
		}
		if (s->space_cmd.queued) {
			atomic_fetch_sub(&s->obj.refs, 1);
		}
		s->send_cmd.queued  = 0;
		s->space_cmd.queued = 0;
		s->close_cmd        = NULL; /* its waiter lives in the parent */
		fresh_eventfd(s->recv_fd, s->closed);
		fresh_eventfd(s->send_fd, 1);
		fresh_eventfd(s->peers_fd, 1); /* the child's peers differ: look */
		fresh_eventfd(s->watch_efd, 0);
		atomic_store(&s->recv_watch, WATCH_NONE);
		atomic_store(&s->watch_raised, 0);
		atomic_store(&s->conn_fd, -1); /* the parent's connections */
		ik_eps_fork_child(s);
	}
}

/* On the child's new kernel thread, before anything else runs. */
void
ik_sockets_fork_child_kernel(void)
{
	ik_node *n, *tmp;
	ik_list_foreach_safe(&all_socks, n, tmp)
	{
		ik_sock *s = ik_container_of(n, ik_sock, knode);
		ik_task_cancel(&s->flush_task);
		ik_task_cancel(&s->pump_task);
		ik_task_cancel(&s->linger_task);
		s->send_busy = false;
		ik_pipe_abandon_all_of(s);
		ik_eps_fork_child_kernel(s);
		if (s->pat->fork_child != NULL) {
			s->pat->fork_child(s->pdata);
		}
		if (s->closing && s->linger_timer != NULL) {
			ik_timer_free(s->linger_timer);
			s->linger_timer = NULL;
			teardown(s);
		}
	}
}

void
ik_sock_peers_crossed(ik_sock *s)
{
	ik_efd_raise(s->peers_fd);
}
