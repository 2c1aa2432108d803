/*
 * socket.c - sockets: the application half (send and receive queues,
 * blocking, pollable descriptors) and the kernel half (pattern, pipes,
 * endpoints, delivery batching, close and linger, devices, fork).
 *
 * The only cross-thread state is the part of ik_sock guarded by s->mu.
 * The send queue is filled by application threads and drained by the
 * kernel; the receive queue the other way round.  Each side wakes the
 * other only on the empty -> non-empty (or full -> not-full) transition.
 */
#include <errno.h>
#include <fcntl.h>
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
#define MAX_QLEN 65536
#define PUMP_BATCH 64
#define PUMP_LIMIT 2048 /* messages per turn before yielding to I/O */

static ik_list all_socks = {{&all_socks.head, &all_socks.head}};
static int     live_socks;

/* ------------------------------------------------------------ eventfds */

/* Descriptors are made on first request (IOK_OPT_RECVFD/SENDFD): callers
 * that only block in iok_recv never pay an eventfd syscall. */
static void
efd_raise(int fd)
{
	uint64_t one = 1;
	if (fd < 0) {
		return;
	}
	if (write(fd, &one, sizeof(one)) < 0) {
		/* EAGAIN cannot happen: the counter is only ever 0 or 1. */
	}
}

static void
efd_clear(int fd)
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
cond_init_mono(pthread_cond_t *cv)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
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

/* ---------------------------------------------------------- lifecycle */

static void
sock_destroy(ik_obj *o)
{
	ik_sock *s = (ik_sock *) o;
	ik_msgq_fini(&s->rq);
	ik_msgq_fini(&s->sq);
	ik_msgq_fini(&s->staged);
	if (s->recv_fd >= 0) close(s->recv_fd);
	if (s->send_fd >= 0) close(s->send_fd);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->recv_cv);
	pthread_cond_destroy(&s->send_cv);
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

int
ik_sock_hold(iok_socket h, ik_sock **sp)
{
	ik_obj *o = ik_obj_hold(h.id, IK_OBJ_SOCK);
	if (o == NULL) {
		return IOK_ECLOSED;
	}
	*sp = (ik_sock *) o;
	if (atomic_load_explicit(&(*sp)->epoch, memory_order_relaxed) != ik_fork_epoch()) {
		struct activate_cmd ac = {.s = *sp};
		(void) ik_cmd_call(&ac.cmd, activate_k);
	}
	return 0;
}

void
ik_sock_rele(ik_sock *s)
{
	ik_obj_rele(&s->obj);
}

static void send_cmd_fn(ik_cmd *c);
static void space_cmd_fn(ik_cmd *c);

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
static void flush_task_fn(ik_task *t);
static void pump_task_fn(ik_task *t);

struct close_cmd {
	ik_cmd   cmd;
	ik_sock *s;
};
static void close_k(ik_cmd *c);

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
	if ((s = calloc(1, base + pat->sock_size)) == NULL) {
		return IOK_ENOMEM;
	}
	ik_obj_init(&s->obj, IK_OBJ_SOCK, sock_destroy);
	s->pat     = pat;
	s->pdata   = (char *) s + base;
	s->raw     = raw;
	s->recv_fd = s->send_fd = -1;
	atomic_init(&s->epoch, ik_fork_epoch());
	pthread_mutex_init(&s->mu, NULL);
	cond_init_mono(&s->recv_cv);
	cond_init_mono(&s->send_cv);
	s->rq_cap     = DEFAULT_QLEN;
	s->sq_cap     = DEFAULT_QLEN;
	s->recv_timeo = IOK_DURATION_INFINITE;
	s->send_timeo = IOK_DURATION_INFINITE;
	s->linger     = 1000;
	s->max_ttl    = 8;
	s->topts.recv_max   = 1024 * 1024;
	s->topts.reconn_min = 100;
	s->topts.reconn_max = 2000;
	s->topts.nodelay    = 1;
	s->topts.keepalive  = 0;
	s->topts.pool       = 1;
	ik_list_init(&s->pipes);
	ik_list_init(&s->paused);
	ik_list_init(&s->eps);
	ik_list_init(&s->shared);
	ik_node_init(&s->knode);
	ik_task_init(&s->flush_task, flush_task_fn);
	ik_task_init(&s->pump_task, pump_task_fn);
	s->send_cmd.fn  = send_cmd_fn;
	s->space_cmd.fn = space_cmd_fn;
	if (ik_msgq_init(&s->rq, DEFAULT_QLEN) != 0 || ik_msgq_init(&s->sq, DEFAULT_QLEN) != 0 ||
	    ik_msgq_init(&s->staged, DEFAULT_QLEN) != 0) {
		sock_destroy(&s->obj);
		return IOK_ENOMEM;
	}
	/* Token 0 means "none"; start elsewhere so tokens are not small
	 * integers a caller could confuse with indices. */
	s->next_token = ((uint64_t) (uintptr_t) s >> 4) & 0xffffff;

	struct open_cmd oc = {.s = s};
	if ((rv = ik_cmd_call(&oc.cmd, open_k)) != 0) {
		sock_destroy(&s->obj);
		return rv;
	}
	if ((rv = ik_obj_register(&s->obj)) != 0) {
		/* Out of memory for the table: close it like any other socket;
		 * the kernel drops the creator's reference. */
		struct close_cmd cc = {.s = s};
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

#define OPENER(fn, name)                                                                            \
	int iok_##fn##_open(iok_socket *s) { return sock_open(s, name, 0); }                       \
	int iok_##fn##_open_raw(iok_socket *s) { return sock_open(s, name, 1); }
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
			efd_raise(s->recv_fd);
		}
		if (s->sq.len >= (size_t) s->sq_cap) {
			efd_raise(s->send_fd);
		}
		pthread_cond_broadcast(&s->recv_cv);
		pthread_cond_broadcast(&s->send_cv);
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

