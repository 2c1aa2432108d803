/*
 * test_discovery.c - discovery: the parsers on good and hostile input, and
 * dialers following real changes: a static list, a watched file replaced
 * by a new version, A records in a real dnsmasq (hosts file edited,
 * SIGHUP) and SRV records (dnsmasq restarted with new ones), with traffic
 * flowing through the change and no request lost.
 */
#include "discutil.h"

#include "discovery/discovery.h"

static int   dns_port; /* the process-wide dnsmasq (IOK_DNS_SERVERS) */
static pid_t dns_pid;
static char  dns_dir[400], dns_hosts[500], dns_log[500];

/* ------------------------------------------------------------ parsers */

static void
test_parse_hostport(void **state)
{
	char     host[IK_DISC_HOST_MAX];
	uint16_t port;
	(void) state;
	const struct {
		const char *in;
		const char *host;
		int         port;
	} good[] = { { "a", "a", 0 }, { "a:1", "a", 1 }, { "10.0.0.1:5555", "10.0.0.1", 5555 },
		{ "[::1]", "::1", 0 }, { "[::1]:65535", "::1", 65535 },
		{ "svc.example.com:80", "svc.example.com", 80 } };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(
		    ik_disc_parse_hostport(good[i].in, strlen(good[i].in), host, &port), 0);
		assert_string_equal(host, good[i].host);
		assert_int_equal(port, good[i].port);
	}
	char longhost[400];
	memset(longhost, 'a', sizeof(longhost) - 1);
	longhost[sizeof(longhost) - 1] = '\0';
	const char *bad[] = { "", ":1", "a:", "a:0", "a:65536", "a:99999999", "a:1x", "[::1",
		"[::1]x", "[]:1", "::1", "a:b:c", "a b:1", "a/b:1", "u@a:1", "a,b", "a#b",
		longhost };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (ik_disc_parse_hostport(bad[i], strlen(bad[i]), host, &port) != IOK_EADDRINVAL) {
			fail_msg("accepted '%s'", bad[i]);
		}
	}
	/* Length-bounded: bytes past n are never looked at. */
	assert_int_equal(ik_disc_parse_hostport("a:12xyz", 4, host, &port), 0);
	assert_int_equal(port, 12);
}

static void
test_parse_list(void **state)
{
	iok_discovery_addr a[IK_DISC_MAX];
	char              *st;
	(void) state;
	assert_int_equal(ik_disc_parse_list("10.0.0.1:5555,[::1]:6,name", a, IK_DISC_MAX, &st), 3);
	assert_string_equal(a[0].host, "10.0.0.1");
	assert_int_equal(a[0].port, 5555);
	assert_string_equal(a[1].host, "::1");
	assert_string_equal(a[2].host, "name");
	assert_int_equal(a[2].port, 0);
	free(st);
	const char *bad[] = { "", ",", "a,", ",a", "a,,b", "a:1,b:", "a:1;b:2" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(ik_disc_parse_list(bad[i], a, IK_DISC_MAX, &st), -IOK_EADDRINVAL);
		assert_null(st);
	}
	/* More entries than room: refused, not truncated. */
	assert_int_equal(ik_disc_parse_list("a,b,c", a, 2, &st), -IOK_EADDRINVAL);
}

static void
test_parse_lines(void **state)
{
	iok_discovery_addr a[IK_DISC_MAX];
	char              *st;
	const char *ok = "# peers\n\n  10.0.0.1:1  \n10.0.0.2:2 7 # heavy\r\n[::1]:3\t2\nlast:4";
	(void) state;
	assert_int_equal(ik_disc_parse_lines(ok, strlen(ok), a, IK_DISC_MAX, &st), 4);
	assert_string_equal(a[0].host, "10.0.0.1");
	assert_int_equal(a[0].weight, 1);
	assert_int_equal(a[1].weight, 7);
	assert_string_equal(a[2].host, "::1");
	assert_int_equal(a[2].weight, 2);
	assert_string_equal(a[3].host, "last");
	free(st);
	assert_int_equal(
	    ik_disc_parse_lines("", 0, a, IK_DISC_MAX, &st), 0); /* empty file: empty set */
	free(st);
	const char *bad[] = { "a:1 2 3\n", "a:1 0\n", "a:1 70000\n", "a:1 x\n", "a:\n",
		"ok:1\nbad:1:2\n" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(ik_disc_parse_lines(bad[i], strlen(bad[i]), a, IK_DISC_MAX, &st),
		    -IOK_EADDRINVAL);
	}
	/* A NUL inside, and a file cut in the middle of a line. */
	assert_int_equal(
	    ik_disc_parse_lines("a:1\0b:2\n", 8, a, IK_DISC_MAX, &st), -IOK_EADDRINVAL);
	assert_int_equal(ik_disc_parse_lines("10.0.0.1:55", 10, a, IK_DISC_MAX, &st), 1);
	assert_int_equal(a[0].port, 5);
	free(st);
	/* More lines than room. */
	char many[IK_DISC_MAX * 8 + 16] = "";
	for (int i = 0; i <= IK_DISC_MAX; i++) {
		strcat(many, "h:1\n");
	}
	assert_int_equal(
	    ik_disc_parse_lines(many, strlen(many), a, IK_DISC_MAX, &st), -IOK_EADDRINVAL);
}

