/*
 * redisutil.h - helpers for tests against a real redis-server: start one on
 * a free 127.0.0.1 port in a temporary directory, wait until it answers,
 * kill it (SIGKILL, to test failures) or stop it and remove its directory,
 * restart it on the same port; RESP commands built with
 * ik_resp_format_argv and replies read with the RESP iterator; and a small
 * multi-threaded client (tu_db) that routes a db socket's replies by token
 * so many threads can each wait for their own.
 *
 * Header-only (static functions) so a test includes it without any build
 * change.  Servers never outlive the test: the child asks the kernel to
 * SIGKILL it when the test process dies (PR_SET_PDEATHSIG), and an atexit
 * handler kills whatever is still running.  Waiting is always on a
 * condition (the server answering PING), never a fixed sleep.
 *
 * The Python tests do the same with subprocess: redis-server --port N
 * --bind 127.0.0.1 --save '' --appendonly no --dir TMP (+ --requirepass),
 * then PING until it answers.
 */
#ifndef IOK_REDISUTIL_H
#define IOK_REDISUTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "transports/resp.h"

#define TU_UNUSED __attribute__((unused))

/* ------------------------------------------------------------ servers */

typedef struct tu_redis {
	pid_t pid; /* 0: not running */
	int   port;
	char  dir[256];
	char  password[64];
} tu_redis;

#define TU_REDIS_MAX 16
static pid_t tu_redis_live[TU_REDIS_MAX];

static TU_UNUSED void
tu_redis_atexit(void)
{
	for (int i = 0; i < TU_REDIS_MAX; i++) {
		if (tu_redis_live[i] > 0) {
			kill(tu_redis_live[i], SIGKILL);
			(void) waitpid(tu_redis_live[i], NULL, 0);
			tu_redis_live[i] = 0;
		}
	}
}

static TU_UNUSED void
tu_redis_track(pid_t pid, bool add)
{
	static bool registered;
	if (!registered) {
		registered = true;
		atexit(tu_redis_atexit);
	}
	for (int i = 0; i < TU_REDIS_MAX; i++) {
		if (add ? tu_redis_live[i] == 0 : tu_redis_live[i] == pid) {
			tu_redis_live[i] = add ? pid : 0;
			return;
		}
	}
}

/* Connect to 127.0.0.1:port and say PING inline; 1 if a Redis answered
 * (+PONG, or -NOAUTH when a password is needed). */
static TU_UNUSED int
tu_redis_ping(int port)
{
	struct sockaddr_in sa;
	char               buf[64];
	int                fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok = 0;
	ssize_t            n;
	if (fd < 0) {
		return 0;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family      = AF_INET;
	sa.sin_port        = htons((uint16_t) port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0 &&
	    write(fd, "PING\r\n", 6) == 6 && (n = read(fd, buf, sizeof(buf) - 1)) > 0) {
		buf[n] = '\0';
		ok     = strncmp(buf, "+PONG", 5) == 0 || strncmp(buf, "-NOAUTH", 7) == 0;
	}
	close(fd);
	return ok;
}

static TU_UNUSED int
tu_redis_available(void)
{
	return system("command -v redis-server >/dev/null 2>&1") == 0;
}

/* (Re)start the server of r: on r->port if set, else a free port; in
 * r->dir if set, else a new temporary directory; with r->password if set.
 * Returns 0 once it answers, -1 if it could not start. */
static TU_UNUSED int
tu_redis_start(tu_redis *r)
{
	char        portstr[16], log[300];
	const char *argv[16];
	int         argc = 0;
	pid_t       pid;

	if (r->dir[0] == '\0') {
		const char *base = getenv("IOK_TEST_TMP");
		char        mk[300];
		if (base == NULL) {
			base = "/tmp";
		}
		snprintf(mk, sizeof(mk), "mkdir -p %s", base);
		if (system(mk) != 0) {
			base = "/tmp";
		}
		snprintf(r->dir, sizeof(r->dir), "%s/iok-redis-XXXXXX", base);
		if (mkdtemp(r->dir) == NULL) {
			r->dir[0] = '\0';
			return -1;
		}
	}
	if (r->port == 0) {
		r->port = tu_free_port();
	}
	snprintf(portstr, sizeof(portstr), "%d", r->port);
	snprintf(log, sizeof(log), "%s/redis.log", r->dir);
	argv[argc++] = "redis-server";
	argv[argc++] = "--port";
	argv[argc++] = portstr;
	argv[argc++] = "--bind";
	argv[argc++] = "127.0.0.1";
	argv[argc++] = "--save";
	argv[argc++] = "";
	argv[argc++] = "--appendonly";
	argv[argc++] = "no";
	argv[argc++] = "--dir";
	argv[argc++] = r->dir;
	if (r->password[0] != '\0') {
		argv[argc++] = "--requirepass";
		argv[argc++] = r->password;
	}
	argv[argc] = NULL;

	/* Everything the child does is async-signal-safe. */
	if ((pid = fork()) < 0) {
		return -1;
	}
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		(void) prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp("redis-server", (char *const *) argv);
		_exit(127);
	}
	r->pid = pid;
	tu_redis_track(pid, true);
	uint64_t end = tu_now_ms() + 20000;
	while (!tu_redis_ping(r->port)) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid || tu_now_ms() > end) {
			/* Exited (port taken?) or never answered. */
			kill(pid, SIGKILL);
			(void) waitpid(pid, NULL, 0);
			tu_redis_track(pid, false);
			r->pid = 0;
			return -1;
		}
		struct timespec ts = { 0, 2000000 };
		nanosleep(&ts, NULL); /* polling a condition, not synchronising */
	}
	return 0;
}

