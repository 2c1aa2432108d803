/*
 * postgres.c - the "postgresql" / "postgres" transports: PostgreSQL's
 * frontend/backend protocol v3, sans I/O.
 *
 * Handshake: StartupMessage (user, database, application_name, options,
 * client_encoding UTF8), then trust, cleartext, md5 or SCRAM-SHA-256
 * (pg_auth.c), ParameterStatus, BackendKeyData, up to ReadyForQuery.
 *
 * Framing: the reply to one request is every backend message up to and
 * including its ReadyForQuery, cut as ONE frame.  A NotificationResponse
 * is a frame of its own, classified as a push; the server sends it just
 * before a ReadyForQuery, i.e. inside a reply, so frame() moves it ahead of
 * the reply's earlier messages in the pipe's buffer (see transport.h).
 * Notices and parameter changes arriving between replies are consumed.
 *
 * Requests: the compact body of pg_codec.h becomes, per request, [Close of
 * evicted statements] [Parse] Bind Describe Execute Sync (or a simple
 * Query), so an error fails its own request only.  Statements are named
 * and kept in a bounded LRU cache per connection (this state), so a new
 * connection prepares them again.  An in-order list of what each reply
 * answers tells our own requests (LISTEN, UNLISTEN, ROLLBACK), whose
 * replies are consumed here, from the application's.
 *
 * Roles (libpq's ?target_session_attrs=any|read-write|read-only|primary|
 * standby|prefer-standby): the server's in_hot_standby and
 * default_transaction_read_only ParameterStatus (PostgreSQL 14+; before,
 * one query at the end of the handshake asks) decide whether it fits.  One
 * that does not fails the handshake with IOK_ESTATE (the dialer retries
 * it with backoff and uses the addresses that fit, as Redis's ?role=).  A
 * change reported later (a standby promoted, a primary made read-only) is
 * judged again: a connection that no longer fits closes after the reply
 * that told it.  On a read-write or primary connection, a write refused
 * with SQLSTATE 25006 outside a transaction block (the server went
 * read-only) is delivered and then closes the connection too; inside a
 * block it may be the application's own BEGIN READ ONLY, so it is only an
 * error.  prefer-standby takes any server and ranks primaries after
 * standbys (the rank hook): pipelined-db routes to a standby when one is
 * up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "iok.h"
#include "pg_codec.h"
#include "transport.h"

#define PG_STMT_MAX 256     /* prepared statements kept per connection */
#define PG_HS_MSG_MAX 65536 /* largest handshake message we accept */
#define PG_COLS_MAX 1664    /* the server's own column limit */
#define PG_NOTIFY_MAX 65536 /* a NotificationResponse kept while skipping */
#define NO_HOLD ((size_t) -1)

/* target_session_attrs */
enum { TSA_ANY = 0, TSA_READ_WRITE, TSA_READ_ONLY, TSA_PRIMARY, TSA_STANDBY, TSA_PREFER_STANDBY };

/* Asked at the end of the handshake when the server does not report
 * in_hot_standby (before PostgreSQL 14); libpq asks the same two things. */
#define PG_ROLE_QUERY                             \
	"SELECT pg_catalog.pg_is_in_recovery(), " \
	"pg_catalog.current_setting('transaction_read_only')"

/* What a reply answers. */
enum { E_APP = 1, E_INTERNAL };

typedef struct pg_expect {
	uint8_t  kind;
	uint8_t  parse; /* the request carried a Parse */
	int32_t  slot;  /* statement cache slot, -1 none */
	uint32_t sid;   /* that slot's statement id then */
} pg_expect;

typedef struct pg_stmt {
	uint8_t  *key; /* sql + parameter oids */
	size_t    key_len;
	uint64_t  hash;
	uint64_t  lru;
	uint32_t  id; /* name "ik<id>"; 0 = free slot */
	int       desc_known;
	uint32_t  ncols;
	uint32_t *oids;
} pg_stmt;

typedef struct pg_st {
	size_t      recv_max;
	int         shared; /* a subscriber shares the connection: send markers */
	char       *user, *password, *database, *appname, *options;
	int         started, authed, marker;
	int         scram_on;
	ik_pg_scram scram;
	uint32_t    pid, secret;
	char        txstatus;
	char        why[200]; /* the server's startup refusal, for error_text */

	int    want;    /* TSA_* */
	int8_t hot, ro; /* in_hot_standby, default_transaction_read_only:
	                   1 on, 0 off, -1 not known */
	int    probing; /* the role query was sent; its reply is awaited */
	int    ro_err;  /* the frame being cut holds a 25006 error */

	size_t scan; /* complete messages of the current frame seen so far */

	/* An oversize reply being stepped over (transport.h, skip). */
	int    ov;       /* frame() refused a frame; classify() not yet told */
	int    ov_alone; /* that frame is one message, not a reply */
	int    skipping;
	size_t drop; /* bytes of a message being dropped, past buf's end */
	size_t hold; /* notifications kept (from here to scan), or NO_HOLD */

	pg_expect *q; /* ring of outstanding replies */
	size_t     qcap, qhead, qlen;

	pg_stmt  stmts[PG_STMT_MAX];
	uint64_t tick;
	uint32_t next_id;
	uint32_t closes[PG_STMT_MAX]; /* statements to Close with the next request */
	size_t   nclose;
} pg_st;

int
ik_pg_backend_type_ok(uint8_t c)
{
	return c != 0 && strchr("RKSZTDCIENA123nstcGHWdVv", c) != NULL;
}

const char *
ik_pg_err_field(const uint8_t *body, size_t len, char code)
{
	size_t i = 0;
	while (i < len && body[i] != 0) {
		char           c   = (char) body[i];
		const uint8_t *end = memchr(body + i + 1, 0, len - i - 1);
		if (end == NULL) {
			return NULL;
		}
		if (c == code) {
			return (const char *) body + i + 1;
		}
		i = (size_t) (end - body) + 1;
	}
	return NULL;
}

void
ik_pg_cancel_request(uint32_t pid, uint32_t secret, uint8_t out[16])
{
	ik_pg_put_u32(out, 16);
	ik_pg_put_u32(out + 4, IK_PG_CANCEL_CODE);
	ik_pg_put_u32(out + 8, pid);
	ik_pg_put_u32(out + 12, secret);
}

