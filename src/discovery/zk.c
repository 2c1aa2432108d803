/*
 * zk.c - the ZooKeeper backend ("tcp+zk://10.0.0.5:2181/services/db"):
 * the names of the znode's children are the addresses ("host:port" or
 * "host:port:weight"), re-read on a child watch.  Built only when
 * libzookeeper-st was found (IOK_HAVE_ZOOKEEPER).
 *
 * It uses nothing a user's backend could not (iok_discovery_* and the
 * kernel's libuv loop), which is the point: the single-threaded client
 * has no thread of its own, so it is driven here from the kernel loop.
 * zookeeper_interest() says which descriptor, which events and how long;
 * a uv_poll_t and a uv_timer_t wait for them; zookeeper_process() runs
 * the client, which calls the watcher and completions below.
 *
 * The client closes and reopens its socket by itself (reconnection), and
 * may get the same descriptor number back, while epoll keeps a closed
 * descriptor's registration as long as the socket lives on elsewhere (a
 * forked child holding a copy), still reporting it under the old number.
 * So libuv watches a duplicate of the client's descriptor that this file
 * owns: when the client's descriptor changed (number or socket inode,
 * checked after every call into the client), the watch is removed and
 * only then the duplicate closed.
 *
 * Connection loss keeps the last set (the service has not moved because
 * we lost sight of it); every (re)connection re-reads the children, since
 * a watch may have fired while we were away; an expired session gets a
 * new handle.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>
#include <zookeeper/zookeeper.h>

#include "discovery.h"

/* The session asked of the server (which clamps it, by default to 4..40 s).
 * It only carries watches (this client owns no ephemeral node), so a short
 * one costs nothing and notices a dead server sooner. */
#define ZK_SESSION_MS 4000
#define ZK_REOPEN_MS 200 /* after an expired session, before the next handle */

typedef struct zk_state {
	iok_discovery_watch *w; /* NULL once stopped */
	char                *hosts;
	char                *path;
	zhandle_t           *zh;
	struct zk_poll      *poll;    /* on the client's socket, or NULL */
	int                  fd;      /* the client's descriptor polled */
	ino_t                ino;     /* and its socket's inode */
	uv_timer_t           timer;   /* the client's timeout, or the reopen delay */
	int                  handles; /* open libuv handles; free at 0 */
	bool                 reading; /* a get_children in flight */
	bool                 again;   /* re-read when it completes */
	bool                 expired; /* make a new handle (from pump) */
	bool                 ever;    /* a set was ever reported */
	uint64_t             lost_at; /* loop time the connection was lost, or 0 */
} zk_state;

/* A poll handle on dupfd, a duplicate of the client's descriptor. */
typedef struct zk_poll {
	uv_poll_t h;
	int       dupfd;
} zk_poll;

static void pump(zk_state *st);

static void
log_nowhere(const char *msg)
{
	(void) msg; /* the client's own log would go to stderr */
}

static void
handle_closed(uv_handle_t *h)
{
	zk_state *st = h->data;
	if (h != (uv_handle_t *) &st->timer) {
		zk_poll *p = (zk_poll *) h;
		close(p->dupfd); /* epoll forgot it when the handle closed */
		free(p);
	}
	if (--st->handles == 0) {
		free(st->hosts);
		free(st->path);
		free(st);
	}
}

static void
poll_drop(zk_state *st)
{
	if (st->poll != NULL) {
		uv_close((uv_handle_t *) &st->poll->h, handle_closed);
		st->poll = NULL;
		st->fd   = -1;
	}
}

/* Nothing known and the lookup failed: say so (the last set is kept). */
static void
fail(zk_state *st, int err)
{
	if (st->w != NULL) {
		iok_discovery_fail(st->w, err, IOK_DURATION_DEFAULT);
	}
}

/* ------------------------------------------------------ the children */

static void read_children(zk_state *st);

static void
exists_done(int rc, const struct Stat *stat, const void *data)
{
	(void) rc, (void) stat, (void) data; /* the watch is what matters */
}

static void
children_done(int rc, const struct String_vector *v, const void *data)
{
	zk_state          *st = (zk_state *) data;
	iok_discovery_addr a[IK_DISC_MAX];
	char               hosts[IK_DISC_MAX][IK_DISC_HOST_MAX];
	int                n = 0;

	st->reading = false;
	if (st->w == NULL || rc == ZCLOSING) {
		return; /* stopping, or the handle is being replaced */
	}
	if (rc == ZNONODE) {
		/* Told when it is created (and refresh after dns:ttl-min looks
		 * again in any case). */
		fail(st, IOK_ENOENT);
		(void) zoo_aexists(st->zh, st->path, 1, exists_done, st);
	} else if (rc != ZOK) {
		/* Connection loss or a timeout: the next connection re-reads. */
		fail(st, IOK_ECONNREFUSED);
	} else {
		for (int i = 0; v != NULL && i < v->count; i++) {
			const char *c = v->data[i];
			uint16_t    port, weight;
			if (n == IK_DISC_MAX) {
				break; /* the set holds 64: the rest are not dialled */
			}
			if (c == NULL ||
			    ik_disc_parse_zk_child(c, strlen(c), hosts[n], &port, &weight) != 0) {
				iok_discovery_reject(st->w, c);
				continue;
			}
			a[n].host   = hosts[n];
			a[n].port   = port;
			a[n].weight = weight;
			n++;
		}
		(void) iok_discovery_update(st->w, a, n, IOK_DURATION_INFINITE);
		st->ever = true;
	}
	if (st->again) {
		st->again = false;
		read_children(st);
	}
}

