/*
 * kernel.c - the kernel thread (see kernel.h).
 *
 * Locking: K.mu guards the command list and the thread's park/stop
 * requests; start_mu serialises starting, stopping and forking.  Lock
 * order everywhere: handle table -> socket -> K.mu.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "iok.h"
#include "debug.h"
#include "event.h"
#include "kernel.h"
#include "bigpool.h"
#include "msg.h"

static struct {
	pthread_mutex_t mu;
	pthread_cond_t  cv; /* command completion, park and unpark */
	ik_cmd         *head, *tail;
	atomic_int      running; /* kernel thread alive in this process */
	int             park_req, parked, stop_req;
	int             loop_ready; /* loop and its handles initialised */
	int             forked;     /* loop inherited from a parent process */
	uv_loop_t       loop;
	uv_async_t      async;    /* commands waiting */
	uv_check_t      check;    /* runs deferred tasks after the I/O phase */
	uv_idle_t       idle;     /* keeps the poll from blocking while tasks wait */
	uv_prepare_t    prepare;  /* before the poll: commands, the spin (prepare_cb) */
	uv_timer_t      big_trim; /* gives idle big blocks back (bigpool.h) */
	atomic_int      big_trim_on;
	atomic_int      awake;        /* the loop will look at commands before it sleeps */
	int             spinning;     /* under mu: posters need not wake the loop */
	atomic_int      spun_into;    /* a command came while spinning */
	long            spin_ns;      /* IOK_KERNEL_SPIN_US, 0: never spin */
	atomic_long     recv_spin_ns; /* IOK_RECV_SPIN_US (ik_recv_spin_ns) */
	int             spin_armed;   /* an answering thread was just woken */
	ik_backoff      spin_backoff; /* after spins that found nothing */
	ik_spin_counts  spins;
	pthread_t       thread;
	ik_list         tasks;
	ik_list         next_tasks; /* for the next iteration's idle phase */
	uint32_t        epoch;
} K = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.cv = PTHREAD_COND_INITIALIZER,
};

static pthread_mutex_t   start_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t    once     = PTHREAD_ONCE_INIT;
static _Thread_local int on_kernel;

uv_loop_t *
ik_loop(void)
{
	return &K.loop;
}

int
ik_on_kernel(void)
{
	return on_kernel;
}

uint32_t
ik_fork_epoch(void)
{
	return K.epoch;
}

/* ---------------------------------------------------------------- tasks */

/* One task, with the clock read at most once (ik_clock_batch). */
static void
run_task(ik_task *t)
{
	ik_clock_batch(true);
	t->fn(t);
	ik_clock_batch(false);
}

/* The idle phase comes after the pending phase (write completions) of an
 * iteration: tasks that yield to I/O run here. */
static void
idle_cb(uv_idle_t *h)
{
	ik_node *n;
	ik_list  run;
	(void) h;
	ik_list_init(&run);
	while ((n = ik_list_first(&K.next_tasks)) != NULL) {
		ik_list_remove(n);
		ik_list_append(&run, n);
	}
	while ((n = ik_list_first(&run)) != NULL) {
		ik_list_remove(n);
		run_task(ik_container_of(n, ik_task, node));
	}
}

void
ik_kernel_spin_arm(void)
{
	K.spin_armed = 1;
}

void
ik_task_init(ik_task *t, void (*fn)(ik_task *))
{
	ik_node_init(&t->node);
	t->fn = fn;
}

void
ik_task_schedule(ik_task *t)
{
	if (!ik_node_linked(&t->node)) {
		ik_list_append(&K.tasks, &t->node);
		/* Tasks scheduled from timers run before the poll phase: an active
		 * idle handle makes that poll return at once. */
		uv_idle_start(&K.idle, idle_cb);
	}
}

void
ik_task_schedule_next(ik_task *t)
{
	if (!ik_node_linked(&t->node)) {
		ik_list_append(&K.next_tasks, &t->node);
		uv_idle_start(&K.idle, idle_cb);
	}
}

