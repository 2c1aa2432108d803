/*
 * iok_peer - the iok twin of nng_peer: the same command line, options,
 * output and exit codes, written against the public API only
 * (include/iok.h), so every interop test can swap the implementations on
 * either end and expect the same result.
 *
 *   iok_peer PROTO dial|listen URL [options]
 *   iok_peer device PROTO LISTEN-URL DIAL-URL|- [options]
 *
 * Where nng_peer uses an nng feature, this uses iok's: --outstanding K
 * keeps K requests in flight on one req0 socket with iok_request tokens
 * (nng: K contexts), --wait-peer(s) polls "stat:pipes" (nng: pipe
 * notifications), a device is iok_device (kernel-thread forwarding, so the
 * main thread only waits to be stopped), and --linger is the socket's
 * IOK_OPT_LINGER too: iok_close flushes what is queued.
 * See interop/README.md.
 */
#define _GNU_SOURCE
#include "peer_common.h"

#include <iok.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct peer_opts o;

static int
fail(const char *what, int rv)
{
	peer_err("%s: %s", what, iok_strerror(rv));
	return PEER_ELIB;
}

static int
is(const char *proto, const char *name)
{
	return strcmp(proto, name) == 0;
}

static int
open_sock(iok_socket *s, const char *proto, int raw)
{
	int rv;

	if ((rv = raw ? iok_socket_open_raw(s, proto) : iok_socket_open(s, proto)) != 0)
		return fail("open", rv);
	if (is(proto, "pair1") && o.poly &&
	    (rv = iok_socket_set_bool(*s, IOK_OPT_PAIR1_POLY, 1)) != 0)
		return fail("pair1 polyamorous", rv);
	return 0;
}

/* The same settings as nng_peer: quick reconnects, so the listener may
 * start late without the test waiting long. */
static int
configure(iok_socket s, const char *proto, int raw)
{
	int rv = 0;

	iok_socket_set_ms(s, IOK_OPT_RECONNMINT, 10);
	iok_socket_set_ms(s, IOK_OPT_RECONNMAXT, 200);
	iok_socket_set_ms(s, IOK_OPT_LINGER, o.linger_ms);
	if (o.resend_ms >= 0 && is(proto, "req0") && !raw)
		rv = iok_socket_set_ms(s, IOK_OPT_REQ_RESENDTIME, o.resend_ms);
	if (rv == 0 && o.survey_ms >= 0 && is(proto, "surveyor0") && !raw)
		rv = iok_socket_set_ms(s, IOK_OPT_SURVEYOR_SURVEYTIME, o.survey_ms);
	if (rv == 0 && o.recv_timeout_ms >= 0)
		rv = iok_socket_set_ms(s, IOK_OPT_RECVTIMEO, o.recv_timeout_ms);
	if (rv == 0 && o.send_timeout_ms >= 0)
		rv = iok_socket_set_ms(s, IOK_OPT_SENDTIMEO, o.send_timeout_ms);
	if (rv == 0 && is(proto, "sub0") && !raw && !o.no_subscribe) {
		for (int i = 0; i < o.nsubs && rv == 0; i++)
			rv = iok_socket_set(s, IOK_OPT_SUB_SUBSCRIBE, o.subs[i], strlen(o.subs[i]));
		if (o.nsubs == 0)
			rv = iok_socket_set(s, IOK_OPT_SUB_SUBSCRIBE, "", 0);
	}
	if (rv != 0)
		return fail("set option", rv);
	return 0;
}

/* Dialers redial in the background, so the listener may come later. */
static int
start(iok_socket s, const char *url, int dial)
{
	iok_listener l;
	char         port[16];
	int          rv, p;

	if (dial) {
		if ((rv = iok_dial(s, url, NULL, IOK_FLAG_NONBLOCK)) != 0)
			return fail("dial", rv);
		return 0;
	}
	if ((rv = iok_listen(s, url, &l, 0)) != 0)
		return fail("listen", rv);
	if (o.port_file != NULL && iok_listener_get_int(l, IOK_OPT_TCP_BOUND_PORT, &p) == 0) {
		snprintf(port, sizeof(port), "%d", p);
		peer_write_file(o.port_file, port);
	}
	return 0;
}

static int
start_all(iok_socket s)
{
	int rc;

	if ((rc = start(s, o.url, o.dial)) != 0)
		return rc;
	for (int k = 0; k < o.nalso_listen; k++)
		if ((rc = start(s, o.also_listen[k], 0)) != 0)
			return rc;
	for (int k = 0; k < o.nalso_dial; k++)
		if ((rc = start(s, o.also_dial[k], 1)) != 0)
			return rc;
	return 0;
}

static uint64_t
pipes(iok_socket s)
{
	uint64_t n = 0;

	iok_socket_get_uint64(s, "stat:pipes", &n);
	return n;
}

static int
wait_peer(iok_socket s)
{
	uint64_t deadline = peer_now_ms() + (uint64_t) o.wait_peer_ms;

	while (pipes(s) < (uint64_t) o.wait_peer) {
		if (peer_now_ms() >= deadline) {
			peer_err("%d of %d peers connected in %d ms", (int) pipes(s), o.wait_peer,
			    o.wait_peer_ms);
			return PEER_ENOPEER;
		}
		peer_sleep_ms(5);
	}
	return 0;
}

