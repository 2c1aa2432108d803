/*
 * pattern.h - the pattern interface, and the few kernel services a pattern
 * may use.
 *
 * A pattern is a table of functions, registered by name, all called on the
 * kernel thread: no locks, no atomics, no I/O.  The core hands a pattern
 * whole messages: from the application (send) and from connections (recv),
 * with the SP header still at the front of the body, exactly as it came off
 * the wire.  The pattern moves header bytes into the message header, routes
 * messages to pipes, and delivers them to the application.  It never sees a
 * byte of framing.
 *
 * Flow control is by return value: send() and recv() return IK_BUSY to
 * refuse a message for now.  The core keeps it (in the send queue, or held
 * on the pipe, whose reading pauses) and offers it again when
 * pipe_ready() / delivery space says things moved.  A message offered
 * again is the same object, as the pattern left it: a pattern that moved
 * header bytes before refusing sets IK_MSG_PARSED so it does not move
 * them twice.
 */
#ifndef IK_PATTERN_H
#define IK_PATTERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iok.h"
#include "../src/msg.h"

typedef struct ik_sock  ik_sock;
typedef struct ik_pipe  ik_pipe;
typedef struct ik_timer ik_timer;

#define IK_DRAIN_MAX_MS 10000 /* a draining pipe is closed after this */

/* Return values of send/recv/ik_sock_deliver. */
#define IK_OK 0
#define IK_BUSY 1

/* Pattern flags. */
#define IK_PF_SEND 0x01    /* the application may send */
#define IK_PF_RECV 0x02    /* the application may receive */
#define IK_PF_RAW 0x04     /* has a raw mode */
#define IK_PF_NOSP 0x08    /* no SP headers: runs over database transports */
#define IK_PF_REQUEST 0x10 /* iok_request works (req, surveyor, db) */
#define IK_PF_REPLY \
	0x20 /* iok_reply works; plain send answers the last
                              request received (rep, respondent) */
#define IK_PF_MULTI_REPLY \
	0x40 /* a request gets many replies, then a
                                  status completion (surveyor) */
#define IK_PF_SESSIONS \
	0x80 /* iok_session_open/close work: session_close
                               is set (pipelined-db) */

/* Option types, for setopt/getopt. */
enum ik_opt_type {
	IK_OPT_BOOL = 1,
	IK_OPT_INT,
	IK_OPT_MS,
	IK_OPT_SIZE,
	IK_OPT_UINT64,
	IK_OPT_STRING,
	IK_OPT_BYTES
};

/* App-side hooks: the nng-style plain use of request/reply sockets
 * (iok_send/iok_recv with no tokens), whose state belongs to application
 * threads.  The core calls them, on cooked sockets only, with the socket's
 * lock held (recv of a take_ahead socket: take_mu), so the state (size
 * bytes, zeroed at open, passed as as) needs no lock of its own beyond
 * that; they must not block or call the core.  Any may be NULL. */
typedef struct ik_app_hooks {
	size_t size;
	/* send: a plain send of m, about to be queued (the queue has room).
	 * 0 queues it (the hook may stamp m: token, IK_MSG_REPLY); an IOK_E*
	 * code refuses it.  *drop_queued = true drops the messages still
	 * queued for the application first (stale replies). */
	int (*send)(void *as, iok_msg *m, bool *drop_queued);
	/* request: iok_request was used on the socket. */
	void (*request)(void *as);
	/* recv_empty: a receive finds the queue empty: 0 to wait, or the
	 * error to return (IOK_ESTATE: nothing can ever arrive). */
	int (*recv_empty)(void *as);
	/* recv: m is being handed to the application. */
	void (*recv)(void *as, const iok_msg *m);
	/* batches: may a receive take several messages at once, recv called
	 * for each as it is taken (nothing the application sends meanwhile
	 * depends on which of them it has read)?  NULL: never. */
	bool (*batches)(void *as);
	/* take_ahead (with batches NULL): a receive still hands the
	 * application one message at a time, but may move those behind it
	 * off the queue into the taken list under the same lock; recv is
	 * called as each is handed over, under take_mu rather than the
	 * socket's lock, so the state it writes must be atomic. */
	bool take_ahead;
	/* fork_child: the child forgets what was in flight. */
	void (*fork_child)(void *as);
} ik_app_hooks;

