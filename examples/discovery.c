/*
 * discovery.c - a dialer that follows a watched file of peers.
 *
 * Two rep servers on two loopback addresses (127.0.0.2 and 127.0.0.3: the
 * whole of 127/8 is loopback); a req socket dials "tcp+file://<peers>",
 * waits on peers-fd until it is connected (before sending anything), then
 * the file is rewritten to name the other server and the requests follow.
 */
#include <iok.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK(expr)                                                                       \
	do {                                                                              \
		int rv_ = (expr);                                                         \
		if (rv_ != 0) {                                                           \
			fprintf(stderr, "discovery: %s: %s\n", #expr, iok_strerror(rv_)); \
			exit(1);                                                          \
		}                                                                         \
	} while (0)

typedef struct server {
	iok_socket  rep;
	const char *host;
	pthread_t   th;
} server;

static void *
serve(void *arg)
{
	server *sv = arg;
	for (;;) {
		char   buf[64];
		size_t sz = sizeof(buf);
		if (iok_recv(sv->rep, buf, &sz, 0) != 0) {
			return NULL; /* closed */
		}
		iok_send(sv->rep, sv->host, strlen(sv->host) + 1, 0);
	}
}

static int
start_server(server *sv, const char *host)
{
	iok_listener l;
	char         url[64];
	int          port;
	snprintf(url, sizeof(url), "tcp://%s:0", host);
	sv->host = host;
	CHECK(iok_rep0_open(&sv->rep));
	CHECK(iok_listen(sv->rep, url, &l, 0));
	CHECK(iok_listener_get_int(l, IOK_OPT_TCP_BOUND_PORT, &port));
	pthread_create(&sv->th, NULL, serve, sv);
	return port;
}

static void
write_peers(const char *path, const char *host, int port)
{
	char  tmp[300];
	FILE *f;
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	if ((f = fopen(tmp, "w")) == NULL) {
		perror(tmp);
		exit(1);
	}
	fprintf(f, "# host:port [weight]\n%s:%d\n", host, port);
	fclose(f);
	rename(tmp, path); /* replaced at once, as deploy tools do */
}

/* Wait until peers-live says there is (want 1) or is not (0) a peer. */
static void
wait_peers(iok_socket s, int want)
{
	int fd, n;
	CHECK(iok_socket_get_int(s, IOK_OPT_PEERS_FD, &fd));
	for (;;) {
		CHECK(iok_socket_get_int(s, IOK_OPT_PEERS_LIVE, &n)); /* re-arms fd */
		if ((n > 0) == want) {
			return;
		}
		struct pollfd p = { .fd = fd, .events = POLLIN };
		poll(&p, 1, -1);
	}
}

static void
ask(iok_socket req, char *answer, size_t cap)
{
	size_t sz = cap;
	CHECK(iok_send(req, "hello", 5, 0));
	CHECK(iok_recv(req, answer, &sz, 0));
}

int
main(void)
{
	server     a, b;
	iok_socket req;
	char       dir[] = "/tmp/iok-discovery-XXXXXX", path[300], url[320], first[32], now[32];
	int        pa    = start_server(&a, "127.0.0.2");
	int        pb    = start_server(&b, "127.0.0.3");

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/peers", dir);
	write_peers(path, "127.0.0.2", pa);
	snprintf(url, sizeof(url), "tcp+file://%s", path);

	CHECK(iok_req0_open(&req));
	CHECK(iok_socket_set_ms(req, IOK_OPT_RECVTIMEO, 10000));
	CHECK(iok_dial(req, url, NULL, IOK_FLAG_NONBLOCK));
	wait_peers(req, 1); /* connected before the first request */
	ask(req, first, sizeof(first));
	printf("before the edit: answered by %s\n", first);

	write_peers(path, "127.0.0.3", pb);
	do {
		ask(req, now, sizeof(now)); /* requests keep flowing meanwhile */
	} while (strcmp(now, first) == 0);
	printf("after the edit:  answered by %s\n", now);

	iok_close(req);
	iok_close(a.rep);
	iok_close(b.rep);
	pthread_join(a.th, NULL);
	pthread_join(b.th, NULL);
	unlink(path);
	rmdir(dir);
	return 0;
}
