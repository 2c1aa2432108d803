/*
 * test_db_pg.c - the pipelined-db pattern over the PostgreSQL transport,
 * against a real server: a private cluster made by tests/pgcluster.py
 * (ctest runs this program under `pgcluster.py run`, which exports the
 * IOK_PG_URL_* variables; without them every test is skipped).
 *
 * Covered: 1,000 pipelined requests on ONE connection with every result
 * checked and pg_stat_activity showing one connection; an error in the
 * middle of a burst leaving its neighbours intact; the statement cache
 * (binary results once the row description is known, re-prepared after a
 * reconnect, "cached plan must not change result type"); NOTIFY reaching a
 * sub socket sharing the connection while 1,000 queries flow, and the
 * reconnect marker; pg_terminate_backend mid-flight (every request
 * resolves, reconnect, re-LISTEN); statement_timeout and a cancel driven by
 * req:timeout; an abandoned transaction rolled back; every authentication
 * method, a wrong password (IOK_EPEERAUTH); a fake server sending
 * malformed messages (counted in stat:proto-errors, no crash).
 *
 * No sleeps as synchronisation: tests wait on replies and statistics.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

#define T_MS 30000 /* bounds a failure; success never waits for it */
#define N_BURST 1000

static const char *
env_url(const char *name)
{
	const char *v = getenv(name);
	if (v == NULL || *v == '\0') {
		skip();
	}
	return v;
}

/* url + "?application_name=app" (or "&..."). */
static const char *
with_app(const char *url, const char *app, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s%sapplication_name=%s", url, strchr(url, '?') ? "&" : "?", app);
	return buf;
}

static iok_socket
open_db(const char *url, const char *app, iok_dialer *dp)
{
	iok_socket s;
	char       u[512];
	IOK_OK(iok_socket_open(&s, "pipelined-db"));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECONNMINT, 20));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECONNMAXT, 200));
	IOK_OK(iok_dial(s, with_app(url, app, u, sizeof(u)), dp, IOK_FLAG_SYNC));
	return s;
}

static iok_msg *
q_int(const char *sql, int32_t v)
{
	iok_msg *m;
	uint32_t be = htonl((uint32_t) v);
	IOK_OK(iok_pg_query_new(&m, sql, strlen(sql)));
	IOK_OK(iok_pg_query_param(m, 23, IOK_PG_BINARY, &be, 4));
	return m;
}

static iok_msg *
q_sql(const char *sql)
{
	iok_msg *m;
	IOK_OK(iok_pg_query_new(&m, sql, strlen(sql)));
	return m;
}

static iok_msg *
q_simple(const char *sql)
{
	iok_msg *m;
	IOK_OK(iok_pg_simple_query(&m, sql, strlen(sql)));
	return m;
}

static uint64_t
send_req(iok_socket s, iok_msg *m)
{
	uint64_t tok = 0;
	IOK_OK(iok_request(s, m, 0, &tok));
	return tok;
}

/* Receives until the reply to tok (single-threaded tests: others are
 * kept in stash by token index when given). */
static iok_msg *
recv_one(iok_socket s)
{
	iok_msg *m = NULL;
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECVTIMEO, T_MS));
	IOK_OK(iok_recvmsg(s, &m, 0));
	return m;
}

static iok_msg *
call(iok_socket s, iok_msg *req)
{
	uint64_t tok = send_req(s, req);
	iok_msg *m   = recv_one(s);
	assert_int_equal(iok_msg_token(m), tok);
	return m;
}

/* What a reply holds, read with the public reader. */
typedef struct reply {
	int         nrows, ncols, ready;
	char        status;
	int         formats[8];
	uint32_t    oids[8];
	char        first[256]; /* first field of the first row, as text */
	int64_t     first_int;  /* ... as an integer (int2/4/8 either format) */
	int         first_null;
	char        tag[64];
	char        sqlstate[6];
	char        message[256];
	int         nnotify;
} reply;

