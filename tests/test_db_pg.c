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
 * malformed messages (counted in stat:proto-errors, no crash); health
 * probes (empty queries) on the idle connection, in order with queries.
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

#include "pgutil.h"

#define T_MS TU_PG_T_MS
#define N_BURST 1000

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
	iok_socket s = tu_pg_socket();
	char       u[512];
	IOK_OK(iok_dial(s, with_app(url, app, u, sizeof(u)), dp, 0));
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

/* A query through its own short-lived socket (administration). */
static int64_t
admin_int(const char *sql)
{
	char        u[512];
	tu_pg_reply r;
	tu_pg_admin(
	    with_app(tu_pg_env("IOK_PG_URL_ADMIN"), "iok_admin", u, sizeof(u)), false, sql, &r);
	return r.first_int;
}

static int64_t
count_conns(const char *app)
{
	char sql[256];
	snprintf(sql, sizeof(sql),
	    "SELECT count(*)::int FROM pg_stat_activity WHERE application_name = '%s'", app);
	return admin_int(sql);
}

/* ------------------------------------------------ 1,000 on one connection */

static void
test_burst_one_connection(void **state)
{
	(void) state;
	iok_socket s    = open_db(tu_pg_env("IOK_PG_URL"), "iok_burst", NULL);
	uint64_t  *toks = calloc(N_BURST, sizeof(*toks));
	int       *seen = calloc(N_BURST, sizeof(*seen));
	uint32_t   pipe = 0;

	for (int round = 0; round < 2; round++) {
		/* Round 0 prepares (text results), round 1 runs binary. */
		for (int i = 0; i < N_BURST; i++) {
			toks[i] = tu_pg_send(s, q_int("SELECT $1::int + 1", i));
		}
		for (int n = 0; n < N_BURST; n++) {
			iok_msg    *m = tu_pg_recv(s);
			tu_pg_reply r;
			int         i;
			for (i = 0; i < N_BURST && toks[i] != iok_msg_token(m); i++) {
			}
			assert_true(i < N_BURST);
			assert_false(seen[i] == round + 1);
			seen[i] = round + 1;
			tu_pg_read(m, &r);
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

/* Health probes (an empty simple query) on the idle connection: their
 * replies (EmptyQueryResponse + ReadyForQuery) are consumed, and the
 * queries sent right behind them get their own results. */
static void
test_health_probe(void **state)
{
	iok_socket s;
	char       u[512];
	int        sent = 0;
	(void) state;
	const char *url = tu_pg_env("IOK_PG_URL");
	IOK_OK(iok_socket_open(&s, "pipelined-db"));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_HEALTH_INTERVAL, 20));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_HEALTH_TIMEOUT, T_MS));
	IOK_OK(iok_dial(s, with_app(url, "iok_probe", u, sizeof(u)), NULL, 0));
	for (int round = 0; round < 10; round++) {
		uint64_t toks[3];
		assert_true(tu_wait_stat(s, "stat:probes", (uint64_t) round + 1, T_MS));
		for (int i = 0; i < 3; i++) {
			toks[i] = tu_pg_send(s, q_int("SELECT $1::int + 1", round * 10 + i));
			sent++;
		}
		for (int i = 0; i < 3; i++) {
			iok_msg    *m = tu_pg_recv(s);
			tu_pg_reply r;
			assert_int_equal(iok_msg_token(m), toks[i]);
			tu_pg_read(m, &r);
			assert_string_equal(r.sqlstate, "");
			assert_int_equal(r.first_int, round * 10 + i + 1);
			iok_msg_free(m);
		}
	}
	assert_int_equal(tu_stat(s, "stat:replies"), (uint64_t) sent);
	assert_int_equal(tu_stat(s, "stat:probe-timeouts"), 0);
	assert_int_equal(tu_stat(s, "stat:proto-errors"), 0);
	assert_int_equal(tu_stat(s, "stat:pipes-opened"), 1);
	iok_close(s);
}

