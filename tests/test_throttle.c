/*
 * test_throttle.c - throttling: the send queue's byte limit, the send-rate
 * token bucket, req:max-inflight, each with the documented outcome
 * (IOK_EAGAIN for non-blocking sends, IOK_ETIMEDOUT after the send
 * timeout) and counted in the stats; and a 10-second flood of 64 KiB
 * requests against a rep that reads them and never answers, whose RSS
 * must stay under a bound that follows from the limits.
 */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define WAIT_MS 20000
#define BIG (64 * 1024)

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define IOK_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define IOK_SANITIZED 1
#endif
#endif

static void
test_send_bytes_limit(void **state)
{
	iok_socket push;
	char      *big = calloc(1, BIG);
	(void) state;
	IOK_OK(iok_push0_open(&push)); /* no peer: everything stays queued */
	IOK_OK(iok_socket_set_size(push, IOK_OPT_SENDBUF_BYTES, 100000));
	size_t v;
	IOK_OK(iok_socket_get_size(push, IOK_OPT_SENDBUF_BYTES, &v));
	assert_int_equal(v, 100000);
	/* One message always fits in an empty queue; the next would pass
	 * the limit. */
	IOK_OK(iok_send(push, big, BIG, IOK_FLAG_NONBLOCK));
	assert_int_equal(iok_send(push, big, BIG, IOK_FLAG_NONBLOCK), IOK_EAGAIN);
	IOK_OK(iok_socket_set_ms(push, IOK_OPT_SENDTIMEO, 20));
	assert_int_equal(iok_send(push, big, BIG, 0), IOK_ETIMEDOUT);
	/* Small ones still fit under the limit. */
	IOK_OK(iok_send(push, big, 1000, IOK_FLAG_NONBLOCK));
	assert_true(tu_stat(push, "stat:send-waits") >= 2);
	/* Lifting the limit makes room at once. */
	IOK_OK(iok_socket_set_size(push, IOK_OPT_SENDBUF_BYTES, 0));
	IOK_OK(iok_send(push, big, BIG, IOK_FLAG_NONBLOCK));
	IOK_OK(iok_close(push));
	free(big);
}

static void
test_send_rate(void **state)
{
	iok_socket push, pull;
	char       url[128], buf[16];
	const int  n = 30, rate = 100, burst = 10;
	(void) state;
	snprintf(url, sizeof(url), "inproc://throttle-rate-%d", (int) getpid());
	IOK_OK(iok_push0_open(&push));
	IOK_OK(iok_pull0_open(&pull));
	IOK_OK(iok_listen(pull, url, NULL, 0));
	IOK_OK(iok_dial(push, url, NULL, IOK_FLAG_SYNC));
	assert_int_equal(iok_socket_set_int(push, IOK_OPT_SEND_BURST, 0), IOK_EINVAL);
	IOK_OK(iok_socket_set_int(push, IOK_OPT_SEND_BURST, burst));
	IOK_OK(iok_socket_set_int(push, IOK_OPT_SEND_RATE, rate));
	uint64_t t0 = tu_now_ms();
	for (int i = 0; i < n; i++) {
		snprintf(buf, sizeof(buf), "%d", i);
		IOK_OK(iok_send(push, buf, strlen(buf) + 1, 0));
	}
	for (int i = 0; i < n; i++) {
		char want[16];
		assert_int_equal(tu_recv_str(pull, buf, sizeof(buf), WAIT_MS), 0);
		snprintf(want, sizeof(want), "%d", i);
		assert_string_equal(buf, want);
	}
	/* A lower bound only (the bucket cannot release faster): the burst
	 * at once, the rest at the rate. */
	assert_true(tu_now_ms() - t0 >= (uint64_t) ((n - burst) * 1000 / rate) - 10);
	assert_true(tu_stat(push, "stat:rate-delays") >= 1);
	/* Off again: nothing held. */
	IOK_OK(iok_socket_set_int(push, IOK_OPT_SEND_RATE, 0));
	IOK_OK(iok_send(push, "x", 2, 0));
	assert_int_equal(tu_recv_str(pull, buf, sizeof(buf), WAIT_MS), 0);
	IOK_OK(iok_close(push));
	IOK_OK(iok_close(pull));
}

