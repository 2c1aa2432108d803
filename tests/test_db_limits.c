/*
 * test_db_limits.c - pipelined-db over a real redis-server at its limits:
 * replies far bigger than SP's 1 MiB (no limit by default), a configured
 * receive limit that fails only the request whose reply hits it while the
 * shared connection and every request around it carry on, and requests
 * failing fast while no connection can be made (db:fail-fast).
 *
 * No sleeps as synchronisation: the tests wait on replies and statistics;
 * the timeouts given only bound a failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redisutil.h"

#define T_MS 60000 /* bounds a failure; success never waits for it */
#define BIG (64u << 20)
#define NINCR 100

/* A db socket on tu_srv named name, with a receive limit unless 0 (then the
 * default is checked to be none); waits for the connection. */
static iok_socket
open_db(const char *name, size_t recv_max)
{
	iok_socket s;
	size_t     v = 1;
	char       url[256];
	IOK_OK(iok_socket_open(&s, "pipelined-db"));
	IOK_OK(iok_socket_get_size(s, IOK_OPT_RECVMAXSZ, &v));
	assert_int_equal(v, 0); /* database replies: no limit by default */
	if (recv_max != 0) {
		IOK_OK(iok_socket_set_size(s, IOK_OPT_RECVMAXSZ, recv_max));
	}
	IOK_OK(iok_dial(s, tu_redis_url(&tu_srv, name, url, sizeof(url)), NULL, IOK_FLAG_SYNC));
	return s;
}

static char *
big_value(void)
{
	char *v = malloc(BIG);
	assert_non_null(v);
	for (size_t i = 0; i < BIG; i++) {
		v[i] = (char) ('a' + (i * 7 + i / 4096) % 26);
	}
	return v;
}

static void
set_big(tu_db *c, const char *v)
{
	const char *argv[] = { "SET", "big", v };
	size_t      lens[] = { 3, 3, BIG };
	char        buf[16];
	iok_msg    *r = tu_db_call(c, tu_cmdv(3, argv, lens), 0, T_MS);
	assert_int_equal(iok_msg_status(r), 0);
	assert_string_equal(tu_str(r, buf, sizeof(buf)), "OK");
	iok_msg_free(r);
}

/* NINCR/2 INCRs, GET big, NINCR/2 INCRs, all in flight at once; every INCR
 * must answer first + its position, in order.  Returns the GET's reply. */
static iok_msg *
burst(tu_db *c, long long first)
{
	uint64_t toks[NINCR + 1];
	iok_msg *big = NULL;
	char     buf[32], want[32];
	for (int i = 0; i <= NINCR; i++) {
		toks[i] = tu_db_send(c,
		    i == NINCR / 2 ? tu_cmd("GET", "big", NULL) : tu_cmd("INCR", "n", NULL), 0, 0);
	}
	long long n = first;
	for (int i = 0; i <= NINCR; i++) {
		iok_msg *m = tu_db_wait(c, toks[i], T_MS, NULL);
		if (i == NINCR / 2) {
			big = m;
			continue;
		}
		if (iok_msg_status(m) != 0) {
			fail_msg("INCR %d: %s", i, iok_strerror(iok_msg_status(m)));
		}
		snprintf(want, sizeof(want), "%lld", n++);
		assert_string_equal(tu_str(m, buf, sizeof(buf)), want);
		iok_msg_free(m);
	}
	return big;
}

/* CLIENT LIST through c: connections called name. */
static int
count_clients(tu_db *c, const char *name)
{
	char         pat[128];
	int          n    = 0;
	iok_msg     *r    = tu_db_call(c, tu_cmd("CLIENT", "LIST", NULL), 0, T_MS);
	ik_resp_item it   = tu_top(r);
	char        *text = strndup((const char *) it.str, it.len);
	snprintf(pat, sizeof(pat), " name=%s ", name);
	for (char *p = strstr(text, pat); p != NULL; p = strstr(p + 1, pat)) {
		n++;
	}
	free(text);
	iok_msg_free(r);
	return n;
}

static void
test_big_reply_no_limit(void **state)
{
	(void) state;
	tu_db      c;
	char      *v = big_value();
	iok_socket s = open_db("big0", 0);

	tu_db_start(&c, s);
	set_big(&c, v);
	iok_msg *m = burst(&c, 1);
	assert_int_equal(iok_msg_status(m), 0);
	ik_resp_item it = tu_top(m);
	assert_int_equal(it.type, IK_RESP_BULK);
	assert_int_equal(it.len, BIG);
	assert_memory_equal(it.str, v, BIG);
	iok_msg_free(m);
	assert_int_equal(count_clients(&c, "big0"), 1);
	assert_int_equal(tu_stat(s, "stat:pipes-opened"), 1);
	assert_int_equal(tu_stat(s, "stat:rx-oversize"), 0);
	assert_int_equal(tu_db_stop(&c), 0);
	IOK_OK(iok_close(s));
	free(v);
}

