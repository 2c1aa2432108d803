/*
 * test_linger.c - iok_close lingers only while queued messages can still
 * leave.  With IOK_OPT_LINGER at 60 s, closing 200 sockets whose messages
 * can never be flushed (a push whose dial is refused, a pair whose peer
 * closed, over tcp and inproc) must all complete: were any of them to wait
 * out its linger, the closes could not finish within the bound the test
 * gives them (far below 200 lingers; the bound only limits a failure, a
 * pass never waits for it).  And a peer still connecting is still waited
 * for: the messages reach it.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"

#define LINGER_MS 60000
#define NSOCK 200
#define BOUND_MS 50000 /* < one linger: no close may have waited one */

static char url_buf[256];

static const char *
tcp_url(void)
{
	snprintf(url_buf, sizeof(url_buf), "tcp://127.0.0.1:%d", tu_free_port());
	return url_buf;
}

struct closer {
	iok_socket *socks;
	int         n;
	atomic_int  done;
	atomic_int  errors;
};

static void *
closer_main(void *arg)
{
	struct closer *c = arg;
	for (int i = 0; i < c->n; i++) {
		if (iok_close(c->socks[i]) != 0) {
			atomic_fetch_add(&c->errors, 1);
		}
		atomic_fetch_add(&c->done, 1);
	}
	return NULL;
}

static int
all_closed(void *arg)
{
	struct closer *c = arg;
	return atomic_load(&c->done) == c->n;
}

/* Close every socket from another thread; all must finish within one
 * linger (a hang is reported, not waited out). */
static void
close_all_without_linger(iok_socket *socks, int n)
{
	struct closer c = { .socks = socks, .n = n };
	pthread_t     th;
	assert_int_equal(pthread_create(&th, NULL, closer_main, &c), 0);
	if (!tu_wait_for(all_closed, &c, BOUND_MS)) {
		fail_msg("%d of %d closes still lingering", n - atomic_load(&c.done), n);
	}
	pthread_join(th, NULL);
	assert_int_equal(atomic_load(&c.errors), 0);
}

static void
queue_one(iok_socket s)
{
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_LINGER, LINGER_MS));
	IOK_OK(iok_send(s, "x", 1, IOK_FLAG_NONBLOCK));
}

/* A push dialing a port nobody listens on: the dial is refused. */
static void
test_close_push_refused(void **state)
{
	(void) state;
	iok_socket socks[NSOCK];
	for (int i = 0; i < NSOCK; i++) {
		IOK_OK(iok_push0_open(&socks[i]));
		IOK_OK(iok_socket_set_ms(socks[i], IOK_OPT_RECONNMINT, 10));
		IOK_OK(iok_dial(socks[i], tcp_url(), NULL, IOK_FLAG_NONBLOCK));
		queue_one(socks[i]);
	}
	close_all_without_linger(socks, NSOCK);
}

static int
no_pipes(void *arg)
{
	return tu_stat(*(iok_socket *) arg, "stat:pipes") == 0;
}

/* Pairs whose peer closed (half over tcp, half inproc). */
static void
test_close_pair_peer_gone(void **state)
{
	(void) state;
	iok_socket socks[NSOCK];
	char       buf[8];
	for (int i = 0; i < NSOCK; i++) {
		iok_socket peer;
		char       url[256];
		if (i % 2) {
			snprintf(url, sizeof(url), "%s", tcp_url());
		} else {
			snprintf(url, sizeof(url), "inproc://linger-%d", i);
		}
		IOK_OK(iok_pair0_open(&peer));
		IOK_OK(iok_listen(peer, url, NULL, 0));
		IOK_OK(iok_pair0_open(&socks[i]));
		IOK_OK(iok_socket_set_ms(socks[i], IOK_OPT_RECONNMINT, 10));
		IOK_OK(iok_dial(socks[i], url, NULL, IOK_FLAG_SYNC));
		IOK_OK(iok_send(socks[i], "hi", 2, 0));
		IOK_OK(tu_recv_str(peer, buf, sizeof(buf), BOUND_MS));
		IOK_OK(iok_close(peer));
		assert_true(tu_wait_for(no_pipes, &socks[i], BOUND_MS));
		queue_one(socks[i]);
	}
	close_all_without_linger(socks, NSOCK);
}

/* A listener nobody connected to: nothing can take its messages. */
static void
test_close_listener_alone(void **state)
{
	(void) state;
	iok_socket socks[20];
	for (int i = 0; i < 20; i++) {
		IOK_OK(iok_push0_open(&socks[i]));
		IOK_OK(iok_listen(socks[i], tcp_url(), NULL, 0));
		queue_one(socks[i]);
	}
	close_all_without_linger(socks, 20);
}

/* Still worth lingering: a connected peer that is slow to read gets every
 * message, and the close returns once they are written. */
static void
test_close_flushes_to_connected(void **state)
{
	(void) state;
	iok_socket push, pull;
	char       url[256], buf[16], want[16];
	snprintf(url, sizeof(url), "%s", tcp_url());
	IOK_OK(iok_pull0_open(&pull));
	IOK_OK(iok_listen(pull, url, NULL, 0));
	IOK_OK(iok_push0_open(&push));
	IOK_OK(iok_dial(push, url, NULL, IOK_FLAG_SYNC));
	IOK_OK(iok_socket_set_ms(push, IOK_OPT_LINGER, LINGER_MS));
	for (int i = 0; i < 500; i++) {
		snprintf(want, sizeof(want), "%d", i);
		IOK_OK(iok_send(push, want, strlen(want), 0));
	}
	close_all_without_linger(&push, 1);
	for (int i = 0; i < 500; i++) {
		snprintf(want, sizeof(want), "%d", i);
		IOK_OK(tu_recv_str(pull, buf, sizeof(buf), BOUND_MS));
		assert_string_equal(buf, want);
	}
	IOK_OK(iok_close(pull));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_close_push_refused),
		cmocka_unit_test(test_close_pair_peer_gone),
		cmocka_unit_test(test_close_listener_alone),
		cmocka_unit_test(test_close_flushes_to_connected),
	};
	int rv = cmocka_run_group_tests(tests, NULL, NULL);
	iok_fini();
	return rv;
}
