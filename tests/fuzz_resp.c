/*
 * fuzz_resp.c - libFuzzer target for the RESP codec and the redis
 * transport.  Besides "no crash, no out-of-bounds read", it checks that
 * the pieces agree with each other:
 *   - framing the input whole, a byte at a time, and in copied chunks
 *     gives the same frames and the same error;
 *   - a frame found with no size limit is found with any limit it fits,
 *     and refused with -IOK_EMSGSIZE by any limit it exceeds;
 *   - every frame the framer accepts iterates to its exact end;
 *   - the handshake ends the same whether the server's bytes come whole
 *     or a byte at a time;
 *   - formatted commands pass ik_resp_is_command and iterate back;
 *   - the public reader and builder (iok_resp_reader, iok_resp_command)
 *     give the iterator's items and the formatter's bytes, and the reader
 *     ends (0) exactly on buffers holding one whole frame.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iok.h"
#include "transports/resp.h"

#define CHECK(c)                                                                             \
	do {                                                                                 \
		if (!(c)) {                                                                  \
			fprintf(stderr, "fuzz_resp.c:%d: check failed: %s\n", __LINE__, #c); \
			__builtin_trap();                                                    \
		}                                                                            \
	} while (0)

#define MAXF 4096

/* frames_whole cuts data into frames with one call per frame; returns
 * the number of frames, *end the final result (0 or an error). */
static size_t
frames_whole(const uint8_t *d, size_t n, size_t max, unsigned depth, size_t *lens, ssize_t *end)
{
	ik_resp_parser p;
	size_t         off = 0, k = 0, need;
	ssize_t        rv = 0;

	ik_resp_parser_init(&p, max, depth);
	while (off < n && k < MAXF) {
		rv = ik_resp_parse(&p, d + off, n - off, &need);
		if (rv <= 0) {
			break;
		}
		CHECK((size_t) rv <= n - off);
		lens[k++] = (size_t) rv;
		off += (size_t) rv;
		rv = 0;
	}
	*end = rv;
	return k;
}

/* frames_step feeds the same bytes step bytes at a time (copied to an
 * exact-size buffer when copy is set, so ASan sees reads past len). */
static size_t
frames_step(
    const uint8_t *d, size_t n, size_t step, int copy, const size_t *lens, size_t nl, ssize_t *end)
{
	ik_resp_parser p;
	size_t         start = 0, have = 0, k = 0, need;
	ssize_t        rv = 0;

	ik_resp_parser_init(&p, 0, 0);
	while (start < n && k < MAXF) {
		size_t         len = have - start;
		uint8_t       *c   = NULL;
		const uint8_t *b   = d + start;
		if (copy) {
			c = malloc(len ? len : 1);
			CHECK(c != NULL);
			memcpy(c, b, len);
			b = c;
		}
		rv = ik_resp_parse(&p, b, len, &need);
		free(c);
		if (rv < 0) {
			break;
		}
		if (rv > 0) {
			CHECK(k < nl && (size_t) rv == lens[k]);
			k++;
			start += (size_t) rv;
			rv = 0;
			continue;
		}
		CHECK(need == 0 || need > len);
		if (have == n) {
			break;
		}
		have = have + step > n ? n : have + step;
	}
	*end = rv;
	return k;
}

static void
check_iter(const uint8_t *d, size_t n)
{
	ik_resp_iter it;
	ik_resp_item x;
	int          rv;
	uint8_t     *c = malloc(n);

	CHECK(c != NULL);
	memcpy(c, d, n);
	ik_resp_iter_init(&it, c, n);
	while ((rv = ik_resp_iter_next(&it, &x)) == 1) {
		CHECK(it.pos <= n);
		if (x.str != NULL) {
			CHECK(x.str >= c && x.str + x.len <= c + n);
		}
	}
	CHECK(rv == 0 && it.pos == n);
	CHECK(ik_resp_top(c, n, &x) == 1);

	/* The public reader: the same items, then the end. */
	iok_resp_reader r;
	iok_resp_item   y;
	ik_resp_iter_init(&it, c, n);
	iok_resp_reader_init(&r, c, n);
	while (ik_resp_iter_next(&it, &x) == 1) {
		CHECK(iok_resp_next(&r, &y) == 1);
		CHECK(y.type == (int) x.type && y.null == x.null && y.depth == x.depth &&
		      y.str == x.str && y.len == x.len && y.integer == x.i && y.boolean == x.b &&
		      y.count == x.count && memcmp(y.fmt, x.fmt, sizeof(y.fmt)) == 0);
	}
	CHECK(iok_resp_next(&r, &y) == 0 && iok_resp_next(&r, &y) == 0);
	free(c);
}

