/*
 * msg.h - the message object.  Header and body in one allocation (the body
 * moves to its own buffer only when it outgrows it).  A message is owned by
 * exactly one party at a time; sending hands it over whole, so bodies cross
 * threads without copying.
 *
 * Fan-out shares instead of copying, in two ways, both kernel-internal:
 * - ik_msg_ref: several read-only holders of the SAME message (a pub's
 *   per-subscriber queues and write batches): one atomic count, nothing
 *   copied.  Nobody holding such a reference may modify the message; a
 *   holder that must (inproc delivery) asks ik_msg_private for its own.
 * - a view (ik_msg_private when the message is shared): a header of its
 *   own whose body points into the origin's storage and holds a reference
 *   on the origin.  Its header and body bounds are its own; its body bytes
 *   are copied on the first change that needs writable storage (ensure in
 *   msg.c), and iok_recvmsg hands the application only messages whose
 *   storage is their own (ik_msg_writable), since iok_msg_body gives a
 *   writable pointer.  The application never holds a shared message.
 */
#ifndef IK_MSG_H
#define IK_MSG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "iok.h"

/* Message flags, kernel-visible routing facts. */
#define IK_MSG_REQUEST 0x01    /* sent with iok_request: token is set */
#define IK_MSG_REPLY 0x02      /* sent with iok_reply: token names the request */
#define IK_MSG_PUSH 0x04       /* arrived as an unsolicited push frame */
#define IK_MSG_PARSED 0x08     /* the pattern already took its header out */
#define IK_MSG_IDEMPOTENT 0x10 /* may be sent again after a lost connection */

/* Room kept in front of the body so SP headers and length prefixes can be
 * prepended without moving it. */
#define IK_MSG_HEADROOM 32

struct iok_msg {
	uint8_t         *body;    /* first body byte, inside buf */
	size_t           len;     /* body length */
	uint8_t         *buf;     /* storage holding the body */
	size_t           cap;     /* bytes of storage at buf */
	uint64_t         token;   /* request token (iok_request / iok_reply) */
	uint32_t         pipe;    /* pipe id the message came on / should go to */
	int32_t          status;  /* 0, or IOK_E* for a kernel-made completion */
	uint32_t         flags;   /* IK_MSG_* */
	uint32_t         session; /* affinity session (pipelined-db), 0 = none */
	uint32_t         hdr_len;
	iok_msg         *origin; /* a view: whose storage body points into, else NULL */
	_Atomic uint32_t refs;   /* holders of this message, + views of it */
	/* Where this struct's block came from: a small class (>= 0, msgpool.h), -1
	 * malloc, or a big block (bigpool.h) of class -2 - klass. */
	int8_t  klass;
	int8_t  buf_big; /* storage apart from the struct: its big class, or -1 */
	uint8_t hdr[IOK_MSG_HEADER_MAX];
	/* inline storage follows when buf == (uint8_t *) (msg + 1) */
};

/* ik_msg_alloc is iok_msg_alloc returning NULL on failure. */
iok_msg *ik_msg_alloc(size_t size);
/* ik_msg_adopt makes a message whose body is [off, off+len) of a malloc'd
 * buffer of cap bytes, taking ownership of the buffer (no copy).  On failure
 * the buffer is NOT freed. */
iok_msg *ik_msg_adopt(uint8_t *buf, size_t cap, size_t off, size_t len);
/* ik_msg_adopt_big: ik_msg_adopt of a block of big class c (bigpool.h),
 * which goes back to the big pool when the message is freed. */
iok_msg *ik_msg_adopt_big(uint8_t *buf, int c, size_t off, size_t len);
/* ik_msg_release frees a message made by ik_msg_adopt but not its buffer,
 * which goes back to whoever gave it (a failed iok_send IOK_FLAG_ALLOC). */
void ik_msg_release(iok_msg *m);
/* Fork handlers hold the recycling pool's lock across fork(). */
void ik_msg_pool_lock(void);
void ik_msg_pool_unlock(void);
void ik_msg_pool_fork_child(void);
/* ik_msg_ref adds a read-only holder of m (see above); returns m.  Each
 * holder lets go with iok_msg_free.  Any thread. */
iok_msg *ik_msg_ref(iok_msg *m);
/* ik_msg_private turns the caller's reference to m into a message of its
 * own: m itself when nobody else holds it, else a view of it.  NULL when
 * out of memory (the caller still holds m). */
iok_msg *ik_msg_private(iok_msg *m);
/* ik_msg_writable gives m storage of its own (copying a shared body), so
 * its body bytes may be written in place.  0 or IOK_ENOMEM. */
int ik_msg_writable(iok_msg *m);
/* ik_msg_error makes an empty message completing request token with err. */
iok_msg *ik_msg_error(uint64_t token, int err);
/* Move the header into the front of the body (inproc hand-over: the peer
 * pattern reads headers from the body, as off the wire). */
int ik_msg_header_to_body(iok_msg *m);

static inline uint32_t
ik_get_u32(const uint8_t *p)
{
	return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8) | p[3];
}
static inline void
ik_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t) (v >> 24);
	p[1] = (uint8_t) (v >> 16);
	p[2] = (uint8_t) (v >> 8);
	p[3] = (uint8_t) v;
}
static inline uint64_t
ik_get_u64(const uint8_t *p)
{
	return ((uint64_t) ik_get_u32(p) << 32) | ik_get_u32(p + 4);
}
static inline void
ik_put_u64(uint8_t *p, uint64_t v)
{
	ik_put_u32(p, (uint32_t) (v >> 32));
	ik_put_u32(p + 4, (uint32_t) v);
}

#endif
