/*
 * test_db_pg_roles.c - target_session_attrs against real servers: a
 * primary and a streaming hot standby made with pg_basebackup -R by
 * tests/pgcluster.py (ctest runs this program under `pgcluster.py run
 * --standby`, which exports IOK_PG_* and IOK_PG_STANDBY_*; without them
 * every test is skipped).
 *
 * Covered, with both hosts in one URL (the standby listed first): each
 * target_session_attrs goes to the right server and only there (also
 * with libpq's ?host=h1,h2&port=p1,p2 spelling); a lone
 * server that does not fit refuses the dial with IOK_ESTATE and says why;
 * a primary made read-only (default_transaction_read_only) fails the
 * writes in flight with the server's 25006 (or a reset), none silently,
 * the read-write connection closes and comes back when the server is
 * writable again; failover: the primary stopped with writes in flight
 * (each one answered or failed), the standby promoted (a standby-only
 * socket drops it), and read-write traffic follows to the promoted
 * server.  The tests run in this order (the last changes the cluster).
 *
 * No sleeps as synchronisation: tests wait on replies and statistics.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgutil.h"

#define T_MS TU_PG_T_MS
#define N_FLIGHT 100

static const char *
env(const char *name)
{
	(void) tu_pg_env("IOK_PG_STANDBY_PORT"); /* the cluster has a standby */
	return tu_pg_env(name);
}

static int
port_p(void)
{
	return atoi(env("IOK_PG_PORT"));
}

static int
port_s(void)
{
	return atoi(env("IOK_PG_STANDBY_PORT"));
}

/* Both servers (standby first), or one, as iok_trust; attrs may be NULL. */
static void
url_of(char *buf, size_t cap, int p1, int p2, const char *attrs, const char *app)
{
	char hosts[64];
	if (p2 != 0) {
		snprintf(hosts, sizeof(hosts), "127.0.0.1:%d,127.0.0.1:%d", p1, p2);
	} else {
		snprintf(hosts, sizeof(hosts), "127.0.0.1:%d", p1);
	}
	snprintf(buf, cap, "postgresql://iok_trust@%s/postgres?application_name=%s%s%s", hosts, app,
	    attrs ? "&target_session_attrs=" : "", attrs ? attrs : "");
}

/* The server a query ran on: its port. */
static int
server_port(iok_socket s)
{
	tu_pg_reply r;
	IOK_OK(tu_pg_run(s, tu_pg_query("SELECT inet_server_port()"), &r));
	assert_string_equal(r.sqlstate, "");
	return atoi(r.first);
}

/* The superuser's URL for the server on port. */
static const char *
admin_url(int port, char *buf, size_t cap)
{
	snprintf(buf, cap, "postgresql://postgres@127.0.0.1:%d/postgres", port);
	return buf;
}

/* A statement on a server as the superuser (simple protocol: ALTER
 * SYSTEM refuses a transaction block). */
static void
admin(int port, const char *sql)
{
	char        url[256];
	tu_pg_reply r;
	tu_pg_admin(admin_url(port, url, sizeof(url)), true, sql, &r);
}

static int
admin_int(int port, const char *sql)
{
	char        url[256];
	tu_pg_reply r;
	tu_pg_admin(admin_url(port, url, sizeof(url)), true, sql, &r);
	return atoi(r.first);
}

static int
peers(iok_socket s)
{
	int n = -1;
	IOK_OK(iok_socket_get_int(s, IOK_OPT_PEERS_LIVE, &n));
	return n;
}

typedef struct want_peers {
	iok_socket s;
	int        n;
} want_peers;

static int
peers_are(void *arg)
{
	want_peers *w = arg;
	return peers(w->s) == w->n;
}

static void
wait_peers(iok_socket s, int n)
{
	want_peers w = { s, n };
	if (!tu_wait_for(peers_are, &w, T_MS)) {
		fail_msg("peers-live stayed %d, not %d", peers(s), n);
	}
}

typedef struct want_err {
	iok_dialer d;
	int        port;
} want_err;

static int
refused_once(void *arg)
{
	want_err *w = arg;
	return tu_upstream_field(w->d, w->port, "errors") >= 1;
}

static void
last_error_has(iok_socket s, const char *text)
{
	char *why = NULL;
	IOK_OK(iok_socket_get_string(s, IOK_OPT_LAST_ERROR, &why));
	if (strstr(why, text) == NULL) {
		fail_msg("last-error \"%s\" lacks \"%s\"", why, text);
	}
	iok_strfree(why);
}

typedef struct last_err_w {
	iok_socket  s;
	const char *text;
} last_err_w;

static int
last_error_is(void *arg)
{
	last_err_w *w   = arg;
	char       *why = NULL;
	IOK_OK(iok_socket_get_string(w->s, IOK_OPT_LAST_ERROR, &why));
	int found = strstr(why, w->text) != NULL;
	iok_strfree(why);
	return found;
}

