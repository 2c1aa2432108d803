/* msg.c - messages (see msg.h) and the public iok_msg_* functions. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "bigpool.h"
#include "msg.h"
#include "msgpool.h"

static inline int
is_inline(const iok_msg *m)
{
	return m->buf == (const uint8_t *) (m + 1);
}

/* Small messages are recycled across threads (msgpool.c): one class per
 * largest body (the last class, IK_POOL_VIEW, is for views). */
#define NBODY_CLASSES 3
static const size_t class_body[NBODY_CLASSES] = { 64, 256, 2048 };

static size_t
class_size(int c)
{
	return sizeof(iok_msg) + IK_MSG_HEADROOM + class_body[c];
}

iok_msg *
ik_msg_alloc(size_t size)
{
	iok_msg *m  = NULL;
	int      cl = -1;
	if (size > SIZE_MAX - sizeof(iok_msg) - IK_MSG_HEADROOM) {
		return NULL;
	}
#ifndef IK_NO_RECYCLE
	for (int c = 0; c < NBODY_CLASSES; c++) {
		if (size <= class_body[c]) {
			cl = c;
			break;
		}
	}
#endif
	size_t whole = sizeof(*m) + IK_MSG_HEADROOM + size;
	int    bc    = cl < 0 ? ik_big_class(whole) : -1;
	if (cl >= 0) {
		m     = ik_pool_get(cl, class_size(cl));
		whole = class_size(cl);
	} else if (bc >= 0) {
		m     = ik_big_get(bc);
		whole = ik_big_cap(bc);
		cl    = -2 - bc;
	} else {
		m = malloc(whole);
	}
	if (m == NULL) {
		return NULL;
	}
	m->buf     = (uint8_t *) (m + 1);
	m->cap     = whole - sizeof(*m);
	m->body    = m->buf + IK_MSG_HEADROOM;
	m->len     = size;
	m->token   = 0;
	m->pipe    = 0;
	m->status  = 0;
	m->flags   = 0;
	m->session = 0;
	m->hdr_len = 0;
	m->origin  = NULL;
	atomic_init(&m->refs, 1);
	m->klass   = (int8_t) cl;
	m->buf_big = -1;
	return m;
}

iok_msg *
ik_msg_adopt(uint8_t *buf, size_t cap, size_t off, size_t len)
{
	iok_msg *m = malloc(sizeof(*m));
	if (m == NULL) {
		return NULL;
	}
	memset(m, 0, offsetof(iok_msg, hdr));
	atomic_init(&m->refs, 1);
	m->klass   = -1;
	m->buf_big = -1;
	m->buf     = buf;
	m->cap     = cap;
	m->body    = buf + off;
	m->len     = len;
	return m;
}

iok_msg *
ik_msg_adopt_big(uint8_t *buf, int c, size_t off, size_t len)
{
	iok_msg *m = ik_msg_adopt(buf, ik_big_cap(c), off, len);
	if (m != NULL) {
		m->buf_big = (int8_t) c;
	}
	return m;
}

/* Give back storage held apart from the message struct. */
static void
storage_free(iok_msg *m)
{
	if (m->buf_big >= 0) {
		ik_big_put(m->buf_big, m->buf);
	} else {
		free(m->buf);
	}
}

void
ik_msg_release(iok_msg *m)
{
	free(m); /* adopted: klass -1, never recycled */
}

iok_msg *
ik_msg_error(uint64_t token, int err)
{
	iok_msg *m = ik_msg_alloc(0);
	if (m != NULL) {
		m->token  = token;
		m->status = err;
	}
	return m;
}

int
iok_msg_alloc(iok_msg **mp, size_t size)
{
	return (*mp = ik_msg_alloc(size)) == NULL ? IOK_ENOMEM : 0;
}

void
iok_msg_free(iok_msg *m)
{
	if (m == NULL) {
		return;
	}
	/* A sole holder skips the locked decrement: nobody else can add a
	 * holder (only holders do).  The acquire pairs with the release of
	 * the other holders' decrements, so their reads of the body are done
	 * before it is freed or reused. */
	if (atomic_load_explicit(&m->refs, memory_order_acquire) != 1 &&
	    atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1) {
		return;
	}
	if (m->origin != NULL) {
		iok_msg_free(m->origin); /* a view lets go of the storage */
	} else if (!is_inline(m)) {
		storage_free(m);
	}
	if (m->klass >= 0) {
		ik_pool_put(m->klass, m);
	} else if (m->klass <= -2) {
		ik_big_put(-2 - m->klass, m);
	} else {
		free(m);
	}
}

iok_msg *
ik_msg_ref(iok_msg *m)
{
	atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
	return m;
}

/* Bytes of storage m's own allocation has after its header. */
static size_t
own_room(const iok_msg *m)
{
	return m->klass >= 0 && m->klass < NBODY_CLASSES ? class_size(m->klass) - sizeof(*m) : 0;
}

