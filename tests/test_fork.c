/*
 * test_fork.c - handles survive fork (DESIGN §9), and the process has one
 * kernel thread however many sockets and connections it has.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define FORKS 100
#define CHILD_BOUND_MS 30000 /* generous: a deadlock, not slowness */

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#if defined(UNDER_TSAN) || defined(__SANITIZE_ADDRESS__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif

/* The sanitizer runtimes (clang/gcc 12-14) do not hold their allocator
 * locks across fork: a child forked while another thread is inside malloc
 * can deadlock inside the runtime when it starts a thread.  Under them the
 * traffic threads step aside for the instant of each fork; the normal
 * build (and valgrind, in CI) forks with traffic in full flow. */
static pthread_rwlock_t fork_gate = PTHREAD_RWLOCK_INITIALIZER;
#ifdef UNDER_SANITIZER
#define GATE_ENTER() pthread_rwlock_rdlock(&fork_gate)
#define GATE_LEAVE() pthread_rwlock_unlock(&fork_gate)
#else
#define GATE_ENTER() ((void) fork_gate)
#define GATE_LEAVE() ((void) 0)
#endif

static void
test_one_kernel_thread(void **state)
{
	iok_socket s[60];
	char       url[256];
	(void) state;
	int        before = tu_thread_count();
	iok_socket first;
	IOK_OK(iok_pair0_open(&first)); /* starts the kernel thread */
	int with_kernel = tu_thread_count();
#ifndef UNDER_TSAN
	/* (ThreadSanitizer runs a thread of its own, started lazily.) */
	assert_int_equal(with_kernel, before + 1);
#else
	(void) before;
#endif
	/* 20 listeners x 2 dialers over tcp, ipc and inproc. */
	for (int i = 0; i < 20; i++) {
		IOK_OK(iok_pull0_open(&s[i]));
		if (i % 3 == 0) {
			snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", tu_free_port());
		} else if (i % 3 == 1) {
			snprintf(url, sizeof(url), "%s", tu_ipc_url("threads"));
		} else {
			snprintf(url, sizeof(url), "inproc://threads%d", i);
		}
		IOK_OK(iok_listen(s[i], url, NULL, 0));
		for (int k = 0; k < 2; k++) {
			IOK_OK(iok_push0_open(&s[20 + 2 * i + k]));
			IOK_OK(iok_dial(s[20 + 2 * i + k], url, NULL, 0));
		}
	}
	for (int i = 0; i < 20; i++) {
		assert_true(tu_wait_stat(s[i], "stat:pipes", 2, 5000));
	}
	/* Names resolve with c-ares on the loop: still no extra thread. */
	iok_socket r;
	IOK_OK(iok_pair0_open(&r));
	snprintf(url, sizeof(url), "tcp://localhost:%d", tu_free_port());
	assert_int_equal(iok_dial(r, url, NULL, 0), IOK_ECONNREFUSED);
	assert_int_equal(tu_thread_count(), with_kernel);
	IOK_OK(iok_close(r));
	IOK_OK(iok_close(first));
	for (int i = 0; i < 60; i++) {
		IOK_OK(iok_close(s[i]));
	}
}

/* ------------------------------------------------------------ fork test */

static iok_socket tx, rx; /* the parent's own traffic */
static atomic_int stop_traffic;
static atomic_int received, sent, traffic_error;

static void *
sender_main(void *arg)
{
	(void) arg;
	for (int i = 0; !atomic_load(&stop_traffic); i++) {
		char m[16];
		int  rv;
		snprintf(m, sizeof(m), "%d", i);
		GATE_ENTER();
		rv = iok_send(tx, m, strlen(m), 0);
		GATE_LEAVE();
		if (rv != 0) {
			atomic_store(&traffic_error, 1);
			break;
		}
		atomic_fetch_add(&sent, 1);
	}
	return NULL;
}

