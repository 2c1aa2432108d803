/*
 * sock.h - the socket object.  Two halves in one struct: the queues that
 * application threads share with the kernel (guarded by mu), and the
 * kernel half (pattern state, pipes, endpoints, options, statistics),
 * touched only on the kernel thread.
 */
#ifndef IK_SOCK_H
#define IK_SOCK_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "event.h"
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
	int          pool;             /* connections a dialer keeps, per address */
	iok_duration conn_timeo;       /* connect, then handshake; < 0: none */
	iok_duration ttl_min, ttl_max; /* re-resolve bounds (discovery) */
	char         dns_servers[256]; /* "" = the process default */
	iok_duration health_ivl;       /* idle time before a probe; 0: off */
	iok_duration health_timeo;     /* a probe's answer within it */
	int          eject_errors;     /* consecutive errors that eject; 0: off */
	iok_duration eject_ms;         /* first ejection's length */
} ik_tran_opts;

/* Messages a receive moves off rq at once (and the bytes, after the first). */
enum { WATCH_NONE, WATCH_POLL, WATCH_SPIN };
#define IK_BALANCE_MAX 64
/* ik_sock_watch_poke: under mu or not: make a watching receiver look
 * again (sockmsg.c). */
void ik_sock_watch_poke(ik_sock *s, int watch);
#define IK_TAKE_MAX 64
#define IK_TAKE_BYTES (64 * 1024)

struct ik_sock {
	ik_obj            obj; /* handle; first member */
	const ik_pattern *pat;
	void             *pdata; /* pattern state */
	void             *app;   /* app-side hook state (pat->app), guarded by mu */
	int               raw;

	/* ---- shared with application threads: guarded by mu ---- */
	alignas(64) pthread_mutex_t mu; /* own line: the handle's refs are read-mostly */
	ik_event   recv_ev, send_ev;
	ik_msgq    rq, sq; /* to the application / from it */
	int        rq_cap, sq_cap;
	size_t     sq_bytes;                   /* body bytes in sq */
	size_t     sq_max_bytes;               /* send-buffer-bytes (0: no limit) */
	uint64_t   send_waits;                 /* sends that found sq full (stat:send-waits) */
	size_t     rq_bytes;                   /* body bytes in rq */
	size_t     rq_max_bytes;               /* recv-buffer-bytes (0: no limit) */
	atomic_int recv_waiters, send_waiters; /* changed under mu; read
	                             unlocked only to skip a wake-up nobody needs */
	int        recv_fd, send_fd;           /* eventfds, level-triggered */
	/* A receiver that watches the connection (sockrecv.c, recv_watch):
	 * WATCH_POLL while it sleeps in ppoll on conn_fd and watch_efd,
	 * WATCH_SPIN while it spins for the delivery of what conn_fd brought.
	 * Set under mu but for POLL -> SPIN; the kernel reads it under mu. */
	atomic_int            recv_watch;
	int                   watch_efd;    /* eventfd for a WATCH_POLL receiver (-1: none yet) */
	atomic_int            watch_raised; /* the kernel raised watch_efd */
	atomic_int            conn_fd;      /* the socket's one stream connection, -1 if
	                             it has none or several (kernel writes) */
	bool                  sent_since_recv; /* the application answers: it may watch */
	uint64_t              recv_watches;    /* stat:recv-watches */
	int                   app_balance;     /* sent minus taken off rq, within
	                             +-IK_BALANCE_MAX: answers outstanding */
	int                   peers_fd;        /* eventfd: the live-peer count crossed zero
	                             since peers-live was last read (made and
	                             written by the kernel thread) */
	bool                  closed;
	bool                  recv_blocked; /* kernel waits for room in rq */
	iok_duration          recv_timeo, send_timeo;
	atomic_size_t         send_max;        /* every peer's limit is known: the largest
	                             (0: unknown or unlimited); read unlocked */
	atomic_uint_least64_t tx_oversize_app; /* sends refused for it */

