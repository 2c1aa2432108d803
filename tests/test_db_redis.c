/*
 * test_db_redis.c - the pipelined-db pattern, and sub sockets sharing its
 * connection, against a real redis-server that each test starts on a free
 * port (tests/redisutil.h) - plus a fake server that speaks bad RESP.
 *
 * Covered: thousands of concurrent requests from several threads over ONE
 * connection (CLIENT LIST asked through the same socket), every reply
 * matched to its request by value; pool-size 3 (three connections, load
 * spread); the plain API and requests the transport refuses; pub/sub on a
 * sub socket sharing the connection while commands flow; the server
 * killed mid-flight (every request resolves with a reply, ECONNRESET or
 * ETIMEDOUT), restarted on the same port (reconnect, resubscribe, go on);
 * idempotent retry; malformed RESP from a fake server (proto error,
 * connection dropped, recovery on a good server); AUTH; sessions
 * (MULTI/EXEC atomic under concurrent traffic, pool-size 1 blocking
 * others, a pinned connection dropping); cancel and timeouts in flight
 * keeping FIFO matching; pushes reaching a db socket with no sharer.
 *
 * No sleeps as synchronisation: tests wait on replies, completions and
 * statistics; the timeouts given only bound a failure.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "redisutil.h"

#define T_MS 30000 /* bounds a failure; success never waits for it */

/* A db socket connected to tu_srv (waits for the first connection). */
static iok_socket
open_db(const char *name, int pool, iok_dialer *dp)
{
	iok_socket s;
	char       url[256];
	IOK_OK(iok_socket_open(&s, "pipelined-db"));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECONNMINT, 20));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECONNMAXT, 200));
	if (pool > 1) {
		IOK_OK(iok_socket_set_int(s, IOK_OPT_POOL_SIZE, pool));
	}
	IOK_OK(iok_dial(s, tu_redis_url(&tu_srv, name, url, sizeof(url)), dp, 0));
	return s;
}

static uint64_t
sopt(iok_socket s, const char *name)
{
	return tu_stat(s, name);
}

struct stat_eq {
	iok_socket  s;
	const char *name;
	uint64_t    v;
};

static int
stat_is(void *arg)
{
	struct stat_eq *e = arg;
	return sopt(e->s, e->name) == e->v;
}

static void
wait_stat_eq(iok_socket s, const char *name, uint64_t v)
{
	struct stat_eq e = { s, name, v };
	if (!tu_wait_for(stat_is, &e, T_MS)) {
		fail_msg("%s stayed at %llu, wanted %llu", name, (unsigned long long) sopt(s, name),
		    (unsigned long long) v);
	}
}

/* CLIENT LIST asked through c: how many connections are called name, and
 * (if line != NULL) the last such line. */
static int
count_clients(tu_db *c, const char *name, char *line, size_t cap)
{
	char         pat[128];
	int          n  = 0;
	iok_msg     *r  = tu_db_call(c, tu_cmd("CLIENT", "LIST", NULL), 0, T_MS);
	ik_resp_item it = tu_top(r);
	assert_true(it.type == IK_RESP_BULK || it.type == IK_RESP_VERBATIM);
	char *text = strndup((const char *) it.str, it.len);
	snprintf(pat, sizeof(pat), " name=%s ", name);
	for (char *save = NULL, *l = strtok_r(text, "\n", &save); l != NULL;
	     l = strtok_r(NULL, "\n", &save)) {
		if (strstr(l, pat) != NULL) {
			n++;
			if (line != NULL) {
				snprintf(line, cap, "%s", l);
			}
		}
	}
	free(text);
	iok_msg_free(r);
	return n;
}

static void
expect_status(iok_msg *m, int status)
{
	if (iok_msg_status(m) != status) {
		fail_msg("status %d (%s), wanted %d (%s)", iok_msg_status(m),
		    iok_strerror(iok_msg_status(m)), status, iok_strerror(status));
	}
}

/* -------------------------------------------- many requests, one pipe */

#define NTHREADS 4
#define PER_THREAD 500 /* SET k v, GET k: 2 requests each -> 4000 in all */

struct worker {
	tu_db   *c;
	int      id;
	uint32_t pipes[2];
	int      npipes;
};

static void *
setget_worker(void *arg)
{
	struct worker *w    = arg;
	uint64_t      *toks = calloc(2 * PER_THREAD, sizeof(*toks));
	char           k[32], v[32], buf[64];
	/* Everything in flight at once, then every reply checked. */
	for (int i = 0; i < PER_THREAD; i++) {
		snprintf(k, sizeof(k), "k%d-%d", w->id, i);
		snprintf(v, sizeof(v), "v%d-%d", w->id, i);
		toks[2 * i]     = tu_db_send(w->c, tu_cmd("SET", k, v, NULL), 0, 0);
		toks[2 * i + 1] = tu_db_send(w->c, tu_cmd("GET", k, NULL), 0, 0);
	}
	for (int i = 0; i < PER_THREAD; i++) {
		iok_msg *a = tu_db_wait(w->c, toks[2 * i], T_MS, NULL);
		iok_msg *b = tu_db_wait(w->c, toks[2 * i + 1], T_MS, NULL);
		expect_status(a, 0);
		expect_status(b, 0);
		assert_string_equal(tu_str(a, buf, sizeof(buf)), "OK");
		snprintf(v, sizeof(v), "v%d-%d", w->id, i);
		assert_string_equal(tu_str(b, buf, sizeof(buf)), v);
		uint32_t p = iok_msg_get_pipe(b);
		int      j;
		for (j = 0; j < w->npipes && w->pipes[j] != p; j++) {
		}
		if (j == w->npipes && w->npipes < 2) {
			w->pipes[w->npipes++] = p;
		}
		iok_msg_free(a);
		iok_msg_free(b);
	}
	free(toks);
	return NULL;
}

static void
test_many_one_connection(void **state)
{
	(void) state;
	tu_db         c;
	pthread_t     th[NTHREADS];
	struct worker w[NTHREADS];
	iok_socket    s = open_db("many", 1, NULL);
	int           v;

	IOK_OK(iok_socket_get_int(s, IOK_OPT_DB_MAX_INFLIGHT, &v));
	assert_int_equal(v, 1024);
	tu_db_start(&c, s);
	for (int i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker) { .c = &c, .id = i };
		assert_int_equal(pthread_create(&th[i], NULL, setget_worker, &w[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].npipes, 1);
		assert_int_equal(w[i].pipes[0], w[0].pipes[0]);
	}
	assert_int_equal(count_clients(&c, "many", NULL, 0), 1);
	assert_int_equal(sopt(s, "stat:pipes"), 1);
	assert_int_equal(sopt(s, "stat:pipes-opened"), 1);
	assert_int_equal(sopt(s, "db:inflight"), 0);
	assert_int_equal(sopt(s, "db:queued"), 0);
	assert_int_equal(sopt(s, "stat:rx-dropped"), 0);
	assert_int_equal(tu_db_stop(&c), 0);
	assert_int_equal(c.dups, 0);
	IOK_OK(iok_close(s));
}

/* ------------------------------------------------------ pool-size 3 */

