/*
 * test_debug.c - the debug endpoint (iok_debug_listen): stats, peers and
 * requests in flight for a req socket whose rep never answers; the main
 * thread's C stack while it is blocked in read(2); hostile input
 * (garbage, oversized lines, floods) answered with an error and a closed
 * connection, never a crash; who may take the socket path; and the
 * kernel thread's name, which ps -L and top -H show.
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "testutil.h"

#define WAIT_MS 20000

static char *
tmp_path(const char *tag)
{
	static char buf[4][200];
	static int  seq;
	const char *dir = getenv("IOK_TEST_TMP");
	char       *p   = buf[seq % 4];
	if (dir == NULL || access(dir, W_OK) != 0) {
		dir = "/tmp";
	}
	snprintf(p, sizeof(buf[0]), "%s/dbg-%s-%d-%d.sock", dir, tag, (int) getpid(), seq++);
	unlink(p);
	return p;
}

/* Fail showing the whole answer when needle is not in it. */
static void
expect_in(const char *hay, const char *needle)
{
	if (strstr(hay, needle) == NULL) {
		fail_msg("'%s' not in:\n%s", needle, hay);
	}
}

static int
teardown_endpoint(void **state)
{
	(void) state;
	return iok_debug_close() == 0 ? 0 : -1;
}

static int
connect_to(const char *path)
{
	struct sockaddr_un sa;
	int                fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, path);
	assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
	return fd;
}

/* Read until the answer's final "." line (or EOF when until_eof); the
 * result is NUL-terminated and malloc'd. */
static char *
read_answer(int fd, int until_eof)
{
	size_t cap = 1 << 16, len = 0;
	char  *buf = malloc(cap);
	assert_non_null(buf);
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t       k;
		assert_true(poll(&pfd, 1, WAIT_MS) == 1);
		if (len + 4096 > cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		k = read(fd, buf + len, cap - len - 1);
		if (k < 0 && errno == ECONNRESET) {
			k = 0;
		}
		assert_true(k >= 0);
		if (k == 0) {
			break;
		}
		len += (size_t) k;
		buf[len] = '\0';
		if (!until_eof && (len == 2 ? strcmp(buf, ".\n") == 0
		                            : len > 2 && strcmp(buf + len - 3, "\n.\n") == 0)) {
			break;
		}
	}
	buf[len] = '\0';
	return buf;
}

static char *
ask(const char *path, const char *cmd)
{
	int   fd = connect_to(path);
	char  line[300];
	char *ans;
	int   n = snprintf(line, sizeof(line), "%s\n", cmd);
	assert_int_equal(write(fd, line, (size_t) n), n);
	ans = read_answer(fd, 0);
	close(fd);
	return ans;
}

/* ------------------------------------------------ stats, peers, inflight */

