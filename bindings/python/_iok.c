/*
 * _iok.c - the C half of the Python bindings: one type, _iok.Socket, over
 * an iok socket, plus a few module functions (endpoints, errors, devices).
 *
 * Rules this file keeps:
 *   - The kernel thread never runs Python code and never needs the GIL;
 *     every call here that can wait (a blocking send/recv, dial, listen,
 *     close, options, cancel) releases the GIL while it waits.
 *   - Blocking send/recv never block inside iok uninterruptibly: they try
 *     with IOK_FLAG_NONBLOCK and, on IOK_EAGAIN, wait with the GIL
 *     released: a receive in iok_recv_wait with our signal mask (it
 *     watches the connection as iok's own blocking receive does), a send
 *     in ppoll() on the socket's level-triggered descriptor.  A signal
 *     ends either wait (IOK_EINTR, EINTR); we take the GIL back and run
 *     PyErr_CheckSignals(), so Ctrl+C raises KeyboardInterrupt at once.
 *   - We poll our own dup() of iok's descriptors, so closing the socket
 *     from another thread can never leave a waiter polling a descriptor
 *     number that was closed and reused.  The dups are closed when the
 *     socket is closed and nobody waits on them any more.  In a forked
 *     child iok puts fresh eventfds on its numbers; we notice through a
 *     fork generation bumped by our pthread_atfork handler and dup again.
 *
 * Written against the limited API (abi3, Python >= 3.11): nothing on the
 * hot paths needs more.
 */
#define PY_SSIZE_T_CLEAN
#ifndef Py_LIMITED_API
#define Py_LIMITED_API 0x030B0000
#endif
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "iok.h"
#include "_resp.h"
#include "_appstats.h"
#include "_pg.h"
#include "_reply.h"
#include "_command.h"

/* ------------------------------------------------------------- globals */

/* Set by the pure-Python package (_iok._setup): the base exception class
 * and a dict mapping IOK_E* codes to subclasses. */
static PyObject     *g_error_base;
static PyObject     *g_error_map;
static PyObject     *g_message_type; /* iok.Message, built from recv_msg */
static PyTypeObject *g_sock_type;

/* Bumped in every forked child (pthread_atfork): descriptors we dup'ed
 * before the fork refer to the parent's eventfds. */
static volatile unsigned g_fork_gen;

static void
atfork_child(void)
{
	g_fork_gen++;
}

static PyObject *
raise_iok(int code)
{
	PyObject *cls = NULL, *args;
	if (g_error_map != NULL) {
		PyObject *key = PyLong_FromLong(code);
		if (key == NULL) {
			return NULL;
		}
		cls = PyDict_GetItemWithError(g_error_map, key); /* borrowed */
		Py_DECREF(key);
		if (cls == NULL && PyErr_Occurred()) {
			return NULL;
		}
	}
	if (cls == NULL) {
		cls = g_error_base != NULL ? g_error_base : PyExc_RuntimeError;
	}
	args = Py_BuildValue("(is)", code, iok_strerror(code));
	if (args != NULL) {
		PyErr_SetObject(cls, args);
		Py_DECREF(args);
	}
	return NULL;
}

static int64_t
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A timeout argument: None -> dflt; a number of milliseconds (int or
 * float); negative = infinite.  Returns 0 or -1 with an exception. */
static int
parse_timeout(PyObject *o, int dflt, int *out)
{
	if (o == NULL || o == Py_None) {
		*out = dflt;
		return 0;
	}
	if (PyFloat_Check(o)) {
		double d = PyFloat_AsDouble(o);
		if (d != d) {
			PyErr_SetString(PyExc_ValueError, "timeout is NaN");
			return -1;
		}
		if (d < 0) {
			*out = -1;
		} else if (d >= (double) INT32_MAX) {
			*out = INT32_MAX;
		} else {
			*out = (int) d + ((double) (int) d < d); /* round up */
		}
		return 0;
	}
	long v = PyLong_AsLong(o);
	if (v == -1 && PyErr_Occurred()) {
		if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
			PyErr_Clear();
			*out = -1;
			if (PyObject_RichCompareBool(o, Py_False, Py_GT) == 1) {
				*out = INT32_MAX;
			}
			return 0;
		}
		return -1;
	}
	*out = v < 0 ? -1 : (v > INT32_MAX ? INT32_MAX : (int) v);
	return 0;
}

/* Fast-call argument helper: fills out[0..n) from positional args and
 * keywords named in names[]; missing ones are left NULL. */
static int
fast_args(const char *fn, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
    const char *const *names, int n, int required, PyObject **out)
{
	for (int i = 0; i < n; i++) {
		out[i] = NULL;
	}
	if (nargs > n) {
		PyErr_Format(
		    PyExc_TypeError, "%s() takes at most %d arguments (%zd given)", fn, n, nargs);
		return -1;
	}
	for (Py_ssize_t i = 0; i < nargs; i++) {
		out[i] = args[i];
	}
	if (kwnames != NULL) {
		Py_ssize_t nk = PyTuple_Size(kwnames);
		for (Py_ssize_t k = 0; k < nk; k++) {
			PyObject   *kn    = PyTuple_GetItem(kwnames, k);
			const char *s     = PyUnicode_AsUTF8AndSize(kn, NULL);
			int         found = 0;
			if (s == NULL) {
				return -1;
			}
			for (int i = 0; i < n; i++) {
				if (strcmp(s, names[i]) == 0) {
					if (out[i] != NULL) {
						PyErr_Format(PyExc_TypeError,
						    "%s() got multiple values for '%s'", fn, s);
						return -1;
					}
					out[i] = args[nargs + k];
					found  = 1;
					break;
				}
			}
			if (!found) {
				PyErr_Format(PyExc_TypeError,
				    "%s() got an unexpected keyword argument '%s'", fn, s);
				return -1;
			}
		}
	}
	for (int i = 0; i < required; i++) {
		if (out[i] == NULL) {
			PyErr_Format(
			    PyExc_TypeError, "%s() missing required argument '%s'", fn, names[i]);
			return -1;
		}
	}
	return 0;
}

/* --------------------------------------------------------------- socket */

typedef struct {
	PyObject_HEAD iok_socket s;
	int                      open;       /* iok socket open (close() not yet called) */
	int                      rfd, sfd;   /* our dups of IOK_OPT_RECVFD / SENDFD, or -1 */
	unsigned                 gen;        /* g_fork_gen when the dups were made */
	int                      users;      /* waiters and pins using rfd/sfd (GIL held) */
	int                      recv_timeo; /* cached IOK_OPT_RECVTIMEO / SENDTIMEO, ms */
	int                      send_timeo;
	int                      reply; /* rep/respondent: plain send answers a request */
	/* Messages taken from iok but not yet returned (recv_take): a receive
	 * loop takes them RB_MAX at a time, one lock and one look at iok's
	 * queue per batch instead of per message.  Only touched with the GIL
	 * held.  While it holds any, our descriptor is kept readable. */
	iok_msg *rb[64];
	int      rb_head, rb_len;
	int      rb_raised;   /* we wrote to the receive descriptor */
	int      rb_draining; /* a loop takes until EAGAIN: raise at its end */
	/* The reply dispatcher running now (_dispatch_pending): its thread
	 * and the pending dict it completes (borrowed, for the call). */
	unsigned long dispatch_thread;
	PyObject     *dispatch_pending;
} SockObject;

#define RB_MAX ((int) (sizeof(((SockObject *) 0)->rb) / sizeof(iok_msg *)))

/* Messages still batched are dropped with the socket, as iok drops its
 * queue. */
static void
rb_drop(SockObject *so)
{
	while (so->rb_len > 0) {
		iok_msg_free(so->rb[so->rb_head++]);
		so->rb_len--;
	}
	so->rb_head = 0;
}

static void
close_fds(SockObject *so)
{
	if (so->rfd >= 0) {
		close(so->rfd);
		so->rfd = -1;
	}
	if (so->sfd >= 0) {
		close(so->sfd);
		so->sfd = -1;
	}
}

/* Our dup of iok's descriptor fd in *mine: at the number we already had
 * (a forked child keeps the numbers the application registered), else
 * the lowest free one. */
static void
redup(int *mine, int fd)
{
	if (*mine >= 0 && dup3(fd, *mine, O_CLOEXEC) >= 0) {
		return;
	}
	if (*mine >= 0) {
		close(*mine);
	}
	*mine = fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

/* (Re)make our dups of iok's descriptors. */
static void
dup_fds(SockObject *so)
{
	int fd;
	so->gen = g_fork_gen;
	if (iok_socket_get_int(so->s, IOK_OPT_RECVFD, &fd) == 0 && fd >= 0) {
		redup(&so->rfd, fd);
	} else if (so->rfd >= 0) {
		close(so->rfd);
		so->rfd = -1;
	}
	if (iok_socket_get_int(so->s, IOK_OPT_SENDFD, &fd) == 0 && fd >= 0) {
		redup(&so->sfd, fd);
	} else if (so->sfd >= 0) {
		close(so->sfd);
		so->sfd = -1;
	}
}

/* In a forked child: the threads that waited on our descriptors, and the
 * event loops that had them registered, are the parent's; iok has fresh
 * eventfds on its own numbers, so dup those. */
static void
fork_sync(SockObject *so)
{
	if (so->gen != g_fork_gen) {
		so->users = 0;
		/* Batched messages are the parent's, as iok's queue was:
		 * never delivered in the child too. */
		rb_drop(so);
		so->rb_raised = 0;
		if (so->open) {
			dup_fds(so);
		} else {
			close_fds(so);
			so->gen = g_fork_gen;
		}
	}
}

/* Our descriptor for direction send (0 = recv); -1 if none. */
static inline int
sock_fd(SockObject *so, int send)
{
	fork_sync(so);
	return send ? so->sfd : so->rfd;
}

static inline void
users_done(SockObject *so)
{
	if (--so->users == 0 && !so->open) {
		close_fds(so);
	}
}

static PyObject *
sock_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
	allocfunc   alloc = (allocfunc) PyType_GetSlot(type, Py_tp_alloc);
	SockObject *so    = (SockObject *) alloc(type, 0);
	if (so == NULL) {
		return NULL;
	}
	so->s.id        = 0;
	so->open        = 0;
	so->rfd         = -1;
	so->sfd         = -1;
	so->users       = 0;
	so->recv_timeo  = -1;
	so->send_timeo  = -1;
	so->rb_head     = 0;
	so->rb_len      = 0;
	so->rb_raised   = 0;
	so->rb_draining = 0;
	return (PyObject *) so;
}

