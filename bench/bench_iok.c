/*
 * bench_iok.c - the iok driver of the benchmark.  Uses only include/iok.h;
 * many requests in flight go through iok_request tokens on one req0
 * socket, answered by one rep0 socket through iok_reply; with --raw, raw
 * req0/rep0 and request ids the program matches itself (as libzmq's
 * DEALER/ROUTER driver does).
 */
#define _GNU_SOURCE
#include "bench.h"

#include "iok.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Queue lengths, as deep as the nng driver's so neither is throttled by a
 * short queue; a build that does not take the option keeps its default. */
#ifndef IOK_QLEN
#define IOK_QLEN 8192
#endif
#define BAD_REPLY 10001

struct isock {
	iok_socket s;
};

static iok_socket
sock_of(void *s)
{
	return ((struct isock *) s)->s;
}

static int
i_open(void **sp, const char *kind)
{
	int           nodrop = strcmp(kind, "pub-nodrop") == 0;
	char          name[16];
	struct isock *is;
	int           rv;

	if (nodrop)
		kind = "pub";
	snprintf(name, sizeof(name), "%s0", kind);
	is = calloc(1, sizeof(*is));
	if ((rv = iok_socket_open(&is->s, name)) != 0) {
		free(is);
		return rv;
	}
	if (IOK_QLEN > 0) { /* -DIOK_QLEN=0 keeps iok's defaults */
		iok_socket_set_int(is->s, IOK_OPT_SENDBUF, IOK_QLEN);
		iok_socket_set_int(is->s, IOK_OPT_RECVBUF, IOK_QLEN);
		if (strcmp(kind, "pub") == 0) {
			/* Per-subscriber queue as deep as the zmq bench's HWM
			 * (100000 messages). */
			iok_socket_set_int(is->s, IOK_OPT_PUB_QUEUE_LEN, 100000);
		}
	}
	if (nodrop && (rv = iok_socket_set_bool(is->s, IOK_OPT_PUB_NODROP, 1)) != 0) {
		iok_close(is->s);
		free(is);
		return rv;
	}
	if (strcmp(kind, "sub") == 0) {
		/* zmq's policy (as the zmq bench has it): a slow subscriber
		 * keeps what it has and pushes back; the publisher drops. */
		iok_socket_set_bool(is->s, IOK_OPT_SUB_PREFNEW, 0);
	}
	if (strcmp(kind, "sub") == 0 &&
	    (rv = iok_socket_set(is->s, IOK_OPT_SUB_SUBSCRIBE, "", 0)) != 0) {
		iok_close(is->s);
		free(is);
		return rv;
	}
	*sp = is;
	return 0;
}

static int
i_listen(void *s, const char *url)
{
	return iok_listen(sock_of(s), url, NULL, 0);
}

/* Waits for the first attempt so errors show; a refused one (listener not
 * up yet, manual use) keeps redialing in the background. */
static int
dial_sock(iok_socket s, const char *url)
{
	int rv = iok_dial(s, url, NULL, 0);

	return rv == IOK_ECONNREFUSED ? 0 : rv;
}

static int
i_dial(void *s, const char *url)
{
	return dial_sock(sock_of(s), url);
}

static int
i_send(void *s, const void *buf, size_t len)
{
	return iok_send(sock_of(s), buf, len, 0);
}

static int
i_recv(void *s, void *buf, size_t cap, size_t *len)
{
	iok_msg *m;
	int      rv = iok_recvmsg(sock_of(s), &m, 0);

	if (rv != 0)
		return rv == IOK_ETIMEDOUT ? BENCH_TIMEOUT : rv;
	*len = iok_msg_len(m);
	if (cap > 0)
		memcpy(buf, iok_msg_body(m), *len < cap ? *len : cap);
	iok_msg_free(m);
	return 0;
}

static int
i_set_recv_timeout(void *s, int ms)
{
	return iok_socket_set_ms(sock_of(s), IOK_OPT_RECVTIMEO, ms);
}

/* iok filters at the subscriber (like nng): a connected pipe is a
 * subscriber. */
static int
i_wait_peers(void *s, int n, int timeout_ms)
{
	uint64_t deadline = bench_now_ns() + (uint64_t) timeout_ms * 1000000u;
	uint64_t pipes    = 0;
	int      rv;

	for (;;) {
		if ((rv = iok_socket_get_uint64(sock_of(s), "stat:pipes", &pipes)) != 0)
			return rv;
		if (pipes >= (uint64_t) n)
			return 0;
		if (bench_now_ns() > deadline)
			return IOK_ETIMEDOUT;
		bench_sleep_ms(1);
	}
}

