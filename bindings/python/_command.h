/*
 * _command.h - _iok.CommandMethod, an asyncio Redis command without a
 * Python frame (_command.c), and what it takes from the other files.
 */
#ifndef IKPY_COMMAND_H
#define IKPY_COMMAND_H

#include <Python.h>

#include <stdint.h>

/* ikpy_command_init adds CommandMethod to the extension module.  0, or -1
 * with an exception. */
int ikpy_command_init(PyObject *module);

/* Defined in _iok.c: what Socket._redis_submit(cmd, 0, flags, pending,
 * loop) does, for a Socket sock: a new Reply(loop), filed in pending
 * under *token; Py_None (a new reference) while the send queue is full;
 * NULL with an exception (a TypeError for anything but a Socket). */
PyObject *ikpy_redis_submit(
    PyObject *sock, PyObject *cmd, long flags, PyObject *pending, PyObject *loop, uint64_t *token);

/* Defined in _iok.c: Socket._dispatch_pending, borrowed; NULL for none
 * (or not a Socket), without an exception. */
PyObject *ikpy_sock_dispatch_pending(PyObject *sock);

/* Defined in _resp.c: what plan(*args[skip:], **kw) returns as
 * (command, transform, flags), without that tuple when plan is a
 * CommandPlan that takes the arguments as they are.  The command (a new
 * reference), *transform (a new reference, NULL for None) and *flags;
 * NULL with an exception. */
PyObject *ikpy_plan_take(PyObject *plan, PyObject *args, Py_ssize_t skip, PyObject *kw,
    PyObject **transform, long *flags);

#endif /* IKPY_COMMAND_H */
