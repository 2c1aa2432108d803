/*
 * test_survey.c - SURVEYOR/RESPONDENT over real sockets (inproc, ipc,
 * tcp): surveys answered by several respondents then IOK_ETIMEDOUT, late
 * responses dropped, many surveys at once with tokens, cancel, raw
 * sockets and devices, and bad input from a raw TCP peer.  Waits are on
 * conditions or receive timeouts, never sleeps.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

#define WAIT_MS 20000  /* a safety net for waits on conditions */
#define SURVEY_MS 2000 /* long enough for every respondent to answer */

static const char *const transports[] = { "inproc", "ipc", "tcp" };
#define NTRANS ((int) (sizeof(transports) / sizeof(transports[0])))

static void
listen_any(iok_socket s, const char *t, char *url, size_t cap)
{
	static int seq;
	if (strcmp(t, "inproc") == 0) {
		snprintf(url, cap, "inproc://sv-%d-%d", (int) getpid(), seq++);
		IOK_OK(iok_listen(s, url, NULL, 0));
	} else if (strcmp(t, "ipc") == 0) {
		snprintf(url, cap, "%s", tu_ipc_url("sv"));
		IOK_OK(iok_listen(s, url, NULL, 0));
	} else {
		iok_listener l;
		int          port = 0;
		IOK_OK(iok_listen(s, "tcp://127.0.0.1:0", &l, 0));
		IOK_OK(iok_listener_get_int(l, IOK_OPT_TCP_BOUND_PORT, &port));
		snprintf(url, cap, "tcp://127.0.0.1:%d", port);
	}
}

static void
wait_pipes(iok_socket s, uint64_t n)
{
	assert_true(tu_wait_stat(s, "stat:pipes", n, WAIT_MS));
}

static iok_msg *
mkmsg(const char *s)
{
	iok_msg *m;
	IOK_OK(iok_msg_alloc(&m, strlen(s)));
	memcpy(iok_msg_body(m), s, strlen(s));
	return m;
}

static void
assert_body(iok_msg *m, const char *s)
{
	assert_int_equal(iok_msg_len(m), strlen(s));
	assert_memory_equal(iok_msg_body(m), s, strlen(s));
}

static iok_msg *
recv_msg(iok_socket s, int timeout_ms)
{
	iok_msg *m = NULL;
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECVTIMEO, timeout_ms));
	IOK_OK(iok_recvmsg(s, &m, 0));
	return m;
}

static void
send_str(iok_socket s, const char *str)
{
	IOK_OK(iok_send(s, str, strlen(str), 0));
}

static void
expect_str(iok_socket s, const char *str)
{
	char buf[256];
	IOK_OK(tu_recv_str(s, buf, sizeof(buf), WAIT_MS));
	assert_string_equal(buf, str);
}

static void
expect_nothing(iok_socket s)
{
	iok_msg *m  = NULL;
	int      rv = iok_recvmsg(s, &m, IOK_FLAG_NONBLOCK);
	if (rv == 0) {
		fail_msg("unexpected message: %zu bytes, token %llu, status %d", iok_msg_len(m),
		    (unsigned long long) iok_msg_token(m), iok_msg_status(m));
	}
	/* ESTATE: a plain surveyor whose survey has ended (as nng). */
	assert_true(rv == IOK_EAGAIN || rv == IOK_ESTATE);
}

/* The survey's end, through the plain API. */
static void
expect_end(iok_socket s)
{
	char   buf[64];
	size_t len = sizeof(buf);
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECVTIMEO, WAIT_MS));
	assert_int_equal(iok_recv(s, buf, &len, 0), IOK_ETIMEDOUT);
}

enum { NR = 3 };

