/*
 * nng_peer - a libnng program that plays any SP role, so the interop tests
 * can put real nng on the other end of every iok socket.
 *
 *   nng_peer PROTO dial|listen URL [options]
 *   nng_peer device PROTO LISTEN-URL DIAL-URL|- [options]
 *
 * See interop/README.md (or run it without arguments) for the options and
 * the exit codes.
 */
#define _GNU_SOURCE
#include "peer_common.h"

#include <nng/nng.h>
#include <nng/protocol/bus0/bus.h>
#include <nng/protocol/pair0/pair.h>
#include <nng/protocol/pair1/pair.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/protocol/survey0/respond.h>
#include <nng/protocol/survey0/survey.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct peer_opts o;
static atomic_int       npipes; /* connections now, from the pipe notifier */

static const struct {
	const char *name;
	int (*open)(nng_socket *);
	int (*open_raw)(nng_socket *);
} protos[] = {
	{ "pair0", nng_pair0_open, nng_pair0_open_raw },
	{ "pair1", nng_pair1_open, nng_pair1_open_raw },
	{ "push0", nng_push0_open, nng_push0_open_raw },
	{ "pull0", nng_pull0_open, nng_pull0_open_raw },
	{ "req0", nng_req0_open, nng_req0_open_raw },
	{ "rep0", nng_rep0_open, nng_rep0_open_raw },
	{ "pub0", nng_pub0_open, nng_pub0_open_raw },
	{ "sub0", nng_sub0_open, nng_sub0_open_raw },
	{ "surveyor0", nng_surveyor0_open, nng_surveyor0_open_raw },
	{ "respondent0", nng_respondent0_open, nng_respondent0_open_raw },
	{ "bus0", nng_bus0_open, nng_bus0_open_raw },
};

static int
fail(const char *what, int rv)
{
	peer_err("%s: %s", what, nng_strerror(rv));
	return PEER_ELIB;
}

static int
is(const char *proto, const char *name)
{
	return strcmp(proto, name) == 0;
}

static void
on_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	atomic_fetch_add(&npipes, ev == NNG_PIPE_EV_ADD_POST ? 1 : -1);
}

static int
open_sock(nng_socket *s, const char *proto, int raw)
{
	for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++) {
		int rv;

		if (!is(protos[i].name, proto))
			continue;
		if ((rv = (raw ? protos[i].open_raw : protos[i].open)(s)) != 0)
			return fail("open", rv);
		if (is(proto, "pair1") && o.poly &&
		    (rv = nng_socket_set_bool(*s, NNG_OPT_PAIR1_POLY, true)) != 0)
			return fail("pair1 polyamorous", rv);
		return 0;
	}
	return fail("open", NNG_ENOTSUP);
}

/* Options that exist on this socket; reconnects are quick so tests that
 * start the listener late do not wait nng's default 100 ms..forever. */
static int
configure(nng_socket s, const char *proto, int raw)
{
	int rv = 0;

	nng_socket_set_ms(s, NNG_OPT_RECONNMINT, 10);
	nng_socket_set_ms(s, NNG_OPT_RECONNMAXT, 200);
	if (o.resend_ms >= 0 && is(proto, "req0") && !raw)
		rv = nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, o.resend_ms);
	if (rv == 0 && o.survey_ms >= 0 && is(proto, "surveyor0") && !raw)
		rv = nng_socket_set_ms(s, NNG_OPT_SURVEYOR_SURVEYTIME, o.survey_ms);
	if (rv == 0 && o.recv_timeout_ms >= 0)
		rv = nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, o.recv_timeout_ms);
	if (rv == 0 && o.send_timeout_ms >= 0)
		rv = nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, o.send_timeout_ms);
	if (rv == 0 && is(proto, "sub0") && !raw && !o.no_subscribe) {
		for (int i = 0; i < o.nsubs && rv == 0; i++)
			rv = nng_socket_set(s, NNG_OPT_SUB_SUBSCRIBE, o.subs[i], strlen(o.subs[i]));
		if (o.nsubs == 0)
			rv = nng_socket_set(s, NNG_OPT_SUB_SUBSCRIBE, "", 0);
	}
	if (rv != 0)
		return fail("set option", rv);
	nng_pipe_notify(s, NNG_PIPE_EV_ADD_POST, on_pipe, NULL);
	nng_pipe_notify(s, NNG_PIPE_EV_REM_POST, on_pipe, NULL);
	return 0;
}

