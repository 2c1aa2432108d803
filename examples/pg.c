/*
 * pg.c - a thousand PostgreSQL queries in flight on ONE connection, from
 * one thread: each is `SELECT $1::int + 1` with its own parameter, and
 * each reply (every backend message up to its ReadyForQuery) is read with
 * the iok_pg_reader.
 *
 *   ./build/examples/pg postgresql://user:password@127.0.0.1:5432/postgres
 *
 * tests/pgcluster.py start DIR makes a throwaway server and prints URLs.
 */
#include <arpa/inet.h>
#include <iok.h>
#include <stdio.h>
#include <string.h>

#define N 1000

static int
fail(const char *what, int rv)
{
	fprintf(stderr, "pg example: %s: %s\n", what, iok_strerror(rv));
	return 1;
}

/* answer reads the one-row, one-column integer result of a reply (text
 * the first time a statement runs on a connection, binary after). */
static int
answer(iok_msg *r, long *v)
{
	iok_pg_reader rd;
	iok_pg_item   it;
	int           format = IOK_PG_TEXT, found = 0;

	iok_pg_reader_init(&rd, iok_msg_body(r), iok_msg_len(r));
	while (iok_pg_next(&rd, &it) == 1) {
		if (it.kind == IOK_PG_COLUMN) {
			format = it.format;
		} else if (it.kind == IOK_PG_FIELD && it.len >= 0) {
			if (format == IOK_PG_BINARY && it.len == 4) {
				uint32_t be;
				memcpy(&be, it.data, 4);
				*v = (int32_t) ntohl(be);
			} else {
				char text[16];
				snprintf(text, sizeof(text), "%.*s", (int) it.len,
				    (const char *) it.data);
				sscanf(text, "%ld", v);
			}
			found = 1;
		} else if (it.kind == IOK_PG_ERROR) {
			fprintf(stderr, "pg example: %s %s\n", it.sqlstate_z, it.message_z);
		}
	}
	return found;
}

int
main(int argc, char **argv)
{
	const char *url = argc > 1 ? argv[1] : "postgresql://postgres@127.0.0.1:5432/postgres";
	const char *sql = "SELECT $1::int + 1";
	iok_socket  db;
	uint64_t    tokens[N];
	int         rv, good = 0;

	if ((rv = iok_db_open(&db)) != 0) {
		return fail("open", rv);
	}
	/* SYNC: a wrong URL or password (IOK_EPEERAUTH) shows here. */
	if ((rv = iok_dial(db, url, NULL, 0)) != 0) {
		return fail("dial", rv);
	}
	for (int i = 0; i < N; i++) {
		iok_msg *q;
		uint32_t be = htonl((uint32_t) i);
		if ((rv = iok_pg_query_new(&q, sql, strlen(sql))) != 0 ||
		    (rv = iok_pg_query_param(q, 23 /* int4 */, IOK_PG_BINARY, &be, 4)) != 0 ||
		    (rv = iok_request(db, q, &tokens[i], 0)) != 0) {
			return fail("request", rv);
		}
	}
	/* One connection answers in order: reply i carries tokens[i]. */
	for (int i = 0; i < N; i++) {
		iok_msg *r;
		long     v = -1;
		if ((rv = iok_recvmsg(db, &r, 0)) != 0) {
			return fail("recv", rv);
		}
		if (iok_msg_status(r) == 0 && iok_msg_token(r) == tokens[i] && answer(r, &v) &&
		    v == i + 1) {
			good++;
		}
		iok_msg_free(r);
	}
	printf("%d/%d queries answered correctly over one connection\n", good, N);
	iok_close(db);
	return good == N ? 0 : 1;
}
