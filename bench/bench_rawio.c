/*
 * bench_rawio.c - the floor of iok's design: no messaging library, but one
 * I/O thread per process, as iok has.  The application thread never touches
 * the connection: a send appends the framed message (u64 big-endian length
 * and payload, as bench_raw) to an out-box and wakes the I/O thread through
 * an eventfd on the empty -> non-empty transition; the I/O thread waits in
 * epoll on the connection and that eventfd, writes what the out-box holds,
 * reads what arrives, and hands whole messages to the application thread
 * through an in-box it sleeps on (a futex word).  No spinning, no batching
 * of wake-ups beyond that: what any design with one I/O thread pays for a
 * hand-off each way, so iok's round trip reads against what the design
 * allows as well as against bench_raw's single-threaded ping-pong.
 * Only req/rep round trips over tcp and ipc.
 */
#define _GNU_SOURCE
#include "bench.h"
#include "bench_sock.h"

#include <errno.h>
#include <linux/futex.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define BATCH (64 * 1024)

struct msg {
	struct msg *next;
	size_t      len;
	char        data[];
};

struct xsock {
	int       lfd, fd, efd, epfd;
	char     *path; /* ipc listener: unlinked on close */
	int       timeout_ms;
	int       started;
	pthread_t io;
	/* out-box: framed bytes for the I/O thread */
	pthread_mutex_t mu;
	unsigned char   out[BATCH];
	size_t          outlen;
	int             stop;
	/* in-box: whole messages for the application thread */
	struct msg *head, *tail;
	atomic_uint seq; /* bumped (and futex-woken) on every delivery */
	int         waiting;
	int         err; /* the connection failed: recv returns it */
	/* I/O thread only */
	unsigned char rbuf[BATCH];
	size_t        rlen;
};

static const char *
x_version(void)
{
	return "(u64-framed; epoll + eventfd to the I/O thread, a futex back)";
}

static int
x_init(void)
{
	return 0;
}

static void
x_fini(void)
{
}

static const char *
x_strerror(int err)
{
	return strerror(err);
}

static int
x_open(void **sp, const char *kind)
{
	struct xsock *s;

	if (strcmp(kind, "req") && strcmp(kind, "rep"))
		return ENOTSUP;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return ENOMEM;
	s->lfd = s->fd = s->efd = s->epfd = -1;
	pthread_mutex_init(&s->mu, NULL);
	*sp = s;
	return 0;
}

static int
x_listen(void *sp, const char *url)
{
	struct xsock *s = sp;

	return bsock_listen(url, &s->lfd, &s->path);
}

static int
x_dial(void *sp, const char *url)
{
	return bsock_dial(url, &((struct xsock *) sp)->fd);
}

static void
futex_wake_all(atomic_uint *w)
{
	syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1 << 30, NULL, NULL, 0);
}

static void
deliver(struct xsock *s, struct msg *m, int err)
{
	int wake;

	pthread_mutex_lock(&s->mu);
	if (m != NULL) {
		if (s->tail)
			s->tail->next = m;
		else
			s->head = m;
		s->tail = m;
	} else {
		s->err = err;
	}
	atomic_fetch_add(&s->seq, 1);
	wake = s->waiting;
	pthread_mutex_unlock(&s->mu);
	if (wake)
		futex_wake_all(&s->seq);
}

/* Whole frames from rbuf to the in-box. */
static void
parse(struct xsock *s)
{
	size_t pos = 0;

	while (s->rlen - pos >= 8) {
		uint64_t    len = bsock_get_u64(s->rbuf + pos);
		struct msg *m;

		if (len > BATCH - 8) {
			deliver(s, NULL, EMSGSIZE);
			s->rlen = 0;
			return;
		}
		if (s->rlen - pos < 8 + len)
			break;
		if ((m = malloc(sizeof(*m) + len)) == NULL) {
			deliver(s, NULL, ENOMEM);
			return;
		}
		m->next = NULL;
		m->len  = (size_t) len;
		memcpy(m->data, s->rbuf + pos + 8, len);
		deliver(s, m, 0);
		pos += 8 + len;
	}
	memmove(s->rbuf, s->rbuf + pos, s->rlen - pos);
	s->rlen -= pos;
}

static void *
io_main(void *arg)
{
	struct xsock      *s = arg;
	struct epoll_event ev[2];
	unsigned char      out[BATCH];

	for (;;) {
		int n = epoll_wait(s->epfd, ev, 2, -1);

		if (n < 0 && errno == EINTR)
			continue;
		for (int i = 0; i < n; i++) {
			if (ev[i].data.fd == s->efd) {
				uint64_t v;
				size_t   len;
				int      stop;

				if (read(s->efd, &v, sizeof(v)) < 0) {
					/* cleared already */
				}
				pthread_mutex_lock(&s->mu);
				len = s->outlen;
				memcpy(out, s->out, len);
				s->outlen = 0;
				stop      = s->stop;
				pthread_mutex_unlock(&s->mu);
				if (stop)
					return NULL;
				int err = len > 0 ? bsock_write_all(s->fd, out, len) : 0;
				if (err != 0)
					deliver(s, NULL, err);
			} else {
				ssize_t r = read(s->fd, s->rbuf + s->rlen, BATCH - s->rlen);

				if (r > 0) {
					s->rlen += (size_t) r;
					parse(s);
				} else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
					deliver(s, NULL, r == 0 ? ECONNRESET : errno);
					epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->fd, NULL);
				}
			}
		}
	}
}

