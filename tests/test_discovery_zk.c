/*
 * test_discovery_zk.c - the ZooKeeper discovery backend against a real
 * server: ctest runs this program under tests/zkserver.py (one standalone
 * ZooKeeper for the whole program, IOK_ZK_PORT), which the restart test
 * restarts once.  Rep servers on 127.0.0.2 and 127.0.0.3 answer with
 * their names, a req client keeps requests flowing, and the children of a
 * znode say where they go:
 *   - children added and removed while requests flow: connections move,
 *     no request fails (req resends what a closed connection held);
 *   - hostile child names (garbage, oversize, bad port or weight) are
 *     ignored and counted (IOK_OPT_DISC_REJECTED), the good one is used;
 *   - the server restarted with an empty data directory: it refuses the
 *     old session (the client has seen a newer transaction than it has),
 *     forever, without saying "expired"; the last set is kept meanwhile,
 *     and once away for longer than the session the backend makes a new
 *     session (the path an expired session takes) and follows the
 *     recreated children;
 *   - malformed targets and child names (the pure parser).
 */
#include <stdarg.h>

#include "discutil.h"

#include "discovery/discovery.h"

static int zk_port; /* 0: no server (not installed, or not run by zkserver.py) */

static void
test_parse_child(void **state)
{
	char     host[IK_DISC_HOST_MAX], big[2000];
	uint16_t port, w;
	(void) state;
	struct {
		const char *in, *host;
		int         port, w;
	} good[] = {
		{ "127.0.0.2:5555", "127.0.0.2", 5555, 1 },
		{ "db1.example:6379:3", "db1.example", 6379, 3 },
		{ "[::1]:80", "::1", 80, 1 },
		{ "[fe80::1]:80:65535", "fe80::1", 80, 65535 },
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(
		    ik_disc_parse_zk_child(good[i].in, strlen(good[i].in), host, &port, &w), 0);
		assert_string_equal(host, good[i].host);
		assert_int_equal(port, good[i].port);
		assert_int_equal(w, good[i].w);
	}
	const char *bad[] = { "", "garbage", "member_0000000001", "h:", "h:0", "h:65536", "h:99999",
		"h:12x", "h:1:", "h:1:0", "h:1:70000", "h:1:w", "h:1:2:3", ":5", "[::1]",
		"[::1]:", "[::1]:5:", "[::1:5", "h h:5", "h\n:5", "h,i:5", "h@i:5", "h#:5" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (ik_disc_parse_zk_child(bad[i], strlen(bad[i]), host, &port, &w) !=
		    IOK_EADDRINVAL) {
			fail_msg("accepted \"%s\"", bad[i]);
		}
	}
	/* Oversized: a host longer than any name, with and without a port. */
	memset(big, 'a', sizeof(big));
	memcpy(big + sizeof(big) - 6, ":5555", 6);
	assert_int_equal(ik_disc_parse_zk_child(big, strlen(big), host, &port, &w), IOK_EADDRINVAL);
	assert_int_equal(ik_disc_parse_zk_child(big + sizeof(big) - 6 - IK_DISC_HOST_MAX,
	                     IK_DISC_HOST_MAX + 5, host, &port, &w),
	    IOK_EADDRINVAL);
	/* Truncated: every prefix of a good name is refused or parsed whole. */
	const char *s = "127.0.0.2:5555:7";
	for (size_t n = 0; n < strlen(s); n++) {
		if (ik_disc_parse_zk_child(s, n, host, &port, &w) == 0) {
			assert_true(port != 0 && strcmp(host, "127.0.0.2") == 0);
		}
	}
}

static void
test_bad_targets(void **state)
{
	iok_socket req;
	(void) state;
	IOK_OK(iok_req0_open(&req));
#ifdef IOK_HAVE_ZOOKEEPER
	/* No path, a name for a server (the client would block resolving it),
	 * a bracketed server, no port, a trailing slash. */
	const char *bad[] = { "tcp+zk://127.0.0.1:2181", "tcp+zk://localhost:2181/a",
		"tcp+zk://[::1]:2181/a", "tcp+zk://127.0.0.1/a", "tcp+zk://127.0.0.1:2181/a/",
		"tcp+zk://127.0.0.1:2181//a", "tcp+zk:///a" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rv = iok_dial(req, bad[i], NULL, 0);
		if (rv != IOK_EADDRINVAL) {
			fail_msg("%s: %d", bad[i], rv);
		}
	}
#else
	assert_int_equal(iok_dial(req, "tcp+zk://127.0.0.1:2181/a", NULL, IOK_FLAG_NONBLOCK),
	    IOK_ENOENT); /* not built: an unknown backend */
#endif
	IOK_OK(iok_close(req));
}

