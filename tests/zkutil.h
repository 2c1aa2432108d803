/*
 * zkutil.h - the test's own ZooKeeper client: synchronous create/delete
 * on the single-threaded C client (whose synchronous calls exist only in
 * the threaded one), driven by poll() on the test's thread until the
 * completion ran.  The server is tests/zkserver.py's (IOK_ZK_PORT).
 * Header-only, like discutil.h.
 */
#ifndef IOK_ZKUTIL_H
#define IOK_ZKUTIL_H

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zookeeper/zookeeper.h>

#define ZU_UNUSED __attribute__((unused))
#define ZU_MS 30000

static void
zu_quiet(const char *msg)
{
	(void) msg;
}

static void
zu_watch(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
	(void) zh, (void) type, (void) state, (void) path, (void) ctx;
}

/* Run the client until *done or ZU_MS pass.  1 if done. */
static int
zu_run(zhandle_t *zh, const int *done)
{
	uint64_t end = tu_now_ms() + ZU_MS;
	while (!*done && tu_now_ms() < end) {
		struct timeval tv;
		struct pollfd  p  = { .fd = -1 };
		int            in = 0, ev = 0;
		if (zookeeper_interest(zh, &p.fd, &in, &tv) == ZINVALIDSTATE) {
			return 0;
		}
		p.events = (short) (((in & ZOOKEEPER_READ) ? POLLIN : 0) |
		                    ((in & ZOOKEEPER_WRITE) ? POLLOUT : 0));
		int ms   = (int) (tv.tv_sec * 1000 + tv.tv_usec / 1000);
		if (poll(&p, p.fd >= 0 ? 1 : 0, ms < 1 ? 1 : ms > 100 ? 100 : ms) > 0) {
			ev |= (p.revents & (POLLIN | POLLHUP | POLLERR)) ? ZOOKEEPER_READ : 0;
			ev |= (p.revents & POLLOUT) ? ZOOKEEPER_WRITE : 0;
		}
		(void) zookeeper_process(zh, ev);
	}
	return *done;
}

typedef struct zu_op {
	int done, rc;
} zu_op;

static void
zu_str_done(int rc, const char *value, const void *data)
{
	zu_op *op = (zu_op *) data;
	(void) value;
	op->rc   = rc;
	op->done = 1;
}

static void
zu_void_done(int rc, const void *data)
{
	zu_op *op = (zu_op *) data;
	op->rc    = rc;
	op->done  = 1;
}

static ZU_UNUSED zhandle_t *
zu_connect(int port)
{
	char       hosts[64];
	zhandle_t *zh;
	snprintf(hosts, sizeof(hosts), "127.0.0.1:%d", port);
	zh = zookeeper_init2(hosts, zu_watch, 10000, NULL, NULL, 0, zu_quiet);
	assert_non_null(zh);
	return zh;
}

/* create path (persistent, empty); ZNODEEXISTS counts as done.  The rc. */
static ZU_UNUSED int
zu_create(zhandle_t *zh, const char *path)
{
	zu_op op = { 0, 0 };
	assert_int_equal(
	    zoo_acreate(zh, path, "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, zu_str_done, &op), ZOK);
	assert_true(zu_run(zh, &op.done));
	return op.rc == ZNODEEXISTS ? ZOK : op.rc;
}

/* delete path (any version).  The rc. */
static ZU_UNUSED int
zu_delete(zhandle_t *zh, const char *path)
{
	zu_op op = { 0, 0 };
	assert_int_equal(zoo_adelete(zh, path, -1, zu_void_done, &op), ZOK);
	assert_true(zu_run(zh, &op.done));
	return op.rc;
}

/* create "base/child" (base made first if missing). */
static ZU_UNUSED void
zu_add_child(zhandle_t *zh, const char *base, const char *child)
{
	char p[2048];
	snprintf(p, sizeof(p), "%s/%s", base, child);
	assert_int_equal(zu_create(zh, p), ZOK);
}

static ZU_UNUSED void
zu_del_child(zhandle_t *zh, const char *base, const char *child)
{
	char p[2048];
	snprintf(p, sizeof(p), "%s/%s", base, child);
	assert_int_equal(zu_delete(zh, p), ZOK);
}

#endif