static void
i_close(void *s)
{
	iok_close(sock_of(s));
	free(s);
}

static const char *
i_strerror(int err)
{
	return err == BAD_REPLY ? "reply does not match its request" : iok_strerror(err);
}

static int i_rr_req_raw(const struct bopts *o);

/* ------------------------------- rr: K tokens in flight on one req0 */

struct slot {
	uint64_t token, seq;
};

static int
issue(iok_socket s, struct slot *sl, size_t size, uint64_t seq)
{
	iok_msg *m;
	int      rv;

	if ((rv = iok_msg_alloc(&m, size)) != 0)
		return rv;
	bench_fill(iok_msg_body(m), size, seq);
	if ((rv = iok_request(s, m, &sl->token, 0)) != 0) {
		iok_msg_free(m);
		return rv;
	}
	sl->seq = seq;
	return 0;
}

static struct slot *
find_slot(struct slot *slots, int n, uint64_t token)
{
	for (int i = 0; i < n; i++)
		if (slots[i].token == token)
			return &slots[i];
	return NULL;
}

/* Checks one completion and frees it; returns its slot or NULL. */
static struct slot *
complete(iok_msg *m, struct slot *slots, int n, size_t size, int *rv)
{
	struct slot *sl = find_slot(slots, n, iok_msg_token(m));

	if ((*rv = iok_msg_status(m)) == 0 &&
	    (sl == NULL || iok_msg_len(m) != size || bench_seq(iok_msg_body(m), size) != sl->seq))
		*rv = BAD_REPLY;
	iok_msg_free(m);
	return *rv == 0 ? sl : NULL;
}

static int
rr_run(iok_socket s, struct slot *slots, const struct bopts *o, long total, uint64_t *seq)
{
	long issued = 0, done = 0;
	int  rv = 0, n = 0;

	for (; n < o->par && issued < total; n++, issued++)
		if ((rv = issue(s, &slots[n], o->size, (*seq)++)) != 0)
			return rv;
	while (done < total) {
		struct slot *sl;
		iok_msg     *m;

		if ((rv = iok_recvmsg(s, &m, 0)) != 0)
			return rv;
		if ((sl = complete(m, slots, n, o->size, &rv)) == NULL)
			return rv;
		done++;
		sl->token = 0;
		if (issued < total) {
			if ((rv = issue(s, sl, o->size, (*seq)++)) != 0)
				return rv;
			issued++;
		}
	}
	return 0;
}

static int
i_rr_req(const struct bopts *o)
{
	struct slot     *slots = calloc((size_t) o->par, sizeof(*slots));
	iok_socket       s     = IOK_SOCKET_INITIALIZER;
	uint64_t         t0, t1, seq = 1;
	struct bench_cpu c0;
	int              rv;

	if (o->raw) {
		free(slots);
		return i_rr_req_raw(o);
	}
	if ((rv = iok_req0_open(&s)) != 0 || (rv = dial_sock(s, o->url)) != 0)
		goto out;
	if (o->warmup > 0 && (rv = rr_run(s, slots, o, o->warmup, &seq)) != 0)
		goto out;
	bench_cpu_read(&c0);
	t0 = bench_now_ns();
	if ((rv = rr_run(s, slots, o, o->count, &seq)) != 0)
		goto out;
	t1 = bench_now_ns();
	bench_rr_result(o, &c0, t0, t1, "");
	bench_hold(o);
out:
	if (rv != 0)
		bench_fail("rr req: %s", i_strerror(rv));
	iok_close(s);
	free(slots);
	return rv != 0;
}

/* ------------------------- rr --raw: raw req0, K request ids in flight */

/* What libzmq's DEALER does: the application puts a request id (nng's
 * 32-bit, high bit set) in the header and matches replies itself; the
 * socket tracks nothing, times nothing out, resends nothing. */
static int
issue_raw(iok_socket s, size_t size, uint64_t seq)
{
	iok_msg *m;
	uint8_t  id[4];
	uint32_t v = (uint32_t) seq | 0x80000000u;
	int      rv;

	if ((rv = iok_msg_alloc(&m, size)) != 0)
		return rv;
	bench_fill(iok_msg_body(m), size, seq);
	id[0] = (uint8_t) (v >> 24);
	id[1] = (uint8_t) (v >> 16);
	id[2] = (uint8_t) (v >> 8);
	id[3] = (uint8_t) v;
	if ((rv = iok_msg_header_append(m, id, sizeof(id))) != 0 ||
	    (rv = iok_sendmsg(s, m, 0)) != 0) {
		iok_msg_free(m);
		return rv;
	}
	return 0;
}