/* Dialers redial in the background, so the listener may come later. */
static int
start(nng_socket s, const char *url, int dial)
{
	nng_listener l;
	char         port[16];
	int          rv, p;

	if (dial) {
		if ((rv = nng_dial(s, url, NULL, NNG_FLAG_NONBLOCK)) != 0)
			return fail("dial", rv);
		return 0;
	}
	if ((rv = nng_listen(s, url, &l, 0)) != 0)
		return fail("listen", rv);
	if (o.port_file != NULL && nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &p) == 0) {
		snprintf(port, sizeof(port), "%d", p);
		peer_write_file(o.port_file, port);
	}
	return 0;
}

static int
wait_peer(void)
{
	uint64_t deadline = peer_now_ms() + (uint64_t) o.wait_peer_ms;

	while (atomic_load(&npipes) < o.wait_peer) {
		if (peer_now_ms() >= deadline) {
			peer_err("%d of %d peers connected in %d ms", atomic_load(&npipes),
			    o.wait_peer, o.wait_peer_ms);
			return PEER_ENOPEER;
		}
		peer_sleep_ms(5);
	}
	return 0;
}

static void
print_msg(nng_msg *m)
{
	peer_print(&o, nng_msg_header(m), nng_msg_header_len(m), nng_msg_body(m), nng_msg_len(m));
}

/* Message number i.  Raw senders build the SP header themselves: a
 * request/survey id with the high bit set, or pair1's hop count. */
static nng_msg *
make_msg(long i)
{
	size_t   len;
	char    *buf = peer_payload(&o, i, &len);
	nng_msg *m;

	if (nng_msg_alloc(&m, 0) != 0 || nng_msg_append(m, buf, len) != 0) {
		free(buf);
		return NULL;
	}
	free(buf);
	if (o.raw && (is(o.proto, "req0") || is(o.proto, "surveyor0")))
		nng_msg_header_append_u32(m, 0x80000000u | (uint32_t) (i + 1));
	else if (o.raw && is(o.proto, "pair1"))
		nng_msg_header_append_u32(m, 0);
	return m;
}

static int
send_msg(nng_socket s, long i)
{
	nng_msg *m = make_msg(i);
	int      rv;

	if (m == NULL)
		return fail("message", NNG_ENOMEM);
	if ((rv = nng_sendmsg(s, m, 0)) != 0) {
		nng_msg_free(m);
		return fail("send", rv);
	}
	return 0;
}

static int
do_send(nng_socket s)
{
	int rc;

	for (long i = 0; i < o.send; i++) {
		if ((rc = send_msg(s, i)) != 0)
			return rc;
		if (o.interval_ms > 0 && i + 1 < o.send)
			peer_sleep_ms(o.interval_ms);
	}
	return PEER_OK;
}

/* Too few messages when --recv N was asked is an error; an open-ended
 * receive simply ends at the receive timeout. */
static int
short_count(long got, long want)
{
	if (want < 0)
		return PEER_OK;
	peer_err("received %ld of %ld messages", got, want);
	return PEER_ERECV;
}

static int
do_recv(nng_socket s)
{
	long     n = 0;
	nng_msg *m;
	int      rv;

	while (o.recv < 0 || n < o.recv) {
		if ((rv = nng_recvmsg(s, &m, 0)) == NNG_ETIMEDOUT)
			return short_count(n, o.recv);
		if (rv != 0)
			return fail("recv", rv);
		print_msg(m);
		nng_msg_free(m);
		n++;
	}
	return PEER_OK;
}

/* Echo server (rep0, respondent0, and pair/bus peers): the reply is the
 * request with --prefix in front; raw sockets keep the routing header. */
static int
do_echo(nng_socket s)
{
	long     seen = 0, served = 0;
	nng_msg *m;
	int      rv;

	while (o.recv < 0 || served < o.recv) {
		if ((rv = nng_recvmsg(s, &m, 0)) == NNG_ETIMEDOUT)
			return short_count(served, o.recv);
		if (rv != 0)
			return fail("recv", rv);
		print_msg(m);
		if (seen++ < o.ignore) {
			nng_msg_free(m);
			continue;
		}
		if (o.reply_delay_ms > 0)
			peer_sleep_ms(o.reply_delay_ms);
		if ((rv = nng_msg_insert(m, o.prefix, strlen(o.prefix))) != 0 ||
		    (rv = nng_sendmsg(s, m, 0)) != 0) {
			nng_msg_free(m);
			return fail("reply", rv);
		}
		served++;
	}
	return PEER_OK;
}

