/* test_msg.c - messages, the ring queue and the handle table, on their own. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "handle.h"
#include "msgpool.h"
#include "msgq.h"

static void
test_body_edits(void **state)
{
	iok_msg *m;
	uint32_t v;
	(void) state;
	IOK_OK(iok_msg_alloc(&m, 0));
	assert_int_equal(iok_msg_len(m), 0);
	IOK_OK(iok_msg_append(m, "world", 5));
	IOK_OK(iok_msg_insert(m, "hello ", 6));
	assert_int_equal(iok_msg_len(m), 11);
	assert_memory_equal(iok_msg_body(m), "hello world", 11);
	IOK_OK(iok_msg_trim(m, 6));
	IOK_OK(iok_msg_chop(m, 2));
	assert_memory_equal(iok_msg_body(m), "wor", 3);
	assert_int_equal(iok_msg_trim(m, 4), IOK_EINVAL);
	assert_int_equal(iok_msg_chop(m, 4), IOK_EINVAL);
	IOK_OK(iok_msg_append_u32(m, 0x01020304));
	IOK_OK(iok_msg_insert_u32(m, 0xa0b0c0d0));
	IOK_OK(iok_msg_chop_u32(m, &v));
	assert_int_equal(v, 0x01020304);
	IOK_OK(iok_msg_trim_u32(m, &v));
	assert_int_equal(v, 0xa0b0c0d0);
	assert_memory_equal(iok_msg_body(m), "wor", 3);
	iok_msg_clear(m);
	assert_int_equal(iok_msg_len(m), 0);
	assert_int_equal(iok_msg_trim_u32(m, &v), IOK_EINVAL);
	iok_msg_free(m);
	iok_msg_free(NULL);
}

static void
test_growth(void **state)
{
	iok_msg *m, *d;
	(void) state;
	IOK_OK(iok_msg_alloc(&m, 3));
	memcpy(iok_msg_body(m), "abc", 3);
	/* Many appends and prepends: contents survive every move. */
	for (int i = 0; i < 10000; i++) {
		char c = (char) ('a' + i % 26);
		IOK_OK(iok_msg_append(m, &c, 1));
		IOK_OK(iok_msg_insert(m, &c, 1));
	}
	assert_int_equal(iok_msg_len(m), 20003);
	const char *b = iok_msg_body(m);
	for (int i = 0; i < 10000; i++) {
		char c = (char) ('a' + i % 26);
		assert_int_equal(b[10000 + 3 + i], c);
		assert_int_equal(b[9999 - i], c);
	}
	assert_memory_equal(b + 10000, "abc", 3);
	IOK_OK(iok_msg_realloc(m, 5));
	assert_int_equal(iok_msg_len(m), 5);
	IOK_OK(iok_msg_realloc(m, 1 << 20));
	assert_int_equal(iok_msg_len(m), 1 << 20);
	IOK_OK(iok_msg_header_append_u32(m, 7));
	IOK_OK(iok_msg_dup(&d, m));
	assert_int_equal(iok_msg_len(d), 1 << 20);
	assert_int_equal(iok_msg_header_len(d), 4);
	assert_memory_equal(iok_msg_body(d), iok_msg_body(m), 1 << 20);
	iok_msg_free(d);
	iok_msg_free(m);
}

static void
test_header(void **state)
{
	iok_msg *m;
	uint8_t  big[IOK_MSG_HEADER_MAX + 1] = { 0 };
	uint32_t v;
	(void) state;
	IOK_OK(iok_msg_alloc(&m, 0));
	assert_int_equal(iok_msg_header_len(m), 0);
	IOK_OK(iok_msg_header_append_u32(m, 2));
	IOK_OK(iok_msg_header_insert(m, "\0\0\0\1", 4));
	assert_int_equal(iok_msg_header_len(m), 8);
	IOK_OK(iok_msg_header_trim_u32(m, &v));
	assert_int_equal(v, 1);
	assert_int_equal(iok_msg_header_append(m, big, sizeof(big)), IOK_EMSGSIZE);
	assert_int_equal(iok_msg_header_trim(m, 5), IOK_EINVAL);
	IOK_OK(iok_msg_header_chop(m, 4));
	assert_int_equal(iok_msg_header_len(m), 0);
	iok_msg_set_pipe(m, 42);
	assert_int_equal(iok_msg_get_pipe(m), 42);
	assert_int_equal(iok_msg_token(m), 0);
	assert_int_equal(iok_msg_status(m), 0);
	iok_msg_free(m);
}

