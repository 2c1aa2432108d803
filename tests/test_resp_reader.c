/*
 * test_resp_reader.c - the public RESP calls of iok.h (iok_resp_reader,
 * iok_resp_next, iok_resp_command) on byte buffers, through the shared
 * library and iok.h only, as a binding sees them: every RESP2/RESP3 type,
 * nesting, attributes, truncated, malformed and oversized input.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "iok.h"

#define S(lit) (lit), sizeof(lit) - 1

/* read_all reads a whole reply into items (up to max); returns the number
 * of items, or the negative error iok_resp_next gave. */
static int
read_all(const void *buf, size_t len, iok_resp_item *items, int max)
{
	iok_resp_reader r;
	iok_resp_item   scratch;
	int             n = 0, rv;

	iok_resp_reader_init(&r, buf, len);
	while ((rv = iok_resp_next(&r, n < max ? &items[n] : &scratch)) == 1) {
		n++;
	}
	if (rv < 0) {
		/* Errors stick. */
		assert_int_equal(iok_resp_next(&r, &scratch), rv);
		return rv;
	}
	assert_int_equal(rv, 0);
	assert_int_equal(iok_resp_next(&r, &scratch), 0); /* and so does the end */
	return n;
}

static void
assert_str(const iok_resp_item *it, const char *want)
{
	assert_non_null(it->str);
	assert_int_equal(it->len, strlen(want));
	assert_memory_equal(it->str, want, it->len);
}

static void
test_scalars(void **state)
{
	iok_resp_item it[4];

	assert_int_equal(read_all(S("+OK\r\n"), it, 4), 1);
	assert_int_equal(it[0].type, IOK_RESP_SIMPLE);
	assert_int_equal(it[0].depth, 0);
	assert_false(it[0].null);
	assert_str(&it[0], "OK");

	assert_int_equal(read_all(S("+\r\n"), it, 4), 1);
	assert_int_equal(it[0].len, 0);

	assert_int_equal(read_all(S("-ERR no such key\r\n"), it, 4), 1);
	assert_int_equal(it[0].type, IOK_RESP_ERROR);
	assert_str(&it[0], "ERR no such key");

	assert_int_equal(read_all(S(":-9223372036854775808\r\n"), it, 4), 1);
	assert_int_equal(it[0].type, IOK_RESP_INTEGER);
	assert_true(it[0].integer == INT64_MIN);
	assert_int_equal(read_all(S(":9223372036854775807\r\n"), it, 4), 1);
	assert_true(it[0].integer == INT64_MAX);

	assert_int_equal(read_all(S("$5\r\nhe\r\no\r\n"), it, 4), 1); /* CRLF is data */
	assert_int_equal(it[0].type, IOK_RESP_BULK);
	assert_str(&it[0], "he\r\no");
	assert_int_equal(read_all(S("$3\r\na\0b\r\n"), it, 4), 1);
	assert_int_equal(it[0].len, 3);
	assert_memory_equal(it[0].str, "a\0b", 3);
	assert_int_equal(read_all(S("$0\r\n\r\n"), it, 4), 1);
	assert_int_equal(it[0].len, 0);
	assert_false(it[0].null);

	/* The three nulls. */
	assert_int_equal(read_all(S("$-1\r\n"), it, 4), 1);
	assert_int_equal(it[0].type, IOK_RESP_BULK);
	assert_true(it[0].null);
	assert_int_equal(read_all(S("*-1\r\n"), it, 4), 1);
	assert_int_equal(it[0].type, IOK_RESP_ARRAY);
	assert_true(it[0].null);
	assert_int_equal(it[0].count, 0);
	assert_int_equal(read_all(S("_\r\n"), it, 4), 1);
	assert_int_equal(it[0].type, IOK_RESP_NULL);
	assert_true(it[0].null);

	assert_int_equal(read_all(S(",-2.5e3\r\n"), it, 4), 1);
	assert_int_equal(it[0].type, IOK_RESP_DOUBLE);
	assert_true(it[0].dval == -2500.0);
	assert_str(&it[0], "-2.5e3");
	assert_int_equal(read_all(S(",inf\r\n"), it, 4), 1);
	assert_true(isinf(it[0].dval) && it[0].dval > 0);
	assert_int_equal(read_all(S(",-inf\r\n"), it, 4), 1);
	assert_true(isinf(it[0].dval) && it[0].dval < 0);
	assert_int_equal(read_all(S(",nan\r\n"), it, 4), 1);
	assert_true(isnan(it[0].dval));

	assert_int_equal(read_all(S("#t\r\n"), it, 4), 1);
	assert_int_equal(it[0].type, IOK_RESP_BOOL);
	assert_int_equal(it[0].boolean, 1);
	assert_int_equal(read_all(S("#f\r\n"), it, 4), 1);
	assert_int_equal(it[0].boolean, 0);

	assert_int_equal(
	    read_all(S("(-3492890328409238509324850943850943825024385\r\n"), it, 4), 1);
	assert_int_equal(it[0].type, IOK_RESP_BIGNUM);
	assert_str(&it[0], "-3492890328409238509324850943850943825024385");

	assert_int_equal(read_all(S("=15\r\ntxt:Some string\r\n"), it, 4), 1);
	assert_int_equal(it[0].type, IOK_RESP_VERBATIM);
	assert_string_equal(it[0].fmt, "txt");
	assert_str(&it[0], "Some string");
	assert_int_equal(read_all(S("=4\r\nmkd:\r\n"), it, 4), 1);
	assert_string_equal(it[0].fmt, "mkd");
	assert_int_equal(it[0].len, 0);

	assert_int_equal(read_all(S("!21\r\nSYNTAX invalid syntax\r\n"), it, 4), 1);
	assert_int_equal(it[0].type, IOK_RESP_BLOBERR);
	assert_str(&it[0], "SYNTAX invalid syntax");
}

