/* test_sp_codec.c - the SP codec on byte buffers: handshake, framing,
 * limits, hostile input. */
#include <string.h>

#include "testutil.h"
#include "buf.h"
#include "msg.h"
#include "../transports/sp.h"

static void *
codec(const ik_transport *t, uint16_t self, size_t recv_max)
{
	static _Thread_local uint64_t st[64];
	ik_tran_params                p = { .self_proto = self, .dialer = 1, .recv_max = recv_max };
	assert_true(t->state_size <= sizeof(st));
	memset(st, 0, sizeof(st));
	assert_int_equal(t->init(st, &p), 0);
	return st;
}

static void
test_handshake(void **state)
{
	ik_buf out;
	size_t used;
	(void) state;
	void *st = codec(&ik_tran_tcp, 0x50, 0);
	ik_buf_init(&out);
	/* Our header goes out first, before anything arrives. */
	assert_int_equal(ik_tran_tcp.handshake(st, NULL, 0, &used, &out), IK_HS_MORE);
	assert_int_equal(out.len, 8);
	assert_memory_equal(out.data, "\0SP\0\x00\x50\0\0", 8);
	/* The peer's, in pieces; nothing is consumed until it is whole. */
	const uint8_t peer[] = { 0, 'S', 'P', 0, 0x00, 0x51, 0, 0, 0xAA };
	for (size_t n = 1; n < 8; n++) {
		assert_int_equal(ik_tran_tcp.handshake(st, peer, n, &used, &out), IK_HS_MORE);
		assert_int_equal(used, 0);
	}
	assert_int_equal(ik_tran_tcp.handshake(st, peer, 9, &used, &out), IK_HS_DONE);
	assert_int_equal(used, 8);
	assert_int_equal(out.len, 8); /* sent once */
	assert_int_equal(ik_tran_tcp.peer_proto(st), 0x51);
	ik_buf_fini(&out);
}

static void
test_bad_handshake(void **state)
{
	const char *bad[] = {
		"GET / HTTP/1.1\r\n", /* not SP at all: refused on the first byte */
		"\0SQ\0\0\x50\0\0",   /* wrong magic */
		"\0SP\1\0\x50\0\0",   /* version 1 */
		"\0SP\0\0\x50\1\0",   /* reserved bytes set */
	};
	(void) state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ik_buf out;
		size_t used;
		void  *st = codec(&ik_tran_tcp, 0x50, 0);
		ik_buf_init(&out);
		assert_int_equal(
		    ik_tran_tcp.handshake(st, (const uint8_t *) bad[i], 8, &used, &out),
		    -IOK_EPROTO);
		ik_buf_fini(&out);
	}
}

static void
test_frames(void **state)
{
	uint8_t  buf[64];
	ik_frame f;
	(void) state;
	void *st = codec(&ik_tran_tcp, 0x50, 100);
	/* Two frames back to back, cut at every byte. */
	uint8_t two[8 + 3 + 8 + 0];
	ik_put_u64(two, 3);
	memcpy(two + 8, "abc", 3);
	ik_put_u64(two + 11, 0);
	for (size_t cut = 0; cut < 11; cut++) {
		memset(&f, 0, sizeof(f));
		assert_int_equal(ik_tran_tcp.frame(st, two, cut, &f), 0);
	}
	memset(&f, 0, sizeof(f));
	assert_int_equal(ik_tran_tcp.frame(st, two, 8, &f), 0);
	assert_int_equal(f.need, 11); /* knows the size once the length is in */
	assert_int_equal(ik_tran_tcp.frame(st, two, sizeof(two), &f), 11);
	assert_int_equal(f.body_off, 8);
	assert_int_equal(f.body_len, 3);
	assert_int_equal(ik_tran_tcp.frame(st, two + 11, 8, &f), 8);
	assert_int_equal(f.body_len, 0);

	/* Over recv_max: refused as soon as the length is known. */
	ik_put_u64(buf, 101);
	assert_int_equal(ik_tran_tcp.frame(st, buf, 8, &f), -IOK_EMSGSIZE);
	/* An absurd length, even with no limit. */
	void *nolimit = codec(&ik_tran_tcp, 0x50, 0);
	memset(buf, 0xff, 8);
	assert_int_equal(ik_tran_tcp.frame(nolimit, buf, 8, &f), -IOK_EMSGSIZE);
}

static void
test_ipc_frames(void **state)
{
	uint8_t  buf[32];
	uint8_t  prefix[IK_PREFIX_MAX];
	ik_frame f;
	(void) state;
	void *st = codec(&ik_tran_ipc, 0x10, 0);
	assert_int_equal(
	    ik_tran_ipc.encode(st, (const uint8_t *) "hd", 2, (const uint8_t *) "body", 4, prefix),
	    9);
	assert_int_equal(prefix[0], 1);
	assert_int_equal(ik_get_u64(prefix + 1), 6);
	memcpy(buf, prefix, 9);
	memcpy(buf + 9, "hdbody", 6);
	assert_int_equal(ik_tran_ipc.frame(st, buf, 15, &f), 15);
	assert_int_equal(f.body_off, 9);
	assert_int_equal(f.body_len, 6);
	buf[0] = 2; /* unknown message type */
	assert_int_equal(ik_tran_ipc.frame(st, buf, 1, &f), -IOK_EPROTO);
	/* tcp encoding is the bare length */
	void *t = codec(&ik_tran_tcp, 0x10, 0);
	assert_int_equal(ik_tran_tcp.encode(t, NULL, 0, (const uint8_t *) "x", 1, prefix), 8);
	assert_int_equal(ik_get_u64(prefix), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handshake),
		cmocka_unit_test(test_bad_handshake),
		cmocka_unit_test(test_frames),
		cmocka_unit_test(test_ipc_frames),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
