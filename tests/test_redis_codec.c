/*
 * test_redis_codec.c - the redis transport codec on byte buffers: URL
 * options, the handshake against scripted server replies (captured from
 * redis-server 7.0 where marked), framing, classify and encode.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "iok.h"
#include "transports/resp.h"

#define S(lit) (const uint8_t *) (lit), sizeof(lit) - 1
#define SL(lit) lit, sizeof(lit) - 1

/* redis 7.0 replies */
#define HELLO_MAP                                                                                  \
	"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:"   \
	"3\r\n$2\r\nid\r\n:6\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n" \
	"$7\r\nmodules\r\n*0\r\n"
#define NOAUTH_HELLO                                                                             \
	"-NOAUTH HELLO must be called with the client already authenticated, otherwise the "     \
	"HELLO AUTH <user> <pass> option can be used to authenticate the client and select the " \
	"RESP protocol version at the same time\r\n"
#define WRONGPASS "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
#define NOPROTO "-NOPROTO unsupported protocol version\r\n"
#define UNKNOWN_HELLO                                                                            \
	"-ERR unknown command 'HELLO', with args beginning with: '3' 'AUTH' 'default' 'sekret' " \
	"'SETNAME' 'iok' \r\n"
#define NOAUTH "-NOAUTH Authentication required.\r\n"
#define BADDB "-ERR DB index is out of range\r\n"
#define OK "+OK\r\n"

typedef struct conn {
	const ik_transport *t;
	void               *st;
	ik_buf              out;
} conn;

/* open_conn parses url, inits the codec and frees the URL at once: the
 * codec must not keep pointers into it. */
static int
open_conn(conn *c, const char *url, size_t recv_max)
{
	ik_url         u;
	ik_tran_params p = { 0 };
	int            rv;

	assert_int_equal(ik_url_parse(&u, url), 0);
	c->t  = strncmp(url, "redis+unix:", 11) == 0 ? &ik_tran_redis_unix : &ik_tran_redis;
	c->st = calloc(1, c->t->state_size);
	assert_non_null(c->st);
	ik_buf_init(&c->out);
	p.dialer   = 1;
	p.recv_max = recv_max;
	p.url      = &u;
	rv         = c->t->init(c->st, &p);
	ik_url_free(&u);
	if (rv != 0) {
		free(c->st);
		c->st = NULL;
	}
	return rv;
}

static void
close_conn(conn *c)
{
	if (c->st != NULL) {
		c->t->fini(c->st);
		free(c->st);
	}
	ik_buf_fini(&c->out);
}

/* start runs the opening handshake call and checks the bytes queued. */
static void
start(conn *c, const char *want, size_t n)
{
	size_t used = 99;
	assert_int_equal(c->t->handshake(c->st, NULL, 0, &used, &c->out), IK_HS_MORE);
	assert_int_equal(used, 0);
	if (c->out.len != n || memcmp(c->out.data, want, n) != 0) {
		fail_msg("queued %.*s", (int) c->out.len, (const char *) c->out.data);
	}
	ik_buf_consume(&c->out, c->out.len);
}

/* serve feeds the server's bytes the way a pipe does: chunk bytes at a
 * time, keeping what the codec did not consume.  Returns the final
 * handshake result; *left gets the bytes left for frame(). */
static int
serve(conn *c, const char *in, size_t n, size_t chunk, size_t *left)
{
	size_t start = 0, have = 0, used;
	int    rv = IK_HS_MORE;

	while (rv == IK_HS_MORE && have < n) {
		have         = have + chunk > n ? n : have + chunk;
		size_t   len = have - start;
		uint8_t *d   = malloc(len ? len : 1);
		memcpy(d, in + start, len);
		used = 12345;
		rv   = c->t->handshake(c->st, d, len, &used, &c->out);
		free(d);
		if (rv >= 0) {
			assert_true(used <= len);
			start += used;
		}
	}
	if (left != NULL) {
		*left = n - start;
	}
	return rv;
}