/* An error in the middle of a burst fails its own request only. */
static void
test_error_mid_burst(void **state)
{
	(void) state;
	iok_socket s = open_db(tu_pg_env("IOK_PG_URL"), "iok_err", NULL);
	uint64_t   toks[101];

	for (int i = 0; i <= 100; i++) {
		toks[i] = tu_pg_send(s, i == 50 ? q_int("SELECT 1 / ($1::int - $1::int)", i)
		                                : q_int("SELECT $1::int * 2", i));
	}
	for (int n = 0; n <= 100; n++) {
		iok_msg    *m = tu_pg_recv(s);
		tu_pg_reply r;
		int         i;
		for (i = 0; i <= 100 && toks[i] != iok_msg_token(m); i++) {
		}
		assert_true(i <= 100);
		tu_pg_read(m, &r);
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
		iok_msg    *m = tu_pg_call(s, tu_pg_query("SELEKT 1"));
		tu_pg_reply r;
		tu_pg_read(m, &r);
		assert_string_equal(r.sqlstate, "42601");
		iok_msg_free(m);
	}
	iok_msg    *m = tu_pg_call(s, q_int("SELECT $1::int * 2", 21));
	tu_pg_reply r;
	tu_pg_read(m, &r);
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
	iok_socket  s = open_db(tu_pg_env("IOK_PG_URL_ADMIN"), "iok_plan", NULL);
	tu_pg_reply r;
	iok_msg    *m;

	m = tu_pg_call(
	    s, tu_pg_simple("DROP TABLE IF EXISTS iok_plan_t; CREATE TABLE iok_plan_t (a int); "
	                    "INSERT INTO iok_plan_t VALUES (7)"));
	tu_pg_read(m, &r);
	assert_string_equal(r.sqlstate, "");
	iok_msg_free(m);
	for (int i = 0; i < 2; i++) {
		m = tu_pg_call(s, tu_pg_query("SELECT * FROM iok_plan_t"));
		tu_pg_read(m, &r);
		assert_int_equal(r.first_int, 7);
		iok_msg_free(m);
	}
	m = tu_pg_call(s, tu_pg_simple("ALTER TABLE iok_plan_t ADD COLUMN b text"));
	iok_msg_free(m);
	m = tu_pg_call(s, tu_pg_query("SELECT * FROM iok_plan_t"));
	tu_pg_read(m, &r);
	assert_string_equal(r.sqlstate, "0A000");
	iok_msg_free(m);
	m = tu_pg_call(s, tu_pg_query("SELECT * FROM iok_plan_t"));
	tu_pg_read(m, &r);
	assert_string_equal(r.sqlstate, "");
	assert_int_equal(r.ncols, 2);
	assert_int_equal(r.first_int, 7);
	iok_msg_free(m);
	m = tu_pg_call(s, tu_pg_simple("DROP TABLE iok_plan_t"));
	iok_msg_free(m);
	iok_close(s);
}

/* --------------------------------------------------- LISTEN / NOTIFY */

/* A sub socket's next message: a notification (returns 1, channel and
 * payload copied) or the reconnect marker (returns 2). */
static int
sub_next(iok_socket sub, char *chan, char *payload, size_t cap)
{
	iok_msg      *m = NULL;
	iok_pg_reader rd;
	iok_pg_item   it;
	int           kind = 0;

	IOK_OK(iok_recvmsg(sub, &m, 0));
	assert_true(iok_msg_is_push(m));
	iok_pg_reader_init(&rd, iok_msg_body(m), iok_msg_len(m));
	assert_int_equal(iok_pg_next(&rd, &it), 1);
	if (it.kind == IOK_PG_NOTIFY) {
		snprintf(chan, cap, "%s", it.name_z);
		snprintf(payload, cap, "%.*s", (int) it.len, (const char *) it.data);
		kind = 1;
	} else {
		assert_int_equal(it.kind, IOK_PG_READY); /* the marker */
		kind = 2;
	}
	assert_int_equal(iok_pg_next(&rd, &it), 0);
	iok_msg_free(m);
	return kind;
}

static void
notify(const char *chan, const char *payload)
{
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT pg_notify('%s', '%s')::text", chan, payload);
	(void) admin_int(sql);
}

/* Waits until everything sent on s so far has been answered (LISTENs
 * included: they share the FIFO). */
static void
barrier(iok_socket s)
{
	iok_msg *m = tu_pg_call(s, tu_pg_query("SELECT 1"));
	iok_msg_free(m);
}

struct flow {
	iok_socket s;
	int        n, bad;
};

