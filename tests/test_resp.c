/*
 * test_resp.c - the RESP codec on byte buffers: framing (whole, split at
 * every byte, many frames per buffer), limits, malformed input, the
 * iterator, and command formatting/checking.  Vectors marked "redis 7.0"
 * were captured from a real redis-server.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "iok.h"
#include "transports/resp.h"

#define S(lit) (const uint8_t *) (lit), sizeof(lit) - 1

typedef struct vec {
	const char *b;
	size_t      n;
} vec;
#define V(lit)                       \
	{                            \
		lit, sizeof(lit) - 1 \
	}

/* Valid frames: every type, nulls, nesting, and real replies. */
static const vec valid[] = {
	V("+OK\r\n"),
	V("+\r\n"),
	V("-ERR unknown command 'FOO'\r\n"),
	V(":0\r\n"),
	V(":-1\r\n"),
	V(":9223372036854775807\r\n"),
	V(":-9223372036854775808\r\n"),
	V("$0\r\n\r\n"),
	V("$-1\r\n"),
	V("$5\r\nhello\r\n"),
	V("$4\r\na\r\nb\r\n"), /* CRLF inside a bulk is data */
	V("*-1\r\n"),
	V("*0\r\n"),
	V("*2\r\n$3\r\nfoo\r\n:42\r\n"),
	V("_\r\n"),
	V("%0\r\n"),
	V("%1\r\n+key\r\n:1\r\n"),
	V("~0\r\n"),
	V("~2\r\n+a\r\n+b\r\n"),
	V(",1.5\r\n"),
	V(",-0.25\r\n"),
	V(",inf\r\n"),
	V(",-inf\r\n"),
	V(",nan\r\n"),
	V(",1e10\r\n"),
	V(",1.5E-3\r\n"),
	V(",10\r\n"),
	V(",.5\r\n"),
	V("#t\r\n"),
	V("#f\r\n"),
	V("(3492890328409238509324850943850943825024385\r\n"),
	V("(-1\r\n"),
	V("=15\r\ntxt:Some string\r\n"),
	V("=4\r\nmkd:\r\n"),
	V(">0\r\n"),
	V(">2\r\n+message\r\n$2\r\nhi\r\n"),
	V("|1\r\n+ttl\r\n:3600\r\n$1\r\nv\r\n"),
	V("|0\r\n:1\r\n"),
	V("!21\r\nSYNTAX invalid syntax\r\n"),
	V("!0\r\n\r\n"),
	V("*1\r\n*1\r\n*1\r\n*0\r\n"),
	V("*2\r\n|1\r\n+a\r\n+b\r\n:1\r\n:2\r\n"), /* attribute inside an array */
	V("%1\r\n|1\r\n+x\r\n+y\r\n+k\r\n~1\r\n,2.5\r\n"),
	V("*3\r\n$-1\r\n*-1\r\n_\r\n"),
	/* redis 7.0, RESP3 */
	V("%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:"
	  "3\r\n$2\r\nid\r\n:3\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$"
	  "6\r\nmaster\r\n$"
	  "7\r\nmodules\r\n*0\r\n"),
	V("(1234567999999999999999999999999999999\r\n"),
	V("%3\r\n:0\r\n#f\r\n:1\r\n#t\r\n:2\r\n#f\r\n"),
	V("|1\r\n$14\r\nkey-popularity\r\n*2\r\n$7\r\nkey:123\r\n:90\r\n$39\r\nSome real reply "
	  "following the attribute\r\n"),
	V(">2\r\n$16\r\nserver-cpu-usage\r\n:42\r\n"),
	V("=29\r\ntxt:This is a verbatim\nstring\r\n"),
	V(">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"),
	V(">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n"),
	V("*4\r\n:1\r\n:2\r\n*2\r\n:3\r\n$1\r\nx\r\n-bad\r\n"),
	V("*3\r\n+OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:\r\n+ENCODING "
	  "<key>\r\n+    Return the kind of internal representation used in order to store "
	  "the value\r\n"),
	/* redis 7.0, RESP2 */
	V("*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n"),
	V("$25\r\nThis is a verbatim\nstring\r\n"),
};
#define NVALID (sizeof(valid) / sizeof(valid[0]))

