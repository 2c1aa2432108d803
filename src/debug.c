/*
 * debug.c - the debug endpoint: a unix socket served by the kernel thread,
 * so it answers while the application's threads compute or hang.
 *
 * Protocol: one command per line ("stats", "peers", "inflight", "markers",
 * "stack", "help"); each answer is lines of text ending with a line holding a lone
 * "." (an answer line that starts with "." gets one more in front, as in
 * SMTP).  Input is bounded: a line longer than LINE_MAX, a byte that is not
 * printable ASCII, or an unknown command gets "error: ..." and the
 * connection is closed after the answer.  Only the process's own user (or
 * root) may connect: the socket file is mode 0600 and each connection's
 * peer credentials are checked too.
 *
 * Everything here runs on the kernel thread, reading kernel objects
 * directly; the socket queues' lengths are read under the socket lock.
 */
#define _GNU_SOURCE /* struct ucred */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "iok.h"
#include "appstats.h"
#include "buf.h"
#include "debug.h"
#include "ep.h"
#include "kernel.h"
#include "pipe.h"
#include "sock.h"
#include "stats.h"

#define LINE_MAX_ 256        /* a command line, without its newline */
#define CONNS_MAX 16         /* connections at once; more are refused */
#define INFLIGHT_LINES 10000 /* requests listed; the rest are counted */
#define HEAD_SHOWN 32        /* request bytes shown per request */
#define STACK_TIMEOUT_MS 2000

typedef struct dconn {
	uv_pipe_t h;
	ik_node   node;      /* in D.conns */
	ik_node   wait_node; /* in D.stack_waiters */
	char      in[LINE_MAX_ + 1];
	size_t    inlen;
	bool      closing;  /* answered an error: close once written */
	bool      shutting; /* uv_shutdown issued */
} dconn;

typedef struct wreq {
	uv_write_t req;
	dconn     *c;
	size_t     len;
	char       data[];
} wreq;

static struct {
	bool       on;
	uv_pipe_t *srv; /* a new one per start: an old one may still be closing */
	char       path[sizeof(((struct sockaddr_un *) 0)->sun_path)];
	ik_list    conns;
	int        nconns;
	/* stack: one signal answers everyone waiting */
	bool       stack_init;
	bool       stack_busy;
	uv_poll_t  spoll;
	uv_timer_t stimer;
	ik_buf     sout;
	ik_list    stack_waiters;
} D;

static void conn_close(dconn *c);
static void conn_process(dconn *c);

/* ------------------------------------------------------------- output */

static void
outf(ik_buf *b, const char *fmt, ...)
{
	char    tmp[512];
	va_list ap;
	int     n;
	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0) {
		(void) ik_buf_append(
		    b, tmp, (size_t) n < sizeof(tmp) ? (size_t) n : sizeof(tmp) - 1);
	}
}

