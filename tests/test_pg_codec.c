/*
 * test_pg_codec.c - the PostgreSQL codec on bytes: framing (every split
 * point, notifications inside replies, notices between them), request
 * encoding and the statement cache, authentication exchanges (md5,
 * cleartext, SCRAM-SHA-256 with RFC 7677's test vector, refusals), the
 * public reader, and hostile input.
 */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "transports/pg_codec.h"
#include "url.h"

/* -------------------------------------------------------------- bytes */

typedef struct bytes {
	uint8_t b[8192];
	size_t  n;
} bytes;

static void
put(bytes *x, const void *p, size_t n)
{
	assert_true(x->n + n <= sizeof(x->b));
	memcpy(x->b + x->n, p, n);
	x->n += n;
}

/* A backend message: type, then body parts given as (ptr, len) pairs
 * ending with NULL. */
static void
msg(bytes *x, char t, const void *body, size_t len)
{
	uint8_t h[5] = { (uint8_t) t };
	ik_pg_put_u32(h + 1, (uint32_t) (len + 4));
	put(x, h, 5);
	if (len) {
		put(x, body, len);
	}
}

static void
msg_z(bytes *x, char status)
{
	msg(x, 'Z', &status, 1);
}

static void
msg_c(bytes *x, const char *tag)
{
	msg(x, 'C', tag, strlen(tag) + 1);
}

/* RowDescription with one int4 column "n", text format. */
static void
msg_t_int4(bytes *x)
{
	uint8_t b[2 + 2 + 18];
	ik_pg_put_u16(b, 1);
	memcpy(b + 2, "n", 2);
	memset(b + 4, 0, 18);
	ik_pg_put_u32(b + 4 + 6, 23);
	ik_pg_put_u16(b + 4 + 10, 4);
	msg(x, 'T', b, sizeof(b));
}

static void
msg_d_text(bytes *x, const char *v)
{
	uint8_t b[64];
	size_t  n = strlen(v);
	ik_pg_put_u16(b, 1);
	ik_pg_put_u32(b + 2, (uint32_t) n);
	memcpy(b + 6, v, n);
	msg(x, 'D', b, 6 + n);
}

static void
msg_a(bytes *x, const char *chan, const char *payload)
{
	uint8_t b[256];
	size_t  n = 4;
	ik_pg_put_u32(b, 77);
	memcpy(b + n, chan, strlen(chan) + 1);
	n += strlen(chan) + 1;
	memcpy(b + n, payload, strlen(payload) + 1);
	n += strlen(payload) + 1;
	msg(x, 'A', b, n);
}

static void
msg_e(bytes *x, char t, const char *code, const char *text)
{
	uint8_t b[256];
	size_t  n = 0;
	b[n++]    = 'S';
	memcpy(b + n, "ERROR", 6);
	n += 6;
	b[n++] = 'C';
	memcpy(b + n, code, strlen(code) + 1);
	n += strlen(code) + 1;
	b[n++] = 'M';
	memcpy(b + n, text, strlen(text) + 1);
	n += strlen(text) + 1;
	b[n++] = 0;
	msg(x, t, b, n);
}

/* ------------------------------------------------------------- codec */

typedef struct codec {
	const ik_transport *t;
	void               *st;
	ik_url              url;
} codec;

static void
codec_open(codec *c, const char *url, int shared, size_t recv_max)
{
	ik_tran_params p = { .dialer = 1, .recv_max = recv_max, .shared = shared };
	c->t             = &ik_tran_postgresql;
	c->st            = calloc(1, c->t->state_size);
	IOK_OK(ik_url_parse(&c->url, url));
	p.url = &c->url;
	assert_int_equal(c->t->init(c->st, &p), 0);
}

static void
codec_close(codec *c)
{
	c->t->fini(c->st);
	free(c->st);
	ik_url_free(&c->url);
}

/* Runs the handshake on trust: startup out, AuthOk + key + Z in. */
static void
codec_ready(codec *c)
{
	ik_buf  out;
	size_t  used;
	bytes   in     = { 0 };
	uint8_t key[8] = { 0, 0, 0, 9, 0, 0, 0, 7 };
	uint8_t ok[4]  = { 0 };
	ik_buf_init(&out);
	assert_int_equal(c->t->handshake(c->st, NULL, 0, &used, &out), IK_HS_MORE);
	assert_true(out.len > 8);
	msg(&in, 'R', ok, 4);
	msg(&in, 'S', "a\0b", 4);
	msg(&in, 'K', key, 8);
	msg_z(&in, 'I');
	assert_int_equal(c->t->handshake(c->st, in.b, in.n, &used, &out), IK_HS_DONE);
	assert_int_equal(used, in.n);
	ik_buf_fini(&out);
}

/* Encodes an extended request for sql with one int4 text parameter. */
static size_t
encode_q(codec *c, const char *sql, ik_buf *out)
{
	iok_msg *m;
	size_t   before = out->len;
	IOK_OK(iok_pg_query_new(&m, sql, strlen(sql)));
	IOK_OK(iok_pg_query_param(m, 23, IOK_PG_TEXT, "5", 1));
	assert_int_equal(
	    c->t->encode_full(c->st, NULL, 0, iok_msg_body(m), iok_msg_len(m), out), 0);
	iok_msg_free(m);
	return out->len - before;
}

/* Which message types does the request out[off..) hold, in order. */
static void
types_of(const ik_buf *out, size_t off, char *types)
{
	size_t n = 0;
	while (off + 5 <= out->len) {
		types[n++] = (char) out->data[off];
		off += 1 + ik_pg_u32(out->data + off + 1);
	}
	types[n] = '\0';
}

/* Cuts frames out of data fed in pieces of step bytes (the pipe's way:
 * the unconsumed rest stays, more is appended); returns the number of
 * frames, their classes in cls. */
static int
cut(codec *c, bytes *data, size_t step, int *cls, size_t *lens)
{
	uint8_t buf[8192];
	size_t  have = 0, fed = 0, start = 0;
	int     n = 0;
	while (fed < data->n || have > start) {
		size_t add = data->n - fed < step ? data->n - fed : step;
		memcpy(buf + have, data->b + fed, add);
		have += add;
		fed += add;
		for (;;) {
			ik_frame f = { 0 };
			ssize_t  r = c->t->frame(c->st, buf + start, have - start, &f);
			assert_true(r >= 0);
			if (r == 0) {
				assert_true(f.need == 0 || f.need > have - start);
				break;
			}
			cls[n]    = c->t->classify(c->st, buf + start + f.body_off, f.body_len);
			lens[n++] = (size_t) r;
			start += (size_t) r;
		}
		if (add == 0) {
			break;
		}
	}
	assert_int_equal(start, data->n);
	return n;
}

