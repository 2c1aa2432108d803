/*
 * test_transports.c - pair and push/pull over inproc, ipc and tcp (v4, v6,
 * host names), dialing semantics, and the error cases: bad URLs, address
 * in use, closed handles, oversized and malformed frames from a raw peer,
 * a peer of the wrong protocol.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"
#include "bigpool.h"

#define T_MS 5000 /* generous bound for anything that should happen */

static char url_buf[256];

static const char *
tcp_url(const char *host)
{
	snprintf(url_buf, sizeof(url_buf), "tcp://%s:%d", host, tu_free_port());
	return url_buf;
}

static const char *
inproc_url(void)
{
	static int n;
	snprintf(url_buf, sizeof(url_buf), "inproc://t%d", n++);
	return url_buf;
}

static void
open2(iok_socket *a, const char *pa, iok_socket *b, const char *pb)
{
	IOK_OK(iok_socket_open(a, pa));
	IOK_OK(iok_socket_open(b, pb));
	IOK_OK(iok_socket_set_ms(*a, IOK_OPT_RECVTIMEO, T_MS));
	IOK_OK(iok_socket_set_ms(*b, IOK_OPT_RECVTIMEO, T_MS));
	IOK_OK(iok_socket_set_ms(*a, IOK_OPT_SENDTIMEO, T_MS));
	IOK_OK(iok_socket_set_ms(*b, IOK_OPT_SENDTIMEO, T_MS));
}

static void
expect_msg(iok_socket s, const char *want)
{
	char buf[256];
	int  rv = tu_recv_str(s, buf, sizeof(buf), T_MS);
	if (rv != 0) {
		fail_msg("expected '%s': %s", want, iok_strerror(rv));
	}
	assert_string_equal(buf, want);
}

/* Pair both ways, with listener and dialer in either order. */
static void
pair_exchange(const char *pattern, const char *url, int dial_first)
{
	iok_socket a, b;
	char       u[256];
	snprintf(u, sizeof(u), "%s", url);
	open2(&a, pattern, &b, pattern);
	if (dial_first) {
		IOK_OK(iok_dial(b, u, NULL, IOK_FLAG_NONBLOCK));
		IOK_OK(iok_listen(a, u, NULL, 0));
	} else {
		IOK_OK(iok_listen(a, u, NULL, 0));
		IOK_OK(iok_dial(b, u, NULL, IOK_FLAG_NONBLOCK));
	}
	for (int i = 0; i < 10; i++) {
		char m[32];
		snprintf(m, sizeof(m), "b->a %d", i);
		IOK_OK(iok_send(b, m, strlen(m), 0));
		expect_msg(a, m);
		snprintf(m, sizeof(m), "a->b %d", i);
		IOK_OK(iok_send(a, m, strlen(m), 0));
		expect_msg(b, m);
	}
	IOK_OK(iok_close(a));
	IOK_OK(iok_close(b));
}

static void
test_pair_all_transports(void **state)
{
	(void) state;
	const char *pats[] = { "pair0", "pair1" };
	for (int p = 0; p < 2; p++) {
		for (int dial_first = 0; dial_first < 2; dial_first++) {
			pair_exchange(pats[p], inproc_url(), dial_first);
			pair_exchange(pats[p], tu_ipc_url("pair"), dial_first);
			pair_exchange(pats[p], tcp_url("127.0.0.1"), dial_first);
			pair_exchange(pats[p], tcp_url("localhost"), dial_first); /* c-ares */
			pair_exchange(pats[p], tcp_url("[::1]"), dial_first);
		}
	}
}

/* push round-robins over several pulls; every message arrives exactly
 * once; a pull fair-queues several pushes. */
static void
pushpull(const char *url)
{
	iok_socket push, pull[3];
	char       u[256];
	int        seen[300] = { 0 };
	snprintf(u, sizeof(u), "%s", url);
	IOK_OK(iok_push0_open(&push));
	IOK_OK(iok_listen(push, u, NULL, 0));
	for (int i = 0; i < 3; i++) {
		IOK_OK(iok_pull0_open(&pull[i]));
		IOK_OK(iok_socket_set_ms(pull[i], IOK_OPT_RECVTIMEO, T_MS));
		IOK_OK(iok_dial(pull[i], u, NULL, 0));
	}
	assert_true(tu_wait_stat(push, "stat:pipes", 3, T_MS));
	for (int i = 0; i < 300; i++) {
		char m[16];
		snprintf(m, sizeof(m), "%d", i);
		IOK_OK(iok_send(push, m, strlen(m), 0));
	}
	/* Round-robin: each pull gets its share. */
	for (int p = 0; p < 3; p++) {
		for (int k = 0; k < 100; k++) {
			char buf[16];
			IOK_OK(tu_recv_str(pull[p], buf, sizeof(buf), T_MS));
			int n = atoi(buf);
			assert_true(n >= 0 && n < 300);
			seen[n]++;
		}
	}
	for (int i = 0; i < 300; i++) {
		assert_int_equal(seen[i], 1);
	}
	for (int p = 0; p < 3; p++) {
		IOK_OK(iok_close(pull[p]));
	}
	IOK_OK(iok_close(push));
}

static void
test_pushpull_all_transports(void **state)
{
	(void) state;
	pushpull(inproc_url());
	pushpull(tu_ipc_url("pp"));
	pushpull(tcp_url("127.0.0.1"));
}