/* handshake_at_all_chunks runs the same script at every chunk size. */
static void
script(const char *url, const char *hello, size_t hn, const char *in, size_t n, int want_rv,
    int want_proto)
{
	for (size_t chunk = 1; chunk <= n; chunk++) {
		conn   c;
		size_t left;
		assert_int_equal(open_conn(&c, url, 0), 0);
		start(&c, hello, hn);
		int rv = serve(&c, in, n, chunk, &left);
		if (rv != want_rv) {
			fail_msg("chunk %zu: rv %d want %d", chunk, rv, want_rv);
		}
		if (rv == IK_HS_DONE) {
			assert_int_equal(left, 0);
			assert_int_equal(ik_redis_protocol(c.st), want_proto);
		}
		close_conn(&c);
	}
}

#define HELLO_PLAIN "*4\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$7\r\nSETNAME\r\n$3\r\niok\r\n"
#define HELLO_AUTH                                                                              \
	"*7\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$7\r\ndefault\r\n$6\r\nsekret\r\n$7\r\n" \
	"SETNAME\r\n$3\r\niok\r\n"
#define SELECT2 "*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n"

static void
test_transport_table(void **state)
{
	assert_string_equal(ik_tran_redis.scheme, "redis");
	assert_int_equal(ik_tran_redis.flags, IK_TF_INORDER | IK_TF_PUSH);
	assert_int_equal(ik_tran_redis.addr, IK_ADDR_TCP);
	assert_int_equal(ik_tran_redis.def_port, 6379);
	assert_null(ik_tran_redis.peer_proto);
	assert_string_equal(ik_tran_redis_unix.scheme, "redis+unix");
	assert_int_equal(ik_tran_redis_unix.flags, IK_TF_INORDER | IK_TF_PUSH);
	assert_int_equal(ik_tran_redis_unix.addr, IK_ADDR_UNIX);
	assert_true(ik_tran_redis.state_size >= sizeof(ik_resp_parser));
}

static void
test_resp3_plain(void **state)
{
	conn   c;
	size_t left;

	assert_int_equal(open_conn(&c, "redis://localhost", 0), 0);
	assert_int_equal(ik_redis_role(c.st), IK_REDIS_ROLE_UNKNOWN);
	start(&c, SL(HELLO_PLAIN));
	assert_int_equal(serve(&c, SL(HELLO_MAP), 1 << 20, &left), IK_HS_DONE);
	assert_int_equal(left, 0);
	assert_int_equal(ik_redis_protocol(c.st), 3);
	assert_int_equal(ik_redis_role(c.st), IK_REDIS_ROLE_PRIMARY);
	assert_int_equal(c.out.len, 0);
	close_conn(&c);
	script("redis://localhost", SL(HELLO_PLAIN), SL(HELLO_MAP), IK_HS_DONE, 3);
}

static void
test_resp3_auth_select(void **state)
{
	static const char in[] = HELLO_MAP OK;
	script("redis://:sekret@h/2", SL(HELLO_AUTH SELECT2), SL(in), IK_HS_DONE, 3);
	script("redis://:sekret@h/?db=2", SL(HELLO_AUTH SELECT2), SL(in), IK_HS_DONE, 3);
	/* user, name, db in the query */
	static const char hello[] = "*7\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$5\r\nalice\r\n"
	                            "$4\r\np@:w\r\n$7\r\nSETNAME\r\n$3\r\nxyz\r\n"
	                            "*2\r\n$6\r\nSELECT\r\n$2\r\n15\r\n";
	script("redis://alice:p%40%3Aw@h?db=15&name=xyz", SL(hello), SL(in), IK_HS_DONE, 3);
	/* redis+unix: the path is the socket, not a db */
	script("redis+unix:///tmp/redis.sock", SL(HELLO_PLAIN), SL(HELLO_MAP), IK_HS_DONE, 3);
	script("redis+unix:///tmp/redis.sock?db=2", SL(HELLO_PLAIN SELECT2), SL(in), IK_HS_DONE, 3);
	/* an empty name sends no SETNAME */
	script("redis://h?name=", SL("*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n"), SL(HELLO_MAP), IK_HS_DONE,
	    3);
	/* a SELECT error on the RESP3 path */
	script("redis://h/99", SL(HELLO_PLAIN "*2\r\n$6\r\nSELECT\r\n$2\r\n99\r\n"),
	    SL(HELLO_MAP BADDB), -IOK_EPROTO, 0);
	/* SELECT answered with something other than +OK */
	script("redis://h/2", SL(HELLO_PLAIN SELECT2), SL(HELLO_MAP ":1\r\n"), -IOK_EPROTO, 0);
}

