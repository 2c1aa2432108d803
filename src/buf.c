/* buf.c - growable byte buffer. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "iok.h"

void
ik_buf_init(ik_buf *b)
{
	b->data = NULL;
	b->len  = 0;
	b->cap  = 0;
}

void
ik_buf_fini(ik_buf *b)
{
	free(b->data);
	ik_buf_init(b);
}

int
ik_buf_reserve(ik_buf *b, size_t n)
{
	if (b->cap - b->len >= n) {
		return 0;
	}
	if (n > SIZE_MAX / 2 - b->len) {
		return IOK_ENOMEM;
	}
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->len < n) {
		cap *= 2;
	}
	uint8_t *d = realloc(b->data, cap);
	if (d == NULL) {
		return IOK_ENOMEM;
	}
	b->data = d;
	b->cap  = cap;
	return 0;
}

int
ik_buf_append(ik_buf *b, const void *p, size_t n)
{
	int rv = ik_buf_reserve(b, n);
	if (rv == 0 && n > 0) {
		memcpy(b->data + b->len, p, n);
		b->len += n;
	}
	return rv;
}

void
ik_buf_consume(ik_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

void
ik_buf_printf(ik_buf *b, const char *fmt, ...)
{
	char    tmp[IK_BUF_PRINTF_MAX + 1];
	va_list ap;
	int     n;
	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0) {
		(void) ik_buf_append(
		    b, tmp, (size_t) n < sizeof(tmp) ? (size_t) n : sizeof(tmp) - 1);
	}
}