static void
print_msg(iok_msg *m)
{
	peer_print(&o, iok_msg_header(m), iok_msg_header_len(m), iok_msg_body(m), iok_msg_len(m));
}

/* Message number i.  Raw senders build the SP header themselves, as
 * nng_peer does: a request/survey id with the high bit set, or pair1's
 * hop count. */
static iok_msg *
make_msg(long i)
{
	size_t   len;
	char    *buf = peer_payload(&o, i, &len);
	iok_msg *m;

	if (iok_msg_alloc(&m, 0) != 0)
		m = NULL;
	else if (iok_msg_append(m, buf, len) != 0) {
		iok_msg_free(m);
		m = NULL;
	}
	free(buf);
	if (m != NULL && o.raw && (is(o.proto, "req0") || is(o.proto, "surveyor0")))
		iok_msg_header_append_u32(m, 0x80000000u | (uint32_t) (i + 1));
	else if (m != NULL && o.raw && is(o.proto, "pair1"))
		iok_msg_header_append_u32(m, 0);
	return m;
}

static int
send_msg(iok_socket s, long i)
{
	iok_msg *m = make_msg(i);
	int      rv;

	if (m == NULL)
		return fail("message", IOK_ENOMEM);
	if ((rv = iok_sendmsg(s, m, 0)) != 0) {
		iok_msg_free(m);
		return fail("send", rv);
	}
	return 0;
}

/* iok_recvmsg, with a completion the kernel made (a survey's end, a
 * request that timed out) turned into its error, as iok_recv reports it. */
static int
recv_msg(iok_socket s, iok_msg **mp)
{
	int rv;

	if ((rv = iok_recvmsg(s, mp, 0)) != 0)
		return rv;
	if ((rv = iok_msg_status(*mp)) != 0) {
		iok_msg_free(*mp);
		*mp = NULL;
	}
	return rv;
}

static int
do_send(iok_socket s)
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
do_recv(iok_socket s)
{
	long     n = 0;
	iok_msg *m;
	int      rv;

	while (o.recv < 0 || n < o.recv) {
		if ((rv = recv_msg(s, &m)) == IOK_ETIMEDOUT)
			return short_count(n, o.recv);
		if (rv != 0)
			return fail("recv", rv);
		print_msg(m);
		iok_msg_free(m);
		n++;
	}
	return PEER_OK;
}

/* Echo server (rep0, respondent0, and pair/bus peers): the reply is the
 * request with --prefix in front; raw sockets keep the routing header. */
static int
do_echo(iok_socket s)
{
	long     seen = 0, served = 0;
	iok_msg *m;
	int      rv;

	while (o.recv < 0 || served < o.recv) {
		if ((rv = recv_msg(s, &m)) == IOK_ETIMEDOUT)
			return short_count(served, o.recv);
		if (rv != 0)
			return fail("recv", rv);
		print_msg(m);
		if (seen++ < o.ignore) {
			iok_msg_free(m);
			continue;
		}
		if (o.reply_delay_ms > 0)
			peer_sleep_ms(o.reply_delay_ms);
		if ((rv = iok_msg_insert(m, o.prefix, strlen(o.prefix))) != 0 ||
		    (rv = iok_sendmsg(s, m, 0)) != 0) {
			iok_msg_free(m);
			return fail("reply", rv);
		}
		served++;
	}
	return PEER_OK;
}

static int
verify(long i, iok_msg *reply)
{
	return peer_verify(&o, i, iok_msg_body(reply), iok_msg_len(reply));
}

static int
do_req(iok_socket s)
{
	iok_msg *m;
	int      rv, rc;

	for (long i = 0; i < o.send; i++) {
		if ((rc = send_msg(s, i)) != 0)
			return rc;
		if ((rv = recv_msg(s, &m)) == IOK_ETIMEDOUT)
			return short_count(i, o.send);
		if (rv != 0)
			return fail("recv", rv);
		print_msg(m);
		rc = verify(i, m);
		iok_msg_free(m);
		if (rc != 0)
			return rc;
		if (o.interval_ms > 0)
			peer_sleep_ms(o.interval_ms);
	}
	return PEER_OK;
}

/* --outstanding K: K requests in flight on the one socket, through
 * iok_request tokens; as each reply comes back (in any order) the next
 * request goes out.  slot[k] is the token and number of a request in
 * flight (token 0: free). */
