/*
 * _reply.c - _iok.Reply: the awaitable a request's reply completes.
 *
 * Reply keeps asyncio's protocol for future-like objects (the
 * _asyncio_future_blocking flag, get_loop, add_done_callback, result,
 * cancel ...), so an asyncio.Task awaits it as it awaits a Future.  The
 * difference is how a reply wakes its task.  A Future's set_result
 * schedules the task's wakeup with loop.call_soon, and the default loop
 * builds and runs a Handle for it in pure Python: a fifth of the cost of
 * a pipelined Redis GET.  The reply reader runs as a loop callback,
 * outside every task, so it may run the wakeup at once, in the task's
 * context, as Python 3.12's eager tasks do; it checks that no task is
 * running first (ikpy_reply_may_be_eager).  Completion from anywhere else
 * (set_result, set_exception, cancel) schedules callbacks as a Future
 * does.
 *
 * Limited API (abi3, 3.11): asyncio's classes and functions are looked up
 * once, when the first Reply is made.
 */
#define PY_SSIZE_T_CLEAN
#ifndef Py_LIMITED_API
#define Py_LIMITED_API 0x030B0000
#endif
#include <Python.h>

#include <string.h>

#include "_reply.h"

enum { PENDING, RESULT, EXCEPTION, CANCELLED };

typedef struct {
	PyObject_HEAD PyObject *loop;
	PyObject               *value;       /* the result, or the exception */
	PyObject               *cancel_msg;  /* cancel(msg) */
	PyObject               *cb, *cb_ctx; /* the first callback (a task's wakeup), inline */
	PyObject               *more;        /* further (callback, context) tuples, or NULL */
	int                     state;
	int                     blocking; /* _asyncio_future_blocking */
} ReplyObject;

static PyTypeObject *g_reply_type;

/* From asyncio, once. */
static PyObject *g_cancelled_error, *g_invalid_state_error, *g_current_task, *g_copy_context;
static PyObject *g_str_run, *g_str_call_soon, *g_str_set_result, *g_str_set_exception;
static PyObject *g_str_thread_id;

static int
import_asyncio(void)
{
	PyObject *exc, *tasks, *cv;
	if (g_current_task != NULL) {
		return 0;
	}
	if ((exc = PyImport_ImportModule("asyncio.exceptions")) == NULL) {
		return -1;
	}
	g_cancelled_error     = PyObject_GetAttrString(exc, "CancelledError");
	g_invalid_state_error = PyObject_GetAttrString(exc, "InvalidStateError");
	Py_DECREF(exc);
	if ((cv = PyImport_ImportModule("contextvars")) == NULL) {
		return -1;
	}
	g_copy_context = PyObject_GetAttrString(cv, "copy_context");
	Py_DECREF(cv);
	if ((tasks = PyImport_ImportModule("asyncio.tasks")) == NULL) {
		return -1;
	}
	g_current_task = PyObject_GetAttrString(tasks, "current_task");
	Py_DECREF(tasks);
	if (g_cancelled_error == NULL || g_invalid_state_error == NULL || g_copy_context == NULL ||
	    g_current_task == NULL) {
		Py_CLEAR(g_current_task);
		return -1;
	}
	return 0;
}

int
ikpy_reply_check(PyObject *o)
{
	return g_reply_type != NULL && Py_IS_TYPE(o, g_reply_type);
}

int
ikpy_reply_may_be_eager(void)
{
	PyObject *t;
	if (g_current_task == NULL) {
		return 0; /* no Reply was ever made */
	}
	if ((t = PyObject_CallNoArgs(g_current_task)) == NULL) {
		if (PyErr_ExceptionMatches(PyExc_RuntimeError)) {
			PyErr_Clear(); /* no running loop: nothing to be eager for */
			return 0;
		}
		return -1;
	}
	Py_DECREF(t);
	return t == Py_None;
}

/* ------------------------------------------------------------ callbacks */

/* loop.call_soon(fn, self, context=ctx) */
static int
schedule(ReplyObject *r, PyObject *fn, PyObject *ctx)
{
	PyObject *meth, *args, *kw = NULL, *res = NULL;
	if ((meth = PyObject_GetAttr(r->loop, g_str_call_soon)) == NULL) {
		return -1;
	}
	args = PyTuple_Pack(2, fn, (PyObject *) r);
	if (args != NULL && ctx != NULL) {
		kw = Py_BuildValue("{sO}", "context", ctx);
	}
	if (args != NULL && (ctx == NULL || kw != NULL)) {
		res = PyObject_Call(meth, args, kw);
	}
	Py_DECREF(meth);
	Py_XDECREF(args);
	Py_XDECREF(kw);
	Py_XDECREF(res);
	return res == NULL ? -1 : 0;
}

