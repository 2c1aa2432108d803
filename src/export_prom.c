/*
 * export_prom.c - the Prometheus text exposition (format 0.0.4) of the
 * kernel's statistics, served over HTTP on an optional listener.
 *
 * The HTTP side is deliberately tiny: one GET per connection, request
 * head bounded (HTTP_MAX), answer then close.  Anything else gets a 4xx
 * and the connection closed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iok.h"
#include "appstats.h"
#include "buf.h"
#include "export.h"
#include "kernel.h"
#include "sock.h"
#include "stats.h"

#define HTTP_MAX 8192 /* request head */
#define HTTP_CONNS 16

typedef struct hconn {
	uv_tcp_t h;
	ik_node  node;
	char     in[HTTP_MAX];
	size_t   inlen;
	bool     answered;
} hconn;

static struct {
	bool      http_on;
	uv_tcp_t *srv; /* new per start: an old one may still be closing */
	ik_list   conns;
	int       nconns;
} X;

/* ---------------------------------------------------------- prometheus */

/* A label value, escaped as the exposition format asks. */
static void
label(ik_buf *b, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\' || *v == '"') {
			ik_buf_printf(b, "\\%c", *v);
		} else if (*v == '\n') {
			ik_buf_printf(b, "\\n");
		} else {
			(void) ik_buf_append(b, v, 1);
		}
	}
}

static void
sock_labels(ik_buf *b, ik_sock *s)
{
	ik_buf_printf(b, "socket=\"%u\",pattern=\"%s\",name=\"", s->obj.id, s->pat->name);
	label(b, s->name);
	ik_buf_printf(b, "\"");
}

