/*
 * _resp.c - RESP for the Python bindings: commands encoded into iok
 * messages and replies decoded into Python objects, in C (see _resp.h),
 * plus the few module functions iok.redis needs beyond plain sockets:
 * sharing a dialer's connection (pub/sub beside commands) and sessions
 * (affinity, for MULTI/EXEC and WATCH).
 *
 * Reply types, RESP2 and RESP3 (read with iok.h's iok_resp_reader, the
 * public reader over the transport's own codec):
 *   simple string  bytes (b"OK", b"PONG", like redis-py), or str with
 *                  IKPY_RESP_DECODE (UTF-8, undecodable bytes escaped)
 *   bulk string    bytes, or str with IKPY_RESP_DECODE; null -> None
 *   integer        int
 *   big number     int; one over Python's int conversion limit
 *                  (sys.get_int_max_str_digits) raises iok.redis.DataError
 *   double         float           boolean      bool
 *   null           None            verbatim     str (the text, no "txt:")
 *   array, push    list            set          set
 *   map            dict (an unhashable key, e.g. an array, becomes a tuple)
 *   error, blob error   an iok.redis.ResponseError (or subclass, by the
 *                  error code, e.g. "EXECABORT") instance: raised for a
 *                  whole reply, an element of the list inside one (EXEC)
 *   attribute      skipped: the value it annotates is returned
 *
 * Limited API (abi3) only, like _iok.c.
 */
#define PY_SSIZE_T_CLEAN
#ifndef Py_LIMITED_API
#define Py_LIMITED_API 0x030B0000
#endif
#include <Python.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iok.h"
#include "_resp.h"
#include "_command.h"

/* Set by iok.redis (_redis_setup). */
static PyObject *g_resp_error;     /* iok.redis.ResponseError */
static PyObject *g_resp_error_map; /* dict: error code (str) -> subclass */
static PyObject *g_proto_error;    /* iok.ProtocolError */
static PyObject *g_data_error;     /* iok.redis.DataError (optional) */
static PyObject *g_str_ok;         /* "OK", the commonest simple string */
static PyObject *g_bytes_ok;       /* b"OK" */

/* ------------------------------------------------------------ encoding */

#define ARGS_STACK 16

typedef struct {
	const char *p;
	Py_ssize_t  n;
	PyObject   *keep; /* a str() / repr() result p points into */
	Py_buffer   view;
	int         viewed;
	char        num[24];
} enc_arg;

/* One argument's bytes: p/n point into the object, its UTF-8 cache, a
 * buffer view, a formatted number, or a kept str()/repr(). */
static int
enc_one(PyObject *o, enc_arg *a, Py_ssize_t i)
{
	a->keep   = NULL;
	a->viewed = 0;
	if (PyBytes_Check(o)) {
		char *p;
		if (PyBytes_AsStringAndSize(o, &p, &a->n) < 0) {
			return -1;
		}
		a->p = p;
		return 0;
	}
	if (PyUnicode_Check(o)) {
		a->p = PyUnicode_AsUTF8AndSize(o, &a->n);
		return a->p == NULL ? -1 : 0;
	}
	if (PyBool_Check(o)) {
		PyErr_Format(PyExc_TypeError,
		    "redis command argument %zd: bool is ambiguous; pass an int, str or bytes", i);
		return -1;
	}
	if (PyLong_Check(o)) {
		int       overflow;
		long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
		if (v == -1 && PyErr_Occurred()) {
			return -1;
		}
		if (overflow == 0) {
			a->n = snprintf(a->num, sizeof(a->num), "%lld", v);
			a->p = a->num;
			return 0;
		}
		a->keep = PyObject_Str(o);
	} else if (PyFloat_Check(o)) {
		a->keep = PyObject_Repr(o);
	} else if (PyObject_CheckBuffer(o)) {
		if (PyObject_GetBuffer(o, &a->view, PyBUF_SIMPLE) < 0) {
			return -1;
		}
		a->viewed = 1;
		a->p      = a->view.buf;
		a->n      = a->view.len;
		return 0;
	} else {
		PyErr_Format(PyExc_TypeError,
		    "redis command argument %zd: expected str, bytes, int or float, not %s", i,
		    o == Py_None ? "None" : "another type");
		return -1;
	}
	if (a->keep == NULL) {
		return -1;
	}
	a->p = PyUnicode_AsUTF8AndSize(a->keep, &a->n);
	return a->p == NULL ? -1 : 0;
}