static int
sock_init(SockObject *so, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "pattern", "raw", NULL };
	const char  *pattern;
	int          raw = 0, rv, proto;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "s|p:Socket", kwlist, &pattern, &raw)) {
		return -1;
	}
	if (so->open || so->s.id != 0) {
		PyErr_SetString(PyExc_RuntimeError, "socket already initialised");
		return -1;
	}
	Py_BEGIN_ALLOW_THREADS rv =
	    raw ? iok_socket_open_raw(&so->s, pattern) : iok_socket_open(&so->s, pattern);
	Py_END_ALLOW_THREADS if (rv != 0)
	{
		raise_iok(rv);
		return -1;
	}
	so->open = 1;
	/* rep0 0x31, respondent0 0x63: a plain send answers a request. */
	if (!raw && iok_socket_get_int(so->s, IOK_OPT_PROTO, &proto) == 0) {
		so->reply = proto == 0x31 || proto == 0x63;
	}
	dup_fds(so);
	return 0;
}

static void
sock_dealloc(SockObject *so)
{
	PyTypeObject *tp = Py_TYPE((PyObject *) so);
	if (so->open) {
		so->open = 0;
		Py_BEGIN_ALLOW_THREADS(void) iok_close(so->s);
		Py_END_ALLOW_THREADS
	}
	rb_drop(so);
	close_fds(so);
	freefunc tp_free = (freefunc) PyType_GetSlot(tp, Py_tp_free);
	tp_free(so);
	Py_DECREF(tp);
}

static PyObject *
sock_close(SockObject *so, PyObject *unused)
{
	int rv = 0;
	if (!so->open) {
		Py_RETURN_NONE;
	}
	so->open = 0;
	rb_drop(so);
	Py_BEGIN_ALLOW_THREADS rv = iok_close(so->s);
	Py_END_ALLOW_THREADS   fork_sync(so);
	if (so->users == 0) {
		close_fds(so);
	}
	if (rv != 0 && rv != IOK_ECLOSED) {
		return raise_iok(rv);
	}
	Py_RETURN_NONE;
}

/* ------------------------------------------------------- blocking waits */

enum { OP_RECV, OP_SEND, OP_REPLY, OP_REQUEST };

struct op {
	int      kind;
	iok_msg *m;     /* OP_SEND/OP_REPLY/OP_REQUEST: to send (ours until sent) */
	uint64_t token; /* OP_REPLY: the request answered; OP_REQUEST: out */
	int      flags; /* OP_REQUEST: IOK_FLAG_IDEMPOTENT */
};

/* recv_take: the next message without blocking (GIL held): from the
 * batch, else a new batch from iok.  Every receive path goes through here
 * so order is kept.  The receive descriptor must stay readable while the
 * batch holds messages (pollers and asyncio wait on it): iok clears it
 * when its own queue empties, so we raise it (a write to our dup, the same
 * eventfd) after taking a batch that leaves some here, and clear it again
 * when the batch is drained (then look at iok's queue once more: a raise
 * of iok's that the clear swallowed means a message that look finds).  A
 * loop that takes many in a row raises once, at its end (rb_drain_end). */
/* Keep our descriptor readable for what rb still holds. */
static void
rb_raise(SockObject *so, int fd)
{
	uint64_t one = 1;
	if (fd >= 0 && write(fd, &one, sizeof(one)) == (ssize_t) sizeof(one)) {
		so->rb_raised = 1;
	}
}

/* Take a new batch from iok into rb (empty); 0 or an iok error.  If our
 * raise may still be on, clear it first: iok's own raise, if the clear
 * swallowed one, is for a message this look finds. */
static int
rb_fill(SockObject *so)
{
	size_t n;
	int    rv, fd = so->open ? sock_fd(so, 0) : -1;
	if (so->rb_raised && fd >= 0) {
		uint64_t v;
		so->rb_raised = 0;
		if (read(fd, &v, sizeof(v)) < 0) {
			/* already clear */
		}
	}
	rv = iok_recvmsg_many(so->s, so->rb, fd >= 0 ? (size_t) RB_MAX : 1, &n, IOK_FLAG_NONBLOCK);
	if (rv != 0) {
		return rv;
	}
	so->rb_head = 0;
	so->rb_len  = (int) n;
	if (n > 1 && !so->rb_draining) {
		rb_raise(so, fd);
	}
	return 0;
}

/* A loop that takes many messages in a row (the asyncio dispatch, a
 * receive of up to max) would raise the descriptor after every batch and
 * clear it when the batch drains: two system calls a batch for a state no
 * poller can look at while the GIL is held.  Between rb_drain_begin and
 * rb_drain_end it does neither; the end raises once if messages are left
 * here for the next call. */
static inline void
rb_drain_begin(SockObject *so)
{
	so->rb_draining++;
}

static void
rb_drain_end(SockObject *so)
{
	if (--so->rb_draining == 0 && so->rb_len > 0 && !so->rb_raised && so->open) {
		rb_raise(so, sock_fd(so, 0));
	}
}

static int
recv_take(SockObject *so, iok_msg **mp)
{
	int rv;
	if (so->rb_len == 0 && (rv = rb_fill(so)) != 0) {
		return rv;
	}
	*mp = so->rb[so->rb_head++];
	if (--so->rb_len == 0 && so->rb_raised) {
		/* Drained: our raise goes now, not at the next receive, so a
		 * poller is never woken for nothing; refill if iok has more. */
		(void) rb_fill(so);
	}
	return 0;
}

static inline int
op_try(SockObject *so, struct op *op)
{
	switch (op->kind) {
	case OP_RECV:
		return iok_recvmsg(so->s, &op->m, IOK_FLAG_NONBLOCK);
	case OP_SEND:
		return iok_sendmsg(so->s, op->m, IOK_FLAG_NONBLOCK);
	case OP_REQUEST:
		return iok_request(so->s, op->m, &op->token, IOK_FLAG_NONBLOCK | op->flags);
	default:
		return iok_reply(so->s, op->m, op->token, IOK_FLAG_NONBLOCK);
	}
}

/* Signals.  Python runs its handlers on the main thread only, and learns
 * of a signal through EINTR from our wait.  A signal that lands between
 * our last look (PyErr_CheckSignals) and the start of the wait would be
 * lost, so the main thread waits as pselect() intends: block signals,
 * look, then ppoll() with the original mask, which unblocks them
 * atomically for the wait.  Other threads wait with every signal blocked,
 * so the kernel hands a process signal to the main thread.  Signals that
 * report faults are never blocked. */
static sigset_t g_wait_block; /* what we block around waits */

static void
init_signals(void)
{
	sigfillset(&g_wait_block);
	sigdelset(&g_wait_block, SIGSEGV);
	sigdelset(&g_wait_block, SIGBUS);
	sigdelset(&g_wait_block, SIGFPE);
	sigdelset(&g_wait_block, SIGILL);
	sigdelset(&g_wait_block, SIGTRAP);
	sigdelset(&g_wait_block, SIGABRT);
}

static unsigned long g_main_thread; /* PyThread_get_thread_ident() of main */

/* Try op; if it would block, wait on the socket's descriptor (GIL
 * released) for up to timeo ms (< 0: for ever).  Returns 0, an IOK_E*
 * code, or -1 with a Python exception (a signal handler raised). */