static int
run_now(ReplyObject *r, PyObject *fn, PyObject *ctx)
{
	PyObject *res = ctx != NULL && ctx != Py_None
	                    ? PyObject_CallMethodObjArgs(ctx, g_str_run, fn, (PyObject *) r, NULL)
	                    : PyObject_CallFunctionObjArgs(fn, (PyObject *) r, NULL);
	if (res == NULL) {
		return -1;
	}
	Py_DECREF(res);
	return 0;
}

/* Runs (eager) or schedules every callback, each once.  An Exception from
 * one is reported as unraisable, as the loop reports a failing callback;
 * anything else (KeyboardInterrupt) is kept and raised after the rest. */
static int
fire(ReplyObject *r, int eager)
{
	PyObject  *cb = r->cb, *ctx = r->cb_ctx, *more = r->more;
	PyObject  *kept_t = NULL, *kept_v = NULL, *kept_tb = NULL;
	Py_ssize_t n = more != NULL ? PyList_Size(more) : 0;

	r->cb = r->cb_ctx = r->more = NULL;
	for (Py_ssize_t i = -1; i < n; i++) {
		PyObject *fn = cb, *c = ctx;
		if (i >= 0) {
			PyObject *pair = PyList_GetItem(more, i); /* borrowed */
			fn             = PyTuple_GetItem(pair, 0);
			c              = PyTuple_GetItem(pair, 1);
		}
		if (fn == NULL || (eager ? run_now(r, fn, c) : schedule(r, fn, c)) == 0) {
			continue;
		}
		if (PyErr_ExceptionMatches(PyExc_Exception) || kept_t != NULL) {
			PyErr_WriteUnraisable(fn);
		} else {
			PyErr_Fetch(&kept_t, &kept_v, &kept_tb);
		}
	}
	Py_XDECREF(cb);
	Py_XDECREF(ctx);
	Py_XDECREF(more);
	if (kept_t != NULL) {
		PyErr_Restore(kept_t, kept_v, kept_tb);
		return -1;
	}
	return 0;
}

int
ikpy_reply_complete(PyObject *o, PyObject *value, int is_exc, int eager)
{
	ReplyObject *r = (ReplyObject *) o;
	if (r->state != PENDING) {
		return 1;
	}
	Py_INCREF(value);
	r->value = value;
	r->state = is_exc ? EXCEPTION : RESULT;
	return fire(r, eager);
}

PyObject *
ikpy_pending_pop(PyObject *pending, unsigned long long token, int *err)
{
	PyObject *key = PyLong_FromUnsignedLongLong(token), *w;
	*err          = 0;
	if (key == NULL) {
		*err = -1;
		return NULL;
	}
	if ((w = PyDict_GetItemWithError(pending, key)) == NULL) { /* borrowed */
		*err = PyErr_Occurred() ? -1 : 0;
		Py_DECREF(key);
		return NULL;
	}
	Py_INCREF(w);
	if (PyDict_DelItem(pending, key) < 0) {
		Py_CLEAR(w);
		*err = -1;
	}
	Py_DECREF(key);
	return w;
}

PyObject *
ikpy_take_exception(void)
{
	PyObject *t, *v, *tb;
	PyErr_Fetch(&t, &v, &tb);
	PyErr_NormalizeException(&t, &v, &tb);
	if (v != NULL && tb != NULL) {
		PyException_SetTraceback(v, tb);
	}
	Py_XDECREF(t);
	Py_XDECREF(tb);
	return v;
}

int
ikpy_pending_settle(PyObject *w, PyObject *value, int is_exc, int *eager)
{
	PyObject *r;
	int       rv = 0;
	if (value == NULL) {
		/* The decoder failed (out of memory, say): the waiter gets why. */
		if ((value = ikpy_take_exception()) == NULL) {
			Py_DECREF(w);
			return -1;
		}
		rv = ikpy_pending_settle(w, value, 1, eager);
		Py_DECREF(value);
		return rv;
	}
	if (ikpy_reply_check(w)) {
		if (*eager == -2 && (*eager = ikpy_reply_may_be_eager()) < 0) {
			Py_DECREF(w);
			return -1;
		}
		rv = ikpy_reply_complete(w, value, is_exc, *eager) < 0 ? -1 : 0;
		Py_DECREF(w);
		return rv;
	}
	r = PyObject_CallMethodObjArgs(
	    w, is_exc ? g_str_set_exception : g_str_set_result, value, NULL);
	Py_DECREF(w);
	if (r == NULL) {
		/* A future cancelled meanwhile (InvalidStateError): its
		 * coroutine has given up on it; drop the reply. */
		PyErr_Clear();
	} else {
		Py_DECREF(r);
	}
	return 0;
}