/* Kill the server with sig (SIGKILL: an abrupt failure) and reap it. */
static TU_UNUSED void
tu_redis_kill(tu_redis *r, int sig)
{
	if (r->pid > 0) {
		kill(r->pid, sig);
		(void) waitpid(r->pid, NULL, 0);
		tu_redis_track(r->pid, false);
		r->pid = 0;
	}
}

/* Stop the server and remove its directory. */
static TU_UNUSED void
tu_redis_stop(tu_redis *r)
{
	char cmd[300];
	tu_redis_kill(r, SIGKILL);
	if (r->dir[0] != '\0') {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", r->dir);
		if (system(cmd) != 0) {
			/* nothing more to do */
		}
		r->dir[0] = '\0';
	}
}

/* "redis://127.0.0.1:PORT/?name=NAME" (with the password if set). */
static TU_UNUSED const char *
tu_redis_url(const tu_redis *r, const char *name, char *buf, size_t cap)
{
	if (r->password[0] != '\0') {
		snprintf(buf, cap, "redis://:%s@127.0.0.1:%d/?name=%s", r->password, r->port, name);
	} else {
		snprintf(buf, cap, "redis://127.0.0.1:%d/?name=%s", r->port, name);
	}
	return buf;
}

/* ----------------------------------------------------- RESP helpers */

/* A command message from argc arguments (lens may be NULL: C strings). */
static TU_UNUSED iok_msg *
tu_cmdv(int argc, const char *const *argv, const size_t *lens)
{
	ik_buf   b;
	iok_msg *m = NULL;
	ik_buf_init(&b);
	if (ik_resp_format_argv(&b, argc, argv, lens) != 0) {
		fail_msg("ik_resp_format_argv failed");
	}
	IOK_OK(iok_msg_alloc(&m, b.len));
	memcpy(iok_msg_body(m), b.data, b.len);
	ik_buf_fini(&b);
	return m;
}

/* A command from C strings, NULL-terminated: tu_cmd("SET", "k", "v", NULL). */
static TU_UNUSED iok_msg *
tu_cmd(const char *arg0, ...)
{
	const char *argv[64];
	int         argc = 0;
	va_list     ap;
	argv[argc++] = arg0;
	va_start(ap, arg0);
	while (argc < 64 && (argv[argc] = va_arg(ap, const char *)) != NULL) {
		argc++;
	}
	va_end(ap);
	return tu_cmdv(argc, argv, NULL);
}

/* The top-level item of a reply. */
static TU_UNUSED ik_resp_item
tu_top(iok_msg *m)
{
	ik_resp_item it;
	if (ik_resp_top(iok_msg_body(m), iok_msg_len(m), &it) != 1) {
		fail_msg("reply is not one RESP frame");
	}
	return it;
}

/* The reply as text: a string's bytes, an integer in decimal, "(nil)",
 * "-ERR ..." for errors, or "<T>N" (type byte, count) for aggregates. */
