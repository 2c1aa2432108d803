/*
 * export_statsd.c - the periodic statsd push over UDP of the kernel's
 * statistics: counters as deltas since the last push, gauges as they are.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iok.h"
#include "appstats.h"
#include "buf.h"
#include "export.h"
#include "kernel.h"
#include "sock.h"
#include "stats.h"

#define DGRAM_MAX 1400 /* statsd datagram, under a typical MTU */

typedef struct prev_sock {
	uint32_t id;
	bool     seen;
	uint64_t v[IK_STAT_COUNT];
} prev_sock;

static struct {
	bool sd_on;
	struct sd_handles {
		uv_udp_t   udp;
		uv_timer_t timer;
		int        open;
	} * sd; /* new per start, freed once both handles closed */
	struct sockaddr_storage to;
	char                    prefix[IK_EXPORT_PREFIX_MAX];
	prev_sock              *prev;
	size_t                  nprev;
	uint64_t                app_prev[IK_APP_SLOTS];
} X;

/* -------------------------------------------------------------- statsd */

static void
sd_name(char *out, size_t cap, const char *in)
{
	size_t j = 0;
	for (; *in != '\0' && j + 1 < cap; in++) {
		char ch = *in;
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		          (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.';
		out[j++] = ok ? ch : '_';
	}
	out[j] = '\0';
}

static void
sd_flush(ik_buf *dg)
{
	if (dg->len > 0) {
		uv_buf_t ub = uv_buf_init((char *) dg->data, (unsigned) dg->len);
		/* Lossy by design (UDP): a full socket buffer drops this one. */
		(void) uv_udp_try_send(&X.sd->udp, &ub, 1, (const struct sockaddr *) &X.to);
		dg->len = 0;
	}
}

static void
sd_line(ik_buf *dg, const char *fmt, ...)
{
	char    line[300];
	va_list ap;
	int     n;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n <= 0 || (size_t) n >= sizeof(line)) {
		return;
	}
	if (dg->len + (size_t) n + 1 > DGRAM_MAX) {
		sd_flush(dg);
	}
	if (dg->len > 0) {
		(void) ik_buf_append(dg, "\n", 1);
	}
	(void) ik_buf_append(dg, line, (size_t) n);
}

static prev_sock *
prev_of(uint32_t id)
{
	for (size_t i = 0; i < X.nprev; i++) {
		if (X.prev[i].id == id) {
			return &X.prev[i];
		}
	}
	prev_sock *np = realloc(X.prev, (X.nprev + 1) * sizeof(*np));
	if (np == NULL) {
		return NULL;
	}
	X.prev = np;
	memset(&X.prev[X.nprev], 0, sizeof(*np));
	X.prev[X.nprev].id = id;
	return &X.prev[X.nprev++];
}

