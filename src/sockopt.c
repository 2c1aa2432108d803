/*
 * sockopt.c - socket options (iok_socket_set* / iok_socket_get*): the
 * core's own, the transport defaults, statistics, and the pattern's.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>

#include "ep.h"
#include "pipe.h"
#include "sock.h"
#include "stats.h"

/* nng stops at 8192; iok allows more because a queue is also how many
 * messages one kernel wakeup can move, and bulk senders gain from it. */
#define MAX_QLEN 65536

/* -------------------------------------------------------------- options */

struct opt_cmd {
	ik_cmd      cmd;
	ik_sock    *s;
	const char *name;
	const void *in;
	void       *out;
	size_t      sz;
	size_t     *outsz;
	int         type;
};

static const char *const stat_names[IK_STAT_COUNT] = {
	[IK_STAT_RX_MSGS]        = "stat:rx-msgs",
	[IK_STAT_TX_MSGS]        = "stat:tx-msgs",
	[IK_STAT_RX_BYTES]       = "stat:rx-bytes",
	[IK_STAT_TX_BYTES]       = "stat:tx-bytes",
	[IK_STAT_PIPES]          = "stat:pipes",
	[IK_STAT_PIPES_OPENED]   = "stat:pipes-opened",
	[IK_STAT_RECONNECTS]     = "stat:reconnects",
	[IK_STAT_RX_OVERSIZE]    = "stat:rx-oversize",
	[IK_STAT_PROTO_ERRORS]   = "stat:proto-errors",
	[IK_STAT_RX_MALFORMED]   = "stat:rx-malformed",
	[IK_STAT_RX_DROPPED]     = "stat:rx-dropped",
	[IK_STAT_TX_DROPPED]     = "stat:tx-dropped",
	[IK_STAT_TX_OVERSIZE]    = "stat:tx-oversize",
	[IK_STAT_REQUESTS]       = "stat:requests",
	[IK_STAT_REPLIES]        = "stat:replies",
	[IK_STAT_SEND_WAITS]     = "stat:send-waits",
	[IK_STAT_RATE_DELAYS]    = "stat:rate-delays",
	[IK_STAT_PROBES]         = "stat:probes",
	[IK_STAT_PROBE_TIMEOUTS] = "stat:probe-timeouts",
	[IK_STAT_EJECTIONS]      = "stat:ejections",
	[IK_STAT_UPSTREAM_WAITS] = "stat:upstream-waits",
	[IK_STAT_TX_WRITES]      = "stat:tx-writes",
	[IK_STAT_RECV_WATCHES]   = "stat:recv-watches",
	[IK_STAT_RECV_SPINS]     = "stat:recv-spins",
	[IK_STAT_RECV_SPIN_HITS] = "stat:recv-spin-hits",
};

const char *
ik_stat_name(int i)
{
	return i >= 0 && i < IK_STAT_COUNT ? stat_names[i] : NULL;
}

static int
set_qlen(ik_sock *s, bool recv, int n)
{
	int rv;
	pthread_mutex_lock(&s->mu);
	if (recv) {
		if ((rv = ik_msgq_reserve(&s->rq, (size_t) n)) == 0 &&
		    (rv = ik_msgq_reserve(&s->staged, (size_t) n)) == 0) {
			s->rq_cap = n;
		}
	} else {
		bool was_full = ik_sq_full(s);
		if ((rv = ik_msgq_reserve(&s->sq, (size_t) n)) == 0) {
			s->sq_cap = n;
			bool full = ik_sq_full(s);
			if (was_full && !full && !s->closed) {
				ik_efd_raise(s->send_fd);
				ik_event_wake(&s->send_ev, INT_MAX);
			} else if (!was_full && full && !s->closed) {
				ik_efd_clear(s->send_fd);
			}
		}
	}
	pthread_mutex_unlock(&s->mu);
	if (rv == 0 && recv) {
		ik_sock_resume_paused(s);
		if (s->pat->recv_ready != NULL) {
			s->pat->recv_ready(s->pdata);
		}
	}
	return rv;
}