static void
test_auth_failure(void **state)
{
	script("redis://:wrong@h",
	    SL("*7\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$7\r\n"
	       "default\r\n$5\r\nwrong\r\n$7\r\nSETNAME\r\n$3\r\niok\r\n"),
	    SL(WRONGPASS), -IOK_EPEERAUTH, 0);
	script("redis://h", SL(HELLO_PLAIN), SL(NOAUTH_HELLO), -IOK_EPEERAUTH, 0);
	/* refused even with a pipelined SELECT still to come */
	script("redis://h/2", SL(HELLO_PLAIN SELECT2), SL(NOAUTH_HELLO NOAUTH), -IOK_EPEERAUTH, 0);
	script("redis://h", SL(HELLO_PLAIN), SL("-ERR invalid password\r\n"), -IOK_EPEERAUTH, 0);
	script("redis://h", SL(HELLO_PLAIN), SL("!9\r\nNOPERM no\r\n"), -IOK_EPEERAUTH, 0);
}

/* No HELLO: the RESP2 sequence, pipelined, with the stale SELECT answer
 * (judged before our AUTH) ignored. */
static void
test_resp2_fallback(void **state)
{
	static const char url[]   = "redis://:sekret@h/2";
	static const char in[]    = UNKNOWN_HELLO NOAUTH OK OK OK;
	static const char resp2[] = "*2\r\n$4\r\nAUTH\r\n$6\r\nsekret\r\n" SELECT2
	                            "*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$3\r\niok\r\n";

	/* the fallback commands are queued once HELLO's error arrives */
	conn c;
	assert_int_equal(open_conn(&c, url, 0), 0);
	start(&c, SL(HELLO_AUTH SELECT2));
	assert_int_equal(serve(&c, SL(UNKNOWN_HELLO), 1 << 20, NULL), IK_HS_MORE);
	assert_memory_equal(c.out.data, resp2, sizeof(resp2) - 1);
	assert_int_equal(c.out.len, sizeof(resp2) - 1);
	assert_int_equal(ik_redis_protocol(c.st), 2);
	close_conn(&c);

	script(url, SL(HELLO_AUTH SELECT2), SL(in), IK_HS_DONE, 2);
	script(url, SL(HELLO_AUTH SELECT2), SL(NOPROTO NOAUTH OK OK OK), IK_HS_DONE, 2);
	/* CLIENT SETNAME's error is ignored */
	script(url, SL(HELLO_AUTH SELECT2), SL(NOPROTO NOAUTH OK OK "-ERR no\r\n"), IK_HS_DONE, 2);
	/* AUTH refused (redis 7.0 replies) */
	script(url, SL(HELLO_AUTH SELECT2), SL(UNKNOWN_HELLO NOAUTH WRONGPASS NOAUTH NOAUTH),
	    -IOK_EPEERAUTH, 0);
	/* SELECT refused */
	script(url, SL(HELLO_AUTH SELECT2), SL(NOPROTO NOAUTH OK BADDB OK), -IOK_EPROTO, 0);
	/* AUTH with a user is the two-argument form */
	script("redis://bob:pw@h",
	    SL("*7\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$3\r\nbob\r\n"
	       "$2\r\npw\r\n$7\r\nSETNAME\r\n$3\r\niok\r\n"),
	    SL(NOPROTO OK OK), IK_HS_DONE, 2);
	/* nothing to send after the fallback: done at once */
	script("redis://h?name=", SL("*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n"),
	    SL("-ERR unknown command 'HELLO'\r\n"), IK_HS_DONE, 2);
	script(
	    "redis://h", SL(HELLO_PLAIN), SL("-ERR unknown command 'HELLO'\r\n" OK), IK_HS_DONE, 2);
}