	/* A receive that answers spins before it sleeps (sockrecv.c,
	 * recv_spin); spins that miss back off over the receives that wait.
	 * Under mu. */
	ik_backoff spin_backoff;
	int        recv_spin_us;   /* IOK_OPT_RECV_SPIN_US; -1: ik_recv_spin_ns */
	uint64_t   recv_spins;     /* stat:recv-spins */
	uint64_t   recv_spin_hits; /* stat:recv-spin-hits: the spin caught it */

	/* ---- application threads only: guarded by take_mu, which is
	 * taken before mu ---- */
	/* A receive moves a batch off rq under one lock of mu and keeps the
	 * rest here, so the receives after it touch no line the kernel
	 * thread writes.  Only where a plain receive has no app-side hook
	 * (ik_sock_batches). */
	alignas(64) pthread_mutex_t take_mu;
	ik_msgq       taken;
	atomic_size_t taken_len; /* taken.len, for readers without take_mu */

	uint64_t    next_token;
	uint32_t    next_session;
	atomic_uint epoch;     /* fork epoch it was last used in */
	ik_cmd      send_cmd;  /* "sq became non-empty" */
	ik_cmd      space_cmd; /* "rq has room again" */

	/* ---- kernel thread only ---- */
	alignas(64) ik_node knode;        /* in the kernel's list of sockets */
	ik_list           pipes;          /* attachments to active pipes (ik_att) */
	ik_list           paused;         /* attachments whose pipe holds a refused message */
	ik_list           eps;            /* dialers and listeners */
	ik_list           shared;         /* other sockets' dialers we share (ik_ep) */
	ik_msgq           staged;         /* deliveries waiting for the end-of-loop flush */
	size_t            rq_known;       /* rq length at the last flush (an upper bound) */
	size_t            rq_bytes_known; /* rq_bytes then (an upper bound too) */
	size_t            staged_bytes;
	ik_task           flush_task;
	ik_task           pump_task;     /* a pump goes on: a slice later, or next iteration */
	ik_task           linger_task;   /* lingering: may nothing be flushed now? */
	bool              send_busy;     /* the pattern refused; wait for pipe_ready */
	bool              handed_inproc; /* this pump turn gave an inproc peer a message */
	size_t            pump_sliced;   /* taken by the slices of this turn so far */
	bool              closing;
	bool              tearing;  /* linger over: closing connections */
	bool              finished; /* torn down; only references keep it */
	int               npipes;   /* pipes (even closing ones) pointing here */
	ik_cmd           *close_cmd;
	ik_timer         *linger_timer;
	ik_sock          *dev_peer; /* device: deliveries go to this socket */
	ik_sock          *dev_src;  /* device: the socket feeding us */
	ik_tran_opts      topts;
	iok_duration      linger;
	int               max_ttl;
	char              name[64];
	char              last_error[256]; /* IOK_OPT_LAST_ERROR, "" if none */
	uint64_t          stats[IK_STAT_COUNT];
	struct ik_xstats *xs; /* latency, errors by kind (stats.h); lazily */
	/* send-rate token bucket (throttle.c) */
	uint32_t  send_rate;  /* messages per second, 0: no limit */
	uint32_t  send_burst; /* bucket size */
	double    tokens;
	uint64_t  tokens_ns; /* when tokens was last refilled */
	ik_timer *rate_timer;
};

/* ik_sq_full: no room in the send queue, by count or by bytes (one
 * message always fits in an empty queue, whatever its size).  Under mu. */
static inline bool
ik_sq_full(const ik_sock *s)
{
	return s->sq.len >= (size_t) s->sq_cap ||
	       (s->sq_max_bytes > 0 && s->sq.len > 0 && s->sq_bytes >= s->sq_max_bytes);
}

/* throttle.c (kernel thread): may the pump hand one more message to the
 * pattern now?  false: the rate limit holds it; the pump resumes by
 * itself when a token is due. */