static void
test_req_max_inflight(void **state)
{
	iok_socket rep, req;
	char       url[256], buf[64];
	iok_msg   *m;
	uint64_t   token;
	int        sent = 0, rv;
	size_t     sz;
	(void) state;
	snprintf(url, sizeof(url), "%s", tu_ipc_url("mi"));
	IOK_OK(iok_rep0_open(&rep));
	IOK_OK(iok_req0_open(&req));
	IOK_OK(iok_listen(rep, url, NULL, 0));
	IOK_OK(iok_dial(req, url, NULL, IOK_FLAG_SYNC));
	IOK_OK(iok_socket_set_int(req, IOK_OPT_REQ_MAXINFLIGHT, 10));
	IOK_OK(iok_socket_set_int(req, IOK_OPT_SENDBUF, 5));
	IOK_OK(iok_socket_set_ms(req, IOK_OPT_SENDTIMEO, 1000));
	/* 10 go out, 5 wait in the send queue, the 16th times out. */
	for (;;) {
		IOK_OK(iok_msg_alloc(&m, 0));
		IOK_OK(iok_msg_append(m, "q", 1));
		if ((rv = iok_request(req, m, &token, 0)) != 0) {
			iok_msg_free(m);
			break;
		}
		sent++;
	}
	assert_int_equal(rv, IOK_ETIMEDOUT);
	assert_int_equal(sent, 15);
	assert_true(tu_wait_stat(rep, "stat:rx-msgs", 10, WAIT_MS));
	assert_int_equal(tu_stat(req, "stat:requests"), 10);
	assert_true(tu_stat(req, "stat:send-waits") >= 1);
	/* One answer lets one more go. */
	sz = sizeof(buf);
	IOK_OK(iok_recv(rep, buf, &sz, 0));
	IOK_OK(iok_send(rep, buf, sz, 0));
	assert_true(tu_wait_stat(req, "stat:requests", 11, WAIT_MS));
	IOK_OK(iok_close(req));
	IOK_OK(iok_close(rep));
}

/* Queued receive messages, from the kernel's own report. */
static int
recv_queue_len(iok_socket s)
{
	char *text, want[64];
	int   n = -1;
	IOK_OK(iok_debug_text("stats", &text));
	snprintf(want, sizeof(want), "socket=%d ", iok_socket_id(s));
	const char *line = strstr(text, want);
	const char *rq   = line != NULL ? strstr(line, "recv_queue=") : NULL;
	if (rq != NULL) {
		n = atoi(rq + 11);
	}
	iok_strfree(text);
	return n;
}

static void
test_recv_bytes_limit(void **state)
{
	iok_socket push, pull;
	char       url[256];
	char      *big  = calloc(1, BIG);
	int        sent = 0, rv;
	(void) state;
	snprintf(url, sizeof(url), "%s", tu_ipc_url("rb"));
	IOK_OK(iok_push0_open(&push));
	IOK_OK(iok_pull0_open(&pull));
	IOK_OK(iok_socket_set_size(pull, IOK_OPT_RECVBUF_BYTES, 4 * BIG));
	IOK_OK(iok_socket_set_size(push, IOK_OPT_SENDBUF_BYTES, 4 * BIG));
	IOK_OK(iok_listen(pull, url, NULL, 0));
	IOK_OK(iok_dial(push, url, NULL, IOK_FLAG_SYNC));
	IOK_OK(iok_socket_set_ms(push, IOK_OPT_SENDTIMEO, 200));
	/* The puller never reads: its queue stops at the byte limit, the
	 * connection stops reading, and the pusher's own queue fills. */
	while ((rv = iok_send(push, big, BIG, 0)) == 0) {
		sent++;
		assert_true(sent < 100000);
	}
	assert_int_equal(rv, IOK_ETIMEDOUT);
	int queued = recv_queue_len(pull);
	assert_true(queued >= 1 && queued <= 4);
	/* Reading drains everything that was sent, in order of arrival. */
	for (int i = 0; i < sent; i++) {
		size_t sz = BIG;
		IOK_OK(iok_socket_set_ms(pull, IOK_OPT_RECVTIMEO, WAIT_MS));
		IOK_OK(iok_recv(pull, big, &sz, 0));
		assert_int_equal(sz, BIG);
	}
	IOK_OK(iok_close(push));
	IOK_OK(iok_close(pull));
	free(big);
}

/* By default each queue stops at 16 MiB of bodies as well as at 1024
 * messages: 1 MiB messages to a puller that never reads pile up in the two
 * queues and the connection's buffers, not 2,048 of them. */