/* Malformed frames: each must give -IOK_EPROTO, however it is split. */
static const vec bad[] = {
	V("x\r\n"),
	V("\r\n"),
	V(" +OK\r\n"),
	V("+a\nb\r\n"),      /* bare LF */
	V("+OK\n"),          /* LF without CR */
	V("+a\rb\r\n"),      /* CR without LF */
	V("$3\r\nabcd\r\n"), /* payload longer than declared */
	V("$3\r\nabc\n\n"),  /* no CRLF after the payload */
	V("$3\r\nabcXY"),
	V("$0\r\n\n"),
	V(":\r\n"),
	V(":-\r\n"),
	V(":+1\r\n"),
	V(":12a\r\n"),
	V(": 1\r\n"),
	V(":9223372036854775808\r\n"), /* overflow */
	V(":-9223372036854775809\r\n"),
	V("$-2\r\n"),
	V("*-2\r\n"),
	V("$-0\r\n"),
	V("$+1\r\nx\r\n"),
	V("$1x\r\n"),
	V("$\r\n"),
	V("$99999999999999999999\r\n"), /* overflows int64 */
	V("*16777217\r\n"),             /* more than 2^24 elements */
	V("%-1\r\n"),
	V("~-1\r\n"),
	V(">-1\r\n"),
	V("|-1\r\n"),
	V("=-1\r\n"),
	V("!-1\r\n"),
	V("_x\r\n"),
	V("#\r\n"),
	V("#x\r\n"),
	V("#tt\r\n"),
	V(",\r\n"),
	V(",abc\r\n"),
	V(",1e\r\n"),
	V(",.\r\n"),
	V(",1.5x\r\n"),
	V(",0x10\r\n"),
	V(", 1\r\n"),
	V(",infinity\r\n"),
	V("(\r\n"),
	V("(-\r\n"),
	V("(12a\r\n"),
	V("=3\r\nabc\r\n"), /* verbatim needs "fmt:" */
	V("=5\r\nabcde\r\n"),
	V("*2\r\n:1\r\nx\r\n"),
	V("*1\r\n$2\r\nab\r\r"),
	V(":1111111111111111111111111111111111111111"), /* line far too long */
	V("$11111111111111111111111111111111111111111"),
	V(",1111111111111111111111111111111111111111111111111111111111111111111111111111111111111"
	  "111111111111111111111111111111111111111111111111111111111111111111111111111111111111"),
};
#define NBAD (sizeof(bad) / sizeof(bad[0]))

/* A heap copy of exactly n bytes, so ASan catches any read past len. */
static uint8_t *
dup_n(const void *p, size_t n)
{
	uint8_t *d = malloc(n ? n : 1);
	assert_non_null(d);
	memcpy(d, p, n);
	return d;
}

static ssize_t
parse_copy(ik_resp_parser *p, const void *b, size_t n, size_t *need)
{
	uint8_t *d  = dup_n(b, n);
	ssize_t  rv = ik_resp_parse(p, d, n, need);
	free(d);
	return rv;
}

/* ----------------------------------------------------------- framing */

static void
test_whole(void **state)
{
	ik_resp_parser p;
	size_t         need;

	for (size_t i = 0; i < NVALID; i++) {
		ik_resp_parser_init(&p, 0, 0);
		ssize_t rv = parse_copy(&p, valid[i].b, valid[i].n, &need);
		if (rv != (ssize_t) valid[i].n) {
			fail_msg("vector %zu: got %zd want %zu", i, rv, valid[i].n);
		}
	}
}

/* Byte at a time with one parser: every prefix needs more, then done. */
static void
test_byte_at_a_time(void **state)
{
	ik_resp_parser p;
	size_t         need;

	for (size_t i = 0; i < NVALID; i++) {
		ik_resp_parser_init(&p, 0, 0);
		for (size_t k = 0; k < valid[i].n; k++) {
			ssize_t rv = parse_copy(&p, valid[i].b, k, &need);
			if (rv != 0) {
				fail_msg("vector %zu prefix %zu: got %zd", i, k, rv);
			}
			assert_true(need == 0 || (need > k && need <= valid[i].n));
		}
		assert_int_equal(parse_copy(&p, valid[i].b, valid[i].n, &need), valid[i].n);
	}
}

/* Split in two at every point with a fresh parser for each split. */
static void
test_every_split(void **state)
{
	ik_resp_parser p;
	size_t         need;

	for (size_t i = 0; i < NVALID; i++) {
		for (size_t k = 0; k <= valid[i].n; k++) {
			ik_resp_parser_init(&p, 0, 0);
			ssize_t rv = parse_copy(&p, valid[i].b, k, &need);
			assert_int_equal(rv, k == valid[i].n ? (ssize_t) valid[i].n : 0);
			if (k < valid[i].n) {
				assert_int_equal(
				    parse_copy(&p, valid[i].b, valid[i].n, &need), valid[i].n);
			}
		}
	}
}

/* All valid frames back to back, cut by a pipe-like loop that offers the
 * unconsumed bytes again with more appended, in chunks of every size. */