static void
setopt_k(ik_cmd *c)
{
	struct opt_cmd *oc = (struct opt_cmd *) c;
	ik_sock        *s  = oc->s;
	const char     *n  = oc->name;
	int             rv, v;
	iok_duration    ms;

	if (strcmp(n, IOK_OPT_RECVBUF) == 0 || strcmp(n, IOK_OPT_SENDBUF) == 0) {
		/* 0 is nng's "unbuffered"; the least iok can do is one message
		 * in the hand-off to the kernel thread. */
		if ((rv = ik_opt_get_int(oc->in, oc->sz, oc->type, 0, MAX_QLEN, &v)) == 0) {
			rv = set_qlen(s, strcmp(n, IOK_OPT_RECVBUF) == 0, v > 0 ? v : 1);
		}
	} else if (strcmp(n, IOK_OPT_SENDBUF_BYTES) == 0) {
		size_t sz;
		if ((rv = ik_opt_get_size(oc->in, oc->sz, oc->type, 0, SIZE_MAX, &sz)) == 0) {
			pthread_mutex_lock(&s->mu);
			bool was_full   = ik_sq_full(s);
			s->sq_max_bytes = sz;
			bool full       = ik_sq_full(s);
			if (!s->closed && was_full != full) {
				if (full) {
					ik_efd_clear(s->send_fd);
				} else {
					ik_efd_raise(s->send_fd);
				}
			}
			pthread_mutex_unlock(&s->mu);
			ik_event_wake(&s->send_ev, INT_MAX);
		}
	} else if (strcmp(n, IOK_OPT_RECVBUF_BYTES) == 0) {
		size_t sz;
		if ((rv = ik_opt_get_size(oc->in, oc->sz, oc->type, 0, SIZE_MAX, &sz)) == 0) {
			pthread_mutex_lock(&s->mu);
			s->rq_max_bytes = sz;
			pthread_mutex_unlock(&s->mu);
			/* A bigger (or no) limit: paused connections read again. */
			ik_sock_resume_paused(s);
			if (s->pat->recv_ready != NULL) {
				s->pat->recv_ready(s->pdata);
			}
		}
	} else if (strcmp(n, IOK_OPT_SEND_RATE) == 0 || strcmp(n, IOK_OPT_SEND_BURST) == 0) {
		if ((rv = ik_opt_get_int(oc->in, oc->sz, oc->type, 0, 100000000, &v)) == 0) {
			bool rate = strcmp(n, IOK_OPT_SEND_RATE) == 0;
			if (!rate && v == 0) {
				rv = IOK_EINVAL;
			} else {
				ik_throttle_set(s, rate ? (uint32_t) v : s->send_rate,
				    rate ? (s->send_burst ? s->send_burst : 1) : (uint32_t) v);
				ik_sock_pump(s); /* a lifted limit lets queued messages go */
			}
		}
	} else if (strcmp(n, IOK_OPT_LINGER) == 0) {
		if ((rv = ik_opt_get_ms(oc->in, oc->sz, oc->type, &ms)) == 0) {
			s->linger = ms < 0 ? INT32_MAX : ms;
		}
	} else if (strcmp(n, IOK_OPT_MAXTTL) == 0) {
		if ((rv = ik_opt_get_int(oc->in, oc->sz, oc->type, 1, 15, &v)) == 0) {
			s->max_ttl = v;
		}
	} else if (strcmp(n, IOK_OPT_SOCKNAME) == 0) {
		if (oc->type != IK_OPT_STRING) {
			rv = IOK_EBADTYPE;
		} else if (oc->sz == 0 || oc->sz > sizeof(s->name)) {
			rv = IOK_EINVAL;
		} else {
			memcpy(s->name, oc->in, oc->sz);
			s->name[oc->sz - 1] = '\0';
			rv                  = 0;
		}
	} else if (strcmp(n, IOK_OPT_RAW) == 0 || strcmp(n, IOK_OPT_PROTO) == 0 ||
	           strcmp(n, IOK_OPT_PEER) == 0 || strcmp(n, IOK_OPT_PROTONAME) == 0 ||
	           strcmp(n, IOK_OPT_PEERNAME) == 0 || strncmp(n, "stat:", 5) == 0 ||
	           strcmp(n, IOK_OPT_LAST_ERROR) == 0 || strcmp(n, IOK_OPT_PEERS_LIVE) == 0 ||
	           strcmp(n, IOK_OPT_PEERS_FD) == 0) {
		rv = IOK_EREADONLY;
	} else if ((rv = ik_topts_set(&s->topts, n, oc->in, oc->sz, oc->type)) == 0) {
		ik_eps_opt_changed(s, n); /* endpoints and connections already open */
	} else if (rv == IOK_ENOTSUP) {
		rv = s->pat->setopt ? s->pat->setopt(s->pdata, n, oc->in, oc->sz, oc->type)
		                    : IOK_ENOTSUP;
		if (rv == 0) {
			/* e.g. a new subscription or resend time: the pattern may
			 * take queued messages now. */
			ik_sock_pump(s);
		}
	}
	ik_cmd_done(c, rv);
}