static int
op_run(SockObject *so, struct op *op, int timeo)
{
	int      rv = op->kind == OP_RECV ? recv_take(so, &op->m) : op_try(so, op);
	int      fd, interrupted, main, ready = 0;
	int64_t  deadline;
	sigset_t old, wait_mask;
	if (rv != IOK_EAGAIN || timeo == 0) {
		return rv;
	}
	if (!so->open) {
		return IOK_ECLOSED;
	}
	/* A receive waits in iok_recv_wait, which also watches the wire
	 * (iok.h); a send polls our descriptor. */
	fd = op->kind == OP_RECV ? -1 : sock_fd(so, 1);
	if (op->kind != OP_RECV && fd < 0) {
		return IOK_ENOTSUP;
	}
	deadline = timeo < 0 ? 0 : now_ns() + (int64_t) timeo * 1000000;
	main     = PyThread_get_thread_ident() == g_main_thread;
	if (main) {
		pthread_sigmask(SIG_BLOCK, &g_wait_block, &old);
		wait_mask = old;
	} else {
		pthread_sigmask(SIG_BLOCK, NULL, &old);
		sigorset(&wait_mask, &old, &g_wait_block);
	}
	so->users++;
	for (;;) {
		if (main && PyErr_CheckSignals() < 0) {
			rv = -1;
			break;
		}
		interrupted = 0;
		Py_BEGIN_ALLOW_THREADS for (;;)
		{
			struct timespec ts, *tsp = NULL;
			iok_duration    ms = -1; /* the same, rounded up to ms */
			if (timeo >= 0) {
				int64_t left = deadline - now_ns();
				if (left <= 0) {
					rv = IOK_ETIMEDOUT;
					break;
				}
				ts.tv_sec  = (time_t) (left / 1000000000);
				ts.tv_nsec = (long) (left % 1000000000);
				tsp        = &ts;
				ms         = (iok_duration) ((left + 999999) / 1000000);
			}
			if (op->kind == OP_RECV) {
				rv = iok_recv_wait(so->s, ms, &wait_mask);
				if (rv == 0) {
					ready = 1; /* taken with the GIL: the batch is ours */
				} else if (rv == IOK_EINTR) {
					interrupted = 1;
				} else if (rv == IOK_ETIMEDOUT && now_ns() < deadline) {
					continue; /* the rounding: look again */
				}
				break;
			}
			struct pollfd pfd = { .fd = fd, .events = POLLIN };
			int           n   = ppoll(&pfd, 1, tsp, &wait_mask);
			if (n < 0) {
				if (errno == EINTR) {
					interrupted = 1;
					break;
				}
				rv = IOK_EINTERNAL;
				break;
			}
			rv = op_try(so, op);
			if (rv != IOK_EAGAIN) {
				break;
			}
		}
		Py_END_ALLOW_THREADS if (ready)
		{
			ready = 0;
			if ((rv = recv_take(so, &op->m)) == IOK_EAGAIN) {
				continue; /* another thread was first */
			}
			break;
		}
		if (!interrupted) {
			break;
		}
	}
	if (main) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	users_done(so);
	return rv;
}

static PyObject *
msg_to_bytes(iok_msg *m)
{
	PyObject *b = PyBytes_FromStringAndSize(iok_msg_body(m), (Py_ssize_t) iok_msg_len(m));
	iok_msg_free(m);
	return b;
}

/* Copy a bytes-like object into a new message. */
static iok_msg *
msg_from_obj(PyObject *data)
{
	Py_buffer view;
	iok_msg  *m;
	int       rv;
	if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
		return NULL;
	}
	if ((rv = iok_msg_alloc(&m, (size_t) view.len)) != 0) {
		PyBuffer_Release(&view);
		raise_iok(rv);
		return NULL;
	}
	if (view.len > 0) {
		memcpy(iok_msg_body(m), view.buf, (size_t) view.len);
	}
	PyBuffer_Release(&view);
	return m;
}

/* recv_one waits (timeout=None: the socket's) for one message; NULL
 * with a Python exception for a timeout, a closed socket, a signal or a
 * kernel-made error completion. */
static iok_msg *
recv_one(
    SockObject *so, const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
	static const char *const names[] = { "timeout" };
	PyObject                *a[1];
	struct op                op = { .kind = OP_RECV };
	int                      timeo, rv;
	if (fast_args(fname, args, nargs, kwnames, names, 1, 0, a) < 0 ||
	    parse_timeout(a[0], so->recv_timeo, &timeo) < 0) {
		return NULL;
	}
	if ((rv = op_run(so, &op, timeo)) != 0) {
		if (rv > 0) {
			raise_iok(rv);
		}
		return NULL;
	}
	if ((rv = iok_msg_status(op.m)) != 0) {
		iok_msg_free(op.m);
		raise_iok(rv);
		return NULL;
	}
	return op.m;
}

static PyObject *
sock_recv(SockObject *so, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
	iok_msg *m = recv_one(so, "recv", args, nargs, kwnames);
	return m == NULL ? NULL : msg_to_bytes(m);
}

/* recv_msg(timeout=None) -> iok.Message(data, token, pipe, header) */
static PyObject *
sock_recv_msg(SockObject *so, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
	PyObject *data, *hdr, *res;
	iok_msg  *m = recv_one(so, "recv_msg", args, nargs, kwnames);
	if (m == NULL) {
		return NULL;
	}
	hdr = PyBytes_FromStringAndSize(iok_msg_header(m), (Py_ssize_t) iok_msg_header_len(m));
	unsigned long long token = iok_msg_token(m);
	unsigned long      pipe  = iok_msg_get_pipe(m);
	data                     = msg_to_bytes(m);
	if (data == NULL || hdr == NULL) {
		Py_XDECREF(data);
		Py_XDECREF(hdr);
		return NULL;
	}
	res = PyObject_CallFunction(
	    g_message_type != NULL ? g_message_type : (PyObject *) &PyTuple_Type, "NKkN", data,
	    token, pipe, hdr);
	return res;
}

static PyObject *
send_common(SockObject *so, struct op *op, PyObject *data, PyObject *timeout)
{
	int timeo, rv;
	if (parse_timeout(timeout, so->send_timeo, &timeo) < 0) {
		return NULL;
	}
	if ((op->m = msg_from_obj(data)) == NULL) {
		return NULL;
	}
	if ((rv = op_run(so, op, timeo)) != 0) {
		iok_msg_free(op->m); /* not sent: still ours */
		return rv < 0 ? NULL : raise_iok(rv);
	}
	Py_RETURN_NONE;
}

static PyObject *
sock_send(SockObject *so, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
	static const char *const names[] = { "data", "timeout" };
	PyObject                *a[2];
	struct op                op = { .kind = OP_SEND };
	if (fast_args("send", args, nargs, kwnames, names, 2, 1, a) < 0) {
		return NULL;
	}
	return send_common(so, &op, a[0], a[1]);
}

static int
parse_token(PyObject *o, uint64_t *tok)
{
	unsigned long long v = PyLong_AsUnsignedLongLong(o);
	if (v == (unsigned long long) -1 && PyErr_Occurred()) {
		return -1;
	}
	*tok = v;
	return 0;
}

/* reply(token, data, timeout=None): answer one request on rep/respondent. */
static PyObject *
sock_reply(SockObject *so, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
	static const char *const names[] = { "token", "data", "timeout" };
	PyObject                *a[3];
	struct op                op = { .kind = OP_REPLY };
	if (fast_args("reply", args, nargs, kwnames, names, 3, 2, a) < 0 ||
	    parse_token(a[0], &op.token) < 0) {
		return NULL;
	}
	return send_common(so, &op, a[1], a[2]);
}

/* _try_send(data) -> bool: non-blocking send; False if it would block. */
static PyObject *
sock_try_send(SockObject *so, PyObject *data)
{
	iok_msg *m = msg_from_obj(data);
	int      rv;
	if (m == NULL) {
		return NULL;
	}
	rv = iok_sendmsg(so->s, m, IOK_FLAG_NONBLOCK);
	if (rv == 0) {
		Py_RETURN_TRUE;
	}
	iok_msg_free(m);
	if (rv == IOK_EAGAIN) {
		Py_RETURN_FALSE;
	}
	return raise_iok(rv);
}

/* _try_reply(token, data) -> bool */
static PyObject *
sock_try_reply(SockObject *so, PyObject *const *args, Py_ssize_t nargs)
{
	uint64_t tok;
	iok_msg *m;
	int      rv;
	if (nargs != 2) {
		PyErr_SetString(PyExc_TypeError, "_try_reply(token, data)");
		return NULL;
	}
	if (parse_token(args[0], &tok) < 0 || (m = msg_from_obj(args[1])) == NULL) {
		return NULL;
	}
	rv = iok_reply(so->s, m, tok, IOK_FLAG_NONBLOCK);
	if (rv == 0) {
		Py_RETURN_TRUE;
	}
	iok_msg_free(m);
	if (rv == IOK_EAGAIN) {
		Py_RETURN_FALSE;
	}
	return raise_iok(rv);
}

/* _try_request(data) -> token, or 0 if the send queue is full. */
static PyObject *
sock_try_request(SockObject *so, PyObject *data)
{
	iok_msg *m = msg_from_obj(data);
	uint64_t tok;
	int      rv;
	if (m == NULL) {
		return NULL;
	}
	rv = iok_request(so->s, m, &tok, IOK_FLAG_NONBLOCK);
	if (rv == 0) {
		return PyLong_FromUnsignedLongLong(tok);
	}
	iok_msg_free(m);
	if (rv == IOK_EAGAIN) {
		return PyLong_FromLong(0);
	}
	return raise_iok(rv);
}

/* _try_recv() -> bytes, or None if nothing waits. */
static PyObject *
sock_try_recv(SockObject *so, PyObject *unused)
{
	iok_msg *m;
	int      rv = recv_take(so, &m);
	if (rv == IOK_EAGAIN) {
		Py_RETURN_NONE;
	}
	if (rv != 0) {
		return raise_iok(rv);
	}
	if ((rv = iok_msg_status(m)) != 0) {
		iok_msg_free(m);
		return raise_iok(rv);
	}
	return msg_to_bytes(m);
}