/* What a pattern's inflight hook reports for one request: the pipe it was
 * written to (NULL while it waits for one), the loop time (ik_now_ms) it
 * was accepted, and the request's first bytes (len may be 0). */
typedef void (*ik_inflight_fn)(
    void *arg, ik_pipe *p, uint64_t since_ms, const void *head, size_t len);

typedef struct ik_pattern {
	const char *name;      /* "pair1" */
	const char *peer_name; /* "pair1" */
	uint16_t    proto;     /* SP protocol id (0 if none) */
	uint16_t    peer;      /* SP peer protocol id */
	unsigned    flags;     /* IK_PF_* */
	size_t      sock_size; /* private per-socket state (zeroed) */
	size_t      pipe_size; /* private per-pipe state (zeroed) */

	/* init sets up the socket state; raw says raw mode. 0 or IOK_E*. */
	int (*init)(void *ps, ik_sock *s, int raw);
	/* fini frees everything the state owns; every pipe is gone. */
	void (*fini)(void *ps);

	/* pipe_add: a connection joined (handshake done, peer protocol
	 * checked).  Return 0 to accept, IOK_EBUSY/IOK_EPROTO to refuse (the
	 * core closes it).  pipe_rm: it left; forget it (messages it held
	 * were freed by the core). */
	int (*pipe_add)(void *ps, void *pp, ik_pipe *p);
	void (*pipe_rm)(void *ps, void *pp);

	/* send: the application sent m.  IK_OK: the pattern took it (sent,
	 * queued or dropped).  IK_BUSY: cannot take it now; the core keeps
	 * it at the head of the send queue until pipe_ready or pipe_add. */
	int (*send)(void *ps, iok_msg *m);
	/* recv: a whole message arrived on a pipe (SP header at the front of
	 * the body).  IK_OK: taken (delivered or dropped).  IK_BUSY: the core
	 * holds it, pauses that pipe, and offers it again when the socket's
	 * receive queue has room. */
	int (*recv)(void *ps, void *pp, iok_msg *m);
	/* pipe_ready: the pipe's write queue drained below its high-water
	 * mark (may be NULL). */
	void (*pipe_ready)(void *ps, void *pp);

	/* Options the pattern owns; IOK_ENOTSUP for names it does not know. */
	int (*setopt)(void *ps, const char *name, const void *v, size_t sz, int type);
	int (*getopt)(void *ps, const char *name, void *v, size_t *sz, int type);

	/* cancel: the application gave up on request token (may be NULL). */
	void (*cancel)(void *ps, uint64_t token);
	/* fork_child: in a forked child, forget work that belongs to the
	 * parent (outstanding requests, queued resends) so nothing is sent
	 * twice (may be NULL).  The parent's pipes are closing when this is
	 * called; pipe_rm for them follows. */
	void (*fork_child)(void *ps);
	/* recv_ready: the receive queue has room again after being full
	 * (may be NULL): a pattern holding completions can deliver them. */
	void (*recv_ready)(void *ps);
	/* inflight: call fn once per request this socket waits on, queued or
	 * written (may be NULL: patterns without requests).  Read-only: the
	 * debug endpoint lists requests with it. */
	void (*inflight)(void *ps, ik_inflight_fn fn, void *arg);
	/* session_close: the application closed session (iok_session_close;
	 * IK_PF_SESSIONS patterns only).  Messages sent before the close may
	 * still be in the socket's send queue: the pattern takes them first
	 * (ik_sock_send_ready, refusing none), so it acts on the close in
	 * order with them. */
	void (*session_close)(void *ps, uint32_t session);
	/* dial_failed: one of the socket's dialers failed a connection
	 * attempt with err (IOK_ECONNREFUSED, IOK_EUNREACHABLE,
	 * IOK_ETIMEDOUT, IOK_EPEERAUTH...) and will retry after its backoff
	 * (may be NULL).  ik_sock_connect_error says whether any connection
	 * can still be hoped for soon. */
	void (*dial_failed)(void *ps, int err);
	/* app: the app-side hooks (NULL: none). */
	const ik_app_hooks *app;
	/* pipe_drain: the pipe's address left its dialer's target (discovery):
	 * put nothing new on it, and ik_pipe_close it once what is in flight
	 * there has been answered; the core closes it anyway after
	 * IK_DRAIN_MAX_MS.  NULL: the core closes it at once (pipe_rm then
	 * resends or fails what was in flight). */
	void (*pipe_drain)(void *ps, void *pp);
} ik_pattern;