static void
test_default_bytes_limits(void **state)
{
	iok_socket push, pull;
	char       url[256];
	size_t     v, mib = 1 << 20;
	char      *big  = calloc(1, mib);
	int        sent = 0, rv;
	(void) state;
	snprintf(url, sizeof(url), "%s", tu_ipc_url("db"));
	IOK_OK(iok_push0_open(&push));
	IOK_OK(iok_pull0_open(&pull));
	IOK_OK(iok_socket_get_size(push, IOK_OPT_SENDBUF_BYTES, &v));
	assert_int_equal(v, 16 * mib);
	IOK_OK(iok_socket_get_size(pull, IOK_OPT_RECVBUF_BYTES, &v));
	assert_int_equal(v, 16 * mib);
	IOK_OK(iok_socket_set_size(pull, IOK_OPT_RECVMAXSZ, 2 * mib));
	IOK_OK(iok_listen(pull, url, NULL, 0));
	IOK_OK(iok_dial(push, url, NULL, IOK_FLAG_SYNC));
	IOK_OK(iok_socket_set_ms(push, IOK_OPT_SENDTIMEO, 200));
	while ((rv = iok_send(push, big, mib, 0)) == 0) {
		sent++;
		assert_true(sent < 2048);
	}
	assert_int_equal(rv, IOK_ETIMEDOUT);
	/* 16 + 16 queued, and what the connection holds: a few MiB. */
	assert_true(sent >= 32 && sent <= 48);
	int queued = recv_queue_len(pull);
	assert_true(queued >= 1 && queued <= 16);
	IOK_OK(iok_socket_set_ms(pull, IOK_OPT_RECVTIMEO, WAIT_MS));
	for (int i = 0; i < sent; i++) {
		size_t sz = mib;
		IOK_OK(iok_recv(pull, big, &sz, 0));
		assert_int_equal(sz, mib);
	}
	IOK_OK(iok_close(push));
	IOK_OK(iok_close(pull));
	free(big);
}

/* A sender waiting for room under a byte limit of 100,000 wakes when the
 * queue has room for its message: an 80,000-byte one (more than half the
 * limit) behind 40,000 bytes (less than half) when the queue empties, a
 * 40,000-byte one behind three of 30,000 once the queue is down to half. */
struct waiting_send {
	iok_socket push;
	size_t     len;
	int        rv;
};

static void *
send_waiting(void *arg)
{
	struct waiting_send *w   = arg;
	char                *buf = calloc(1, w->len);
	w->rv                    = iok_send(w->push, buf, w->len, 0);
	free(buf);
	return NULL;
}

static void
test_send_waiter_wakes(void **state)
{
	static const size_t first[2][4] = { { 40000, 0 }, { 30000, 30000, 30000, 0 } };
	static const size_t second[2]   = { 80000, 40000 };
	(void) state;
	for (int k = 0; k < 2; k++) {
		iok_socket          push, pull;
		pthread_t           th;
		char                url[256], *big = calloc(1, BIG);
		struct waiting_send w;
		size_t              sz;
		snprintf(url, sizeof(url), "%s", tu_ipc_url("ww"));
		IOK_OK(iok_push0_open(&push));
		IOK_OK(iok_socket_set_size(push, IOK_OPT_SENDBUF_BYTES, 100000));
		/* No send timeout: a timed wait would end in the room anyway. */
		IOK_OK(iok_socket_set_ms(push, IOK_OPT_SENDTIMEO, IOK_DURATION_INFINITE));
		for (int i = 0; first[k][i] != 0; i++) { /* no peer yet: they stay */
			IOK_OK(iok_send(push, big, first[k][i], IOK_FLAG_NONBLOCK));
		}
		w.push = push;
		w.len  = second[k];
		w.rv   = -1;
		assert_int_equal(pthread_create(&th, NULL, send_waiting, &w), 0);
		assert_true(tu_wait_stat(push, "stat:send-waits", 1, WAIT_MS));
		IOK_OK(iok_pull0_open(&pull));
		IOK_OK(iok_socket_set_ms(pull, IOK_OPT_RECVTIMEO, WAIT_MS));
		IOK_OK(iok_listen(pull, url, NULL, 0));
		IOK_OK(iok_dial(push, url, NULL, 0));
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += WAIT_MS / 1000;
		if (pthread_timedjoin_np(th, NULL, &until) != 0) {
			IOK_OK(iok_close(push)); /* lets the sender go */
			pthread_join(th, NULL);
			fail_msg("a sender waiting for %zu bytes was not woken", second[k]);
		}
		IOK_OK(w.rv);
		for (int i = 0; first[k][i] != 0; i++) {
			sz = BIG;
			IOK_OK(iok_recv(pull, big, &sz, 0));
			assert_int_equal(sz, first[k][i]);
		}
		sz = BIG;
		IOK_OK(iok_recv(pull, big, &sz, 0));
		assert_int_equal(sz, second[k]);
		IOK_OK(iok_close(push));
		IOK_OK(iok_close(pull));
		free(big);
	}
}

