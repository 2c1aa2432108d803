/*
 * pg_api.c - the public PostgreSQL request builder (iok's compact request
 * encoding, transports/pg_codec.h) and the reply reader.  Pure functions
 * on messages and bytes; any thread.
 */
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "transports/pg_codec.h"

int
iok_pg_query_new(iok_msg **mp, const char *sql, size_t sql_len)
{
	iok_msg *m;
	uint8_t *b;

	if (mp == NULL || sql == NULL || memchr(sql, 0, sql_len) != NULL ||
	    sql_len > UINT32_MAX - 64) {
		return IOK_EINVAL;
	}
	if ((m = ik_msg_alloc(IK_PG_EXT_HDR + sql_len)) == NULL) {
		return IOK_ENOMEM;
	}
	b = m->body;
	memcpy(b, IK_PG_MAGIC_EXT, IK_PG_MAGIC_LEN);
	ik_pg_put_u16(b + 4, 0);
	ik_pg_put_u32(b + 6, (uint32_t) sql_len);
	memcpy(b + IK_PG_EXT_HDR, sql, sql_len);
	*mp = m;
	return 0;
}

int
iok_pg_query_param(iok_msg *m, uint32_t oid, int format, const void *data, int32_t len)
{
	uint8_t  p[9];
	uint16_t n;
	int      rv;

	if (m == NULL || m->len < IK_PG_EXT_HDR ||
	    memcmp(m->body, IK_PG_MAGIC_EXT, IK_PG_MAGIC_LEN) != 0 ||
	    (format != IOK_PG_TEXT && format != IOK_PG_BINARY) || len < -1 ||
	    (len > 0 && data == NULL)) {
		return IOK_EINVAL;
	}
	if ((n = ik_pg_u16(m->body + 4)) == IK_PG_MAX_PARAMS) {
		return IOK_EINVAL;
	}
	ik_pg_put_u32(p, oid);
	p[4] = (uint8_t) format;
	ik_pg_put_u32(p + 5, (uint32_t) len);
	if ((rv = iok_msg_append(m, p, sizeof(p))) != 0) {
		return rv;
	}
	if (len > 0 && (rv = iok_msg_append(m, data, (size_t) len)) != 0) {
		(void) iok_msg_chop(m, sizeof(p)); /* the message stays as it was */
		return rv;
	}
	ik_pg_put_u16(m->body + 4, (uint16_t) (n + 1));
	return 0;
}

int
iok_pg_simple_query(iok_msg **mp, const char *sql, size_t sql_len)
{
	iok_msg *m;

	if (mp == NULL || sql == NULL || memchr(sql, 0, sql_len) != NULL ||
	    sql_len > UINT32_MAX - 64) {
		return IOK_EINVAL;
	}
	if ((m = ik_msg_alloc(8 + sql_len)) == NULL) {
		return IOK_ENOMEM;
	}
	memcpy(m->body, IK_PG_MAGIC_SIMPLE, IK_PG_MAGIC_LEN);
	ik_pg_put_u32(m->body + 4, (uint32_t) sql_len);
	memcpy(m->body + 8, sql, sql_len);
	*mp = m;
	return 0;
}

/* ------------------------------------------------------------- reader */

enum { R_MSG = 0, R_COLS, R_FIELDS };

void
iok_pg_reader_init(iok_pg_reader *r, const void *buf, size_t len)
{
	memset(r, 0, sizeof(*r));
	r->buf_ = buf;
	r->len_ = buf != NULL ? len : 0;
}

/* cstr takes a NUL-terminated string at *off inside [.., end). */
static const char *
cstr(const iok_pg_reader *r, size_t *off)
{
	const uint8_t *z;
	if (*off >= r->end_ || (z = memchr(r->buf_ + *off, 0, r->end_ - *off)) == NULL) {
		return NULL;
	}
	const char *s = (const char *) r->buf_ + *off;
	*off          = (size_t) (z - r->buf_) + 1;
	return s;
}

static uint64_t
tag_rows(const char *tag)
{
	const char *sp = strrchr(tag, ' ');
	uint64_t    n  = 0;
	if (sp == NULL || sp[1] == '\0') {
		return 0;
	}
	for (const char *c = sp + 1; *c; c++) {
		if (*c < '0' || *c > '9') {
			return 0;
		}
		n = n * 10 + (uint64_t) (*c - '0');
	}
	return n;
}

static int
err_fields(iok_pg_reader *r, size_t off, iok_pg_item *it)
{
	while (off < r->end_ && r->buf_[off] != 0) {
		char        code = (char) r->buf_[off++];
		const char *v    = cstr(r, &off);
		if (v == NULL) {
			return -IOK_EPROTO;
		}
		switch (code) {
		case 'S':
			it->severity_z = it->severity_z ? it->severity_z : v;
			break;
		case 'V':
			it->severity_z = v;
			break; /* never localised */
		case 'C':
			it->sqlstate_z = v;
			break;
		case 'M':
			it->message_z = v;
			break;
		case 'D':
			it->detail_z = v;
			break;
		case 'H':
			it->hint_z = v;
			break;
		case 'P':
			it->position_z = v;
			break;
		case 'W':
			it->where_z = v;
			break;
		case 's':
			it->schema_z = v;
			break;
		case 't':
			it->table_z = v;
			break;
		case 'c':
			it->column_z = v;
			break;
		case 'n':
			it->constraint_z = v;
			break;
		default:
			break;
		}
	}
	return off + 1 == r->end_ ? 1 : -IOK_EPROTO;
}