void
ik_task_cancel(ik_task *t)
{
	if (ik_node_linked(&t->node)) {
		ik_list_remove(&t->node);
	}
}

/* Run the tasks of this iteration, and those they schedule; the idle
 * handle stays on only for the next iteration's. */
static void
run_tasks(void)
{
	ik_node *n;
	while ((n = ik_list_first(&K.tasks)) != NULL) {
		ik_list_remove(n);
		run_task(ik_container_of(n, ik_task, node));
	}
	if (ik_list_empty(&K.next_tasks)) {
		uv_idle_stop(&K.idle);
	}
}

static void
check_cb(uv_check_t *h)
{
	(void) h;
	/* Awake until prepare_cb says otherwise: commands posted while the
	 * tasks run skip the eventfd (see prepare_cb). */
	atomic_store_explicit(&K.awake, 1, memory_order_relaxed);
	run_tasks();
}

/* ------------------------------------------------------------- commands */

static void
run_commands(void)
{
	ik_cmd *c, *next = NULL;
	int     stop;

	pthread_mutex_lock(&K.mu);
	c      = K.head;
	K.head = K.tail = NULL;
	stop            = K.park_req || K.stop_req;
	if (c != NULL) {
		/* The first command's turn below, in the same hold (usually
		 * the only command). */
		next      = c->next;
		c->queued = 0;
	}
	pthread_mutex_unlock(&K.mu);

	for (bool first = true; c != NULL; c = next, first = false) {
		/* Take the link before c may be posted again (which rewrites
		 * c->next) and before it runs (c may be gone after). */
		if (!first) {
			pthread_mutex_lock(&K.mu);
			next      = c->next;
			c->queued = 0; /* may be posted again while it runs */
			pthread_mutex_unlock(&K.mu);
		}
		ik_clock_batch(true);
		c->fn(c);
		ik_clock_batch(false);
	}
	if (stop) {
		uv_stop(&K.loop);
	}
}

static void
async_cb(uv_async_t *h)
{
	(void) h;
	atomic_store_explicit(&K.awake, 1, memory_order_relaxed);
	run_commands();
}

/* ----------------------------------------------------------------- spin */

/* A thread that was just handed a request usually answers within a few
 * microseconds; if the loop slept meanwhile, the answer would cost an
 * eventfd write and a wake-up of this thread, on a VM the biggest part of
 * an inproc round trip.  So when an answering socket's waiter was woken
 * (ik_kernel_spin_arm), the loop spins for up to spin_ns before polling:
 * commands posted meanwhile skip the eventfd (`spinning`, read under mu),
 * I/O readiness ends the spin, and spins that find nothing are skipped
 * for a doubling number of arms, so a loop whose callers do not answer
 * stops spinning. */

enum { SPIN_DEFAULT_US = 20, SPIN_BACKOFF_MAX = 64, SPIN_CHECK_EVERY = 32 };
enum { RECV_SPIN_DEFAULT_US = 50 }; /* sockrecv.c, recv_spin */

static bool
io_ready(void)
{
	struct pollfd pfd = { .fd = uv_backend_fd(&K.loop), .events = POLLIN };
	return poll(&pfd, 1, 0) > 0;
}

enum spin_end { SPIN_COMMAND, SPIN_IO, SPIN_TIME_UP };

static enum spin_end
spin_for_command(void)
{
	long start = ik_mono_ns();
	for (unsigned i = 1;; i++) {
		if (atomic_load_explicit(&K.spun_into, memory_order_acquire) != 0) {
			return SPIN_COMMAND;
		}
		if (i % SPIN_CHECK_EVERY == 0) {
			if (io_ready()) {
				return SPIN_IO;
			}
			if (ik_mono_ns() - start > K.spin_ns) {
				return SPIN_TIME_UP;
			}
		}
		ik_cpu_relax();
	}
}