static int
known(const char *s)
{
	return strcmp(s, "tcp") == 0 || strcmp(s, "redis") == 0 || strcmp(s, "postgresql") == 0 ||
	       strcmp(s, "redis+unix") == 0;
}

static void
split_ok(const char *url, const char *backend, const char *target, const char *turl)
{
	char *b, *t, *u;
	assert_int_equal(ik_disc_split_url(url, known, &b, &t, &u), 0);
	assert_string_equal(b, backend);
	assert_string_equal(t, target);
	assert_string_equal(u, turl);
	free(b);
	free(t);
	free(u);
}

static void
test_split_url(void **state)
{
	char *b, *t, *u;
	(void) state;
	split_ok("tcp://h:1", "static", "h:1", "tcp://h:1");
	split_ok("tcp://10.0.0.1:5555,10.0.0.2:5555", "static", "10.0.0.1:5555,10.0.0.2:5555",
	    "tcp://10.0.0.1:5555");
	split_ok("postgresql://u:p@h1:5432,h2/db?sslmode=off", "static", "h1:5432,h2",
	    "postgresql://u:p@h1:5432/db?sslmode=off");
	split_ok("redis://h1,h2:6380/0?name=x", "static", "h1,h2:6380", "redis://h1/0?name=x");
	split_ok("tcp+srv://_svc._tcp.example", "srv", "_svc._tcp.example", "tcp://discovery");
	split_ok("redis+srv://:pw@_r._tcp.example?db=2", "srv", "_r._tcp.example",
	    "redis://:pw@discovery?db=2");
	split_ok("tcp+file:///etc/peers", "file", "/etc/peers", "tcp://discovery");
	split_ok("redis+unix:///tmp/r.sock", "static", "", "redis+unix:///tmp/r.sock");
	split_ok("TCP+Mine://x", "mine", "x", "tcp://discovery");
	assert_int_equal(ik_disc_split_url("udp://h:1", known, &b, &t, &u), IOK_ENOTSUP);
	assert_int_equal(ik_disc_split_url("udp+srv://h", known, &b, &t, &u), IOK_ENOTSUP);
	assert_int_equal(ik_disc_split_url("tcp+://h", known, &b, &t, &u), IOK_ENOTSUP);
	assert_int_equal(ik_disc_split_url("", known, &b, &t, &u), IOK_EADDRINVAL);
	assert_int_equal(ik_disc_split_url("://h", known, &b, &t, &u), IOK_EADDRINVAL);
	assert_int_equal(ik_disc_split_url("t cp://h", known, &b, &t, &u), IOK_EADDRINVAL);
}

/* A DNS answer: header, one question, two answers (TTLs 300 and 5). */
static size_t
dns_msg(uint8_t *m)
{
	static const uint8_t msg[] = { 0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0,
		/* question: a.b IN A */
		1, 'a', 1, 'b', 0, 0, 1, 0, 1,
		/* answer 1: pointer to the name, A, IN, TTL 300, 4 bytes */
		0xC0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 10, 0, 0, 1,
		/* answer 2: TTL 5 */
		0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0, 0, 2 };
	memcpy(m, msg, sizeof(msg));
	return sizeof(msg);
}

