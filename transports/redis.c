/*
 * redis.c - the "redis" and "redis+unix" transports (resp.h).
 *
 * Framing is resp.c's.  The handshake asks for RESP3 with credentials and
 * a client name in one HELLO (plus a pipelined SELECT for a non-zero db);
 * a server without HELLO gets the RESP2 sequence AUTH, SELECT, CLIENT
 * SETNAME instead, also pipelined.  Replies are matched to an in-order list
 * of what each one answers.
 *
 * Roles: "?role=primary" (or master) / "?role=replica" (or slave) refuse
 * a server whose HELLO says otherwise (IOK_ESTATE: the dialer retries it
 * with backoff and uses the addresses that fit), and with role=primary a
 * READONLY error reply closes the connection after it is delivered: the
 * server was demoted, and the dialer finds the promoted one.  A RESP2
 * server (no HELLO) does not tell its role and is taken as it is.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "iok.h"
#include "resp.h"

/* What a handshake reply answers, i.e. how it is judged. */
enum {
	X_HELLO = 1, /* map/array: RESP3; auth error: refused; else RESP2 */
	X_AUTH,      /* +OK, or our credentials were refused */
	X_SELECT,    /* +OK, or the database is unusable */
	X_IGNORE     /* any well-formed reply (CLIENT SETNAME, stale SELECT) */
};

#define X_MAX 8 /* at most HELLO + SELECT, then AUTH + SELECT + SETNAME */

#define DB_DIGITS 9 /* keeps the number in a 32-bit long */

typedef struct redis_st {
	ik_resp_parser rp;
	size_t         recv_max; /* 0: no limit */
	int            skipping; /* reading an oversize reply to drop it */
	char          *user;     /* NULL: none (HELLO uses "default") */
	char          *password; /* NULL: no authentication */
	char          *name;     /* client name; NULL: none */
	long           db;
	int            proto;     /* 2 or 3 */
	int            role;      /* IK_REDIS_ROLE_* */
	int            want2;     /* protocol=2: skip HELLO */
	int            want_role; /* role=: IK_REDIS_ROLE_*, 0 = any */
	int            started;
	unsigned       head, tail; /* expect[head..tail) still to come */
	uint8_t        expect[X_MAX];
} redis_st;

static void
creds_free(redis_st *s)
{
	free(s->user);
	free(s->password);
	free(s->name);
	s->user = s->password = s->name = NULL;
}

/* parse_db accepts "N" (a decimal database number). */
static int
parse_db(const char *v, long *db)
{
	size_t len = strlen(v);
	long   n   = 0;

	if (len == 0 || len > DB_DIGITS) {
		return -IOK_EADDRINVAL;
	}
	for (; *v; v++) {
		if (*v < '0' || *v > '9') {
			return -IOK_EADDRINVAL;
		}
		n = n * 10 + (*v - '0');
	}
	*db = n;
	return 0;
}

/* name_ok mirrors CLIENT SETNAME's rule (printable, no spaces), so a bad
 * name fails here rather than looking like a server without HELLO. */
static int
name_ok(const char *n)
{
	for (; *n; n++) {
		if (*n < '!' || *n > '~') {
			return 0;
		}
	}
	return 1;
}