static void
test_pool_three(void **state)
{
	(void) state;
	tu_db      c;
	iok_socket s = open_db("pool3", 3, NULL);
	uint64_t   toks[600];
	uint32_t   seen[3] = { 0 };
	int        nseen   = 0;

	wait_stat_eq(s, "stat:pipes", 3);
	tu_db_start(&c, s);
	assert_int_equal(count_clients(&c, "pool3", NULL, 0), 3);
	iok_msg_free(tu_db_call(&c, tu_cmd("SET", "pk", "pv", NULL), 0, T_MS));
	for (int i = 0; i < 600; i++) {
		toks[i] = tu_db_send(&c, tu_cmd("GET", "pk", NULL), 0, 0);
	}
	for (int i = 0; i < 600; i++) {
		iok_msg *m = tu_db_wait(&c, toks[i], T_MS, NULL);
		tu_assert_reply(m, "pv");
		uint32_t p = iok_msg_get_pipe(m);
		int      j;
		for (j = 0; j < nseen && seen[j] != p; j++) {
		}
		if (j == nseen) {
			assert_true(nseen < 3);
			seen[nseen++] = p;
		}
		iok_msg_free(m);
	}
	assert_int_equal(nseen, 3); /* spread over every connection */
	assert_int_equal(tu_db_stop(&c), 0);
	IOK_OK(iok_close(s));
}

/* --------------------------------------------------------- plain API */

static void
test_plain_and_refused(void **state)
{
	(void) state;
	iok_socket s = open_db("plain", 1, NULL);
	char       buf[128];
	size_t     len;
	iok_msg   *m;
	tu_db      c;

	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECVTIMEO, T_MS));
	m = tu_cmd("PING", NULL);
	IOK_OK(iok_sendmsg(s, m, 0));
	len = sizeof(buf);
	IOK_OK(iok_recv(s, buf, &len, 0));
	assert_int_equal(len, 7);
	assert_memory_equal(buf, "+PONG\r\n", 7);
	/* Not one command: refused by the transport, never on the wire. */
	IOK_OK(iok_send(s, "PING\r\n", 6, 0));
	len = sizeof(buf);
	assert_int_equal(iok_recv(s, buf, &len, 0), IOK_EINVAL);
	IOK_OK(iok_sendmsg(s, tu_cmd("ECHO", "still matched", NULL), 0));
	len = sizeof(buf);
	IOK_OK(iok_recv(s, buf, &len, 0));
	assert_int_equal(len, 20);
	assert_memory_equal(buf, "$13\r\nstill matched\r\n", 20);
	/* A new plain request abandons the previous one (as req0): the
	 * blocked BLPOP's late reply is dropped, the ECHO's comes. */
	IOK_OK(iok_sendmsg(s, tu_cmd("BLPOP", "plainq", "0", NULL), 0));
	wait_stat_eq(s, "db:inflight", 1);
	IOK_OK(iok_sendmsg(s, tu_cmd("ECHO", "second", NULL), 0));
	{
		tu_db      pc;
		iok_socket p = open_db("plainpush", 1, NULL);
		tu_db_start(&pc, p);
		iok_msg_free(tu_db_call(&pc, tu_cmd("RPUSH", "plainq", "x", NULL), 0, T_MS));
		assert_int_equal(tu_db_stop(&pc), 0);
		IOK_OK(iok_close(p));
	}
	len = sizeof(buf);
	IOK_OK(iok_recv(s, buf, &len, 0));
	assert_int_equal(len, 12);
	assert_memory_equal(buf, "$6\r\nsecond\r\n", 12);
	wait_stat_eq(s, "stat:rx-dropped", 1);
	IOK_OK(iok_close(s));

	/* The same with tokens. */
	s = open_db("plain2", 1, NULL);
	tu_db_start(&c, s);
	iok_msg *bad;
	IOK_OK(iok_msg_alloc(&bad, 4));
	memcpy(iok_msg_body(bad), "GET\n", 4);
	m = tu_db_wait(&c, tu_db_send(&c, bad, 0, 0), T_MS, NULL);
	expect_status(m, IOK_EINVAL);
	iok_msg_free(m);
	iok_msg_free(tu_db_call(&c, tu_cmd("SET", "a", "1", NULL), 0, T_MS));
	m = tu_db_call(&c, tu_cmd("GET", "a", NULL), 0, T_MS);
	tu_assert_reply(m, "1");
	iok_msg_free(m);
	assert_int_equal(tu_db_stop(&c), 0);
	IOK_OK(iok_close(s));
}

/* -------------------------------------------- sub sharing the connection */

static iok_msg *
sub_recv(iok_socket sub)
{
	iok_msg *m;
	IOK_OK(iok_recvmsg(sub, &m, 0));
	assert_true(iok_msg_is_push(m));
	return m;
}

/* Receive until a push of the given kind ("message", "subscribe"...);
 * fills e with its elements. */
static int
sub_recv_kind(iok_socket sub, const char *kind, char e[][128])
{
	for (;;) {
		iok_msg *m = sub_recv(sub);
		int      n = tu_elems(m, e, 4);
		iok_msg_free(m);
		if (n > 0 && strcmp(e[0], kind) == 0) {
			return n;
		}
	}
}

struct flow {
	tu_db *c;
	int    n;
};

static void *
flow_worker(void *arg)
{
	struct flow *f = arg;
	uint64_t    *t = calloc((size_t) f->n * 2, sizeof(*t));
	char         k[32], v[32], buf[64];
	for (int i = 0; i < f->n; i++) {
		snprintf(k, sizeof(k), "fk%d", i);
		snprintf(v, sizeof(v), "fv%d", i);
		t[2 * i]     = tu_db_send(f->c, tu_cmd("SET", k, v, NULL), 0, 0);
		t[2 * i + 1] = tu_db_send(f->c, tu_cmd("GET", k, NULL), 0, 0);
	}
	for (int i = 0; i < f->n; i++) {
		iok_msg *a = tu_db_wait(f->c, t[2 * i], T_MS, NULL);
		iok_msg *b = tu_db_wait(f->c, t[2 * i + 1], T_MS, NULL);
		snprintf(v, sizeof(v), "fv%d", i);
		assert_string_equal(tu_str(a, buf, sizeof(buf)), "OK");
		assert_string_equal(tu_str(b, buf, sizeof(buf)), v);
		iok_msg_free(a);
		iok_msg_free(b);
	}
	free(t);
	return NULL;
}