static void
test_dns_min_ttl(void **state)
{
	uint8_t  m[128];
	uint32_t ttl;
	size_t   n = dns_msg(m);
	(void) state;
	assert_int_equal(ik_dns_min_ttl(m, n, &ttl), 0);
	assert_int_equal(ttl, 5);
	/* Every truncation is refused, never read past. */
	for (size_t len = 0; len < n; len++) {
		uint8_t *cut = malloc(len > 0 ? len : 1);
		memcpy(cut, m, len);
		int rv = ik_dns_min_ttl(cut, len, &ttl);
		assert_true(rv == IOK_EPROTO);
		free(cut);
	}
	/* Reserved label bits, an endless label chain, a huge rdlength. */
	n     = dns_msg(m);
	m[12] = 0x80;
	assert_int_equal(ik_dns_min_ttl(m, n, &ttl), IOK_EPROTO);
	n     = dns_msg(m);
	m[47] = 0xFF; /* answer 2's rdlength high byte */
	assert_int_equal(ik_dns_min_ttl(m, n, &ttl), IOK_EPROTO);
	uint8_t chain[12 + 300] = { 0, 0, 0, 0, 0, 1, 0, 1 };
	for (size_t i = 12; i < sizeof(chain); i += 2) {
		chain[i]     = 1;
		chain[i + 1] = 'x';
	}
	assert_int_equal(ik_dns_min_ttl(chain, sizeof(chain), &ttl), IOK_EPROTO);
	/* No answers; a TTL with the top bit set counts as 0. */
	n    = dns_msg(m);
	m[7] = 0;
	assert_int_equal(ik_dns_min_ttl(m, n, &ttl), IOK_ENOENT);
	n     = dns_msg(m);
	m[27] = 0x80;
	assert_int_equal(ik_dns_min_ttl(m, n, &ttl), 0);
	assert_int_equal(ttl, 0);
	/* Random bytes never crash it. */
	srand(12);
	for (int i = 0; i < 20000; i++) {
		uint8_t r[64];
		size_t  len = (size_t) (rand() % 64);
		for (size_t k = 0; k < len; k++) {
			r[k] = (uint8_t) rand();
		}
		(void) ik_dns_min_ttl(r, len, &ttl);
	}
}

/* ------------------------------------------------- dialers following */

static char *
upstreams(iok_dialer d)
{
	char *s = NULL;
	IOK_OK(iok_dialer_get_string(d, IOK_OPT_UPSTREAMS, &s));
	return s;
}

static void
test_bad_targets(void **state)
{
	iok_socket s;
	(void) state;
	IOK_OK(iok_req0_open(&s));
	assert_int_equal(iok_dial(s, "tcp://a:1,", NULL, IOK_FLAG_NONBLOCK), IOK_EADDRINVAL);
	assert_int_equal(iok_dial(s, "tcp://a:1,b", NULL, IOK_FLAG_NONBLOCK),
	    IOK_EADDRINVAL); /* tcp has no default port */
	assert_int_equal(iok_dial(s, "tcp+nope://x", NULL, IOK_FLAG_NONBLOCK), IOK_ENOTSUP);
	assert_int_equal(iok_dial(s, "ipc+srv:///x", NULL, IOK_FLAG_NONBLOCK), IOK_EADDRINVAL);
	/* Backends check their target when the dialer starts. */
	assert_int_equal(iok_dial(s, "tcp+file://relative", NULL, 0), IOK_EADDRINVAL);
	assert_int_equal(iok_dial(s, "tcp+srv://a:1", NULL, 0), IOK_EADDRINVAL);
	IOK_OK(iok_close(s));
}

/* A static list: every address connected (times the pool size), traffic
 * spread over both. */
static void
test_static_list(void **state)
{
	du_server  a, b;
	du_client  c;
	iok_socket req;
	iok_dialer d;
	char       url[128];
	int        port = tu_free_port();
	(void) state;
	du_server_start(&a, "127.0.0.2", port);
	du_server_start(&b, "127.0.0.3", port);
	IOK_OK(iok_req0_open(&req));
	snprintf(url, sizeof(url), "tcp://127.0.0.2:%d,127.0.0.3:%d", port, port);
	IOK_OK(iok_dialer_create(&d, req, url));
	IOK_OK(iok_dialer_set_int(d, IOK_OPT_POOL_SIZE, 2));
	IOK_OK(iok_dialer_start(d, 0));
	/* Connected before any request is sent. */
	assert_true(du_wait_pipes(&a, 2, &b, 2));
	char *u = upstreams(d);
	assert_non_null(strstr(u, "pipes=2"));
	assert_non_null(strstr(u, "127.0.0.2:"));
	assert_non_null(strstr(u, "127.0.0.3:"));
	free(u);
	char *got = NULL;
	IOK_OK(iok_dialer_get_string(d, IOK_OPT_URL, &got));
	assert_string_equal(got, url);
	free(got);
	du_client_run(&c, req, "127.0.0.2", "127.0.0.3");
	assert_true(du_wait_answers(&c, 0, 20));
	assert_true(du_wait_answers(&c, 1, 20));
	du_client_stop(&c);
	assert_int_equal(atomic_load(&c.failed), 0);
	IOK_OK(iok_close(req));
	du_server_stop(&a);
	du_server_stop(&b);
}