static void
test_pull_fair_queue(void **state)
{
	iok_socket  pull, push[3];
	const char *u = tcp_url("127.0.0.1");
	char        url[256];
	int         from[3] = { 0 };
	(void) state;
	snprintf(url, sizeof(url), "%s", u);
	IOK_OK(iok_pull0_open(&pull));
	IOK_OK(iok_socket_set_ms(pull, IOK_OPT_RECVTIMEO, T_MS));
	IOK_OK(iok_listen(pull, url, NULL, 0));
	for (int i = 0; i < 3; i++) {
		IOK_OK(iok_push0_open(&push[i]));
		IOK_OK(iok_dial(push[i], url, NULL, 0));
		for (int k = 0; k < 50; k++) {
			char m[8];
			snprintf(m, sizeof(m), "%d", i);
			IOK_OK(iok_send(push[i], m, strlen(m), 0));
		}
	}
	for (int k = 0; k < 150; k++) {
		char buf[8];
		IOK_OK(tu_recv_str(pull, buf, sizeof(buf), T_MS));
		from[atoi(buf)]++;
	}
	for (int i = 0; i < 3; i++) {
		assert_int_equal(from[i], 50);
		IOK_OK(iok_close(push[i]));
	}
	IOK_OK(iok_close(pull));
}

/* A dial before its listener exists connects when the listener appears;
 * a lost connection comes back, counted as a reconnect. */
static void
test_dial_first_and_reconnect(void **state)
{
	iok_socket   a, b;
	iok_listener l;
	char         url[256];
	(void) state;
	snprintf(url, sizeof(url), "%s", tcp_url("127.0.0.1"));
	open2(&a, "pair0", &b, "pair0");
	IOK_OK(iok_socket_set_ms(b, IOK_OPT_RECONNMINT, 10));
	IOK_OK(iok_socket_set_ms(b, IOK_OPT_RECONNMAXT, 50));
	IOK_OK(iok_dial(b, url, NULL, IOK_FLAG_NONBLOCK));
	/* Queued before any peer: delivered once connected. */
	IOK_OK(iok_send(b, "early", 5, 0));
	IOK_OK(iok_listen(a, url, &l, 0));
	expect_msg(a, "early");
	/* Lose the connection: close the listener (its pipes go too). */
	IOK_OK(iok_listener_close(l));
	assert_int_equal(iok_listener_close(l), IOK_ECLOSED);
	IOK_OK(iok_listen(a, url, NULL, 0));
	assert_true(tu_wait_stat(b, "stat:reconnects", 1, T_MS));
	IOK_OK(iok_send(b, "again", 5, 0));
	expect_msg(a, "again");
	IOK_OK(iok_close(a));
	IOK_OK(iok_close(b));
}

/* Backoff: with no listener, attempts are spaced, never a hot loop. */
static void
test_backoff(void **state)
{
	iok_socket s;
	iok_dialer d;
	int        v;
	(void) state;
	IOK_OK(iok_pair0_open(&s));
	IOK_OK(iok_socket_get_ms(s, IOK_OPT_RECONNMINT, &v));
	assert_int_equal(v, 100);
	IOK_OK(iok_socket_get_ms(s, IOK_OPT_RECONNMAXT, &v));
	assert_true(v > 0); /* a default maximum exists */
	IOK_OK(iok_dialer_create(&d, s, tcp_url("127.0.0.1")));
	IOK_OK(iok_dialer_set_ms(d, IOK_OPT_RECONNMINT, 20));
	IOK_OK(iok_dialer_get_ms(d, IOK_OPT_RECONNMINT, &v));
	assert_int_equal(v, 20);
	assert_int_equal(iok_dialer_start(d, 0), IOK_ECONNREFUSED);
	IOK_OK(iok_dialer_close(d));
	/* IOK_FLAG_SYNC is still accepted, and means the default. */
	assert_int_equal(iok_dial(s, tcp_url("127.0.0.1"), NULL, IOK_FLAG_SYNC), IOK_ECONNREFUSED);
	/* NONBLOCK: nothing there yet is not an error, the dialer retries. */
	IOK_OK(iok_dial(s, tcp_url("127.0.0.1"), &d, IOK_FLAG_NONBLOCK));
	IOK_OK(iok_dialer_close(d));
	assert_int_equal(iok_dialer_close(d), IOK_ECLOSED);
	/* Synchronous dial with nothing there fails and leaves nothing. */
	assert_int_equal(iok_dial(s, tcp_url("127.0.0.1"), &d, 0), IOK_ECONNREFUSED);
	assert_int_equal(iok_dial(s, tu_ipc_url("none"), NULL, 0), IOK_ECONNREFUSED);
	assert_int_equal(iok_dial(s, "inproc://nobody", NULL, 0), IOK_ECONNREFUSED);
	IOK_OK(iok_close(s));
}

