/*
 * plain.c - see plain.h.  Application-thread code (so in src/, not
 * patterns/, which run on the kernel thread): under the socket's lock (the
 * core holds it), so no lock here; rep's receive hook runs under take_mu
 * instead (take_ahead), so its one field is atomic.
 */
#include <stdatomic.h>

#include "plain.h"

struct plain_req {
	bool pending;    /* a plain request is out */
	bool used;       /* ... and one was ever sent */
	bool token_mode; /* iok_request has been used */
};

static int
req_send(void *as, iok_msg *m, bool *drop_queued)
{
	struct plain_req *r = as;
	(void) m;
	*drop_queued = !r->token_mode;
	r->pending   = true;
	r->used      = true;
	return 0;
}

static void
req_request(void *as)
{
	((struct plain_req *) as)->token_mode = true;
}

static int
req_recv_empty(void *as)
{
	struct plain_req *r = as;
	return !r->token_mode && r->used && !r->pending ? IOK_ESTATE : 0;
}

/* The reply ends a plain request; with many replies, only the status
 * completion does. */
static void
req_end(void *as, const iok_msg *m, bool multi)
{
	struct plain_req *r = as;
	if (!r->token_mode && (m->status != 0 || !multi)) {
		r->pending = false;
	}
}

static void
req_recv(void *as, const iok_msg *m)
{
	req_end(as, m, false);
}

static void
req_recv_multi(void *as, const iok_msg *m)
{
	req_end(as, m, true);
}

/* With tokens, a reply says nothing about what the next send means. */
static bool
req_batches(void *as)
{
	return ((struct plain_req *) as)->token_mode;
}

static void
req_fork_child(void *as)
{
	((struct plain_req *) as)->pending = false;
}

const ik_app_hooks ik_plain_request = {
	.size       = sizeof(struct plain_req),
	.send       = req_send,
	.request    = req_request,
	.recv_empty = req_recv_empty,
	.recv       = req_recv,
	.batches    = req_batches,
	.fork_child = req_fork_child,
};

const ik_app_hooks ik_plain_request_multi = {
	.size       = sizeof(struct plain_req),
	.send       = req_send,
	.request    = req_request,
	.recv_empty = req_recv_empty,
	.recv       = req_recv_multi,
	.batches    = req_batches,
	.fork_child = req_fork_child,
};

/* Written as a request is handed over (under take_mu: take_ahead) and
 * read by the send that answers it (under the socket's lock), so atomic.
 * Threads that share a plain rep socket still have to agree on who
 * answers what, as with nng. */
struct plain_rep {
	_Atomic uint64_t last_token; /* the request a plain send answers, 0 = none */
};

static int
rep_send(void *as, iok_msg *m, bool *drop_queued)
{
	struct plain_rep *r     = as;
	uint64_t          token = atomic_exchange_explicit(&r->last_token, 0, memory_order_relaxed);
	(void) drop_queued;
	if (token == 0) {
		return IOK_ESTATE;
	}
	m->token = token;
	m->flags |= IK_MSG_REPLY;
	return 0;
}

static void
rep_recv(void *as, const iok_msg *m)
{
	atomic_store_explicit(
	    &((struct plain_rep *) as)->last_token, m->token, memory_order_relaxed);
}

static void
rep_fork_child(void *as)
{
	atomic_store_explicit(&((struct plain_rep *) as)->last_token, 0, memory_order_relaxed);
}

const ik_app_hooks ik_plain_reply = {
	.size       = sizeof(struct plain_rep),
	.send       = rep_send,
	.recv       = rep_recv,
	.take_ahead = true,
	.fork_child = rep_fork_child,
};