/* Sends n queries and checks every answer; the sub is read meanwhile. */
static void *
flow_worker(void *arg)
{
	struct flow *f    = arg;
	uint64_t    *toks = calloc((size_t) f->n, sizeof(*toks));
	for (int i = 0; i < f->n; i++) {
		toks[i] = tu_pg_send(f->s, q_int("SELECT $1::int + 1", i));
	}
	for (int n = 0; n < f->n; n++) {
		iok_msg *m = NULL;
		if (iok_recvmsg(f->s, &m, 0) != 0) {
			f->bad++;
			break;
		}
		int i;
		for (i = 0; i < f->n && toks[i] != iok_msg_token(m); i++) {
		}
		tu_pg_reply r;
		tu_pg_read(m, &r);
		if (i == f->n || r.first_int != i + 1) {
			f->bad++;
		}
		iok_msg_free(m);
	}
	free(toks);
	return NULL;
}

static void
test_notify_while_queries_flow(void **state)
{
	(void) state;
	iok_dialer  d;
	iok_socket  sub, s = open_db(tu_pg_env("IOK_PG_URL"), "iok_notify", &d);
	char        chan[64], payload[64], want[64];
	pthread_t   th;
	struct flow f = { .s = s, .n = N_BURST };

	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECVTIMEO, T_MS));
	IOK_OK(iok_sub0_open(&sub));
	IOK_OK(iok_socket_set_ms(sub, IOK_OPT_RECVTIMEO, T_MS));
	IOK_OK(iok_dialer_share(d, sub));
	assert_true(tu_wait_stat(sub, "stat:pipes", 1, T_MS));
	IOK_OK(iok_socket_set(sub, IOK_OPT_SUB_SUBSCRIBE, "Iok \"Chan\"", 10));
	/* LISTEN has no patterns */
	assert_int_equal(iok_socket_set_string(sub, IOK_OPT_SUB_PSUBSCRIBE, "Iok*"), IOK_ENOTSUP);
	barrier(s);
	assert_int_equal(pthread_create(&th, NULL, flow_worker, &f), 0);
	for (int i = 0; i < 50; i++) {
		snprintf(want, sizeof(want), "p%d", i);
		notify("Iok \"Chan\"", want);
	}
	for (int i = 0; i < 50; i++) {
		assert_int_equal(sub_next(sub, chan, payload, sizeof(chan)), 1);
		assert_string_equal(chan, "Iok \"Chan\"");
		snprintf(want, sizeof(want), "p%d", i);
		assert_string_equal(payload, want);
	}
	pthread_join(th, NULL);
	assert_int_equal(f.bad, 0);
	assert_int_equal(count_conns("iok_notify"), 1);
	/* UNLISTEN: its reply is consumed, queries go on. */
	IOK_OK(iok_socket_set(sub, IOK_OPT_SUB_UNSUBSCRIBE, "Iok \"Chan\"", 10));
	barrier(s);
	assert_int_equal(tu_stat(s, "stat:proto-errors"), 0);
	IOK_OK(iok_close(sub));
	IOK_OK(iok_close(s));
}

/* pg_terminate_backend mid-flight: every request resolves, the connection
 * comes back, the subscriber gets the marker and LISTEN again. */
