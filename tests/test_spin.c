/*
 * test_spin.c - the spins before sleeping.  The kernel loop's (kernel.c):
 * after it wakes a thread that answers, the loop waits a moment for the
 * answer instead of sleeping; an answer posted meanwhile is run without a
 * wake-up and never lost, I/O ends the spin at once, and
 * IOK_KERNEL_SPIN_US=0 turns it off.  A receive's (sockrecv.c): a
 * receiver whose socket answers spins for its message before it sleeps,
 * catches it, backs off after spins that miss, and IOK_RECV_SPIN_US=0
 * turns it off.  Every test sets the budgets before the kernel starts
 * and stops the kernel (iok_fini) at its end.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sock.h" /* to see that the answering thread is waiting */
#include "testutil.h"

#define T_MS 10000 /* generous bound for anything that should happen */
#define ROUND_TRIPS 200
#define LONG_SPIN "1000000" /* 1 s: a spin ends by what it waits for */

/* One field of the debug endpoint's "kernel" line. */
static unsigned long long
kernel_field(const char *name)
{
	char              *text, key[64];
	unsigned long long v = 0;
	IOK_OK(iok_debug_text("stats", &text));
	char *line = strstr(text, "kernel ");
	assert_non_null(line);
	snprintf(key, sizeof(key), " %s=", name);
	char *at = strstr(line, key);
	assert_non_null(at);
	v = strtoull(at + strlen(key), NULL, 10);
	iok_strfree(text);
	return v;
}

struct answerer {
	iok_socket      rep;
	ik_sock        *sleeper; /* answer only once its receiver sleeps */
	atomic_int      got;     /* requests received */
	atomic_int      hold;    /* wait for `go` before answering */
	pthread_mutex_t mu;
	pthread_cond_t  cv;
	int             go;
	int             rv;
};

/* Sets *flag under mu and wakes whoever waits on cv for it. */
static void
set_and_wake(pthread_mutex_t *mu, pthread_cond_t *cv, int *flag)
{
	pthread_mutex_lock(mu);
	*flag = 1;
	pthread_cond_broadcast(cv);
	pthread_mutex_unlock(mu);
}

/* A receiver of s is asleep on its futex (past any spin). */
static int
receiver_asleep(void *arg)
{
	ik_sock *s = arg;
	return atomic_load(&s->recv_ev.sleepers) > 0;
}

/* Echoes every request, after `go` when told to hold, and after its
 * requester fell asleep when sleeper is set. */
static void *
answer(void *arg)
{
	struct answerer *a = arg;
	char             buf[64];
	for (;;) {
		size_t n = sizeof(buf);
		if ((a->rv = iok_recv(a->rep, buf, &n, 0)) != 0) {
			break;
		}
		atomic_fetch_add(&a->got, 1);
		if (atomic_load(&a->hold)) {
			pthread_mutex_lock(&a->mu);
			while (!a->go) {
				pthread_cond_wait(&a->cv, &a->mu);
			}
			pthread_mutex_unlock(&a->mu);
		}
		if (a->sleeper != NULL && !tu_wait_for(receiver_asleep, a->sleeper, T_MS)) {
			a->rv = IOK_ETIMEDOUT;
			break;
		}
		if ((a->rv = iok_send(a->rep, buf, n, 0)) != 0) {
			break;
		}
	}
	return NULL;
}

static void
start_pair(iok_socket *req, struct answerer *a, pthread_t *t, const char *url)
{
	memset(a, 0, sizeof(*a));
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	IOK_OK(iok_rep0_open(&a->rep));
	IOK_OK(iok_req0_open(req));
	IOK_OK(iok_socket_set_ms(a->rep, IOK_OPT_RECVTIMEO, T_MS));
	IOK_OK(iok_socket_set_ms(*req, IOK_OPT_RECVTIMEO, T_MS));
	IOK_OK(iok_listen(a->rep, url, NULL, 0));
	IOK_OK(iok_dial(*req, url, NULL, 0));
	assert_int_equal(pthread_create(t, NULL, answer, a), 0);
}

static void
stop_pair(iok_socket req, struct answerer *a, pthread_t t)
{
	IOK_OK(iok_close(req));
	IOK_OK(iok_close(a->rep)); /* the answerer's receive ends */
	pthread_join(t, NULL);
	assert_int_equal(a->rv, IOK_ECLOSED);
	iok_fini();
	unsetenv("IOK_KERNEL_SPIN_US");
	unsetenv("IOK_RECV_SPIN_US");
}

/* Answers posted while the loop spins are run, in order, none lost, and
 * the spin says it caught them. */
