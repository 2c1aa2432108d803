/*
 * bench_sock.h - plain blocking sockets for the no-library floors
 * (bench_raw, bench_rawio): tcp://a.b.c.d:port (numeric IPv4) and
 * ipc://path URLs, one peer per listener.  Every function returns 0 or an
 * errno value.
 */
#ifndef BENCH_SOCK_H
#define BENCH_SOCK_H

#include <stddef.h>

/* Binds and listens; *path gets a copy of an ipc path (unlink it on close),
 * else NULL. */
int bsock_listen(const char *url, int *lfd, char **path);
/* Connects, retrying for about 2 s (the runner starts dialers once the
 * listener said READY, but an accept queue may lag). */
int bsock_dial(const char *url, int *fd);
/* Takes the listener's one peer. */
int bsock_accept(int lfd, int *fd);
int bsock_write_all(int fd, const unsigned char *p, size_t n);

#endif
