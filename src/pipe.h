/*
 * pipe.h - a connection.  A pipe owns its libuv stream and drives its
 * transport codec: handshake, framing, batching writes.  Inproc pipes come
 * in linked pairs and hand messages over without bytes.  Kernel thread only.
 */
#ifndef IK_PIPE_H
#define IK_PIPE_H

#include <uv.h>

#include "buf.h"
#include "kernel.h"
#include "list.h"
#include "msgq.h"
#include "sock.h"
#include "../transports/transport.h"

typedef struct ik_wseg {
	iok_msg *msg; /* body referenced in place, or NULL: bytes[off..off+len) */
	size_t   off, len;
} ik_wseg;

typedef struct ik_wbatch {
	uv_write_t req;
	ik_buf     bytes;      /* copied frames and prefixes */
	size_t     last_bytes; /* bytes.len of the last batch written */
	ik_wseg   *segs;
	size_t     nsegs, capsegs;
	size_t     total;
	uv_buf_t  *bufs;
	size_t     capbufs;
} ik_wbatch;

enum ik_pipe_state { IK_PIPE_HANDSHAKE, IK_PIPE_ACTIVE, IK_PIPE_CLOSING };

/* A socket's use of a pipe.  Usually a pipe has one (att[0], the socket
 * whose endpoint made it); a second socket may share it (att[1], see
 * iok_dialer_share): pushes go there, replies to att[0]. */
typedef struct ik_att {
	ik_pipe *pipe;
	ik_sock *sock;
	void    *pdata; /* that pattern's per-pipe state */
	ik_node  snode; /* in sock->pipes */
	ik_node  pnode; /* in sock->paused: the held message is for us */
	bool     added; /* the pattern knows the pipe */
	bool     own_pdata;
} ik_att;

#define IK_ATT_OWNER 0
#define IK_ATT_SHARER 1

struct ik_pipe {
	uint32_t            id;
	int                 state;
	ik_sock            *sock; /* att[0].sock */
	ik_ep              *ep;
	const ik_transport *tran;
	void               *tstate; /* codec state */
	ik_att              att[2];
	uint16_t            peer;             /* peer SP protocol */
	bool                paused;           /* holding a refused message */
	bool                begun;            /* connected: handshake started */
	bool                close_done;       /* close_task_fn ran (or not needed) */
	bool                ever_active;      /* handshake done, pattern took it */
	bool                close_after_held; /* IK_FRAME_LAST is held */
	bool                peer_closed;      /* reading ended: EOF or reset */
	int                 close_err;
	ik_node             enode;   /* in ep->pipes */
	struct ik_upstream *up;      /* the dialer's upstream (NULL: accepted) */
	bool                dialing; /* its stream is still connecting */
	ik_task             task;    /* flush writes / resume reading */
	iok_msg            *held;    /* message a pattern refused */
	int                 held_att;
	size_t              recv_max;
	bool                skipping; /* stepping over an oversize frame */
	bool                sub_hold; /* keep subscribe bytes (pinned session) */
	ik_buf              sub_held; /* ... here, until released */
	uint64_t            rx_msgs, rx_bytes, tx_msgs, tx_bytes;
	struct ik_xstats   *xs; /* latency (stats.h); lazily */

	/* stream pipes */
	union {
		uv_handle_t handle;
		uv_stream_t stream;
		uv_tcp_t    tcp;
		uv_pipe_t   unix_pipe;
	} h;
	bool       is_stream;
	bool       reading;
	ik_buf     in;     /* received bytes */
	size_t     in_off; /* start of the next frame in `in` */
	bool       in_big; /* `in` is a big block (class in_bigc, bigpool.h)
	                      holding one big frame, read straight into it */
	int8_t     in_bigc;
	ik_buf     in_spare;     /* the usual `in`, kept meanwhile */
	int8_t     in_guess;     /* 1 + the class of the big frame just taken: the
	                        next read goes into such a block (0: none) */
	size_t     in_guess_len; /* that frame's length: the guessed read's */
	size_t     need;         /* bytes the next frame needs, if known */
	ik_buf     hsout;        /* handshake bytes to send */
	uv_timer_t hs_timer;
	bool       hs_timer_on;
	ik_wbatch  wb[2]; /* filling / in flight */
	int        wfill; /* index of the filling batch */
	bool       writing;
	bool       was_full; /* above the high-water mark: tell the pattern */
	int        handles_open;

	/* the other end is in this process (pipe_local.c) */
	bool                    local_peer;
	ik_node                 lnode;      /* in pipe_local.c's loopback list */
	struct sockaddr_storage local_addr; /* tcp over loopback: our end */

	/* inproc pipes */
	ik_pipe *peer_pipe;
	ik_msgq  inbox; /* messages from the peer, not yet accepted */
};

/* ik_pipe_new_stream makes a pipe for ep's transport and initialises its
 * stream handle (tcp or unix) so the endpoint can connect or accept into
 * it.  NULL if out of memory. */
ik_pipe     *ik_pipe_new_stream(ik_sock *s, ik_ep *ep, int is_tcp);
uv_stream_t *ik_pipe_stream(ik_pipe *p);
/* ik_pipe_begin: connected or accepted; start the handshake. */
void ik_pipe_begin(ik_pipe *p);
/* ik_pipe_discard: the stream never connected; close and free quietly. */
void ik_pipe_discard(ik_pipe *p);
/* ik_pipe_inproc_pair connects dialer socket ds to listener socket ls in
 * process.  0, or IOK_EPROTO (incompatible patterns), IOK_ENOMEM. */
int ik_pipe_inproc_pair(ik_sock *ds, ik_ep *dep, ik_sock *ls, ik_ep *lep);
/* Offer the held message again and continue reading (room appeared). */
void ik_pipe_resume(ik_pipe *p);
/* ik_pipe_set_recv_max: IOK_OPT_RECVMAXSZ changed for p's endpoint; the
 * codec (or, inproc, the peer's senders) apply it from the next frame. */
void ik_pipe_set_recv_max(ik_pipe *p, size_t recv_max);
/* Sharing: attach socket s to p as its second user / detach it. */
int  ik_pipe_attach(ik_pipe *p, ik_sock *s);
void ik_pipe_detach(ik_pipe *p);
/* Fork child: close every pipe of s without writing a byte. */
void ik_pipe_abandon_all_of(ik_sock *s);

#endif