static void
test_spin_catches_answers(void **state)
{
	iok_socket      req;
	struct answerer a;
	pthread_t       t;
	(void) state;
	setenv("IOK_KERNEL_SPIN_US", LONG_SPIN, 1);
	start_pair(&req, &a, &t, "inproc://spin-catch");
	tu_echo_round_trips(req, ROUND_TRIPS);
	assert_int_equal(kernel_field("spin_us"), 1000000);
	assert_true(kernel_field("spin-caught") > 0);
	assert_true(kernel_field("spins") >= kernel_field("spin-caught"));
	stop_pair(req, &a, t);
}

/* IOK_KERNEL_SPIN_US=0 and IOK_RECV_SPIN_US=0: the same traffic, and
 * neither the loop nor a receive ever spins. */
static void
test_spin_off(void **state)
{
	iok_socket      req;
	struct answerer a;
	pthread_t       t;
	(void) state;
	setenv("IOK_KERNEL_SPIN_US", "0", 1);
	setenv("IOK_RECV_SPIN_US", "0", 1);
	start_pair(&req, &a, &t, "inproc://spin-off");
	tu_echo_round_trips(req, ROUND_TRIPS);
	assert_int_equal(kernel_field("spin_us"), 0);
	assert_int_equal(kernel_field("spins"), 0);
	assert_int_equal(tu_stat(req, "stat:recv-spins"), 0);
	assert_int_equal(tu_stat(a.rep, "stat:recv-spins"), 0);
	stop_pair(req, &a, t);
}

static int
answerer_waiting(void *arg)
{
	ik_sock *s = arg;
	return atomic_load(&s->recv_waiters) > 0;
}

static int
answerer_got_one(void *arg)
{
	struct answerer *a = arg;
	return atomic_load(&a->got) > 0;
}

/* While the loop spins for an answer that does not come, a connection and
 * a message arriving over TCP end the spin: they are handled at once, not
 * after the budget (1 s here), and the spin says I/O ended it. */
static void
test_io_ends_spin(void **state)
{
	iok_socket      req, pull;
	struct answerer a;
	pthread_t       t;
	ik_sock        *s;
	char            url[64], buf[16];
	size_t          n    = sizeof(buf);
	int             port = tu_free_port();
	(void) state;
	setenv("IOK_KERNEL_SPIN_US", LONG_SPIN, 1);
	start_pair(&req, &a, &t, "inproc://spin-io");
	atomic_store(&a.hold, 1);
	IOK_OK(iok_pull0_open(&pull));
	IOK_OK(iok_socket_set_ms(pull, IOK_OPT_RECVTIMEO, T_MS));
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	IOK_OK(iok_listen(pull, url, NULL, 0));

	/* The spin is armed by waking a waiting answerer. */
	IOK_OK(ik_sock_hold(a.rep, &s));
	assert_true(tu_wait_for(answerer_waiting, s, T_MS));
	ik_sock_rele(s);
	IOK_OK(iok_send(req, "held", 4, 0));
	assert_true(tu_wait_for(answerer_got_one, &a, T_MS));

	int fd = tu_sp_raw_connect(port, 0x50); /* push0 */
	tu_sp_raw_frame(fd, 2, "ok", 2);
	IOK_OK(iok_recv(pull, buf, &n, 0));
	assert_int_equal(n, 2);
	assert_memory_equal(buf, "ok", 2);
	assert_true(kernel_field("spin-io") >= 1);

	set_and_wake(&a.mu, &a.cv, &a.go);
	n = sizeof(buf);
	IOK_OK(iok_recv(req, buf, &n, 0));
	assert_int_equal(n, 4);
	close(fd);
	IOK_OK(iok_close(pull));
	stop_pair(req, &a, t);
}

/* A command that holds the kernel thread until released. */
struct blocker {
	ik_cmd          cmd;
	pthread_mutex_t mu;
	pthread_cond_t  cv;
	int             running, release;
};

static void
block_k(ik_cmd *c)
{
	struct blocker *b = (struct blocker *) c;
	set_and_wake(&b->mu, &b->cv, &b->running);
	pthread_mutex_lock(&b->mu);
	while (!b->release) {
		pthread_cond_wait(&b->cv, &b->mu);
	}
	pthread_mutex_unlock(&b->mu);
}

/* A send while the loop is busy does not wake it (no eventfd write): the
 * loop takes it before it next sleeps, so it is neither lost nor late,
 * and the "kernel" line counts it as posted-awake. */