/* ------------------------------------------------------------ settings */

static void
wipe_free(char *s)
{
	if (s != NULL) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

static void
creds_free(pg_st *s)
{
	wipe_free(s->password);
	s->password = NULL;
	if (s->scram_on) {
		ik_pg_scram_fini(&s->scram);
		s->scram_on = 0;
	}
}

static int
dup_opt(char **dst, const char *v)
{
	if (v != NULL && (*dst = strdup(v)) == NULL) {
		return -IOK_ENOMEM;
	}
	return 0;
}

static const char *const tsa_names[] = { "any", "read-write", "read-only", "primary", "standby",
	"prefer-standby" };

static int
tsa_from_url(pg_st *s, const ik_url *u)
{
	char *v  = ik_url_query_get(u, "target_session_attrs");
	int   rv = -IOK_EADDRINVAL;

	s->hot = s->ro = -1;
	if (v == NULL) {
		return 0;
	}
	for (int i = 0; i < (int) (sizeof(tsa_names) / sizeof(tsa_names[0])); i++) {
		if (strcmp(v, tsa_names[i]) == 0) {
			s->want = i;
			rv      = 0;
		}
	}
	free(v);
	return rv;
}

static int
pg_init(void *arg, const ik_tran_params *p)
{
	pg_st        *s  = arg;
	const ik_url *u  = p->url;
	int           rv = 0;

	s->recv_max = p->recv_max;
	s->shared   = p->shared;
	s->next_id  = 1;
	if (u == NULL) {
		return -IOK_EADDRINVAL;
	}
	s->appname = ik_url_query_get(u, "application_name");
	s->options = ik_url_query_get(u, "options");
	if ((s->user = ik_url_query_get(u, "user")) == NULL) {
		rv = dup_opt(&s->user, u->user);
	}
	if (rv == 0 && (s->password = ik_url_query_get(u, "password")) == NULL) {
		rv = dup_opt(&s->password, u->password);
	}
	if (rv == 0 && (s->database = ik_url_query_get(u, "dbname")) == NULL) {
		rv = dup_opt(&s->database, u->database); /* url.c: libpq's reading */
	}
	if (rv == 0 && (s->user == NULL || s->user[0] == '\0')) {
		rv = -IOK_EADDRINVAL; /* no user: libpq would guess the OS user */
	}
	if (rv == 0) {
		rv = tsa_from_url(s, u);
	}
	return rv;
}

static void
pg_fini(void *arg)
{
	pg_st *s = arg;
	creds_free(s);
	free(s->user);
	free(s->database);
	free(s->appname);
	free(s->options);
	for (size_t i = 0; i < PG_STMT_MAX; i++) {
		free(s->stmts[i].key);
		free(s->stmts[i].oids);
	}
	free(s->q);
}

/* ------------------------------------------------------------- output */

/* msg_begin starts a message of type t in out (t 0: startup, no type
 * byte) and returns the offset of its length field. */
static int
msg_begin(ik_buf *out, uint8_t t, size_t *lenoff)
{
	uint8_t hdr[5] = { t, 0, 0, 0, 0 };
	*lenoff        = out->len + (t ? 1 : 0);
	return ik_buf_append(out, t ? hdr : hdr + 1, t ? 5 : 4);
}

static void
msg_end(ik_buf *out, size_t lenoff)
{
	ik_pg_put_u32(out->data + lenoff, (uint32_t) (out->len - lenoff));
}

static int
put_str(ik_buf *out, const char *s)
{
	return ik_buf_append(out, s, strlen(s) + 1);
}

static int
put_u32(ik_buf *out, uint32_t v)
{
	uint8_t b[4];
	ik_pg_put_u32(b, v);
	return ik_buf_append(out, b, 4);
}

static int
put_u16(ik_buf *out, uint16_t v)
{
	uint8_t b[2];
	ik_pg_put_u16(b, v);
	return ik_buf_append(out, b, 2);
}

static int
startup(pg_st *s, ik_buf *out)
{
	size_t lo;
	int rv = msg_begin(out, 0, &lo) || put_u32(out, IK_PG_PROTO_V3) || put_str(out, "user") ||
	         put_str(out, s->user) || put_str(out, "client_encoding") || put_str(out, "UTF8");
	if (rv == 0 && s->database != NULL) {
		rv = put_str(out, "database") || put_str(out, s->database);
	}
	if (rv == 0 && s->appname != NULL) {
		rv = put_str(out, "application_name") || put_str(out, s->appname);
	}
	if (rv == 0 && s->options != NULL) {
		rv = put_str(out, "options") || put_str(out, s->options);
	}
	if (rv != 0 || ik_buf_append(out, "", 1) != 0) {
		return -IOK_ENOMEM;
	}
	msg_end(out, lo);
	return 0;
}

/* password_msg sends 'p' with data[0..len). */
static int
password_msg(ik_buf *out, const void *data, size_t len)
{
	size_t lo;
	if (msg_begin(out, 'p', &lo) != 0 || ik_buf_append(out, data, len) != 0) {
		return -IOK_ENOMEM;
	}
	msg_end(out, lo);
	return 0;
}

/* -------------------------------------------------------------- roles */

static int8_t
onoff(const char *v, const char *on, const char *off)
{
	return strcmp(v, on) == 0 ? 1 : strcmp(v, off) == 0 ? 0 : -1;
}

/* A ParameterStatus body is name NUL value NUL; only the two that tell
 * the role are kept.  -IOK_EPROTO if malformed. */
static int
param_status(pg_st *s, const uint8_t *b, size_t len)
{
	const uint8_t *z = len > 0 ? memchr(b, 0, len) : NULL;
	const uint8_t *vz;
	const char    *name = (const char *) b, *val;

	if (z == NULL) {
		return -IOK_EPROTO;
	}
	val = (const char *) z + 1;
	vz  = memchr(z + 1, 0, len - (size_t) (z + 1 - b));
	if (vz == NULL || vz + 1 != b + len) {
		return -IOK_EPROTO;
	}
	if (strcmp(name, "in_hot_standby") == 0) {
		s->hot = onoff(val, "on", "off");
	} else if (strcmp(name, "default_transaction_read_only") == 0) {
		s->ro = onoff(val, "on", "off");
	}
	return 0;
}

/* Does the server fit target_session_attrs (libpq's meanings)?  What is
 * not known does not fit a strict wish. */
static int
fits(const pg_st *s)
{
	switch (s->want) {
	case TSA_READ_WRITE:
		return s->hot == 0 && s->ro == 0;
	case TSA_READ_ONLY:
		return s->hot == 1 || s->ro == 1;
	case TSA_PRIMARY:
		return s->hot == 0;
	case TSA_STANDBY:
		return s->hot == 1;
	default:
		return 1;
	}
}

static const char *
tri(int8_t v)
{
	return v < 0 ? "unknown" : v ? "on" : "off";
}

static int
refuse_role(pg_st *s)
{
	snprintf(s->why, sizeof(s->why),
	    "server does not fit target_session_attrs=%s (in_hot_standby=%s, "
	    "default_transaction_read_only=%s)",
	    tsa_names[s->want], tri(s->hot), tri(s->ro));
	return -IOK_ESTATE;
}

/* One text DataRow of the role query: pg_is_in_recovery() ("t"/"f") and
 * transaction_read_only ("on"/"off"). */
static int
probe_row(pg_st *s, const uint8_t *b, size_t len)
{
	char   v[2][8];
	size_t pos = 2;

	if (len < 2 || ik_pg_u16(b) != 2) {
		return -IOK_EPROTO;
	}
	for (int i = 0; i < 2; i++) {
		if (len - pos < 4) {
			return -IOK_EPROTO;
		}
		int32_t n = (int32_t) ik_pg_u32(b + pos);
		pos += 4;
		if (n < -1 || (n > 0 && (size_t) n > len - pos)) {
			return -IOK_EPROTO;
		}
		if (n < 0) {
			n = 0; /* NULL: not known */
		}
		snprintf(v[i], sizeof(v[i]), "%.*s", n < 7 ? (int) n : 7, (const char *) b + pos);
		pos += (size_t) n;
	}
	if (pos != len) {
		return -IOK_EPROTO;
	}
	s->hot = onoff(v[0], "t", "f");
	s->ro  = onoff(v[1], "on", "off");
	return 0;
}

/* rank: 0 for a server that is what the URL asked for; prefer-standby's
 * primary is 1, used only while no standby is up. */
static int
pg_rank(void *st)
{
	pg_st *s = st;
	return s->want == TSA_PREFER_STANDBY && s->hot != 1 ? 1 : 0;
}

/* ---------------------------------------------------------- handshake */

static int
has_mech(const uint8_t *b, size_t len, const char *mech)
{
	size_t i = 0;
	while (i < len && b[i] != 0) {
		const uint8_t *end = memchr(b + i, 0, len - i);
		if (end == NULL) {
			return 0;
		}
		if ((size_t) (end - b - i) == strlen(mech) &&
		    memcmp(b + i, mech, strlen(mech)) == 0) {
			return 1;
		}
		i = (size_t) (end - b) + 1;
	}
	return 0;
}

static int
on_auth(pg_st *s, const uint8_t *b, size_t len, ik_buf *out)
{
	uint32_t code;
	int      rv;

	if (len < 4) {
		return -IOK_EPROTO;
	}
	code = ik_pg_u32(b);
	b += 4;
	len -= 4;
	if (code != IK_PG_AUTH_OK && code != IK_PG_AUTH_SASL_CONT &&
	    code != IK_PG_AUTH_SASL_FINAL && s->password == NULL) {
		return -IOK_EPEERAUTH; /* the server wants a password we lack */
	}
	switch (code) {
	case IK_PG_AUTH_OK:
		if (s->scram_on && s->scram.step != 3) {
			return -IOK_EPEERAUTH; /* SCRAM unfinished: server unproven */
		}
		s->authed = 1;
		creds_free(s); /* keep secrets short-lived */
		return 0;
	case IK_PG_AUTH_CLEARTEXT:
		return password_msg(out, s->password, strlen(s->password) + 1);
	case IK_PG_AUTH_MD5: {
		char md5[36];
		if (len != 4) {
			return -IOK_EPROTO;
		}
		if (ik_pg_md5_password(s->user, s->password, b, md5) != 0) {
			return -IOK_ECRYPTO;
		}
		rv = password_msg(out, md5, sizeof(md5));
		OPENSSL_cleanse(md5, sizeof(md5));
		return rv;
	}
	case IK_PG_AUTH_SASL: {
		ik_buf first;
		size_t lo;
		if (!has_mech(b, len, "SCRAM-SHA-256") || s->scram_on) {
			return s->scram_on ? -IOK_EPROTO : -IOK_ENOTSUP;
		}
		ik_buf_init(&first);
		s->scram_on = 1;
		rv          = ik_pg_scram_start(&s->scram, NULL, &first);
		if (rv == 0 && (msg_begin(out, 'p', &lo) || put_str(out, "SCRAM-SHA-256") ||
		                   put_u32(out, (uint32_t) first.len) ||
		                   ik_buf_append(out, first.data, first.len))) {
			rv = IOK_ENOMEM;
		}
		if (rv == 0) {
			msg_end(out, lo);
		}
		ik_buf_fini(&first);
		return -rv;
	}
	case IK_PG_AUTH_SASL_CONT: {
		ik_buf fin;
		if (!s->scram_on || s->password == NULL) {
			return -IOK_EPROTO;
		}
		ik_buf_init(&fin);
		rv = ik_pg_scram_final(&s->scram, s->password, b, len, &fin);
		if (rv == 0) {
			rv = -password_msg(out, fin.data, fin.len);
		}
		if (fin.data != NULL) {
			OPENSSL_cleanse(fin.data, fin.cap);
		}
		ik_buf_fini(&fin);
		return rv < 0 ? rv : -rv;
	}
	case IK_PG_AUTH_SASL_FINAL:
		if (!s->scram_on) {
			return -IOK_EPROTO;
		}
		return -ik_pg_scram_verify(&s->scram, b, len);
	default:
		return -IOK_ENOTSUP; /* Kerberos, GSSAPI, SSPI: not ours */
	}
}

/* A refusal during startup: credentials (class 28) or anything else
 * (no such database, too many connections...). */
static int
startup_error(pg_st *s, const uint8_t *b, size_t len)
{
	const char *code = ik_pg_err_field(b, len, 'C');
	const char *sev  = ik_pg_err_field(b, len, 'S');
	const char *text = ik_pg_err_field(b, len, 'M');
	/* The server's own words; it never echoes a password. */
	snprintf(s->why, sizeof(s->why), "%s %s %s", sev ? sev : "ERROR", code ? code : "?????",
	    text ? text : "(no message)");
	if (code != NULL && strncmp(code, "28", 2) == 0) {
		return -IOK_EPEERAUTH;
	}
	return -IOK_ECONNREFUSED;
}

static int
probe_send(ik_buf *out)
{
	size_t lo;
	if (msg_begin(out, 'Q', &lo) || put_str(out, PG_ROLE_QUERY)) {
		return -IOK_ENOMEM;
	}
	msg_end(out, lo);
	return 0;
}

static int
pg_handshake(void *arg, const uint8_t *in, size_t len, size_t *used, ik_buf *out)
{
	pg_st *s   = arg;
	size_t off = 0;
	int    rv;

	*used = 0;
	if (!s->started) {
		s->started = 1;
		if ((rv = startup(s, out)) != 0) {
			return rv;
		}
	}
	while (in != NULL && len - off >= 5) {
		uint8_t  t = in[off];
		uint32_t L = ik_pg_u32(in + off + 1);
		if (L < 4 || L > PG_HS_MSG_MAX) {
			return -IOK_EPROTO;
		}
		if (len - off < (size_t) L + 1) {
			break;
		}
		const uint8_t *b  = in + off + 5;
		size_t         bl = L - 4;
		switch (t) {
		case 'R':
			if (s->authed) {
				return -IOK_EPROTO;
			}
			rv = on_auth(s, b, bl, out);
			break;
		case 'E':
			/* A failed role query leaves the role unknown. */
			rv = s->probing == 1 ? 0 : startup_error(s, b, bl);
			break;
		case 'K':
			if (bl != 8) {
				return -IOK_EPROTO;
			}
			s->pid    = ik_pg_u32(b);
			s->secret = ik_pg_u32(b + 4);
			rv        = 0;
			break;
		case 'S': /* ParameterStatus */
			rv = param_status(s, b, bl);
			break;
		case 'N': /* NoticeResponse */
		case 'v': /* NegotiateProtocolVersion: we ask for nothing optional */
			rv = 0;
			break;
		case 'T': /* the role query's reply */
		case 'C':
			rv = s->probing == 1 ? 0 : -IOK_EPROTO;
			break;
		case 'D':
			rv = s->probing == 1 ? probe_row(s, b, bl) : -IOK_EPROTO;
			break;
		case 'Z':
			if (!s->authed || bl != 1) {
				return -IOK_EPROTO;
			}
			s->txstatus = (char) b[0];
			if (s->probing == 0 && s->want != TSA_ANY && s->hot < 0) {
				/* No in_hot_standby (server < 14): ask. */
				s->probing = 1;
				if ((rv = probe_send(out)) != 0) {
					return rv;
				}
				break;
			}
			s->probing = 2;
			if (!fits(s)) {
				/* Not what the URL asked for: the dialer tries again
				 * later (roles change) and meanwhile uses the other
				 * addresses. */
				return refuse_role(s);
			}
			if (s->shared) {
				/* Left in the buffer: framed as the reconnect marker. */
				s->marker = 1;
			} else {
				off += (size_t) L + 1;
			}
			*used = off;
			return IK_HS_DONE;
		default:
			return -IOK_EPROTO;
		}
		if (rv != 0) {
			return rv;
		}
		off += (size_t) L + 1;
	}
	*used = off;
	return IK_HS_MORE;
}

/* ------------------------------------------------------------ framing */

static void
reverse(uint8_t *b, size_t n)
{
	for (size_t i = 0, j = n; i + 1 < j; i++, j--) {
		uint8_t t = b[i];
		b[i]      = b[j - 1];
		b[j - 1]  = t;
	}
}

/* IOK_OPT_RECVMAXSZ changed at runtime: from the next message on. */
static void
pg_set_recv_max(void *arg, size_t recv_max)
{
	((pg_st *) arg)->recv_max = recv_max;
}

/* A message that is a frame by itself when it comes first: a
 * notification, or a notice / parameter change / error / ready between
 * replies (none outstanding, or the reconnect marker still due). */
static int
is_alone(const pg_st *s, uint8_t t)
{
	return t == 'A' ||
	       ((s->qlen == 0 || s->marker) && (t == 'N' || t == 'S' || t == 'E' || t == 'Z'));
}

static ssize_t frame_skip(pg_st *s, uint8_t *buf, size_t len, ik_frame *f);

static ssize_t
pg_frame(void *arg, const uint8_t *cbuf, size_t len, ik_frame *f)
{
	pg_st *s   = arg;
	size_t pos = s->scan;

	f->need = 0;
	if (s->skipping) {
		return frame_skip(s, (uint8_t *) (uintptr_t) cbuf, len, f);
	}
	for (;;) {
		if (len - pos < 5) {
			s->scan = pos;
			f->need = pos + 5;
			return 0;
		}
		uint8_t  t = cbuf[pos];
		uint32_t L = ik_pg_u32(cbuf + pos + 1);
		if (!ik_pg_backend_type_ok(t) || L < 4 || L > IK_PG_MSG_MAX) {
			s->scan = 0;
			return -IOK_EPROTO;
		}
		size_t mlen = (size_t) L + 1;
		if (s->recv_max != 0 && pos + mlen > s->recv_max) {
			s->scan     = 0;
			s->ov       = 1;
			s->ov_alone = pos == 0 && is_alone(s, t);
			return -IOK_EMSGSIZE;
		}
		if (len - pos < mlen) {
			s->scan = pos;
			f->need = pos + mlen;
			return 0;
		}
		if (t == 'S' && param_status(s, cbuf + pos + 5, mlen - 5) != 0) {
			s->scan = 0;
			return -IOK_EPROTO;
		}
		if (t == 'E') {
			const char *code = ik_pg_err_field(cbuf + pos + 5, mlen - 5, 'C');
			if (code != NULL && strcmp(code, "25006") == 0) {
				s->ro_err = 1; /* read_only_sql_transaction */
			}
		}
		if (t == 'A' && pos > 0) {
			/* Move the notification ahead of the reply's earlier
			 * messages (three reversals rotate in place); the buffer
			 * is the pipe's own (transport.h). */
			uint8_t *buf = (uint8_t *) (uintptr_t) cbuf;
			reverse(buf, pos);
			reverse(buf + pos, mlen);
			reverse(buf, pos + mlen);
			s->scan     = pos; /* [mlen, mlen + pos) is already scanned */
			f->body_off = 0;
			f->body_len = mlen;
			return (ssize_t) mlen;
		}
		if ((pos == 0 && is_alone(s, t)) || t == 'Z') {
			size_t n    = pos + mlen;
			s->scan     = 0;
			f->body_off = 0;
			f->body_len = n;
			return (ssize_t) n;
		}
		pos += mlen;
	}
}

/* Stepping over an oversize frame (transport.h, skip).  A reply is every
 * message up to its ReadyForQuery: each is passed over as it arrives, a big
 * DataRow even before it is whole (drop counts what is still to come), so
 * the pipe's buffer never holds the reply.  Notifications, which the server
 * sends just before a ReadyForQuery, are kept (hold) and moved behind it,
 * so they are delivered as frames of their own once the reply is passed.
 * A frame that is one message (is_alone) ends with that message. */
static ssize_t
frame_skip(pg_st *s, uint8_t *buf, size_t len, ik_frame *f)
{
	size_t pos = s->scan;

	for (;;) {
		if (s->drop > 0) {
			if (len - pos < s->drop) {
				s->drop -= len - pos;
				s->scan = len;
				f->need = 0;
				return 0;
			}
			pos += s->drop;
			s->drop = 0;
			if (s->ov_alone) {
				break;
			}
			continue;
		}
		if (len - pos < 5) {
			s->scan = pos;
			f->need = pos + 5;
			return 0;
		}
		uint8_t  t = buf[pos];
		uint32_t L = ik_pg_u32(buf + pos + 1);
		if (!ik_pg_backend_type_ok(t) || L < 4 || L > IK_PG_MSG_MAX) {
			return -IOK_EPROTO;
		}
		size_t mlen = (size_t) L + 1;
		if (t == 'Z' && L != 5) {
			return -IOK_EPROTO; /* and never a reason to buffer */
		}
		if (!s->ov_alone && (t == 'Z' || (t == 'A' && mlen <= PG_NOTIFY_MAX))) {
			if (len - pos < mlen) {
				s->scan = pos; /* small: wait for all of it */
				f->need = pos + mlen;
				return 0;
			}
			if (t == 'A') {
				if (s->hold == NO_HOLD) {
					s->hold = pos;
				}
				pos += mlen;
				continue;
			}
			s->txstatus = (char) buf[pos + 5];
			if (s->hold != NO_HOLD) {
				/* [hold, pos) notifications, then Z: Z first. */
				reverse(buf + s->hold, pos - s->hold);
				reverse(buf + pos, mlen);
				reverse(buf + s->hold, pos + mlen - s->hold);
				pos = s->hold;
			}
			pos += mlen;
			break;
		}
		/* Anything else: the reply's, dropped; notifications kept
		 * before it were not the reply's end after all. */
		s->hold = NO_HOLD;
		if (len - pos < mlen) {
			s->drop = mlen - (len - pos);
			s->scan = len;
			f->need = 0;
			return 0;
		}
		pos += mlen;
		if (s->ov_alone) {
			break;
		}
	}
	s->skipping = 0;
	s->ov_alone = 0;
	s->scan     = 0;
	s->hold     = NO_HOLD;
	f->body_off = 0;
	f->body_len = pos;
	return (ssize_t) pos;
}

/* skip(NULL, 0) starts over at the frame's first byte with no limit; then
 * each call forgets what frame_skip passed, notifications kept excepted. */
static size_t
pg_skip(void *arg, const uint8_t *buf, size_t len)
{
	pg_st *s = arg;
	size_t n;

	if (buf == NULL) {
		s->skipping = 1;
		s->scan     = 0;
		s->drop     = 0;
		s->hold     = NO_HOLD;
		return 0;
	}
	n = s->hold != NO_HOLD ? s->hold : s->scan;
	if (n > len) {
		n = len;
	}
	s->scan -= n;
	if (s->hold != NO_HOLD) {
		s->hold -= n;
	}
	return n;
}

/* ---------------------------------------------------- statement cache */

static void
stmt_drop(pg_st *s, int32_t slot, int close)
{
	pg_stmt *st = &s->stmts[slot];
	if (close && s->nclose < PG_STMT_MAX) {
		s->closes[s->nclose++] = st->id;
	}
	free(st->key);
	free(st->oids);
	memset(st, 0, sizeof(*st));
}

/* A finished reply teaches the cache: the row description, or that the
 * statement is not (or no longer validly) prepared. */
static void
stmt_learn(pg_st *s, const pg_expect *e, const uint8_t *b, size_t len)
{
	pg_stmt *st     = &s->stmts[e->slot];
	int      parsed = 0;
	size_t   pos    = 0;

	if (st->id != e->sid) {
		return; /* evicted meanwhile */
	}
	while (len - pos >= 5) {
		uint8_t        t  = b[pos];
		size_t         ml = (size_t) ik_pg_u32(b + pos + 1) + 1;
		const uint8_t *m  = b + pos + 5;
		size_t         bl = ml - 5;
		if (ml < 5 || ml > len - pos) {
			return;
		}
		if (t == '1') {
			parsed = 1;
		} else if (t == 'E') {
			const char *code = ik_pg_err_field(m, bl, 'C');
			if (code != NULL && strcmp(code, "0A000") == 0) {
				stmt_drop(s, e->slot, 1); /* result type changed */
				return;
			}
		} else if ((t == 'T' || t == 'n') && !st->desc_known) {
			uint32_t  n    = t == 'T' && bl >= 2 ? ik_pg_u16(m) : 0;
			uint32_t *oids = n ? calloc(n, sizeof(*oids)) : NULL;
			size_t    p    = 2;
			if ((n && oids == NULL) || n > PG_COLS_MAX) {
				free(oids);
				return;
			}
			for (uint32_t i = 0; i < n; i++) {
				const uint8_t *z = p < bl ? memchr(m + p, 0, bl - p) : NULL;
				if (z == NULL || (size_t) (z - m) + 1 + 18 > bl) {
					free(oids);
					return;
				}
				p       = (size_t) (z - m) + 1;
				oids[i] = ik_pg_u32(m + p + 6);
				p += 18;
			}
			st->oids       = oids;
			st->ncols      = n;
			st->desc_known = 1;
		}
		pos += ml;
	}
	if (e->parse && !parsed) {
		stmt_drop(s, e->slot, 0); /* its Parse failed: not prepared */
	}
}

static uint64_t
fnv(const uint8_t *p, size_t n, uint64_t h)
{
	for (size_t i = 0; i < n; i++) {
		h = (h ^ p[i]) * 1099511628211ull;
	}
	return h;
}

static int
binary_oid(uint32_t oid)
{
	switch (oid) {
	case 16:
	case 17:
	case 19:
	case 20:
	case 21:
	case 23:
	case 25:
	case 114:
	case 700:
	case 701:
	case 1043:
	case 1082:
	case 1083:
	case 1114:
	case 1184:
	case 1186:
	case 1700:
	case 2950:
	case 3802:
	/* arrays of those */
	case 1000:
	case 1001:
	case 1003:
	case 1005:
	case 1007:
	case 1009:
	case 1015:
	case 1016:
	case 1021:
	case 1022:
	case 199:
	case 1115:
	case 1182:
	case 1183:
	case 1185:
	case 1187:
	case 1231:
	case 2951:
	case 3807:
		return 1;
	default:
		return 0;
	}
}

/* ----------------------------------------------------------- requests */

static int
expect_push(pg_st *s, pg_expect e)
{
	if (s->qlen == s->qcap) {
		size_t     ncap = s->qcap ? s->qcap * 2 : 64;
		pg_expect *nq   = malloc(ncap * sizeof(*nq));
		if (nq == NULL) {
			return -IOK_ENOMEM;
		}
		for (size_t i = 0; i < s->qlen; i++) {
			nq[i] = s->q[(s->qhead + i) % s->qcap];
		}
		free(s->q);
		s->q     = nq;
		s->qcap  = ncap;
		s->qhead = 0;
	}
	s->q[(s->qhead + s->qlen) % s->qcap] = e;
	s->qlen++;
	return 0;
}

static int
simple_query(pg_st *s, const uint8_t *sql, size_t n, uint8_t kind, ik_buf *out)
{
	size_t lo;
	if (msg_begin(out, 'Q', &lo) || ik_buf_append(out, sql, n) || ik_buf_append(out, "", 1)) {
		return -IOK_ENOMEM;
	}
	msg_end(out, lo);
	return expect_push(s, (pg_expect) { .kind = kind, .slot = -1 });
}

static int32_t
stmt_find(pg_st *s, const uint8_t *key, size_t klen, uint64_t h)
{
	for (int32_t i = 0; i < PG_STMT_MAX; i++) {
		pg_stmt *st = &s->stmts[i];
		if (st->id != 0 && st->hash == h && st->key_len == klen &&
		    memcmp(st->key, key, klen) == 0) {
			return i;
		}
	}
	return -1;
}

static int32_t
stmt_slot_new(pg_st *s)
{
	int32_t victim = -1;
	for (int32_t i = 0; i < PG_STMT_MAX; i++) {
		if (s->stmts[i].id == 0) {
			return i;
		}
		if (victim < 0 || s->stmts[i].lru < s->stmts[victim].lru) {
			victim = i;
		}
	}
	stmt_drop(s, victim, 1);
	return victim;
}

static int
encode_ext(pg_st *s, const uint8_t *b, size_t len, ik_buf *out)
{
	uint16_t np;
	uint32_t sl;
	size_t   pos, pstart, lo;
	int32_t  slot;
	int      parse = 0;
	char     name[16];
	uint8_t *key;

	if (len < IK_PG_EXT_HDR) {
		return -IOK_EINVAL;
	}
	np = ik_pg_u16(b + 4);
	sl = ik_pg_u32(b + 6);
	if (sl > len - IK_PG_EXT_HDR || memchr(b + IK_PG_EXT_HDR, 0, sl) != NULL) {
		return -IOK_EINVAL;
	}
	/* Check every parameter before writing a byte. */
	pos = pstart = IK_PG_EXT_HDR + sl;
	for (uint32_t i = 0; i < np; i++) {
		if (len - pos < 9 || b[pos + 4] > 1) {
			return -IOK_EINVAL;
		}
		int32_t vl = (int32_t) ik_pg_u32(b + pos + 5);
		pos += 9;
		if (vl < -1 || (vl > 0 && (size_t) vl > len - pos)) {
			return -IOK_EINVAL;
		}
		pos += vl > 0 ? (size_t) vl : 0;
	}
	if (pos != len) {
		return -IOK_EINVAL;
	}

	/* The cache key: the SQL and the parameter types. */
	size_t klen = sl + 4 * (size_t) np;
	if ((key = malloc(klen ? klen : 1)) == NULL) {
		return -IOK_ENOMEM;
	}
	memcpy(key, b + IK_PG_EXT_HDR, sl);
	pos = pstart;
	for (uint32_t i = 0; i < np; i++) {
		memcpy(key + sl + 4 * i, b + pos, 4);
		int32_t vl = (int32_t) ik_pg_u32(b + pos + 5);
		pos += 9 + (vl > 0 ? (size_t) vl : 0);
	}
	uint64_t h = fnv(key, klen, 1469598103934665603ull);
	if ((slot = stmt_find(s, key, klen, h)) >= 0) {
		free(key);
	} else {
		slot        = stmt_slot_new(s);
		pg_stmt *st = &s->stmts[slot];
		st->key     = key;
		st->key_len = klen;
		st->hash    = h;
		st->id      = s->next_id++;
		if (s->next_id == 0) {
			s->next_id = 1;
		}
		parse = 1;
	}
	pg_stmt *st = &s->stmts[slot];
	st->lru     = ++s->tick;
	snprintf(name, sizeof(name), "ik%u", (unsigned) st->id);

	int e = 0;
	for (size_t i = 0; i < s->nclose && !e; i++) {
		char cn[16];
		snprintf(cn, sizeof(cn), "ik%u", (unsigned) s->closes[i]);
		e = msg_begin(out, 'C', &lo) || ik_buf_append(out, "S", 1) || put_str(out, cn);
		if (!e) {
			msg_end(out, lo);
		}
	}
	s->nclose = 0;
	if (!e && parse) {
		e = msg_begin(out, 'P', &lo) || put_str(out, name) ||
		    ik_buf_append(out, b + IK_PG_EXT_HDR, sl) || ik_buf_append(out, "", 1) ||
		    put_u16(out, np);
		pos = pstart;
		for (uint32_t i = 0; i < np && !e; i++) {
			e          = ik_buf_append(out, b + pos, 4);
			int32_t vl = (int32_t) ik_pg_u32(b + pos + 5);
			pos += 9 + (vl > 0 ? (size_t) vl : 0);
		}
		if (!e) {
			msg_end(out, lo);
		}
	}
	if (!e) { /* Bind: unnamed portal */
		e = msg_begin(out, 'B', &lo) || ik_buf_append(out, "", 1) || put_str(out, name) ||
		    put_u16(out, np);
		pos = pstart;
		for (uint32_t i = 0; i < np && !e; i++) {
			e          = put_u16(out, b[pos + 4]);
			int32_t vl = (int32_t) ik_pg_u32(b + pos + 5);
			pos += 9 + (vl > 0 ? (size_t) vl : 0);
		}
		e   = e || put_u16(out, np);
		pos = pstart;
		for (uint32_t i = 0; i < np && !e; i++) {
			int32_t vl = (int32_t) ik_pg_u32(b + pos + 5);
			e          = ik_buf_append(out, b + pos + 5, 4) ||
			    (vl > 0 && ik_buf_append(out, b + pos + 9, (size_t) vl));
			pos += 9 + (vl > 0 ? (size_t) vl : 0);
		}
		uint32_t nres = 0;
		if (st->desc_known) {
			for (uint32_t i = 0; i < st->ncols; i++) {
				if (binary_oid(st->oids[i])) {
					nres = st->ncols;
					break;
				}
			}
		}
		e = e || put_u16(out, (uint16_t) nres);
		for (uint32_t i = 0; i < nres && !e; i++) {
			e = put_u16(out, (uint16_t) binary_oid(st->oids[i]));
		}
		if (!e) {
			msg_end(out, lo);
		}
	}
	if (!e) {
		static const uint8_t tail[] = {
			'D', 0, 0, 0, 6, 'P', 0,        /* Describe portal "" */
			'E', 0, 0, 0, 9, 0, 0, 0, 0, 0, /* Execute "", all rows */
			'S', 0, 0, 0, 4,                /* Sync */
		};
		e = ik_buf_append(out, tail, sizeof(tail));
	}
	if (e) {
		if (parse) {
			stmt_drop(s, slot, 0);
		}
		return -IOK_ENOMEM;
	}
	return expect_push(s,
	    (pg_expect) { .kind = E_APP, .parse = (uint8_t) parse, .slot = slot, .sid = st->id });
}

static int
pg_encode_full(void *arg, const uint8_t *hdr, size_t hdr_len, const uint8_t *body, size_t body_len,
    ik_buf *out)
{
	pg_st *s = arg;
	(void) hdr;

	if (hdr_len != 0 || body == NULL || body_len < IK_PG_MAGIC_LEN) {
		return -IOK_EINVAL;
	}
	if (memcmp(body, IK_PG_MAGIC_EXT, IK_PG_MAGIC_LEN) == 0) {
		return encode_ext(s, body, body_len, out);
	}
	if (memcmp(body, IK_PG_MAGIC_SIMPLE, IK_PG_MAGIC_LEN) == 0 && body_len >= 8) {
		uint32_t sl = ik_pg_u32(body + 4);
		if (sl != body_len - 8 || memchr(body + 8, 0, sl) != NULL) {
			return -IOK_EINVAL;
		}
		return simple_query(s, body + 8, sl, E_APP, out);
	}
	return -IOK_EINVAL;
}

/* The prefix-only encoder is never used: encode_full is set. */
static ssize_t
pg_encode(void *arg, const uint8_t *hdr, size_t hdr_len, const uint8_t *body, size_t body_len,
    uint8_t *prefix)
{
	(void) arg;
	(void) hdr;
	(void) hdr_len;
	(void) body;
	(void) body_len;
	(void) prefix;
	return -IOK_EINVAL;
}

/* --------------------------------------------------------- classify */

static int
is_reply(const uint8_t *b, size_t len)
{
	return len >= 6 && b[len - 6] == 'Z' && ik_pg_u32(b + len - 5) == 5 &&
	       (b[len - 1] == 'I' || b[len - 1] == 'T' || b[len - 1] == 'E');
}

/* The pipe asks about a frame frame() refused as oversize, from its first
 * bytes only.  A reply answers the oldest outstanding request, which fails
 * alone (its statement, maybe prepared by it, is closed: it cannot learn
 * from a reply it never sees); a lone message nobody waits for is dropped. */
static int
classify_oversize(pg_st *s, const uint8_t *body, size_t len)
{
	pg_expect e;

	s->ov = 0;
	if (s->ov_alone) {
		return len > 0 && body[0] == 'A' ? IK_FRAME_PUSH : IK_FRAME_SKIP;
	}
	if (s->qlen == 0) {
		return IK_FRAME_REPLY; /* answers nothing: the pattern sees it */
	}
	e        = s->q[s->qhead];
	s->qhead = (s->qhead + 1) % s->qcap;
	s->qlen--;
	if (e.slot >= 0 && e.parse && s->stmts[e.slot].id == e.sid) {
		stmt_drop(s, e.slot, 1);
	}
	return e.kind == E_INTERNAL ? IK_FRAME_SKIP : IK_FRAME_REPLY;
}

static int
pg_classify(void *arg, const uint8_t *body, size_t len)
{
	pg_st    *s = arg;
	pg_expect e;

	if (s->ov) {
		return classify_oversize(s, body, len);
	}
	if (len > 0 && body[0] == 'A') {
		return IK_FRAME_PUSH;
	}
	if (s->marker && len == 6 && body[0] == 'Z') {
		s->marker = 0;
		return IK_FRAME_PUSH; /* a new connection: see iok.h */
	}
	/* The server may have changed under us (a standby promoted, a primary
	 * made read-only): frame() read the ParameterStatus and errors. */
	int last  = !fits(s);
	int ro    = s->ro_err;
	s->ro_err = 0;
	if (!is_reply(body, len)) {
		/* a notice or parameter change between replies */
		return last ? IK_FRAME_SKIP_LAST : IK_FRAME_SKIP;
	}
	s->txstatus = (char) body[len - 1];
	if (ro && s->txstatus == 'I' && s->want == TSA_READ_WRITE) {
		last = 1; /* refused a write outside a block: went read-only */
	}
	if (s->qlen == 0) {
		/* answers nothing: the pattern sees it */
		return last ? IK_FRAME_LAST : IK_FRAME_REPLY;
	}
	e        = s->q[s->qhead];
	s->qhead = (s->qhead + 1) % s->qcap;
	s->qlen--;
	if (e.slot >= 0) {
		stmt_learn(s, &e, body, len);
	}
	if (e.kind == E_INTERNAL) {
		return last ? IK_FRAME_SKIP_LAST : IK_FRAME_SKIP;
	}
	return last ? IK_FRAME_LAST : IK_FRAME_REPLY;
}

/* ------------------------------------------------ subscribe, services */

static int
pg_subscribe(void *arg, const uint8_t *topic, size_t len, unsigned how, ik_buf *out)
{
	pg_st *s = arg;
	ik_buf q;
	int    rv;

	if (how & 0x02) {
		return -IOK_ENOTSUP; /* LISTEN has no patterns */
	}
	if (len == 0 || topic == NULL || memchr(topic, 0, len) != NULL) {
		return -IOK_EINVAL;
	}
	ik_buf_init(&q);
	/* A quoted identifier: any channel name, case kept, '"' doubled. */
	rv = ik_buf_append(&q, (how & 0x01) ? "LISTEN \"" : "UNLISTEN \"", (how & 0x01) ? 8 : 10);
	for (size_t i = 0; i < len && rv == 0; i++) {
		rv = ik_buf_append(&q, topic + i, 1);
		if (rv == 0 && topic[i] == '"') {
			rv = ik_buf_append(&q, "\"", 1);
		}
	}
	rv = rv || ik_buf_append(&q, "\"", 1);
	if (rv == 0) {
		rv = simple_query(s, q.data, q.len, E_INTERNAL, out);
	} else {
		rv = -IOK_ENOMEM;
	}
	ik_buf_fini(&q);
	return rv;
}

char
ik_pg_txstatus(void *st)
{
	return ((pg_st *) st)->txstatus;
}

int
ik_pg_backend_key(void *st, uint32_t *pid, uint32_t *secret)
{
	pg_st *s = st;
	*pid     = s->pid;
	*secret  = s->secret;
	return s->pid != 0 ? 0 : IOK_ENOTSUP;
}

int
ik_pg_rollback(void *st, ik_buf *out)
{
	return simple_query(st, (const uint8_t *) "ROLLBACK", 8, E_INTERNAL, out);
}

/* The health check of an idle connection: an empty simple query, whose
 * reply is EmptyQueryResponse then ReadyForQuery (an ErrorResponse, e.g.
 * an aborted transaction's, still proves the server answering). */
static int
pg_probe(void *st, ik_buf *out)
{
	return simple_query(st, (const uint8_t *) "", 0, E_APP, out);
}

static int
pg_probe_ok(void *st, const uint8_t *body, size_t len)
{
	(void) st;
	return is_reply(body, len) && len >= 11 && (body[0] == 'I' || body[0] == 'E');
}

/* release: a pinned session let go of the connection.  A transaction left
 * open (or requests still running, which may open one) is rolled back
 * before anyone else's request; ROLLBACK when idle only draws a warning. */
static int
pg_release(void *st, ik_buf *out)
{
	pg_st *s = st;
	if (s->txstatus == 'T' || s->txstatus == 'E' || s->qlen > 0) {
		return ik_pg_rollback(st, out);
	}
	return 0;
}

static int
pg_cancel_packet(void *st, uint8_t out[16])
{
	pg_st *s = st;
	if (s->pid == 0 || s->qlen == 0) {
		return -IOK_ENOTSUP;
	}
	ik_pg_cancel_request(s->pid, s->secret, out);
	return 0;
}

static void
pg_error_text(void *st, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s", ((pg_st *) st)->why);
}

#define PG_TRANSPORT(sym, name, kind, port)                  \
	const ik_transport sym = {                           \
		.scheme        = name,                       \
		.flags         = IK_TF_INORDER | IK_TF_PUSH, \
		.addr          = kind,                       \
		.def_port      = port,                       \
		.state_size    = sizeof(pg_st),              \
		.init          = pg_init,                    \
		.fini          = pg_fini,                    \
		.handshake     = pg_handshake,               \
		.peer_proto    = NULL,                       \
		.frame         = pg_frame,                   \
		.classify      = pg_classify,                \
		.encode        = pg_encode,                  \
		.subscribe     = pg_subscribe,               \
		.encode_full   = pg_encode_full,             \
		.release       = pg_release,                 \
		.cancel_packet = pg_cancel_packet,           \
		.error_text    = pg_error_text,              \
		.set_recv_max  = pg_set_recv_max,            \
		.probe         = pg_probe,                   \
		.probe_ok      = pg_probe_ok,                \
		.rank          = pg_rank,                    \
		.skip          = pg_skip,                    \
	}

PG_TRANSPORT(ik_tran_postgresql, "postgresql", IK_ADDR_TCP, 5432);
PG_TRANSPORT(ik_tran_postgres, "postgres", IK_ADDR_TCP, 5432);
PG_TRANSPORT(ik_tran_postgresql_unix, "postgresql+unix", IK_ADDR_UNIX, 0);