static void
maybe_spin(void)
{
	if (K.spin_ns == 0 || !K.spin_armed || !ik_list_empty(&K.tasks) ||
	    !ik_list_empty(&K.next_tasks)) {
		return; /* tasks waiting: the poll will not block anyway */
	}
	K.spin_armed = 0;
	if (ik_backoff_pass(&K.spin_backoff)) {
		return;
	}
	pthread_mutex_lock(&K.mu);
	if (K.head != NULL || K.park_req || K.stop_req) {
		pthread_mutex_unlock(&K.mu);
		return;
	}
	K.spinning = 1;
	pthread_mutex_unlock(&K.mu);

	enum spin_end why = spin_for_command();

	pthread_mutex_lock(&K.mu);
	K.spinning = 0;
	atomic_store_explicit(&K.spun_into, 0, memory_order_relaxed);
	bool have = K.head != NULL; /* posted meanwhile, without a wake-up
	                             * (always so after SPIN_COMMAND) */
	pthread_mutex_unlock(&K.mu);
	K.spins.spins++;
	if (have) {
		K.spins.caught++;
	} else if (why == SPIN_IO) {
		K.spins.ended_by_io++;
	} else {
		K.spins.timed_out++;
	}
	/* prepare_cb runs what it caught */
	ik_backoff_note(&K.spin_backoff, have || why == SPIN_IO, SPIN_BACKOFF_MAX);
}

/* Will the next maybe_spin spin (armed, on, not skipped)? */
static bool
spin_due(void)
{
	return K.spin_armed && K.spin_ns > 0 && K.spin_backoff.skip == 0;
}

/* Are commands waiting?  If not, the loop is about to poll: from here on
 * a poster must wake it through the eventfd.  Both under mu, so a command
 * is either seen here or wakes the poll. */
static bool
commands_or_sleep(void)
{
	pthread_mutex_lock(&K.mu);
	bool have = K.head != NULL;
	if (!have) {
		atomic_store_explicit(&K.awake, 0, memory_order_relaxed);
	}
	pthread_mutex_unlock(&K.mu);
	return have;
}

/* The last thing before the poll.  Commands posted while the loop was
 * awake (its tasks running, its spin) did not write the eventfd, which
 * costs the poster a system call and the loop an epoll return and a read:
 * they run here, and so do the tasks they leave (the write of a request
 * just sent).  Left for the check phase, those would wait behind a poll
 * that cannot block (the idle handle is on) and then the poll proper: a
 * system call more on every round trip.
 *
 * Two things end the rounds early, keeping the poll's turn: a task that
 * woke an answering thread (the next iteration spins for its answer, after
 * a poll, because only that poll registers the descriptors commands
 * started, and the spin's I/O check sees registered ones alone), and
 * PREPARE_ROUNDS (threads that answer every delivery at once would keep
 * the loop here, away from timers and I/O).  Either way the loop stays
 * awake and the idle handle keeps the poll from blocking: what is left
 * runs in the next iteration. */
enum { PREPARE_ROUNDS = 4 };

static void
big_trim_cb(uv_timer_t *h)
{
	if (!ik_big_trim()) {
		uv_timer_stop(h);
		atomic_store_explicit(&K.big_trim_on, 0, memory_order_relaxed);
	}
}

/* Kept big blocks are watched by a timer while there are any; a block
 * kept while the loop sleeps unwatched wakes it (big_first_keep). */
static void
big_trim_watch(void)
{
	if (!atomic_load_explicit(&K.big_trim_on, memory_order_relaxed) && ik_big_kept_any()) {
		atomic_store_explicit(&K.big_trim_on, 1, memory_order_relaxed);
		uv_timer_start(&K.big_trim, big_trim_cb, IK_BIG_IDLE_MS, IK_BIG_IDLE_MS);
	}
}

/* Any thread, outside the pool's lock.  The kernel thread itself looks in
 * its next prepare phase. */