static void
test_terminate_mid_flight(void **state)
{
	(void) state;
	iok_dialer d;
	iok_socket sub, s = open_db(tu_pg_env("IOK_PG_URL"), "iok_term", &d);
	char       chan[64], payload[64];
	uint64_t   toks[300];
	int        ok = 0, reset = 0;

	IOK_OK(iok_sub0_open(&sub));
	IOK_OK(iok_socket_set_ms(sub, IOK_OPT_RECVTIMEO, T_MS));
	IOK_OK(iok_dialer_share(d, sub));
	assert_true(tu_wait_stat(sub, "stat:pipes", 1, T_MS));
	IOK_OK(iok_socket_set(sub, IOK_OPT_SUB_SUBSCRIBE, "term", 4));
	barrier(s);
	for (int i = 0; i < 300; i++) {
		toks[i] = tu_pg_send(s, q_int("SELECT $1::int + 1 FROM pg_sleep(0.002)", i));
	}
	iok_msg    *m = tu_pg_recv(s); /* the server is busy with the burst */
	tu_pg_reply r;
	tu_pg_read(m, &r);
	assert_int_equal(r.first_int, 1);
	iok_msg_free(m);
	ok++;
	assert_int_equal(
	    admin_int("SELECT count(pg_terminate_backend(pid))::int FROM pg_stat_activity "
	              "WHERE application_name = 'iok_term'"),
	    1);
	for (int n = 1; n < 300; n++) {
		m = tu_pg_recv(s);
		int i;
		for (i = 0; i < 300 && toks[i] != iok_msg_token(m); i++) {
		}
		assert_true(i < 300);
		if (iok_msg_status(m) == 0) {
			tu_pg_read(m, &r);
			if (r.sqlstate[0] == '\0') {
				assert_int_equal(r.first_int, i + 1);
				ok++;
			} else {
				assert_string_equal(r.sqlstate, "57P01"); /* admin_shutdown */
				reset++;
			}
		} else {
			assert_int_equal(iok_msg_status(m), IOK_ECONNRESET);
			reset++;
		}
		iok_msg_free(m);
	}
	assert_true(reset > 0);
	assert_int_equal(ok + reset, 300);
	/* Back: the marker, then notifications on the new connection. */
	assert_int_equal(sub_next(sub, chan, payload, sizeof(chan)), 2);
	m = tu_pg_call(s, q_int("SELECT $1::int + 1", 41));
	tu_pg_read(m, &r);
	assert_int_equal(r.first_int, 42);
	iok_msg_free(m);
	notify("term", "after");
	assert_int_equal(sub_next(sub, chan, payload, sizeof(chan)), 1);
	assert_string_equal(payload, "after");
	IOK_OK(iok_close(sub));
	IOK_OK(iok_close(s));
}

/* The server restarts (immediate stop, as a crash): requests in flight
 * resolve, the client reconnects, LISTENs again and gets the marker. */
static void
test_server_restart(void **state)
{
	(void) state;
	iok_dialer  d;
	iok_socket  sub, s = open_db(tu_pg_env("IOK_PG_URL"), "iok_restart", &d);
	char        chan[64], payload[64];
	tu_pg_reply r;
	uint64_t    toks[50];

	IOK_OK(iok_sub0_open(&sub));
	IOK_OK(iok_socket_set_ms(sub, IOK_OPT_RECVTIMEO, T_MS));
	IOK_OK(iok_dialer_share(d, sub));
	assert_true(tu_wait_stat(sub, "stat:pipes", 1, T_MS));
	IOK_OK(iok_socket_set(sub, IOK_OPT_SUB_SUBSCRIBE, "restart", 7));
	barrier(s);
	for (int i = 0; i < 50; i++) {
		toks[i] = tu_pg_send(s, q_int("SELECT $1::int FROM pg_sleep(0.01)", i));
	}
	tu_pg_cluster("restart %s %s", tu_pg_env("IOK_PG_DIR"), tu_pg_env("IOK_PG_PORT"));
	for (int n = 0; n < 50; n++) {
		iok_msg *m = tu_pg_recv(s);
		int      i;
		for (i = 0; i < 50 && toks[i] != iok_msg_token(m); i++) {
		}
		assert_true(i < 50);
		if (iok_msg_status(m) == 0) {
			tu_pg_read(m, &r);
			assert_true(r.sqlstate[0] == '\0' ? r.first_int == i
			                                  : strncmp(r.sqlstate, "57P", 3) == 0);
		} else {
			assert_int_equal(iok_msg_status(m), IOK_ECONNRESET);
		}
		iok_msg_free(m);
	}
	assert_int_equal(sub_next(sub, chan, payload, sizeof(chan)), 2);
	iok_msg *m = tu_pg_call(s, q_int("SELECT $1::int + 1", 1));
	tu_pg_read(m, &r);
	assert_int_equal(r.first_int, 2);
	iok_msg_free(m);
	barrier(s); /* the LISTEN sent on the new connection is done */
	notify("restart", "back");
	assert_int_equal(sub_next(sub, chan, payload, sizeof(chan)), 1);
	assert_string_equal(payload, "back");
	IOK_OK(iok_close(sub));
	IOK_OK(iok_close(s));
}

/* --------------------------------------------------- timeouts, cancel */