static void
test_shared_pubsub(void **state)
{
	(void) state;
	tu_db       c, pc;
	iok_dialer  d;
	iok_socket  sub, pub;
	iok_socket  s = open_db("shared", 1, &d);
	char        e[4][128], line[1024], v[32];
	pthread_t   th;
	struct flow f;
	uint64_t    toks[200];

	IOK_OK(iok_sub0_open(&sub));
	IOK_OK(iok_socket_set_ms(sub, IOK_OPT_RECVTIMEO, T_MS));
	IOK_OK(iok_dialer_share(d, sub));
	IOK_OK(iok_socket_set(sub, IOK_OPT_SUB_SUBSCRIBE, "news", 4));
	assert_int_equal(sub_recv_kind(sub, "subscribe", e), 3);
	assert_string_equal(e[1], "news");
	assert_string_equal(e[2], "1");

	tu_db_start(&c, s);
	pub = open_db("pubber", 1, NULL);
	tu_db_start(&pc, pub);

	f = (struct flow) { .c = &c, .n = 1000 };
	assert_int_equal(pthread_create(&th, NULL, flow_worker, &f), 0);
	for (int i = 0; i < 200; i++) {
		snprintf(v, sizeof(v), "m%d", i);
		toks[i] = tu_db_send(&pc, tu_cmd("PUBLISH", "news", v, NULL), 0, 0);
	}
	for (int i = 0; i < 200; i++) {
		iok_msg *m = tu_db_wait(&pc, toks[i], T_MS, NULL);
		tu_assert_reply(m, "1");
		iok_msg_free(m);
	}
	for (int i = 0; i < 200; i++) {
		assert_int_equal(sub_recv_kind(sub, "message", e), 3);
		snprintf(v, sizeof(v), "m%d", i);
		assert_string_equal(e[1], "news");
		assert_string_equal(e[2], v);
	}
	pthread_join(th, NULL);

	/* One connection, carrying both the commands and the subscription. */
	assert_int_equal(count_clients(&c, "shared", line, sizeof(line)), 1);
	assert_non_null(strstr(line, " sub=1 "));
	assert_int_equal(sopt(s, "stat:rx-dropped"), 0);

	/* Patterns. */
	IOK_OK(iok_socket_set_string(sub, IOK_OPT_SUB_PSUBSCRIBE, "ne*"));
	assert_int_equal(sub_recv_kind(sub, "psubscribe", e), 3);
	assert_string_equal(e[1], "ne*");
	iok_msg_free(tu_db_call(&pc, tu_cmd("PUBLISH", "news", "both", NULL), 0, T_MS));
	assert_int_equal(sub_recv_kind(sub, "message", e), 3);
	assert_string_equal(e[2], "both");
	assert_int_equal(sub_recv_kind(sub, "pmessage", e), 4);
	assert_string_equal(e[1], "ne*");
	assert_string_equal(e[2], "news");
	assert_string_equal(e[3], "both");
	iok_msg_free(tu_db_call(&pc, tu_cmd("PUBLISH", "nexus", "pat", NULL), 0, T_MS));
	assert_int_equal(sub_recv_kind(sub, "pmessage", e), 4);
	assert_string_equal(e[2], "nexus");
	IOK_OK(iok_socket_set(sub, IOK_OPT_SUB_UNSUBSCRIBE, "news", 4));
	assert_int_equal(sub_recv_kind(sub, "unsubscribe", e), 3);
	IOK_OK(iok_socket_set_string(sub, IOK_OPT_SUB_PUNSUBSCRIBE, "ne*"));
	assert_int_equal(sub_recv_kind(sub, "punsubscribe", e), 3);
	iok_msg *m = tu_db_call(&pc, tu_cmd("PUBLISH", "news", "nobody", NULL), 0, T_MS);
	tu_assert_reply(m, "0");
	iok_msg_free(m);
	assert_int_equal(iok_socket_set(sub, IOK_OPT_SUB_UNSUBSCRIBE, "news", 4), IOK_ENOENT);

	/* The sub leaving unsubscribes; commands go on. */
	IOK_OK(iok_socket_set(sub, IOK_OPT_SUB_SUBSCRIBE, "later", 5));
	assert_int_equal(sub_recv_kind(sub, "subscribe", e), 3);
	IOK_OK(iok_close(sub));
	m = tu_db_call(&c, tu_cmd("PING", NULL), 0, T_MS);
	tu_assert_reply(m, "PONG");
	iok_msg_free(m);
	m = tu_db_call(&pc, tu_cmd("PUBLISH", "later", "x", NULL), 0, T_MS);
	tu_assert_reply(m, "0");
	iok_msg_free(m);

	tu_db_stop(&c);
	assert_int_equal(c.dups, 0);
	assert_int_equal(tu_db_stop(&pc), 0);
	IOK_OK(iok_close(pub));
	IOK_OK(iok_close(s));
}

/* A subscription made while a session holds the shared connection (in a
 * MULTI, where Redis would queue a SUBSCRIBE and answer +QUEUED) waits
 * for the session to end; matching stays right. */
static void
test_shared_sub_during_multi(void **state)
{
	(void) state;
	tu_db      c;
	iok_dialer d;
	iok_socket sub, s = open_db("multisub", 1, &d);
	uint32_t   sid;
	uint64_t   t[3];
	char       e[4][128];

	IOK_OK(iok_sub0_open(&sub));
	IOK_OK(iok_socket_set_ms(sub, IOK_OPT_RECVTIMEO, T_MS));
	IOK_OK(iok_dialer_share(d, sub));
	wait_stat_eq(sub, "stat:pipes", 1);
	tu_db_start(&c, s);
	IOK_OK(iok_session_open(s, &sid));
	iok_msg *m = tu_db_call(&c, tu_cmd("MULTI", NULL), sid, T_MS);
	tu_assert_reply(m, "OK");
	iok_msg_free(m);
	IOK_OK(iok_socket_set(sub, IOK_OPT_SUB_SUBSCRIBE, "during", 6));
	t[0] = tu_db_send(&c, tu_cmd("INCR", "mx", NULL), sid, 0);
	t[1] = tu_db_send(&c, tu_cmd("EXEC", NULL), sid, 0);
	IOK_OK(iok_session_close(s, sid));
	t[2] = tu_db_send(&c, tu_cmd("PING", NULL), 0, 0);
	m    = tu_db_wait(&c, t[0], T_MS, NULL);
	tu_assert_reply(m, "QUEUED");
	iok_msg_free(m);
	m = tu_db_wait(&c, t[1], T_MS, NULL);
	assert_int_equal(tu_elems(m, e, 4), 1);
	assert_string_equal(e[0], "1");
	iok_msg_free(m);
	m = tu_db_wait(&c, t[2], T_MS, NULL);
	tu_assert_reply(m, "PONG");
	iok_msg_free(m);
	assert_int_equal(sub_recv_kind(sub, "subscribe", e), 3);
	assert_string_equal(e[1], "during");
	assert_int_equal(tu_db_stop(&c), 0);
	assert_int_equal(c.dups, 0);
	IOK_OK(iok_close(sub));
	IOK_OK(iok_close(s));
}

/* A sub sharing a pool subscribes on one connection of it (no duplicate
 * messages), and moves to another when that one is lost. */
struct pub_count {
	tu_db      *pc;
	const char *want;
};

static int
publish_reaches(void *arg)
{
	struct pub_count *p = arg;
	iok_msg          *m = tu_db_call(p->pc, tu_cmd("PUBLISH", "pooled", "hi", NULL), 0, T_MS);
	char              b[64];
	int ok = iok_msg_status(m) == 0 && strcmp(tu_str(m, b, sizeof(b)), p->want) == 0;
	iok_msg_free(m);
	return ok;
}