#ifdef IOK_HAVE_ZOOKEEPER

static char child_a[64], child_b[64];

/* Znodes are changed by another process (zkserver.py ops, through kazoo):
 * Debian's single-threaded C client keeps static buffers, and iok's
 * kernel thread is running it in this one.  ops: "create" or "delete" and
 * a path, in pairs, NULL-terminated. */
static void
zk_ops(const char *op, ...)
{
	const char *helper = getenv("IOK_ZK_HELPER");
	size_t      cap    = 8192, len;
	char       *cmd    = malloc(cap);
	va_list     ap;
	assert_non_null(helper);
	assert_non_null(cmd);
	len =
	    (size_t) snprintf(cmd, cap, "/usr/bin/python3 '%s' ops 127.0.0.1:%d", helper, zk_port);
	va_start(ap, op);
	for (const char *o = op; o != NULL; o = va_arg(ap, const char *)) {
		const char *path = va_arg(ap, const char *);
		len += (size_t) snprintf(cmd + len, cap - len, " %s '%s'", o, path);
		assert_true(len < cap);
	}
	va_end(ap);
	assert_int_equal(system(cmd), 0);
	free(cmd);
}

/* base/child, in buf. */
static const char *
zk_path(char *buf, size_t cap, const char *base, const char *child)
{
	snprintf(buf, cap, "%s/%s", base, child);
	return buf;
}

static void
zk_url(char *url, size_t cap, const char *path)
{
	snprintf(url, cap, "tcp+zk://127.0.0.1:%d%s", zk_port, path);
}

/* The two children set up, as "host:port". */
static void
children_for(int port)
{
	snprintf(child_a, sizeof(child_a), "127.0.0.2:%d", port);
	snprintf(child_b, sizeof(child_b), "127.0.0.3:%d:5", port);
}

static void
test_children_move(void **state)
{
	du_server  a, b;
	du_client  c;
	iok_socket req;
	iok_dialer d;
	char       url[128];
	char       pa[128], pb[128];
	int        port = tu_free_port();
	(void) state;
	if (zk_port == 0) {
		skip();
	}
	children_for(port);
	zk_ops("create", "/iok", "create", "/iok/move", "create",
	    zk_path(pa, sizeof(pa), "/iok/move", child_a), NULL);
	zk_path(pb, sizeof(pb), "/iok/move", child_b);
	du_server_start(&a, "127.0.0.2", port);
	du_server_start(&b, "127.0.0.3", port);
	IOK_OK(iok_req0_open(&req));
	zk_url(url, sizeof(url), "/iok/move");
	IOK_OK(iok_dial(req, url, &d, 0));
	assert_true(du_wait_pipes(&a, 1, &b, 0)); /* connected before use */

	du_client_run(&c, req, a.name, b.name);
	assert_true(du_wait_answers(&c, 0, 20));
	/* A child added: both serve. */
	uint64_t t0 = tu_now_ms();
	zk_ops("create", pb, NULL);
	assert_true(du_wait_answers(&c, 1, 1));
	uint64_t t1 = tu_now_ms();
	assert_true(du_wait_pipes(&a, 1, &b, 1));
	char *u = NULL;
	IOK_OK(iok_dialer_get_string(d, IOK_OPT_UPSTREAMS, &u));
	assert_non_null(strstr(u, "weight=5")); /* the third field */
	free(u);
	/* The first child removed: its connection closes, b serves alone. */
	zk_ops("delete", pa, NULL);
	assert_true(du_wait_pipes(&a, 0, &b, 1));
	assert_true(du_wait_answers(&c, 1, 20));
	int a_after = atomic_load(&c.answered[0]);
	assert_true(du_wait_answers(&c, 1, 20));
	assert_int_equal(atomic_load(&c.answered[0]), a_after);
	du_client_stop(&c);
	assert_int_equal(atomic_load(&c.failed), 0);
	print_message("zk child added: first answer from the new peer %llu ms after the "
	              "change, 0 requests failed\n",
	    (unsigned long long) (t1 - t0));

	int rej = -1;
	IOK_OK(iok_dialer_get_int(d, IOK_OPT_DISC_REJECTED, &rej));
	assert_int_equal(rej, 0);
	IOK_OK(iok_close(req));
	du_server_stop(&a);
	du_server_stop(&b);
}

