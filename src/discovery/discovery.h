/*
 * discovery.h - where a dialer's addresses come from.
 *
 * A backend (iok_discovery_backend in iok.h: the built-in ones and any a
 * user registers) watches one target and reports its current set of
 * (host, port, weight); it reports again whenever the set may have changed.
 * The core here turns those reports into one flat set of socket addresses
 * for the dialer: IP literals pass through, names get their own A/AAAA
 * watch (re-resolved on the records' TTL, clamped to dns:ttl-min/max),
 * and the dialer is told, from a task and never from inside a backend
 * call, only when the set really changed.  Kernel thread only, except the
 * pure parsers at the end.
 */
#ifndef IK_DISCOVERY_H
#define IK_DISCOVERY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "iok.h"

#define IK_DISC_MAX 64       /* addresses kept per dialer */
#define IK_DISC_HOST_MAX 256 /* longest host name, with its NUL */

typedef struct ik_disc_entry {
	struct sockaddr_storage sa; /* port set; padding zeroed */
	uint16_t                weight;
} ik_disc_entry;

typedef struct ik_disc ik_disc;
/* The set changed (err 0; n may be 0 if the backend says so), or nothing
 * is known and a lookup failed (err an IOK_E*, n 0). */
typedef void (*ik_disc_cb)(void *arg, int err, const ik_disc_entry *set, int n);

typedef struct ik_disc_params {
	const char  *backend;  /* "static", "srv", "file" or a registered name */
	const char  *target;   /* what the backend watches */
	uint16_t     def_port; /* for entries reported with port 0 */
	int          family;   /* AF_UNSPEC, AF_INET or AF_INET6 */
	iok_duration ttl_min, ttl_max;
	const char  *dns_servers; /* "" = IOK_DNS_SERVERS or the system's */
} ik_disc_params;

/* ik_disc_start begins watching.  0, IOK_ENOENT (no such backend),
 * IOK_ENOMEM, or the backend's start error (e.g. IOK_EADDRINVAL). */
int ik_disc_start(ik_disc **out, const ik_disc_params *p, ik_disc_cb cb, void *arg);
/* ik_disc_refresh: a connection failed; every backend looks again now. */
void ik_disc_refresh(ik_disc *d);
void ik_disc_stop(ik_disc *d);
/* ik_disc_rejected: how many entries the backend refused so far
 * (iok_discovery_reject), for the dialer's IOK_OPT_DISC_REJECTED. */
int ik_disc_rejected(const ik_disc *d);

/* ik_disc_backend_find: the backend of that name, or NULL (any thread;
 * registry.c keeps the table). */
const iok_discovery_backend *ik_disc_backend_find(const char *name);

/* ---- for the built-in backends ---- */

/* What the watch was started with. */
const char *ik_disc_watch_servers(const iok_discovery_watch *w);
int         ik_disc_watch_family(const iok_discovery_watch *w);
/* ik_disc_update_resolved: the A/AAAA backend's report (ports 0). */
int ik_disc_update_resolved(
    iok_discovery_watch *w, const struct sockaddr_storage *a, int n, iok_duration ttl);

extern const iok_discovery_backend ik_disc_backend_dns;
extern const iok_discovery_backend ik_disc_backend_static;
extern const iok_discovery_backend ik_disc_backend_srv;
extern const iok_discovery_backend ik_disc_backend_file;
#ifdef IOK_HAVE_ZOOKEEPER
extern const iok_discovery_backend ik_disc_backend_zk; /* zk.c */
#endif

/* ---- pure parsers (any thread) ---- */

/* ik_disc_parse_hostport reads "host", "host:port", "[v6]" or
 * "[v6]:port" (n bytes of s) into host (IK_DISC_HOST_MAX bytes) and *port
 * (0 if absent).  0 or IOK_EADDRINVAL. */
int ik_disc_parse_hostport(const char *s, size_t n, char *host, uint16_t *port);

/* ik_disc_parse_zk_child reads a ZooKeeper child name (n bytes of s):
 * "host:port", "host:port:weight", "[v6]:port" or "[v6]:port:weight"
 * (the port is required, the weight 1..65535, default 1).  0 or
 * IOK_EADDRINVAL. */
int ik_disc_parse_zk_child(const char *s, size_t n, char *host, uint16_t *port, uint16_t *weight);

/* ik_disc_split_url picks a dialer URL apart: "tcp+srv://_s._tcp.name"
 * (backend "srv"), "tcp+file:///path", "<scheme>+<registered>://target",
 * and the comma list "tcp://h1:1,h2:2" / "postgresql://u@h1,h2:5433/db"
 * (backend "static").  A plain single-host URL is a one-entry static list.
 * *backend and *target are allocated; *turl (allocated) is the URL the
 * transport sees: the original with its host list reduced to the first
 * host (for credentials, path and query).  tscheme_known says whether a
 * scheme is a transport.  0, IOK_EADDRINVAL, IOK_ENOMEM. */
int ik_disc_split_url(const char *url, int (*tscheme_known)(const char *scheme), char **backend,
    char **target, char **turl);

/* ik_disc_parse_lines reads a peers file: one "host:port[ weight]" per
 * line, '#' comments, blank lines ignored.  Fills at most max entries
 * (host strings point into a copy the caller frees with *storage).
 * Returns the count, or -IOK_EADDRINVAL (a malformed line: the whole
 * file is refused, so a half-written edit never empties the set),
 * -IOK_ENOMEM. */
int ik_disc_parse_lines(
    const char *text, size_t len, iok_discovery_addr *out, int max, char **storage);

/* ik_disc_parse_list reads "h1:p1,h2,[v6]:p3" (weights 1); as above. */
int ik_disc_parse_list(const char *s, iok_discovery_addr *out, int max, char **storage);

/* ik_dns_min_ttl finds the smallest TTL among the answer records of a DNS
 * message (len bytes).  0 and *ttl, or IOK_EPROTO for a malformed or
 * truncated message, IOK_ENOENT if it has no answers. */
int ik_dns_min_ttl(const uint8_t *msg, size_t len, uint32_t *ttl);

#endif