/* A surveyor listening on transport t with NR respondents dialled in. */
static void
setup(const char *t, iok_socket *srv, iok_socket resp[NR])
{
	char url[256];
	IOK_OK(iok_surveyor0_open(srv));
	listen_any(*srv, t, url, sizeof(url));
	for (int i = 0; i < NR; i++) {
		IOK_OK(iok_respondent0_open(&resp[i]));
		IOK_OK(iok_dial(resp[i], url, NULL, IOK_FLAG_NONBLOCK));
	}
	wait_pipes(*srv, NR);
}

static void
teardown(iok_socket srv, iok_socket resp[NR])
{
	for (int i = 0; i < NR; i++) {
		IOK_OK(iok_close(resp[i]));
	}
	IOK_OK(iok_close(srv));
}

/* --------------------------------------------------------------- tests */

static void
test_options(void **state)
{
	iok_socket   srv, rsrv, resp;
	iok_duration d;
	int          v;
	char        *name;
	(void) state;
	IOK_OK(iok_surveyor0_open(&srv));
	IOK_OK(iok_surveyor0_open_raw(&rsrv));
	IOK_OK(iok_respondent0_open(&resp));
	IOK_OK(iok_socket_get_ms(srv, IOK_OPT_SURVEYOR_SURVEYTIME, &d));
	assert_int_equal(d, 1000); /* nng's default */
	IOK_OK(iok_socket_set_ms(srv, IOK_OPT_SURVEYOR_SURVEYTIME, 50));
	IOK_OK(iok_socket_get_ms(srv, IOK_OPT_SURVEYOR_SURVEYTIME, &d));
	assert_int_equal(d, 50);
	assert_int_equal(iok_socket_get_ms(rsrv, IOK_OPT_SURVEYOR_SURVEYTIME, &d), IOK_ENOTSUP);
	assert_int_equal(iok_socket_set_ms(resp, IOK_OPT_SURVEYOR_SURVEYTIME, 5), IOK_ENOTSUP);
	IOK_OK(iok_socket_get_int(srv, IOK_OPT_PROTO, &v));
	assert_int_equal(v, 0x62);
	IOK_OK(iok_socket_get_int(srv, IOK_OPT_PEER, &v));
	assert_int_equal(v, 0x63);
	IOK_OK(iok_socket_get_int(resp, IOK_OPT_PROTO, &v));
	assert_int_equal(v, 0x63);
	IOK_OK(iok_socket_get_string(srv, IOK_OPT_PROTONAME, &name));
	assert_string_equal(name, "surveyor0");
	iok_strfree(name);
	IOK_OK(iok_socket_get_string(resp, IOK_OPT_PEERNAME, &name));
	assert_string_equal(name, "surveyor0");
	iok_strfree(name);
	/* A respondent answers only what it was asked. */
	assert_int_equal(iok_send(resp, "x", 1, 0), IOK_ESTATE);
	IOK_OK(iok_close(srv));
	IOK_OK(iok_close(rsrv));
	IOK_OK(iok_close(resp));
}

/* Three respondents answer; then the survey ends with IOK_ETIMEDOUT. */
static void
test_survey_plain(void **state)
{
	(void) state;
	for (int t = 0; t < NTRANS; t++) {
		iok_socket srv, resp[NR];
		setup(transports[t], &srv, resp);
		IOK_OK(iok_socket_set_ms(srv, IOK_OPT_SURVEYOR_SURVEYTIME, SURVEY_MS));
		for (int round = 0; round < 2; round++) {
			char q[32];
			snprintf(q, sizeof(q), "who? %d", round);
			send_str(srv, q);
			for (int i = 0; i < NR; i++) {
				char a[32];
				expect_str(resp[i], q);
				snprintf(a, sizeof(a), "me %d", i);
				send_str(resp[i], a);
			}
			int seen[NR] = { 0 };
			for (int i = 0; i < NR; i++) {
				char buf[32];
				int  k;
				IOK_OK(tu_recv_str(srv, buf, sizeof(buf), WAIT_MS));
				assert_int_equal(sscanf(buf, "me %d", &k), 1);
				assert_true(k >= 0 && k < NR && !seen[k]);
				seen[k] = 1;
			}
			expect_end(srv);
		}
		assert_int_equal(tu_stat(srv, "stat:rx-dropped"), 0);
		teardown(srv, resp);
	}
}