void ik_ep_close(ik_ep *ep);
void ik_unshare_all(ik_sock *s);

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
devices_unlink(ik_sock *s)
{
	if (s->dev_peer != NULL) {
		ik_sock *p = s->dev_peer;
		if (p->dev_src == s) p->dev_src = NULL;
		if (p->dev_peer == s) p->dev_peer = NULL;
		s->dev_peer = NULL;
	}
	if (s->dev_src != NULL) {
		ik_sock *p = s->dev_src;
		if (p->dev_peer == s) p->dev_peer = NULL;
		if (p->dev_src == s) p->dev_src = NULL;
		s->dev_src = NULL;
	}
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
	devices_unlink(s);
	/* While lingering, connections, dialers and listeners all stay: a
	 * push that listens flushes to a peer that connects in that time, as
	 * an nng push would have waited for one. */
	ik_sock_pump(s);
	if (s->linger > 0 && !flushed(s)) {
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
		/* Lingering (or still inside close_begin): finish early only
		 * once everything queued went out. */
		if (s->linger_timer != NULL && flushed(s)) {
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
	s->pat->fini(s->pdata);
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
	struct close_cmd cc = {.s = s};
	rv = ik_cmd_call(&cc.cmd, close_k);
	ik_sock_rele(s);
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
iok_fini(void)
{
	ik_kernel_stop();
}

/* ------------------------------------------------------ sending (app) */

static int
wait_on(pthread_cond_t *cv, pthread_mutex_t *mu, int *waiters, iok_duration timeo,
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
 * plain request (req/surveyor used like nng) also drops replies still
 * queued from the previous one, in the same critical section: done later,
 * it could drop the new request's own fast reply. */
static int
enqueue_send_ex(ik_sock *s, iok_msg *m, int flags, bool plain_request);

static int
enqueue_send(ik_sock *s, iok_msg *m, int flags)
{
	return enqueue_send_ex(s, m, flags, false);
}

static int
enqueue_send_ex(ik_sock *s, iok_msg *m, int flags, bool plain_request)
{
	struct timespec deadline;
	bool            post;
	pthread_mutex_lock(&s->mu);
	if (s->send_timeo > 0) {
		deadline_after(&deadline, s->send_timeo);
	}
	while (!s->closed && s->sq.len >= (size_t) s->sq_cap) {
		if ((flags & IOK_FLAG_NONBLOCK) || s->send_timeo == 0) {
			pthread_mutex_unlock(&s->mu);
			return IOK_EAGAIN;
		}
		if (wait_on(&s->send_cv, &s->mu, &s->send_waiters, s->send_timeo, &deadline) != 0 &&
		    s->sq.len >= (size_t) s->sq_cap && !s->closed) {
			pthread_mutex_unlock(&s->mu);
			return IOK_ETIMEDOUT;
		}
	}
	if (s->closed) {
		pthread_mutex_unlock(&s->mu);
		return IOK_ECLOSED;
	}
	if (plain_request) {
		if (!s->token_mode && s->rq.len > 0) {
			ik_msgq_clear(&s->rq);
			efd_clear(s->recv_fd);
		}
		s->plain_pending = true;
		s->plain_used    = true;
	}
	post = s->sq.len == 0;
	ik_msgq_push(&s->sq, m);
	if (s->sq.len == (size_t) s->sq_cap) {
		efd_clear(s->send_fd);
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
	if (!(s->pat->flags & IK_PF_SEND)) {
		return IOK_ENOTSUP;
	}
	if ((s->pat->flags & IK_PF_REQUEST) && !s->raw) {
		/* A plain request (nng style): it replaces the previous one,
		 * whose replies still queued are stale. */
		return enqueue_send_ex(s, m, flags, true);
	}
	if ((s->pat->flags & IK_PF_REPLY) && !s->raw && !(m->flags & IK_MSG_REPLY)) {
		/* rep/respondent: a plain send answers the last request. */
		int rv;
		pthread_mutex_lock(&s->mu);
		uint64_t tok = s->last_req_token;
		s->last_req_token = 0;
		pthread_mutex_unlock(&s->mu);
		if (tok == 0) {
			return IOK_ESTATE;
		}
		m->token = tok;
		m->flags |= IK_MSG_REPLY;
		if ((rv = enqueue_send(s, m, flags)) != 0) {
			m->flags &= ~(uint32_t) IK_MSG_REPLY;
			pthread_mutex_lock(&s->mu);
			if (s->last_req_token == 0) {
				s->last_req_token = tok; /* let the caller retry */
			}
			pthread_mutex_unlock(&s->mu);
		}
		return rv;
	}
	return enqueue_send(s, m, flags);
}

int
iok_sendmsg(iok_socket h, iok_msg *m, int flags)
{
	ik_sock *s;
	int      rv;
	if (m == NULL) {
		return IOK_EINVAL;
	}
	if ((rv = ik_sock_hold(h, &s)) != 0) {
		return rv;
	}
	m->flags &= ~(uint32_t) (IK_MSG_REQUEST | IK_MSG_REPLY);
	rv = sock_sendmsg(s, m, flags);
	ik_sock_rele(s);
	return rv;
}

int
iok_send(iok_socket h, const void *data, size_t size, int flags)
{
	ik_sock *s;
	iok_msg *m;
	int      rv;
	if (data == NULL && size > 0) {
		return IOK_EINVAL;
	}
	if ((rv = ik_sock_hold(h, &s)) != 0) {
		return rv;
	}
	if ((m = ik_msg_alloc(size)) == NULL) {
		ik_sock_rele(s);
		return IOK_ENOMEM;
	}
	if (size > 0) {
		memcpy(m->body, data, size);
	}
	if ((rv = sock_sendmsg(s, m, flags)) != 0) {
		iok_msg_free(m);
	}
	ik_sock_rele(s);
	return rv;
}

int
iok_request(iok_socket h, iok_msg *m, int flags, uint64_t *token)
{
	ik_sock *s;
	int      rv;
	if (m == NULL) {
		return IOK_EINVAL;
	}
	if ((rv = ik_sock_hold(h, &s)) != 0) {
		return rv;
	}
	if (!(s->pat->flags & IK_PF_REQUEST) || s->raw) {
		ik_sock_rele(s);
		return IOK_ENOTSUP;
	}
	pthread_mutex_lock(&s->mu);
	uint64_t tok = ++s->next_token;
	if (tok == 0) {
		tok = ++s->next_token;
	}
	s->token_mode = true;
	pthread_mutex_unlock(&s->mu);
	m->token = tok;
	m->flags = (m->flags & ~(uint32_t) (IK_MSG_REPLY | IK_MSG_IDEMPOTENT)) | IK_MSG_REQUEST;
	if (flags & IOK_FLAG_IDEMPOTENT) {
		m->flags |= IK_MSG_IDEMPOTENT;
	}
	if ((rv = enqueue_send(s, m, flags)) == 0 && token != NULL) {
		*token = tok;
	}
	ik_sock_rele(s);
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
	if ((rv = ik_sock_hold(h, &s)) != 0) {
		return rv;
	}
	if (!(s->pat->flags & IK_PF_REPLY) || s->raw) {
		ik_sock_rele(s);
		return IOK_ENOTSUP;
	}
	m->token = token;
	m->flags = (m->flags & ~(uint32_t) IK_MSG_REQUEST) | IK_MSG_REPLY;
	rv       = enqueue_send(s, m, flags);
	ik_sock_rele(s);
	return rv;
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
	struct cancel_cmd cc = {.s = s, .token = token};
	rv = ik_cmd_call(&cc.cmd, cancel_k);
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
	if (!(s->pat->flags & IK_PF_NOSP)) {
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

int
iok_session_close(iok_socket h, uint32_t session)
{
	/* The pattern releases the pin once the session's queued requests
	 * have gone; the option carries the id to it in order with them. */
	return iok_socket_set_uint64(h, "db:session-close", session);
}

/* ---------------------------------------------------- receiving (app) */

static int
sock_recvmsg(ik_sock *s, iok_msg **mp, int flags)
{
	struct timespec deadline;
	bool            post = false;
	iok_msg        *m;

	if (!(s->pat->flags & IK_PF_RECV)) {
		return IOK_ENOTSUP;
	}
	pthread_mutex_lock(&s->mu);
	if (s->recv_timeo > 0) {
		deadline_after(&deadline, s->recv_timeo);
	}
	for (;;) {
		if (s->closed) {
			pthread_mutex_unlock(&s->mu);
			return IOK_ECLOSED;
		}
		if (s->rq.len > 0) {
			break;
		}
		if ((s->pat->flags & IK_PF_REQUEST) && !s->raw && !s->token_mode && s->plain_used &&
		    !s->plain_pending) {
			/* No request outstanding: nothing can ever arrive (nng).  A
			 * socket that never sent waits instead, so a receiver thread
			 * may start before the first iok_request. */
			pthread_mutex_unlock(&s->mu);
			return IOK_ESTATE;
		}
		if ((flags & IOK_FLAG_NONBLOCK) || s->recv_timeo == 0) {
			pthread_mutex_unlock(&s->mu);
			return IOK_EAGAIN;
		}
		if (wait_on(&s->recv_cv, &s->mu, &s->recv_waiters, s->recv_timeo, &deadline) != 0 &&
		    s->rq.len == 0 && !s->closed) {
			pthread_mutex_unlock(&s->mu);
			return IOK_ETIMEDOUT;
		}
	}
	m = ik_msgq_pop(&s->rq);
	if (s->rq.len == 0) {
		efd_clear(s->recv_fd);
	}
	if (s->recv_blocked) {
		s->recv_blocked = false;
		post            = true;
	}
	if ((s->pat->flags & IK_PF_REPLY) && !s->raw) {
		s->last_req_token = m->token;
	}
	if ((s->pat->flags & IK_PF_REQUEST) && !s->token_mode &&
	    (m->status != 0 || !(s->pat->flags & IK_PF_MULTI_REPLY))) {
		s->plain_pending = false; /* the reply, or the request's end */
	}
	pthread_mutex_unlock(&s->mu);
	if (post) {
		sock_post(s, &s->space_cmd);
	}
	*mp = m;
	return 0;
}

int
iok_recvmsg(iok_socket h, iok_msg **mp, int flags)
{
	ik_sock *s;
	int      rv;
	if (mp == NULL) {
		return IOK_EINVAL;
	}
	if ((rv = ik_sock_hold(h, &s)) != 0) {
		return rv;
	}
	rv = sock_recvmsg(s, mp, flags);
	ik_sock_rele(s);
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
	if ((rv = ik_sock_hold(h, &s)) != 0) {
		return rv;
	}
	rv = sock_recvmsg(s, &m, flags);
	ik_sock_rele(s);
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

static void
send_cmd_fn(ik_cmd *c)
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

static void
pump_task_fn(ik_task *t)
{
	ik_sock_pump(ik_container_of(t, ik_sock, pump_task));
}

void
ik_sock_pump(ik_sock *s)
{
	iok_msg *batch[PUMP_BATCH];
	size_t   n, taken, done = 0;
	bool     busy = false;

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
		/* Only this thread pops, so the peeked messages stay put. */
		for (taken = 0; taken < n; taken++) {
			iok_msg *m   = batch[taken];
			size_t   len = m->len;
			if (s->tearing) {
				/* Teardown: what could not be flushed is dropped. */
				iok_msg_free(m);
				s->stats[IK_STAT_TX_DROPPED]++;
				continue;
			}
			if (s->pat->send(s->pdata, m) == IK_BUSY) {
				busy = true;
				break;
			}
			s->stats[IK_STAT_TX_MSGS]++;
			s->stats[IK_STAT_TX_BYTES] += len;
		}
		done += taken;
		if (taken > 0) {
			bool wake = false;
			pthread_mutex_lock(&s->mu);
			bool was_full = s->sq.len >= (size_t) s->sq_cap;
			for (size_t i = 0; i < taken; i++) {
				(void) ik_msgq_pop(&s->sq);
			}
			if (was_full && s->sq.len < (size_t) s->sq_cap) {
				if (!s->closed) {
					efd_raise(s->send_fd);
				}
				wake = s->send_waiters > 0;
			}
			pthread_mutex_unlock(&s->mu);
			if (wake) {
				pthread_cond_broadcast(&s->send_cv);
			}
		}
		/* Senders that found the queue non-empty did not wake us:
		 * loop until it is empty or the pattern pushes back. */
		if (busy) {
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

static void
flush_task_fn(ik_task *t)
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
		ik_msgq_push(&s->rq, m);
	}
	s->rq_known = s->rq.len;
	if (was_empty && n > 0) {
		if (!s->closed) {
			efd_raise(s->recv_fd);
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
	if (s->staged.len + s->rq_known < (size_t) s->rq_cap) {
		return false;
	}
	pthread_mutex_lock(&s->mu);
	s->rq_known = s->rq.len;
	bool full   = s->staged.len + s->rq_known >= (size_t) s->rq_cap;
	if (full) {
		s->recv_blocked = true; /* the next receive tells us */
	}
	pthread_mutex_unlock(&s->mu);
	return full;
}

static int
device_forward(ik_sock *to, iok_msg *m)
{
	if (to->closing) {
		iok_msg_free(m);
		return IK_OK;
	}
	if (to->send_busy) {
		return IK_BUSY; /* keep order: wait for to's pump */
	}
	if (to->pat->send(to->pdata, m) == IK_BUSY) {
		to->send_busy = true;
		return IK_BUSY;
	}
	to->stats[IK_STAT_TX_MSGS]++;
	return IK_OK;
}

int
ik_sock_deliver(ik_sock *s, iok_msg *m)
{
	if (s->dev_peer != NULL) {
		s->stats[IK_STAT_RX_MSGS]++;
		return device_forward(s->dev_peer, m);
	}
	if (s->closing) {
		iok_msg_free(m);
		return IK_OK;
	}
	if (rq_full(s)) {
		return IK_BUSY;
	}
	ik_msgq_push(&s->staged, m);
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
			s->rq_known = s->rq.len;
		}
		pthread_mutex_unlock(&s->mu);
		if (old == NULL) {
			old = ik_msgq_pop(&s->staged);
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

static void
resume_paused(ik_sock *s)
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

static void
space_cmd_fn(ik_cmd *c)
{
	ik_sock *s = ik_container_of(c, ik_sock, space_cmd);
	if (!s->finished) {
		pthread_mutex_lock(&s->mu);
		s->rq_known = s->rq.len;
		pthread_mutex_unlock(&s->mu);
		resume_paused(s);
		if (s->pat->recv_ready != NULL && !s->closing) {
			s->pat->recv_ready(s->pdata);
		}
	}
	ik_sock_rele(s);
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

/* -------------------------------------------------------------- devices */

struct device_cmd {
	ik_cmd   cmd;
	ik_sock *a, *b;
};

static void
device_k(ik_cmd *c)
{
	struct device_cmd *dc = (struct device_cmd *) c;
	ik_sock           *a = dc->a, *b = dc->b;
	if (a->closing || (b != NULL && b->closing)) {
		ik_cmd_done(c, IOK_ECLOSED);
		return;
	}
	if (a->dev_peer != NULL || (b != NULL && b->dev_peer != NULL)) {
		ik_cmd_done(c, IOK_EBUSY);
		return;
	}
	if (b == NULL || b == a) {
		/* Reflector: what arrives on a goes back out of a. */
		a->dev_peer = a;
		a->dev_src  = a;
	} else {
		a->dev_peer = b;
		b->dev_src  = a;
		b->dev_peer = a;
		a->dev_src  = b;
	}
	/* Whatever the application had not yet received stays queued; new
	 * messages flow through.  Paused pipes start moving again. */
	resume_paused(a);
	if (b != NULL && b != a) {
		resume_paused(b);
	}
	ik_cmd_done(c, 0);
}

int
iok_device(iok_socket ha, iok_socket hb)
{
	ik_sock *a, *b = NULL;
	int      rv;
	if ((rv = ik_sock_hold(ha, &a)) != 0) {
		return rv;
	}
	if (hb.id != 0 && (rv = ik_sock_hold(hb, &b)) != 0) {
		ik_sock_rele(a);
		return rv;
	}
	if (!a->raw || (b != NULL && !b->raw)) {
		rv = IOK_EINVAL;
	} else if (b != NULL && b != a && (a->pat->proto != b->pat->peer || a->pat->peer != b->pat->proto)) {
		rv = IOK_EINVAL;
	} else if ((b == NULL || b == a) && a->pat->proto != a->pat->peer) {
		rv = IOK_EINVAL;
	} else {
		struct device_cmd dc = {.a = a, .b = b};
		rv = ik_cmd_call(&dc.cmd, device_k);
	}
	if (b != NULL) {
		ik_sock_rele(b);
	}
	ik_sock_rele(a);
	return rv;
}

/* -------------------------------------------------------------- options */

struct opt_cmd {
	ik_cmd      cmd;
	ik_sock    *s;
	const char *name;
	const void *in;
	void       *out;
	size_t      sz;
	size_t     *outsz;
	int         type;
};

static const char *const stat_names[IK_STAT_COUNT] = {
	[IK_STAT_RX_MSGS]      = "stat:rx-msgs",
	[IK_STAT_TX_MSGS]      = "stat:tx-msgs",
	[IK_STAT_RX_BYTES]     = "stat:rx-bytes",
	[IK_STAT_TX_BYTES]     = "stat:tx-bytes",
	[IK_STAT_PIPES]        = "stat:pipes",
	[IK_STAT_PIPES_OPENED] = "stat:pipes-opened",
	[IK_STAT_RECONNECTS]   = "stat:reconnects",
	[IK_STAT_RX_OVERSIZE]  = "stat:rx-oversize",
	[IK_STAT_PROTO_ERRORS] = "stat:proto-errors",
	[IK_STAT_RX_MALFORMED] = "stat:rx-malformed",
	[IK_STAT_RX_DROPPED]   = "stat:rx-dropped",
	[IK_STAT_TX_DROPPED]   = "stat:tx-dropped",
};

int ik_topts_set(ik_tran_opts *o, const char *name, const void *v, size_t sz, int type);
int ik_topts_get(const ik_tran_opts *o, const char *name, void *v, size_t *sz, int type);
int ik_put_string(const char *str, void *v, size_t *sz, int type);

static int
set_qlen(ik_sock *s, bool recv, int n)
{
	int rv;
	pthread_mutex_lock(&s->mu);
	if (recv) {
		if ((rv = ik_msgq_reserve(&s->rq, (size_t) n)) == 0 &&
		    (rv = ik_msgq_reserve(&s->staged, (size_t) n)) == 0) {
			s->rq_cap = n;
		}
	} else {
		bool was_full = s->sq.len >= (size_t) s->sq_cap;
		if ((rv = ik_msgq_reserve(&s->sq, (size_t) n)) == 0) {
			s->sq_cap = n;
			bool full = s->sq.len >= (size_t) s->sq_cap;
			if (was_full && !full && !s->closed) {
				efd_raise(s->send_fd);
				pthread_cond_broadcast(&s->send_cv);
			} else if (!was_full && full && !s->closed) {
				efd_clear(s->send_fd);
			}
		}
	}
	pthread_mutex_unlock(&s->mu);
	if (rv == 0 && recv) {
		resume_paused(s);
		if (s->pat->recv_ready != NULL) {
			s->pat->recv_ready(s->pdata);
		}
	}
	return rv;
}

static void
setopt_k(ik_cmd *c)
{
	struct opt_cmd *oc = (struct opt_cmd *) c;
	ik_sock        *s  = oc->s;
	const char     *n  = oc->name;
	int             rv, v;
	iok_duration    ms;

	if (strcmp(n, IOK_OPT_RECVBUF) == 0 || strcmp(n, IOK_OPT_SENDBUF) == 0) {
		if ((rv = ik_opt_get_int(oc->in, oc->sz, oc->type, 1, MAX_QLEN, &v)) == 0) {
			rv = set_qlen(s, strcmp(n, IOK_OPT_RECVBUF) == 0, v);
		}
	} else if (strcmp(n, IOK_OPT_LINGER) == 0) {
		if ((rv = ik_opt_get_ms(oc->in, oc->sz, oc->type, &ms)) == 0) {
			s->linger = ms < 0 ? INT32_MAX : ms;
		}
	} else if (strcmp(n, IOK_OPT_MAXTTL) == 0) {
		if ((rv = ik_opt_get_int(oc->in, oc->sz, oc->type, 1, 15, &v)) == 0) {
			s->max_ttl = v;
		}
	} else if (strcmp(n, IOK_OPT_SOCKNAME) == 0) {
		if (oc->type != IK_OPT_STRING) {
			rv = IOK_EBADTYPE;
		} else if (oc->sz == 0 || oc->sz > sizeof(s->name)) {
			rv = IOK_EINVAL;
		} else {
			memcpy(s->name, oc->in, oc->sz);
			s->name[oc->sz - 1] = '\0';
			rv = 0;
		}
	} else if (strcmp(n, IOK_OPT_RAW) == 0 || strcmp(n, IOK_OPT_PROTO) == 0 ||
	    strcmp(n, IOK_OPT_PEER) == 0 || strcmp(n, IOK_OPT_PROTONAME) == 0 ||
	    strcmp(n, IOK_OPT_PEERNAME) == 0 || strncmp(n, "stat:", 5) == 0 ||
	    strcmp(n, IOK_OPT_LAST_ERROR) == 0) {
		rv = IOK_EREADONLY;
	} else if ((rv = ik_topts_set(&s->topts, n, oc->in, oc->sz, oc->type)) == IOK_ENOTSUP) {
		rv = s->pat->setopt ? s->pat->setopt(s->pdata, n, oc->in, oc->sz, oc->type) : IOK_ENOTSUP;
		if (rv == 0) {
			/* e.g. a new subscription or resend time: the pattern may
			 * take queued messages now. */
			ik_sock_pump(s);
		}
	}
	ik_cmd_done(c, rv);
}

static void
getopt_k(ik_cmd *c)
{
	struct opt_cmd *oc = (struct opt_cmd *) c;
	ik_sock        *s  = oc->s;
	const char     *n  = oc->name;
	int             rv;

	if (strcmp(n, IOK_OPT_RECVBUF) == 0) {
		rv = ik_opt_put_int(s->rq_cap, oc->out, oc->outsz, oc->type);
	} else if (strcmp(n, IOK_OPT_SENDBUF) == 0) {
		rv = ik_opt_put_int(s->sq_cap, oc->out, oc->outsz, oc->type);
	} else if (strcmp(n, IOK_OPT_LINGER) == 0) {
		rv = ik_opt_put_ms(s->linger, oc->out, oc->outsz, oc->type);
	} else if (strcmp(n, IOK_OPT_MAXTTL) == 0) {
		rv = ik_opt_put_int(s->max_ttl, oc->out, oc->outsz, oc->type);
	} else if (strcmp(n, IOK_OPT_SOCKNAME) == 0) {
		rv = ik_put_string(s->name, oc->out, oc->outsz, oc->type);
	} else if (strcmp(n, IOK_OPT_LAST_ERROR) == 0) {
		rv = ik_put_string(s->last_error, oc->out, oc->outsz, oc->type);
	} else if (strcmp(n, IOK_OPT_RAW) == 0) {
		rv = ik_opt_put_bool(s->raw, oc->out, oc->outsz, oc->type);
	} else if (strcmp(n, IOK_OPT_PROTO) == 0) {
		rv = ik_opt_put_int(s->pat->proto, oc->out, oc->outsz, oc->type);
	} else if (strcmp(n, IOK_OPT_PEER) == 0) {
		rv = ik_opt_put_int(s->pat->peer, oc->out, oc->outsz, oc->type);
	} else if (strcmp(n, IOK_OPT_PROTONAME) == 0) {
		rv = ik_put_string(s->pat->name, oc->out, oc->outsz, oc->type);
	} else if (strcmp(n, IOK_OPT_PEERNAME) == 0) {
		rv = ik_put_string(s->pat->peer_name, oc->out, oc->outsz, oc->type);
	} else if (strncmp(n, "stat:", 5) == 0) {
		rv = IOK_ENOTSUP;
		for (int i = 0; i < IK_STAT_COUNT; i++) {
			if (strcmp(n, stat_names[i]) == 0) {
				rv = ik_opt_put_uint64(s->stats[i], oc->out, oc->outsz, oc->type);
				break;
			}
		}
	} else if ((rv = ik_topts_get(&s->topts, n, oc->out, oc->outsz, oc->type)) == IOK_ENOTSUP) {
		rv = s->pat->getopt ? s->pat->getopt(s->pdata, n, oc->out, oc->outsz, oc->type) : IOK_ENOTSUP;
	}
	ik_cmd_done(c, rv);
}

static int
sock_setopt(iok_socket h, const char *name, const void *v, size_t sz, int type)
{
	ik_sock     *s;
	int          rv;
	iok_duration ms;
	if (name == NULL) {
		return IOK_EINVAL;
	}
	if ((rv = ik_sock_hold(h, &s)) != 0) {
		return rv;
	}
	if (strcmp(name, IOK_OPT_RECVTIMEO) == 0 || strcmp(name, IOK_OPT_SENDTIMEO) == 0) {
		if ((rv = ik_opt_get_ms(v, sz, type, &ms)) == 0) {
			pthread_mutex_lock(&s->mu);
			*(name[0] == 'r' ? &s->recv_timeo : &s->send_timeo) = ms;
			pthread_mutex_unlock(&s->mu);
		}
	} else if (strcmp(name, IOK_OPT_RECVFD) == 0 || strcmp(name, IOK_OPT_SENDFD) == 0) {
		rv = IOK_EREADONLY;
	} else {
		struct opt_cmd oc = {.s = s, .name = name, .in = v, .sz = sz, .type = type};
		rv                = ik_cmd_call(&oc.cmd, setopt_k);
	}
	ik_sock_rele(s);
	return rv;
}

/* Make both descriptors, each in the state the queues are in now. */
static int
ensure_fds(ik_sock *s)
{
	int rv = 0;
	pthread_mutex_lock(&s->mu);
	if (s->recv_fd < 0) {
		s->recv_fd = eventfd(s->rq.len > 0 || s->closed ? 1 : 0, EFD_NONBLOCK | EFD_CLOEXEC);
	}
	if (s->send_fd < 0) {
		s->send_fd = eventfd(s->sq.len < (size_t) s->sq_cap || s->closed ? 1 : 0, EFD_NONBLOCK | EFD_CLOEXEC);
	}
	if (s->recv_fd < 0 || s->send_fd < 0) {
		rv = IOK_ENOFILES;
	}
	pthread_mutex_unlock(&s->mu);
	return rv;
}

static int
sock_getopt(iok_socket h, const char *name, void *v, size_t *sz, int type)
{
	ik_sock *s;
	int      rv;
	if (name == NULL) {
		return IOK_EINVAL;
	}
	if ((rv = ik_sock_hold(h, &s)) != 0) {
		return rv;
	}
	if (strcmp(name, IOK_OPT_RECVTIMEO) == 0 || strcmp(name, IOK_OPT_SENDTIMEO) == 0) {
		pthread_mutex_lock(&s->mu);
		iok_duration ms = name[0] == 'r' ? s->recv_timeo : s->send_timeo;
		pthread_mutex_unlock(&s->mu);
		rv = ik_opt_put_ms(ms, v, sz, type);
	} else if (strcmp(name, IOK_OPT_RECVFD) == 0) {
		if (!(s->pat->flags & IK_PF_RECV)) {
			rv = IOK_ENOTSUP;
		} else if ((rv = ensure_fds(s)) == 0) {
			rv = ik_opt_put_int(s->recv_fd, v, sz, type);
		}
	} else if (strcmp(name, IOK_OPT_SENDFD) == 0) {
		if (!(s->pat->flags & IK_PF_SEND)) {
			rv = IOK_ENOTSUP;
		} else if ((rv = ensure_fds(s)) == 0) {
			rv = ik_opt_put_int(s->send_fd, v, sz, type);
		}
	} else {
		struct opt_cmd oc = {.s = s, .name = name, .out = v, .outsz = sz, .type = type};
		rv                = ik_cmd_call(&oc.cmd, getopt_k);
	}
	ik_sock_rele(s);
	return rv;
}

int
iok_socket_set(iok_socket s, const char *name, const void *val, size_t size)
{
	return sock_setopt(s, name, val, size, IK_OPT_BYTES);
}
int
iok_socket_set_bool(iok_socket s, const char *name, int val)
{
	return sock_setopt(s, name, &val, sizeof(val), IK_OPT_BOOL);
}
int
iok_socket_set_int(iok_socket s, const char *name, int val)
{
	return sock_setopt(s, name, &val, sizeof(val), IK_OPT_INT);
}
int
iok_socket_set_ms(iok_socket s, const char *name, iok_duration val)
{
	return sock_setopt(s, name, &val, sizeof(val), IK_OPT_MS);
}
int
iok_socket_set_size(iok_socket s, const char *name, size_t val)
{
	return sock_setopt(s, name, &val, sizeof(val), IK_OPT_SIZE);
}
int
iok_socket_set_uint64(iok_socket s, const char *name, uint64_t val)
{
	return sock_setopt(s, name, &val, sizeof(val), IK_OPT_UINT64);
}
int
iok_socket_set_string(iok_socket s, const char *name, const char *val)
{
	if (val == NULL) {
		return IOK_EINVAL;
	}
	return sock_setopt(s, name, val, strlen(val) + 1, IK_OPT_STRING);
}
int
iok_socket_get(iok_socket s, const char *name, void *val, size_t *size)
{
	return sock_getopt(s, name, val, size, IK_OPT_BYTES);
}
int
iok_socket_get_bool(iok_socket s, const char *name, int *val)
{
	size_t sz = sizeof(*val);
	return sock_getopt(s, name, val, &sz, IK_OPT_BOOL);
}
int
iok_socket_get_int(iok_socket s, const char *name, int *val)
{
	size_t sz = sizeof(*val);
	return sock_getopt(s, name, val, &sz, IK_OPT_INT);
}
int
iok_socket_get_ms(iok_socket s, const char *name, iok_duration *val)
{
	size_t sz = sizeof(*val);
	return sock_getopt(s, name, val, &sz, IK_OPT_MS);
}
int
iok_socket_get_size(iok_socket s, const char *name, size_t *val)
{
	size_t sz = sizeof(*val);
	return sock_getopt(s, name, val, &sz, IK_OPT_SIZE);
}
int
iok_socket_get_uint64(iok_socket s, const char *name, uint64_t *val)
{
	size_t sz = sizeof(*val);
	return sock_getopt(s, name, val, &sz, IK_OPT_UINT64);
}
int
iok_socket_get_string(iok_socket s, const char *name, char **val)
{
	char   buf[256];
	size_t sz = sizeof(buf);
	int    rv = sock_getopt(s, name, buf, &sz, IK_OPT_STRING);
	if (rv == 0) {
		buf[sizeof(buf) - 1] = '\0';
		if ((*val = strdup(buf)) == NULL) {
			rv = IOK_ENOMEM;
		}
	}
	return rv;
}

/* ----------------------------------------------------------------- fork */

void
ik_sockets_fork_prepare(void)
{
	ik_node *n;
	ik_table_lock();
	for (n = ik_list_first(&all_socks); n != NULL; n = ik_list_next(&all_socks, n)) {
		pthread_mutex_lock(&ik_container_of(n, ik_sock, knode)->mu);
	}
}

void
ik_sockets_fork_parent(void)
{
	ik_node *n;
	for (n = ik_list_first(&all_socks); n != NULL; n = ik_list_next(&all_socks, n)) {
		pthread_mutex_unlock(&ik_container_of(n, ik_sock, knode)->mu);
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
		pthread_mutex_init(&s->mu, NULL);
		cond_init_mono(&s->recv_cv);
		cond_init_mono(&s->send_cv);
		/* Queued messages are the parent's: never delivered or sent
		 * twice. */
		ik_msgq_clear(&s->rq);
		ik_msgq_clear(&s->sq);
		ik_msgq_clear(&s->staged);
		s->rq_known       = 0;
		s->recv_waiters   = 0;
		s->send_waiters   = 0;
		s->recv_blocked   = false;
		s->last_req_token = 0;
		s->plain_pending  = false;
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
