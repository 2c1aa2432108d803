/*
 * resp_api.c - the public RESP calls of iok.h (iok_resp_command,
 * iok_resp_reader), thin wrappers over the Redis transport's own codec
 * (transports/resp.h), so what the kernel frames and what an application
 * or binding reads agree byte for byte.
 */
#include <stddef.h>
#include <string.h>

#include "iok.h"
#include "msg.h"
#include "transports/resp.h"

/* iok_resp_reader mirrors ik_resp_iter field for field, so a reader is
 * handed to the codec as its iterator without copying.  Its fields are
 * only ever accessed through ik_resp_iter (in resp.c); these checks keep
 * the two layouts from drifting apart. */
#define SAME_FIELD(a, b)                                                                          \
	_Static_assert(offsetof(iok_resp_reader, a) == offsetof(ik_resp_iter, b) &&               \
	                   sizeof(((iok_resp_reader *) 0)->a) == sizeof(((ik_resp_iter *) 0)->b), \
	    "iok_resp_reader." #a " != ik_resp_iter." #b)
SAME_FIELD(buf_, buf);
SAME_FIELD(len_, len);
SAME_FIELD(pos_, pos);
SAME_FIELD(done_, done);
SAME_FIELD(nest_, nest);
SAME_FIELD(nest_.depth_, nest.depth);
SAME_FIELD(nest_.pending_, nest.pending);
SAME_FIELD(nest_.left_, nest.left);
_Static_assert(sizeof(iok_resp_reader) == sizeof(ik_resp_iter), "reader size");
_Static_assert(_Alignof(iok_resp_reader) == _Alignof(ik_resp_iter), "reader alignment");
_Static_assert(IOK_RESP_DEPTH_MAX == IK_RESP_DEPTH_MAX, "depth");
#define SAME_TYPE(x) _Static_assert((int) IOK_RESP_##x == (int) IK_RESP_##x, "type " #x)
SAME_TYPE(SIMPLE);
SAME_TYPE(ERROR);
SAME_TYPE(INTEGER);
SAME_TYPE(BULK);
SAME_TYPE(ARRAY);
SAME_TYPE(NULL);
SAME_TYPE(MAP);
SAME_TYPE(SET);
SAME_TYPE(DOUBLE);
SAME_TYPE(BOOL);
SAME_TYPE(BIGNUM);
SAME_TYPE(VERBATIM);
SAME_TYPE(PUSH);
SAME_TYPE(ATTR);
SAME_TYPE(BLOBERR);

int
iok_resp_command(iok_msg **mp, int argc, const char *const *argv, const size_t *lens)
{
	iok_msg *m;
	size_t   size;
	int      rv;

	if (mp == NULL) {
		return IOK_EINVAL;
	}
	if ((rv = ik_resp_argv_size(argc, argv, lens, &size)) != 0) {
		return rv;
	}
	if ((m = ik_msg_alloc(size)) == NULL) {
		return IOK_ENOMEM;
	}
	/* The body as a full-capacity buffer: the formatter's reservation is
	 * exactly size bytes, so it never reallocates the message's storage. */
	ik_buf view = { .data = m->body, .len = 0, .cap = size };
	if ((rv = ik_resp_format_argv(&view, argc, argv, lens)) != 0 || view.data != m->body ||
	    view.len != size) {
		iok_msg_free(m);
		return rv != 0 ? rv : IOK_EINTERNAL;
	}
	*mp = m;
	return 0;
}

void
iok_resp_reader_init(iok_resp_reader *r, const void *buf, size_t len)
{
	ik_resp_iter_init((ik_resp_iter *) r, buf, len);
}

int
iok_resp_next(iok_resp_reader *r, iok_resp_item *it)
{
	ik_resp_iter *i = (ik_resp_iter *) r;
	ik_resp_item  t;
	int           rv = ik_resp_iter_next(i, &t);

	if (rv != 1) {
		/* One reply, exactly: trailing bytes are as wrong as missing ones. */
		return rv == 0 && i->pos != i->len ? -IOK_EPROTO : rv;
	}
	it->type    = (int) t.type;
	it->null    = t.null;
	it->depth   = t.depth;
	it->str     = t.str;
	it->len     = t.len;
	it->integer = t.i;
	it->dval    = t.d;
	it->boolean = t.b;
	it->count   = t.count;
	memcpy(it->fmt, t.fmt, sizeof(it->fmt));
	return 1;
}