static void
enc_release(enc_arg *a, Py_ssize_t n)
{
	for (Py_ssize_t i = 0; i < n; i++) {
		Py_XDECREF(a[i].keep);
		if (a[i].viewed) {
			PyBuffer_Release(&a[i].view);
		}
	}
}

iok_msg *
ikpy_resp_command(PyObject *args)
{
	enc_arg     stack[ARGS_STACK], *a      = stack;
	const char *pstack[ARGS_STACK], **argv = pstack;
	size_t      lstack[ARGS_STACK], *lens  = lstack;
	Py_ssize_t  argc, done                 = 0;
	iok_msg    *m        = NULL;
	int         is_tuple = PyTuple_Check(args), rv;

	if (!is_tuple && !PyList_Check(args)) {
		PyErr_SetString(PyExc_TypeError, "a redis command is a tuple or list of arguments");
		return NULL;
	}
	argc = is_tuple ? PyTuple_Size(args) : PyList_Size(args);
	if (argc < 1) {
		PyErr_SetString(PyExc_ValueError, "a redis command needs at least its name");
		return NULL;
	}
	if (argc > INT_MAX) {
		PyErr_SetString(PyExc_ValueError, "a redis command has too many arguments");
		return NULL;
	}
	if (argc > ARGS_STACK) {
		size_t one = sizeof(*a) + sizeof(*argv) + sizeof(*lens);
		char  *blk = PyMem_Malloc(one * (size_t) argc);
		if (blk == NULL) {
			PyErr_NoMemory();
			return NULL;
		}
		/* enc_arg first: the strictest alignment of the three. */
		a    = (enc_arg *) blk;
		lens = (size_t *) (blk + sizeof(*a) * (size_t) argc);
		argv = (const char **) (blk + (sizeof(*a) + sizeof(*lens)) * (size_t) argc);
	}
	for (; done < argc; done++) {
		PyObject *o = is_tuple ? PyTuple_GetItem(args, done) : PyList_GetItem(args, done);
		if (o == NULL || enc_one(o, &a[done], done) < 0) {
			goto out;
		}
		argv[done] = a[done].p;
		lens[done] = (size_t) a[done].n;
	}
	if ((rv = iok_resp_command(&m, (int) argc, argv, lens)) != 0) {
		m = NULL;
		ikpy_raise_iok(rv);
	}
out:
	enc_release(a, done);
	if (a != stack) {
		PyMem_Free(a);
	}
	return m;
}

/* ------------------------------------------------------------ decoding */

/* An error reply as an exception instance (not raised): the class is
 * picked by the error code, the first word ("ERR", "WRONGTYPE"...). */
static PyObject *
make_resp_error(const uint8_t *s, size_t len)
{
	PyObject *msg, *cls = NULL, *exc;
	size_t    w = 0;
	msg         = PyUnicode_DecodeUTF8((const char *) s, (Py_ssize_t) len, "replace");
	if (msg == NULL) {
		return NULL;
	}
	while (w < len && s[w] != ' ') {
		w++;
	}
	if (g_resp_error_map != NULL && w > 0) {
		PyObject *code = PyUnicode_DecodeUTF8((const char *) s, (Py_ssize_t) w, "replace");
		if (code == NULL) {
			Py_DECREF(msg);
			return NULL;
		}
		cls = PyDict_GetItemWithError(g_resp_error_map, code); /* borrowed */
		Py_DECREF(code);
		if (cls == NULL && PyErr_Occurred()) {
			Py_DECREF(msg);
			return NULL;
		}
	}
	if (cls == NULL) {
		cls = g_resp_error != NULL ? g_resp_error : PyExc_RuntimeError;
	}
	exc = PyObject_CallFunctionObjArgs(cls, msg, NULL);
	Py_DECREF(msg);
	return exc;
}

