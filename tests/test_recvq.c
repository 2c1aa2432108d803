/*
 * test_recvq.c - the receive queue as application threads see it: a
 * receive takes a batch under one lock and keeps the rest for the next
 * receives, yet every thread still sees messages in order, none is lost
 * or twice delivered, and the readable descriptor stays exact; and the
 * per-thread handle cache of the send/receive calls never outlives a
 * close.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sock.h" /* to hold a receiver back at the right moment */
#include "testutil.h"

#define T_MS 10000 /* generous bound for anything that should happen */
#define NRECV 3

static char url_buf[256];

static const char *
inproc_url(void)
{
	static int n;
	snprintf(url_buf, sizeof(url_buf), "inproc://rq%d", n++);
	return url_buf;
}

static const char *
tcp_url(void)
{
	snprintf(url_buf, sizeof(url_buf), "tcp://127.0.0.1:%d", tu_free_port());
	return url_buf;
}

/* a dials b, which listens on url; both with the test's timeouts. */
static void
open_two(iok_socket *a, const char *pa, iok_socket *b, const char *pb, const char *url)
{
	char u[256];
	snprintf(u, sizeof(u), "%s", url);
	IOK_OK(iok_socket_open(a, pa));
	IOK_OK(iok_socket_open(b, pb));
	for (int i = 0; i < 2; i++) {
		iok_socket s = i ? *b : *a;
		IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECVTIMEO, T_MS));
		IOK_OK(iok_socket_set_ms(s, IOK_OPT_SENDTIMEO, T_MS));
	}
	IOK_OK(iok_listen(*b, u, NULL, 0));
	IOK_OK(iok_dial(*a, u, NULL, 0));
}

static void
open_pair(iok_socket *push, iok_socket *pull, const char *url)
{
	open_two(push, "push0", pull, "pull0", url);
}

static int
readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, 0) == 1;
}

/* ------------------------------------------- order across receivers */

/* End markers taken (a batch may hold more than one) and receivers done:
 * the sender adds markers until every receiver has had one. */
static atomic_int markers_taken, receivers_done;

struct receiver {
	iok_socket s;
	int        style; /* 0 iok_recv, 1 iok_recvmsg, 2 iok_recvmsg_many */
	uint32_t  *got;   /* sequence numbers, in the order received */
	size_t     n;
	int        err;
	char       why[128];
};

/* One message's sequence number, or UINT32_MAX for the end marker. */
static uint32_t
seq_of(const void *body, size_t len)
{
	uint32_t v;
	if (len != sizeof(v)) {
		return UINT32_MAX - 1; /* malformed: the test fails on it */
	}
	memcpy(&v, body, sizeof(v));
	return v;
}

static int
take(struct receiver *r, uint32_t v)
{
	if (v == UINT32_MAX) {
		atomic_fetch_add(&markers_taken, 1);
		return 1;
	}
	if (r->n > 0 && v <= r->got[r->n - 1]) {
		snprintf(r->why, sizeof(r->why), "%u after %u", v, r->got[r->n - 1]);
		r->err = -1;
		return 1;
	}
	r->got[r->n++] = v;
	return 0;
}

static void *
receive_all(void *arg)
{
	struct receiver *r = arg;
	for (;;) {
		if (r->style == 0) {
			uint32_t v;
			size_t   len = sizeof(v);
			if ((r->err = iok_recv(r->s, &v, &len, 0)) != 0 ||
			    take(r, seq_of(&v, len))) {
				break;
			}
		} else if (r->style == 1) {
			iok_msg *m;
			if ((r->err = iok_recvmsg(r->s, &m, 0)) != 0) {
				break;
			}
			int end = take(r, seq_of(iok_msg_body(m), iok_msg_len(m)));
			iok_msg_free(m);
			if (end) {
				break;
			}
		} else {
			iok_msg *mv[7];
			size_t   k, end = 0;
			if ((r->err = iok_recvmsg_many(r->s, mv, 7, &k, 0)) != 0) {
				break;
			}
			for (size_t i = 0; i < k; i++) {
				uint32_t v = seq_of(iok_msg_body(mv[i]), iok_msg_len(mv[i]));
				/* Past the first end marker only markers come. */
				if (end && v != UINT32_MAX) {
					snprintf(r->why, sizeof(r->why), "%u after the end", v);
					r->err = -1;
				} else if (end) {
					atomic_fetch_add(&markers_taken, 1);
				} else {
					end = take(r, v);
				}
				iok_msg_free(mv[i]);
			}
			if (end || r->err != 0) {
				break;
			}
		}
	}
	atomic_fetch_add(&receivers_done, 1);
	return NULL;
}

