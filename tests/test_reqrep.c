/*
 * test_reqrep.c - REQ/REP over real sockets (inproc, ipc, tcp): plain
 * round trips, many outstanding requests with tokens, resend, timeouts,
 * cancel, resend on pipe loss, raw sockets and devices, and bad input from
 * a raw TCP peer.  No sleeping as synchronisation: waits are on
 * conditions (statistics, receive timeouts).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define WAIT_MS 20000 /* a safety net for waits on conditions, never a sync */

static const char *const transports[] = { "inproc", "ipc", "tcp" };
#define NTRANS ((int) (sizeof(transports) / sizeof(transports[0])))

/* Listen on a fresh address of transport t; url gets what to dial. */
static void
listen_any(iok_socket s, const char *t, char *url, size_t cap)
{
	static int seq;
	if (strcmp(t, "inproc") == 0) {
		snprintf(url, cap, "inproc://rr-%d-%d", (int) getpid(), seq++);
		IOK_OK(iok_listen(s, url, NULL, 0));
	} else if (strcmp(t, "ipc") == 0) {
		snprintf(url, cap, "%s", tu_ipc_url("rr"));
		IOK_OK(iok_listen(s, url, NULL, 0));
	} else {
		iok_listener l;
		int          port = 0;
		IOK_OK(iok_listen(s, "tcp://127.0.0.1:0", &l, 0));
		IOK_OK(iok_listener_get_int(l, IOK_OPT_TCP_BOUND_PORT, &port));
		snprintf(url, cap, "tcp://127.0.0.1:%d", port);
	}
}

static void
wait_pipes(iok_socket s, uint64_t n)
{
	assert_true(tu_wait_stat(s, "stat:pipes", n, WAIT_MS));
}

/* A connected req/rep pair over transport t. */
static void
pair_up(const char *t, iok_socket *req, iok_socket *rep)
{
	char url[256];
	IOK_OK(iok_req0_open(req));
	IOK_OK(iok_rep0_open(rep));
	listen_any(*rep, t, url, sizeof(url));
	IOK_OK(iok_dial(*req, url, NULL, IOK_FLAG_NONBLOCK));
	wait_pipes(*req, 1);
	wait_pipes(*rep, 1);
}

static iok_msg *
mkmsg(const char *s)
{
	iok_msg *m;
	IOK_OK(iok_msg_alloc(&m, strlen(s)));
	memcpy(iok_msg_body(m), s, strlen(s));
	return m;
}

static void
assert_body(iok_msg *m, const char *s)
{
	assert_int_equal(iok_msg_len(m), strlen(s));
	assert_memory_equal(iok_msg_body(m), s, strlen(s));
}

static iok_msg *
recv_msg(iok_socket s, int timeout_ms)
{
	iok_msg *m = NULL;
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECVTIMEO, timeout_ms));
	IOK_OK(iok_recvmsg(s, &m, 0));
	return m;
}

static void
send_str(iok_socket s, const char *str)
{
	IOK_OK(iok_send(s, str, strlen(str), 0));
}

static void
expect_str(iok_socket s, const char *str)
{
	char buf[256];
	IOK_OK(tu_recv_str(s, buf, sizeof(buf), WAIT_MS));
	assert_string_equal(buf, str);
}

/* Nothing (more) is waiting to be received: EAGAIN, or ESTATE on a plain
 * req/surveyor with no request outstanding (as nng). */
static void
expect_nothing(iok_socket s)
{
	iok_msg *m  = NULL;
	int      rv = iok_recvmsg(s, &m, IOK_FLAG_NONBLOCK);
	if (rv == 0) {
		fail_msg("unexpected message: %zu bytes, token %llu, status %d", iok_msg_len(m),
		    (unsigned long long) iok_msg_token(m), iok_msg_status(m));
	}
	assert_true(rv == IOK_EAGAIN || rv == IOK_ESTATE);
}

/* ----------------------------------------------------------- plain API */

static void
test_plain_roundtrip(void **state)
{
	(void) state;
	for (int t = 0; t < NTRANS; t++) {
		iok_socket req, rep;
		char       buf[64], want[64];
		pair_up(transports[t], &req, &rep);
		for (int i = 0; i < 20; i++) {
			snprintf(buf, sizeof(buf), "ping %d", i);
			send_str(req, buf);
			expect_str(rep, buf);
			snprintf(want, sizeof(want), "pong %d", i);
			send_str(rep, want);
			expect_str(req, want);
		}
		/* rep: a send without a request is a state error. */
		assert_int_equal(iok_send(rep, "x", 1, 0), IOK_ESTATE);
		/* The cooked sockets show no header. */
		send_str(req, "hdr?");
		iok_msg *m = recv_msg(rep, WAIT_MS);
		assert_int_equal(iok_msg_header_len(m), 0);
		assert_true(iok_msg_token(m) != 0);
		IOK_OK(iok_sendmsg(rep, m, 0)); /* echo: answers the last request */
		m = recv_msg(req, WAIT_MS);
		assert_int_equal(iok_msg_header_len(m), 0);
		assert_int_equal(iok_msg_token(m), 0);
		assert_body(m, "hdr?");
		iok_msg_free(m);
		assert_int_equal(tu_stat(req, "stat:rx-malformed"), 0);
		IOK_OK(iok_close(req));
		IOK_OK(iok_close(rep));
	}
}

/* A rep thread that echoes n requests, each by its token; non-NULL if a
 * receive or a reply failed. */
struct answerer {
	iok_socket rep;
	int        n;
};

static void *
answer_all(void *arg)
{
	struct answerer *a = arg;
	for (int i = 0; i < a->n; i++) {
		iok_msg *m = NULL;
		if (iok_recvmsg(a->rep, &m, 0) != 0) {
			return (void *) 1;
		}
		uint64_t tok = iok_msg_token(m);
		if (iok_reply(a->rep, m, tok, 0) != 0) { /* echo */
			iok_msg_free(m);
			return (void *) 1;
		}
	}
	return NULL;
}

/* A receive the way a binding makes it: wait (with a signal mask or not),
 * then take without blocking; a wait may wake for nothing. */
static void
wait_then_expect(iok_socket s, const sigset_t *mask, const char *want)
{
	char   buf[64];
	size_t n;
	int    rv;
	for (;;) {
		IOK_OK(iok_recv_wait(s, WAIT_MS, mask));
		n = sizeof(buf);
		if ((rv = iok_recv(s, buf, &n, IOK_FLAG_NONBLOCK)) != IOK_EAGAIN) {
			break;
		}
	}
	IOK_OK(rv);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(buf, want, n);
}

static volatile sig_atomic_t usr1_caught;

static void
on_usr1(int sig)
{
	(void) sig;
	usr1_caught = 1;
}

static void
test_recv_wait(void **state)
{
	(void) state;
	/* Signals the waits below unblock: held blocked everywhere else, as
	 * pselect(2) asks, so one sent early waits for the ppoll. */
	struct sigaction sa = { .sa_handler = on_usr1 };
	sigset_t         usr1, open_mask;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	assert_int_equal(sigaction(SIGUSR1, &sa, NULL), 0);
	assert_int_equal(pthread_sigmask(SIG_BLOCK, &usr1, &open_mask), 0);
	sigdelset(&open_mask, SIGUSR1);

	for (int t = 0; t < NTRANS; t++) {
		iok_socket req, rep, push;
		pair_up(transports[t], &req, &rep);
		assert_int_equal(iok_recv_wait(req, 0, NULL), IOK_ETIMEDOUT);
		assert_int_equal(iok_recv_wait(req, 30, NULL), IOK_ETIMEDOUT);
		assert_int_equal(iok_recv_wait(req, 30, &open_mask), IOK_ETIMEDOUT);

		/* Round trips waited for both ways. */
		for (int i = 0; i < 50; i++) {
			char buf[32];
			snprintf(buf, sizeof(buf), "wait %d", i);
			send_str(req, buf);
			wait_then_expect(rep, i % 2 ? &open_mask : NULL, buf);
			send_str(rep, buf);
			wait_then_expect(req, &open_mask, buf);
		}

		/* A signal ends a wait with a mask, watching (a request just
		 * sent) or not (the rep has nothing outstanding). */
		tu_recv_thread r;
		send_str(req, "unanswered");
		wait_then_expect(rep, NULL, "unanswered");
		usr1_caught = 0;
		tu_recv_wait_thread_start(&r, req, &open_mask);
		assert_int_equal(pthread_kill((pthread_t) r.th, SIGUSR1), 0);
		if (!tu_recv_thread_join(&r, WAIT_MS)) {
			fail_msg("%s: a signal did not end iok_recv_wait", transports[t]);
		}
		assert_int_equal(r.rv, IOK_EINTR);
		assert_true(usr1_caught);
		tu_recv_wait_thread_start(&r, rep, &open_mask);
		assert_int_equal(pthread_kill((pthread_t) r.th, SIGUSR1), 0);
		assert_true(tu_recv_thread_join(&r, WAIT_MS));
		assert_int_equal(r.rv, IOK_EINTR);

		/* The late reply is still there for the requester. */
		send_str(rep, "late");
		wait_then_expect(req, &open_mask, "late");

		/* Close ends a wait, with a mask and without (the requester
		 * with a request out: a plain req0 with none has nothing to
		 * wait for, IOK_ESTATE). */
		tu_recv_thread r2;
		assert_int_equal(iok_recv_wait(req, 0, NULL), IOK_ESTATE);
		send_str(req, "again");
		wait_then_expect(rep, NULL, "again");
		tu_recv_wait_thread_start(&r, req, NULL);
		tu_recv_wait_thread_start(&r2, rep, &open_mask);
		assert_false(tu_recv_thread_join(&r, 50)); /* still waiting */
		IOK_OK(iok_close(req));
		IOK_OK(iok_close(rep));
		assert_true(tu_recv_thread_join(&r, WAIT_MS));
		assert_true(tu_recv_thread_join(&r2, WAIT_MS));
		assert_int_equal(r.rv, IOK_ECLOSED);
		assert_int_equal(r2.rv, IOK_ECLOSED);
		assert_int_equal(iok_recv_wait(req, 0, NULL), IOK_ECLOSED);

		IOK_OK(iok_push0_open(&push));
		assert_int_equal(iok_recv_wait(push, 0, NULL), IOK_ENOTSUP);
		IOK_OK(iok_close(push));
	}
	assert_int_equal(pthread_sigmask(SIG_UNBLOCK, &usr1, NULL), 0);
}

