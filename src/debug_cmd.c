/*
 * debug_cmd.c - the debug endpoint's commands (debug.c serves them on its
 * socket): "stats", "peers", "inflight" and "markers", as lines of text
 * built on the kernel thread from the kernel objects themselves (the
 * socket queues' lengths are read under the socket lock, by statwalk.c).
 * iok_debug_text gives the same answers to the application.
 */
#include <string.h>

#include "iok.h"
#include "appstats.h"
#include "buf.h"
#include "debug.h"
#include "ep.h"
#include "kernel.h"
#include "pipe.h"
#include "sock.h"
#include "stats.h"
#include "statwalk.h"

#define INFLIGHT_LINES 10000 /* requests listed; the rest are counted */
#define HEAD_SHOWN 32        /* request bytes shown per request */
#define PIPES_COUNTED 64     /* per-pipe in-flight counts, per socket */

/* Bytes as printable ASCII: \\, \", \n, \r, \t and \xHH for the rest. */
static void
out_escaped(ik_buf *b, const void *p, size_t len)
{
	const unsigned char *s = p;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = s[i];
		if (ch == '\\' || ch == '"') {
			ik_buf_printf(b, "\\%c", ch);
		} else if (ch == '\n') {
			ik_buf_printf(b, "\\n");
		} else if (ch == '\r') {
			ik_buf_printf(b, "\\r");
		} else if (ch == '\t') {
			ik_buf_printf(b, "\\t");
		} else if (ch >= 0x20 && ch < 0x7f) {
			(void) ik_buf_append(b, &ch, 1);
		} else {
			ik_buf_printf(b, "\\x%02x", ch);
		}
	}
}

static const char *
ep_url(const ik_ep *ep)
{
	return ep != NULL && ep->url.raw != NULL ? ep->url.raw : "?";
}

static const char *
pipe_state(const ik_pipe *p)
{
	switch (p->state) {
	case IK_PIPE_HANDSHAKE:
		return "handshake";
	case IK_PIPE_ACTIVE:
		return "active";
	default:
		return "closing";
	}
}

/* ------------------------------------------------------------ inflight */

typedef struct list_arg {
	ik_buf  *b;
	ik_sock *s;
	uint64_t now, shown, more;
} list_arg;

static void
list_cb(void *arg, ik_pipe *p, uint64_t since, const void *head, size_t len)
{
	list_arg *la = arg;
	if (la->shown >= INFLIGHT_LINES) {
		la->more++;
		return;
	}
	la->shown++;
	ik_buf_printf(la->b, "socket=%u pattern=%s peer=%s pipe=%u age_ms=%llu len=%zu bytes=\"",
	    la->s->obj.id, la->s->pat->name, p != NULL ? ep_url(p->ep) : "(queued)",
	    p != NULL ? p->id : 0u, (unsigned long long) (la->now > since ? la->now - since : 0),
	    len);
	out_escaped(la->b, head, len < HEAD_SHOWN ? len : HEAD_SHOWN);
	ik_buf_printf(la->b, "%s\"\n", len > HEAD_SHOWN ? "..." : "");
}

static void
inflight_sock(ik_sock *s, void *arg)
{
	list_arg *la = arg;
	la->s        = s;
	ik_inflight_foreach(s, list_cb, la);
}

static void
cmd_inflight(ik_buf *b)
{
	list_arg la = { .b = b, .now = ik_now_ms() };
	ik_sockets_foreach(inflight_sock, &la);
	if (la.more > 0) {
		ik_buf_printf(b, "... %llu more\n", (unsigned long long) la.more);
	}
	ik_buf_printf(b, "total %llu\n", (unsigned long long) (la.shown + la.more));
}

/* --------------------------------------------------------------- stats */

static void
stats_sock(const ik_sock_view *v, void *arg)
{
	ik_buf  *b = arg;
	ik_sock *s = v->s;

	ik_buf_printf(
	    b, "socket=%u pattern=%s%s name=\"", s->obj.id, s->pat->name, s->raw ? " raw" : "");
	out_escaped(b, s->name, strlen(s->name));
	ik_buf_printf(b, "\" state=%s send_queue=%zu/%d recv_queue=%zu/%d staged=%zu inflight=%llu",
	    s->closing ? "closing" : "open", v->sq, v->sq_cap, v->rq, v->rq_cap, s->staged.len,
	    (unsigned long long) v->inflight);
	for (int i = 0; i < IK_STAT_COUNT; i++) {
		ik_buf_printf(b, " %s=%llu", ik_stat_name(i) + 5, (unsigned long long) s->stats[i]);
	}
	if (s->xs != NULL) {
		ik_stats_format_errors(b, s->xs);
		ik_hist_format(b, &s->xs->lat);
	}
	ik_buf_printf(b, "\n");
}