static void
test_send_to_awake_loop(void **state)
{
	iok_socket     push, pull;
	struct blocker b = { .cmd.fn = block_k };
	char           buf[16];
	size_t         n = sizeof(buf);
	(void) state;
	setenv("IOK_KERNEL_SPIN_US", "0", 1); /* awake only while working */
	pthread_mutex_init(&b.mu, NULL);
	pthread_cond_init(&b.cv, NULL);
	IOK_OK(iok_push0_open(&push));
	IOK_OK(iok_pull0_open(&pull));
	IOK_OK(iok_socket_set_ms(pull, IOK_OPT_RECVTIMEO, T_MS));
	IOK_OK(iok_listen(pull, "inproc://awake", NULL, 0));
	IOK_OK(iok_dial(push, "inproc://awake", NULL, 0));
	IOK_OK(iok_send(push, "warm", 4, 0));
	IOK_OK(iok_recv(pull, buf, &n, 0));
	unsigned long long awake0 = kernel_field("posted-awake");
	assert_true(kernel_field("wakeups") > 0); /* the loop slept before */

	(void) ik_cmd_post(&b.cmd);
	pthread_mutex_lock(&b.mu);
	while (!b.running) {
		pthread_cond_wait(&b.cv, &b.mu);
	}
	pthread_mutex_unlock(&b.mu);
	IOK_OK(iok_send(push, "busy", 4, 0)); /* the loop is in block_k */
	set_and_wake(&b.mu, &b.cv, &b.release);

	n = sizeof(buf);
	IOK_OK(iok_recv(pull, buf, &n, 0));
	assert_int_equal(n, 4);
	assert_memory_equal(buf, "busy", 4);
	assert_true(kernel_field("posted-awake") >= awake0 + 1);
	IOK_OK(iok_close(push));
	IOK_OK(iok_close(pull));
	iok_fini();
	unsetenv("IOK_KERNEL_SPIN_US");
	pthread_mutex_destroy(&b.mu);
	pthread_cond_destroy(&b.cv);
}

/* A command that posts itself again every time it runs, until told to
 * stop: the worst a busy application thread can do to the loop. */
struct reposter {
	ik_cmd      cmd;
	atomic_int  stop, stopped;
	atomic_long runs;
};

static void
repost_k(ik_cmd *c)
{
	struct reposter *r = (struct reposter *) c;
	atomic_fetch_add(&r->runs, 1);
	if (!atomic_load(&r->stop)) {
		(void) ik_cmd_post(c);
	} else {
		atomic_store(&r->stopped, 1);
	}
}

static int
reposting(void *arg)
{
	return atomic_load(&((struct reposter *) arg)->runs) > 1000;
}

static int
repost_stopped(void *arg)
{
	return atomic_load(&((struct reposter *) arg)->stopped);
}

/* The loop runs the commands posted while it works, and the tasks they
 * leave, before it polls; commands that never stop coming must not keep
 * it there: a TCP connection made meanwhile is accepted and its message
 * received. */
static void
test_commands_leave_io_its_turn(void **state)
{
	struct reposter r = { .cmd.fn = repost_k };
	iok_socket      push, pull;
	char            url[64], buf[16];
	size_t          n = sizeof(buf);
	(void) state;
	IOK_OK(iok_pull0_open(&pull)); /* starts the kernel */
	(void) ik_cmd_post(&r.cmd);
	assert_true(tu_wait_for(reposting, &r, T_MS));

	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", tu_free_port());
	IOK_OK(iok_push0_open(&push));
	IOK_OK(iok_socket_set_ms(pull, IOK_OPT_RECVTIMEO, T_MS));
	IOK_OK(iok_socket_set_ms(push, IOK_OPT_SENDTIMEO, T_MS));
	IOK_OK(iok_listen(pull, url, NULL, 0));
	IOK_OK(iok_dial(push, url, NULL, 0));
	IOK_OK(iok_send(push, "ok", 2, 0));
	IOK_OK(iok_recv(pull, buf, &n, 0));
	assert_int_equal(n, 2);
	assert_memory_equal(buf, "ok", 2);

	atomic_store(&r.stop, 1);
	assert_true(tu_wait_for(repost_stopped, &r, T_MS));
	IOK_OK(iok_close(push));
	IOK_OK(iok_close(pull));
	iok_fini();
}

/* A receive that answers spins for its message, and with a budget of a
 * second every spin catches it: both sides of a round trip (the req for
 * its reply, the rep for the next request). A pull receives without
 * spinning. */
