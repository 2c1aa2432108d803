/*
 * test_discovery_plugin.c - a discovery backend written outside the
 * library, against include/iok.h only: registered with
 * iok_discovery_register, it reports addresses from a table this test
 * edits, and dialers using "tcp+mem://" follow the edits.
 */
#include <poll.h>

#include "discutil.h"

/* The table the backend reports from: the test thread writes it, the
 * backend reads it on the kernel thread. */
static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;
static char            table_host[64];
static int             table_port;
static atomic_int      starts, stops;

typedef struct mem_state {
	iok_discovery_watch *w;
	char                 target[64];
} mem_state;

static void
report(mem_state *st)
{
	iok_discovery_addr a = { 0 };
	char               host[64];
	pthread_mutex_lock(&table_mu);
	snprintf(host, sizeof(host), "%s", table_host);
	a.port = (uint16_t) table_port;
	pthread_mutex_unlock(&table_mu);
	a.host   = host;
	a.weight = 2;
	/* Polled: look again every 20 ms (a real backend would watch). */
	(void) iok_discovery_update(st->w, &a, host[0] != '\0' ? 1 : 0, 20);
}

static int
mem_start(iok_discovery_watch *w, const char *target, void **state)
{
	mem_state *st;
	if (strcmp(target, "bad") == 0) {
		return IOK_EADDRINVAL;
	}
	assert_non_null(iok_discovery_loop()); /* we are on the kernel thread */
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		return IOK_ENOMEM;
	}
	st->w = w;
	snprintf(st->target, sizeof(st->target), "%s", target);
	*state = st;
	atomic_fetch_add(&starts, 1);
	report(st);
	return 0;
}

static void
mem_refresh(void *state)
{
	report(state);
}

static void
mem_stop(void *state)
{
	atomic_fetch_add(&stops, 1);
	free(state);
}

static const iok_discovery_backend mem_backend = {
	.name    = "mem",
	.start   = mem_start,
	.refresh = mem_refresh,
	.stop    = mem_stop,
};

static void
set_table(const char *host, int port)
{
	pthread_mutex_lock(&table_mu);
	snprintf(table_host, sizeof(table_host), "%s", host);
	table_port = port;
	pthread_mutex_unlock(&table_mu);
}

static void
test_register(void **state)
{
	iok_socket s;
	(void) state;
	IOK_OK(iok_req0_open(&s));
	assert_int_equal(
	    iok_dial(s, "tcp+mem://x", NULL, IOK_FLAG_NONBLOCK), IOK_ENOTSUP); /* not yet */
	IOK_OK(iok_discovery_register(&mem_backend));
	assert_int_equal(iok_discovery_register(&mem_backend), IOK_EEXIST);
	iok_discovery_backend bad = mem_backend;
	bad.name                  = "Bad_Name";
	assert_int_equal(iok_discovery_register(&bad), IOK_EINVAL);
	bad.name = "srv"; /* built in */
	assert_int_equal(iok_discovery_register(&bad), IOK_EEXIST);
	bad.name  = "nostart";
	bad.start = NULL;
	assert_int_equal(iok_discovery_register(&bad), IOK_EINVAL);
	assert_null(iok_discovery_loop()); /* not the kernel thread */
	/* The backend's start error is the synchronous dial's. */
	assert_int_equal(iok_dial(s, "tcp+mem://bad", NULL, 0), IOK_EADDRINVAL);
	IOK_OK(iok_close(s));
}

static int
stopped_cond(void *arg)
{
	return atomic_load(&stops) == *(int *) arg;
}

static void
set_move(void *arg)
{
	set_table("127.0.0.3", *(int *) arg);
}

static void
test_follow(void **state)
{
	du_server  a, b;
	du_client  c;
	iok_socket req;
	iok_dialer d;
	int        port = tu_free_port();
	(void) state;
	du_server_start(&a, "127.0.0.2", port);
	du_server_start(&b, "127.0.0.3", port);
	set_table("127.0.0.2", port);
	IOK_OK(iok_req0_open(&req));
	IOK_OK(iok_dial(req, "tcp+mem://anything", &d, 0));
	assert_true(du_wait_pipes(&a, 1, &b, 0));
	du_client_run(&c, req, a.name, b.name);
	assert_true(du_wait_answers(&c, 0, 20));
	set_move(&port);
	assert_true(du_wait_pipes(&a, 0, &b, 1));
	assert_true(du_wait_answers(&c, 1, 20));
	du_client_stop(&c);
	assert_int_equal(atomic_load(&c.failed), 0);
	char *u = NULL;
	IOK_OK(iok_dialer_get_string(d, IOK_OPT_UPSTREAMS, &u));
	assert_non_null(strstr(u, "127.0.0.3"));
	assert_non_null(strstr(u, "weight=2"));
	free(u);
	/* Closing the dialer stops the watch. */
	int want = atomic_load(&starts);
	IOK_OK(iok_dialer_close(d));
	assert_true(tu_wait_for(stopped_cond, &want, DU_MS));
	IOK_OK(iok_close(req));
	du_server_stop(&a);
	du_server_stop(&b);
}

static int
readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

static int
peers_live(iok_socket s)
{
	int n = -1;
	IOK_OK(iok_socket_get_int(s, IOK_OPT_PEERS_LIVE, &n));
	return n;
}

/* Health the application sees before it sends anything: peers-live and
 * its descriptor, following the backend's set to zero and back. */
static void
test_health(void **state)
{
	du_server  a;
	iok_socket req;
	int        fd, port = tu_free_port();
	(void) state;
	du_server_start(&a, "127.0.0.2", port);
	set_table("", 0); /* nothing there yet */
	IOK_OK(iok_req0_open(&req));
	IOK_OK(iok_socket_get_int(req, IOK_OPT_PEERS_FD, &fd));
	assert_int_equal(iok_socket_set_int(req, IOK_OPT_PEERS_LIVE, 1), IOK_EREADONLY);
	IOK_OK(iok_dial(req, "tcp+mem://svc", NULL, IOK_FLAG_NONBLOCK));
	assert_int_equal(peers_live(req), 0);
	assert_false(readable(fd, 0));

	set_table("127.0.0.2", port); /* the service appears: connected at once */
	assert_true(readable(fd, DU_MS));
	assert_int_equal(peers_live(req), 1);
	assert_false(readable(fd, 0)); /* reading the count re-arms it */

	set_table("", 0); /* gone: back to zero */
	assert_true(readable(fd, DU_MS));
	assert_int_equal(peers_live(req), 0);

	set_table("127.0.0.2", port);
	assert_true(readable(fd, DU_MS));
	assert_int_equal(peers_live(req), 1);
	/* No request was ever sent: the connection came from the name. */
	assert_int_equal(tu_stat(req, "stat:tx-msgs"), 0);
	IOK_OK(iok_close(req));
	du_server_stop(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register),
		cmocka_unit_test(test_follow),
		cmocka_unit_test(test_health),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
