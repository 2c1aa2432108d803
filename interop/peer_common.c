/*
 * peer_common.c - command line, payloads, printing and exit codes shared by
 * the interop peers (nng_peer, nanomsg_peer).
 */
#define _GNU_SOURCE
#include "peer_common.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *prog_name = "peer";
static int         device_mode;

static const char *const protos[][2] = {
	{ "pair0", "pair0" },
	{ "pair1", "pair1" },
	{ "push0", "pull0" },
	{ "pull0", "push0" },
	{ "req0", "rep0" },
	{ "rep0", "req0" },
	{ "pub0", "sub0" },
	{ "sub0", "pub0" },
	{ "surveyor0", "respondent0" },
	{ "respondent0", "surveyor0" },
	{ "bus0", "bus0" },
};

const char *
peer_peer_proto(const char *proto)
{
	for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++)
		if (strcmp(protos[i][0], proto) == 0)
			return protos[i][1];
	return NULL;
}

static void
usage(const char *prog)
{
	fprintf(stderr,
	    "usage: %s PROTO dial|listen URL [options]\n"
	    "       %s device PROTO LISTEN-URL DIAL-URL|- [options]\n"
	    "PROTO: pair0 pair1 push0 pull0 req0 rep0 pub0 sub0 surveyor0 respondent0 bus0\n"
	    "  --raw                raw socket            --poly       pair1 polyamorous\n"
	    "  --send N             send N messages (req0: N requests, surveyor0: N surveys)\n"
	    "  --recv N             receive N messages, print each on a line\n"
	    "  --echo               answer each request with --prefix + request\n"
	    "  --ignore N           --echo: leave the first N requests unanswered\n"
	    "  --reply-delay MS     --echo: wait before answering\n"
	    "  --data STR           payload (%%d = message number) instead of msg-%%d\n"
	    "  --size N             pad payloads with 'x' to N bytes\n"
	    "  --prefix STR         --echo: prefix of replies\n"
	    "  --expect-prefix STR  req0: each reply must be STR + its request\n"
	    "  --no-verify          req0: do not check replies against requests\n"
	    "  --outstanding K      req0: K requests in flight (nng_ctx)\n"
	    "  --subscribe PREFIX   sub0 (repeatable; default everything)\n"
	    "  --no-subscribe       sub0: subscribe to nothing\n"
	    "  --resend-time MS  --survey-time MS  --recv-timeout MS  --send-timeout MS\n"
	    "  --delay MS           after dialing/listening, wait before the work\n"
	    "  --interval MS        between sends\n"
	    "  --wait-peer          wait for a connection before sending\n"
	    "  --wait-peers N       wait for N connections before sending\n"
	    "  --also-dial URL  --also-listen URL   more endpoints (repeatable)\n"
	    "  --wait-peer-time MS  how long (10000), then exit 5\n"
	    "  --linger MS          after sending, before closing (300)\n"
	    "  --min-responses N    surveyor0: per survey (1)\n"
	    "  --print body|len|hex|none   how received messages are shown (body)\n"
	    "  --quiet              --print none\n"
	    "  --show-header        print the SP header (hex) before the body\n"
	    "  --port-file F        write the bound tcp port to F after listening\n"
	    "  --ready-file F       write \"ready\" to F once dialed/listening\n"
	    "  --timeout S          give up after S seconds (30), exit 6\n"
	    "exit: 0 ok, 1 usage, 2 library error, 3 too few messages received,\n"
	    "      4 reply mismatch, 5 no peer, 6 timeout\n",
	    prog, prog);
	exit(PEER_EUSAGE);
}

static long
num(const char *prog, int argc, char **argv, int *i)
{
	char *end;
	long  v;

	if (*i + 1 >= argc)
		usage(prog);
	v = strtol(argv[++*i], &end, 10);
	if (*end != '\0' || v < 0)
		usage(prog);
	return v;
}

static const char *
str(const char *prog, int argc, char **argv, int *i)
{
	if (*i + 1 >= argc)
		usage(prog);
	return argv[++*i];
}

static void
check_supported(const char *prog, const char *opt, const char *const *unsupported)
{
	for (; unsupported != NULL && *unsupported != NULL; unsupported++)
		if (strcmp(*unsupported, opt) == 0) {
			fprintf(stderr, "%s: %s is not supported\n", prog, opt);
			exit(PEER_EUSAGE);
		}
}

static void
parse_print(const char *prog, const char *v, struct peer_opts *o)
{
	static const char *const names[] = { "body", "len", "hex", "none" };

	for (int k = 0; k < 4; k++)
		if (strcmp(v, names[k]) == 0) {
			o->print = (enum peer_print) k;
			return;
		}
	usage(prog);
}