bool ik_throttle_take(ik_sock *s);
void ik_throttle_set(ik_sock *s, uint32_t rate, uint32_t burst); /* rate 0: off */
void ik_throttle_fini(ik_sock *s);

/* Kernel-side hooks used by pipes and endpoints. */
void                  ik_sock_pump(ik_sock *s); /* offer queued sends to the pattern */
typedef struct ik_att ik_att;
void                  ik_sock_att_paused(ik_sock *s, ik_att *a);
void                  ik_sock_ep_gone(ik_sock *s, ik_ep *ep); /* an endpoint finished closing */
void                  ik_sock_maybe_finish_close(ik_sock *s);
/* The socket's pipes or their peers' receive limits changed: recompute
 * send_max (kernel thread). */
void ik_sock_peer_limits(ik_sock *s);
/* A dialer's attempt failed: a lingering socket may have nowhere left to
 * flush to (checked from a task, never inside the dialer's code). */
void ik_sock_linger_check(ik_sock *s);
/* The socket's live peers went from 0 to 1 or from 1 to 0 (pipe.c). */
void ik_sock_peers_crossed(ik_sock *s);

/* App-side lookup: takes a reference; release with ik_sock_rele. */
int  ik_sock_hold(iok_socket h, ik_sock **sp);
void ik_sock_rele(ik_sock *s);
/* The hot calls' lookup (ik_obj_use): no reference to release, valid
 * until the thread's next ik_sock_use; never two at once. */
int ik_sock_use(iok_socket h, ik_sock **sp);

/* ---- shared by socket.c, sockmsg.c, sockopt.c and device.c ---- */

/* sockopt.c: make recv_fd and send_fd if not yet (0 or IOK_ENOFILES). */
int ik_sock_ensure_fds(ik_sock *s);
/* ik_sock_app_stats: copy the counts application threads keep under mu
 * (send waits, watches, spins) into stats[].  Under mu. */
void ik_sock_app_stats(ik_sock *s);
/* sockmsg.c: the pollable descriptors (no-ops while never handed out). */
void ik_efd_raise(int fd);
void ik_efd_clear(int fd);

/* Shared by sockmsg.c and sockrecv.c, the two halves of the message path. */
size_t ik_low_water(int cap); /* a full queue's waiters wake at this length */
void   ik_deadline_after(struct timespec *ts, iok_duration ms); /* CLOCK_MONOTONIC */
void   ik_sock_post(ik_sock *s, ik_cmd *c);                     /* post c, holding a reference */
/* ik_wait_on waits on ev (mu held; forever if timeo < 0, else until
 * deadline), counted in *waiters: 0 or IOK_ETIMEDOUT. */
int ik_wait_on(ik_event *ev, pthread_mutex_t *mu, atomic_int *waiters, iok_duration timeo,
    const struct timespec *deadline);
/* sockmsg.c: the kernel half of the queues, set up by socket.c's open. */
void ik_sock_send_cmd_fn(ik_cmd *c);    /* "sq became non-empty" */
void ik_sock_space_cmd_fn(ik_cmd *c);   /* "rq has room again" */
void ik_sock_flush_task_fn(ik_task *t); /* staged deliveries to rq */
void ik_sock_pump_task_fn(ik_task *t);  /* a long pump continues */
void ik_sock_resume_paused(ik_sock *s); /* paused pipes read again */

/* socket.c: visit every socket not yet torn down (kernel thread; fn must
 * not close sockets). */
void ik_sockets_foreach(void (*fn)(ik_sock *, void *), void *arg);
/* sockopt.c: the option name of statistic i ("stat:rx-msgs"). */
const char *ik_stat_name(int i);

/* device.c */
int  ik_device_forward(ik_sock *to, iok_msg *m); /* a delivery sent on */
void ik_devices_unlink(ik_sock *s);              /* s closes: no device */

#endif
