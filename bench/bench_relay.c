/*
 * bench_relay.c - the floor of many requests in flight between two threads
 * of one process, with and without a third thread in the middle.  No
 * library: a requester keeps --par requests in flight to an answerer,
 * through queues of 8-byte ids, each a mutex, a futex word to sleep on and
 * a flag saying someone sleeps there (a wake-up only for a sleeper, only on
 * empty -> non-empty).  A consumer takes everything queued under one lock;
 * a producer adds one id per lock, as an application's send does.
 *
 *   bench_relay direct  requester <-> answerer (libzmq's inproc: two threads)
 *   bench_relay relay   requester <-> relay <-> answerer (iok's inproc: every
 *                       message crosses the kernel thread, which moves whole
 *                       batches)
 *   bench_relay relay-epoll   the same, but the relay sleeps in epoll_wait
 *                       on an eventfd its producers write, as iok's kernel
 *                       thread does (libuv's uv_async)
 *
 * What iok's inproc figure reads against: the relay row is what any design
 * with a thread in the middle pays on this machine, the direct row what a
 * design without one can reach.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define QCAP 4096 /* more than --par can ever fill */

struct queue {
	pthread_mutex_t mu;
	uint64_t        item[QCAP];
	size_t          head, len;
	atomic_uint     seq; /* bumped on every empty -> non-empty push */
	int             sleeping;
	int             efd, epfd; /* relay-epoll: the relay's queue wakes through these */
};

static struct queue to_relay, to_answerer, to_requester;
static long         count;
static int          par;
static atomic_int   done;

static void
q_init(struct queue *q)
{
	memset(q, 0, sizeof(*q));
	pthread_mutex_init(&q->mu, NULL);
	q->efd = q->epfd = -1;
}

static void
q_use_epoll(struct queue *q)
{
	struct epoll_event ev = { .events = EPOLLIN };

	q->efd     = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	q->epfd    = epoll_create1(EPOLL_CLOEXEC);
	ev.data.fd = q->efd;
	if (q->efd < 0 || q->epfd < 0 || epoll_ctl(q->epfd, EPOLL_CTL_ADD, q->efd, &ev) != 0) {
		perror("bench_relay: eventfd/epoll");
		exit(1);
	}
}

static void
q_wake(struct queue *q, int all)
{
	if (q->efd >= 0) {
		uint64_t one = 1;

		if (write(q->efd, &one, sizeof(one)) < 0) {
			/* cannot overflow here */
		}
		return;
	}
	syscall(SYS_futex, &q->seq, FUTEX_WAKE_PRIVATE, all ? 1 << 30 : 1, NULL, NULL, 0);
}

static void
q_sleep(struct queue *q, unsigned seq)
{
	if (q->efd >= 0) {
		struct epoll_event ev;
		uint64_t           v;

		if (epoll_wait(q->epfd, &ev, 1, -1) == 1 && read(q->efd, &v, sizeof(v)) < 0) {
			/* another wake-up took it */
		}
		return;
	}
	syscall(SYS_futex, &q->seq, FUTEX_WAIT_PRIVATE, seq, NULL, NULL, 0);
}

/* Adds n ids (one lock); wakes a sleeper if the queue was empty. */
static void
q_push(struct queue *q, const uint64_t *v, size_t n)
{
	int wake = 0;

	pthread_mutex_lock(&q->mu);
	if (q->len + n > QCAP) {
		fprintf(stderr, "bench_relay: queue overflow\n");
		exit(1);
	}
	if (q->len == 0 && n > 0) {
		atomic_fetch_add(&q->seq, 1);
		wake = q->sleeping;
	}
	for (size_t i = 0; i < n; i++)
		q->item[(q->head + q->len + i) % QCAP] = v[i];
	q->len += n;
	pthread_mutex_unlock(&q->mu);
	if (wake)
		q_wake(q, 0);
}

/* Takes everything queued (at least one id), sleeping while there is none. */
static size_t
q_take(struct queue *q, uint64_t *out)
{
	size_t n;

	pthread_mutex_lock(&q->mu);
	while (q->len == 0) {
		unsigned seq = atomic_load(&q->seq);

		if (atomic_load(&done)) {
			pthread_mutex_unlock(&q->mu);
			return 0;
		}
		q->sleeping++;
		pthread_mutex_unlock(&q->mu);
		q_sleep(q, seq);
		pthread_mutex_lock(&q->mu);
		q->sleeping--;
	}
	n = q->len;
	for (size_t i = 0; i < n; i++)
		out[i] = q->item[(q->head + i) % QCAP];
	q->head = (q->head + n) % QCAP;
	q->len  = 0;
	pthread_mutex_unlock(&q->mu);
	return n;
}

