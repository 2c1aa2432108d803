/*
 * bench_zmq.c - the libzmq driver of the benchmark (the anchor iok is
 * measured against).  Tuned the way libzmq's own perf tools are: deep
 * high-water marks so the sender never stalls on a short queue, one reused
 * zmq_msg_t for receiving, XPUB so the publisher can see its subscribers
 * arrive, DEALER/ROUTER for many requests in flight on one socket.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <zmq.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Messages queued per connection before PUSH blocks or PUB drops.  Deep
 * enough never to be the bottleneck, bounded so a fast publisher cannot
 * eat the machine's memory. */
#define ZMQ_QLEN 100000
#define BAD_REPLY 10001

static void *ctx;

struct zsock {
	void     *s;
	zmq_msg_t msg; /* reused by every receive */
};

static int
kind_type(const char *kind)
{
	static const struct {
		const char *kind;
		int         type;
	} map[] = { { "push", ZMQ_PUSH }, { "pull", ZMQ_PULL }, { "req", ZMQ_REQ },
		{ "rep", ZMQ_REP }, { "pub", ZMQ_XPUB }, { "pub-nodrop", ZMQ_XPUB },
		{ "sub", ZMQ_SUB } };

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(map[i].kind, kind) == 0)
			return map[i].type;
	return -1;
}

static int
set_int(void *s, int opt, int v)
{
	return zmq_setsockopt(s, opt, &v, sizeof(v)) == 0 ? 0 : errno;
}

static int
z_open(void **sp, const char *kind)
{
	int           type = kind_type(kind), rv = 0;
	struct zsock *zs;

	if (type < 0)
		return ENOTSUP;
	zs = calloc(1, sizeof(*zs));
	if ((zs->s = zmq_socket(ctx, type)) == NULL) {
		free(zs);
		return errno;
	}
	set_int(zs->s, ZMQ_SNDHWM, ZMQ_QLEN);
	set_int(zs->s, ZMQ_RCVHWM, ZMQ_QLEN);
	if (type == ZMQ_XPUB) /* every subscription reaches us, duplicates too */
		rv = set_int(zs->s, ZMQ_XPUB_VERBOSE, 1);
	if (rv == 0 && strcmp(kind, "pub-nodrop") == 0) /* sends wait at the HWM */
		rv = set_int(zs->s, ZMQ_XPUB_NODROP, 1);
	if (type == ZMQ_SUB)
		rv = zmq_setsockopt(zs->s, ZMQ_SUBSCRIBE, "", 0) == 0 ? 0 : errno;
	if (rv != 0) {
		zmq_close(zs->s);
		free(zs);
		return rv;
	}
	zmq_msg_init(&zs->msg);
	*sp = zs;
	return 0;
}

static int
z_listen(void *s, const char *url)
{
	return zmq_bind(((struct zsock *) s)->s, url) == 0 ? 0 : errno;
}

static int
z_dial(void *s, const char *url)
{
	return zmq_connect(((struct zsock *) s)->s, url) == 0 ? 0 : errno;
}

static int
z_send(void *s, const void *buf, size_t len)
{
	while (zmq_send(((struct zsock *) s)->s, buf, len, 0) < 0)
		if (errno != EINTR)
			return errno;
	return 0;
}

static int
z_recv(void *s, void *buf, size_t cap, size_t *len)
{
	struct zsock *zs = s;

	while (zmq_msg_recv(&zs->msg, zs->s, 0) < 0) {
		if (errno == EAGAIN)
			return BENCH_TIMEOUT;
		if (errno != EINTR)
			return errno;
	}
	*len = zmq_msg_size(&zs->msg);
	if (cap > 0)
		memcpy(buf, zmq_msg_data(&zs->msg), *len < cap ? *len : cap);
	return 0;
}

static int
z_set_recv_timeout(void *s, int ms)
{
	return set_int(((struct zsock *) s)->s, ZMQ_RCVTIMEO, ms);
}

/* XPUB hands us each subscriber's subscribe message (0x01 + prefix). */
static int
z_wait_peers(void *s, int n, int timeout_ms)
{
	struct zsock *zs   = s;
	int           seen = 0, rv = 0;
	size_t        len = 0;
	char          c   = 0;

	if ((rv = z_set_recv_timeout(s, timeout_ms)) != 0)
		return rv;
	while (seen < n && (rv = z_recv(zs, &c, 1, &len)) == 0)
		if (len >= 1 && c == 1)
			seen++;
	z_set_recv_timeout(s, -1);
	return rv == BENCH_TIMEOUT ? ETIMEDOUT : rv;
}

static void
z_close(void *s)
{
	struct zsock *zs = s;

	/* Everyone has confirmed the work is done: nothing left to flush. */
	set_int(zs->s, ZMQ_LINGER, 0);
	zmq_msg_close(&zs->msg);
	zmq_close(zs->s);
	free(zs);
}

static const char *
z_strerror(int err)
{
	return err == BAD_REPLY ? "reply does not match its request" : zmq_strerror(err);
}