/* ------------------------------------------------------------- flood */

static volatile int flood_stop;

static void *
discard_reader(void *arg)
{
	iok_socket rep = *(iok_socket *) arg;
	while (!__atomic_load_n(&flood_stop, __ATOMIC_RELAXED)) {
		iok_msg *m;
		if (iok_recvmsg(rep, &m, 0) == 0) {
			iok_msg_free(m); /* read, never answered */
		}
	}
	return NULL;
}

static size_t
rss_bytes(void)
{
	long  pages = 0, res = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f != NULL) {
		if (fscanf(f, "%ld %ld", &pages, &res) != 2) {
			res = 0;
		}
		fclose(f);
	}
	return (size_t) res * (size_t) sysconf(_SC_PAGESIZE);
}

static void
test_flood_rss_bounded(void **state)
{
	iok_socket   rep, req;
	pthread_t    th;
	char         url[256];
	const int    max_inflight = 256;
	const size_t qbytes       = 4u << 20;
	const char  *secs_env     = getenv("IOK_FLOOD_SECONDS");
	uint64_t     secs         = secs_env != NULL ? (uint64_t) atoi(secs_env) : 10;
	uint64_t     sent = 0, timeouts = 0;
	size_t       base, peak         = 0;
	(void) state;

	snprintf(url, sizeof(url), "%s", tu_ipc_url("fl"));
	IOK_OK(iok_rep0_open(&rep));
	IOK_OK(iok_req0_open(&req));
	IOK_OK(iok_socket_set_ms(rep, IOK_OPT_RECVTIMEO, 100));
	IOK_OK(iok_listen(rep, url, NULL, 0));
	IOK_OK(iok_dial(req, url, NULL, IOK_FLAG_SYNC));
	IOK_OK(iok_socket_set_int(req, IOK_OPT_REQ_MAXINFLIGHT, max_inflight));
	IOK_OK(iok_socket_set_size(req, IOK_OPT_SENDBUF_BYTES, qbytes));
	IOK_OK(iok_socket_set_ms(req, IOK_OPT_SENDTIMEO, 100));
	flood_stop = 0;
	assert_int_equal(pthread_create(&th, NULL, discard_reader, &rep), 0);
	base = rss_bytes();

	uint64_t end = tu_now_ms() + secs * 1000;
	while (tu_now_ms() < end) {
		iok_msg *m;
		uint64_t token;
		int      rv;
		IOK_OK(iok_msg_alloc(&m, BIG));
		memset(iok_msg_body(m), 'f', BIG);
		if ((rv = iok_request(req, m, &token, 0)) == 0) {
			sent++;
		} else {
			assert_int_equal(rv, IOK_ETIMEDOUT);
			iok_msg_free(m);
			timeouts++;
		}
		if ((sent + timeouts) % 64 == 0) {
			size_t r = rss_bytes();
			peak     = r > peak ? r : peak;
		}
	}
	__atomic_store_n(&flood_stop, 1, __ATOMIC_RELAXED);
	pthread_join(th, NULL);
	print_message(
	    "flood: %llu requests accepted, %llu send timeouts, RSS %zu -> peak %zu KiB\n",
	    (unsigned long long) sent, (unsigned long long) timeouts, base / 1024, peak / 1024);
	/* The peer never answers: exactly max_inflight went out. */
	assert_int_equal(tu_stat(req, "stat:requests"), max_inflight);
	assert_true(timeouts > 0);
	assert_true(tu_stat(req, "stat:send-waits") >= timeouts);
#ifndef IOK_SANITIZED
	/* What the limits allow: the requests in flight (kept for resends)
	 * and the send queue's bytes, plus the connection's buffers and
	 * the allocator's slack: 64 MiB over the start is far above that
	 * (about 20 MiB) and far below an unthrottled flood (GBs). */
	size_t allowed = (size_t) max_inflight * BIG + qbytes;
	assert_true(allowed < (32u << 20));
	if (peak > base + (64u << 20)) {
		fail_msg("RSS grew by %zu KiB, limits allow about %zu KiB", (peak - base) / 1024,
		    allowed / 1024);
	}
#endif
	IOK_OK(iok_close(req));
	IOK_OK(iok_close(rep));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_send_bytes_limit),
		cmocka_unit_test(test_send_rate),
		cmocka_unit_test(test_req_max_inflight),
		cmocka_unit_test(test_recv_bytes_limit),
		cmocka_unit_test(test_default_bytes_limits),
		cmocka_unit_test(test_send_waiter_wakes),
		cmocka_unit_test(test_flood_rss_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