/* Bytes as printable ASCII: \\, \", \n, \r, \t and \xHH for the rest. */
static void
out_escaped(ik_buf *b, const void *p, size_t len)
{
	const unsigned char *s = p;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = s[i];
		if (ch == '\\' || ch == '"') {
			outf(b, "\\%c", ch);
		} else if (ch == '\n') {
			outf(b, "\\n");
		} else if (ch == '\r') {
			outf(b, "\\r");
		} else if (ch == '\t') {
			outf(b, "\\t");
		} else if (ch >= 0x20 && ch < 0x7f) {
			(void) ik_buf_append(b, &ch, 1);
		} else {
			outf(b, "\\x%02x", ch);
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

typedef struct pipe_count {
	ik_pipe *pipe;
	uint64_t n;
} pipe_count;

typedef struct count_arg {
	pipe_count *pc;
	int         npc;
	uint64_t    total, queued;
} count_arg;

static void
count_cb(void *arg, ik_pipe *p, uint64_t since, const void *head, size_t len)
{
	count_arg *ca = arg;
	(void) since;
	(void) head;
	(void) len;
	ca->total++;
	if (p == NULL) {
		ca->queued++;
		return;
	}
	for (int i = 0; i < ca->npc; i++) {
		if (ca->pc[i].pipe == p) {
			ca->pc[i].n++;
			return;
		}
	}
}

/* Requests in flight on s, in total and per pipe (pc[i].pipe set by the
 * caller). */
static void
count_inflight(ik_sock *s, count_arg *ca)
{
	if (s->pat->inflight != NULL && s->pdata != NULL && !s->finished) {
		s->pat->inflight(s->pdata, count_cb, ca);
	}
}

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
	outf(la->b, "socket=%u pattern=%s peer=%s pipe=%u age_ms=%llu len=%zu bytes=\"",
	    la->s->obj.id, la->s->pat->name, p != NULL ? ep_url(p->ep) : "(queued)",
	    p != NULL ? p->id : 0u, (unsigned long long) (la->now > since ? la->now - since : 0),
	    len);
	out_escaped(la->b, head, len < HEAD_SHOWN ? len : HEAD_SHOWN);
	outf(la->b, "%s\"\n", len > HEAD_SHOWN ? "..." : "");
}

static void
inflight_sock(ik_sock *s, void *arg)
{
	list_arg *la = arg;
	if (s->pat->inflight != NULL && s->pdata != NULL && !s->finished) {
		la->s = s;
		s->pat->inflight(s->pdata, list_cb, la);
	}
}

static void
cmd_inflight(ik_buf *b)
{
	list_arg la = { .b = b, .now = ik_now_ms() };
	ik_sockets_foreach(inflight_sock, &la);
	if (la.more > 0) {
		outf(b, "... %llu more\n", (unsigned long long) la.more);
	}
	outf(b, "total %llu\n", (unsigned long long) (la.shown + la.more));
}

/* --------------------------------------------------------------- stats */

static void
stats_sock(ik_sock *s, void *arg)
{
	ik_buf   *b  = arg;
	count_arg ca = { 0 };
	size_t    sq, rq;
	int       sqc, rqc;

	pthread_mutex_lock(&s->mu);
	s->stats[IK_STAT_SEND_WAITS] = s->send_waits;
	sq                           = s->sq.len;
	rq                           = s->rq.len;
	sqc                          = s->sq_cap;
	rqc                          = s->rq_cap;
	pthread_mutex_unlock(&s->mu);
	count_inflight(s, &ca);
	outf(b, "socket=%u pattern=%s%s name=\"", s->obj.id, s->pat->name, s->raw ? " raw" : "");
	out_escaped(b, s->name, strlen(s->name));
	outf(b, "\" state=%s send_queue=%zu/%d recv_queue=%zu/%d staged=%zu inflight=%llu",
	    s->closing ? "closing" : "open", sq, sqc, rq, rqc, s->staged.len,
	    (unsigned long long) ca.total);
	for (int i = 0; i < IK_STAT_COUNT; i++) {
		outf(b, " %s=%llu", ik_stat_name(i) + 5, (unsigned long long) s->stats[i]);
	}
	if (s->xs != NULL) {
		ik_stats_format_errors(b, s->xs);
		ik_hist_format(b, &s->xs->lat);
	}
	outf(b, "\n");
}

/* The application's counters and timers (markers: cmd_markers). */
static void
app_stats(ik_buf *b)
{
	ik_app_view v;
	for (uint32_t i = 0; ik_app_read(i, &v); i++) {
		if (v.kind == IK_APP_COUNTER) {
			outf(
			    b, "counter=\"%s\" value=%llu\n", v.name, (unsigned long long) v.value);
		} else if (v.kind == IK_APP_TIMER) {
			outf(b,
			    "timer=\"%s\" count=%llu sum_us=%.1f p50_us=%.1f p90_us=%.1f "
			    "p99_us=%.1f max_us=%.1f\n",
			    v.name, (unsigned long long) v.value, (double) v.sum_ns / 1e3,
			    (double) ik_app_quantile(&v, 0.5) / 1e3,
			    (double) ik_app_quantile(&v, 0.9) / 1e3,
			    (double) ik_app_quantile(&v, 0.99) / 1e3, (double) v.max_ns / 1e3);
		}
	}
}

static void
cmd_stats(ik_buf *b)
{
	ik_sockets_foreach(stats_sock, b);
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
		outf(b, "marker=\"%s\" passes=%llu", v.name, (unsigned long long) v.value);
		if (v.value > 0) {
			outf(b, " last_thread=%llu ago_ms=%.1f", (unsigned long long) v.last_tid,
			    (double) (now > v.last_ns ? now - v.last_ns : 0) / 1e6);
		}
		if (v.leaves > 0) {
			outf(b, " left=%llu inside_avg_us=%.1f inside_max_us=%.1f",
			    (unsigned long long) v.leaves,
			    (double) v.sum_ns / (double) v.leaves / 1e3, (double) v.max_ns / 1e3);
		}
		outf(b, "\n");
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
	ik_buf    *b  = arg;
	count_arg  ca = { 0 };
	pipe_count pc[64];

	/* Per-pipe counts for the first pipes (a pool bigger than that is
	 * reported without them). */
	for (ik_node *n = ik_list_first(&s->eps); n != NULL; n = ik_list_next(&s->eps, n)) {
		ik_ep *ep = ik_container_of(n, ik_ep, snode);
		for (ik_node *m = ik_list_first(&ep->pipes); m != NULL && ca.npc < 64;
		     m          = ik_list_next(&ep->pipes, m)) {
			pc[ca.npc].pipe = ik_container_of(m, ik_pipe, enode);
			pc[ca.npc++].n  = 0;
		}
	}
	ca.pc = pc;
	count_inflight(s, &ca);
	for (ik_node *n = ik_list_first(&s->eps); n != NULL; n = ik_list_next(&s->eps, n)) {
		ik_ep *ep = ik_container_of(n, ik_ep, snode);
		int    np = 0;
		for (ik_node *m = ik_list_first(&ep->pipes); m != NULL;
		     m          = ik_list_next(&ep->pipes, m)) {
			np++;
		}
		outf(b, "%s=%u socket=%u url=\"", ep->dialer ? "dialer" : "listener", ep->obj.id,
		    s->obj.id);
		out_escaped(b, ep_url(ep), strlen(ep_url(ep)));
		outf(b, "\" state=%s pipes=%d", ep_state(ep), np);
		if (ep->dialer) {
			outf(b, " reconnects=%llu last_error=\"%s\"",
			    (unsigned long long) ep->reconnects,
			    ep->last_err != 0 ? iok_strerror(ep->last_err) : "");
		}
		outf(b, "\n");
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
			outf(b,
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
				outf(b, "%s", hb); /* inflight, ejection, probes */
			}
			if (up->xs != NULL) {
				ik_hist_format(b, &up->xs->lat);
			}
			outf(b, "\n");
		}
		for (ik_node *m = ik_list_first(&ep->pipes); m != NULL;
		     m          = ik_list_next(&ep->pipes, m)) {
			ik_pipe *p = ik_container_of(m, ik_pipe, enode);
			outf(b,
			    "  pipe=%u state=%s rx_msgs=%llu rx_bytes=%llu tx_msgs=%llu "
			    "tx_bytes=%llu",
			    p->id, pipe_state(p), (unsigned long long) p->rx_msgs,
			    (unsigned long long) p->rx_bytes, (unsigned long long) p->tx_msgs,
			    (unsigned long long) p->tx_bytes);
			for (int i = 0; i < ca.npc; i++) {
				if (pc[i].pipe == p) {
					outf(b, " inflight=%llu", (unsigned long long) pc[i].n);
				}
			}
			if (p->xs != NULL) {
				ik_hist_format(b, &p->xs->lat);
			}
			outf(b, "\n");
		}
	}
	if (ca.queued > 0) {
		outf(b, "socket=%u queued_requests=%llu (waiting for a connection)\n", s->obj.id,
		    (unsigned long long) ca.queued);
	}
}

