/*
 * test_health.c - health of pipelined-db upstreams against real
 * redis-servers: probes of idle connections stay out of the replies and in
 * order with them; a server that stops answering (SIGSTOP: it accepts but
 * never replies) has its connection closed by the probe's timeout and
 * traffic goes to the other one, and it comes back after SIGCONT; an
 * upstream whose connections keep failing (CLIENT KILL) is ejected and
 * let back after the cool-off, but the last live one never is; and
 * db:max-inflight-per-upstream holds requests back while every upstream
 * is at its limit (BLPOP keeps requests in flight for as long as the test
 * wants); and SP connections' TCP keepalive follows health:interval.
 * Every wait is on a condition.
 */
#include <netinet/tcp.h>

#include "redisutil.h"

static bool
up_ejected(iok_dialer d, int port)
{
	char line[1024];
	tu_upstream_line(d, port, line, sizeof(line));
	return strstr(line, " health=ejected") != NULL;
}

typedef struct ej_cond {
	iok_dialer d;
	int        port;
	bool       want;
} ej_cond;

static int
ej_fn(void *arg)
{
	ej_cond *c = arg;
	return up_ejected(c->d, c->port) == c->want;
}

#define KILL_NORMAL "*4\r\n$6\r\nCLIENT\r\n$4\r\nKILL\r\n$4\r\nTYPE\r\n$6\r\nnormal\r\n"

/* A pipelined-db socket that reconnects quickly. */
static iok_socket
open_sock(void)
{
	iok_socket s;
	IOK_OK(iok_db_open(&s));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECVTIMEO, 20000));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECONNMINT, 10));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECONNMAXT, 100));
	return s;
}

static void
dial_two(iok_socket s, tu_redis *a, tu_redis *b, iok_dialer *d)
{
	char url[128];
	snprintf(
	    url, sizeof(url), "redis://127.0.0.1:%d,127.0.0.1:%d/?name=health", a->port, b->port);
	IOK_OK(iok_dial(s, url, d, 0));
}

/* Probes on idle connections never show up as replies and never shift
 * the matching of the requests around them. */
static void
test_probe_order(void **state)
{
	tu_redis   a = { 0 };
	iok_socket s;
	char       url[128], want[32];
	(void) state;
	if (!tu_redis_available()) {
		skip();
	}
	assert_int_equal(tu_redis_start(&a), 0);
	IOK_OK(iok_db_open(&s));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECVTIMEO, 20000));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_HEALTH_INTERVAL, 20));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_HEALTH_TIMEOUT, 10000));
	IOK_OK(iok_dial(s, tu_redis_url(&a, "probe", url, sizeof(url)), NULL, 0));
	int sent = 0;
	for (int round = 0; round < 10; round++) {
		/* Idle until a probe went out, then requests right behind it. */
		assert_true(tu_wait_stat(s, "stat:probes", (uint64_t) round + 1, 20000));
		uint64_t tok[5];
		for (int i = 0; i < 5; i++) {
			snprintf(want, sizeof(want), "r%d-%d", round, i);
			IOK_OK(iok_request(s, tu_cmd("ECHO", want, NULL), &tok[i], 0));
			sent++;
		}
		for (int i = 0; i < 5; i++) {
			iok_msg *m;
			IOK_OK(iok_recvmsg(s, &m, 0));
			assert_int_equal(iok_msg_token(m), tok[i]);
			snprintf(want, sizeof(want), "r%d-%d", round, i);
			tu_assert_reply(m, want);
			iok_msg_free(m);
		}
	}
	assert_int_equal(tu_stat(s, "stat:replies"), (uint64_t) sent);
	assert_int_equal(tu_stat(s, "stat:rx-dropped"), 0);
	assert_int_equal(tu_stat(s, "stat:proto-errors"), 0);
	assert_int_equal(tu_stat(s, "stat:probe-timeouts"), 0);
	assert_int_equal(tu_stat(s, "stat:pipes-opened"), 1); /* never reconnected */
	IOK_OK(iok_close(s));
	tu_redis_stop(&a);
}

