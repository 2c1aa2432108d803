/*
 * _command.c - _iok.CommandMethod: an iok.redis.AsyncClient command that
 * runs without a Python frame.
 *
 * `await r.get("k")` ran a coroutine per command (iok/redis.py,
 * _command_coroutine): its frame, the plan's tuple, a dozen attribute
 * loads and the await of the Reply through it were 28% of a pipelined
 * GET's instructions (measured against a loop that sends through
 * sock._redis_submit and awaits the Reply itself).  A CommandMethod is
 * the command's attribute on the class: r.get is a bound command and
 * r.get("k") a Command, an awaitable that looks like a coroutine.  Its
 * first step does in C what the coroutine does when all is well (plan,
 * no link check due, the asyncio state of the running loop, submit,
 * start reading), then awaits the Reply.  When that path does not apply
 * (no connection yet, a link check due, a loop not this socket's, a full
 * send queue, a failed send) the Command runs the coroutine instead,
 * from its start: nothing has been sent by then.  A failed reply goes to
 * failed(client, sock, aio, token, reply, exc) (iok/redis.py), which does
 * what the coroutine's except clause does and returns what to raise.
 *
 * asyncio takes a Command as a coroutine (send, throw, close and
 * __await__ make it a collections.abc.Coroutine: create_task, gather and
 * wait_for accept it); inspect takes the method as a coroutine function
 * (its __code__, set by iok/redis.py, is the coroutine's: the duck type
 * inspect documents for Cython's functions).
 *
 * Limited API (abi3, 3.11), like the rest of the module.
 */
#define PY_SSIZE_T_CLEAN
#ifndef Py_LIMITED_API
#define Py_LIMITED_API 0x030B0000
#endif
#include <Python.h>
#include <structmember.h>

#include <time.h>

#include "_command.h"

/* CommandMethod(plan, run, failed, qualname) */
typedef struct {
	PyObject_HEAD PyObject *plan;     /* args -> (command, transform, flags) */
	PyObject               *run;      /* the coroutine function: the whole path in Python */
	PyObject               *failed;   /* failed(client, sock, aio, token, reply, exc) */
	PyObject               *qualname; /* "AsyncClient.get" */
	PyObject               *dict;     /* __name__, __doc__, __wrapped__, __code__ ... */
} MethodObject;

/* r.get: the method and its client. */
typedef struct {
	PyObject_HEAD MethodObject *method;
	PyObject                   *client;
} BoundObject;

enum { C_NEW, C_AWAIT, C_DELEGATE, C_DONE };

/* r.get("k"), until awaited to its end. */
typedef struct {
	PyObject_HEAD MethodObject *method;
	PyObject                   *args, *kwargs;                  /* args: (client, "k") */
	PyObject                   *sock, *aio, *reply, *transform; /* while awaiting */
	PyObject                   *delegate; /* method->run's coroutine (C_DELEGATE) */
	unsigned long long          token;
	int                         state;
} CommandObject;

/* iok.redis's clients (_Base) derive from ClientBase: the fields a
 * command's first step reads are C fields (member descriptors for
 * Python), each a load instead of a generic attribute lookup of ~130
 * instructions. */
typedef struct {
	PyObject_HEAD PyObject *sock;     /* _sock: the main Socket, or None */
	double                  check_at; /* _check_at: time.monotonic() of the next link check */
	char                    suspect;  /* _suspect: the link is looked at before each command */
	char                    retry;    /* _retry: idempotent commands may be retried */
} ClientObject;

/* And iok._aio's per-loop state of a socket (_State) derives from
 * AioStateBase, for the same reason. */
typedef struct {
	PyObject_HEAD PyObject *loop;      /* the loop this state serves */
	PyObject               *runs_here; /* runs_here() -> that loop runs in this thread */
	PyObject               *pending;   /* token -> Reply */
	char                    reading;   /* the loop watches the receive descriptor */
} AioStateObject;

static PyTypeObject *g_method_type, *g_bound_type, *g_command_type, *g_client_type, *g_aio_type;

static PyObject *s_aio, *s_start_reading, *s_throw, *s_close;

/* ------------------------------------------------------------ Command */