static int
opts_from_url(redis_st *s, const ik_url *u, int path_is_db)
{
	char *v;
	int   rv = 0;

	if (path_is_db && u->path != NULL && strcmp(u->path, "/") != 0) {
		if (u->path[0] != '/' || (rv = parse_db(u->path + 1, &s->db)) != 0) {
			return -IOK_EADDRINVAL;
		}
	}
	if ((v = ik_url_query_get(u, "db")) != NULL) {
		rv = parse_db(v, &s->db);
		free(v);
		if (rv != 0) {
			return rv;
		}
	}
	if ((v = ik_url_query_get(u, "protocol")) != NULL) {
		if (strcmp(v, "2") == 0) {
			s->want2 = 1;
		} else if (strcmp(v, "3") != 0) {
			rv = -IOK_EADDRINVAL;
		}
		free(v);
		if (rv != 0) {
			return rv;
		}
	}
	if ((v = ik_url_query_get(u, "role")) != NULL) {
		if (strcmp(v, "primary") == 0 || strcmp(v, "master") == 0) {
			s->want_role = IK_REDIS_ROLE_PRIMARY;
		} else if (strcmp(v, "replica") == 0 || strcmp(v, "slave") == 0) {
			s->want_role = IK_REDIS_ROLE_REPLICA;
		} else if (strcmp(v, "any") != 0) {
			rv = -IOK_EADDRINVAL;
		}
		free(v);
		if (rv != 0) {
			return rv;
		}
	}
	if ((v = ik_url_query_get(u, "name")) != NULL) {
		if (!name_ok(v)) {
			free(v);
			return -IOK_EADDRINVAL;
		}
		s->name = v;
	}
	if (u->user != NULL && u->user[0] != '\0' && (s->user = strdup(u->user)) == NULL) {
		return -IOK_ENOMEM;
	}
	if (u->password != NULL && (s->password = strdup(u->password)) == NULL) {
		return -IOK_ENOMEM;
	}
	return 0;
}

static int
redis_init(void *arg, const ik_tran_params *p, int path_is_db)
{
	redis_st *s = arg;
	int       rv;

	ik_resp_parser_init(&s->rp, p->recv_max, 0);
	s->recv_max = p->recv_max;
	s->proto    = 3;
	s->role     = IK_REDIS_ROLE_UNKNOWN;
	if (p->url != NULL && (rv = opts_from_url(s, p->url, path_is_db)) != 0) {
		creds_free(s);
		return rv;
	}
	if (s->name == NULL && (s->name = strdup("iok")) == NULL) {
		creds_free(s);
		return -IOK_ENOMEM;
	}
	if (s->want2) {
		s->proto = 2;
	}
	return 0;
}

static int
redis_init_tcp(void *arg, const ik_tran_params *p)
{
	return redis_init(arg, p, 1);
}

/* For redis+unix the URL's path is the socket; the db comes from ?db=. */
static int
redis_init_unix(void *arg, const ik_tran_params *p)
{
	return redis_init(arg, p, 0);
}

static void
redis_fini(void *arg)
{
	creds_free(arg);
}

/* ------------------------------------------------------------ handshake */

static int
queue(redis_st *s, ik_buf *out, uint8_t kind, int argc, const char *const *argv)
{
	int rv;

	if (s->tail >= X_MAX) {
		return -IOK_EINTERNAL;
	}
	if ((rv = ik_resp_format_argv(out, argc, argv, NULL)) != 0) {
		return -rv;
	}
	s->expect[s->tail++] = kind;
	return 0;
}

static int
queue_select(redis_st *s, ik_buf *out)
{
	char        num[24];
	const char *argv[2] = { "SELECT", num };

	if (s->db == 0) {
		return 0;
	}
	snprintf(num, sizeof(num), "%ld", s->db);
	return queue(s, out, X_SELECT, 2, argv);
}

static int
queue_hello(redis_st *s, ik_buf *out)
{
	const char *argv[7];
	int         n = 0, rv;

	argv[n++] = "HELLO";
	argv[n++] = "3";
	if (s->password != NULL) {
		argv[n++] = "AUTH";
		argv[n++] = s->user != NULL ? s->user : "default";
		argv[n++] = s->password;
	}
	if (s->name[0] != '\0') {
		argv[n++] = "SETNAME";
		argv[n++] = s->name;
	}
	if ((rv = queue(s, out, X_HELLO, n, argv)) != 0) {
		return rv;
	}
	return queue_select(s, out);
}