static PyObject *
recv_many_loop(SockObject *so, Py_ssize_t max)
{
	PyObject *list;
	int       rv = 0;
	if ((list = PyList_New(0)) == NULL) {
		return NULL;
	}
	for (Py_ssize_t i = 0; i < max; i++) {
		iok_msg  *m;
		PyObject *t, *tok, *st, *data;
		if ((rv = recv_take(so, &m)) != 0) {
			break;
		}
		tok  = PyLong_FromUnsignedLongLong(iok_msg_token(m));
		st   = PyLong_FromLong(iok_msg_status(m));
		data = msg_to_bytes(m);
		t    = PyTuple_New(3);
		if (tok == NULL || st == NULL || data == NULL || t == NULL) {
			Py_XDECREF(tok);
			Py_XDECREF(st);
			Py_XDECREF(data);
			Py_XDECREF(t);
			Py_DECREF(list);
			return NULL;
		}
		PyTuple_SetItem(t, 0, tok);
		PyTuple_SetItem(t, 1, st);
		PyTuple_SetItem(t, 2, data);
		if (PyList_Append(list, t) < 0) {
			Py_DECREF(t);
			Py_DECREF(list);
			return NULL;
		}
		Py_DECREF(t);
	}
	if (rv != 0 && rv != IOK_EAGAIN && PyList_Size(list) == 0) {
		Py_DECREF(list);
		return raise_iok(rv);
	}
	return list;
}

/* _recv_many(max) -> list of (token, status, data): every waiting message,
 * up to max, without blocking.  An error with nothing received raises. */
static PyObject *
sock_recv_many(SockObject *so, PyObject *arg)
{
	Py_ssize_t max = PyLong_AsSsize_t(arg);
	PyObject  *list;
	if (max == -1 && PyErr_Occurred()) {
		return NULL;
	}
	rb_drain_begin(so);
	list = recv_many_loop(so, max);
	rb_drain_end(so);
	return list;
}

/* _dispatch(pending) -> int: the asyncio reader's hot loop for request
 * sockets.  Takes every waiting reply; for each whose token is a key of
 * pending (a dict token -> Reply or future), pops it and completes it
 * with the data, or the exception of a kernel-made error completion.
 * Replies with unknown tokens (cancelled requests) are dropped.  Returns
 * the number of messages taken; raises if the socket is closed and
 * nothing was taken. */

static PyObject *
make_error(int code)
{
	PyObject *cls = NULL, *exc;
	if (g_error_map != NULL) {
		PyObject *key = PyLong_FromLong(code);
		if (key == NULL) {
			return NULL;
		}
		cls = PyDict_GetItemWithError(g_error_map, key);
		Py_DECREF(key);
		if (cls == NULL && PyErr_Occurred()) {
			return NULL;
		}
	}
	if (cls == NULL) {
		cls = g_error_base != NULL ? g_error_base : PyExc_RuntimeError;
	}
	exc = PyObject_CallFunction(cls, "is", code, iok_strerror(code));
	return exc;
}

/* A reply as (value, failed), freeing m: the kernel-made error of a
 * failed request (timeout, lost connection...) as an exception instance
 * with failed = 1, else the body as bytes. */
typedef PyObject *(*reply_decoder)(iok_msg *m, unsigned flags, int *failed);

static PyObject *
bytes_value(iok_msg *m, unsigned flags, int *failed)
{
	int st = iok_msg_status(m);
	(void) flags;
	if (st != 0) {
		iok_msg_free(m);
		*failed = 1;
		return make_error(st);
	}
	return msg_to_bytes(m);
}

/* dispatch_replies completes pending[token] (popped) for every reply
 * waiting on the socket, with decode's value or exception; replies to
 * unknown tokens (cancelled requests, pushes) are dropped.  A Reply's
 * task is woken at once when no task runs (we are the loop's reader
 * callback: _reply.c); a Future or a collector gets set_result.  Returns
 * the number taken. */
static PyObject *
dispatch_loop(SockObject *so, PyObject *pending, reply_decoder decode, unsigned flags)
{
	long n     = 0;
	int  rv    = 0;
	int  eager = -2;                /* not asked yet */
	while (n < IKPY_DISPATCH_MAX) { /* bounded: _reply.h */
		iok_msg  *m;
		PyObject *w, *val;
		int       failed = 0, err;
		if ((rv = recv_take(so, &m)) != 0) {
			break;
		}
		n++;
		if ((w = ikpy_pending_pop(pending, iok_msg_token(m), &err)) == NULL) {
			iok_msg_free(m);
			if (err < 0) {
				return NULL;
			}
			continue;
		}
		val = decode(m, flags, &failed);
		err = ikpy_pending_settle(w, val, failed, &eager);
		Py_XDECREF(val);
		if (err < 0) {
			return NULL; /* KeyboardInterrupt in a woken task */
		}
	}
	if (rv != IOK_EAGAIN && n == 0) {
		return raise_iok(rv);
	}
	return PyLong_FromLong(n);
}

static PyObject *
dispatch_replies(SockObject *so, PyObject *pending, reply_decoder decode, unsigned flags)
{
	unsigned long thread = so->dispatch_thread;
	PyObject     *was    = so->dispatch_pending, *r;
	so->dispatch_thread  = PyThread_get_thread_ident();
	so->dispatch_pending = pending;
	rb_drain_begin(so);
	r = dispatch_loop(so, pending, decode, flags);
	rb_drain_end(so);
	so->dispatch_thread  = thread;
	so->dispatch_pending = was;
	return r;
}

/* _dispatch_pending: the pending dict this thread's reply dispatcher is
 * completing now, else None.  A task the dispatcher wakes runs inside it,
 * so `sock._dispatch_pending is aio.pending` says aio's loop runs here
 * (the dispatcher is aio's reader) at the cost of one attribute, where
 * aio.runs_here() looks at the loop (iok/redis.py). */
static PyObject *
sock_get_dispatch_pending(SockObject *so, void *unused)
{
	PyObject *p = ikpy_sock_dispatch_pending((PyObject *) so);
	(void) unused;
	return Py_NewRef(p != NULL ? p : Py_None);
}

static PyObject *
sock_dispatch(SockObject *so, PyObject *pending)
{
	if (!PyDict_Check(pending)) {
		PyErr_SetString(PyExc_TypeError, "_dispatch(dict)");
		return NULL;
	}
	return dispatch_replies(so, pending, bytes_value, 0);
}