/* One option at argv[*i]; returns 0 if it is not known. */
static int
parse_opt(const char *prog, int argc, char **argv, int *i, struct peer_opts *o)
{
	const char *a = argv[*i];

/* A table of macro statements, one option a line. */
/* clang-format off */
#define NUM(name, field) \
	if (strcmp(a, name) == 0) { \
		o->field = num(prog, argc, argv, i); \
		return 1; \
	}
#define STR(name, field) \
	if (strcmp(a, name) == 0) { \
		o->field = str(prog, argc, argv, i); \
		return 1; \
	}
#define FLAG(name, field) \
	if (strcmp(a, name) == 0) { \
		o->field = 1; \
		return 1; \
	}
	FLAG("--raw", raw) FLAG("--poly", poly) FLAG("--echo", echo)
	FLAG("--no-verify", no_verify) FLAG("--no-subscribe", no_subscribe)
	FLAG("--wait-peer", wait_peer) FLAG("--show-header", show_header)
	NUM("--send", send) NUM("--recv", recv) NUM("--ignore", ignore)
	NUM("--size", size) NUM("--outstanding", outstanding)
	NUM("--resend-time", resend_ms) NUM("--survey-time", survey_ms)
	NUM("--recv-timeout", recv_timeout_ms) NUM("--send-timeout", send_timeout_ms)
	NUM("--reply-delay", reply_delay_ms) NUM("--delay", delay_ms)
	NUM("--interval", interval_ms) NUM("--linger", linger_ms)
	NUM("--wait-peer-time", wait_peer_ms) NUM("--timeout", timeout_s)
	NUM("--min-responses", min_responses) NUM("--wait-peers", wait_peer)
	STR("--data", data) STR("--prefix", prefix) STR("--expect-prefix", expect_prefix)
	STR("--port-file", port_file) STR("--ready-file", ready_file)
#undef NUM
#undef STR
#undef FLAG
	    /* clang-format on */
	    if (strcmp(a, "--subscribe") == 0)
	{
		if (o->nsubs == (int) (sizeof(o->subs) / sizeof(o->subs[0])))
			usage(prog);
		o->subs[o->nsubs++] = str(prog, argc, argv, i);
		return 1;
	}
	if (strcmp(a, "--also-dial") == 0 || strcmp(a, "--also-listen") == 0) {
		int  dial = strcmp(a, "--also-dial") == 0;
		int *n    = dial ? &o->nalso_dial : &o->nalso_listen;

		if (*n == (int) (sizeof(o->also_dial) / sizeof(o->also_dial[0])))
			usage(prog);
		(dial ? o->also_dial : o->also_listen)[(*n)++] = str(prog, argc, argv, i);
		return 1;
	}
	if (strcmp(a, "--print") == 0) {
		parse_print(prog, str(prog, argc, argv, i), o);
		return 1;
	}
	if (strcmp(a, "--quiet") == 0) {
		o->print = PRINT_NONE;
		return 1;
	}
	return 0;
}

void
peer_parse(
    int argc, char **argv, struct peer_opts *o, const char *prog, const char *const *unsupported)
{
	int i = 0;

	prog_name = prog;
	*o        = (struct peer_opts) { .recv = -1,
		       .prefix                 = "",
		       .outstanding            = 1,
		       .resend_ms              = -1,
		       .survey_ms              = -1,
		       .recv_timeout_ms        = -1,
		       .send_timeout_ms        = -1,
		       .linger_ms              = 300,
		       .wait_peer_ms           = 10000,
		       .timeout_s              = 30,
		       .min_responses          = 1 };
	if (argc >= 5 && strcmp(argv[1], "device") == 0) {
		o->device = 1;
		o->proto  = argv[2];
		o->url    = argv[3];
		o->url2   = argv[4];
		i         = 5;
	} else if (argc >= 4 && (strcmp(argv[2], "dial") == 0 || strcmp(argv[2], "listen") == 0)) {
		o->proto = argv[1];
		o->dial  = strcmp(argv[2], "dial") == 0;
		o->url   = argv[3];
		i        = 4;
	} else {
		usage(prog);
	}
	if (peer_peer_proto(o->proto) == NULL)
		usage(prog);
	for (; i < argc; i++) {
		check_supported(prog, argv[i], unsupported);
		if (!parse_opt(prog, argc, argv, &i, o))
			usage(prog);
	}
	if (o->outstanding < 1)
		usage(prog);
	device_mode = o->device;
}

