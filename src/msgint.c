/*
 * msgint.c - big-endian integers at either end of a message's body or
 * header (nng's nng_msg_{,header_}{append,insert,trim,chop}_u{16,32,64}).
 *
 * Each call is the byte-string call of msg.c on a 2, 4 or 8 byte buffer,
 * so the bounds checks live in one place.  A trim/chop on a part shorter
 * than the integer fails with IOK_EINVAL and leaves the message unchanged.
 */
#include "msg.h"

static void
put_be(uint8_t *b, uint64_t v, size_t n)
{
	for (size_t i = n; i-- > 0; v >>= 8) {
		b[i] = (uint8_t) v;
	}
}

static uint64_t
get_be(const uint8_t *b, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		v = (v << 8) | b[i];
	}
	return v;
}

/* The four calls of one part (body or header) for one width.  PART is the
 * infix ("" or "header_"), DATA/LEN name the part's bytes. */
#define IK_MSG_INTS(PART, DATA, LEN, BITS)                                        \
	int iok_msg_##PART##append_u##BITS(iok_msg *m, uint##BITS##_t v)          \
	{                                                                         \
		uint8_t b[BITS / 8];                                              \
		put_be(b, v, sizeof(b));                                          \
		return iok_msg_##PART##append(m, b, sizeof(b));                   \
	}                                                                         \
	int iok_msg_##PART##insert_u##BITS(iok_msg *m, uint##BITS##_t v)          \
	{                                                                         \
		uint8_t b[BITS / 8];                                              \
		put_be(b, v, sizeof(b));                                          \
		return iok_msg_##PART##insert(m, b, sizeof(b));                   \
	}                                                                         \
	int iok_msg_##PART##trim_u##BITS(iok_msg *m, uint##BITS##_t *v)           \
	{                                                                         \
		if (v == NULL || (LEN) < BITS / 8) {                              \
			return IOK_EINVAL;                                        \
		}                                                                 \
		*v = (uint##BITS##_t) get_be((DATA), BITS / 8);                   \
		return iok_msg_##PART##trim(m, BITS / 8);                         \
	}                                                                         \
	int iok_msg_##PART##chop_u##BITS(iok_msg *m, uint##BITS##_t *v)           \
	{                                                                         \
		if (v == NULL || (LEN) < BITS / 8) {                              \
			return IOK_EINVAL;                                        \
		}                                                                 \
		*v = (uint##BITS##_t) get_be((DATA) + (LEN) -BITS / 8, BITS / 8); \
		return iok_msg_##PART##chop(m, BITS / 8);                         \
	}

IK_MSG_INTS(, m->body, m->len, 16)
IK_MSG_INTS(, m->body, m->len, 32)
IK_MSG_INTS(, m->body, m->len, 64)
IK_MSG_INTS(header_, m->hdr, m->hdr_len, 16)
IK_MSG_INTS(header_, m->hdr, m->hdr_len, 32)
IK_MSG_INTS(header_, m->hdr, m->hdr_len, 64)