/* Inside a client callback or followed by pump(): the request is queued
 * and sent when the socket is writable. */
static void
read_children(zk_state *st)
{
	int rc;
	if (st->zh == NULL) {
		return; /* a new handle is coming; it reads on connection */
	}
	if (st->reading) {
		st->again = true; /* the answer in flight may predate the change */
		return;
	}
	st->reading = true;
	if ((rc = zoo_aget_children(st->zh, st->path, 1, children_done, st)) != ZOK) {
		st->reading = false;
		fail(st, IOK_ECONNREFUSED);
	}
}

static void
watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
	zk_state *st = ctx;
	(void) zh;
	(void) path;
	if (st->w == NULL) {
		return;
	}
	if (type == ZOO_SESSION_EVENT) {
		if (state == ZOO_CONNECTED_STATE) {
			st->lost_at = 0;
			read_children(st);
		} else if (state == ZOO_CONNECTING_STATE && st->lost_at == 0) {
			st->lost_at = uv_now(iok_discovery_loop());
		} else if (state == ZOO_EXPIRED_SESSION_STATE || state == ZOO_AUTH_FAILED_STATE) {
			st->expired = true; /* not from inside the client: pump does it */
		}
		return;
	}
	/* A child event, the znode deleted, a watch dropped: look again. */
	read_children(st);
}

/* ------------------------------------------------ driving the client */

static void
process(zk_state *st, int events)
{
	if (st->zh != NULL) {
		(void) zookeeper_process(st->zh, events);
	}
	pump(st);
}

/* Which events to hand the client is asked of poll(): the client expects
 * select()'s answer, where a socket with an error or a hang-up is both
 * readable and writable (a failed connect is noticed on "writable"),
 * while libuv reports an error as a status with no events. */