static void
test_stats_peers_inflight(void **state)
{
	iok_socket rep, req;
	iok_msg   *m;
	uint64_t   token;
	char      *path = tmp_path("sp");
	char       url[256];
	char      *a;
	(void) state;

	snprintf(url, sizeof(url), "%s", tu_ipc_url("dbg"));
	IOK_OK(iok_rep0_open(&rep));
	IOK_OK(iok_req0_open(&req));
	IOK_OK(iok_listen(rep, url, NULL, 0));
	IOK_OK(iok_dial(req, url, NULL, IOK_FLAG_SYNC));
	IOK_OK(iok_debug_listen(path));
	assert_int_equal(iok_debug_listen(path), IOK_EBUSY);

	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	/* A request the rep receives and never answers. */
	IOK_OK(iok_msg_alloc(&m, 0));
	IOK_OK(iok_msg_append(m, "hello\x01 world", 12));
	IOK_OK(iok_request(req, m, &token, 0));
	assert_true(tu_wait_stat(rep, "stat:rx-msgs", 1, WAIT_MS));

	a = ask(path, "stats");
	char want[128];
	snprintf(want, sizeof(want), "socket=%d pattern=req0", iok_socket_id(req));
	expect_in(a, want);
	expect_in(a, "inflight=1 ");
	expect_in(a, "pattern=rep0");
	expect_in(a, "tx-msgs=1");
	free(a);

	a = ask(path, "inflight");
	expect_in(a, "pattern=req0");
	expect_in(a, url);
	expect_in(a, "bytes=\"hello\\x01 world\"");
	expect_in(a, "age_ms=");
	expect_in(a, "total 1\n");
	free(a);

	a = ask(path, "peers");
	expect_in(a, "dialer=");
	expect_in(a, "state=connected");
	/* The dialer's upstream, with its own counters. */
	char up_line[300];
	snprintf(
	    up_line, sizeof(up_line), "  upstream=%s state=live weight=1 ", url + strlen("ipc://"));
	expect_in(a, up_line);
	expect_in(a, " connects=1 ");
	expect_in(a, "listener=");
	expect_in(a, "state=listening");
	expect_in(a, "inflight=1");
	free(a);

	/* Answered: nothing in flight any more. */
	IOK_OK(iok_cancel(req, token));
	a = ask(path, "help");
	expect_in(a, "inflight");
	free(a);

	IOK_OK(iok_close(req));
	IOK_OK(iok_close(rep));
	IOK_OK(iok_debug_close());
	assert_int_equal(access(path, F_OK), -1); /* removed */
}

/* ------------------------------------------------------------- stack */

static int         wake_fds[2];
static const char *stack_path;
static char       *stack_answer;

static int both_answered;

/* What a language runtime's dumper (iok_debug_stack_pipe) writes. */
#define RUNTIME_DUMP "runtime dump of every thread\n"
static int runtime_fd;

static void
runtime_dumper(int sig)
{
	(void) sig;
	ssize_t n = write(runtime_fd, RUNTIME_DUMP, sizeof(RUNTIME_DUMP) - 1);
	(void) n;
}

/* Count the answers ("\n.\n" ends each) that name the main thread's
 * stack, reading until n answers came; -1 if one lacks the runtime's
 * part. */
static int
stack_answers(int fd, int n)
{
	char  *all  = malloc(1), *p;
	size_t len  = 0;
	int    ends = 0, good = 0, runtime = 0;
	assert_non_null(all);
	all[0] = '\0';
	while (ends < n) {
		char  *a = read_answer(fd, 0);
		size_t k = strlen(a);
		if (k == 0) {
			free(a);
			break; /* EOF */
		}
		all = realloc(all, len + k + 1);
		assert_non_null(all);
		memcpy(all + len, a, k + 1);
		len += k;
		free(a);
		for (ends = 0, p = all; (p = strstr(p, "\n.\n")) != NULL; p += 3) {
			ends++;
		}
	}
	for (p = all; (p = strstr(p, "C stack of the main thread")) != NULL; p++) {
		good++;
	}
	for (p = all; (p = strstr(p, RUNTIME_DUMP)) != NULL; p++) {
		runtime++;
	}
	free(all);
	return runtime == good ? good : -1; /* each with the runtime's part too */
}

/* One client asks twice in one write, another once at the same moment:
 * the first's second request must not empty the answer the second is
 * still owed (true if all three answers carry the stack). */
static int
stack_twice_and_once(void)
{
	int a = connect_to(stack_path), b = connect_to(stack_path), ok;
	assert_int_equal(write(a, "stack\nstack\n", 12), 12);
	assert_int_equal(write(b, "stack\n", 6), 6);
	ok = stack_answers(b, 1) == 1 && stack_answers(a, 2) == 2;
	close(a);
	close(b);
	return ok;
}

static void *
ask_stack(void *arg)
{
	uint64_t end = tu_now_ms() + WAIT_MS;
	(void) arg;
	/* The main thread may not be in read(2) yet: ask until the stack
	 * shows it there (each answer is a real one). */
	for (;;) {
		stack_answer = ask(stack_path, "stack");
		if (strstr(stack_answer, "iok_test_blocked_in_read") != NULL || tu_now_ms() > end) {
			break;
		}
		free(stack_answer);
	}
	if (strstr(stack_answer, "iok_test_blocked_in_read") != NULL) {
		both_answered = stack_twice_and_once();
	}
	/* Release the main thread. */
	assert_int_equal(write(wake_fds[1], "x", 1), 1);
	return NULL;
}