static TU_UNUSED const char *
tu_str(iok_msg *m, char *buf, size_t cap)
{
	ik_resp_item it = tu_top(m);
	if (it.null) {
		snprintf(buf, cap, "(nil)");
	} else if (it.type == IK_RESP_INTEGER) {
		snprintf(buf, cap, "%lld", (long long) it.i);
	} else if (it.type == IK_RESP_SIMPLE || it.type == IK_RESP_BULK ||
	           it.type == IK_RESP_VERBATIM) {
		snprintf(buf, cap, "%.*s", (int) it.len, (const char *) it.str);
	} else if (it.type == IK_RESP_ERROR || it.type == IK_RESP_BLOBERR) {
		snprintf(buf, cap, "-%.*s", (int) it.len, (const char *) it.str);
	} else {
		snprintf(buf, cap, "%c%zu", (char) it.type, it.count);
	}
	return buf;
}

/* Assert a reply's text. */
#define tu_assert_reply(m, expect)                                          \
	do {                                                                \
		char b_[512];                                               \
		assert_string_equal(tu_str((m), b_, sizeof(b_)), (expect)); \
	} while (0)

/* The string elements of an array or push frame (depth 1), copied into
 * out[i] (cap bytes each); returns how many (at most max). */
static TU_UNUSED int
tu_elems(iok_msg *m, char out[][128], int max)
{
	ik_resp_iter it;
	ik_resp_item item;
	int          n = 0, rv;
	ik_resp_iter_init(&it, iok_msg_body(m), iok_msg_len(m));
	while ((rv = ik_resp_iter_next(&it, &item)) == 1) {
		if (item.depth != 1 || n >= max) {
			continue;
		}
		if (item.type == IK_RESP_INTEGER) {
			snprintf(out[n++], 128, "%lld", (long long) item.i);
		} else {
			snprintf(out[n++], 128, "%.*s", (int) item.len,
			    item.str ? (const char *) item.str : "");
		}
	}
	assert_int_equal(rv, 0);
	return n;
}

/* ------------------------------------------- a client routing by token */

#define TU_DB_BUCKETS 4096

typedef struct tu_ent {
	uint64_t       token;
	iok_msg       *msg;
	uint64_t       order; /* arrival order */
	struct tu_ent *next;
} tu_ent;

typedef struct tu_db {
	iok_socket      s;
	pthread_t       rx;
	pthread_mutex_t mu;
	pthread_cond_t  cv;
	tu_ent         *b[TU_DB_BUCKETS];
	uint64_t        arrivals;
	uint64_t        dups;   /* a token completed twice (read after stop) */
	uint64_t        pushes; /* token 0 messages (pushes) */
	iok_msg        *lastpush;
	atomic_int      stop;
} tu_db;

static TU_UNUSED void *
tu_db_rx(void *arg)
{
	tu_db   *c = arg;
	iok_msg *m;
	for (;;) {
		int rv = iok_recvmsg(c->s, &m, 0);
		if (rv == IOK_ETIMEDOUT) {
			if (atomic_load(&c->stop)) {
				break;
			}
			continue;
		}
		if (rv != 0) {
			break;
		}
		pthread_mutex_lock(&c->mu);
		uint64_t tok = iok_msg_token(m);
		if (tok == 0) {
			c->pushes++;
			iok_msg_free(c->lastpush);
			c->lastpush = m;
		} else {
			tu_ent **pp = &c->b[tok % TU_DB_BUCKETS];
			tu_ent  *e;
			for (e = *pp; e != NULL; e = e->next) {
				if (e->token == tok) {
					c->dups++;
					break;
				}
			}
			if (e == NULL) {
				e        = calloc(1, sizeof(*e));
				e->token = tok;
				e->msg   = m;
				e->order = ++c->arrivals;
				e->next  = *pp;
				*pp      = e;
			} else {
				iok_msg_free(m);
			}
		}
		pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&c->mu);
	}
	return NULL;
}

/* Start routing the replies of socket s. */
static TU_UNUSED void
tu_db_start(tu_db *c, iok_socket s)
{
	memset(c, 0, sizeof(*c));
	c->s = s;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECVTIMEO, 50)); /* lets rx see stop */
	if (pthread_create(&c->rx, NULL, tu_db_rx, c) != 0) {
		fail_msg("pthread_create");
	}
}

/* Stop the receiver and free what nobody took; returns how many replies
 * were never taken. */
static TU_UNUSED int
tu_db_stop(tu_db *c)
{
	int left = 0;
	atomic_store(&c->stop, 1);
	pthread_join(c->rx, NULL);
	for (int i = 0; i < TU_DB_BUCKETS; i++) {
		while (c->b[i] != NULL) {
			tu_ent *e = c->b[i];
			c->b[i]   = e->next;
			iok_msg_free(e->msg);
			free(e);
			left++;
		}
	}
	iok_msg_free(c->lastpush);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	return left;
}