/* A peer in another process: this binary run again (a fresh process, so
 * the sanitizers' rules about fork in a threaded process do not apply).
 * It dials url with a rep0 or pair1 socket and echoes every message but
 * "never" (no answer) and "hold" (answered once a byte comes on its
 * stdin, the parent's control pipe). */
static int
echo_child_main(const char *pattern, const char *url)
{
	iok_socket s;
	char       buf[64];
	int        rv = strcmp(pattern, "pair1") == 0 ? iok_pair1_open(&s) : iok_rep0_open(&s);
	if (rv != 0 || iok_dial(s, url, NULL, IOK_FLAG_NONBLOCK) != 0 ||
	    iok_socket_set_ms(s, IOK_OPT_RECVTIMEO, WAIT_MS) != 0) {
		return 1;
	}
	for (;;) {
		size_t n = sizeof(buf);
		char   c;
		if (iok_recv(s, buf, &n, 0) != 0) {
			break; /* the parent kills us long before */
		}
		if (n == 5 && memcmp(buf, "never", 5) == 0) {
			continue;
		}
		if (n == 4 && memcmp(buf, "hold", 4) == 0 && read(0, &c, 1) != 1) {
			break;
		}
		if (iok_send(s, buf, n, 0) != 0) {
			break;
		}
	}
	(void) iok_close(s);
	return 0;
}

extern char **environ;

struct echo_child {
	pid_t pid;
	int   ctl; /* its stdin */
};