static void
test_framing_every_split(void **state)
{
	(void) state;
	for (size_t step = 1; step <= 64; step++) {
		codec  c;
		ik_buf out;
		bytes  in = { 0 };
		int    cls[16];
		size_t lens[16];
		char   types[16];
		codec_open(&c, "postgresql://u@h/db", 0, 0);
		codec_ready(&c);
		ik_buf_init(&out);
		encode_q(&c, "SELECT $1::int", &out);
		types_of(&out, 0, types);
		assert_string_equal(types, "PBDES");
		encode_q(&c, "SELECT $1::int", &out); /* cached: no Parse */
		/* Subscribe: LISTEN, whose reply the codec eats. */
		size_t off = out.len;
		assert_int_equal(c.t->subscribe(c.st, (const uint8_t *) "ch\"x", 4, 1, &out), 0);
		assert_int_equal(out.data[off], 'Q');
		assert_memory_equal(out.data + off + 5, "LISTEN \"ch\"\"x\"", 15);

		/* reply 1: 1 2 T D C [A inside] Z */
		msg(&in, '1', NULL, 0);
		msg(&in, '2', NULL, 0);
		msg_t_int4(&in);
		msg_d_text(&in, "5");
		msg_c(&in, "SELECT 1");
		msg_a(&in, "ch", "hello");
		msg_z(&in, 'I');
		/* a notice between replies */
		msg_e(&in, 'N', "01000", "note");
		/* reply 2 */
		msg(&in, '2', NULL, 0);
		msg_t_int4(&in);
		msg_d_text(&in, "5");
		msg_c(&in, "SELECT 1");
		msg_z(&in, 'I');
		/* LISTEN's reply */
		msg_c(&in, "LISTEN");
		msg_z(&in, 'I');
		/* a notification while idle */
		msg_a(&in, "ch", "idle");
		size_t total = in.n;
		int    n     = cut(&c, &in, step, cls, lens);
		/* The notice travels inside reply 2 (requests are in flight:
		 * it is that request's). */
		assert_int_equal(n, 5);
		assert_int_equal(cls[0], IK_FRAME_PUSH); /* moved ahead of reply 1 */
		assert_int_equal(cls[1], IK_FRAME_REPLY);
		assert_int_equal(cls[2], IK_FRAME_REPLY);
		assert_int_equal(cls[3], IK_FRAME_SKIP); /* LISTEN's reply */
		assert_int_equal(cls[4], IK_FRAME_PUSH);
		assert_int_equal(lens[0] + lens[1] + lens[2] + lens[3] + lens[4], total);
		assert_int_equal(ik_pg_txstatus(c.st), 'I');
		/* Nothing in flight: a notice or parameter change is consumed. */
		memset(&in, 0, sizeof(in));
		msg_e(&in, 'N', "01000", "idle note");
		msg(&in, 'S', "a\0b", 4);
		n = cut(&c, &in, step, cls, lens);
		assert_int_equal(n, 2);
		assert_int_equal(cls[0], IK_FRAME_SKIP);
		assert_int_equal(cls[1], IK_FRAME_SKIP);
		/* The row description is known now: int4 comes back binary. */
		size_t o2 = out.len;
		encode_q(&c, "SELECT $1::int", &out);
		types_of(&out, o2, types);
		assert_string_equal(types, "BDES");
		size_t bl = ik_pg_u32(out.data + o2 + 1) + 1;
		assert_int_equal(ik_pg_u16(out.data + o2 + bl - 4), 1); /* 1 result format */
		assert_int_equal(ik_pg_u16(out.data + o2 + bl - 2), 1); /* binary */
		ik_buf_fini(&out);
		codec_close(&c);
	}
}

/* A reply's notification is moved ahead byte-exactly, and the rest is the
 * reply without it. */
static void
test_notify_rotation(void **state)
{
	(void) state;
	codec  c;
	ik_buf out;
	bytes  in = { 0 }, want = { 0 };
	codec_open(&c, "postgresql://u@h/db", 0, 0);
	codec_ready(&c);
	ik_buf_init(&out);
	encode_q(&c, "SELECT 1", &out);
	msg(&in, '1', NULL, 0);
	msg_c(&in, "SELECT 0");
	msg_a(&in, "c1", "x");
	msg_a(&in, "c2", "y");
	msg_z(&in, 'T');
	msg(&want, '1', NULL, 0);
	msg_c(&want, "SELECT 0");
	msg_z(&want, 'T');
	ik_frame f;
	ssize_t  r = c.t->frame(c.st, in.b, in.n, &f);
	assert_true(r > 0);
	assert_int_equal(in.b[0], 'A');
	assert_int_equal(c.t->classify(c.st, in.b, (size_t) r), IK_FRAME_PUSH);
	size_t off = (size_t) r;
	r          = c.t->frame(c.st, in.b + off, in.n - off, &f);
	assert_int_equal(in.b[off], 'A');
	assert_string_equal((const char *) in.b + off + 9, "c2");
	off += (size_t) r;
	r = c.t->frame(c.st, in.b + off, in.n - off, &f);
	assert_int_equal((size_t) r, want.n);
	assert_memory_equal(in.b + off, want.b, want.n);
	assert_int_equal(c.t->classify(c.st, in.b + off, (size_t) r), IK_FRAME_REPLY);
	assert_int_equal(ik_pg_txstatus(c.st), 'T');
	ik_buf_fini(&out);
	codec_close(&c);
}

/* Statement cache: a failed Parse is forgotten, 0A000 drops the plan, a
 * full cache evicts with a Close. */
static void
test_statement_cache(void **state)
{
	(void) state;
	codec  c;
	ik_buf out;
	char   types[32];
	codec_open(&c, "postgresql://u@h/db", 0, 0);
	codec_ready(&c);
	ik_buf_init(&out);

	encode_q(&c, "SELEKT", &out);
	bytes in = { 0 };
	msg_e(&in, 'E', "42601", "syntax error");
	msg_z(&in, 'I');
	ik_frame f;
	ssize_t  r = c.t->frame(c.st, in.b, in.n, &f);
	assert_int_equal((size_t) r, in.n);
	assert_int_equal(c.t->classify(c.st, in.b, in.n), IK_FRAME_REPLY);
	out.len = 0;
	encode_q(&c, "SELEKT", &out);
	types_of(&out, 0, types);
	assert_string_equal(types, "PBDES"); /* prepared again */

	/* prepared fine this time, then "cached plan must not change" */
	memset(&in, 0, sizeof(in));
	msg(&in, '1', NULL, 0);
	msg(&in, '2', NULL, 0);
	msg(&in, 'n', NULL, 0);
	msg_c(&in, "SELECT 0");
	msg_z(&in, 'I');
	assert_int_equal(c.t->frame(c.st, in.b, in.n, &f), (ssize_t) in.n);
	assert_int_equal(c.t->classify(c.st, in.b, in.n), IK_FRAME_REPLY);
	out.len = 0;
	encode_q(&c, "SELEKT", &out);
	types_of(&out, 0, types);
	assert_string_equal(types, "BDES");
	memset(&in, 0, sizeof(in));
	msg_e(&in, 'E', "0A000", "cached plan must not change result type");
	msg_z(&in, 'I');
	assert_int_equal(c.t->frame(c.st, in.b, in.n, &f), (ssize_t) in.n);
	assert_int_equal(c.t->classify(c.st, in.b, in.n), IK_FRAME_REPLY);
	out.len = 0;
	encode_q(&c, "SELEKT", &out);
	types_of(&out, 0, types);
	assert_string_equal(types, "CPBDES"); /* the stale one closed, prepared anew */

	/* 300 distinct statements: the 257th evicts the oldest with a Close. */
	int closes = 0;
	for (int i = 0; i < 300; i++) {
		char sql[64];
		snprintf(sql, sizeof(sql), "SELECT %d", i);
		out.len = 0;
		encode_q(&c, sql, &out);
		types_of(&out, 0, types);
		closes += types[0] == 'C';
	}
	assert_true(closes >= 40);
	ik_buf_fini(&out);
	codec_close(&c);
}

static void
test_encode_refuses(void **state)
{
	(void) state;
	codec    c;
	ik_buf   out;
	iok_msg *m;
	codec_open(&c, "postgresql://u@h/db", 0, 0);
	codec_ready(&c);
	ik_buf_init(&out);
	assert_int_equal(
	    c.t->encode_full(c.st, NULL, 0, (const uint8_t *) "SELECT 1", 8, &out), -IOK_EINVAL);
	/* a truncated parameter */
	IOK_OK(iok_pg_query_new(&m, "SELECT $1", 9));
	IOK_OK(iok_pg_query_param(m, 0, IOK_PG_TEXT, "abc", 3));
	assert_int_equal(c.t->encode_full(c.st, NULL, 0, iok_msg_body(m), iok_msg_len(m) - 1, &out),
	    -IOK_EINVAL);
	assert_int_equal(iok_pg_query_param(m, 0, 7, "x", 1), IOK_EINVAL);
	assert_int_equal(iok_pg_query_param(m, 0, IOK_PG_TEXT, NULL, 3), IOK_EINVAL);
	IOK_OK(iok_pg_query_param(m, 0, IOK_PG_TEXT, NULL, -1)); /* NULL */
	assert_int_equal(c.t->encode_full(c.st, NULL, 0, iok_msg_body(m), iok_msg_len(m), &out), 0);
	iok_msg_free(m);
	assert_int_equal(iok_pg_query_new(&m, "a\0b", 3), IOK_EINVAL);
	assert_int_equal(iok_pg_simple_query(&m, "a\0b", 3), IOK_EINVAL);
	IOK_OK(iok_pg_simple_query(&m, "BEGIN", 5));
	assert_int_equal(
	    iok_pg_query_param(m, 0, IOK_PG_TEXT, "x", 1), IOK_EINVAL); /* not extended */
	iok_msg_free(m);
	ik_buf_fini(&out);
	codec_close(&c);
}