static void
test_bad_urls(void **state)
{
	iok_socket s;
	(void) state;
	IOK_OK(iok_pair1_open(&s));
	const char *bad[] = { "", "nonsense", "tcp://", "tcp://127.0.0.1", "tcp://127.0.0.1:99999",
		"tcp://[::1:5", "ipc://", "tcp://h:1/extra" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rv = iok_dial(s, bad[i], NULL, IOK_FLAG_NONBLOCK);
		if (rv != IOK_EADDRINVAL) {
			fail_msg("dial '%s': %s", bad[i], iok_strerror(rv));
		}
		rv = iok_listen(s, bad[i], NULL, 0);
		if (rv != IOK_EADDRINVAL && !(i == 3 && rv == 0)) {
			fail_msg("listen '%s': %s", bad[i], iok_strerror(rv));
		}
	}
	assert_int_equal(iok_dial(s, "udp://1.2.3.4:5", NULL, IOK_FLAG_NONBLOCK), IOK_ENOTSUP);
	assert_int_equal(iok_dial(s, "tcp://no-such-host.invalid:5", NULL, 0), IOK_EADDRINVAL);
	IOK_OK(iok_listen(s, "tcp://0.0.0.0:0", NULL, 0)); /* any address, any port */
	IOK_OK(iok_close(s));
}

static void
test_addr_in_use(void **state)
{
	iok_socket a, b;
	char       url[256], ipc[256];
	(void) state;
	snprintf(url, sizeof(url), "%s", tcp_url("127.0.0.1"));
	snprintf(ipc, sizeof(ipc), "%s", tu_ipc_url("inuse"));
	IOK_OK(iok_pair0_open(&a));
	IOK_OK(iok_pair0_open(&b));
	IOK_OK(iok_listen(a, url, NULL, 0));
	assert_int_equal(iok_listen(b, url, NULL, 0), IOK_EADDRINUSE);
	IOK_OK(iok_listen(a, ipc, NULL, 0));
	assert_int_equal(iok_listen(b, ipc, NULL, 0), IOK_EADDRINUSE);
	IOK_OK(iok_listen(a, "inproc://inuse", NULL, 0));
	assert_int_equal(iok_listen(b, "inproc://inuse", NULL, 0), IOK_EADDRINUSE);
	IOK_OK(iok_close(a));
	/* Closing frees the addresses (a stale ipc file is replaced). */
	IOK_OK(iok_listen(b, url, NULL, 0));
	IOK_OK(iok_listen(b, ipc, NULL, 0));
	IOK_OK(iok_listen(b, "inproc://inuse", NULL, 0));
	IOK_OK(iok_close(b));
}

static void
test_bound_port(void **state)
{
	iok_socket   a, b;
	iok_listener l;
	int          port;
	char         url[256], *s;
	(void) state;
	open2(&a, "pair1", &b, "pair1");
	IOK_OK(iok_listen(a, "tcp://127.0.0.1:0", &l, 0));
	IOK_OK(iok_listener_get_int(l, IOK_OPT_TCP_BOUND_PORT, &port));
	assert_true(port > 0);
	IOK_OK(iok_listener_get_string(l, IOK_OPT_URL, &s));
	assert_string_equal(s, "tcp://127.0.0.1:0");
	iok_strfree(s);
	assert_int_equal(iok_listener_set_int(l, IOK_OPT_TCP_BOUND_PORT, 5), IOK_EREADONLY);
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	IOK_OK(iok_dial(b, url, NULL, 0));
	IOK_OK(iok_send(b, "x", 1, 0));
	expect_msg(a, "x");
	IOK_OK(iok_close(a));
	IOK_OK(iok_close(b));
}

static void
test_closed_handles(void **state)
{
	iok_socket s, never = IOK_SOCKET_INITIALIZER;
	iok_msg   *m;
	char       buf[8];
	size_t     n = sizeof(buf);
	int        v;
	(void) state;
	IOK_OK(iok_pair0_open(&s));
	IOK_OK(iok_close(s));
	assert_int_equal(iok_close(s), IOK_ECLOSED);
	assert_int_equal(iok_send(s, "x", 1, 0), IOK_ECLOSED);
	assert_int_equal(iok_recv(s, buf, &n, 0), IOK_ECLOSED);
	assert_int_equal(iok_dial(s, "inproc://x", NULL, IOK_FLAG_NONBLOCK), IOK_ECLOSED);
	assert_int_equal(iok_listen(s, "inproc://x", NULL, 0), IOK_ECLOSED);
	assert_int_equal(iok_socket_get_int(s, IOK_OPT_RECVBUF, &v), IOK_ECLOSED);
	assert_int_equal(iok_send(never, "x", 1, 0), IOK_ECLOSED);
	assert_int_equal(iok_close(never), IOK_ECLOSED);
	assert_int_equal(iok_socket_id(never), -1);
	IOK_OK(iok_msg_alloc(&m, 1));
	assert_int_equal(iok_sendmsg(s, m, 0), IOK_ECLOSED);
	iok_msg_free(m); /* still ours after a failed send */
	iok_dialer   d = { 12345678 };
	iok_listener l = { 12345678 };
	assert_int_equal(iok_dialer_close(d), IOK_ECLOSED);
	assert_int_equal(iok_listener_close(l), IOK_ECLOSED);
	assert_int_equal(iok_socket_open(&s, "no-such-pattern"), IOK_ENOTSUP);
	assert_int_equal(iok_socket_open_raw(&s, "no-such-pattern"), IOK_ENOTSUP);
}