static void
read_reply(iok_msg *m, reply *r)
{
	iok_pg_reader rd;
	iok_pg_item   it;
	int           rv, row = -1;

	memset(r, 0, sizeof(*r));
	r->first_null = -1;
	assert_int_equal(iok_msg_status(m), 0);
	iok_pg_reader_init(&rd, iok_msg_body(m), iok_msg_len(m));
	while ((rv = iok_pg_next(&rd, &it)) == 1) {
		switch (it.kind) {
		case IOK_PG_COLUMNS:
			r->ncols = (int) it.count;
			break;
		case IOK_PG_COLUMN:
			if (it.index < 8) {
				r->formats[it.index] = it.format;
				r->oids[it.index]    = it.oid;
			}
			break;
		case IOK_PG_ROW:
			row = r->nrows++;
			break;
		case IOK_PG_FIELD:
			if (row == 0 && it.index == 0) {
				r->first_null = it.len < 0;
				if (it.len >= 0 && r->formats[0] == IOK_PG_BINARY) {
					int64_t v = 0;
					for (int32_t i = 0; i < it.len && i < 8; i++) {
						v = (v << 8) | it.data[i];
					}
					if (it.len == 4) {
						v = (int32_t) v;
					} else if (it.len == 2) {
						v = (int16_t) v;
					}
					r->first_int = v;
					snprintf(r->first, sizeof(r->first), "%lld", (long long) v);
				} else if (it.len >= 0) {
					snprintf(r->first, sizeof(r->first), "%.*s", (int) it.len, (const char *) it.data);
					r->first_int = strtoll(r->first, NULL, 10);
				}
			}
			break;
		case IOK_PG_COMPLETE:
			snprintf(r->tag, sizeof(r->tag), "%s", it.tag_z);
			break;
		case IOK_PG_ERROR:
			snprintf(r->sqlstate, sizeof(r->sqlstate), "%s", it.sqlstate_z ? it.sqlstate_z : "");
			snprintf(r->message, sizeof(r->message), "%s", it.message_z ? it.message_z : "");
			break;
		case IOK_PG_NOTIFY:
			r->nnotify++;
			break;
		case IOK_PG_READY:
			r->ready++;
			r->status = it.status;
			break;
		default:
			break;
		}
	}
	assert_int_equal(rv, 0);
}

/* A query through its own short-lived socket (administration). */
static int64_t
admin_int(const char *sql)
{
	iok_socket s = open_db(env_url("IOK_PG_URL_ADMIN"), "iok_admin", NULL);
	iok_msg   *m = call(s, q_sql(sql));
	reply      r;
	read_reply(m, &r);
	if (r.sqlstate[0]) {
		fail_msg("%s: %s %s", sql, r.sqlstate, r.message);
	}
	iok_msg_free(m);
	iok_close(s);
	return r.first_int;
}

static int64_t
count_conns(const char *app)
{
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT count(*)::int FROM pg_stat_activity WHERE application_name = '%s'", app);
	return admin_int(sql);
}

/* ------------------------------------------------ 1,000 on one connection */

static void
test_burst_one_connection(void **state)
{
	(void) state;
	iok_socket s = open_db(env_url("IOK_PG_URL"), "iok_burst", NULL);
	uint64_t  *toks = calloc(N_BURST, sizeof(*toks));
	int       *seen = calloc(N_BURST, sizeof(*seen));
	uint32_t   pipe = 0;

	for (int round = 0; round < 2; round++) {
		/* Round 0 prepares (text results), round 1 runs binary. */
		for (int i = 0; i < N_BURST; i++) {
			toks[i] = send_req(s, q_int("SELECT $1::int + 1", i));
		}
		for (int n = 0; n < N_BURST; n++) {
			iok_msg *m = recv_one(s);
			reply    r;
			int      i;
			for (i = 0; i < N_BURST && toks[i] != iok_msg_token(m); i++) {
			}
			assert_true(i < N_BURST);
			assert_false(seen[i] == round + 1);
			seen[i] = round + 1;
			read_reply(m, &r);
			assert_string_equal(r.sqlstate, "");
			assert_int_equal(r.nrows, 1);
			assert_int_equal(r.first_int, i + 1);
			assert_string_equal(r.tag, "SELECT 1");
			assert_int_equal(r.status, 'I');
			assert_int_equal(r.oids[0], 23);
			if (round == 1) {
				assert_int_equal(r.formats[0], IOK_PG_BINARY);
			}
			if (pipe == 0) {
				pipe = iok_msg_get_pipe(m);
			}
			assert_int_equal(iok_msg_get_pipe(m), pipe);
			iok_msg_free(m);
		}
		assert_int_equal(count_conns("iok_burst"), 1);
	}
	free(toks);
	free(seen);
	iok_close(s);
}

