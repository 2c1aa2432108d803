/*
 * nanomsg_peer - the libnanomsg twin of nng_peer: the same command line for
 * what nanomsg can do, so the interop tests can check iok against the
 * original SP implementation too.
 *
 *   nanomsg_peer PROTO dial|listen URL [options]
 *   nanomsg_peer device PROTO LISTEN-URL DIAL-URL|- [options]
 *
 * nanomsg has no pair1, no contexts (--outstanding), no way to report a
 * bound port (--port-file), and its raw sockets are used here only to
 * echo (--echo --raw) and in devices.  See interop/README.md.
 */
#define _GNU_SOURCE
#include "peer_common.h"

#include <nanomsg/bus.h>
#include <nanomsg/nn.h>
#include <nanomsg/pair.h>
#include <nanomsg/pipeline.h>
#include <nanomsg/pubsub.h>
#include <nanomsg/reqrep.h>
#include <nanomsg/survey.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct peer_opts o;

static const char *const unsupported[] = { "--outstanding", "--port-file", "--poly",
	"--show-header", NULL };

static const struct {
	const char *name;
	int         type;
} protos[] = {
	{ "pair0", NN_PAIR },
	{ "push0", NN_PUSH },
	{ "pull0", NN_PULL },
	{ "req0", NN_REQ },
	{ "rep0", NN_REP },
	{ "pub0", NN_PUB },
	{ "sub0", NN_SUB },
	{ "surveyor0", NN_SURVEYOR },
	{ "respondent0", NN_RESPONDENT },
	{ "bus0", NN_BUS },
};

static int
fail(const char *what)
{
	peer_err("%s: %s", what, nn_strerror(nn_errno()));
	return PEER_ELIB;
}

static int
is(const char *proto, const char *name)
{
	return strcmp(proto, name) == 0;
}

/* nanomsg says ETIMEDOUT for --recv-timeout and for a survey's end. */
static int
timed_out(void)
{
	int e = nn_errno();

	return e == ETIMEDOUT || e == EAGAIN;
}

static int
open_sock(int *s, const char *proto, int raw)
{
	for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++) {
		if (!is(protos[i].name, proto))
			continue;
		if ((*s = nn_socket(raw ? AF_SP_RAW : AF_SP, protos[i].type)) < 0)
			return fail("open");
		return 0;
	}
	peer_err("nanomsg has no %s", proto);
	return PEER_EUSAGE;
}

static int
set_int(int s, int level, int opt, int v)
{
	return nn_setsockopt(s, level, opt, &v, sizeof(v));
}

static int
configure(int s, const char *proto, int raw)
{
	int rv = 0;

	set_int(s, NN_SOL_SOCKET, NN_RECONNECT_IVL, 10);
	set_int(s, NN_SOL_SOCKET, NN_RECONNECT_IVL_MAX, 200);
	if (o.resend_ms >= 0 && is(proto, "req0") && !raw)
		rv = set_int(s, NN_REQ, NN_REQ_RESEND_IVL, o.resend_ms);
	if (rv == 0 && o.survey_ms >= 0 && is(proto, "surveyor0") && !raw)
		rv = set_int(s, NN_SURVEYOR, NN_SURVEYOR_DEADLINE, o.survey_ms);
	if (rv == 0 && o.recv_timeout_ms >= 0)
		rv = set_int(s, NN_SOL_SOCKET, NN_RCVTIMEO, o.recv_timeout_ms);
	if (rv == 0 && o.send_timeout_ms >= 0)
		rv = set_int(s, NN_SOL_SOCKET, NN_SNDTIMEO, o.send_timeout_ms);
	if (rv == 0 && is(proto, "sub0") && !raw && !o.no_subscribe) {
		for (int i = 0; i < o.nsubs && rv == 0; i++)
			rv = nn_setsockopt(
			    s, NN_SUB, NN_SUB_SUBSCRIBE, o.subs[i], strlen(o.subs[i]));
		if (o.nsubs == 0)
			rv = nn_setsockopt(s, NN_SUB, NN_SUB_SUBSCRIBE, "", 0);
	}
	return rv < 0 ? fail("set option") : 0;
}

static int
start(int s, const char *url, int dial)
{
	if ((dial ? nn_connect(s, url) : nn_bind(s, url)) < 0)
		return fail(dial ? "dial" : "listen");
	return 0;
}

static int
wait_peer(int s)
{
	uint64_t deadline = peer_now_ms() + (uint64_t) o.wait_peer_ms;

	while (nn_get_statistic(s, NN_STAT_CURRENT_CONNECTIONS) < (uint64_t) o.wait_peer) {
		if (peer_now_ms() >= deadline) {
			peer_err(
			    "fewer than %d peers connected in %d ms", o.wait_peer, o.wait_peer_ms);
			return PEER_ENOPEER;
		}
		peer_sleep_ms(5);
	}
	return 0;
}

static int
send_msg(int s, long i)
{
	size_t len;
	char  *buf = peer_payload(&o, i, &len);
	int    rv  = nn_send(s, buf, len, 0);

	free(buf);
	return rv < 0 ? fail("send") : 0;
}

static int
do_send(int s)
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

static int
short_count(long got, long want)
{
	if (want < 0)
		return PEER_OK;
	peer_err("received %ld of %ld messages", got, want);
	return PEER_ERECV;
}

static int
do_recv(int s)
{
	long  n = 0;
	void *buf;
	int   len;

	while (o.recv < 0 || n < o.recv) {
		if ((len = nn_recv(s, &buf, NN_MSG, 0)) < 0)
			return timed_out() ? short_count(n, o.recv) : fail("recv");
		peer_print(&o, NULL, 0, buf, (size_t) len);
		nn_freemsg(buf);
		n++;
	}
	return PEER_OK;
}

