/*
 * debug.h - the debug endpoint (debug.c) and the main thread's stack on
 * demand (dbgstack.c).
 */
#ifndef IK_DEBUG_H
#define IK_DEBUG_H

/* dbgstack.c.  The last line the signal handler writes after the stack. */
#define IK_STACK_END "-- end of stack --\n"

/* ik_stack_setup makes the pipe and installs the handler of the stack
 * signal, once per process (later calls return the first result).
 * 0 or IOK_ENOFILES / IOK_EINTERNAL.  Any thread. */
int ik_stack_setup(void);
/* The pipe's ends and the signal (after a successful setup). */
int ik_stack_read_fd(void);
int ik_stack_write_fd(void);
int ik_stack_signal(void);
/* ik_stack_request drops stale bytes from the pipe and signals the
 * process's main thread.  0, or IOK_ESTATE if the main thread is gone.
 * Kernel thread. */
int ik_stack_request(void);

/* debug.c hooks for the kernel (kernel thread). */
void ik_debug_kernel_start(void); /* IOK_DEBUG=<path> in the environment */
void ik_debug_fork_child(void);   /* forget the parent's server, quietly */
void ik_debug_shutdown(void);     /* iok_fini: close and unlink */

/* export.c: stop the metrics listener and the statsd push (called by the
 * two hooks above: a forked child does not serve its parent's port). */
void ik_export_shutdown(void);

#endif