/* A Command of m called with args, the client first. */
static PyObject *
command_new(MethodObject *m, PyObject *args, PyObject *kw)
{
	allocfunc      alloc = (allocfunc) PyType_GetSlot(g_command_type, Py_tp_alloc);
	CommandObject *c     = (CommandObject *) alloc(g_command_type, 0);
	if (c == NULL) {
		return NULL;
	}
	c->method = (MethodObject *) Py_NewRef((PyObject *) m);
	c->args   = Py_NewRef(args);
	c->kwargs = kw != NULL && PyDict_Size(kw) > 0 ? Py_NewRef(kw) : NULL;
	c->state  = C_NEW;
	return (PyObject *) c;
}

/* What an awaiting Command holds; dropped once it is done. */
static void
command_drop(CommandObject *c)
{
	Py_CLEAR(c->sock);
	Py_CLEAR(c->aio);
	Py_CLEAR(c->reply);
	Py_CLEAR(c->transform);
	Py_CLEAR(c->delegate);
	Py_CLEAR(c->args);
	Py_CLEAR(c->kwargs);
}

/* time.monotonic(), which _check_at is kept in. */
static double
monotonic(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

/* The asyncio state (sock._aio) if its loop runs here: a new reference,
 * Py_None (new) if not (or none yet, or not an AioStateBase), NULL with
 * an exception. */
static AioStateObject *
aio_here(PyObject *sock)
{
	PyObject       *aio = PyObject_GetAttr(sock, s_aio), *yes;
	AioStateObject *st;
	int             here;
	if (aio == NULL || aio == Py_None) {
		return (AioStateObject *) aio;
	}
	st = (AioStateObject *) aio;
	if (!PyObject_TypeCheck(aio, g_aio_type) || st->pending == NULL || st->loop == NULL ||
	    st->runs_here == NULL) {
		Py_DECREF(aio);
		return (AioStateObject *) Py_NewRef(Py_None); /* the coroutine sees to it */
	}
	/* A task the reply dispatcher woke runs in the state's loop: the
	 * dispatcher's pending dict says so; others ask the loop. */
	if (ikpy_sock_dispatch_pending(sock) == st->pending) {
		return st;
	}
	here = (yes = PyObject_CallNoArgs(st->runs_here)) == NULL ? -1 : PyObject_IsTrue(yes);
	Py_XDECREF(yes);
	if (here != 1) {
		Py_DECREF(aio);
		return here < 0 ? NULL : (AioStateObject *) Py_NewRef(Py_None);
	}
	return st;
}

/* Run method->run(client, *args, **kwargs) from here on. */
static int
command_delegate(CommandObject *c)
{
	if ((c->delegate = PyObject_Call(c->method->run, c->args, c->kwargs)) == NULL) {
		return -1;
	}
	c->state = C_DELEGATE;
	return 0;
}

/* The first step: send the command (C_AWAIT) or hand over to the
 * coroutine (C_DELEGATE).  0, or -1 with an exception. */
static int
command_start(CommandObject *c)
{
	PyObject       *cmd, *transform = NULL, *sock = NULL, *reply = NULL;
	AioStateObject *aio    = NULL;
	PyObject       *client = PyTuple_GetItem(c->args, 0);
	ClientObject   *cl;
	long            flags;
	uint64_t        token = 0;
	int             r = 0, rv = -1;

	if ((cmd = ikpy_plan_take(c->method->plan, c->args, 1, c->kwargs, &transform, &flags)) ==
	    NULL) {
		return -1;
	}
	if (!PyObject_TypeCheck(client, g_client_type)) {
		PyErr_SetString(
		    PyExc_TypeError, "an AsyncClient command's client is an iok.redis client");
		goto out;
	}
	cl = (ClientObject *) client;
	if (cl->sock == NULL || cl->sock == Py_None || cl->suspect || monotonic() > cl->check_at) {
		goto delegate; /* to connect, or to check the link first */
	}
	sock = Py_NewRef(cl->sock);
	if (!cl->retry) {
		flags = 0;
	}
	if ((aio = aio_here(sock)) == NULL) {
		goto out;
	}
	if ((PyObject *) aio == Py_None) {
		goto delegate; /* no state yet, or another loop's */
	}
	reply = ikpy_redis_submit(sock, cmd, flags, aio->pending, aio->loop, &token);
	if (reply == NULL || reply == Py_None) {
		/* A full send queue or a failed send: the coroutine waits for
		 * room, or makes the error the client's (nothing was sent). */
		PyErr_Clear();
		goto delegate;
	}
	c->sock      = Py_NewRef(sock);
	c->aio       = Py_NewRef((PyObject *) aio);
	c->reply     = Py_NewRef(reply);
	c->transform = transform;
	c->token     = token;
	c->state     = C_AWAIT;
	transform    = NULL;
	if (!aio->reading) {
		PyObject *res =
		    PyObject_CallMethodObjArgs((PyObject *) aio, s_start_reading, sock, NULL);
		r = res == NULL ? -1 : 1;
		Py_XDECREF(res);
	}
	rv = r < 0 ? -1 : 0; /* an error here fails the command (below) */
	goto out;

delegate:
	rv = command_delegate(c);
out:
	Py_DECREF(cmd);
	Py_XDECREF(transform);
	Py_XDECREF(sock);
	Py_XDECREF((PyObject *) aio);
	Py_XDECREF(reply);
	return rv;
}

/* The awaited reply failed with the exception being raised: failed()
 * forgets it and says what to raise (the exception itself, re-raised
 * whole, or another raised from None). */
static void
command_fail(CommandObject *c)
{
	PyObject *t, *v, *tb, *token, *raise = NULL;
	PyErr_Fetch(&t, &v, &tb);
	PyErr_NormalizeException(&t, &v, &tb);
	if (tb != NULL && v != NULL) {
		PyException_SetTraceback(v, tb);
	}
	if ((token = PyLong_FromUnsignedLongLong(c->token)) != NULL && v != NULL) {
		raise = PyObject_CallFunctionObjArgs(c->method->failed, PyTuple_GetItem(c->args, 0),
		    c->sock, c->aio, token, c->reply, v, NULL);
	}
	Py_XDECREF(token);
	c->state = C_DONE;
	command_drop(c);
	if (raise == NULL) { /* failed() raised: that goes up */
		Py_XDECREF(t);
		Py_XDECREF(v);
		Py_XDECREF(tb);
	} else if (raise == v) {
		Py_DECREF(raise);
		PyErr_Restore(t, v, tb);
	} else {
		PyException_SetCause(raise, NULL); /* from None */
		PyException_SetContext(raise, v);  /* takes v */
		PyErr_SetObject((PyObject *) Py_TYPE(raise), raise);
		Py_DECREF(raise);
		Py_XDECREF(t);
		Py_XDECREF(tb);
	}
}

/* Await the Reply: it yields itself to the task until done. */
static PySendResult
command_await(CommandObject *c, PyObject *arg, PyObject **result)
{
	PySendResult r = PyIter_Send(c->reply, arg, result);
	if (r == PYGEN_NEXT) {
		return r;
	}
	if (r == PYGEN_ERROR) {
		command_fail(c);
		*result = NULL;
		return r;
	}
	c->state = C_DONE;
	if (c->transform != NULL) {
		PyObject *v = PyObject_CallFunctionObjArgs(c->transform, *result, NULL);
		Py_DECREF(*result);
		if ((*result = v) == NULL) {
			r = PYGEN_ERROR;
		}
	}
	command_drop(c);
	return r;
}

static PySendResult
command_am_send(CommandObject *c, PyObject *arg, PyObject **result)
{
	*result = NULL;
	switch (c->state) {
	case C_NEW:
		if (arg != Py_None) {
			PyErr_SetString(PyExc_TypeError,
			    "can't send non-None value to a just-started coroutine");
			return PYGEN_ERROR;
		}
		if (command_start(c) < 0) {
			if (c->state == C_AWAIT) {
				command_fail(c); /* sent, then its reading failed */
			}
			c->state = C_DONE;
			command_drop(c);
			return PYGEN_ERROR;
		}
		if (c->state == C_AWAIT) {
			return command_await(c, Py_None, result);
		}
		return PyIter_Send(c->delegate, arg, result);
	case C_AWAIT:
		return command_await(c, arg, result);
	case C_DELEGATE:
		return PyIter_Send(c->delegate, arg, result);
	default:
		PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
		return PYGEN_ERROR;
	}
}

/* StopIteration(v) raised; v is dropped. */
static PyObject *
raise_stop(PyObject *v)
{
	PyObject *stop = PyObject_CallFunctionObjArgs(PyExc_StopIteration, v, NULL);
	Py_DECREF(v);
	if (stop != NULL) {
		PyErr_SetObject(PyExc_StopIteration, stop);
		Py_DECREF(stop);
	}
	return NULL;
}

/* send(value), as a coroutine's: the value yielded, or StopIteration. */
static PyObject *
command_send(CommandObject *c, PyObject *arg)
{
	PyObject    *v;
	PySendResult r = command_am_send(c, arg, &v);
	return r == PYGEN_RETURN ? raise_stop(v) : v;
}

static PyObject *
command_iternext(CommandObject *c)
{
	return command_send(c, Py_None);
}

/* Raise what throw(typ[, val[, tb]]) names, as a generator's throw does. */
static void
set_thrown(PyObject *args)
{
	PyObject *typ = NULL, *val = NULL, *tb = NULL, *t, *v, *b;
	if (!PyArg_UnpackTuple(args, "throw", 1, 3, &typ, &val, &tb)) {
		return;
	}
	if (tb == Py_None) {
		tb = NULL;
	}
	if (tb != NULL && !PyTraceBack_Check(tb)) {
		PyErr_SetString(
		    PyExc_TypeError, "throw() third argument must be a traceback object");
		return;
	}
	if (PyExceptionInstance_Check(typ)) {
		if (val != NULL && val != Py_None) {
			PyErr_SetString(
			    PyExc_TypeError, "instance exception may not have a separate value");
			return;
		}
		PyErr_SetObject((PyObject *) Py_TYPE(typ), typ);
	} else if (PyExceptionClass_Check(typ)) {
		PyErr_SetObject(typ, val == Py_None ? NULL : val);
	} else {
		PyObject *name = PyType_GetName(Py_TYPE(typ));
		if (name != NULL) {
			PyErr_Format(PyExc_TypeError,
			    "exceptions must be classes or instances deriving from BaseException, "
			    "not %U",
			    name);
			Py_DECREF(name);
		}
		return;
	}
	if (tb != NULL) {
		PyErr_Fetch(&t, &v, &b);
		PyErr_NormalizeException(&t, &v, &b);
		Py_XDECREF(b);
		PyException_SetTraceback(v, tb);
		PyErr_Restore(t, v, Py_NewRef(tb));
	}
}

static PyObject *
command_throw(CommandObject *c, PyObject *args)
{
	if (c->state == C_DELEGATE) {
		PyObject *meth = PyObject_GetAttr(c->delegate, s_throw), *r;
		if (meth == NULL) {
			return NULL;
		}
		r = PyObject_Call(meth, args, NULL);
		Py_DECREF(meth);
		return r;
	}
	set_thrown(args);
	if (c->state == C_AWAIT) {
		command_fail(c); /* as at the coroutine's await */
	}
	c->state = C_DONE;
	command_drop(c);
	return NULL;
}

static PyObject *
command_close(CommandObject *c, PyObject *unused)
{
	(void) unused;
	if (c->state == C_DELEGATE) {
		return PyObject_CallMethodObjArgs(c->delegate, s_close, NULL);
	}
	if (c->state == C_AWAIT) {
		PyErr_SetNone(PyExc_GeneratorExit);
		command_fail(c);
		if (!PyErr_ExceptionMatches(PyExc_GeneratorExit)) {
			return NULL;
		}
		PyErr_Clear();
	}
	c->state = C_DONE;
	command_drop(c);
	Py_RETURN_NONE;
}

static PyObject *
command_await_self(PyObject *c)
{
	return Py_NewRef(c);
}

static int
command_traverse(CommandObject *c, visitproc visit, void *arg)
{
	Py_VISIT(Py_TYPE((PyObject *) c));
	Py_VISIT(c->method);
	Py_VISIT(c->args);
	Py_VISIT(c->kwargs);
	Py_VISIT(c->sock);
	Py_VISIT(c->aio);
	Py_VISIT(c->reply);
	Py_VISIT(c->transform);
	Py_VISIT(c->delegate);
	return 0;
}

static int
command_clear(CommandObject *c)
{
	c->state = C_DONE; /* nothing left to forget or warn of */
	command_drop(c);
	Py_CLEAR(c->method);
	return 0;
}

static void
command_dealloc(CommandObject *c)
{
	PyTypeObject *type = Py_TYPE((PyObject *) c);
	PyObject     *t, *v, *tb, *r;
	PyObject_GC_UnTrack((PyObject *) c);
	PyErr_Fetch(&t, &v, &tb);
	if (c->state == C_AWAIT) {
		/* Dropped while awaiting (its task gone): forgotten, as a
		 * coroutine closed by the collector. */
		if ((r = command_close(c, NULL)) == NULL) {
			PyErr_WriteUnraisable((PyObject *) c->method);
		}
		Py_XDECREF(r);
	} else if (c->state == C_NEW && c->method != NULL &&
	           PyErr_WarnFormat(PyExc_RuntimeWarning, 1, "coroutine '%U' was never awaited",
	               c->method->qualname) < 0) {
		PyErr_WriteUnraisable((PyObject *) c->method);
	}
	PyErr_Restore(t, v, tb);
	command_clear(c);
	((freefunc) PyType_GetSlot(type, Py_tp_free))(c);
	Py_DECREF(type);
}

static PyObject *
command_repr(CommandObject *c)
{
	static const char *states[] = { "new", "awaiting", "awaiting", "done" };
	return PyUnicode_FromFormat("<iok command %U %s>", c->method->qualname, states[c->state]);
}

static PyObject *
command_get_qualname(CommandObject *c, void *unused)
{
	(void) unused;
	return Py_NewRef(c->method->qualname);
}

static PyMethodDef command_methods[] = {
	{ "send", (PyCFunction) command_send, METH_O, "send(value): as a coroutine's" },
	{ "throw", (PyCFunction) command_throw, METH_VARARGS,
	    "throw(typ[, val[, tb]]): as a coroutine's" },
	{ "close", (PyCFunction) command_close, METH_NOARGS, "close(): as a coroutine's" },
	{ NULL, NULL, 0, NULL },
};

static PyGetSetDef command_getset[] = {
	{ "__qualname__", (getter) command_get_qualname, NULL, NULL, NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

static PyType_Slot command_slots[] = {
	{ Py_tp_doc, "An AsyncClient command's call, awaitable as its coroutine is." },
	{ Py_tp_dealloc, command_dealloc },
	{ Py_tp_traverse, command_traverse },
	{ Py_tp_clear, command_clear },
	{ Py_tp_repr, command_repr },
	{ Py_tp_iter, command_await_self },
	{ Py_tp_iternext, command_iternext },
	{ Py_am_await, command_await_self },
	{ Py_am_send, command_am_send },
	{ Py_tp_methods, command_methods },
	{ Py_tp_getset, command_getset },
	{ 0, NULL },
};

static PyType_Spec command_spec = {
	.name      = "iok._iok.Command",
	.basicsize = sizeof(CommandObject),
	.flags     = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.slots     = command_slots,
};

/* ---------------------------------------------------- bound command */

static PyObject *
bound_call(BoundObject *b, PyObject *args, PyObject *kw)
{
	Py_ssize_t i, n = PyTuple_Size(args);
	PyObject  *all = PyTuple_New(n + 1), *c;
	if (all == NULL) {
		return NULL;
	}
	PyTuple_SetItem(all, 0, Py_NewRef(b->client));
	for (i = 0; i < n; i++) {
		PyTuple_SetItem(all, i + 1, Py_NewRef(PyTuple_GetItem(args, i)));
	}
	c = command_new(b->method, all, kw);
	Py_DECREF(all);
	return c;
}

/* The method's own attributes (__name__, __doc__, __wrapped__ ...) first. */
static PyObject *
bound_getattro(BoundObject *b, PyObject *name)
{
	PyObject *v =
	    b->method->dict != NULL ? PyDict_GetItemWithError(b->method->dict, name) : NULL;
	if (v != NULL) {
		return Py_NewRef(v);
	}
	return PyErr_Occurred() ? NULL : PyObject_GenericGetAttr((PyObject *) b, name);
}

static PyObject *
bound_get_func(BoundObject *b, void *unused)
{
	(void) unused;
	return Py_NewRef((PyObject *) b->method);
}

static PyObject *
bound_get_self(BoundObject *b, void *unused)
{
	(void) unused;
	return Py_NewRef(b->client);
}

/* inspect.signature(r.get): the method's, without self (as a bound
 * method's). */
static PyObject *
bound_get_signature(BoundObject *b, void *unused)
{
	PyObject *types, *inspect, *mt = NULL, *meth = NULL, *sig = NULL;
	(void) unused;
	if ((types = PyImport_ImportModule("types")) == NULL) {
		return NULL;
	}
	if ((inspect = PyImport_ImportModule("inspect")) != NULL &&
	    (mt = PyObject_GetAttrString(types, "MethodType")) != NULL &&
	    (meth = PyObject_CallFunctionObjArgs(mt, b->method, b->client, NULL)) != NULL) {
		sig = PyObject_CallMethod(inspect, "signature", "O", meth);
	}
	Py_DECREF(types);
	Py_XDECREF(inspect);
	Py_XDECREF(mt);
	Py_XDECREF(meth);
	return sig;
}

static PyObject *
bound_repr(BoundObject *b)
{
	return PyUnicode_FromFormat("<bound command %U of %R>", b->method->qualname, b->client);
}

static int
bound_traverse(BoundObject *b, visitproc visit, void *arg)
{
	Py_VISIT(Py_TYPE((PyObject *) b));
	Py_VISIT(b->method);
	Py_VISIT(b->client);
	return 0;
}

static int
bound_clear(BoundObject *b)
{
	Py_CLEAR(b->method);
	Py_CLEAR(b->client);
	return 0;
}

static void
bound_dealloc(BoundObject *b)
{
	PyTypeObject *type = Py_TYPE((PyObject *) b);
	PyObject_GC_UnTrack((PyObject *) b);
	bound_clear(b);
	((freefunc) PyType_GetSlot(type, Py_tp_free))(b);
	Py_DECREF(type);
}

static PyGetSetDef bound_getset[] = {
	{ "__func__", (getter) bound_get_func, NULL, NULL, NULL },
	{ "__self__", (getter) bound_get_self, NULL, NULL, NULL },
	{ "__signature__", (getter) bound_get_signature, NULL, NULL, NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

static PyType_Slot bound_slots[] = {
	{ Py_tp_call, bound_call },
	{ Py_tp_getattro, bound_getattro },
	{ Py_tp_repr, bound_repr },
	{ Py_tp_traverse, bound_traverse },
	{ Py_tp_clear, bound_clear },
	{ Py_tp_dealloc, bound_dealloc },
	{ Py_tp_getset, bound_getset },
	{ 0, NULL },
};

static PyType_Spec bound_spec = {
	.name      = "iok._iok.BoundCommand",
	.basicsize = sizeof(BoundObject),
	.flags     = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.slots     = bound_slots,
};

/* ---------------------------------------------------- CommandMethod */

static PyObject *
method_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
	PyObject     *plan, *run, *failed, *qualname;
	MethodObject *m;
	if (kw != NULL && PyDict_Size(kw) > 0) {
		PyErr_SetString(PyExc_TypeError, "CommandMethod() takes no keyword arguments");
		return NULL;
	}
	if (!PyArg_ParseTuple(args, "OOOU:CommandMethod", &plan, &run, &failed, &qualname)) {
		return NULL;
	}
	if (!PyCallable_Check(plan) || !PyCallable_Check(run) || !PyCallable_Check(failed)) {
		PyErr_SetString(PyExc_TypeError, "CommandMethod(plan, run, failed): callables");
		return NULL;
	}
	if ((m = (MethodObject *) ((allocfunc) PyType_GetSlot(type, Py_tp_alloc))(type, 0)) ==
	    NULL) {
		return NULL;
	}
	m->plan     = Py_NewRef(plan);
	m->run      = Py_NewRef(run);
	m->failed   = Py_NewRef(failed);
	m->qualname = Py_NewRef(qualname);
	return (PyObject *) m;
}

/* AsyncClient.get(r, "k"), and r.get("k") itself: the method is a
 * method descriptor, so the interpreter calls it with the client first
 * instead of binding it. */
static PyObject *
method_call(MethodObject *m, PyObject *args, PyObject *kw)
{
	if (PyTuple_Size(args) < 1) {
		PyErr_Format(PyExc_TypeError, "%U() needs its client", m->qualname);
		return NULL;
	}
	return command_new(m, args, kw);
}

/* r.get as a value: a bound command (the class's attribute is the
 * method). */
static PyObject *
method_descr_get(MethodObject *m, PyObject *obj, PyObject *type)
{
	BoundObject *b;
	(void) type;
	if (obj == NULL || obj == Py_None) {
		return Py_NewRef((PyObject *) m);
	}
	if ((b = (BoundObject *) ((allocfunc) PyType_GetSlot(g_bound_type, Py_tp_alloc))(
	         g_bound_type, 0)) == NULL) {
		return NULL;
	}
	b->method = (MethodObject *) Py_NewRef((PyObject *) m);
	b->client = Py_NewRef(obj);
	return (PyObject *) b;
}

static PyObject *
method_repr(MethodObject *m)
{
	return PyUnicode_FromFormat("<iok command method %U>", m->qualname);
}

static int
method_traverse(MethodObject *m, visitproc visit, void *arg)
{
	Py_VISIT(Py_TYPE((PyObject *) m));
	Py_VISIT(m->plan);
	Py_VISIT(m->run);
	Py_VISIT(m->failed);
	Py_VISIT(m->dict);
	return 0;
}

static int
method_clear(MethodObject *m)
{
	Py_CLEAR(m->plan);
	Py_CLEAR(m->run);
	Py_CLEAR(m->failed);
	Py_CLEAR(m->dict);
	return 0;
}

static void
method_dealloc(MethodObject *m)
{
	PyTypeObject *type = Py_TYPE((PyObject *) m);
	PyObject_GC_UnTrack((PyObject *) m);
	method_clear(m);
	Py_CLEAR(m->qualname);
	((freefunc) PyType_GetSlot(type, Py_tp_free))(m);
	Py_DECREF(type);
}

static PyObject *
method_get_qualname(MethodObject *m, void *unused)
{
	(void) unused;
	return Py_NewRef(m->qualname);
}

static PyGetSetDef method_getset[] = {
	{ "__qualname__", (getter) method_get_qualname, NULL, NULL, NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

static PyMemberDef method_members[] = {
	{ "__dictoffset__", T_PYSSIZET, offsetof(MethodObject, dict), READONLY, NULL },
	{ NULL, 0, 0, 0, NULL },
};

static PyType_Slot method_slots[] = {
	{ Py_tp_doc, "CommandMethod(plan, run, failed, qualname)\n--\n\n"
	             "An AsyncClient command method that runs its command without a frame." },
	{ Py_tp_new, method_new },
	{ Py_tp_call, method_call },
	{ Py_tp_descr_get, method_descr_get },
	{ Py_tp_repr, method_repr },
	{ Py_tp_traverse, method_traverse },
	{ Py_tp_clear, method_clear },
	{ Py_tp_dealloc, method_dealloc },
	{ Py_tp_members, method_members },
	{ Py_tp_getset, method_getset },
	{ 0, NULL },
};

/* Py_TPFLAGS_METHOD_DESCRIPTOR: r.get("k") calls the method with r first
 * and makes no bound command (a flag of the limited API from 3.12, of
 * the interpreter since 3.8). */
static PyType_Spec method_spec = {
	.name      = "iok._iok.CommandMethod",
	.basicsize = sizeof(MethodObject),
	.flags     = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_METHOD_DESCRIPTOR,
	.slots     = method_slots,
};

/* ------------------------------------------------------- ClientBase */

static int
client_traverse(ClientObject *cl, visitproc visit, void *arg)
{
	Py_VISIT(Py_TYPE((PyObject *) cl));
	Py_VISIT(cl->sock);
	return 0;
}

static int
client_clear(ClientObject *cl)
{
	Py_CLEAR(cl->sock);
	return 0;
}

static void
client_dealloc(ClientObject *cl)
{
	PyTypeObject *type = Py_TYPE((PyObject *) cl);
	PyObject_GC_UnTrack((PyObject *) cl);
	client_clear(cl);
	((freefunc) PyType_GetSlot(type, Py_tp_free))(cl);
	Py_DECREF(type);
}

static PyMemberDef client_members[] = {
	{ "_sock", T_OBJECT_EX, offsetof(ClientObject, sock), 0, NULL },
	{ "_check_at", T_DOUBLE, offsetof(ClientObject, check_at), 0, NULL },
	{ "_suspect", T_BOOL, offsetof(ClientObject, suspect), 0, NULL },
	{ "_retry", T_BOOL, offsetof(ClientObject, retry), 0, NULL },
	{ NULL, 0, 0, 0, NULL },
};

static PyType_Slot client_slots[] = {
	{ Py_tp_doc, "The fields of an iok.redis client that its asyncio commands read in C." },
	{ Py_tp_new, PyType_GenericNew },
	{ Py_tp_traverse, client_traverse },
	{ Py_tp_clear, client_clear },
	{ Py_tp_dealloc, client_dealloc },
	{ Py_tp_members, client_members },
	{ 0, NULL },
};

static PyType_Spec client_spec = {
	.name      = "iok._iok.ClientBase",
	.basicsize = sizeof(ClientObject),
	.flags     = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
	.slots     = client_slots,
};

/* ----------------------------------------------------- AioStateBase */

static int
aio_traverse(AioStateObject *st, visitproc visit, void *arg)
{
	Py_VISIT(Py_TYPE((PyObject *) st));
	Py_VISIT(st->loop);
	Py_VISIT(st->runs_here);
	Py_VISIT(st->pending);
	return 0;
}

static int
aio_clear(AioStateObject *st)
{
	Py_CLEAR(st->loop);
	Py_CLEAR(st->runs_here);
	Py_CLEAR(st->pending);
	return 0;
}

static void
aio_dealloc(AioStateObject *st)
{
	PyTypeObject *type = Py_TYPE((PyObject *) st);
	PyObject_GC_UnTrack((PyObject *) st);
	aio_clear(st);
	((freefunc) PyType_GetSlot(type, Py_tp_free))(st);
	Py_DECREF(type);
}

static PyMemberDef aio_members[] = {
	{ "loop", T_OBJECT_EX, offsetof(AioStateObject, loop), 0, NULL },
	{ "runs_here", T_OBJECT_EX, offsetof(AioStateObject, runs_here), 0, NULL },
	{ "pending", T_OBJECT_EX, offsetof(AioStateObject, pending), 0, NULL },
	{ "reading", T_BOOL, offsetof(AioStateObject, reading), 0, NULL },
	{ NULL, 0, 0, 0, NULL },
};

static PyType_Slot aio_slots[] = {
	{ Py_tp_doc, "The fields of a socket's asyncio state that commands read in C." },
	{ Py_tp_new, PyType_GenericNew },
	{ Py_tp_traverse, aio_traverse },
	{ Py_tp_clear, aio_clear },
	{ Py_tp_dealloc, aio_dealloc },
	{ Py_tp_members, aio_members },
	{ 0, NULL },
};

static PyType_Spec aio_spec = {
	.name      = "iok._iok.AioStateBase",
	.basicsize = sizeof(AioStateObject),
	.flags     = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
	.slots     = aio_slots,
};

int
ikpy_command_init(PyObject *module)
{
	static const struct {
		PyObject  **s;
		const char *text;
	} names[] = {
		{ &s_aio, "_aio" },
		{ &s_start_reading, "start_reading" },
		{ &s_throw, "throw" },
		{ &s_close, "close" },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if ((*names[i].s = PyUnicode_InternFromString(names[i].text)) == NULL) {
			return -1;
		}
	}
	g_command_type = (PyTypeObject *) PyType_FromSpec(&command_spec);
	g_bound_type   = (PyTypeObject *) PyType_FromSpec(&bound_spec);
	g_method_type  = (PyTypeObject *) PyType_FromSpec(&method_spec);
	g_client_type  = (PyTypeObject *) PyType_FromSpec(&client_spec);
	g_aio_type     = (PyTypeObject *) PyType_FromSpec(&aio_spec);
	if (g_command_type == NULL || g_bound_type == NULL || g_method_type == NULL ||
	    g_client_type == NULL || g_aio_type == NULL) {
		return -1;
	}
	/* The module keeps them (and these references, for good). */
	if (PyModule_AddObjectRef(module, "Command", (PyObject *) g_command_type) < 0 ||
	    PyModule_AddObjectRef(module, "BoundCommand", (PyObject *) g_bound_type) < 0 ||
	    PyModule_AddObjectRef(module, "CommandMethod", (PyObject *) g_method_type) < 0 ||
	    PyModule_AddObjectRef(module, "ClientBase", (PyObject *) g_client_type) < 0 ||
	    PyModule_AddObjectRef(module, "AioStateBase", (PyObject *) g_aio_type) < 0) {
		return -1;
	}
	return 0;
}
