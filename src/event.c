/*
 * event.c - the futex word application threads wait on (see event.h).
 * Linux only, as is the rest of the kernel's platform code (eventfd).
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "event.h"

void
ik_event_init(ik_event *e)
{
	atomic_init(&e->seq, 0);
	atomic_init(&e->sleepers, 0);
}

/* Pauses between looks at the clock (and between yields): a look costs
 * about as much as a few dozen pauses. */
enum { SPIN_LOOK_MASK = 31 };

bool
ik_event_spin(ik_event *e, pthread_mutex_t *mu, long spin_ns)
{
	unsigned seen = atomic_load_explicit(&e->seq, memory_order_relaxed);
	long     end  = ik_mono_ns() + spin_ns;
	bool     woke = false;
	pthread_mutex_unlock(mu);
	for (unsigned k = 1;; k++) {
		if (atomic_load_explicit(&e->seq, memory_order_acquire) != seen) {
			woke = true;
			break;
		}
		if ((k & SPIN_LOOK_MASK) == 0) {
			if (ik_mono_ns() >= end) {
				break;
			}
			sched_yield();
		}
		ik_cpu_relax();
	}
	pthread_mutex_lock(mu);
	return woke;
}

int
ik_event_wait(ik_event *e, pthread_mutex_t *mu, const struct timespec *deadline)
{
	unsigned seen = atomic_load_explicit(&e->seq, memory_order_relaxed);
	int      rv   = 0;
	pthread_mutex_unlock(mu);
	/* Counted before the futex reads seq, and the waker reads sleepers
	 * after it bumps seq (both sequentially consistent): either the futex
	 * sees the new seq or the waker sees a sleeper. */
	atomic_fetch_add(&e->sleepers, 1);
	/* FUTEX_WAIT_BITSET takes an absolute deadline (on CLOCK_MONOTONIC,
	 * as no FUTEX_CLOCK_REALTIME is given): a spurious return does not
	 * stretch the wait. */
	if (syscall(SYS_futex, &e->seq, FUTEX_WAIT_BITSET_PRIVATE, seen, deadline, NULL,
	        FUTEX_BITSET_MATCH_ANY) != 0 &&
	    errno == ETIMEDOUT) {
		rv = ETIMEDOUT;
	}
	atomic_fetch_sub(&e->sleepers, 1);
	pthread_mutex_lock(mu);
	return rv;
}

void
ik_event_wake(ik_event *e, int n)
{
	atomic_fetch_add(&e->seq, 1);
	if (atomic_load(&e->sleepers) > 0) {
		syscall(SYS_futex, &e->seq, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
	}
}