/* ik_pattern_register adds a pattern (and "<name>" without a trailing
 * version digit as an alias).  Any thread, typically at start-up; the
 * table is fixed size (IOK_ENOSPC when full), IOK_EEXIST if the name is
 * taken. */
int               ik_pattern_register(const ik_pattern *p);
const ik_pattern *ik_pattern_find(const char *name);
/* ik_pattern_alias makes alias name the same pattern as name. */
void ik_pattern_alias(const char *alias, const char *name);

/* ---- kernel services for patterns (kernel thread only) ---- */

/* Pipes. */
uint32_t ik_pipe_id(const ik_pipe *p);
uint16_t ik_pipe_peer(const ik_pipe *p);
/* ik_pipe_send queues m (header then body) for writing on p; always takes
 * ownership.  Returns 0 if m was queued; otherwise m was dropped (and
 * counted in stat:tx-dropped): IOK_ECLOSED the pipe is not active,
 * IOK_EINVAL (or the transport's error) its transport cannot encode m, e.g.
 * not exactly one command, IOK_ENOMEM (the pipe closes).  Patterns that
 * match replies by order must not count a dropped message as sent. */
int ik_pipe_send(ik_pipe *p, iok_msg *m);
/* ik_pipe_send_copy sends m, which stays the caller's: for fan-out and for
 * requests kept for resends.  Small messages are framed straight into a
 * stream's write batch; a message with a header going inproc is copied
 * (the peer gets header and body as one body, which needs a copy
 * anyway); otherwise the pipe holds a reference to m (src/msg.h), so m
 * must not be modified after this (only freed).  0 or IOK_E* (counted);
 * IOK_ENOMEM leaves m unsent. */
int ik_pipe_send_copy(ik_pipe *p, const iok_msg *m);
/* ik_pipe_writable: p's write queue is below its high-water mark. */
int ik_pipe_writable(const ik_pipe *p);
/* ik_pipe_close drops the connection (e.g. a malformed message); the
 * pattern gets pipe_rm soon after, not from inside this call. */
void ik_pipe_close(ik_pipe *p, int err);
/* ik_pipe_flags: the transport's IK_TF_* flags (e.g. IK_TF_INORDER:
 * replies come back in request order; IK_TF_PUSH: the server pushes). */
unsigned ik_pipe_flags(const ik_pipe *p);
/* ik_pipe_rank: how well p's server fits what its URL asked, now (the
 * transport's rank: 0 fits; a higher rank is for use only while no pipe of
 * a lower one is up, e.g. PostgreSQL's prefer-standby on a primary). */
#define IK_RANK_GONE 0x10000u /* the rank of a pipe that is closing */
unsigned ik_pipe_rank(const ik_pipe *p);
/* ik_pipe_subscribe asks the server to start (IK_SUB_ON) or stop pushing
 * topic on p (a database transport's SUBSCRIBE / LISTEN); IK_SUB_PATTERN
 * makes topic a pattern.  IOK_ENOTSUP if the transport has no pushes. */
#define IK_SUB_ON 0x01
#define IK_SUB_PATTERN 0x02
int ik_pipe_subscribe(ik_pipe *p, const void *topic, size_t len, unsigned how);
/* Upstream statistics.  A dialer's pipe belongs to an upstream (one
 * address of its target; accepted pipes have none, and these are no-ops /
 * zero for them).  ik_pipe_note_reply: a reply came latency_us after its
 * request was written (kept as a moving average per upstream, shown in the
 * dialer's "upstreams").  ik_pipe_latency_us: that average (0 = no sample
 * yet); ik_pipe_weight: the upstream's weight from discovery (>= 1). */