/* cancel(token): give up on a request; a late reply is dropped. */
static PyObject *
sock_cancel(SockObject *so, PyObject *arg)
{
	uint64_t tok;
	int      rv;
	if (parse_token(arg, &tok) < 0) {
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS rv = iok_cancel(so->s, tok);
	Py_END_ALLOW_THREADS if (rv != 0)
	{
		return raise_iok(rv);
	}
	Py_RETURN_NONE;
}

/* _pin_fds(delta): asyncio keeps our descriptors registered with a loop;
 * while pinned they are not closed (a closed, reused descriptor number
 * would confuse the loop). */
static PyObject *
sock_pin_fds(SockObject *so, PyObject *arg)
{
	long d = PyLong_AsLong(arg);
	if (d == -1 && PyErr_Occurred()) {
		return NULL;
	}
	fork_sync(so);
	if (d > 0) {
		so->users += (int) d;
	} else {
		while (d++ < 0 && so->users > 0) {
			users_done(so);
		}
	}
	Py_RETURN_NONE;
}

/* ------------------------------------------------- redis (see _resp.c)
 *
 * What iok.redis builds on: commands encoded and replies decoded in C,
 * on any request socket (pipelined-db over redis://), and the same
 * decoding for a sub socket's pushes.  Decoding flags: _resp.h. */

PyObject *
ikpy_raise_iok(int code)
{
	return raise_iok(code);
}

PyObject *
ikpy_make_error(int code)
{
	return make_error(code);
}

/* A received message as (value, failed): a kernel-made completion or an
 * error reply gives the exception instance and failed = 1.  Frees m.
 * NULL only if even the exception could not be made. */
static PyObject *
redis_value(iok_msg *m, unsigned flags, int *failed)
{
	PyObject *v;
	int       st = iok_msg_status(m);
	if (st != 0) {
		iok_msg_free(m);
		*failed = 1;
		return make_error(st);
	}
	v = ikpy_resp_decode(iok_msg_body(m), iok_msg_len(m), flags, failed);
	iok_msg_free(m);
	if (v == NULL) { /* malformed, or not UTF-8 under decode: this
	                    request's failure, not the reader's */
		*failed = 1;
		v       = ikpy_take_exception();
	}
	return v;
}

/* Encode a command (a tuple or list of arguments) and send it as a
 * request (pipelined-db), in session sess (0: none), waiting up to timeo
 * ms (0: never; IOK_EAGAIN then means the send queue is full).  0 and the
 * request's token in *token; an iok error; or -1 with a Python exception.
 * The message is ours again unless sent. */
static int
redis_send(
    SockObject *so, PyObject *cmd, unsigned long sess, long flags, int timeo, uint64_t *token)
{
	struct op op = { .kind = OP_REQUEST };
	int       rv;
	if ((op.m = ikpy_resp_command(cmd)) == NULL) {
		return -1;
	}
	if (sess != 0) {
		iok_msg_set_session(op.m, (uint32_t) sess);
	}
	op.flags = (int) (flags & IOK_FLAG_IDEMPOTENT);
	rv       = timeo == 0 ? op_try(so, &op) : op_run(so, &op, timeo);
	if (rv != 0) {
		iok_msg_free(op.m); /* not sent: still ours */
		return rv;
	}
	*token = op.token;
	return 0;
}

/* _redis_request(args, session=0, flags=0, timeout=0) -> token: encode a
 * command and send it as a request (pipelined-db).  timeout 0: never
 * wait, 0 is returned when the send queue is full; None: the socket's
 * send_timeout; else ms (-1: for ever). */
static PyObject *
sock_redis_request(SockObject *so, PyObject *const *args, Py_ssize_t nargs)
{
	unsigned long sess  = 0;
	long          flags = 0;
	int           timeo = 0, rv;
	uint64_t      token;
	if (nargs < 1 || nargs > 4) {
		PyErr_SetString(
		    PyExc_TypeError, "_redis_request(args, session=0, flags=0, timeout=0)");
		return NULL;
	}
	if (nargs > 1 && (sess = PyLong_AsUnsignedLong(args[1])) == (unsigned long) -1 &&
	    PyErr_Occurred()) {
		return NULL;
	}
	if (nargs > 2 && (flags = PyLong_AsLong(args[2])) == -1 && PyErr_Occurred()) {
		return NULL;
	}
	if (nargs > 3 && parse_timeout(args[3], so->send_timeo, &timeo) < 0) {
		return NULL;
	}
	if ((rv = redis_send(so, args[0], sess, flags, timeo, &token)) == 0) {
		return PyLong_FromUnsignedLongLong(token);
	}
	if (rv == IOK_EAGAIN && timeo == 0) {
		return PyLong_FromLong(0);
	}
	return rv < 0 ? NULL : raise_iok(rv);
}

/* The send of _redis_submit: a new Reply(loop) filed in pending under
 * *token (and, with key, under the new int *key) once the command left;
 * Py_None (new) while the send queue is full; NULL with an exception
 * (the command cancelled if it left). */
static PyObject *
redis_submit(SockObject *so, PyObject *cmd, unsigned long sess, long flags, PyObject *pending,
    PyObject *loop, uint64_t *token, PyObject **keyp)
{
	PyObject *key, *fut;
	int       rv;
	if ((rv = redis_send(so, cmd, sess, flags, 0, token)) != 0) {
		if (rv == IOK_EAGAIN) {
			Py_RETURN_NONE;
		}
		return rv < 0 ? NULL : raise_iok(rv);
	}
	key = PyLong_FromUnsignedLongLong(*token);
	fut = key != NULL ? ikpy_reply_new(loop) : NULL;
	if (fut != NULL && PyDict_SetItem(pending, key, fut) < 0) {
		Py_CLEAR(fut);
	}
	if (fut == NULL) {
		(void) iok_cancel(so->s, *token); /* nobody would take its reply */
	}
	if (keyp != NULL && fut != NULL) {
		*keyp = key;
	} else {
		Py_XDECREF(key);
	}
	return fut;
}

/* _redis_submit(args, session, flags, pending, loop) -> (token, Reply) or
 * None: how the asyncio client sends (iok/redis.py, a command and a
 * pipeline's): the command sent as _redis_request(args, session, flags)
 * sends it, and a Reply(loop) filed under its token in pending, for the
 * reader (_redis_dispatch) to complete; None while the send queue is
 * full.  One call where three steps of Python were (the request, the
 * Reply, the store): -2% of a pipelined GET's instructions. */
static PyObject *
sock_redis_submit(SockObject *so, PyObject *const *args, Py_ssize_t nargs)
{
	unsigned long sess;
	long          flags;
	uint64_t      token = 0;
	PyObject     *fut, *key = NULL, *sent;
	if (nargs != 5 || !PyDict_Check(args[3])) {
		PyErr_SetString(
		    PyExc_TypeError, "_redis_submit(args, session, flags, pending: dict, loop)");
		return NULL;
	}
	if ((sess = PyLong_AsUnsignedLong(args[1])) == (unsigned long) -1 && PyErr_Occurred()) {
		return NULL;
	}
	if ((flags = PyLong_AsLong(args[2])) == -1 && PyErr_Occurred()) {
		return NULL;
	}
	fut = redis_submit(so, args[0], sess, flags, args[3], args[4], &token, &key);
	if (fut == NULL || fut == Py_None) {
		return fut;
	}
	if ((sent = PyTuple_Pack(2, key, fut)) == NULL) {
		PyObject *t, *v, *tb; /* nobody will await it: out of pending, cancelled */
		PyErr_Fetch(&t, &v, &tb);
		if (PyDict_DelItem(args[3], key) < 0) {
			PyErr_Clear();
		}
		(void) iok_cancel(so->s, token);
		PyErr_Restore(t, v, tb);
	}
	Py_DECREF(key);
	Py_DECREF(fut);
	return sent;
}

PyObject *
ikpy_sock_dispatch_pending(PyObject *sock)
{
	SockObject *so = (SockObject *) sock;
	if (!PyObject_TypeCheck(sock, g_sock_type) || so->dispatch_pending == NULL ||
	    so->dispatch_thread != PyThread_get_thread_ident()) {
		return NULL;
	}
	return so->dispatch_pending;
}

PyObject *
ikpy_redis_submit(
    PyObject *sock, PyObject *cmd, long flags, PyObject *pending, PyObject *loop, uint64_t *token)
{
	if (!PyObject_TypeCheck(sock, g_sock_type) || !PyDict_Check(pending)) {
		PyErr_SetString(
		    PyExc_TypeError, "_redis_submit(an iok Socket, ..., pending: dict)");
		return NULL;
	}
	return redis_submit((SockObject *) sock, cmd, 0, flags, pending, loop, token, NULL);
}

/* _redis_dispatch(pending, flags) -> int: _dispatch for redis replies:
 * every waiting reply completes the future pending[token] (popped) with
 * the decoded value, or with the exception (error reply, timeout, lost
 * connection, malformed reply).  Unknown tokens are dropped. */
static PyObject *
sock_redis_dispatch(SockObject *so, PyObject *const *args, Py_ssize_t nargs)
{
	long fl;
	if (nargs != 2 || !PyDict_Check(args[0])) {
		PyErr_SetString(PyExc_TypeError, "_redis_dispatch(dict, flags)");
		return NULL;
	}
	if ((fl = PyLong_AsLong(args[1])) == -1 && PyErr_Occurred()) {
		return NULL;
	}
	return dispatch_replies(so, args[0], redis_value, (unsigned) fl);
}

/* _redis_recv(timeout=None, flags=0, max=1) -> [(token, value, failed)]:
 * wait (GIL released, Ctrl+C works) up to timeout ms for a message, then
 * take every other waiting one, up to max, each decoded; failed: value
 * is the exception for that request.  Raises iok.Timeout, iok.Closed. */
static PyObject *
sock_redis_recv(SockObject *so, PyObject *const *args, Py_ssize_t nargs)
{
	struct op  op = { .kind = OP_RECV };
	PyObject  *list;
	long       fl  = 0;
	Py_ssize_t max = 1;
	int        timeo, rv;
	if (nargs > 3) {
		PyErr_SetString(PyExc_TypeError, "_redis_recv(timeout=None, flags=0, max=1)");
		return NULL;
	}
	if (parse_timeout(nargs > 0 ? args[0] : NULL, so->recv_timeo, &timeo) < 0) {
		return NULL;
	}
	if (nargs > 1 && (fl = PyLong_AsLong(args[1])) == -1 && PyErr_Occurred()) {
		return NULL;
	}
	if (nargs > 2 && (max = PyLong_AsSsize_t(args[2])) == -1 && PyErr_Occurred()) {
		return NULL;
	}
	if ((rv = op_run(so, &op, timeo)) != 0) {
		return rv < 0 ? NULL : raise_iok(rv);
	}
	if ((list = PyList_New(0)) == NULL) {
		iok_msg_free(op.m);
		return NULL;
	}
	rb_drain_begin(so);
	for (Py_ssize_t i = 0;;) {
		unsigned long long tok    = iok_msg_token(op.m);
		int                failed = 0;
		PyObject          *val    = redis_value(op.m, (unsigned) fl, &failed), *t;
		if (val == NULL ||
		    (t = Py_BuildValue("(KNO)", tok, val, failed ? Py_True : Py_False)) == NULL) {
			Py_CLEAR(list);
			break;
		}
		rv = PyList_Append(list, t);
		Py_DECREF(t);
		if (rv < 0) {
			Py_CLEAR(list);
			break;
		}
		if (++i >= max || recv_take(so, &op.m) != 0) {
			break;
		}
	}
	rb_drain_end(so);
	return list;
}

/* ------------------------------------------------- dialers, listeners */

static PyObject *
sock_dial(SockObject *so, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "url", "block", NULL };
	const char  *url;
	int          block = 0, rv;
	iok_dialer   d;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "s|p:dial", kwlist, &url, &block)) {
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS rv = iok_dial(so->s, url, &d, block ? 0 : IOK_FLAG_NONBLOCK);
	Py_END_ALLOW_THREADS if (rv != 0)
	{
		return raise_iok(rv);
	}
	return PyLong_FromLong(iok_dialer_id(d));
}

static PyObject *
sock_listen(SockObject *so, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "url", NULL };
	const char  *url;
	int          rv;
	iok_listener l;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "s:listen", kwlist, &url)) {
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS rv = iok_listen(so->s, url, &l, 0);
	Py_END_ALLOW_THREADS if (rv != 0)
	{
		return raise_iok(rv);
	}
	return PyLong_FromLong(iok_listener_id(l));
}

/* ------------------------------------------------------------- options */

/* Option kinds, as the pure-Python table names them. */
enum { K_AUTO, K_BOOL, K_INT, K_MS, K_SIZE, K_UINT64, K_STRING, K_BYTES };