/* --------------------------------- rr: DEALER with K requests in flight */

static int
send_req(void *s, char *buf, size_t size, uint64_t seq)
{
	bench_fill(buf, size, seq);
	while (zmq_send(s, buf, size, 0) < 0)
		if (errno != EINTR)
			return errno;
	return 0;
}

/* A ROUTER answers in order over one connection, so replies must come
 * back in sequence: *next is the sequence number expected next. */
static int
rr_run(void *s, char *buf, size_t size, int par, long total, uint64_t *next)
{
	uint64_t issued = *next, end = *next + (uint64_t) total;
	int      rv, n;

	for (int i = 0; i < par && issued < end; i++)
		if ((rv = send_req(s, buf, size, issued++)) != 0)
			return rv;
	while (*next < end) {
		if ((n = zmq_recv(s, buf, size, 0)) < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		if ((size_t) n != size || bench_seq(buf, size) != *next)
			return BAD_REPLY;
		++*next;
		if (issued < end && (rv = send_req(s, buf, size, issued++)) != 0)
			return rv;
	}
	return 0;
}

static int
z_rr_req(const struct bopts *o)
{
	void            *s   = zmq_socket(ctx, ZMQ_DEALER);
	char            *buf = calloc(1, o->size + 8);
	uint64_t         t0, t1, next = 0;
	struct bench_cpu c0;
	int              rv;

	if (s == NULL || zmq_connect(s, o->url) != 0) {
		rv = errno;
		goto out;
	}
	if (o->warmup > 0 && (rv = rr_run(s, buf, o->size, o->par, o->warmup, &next)) != 0)
		goto out;
	bench_cpu_read(&c0);
	t0 = bench_now_ns();
	if ((rv = rr_run(s, buf, o->size, o->par, o->count, &next)) != 0)
		goto out;
	t1 = bench_now_ns();
	bench_rr_result(o, &c0, t0, t1, "");
	bench_hold(o);
out:
	if (rv != 0)
		bench_fail("rr req: %s", z_strerror(rv));
	if (s != NULL) {
		set_int(s, ZMQ_LINGER, 0);
		zmq_close(s);
	}
	free(buf);
	return rv != 0;
}

/* ------------------------------------------ rr: ROUTER echo server */

/* One request: [peer identity][body]; echoed back the same way. */
static int
echo_one(void *s, zmq_msg_t *id, zmq_msg_t *body)
{
	if (zmq_msg_recv(id, s, 0) < 0)
		return errno == EAGAIN ? BENCH_TIMEOUT : errno;
	if (zmq_msg_recv(body, s, 0) < 0 || zmq_msg_send(id, s, ZMQ_SNDMORE) < 0 ||
	    zmq_msg_send(body, s, 0) < 0)
		return errno;
	return 0;
}

static int
z_rr_rep(const struct bopts *o)
{
	void     *s = zmq_socket(ctx, ZMQ_ROUTER);
	zmq_msg_t id, body;
	int       rv = 0;

	zmq_msg_init(&id);
	zmq_msg_init(&body);
	if (s == NULL || zmq_bind(s, o->url) != 0 || set_int(s, ZMQ_RCVTIMEO, 100) != 0) {
		rv = errno;
		goto out;
	}
	bench_ready(o);
	while (!bench_stop_requested()) {
		rv = echo_one(s, &id, &body);
		if (rv == BENCH_TIMEOUT || rv == EINTR)
			rv = 0;
		else if (rv != 0)
			goto out;
	}
	bench_hold(o);
out:
	if (rv != 0)
		bench_fail("rr rep: %s", z_strerror(rv));
	zmq_msg_close(&id);
	zmq_msg_close(&body);
	if (s != NULL) {
		set_int(s, ZMQ_LINGER, 0);
		zmq_close(s);
	}
	return rv != 0;
}

static const char *
z_version(void)
{
	static char v[32];
	int         major, minor, patch;

	zmq_version(&major, &minor, &patch);
	snprintf(v, sizeof(v), "%d.%d.%d", major, minor, patch);
	return v;
}

static int
z_init(void)
{
	ctx = zmq_ctx_new();
	return ctx != NULL ? 0 : errno;
}

static void
z_fini(void)
{
	zmq_ctx_term(ctx);
}

const struct bench_lib bench_lib = {
	.name             = "zmq",
	.version          = z_version,
	.init             = z_init,
	.fini             = z_fini,
	.strerror         = z_strerror,
	.open             = z_open,
	.listen           = z_listen,
	.dial             = z_dial,
	.send             = z_send,
	.recv             = z_recv,
	.set_recv_timeout = z_set_recv_timeout,
	.wait_peers       = z_wait_peers,
	.close            = z_close,
	.rr_req           = z_rr_req,
	.rr_rep           = z_rr_rep,
	.rr_method        = "one DEALER socket with K requests in flight; ROUTER echo server",
	.io_thread        = "ZMQbg/IO",
};