static void
cmd_peers(ik_buf *b)
{
	ik_sockets_foreach(peers_sock, b);
}

/* --------------------------------------------------------------- stack */

static void stack_finish(const char *note);

static void
stack_poll_cb(uv_poll_t *h, int status, int events)
{
	char    tmp[16384];
	ssize_t n;
	(void) h;
	(void) events;
	if (status < 0) {
		stack_finish("error: reading the stack pipe failed\n");
		return;
	}
	while ((n = read(ik_stack_read_fd(), tmp, sizeof(tmp))) > 0) {
		(void) ik_buf_append(&D.sout, tmp, (size_t) n);
	}
	/* Done once the C handler, which runs last, wrote its end line. */
	if (D.sout.len >= sizeof(IK_STACK_END) - 1 &&
	    memcmp(D.sout.data + D.sout.len - (sizeof(IK_STACK_END) - 1), IK_STACK_END,
	        sizeof(IK_STACK_END) - 1) == 0) {
		D.sout.len -= sizeof(IK_STACK_END) - 1;
		stack_finish(NULL);
	}
}

static void
stack_timer_cb(uv_timer_t *t)
{
	(void) t;
	stack_finish("error: the main thread did not answer in time (signal blocked?)\n");
}

static void send_answer(dconn *c, ik_buf *b);