static void *
receiver_main(void *arg)
{
	(void) arg;
	for (int next = 0;; next++) {
		char   buf[16];
		size_t n = sizeof(buf) - 1;
		int    rv;
		GATE_ENTER();
		rv = iok_recv(rx, buf, &n, IOK_FLAG_NONBLOCK);
		GATE_LEAVE();
		if (rv == IOK_EAGAIN) {
			/* Wait outside the gate, on the pollable descriptor. */
			int fd;
			if (iok_socket_get_int(rx, IOK_OPT_RECVFD, &fd) == 0) {
				struct pollfd p = { .fd = fd, .events = POLLIN };
				(void) poll(&p, 1, 1000);
			}
			next--;
			continue;
		}
		if (rv == IOK_ECLOSED) {
			break;
		}
		if (rv != 0) {
			atomic_store(&traffic_error, 2);
			break;
		}
		buf[n] = '\0';
		if (atoi(buf) != next) { /* lost, duplicated or reordered */
			atomic_store(&traffic_error, 3);
			break;
		}
		atomic_fetch_add(&received, 1);
	}
	return NULL;
}

/* What each child does; returns its exit code. */
static int
child_main(iok_socket inherited, int seq)
{
	iok_socket a, b;
	char       buf[32], want[32];
	int        fds_at_start = tu_fd_count();

	/* A new socket pair of its own. */
	if (iok_pair0_open(&a) || iok_pair0_open(&b))
		return 10;
	iok_socket_set_ms(b, IOK_OPT_RECVTIMEO, 10000);
	if (iok_listen(a, "inproc://child", NULL, 0) ||
	    iok_dial(b, "inproc://child", NULL, IOK_FLAG_NONBLOCK))
		return 11;
	if (iok_send(a, "hi", 2, 0))
		return 12;
	if (tu_recv_str(b, buf, sizeof(buf), 10000) || strcmp(buf, "hi") != 0)
		return 13;
	/* The inherited dialing socket re-dials and carries our message. */
	snprintf(want, sizeof(want), "child %d", seq);
	if (iok_send(inherited, want, strlen(want), 0))
		return 14;
	iok_socket_set_ms(inherited, IOK_OPT_LINGER, 20000);
	if (iok_close(inherited))
		return 15;
	if (iok_close(a) || iok_close(b))
		return 16;
	iok_fini();
	/* The child's kernel closed its copies; nothing new stays open. */
	if (tu_fd_count() > fds_at_start)
		return 17;
	return 0;
}

