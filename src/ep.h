/*
 * ep.h - endpoints: dialers and listeners.  Kernel half only touched on the
 * kernel thread; the handle makes them closable on their own.
 */
#ifndef IK_EP_H
#define IK_EP_H

#include <uv.h>

#include "handle.h"
#include "kernel.h"
#include "list.h"
#include "sock.h"
#include "url.h"
#include "../transports/transport.h"

typedef struct ik_resolve ik_resolve;
typedef struct ik_pipe    ik_pipe;

/* One address a dialer keeps IOK_OPT_POOL_SIZE connections to (or, for
 * ipc and inproc, the one path).  Kernel thread only (dialer.c). */
typedef struct ik_upstream {
	ik_node                 node; /* in ep->ups */
	ik_ep                  *ep;
	struct sockaddr_storage sa;
	uint16_t                weight;
	bool                    removed; /* left the set, or the dialer closes */
	bool                    connecting;
	bool                    conn_timed_out; /* the connect timer cancelled it */
	bool                    failing;        /* the last attempt failed; none up since */
	uv_connect_t            creq;
	ik_pipe                *conn_pipe; /* pipe whose stream is connecting */
	ik_timer               *timer;     /* reconnect backoff */
	iok_duration            backoff;
	int                     refs;    /* pipes pointing here, closing ones too */
	uint64_t                t_start; /* the attempt's start, uv_hrtime ns */
	uint64_t                connects, errors, drops, connect_us;
	uint32_t                unreplaced;          /* drops no new connection has replaced yet */
	uint64_t                replies, latency_us; /* moving average */
	struct ik_xstats       *xs;                  /* latency histogram (stats.h); lazily */
	/* Health (health.c): outlier ejection and per-upstream load. */
	uint64_t  inflight;      /* pipelined-db's requests on its pipes */
	uint32_t  consec_errors; /* connection-level errors since a reply */
	uint32_t  eject_level;   /* ejections since the last reply */
	uint64_t  ejections, probe_timeouts;
	uint64_t  ejected_until; /* ik_now_ms() bound; 0: not ejected */
	ik_timer *eject_timer;   /* lets it back; NULL until first ejected */
} ik_upstream;

struct ik_ep {
	ik_obj              obj; /* handle; first member */
	bool                dialer;
	ik_sock            *sock;
	ik_url              url;
	const ik_transport *tran;
	ik_tran_opts        topts;
	ik_node             snode;      /* in sock->eps */
	ik_sock            *sharer;     /* a second socket using our pipes */
	ik_node             share_node; /* in sharer->shared */
	ik_list             pipes;
	bool                started;
	bool                closing;
	bool                finished;
	int                 handles_open; /* uv handles not yet closed */
	ik_cmd             *start_cmd;    /* sync start waiting for a result */
	ik_cmd             *close_cmd;

	/* dialer: one upstream per address of the target's current set */
	ik_list         ups;          /* ik_upstream */
	struct ik_disc *disc;         /* NULL until started (path transports: never) */
	char           *disc_backend; /* "static", "srv", "file", ... */
	char           *disc_target;
	int             last_err;
	bool            own_recv_max; /* IOK_OPT_RECVMAXSZ set on the endpoint */
	bool            own_health;   /* a health: option set on the endpoint */
	uint64_t        reconnects;   /* for the debug endpoint's peers */

	/* listener */
	ik_resolve *res;
	/* listener */
	union {
		uv_handle_t handle;
		uv_stream_t stream;
		uv_tcp_t    tcp;
		uv_pipe_t   unix_pipe;
	} lh;
	bool    listening;
	bool    dormant;      /* inherited across fork, not yet used */
	bool    wake_pending; /* activate once the old handle has closed */
	int     dormant_fd;   /* a dormant listener's descriptor, or -1 */
	int     bound_port;
	ik_node inproc_node; /* inproc registry */
};

/* ---- shared by ep.c, dialer.c, listener.c and share.c ---- */