/* Every width at both ends of the body, the exact bytes on the wire
 * (big-endian, as nng), and the hostile cases: too short a body for the
 * integer, which must fail without touching the message. */
static void
test_body_ints(void **state)
{
	iok_msg *m;
	uint16_t v16;
	uint32_t v32;
	uint64_t v64;
	(void) state;
	IOK_OK(iok_msg_alloc(&m, 0));
	IOK_OK(iok_msg_append_u16(m, 0x0102));
	IOK_OK(iok_msg_append_u32(m, 0x03040506));
	IOK_OK(iok_msg_append_u64(m, 0x0708090a0b0c0d0eull));
	IOK_OK(iok_msg_insert_u16(m, 0xfffe));
	IOK_OK(iok_msg_insert_u32(m, 0xfdfcfbfa));
	IOK_OK(iok_msg_insert_u64(m, 0xf9f8f7f6f5f4f3f2ull));
	assert_int_equal(iok_msg_len(m), 28);
	assert_memory_equal(iok_msg_body(m),
	    "\xf9\xf8\xf7\xf6\xf5\xf4\xf3\xf2\xfd\xfc\xfb\xfa\xff\xfe"
	    "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e",
	    28);
	IOK_OK(iok_msg_trim_u64(m, &v64));
	assert_true(v64 == 0xf9f8f7f6f5f4f3f2ull);
	IOK_OK(iok_msg_trim_u32(m, &v32));
	assert_int_equal(v32, 0xfdfcfbfa);
	IOK_OK(iok_msg_trim_u16(m, &v16));
	assert_int_equal(v16, 0xfffe);
	IOK_OK(iok_msg_chop_u64(m, &v64));
	assert_true(v64 == 0x0708090a0b0c0d0eull);
	IOK_OK(iok_msg_chop_u32(m, &v32));
	assert_int_equal(v32, 0x03040506);
	IOK_OK(iok_msg_chop_u16(m, &v16));
	assert_int_equal(v16, 0x0102);
	assert_int_equal(iok_msg_len(m), 0);
	/* Truncated: 7 bytes hold no u64, 3 no u32, 1 no u16. */
	IOK_OK(iok_msg_append(m, "1234567", 7));
	assert_int_equal(iok_msg_trim_u64(m, &v64), IOK_EINVAL);
	assert_int_equal(iok_msg_chop_u64(m, &v64), IOK_EINVAL);
	assert_int_equal(iok_msg_len(m), 7);
	IOK_OK(iok_msg_trim(m, 4));
	assert_int_equal(iok_msg_trim_u32(m, &v32), IOK_EINVAL);
	assert_int_equal(iok_msg_chop_u32(m, &v32), IOK_EINVAL);
	IOK_OK(iok_msg_trim(m, 2));
	assert_int_equal(iok_msg_trim_u16(m, &v16), IOK_EINVAL);
	assert_int_equal(iok_msg_chop_u16(m, &v16), IOK_EINVAL);
	assert_int_equal(iok_msg_len(m), 1);
	assert_memory_equal(iok_msg_body(m), "7", 1);
	assert_int_equal(iok_msg_trim_u16(m, NULL), IOK_EINVAL);
	iok_msg_free(m);
}