/* A stopped server: its idle connection's probe times out, the
 * connection closes, requests all go to the other server; after SIGCONT
 * it is connected again and takes requests. */
static void
test_stopped_server(void **state)
{
	tu_redis   a = { 0 }, b = { 0 };
	iok_socket s;
	iok_dialer d;
	(void) state;
	if (!tu_redis_available()) {
		skip();
	}
	assert_int_equal(tu_redis_start(&a), 0);
	assert_int_equal(tu_redis_start(&b), 0);
	s = open_sock();
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_HEALTH_INTERVAL, 100));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_HEALTH_TIMEOUT, 300));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_CONNECT_TIMEOUT, 300));
	IOK_OK(iok_socket_set_int(s, IOK_OPT_HEALTH_EJECT_ERRORS, 0)); /* probes alone */
	dial_two(s, &a, &b, &d);
	assert_true(tu_wait_stat(s, "stat:pipes", 2, 20000));
	tu_ping_burst(s, 100);
	assert_true(tu_upstream_field(d, b.port, "replies") > 0);

	kill(b.pid, SIGSTOP);
	assert_true(tu_wait_stat(s, "stat:probe-timeouts", 1, 20000));
	assert_true(tu_upstream_field(d, b.port, "probe-timeouts") >= 1);
	assert_int_equal(tu_upstream_field(d, a.port, "probe-timeouts"), 0);
	/* Reconnects to b hang in the handshake (bounded by connect-timeout),
	 * so only a's connection takes requests. */
	uint64_t ra = tu_upstream_field(d, a.port, "replies"),
	         rb = tu_upstream_field(d, b.port, "replies");
	tu_ping_burst(s, 100);
	assert_int_equal(tu_upstream_field(d, a.port, "replies"), ra + 100);
	assert_int_equal(tu_upstream_field(d, b.port, "replies"), rb);

	kill(b.pid, SIGCONT);
	assert_true(tu_wait_stat(s, "stat:pipes", 2, 20000));
	for (int i = 0; i < 50 && tu_upstream_field(d, b.port, "replies") == rb; i++) {
		tu_ping_burst(s, 200); /* many in flight: both connections take some */
	}
	assert_true(tu_upstream_field(d, b.port, "replies") > rb);
	IOK_OK(iok_close(s));
	tu_redis_stop(&a);
	tu_redis_stop(&b);
}

/* Kill b's connections until it is ejected: while ejected it gets no
 * requests though connected; after the cool-off it is back.  A socket
 * with a single upstream never ejects it. */
