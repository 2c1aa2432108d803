/*
 * test_discovery_redis.c - pipelined-db over a static list of two real
 * redis-servers ("redis://h:A,h:B"): both connected before use, requests
 * spread, per-upstream replies and latency kept, and a replica that got
 * slow (CLIENT PAUSE) gets less: with both idle, every request goes to the
 * fast one; and a server removed from a watched file while requests wait
 * on it is drained: they complete, then its connection closes; and a
 * failover (REPLICAOF NO ONE on the replica, the old primary made its
 * replica) with ?role=primary: writes move to the promoted server, and
 * every write meanwhile either succeeds or fails clearly.
 */
#include "discutil.h"
#include "redisutil.h"

typedef struct le_cond {
	iok_socket  s;
	const char *name;
	uint64_t    v;
} le_cond;

static int
le_fn(void *arg)
{
	le_cond *k = arg;
	return tu_stat(k->s, k->name) <= k->v;
}

/* Wait until a statistic is at most v. */
static int
tu_wait_stat_le(iok_socket s, const char *name, uint64_t v, int ms)
{
	le_cond k = { s, name, v };
	return tu_wait_for(le_fn, &k, ms);
}

static void
test_two_servers(void **state)
{
	tu_redis   a = { 0 }, b = { 0 };
	iok_socket s;
	iok_dialer d;
	char       url[128];
	(void) state;
	if (!tu_redis_available()) {
		skip();
	}
	assert_int_equal(tu_redis_start(&a), 0);
	assert_int_equal(tu_redis_start(&b), 0);
	IOK_OK(iok_db_open(&s));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECVTIMEO, 20000));
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d,127.0.0.1:%d/?name=disc", a.port, b.port);
	IOK_OK(iok_dial(s, url, &d, 0));
	assert_true(tu_wait_stat(s, "stat:pipes", 2, 20000)); /* both, before use */

	/* Spread: both answer, and each keeps its replies and latency. */
	tu_ping_burst(s, 200);
	uint64_t ra = tu_upstream_field(d, a.port, "replies"),
	         rb = tu_upstream_field(d, b.port, "replies");
	assert_int_equal(ra + rb, 200);
	assert_true(ra > 0 && rb > 0);
	assert_true(tu_upstream_field(d, a.port, "latency-us") > 0);

	/* b gets slow: its requests wait out a pause, its latency climbs. */
	tu_redis_raw(b.port, "*3\r\n$6\r\nCLIENT\r\n$5\r\nPAUSE\r\n$3\r\n300\r\n", "+OK");
	tu_ping_burst(s, 40);
	uint64_t slow_b = tu_upstream_field(d, b.port, "replies");
	assert_true(slow_b > rb); /* some went there and waited */
	assert_true(tu_upstream_field(d, b.port, "latency-us") >
	            tu_upstream_field(d, a.port, "latency-us"));

	/* One at a time, both idle: the cheaper upstream is the fast one. */
	uint64_t before_a = tu_upstream_field(d, a.port, "replies");
	tu_ping_burst(s, 1);
	for (int i = 0; i < 29; i++) {
		tu_ping_burst(s, 1);
	}
	assert_int_equal(tu_upstream_field(d, a.port, "replies"), before_a + 30);
	assert_int_equal(tu_upstream_field(d, b.port, "replies"), slow_b);

	IOK_OK(iok_close(s));
	tu_redis_stop(&a);
	tu_redis_stop(&b);
}

/* How many PING commands server port has run (INFO commandstats). */
static long
pings_served(int port)
{
	static const char  cmd[] = "*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n";
	struct sockaddr_in sa;
	char               buf[16384];
	size_t             len  = 0;
	long               want = -1;
	int                fd   = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family      = AF_INET;
	sa.sin_port        = htons((uint16_t) port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
	assert_int_equal(write(fd, cmd, strlen(cmd)), (ssize_t) strlen(cmd));
	while (want < 0 || len < (size_t) want) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		assert_true(n > 0);
		len += (size_t) n;
		buf[len]  = '\0';
		char *eol = strstr(buf, "\r\n");
		if (want < 0 && eol != NULL) {
			want = (long) (eol + 2 - buf) + strtol(buf + 1, NULL, 10) +
			       2; /* $N\r\n...\r\n */
		}
	}
	close(fd);
	const char *p = strstr(buf, "cmdstat_ping:calls=");
	return p != NULL ? strtol(p + strlen("cmdstat_ping:calls="), NULL, 10) : 0;
}

static int
draining_seen(void *arg)
{
	iok_dialer *d   = arg;
	char       *ups = NULL;
	int         gone;
	IOK_OK(iok_dialer_get_string(*d, IOK_OPT_UPSTREAMS, &ups));
	gone = strstr(ups, "state=draining") != NULL || strchr(ups, '\n') == strrchr(ups, '\n');
	free(ups);
	return gone;
}

