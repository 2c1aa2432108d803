/* test_url.c - URL parsing. */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "url.h"

static void
check(const char *s, const char *scheme, const char *user, const char *pass, const char *host,
    int port, const char *path, const char *query)
{
	ik_url u;
	int    rv = ik_url_parse(&u, s);
	if (rv != 0) {
		fail_msg("%s: %s", s, iok_strerror(rv));
	}
	assert_string_equal(u.scheme, scheme);
#define OPT(field, want)                              \
	if ((want) == NULL) {                         \
		assert_null(u.field);                 \
	} else {                                      \
		assert_non_null(u.field);             \
		assert_string_equal(u.field, (want)); \
	}
	OPT(user, user)
	OPT(password, pass)
	OPT(host, host)
	OPT(path, path)
	OPT(query, query)
	assert_int_equal(u.has_port ? u.port : -1, port);
	ik_url_free(&u);
}

static void
test_good(void **state)
{
	(void) state;
	check("tcp://127.0.0.1:5555", "tcp", NULL, NULL, "127.0.0.1", 5555, NULL, NULL);
	check("TCP://example.com:1", "tcp", NULL, NULL, "example.com", 1, NULL, NULL);
	check("tcp://[::1]:80", "tcp", NULL, NULL, "::1", 80, NULL, NULL);
	check("tcp6://[fe80::1]:0", "tcp6", NULL, NULL, "fe80::1", 0, NULL, NULL);
	check("tcp://*:7", "tcp", NULL, NULL, "", 7, NULL, NULL);
	check("tcp://:7", "tcp", NULL, NULL, "", 7, NULL, NULL);
	check("ipc:///tmp/x.sock", "ipc", NULL, NULL, NULL, -1, "/tmp/x.sock", NULL);
	check("ipc://rel/x", "ipc", NULL, NULL, NULL, -1, "rel/x", NULL);
	check("inproc://a:b@c", "inproc", NULL, NULL, NULL, -1, "a:b@c", NULL);
	check("redis://h", "redis", NULL, NULL, "h", -1, NULL, NULL);
	check("redis://:secret@h:6380/3", "redis", "", "secret", "h", 6380, "/3", NULL);
	check("redis://u:p%40ss%3A@h/0?name=x&db=2", "redis", "u", "p@ss:", "h", -1, "/0",
	    "name=x&db=2");
	check("redis+unix:///run/r.sock?db=1", "redis+unix", NULL, NULL, NULL, -1, "/run/r.sock",
	    "db=1");
}

static void
test_bad(void **state)
{
	(void) state;
	const char *bad[] = {
		"",
		"tcp",
		"tcp:/x",
		"://x",
		"tcp://h:99999",
		"tcp://h:x",
		"tcp://h:",
		"tcp://[::1",
		"tcp://[::1]x",
		"tcp://::1:80",
		"tcp://h o:1",
		"ipc://",
		"inproc://",
		"tc p://h:1",
		"redis://u:%zz@h",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ik_url u;
		int    rv = ik_url_parse(&u, bad[i]);
		if (rv != IOK_EADDRINVAL) {
			fail_msg("'%s' parsed (rv %d)", bad[i], rv);
		}
	}
	ik_url u;
	assert_int_equal(ik_url_parse(&u, NULL), IOK_EADDRINVAL);
}

static void
test_query(void **state)
{
	ik_url u;
	(void) state;
	assert_int_equal(ik_url_parse(&u, "redis://h/?db=12&name=a%20b&x"), 0);
	char *v = ik_url_query_get(&u, "db");
	assert_string_equal(v, "12");
	free(v);
	v = ik_url_query_get(&u, "name");
	assert_string_equal(v, "a b");
	free(v);
	assert_null(ik_url_query_get(&u, "x"));
	assert_null(ik_url_query_get(&u, "nope"));
	ik_url_free(&u);
}

/* postgresql:// as libpq reads it. */
static void
pg(const char *s, const char *scheme, const char *host, int port, const char *path, const char *db)
{
	ik_url u;
	int    rv = ik_url_parse(&u, s);
	if (rv != 0) {
		fail_msg("%s: %s", s, iok_strerror(rv));
	}
	assert_string_equal(u.scheme, scheme);
	if (host != NULL) {
		assert_string_equal(u.host, host);
	}
	assert_int_equal(u.has_port ? u.port : -1, port);
	if (path != NULL) {
		assert_string_equal(u.path, path);
	}
	if (db == NULL) {
		assert_null(u.database);
	} else {
		assert_string_equal(u.database, db);
	}
	ik_url_free(&u);
}

