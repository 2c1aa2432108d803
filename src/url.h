/*
 * url.h - URL parsing for dial and listen targets.
 *
 *   tcp://host:port  tcp4://  tcp6://  tcp://[::1]:port  tcp://:port (any address)
 *   ipc:///abs/path  ipc://rel/path  inproc://name
 *   redis://[user:password@]host[:port][/db]  redis+unix:///path[?db=N]
 *   postgresql://[user[:password]@][host][:port][/db][?host=/unix/dir&port=N]
 *     (also postgres://; ?host=h1,h2&port=p1,p2 lists servers, the first
 *     being the URL's host), as libpq reads it: a host (in the authority,
 *     percent-encoded, or ?host=) starting with '/' is a socket directory,
 *     and the URL becomes scheme "postgresql+unix" with path
 *     DIR/.s.PGSQL.PORT; no host at all means /var/run/postgresql.
 *
 * Pure functions; any thread.
 */
#ifndef IK_URL_H
#define IK_URL_H

#include <stdint.h>

typedef struct ik_url {
	char    *raw;      /* the URL as given */
	char    *scheme;   /* lower-case scheme, e.g. "tcp" */
	char    *user;     /* NULL if absent (percent-decoded) */
	char    *password; /* NULL if absent (percent-decoded) */
	char    *host;     /* without brackets; "" for wildcard; NULL if none */
	uint16_t port;     /* 0 if absent */
	int      has_port;
	char    *path;     /* ipc/unix path, inproc name, or the part after host
	                   ("/0" for redis db 0); NULL if none */
	char    *query;    /* after '?', NULL if none */
	char    *database; /* postgresql: the path's database (decoded) or NULL */
} ik_url;

/* ik_url_parse fills u from s.  Errors: IOK_EADDRINVAL malformed,
 * IOK_ENOMEM.  On error u holds nothing to free. */
int  ik_url_parse(ik_url *u, const char *s);
void ik_url_free(ik_url *u);
/* ik_url_query_get copies the value of key from the query string into a
 * newly allocated string (percent-decoded), or returns NULL if absent. */
char *ik_url_query_get(const ik_url *u, const char *key);
/* ik_url_pg_hosts: libpq's ?host=h1,h2[&port=p1,p2] (one port for all,
 * or one per host) as a static list "h1:p1,h2:p2" (IPv6 literals
 * bracketed; no port where none was given), newly allocated in *list; or
 * *list NULL when the URL has no TCP ?host=.  0, IOK_EADDRINVAL (as many
 * ports as hosts, or one), IOK_ENOMEM. */
int ik_url_pg_hosts(const ik_url *u, char **list);

#endif