static void
test_statement_timeout(void **state)
{
	(void) state;
	char        url[512];
	const char *base = tu_pg_env("IOK_PG_URL");
	snprintf(url, sizeof(url), "%s?options=-c%%20statement_timeout%%3D100", base);
	iok_socket  s = open_db(url, "iok_stmt_to", NULL);
	tu_pg_reply r;
	iok_msg    *m = tu_pg_call(s, tu_pg_query("SELECT pg_sleep(20)"));
	tu_pg_read(m, &r);
	assert_string_equal(r.sqlstate, "57014"); /* query_canceled */
	iok_msg_free(m);
	m = tu_pg_call(s, q_int("SELECT $1::int", 5));
	tu_pg_read(m, &r);
	assert_int_equal(r.first_int, 5);
	iok_msg_free(m);
	iok_close(s);
}

/* A request that times out while the server runs it is cancelled there:
 * the next request answers at once rather than after the sleep. */
static void
test_timeout_cancels(void **state)
{
	(void) state;
	iok_socket  s = open_db(tu_pg_env("IOK_PG_URL"), "iok_cancel", NULL);
	tu_pg_reply r;

	IOK_OK(iok_socket_set_ms(s, IOK_OPT_REQ_TIMEOUT, 200));
	iok_msg *m = tu_pg_call(s, tu_pg_query("SELECT pg_sleep(600)"));
	assert_int_equal(iok_msg_status(m), IOK_ETIMEDOUT);
	iok_msg_free(m);
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_REQ_TIMEOUT, T_MS));
	m = tu_pg_call(s, q_int("SELECT $1::int", 9)); /* would wait 600 s uncancelled */
	tu_pg_read(m, &r);
	assert_int_equal(r.first_int, 9);
	iok_msg_free(m);
	iok_close(s);
}

/* ---------------------------------------------------------- sessions */

static void
test_abandoned_transaction(void **state)
{
	(void) state;
	iok_socket  s = open_db(tu_pg_env("IOK_PG_URL_ADMIN"), "iok_tx", NULL);
	uint32_t    sid;
	tu_pg_reply r;
	iok_msg    *m;

	m = tu_pg_call(
	    s, tu_pg_simple("DROP TABLE IF EXISTS iok_tx_t; CREATE TABLE iok_tx_t (a int)"));
	iok_msg_free(m);
	IOK_OK(iok_session_open(s, &sid));
	iok_msg *b = tu_pg_simple("BEGIN");
	iok_msg_set_session(b, sid);
	m = tu_pg_call(s, b);
	tu_pg_read(m, &r);
	assert_int_equal(r.status, 'T');
	iok_msg_free(m);
	iok_msg *ins = q_int("INSERT INTO iok_tx_t VALUES ($1)", 1);
	iok_msg_set_session(ins, sid);
	m = tu_pg_call(s, ins);
	tu_pg_read(m, &r);
	assert_string_equal(r.tag, "INSERT 0 1");
	assert_int_equal(r.status, 'T');
	iok_msg_free(m);
	IOK_OK(iok_session_close(s, sid)); /* no COMMIT: abandoned */
	m = tu_pg_call(s, tu_pg_query("SELECT count(*)::int FROM iok_tx_t"));
	tu_pg_read(m, &r);
	assert_int_equal(r.status, 'I');
	assert_int_equal(r.first_int, 0);
	iok_msg_free(m);
	/* A committed one stays. */
	IOK_OK(iok_session_open(s, &sid));
	const char *steps[] = { "BEGIN", "INSERT INTO iok_tx_t VALUES (2)", "COMMIT" };
	for (int i = 0; i < 3; i++) {
		iok_msg *q = tu_pg_simple(steps[i]);
		iok_msg_set_session(q, sid);
		iok_msg_free(tu_pg_call(s, q));
	}
	IOK_OK(iok_session_close(s, sid));
	m = tu_pg_call(s, tu_pg_query("SELECT count(*)::int FROM iok_tx_t"));
	tu_pg_read(m, &r);
	assert_int_equal(r.first_int, 1);
	iok_msg_free(m);
	iok_msg_free(tu_pg_call(s, tu_pg_simple("DROP TABLE iok_tx_t")));
	assert_int_equal(tu_stat(s, "stat:proto-errors"), 0);
	iok_close(s);
}

/* A reply over IOK_OPT_RECVMAXSZ fails its own request only, with
 * IOK_EMSGSIZE (counted): the requests pipelined around it on the same
 * connection all succeed and it is never reconnected; a message that is not
 * a PostgreSQL request is refused with IOK_EINVAL; the socket keeps working.
 */