static void
test_options(void **state)
{
	iok_socket s;
	int        v;
	bool       b;
	size_t     sz;
	char      *str;
	(void) state;
	IOK_OK(iok_pull0_open(&s));
	IOK_OK(iok_socket_get_size(s, IOK_OPT_RECVMAXSZ, &sz));
	assert_int_equal(sz, 1024 * 1024);
	IOK_OK(iok_socket_set_size(s, IOK_OPT_RECVMAXSZ, 4096));
	IOK_OK(iok_socket_get_size(s, IOK_OPT_RECVMAXSZ, &sz));
	assert_int_equal(sz, 4096);
	IOK_OK(iok_socket_set_int(s, IOK_OPT_RECVBUF, 7));
	IOK_OK(iok_socket_get_int(s, IOK_OPT_RECVBUF, &v));
	assert_int_equal(v, 7);
	/* nng's range: 0 (as unbuffered as iok gets: one message) upwards. */
	IOK_OK(iok_socket_set_int(s, IOK_OPT_RECVBUF, 0));
	IOK_OK(iok_socket_get_int(s, IOK_OPT_RECVBUF, &v));
	assert_int_equal(v, 1);
	IOK_OK(iok_socket_set_int(s, IOK_OPT_RECVBUF, 8192));
	assert_int_equal(iok_socket_set_int(s, IOK_OPT_RECVBUF, -1), IOK_EINVAL);
	assert_int_equal(iok_socket_set_int(s, IOK_OPT_RECVBUF, 65537), IOK_EINVAL);
	IOK_OK(iok_socket_set_bool(s, IOK_OPT_TCP_NODELAY, 0));
	IOK_OK(iok_socket_get_bool(s, IOK_OPT_TCP_NODELAY, &b));
	assert_int_equal(b, 0);
	IOK_OK(iok_socket_get_int(s, IOK_OPT_PROTO, &v));
	assert_int_equal(v, 0x51);
	IOK_OK(iok_socket_get_int(s, IOK_OPT_PEER, &v));
	assert_int_equal(v, 0x50);
	IOK_OK(iok_socket_get_string(s, IOK_OPT_PROTONAME, &str));
	assert_string_equal(str, "pull0");
	iok_strfree(str);
	IOK_OK(iok_socket_set_string(s, IOK_OPT_SOCKNAME, "mine"));
	IOK_OK(iok_socket_get_string(s, IOK_OPT_SOCKNAME, &str));
	assert_string_equal(str, "mine");
	iok_strfree(str);
	assert_int_equal(iok_socket_set_int(s, IOK_OPT_PROTO, 1), IOK_EREADONLY);
	assert_int_equal(iok_socket_set_string(s, IOK_OPT_RECVBUF, "x"), IOK_EBADTYPE);
	assert_int_equal(iok_socket_set_int(s, "no-such-option", 1), IOK_ENOTSUP);
	assert_int_equal(
	    iok_socket_get_int(s, IOK_OPT_SENDFD, &v), IOK_ENOTSUP); /* pull never sends */
	assert_int_equal(iok_send(s, "x", 1, 0), IOK_ENOTSUP);
	IOK_OK(iok_socket_get_int(s, IOK_OPT_RECVFD, &v));
	assert_true(v >= 0);
	IOK_OK(iok_socket_get_bool(s, IOK_OPT_RAW, &b));
	assert_int_equal(b, 0);
	IOK_OK(iok_close(s));
	IOK_OK(iok_pull0_open_raw(&s));
	IOK_OK(iok_socket_get_bool(s, IOK_OPT_RAW, &b));
	assert_int_equal(b, 1);
	IOK_OK(iok_close(s));
}

/* Non-blocking and timed operations. */
static void
test_nonblock_and_timeouts(void **state)
{
	iok_socket s;
	char       buf[8];
	size_t     n = sizeof(buf);
	(void) state;
	IOK_OK(iok_push0_open(&s));
	IOK_OK(iok_socket_set_int(s, IOK_OPT_SENDBUF, 2));
	/* No peer: the queue takes two, then refuses. */
	IOK_OK(iok_send(s, "1", 1, IOK_FLAG_NONBLOCK));
	IOK_OK(iok_send(s, "2", 1, IOK_FLAG_NONBLOCK));
	assert_int_equal(iok_send(s, "3", 1, IOK_FLAG_NONBLOCK), IOK_EAGAIN);
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_SENDTIMEO, 20));
	assert_int_equal(iok_send(s, "3", 1, 0), IOK_ETIMEDOUT);
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_LINGER, 0));
	IOK_OK(iok_close(s));
	IOK_OK(iok_pull0_open(&s));
	assert_int_equal(iok_recv(s, buf, &n, IOK_FLAG_NONBLOCK), IOK_EAGAIN);
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECVTIMEO, 20));
	assert_int_equal(iok_recv(s, buf, &n, 0), IOK_ETIMEDOUT);
	IOK_OK(iok_close(s));
}

static int
readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, 0) == 1;
}

/* The descriptors are level-triggered: readable exactly while a message
 * waits / while a send would not block. */