/* Answer everyone waiting with what was read (and note, if any). */
static void
stack_finish(const char *note)
{
	ik_node *n;
	uv_poll_stop(&D.spoll);
	uv_timer_stop(&D.stimer);
	D.stack_busy = false;
	if (note != NULL) {
		(void) ik_buf_append(&D.sout, note, strlen(note));
	}
	while ((n = ik_list_first(&D.stack_waiters)) != NULL) {
		dconn *c = ik_container_of(n, dconn, wait_node);
		ik_list_remove(n);
		send_answer(c, &D.sout);
		conn_process(c); /* commands that came after this one */
	}
	D.sout.len = 0;
}

/* 0: c waits for the answer; otherwise an error line is in b. */
static int
cmd_stack(dconn *c, ik_buf *b)
{
	int rv;
	if ((rv = ik_stack_setup()) != 0) {
		outf(b, "error: %s\n", iok_strerror(rv));
		return rv;
	}
	if (!D.stack_init) {
		if (uv_poll_init(ik_loop(), &D.spoll, ik_stack_read_fd()) != 0) {
			outf(b, "error: cannot poll the stack pipe\n");
			return IOK_EINTERNAL;
		}
		uv_timer_init(ik_loop(), &D.stimer);
		D.stack_init = true;
	}
	if (!D.stack_busy) {
		D.sout.len = 0;
		if ((rv = ik_stack_request()) != 0) {
			outf(b, "error: the main thread is gone\n");
			return rv;
		}
		D.stack_busy = true;
		uv_poll_start(&D.spoll, UV_READABLE, stack_poll_cb);
		uv_timer_start(&D.stimer, stack_timer_cb, STACK_TIMEOUT_MS, 0);
	}
	ik_list_append(&D.stack_waiters, &c->wait_node);
	return 0;
}

/* -------------------------------------------------------- connections */

static void
free_cb(uv_handle_t *h)
{
	free(h->data);
}

static void
conn_close(dconn *c)
{
	if (uv_is_closing((uv_handle_t *) &c->h)) {
		return;
	}
	if (ik_node_linked(&c->wait_node)) {
		ik_list_remove(&c->wait_node);
	}
	ik_list_remove(&c->node);
	D.nconns--;
	uv_close((uv_handle_t *) &c->h, free_cb);
}

static void
shutdown_cb(uv_shutdown_t *req, int status)
{
	dconn *c = req->data;
	(void) status;
	free(req);
	conn_close(c);
}