/* Send m as a request (flags: IOK_FLAG_IDEMPOTENT...) and return its
 * token. */
static TU_UNUSED uint64_t
tu_db_send(tu_db *c, iok_msg *m, uint32_t session, int flags)
{
	uint64_t tok = 0;
	iok_msg_set_session(m, session);
	IOK_OK(iok_request(c->s, m, &tok, flags));
	return tok;
}

/* Wait for the completion of tok (failing after timeout_ms); the caller
 * owns the returned message.  *order (if not NULL) gets its arrival
 * rank. */
static TU_UNUSED iok_msg *
tu_db_wait(tu_db *c, uint64_t tok, int timeout_ms, uint64_t *order)
{
	struct timespec dl;
	iok_msg        *m = NULL;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long) (timeout_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&c->mu);
	for (;;) {
		tu_ent **pp = &c->b[tok % TU_DB_BUCKETS];
		for (; *pp != NULL; pp = &(*pp)->next) {
			if ((*pp)->token == tok) {
				tu_ent *e = *pp;
				*pp       = e->next;
				m         = e->msg;
				if (order != NULL) {
					*order = e->order;
				}
				free(e);
				break;
			}
		}
		if (m != NULL || pthread_cond_timedwait(&c->cv, &c->mu, &dl) == ETIMEDOUT) {
			break;
		}
	}
	pthread_mutex_unlock(&c->mu);
	if (m == NULL) {
		fail_msg("request %llu never completed", (unsigned long long) tok);
	}
	return m;
}

/* Has tok completed (without taking it)? */
static TU_UNUSED int
tu_db_done(tu_db *c, uint64_t tok)
{
	int found = 0;
	pthread_mutex_lock(&c->mu);
	for (tu_ent *e = c->b[tok % TU_DB_BUCKETS]; e != NULL; e = e->next) {
		found |= e->token == tok;
	}
	pthread_mutex_unlock(&c->mu);
	return found;
}

/* One request, waited for: the caller owns the reply. */
static TU_UNUSED iok_msg *
tu_db_call(tu_db *c, iok_msg *m, uint32_t session, int timeout_ms)
{
	return tu_db_wait(c, tu_db_send(c, m, session, 0), timeout_ms, NULL);
}

/* n PINGs in flight at once, every reply awaited. */
static TU_UNUSED void
tu_ping_burst(iok_socket s, int n)
{
	for (int i = 0; i < n; i++) {
		uint64_t tok;
		IOK_OK(iok_request(s, tu_cmd("PING", NULL), &tok, 0));
	}
	for (int i = 0; i < n; i++) {
		iok_msg *m;
		IOK_OK(iok_recvmsg(s, &m, 0));
		assert_int_equal(iok_msg_status(m), 0);
		tu_assert_reply(m, "PONG");
		iok_msg_free(m);
	}
}

/* A command on a side connection to one server; its reply must start
 * with expect. */
static TU_UNUSED void
tu_redis_raw(int port, const char *resp, const char *expect)
{
	struct sockaddr_in sa;
	char               buf[128];
	int                fd = socket(AF_INET, SOCK_STREAM, 0);
	ssize_t            n;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family      = AF_INET;
	sa.sin_port        = htons((uint16_t) port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
	assert_int_equal(write(fd, resp, strlen(resp)), (ssize_t) strlen(resp));
	assert_true((n = read(fd, buf, sizeof(buf) - 1)) > 0);
	buf[n] = '\0';
	if (strncmp(buf, expect, strlen(expect)) != 0) {
		fail_msg("%s answered %s", resp, buf);
	}
	close(fd);
}

/* A fresh redis-server for each test of a group: tu_redis_setup and
 * tu_redis_teardown as cmocka fixtures, the server in tu_srv (a test
 * skips where redis-server is not installed). */
static TU_UNUSED tu_redis tu_srv;

static TU_UNUSED int
tu_redis_setup(void **state)
{
	(void) state;
	memset(&tu_srv, 0, sizeof(tu_srv));
	if (!tu_redis_available()) {
		skip();
	}
	if (tu_redis_start(&tu_srv) != 0) {
		fail_msg("redis-server did not start");
	}
	return 0;
}

static TU_UNUSED int
tu_redis_teardown(void **state)
{
	(void) state;
	tu_redis_stop(&tu_srv);
	return 0;
}

#endif /* IOK_REDISUTIL_H */
