/* url.c - URL parsing for dial and listen targets (see url.h). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iok.h"
#include "url.h"

static char *
dup_range(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d != NULL) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decoding keeps credentials with ':' '@' '/' expressible. */
static char *
dup_decoded(const char *s, size_t n, int *bad)
{
	char  *d = malloc(n + 1);
	size_t j = 0;
	if (d == NULL) {
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			int hi, lo;
			if (i + 2 >= n || (hi = hexval(s[i + 1])) < 0 ||
			    (lo = hexval(s[i + 2])) < 0) {
				*bad = 1;
				break;
			}
			d[j++] = (char) (hi * 16 + lo);
			i += 2;
		} else {
			d[j++] = s[i];
		}
	}
	d[j] = '\0';
	return d;
}

void
ik_url_free(ik_url *u)
{
	free(u->raw);
	free(u->scheme);
	free(u->user);
	free(u->password);
	free(u->host);
	free(u->path);
	free(u->query);
	free(u->database);
	memset(u, 0, sizeof(*u));
}

/* Schemes whose remainder is a path or name rather than host:port. */
static int
scheme_is_path(const char *scheme)
{
	return strcmp(scheme, "ipc") == 0 || strcmp(scheme, "inproc") == 0 ||
	       strcmp(scheme, "unix") == 0 || strstr(scheme, "+unix") != NULL;
}

static int
parse_port(const char *s, size_t n, uint16_t *port)
{
	unsigned long v = 0;
	if (n == 0 || n > 5) {
		return IOK_EADDRINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char) s[i])) {
			return IOK_EADDRINVAL;
		}
		v = v * 10 + (unsigned long) (s[i] - '0');
	}
	if (v > 65535) {
		return IOK_EADDRINVAL;
	}
	*port = (uint16_t) v;
	return 0;
}

static int
pg_unix(ik_url *u, const char *dir)
{
	char  *path;
	size_t n = strlen(dir) + 32;
	if (dir[0] != '/' || (path = malloc(n)) == NULL) {
		return dir[0] != '/' ? IOK_EADDRINVAL : IOK_ENOMEM;
	}
	snprintf(path, n, "%s/.s.PGSQL.%u", dir, u->has_port ? (unsigned) u->port : 5432u);
	free(u->path);
	u->path = path;
	free(u->scheme);
	if ((u->scheme = strdup("postgresql+unix")) == NULL) {
		return IOK_ENOMEM;
	}
	return 0;
}

/* pg_normalise applies libpq's reading of a postgresql:// URL: the path is
 * the database; ?port= and ?host= override the authority; a host that is
 * a directory means a unix socket. */
static int
pg_normalise(ik_url *u)
{
	int   bad = 0, rv = 0;
	char *v;

	if (u->path != NULL && u->path[0] == '/' && u->path[1] != '\0') {
		if ((u->database = dup_decoded(u->path + 1, strlen(u->path + 1), &bad)) == NULL) {
			return IOK_ENOMEM;
		}
		if (bad) {
			return IOK_EADDRINVAL;
		}
	}
	if ((v = ik_url_query_get(u, "port")) != NULL) {
		/* libpq: one port, or one per host of ?host= (the first is the
		 * URL's; ik_url_pg_hosts pairs them). */
		const char *c = strchr(v, ',');
		rv            = parse_port(v, c ? (size_t) (c - v) : strlen(v), &u->port);
		u->has_port   = rv == 0;
		for (; rv == 0 && c != NULL; c = strchr(c + 1, ',')) {
			const char *e = strchr(c + 1, ',');
			uint16_t    p;
			rv = parse_port(c + 1, e ? (size_t) (e - c - 1) : strlen(c + 1), &p);
		}
		free(v);
		if (rv != 0) {
			return rv;
		}
	}
	if ((v = ik_url_query_get(u, "host")) != NULL) {
		/* A list h1,h2 (libpq): the URL's host is the first (the dialer
		 * takes them all, ik_url_pg_hosts); socket directories alone. */
		char *c = strchr(v, ',');
		if (c != NULL && (v[0] == '/' || c == v)) {
			free(v);
			return IOK_EADDRINVAL;
		}
		if (c != NULL) {
			*c = '\0';
		}
		free(u->host);
		u->host = v;
	} else if (u->host != NULL && strchr(u->host, '%') != NULL) {
		v = dup_decoded(u->host, strlen(u->host), &bad); /* %2Fdir */
		if (v == NULL) {
			return IOK_ENOMEM;
		}
		free(u->host);
		u->host = v;
		if (bad) {
			return IOK_EADDRINVAL;
		}
	}
	if (u->host == NULL || u->host[0] == '\0') {
		return pg_unix(u, "/var/run/postgresql");
	}
	if (u->host[0] == '/') {
		return pg_unix(u, u->host);
	}
	return 0;
}