static int
marker_taken(void *arg)
{
	/* Or all done: the last marker's taker may not have said so yet. */
	return atomic_load(&markers_taken) >= *(int *) arg || atomic_load(&receivers_done) == NRECV;
}

/* Three threads receive from one pull, each in its own way: each sees a
 * strictly increasing sequence and together they see every message once.
 * A receiver that waits while another moves a batch aside must wake for
 * it (or it would time out here). */
static void
receivers_see_order(const char *url, uint32_t count)
{
	iok_socket      push, pull;
	pthread_t       th[NRECV];
	struct receiver r[NRECV];
	uint8_t        *seen = calloc(count, 1);
	assert_non_null(seen);
	atomic_store(&markers_taken, 0);
	atomic_store(&receivers_done, 0);
	open_pair(&push, &pull, url);
	for (int i = 0; i < NRECV; i++) {
		r[i] = (struct receiver) {
			.s = pull, .style = i, .got = calloc(count, sizeof(uint32_t))
		};
		assert_non_null(r[i].got);
		assert_int_equal(pthread_create(&th[i], NULL, receive_all, &r[i]), 0);
	}
	for (uint32_t v = 0; v < count; v++) {
		IOK_OK(iok_send(push, &v, sizeof(v), 0));
	}
	for (int sent = 1; atomic_load(&receivers_done) < NRECV; sent++) {
		uint32_t end = UINT32_MAX;
		IOK_OK(iok_send(push, &end, sizeof(end), 0));
		assert_true(tu_wait_for(marker_taken, &sent, T_MS));
	}
	size_t total = 0;
	for (int i = 0; i < NRECV; i++) {
		pthread_join(th[i], NULL);
		if (r[i].err != 0) {
			fail_msg(
			    "receiver %d: %s", i, r[i].err < 0 ? r[i].why : iok_strerror(r[i].err));
		}
		for (size_t k = 0; k < r[i].n; k++) {
			assert_true(r[i].got[k] < count);
			assert_int_equal(seen[r[i].got[k]], 0);
			seen[r[i].got[k]] = 1;
		}
		total += r[i].n;
		free(r[i].got);
	}
	assert_int_equal(total, count);
	free(seen);
	IOK_OK(iok_close(push));
	IOK_OK(iok_close(pull));
}

static void
test_receivers_see_order_inproc(void **state)
{
	(void) state;
	receivers_see_order(inproc_url(), 60000);
}

static void
test_receivers_see_order_tcp(void **state)
{
	(void) state;
	receivers_see_order(tcp_url(), 60000);
}

/* ------------------------------------------------- waking waiters */

struct waiter {
	iok_socket s;
	int        rv;
	char       got[8];
	atomic_int done;
};

static void *
wait_one(void *arg)
{
	struct waiter *w           = arg;
	size_t         n           = sizeof(w->got) - 1;
	w->rv                      = iok_recv(w->s, w->got, &n, 0);
	w->got[w->rv == 0 ? n : 0] = 0;
	atomic_store(&w->done, 1);
	return NULL;
}

static int
both_done(void *arg)
{
	struct waiter *w = arg;
	return atomic_load(&w[0].done) && atomic_load(&w[1].done);
}

static int
waiters_are(void *arg)
{
	void   **a = arg;
	ik_sock *s = a[0];
	return atomic_load(&s->recv_waiters) == *(int *) a[1];
}

