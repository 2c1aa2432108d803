/*
 * stats.c - latency histograms and error completions by kind (stats.h),
 * and the kernel services patterns use to feed them (pattern.h).
 *
 * Latency is measured on the kernel thread: from when the pattern hands a
 * request to its pipe (written in the same loop iteration) to when the
 * pattern matches its reply (in the read callback that completed the
 * frame), so a slow application loop does not inflate it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "iok.h"
#include "kernel.h"
#include "ep.h"
#include "pipe.h"
#include "sock.h"
#include "stats.h"

/* ---------------------------------------------------------- histogram */

static int
bucket_of(uint64_t v)
{
	int e;
	if (v < 16) {
		return (int) v;
	}
	e = 63 - __builtin_clzll(v); /* 4..63 */
	return 16 + (e - 4) * 8 + (int) ((v >> (e - 3)) & 7);
}

uint64_t
ik_hist_bucket_high(int i)
{
	int      e, sub;
	uint64_t low;
	if (i < 16) {
		return (uint64_t) i;
	}
	e   = (i - 16) / 8 + 4;
	sub = (i - 16) % 8;
	low = (uint64_t) (8 + sub) << (e - 3);
	return low + ((uint64_t) 1 << (e - 3)) - 1;
}

void
ik_hist_record(ik_hist *h, uint64_t v)
{
	h->count++;
	h->sum += v;
	if (v > h->max) {
		h->max = v;
	}
	h->b[bucket_of(v)]++;
}

uint64_t
ik_hist_quantile(const ik_hist *h, double q)
{
	uint64_t want, seen = 0;
	if (h->count == 0) {
		return 0;
	}
	want = (uint64_t) (q * (double) h->count + 0.999999);
	if (want == 0) {
		want = 1;
	}
	for (int i = 0; i < IK_HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= want) {
			uint64_t hi = ik_hist_bucket_high(i);
			return hi < h->max ? hi : h->max;
		}
	}
	return h->max;
}

void
ik_hist_format(ik_buf *b, const ik_hist *h)
{
	char tmp[200];
	int  n;
	if (h->count == 0) {
		return;
	}
	n = snprintf(tmp, sizeof(tmp),
	    " latency_p50_us=%.1f latency_p90_us=%.1f latency_p99_us=%.1f latency_max_us=%.1f "
	    "latency_count=%llu",
	    (double) ik_hist_quantile(h, 0.50) / 1e3, (double) ik_hist_quantile(h, 0.90) / 1e3,
	    (double) ik_hist_quantile(h, 0.99) / 1e3, (double) h->max / 1e3,
	    (unsigned long long) h->count);
	(void) ik_buf_append(b, tmp, (size_t) n);
}

ik_xstats *
ik_xstats_of(ik_xstats **slot)
{
	if (*slot == NULL) {
		*slot = calloc(1, sizeof(ik_xstats));
	}
	return *slot;
}

/* ------------------------------------------------- pattern services */

/* The kernel thread's clock within one task or command (ik_clock_batch):
 * its first reading, shared by the rest.  Thread-local, so another
 * thread never sees it. */
static _Thread_local bool     batch_open;
static _Thread_local uint64_t batch_ns;

void
ik_clock_batch(bool open)
{
	batch_open = open;
	batch_ns   = 0;
}