int
ik_url_parse(ik_url *u, const char *s)
{
	const char *p, *rest, *end, *q;
	int         bad = 0;

	memset(u, 0, sizeof(*u));
	if (s == NULL || (p = strstr(s, "://")) == NULL || p == s) {
		return IOK_EADDRINVAL;
	}
	for (const char *c = s; c < p; c++) {
		if (!isalnum((unsigned char) *c) && *c != '+' && *c != '-' && *c != '.') {
			return IOK_EADDRINVAL;
		}
	}
	if ((u->raw = strdup(s)) == NULL || (u->scheme = dup_range(s, (size_t) (p - s))) == NULL) {
		goto nomem;
	}
	for (char *c = u->scheme; *c; c++) {
		*c = (char) tolower((unsigned char) *c);
	}
	rest = p + 3;
	if ((q = strchr(rest, '?')) != NULL) {
		if ((u->query = strdup(q + 1)) == NULL) {
			goto nomem;
		}
		end = q;
	} else {
		end = rest + strlen(rest);
	}

	if (scheme_is_path(u->scheme)) {
		if (end == rest) {
			goto bad;
		}
		if ((u->path = dup_range(rest, (size_t) (end - rest))) == NULL) {
			goto nomem;
		}
		return 0;
	}

	/* authority = [userinfo@]host[:port], then an optional /path */
	const char *slash    = memchr(rest, '/', (size_t) (end - rest));
	const char *auth_end = slash ? slash : end;
	const char *at       = NULL;
	for (const char *c = rest; c < auth_end; c++) {
		if (*c == '@') {
			at = c; /* the last '@' ends the userinfo */
		}
	}
	const char *host = rest;
	if (at != NULL) {
		const char *colon = memchr(rest, ':', (size_t) (at - rest));
		if (colon != NULL) {
			u->user     = dup_decoded(rest, (size_t) (colon - rest), &bad);
			u->password = dup_decoded(colon + 1, (size_t) (at - colon - 1), &bad);
			if (u->user == NULL || u->password == NULL) {
				goto nomem;
			}
		} else {
			if ((u->user = dup_decoded(rest, (size_t) (at - rest), &bad)) == NULL) {
				goto nomem;
			}
		}
		if (bad) {
			goto bad;
		}
		host = at + 1;
	}
	const char *host_end, *port_start = NULL;
	if (*host == '[') {
		const char *rb = memchr(host, ']', (size_t) (auth_end - host));
		if (rb == NULL) {
			goto bad;
		}
		if ((u->host = dup_range(host + 1, (size_t) (rb - host - 1))) == NULL) {
			goto nomem;
		}
		host_end = rb + 1;
		if (host_end < auth_end) {
			if (*host_end != ':') {
				goto bad;
			}
			port_start = host_end + 1;
		}
	} else {
		const char *colon = NULL;
		for (const char *c = host; c < auth_end; c++) {
			if (*c == ':') {
				if (colon != NULL) {
					goto bad; /* IPv6 literals need brackets */
				}
				colon = c;
			}
		}
		host_end = colon ? colon : auth_end;
		if (host_end - host == 1 && *host == '*') {
			u->host = strdup(""); /* wildcard */
		} else {
			u->host = dup_range(host, (size_t) (host_end - host));
		}
		if (u->host == NULL) {
			goto nomem;
		}
		if (colon != NULL) {
			port_start = colon + 1;
		}
	}
	for (const char *c = u->host; *c; c++) {
		if (isspace((unsigned char) *c) || *c == '/' || *c == '@') {
			goto bad;
		}
	}
	if (port_start != NULL) {
		if (parse_port(port_start, (size_t) (auth_end - port_start), &u->port) != 0) {
			goto bad;
		}
		u->has_port = 1;
	}
	if (slash != NULL && slash < end) {
		if ((u->path = dup_range(slash, (size_t) (end - slash))) == NULL) {
			goto nomem;
		}
	}
	if (strcmp(u->scheme, "postgresql") == 0 || strcmp(u->scheme, "postgres") == 0) {
		int rv = pg_normalise(u);
		if (rv == IOK_ENOMEM) {
			goto nomem;
		}
		if (rv != 0) {
			goto bad;
		}
	}
	return 0;
bad:
	ik_url_free(u);
	return IOK_EADDRINVAL;
nomem:
	ik_url_free(u);
	return IOK_ENOMEM;
}

