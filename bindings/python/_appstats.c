/*
 * _appstats.c - application counters, timers and markers for Python
 * (iok.counter, iok.timer, iok.marker), over iok_counter_* / iok_timer_* /
 * iok_marker_* (include/iok.h): each update is a C call doing relaxed
 * atomic operations, with the GIL held and no lock of iok's taken.
 *
 * iok.marker(name) passes the marker and returns a small object that, used
 * as a context manager, records the time spent until the block exits:
 * each call has its own start time, so threads sharing a name never mix
 * them up.  Marker handles are cached by name (a dict), so a call costs a
 * dict lookup, not iok_marker_get's lock and scan.
 */
#include <Python.h>

#include "iok.h"
#include "_appstats.h"

/* ------------------------------------------------------------ Counter */

typedef struct {
	PyObject_HEAD iok_counter c;
} counter_obj;

static PyObject *
counter_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
	const char  *name;
	counter_obj *self;
	iok_counter  c;
	int          rv;
	if (!PyArg_ParseTuple(args, "s", &name)) {
		return NULL;
	}
	if ((rv = iok_counter_get(name, &c)) != 0) {
		PyErr_Format(PyExc_ValueError, "iok.counter(%R): %s", PyTuple_GetItem(args, 0),
		    iok_strerror(rv));
		return NULL;
	}
	allocfunc alloc = (allocfunc) PyType_GetSlot(type, Py_tp_alloc);
	if ((self = (counter_obj *) alloc(type, 0)) == NULL) {
		return NULL;
	}
	self->c = c;
	return (PyObject *) self;
}

static PyObject *
counter_inc(counter_obj *self, PyObject *const *args, Py_ssize_t nargs)
{
	unsigned long long n = 1;
	if (nargs > 1) {
		PyErr_SetString(PyExc_TypeError, "inc(n=1)");
		return NULL;
	}
	if (nargs == 1) {
		n = PyLong_AsUnsignedLongLong(args[0]);
		if (n == (unsigned long long) -1 && PyErr_Occurred()) {
			return NULL;
		}
	}
	iok_counter_add(self->c, (uint64_t) n);
	Py_RETURN_NONE;
}

static PyObject *
counter_value(counter_obj *self, void *unused)
{
	return PyLong_FromUnsignedLongLong(iok_counter_value(self->c));
}

static PyMethodDef counter_methods[] = {
	{ "inc", (PyCFunction) (void (*)(void)) counter_inc, METH_FASTCALL,
	    "inc($self, n=1, /)\n--\n\nAdd n" },
	{ NULL, NULL, 0, NULL },
};
static PyGetSetDef counter_getset[] = {
	{ "value", (getter) counter_value, NULL, "the counter's total", NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};
static PyType_Slot counter_slots[] = {
	{ Py_tp_new, counter_new },
	{ Py_tp_methods, counter_methods },
	{ Py_tp_getset, counter_getset },
	{ Py_tp_doc, "Counter(name)\n--\n\nA named application counter; inc(n=1) adds to it." },
	{ 0, NULL },
};
static PyType_Spec counter_spec = { "iok._iok.Counter", sizeof(counter_obj), 0, Py_TPFLAGS_DEFAULT,
	counter_slots };

/* -------------------------------------------------------------- Timer */

typedef struct {
	PyObject_HEAD iok_timer t;
} timer_obj;

static PyObject *
timer_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
	const char *name;
	timer_obj  *self;
	iok_timer   t;
	int         rv;
	if (!PyArg_ParseTuple(args, "s", &name)) {
		return NULL;
	}
	if ((rv = iok_timer_get(name, &t)) != 0) {
		PyErr_Format(PyExc_ValueError, "iok.timer(%R): %s", PyTuple_GetItem(args, 0),
		    iok_strerror(rv));
		return NULL;
	}
	allocfunc alloc = (allocfunc) PyType_GetSlot(type, Py_tp_alloc);
	if ((self = (timer_obj *) alloc(type, 0)) == NULL) {
		return NULL;
	}
	self->t = t;
	return (PyObject *) self;
}

static PyObject *
timer_record(timer_obj *self, PyObject *arg)
{
	unsigned long long ns = PyLong_AsUnsignedLongLong(arg);
	if (ns == (unsigned long long) -1 && PyErr_Occurred()) {
		return NULL;
	}
	iok_timer_record(self->t, (uint64_t) ns);
	Py_RETURN_NONE;
}