static void
test_drain(void **state)
{
	tu_redis   a = { 0 }, b = { 0 };
	iok_socket s;
	iok_dialer d;
	char       dir[400], path[500], url[600], text[128];
	(void) state;
	if (!tu_redis_available()) {
		skip();
	}
	assert_int_equal(tu_redis_start(&a), 0);
	assert_int_equal(tu_redis_start(&b), 0);
	du_tmpdir(dir, sizeof(dir), "drain");
	snprintf(path, sizeof(path), "%s/peers", dir);
	snprintf(text, sizeof(text), "127.0.0.1:%d\n127.0.0.1:%d\n", a.port, b.port);
	du_write_file(path, text);
	IOK_OK(iok_db_open(&s));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECVTIMEO, 20000));
	snprintf(url, sizeof(url), "redis+file://%s?name=drain", path);
	IOK_OK(iok_dial(s, url, &d, 0));
	assert_true(tu_wait_stat(s, "stat:pipes", 2, 20000));

	/* Requests wait on b (paused), then b leaves the file. */
	tu_redis_raw(b.port, "*3\r\n$6\r\nCLIENT\r\n$5\r\nPAUSE\r\n$4\r\n3000\r\n", "+OK");
	for (int i = 0; i < 40; i++) {
		uint64_t tok;
		IOK_OK(iok_request(s, tu_cmd("PING", NULL), &tok, 0));
	}
	snprintf(text, sizeof(text), "127.0.0.1:%d\n", a.port);
	du_write_file(path, text);
	assert_true(tu_wait_for(draining_seen, &d, 20000));
	/* Every request completes (none fails with a reset), b's too. */
	for (int i = 0; i < 40; i++) {
		iok_msg *m;
		IOK_OK(iok_recvmsg(s, &m, 0));
		assert_int_equal(iok_msg_status(m), 0);
		tu_assert_reply(m, "PONG");
		iok_msg_free(m);
	}
	assert_true(pings_served(b.port) > 0);                   /* some were b's */
	assert_true(tu_wait_stat_le(s, "stat:pipes", 1, 20000)); /* then it closed */
	uint64_t pipes = tu_stat(s, "stat:pipes");
	assert_int_equal(pipes, 1);
	IOK_OK(iok_close(s));
	tu_redis_stop(&a);
	tu_redis_stop(&b);
	unlink(path);
	rmdir(dir);
}

static void
replicaof(int port, int of_port)
{
	char cmd[128];
	if (of_port == 0) {
		tu_redis_raw(port, "*3\r\n$9\r\nREPLICAOF\r\n$2\r\nNO\r\n$3\r\nONE\r\n", "+OK");
		return;
	}
	char num[16];
	snprintf(num, sizeof(num), "%d", of_port);
	snprintf(cmd, sizeof(cmd), "*3\r\n$9\r\nREPLICAOF\r\n$9\r\n127.0.0.1\r\n$%zu\r\n%s\r\n",
	    strlen(num), num);
	tu_redis_raw(port, cmd, "+OK");
}

static int
peers_one(void *arg)
{
	int n = 0;
	IOK_OK(iok_socket_get_int(*(iok_socket *) arg, IOK_OPT_PEERS_LIVE, &n));
	return n == 1;
}

static void
test_failover(void **state)
{
	tu_redis   p = { 0 }, r = { 0 };
	iok_socket s;
	iok_dialer d;
	char       url[160], val[32], buf[64];
	int        ok = 0, readonly = 0, reset = 0;
	(void) state;
	if (!tu_redis_available()) {
		skip();
	}
	assert_int_equal(tu_redis_start(&p), 0);
	assert_int_equal(tu_redis_start(&r), 0);
	replicaof(r.port, p.port);
	IOK_OK(iok_db_open(&s));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECVTIMEO, 20000));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECONNMAXT, 200)); /* bounds the move */
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d,127.0.0.1:%d/?role=primary&name=fo",
	    p.port, r.port);
	IOK_OK(iok_dial(s, url, &d, IOK_FLAG_NONBLOCK));
	assert_true(tu_wait_for(peers_one, &s, 20000));
	assert_int_equal(tu_upstream_field(d, p.port, "pipes"), 1); /* the primary only */
	assert_int_equal(tu_upstream_field(d, r.port, "pipes"), 0);

	/* Promote r, demote p; then write until a write lands on r. */
	replicaof(r.port, 0);
	replicaof(p.port, r.port);
	uint64_t end = tu_now_ms() + 20000;
	for (int i = 0; ok == 0; i++) {
		iok_msg *m;
		uint64_t tok;
		assert_true(tu_now_ms() < end);
		snprintf(val, sizeof(val), "v%d", i);
		IOK_OK(iok_request(s, tu_cmd("SET", "k", val, NULL), &tok, 0));
		IOK_OK(iok_recvmsg(s, &m, 0));
		if (iok_msg_status(m) != 0) {
			/* In flight when the demoted server's connection closed,
			 * or failed fast (db:fail-fast) in the moment when no
			 * server was in the asked role: IOK_ESTATE. */
			int st = iok_msg_status(m);
			if (!(st == IOK_ECONNRESET || st == IOK_ECONNSHUT || st == IOK_ESTATE)) {
				fail_msg("status %d", st);
			}
			reset++;
		} else {
			const char *t = tu_str(m, buf, sizeof(buf));
			if (strcmp(t, "OK") == 0) {
				ok++;
			} else if (strncmp(t, "-READONLY", 9) == 0) {
				readonly++; /* a write the demoted server refused: clear */
			} else {
				fail_msg("unexpected reply %s", t);
			}
		}
		iok_msg_free(m);
	}
	/* The write is on the promoted server, which the dialer now uses. */
	char get[64];
	snprintf(get, sizeof(get), "$%zu\r\n%s", strlen(val), val);
	tu_redis_raw(r.port, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", get);
	assert_int_equal(tu_upstream_field(d, r.port, "pipes"), 1);
	print_message(
	    "failover: %d READONLY, %d reset, then OK on the new primary\n", readonly, reset);
	IOK_OK(iok_close(s));
	tu_redis_stop(&p);
	tu_redis_stop(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_servers),
		cmocka_unit_test(test_drain),
		cmocka_unit_test(test_failover),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
