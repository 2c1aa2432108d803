/*
 * bench.h - the harness shared by bench_iok, bench_nng and bench_zmq.
 *
 * Every benchmark binary is this harness (bench_main.c) plus one driver
 * file that adapts a messaging library to struct bench_lib.  The simple
 * scenarios (throughput, latency, fan-out, memory) are written once in
 * bench_main.c against the driver, so the three libraries do exactly the
 * same work; the scenario that needs each library's own concurrency tools
 * (many requests in flight) is written per driver (rr_req / rr_rep).
 */
#ifndef BENCH_H
#define BENCH_H

#include <stddef.h>
#include <stdint.h>

/* recv() result when the receive timeout expired. */
#define BENCH_TIMEOUT (-2)

/* Options from the command line, one copy per role (threads get their own
 * copy in "both" mode). */
struct bopts {
	const char *test; /* thr lat rr fan mem */
	const char *role;
	const char *url;
	size_t      size;       /* message size, bytes */
	long        count;      /* messages, round trips or requests; mem: conns */
	int         par;        /* rr: requests outstanding on one socket */
	int         subs;       /* fan: subscribers the publisher waits for */
	int         nodrop;     /* fan: a lossless publisher ("pub-nodrop") */
	int         raw;        /* rr: the library's raw sockets, if it has a choice (iok) */
	long        warmup;     /* lat/rr: untimed round trips first */
	int         id;         /* fan: subscriber index, for the output */
	int         wait_stdin; /* after the work, hold until stdin reaches EOF */
	int         linger_ms;  /* else hold this long */
	int         timeout_s;  /* the whole process dies after this (alarm) */
	int         both;       /* all roles as threads of this process */
	int         is_client;  /* the dialing side (set by the harness) */
};

/* A library driver.  Socket kinds: "push" "pull" "req" "rep" "pub" "sub",
 * and "pub-nodrop": a publisher that waits for its slowest subscriber
 * instead of dropping for it (open fails with the library's "not
 * supported" code where there is no such setting).
 * A "sub" socket is opened subscribed to everything; a "pub" socket is one
 * whose wait_peers() can tell when subscribers are there.  Every function
 * returns 0 or a positive library error code (recv also BENCH_TIMEOUT). */
struct bench_lib {
	const char *name;
	const char *(*version)(void);
	int (*init)(void);
	void (*fini)(void);
	const char *(*strerror)(int err);
	int (*open)(void **sp, const char *kind);
	int (*listen)(void *s, const char *url);
	int (*dial)(void *s, const char *url);
	int (*send)(void *s, const void *buf, size_t len);
	/* Copies min(cap, message length) bytes into buf (buf may be NULL
	 * with cap 0 to discard) and sets *len to the message length. */
	int (*recv)(void *s, void *buf, size_t cap, size_t *len);
	/* Writes out whatever send() gathered (NULL: send never gathers). */
	int (*flush)(void *s);
	int (*set_recv_timeout)(void *s, int ms);
	/* Waits until at least n peers are connected (pub: subscribed). */
	int (*wait_peers)(void *s, int n, int timeout_ms);
	void (*close)(void *s);
	/* rr: requests/s with o->par requests outstanding on one socket. */
	int (*rr_req)(const struct bopts *o);
	int (*rr_rep)(const struct bopts *o);
	const char *rr_method; /* how rr_req/rr_rep do it, for the output */
	/* The name (or its start) the library gives its I/O thread, NULL if
	 * none is measured: rr reports that thread's CPU per request. */
	const char *io_thread;
};

extern const struct bench_lib bench_lib;

/* ---- harness services, for drivers */

uint64_t bench_now_ns(void);
void     bench_sleep_ms(int ms);
/* The listening role calls this once bound: prints READY (so the runner
 * starts the dialers) or, in "both" mode, releases the client threads. */
void bench_ready(const struct bopts *o);
/* Every role calls this when its work is done, before closing: it keeps
 * the connection up until every other party has finished too. */
void bench_hold(const struct bopts *o);
/* Servers with an open-ended loop (rr_rep) poll this to know when to stop. */
int bench_stop_requested(void);
/* Prints "RESULT lib=... test=... role=..." and the given key=value text. */
void bench_result(const struct bopts *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* CPU used so far by this process, and by its threads whose name starts
 * with bench_lib.io_thread (/proc/self/task/<tid>/schedstat; 0 when the
 * library names none or the kernel keeps no schedstat). */
struct bench_cpu {
	uint64_t process_ns;
	uint64_t io_ns;
};
void bench_cpu_read(struct bench_cpu *c);
/* The rr requester's RESULT line for count requests timed from t0 to t1
 * (bench_now_ns), with CPU per request since c0: cpu_us_per_req for this
 * process (in "both" mode requester and replier together), io_us_per_req
 * for the library's I/O thread.  On a shared VM CPU per request moves
 * less from run to run than requests/s.  extra: more key=value text. */
void bench_rr_result(
    const struct bopts *o, const struct bench_cpu *c0, uint64_t t0, uint64_t t1, const char *extra);
/* Prints an error to stderr and returns 1 (so: return bench_fail(...)). */
int bench_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Writes seq into the first 8 bytes of a message of len bytes, zero rest. */
void     bench_fill(void *buf, size_t len, uint64_t seq);
uint64_t bench_seq(const void *buf, size_t len);

#endif /* BENCH_H */