static void
family(ik_buf *b, const char *name, const char *type, const char *help)
{
	ik_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Histogram buckets at powers of two of ns (exact bucket edges of both
 * histograms), from 1 us to about 69 s. */
#define LE_MIN 10
#define LE_MAX 36

static void
prom_hist(ik_buf *b, const char *name, const char *labels, const ik_hist *h)
{
	uint64_t cum = 0;
	int      i   = 0;
	for (int k = LE_MIN; k <= LE_MAX; k++) {
		uint64_t edge = (uint64_t) 1 << k; /* values < edge */
		while (i < IK_HIST_BUCKETS && ik_hist_bucket_high(i) < edge) {
			cum += h->b[i++];
		}
		ik_buf_printf(b, "%s_bucket{%s,le=\"%.9g\"} %llu\n", name, labels,
		    (double) edge / 1e9, (unsigned long long) cum);
	}
	ik_buf_printf(
	    b, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels, (unsigned long long) h->count);
	ik_buf_printf(b, "%s_sum{%s} %.9g\n", name, labels, (double) h->sum / 1e9);
	ik_buf_printf(b, "%s_count{%s} %llu\n", name, labels, (unsigned long long) h->count);
}

static void
prom_app_hist(ik_buf *b, const char *labels, const ik_app_view *v)
{
	const char *name = "iok_app_timer_seconds";
	uint64_t    cum  = 0;
	int         i    = 0;
	for (int k = LE_MIN; k <= LE_MAX; k++) {
		/* bucket i holds [2^(i-1), 2^i): all below 2^k for i <= k */
		while (i <= k && i < IK_APP_BUCKETS) {
			cum += v->buckets[i++];
		}
		ik_buf_printf(b, "%s_bucket{%s,le=\"%.9g\"} %llu\n", name, labels,
		    (double) ((uint64_t) 1 << k) / 1e9, (unsigned long long) cum);
	}
	ik_buf_printf(
	    b, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels, (unsigned long long) v->value);
	ik_buf_printf(b, "%s_sum{%s} %.9g\n", name, labels, (double) v->sum_ns / 1e9);
	ik_buf_printf(b, "%s_count{%s} %llu\n", name, labels, (unsigned long long) v->value);
}

static void
prom_render(ik_buf *b)
{
	ik_export_snap sn = { 0 };
	char           nm[64], full[96];
	ik_buf         lb;
	ik_app_view    v;

	ik_buf_init(&lb);
	ik_export_snap_take(&sn);

	family(b, "iok_socket_info", "gauge", "An open iok socket (always 1).");
	for (size_t j = 0; j < sn.n; j++) {
		ik_buf_printf(b, "iok_socket_info{");
		sock_labels(b, sn.v[j].s);
		ik_buf_printf(b, "} 1\n");
	}
	for (int i = 0; i < IK_STAT_COUNT; i++) {
		bool gauge = i == IK_STAT_PIPES;
		ik_export_stat_name(i, nm, sizeof(nm));
		snprintf(full, sizeof(full), "iok_socket_%s%s", nm, gauge ? "" : "_total");
		family(b, full, gauge ? "gauge" : "counter", ik_stat_name(i));
		for (size_t j = 0; j < sn.n; j++) {
			ik_buf_printf(b, "%s{", full);
			sock_labels(b, sn.v[j].s);
			ik_buf_printf(b, "} %llu\n", (unsigned long long) sn.v[j].s->stats[i]);
		}
	}
	family(
	    b, "iok_socket_inflight", "gauge", "Requests the socket waits on (queued or written).");
	for (size_t j = 0; j < sn.n; j++) {
		ik_buf_printf(b, "iok_socket_inflight{");
		sock_labels(b, sn.v[j].s);
		ik_buf_printf(b, "} %llu\n", (unsigned long long) sn.v[j].inflight);
	}
	family(b, "iok_socket_queue_messages", "gauge",
	    "Messages in a socket's send or receive queue.");
	for (size_t j = 0; j < sn.n; j++) {
		const ik_sock_view *sv = &sn.v[j];
		ik_buf_printf(b, "iok_socket_queue_messages{");
		sock_labels(b, sv->s);
		ik_buf_printf(b, ",queue=\"send\"} %zu\niok_socket_queue_messages{", sv->sq);
		sock_labels(b, sv->s);
		ik_buf_printf(b, ",queue=\"recv\"} %zu\n", sv->rq);
	}
	family(b, "iok_socket_errors_total", "counter", "Error completions delivered, by kind.");
	for (size_t j = 0; j < sn.n; j++) {
		ik_xstats *x = sn.v[j].s->xs;
		for (int k = 1; x != NULL && k < IK_ERR_KINDS; k++) {
			if (x->errs[k] != 0) {
				const char *kn = ik_stats_err_name(k);
				ik_buf_printf(b, "iok_socket_errors_total{");
				sock_labels(b, sn.v[j].s);
				if (kn != NULL) {
					ik_buf_printf(b, ",kind=\"%s\"} %llu\n", kn,
					    (unsigned long long) x->errs[k]);
				} else {
					ik_buf_printf(b, ",kind=\"e%d\"} %llu\n", k,
					    (unsigned long long) x->errs[k]);
				}
			}
		}
	}
	family(b, "iok_request_latency_seconds", "histogram",
	    "From a request's write to its reply's read, timed on the kernel thread.");
	for (size_t j = 0; j < sn.n; j++) {
		if (sn.v[j].s->xs != NULL && sn.v[j].s->xs->lat.count > 0) {
			lb.len = 0;
			sock_labels(&lb, sn.v[j].s);
			(void) ik_buf_append(&lb, "", 1);
			prom_hist(b, "iok_request_latency_seconds", (char *) lb.data,
			    &sn.v[j].s->xs->lat);
		}
	}

	/* The application's own. */
	family(b, "iok_app_counter_total", "counter", "Application counters (iok_counter_add).");
	for (uint32_t i = 0; ik_app_read(i, &v); i++) {
		if (v.kind == IK_APP_COUNTER) {
			ik_buf_printf(b, "iok_app_counter_total{name=\"");
			label(b, v.name);
			ik_buf_printf(b, "\"} %llu\n", (unsigned long long) v.value);
		}
	}
	family(b, "iok_app_timer_seconds", "histogram", "Application timers (iok_timer_record).");
	for (uint32_t i = 0; ik_app_read(i, &v); i++) {
		if (v.kind == IK_APP_TIMER) {
			lb.len = 0;
			ik_buf_printf(&lb, "name=\"");
			label(&lb, v.name);
			ik_buf_printf(&lb, "\"");
			(void) ik_buf_append(&lb, "", 1);
			prom_app_hist(b, (char *) lb.data, &v);
		}
	}
	family(
	    b, "iok_app_marker_passes_total", "counter", "Times an application marker was passed.");
	for (uint32_t i = 0; ik_app_read(i, &v); i++) {
		if (v.kind == IK_APP_MARKER) {
			ik_buf_printf(b, "iok_app_marker_passes_total{name=\"");
			label(b, v.name);
			ik_buf_printf(b, "\"} %llu\n", (unsigned long long) v.value);
		}
	}
	family(b, "iok_app_marker_age_seconds", "gauge", "Time since a marker was last passed.");
	for (uint32_t i = 0; ik_app_read(i, &v); i++) {
		if (v.kind == IK_APP_MARKER && v.value > 0) {
			uint64_t now = ik_app_now_ns();
			ik_buf_printf(b, "iok_app_marker_age_seconds{name=\"");
			label(b, v.name);
			ik_buf_printf(b, "\"} %.6f\n",
			    (double) (now > v.last_ns ? now - v.last_ns : 0) / 1e9);
		}
	}
	ik_buf_fini(&lb);
	free(sn.v);
}

/* ---------------------------------------------------------------- http */

static void
hconn_free_cb(uv_handle_t *h)
{
	free(h->data);
}

static void
hconn_close(hconn *c)
{
	if (!uv_is_closing((uv_handle_t *) &c->h)) {
		ik_list_remove(&c->node);
		X.nconns--;
		uv_close((uv_handle_t *) &c->h, hconn_free_cb);
	}
}

static void
hshutdown_cb(uv_shutdown_t *req, int status)
{
	hconn *c = req->data;
	(void) status;
	free(req);
	hconn_close(c);
}

static void
hwrite_cb(uv_write_t *req, int status)
{
	(void) status;
	free(req->data);
	free(req);
}

static void
respond(hconn *c, const char *status, const char *ctype, ik_buf *body)
{
	ik_buf         out;
	uv_write_t    *wr = malloc(sizeof(*wr));
	uv_shutdown_t *sr = malloc(sizeof(*sr));
	uv_buf_t       ub;
	ik_buf_init(&out);
	c->answered = true;
	uv_read_stop((uv_stream_t *) &c->h);
	ik_buf_printf(&out,
	    "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
	    status, ctype, body->len);
	if (body->len > 0) {
		(void) ik_buf_append(&out, body->data, body->len);
	}
	if (wr == NULL || sr == NULL || out.data == NULL) {
		free(wr);
		free(sr);
		ik_buf_fini(&out);
		hconn_close(c);
		return;
	}
	wr->data = out.data; /* freed by hwrite_cb */
	ub       = uv_buf_init((char *) out.data, (unsigned) out.len);
	if (uv_write(wr, (uv_stream_t *) &c->h, &ub, 1, hwrite_cb) != 0) {
		free(wr);
		free(sr);
		ik_buf_fini(&out);
		hconn_close(c);
		return;
	}
	sr->data = c;
	if (uv_shutdown(sr, (uv_stream_t *) &c->h, hshutdown_cb) != 0) {
		free(sr);
		hconn_close(c);
	}
}

static void
respond_text(hconn *c, const char *status, const char *text)
{
	ik_buf b;
	ik_buf_init(&b);
	(void) ik_buf_append(&b, text, strlen(text));
	respond(c, status, "text/plain; charset=utf-8", &b);
	ik_buf_fini(&b);
}

static void
handle_request(hconn *c)
{
	char *sp1, *sp2;
	c->in[c->inlen] = '\0';
	sp1             = memchr(c->in, ' ', c->inlen);
	sp2             = sp1 != NULL ? strchr(sp1 + 1, ' ') : NULL;
	if (sp1 == NULL || sp2 == NULL || strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
		respond_text(c, "400 Bad Request", "bad request\n");
		return;
	}
	if ((size_t) (sp1 - c->in) != 3 || memcmp(c->in, "GET", 3) != 0) {
		respond_text(c, "405 Method Not Allowed", "GET only\n");
		return;
	}
	*sp2 = '\0';
	if (strcmp(sp1 + 1, "/metrics") != 0 && strcmp(sp1 + 1, "/") != 0) {
		respond_text(c, "404 Not Found", "try /metrics\n");
		return;
	}
	ik_buf body;
	ik_buf_init(&body);
	prom_render(&body);
	respond(c, "200 OK", "text/plain; version=0.0.4; charset=utf-8", &body);
	ik_buf_fini(&body);
}

static void
halloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	hconn *c = h->data;
	(void) hint;
	/* Keep one byte for the terminator: input is bounded here. */
	buf->base = c->in + c->inlen;
	buf->len  = HTTP_MAX - 1 - c->inlen;
}

