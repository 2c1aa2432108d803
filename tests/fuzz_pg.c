/*
 * fuzz_pg.c - libFuzzer target for the PostgreSQL codec: the framer (with
 * its in-place move of notifications), the classifier and statement cache,
 * the startup/authentication exchange, the request encoder and the public
 * reader.  Besides "no crash, no out-of-bounds read" it checks that:
 *   - framing the input whole and a few bytes at a time (each time in an
 *     exact-size copy, so ASan sees any read past len) gives the same
 *     frames and the same final result;
 *   - every frame is cut at a message boundary, and its bytes iterate with
 *     iok_pg_next to 0 or -IOK_EPROTO;
 *   - the handshake (with or without a target_session_attrs) ends the
 *     same whether the server's bytes come whole or a byte at a time;
 *   - with a receive limit, a frame over it is stepped over as the pipe
 *     does (classify, skip) and the frames and skips come out the same
 *     whole and in pieces, skip() never forgetting more than it was given.
 * The first input byte picks the mode and options.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iok.h"
#include "transports/pg_codec.h"
#include "url.h"

#define CHECK(c)                                                                           \
	do {                                                                               \
		if (!(c)) {                                                                \
			fprintf(stderr, "fuzz_pg.c:%d: check failed: %s\n", __LINE__, #c); \
			__builtin_trap();                                                  \
		}                                                                          \
	} while (0)

#define MAXF 2048
#define SKIPPED ((size_t) -1) /* in lens: an oversize frame stepped over */

typedef struct codec {
	void  *st;
	ik_url url;
} codec;

static const ik_transport *T = &ik_tran_postgresql;

static void
open_codec(codec *c, const char *url, int shared, size_t max)
{
	ik_tran_params p = { .dialer = 1, .recv_max = max, .shared = shared };
	c->st            = calloc(1, T->state_size);
	CHECK(ik_url_parse(&c->url, url) == 0);
	p.url = &c->url;
	CHECK(T->init(c->st, &p) == 0);
}

static void
close_codec(codec *c)
{
	T->fini(c->st);
	free(c->st);
	ik_url_free(&c->url);
}

/* A codec past a trust handshake with nreq requests in flight. */
static void
ready_codec(codec *c, int shared, size_t max, int nreq)
{
	static const uint8_t hello[] = { 'R', 0, 0, 0, 8, 0, 0, 0, 0, 'Z', 0, 0, 0, 5, 'I' };
	ik_buf               out;
	size_t               used;
	ik_buf_init(&out);
	open_codec(c, "postgresql://u@h/db", shared, max);
	CHECK(T->handshake(c->st, NULL, 0, &used, &out) == IK_HS_MORE);
	CHECK(T->handshake(c->st, hello, sizeof(hello), &used, &out) == IK_HS_DONE);
	for (int i = 0; i < nreq; i++) {
		iok_msg *m;
		char     sql[32];
		snprintf(sql, sizeof(sql), "SELECT %d", i % 3);
		CHECK(iok_pg_query_new(&m, sql, strlen(sql)) == 0);
		if (i % 4 == 3) {
			CHECK(T->subscribe(c->st, (const uint8_t *) "ch", 2, 1, &out) == 0);
		}
		CHECK(T->encode_full(c->st, NULL, 0, iok_msg_body(m), iok_msg_len(m), &out) == 0);
		iok_msg_free(m);
	}
	ik_buf_fini(&out);
}

static void
read_all(const uint8_t *b, size_t n)
{
	iok_pg_reader r;
	iok_pg_item   it;
	int           rv, k = 0;
	iok_pg_reader_init(&r, b, n);
	while ((rv = iok_pg_next(&r, &it)) == 1) {
		CHECK(++k <= (int) n + 1);
	}
	CHECK(rv == 0 || rv == -IOK_EPROTO);
}

/* Frames d[0..n) fed step bytes at a time into an exact-size buffer;
 * returns the frame count, lengths in lens, the final result in *end. */