static void
echo_child_start(struct echo_child *c, const char *pattern, const char *url)
{
	int                        fds[2];
	posix_spawn_file_actions_t fa;
	char *argv[] = { "test_reqrep", "--echo-child", (char *) pattern, (char *) url, NULL };
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
	assert_int_equal(posix_spawn_file_actions_adddup2(&fa, fds[0], 0), 0);
	assert_int_equal(posix_spawn_file_actions_addclose(&fa, fds[1]), 0);
	assert_int_equal(posix_spawn(&c->pid, "/proc/self/exe", &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[0]);
	c->ctl = fds[1];
}

/* s listens on transport t; a child with a socket of pattern dials it. */
static void
echo_child_connect(struct echo_child *c, iok_socket s, const char *t, const char *pattern)
{
	char url[256];
	listen_any(s, t, url, sizeof(url));
	echo_child_start(c, pattern, url);
	wait_pipes(s, 1);
}

static void
echo_child_stop(struct echo_child *c)
{
	int status;
	close(c->ctl);
	assert_int_equal(kill(c->pid, SIGKILL), 0);
	assert_int_equal(waitpid(c->pid, &status, 0), c->pid);
}

/* A receive that waits for its answer over the socket's one connection to
 * another process sleeps watching that connection (iok.h, "Watching the
 * wire"), waiting in iok_recv or in iok_recv_wait: replies arrive, a
 * receive timeout still ends it, a late reply still comes, and closing the
 * socket wakes it.  Nobody watches where one kernel thread serves both
 * ends (a peer in this process), nor on a pair socket.  With the receive
 * spin off (it comes first, and a spin that catches the reply leaves
 * nothing to watch for; test_spin_then_watch has both). */
static void
test_watching_receiver(void **state)
{
	sigset_t mask;
	(void) state;
	iok_fini(); /* the spin's budget is read when the kernel starts */
	setenv("IOK_RECV_SPIN_US", "0", 1);
	assert_int_equal(pthread_sigmask(SIG_BLOCK, NULL, &mask), 0);
	for (int t = 1; t < NTRANS; t++) { /* ipc, tcp: inproc has no descriptor */
		iok_socket        req, rep;
		pthread_t         th;
		struct answerer   a = { 0 };
		struct echo_child child;
		char              buf[64];

		pair_up(transports[t], &req, &rep);
		a.rep = rep;
		a.n   = 50;
		assert_int_equal(pthread_create(&th, NULL, answer_all, &a), 0);
		tu_echo_round_trips(req, a.n);
		void *failed;
		pthread_join(th, &failed);
		assert_null(failed);
		assert_int_equal(tu_stat(req, "stat:recv-watches"), 0);
		assert_int_equal(tu_stat(rep, "stat:recv-watches"), 0);
		IOK_OK(iok_close(req));
		IOK_OK(iok_close(rep));

		IOK_OK(iok_req0_open(&req));
		echo_child_connect(&child, req, transports[t], "rep0");
		for (int i = 0; i < 200; i++) {
			snprintf(buf, sizeof(buf), "echo %d", i);
			send_str(req, buf);
			if (i % 2) {
				expect_str(req, buf);
			} else {
				wait_then_expect(req, i % 4 ? &mask : NULL, buf);
			}
		}
		uint64_t watched = tu_stat(req, "stat:recv-watches");
		assert_true(watched > 0);

		/* No answer yet: the watch ends at the timeout; the answer
		 * given later still arrives. */
		send_str(req, "hold");
		IOK_OK(iok_socket_set_ms(req, IOK_OPT_RECVTIMEO, 50));
		size_t n = sizeof(buf);
		assert_int_equal(iok_recv(req, buf, &n, 0), IOK_ETIMEDOUT);
		assert_int_equal(tu_stat(req, "stat:recv-watches"), watched + 1);
		assert_int_equal(write(child.ctl, "x", 1), 1);
		IOK_OK(iok_socket_set_ms(req, IOK_OPT_RECVTIMEO, WAIT_MS));
		expect_str(req, "hold");

		/* Closing the socket wakes a receiver that watches. */
		watched = tu_stat(req, "stat:recv-watches");
		IOK_OK(iok_socket_set_ms(req, IOK_OPT_RECVTIMEO, IOK_DURATION_INFINITE));
		send_str(req, "never");
		tu_recv_thread r;
		tu_recv_thread_start(&r, req);
		assert_true(tu_wait_stat(req, "stat:recv-watches", watched + 1, WAIT_MS));
		IOK_OK(iok_close(req));
		if (!tu_recv_thread_join(&r, WAIT_MS)) {
			fail_msg("%s: a watching receiver was not woken by close", transports[t]);
		}
		assert_int_equal(r.rv, IOK_ECLOSED);
		echo_child_stop(&child);

		/* pair1 streams both ways in step as req/rep do, and loses by
		 * watching: it never does. */
		iok_socket pair;
		IOK_OK(iok_pair1_open(&pair));
		IOK_OK(iok_socket_set_ms(pair, IOK_OPT_RECVTIMEO, WAIT_MS));
		echo_child_connect(&child, pair, transports[t], "pair1");
		for (int i = 0; i < 50; i++) {
			snprintf(buf, sizeof(buf), "pair %d", i);
			send_str(pair, buf);
			expect_str(pair, buf);
		}
		assert_int_equal(tu_stat(pair, "stat:recv-watches"), 0);
		IOK_OK(iok_close(pair));
		echo_child_stop(&child);
	}
	iok_fini();
	unsetenv("IOK_RECV_SPIN_US");
}

/* A receive spins first and, when the spin catches nothing, watches the
 * wire: a reply held past a spin of 1 us makes one of each, and a reply
 * that arrives after both is still received. */
static void
test_spin_then_watch(void **state)
{
	(void) state;
	iok_fini();
	setenv("IOK_RECV_SPIN_US", "1", 1);
	for (int t = 1; t < NTRANS; t++) { /* ipc, tcp */
		iok_socket        req;
		struct echo_child child;
		char              buf[16];
		size_t            n = sizeof(buf);
		IOK_OK(iok_req0_open(&req));
		echo_child_connect(&child, req, transports[t], "rep0");
		send_str(req, "hold");
		IOK_OK(iok_socket_set_ms(req, IOK_OPT_RECVTIMEO, 50));
		assert_int_equal(iok_recv(req, buf, &n, 0), IOK_ETIMEDOUT);
		assert_int_equal(tu_stat(req, "stat:recv-spins"), 1);
		assert_int_equal(tu_stat(req, "stat:recv-spin-hits"), 0);
		assert_int_equal(tu_stat(req, "stat:recv-watches"), 1);
		assert_int_equal(write(child.ctl, "x", 1), 1);
		IOK_OK(iok_socket_set_ms(req, IOK_OPT_RECVTIMEO, WAIT_MS));
		expect_str(req, "hold");
		IOK_OK(iok_close(req));
		echo_child_stop(&child);
	}
	iok_fini();
	unsetenv("IOK_RECV_SPIN_US");
}

static void
test_options(void **state)
{
	iok_socket   req, rep, rreq;
	iok_duration d;
	int          v;
	char        *name;
	(void) state;
	IOK_OK(iok_req0_open(&req));
	IOK_OK(iok_rep0_open(&rep));
	IOK_OK(iok_req0_open_raw(&rreq));
	IOK_OK(iok_socket_get_ms(req, IOK_OPT_REQ_RESENDTIME, &d));
	assert_int_equal(d, 60000); /* nng's default */
	IOK_OK(iok_socket_get_ms(req, IOK_OPT_REQ_TIMEOUT, &d));
	assert_int_equal(d, IOK_DURATION_INFINITE);
	IOK_OK(iok_socket_set_ms(req, IOK_OPT_REQ_RESENDTIME, 250));
	IOK_OK(iok_socket_get_ms(req, IOK_OPT_REQ_RESENDTIME, &d));
	assert_int_equal(d, 250);
	IOK_OK(iok_socket_get_int(req, IOK_OPT_MAXTTL, &v));
	assert_int_equal(v, 8);
	IOK_OK(iok_socket_get_int(req, IOK_OPT_PROTO, &v));
	assert_int_equal(v, 0x30);
	IOK_OK(iok_socket_get_int(rep, IOK_OPT_PROTO, &v));
	assert_int_equal(v, 0x31);
	IOK_OK(iok_socket_get_int(rep, IOK_OPT_PEER, &v));
	assert_int_equal(v, 0x30);
	IOK_OK(iok_socket_get_string(rep, IOK_OPT_PEERNAME, &name));
	assert_string_equal(name, "req0");
	iok_strfree(name);
	assert_int_equal(iok_socket_set_ms(rep, IOK_OPT_REQ_RESENDTIME, 10), IOK_ENOTSUP);
	assert_int_equal(iok_socket_get_ms(rreq, IOK_OPT_REQ_RESENDTIME, &d), IOK_ENOTSUP);
	assert_int_equal(iok_socket_set_string(req, IOK_OPT_REQ_TIMEOUT, "1"), IOK_EBADTYPE);
	/* iok_request and iok_reply belong to their sides, and to cooked mode. */
	uint64_t tok;
	iok_msg *m = mkmsg("x");
	assert_int_equal(iok_request(rep, m, &tok, 0), IOK_ENOTSUP);
	assert_int_equal(iok_request(rreq, m, &tok, 0), IOK_ENOTSUP);
	assert_int_equal(iok_reply(req, m, 1, 0), IOK_ENOTSUP);
	iok_msg_free(m);
	IOK_OK(iok_close(req));
	IOK_OK(iok_close(rep));
	IOK_OK(iok_close(rreq));
}

/* A new request abandons the previous one: its late reply is dropped and
 * the application only ever sees the current request's reply. */
static void
test_plain_abandon(void **state)
{
	(void) state;
	for (int t = 0; t < NTRANS; t++) {
		iok_socket req, rep;
		pair_up(transports[t], &req, &rep);
		send_str(req, "first");
		iok_msg *a = recv_msg(rep, WAIT_MS);
		assert_body(a, "first");
		send_str(req, "second");
		iok_msg *b = recv_msg(rep, WAIT_MS);
		assert_body(b, "second");
		IOK_OK(iok_reply(rep, mkmsg("reply-first"), iok_msg_token(a), 0));
		IOK_OK(iok_reply(rep, mkmsg("reply-second"), iok_msg_token(b), 0));
		expect_str(req, "reply-second");
		assert_true(tu_wait_stat(req, "stat:rx-dropped", 1, WAIT_MS));
		expect_nothing(req);
		iok_msg_free(a);
		iok_msg_free(b);
		IOK_OK(iok_close(req));
		IOK_OK(iok_close(rep));
	}
}

/* One rep serving several clients at once, answering out of order: each
 * reply goes back along its own request's pipe. */
static void
test_rep_many_clients(void **state)
{
	(void) state;
	for (int t = 0; t < NTRANS; t++) {
		enum { N = 5 };
		iok_socket rep, req[N];
		iok_msg   *in[N];
		char       url[256], buf[64];
		IOK_OK(iok_rep0_open(&rep));
		listen_any(rep, transports[t], url, sizeof(url));
		for (int i = 0; i < N; i++) {
			IOK_OK(iok_req0_open(&req[i]));
			IOK_OK(iok_dial(req[i], url, NULL, IOK_FLAG_NONBLOCK));
		}
		wait_pipes(rep, N);
		for (int i = 0; i < N; i++) {
			snprintf(buf, sizeof(buf), "client %d", i);
			send_str(req[i], buf);
		}
		for (int i = 0; i < N; i++) {
			in[i] = recv_msg(rep, WAIT_MS);
		}
		for (int i = N - 1; i >= 0; i--) {
			iok_msg *r;
			IOK_OK(iok_msg_dup(&r, in[i]));
			IOK_OK(iok_msg_append(r, " answered", 9));
			IOK_OK(iok_reply(rep, r, iok_msg_token(in[i]), 0));
			iok_msg_free(in[i]);
		}
		for (int i = 0; i < N; i++) {
			snprintf(buf, sizeof(buf), "client %d answered", i);
			expect_str(req[i], buf);
			IOK_OK(iok_close(req[i]));
		}
		IOK_OK(iok_close(rep));
	}
}

/* -------------------------------------------------- many outstanding */

static unsigned
rnd(unsigned *st)
{
	*st = *st * 1103515245u + 12345u;
	return (*st >> 16) & 0x7fff;
}

static void
many_outstanding(const char *t, int n)
{
	iok_socket req, rep;
	uint64_t  *toks = calloc((size_t) n, sizeof(*toks));
	iok_msg  **reqs = calloc((size_t) n, sizeof(*reqs));
	char      *seen = calloc((size_t) n, 1);
	unsigned   seed = 12345;
	char       buf[64];

	pair_up(t, &req, &rep);
	for (int i = 0; i < n; i++) {
		snprintf(buf, sizeof(buf), "request %d", i);
		IOK_OK(iok_request(req, mkmsg(buf), &toks[i], 0));
		assert_true(toks[i] != 0);
	}
	for (int i = 0; i < n; i++) {
		reqs[i] = recv_msg(rep, WAIT_MS);
	}
	/* Answer in a scrambled order. */
	for (int i = n - 1; i > 0; i--) {
		int      j = (int) (rnd(&seed) % (unsigned) (i + 1));
		iok_msg *x = reqs[i];
		reqs[i]    = reqs[j];
		reqs[j]    = x;
	}
	for (int i = 0; i < n; i++) {
		iok_msg *r;
		IOK_OK(iok_msg_dup(&r, reqs[i]));
		IOK_OK(iok_msg_insert(r, "reply to ", 9));
		IOK_OK(iok_reply(rep, r, iok_msg_token(reqs[i]), 0));
		iok_msg_free(reqs[i]);
	}
	for (int i = 0; i < n; i++) {
		iok_msg *m   = recv_msg(req, WAIT_MS);
		uint64_t tok = iok_msg_token(m);
		int      k   = -1;
		assert_int_equal(iok_msg_status(m), 0);
		for (int j = 0; j < n; j++) { /* tokens are not indices: look up */
			if (toks[j] == tok) {
				k = j;
				break;
			}
		}
		assert_true(k >= 0);
		assert_false(seen[k]);
		seen[k] = 1;
		snprintf(buf, sizeof(buf), "reply to request %d", k);
		assert_body(m, buf);
		iok_msg_free(m);
	}
	expect_nothing(req);
	assert_int_equal(tu_stat(req, "stat:rx-dropped"), 0);
	free(toks);
	free(reqs);
	free(seen);
	IOK_OK(iok_close(req));
	IOK_OK(iok_close(rep));
}

static void
test_many_outstanding(void **state)
{
	(void) state;
	for (int t = 0; t < NTRANS; t++) {
		many_outstanding(transports[t], 1000);
	}
}

/* 10,000 requests in flight through one req socket, answered by a rep
 * thread (answer_all) while the main thread collects: backpressure, never
 * loss. */
struct requester {
	iok_socket req;
	int        n;
	uint64_t  *toks;
	int        rv;
};

static void *
request_all(void *arg)
{
	struct requester *r = arg;
	for (int i = 0; i < r->n; i++) {
		iok_msg *m;
		if ((r->rv = iok_msg_alloc(&m, sizeof(int))) != 0) {
			return NULL;
		}
		memcpy(iok_msg_body(m), &i, sizeof(i));
		if ((r->rv = iok_request(r->req, m, &r->toks[i], 0)) != 0) {
			iok_msg_free(m);
			return NULL;
		}
	}
	return NULL;
}

static void
test_ten_thousand(void **state)
{
	enum { N = 10000 };
	iok_socket       req, rep;
	pthread_t        th1, th2;
	struct answerer  a    = { .n = N };
	struct requester r    = { .n = N, .toks = calloc(N, sizeof(uint64_t)) };
	char            *seen = calloc(N, 1);
	uint64_t        *got  = calloc(N, sizeof(uint64_t)); /* the token each reply came with */
	(void) state;

	pair_up("inproc", &req, &rep);
	a.rep = rep;
	r.req = req;
	IOK_OK(iok_socket_set_ms(rep, IOK_OPT_RECVTIMEO, WAIT_MS));
	assert_int_equal(pthread_create(&th1, NULL, answer_all, &a), 0);
	assert_int_equal(pthread_create(&th2, NULL, request_all, &r), 0);
	for (int i = 0; i < N; i++) {
		iok_msg *m = recv_msg(req, WAIT_MS);
		int      k;
		assert_int_equal(iok_msg_status(m), 0);
		assert_int_equal(iok_msg_len(m), sizeof(int));
		memcpy(&k, iok_msg_body(m), sizeof(k));
		assert_true(k >= 0 && k < N);
		assert_false(seen[k]);
		seen[k] = 1;
		got[k]  = iok_msg_token(m);
		iok_msg_free(m);
	}
	void *failed;
	pthread_join(th1, &failed);
	assert_null(failed);
	pthread_join(th2, NULL);
	IOK_OK(r.rv);
	/* Every reply carries its own request's token, and tokens rise in the
	 * order the requests were made (far more than one pump turn of them,
	 * so the pump's slices and turns are all crossed). */
	for (int i = 0; i < N; i++) {
		assert_true(seen[i]);
		assert_int_equal(got[i], r.toks[i]);
		assert_true(i == 0 || r.toks[i] > r.toks[i - 1]);
	}
	expect_nothing(req);
	assert_int_equal(tu_stat(req, "stat:rx-dropped"), 0);
	assert_int_equal(tu_stat(rep, "stat:tx-dropped"), 0);
	free(r.toks);
	free(seen);
	free(got);
	IOK_OK(iok_close(req));
	IOK_OK(iok_close(rep));
}

/* Many plain round trips between two threads over tcp: a reply that comes
 * back fast must never be taken for a stale one (a purge race once lost
 * replies about once in 100k round trips). */
struct echo_args {
	iok_socket rep;
	int        n;
};

static void *
echo_plain(void *arg)
{
	struct echo_args *e = arg;
	char              buf[32];
	for (int i = 0; i < e->n; i++) {
		size_t len = sizeof(buf);
		if (iok_recv(e->rep, buf, &len, 0) != 0 || iok_send(e->rep, buf, len, 0) != 0) {
			break;
		}
	}
	return NULL;
}

static void
test_plain_many_round_trips(void **state)
{
	enum { N = 30000 };
	iok_socket       req, rep;
	pthread_t        t;
	struct echo_args e = { .n = N };
	(void) state;
	pair_up("tcp", &req, &rep);
	e.rep = rep;
	IOK_OK(iok_socket_set_ms(req, IOK_OPT_RECVTIMEO, WAIT_MS));
	IOK_OK(iok_socket_set_ms(rep, IOK_OPT_RECVTIMEO, WAIT_MS));
	assert_int_equal(pthread_create(&t, NULL, echo_plain, &e), 0);
	tu_echo_round_trips(req, N);
	pthread_join(t, NULL);
	IOK_OK(iok_close(req));
	IOK_OK(iok_close(rep));
}

/* ------------------------------------------- resend, timeout, cancel */

/* A rep that does not answer the first copy: the request comes again
 * after req:resend-time, and exactly one reply reaches the application. */
static void
test_resend(void **state)
{
	(void) state;
	for (int t = 0; t < NTRANS; t++) {
		iok_socket req, rep;
		pair_up(transports[t], &req, &rep);
		IOK_OK(iok_socket_set_ms(req, IOK_OPT_REQ_RESENDTIME, 100));
		send_str(req, "again");
		iok_msg *a = recv_msg(rep, WAIT_MS);
		iok_msg *b = recv_msg(rep, WAIT_MS); /* the resend */
		assert_body(a, "again");
		assert_body(b, "again");
		/* Straight from its requester a request's token is its pipe
		 * and request id: the copy sent again carries the same one. */
		assert_true(iok_msg_token(a) == iok_msg_token(b));
		IOK_OK(iok_reply(rep, mkmsg("answer"), iok_msg_token(b), 0));
		IOK_OK(iok_reply(rep, mkmsg("answer"), iok_msg_token(a), 0));
		expect_str(req, "answer");
		/* The duplicate reply is late: dropped and counted. */
		assert_true(tu_wait_stat(req, "stat:rx-dropped", 1, WAIT_MS));
		expect_nothing(req);
		iok_msg_free(a);
		iok_msg_free(b);
		IOK_OK(iok_close(req));
		IOK_OK(iok_close(rep));
	}
}

/* The same with tokens: each request resends on its own schedule, and
 * each still completes once. */
static void
test_resend_tokens(void **state)
{
	iok_socket req, rep;
	uint64_t   t1, t2;
	(void) state;
	pair_up("tcp", &req, &rep);
	IOK_OK(iok_socket_set_ms(req, IOK_OPT_REQ_RESENDTIME, 100));
	IOK_OK(iok_request(req, mkmsg("one"), &t1, 0));
	IOK_OK(iok_request(req, mkmsg("two"), &t2, 0));
	/* Collect until both have arrived twice. */
	int      n1 = 0, n2 = 0;
	iok_msg *keep1 = NULL, *keep2 = NULL;
	while (n1 < 2 || n2 < 2) {
		iok_msg *m = recv_msg(rep, WAIT_MS);
		if (iok_msg_len(m) == 3 && memcmp(iok_msg_body(m), "one", 3) == 0) {
			n1++;
			iok_msg_free(keep1);
			keep1 = m;
		} else {
			assert_body(m, "two");
			n2++;
			iok_msg_free(keep2);
			keep2 = m;
		}
	}
	IOK_OK(iok_reply(rep, mkmsg("r2"), iok_msg_token(keep2), 0));
	IOK_OK(iok_reply(rep, mkmsg("r1"), iok_msg_token(keep1), 0));
	iok_msg *a = recv_msg(req, WAIT_MS);
	iok_msg *b = recv_msg(req, WAIT_MS);
	assert_int_equal(iok_msg_token(a), t2);
	assert_body(a, "r2");
	assert_int_equal(iok_msg_token(b), t1);
	assert_body(b, "r1");
	iok_msg_free(a);
	iok_msg_free(b);
	iok_msg_free(keep1);
	iok_msg_free(keep2);
	expect_nothing(req);
	IOK_OK(iok_close(req));
	IOK_OK(iok_close(rep));
}

/* req:timeout completes a request with IOK_ETIMEDOUT, exactly once: the
 * reply that comes later is dropped. */
static void
test_req_timeout(void **state)
{
	(void) state;
	for (int t = 0; t < NTRANS; t++) {
		iok_socket req, rep;
		uint64_t   tok, tok2;
		pair_up(transports[t], &req, &rep);
		IOK_OK(iok_socket_set_ms(req, IOK_OPT_REQ_TIMEOUT, 200));
		IOK_OK(iok_request(req, mkmsg("slow"), &tok, 0));
		iok_msg *in = recv_msg(rep, WAIT_MS);
		iok_msg *m  = recv_msg(req, WAIT_MS);
		assert_int_equal(iok_msg_status(m), IOK_ETIMEDOUT);
		assert_int_equal(iok_msg_token(m), tok);
		assert_int_equal(iok_msg_len(m), 0);
		iok_msg_free(m);
		IOK_OK(iok_reply(rep, mkmsg("too late"), iok_msg_token(in), 0));
		iok_msg_free(in);
		assert_true(tu_wait_stat(req, "stat:rx-dropped", 1, WAIT_MS));
		expect_nothing(req);
		/* A request answered in time completes with its reply only. */
		IOK_OK(iok_socket_set_ms(req, IOK_OPT_REQ_TIMEOUT, 30000));
		IOK_OK(iok_request(req, mkmsg("fast"), &tok2, 0));
		in = recv_msg(rep, WAIT_MS);
		IOK_OK(iok_reply(rep, mkmsg("in time"), iok_msg_token(in), 0));
		iok_msg_free(in);
		m = recv_msg(req, WAIT_MS);
		assert_int_equal(iok_msg_status(m), 0);
		assert_int_equal(iok_msg_token(m), tok2);
		assert_body(m, "in time");
		iok_msg_free(m);
		IOK_OK(iok_close(req));
		IOK_OK(iok_close(rep));
	}
}

/* With no peer at all, a request still times out (it waits inside the
 * pattern with its clock running), and a plain iok_recv returns the
 * error. */
static void
test_req_timeout_no_peer(void **state)
{
	iok_socket req;
	uint64_t   tok;
	(void) state;
	IOK_OK(iok_req0_open(&req));
	IOK_OK(iok_dial(req, "tcp://127.0.0.1:1", NULL, IOK_FLAG_NONBLOCK)); /* nobody there */
	IOK_OK(iok_socket_set_ms(req, IOK_OPT_REQ_TIMEOUT, 100));
	IOK_OK(iok_request(req, mkmsg("void"), &tok, 0));
	iok_msg *m = recv_msg(req, WAIT_MS);
	assert_int_equal(iok_msg_status(m), IOK_ETIMEDOUT);
	assert_int_equal(iok_msg_token(m), tok);
	iok_msg_free(m);
	IOK_OK(iok_request(req, mkmsg("void"), &tok, 0));
	char   buf[16];
	size_t len = sizeof(buf);
	IOK_OK(iok_socket_set_ms(req, IOK_OPT_RECVTIMEO, WAIT_MS));
	assert_int_equal(iok_recv(req, buf, &len, 0), IOK_ETIMEDOUT);
	IOK_OK(iok_close(req));
}

/* Timeouts that find the receive queue full wait in the pattern and are
 * delivered as the application makes room (recv_ready): every request
 * completes exactly once, in order of its deadline. */
static void
test_req_timeouts_queue_full(void **state)
{
	enum { N = 8 };
	iok_socket req;
	uint64_t   tok[N];
	(void) state;
	IOK_OK(iok_req0_open(&req));
	IOK_OK(iok_socket_set_int(req, IOK_OPT_RECVBUF, 1));
	IOK_OK(iok_dial(req, "tcp://127.0.0.1:1", NULL, IOK_FLAG_NONBLOCK)); /* nobody there */
	IOK_OK(iok_socket_set_ms(req, IOK_OPT_REQ_TIMEOUT, 20));
	for (int i = 0; i < N; i++) {
		IOK_OK(iok_request(req, mkmsg("void"), &tok[i], 0));
	}
	for (int i = 0; i < N; i++) {
		iok_msg *m = recv_msg(req, WAIT_MS);
		assert_int_equal(iok_msg_status(m), IOK_ETIMEDOUT);
		assert_int_equal(iok_msg_token(m), tok[i]);
		iok_msg_free(m);
	}
	expect_nothing(req);
	IOK_OK(iok_close(req));
}

/* iok_cancel: no completion for the cancelled request, ever; the other
 * one completes normally. */
static void
test_cancel(void **state)
{
	(void) state;
	for (int t = 0; t < NTRANS; t++) {
		iok_socket req, rep;
		uint64_t   t1, t2, t3;
		pair_up(transports[t], &req, &rep);
		IOK_OK(iok_socket_set_ms(req, IOK_OPT_REQ_TIMEOUT, 300));
		IOK_OK(iok_request(req, mkmsg("a"), &t1, 0));
		IOK_OK(iok_request(req, mkmsg("b"), &t2, 0));
		iok_msg *a = recv_msg(rep, WAIT_MS);
		iok_msg *b = recv_msg(rep, WAIT_MS);
		IOK_OK(iok_cancel(req, t1));
		IOK_OK(iok_cancel(req, 987654321)); /* unknown: ignored */
		IOK_OK(iok_reply(rep, mkmsg("ra"), iok_msg_token(a), 0));
		IOK_OK(iok_reply(rep, mkmsg("rb"), iok_msg_token(b), 0));
		iok_msg *m = recv_msg(req, WAIT_MS);
		assert_int_equal(iok_msg_token(m), t2);
		assert_body(m, "rb");
		iok_msg_free(m);
		assert_true(tu_wait_stat(req, "stat:rx-dropped", 1, WAIT_MS));
		/* Cancel a request that has a timeout: no ETIMEDOUT follows.
		 * (A receive timeout well past the request timeout.) */
		IOK_OK(iok_request(req, mkmsg("c"), &t3, 0));
		IOK_OK(iok_cancel(req, t3));
		IOK_OK(iok_socket_set_ms(req, IOK_OPT_RECVTIMEO, 1000));
		assert_int_equal(iok_recvmsg(req, &m, 0), IOK_ETIMEDOUT);
		iok_msg_free(a);
		iok_msg_free(b);
		iok_msg *c = recv_msg(rep, WAIT_MS); /* it was sent, though */
		assert_body(c, "c");
		iok_msg_free(c);
		IOK_OK(iok_close(req));
		IOK_OK(iok_close(rep));
	}
}

/* ----------------------------------------------------- pipe loss */

struct two_reps {
	iok_socket a, b;
	iok_msg   *got;
	int        which;
};

static int
either_got(void *arg)
{
	struct two_reps *tr = arg;
	if (iok_recvmsg(tr->a, &tr->got, IOK_FLAG_NONBLOCK) == 0) {
		tr->which = 0;
		return 1;
	}
	if (iok_recvmsg(tr->b, &tr->got, IOK_FLAG_NONBLOCK) == 0) {
		tr->which = 1;
		return 1;
	}
	return 0;
}

/* The pipe carrying a request goes away: the request goes again at once
 * on another pipe (the resend time is the default minute, so the answer
 * arriving proves it). */
static void
pipe_loss(const char *t, bool tokens)
{
	struct two_reps tr = { 0 };
	iok_socket      req;
	char            url[256];
	uint64_t        tok = 0;

	IOK_OK(iok_req0_open(&req));
	IOK_OK(iok_rep0_open(&tr.a));
	IOK_OK(iok_rep0_open(&tr.b));
	listen_any(tr.a, t, url, sizeof(url));
	IOK_OK(iok_dial(req, url, NULL, IOK_FLAG_NONBLOCK));
	listen_any(tr.b, t, url, sizeof(url));
	IOK_OK(iok_dial(req, url, NULL, IOK_FLAG_NONBLOCK));
	wait_pipes(req, 2);
	if (tokens) {
		IOK_OK(iok_request(req, mkmsg("lost?"), &tok, 0));
	} else {
		send_str(req, "lost?");
	}
	assert_true(tu_wait_for(either_got, &tr, WAIT_MS));
	assert_body(tr.got, "lost?");
	iok_msg_free(tr.got);
	iok_socket gone  = tr.which == 0 ? tr.a : tr.b;
	iok_socket other = tr.which == 0 ? tr.b : tr.a;
	IOK_OK(iok_close(gone));
	iok_msg *m = recv_msg(other, WAIT_MS);
	assert_body(m, "lost?");
	IOK_OK(iok_reply(other, mkmsg("found"), iok_msg_token(m), 0));
	iok_msg_free(m);
	m = recv_msg(req, WAIT_MS);
	assert_body(m, "found");
	assert_int_equal(iok_msg_token(m), tok);
	iok_msg_free(m);
	IOK_OK(iok_close(other));
	IOK_OK(iok_close(req));
}

static void
test_pipe_loss_resend(void **state)
{
	(void) state;
	for (int t = 0; t < NTRANS; t++) {
		pipe_loss(transports[t], false);
		pipe_loss(transports[t], true);
	}
}

static int
no_pipes(void *arg)
{
	return tu_stat(*(iok_socket *) arg, "stat:pipes") == 0;
}

/* A reply whose client went away is dropped and counted; the rep keeps
 * serving. */
static void
test_reply_pipe_gone(void **state)
{
	iok_socket req, rep, req2;
	char       url[256];
	(void) state;
	IOK_OK(iok_req0_open(&req));
	IOK_OK(iok_rep0_open(&rep));
	listen_any(rep, "tcp", url, sizeof(url));
	IOK_OK(iok_dial(req, url, NULL, IOK_FLAG_NONBLOCK));
	wait_pipes(rep, 1);
	send_str(req, "bye");
	iok_msg *m = recv_msg(rep, WAIT_MS);
	IOK_OK(iok_close(req));
	assert_true(tu_wait_for(no_pipes, &rep, WAIT_MS)); /* rep saw it go */
	IOK_OK(iok_sendmsg(rep, m, 0));                    /* answers the last request */
	assert_true(tu_wait_stat(rep, "stat:tx-dropped", 1, WAIT_MS));
	IOK_OK(iok_req0_open(&req2));
	IOK_OK(iok_dial(req2, url, NULL, IOK_FLAG_NONBLOCK));
	send_str(req2, "hello");
	expect_str(rep, "hello");
	send_str(rep, "still here");
	expect_str(req2, "still here");
	IOK_OK(iok_close(req2));
	IOK_OK(iok_close(rep));
}

/* A second reply to one request: rep0 keeps no state for a request
 * straight from its requester, so the reply goes out and the requester
 * drops it as late; the first is delivered once, and a later request
 * still gets its own answer.  A reply for an unknown token is dropped on
 * the rep's side. */
static void
test_reply_twice(void **state)
{
	(void) state;
	for (int t = 0; t < NTRANS; t++) {
		iok_socket req, rep;
		uint64_t   tok, tok2;
		pair_up(transports[t], &req, &rep);
		IOK_OK(iok_request(req, mkmsg("once"), &tok, 0));
		iok_msg *in = recv_msg(rep, WAIT_MS);
		assert_body(in, "once");
		uint64_t rtok = iok_msg_token(in);
		iok_msg_free(in);
		IOK_OK(iok_reply(rep, mkmsg("first"), rtok, 0));
		IOK_OK(iok_reply(rep, mkmsg("second"), rtok, 0));
		iok_msg *m = recv_msg(req, WAIT_MS);
		assert_body(m, "first");
		assert_int_equal(iok_msg_token(m), tok);
		iok_msg_free(m);
		assert_true(tu_wait_stat(req, "stat:rx-dropped", 1, WAIT_MS));
		expect_nothing(req);
		/* A token the rep never gave out. */
		IOK_OK(iok_reply(rep, mkmsg("stray"), 12345, 0));
		assert_true(tu_wait_stat(rep, "stat:tx-dropped", 1, WAIT_MS));
		IOK_OK(iok_request(req, mkmsg("again"), &tok2, 0));
		in = recv_msg(rep, WAIT_MS);
		assert_body(in, "again");
		IOK_OK(iok_reply(rep, in, iok_msg_token(in), 0));
		m = recv_msg(req, WAIT_MS);
		assert_body(m, "again");
		assert_int_equal(iok_msg_token(m), tok2);
		iok_msg_free(m);
		assert_int_equal(tu_stat(req, "stat:rx-dropped"), 1);
		IOK_OK(iok_close(req));
		IOK_OK(iok_close(rep));
	}
}

/* ------------------------------------------------- raw and devices */

/* Raw rep shows [pipe id, request id]; raw req sends the header given
 * and shows the reply's. */
static void
test_raw_headers(void **state)
{
	(void) state;
	for (int t = 0; t < NTRANS; t++) {
		iok_socket req, rrep, rreq, rep;
		char       url[256];
		bool       raw = false;

		IOK_OK(iok_req0_open(&req));
		IOK_OK(iok_rep0_open_raw(&rrep));
		IOK_OK(iok_socket_get_bool(rrep, IOK_OPT_RAW, &raw));
		assert_true(raw);
		listen_any(rrep, transports[t], url, sizeof(url));
		IOK_OK(iok_dial(req, url, NULL, IOK_FLAG_NONBLOCK));
		wait_pipes(rrep, 1);
		send_str(req, "raw?");
		iok_msg *m = recv_msg(rrep, WAIT_MS);
		assert_int_equal(iok_msg_header_len(m), 8);
		uint8_t *h   = iok_msg_header(m);
		uint32_t pid = ((uint32_t) h[0] << 24) | ((uint32_t) h[1] << 16) |
		               ((uint32_t) h[2] << 8) | h[3];
		assert_int_equal(pid, iok_msg_get_pipe(m));
		assert_true(h[4] & 0x80);
		assert_body(m, "raw?");
		iok_msg_clear(m);
		IOK_OK(iok_msg_append(m, "raw!", 4));
		IOK_OK(iok_sendmsg(rrep, m, 0)); /* header goes back as is */
		expect_str(req, "raw!");
		IOK_OK(iok_close(req));
		IOK_OK(iok_close(rrep));

		IOK_OK(iok_req0_open_raw(&rreq));
		IOK_OK(iok_rep0_open(&rep));
		listen_any(rep, transports[t], url, sizeof(url));
		IOK_OK(iok_dial(rreq, url, NULL, IOK_FLAG_NONBLOCK));
		wait_pipes(rreq, 1);
		m = mkmsg("by hand");
		IOK_OK(iok_msg_header_append_u32(m, 0x80001234u));
		IOK_OK(iok_sendmsg(rreq, m, 0));
		expect_str(rep, "by hand");
		send_str(rep, "ok");
		m = recv_msg(rreq, WAIT_MS);
		assert_int_equal(iok_msg_header_len(m), 4);
		uint32_t id;
		IOK_OK(iok_msg_header_trim_u32(m, &id));
		assert_int_equal(id, 0x80001234u);
		assert_body(m, "ok");
		iok_msg_free(m);
		IOK_OK(iok_close(rreq));
		IOK_OK(iok_close(rep));
	}
}

/* req -> [rep_raw | device | req_raw] x hops -> rep: requests go out
 * through the devices and replies come back the right way, for several
 * clients with many requests each. */
static void
device_chain(const char *t, int hops)
{
	enum { CLIENTS = 3, PER = 50 };
	iok_socket rep, req[CLIENTS], drep[4], dreq[4];
	char       url[256], front[256];

	IOK_OK(iok_rep0_open(&rep));
	listen_any(rep, t, url, sizeof(url));
	for (int i = 0; i < hops; i++) {
		IOK_OK(iok_rep0_open_raw(&drep[i]));
		IOK_OK(iok_req0_open_raw(&dreq[i]));
		IOK_OK(iok_dial(dreq[i], url, NULL, IOK_FLAG_NONBLOCK)); /* towards the server */
		listen_any(drep[i], t, url, sizeof(url));
		IOK_OK(iok_device(drep[i], dreq[i]));
		wait_pipes(dreq[i], 1);
	}
	snprintf(front, sizeof(front), "%s", url);
	for (int c = 0; c < CLIENTS; c++) {
		IOK_OK(iok_req0_open(&req[c]));
		IOK_OK(iok_dial(req[c], front, NULL, IOK_FLAG_NONBLOCK));
		wait_pipes(req[c], 1);
	}
	/* Plain API through the chain. */
	for (int c = 0; c < CLIENTS; c++) {
		char buf[64];
		snprintf(buf, sizeof(buf), "plain %d", c);
		send_str(req[c], buf);
		iok_msg *m = recv_msg(rep, WAIT_MS);
		assert_body(m, buf);
		IOK_OK(iok_msg_append(m, "!", 1));
		IOK_OK(iok_sendmsg(rep, m, 0));
		strcat(buf, "!");
		expect_str(req[c], buf);
	}
	/* Many outstanding from every client, answered in reverse. */
	uint64_t toks[CLIENTS][PER];
	iok_msg *in[CLIENTS * PER];
	for (int i = 0; i < PER; i++) {
		for (int c = 0; c < CLIENTS; c++) {
			char buf[64];
			snprintf(buf, sizeof(buf), "c%d r%d", c, i);
			IOK_OK(iok_request(req[c], mkmsg(buf), &toks[c][i], 0));
		}
	}
	for (int i = 0; i < CLIENTS * PER; i++) {
		in[i] = recv_msg(rep, WAIT_MS);
	}
	for (int i = CLIENTS * PER - 1; i >= 0; i--) {
		uint64_t tok = iok_msg_token(in[i]);
		IOK_OK(iok_msg_insert(in[i], "re ", 3));
		IOK_OK(iok_reply(rep, in[i], tok, 0));
	}
	for (int c = 0; c < CLIENTS; c++) {
		for (int i = 0; i < PER; i++) {
			iok_msg *m = recv_msg(req[c], WAIT_MS);
			int      k = -1;
			char     buf[64];
			for (int j = 0; j < PER; j++) {
				if (toks[c][j] == iok_msg_token(m)) {
					k = j;
				}
			}
			assert_true(k >= 0);
			snprintf(buf, sizeof(buf), "re c%d r%d", c, k);
			assert_body(m, buf);
			iok_msg_free(m);
		}
		expect_nothing(req[c]);
	}
	/* A request through devices is stored on the rep's side: a second
	 * reply to it stops there. */
	uint64_t tok;
	IOK_OK(iok_request(req[0], mkmsg("twice?"), &tok, 0));
	iok_msg *m    = recv_msg(rep, WAIT_MS);
	uint64_t rtok = iok_msg_token(m);
	IOK_OK(iok_reply(rep, m, rtok, 0));
	IOK_OK(iok_reply(rep, mkmsg("again"), rtok, 0));
	assert_true(tu_wait_stat(rep, "stat:tx-dropped", 1, WAIT_MS));
	m = recv_msg(req[0], WAIT_MS);
	assert_body(m, "twice?");
	assert_int_equal(iok_msg_token(m), tok);
	iok_msg_free(m);
	for (int c = 0; c < CLIENTS; c++) {
		expect_nothing(req[c]);
		IOK_OK(iok_close(req[c]));
	}
	for (int i = 0; i < hops; i++) {
		IOK_OK(iok_close(drep[i]));
		IOK_OK(iok_close(dreq[i]));
	}
	IOK_OK(iok_close(rep));
}

static void
test_device(void **state)
{
	(void) state;
	for (int t = 0; t < NTRANS; t++) {
		device_chain(transports[t], 1);
		device_chain(transports[t], 3);
	}
}

static void
test_device_errors(void **state)
{
	iok_socket req, rep, rrep, rreq;
	(void) state;
	IOK_OK(iok_req0_open(&req));
	IOK_OK(iok_rep0_open(&rep));
	IOK_OK(iok_rep0_open_raw(&rrep));
	IOK_OK(iok_req0_open_raw(&rreq));
	assert_int_equal(iok_device(rep, req), IOK_EINVAL);   /* cooked */
	assert_int_equal(iok_device(rrep, rrep), IOK_EINVAL); /* rep to rep */
	IOK_OK(iok_device(rrep, rreq));
	assert_int_equal(iok_device(rrep, rreq), IOK_EBUSY);
	IOK_OK(iok_close(req));
	IOK_OK(iok_close(rep));
	IOK_OK(iok_close(rrep));
	IOK_OK(iok_close(rreq));
}

/* A backtrace at the hop limit passes; one over it is dropped.  Built with
 * a chain of 7 devices (8 hops) and then ttl-max lowered on the server. */
static void
test_ttl_through_devices(void **state)
{
	enum { HOPS = 7 };
	iok_socket rep, req, drep[HOPS], dreq[HOPS];
	char       url[256];
	(void) state;
	IOK_OK(iok_rep0_open(&rep));
	listen_any(rep, "inproc", url, sizeof(url));
	for (int i = 0; i < HOPS; i++) {
		IOK_OK(iok_rep0_open_raw(&drep[i]));
		IOK_OK(iok_req0_open_raw(&dreq[i]));
		IOK_OK(iok_dial(dreq[i], url, NULL, IOK_FLAG_NONBLOCK));
		listen_any(drep[i], "inproc", url, sizeof(url));
		IOK_OK(iok_device(drep[i], dreq[i]));
	}
	IOK_OK(iok_req0_open(&req));
	IOK_OK(iok_dial(req, url, NULL, IOK_FLAG_NONBLOCK));
	wait_pipes(req, 1);
	send_str(req, "eight words");
	expect_str(rep, "eight words"); /* 7 pipe ids + the id = ttl-max */
	send_str(rep, "back");
	expect_str(req, "back");
	IOK_OK(iok_socket_set_int(rep, IOK_OPT_MAXTTL, 7));
	send_str(req, "one too many");
	assert_true(tu_wait_stat(rep, "stat:rx-dropped", 1, WAIT_MS));
	assert_int_equal(tu_stat(rep, "stat:rx-malformed"), 0);
	IOK_OK(iok_socket_set_int(rep, IOK_OPT_MAXTTL, 8));
	send_str(req, "fine again");
	expect_str(rep, "fine again");
	IOK_OK(iok_close(req));
	for (int i = 0; i < HOPS; i++) {
		IOK_OK(iok_close(drep[i]));
		IOK_OK(iok_close(dreq[i]));
	}
	IOK_OK(iok_close(rep));
}

/* --------------------------------------------------- raw TCP peer */

static int
tcp_connect(int port)
{
	struct sockaddr_in sa  = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port) };
	int                fd  = socket(AF_INET, SOCK_STREAM, 0);
	int                one = 1;
	sa.sin_addr.s_addr     = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
	(void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void
write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n > 0) {
		ssize_t k = write(fd, b, n);
		assert_true(k > 0);
		b += k;
		n -= (size_t) k;
	}
}