/* A respondent answers a survey once: a second answer to it is dropped
 * at the respondent (the surveyor would take it as another response). */
static void
test_respondent_answers_once(void **state)
{
	(void) state;
	for (int t = 0; t < NTRANS; t++) {
		iok_socket srv, resp[NR];
		setup(transports[t], &srv, resp);
		IOK_OK(iok_socket_set_ms(srv, IOK_OPT_SURVEYOR_SURVEYTIME, SURVEY_MS));
		send_str(srv, "once?");
		for (int i = 0; i < NR; i++) {
			iok_msg *in  = recv_msg(resp[i], WAIT_MS);
			uint64_t tok = iok_msg_token(in);
			IOK_OK(iok_reply(resp[i], in, tok, 0));
			if (i == 0) {
				IOK_OK(iok_reply(resp[i], mkmsg("once?"), tok, 0));
			}
		}
		assert_true(tu_wait_stat(resp[0], "stat:tx-dropped", 1, WAIT_MS));
		for (int i = 0; i < NR; i++) {
			expect_str(srv, "once?");
		}
		expect_end(srv);
		assert_int_equal(tu_stat(srv, "stat:rx-dropped"), 0);
		teardown(srv, resp);
	}
}

/* A response after the survey ended is dropped and counted. */
static void
test_survey_late(void **state)
{
	(void) state;
	for (int t = 0; t < NTRANS; t++) {
		iok_socket srv, resp[NR];
		setup(transports[t], &srv, resp);
		IOK_OK(iok_socket_set_ms(srv, IOK_OPT_SURVEYOR_SURVEYTIME, 100));
		send_str(srv, "quick");
		expect_str(resp[0], "quick");
		expect_end(srv);
		send_str(resp[0], "too late");
		assert_true(tu_wait_stat(srv, "stat:rx-dropped", 1, WAIT_MS));
		expect_nothing(srv);
		teardown(srv, resp);
	}
}

/* A new survey ends the previous one: responses to the old are dropped,
 * and no ETIMEDOUT comes for it. */
static void
test_survey_replaced(void **state)
{
	iok_socket srv, resp[NR];
	(void) state;
	setup("inproc", &srv, resp);
	IOK_OK(iok_socket_set_ms(srv, IOK_OPT_SURVEYOR_SURVEYTIME, 60000));
	send_str(srv, "old");
	iok_msg *a = recv_msg(resp[0], WAIT_MS);
	assert_body(a, "old");
	IOK_OK(iok_socket_set_ms(srv, IOK_OPT_SURVEYOR_SURVEYTIME, 300));
	send_str(srv, "new");
	iok_msg *b = recv_msg(resp[0], WAIT_MS);
	assert_body(b, "new");
	IOK_OK(iok_reply(resp[0], mkmsg("to old"), iok_msg_token(a), 0));
	IOK_OK(iok_reply(resp[0], mkmsg("to new"), iok_msg_token(b), 0));
	expect_str(srv, "to new");
	assert_true(tu_wait_stat(srv, "stat:rx-dropped", 1, WAIT_MS));
	expect_end(srv);
	/* One end only (the old survey's would have come at 60 s): with no
	 * survey running, a receive says so at once, as nng does. */
	iok_msg *m;
	IOK_OK(iok_socket_set_ms(srv, IOK_OPT_RECVTIMEO, 600));
	assert_int_equal(iok_recvmsg(srv, &m, 0), IOK_ESTATE);
	iok_msg_free(a);
	iok_msg_free(b);
	teardown(srv, resp);
}

/* No respondent at all: the survey goes nowhere and still ends. */
static void
test_survey_no_peers(void **state)
{
	iok_socket srv;
	(void) state;
	IOK_OK(iok_surveyor0_open(&srv));
	IOK_OK(iok_socket_set_ms(srv, IOK_OPT_SURVEYOR_SURVEYTIME, 50));
	send_str(srv, "anyone?");
	expect_end(srv);
	IOK_OK(iok_close(srv));
}