/* queue_resp2 sends what HELLO would have done, the RESP2 way. */
static int
queue_resp2(redis_st *s, ik_buf *out)
{
	const char *argv[3];
	int         n = 0, rv;

	s->proto = 2;
	if (s->password != NULL) {
		argv[n++] = "AUTH";
		if (s->user != NULL) {
			argv[n++] = s->user;
		}
		argv[n++] = s->password;
		if ((rv = queue(s, out, X_AUTH, n, argv)) != 0) {
			return rv;
		}
	}
	if ((rv = queue_select(s, out)) != 0) {
		return rv;
	}
	if (s->name[0] != '\0') {
		argv[0] = "CLIENT";
		argv[1] = "SETNAME";
		argv[2] = s->name;
		return queue(s, out, X_IGNORE, 3, argv);
	}
	return 0;
}

static int
has_prefix(const ik_resp_item *it, const char *p)
{
	size_t n = strlen(p);
	return it->len >= n && strncasecmp((const char *) it->str, p, n) == 0;
}

/* auth_error tells refused credentials from "no such command/protocol",
 * across Redis versions and forks. */
static int
auth_error(const ik_resp_item *it)
{
	static const char *const pfx[] = { "WRONGPASS", "NOAUTH", "NOPERM", "ERR invalid password",
		"ERR invalid username", "ERR AUTH", "ERR Client sent AUTH", "INVALIDPASSWORD",
		"ERR Authentication" };

	for (size_t i = 0; i < sizeof(pfx) / sizeof(pfx[0]); i++) {
		if (has_prefix(it, pfx[i])) {
			return 1;
		}
	}
	return 0;
}

static int
is_ok(const ik_resp_item *it)
{
	return it->type == IK_RESP_SIMPLE && it->len == 2 && memcmp(it->str, "OK", 2) == 0;
}

static int
is_str(const ik_resp_item *it, const char *s)
{
	size_t n = strlen(s);
	return (it->type == IK_RESP_SIMPLE || it->type == IK_RESP_BULK) && it->len == n &&
	       memcmp(it->str, s, n) == 0;
}

/* hello_info reads "proto" and "role" from HELLO's map (or flat array of
 * key, value): the top-level entries are the items at depth 1. */
static int
hello_info(redis_st *s, const uint8_t *frame, size_t len)
{
	ik_resp_iter it;
	ik_resp_item item, key;
	int          rv, nth = 0;

	memset(&key, 0, sizeof(key));
	ik_resp_iter_init(&it, frame, len);
	while ((rv = ik_resp_iter_next(&it, &item)) == 1) {
		if (item.depth != 1 || item.type == IK_RESP_ATTR) {
			continue;
		}
		if (nth++ % 2 == 0) {
			key = item;
			continue;
		}
		if (is_str(&key, "proto") && item.type == IK_RESP_INTEGER &&
		    (item.i == 2 || item.i == 3)) {
			s->proto = (int) item.i;
		} else if (is_str(&key, "role")) {
			if (is_str(&item, "master")) {
				s->role = IK_REDIS_ROLE_PRIMARY;
			} else if (is_str(&item, "replica") || is_str(&item, "slave")) {
				s->role = IK_REDIS_ROLE_REPLICA;
			}
		}
	}
	return rv == 0 ? 0 : -IOK_EPROTO;
}

/* on_reply judges one complete handshake reply. */
static int
on_reply(redis_st *s, const uint8_t *frame, size_t len, ik_buf *out)
{
	ik_resp_item top;
	int          err;

	if (ik_resp_top(frame, len, &top) != 1) {
		return -IOK_EPROTO;
	}
	if (top.type == IK_RESP_PUSH) {
		return 0; /* unsolicited, answers nothing of ours */
	}
	err = top.type == IK_RESP_ERROR || top.type == IK_RESP_BLOBERR;
	switch (s->expect[s->head++]) {
	case X_HELLO:
		if ((top.type == IK_RESP_MAP || top.type == IK_RESP_ARRAY) && !top.null) {
			s->proto = 3;
			return hello_info(s, frame, len);
		}
		if (!err) {
			return -IOK_EPROTO;
		}
		if (auth_error(&top)) {
			return -IOK_EPEERAUTH;
		}
		/* No HELLO (Redis < 6, a proxy): a SELECT sent along with it
		 * was judged before our AUTH, so its answer means nothing. */
		for (unsigned i = s->head; i < s->tail; i++) {
			s->expect[i] = X_IGNORE;
		}
		return queue_resp2(s, out);
	case X_AUTH:
		if (is_ok(&top)) {
			return 0;
		}
		return err ? -IOK_EPEERAUTH : -IOK_EPROTO;
	case X_SELECT:
		return is_ok(&top) ? 0 : -IOK_EPROTO;
	default:
		return 0;
	}
}

