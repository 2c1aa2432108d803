/*
 * bench_sock.h - plain blocking sockets for the no-library floors
 * (bench_raw, bench_rawio): tcp://a.b.c.d:port (numeric IPv4) and
 * ipc://path URLs, one peer per listener, and the u64 length framing.
 * Every socket function returns 0 or an errno value.
 */
#ifndef BENCH_SOCK_H
#define BENCH_SOCK_H

#include <stddef.h>
#include <stdint.h>

/* Binds and listens; *path gets a copy of an ipc path (unlink it on close),
 * else NULL. */
int bsock_listen(const char *url, int *lfd, char **path);
/* Connects, retrying for about 2 s (the runner starts dialers once the
 * listener said READY, but an accept queue may lag). */
int bsock_dial(const char *url, int *fd);
/* Takes the listener's one peer. */
int bsock_accept(int lfd, int *fd);
int bsock_write_all(int fd, const unsigned char *p, size_t n);

/* The framing: each message is a u64 big-endian length, then the payload
 * (SP's wire framing). */
static inline void
bsock_put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char) v;
}

static inline uint64_t
bsock_get_u64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

#endif
