/* survey.c - a roll call: "survey server URL" is a SURVEYOR that asks
 * "roll call" over and over, each survey open for 300 ms, and prints who
 * answered; "survey client URL NAME" is a RESPONDENT that answers with its
 * name.  Clients dial in the background (NNG_FLAG_NONBLOCK), so they may
 * start before the server.
 *
 * Written by us against nng's public C API, as an nng user would; it builds
 * against libnng as it stands, and iok builds it only through rename.sed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/survey0/respond.h>
#include <nng/protocol/survey0/survey.h>

#define QUESTION "roll call"

static void
die(const char *what, int rv)
{
	fprintf(stderr, "survey: %s: %s\n", what, nng_strerror(rv));
	exit(1);
}

static void
server(const char *url)
{
	nng_socket s;
	unsigned   round;
	int        rv;

	if ((rv = nng_surveyor0_open(&s)) != 0)
		die("nng_surveyor0_open", rv);
	if ((rv = nng_socket_set_ms(s, NNG_OPT_SURVEYOR_SURVEYTIME, 300)) != 0)
		die("nng_socket_set_ms", rv);
	if ((rv = nng_listen(s, url, NULL, 0)) != 0)
		die("nng_listen", rv);
	for (round = 1;; round++) {
		unsigned answers = 0;

		if ((rv = nng_send(s, QUESTION, strlen(QUESTION), 0)) != 0)
			die("nng_send", rv);
		/* Collect answers until the survey time runs out: that end
		 * is reported as NNG_ETIMEDOUT. */
		for (;;) {
			char  *who = NULL;
			size_t len = 0;

			rv = nng_recv(s, &who, &len, NNG_FLAG_ALLOC);
			if (rv == NNG_ETIMEDOUT)
				break;
			if (rv != 0)
				die("nng_recv", rv);
			answers++;
			printf("server: round %u: %.*s is here\n", round, (int) len, who);
			nng_free(who, len);
		}
		printf("server: round %u over, %u answers\n", round, answers);
		fflush(stdout);
	}
}

static void
client(const char *url, const char *name)
{
	nng_socket s;
	int        rv;

	if ((rv = nng_respondent0_open(&s)) != 0)
		die("nng_respondent0_open", rv);
	if ((rv = nng_dial(s, url, NULL, NNG_FLAG_NONBLOCK)) != 0)
		die("nng_dial", rv);
	for (;;) {
		nng_msg *m;

		if ((rv = nng_recvmsg(s, &m, 0)) != 0)
			die("nng_recvmsg", rv);
		if (nng_msg_len(m) != strlen(QUESTION) ||
		    memcmp(nng_msg_body(m), QUESTION, strlen(QUESTION)) != 0) {
			nng_msg_free(m); /* not ours to answer */
			continue;
		}
		/* Answer in the same message: it carries the survey's id in
		 * its header, which is how the answer finds its survey. */
		nng_msg_clear(m);
		if ((rv = nng_msg_append(m, name, strlen(name))) != 0)
			die("nng_msg_append", rv);
		if ((rv = nng_sendmsg(s, m, 0)) != 0)
			die("nng_sendmsg", rv);
		printf("client %s: answered the roll call\n", name);
		fflush(stdout);
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