static void
big_first_keep(void)
{
	if (on_kernel || atomic_load_explicit(&K.big_trim_on, memory_order_relaxed)) {
		return;
	}
	pthread_mutex_lock(&K.mu);
	if (atomic_load_explicit(&K.running, memory_order_relaxed) && !K.stop_req) {
		uv_async_send(&K.async); /* under mu: the loop cannot be torn down meanwhile */
	}
	pthread_mutex_unlock(&K.mu);
}

static void
prepare_cb(uv_prepare_t *h)
{
	(void) h;
	big_trim_watch();
	maybe_spin();
	for (int round = 0;; round++) {
		run_tasks();
		if (spin_due()) {
			uv_idle_start(&K.idle, idle_cb);
			break;
		}
		if (!commands_or_sleep()) {
			break;
		}
		if (round == PREPARE_ROUNDS) {
			uv_idle_start(&K.idle, idle_cb);
			break;
		}
		run_commands();
	}
}

void
ik_kernel_spin_counts(ik_spin_counts *c)
{
	pthread_mutex_lock(&K.mu); /* posters count under it */
	*c = K.spins;
	pthread_mutex_unlock(&K.mu);
	c->spin_us = K.spin_ns / 1000;
}

/* A spin budget from the environment, in ns: name's microseconds, 0 to
 * 1 s; anything else keeps default_us (iok.h). */
static long
spin_setting_ns(const char *name, long default_us)
{
	const char *v = getenv(name);
	char       *end;
	long        us;
	if (v == NULL || *v == '\0') {
		return default_us * 1000L;
	}
	us = strtol(v, &end, 10);
	if (*end != '\0' || us < 0 || us > 1000000) {
		return default_us * 1000L;
	}
	return us * 1000L;
}

long
ik_recv_spin_ns(void)
{
	return atomic_load_explicit(&K.recv_spin_ns, memory_order_relaxed);
}

int
ik_cmd_post(ik_cmd *c)
{
	int wake = 0, queued = 0;
	if (ik_kernel_ensure() != 0) {
		return 0; /* cannot happen once a socket exists */
	}
	pthread_mutex_lock(&K.mu);
	if (!c->queued) {
		queued    = 1;
		c->queued = 1;
		c->next   = NULL;
		if (K.tail != NULL) {
			K.tail->next = c;
		} else {
			K.head = c;
			/* Only the empty -> non-empty transition wakes, and
			 * not a loop that is spinning for it. */
			if (K.spinning) {
				atomic_store_explicit(&K.spun_into, 1, memory_order_release);
			} else if (!atomic_load_explicit(&K.awake, memory_order_relaxed)) {
				wake = 1;
				K.spins.wakeups++;
			} else {
				K.spins.posted_awake++;
			}
		}
		K.tail = c;
	}
	pthread_mutex_unlock(&K.mu);
	if (wake) {
		uv_async_send(&K.async);
	}
	return queued;
}

int
ik_cmd_call(ik_cmd *c, ik_cmd_fn fn)
{
	int rv;
	if ((rv = ik_kernel_ensure()) != 0) {
		return rv;
	}
	c->fn     = fn;
	c->done   = 0;
	c->rv     = 0;
	c->queued = 0;
	(void) ik_cmd_post(c);
	pthread_mutex_lock(&K.mu);
	while (!c->done) {
		pthread_cond_wait(&K.cv, &K.mu);
	}
	rv = c->rv;
	pthread_mutex_unlock(&K.mu);
	return rv;
}

void
ik_cmd_done(ik_cmd *c, int rv)
{
	pthread_mutex_lock(&K.mu);
	c->rv   = rv;
	c->done = 1;
	pthread_cond_broadcast(&K.cv);
	pthread_mutex_unlock(&K.mu);
}

/* --------------------------------------------------------------- thread */

static void
close_walk_cb(uv_handle_t *h, void *arg)
{
	(void) arg;
	if (!uv_is_closing(h)) {
		uv_close(h, NULL);
	}
}

