/*
 * demo.c - what iok does, in one run: one I/O thread for the whole
 * process, 1000 requests in flight on one socket, a stream of messages
 * between processes' worth of sockets, and pub/sub.
 */
#include <dirent.h>
#include <iok.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHECK(expr)                                                                  \
	do {                                                                         \
		int rv_ = (expr);                                                    \
		if (rv_ != 0) {                                                      \
			fprintf(stderr, "demo: %s: %s\n", #expr, iok_strerror(rv_)); \
			exit(1);                                                     \
		}                                                                    \
	} while (0)

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
threads(void)
{
	DIR *d = opendir("/proc/self/task");
	int  n = 0;
	for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
		n += e->d_name[0] != '.';
	}
	if (d)
		closedir(d);
	return n;
}

static void *
rep_server(void *arg)
{
	iok_socket rep = *(iok_socket *) arg;
	iok_msg   *m;
	while (iok_recvmsg(rep, &m, 0) == 0) {
		if (iok_reply(rep, m, iok_msg_token(m), 0) != 0) {
			iok_msg_free(m);
		}
	}
	return NULL;
}

static void
demo_reqrep(void)
{
	enum { N = 1000 };
	iok_socket req, rep;
	pthread_t  t;
	char       url[128];
	snprintf(url, sizeof(url), "ipc:///tmp/iok-demo-%d.sock", (int) getpid());
	CHECK(iok_rep0_open(&rep));
	CHECK(iok_listen(rep, url, NULL, 0));
	pthread_create(&t, NULL, rep_server, &rep);
	CHECK(iok_req0_open(&req));
	CHECK(iok_socket_set_ms(req, IOK_OPT_RECVTIMEO, 10000));
	CHECK(iok_dial(req, url, NULL, 0));
	double t0 = now();
	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < N; i++) {
			iok_msg *m;
			CHECK(iok_msg_alloc(&m, sizeof(int)));
			memcpy(iok_msg_body(m), &i, sizeof(int));
			CHECK(iok_request(req, m, NULL, 0));
		}
		for (int i = 0; i < N; i++) {
			iok_msg *r;
			CHECK(iok_recvmsg(req, &r, 0));
			iok_msg_free(r);
		}
	}
	double dt = now() - t0;
	printf("req/rep:   %d requests, %d in flight at a time on ONE socket: %.0f req/s\n", 20 * N,
	    N, 20 * N / dt);
	iok_close(req);
	iok_close(rep);
	pthread_join(t, NULL);
}

enum { PIPE_N = 200000 };

static void *
pull_all(void *arg)
{
	iok_socket pull = *(iok_socket *) arg;
	char       buf[64];
	for (int i = 0; i < PIPE_N; i++) {
		size_t len = sizeof(buf);
		CHECK(iok_recv(pull, buf, &len, 0));
	}
	return NULL;
}

static void
demo_pipeline(void)
{
	enum { N = PIPE_N };
	pthread_t  t;
	iok_socket push, pull;
	char       buf[64], url[64];
	snprintf(url, sizeof(url), "tcp://127.0.0.1:0");
	iok_listener l;
	int          port;
	CHECK(iok_pull0_open(&pull));
	CHECK(iok_listen(pull, url, &l, 0));
	CHECK(iok_listener_get_int(l, IOK_OPT_TCP_BOUND_PORT, &port));
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	CHECK(iok_push0_open(&push));
	CHECK(iok_dial(push, url, NULL, 0));
	memset(buf, 'x', sizeof(buf));
	double t0 = now();
	pthread_create(&t, NULL, pull_all, &pull);
	for (int i = 0; i < N; i++) {
		CHECK(iok_send(push, buf, sizeof(buf), 0));
	}
	pthread_join(t, NULL);
	double dt = now() - t0;
	printf("push/pull: %d messages of 64 B over tcp: %.2f M msgs/s\n", N, N / dt / 1e6);
	iok_close(push);
	iok_close(pull);
}

static void
demo_pubsub(void)
{
	iok_socket  pub, sub[3];
	const char *topics[3] = { "a.", "b.", "" };
	CHECK(iok_pub0_open(&pub));
	CHECK(iok_listen(pub, "inproc://demo-pubsub", NULL, 0));
	for (int i = 0; i < 3; i++) {
		CHECK(iok_sub0_open(&sub[i]));
		CHECK(iok_socket_set(sub[i], IOK_OPT_SUB_SUBSCRIBE, topics[i], strlen(topics[i])));
		CHECK(iok_socket_set_ms(sub[i], IOK_OPT_RECVTIMEO, 2000));
		CHECK(iok_dial(sub[i], "inproc://demo-pubsub", NULL, 0));
	}
	CHECK(iok_send(pub, "a.one", 5, 0));
	CHECK(iok_send(pub, "b.two", 5, 0));
	int got[3] = { 0 };
	for (int i = 0; i < 3; i++) {
		char   buf[16];
		size_t len;
		for (;;) {
			len = sizeof(buf);
			if (iok_recv(sub[i], buf, &len, 0) != 0) {
				break;
			}
			got[i]++;
			if ((i < 2 && got[i] == 1) || got[i] == 2) {
				break;
			}
		}
	}
	printf("pub/sub:   'a.' got %d, 'b.' got %d, '' (everything) got %d of 2\n", got[0], got[1],
	    got[2]);
	iok_close(pub);
	for (int i = 0; i < 3; i++) {
		iok_close(sub[i]);
	}
}

int
main(void)
{
	int before = threads();
	printf("iok %s\n", iok_version());
	demo_reqrep();
	demo_pipeline();
	demo_pubsub();
	printf("threads:   %d before iok, %d now: one kernel thread did all the I/O\n", before,
	    threads());
	iok_fini();
	return 0;
}
