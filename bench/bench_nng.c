/*
 * bench_nng.c - the libnng driver of the benchmark (the anchor iok is
 * measured against).  Tuned as far as nng allows: send/receive queues at
 * nng's maximum so push is not throttled to one message per write, and
 * many requests in flight through nng_ctx + nng_aio, nng's own way.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* nng's largest queue length for NNG_OPT_SENDBUF / NNG_OPT_RECVBUF. */
#define NNG_QLEN 8192
/* An error code of ours for a reply that does not echo its request. */
#define BAD_REPLY 10001

struct nsock {
	nng_socket s;
	atomic_int pipes;
};

static void
on_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct nsock *ns = arg;

	atomic_fetch_add(&ns->pipes, ev == NNG_PIPE_EV_ADD_POST ? 1 : -1);
}

static int
open_kind(nng_socket *s, const char *kind)
{
	if (strcmp(kind, "push") == 0)
		return nng_push0_open(s);
	if (strcmp(kind, "pull") == 0)
		return nng_pull0_open(s);
	if (strcmp(kind, "req") == 0)
		return nng_req0_open(s);
	if (strcmp(kind, "rep") == 0)
		return nng_rep0_open(s);
	if (strcmp(kind, "pub") == 0)
		return nng_pub0_open(s);
	if (strcmp(kind, "sub") == 0)
		return nng_sub0_open(s);
	return NNG_ENOTSUP;
}

static int
n_open(void **sp, const char *kind)
{
	struct nsock *ns = calloc(1, sizeof(*ns));
	int           rv;

	if ((rv = open_kind(&ns->s, kind)) != 0) {
		free(ns);
		return rv;
	}
	/* Not every protocol has both queues; the others refuse, harmlessly. */
	nng_socket_set_int(ns->s, NNG_OPT_SENDBUF, NNG_QLEN);
	nng_socket_set_int(ns->s, NNG_OPT_RECVBUF, NNG_QLEN);
	nng_pipe_notify(ns->s, NNG_PIPE_EV_ADD_POST, on_pipe, ns);
	nng_pipe_notify(ns->s, NNG_PIPE_EV_REM_POST, on_pipe, ns);
	if (strcmp(kind, "sub") == 0 &&
	    (rv = nng_socket_set(ns->s, NNG_OPT_SUB_SUBSCRIBE, "", 0)) != 0) {
		nng_close(ns->s);
		free(ns);
		return rv;
	}
	*sp = ns;
	return 0;
}

static int
n_listen(void *s, const char *url)
{
	return nng_listen(((struct nsock *) s)->s, url, NULL, 0);
}

/* Synchronous, so errors show; a listener that is not up yet (manual use)
 * gets nng's background redial instead. */
static int
dial_sock(nng_socket s, const char *url)
{
	int rv = nng_dial(s, url, NULL, 0);

	if (rv == NNG_ECONNREFUSED)
		rv = nng_dial(s, url, NULL, NNG_FLAG_NONBLOCK);
	return rv;
}

static int
n_dial(void *s, const char *url)
{
	return dial_sock(((struct nsock *) s)->s, url);
}

static int
n_send(void *s, const void *buf, size_t len)
{
	return nng_send(((struct nsock *) s)->s, (void *) buf, len, 0);
}

static int
n_recv(void *s, void *buf, size_t cap, size_t *len)
{
	nng_msg *m;
	int      rv = nng_recvmsg(((struct nsock *) s)->s, &m, 0);

	if (rv != 0)
		return rv == NNG_ETIMEDOUT ? BENCH_TIMEOUT : rv;
	*len = nng_msg_len(m);
	if (cap > 0)
		memcpy(buf, nng_msg_body(m), *len < cap ? *len : cap);
	nng_msg_free(m);
	return 0;
}

static int
n_set_recv_timeout(void *s, int ms)
{
	return nng_socket_set_ms(((struct nsock *) s)->s, NNG_OPT_RECVTIMEO, ms);
}

/* nng filters at the subscriber, so a connected pipe is a subscriber. */
static int
n_wait_peers(void *s, int n, int timeout_ms)
{
	struct nsock *ns       = s;
	uint64_t      deadline = bench_now_ns() + (uint64_t) timeout_ms * 1000000u;

	while (atomic_load(&ns->pipes) < n) {
		if (bench_now_ns() > deadline)
			return NNG_ETIMEDOUT;
		bench_sleep_ms(1);
	}
	return 0;
}