static void
test_fork_100(void **state)
{
	iok_socket collector, dialer;
	pthread_t  ts, tr;
	char       url[256], url2[256];
	int        got[FORKS] = { 0 };
	(void) state;

	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", tu_free_port());
	snprintf(url2, sizeof(url2), "%s", tu_ipc_url("collector"));
	IOK_OK(iok_pair0_open(&rx));
	IOK_OK(iok_pair0_open(&tx));
	IOK_OK(iok_listen(rx, url, NULL, 0));
	IOK_OK(iok_dial(tx, url, NULL, 0));
	/* Children report over a dialer they inherit. */
	IOK_OK(iok_pull0_open(&collector));
	IOK_OK(iok_socket_set_ms(collector, IOK_OPT_RECVTIMEO, 20000));
	IOK_OK(iok_listen(collector, url2, NULL, 0));
	IOK_OK(iok_push0_open(&dialer));
	IOK_OK(iok_socket_set_ms(dialer, IOK_OPT_RECONNMINT, 1));
	IOK_OK(iok_dial(dialer, url2, NULL, 0));

	int rxfd;
	IOK_OK(iok_socket_get_int(rx, IOK_OPT_RECVFD, &rxfd)); /* made lazily */
	int fds_before = tu_fd_count();
	pthread_create(&ts, NULL, sender_main, NULL);
	pthread_create(&tr, NULL, receiver_main, NULL);

	for (int i = 0; i < FORKS; i++) {
		/* Let traffic flow between forks. */
		int mark = atomic_load(&received);
		while (atomic_load(&received) < mark + 50 && !atomic_load(&traffic_error)) {
			sched_yield();
		}
#ifdef UNDER_SANITIZER
		pthread_rwlock_wrlock(&fork_gate);
#endif
		pid_t pid = fork();
#ifdef UNDER_SANITIZER
		if (pid == 0) {
			pthread_rwlock_init(&fork_gate, NULL);
		} else {
			pthread_rwlock_unlock(&fork_gate);
		}
#endif
		assert_true(pid >= 0);
		if (pid == 0) {
			_exit(child_main(dialer, i));
		}
		/* Wait with a bound: a hang is a failure, not a slow test. */
		int      status = 0;
		uint64_t end    = tu_now_ms() + CHILD_BOUND_MS;
		pid_t    w;
		while ((w = waitpid(pid, &status, WNOHANG)) == 0 && tu_now_ms() < end) {
			struct timespec ts2 = { 0, 2000000 };
			nanosleep(&ts2, NULL);
		}
		if (w == 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			fail_msg("child %d hung", i);
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fail_msg("child %d failed: status %d", i,
			    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		}
	}
	/* Every child's message arrived exactly once. */
	for (int i = 0; i < FORKS; i++) {
		char buf[32];
		int  n;
		IOK_OK(tu_recv_str(collector, buf, sizeof(buf), 20000));
		assert_int_equal(sscanf(buf, "child %d", &n), 1);
		assert_true(n >= 0 && n < FORKS);
		got[n]++;
	}
	for (int i = 0; i < FORKS; i++) {
		assert_int_equal(got[i], 1);
	}
	atomic_store(&stop_traffic, 1);
	pthread_join(ts, NULL);
	/* Everything the parent sent arrives, in order, once. */
	while (atomic_load(&received) < atomic_load(&sent) && !atomic_load(&traffic_error)) {
		sched_yield();
	}
	assert_int_equal(atomic_load(&traffic_error), 0);
	assert_int_equal(atomic_load(&received), atomic_load(&sent));
	assert_true(atomic_load(&sent) > FORKS * 50);
	assert_int_equal(tu_fd_count(), fds_before); /* no descriptor leaked */
	IOK_OK(iok_close(rx));
	pthread_join(tr, NULL);
	IOK_OK(iok_close(tx));
	IOK_OK(iok_close(collector));
	IOK_OK(iok_close(dialer));
}

/* A listener made before the fork keeps accepting in the child (pre-fork
 * servers share one listening port). */
static void
test_prefork_listener(void **state)
{
	iok_socket pull, push;
	char       url[256];
	(void) state;
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", tu_free_port());
	IOK_OK(iok_pull0_open(&pull));
	IOK_OK(iok_listen(pull, url, NULL, 0));
	pid_t pid = fork();
	if (pid == 0) {
		char buf[32];
		int  rv = tu_recv_str(pull, buf, sizeof(buf), 20000);
		_exit(rv == 0 && strcmp(buf, "for the child") == 0 ? 0 : 1);
	}
	/* The parent stops accepting; only the child can take it. */
	IOK_OK(iok_close(pull));
	IOK_OK(iok_push0_open(&push));
	IOK_OK(iok_dial(push, url, NULL, IOK_FLAG_NONBLOCK));
	IOK_OK(iok_send(push, "for the child", 13, 0));
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	IOK_OK(iok_close(push));
}

/* Messages queued before the fork are the parent's: the child never
 * sends or receives them. */
static void
test_queued_not_duplicated(void **state)
{
	iok_socket push, pull;
	char       url[256];
	(void) state;
	snprintf(url, sizeof(url), "%s", tu_ipc_url("dup"));
	IOK_OK(iok_pull0_open(&pull));
	IOK_OK(iok_socket_set_ms(pull, IOK_OPT_RECVTIMEO, 10000));
	IOK_OK(iok_push0_open(&push));
	IOK_OK(iok_send(push, "queued", 6, 0)); /* no peer yet */
	pid_t pid = fork();
	if (pid == 0) {
		iok_msg *m;
		/* Nothing in the child's receive queue either. */
		_exit(iok_recvmsg(pull, &m, IOK_FLAG_NONBLOCK) == IOK_EAGAIN ? 0 : 1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(WEXITSTATUS(status), 0);
	IOK_OK(iok_listen(pull, url, NULL, 0));
	IOK_OK(iok_dial(push, url, NULL, IOK_FLAG_NONBLOCK));
	char buf[16];
	IOK_OK(tu_recv_str(pull, buf, sizeof(buf), 10000));
	assert_string_equal(buf, "queued");
	IOK_OK(iok_socket_set_ms(pull, IOK_OPT_RECVTIMEO, 200));
	assert_int_equal(tu_recv_str(pull, buf, sizeof(buf), 200), IOK_ETIMEDOUT);
	IOK_OK(iok_close(push));
	IOK_OK(iok_close(pull));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_kernel_thread),
		cmocka_unit_test(test_fork_100),
		cmocka_unit_test(test_prefork_listener),
		cmocka_unit_test(test_queued_not_duplicated),
	};
	int rv = cmocka_run_group_tests(tests, NULL, NULL);
	iok_fini();
	return rv;
}