/* The application's counters and timers (markers: cmd_markers). */
static void
app_stats(ik_buf *b)
{
	ik_app_view v;
	for (uint32_t i = 0; ik_app_read(i, &v); i++) {
		if (v.kind == IK_APP_COUNTER) {
			ik_buf_printf(
			    b, "counter=\"%s\" value=%llu\n", v.name, (unsigned long long) v.value);
		} else if (v.kind == IK_APP_TIMER) {
			ik_buf_printf(b,
			    "timer=\"%s\" count=%llu sum_us=%.1f p50_us=%.1f p90_us=%.1f "
			    "p99_us=%.1f max_us=%.1f\n",
			    v.name, (unsigned long long) v.value, (double) v.sum_ns / 1e3,
			    (double) ik_app_quantile(&v, 0.5) / 1e3,
			    (double) ik_app_quantile(&v, 0.9) / 1e3,
			    (double) ik_app_quantile(&v, 0.99) / 1e3, (double) v.max_ns / 1e3);
		}
	}
}

/* The kernel loop's spins before sleeping (kernel.c): how often a
 * command came in time, I/O came first, or the budget ran out; and how
 * many commands had to wake the loop, and how many found it awake. */
static void
kernel_stats(ik_buf *b)
{
	ik_spin_counts c;
	ik_kernel_spin_counts(&c);
	ik_buf_printf(b,
	    "kernel spin_us=%ld spins=%llu spin-caught=%llu spin-io=%llu spin-timed-out=%llu "
	    "wakeups=%llu posted-awake=%llu\n",
	    c.spin_us, (unsigned long long) c.spins, (unsigned long long) c.caught,
	    (unsigned long long) c.ended_by_io, (unsigned long long) c.timed_out,
	    (unsigned long long) c.wakeups, (unsigned long long) c.posted_awake);
}

static void
cmd_stats(ik_buf *b)
{
	ik_statwalk(stats_sock, b);
	kernel_stats(b);
	app_stats(b);
}

static void
cmd_markers(ik_buf *b)
{
	ik_app_view v;
	uint64_t    now = ik_app_now_ns();
	for (uint32_t i = 0; ik_app_read(i, &v); i++) {
		if (v.kind != IK_APP_MARKER) {
			continue;
		}
		ik_buf_printf(b, "marker=\"%s\" passes=%llu", v.name, (unsigned long long) v.value);
		if (v.value > 0) {
			ik_buf_printf(b, " last_thread=%llu ago_ms=%.1f",
			    (unsigned long long) v.last_tid,
			    (double) (now > v.last_ns ? now - v.last_ns : 0) / 1e6);
		}
		if (v.leaves > 0) {
			ik_buf_printf(b, " left=%llu inside_avg_us=%.1f inside_max_us=%.1f",
			    (unsigned long long) v.leaves,
			    (double) v.sum_ns / (double) v.leaves / 1e3, (double) v.max_ns / 1e3);
		}
		ik_buf_printf(b, "\n");
	}
}

/* --------------------------------------------------------------- peers */

static const char *
ep_state(const ik_ep *ep)
{
	if (ep->closing) {
		return "closing";
	}
	if (!ep->dialer) {
		return ep->listening ? "listening" : (ep->dormant ? "dormant" : "idle");
	}
	for (ik_node *n = ik_list_first(&ep->pipes); n != NULL; n = ik_list_next(&ep->pipes, n)) {
		if (ik_container_of(n, ik_pipe, enode)->state == IK_PIPE_ACTIVE) {
			return "connected";
		}
	}
	for (ik_node *n = ik_list_first(&ep->ups); n != NULL; n = ik_list_next(&ep->ups, n)) {
		if (ik_container_of(n, ik_upstream, node)->connecting) {
			return "connecting";
		}
	}
	return ep->started ? "backoff" : "idle";
}