char *
peer_payload(const struct peer_opts *o, long i, size_t *len)
{
	const char *tmpl = o->data != NULL ? o->data : "msg-%d";
	const char *pct  = strstr(tmpl, "%d");
	size_t      n;
	char       *buf;
	int         nlen;
	char        nbuf[32];

	/* Only "%d" is replaced, by hand: --data never reaches printf. */
	nlen = pct != NULL ? snprintf(nbuf, sizeof(nbuf), "%ld", i) : 0;
	n    = strlen(tmpl) - (pct != NULL ? 2 : 0) + (size_t) nlen;
	*len = n > o->size ? n : o->size;
	buf  = malloc(*len + 1);
	if (pct != NULL) {
		size_t head = (size_t) (pct - tmpl);

		memcpy(buf, tmpl, head);
		memcpy(buf + head, nbuf, (size_t) nlen);
		memcpy(buf + head + (size_t) nlen, pct + 2, strlen(pct + 2));
	} else {
		memcpy(buf, tmpl, n);
	}
	memset(buf + n, 'x', *len - n);
	buf[*len] = '\0';
	return buf;
}

int
peer_verify(const struct peer_opts *o, long i, const void *reply, size_t rlen)
{
	size_t      len, plen = o->expect_prefix ? strlen(o->expect_prefix) : 0;
	char       *req  = peer_payload(o, i, &len);
	const char *body = reply;
	int         ok;

	if (o->no_verify)
		ok = 1;
	else if (o->expect_prefix != NULL)
		ok = rlen == plen + len && memcmp(body, o->expect_prefix, plen) == 0 &&
		     memcmp(body + plen, req, len) == 0;
	else
		ok = rlen >= len && memcmp(body + rlen - len, req, len) == 0;
	if (!ok)
		peer_err("reply to request %ld does not match it", i);
	free(req);
	return ok ? PEER_OK : PEER_EVERIFY;
}

static void
put_hex(const unsigned char *p, size_t n)
{
	for (size_t k = 0; k < n; k++)
		printf("%02x", p[k]);
}

/* Printable ASCII as is, anything else (and the backslash) escaped, so
 * one message is always one line. */
static void
put_escaped(const unsigned char *p, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		if (p[k] == '\\')
			fputs("\\\\", stdout);
		else if (p[k] >= 0x20 && p[k] < 0x7f)
			putchar(p[k]);
		else
			printf("\\x%02x", p[k]);
	}
}

void
peer_print(const struct peer_opts *o, const void *hdr, size_t hlen, const void *body, size_t len)
{
	if (o->print == PRINT_NONE)
		return;
	if (o->show_header) {
		putchar('[');
		put_hex(hdr, hlen);
		fputs("] ", stdout);
	}
	if (o->print == PRINT_LEN)
		printf("%zu", len);
	else if (o->print == PRINT_HEX)
		put_hex(body, len);
	else
		put_escaped(body, len);
	putchar('\n');
	fflush(stdout);
}

void
peer_write_file(const char *path, const char *s)
{
	char  tmp[4096];
	FILE *f;

	/* Written whole and renamed, so a test polling for it never reads
	 * half a line. */
	snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int) getpid());
	if ((f = fopen(tmp, "w")) == NULL) {
		peer_err("cannot write %s", tmp);
		return;
	}
	fprintf(f, "%s\n", s);
	fclose(f);
	if (rename(tmp, path) != 0)
		peer_err("cannot rename %s", tmp);
}

void
peer_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };

	while (ms > 0 && nanosleep(&ts, &ts) != 0) {
	}
}

uint64_t
peer_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

void
peer_err(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: error: ", prog_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
}

/* A device's normal end is being stopped (alarm, SIGTERM, SIGINT): that
 * is success.  Anything else that runs out of time failed. */
static void
on_signal(int sig)
{
	static const char msg[] = "peer: timeout\n";

	/* stdout is flushed after every line, so nothing is lost here. */
	if (device_mode)
		_exit(PEER_OK);
	if (write(2, msg, sizeof(msg) - 1) < 0) {
	}
	_exit(PEER_ETIMEOUT);
}

void
peer_arm_timeout(const struct peer_opts *o)
{
	signal(SIGALRM, on_signal);
	if (o->device) {
		signal(SIGTERM, on_signal);
		signal(SIGINT, on_signal);
	}
	signal(SIGPIPE, SIG_IGN);
	if (o->timeout_s > 0)
		alarm((unsigned) o->timeout_s);
}