static void
getopt_k(ik_cmd *c)
{
	struct opt_cmd *oc = (struct opt_cmd *) c;
	ik_sock        *s  = oc->s;
	const char     *n  = oc->name;
	int             rv;

	if (strcmp(n, IOK_OPT_RECVBUF) == 0) {
		rv = ik_opt_put_int(s->rq_cap, oc->out, oc->outsz, oc->type);
	} else if (strcmp(n, IOK_OPT_SENDBUF_BYTES) == 0) {
		pthread_mutex_lock(&s->mu);
		size_t sz = s->sq_max_bytes;
		pthread_mutex_unlock(&s->mu);
		rv = ik_opt_put_size(sz, oc->out, oc->outsz, oc->type);
	} else if (strcmp(n, IOK_OPT_RECVBUF_BYTES) == 0) {
		rv = ik_opt_put_size(s->rq_max_bytes, oc->out, oc->outsz, oc->type);
	} else if (strcmp(n, IOK_OPT_SEND_RATE) == 0) {
		rv = ik_opt_put_int((int) s->send_rate, oc->out, oc->outsz, oc->type);
	} else if (strcmp(n, IOK_OPT_SEND_BURST) == 0) {
		rv = ik_opt_put_int(
		    (int) (s->send_burst ? s->send_burst : 1), oc->out, oc->outsz, oc->type);
	} else if (strcmp(n, IOK_OPT_SENDBUF) == 0) {
		rv = ik_opt_put_int(s->sq_cap, oc->out, oc->outsz, oc->type);
	} else if (strcmp(n, IOK_OPT_LINGER) == 0) {
		rv = ik_opt_put_ms(s->linger, oc->out, oc->outsz, oc->type);
	} else if (strcmp(n, IOK_OPT_MAXTTL) == 0) {
		rv = ik_opt_put_int(s->max_ttl, oc->out, oc->outsz, oc->type);
	} else if (strcmp(n, IOK_OPT_SOCKNAME) == 0) {
		rv = ik_put_string(s->name, oc->out, oc->outsz, oc->type);
	} else if (strcmp(n, IOK_OPT_LAST_ERROR) == 0) {
		rv = ik_put_string(s->last_error, oc->out, oc->outsz, oc->type);
	} else if (strcmp(n, IOK_OPT_RAW) == 0) {
		rv = ik_opt_put_bool(s->raw, oc->out, oc->outsz, oc->type);
	} else if (strcmp(n, IOK_OPT_PROTO) == 0) {
		rv = ik_opt_put_int(s->pat->proto, oc->out, oc->outsz, oc->type);
	} else if (strcmp(n, IOK_OPT_PEER) == 0) {
		rv = ik_opt_put_int(s->pat->peer, oc->out, oc->outsz, oc->type);
	} else if (strcmp(n, IOK_OPT_PROTONAME) == 0) {
		rv = ik_put_string(s->pat->name, oc->out, oc->outsz, oc->type);
	} else if (strcmp(n, IOK_OPT_PEERNAME) == 0) {
		rv = ik_put_string(s->pat->peer_name, oc->out, oc->outsz, oc->type);
	} else if (strcmp(n, IOK_OPT_PEERS_LIVE) == 0) {
		/* Reading the count is what the descriptor waits for. */
		ik_efd_clear(s->peers_fd);
		rv = ik_opt_put_int((int) s->stats[IK_STAT_PIPES], oc->out, oc->outsz, oc->type);
	} else if (strcmp(n, IOK_OPT_PEERS_FD) == 0) {
		if (s->peers_fd < 0) {
			s->peers_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		}
		rv = s->peers_fd < 0 ? IOK_ENOFILES
		                     : ik_opt_put_int(s->peers_fd, oc->out, oc->outsz, oc->type);
	} else if (strncmp(n, "stat:", 5) == 0) {
		pthread_mutex_lock(&s->mu);
		ik_sock_app_stats(s);
		pthread_mutex_unlock(&s->mu);
		rv = IOK_ENOTSUP;
		for (int i = 0; i < IK_STAT_COUNT; i++) {
			if (strcmp(n, stat_names[i]) == 0) {
				uint64_t v = s->stats[i];
				if (i == IK_STAT_TX_OVERSIZE) {
					v += atomic_load_explicit(
					    &s->tx_oversize_app, memory_order_relaxed);
				}
				rv = ik_opt_put_uint64(v, oc->out, oc->outsz, oc->type);
				break;
			}
		}
		uint64_t v;
		if (rv == IOK_ENOTSUP && ik_stats_get(s, n, &v) == 0) {
			rv = ik_opt_put_uint64(v, oc->out, oc->outsz, oc->type);
		}
	} else if ((rv = ik_topts_get(&s->topts, n, oc->out, oc->outsz, oc->type)) == IOK_ENOTSUP) {
		rv = s->pat->getopt ? s->pat->getopt(s->pdata, n, oc->out, oc->outsz, oc->type)
		                    : IOK_ENOTSUP;
	}
	ik_cmd_done(c, rv);
}