/* Is m's storage read by someone else too (other holders or views)? */
static bool
storage_shared(const iok_msg *m)
{
	const iok_msg *o = m->origin != NULL ? m->origin : m;
	return atomic_load_explicit(&((iok_msg *) o)->refs, memory_order_acquire) != 1;
}

iok_msg *
ik_msg_private(iok_msg *m)
{
	iok_msg *v;
	if (atomic_load_explicit(&m->refs, memory_order_acquire) == 1) {
		return m;
	}
	/* A small body's view comes with room for it, so the copy made if it
	 * is ever written (on the receiving thread) needs no allocation. */
	int cl = -1;
#ifndef IK_NO_RECYCLE
	cl = IK_POOL_VIEW;
	for (int c = 0; c < NBODY_CLASSES; c++) {
		if (m->len <= class_body[c]) {
			cl = c;
			break;
		}
	}
	v = ik_pool_get(cl, cl == IK_POOL_VIEW ? sizeof(*v) : class_size(cl));
#else
	v = malloc(sizeof(*v));
#endif
	if (v == NULL) {
		return NULL;
	}
	/* Everything but the storage is the view's own; the caller's
	 * reference to m becomes the view's reference to its origin (a view
	 * of a view points at the first one's origin). */
	v->body    = m->body;
	v->len     = m->len;
	v->buf     = m->buf;
	v->cap     = m->cap;
	v->token   = m->token;
	v->pipe    = m->pipe;
	v->status  = m->status;
	v->flags   = m->flags;
	v->session = m->session;
	v->hdr_len = m->hdr_len;
	memcpy(v->hdr, m->hdr, m->hdr_len);
	atomic_init(&v->refs, 1);
	v->klass   = (int8_t) cl;
	v->buf_big = -1; /* the storage is the origin's to free */
	if (m->origin != NULL) {
		v->origin = ik_msg_ref(m->origin);
		iok_msg_free(m);
	} else {
		v->origin = m;
	}
	return v;
}

/* ensure makes room for `front` bytes before and `back` bytes after the
 * body.  Slack grows with the body, so repeated appends or prepends cost
 * amortised O(1); if the buffer is big enough the body just moves. */
static int
ensure(iok_msg *m, size_t front, size_t back)
{
	size_t head   = (size_t) (m->body - m->buf);
	size_t tail   = m->cap - head - m->len;
	bool   shared = storage_shared(m);
	if (!shared && head >= front && tail >= back) {
		return 0;
	}
	if (m->len > SIZE_MAX / 4 || back > SIZE_MAX / 4 || front > SIZE_MAX / 4) {
		return IOK_ENOMEM;
	}
	size_t nhead = front + IK_MSG_HEADROOM + (front > 0 ? m->len / 2 : 0);
	size_t ntail = back + (back > 0 ? m->len / 2 : 0);
	size_t need  = nhead + m->len + ntail;
	if (!shared && need <= m->cap) {
		memmove(m->buf + nhead, m->body, m->len);
		m->body = m->buf + nhead;
		return 0;
	}
	uint8_t *nb;
	size_t   ncap = need;
	int      bc   = -1;
	if (m->origin != NULL && own_room(m) > 0 && front + m->len + back <= own_room(m)) {
		/* A view's own room (ik_msg_private), sized for its body and
		 * the usual headroom but not for the slack above: the body
		 * goes as far back as `back` allows, the rest is headroom.
		 * (An inproc hand-over writes a header in front of a view:
		 * with a malloc here, freed on the receiving thread, a req's
		 * requests as views ran at half the rate of plain copies.) */
		nb    = (uint8_t *) (m + 1);
		ncap  = own_room(m);
		nhead = ncap - back - m->len;
	} else if ((bc = ik_big_class(need)) >= 0) {
		if ((nb = ik_big_get(bc)) == NULL) {
			return IOK_ENOMEM;
		}
		ncap = ik_big_cap(bc);
	} else if ((nb = malloc(need)) == NULL) {
		return IOK_ENOMEM;
	}
	if (m->len > 0) {
		memcpy(nb + nhead, m->body, m->len);
	}
	if (m->origin != NULL) {
		/* A view copied what it read: the origin's storage is
		 * no longer needed here. */
		iok_msg_free(m->origin);
		m->origin = NULL;
	} else if (!is_inline(m)) {
		/* (Shared storage of a message that is not a view never gets
		 * here: holders of a shared message only read it.) */
		storage_free(m);
	}
	m->buf     = nb;
	m->cap     = ncap;
	m->body    = nb + nhead;
	m->buf_big = (int8_t) bc;
	return 0;
}

int
ik_msg_writable(iok_msg *m)
{
	return storage_shared(m) ? ensure(m, 0, 0) : 0;
}