static void
test_many_frames(void **state)
{
	size_t total = 0, off = 0;
	for (size_t i = 0; i < NVALID; i++) {
		total += valid[i].n;
	}
	uint8_t *all = malloc(total);
	assert_non_null(all);
	for (size_t i = 0; i < NVALID; i++) {
		memcpy(all + off, valid[i].b, valid[i].n);
		off += valid[i].n;
	}

	for (size_t chunk = 1; chunk <= total; chunk = chunk < 16 ? chunk + 1 : chunk * 3) {
		ik_resp_parser p;
		size_t         start = 0, have = 0, nframe = 0, need;
		ik_resp_parser_init(&p, 0, 0);
		while (start < total) {
			ssize_t rv = parse_copy(&p, all + start, have - start, &need);
			assert_true(rv >= 0);
			if (rv > 0) {
				assert_int_equal(rv, valid[nframe].n);
				assert_memory_equal(all + start, valid[nframe].b, valid[nframe].n);
				start += (size_t) rv;
				nframe++;
				continue;
			}
			assert_true(have < total);
			have = have + chunk > total ? total : have + chunk;
		}
		assert_int_equal(nframe, NVALID);
	}
	free(all);
}

static void
test_bad(void **state)
{
	ik_resp_parser p;
	size_t         need;

	for (size_t i = 0; i < NBAD; i++) {
		ik_resp_parser_init(&p, 0, 0);
		ssize_t rv = parse_copy(&p, bad[i].b, bad[i].n, &need);
		if (rv != -IOK_EPROTO) {
			fail_msg("bad vector %zu: got %zd", i, rv);
		}
		/* Fed a byte at a time: no frame, and the same error. */
		ik_resp_parser_init(&p, 0, 0);
		rv = 0;
		for (size_t k = 1; k <= bad[i].n && rv == 0; k++) {
			rv = parse_copy(&p, bad[i].b, k, &need);
		}
		if (rv != -IOK_EPROTO) {
			fail_msg("bad vector %zu by bytes: got %zd", i, rv);
		}
	}
}

/* Garbage is refused at its first byte, not after buffering. */
static void
test_garbage_early(void **state)
{
	ik_resp_parser p;
	size_t         need;
	uint8_t        junk[256];

	for (int c = 0; c < 256; c++) {
		junk[0] = (uint8_t) c;
		ik_resp_parser_init(&p, 0, 0);
		ssize_t rv = ik_resp_parse(&p, junk, 1, &need);
		if (strchr("+-:$*_%~,#(=>|!", c) != NULL && c != 0) {
			assert_int_equal(rv, 0);
		} else {
			assert_int_equal(rv, -IOK_EPROTO);
		}
	}
	/* An HTTP or SP peer instead of Redis. */
	ik_resp_parser_init(&p, 0, 0);
	assert_int_equal(ik_resp_parse(&p, S("GET / HTTP/1.1\r\n"), &need), -IOK_EPROTO);
	ik_resp_parser_init(&p, 0, 0);
	assert_int_equal(ik_resp_parse(&p, S("\0SP\0\0\x10\0\0"), &need), -IOK_EPROTO);
}

static void
test_need(void **state)
{
	ik_resp_parser p;
	size_t         need;

	ik_resp_parser_init(&p, 0, 0);
	assert_int_equal(ik_resp_parse(&p, S("$100\r\n0123456789"), &need), 0);
	assert_int_equal(need, 6 + 100 + 2);
	ik_resp_parser_init(&p, 0, 0);
	assert_int_equal(ik_resp_parse(&p, S("+OK"), &need), 0);
	assert_int_equal(need, 0);
	/* Inside an array, need is a lower bound: this bulk's end. */
	ik_resp_parser_init(&p, 0, 0);
	assert_int_equal(ik_resp_parse(&p, S("*2\r\n$10\r\nab"), &need), 0);
	assert_int_equal(need, 4 + 5 + 10 + 2);
}