static void
read_all(int fd, void *p, size_t n)
{
	uint8_t *b = p;
	while (n > 0) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		assert_int_equal(poll(&pfd, 1, WAIT_MS), 1);
		ssize_t k = read(fd, b, n);
		assert_true(k > 0);
		b += k;
		n -= (size_t) k;
	}
}

/* SP handshake as protocol proto; checks the peer's. */
static void
sp_handshake(int fd, uint16_t proto, uint16_t peer)
{
	uint8_t hs[8] = { 0, 'S', 'P', 0, (uint8_t) (proto >> 8), (uint8_t) proto, 0, 0 };
	uint8_t in[8];
	write_all(fd, hs, 8);
	read_all(fd, in, 8);
	assert_int_equal(in[0], 0);
	assert_int_equal(in[1], 'S');
	assert_int_equal(in[2], 'P');
	assert_int_equal((in[4] << 8) | in[5], peer);
}

static void
put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t) (v >> 24);
	p[1] = (uint8_t) (v >> 16);
	p[2] = (uint8_t) (v >> 8);
	p[3] = (uint8_t) v;
}

static uint32_t
get_u32(const uint8_t *p)
{
	return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8) | p[3];
}

static void
send_frame(int fd, const void *body, size_t len)
{
	uint8_t pre[8];
	for (int i = 0; i < 8; i++) {
		pre[i] = (uint8_t) ((uint64_t) len >> (56 - 8 * i));
	}
	write_all(fd, pre, 8);
	write_all(fd, body, len);
}