/* Several surveys at once with iok_request: each response carries its
 * survey's token, each survey ends once, after its responses; a
 * cancelled survey delivers nothing. */
static void
test_survey_tokens(void **state)
{
	(void) state;
	for (int t = 0; t < NTRANS; t++) {
		enum { NS = 5 };
		iok_socket srv, resp[NR];
		uint64_t   tok[NS], cancelled;
		int        got[NS]   = { 0 };
		int        ended[NS] = { 0 };
		setup(transports[t], &srv, resp);
		IOK_OK(iok_socket_set_ms(srv, IOK_OPT_SURVEYOR_SURVEYTIME, SURVEY_MS));
		for (int s = 0; s < NS; s++) {
			char q[32];
			snprintf(q, sizeof(q), "survey %d", s);
			IOK_OK(iok_request(srv, mkmsg(q), &tok[s], 0));
		}
		IOK_OK(iok_request(srv, mkmsg("never mind"), &cancelled, 0));
		/* Each respondent answers all surveys, last first. */
		for (int i = 0; i < NR; i++) {
			iok_msg *in[NS + 1];
			for (int s = 0; s < NS + 1; s++) {
				in[s] = recv_msg(resp[i], WAIT_MS);
			}
			if (i == 0) {
				IOK_OK(iok_cancel(srv, cancelled));
			}
			for (int s = NS; s >= 0; s--) {
				uint64_t rt = iok_msg_token(in[s]);
				IOK_OK(iok_msg_append(in[s], " answered", 9));
				IOK_OK(iok_reply(resp[i], in[s], rt, 0));
			}
		}
		int total = 0;
		while (total < NS * NR + NS) {
			iok_msg *m = recv_msg(srv, WAIT_MS);
			int      k = -1;
			for (int s = 0; s < NS; s++) {
				if (tok[s] == iok_msg_token(m)) {
					k = s;
				}
			}
			assert_true(k >= 0); /* never the cancelled one */
			if (iok_msg_status(m) == IOK_ETIMEDOUT) {
				assert_int_equal(got[k], NR); /* after its responses */
				assert_false(ended[k]);
				ended[k] = 1;
			} else {
				char want[64];
				assert_int_equal(iok_msg_status(m), 0);
				assert_false(ended[k]);
				snprintf(want, sizeof(want), "survey %d answered", k);
				assert_body(m, want);
				got[k]++;
			}
			iok_msg_free(m);
			total++;
		}
		assert_true(tu_wait_stat(srv, "stat:rx-dropped", NR, WAIT_MS)); /* cancelled's */
		expect_nothing(srv);
		teardown(srv, resp);
	}
}

/* Survey ends that find the receive queue full wait in the pattern and are
 * delivered as the application makes room (recv_ready): each survey ends
 * exactly once. */
static void
test_survey_ends_queue_full(void **state)
{
	enum { NS = 8 };
	iok_socket srv;
	uint64_t   tok[NS];
	(void) state;
	IOK_OK(iok_socket_open(&srv, "surveyor"));
	IOK_OK(iok_socket_set_int(srv, IOK_OPT_RECVBUF, 1));
	IOK_OK(iok_socket_set_ms(srv, IOK_OPT_SURVEYOR_SURVEYTIME, 20));
	for (int s = 0; s < NS; s++) {
		IOK_OK(iok_request(srv, mkmsg("anyone?"), &tok[s], 0));
	}
	for (int s = 0; s < NS; s++) {
		iok_msg *m = recv_msg(srv, WAIT_MS);
		assert_int_equal(iok_msg_status(m), IOK_ETIMEDOUT);
		assert_int_equal(iok_msg_token(m), tok[s]);
		iok_msg_free(m);
	}
	expect_nothing(srv);
	IOK_OK(iok_close(srv));
}