static PyObject *
proto_error(const char *what)
{
	PyObject *cls = g_proto_error != NULL ? g_proto_error : PyExc_ValueError;
	PyObject *a   = Py_BuildValue("(is)", IOK_EPROTO, what);
	if (a != NULL) {
		PyErr_SetObject(cls, a);
		Py_DECREF(a);
	}
	return NULL;
}

/* bignum_error raises iok.redis.DataError (iok.ProtocolError before
 * iok.redis is set up) for a big number Python refuses to convert (over
 * its int_max_str_digits limit), the ValueError as its cause. */
static PyObject *
bignum_error(size_t digits)
{
	PyObject *type, *cause, *tb, *exc;
	char      what[128];

	/* PyErr_Fetch: the limited API of 3.11 has no PyErr_GetRaisedException. */
	PyErr_Fetch(&type, &cause, &tb);
	PyErr_NormalizeException(&type, &cause, &tb);
	Py_XDECREF(type);
	Py_XDECREF(tb);

	snprintf(what, sizeof(what),
	    "big number reply of %zu digits is over Python's int conversion limit", digits);
	if (g_data_error != NULL) {
		exc = PyObject_CallFunction(g_data_error, "s", what);
	} else {
		exc =
		    PyObject_CallFunction(g_proto_error != NULL ? g_proto_error : PyExc_ValueError,
		        "is", IOK_EPROTO, what);
	}
	if (exc == NULL) {
		Py_XDECREF(cause);
		return NULL;
	}
	PyException_SetCause(exc, cause); /* steals cause */
	PyErr_SetObject((PyObject *) Py_TYPE(exc), exc);
	Py_DECREF(exc);
	return NULL;
}

/* A hashable stand-in for an unhashable map key or set member: lists
 * become tuples, sets frozensets, dicts tuples of (key, value) pairs. */
static PyObject *
hashable(PyObject *o)
{
	if (PyList_Check(o)) {
		Py_ssize_t n = PyList_Size(o);
		PyObject  *t = PyTuple_New(n);
		if (t == NULL) {
			return NULL;
		}
		for (Py_ssize_t i = 0; i < n; i++) {
			PyObject *h = hashable(PyList_GetItem(o, i));
			if (h == NULL) {
				Py_DECREF(t);
				return NULL;
			}
			PyTuple_SetItem(t, i, h);
		}
		return t;
	}
	if (PyAnySet_Check(o)) {
		return PyFrozenSet_New(o);
	}
	if (PyDict_Check(o)) {
		PyObject *items = PyDict_Items(o), *h;
		if (items == NULL) {
			return NULL;
		}
		h = hashable(items);
		Py_DECREF(items);
		return h;
	}
	return Py_NewRef(o);
}

/* Insert into a dict (value != NULL) or set, retrying an unhashable key
 * as hashable(key). */
static int
put_key(PyObject *container, PyObject *key, PyObject *value)
{
	int rv = value != NULL ? PyDict_SetItem(container, key, value) : PySet_Add(container, key);
	if (rv < 0 && PyErr_ExceptionMatches(PyExc_TypeError)) {
		PyObject *h;
		PyErr_Clear();
		if ((h = hashable(key)) == NULL) {
			return -1;
		}
		rv = value != NULL ? PyDict_SetItem(container, h, value) : PySet_Add(container, h);
		Py_DECREF(h);
	}
	return rv;
}

static PyObject *dec_value(iok_resp_reader *it, unsigned flags);

static PyObject *
dec_text(const uint8_t *s, size_t n)
{
	return PyUnicode_DecodeUTF8((const char *) s, (Py_ssize_t) n, "surrogateescape");
}