/* ------------------------------------------------------------- methods */

static PyObject *
reply_alloc(PyTypeObject *type, PyObject *loop)
{
	ReplyObject *r;
	if (import_asyncio() < 0) {
		return NULL;
	}
	allocfunc alloc = (allocfunc) PyType_GetSlot(type, Py_tp_alloc);
	if ((r = (ReplyObject *) alloc(type, 0)) == NULL) {
		return NULL;
	}
	Py_INCREF(loop);
	r->loop = loop;
	return (PyObject *) r;
}

static PyObject *
reply_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
	if (PyTuple_Size(args) != 1 || (kw != NULL && PyDict_Size(kw) > 0)) {
		PyErr_SetString(PyExc_TypeError, "Reply(loop): one positional argument");
		return NULL;
	}
	/* borrowed; one Reply per request: no parser */
	return reply_alloc(type, PyTuple_GetItem(args, 0));
}

PyObject *
ikpy_reply_new(PyObject *loop)
{
	return reply_alloc(g_reply_type, loop);
}

static int
reply_traverse(ReplyObject *r, visitproc visit, void *arg)
{
	Py_VISIT(Py_TYPE((PyObject *) r));
	Py_VISIT(r->loop);
	Py_VISIT(r->value);
	Py_VISIT(r->cancel_msg);
	Py_VISIT(r->cb);
	Py_VISIT(r->cb_ctx);
	Py_VISIT(r->more);
	return 0;
}

static int
reply_clear(ReplyObject *r)
{
	Py_CLEAR(r->loop);
	Py_CLEAR(r->value);
	Py_CLEAR(r->cancel_msg);
	Py_CLEAR(r->cb);
	Py_CLEAR(r->cb_ctx);
	Py_CLEAR(r->more);
	return 0;
}

static void
reply_dealloc(ReplyObject *r)
{
	PyTypeObject *tp = Py_TYPE((PyObject *) r);
	PyObject_GC_UnTrack(r);
	reply_clear(r);
	freefunc free = (freefunc) PyType_GetSlot(tp, Py_tp_free);
	free(r);
	Py_DECREF(tp);
}

static PyObject *
raise_state(ReplyObject *r)
{
	if (r->state == CANCELLED) {
		if (r->cancel_msg != NULL && r->cancel_msg != Py_None) {
			PyErr_SetObject(g_cancelled_error, r->cancel_msg);
		} else {
			PyErr_SetNone(g_cancelled_error);
		}
	} else {
		PyErr_SetString(g_invalid_state_error, "Result is not set.");
	}
	return NULL;
}

static PyObject *
reply_result(ReplyObject *r, PyObject *unused)
{
	(void) unused;
	if (r->state == RESULT) {
		Py_INCREF(r->value);
		return r->value;
	}
	if (r->state == EXCEPTION) {
		PyErr_SetObject((PyObject *) Py_TYPE(r->value), r->value);
		return NULL;
	}
	return raise_state(r);
}

/* Attribute lookup by C string (tp_getattr; lookups by str take
 * tp_getattro, the generic one).  asyncio's C task, woken by a future
 * that is not asyncio's own, asks it for result() by a C string
 * (PyObject_CallMethod(fut, "result", NULL) in 3.11-3.13's task_wakeup):
 * answered here without making a str and walking the type's dicts. */
static PyMethodDef reply_result_def = { "result", (PyCFunction) reply_result, METH_NOARGS, NULL };

static PyObject *
reply_getattr(PyObject *self, char *name)
{
	PyObject *s, *v;
	if (strcmp(name, "result") == 0) {
		return PyCFunction_NewEx(&reply_result_def, self, NULL);
	}
	if ((s = PyUnicode_FromString(name)) == NULL) {
		return NULL;
	}
	v = PyObject_GenericGetAttr(self, s);
	Py_DECREF(s);
	return v;
}