/* Exported (the test links with -rdynamic) so the backtrace names it. */
__attribute__((noinline)) int
iok_test_blocked_in_read(int fd)
{
	char    c;
	ssize_t n;
	do {
		n = read(fd, &c, 1);
	} while (n < 0 && errno == EINTR);
	return (int) n;
}

static void
test_stack_of_blocked_main(void **state)
{
	pthread_t th;
	(void) state;
#if defined(__SANITIZE_THREAD__)
#define IOK_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define IOK_TSAN 1
#endif
#endif
#ifdef IOK_TSAN
	/* TSan defers a signal that arrives in read(2) until the call
	 * returns, and SA_RESTART puts the thread straight back in: the
	 * handler never runs while the thread stays blocked. */
	skip();
#endif
	/* A runtime's dumper, as the Python binding registers faulthandler:
	 * its part comes before the C stack in every answer. */
	struct sigaction sa;
	int              sig;
	IOK_OK(iok_debug_stack_pipe(&sig, &runtime_fd));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = runtime_dumper;
	sa.sa_flags   = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(sig, &sa, NULL), 0);
	stack_path = tmp_path("st");
	IOK_OK(iok_debug_listen(stack_path));
	assert_int_equal(pipe(wake_fds), 0);
	assert_int_equal(pthread_create(&th, NULL, ask_stack, NULL), 0);
	/* This thread is the process's main thread: it blocks here until the
	 * helper has its answer. */
	assert_int_equal(iok_test_blocked_in_read(wake_fds[0]), 1);
	pthread_join(th, NULL);
	expect_in(stack_answer, "C stack of the main thread");
	expect_in(stack_answer, "iok_test_blocked_in_read");
	expect_in(stack_answer, RUNTIME_DUMP);
	assert_true(strstr(stack_answer, RUNTIME_DUMP) <
	            strstr(stack_answer, "C stack of the main thread"));
	assert_null(strstr(stack_answer, "-- end of stack --"));
	assert_null(strstr(stack_answer, "error:"));
	assert_true(both_answered);
	free(stack_answer);
	close(wake_fds[0]);
	close(wake_fds[1]);
	IOK_OK(iok_debug_close());
}

/* ------------------------------------------------------- hostile input */

static void
expect_error_and_eof(const char *path, const void *data, size_t len, const char *what)
{
	int   fd = connect_to(path);
	char *a;
	/* The endpoint may close before reading everything: ignore EPIPE. */
	size_t off = 0;
	while (off < len) {
		ssize_t k = send(fd, (const char *) data + off, len - off, MSG_NOSIGNAL);
		if (k <= 0) {
			break;
		}
		off += (size_t) k;
	}
	a = read_answer(fd, 1);
	if (strncmp(a, "error: ", 7) != 0 || strstr(a, what) == NULL) {
		fail_msg("expected an error about %s, got '%s'", what, a);
	}
	expect_in(a, "\n.\n");
	free(a);
	close(fd);
}