static void
hread_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	hconn *c = st->data;
	(void) buf;
	if (c->answered) {
		return;
	}
	if (n < 0) {
		hconn_close(c);
		return;
	}
	c->inlen += (size_t) n;
	c->in[c->inlen] = '\0';
	if (memchr(c->in, '\0', c->inlen) != NULL) {
		respond_text(c, "400 Bad Request", "bad request\n");
	} else if (strstr(c->in, "\r\n\r\n") != NULL || strstr(c->in, "\n\n") != NULL) {
		handle_request(c);
	} else if (c->inlen >= HTTP_MAX - 1) {
		respond_text(c, "431 Request Header Fields Too Large", "request too large\n");
	}
}

static void
haccept_cb(uv_stream_t *srv, int status)
{
	hconn *c;
	if (status != 0 || (c = calloc(1, sizeof(*c))) == NULL) {
		return;
	}
	uv_tcp_init(ik_loop(), &c->h);
	c->h.data = c;
	ik_list_append(&X.conns, &c->node);
	X.nconns++;
	if (uv_accept(srv, (uv_stream_t *) &c->h) != 0 || X.nconns > HTTP_CONNS) {
		hconn_close(c);
		return;
	}
	uv_read_start((uv_stream_t *) &c->h, halloc_cb, hread_cb);
}

