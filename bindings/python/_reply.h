/*
 * _reply.h - _iok.Reply, the awaitable a request's reply completes
 * (_reply.c).
 */
#ifndef IKPY_REPLY_H
#define IKPY_REPLY_H

#include <Python.h>

/* ikpy_reply_init adds the Reply type to the extension module.  0, or -1
 * with an exception. */
int ikpy_reply_init(PyObject *module);

/* A new Reply(loop), pending; NULL with an exception.  After
 * ikpy_reply_init. */
PyObject *ikpy_reply_new(PyObject *loop);

/* True if o is a Reply. */
int ikpy_reply_check(PyObject *o);

/* ikpy_reply_complete gives r its value (or, with is_exc, its exception).
 * With eager, the callbacks (the awaiting task's wakeup) run now, each in
 * its context: only for a caller that runs outside any task (the reply
 * reader, a loop callback); otherwise they are scheduled with call_soon,
 * as a Future does.  Returns 0; 1 if r was done already (cancelled: the
 * value is dropped); -1 with an exception if a callback raised something
 * that is not an Exception (KeyboardInterrupt, SystemExit), after the
 * other callbacks ran. */
int ikpy_reply_complete(PyObject *r, PyObject *value, int is_exc, int eager);

/* ikpy_reply_may_be_eager: true if no asyncio task is running on this
 * thread (a task's wakeup may then run at once).  -1 with an exception. */
int ikpy_reply_may_be_eager(void);

/* Replies one call of a dispatcher takes at most.  A task woken at once
 * sends its next request, whose reply may come while the dispatcher is
 * still at work: bounded, the event loop gets its turn, and the socket's
 * descriptor, still readable, brings the dispatcher back. */
#define IKPY_DISPATCH_MAX 1024

/* The exception being raised, as an instance with its traceback (the
 * error indicator cleared); NULL if none is set. */
PyObject *ikpy_take_exception(void);

/* The reply dispatchers' two steps (_iok.c, _pg.c), for one reply:
 * ikpy_pending_pop takes pending[token] out (a Reply, a Future or a
 * collector): a new reference, NULL if nobody waits (a cancelled request:
 * the reply is dropped) or -1 in *err with an exception.
 * ikpy_pending_settle completes it with value (is_exc: an exception; NULL:
 * the exception being raised, the decoder's failure) and drops the
 * reference; *eager starts at -2 and caches whether a woken
 * task may run at once.  A waiter done already is skipped.  0, or -1 with
 * an exception (KeyboardInterrupt from a woken task). */
PyObject *ikpy_pending_pop(PyObject *pending, unsigned long long token, int *err);
int       ikpy_pending_settle(PyObject *waiter, PyObject *value, int is_exc, int *eager);

#endif
