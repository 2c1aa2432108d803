/*
 * parse.c - the pure parsers of discovery (see discovery.h): host:port
 * lists, peers files, dialer URLs, DNS answer TTLs.  Their input comes
 * from users, files and the network, so every length is checked and a
 * malformed input is refused whole.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "discovery.h"

static int
parse_num(const char *s, size_t n, unsigned long maxv, unsigned long *out)
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
	if (v == 0 || v > maxv) {
		return IOK_EADDRINVAL;
	}
	*out = v;
	return 0;
}

int
ik_disc_parse_hostport(const char *s, size_t n, char *host, uint16_t *port)
{
	const char   *h, *hend, *p = NULL;
	unsigned long v;

	*port = 0;
	if (n == 0) {
		return IOK_EADDRINVAL;
	}
	if (s[0] == '[') {
		const char *rb = memchr(s, ']', n);
		if (rb == NULL) {
			return IOK_EADDRINVAL;
		}
		h    = s + 1;
		hend = rb;
		if ((size_t) (rb + 1 - s) < n) {
			if (rb[1] != ':') {
				return IOK_EADDRINVAL;
			}
			p = rb + 2;
		}
	} else {
		const char *colon = NULL;
		for (size_t i = 0; i < n; i++) {
			if (s[i] == ':') {
				if (colon != NULL) {
					return IOK_EADDRINVAL; /* IPv6 literals need brackets */
				}
				colon = s + i;
			}
		}
		h    = s;
		hend = colon != NULL ? colon : s + n;
		p    = colon != NULL ? colon + 1 : NULL;
	}
	if (hend == h || (size_t) (hend - h) >= IK_DISC_HOST_MAX) {
		return IOK_EADDRINVAL;
	}
	for (const char *c = h; c < hend; c++) {
		if (!isgraph((unsigned char) *c) || *c == '/' || *c == '@' || *c == ',' ||
		    *c == '[' || *c == ']' || *c == '#') {
			return IOK_EADDRINVAL;
		}
	}
	if (p != NULL) {
		if (parse_num(p, (size_t) (s + n - p), 65535, &v) != 0) {
			return IOK_EADDRINVAL;
		}
		*port = (uint16_t) v;
	}
	memcpy(host, h, (size_t) (hend - h));
	host[hend - h] = '\0';
	return 0;
}

int
ik_disc_parse_zk_child(const char *s, size_t n, char *host, uint16_t *port, uint16_t *weight)
{
	const char   *end = s + n, *hp_end;
	unsigned long w   = 1;

	*port   = 0;
	*weight = 1;
	if (n == 0 || n > IK_DISC_HOST_MAX + 16) {
		return IOK_EADDRINVAL;
	}
	/* The weight is a third field: after the last ':' when the name has
	 * two (host:port:weight), or after "]:port" for an IPv6 literal. */
	if (s[0] == '[') {
		const char *rb = memchr(s, ']', n);
		const char *c  = rb != NULL && rb + 1 < end && rb[1] == ':'
		                     ? memchr(rb + 2, ':', (size_t) (end - rb - 2))
		                     : NULL;
		hp_end         = c != NULL ? c : end;
	} else {
		const char *c1 = memchr(s, ':', n);
		const char *c2 = c1 != NULL ? memchr(c1 + 1, ':', (size_t) (end - c1 - 1)) : NULL;
		hp_end         = c2 != NULL ? c2 : end;
	}
	if (ik_disc_parse_hostport(s, (size_t) (hp_end - s), host, port) != 0 || *port == 0) {
		return IOK_EADDRINVAL; /* the port is required */
	}
	if (hp_end < end && parse_num(hp_end + 1, (size_t) (end - hp_end - 1), 65535, &w) != 0) {
		return IOK_EADDRINVAL;
	}
	*weight = (uint16_t) w;
	return 0;
}

/* Room for every host of an input of len bytes, each NUL-terminated. */
static char *
storage_for(size_t len)
{
	return malloc(len + 1 + IK_DISC_HOST_MAX);
}