static int
do_req_tokens(iok_socket s)
{
	struct {
		uint64_t token;
		long     i;
	} *slot   = calloc((size_t) o.outstanding, sizeof(*slot));
	long next = 0, done = 0;
	int  rc = PEER_OK, rv;

	if (slot == NULL)
		return fail("memory", IOK_ENOMEM);
	while (rc == PEER_OK && done < o.send) {
		iok_msg *m;
		int      k;

		/* Fill every free slot. */
		for (k = 0; k < o.outstanding && next < o.send && rc == PEER_OK; k++) {
			if (slot[k].token != 0)
				continue;
			if ((m = make_msg(next)) == NULL) {
				rc = fail("message", IOK_ENOMEM);
				break;
			}
			if ((rv = iok_request(s, m, &slot[k].token, 0)) != 0) {
				iok_msg_free(m);
				rc = fail("request", rv);
				break;
			}
			slot[k].i = next++;
		}
		if (rc != PEER_OK)
			break;
		if ((rv = iok_recvmsg(s, &m, 0)) == IOK_ETIMEDOUT) {
			rc = short_count(done, o.send);
			break;
		}
		if (rv != 0) {
			rc = fail("recv", rv);
			break;
		}
		for (k = 0; k < o.outstanding; k++)
			if (slot[k].token != 0 && slot[k].token == iok_msg_token(m))
				break;
		if (k == o.outstanding) {
			peer_err(
			    "reply with unknown token %llu", (unsigned long long) iok_msg_token(m));
			rc = PEER_EVERIFY;
		} else if ((rv = iok_msg_status(m)) != 0) {
			peer_err("request %ld completed with: %s", slot[k].i, iok_strerror(rv));
			rc = rv == IOK_ETIMEDOUT ? short_count(done, o.send) : PEER_ELIB;
		} else {
			print_msg(m);
			rc            = verify(slot[k].i, m);
			slot[k].token = 0;
			done++;
		}
		iok_msg_free(m);
	}
	free(slot);
	return rc;
}

/* Each survey collects responses until the survey time is over (a plain
 * surveyor's survey then ends with IOK_ETIMEDOUT; a raw surveyor relies
 * on --recv-timeout). */
static int
do_survey(iok_socket s)
{
	int      rc = PEER_OK, rv;
	iok_msg *m;

	if (o.raw && o.recv_timeout_ms < 0)
		iok_socket_set_ms(s, IOK_OPT_RECVTIMEO, 1000);
	for (long i = 0; i < o.send; i++) {
		long got = 0;

		if ((rv = send_msg(s, i)) != 0)
			return rv;
		while ((rv = recv_msg(s, &m)) == 0) {
			print_msg(m);
			iok_msg_free(m);
			got++;
		}
		if (rv != IOK_ETIMEDOUT && rv != IOK_ESTATE)
			return fail("recv", rv);
		if (got < o.min_responses) {
			peer_err("survey %ld: %ld responses, wanted %ld", i, got, o.min_responses);
			rc = PEER_ERECV;
		}
	}
	return rc;
}

/* device PROTO A B: raw PROTO listening on A, raw peer protocol dialing B
 * (or, with B "-", a one-socket reflector for bus and pair), joined by
 * iok_device.  The forwarding runs on the kernel thread; this thread only
 * waits to be stopped (SIGTERM, SIGINT or --timeout: success). */
static int
run_device(void)
{
	iok_socket a = IOK_SOCKET_INITIALIZER, b = IOK_SOCKET_INITIALIZER;
	int        rc, rv;

	if ((rc = open_sock(&a, o.proto, 1)) != 0 || (rc = configure(a, o.proto, 1)) != 0 ||
	    (rc = start(a, o.url, 0)) != 0)
		return rc;
	if (strcmp(o.url2, "-") != 0) {
		const char *peer = peer_peer_proto(o.proto);

		if ((rc = open_sock(&b, peer, 1)) != 0 || (rc = configure(b, peer, 1)) != 0 ||
		    (rc = start(b, o.url2, 1)) != 0)
			return rc;
	}
	if ((rv = iok_device(a, b)) != 0)
		return fail("device", rv);
	if (o.ready_file != NULL)
		peer_write_file(o.ready_file, "ready");
	for (;;)
		pause();
}

static int
run(iok_socket s)
{
	int rc = o.wait_peer ? wait_peer(s) : PEER_OK;

	if (rc != PEER_OK)
		return rc;
	if (o.echo)
		return do_echo(s);
	if (is(o.proto, "req0") && o.send > 0)
		return o.outstanding > 1 && !o.raw ? do_req_tokens(s) : do_req(s);
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
	iok_socket s = IOK_SOCKET_INITIALIZER;
	int        rc;

	peer_parse(argc, argv, &o, "iok_peer", NULL);
	peer_arm_timeout(&o);
	if (o.device)
		return run_device();
	if ((rc = open_sock(&s, o.proto, o.raw)) != 0 || (rc = configure(s, o.proto, o.raw)) != 0 ||
	    (rc = start_all(s)) != 0)
		return rc;
	if (o.ready_file != NULL)
		peer_write_file(o.ready_file, "ready");
	/* Connected (or connecting): --delay lets the other side settle. */
	if (o.delay_ms > 0)
		peer_sleep_ms(o.delay_ms);
	rc = run(s);
	/* iok_close flushes what is still queued (IOK_OPT_LINGER) and then
	 * closes the connections at once.  Wait --linger ms first anyway, as
	 * nng_peer does: nanomsg drops what it has read but not yet handed to
	 * its application when it sees the connection close. */
	if (o.send > 0 || o.echo)
		peer_sleep_ms(o.linger_ms);
	iok_close(s);
	return rc;
}