static int
redis_handshake(void *arg, const uint8_t *in, size_t len, size_t *used, ik_buf *out)
{
	redis_st *s   = arg;
	size_t    off = 0, need;
	int       rv;

	*used = 0;
	if (!s->started) {
		s->started = 1;
		rv         = s->want2 ? queue_resp2(s, out) : queue_hello(s, out);
		if (rv != 0) {
			return rv;
		}
	}
	while (s->head < s->tail && in != NULL && off < len) {
		ssize_t n = ik_resp_parse(&s->rp, in + off, len - off, &need);
		if (n < 0) {
			return (int) n;
		}
		if (n == 0) {
			break;
		}
		rv = on_reply(s, in + off, (size_t) n, out);
		off += (size_t) n;
		if (rv != 0) {
			return rv;
		}
	}
	*used = off;
	if (s->head < s->tail) {
		return IK_HS_MORE;
	}
	creds_free(s); /* no longer needed: keep secrets short-lived */
	if (s->want_role != 0 && s->role != IK_REDIS_ROLE_UNKNOWN && s->role != s->want_role) {
		/* Not what the URL asked for: the dialer tries again later (the
		 * roles may change) and meanwhile uses the other addresses. */
		return -IOK_ESTATE;
	}
	return IK_HS_DONE;
}

/* ------------------------------------------------------- frames, encode */

static ssize_t
redis_frame(void *arg, const uint8_t *buf, size_t len, ik_frame *f)
{
	redis_st *s = arg;
	size_t    need;
	ssize_t   n = ik_resp_parse(&s->rp, buf, len, &need);

	f->need = need;
	if (n > 0) {
		f->body_off = 0;
		f->body_len = (size_t) n;
		if (s->skipping) {
			s->skipping = 0;
			ik_resp_parser_set_max(&s->rp, s->recv_max);
		}
	}
	return n;
}

static void
redis_set_recv_max(void *arg, size_t recv_max)
{
	redis_st *s = arg;
	s->recv_max = recv_max;
	if (!s->skipping) {
		ik_resp_parser_set_max(&s->rp, recv_max);
	}
}

static size_t
redis_skip(void *arg, const uint8_t *buf, size_t len)
{
	redis_st *s = arg;

	if (buf == NULL) {
		ik_resp_parser_reset(&s->rp);
		ik_resp_parser_set_max(&s->rp, 0);
		s->skipping = 1;
		return 0;
	}
	return ik_resp_parse_forget(&s->rp, buf, len);
}

/* RESP3 pushes ('>', maybe behind an attribute) are unsolicited.  On a
 * connection that asked for a primary, a READONLY error says the server
 * was demoted: the reply is delivered (the write fails clearly) and the
 * connection closes, so traffic moves to the new primary. */
static int
redis_classify(void *arg, const uint8_t *body, size_t len)
{
	redis_st    *s = arg;
	ik_resp_item top;

	if (s->want_role == IK_REDIS_ROLE_PRIMARY && len >= 9 && body[0] == '-' &&
	    memcmp(body + 1, "READONLY", 8) == 0) {
		return IK_FRAME_LAST;
	}
	if (len == 0 || body[0] != '|') {
		return len > 0 && body[0] == '>' ? IK_FRAME_PUSH : IK_FRAME_REPLY;
	}
	if (ik_resp_top(body, len, &top) == 1 && top.type == IK_RESP_PUSH) {
		return IK_FRAME_PUSH;
	}
	return IK_FRAME_REPLY;
}