/* Two threads wait; the first is woken for one message but held back
 * (here: by holding the lock a receive takes first) while a second
 * arrives, which the kernel does not announce (the queue was not empty).
 * When the first takes its message it must wake the second for what is
 * left, or that one sleeps beside a waiting message until its timeout. */
static void
test_second_waiter_woken(void **state)
{
	iok_socket    push, pull;
	ik_sock      *s;
	pthread_t     t[2];
	struct waiter w[2];
	int           want;
	void         *arg[2];
	(void) state;
	open_pair(&push, &pull, inproc_url());
	/* No receive timeout: a waiter left asleep would find the message
	 * when it timed out, and the test could not tell. */
	IOK_OK(iok_socket_set_ms(pull, IOK_OPT_RECVTIMEO, IOK_DURATION_INFINITE));
	IOK_OK(ik_sock_hold(pull, &s));
	arg[0] = s;
	arg[1] = &want;
	for (int i = 0; i < 2; i++) {
		w[i] = (struct waiter) { .s = pull };
		assert_int_equal(pthread_create(&t[i], NULL, wait_one, &w[i]), 0);
	}
	want = 2;
	assert_true(tu_wait_for(waiters_are, arg, T_MS));
	pthread_mutex_lock(&s->take_mu);
	IOK_OK(iok_send(push, "a", 1, 0));
	want = 1; /* one woke, and waits for take_mu */
	assert_true(tu_wait_for(waiters_are, arg, T_MS));
	IOK_OK(iok_send(push, "b", 1, 0));
	assert_true(tu_wait_stat(pull, "stat:rx-msgs", 2, T_MS));
	pthread_mutex_unlock(&s->take_mu);
	int woken = tu_wait_for(both_done, w, T_MS);
	if (!woken) {
		IOK_OK(iok_close(pull)); /* lets the sleeper go */
	}
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
	}
	assert_true(woken);
	for (int i = 0; i < 2; i++) {
		if (w[i].rv != 0) {
			fail_msg("waiter %d: %s", i, iok_strerror(w[i].rv));
		}
	}
	assert_true((w[0].got[0] == 'a' && w[1].got[0] == 'b') ||
	            (w[0].got[0] == 'b' && w[1].got[0] == 'a'));
	ik_sock_rele(s);
	IOK_OK(iok_close(push));
	IOK_OK(iok_close(pull));
}

/* ------------------------------------------- which sockets batch */

/* Requests by token (as every database socket is used): one receive takes
 * every reply waiting.  A rep's plain receive sets what its next send
 * answers: one at a time, whatever the caller asks for (its first receive
 * moves the rest aside, but each one's send answers the one handed over,
 * not the last one moved). */
static void
test_tokens_batch_plain_rep_does_not(void **state)
{
	iok_socket req, rep;
	iok_msg   *mv[16];
	size_t     n;
	(void) state;
	open_two(&req, "req0", &rep, "rep0", inproc_url());
	for (int i = 0; i < 5; i++) {
		iok_msg *m;
		IOK_OK(iok_msg_alloc(&m, 1));
		*(char *) iok_msg_body(m) = (char) ('a' + i);
		IOK_OK(iok_request(req, m, NULL, 0));
	}
	assert_true(tu_wait_stat(rep, "stat:rx-msgs", 5, T_MS));
	for (int i = 0; i < 5; i++) {
		IOK_OK(iok_recvmsg_many(rep, mv, 16, &n, 0));
		assert_int_equal(n, 1);
		assert_int_equal(*(char *) iok_msg_body(mv[0]), 'a' + i);
		IOK_OK(iok_send(rep, iok_msg_body(mv[0]), 1, 0)); /* answers that one */
		iok_msg_free(mv[0]);
	}
	assert_true(tu_wait_stat(req, "stat:rx-msgs", 5, T_MS));
	IOK_OK(iok_recvmsg_many(req, mv, 16, &n, 0));
	assert_int_equal(n, 5);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(*(char *) iok_msg_body(mv[i]), 'a' + (int) i);
		iok_msg_free(mv[i]);
	}
	IOK_OK(iok_close(req));
	IOK_OK(iok_close(rep));
}

