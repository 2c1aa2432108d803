/*
 * export.h - what the statistics exporters share: export.c (the public
 * calls, and what both exporters read the same way), export_prom.c (the
 * Prometheus text over HTTP) and export_statsd.c (the periodic UDP push).
 * Only they include it.  Kernel thread only.
 */
#ifndef IK_EXPORT_H
#define IK_EXPORT_H

#include <stddef.h>

#include "iok.h"
#include "statwalk.h"

#define IK_EXPORT_PREFIX_MAX 64 /* statsd prefix, terminator included */

/* export.c */
/* The open sockets' statistics, read once per export. */
typedef struct ik_export_snap {
	ik_sock_view *v;
	size_t        n, cap;
} ik_export_snap;
/* ik_export_snap_take: the open (not finished) sockets into *sn, which the
 * caller zeroes and frees (free(sn->v)) after; short of memory, it holds
 * fewer sockets. */
void ik_export_snap_take(ik_export_snap *sn);
/* ik_export_stat_name: statistic i's name without "stat:", '-' as '_',
 * into buf (cut to cap); returns buf. */
const char *ik_export_stat_name(int i, char *buf, size_t cap);
/* ik_export_parse_addr: a numeric address and port from
 * "<scheme>://host:port" (empty host: 0.0.0.0).  0, an ik_url_parse error,
 * or IOK_EADDRINVAL. */
int ik_export_parse_addr(const char *url, const char *scheme, struct sockaddr_storage *ss);

/* export_prom.c */
/* ik_export_prom_start: serve /metrics on url ("tcp://host:port").  0,
 * IOK_EBUSY (already on), IOK_ENOMEM, IOK_EADDRINUSE, IOK_EPERM or
 * IOK_EADDRINVAL. */
int ik_export_prom_start(const char *url);
/* ik_export_prom_stop: close the listener and its connections, if any. */
void ik_export_prom_stop(void);

/* export_statsd.c */
/* ik_export_statsd_start: push to url ("udp://host:port") now and every
 * period ms, names under prefix (shorter than IK_EXPORT_PREFIX_MAX);
 * replaces a running push.  0, IOK_ENOMEM or an address error. */
int ik_export_statsd_start(const char *url, iok_duration period, const char *prefix);
/* ik_export_statsd_stop: stop the push, if any, and forget its deltas. */
void ik_export_statsd_stop(void);

#endif