static size_t
recv_frame(int fd, uint8_t *body, size_t cap)
{
	uint8_t  pre[8];
	uint64_t len = 0;
	read_all(fd, pre, 8);
	for (int i = 0; i < 8; i++) {
		len = (len << 8) | pre[i];
	}
	assert_true(len <= cap);
	read_all(fd, body, (size_t) len);
	return (size_t) len;
}

/* A hand-written req peer sends a rep bad headers: short, no id word
 * (no high bit before the end), a backtrace over ttl-max.  Each is
 * dropped and counted, and the same connection is then served. */
static void
test_bad_input_to_rep(void **state)
{
	iok_socket   rep;
	iok_listener l;
	int          port;
	uint8_t      f[128];
	(void) state;

	IOK_OK(iok_rep0_open(&rep));
	IOK_OK(iok_listen(rep, "tcp://127.0.0.1:0", &l, 0));
	IOK_OK(iok_listener_get_int(l, IOK_OPT_TCP_BOUND_PORT, &port));
	int fd = tcp_connect(port);
	sp_handshake(fd, 0x30, 0x31);
	wait_pipes(rep, 1);

	send_frame(fd, "ab", 2); /* short */
	assert_true(tu_wait_stat(rep, "stat:rx-malformed", 1, WAIT_MS));
	put_u32(f, 0x00000001u); /* a hop, then nothing: no request id */
	send_frame(fd, f, 4);
	assert_true(tu_wait_stat(rep, "stat:rx-malformed", 2, WAIT_MS));
	put_u32(f, 0x00000001u); /* no high bit, then body bytes */
	memcpy(f + 4, "\x01\x02", 2);
	send_frame(fd, f, 6);
	assert_true(tu_wait_stat(rep, "stat:rx-malformed", 3, WAIT_MS));
	for (int i = 0; i < 8; i++) { /* 8 hops, then the id: 9 words */
		put_u32(f + 4 * i, (uint32_t) (i + 1));
	}
	put_u32(f + 32, 0x80000009u);
	memcpy(f + 36, "far", 3);
	send_frame(fd, f, 39);
	assert_true(tu_wait_stat(rep, "stat:rx-dropped", 1, WAIT_MS));
	assert_int_equal(tu_stat(rep, "stat:rx-malformed"), 3);
	assert_int_equal(tu_stat(rep, "stat:rx-msgs"), 0);

	/* Exactly ttl-max words (7 hops + id) pass, and the reply carries the
	 * whole backtrace back. */
	for (int i = 0; i < 7; i++) {
		put_u32(f + 4 * i, (uint32_t) (100 + i));
	}
	put_u32(f + 28, 0x80000042u);
	memcpy(f + 32, "good", 4);
	send_frame(fd, f, 36);
	expect_str(rep, "good");
	send_str(rep, "fine");
	size_t n = recv_frame(fd, f, sizeof(f));
	assert_int_equal(n, 36);
	for (int i = 0; i < 7; i++) {
		assert_int_equal(get_u32(f + 4 * i), 100 + i);
	}
	assert_int_equal(get_u32(f + 28), 0x80000042u);
	assert_memory_equal(f + 32, "fine", 4);
	assert_int_equal(tu_stat(rep, "stat:pipes"), 1); /* still connected */
	close(fd);
	IOK_OK(iok_close(rep));
}