static void
test_hostile_children(void **state)
{
	du_server  a;
	du_client  c;
	iok_socket req;
	iok_dialer d;
	char       url[128], big[901], p[16][1024];
	int        port = tu_free_port(), rej = 0;
	(void) state;
	if (zk_port == 0) {
		skip();
	}
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big + sizeof(big) - 6, ":5555", 5);
	const char *hostile[] = { "garbage", big, "127.0.0.2:0", "127.0.0.2:99999",
		"127.0.0.2:80:0", "127.0.0.2:80:heavy", "member_0000000007", "[::1" };
	int         nh        = (int) (sizeof(hostile) / sizeof(hostile[0]));
	children_for(port);
	for (int i = 0; i < nh; i++) {
		zk_path(p[i], sizeof(p[i]), "/iok/hostile", hostile[i]);
	}
	zk_path(p[nh], sizeof(p[nh]), "/iok/hostile", child_a);
	zk_ops("create", "/iok", "create", "/iok/hostile", "create", p[0], "create", p[1], "create",
	    p[2], "create", p[3], "create", p[4], "create", p[5], "create", p[6], "create", p[7],
	    "create", p[8], NULL);
	du_server_start(&a, "127.0.0.2", port);
	IOK_OK(iok_req0_open(&req));
	zk_url(url, sizeof(url), "/iok/hostile");
	IOK_OK(iok_dial(req, url, &d, 0));
	assert_true(du_wait_pipes(&a, 1, NULL, 0));
	du_client_run(&c, req, a.name, NULL);
	assert_true(du_wait_answers(&c, 0, 20));
	du_client_stop(&c);
	assert_int_equal(atomic_load(&c.failed), 0);
	IOK_OK(iok_dialer_get_int(d, IOK_OPT_DISC_REJECTED, &rej));
	assert_true(rej >= nh); /* each counted (again on every re-read) */
	char *u = NULL;
	IOK_OK(iok_dialer_get_string(d, IOK_OPT_UPSTREAMS, &u));
	assert_int_equal(strchr(u, '\n') - u + 1, (long) strlen(u)); /* one upstream */
	free(u);
	IOK_OK(iok_close(req));
	du_server_stop(&a);
}

static void
test_restart_expired_session(void **state)
{
	du_server   a, b;
	du_client   c;
	iok_socket  req;
	iok_dialer  d;
	char        url[128], cmd[1200], pa[128], pb[128];
	int         port   = tu_free_port();
	const char *helper = getenv("IOK_ZK_HELPER"), *dir = getenv("IOK_ZK_DIR");
	(void) state;
	if (zk_port == 0 || helper == NULL || dir == NULL) {
		skip();
	}
	children_for(port);
	zk_ops("create", "/iok", "create", "/iok/restart", "create",
	    zk_path(pa, sizeof(pa), "/iok/restart", child_a), NULL);
	du_server_start(&a, "127.0.0.2", port);
	du_server_start(&b, "127.0.0.3", port);
	IOK_OK(iok_req0_open(&req));
	zk_url(url, sizeof(url), "/iok/restart");
	IOK_OK(iok_dial(req, url, &d, 0));
	assert_true(du_wait_pipes(&a, 1, &b, 0));
	du_client_run(&c, req, a.name, b.name);
	assert_true(du_wait_answers(&c, 0, 20));

	/* Down, then up with nothing: the old session is refused there. */
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 '%s' restart '%s' fresh", helper, dir);
	assert_int_equal(system(cmd), 0);
	/* Meanwhile and since, the last set is kept: a still serves. */
	assert_true(du_wait_answers(&c, 0, 20));
	assert_int_equal(du_pipes(&a), 1);

	/* The service registers again, elsewhere: followed on the new
	 * session (through the znode's creation or the retry). */
	zk_ops("create", "/iok", "create", "/iok/restart", "create",
	    zk_path(pb, sizeof(pb), "/iok/restart", child_b), NULL);
	assert_true(du_wait_answers(&c, 1, 1));
	assert_true(du_wait_pipes(&a, 0, &b, 1));
	assert_true(du_wait_answers(&c, 1, 20));
	du_client_stop(&c);
	assert_int_equal(atomic_load(&c.failed), 0);
	IOK_OK(iok_close(req));
	du_server_stop(&a);
	du_server_stop(&b);
}

#endif /* IOK_HAVE_ZOOKEEPER */

int
main(void)
{
	const char *p                   = getenv("IOK_ZK_PORT");
	zk_port                         = p != NULL ? atoi(p) : 0;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_child), cmocka_unit_test(test_bad_targets),
#ifdef IOK_HAVE_ZOOKEEPER
		cmocka_unit_test(test_children_move), cmocka_unit_test(test_hostile_children),
		cmocka_unit_test(test_restart_expired_session), /* last: restarts the server */
#endif
	};
	int rv = cmocka_run_group_tests(tests, NULL, NULL);
	iok_fini();
	return rv;
}
