/*
 * _pgrecord.c - iok.pg.Record, a row of a PostgreSQL result, as asyncpg's:
 * r[0], r["name"], r[1:3] (a tuple), dict(r), r.keys() / values() /
 * items() / get(), len(r), iteration over the values, "name" in r,
 * comparison and hashing as a tuple of the values.
 *
 * The values live inline (a variable-size object); the column names are
 * one shared description per result (names tuple, {name: index} dict),
 * so a row costs one allocation besides its values.
 */
#define PY_SSIZE_T_CLEAN
#ifndef Py_LIMITED_API
#define Py_LIMITED_API 0x030B0000
#endif
#include <Python.h>

#include <stddef.h>

#include "_pg.h"

typedef struct {
	PyObject_HEAD PyObject *desc; /* (names tuple, {name: index}) */
	Py_ssize_t              n;
	PyObject               *v[1];
} RecObj;

PyObject *
ikpy_record_new(PyObject *type, PyObject *desc, Py_ssize_t n)
{
	RecObj *r = (RecObj *) PyType_GenericAlloc((PyTypeObject *) type, n);
	if (r == NULL) {
		return NULL;
	}
	r->desc = Py_NewRef(desc);
	r->n    = n;
	return (PyObject *) r;
}

void
ikpy_record_set(PyObject *rec, Py_ssize_t i, PyObject *v)
{
	((RecObj *) rec)->v[i] = v;
}

static int
rec_traverse(RecObj *r, visitproc visit, void *arg)
{
	Py_VISIT(r->desc);
	for (Py_ssize_t i = 0; i < r->n; i++) {
		Py_VISIT(r->v[i]);
	}
	Py_VISIT(Py_TYPE((PyObject *) r)); /* heap type */
	return 0;
}

static int
rec_clear(RecObj *r)
{
	Py_CLEAR(r->desc);
	for (Py_ssize_t i = 0; i < r->n; i++) {
		Py_CLEAR(r->v[i]);
	}
	return 0;
}

static void
rec_dealloc(RecObj *r)
{
	PyTypeObject *tp = Py_TYPE((PyObject *) r);
	freefunc      f  = (freefunc) PyType_GetSlot(tp, Py_tp_free);
	PyObject_GC_UnTrack(r);
	rec_clear(r);
	f(r);
	Py_DECREF(tp);
}

static PyObject *
names_of(RecObj *r)
{
	return PyTuple_GetItem(r->desc, 0);
}

static PyObject *
values_tuple(RecObj *r)
{
	PyObject *t = PyTuple_New(r->n);
	if (t == NULL) {
		return NULL;
	}
	for (Py_ssize_t i = 0; i < r->n; i++) {
		PyObject *v = r->v[i] != NULL ? r->v[i] : Py_None;
		PyTuple_SetItem(t, i, Py_NewRef(v));
	}
	return t;
}

static Py_ssize_t
rec_len(RecObj *r)
{
	return r->n;
}

static PyObject *
rec_item(RecObj *r, Py_ssize_t i)
{
	if (i < 0 || i >= r->n) {
		PyErr_SetString(PyExc_IndexError, "record index out of range");
		return NULL;
	}
	return Py_NewRef(r->v[i] != NULL ? r->v[i] : Py_None);
}

/* The index of a column name, -1 with KeyError if none. */
static Py_ssize_t
key_index(RecObj *r, PyObject *key)
{
	PyObject *map = PyTuple_GetItem(r->desc, 1), *ix;
	if (map == NULL) {
		return -1;
	}
	ix = PyDict_GetItemWithError(map, key);
	if (ix == NULL) {
		if (!PyErr_Occurred()) {
			PyErr_SetObject(PyExc_KeyError, key);
		}
		return -1;
	}
	return PyLong_AsSsize_t(ix);
}

static PyObject *
rec_subscript(RecObj *r, PyObject *key)
{
	if (PyLong_Check(key)) {
		Py_ssize_t i = PyLong_AsSsize_t(key);
		if (i == -1 && PyErr_Occurred()) {
			return NULL;
		}
		return rec_item(r, i < 0 ? i + r->n : i);
	}
	if (PySlice_Check(key)) {
		PyObject *t = values_tuple(r), *out;
		if (t == NULL) {
			return NULL;
		}
		out = PyObject_GetItem(t, key);
		Py_DECREF(t);
		return out;
	}
	if (PyUnicode_Check(key)) {
		Py_ssize_t i = key_index(r, key);
		return i < 0 ? NULL : rec_item(r, i);
	}
	PyErr_Format(PyExc_TypeError, "record indices must be int, slice or str, not %R",
	    (PyObject *) Py_TYPE(key));
	return NULL;
}

static int
rec_contains(RecObj *r, PyObject *key)
{
	PyObject *map = PyTuple_GetItem(r->desc, 1);
	return map == NULL ? -1 : PyDict_Contains(map, key);
}

static PyObject *
rec_iter(RecObj *r)
{
	PyObject *t = values_tuple(r), *it;
	if (t == NULL) {
		return NULL;
	}
	it = PyObject_GetIter(t);
	Py_DECREF(t);
	return it;
}

static PyObject *
rec_keys(RecObj *r, PyObject *unused)
{
	return PyObject_GetIter(names_of(r));
}

static PyObject *
rec_values(RecObj *r, PyObject *unused)
{
	return rec_iter(r);
}