static void
test_protocol2(void **state)
{
	script("redis://:sekret@h/2?protocol=2",
	    SL("*2\r\n$4\r\nAUTH\r\n$6\r\nsekret\r\n" SELECT2
	       "*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$3\r\niok\r\n"),
	    SL(OK OK OK), IK_HS_DONE, 2);
	script("redis://h?protocol=2", SL("*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$3\r\niok\r\n"),
	    SL(OK), IK_HS_DONE, 2);

	conn   c;
	size_t used;
	assert_int_equal(open_conn(&c, "redis://h?protocol=2&name=", 0), 0);
	assert_int_equal(ik_redis_protocol(c.st), 2);
	assert_int_equal(c.t->handshake(c.st, NULL, 0, &used, &c.out), IK_HS_DONE);
	assert_int_equal(c.out.len, 0);
	close_conn(&c);
	assert_int_equal(open_conn(&c, "redis://h?protocol=3", 0), 0);
	assert_int_equal(ik_redis_protocol(c.st), 3);
	close_conn(&c);
}

/* A HELLO answered by an array (e.g. a proxy) saying proto 2, and by a
 * replica. */
static void
test_hello_variants(void **state)
{
	static const char arr[] = "*4\r\n$5\r\nproto\r\n:2\r\n$4\r\nrole\r\n$5\r\nslave\r\n";
	conn              c;

	script("redis://h", SL(HELLO_PLAIN), SL(arr), IK_HS_DONE, 2);
	assert_int_equal(open_conn(&c, "redis://h", 0), 0);
	start(&c, SL(HELLO_PLAIN));
	assert_int_equal(serve(&c, SL(arr), 1 << 20, NULL), IK_HS_DONE);
	assert_int_equal(ik_redis_role(c.st), IK_REDIS_ROLE_REPLICA);
	close_conn(&c);

	static const char rep[] =
	    "|1\r\n+note\r\n+x\r\n%2\r\n+proto\r\n:3\r\n+role\r\n%1\r\n+role\r\n+nested\r\n";
	script("redis://h", SL(HELLO_PLAIN), SL(rep), IK_HS_DONE, 3);
	assert_int_equal(open_conn(&c, "redis://h", 0), 0);
	start(&c, SL(HELLO_PLAIN));
	assert_int_equal(serve(&c, SL(rep), 1 << 20, NULL), IK_HS_DONE);
	assert_int_equal(ik_redis_role(c.st), IK_REDIS_ROLE_UNKNOWN);
	close_conn(&c);

	/* a push before the reply answers nothing of ours */
	script("redis://h", SL(HELLO_PLAIN), SL(">2\r\n+x\r\n+y\r\n" HELLO_MAP), IK_HS_DONE, 3);
}

static void
test_malformed_reply(void **state)
{
	script("redis://h", SL(HELLO_PLAIN), SL(OK), -IOK_EPROTO, 0);
	script("redis://h", SL(HELLO_PLAIN), SL(":3\r\n"), -IOK_EPROTO, 0);
	script("redis://h", SL(HELLO_PLAIN), SL("*-1\r\n"), -IOK_EPROTO, 0);
	script("redis://h", SL(HELLO_PLAIN), SL("HTTP/1.1 400 Bad Request\r\n"), -IOK_EPROTO, 0);
	script("redis://h", SL(HELLO_PLAIN), SL("%1\r\n+a\n"), -IOK_EPROTO, 0);
	script("redis://h", SL(HELLO_PLAIN), SL("\0SP\0\0\x31\0\0"), -IOK_EPROTO, 0);
	script("redis://:pw@h",
	    SL("*7\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$7\r\ndefault\r\n"
	       "$2\r\npw\r\n$7\r\nSETNAME\r\n$3\r\niok\r\n"),
	    SL(NOPROTO ":1\r\n"), -IOK_EPROTO, 0);
	/* the reply is larger than recv_max */
	conn c;
	assert_int_equal(open_conn(&c, "redis://h", 16), 0);
	start(&c, SL(HELLO_PLAIN));
	assert_int_equal(serve(&c, SL(HELLO_MAP), 1, NULL), -IOK_EMSGSIZE);
	close_conn(&c);
}

