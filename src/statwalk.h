/*
 * statwalk.h - the socket statistics that the debug endpoint
 * (debug_cmd.c) and the exporters (export_prom.c, export_statsd.c) show,
 * gathered by one walk so that every view reads the same numbers the same
 * way.  Kernel thread only.
 */
#ifndef IK_STATWALK_H
#define IK_STATWALK_H

#include <stddef.h>
#include <stdint.h>

#include "sock.h"

/* A pipe and the requests in flight on it. */
typedef struct ik_pipe_count {
	ik_pipe *pipe;
	uint64_t n;
} ik_pipe_count;

/* Requests a socket waits on: in total, those still waiting for a
 * connection (queued), and per pipe for the npc pipes of pc (the caller
 * sets pc[i].pipe and zeroes pc[i].n; pc may be NULL). */
typedef struct ik_inflight {
	ik_pipe_count *pc;
	int            npc;
	uint64_t       total, queued;
} ik_inflight;

/* ik_inflight_foreach calls fn once per request s waits on (never for a
 * finished socket or a pattern without requests). */
void ik_inflight_foreach(ik_sock *s, ik_inflight_fn fn, void *arg);
/* ik_inflight_count adds s's requests in flight to *in (nothing for a
 * finished socket or a pattern without requests). */
void ik_inflight_count(ik_sock *s, ik_inflight *in);

/* One socket's statistics, read together.  s->stats is current when fn
 * sees it: the send-waits counter, which application threads keep under
 * the socket lock, is copied in first. */
typedef struct ik_sock_view {
	ik_sock *s;
	size_t   sq, rq;         /* messages in the send / receive queue */
	int      sq_cap, rq_cap; /* their capacities */
	uint64_t inflight;       /* requests waited on (ik_inflight.total) */
} ik_sock_view;

/* ik_statwalk calls fn for every socket, finished ones included (v->s
 * ->finished tells), in the kernel's order. */
void ik_statwalk(void (*fn)(const ik_sock_view *v, void *arg), void *arg);

#endif