#define N_AROUND 100
static void
test_limits_and_refusals(void **state)
{
	(void) state;
	iok_socket  s;
	char        u[512];
	tu_pg_reply r;
	iok_msg    *m;
	uint64_t    toks[N_AROUND + 2];
	int         seen[N_AROUND + 2] = { 0 };

	IOK_OK(iok_socket_open(&s, "pipelined-db"));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECONNMINT, 20));
	IOK_OK(iok_socket_set_size(s, IOK_OPT_RECVMAXSZ, 64 * 1024));
	/* postgres:// is the same transport */
	const char *url = tu_pg_env("IOK_PG_URL");
	snprintf(u, sizeof(u), "postgres%s?application_name=iok_limits", strchr(url, ':'));
	IOK_OK(iok_dial(s, u, NULL, 0));
	m = tu_pg_call(s, tu_pg_query("SELECT repeat('x', 100000)"));
	assert_int_equal(iok_msg_status(m), IOK_EMSGSIZE);
	assert_int_equal(iok_msg_len(m), 0);
	iok_msg_free(m);
	assert_int_equal(tu_stat(s, "stat:rx-oversize"), 1);
	/* Two big replies (one a single 4 MB row, one many rows) between
	 * 100 small ones, all in flight at once. */
	for (int i = 0; i < N_AROUND + 2; i++) {
		if (i == 30) {
			toks[i] = tu_pg_send(s, tu_pg_query("SELECT repeat('y', 4000000)"));
		} else if (i == 70) {
			toks[i] = tu_pg_send(s,
			    tu_pg_query("SELECT repeat('z', 1000) FROM generate_series(1, 500)"));
		} else {
			toks[i] = tu_pg_send(s, q_int("SELECT $1::int", i));
		}
	}
	for (int k = 0; k < N_AROUND + 2; k++) {
		int i = -1;
		m     = tu_pg_recv(s);
		for (int j = 0; j < N_AROUND + 2; j++) {
			if (toks[j] == iok_msg_token(m)) {
				i = j;
			}
		}
		assert_true(i >= 0 && !seen[i]);
		seen[i] = 1;
		if (i == 30 || i == 70) {
			assert_int_equal(iok_msg_status(m), IOK_EMSGSIZE);
		} else {
			tu_pg_read(m, &r);
			assert_int_equal(r.first_int, i);
		}
		iok_msg_free(m);
	}
	assert_int_equal(tu_stat(s, "stat:rx-oversize"), 3);
	assert_int_equal(tu_stat(s, "stat:pipes-opened"), 1);
	assert_int_equal(tu_stat(s, "stat:reconnects"), 0);
	assert_int_equal(tu_stat(s, "stat:proto-errors"), 0);
	/* The limit raised at runtime reaches the open connection. */
	IOK_OK(iok_socket_set_size(s, IOK_OPT_RECVMAXSZ, 1 << 20));
	m = tu_pg_call(s, tu_pg_query("SELECT length(repeat('x', 100000))"));
	tu_pg_read(m, &r);
	assert_int_equal(r.first_int, 100000);
	iok_msg_free(m);
	m = tu_pg_call(s, tu_pg_query("SELECT repeat('x', 100000)"));
	assert_int_equal(iok_msg_status(m), 0);
	iok_msg_free(m);
	assert_int_equal(tu_stat(s, "stat:pipes-opened"), 1);
	/* not a request built with iok_pg_* */
	IOK_OK(iok_msg_alloc(&m, 0));
	IOK_OK(iok_msg_append(m, "SELECT 1", 8));
	m = tu_pg_call(s, m);
	assert_int_equal(iok_msg_status(m), IOK_EINVAL);
	iok_msg_free(m);
	m = tu_pg_call(s, q_int("SELECT $1::int", 3));
	tu_pg_read(m, &r);
	assert_int_equal(r.first_int, 3);
	iok_msg_free(m);
	iok_close(s);
}

/* A LISTEN asked for while a session holds the connection inside a
 * transaction waits for the session's end (ROLLBACK first), then works. */