/* recv_max: refused as soon as a declared length makes it inevitable. */
static void
test_recv_max(void **state)
{
	ik_resp_parser p;
	size_t         need;

	ik_resp_parser_init(&p, 100, 0);
	assert_int_equal(ik_resp_parse(&p, S("$1000\r\n"), &need), -IOK_EMSGSIZE);
	ik_resp_parser_init(&p, 100, 0);
	assert_int_equal(ik_resp_parse(&p, S("*1000\r\n"), &need), -IOK_EMSGSIZE);
	ik_resp_parser_init(&p, 100, 0);
	assert_int_equal(ik_resp_parse(&p, S("%20\r\n"), &need), -IOK_EMSGSIZE);
	ik_resp_parser_init(&p, 100, 0);
	assert_int_equal(ik_resp_parse(&p, S("*2\r\n$50\r\n"), &need), 0);
	assert_int_equal(ik_resp_parse(&p, S("*2\r\n$50\r\n0123"), &need), 0);
	ik_resp_parser_init(&p, 100, 0);
	assert_int_equal(ik_resp_parse(&p, S("*2\r\n$90\r\n"), &need), -IOK_EMSGSIZE);
	/* Huge but well-formed lengths are a size problem, not a syntax one. */
	ik_resp_parser_init(&p, 0, 0);
	assert_int_equal(ik_resp_parse(&p, S("$9223372036854775807\r\n"), &need), -IOK_EMSGSIZE);
	ik_resp_parser_init(&p, 1 << 20, 0);
	assert_int_equal(ik_resp_parse(&p, S("*16777216\r\n"), &need), -IOK_EMSGSIZE);

	/* A simple string without end. */
	uint8_t line[300];
	memset(line, 'a', sizeof(line));
	line[0] = '+';
	ik_resp_parser_init(&p, 100, 0);
	assert_int_equal(ik_resp_parse(&p, line, 98, &need), 0); /* + CRLF = 100 */
	assert_int_equal(ik_resp_parse(&p, line, 99, &need), -IOK_EMSGSIZE);
	/* ... and arriving whole. */
	line[298] = '\r';
	line[299] = '\n';
	ik_resp_parser_init(&p, 100, 0);
	assert_int_equal(ik_resp_parse(&p, line, 300, &need), -IOK_EMSGSIZE);

	/* Exactly recv_max fits; one byte less does not. */
	static const char f[] = "*2\r\n$3\r\nfoo\r\n$3\r\nbar\r\n";
	size_t            n   = sizeof(f) - 1;
	ik_resp_parser_init(&p, n, 0);
	assert_int_equal(ik_resp_parse(&p, (const uint8_t *) f, n, &need), n);
	ik_resp_parser_init(&p, n - 1, 0);
	assert_int_equal(ik_resp_parse(&p, (const uint8_t *) f, n, &need), -IOK_EMSGSIZE);
	for (size_t k = 0; k < n; k++) {
		ik_resp_parser_init(&p, n, 0);
		assert_int_equal(ik_resp_parse(&p, (const uint8_t *) f, k, &need), 0);
	}
}

static uint8_t *
nested(int depth, char open, size_t *len)
{
	size_t   n = (size_t) depth * 4 + 4;
	uint8_t *b = malloc(n), *q = b;
	assert_non_null(b);
	for (int i = 0; i < depth; i++) {
		*q++ = (uint8_t) open;
		*q++ = '1';
		*q++ = '\r';
		*q++ = '\n';
	}
	memcpy(q, ":1\r\n", 4);
	*len = n;
	return b;
}

static void
test_depth(void **state)
{
	ik_resp_parser p;
	size_t         need, n;
	uint8_t       *b;

	b = nested(IK_RESP_DEPTH_DEFAULT, '*', &n);
	ik_resp_parser_init(&p, 0, 0);
	assert_int_equal(ik_resp_parse(&p, b, n, &need), n);
	free(b);
	b = nested(IK_RESP_DEPTH_DEFAULT + 1, '*', &n);
	ik_resp_parser_init(&p, 0, 0);
	assert_int_equal(ik_resp_parse(&p, b, n, &need), -IOK_EPROTO);
	free(b);
	/* Refused as soon as the too-deep header is seen. */
	ik_resp_parser_init(&p, 0, 0);
	b = nested(IK_RESP_DEPTH_DEFAULT + 1, '*', &n);
	assert_int_equal(ik_resp_parse(&p, b, 4 * (IK_RESP_DEPTH_DEFAULT + 1), &need), -IOK_EPROTO);
	free(b);

	/* Configurable, and maps/sets/pushes/attributes count too. */
	const char opens[] = "*%~>";
	for (int i = 0; opens[i]; i++) {
		b = nested(3, opens[i], &n);
		ik_resp_parser_init(&p, 0, 3);
		if (opens[i] == '%') {
			/* "%1" holds 2 values: close each level with a second one */
			free(b);
			static const char m3[] = "%1\r\n%1\r\n%1\r\n:1\r\n:2\r\n:3\r\n:4\r\n";
			ik_resp_parser_init(&p, 0, 3);
			assert_int_equal(ik_resp_parse(&p, S(m3), &need), sizeof(m3) - 1);
			ik_resp_parser_init(&p, 0, 2);
			assert_int_equal(ik_resp_parse(&p, S(m3), &need), -IOK_EPROTO);
			continue;
		}
		assert_int_equal(ik_resp_parse(&p, b, n, &need), n);
		ik_resp_parser_init(&p, 0, 2);
		assert_int_equal(ik_resp_parse(&p, b, n, &need), -IOK_EPROTO);
		free(b);
	}
	ik_resp_parser_init(&p, 0, 1);
	assert_int_equal(
	    ik_resp_parse(&p, S("*1\r\n|1\r\n+a\r\n+b\r\n:1\r\n"), &need), -IOK_EPROTO);

	/* The hard cap applies whatever is asked. */
	b = nested(IK_RESP_DEPTH_MAX + 1, '*', &n);
	ik_resp_parser_init(&p, 0, 100000);
	assert_int_equal(ik_resp_parse(&p, b, n, &need), -IOK_EPROTO);
	free(b);
	b = nested(IK_RESP_DEPTH_MAX, '*', &n);
	ik_resp_parser_init(&p, 0, 100000);
	assert_int_equal(ik_resp_parse(&p, b, n, &need), n);
	free(b);
}