static PyObject *
rec_items(RecObj *r, PyObject *unused)
{
	PyObject *names = names_of(r), *l = PyList_New(r->n), *it;
	if (l == NULL) {
		return NULL;
	}
	for (Py_ssize_t i = 0; i < r->n; i++) {
		PyObject *p =
		    PyTuple_Pack(2, PyTuple_GetItem(names, i), r->v[i] ? r->v[i] : Py_None);
		if (p == NULL) {
			Py_DECREF(l);
			return NULL;
		}
		PyList_SetItem(l, i, p);
	}
	it = PyObject_GetIter(l);
	Py_DECREF(l);
	return it;
}

static PyObject *
rec_get(RecObj *r, PyObject *args)
{
	PyObject  *key, *dflt = Py_None;
	Py_ssize_t i;
	if (!PyArg_ParseTuple(args, "O|O:get", &key, &dflt)) {
		return NULL;
	}
	i = key_index(r, key);
	if (i < 0) {
		if (!PyErr_ExceptionMatches(PyExc_KeyError)) {
			return NULL;
		}
		PyErr_Clear();
		return Py_NewRef(dflt);
	}
	return rec_item(r, i);
}

static PyObject *
rec_repr(RecObj *r)
{
	PyObject *names = names_of(r), *parts, *sep, *body, *out;
	if ((parts = PyList_New(0)) == NULL) {
		return NULL;
	}
	for (Py_ssize_t i = 0; i < r->n; i++) {
		PyObject *s = PyUnicode_FromFormat(
		    "%U=%R", PyTuple_GetItem(names, i), r->v[i] ? r->v[i] : Py_None);
		if (s == NULL || PyList_Append(parts, s) < 0) {
			Py_XDECREF(s);
			Py_DECREF(parts);
			return NULL;
		}
		Py_DECREF(s);
	}
	sep  = PyUnicode_FromString(" ");
	body = sep != NULL ? PyUnicode_Join(sep, parts) : NULL;
	Py_XDECREF(sep);
	Py_DECREF(parts);
	if (body == NULL) {
		return NULL;
	}
	out = PyUnicode_FromFormat(r->n ? "<Record %U>" : "<Record%U>", body);
	Py_DECREF(body);
	return out;
}

static PyObject *
rec_richcompare(PyObject *a, PyObject *b, int op)
{
	PyObject *ta, *tb, *out;
	PyObject *type = (PyObject *) Py_TYPE(a);
	ta             = PyObject_TypeCheck(a, (PyTypeObject *) type) ? values_tuple((RecObj *) a)
	                                                              : Py_NewRef(a);
	if (ta == NULL) {
		return NULL;
	}
	if (PyObject_TypeCheck(b, (PyTypeObject *) type)) {
		tb = values_tuple((RecObj *) b);
	} else if (PyTuple_Check(b)) {
		tb = Py_NewRef(b);
	} else {
		Py_DECREF(ta);
		Py_RETURN_NOTIMPLEMENTED;
	}
	if (tb == NULL) {
		Py_DECREF(ta);
		return NULL;
	}
	out = PyObject_RichCompare(ta, tb, op);
	Py_DECREF(ta);
	Py_DECREF(tb);
	return out;
}

static Py_hash_t
rec_hash(RecObj *r)
{
	PyObject *t = values_tuple(r);
	Py_hash_t h;
	if (t == NULL) {
		return -1;
	}
	h = PyObject_Hash(t);
	Py_DECREF(t);
	return h;
}

static PyObject *
rec_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
	PyErr_SetString(PyExc_TypeError, "iok.pg.Record objects are made by queries");
	return NULL;
}

static PyMethodDef rec_methods[] = {
	{ "keys", (PyCFunction) rec_keys, METH_NOARGS, "keys() -> iterator over the column names" },
	{ "values", (PyCFunction) rec_values, METH_NOARGS, "values() -> iterator over the values" },
	{ "items", (PyCFunction) rec_items, METH_NOARGS, "items() -> iterator of (name, value)" },
	{ "get", (PyCFunction) rec_get, METH_VARARGS, "get(name, default=None)" },
	{ NULL, NULL, 0, NULL },
};

static PyType_Slot rec_slots[] = {
	{ Py_tp_dealloc, rec_dealloc },
	{ Py_tp_traverse, rec_traverse },
	{ Py_tp_clear, rec_clear },
	{ Py_tp_repr, rec_repr },
	{ Py_tp_hash, rec_hash },
	{ Py_tp_richcompare, rec_richcompare },
	{ Py_tp_iter, rec_iter },
	{ Py_tp_methods, rec_methods },
	{ Py_tp_new, rec_new },
	{ Py_sq_length, rec_len },
	{ Py_sq_item, rec_item },
	{ Py_sq_contains, rec_contains },
	{ Py_mp_length, rec_len },
	{ Py_mp_subscript, rec_subscript },
	{ Py_tp_doc, (void *) "A row: r[0], r['name'], dict(r), r.keys(), r.values(), r.items()." },
	{ 0, NULL },
};

static PyType_Spec rec_spec = {
	.name      = "iok.pg.Record",
	.basicsize = (int) offsetof(RecObj, v),
	.itemsize  = (int) sizeof(PyObject *),
	.flags     = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.slots     = rec_slots,
};

PyObject *
ikpy_record_type_init(void)
{
	return PyType_FromSpec(&rec_spec);
}
