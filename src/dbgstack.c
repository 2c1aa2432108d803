/*
 * dbgstack.c - the main thread's stack, on demand, while it computes or
 * waits in a system call.  The kernel thread sends a dedicated real-time
 * signal to the main thread; the handler there writes
 * backtrace_symbols_fd() into a pipe that the kernel thread reads and
 * hands to whoever waits (the debug endpoint's "stack" command, debug.c).
 * Only async-signal-safe calls run in the handler:
 * backtrace() is called once at setup so its lazy loading of the unwinder
 * (which allocates) is done before any signal.
 *
 * A binding registers its own dumper writing into the same pipe, for a
 * second signal that our handler raises before it writes the C stack
 * (Python: faulthandler.register reads every thread's traceback without
 * the GIL): its output comes first, ours last, ending with IK_STACK_END.
 * The binding's dumper once chained to ours on one signal, as
 * faulthandler's chain=True does: that swaps the handlers around each
 * call, and a request arriving in between got the C stack alone.  With
 * two signals nobody's handler ever changes.  Ours is installed exactly
 * once, before iok_debug_stack_pipe() hands the pipe out; the binding's
 * signal is ignored until the binding takes it.
 */
#define _GNU_SOURCE /* pipe2, dup3, F_SETPIPE_SZ */
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "iok.h"
#include "debug.h"
#include "kernel.h"

#define FRAMES_MAX 128
#define STACK_TIMEOUT_MS 2000

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int            setup_rv;
static int            rfd = -1, wfd = -1;
static int            signo;         /* ours: the kernel sends it */
static int            runtime_signo; /* a binding's dumper's: ours raises it */

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
	/* The binding's dump first (delivered before raise returns; ignored
	 * if no binding took the signal). */
	raise(runtime_signo);
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
	signo         = SIGRTMAX - 7;
	runtime_signo = SIGRTMAX - 6;
	/* Its default action would end the process when ours raises it: ignore
	 * it until a runtime takes it (a handler already there is left). */
	if (sigaction(runtime_signo, NULL, &sa) != 0) {
		setup_rv = IOK_EINTERNAL;
		return;
	}
	if (!(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_DFL) {
		sa.sa_handler = SIG_IGN;
		if (sigaction(runtime_signo, &sa, NULL) != 0) {
			setup_rv = IOK_EINTERNAL;
			return;
		}
	}
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
ik_stack_write_fd(void)
{
	return wfd;
}

int
ik_stack_signal(void)
{
	return signo;
}

/* Drops stale bytes from the pipe and signals the process's main thread:
 * 0, or IOK_ESTATE if the main thread is gone.  Kernel thread. */
static int
stack_request(void)
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
	*sig = runtime_signo;
	*fd  = wfd;
	return 0;
}

/* ------------------------------------------- the reader (kernel thread) */

/* One signal answers everyone waiting. */
static struct {
	bool       init; /* spoll and stimer */
	bool       busy; /* a signal was sent, its answer is being read */
	uv_poll_t  spoll;
	uv_timer_t stimer;
	ik_buf     sout;
	ik_list    waiters;
} R;

/* Answer everyone waiting with what was read (and note, if any).  The
 * waiters and the text are taken first: an answered client may ask for
 * the stack again at once, which starts a new round. */
static void
stack_finish(const char *note)
{
	ik_list  answering;
	ik_buf   text = R.sout;
	ik_node *n;
	uv_poll_stop(&R.spoll);
	uv_timer_stop(&R.stimer);
	R.busy = false;
	R.sout = (ik_buf) { 0 };
	if (note != NULL) {
		(void) ik_buf_append(&text, note, strlen(note));
	}
	ik_list_init(&answering);
	while ((n = ik_list_first(&R.waiters)) != NULL) {
		ik_list_remove(n);
		ik_list_append(&answering, n);
	}
	while ((n = ik_list_first(&answering)) != NULL) {
		ik_stack_waiter *w = ik_container_of(n, ik_stack_waiter, node);
		ik_list_remove(n);
		w->done(w, &text);
	}
	ik_buf_fini(&text);
}

static void
stack_poll_cb(uv_poll_t *h, int status, int events)
{
	char    tmp[16384];
	ssize_t n;
	(void) h;
	(void) events;
	if (status < 0) {
		stack_finish("error: reading the stack pipe failed\n");
		return;
	}
	while ((n = read(rfd, tmp, sizeof(tmp))) > 0) {
		(void) ik_buf_append(&R.sout, tmp, (size_t) n);
	}
	/* Done once the C handler, which runs last, wrote its end line. */
	if (R.sout.len >= sizeof(IK_STACK_END) - 1 &&
	    memcmp(R.sout.data + R.sout.len - (sizeof(IK_STACK_END) - 1), IK_STACK_END,
	        sizeof(IK_STACK_END) - 1) == 0) {
		R.sout.len -= sizeof(IK_STACK_END) - 1;
		stack_finish(NULL);
	}
}

static void
stack_timer_cb(uv_timer_t *t)
{
	(void) t;
	stack_finish("error: the main thread did not answer in time (signal blocked?)\n");
}

int
ik_stack_wait(ik_stack_waiter *w, ik_buf *err)
{
	int rv;
	if ((rv = ik_stack_setup()) != 0) {
		ik_buf_printf(err, "error: %s\n", iok_strerror(rv));
		return rv;
	}
	if (R.waiters.head.next == NULL) {
		ik_list_init(&R.waiters);
	}
	if (!R.init) {
		if (uv_poll_init(ik_loop(), &R.spoll, rfd) != 0) {
			ik_buf_printf(err, "error: cannot poll the stack pipe\n");
			return IOK_EINTERNAL;
		}
		uv_timer_init(ik_loop(), &R.stimer);
		R.init = true;
	}
	if (!R.busy) {
		R.sout.len = 0;
		if ((rv = stack_request()) != 0) {
			ik_buf_printf(err, "error: the main thread is gone\n");
			return rv;
		}
		R.busy = true;
		uv_poll_start(&R.spoll, UV_READABLE, stack_poll_cb);
		uv_timer_start(&R.stimer, stack_timer_cb, STACK_TIMEOUT_MS, 0);
	}
	ik_list_append(&R.waiters, &w->node);
	return 0;
}

void
ik_stack_cancel(ik_stack_waiter *w)
{
	if (ik_node_linked(&w->node)) {
		ik_list_remove(&w->node);
	}
}

void
ik_stack_reader_close(void)
{
	if (R.init) {
		uv_close((uv_handle_t *) &R.spoll, NULL);
		uv_close((uv_handle_t *) &R.stimer, NULL);
		R.init = false;
		R.busy = false;
	}
	ik_buf_fini(&R.sout);
}