static void
test_bad_urls(void **state)
{
	conn c;
	assert_int_equal(open_conn(&c, "redis://h/x", 0), -IOK_EADDRINVAL);
	close_conn(&c);
	assert_int_equal(open_conn(&c, "redis://h/2/3", 0), -IOK_EADDRINVAL);
	close_conn(&c);
	assert_int_equal(open_conn(&c, "redis://h?db=", 0), -IOK_EADDRINVAL);
	close_conn(&c);
	assert_int_equal(open_conn(&c, "redis://h?db=-1", 0), -IOK_EADDRINVAL);
	close_conn(&c);
	assert_int_equal(open_conn(&c, "redis://h?db=99999999999999", 0), -IOK_EADDRINVAL);
	close_conn(&c);
	assert_int_equal(open_conn(&c, "redis://h?protocol=4", 0), -IOK_EADDRINVAL);
	close_conn(&c);
	assert_int_equal(open_conn(&c, "redis://h?name=a%20b", 0), -IOK_EADDRINVAL);
	close_conn(&c);
	assert_int_equal(open_conn(&c, "redis://h?name=a%0Ab", 0), -IOK_EADDRINVAL);
	close_conn(&c);
	assert_int_equal(open_conn(&c, "redis://u:p@h?name=a%20b", 0), -IOK_EADDRINVAL);
	close_conn(&c);
	/* fine */
	assert_int_equal(open_conn(&c, "redis://h/", 0), 0);
	close_conn(&c);
	assert_int_equal(open_conn(&c, "redis://h:1234/0", 0), 0);
	close_conn(&c);

	/* init without a URL: defaults */
	ik_tran_params p  = { 0 };
	void          *st = calloc(1, ik_tran_redis.state_size);
	ik_buf         out;
	size_t         used;
	ik_buf_init(&out);
	assert_int_equal(ik_tran_redis.init(st, &p), 0);
	assert_int_equal(ik_tran_redis.handshake(st, NULL, 0, &used, &out), IK_HS_MORE);
	assert_int_equal(out.len, sizeof(HELLO_PLAIN) - 1);
	ik_tran_redis.fini(st);
	free(st);
	ik_buf_fini(&out);
}

/* Bytes after the handshake's last reply are frames, and frame() reads
 * them from a fresh start. */
static void
test_after_handshake(void **state)
{
	static const char in[] =
	    HELLO_MAP     OK ">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n$1\r\nv\r\n";
	conn              c;
	size_t            left;
	ik_frame          f;

	assert_int_equal(open_conn(&c, "redis://h/2", 0), 0);
	start(&c, SL(HELLO_PLAIN SELECT2));
	assert_int_equal(serve(&c, SL(in), sizeof(in), &left), IK_HS_DONE);
	const uint8_t *rest = (const uint8_t *) in + sizeof(in) - 1 - left;
	assert_int_equal(left, 32 + 7);
	memset(&f, 0, sizeof(f));
	assert_int_equal(c.t->frame(c.st, rest, left, &f), 32);
	assert_int_equal(f.body_off, 0);
	assert_int_equal(f.body_len, 32);
	assert_int_equal(c.t->classify(c.st, rest, 32), IK_FRAME_PUSH);
	assert_int_equal(c.t->frame(c.st, rest + 32, 7, &f), 7);
	assert_int_equal(c.t->classify(c.st, rest + 32, 7), IK_FRAME_REPLY);
	close_conn(&c);
}