static void
test_hostile_frames(void **state)
{
	(void) state;
	static const struct {
		uint8_t b[8];
		size_t  n;
		ssize_t want;
	} cases[] = {
		{ { 0x7f, 0, 0, 0, 4 }, 5, -IOK_EPROTO },        /* unknown type */
		{ { 'C', 0, 0, 0, 3 }, 5, -IOK_EPROTO },         /* length < 4 */
		{ { 'D', 0x80, 0, 0, 0 }, 5, -IOK_EPROTO },      /* negative / huge */
		{ { 'D', 0x00, 0x20, 0, 0 }, 5, -IOK_EMSGSIZE }, /* over recv_max */
		{ { 'D', 0, 0, 0, 9, 0, 1 }, 7, 0 },             /* truncated: more */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		codec    c;
		ik_frame f = { 0 };
		codec_open(&c, "postgresql://u@h/db", 0, 1024);
		codec_ready(&c);
		assert_int_equal(c.t->frame(c.st, cases[i].b, cases[i].n, &f), cases[i].want);
		if (cases[i].want == 0) {
			assert_int_equal(f.need, 10);
		}
		codec_close(&c);
	}
	/* A reply growing past recv_max across many messages. */
	codec    c;
	bytes    in = { 0 };
	ik_frame f;
	codec_open(&c, "postgresql://u@h/db", 0, 1024);
	codec_ready(&c);
	for (int i = 0; i < 200; i++) {
		msg_d_text(&in, "0123456789");
	}
	assert_int_equal(c.t->frame(c.st, in.b, in.n, &f), -IOK_EMSGSIZE);
	/* asked about the refused frame: a reply (to nothing outstanding) */
	assert_int_equal(c.t->classify(c.st, in.b, 5), IK_FRAME_REPLY);
	/* the classifier never trusts a frame it did not cut */
	assert_int_equal(c.t->classify(c.st, (const uint8_t *) "", 0), IK_FRAME_SKIP);
	codec_close(&c);
}
/* ------------------------------------------- skipping an oversize reply */

#define OVERSIZE 100 /* added to the class of a frame refused as oversize */

typedef struct skipped {
	int     n;
	int     cls[16];
	size_t  lens[16];
	size_t  max_held; /* most bytes ever in the buffer */
	ssize_t err;
} skipped;

/* A DataRow of one text column of n bytes. */
static void
msg_d_big(bytes *x, size_t n)
{
	uint8_t b[4096];
	assert_true(n + 6 <= sizeof(b));
	ik_pg_put_u16(b, 1);
	ik_pg_put_u32(b + 2, (uint32_t) n);
	memset(b + 6, 'x', n);
	msg(x, 'D', b, 6 + n);
}

/* The pipe's way with an oversize frame (src/pipe.c oversize_begin and
 * oversize_skip), on data fed step bytes at a time into a small buffer:
 * classify the refused frame from its start, skip(NULL), then frame() and
 * skip() until frame() returns the frame's rest. */
/* (*t->skip): cmocka defines a skip() macro */
static skipped
skip_cut(codec *c, const bytes *data, size_t step)
{
	skipped r = { 0 };
	uint8_t buf[1024];
	size_t  have = 0, fed = 0;
	int     skipping = 0;
	for (;;) {
		ik_frame f = { 0 };
		ssize_t  n = have > 0 ? c->t->frame(c->st, buf, have, &f) : 0;
		if (n == -IOK_EMSGSIZE && !skipping) {
			r.cls[r.n++] = OVERSIZE + c->t->classify(c->st, buf, have);
			assert_int_equal((*c->t->skip)(c->st, NULL, 0), 0);
			skipping = 1;
			continue;
		}
		if (n < 0) {
			r.err = n;
			return r;
		}
		if (n > 0) {
			if (!skipping) {
				assert_true(r.n < 16);
				r.lens[r.n]  = (size_t) n;
				r.cls[r.n++] = c->t->classify(c->st, buf + f.body_off, f.body_len);
			}
			skipping = 0;
			memmove(buf, buf + n, have - (size_t) n);
			have -= (size_t) n;
			continue;
		}
		if (skipping) {
			size_t d = (*c->t->skip)(c->st, buf, have);
			assert_true(d <= have);
			memmove(buf, buf + d, have - d);
			have -= d;
		}
		if (fed == data->n) {
			break;
		}
		size_t add = data->n - fed < step ? data->n - fed : step;
		assert_true(have + add <= sizeof(buf)); /* never the whole reply */
		memcpy(buf + have, data->b + fed, add);
		have += add;
		fed += add;
		r.max_held = have > r.max_held ? have : r.max_held;
	}
	r.err = have; /* bytes left: a truncated stream */
	return r;
}

/* A reply over recv_max fails its own request only: the replies before and
 * after it, the LISTEN reply the codec eats and the notifications (one sent
 * inside the big reply, kept and delivered after it) all come through, at
 * every split point, and the buffer never holds the big reply. */
static void
test_skip_oversize_reply(void **state)
{
	(void) state;
	for (size_t step = 1; step <= 80; step += 3) {
		codec  c;
		ik_buf out;
		bytes  in = { 0 };
		char   types[16];
		codec_open(&c, "postgresql://u@h/db", 0, 256);
		codec_ready(&c);
		ik_buf_init(&out);
		encode_q(&c, "SELECT 1", &out);
		encode_q(&c, "SELECT big", &out);
		encode_q(&c, "SELECT 3", &out);
		assert_int_equal(c.t->subscribe(c.st, (const uint8_t *) "ch", 2, 1, &out), 0);

		msg(&in, '1', NULL, 0); /* reply 1 */
		msg(&in, '2', NULL, 0);
		msg_t_int4(&in);
		msg_d_text(&in, "1");
		msg_c(&in, "SELECT 1");
		msg_z(&in, 'I');
		msg(&in, '1', NULL, 0); /* reply 2: over 256 bytes */
		msg(&in, '2', NULL, 0);
		msg_t_int4(&in);
		msg_d_big(&in, 3000);
		msg_d_text(&in, "small");
		msg_d_big(&in, 700);
		msg_c(&in, "SELECT 3");
		msg_a(&in, "ch", "inside");
		msg_a(&in, "ch", "inside too");
		msg_z(&in, 'T');
		msg(&in, '1', NULL, 0); /* reply 3 */
		msg(&in, '2', NULL, 0);
		msg_t_int4(&in);
		msg_d_text(&in, "3");
		msg_c(&in, "SELECT 1");
		msg_z(&in, 'I');
		msg_c(&in, "LISTEN"); /* LISTEN's reply */
		msg_z(&in, 'I');
		msg_a(&in, "ch", "idle");

		skipped r = skip_cut(&c, &in, step);
		assert_int_equal(r.err, 0);
		assert_int_equal(r.n, 7);
		assert_int_equal(r.cls[0], IK_FRAME_REPLY);
		assert_int_equal(r.cls[1], OVERSIZE + IK_FRAME_REPLY); /* request 2 fails */
		assert_int_equal(r.cls[2], IK_FRAME_PUSH);
		assert_int_equal(r.lens[2], 5 + 4 + 3 + 7);
		assert_int_equal(r.cls[3], IK_FRAME_PUSH);
		assert_int_equal(r.cls[4], IK_FRAME_REPLY);
		assert_int_equal(r.cls[5], IK_FRAME_SKIP);
		assert_int_equal(r.cls[6], IK_FRAME_PUSH);
		assert_true(r.max_held < 256 + 80);
		assert_int_equal(ik_pg_txstatus(c.st), 'I');

		/* The big reply's statement, maybe prepared by it, is closed
		 * and prepared again; the others stay cached. */
		size_t off = out.len;
		encode_q(&c, "SELECT big", &out);
		types_of(&out, off, types);
		assert_string_equal(types, "CPBDES");
		off = out.len;
		encode_q(&c, "SELECT 3", &out);
		types_of(&out, off, types);
		assert_string_equal(types, "BDES");
		ik_buf_fini(&out);
		codec_close(&c);
	}
}