static void
test_header_ints(void **state)
{
	iok_msg *m;
	uint16_t v16;
	uint32_t v32;
	uint64_t v64;
	(void) state;
	IOK_OK(iok_msg_alloc(&m, 0));
	IOK_OK(iok_msg_header_append_u16(m, 0x0102));
	IOK_OK(iok_msg_header_append_u32(m, 0x03040506));
	IOK_OK(iok_msg_header_append_u64(m, 0x0708090a0b0c0d0eull));
	IOK_OK(iok_msg_header_insert_u16(m, 0xfffe));
	IOK_OK(iok_msg_header_insert_u32(m, 0xfdfcfbfa));
	IOK_OK(iok_msg_header_insert_u64(m, 0xf9f8f7f6f5f4f3f2ull));
	assert_int_equal(iok_msg_header_len(m), 28);
	assert_memory_equal(iok_msg_header(m),
	    "\xf9\xf8\xf7\xf6\xf5\xf4\xf3\xf2\xfd\xfc\xfb\xfa\xff\xfe"
	    "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e",
	    28);
	assert_int_equal(iok_msg_len(m), 0); /* the body is untouched */
	IOK_OK(iok_msg_header_chop_u64(m, &v64));
	assert_true(v64 == 0x0708090a0b0c0d0eull);
	IOK_OK(iok_msg_header_chop_u32(m, &v32));
	assert_int_equal(v32, 0x03040506);
	IOK_OK(iok_msg_header_chop_u16(m, &v16));
	assert_int_equal(v16, 0x0102);
	IOK_OK(iok_msg_header_trim_u64(m, &v64));
	assert_true(v64 == 0xf9f8f7f6f5f4f3f2ull);
	IOK_OK(iok_msg_header_trim_u32(m, &v32));
	assert_int_equal(v32, 0xfdfcfbfa);
	IOK_OK(iok_msg_header_trim_u16(m, &v16));
	assert_int_equal(v16, 0xfffe);
	assert_int_equal(iok_msg_header_len(m), 0);
	/* Truncated headers. */
	assert_int_equal(iok_msg_header_trim_u16(m, &v16), IOK_EINVAL);
	IOK_OK(iok_msg_header_append(m, "abc", 3));
	assert_int_equal(iok_msg_header_trim_u32(m, &v32), IOK_EINVAL);
	assert_int_equal(iok_msg_header_chop_u32(m, &v32), IOK_EINVAL);
	assert_int_equal(iok_msg_header_chop_u64(m, &v64), IOK_EINVAL);
	assert_int_equal(iok_msg_header_len(m), 3);
	/* Oversized: the header holds at most IOK_MSG_HEADER_MAX bytes. */
	iok_msg_header_clear(m);
	for (int i = 0; i < IOK_MSG_HEADER_MAX / 8; i++) {
		IOK_OK(iok_msg_header_append_u64(m, (uint64_t) i));
	}
	assert_int_equal(iok_msg_header_append_u16(m, 1), IOK_EMSGSIZE);
	assert_int_equal(iok_msg_header_insert_u32(m, 1), IOK_EMSGSIZE);
	assert_int_equal(iok_msg_header_insert_u64(m, 1), IOK_EMSGSIZE);
	assert_int_equal(iok_msg_header_len(m), IOK_MSG_HEADER_MAX);
	IOK_OK(iok_msg_header_chop_u64(m, &v64));
	assert_true(v64 == IOK_MSG_HEADER_MAX / 8 - 1);
	iok_msg_free(m);
}

static void
test_msgq(void **state)
{
	ik_msgq q;
	(void) state;
	assert_int_equal(ik_msgq_init(&q, 3), 0);
	assert_int_equal(ik_msgq_room(&q), 4);
	/* Wrap the ring several times, then grow it while wrapped. */
	for (int round = 0; round < 5; round++) {
		for (int i = 0; i < 3; i++) {
			iok_msg *m = ik_msg_alloc(4);
			ik_put_u32(m->body, (uint32_t) (round * 10 + i));
			ik_msgq_push(&q, m);
		}
		for (int i = 0; i < 3; i++) {
			iok_msg *m = ik_msgq_pop(&q);
			assert_int_equal(ik_get_u32(m->body), round * 10 + i);
			iok_msg_free(m);
		}
	}
	for (int i = 0; i < 4; i++) {
		ik_msgq_push(&q, ik_msg_alloc(0));
	}
	iok_msg_free(ik_msgq_pop(&q));
	ik_msgq_push(&q, ik_msg_alloc(0));
	assert_int_equal(ik_msgq_reserve(&q, 100), 0);
	assert_true(ik_msgq_room(&q) >= 96);
	assert_int_equal(q.len, 4);
	assert_null(ik_msgq_pop(&(ik_msgq) { .len = 0 }));
	ik_msgq_fini(&q); /* frees what is left (ASan checks) */
}

static int destroyed;
static void
obj_destroy(ik_obj *o)
{
	destroyed++;
	free(o);
}

static void
test_handles(void **state)
{
	(void) state;
	ik_obj *objs[300];
	for (int i = 0; i < 300; i++) {
		objs[i] = malloc(sizeof(ik_obj));
		ik_obj_init(objs[i], IK_OBJ_SOCK, obj_destroy);
		assert_int_equal(ik_obj_register(objs[i]), 0);
	}
	uint32_t id = objs[7]->id;
	ik_obj  *o  = ik_obj_hold(id, IK_OBJ_SOCK);
	assert_ptr_equal(o, objs[7]);
	assert_null(ik_obj_hold(id, IK_OBJ_DIALER)); /* wrong type */
	assert_null(ik_obj_hold(0, IK_OBJ_SOCK));
	ik_obj_rele(o);
	for (int i = 0; i < 300; i++) {
		assert_int_equal(ik_obj_unregister(objs[i]), 0);
	}
	/* Stale ids find nothing, even once new objects arrive. */
	ik_obj *fresh = malloc(sizeof(ik_obj));
	ik_obj_init(fresh, IK_OBJ_SOCK, obj_destroy);
	assert_int_equal(ik_obj_register(fresh), 0);
	assert_true(fresh->id != id);
	assert_null(ik_obj_hold(id, IK_OBJ_SOCK));
	for (int i = 0; i < 300; i++) {
		assert_int_equal(ik_obj_unregister(objs[i]), IOK_ECLOSED);
		ik_obj_rele(objs[i]); /* the creator's reference */
	}
	assert_int_equal(destroyed, 300);
	ik_obj_unregister(fresh);
	ik_obj_rele(fresh);
}