uint64_t
ik_clock_ns(void)
{
	struct timespec ts;
	if (batch_ns != 0) {
		return batch_ns;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t now = (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
	if (batch_open) {
		batch_ns = now;
	}
	return now;
}

void
ik_sock_req_done(ik_sock *s, ik_pipe *p, uint64_t sent_ns)
{
	uint64_t   now = ik_clock_ns();
	uint64_t   d   = now > sent_ns ? now - sent_ns : 0;
	ik_xstats *x;
	s->stats[IK_STAT_REPLIES]++;
	if ((x = ik_xstats_of(&s->xs)) != NULL) {
		ik_hist_record(&x->lat, d);
	}
	if (p != NULL) {
		if ((x = ik_xstats_of(&p->xs)) != NULL) {
			ik_hist_record(&x->lat, d);
		}
		if (p->up != NULL && (x = ik_xstats_of(&p->up->xs)) != NULL) {
			ik_hist_record(&x->lat, d); /* the dialer's upstream */
		}
		/* Its replies and moving average too (latency-weighted routing,
		 * the dialer's "upstreams"). */
		ik_pipe_note_reply(p, d / 1000);
	}
}

/* --------------------------------------------------- errors by kind */

static const struct {
	int         code;
	const char *name;
} err_names[] = {
	{ IOK_ETIMEDOUT, "timedout" },
	{ IOK_ECONNRESET, "connreset" },
	{ IOK_ECONNREFUSED, "connrefused" },
	{ IOK_ECLOSED, "closed" },
	{ IOK_EINVAL, "inval" },
	{ IOK_ENOMEM, "nomem" },
	{ IOK_EPROTO, "proto" },
	{ IOK_ECANCELED, "canceled" },
	{ IOK_EUNREACHABLE, "unreachable" },
	{ IOK_ECONNSHUT, "connshut" },
};
#define NERR_NAMES ((int) (sizeof(err_names) / sizeof(err_names[0])))

void
ik_stats_completion(ik_sock *s, int status)
{
	ik_xstats *x;
	if (status != 0 && (x = ik_xstats_of(&s->xs)) != NULL) {
		x->errs[status > 0 && status < IK_ERR_KINDS ? status : IK_ERR_KINDS - 1]++;
	}
}

const char *
ik_stats_err_name(int code)
{
	for (int i = 0; i < NERR_NAMES; i++) {
		if (err_names[i].code == code) {
			return err_names[i].name;
		}
	}
	return NULL;
}

void
ik_stats_format_errors(ik_buf *b, const ik_xstats *x)
{
	char tmp[64];
	for (int i = 1; x != NULL && i < IK_ERR_KINDS; i++) {
		if (x->errs[i] != 0) {
			const char *nm = ik_stats_err_name(i);
			int         n  = nm != NULL ? snprintf(tmp, sizeof(tmp), " err_%s=%llu", nm,
			                                  (unsigned long long) x->errs[i])
			                            : snprintf(tmp, sizeof(tmp), " err_%d=%llu", i,
			                                  (unsigned long long) x->errs[i]);
			(void) ik_buf_append(b, tmp, (size_t) n);
		}
	}
}

/* stat:latency-p50 / -p90 / -p99 / -max / -count (ns), stat:err-<kind>. */
int
ik_stats_get(ik_sock *s, const char *name, uint64_t *v)
{
	const ik_xstats     *x = s->xs;
	static const ik_hist empty;
	const ik_hist       *h = x != NULL ? &x->lat : &empty;
	if (strcmp(name, "stat:latency-p50") == 0) {
		*v = ik_hist_quantile(h, 0.50);
	} else if (strcmp(name, "stat:latency-p90") == 0) {
		*v = ik_hist_quantile(h, 0.90);
	} else if (strcmp(name, "stat:latency-p99") == 0) {
		*v = ik_hist_quantile(h, 0.99);
	} else if (strcmp(name, "stat:latency-max") == 0) {
		*v = h->max;
	} else if (strcmp(name, "stat:latency-count") == 0) {
		*v = h->count;
	} else if (strncmp(name, "stat:err-", 9) == 0) {
		for (int i = 0; i < NERR_NAMES; i++) {
			if (strcmp(name + 9, err_names[i].name) == 0) {
				*v = x != NULL ? x->errs[err_names[i].code] : 0;
				return 0;
			}
		}
		return IOK_ENOTSUP;
	} else {
		return IOK_ENOTSUP;
	}
	return 0;
}