static void
n_close(void *s)
{
	struct nsock *ns = s;

	nng_close(ns->s);
	free(ns);
}

static const char *
n_strerror(int err)
{
	return err == BAD_REPLY ? "reply does not match its request" : nng_strerror(err);
}

/* ------------------------------------------ rr: requester, K contexts */

struct rr;
struct rr_slot {
	struct rr *rr;
	nng_ctx    ctx;
	nng_aio   *aio;
	uint64_t   seq;
	int        sending;
};

struct rr {
	pthread_mutex_t  mu;
	pthread_cond_t   cv;
	long             issued, done, total, warmup;
	uint64_t         t0, t1; /* when the warmup ended, when the last reply came */
	struct bench_cpu c0;     /* CPU at t0 */
	int              err;
	size_t           size;
};

/* One request completed (err 0) or failed.  Warmup and timed requests are
 * one run, so no aio is ever restarted by two threads at once. */
static void
rr_finish(struct rr *rr, int err)
{
	pthread_mutex_lock(&rr->mu);
	if (err != 0 && rr->err == 0)
		rr->err = err;
	if (err == 0 && ++rr->done == rr->warmup) {
		bench_cpu_read(&rr->c0);
		rr->t0 = bench_now_ns();
	}
	if (rr->done == rr->total)
		rr->t1 = bench_now_ns();
	if (rr->err != 0 || rr->done == rr->total)
		pthread_cond_signal(&rr->cv);
	pthread_mutex_unlock(&rr->mu);
}

/* Sends the slot's next request, if any are left to send. */
static void
rr_issue(struct rr_slot *sl)
{
	struct rr *rr = sl->rr;
	nng_msg   *m;
	int        rv;

	pthread_mutex_lock(&rr->mu);
	if (rr->issued >= rr->total || rr->err != 0) {
		pthread_mutex_unlock(&rr->mu);
		return;
	}
	sl->seq = (uint64_t) rr->issued++;
	pthread_mutex_unlock(&rr->mu);
	if ((rv = nng_msg_alloc(&m, rr->size)) != 0) {
		rr_finish(rr, rv);
		return;
	}
	bench_fill(nng_msg_body(m), rr->size, sl->seq);
	nng_aio_set_msg(sl->aio, m);
	sl->sending = 1;
	nng_ctx_send(sl->ctx, sl->aio);
}

static void
rr_req_cb(void *arg)
{
	struct rr_slot *sl = arg;
	int             rv = nng_aio_result(sl->aio);
	nng_msg        *m;
	int             ok;

	if (rv != 0) {
		if (sl->sending)
			nng_msg_free(nng_aio_get_msg(sl->aio));
		rr_finish(sl->rr, rv);
		return;
	}
	if (sl->sending) {
		sl->sending = 0;
		nng_ctx_recv(sl->ctx, sl->aio);
		return;
	}
	m = nng_aio_get_msg(sl->aio);
	ok =
	    nng_msg_len(m) == sl->rr->size && bench_seq(nng_msg_body(m), nng_msg_len(m)) == sl->seq;
	nng_msg_free(m);
	if (!ok) {
		rr_finish(sl->rr, BAD_REPLY);
		return;
	}
	rr_issue(sl);
	rr_finish(sl->rr, 0);
}

/* Runs warmup + count requests over the slots; returns 0 or the first
 * error. */
static int
rr_run(struct rr *rr, struct rr_slot *slots, int nslots)
{
	int err;

	bench_cpu_read(&rr->c0);
	rr->t0 = bench_now_ns();
	for (int i = 0; i < nslots; i++)
		rr_issue(&slots[i]);
	pthread_mutex_lock(&rr->mu);
	while (rr->err == 0 && rr->done < rr->total)
		pthread_cond_wait(&rr->cv, &rr->mu);
	err = rr->err;
	pthread_mutex_unlock(&rr->mu);
	return err;
}