static int
verify(long i, nng_msg *reply)
{
	return peer_verify(&o, i, nng_msg_body(reply), nng_msg_len(reply));
}

static int
do_req(nng_socket s)
{
	nng_msg *m;
	int      rv, rc;

	for (long i = 0; i < o.send; i++) {
		if ((rc = send_msg(s, i)) != 0)
			return rc;
		if ((rv = nng_recvmsg(s, &m, 0)) == NNG_ETIMEDOUT)
			return short_count(i, o.send);
		if (rv != 0)
			return fail("recv", rv);
		print_msg(m);
		rc = verify(i, m);
		nng_msg_free(m);
		if (rc != 0)
			return rc;
		if (o.interval_ms > 0)
			peer_sleep_ms(o.interval_ms);
	}
	return PEER_OK;
}

/* --outstanding K: K threads, each with its own nng_ctx, share the
 * numbered requests; nng matches every reply to its context. */
static struct {
	nng_socket      s;
	atomic_long     next;
	pthread_mutex_t mu;
	long            replies;
	int             rc;
} rq = { .mu = PTHREAD_MUTEX_INITIALIZER };

static int
req_one(nng_ctx ctx, nng_aio *aio, long i)
{
	nng_msg *m = make_msg(i);
	int      rv, rc;

	if (m == NULL)
		return fail("message", NNG_ENOMEM);
	nng_aio_set_msg(aio, m);
	nng_ctx_send(ctx, aio);
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) != 0) {
		nng_msg_free(m);
		return fail("send", rv);
	}
	nng_ctx_recv(ctx, aio);
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) == NNG_ETIMEDOUT)
		return short_count(i, o.send);
	if (rv != 0)
		return fail("recv", rv);
	m = nng_aio_get_msg(aio);
	pthread_mutex_lock(&rq.mu);
	print_msg(m);
	rq.replies++;
	pthread_mutex_unlock(&rq.mu);
	rc = verify(i, m);
	nng_msg_free(m);
	return rc;
}

static void *
req_worker(void *arg)
{
	nng_aio *aio = NULL;
	nng_ctx  ctx;
	long     i;
	int      rc = 0, rv;

	if ((rv = nng_ctx_open(&ctx, rq.s)) != 0 || (rv = nng_aio_alloc(&aio, NULL, NULL)) != 0)
		rc = fail("context", rv);
	if (rc == 0 && o.recv_timeout_ms >= 0)
		nng_aio_set_timeout(aio, o.recv_timeout_ms);
	while (rc == 0 && (i = atomic_fetch_add(&rq.next, 1)) < o.send) {
		pthread_mutex_lock(&rq.mu);
		rc = rq.rc; /* stop early once another thread failed */
		pthread_mutex_unlock(&rq.mu);
		if (rc == 0)
			rc = req_one(ctx, aio, i);
	}
	pthread_mutex_lock(&rq.mu);
	if (rq.rc == 0)
		rq.rc = rc;
	pthread_mutex_unlock(&rq.mu);
	if (aio != NULL)
		nng_aio_free(aio);
	nng_ctx_close(ctx);
	return NULL;
}

static int
do_req_ctx(nng_socket s)
{
	pthread_t *t = calloc((size_t) o.outstanding, sizeof(*t));

	rq.s = s;
	for (int k = 0; k < o.outstanding; k++)
		pthread_create(&t[k], NULL, req_worker, NULL);
	for (int k = 0; k < o.outstanding; k++)
		pthread_join(t[k], NULL);
	free(t);
	return rq.rc;
}

/* Each survey collects responses until the survey time is over (nng
 * reports NNG_ETIMEDOUT then; a raw surveyor relies on --recv-timeout). */
static int
do_survey(nng_socket s)
{
	int      rc = PEER_OK, rv;
	nng_msg *m;

	if (o.raw && o.recv_timeout_ms < 0)
		nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 1000);
	for (long i = 0; i < o.send; i++) {
		long got = 0;

		if ((rv = send_msg(s, i)) != 0)
			return rv;
		while ((rv = nng_recvmsg(s, &m, 0)) == 0) {
			print_msg(m);
			nng_msg_free(m);
			got++;
		}
		if (rv != NNG_ETIMEDOUT && rv != NNG_ESTATE)
			return fail("recv", rv);
		if (got < o.min_responses) {
			peer_err("survey %ld: %ld responses, wanted %ld", i, got, o.min_responses);
			rc = PEER_ERECV;
		}
	}
	return rc;
}