static size_t
frames(const uint8_t *d, size_t n, size_t step, int shared, size_t max, int nreq, size_t *lens,
    ssize_t *end)
{
	codec    c;
	uint8_t *buf  = NULL;
	size_t   have = 0, start = 0, k = 0;
	ssize_t  rv = 0;

	int skipping = 0;

	ready_codec(&c, shared, max, nreq);
	while (have < n || rv > 0) {
		if (rv == 0) {
			/* more bytes: buf holds stream bytes [start, have), maybe
			 * reordered by the framer, and is copied as it is */
			size_t   add = n - have < step ? n - have : step;
			uint8_t *nb  = malloc(have - start + add);
			CHECK(nb != NULL);
			if (have > start) {
				memcpy(nb, buf, have - start);
			}
			memcpy(nb + have - start, d + have, add);
			free(buf);
			buf = nb;
			have += add;
		}
		ik_frame f = { 0 };
		rv         = T->frame(c.st, buf, have - start, &f);
		if (rv == -IOK_EMSGSIZE && !skipping) {
			/* the pipe's oversize_begin: classify from the start */
			(void) T->classify(c.st, buf, have - start);
			CHECK((*T->skip)(c.st, NULL, 0) == 0);
			skipping = 1;
			if (k < MAXF) {
				lens[k++] = SKIPPED;
			}
			rv = 1; /* frame again, no new bytes */
			continue;
		}
		if (rv < 0) {
			break;
		}
		if (rv == 0) {
			if (skipping) { /* oversize_skip: drop what is passed */
				size_t   gone = (*T->skip)(c.st, buf, have - start);
				size_t   rest = have - start - gone;
				uint8_t *nb   = malloc(rest ? rest : 1);
				CHECK(gone <= have - start && nb != NULL);
				memcpy(nb, buf + gone, rest);
				free(buf);
				buf = nb;
				start += gone;
			}
			if (have == n) {
				break;
			}
			continue;
		}
		CHECK((size_t) rv <= have - start && f.body_off + f.body_len <= (size_t) rv);
		if (skipping) {
			skipping = 0; /* the rest of the oversize frame: not a frame */
		} else {
			(void) T->classify(c.st, buf + f.body_off, f.body_len);
			CHECK(T->probe_ok(c.st, buf + f.body_off, f.body_len) <= 1);
			read_all(buf + f.body_off, f.body_len);
			if (k < MAXF) {
				lens[k++] = (size_t) rv;
			}
		}
		/* drop the frame: the rest moves to a new exact-size buffer */
		size_t   rest = have - start - (size_t) rv;
		uint8_t *nb   = malloc(rest ? rest : 1);
		CHECK(nb != NULL);
		memcpy(nb, buf + rv, rest);
		free(buf);
		buf = nb;
		start += (size_t) rv;
	}
	*end = rv < 0 ? rv : 0;
	free(buf);
	close_codec(&c);
	return k;
}

static void
fuzz_frames(const uint8_t *d, size_t n, uint8_t opt)
{
	static size_t a[MAXF], b[MAXF];
	int           shared = opt & 1;
	int           nreq   = (opt >> 1) & 7;
	size_t        max    = (opt & 0x10) ? 256 : 0;
	ssize_t       ea, eb;
	size_t        ka = frames(d, n, n ? n : 1, shared, max, nreq, a, &ea);
	size_t        kb = frames(d, n, 1 + (opt >> 5), shared, max, nreq, b, &eb);
	CHECK(ka == kb && ea == eb);
	CHECK(memcmp(a, b, ka * sizeof(a[0])) == 0);
}

static int
handshake(const uint8_t *d, size_t n, size_t step, unsigned opt)
{
	/* With a target_session_attrs the handshake also reads the role
	 * ParameterStatus and may ask (and read) the role query. */
	static const char *const urls[] = {
		"postgresql://user:pencil@h/db?application_name=f",
		"postgresql://user:pencil@h/db?target_session_attrs=standby",
		"postgresql://user:pencil@h/db?target_session_attrs=read-write",
		"postgresql://user:pencil@h/db?target_session_attrs=prefer-standby",
	};
	codec  c;
	ik_buf out;
	size_t used, have = 0, start = 0;
	int    rv;
	ik_buf_init(&out);
	open_codec(&c, urls[opt % 4], 0, 0);
	rv = T->handshake(c.st, NULL, 0, &used, &out);
	while (rv == IK_HS_MORE && have < n) {
		have += n - have < step ? n - have : step;
		uint8_t *cp = malloc(have - start ? have - start : 1);
		CHECK(cp != NULL);
		memcpy(cp, d + start, have - start);
		out.len = 0;
		rv      = T->handshake(c.st, cp, have - start, &used, &out);
		CHECK(used <= have - start);
		start += used;
		free(cp);
	}
	ik_buf_fini(&out);
	close_codec(&c);
	return rv;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1) {
		return 0;
	}
	uint8_t        opt = data[0];
	const uint8_t *d   = data + 1;
	size_t         n   = size - 1;
	if (n > 65536) {
		return 0;
	}
	switch (opt & 0x3) {
	case 0:
	case 1:
		fuzz_frames(d, n, opt >> 2);
		break;
	case 2: {
		int a = handshake(d, n, n ? n : 1, opt >> 2);
		int b = handshake(d, n, 1, opt >> 2);
		CHECK(a == b);
		break;
	}
	default: {
		/* the reader on raw bytes, and the encoder on a raw body */
		codec  c;
		ik_buf out;
		read_all(d, n);
		ready_codec(&c, 0, 0, 0);
		ik_buf_init(&out);
		(void) T->encode_full(c.st, NULL, 0, d, n, &out);
		ik_buf_fini(&out);
		close_codec(&c);
		break;
	}
	}
	return 0;
}