/* The listener takes its one peer on first use; then the I/O thread starts. */
static int
started(struct xsock *s)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int                rv;

	if (s->started)
		return 0;
	if (s->fd < 0 && (rv = bsock_accept(s->lfd, &s->fd)) != 0)
		return rv;
	if ((s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
	    (s->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		return errno;
	ev.data.fd = s->fd;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->fd, &ev) != 0)
		return errno;
	ev.data.fd = s->efd;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->efd, &ev) != 0)
		return errno;
	if (pthread_create(&s->io, NULL, io_main, s) != 0)
		return EAGAIN;
	s->started = 1;
	return 0;
}

static void
wake_io(struct xsock *s)
{
	uint64_t one = 1;

	if (write(s->efd, &one, sizeof(one)) < 0) {
		/* the counter cannot overflow here */
	}
}

static int
x_send(void *sp, const void *buf, size_t len)
{
	struct xsock *s = sp;
	int           rv, wake;

	if ((rv = started(s)) != 0)
		return rv;
	pthread_mutex_lock(&s->mu);
	if (s->outlen + 8 + len > BATCH) {
		pthread_mutex_unlock(&s->mu);
		return EMSGSIZE; /* round trips only: one message at a time */
	}
	wake = s->outlen == 0;
	bsock_put_u64(s->out + s->outlen, len);
	memcpy(s->out + s->outlen + 8, buf, len);
	s->outlen += 8 + len;
	pthread_mutex_unlock(&s->mu);
	if (wake)
		wake_io(s);
	return 0;
}

static int
x_recv(void *sp, void *buf, size_t cap, size_t *lenp)
{
	struct xsock   *s = sp;
	struct msg     *m;
	struct timespec ts, *tp = NULL;
	int             rv;

	if ((rv = started(s)) != 0)
		return rv;
	if (s->timeout_ms > 0) {
		ts.tv_sec  = s->timeout_ms / 1000;
		ts.tv_nsec = (long) (s->timeout_ms % 1000) * 1000000L;
		tp         = &ts;
	}
	pthread_mutex_lock(&s->mu);
	while (s->head == NULL && s->err == 0) {
		unsigned seq = atomic_load(&s->seq);

		s->waiting++;
		pthread_mutex_unlock(&s->mu);
		rv = (int) syscall(SYS_futex, &s->seq, FUTEX_WAIT_PRIVATE, seq, tp, NULL, 0);
		pthread_mutex_lock(&s->mu);
		s->waiting--;
		if (rv != 0 && errno == ETIMEDOUT && s->head == NULL) {
			pthread_mutex_unlock(&s->mu);
			return BENCH_TIMEOUT;
		}
	}
	if ((m = s->head) == NULL) {
		rv = s->err;
		pthread_mutex_unlock(&s->mu);
		return rv;
	}
	s->head = m->next;
	if (s->head == NULL)
		s->tail = NULL;
	pthread_mutex_unlock(&s->mu);
	*lenp = m->len;
	memcpy(buf, m->data, m->len < cap ? m->len : cap);
	free(m);
	return 0;
}

static int
x_set_recv_timeout(void *sp, int ms)
{
	((struct xsock *) sp)->timeout_ms = ms;
	return 0;
}

static int
x_wait_peers(void *sp, int n, int timeout_ms)
{
	return ENOTSUP;
}

static void
x_close(void *sp)
{
	struct xsock *s = sp;

	if (s->started) {
		pthread_mutex_lock(&s->mu);
		s->stop = 1;
		pthread_mutex_unlock(&s->mu);
		wake_io(s);
		pthread_join(s->io, NULL);
	}
	while (s->head) {
		struct msg *m = s->head;

		s->head = m->next;
		free(m);
	}
	int fds[] = { s->lfd, s->fd, s->efd, s->epfd };
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (s->path) {
		unlink(s->path);
		free(s->path);
	}
	pthread_mutex_destroy(&s->mu);
	free(s);
}

static int
x_rr(const struct bopts *o)
{
	return bench_fail("the I/O-thread floor has no many-outstanding mode");
}

const struct bench_lib bench_lib = {
	.name             = "rawio",
	.version          = x_version,
	.init             = x_init,
	.fini             = x_fini,
	.strerror         = x_strerror,
	.open             = x_open,
	.listen           = x_listen,
	.dial             = x_dial,
	.send             = x_send,
	.recv             = x_recv,
	.flush            = NULL,
	.set_recv_timeout = x_set_recv_timeout,
	.wait_peers       = x_wait_peers,
	.close            = x_close,
	.rr_req           = x_rr,
	.rr_rep           = x_rr,
	.rr_method        = "none (ping-pong only)",
};