/* A big array of small bulks fed in 1-byte pieces must be linear. */
static void
test_linear(void **state)
{
	const size_t   count = 1 << 20; /* 1M elements, 7 MiB */
	const size_t   n     = 16 + count * 7;
	uint8_t       *b     = malloc(n);
	size_t         len, need;
	ik_resp_parser p;

	assert_non_null(b);
	len = (size_t) snprintf((char *) b, 32, "*%zu\r\n", count);
	for (size_t i = 0; i < count; i++) {
		memcpy(b + len, "$1\r\nx\r\n", 7);
		len += 7;
	}
	ik_resp_parser_init(&p, 0, 0);
	clock_t t0 = clock();
	ssize_t rv = 0;
	for (size_t k = 1; k <= len && rv == 0; k++) {
		rv = ik_resp_parse(&p, b, k, &need);
	}
	double secs = (double) (clock() - t0) / CLOCKS_PER_SEC;
	assert_int_equal(rv, len);
	/* quadratic would be ~10^13 steps; linear is well under a second
	 * even with sanitizers */
	assert_true(secs < 20.0);
	free(b);
}

/* After a frame, the next call starts a new one (state reset), also
 * after the parser saw only part of a following frame. */
static void
test_reset_between(void **state)
{
	ik_resp_parser p;
	size_t         need;

	ik_resp_parser_init(&p, 0, 0);
	assert_int_equal(ik_resp_parse(&p, S("*2\r\n:1\r\n:2\r\n*1\r\n"), &need), 12);
	assert_int_equal(ik_resp_parse(&p, S("*1\r\n"), &need), 0);
	assert_int_equal(ik_resp_parse(&p, S("*1\r\n$2\r\nab\r\n"), &need), 12);
	assert_int_equal(ik_resp_parse(&p, S("+x\r\n"), &need), 4);
	ik_resp_parser_init(&p, 0, 0);
	assert_int_equal(ik_resp_parse(&p, S("*3\r\n:1"), &need), 0);
	ik_resp_parser_reset(&p);
	assert_int_equal(ik_resp_parse(&p, S("+x\r\n"), &need), 4);
}

/* ---------------------------------------------------------- iterator */

typedef struct want {
	int         type;
	unsigned    depth;
	size_t      count;
	const char *str; /* NULL: not checked */
	int         null;
} want;

static void
walk(const char *b, size_t n, const want *w, size_t nw)
{
	uint8_t     *d = dup_n(b, n);
	ik_resp_iter it;
	ik_resp_item item;

	ik_resp_iter_init(&it, d, n);
	for (size_t i = 0; i < nw; i++) {
		int rv = ik_resp_iter_next(&it, &item);
		if (rv != 1) {
			fail_msg("item %zu: rv %d", i, rv);
		}
		assert_int_equal(item.type, w[i].type);
		assert_int_equal(item.depth, w[i].depth);
		assert_int_equal(item.count, w[i].count);
		assert_int_equal(item.null, w[i].null);
		if (w[i].str != NULL) {
			assert_int_equal(item.len, strlen(w[i].str));
			assert_memory_equal(item.str, w[i].str, item.len);
		}
	}
	assert_int_equal(ik_resp_iter_next(&it, &item), 0);
	assert_int_equal(ik_resp_iter_next(&it, &item), 0);
	assert_int_equal(it.pos, n);
	free(d);
}

