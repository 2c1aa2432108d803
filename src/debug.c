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
 * Everything here runs on the kernel thread.  The commands' answers are
 * built by debug_cmd.c, the main thread's stack is read by dbgstack.c.
 */
#define _GNU_SOURCE /* struct ucred */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "iok.h"
#include "buf.h"
#include "debug.h"
#include "kernel.h"

#define LINE_MAX_ 256 /* a command line, without its newline */
#define CONNS_MAX 16  /* connections at once; more are refused */

typedef struct dconn {
	uv_pipe_t       h;
	ik_node         node; /* in D.conns */
	ik_stack_waiter sw;   /* waiting for the stack */
	char            in[LINE_MAX_ + 1];
	size_t          inlen;
	bool            closing;  /* answered an error: close once written */
	bool            shutting; /* uv_shutdown issued */
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
} D;

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
	ik_stack_cancel(&c->sw);
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
	ik_buf_printf(&b, "error: %s\n", msg);
	c->closing = true;
	send_answer(c, &b);
	ik_buf_fini(&b);
}

static void
help(ik_buf *b)
{
	ik_buf_printf(b, "commands:\n");
	ik_buf_printf(b, "stats     every socket: pattern, queues, in flight, counters\n");
	ik_buf_printf(b, "peers     every dialer and listener, and their connections\n");
	ik_buf_printf(
	    b, "inflight  one line per request in flight (req, surveyor, pipelined-db)\n");
	ik_buf_printf(b, "markers   each application marker: passes, last thread, how long ago\n");
	ik_buf_printf(b, "stack     the main thread's C stack (and Python threads' tracebacks)\n");
}

/* Run one command line; false if c now waits (stack) or is closing. */
static bool
run_line(dconn *c, const char *line)
{
	ik_buf b;
	ik_buf_init(&b);
	if (ik_debug_cmd(line, &b) == 0) {
		/* answered */
	} else if (strcmp(line, "help") == 0) {
		help(&b);
	} else if (strcmp(line, "stack") == 0) {
		if (ik_stack_wait(&c->sw, &b) == 0) {
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
	while (!c->closing && !ik_node_linked(&c->sw.node) &&
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

/* The stack c asked for: answer, then go on with the commands that came
 * after it. */
static void
stack_done(ik_stack_waiter *w, ik_buf *text)
{
	dconn *c = ik_container_of(w, dconn, sw);
	send_answer(c, text);
	conn_process(c);
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
	ik_node_init(&c->sw.node);
	c->sw.done = stack_done;
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
	ik_stack_reader_close();
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

int
iok_debug_close(void)
{
	struct dbg_cmd dc = { .path = NULL };
	return ik_cmd_call(&dc.cmd, listen_k);
}