static PyObject *
reply_exception(ReplyObject *r, PyObject *unused)
{
	(void) unused;
	if (r->state == RESULT) {
		Py_RETURN_NONE;
	}
	if (r->state == EXCEPTION) {
		Py_INCREF(r->value);
		return r->value;
	}
	return raise_state(r);
}

static PyObject *
reply_done(ReplyObject *r, PyObject *unused)
{
	(void) unused;
	return PyBool_FromLong(r->state != PENDING);
}

static PyObject *
reply_cancelled(ReplyObject *r, PyObject *unused)
{
	(void) unused;
	return PyBool_FromLong(r->state == CANCELLED);
}

static PyObject *
reply_get_loop(ReplyObject *r, PyObject *unused)
{
	(void) unused;
	Py_INCREF(r->loop);
	return r->loop;
}

/* add_done_callback(fn, *, context=None).  A task adds its wakeup with
 * every await, passing context by keyword: parsed by hand (fast call); as
 * a tuple and a dict through PyArg_ParseTupleAndKeywords it was 8% of a
 * pipelined Redis GET's instructions. */
static PyObject *
reply_add_done_callback(ReplyObject *r, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
	PyObject  *fn = nargs == 1 ? args[0] : NULL, *ctx = NULL, *pair;
	Py_ssize_t nkw = kwnames != NULL ? PyTuple_Size(kwnames) : 0;
	int        rv;
	for (Py_ssize_t i = 0; i < nkw && nargs <= 1; i++) {
		PyObject *name = PyTuple_GetItem(kwnames, i), *v = args[nargs + i];
		if (fn == NULL && PyUnicode_CompareWithASCIIString(name, "fn") == 0) {
			fn = v;
		} else if (ctx == NULL && PyUnicode_CompareWithASCIIString(name, "context") == 0) {
			ctx = v;
		} else {
			nargs = 2; /* an unknown or repeated keyword */
		}
	}
	if (fn == NULL || nargs > 1) {
		PyErr_SetString(PyExc_TypeError, "add_done_callback(fn, *, context=None)");
		return NULL;
	}
	if (ctx == NULL) {
		ctx = Py_None;
	}
	if (ctx == Py_None) {
		if ((ctx = PyObject_CallNoArgs(g_copy_context)) == NULL) {
			return NULL;
		}
	} else {
		Py_INCREF(ctx);
	}
	if (r->state != PENDING) {
		rv = schedule(r, fn, ctx);
		Py_DECREF(ctx);
		if (rv < 0) {
			return NULL;
		}
		Py_RETURN_NONE;
	}
	if (r->cb == NULL && r->more == NULL) { /* registration order kept */
		Py_INCREF(fn);
		r->cb     = fn;
		r->cb_ctx = ctx;
		Py_RETURN_NONE;
	}
	if (r->more == NULL && (r->more = PyList_New(0)) == NULL) {
		Py_DECREF(ctx);
		return NULL;
	}
	pair = PyTuple_Pack(2, fn, ctx);
	Py_DECREF(ctx);
	if (pair == NULL) {
		return NULL;
	}
	rv = PyList_Append(r->more, pair);
	Py_DECREF(pair);
	if (rv < 0) {
		return NULL;
	}
	Py_RETURN_NONE;
}

static PyObject *
reply_remove_done_callback(ReplyObject *r, PyObject *fn)
{
	long n = 0;
	int  eq;
	if (r->cb != NULL) {
		if ((eq = PyObject_RichCompareBool(r->cb, fn, Py_EQ)) < 0) {
			return NULL;
		}
		if (eq) {
			Py_CLEAR(r->cb);
			Py_CLEAR(r->cb_ctx);
			n++;
		}
	}
	for (Py_ssize_t i = r->more != NULL ? PyList_Size(r->more) - 1 : -1; i >= 0; i--) {
		PyObject *f = PyTuple_GetItem(PyList_GetItem(r->more, i), 0);
		if (f == NULL || (eq = PyObject_RichCompareBool(f, fn, Py_EQ)) < 0) {
			return NULL;
		}
		if (eq) {
			if (PySequence_DelItem(r->more, i) < 0) {
				return NULL;
			}
			n++;
		}
	}
	return PyLong_FromLong(n);
}