static void
test_pollable_fds(void **state)
{
	iok_socket push, pull;
	int        rfd, sfd;
	char       buf[8];
	size_t     n;
	(void) state;
	open2(&push, "push0", &pull, "pull0");
	IOK_OK(iok_socket_get_int(pull, IOK_OPT_RECVFD, &rfd));
	IOK_OK(iok_socket_get_int(push, IOK_OPT_SENDFD, &sfd));
	IOK_OK(iok_socket_set_int(push, IOK_OPT_SENDBUF, 1));
	assert_false(readable(rfd));
	assert_true(readable(sfd));
	IOK_OK(iok_send(push, "a", 1, 0)); /* no peer yet: stays queued */
	assert_false(readable(sfd));       /* the queue of one is full */
	IOK_OK(iok_listen(pull, "inproc://fds", NULL, 0));
	IOK_OK(iok_dial(push, "inproc://fds", NULL, IOK_FLAG_NONBLOCK));
	struct pollfd p = { .fd = rfd, .events = POLLIN };
	assert_int_equal(poll(&p, 1, T_MS), 1);
	assert_true(readable(sfd)); /* it went out */
	IOK_OK(iok_send(push, "b", 1, 0));
	/* Both wait; the fd stays readable until the last one is taken. */
	assert_int_equal(poll(&p, 1, T_MS), 1);
	n = sizeof(buf);
	IOK_OK(iok_recv(pull, buf, &n, 0));
	assert_int_equal(buf[0], 'a');
	while (!readable(rfd)) {
		/* b may still be on its way */
		assert_int_equal(poll(&p, 1, T_MS), 1);
	}
	assert_true(readable(rfd));
	n = sizeof(buf);
	IOK_OK(iok_recv(pull, buf, &n, 0));
	assert_int_equal(buf[0], 'b');
	assert_false(readable(rfd));
	assert_int_equal(iok_recv(pull, buf, &n, IOK_FLAG_NONBLOCK), IOK_EAGAIN);
	/* Closing wakes pollers. */
	IOK_OK(iok_close(push));
	IOK_OK(iok_close(pull));
}

static void
test_close_wakes_blocked(void **state)
{
	tu_recv_thread r;
	iok_socket     s;
	int            rfd;
	(void) state;
	IOK_OK(iok_pull0_open(&s));
	IOK_OK(iok_socket_get_int(s, IOK_OPT_RECVFD, &rfd));
	tu_recv_thread_start(&r, s);
	IOK_OK(iok_close(s));
	assert_true(tu_recv_thread_join(&r, T_MS));
	assert_int_equal(r.rv, IOK_ECLOSED);
}

/* Raw TCP peers (tu_sp_raw_connect) speak the SP handshake by hand, then
 * misbehave. */

/* Wait for the peer to close: read() returns 0 (or an error). */
static int
peer_closed(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char          buf[64];
	for (;;) {
		if (poll(&p, 1, T_MS) != 1) {
			return 0;
		}
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n <= 0) {
			return 1;
		}
	}
}

static void
test_hostile_peers(void **state)
{
	iok_socket   pull;
	iok_listener l;
	int          port, fd;
	(void) state;
	IOK_OK(iok_pull0_open(&pull));
	IOK_OK(iok_socket_set_ms(pull, IOK_OPT_RECVTIMEO, T_MS));
	IOK_OK(iok_socket_set_size(pull, IOK_OPT_RECVMAXSZ, 1000));
	IOK_OK(iok_listen(pull, "tcp://127.0.0.1:0", &l, 0));
	IOK_OK(iok_listener_get_int(l, IOK_OPT_TCP_BOUND_PORT, &port));

	/* A good frame from a good peer. */
	fd = tu_sp_raw_connect(port, 0x50);
	tu_sp_raw_frame(fd, 2, "ok", 2);
	expect_msg(pull, "ok");

	/* Oversized: dropped before its body is read; counted. */
	tu_sp_raw_frame(fd, 1001, NULL, 0);
	assert_true(peer_closed(fd));
	close(fd);
	assert_true(tu_wait_stat(pull, "stat:rx-oversize", 1, T_MS));

	/* Wrong peer protocol (pull talking to pull). */
	fd = tu_sp_raw_connect(port, 0x51);
	assert_true(peer_closed(fd));
	close(fd);
	assert_true(tu_wait_stat(pull, "stat:proto-errors", 1, T_MS));

	/* Not SP at all. */
	{
		struct sockaddr_in sa;
		fd = socket(AF_INET, SOCK_STREAM, 0);
		memset(&sa, 0, sizeof(sa));
		sa.sin_family      = AF_INET;
		sa.sin_port        = htons((uint16_t) port);
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
		assert_int_equal(write(fd, "GET / HTTP/1.0\r\n\r\n", 18), 18);
		assert_true(peer_closed(fd));
		close(fd);
		assert_true(tu_wait_stat(pull, "stat:proto-errors", 2, T_MS));
	}

	/* Truncated: a frame cut short, then the peer hangs up. */
	fd = tu_sp_raw_connect(port, 0x50);
	tu_sp_raw_frame(fd, 100, "short", 5);
	close(fd);

	/* Through all of it the socket keeps working. */
	fd = tu_sp_raw_connect(port, 0x50);
	tu_sp_raw_frame(fd, 5, "still", 5);
	expect_msg(pull, "still");
	close(fd);
	IOK_OK(iok_close(pull));
}