/* One request in, prefix + request out.  On a raw socket the control data
 * (the SP header) goes back untouched, so the reply is routed; a cooked
 * socket keeps its own backtrace and must be given no header (nanomsg
 * asserts on one). */
static int
echo_one(int s, long *seen, long *served)
{
	struct nn_iovec  iov;
	struct nn_msghdr hdr;
	void            *body, *ctrl = NULL, *reply;
	size_t           plen = strlen(o.prefix);
	int              len;

	memset(&hdr, 0, sizeof(hdr));
	iov.iov_base       = &body;
	iov.iov_len        = NN_MSG;
	hdr.msg_iov        = &iov;
	hdr.msg_iovlen     = 1;
	hdr.msg_control    = o.raw ? &ctrl : NULL;
	hdr.msg_controllen = o.raw ? NN_MSG : 0;
	if ((len = nn_recvmsg(s, &hdr, 0)) < 0)
		return timed_out() ? PEER_ERECV : fail("recv");
	peer_print(&o, NULL, 0, body, (size_t) len);
	if ((*seen)++ < o.ignore) {
		nn_freemsg(body);
		if (ctrl != NULL)
			nn_freemsg(ctrl);
		return 0;
	}
	if (o.reply_delay_ms > 0)
		peer_sleep_ms(o.reply_delay_ms);
	reply = nn_allocmsg(plen + (size_t) len, 0);
	memcpy(reply, o.prefix, plen);
	memcpy((char *) reply + plen, body, (size_t) len);
	nn_freemsg(body);
	iov.iov_base       = &reply;
	iov.iov_len        = NN_MSG;
	hdr.msg_control    = ctrl != NULL ? &ctrl : NULL;
	hdr.msg_controllen = ctrl != NULL ? NN_MSG : 0;
	if (nn_sendmsg(s, &hdr, 0) < 0)
		return fail("reply");
	(*served)++;
	return 0;
}

static int
do_echo(int s)
{
	long seen = 0, served = 0;
	int  rc;

	while (o.recv < 0 || served < o.recv)
		if ((rc = echo_one(s, &seen, &served)) != 0)
			return rc == PEER_ERECV ? short_count(served, o.recv) : rc;
	return PEER_OK;
}

static int
do_req(int s)
{
	void *buf;
	int   len, rc;

	for (long i = 0; i < o.send; i++) {
		if ((rc = send_msg(s, i)) != 0)
			return rc;
		if ((len = nn_recv(s, &buf, NN_MSG, 0)) < 0)
			return timed_out() ? short_count(i, o.send) : fail("recv");
		peer_print(&o, NULL, 0, buf, (size_t) len);
		rc = peer_verify(&o, i, buf, (size_t) len);
		nn_freemsg(buf);
		if (rc != 0)
			return rc;
		if (o.interval_ms > 0)
			peer_sleep_ms(o.interval_ms);
	}
	return PEER_OK;
}

/* Responses until the deadline; nanomsg then says ETIMEDOUT (or EFSM). */
static int
do_survey(int s)
{
	int   rc = PEER_OK, len;
	void *buf;

	for (long i = 0; i < o.send; i++) {
		long got = 0;

		if ((rc = send_msg(s, i)) != 0)
			return rc;
		while ((len = nn_recv(s, &buf, NN_MSG, 0)) >= 0) {
			peer_print(&o, NULL, 0, buf, (size_t) len);
			nn_freemsg(buf);
			got++;
		}
		if (!timed_out() && nn_errno() != EFSM)
			return fail("recv");
		if (got < o.min_responses) {
			peer_err("survey %ld: %ld responses, wanted %ld", i, got, o.min_responses);
			rc = PEER_ERECV;
		}
	}
	return rc;
}

static int
run_device(void)
{
	int a, b = -1, rc;

	if ((rc = open_sock(&a, o.proto, 1)) != 0 || (rc = configure(a, o.proto, 1)) != 0 ||
	    (rc = start(a, o.url, 0)) != 0)
		return rc;
	if (strcmp(o.url2, "-") != 0) {
		const char *peer = peer_peer_proto(o.proto);

		if ((rc = open_sock(&b, peer, 1)) != 0 || (rc = configure(b, peer, 1)) != 0 ||
		    (rc = start(b, o.url2, 1)) != 0)
			return rc;
	}
	if (o.ready_file != NULL)
		peer_write_file(o.ready_file, "ready");
	nn_device(a, b);
	return fail("device");
}

static int
run(int s)
{
	int rc = o.wait_peer ? wait_peer(s) : PEER_OK;

	if (rc != PEER_OK)
		return rc;
	if (o.echo)
		return do_echo(s);
	if (o.raw) {
		peer_err("--raw is only for --echo and devices here");
		return PEER_EUSAGE;
	}
	if (is(o.proto, "req0") && o.send > 0)
		return do_req(s);
	if (is(o.proto, "surveyor0") && o.send > 0)
		return do_survey(s);
	if (o.send > 0 && (rc = do_send(s)) != PEER_OK)
		return rc;
	if (o.recv >= 0 || o.send == 0)
		rc = do_recv(s);
	return rc;
}

int
main(int argc, char **argv)
{
	int s, rc;

	peer_parse(argc, argv, &o, "nanomsg_peer", unsupported);
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
	/* nanomsg's NN_LINGER does nothing: give queued messages time. */
	if (o.send > 0 || o.echo)
		peer_sleep_ms(o.linger_ms);
	nn_close(s);
	return rc;
}
