/*
 * tflags.h - the transport flags (IK_TF_*), in a kernel header of their own
 * so that patterns (which ask ik_pipe_flags) and transports (which declare
 * them) both see them without including each other's headers.
 */
#ifndef IK_TFLAGS_H
#define IK_TFLAGS_H

#define IK_TF_SP 0x01      /* frames carry SP headers (nng wire protocol) */
#define IK_TF_INORDER 0x02 /* replies come back in request order (FIFO) */
#define IK_TF_PUSH 0x04    /* the server sends unsolicited push frames */
#define IK_TF_LISTEN 0x08  /* we can listen (not only dial) */
#define IK_TF_INPROC 0x10  /* no bytes: messages are handed over directly */

#endif /* IK_TFLAGS_H */