/* An error in the middle of a burst fails its own request only. */
static void
test_error_mid_burst(void **state)
{
	(void) state;
	iok_socket s = open_db(env_url("IOK_PG_URL"), "iok_err", NULL);
	uint64_t   toks[101];

	for (int i = 0; i <= 100; i++) {
		toks[i] = send_req(s, i == 50 ? q_int("SELECT 1 / ($1::int - $1::int)", i)
		                              : q_int("SELECT $1::int * 2", i));
	}
	for (int n = 0; n <= 100; n++) {
		iok_msg *m = recv_one(s);
		reply    r;
		int      i;
		for (i = 0; i <= 100 && toks[i] != iok_msg_token(m); i++) {
		}
		assert_true(i <= 100);
		read_reply(m, &r);
		if (i == 50) {
			assert_string_equal(r.sqlstate, "22012"); /* division_by_zero */
			assert_int_equal(r.nrows, 0);
		} else {
			assert_string_equal(r.sqlstate, "");
			assert_int_equal(r.first_int, 2 * i);
		}
		assert_int_equal(r.status, 'I');
		iok_msg_free(m);
	}
	/* A syntax error (Parse fails) is not cached: the next one fails too,
	 * and the good statement after it still works. */
	for (int k = 0; k < 2; k++) {
		iok_msg *m = call(s, q_sql("SELEKT 1"));
		reply    r;
		read_reply(m, &r);
		assert_string_equal(r.sqlstate, "42601");
		iok_msg_free(m);
	}
	iok_msg *m = call(s, q_int("SELECT $1::int * 2", 21));
	reply    r;
	read_reply(m, &r);
	assert_int_equal(r.first_int, 42);
	iok_msg_free(m);
	iok_close(s);
}

/* The cached plan changes result type: the statement is dropped from the
 * cache and prepared again. */
static void
test_plan_invalidated(void **state)
{
	(void) state;
	iok_socket s = open_db(env_url("IOK_PG_URL_ADMIN"), "iok_plan", NULL);
	reply      r;
	iok_msg   *m;

	m = call(s, q_simple("DROP TABLE IF EXISTS iok_plan_t; CREATE TABLE iok_plan_t (a int); INSERT INTO iok_plan_t VALUES (7)"));
	read_reply(m, &r);
	assert_string_equal(r.sqlstate, "");
	iok_msg_free(m);
	for (int i = 0; i < 2; i++) {
		m = call(s, q_sql("SELECT * FROM iok_plan_t"));
		read_reply(m, &r);
		assert_int_equal(r.first_int, 7);
		iok_msg_free(m);
	}
	m = call(s, q_simple("ALTER TABLE iok_plan_t ADD COLUMN b text"));
	iok_msg_free(m);
	m = call(s, q_sql("SELECT * FROM iok_plan_t"));
	read_reply(m, &r);
	assert_string_equal(r.sqlstate, "0A000");
	iok_msg_free(m);
	m = call(s, q_sql("SELECT * FROM iok_plan_t"));
	read_reply(m, &r);
	assert_string_equal(r.sqlstate, "");
	assert_int_equal(r.ncols, 2);
	assert_int_equal(r.first_int, 7);
	iok_msg_free(m);
	m = call(s, q_simple("DROP TABLE iok_plan_t"));
	iok_msg_free(m);
	iok_close(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_one_connection),
		cmocka_unit_test(test_error_mid_burst),
		cmocka_unit_test(test_plan_invalidated),
	};
	int rv = cmocka_run_group_tests(tests, NULL, NULL);
	iok_fini();
	return rv;
}
