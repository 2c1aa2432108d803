/*
 * pipe_local.c - does a stream pipe's other end live in this process?
 *
 * A tcp connection over loopback to one of our own listeners, or an ipc
 * connection to one of our own sockets, has both ends served by the one
 * kernel thread.  A receiver there must not watch the wire (sockrecv.c):
 * the bytes it would wake for are written and read by that same thread,
 * and its spin takes a CPU the thread needs (a tcp round trip between two
 * sockets of one process measured 45-160 us watching, bimodal, against
 * 88-100 us not; between two processes 55 us against 100 us).
 *
 * ipc asks the kernel for the peer's pid (SO_PEERCRED).  tcp keeps the
 * local addresses of its loopback connections: the second end to become
 * active finds its peer address among them and marks both.  Kernel thread
 * (a forked child starts with the parent's lists and empties them as it
 * drops the parent's connections).
 */
#define _GNU_SOURCE /* struct ucred */
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pipe_int.h"

/* Our loopback tcp ends (ik_pipe.lnode), in buckets by port: a process
 * with thousands of loopback connections still looks at a few. */
enum { BUCKETS = 256 };
static ik_list loopback[BUCKETS];
static bool    loopback_ready;

static ik_list *
bucket_of(const struct sockaddr_storage *a)
{
	in_port_t port = a->ss_family == AF_INET ? ((const struct sockaddr_in *) a)->sin_port
	                                         : ((const struct sockaddr_in6 *) a)->sin6_port;
	if (!loopback_ready) {
		for (int i = 0; i < BUCKETS; i++) {
			ik_list_init(&loopback[i]);
		}
		loopback_ready = true;
	}
	return &loopback[ntohs(port) % BUCKETS];
}

static bool
is_loopback(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *) a;
		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) a;
		return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
		       (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127);
	}
	return false;
}

static bool
same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family) {
		return false;
	}
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const struct sockaddr_in *) a;
		const struct sockaddr_in *y = (const struct sockaddr_in *) b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const struct sockaddr_in6 *) a;
	const struct sockaddr_in6 *y = (const struct sockaddr_in6 *) b;
	return x->sin6_port == y->sin6_port &&
	       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

void
ik_pipe_local_check(ik_pipe *p)
{
	uv_os_fd_t              fd;
	struct sockaddr_storage peer;
	socklen_t               len;
	if (!p->is_stream || uv_fileno(&p->h.handle, &fd) != 0) {
		return;
	}
	if (p->h.handle.type == UV_NAMED_PIPE) {
		struct ucred cred;
		socklen_t    clen = sizeof(cred);
		p->local_peer     = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0 &&
		                cred.pid == getpid();
		return;
	}
	len = sizeof(p->local_addr);
	if (getsockname(fd, (struct sockaddr *) &p->local_addr, &len) != 0 ||
	    !is_loopback(&p->local_addr)) {
		return;
	}
	len = sizeof(peer);
	if (getpeername(fd, (struct sockaddr *) &peer, &len) != 0) {
		return;
	}
	ik_list *b = bucket_of(&peer);
	for (ik_node *n = ik_list_first(b); n != NULL; n = ik_list_next(b, n)) {
		ik_pipe *q = ik_container_of(n, ik_pipe, lnode);
		if (same_addr(&q->local_addr, &peer)) {
			p->local_peer = q->local_peer = true;
			for (int i = 0; i < 2; i++) {
				if (q->att[i].added) {
					ik_sock_peer_limits(q->att[i].sock); /* it stops watching */
				}
			}
			break;
		}
	}
	ik_list_append(bucket_of(&p->local_addr), &p->lnode);
}

void
ik_pipe_local_forget(ik_pipe *p)
{
	if (ik_node_linked(&p->lnode)) {
		ik_list_remove(&p->lnode);
	}
}