static void
test_frame(void **state)
{
	conn     c;
	ik_frame f;

	assert_int_equal(open_conn(&c, "redis://h", 64), 0);
	memset(&f, 0, sizeof(f));
	assert_int_equal(c.t->frame(c.st, S("$10\r\n01234"), &f), 0);
	assert_int_equal(f.need, 17);
	assert_int_equal(c.t->frame(c.st, S("$10\r\n0123456789\r\n+x"), &f), 17);
	assert_int_equal(f.body_off, 0);
	assert_int_equal(f.body_len, 17);
	assert_int_equal(c.t->frame(c.st, S("+x\r\n"), &f), 4);
	assert_int_equal(f.body_len, 4);
	assert_int_equal(c.t->frame(c.st, S("$100\r\n"), &f), -IOK_EMSGSIZE);
	close_conn(&c);
	assert_int_equal(open_conn(&c, "redis://h", 0), 0);
	assert_int_equal(c.t->frame(c.st, S("?\r\n"), &f), -IOK_EPROTO);
	close_conn(&c);
}

static void
test_classify(void **state)
{
	conn c;
	assert_int_equal(open_conn(&c, "redis://h", 0), 0);
	assert_int_equal(
	    c.t->classify(c.st, S(">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n")), IK_FRAME_PUSH);
	assert_int_equal(c.t->classify(c.st, S("|1\r\n+a\r\n+b\r\n>1\r\n+x\r\n")), IK_FRAME_PUSH);
	assert_int_equal(c.t->classify(c.st, S("|1\r\n+a\r\n+b\r\n*1\r\n+x\r\n")), IK_FRAME_REPLY);
	assert_int_equal(c.t->classify(c.st, S("*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n")),
	    IK_FRAME_REPLY);
	assert_int_equal(c.t->classify(c.st, S("+OK\r\n")), IK_FRAME_REPLY);
	assert_int_equal(c.t->classify(c.st, S("-ERR\r\n")), IK_FRAME_REPLY);
	assert_int_equal(c.t->classify(c.st, S("")), IK_FRAME_REPLY);
	assert_int_equal(c.t->classify(c.st, S("|1\r\n")), IK_FRAME_REPLY);
	close_conn(&c);
}

static void
test_encode(void **state)
{
	conn    c;
	uint8_t prefix[IK_PREFIX_MAX];
	ik_buf  b;

	assert_int_equal(open_conn(&c, "redis://h", 0), 0);
	ik_buf_init(&b);
	const char *argv[] = { "SET", "k", "v" };
	assert_int_equal(ik_resp_format_argv(&b, 3, argv, NULL), 0);
	assert_int_equal(c.t->encode(c.st, NULL, 0, b.data, b.len, prefix), 0);
	/* a header is not allowed */
	assert_int_equal(c.t->encode(c.st, b.data, 4, b.data + 4, b.len - 4, prefix), -IOK_EINVAL);
	assert_int_equal(c.t->encode(c.st, S("x"), b.data, b.len, prefix), -IOK_EINVAL);
	/* garbage, empty, two commands, a reply */
	assert_int_equal(c.t->encode(c.st, NULL, 0, S("PING\r\n"), prefix), -IOK_EINVAL);
	assert_int_equal(c.t->encode(c.st, NULL, 0, S(""), prefix), -IOK_EINVAL);
	assert_int_equal(c.t->encode(c.st, NULL, 0, NULL, 0, prefix), -IOK_EINVAL);
	assert_int_equal(ik_resp_format_argv(&b, 3, argv, NULL), 0);
	assert_int_equal(c.t->encode(c.st, NULL, 0, b.data, b.len, prefix), -IOK_EINVAL);
	assert_int_equal(c.t->encode(c.st, NULL, 0, S("+OK\r\n"), prefix), -IOK_EINVAL);
	assert_int_equal(c.t->encode(c.st, NULL, 0, S("*1\r\n$4\r\nPING\r\n"), prefix), 0);
	ik_buf_fini(&b);
	close_conn(&c);
}

/* ------------------------------------------- skipping an oversize frame */

struct skip_result {
	int    frames; /* frames delivered */
	size_t lens[8];
	int    skipped;  /* oversize frames stepped over */
	int    err;      /* 0, or the error that ended the stream */
	size_t max_held; /* most bytes ever kept at once */
};

/* Feed stream in chunks as the pipe does: frames over limit are skipped
 * with ik_resp_parse_forget, dropping bytes as soon as they are passed. */