/* A whole message larger than the read buffer, byte-exact, both ways. */
static void
test_large_messages(void **state)
{
	iok_socket a, b;
	size_t     big = 3 * 1024 * 1024 + 17;
	char       url[256];
	(void) state;
	snprintf(url, sizeof(url), "%s", tcp_url("127.0.0.1"));
	open2(&a, "pair0", &b, "pair0");
	IOK_OK(iok_socket_set_size(a, IOK_OPT_RECVMAXSZ, 4 * 1024 * 1024));
	IOK_OK(iok_listen(a, url, NULL, 0));
	IOK_OK(iok_dial(b, url, NULL, IOK_FLAG_NONBLOCK));
	iok_msg *m;
	IOK_OK(iok_msg_alloc(&m, big));
	for (size_t i = 0; i < big; i++) {
		((uint8_t *) iok_msg_body(m))[i] = (uint8_t) (i * 7 + 3);
	}
	IOK_OK(iok_sendmsg(b, m, 0));
	IOK_OK(iok_send(b, "tail", 4, 0));
	iok_msg *r;
	IOK_OK(iok_recvmsg(a, &r, 0));
	assert_int_equal(iok_msg_len(r), big);
	for (size_t i = 0; i < big; i++) {
		if (((uint8_t *) iok_msg_body(r))[i] != (uint8_t) (i * 7 + 3)) {
			fail_msg("byte %zu differs", i);
		}
	}
	assert_int_equal(iok_msg_get_pipe(r) > 0, 1);
	iok_msg_free(r);
	expect_msg(a, "tail");
	/* Over the default 1 MiB at the receiver: the connection drops. */
	IOK_OK(iok_msg_alloc(&m, 2 * 1024 * 1024));
	memset(iok_msg_body(m), 1, 2 * 1024 * 1024);
	IOK_OK(iok_sendmsg(a, m, 0));
	assert_true(tu_wait_stat(b, "stat:rx-oversize", 1, T_MS));
	IOK_OK(iok_close(a));
	IOK_OK(iok_close(b));
}

/* Frames from 64 KiB up are read straight into recycled big blocks
 * (src/bigpool.h): sizes on both sides of each class boundary and over the
 * largest class arrive byte-exact and in order, among small messages and
 * back to back (where the pipe reads the next frame into a block of the
 * last one's class before it knows its size), on tcp and ipc; a peer that
 * hangs up in the middle of a big frame loses only that frame (its block
 * goes back: the ASan build checks for the leak). */
static void
test_big_frames(void **state)
{
	static const size_t sizes[] = { 65536 - 9, 65536 - 8, 65536 + 1, 81920, 81921,
		(1u << 20) + 16384, 3u << 20, 9u << 20, (16u << 20) + 16384 + 1, 20u << 20 };
	enum { N = sizeof(sizes) / sizeof(sizes[0]) };
	const char *urls[2];
	char        ipc[128];
	(void) state;
	snprintf(ipc, sizeof(ipc), "ipc:///tmp/iok-big-%d", (int) getpid());
	urls[0] = tcp_url("127.0.0.1");
	urls[1] = ipc;
	for (int u = 0; u < 2; u++) {
		iok_socket   push, pull;
		iok_listener l;
		open2(&pull, "pull0", &push, "push0");
		IOK_OK(iok_socket_set_size(pull, IOK_OPT_RECVMAXSZ, 32u << 20));
		IOK_OK(iok_listen(pull, urls[u], &l, 0));
		if (u == 0) {
			int port, fd;
			IOK_OK(iok_listener_get_int(l, IOK_OPT_TCP_BOUND_PORT, &port));
			uint8_t *part = calloc(1, 100000);
			fd            = tu_sp_raw_connect(port, 0x50);
			tu_sp_raw_frame(fd, 3u << 20, part, 100000);
			close(fd);
			free(part);
		}
		IOK_OK(iok_dial(push, urls[u], NULL, IOK_FLAG_SYNC));
		for (int round = 0; round < 2; round++) {
			for (size_t i = 0; i < N; i++) {
				iok_msg *m;
				IOK_OK(iok_msg_alloc(&m, sizes[i]));
				uint8_t *b = iok_msg_body(m);
				for (size_t k = 0; k < sizes[i]; k += 4093) {
					b[k] = (uint8_t) (k / 4093 + i);
				}
				b[sizes[i] - 1] = (uint8_t) i;
				IOK_OK(iok_sendmsg(push, m, 0));
				if (round == 0) { /* the second round: back to back */
					IOK_OK(iok_send(push, "tail", 4, 0));
				}
			}
			for (size_t i = 0; i < N; i++) {
				iok_msg *r;
				IOK_OK(iok_recvmsg(pull, &r, 0));
				assert_int_equal(iok_msg_len(r), sizes[i]);
				const uint8_t *b = iok_msg_body(r);
				for (size_t k = 0; k < sizes[i] - 1; k += 4093) {
					if (b[k] != (uint8_t) (k / 4093 + i)) {
						fail_msg("size %zu: byte %zu differs", sizes[i], k);
					}
				}
				assert_int_equal(b[sizes[i] - 1], (uint8_t) i);
				iok_msg_free(r);
				if (round == 0) {
					expect_msg(pull, "tail");
				}
			}
		}
		IOK_OK(iok_close(push));
		IOK_OK(iok_close(pull));
	}
}

static int
big_pool_empty(void *arg)
{
	(void) arg;
	return ik_big_kept_bytes() == 0;
}

/* Big blocks kept for reuse go back after IK_BIG_IDLE_MS with none taken,
 * while the sockets stay open and idle; a block this thread keeps later,
 * with no socket left and the kernel's loop asleep, goes back in turn
 * (the free wakes the loop to watch it). */