/* A receive takes as many as asked for or all there are, even when the
 * batch moved aside holds fewer: a caller that reads the descriptor
 * itself (the Python binding does) takes a short answer to mean empty. */
static void
test_take_max_or_all(void **state)
{
	iok_socket push, pull;
	iok_msg   *mv[128];
	size_t     n;
	(void) state;
	open_pair(&push, &pull, inproc_url());
	for (int i = 0; i < 70; i++) { /* more than one batch moves aside */
		IOK_OK(iok_send(push, &i, sizeof(i), 0));
	}
	assert_true(tu_wait_stat(pull, "stat:rx-msgs", 70, T_MS));
	IOK_OK(iok_recvmsg_many(pull, mv, 1, &n, 0));
	assert_int_equal(n, 1);
	iok_msg_free(mv[0]);
	IOK_OK(iok_recvmsg_many(pull, mv, 128, &n, 0));
	assert_int_equal(n, 69);
	for (size_t i = 0; i < n; i++) {
		int v;
		memcpy(&v, iok_msg_body(mv[i]), sizeof(v));
		assert_int_equal(v, (int) i + 1);
		iok_msg_free(mv[i]);
	}
	assert_int_equal(iok_recvmsg_many(pull, mv, 128, &n, IOK_FLAG_NONBLOCK), IOK_EAGAIN);
	IOK_OK(iok_close(push));
	IOK_OK(iok_close(pull));
}

/* ------------------------------------------ the readable descriptor */

/* Readable exactly while a message waits, whether it waits in the queue
 * the kernel fills or in the batch a receive moved aside. */
static void
test_fd_follows_the_batch(void **state)
{
	iok_socket push, pull;
	int        fd;
	char       buf[8];
	size_t     n;
	(void) state;
	open_pair(&push, &pull, inproc_url());
	IOK_OK(iok_socket_get_int(pull, IOK_OPT_RECVFD, &fd));
	assert_false(readable(fd));
	for (int i = 0; i < 10; i++) {
		IOK_OK(iok_send(push, "m", 1, 0));
	}
	assert_true(tu_wait_stat(pull, "stat:rx-msgs", 10, T_MS));
	for (int i = 0; i < 9; i++) {
		n = sizeof(buf);
		IOK_OK(iok_recv(pull, buf, &n, IOK_FLAG_NONBLOCK));
		assert_true(readable(fd)); /* the rest wait, moved aside */
	}
	/* More arrive while one still waits aside: still readable, and all
	 * of them are there, the old one first. */
	IOK_OK(iok_send(push, "n", 1, 0));
	assert_true(tu_wait_stat(pull, "stat:rx-msgs", 11, T_MS));
	n = sizeof(buf);
	IOK_OK(iok_recv(pull, buf, &n, IOK_FLAG_NONBLOCK));
	assert_int_equal(buf[0], 'm');
	assert_true(readable(fd));
	n = sizeof(buf);
	IOK_OK(iok_recv(pull, buf, &n, IOK_FLAG_NONBLOCK));
	assert_int_equal(buf[0], 'n');
	assert_false(readable(fd));
	assert_int_equal(iok_recv(pull, buf, &n, IOK_FLAG_NONBLOCK), IOK_EAGAIN);
	IOK_OK(iok_close(push));
	IOK_OK(iok_close(pull));
}

/* -------------------------------------------- the handle cache */

struct user {
	pthread_mutex_t mu;
	pthread_cond_t  cv;
	iok_socket      s;
	int             step, done, rv;
};

/* A thread that receives (non-blocking) on u->s each time it is asked,
 * and reports the result: its lookups go through its own cache. */