static void
test_recv_spin_catches(void **state)
{
	iok_socket      req, push, pull;
	struct answerer a;
	pthread_t       t;
	char            buf[16];
	size_t          n = sizeof(buf);
	(void) state;
	setenv("IOK_RECV_SPIN_US", LONG_SPIN, 1);
	start_pair(&req, &a, &t, "inproc://recv-spin");
	tu_echo_round_trips(req, ROUND_TRIPS);
	assert_true(tu_stat(req, "stat:recv-spins") > 0);
	assert_int_equal(tu_stat(req, "stat:recv-spin-hits"), tu_stat(req, "stat:recv-spins"));
	assert_true(tu_stat(a.rep, "stat:recv-spin-hits") > 0);

	IOK_OK(iok_push0_open(&push));
	IOK_OK(iok_pull0_open(&pull));
	IOK_OK(iok_socket_set_ms(pull, IOK_OPT_RECVTIMEO, T_MS));
	IOK_OK(iok_listen(pull, "inproc://recv-spin-pull", NULL, 0));
	IOK_OK(iok_dial(push, "inproc://recv-spin-pull", NULL, 0));
	for (int i = 0; i < 20; i++) {
		IOK_OK(iok_send(push, "p", 1, 0));
		n = sizeof(buf);
		IOK_OK(iok_recv(pull, buf, &n, 0));
		assert_int_equal(n, 1);
	}
	assert_int_equal(tu_stat(pull, "stat:recv-spins"), 0);
	IOK_OK(iok_close(push));
	IOK_OK(iok_close(pull));
	stop_pair(req, &a, t);
}

/* IOK_OPT_RECV_SPIN_US sets one socket's budget over the process's: a
 * req set to 0 never spins while its rep, on the process's second, does;
 * the option reads back the budget in force, -1 goes back to the
 * process's, and values out of range are refused. */
static void
test_recv_spin_option(void **state)
{
	iok_socket      req;
	struct answerer a;
	pthread_t       t;
	int             us;
	(void) state;
	setenv("IOK_RECV_SPIN_US", LONG_SPIN, 1);
	start_pair(&req, &a, &t, "inproc://recv-spin-option");
	IOK_OK(iok_socket_get_int(req, IOK_OPT_RECV_SPIN_US, &us));
	assert_int_equal(us, 1000000);
	IOK_OK(iok_socket_set_int(req, IOK_OPT_RECV_SPIN_US, 0));
	IOK_OK(iok_socket_get_int(req, IOK_OPT_RECV_SPIN_US, &us));
	assert_int_equal(us, 0);
	tu_echo_round_trips(req, ROUND_TRIPS);
	assert_int_equal(tu_stat(req, "stat:recv-spins"), 0);
	assert_true(tu_stat(a.rep, "stat:recv-spin-hits") > 0);

	IOK_OK(iok_socket_set_int(req, IOK_OPT_RECV_SPIN_US, -1));
	IOK_OK(iok_socket_get_int(req, IOK_OPT_RECV_SPIN_US, &us));
	assert_int_equal(us, 1000000);
	tu_echo_round_trips(req, ROUND_TRIPS);
	assert_true(tu_stat(req, "stat:recv-spin-hits") > 0);
	assert_int_equal(iok_socket_set_int(req, IOK_OPT_RECV_SPIN_US, 1000001), IOK_EINVAL);
	assert_int_equal(iok_socket_set_int(req, IOK_OPT_RECV_SPIN_US, -2), IOK_EINVAL);
	stop_pair(req, &a, t);
}

/* Spins that catch nothing make the next ones rarer: every reply here
 * comes only once the requester sleeps, so each spin misses, and after
 * one the next 1, 2, 4, 8 receives do not spin: of 11 round trips, the
 * 1st, 3rd, 6th and 11th spin.  Every reply still arrives. */
static void
test_recv_spin_backs_off(void **state)
{
	iok_socket      req;
	struct answerer a;
	pthread_t       t;
	ik_sock        *s;
	(void) state;
	setenv("IOK_RECV_SPIN_US", "1", 1);
	start_pair(&req, &a, &t, "inproc://recv-spin-backoff");
	IOK_OK(ik_sock_hold(req, &s));
	a.sleeper = s; /* read by the answerer only after a request */
	tu_echo_round_trips(req, 11);
	assert_int_equal(tu_stat(req, "stat:recv-spins"), 4);
	assert_int_equal(tu_stat(req, "stat:recv-spin-hits"), 0);
	ik_sock_rele(s);
	stop_pair(req, &a, t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spin_catches_answers),
		cmocka_unit_test(test_spin_off),
		cmocka_unit_test(test_io_ends_spin),
		cmocka_unit_test(test_send_to_awake_loop),
		cmocka_unit_test(test_commands_leave_io_its_turn),
		cmocka_unit_test(test_recv_spin_catches),
		cmocka_unit_test(test_recv_spin_option),
		cmocka_unit_test(test_recv_spin_backs_off),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
