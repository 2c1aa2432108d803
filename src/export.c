/*
 * export.c - statistics export from the kernel thread, so it keeps its
 * schedule while the application computes: the public calls, run as
 * kernel commands, and what both exporters (export_prom.c, export_statsd.c)
 * read the same way: the sockets, statistic names and addresses.
 */
#include <stdlib.h>
#include <string.h>

#include "iok.h"
#include "debug.h"
#include "export.h"
#include "kernel.h"
#include "stats.h"
#include "url.h"

/* ----------------------------------------------------- socket snapshot */

static void
snap_cb(const ik_sock_view *v, void *arg)
{
	ik_export_snap *sn = arg;
	if (v->s->finished) {
		return;
	}
	if (sn->n == sn->cap) {
		size_t        nc = sn->cap ? sn->cap * 2 : 16;
		ik_sock_view *nv = realloc(sn->v, nc * sizeof(*nv));
		if (nv == NULL) {
			return;
		}
		sn->v   = nv;
		sn->cap = nc;
	}
	sn->v[sn->n++] = *v;
}

void
ik_export_snap_take(ik_export_snap *sn)
{
	ik_statwalk(snap_cb, sn);
}

/* --------------------------------------------------------------- names */

const char *
ik_export_stat_name(int i, char *buf, size_t cap)
{
	const char *n = ik_stat_name(i) + 5; /* without "stat:" */
	size_t      j = 0;
	for (; *n != '\0' && j + 1 < cap; n++) {
		buf[j++] = *n == '-' ? '_' : *n;
	}
	buf[j] = '\0';
	return buf;
}

/* ------------------------------------------------------------ address */

int
ik_export_parse_addr(const char *url, const char *scheme, struct sockaddr_storage *ss)
{
	ik_url u;
	int    rv;
	if ((rv = ik_url_parse(&u, url)) != 0) {
		return rv;
	}
	rv = IOK_EADDRINVAL;
	if (strcmp(u.scheme, scheme) == 0 && u.host != NULL && u.has_port) {
		const char *host = u.host[0] != '\0' ? u.host : "0.0.0.0";
		if (uv_ip4_addr(host, u.port, (struct sockaddr_in *) ss) == 0 ||
		    uv_ip6_addr(host, u.port, (struct sockaddr_in6 *) ss) == 0) {
			rv = 0;
		}
	}
	ik_url_free(&u);
	return rv;
}

/* ---------------------------------------------------------- kernel hooks */

void
ik_export_shutdown(void)
{
	ik_export_prom_stop();
	ik_export_statsd_stop();
}

/* ---------------------------------------------------------- public API */

struct exp_cmd {
	ik_cmd       cmd;
	int          what; /* 0 metrics listen, 1 metrics stop, 2 statsd */
	const char  *url;
	iok_duration period;
	const char  *prefix;
};

static void
exp_k(ik_cmd *c)
{
	struct exp_cmd *ec = (struct exp_cmd *) c;
	int             rv = 0;
	if (ec->what == 0) {
		rv = ik_export_prom_start(ec->url);
	} else if (ec->what == 1) {
		ik_export_prom_stop();
	} else if (ec->url == NULL) {
		ik_export_statsd_stop();
	} else {
		rv = ik_export_statsd_start(ec->url, ec->period, ec->prefix);
	}
	ik_cmd_done(c, rv);
}

int
iok_metrics_listen(const char *url)
{
	struct exp_cmd ec = { .what = url != NULL ? 0 : 1, .url = url };
	return ik_cmd_call(&ec.cmd, exp_k);
}

int
iok_statsd(const char *url, iok_duration period_ms, const char *prefix)
{
	struct exp_cmd ec = { .what = 2, .url = url, .period = period_ms, .prefix = prefix };
	if (url != NULL && period_ms < 10) {
		return IOK_EINVAL;
	}
	if (prefix == NULL || prefix[0] == '\0') {
		ec.prefix = "iok";
	} else if (strlen(prefix) >= IK_EXPORT_PREFIX_MAX) {
		return IOK_EINVAL;
	}
	return ik_cmd_call(&ec.cmd, exp_k);
}