static struct skip_result
skip_stream(const char *stream, size_t len, size_t chunk, size_t limit)
{
	struct skip_result r = { 0 };
	ik_resp_parser     p;
	uint8_t            buf[256];
	size_t             have = 0, fed = 0, need;
	int                skipping = 0;
	ik_resp_parser_init(&p, limit, 0);
	while (r.err == 0) {
		ssize_t n = have > 0 ? ik_resp_parse(&p, buf, have, &need) : 0;
		if (n == -IOK_EMSGSIZE && !skipping) {
			ik_resp_parser_reset(&p);
			ik_resp_parser_set_max(&p, 0);
			skipping = 1;
			r.skipped++;
			continue;
		}
		if (n < 0) {
			r.err = (int) -n;
			break;
		}
		if (n > 0) {
			if (skipping) {
				skipping = 0;
				ik_resp_parser_set_max(&p, limit);
			} else if (r.frames < 8) {
				r.lens[r.frames++] = (size_t) n;
			}
			memmove(buf, buf + n, have - (size_t) n);
			have -= (size_t) n;
			continue;
		}
		if (skipping) {
			size_t d = ik_resp_parse_forget(&p, buf, have);
			memmove(buf, buf + d, have - d);
			have -= d;
		}
		if (fed == len) {
			break; /* truncated or done */
		}
		size_t c = len - fed < chunk ? len - fed : chunk;
		assert_true(have + c <= sizeof(buf));
		memcpy(buf + have, stream + fed, c);
		have += c;
		fed += c;
		if (have > r.max_held) {
			r.max_held = have;
		}
	}
	return r;
}

static void
test_skip_oversize(void **state)
{
	(void) state;
	static const char bulk[] =
	    "+OK\r\n$40\r\n0123456789012345678901234567890123456789\r\n:5\r\n";
	static const char agg[] =
	    "*3\r\n$4\r\naaaa\r\n*1\r\n$4\r\nbbbb\r\n%1\r\n+k\r\n$4\r\ncccc\r\n+x\r\n";
	static const char verb[] = "=34\r\ntxt:012345678901234567890123456789\r\n:7\r\n";
	static const char badv[] = "=34\r\ntxtX012345678901234567890123456789\r\n:7\r\n";
	static const char badc[] = "$40\r\n0123456789012345678901234567890123456789XX:5\r\n";
	static const char cut[]  = "$40\r\n01234567890123";
	for (size_t chunk = 1; chunk <= 9; chunk += 2) {
		struct skip_result r = skip_stream(bulk, sizeof(bulk) - 1, chunk, 16);
		assert_int_equal(r.err, 0);
		assert_int_equal(r.skipped, 1);
		assert_int_equal(r.frames, 2);
		assert_int_equal(r.lens[0], 5);
		assert_int_equal(r.lens[1], 4);
		assert_true(r.max_held <= 16 + chunk); /* never the whole frame */

		r = skip_stream(agg, sizeof(agg) - 1, chunk, 12);
		assert_int_equal(r.err, 0);
		assert_int_equal(r.skipped, 1);
		assert_int_equal(r.frames, 1);
		assert_int_equal(r.lens[0], 4);

		r = skip_stream(verb, sizeof(verb) - 1, chunk, 10);
		assert_int_equal(r.err, 0);
		assert_int_equal(r.skipped, 1);
		assert_int_equal(r.frames, 1);

		/* Malformed inside the skipped frame: still an error. */
		r = skip_stream(badv, sizeof(badv) - 1, chunk, 10);
		assert_int_equal(r.err, IOK_EPROTO);
		r = skip_stream(badc, sizeof(badc) - 1, chunk, 16);
		assert_int_equal(r.err, IOK_EPROTO);
		/* Truncated: waits, holds little, delivers nothing. */
		r = skip_stream(cut, sizeof(cut) - 1, chunk, 16);
		assert_int_equal(r.err, 0);
		assert_int_equal(r.frames, 0);
		assert_true(r.max_held <= 16 + chunk);
	}
	/* Under the limit nothing is skipped. */
	struct skip_result r = skip_stream(bulk, sizeof(bulk) - 1, 5, 0);
	assert_int_equal(r.skipped, 0);
	assert_int_equal(r.frames, 3);
}