static void
test_big_blocks_given_back(void **state)
{
	iok_socket push, pull;
	char       url[256];
	(void) state;
	snprintf(url, sizeof(url), "%s", tcp_url("127.0.0.1"));
	open2(&push, "push0", &pull, "pull0");
	IOK_OK(iok_socket_set_size(pull, IOK_OPT_RECVMAXSZ, 4u << 20));
	IOK_OK(iok_listen(pull, url, NULL, 0));
	IOK_OK(iok_dial(push, url, NULL, IOK_FLAG_SYNC));
	for (int i = 0; i < 8; i++) {
		iok_msg *m;
		IOK_OK(iok_msg_alloc(&m, 1u << 20));
		memset(iok_msg_body(m), 'b', 1u << 20);
		IOK_OK(iok_sendmsg(push, m, 0));
	}
	for (int i = 0; i < 8; i++) {
		iok_msg *r;
		IOK_OK(iok_recvmsg(pull, &r, 0));
		assert_int_equal(iok_msg_len(r), 1u << 20);
		iok_msg_free(r);
	}
	assert_true(ik_big_kept_bytes() > 0);
	assert_true(tu_wait_for(big_pool_empty, NULL, 10 * IK_BIG_IDLE_MS));
	IOK_OK(iok_close(push));
	IOK_OK(iok_close(pull));
	/* A block kept by this thread alone, the loop asleep with nothing
	 * else to wake it. */
	iok_msg *m;
	IOK_OK(iok_msg_alloc(&m, 1u << 20));
	iok_msg_free(m);
	assert_true(ik_big_kept_bytes() > 0);
	assert_true(tu_wait_for(big_pool_empty, NULL, 10 * IK_BIG_IDLE_MS));
}

/* Pair takes one peer; a second is refused and the first stays. */
static void
test_pair_one_peer(void **state)
{
	iok_socket a, b, c;
	(void) state;
	open2(&a, "pair1", &b, "pair1");
	IOK_OK(iok_pair1_open(&c));
	IOK_OK(iok_listen(a, "inproc://one", NULL, 0));
	IOK_OK(iok_dial(b, "inproc://one", NULL, 0));
	assert_true(tu_wait_stat(a, "stat:pipes", 1, T_MS));
	IOK_OK(iok_dial(c, "inproc://one", NULL, IOK_FLAG_NONBLOCK));
	IOK_OK(iok_send(b, "from b", 6, 0));
	expect_msg(a, "from b");
	assert_int_equal(tu_stat(a, "stat:pipes"), 1);
	IOK_OK(iok_close(a));
	IOK_OK(iok_close(b));
	IOK_OK(iok_close(c));
}

/* Backpressure: a pull that does not read stops the push (through TCP),
 * and nothing is lost once it reads. */
static void
test_backpressure(void **state)
{
	iok_socket push, pull;
	char       url[256];
	int        sent = 0;
	(void) state;
	snprintf(url, sizeof(url), "%s", tcp_url("127.0.0.1"));
	open2(&push, "push0", &pull, "pull0");
	IOK_OK(iok_socket_set_int(pull, IOK_OPT_RECVBUF, 4));
	IOK_OK(iok_socket_set_int(push, IOK_OPT_SENDBUF, 4));
	IOK_OK(iok_listen(pull, url, NULL, 0));
	IOK_OK(iok_dial(push, url, NULL, 0));
	char payload[1024];
	memset(payload, 'p', sizeof(payload));
	for (;;) {
		snprintf(payload, 16, "%08d", sent);
		int rv = iok_send(push, payload, sizeof(payload), IOK_FLAG_NONBLOCK);
		if (rv == IOK_EAGAIN) {
			/* Wait until the kernel really cannot take more: the send
			 * fd stays unreadable for a while. */
			int sfd;
			IOK_OK(iok_socket_get_int(push, IOK_OPT_SENDFD, &sfd));
			struct pollfd p = { .fd = sfd, .events = POLLIN };
			if (poll(&p, 1, 200) == 0) {
				break;
			}
			continue;
		}
		IOK_OK(rv);
		sent++;
		assert_true(sent < 1000000); /* it must stop somewhere */
	}
	for (int i = 0; i < sent; i++) {
		char   buf[1024];
		size_t n = sizeof(buf);
		IOK_OK(iok_recv(pull, buf, &n, 0));
		assert_int_equal(n, sizeof(buf));
		assert_int_equal(atoi(buf), i);
	}
	IOK_OK(iok_close(push));
	IOK_OK(iok_close(pull));
}

/* Closing with messages queued for a peer that is still connecting: they
 * are flushed within the linger time. */
static void
test_linger_flush(void **state)
{
	iok_socket push, pull;
	char       url[256];
	(void) state;
	snprintf(url, sizeof(url), "%s", tcp_url("127.0.0.1"));
	IOK_OK(iok_pull0_open(&pull));
	IOK_OK(iok_socket_set_ms(pull, IOK_OPT_RECVTIMEO, T_MS));
	IOK_OK(iok_listen(pull, url, NULL, 0));
	IOK_OK(iok_push0_open(&push));
	IOK_OK(iok_dial(push, url, NULL, IOK_FLAG_NONBLOCK));
	for (int i = 0; i < 100; i++) {
		char m[8];
		snprintf(m, sizeof(m), "%d", i);
		IOK_OK(iok_send(push, m, strlen(m), 0));
	}
	IOK_OK(iok_close(push));
	for (int i = 0; i < 100; i++) {
		char buf[8], want[8];
		snprintf(want, sizeof(want), "%d", i);
		IOK_OK(tu_recv_str(pull, buf, sizeof(buf), T_MS));
		assert_string_equal(buf, want);
	}
	IOK_OK(iok_close(pull));
}

