/*
 * _resp.h - the RESP half of the Python bindings (_resp.c), used by the
 * Socket methods of _iok.c that iok.redis builds on.
 *
 * Commands are encoded into RESP (an array of bulk strings) straight into
 * an iok message; replies are decoded from the frame the Redis transport
 * delivered into Python objects, both in C, through iok.h's public RESP
 * calls only (iok_resp_command, iok_resp_reader), which wrap the
 * transport's own codec: what the kernel framed and what the binding
 * decodes agree byte for byte.
 */
#ifndef IKPY_RESP_H
#define IKPY_RESP_H

#include <stddef.h>
#include <stdint.h>

#include "iok.h"

/* Decoding flags. */
#define IKPY_RESP_DECODE 1u /* bulk strings -> str (UTF-8), not bytes */

/* ikpy_resp_init adds the module-level functions of _resp.c to the
 * extension module (resp_encode, resp_decode, _redis_setup, dialer_share,
 * session_open, session_close).  0, or -1 with an exception. */
int ikpy_resp_init(PyObject *module);

/* ikpy_resp_command encodes args (a tuple or list of str, bytes-like,
 * int or float) as one RESP command in a new message.  NULL with an
 * exception (TypeError for other types, ValueError for no arguments). */
iok_msg *ikpy_resp_command(PyObject *args);

/* ikpy_resp_decode decodes one complete RESP2/RESP3 frame.  Returns a new
 * reference; *failed is set to 1 when the frame is an error reply, and the
 * value is then the exception instance to raise (iok.redis.ResponseError
 * or a subclass).  NULL with an exception: malformed frame (ProtocolError)
 * or, with IKPY_RESP_DECODE, a bulk string that is not UTF-8
 * (UnicodeDecodeError), or a big number too long for a Python int
 * (iok.redis.DataError). */
PyObject *ikpy_resp_decode(const uint8_t *buf, size_t len, unsigned flags, int *failed);

/* Defined in _iok.c: iok error code -> raised exception / instance. */
PyObject *ikpy_raise_iok(int code);
PyObject *ikpy_make_error(int code);

#endif /* IKPY_RESP_H */
