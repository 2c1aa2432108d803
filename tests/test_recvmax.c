/*
 * test_recvmax.c - IOK_OPT_RECVMAXSZ on SP sockets: an oversize message is
 * refused at the sender when the peer's limit is known (inproc: IOK_EMSGSIZE
 * from iok_send, stat:tx-oversize), counted at the receiver otherwise
 * (stat:rx-oversize, the connection dropped); and a change at runtime
 * reaches the socket's existing listeners, dialers and open connections,
 * except an endpoint that set its own.
 *
 * No sleeps: every wait is on a message or a statistic.
 */
#include <stdio.h>
#include <string.h>

#include "testutil.h"

#define T_MS 30000 /* bounds a failure only */

static char big[4000];

static int
pipes_up(void *arg)
{
	return tu_stat(*(iok_socket *) arg, "stat:pipes") >= 1;
}

static void
test_inproc_refused_at_sender(void **state)
{
	(void) state;
	iok_socket a, b;
	char       buf[8192];
	size_t     sz;
	memset(big, 'b', sizeof(big));
	IOK_OK(iok_pair0_open(&a));
	IOK_OK(iok_pair0_open(&b));
	IOK_OK(iok_socket_set_ms(a, IOK_OPT_RECVTIMEO, T_MS));
	IOK_OK(iok_socket_set_size(a, IOK_OPT_RECVMAXSZ, 1000));
	IOK_OK(iok_listen(a, "inproc://recvmax", NULL, 0));
	IOK_OK(iok_dial(b, "inproc://recvmax", NULL, IOK_FLAG_SYNC));
	assert_true(tu_wait_for(pipes_up, &a, T_MS));

	assert_int_equal(iok_send(b, big, 2000, 0), IOK_EMSGSIZE);
	assert_int_equal(tu_stat(b, "stat:tx-oversize"), 1);
	IOK_OK(iok_send(b, big, 1000, 0)); /* at the limit: fine */
	sz = sizeof(buf);
	IOK_OK(iok_recv(a, buf, &sz, 0));
	assert_int_equal(sz, 1000);

	/* Raised at runtime: the open connection's sender learns it. */
	IOK_OK(iok_socket_set_size(a, IOK_OPT_RECVMAXSZ, 4000));
	IOK_OK(iok_send(b, big, 2000, 0));
	sz = sizeof(buf);
	IOK_OK(iok_recv(a, buf, &sz, 0));
	assert_int_equal(sz, 2000);
	/* Lowered: refused again. */
	IOK_OK(iok_socket_set_size(a, IOK_OPT_RECVMAXSZ, 100));
	assert_int_equal(iok_send(b, big, 2000, 0), IOK_EMSGSIZE);
	assert_int_equal(tu_stat(b, "stat:tx-oversize"), 2);
	assert_int_equal(tu_stat(a, "stat:rx-oversize"), 0);
	IOK_OK(iok_close(a));
	IOK_OK(iok_close(b));
}

/* tcp: the peer's limit is not known to the sender; the receiver counts
 * and drops the connection.  A runtime change reaches the open listener
 * and the connection it accepted. */
static void
test_tcp_runtime_change(void **state)
{
	(void) state;
	iok_socket   push, pull;
	iok_listener l;
	char         url[128], buf[8192];
	size_t       sz, v;
	memset(big, 'b', sizeof(big));
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", tu_free_port());
	IOK_OK(iok_pull0_open(&pull));
	IOK_OK(iok_socket_set_ms(pull, IOK_OPT_RECVTIMEO, T_MS));
	IOK_OK(iok_listen(pull, url, &l, 0));
	IOK_OK(iok_push0_open(&push));
	IOK_OK(iok_socket_set_ms(push, IOK_OPT_RECONNMINT, 10));
	IOK_OK(iok_dial(push, url, NULL, IOK_FLAG_SYNC));
	IOK_OK(iok_send(push, big, 2000, 0));
	sz = sizeof(buf);
	IOK_OK(iok_recv(pull, buf, &sz, 0));
	assert_int_equal(sz, 2000);

	IOK_OK(iok_socket_set_size(pull, IOK_OPT_RECVMAXSZ, 1000));
	IOK_OK(iok_listener_get_size(l, IOK_OPT_RECVMAXSZ, &v));
	assert_int_equal(v, 1000);
	IOK_OK(iok_send(push, big, 2000, 0)); /* unknown limit: sent */
	assert_true(tu_wait_stat(pull, "stat:rx-oversize", 1, T_MS));
	/* The push reconnects; small messages flow, big ones are counted. */
	assert_true(tu_wait_stat(push, "stat:reconnects", 1, T_MS));
	IOK_OK(iok_send(push, big, 500, 0));
	sz = sizeof(buf);
	IOK_OK(iok_recv(pull, buf, &sz, 0));
	assert_int_equal(sz, 500);
	IOK_OK(iok_send(push, big, 2000, 0));
	assert_true(tu_wait_stat(pull, "stat:rx-oversize", 2, T_MS));
	assert_int_equal(tu_stat(push, "stat:tx-oversize"), 0);

	/* An endpoint's own limit stays its own. */
	IOK_OK(iok_listener_set_size(l, IOK_OPT_RECVMAXSZ, 3000));
	IOK_OK(iok_socket_set_size(pull, IOK_OPT_RECVMAXSZ, 200));
	IOK_OK(iok_listener_get_size(l, IOK_OPT_RECVMAXSZ, &v));
	assert_int_equal(v, 3000);
	assert_true(tu_wait_stat(push, "stat:reconnects", 2, T_MS));
	IOK_OK(iok_send(push, big, 2500, 0));
	sz = sizeof(buf);
	IOK_OK(iok_recv(pull, buf, &sz, 0));
	assert_int_equal(sz, 2500);
	IOK_OK(iok_close(push));
	IOK_OK(iok_close(pull));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_inproc_refused_at_sender),
		cmocka_unit_test(test_tcp_runtime_change),
	};
	int rv = cmocka_run_group_tests(tests, NULL, NULL);
	iok_fini();
	return rv;
}