/* An oversize message that is a frame by itself ends with that message:
 * a notice between replies (consumed), a notification (a push, dropped);
 * what follows is framed as usual.  A reply ending in a notification and
 * then more of the reply keeps nothing but its order. */
static void
test_skip_oversize_alone(void **state)
{
	(void) state;
	uint8_t note[1500];
	memset(note, 'n', sizeof(note));
	note[0]                = 'M';
	note[sizeof(note) - 2] = 0;
	note[sizeof(note) - 1] = 0;
	for (size_t step = 1; step <= 80; step += 7) {
		codec  c;
		ik_buf out;
		bytes  in = { 0 };
		codec_open(&c, "postgresql://u@h/db", 0, 256);
		codec_ready(&c);
		msg(&in, 'N', note, sizeof(note)); /* nothing outstanding */
		msg(&in, 'S', "a\0b", 4);
		uint8_t a[600] = { 0, 0, 0, 1, 'c', 0 };
		memset(a + 6, 'p', sizeof(a) - 7);
		a[sizeof(a) - 1] = 0;
		msg(&in, 'A', a, sizeof(a));
		msg_a(&in, "ch", "after");
		skipped r = skip_cut(&c, &in, step);
		assert_int_equal(r.err, 0);
		assert_int_equal(r.n, 4);
		assert_int_equal(r.cls[0], OVERSIZE + IK_FRAME_SKIP);
		assert_int_equal(r.cls[1], IK_FRAME_SKIP);
		assert_int_equal(r.cls[2], OVERSIZE + IK_FRAME_PUSH);
		assert_int_equal(r.cls[3], IK_FRAME_PUSH);

		/* A notification that was not the reply's end: dropped with it. */
		ik_buf_init(&out);
		encode_q(&c, "SELECT 1", &out);
		encode_q(&c, "SELECT 2", &out);
		memset(&in, 0, sizeof(in));
		msg_d_big(&in, 400);
		msg_a(&in, "ch", "lost");
		msg_c(&in, "SELECT 1");
		msg_z(&in, 'I');
		msg_c(&in, "SELECT 0");
		msg_z(&in, 'I');
		r = skip_cut(&c, &in, step);
		assert_int_equal(r.err, 0);
		assert_int_equal(r.n, 2);
		assert_int_equal(r.cls[0], OVERSIZE + IK_FRAME_REPLY);
		assert_int_equal(r.cls[1], IK_FRAME_REPLY);
		assert_int_equal(r.lens[1], 5 + 9 + 6);
		ik_buf_fini(&out);
		codec_close(&c);
	}
}

/* Hostile bytes while skipping: a malformed message is a protocol error;
 * a stream cut short leaves the skip waiting, holding little. */
static void
test_skip_oversize_hostile(void **state)
{
	(void) state;
	codec  c;
	ik_buf out;
	bytes  in = { 0 };
	codec_open(&c, "postgresql://u@h/db", 0, 256);
	codec_ready(&c);
	ik_buf_init(&out);
	encode_q(&c, "SELECT 1", &out);
	msg_d_big(&in, 400);
	msg(&in, 0x7f, "zz", 2);
	skipped r = skip_cut(&c, &in, 16);
	assert_int_equal(r.cls[0], OVERSIZE + IK_FRAME_REPLY);
	assert_int_equal(r.err, -IOK_EPROTO);
	codec_close(&c);

	codec_open(&c, "postgresql://u@h/db", 0, 256);
	codec_ready(&c);
	encode_q(&c, "SELECT 1", &out);
	memset(&in, 0, sizeof(in));
	msg_d_big(&in, 2000);
	in.n -= 700; /* truncated inside the big DataRow */
	r = skip_cut(&c, &in, 64);
	assert_int_equal(r.n, 1);
	assert_true(r.err < 64); /* what is left in the buffer: not the row */
	/* a length that cannot be (under 4) while skipping */
	codec_close(&c);
	codec_open(&c, "postgresql://u@h/db", 0, 256);
	codec_ready(&c);
	encode_q(&c, "SELECT 1", &out);
	memset(&in, 0, sizeof(in));
	msg_d_big(&in, 400);
	put(&in, "C\0\0\0\2", 5);
	r = skip_cut(&c, &in, 1);
	assert_int_equal(r.err, -IOK_EPROTO);
	codec_close(&c);
	/* a ReadyForQuery claiming a huge length: refused, not waited for */
	codec_open(&c, "postgresql://u@h/db", 0, 256);
	codec_ready(&c);
	encode_q(&c, "SELECT 1", &out);
	memset(&in, 0, sizeof(in));
	msg_d_big(&in, 400);
	put(&in, "Z\0\x10\0\0", 5);
	r = skip_cut(&c, &in, 7);
	assert_int_equal(r.err, -IOK_EPROTO);
	ik_buf_fini(&out);
	codec_close(&c);
}

/* -------------------------------------------------------------- roles */

/* ParameterStatus name = value. */
static void
msg_s(bytes *x, const char *name, const char *value)
{
	uint8_t b[128];
	size_t  n = strlen(name) + 1, v = strlen(value) + 1;
	memcpy(b, name, n);
	memcpy(b + n, value, v);
	msg(x, 'S', b, n + v);
}

/* A handshake on trust reporting the given in_hot_standby and
 * default_transaction_read_only (NULL: not reported); returns its
 * result, the codec left open in *c. */
static int
role_handshake(codec *c, const char *attrs, const char *hot, const char *ro)
{
	char    url[128];
	ik_buf  out;
	size_t  used;
	bytes   in    = { 0 };
	uint8_t ok[4] = { 0 };
	int     rv;
	snprintf(url, sizeof(url), "postgresql://u@h/db?target_session_attrs=%s", attrs);
	codec_open(c, url, 0, 0);
	ik_buf_init(&out);
	assert_int_equal(c->t->handshake(c->st, NULL, 0, &used, &out), IK_HS_MORE);
	msg(&in, 'R', ok, 4);
	if (hot != NULL) {
		msg_s(&in, "in_hot_standby", hot);
	}
	msg_s(&in, "server_version", "15.5");
	if (ro != NULL) {
		msg_s(&in, "default_transaction_read_only", ro);
	}
	msg_z(&in, 'I');
	rv = c->t->handshake(c->st, in.b, in.n, &used, &out);
	if (rv == IK_HS_DONE) {
		assert_int_equal(used, in.n);
	}
	ik_buf_fini(&out);
	return rv;
}

static void
test_roles_handshake(void **state)
{
	(void) state;
	static const struct {
		const char *attrs, *hot, *ro;
		int         want;
	} cases[] = {
		{ "any", "on", "on", IK_HS_DONE },
		{ "read-write", "off", "off", IK_HS_DONE },
		{ "read-write", "on", "off", -IOK_ESTATE }, /* a standby */
		{ "read-write", "off", "on", -IOK_ESTATE }, /* a read-only primary */
		{ "read-only", "on", "off", IK_HS_DONE },   /* a standby */
		{ "read-only", "off", "on", IK_HS_DONE },   /* read-only by default */
		{ "read-only", "off", "off", -IOK_ESTATE },
		{ "primary", "off", "on", IK_HS_DONE }, /* read-only, still primary */
		{ "primary", "on", "on", -IOK_ESTATE },
		{ "standby", "on", "on", IK_HS_DONE },
		{ "standby", "off", "off", -IOK_ESTATE },
		{ "prefer-standby", "off", "off", IK_HS_DONE }, /* ranked 1 */
		{ "prefer-standby", "on", "on", IK_HS_DONE },
		/* A value not understood is not known: it fits no strict wish,
		 * and an unknown in_hot_standby makes the codec ask. */
		{ "standby", "yes", "off", IK_HS_MORE },
		{ "read-write", "off", "", -IOK_ESTATE },
		{ "primary", "OFF", "off", IK_HS_MORE },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		codec c;
		char  why[256];
		int   rv = role_handshake(&c, cases[i].attrs, cases[i].hot, cases[i].ro);
		if (rv != cases[i].want) {
			fail_msg("case %zu (%s, %s, %s): %d", i, cases[i].attrs, cases[i].hot,
			    cases[i].ro, rv);
		}
		c.t->error_text(c.st, why, sizeof(why));
		if (rv == -IOK_ESTATE) {
			assert_non_null(strstr(why, "target_session_attrs="));
			assert_non_null(strstr(why, cases[i].attrs));
		}
		if (rv == IK_HS_DONE) {
			int hot = strcmp(cases[i].hot, "on") == 0;
			int r   = strcmp(cases[i].attrs, "prefer-standby") == 0 && !hot;
			assert_int_equal(c.t->rank(c.st), r);
		}
		codec_close(&c);
	}
	/* An unknown wish is a bad URL. */
	codec          c;
	ik_tran_params p = { .dialer = 1 };
	c.t              = &ik_tran_postgresql;
	c.st             = calloc(1, c.t->state_size);
	IOK_OK(ik_url_parse(&c.url, "postgresql://u@h/db?target_session_attrs=primary-ish"));
	p.url = &c.url;
	assert_int_equal(c.t->init(c.st, &p), -IOK_EADDRINVAL);
	codec_close(&c);
}