static PyObject *
dec_item(iok_resp_reader *it, const iok_resp_item *t, unsigned flags)
{
	PyObject *r, *k, *v;
	size_t    n;

	switch (t->type) {
	case IOK_RESP_SIMPLE:
		if (t->len == 2 && t->str[0] == 'O' && t->str[1] == 'K') {
			return Py_NewRef((flags & IKPY_RESP_DECODE) ? g_str_ok : g_bytes_ok);
		}
		if (flags & IKPY_RESP_DECODE) {
			return dec_text(t->str, t->len);
		}
		return PyBytes_FromStringAndSize((const char *) t->str, (Py_ssize_t) t->len);
	case IOK_RESP_ERROR:
	case IOK_RESP_BLOBERR:
		return make_resp_error(t->str, t->len);
	case IOK_RESP_INTEGER:
		return PyLong_FromLongLong((long long) t->integer);
	case IOK_RESP_BULK:
		if (t->null) {
			Py_RETURN_NONE;
		}
		if (flags & IKPY_RESP_DECODE) {
			return PyUnicode_DecodeUTF8(
			    (const char *) t->str, (Py_ssize_t) t->len, NULL);
		}
		return PyBytes_FromStringAndSize((const char *) t->str, (Py_ssize_t) t->len);
	case IOK_RESP_NULL:
		Py_RETURN_NONE;
	case IOK_RESP_DOUBLE:
		return PyFloat_FromDouble(t->dval);
	case IOK_RESP_BOOL:
		return PyBool_FromLong(t->boolean);
	case IOK_RESP_BIGNUM: {
		char small[64], *buf = small;
		if (t->len + 1 > sizeof(small) && (buf = PyMem_Malloc(t->len + 1)) == NULL) {
			return PyErr_NoMemory();
		}
		memcpy(buf, t->str, t->len);
		buf[t->len] = '\0';
		r           = PyLong_FromString(buf, NULL, 10);
		if (buf != small) {
			PyMem_Free(buf);
		}
		if (r == NULL && PyErr_ExceptionMatches(PyExc_ValueError)) {
			return bignum_error(t->len);
		}
		return r;
	}
	case IOK_RESP_VERBATIM:
		return dec_text(t->str, t->len);
	case IOK_RESP_ARRAY:
	case IOK_RESP_PUSH:
		if (t->null) {
			Py_RETURN_NONE;
		}
		n = t->count;
		if ((r = PyList_New((Py_ssize_t) n)) == NULL) {
			return NULL;
		}
		for (size_t i = 0; i < n; i++) {
			if ((v = dec_value(it, flags)) == NULL) {
				Py_DECREF(r);
				return NULL;
			}
			PyList_SetItem(r, (Py_ssize_t) i, v);
		}
		return r;
	case IOK_RESP_SET:
		if ((r = PySet_New(NULL)) == NULL) {
			return NULL;
		}
		for (size_t i = 0; i < t->count; i++) {
			if ((v = dec_value(it, flags)) == NULL || put_key(r, v, NULL) < 0) {
				Py_XDECREF(v);
				Py_DECREF(r);
				return NULL;
			}
			Py_DECREF(v);
		}
		return r;
	case IOK_RESP_MAP:
		if ((r = PyDict_New()) == NULL) {
			return NULL;
		}
		for (size_t i = 0; i < t->count; i++) {
			if ((k = dec_value(it, flags)) == NULL) {
				Py_DECREF(r);
				return NULL;
			}
			if ((v = dec_value(it, flags)) == NULL || put_key(r, k, v) < 0) {
				Py_DECREF(k);
				Py_XDECREF(v);
				Py_DECREF(r);
				return NULL;
			}
			Py_DECREF(k);
			Py_DECREF(v);
		}
		return r;
	case IOK_RESP_ATTR: {
		/* Skip its pairs; the annotated value follows at this level. */
		iok_resp_item next;
		for (size_t i = 0; i < 2 * t->count; i++) {
			if ((v = dec_value(it, flags)) == NULL) {
				return NULL;
			}
			Py_DECREF(v);
		}
		if (iok_resp_next(it, &next) != 1) {
			return proto_error("malformed RESP reply (attribute without a value)");
		}
		return dec_item(it, &next, flags);
	}
	default:
		return proto_error("malformed RESP reply (unknown type)");
	}
}