/* Runs after stop_req: sockets first (they flush and close connections),
 * then whatever handles remain. */
static void
kernel_teardown(void)
{
	ik_debug_shutdown();
	ik_sockets_close_all();
	/* Sockets finish closing asynchronously (linger, handle closes). */
	while (ik_sockets_live() > 0) {
		uv_run(&K.loop, UV_RUN_ONCE);
	}
	ik_resolver_shutdown();
	uv_walk(&K.loop, close_walk_cb, NULL);
	while (uv_run(&K.loop, UV_RUN_DEFAULT) != 0) {
	}
	uv_loop_close(&K.loop);
	K.loop_ready = 0;
}

static void *
kernel_main(void *arg)
{
	(void) arg;
	on_kernel = 1;
	/* So top -H, perf and gdb tell it from the application's threads
	 * (iok.h promises the name; at most 15 bytes). */
	(void) pthread_setname_np(pthread_self(), "iok-kernel");
	if (K.forked) {
		/* In a forked child: drop what belongs to the parent before
		 * anything else runs. */
		K.forked = 0;
		ik_resolver_fork_child();
		ik_sockets_fork_child_kernel();
		ik_debug_fork_child();
	}
	ik_debug_kernel_start();
	for (;;) {
		uv_run(&K.loop, UV_RUN_DEFAULT);
		pthread_mutex_lock(&K.mu);
		if (K.park_req) {
			/* Fork barrier: the loop is between iterations, so every
			 * kernel object is consistent when the process forks. */
			K.parked = 1;
			pthread_cond_broadcast(&K.cv);
			while (K.park_req) {
				pthread_cond_wait(&K.cv, &K.mu);
			}
			K.parked = 0;
			pthread_mutex_unlock(&K.mu);
			continue;
		}
		if (K.stop_req) {
			pthread_mutex_unlock(&K.mu);
			break;
		}
		pthread_mutex_unlock(&K.mu);
	}
	kernel_teardown();
	return NULL;
}

static void atfork_prepare(void);
static void atfork_parent(void);
static void atfork_child(void);

static void
at_exit(void)
{
	ik_kernel_stop();
}

static void
register_once(void)
{
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
	atexit(at_exit);
}

static int
loop_setup(void)
{
	if (uv_loop_init(&K.loop) != 0) {
		return IOK_ENOMEM;
	}
	uv_async_init(&K.loop, &K.async, async_cb);
	uv_check_init(&K.loop, &K.check);
	uv_check_start(&K.check, check_cb);
	uv_idle_init(&K.loop, &K.idle);
	K.spin_ns = spin_setting_ns("IOK_KERNEL_SPIN_US", SPIN_DEFAULT_US);
	atomic_store(&K.recv_spin_ns, spin_setting_ns("IOK_RECV_SPIN_US", RECV_SPIN_DEFAULT_US));
	K.spins        = (ik_spin_counts) { 0 };
	K.spin_armed   = 0;
	K.spin_backoff = (ik_backoff) { 0 };
	uv_prepare_init(&K.loop, &K.prepare);
	uv_prepare_start(&K.prepare, prepare_cb);
	uv_timer_init(&K.loop, &K.big_trim);
	uv_unref((uv_handle_t *) &K.big_trim);
	atomic_store_explicit(&K.big_trim_on, 0, memory_order_relaxed);
	ik_big_on_first_keep(big_first_keep);
	atomic_store_explicit(&K.awake, 0, memory_order_relaxed);
	/* Internal handles must not keep the loop "alive" for teardown. */
	uv_unref((uv_handle_t *) &K.check);
	uv_unref((uv_handle_t *) &K.idle);
	uv_unref((uv_handle_t *) &K.prepare);
	ik_list_init(&K.tasks);
	ik_list_init(&K.next_tasks);
	K.loop_ready = 1;
	return 0;
}