/* With a 1 MiB limit the big GET alone fails, with IOK_EMSGSIZE; every
 * INCR around it succeeds on the same connection, never reconnected. */
static void
test_big_reply_limited(void **state)
{
	(void) state;
	tu_db      c;
	char      *v = big_value();
	iok_socket s = open_db("big1", 1u << 20);
	char       buf[32];

	tu_db_start(&c, s);
	set_big(&c, v);
	free(v);
	for (int round = 0; round < 2; round++) {
		iok_msg *m = burst(&c, 1 + round * NINCR);
		assert_int_equal(iok_msg_status(m), IOK_EMSGSIZE);
		assert_int_equal(iok_msg_len(m), 0);
		iok_msg_free(m);
	}
	/* A verbatim-free small reply and an aggregate still frame right. */
	iok_msg *r = tu_db_call(&c, tu_cmd("ECHO", "after", NULL), 0, T_MS);
	assert_string_equal(tu_str(r, buf, sizeof(buf)), "after");
	iok_msg_free(r);
	assert_int_equal(count_clients(&c, "big1"), 1);
	assert_int_equal(tu_stat(s, "stat:pipes-opened"), 1);
	assert_int_equal(tu_stat(s, "stat:reconnects"), 0);
	assert_int_equal(tu_stat(s, "stat:rx-oversize"), 2);
	assert_int_equal(tu_stat(s, "stat:proto-errors"), 0);
	assert_int_equal(tu_db_stop(&c), 0);
	IOK_OK(iok_close(s));
}

/* An oversize aggregate (many small items, none over the limit by itself)
 * is skipped too; the plain API sees IOK_EMSGSIZE from iok_recv. */
static void
test_big_aggregate_plain(void **state)
{
	(void) state;
	iok_socket s = open_db("bigagg", 64 * 1024);
	iok_msg   *m;
	char       buf[32];
	char       val[512];
	size_t     sz;
	memset(val, 'x', sizeof(val) - 1);
	val[sizeof(val) - 1] = '\0';

	for (int i = 0; i < 400; i++) { /* ~200 KiB as a list */
		IOK_OK(iok_sendmsg(s, tu_cmd("RPUSH", "l", val, NULL), 0));
		IOK_OK(iok_recvmsg(s, &m, 0));
		iok_msg_free(m);
	}
	IOK_OK(iok_sendmsg(s, tu_cmd("LRANGE", "l", "0", "-1", NULL), 0));
	sz = sizeof(buf);
	assert_int_equal(iok_recv(s, buf, &sz, 0), IOK_EMSGSIZE);
	IOK_OK(iok_sendmsg(s, tu_cmd("LLEN", "l", NULL), 0));
	IOK_OK(iok_recvmsg(s, &m, 0));
	assert_string_equal(tu_str(m, buf, sizeof(buf)), "400");
	iok_msg_free(m);
	assert_int_equal(tu_stat(s, "stat:pipes-opened"), 1);
	IOK_OK(iok_close(s));
}

/* Replies from just under the smallest big block to over the largest
 * (64 KiB to 16 MiB + 16 KiB, src/bigpool.h) are read straight into a
 * block: each value comes back byte-exact, alone and back to back, and an
 * MGET whose array outgrows the block its first element chose too. */
static void
test_big_values_in_blocks(void **state)
{
	(void) state;
	static const size_t sizes[] = { 65536 - 100, 65536 + 1, 100000, (1u << 20) + 5, 3u << 20,
		(16u << 20) + 20 * 1024 };
	enum { N = sizeof(sizes) / sizeof(sizes[0]) };
	tu_db      c;
	iok_socket s = open_db("blocks", 0);
	char      *v = big_value(); /* BIG bytes: every size's value is a prefix */
	char       key[16], buf[16];
	uint64_t   toks[N];

	tu_db_start(&c, s);
	for (size_t i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "b%zu", i);
		const char *argv[] = { "SET", key, v };
		size_t      lens[] = { 3, strlen(key), sizes[i] };
		iok_msg    *r      = tu_db_call(&c, tu_cmdv(3, argv, lens), 0, T_MS);
		assert_string_equal(tu_str(r, buf, sizeof(buf)), "OK");
		iok_msg_free(r);
	}
	for (int round = 0; round < 3; round++) { /* the blocks come round again */
		for (size_t i = 0; i < N; i++) {
			snprintf(key, sizeof(key), "b%zu", i);
			toks[i] = tu_db_send(&c, tu_cmd("GET", key, NULL), 0, 0);
		}
		for (size_t i = 0; i < N; i++) {
			iok_msg     *m  = tu_db_wait(&c, toks[i], T_MS, NULL);
			ik_resp_item it = tu_top(m);
			assert_int_equal(it.type, IK_RESP_BULK);
			assert_int_equal(it.len, sizes[i]);
			assert_memory_equal(it.str, v, sizes[i]);
			iok_msg_free(m);
		}
	}
	iok_msg     *m = tu_db_call(&c, tu_cmd("MGET", "b1", "b3", "b4", "b0", NULL), 0, T_MS);
	ik_resp_iter iter;
	ik_resp_item item;
	size_t       want[] = { sizes[1], sizes[3], sizes[4], sizes[0] }, n = 0;
	ik_resp_iter_init(&iter, iok_msg_body(m), iok_msg_len(m));
	while (ik_resp_iter_next(&iter, &item) == 1) {
		if (item.depth == 1) {
			assert_true(n < 4);
			assert_int_equal(item.len, want[n]);
			assert_memory_equal(item.str, v, want[n]);
			n++;
		}
	}
	assert_int_equal(n, 4);
	iok_msg_free(m);
	assert_int_equal(tu_stat(s, "stat:pipes-opened"), 1);
	assert_int_equal(tu_db_stop(&c), 0);
	IOK_OK(iok_close(s));
	free(v);
}