/* device PROTO A B: raw PROTO listening on A, raw peer protocol dialing B
 * (or, with B "-", a one-socket reflector as nng_device allows for bus
 * and pair).  Runs until stopped; being stopped is success. */
static int
run_device(void)
{
	nng_socket a = NNG_SOCKET_INITIALIZER, b = NNG_SOCKET_INITIALIZER;
	int        reflect = strcmp(o.url2, "-") == 0, rc, rv;

	if ((rc = open_sock(&a, o.proto, 1)) != 0 || (rc = configure(a, o.proto, 1)) != 0 ||
	    (rc = start(a, o.url, 0)) != 0)
		return rc;
	if (!reflect) {
		const char *peer = peer_peer_proto(o.proto);

		if ((rc = open_sock(&b, peer, 1)) != 0 || (rc = configure(b, peer, 1)) != 0 ||
		    (rc = start(b, o.url2, 1)) != 0)
			return rc;
	}
	if (o.ready_file != NULL)
		peer_write_file(o.ready_file, "ready");
	rv = nng_device(a, b);
	return fail("device", rv);
}

static int
run(nng_socket s)
{
	int rc = o.wait_peer ? wait_peer() : PEER_OK;

	if (rc != PEER_OK)
		return rc;
	if (o.echo)
		return do_echo(s);
	if (is(o.proto, "req0") && o.send > 0)
		return o.outstanding > 1 && !o.raw ? do_req_ctx(s) : do_req(s);
	if (is(o.proto, "surveyor0") && o.send > 0)
		return do_survey(s);
	if (o.send > 0 && (rc = do_send(s)) != PEER_OK)
		return rc;
	if (o.recv >= 0 || o.send == 0)
		rc = do_recv(s);
	return rc;
}

/* nng_close in nng 1.5.2 (Debian's) can deadlock, waiting for a pipe that
 * never finishes closing (nanomsg/nng#1543, fixed upstream after 1.5.2):
 * seen in 2 of 440 pubfan cells over ipc, the peer having received
 * and printed everything.  The close is bounded so that nng's own hang is
 * reported as such instead of failing the cell as a timeout. */
#define CLOSE_BOUND_MS 3000

static atomic_bool closed;

static void *
close_thread(void *arg)
{
	nng_close(*(nng_socket *) arg);
	atomic_store(&closed, true);
	return NULL;
}

static void
bounded_close(nng_socket s)
{
	static nng_socket target;
	pthread_t         th;
	uint64_t          deadline = peer_now_ms() + CLOSE_BOUND_MS;

	target = s;
	if (pthread_create(&th, NULL, close_thread, &target) != 0) {
		nng_close(s);
		return;
	}
	while (!atomic_load(&closed)) {
		if (peer_now_ms() >= deadline) {
			fprintf(stderr,
			    "nng_peer: nng_close did not return in %d ms (libnng's close "
			    "deadlock, nanomsg/nng#1543); exiting without it\n",
			    CLOSE_BOUND_MS);
			fflush(stderr);
			return; /* the caller exits; the stuck thread goes with it */
		}
		peer_sleep_ms(5);
	}
	pthread_join(th, NULL);
}

int
main(int argc, char **argv)
{
	nng_socket s = NNG_SOCKET_INITIALIZER;
	int        rc;

	peer_parse(argc, argv, &o, "nng_peer", NULL);
	peer_arm_timeout(&o);
	if (o.device)
		return run_device();
	if ((rc = open_sock(&s, o.proto, o.raw)) != 0 || (rc = configure(s, o.proto, o.raw)) != 0 ||
	    (rc = start(s, o.url, o.dial)) != 0)
		return rc;
	for (int k = 0; k < o.nalso_listen; k++)
		if ((rc = start(s, o.also_listen[k], 0)) != 0)
			return rc;
	for (int k = 0; k < o.nalso_dial; k++)
		if ((rc = start(s, o.also_dial[k], 1)) != 0)
			return rc;
	if (o.ready_file != NULL)
		peer_write_file(o.ready_file, "ready");
	/* Connected (or connecting): --delay lets the other side settle. */
	if (o.delay_ms > 0)
		peer_sleep_ms(o.delay_ms);
	rc = run(s);
	/* nng_close drops what is still queued: give it time to leave. */
	if (o.send > 0 || o.echo)
		peer_sleep_ms(o.linger_ms);
	bounded_close(s);
	return rc;
}