static void
test_ejection(void **state)
{
	tu_redis   a = { 0 }, b = { 0 }, c = { 0 };
	iok_socket s, s1;
	iok_dialer d, d1;
	char       url[128];
	(void) state;
	if (!tu_redis_available()) {
		skip();
	}
	assert_int_equal(tu_redis_start(&a), 0);
	assert_int_equal(tu_redis_start(&b), 0);
	assert_int_equal(tu_redis_start(&c), 0);
	s = open_sock();
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_HEALTH_INTERVAL, 0));
	IOK_OK(iok_socket_set_int(s, IOK_OPT_HEALTH_EJECT_ERRORS, 3));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_HEALTH_EJECT_MS, 2000));
	dial_two(s, &a, &b, &d);
	assert_true(tu_wait_stat(s, "stat:pipes", 2, 20000));
	assert_false(up_ejected(d, b.port));
	/* The second address's first connection is not a reconnect (it was
	 * counted as one, and the waits below then ran a kill ahead). */
	assert_int_equal(tu_stat(s, "stat:reconnects"), 0);

	for (int i = 1; i <= 3; i++) {
		tu_redis_raw(b.port, KILL_NORMAL, ":");
		assert_true(tu_wait_stat(s, "stat:reconnects", (uint64_t) i, 20000));
		assert_true(tu_wait_stat(s, "stat:pipes", 2, 20000));
	}
	if (!tu_wait_stat(s, "stat:ejections", 1, 20000)) {
		/* Seen once in CI under load: say what the upstreams were. */
		char *txt = NULL;
		if (iok_debug_text("peers", &txt) == 0) {
			print_message("no ejection; peers:\n%s", txt);
			iok_strfree(txt);
		}
		fail_msg("b was not ejected after three lost connections");
	}
	assert_int_equal(tu_upstream_field(d, b.port, "ejections"), 1);
	assert_int_equal(tu_upstream_field(d, a.port, "ejections"), 0);
	{
		/* The debug endpoint's peers shows it too. */
		char *txt = NULL, want[64];
		IOK_OK(iok_debug_text("peers", &txt));
		snprintf(want, sizeof(want), "upstream=127.0.0.1:%d ", b.port);
		const char *line = strstr(txt, want);
		assert_non_null(line);
		const char *eol = strchr(line, '\n');
		const char *f   = strstr(line, " ejections=1 ");
		assert_true(f != NULL && (eol == NULL || f < eol));
		iok_strfree(txt);
	}

	/* Connected but ejected: everything goes to a.  (If the machine is
	 * so slow the cool-off ended meanwhile, nothing can be concluded.) */
	uint64_t rb = tu_upstream_field(d, b.port, "replies");
	if (up_ejected(d, b.port)) {
		tu_ping_burst(s, 100);
		if (up_ejected(d, b.port)) {
			assert_int_equal(tu_upstream_field(d, b.port, "replies"), rb);
		}
	}

	/* After the cool-off it takes requests again. */
	ej_cond back = { d, b.port, false };
	assert_true(tu_wait_for(ej_fn, &back, 30000));
	for (int i = 0; i < 50 && tu_upstream_field(d, b.port, "replies") == rb; i++) {
		tu_ping_burst(s, 200);
	}
	assert_true(tu_upstream_field(d, b.port, "replies") > rb);

	/* The only upstream is never ejected. */
	IOK_OK(iok_db_open(&s1));
	IOK_OK(iok_socket_set_ms(s1, IOK_OPT_RECVTIMEO, 20000));
	IOK_OK(iok_socket_set_ms(s1, IOK_OPT_RECONNMINT, 10));
	IOK_OK(iok_socket_set_ms(s1, IOK_OPT_HEALTH_INTERVAL, 0));
	IOK_OK(iok_socket_set_int(s1, IOK_OPT_HEALTH_EJECT_ERRORS, 2));
	IOK_OK(iok_dial(s1, tu_redis_url(&c, "alone", url, sizeof(url)), &d1, 0));
	assert_true(tu_wait_stat(s1, "stat:pipes", 1, 20000));
	for (int i = 1; i <= 3; i++) {
		tu_redis_raw(c.port, KILL_NORMAL, ":");
		assert_true(tu_wait_stat(s1, "stat:reconnects", (uint64_t) i, 20000));
		assert_true(tu_wait_stat(s1, "stat:pipes", 1, 20000));
	}
	assert_true(tu_upstream_field(d1, c.port, "consec-errors") >= 2);
	assert_int_equal(tu_stat(s1, "stat:ejections"), 0);
	assert_false(up_ejected(d1, c.port));
	tu_ping_burst(s1, 10);
	assert_int_equal(tu_upstream_field(d1, c.port, "consec-errors"), 0); /* replies reset it */

	IOK_OK(iok_close(s1));
	IOK_OK(iok_close(s));
	tu_redis_stop(&a);
	tu_redis_stop(&b);
	tu_redis_stop(&c);
}

/* One request in flight per upstream: two BLPOPs take both upstreams, a
 * PING waits (though each upstream has an idle connection) until one of
 * them is answered. */
