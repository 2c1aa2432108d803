/*
 * testutil.h - helpers shared by the cmocka tests: temp paths, free
 * ports, waiting on conditions (never sleeping as synchronisation).
 */
#ifndef IOK_TESTUTIL_H
#define IOK_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "iok.h"

/* Fail the test with the iok error text when rv != 0. */
#define IOK_OK(expr)                                                            \
	do {                                                                    \
		int rv_ = (expr);                                               \
		if (rv_ != 0) {                                                 \
			fail_msg("%s: %s (%d)", #expr, iok_strerror(rv_), rv_); \
		}                                                               \
	} while (0)

/* A unix socket path unique to this process and call. */
const char *tu_ipc_url(const char *tag);
/* A free TCP port on 127.0.0.1 (bound, then released). */
int tu_free_port(void);
/* A port free for TCP and UDP on 127.0.0.1, below the ephemeral range: for
 * a server restarted on the same port, which a connection elsewhere in the
 * machine could otherwise take as its local port meanwhile. */
int tu_free_server_port(void);
/* Is 127.0.0.1:port bound by someone (type SOCK_STREAM or SOCK_DGRAM)? */
int tu_port_in_use(int type, int port);
/* Monotonic milliseconds. */
uint64_t tu_now_ms(void);
/* Poll cond() every millisecond until true or timeout_ms elapses. */
int tu_wait_for(int (*cond)(void *), void *arg, int timeout_ms);
/* The line of dialer d's "upstreams" text for the address with this port
 * (fails the test if there is none), and one numeric field of it. */
void     tu_upstream_line(iok_dialer d, int port, char *out, size_t cap);
uint64_t tu_upstream_field(iok_dialer d, int port, const char *name);
/* Number of threads in this process (/proc/self/task). */
int tu_thread_count(void);
/* Number of open file descriptors (/proc/self/fd). */
int tu_fd_count(void);
/* Get a uint64 socket statistic, failing the test on error. */
uint64_t tu_stat(iok_socket s, const char *name);
/* Wait until a socket statistic reaches at least v. */
int tu_wait_stat(iok_socket s, const char *name, uint64_t v, int timeout_ms);
/* A raw TCP SP peer on 127.0.0.1:port: connects and sends the SP handshake
 * as protocol proto (the peer's is left unread). */
int tu_sp_raw_connect(int port, uint16_t proto);
/* One SP frame on fd: the u64 length it declares, then len bytes of body. */
void tu_sp_raw_frame(int fd, uint64_t declared, const void *body, size_t len);
/* n round trips on req against an echoing peer, each reply checked. */
void tu_echo_round_trips(iok_socket req, int n);
/* recv with a timeout, returning the error code; fills buf/len. */
int tu_recv_str(iok_socket s, char *buf, size_t cap, int timeout_ms);

/* A thread blocked in iok_recv(s) (a small buffer, the socket's own
 * timeout): start it, make something end the receive, then join it; rv is
 * what iok_recv returned.  tu_recv_thread_join gives 0 if the thread has
 * not returned within timeout_ms (the thread is then left running). */
typedef struct tu_recv_thread {
	iok_socket    s;
	int           rv;
	unsigned long th;       /* pthread_t */
	int           wait;     /* iok_recv_wait(s, no limit, mask) instead */
	int           has_mask; /* mask is set */
	sigset_t      mask;
} tu_recv_thread;
void tu_recv_thread_start(tu_recv_thread *r, iok_socket s);
/* The same thread in iok_recv_wait(s, no limit, mask or NULL). */
void tu_recv_wait_thread_start(tu_recv_thread *r, iok_socket s, const sigset_t *mask);
int  tu_recv_thread_join(tu_recv_thread *r, int timeout_ms);

#endif