int
ik_disc_parse_list(const char *s, iok_discovery_addr *out, int max, char **storage)
{
	size_t len = strlen(s), used = 0;
	char  *st;
	int    n = 0;

	*storage = NULL;
	if (len == 0 || (st = storage_for(len)) == NULL) {
		return len == 0 ? -IOK_EADDRINVAL : -IOK_ENOMEM;
	}
	for (const char *p = s;;) {
		const char *comma = strchr(p, ',');
		size_t      seg   = comma != NULL ? (size_t) (comma - p) : strlen(p);
		char        host[IK_DISC_HOST_MAX];
		uint16_t    port;
		if (n == max || ik_disc_parse_hostport(p, seg, host, &port) != 0) {
			free(st);
			return -IOK_EADDRINVAL;
		}
		size_t hl = strlen(host);
		memcpy(st + used, host, hl + 1);
		out[n].host   = st + used;
		out[n].port   = port;
		out[n].weight = 1;
		used += hl + 1;
		n++;
		if (comma == NULL) {
			break;
		}
		p = comma + 1;
	}
	*storage = st;
	return n;
}

int
ik_disc_parse_lines(const char *text, size_t len, iok_discovery_addr *out, int max, char **storage)
{
	size_t used = 0;
	char  *st;
	int    n = 0;

	*storage = NULL;
	if (memchr(text, '\0', len) != NULL) {
		return -IOK_EADDRINVAL; /* not a text file */
	}
	if ((st = storage_for(len)) == NULL) {
		return -IOK_ENOMEM;
	}
	for (size_t i = 0; i < len;) {
		const char *line = text + i;
		const char *nl   = memchr(line, '\n', len - i);
		size_t      ll   = nl != NULL ? (size_t) (nl - line) : len - i;
		i += ll + (nl != NULL);
		const char *hash = memchr(line, '#', ll);
		if (hash != NULL) {
			ll = (size_t) (hash - line);
		}
		/* Tokens: host:port, then an optional weight. */
		const char *tok[3];
		size_t      tl[3];
		int         nt = 0;
		for (size_t j = 0; j < ll;) {
			while (j < ll && isspace((unsigned char) line[j])) {
				j++;
			}
			if (j == ll) {
				break;
			}
			size_t b = j;
			while (j < ll && !isspace((unsigned char) line[j])) {
				j++;
			}
			if (nt == 2) {
				nt = 3;
				break;
			}
			tok[nt]  = line + b;
			tl[nt++] = j - b;
		}
		if (nt == 0) {
			continue;
		}
		char          host[IK_DISC_HOST_MAX];
		uint16_t      port;
		unsigned long w = 1;
		if (nt > 2 || n == max || ik_disc_parse_hostport(tok[0], tl[0], host, &port) != 0 ||
		    (nt == 2 && parse_num(tok[1], tl[1], 65535, &w) != 0)) {
			free(st);
			return -IOK_EADDRINVAL;
		}
		size_t hl = strlen(host);
		memcpy(st + used, host, hl + 1);
		out[n].host   = st + used;
		out[n].port   = port;
		out[n].weight = (uint16_t) w;
		used += hl + 1;
		n++;
	}
	*storage = st;
	return n;
}

static char *
dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d != NULL) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

