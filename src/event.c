/*
 * event.c - the futex word application threads wait on (see event.h).
 * Linux only, as is the rest of the kernel's platform code (eventfd).
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "event.h"

void
ik_event_init(ik_event *e)
{
	atomic_init(&e->seq, 0);
}

int
ik_event_wait(ik_event *e, pthread_mutex_t *mu, const struct timespec *deadline)
{
	unsigned seen = atomic_load_explicit(&e->seq, memory_order_relaxed);
	int      rv   = 0;
	pthread_mutex_unlock(mu);
	/* FUTEX_WAIT_BITSET takes an absolute deadline (on CLOCK_MONOTONIC,
	 * as no FUTEX_CLOCK_REALTIME is given): a spurious return does not
	 * stretch the wait. */
	if (syscall(SYS_futex, &e->seq, FUTEX_WAIT_BITSET_PRIVATE, seen, deadline, NULL,
	        FUTEX_BITSET_MATCH_ANY) != 0 &&
	    errno == ETIMEDOUT) {
		rv = ETIMEDOUT;
	}
	pthread_mutex_lock(mu);
	return rv;
}

void
ik_event_wake(ik_event *e, int n)
{
	atomic_fetch_add_explicit(&e->seq, 1, memory_order_release);
	syscall(SYS_futex, &e->seq, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}