/* Connections move from one address to another while requests flow;
 * none fails (req resends a request whose connection went away). */
static void
move_while_flowing(
    const char *what, iok_socket req, du_server *a, du_server *b, void (*change)(void *), void *arg)
{
	du_client c;
	du_client_run(&c, req, a->name, b->name);
	assert_true(du_wait_answers(&c, 0, 20));
	uint64_t t0 = tu_now_ms();
	change(arg);
	assert_true(du_wait_answers(&c, 1, 1));
	uint64_t t1 = tu_now_ms();
	assert_true(du_wait_pipes(a, 0, b, 1));
	assert_true(du_wait_answers(&c, 1, 20));
	du_client_stop(&c);
	assert_int_equal(atomic_load(&c.failed), 0);
	/* A figure for the notes, not a check: the change to the first
	 * request served by the new peer. */
	print_message(
	    "%s: first answer from the new peer %llu ms after the change, 0 requests failed\n",
	    what, (unsigned long long) (t1 - t0));
}

struct file_change {
	const char *path;
	const char *text;
};

static void
rewrite_file(void *arg)
{
	struct file_change *fc = arg;
	du_write_file(fc->path, fc->text);
}

static void
test_watched_file(void **state)
{
	du_server  a, b;
	iok_socket req;
	iok_dialer d;
	char       dir[400], path[500], url[600], text[128];
	int        port = tu_free_port();
	(void) state;
	du_tmpdir(dir, sizeof(dir), "peers");
	snprintf(path, sizeof(path), "%s/peers", dir);
	snprintf(text, sizeof(text), "# the rep servers\n127.0.0.2:%d\n", port);
	du_write_file(path, text);
	du_server_start(&a, "127.0.0.2", port);
	du_server_start(&b, "127.0.0.3", port);
	IOK_OK(iok_req0_open(&req));
	snprintf(url, sizeof(url), "tcp+file://%s", path);
	IOK_OK(iok_dial(req, url, &d, 0));
	assert_true(du_wait_pipes(&a, 1, &b, 0));

	snprintf(text, sizeof(text), "127.0.0.3:%d 5\n", port);
	struct file_change fc = { path, text };
	move_while_flowing("file edit", req, &a, &b, rewrite_file, &fc);
	char *u = upstreams(d);
	assert_non_null(strstr(u, "weight=5"));
	assert_null(strstr(u, "127.0.0.2"));
	free(u);

	/* A malformed edit is ignored whole; the next good one applies. */
	du_write_file(path, "127.0.0.2:1 2 3\n");
	snprintf(text, sizeof(text), "127.0.0.2:%d\n127.0.0.3:%d\n", port, port);
	du_write_file(path, text);
	assert_true(du_wait_pipes(&a, 1, &b, 1));
	IOK_OK(iok_close(req));
	du_server_stop(&a);
	du_server_stop(&b);
	unlink(path);
	rmdir(dir);
}

static void
hosts_move(void *arg)
{
	du_write_file(dns_hosts, arg);
	assert_int_equal(kill(dns_pid, SIGHUP), 0); /* dnsmasq re-reads it */
}

/* A name in DNS (dnsmasq, TTL 1 s, found through IOK_DNS_SERVERS): the
 * record changes, connections follow within the TTL. */
static void
test_dns_a_moves(void **state)
{
	du_server  a, b;
	iok_socket req;
	iok_dialer d;
	char       url[128];
	int        port = tu_free_port();
	(void) state;
	if (dns_pid <= 0) {
		skip();
	}
	du_write_file(
	    dns_hosts, "127.0.0.2 svc.iok.test\n127.0.0.2 a.iok.test\n127.0.0.3 b.iok.test\n");
	assert_int_equal(kill(dns_pid, SIGHUP), 0);
	du_server_start(&a, "127.0.0.2", port);
	du_server_start(&b, "127.0.0.3", port);
	IOK_OK(iok_req0_open(&req));
	snprintf(url, sizeof(url), "tcp://svc.iok.test:%d", port);
	IOK_OK(iok_dial(req, url, &d, 0));
	assert_true(du_wait_pipes(&a, 1, &b, 0));
	move_while_flowing("A record (TTL 1 s)", req, &a, &b, hosts_move,
	    "127.0.0.3 svc.iok.test\n127.0.0.2 a.iok.test\n127.0.0.3 b.iok.test\n");
	/* Two addresses for the name: both connected. */
	hosts_move("127.0.0.3 svc.iok.test\n127.0.0.2 svc.iok.test\n");
	assert_true(du_wait_pipes(&a, 1, &b, 1));
	IOK_OK(iok_close(req));
	du_server_stop(&a);
	du_server_stop(&b);
	/* A name that does not exist fails a synchronous dial. */
	IOK_OK(iok_req0_open(&req));
	assert_int_not_equal(iok_dial(req, "tcp://nothere.iok.test:5", NULL, 0), 0);
	IOK_OK(iok_close(req));
}