static int
n_rr_req(const struct bopts *o)
{
	struct rr       rr    = { .mu = PTHREAD_MUTEX_INITIALIZER,
		         .cv          = PTHREAD_COND_INITIALIZER,
		         .size        = o->size,
		         .warmup      = o->warmup,
		         .total       = o->warmup + o->count };
	struct rr_slot *slots = calloc((size_t) o->par, sizeof(*slots));
	nng_socket      s     = NNG_SOCKET_INITIALIZER;
	int             rv, n = 0;

	if ((rv = nng_req0_open(&s)) != 0 || (rv = dial_sock(s, o->url)) != 0)
		goto out;
	for (; n < o->par; n++) {
		slots[n].rr = &rr;
		if ((rv = nng_ctx_open(&slots[n].ctx, s)) != 0 ||
		    (rv = nng_aio_alloc(&slots[n].aio, rr_req_cb, &slots[n])) != 0)
			goto out;
	}
	if ((rv = rr_run(&rr, slots, n)) != 0)
		goto out;
	bench_rr_result(o, &rr.c0, rr.t0, rr.t1, "");
	bench_hold(o);
out:
	if (rv != 0)
		bench_fail("rr req: %s", n_strerror(rv));
	nng_close(s); /* fails whatever is still in flight */
	for (int i = 0; i < o->par; i++)
		if (slots[i].aio != NULL) {
			nng_aio_stop(slots[i].aio);
			nng_aio_free(slots[i].aio);
		}
	free(slots);
	return rv != 0;
}

/* ------------------------------------------- rr: replier, K contexts */

struct rep_slot {
	nng_ctx  ctx;
	nng_aio *aio;
	int      sending;
};

/* Echo: receive a request on the context, send it straight back. */
static void
rr_rep_cb(void *arg)
{
	struct rep_slot *sl = arg;
	int              rv = nng_aio_result(sl->aio);

	if (rv != 0 && sl->sending)
		nng_msg_free(nng_aio_get_msg(sl->aio));
	if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
		return;
	if (rv == 0 && !sl->sending) {
		nng_aio_set_msg(sl->aio, nng_aio_get_msg(sl->aio));
		sl->sending = 1;
		nng_ctx_send(sl->ctx, sl->aio);
		return;
	}
	sl->sending = 0;
	nng_ctx_recv(sl->ctx, sl->aio);
}

static int
n_rr_rep(const struct bopts *o)
{
	struct rep_slot *slots = calloc((size_t) o->par, sizeof(*slots));
	nng_socket       s     = NNG_SOCKET_INITIALIZER;
	int              rv;

	if ((rv = nng_rep0_open(&s)) != 0 || (rv = nng_listen(s, o->url, NULL, 0)) != 0)
		goto out;
	for (int i = 0; i < o->par; i++)
		if ((rv = nng_ctx_open(&slots[i].ctx, s)) != 0 ||
		    (rv = nng_aio_alloc(&slots[i].aio, rr_rep_cb, &slots[i])) != 0)
			goto out;
	for (int i = 0; i < o->par; i++)
		nng_ctx_recv(slots[i].ctx, slots[i].aio);
	bench_ready(o);
	while (!bench_stop_requested())
		bench_sleep_ms(10);
	bench_hold(o);
out:
	if (rv != 0)
		bench_fail("rr rep: %s", nng_strerror(rv));
	nng_close(s);
	for (int i = 0; i < o->par; i++)
		if (slots[i].aio != NULL) {
			nng_aio_stop(slots[i].aio);
			nng_aio_free(slots[i].aio);
		}
	free(slots);
	return rv != 0;
}

static const char *
n_version(void)
{
	return nng_version();
}

static int
n_init(void)
{
	return 0;
}

static void
n_fini(void)
{
	nng_fini();
}

const struct bench_lib bench_lib = {
	.name             = "nng",
	.version          = n_version,
	.init             = n_init,
	.fini             = n_fini,
	.strerror         = n_strerror,
	.open             = n_open,
	.listen           = n_listen,
	.dial             = n_dial,
	.send             = n_send,
	.recv             = n_recv,
	.set_recv_timeout = n_set_recv_timeout,
	.wait_peers       = n_wait_peers,
	.close            = n_close,
	.rr_req           = n_rr_req,
	.rr_rep           = n_rr_rep,
	.rr_method        = "one req0 socket, K nng_ctx each with an nng_aio; rep0 with K contexts",
};
