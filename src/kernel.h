/*
 * kernel.h - the kernel thread: one libuv loop per process, the command
 * queue that is the only way in from application threads, deferred tasks
 * that run at the end of each loop iteration, timers, and the fork barrier.
 */
#ifndef IK_KERNEL_H
#define IK_KERNEL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "list.h"

/* A command: work an application thread asks the kernel thread to do.
 * Embedded in the caller's (or an object's) memory; it must stay valid
 * until it has run (async) or completed (sync). */
typedef struct ik_cmd ik_cmd;
typedef void (*ik_cmd_fn)(ik_cmd *);
struct ik_cmd {
	ik_cmd   *next;
	ik_cmd_fn fn;
	int       rv;
	int       done;   /* sync: set by ik_cmd_done under the kernel lock */
	int       queued; /* in the command list (posting twice is a no-op) */
};

/* ik_kernel_ensure starts the kernel thread if it is not running in this
 * process (first use, after iok_fini, or in a forked child).
 * 0 or IOK_ENOMEM. Application threads. */
int ik_kernel_ensure(void);

/* ik_cmd_post queues c to run on the kernel thread; returns at once.  A
 * command already queued is not queued again: the result says whether
 * this call queued it (1) or it was already waiting (0).  Application
 * threads. */
int ik_cmd_post(ik_cmd *c);

/* ik_cmd_call queues c and waits until the kernel calls ik_cmd_done(c);
 * returns c->rv.  Application threads (never the kernel thread). */
int ik_cmd_call(ik_cmd *c, ik_cmd_fn fn);

/* ik_cmd_done completes a command made with ik_cmd_call.  May be called
 * later than the command function returns (e.g. after a DNS lookup).
 * Kernel thread. */
void ik_cmd_done(ik_cmd *c, int rv);

/* The loop (kernel thread only). */
uv_loop_t *ik_loop(void);

/* ik_on_kernel says whether the caller is the kernel thread. */
int ik_on_kernel(void);

/* A deferred task runs once at the end of the current loop iteration, after
 * all I/O callbacks: that is where frames parsed from many reads become one
 * batch of deliveries, and many small writes one writev.  Kernel thread. */
typedef struct ik_task {
	ik_node node;
	void (*fn)(struct ik_task *);
} ik_task;
void ik_task_init(ik_task *t, void (*fn)(ik_task *));
void ik_task_schedule(ik_task *t); /* no-op if already scheduled */
/* ik_task_schedule_next runs t early in the NEXT loop iteration, after
 * write completions: long work (a burst of sends) yields to I/O this way. */
void ik_task_schedule_next(ik_task *t);
void ik_task_cancel(ik_task *t);

/* ik_clock_batch: the kernel opens (true) and closes (false) the span in
 * which ik_clock_ns (pattern.h) keeps its first reading: one task or one
 * command.  Kernel thread. */
void ik_clock_batch(bool open);
/* ik_kernel_spin_arm: a thread that answers (its socket can send) was just
 * woken with work; the loop may spin a moment for its answer instead of
 * sleeping (kernel.c, "spin").  Kernel thread. */
void ik_kernel_spin_arm(void);

/* What the loop's spins found, and how commands reached it (the debug
 * endpoint's "kernel" line). */
typedef struct ik_spin_counts {
	uint64_t spins, caught, ended_by_io, timed_out;
	uint64_t wakeups;      /* commands that woke the loop through its eventfd */
	uint64_t posted_awake; /* commands queued while it ran, taken before its poll */
	long     spin_us;      /* the budget, IOK_KERNEL_SPIN_US */
} ik_spin_counts;
void ik_kernel_spin_counts(ik_spin_counts *c); /* kernel thread */

/* ik_recv_spin_ns: how long a receive that answers spins before it
 * sleeps (IOK_RECV_SPIN_US, read when the kernel starts; sockrecv.c).
 * Any thread. */
long ik_recv_spin_ns(void);

/* Process-wide fork epoch: bumped in every forked child. */
uint32_t ik_fork_epoch(void);

/* ik_kernel_stop closes everything and joins the thread (iok_fini).
 * Application threads. */
void ik_kernel_stop(void);

/* Hooks other kernel files provide (called on the kernel thread). */
void ik_sockets_fork_child_kernel(void); /* close inherited connections */
void ik_sockets_close_all(void);         /* at stop */
int  ik_sockets_live(void);              /* sockets not yet torn down */
void ik_resolver_fork_child(void);
void ik_resolver_shutdown(void);

/* Hooks for the fork handlers (called with the kernel parked). */
void ik_sockets_fork_prepare(void); /* lock every socket's queues */
void ik_sockets_fork_parent(void);
void ik_sockets_fork_child(void); /* reset app-side state, new eventfds */

#endif