static int
kind_of(const char *k)
{
	static const char *const kinds[] = { "auto", "bool", "int", "ms", "size", "uint64",
		"string", "bytes" };
	for (int i = 0; i < (int) (sizeof(kinds) / sizeof(kinds[0])); i++) {
		if (strcmp(k, kinds[i]) == 0) {
			return i;
		}
	}
	return -1;
}

/* Getters and setters shared by sockets, dialers and listeners. */
struct optops {
	int (*get_bool)(uint32_t, const char *, int *);
	int (*get_int)(uint32_t, const char *, int *);
	int (*get_uint64)(uint32_t, const char *, uint64_t *);
	int (*get_string)(uint32_t, const char *, char **);
	int (*get_bytes)(uint32_t, const char *, void *, size_t *);
	int (*set_bool)(uint32_t, const char *, int);
	int (*set_int)(uint32_t, const char *, int);
	int (*set_uint64)(uint32_t, const char *, uint64_t);
	int (*set_string)(uint32_t, const char *, const char *);
	int (*set_bytes)(uint32_t, const char *, const void *, size_t);
};

#define WRAP(obj, T)                                                   \
	static int obj##_gb(uint32_t id, const char *n, int *v)        \
	{                                                              \
		bool b;                                                \
		int  rv = iok_##obj##_get_bool((T) { id }, n, &b);     \
		*v      = b;                                           \
		return rv;                                             \
	}                                                              \
	static int obj##_gi(uint32_t id, const char *n, int *v)        \
	{                                                              \
		return iok_##obj##_get_int((T) { id }, n, v);          \
	}                                                              \
	static int obj##_gu(uint32_t id, const char *n, uint64_t *v)   \
	{                                                              \
		return iok_##obj##_get_uint64((T) { id }, n, v);       \
	}                                                              \
	static int obj##_gs(uint32_t id, const char *n, char **v)      \
	{                                                              \
		return iok_##obj##_get_string((T) { id }, n, v);       \
	}                                                              \
	static int obj##_sb(uint32_t id, const char *n, int v)         \
	{                                                              \
		return iok_##obj##_set_bool((T) { id }, n, v != 0);    \
	}                                                              \
	static int obj##_si(uint32_t id, const char *n, int v)         \
	{                                                              \
		return iok_##obj##_set_int((T) { id }, n, v);          \
	}                                                              \
	static int obj##_ss(uint32_t id, const char *n, const char *v) \
	{                                                              \
		return iok_##obj##_set_string((T) { id }, n, v);       \
	}
WRAP(socket, iok_socket)
WRAP(dialer, iok_dialer)
WRAP(listener, iok_listener)
static int
socket_gx(uint32_t id, const char *n, void *v, size_t *sz)
{
	return iok_socket_get((iok_socket) { id }, n, v, sz);
}
static int
socket_su(uint32_t id, const char *n, uint64_t v)
{
	return iok_socket_set_uint64((iok_socket) { id }, n, v);
}
static int
socket_sx(uint32_t id, const char *n, const void *v, size_t sz)
{
	return iok_socket_set((iok_socket) { id }, n, v, sz);
}
static int
dialer_su(uint32_t id, const char *n, uint64_t v)
{
	return iok_dialer_set_size((iok_dialer) { id }, n, (size_t) v);
}
static int
listener_su(uint32_t id, const char *n, uint64_t v)
{
	return iok_listener_set_size((iok_listener) { id }, n, (size_t) v);
}

static const struct optops socket_ops   = { socket_gb, socket_gi, socket_gu, socket_gs, socket_gx,
	  socket_sb, socket_si, socket_su, socket_ss, socket_sx };
static const struct optops dialer_ops   = { dialer_gb, dialer_gi, dialer_gu, dialer_gs, NULL,
	  dialer_sb, dialer_si, dialer_su, dialer_ss, NULL };
static const struct optops listener_ops = { listener_gb, listener_gi, listener_gu, listener_gs,
	NULL, listener_sb, listener_si, listener_su, listener_ss, NULL };

static PyObject *
opt_get(const struct optops *ops, uint32_t id, const char *name, int kind)
{
	int      rv = IOK_ENOTSUP, iv;
	uint64_t uv;
	char    *sv;
	char     buf[4096];
	size_t   sz = sizeof(buf);

	switch (kind) {
	case K_BOOL:
		Py_BEGIN_ALLOW_THREADS rv = ops->get_bool(id, name, &iv);
		Py_END_ALLOW_THREADS return rv ? raise_iok(rv) : PyBool_FromLong(iv);
	case K_INT:
	case K_MS:
		Py_BEGIN_ALLOW_THREADS rv = ops->get_int(id, name, &iv);
		Py_END_ALLOW_THREADS return rv ? raise_iok(rv) : PyLong_FromLong(iv);
	case K_SIZE:
	case K_UINT64:
		Py_BEGIN_ALLOW_THREADS rv = ops->get_uint64(id, name, &uv);
		Py_END_ALLOW_THREADS return rv ? raise_iok(rv) : PyLong_FromUnsignedLongLong(uv);
	case K_STRING:
		Py_BEGIN_ALLOW_THREADS rv = ops->get_string(id, name, &sv);
		Py_END_ALLOW_THREADS if (rv)
		{
			return raise_iok(rv);
		}
		else
		{
			PyObject *r = PyUnicode_FromString(sv);
			iok_strfree(sv);
			return r;
		}
	case K_BYTES:
		if (ops->get_bytes == NULL) {
			return raise_iok(IOK_ENOTSUP);
		}
		Py_BEGIN_ALLOW_THREADS rv = ops->get_bytes(id, name, buf, &sz);
		Py_END_ALLOW_THREADS return rv
		    ? raise_iok(rv)
		    : PyBytes_FromStringAndSize(
		          buf, (Py_ssize_t) (sz < sizeof(buf) ? sz : sizeof(buf)));
	default: /* auto: a number if it is one, else a string */
		Py_BEGIN_ALLOW_THREADS rv = ops->get_uint64(id, name, &uv);
		if (rv == IOK_EINVAL) {
			rv   = ops->get_int(id, name, &iv); /* negative (e.g. -1 ms) */
			kind = K_INT;
		}
		if (rv == IOK_EBADTYPE) {
			rv   = ops->get_string(id, name, &sv);
			kind = K_STRING;
		}
		Py_END_ALLOW_THREADS if (rv)
		{
			return raise_iok(rv);
		}
		if (kind == K_STRING) {
			PyObject *r = PyUnicode_FromString(sv);
			iok_strfree(sv);
			return r;
		}
		return kind == K_INT ? PyLong_FromLong(iv) : PyLong_FromUnsignedLongLong(uv);
	}
}

static PyObject *
opt_set(const struct optops *ops, uint32_t id, const char *name, PyObject *val)
{
	int rv;
	if (PyBool_Check(val)) {
		int                    b  = val == Py_True;
		Py_BEGIN_ALLOW_THREADS rv = ops->set_bool(id, name, b);
		Py_END_ALLOW_THREADS
	} else if (PyLong_Check(val) || PyFloat_Check(val)) {
		PyObject *iv = PyFloat_Check(val) ? PyNumber_Long(val) : (Py_INCREF(val), val);
		int       overflow;
		long long v;
		if (iv == NULL) {
			return NULL;
		}
		v = PyLong_AsLongLongAndOverflow(iv, &overflow);
		if (overflow > 0) {
			unsigned long long u = PyLong_AsUnsignedLongLong(iv);
			Py_DECREF(iv);
			if (PyErr_Occurred()) {
				return NULL;
			}
			Py_BEGIN_ALLOW_THREADS rv = ops->set_uint64(id, name, u);
			Py_END_ALLOW_THREADS
		} else {
			Py_DECREF(iv);
			if (v == -1 && PyErr_Occurred()) {
				return NULL;
			}
			if (overflow < 0 || v < INT32_MIN) {
				return raise_iok(IOK_EINVAL);
			}
			Py_BEGIN_ALLOW_THREADS if (v <= INT32_MAX)
			{
				rv = ops->set_int(id, name, (int) v);
			}
			else
			{
				rv = ops->set_uint64(id, name, (uint64_t) v);
			}
			Py_END_ALLOW_THREADS
		}
	} else if (PyUnicode_Check(val)) {
		Py_ssize_t  n;
		const char *s = PyUnicode_AsUTF8AndSize(val, &n);
		if (s == NULL) {
			return NULL;
		}
		if ((Py_ssize_t) strlen(s) != n) {
			PyErr_SetString(PyExc_ValueError, "embedded NUL in option value");
			return NULL;
		}
		Py_BEGIN_ALLOW_THREADS rv = ops->set_string(id, name, s);
		Py_END_ALLOW_THREADS
	} else {
		Py_buffer view;
		if (ops->set_bytes == NULL) {
			return raise_iok(IOK_ENOTSUP);
		}
		if (PyObject_GetBuffer(val, &view, PyBUF_SIMPLE) < 0) {
			return NULL;
		}
		Py_BEGIN_ALLOW_THREADS rv = ops->set_bytes(id, name, view.buf, (size_t) view.len);
		Py_END_ALLOW_THREADS   PyBuffer_Release(&view);
	}
	if (rv != 0) {
		return raise_iok(rv);
	}
	Py_RETURN_NONE;
}

static PyObject *
sock_getopt(SockObject *so, PyObject *args)
{
	const char *name, *k = "auto";
	int         kind;
	if (!PyArg_ParseTuple(args, "s|s:getopt", &name, &k)) {
		return NULL;
	}
	if ((kind = kind_of(k)) < 0) {
		PyErr_Format(PyExc_ValueError, "unknown option kind '%s'", k);
		return NULL;
	}
	return opt_get(&socket_ops, so->s.id, name, kind);
}