int
ik_disc_split_url(const char *url, int (*tscheme_known)(const char *scheme), char **backend,
    char **target, char **turl)
{
	const char *sep, *rest, *q, *end;
	char        scheme[64];
	size_t      tslen;

	*backend = *target = *turl = NULL;
	if (url == NULL || (sep = strstr(url, "://")) == NULL || sep == url ||
	    (size_t) (sep - url) >= sizeof(scheme)) {
		return IOK_EADDRINVAL;
	}
	for (const char *c = url; c < sep; c++) {
		if (!isalnum((unsigned char) *c) && *c != '+' && *c != '-' && *c != '.') {
			return IOK_EADDRINVAL;
		}
	}
	memcpy(scheme, url, (size_t) (sep - url));
	scheme[sep - url] = '\0';
	for (char *c = scheme; *c; c++) {
		*c = (char) tolower((unsigned char) *c);
	}
	rest = sep + 3;
	q    = strchr(rest, '?');
	end  = q != NULL ? q : rest + strlen(rest);

	if (tscheme_known(scheme)) {
		/* host list: [userinfo@]h1[:p1][,h2[:p2]...][/path][?query] */
		const char *slash = memchr(rest, '/', (size_t) (end - rest));
		const char *aend  = slash != NULL ? slash : end;
		const char *hosts = rest;
		for (const char *c = rest; c < aend; c++) {
			if (*c == '@') {
				hosts = c + 1;
			}
		}
		const char *comma = memchr(hosts, ',', (size_t) (aend - hosts));
		const char *first = comma != NULL ? comma : aend;
		size_t      pre = (size_t) (first - url), post = strlen(aend);
		*backend = strdup("static");
		*target  = dup_n(hosts, (size_t) (aend - hosts));
		*turl    = malloc(pre + post + 1);
		if (*turl != NULL) {
			memcpy(*turl, url, pre);
			memcpy(*turl + pre, aend, post + 1);
		}
	} else {
		/* scheme "<transport>+<backend>" */
		const char *plus = strrchr(scheme, '+');
		if (plus == NULL || plus == scheme || plus[1] == '\0') {
			return IOK_ENOTSUP;
		}
		tslen         = (size_t) (plus - scheme);
		scheme[tslen] = '\0';
		if (!tscheme_known(scheme)) {
			return IOK_ENOTSUP;
		}
		const char *slash = memchr(rest, '/', (size_t) (end - rest));
		const char *aend  = slash != NULL ? slash : end;
		const char *tgt   = rest;
		for (const char *c = rest; c < aend; c++) {
			if (*c == '@') {
				tgt = c + 1;
			}
		}
		/* The transport sees the credentials and the query; the host is a
		 * placeholder, each connection goes to an address of the set. */
		const char *qs   = q != NULL ? q : "";
		size_t      ulen = (size_t) (tgt - rest);
		size_t      n    = tslen + 3 + ulen + 9 + strlen(qs) + 1;
		*backend         = strdup(scheme + tslen + 1);
		*target          = dup_n(tgt, (size_t) (end - tgt));
		if ((*turl = malloc(n)) != NULL) {
			memcpy(*turl, scheme, tslen);
			memcpy(*turl + tslen, "://", 3);
			memcpy(*turl + tslen + 3, rest, ulen);
			strcpy(*turl + tslen + 3 + ulen, "discovery");
			strcat(*turl, qs);
		}
	}
	if (*backend == NULL || *target == NULL || *turl == NULL) {
		free(*backend);
		free(*target);
		free(*turl);
		*backend = *target = *turl = NULL;
		return IOK_ENOMEM;
	}
	return 0;
}

/* ------------------------------------------------------------- DNS */

static int
skip_name(const uint8_t *m, size_t len, size_t *off)
{
	size_t o = *off;
	for (int labels = 0; labels < 128; labels++) {
		if (o >= len) {
			return IOK_EPROTO;
		}
		uint8_t l = m[o];
		if (l == 0) {
			*off = o + 1;
			return 0;
		}
		if ((l & 0xC0) == 0xC0) {
			if (o + 2 > len) {
				return IOK_EPROTO;
			}
			*off = o + 2; /* a pointer ends the name */
			return 0;
		}
		if ((l & 0xC0) != 0) {
			return IOK_EPROTO; /* reserved label types */
		}
		o += 1 + (size_t) l;
	}
	return IOK_EPROTO;
}

int
ik_dns_min_ttl(const uint8_t *m, size_t len, uint32_t *ttl)
{
	size_t   off = 12;
	unsigned qd, an;
	uint32_t best = UINT32_MAX;

	if (len < 12) {
		return IOK_EPROTO;
	}
	qd = (unsigned) m[4] << 8 | m[5];
	an = (unsigned) m[6] << 8 | m[7];
	for (unsigned i = 0; i < qd; i++) {
		if (skip_name(m, len, &off) != 0 || off + 4 > len) {
			return IOK_EPROTO;
		}
		off += 4;
	}
	if (an == 0) {
		return IOK_ENOENT;
	}
	for (unsigned i = 0; i < an; i++) {
		if (skip_name(m, len, &off) != 0 || off + 10 > len) {
			return IOK_EPROTO;
		}
		uint32_t t = (uint32_t) m[off + 4] << 24 | (uint32_t) m[off + 5] << 16 |
		             (uint32_t) m[off + 6] << 8 | m[off + 7];
		size_t rd = (size_t) m[off + 8] << 8 | m[off + 9];
		if (t & 0x80000000u) {
			t = 0; /* RFC 2181: a TTL with the top bit set means zero */
		}
		if (off + 10 + rd > len) {
			return IOK_EPROTO;
		}
		off += 10 + rd;
		if (t < best) {
			best = t;
		}
	}
	*ttl = best;
	return 0;
}
