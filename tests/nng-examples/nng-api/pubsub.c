/* pubsub.c - topic filtering: "pubsub server URL" is a PUB socket that
 * publishes, every 100 ms, a "tick N" and a "noise N" message;
 * "pubsub client URL NAME" is a SUB socket subscribed to the topic "tick"
 * only, so it must print ticks and never noise.
 *
 * Written by us against nng's public C API, as an nng user would; it builds
 * against libnng as it stands, and iok builds it only through rename.sed. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/pubsub0/sub.h>

#define TOPIC "tick"

static void
die(const char *what, int rv)
{
	fprintf(stderr, "pubsub: %s: %s\n", what, nng_strerror(rv));
	exit(1);
}

static void
publish(nng_socket s, const char *topic, unsigned n)
{
	char buf[64];
	int  len = snprintf(buf, sizeof(buf), "%s %u", topic, n);
	int  rv;

	/* PUB never blocks: with no subscriber the message is dropped. */
	if ((rv = nng_send(s, buf, (size_t) len, 0)) != 0)
		die("nng_send", rv);
}

static void
server(const char *url)
{
	nng_socket s;
	unsigned   n;
	int        rv;

	if ((rv = nng_pub0_open(&s)) != 0)
		die("nng_pub0_open", rv);
	if ((rv = nng_listen(s, url, NULL, 0)) != 0)
		die("nng_listen", rv);
	for (n = 0;; n++) {
		/* The period is the point of a publisher, not a wait. */
		struct timespec period = { 0, 100 * 1000 * 1000 };

		publish(s, "noise", n);
		publish(s, TOPIC, n);
		printf("server: published " TOPIC " %u\n", n);
		fflush(stdout);
		nanosleep(&period, NULL);
	}
}

static void
client(const char *url, const char *name)
{
	nng_socket s;
	int        rv;

	if ((rv = nng_sub0_open(&s)) != 0)
		die("nng_sub0_open", rv);
	if ((rv = nng_socket_set(s, NNG_OPT_SUB_SUBSCRIBE, TOPIC, strlen(TOPIC))) != 0)
		die("nng_socket_set", rv);
	if ((rv = nng_dial(s, url, NULL, 0)) != 0)
		die("nng_dial", rv);
	for (;;) {
		nng_msg *m;

		if ((rv = nng_recvmsg(s, &m, 0)) != 0)
			die("nng_recvmsg", rv);
		printf("client %s: got \"%.*s\"\n", name, (int) nng_msg_len(m),
		    (const char *) nng_msg_body(m));
		fflush(stdout);
		nng_msg_free(m);
	}
}

int
main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "server") == 0) {
		server(argv[2]); /* serves until killed */
		return 1;
	}
	if (argc == 4 && strcmp(argv[1], "client") == 0) {
		client(argv[2], argv[3]); /* serves until killed */
		return 1;
	}
	fprintf(stderr, "usage: %s server URL | client URL NAME\n", argv[0]);
	return 2;
}