/* A hand-written rep peer sends a req bad replies: short, an id without
 * the high bit, an unknown id; then the right one is delivered. */
static void
test_bad_input_to_req(void **state)
{
	iok_socket         req;
	struct sockaddr_in sa  = { .sin_family = AF_INET };
	socklen_t          sl  = sizeof(sa);
	int                lfd = socket(AF_INET, SOCK_STREAM, 0);
	uint8_t            f[128];
	char               url[64];
	(void) state;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *) &sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *) &sa, &sl), 0);
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", ntohs(sa.sin_port));
	IOK_OK(iok_req0_open(&req));
	IOK_OK(iok_dial(req, url, NULL, IOK_FLAG_NONBLOCK));
	int fd = accept(lfd, NULL, NULL);
	assert_true(fd >= 0);
	sp_handshake(fd, 0x31, 0x30);
	send_str(req, "question");
	size_t n = recv_frame(fd, f, sizeof(f));
	assert_int_equal(n, 4 + 8);
	uint32_t id = get_u32(f);
	assert_true(id & 0x80000000u);
	assert_memory_equal(f + 4, "question", 8);

	send_frame(fd, "xy", 2);
	assert_true(tu_wait_stat(req, "stat:rx-malformed", 1, WAIT_MS));
	put_u32(f, id & 0x7fffffffu); /* the id without its high bit */
	memcpy(f + 4, "bad", 3);
	send_frame(fd, f, 7);
	assert_true(tu_wait_stat(req, "stat:rx-malformed", 2, WAIT_MS));
	put_u32(f, id ^ 0x00000100u); /* someone else's request */
	send_frame(fd, f, 7);
	assert_true(tu_wait_stat(req, "stat:rx-dropped", 1, WAIT_MS));
	expect_nothing(req);
	put_u32(f, id);
	memcpy(f + 4, "answer", 6);
	send_frame(fd, f, 10);
	expect_str(req, "answer");
	assert_int_equal(tu_stat(req, "stat:pipes"), 1);
	close(fd);
	close(lfd);
	IOK_OK(iok_close(req));
}