int
ik_kernel_ensure(void)
{
	int rv = 0;
	if (atomic_load_explicit(&K.running, memory_order_acquire)) {
		return 0;
	}
	pthread_once(&once, register_once);
	pthread_mutex_lock(&start_mu);
	if (!atomic_load_explicit(&K.running, memory_order_relaxed)) {
		if (!K.loop_ready) {
			rv = loop_setup();
		} else if (K.forked) {
			/* Before any thread can poke the loop: a fresh epoll set and
			 * async descriptor, not the parent's. */
			uv_loop_fork(&K.loop);
		}
		if (rv == 0) {
			sigset_t all, old;
			sigfillset(&all);
			/* The kernel thread takes no signals: they belong to the
			 * application (Ctrl+C must reach Python's main thread). */
			pthread_sigmask(SIG_SETMASK, &all, &old);
			K.stop_req = 0;
			K.park_req = 0;
			if (pthread_create(&K.thread, NULL, kernel_main, NULL) != 0) {
				rv = IOK_ENOMEM;
			} else {
				atomic_store_explicit(&K.running, 1, memory_order_release);
			}
			pthread_sigmask(SIG_SETMASK, &old, NULL);
		}
	}
	pthread_mutex_unlock(&start_mu);
	return rv;
}

void
ik_kernel_stop(void)
{
	pthread_mutex_lock(&start_mu);
	if (atomic_load_explicit(&K.running, memory_order_relaxed)) {
		pthread_mutex_lock(&K.mu);
		K.stop_req = 1;
		pthread_mutex_unlock(&K.mu);
		uv_async_send(&K.async);
		pthread_join(K.thread, NULL);
		K.head = K.tail = NULL;
		atomic_store_explicit(&K.running, 0, memory_order_release);
	}
	pthread_mutex_unlock(&start_mu);
}

/* ----------------------------------------------------------------- fork */

static int fork_had_kernel;

static void
atfork_prepare(void)
{
	pthread_mutex_lock(&start_mu);
	fork_had_kernel = atomic_load_explicit(&K.running, memory_order_relaxed);
	if (fork_had_kernel) {
		pthread_mutex_lock(&K.mu);
		K.park_req = 1;
		pthread_mutex_unlock(&K.mu);
		uv_async_send(&K.async);
		pthread_mutex_lock(&K.mu);
		while (!K.parked) {
			pthread_cond_wait(&K.cv, &K.mu);
		}
		pthread_mutex_unlock(&K.mu);
	}
	/* No application thread is half-way through a queue when we fork. */
	ik_sockets_fork_prepare();
	ik_msg_pool_lock();
	pthread_mutex_lock(&K.mu);
}

static void
atfork_parent(void)
{
	pthread_mutex_unlock(&K.mu);
	ik_msg_pool_unlock();
	ik_sockets_fork_parent();
	if (fork_had_kernel) {
		pthread_mutex_lock(&K.mu);
		K.park_req = 0;
		pthread_cond_broadcast(&K.cv);
		pthread_mutex_unlock(&K.mu);
	}
	pthread_mutex_unlock(&start_mu);
}

static void
atfork_child(void)
{
	/* The child has only the forking thread: fresh locks, no kernel
	 * thread, and nothing left of the parent's pending commands. */
	pthread_mutex_init(&K.mu, NULL);
	pthread_cond_init(&K.cv, NULL);
	pthread_mutex_init(&start_mu, NULL);
	ik_msg_pool_fork_child();
	K.head = K.tail = NULL;
	K.park_req = K.parked = K.stop_req = 0;
	K.spinning                         = 0;
	atomic_store_explicit(&K.spun_into, 0, memory_order_relaxed);
	atomic_store_explicit(&K.awake, 0, memory_order_relaxed);
	K.epoch++;
	if (K.loop_ready) {
		K.forked = 1;
		/* A wakeup sent before the fork would otherwise look pending
		 * forever to uv_async_send in the child. */
		K.async.pending = 0;
	}
	atomic_store_explicit(&K.running, 0, memory_order_relaxed);
	ik_sockets_fork_child();
}
