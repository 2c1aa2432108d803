/*
 * iok-debug - ask a process's iok debug endpoint a question.
 *
 *   iok-debug <socket path> <command>      (stats, peers, inflight, stack, help)
 *
 * Prints the answer (without the protocol's final "." line) and exits 0;
 * exits 1 when the endpoint answers "error: ...", 2 when it cannot be
 * reached or does not answer within 10 seconds.  The endpoint is served by
 * the process's iok kernel thread (iok_debug_listen, or IOK_DEBUG=<path>).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_MS 10000

static long long
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One answer line: undo the dot-stuffing; 1 at the final ".". */
static int
emit(const char *line, size_t len, int *err, int first)
{
	if (len == 1 && line[0] == '.') {
		return 1;
	}
	if (len > 0 && line[0] == '.') {
		line++;
		len--;
	}
	if (first && len >= 6 && memcmp(line, "error:", 6) == 0) {
		*err = 1;
	}
	fwrite(line, 1, len, stdout);
	fputc('\n', stdout);
	return 0;
}

int
main(int argc, char **argv)
{
	struct sockaddr_un sa;
	char               cmd[300];
	char              *buf = NULL;
	size_t             len = 0, cap = 0, off = 0;
	int                fd, n, err = 0, first = 1, done = 0;
	long long          deadline;

	if (argc != 3) {
		fprintf(
		    stderr, "usage: %s <socket path> <stats|peers|inflight|stack|help>\n", argv[0]);
		return 2;
	}
	if (strlen(argv[1]) >= sizeof(sa.sun_path) || strlen(argv[2]) > 256) {
		fprintf(stderr, "iok-debug: path or command too long\n");
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, argv[1]);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
		fprintf(stderr, "iok-debug: %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	n = snprintf(cmd, sizeof(cmd), "%s\n", argv[2]);
	if (write(fd, cmd, (size_t) n) != n) {
		fprintf(stderr, "iok-debug: write: %s\n", strerror(errno));
		return 2;
	}
	deadline = now_ms() + TIMEOUT_MS;
	while (!done) {
		struct pollfd pfd  = { .fd = fd, .events = POLLIN };
		long long     left = deadline - now_ms();
		ssize_t       k;
		if (left <= 0 || poll(&pfd, 1, (int) left) == 0) {
			fprintf(stderr, "iok-debug: no answer within %d ms\n", TIMEOUT_MS);
			return 2;
		}
		if (len + 65536 > cap) {
			cap = (len + 65536) * 2;
			if ((buf = realloc(buf, cap)) == NULL) {
				return 2;
			}
		}
		if ((k = read(fd, buf + len, cap - len)) < 0) {
			if (errno == EINTR) {
				continue;
			}
			fprintf(stderr, "iok-debug: read: %s\n", strerror(errno));
			return 2;
		}
		if (k == 0) {
			break; /* closed before the final "." */
		}
		len += (size_t) k;
		char *nl;
		while (!done && (nl = memchr(buf + off, '\n', len - off)) != NULL) {
			done  = emit(buf + off, (size_t) (nl - (buf + off)), &err, first);
			first = 0;
			off   = (size_t) (nl - buf) + 1;
		}
	}
	close(fd);
	free(buf);
	if (!done) {
		fprintf(stderr, "iok-debug: connection closed before the end of the answer\n");
		return 2;
	}
	return err ? 1 : 0;
}