void     ik_pipe_note_reply(ik_pipe *p, uint64_t latency_us);
uint64_t ik_pipe_latency_us(const ik_pipe *p);
unsigned ik_pipe_weight(const ik_pipe *p);
/* ik_pipe_hold_subscribe: while held, the bytes ik_pipe_subscribe makes
 * are kept, and written in order when the hold is released.  A pattern
 * that gives a connection to one session holds it, so another socket
 * sharing the connection never slips a SUBSCRIBE into, e.g., a Redis
 * MULTI (the server would queue it and answer with a reply, shifting
 * reply matching). */
void ik_pipe_hold_subscribe(ik_pipe *p, int hold);
/* ik_pipe_release: a pinned session let go of p; the transport returns the
 * connection to a clean state first (PostgreSQL: ROLLBACK of a transaction
 * left open, its reply consumed by the codec).  0, or IOK_E* after which p
 * is closing. */
int ik_pipe_release(ik_pipe *p);
/* ik_pipe_cancel asks the server to cancel what p is running now, over a
 * side connection to the same address (PostgreSQL's CancelRequest).
 * Fire and forget; IOK_ENOTSUP if the transport cannot. */
int ik_pipe_cancel(ik_pipe *p);

/* Health: active checks and outlier ejection (src/health.c).  A pattern
 * owns the probes it sends: it sends one only with nothing in flight on
 * p, so the next reply there is the probe's.  ik_pipe_health_ms: p's
 * IOK_OPT_HEALTH_INTERVAL (0: no probes) and IOK_OPT_HEALTH_TIMEOUT.
 * ik_pipe_probe writes the transport's probe (counts stat:probes): 0,
 * IOK_ENOTSUP (the transport has none), IOK_ECLOSED, IOK_ENOMEM (p
 * closes).  ik_pipe_probe_answer takes m, the reply that came for the
 * probe: 0 if it answers it (the upstream is alive), IOK_EPROTO if not
 * (the stream is out of step: close p).  ik_pipe_probe_timeout: no answer
 * in time; counts it and closes p with IOK_ETIMEDOUT.  ik_pipe_ejected: p's
 * upstream is ejected from routing now (outlier detection).
 * ik_pipe_inflight_add: the pattern's requests in flight on p changed by
 * delta; ik_pipe_up_inflight: their sum over every pipe of p's upstream
 * (0 for a pipe without one). */
void     ik_pipe_health_ms(const ik_pipe *p, uint64_t *interval, uint64_t *timeout);
int      ik_pipe_probe(ik_pipe *p);
int      ik_pipe_probe_answer(ik_pipe *p, iok_msg *m);
void     ik_pipe_probe_timeout(ik_pipe *p);
bool     ik_pipe_ejected(const ik_pipe *p);
void     ik_pipe_inflight_add(ik_pipe *p, int delta);
uint64_t ik_pipe_up_inflight(const ik_pipe *p);

/* Sockets. */
/* ik_sock_pipe_by_id finds an active pipe of s (NULL if none). */
ik_pipe *ik_sock_pipe_by_id(ik_sock *s, uint32_t id);
/* ik_sock_deliver queues m for the application.  IK_OK (taken) or IK_BUSY
 * (receive queue full: the caller keeps m; for a pipe's message, return
 * IK_BUSY from recv and the pipe resumes when there is room).  If the
 * socket is half of a device, the message is forwarded instead. */
int ik_sock_deliver(ik_sock *s, iok_msg *m);
/* ik_sock_deliver_drop_oldest queues m, dropping the oldest queued message
 * if the queue is full (never busy). */
void ik_sock_deliver_drop_oldest(ik_sock *s, iok_msg *m);
/* ik_sock_send_ready tells the core the pattern can take messages again
 * (e.g. a pipe was added or became writable outside pipe_ready). */
void ik_sock_send_ready(ik_sock *s);
/* ik_sock_send_ready_later: the same, from a task at the end of this loop
 * iteration: safe from inside send/recv (no re-entry into the pump). */