static void
test_upstream_limit(void **state)
{
	tu_redis   a = { 0 }, b = { 0 };
	iok_socket s;
	iok_dialer d;
	tu_db      c;
	int        v;
	(void) state;
	if (!tu_redis_available()) {
		skip();
	}
	assert_int_equal(tu_redis_start(&a), 0);
	assert_int_equal(tu_redis_start(&b), 0);
	s = open_sock();
	IOK_OK(iok_socket_set_int(s, IOK_OPT_POOL_SIZE, 2));
	IOK_OK(iok_socket_set_int(s, IOK_OPT_DB_MAX_INFLIGHT_UPSTREAM, 1));
	IOK_OK(iok_socket_get_int(s, IOK_OPT_DB_MAX_INFLIGHT_UPSTREAM, &v));
	assert_int_equal(v, 1);
	dial_two(s, &a, &b, &d);
	assert_true(tu_wait_stat(s, "stat:pipes", 4, 20000));
	tu_db_start(&c, s);

	uint64_t t1 = tu_db_send(&c, tu_cmd("BLPOP", "l1", "0", NULL), 0, 0);
	uint64_t t2 = tu_db_send(&c, tu_cmd("BLPOP", "l2", "0", NULL), 0, 0);
	assert_true(tu_wait_stat(s, "db:inflight", 2, 20000));
	assert_int_equal(tu_upstream_field(d, a.port, "inflight"), 1);
	assert_int_equal(tu_upstream_field(d, b.port, "inflight"), 1);

	uint64_t t3 = tu_db_send(&c, tu_cmd("PING", NULL), 0, 0);
	assert_true(tu_wait_stat(s, "db:queued", 1, 20000));
	assert_int_equal(tu_stat(s, "stat:upstream-waits"), 1);
	assert_int_equal(tu_stat(s, "db:inflight"), 2);

	/* l1 answered (on whichever server holds it): the PING goes there. */
	tu_redis_raw(a.port, "*3\r\n$5\r\nRPUSH\r\n$2\r\nl1\r\n$1\r\nx\r\n", ":");
	tu_redis_raw(b.port, "*3\r\n$5\r\nRPUSH\r\n$2\r\nl1\r\n$1\r\nx\r\n", ":");
	iok_msg *m = tu_db_wait(&c, t1, 20000, NULL);
	tu_assert_reply(m, "*2");
	iok_msg_free(m);
	m = tu_db_wait(&c, t3, 20000, NULL);
	tu_assert_reply(m, "PONG");
	iok_msg_free(m);
	assert_int_equal(tu_stat(s, "db:queued"), 0);

	tu_redis_raw(a.port, "*3\r\n$5\r\nRPUSH\r\n$2\r\nl2\r\n$1\r\ny\r\n", ":");
	tu_redis_raw(b.port, "*3\r\n$5\r\nRPUSH\r\n$2\r\nl2\r\n$1\r\ny\r\n", ":");
	m = tu_db_wait(&c, t2, 20000, NULL);
	tu_assert_reply(m, "*2");
	iok_msg_free(m);
	assert_true(tu_wait_stat(s, "stat:replies", 3, 20000));
	assert_int_equal(tu_upstream_field(d, a.port, "inflight"), 0);
	assert_int_equal(tu_upstream_field(d, b.port, "inflight"), 0);
	assert_int_equal(tu_db_stop(&c), 0);

	/* 0 lifts the limit; the range is checked. */
	IOK_OK(iok_socket_set_int(s, IOK_OPT_DB_MAX_INFLIGHT_UPSTREAM, 0));
	assert_int_equal(iok_socket_set_int(s, IOK_OPT_DB_MAX_INFLIGHT_UPSTREAM, -1), IOK_EINVAL);
	IOK_OK(iok_close(s));
	tu_redis_stop(&a);
	tu_redis_stop(&b);
}

/* Every upstream at its limit and the pattern's queue full: a
 * non-blocking request says IOK_EAGAIN, a blocking one waits out the send
 * timeout and says IOK_ETIMEDOUT; nothing is lost once the upstream
 * answers. */