static void
test_iter_nested(void **state)
{
	static const char m[]  = "%2\r\n+a\r\n~2\r\n:1\r\n%1\r\n$1\r\nk\r\n_\r\n"
	                         "$1\r\nb\r\n*2\r\n*0\r\n$-1\r\n";
	static const want wm[] = {
		{ '%', 0, 2, NULL, 0 },
		{ '+', 1, 0, "a", 0 },
		{ '~', 1, 2, NULL, 0 },
		{ ':', 2, 0, NULL, 0 },
		{ '%', 2, 1, NULL, 0 },
		{ '$', 3, 0, "k", 0 },
		{ '_', 3, 0, NULL, 1 },
		{ '$', 1, 0, "b", 0 },
		{ '*', 1, 2, NULL, 0 },
		{ '*', 2, 0, NULL, 0 },
		{ '$', 2, 0, NULL, 1 },
	};
	walk(m, sizeof(m) - 1, wm, sizeof(wm) / sizeof(wm[0]));

	/* redis 7.0 DEBUG PROTOCOL attrib: the attribute, its pair, then the
	 * value it annotates at the attribute's depth. */
	static const char a[]  = "|1\r\n$14\r\nkey-popularity\r\n*2\r\n$7\r\nkey:123\r\n:90\r\n"
	                         "$39\r\nSome real reply following the attribute\r\n";
	static const want wa[] = {
		{ '|', 0, 1, NULL, 0 },
		{ '$', 1, 0, "key-popularity", 0 },
		{ '*', 1, 2, NULL, 0 },
		{ '$', 2, 0, "key:123", 0 },
		{ ':', 2, 0, NULL, 0 },
		{ '$', 0, 0, "Some real reply following the attribute", 0 },
	};
	walk(a, sizeof(a) - 1, wa, sizeof(wa) / sizeof(wa[0]));

	/* Attributes inside aggregates, and an empty one. */
	static const char b[]  = "~2\r\n|1\r\n+x\r\n+y\r\n+k\r\n|0\r\n#t\r\n";
	static const want wb[] = {
		{ '~', 0, 2, NULL, 0 },
		{ '|', 1, 1, NULL, 0 },
		{ '+', 2, 0, "x", 0 },
		{ '+', 2, 0, "y", 0 },
		{ '+', 1, 0, "k", 0 },
		{ '|', 1, 0, NULL, 0 },
		{ '#', 1, 0, NULL, 0 },
	};
	walk(b, sizeof(b) - 1, wb, sizeof(wb) / sizeof(wb[0]));

	static const char p[]  = ">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n";
	static const want wp[] = {
		{ '>', 0, 3, NULL, 0 },
		{ '$', 1, 0, "subscribe", 0 },
		{ '$', 1, 0, "ch", 0 },
		{ ':', 1, 0, NULL, 0 },
	};
	walk(p, sizeof(p) - 1, wp, sizeof(wp) / sizeof(wp[0]));
}

static void
one(const char *b, size_t n, ik_resp_item *item)
{
	ik_resp_iter it;
	ik_resp_iter_init(&it, (const uint8_t *) b, n);
	assert_int_equal(ik_resp_iter_next(&it, item), 1);
	assert_int_equal(ik_resp_iter_next(&it, &(ik_resp_item) { 0 }), 0);
	assert_int_equal(it.pos, n);
}
#define ONE(lit, item) one(lit, sizeof(lit) - 1, item)

static void
test_iter_scalars(void **state)
{
	ik_resp_item x;

	ONE(":9223372036854775807\r\n", &x);
	assert_true(x.type == IK_RESP_INTEGER && x.i == INT64_MAX);
	ONE(":-9223372036854775808\r\n", &x);
	assert_true(x.i == INT64_MIN);
	ONE(":-42\r\n", &x);
	assert_true(x.i == -42);
	ONE(",3.141\r\n", &x);
	assert_true(x.type == IK_RESP_DOUBLE && x.d == 3.141);
	assert_int_equal(x.len, 5);
	ONE(",-1.5e3\r\n", &x);
	assert_true(x.d == -1500.0);
	ONE(",1E-2\r\n", &x);
	assert_true(x.d == 0.01);
	ONE(",inf\r\n", &x);
	assert_true(isinf(x.d) && x.d > 0);
	ONE(",-inf\r\n", &x);
	assert_true(isinf(x.d) && x.d < 0);
	ONE(",nan\r\n", &x);
	assert_true(isnan(x.d));
	ONE("#t\r\n", &x);
	assert_true(x.type == IK_RESP_BOOL && x.b == 1);
	ONE("#f\r\n", &x);
	assert_true(x.b == 0);
	ONE("_\r\n", &x);
	assert_true(x.type == IK_RESP_NULL && x.null);
	ONE("$-1\r\n", &x);
	assert_true(x.type == IK_RESP_BULK && x.null && x.str == NULL);
	ONE("*-1\r\n", &x);
	assert_true(x.type == IK_RESP_ARRAY && x.null && x.count == 0);
	ONE("$0\r\n\r\n", &x);
	assert_true(x.type == IK_RESP_BULK && !x.null && x.len == 0 && x.str != NULL);
	ONE("(-3492890328409238509324850943850943825024385\r\n", &x);
	assert_true(x.type == IK_RESP_BIGNUM && x.len == 44 && x.str[0] == '-');
	ONE("=15\r\ntxt:Some string\r\n", &x);
	assert_true(x.type == IK_RESP_VERBATIM && strcmp(x.fmt, "txt") == 0);
	assert_int_equal(x.len, 11);
	assert_memory_equal(x.str, "Some string", 11);
	ONE("=29\r\ntxt:This is a verbatim\nstring\r\n", &x);
	assert_int_equal(x.len, 25);
	ONE("!21\r\nSYNTAX invalid syntax\r\n", &x);
	assert_true(x.type == IK_RESP_BLOBERR && x.len == 21);
	ONE("-WRONGPASS invalid username-password pair or user is disabled.\r\n", &x);
	assert_true(x.type == IK_RESP_ERROR && x.len == 61);
	ONE("+\r\n", &x);
	assert_true(x.type == IK_RESP_SIMPLE && x.len == 0);
}