static PyObject *
reply_cancel(ReplyObject *r, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "msg", NULL };
	PyObject    *msg      = Py_None;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:cancel", kwlist, &msg)) {
		return NULL;
	}
	if (r->state != PENDING) {
		Py_RETURN_FALSE;
	}
	r->state = CANCELLED;
	Py_INCREF(msg);
	r->cancel_msg = msg;
	if (fire(r, 0) < 0) {
		return NULL;
	}
	Py_RETURN_TRUE;
}

static PyObject *
set_value(ReplyObject *r, PyObject *v, int is_exc)
{
	if (r->state != PENDING) {
		PyErr_SetString(g_invalid_state_error, "invalid state");
		return NULL;
	}
	if (ikpy_reply_complete((PyObject *) r, v, is_exc, 0) < 0) {
		return NULL;
	}
	Py_RETURN_NONE;
}

static PyObject *
reply_set_result(ReplyObject *r, PyObject *v)
{
	return set_value(r, v, 0);
}

static PyObject *
reply_set_exception(ReplyObject *r, PyObject *e)
{
	if (PyType_Check(e) && PyObject_IsSubclass(e, PyExc_BaseException) == 1) {
		PyObject *inst = PyObject_CallNoArgs(e);
		if (inst == NULL) {
			return NULL;
		}
		PyObject *res = set_value(r, inst, 1);
		Py_DECREF(inst);
		return res;
	}
	if (!PyExceptionInstance_Check(e)) {
		PyErr_SetString(PyExc_TypeError, "invalid exception object");
		return NULL;
	}
	return set_value(r, e, 1);
}

/* am_send: what a coroutine's await runs (PyIter_Send) when the type has
 * it.  The result comes back as PYGEN_RETURN, where tp_iternext must
 * raise StopIteration(result): an exception made and caught per await,
 * 1.6% of a pipelined Redis GET's instructions.  arg is ignored, as
 * asyncio's future iterator ignores it. */
static PySendResult
reply_am_send(ReplyObject *r, PyObject *arg, PyObject **result)
{
	(void) arg;
	if (r->state == PENDING) {
		r->blocking = 1;
		Py_INCREF((PyObject *) r);
		*result = (PyObject *) r;
		return PYGEN_NEXT;
	}
	return (*result = reply_result(r, NULL)) != NULL ? PYGEN_RETURN : PYGEN_ERROR;
}

/* await: yield ourselves to the task until done, then the result. */
static PyObject *
reply_await(ReplyObject *r)
{
	Py_INCREF((PyObject *) r);
	return (PyObject *) r;
}

static PyObject *
reply_iternext(ReplyObject *r)
{
	PyObject *v;
	if (r->state == PENDING) {
		r->blocking = 1;
		Py_INCREF((PyObject *) r);
		return (PyObject *) r;
	}
	if ((v = reply_result(r, NULL)) == NULL) {
		return NULL;
	}
	if (v == Py_None) {
		Py_DECREF(v);
		return NULL; /* StopIteration(None) */
	}
	if (PyTuple_Check(v) || PyExceptionInstance_Check(v)) {
		/* Either would be taken apart as StopIteration's arguments. */
		PyObject *stop = PyObject_CallFunctionObjArgs(PyExc_StopIteration, v, NULL);
		Py_DECREF(v);
		if (stop == NULL) {
			return NULL;
		}
		PyErr_SetObject(PyExc_StopIteration, stop);
		Py_DECREF(stop);
		return NULL;
	}
	PyErr_SetObject(PyExc_StopIteration, v);
	Py_DECREF(v);
	return NULL;
}

static PyObject *
reply_get_blocking(ReplyObject *r, void *unused)
{
	(void) unused;
	return PyBool_FromLong(r->blocking);
}

static int
reply_set_blocking(ReplyObject *r, PyObject *v, void *unused)
{
	(void) unused;
	int b = v != NULL ? PyObject_IsTrue(v) : -1;
	if (b < 0) {
		if (!PyErr_Occurred()) {
			PyErr_SetString(
			    PyExc_AttributeError, "cannot delete _asyncio_future_blocking");
		}
		return -1;
	}
	r->blocking = b;
	return 0;
}

static PyObject *
reply_repr(ReplyObject *r)
{
	static const char *names[] = { "pending", "finished", "finished", "cancelled" };
	return PyUnicode_FromFormat("<iok Reply %s>", names[r->state]);
}

