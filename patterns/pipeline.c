/*
 * pipeline.c - PUSH and PULL (nng's pipeline0): push hands each message to
 * one ready peer, round-robin, and waits (backpressure) when none is ready;
 * pull takes from every peer in turn.  No header.
 */
#include "pattern.h"
#include "pipeset.h"

#define MAX_RR 4096 /* a push socket round-robins over at most this many */

typedef struct push_pipe {
	ik_pipe *pipe;
	int      slot;
} push_pipe;

typedef struct push_sock {
	ik_sock   *sock;
	ik_pipeset pipes;
} push_sock;

#include <stdlib.h>

static int
push_init(void *arg, ik_sock *s, int raw)
{
	push_sock *ps = arg;
	(void) raw;
	ps->sock = s;
	IK_PIPESET_INIT(&ps->pipes, push_pipe, MAX_RR);
	return 0;
}

static void
push_fini(void *arg)
{
	push_sock *ps = arg;
	ik_pipeset_fini(&ps->pipes);
}

static int
push_pipe_add(void *arg, void *pp, ik_pipe *p)
{
	push_sock *ps = arg;
	push_pipe *pi = pp;
	pi->pipe      = p;
	return ik_pipeset_add(&ps->pipes, pi);
}

static void
push_pipe_rm(void *arg, void *pp)
{
	push_sock *ps = arg;
	push_pipe *pi = pp;
	ik_pipeset_rm(&ps->pipes, pi);
}

static int
push_send(void *arg, iok_msg *m)
{
	push_sock *ps = arg;
	push_pipe *pi = ik_pipeset_next_writable(&ps->pipes);
	if (pi == NULL) {
		return IK_BUSY; /* no peer, or all full: the message waits */
	}
	iok_msg_header_clear(m);
	ik_pipe_send(pi->pipe, m);
	return IK_OK;
}

static int
push_recv(void *arg, void *pp, iok_msg *m)
{
	push_sock *ps = arg;
	(void) pp;
	/* A pull peer never sends; a message from one is a protocol error. */
	iok_msg_free(m);
	ik_sock_stat(ps->sock, IK_STAT_RX_DROPPED, 1);
	return IK_OK;
}

typedef struct pull_sock {
	ik_sock *sock;
} pull_sock;

static int
pull_init(void *arg, ik_sock *s, int raw)
{
	pull_sock *ps = arg;
	(void) raw;
	ps->sock = s;
	return 0;
}

static void
pull_fini(void *arg)
{
	(void) arg;
}

static int
pull_pipe_add(void *arg, void *pp, ik_pipe *p)
{
	(void) arg;
	(void) pp;
	(void) p;
	return 0;
}

static void
pull_pipe_rm(void *arg, void *pp)
{
	(void) arg;
	(void) pp;
}

static int
pull_send(void *arg, iok_msg *m)
{
	(void) arg;
	iok_msg_free(m); /* unreachable: the core refuses sends on pull */
	return IK_OK;
}

static int
pull_recv(void *arg, void *pp, iok_msg *m)
{
	pull_sock *ps = arg;
	(void) pp;
	return ik_sock_deliver(ps->sock, m);
}

const ik_pattern ik_pattern_push0 = {
	.name      = "push0",
	.peer_name = "pull0",
	.proto     = 0x50,
	.peer      = 0x51,
	.flags     = IK_PF_SEND | IK_PF_RAW,
	.sock_size = sizeof(push_sock),
	.pipe_size = sizeof(push_pipe),
	.init      = push_init,
	.fini      = push_fini,
	.pipe_add  = push_pipe_add,
	.pipe_rm   = push_pipe_rm,
	.send      = push_send,
	.recv      = push_recv,
};

const ik_pattern ik_pattern_pull0 = {
	.name      = "pull0",
	.peer_name = "push0",
	.proto     = 0x51,
	.peer      = 0x50,
	.flags     = IK_PF_RECV | IK_PF_RAW,
	.sock_size = sizeof(pull_sock),
	.pipe_size = 0,
	.init      = pull_init,
	.fini      = pull_fini,
	.pipe_add  = pull_pipe_add,
	.pipe_rm   = pull_pipe_rm,
	.send      = pull_send,
	.recv      = pull_recv,
};