/* One text DataRow with fields (NULL: SQL NULL). */
static void
msg_d2(bytes *x, const char *a, const char *b)
{
	uint8_t     d[64];
	size_t      n    = 2;
	const char *v[2] = { a, b };
	ik_pg_put_u16(d, 2);
	for (int i = 0; i < 2; i++) {
		size_t l = v[i] ? strlen(v[i]) : 0;
		ik_pg_put_u32(d + n, v[i] ? (uint32_t) l : 0xffffffffu);
		n += 4;
		memcpy(d + n, v[i] ? v[i] : "", l);
		n += l;
	}
	msg(x, 'D', d, n);
}

/* A server before 14 reports no in_hot_standby: the codec asks, once. */
static void
test_roles_probe(void **state)
{
	(void) state;
	static const struct {
		const char *attrs, *rec, *ro;
		int         err; /* the query fails */
		int         want;
	} cases[] = {
		{ "standby", "t", "on", 0, IK_HS_DONE }, { "standby", "f", "off", 0, -IOK_ESTATE },
		{ "read-write", "f", "off", 0, IK_HS_DONE },
		{ "read-write", "f", "on", 0, -IOK_ESTATE },
		{ "read-only", "f", "on", 0, IK_HS_DONE }, { "primary", "f", "on", 0, IK_HS_DONE },
		{ "primary", NULL, "off", 0, -IOK_ESTATE }, /* NULL: not known */
		{ "primary", "f", "off", 1, -IOK_ESTATE },  /* error: not known */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		codec       c;
		ik_buf      out;
		size_t      used;
		bytes       in    = { 0 };
		uint8_t     ok[4] = { 0 };
		char        url[128];
		const char *q = "SELECT pg_catalog.pg_is_in_recovery()";
		snprintf(url, sizeof(url), "postgresql://u@h/db?target_session_attrs=%s",
		    cases[i].attrs);
		codec_open(&c, url, 0, 0);
		ik_buf_init(&out);
		assert_int_equal(c.t->handshake(c.st, NULL, 0, &used, &out), IK_HS_MORE);
		out.len = 0;
		msg(&in, 'R', ok, 4);
		msg_z(&in, 'I');
		assert_int_equal(c.t->handshake(c.st, in.b, in.n, &used, &out), IK_HS_MORE);
		assert_int_equal(used, in.n);
		assert_true(out.len > 5 && out.data[0] == 'Q');
		assert_memory_equal(out.data + 5, q, strlen(q));
		in.n = 0;
		if (cases[i].err) {
			msg_e(&in, 'E', "42883", "no such function");
		} else {
			msg_t_int4(&in); /* its content is not read */
			msg_d2(&in, cases[i].rec, cases[i].ro);
			msg_c(&in, "SELECT 1");
		}
		msg_z(&in, 'I');
		/* every split point: the codec waits for whole messages */
		int rv = IK_HS_MORE;
		for (size_t n = 1; n <= in.n && rv == IK_HS_MORE; n++) {
			rv = c.t->handshake(c.st, in.b, n, &used, &out);
			if (rv == IK_HS_MORE) {
				memmove(in.b, in.b + used, in.n - used);
				in.n -= used;
				n -= used;
			}
		}
		assert_int_equal(rv, cases[i].want);
		ik_buf_fini(&out);
		codec_close(&c);
	}
}

/* Hostile ParameterStatus and probe replies: refused, never read past. */
static void
test_roles_hostile(void **state)
{
	(void) state;
	static const struct {
		const char *b;
		size_t      n;
	} bad_s[] = {
		{ "", 0 },                       /* empty */
		{ "in_hot_standby", 14 },        /* no NUL at all */
		{ "in_hot_standby\0on", 17 },    /* value not terminated */
		{ "in_hot_standby\0on\0x", 20 }, /* bytes after the value */
	};
	for (size_t i = 0; i < sizeof(bad_s) / sizeof(bad_s[0]); i++) {
		codec    c;
		ik_buf   out;
		size_t   used;
		bytes    in    = { 0 };
		uint8_t  ok[4] = { 0 };
		ik_frame f;
		/* in the handshake */
		codec_open(&c, "postgresql://u@h/db?target_session_attrs=standby", 0, 0);
		ik_buf_init(&out);
		(void) c.t->handshake(c.st, NULL, 0, &used, &out);
		msg(&in, 'R', ok, 4);
		msg(&in, 'S', bad_s[i].b, bad_s[i].n);
		msg_z(&in, 'I');
		assert_int_equal(c.t->handshake(c.st, in.b, in.n, &used, &out), -IOK_EPROTO);
		codec_close(&c);
		/* and later, between replies */
		assert_int_equal(role_handshake(&c, "standby", "on", "on"), IK_HS_DONE);
		in.n = 0;
		msg(&in, 'S', bad_s[i].b, bad_s[i].n);
		assert_int_equal(c.t->frame(c.st, in.b, in.n, &f), -IOK_EPROTO);
		ik_buf_fini(&out);
		codec_close(&c);
	}
	/* Probe rows that lie about their size, and probe messages when no
	 * probe was sent. */
	static const uint8_t bad_d[][12] = {
		{ 0, 3 },                           /* 3 columns */
		{ 0, 2, 0xff, 0xff, 0xff, 0xfe },   /* negative length */
		{ 0, 2, 0, 0, 0, 9, 't' },          /* longer than the row */
		{ 0, 2, 0, 0, 0, 1, 't', 0, 0, 0 }, /* the second cut short */
	};
	static const size_t bad_dn[] = { 2, 6, 7, 10 };
	for (size_t i = 0; i < 4; i++) {
		codec   c;
		ik_buf  out;
		size_t  used;
		bytes   in    = { 0 };
		uint8_t ok[4] = { 0 };
		codec_open(&c, "postgresql://u@h/db?target_session_attrs=standby", 0, 0);
		ik_buf_init(&out);
		(void) c.t->handshake(c.st, NULL, 0, &used, &out);
		msg(&in, 'R', ok, 4);
		msg_z(&in, 'I');
		assert_int_equal(c.t->handshake(c.st, in.b, in.n, &used, &out), IK_HS_MORE);
		in.n = 0;
		msg(&in, 'D', bad_d[i], bad_dn[i]);
		msg_z(&in, 'I');
		assert_int_equal(c.t->handshake(c.st, in.b, in.n, &used, &out), -IOK_EPROTO);
		codec_close(&c);
		/* target_session_attrs=any never probes: a row is out of place */
		codec_open(&c, "postgresql://u@h/db", 0, 0);
		(void) c.t->handshake(c.st, NULL, 0, &used, &out);
		in.n = 0;
		msg(&in, 'R', ok, 4);
		msg_d2(&in, "t", "on");
		assert_int_equal(c.t->handshake(c.st, in.b, in.n, &used, &out), -IOK_EPROTO);
		codec_close(&c);
		ik_buf_fini(&out);
	}
}

/* A change reported during the connection is judged again; a write the
 * server refused as read-only closes a read-write connection. */