/* A respondent answering many surveys concurrently through iok_reply, and
 * respondent tokens forgotten when the surveyor goes. */
static void
test_respondent_concurrent(void **state)
{
	enum { NSRV = 4 };
	iok_socket resp, srv[NSRV];
	char       url[256];
	iok_msg   *in[NSRV];
	(void) state;
	IOK_OK(iok_respondent0_open(&resp));
	listen_any(resp, "tcp", url, sizeof(url));
	for (int i = 0; i < NSRV; i++) {
		IOK_OK(iok_surveyor0_open(&srv[i]));
		IOK_OK(iok_socket_set_ms(srv[i], IOK_OPT_SURVEYOR_SURVEYTIME, 60000));
		IOK_OK(iok_dial(srv[i], url, NULL, IOK_FLAG_NONBLOCK));
	}
	wait_pipes(resp, NSRV);
	for (int i = 0; i < NSRV; i++) {
		char q[32];
		snprintf(q, sizeof(q), "from %d", i);
		send_str(srv[i], q);
	}
	for (int i = 0; i < NSRV; i++) {
		in[i] = recv_msg(resp, WAIT_MS);
	}
	for (int i = NSRV - 1; i >= 0; i--) {
		uint64_t tk = iok_msg_token(in[i]);
		IOK_OK(iok_msg_append(in[i], " back", 5));
		IOK_OK(iok_reply(resp, in[i], tk, 0));
	}
	for (int i = 0; i < NSRV; i++) {
		char want[32];
		snprintf(want, sizeof(want), "from %d back", i);
		expect_str(srv[i], want);
		IOK_OK(iok_close(srv[i]));
	}
	IOK_OK(iok_close(resp));
}

/* Raw surveyor and respondent show headers; a device forwards surveys
 * out and responses back. */
static void
test_raw_and_device(void **state)
{
	(void) state;
	for (int t = 0; t < NTRANS; t++) {
		iok_socket srv, rresp, rsrv, resp[NR];
		char       url[256], front[256];

		/* Raw respondent: header = [pipe id, survey id]. */
		IOK_OK(iok_surveyor0_open(&srv));
		IOK_OK(iok_respondent0_open_raw(&rresp));
		listen_any(rresp, transports[t], url, sizeof(url));
		IOK_OK(iok_dial(srv, url, NULL, IOK_FLAG_NONBLOCK));
		wait_pipes(rresp, 1);
		IOK_OK(iok_socket_set_ms(srv, IOK_OPT_SURVEYOR_SURVEYTIME, SURVEY_MS));
		send_str(srv, "raw?");
		iok_msg *m = recv_msg(rresp, WAIT_MS);
		assert_int_equal(iok_msg_header_len(m), 8);
		uint8_t *h = iok_msg_header(m);
		assert_false(h[0] & 0x80);
		assert_true(h[4] & 0x80);
		IOK_OK(iok_sendmsg(rresp, m, 0)); /* echo, header as received */
		expect_str(srv, "raw?");
		expect_end(srv);
		IOK_OK(iok_close(srv));
		IOK_OK(iok_close(rresp));

		/* surveyor -> [respondent_raw | device | surveyor_raw] -> NR
		 * respondents. */
		IOK_OK(iok_surveyor0_open_raw(&rsrv));
		IOK_OK(iok_respondent0_open_raw(&rresp));
		listen_any(rsrv, transports[t], url, sizeof(url));
		for (int i = 0; i < NR; i++) {
			IOK_OK(iok_respondent0_open(&resp[i]));
			IOK_OK(iok_dial(resp[i], url, NULL, IOK_FLAG_NONBLOCK));
		}
		wait_pipes(rsrv, NR);
		listen_any(rresp, transports[t], front, sizeof(front));
		IOK_OK(iok_device(rresp, rsrv));
		IOK_OK(iok_surveyor0_open(&srv));
		IOK_OK(iok_socket_set_ms(srv, IOK_OPT_SURVEYOR_SURVEYTIME, SURVEY_MS));
		IOK_OK(iok_dial(srv, front, NULL, IOK_FLAG_NONBLOCK));
		wait_pipes(srv, 1);
		wait_pipes(rresp, 1);
		send_str(srv, "through");
		for (int i = 0; i < NR; i++) {
			char a[32];
			expect_str(resp[i], "through");
			snprintf(a, sizeof(a), "r%d", i);
			send_str(resp[i], a);
		}
		int seen[NR] = { 0 };
		for (int i = 0; i < NR; i++) {
			char buf[32];
			int  k;
			IOK_OK(tu_recv_str(srv, buf, sizeof(buf), WAIT_MS));
			assert_int_equal(sscanf(buf, "r%d", &k), 1);
			assert_true(k >= 0 && k < NR && !seen[k]);
			seen[k] = 1;
		}
		expect_end(srv);
		IOK_OK(iok_close(srv));
		IOK_OK(iok_close(rresp));
		IOK_OK(iok_close(rsrv));
		for (int i = 0; i < NR; i++) {
			IOK_OK(iok_close(resp[i]));
		}
	}
}