static void
test_strerror(void **state)
{
	(void) state;
	assert_string_equal(iok_strerror(IOK_ECLOSED), "Object closed");
	assert_string_equal(iok_strerror(IOK_ETIMEDOUT), "Timed out");
	assert_non_null(strstr(iok_strerror(12345), "12345"));
	assert_string_equal(iok_version(), "0.1.0");
}

/* Small messages are recycled between threads: one thread allocates, the
 * other frees, as the application and the kernel do.  Every round keeps
 * all its messages alive at once, each stamped with its own number, so a
 * block handed out twice would show as an overwritten stamp. */
#define RC_LIVE 300
#define RC_ROUNDS 400

struct recycle_run {
	pthread_mutex_t mu;
	pthread_cond_t  cv;
	iok_msg        *live[RC_LIVE];
	int             round; /* produced rounds */
	int             freed; /* consumed rounds */
	int             bad;
};

static void *
recycle_producer(void *arg)
{
	struct recycle_run *r = arg;
	for (int round = 0; round < RC_ROUNDS; round++) {
		pthread_mutex_lock(&r->mu);
		while (r->freed < round) {
			pthread_cond_wait(&r->cv, &r->mu);
		}
		pthread_mutex_unlock(&r->mu);
		for (int i = 0; i < RC_LIVE; i++) {
			/* Both size classes, and some too big to recycle. */
			size_t   size = i % 3 == 0   ? 8
			                : i % 3 == 1 ? 1500
			                             : (size_t) 4000 + (size_t) i;
			uint32_t tag  = (uint32_t) (round * RC_LIVE + i);
			if (iok_msg_alloc(&r->live[i], size) != 0) {
				r->bad++;
				r->live[i] = NULL;
				continue;
			}
			memset(iok_msg_body(r->live[i]), (int) (tag & 0xff), size);
			memcpy(iok_msg_body(r->live[i]), &tag, sizeof(tag));
		}
		pthread_mutex_lock(&r->mu);
		r->round = round + 1;
		pthread_cond_broadcast(&r->cv);
		pthread_mutex_unlock(&r->mu);
	}
	return NULL;
}

static void
test_recycle_across_threads(void **state)
{
	(void) state;
	for (int pass = 0; pass < 2; pass++) { /* the second reuses the first's blocks */
		struct recycle_run r;
		pthread_t          t;
		memset(&r, 0, sizeof(r));
		pthread_mutex_init(&r.mu, NULL);
		pthread_cond_init(&r.cv, NULL);
		assert_int_equal(pthread_create(&t, NULL, recycle_producer, &r), 0);
		for (int round = 0; round < RC_ROUNDS; round++) {
			pthread_mutex_lock(&r.mu);
			while (r.round <= round) {
				pthread_cond_wait(&r.cv, &r.mu);
			}
			pthread_mutex_unlock(&r.mu);
			for (int i = 0; i < RC_LIVE; i++) {
				iok_msg *m   = r.live[i];
				uint32_t tag = (uint32_t) (round * RC_LIVE + i), got;
				assert_non_null(m);
				const uint8_t *b = iok_msg_body(m);
				memcpy(&got, b, sizeof(got));
				assert_int_equal(got, tag);
				assert_int_equal(b[iok_msg_len(m) - 1], tag & 0xff);
			}
			for (int i = 0; i < RC_LIVE; i++) {
				iok_msg_free(r.live[i]);
			}
			pthread_mutex_lock(&r.mu);
			r.freed = round + 1;
			pthread_cond_broadcast(&r.cv);
			pthread_mutex_unlock(&r.mu);
		}
		assert_int_equal(pthread_join(t, NULL), 0);
		assert_int_equal(r.bad, 0);
		pthread_mutex_destroy(&r.mu);
		pthread_cond_destroy(&r.cv);
	}
}