static void
polled(uv_poll_t *h, int status, int events)
{
	zk_state     *st = h->data;
	struct pollfd p  = { .fd = ((zk_poll *) h)->dupfd, .events = POLLIN | POLLOUT };
	int           ev = 0;
	(void) status, (void) events;
	if (poll(&p, 1, 0) > 0) {
		bool bad = (p.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0;
		ev |= bad || (p.revents & POLLIN) ? ZOOKEEPER_READ : 0;
		ev |= bad || (p.revents & POLLOUT) ? ZOOKEEPER_WRITE : 0;
	}
	process(st, ev);
}

static int
open_handle(zk_state *st)
{
	st->expired = false;
	st->lost_at = 0;
	st->reading = false;
	st->again   = false;
	st->zh      = zookeeper_init2(st->hosts, watcher, ZK_SESSION_MS, NULL, st, 0, log_nowhere);
	return st->zh != NULL ? 0 : IOK_ENOMEM;
}

static void
timed_out(uv_timer_t *t)
{
	zk_state *st = t->data;
	if (st->zh == NULL) {
		if (open_handle(st) != 0) {
			fail(st, IOK_ENOMEM);
			uv_timer_start(&st->timer, timed_out, ZK_REOPEN_MS, 0);
			return;
		}
	} else {
		(void) zookeeper_process(st->zh, 0);
	}
	pump(st);
}

/* After every call into the client: an expired session makes way for a
 * new handle; otherwise watch what the client now waits for. */
static void
pump(zk_state *st)
{
	struct timeval tv = { 0, 0 };
	struct stat    sb = { 0 };
	int            fd = -1, interest = 0, rc;
	uint64_t       ms;

	if (st->w == NULL || st->zh == NULL) {
		return;
	}
	rc = zookeeper_interest(st->zh, &fd, &interest, &tv);
	/* Away for longer than the session lives: the session is gone even if
	 * no server said so.  A server that lost its data (or a new ensemble)
	 * refuses the old session for having seen a newer transaction, and
	 * the client would retry it forever: start a new one. */
	if (st->lost_at != 0 &&
	    uv_now(iok_discovery_loop()) - st->lost_at >= (uint64_t) zoo_recv_timeout(st->zh)) {
		st->expired = true;
	}
	if (st->expired || rc == ZINVALIDSTATE) {
		poll_drop(st); /* before the client closes the descriptor */
		(void) zookeeper_close(st->zh);
		st->zh = NULL;
		if (!st->ever) {
			fail(st, IOK_ECONNREFUSED);
		}
		uv_timer_start(&st->timer, timed_out, ZK_REOPEN_MS, 0);
		return;
	}
	if (fd >= 0 && fstat(fd, &sb) != 0) {
		fd = -1;
	}
	if (st->poll != NULL && (fd != st->fd || sb.st_ino != st->ino)) {
		poll_drop(st); /* a new socket, maybe under the old number */
	}
	if (fd >= 0 && st->poll == NULL) {
		zk_poll *p = malloc(sizeof(*p));
		/* Close-on-exec both: a child must not keep the session's socket. */
		(void) fcntl(fd, F_SETFD, FD_CLOEXEC);
		if (p != NULL && (p->dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) >= 0 &&
		    uv_poll_init(iok_discovery_loop(), &p->h, p->dupfd) == 0) {
			p->h.data = st;
			st->poll  = p;
			st->fd    = fd;
			st->ino   = sb.st_ino;
			st->handles++;
		} else {
			if (p != NULL && p->dupfd >= 0) {
				close(p->dupfd);
			}
			free(p); /* the timer below retries */
		}
	}
	if (st->poll != NULL) {
		int ev = ((interest & ZOOKEEPER_READ) ? UV_READABLE : 0) |
		         ((interest & ZOOKEEPER_WRITE) ? UV_WRITABLE : 0);
		if (ev != 0) {
			uv_poll_start(&st->poll->h, ev, polled);
		} else {
			uv_poll_stop(&st->poll->h);
		}
	}
	ms = (uint64_t) tv.tv_sec * 1000 + ((uint64_t) tv.tv_usec + 999) / 1000;
	uv_timer_start(&st->timer, timed_out, ms > 0 ? ms : 1, 0);
}

/* ------------------------------------------------------- the backend */

/* target: "h1:p1,h2:p2/path".  The servers must be IP literals. */
static int
parse_target(const char *target, char **hosts, char **path)
{
	const char        *slash = strchr(target, '/');
	iok_discovery_addr a[IK_DISC_MAX];
	char              *storage = NULL, *h;
	int                n;

	if (slash == NULL || slash == target || strlen(slash) > 1024 ||
	    (slash[1] != '\0' && slash[strlen(slash) - 1] == '/') || strstr(slash, "//") != NULL) {
		return IOK_EADDRINVAL;
	}
	if ((h = malloc((size_t) (slash - target) + 1)) == NULL) {
		return IOK_ENOMEM;
	}
	memcpy(h, target, (size_t) (slash - target));
	h[slash - target] = '\0';
	if ((n = ik_disc_parse_list(h, a, IK_DISC_MAX, &storage)) < 0) {
		free(h);
		return -n;
	}
	for (int i = 0; i < n; i++) {
		unsigned char buf[16];
		if (a[i].port == 0 || (inet_pton(AF_INET, a[i].host, buf) != 1 &&
		                          inet_pton(AF_INET6, a[i].host, buf) != 1)) {
			n = -1; /* a name, or no port */
		}
	}
	free(storage);
	/* Brackets ("[v6]:p") are not the client's syntax: refused. */
	if (n < 0 || strchr(h, '[') != NULL) {
		free(h);
		return IOK_EADDRINVAL;
	}
	if ((*path = strdup(slash)) == NULL) {
		free(h);
		return IOK_ENOMEM;
	}
	*hosts = h;
	return 0;
}

static int
zk_start(iok_discovery_watch *w, const char *target, void **state)
{
	zk_state *st;
	int       rv;
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		return IOK_ENOMEM;
	}
	if ((rv = parse_target(target, &st->hosts, &st->path)) != 0) {
		free(st);
		return rv;
	}
	st->w  = w;
	st->fd = -1;
	uv_timer_init(iok_discovery_loop(), &st->timer);
	st->timer.data = st;
	st->handles    = 1;
	if (open_handle(st) != 0) {
		st->w = NULL;
		uv_close((uv_handle_t *) &st->timer, handle_closed);
		return IOK_ENOMEM;
	}
	*state = st;
	pump(st); /* connects; the children are read once connected */
	return 0;
}

static void
zk_refresh(void *arg)
{
	zk_state *st = arg;
	read_children(st);
	pump(st);
}

static void
zk_stop(void *arg)
{
	zk_state *st = arg;
	st->w        = NULL;
	poll_drop(st); /* before the client closes its socket */
	if (st->zh != NULL) {
		/* Ends the session (a close request on a writable socket) and
		 * completes what is in flight with ZCLOSING, ignored above. */
		(void) zookeeper_close(st->zh);
		st->zh = NULL;
	}
	uv_close((uv_handle_t *) &st->timer, handle_closed);
}

const iok_discovery_backend ik_disc_backend_zk = {
	.name    = "zk",
	.start   = zk_start,
	.refresh = zk_refresh,
	.stop    = zk_stop,
};