static void *
user_thread(void *arg)
{
	struct user *u = arg;
	pthread_mutex_lock(&u->mu);
	for (;;) {
		while (u->done == u->step) {
			pthread_cond_wait(&u->cv, &u->mu);
		}
		if (u->step < 0) {
			break;
		}
		char   buf[8];
		size_t n = sizeof(buf);
		u->rv    = iok_recv(u->s, buf, &n, IOK_FLAG_NONBLOCK);
		u->done  = u->step;
		pthread_cond_broadcast(&u->cv);
	}
	pthread_mutex_unlock(&u->mu);
	return NULL;
}

static int
ask(struct user *u, iok_socket s)
{
	pthread_mutex_lock(&u->mu);
	u->s = s;
	u->step++;
	pthread_cond_broadcast(&u->cv);
	while (u->done != u->step) {
		pthread_cond_wait(&u->cv, &u->mu);
	}
	int rv = u->rv;
	pthread_mutex_unlock(&u->mu);
	return rv;
}

static int
fd_closed(void *arg)
{
	return fcntl(*(int *) arg, F_GETFD) == -1 && errno == EBADF;
}

/* A socket closed by one thread is closed for another that looked it up
 * before, and once that thread is gone the socket is freed (its
 * descriptors closed). */
static void
test_cached_handle_sees_close(void **state)
{
	iok_socket  a, b;
	pthread_t   t;
	struct user u = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
	int         fd;
	(void) state;
	IOK_OK(iok_socket_open(&a, "pull0"));
	IOK_OK(iok_socket_get_int(a, IOK_OPT_RECVFD, &fd));
	assert_int_equal(pthread_create(&t, NULL, user_thread, &u), 0);
	assert_int_equal(ask(&u, a), IOK_EAGAIN); /* now in its cache */
	IOK_OK(iok_close(a));
	assert_int_equal(ask(&u, a), IOK_ECLOSED);
	assert_int_equal(ask(&u, a), IOK_ECLOSED);
	IOK_OK(iok_socket_open(&b, "pull0"));
	assert_int_equal(ask(&u, b), IOK_EAGAIN);
	assert_int_equal(ask(&u, a), IOK_ECLOSED);
	pthread_mutex_lock(&u.mu);
	u.step = -1;
	pthread_cond_broadcast(&u.cv);
	pthread_mutex_unlock(&u.mu);
	pthread_join(t, NULL);
	assert_true(tu_wait_for(fd_closed, &fd, T_MS));
	IOK_OK(iok_close(b));
	char   buf[8];
	size_t n = sizeof(buf);
	assert_int_equal(iok_recv(b, buf, &n, IOK_FLAG_NONBLOCK), IOK_ECLOSED);
}

/* A thread that used a socket and is still alive: closing from another
 * thread still frees it once that thread next calls iok. */
static void
test_cached_handle_released_on_next_use(void **state)
{
	iok_socket  a, b;
	pthread_t   t;
	struct user u = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
	int         fd;
	(void) state;
	IOK_OK(iok_socket_open(&a, "pull0"));
	IOK_OK(iok_socket_open(&b, "pull0"));
	IOK_OK(iok_socket_get_int(a, IOK_OPT_RECVFD, &fd));
	assert_int_equal(pthread_create(&t, NULL, user_thread, &u), 0);
	assert_int_equal(ask(&u, a), IOK_EAGAIN);
	IOK_OK(iok_close(a));
	assert_int_equal(ask(&u, b), IOK_EAGAIN); /* sees the close, lets a go */
	assert_true(tu_wait_for(fd_closed, &fd, T_MS));
	pthread_mutex_lock(&u.mu);
	u.step = -1;
	pthread_cond_broadcast(&u.cv);
	pthread_mutex_unlock(&u.mu);
	pthread_join(t, NULL);
	IOK_OK(iok_close(b));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_receivers_see_order_inproc),
		cmocka_unit_test(test_receivers_see_order_tcp),
		cmocka_unit_test(test_second_waiter_woken),
		cmocka_unit_test(test_tokens_batch_plain_rep_does_not),
		cmocka_unit_test(test_take_max_or_all),
		cmocka_unit_test(test_fd_follows_the_batch),
		cmocka_unit_test(test_cached_handle_sees_close),
		cmocka_unit_test(test_cached_handle_released_on_next_use),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