/* ---------------------------------------------- shared bodies (fan-out) */

/* A message of len bytes, byte i = (seed + i) & 0xff. */
static iok_msg *
patterned(size_t len, int seed)
{
	iok_msg *m;
	IOK_OK(iok_msg_alloc(&m, len));
	uint8_t *b = iok_msg_body(m);
	for (size_t i = 0; i < len; i++) {
		b[i] = (uint8_t) (seed + (int) i);
	}
	return m;
}

static void
assert_patterned(iok_msg *m, size_t len, int seed)
{
	const uint8_t *b = iok_msg_body(m);
	assert_int_equal(iok_msg_len(m), len);
	for (size_t i = 0; i < len; i++) {
		if (b[i] != (uint8_t) (seed + (int) i)) {
			fail_msg("byte %zu of %zu changed", i, len);
		}
	}
}

/* One message shared by four holders, each turned into a message of its
 * own (ik_msg_private, as inproc delivery does): no body is copied until
 * one is changed, and a change to one never shows in the others, whatever
 * the mutator.  Sizes cover both recycled classes, a plain allocation and
 * a body that had already moved to its own buffer. */
static void
test_shared_views(void **state)
{
	static const size_t sizes[] = { 0, 64, 1000, 5000, 100000 };
	(void) state;
	for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
		size_t   len = sizes[si];
		iok_msg *m   = patterned(len, 7), *v[4];
		if (len == 100000) {
			IOK_OK(iok_msg_chop(m, 1000)); /* then grow: external buffer */
			IOK_OK(iok_msg_realloc(m, len * 3));
			IOK_OK(iok_msg_chop(m, len * 2));
			uint8_t *b = iok_msg_body(m);
			for (size_t i = len - 1000; i < len; i++) {
				b[i] = (uint8_t) (7 + (int) i);
			}
		}
		IOK_OK(iok_msg_header_append(m, "hd", 2));
		iok_msg_set_pipe(m, 42);
		for (int i = 1; i < 4; i++) {
			assert_ptr_equal(ik_msg_ref(m), m);
		}
		for (int i = 0; i < 4; i++) {
			v[i] = ik_msg_private(m); /* each holder's reference in turn */
			assert_non_null(v[i]);
			assert_ptr_not_equal(v[i], m); /* the others still read m */
			assert_int_equal(iok_msg_get_pipe(v[i]), 42);
			assert_int_equal(iok_msg_header_len(v[i]), 2);
			assert_memory_equal(iok_msg_header(v[i]), "hd", 2);
			assert_patterned(v[i], len, 7);
		}
		/* Shared, not copied. */
		assert_ptr_equal(iok_msg_body(v[0]), iok_msg_body(v[3]));

		/* v0: written in place once its storage is its own. */
		IOK_OK(ik_msg_writable(v[0]));
		if (len > 0) {
			assert_ptr_not_equal(iok_msg_body(v[0]), iok_msg_body(v[3]));
			memset(iok_msg_body(v[0]), 'x', len);
		}
		/* v1: append, insert, realloc (growth within the shared
		 * storage's slack must not write into it either). */
		IOK_OK(iok_msg_append(v[1], "tail", 4));
		IOK_OK(iok_msg_insert(v[1], "head", 4));
		assert_memory_equal(iok_msg_body(v[1]), "head", 4);
		assert_memory_equal((uint8_t *) iok_msg_body(v[1]) + 4 + len, "tail", 4);
		/* v2: its own header, pipe, bounds; trimming shares on. */
		IOK_OK(iok_msg_header_append(v[2], "more", 4));
		iok_msg_set_pipe(v[2], 7);
		if (len >= 2) {
			IOK_OK(iok_msg_trim(v[2], 1));
			IOK_OK(iok_msg_chop(v[2], 1));
			IOK_OK(iok_msg_realloc(v[2], len)); /* grow back by one */
			((uint8_t *) iok_msg_body(v[2]))[len - 1] = 'z';
		}
		/* v3 saw none of it. */
		assert_patterned(v[3], len, 7);
		assert_int_equal(iok_msg_header_len(v[3]), 2);
		assert_int_equal(iok_msg_get_pipe(v[3]), 42);
		/* A copy of a view is a plain message. */
		iok_msg *d;
		IOK_OK(iok_msg_dup(&d, v[3]));
		assert_patterned(d, len, 7);
		iok_msg_free(d);
		iok_msg_free(v[0]);
		iok_msg_free(v[1]);
		iok_msg_free(v[2]);
		/* The last holder's storage is its own again: written in place,
		 * no copy. */
		void *before = iok_msg_body(v[3]);
		IOK_OK(ik_msg_writable(v[3]));
		assert_ptr_equal(iok_msg_body(v[3]), before);
		assert_patterned(v[3], len, 7);
		iok_msg_free(v[3]);
	}
	/* A sole holder gets the message itself. */
	iok_msg *m = patterned(10, 1);
	assert_ptr_equal(ik_msg_private(m), m);
	IOK_OK(ik_msg_writable(m));
	iok_msg_free(m);
}