static PyMethodDef reply_methods[] = {
	{ "result", (PyCFunction) reply_result, METH_NOARGS, NULL },
	{ "exception", (PyCFunction) reply_exception, METH_NOARGS, NULL },
	{ "done", (PyCFunction) reply_done, METH_NOARGS, NULL },
	{ "cancelled", (PyCFunction) reply_cancelled, METH_NOARGS, NULL },
	{ "get_loop", (PyCFunction) reply_get_loop, METH_NOARGS, NULL },
	{ "add_done_callback", (PyCFunction) (void (*)(void)) reply_add_done_callback,
	    METH_FASTCALL | METH_KEYWORDS, NULL },
	{ "remove_done_callback", (PyCFunction) reply_remove_done_callback, METH_O, NULL },
	{ "cancel", (PyCFunction) (void (*)(void)) reply_cancel, METH_VARARGS | METH_KEYWORDS,
	    NULL },
	{ "set_result", (PyCFunction) reply_set_result, METH_O, NULL },
	{ "set_exception", (PyCFunction) reply_set_exception, METH_O, NULL },
	{ NULL, NULL, 0, NULL },
};

static PyGetSetDef reply_getset[] = {
	{ "_asyncio_future_blocking", (getter) reply_get_blocking, (setter) reply_set_blocking,
	    NULL, NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

static PyType_Slot reply_slots[] = {
	{ Py_tp_doc, "Reply(loop): a request's reply, awaitable as an asyncio Future is; "
	             "the reply reader wakes the awaiting task at once." },
	{ Py_tp_new, reply_new },
	{ Py_tp_dealloc, reply_dealloc },
	{ Py_tp_traverse, reply_traverse },
	{ Py_tp_clear, reply_clear },
	{ Py_tp_repr, reply_repr },
	{ Py_tp_getattr, reply_getattr },
	{ Py_tp_getattro, PyObject_GenericGetAttr },
	{ Py_tp_iter, reply_await },
	{ Py_tp_iternext, reply_iternext },
	{ Py_am_await, reply_await },
	{ Py_am_send, reply_am_send },
	{ Py_tp_methods, reply_methods },
	{ Py_tp_getset, reply_getset },
	{ 0, NULL },
};

static PyType_Spec reply_spec = {
	.name      = "iok._iok.Reply",
	.basicsize = sizeof(ReplyObject),
	.flags     = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.slots     = reply_slots,
};

/* _loop_runs_here(loop) -> bool: an asyncio BaseEventLoop runs in the
 * calling thread (loop._thread_id == threading.get_ident()).  Every
 * asyncio command asks it (iok/_aio.py, _runs_here); as a lambda it was
 * a Python frame per command. */
static PyObject *
mod_loop_runs_here(PyObject *m, PyObject *loop)
{
	PyObject     *tid = PyObject_GetAttr(loop, g_str_thread_id);
	unsigned long id;
	int           here = 0;
	(void) m;
	if (tid == NULL) {
		return NULL;
	}
	if (PyLong_Check(tid)) {
		id = PyLong_AsUnsignedLong(tid);
		if (id == (unsigned long) -1 && PyErr_Occurred()) {
			PyErr_Clear(); /* not a thread id */
		} else {
			here = id == PyThread_get_thread_ident();
		}
	}
	Py_DECREF(tid);
	return PyBool_FromLong(here);
}

static PyMethodDef reply_module_methods[] = {
	{ "_loop_runs_here", mod_loop_runs_here, METH_O, NULL },
	{ NULL, NULL, 0, NULL },
};

int
ikpy_reply_init(PyObject *module)
{
	PyObject *type;
	g_str_thread_id     = PyUnicode_InternFromString("_thread_id");
	g_str_run           = PyUnicode_InternFromString("run");
	g_str_call_soon     = PyUnicode_InternFromString("call_soon");
	g_str_set_result    = PyUnicode_InternFromString("set_result");
	g_str_set_exception = PyUnicode_InternFromString("set_exception");
	if (g_str_thread_id == NULL || g_str_run == NULL || g_str_call_soon == NULL ||
	    g_str_set_result == NULL || g_str_set_exception == NULL ||
	    PyModule_AddFunctions(module, reply_module_methods) < 0) {
		return -1;
	}
	if ((type = PyType_FromSpec(&reply_spec)) == NULL) {
		return -1;
	}
	if (PyModule_AddObjectRef(module, "Reply", type) < 0) {
		Py_DECREF(type);
		return -1;
	}
	g_reply_type = (PyTypeObject *) type; /* the module keeps it alive */
	Py_DECREF(type);
	return 0;
}
