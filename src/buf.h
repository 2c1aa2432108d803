/*
 * buf.h - a growable byte buffer, used by codecs to queue output bytes and
 * by pipes to hold input.  Kernel thread only (no locks).
 */
#ifndef IK_BUF_H
#define IK_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct ik_buf {
	uint8_t *data;
	size_t   len; /* bytes in use */
	size_t   cap; /* bytes allocated */
} ik_buf;

void ik_buf_init(ik_buf *b);
void ik_buf_fini(ik_buf *b);
/* ik_buf_reserve makes room for n more bytes; 0 or IOK_ENOMEM. */
int ik_buf_reserve(ik_buf *b, size_t n);
/* ik_buf_append copies n bytes onto the end; 0 or IOK_ENOMEM. */
int ik_buf_append(ik_buf *b, const void *p, size_t n);
/* ik_buf_consume drops n bytes from the front. */
void ik_buf_consume(ik_buf *b, size_t n);
/* ik_buf_printf appends printf-formatted text, at most IK_BUF_PRINTF_MAX
 * bytes of it (the rest is cut): the debug and export texts are built
 * from short lines.  Out of memory drops the text. */
#define IK_BUF_PRINTF_MAX 511
void ik_buf_printf(ik_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