static void
test_aggregates(void **state)
{
	iok_resp_item it[32];
	int           n;

	/* RESP2 array of everything RESP2 has. */
	n = read_all(S("*5\r\n+a\r\n-E b\r\n:7\r\n$1\r\nc\r\n*-1\r\n"), it, 32);
	assert_int_equal(n, 6);
	assert_int_equal(it[0].type, IOK_RESP_ARRAY);
	assert_int_equal(it[0].count, 5);
	assert_int_equal(it[0].depth, 0);
	for (int i = 1; i < 6; i++) {
		assert_int_equal(it[i].depth, 1);
	}
	assert_int_equal(it[3].integer, 7);
	assert_true(it[5].null);

	/* Map: count is pairs; keys and values alternate one level down. */
	n = read_all(S("%2\r\n+k1\r\n:1\r\n$2\r\nk2\r\n~2\r\n#t\r\n_\r\n"), it, 32);
	assert_int_equal(n, 7);
	assert_int_equal(it[0].type, IOK_RESP_MAP);
	assert_int_equal(it[0].count, 2);
	assert_int_equal(it[4].type, IOK_RESP_SET);
	assert_int_equal(it[4].depth, 1);
	assert_int_equal(it[5].depth, 2);
	assert_int_equal(it[6].type, IOK_RESP_NULL);
	assert_int_equal(it[6].depth, 2);

	/* Push. */
	n = read_all(S(">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n"), it, 32);
	assert_int_equal(n, 4);
	assert_int_equal(it[0].type, IOK_RESP_PUSH);
	assert_int_equal(it[0].count, 3);
	assert_str(&it[3], "x");

	/* Empty aggregates are leaves. */
	assert_int_equal(read_all(S("*0\r\n"), it, 32), 1);
	assert_int_equal(read_all(S("%0\r\n"), it, 32), 1);
	assert_int_equal(read_all(S("~0\r\n"), it, 32), 1);
	n = read_all(S("*3\r\n*0\r\n%0\r\n:1\r\n"), it, 32);
	assert_int_equal(n, 4);
	assert_int_equal(it[3].depth, 1);

	/* Nesting: the depth of each item. */
	n = read_all(S("*2\r\n*2\r\n*1\r\n:1\r\n:2\r\n:3\r\n"), it, 32);
	assert_int_equal(n, 6);
	unsigned depth[] = { 0, 1, 2, 3, 2, 1 };
	for (int i = 0; i < 6; i++) {
		assert_int_equal(it[i].depth, depth[i]);
	}

	/* A top-level attribute, then the value it annotates at its depth. */
	n = read_all(S("|1\r\n+ttl\r\n:3600\r\n$1\r\nv\r\n"), it, 32);
	assert_int_equal(n, 4);
	assert_int_equal(it[0].type, IOK_RESP_ATTR);
	assert_int_equal(it[0].count, 1);
	assert_int_equal(it[1].depth, 1);
	assert_int_equal(it[3].type, IOK_RESP_BULK);
	assert_int_equal(it[3].depth, 0);
	/* Nested: it does not take its parent's slot. */
	n = read_all(S("*2\r\n|1\r\n+a\r\n:1\r\n:5\r\n:6\r\n"), it, 32);
	assert_int_equal(n, 6);
	assert_int_equal(it[1].type, IOK_RESP_ATTR);
	assert_int_equal(it[1].depth, 1);
	assert_int_equal(it[4].integer, 5);
	assert_int_equal(it[4].depth, 1);
	assert_int_equal(it[5].depth, 1);
	/* "|0" annotates with nothing. */
	n = read_all(S("|0\r\n:1\r\n"), it, 32);
	assert_int_equal(n, 2);
}