static int
sock_setopt(iok_socket h, const char *name, const void *v, size_t sz, int type)
{
	ik_sock     *s;
	int          rv;
	iok_duration ms;
	if (name == NULL) {
		return IOK_EINVAL;
	}
	if ((rv = ik_sock_hold(h, &s)) != 0) {
		return rv;
	}
	if (strcmp(name, IOK_OPT_RECVTIMEO) == 0 || strcmp(name, IOK_OPT_SENDTIMEO) == 0) {
		if ((rv = ik_opt_get_ms(v, sz, type, &ms)) == 0) {
			pthread_mutex_lock(&s->mu);
			*(name[0] == 'r' ? &s->recv_timeo : &s->send_timeo) = ms;
			pthread_mutex_unlock(&s->mu);
		}
	} else if (strcmp(name, IOK_OPT_RECV_SPIN_US) == 0) {
		int us;
		if ((rv = ik_opt_get_int(v, sz, type, -1, 1000000, &us)) == 0) {
			pthread_mutex_lock(&s->mu);
			s->recv_spin_us = us;
			pthread_mutex_unlock(&s->mu);
		}
	} else if (strcmp(name, IOK_OPT_RECVFD) == 0 || strcmp(name, IOK_OPT_SENDFD) == 0) {
		rv = IOK_EREADONLY;
	} else {
		struct opt_cmd oc = { .s = s, .name = name, .in = v, .sz = sz, .type = type };
		rv                = ik_cmd_call(&oc.cmd, setopt_k);
	}
	ik_sock_rele(s);
	return rv;
}

void
ik_sock_app_stats(ik_sock *s)
{
	s->stats[IK_STAT_SEND_WAITS]     = s->send_waits;
	s->stats[IK_STAT_RECV_WATCHES]   = s->recv_watches;
	s->stats[IK_STAT_RECV_SPINS]     = s->recv_spins;
	s->stats[IK_STAT_RECV_SPIN_HITS] = s->recv_spin_hits;
}

/* Make both descriptors, each in the state the queues are in now. */
int
ik_sock_ensure_fds(ik_sock *s)
{
	int rv = 0;
	pthread_mutex_lock(&s->mu);
	if (s->recv_fd < 0) {
		s->recv_fd =
		    eventfd(s->rq.len > 0 || atomic_load(&s->taken_len) > 0 || s->closed ? 1 : 0,
		        EFD_NONBLOCK | EFD_CLOEXEC);
	}
	if (s->send_fd < 0) {
		s->send_fd =
		    eventfd(!ik_sq_full(s) || s->closed ? 1 : 0, EFD_NONBLOCK | EFD_CLOEXEC);
	}
	if (s->recv_fd < 0 || s->send_fd < 0) {
		rv = IOK_ENOFILES;
	}
	pthread_mutex_unlock(&s->mu);
	return rv;
}

