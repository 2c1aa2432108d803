/* bench_sock.c - plain blocking sockets for the no-library floors. */
#define _GNU_SOURCE
#include "bench_sock.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench.h"

/* Fills *sa from tcp://host:port (numeric IPv4) or ipc://path. */
static int
parse_url(const char *url, struct sockaddr_storage *sa, socklen_t *len)
{
	memset(sa, 0, sizeof(*sa));
	if (strncmp(url, "ipc://", 6) == 0) {
		struct sockaddr_un *un = (struct sockaddr_un *) sa;

		if (strlen(url + 6) >= sizeof(un->sun_path))
			return ENAMETOOLONG;
		un->sun_family = AF_UNIX;
		strcpy(un->sun_path, url + 6);
		*len = sizeof(*un);
		return 0;
	}
	if (strncmp(url, "tcp://", 6) == 0) {
		struct sockaddr_in *in = (struct sockaddr_in *) sa;
		unsigned            a, b, c, d, port;

		if (sscanf(url + 6, "%u.%u.%u.%u:%u", &a, &b, &c, &d, &port) != 5)
			return EINVAL;
		in->sin_family      = AF_INET;
		in->sin_port        = htons((uint16_t) port);
		in->sin_addr.s_addr = htonl(a << 24 | b << 16 | c << 8 | d);
		*len                = sizeof(*in);
		return 0;
	}
	return ENOTSUP;
}

static void
tune(int fd, int family)
{
	int one = 1;

	if (family == AF_INET)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int
bsock_listen(const char *url, int *lfd, char **path)
{
	struct sockaddr_storage sa;
	socklen_t               len;
	int                     rv, one = 1;

	*path = NULL;
	if ((rv = parse_url(url, &sa, &len)) != 0)
		return rv;
	if ((*lfd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return errno;
	setsockopt(*lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(*lfd, (struct sockaddr *) &sa, len) != 0 || listen(*lfd, 16) != 0)
		return errno;
	if (sa.ss_family == AF_UNIX)
		*path = strdup(url + 6);
	return 0;
}

int
bsock_dial(const char *url, int *fd)
{
	struct sockaddr_storage sa;
	socklen_t               len;
	int                     rv;

	if ((rv = parse_url(url, &sa, &len)) != 0)
		return rv;
	for (int tries = 0; tries < 200; tries++) {
		if ((*fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
			return errno;
		if (connect(*fd, (struct sockaddr *) &sa, len) == 0) {
			tune(*fd, sa.ss_family);
			return 0;
		}
		rv = errno;
		close(*fd);
		*fd = -1;
		bench_sleep_ms(10);
	}
	return rv;
}

int
bsock_accept(int lfd, int *fd)
{
	struct sockaddr_storage sa;
	socklen_t               len = sizeof(sa);

	if ((*fd = accept4(lfd, (struct sockaddr *) &sa, &len, SOCK_CLOEXEC)) < 0)
		return errno;
	tune(*fd, sa.ss_family);
	return 0;
}

int
bsock_write_all(int fd, const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		p += w;
		n -= (size_t) w;
	}
	return 0;
}
