/*
 * peer_common.h - what nng_peer and nanomsg_peer share: the command line,
 * payloads, printing and exit codes.  See interop/README.md for the CLI.
 */
#ifndef PEER_COMMON_H
#define PEER_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Exit codes: tests assert on these. */
enum {
	PEER_OK       = 0, /* everything asked for was done */
	PEER_EUSAGE   = 1, /* bad command line */
	PEER_ELIB     = 2, /* the library refused (open, dial, listen, send...) */
	PEER_ERECV    = 3, /* fewer messages than asked before --recv-timeout */
	PEER_EVERIFY  = 4, /* a reply did not match its request */
	PEER_ENOPEER  = 5, /* --wait-peer: nobody connected in time */
	PEER_ETIMEOUT = 6, /* --timeout: the whole run took too long */
};

enum peer_print { PRINT_BODY, PRINT_LEN, PRINT_HEX, PRINT_NONE };

struct peer_opts {
	const char     *proto; /* pair0 ... bus0 */
	int             dial;  /* else listen */
	const char     *url;
	const char     *url2; /* device: the URL the second socket dials */
	int             device;
	int             raw;
	int             poly;          /* pair1 polyamorous */
	long            send;          /* messages (requests, surveys) to send */
	long            recv;          /* messages to receive; -1 = not asked */
	int             echo;          /* serve: answer every request */
	long            ignore;        /* echo: leave the first N requests unanswered */
	const char     *data;          /* payload; "%d" is replaced by the number */
	const char     *prefix;        /* echo: prepended to the reply */
	const char     *expect_prefix; /* req: reply must be prefix + request */
	int             no_verify;
	size_t          size;        /* pad payloads to this many bytes */
	int             outstanding; /* req: concurrent requests */
	const char     *subs[64];
	int             nsubs;
	int             no_subscribe;
	int             resend_ms, survey_ms, recv_timeout_ms, send_timeout_ms; /* -1 = unset */
	int             reply_delay_ms;
	int             delay_ms;
	int             interval_ms;
	int             linger_ms;
	int             wait_peer; /* 0 = no; else wait for this many pipes */
	int             wait_peer_ms;
	int             timeout_s;
	int             show_header;
	enum peer_print print;
	const char     *port_file;
	const char     *ready_file;
	long            min_responses; /* surveyor: per survey */
	const char     *also_dial[16]; /* --also-dial: more endpoints of the */
	int             nalso_dial;    /* same socket (a bus mesh needs them) */
	const char     *also_listen[16];
	int             nalso_listen;
};

/* Parses argv into o; exits PEER_EUSAGE (with usage) on error.  prog is
 * the program name for the usage text; nanomsg says which options it
 * lacks through unsupported (a NULL-terminated list of option names). */
void peer_parse(
    int argc, char **argv, struct peer_opts *o, const char *prog, const char *const *unsupported);

/* Builds message number i: --data (with %d replaced) or "msg-%d", padded
 * with 'x' to --size.  Returns a malloc'ed buffer, *len its length. */
char *peer_payload(const struct peer_opts *o, long i, size_t *len);

/* A reply matches request i if it is --expect-prefix + request, or
 * (without --expect-prefix) if it ends with the request.  Returns PEER_OK
 * or PEER_EVERIFY (after saying so on stderr). */
int peer_verify(const struct peer_opts *o, long i, const void *reply, size_t len);

/* Prints one received message as --print says, one line, flushed. */
void peer_print(
    const struct peer_opts *o, const void *hdr, size_t hlen, const void *body, size_t len);

/* Writes s + "\n" to path (for --port-file / --ready-file). */
void peer_write_file(const char *path, const char *s);

void     peer_sleep_ms(int ms);
uint64_t peer_now_ms(void);
/* Prints "prog: error: ..." on stderr. */
void peer_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Starts the --timeout alarm (exit PEER_ETIMEOUT, or PEER_OK for a device,
 * whose normal end is being stopped). */
void peer_arm_timeout(const struct peer_opts *o);

/* The SP peer protocol name of proto ("req0" -> "rep0"), or NULL. */
const char *peer_peer_proto(const char *proto);

#endif /* PEER_COMMON_H */