/* ------------------------------------------------------------- fork */

/* In a forked child, the parent's outstanding requests are forgotten:
 * nothing is resent, no completion comes for them. */
static void
test_fork_forgets(void **state)
{
	iok_socket req, rep;
	uint64_t   tok;
	(void) state;
#if defined(__SANITIZE_THREAD__)
	skip(); /* TSan cannot start threads after a multi-threaded fork */
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
	skip();
#endif
#endif
	pair_up("tcp", &req, &rep);
	IOK_OK(iok_socket_set_ms(req, IOK_OPT_REQ_TIMEOUT, 100));
	IOK_OK(iok_request(req, mkmsg("parent's"), &tok, 0));
	iok_msg *in  = recv_msg(rep, WAIT_MS);
	pid_t    pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		iok_msg *m = NULL;
		int      rv;
		(void) iok_socket_set_ms(req, IOK_OPT_RECVTIMEO, 500);
		rv = iok_recvmsg(req, &m, 0);
		_exit(rv == IOK_ETIMEDOUT ? 0 : 1);
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* The parent still gets its completion. */
	iok_msg *m = recv_msg(req, WAIT_MS);
	assert_int_equal(iok_msg_token(m), tok);
	assert_int_equal(iok_msg_status(m), IOK_ETIMEDOUT);
	iok_msg_free(m);
	iok_msg_free(in);
	IOK_OK(iok_close(req));
	IOK_OK(iok_close(rep));
}