static void
test_shared_pool_one_subscriber(void **state)
{
	(void) state;
	tu_db      c, pc;
	iok_dialer d;
	iok_socket sub, pub, s = open_db("poolsub", 3, &d);
	char       e[4][128], line[1024], *id;

	wait_stat_eq(s, "stat:pipes", 3);
	IOK_OK(iok_sub0_open(&sub));
	IOK_OK(iok_socket_set_ms(sub, IOK_OPT_RECVTIMEO, T_MS));
	IOK_OK(iok_dialer_share(d, sub));
	wait_stat_eq(sub, "stat:pipes", 3);
	IOK_OK(iok_socket_set(sub, IOK_OPT_SUB_SUBSCRIBE, "pooled", 6));
	sub_recv_kind(sub, "subscribe", e);
	tu_db_start(&c, s);
	pub = open_db("poolpub", 1, NULL);
	tu_db_start(&pc, pub);
	iok_msg *m = tu_db_call(&pc, tu_cmd("PUBLISH", "pooled", "once", NULL), 0, T_MS);
	tu_assert_reply(m, "1"); /* one subscribed connection, not three */
	iok_msg_free(m);
	assert_int_equal(sub_recv_kind(sub, "message", e), 3);
	assert_string_equal(e[2], "once");

	/* Kill the subscribed connection: another one takes over. */
	assert_int_equal(count_clients(&pc, "poolsub", NULL, 0), 3);
	{
		/* The line of the connection with sub=1. */
		m                 = tu_db_call(&pc, tu_cmd("CLIENT", "LIST", NULL), 0, T_MS);
		ik_resp_item it   = tu_top(m);
		char        *text = strndup((const char *) it.str, it.len), *save = NULL;
		line[0] = '\0';
		for (char *l = strtok_r(text, "\n", &save); l != NULL;
		     l       = strtok_r(NULL, "\n", &save)) {
			if (strstr(l, " name=poolsub ") != NULL && strstr(l, " sub=1 ") != NULL) {
				snprintf(line, sizeof(line), "%s", l);
			}
		}
		free(text);
		iok_msg_free(m);
	}
	assert_true(strncmp(line, "id=", 3) == 0);
	id                   = line + 3;
	id[strcspn(id, " ")] = '\0';
	m                    = tu_db_call(&pc, tu_cmd("CLIENT", "KILL", "ID", id, NULL), 0, T_MS);
	tu_assert_reply(m, "1");
	iok_msg_free(m);
	struct pub_count want = { &pc, "1" };
	if (!tu_wait_for(publish_reaches, &want, T_MS)) {
		fail_msg("no connection took the subscription over");
	}
	assert_int_equal(sub_recv_kind(sub, "message", e), 3);
	assert_string_equal(e[2], "hi");
	wait_stat_eq(s, "stat:pipes", 3); /* the pool refilled */
	m = tu_db_call(&pc, tu_cmd("PUBLISH", "pooled", "still-one", NULL), 0, T_MS);
	tu_assert_reply(m, "1");
	iok_msg_free(m);
	assert_int_equal(tu_db_stop(&c), 0);
	tu_db_stop(&pc);
	IOK_OK(iok_close(sub));
	IOK_OK(iok_close(pub));
	IOK_OK(iok_close(s));
}

/* RESP2 connections cannot carry a subscriber next to commands. */
static void
test_shared_resp2_refused(void **state)
{
	(void) state;
	iok_socket s, sub;
	iok_dialer d;
	char       url[256];
	IOK_OK(iok_socket_open(&s, "db"));
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d/?protocol=2", tu_srv.port);
	IOK_OK(iok_dial(s, url, &d, 0));
	IOK_OK(iok_sub0_open(&sub));
	IOK_OK(iok_dialer_share(d, sub));
	wait_stat_eq(sub, "stat:pipes", 1);
	assert_int_equal(iok_socket_set(sub, IOK_OPT_SUB_SUBSCRIBE, "x", 1), IOK_ENOTSUP);
	assert_int_equal(iok_socket_set(sub, IOK_OPT_SUB_UNSUBSCRIBE, "x", 1), IOK_ENOENT);
	IOK_OK(iok_close(sub));
	IOK_OK(iok_close(s));
}

/* ------------------------------------------ server killed, restarted */

static int
published_to(void *arg)
{
	tu_db   *pc = arg;
	iok_msg *m  = tu_db_call(pc, tu_cmd("PUBLISH", "chan", "hello", NULL), 0, T_MS);
	char     b[64];
	int      ok = iok_msg_status(m) == 0 && strcmp(tu_str(m, b, sizeof(b)), "1") == 0;
	iok_msg_free(m);
	return ok;
}

static void
test_kill_restart(void **state)
{
	(void) state;
	tu_db      c, pc;
	iok_dialer d;
	iok_socket sub, pub;
	iok_socket s = open_db("victim", 1, &d);
	char       e[4][128];
	uint64_t   toks[501], late[50], after;
	int        resets = 0, replies = 0;

	IOK_OK(iok_sub0_open(&sub));
	IOK_OK(iok_socket_set_ms(sub, IOK_OPT_RECVTIMEO, T_MS));
	IOK_OK(iok_dialer_share(d, sub));
	IOK_OK(iok_socket_set(sub, IOK_OPT_SUB_SUBSCRIBE, "chan", 4));
	sub_recv_kind(sub, "subscribe", e);
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_REQ_TIMEOUT, T_MS));
	/* Requests wait for the reconnect (test_db_limits covers fail-fast). */
	IOK_OK(iok_socket_set_bool(s, IOK_OPT_DB_FAIL_FAST, 0));
	tu_db_start(&c, s);

	/* A blocked command holds everything behind it in flight. */
	toks[0] = tu_db_send(&c, tu_cmd("BLPOP", "never", "0", NULL), 0, 0);
	for (int i = 1; i < 501; i++) {
		toks[i] = tu_db_send(&c, tu_cmd("GET", "x", NULL), 0, 0);
	}
	wait_stat_eq(s, "db:inflight", 501);
	tu_redis_kill(&tu_srv, SIGKILL);
	for (int i = 0; i < 501; i++) {
		iok_msg *m = tu_db_wait(&c, toks[i], T_MS, NULL);
		if (iok_msg_status(m) == IOK_ECONNRESET) {
			resets++;
		} else {
			expect_status(m, 0);
			replies++;
		}
		iok_msg_free(m);
	}
	assert_int_equal(resets + replies, 501);
	assert_true(resets >= 1); /* the BLPOP at least */

	/* While it is down: queued requests wait up to their timeout. */
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_REQ_TIMEOUT, 100));
	for (int i = 0; i < 50; i++) {
		late[i] = tu_db_send(&c, tu_cmd("GET", "x", NULL), 0, 0);
	}
	for (int i = 0; i < 50; i++) {
		iok_msg *m = tu_db_wait(&c, late[i], T_MS, NULL);
		expect_status(m, IOK_ETIMEDOUT);
		iok_msg_free(m);
	}
	assert_int_equal(sopt(s, "db:queued"), 0);
	/* ... or for the reconnect, if it comes first. */
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_REQ_TIMEOUT, T_MS));
	after = tu_db_send(&c, tu_cmd("SET", "after", "yes", NULL), 0, 0);
	assert_int_equal(sopt(s, "db:queued"), 1);

	if (tu_redis_start(&tu_srv) != 0) {
		fail_msg("redis-server did not restart");
	}
	iok_msg *m = tu_db_wait(&c, after, T_MS, NULL);
	expect_status(m, 0);
	tu_assert_reply(m, "OK");
	iok_msg_free(m);
	m = tu_db_call(&c, tu_cmd("GET", "after", NULL), 0, T_MS);
	tu_assert_reply(m, "yes");
	iok_msg_free(m);
	assert_true(sopt(s, "stat:reconnects") >= 1);

	/* The subscription came back with the connection. */
	pub = open_db("pub2", 1, NULL);
	tu_db_start(&pc, pub);
	if (!tu_wait_for(published_to, &pc, T_MS)) {
		fail_msg("the sub socket never resubscribed");
	}
	assert_int_equal(sub_recv_kind(sub, "message", e), 3);
	assert_string_equal(e[1], "chan");
	assert_string_equal(e[2], "hello");
	assert_int_equal(count_clients(&c, "victim", NULL, 0), 1);

	assert_int_equal(tu_db_stop(&c), 0);
	assert_int_equal(c.dups, 0);
	tu_db_stop(&pc);
	IOK_OK(iok_close(sub));
	IOK_OK(iok_close(pub));
	IOK_OK(iok_close(s));
}