/* A reply matches when its id is its body's sequence number's. */
static int
complete_raw(iok_msg *m, size_t size)
{
	const uint8_t *h = iok_msg_header(m);
	uint64_t       seq;
	int            rv = 0;

	if (iok_msg_header_len(m) != 4 || iok_msg_len(m) != size)
		rv = BAD_REPLY;
	else {
		uint32_t id =
		    (uint32_t) h[0] << 24 | (uint32_t) h[1] << 16 | (uint32_t) h[2] << 8 | h[3];
		seq = bench_seq(iok_msg_body(m), size);
		if (id != ((uint32_t) seq | 0x80000000u))
			rv = BAD_REPLY;
	}
	iok_msg_free(m);
	return rv;
}

static int
rr_run_raw(iok_socket s, const struct bopts *o, long total, uint64_t *seq)
{
	long issued = 0, done = 0;
	int  rv;

	for (; issued < o->par && issued < total; issued++)
		if ((rv = issue_raw(s, o->size, (*seq)++)) != 0)
			return rv;
	while (done < total) {
		iok_msg *m;

		if ((rv = iok_recvmsg(s, &m, 0)) != 0 || (rv = complete_raw(m, o->size)) != 0)
			return rv;
		done++;
		if (issued < total) {
			if ((rv = issue_raw(s, o->size, (*seq)++)) != 0)
				return rv;
			issued++;
		}
	}
	return 0;
}

static int
i_rr_req_raw(const struct bopts *o)
{
	iok_socket       s = IOK_SOCKET_INITIALIZER;
	uint64_t         t0, t1, seq = 1;
	struct bench_cpu c0;
	int              rv;

	/* Queue lengths as the token driver's (iok's defaults). */
	if ((rv = iok_req0_open_raw(&s)) != 0 || (rv = dial_sock(s, o->url)) != 0)
		goto out;
	if (o->warmup > 0 && (rv = rr_run_raw(s, o, o->warmup, &seq)) != 0)
		goto out;
	bench_cpu_read(&c0);
	t0 = bench_now_ns();
	if ((rv = rr_run_raw(s, o, o->count, &seq)) != 0)
		goto out;
	t1 = bench_now_ns();
	bench_rr_result(o, &c0, t0, t1, "raw=1");
	bench_hold(o);
out:
	if (rv != 0)
		bench_fail("rr req --raw: %s", i_strerror(rv));
	iok_close(s);
	return rv != 0;
}

/* ------------------------------ rr: one rep0 answering through tokens */

static int
i_rr_rep(const struct bopts *o)
{
	iok_socket s = IOK_SOCKET_INITIALIZER;
	iok_msg   *m;
	int        rv;

	/* Raw (--raw): the request comes with its backtrace as the header,
	 * and the reply goes back with it, as from libzmq's ROUTER. */
	if ((rv = (o->raw ? iok_rep0_open_raw(&s) : iok_rep0_open(&s))) != 0 ||
	    (rv = iok_listen(s, o->url, NULL, 0)) != 0 ||
	    (rv = iok_socket_set_ms(s, IOK_OPT_RECVTIMEO, 100)) != 0)
		goto out;
	bench_ready(o);
	while (!bench_stop_requested()) {
		if ((rv = iok_recvmsg(s, &m, 0)) == IOK_ETIMEDOUT)
			continue;
		if (rv != 0)
			goto out;
		if ((rv = (o->raw ? iok_sendmsg(s, m, 0) : iok_reply(s, m, iok_msg_token(m), 0))) !=
		    0) {
			iok_msg_free(m);
			goto out;
		}
	}
	rv = 0;
	bench_hold(o);
out:
	if (rv != 0)
		bench_fail("rr rep: %s", iok_strerror(rv));
	iok_close(s);
	return rv != 0;
}

static int
i_init(void)
{
	return 0;
}

const struct bench_lib bench_lib = {
	.name             = "iok",
	.version          = iok_version,
	.init             = i_init,
	.fini             = iok_fini,
	.strerror         = i_strerror,
	.open             = i_open,
	.listen           = i_listen,
	.dial             = i_dial,
	.send             = i_send,
	.recv             = i_recv,
	.set_recv_timeout = i_set_recv_timeout,
	.wait_peers       = i_wait_peers,
	.close            = i_close,
	.rr_req           = i_rr_req,
	.rr_rep           = i_rr_rep,
	.rr_method =
	    "one req0 socket, K iok_request tokens in flight; rep0 answering with iok_reply",
	.io_thread = "iok-kernel",
};