static PyObject *
dec_value(iok_resp_reader *it, unsigned flags)
{
	iok_resp_item t;
	if (iok_resp_next(it, &t) != 1) {
		return proto_error("malformed RESP reply");
	}
	return dec_item(it, &t, flags);
}

PyObject *
ikpy_resp_decode(const uint8_t *buf, size_t len, unsigned flags, int *failed)
{
	iok_resp_reader it;
	iok_resp_item   t;
	PyObject       *v;

	*failed = 0;
	/* The commonest reply, without the reader. */
	if (len == 5 && memcmp(buf, "+OK\r\n", 5) == 0 && g_bytes_ok != NULL) {
		return Py_NewRef((flags & IKPY_RESP_DECODE) ? g_str_ok : g_bytes_ok);
	}
	iok_resp_reader_init(&it, buf, len);
	if (iok_resp_next(&it, &t) != 1) {
		return proto_error("malformed RESP reply");
	}
	while (t.type == IOK_RESP_ATTR) { /* skip to the value it annotates */
		for (size_t i = 0; i < 2 * t.count; i++) {
			if ((v = dec_value(&it, flags)) == NULL) {
				return NULL;
			}
			Py_DECREF(v);
		}
		if (iok_resp_next(&it, &t) != 1) {
			return proto_error("malformed RESP reply (attribute without a value)");
		}
	}
	int is_err = t.type == IOK_RESP_ERROR || t.type == IOK_RESP_BLOBERR;
	if ((v = dec_item(&it, &t, flags)) == NULL) {
		return NULL;
	}
	/* 0 only if the reply ends exactly at len. */
	if (iok_resp_next(&it, &t) != 0) {
		Py_DECREF(v);
		return proto_error("malformed RESP reply (bytes after the reply)");
	}
	*failed = is_err;
	return v;
}

/* --------------------------------------------------- module functions */

/* resp_encode(args) -> bytes: the RESP encoding of one command. */
static PyObject *
mod_resp_encode(PyObject *m, PyObject *args)
{
	iok_msg  *msg = ikpy_resp_command(args);
	PyObject *b;
	if (msg == NULL) {
		return NULL;
	}
	b = PyBytes_FromStringAndSize(iok_msg_body(msg), (Py_ssize_t) iok_msg_len(msg));
	iok_msg_free(msg);
	return b;
}

/* resp_decode(data, flags=0) -> value; an error reply raises it. */
static PyObject *
mod_resp_decode(PyObject *m, PyObject *args)
{
	Py_buffer view;
	unsigned  flags = 0;
	int       failed;
	PyObject *v;
	if (!PyArg_ParseTuple(args, "y*|I:resp_decode", &view, &flags)) {
		return NULL;
	}
	v = ikpy_resp_decode(view.buf, (size_t) view.len, flags, &failed);
	PyBuffer_Release(&view);
	if (v != NULL && failed) {
		PyErr_SetObject((PyObject *) Py_TYPE(v), v);
		Py_DECREF(v);
		return NULL;
	}
	return v;
}

/* _redis_setup(ResponseError, {code: subclass}, ProtocolError[, DataError]) */
static PyObject *
mod_redis_setup(PyObject *m, PyObject *args)
{
	PyObject *err, *map, *proto, *data = NULL;
	if (!PyArg_ParseTuple(
	        args, "OO!O|O:_redis_setup", &err, &PyDict_Type, &map, &proto, &data)) {
		return NULL;
	}
	Py_XDECREF(g_resp_error);
	Py_XDECREF(g_resp_error_map);
	Py_XDECREF(g_proto_error);
	Py_XDECREF(g_data_error);
	g_resp_error     = Py_NewRef(err);
	g_resp_error_map = Py_NewRef(map);
	g_proto_error    = Py_NewRef(proto);
	g_data_error     = Py_XNewRef(data);
	Py_RETURN_NONE;
}

/* dialer_share(dialer_id, socket_id): socket becomes a second user of the
 * dialer's connections (iok_dialer_share). */