static void
test_upstream_limit_full(void **state)
{
	tu_redis   a = { 0 };
	iok_socket s;
	char       url[128];
	uint64_t   tok;
	iok_msg   *m;
	int        n = 0, rv = 0;
	(void) state;
	if (!tu_redis_available()) {
		skip();
	}
	assert_int_equal(tu_redis_start(&a), 0);
	s = open_sock();
	IOK_OK(iok_socket_set_int(s, IOK_OPT_DB_MAX_INFLIGHT_UPSTREAM, 1));
	IOK_OK(iok_socket_set_int(s, IOK_OPT_SENDBUF, 1));
	IOK_OK(iok_dial(s, tu_redis_url(&a, "full", url, sizeof(url)), NULL, 0));
	IOK_OK(iok_request(s, tu_cmd("BLPOP", "lf", "0", NULL), &tok, 0));
	assert_true(tu_wait_stat(s, "db:inflight", 1, 20000));
	while (n < 100000) {
		m = tu_cmd("PING", NULL);
		if ((rv = iok_request(s, m, &tok, IOK_FLAG_NONBLOCK)) != 0) {
			iok_msg_free(m); /* refused: still ours */
			uint64_t q = tu_stat(s, "db:queued");
			if (rv == IOK_EAGAIN && q >= 1024 && (uint64_t) n > q) {
				/* The pattern's queue is full and the socket's holds
				 * what it refused: nothing can move any more. */
				break;
			}
			assert_int_equal(rv, IOK_EAGAIN);
			continue; /* the kernel had not taken the last one yet */
		}
		n++;
	}
	assert_int_equal(rv, IOK_EAGAIN);
	assert_int_equal(n, 1024 + 1); /* the pattern's queue + send-buffer */
	assert_true(tu_stat(s, "stat:upstream-waits") >= 1);
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_SENDTIMEO, 50));
	m = tu_cmd("PING", NULL);
	assert_int_equal(iok_request(s, m, &tok, 0), IOK_ETIMEDOUT);
	iok_msg_free(m);

	tu_redis_raw(a.port, "*3\r\n$5\r\nRPUSH\r\n$2\r\nlf\r\n$1\r\nx\r\n", ":");
	int pongs = 0, lists = 0;
	for (int i = 0; i < n + 1; i++) {
		IOK_OK(iok_recvmsg(s, &m, 0));
		assert_int_equal(iok_msg_status(m), 0);
		char b[64];
		tu_str(m, b, sizeof(b));
		pongs += strcmp(b, "PONG") == 0;
		lists += strcmp(b, "*2") == 0;
		iok_msg_free(m);
	}
	assert_int_equal(pongs, n);
	assert_int_equal(lists, 1);
	IOK_OK(iok_close(s));
	tu_redis_stop(&a);
}

/* SP connections' health check is TCP keepalive, timed by health:interval
 * (idle seconds) and health:timeout (seconds between probes): read back
 * from the dialer's own descriptor, found among the process's. */
static void
test_sp_keepalive(void **state)
{
	iok_socket l, c;
	char       url[64];
	int        port = tu_free_port(), found = 0;
	(void) state;
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	IOK_OK(iok_pair0_open(&l));
	IOK_OK(iok_pair0_open(&c));
	IOK_OK(iok_listen(l, url, NULL, 0));
	IOK_OK(iok_socket_set_bool(c, IOK_OPT_TCP_KEEPALIVE, true));
	IOK_OK(iok_socket_set_ms(c, IOK_OPT_HEALTH_INTERVAL, 2000));
	IOK_OK(iok_socket_set_ms(c, IOK_OPT_HEALTH_TIMEOUT, 2500));
	IOK_OK(iok_dial(c, url, NULL, 0));
	assert_true(tu_wait_stat(c, "stat:pipes", 1, 20000));
	for (int fd = 0; fd < 4096; fd++) {
		struct sockaddr_in peer;
		socklen_t          len = sizeof(peer);
		int                v;
		socklen_t          vl = sizeof(v);
		if (getpeername(fd, (struct sockaddr *) &peer, &len) != 0 ||
		    peer.sin_family != AF_INET || ntohs(peer.sin_port) != port) {
			continue; /* not the dialer's connection */
		}
		found++;
		assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, &vl), 0);
		assert_int_equal(v, 1);
		assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, &vl), 0);
		assert_int_equal(v, 2);
		assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &v, &vl), 0);
		assert_int_equal(v, 3);
		assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &v, &vl), 0);
		assert_int_equal(v, 3);
	}
	assert_int_equal(found, 1);
	IOK_OK(iok_close(c));
	IOK_OK(iok_close(l));
}

