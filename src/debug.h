/*
 * debug.h - the debug endpoint (debug.c), its commands (debug_cmd.c) and
 * the main thread's stack on demand (dbgstack.c).
 */
#ifndef IK_DEBUG_H
#define IK_DEBUG_H

#include "buf.h"
#include "list.h"

/* dbgstack.c.  The last line the signal handler writes after the stack. */
#define IK_STACK_END "-- end of stack --\n"

/* ik_stack_setup makes the pipe and installs the handler of the stack
 * signal, once per process (later calls return the first result).
 * 0 or IOK_ENOFILES / IOK_EINTERNAL.  Any thread. */
int ik_stack_setup(void);
/* The pipe's write end and the signal (after a successful setup). */
int ik_stack_write_fd(void);
int ik_stack_signal(void);

/* One who waits for the main thread's stack (a debug connection).  done
 * gets the text read (it may end with an "error: ..." line) once w no
 * longer waits. */
typedef struct ik_stack_waiter ik_stack_waiter;
struct ik_stack_waiter {
	ik_node node; /* initialised by the owner; linked while waiting */
	void (*done)(ik_stack_waiter *w, ik_buf *text);
};
/* ik_stack_wait makes w wait for the stack, signalling the main thread
 * unless a signal is already being answered (one answers all waiters).
 * 0, or an IOK_E* code with an "error: ..." line appended to err.  Kernel
 * thread, like the rest of the reader. */
int ik_stack_wait(ik_stack_waiter *w, ik_buf *err);
/* ik_stack_cancel: w waits no more (its connection closed). */
void ik_stack_cancel(ik_stack_waiter *w);
/* ik_stack_reader_close closes the reader's handles (endpoint stopped). */
void ik_stack_reader_close(void);

/* debug_cmd.c: the answer to command what ("stats", "peers", "inflight",
 * "markers") appended to b; 0, or IOK_EINVAL for another command.  Kernel
 * thread. */
int ik_debug_cmd(const char *what, ik_buf *b);

/* debug.c hooks for the kernel (kernel thread). */
void ik_debug_kernel_start(void); /* IOK_DEBUG=<path> in the environment */
void ik_debug_fork_child(void);   /* forget the parent's server, quietly */
void ik_debug_shutdown(void);     /* iok_fini: close and unlink */

/* export.c: stop the metrics listener and the statsd push (called by the
 * two hooks above: a forked child does not serve its parent's port). */
void ik_export_shutdown(void);

#endif