/* ik_resp_is_command's verdict the long way, by iterating the frame (what
 * it was before its single pass): the two must always agree. */
static int
is_command_by_iter(const uint8_t *buf, size_t len)
{
	ik_resp_iter it;
	ik_resp_item item;
	size_t       argc;

	ik_resp_iter_init(&it, buf, len);
	if (ik_resp_iter_next(&it, &item) != 1 || item.type != IK_RESP_ARRAY || item.null ||
	    item.count == 0) {
		return 0;
	}
	argc = item.count;
	for (size_t i = 0; i < argc; i++) {
		if (ik_resp_iter_next(&it, &item) != 1 || item.type != IK_RESP_BULK || item.null) {
			return 0;
		}
	}
	return ik_resp_iter_next(&it, &item) == 0 && it.pos == len;
}

static void
fuzz_framing(const uint8_t *d, size_t n)
{
	static size_t lens[MAXF];
	ssize_t       end;
	size_t        k = frames_whole(d, n, 0, 0, lens, &end);

	for (size_t i = 0, off = 0; i < k; off += lens[i], i++) {
		check_iter(d + off, lens[i]);
		/* any limit: fits iff the frame does */
		size_t lims[] = { lens[i], lens[i] - 1, lens[i] / 2 + 1, 3 };
		size_t need;
		for (size_t j = 0; j < sizeof(lims) / sizeof(lims[0]); j++) {
			ik_resp_parser p;
			if (lims[j] == 0) {
				continue;
			}
			ik_resp_parser_init(&p, lims[j], 0);
			ssize_t rv = ik_resp_parse(&p, d + off, lens[i], &need);
			CHECK(lens[i] <= lims[j] ? rv == (ssize_t) lens[i] : rv == -IOK_EMSGSIZE);
		}
		if (ik_resp_is_command(d + off, lens[i])) {
			ik_resp_item x;
			CHECK(ik_resp_top(d + off, lens[i], &x) == 1 && x.type == IK_RESP_ARRAY);
		}
	}
	if (k < MAXF) {
		/* the same frames and the same end, whatever the pieces */
		ssize_t e1, e2;
		CHECK(frames_step(d, n, 1, 0, lens, k, &e1) == k && e1 == end);
		CHECK(frames_step(d, n, 13, 1, lens, k, &e2) == k && e2 == end);
	}
	/* a tight depth limit only ever refuses (or meets the same error
	 * first, such as an oversized length before the deep part) */
	ik_resp_parser p;
	size_t         need;
	ik_resp_parser_init(&p, 0, 2);
	ssize_t rv = ik_resp_parse(&p, d, n, &need);
	CHECK(rv == 0 || rv == -IOK_EPROTO || (k > 0 && rv == (ssize_t) lens[0]) ||
	      (k == 0 && rv == end));

	/* the iterator on raw bytes: never out of bounds */
	ik_resp_iter it;
	ik_resp_item x;
	ik_resp_iter_init(&it, d, n);
	while (ik_resp_iter_next(&it, &x) == 1) {
	}
	CHECK(ik_resp_is_command(d, n) == is_command_by_iter(d, n));
	(void) ik_resp_top(d, n, &x);

	/* the public reader on raw bytes ends iff they are one whole frame
	 * (deeper than the framer's default depth aside) */
	iok_resp_reader r;
	iok_resp_item   y;
	iok_resp_reader_init(&r, d, n);
	while ((rv = iok_resp_next(&r, &y)) == 1) {
		CHECK(y.str == NULL || (y.str >= d && y.str + y.len <= d + n));
	}
	CHECK(rv == 0 || rv == -IOK_EPROTO);
	if (k == 1 && lens[0] == n) {
		CHECK(rv == 0);
	} else if (rv == 0) {
		CHECK(k == 0 && end == -IOK_EPROTO); /* nested past the framer's limit */
	}
}

/* hs runs the handshake over d as the server's bytes, step bytes at a
 * time; returns the result, *out_len the bytes we sent, *used_total. */
