/*
 * resp.h - the Redis wire codec (RESP2 and RESP3), sans-I/O.
 *
 * Three pieces, all pure functions over byte buffers:
 *   - a framer (ik_resp_parser) that finds where one reply ends, fed a
 *     growing buffer without re-scanning what it has already seen;
 *   - an iterator (ik_resp_iter) that walks a complete frame item by item
 *     in pre-order, for bindings that turn replies into objects;
 *   - a formatter for commands (arrays of bulk strings) and a checker that
 *     a buffer is exactly one such command.
 * No allocation except ik_resp_format_argv's output; no locks.
 *
 * A frame is one top-level reply; an attribute ('|') and the reply that
 * follows it are one frame.
 */
#ifndef IK_RESP_H
#define IK_RESP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../src/buf.h"
#include "transport.h"

/* Nesting: aggregates inside aggregates, the top one at depth 1. */
#define IK_RESP_DEPTH_DEFAULT 64
#define IK_RESP_DEPTH_MAX 128 /* hard cap (sizes the fixed stacks) */
/* Largest element count of one aggregate (map/attribute: pairs). */
#define IK_RESP_ELEMS_MAX (1u << 24)

/* Item types: the RESP type byte itself. */
typedef enum ik_resp_type {
	IK_RESP_SIMPLE   = '+', /* simple string */
	IK_RESP_ERROR    = '-', /* simple error */
	IK_RESP_INTEGER  = ':',
	IK_RESP_BULK     = '$', /* bulk string; null = $-1 */
	IK_RESP_ARRAY    = '*', /* null = *-1 */
	IK_RESP_NULL     = '_',
	IK_RESP_MAP      = '%', /* count = pairs */
	IK_RESP_SET      = '~',
	IK_RESP_DOUBLE   = ',',
	IK_RESP_BOOL     = '#',
	IK_RESP_BIGNUM   = '(',
	IK_RESP_VERBATIM = '=',
	IK_RESP_PUSH     = '>',
	IK_RESP_ATTR     = '|', /* count = pairs; the value it annotates follows
	                           its pairs, at the attribute's own depth */
	IK_RESP_BLOBERR  = '!'  /* blob (bulk) error */
} ik_resp_type;

/* One decoded item.  str points into the frame (not NUL-terminated). */
typedef struct ik_resp_item {
	ik_resp_type   type;
	int            null;  /* $-1, *-1 or _ */
	unsigned       depth; /* 0 = top of the frame */
	const uint8_t *str;   /* + - $ ! ( , and = (text after "fmt:") */
	size_t         len;
	char           fmt[4]; /* verbatim format, e.g. "txt", NUL-terminated */
	int64_t        i;      /* integer */
	double         d;      /* double */
	int            b;      /* boolean: 0 or 1 */
	size_t         count;  /* aggregates: elements; map/attribute: pairs */
} ik_resp_item;

/* Elements still owed at each open level (shared by parser and iterator). */
typedef struct ik_resp_nest {
	unsigned depth;
	uint64_t pending; /* sum of left[0..depth] */
	uint32_t left[IK_RESP_DEPTH_MAX + 1];
} ik_resp_nest;

/* The incremental framer.  Holds no pointers into the buffer, only offsets
 * from its start, which is always the start of the frame being read. */
typedef struct ik_resp_parser {
	size_t       max;       /* largest frame (from recv_max) */
	unsigned     max_depth; /* deepest nesting allowed */
	int          state;
	uint8_t      btype;  /* inside a bulk: its type byte */
	size_t       pos;    /* start of the next item or line */
	size_t       scan;   /* [pos, scan) of a line holds no CR/LF */
	size_t       bstart; /* inside a bulk: payload start */
	size_t       bend;   /* inside a bulk: offset of its CR */
	ik_resp_nest nest;
} ik_resp_parser;