static void
test_roles_change(void **state)
{
	(void) state;
	codec  c;
	ik_buf out;
	bytes  in = { 0 };
	int    cls[8];
	size_t lens[8];

	/* A standby promoted: the reply that says so is delivered, then the
	 * connection closes. */
	assert_int_equal(role_handshake(&c, "standby", "on", "on"), IK_HS_DONE);
	ik_buf_init(&out);
	encode_q(&c, "SELECT $1::int", &out);
	msg(&in, '1', NULL, 0);
	msg(&in, '2', NULL, 0);
	msg_c(&in, "SELECT 0");
	msg_s(&in, "in_hot_standby", "off");
	msg_z(&in, 'I');
	assert_int_equal(cut(&c, &in, 3, cls, lens), 1);
	assert_int_equal(cls[0], IK_FRAME_LAST);
	codec_close(&c);
	/* ... or, between replies, it is consumed and the connection closes */
	assert_int_equal(role_handshake(&c, "read-only", "on", "off"), IK_HS_DONE);
	in.n = 0;
	msg_s(&in, "default_transaction_read_only", "on"); /* still fits */
	msg_s(&in, "in_hot_standby", "off");
	msg_s(&in, "default_transaction_read_only", "off");
	assert_int_equal(cut(&c, &in, 1, cls, lens), 3);
	assert_int_equal(cls[0], IK_FRAME_SKIP);
	assert_int_equal(cls[1], IK_FRAME_SKIP); /* read-only by default still */
	assert_int_equal(cls[2], IK_FRAME_SKIP_LAST);
	codec_close(&c);
	/* prefer-standby never closes: its rank follows the server */
	assert_int_equal(role_handshake(&c, "prefer-standby", "on", "on"), IK_HS_DONE);
	assert_int_equal(c.t->rank(c.st), 0);
	in.n = 0;
	msg_s(&in, "in_hot_standby", "off");
	assert_int_equal(cut(&c, &in, 5, cls, lens), 1);
	assert_int_equal(cls[0], IK_FRAME_SKIP);
	assert_int_equal(c.t->rank(c.st), 1);
	codec_close(&c);

	/* 25006 on a read-write connection, outside a block: delivered, then
	 * closed; inside a block (BEGIN READ ONLY) it is only an error. */
	static const struct {
		const char *attrs;
		char        status;
		int         want;
	} ro[] = {
		{ "read-write", 'I', IK_FRAME_LAST }, { "read-write", 'E', IK_FRAME_REPLY },
		{ "any", 'I', IK_FRAME_REPLY },
		{ "primary", 'I', IK_FRAME_REPLY }, /* still a primary */
	};
	for (size_t i = 0; i < sizeof(ro) / sizeof(ro[0]); i++) {
		assert_int_equal(role_handshake(&c, ro[i].attrs, "off", "off"), IK_HS_DONE);
		out.len = 0;
		encode_q(&c, "INSERT INTO t VALUES ($1)", &out);
		encode_q(&c, "INSERT INTO t VALUES ($1)", &out);
		in.n = 0;
		msg_e(&in, 'E', "25006", "cannot execute INSERT in a read-only transaction");
		msg_z(&in, ro[i].status);
		msg(&in, '2', NULL, 0); /* the next reply is judged afresh */
		msg_c(&in, "INSERT 0 1");
		msg_z(&in, 'I');
		assert_int_equal(cut(&c, &in, 7, cls, lens), 2);
		assert_int_equal(cls[0], ro[i].want);
		assert_int_equal(cls[1], IK_FRAME_REPLY);
		codec_close(&c);
	}
	ik_buf_fini(&out);
}

/* -------------------------------------------------------------- auth */

/* Feeds one server message to the handshake; returns its result and the
 * client's answer in out. */
static int
hs_feed(codec *c, bytes *in, ik_buf *out)
{
	size_t used;
	out->len = 0;
	int rv   = c->t->handshake(c->st, in->b, in->n, &used, out);
	assert_int_equal(used, rv == IK_HS_MORE ? in->n : used);
	in->n = 0;
	return rv;
}

static void
test_auth_md5_cleartext(void **state)
{
	(void) state;
	codec   c;
	ik_buf  out;
	bytes   in = { 0 };
	size_t  used;
	uint8_t md5req[8] = { 0, 0, 0, 5, 1, 2, 3, 4 };
	uint8_t clear[4]  = { 0, 0, 0, 3 };
	uint8_t ok[4]     = { 0 };

	ik_buf_init(&out);
	codec_open(
	    &c, "postgresql://alice:secret@h/db?application_name=app&options=-c%20x%3D1", 0, 0);
	assert_int_equal(c.t->handshake(c.st, NULL, 0, &used, &out), IK_HS_MORE);
	/* StartupMessage: length, 3.0, user, database, application_name... */
	assert_int_equal(ik_pg_u32(out.data), out.len);
	assert_int_equal(ik_pg_u32(out.data + 4), IK_PG_PROTO_V3);
	assert_non_null(memmem(out.data, out.len, "user\0alice\0", 11));
	assert_non_null(memmem(out.data, out.len, "database\0db\0", 12));
	assert_non_null(memmem(out.data, out.len, "application_name\0app\0", 21));
	assert_non_null(memmem(out.data, out.len, "options\0-c x=1\0", 15));
	assert_null(memmem(out.data, out.len, "secret", 6));
	msg(&in, 'R', md5req, 8);
	assert_int_equal(hs_feed(&c, &in, &out), IK_HS_MORE);
	assert_int_equal(out.data[0], 'p');
	assert_string_equal((const char *) out.data + 5, "md598a0412b9c31436fc53776e863350083");
	msg(&in, 'R', ok, 4);
	msg_z(&in, 'I');
	assert_int_equal(hs_feed(&c, &in, &out), IK_HS_DONE);
	codec_close(&c);

	codec_open(&c, "postgresql://alice:secret@h/db", 0, 0);
	assert_int_equal(c.t->handshake(c.st, NULL, 0, &used, &out), IK_HS_MORE);
	msg(&in, 'R', clear, 4);
	assert_int_equal(hs_feed(&c, &in, &out), IK_HS_MORE);
	assert_string_equal((const char *) out.data + 5, "secret");
	msg_e(&in, 'E', "28P01", "password authentication failed for user \"alice\"");
	assert_int_equal(hs_feed(&c, &in, &out), -IOK_EPEERAUTH);
	codec_close(&c);

	/* no password, one is asked for */
	codec_open(&c, "postgresql://alice@h/db", 0, 0);
	assert_int_equal(c.t->handshake(c.st, NULL, 0, &used, &out), IK_HS_MORE);
	msg(&in, 'R', md5req, 8);
	assert_int_equal(hs_feed(&c, &in, &out), -IOK_EPEERAUTH);
	codec_close(&c);

	/* Kerberos: not ours; garbage: protocol error; other refusals */
	uint8_t krb[4] = { 0, 0, 0, 2 };
	codec_open(&c, "postgresql://alice:x@h/db", 0, 0);
	assert_int_equal(c.t->handshake(c.st, NULL, 0, &used, &out), IK_HS_MORE);
	msg(&in, 'R', krb, 4);
	assert_int_equal(hs_feed(&c, &in, &out), -IOK_ENOTSUP);
	codec_close(&c);
	codec_open(&c, "postgresql://alice:x@h/db", 0, 0);
	assert_int_equal(c.t->handshake(c.st, NULL, 0, &used, &out), IK_HS_MORE);
	msg(&in, 'D', "\0\0", 2);
	assert_int_equal(hs_feed(&c, &in, &out), -IOK_EPROTO);
	codec_close(&c);
	codec_open(&c, "postgresql://alice:x@h/db", 0, 0);
	assert_int_equal(c.t->handshake(c.st, NULL, 0, &used, &out), IK_HS_MORE);
	msg_e(&in, 'E', "3D000", "database \"db\" does not exist");
	assert_int_equal(hs_feed(&c, &in, &out), -IOK_ECONNREFUSED);
	codec_close(&c);
	codec_open(&c, "postgresql://alice:x@h/db", 0, 0);
	assert_int_equal(c.t->handshake(c.st, NULL, 0, &used, &out), IK_HS_MORE);
	msg_z(&in, 'I'); /* ready before authentication */
	assert_int_equal(hs_feed(&c, &in, &out), -IOK_EPROTO);
	codec_close(&c);
	/* no user at all */
	ik_tran_params p = { .dialer = 1 };
	ik_url         u;
	void          *st = calloc(1, ik_tran_postgresql.state_size);
	IOK_OK(ik_url_parse(&u, "postgresql://h/db"));
	p.url = &u;
	assert_int_equal(ik_tran_postgresql.init(st, &p), -IOK_EADDRINVAL);
	ik_tran_postgresql.fini(st);
	free(st);
	ik_url_free(&u);
	ik_buf_fini(&out);
}