int
iok_msg_realloc(iok_msg *m, size_t size)
{
	if (size > m->len) {
		int rv = ensure(m, 0, size - m->len);
		if (rv != 0) {
			return rv;
		}
	}
	m->len = size;
	return 0;
}

int
iok_msg_dup(iok_msg **dup, const iok_msg *m)
{
	iok_msg *d = ik_msg_alloc(m->len);
	if (d == NULL) {
		return IOK_ENOMEM;
	}
	if (m->len > 0) {
		memcpy(d->body, m->body, m->len);
	}
	memcpy(d->hdr, m->hdr, m->hdr_len);
	d->hdr_len = m->hdr_len;
	d->token   = m->token;
	d->pipe    = m->pipe;
	d->status  = m->status;
	d->flags   = m->flags;
	d->session = m->session;
	*dup       = d;
	return 0;
}

void *
iok_msg_body(iok_msg *m)
{
	return m->body;
}

size_t
iok_msg_len(const iok_msg *m)
{
	return m->len;
}

int
iok_msg_append(iok_msg *m, const void *data, size_t len)
{
	int rv = ensure(m, 0, len);
	if (rv == 0 && len > 0) {
		memcpy(m->body + m->len, data, len);
		m->len += len;
	}
	return rv;
}

int
iok_msg_insert(iok_msg *m, const void *data, size_t len)
{
	int rv = ensure(m, len, 0);
	if (rv == 0 && len > 0) {
		m->body -= len;
		m->len += len;
		memcpy(m->body, data, len);
	}
	return rv;
}

int
iok_msg_trim(iok_msg *m, size_t len)
{
	if (len > m->len) {
		return IOK_EINVAL;
	}
	m->body += len;
	m->len -= len;
	return 0;
}

int
iok_msg_chop(iok_msg *m, size_t len)
{
	if (len > m->len) {
		return IOK_EINVAL;
	}
	m->len -= len;
	return 0;
}

void
iok_msg_clear(iok_msg *m)
{
	m->len = 0;
}

void *
iok_msg_header(iok_msg *m)
{
	return m->hdr;
}

size_t
iok_msg_header_len(const iok_msg *m)
{
	return m->hdr_len;
}

int
iok_msg_header_append(iok_msg *m, const void *data, size_t len)
{
	if (len > IOK_MSG_HEADER_MAX - m->hdr_len) {
		return IOK_EMSGSIZE;
	}
	memcpy(m->hdr + m->hdr_len, data, len);
	m->hdr_len += (uint32_t) len;
	return 0;
}

int
iok_msg_header_insert(iok_msg *m, const void *data, size_t len)
{
	if (len > IOK_MSG_HEADER_MAX - m->hdr_len) {
		return IOK_EMSGSIZE;
	}
	memmove(m->hdr + len, m->hdr, m->hdr_len);
	memcpy(m->hdr, data, len);
	m->hdr_len += (uint32_t) len;
	return 0;
}

int
iok_msg_header_trim(iok_msg *m, size_t len)
{
	if (len > m->hdr_len) {
		return IOK_EINVAL;
	}
	memmove(m->hdr, m->hdr + len, m->hdr_len - len);
	m->hdr_len -= (uint32_t) len;
	return 0;
}

int
iok_msg_header_chop(iok_msg *m, size_t len)
{
	if (len > m->hdr_len) {
		return IOK_EINVAL;
	}
	m->hdr_len -= (uint32_t) len;
	return 0;
}

void
iok_msg_header_clear(iok_msg *m)
{
	m->hdr_len = 0;
}

uint32_t
iok_msg_get_pipe(const iok_msg *m)
{
	return m->pipe;
}

void
iok_msg_set_pipe(iok_msg *m, uint32_t pipe_id)
{
	m->pipe = pipe_id;
}

void
iok_msg_set_session(iok_msg *m, uint32_t session)
{
	m->session = session;
}

uint32_t
iok_msg_get_session(const iok_msg *m)
{
	return m->session;
}

int
iok_msg_is_push(const iok_msg *m)
{
	return (m->flags & IK_MSG_PUSH) != 0;
}

uint64_t
iok_msg_token(const iok_msg *m)
{
	return m->token;
}

int
iok_msg_status(const iok_msg *m)
{
	return m->status;
}

int
ik_msg_header_to_body(iok_msg *m)
{
	if (m->hdr_len == 0) {
		return 0;
	}
	int rv = iok_msg_insert(m, m->hdr, m->hdr_len);
	if (rv == 0) {
		m->hdr_len = 0;
	}
	return rv;
}

void *
iok_alloc(size_t size)
{
	return malloc(size ? size : 1);
}

void
iok_free(void *ptr, size_t size)
{
	(void) size;
	free(ptr);
}

void
iok_strfree(char *s)
{
	free(s);
}