/* Option checks: ranges, defaults, the "off" values. */
static void
test_options(void **state)
{
	iok_socket   s;
	iok_duration ms;
	int          v;
	(void) state;
	IOK_OK(iok_db_open(&s));
	IOK_OK(iok_socket_get_ms(s, IOK_OPT_HEALTH_INTERVAL, &ms));
	assert_int_equal(ms, 5000);
	IOK_OK(iok_socket_get_ms(s, IOK_OPT_HEALTH_TIMEOUT, &ms));
	assert_int_equal(ms, 2000);
	IOK_OK(iok_socket_get_int(s, IOK_OPT_HEALTH_EJECT_ERRORS, &v));
	assert_int_equal(v, 5);
	IOK_OK(iok_socket_get_ms(s, IOK_OPT_HEALTH_EJECT_MS, &ms));
	assert_int_equal(ms, 30000);
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_HEALTH_INTERVAL, 0));
	assert_int_equal(iok_socket_set_ms(s, IOK_OPT_HEALTH_TIMEOUT, 0), IOK_EINVAL);
	assert_int_equal(iok_socket_set_ms(s, IOK_OPT_HEALTH_EJECT_MS, 0), IOK_EINVAL);
	assert_int_equal(iok_socket_set_ms(s, IOK_OPT_HEALTH_INTERVAL, -1), IOK_EINVAL);
	assert_int_equal(iok_socket_set_int(s, IOK_OPT_HEALTH_EJECT_ERRORS, -1), IOK_EINVAL);
	IOK_OK(iok_socket_get_int(s, IOK_OPT_DB_MAX_INFLIGHT_UPSTREAM, &v));
	assert_int_equal(v, 0);

	/* Set on the socket after dialing: a dialer that kept the socket's
	 * health options follows; one that set its own keeps them all. */
	iok_dialer follows, own;
	IOK_OK(iok_dial(s, "redis://127.0.0.1:1", &follows, IOK_FLAG_NONBLOCK));
	IOK_OK(iok_dialer_create(&own, s, "redis://127.0.0.1:2"));
	IOK_OK(iok_dialer_set_int(own, IOK_OPT_HEALTH_EJECT_ERRORS, 3));
	IOK_OK(iok_dialer_start(own, IOK_FLAG_NONBLOCK));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_HEALTH_INTERVAL, 1234));
	IOK_OK(iok_socket_set_int(s, IOK_OPT_HEALTH_EJECT_ERRORS, 9));
	IOK_OK(iok_dialer_get_ms(follows, IOK_OPT_HEALTH_INTERVAL, &ms));
	assert_int_equal(ms, 1234);
	IOK_OK(iok_dialer_get_int(follows, IOK_OPT_HEALTH_EJECT_ERRORS, &v));
	assert_int_equal(v, 9);
	IOK_OK(iok_dialer_get_int(own, IOK_OPT_HEALTH_EJECT_ERRORS, &v));
	assert_int_equal(v, 3);
	IOK_OK(iok_dialer_get_ms(own, IOK_OPT_HEALTH_INTERVAL, &ms));
	assert_int_equal(ms, 0); /* as the socket had it when the dialer was made */
	IOK_OK(iok_close(s));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_sp_keepalive),
		cmocka_unit_test(test_probe_order),
		cmocka_unit_test(test_stopped_server),
		cmocka_unit_test(test_ejection),
		cmocka_unit_test(test_upstream_limit),
		cmocka_unit_test(test_upstream_limit_full),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