/* ------------------------------------------------------------ routing */

static void
test_routes_by_attrs(void **state)
{
	(void) state;
	int P = port_p(), S = port_s();
	static const struct {
		const char *attrs;
		int         standby; /* goes to the standby */
		int         strict;  /* the other server is refused */
	} cases[] = {
		{ "read-write", 0, 1 },
		{ "primary", 0, 1 },
		{ "read-only", 1, 1 },
		{ "standby", 1, 1 },
		{ "prefer-standby", 1, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char       url[256];
		iok_dialer d;
		iok_socket s     = tu_pg_socket();
		int        want  = cases[i].standby ? S : P;
		int        other = cases[i].standby ? P : S;
		url_of(url, sizeof(url), S, P, cases[i].attrs, "iok_route");
		IOK_OK(iok_dial(s, url, &d, 0));
		if (cases[i].strict) {
			/* The other server was tried and refused, and says why. */
			want_err w = { d, other };
			assert_true(tu_wait_for(refused_once, &w, T_MS));
			assert_int_equal(tu_upstream_field(d, other, "pipes"), 0);
			last_error_has(s, "target_session_attrs=");
			last_error_has(s, cases[i].attrs);
		} else {
			wait_peers(s, 2); /* both fit; the standby is preferred */
		}
		for (int k = 0; k < 20; k++) {
			assert_int_equal(server_port(s), want);
		}
		tu_pg_reply r;
		IOK_OK(tu_pg_run(s, tu_pg_query("SELECT pg_is_in_recovery()::text"), &r));
		assert_string_equal(r.first, cases[i].standby ? "true" : "false");
		IOK_OK(iok_close(s));
	}
	/* No wish: both servers serve. */
	char       url[256];
	iok_socket s = tu_pg_socket();
	url_of(url, sizeof(url), S, P, NULL, "iok_route");
	IOK_OK(iok_dial(s, url, NULL, 0));
	wait_peers(s, 2);
	IOK_OK(iok_close(s));
}

/* libpq's other spelling of the list: ?host=h1,h2&port=p1,p2. */
static void
test_query_host_list(void **state)
{
	(void) state;
	static const struct {
		const char *attrs;
		int         standby;
	} cases[] = { { "read-write", 0 }, { "standby", 1 } };
	for (size_t i = 0; i < 2; i++) {
		char       url[256];
		iok_socket s = tu_pg_socket();
		snprintf(url, sizeof(url),
		    "postgresql://iok_trust@/postgres?host=127.0.0.1,127.0.0.1&port=%d,%d"
		    "&target_session_attrs=%s",
		    port_s(), port_p(), cases[i].attrs);
		IOK_OK(iok_dial(s, url, NULL, 0));
		assert_int_equal(server_port(s), cases[i].standby ? port_s() : port_p());
		IOK_OK(iok_close(s));
	}
	/* one host that way (TCP) */
	char       url[256];
	iok_socket s = tu_pg_socket();
	snprintf(
	    url, sizeof(url), "postgresql://iok_trust@/postgres?host=127.0.0.1&port=%d", port_s());
	IOK_OK(iok_dial(s, url, NULL, 0));
	assert_int_equal(server_port(s), port_s());
	IOK_OK(iok_close(s));
}

/* A lone server that does not fit: the dial fails, and says why. */
static void
test_refused_alone(void **state)
{
	(void) state;
	char       url[256];
	iok_socket s = tu_pg_socket();
	url_of(url, sizeof(url), port_p(), 0, "standby", "iok_alone");
	assert_int_equal(iok_dial(s, url, NULL, 0), IOK_ESTATE);
	last_error_has(s, "in_hot_standby=off");
	IOK_OK(iok_close(s));
	s = tu_pg_socket();
	url_of(url, sizeof(url), port_s(), 0, "read-write", "iok_alone");
	assert_int_equal(iok_dial(s, url, NULL, 0), IOK_ESTATE);
	last_error_has(s, "in_hot_standby=on");
	IOK_OK(iok_close(s));
	/* A wish libpq does not know fails the dial (it never hangs). */
	s = tu_pg_socket();
	url_of(url, sizeof(url), port_p(), 0, "writable", "iok_alone");
	assert_int_equal(iok_dial(s, url, NULL, 0), IOK_EADDRINVAL);
	IOK_OK(iok_close(s));
	/* prefer-standby takes the primary when no standby answers */
	s = tu_pg_socket();
	url_of(url, sizeof(url), tu_free_port(), port_p(), "prefer-standby", "iok_alone");
	IOK_OK(iok_dial(s, url, NULL, 0));
	assert_int_equal(server_port(s), port_p());
	IOK_OK(iok_close(s));
}

/* ------------------------------------------------- read-only primary */

/* Sends n writes at once; every one completes: ok (counted in *ok),
 * refused by the server with 25006 (*ro), or failed by the connection's
 * loss (*lost).  Nothing else. */
static void
writes_in_flight(iok_socket s, int n, int *ok, int *ro, int *lost)
{
	uint64_t *toks = calloc((size_t) n, sizeof(*toks));
	char     *seen = calloc((size_t) n, 1);
	for (int i = 0; i < n; i++) {
		IOK_OK(iok_request(s, tu_pg_query("INSERT INTO roles_t VALUES (1)"), &toks[i], 0));
	}
	for (int k = 0; k < n; k++) {
		iok_msg *m;
		int      i;
		IOK_OK(iok_recvmsg(s, &m, 0));
		for (i = 0; i < n && toks[i] != iok_msg_token(m); i++) {
		}
		assert_true(i < n && !seen[i]);
		seen[i] = 1;
		if (iok_msg_status(m) != 0) {
			int st = iok_msg_status(m);
			/* lost with the connection, or refused while no server
			 * fits (fail-fast) */
			if (st != IOK_ECONNRESET && st != IOK_ECONNSHUT && st != IOK_ESTATE) {
				fail_msg("write %d: %s", i, iok_strerror(st));
			}
			(*lost)++;
		} else {
			tu_pg_reply r;
			tu_pg_read(m, &r);
			if (r.sqlstate[0] == '\0') {
				(*ok)++;
			} else if (strcmp(r.sqlstate, "25006") == 0) {
				(*ro)++;
			} else if (strncmp(r.sqlstate, "57P", 3) == 0) {
				(*lost)++; /* the server shutting down says so */
			} else {
				fail_msg("write %d: %s %s", i, r.sqlstate, r.message);
			}
		}
		iok_msg_free(m);
	}
	free(toks);
	free(seen);
}

static void
test_primary_goes_read_only(void **state)
{
	(void) state;
	int         P = port_p(), S = port_s();
	char        url[256];
	iok_socket  s = tu_pg_socket();
	tu_pg_reply r;
	int         ok = 0, ro = 0, lost = 0, rows0;

	admin(P, "CREATE TABLE IF NOT EXISTS roles_t (v int); GRANT ALL ON roles_t TO PUBLIC");
	rows0 = admin_int(P, "SELECT count(*) FROM roles_t");
	url_of(url, sizeof(url), S, P, "read-write", "iok_ro");
	IOK_OK(iok_dial(s, url, NULL, 0));
	IOK_OK(tu_pg_run(s, tu_pg_query("INSERT INTO roles_t VALUES (1)"), &r));
	assert_string_equal(r.sqlstate, "");
	ok++;

	/* The primary turns read-only.  The reload reaches its backend
	 * between two of our messages: the server then reports
	 * default_transaction_read_only=on with the next reply (the
	 * connection closes after it), or refuses a write that began after
	 * it with 25006 (delivered, then the connection closes). */
	admin(P, "ALTER SYSTEM SET default_transaction_read_only = on");
	admin(P, "SELECT pg_reload_conf()");
	uint64_t end = tu_now_ms() + T_MS;
	while (ro == 0 && lost == 0 && peers(s) > 0) {
		assert_true(tu_now_ms() < end);
		writes_in_flight(s, 10, &ok, &ro, &lost);
	}
	print_message(
	    "read-only: %d ok, %d refused (25006), %d lost with the connection\n", ok, ro, lost);
	/* The connection closed, every write is accounted for, and the
	 * server is refused while read-only. */
	wait_peers(s, 0);
	assert_int_equal(admin_int(P, "SELECT count(*) FROM roles_t"), rows0 + ok);
	last_err_w le = { s, "default_transaction_read_only=on" };
	assert_true(tu_wait_for(last_error_is, &le, T_MS));
	assert_int_equal(tu_pg_run(s, tu_pg_query("SELECT 1"), &r), IOK_ESTATE); /* fail-fast */

	/* Writable again: the dialer's retries find it. */
	admin(P, "ALTER SYSTEM RESET default_transaction_read_only");
	admin(P, "SELECT pg_reload_conf()");
	wait_peers(s, 1);
	IOK_OK(tu_pg_run(s, tu_pg_query("INSERT INTO roles_t VALUES (2)"), &r));
	assert_string_equal(r.sqlstate, "");
	assert_int_equal(server_port(s), P);
	IOK_OK(iok_close(s));
}

/* ----------------------------------------------------------- failover */

static void
test_failover(void **state)
{
	(void) state;
	int         P = port_p(), S = port_s();
	char        url[256];
	iok_socket  rw = tu_pg_socket(), sb = tu_pg_socket(), ps = tu_pg_socket();
	tu_pg_reply r;
	int         ok = 0, lost = 0, n_sb = 0, fails = 0;

	admin(P, "CREATE TABLE IF NOT EXISTS roles_t (v int); GRANT ALL ON roles_t TO PUBLIC");
	url_of(url, sizeof(url), S, P, "read-write", "iok_fo_rw");
	IOK_OK(iok_dial(rw, url, NULL, 0));
	url_of(url, sizeof(url), S, P, "standby", "iok_fo_sb");
	IOK_OK(iok_dial(sb, url, NULL, 0));
	url_of(url, sizeof(url), S, P, "prefer-standby", "iok_fo_ps");
	IOK_OK(iok_dial(ps, url, NULL, 0));
	wait_peers(ps, 2);
	assert_int_equal(server_port(rw), P);
	assert_int_equal(server_port(sb), S);
	assert_int_equal(server_port(ps), S);

	/* The primary dies with writes in flight: each is answered or fails
	 * with an error, none is lost silently. */
	uint64_t *toks = calloc(N_FLIGHT, sizeof(*toks));
	for (int i = 0; i < N_FLIGHT; i++) {
		IOK_OK(iok_request(rw,
		    tu_pg_query("INSERT INTO roles_t SELECT 3 FROM pg_sleep(0.01)"), &toks[i], 0));
	}
	tu_pg_cluster("stop %s", env("IOK_PG_DIR"));
	for (int k = 0; k < N_FLIGHT; k++) {
		iok_msg *m;
		IOK_OK(iok_recvmsg(rw, &m, 0));
		int i;
		for (i = 0; i < N_FLIGHT && toks[i] != iok_msg_token(m); i++) {
		}
		assert_true(i < N_FLIGHT);
		toks[i] = 0;
		if (iok_msg_status(m) == 0) {
			tu_pg_read(m, &r);
			if (r.sqlstate[0] == '\0') {
				ok++;
			} else if (strncmp(r.sqlstate, "57P", 3) == 0) {
				lost++; /* the server's own "terminating connection" */
			} else {
				fail_msg("write: %s %s", r.sqlstate, r.message);
			}
		} else {
			int st = iok_msg_status(m);
			assert_true(
			    st == IOK_ECONNRESET || st == IOK_ECONNSHUT || st == IOK_ESTATE);
			lost++;
		}
		iok_msg_free(m);
	}
	free(toks);
	assert_int_equal(ok + lost, N_FLIGHT);
	assert_true(lost > 0);
	wait_peers(rw, 0); /* the standby does not fit read-write */
	wait_peers(ps, 1); /* prefer-standby still has its standby */
	assert_int_equal(server_port(ps), S);

	/* Promote the standby.  The standby-only socket learns it from the
	 * ParameterStatus on its next reply (delivered), drops the connection
	 * and refuses the server from then on. */
	tu_pg_cluster("promote %s", env("IOK_PG_STANDBY_DIR"));
	uint64_t t0  = tu_now_ms();
	uint64_t end = t0 + T_MS;
	while (peers(sb) > 0) {
		assert_true(tu_now_ms() < end);
		int st = tu_pg_run(sb, tu_pg_query("SELECT 1"), &r);
		assert_true(
		    st == 0 || st == IOK_ECONNRESET || st == IOK_ECONNSHUT || st == IOK_ESTATE);
		n_sb++;
	}
	assert_int_equal(tu_pg_run(sb, tu_pg_query("SELECT 1"), &r), IOK_ESTATE);
	last_error_has(sb, "target_session_attrs=standby");

	/* Read-write traffic follows to the promoted server (the dialer's
	 * retries find it fits now). */
	for (;;) {
		assert_true(tu_now_ms() < end);
		int st = tu_pg_run(rw, tu_pg_query("INSERT INTO roles_t VALUES (4)"), &r);
		if (st == 0 && r.sqlstate[0] == '\0') {
			break;
		}
		fails++;
		wait_peers(rw, 1); /* a failure waits for the connection, no spin */
	}
	uint64_t moved = tu_now_ms() - t0;
	assert_int_equal(server_port(rw), S);
	assert_int_equal(server_port(ps), S);
	print_message("failover: %d written, %d failed with the old primary, %d standby "
	              "replies before it dropped, %d failed while moving; writes on the "
	              "promoted server %llu ms after the promotion\n",
	    ok, lost, n_sb, fails, (unsigned long long) moved);
	IOK_OK(iok_close(rw));
	IOK_OK(iok_close(sb));
	IOK_OK(iok_close(ps));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_routes_by_attrs), cmocka_unit_test(test_query_host_list),
		cmocka_unit_test(test_refused_alone), cmocka_unit_test(test_primary_goes_read_only),
		cmocka_unit_test(test_failover), /* last: it changes the cluster */
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