struct srv_change {
	pid_t      *pid;
	int         port;
	const char *hosts;
	const char *srv;
	const char *log;
};

static void
srv_restart(void *arg)
{
	struct srv_change *sc    = arg;
	const char        *srv[] = { sc->srv, NULL };
	du_dnsmasq_stop(*sc->pid);
	*sc->pid = du_dnsmasq_start(sc->port, sc->hosts, srv, sc->log);
	assert_true(*sc->pid > 0);
}

/* SRV records through a per-dialer server (dns:servers): the record's
 * target changes (dnsmasq restarted with another --srv-host). */
static void
test_dns_srv_moves(void **state)
{
	du_server  a, b;
	iok_socket req;
	iok_dialer d;
	char       srv0[128], srv1[128], servers[64], log[600];
	int        port = tu_free_port(), sport = tu_free_server_port();
	pid_t      pid;
	(void) state;
	if (!du_dnsmasq_available()) {
		skip();
	}
	du_write_file(dns_hosts, "127.0.0.2 a.iok.test\n127.0.0.3 b.iok.test\n");
	snprintf(srv0, sizeof(srv0), "_rep._tcp.iok.test,a.iok.test,%d,0,3", port);
	snprintf(srv1, sizeof(srv1), "_rep._tcp.iok.test,b.iok.test,%d,0,4", port);
	snprintf(log, sizeof(log), "%s/srv.log", dns_dir);
	const char *srv[] = { srv0, NULL };
	assert_true((pid = du_dnsmasq_start(sport, dns_hosts, srv, log)) > 0);
	du_server_start(&a, "127.0.0.2", port);
	du_server_start(&b, "127.0.0.3", port);
	IOK_OK(iok_req0_open(&req));
	IOK_OK(iok_dialer_create(&d, req, "tcp+srv://_rep._tcp.iok.test"));
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", sport);
	IOK_OK(iok_dialer_set_string(d, IOK_OPT_DNS_SERVERS, servers));
	IOK_OK(iok_dialer_start(d, 0));
	assert_true(du_wait_pipes(&a, 1, &b, 0));
	char *u = upstreams(d);
	assert_non_null(strstr(u, "weight=3"));
	free(u);
	struct srv_change sc = { &pid, sport, dns_hosts, srv1, log };
	move_while_flowing("SRV record (TTL 1 s, server restarted)", req, &a, &b, srv_restart, &sc);
	u = upstreams(d);
	assert_non_null(strstr(u, "weight=4"));
	free(u);
	IOK_OK(iok_close(req));
	du_server_stop(&a);
	du_server_stop(&b);
	du_dnsmasq_stop(pid);
}

int
main(void)
{
	/* One dnsmasq for the process, found through IOK_DNS_SERVERS (read
	 * when the first look-up through the default servers happens). */
	if (du_dnsmasq_available()) {
		char env[64];
		du_tmpdir(dns_dir, sizeof(dns_dir), "dns");
		snprintf(dns_hosts, sizeof(dns_hosts), "%s/hosts", dns_dir);
		snprintf(dns_log, sizeof(dns_log), "%s/dnsmasq.log", dns_dir);
		du_write_file(dns_hosts, "127.0.0.2 svc.iok.test\n");
		dns_port = tu_free_server_port();
		dns_pid  = du_dnsmasq_start(dns_port, dns_hosts, NULL, dns_log);
		snprintf(env, sizeof(env), "127.0.0.1:%d", dns_port);
		setenv("IOK_DNS_SERVERS", env, 1);
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_hostport),
		cmocka_unit_test(test_parse_list),
		cmocka_unit_test(test_parse_lines),
		cmocka_unit_test(test_split_url),
		cmocka_unit_test(test_dns_min_ttl),
		cmocka_unit_test(test_bad_targets),
		cmocka_unit_test(test_static_list),
		cmocka_unit_test(test_watched_file),
		cmocka_unit_test(test_dns_a_moves),
		cmocka_unit_test(test_dns_srv_moves),
	};
	int rv = cmocka_run_group_tests(tests, NULL, NULL);
	iok_fini();
	du_dnsmasq_stop(dns_pid);
	if (dns_dir[0] != '\0') {
		char cmd[500];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dns_dir);
		if (system(cmd) != 0) {
			/* left behind in the test's temp directory */
		}
	}
	return rv;
}