/* ------------------------------------------------------ raw TCP peer */

static int
tcp_connect(int port)
{
	struct sockaddr_in sa  = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port) };
	int                fd  = socket(AF_INET, SOCK_STREAM, 0);
	int                one = 1;
	sa.sin_addr.s_addr     = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
	(void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void
write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n > 0) {
		ssize_t k = write(fd, b, n);
		assert_true(k > 0);
		b += k;
		n -= (size_t) k;
	}
}

static void
read_all(int fd, void *p, size_t n)
{
	uint8_t *b = p;
	while (n > 0) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		assert_int_equal(poll(&pfd, 1, WAIT_MS), 1);
		ssize_t k = read(fd, b, n);
		assert_true(k > 0);
		b += k;
		n -= (size_t) k;
	}
}

static void
sp_handshake(int fd, uint16_t proto, uint16_t peer)
{
	uint8_t hs[8] = { 0, 'S', 'P', 0, (uint8_t) (proto >> 8), (uint8_t) proto, 0, 0 };
	uint8_t in[8];
	write_all(fd, hs, 8);
	read_all(fd, in, 8);
	assert_int_equal(in[1], 'S');
	assert_int_equal((in[4] << 8) | in[5], peer);
}

static void
put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t) (v >> 24);
	p[1] = (uint8_t) (v >> 16);
	p[2] = (uint8_t) (v >> 8);
	p[3] = (uint8_t) v;
}

static uint32_t
get_u32(const uint8_t *p)
{
	return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8) | p[3];
}

static void
send_frame(int fd, const void *body, size_t len)
{
	uint8_t pre[8];
	for (int i = 0; i < 8; i++) {
		pre[i] = (uint8_t) ((uint64_t) len >> (56 - 8 * i));
	}
	write_all(fd, pre, 8);
	write_all(fd, body, len);
}

static size_t
recv_frame(int fd, uint8_t *body, size_t cap)
{
	uint8_t  pre[8];
	uint64_t len = 0;
	read_all(fd, pre, 8);
	for (int i = 0; i < 8; i++) {
		len = (len << 8) | pre[i];
	}
	assert_true(len <= cap);
	read_all(fd, body, (size_t) len);
	return (size_t) len;
}

/* A hand-written respondent sends bad responses: short, an id without the
 * high bit, an unknown id.  Counted and dropped; the right one is
 * delivered over the same connection. */