/* The iterator agrees with the framer: valid frames iterate to the end at
 * exactly their length (with trailing bytes ignored), truncated ones give
 * an error, never 0, and malformed ones an error. */
static void
test_iter_robust(void **state)
{
	ik_resp_iter it;
	ik_resp_item item;
	int          rv;

	for (size_t i = 0; i < NVALID; i++) {
		for (size_t k = 0; k <= valid[i].n; k++) {
			uint8_t *d = dup_n(valid[i].b, k);
			ik_resp_iter_init(&it, d, k);
			while ((rv = ik_resp_iter_next(&it, &item)) == 1) {
			}
			if (k == valid[i].n) {
				assert_int_equal(rv, 0);
				assert_int_equal(it.pos, k);
			} else {
				assert_int_equal(rv, -IOK_EPROTO);
			}
			free(d);
		}
		/* trailing bytes are not part of the frame */
		uint8_t *d = malloc(valid[i].n + 4);
		memcpy(d, valid[i].b, valid[i].n);
		memcpy(d + valid[i].n, "+x\r\n", 4);
		ik_resp_iter_init(&it, d, valid[i].n + 4);
		while ((rv = ik_resp_iter_next(&it, &item)) == 1) {
		}
		assert_int_equal(rv, 0);
		assert_int_equal(it.pos, valid[i].n);
		free(d);
	}
	for (size_t i = 0; i < NBAD; i++) {
		uint8_t *d = dup_n(bad[i].b, bad[i].n);
		ik_resp_iter_init(&it, d, bad[i].n);
		while ((rv = ik_resp_iter_next(&it, &item)) == 1) {
		}
		assert_int_equal(rv, -IOK_EPROTO);
		free(d);
	}
	/* deeper than the hard cap */
	size_t   n;
	uint8_t *b = nested(IK_RESP_DEPTH_MAX + 1, '*', &n);
	ik_resp_iter_init(&it, b, n);
	while ((rv = ik_resp_iter_next(&it, &item)) == 1) {
	}
	assert_int_equal(rv, -IOK_EPROTO);
	free(b);
	/* ik_resp_top skips attributes */
	assert_int_equal(ik_resp_top(S("|1\r\n+a\r\n+b\r\n>1\r\n+p\r\n"), &item), 1);
	assert_int_equal(item.type, IK_RESP_PUSH);
	assert_int_equal(ik_resp_top(S("|1\r\n+a\r\n+b\r\n"), &item), -IOK_EPROTO);
	assert_int_equal(ik_resp_top(S(""), &item), -IOK_EPROTO);
}

/* --------------------------------------------------------- commands */

static void
test_format(void **state)
{
	ik_buf      b;
	const char *argv[] = { "SET", "key", "va\r\nl\0ue" };
	size_t      lens[] = { 3, 3, 8 };

	ik_buf_init(&b);
	assert_int_equal(ik_resp_format_argv(&b, 3, argv, lens), 0);
	static const char want_set[] = "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$8\r\nva\r\nl\0ue\r\n";
	assert_int_equal(b.len, sizeof(want_set) - 1);
	assert_memory_equal(b.data, want_set, b.len);
	assert_true(ik_resp_is_command(b.data, b.len));

	/* appends; NULL lens means C strings; empty arguments */
	const char *ping[] = { "PING", "" };
	assert_int_equal(ik_resp_format_argv(&b, 2, ping, NULL), 0);
	static const char want_ping[] = "*2\r\n$4\r\nPING\r\n$0\r\n\r\n";
	assert_int_equal(b.len, sizeof(want_set) - 1 + sizeof(want_ping) - 1);
	assert_memory_equal(b.data + sizeof(want_set) - 1, want_ping, sizeof(want_ping) - 1);
	/* two commands are not one command */
	assert_false(ik_resp_is_command(b.data, b.len));

	size_t before = b.len;
	assert_int_equal(ik_resp_format_argv(&b, 0, ping, NULL), IOK_EINVAL);
	const char *nul[] = { "GET", NULL };
	assert_int_equal(ik_resp_format_argv(&b, 2, nul, NULL), IOK_EINVAL);
	assert_int_equal(b.len, before);
	size_t zl[] = { 3, 0 };
	assert_int_equal(ik_resp_format_argv(&b, 2, nul, zl), 0); /* NULL, 0 = "" */

	/* many arguments, round trip through the iterator */
	ik_buf_fini(&b);
	const char *many[1000];
	for (int i = 0; i < 1000; i++) {
		many[i] = "x";
	}
	assert_int_equal(ik_resp_format_argv(&b, 1000, many, NULL), 0);
	assert_true(ik_resp_is_command(b.data, b.len));
	ik_resp_iter it;
	ik_resp_item item;
	ik_resp_iter_init(&it, b.data, b.len);
	assert_int_equal(ik_resp_iter_next(&it, &item), 1);
	assert_int_equal(item.count, 1000);
	ik_buf_fini(&b);
}

