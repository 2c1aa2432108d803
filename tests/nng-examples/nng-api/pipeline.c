/* pipeline.c - a one-way work queue: "pipeline node0 URL" is the PULL end
 * (it listens and prints every job it is handed), "pipeline node1 URL TEXT"
 * the PUSH end (it dials, hands over one job and exits).
 *
 * Written by us against nng's public C API, as an nng user would; it builds
 * against libnng as it stands, and iok builds it only through rename.sed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>

static void
die(const char *what, int rv)
{
	fprintf(stderr, "pipeline: %s: %s\n", what, nng_strerror(rv));
	exit(1);
}

static void
worker(const char *url)
{
	nng_socket s;
	int        rv;

	if ((rv = nng_pull0_open(&s)) != 0)
		die("nng_pull0_open", rv);
	if ((rv = nng_listen(s, url, NULL, 0)) != 0)
		die("nng_listen", rv);
	for (;;) {
		char  *job = NULL;
		size_t len = 0;

		/* NNG_FLAG_ALLOC: the library sizes the buffer, we free it. */
		if ((rv = nng_recv(s, &job, &len, NNG_FLAG_ALLOC)) != 0)
			die("nng_recv", rv);
		printf("worker: job \"%.*s\" (%zu bytes)\n", (int) len, job, len);
		fflush(stdout);
		nng_free(job, len);
	}
}

static int
producer(const char *url, const char *text)
{
	nng_socket s;
	int        rv;

	if ((rv = nng_push0_open(&s)) != 0)
		die("nng_push0_open", rv);
	if ((rv = nng_dial(s, url, NULL, 0)) != 0)
		die("nng_dial", rv);
	if ((rv = nng_send(s, (void *) text, strlen(text), 0)) != 0)
		die("nng_send", rv);
	printf("producer: queued \"%s\"\n", text);
	/* Closing lingers until the queued job is on its way. */
	return nng_close(s) == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "node0") == 0) {
		worker(argv[2]); /* serves until killed */
		return 1;
	}
	if (argc == 4 && strcmp(argv[1], "node1") == 0)
		return producer(argv[2], argv[3]);
	fprintf(stderr, "usage: %s node0 URL | node1 URL TEXT\n", argv[0]);
	return 2;
}