static void
sd_tick(uv_timer_t *t)
{
	ik_export_snap sn = { 0 };
	ik_buf         dg;
	char           sname[80], nm[64];
	ik_app_view    v;
	(void) t;
	ik_buf_init(&dg);
	ik_export_snap_take(&sn);
	for (size_t i = 0; i < X.nprev; i++) {
		X.prev[i].seen = false;
	}
	for (size_t j = 0; j < sn.n; j++) {
		ik_sock   *s = sn.v[j].s;
		prev_sock *p = prev_of(s->obj.id);
		sd_name(sname, sizeof(sname), s->name);
		if (p == NULL) {
			continue;
		}
		p->seen = true;
		for (int i = 0; i < IK_STAT_COUNT; i++) {
			ik_export_stat_name(i, nm, sizeof(nm));
			if (i == IK_STAT_PIPES) {
				sd_line(&dg, "%s.socket.%s.%s:%llu|g", X.prefix, sname, nm,
				    (unsigned long long) s->stats[i]);
			} else if (s->stats[i] != p->v[i]) {
				sd_line(&dg, "%s.socket.%s.%s:%llu|c", X.prefix, sname, nm,
				    (unsigned long long) (s->stats[i] - p->v[i]));
			}
			p->v[i] = s->stats[i];
		}
		sd_line(&dg, "%s.socket.%s.inflight:%llu|g", X.prefix, sname,
		    (unsigned long long) sn.v[j].inflight);
		if (s->xs != NULL && s->xs->lat.count > 0) {
			const ik_hist *h = &s->xs->lat;
			sd_line(&dg, "%s.socket.%s.latency_p50_us:%.1f|g", X.prefix, sname,
			    (double) ik_hist_quantile(h, 0.5) / 1e3);
			sd_line(&dg, "%s.socket.%s.latency_p99_us:%.1f|g", X.prefix, sname,
			    (double) ik_hist_quantile(h, 0.99) / 1e3);
			sd_line(&dg, "%s.socket.%s.latency_max_us:%.1f|g", X.prefix, sname,
			    (double) h->max / 1e3);
		}
	}
	/* Forget sockets that are gone. */
	for (size_t i = 0; i < X.nprev;) {
		if (!X.prev[i].seen) {
			X.prev[i] = X.prev[--X.nprev];
		} else {
			i++;
		}
	}
	for (uint32_t i = 0; ik_app_read(i, &v); i++) {
		sd_name(sname, sizeof(sname), v.name);
		if (v.kind == IK_APP_COUNTER && v.value != X.app_prev[i]) {
			sd_line(&dg, "%s.app.%s:%llu|c", X.prefix, sname,
			    (unsigned long long) (v.value - X.app_prev[i]));
		} else if (v.kind == IK_APP_TIMER && v.value != X.app_prev[i]) {
			sd_line(&dg, "%s.app.%s.count:%llu|c", X.prefix, sname,
			    (unsigned long long) (v.value - X.app_prev[i]));
			sd_line(&dg, "%s.app.%s.p99_us:%.1f|g", X.prefix, sname,
			    (double) ik_app_quantile(&v, 0.99) / 1e3);
		} else if (v.kind == IK_APP_MARKER && v.value != X.app_prev[i]) {
			sd_line(&dg, "%s.app.%s.passes:%llu|c", X.prefix, sname,
			    (unsigned long long) (v.value - X.app_prev[i]));
		}
		X.app_prev[i] = v.value;
	}
	sd_flush(&dg);
	ik_buf_fini(&dg);
	free(sn.v);
}

static void
sd_closed_cb(uv_handle_t *h)
{
	struct sd_handles *sd = h->data;
	if (--sd->open == 0) {
		free(sd);
	}
}

void
ik_export_statsd_stop(void)
{
	if (X.sd_on) {
		uv_timer_stop(&X.sd->timer);
		uv_close((uv_handle_t *) &X.sd->timer, sd_closed_cb);
		uv_close((uv_handle_t *) &X.sd->udp, sd_closed_cb);
		X.sd    = NULL;
		X.sd_on = false;
	}
	free(X.prev);
	X.prev  = NULL;
	X.nprev = 0;
}

int
ik_export_statsd_start(const char *url, iok_duration period, const char *prefix)
{
	int rv;
	ik_export_statsd_stop();
	if ((rv = ik_export_parse_addr(url, "udp", &X.to)) != 0) {
		return rv;
	}
	sd_name(X.prefix, sizeof(X.prefix), prefix);
	if ((X.sd = malloc(sizeof(*X.sd))) == NULL) {
		return IOK_ENOMEM;
	}
	uv_udp_init(ik_loop(), &X.sd->udp);
	uv_timer_init(ik_loop(), &X.sd->timer);
	X.sd->udp.data = X.sd->timer.data = X.sd;
	X.sd->open                        = 2;
	/* The first push carries the counters' totals so far, later ones
	 * what changed in between (statsd counters are deltas). */
	memset(X.app_prev, 0, sizeof(X.app_prev));
	X.sd_on = true;
	sd_tick(NULL);
	uv_timer_start(&X.sd->timer, sd_tick, (uint64_t) period, (uint64_t) period);
	uv_unref((uv_handle_t *) &X.sd->timer);
	uv_unref((uv_handle_t *) &X.sd->udp);
	return 0;
}
