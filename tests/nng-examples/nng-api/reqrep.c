/* reqrep.c - a clock service: "reqrep node0 URL" is the REP server, which
 * answers the request "TIME" with the current UTC time (ISO 8601);
 * "reqrep node1 URL" is the REQ client, which asks once, prints the answer
 * and exits.
 *
 * Written by us against nng's public C API, as an nng user would; it builds
 * against libnng as it stands, and iok builds it only through rename.sed. */
#define _POSIX_C_SOURCE 200809L /* gmtime_r */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#define QUESTION "TIME"

static void
die(const char *what, int rv)
{
	fprintf(stderr, "reqrep: %s: %s\n", what, nng_strerror(rv));
	exit(1);
}

static void
server(const char *url)
{
	nng_socket s;
	int        rv;

	if ((rv = nng_rep0_open(&s)) != 0)
		die("nng_rep0_open", rv);
	if ((rv = nng_listen(s, url, NULL, 0)) != 0)
		die("nng_listen", rv);
	for (;;) {
		char      req[64];
		size_t    len = sizeof(req);
		char     *ans;
		size_t    n;
		time_t    now;
		struct tm tm;

		if ((rv = nng_recv(s, req, &len, 0)) != 0)
			die("nng_recv", rv);
		if (len != strlen(QUESTION) || memcmp(req, QUESTION, len) != 0) {
			/* REP must answer every request, so unknown ones get "?". */
			printf("server: unknown request (%zu bytes)\n", len);
			if ((rv = nng_send(s, "?", 1, 0)) != 0)
				die("nng_send", rv);
			continue;
		}
		printf("server: asked for " QUESTION "\n");
		/* Build the answer in a library buffer and hand it over
		 * (NNG_FLAG_ALLOC): on success the library owns and frees it. */
		if ((ans = nng_alloc(32)) == NULL)
			die("nng_alloc", NNG_ENOMEM);
		now = time(NULL);
		gmtime_r(&now, &tm);
		n = strftime(ans, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
		printf("server: answering %.*s\n", (int) n, ans);
		fflush(stdout);
		if ((rv = nng_send(s, ans, n, NNG_FLAG_ALLOC)) != 0) {
			nng_free(ans, 32);
			die("nng_send", rv);
		}
	}
}

static int
client(const char *url)
{
	nng_socket s;
	char      *ans = NULL;
	size_t     len = 0;
	int        rv;

	if ((rv = nng_req0_open(&s)) != 0)
		die("nng_req0_open", rv);
	/* A lost server must not hang the client forever. */
	if ((rv = nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 10000)) != 0)
		die("nng_socket_set_ms", rv);
	if ((rv = nng_dial(s, url, NULL, 0)) != 0)
		die("nng_dial", rv);
	printf("client: asking for " QUESTION "\n");
	if ((rv = nng_send(s, QUESTION, strlen(QUESTION), 0)) != 0)
		die("nng_send", rv);
	if ((rv = nng_recv(s, &ans, &len, NNG_FLAG_ALLOC)) != 0)
		die("nng_recv", rv);
	printf("client: it is %.*s\n", (int) len, ans);
	nng_free(ans, len);
	return nng_close(s) == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "node0") == 0) {
		server(argv[2]); /* serves until killed */
		return 1;
	}
	if (argc == 3 && strcmp(argv[1], "node1") == 0)
		return client(argv[2]);
	fprintf(stderr, "usage: %s node0|node1 URL\n", argv[0]);
	return 2;
}