/* RFC 7677 section 3. */
static void
test_scram_rfc7677(void **state)
{
	(void) state;
	ik_pg_scram sc;
	ik_buf      out;
	const char *sf = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s="
	                 "W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
	const char *cf = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
	                 "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
	const char *sv = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

	ik_buf_init(&out);
	IOK_OK(ik_pg_scram_start(&sc, "rOprNGfwEbeRWgbNEkqO", &out));
	/* PostgreSQL sends an empty user name; the RFC's vector has "user",
	 * which enters the AuthMessage: use its client-first-bare. */
	free(sc.client_first_bare);
	sc.client_first_bare = strdup("n=user,r=rOprNGfwEbeRWgbNEkqO");
	out.len              = 0;
	IOK_OK(ik_pg_scram_final(&sc, "pencil", (const uint8_t *) sf, strlen(sf), &out));
	assert_int_equal(out.len, strlen(cf));
	assert_memory_equal(out.data, cf, strlen(cf));
	IOK_OK(ik_pg_scram_verify(&sc, (const uint8_t *) sv, strlen(sv)));
	ik_pg_scram_fini(&sc);

	/* a wrong server signature, a server error, a nonce not ours */
	IOK_OK(ik_pg_scram_start(&sc, "rOprNGfwEbeRWgbNEkqO", &out));
	IOK_OK(ik_pg_scram_final(&sc, "pencil", (const uint8_t *) sf, strlen(sf), &out));
	const char *bad = "v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
	assert_int_equal(
	    ik_pg_scram_verify(&sc, (const uint8_t *) bad, strlen(bad)), IOK_EPEERAUTH);
	assert_int_equal(
	    ik_pg_scram_verify(&sc, (const uint8_t *) "e=invalid-proof", 15), IOK_EPEERAUTH);
	assert_int_equal(ik_pg_scram_verify(&sc, (const uint8_t *) "v=short", 7), IOK_EPROTO);
	ik_pg_scram_fini(&sc);
	const char *hostile[] = {
		"r=someoneelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		"r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=999999999",
		"r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0",
		"r=rOprNGfwEbeRWgbNEkqOx,s=W22,i=10",
		"r=rOprNGfwEbeRWgbNEkqOx,i=10",
		"r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1x",
		"",
	};
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		IOK_OK(ik_pg_scram_start(&sc, "rOprNGfwEbeRWgbNEkqO", &out));
		assert_int_equal(ik_pg_scram_final(&sc, "pencil", (const uint8_t *) hostile[i],
		                     strlen(hostile[i]), &out),
		    IOK_EPROTO);
		ik_pg_scram_fini(&sc);
	}
	ik_buf_fini(&out);
}

/* The SCRAM exchange through the handshake, with a server we play from
 * the client's random nonce. */
static void
test_scram_handshake(void **state)
{
	(void) state;
	codec   c;
	ik_buf  out;
	bytes   in = { 0 };
	size_t  used;
	uint8_t sasl[64];
	uint8_t ok[4] = { 0 };

	ik_buf_init(&out);
	codec_open(&c, "postgresql://user:pencil@h/db", 0, 0);
	assert_int_equal(c.t->handshake(c.st, NULL, 0, &used, &out), IK_HS_MORE);
	ik_pg_put_u32(sasl, IK_PG_AUTH_SASL);
	memcpy(sasl + 4, "SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0", 34); /* + the final NUL */
	msg(&in, 'R', sasl, 4 + 34);
	assert_int_equal(hs_feed(&c, &in, &out), IK_HS_MORE);
	assert_int_equal(out.data[0], 'p');
	assert_string_equal((const char *) out.data + 5, "SCRAM-SHA-256");
	const char *first = (const char *) out.data + 5 + 14 + 4;
	assert_memory_equal(first, "n,,n=,r=", 8);
	char nonce[64];
	snprintf(nonce, sizeof(nonce), "%.*s", (int) (out.len - 5 - 14 - 4 - 8), first + 8);
	/* a server whose signature we cannot check: refused */
	char    sf[256];
	uint8_t cont[300];
	snprintf(sf, sizeof(sf), "r=%sSRV,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", nonce);
	ik_pg_put_u32(cont, IK_PG_AUTH_SASL_CONT);
	memcpy(cont + 4, sf, strlen(sf));
	msg(&in, 'R', cont, 4 + strlen(sf));
	assert_int_equal(hs_feed(&c, &in, &out), IK_HS_MORE);
	assert_non_null(memmem(out.data, out.len, ",p=", 3));
	assert_null(memmem(out.data, out.len, "pencil", 6));
	/* AuthenticationOk before SASLFinal: the server proved nothing */
	msg(&in, 'R', ok, 4);
	assert_int_equal(hs_feed(&c, &in, &out), -IOK_EPEERAUTH);
	codec_close(&c);
	ik_buf_fini(&out);
}

/* The reconnect marker: with a sharer, the startup's ReadyForQuery is
 * left to be framed as a push. */
static void
test_marker(void **state)
{
	(void) state;
	codec    c;
	ik_buf   out;
	size_t   used;
	bytes    in    = { 0 };
	uint8_t  ok[4] = { 0 };
	ik_frame f;
	ik_buf_init(&out);
	codec_open(&c, "postgresql://u@h/db", 1, 0);
	assert_int_equal(c.t->handshake(c.st, NULL, 0, &used, &out), IK_HS_MORE);
	msg(&in, 'R', ok, 4);
	msg_z(&in, 'I');
	assert_int_equal(c.t->handshake(c.st, in.b, in.n, &used, &out), IK_HS_DONE);
	assert_int_equal(used, 9);
	assert_int_equal(c.t->frame(c.st, in.b + used, in.n - used, &f), 6);
	assert_int_equal(c.t->classify(c.st, in.b + used, 6), IK_FRAME_PUSH);
	codec_close(&c);
	ik_buf_fini(&out);
}

/* ------------------------------------------------------------ reader */