static void
test_idempotent_retry(void **state)
{
	(void) state;
	tu_db      c, pc;
	iok_socket s = open_db("idem", 1, NULL), pub;
	uint64_t   t1, t2;
	char       e[4][128];

	IOK_OK(iok_socket_set_ms(s, IOK_OPT_REQ_TIMEOUT, T_MS));
	IOK_OK(iok_socket_set_bool(s, IOK_OPT_DB_FAIL_FAST, 0)); /* retry waits */
	tu_db_start(&c, s);
	t1 = tu_db_send(&c, tu_cmd("BLPOP", "q", "0", NULL), 0, IOK_FLAG_IDEMPOTENT);
	t2 = tu_db_send(&c, tu_cmd("GET", "q2", NULL), 0, 0);
	wait_stat_eq(s, "db:inflight", 2);
	tu_redis_kill(&tu_srv, SIGKILL);
	iok_msg *m = tu_db_wait(&c, t2, T_MS, NULL);
	expect_status(m, IOK_ECONNRESET);
	iok_msg_free(m);
	assert_false(tu_db_done(&c, t1)); /* waiting to go again */
	assert_int_equal(sopt(s, "db:queued"), 1);

	if (tu_redis_start(&tu_srv) != 0) {
		fail_msg("redis-server did not restart");
	}
	pub = open_db("idempub", 1, NULL);
	tu_db_start(&pc, pub);
	iok_msg_free(tu_db_call(&pc, tu_cmd("RPUSH", "q", "v", NULL), 0, T_MS));
	m = tu_db_wait(&c, t1, T_MS, NULL);
	expect_status(m, 0);
	assert_int_equal(tu_elems(m, e, 4), 2);
	assert_string_equal(e[0], "q");
	assert_string_equal(e[1], "v");
	iok_msg_free(m);
	m = tu_db_call(&pc, tu_cmd("LLEN", "q", NULL), 0, T_MS);
	tu_assert_reply(m, "0"); /* taken exactly once */
	iok_msg_free(m);

	/* Lost twice: the second loss fails it. */
	t1 = tu_db_send(&c, tu_cmd("BLPOP", "q", "0", NULL), 0, IOK_FLAG_IDEMPOTENT);
	wait_stat_eq(s, "db:inflight", 1);
	tu_redis_kill(&tu_srv, SIGKILL);
	wait_stat_eq(s, "db:queued", 1);
	assert_int_equal(tu_redis_start(&tu_srv), 0);
	wait_stat_eq(s, "db:inflight", 1);
	tu_redis_kill(&tu_srv, SIGKILL);
	m = tu_db_wait(&c, t1, T_MS, NULL);
	expect_status(m, IOK_ECONNRESET);
	iok_msg_free(m);

	assert_int_equal(tu_db_stop(&c), 0);
	assert_int_equal(c.dups, 0);
	tu_db_stop(&pc);
	IOK_OK(iok_close(pub));
	IOK_OK(iok_close(s));
}

/* ----------------------------------------------- a server speaking junk */

struct fake {
	int             lfd;
	int             port;
	pthread_t       th;
	pthread_mutex_t mu;
	int             cfd; /* the connection being served, or -1 */
	atomic_int      stop;
	int             served;
};

/* Read until buf holds one whole RESP frame; 0, or -1 on EOF/error. */
static int
read_frame(int fd)
{
	uint8_t        buf[4096];
	size_t         len = 0, need;
	ik_resp_parser p;
	ik_resp_parser_init(&p, 0, 0);
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);
		if (n <= 0) {
			return -1;
		}
		len += (size_t) n;
		ssize_t f = ik_resp_parse(&p, buf, len, &need);
		if (f != 0) {
			return f > 0 ? 0 : -1;
		}
		if (len == sizeof(buf)) {
			return -1;
		}
	}
}

static void *
fake_main(void *arg)
{
	struct fake      *fk      = arg;
	static const char hello[] = "%1\r\n+proto\r\n:3\r\n";
	static const char junk[]  = "@this is not RESP\r\n";
	while (!atomic_load(&fk->stop)) {
		int fd = accept(fk->lfd, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR) {
				continue;
			}
			break;
		}
		pthread_mutex_lock(&fk->mu);
		if (atomic_load(&fk->stop)) {
			pthread_mutex_unlock(&fk->mu);
			close(fd);
			break;
		}
		fk->cfd = fd;
		pthread_mutex_unlock(&fk->mu);
		/* A good handshake, then junk for the first command. */
		if (read_frame(fd) == 0 && write(fd, hello, sizeof(hello) - 1) > 0 &&
		    read_frame(fd) == 0 && write(fd, junk, sizeof(junk) - 1) > 0) {
			fk->served++;
		}
		while (read_frame(fd) == 0) {
			/* the client drops us: wait for its EOF */
		}
		pthread_mutex_lock(&fk->mu);
		fk->cfd = -1;
		pthread_mutex_unlock(&fk->mu);
		close(fd);
	}
	return NULL;
}

static void
fake_start(struct fake *fk)
{
	struct sockaddr_in sa;
	socklen_t          sl  = sizeof(sa);
	int                one = 1;
	memset(fk, 0, sizeof(*fk));
	fk->cfd = -1;
	pthread_mutex_init(&fk->mu, NULL);
	fk->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fk->lfd >= 0);
	setsockopt(fk->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family      = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fk->lfd, (struct sockaddr *) &sa, sizeof(sa)), 0);
	assert_int_equal(listen(fk->lfd, 16), 0);
	assert_int_equal(getsockname(fk->lfd, (struct sockaddr *) &sa, &sl), 0);
	fk->port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&fk->th, NULL, fake_main, fk), 0);
}

static void
fake_stop(struct fake *fk)
{
	pthread_mutex_lock(&fk->mu);
	atomic_store(&fk->stop, 1);
	shutdown(fk->lfd, SHUT_RDWR); /* wakes accept */
	if (fk->cfd >= 0) {
		shutdown(fk->cfd, SHUT_RDWR);
	}
	pthread_mutex_unlock(&fk->mu);
	pthread_join(fk->th, NULL);
	close(fk->lfd);
	pthread_mutex_destroy(&fk->mu);
}

