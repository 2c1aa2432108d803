/*
 * bench_raw.c - the floor: no messaging library at all.  Plain blocking
 * sockets carrying each message as a u64 big-endian length and the payload
 * (the SP wire framing), written in batches of up to 64 KiB and read in
 * 64 KiB chunks; req/rep is blocking ping-pong, one write and one read per
 * message.  It shows what the machine can do, so every library's figure
 * also reads as a fraction of it.  Only push/pull and req/rep over tcp and
 * ipc: it has no inproc, no fan-out and no many-outstanding mode.
 */
#define _GNU_SOURCE
#include "bench.h"
#include "bench_sock.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define BATCH (64 * 1024)

struct rsock {
	int           lfd;        /* listening socket, until the peer connects */
	int           fd;         /* the connection */
	int           batch;      /* push: gather writes; others write each message */
	size_t        wlen;       /* bytes waiting in wbuf */
	size_t        rpos, rlen; /* unread bytes are rbuf[rpos, rlen) */
	int           timeout_ms;
	char         *path; /* ipc listener: unlinked on close */
	unsigned char wbuf[BATCH];
	unsigned char rbuf[BATCH];
};

static const char *
r_version(void)
{
	return "no library (u64-framed blocking sockets)";
}

static int
r_init(void)
{
	return 0;
}

static void
r_fini(void)
{
}

static const char *
r_strerror(int err)
{
	return strerror(err);
}

static int
r_open(void **sp, const char *kind)
{
	struct rsock *s;

	if (strcmp(kind, "push") && strcmp(kind, "pull") && strcmp(kind, "req") &&
	    strcmp(kind, "rep"))
		return ENOTSUP;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return ENOMEM;
	s->lfd = s->fd = -1;
	s->batch       = strcmp(kind, "push") == 0;
	*sp            = s;
	return 0;
}

static int
r_listen(void *sp, const char *url)
{
	struct rsock *s = sp;

	return bsock_listen(url, &s->lfd, &s->path);
}

static int
r_dial(void *sp, const char *url)
{
	return bsock_dial(url, &((struct rsock *) sp)->fd);
}

/* The listening side takes its one peer on first use. */
static int
connected(struct rsock *s)
{
	return s->fd >= 0 ? 0 : bsock_accept(s->lfd, &s->fd);
}

static int
r_flush(void *sp)
{
	struct rsock *s  = sp;
	int           rv = s->wlen ? bsock_write_all(s->fd, s->wbuf, s->wlen) : 0;

	s->wlen = 0;
	return rv;
}

static int
r_send(void *sp, const void *buf, size_t len)
{
	struct rsock *s = sp;
	int           rv;

	if ((rv = connected(s)) != 0)
		return rv;
	if (s->wlen + 8 + len > BATCH && (rv = r_flush(s)) != 0)
		return rv;
	if (8 + len > BATCH) { /* bigger than a batch: straight out */
		unsigned char hdr[8];

		bsock_put_u64(hdr, len);
		if ((rv = bsock_write_all(s->fd, hdr, 8)) != 0)
			return rv;
		return bsock_write_all(s->fd, buf, len);
	}
	bsock_put_u64(s->wbuf + s->wlen, len);
	memcpy(s->wbuf + s->wlen + 8, buf, len);
	s->wlen += 8 + len;
	return s->batch ? 0 : r_flush(s);
}

/* Makes at least n bytes readable at rbuf + rpos (n <= BATCH). */
static int
fill(struct rsock *s, size_t n)
{
	if (s->rlen - s->rpos >= n)
		return 0;
	memmove(s->rbuf, s->rbuf + s->rpos, s->rlen - s->rpos);
	s->rlen -= s->rpos;
	s->rpos = 0;
	while (s->rlen < n) {
		ssize_t r = read(s->fd, s->rbuf + s->rlen, BATCH - s->rlen);

		if (r == 0)
			return ECONNRESET;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? BENCH_TIMEOUT : errno;
		}
		s->rlen += (size_t) r;
	}
	return 0;
}

static int
r_recv(void *sp, void *buf, size_t cap, size_t *lenp)
{
	struct rsock *s   = sp;
	uint64_t      len = 0;
	int           rv;

	if ((rv = connected(s)) != 0 || (rv = fill(s, 8)) != 0)
		return rv;
	len = bsock_get_u64(s->rbuf + s->rpos);
	s->rpos += 8;
	*lenp = (size_t) len;
	/* Copy what fits, then discard the rest chunk by chunk. */
	for (uint64_t left = len, off = 0; left > 0;) {
		size_t n = left < BATCH ? (size_t) left : BATCH;

		if ((rv = fill(s, n)) != 0)
			return rv;
		if (off < cap)
			memcpy(
			    (char *) buf + off, s->rbuf + s->rpos, off + n <= cap ? n : cap - off);
		s->rpos += n;
		off += n;
		left -= n;
	}
	return 0;
}

static int
r_set_recv_timeout(void *sp, int ms)
{
	struct rsock  *s  = sp;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	s->timeout_ms = ms;
	if (s->fd >= 0 && setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0)
		return errno;
	return 0;
}

static int
r_wait_peers(void *sp, int n, int timeout_ms)
{
	return ENOTSUP;
}

static void
r_close(void *sp)
{
	struct rsock *s = sp;

	if (s->fd >= 0)
		close(s->fd);
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->path) {
		unlink(s->path);
		free(s->path);
	}
	free(s);
}

static int
r_rr(const struct bopts *o)
{
	return bench_fail("the raw floor has no many-outstanding mode");
}

const struct bench_lib bench_lib = {
	.name             = "raw",
	.version          = r_version,
	.init             = r_init,
	.fini             = r_fini,
	.strerror         = r_strerror,
	.open             = r_open,
	.listen           = r_listen,
	.dial             = r_dial,
	.send             = r_send,
	.recv             = r_recv,
	.flush            = r_flush,
	.set_recv_timeout = r_set_recv_timeout,
	.wait_peers       = r_wait_peers,
	.close            = r_close,
	.rr_req           = r_rr,
	.rr_rep           = r_rr,
	.rr_method        = "none (push/pull and ping-pong only)",
};