void ik_sock_send_ready_later(ik_sock *s);
/* ik_sock_stat adds n to a named statistic (IK_STAT_*). */
enum ik_stat {
	IK_STAT_RX_MSGS,
	IK_STAT_TX_MSGS,
	IK_STAT_RX_BYTES,
	IK_STAT_TX_BYTES,
	IK_STAT_PIPES,
	IK_STAT_PIPES_OPENED,
	IK_STAT_RECONNECTS,
	IK_STAT_RX_OVERSIZE,
	IK_STAT_PROTO_ERRORS,
	IK_STAT_RX_MALFORMED,
	IK_STAT_RX_DROPPED,
	IK_STAT_TX_DROPPED,
	IK_STAT_TX_OVERSIZE,    /* sends refused: over the peer's known limit */
	IK_STAT_REQUESTS,       /* requests written (req, surveyor, pipelined-db) */
	IK_STAT_REPLIES,        /* replies matched to a request (ik_sock_req_done) */
	IK_STAT_SEND_WAITS,     /* sends that found the send queue full (copied
	                        from ik_sock.send_waits under its lock) */
	IK_STAT_RATE_DELAYS,    /* times the send-rate limit held the queue */
	IK_STAT_PROBES,         /* health probes sent */
	IK_STAT_PROBE_TIMEOUTS, /* connections closed for an unanswered probe */
	IK_STAT_EJECTIONS,      /* upstreams ejected (outlier detection) */
	IK_STAT_UPSTREAM_WAITS, /* requests that found every upstream full */
	IK_STAT_TX_WRITES,      /* writes to stream connections (batches) */
	IK_STAT_RECV_WATCHES,   /* receives that slept watching the connection
	                        (copied from ik_sock.recv_watches under its lock) */
	IK_STAT_RECV_SPINS,     /* receives that spun before sleeping (likewise) */
	IK_STAT_RECV_SPIN_HITS, /* ... whose spin caught their message */
	IK_STAT_COUNT
};
void ik_sock_stat(ik_sock *s, int stat, uint64_t n);
/* ik_sock_connect_error: 0 while a connection may come soon (s has no
 * endpoint yet, has a listener, or has a dialer with a connection up or
 * still on its first attempt since it last had one); else the error of the
 * last failed attempt: every dialer of s is failing. */
int ik_sock_connect_error(ik_sock *s);
/* ik_clock_ns: monotonic nanoseconds, the clock of request latencies.
 * Within one kernel task or command (a pump turn, an inproc delivery) it
 * is read once and every call returns that reading: the requests of a
 * batch share a send time, as those of a reply batch share a read time
 * (two clock reads per request were 7% of the kernel thread's time at
 * 64 requests in flight inproc). */
uint64_t ik_clock_ns(void);
/* ik_sock_req_done: the reply to a request written to p at sent_ns
 * (ik_clock_ns) has been read.  Counts stat:replies and records the
 * latency for s, p and p's upstream (p may be NULL); feeds
 * ik_pipe_note_reply too, so a pattern calls only this. */
void ik_sock_req_done(ik_sock *s, ik_pipe *p, uint64_t sent_ns);
/* ik_sock_max_ttl: the socket's IOK_OPT_MAXTTL. */
int ik_sock_max_ttl(const ik_sock *s);

/* Timers: fire cb(arg) once after ms, on the kernel thread. */
ik_timer *ik_timer_new(void (*cb)(void *), void *arg);
void      ik_timer_start(ik_timer *t, uint64_t ms);
void      ik_timer_stop(ik_timer *t);
void      ik_timer_free(ik_timer *t); /* stops it; safe from its own callback */
uint64_t  ik_now_ms(void);            /* the loop's clock, milliseconds */
uint64_t  ik_now_us(void);            /* a monotonic clock, microseconds (not cached) */

/* Option value helpers: copy a typed value in or out, checking the type
 * (IOK_EBADTYPE) and range (IOK_EINVAL). */
int ik_opt_get_bool(const void *v, size_t sz, int type, int *out);
int ik_opt_get_int(const void *v, size_t sz, int type, int min, int max, int *out);
int ik_opt_get_ms(const void *v, size_t sz, int type, iok_duration *out);
int ik_opt_get_size(const void *v, size_t sz, int type, size_t min, size_t max, size_t *out);
int ik_opt_put_bool(int val, void *v, size_t *sz, int type);
int ik_opt_put_int(int val, void *v, size_t *sz, int type);
int ik_opt_put_ms(iok_duration val, void *v, size_t *sz, int type);
int ik_opt_put_size(size_t val, void *v, size_t *sz, int type);
int ik_opt_put_uint64(uint64_t val, void *v, size_t *sz, int type);

#endif /* IK_PATTERN_H */