static void
test_malformed_then_recover(void **state)
{
	(void) state;
	struct fake fk;
	iok_socket  s;
	tu_db       c;
	char        url[128];

	tu_redis_stop(&tu_srv); /* this test brings its own servers */
	fake_start(&fk);
	IOK_OK(iok_socket_open(&s, "pipelined-db"));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECONNMINT, 20));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECONNMAXT, 200));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_REQ_TIMEOUT, T_MS));
	IOK_OK(iok_socket_set_bool(s, IOK_OPT_DB_FAIL_FAST, 0)); /* wait for it */
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", fk.port);
	IOK_OK(iok_dial(s, url, NULL, 0));
	tu_db_start(&c, s);

	iok_msg *m = tu_db_call(&c, tu_cmd("GET", "k", NULL), 0, T_MS);
	expect_status(m, IOK_ECONNRESET);
	iok_msg_free(m);
	assert_true(sopt(s, "stat:proto-errors") >= 1);

	/* A good server on the same port: the client recovers. */
	fake_stop(&fk);
	memset(&tu_srv, 0, sizeof(tu_srv));
	tu_srv.port = fk.port;
	if (tu_redis_start(&tu_srv) != 0) {
		fail_msg("redis-server did not start on the fake's port");
	}
	m = tu_db_call(&c, tu_cmd("SET", "k", "good", NULL), 0, T_MS);
	expect_status(m, 0);
	tu_assert_reply(m, "OK");
	iok_msg_free(m);
	m = tu_db_call(&c, tu_cmd("GET", "k", NULL), 0, T_MS);
	tu_assert_reply(m, "good");
	iok_msg_free(m);
	assert_int_equal(tu_db_stop(&c), 0);
	IOK_OK(iok_close(s));
}

/* --------------------------------------------------------------- AUTH */

static void
test_auth(void **state)
{
	(void) state;
	iok_socket s;
	char       url[256];
	size_t     len;

	tu_redis_stop(&tu_srv);
	memset(&tu_srv, 0, sizeof(tu_srv));
	snprintf(tu_srv.password, sizeof(tu_srv.password), "s3cret");
	if (tu_redis_start(&tu_srv) != 0) {
		fail_msg("redis-server did not start");
	}
	IOK_OK(iok_socket_open(&s, "pipelined-db"));
	snprintf(url, sizeof(url), "redis://:wrong@127.0.0.1:%d", tu_srv.port);
	assert_int_equal(iok_dial(s, url, NULL, 0), IOK_EPEERAUTH);
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", tu_srv.port);
	assert_int_equal(iok_dial(s, url, NULL, 0), IOK_EPEERAUTH);
	snprintf(url, sizeof(url), "redis://default:wrong@127.0.0.1:%d", tu_srv.port);
	assert_int_equal(iok_dial(s, url, NULL, 0), IOK_EPEERAUTH);
	assert_int_equal(sopt(s, "stat:pipes"), 0);
	IOK_OK(iok_dial(s, tu_redis_url(&tu_srv, "authed", url, sizeof(url)), NULL, 0));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECVTIMEO, T_MS));
	IOK_OK(iok_sendmsg(s, tu_cmd("PING", NULL), 0));
	char buf[32];
	len = sizeof(buf);
	IOK_OK(iok_recv(s, buf, &len, 0));
	assert_int_equal(len, 7);
	assert_memory_equal(buf, "+PONG\r\n", 7);
	IOK_OK(iok_close(s));
}

/* ------------------------------------------------------------ sessions */

#define TXN_INCRS 5

struct txn_worker {
	tu_db *c;
	int    n;
	int    txns; /* 1: MULTI/EXEC sessions, 0: plain INCRs */
};

static void *
txn_worker(void *arg)
{
	struct txn_worker *w = arg;
	char               buf[64], e[TXN_INCRS][128];
	if (!w->txns) {
		uint64_t *t = calloc((size_t) w->n, sizeof(*t));
		for (int i = 0; i < w->n; i++) {
			t[i] = tu_db_send(w->c, tu_cmd("INCR", "ctr", NULL), 0, 0);
		}
		for (int i = 0; i < w->n; i++) {
			iok_msg *m = tu_db_wait(w->c, t[i], T_MS, NULL);
			expect_status(m, 0);
			/* Never swallowed into someone's transaction. */
			assert_int_equal(tu_top(m).type, IK_RESP_INTEGER);
			iok_msg_free(m);
		}
		free(t);
		return NULL;
	}
	for (int i = 0; i < w->n; i++) {
		uint32_t sid;
		uint64_t t[TXN_INCRS + 2];
		IOK_OK(iok_session_open(w->c->s, &sid));
		t[0] = tu_db_send(w->c, tu_cmd("MULTI", NULL), sid, 0);
		for (int k = 0; k < TXN_INCRS; k++) {
			t[1 + k] = tu_db_send(w->c, tu_cmd("INCR", "ctr", NULL), sid, 0);
		}
		t[TXN_INCRS + 1] = tu_db_send(w->c, tu_cmd("EXEC", NULL), sid, 0);
		/* Closed at once: released when its requests are done. */
		IOK_OK(iok_session_close(w->c->s, sid));
		for (int k = 0; k < TXN_INCRS + 2; k++) {
			iok_msg *m = tu_db_wait(w->c, t[k], T_MS, NULL);
			expect_status(m, 0);
			assert_int_equal(iok_msg_get_session(m), sid);
			if (k == 0) {
				assert_string_equal(tu_str(m, buf, sizeof(buf)), "OK");
			} else if (k <= TXN_INCRS) {
				assert_string_equal(tu_str(m, buf, sizeof(buf)), "QUEUED");
			} else {
				/* Atomic: consecutive values, nobody in between. */
				assert_int_equal(tu_elems(m, e, TXN_INCRS), TXN_INCRS);
				for (int j = 1; j < TXN_INCRS; j++) {
					assert_int_equal(atoll(e[j]), atoll(e[j - 1]) + 1);
				}
			}
			iok_msg_free(m);
		}
	}
	return NULL;
}

