/*
 * peer.c - the C side of the Python bench (bench/python/run): a server or
 * sender that the Python client measures against, for iok and for libzmq,
 * so both Python libraries face the same kind of peer.
 *
 *   peer iok rep URL            rep0 listening on URL, echoes every request
 *   peer iok push URL N SIZE    push0 listening on URL, sends N messages
 *   peer zmq rep URL            ZMQ_REP bound on URL, echoes
 *   peer zmq router URL         ZMQ_ROUTER bound on URL, echoes (asyncio
 *                               clients with many requests in flight use
 *                               DEALER, as REQ allows only one)
 *   peer zmq push URL N SIZE    ZMQ_PUSH bound on URL, sends N messages
 *
 * Prints READY once bound; servers run until stdin reaches EOF, senders
 * exit once sent (lingering until the peer took everything).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "iok.h"

static void
die(const char *what, const char *err)
{
	fprintf(stderr, "peer: %s: %s\n", what, err);
	exit(1);
}

static void *
stdin_watch(void *arg)
{
	char buf[64];
	while (read(0, buf, sizeof(buf)) > 0) {
	}
	_exit(0); /* the runner is done with us */
	return arg;
}

static void
ready(void)
{
	pthread_t t;
	printf("READY\n");
	fflush(stdout);
	pthread_create(&t, NULL, stdin_watch, NULL);
}

static int
run_iok(const char *role, const char *url, long n, size_t size)
{
	iok_socket s;
	int        rv;
	if (strcmp(role, "rep") == 0) {
		if ((rv = iok_rep0_open(&s)) != 0 || (rv = iok_listen(s, url, NULL, 0)) != 0) {
			die("iok rep", iok_strerror(rv));
		}
		ready();
		for (;;) {
			iok_msg *m;
			if ((rv = iok_recvmsg(s, &m, 0)) != 0) {
				die("iok recv", iok_strerror(rv));
			}
			if ((rv = iok_sendmsg(s, m, 0)) != 0) {
				die("iok send", iok_strerror(rv));
			}
		}
	}
	if (strcmp(role, "push") == 0) {
		char *buf = calloc(1, size + 1);
		if ((rv = iok_push0_open(&s)) != 0 ||
		    (rv = iok_socket_set_int(s, IOK_OPT_SENDBUF, 8192)) != 0 ||
		    (rv = iok_socket_set_ms(s, IOK_OPT_LINGER, 30000)) != 0 ||
		    (rv = iok_listen(s, url, NULL, 0)) != 0) {
			die("iok push", iok_strerror(rv));
		}
		ready();
		/* Closing stops the listener at once (only dialers linger), so
		 * wait for the receiver before queueing everything and closing. */
		for (uint64_t pipes = 0; pipes == 0; usleep(1000)) {
			if ((rv = iok_socket_get_uint64(s, "stat:pipes", &pipes)) != 0) {
				die("iok stat", iok_strerror(rv));
			}
		}
		for (long i = 0; i < n; i++) {
			if ((rv = iok_send(s, buf, size, 0)) != 0) {
				die("iok send", iok_strerror(rv));
			}
		}
		iok_close(s); /* flushes (linger) */
		return 0;
	}
	die("iok", "unknown role");
	return 1;
}

static int
run_zmq(const char *role, const char *url, long n, size_t size)
{
	void *ctx = zmq_ctx_new();
	void *s;
	if (strcmp(role, "rep") == 0 || strcmp(role, "router") == 0) {
		int router = role[1] == 'o';
		s          = zmq_socket(ctx, router ? ZMQ_ROUTER : ZMQ_REP);
		int hwm    = 100000;
		zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm));
		zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm));
		if (zmq_bind(s, url) != 0) {
			die("zmq bind", zmq_strerror(zmq_errno()));
		}
		ready();
		for (;;) {
			zmq_msg_t m;
			int       more;
			do {
				zmq_msg_init(&m);
				if (zmq_msg_recv(&m, s, 0) < 0) {
					die("zmq recv", zmq_strerror(zmq_errno()));
				}
				more = zmq_msg_more(&m);
				if (zmq_msg_send(&m, s, more ? ZMQ_SNDMORE : 0) < 0) {
					die("zmq send", zmq_strerror(zmq_errno()));
				}
			} while (more);
		}
	}
	if (strcmp(role, "push") == 0) {
		char *buf = calloc(1, size + 1);
		int   hwm = 100000, linger = 30000;
		s = zmq_socket(ctx, ZMQ_PUSH);
		zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm));
		zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
		if (zmq_bind(s, url) != 0) {
			die("zmq bind", zmq_strerror(zmq_errno()));
		}
		ready();
		for (long i = 0; i < n; i++) {
			if (zmq_send(s, buf, size, 0) < 0) {
				die("zmq send", zmq_strerror(zmq_errno()));
			}
		}
		zmq_close(s);
		zmq_ctx_term(ctx);
		return 0;
	}
	die("zmq", "unknown role");
	return 1;
}

int
main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: peer iok|zmq rep|router|push URL [N SIZE]\n");
		return 2;
	}
	long   n    = argc > 4 ? atol(argv[4]) : 0;
	size_t size = argc > 5 ? (size_t) atol(argv[5]) : 16;
	if (strcmp(argv[1], "iok") == 0) {
		return run_iok(argv[2], argv[3], n, size);
	}
	if (strcmp(argv[1], "zmq") == 0) {
		return run_zmq(argv[2], argv[3], n, size);
	}
	fprintf(stderr, "peer: unknown library %s\n", argv[1]);
	return 2;
}