static PyObject *
mod_dialer_share(PyObject *m, PyObject *args)
{
	unsigned int d, s;
	int          rv;
	if (!PyArg_ParseTuple(args, "II:dialer_share", &d, &s)) {
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS rv = iok_dialer_share((iok_dialer) { d }, (iok_socket) { s });
	Py_END_ALLOW_THREADS if (rv != 0)
	{
		return ikpy_raise_iok(rv);
	}
	Py_RETURN_NONE;
}

/* session_open(socket_id) -> session id (iok_session_open). */
static PyObject *
mod_session_open(PyObject *m, PyObject *args)
{
	unsigned int s;
	uint32_t     sess = 0;
	int          rv;
	if (!PyArg_ParseTuple(args, "I:session_open", &s)) {
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS rv = iok_session_open((iok_socket) { s }, &sess);
	Py_END_ALLOW_THREADS if (rv != 0)
	{
		return ikpy_raise_iok(rv);
	}
	return PyLong_FromUnsignedLong(sess);
}

/* session_close(socket_id, session) (iok_session_close). */
static PyObject *
mod_session_close(PyObject *m, PyObject *args)
{
	unsigned int s, sess;
	int          rv;
	if (!PyArg_ParseTuple(args, "II:session_close", &s, &sess)) {
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS rv = iok_session_close((iok_socket) { s }, sess);
	Py_END_ALLOW_THREADS if (rv != 0)
	{
		return ikpy_raise_iok(rv);
	}
	Py_RETURN_NONE;
}

/* _redis_plan(args, transform=None, flags=0) -> (args, transform, flags):
 * what a command method hands _cmd.  AsyncClient's commands run the sync
 * client's methods on a stand-in whose _cmd is this (iok/redis.py,
 * _Plan): as a Python function it was a frame, 1.6% of a pipelined GET's
 * instructions. */
static PyObject *
mod_redis_plan(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
	PyObject *flags, *plan;
	(void) m;
	if (nargs < 1 || nargs > 3) {
		PyErr_SetString(PyExc_TypeError, "_redis_plan(args, transform=None, flags=0)");
		return NULL;
	}
	if ((flags = nargs > 2 ? Py_NewRef(args[2]) : PyLong_FromLong(0)) == NULL) {
		return NULL;
	}
	plan = PyTuple_Pack(3, args[0], nargs > 1 ? args[1] : Py_None, flags);
	Py_DECREF(flags);
	return plan;
}

/* A status reply of "OK" (str or bytes): the decoder's own objects first. */
static int
is_ok(PyObject *v)
{
	if (v == g_str_ok || v == g_bytes_ok) {
		return 1;
	}
	if (PyUnicode_Check(v)) {
		return PyUnicode_CompareWithASCIIString(v, "OK") == 0;
	}
	return PyBytes_Check(v) && PyBytes_Size(v) == 2 &&
	       memcmp(PyBytes_AsString(v), "OK", 2) == 0;
}

/* _redis_ok(v) -> True for "OK", else v; _redis_ok_or_none(v) -> True or
 * None (SET's reply).  Reply transforms every SET and many writes run: as
 * Python functions each was a frame per command. */
static PyObject *
mod_redis_ok(PyObject *m, PyObject *v)
{
	(void) m;
	return is_ok(v) ? Py_NewRef(Py_True) : Py_NewRef(v);
}

static PyObject *
mod_redis_ok_or_none(PyObject *m, PyObject *v)
{
	(void) m;
	return Py_NewRef(is_ok(v) ? Py_True : Py_None);
}

/* CommandPlan(name, nargs, transform, flags, fallback): what an
 * AsyncClient command whose method only passes its arguments on after
 * the command's name (get(name) -> ("GET", name)) plans, without running
 * that method: called with nargs positional arguments (nargs -1: any
 * number, as delete(*names)) it returns ((name, *args), transform, flags);
 * any other call goes to fallback (the method itself, for keywords, its
 * options and its own TypeError).  iok/redis.py picks those methods; the
 * method's frame was 7% of a pipelined GET. */
typedef struct {
	PyObject_HEAD PyObject *name;
	Py_ssize_t              nargs;
	PyObject               *transform;
	PyObject               *flags;
	PyObject               *fallback;
} plan_obj;

static PyObject *
plan_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
	PyObject  *name, *transform, *flags, *fallback;
	Py_ssize_t nargs;
	plan_obj  *self;
	if (kw != NULL && PyDict_Size(kw) > 0) {
		PyErr_SetString(PyExc_TypeError, "CommandPlan() takes no keyword arguments");
		return NULL;
	}
	if (!PyArg_ParseTuple(
	        args, "UnOOO:CommandPlan", &name, &nargs, &transform, &flags, &fallback)) {
		return NULL;
	}
	if (nargs < -1 || !PyCallable_Check(fallback)) {
		PyErr_SetString(
		    PyExc_ValueError, "CommandPlan: nargs >= -1 and a callable fallback");
		return NULL;
	}
	allocfunc alloc = (allocfunc) PyType_GetSlot(type, Py_tp_alloc);
	if ((self = (plan_obj *) alloc(type, 0)) == NULL) {
		return NULL;
	}
	self->name      = Py_NewRef(name);
	self->nargs     = nargs;
	self->transform = Py_NewRef(transform);
	self->flags     = Py_NewRef(flags);
	self->fallback  = Py_NewRef(fallback);
	return (PyObject *) self;
}

static void
plan_dealloc(plan_obj *self)
{
	PyTypeObject *type = Py_TYPE((PyObject *) self);
	Py_XDECREF(self->name);
	Py_XDECREF(self->transform);
	Py_XDECREF(self->flags);
	Py_XDECREF(self->fallback);
	freefunc free_ = (freefunc) PyType_GetSlot(type, Py_tp_free);
	free_(self);
	Py_DECREF(type);
}

/* (name, *args[skip:]): the command a CommandPlan makes of args. */
static PyObject *
plan_command(plan_obj *self, PyObject *args, Py_ssize_t skip)
{
	PyObject  *cmd;
	Py_ssize_t i, n = PyTuple_Size(args) - skip;
	if ((cmd = PyTuple_New(n + 1)) == NULL) {
		return NULL;
	}
	PyTuple_SetItem(cmd, 0, Py_NewRef(self->name));
	for (i = 0; i < n; i++) {
		PyTuple_SetItem(cmd, i + 1, Py_NewRef(PyTuple_GetItem(args, skip + i)));
	}
	return cmd;
}

/* True if a call with args[skip:] and kw is the plan's own (no
 * fallback). */
static int
plan_takes(plan_obj *self, PyObject *args, Py_ssize_t skip, PyObject *kw)
{
	return (PyTuple_Size(args) - skip == self->nargs || self->nargs < 0) &&
	       (kw == NULL || PyDict_Size(kw) == 0);
}

static PyObject *
plan_call(plan_obj *self, PyObject *args, PyObject *kw)
{
	PyObject *cmd, *plan;
	if (!plan_takes(self, args, 0, kw)) {
		return PyObject_Call(self->fallback, args, kw);
	}
	if ((cmd = plan_command(self, args, 0)) == NULL) {
		return NULL;
	}
	plan = PyTuple_Pack(3, cmd, self->transform, self->flags);
	Py_DECREF(cmd);
	return plan;
}

static PyTypeObject *g_plan_type;

PyObject *
ikpy_plan_take(PyObject *plan, PyObject *args, Py_ssize_t skip, PyObject *kw, PyObject **transform,
    long *flags)
{
	PyObject *res, *cmd, *t, *rest;
	if (g_plan_type != NULL && Py_IS_TYPE(plan, g_plan_type) &&
	    plan_takes((plan_obj *) plan, args, skip, kw)) {
		plan_obj *p = (plan_obj *) plan;
		if ((*flags = PyLong_AsLong(p->flags)) == -1 && PyErr_Occurred()) {
			return NULL;
		}
		if ((cmd = plan_command(p, args, skip)) != NULL) {
			*transform = p->transform == Py_None ? NULL : Py_NewRef(p->transform);
		}
		return cmd;
	}
	if ((rest = PyTuple_GetSlice(args, skip, PyTuple_Size(args))) == NULL) {
		return NULL;
	}
	res = PyObject_Call(plan, rest, kw);
	Py_DECREF(rest);
	if (res == NULL) {
		return NULL;
	}
	if (!PyTuple_Check(res) || PyTuple_Size(res) != 3) {
		PyErr_SetString(
		    PyExc_TypeError, "a command's plan returns (command, transform, flags)");
		Py_DECREF(res);
		return NULL;
	}
	if ((*flags = PyLong_AsLong(PyTuple_GetItem(res, 2))) == -1 && PyErr_Occurred()) {
		Py_DECREF(res);
		return NULL;
	}
	cmd        = Py_NewRef(PyTuple_GetItem(res, 0));
	t          = PyTuple_GetItem(res, 1);
	*transform = t == Py_None ? NULL : Py_NewRef(t);
	Py_DECREF(res);
	return cmd;
}

static PyType_Slot plan_slots[] = {
	{ Py_tp_new, plan_new },
	{ Py_tp_dealloc, plan_dealloc },
	{ Py_tp_call, plan_call },
	{ Py_tp_doc, "CommandPlan(name, nargs, transform, flags, fallback)\n--\n\n"
	             "Plans a Redis command that passes its arguments on after its name." },
	{ 0, NULL },
};
static PyType_Spec plan_spec = { "iok._iok.CommandPlan", sizeof(plan_obj), 0, Py_TPFLAGS_DEFAULT,
	plan_slots };

static PyMethodDef resp_methods[] = {
	{ "resp_encode", mod_resp_encode, METH_O,
	    "resp_encode(args) -> bytes: one command (str, bytes, int, float arguments) in RESP" },
	{ "resp_decode", mod_resp_decode, METH_VARARGS,
	    "resp_decode(data, flags=0) -> object: one RESP2/RESP3 reply (flags 1: bulk and status "
	    "strings -> str); "
	    "an error reply raises iok.redis.ResponseError" },
	{ "_redis_setup", mod_redis_setup, METH_VARARGS, NULL },
	{ "_redis_plan", (PyCFunction) (void (*)(void)) mod_redis_plan, METH_FASTCALL, NULL },
	{ "_redis_ok", mod_redis_ok, METH_O,
	    "_redis_ok(v) -> True if v is \"OK\" or b\"OK\", else v" },
	{ "_redis_ok_or_none", mod_redis_ok_or_none, METH_O,
	    "_redis_ok_or_none(v) -> True if v is \"OK\" or b\"OK\", else None" },
	{ "dialer_share", mod_dialer_share, METH_VARARGS,
	    "dialer_share(dialer_id, socket_id) - the socket shares the dialer's connections" },
	{ "session_open", mod_session_open, METH_VARARGS, "session_open(socket_id) -> session id" },
	{ "session_close", mod_session_close, METH_VARARGS, "session_close(socket_id, session)" },
	{ NULL, NULL, 0, NULL },
};

int
ikpy_resp_init(PyObject *module)
{
	PyObject *t;
	if (g_str_ok == NULL && (g_str_ok = PyUnicode_InternFromString("OK")) == NULL) {
		return -1;
	}
	if (g_bytes_ok == NULL && (g_bytes_ok = PyBytes_FromStringAndSize("OK", 2)) == NULL) {
		return -1;
	}
	if ((t = PyType_FromSpec(&plan_spec)) == NULL ||
	    PyModule_AddObject(module, "CommandPlan", t) < 0) {
		Py_XDECREF(t);
		return -1;
	}
	g_plan_type = (PyTypeObject *) t; /* the module keeps it alive */
	if (PyModule_AddFunctions(module, resp_methods) < 0 ||
	    PyModule_AddIntConstant(module, "RESP_DECODE", IKPY_RESP_DECODE) < 0 ||
	    PyModule_AddIntConstant(module, "FLAG_IDEMPOTENT", IOK_FLAG_IDEMPOTENT) < 0) {
		return -1;
	}
	return 0;
}