/* Many threads sending on one socket, one receiving: nothing lost. */
struct sender {
	iok_socket s;
	int        id;
};

static void *
sender_main(void *arg)
{
	struct sender *sd = arg;
	for (int i = 0; i < 2000; i++) {
		char m[32];
		snprintf(m, sizeof(m), "%d %d", sd->id, i);
		if (iok_send(sd->s, m, strlen(m), 0) != 0) {
			return (void *) 1;
		}
	}
	return NULL;
}

static void
test_threads_send(void **state)
{
	iok_socket    push, pull;
	pthread_t     t[4];
	struct sender sd[4];
	int           next[4] = { 0 };
	(void) state;
	open2(&push, "push0", &pull, "pull0");
	IOK_OK(iok_listen(pull, "inproc://threads", NULL, 0));
	IOK_OK(iok_dial(push, "inproc://threads", NULL, IOK_FLAG_NONBLOCK));
	for (int i = 0; i < 4; i++) {
		sd[i] = (struct sender) { push, i };
		pthread_create(&t[i], NULL, sender_main, &sd[i]);
	}
	for (int k = 0; k < 8000; k++) {
		char buf[32];
		int  id, seq;
		IOK_OK(tu_recv_str(pull, buf, sizeof(buf), T_MS));
		assert_int_equal(sscanf(buf, "%d %d", &id, &seq), 2);
		assert_int_equal(seq, next[id]); /* per-sender order kept */
		next[id]++;
	}
	for (int i = 0; i < 4; i++) {
		void *r;
		pthread_join(t[i], &r);
		assert_null(r);
	}
	IOK_OK(iok_close(push));
	IOK_OK(iok_close(pull));
}

/* nng's zero-copy send: an iok_alloc buffer handed over with
 * IOK_FLAG_ALLOC arrives intact; on failure it is still the caller's
 * (ASan would see a double free or a leak otherwise). */
static void
test_send_alloc(void **state)
{
	iok_socket a, b, pull;
	char       got[64];
	size_t     n = sizeof(got);
	char      *buf;
	(void) state;
	IOK_OK(iok_pair0_open(&a));
	IOK_OK(iok_pair0_open(&b));
	IOK_OK(iok_listen(a, "inproc://send-alloc", NULL, 0));
	IOK_OK(iok_dial(b, "inproc://send-alloc", NULL, 0));
	assert_non_null(buf = iok_alloc(6));
	memcpy(buf, "owned!", 6);
	IOK_OK(iok_send(b, buf, 6, IOK_FLAG_ALLOC)); /* buf is iok's now */
	IOK_OK(iok_recv(a, got, &n, 0));
	assert_int_equal(n, 6);
	assert_memory_equal(got, "owned!", 6);
	/* Failure: the buffer comes back. */
	IOK_OK(iok_pull0_open(&pull));
	assert_non_null(buf = iok_alloc(3));
	memcpy(buf, "abc", 3);
	assert_int_equal(iok_send(pull, buf, 3, IOK_FLAG_ALLOC), IOK_ENOTSUP);
	assert_memory_equal(buf, "abc", 3);
	assert_int_equal(iok_send(pull, NULL, 0, IOK_FLAG_ALLOC), IOK_EINVAL);
	IOK_OK(iok_close(pull));
	assert_int_equal(iok_send(pull, buf, 3, IOK_FLAG_ALLOC), IOK_ECLOSED);
	iok_free(buf, 3);
	/* An empty allocated message. */
	assert_non_null(buf = iok_alloc(0));
	IOK_OK(iok_send(a, buf, 0, IOK_FLAG_ALLOC));
	n = sizeof(got);
	IOK_OK(iok_recv(b, got, &n, 0));
	assert_int_equal(n, 0);
	IOK_OK(iok_close(a));
	IOK_OK(iok_close(b));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pair_all_transports),
		cmocka_unit_test(test_pushpull_all_transports),
		cmocka_unit_test(test_pull_fair_queue),
		cmocka_unit_test(test_dial_first_and_reconnect),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_bad_urls),
		cmocka_unit_test(test_addr_in_use),
		cmocka_unit_test(test_bound_port),
		cmocka_unit_test(test_closed_handles),
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_nonblock_and_timeouts),
		cmocka_unit_test(test_pollable_fds),
		cmocka_unit_test(test_close_wakes_blocked),
		cmocka_unit_test(test_hostile_peers),
		cmocka_unit_test(test_large_messages),
		cmocka_unit_test(test_big_frames),
		cmocka_unit_test(test_big_blocks_given_back),
		cmocka_unit_test(test_pair_one_peer),
		cmocka_unit_test(test_backpressure),
		cmocka_unit_test(test_linger_flush),
		cmocka_unit_test(test_threads_send),
		cmocka_unit_test(test_send_alloc),
	};
	int rv = cmocka_run_group_tests(tests, NULL, NULL);
	iok_fini();
	return rv;
}
