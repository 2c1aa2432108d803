/*
 * sock.h - the socket object.  Two halves in one struct: the queues that
 * application threads share with the kernel (guarded by mu), and the
 * kernel half (pattern state, pipes, endpoints, options, statistics),
 * touched only on the kernel thread.
 */
#ifndef IK_SOCK_H
#define IK_SOCK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "handle.h"
#include "kernel.h"
#include "list.h"
#include "msgq.h"
#include "../patterns/pattern.h"

typedef struct ik_ep ik_ep;

/* Transport options: socket defaults, copied into each endpoint, which may
 * override them. */
typedef struct ik_tran_opts {
	size_t       recv_max;
	iok_duration reconn_min;
	iok_duration reconn_max;
	int          nodelay;
	int          keepalive;
	int          pool; /* connections a dialer keeps, per address */
	iok_duration ttl_min, ttl_max; /* re-resolve bounds (discovery) */
	char         dns_servers[256]; /* "" = the process default */
} ik_tran_opts;

struct ik_sock {
	ik_obj            obj; /* handle; first member */
	const ik_pattern *pat;
	void             *pdata; /* pattern state */
	int               raw;

	/* ---- shared with application threads: guarded by mu ---- */
	pthread_mutex_t mu;
	pthread_cond_t  recv_cv, send_cv;
	ik_msgq         rq, sq; /* to the application / from it */
	int             rq_cap, sq_cap;
	int             recv_waiters, send_waiters;
	int             recv_fd, send_fd; /* eventfds, level-triggered */
	int             peers_fd; /* eventfd: the live-peer count crossed zero
	                             since peers-live was last read (made and
	                             written by the kernel thread) */
	bool            closed;
	bool            recv_blocked; /* kernel waits for room in rq */
	iok_duration    recv_timeo, send_timeo;
	uint64_t        last_req_token; /* rep: plain send answers this */
	bool            plain_pending;  /* req/surveyor: a plain request is out */
	bool            plain_used;     /* ... and one was ever sent */
	bool            token_mode;     /* iok_request has been used */
	uint64_t        next_token;
	uint32_t        next_session;
	atomic_uint     epoch; /* fork epoch it was last used in */
	ik_cmd          send_cmd;  /* "sq became non-empty" */
	ik_cmd          space_cmd; /* "rq has room again" */

	/* ---- kernel thread only ---- */
	ik_node     knode;  /* in the kernel's list of sockets */
	ik_list     pipes;  /* attachments to active pipes (ik_att) */
	ik_list     paused; /* attachments whose pipe holds a refused message */
	ik_list     eps;    /* dialers and listeners */
	ik_list     shared; /* other sockets' dialers we share (ik_ep) */
	ik_msgq     staged; /* deliveries waiting for the end-of-loop flush */
	size_t      rq_known; /* rq length at the last flush (an upper bound) */
	ik_task     flush_task;
	ik_task     pump_task; /* a long pump continues next iteration */
	bool        send_busy; /* the pattern refused; wait for pipe_ready */
	bool        closing;
	bool        tearing;  /* linger over: closing connections */
	bool        finished; /* torn down; only references keep it */
	int         npipes;   /* pipes (even closing ones) pointing here */
	ik_cmd     *close_cmd;
	ik_timer   *linger_timer;
	ik_sock    *dev_peer; /* device: deliveries go to this socket */
	ik_sock    *dev_src;  /* device: the socket feeding us */
	ik_tran_opts topts;
	iok_duration linger;
	int          max_ttl;
	char         name[64];
	char         last_error[256]; /* IOK_OPT_LAST_ERROR, "" if none */
	uint64_t     stats[IK_STAT_COUNT];
};

/* Kernel-side hooks used by pipes and endpoints. */
void ik_sock_pump(ik_sock *s);          /* offer queued sends to the pattern */
typedef struct ik_att ik_att;
void ik_sock_att_paused(ik_sock *s, ik_att *a);
void ik_sock_ep_gone(ik_sock *s, ik_ep *ep); /* an endpoint finished closing */
void ik_sock_maybe_finish_close(ik_sock *s);
/* The socket's live peers went from 0 to 1 or from 1 to 0 (pipe.c). */
void ik_sock_peers_crossed(ik_sock *s);

/* App-side lookup: takes a reference; release with ik_sock_rele. */
int ik_sock_hold(iok_socket h, ik_sock **sp);
void ik_sock_rele(ik_sock *s);

/* ---- shared by socket.c, sockmsg.c, sockopt.c and device.c ---- */

/* sockmsg.c: the pollable descriptors (no-ops while never handed out). */
void ik_efd_raise(int fd);
void ik_efd_clear(int fd);
/* sockmsg.c: the kernel half of the queues, set up by socket.c's open. */
void ik_sock_send_cmd_fn(ik_cmd *c);   /* "sq became non-empty" */
void ik_sock_space_cmd_fn(ik_cmd *c);  /* "rq has room again" */
void ik_sock_flush_task_fn(ik_task *t); /* staged deliveries to rq */
void ik_sock_pump_task_fn(ik_task *t);  /* a long pump continues */
void ik_sock_resume_paused(ik_sock *s); /* paused pipes read again */

/* device.c */
int  ik_device_forward(ik_sock *to, iok_msg *m); /* a delivery sent on */
void ik_devices_unlink(ik_sock *s);             /* s closes: no device */

#endif