/* ------------------------------------------------------ db:fail-fast */

static int
ping_ok(void *arg)
{
	tu_db   *c  = arg;
	iok_msg *m  = tu_db_call(c, tu_cmd("PING", NULL), 0, T_MS);
	int      ok = iok_msg_status(m) == 0;
	iok_msg_free(m);
	return ok;
}

/* Nothing listens yet: a request waiting for the first attempt fails with
 * its error when it fails, later ones fail at once; once the server is up
 * they succeed.  With fail-fast off, a request waits for the server. */
static void
test_fail_fast(void **state)
{
	(void) state;
	tu_db      c;
	iok_socket s;
	char       url[256], buf[16];
	bool       ff    = false;
	tu_redis   later = { .port = tu_free_port() };

	if (!tu_redis_available()) {
		skip();
	}
	IOK_OK(iok_socket_open(&s, "pipelined-db"));
	IOK_OK(iok_socket_get_bool(s, IOK_OPT_DB_FAIL_FAST, &ff));
	assert_true(ff);
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECONNMINT, 20));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECONNMAXT, 50));
	tu_db_start(&c, s);
	IOK_OK(iok_dial(s, tu_redis_url(&later, "ff", url, sizeof(url)), NULL, IOK_FLAG_NONBLOCK));
	for (int i = 0; i < 20; i++) {
		iok_msg *m = tu_db_call(&c, tu_cmd("PING", NULL), 0, T_MS);
		assert_int_equal(iok_msg_status(m), IOK_ECONNREFUSED);
		iok_msg_free(m);
	}
	assert_int_equal(tu_stat(s, "db:queued"), 0);

	/* Off: the request waits (no req:timeout) until the server is up. */
	IOK_OK(iok_socket_set_bool(s, IOK_OPT_DB_FAIL_FAST, 0));
	uint64_t tok = tu_db_send(&c, tu_cmd("ECHO", "waited", NULL), 0, 0);
	assert_int_equal(tu_stat(s, "db:queued"), 1);
	assert_int_equal(tu_redis_start(&later), 0);
	iok_msg *m = tu_db_wait(&c, tok, T_MS, NULL);
	assert_int_equal(iok_msg_status(m), 0);
	assert_string_equal(tu_str(m, buf, sizeof(buf)), "waited");
	iok_msg_free(m);

	/* On again, with the server up: requests go through. */
	IOK_OK(iok_socket_set_bool(s, IOK_OPT_DB_FAIL_FAST, 1));
	assert_true(tu_wait_for(ping_ok, &c, T_MS));
	/* Server gone: after the first reconnect attempt fails, fail fast. */
	tu_redis_kill(&later, SIGKILL);
	int seen = 0;
	for (int i = 0; i < 100000 && seen < 5; i++) {
		iok_msg *r  = tu_db_call(&c, tu_cmd("PING", NULL), 0, T_MS);
		int      st = iok_msg_status(r);
		assert_true(st == IOK_ECONNREFUSED || st == IOK_ECONNRESET || st == 0);
		seen += st == IOK_ECONNREFUSED;
		iok_msg_free(r);
	}
	assert_int_equal(seen, 5);
	assert_int_equal(tu_db_stop(&c), 0);
	IOK_OK(iok_close(s));
	tu_redis_stop(&later);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_big_reply_no_limit, tu_redis_setup, tu_redis_teardown),
		cmocka_unit_test_setup_teardown(
		    test_big_reply_limited, tu_redis_setup, tu_redis_teardown),
		cmocka_unit_test_setup_teardown(
		    test_big_aggregate_plain, tu_redis_setup, tu_redis_teardown),
		cmocka_unit_test_setup_teardown(
		    test_big_values_in_blocks, tu_redis_setup, tu_redis_teardown),
		cmocka_unit_test(test_fail_fast),
	};
	if (getenv("IOK_TEST_FILTER") != NULL) {
		cmocka_set_test_filter(getenv("IOK_TEST_FILTER"));
	}
	int rv = cmocka_run_group_tests(tests, NULL, NULL);
	iok_fini();
	return rv;
}
