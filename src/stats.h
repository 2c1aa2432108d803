/*
 * stats.h - statistics beyond the plain per-socket counters: latency
 * histograms (per socket, per pipe, per dialer) and error completions by
 * kind.  Kernel thread only: everything is written and read there.
 */
#ifndef IK_STATS_H
#define IK_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* A log-bucketed histogram of nanoseconds (HDR-style): values below 16
 * exactly, above that 8 sub-buckets per power of two, so a quantile is
 * within 12.5% of the truth over the whole 64-bit range, in 4 KiB. */
#define IK_HIST_BUCKETS 496 /* 16 + 60 powers of two (2^4 .. 2^63) x 8 */
typedef struct ik_hist {
	uint64_t count, sum, max;
	uint64_t b[IK_HIST_BUCKETS];
} ik_hist;

void ik_hist_record(ik_hist *h, uint64_t v);
/* The value at quantile q (0..1): the top of its bucket, at most max; 0
 * when empty. */
uint64_t ik_hist_quantile(const ik_hist *h, double q);
/* Bucket i's highest value (for cumulative exposition). */
uint64_t ik_hist_bucket_high(int i);

/* Error completions delivered, by IOK_E* code (codes above the table
 * count as the last). */
#define IK_ERR_KINDS 32

/* A socket's, pipe's or dialer's extra statistics, allocated on first
 * use: objects that never carry a request pay one pointer. */
typedef struct ik_xstats {
	ik_hist  lat;
	uint64_t errs[IK_ERR_KINDS];
} ik_xstats;

/* ik_xstats_of allocates *slot if needed; NULL when out of memory (the
 * sample is then lost, nothing else). */
ik_xstats *ik_xstats_of(ik_xstats **slot);

/* " latency_p50_us=.. _p90_us _p99_us _max_us latency_count=.." for the debug
 * endpoint (nothing when there is no sample). */
void ik_hist_format(ik_buf *b, const ik_hist *h);

/* Kernel-side feeds and readers. */
typedef struct ik_sock ik_sock;
/* An error completion (m->status != 0) is being delivered on s. */
void        ik_stats_completion(ik_sock *s, int status);
const char *ik_stats_err_name(int code); /* "timedout", or NULL */
/* " err_timedout=3 err_connreset=1" (kinds seen only). */
void ik_stats_format_errors(ik_buf *b, const ik_xstats *x);
/* The stat:latency-* and stat:err-* options: 0 or IOK_ENOTSUP. */
int ik_stats_get(ik_sock *s, const char *name, uint64_t *v);

#endif