static PyObject *
sock_setopt(SockObject *so, PyObject *args)
{
	const char *name;
	PyObject   *val, *r;
	if (!PyArg_ParseTuple(args, "sO:setopt", &name, &val)) {
		return NULL;
	}
	r = opt_set(&socket_ops, so->s.id, name, val);
	if (r != NULL && PyLong_Check(val)) {
		/* Blocking calls wait here, not inside iok: keep the timeouts. */
		int ms;
		if (strcmp(name, IOK_OPT_RECVTIMEO) == 0 && parse_timeout(val, -1, &ms) == 0) {
			so->recv_timeo = ms;
		} else if (strcmp(name, IOK_OPT_SENDTIMEO) == 0 &&
		           parse_timeout(val, -1, &ms) == 0) {
			so->send_timeo = ms;
		}
	}
	return r;
}

/* ------------------------------------------------------------ getters */

static PyObject *
sock_get_id(SockObject *so, void *c)
{
	return PyLong_FromLong(iok_socket_id(so->s));
}

static PyObject *
sock_get_closed(SockObject *so, void *c)
{
	return PyBool_FromLong(!so->open);
}

static PyObject *
sock_get_fd(SockObject *so, void *c)
{
	int fd;
	if (!so->open) {
		return raise_iok(IOK_ECLOSED);
	}
	fd = sock_fd(so, c != NULL);
	if (fd < 0) {
		return raise_iok(IOK_ENOTSUP);
	}
	return PyLong_FromLong(fd);
}

static PyObject *
sock_get_reply(SockObject *so, void *c)
{
	return PyBool_FromLong(so->reply);
}

