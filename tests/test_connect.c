/*
 * test_connect.c - connection attempts are bounded and cancellable: a
 * server that accepts and never answers the handshake fails a synchronous
 * dial with IOK_ETIMEDOUT after IOK_OPT_CONNECT_TIMEOUT (socket default,
 * or one dialer's own), and a synchronous dial waiting with no bound
 * returns IOK_ECLOSED when another thread closes its dialer.
 *
 * The silent server is a plain listening socket that never calls accept:
 * the kernel completes the TCP handshake from its backlog, and nothing is
 * ever written back.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

#define T_MS 30000 /* bounds a failure only */

static int
silent_server(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t          len = sizeof(a);
	int                fd  = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *) &a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 64), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *) &a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static void
test_option(void **state)
{
	(void) state;
	iok_socket   s;
	iok_dialer   d;
	iok_duration ms;
	IOK_OK(iok_pair0_open(&s));
	IOK_OK(iok_socket_get_ms(s, IOK_OPT_CONNECT_TIMEOUT, &ms));
	assert_int_equal(ms, 10000);
	assert_int_equal(iok_socket_set_ms(s, IOK_OPT_CONNECT_TIMEOUT, 0), IOK_EINVAL);
	assert_int_equal(iok_socket_set_ms(s, IOK_OPT_CONNECT_TIMEOUT, -5), IOK_EINVAL);
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_CONNECT_TIMEOUT, IOK_DURATION_INFINITE));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_CONNECT_TIMEOUT, 250));
	IOK_OK(iok_dialer_create(&d, s, "tcp://127.0.0.1:1"));
	IOK_OK(iok_dialer_get_ms(d, IOK_OPT_CONNECT_TIMEOUT, &ms));
	assert_int_equal(ms, 250); /* inherited */
	IOK_OK(iok_dialer_set_ms(d, IOK_OPT_CONNECT_TIMEOUT, 40));
	IOK_OK(iok_dialer_get_ms(d, IOK_OPT_CONNECT_TIMEOUT, &ms));
	assert_int_equal(ms, 40);
	IOK_OK(iok_dialer_close(d));
	IOK_OK(iok_close(s));
}

/* The socket's bound, over SP (tcp) and over Redis. */
static void
test_silent_server_times_out(void **state)
{
	(void) state;
	const char *fmts[] = { "tcp://127.0.0.1:%d", "redis://127.0.0.1:%d" };
	int         port, fd = silent_server(&port);
	for (int i = 0; i < 2; i++) {
		iok_socket s;
		char       url[128];
		snprintf(url, sizeof(url), fmts[i], port);
		if (i == 0) {
			IOK_OK(iok_pair0_open(&s));
		} else {
			IOK_OK(iok_db_open(&s));
		}
		IOK_OK(iok_socket_set_ms(s, IOK_OPT_CONNECT_TIMEOUT, 100));
		assert_int_equal(iok_dial(s, url, NULL, IOK_FLAG_SYNC), IOK_ETIMEDOUT);
		IOK_OK(iok_close(s));
	}
	close(fd);
}

/* One dialer's own bound, while the socket has none. */
static void
test_dialer_bound(void **state)
{
	(void) state;
	iok_socket s;
	iok_dialer d;
	char       url[128];
	int        port, fd = silent_server(&port);
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	IOK_OK(iok_pair0_open(&s));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_CONNECT_TIMEOUT, IOK_DURATION_INFINITE));
	IOK_OK(iok_dialer_create(&d, s, url));
	IOK_OK(iok_dialer_set_ms(d, IOK_OPT_CONNECT_TIMEOUT, 100));
	assert_int_equal(iok_dialer_start(d, IOK_FLAG_SYNC), IOK_ETIMEDOUT);
	IOK_OK(iok_close(s));
	close(fd);
}

struct dialing {
	iok_dialer d;
	atomic_int done;
	int        rv;
};

static void *
dial_main(void *arg)
{
	struct dialing *g = arg;
	g->rv             = iok_dialer_start(g->d, IOK_FLAG_SYNC);
	atomic_store(&g->done, 1);
	return NULL;
}

static int
is_done(void *arg)
{
	return atomic_load(&((struct dialing *) arg)->done);
}

/* No bound at all: closing the dialer from another thread ends the wait. */
static void
test_close_cancels_wait(void **state)
{
	(void) state;
	iok_socket     s;
	struct dialing g = { 0 };
	pthread_t      th;
	char           url[128];
	int            port, fd = silent_server(&port);
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	IOK_OK(iok_pair0_open(&s));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_CONNECT_TIMEOUT, IOK_DURATION_INFINITE));
	IOK_OK(iok_dialer_create(&g.d, s, url));
	assert_int_equal(pthread_create(&th, NULL, dial_main, &g), 0);
	/* Wait until the attempt is really under way: our connection is in
	 * the server's backlog (its listening socket turns readable). */
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, T_MS), 1);
	assert_false(atomic_load(&g.done));
	IOK_OK(iok_dialer_close(g.d));
	assert_true(tu_wait_for(is_done, &g, T_MS));
	pthread_join(th, NULL);
	assert_int_equal(g.rv, IOK_ECLOSED);
	IOK_OK(iok_close(s));
	close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_option),
		cmocka_unit_test(test_silent_server_times_out),
		cmocka_unit_test(test_dialer_bound),
		cmocka_unit_test(test_close_cancels_wait),
	};
	int rv = cmocka_run_group_tests(tests, NULL, NULL);
	iok_fini();
	return rv;
}