/* nested builds depth levels of "*1\r\n" around ":1\r\n". */
static char *
nested(int depth, size_t *len)
{
	char *b = malloc((size_t) depth * 4 + 5);
	assert_non_null(b);
	for (int i = 0; i < depth; i++) {
		memcpy(b + 4 * i, "*1\r\n", 4);
	}
	memcpy(b + 4 * depth, ":1\r\n", 4);
	*len = (size_t) depth * 4 + 4;
	return b;
}

static void
test_depth(void **state)
{
	iok_resp_item it[IOK_RESP_DEPTH_MAX + 2];
	size_t        len;
	char         *b;

	b = nested(IOK_RESP_DEPTH_MAX, &len);
	assert_int_equal(read_all(b, len, it, IOK_RESP_DEPTH_MAX + 2), IOK_RESP_DEPTH_MAX + 1);
	assert_int_equal(it[IOK_RESP_DEPTH_MAX].depth, IOK_RESP_DEPTH_MAX);
	free(b);
	b = nested(IOK_RESP_DEPTH_MAX + 1, &len);
	assert_int_equal(read_all(b, len, it, IOK_RESP_DEPTH_MAX + 2), -IOK_EPROTO);
	free(b);
	b = nested(100000, &len);
	assert_int_equal(read_all(b, len, it, IOK_RESP_DEPTH_MAX + 2), -IOK_EPROTO);
	free(b);
}

static const char *const complete[] = {
	"+OK\r\n",
	"$5\r\nhello\r\n",
	"*3\r\n:1\r\n$1\r\nx\r\n*1\r\n_\r\n",
	"%1\r\n*2\r\n:1\r\n:2\r\n+v\r\n",
	"|1\r\n+ttl\r\n:3600\r\n=8\r\ntxt:abcd\r\n",
	">2\r\n+a\r\n,1.5\r\n",
	"!3\r\nERR\r\n",
};

static void
test_truncated(void **state)
{
	iok_resp_item it[16];

	for (size_t v = 0; v < sizeof(complete) / sizeof(complete[0]); v++) {
		size_t len = strlen(complete[v]);
		assert_true(read_all(complete[v], len, it, 16) > 0);
		/* Every proper prefix, in a buffer of exactly that size (so ASan
		 * sees any read past it). */
		for (size_t cut = 0; cut < len; cut++) {
			char *b = malloc(cut + 1);
			assert_non_null(b);
			memcpy(b, complete[v], cut);
			assert_int_equal(read_all(b, cut, it, 16), -IOK_EPROTO);
			free(b);
		}
		/* And anything after the reply. */
		char *b = malloc(len + 4);
		assert_non_null(b);
		memcpy(b, complete[v], len);
		memcpy(b + len, ":1\r\n", 4);
		assert_int_equal(read_all(b, len + 1, it, 16), -IOK_EPROTO);
		assert_int_equal(read_all(b, len + 4, it, 16), -IOK_EPROTO);
		free(b);
	}
}