char *
ik_url_query_get(const ik_url *u, const char *key)
{
	size_t      klen = strlen(key);
	const char *p    = u->query;
	int         bad  = 0;

	while (p != NULL && *p) {
		const char *amp = strchr(p, '&');
		const char *end = amp ? amp : p + strlen(p);
		if ((size_t) (end - p) > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
			char *v = dup_decoded(p + klen + 1, (size_t) (end - p - klen - 1), &bad);
			if (bad) {
				free(v);
				return NULL;
			}
			return v;
		}
		p = amp ? amp + 1 : NULL;
	}
	return NULL;
}

int
ik_url_pg_hosts(const ik_url *u, char **list)
{
	char  *hosts = ik_url_query_get(u, "host");
	char  *ports = ik_url_query_get(u, "port");
	char  *out   = NULL;
	size_t nh = 1, np = 1, cap, len = 0;
	int    rv = 0;

	*list = NULL;
	if (hosts == NULL || hosts[0] == '/' || hosts[0] == '\0') {
		free(hosts);
		free(ports);
		return 0; /* no list here (or a socket directory) */
	}
	for (const char *c = hosts; (c = strchr(c, ',')) != NULL; c++) {
		nh++;
	}
	for (const char *c = ports; c != NULL && (c = strchr(c, ',')) != NULL; c++) {
		np++;
	}
	if (ports != NULL && np != 1 && np != nh) {
		rv = IOK_EADDRINVAL; /* libpq: one port, or one per host */
	}
	cap = strlen(hosts) + nh * 9 + (ports ? strlen(ports) : 0) + 1;
	if (rv == 0 && (out = malloc(cap)) == NULL) {
		rv = IOK_ENOMEM;
	}
	const char *h = hosts, *p = ports;
	for (size_t i = 0; rv == 0 && i < nh; i++) {
		const char *he = strchr(h, ',');
		size_t      hl = he ? (size_t) (he - h) : strlen(h);
		size_t      pl = 0;
		if (p != NULL) {
			const char *pe = strchr(p, ',');
			pl             = pe ? (size_t) (pe - p) : strlen(p);
		}
		if (hl == 0 || h[0] == '/') {
			rv = IOK_EADDRINVAL;
			break;
		}
		int six = memchr(h, ':', hl) != NULL; /* an IPv6 literal */
		int w =
		    snprintf(out + len, cap - len, "%s%s%.*s%s%s%.*s", i ? "," : "", six ? "[" : "",
		        (int) hl, h, six ? "]" : "", pl ? ":" : "", (int) pl, p ? p : "");
		if (w < 0 || (size_t) w >= cap - len) {
			rv = IOK_EADDRINVAL;
			break;
		}
		len += (size_t) w;
		h = he ? he + 1 : h + hl;
		if (p != NULL && np > 1) {
			p = strchr(p, ',') ? strchr(p, ',') + 1 : p + pl;
		}
	}
	free(hosts);
	free(ports);
	if (rv != 0) {
		free(out);
		return rv;
	}
	*list = out;
	return 0;
}