int
iok_pg_next(iok_pg_reader *r, iok_pg_item *it)
{
	if (r == NULL || it == NULL) {
		return -IOK_EINVAL;
	}
	memset(it, 0, sizeof(*it));
	for (;;) {
		if (r->state_ == R_COLS || r->state_ == R_FIELDS) {
			uint32_t total = ik_pg_u16(r->buf_ + r->pos_ + 5);
			if (r->left_ == 0) {
				if (r->sub_ != r->end_) {
					return -IOK_EPROTO; /* bytes after the last one */
				}
				r->state_ = R_MSG;
				r->pos_   = r->end_;
				continue;
			}
			size_t off = r->sub_;
			it->index  = total - r->left_;
			if (r->state_ == R_COLS) {
				it->kind = IOK_PG_COLUMN;
				if ((it->name_z = cstr(r, &off)) == NULL || r->end_ - off < 18) {
					return -IOK_EPROTO;
				}
				it->oid    = ik_pg_u32(r->buf_ + off + 6);
				it->typmod = (int32_t) ik_pg_u32(r->buf_ + off + 12);
				it->format = ik_pg_u16(r->buf_ + off + 16);
				if (it->format > 1) {
					return -IOK_EPROTO;
				}
				off += 18;
			} else {
				it->kind = IOK_PG_FIELD;
				if (r->end_ - off < 4) {
					return -IOK_EPROTO;
				}
				it->len = (int32_t) ik_pg_u32(r->buf_ + off);
				off += 4;
				if (it->len < -1 ||
				    (it->len > 0 && (size_t) it->len > r->end_ - off)) {
					return -IOK_EPROTO;
				}
				if (it->len >= 0) {
					it->data = r->buf_ + off;
					off += (size_t) it->len;
				}
			}
			r->sub_ = off;
			r->left_--;
			return 1;
		}
		if (r->pos_ == r->len_) {
			return 0;
		}
		if (r->len_ - r->pos_ < 5) {
			return -IOK_EPROTO;
		}
		uint8_t  t = r->buf_[r->pos_];
		uint32_t L = ik_pg_u32(r->buf_ + r->pos_ + 1);
		if (L < 4 || (size_t) L > r->len_ - r->pos_ - 1) {
			return -IOK_EPROTO;
		}
		r->end_    = r->pos_ + 1 + L;
		size_t off = r->pos_ + 5;
		size_t bl  = L - 4;
		switch (t) {
		case 'T':
		case 'D':
			if (bl < 2) {
				return -IOK_EPROTO;
			}
			it->kind  = t == 'T' ? IOK_PG_COLUMNS : IOK_PG_ROW;
			it->count = ik_pg_u16(r->buf_ + off);
			r->left_  = it->count;
			r->sub_   = off + 2;
			r->state_ = t == 'T' ? R_COLS : R_FIELDS;
			return 1;
		case 'n':
			it->kind = IOK_PG_NODATA;
			break;
		case 'I':
			it->kind = IOK_PG_EMPTY;
			break;
		case 'C':
			it->kind = IOK_PG_COMPLETE;
			if ((it->tag_z = cstr(r, &off)) == NULL || off != r->end_) {
				return -IOK_EPROTO;
			}
			it->rows = tag_rows(it->tag_z);
			break;
		case 'E':
		case 'N': {
			int rv;
			it->kind = t == 'E' ? IOK_PG_ERROR : IOK_PG_NOTICE;
			if ((rv = err_fields(r, off, it)) < 0) {
				return rv;
			}
			break;
		}
		case 'A': {
			const char *payload;
			if (bl < 4) {
				return -IOK_EPROTO;
			}
			it->kind = IOK_PG_NOTIFY;
			it->pid  = ik_pg_u32(r->buf_ + off);
			off += 4;
			if ((it->name_z = cstr(r, &off)) == NULL ||
			    (payload = cstr(r, &off)) == NULL || off != r->end_) {
				return -IOK_EPROTO;
			}
			it->data = (const uint8_t *) payload;
			it->len  = (int32_t) strlen(payload);
			break;
		}
		case 'Z':
			if (bl != 1) {
				return -IOK_EPROTO;
			}
			it->kind   = IOK_PG_READY;
			it->status = (char) r->buf_[off];
			break;
		default:
			if (!ik_pg_backend_type_ok(t)) {
				return -IOK_EPROTO;
			}
			r->pos_ = r->end_; /* ParseComplete, BindComplete... */
			continue;
		}
		r->pos_ = r->end_;
		return 1;
	}
}