static struct queue *req_out; /* where the requester sends */
static struct queue *ans_out; /* where the answerer replies */

#define REPLY (1ull << 63)

/* The relay moves each batch on whole, requests one way, replies the other. */
static void *
relay_main(void *arg)
{
	uint64_t in[QCAP], req[QCAP], rep[QCAP];
	size_t   n;

	(void) arg;
	while ((n = q_take(&to_relay, in)) > 0) {
		size_t nq = 0, np = 0;

		for (size_t i = 0; i < n; i++) {
			if (in[i] & REPLY)
				rep[np++] = in[i];
			else
				req[nq++] = in[i];
		}
		q_push(&to_answerer, req, nq);
		q_push(&to_requester, rep, np);
	}
	return NULL;
}

static void *
answerer_main(void *arg)
{
	uint64_t in[QCAP];
	size_t   n;

	(void) arg;
	while ((n = q_take(&to_answerer, in)) > 0) {
		for (size_t i = 0; i < n; i++) {
			uint64_t r = in[i] | REPLY;

			q_push(ans_out, &r, 1); /* one reply per send */
		}
	}
	return NULL;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void
wake_all(void)
{
	struct queue *qs[] = { &to_relay, &to_answerer, &to_requester };

	atomic_store(&done, 1);
	for (int i = 0; i < 3; i++) {
		pthread_mutex_lock(&qs[i]->mu);
		atomic_fetch_add(&qs[i]->seq, 1);
		pthread_mutex_unlock(&qs[i]->mu);
		q_wake(qs[i], 1);
	}
}

int
main(int argc, char **argv)
{
	pthread_t       relay, answerer;
	int             relayed;
	long            sent = 0, got = 0;
	static uint64_t in[QCAP];
	double          t0, secs;

	if (argc < 2 || (strcmp(argv[1], "direct") && strcmp(argv[1], "relay") &&
	                    strcmp(argv[1], "relay-epoll"))) {
		fprintf(stderr, "usage: bench_relay direct|relay|relay-epoll [--par K (64)] "
		                "[--count N (600000)]\n");
		return 2;
	}
	relayed = strcmp(argv[1], "direct") != 0;
	par     = 64;
	count   = 600000;
	for (int i = 2; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--par") == 0)
			par = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--count") == 0)
			count = atol(argv[i + 1]);
	}
	if (par < 1 || par > QCAP / 4 || count < par) {
		fprintf(stderr, "bench_relay: --par 1..%d, --count >= --par\n", QCAP / 4);
		return 2;
	}
	q_init(&to_relay);
	q_init(&to_answerer);
	q_init(&to_requester);
	if (strcmp(argv[1], "relay-epoll") == 0)
		q_use_epoll(&to_relay);
	req_out = relayed ? &to_relay : &to_answerer;
	ans_out = relayed ? &to_relay : &to_requester;
	if (relayed)
		pthread_create(&relay, NULL, relay_main, NULL);
	pthread_create(&answerer, NULL, answerer_main, NULL);

	t0 = now_s();
	for (; sent < par; sent++) {
		uint64_t r = (uint64_t) sent;

		q_push(req_out, &r, 1);
	}
	while (got < count) {
		size_t n = q_take(&to_requester, in);

		for (size_t i = 0; i < n; i++) {
			if ((in[i] & ~REPLY) != (uint64_t) got) {
				fprintf(stderr, "bench_relay: reply %llu out of order (want %ld)\n",
				    (unsigned long long) (in[i] & ~REPLY), got);
				return 1;
			}
			got++;
			if (sent < count) {
				uint64_t r = (uint64_t) sent++;

				q_push(req_out, &r, 1); /* one request per send */
			}
		}
	}
	secs = now_s() - t0;
	wake_all();
	if (relayed)
		pthread_join(relay, NULL);
	pthread_join(answerer, NULL);
	printf("RESULT lib=relay mode=%s n=%ld par=%d secs=%.6f req_per_s=%.1f\n", argv[1], count,
	    par, secs, (double) count / secs);
	return 0;
}