/* An inproc hand-over of a shared message with a header (a req's kept
 * request): the view's header moves into its body, which copies the body
 * into the room the view came with, not into a new allocation, and lets go
 * of the origin. */
static void
test_view_header_into_own_room(void **state)
{
	(void) state;
	for (size_t len = 60; len <= 64; len += 4) {
		iok_msg *m = patterned(len, 3), *v;
		IOK_OK(iok_msg_header_append_u32(m, 0x80000001u));
		assert_ptr_equal(ik_msg_ref(m), m); /* the kept request's holder */
		v = ik_msg_private(m);
		assert_non_null(v);
		assert_ptr_not_equal(v, m);
		IOK_OK(ik_msg_header_to_body(v));
		const uint8_t *b = iok_msg_body(v);
#ifndef IK_NO_RECYCLE /* sanitizer builds: a view is a bare header */
		const uint8_t *room = (const uint8_t *) (v + 1);
		assert_true(b >= room && b + iok_msg_len(v) <= room + IK_MSG_HEADROOM + 64);
#endif
		assert_int_equal(iok_msg_len(v), len + 4);
		assert_int_equal(ik_get_u32(b), 0x80000001u);
		IOK_OK(iok_msg_trim(v, 4));
		assert_patterned(v, len, 3);
		/* The origin is the kept holder's alone again. */
		assert_int_equal(atomic_load(&m->refs), 1);
		iok_msg_free(v);
		assert_patterned(m, len, 3);
		iok_msg_free(m);
	}
}

/* Holders on several threads let go and change their views at once: the
 * count is atomic, the storage goes exactly once (ASan, TSan). */
#define SV_THREADS 4
#define SV_ROUNDS 2000

struct sv_arg {
	iok_msg *v[SV_ROUNDS];
	int      idx;
};

static void *
sv_worker(void *arg)
{
	struct sv_arg *a = arg;
	for (int r = 0; r < SV_ROUNDS; r++) {
		iok_msg *v = a->v[r];
		if (((r + a->idx) & 3) == 0 && ik_msg_writable(v) == 0) {
			memset(iok_msg_body(v), 'w', iok_msg_len(v));
		} else if (((r + a->idx) & 3) == 1) {
			(void) iok_msg_append(v, "!", 1);
		} else {
			const uint8_t *b = iok_msg_body(v);
			if (iok_msg_len(v) != 64 || b[0] != (uint8_t) r ||
			    b[63] != (uint8_t) (r + 63)) {
				a->idx = -1;
			}
		}
		iok_msg_free(v);
	}
	return NULL;
}

static void
test_shared_across_threads(void **state)
{
	struct sv_arg args[SV_THREADS];
	pthread_t     t[SV_THREADS];
	(void) state;
	for (int r = 0; r < SV_ROUNDS; r++) {
		iok_msg *m = patterned(64, r);
		for (int i = 1; i < SV_THREADS; i++) {
			ik_msg_ref(m);
		}
		for (int i = 0; i < SV_THREADS; i++) {
			args[i].v[r] = ik_msg_private(m);
			assert_non_null(args[i].v[r]);
		}
	}
	for (int i = 0; i < SV_THREADS; i++) {
		args[i].idx = i;
		assert_int_equal(pthread_create(&t[i], NULL, sv_worker, &args[i]), 0);
	}
	for (int i = 0; i < SV_THREADS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_not_equal(args[i].idx, -1);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_body_edits),
		cmocka_unit_test(test_growth),
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_body_ints),
		cmocka_unit_test(test_header_ints),
		cmocka_unit_test(test_msgq),
		cmocka_unit_test(test_handles),
		cmocka_unit_test(test_strerror),
		cmocka_unit_test(test_recycle_across_threads),
		cmocka_unit_test(test_shared_views),
		cmocka_unit_test(test_view_header_into_own_room),
		cmocka_unit_test(test_shared_across_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
