/*
 * pipe_int.h - what the three files of a pipe share: pipe.c (its life:
 * handshake, activation, close), pipe_read.c (bytes in to messages) and
 * pipe_write.c (messages out to bytes).  Only they include it.  Kernel
 * thread only.
 */
#ifndef IK_PIPE_INT_H
#define IK_PIPE_INT_H

#include "pipe.h"

#define IK_INPROC_HWM 1024 /* messages queued to an inproc peer */

/* pipe.c */
/* ik_pipe_fail: a protocol-level failure: count it, then close. */
void ik_pipe_fail(ik_pipe *p, int err);
/* ik_pipe_handshake_step: run the codec's handshake over the bytes in
 * p->in, queue its answer; activate the pipe once it is done. */
void ik_pipe_handshake_step(ik_pipe *p);

/* pipe_read.c */
/* ik_pipe_process_input: cut the bytes in p->in into frames and offer
 * them, until the input runs out, a message is refused or the pipe closes. */
void ik_pipe_process_input(ik_pipe *p);
/* ik_pipe_start_reading: unless paused or closing; a failure closes p. */
void ik_pipe_start_reading(ik_pipe *p);
/* ik_pipe_input_fini frees what holds received bytes. */
void ik_pipe_input_fini(ik_pipe *p);
/* ik_pipe_inproc_deliver: offer an inproc pipe's inbox until refused. */
void ik_pipe_inproc_deliver(ik_pipe *p);

/* pipe_local.c */
/* ik_pipe_local_check: as p becomes active, learn whether its other end
 * is in this process (p->local_peer; a tcp peer found is marked too). */
void ik_pipe_local_check(ik_pipe *p);
/* ik_pipe_local_forget: p is being freed. */
void ik_pipe_local_forget(ik_pipe *p);

/* pipe_write.c */
/* ik_pipe_queue_bytes: raw bytes (handshakes, codec requests) into the
 * filling batch.  0 or IOK_ENOMEM. */
int ik_pipe_queue_bytes(ik_pipe *p, const void *data, size_t len);
/* ik_pipe_writable_again: p drained below its mark; tell the patterns. */
void ik_pipe_writable_again(ik_pipe *p);
/* ik_pipe_task_fn: the pipe's task: flush writes, or deliver inproc. */
void ik_pipe_task_fn(ik_task *t);
/* ik_pipe_writes_fini: free the write batches (the pipe is being freed). */
void ik_pipe_writes_fini(ik_pipe *p);

#endif