/* ------------------------------------------------- the id hash table */

/* patterns/idmap.c's table (internal, reached through the static
 * library). */
#include "patterns/idmap.h"

/* Random puts and deletes (del, and del_if with a wrong value then the
 * right one), checked against a plain array after every step: deletion
 * by backward shift must never lose a key.  Small key
 * ranges force long collision runs and wrap-around. */
static void
test_map(void **state)
{
	enum { KEYS = 700 };
	static uintptr_t ref[KEYS]; /* value stored for key i+1, 0 = absent */
	unsigned         seed = 777;
	(void) state;
	for (int round = 0; round < 3; round++) {
		ik_idmap *m     = ik_idmap_new();
		uint32_t  count = 0;
		int       range = round == 0 ? 40 : round == 1 ? 300 : KEYS;
		assert_non_null(m);
		memset(ref, 0, sizeof(ref));
		for (int step = 0; step < 60000; step++) {
			int      k   = (int) (rnd(&seed) % (unsigned) range);
			uint64_t key = round == 2 ? ((uint64_t) (k + 1) << 40) | 0x80000000u
			                          : (uint64_t) k + 1;
			if (rnd(&seed) % 3 != 0) {
				uintptr_t v = (uintptr_t) step + 1;
				if (step % 4 == 1) {
					/* add: only where the key is absent. */
					int rv = ik_idmap_add(m, key, (void *) v);
					assert_int_equal(rv, ref[k] != 0 ? IOK_EEXIST : 0);
					if (ref[k] == 0) {
						count++;
						ref[k] = v;
					}
				} else {
					IOK_OK(ik_idmap_put(m, key, (void *) v));
					if (ref[k] == 0) {
						count++;
					}
					ref[k] = v;
				}
			} else if (step % 2 == 0) {
				void *v = ik_idmap_del(m, key);
				assert_true((uintptr_t) v == ref[k]);
				if (ref[k] != 0) {
					count--;
				}
				ref[k] = 0;
			} else {
				/* del_if with another value leaves the key; with its
				 * own it removes it, as del would. */
				uintptr_t other = ref[k] + 1;
				assert_false(ik_idmap_del_if(m, key, (void *) other));
				assert_true((uintptr_t) ik_idmap_get(m, key) == ref[k]);
				assert_true(
				    ik_idmap_del_if(m, key, (void *) ref[k]) == (ref[k] != 0));
				if (ref[k] != 0) {
					count--;
				}
				ref[k] = 0;
			}
			assert_int_equal(ik_idmap_count(m), count);
			if (step % 97 == 0) {
				for (int i = 0; i < range; i++) {
					uint64_t ki = round == 2
					                  ? ((uint64_t) (i + 1) << 40) | 0x80000000u
					                  : (uint64_t) i + 1;
					assert_true((uintptr_t) ik_idmap_get(m, ki) == ref[i]);
				}
			}
		}
		assert_null(ik_idmap_get(m, 0));
		ik_idmap_free(m);
	}
}

int
main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--echo-child") == 0) {
		return echo_child_main(argv[2], argv[3]);
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_map),
		cmocka_unit_test(test_plain_roundtrip),
		cmocka_unit_test(test_watching_receiver),
		cmocka_unit_test(test_spin_then_watch),
		cmocka_unit_test(test_recv_wait),
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_plain_abandon),
		cmocka_unit_test(test_rep_many_clients),
		cmocka_unit_test(test_many_outstanding),
		cmocka_unit_test(test_ten_thousand),
		cmocka_unit_test(test_plain_many_round_trips),
		cmocka_unit_test(test_resend),
		cmocka_unit_test(test_resend_tokens),
		cmocka_unit_test(test_req_timeout),
		cmocka_unit_test(test_req_timeout_no_peer),
		cmocka_unit_test(test_req_timeouts_queue_full),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_pipe_loss_resend),
		cmocka_unit_test(test_reply_pipe_gone),
		cmocka_unit_test(test_reply_twice),
		cmocka_unit_test(test_raw_headers),
		cmocka_unit_test(test_device),
		cmocka_unit_test(test_device_errors),
		cmocka_unit_test(test_ttl_through_devices),
		cmocka_unit_test(test_bad_input_to_rep),
		cmocka_unit_test(test_bad_input_to_req),
		cmocka_unit_test(test_fork_forgets),
	};
	int rv = cmocka_run_group_tests(tests, NULL, NULL);
	iok_fini();
	return rv;
}