static int
hs(const char *url, const uint8_t *d, size_t n, size_t step, size_t *out_len, size_t *used_total)
{
	ik_url         u;
	ik_tran_params prm = { 0 };
	ik_buf         out;
	void          *st    = calloc(1, ik_tran_redis.state_size);
	size_t         start = 0, have = 0, used;
	int            rv;

	CHECK(st != NULL);
	CHECK(ik_url_parse(&u, url) == 0);
	prm.url      = &u;
	prm.recv_max = 1 << 16;
	CHECK(ik_tran_redis.init(st, &prm) == 0);
	ik_url_free(&u);
	ik_buf_init(&out);
	rv = ik_tran_redis.handshake(st, NULL, 0, &used, &out);
	while (rv == IK_HS_MORE && have < n) {
		have = have + step > n ? n : have + step;
		rv   = ik_tran_redis.handshake(st, d + start, have - start, &used, &out);
		if (rv >= 0) {
			CHECK(used <= have - start);
			start += used;
		}
	}
	if (rv == IK_HS_DONE) {
		/* the rest is frames */
		ik_frame f;
		while (start < n) {
			ssize_t fl = ik_tran_redis.frame(st, d + start, n - start, &f);
			if (fl <= 0) {
				break;
			}
			CHECK(f.body_off == 0 && f.body_len == (size_t) fl);
			int cl = ik_tran_redis.classify(st, d + start, (size_t) fl);
			CHECK(cl == IK_FRAME_REPLY || cl == IK_FRAME_PUSH);
			int pk = ik_tran_redis.probe_ok(st, d + start, (size_t) fl);
			CHECK(pk == 0 || pk == 1); /* a health probe's answer? */
			uint8_t pre[IK_PREFIX_MAX];
			ssize_t e = ik_tran_redis.encode(st, NULL, 0, d + start, (size_t) fl, pre);
			CHECK(e == 0 || e == -IOK_EINVAL);
			start += (size_t) fl;
		}
		CHECK(ik_redis_protocol(st) == 2 || ik_redis_protocol(st) == 3);
	}
	*out_len    = out.len;
	*used_total = start;
	ik_tran_redis.fini(st);
	free(st);
	ik_buf_fini(&out);
	return rv;
}

static void
fuzz_handshake(const uint8_t *d, size_t n)
{
	static const char *const urls[] = {
		"redis://:sekret@h/2",
		"redis://u:p@h?name=x&protocol=2&db=1",
	};
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		size_t o1, o2, u1, u2;
		int    r1 = hs(urls[i], d, n, n ? n : 1, &o1, &u1);
		int    r2 = hs(urls[i], d, n, 1, &o2, &u2);
		CHECK(r1 == r2 && o1 == o2);
		CHECK(r1 != IK_HS_DONE || u1 == u2);
	}
}

/* Split the input into arguments at each 0xff byte and round-trip them. */
static void
fuzz_format(const uint8_t *d, size_t n)
{
	const char *argv[64];
	size_t      lens[64];
	int         argc = 0;
	size_t      s    = 0;
	ik_buf      b;

	for (size_t i = 0; i <= n && argc < 64; i++) {
		if (i == n || d[i] == 0xff) {
			argv[argc] = (const char *) d + s;
			lens[argc] = i - s;
			argc++;
			s = i + 1;
		}
	}
	ik_buf_init(&b);
	CHECK(ik_resp_format_argv(&b, argc, argv, lens) == 0);
	CHECK(ik_resp_is_command(b.data, b.len));
	ik_resp_iter it;
	ik_resp_item x;
	ik_resp_iter_init(&it, b.data, b.len);
	CHECK(ik_resp_iter_next(&it, &x) == 1 && x.count == (size_t) argc);
	for (int i = 0; i < argc; i++) {
		CHECK(ik_resp_iter_next(&it, &x) == 1 && x.len == lens[i]);
		CHECK(lens[i] == 0 || memcmp(x.str, argv[i], lens[i]) == 0);
	}
	CHECK(ik_resp_iter_next(&it, &x) == 0 && it.pos == b.len);
	ik_resp_parser p;
	size_t         need;
	ik_resp_parser_init(&p, 0, 0);
	CHECK(ik_resp_parse(&p, b.data, b.len, &need) == (ssize_t) b.len);
	/* the public builder: the same bytes */
	iok_msg *m;
	CHECK(iok_resp_command(&m, argc, argv, lens) == 0);
	CHECK(iok_msg_len(m) == b.len && memcmp(iok_msg_body(m), b.data, b.len) == 0);
	iok_msg_free(m);
	ik_buf_fini(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_framing(data, size);
	fuzz_handshake(data, size);
	fuzz_format(data, size);
	return 0;
}