static PyMethodDef timer_methods[] = {
	{ "record", (PyCFunction) timer_record, METH_O,
	    "record($self, ns, /)\n--\n\nAdd a duration in nanoseconds" },
	{ NULL, NULL, 0, NULL },
};
static PyType_Slot timer_slots[] = {
	{ Py_tp_new, timer_new },
	{ Py_tp_methods, timer_methods },
	{ Py_tp_doc, "Timer(name)\n--\n\nA named application timer; record(ns) adds a duration." },
	{ 0, NULL },
};
static PyType_Spec timer_spec = { "iok._iok.Timer", sizeof(timer_obj), 0, Py_TPFLAGS_DEFAULT,
	timer_slots };

/* ------------------------------------------------------------- Marker */

typedef struct {
	PyObject_HEAD iok_marker m;
	uint64_t                 passed_ns;
} pass_obj;

static PyTypeObject *pass_type;
static PyObject     *marker_cache; /* name -> int (the handle's pointer) */

static PyObject *
pass_enter(PyObject *self, PyObject *unused)
{
	Py_INCREF(self);
	return self;
}

static PyObject *
pass_exit(pass_obj *self, PyObject *const *args, Py_ssize_t nargs)
{
	iok_marker_leave(self->m, self->passed_ns);
	Py_RETURN_FALSE;
}

static PyMethodDef pass_methods[] = {
	{ "__enter__", pass_enter, METH_NOARGS, NULL },
	{ "__exit__", (PyCFunction) (void (*)(void)) pass_exit, METH_FASTCALL, NULL },
	{ NULL, NULL, 0, NULL },
};
static PyType_Slot pass_slots[] = {
	{ Py_tp_methods, pass_methods },
	{ Py_tp_doc, "A passed marker; as a context manager, records the time until exit." },
	{ 0, NULL },
};
static PyType_Spec pass_spec = { "iok._iok.MarkerPass", sizeof(pass_obj), 0, Py_TPFLAGS_DEFAULT,
	pass_slots };

static PyObject *
mod_marker(PyObject *mod, PyObject *name)
{
	PyObject  *h = PyDict_GetItemWithError(marker_cache, name); /* borrowed */
	iok_marker m;
	pass_obj  *p;
	if (h != NULL) {
		m.p = PyLong_AsVoidPtr(h);
	} else {
		const char *s;
		int         rv;
		if (PyErr_Occurred() || (s = PyUnicode_AsUTF8AndSize(name, NULL)) == NULL) {
			return NULL;
		}
		if ((rv = iok_marker_get(s, &m)) != 0) {
			PyErr_Format(
			    PyExc_ValueError, "iok.marker(%R): %s", name, iok_strerror(rv));
			return NULL;
		}
		if ((h = PyLong_FromVoidPtr(m.p)) == NULL ||
		    PyDict_SetItem(marker_cache, name, h) < 0) {
			Py_XDECREF(h);
			return NULL;
		}
		Py_DECREF(h);
	}
	allocfunc alloc = (allocfunc) PyType_GetSlot(pass_type, Py_tp_alloc);
	if ((p = (pass_obj *) alloc(pass_type, 0)) == NULL) {
		return NULL;
	}
	p->m         = m;
	p->passed_ns = iok_marker_pass(m);
	return (PyObject *) p;
}

static PyMethodDef appstats_methods[] = {
	{ "marker", mod_marker, METH_O,
	    "marker($module, name, /)\n--\n\nPass the named marker; use the result in a with "
	    "statement to also "
	    "record the time spent inside" },
	{ NULL, NULL, 0, NULL },
};

int
ikpy_appstats_init(PyObject *module)
{
	PyObject *t;
	if ((marker_cache = PyDict_New()) == NULL) {
		return -1;
	}
	if ((t = PyType_FromSpec(&counter_spec)) == NULL ||
	    PyModule_AddObject(module, "Counter", t) < 0) {
		Py_XDECREF(t);
		return -1;
	}
	if ((t = PyType_FromSpec(&timer_spec)) == NULL ||
	    PyModule_AddObject(module, "Timer", t) < 0) {
		Py_XDECREF(t);
		return -1;
	}
	if ((t = PyType_FromSpec(&pass_spec)) == NULL) {
		return -1;
	}
	pass_type = (PyTypeObject *) t; /* kept for the life of the process */
	return PyModule_AddFunctions(module, appstats_methods);
}