static void
test_malformed(void **state)
{
	static const char *const bad[] = {
		"?\r\n",     /* unknown type */
		"OK\r\n",    /* no type byte */
		"+OK\n",     /* bare LF */
		"+O\nK\r\n", /* LF inside a line */
		"+OK\r\r\n", /* CR inside a line */
		":\r\n",     /* empty integer */
		":12a\r\n",  /* not a number */
		":+1\r\n",
		": 1\r\n",
		":9223372036854775808\r\n", /* out of int64 */
		"$-2\r\n",                  /* only -1 is null */
		"$x\r\n",
		"$3\r\nabcd\r\n", /* payload longer than declared */
		"$3\r\nab\r\n\r\n",
		"$3\r\nabcXY", /* no CRLF after the payload */
		"*-2\r\n",
		"*1x\r\n:1\r\n",
		"%-1\r\n", /* RESP3 aggregates have no null */
		"~-1\r\n",
		"_x\r\n",
		",\r\n",
		",1.2.3\r\n",
		",0x10\r\n",
		",infinity\r\n",
		",1e\r\n",
		"#x\r\n",
		"#tt\r\n",
		"(12a\r\n",
		"(\r\n",
		"=3\r\ntxt\r\n",   /* verbatim shorter than "fmt:" */
		"=5\r\ntxtxa\r\n", /* no ':' after the format */
		"!-1\r\n",
		"*2\r\n:1\r\n",       /* an element missing */
		"%1\r\n:1\r\n",       /* a map value missing */
		"|1\r\n+a\r\n:1\r\n", /* an attribute annotating nothing */
		"",
	};

	iok_resp_item it[8];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len = strlen(bad[i]);
		char  *b   = malloc(len + 1);
		assert_non_null(b);
		memcpy(b, bad[i], len);
		if (read_all(b, len, it, 8) != -IOK_EPROTO) {
			fail_msg("accepted: %s", bad[i]);
		}
		free(b);
	}
}

static void
test_oversized(void **state)
{
	iok_resp_item it[8];

	/* Declared sizes far beyond the buffer are refused, not trusted. */
	assert_int_equal(read_all(S("$1000000\r\nabc\r\n"), it, 8), -IOK_EPROTO);
	assert_int_equal(read_all(S("$18446744073709551615\r\nx\r\n"), it, 8), -IOK_EPROTO);
	assert_int_equal(read_all(S("$99999999999999999999999\r\nx\r\n"), it, 8), -IOK_EPROTO);
	assert_int_equal(read_all(S("=9223372036854775807\r\ntxt:x\r\n"), it, 8), -IOK_EPROTO);
	/* Counts over 2^24 elements, and counts the bytes cannot hold. */
	assert_int_equal(read_all(S("*16777217\r\n:1\r\n"), it, 8), -IOK_EPROTO);
	assert_int_equal(read_all(S("%16777217\r\n:1\r\n:1\r\n"), it, 8), -IOK_EPROTO);
	assert_int_equal(read_all(S("*4294967297\r\n:1\r\n"), it, 8), -IOK_EPROTO);
	assert_int_equal(read_all(S("*16777216\r\n:1\r\n"), it, 8), -IOK_EPROTO);
	/* Numeric lines longer than any number. */
	assert_int_equal(
	    read_all(S(":0000000000000000000000000000000000000001\r\n"), it, 8), -IOK_EPROTO);
	char dbl[200] = ",1";
	memset(dbl + 2, '0', 150);
	memcpy(dbl + 152, "\r\n", 2);
	assert_int_equal(read_all(dbl, 154, it, 8), -IOK_EPROTO);

	/* Big but well-formed: a 1 MiB bulk, a 100,000-digit big number, an
	 * array of 100,000 elements. */
	size_t n   = 1u << 20;
	char  *big = malloc(n + 32);
	assert_non_null(big);
	int h = snprintf(big, 32, "$%zu\r\n", n);
	memset(big + h, 'x', n);
	memcpy(big + h + n, "\r\n", 2);
	assert_int_equal(read_all(big, (size_t) h + n + 2, it, 8), 1);
	assert_int_equal(it[0].len, n);
	big[0] = '(';
	memset(big + 1, '7', 100000);
	memcpy(big + 100001, "\r\n", 2);
	assert_int_equal(read_all(big, 100003, it, 8), 1);
	assert_int_equal(it[0].type, IOK_RESP_BIGNUM);
	assert_int_equal(it[0].len, 100000);
	free(big);

	size_t alen = 16 + 100000 * 4;
	char  *arr  = malloc(alen);
	assert_non_null(arr);
	size_t k = (size_t) snprintf(arr, 16, "*%d\r\n", 100000);
	for (int i = 0; i < 100000; i++) {
		memcpy(arr + k, ":1\r\n", 4);
		k += 4;
	}
	assert_int_equal(read_all(arr, k, it, 8), 100001);
	free(arr);
}