static void
test_listen_during_session(void **state)
{
	(void) state;
	iok_dialer  d;
	iok_socket  sub, s = open_db(tu_pg_env("IOK_PG_URL"), "iok_sess_listen", &d);
	char        chan[64], payload[64];
	uint32_t    sid;
	tu_pg_reply r;

	IOK_OK(iok_sub0_open(&sub));
	IOK_OK(iok_socket_set_ms(sub, IOK_OPT_RECVTIMEO, T_MS));
	IOK_OK(iok_dialer_share(d, sub));
	assert_true(tu_wait_stat(sub, "stat:pipes", 1, T_MS));
	IOK_OK(iok_session_open(s, &sid));
	iok_msg *b = tu_pg_simple("BEGIN");
	iok_msg_set_session(b, sid);
	iok_msg_free(tu_pg_call(s, b));
	IOK_OK(iok_socket_set(sub, IOK_OPT_SUB_SUBSCRIBE, "held", 4));
	iok_msg *q = q_int("SELECT $1::int", 4);
	iok_msg_set_session(q, sid);
	iok_msg *m = tu_pg_call(s, q);
	tu_pg_read(m, &r);
	assert_int_equal(r.status, 'T');
	iok_msg_free(m);
	IOK_OK(iok_session_close(s, sid));
	m = tu_pg_call(s, q_int("SELECT $1::int", 5));
	tu_pg_read(m, &r);
	assert_int_equal(r.first_int, 5);
	assert_int_equal(r.status, 'I'); /* rolled back */
	iok_msg_free(m);
	notify("held", "now");
	assert_int_equal(sub_next(sub, chan, payload, sizeof(chan)), 1);
	assert_string_equal(chan, "held");
	assert_int_equal(tu_stat(s, "stat:proto-errors"), 0);
	IOK_OK(iok_close(sub));
	IOK_OK(iok_close(s));
}

/* -------------------------------------------------------------- auth */

static void
check_user(const char *url, const char *user)
{
	iok_socket  s = open_db(url, "iok_auth", NULL);
	tu_pg_reply r;
	iok_msg    *m = tu_pg_call(s, tu_pg_query("SELECT current_user::text"));
	tu_pg_read(m, &r);
	assert_string_equal(r.first, user);
	iok_msg_free(m);
	iok_close(s);
}

static void
test_auth_methods(void **state)
{
	(void) state;
	char url[512];
	check_user(tu_pg_env("IOK_PG_URL_SCRAM"), "iok_scram");
	check_user(tu_pg_env("IOK_PG_URL_MD5"), "iok_md5");
	check_user(tu_pg_env("IOK_PG_URL_PASSWORD"), "iok_password");
	check_user(tu_pg_env("IOK_PG_URL_TRUST"), "iok_trust");
	/* libpq's unix-socket form */
	snprintf(url, sizeof(url), "postgresql://iok_trust@/postgres?host=%s&port=%s",
	    tu_pg_env("IOK_PG_SOCKDIR"), tu_pg_env("IOK_PG_PORT"));
	check_user(url, "iok_trust");
}

static void
test_wrong_password(void **state)
{
	(void) state;
	const char *users[] = { "iok_scram", "iok_md5", "iok_password" };
	for (int i = 0; i < 3; i++) {
		iok_socket s;
		char       url[512];
		snprintf(url, sizeof(url), "postgresql://%s:not-the-secret@%s:%s/postgres",
		    users[i], tu_pg_env("IOK_PG_HOST"), tu_pg_env("IOK_PG_PORT"));
		IOK_OK(iok_socket_open(&s, "pipelined-db"));
		assert_int_equal(iok_dial(s, url, NULL, 0), IOK_EPEERAUTH);
		assert_true(tu_stat(s, "stat:proto-errors") >= 1);
		/* The server's reason, without the password. */
		char *why = NULL;
		IOK_OK(iok_socket_get_string(s, IOK_OPT_LAST_ERROR, &why));
		assert_non_null(strstr(why, "28P01"));
		assert_non_null(strstr(why, users[i]));
		assert_null(strstr(why, "not-the-secret"));
		iok_strfree(why);
		iok_close(s);
	}
	/* No password at all where one is needed. */
	iok_socket s;
	char       url[512];
	snprintf(url, sizeof(url), "postgresql://iok_scram@%s:%s/postgres",
	    tu_pg_env("IOK_PG_HOST"), tu_pg_env("IOK_PG_PORT"));
	IOK_OK(iok_socket_open(&s, "pipelined-db"));
	assert_int_equal(iok_dial(s, url, NULL, 0), IOK_EPEERAUTH);
	iok_close(s);
}