static void
test_is_command(void **state)
{
	assert_true(ik_resp_is_command(S("*1\r\n$4\r\nPING\r\n")));
	assert_true(ik_resp_is_command(S("*2\r\n$3\r\nGET\r\n$0\r\n\r\n")));
	assert_false(ik_resp_is_command(S("")));
	assert_false(ik_resp_is_command(S("PING\r\n"))); /* inline */
	assert_false(ik_resp_is_command(S("*0\r\n")));
	assert_false(ik_resp_is_command(S("*-1\r\n")));
	assert_false(ik_resp_is_command(S("*1\r\n$-1\r\n")));
	assert_false(ik_resp_is_command(S("*1\r\n:1\r\n")));
	assert_false(ik_resp_is_command(S("*1\r\n+PING\r\n")));
	assert_false(ik_resp_is_command(S("*1\r\n*1\r\n$1\r\nx\r\n")));
	assert_false(ik_resp_is_command(S("%1\r\n$1\r\na\r\n$1\r\nb\r\n")));
	assert_false(ik_resp_is_command(S("|1\r\n$1\r\na\r\n$1\r\nb\r\n*1\r\n$1\r\nx\r\n")));
	assert_false(ik_resp_is_command(S("*2\r\n$4\r\nPING\r\n")));
	assert_false(ik_resp_is_command(S("*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n")));
	assert_false(ik_resp_is_command(S("*1\r\n$4\r\nPING\r\n\r\n")));
	assert_false(ik_resp_is_command(S("*1\r\n$4\r\nPINGG\r\n")));
	assert_false(ik_resp_is_command(S("*1\r\n$5\r\nPING\r\n")));
	assert_false(ik_resp_is_command(S("*1\n$4\nPING\n")));
	/* Numbers as the reader takes them: leading zeros, at most 32 digits,
	 * no sign, within int64, counts within IK_RESP_ELEMS_MAX. */
	assert_true(ik_resp_is_command(S("*01\r\n$0004\r\nPING\r\n")));
	assert_true(ik_resp_is_command(S("*00000000000000000000000000000001\r\n$4\r\nPING\r\n")));
	assert_false(ik_resp_is_command(S("*000000000000000000000000000000001\r\n$4\r\nPING\r\n")));
	assert_false(ik_resp_is_command(S("*+1\r\n$4\r\nPING\r\n")));
	assert_false(ik_resp_is_command(S("*1\r\n$+4\r\nPING\r\n")));
	assert_false(ik_resp_is_command(S("*\r\n$4\r\nPING\r\n")));
	assert_false(ik_resp_is_command(S("*1\r\n$\r\nPING\r\n")));
	assert_false(ik_resp_is_command(S("*1 \r\n$4\r\nPING\r\n")));
	assert_false(ik_resp_is_command(S("*16777217\r\n$4\r\nPING\r\n")));
	assert_false(ik_resp_is_command(S("*1\r\n$9223372036854775808\r\nPING\r\n")));
	assert_false(ik_resp_is_command(S("*1\r\n$18446744073709551620\r\nPING\r\n")));
	assert_false(ik_resp_is_command(S("*1\r\n$4\r\nPING\r")));
	/* truncated at every point */
	static const char c[] = "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
	for (size_t k = 0; k < sizeof(c) - 1; k++) {
		uint8_t *d = dup_n(c, k);
		assert_false(ik_resp_is_command(d, k));
		free(d);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_whole),
		cmocka_unit_test(test_byte_at_a_time),
		cmocka_unit_test(test_every_split),
		cmocka_unit_test(test_many_frames),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_garbage_early),
		cmocka_unit_test(test_need),
		cmocka_unit_test(test_recv_max),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_linear),
		cmocka_unit_test(test_reset_between),
		cmocka_unit_test(test_iter_nested),
		cmocka_unit_test(test_iter_scalars),
		cmocka_unit_test(test_iter_robust),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_is_command),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