static void
test_postgres(void **state)
{
	(void) state;
	ik_url u;
	pg("postgresql://u:p@db.example:6543/app", "postgresql", "db.example", 6543, "/app", "app");
	pg("postgres://u@127.0.0.1/my%20db", "postgres", "127.0.0.1", -1, NULL, "my db");
	pg("postgresql://127.0.0.1", "postgresql", "127.0.0.1", -1, NULL, NULL);
	pg("postgresql://u@/app?host=/tmp/pg&port=5999", "postgresql+unix", NULL, 5999,
	    "/tmp/pg/.s.PGSQL.5999", "app");
	pg("postgresql://%2Fvar%2Frun%2Fpg/app", "postgresql+unix", NULL, -1,
	    "/var/run/pg/.s.PGSQL.5432", "app");
	pg("postgresql:///app", "postgresql+unix", NULL, -1, "/var/run/postgresql/.s.PGSQL.5432",
	    "app");
	pg("postgresql://h/app?host=other&port=7", "postgresql", "other", 7, NULL, "app");
	assert_int_equal(ik_url_parse(&u, "postgresql://h/app?port=x"), IOK_EADDRINVAL);
	assert_int_equal(ik_url_parse(&u, "postgresql://h/app?port=99999"), IOK_EADDRINVAL);
	assert_int_equal(ik_url_parse(&u, "postgresql://h/a%zz"), IOK_EADDRINVAL);
	/* the password, percent-decoded, never in the host */
	assert_int_equal(ik_url_parse(&u, "postgresql://u:p%40ss@h/d"), 0);
	assert_string_equal(u.password, "p@ss");
	assert_string_equal(u.host, "h");
	ik_url_free(&u);
}

/* libpq's ?host=h1,h2&port=p1,p2: the URL's host is the first, and the
 * dialer's list pairs hosts and ports. */
static void
pg_list(const char *s, const char *want)
{
	ik_url u;
	char  *list = NULL;
	IOK_OK(ik_url_parse(&u, s));
	IOK_OK(ik_url_pg_hosts(&u, &list));
	if (want == NULL) {
		assert_null(list);
	} else {
		assert_non_null(list);
		assert_string_equal(list, want);
	}
	free(list);
	ik_url_free(&u);
}

static void
test_postgres_host_lists(void **state)
{
	(void) state;
	ik_url u;
	char  *list;
	pg("postgresql://u@/app?host=h1,h2&port=5433,5434", "postgresql", "h1", 5433, NULL, "app");
	pg_list("postgresql://u@/app?host=h1,h2&port=5433,5434", "h1:5433,h2:5434");
	pg_list("postgresql://u@/app?host=h1,h2,h3&port=7", "h1:7,h2:7,h3:7");
	pg_list("postgresql://u@/app?host=h1,10.0.0.2", "h1,10.0.0.2");
	pg_list("postgresql://u@/app?host=::1,h2&port=1,2", "[::1]:1,h2:2");
	pg_list("postgresql://u@other/app?host=h", "h");
	pg_list("postgresql://u@h1,h2/app", NULL);         /* the authority's list */
	pg_list("postgresql://u@/app?host=/tmp/pg", NULL); /* a socket directory */
	/* hostile: counts that do not pair, empty entries, bad ports, a list
	 * of socket directories */
	static const char *const bad_parse[] = {
		"postgresql://u@/app?host=h1,h2&port=1,x",
		"postgresql://u@/app?host=h1,h2&port=1,",
		"postgresql://u@/app?host=h1,h2&port=1,99999",
		"postgresql://u@/app?host=/a,/b",
		"postgresql://u@/app?host=,h2",
	};
	for (size_t i = 0; i < sizeof(bad_parse) / sizeof(bad_parse[0]); i++) {
		if (ik_url_parse(&u, bad_parse[i]) == 0) {
			fail_msg("accepted %s", bad_parse[i]);
		}
	}
	static const char *const bad_list[] = {
		"postgresql://u@/app?host=h1,h2,h3&port=1,2",
		"postgresql://u@/app?host=h1,,h3",
		"postgresql://u@/app?host=h1,/tmp",
	};
	for (size_t i = 0; i < sizeof(bad_list) / sizeof(bad_list[0]); i++) {
		IOK_OK(ik_url_parse(&u, bad_list[i]));
		assert_int_equal(ik_url_pg_hosts(&u, &list), IOK_EADDRINVAL);
		ik_url_free(&u);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_query),
		cmocka_unit_test(test_postgres),
		cmocka_unit_test(test_postgres_host_lists),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
