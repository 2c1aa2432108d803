/*
 * reqtrack.h - request tracking for the patterns that issue requests (req,
 * surveyor, pipelined-db): what all three need to complete every
 * iok_request exactly once, written once.
 *
 *  - A token map: the pattern's request, found by the application's token
 *    (for iok_cancel, and for the patterns that answer by token).
 *  - Deadlines: requests kept in a list sorted by deadline, served by one
 *    timer per socket.  Insertion scans from the tail, so with a fixed
 *    duration (every new deadline the latest) it is O(1).  The pattern may
 *    ask the same timer to wake it for its own timed work too (ik_rt_arm's
 *    `also`: req's resends).
 *  - Pre-cancel: iok_cancel can overtake its request, which may still be in
 *    the socket's send queue; a cancel for a token above every token seen
 *    is remembered (at most RT_PRECANCEL_MAX) and the request is dropped
 *    when it arrives.
 *  - Owed completions: an error completion (IOK_ETIMEDOUT, IOK_ECONNRESET,
 *    ...) that the full receive queue refuses waits here, in order, and is
 *    delivered from the pattern's recv_ready.
 *  - Forget-all, for fini and for a forked child (the parent's requests).
 *
 * The tracker owns no request: the pattern embeds an ik_rt_ent in each of
 * its own and frees them itself.  Kernel thread only; no locks.
 */
#ifndef IK_REQTRACK_H
#define IK_REQTRACK_H

#include <stdbool.h>
#include <stdint.h>

#include "pattern.h"
#include "idmap.h"
#include "../src/list.h"

/* What the tracker keeps in a pattern's request (zeroed with it). */
typedef struct ik_rt_ent {
	uint64_t token;    /* 0: not in the token map (the plain API's) */
	uint64_t deadline; /* ik_now_ms() time, while dnode is linked */
	ik_node  dnode;    /* in the deadline list */
	uint64_t since;    /* accepted at (ik_now_ms), for the debug endpoint */
	uint64_t sent_ns;  /* last written at (ik_clock_ns), for latency; the
	                      pattern's to set and clear */
} ik_rt_ent;

typedef struct ik_reqtrack {
	ik_sock  *sock;
	ik_idmap *tokens;
	ik_idmap *precancel; /* tokens cancelled before they arrived */
	uint64_t  max_token; /* highest token the pattern took */
	ik_list   deadlines; /* by deadline */
	ik_timer *timer;
	bool      armed;
	uint64_t  armed_at;
	void (*fire)(void *arg);
	void     *arg;
	iok_msg **owed; /* completions waiting for room (ring) */
	uint32_t  ohead, olen, ocap;
} ik_reqtrack;

/* ik_rt_init: fire(arg) runs when the timer goes off (the pattern serves
 * ik_rt_due entries and its own work, then calls ik_rt_arm).  0 or
 * IOK_ENOMEM. */
int ik_rt_init(ik_reqtrack *t, ik_sock *sock, void (*fire)(void *), void *arg);
/* ik_rt_fini frees the tracker (after ik_rt_forget_all). */
void ik_rt_fini(ik_reqtrack *t);
/* ik_rt_forget_all drops pre-cancels and owed completions and stops the
 * timer; the pattern has freed (ik_rt_remove'd) its requests. */
void ik_rt_forget_all(ik_reqtrack *t);

/* ik_rt_precancelled: a request with token (non-zero) reached the
 * pattern.  True if the application cancelled it before it arrived: the
 * pattern drops it silently. */
bool ik_rt_precancelled(ik_reqtrack *t, uint64_t token);
/* ik_rt_seen: the pattern took the request with token (ik_rt_add says it
 * too): a cancel of it no longer waits for it to arrive. */
void ik_rt_seen(ik_reqtrack *t, uint64_t token);
/* ik_rt_add puts e in the token map under token (non-zero).  0 or
 * IOK_ENOMEM. */
int ik_rt_add(ik_reqtrack *t, ik_rt_ent *e, uint64_t token);
/* ik_rt_find: the entry tracked under token, NULL if none. */
ik_rt_ent *ik_rt_find(const ik_reqtrack *t, uint64_t token);
/* ik_rt_remove takes e out of the token map and the deadline list (either
 * may be done already); e->token keeps its value. */
void ik_rt_remove(ik_reqtrack *t, ik_rt_ent *e);
/* ik_rt_cancel: the application cancelled token.  Returns its entry (the
 * pattern gives it up) or NULL; then, if the request has not arrived yet,
 * it will be dropped when it does. */
ik_rt_ent *ik_rt_cancel(ik_reqtrack *t, uint64_t token);

/* ik_rt_set_deadline (re)places e in the deadline list at time at; call
 * ik_rt_arm after. */
void ik_rt_set_deadline(ik_reqtrack *t, ik_rt_ent *e, uint64_t at);
/* ik_rt_due: the earliest entry whose deadline is <= now (still in the
 * list: the pattern removes it), NULL if none. */
ik_rt_ent *ik_rt_due(const ik_reqtrack *t, uint64_t now);
/* ik_rt_arm sets the timer for the earliest deadline, or `also` if that is
 * earlier (UINT64_MAX: nothing else), and stops it when there is nothing
 * to wait for. */
void ik_rt_arm(ik_reqtrack *t, uint64_t also);

/* ik_rt_complete delivers an error completion of token (with session) now,
 * or, if the receive queue is full or others wait, after them at
 * ik_rt_recv_ready.  Out of memory: counted in stat:rx-dropped. */
void ik_rt_complete(ik_reqtrack *t, uint64_t token, uint32_t session, int err);
/* ik_rt_recv_ready delivers waiting completions, in order, while there is
 * room (the pattern's recv_ready). */
void ik_rt_recv_ready(ik_reqtrack *t);
/* ik_rt_drop_plain forgets waiting completions of the plain API (token 0):
 * a new plain request makes them stale, as the core clears its receive
 * queue. */
void ik_rt_drop_plain(ik_reqtrack *t);

/* ik_rt_sorted_insert puts n into l, kept in ascending key order, scanning
 * from the tail (O(1) when keys come in order). */
void ik_rt_sorted_insert(ik_list *l, ik_node *n, uint64_t (*key)(const ik_node *));

#endif /* IK_REQTRACK_H */