static void
write_cb(uv_write_t *req, int status)
{
	wreq *w = (wreq *) req;
	(void) status;
	free(w);
}

/* Answer lines (dot-stuffed) and the final ".". */
static void
send_answer(dconn *c, ik_buf *b)
{
	ik_buf out;
	size_t i = 0;
	ik_buf_init(&out);
	while (i < b->len) {
		uint8_t *nl  = memchr(b->data + i, '\n', b->len - i);
		size_t   end = nl != NULL ? (size_t) (nl - b->data) : b->len;
		if (b->data[i] == '.') {
			(void) ik_buf_append(&out, ".", 1);
		}
		(void) ik_buf_append(&out, b->data + i, end - i);
		(void) ik_buf_append(&out, "\n", 1);
		i = end + 1;
	}
	(void) ik_buf_append(&out, ".\n", 2);
	wreq *w = malloc(sizeof(*w) + out.len);
	if (w != NULL) {
		uv_buf_t ub;
		memcpy(w->data, out.data, out.len);
		w->c   = c;
		w->len = out.len;
		ub     = uv_buf_init(w->data, (unsigned) w->len);
		if (uv_write(&w->req, (uv_stream_t *) &c->h, &ub, 1, write_cb) != 0) {
			free(w);
			c->closing = true;
		}
	} else {
		c->closing = true;
	}
	ik_buf_fini(&out);
	if (c->closing && !c->shutting) {
		uv_shutdown_t *sr = malloc(sizeof(*sr));
		c->shutting       = true;
		uv_read_stop((uv_stream_t *) &c->h);
		if (sr == NULL) {
			conn_close(c);
			return;
		}
		sr->data = c;
		if (uv_shutdown(sr, (uv_stream_t *) &c->h, shutdown_cb) != 0) {
			free(sr);
			conn_close(c);
		}
	}
}

static void
answer_error(dconn *c, const char *msg)
{
	ik_buf b;
	ik_buf_init(&b);
	outf(&b, "error: %s\n", msg);
	c->closing = true;
	send_answer(c, &b);
	ik_buf_fini(&b);
}

static void
help(ik_buf *b)
{
	outf(b, "commands:\n");
	outf(b, "stats     every socket: pattern, queues, in flight, counters\n");
	outf(b, "peers     every dialer and listener, and their connections\n");
	outf(b, "inflight  one line per request in flight (req, surveyor, pipelined-db)\n");
	outf(b, "markers   each application marker: passes, last thread, how long ago\n");
	outf(b, "stack     the main thread's C stack (and Python threads' tracebacks)\n");
}

/* Run one command line; false if c now waits (stack) or is closing. */
static bool
run_line(dconn *c, const char *line)
{
	ik_buf b;
	ik_buf_init(&b);
	if (strcmp(line, "stats") == 0) {
		cmd_stats(&b);
	} else if (strcmp(line, "peers") == 0) {
		cmd_peers(&b);
	} else if (strcmp(line, "inflight") == 0) {
		cmd_inflight(&b);
	} else if (strcmp(line, "markers") == 0) {
		cmd_markers(&b);
	} else if (strcmp(line, "help") == 0) {
		help(&b);
	} else if (strcmp(line, "stack") == 0) {
		if (cmd_stack(c, &b) == 0) {
			ik_buf_fini(&b);
			return false;
		}
	} else {
		ik_buf_fini(&b);
		answer_error(c, "unknown command (try help)");
		return false;
	}
	send_answer(c, &b);
	ik_buf_fini(&b);
	return !c->closing;
}