static void
peers_sock(ik_sock *s, void *arg)
{
	ik_buf       *b  = arg;
	ik_inflight   ca = { 0 };
	ik_pipe_count pc[PIPES_COUNTED];

	/* Per-pipe counts for the first pipes (a pool bigger than that is
	 * reported without them). */
	for (ik_node *n = ik_list_first(&s->eps); n != NULL; n = ik_list_next(&s->eps, n)) {
		ik_ep *ep = ik_container_of(n, ik_ep, snode);
		for (ik_node *m = ik_list_first(&ep->pipes); m != NULL && ca.npc < PIPES_COUNTED;
		     m          = ik_list_next(&ep->pipes, m)) {
			pc[ca.npc].pipe = ik_container_of(m, ik_pipe, enode);
			pc[ca.npc++].n  = 0;
		}
	}
	ca.pc = pc;
	ik_inflight_count(s, &ca);
	for (ik_node *n = ik_list_first(&s->eps); n != NULL; n = ik_list_next(&s->eps, n)) {
		ik_ep *ep = ik_container_of(n, ik_ep, snode);
		int    np = 0;
		for (ik_node *m = ik_list_first(&ep->pipes); m != NULL;
		     m          = ik_list_next(&ep->pipes, m)) {
			np++;
		}
		ik_buf_printf(b, "%s=%u socket=%u url=\"", ep->dialer ? "dialer" : "listener",
		    ep->obj.id, s->obj.id);
		out_escaped(b, ep_url(ep), strlen(ep_url(ep)));
		ik_buf_printf(b, "\" state=%s pipes=%d", ep_state(ep), np);
		if (ep->dialer) {
			ik_buf_printf(b, " reconnects=%llu last_error=\"%s\"",
			    (unsigned long long) ep->reconnects,
			    ep->last_err != 0 ? iok_strerror(ep->last_err) : "");
		}
		ik_buf_printf(b, "\n");
		/* The dialer's upstreams (one per address) with their own
		 * counters, as its "upstreams" option, and latency. */
		for (ik_node *m = ep->dialer ? ik_list_first(&ep->ups) : NULL; m != NULL;
		     m          = ik_list_next(&ep->ups, m)) {
			const ik_upstream *up = ik_container_of(m, ik_upstream, node);
			char               addr[64];
			if (!ik_upstream_listed(up)) {
				continue;
			}
			ik_upstream_addr(up, addr, sizeof(addr));
			ik_buf_printf(b,
			    "  upstream=%s state=%s weight=%u pipes=%d connects=%llu errors=%llu "
			    "drops=%llu"
			    " connect_us=%llu replies=%llu latency_us=%llu",
			    addr, up->removed ? "draining" : "live", up->weight,
			    ik_upstream_pipes(up), (unsigned long long) up->connects,
			    (unsigned long long) up->errors, (unsigned long long) up->drops,
			    (unsigned long long) up->connect_us, (unsigned long long) up->replies,
			    (unsigned long long) up->latency_us);
			{
				char hb[200];
				(void) ik_upstream_health_text(up, hb, sizeof(hb));
				ik_buf_printf(b, "%s", hb); /* inflight, ejection, probes */
			}
			if (up->xs != NULL) {
				ik_hist_format(b, &up->xs->lat);
			}
			ik_buf_printf(b, "\n");
		}
		for (ik_node *m = ik_list_first(&ep->pipes); m != NULL;
		     m          = ik_list_next(&ep->pipes, m)) {
			ik_pipe *p = ik_container_of(m, ik_pipe, enode);
			ik_buf_printf(b,
			    "  pipe=%u state=%s rx_msgs=%llu rx_bytes=%llu tx_msgs=%llu "
			    "tx_bytes=%llu",
			    p->id, pipe_state(p), (unsigned long long) p->rx_msgs,
			    (unsigned long long) p->rx_bytes, (unsigned long long) p->tx_msgs,
			    (unsigned long long) p->tx_bytes);
			for (int i = 0; i < ca.npc; i++) {
				if (pc[i].pipe == p) {
					ik_buf_printf(
					    b, " inflight=%llu", (unsigned long long) pc[i].n);
				}
			}
			if (p->xs != NULL) {
				ik_hist_format(b, &p->xs->lat);
			}
			ik_buf_printf(b, "\n");
		}
	}
	if (ca.queued > 0) {
		ik_buf_printf(b, "socket=%u queued_requests=%llu (waiting for a connection)\n",
		    s->obj.id, (unsigned long long) ca.queued);
	}
}

static void
cmd_peers(ik_buf *b)
{
	ik_sockets_foreach(peers_sock, b);
}

/* ------------------------------------------------------------ commands */

int
ik_debug_cmd(const char *what, ik_buf *b)
{
	if (strcmp(what, "stats") == 0) {
		cmd_stats(b);
	} else if (strcmp(what, "peers") == 0) {
		cmd_peers(b);
	} else if (strcmp(what, "inflight") == 0) {
		cmd_inflight(b);
	} else if (strcmp(what, "markers") == 0) {
		cmd_markers(b);
	} else {
		return IOK_EINVAL;
	}
	return 0;
}

struct text_cmd {
	ik_cmd      cmd;
	const char *what;
	char       *out;
};

static void
text_k(ik_cmd *c)
{
	struct text_cmd *tc = (struct text_cmd *) c;
	ik_buf           b;
	int              rv;
	ik_buf_init(&b);
	rv = ik_debug_cmd(tc->what, &b);
	if (rv == 0 &&
	    (ik_buf_append(&b, "", 1) != 0 || (tc->out = strdup((char *) b.data)) == NULL)) {
		rv = IOK_ENOMEM;
	}
	ik_buf_fini(&b);
	ik_cmd_done(c, rv);
}

int
iok_debug_text(const char *what, char **text)
{
	struct text_cmd tc = { .what = what };
	int             rv;
	if (what == NULL || text == NULL) {
		return IOK_EINVAL;
	}
	if ((rv = ik_cmd_call(&tc.cmd, text_k)) == 0) {
		*text = tc.out;
	}
	return rv;
}