/* Arbitrary bytes: never a crash, never a read outside the buffer (ASan),
 * and the result only depends on the bytes. */
static void
test_garbage(void **state)
{
	static const char alphabet[] = "+-:$*_%~,#(=>|!\r\n0123456789-abtf.e";
	uint32_t          seed       = 12345;
	iok_resp_item     it[4];

	for (int round = 0; round < 20000; round++) {
		size_t len = (size_t) (seed % 24);
		char  *b   = malloc(len + 1);
		assert_non_null(b);
		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			b[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
		}
		seed  = seed * 1103515245u + 12345u;
		int a = read_all(b, len, it, 4);
		assert_int_equal(read_all(b, len, it, 4), a);
		assert_true(a == -IOK_EPROTO || a >= 1);
		free(b);
	}
}

static void
test_command(void **state)
{
	iok_msg          *m      = NULL;
	const char *const argv[] = { "SET", "k\0ey", "" };
	const size_t      lens[] = { 3, 4, 0 };
	static const char want[] = "*3\r\n$3\r\nSET\r\n$4\r\nk\0ey\r\n$0\r\n\r\n";

	assert_int_equal(iok_resp_command(&m, 3, argv, lens), 0);
	assert_non_null(m);
	assert_int_equal(iok_msg_len(m), sizeof(want) - 1);
	assert_memory_equal(iok_msg_body(m), want, sizeof(want) - 1);

	/* It reads back as one array of bulk strings. */
	iok_resp_item it[4];
	assert_int_equal(read_all(iok_msg_body(m), iok_msg_len(m), it, 4), 4);
	assert_int_equal(it[0].type, IOK_RESP_ARRAY);
	assert_int_equal(it[0].count, 3);
	assert_int_equal(it[2].len, 4);
	assert_memory_equal(it[2].str, "k\0ey", 4);
	iok_msg_free(m);

	/* C strings (lens NULL); a NULL argument of length 0 is "". */
	const char *const ping[] = { "PING", "hello" };
	assert_int_equal(iok_resp_command(&m, 2, ping, NULL), 0);
	assert_int_equal(iok_msg_len(m), 25);
	assert_memory_equal(iok_msg_body(m), "*2\r\n$4\r\nPING\r\n$5\r\nhello\r\n", 25);
	iok_msg_free(m);
	const char *const nul[]  = { "ECHO", NULL };
	const size_t      zero[] = { 4, 0 };
	assert_int_equal(iok_resp_command(&m, 2, nul, zero), 0);
	assert_memory_equal(iok_msg_body(m), "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", 20);
	iok_msg_free(m);

	/* Many arguments, lengths of every digit count. */
	enum { N = 1000 };
	const char *many[N];
	size_t      ml[N];
	char       *blob = calloc(1, 20000);
	assert_non_null(blob);
	size_t total = 7; /* "*1000\r\n" */
	for (int i = 0; i < N; i++) {
		many[i] = blob;
		ml[i]   = (size_t) (i * 17) % 20000;
		total += 1 +
		         (ml[i] >= 10000     ? 5
		             : ml[i] >= 1000 ? 4
		             : ml[i] >= 100  ? 3
		             : ml[i] >= 10   ? 2
		                             : 1) +
		         2 + ml[i] + 2;
	}
	assert_int_equal(iok_resp_command(&m, N, many, ml), 0);
	assert_int_equal(iok_msg_len(m), total);
	assert_int_equal(read_all(iok_msg_body(m), iok_msg_len(m), it, 4), N + 1);
	iok_msg_free(m);
	free(blob);

	/* Errors leave *mp alone. */
	m = (iok_msg *) &m;
	assert_int_equal(iok_resp_command(&m, 0, argv, lens), IOK_EINVAL);
	assert_int_equal(iok_resp_command(&m, 2, NULL, NULL), IOK_EINVAL);
	assert_int_equal(iok_resp_command(&m, 2, nul, NULL), IOK_EINVAL);
	const size_t one[] = { 4, 1 };
	assert_int_equal(iok_resp_command(&m, 2, nul, one), IOK_EINVAL);
	assert_int_equal(iok_resp_command(NULL, 2, ping, NULL), IOK_EINVAL);
	assert_ptr_equal(m, (iok_msg *) &m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scalars),
		cmocka_unit_test(test_aggregates),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_command),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