/* Run every complete line received, unless a stack answer is pending. */
static void
conn_process(dconn *c)
{
	char  *nl;
	size_t n;
	while (!c->closing && !ik_node_linked(&c->wait_node) &&
	       (nl = memchr(c->in, '\n', c->inlen)) != NULL) {
		char   line[LINE_MAX_ + 1];
		size_t rest;
		n = (size_t) (nl - c->in); /* <= LINE_MAX_: the buffer holds the '\n' */
		memcpy(line, c->in, n);
		line[n] = '\0';
		rest    = c->inlen - n - 1;
		memmove(c->in, nl + 1, rest);
		c->inlen = rest;
		if (n > 0 && line[n - 1] == '\r') {
			line[--n] = '\0';
		}
		for (size_t i = 0; i < n; i++) {
			if (line[i] < 0x20 || line[i] > 0x7e) {
				answer_error(c, "garbage (not printable ASCII)");
				return;
			}
		}
		if (!run_line(c, line)) {
			return;
		}
	}
	if (!c->closing && c->inlen > LINE_MAX_) {
		answer_error(c, "line too long");
	}
}

static void
alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	dconn *c = h->data;
	(void) hint;
	/* Never more than the line buffer holds: input is bounded here. */
	buf->base = c->in + c->inlen;
	buf->len  = LINE_MAX_ + 1 - c->inlen;
}

static void
read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	dconn *c = st->data;
	(void) buf;
	if (n < 0) {
		if (!c->shutting) {
			conn_close(c);
		}
		return;
	}
	if (c->closing) {
		return; /* answered an error: ignore the rest */
	}
	c->inlen += (size_t) n;
	conn_process(c);
}

static bool
peer_allowed(dconn *c)
{
	struct ucred cr;
	socklen_t    len = sizeof(cr);
	uv_os_fd_t   fd;
	if (uv_fileno((uv_handle_t *) &c->h, &fd) != 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) {
		return false;
	}
	return cr.uid == geteuid() || cr.uid == 0;
}

static void
accept_cb(uv_stream_t *srv, int status)
{
	dconn *c;
	if (status != 0 || (c = calloc(1, sizeof(*c))) == NULL) {
		return;
	}
	uv_pipe_init(ik_loop(), &c->h, 0);
	c->h.data = c;
	ik_node_init(&c->wait_node);
	ik_list_append(&D.conns, &c->node);
	D.nconns++;
	if (uv_accept(srv, (uv_stream_t *) &c->h) != 0) {
		conn_close(c);
		return;
	}
	if (!peer_allowed(c)) {
		conn_close(c);
		return;
	}
	if (D.nconns > CONNS_MAX) {
		answer_error(c, "too many debug connections");
		return;
	}
	uv_read_start((uv_stream_t *) &c->h, alloc_cb, read_cb);
}

/* -------------------------------------------------------------- server */

/* The path may be taken only by a stale socket of ours: a socket file,
 * owned by us, that nobody listens on any more.  0 (free now) or
 * IOK_EADDRINUSE / IOK_EPERM. */