static void
test_sessions_atomic(void **state)
{
	(void) state;
	tu_db             c;
	iok_socket        s = open_db("sess", 2, NULL);
	pthread_t         th[4];
	struct txn_worker w[4];

	wait_stat_eq(s, "stat:pipes", 2);
	tu_db_start(&c, s);
	for (int i = 0; i < 4; i++) {
		w[i] = (struct txn_worker) { .c = &c, .n = i < 2 ? 40 : 400, .txns = i < 2 };
		assert_int_equal(pthread_create(&th[i], NULL, txn_worker, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
	}
	iok_msg *m = tu_db_call(&c, tu_cmd("GET", "ctr", NULL), 0, T_MS);
	char     want[32];
	snprintf(want, sizeof(want), "%d", 2 * 40 * TXN_INCRS + 2 * 400);
	tu_assert_reply(m, want);
	iok_msg_free(m);
	assert_int_equal(sopt(s, "db:inflight"), 0);
	assert_int_equal(sopt(s, "db:queued"), 0);
	assert_int_equal(tu_db_stop(&c), 0);
	assert_int_equal(c.dups, 0);
	IOK_OK(iok_close(s));
}

/* With one connection, an open session holds everyone else back. */
static void
test_session_blocks_pool_one(void **state)
{
	(void) state;
	tu_db      c;
	iok_socket s = open_db("solo", 1, NULL);
	uint32_t   sid;
	uint64_t   tg, ti, te, oe, og;
	char       e[2][128];

	tu_db_start(&c, s);
	IOK_OK(iok_session_open(s, &sid));
	iok_msg *m = tu_db_call(&c, tu_cmd("MULTI", NULL), sid, T_MS);
	tu_assert_reply(m, "OK");
	iok_msg_free(m);
	tg = tu_db_send(&c, tu_cmd("INCR", "solo", NULL), 0, 0); /* another user */
	wait_stat_eq(s, "db:queued", 1);
	ti = tu_db_send(&c, tu_cmd("INCR", "solo", NULL), sid, 0);
	te = tu_db_send(&c, tu_cmd("EXEC", NULL), sid, 0);
	m  = tu_db_wait(&c, ti, T_MS, NULL);
	tu_assert_reply(m, "QUEUED");
	iok_msg_free(m);
	m = tu_db_wait(&c, te, T_MS, &oe);
	assert_int_equal(tu_elems(m, e, 2), 1);
	assert_string_equal(e[0], "1");
	iok_msg_free(m);
	assert_false(tu_db_done(&c, tg));
	IOK_OK(iok_session_close(s, sid));
	m = tu_db_wait(&c, tg, T_MS, &og);
	tu_assert_reply(m, "2"); /* after the transaction, not inside it */
	iok_msg_free(m);
	assert_true(og > oe);
	assert_int_equal(tu_db_stop(&c), 0);
	IOK_OK(iok_close(s));
}

/* The pinned connection drops: the session fails until closed. */
static void
test_session_connection_lost(void **state)
{
	(void) state;
	tu_db      c;
	iok_socket s = open_db("lost", 1, NULL);
	uint32_t   sid;

	IOK_OK(iok_socket_set_ms(s, IOK_OPT_REQ_TIMEOUT, T_MS));
	tu_db_start(&c, s);
	IOK_OK(iok_session_open(s, &sid));
	iok_msg *m = tu_db_call(&c, tu_cmd("MULTI", NULL), sid, T_MS);
	tu_assert_reply(m, "OK");
	iok_msg_free(m);
	uint64_t q = tu_db_send(&c, tu_cmd("INCR", "n", NULL), sid, 0);
	m          = tu_db_wait(&c, q, T_MS, NULL);
	tu_assert_reply(m, "QUEUED");
	iok_msg_free(m);
	tu_redis_kill(&tu_srv, SIGKILL);
	wait_stat_eq(s, "stat:pipes", 0);
	m = tu_db_call(&c, tu_cmd("EXEC", NULL), sid, T_MS);
	expect_status(m, IOK_ECONNRESET);
	iok_msg_free(m);
	assert_int_equal(tu_redis_start(&tu_srv), 0);
	wait_stat_eq(s, "stat:pipes", 1);
	m = tu_db_call(&c, tu_cmd("EXEC", NULL), sid, T_MS); /* still failed */
	expect_status(m, IOK_ECONNRESET);
	iok_msg_free(m);
	IOK_OK(iok_session_close(s, sid));
	m = tu_db_call(&c, tu_cmd("GET", "n", NULL), 0, T_MS);
	tu_assert_reply(m, "(nil)"); /* the transaction never ran */
	iok_msg_free(m);
	IOK_OK(iok_session_open(s, &sid));
	m = tu_db_call(&c, tu_cmd("MULTI", NULL), sid, T_MS);
	tu_assert_reply(m, "OK");
	iok_msg_free(m);
	m = tu_db_call(&c, tu_cmd("DISCARD", NULL), sid, T_MS);
	tu_assert_reply(m, "OK");
	iok_msg_free(m);
	IOK_OK(iok_session_close(s, sid));
	assert_int_equal(tu_db_stop(&c), 0);
	IOK_OK(iok_close(s));
}

/* ------------------------------------------------- cancel and timeouts */

static void
test_cancel_keeps_matching(void **state)
{
	(void) state;
	tu_db      c, pc;
	iok_socket s = open_db("cancel", 1, NULL), pub = open_db("cpub", 1, NULL);
	uint64_t   ta, tb, tc, td;

	tu_db_start(&c, s);
	tu_db_start(&pc, pub);
	iok_msg_free(tu_db_call(&c, tu_cmd("SET", "k2", "v2", NULL), 0, T_MS));

	/* Cancelled in flight: its reply still comes, and is dropped. */
	ta = tu_db_send(&c, tu_cmd("BLPOP", "cq", "0", NULL), 0, 0);
	wait_stat_eq(s, "db:inflight", 1);
	IOK_OK(iok_cancel(s, ta));
	tb = tu_db_send(&c, tu_cmd("GET", "k2", NULL), 0, 0);
	iok_msg_free(tu_db_call(&pc, tu_cmd("RPUSH", "cq", "x", NULL), 0, T_MS));
	iok_msg *m = tu_db_wait(&c, tb, T_MS, NULL);
	tu_assert_reply(m, "v2");
	iok_msg_free(m);
	assert_false(tu_db_done(&c, ta));
	assert_int_equal(sopt(s, "stat:rx-dropped"), 1);

	/* Cancelled while queued: never sent. */
	IOK_OK(iok_socket_set_int(s, IOK_OPT_DB_MAX_INFLIGHT, 1));
	tc = tu_db_send(&c, tu_cmd("BLPOP", "cq", "0", NULL), 0, 0);
	wait_stat_eq(s, "db:inflight", 1);
	td = tu_db_send(&c, tu_cmd("RPUSH", "never-sent", "x", NULL), 0, 0);
	wait_stat_eq(s, "db:queued", 1);
	IOK_OK(iok_cancel(s, td));
	assert_int_equal(sopt(s, "db:queued"), 0);
	iok_msg_free(tu_db_call(&pc, tu_cmd("RPUSH", "cq", "y", NULL), 0, T_MS));
	m = tu_db_wait(&c, tc, T_MS, NULL);
	expect_status(m, 0);
	iok_msg_free(m);
	m = tu_db_call(&c, tu_cmd("EXISTS", "never-sent", NULL), 0, T_MS);
	tu_assert_reply(m, "0");
	iok_msg_free(m);
	assert_false(tu_db_done(&c, td));

	/* Timed out in flight: ETIMEDOUT now, the late reply dropped. */
	IOK_OK(iok_socket_set_int(s, IOK_OPT_DB_MAX_INFLIGHT, 1024));
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_REQ_TIMEOUT, 50));
	ta = tu_db_send(&c, tu_cmd("BLPOP", "cq", "0", NULL), 0, 0);
	m  = tu_db_wait(&c, ta, T_MS, NULL);
	expect_status(m, IOK_ETIMEDOUT);
	iok_msg_free(m);
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_REQ_TIMEOUT, IOK_DURATION_INFINITE));
	tb = tu_db_send(&c, tu_cmd("GET", "k2", NULL), 0, 0);
	iok_msg_free(tu_db_call(&pc, tu_cmd("RPUSH", "cq", "z", NULL), 0, T_MS));
	m = tu_db_wait(&c, tb, T_MS, NULL);
	tu_assert_reply(m, "v2");
	iok_msg_free(m);
	wait_stat_eq(s, "stat:rx-dropped", 2);

	assert_int_equal(tu_db_stop(&c), 0);
	assert_int_equal(c.dups, 0);
	tu_db_stop(&pc);
	IOK_OK(iok_close(pub));
	IOK_OK(iok_close(s));
}