static PyGetSetDef sock_getset[] = {
	{ "id", (getter) sock_get_id, NULL, "the socket's iok id", NULL },
	{ "closed", (getter) sock_get_closed, NULL, "True once close() was called", NULL },
	{ "recv_fd", (getter) sock_get_fd, NULL,
	    "a descriptor readable exactly while a message waits (poll it; never read it)", NULL },
	{ "send_fd", (getter) sock_get_fd, NULL,
	    "a descriptor readable exactly while a send would not block", (void *) 1 },
	{ "_replies", (getter) sock_get_reply, NULL, "rep/respondent", NULL },
	{ "_dispatch_pending", (getter) sock_get_dispatch_pending, NULL, NULL, NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

static PyMethodDef sock_methods[] = {
	{ "close", (PyCFunction) sock_close, METH_NOARGS,
	    "close() - close the socket; blocked calls raise iok.Closed.  Idempotent." },
	{ "dial", (PyCFunction) (void (*)(void)) sock_dial, METH_VARARGS | METH_KEYWORDS,
	    "dial(url, block=False) -> dialer id" },
	{ "listen", (PyCFunction) (void (*)(void)) sock_listen, METH_VARARGS | METH_KEYWORDS,
	    "listen(url) -> listener id" },
	{ "send", (PyCFunction) (void (*)(void)) sock_send, METH_FASTCALL | METH_KEYWORDS,
	    "send($self, /, data, timeout=None)\n--\n\nSend a bytes-like object; timeout in ms "
	    "(None: "
	    "the socket's send_timeout, 0: do not wait, -1: for ever)" },
	{ "recv", (PyCFunction) (void (*)(void)) sock_recv, METH_FASTCALL | METH_KEYWORDS,
	    "recv($self, /, timeout=None)\n--\n\nThe next message (bytes); timeout in ms (None: "
	    "the "
	    "socket's recv_timeout)" },
	{ "_recv_msg", (PyCFunction) (void (*)(void)) sock_recv_msg, METH_FASTCALL | METH_KEYWORDS,
	    "_recv_msg(timeout=None) -> Message" },
	{ "reply", (PyCFunction) (void (*)(void)) sock_reply, METH_FASTCALL | METH_KEYWORDS,
	    "reply($self, /, token, data, timeout=None)\n--\n\nAnswer the request received with "
	    "this token" },
	{ "cancel", (PyCFunction) sock_cancel, METH_O,
	    "cancel($self, token, /)\n--\n\nGive up on a request" },
	{ "getopt", (PyCFunction) sock_getopt, METH_VARARGS,
	    "getopt($self, name, kind='auto', /)\n--\n\nAn option by its C name; kind: bool int ms "
	    "size uint64 string bytes auto" },
	{ "setopt", (PyCFunction) sock_setopt, METH_VARARGS,
	    "setopt($self, name, value, /)\n--\n\nSet an option by its C name" },
	{ "_try_send", (PyCFunction) sock_try_send, METH_O, NULL },
	{ "_try_reply", (PyCFunction) (void (*)(void)) sock_try_reply, METH_FASTCALL, NULL },
	{ "_try_request", (PyCFunction) sock_try_request, METH_O, NULL },
	{ "_try_recv", (PyCFunction) sock_try_recv, METH_NOARGS, NULL },
	{ "_recv_many", (PyCFunction) sock_recv_many, METH_O, NULL },
	{ "_dispatch", (PyCFunction) sock_dispatch, METH_O, NULL },
	{ "_pin_fds", (PyCFunction) sock_pin_fds, METH_O, NULL },
	{ "_redis_submit", (PyCFunction) (void (*)(void)) sock_redis_submit, METH_FASTCALL, NULL },
	{ "_redis_request", (PyCFunction) (void (*)(void)) sock_redis_request, METH_FASTCALL,
	    NULL },
	{ "_redis_dispatch", (PyCFunction) (void (*)(void)) sock_redis_dispatch, METH_FASTCALL,
	    NULL },
	{ "_redis_recv", (PyCFunction) (void (*)(void)) sock_redis_recv, METH_FASTCALL, NULL },
	{ NULL, NULL, 0, NULL },
};

static PyType_Slot sock_slots[] = {
	{ Py_tp_new, sock_new },
	{ Py_tp_init, sock_init },
	{ Py_tp_dealloc, sock_dealloc },
	{ Py_tp_methods, sock_methods },
	{ Py_tp_getset, sock_getset },
	{ Py_tp_doc, "Socket(pattern, raw=False) - the C core of iok.Socket" },
	{ 0, NULL },
};

static PyType_Spec sock_spec = {
	.name      = "iok._iok.Socket",
	.basicsize = sizeof(SockObject),
	.flags     = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
	.slots     = sock_slots,
};

/* ------------------------------------------------------ module functions */

static PyObject *
mod_setup(PyObject *m, PyObject *args)
{
	PyObject     *base, *map, *msgtype;
	unsigned long main_ident;
	if (!PyArg_ParseTuple(
	        args, "OO!Ok:_setup", &base, &PyDict_Type, &map, &msgtype, &main_ident)) {
		return NULL;
	}
	g_main_thread = main_ident;
	Py_XDECREF(g_error_base);
	Py_XDECREF(g_error_map);
	Py_XDECREF(g_message_type);
	g_error_base   = Py_NewRef(base);
	g_error_map    = Py_NewRef(map);
	g_message_type = Py_NewRef(msgtype);
	Py_RETURN_NONE;
}

static PyObject *
mod_strerror(PyObject *m, PyObject *arg)
{
	long code = PyLong_AsLong(arg);
	if (code == -1 && PyErr_Occurred()) {
		return NULL;
	}
	return PyUnicode_FromString(iok_strerror((int) code));
}

static PyObject *
ep_close(PyObject *args, int dialer)
{
	unsigned int id;
	int          rv;
	if (!PyArg_ParseTuple(args, "I", &id)) {
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS rv = dialer ? iok_dialer_close((iok_dialer) { id })
	                                   : iok_listener_close((iok_listener) { id });
	Py_END_ALLOW_THREADS if (rv != 0)
	{
		return raise_iok(rv);
	}
	Py_RETURN_NONE;
}

static PyObject *
mod_dialer_close(PyObject *m, PyObject *args)
{
	return ep_close(args, 1);
}

static PyObject *
mod_listener_close(PyObject *m, PyObject *args)
{
	return ep_close(args, 0);
}

static PyObject *
ep_getopt(PyObject *args, const struct optops *ops)
{
	unsigned int id;
	const char  *name, *k = "auto";
	int          kind;
	if (!PyArg_ParseTuple(args, "Is|s", &id, &name, &k)) {
		return NULL;
	}
	if ((kind = kind_of(k)) < 0) {
		PyErr_Format(PyExc_ValueError, "unknown option kind '%s'", k);
		return NULL;
	}
	return opt_get(ops, id, name, kind);
}

static PyObject *
ep_setopt(PyObject *args, const struct optops *ops)
{
	unsigned int id;
	const char  *name;
	PyObject    *val;
	if (!PyArg_ParseTuple(args, "IsO", &id, &name, &val)) {
		return NULL;
	}
	return opt_set(ops, id, name, val);
}

static PyObject *
mod_dialer_getopt(PyObject *m, PyObject *a)
{
	return ep_getopt(a, &dialer_ops);
}
static PyObject *
mod_listener_getopt(PyObject *m, PyObject *a)
{
	return ep_getopt(a, &listener_ops);
}
static PyObject *
mod_dialer_setopt(PyObject *m, PyObject *a)
{
	return ep_setopt(a, &dialer_ops);
}
static PyObject *
mod_listener_setopt(PyObject *m, PyObject *a)
{
	return ep_setopt(a, &listener_ops);
}

static PyObject *
mod_device(PyObject *m, PyObject *args)
{
	PyObject *a, *b = Py_None;
	int       rv;
	if (!PyArg_ParseTuple(args, "O|O:device", &a, &b)) {
		return NULL;
	}
	if (!PyObject_TypeCheck(a, g_sock_type) ||
	    (b != Py_None && !PyObject_TypeCheck(b, g_sock_type))) {
		PyErr_SetString(PyExc_TypeError, "device(a, b): iok sockets");
		return NULL;
	}
	iok_socket sa = ((SockObject *) a)->s, sb = { 0 };
	if (b != Py_None) {
		sb = ((SockObject *) b)->s;
	}
	Py_BEGIN_ALLOW_THREADS rv = iok_device(sa, sb);
	Py_END_ALLOW_THREADS if (rv != 0)
	{
		return raise_iok(rv);
	}
	Py_RETURN_NONE;
}

static PyObject *
mod_fini(PyObject *m, PyObject *unused)
{
	Py_BEGIN_ALLOW_THREADS iok_fini();
	Py_END_ALLOW_THREADS   Py_RETURN_NONE;
}

static PyObject *
mod_debug_listen(PyObject *m, PyObject *args)
{
	const char *path;
	int         rv;
	if (!PyArg_ParseTuple(args, "s", &path)) {
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS rv = iok_debug_listen(path);
	Py_END_ALLOW_THREADS if (rv != 0)
	{
		return raise_iok(rv);
	}
	Py_RETURN_NONE;
}

static PyObject *
mod_debug_close(PyObject *m, PyObject *unused)
{
	int                    rv;
	Py_BEGIN_ALLOW_THREADS rv = iok_debug_close();
	Py_END_ALLOW_THREADS if (rv != 0)
	{
		return raise_iok(rv);
	}
	Py_RETURN_NONE;
}

static PyObject *
mod_debug_stack_pipe(PyObject *m, PyObject *unused)
{
	int sig, fd, rv;
	if ((rv = iok_debug_stack_pipe(&sig, &fd)) != 0) {
		return raise_iok(rv);
	}
	return Py_BuildValue("(ii)", sig, fd);
}

static PyObject *
mod_debug_text(PyObject *m, PyObject *args)
{
	const char *what;
	char       *text = NULL;
	PyObject   *r;
	int         rv;
	if (!PyArg_ParseTuple(args, "s", &what)) {
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS rv = iok_debug_text(what, &text);
	Py_END_ALLOW_THREADS if (rv != 0)
	{
		return raise_iok(rv);
	}
	r = PyUnicode_DecodeUTF8(text, (Py_ssize_t) strlen(text), "replace");
	iok_strfree(text);
	return r;
}

static PyObject *
mod_metrics_listen(PyObject *m, PyObject *args)
{
	const char *url;
	int         rv;
	if (!PyArg_ParseTuple(args, "z", &url)) {
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS rv = iok_metrics_listen(url);
	Py_END_ALLOW_THREADS if (rv != 0)
	{
		return raise_iok(rv);
	}
	Py_RETURN_NONE;
}

static PyObject *
mod_statsd(PyObject *m, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "url", "period_ms", "prefix", NULL };
	const char  *url, *prefix = NULL;
	long long    period = 1000;
	int          rv;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "z|Lz", kwlist, &url, &period, &prefix)) {
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS rv = iok_statsd(url, (iok_duration) period, prefix);
	Py_END_ALLOW_THREADS if (rv != 0)
	{
		return raise_iok(rv);
	}
	Py_RETURN_NONE;
}

static PyMethodDef mod_methods[] = {
	{ "metrics_listen", mod_metrics_listen, METH_VARARGS,
	    "metrics_listen($module, url, /)\n--\n\nServe Prometheus metrics over HTTP (None "
	    "stops)" },
	{ "statsd", (PyCFunction) (void (*)(void)) mod_statsd, METH_VARARGS | METH_KEYWORDS,
	    "statsd($module, /, url, period_ms=1000, prefix='iok')\n--\n\nPush statsd lines over "
	    "UDP (None stops)" },
	{ "_debug_text", mod_debug_text, METH_VARARGS, NULL },
	{ "debug_listen", mod_debug_listen, METH_VARARGS,
	    "debug_listen($module, path, /)\n--\n\nServe the debug endpoint on a unix socket" },
	{ "debug_close", mod_debug_close, METH_NOARGS,
	    "debug_close($module, /)\n--\n\nStop the debug endpoint" },
	{ "_debug_stack_pipe", mod_debug_stack_pipe, METH_NOARGS, NULL },
	{ "_setup", mod_setup, METH_VARARGS, NULL },
	{ "strerror", mod_strerror, METH_O,
	    "strerror($module, code, /)\n--\n\nThe description of an IOK_E* code" },
	{ "dialer_close", mod_dialer_close, METH_VARARGS, NULL },
	{ "listener_close", mod_listener_close, METH_VARARGS, NULL },
	{ "dialer_getopt", mod_dialer_getopt, METH_VARARGS, NULL },
	{ "listener_getopt", mod_listener_getopt, METH_VARARGS, NULL },
	{ "dialer_setopt", mod_dialer_setopt, METH_VARARGS, NULL },
	{ "listener_setopt", mod_listener_setopt, METH_VARARGS, NULL },
	{ "_device", mod_device, METH_VARARGS, NULL },
	{ "fini", mod_fini, METH_NOARGS,
	    "fini($module, /)\n--\n\nClose every socket and stop the kernel thread" },
	{ NULL, NULL, 0, NULL },
};

static struct PyModuleDef moddef = {
	PyModuleDef_HEAD_INIT,
	.m_name    = "iok._iok",
	.m_doc     = "C core of the iok Python bindings",
	.m_size    = -1,
	.m_methods = mod_methods,
};

PyMODINIT_FUNC
PyInit__iok(void)
{
	static int registered;
	PyObject  *m = PyModule_Create(&moddef), *type;
	if (m == NULL) {
		return NULL;
	}
	if (!registered) {
		registered = 1;
		init_signals();
		pthread_atfork(NULL, NULL, atfork_child);
	}
	type = PyType_FromSpec(&sock_spec);
	if (type == NULL || PyModule_AddObjectRef(m, "Socket", type) < 0) {
		Py_XDECREF(type);
		Py_DECREF(m);
		return NULL;
	}
	g_sock_type = (PyTypeObject *) type; /* the module keeps it alive */
	Py_DECREF(type);
	if (ikpy_resp_init(m) < 0 || ikpy_pg_init(m) < 0 || ikpy_appstats_init(m) < 0 ||
	    ikpy_reply_init(m) < 0 || ikpy_command_init(m) < 0 ||
	    PyModule_AddStringConstant(m, "version", iok_version()) < 0) {
		Py_DECREF(m);
		return NULL;
	}
#define ADD_INT(name, v)                               \
	if (PyModule_AddIntConstant(m, name, v) < 0) { \
		Py_DECREF(m);                          \
		return NULL;                           \
	}
	ADD_INT("IOK_EINTR", IOK_EINTR)
	ADD_INT("IOK_ENOMEM", IOK_ENOMEM)
	ADD_INT("IOK_EINVAL", IOK_EINVAL)
	ADD_INT("IOK_EBUSY", IOK_EBUSY)
	ADD_INT("IOK_ETIMEDOUT", IOK_ETIMEDOUT)
	ADD_INT("IOK_ECONNREFUSED", IOK_ECONNREFUSED)
	ADD_INT("IOK_ECLOSED", IOK_ECLOSED)
	ADD_INT("IOK_EAGAIN", IOK_EAGAIN)
	ADD_INT("IOK_ENOTSUP", IOK_ENOTSUP)
	ADD_INT("IOK_EADDRINUSE", IOK_EADDRINUSE)
	ADD_INT("IOK_ESTATE", IOK_ESTATE)
	ADD_INT("IOK_ENOENT", IOK_ENOENT)
	ADD_INT("IOK_EPROTO", IOK_EPROTO)
	ADD_INT("IOK_EUNREACHABLE", IOK_EUNREACHABLE)
	ADD_INT("IOK_EADDRINVAL", IOK_EADDRINVAL)
	ADD_INT("IOK_EPERM", IOK_EPERM)
	ADD_INT("IOK_EMSGSIZE", IOK_EMSGSIZE)
	ADD_INT("IOK_ECONNABORTED", IOK_ECONNABORTED)
	ADD_INT("IOK_ECONNRESET", IOK_ECONNRESET)
	ADD_INT("IOK_ECANCELED", IOK_ECANCELED)
	ADD_INT("IOK_ENOFILES", IOK_ENOFILES)
	ADD_INT("IOK_ENOSPC", IOK_ENOSPC)
	ADD_INT("IOK_EEXIST", IOK_EEXIST)
	ADD_INT("IOK_EREADONLY", IOK_EREADONLY)
	ADD_INT("IOK_EWRITEONLY", IOK_EWRITEONLY)
	ADD_INT("IOK_ECRYPTO", IOK_ECRYPTO)
	ADD_INT("IOK_EPEERAUTH", IOK_EPEERAUTH)
	ADD_INT("IOK_ENOARG", IOK_ENOARG)
	ADD_INT("IOK_EAMBIGUOUS", IOK_EAMBIGUOUS)
	ADD_INT("IOK_EBADTYPE", IOK_EBADTYPE)
	ADD_INT("IOK_ECONNSHUT", IOK_ECONNSHUT)
	ADD_INT("IOK_EINTERNAL", IOK_EINTERNAL)
#undef ADD_INT
	return m;
}