static void
srv_closed_cb(uv_handle_t *h)
{
	free(h);
}

int
ik_export_prom_start(const char *url)
{
	struct sockaddr_storage ss;
	int                     rv;
	if (X.http_on) {
		return IOK_EBUSY;
	}
	if ((rv = ik_export_parse_addr(url, "tcp", &ss)) != 0) {
		return rv;
	}
	if (X.conns.head.next == NULL) {
		ik_list_init(&X.conns);
	}
	if ((X.srv = malloc(sizeof(*X.srv))) == NULL) {
		return IOK_ENOMEM;
	}
	uv_tcp_init(ik_loop(), X.srv);
	if ((rv = uv_tcp_bind(X.srv, (struct sockaddr *) &ss, 0)) != 0 ||
	    (rv = uv_listen((uv_stream_t *) X.srv, 16, haccept_cb)) != 0) {
		uv_close((uv_handle_t *) X.srv, srv_closed_cb);
		return rv == UV_EADDRINUSE ? IOK_EADDRINUSE
		       : rv == UV_EACCES   ? IOK_EPERM
		                           : IOK_EADDRINVAL;
	}
	uv_unref((uv_handle_t *) X.srv);
	X.http_on = true;
	return 0;
}

void
ik_export_prom_stop(void)
{
	ik_node *n, *tmp;
	if (X.http_on) {
		uv_close((uv_handle_t *) X.srv, srv_closed_cb);
		X.http_on = false;
	}
	if (X.conns.head.next != NULL) {
		ik_list_foreach_safe(&X.conns, n, tmp)
		{
			hconn_close(ik_container_of(n, hconn, node));
		}
	}
}