/* ------------------------------------------- pushes with no sharer */

static int
got_push(void *arg)
{
	tu_db *c = arg;
	pthread_mutex_lock(&c->mu);
	int n = c->pushes > 0;
	pthread_mutex_unlock(&c->mu);
	return n;
}

static void
test_push_without_sharer(void **state)
{
	(void) state;
	tu_db      c, pc;
	iok_socket s = open_db("track", 1, NULL), pub = open_db("tpub", 1, NULL);
	char       e[2][128], buf[64];
	size_t     len;

	tu_db_start(&c, s);
	tu_db_start(&pc, pub);
	iok_msg *m = tu_db_call(&c, tu_cmd("CLIENT", "TRACKING", "on", NULL), 0, T_MS);
	tu_assert_reply(m, "OK");
	iok_msg_free(m);
	iok_msg_free(tu_db_call(&c, tu_cmd("GET", "tk", NULL), 0, T_MS));
	iok_msg_free(tu_db_call(&pc, tu_cmd("SET", "tk", "1", NULL), 0, T_MS));
	if (!tu_wait_for(got_push, &c, T_MS)) {
		fail_msg("no invalidation push");
	}
	pthread_mutex_lock(&c.mu);
	assert_true(iok_msg_is_push(c.lastpush));
	assert_int_equal(iok_msg_token(c.lastpush), 0);
	assert_int_equal(tu_elems(c.lastpush, e, 2), 2);
	pthread_mutex_unlock(&c.mu);
	assert_string_equal(e[0], "invalidate");
	m = tu_db_call(&c, tu_cmd("GET", "tk", NULL), 0, T_MS);
	tu_assert_reply(m, "1");
	iok_msg_free(m);
	assert_int_equal(tu_db_stop(&c), 0);
	IOK_OK(iok_close(s));

	/* Used plainly, a push would read as a reply: dropped, counted. */
	s = open_db("track2", 1, NULL);
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECVTIMEO, T_MS));
	IOK_OK(iok_sendmsg(s, tu_cmd("CLIENT", "TRACKING", "on", NULL), 0));
	len = sizeof(buf);
	IOK_OK(iok_recv(s, buf, &len, 0));
	IOK_OK(iok_sendmsg(s, tu_cmd("GET", "tk", NULL), 0));
	len = sizeof(buf);
	IOK_OK(iok_recv(s, buf, &len, 0));
	iok_msg_free(tu_db_call(&pc, tu_cmd("SET", "tk", "2", NULL), 0, T_MS));
	wait_stat_eq(s, "stat:rx-dropped", 1);
	IOK_OK(iok_sendmsg(s, tu_cmd("PING", NULL), 0));
	len = sizeof(buf);
	IOK_OK(iok_recv(s, buf, &len, 0));
	assert_int_equal(len, 7);
	assert_memory_equal(buf, "+PONG\r\n", 7);
	IOK_OK(iok_close(s));
	tu_db_stop(&pc);
	IOK_OK(iok_close(pub));
}

/* ------------------------------------------------------------ options */

static void
test_options(void **state)
{
	(void) state;
	iok_socket s;
	int        v;
	uint64_t   u;
	IOK_OK(iok_socket_open(&s, "db"));
	IOK_OK(iok_socket_get_int(s, IOK_OPT_DB_MAX_INFLIGHT, &v));
	assert_int_equal(v, 1024);
	assert_int_equal(iok_socket_set_int(s, IOK_OPT_DB_MAX_INFLIGHT, 0), IOK_EINVAL);
	IOK_OK(iok_socket_set_int(s, IOK_OPT_DB_MAX_INFLIGHT, 8));
	IOK_OK(iok_socket_get_int(s, IOK_OPT_DB_MAX_INFLIGHT, &v));
	assert_int_equal(v, 8);
	/* Sessions close through iok_session_close only, not an option. */
	assert_int_equal(iok_socket_get_uint64(s, "db:session-close", &u), IOK_ENOTSUP);
	assert_int_equal(iok_socket_set_uint64(s, "db:session-close", 77), IOK_ENOTSUP);
	assert_int_equal(iok_session_close(s, 0), IOK_EINVAL);
	IOK_OK(iok_session_close(s, 77)); /* unknown: fine */
	assert_int_equal(iok_socket_set_uint64(s, "db:inflight", 1), IOK_EREADONLY);
	/* SP transports are not for this pattern. */
	assert_int_equal(iok_dial(s, "tcp://127.0.0.1:1", NULL, IOK_FLAG_NONBLOCK), IOK_ENOTSUP);
	IOK_OK(iok_close(s));
	IOK_OK(iok_db_open(&s));
	IOK_OK(iok_close(s));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_options),
		cmocka_unit_test_setup_teardown(
		    test_many_one_connection, tu_redis_setup, tu_redis_teardown),
		cmocka_unit_test_setup_teardown(test_pool_three, tu_redis_setup, tu_redis_teardown),
		cmocka_unit_test_setup_teardown(
		    test_plain_and_refused, tu_redis_setup, tu_redis_teardown),
		cmocka_unit_test_setup_teardown(
		    test_shared_pubsub, tu_redis_setup, tu_redis_teardown),
		cmocka_unit_test_setup_teardown(
		    test_shared_sub_during_multi, tu_redis_setup, tu_redis_teardown),
		cmocka_unit_test_setup_teardown(
		    test_shared_pool_one_subscriber, tu_redis_setup, tu_redis_teardown),
		cmocka_unit_test_setup_teardown(
		    test_shared_resp2_refused, tu_redis_setup, tu_redis_teardown),
		cmocka_unit_test_setup_teardown(
		    test_kill_restart, tu_redis_setup, tu_redis_teardown),
		cmocka_unit_test_setup_teardown(
		    test_idempotent_retry, tu_redis_setup, tu_redis_teardown),
		cmocka_unit_test_setup_teardown(
		    test_malformed_then_recover, tu_redis_setup, tu_redis_teardown),
		cmocka_unit_test_setup_teardown(test_auth, tu_redis_setup, tu_redis_teardown),
		cmocka_unit_test_setup_teardown(
		    test_sessions_atomic, tu_redis_setup, tu_redis_teardown),
		cmocka_unit_test_setup_teardown(
		    test_session_blocks_pool_one, tu_redis_setup, tu_redis_teardown),
		cmocka_unit_test_setup_teardown(
		    test_session_connection_lost, tu_redis_setup, tu_redis_teardown),
		cmocka_unit_test_setup_teardown(
		    test_cancel_keeps_matching, tu_redis_setup, tu_redis_teardown),
		cmocka_unit_test_setup_teardown(
		    test_push_without_sharer, tu_redis_setup, tu_redis_teardown),
	};
	if (getenv("IOK_TEST_FILTER") != NULL) {
		cmocka_set_test_filter(getenv("IOK_TEST_FILTER"));
	}
	int rv = cmocka_run_group_tests(tests, NULL, NULL);
	iok_fini();
	return rv;
}