/* A message is sent as is; it must be exactly one command so that replies
 * stay matched to requests. */
static ssize_t
redis_encode(void *arg, const uint8_t *hdr, size_t hdr_len, const uint8_t *body, size_t body_len,
    uint8_t *prefix)
{
	if (hdr_len != 0 || body == NULL || !ik_resp_is_command(body, body_len)) {
		return -IOK_EINVAL;
	}
	return 0;
}

/* subscribe: SUBSCRIBE / UNSUBSCRIBE / PSUBSCRIBE / PUNSUBSCRIBE topic.  Only
 * on RESP3, where the server's answers are pushes and commands keep flowing
 * on the connection; a RESP2 connection in subscribed mode takes nothing
 * else, and its answers would read as replies to our requests. */
static int
redis_subscribe(void *arg, const uint8_t *topic, size_t len, unsigned how, ik_buf *out)
{
	redis_st   *s = arg;
	const char *argv[2];
	size_t      lens[2];
	int         rv;

	if (s->proto != 3) {
		return -IOK_ENOTSUP;
	}
	if (topic == NULL && len > 0) {
		return -IOK_EINVAL;
	}
	if (how & 0x02) { /* IK_SUB_PATTERN */
		argv[0] = (how & 0x01) ? "PSUBSCRIBE" : "PUNSUBSCRIBE";
	} else {
		argv[0] = (how & 0x01) ? "SUBSCRIBE" : "UNSUBSCRIBE";
	}
	lens[0] = strlen(argv[0]);
	argv[1] = topic != NULL ? (const char *) topic : "";
	lens[1] = len;
	if ((rv = ik_resp_format_argv(out, 2, argv, lens)) != 0) {
		return -rv;
	}
	return 0;
}

/* The health check of an idle connection: PING.  Its answer is +PONG, or
 * an error the server chose to give (-LOADING, -BUSY...), which still
 * proves the connection and the server's loop alive. */
static int
redis_probe(void *arg, ik_buf *out)
{
	static const char ping[] = "*1\r\n$4\r\nPING\r\n";
	(void) arg;
	return ik_buf_append(out, ping, sizeof(ping) - 1) != 0 ? -IOK_ENOMEM : 0;
}

static int
redis_probe_ok(void *arg, const uint8_t *body, size_t len)
{
	(void) arg;
	return (len == 7 && memcmp(body, "+PONG\r\n", 7) == 0) || (len > 0 && body[0] == '-');
}

int
ik_redis_protocol(void *st)
{
	return ((redis_st *) st)->proto;
}

int
ik_redis_role(void *st)
{
	return ((redis_st *) st)->role;
}

/* The TCP and unix-socket forms differ only in how they are reached. */
#define REDIS_TRANSPORT(sym, name, kind, port, init_fn)     \
	const ik_transport sym = {                          \
		.scheme       = name,                       \
		.flags        = IK_TF_INORDER | IK_TF_PUSH, \
		.addr         = kind,                       \
		.def_port     = port,                       \
		.state_size   = sizeof(redis_st),           \
		.init         = init_fn,                    \
		.fini         = redis_fini,                 \
		.handshake    = redis_handshake,            \
		.frame        = redis_frame,                \
		.skip         = redis_skip,                 \
		.set_recv_max = redis_set_recv_max,         \
		.classify     = redis_classify,             \
		.encode       = redis_encode,               \
		.subscribe    = redis_subscribe,            \
		.probe        = redis_probe,                \
		.probe_ok     = redis_probe_ok,             \
	};

REDIS_TRANSPORT(ik_tran_redis, "redis", IK_ADDR_TCP, 6379, redis_init_tcp)
REDIS_TRANSPORT(ik_tran_redis_unix, "redis+unix", IK_ADDR_UNIX, 0, redis_init_unix)