static int
claim_path(const char *path)
{
	struct stat        st;
	struct sockaddr_un sa;
	int                fd, rv;
	if (lstat(path, &st) != 0) {
		return errno == ENOENT ? 0 : IOK_EPERM;
	}
	if (!S_ISSOCK(st.st_mode) || st.st_uid != geteuid()) {
		return IOK_EADDRINUSE;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		return IOK_ENOFILES;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	rv = connect(fd, (struct sockaddr *) &sa, sizeof(sa));
	close(fd);
	if (rv == 0) {
		return IOK_EADDRINUSE; /* alive: another process serves it */
	}
	return unlink(path) == 0 ? 0 : IOK_EPERM;
}

static void
srv_closed_cb(uv_handle_t *h)
{
	free(h);
}

static int
server_start(const char *path)
{
	int rv;
	if (strlen(path) == 0 || strlen(path) >= sizeof(D.path)) {
		return IOK_EINVAL;
	}
	if (D.on) {
		return IOK_EBUSY;
	}
	if (D.conns.head.next == NULL) {
		ik_list_init(&D.conns);
		ik_list_init(&D.stack_waiters);
	}
	if ((rv = claim_path(path)) != 0) {
		return rv;
	}
	if ((D.srv = malloc(sizeof(*D.srv))) == NULL) {
		return IOK_ENOMEM;
	}
	uv_pipe_init(ik_loop(), D.srv, 0);
	if ((rv = uv_pipe_bind(D.srv, path)) != 0) {
		uv_close((uv_handle_t *) D.srv, srv_closed_cb);
		return rv == UV_EADDRINUSE ? IOK_EADDRINUSE : IOK_EPERM;
	}
	/* Owner only: stats and stacks are the process's secrets. */
	if (chmod(path, 0600) != 0 || uv_listen((uv_stream_t *) D.srv, 8, accept_cb) != 0) {
		unlink(path);
		uv_close((uv_handle_t *) D.srv, srv_closed_cb);
		return IOK_EPERM;
	}
	/* The endpoint alone must not keep the loop alive at teardown. */
	uv_unref((uv_handle_t *) D.srv);
	memcpy(D.path, path, strlen(path) + 1);
	D.on = true;
	return 0;
}

static void
server_stop(bool unlink_path)
{
	ik_node *n, *tmp;
	if (D.on) {
		if (!unlink_path && D.srv->pipe_fname != NULL) {
			/* libuv unlinks a bound pipe's path when it closes it: a
			 * forked child must not remove its parent's endpoint (the
			 * string is libuv's, from its default malloc, as ep.c). */
			free((void *) D.srv->pipe_fname);
			D.srv->pipe_fname = NULL;
		}
		uv_close((uv_handle_t *) D.srv, srv_closed_cb);
		D.on = false;
	}
	if (D.conns.head.next != NULL) {
		ik_list_foreach_safe(&D.conns, n, tmp)
		{
			conn_close(ik_container_of(n, dconn, node));
		}
	}
	if (D.stack_init) {
		uv_close((uv_handle_t *) &D.spoll, NULL);
		uv_close((uv_handle_t *) &D.stimer, NULL);
		D.stack_init = false;
		D.stack_busy = false;
	}
	ik_buf_fini(&D.sout);
}

void
ik_debug_kernel_start(void)
{
	const char *path = getenv("IOK_DEBUG");
	if (path != NULL && path[0] != '\0' && !D.on) {
		(void) ik_stack_setup();
		(void) server_start(path); /* a taken path: no endpoint, no fuss */
	}
}

void
ik_debug_fork_child(void)
{
	/* The parent serves its path: the child closes its copies and lets
	 * IOK_DEBUG or a new iok_debug_listen name one of its own. */
	server_stop(false);
	ik_export_shutdown();
}

void
ik_debug_shutdown(void)
{
	server_stop(true);
	ik_export_shutdown();
}

/* ---------------------------------------------------------- public API */

struct dbg_cmd {
	ik_cmd      cmd;
	const char *path;
};

static void
listen_k(ik_cmd *c)
{
	struct dbg_cmd *dc = (struct dbg_cmd *) c;
	ik_cmd_done(c, dc->path != NULL ? server_start(dc->path) : (server_stop(true), 0));
}

int
iok_debug_listen(const char *path)
{
	struct dbg_cmd dc = { .path = path };
	int            rv;
	if (path == NULL) {
		return IOK_EINVAL;
	}
	/* Before the endpoint can be asked for a stack. */
	if ((rv = ik_stack_setup()) != 0) {
		return rv;
	}
	return ik_cmd_call(&dc.cmd, listen_k);
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
	int              rv = 0;
	ik_buf_init(&b);
	if (strcmp(tc->what, "stats") == 0) {
		cmd_stats(&b);
	} else if (strcmp(tc->what, "peers") == 0) {
		cmd_peers(&b);
	} else if (strcmp(tc->what, "inflight") == 0) {
		cmd_inflight(&b);
	} else if (strcmp(tc->what, "markers") == 0) {
		cmd_markers(&b);
	} else {
		rv = IOK_EINVAL;
	}
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

int
iok_debug_close(void)
{
	struct dbg_cmd dc = { .path = NULL };
	return ik_cmd_call(&dc.cmd, listen_k);
}
