/*
 * appstats.h - the kernel's view of the application's counters, timers
 * and markers (appstats.c; the writing side is public, in iok.h).
 */
#ifndef IK_APPSTATS_H
#define IK_APPSTATS_H

#include <stdint.h>

#define IK_APP_SLOTS 1024  /* names per process (all kinds) */
#define IK_APP_NAME_MAX 63 /* bytes of a name */
#define IK_APP_BUCKETS 65  /* timer: 0, then [2^(b-1), 2^b) ns */

enum { IK_APP_COUNTER = 1, IK_APP_TIMER, IK_APP_MARKER };

/* A consistent-enough copy of one slot (each field read atomically). */
typedef struct ik_app_view {
	uint32_t    kind;
	const char *name;
	uint64_t    value, sum_ns, max_ns, last_ns, last_tid, leaves;
	uint64_t    buckets[IK_APP_BUCKETS];
} ik_app_view;

/* ik_app_read copies slot i; 0 when i is past the slots in use.  Any
 * thread, lock-free. */
int ik_app_read(uint32_t i, ik_app_view *v);
/* A timer's quantile q in ns (the top of its power-of-two bucket). */
uint64_t ik_app_quantile(const ik_app_view *v, double q);
/* The clock markers are stamped with. */
uint64_t ik_app_now_ns(void);

#endif