/* ------------------------------------------------------- fake server */

struct fake {
	int         lfd, port;
	const void *bad; /* sent after the first request arrives */
	size_t      badlen;
};

static void *
fake_main(void *arg)
{
	struct fake *f = arg;
	uint8_t      buf[4096];
	/* AuthenticationOk, BackendKeyData, ReadyForQuery 'I' */
	static const uint8_t hello[] = { 'R', 0, 0, 0, 8, 0, 0, 0, 0, 'K', 0, 0, 0, 12, 0, 0, 0, 1,
		0, 0, 0, 2, 'Z', 0, 0, 0, 5, 'I' };
	int                  c       = accept(f->lfd, NULL, NULL);
	if (c < 0) {
		return NULL;
	}
	if (read(c, buf, sizeof(buf)) > 0 &&
	    write(c, hello, sizeof(hello)) == (ssize_t) sizeof(hello) &&
	    read(c, buf, sizeof(buf)) > 0) {
		(void) !write(c, f->bad, f->badlen);
	}
	/* Wait for the client to hang up. */
	while (read(c, buf, sizeof(buf)) > 0) {
	}
	close(c);
	return NULL;
}

static void
fake_case(const void *bad, size_t len, const char *stat)
{
	struct fake        f = { .bad = bad, .badlen = len };
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t          al = sizeof(a);
	pthread_t          th;
	iok_socket         s;
	char               url[128];

	f.lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(f.lfd, (struct sockaddr *) &a, sizeof(a)), 0);
	assert_int_equal(listen(f.lfd, 1), 0);
	assert_int_equal(getsockname(f.lfd, (struct sockaddr *) &a, &al), 0);
	assert_int_equal(pthread_create(&th, NULL, fake_main, &f), 0);
	snprintf(url, sizeof(url), "postgresql://u@127.0.0.1:%d/db", ntohs(a.sin_port));
	IOK_OK(iok_socket_open(&s, "pipelined-db"));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECONNMINT, 60000)); /* no second try at the fake */
	IOK_OK(iok_dial(s, url, NULL, 0));
	iok_msg *m = tu_pg_call(s, tu_pg_query("SELECT 1"));
	assert_int_equal(iok_msg_status(m), IOK_ECONNRESET);
	iok_msg_free(m);
	assert_true(tu_wait_stat(s, stat, 1, T_MS));
	iok_close(s);
	pthread_join(th, NULL);
	close(f.lfd);
}

static void
test_fake_server(void **state)
{
	(void) state;
	static const uint8_t badtype[]  = { 0x7f, 0, 0, 0, 4 };
	static const uint8_t shortlen[] = { 'C', 0, 0, 0, 3 };
	static const uint8_t huge[]     = { 'D', 0x7f, 0xff, 0xff, 0xff, 0, 1 };
	static const uint8_t badz[]     = { 'Z', 0, 0, 0, 6, 'I',
		    'I' }; /* reply not ending in a valid Z */
	fake_case(badtype, sizeof(badtype), "stat:proto-errors");
	fake_case(shortlen, sizeof(shortlen), "stat:proto-errors");
	fake_case(huge, sizeof(huge), "stat:proto-errors");
	(void) badz;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_one_connection),
		cmocka_unit_test(test_health_probe),
		cmocka_unit_test(test_error_mid_burst),
		cmocka_unit_test(test_plan_invalidated),
		cmocka_unit_test(test_notify_while_queries_flow),
		cmocka_unit_test(test_terminate_mid_flight),
		cmocka_unit_test(test_server_restart),
		cmocka_unit_test(test_statement_timeout),
		cmocka_unit_test(test_timeout_cancels),
		cmocka_unit_test(test_abandoned_transaction),
		cmocka_unit_test(test_listen_during_session),
		cmocka_unit_test(test_limits_and_refusals),
		cmocka_unit_test(test_auth_methods),
		cmocka_unit_test(test_wrong_password),
		cmocka_unit_test(test_fake_server),
	};
	int rv = cmocka_run_group_tests(tests, NULL, NULL);
	iok_fini();
	return rv;
}
