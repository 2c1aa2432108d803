/*
 * test_stats.c - statistics: the log-bucketed latency histogram (exact
 * below 16, within 12.5% above, the whole 64-bit range), request and
 * reply counts and latency of req/rep over a real connection, read as
 * stat:* options, and error completions counted by kind.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "stats.h"

#define WAIT_MS 20000

static void
test_hist(void **state)
{
	ik_hist *h = calloc(1, sizeof(*h));
	(void) state;
	assert_int_equal(ik_hist_quantile(h, 0.5), 0);
	for (uint64_t v = 0; v < 16; v++) {
		ik_hist_record(h, v);
	}
	assert_int_equal(ik_hist_quantile(h, 0.0), 0);
	assert_int_equal(ik_hist_quantile(h, 1.0), 15);
	assert_int_equal(ik_hist_quantile(h, 0.5), 7);
	memset(h, 0, sizeof(*h));
	/* 1..1,000,000: every quantile within 12.5% of the true one. */
	for (uint64_t v = 1; v <= 1000000; v++) {
		ik_hist_record(h, v);
	}
	const double qs[] = { 0.5, 0.9, 0.99, 0.999 };
	for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
		double truth = qs[i] * 1e6;
		double got   = (double) ik_hist_quantile(h, qs[i]);
		assert_true(got >= truth && got <= truth * 1.125 + 1);
	}
	assert_int_equal(h->max, 1000000);
	assert_int_equal(ik_hist_quantile(h, 1.0), 1000000);
	/* Extremes land in the table. */
	ik_hist_record(h, UINT64_MAX);
	assert_int_equal(h->max, UINT64_MAX);
	assert_int_equal(ik_hist_quantile(h, 1.0), UINT64_MAX);
	/* Bucket tops increase strictly and cover the range. */
	for (int i = 1; i < IK_HIST_BUCKETS; i++) {
		assert_true(ik_hist_bucket_high(i) > ik_hist_bucket_high(i - 1));
	}
	assert_int_equal(ik_hist_bucket_high(IK_HIST_BUCKETS - 1), UINT64_MAX);
	free(h);
}

static void
test_reqrep_latency(void **state)
{
	iok_socket rep, req;
	iok_dialer d;
	char       url[256], buf[64];
	size_t     sz;
	const int  n = 100;
	(void) state;
	snprintf(url, sizeof(url), "%s", tu_ipc_url("st"));
	IOK_OK(iok_rep0_open(&rep));
	IOK_OK(iok_req0_open(&req));
	IOK_OK(iok_listen(rep, url, NULL, 0));
	IOK_OK(iok_dial(req, url, &d, IOK_FLAG_SYNC));
	for (int i = 0; i < n; i++) {
		IOK_OK(iok_send(req, "ping", 4, 0));
		sz = sizeof(buf);
		IOK_OK(iok_recv(rep, buf, &sz, 0));
		IOK_OK(iok_send(rep, "pong", 4, 0));
		sz = sizeof(buf);
		IOK_OK(iok_recv(req, buf, &sz, 0));
		assert_int_equal(sz, 4);
	}
	assert_int_equal(tu_stat(req, "stat:requests"), n);
	assert_int_equal(tu_stat(req, "stat:replies"), n);
	/* One at a time: each request, and each reply, a write of its own;
	 * one more each side for the SP handshake. */
	assert_int_equal(tu_stat(req, "stat:tx-writes"), n + 1);
	assert_int_equal(tu_stat(rep, "stat:tx-writes"), n + 1);
	assert_int_equal(tu_stat(req, "stat:latency-count"), n);
	uint64_t p50 = tu_stat(req, "stat:latency-p50");
	uint64_t p90 = tu_stat(req, "stat:latency-p90");
	uint64_t p99 = tu_stat(req, "stat:latency-p99");
	uint64_t mx  = tu_stat(req, "stat:latency-max");
	assert_true(p50 > 0 && p50 <= p90 && p90 <= p99 && p99 <= mx);
	/* Every reply also reaches the dialer's upstream (its "upstreams"). */
	char *ups = NULL;
	IOK_OK(iok_dialer_get_string(d, IOK_OPT_UPSTREAMS, &ups));
	assert_non_null(strstr(ups, " replies=100 "));
	free(ups);
	/* The rep side makes no requests. */
	assert_int_equal(tu_stat(rep, "stat:latency-count"), 0);
	assert_int_equal(tu_stat(rep, "stat:requests"), 0);
	uint64_t v;
	assert_int_equal(iok_socket_get_uint64(req, "stat:latency-p42", &v), IOK_ENOTSUP);
	assert_int_equal(iok_socket_get_uint64(req, "stat:err-bogus", &v), IOK_ENOTSUP);
	IOK_OK(iok_close(req));
	IOK_OK(iok_close(rep));
}

static void
test_errors_by_kind(void **state)
{
	iok_socket rep, req;
	char       url[256];
	iok_msg   *m;
	uint64_t   token;
	(void) state;
	snprintf(url, sizeof(url), "%s", tu_ipc_url("se"));
	IOK_OK(iok_rep0_open(&rep));
	IOK_OK(iok_req0_open(&req));
	IOK_OK(iok_listen(rep, url, NULL, 0));
	IOK_OK(iok_dial(req, url, NULL, IOK_FLAG_SYNC));
	IOK_OK(iok_socket_set_ms(req, IOK_OPT_REQ_TIMEOUT, 20));
	for (int i = 0; i < 3; i++) {
		IOK_OK(iok_msg_alloc(&m, 0));
		IOK_OK(iok_request(req, m, &token, 0));
		IOK_OK(iok_recvmsg(req, &m, 0)); /* the rep never answers */
		assert_int_equal(iok_msg_status(m), IOK_ETIMEDOUT);
		iok_msg_free(m);
	}
	assert_int_equal(tu_stat(req, "stat:err-timedout"), 3);
	assert_int_equal(tu_stat(req, "stat:err-connreset"), 0);
	assert_int_equal(tu_stat(req, "stat:replies"), 0);
	IOK_OK(iok_close(req));
	IOK_OK(iok_close(rep));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hist),
		cmocka_unit_test(test_reqrep_latency),
		cmocka_unit_test(test_errors_by_kind),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
