/*
 * dbgstack.c - the main thread's stack, on demand, while it computes or
 * waits in a system call.  The kernel thread sends a dedicated real-time
 * signal to the main thread; the handler there writes
 * backtrace_symbols_fd() into a pipe that the kernel thread reads (see
 * debug.c).  Only async-signal-safe calls run in the handler:
 * backtrace() is called once at setup so its lazy loading of the unwinder
 * (which allocates) is done before any signal.
 *
 * A binding registers its own dumper for the same signal writing into
 * the same pipe, chained in front of ours (Python: faulthandler.register
 * with chain=True reads every thread's traceback without the GIL, then
 * calls the previous handler): its output comes first, ours last, ending
 * with IK_STACK_END.  That is why the handler is installed exactly once,
 * before iok_debug_stack_pipe() hands the pipe out, and never again.
 */
#define _GNU_SOURCE /* pipe2, dup3, F_SETPIPE_SZ */
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "iok.h"
#include "debug.h"

#define FRAMES_MAX 128

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int            setup_rv;
static int            rfd = -1, wfd = -1;
static int            signo;

static void
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR) {
			continue;
		}
		if (k <= 0) {
			return; /* pipe full (no reader): lose the rest, never block */
		}
		p += k;
		n -= (size_t) k;
	}
}

static void
on_signal(int sig, siginfo_t *si, void *uc)
{
	static const char hdr[] = "C stack of the main thread (most recent call first):\n";
	void             *frames[FRAMES_MAX];
	int               saved = errno;
	int               n;
	(void) sig;
	(void) si;
	(void) uc;
	n = backtrace(frames, FRAMES_MAX);
	write_all(wfd, hdr, sizeof(hdr) - 1);
	/* Frame 0 is this handler: start at the interrupted code's frames. */
	if (n > 1) {
		backtrace_symbols_fd(frames + 1, n - 1, wfd);
	}
	write_all(wfd, IK_STACK_END, sizeof(IK_STACK_END) - 1);
	errno = saved;
}

static int
make_pipe(int *r, int *w)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
		return IOK_ENOFILES;
	}
	/* Room for deep stacks of many Python threads while the kernel
	 * reads; failing to grow it only means a shorter dump. */
	(void) fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
	*r = fds[0];
	*w = fds[1];
	return 0;
}

/* A forked child gets its own pipe on the same descriptor numbers: a
 * binding registered the write end's number, and the parent's kernel must
 * not read the child's stacks. */
static void
atfork_child(void)
{
	int r, w;
	if (rfd < 0 || make_pipe(&r, &w) != 0) {
		return;
	}
	(void) dup3(r, rfd, O_CLOEXEC);
	(void) dup3(w, wfd, O_CLOEXEC);
	(void) fcntl(rfd, F_SETFL, O_NONBLOCK);
	(void) fcntl(wfd, F_SETFL, O_NONBLOCK);
	close(r);
	close(w);
}

static void
setup_once(void)
{
	struct sigaction sa;
	void            *warm[4];
	(void) backtrace(warm, 4);
	if ((setup_rv = make_pipe(&rfd, &wfd)) != 0) {
		return;
	}
	/* Far from the low real-time signals that threading libraries and
	 * profilers take. */
	signo = SIGRTMAX - 7;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_signal;
	/* SA_RESTART: the interrupted system call (a blocking read in the
	 * application) goes on as if nothing happened. */
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(signo, &sa, NULL) != 0) {
		setup_rv = IOK_EINTERNAL;
		return;
	}
	pthread_atfork(NULL, NULL, atfork_child);
}

int
ik_stack_setup(void)
{
	pthread_once(&once, setup_once);
	return setup_rv;
}

int
ik_stack_read_fd(void)
{
	return rfd;
}

int
ik_stack_write_fd(void)
{
	return wfd;
}

int
ik_stack_signal(void)
{
	return signo;
}

int
ik_stack_request(void)
{
	char  drop[4096];
	pid_t pid = getpid();
	while (read(rfd, drop, sizeof(drop)) > 0) {
		/* the end of an answer that came after its deadline */
	}
	/* The main thread's id is the process id. */
	if (syscall(SYS_tgkill, pid, pid, signo) != 0) {
		return IOK_ESTATE;
	}
	return 0;
}

int
iok_debug_stack_pipe(int *sig, int *fd)
{
	int rv;
	if (sig == NULL || fd == NULL) {
		return IOK_EINVAL;
	}
	if ((rv = ik_stack_setup()) != 0) {
		return rv;
	}
	*sig = signo;
	*fd  = wfd;
	return 0;
}