/* ik_resp_parser_init: recv_max 0 = no limit (a sanity cap still applies),
 * max_depth 0 = IK_RESP_DEPTH_DEFAULT (capped at IK_RESP_DEPTH_MAX). */
void ik_resp_parser_init(ik_resp_parser *p, size_t recv_max, unsigned max_depth);
/* ik_resp_parser_reset forgets a partial frame (keeps the limits). */
void ik_resp_parser_reset(ik_resp_parser *p);
/* ik_resp_parse looks at buf, which starts at the first byte of a frame
 * and only grows between calls returning 0.  Returns the frame's length
 * when complete (and resets for the next frame), 0 if more bytes are
 * needed, -IOK_EMSGSIZE as soon as the frame must exceed recv_max, or
 * -IOK_EPROTO if malformed.  On 0, *need is a lower bound on the frame's
 * total length when one is known beyond len (inside a bulk payload; exact
 * if that bulk ends the frame), else 0. */
ssize_t ik_resp_parse(ik_resp_parser *p, const uint8_t *buf, size_t len, size_t *need);

/* The iterator over one complete frame at the start of buf. */
typedef struct ik_resp_iter {
	const uint8_t *buf;
	size_t         len;
	size_t         pos; /* after the last item returned; after the
	                       frame once ik_resp_iter_next returned 0 */
	int            done;
	ik_resp_nest   nest;
} ik_resp_iter;

void ik_resp_iter_init(ik_resp_iter *it, const uint8_t *buf, size_t len);
/* ik_resp_iter_next returns 1 and fills *out with the next item in
 * pre-order, 0 once the frame's top-level value is complete (bytes after
 * it are not looked at: it->pos is the frame's length), or -IOK_EPROTO if
 * the bytes are malformed, truncated or nested deeper than
 * IK_RESP_DEPTH_MAX.  Never reads outside [buf, buf + len). */
int ik_resp_iter_next(ik_resp_iter *it, ik_resp_item *out);

/* ik_resp_top fills *out with the frame's top-level value, skipping any
 * attributes before it.  1 on success, -IOK_EPROTO if malformed. */
int ik_resp_top(const uint8_t *buf, size_t len, ik_resp_item *out);

/* ik_resp_argv_size sets *size to the exact number of bytes
 * ik_resp_format_argv appends for these arguments.  0, IOK_EINVAL or
 * IOK_ENOMEM (too big to address), as ik_resp_format_argv. */
int ik_resp_argv_size(int argc, const char *const *argv, const size_t *lens, size_t *size);

/* ik_resp_format_argv appends "*argc\r\n" and one "$len\r\narg\r\n" per
 * argument to out.  lens may be NULL (then each argv[i] is a C string).
 * 0, IOK_EINVAL (argc < 1) or IOK_ENOMEM; out is unchanged on error. */
int ik_resp_format_argv(ik_buf *out, int argc, const char *const *argv, const size_t *lens);

/* ik_resp_is_command returns 1 if buf is exactly one non-empty array of
 * non-null bulk strings, else 0. */
int ik_resp_is_command(const uint8_t *buf, size_t len);

/* ---------------------------------------------------- the redis transport */

/* Defined in redis.c. */
extern const ik_transport ik_tran_redis;      /* "redis", TCP, 6379 */
extern const ik_transport ik_tran_redis_unix; /* "redis+unix" */

/* Server roles reported by HELLO. */
#define IK_REDIS_ROLE_UNKNOWN 0
#define IK_REDIS_ROLE_PRIMARY 1
#define IK_REDIS_ROLE_REPLICA 2

/* ik_redis_protocol returns 2 or 3: the RESP version the connection speaks
 * (3 until the handshake shows otherwise). */
int ik_redis_protocol(void *st);
/* ik_redis_role returns IK_REDIS_ROLE_*, from the HELLO reply (RESP3 or a
 * HELLO-capable server only). */
int ik_redis_role(void *st);

#endif /* IK_RESP_H */