static int
sock_getopt(iok_socket h, const char *name, void *v, size_t *sz, int type)
{
	ik_sock *s;
	int      rv;
	if (name == NULL) {
		return IOK_EINVAL;
	}
	if ((rv = ik_sock_hold(h, &s)) != 0) {
		return rv;
	}
	if (strcmp(name, IOK_OPT_RECVTIMEO) == 0 || strcmp(name, IOK_OPT_SENDTIMEO) == 0) {
		pthread_mutex_lock(&s->mu);
		iok_duration ms = name[0] == 'r' ? s->recv_timeo : s->send_timeo;
		pthread_mutex_unlock(&s->mu);
		rv = ik_opt_put_ms(ms, v, sz, type);
	} else if (strcmp(name, IOK_OPT_RECV_SPIN_US) == 0) {
		pthread_mutex_lock(&s->mu);
		int us = s->recv_spin_us;
		pthread_mutex_unlock(&s->mu);
		rv = ik_opt_put_int(us >= 0 ? us : (int) (ik_recv_spin_ns() / 1000), v, sz, type);
	} else if (strcmp(name, IOK_OPT_RECVFD) == 0) {
		if (!(s->pat->flags & IK_PF_RECV)) {
			rv = IOK_ENOTSUP;
		} else if ((rv = ik_sock_ensure_fds(s)) == 0) {
			rv = ik_opt_put_int(s->recv_fd, v, sz, type);
		}
	} else if (strcmp(name, IOK_OPT_SENDFD) == 0) {
		if (!(s->pat->flags & IK_PF_SEND)) {
			rv = IOK_ENOTSUP;
		} else if ((rv = ik_sock_ensure_fds(s)) == 0) {
			rv = ik_opt_put_int(s->send_fd, v, sz, type);
		}
	} else {
		struct opt_cmd oc = { .s = s, .name = name, .out = v, .outsz = sz, .type = type };
		rv                = ik_cmd_call(&oc.cmd, getopt_k);
	}
	ik_sock_rele(s);
	return rv;
}

int
iok_socket_set(iok_socket s, const char *name, const void *val, size_t size)
{
	return sock_setopt(s, name, val, size, IK_OPT_BYTES);
}
int
iok_setopt(iok_socket s, const char *name, const void *val, size_t size)
{
	return iok_socket_set(s, name, val, size);
}
int
iok_socket_set_bool(iok_socket s, const char *name, bool val)
{
	int iv = val; /* options carry bools as int inside */
	return sock_setopt(s, name, &iv, sizeof(iv), IK_OPT_BOOL);
}
int
iok_socket_set_int(iok_socket s, const char *name, int val)
{
	return sock_setopt(s, name, &val, sizeof(val), IK_OPT_INT);
}
int
iok_socket_set_ms(iok_socket s, const char *name, iok_duration val)
{
	return sock_setopt(s, name, &val, sizeof(val), IK_OPT_MS);
}
int
iok_socket_set_size(iok_socket s, const char *name, size_t val)
{
	return sock_setopt(s, name, &val, sizeof(val), IK_OPT_SIZE);
}
int
iok_socket_set_uint64(iok_socket s, const char *name, uint64_t val)
{
	return sock_setopt(s, name, &val, sizeof(val), IK_OPT_UINT64);
}
int
iok_socket_set_string(iok_socket s, const char *name, const char *val)
{
	if (val == NULL) {
		return IOK_EINVAL;
	}
	return sock_setopt(s, name, val, strlen(val) + 1, IK_OPT_STRING);
}
int
iok_socket_get(iok_socket s, const char *name, void *val, size_t *size)
{
	return sock_getopt(s, name, val, size, IK_OPT_BYTES);
}
int
iok_socket_get_bool(iok_socket s, const char *name, bool *val)
{
	int    iv;
	size_t sz = sizeof(iv);
	int    rv = sock_getopt(s, name, &iv, &sz, IK_OPT_BOOL);
	if (rv == 0) {
		*val = iv != 0;
	}
	return rv;
}
int
iok_socket_get_int(iok_socket s, const char *name, int *val)
{
	size_t sz = sizeof(*val);
	return sock_getopt(s, name, val, &sz, IK_OPT_INT);
}
int
iok_socket_get_ms(iok_socket s, const char *name, iok_duration *val)
{
	size_t sz = sizeof(*val);
	return sock_getopt(s, name, val, &sz, IK_OPT_MS);
}
int
iok_socket_get_size(iok_socket s, const char *name, size_t *val)
{
	size_t sz = sizeof(*val);
	return sock_getopt(s, name, val, &sz, IK_OPT_SIZE);
}
int
iok_socket_get_uint64(iok_socket s, const char *name, uint64_t *val)
{
	size_t sz = sizeof(*val);
	return sock_getopt(s, name, val, &sz, IK_OPT_UINT64);
}
int
iok_socket_get_string(iok_socket s, const char *name, char **val)
{
	char   buf[256];
	size_t sz = sizeof(buf);
	int    rv = sock_getopt(s, name, buf, &sz, IK_OPT_STRING);
	if (rv == 0) {
		buf[sizeof(buf) - 1] = '\0';
		if ((*val = strdup(buf)) == NULL) {
			rv = IOK_ENOMEM;
		}
	}
	return rv;
}