static void
test_reader(void **state)
{
	(void) state;
	bytes         in = { 0 };
	iok_pg_reader r;
	iok_pg_item   it;
	uint8_t       d[2 + 4 + 4];

	msg(&in, '1', NULL, 0);
	msg_t_int4(&in);
	ik_pg_put_u16(d, 2);
	ik_pg_put_u32(d + 2, 0xffffffffu); /* NULL */
	ik_pg_put_u32(d + 6, 0);           /* empty */
	msg(&in, 'D', d, sizeof(d));
	msg_c(&in, "INSERT 0 42");
	msg_e(&in, 'E', "23505", "duplicate key");
	msg_a(&in, "ch", "pay");
	msg_z(&in, 'E');
	iok_pg_reader_init(&r, in.b, in.n);
	assert_int_equal(iok_pg_next(&r, &it), 1);
	assert_int_equal(it.kind, IOK_PG_COLUMNS);
	assert_int_equal(it.count, 1);
	assert_int_equal(iok_pg_next(&r, &it), 1);
	assert_int_equal(it.kind, IOK_PG_COLUMN);
	assert_string_equal(it.name_z, "n");
	assert_int_equal(it.oid, 23);
	assert_int_equal(it.format, IOK_PG_TEXT);
	assert_int_equal(iok_pg_next(&r, &it), 1);
	assert_int_equal(it.kind, IOK_PG_ROW);
	assert_int_equal(it.count, 2);
	assert_int_equal(iok_pg_next(&r, &it), 1);
	assert_int_equal(it.kind, IOK_PG_FIELD);
	assert_int_equal(it.len, -1);
	assert_null(it.data);
	assert_int_equal(iok_pg_next(&r, &it), 1);
	assert_int_equal(it.index, 1);
	assert_int_equal(it.len, 0);
	assert_non_null(it.data);
	assert_int_equal(iok_pg_next(&r, &it), 1);
	assert_int_equal(it.kind, IOK_PG_COMPLETE);
	assert_string_equal(it.tag_z, "INSERT 0 42");
	assert_int_equal(it.rows, 42);
	assert_int_equal(iok_pg_next(&r, &it), 1);
	assert_int_equal(it.kind, IOK_PG_ERROR);
	assert_string_equal(it.sqlstate_z, "23505");
	assert_string_equal(it.message_z, "duplicate key");
	assert_string_equal(it.severity_z, "ERROR");
	assert_null(it.detail_z);
	assert_int_equal(iok_pg_next(&r, &it), 1);
	assert_int_equal(it.kind, IOK_PG_NOTIFY);
	assert_int_equal(it.pid, 77);
	assert_string_equal(it.name_z, "ch");
	assert_int_equal(it.len, 3);
	assert_int_equal(iok_pg_next(&r, &it), 1);
	assert_int_equal(it.kind, IOK_PG_READY);
	assert_int_equal(it.status, 'E');
	assert_int_equal(iok_pg_next(&r, &it), 0);

	/* Every truncation of it is refused or read to a clean end, never
	 * read beyond (ASan watches). */
	for (size_t n = 0; n < in.n; n++) {
		uint8_t *cp = malloc(n ? n : 1);
		int      rv;
		memcpy(cp, in.b, n);
		iok_pg_reader_init(&r, cp, n);
		while ((rv = iok_pg_next(&r, &it)) == 1) {
		}
		assert_true(rv == 0 || rv == -IOK_EPROTO);
		free(cp);
	}
	/* hostile: a field longer than its message, a row claiming more
	 * fields, a bad format code */
	bytes   h = { 0 };
	uint8_t bad[2 + 4 + 1];
	ik_pg_put_u16(bad, 1);
	ik_pg_put_u32(bad + 2, 100);
	msg(&h, 'D', bad, sizeof(bad));
	iok_pg_reader_init(&r, h.b, h.n);
	assert_int_equal(iok_pg_next(&r, &it), 1);
	assert_int_equal(iok_pg_next(&r, &it), -IOK_EPROTO);
	memset(&h, 0, sizeof(h));
	ik_pg_put_u16(bad, 3);
	ik_pg_put_u32(bad + 2, 1);
	msg(&h, 'D', bad, sizeof(bad));
	iok_pg_reader_init(&r, h.b, h.n);
	assert_int_equal(iok_pg_next(&r, &it), 1);
	assert_int_equal(iok_pg_next(&r, &it), 1);
	assert_int_equal(iok_pg_next(&r, &it), -IOK_EPROTO);
	memset(&h, 0, sizeof(h));
	msg(&h, 0x7f, NULL, 0);
	iok_pg_reader_init(&r, h.b, h.n);
	assert_int_equal(iok_pg_next(&r, &it), -IOK_EPROTO);
	iok_pg_reader_init(&r, NULL, 0);
	assert_int_equal(iok_pg_next(&r, &it), 0);
}

static void
test_cancel_packet(void **state)
{
	(void) state;
	uint8_t p[16];
	ik_pg_cancel_request(0x01020304, 0x0a0b0c0d, p);
	static const uint8_t want[16] = { 0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e, 1, 2, 3, 4, 0x0a,
		0x0b, 0x0c, 0x0d };
	assert_memory_equal(p, want, 16);
}

/* A session released inside a transaction: ROLLBACK, its reply eaten;
 * released idle with nothing in flight: nothing sent. */
static void
test_release(void **state)
{
	(void) state;
	codec    c;
	ik_buf   out;
	bytes    in = { 0 };
	ik_frame f;
	uint8_t  pkt[16];
	uint32_t pid, secret;
	codec_open(&c, "postgresql://u@h/db", 0, 0);
	codec_ready(&c);
	ik_buf_init(&out);
	assert_int_equal(c.t->release(c.st, &out), 0);
	assert_int_equal(out.len, 0);
	assert_int_equal(c.t->cancel_packet(c.st, pkt), -IOK_ENOTSUP); /* nothing running */
	IOK_OK(ik_pg_backend_key(c.st, &pid, &secret));
	assert_int_equal(pid, 9);
	assert_int_equal(secret, 7);
	encode_q(&c, "BEGIN", &out);
	assert_int_equal(c.t->cancel_packet(c.st, pkt), 0);
	msg(&in, '1', NULL, 0);
	msg(&in, '2', NULL, 0);
	msg(&in, 'n', NULL, 0);
	msg_c(&in, "BEGIN");
	msg_z(&in, 'T');
	assert_int_equal(c.t->frame(c.st, in.b, in.n, &f), (ssize_t) in.n);
	assert_int_equal(c.t->classify(c.st, in.b, in.n), IK_FRAME_REPLY);
	assert_int_equal(ik_pg_txstatus(c.st), 'T');
	out.len = 0;
	assert_int_equal(c.t->release(c.st, &out), 0);
	assert_int_equal(out.data[0], 'Q');
	assert_string_equal((const char *) out.data + 5, "ROLLBACK");
	memset(&in, 0, sizeof(in));
	msg_c(&in, "ROLLBACK");
	msg_z(&in, 'I');
	assert_int_equal(c.t->frame(c.st, in.b, in.n, &f), (ssize_t) in.n);
	assert_int_equal(c.t->classify(c.st, in.b, in.n), IK_FRAME_SKIP);
	assert_int_equal(ik_pg_txstatus(c.st), 'I');
	ik_buf_fini(&out);
	codec_close(&c);
}

/* The health probe: an empty simple query; its answer is recognised,
 * anything else (truncated, another reply, garbage) is not. */
static void
test_probe(void **state)
{
	(void) state;
	codec    c;
	ik_buf   out;
	ik_frame f;
	bytes    in = { 0 }, other = { 0 };
	codec_open(&c, "postgresql://u@h/db", 0, 0);
	codec_ready(&c);
	ik_buf_init(&out);
	assert_int_equal(c.t->probe(c.st, &out), 0);
	assert_int_equal(out.len, 6);
	assert_memory_equal(out.data, "Q\0\0\0\5\0", 6);
	msg(&in, 'I', "", 0);
	msg_z(&in, 'I');
	assert_int_equal(c.t->frame(c.st, in.b, in.n, &f), (ssize_t) in.n);
	assert_int_equal(c.t->classify(c.st, in.b, in.n), IK_FRAME_REPLY);
	assert_true(c.t->probe_ok(c.st, in.b, in.n));
	assert_false(c.t->probe_ok(c.st, in.b, in.n - 1));
	assert_false(c.t->probe_ok(c.st, in.b + 5, in.n - 5)); /* a bare Z */
	assert_false(c.t->probe_ok(c.st, in.b, 0));
	msg_c(&other, "SELECT 1");
	msg_z(&other, 'I');
	assert_false(c.t->probe_ok(c.st, other.b, other.n));
	assert_false(c.t->probe_ok(c.st, (const uint8_t *) "garbage-garbage", 15));
	ik_buf_fini(&out);
	codec_close(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_framing_every_split),
		cmocka_unit_test(test_notify_rotation),
		cmocka_unit_test(test_statement_cache),
		cmocka_unit_test(test_encode_refuses),
		cmocka_unit_test(test_hostile_frames),
		cmocka_unit_test(test_skip_oversize_reply),
		cmocka_unit_test(test_skip_oversize_alone),
		cmocka_unit_test(test_skip_oversize_hostile),
		cmocka_unit_test(test_auth_md5_cleartext),
		cmocka_unit_test(test_scram_rfc7677),
		cmocka_unit_test(test_scram_handshake),
		cmocka_unit_test(test_marker),
		cmocka_unit_test(test_reader),
		cmocka_unit_test(test_cancel_packet),
		cmocka_unit_test(test_release),
		cmocka_unit_test(test_probe),
		cmocka_unit_test(test_roles_handshake),
		cmocka_unit_test(test_roles_probe),
		cmocka_unit_test(test_roles_hostile),
		cmocka_unit_test(test_roles_change),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
