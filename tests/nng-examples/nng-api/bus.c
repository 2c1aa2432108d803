/* bus.c - a full mesh: "bus NAME LISTEN_URL [PEER_URL...]" listens on one
 * URL and dials the others (in the background, NNG_FLAG_NONBLOCK, so nodes
 * may start in any order).  A bus delivers only to directly connected
 * peers and only to those connected at the time, so every node repeats its
 * name each time a 200 ms receive timeout expires, and prints each peer
 * the first time it hears from it.
 *
 * Written by us against nng's public C API, as an nng user would; it builds
 * against libnng as it stands, and iok builds it only through rename.sed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/bus0/bus.h>

#define MAX_PEERS 16
#define NAME_MAX_LEN 32

static void
die(const char *what, int rv)
{
	fprintf(stderr, "bus: %s: %s\n", what, nng_strerror(rv));
	exit(1);
}

static char heard[MAX_PEERS][NAME_MAX_LEN + 1];
static int  nheard;

/* first_time records a peer's name; true the first time it is seen. */
static int
first_time(const char *name, size_t len)
{
	int i;

	if (len > NAME_MAX_LEN)
		len = NAME_MAX_LEN;
	for (i = 0; i < nheard; i++)
		if (strlen(heard[i]) == len && memcmp(heard[i], name, len) == 0)
			return 0;
	if (nheard == MAX_PEERS)
		return 0;
	memcpy(heard[nheard], name, len);
	heard[nheard][len] = '\0';
	nheard++;
	return 1;
}

int
main(int argc, char **argv)
{
	const char *me;
	nng_socket  s;
	int         i, rv;

	if (argc < 3) {
		fprintf(stderr, "usage: %s NAME LISTEN_URL [PEER_URL...]\n", argv[0]);
		return 2;
	}
	me = argv[1];
	if ((rv = nng_bus0_open(&s)) != 0)
		die("nng_bus0_open", rv);
	if ((rv = nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 200)) != 0)
		die("nng_socket_set_ms", rv);
	if ((rv = nng_listen(s, argv[2], NULL, 0)) != 0)
		die("nng_listen", rv);
	for (i = 3; i < argc; i++)
		if ((rv = nng_dial(s, argv[i], NULL, NNG_FLAG_NONBLOCK)) != 0)
			die("nng_dial", rv);
	for (;;) {
		char   buf[NAME_MAX_LEN];
		size_t len = sizeof(buf);

		if ((rv = nng_send(s, (void *) me, strlen(me), 0)) != 0)
			die("nng_send", rv);
		/* Drain what arrived until a quiet 200 ms, then say it again. */
		while ((rv = nng_recv(s, buf, &len, 0)) == 0) {
			if (len > sizeof(buf))
				len = sizeof(buf); /* truncated by the library */
			if (first_time(buf, len)) {
				printf("%s: heard %.*s\n", me, (int) len, buf);
				fflush(stdout);
			}
			len = sizeof(buf);
		}
		if (rv != NNG_ETIMEDOUT)
			die("nng_recv", rv);
	}
}