static void
test_hostile_input(void **state)
{
	char *path = tmp_path("hi");
	char  big[100000];
	char *a;
	(void) state;
	IOK_OK(iok_debug_listen(path));

	expect_error_and_eof(path, "\x01\x02\xff\n", 4, "garbage");
	expect_error_and_eof(path, "stats\x00\n", 7, "garbage");
	expect_error_and_eof(path, "reboot\n", 7, "unknown command");
	memset(big, 'a', sizeof(big));
	expect_error_and_eof(path, big, 257, "too long");
	expect_error_and_eof(path, big, sizeof(big), "too long");
	/* A line of exactly the limit is still a line (an unknown one). */
	big[256] = '\n';
	expect_error_and_eof(path, big, 257, "unknown command");
	/* Truncated: a command without its newline, then EOF: no answer. */
	{
		int fd = connect_to(path);
		assert_int_equal(write(fd, "stats", 5), 5);
		shutdown(fd, SHUT_WR);
		a = read_answer(fd, 1);
		assert_string_equal(a, "");
		free(a);
		close(fd);
	}
	/* Several commands in one write are answered in order. */
	{
		int fd = connect_to(path);
		assert_int_equal(write(fd, "help\r\nhelp\n", 11), 11);
		shutdown(fd, SHUT_WR);
		a            = read_answer(fd, 1);
		char *second = strstr(a, "\n.\ncommands:");
		assert_true(strncmp(a, "commands:", 9) == 0);
		assert_non_null(second);
		assert_non_null(strstr(second + 3, "\n.\n"));
		free(a);
		close(fd);
	}
	/* Still serving. */
	a = ask(path, "stats");
	assert_null(strstr(a, "error"));
	free(a);
	IOK_OK(iok_debug_close());
}

/* --------------------------------------------------------- path rules */

static int
bound_unix(const char *path, int do_listen)
{
	struct sockaddr_un sa;
	int                fd = socket(AF_UNIX, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, path);
	assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
	if (do_listen) {
		assert_int_equal(listen(fd, 1), 0);
	}
	return fd;
}

static void
test_path_rules(void **state)
{
	char       *path = tmp_path("pr");
	FILE       *f;
	struct stat st;
	int         fd;
	char       *a;
	(void) state;

	assert_int_equal(iok_debug_listen(NULL), IOK_EINVAL);
	assert_int_equal(iok_debug_listen(""), IOK_EINVAL);

	/* A regular file is never replaced. */
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("keep me", f);
	fclose(f);
	assert_int_equal(iok_debug_listen(path), IOK_EADDRINUSE);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	unlink(path);

	/* A live socket (someone listens) is not taken. */
	fd = bound_unix(path, 1);
	assert_int_equal(iok_debug_listen(path), IOK_EADDRINUSE);
	close(fd);

	/* Now it is stale (nobody listens): ours to replace. */
	IOK_OK(iok_debug_listen(path));
	a = ask(path, "help");
	expect_in(a, "commands:");
	free(a);
	IOK_OK(iok_debug_close());
	IOK_OK(iok_debug_close()); /* idempotent */
}

/* How many of this process's threads are called name. */
static int
threads_named(const char *name)
{
	DIR           *d = opendir("/proc/self/task");
	struct dirent *e;
	int            n = 0;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		char  path[300], comm[64] = "";
		FILE *f;
		if (e->d_name[0] == '.') {
			continue;
		}
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		if ((f = fopen(path, "r")) == NULL) {
			continue; /* the thread just exited */
		}
		if (fgets(comm, sizeof(comm), f) != NULL) {
			comm[strcspn(comm, "\n")] = '\0';
			n += strcmp(comm, name) == 0;
		}
		fclose(f);
	}
	closedir(d);
	return n;
}

static void
test_kernel_thread_named(void **state)
{
	iok_socket s;
	(void) state;
	iok_fini(); /* the next socket starts a kernel thread afresh */
	assert_int_equal(threads_named("iok-kernel"), 0);
	assert_int_equal(iok_socket_open(&s, "pair"), 0);
	assert_int_equal(threads_named("iok-kernel"), 1);
	assert_int_equal(iok_close(s), 0);
	iok_fini(); /* joins the kernel thread: the name goes with it */
	assert_int_equal(threads_named("iok-kernel"), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_stats_peers_inflight, teardown_endpoint),
		cmocka_unit_test_teardown(test_stack_of_blocked_main, teardown_endpoint),
		cmocka_unit_test_teardown(test_hostile_input, teardown_endpoint),
		cmocka_unit_test_teardown(test_path_rules, teardown_endpoint),
		cmocka_unit_test(test_kernel_thread_named),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