/* role=: a server in the wrong role is refused after its HELLO; with
 * role=primary a READONLY reply is the connection's last. */
static void
test_roles(void **state)
{
	conn c;
	(void) state;
	script("redis://h/?role=primary", SL(HELLO_PLAIN), SL(HELLO_MAP), IK_HS_DONE, 3);
	script("redis://h/?role=master", SL(HELLO_PLAIN), SL(HELLO_MAP), IK_HS_DONE, 3);
	script("redis://h/?role=replica", SL(HELLO_PLAIN), SL(HELLO_MAP), -IOK_ESTATE, 0);
	script("redis://h/?role=any", SL(HELLO_PLAIN), SL(HELLO_MAP), IK_HS_DONE, 3);
	/* RESP2 (no HELLO) does not say: taken as it is. */
	script("redis://h/?role=replica", SL(HELLO_PLAIN),
	    SL("-ERR unknown command 'HELLO'\r\n+OK\r\n"), IK_HS_DONE, 2);
	assert_int_not_equal(open_conn(&c, "redis://h/?role=leader", 0), 0);

	assert_int_equal(open_conn(&c, "redis://h/?role=primary", 0), 0);
	assert_int_equal(
	    c.t->classify(c.st, S("-READONLY You can't write against a read only replica.\r\n")),
	    IK_FRAME_LAST);
	assert_int_equal(c.t->classify(c.st, S("-READONL\r\n")), IK_FRAME_REPLY);
	assert_int_equal(c.t->classify(c.st, S("-ERR x\r\n")), IK_FRAME_REPLY);
	assert_int_equal(c.t->classify(c.st, S("+READONLY\r\n")), IK_FRAME_REPLY);
	close_conn(&c);
	assert_int_equal(open_conn(&c, "redis://h", 0), 0); /* role any: just a reply */
	assert_int_equal(c.t->classify(c.st, S("-READONLY no\r\n")), IK_FRAME_REPLY);
	close_conn(&c);
}

/* The health probe: PING; +PONG or an error reply answer it, anything
 * else (truncated, another type, trailing bytes) does not. */
static void
test_probe(void **state)
{
	(void) state;
	void  *st = calloc(1, ik_tran_redis.state_size);
	ik_buf out;
	ik_buf_init(&out);
	assert_int_equal(ik_tran_redis.probe(st, &out), 0);
	assert_int_equal(out.len, 14);
	assert_memory_equal(out.data, "*1\r\n$4\r\nPING\r\n", 14);
	assert_true(ik_tran_redis.probe_ok(st, (const uint8_t *) "+PONG\r\n", 7));
	assert_true(ik_tran_redis.probe_ok(st, (const uint8_t *) "-LOADING x\r\n", 12));
	assert_false(ik_tran_redis.probe_ok(st, (const uint8_t *) "+PONG\r\n", 5));
	assert_false(ik_tran_redis.probe_ok(st, (const uint8_t *) "+PONGX\r\n", 8));
	assert_false(ik_tran_redis.probe_ok(st, (const uint8_t *) "$4\r\nPONG\r\n", 10));
	assert_false(ik_tran_redis.probe_ok(st, (const uint8_t *) "", 0));
	assert_ptr_equal(ik_tran_redis_unix.probe, ik_tran_redis.probe);
	ik_buf_fini(&out);
	free(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transport_table),
		cmocka_unit_test(test_resp3_plain),
		cmocka_unit_test(test_resp3_auth_select),
		cmocka_unit_test(test_auth_failure),
		cmocka_unit_test(test_resp2_fallback),
		cmocka_unit_test(test_protocol2),
		cmocka_unit_test(test_hello_variants),
		cmocka_unit_test(test_malformed_reply),
		cmocka_unit_test(test_bad_urls),
		cmocka_unit_test(test_after_handshake),
		cmocka_unit_test(test_frame),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_roles),
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_skip_oversize),
		cmocka_unit_test(test_probe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
