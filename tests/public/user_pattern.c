/*
 * user_pattern.c - a pattern written outside the library, against iok.h
 * alone, linked to the shared library only: "shout0" speaks pair0's wire
 * protocol to one peer and delivers what it receives upper-cased, so a
 * message that comes back changed has gone through the user's code.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <iok.h>

#define CHECK(c)                                                                              \
	do {                                                                                  \
		if (!(c)) {                                                                   \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); \
			exit(1);                                                              \
		}                                                                             \
	} while (0)
#define OK(e)                                                                                      \
	do {                                                                                       \
		int rv_ = (e);                                                                     \
		if (rv_ != 0) {                                                                    \
			fprintf(                                                                   \
			    stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #e, iok_strerror(rv_)); \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

/* Kernel-thread state: no locks, as every pattern. */
struct shout {
	iok_pattern_socket *s;
	iok_pattern_pipe   *peer; /* the one connection, or NULL */
	int                 inits, finis;
};

static int fini_count; /* read after iok_fini, which joins the kernel thread */

static int
shout_init(void *ps, iok_pattern_socket *s, int raw)
{
	struct shout *st = ps;
	st->s            = s;
	st->inits++;
	return raw ? IOK_ENOTSUP : 0;
}

static void
shout_fini(void *ps)
{
	(void) ps;
	fini_count++;
}

static int
shout_pipe_add(void *ps, void *pp, iok_pattern_pipe *p)
{
	struct shout *st = ps;
	(void) pp;
	if (st->peer != NULL) {
		return IOK_EBUSY; /* one peer, as pair0 */
	}
	st->peer = p;
	iok_pattern_send_ready(st->s); /* sends held while alone can go */
	return 0;
}

static void
shout_pipe_rm(void *ps, void *pp)
{
	struct shout *st = ps;
	(void) pp;
	st->peer = NULL;
}

static int
shout_send(void *ps, iok_msg *m)
{
	struct shout *st = ps;
	if (st->peer == NULL) {
		return IOK_PATTERN_BUSY; /* kept until pipe_add */
	}
	(void) iok_pattern_pipe_send(st->peer, m); /* dropped if closing */
	return IOK_PATTERN_OK;
}

static int
shout_recv(void *ps, void *pp, iok_msg *m)
{
	struct shout  *st = ps;
	unsigned char *b  = iok_msg_body(m);
	(void) pp;
	for (size_t i = 0; i < iok_msg_len(m); i++) {
		b[i] = (unsigned char) toupper(b[i]);
	}
	return iok_pattern_deliver(st->s, m);
}

static const iok_pattern shout = {
	.name      = "shout0",
	.peer_name = "pair0",
	.proto     = 0x10, /* pair0 on the wire */
	.peer      = 0x10,
	.flags     = IOK_PATTERN_SEND | IOK_PATTERN_RECV,
	.sock_size = sizeof(struct shout),
	.init      = shout_init,
	.fini      = shout_fini,
	.pipe_add  = shout_pipe_add,
	.pipe_rm   = shout_pipe_rm,
	.send      = shout_send,
	.recv      = shout_recv,
};

static void
exchange(const char *url)
{
	iok_socket s, p, extra;
	char       buf[64];
	size_t     n;
	char      *str;
	int        v;

	OK(iok_socket_open(&s, "shout")); /* the version-less alias */
	OK(iok_pair0_open(&p));
	OK(iok_socket_set_ms(s, IOK_OPT_RECVTIMEO, 10000));
	OK(iok_socket_set_ms(p, IOK_OPT_RECVTIMEO, 10000));
	OK(iok_socket_get_int(s, IOK_OPT_PROTO, &v));
	CHECK(v == 0x10);
	OK(iok_socket_get_string(s, IOK_OPT_PROTONAME, &str));
	CHECK(strcmp(str, "shout0") == 0);
	iok_strfree(str);
	/* Sent before any peer: the pattern refuses, the core keeps it. */
	OK(iok_send(s, "early", 5, 0));
	OK(iok_listen(s, url, NULL, 0));
	OK(iok_dial(p, url, NULL, 0));
	n = sizeof(buf);
	OK(iok_recv(p, buf, &n, 0));
	CHECK(n == 5 && memcmp(buf, "early", 5) == 0);
	/* Through the user's recv: upper-cased. */
	OK(iok_send(p, "hello, pattern", 14, 0));
	n = sizeof(buf);
	OK(iok_recv(s, buf, &n, 0));
	CHECK(n == 14 && memcmp(buf, "HELLO, PATTERN", 14) == 0);
	/* A second peer is refused by pipe_add; the first keeps working. */
	OK(iok_pair0_open(&extra));
	(void) iok_dial(extra, url, NULL, IOK_FLAG_NONBLOCK);
	OK(iok_send(p, "still", 5, 0));
	n = sizeof(buf);
	OK(iok_recv(s, buf, &n, 0));
	CHECK(n == 5 && memcmp(buf, "STILL", 5) == 0);
	OK(iok_close(extra));
	OK(iok_close(p));
	OK(iok_close(s));
}

int
main(int argc, char **argv)
{
	iok_pattern bad = shout;
	iok_socket  s;
	char        url[256];
	(void) argc;

	OK(iok_pattern_register(&shout));
	CHECK(iok_pattern_register(&shout) == IOK_EEXIST);
	bad.name = "pair0";
	CHECK(iok_pattern_register(&bad) == IOK_EEXIST); /* built-ins stay */
	bad.name = "nosend0";
	bad.send = NULL;
	CHECK(iok_pattern_register(&bad) == IOK_EINVAL);
	bad       = shout;
	bad.name  = "badflags0";
	bad.flags = 0x80;
	CHECK(iok_pattern_register(&bad) == IOK_EINVAL);
	CHECK(iok_pattern_register(NULL) == IOK_EINVAL);
	CHECK(iok_socket_open_raw(&s, "shout0") == IOK_ENOTSUP);

	exchange("inproc://user-pattern");
	snprintf(url, sizeof(url), "ipc://%s/user-pattern.sock", argc > 1 ? argv[1] : "/tmp");
	exchange(url);
	iok_fini();
	CHECK(fini_count >= 2);
	printf("ok\n");
	return 0;
}
