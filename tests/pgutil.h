/*
 * pgutil.h - helpers for tests against the real PostgreSQL servers that
 * tests/pgcluster.py makes (ctest runs the test program under
 * `pgcluster.py run`, which exports IOK_PG_*; without them every test that
 * asks for one is skipped): the environment, a pipelined-db socket that
 * reconnects quickly, queries built with the public builders and replies
 * read with the public reader, one request's round trip, a statement run
 * on its own short-lived connection (administration), and pgcluster.py's
 * commands on a running cluster (stop, restart, promote).
 *
 * Header-only (static functions), as redisutil.h, so a test includes it
 * without any build change.  Waiting is on replies, never a fixed sleep:
 * TU_PG_T_MS only bounds a failure.
 */
#ifndef IOK_PGUTIL_H
#define IOK_PGUTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define TU_PG_UNUSED __attribute__((unused))
#define TU_PG_T_MS 30000 /* bounds a failure; success never waits for it */

/* The variable name, or the test is skipped (no cluster for this run). */
static TU_PG_UNUSED const char *
tu_pg_env(const char *name)
{
	const char *v = getenv(name);
	if (v == NULL || *v == '\0') {
		skip();
	}
	return v;
}

/* A pipelined-db socket, not yet dialled: reconnects within 20..200 ms
 * (so a server that comes back or a move is seen at once), receives
 * wait at most TU_PG_T_MS. */
static TU_PG_UNUSED iok_socket
tu_pg_socket(void)
{
	iok_socket s;
	IOK_OK(iok_socket_open(&s, "pipelined-db"));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECONNMINT, 20));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECONNMAXT, 200));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECVTIMEO, TU_PG_T_MS));
	return s;
}

/* A query with the extended protocol (the statement cache's). */
static TU_PG_UNUSED iok_msg *
tu_pg_query(const char *sql)
{
	iok_msg *m;
	IOK_OK(iok_pg_query_new(&m, sql, strlen(sql)));
	return m;
}

/* A query with the simple protocol (several statements, ALTER SYSTEM). */
static TU_PG_UNUSED iok_msg *
tu_pg_simple(const char *sql)
{
	iok_msg *m;
	IOK_OK(iok_pg_simple_query(&m, sql, strlen(sql)));
	return m;
}

static TU_PG_UNUSED uint64_t
tu_pg_send(iok_socket s, iok_msg *m)
{
	uint64_t tok = 0;
	IOK_OK(iok_request(s, m, &tok, 0));
	return tok;
}

/* The next completion, whichever request it is for. */
static TU_PG_UNUSED iok_msg *
tu_pg_recv(iok_socket s)
{
	iok_msg *m = NULL;
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECVTIMEO, TU_PG_T_MS));
	IOK_OK(iok_recvmsg(s, &m, 0));
	return m;
}

/* One request and its completion (the only one outstanding). */
static TU_PG_UNUSED iok_msg *
tu_pg_call(iok_socket s, iok_msg *req)
{
	uint64_t tok = tu_pg_send(s, req);
	iok_msg *m   = tu_pg_recv(s);
	assert_int_equal(iok_msg_token(m), tok);
	return m;
}

/* What a reply holds, read with the public reader. */
typedef struct tu_pg_reply {
	int      nrows, ncols, ready;
	char     status;
	int      formats[8];
	uint32_t oids[8];
	char     first[256]; /* first field of the first row, as text */
	int64_t  first_int;  /* ... as an integer (int2/4/8 either format) */
	int      first_null;
	char     tag[64];
	char     sqlstate[6];
	char     message[256];
	int      nnotify;
} tu_pg_reply;

/* Reads m (a reply, status 0) into r; the reader must accept all of it. */
static TU_PG_UNUSED void
tu_pg_read(iok_msg *m, tu_pg_reply *r)
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
					snprintf(r->first, sizeof(r->first), "%.*s", (int) it.len,
					    (const char *) it.data);
					r->first_int = strtoll(r->first, NULL, 10);
				}
			}
			break;
		case IOK_PG_COMPLETE:
			snprintf(r->tag, sizeof(r->tag), "%s", it.tag_z);
			break;
		case IOK_PG_ERROR:
			snprintf(r->sqlstate, sizeof(r->sqlstate), "%s",
			    it.sqlstate_z ? it.sqlstate_z : "");
			snprintf(
			    r->message, sizeof(r->message), "%s", it.message_z ? it.message_z : "");
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

/* One request; its completion's status, and its reply in r when 0. */
static TU_PG_UNUSED int
tu_pg_run(iok_socket s, iok_msg *req, tu_pg_reply *r)
{
	iok_msg *m  = tu_pg_call(s, req);
	int      st = iok_msg_status(m);
	if (st == 0) {
		tu_pg_read(m, r);
	}
	iok_msg_free(m);
	return st;
}

/* sql (simple: with the simple protocol) on its own connection to url,
 * closed after; the server's error, if any, fails the test.  The reply is
 * in r. */
static TU_PG_UNUSED void
tu_pg_admin(const char *url, bool simple, const char *sql, tu_pg_reply *r)
{
	iok_socket s = tu_pg_socket();
	IOK_OK(iok_dial(s, url, NULL, 0));
	IOK_OK(tu_pg_run(s, simple ? tu_pg_simple(sql) : tu_pg_query(sql), r));
	if (r->sqlstate[0] != '\0') {
		fail_msg("%s: %s %s", sql, r->sqlstate, r->message);
	}
	IOK_OK(iok_close(s));
}

#ifdef IOK_TEST_SRCDIR
/* pgcluster.py with these arguments (stop DIR, restart DIR PORT, promote
 * DIR), which must succeed. */
static TU_PG_UNUSED __attribute__((format(printf, 1, 2))) void
tu_pg_cluster(const char *fmt, ...)
{
	char    args[768], cmd[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s/pgcluster.py %s", IOK_TEST_SRCDIR, args);
	assert_int_equal(system(cmd), 0);
}
#endif

#endif /* IOK_PGUTIL_H */
