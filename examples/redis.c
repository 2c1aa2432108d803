/*
 * redis.c - a thousand Redis commands in flight on ONE connection, from
 * one thread, with no client-side event loop: each reply comes back
 * tagged with its request's token.
 *
 *   ./build/examples/redis [redis://127.0.0.1:6379/0]
 *
 * Commands go out as RESP (iok_resp_command); each reply is one RESP frame,
 * read with iok_resp_reader.
 */
#include <iok.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 1000

/* cmd makes a RESP command (an array of bulk strings) from C strings. */
static iok_msg *
cmd(int argc, const char **argv)
{
	iok_msg *m;
	return iok_resp_command(&m, argc, argv, NULL) == 0 ? m : NULL;
}

static int
fail(const char *what, int rv)
{
	fprintf(stderr, "redis example: %s: %s\n", what, iok_strerror(rv));
	return 1;
}

int
main(int argc, char **argv)
{
	const char *url = argc > 1 ? argv[1] : "redis://127.0.0.1:6379/0";
	iok_socket  db;
	uint64_t    tokens[N];
	char        key[N][24];
	int         rv, good = 0;

	if ((rv = iok_db_open(&db)) != 0) {
		return fail("open", rv);
	}
	/* SYNC: wait for the first connection, so a wrong URL or password
	 * shows here rather than as failed requests. */
	if ((rv = iok_dial(db, url, NULL, 0)) != 0) {
		return fail(url, rv);
	}
	/* Everything in flight at once: iok_request returns immediately. */
	for (int i = 0; i < N; i++) {
		snprintf(key[i], sizeof(key[i]), "iok:example:%d", i);
		const char *set[] = { "SET", key[i], key[i] + 4 };
		if ((rv = iok_request(db, cmd(3, set), &tokens[i], 0)) != 0) {
			return fail("request", rv);
		}
	}
	/* One connection answers in order, so reply i carries tokens[i]; with
	 * several connections (IOK_OPT_POOL_SIZE) match by token instead. */
	for (int i = 0; i < N; i++) {
		iok_msg *r;
		if ((rv = iok_recvmsg(db, &r, 0)) != 0) {
			return fail("recv", rv);
		}
		iok_resp_reader rd;
		iok_resp_item   it;
		iok_resp_reader_init(&rd, iok_msg_body(r), iok_msg_len(r));
		if (iok_msg_status(r) == 0 && iok_msg_token(r) == tokens[i] &&
		    iok_resp_next(&rd, &it) == 1 && it.type == IOK_RESP_SIMPLE && it.len == 2 &&
		    memcmp(it.str, "OK", 2) == 0 && iok_resp_next(&rd, &it) == 0) {
			good++;
		}
		iok_msg_free(r);
	}
	/* One GET to show a value comes back. */
	const char *get[] = { "GET", key[N - 1] };
	uint64_t    tok;
	iok_msg    *r;
	if ((rv = iok_request(db, cmd(2, get), &tok, 0)) != 0 ||
	    (rv = iok_recvmsg(db, &r, 0)) != 0) {
		return fail("GET", rv);
	}
	/* The reply is a RESP bulk string (null if the key is missing). */
	iok_resp_reader rd;
	iok_resp_item   it;
	iok_resp_reader_init(&rd, iok_msg_body(r), iok_msg_len(r));
	if (iok_resp_next(&rd, &it) != 1 || it.type != IOK_RESP_BULK) {
		it.str = NULL;
		it.len = 0;
	}
	printf("%d/%d SETs answered +OK over one connection; GET %s -> \"%.*s\"\n", good, N,
	    key[N - 1], (int) it.len, it.str != NULL ? (const char *) it.str : "");
	iok_msg_free(r);
	iok_close(db);
	return good == N ? 0 : 1;
}