/* ep.c: the common part (kernel thread unless said otherwise). */
int      ik_uv_err(int uverr); /* a libuv error as IOK_E* */
void     ik_ep_close(ik_ep *ep);
void     ik_ep_maybe_finish(ik_ep *ep); /* free it once closed and idle */
int      ik_ep_family(const ik_ep *ep); /* AF_* the transport asks for */
uint16_t ik_ep_port(const ik_ep *ep);   /* the URL's port or the default */
/* App threads: create, start and close by handle; look a handle up. */
int ik_ep_create(ik_ep **out, iok_socket h, const char *url, bool dialer);
int ik_ep_start(uint32_t id, int type, int flags);
int ik_ep_close_id(uint32_t id, int type);
int ik_ep_hold(uint32_t id, int type, ik_ep **out);

/* Options: transport options (socket defaults, endpoint overrides), and a
 * string option's value put for a getter. */
int ik_topts_set(ik_tran_opts *o, const char *name, const void *v, size_t sz, int type);
int ik_topts_get(const ik_tran_opts *o, const char *name, void *v, size_t *sz, int type);
int ik_put_string(const char *str, void *v, size_t *sz, int type);
/* Option name changed on s: if it is IOK_OPT_RECVMAXSZ or a health:
 * option, s's endpoints that did not set their own take it (the receive
 * limit with their open connections); others are not passed on (kernel
 * thread). */
void ik_eps_opt_changed(ik_sock *s, const char *name);

/* dialer.c */
void ik_dialer_kick(ik_ep *ep); /* connect unless connected or trying */
/* A connection attempt is under way, or the first look-up of the target. */
bool ik_dialer_trying(const ik_ep *ep);
void ik_dialer_close(ik_ep *ep);      /* stop discovery, cancel attempts */
void ik_dialer_fork_child(ik_ep *ep); /* dormant: drop the parent's work */
int  ik_dialer_upstreams(const ik_ep *ep, char *buf, size_t cap); /* text */
/* For the debug endpoint: up's address as text ("host:port", or the path of ipc and inproc),
 * whether "upstreams" lists it (not a drained leftover), its pipes past
 * their handshake. */
void ik_upstream_addr(const ik_upstream *up, char *buf, size_t cap);
bool ik_upstream_listed(const ik_upstream *up);
int  ik_upstream_pipes(const ik_upstream *up);
void ik_inproc_wake_dialers(const char *name); /* a listener took name */

/* health.c: outlier ejection (kernel thread).  ik_upstream_error: a
 * connection-level error of up (failed connect or handshake, connection
 * lost, probe timeout, protocol error); enough in a row eject it.
 * ik_upstream_ok: it answered (a reply or a probe's answer).
 * ik_upstream_health_fini frees what health keeps (up is being freed);
 * ik_upstream_health_fork is its reset in a forked child;
 * ik_upstream_health_text appends the "upstreams" fields. */
void ik_upstream_error(ik_upstream *up, int err);
void ik_upstream_ok(ik_upstream *up);
void ik_upstream_health_fini(ik_upstream *up);
/* ik_upstream_health_fork: in a forked child, forget the parent's view
 * (its ejection, errors and requests in flight). */
void ik_upstream_health_fork(ik_upstream *up);
int  ik_upstream_health_text(const ik_upstream *up, char *buf, size_t cap);

/* listener.c */
int  ik_listener_start(ik_ep *ep); /* 0, IOK_E*, or -1: answered later */
void ik_listener_accept_cb(uv_stream_t *server, int status);

/* share.c */
void ik_ep_unshare(ik_ep *ep);   /* drop the sharing socket, if any */
void ik_unshare_all(ik_sock *s); /* s closes: leave every dialer it shares */

/* Pipe lifecycle notifications (kernel thread, dialer.c). */
void ik_ep_pipe_up(ik_ep *ep, ik_pipe *p);   /* handshake done, accepted */
void ik_ep_pipe_gone(ik_ep *ep, ik_pipe *p); /* freed right after */

/* Fork: make a socket's endpoints dormant in the child / wake them. */
void ik_eps_fork_child(ik_sock *s);
void ik_eps_fork_child_kernel(ik_sock *s);
void ik_eps_fork_activate(ik_sock *s);

/* Transports registry. */
const ik_transport *ik_transport_find(const char *scheme);

/* Inproc registry (kernel thread). */
ik_ep *ik_inproc_find(const char *name);

#endif
