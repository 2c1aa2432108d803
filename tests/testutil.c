/* testutil.c - see testutil.h. */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include <dirent.h>
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

const char *
tu_ipc_url(const char *tag)
{
	static _Thread_local char buf[256];
	static int                seq;
	const char               *dir = getenv("IOK_TEST_TMP");
	if (dir == NULL) {
		dir = "/tmp";
	}
	char mk[200];
	snprintf(mk, sizeof(mk), "mkdir -p %s", dir);
	if (system(mk) != 0) {
		/* fall back to /tmp */
		dir = "/tmp";
	}
	snprintf(buf, sizeof(buf), "ipc://%s/iok-%s-%d-%d.sock", dir, tag, (int) getpid(), seq++);
	return buf;
}

int
tu_free_port(void)
{
	struct sockaddr_in sa;
	socklen_t          len = sizeof(sa);
	int                fd  = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family      = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0 ||
	    getsockname(fd, (struct sockaddr *) &sa, &len) != 0) {
		fail_msg("cannot find a free port");
	}
	close(fd);
	return ntohs(sa.sin_port);
}

int
tu_port_in_use(int type, int port)
{
	struct sockaddr_in sa;
	int                fd = socket(AF_INET, type, 0), in_use;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family      = AF_INET;
	sa.sin_port        = htons((uint16_t) port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	in_use =
	    fd >= 0 && bind(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0 && errno == EADDRINUSE;
	if (fd >= 0) {
		close(fd);
	}
	return in_use;
}

int
tu_free_server_port(void)
{
	int   lo = 32768, hi;
	FILE *f  = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
	if (f != NULL) {
		if (fscanf(f, "%d %d", &lo, &hi) != 2) {
			lo = 32768;
		}
		fclose(f);
	}
	int base = lo > 12000 ? 10000 : 1024, span = lo - base;
	if (span < 100) {
		return tu_free_port(); /* no room below: the old way */
	}
	int start = (int) ((unsigned) getpid() * 7919u % (unsigned) span);
	for (int i = 0; i < span; i++) {
		int port = base + (start + i * 131) % span;
		if (!tu_port_in_use(SOCK_STREAM, port) && !tu_port_in_use(SOCK_DGRAM, port)) {
			return port;
		}
	}
	fail_msg("cannot find a free server port below %d", lo);
	return -1;
}

uint64_t
tu_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

int
tu_wait_for(int (*cond)(void *), void *arg, int timeout_ms)
{
	uint64_t end = tu_now_ms() + (uint64_t) timeout_ms;
	while (!cond(arg)) {
		if (tu_now_ms() > end) {
			return 0;
		}
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	return 1;
}

static int
count_dir(const char *path)
{
	DIR           *d = opendir(path);
	struct dirent *e;
	int            n = 0;
	if (d == NULL) {
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] != '.') {
			n++;
		}
	}
	closedir(d);
	return n;
}

int
tu_thread_count(void)
{
	return count_dir("/proc/self/task");
}

int
tu_fd_count(void)
{
	return count_dir("/proc/self/fd") - 1; /* the DIR's own descriptor */
}

uint64_t
tu_stat(iok_socket s, const char *name)
{
	uint64_t v = 0;
	IOK_OK(iok_socket_get_uint64(s, name, &v));
	return v;
}

int
tu_wait_stat(iok_socket s, const char *name, uint64_t v, int timeout_ms)
{
	uint64_t end = tu_now_ms() + (uint64_t) timeout_ms;
	while (tu_stat(s, name) < v) {
		if (tu_now_ms() > end) {
			return 0;
		}
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	return 1;
}

int
tu_recv_str(iok_socket s, char *buf, size_t cap, int timeout_ms)
{
	size_t len = cap - 1;
	int    rv;
	if ((rv = iok_socket_set_ms(s, IOK_OPT_RECVTIMEO, timeout_ms)) != 0) {
		return rv;
	}
	if ((rv = iok_recv(s, buf, &len, 0)) != 0) {
		return rv;
	}
	buf[len < cap - 1 ? len : cap - 1] = '\0';
	return 0;
}

void
tu_upstream_line(iok_dialer d, int port, char *out, size_t cap)
{
	char       *ups = NULL, want[32];
	const char *line, *eol;
	IOK_OK(iok_dialer_get_string(d, IOK_OPT_UPSTREAMS, &ups));
	snprintf(want, sizeof(want), ":%d ", port);
	if ((line = strstr(ups, want)) == NULL) {
		fail_msg("no upstream for port %d in:\n%s", port, ups);
	}
	eol = strchr(line, '\n');
	snprintf(out, cap, "%.*s", (int) (eol != NULL ? eol - line : (long) strlen(line)), line);
	iok_strfree(ups);
}

uint64_t
tu_upstream_field(iok_dialer d, int port, const char *name)
{
	char        line[1024], key[48];
	const char *f;
	tu_upstream_line(d, port, line, sizeof(line));
	snprintf(key, sizeof(key), " %s=", name);
	if ((f = strstr(line, key)) == NULL) {
		fail_msg("no %s in %s", name, line);
	}
	return strtoull(f + strlen(key), NULL, 10);
}

int
tu_sp_raw_connect(int port, uint16_t proto)
{
	struct sockaddr_in sa;
	int                fd = socket(AF_INET, SOCK_STREAM, 0);
	uint8_t hs[8]         = { 0, 'S', 'P', 0, (uint8_t) (proto >> 8), (uint8_t) proto, 0, 0 };
	memset(&sa, 0, sizeof(sa));
	sa.sin_family      = AF_INET;
	sa.sin_port        = htons((uint16_t) port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
	assert_int_equal(write(fd, hs, 8), 8);
	return fd;
}

void
tu_sp_raw_frame(int fd, uint64_t declared, const void *body, size_t len)
{
	uint8_t hdr[8];
	for (int i = 0; i < 8; i++) {
		hdr[i] = (uint8_t) (declared >> (56 - 8 * i));
	}
	assert_int_equal(write(fd, hdr, 8), 8);
	if (len > 0) {
		assert_int_equal(write(fd, body, len), (ssize_t) len);
	}
}

void
tu_echo_round_trips(iok_socket req, int n)
{
	for (int i = 0; i < n; i++) {
		char   out[32], in[64];
		size_t len = sizeof(in);
		int    k   = snprintf(out, sizeof(out), "request %d", i);
		IOK_OK(iok_send(req, out, (size_t) k, 0));
		IOK_OK(iok_recv(req, in, &len, 0));
		assert_int_equal(len, (size_t) k);
		assert_memory_equal(in, out, len);
	}
}

static void *
recv_thread_main(void *arg)
{
	tu_recv_thread *r = arg;
	char            buf[64];
	size_t          n = sizeof(buf);
	if (r->wait) {
		r->rv = iok_recv_wait(r->s, IOK_DURATION_INFINITE, r->has_mask ? &r->mask : NULL);
	} else {
		r->rv = iok_recv(r->s, buf, &n, 0);
	}
	return NULL;
}

static void
recv_thread_start(tu_recv_thread *r, iok_socket s, int wait, const sigset_t *mask)
{
	pthread_t th;
	r->s        = s;
	r->rv       = -1;
	r->wait     = wait;
	r->has_mask = mask != NULL;
	if (mask != NULL) {
		r->mask = *mask;
	}
	assert_int_equal(pthread_create(&th, NULL, recv_thread_main, r), 0);
	r->th = (unsigned long) th;
}

void
tu_recv_thread_start(tu_recv_thread *r, iok_socket s)
{
	recv_thread_start(r, s, 0, NULL);
}

void
tu_recv_wait_thread_start(tu_recv_thread *r, iok_socket s, const sigset_t *mask)
{
	recv_thread_start(r, s, 1, mask);
}

int
tu_recv_thread_join(tu_recv_thread *r, int timeout_ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (timeout_ms + 999) / 1000; /* a safety net: whole seconds do */
	return pthread_timedjoin_np((pthread_t) r->th, NULL, &until) == 0;
}
