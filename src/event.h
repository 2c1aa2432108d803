/*
 * event.h - what an application thread sleeps on while it waits for its
 * socket (a receive with nothing queued, a send into a full queue): a
 * futex word used as a condition variable over the socket mutex.
 *
 * Why not pthread_cond_t: glibc's condition wait takes the mutex back
 * marked "contended", so the unlock after every wait makes a futex wake
 * call even when no one else wants the mutex, one system call per wait
 * that a req/rep exchange pays on both sides (seen with perf on
 * 64-outstanding inproc req/rep: a third of all futex calls).
 *
 * Rules, as for a condition variable: the waiter checks its condition and
 * calls ik_event_wait holding mu; the waker changes the state under mu and
 * calls ik_event_wake (with or without mu).  A wake between the waiter's
 * check and its sleep is never lost: the waiter read the sequence under
 * mu, before the change, and the futex refuses to sleep on a stale one.
 * Spurious returns happen; callers re-check their condition.
 */
#ifndef IK_EVENT_H
#define IK_EVENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

typedef struct ik_event {
	atomic_uint seq;      /* bumped by every wake */
	atomic_uint sleepers; /* threads in the futex: a wake with none makes
	                         no system call (a spinner watches seq) */
} ik_event;

void ik_event_init(ik_event *e);

/* ik_event_wait releases mu, sleeps until a wake, the CLOCK_MONOTONIC
 * deadline (NULL: none) or a spurious return, and takes mu again.
 * Returns 0 or ETIMEDOUT. */
int ik_event_wait(ik_event *e, pthread_mutex_t *mu, const struct timespec *deadline);

/* ik_event_spin releases mu, spins until a wake or for spin_ns, and takes
 * mu again; true if a wake came.  It gives up the CPU now and then
 * (sched_yield): on two CPUs the thread that will wake it may be waiting
 * for this one.  Callers count themselves as waiters meanwhile, so wakers
 * bump seq for them. */
bool ik_event_spin(ik_event *e, pthread_mutex_t *mu, long spin_ns);

/* ik_event_wake wakes up to n waiters (n == 1: one, like a signal; INT_MAX:
 * all, like a broadcast). */
void ik_event_wake(ik_event *e, int n);

/* ik_mono_ns: CLOCK_MONOTONIC in nanoseconds (spins' budgets). */
static inline long
ik_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* A spin that keeps missing backs off: after a miss the next `skip`
 * chances to spin pass by, doubling (1, 2, 4 ...) up to a maximum; a hit
 * starts over.  Used by the kernel loop's spin and a receive's. */
typedef struct ik_backoff {
	unsigned skip, step;
} ik_backoff;

/* ik_backoff_pass: true if this chance to spin passes by (counted). */
static inline bool
ik_backoff_pass(ik_backoff *b)
{
	if (b->skip == 0) {
		return false;
	}
	b->skip--;
	return true;
}

/* ik_backoff_note: what a spin found. */
static inline void
ik_backoff_note(ik_backoff *b, bool hit, unsigned max)
{
	if (hit) {
		b->step = 0;
		return;
	}
	b->step = b->step == 0 ? 1 : b->step < max / 2 ? b->step * 2 : max;
	b->skip = b->step;
}

/* ik_cpu_relax: one turn of a spin (the CPU's pause hint). */
#if defined(__x86_64__) || defined(__i386__)
#define ik_cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define ik_cpu_relax() __asm__ __volatile__("yield")
#else
#define ik_cpu_relax() ((void) 0)
#endif

#endif