static void
test_bad_input_to_surveyor(void **state)
{
	iok_socket   srv;
	iok_listener l;
	int          port;
	uint8_t      f[64];
	(void) state;
	IOK_OK(iok_surveyor0_open(&srv));
	IOK_OK(iok_socket_set_ms(srv, IOK_OPT_SURVEYOR_SURVEYTIME, 60000));
	IOK_OK(iok_listen(srv, "tcp://127.0.0.1:0", &l, 0));
	IOK_OK(iok_listener_get_int(l, IOK_OPT_TCP_BOUND_PORT, &port));
	int fd = tcp_connect(port);
	sp_handshake(fd, 0x63, 0x62);
	wait_pipes(srv, 1);
	send_str(srv, "poll");
	size_t n = recv_frame(fd, f, sizeof(f));
	assert_int_equal(n, 8);
	uint32_t id = get_u32(f);
	assert_true(id & 0x80000000u);
	assert_memory_equal(f + 4, "poll", 4);

	send_frame(fd, "z", 1);
	assert_true(tu_wait_stat(srv, "stat:rx-malformed", 1, WAIT_MS));
	put_u32(f, id & 0x7fffffffu);
	memcpy(f + 4, "bad", 3);
	send_frame(fd, f, 7);
	assert_true(tu_wait_stat(srv, "stat:rx-malformed", 2, WAIT_MS));
	put_u32(f, id + 1);
	send_frame(fd, f, 7);
	assert_true(tu_wait_stat(srv, "stat:rx-dropped", 1, WAIT_MS));
	expect_nothing(srv);
	put_u32(f, id);
	memcpy(f + 4, "yes", 3);
	send_frame(fd, f, 7);
	expect_str(srv, "yes");
	assert_int_equal(tu_stat(srv, "stat:pipes"), 1);
	close(fd);
	IOK_OK(iok_close(srv));
}

/* A hand-written surveyor sends a respondent bad headers. */
static void
test_bad_input_to_respondent(void **state)
{
	iok_socket   resp;
	iok_listener l;
	int          port;
	uint8_t      f[64];
	(void) state;
	IOK_OK(iok_respondent0_open(&resp));
	IOK_OK(iok_listen(resp, "tcp://127.0.0.1:0", &l, 0));
	IOK_OK(iok_listener_get_int(l, IOK_OPT_TCP_BOUND_PORT, &port));
	int fd = tcp_connect(port);
	sp_handshake(fd, 0x62, 0x63);
	wait_pipes(resp, 1);

	send_frame(fd, "abc", 3);
	assert_true(tu_wait_stat(resp, "stat:rx-malformed", 1, WAIT_MS));
	put_u32(f, 7); /* no survey id */
	send_frame(fd, f, 4);
	assert_true(tu_wait_stat(resp, "stat:rx-malformed", 2, WAIT_MS));
	for (int i = 0; i < 9; i++) { /* 9 hops + id */
		put_u32(f + 4 * i, (uint32_t) (i + 1));
	}
	put_u32(f + 36, 0x8000000au);
	send_frame(fd, f, 40);
	assert_true(tu_wait_stat(resp, "stat:rx-dropped", 1, WAIT_MS));
	put_u32(f, 0x80000077u);
	memcpy(f + 4, "ok?", 3);
	send_frame(fd, f, 7);
	expect_str(resp, "ok?");
	send_str(resp, "ok!");
	size_t n = recv_frame(fd, f, sizeof(f));
	assert_int_equal(n, 7);
	assert_int_equal(get_u32(f), 0x80000077u);
	assert_memory_equal(f + 4, "ok!", 3);
	close(fd);
	IOK_OK(iok_close(resp));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_survey_plain),
		cmocka_unit_test(test_respondent_answers_once),
		cmocka_unit_test(test_survey_late),
		cmocka_unit_test(test_survey_replaced),
		cmocka_unit_test(test_survey_no_peers),
		cmocka_unit_test(test_survey_tokens),
		cmocka_unit_test(test_survey_ends_queue_full),
		cmocka_unit_test(test_respondent_concurrent),
		cmocka_unit_test(test_raw_and_device),
		cmocka_unit_test(test_bad_input_to_surveyor),
		cmocka_unit_test(test_bad_input_to_respondent),
	};
	int rv = cmocka_run_group_tests(tests, NULL, NULL);
	iok_fini();
	return rv;
}
