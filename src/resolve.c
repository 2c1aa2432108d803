/*
 * resolve.c - c-ares driven by the kernel loop (see resolve.h): c-ares
 * tells us which sockets to watch; uv_poll watches them and a uv_timer
 * covers c-ares's timeouts.
 */
#include <arpa/inet.h>
#include <ares.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iok.h"
#include "kernel.h"
#include "list.h"
#include "resolve.h"

struct ik_resolve {
	ik_resolve_cb           cb;
	void                   *arg;
	int                     cancelled;
	int                     err;
	int                     n;
	ik_task                 task; /* answers reach the caller from here */
	struct sockaddr_storage addrs[IK_RESOLVE_MAX];
};

typedef struct watch {
	uv_poll_t     poll;
	ares_socket_t fd;
	ik_node       node;
} watch;

static struct {
	int          ready;
	ares_channel channel;
	uv_timer_t   timer;
	ik_list      watches;
} R;

int
ik_resolve_numeric(const char *host, uint16_t port, int family, int passive,
    struct sockaddr_storage *out)
{
	struct sockaddr_in  *sin  = (struct sockaddr_in *) out;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) out;

	memset(out, 0, sizeof(*out));
	if (host[0] == '\0') {
		if (!passive) {
			return IOK_EADDRINVAL;
		}
		if (family == AF_INET6) {
			sin6->sin6_family = AF_INET6;
			sin6->sin6_addr   = in6addr_any;
			sin6->sin6_port   = htons(port);
		} else {
			sin->sin_family      = AF_INET;
			sin->sin_addr.s_addr = htonl(INADDR_ANY);
			sin->sin_port        = htons(port);
		}
		return 0;
	}
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		if (family == AF_INET6) {
			return IOK_EADDRINVAL;
		}
		sin->sin_family = AF_INET;
		sin->sin_port   = htons(port);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		if (family == AF_INET) {
			return IOK_EADDRINVAL;
		}
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port   = htons(port);
		return 0;
	}
	return IOK_ENOENT;
}

static void arm_timer(void);

static void
timer_cb(uv_timer_t *t)
{
	(void) t;
	ares_process_fd(R.channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	arm_timer();
}

static void
arm_timer(void)
{
	struct timeval tv, *tvp;
	if (!R.ready) {
		return;
	}
	tvp = ares_timeout(R.channel, NULL, &tv);
	if (tvp == NULL) {
		uv_timer_stop(&R.timer);
		return;
	}
	uint64_t ms = (uint64_t) tvp->tv_sec * 1000 + (uint64_t) tvp->tv_usec / 1000;
	uv_timer_start(&R.timer, timer_cb, ms + 1, 0);
}

static void
poll_cb(uv_poll_t *h, int status, int events)
{
	watch *w = h->data;
	ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;
	if (status < 0 || (events & UV_READABLE)) {
		rfd = w->fd;
	}
	if (status < 0 || (events & UV_WRITABLE)) {
		wfd = w->fd;
	}
	ares_process_fd(R.channel, rfd, wfd);
	arm_timer();
}

static void
watch_closed(uv_handle_t *h)
{
	free(h->data);
}

static void
sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	ik_node *n;
	watch   *w = NULL;
	(void) data;
	for (n = ik_list_first(&R.watches); n != NULL; n = ik_list_next(&R.watches, n)) {
		watch *x = ik_container_of(n, watch, node);
		if (x->fd == fd) {
			w = x;
			break;
		}
	}
	if (!readable && !writable) {
		/* c-ares is about to close fd: stop watching it first. */
		if (w != NULL) {
			ik_list_remove(&w->node);
			uv_close((uv_handle_t *) &w->poll, watch_closed);
		}
		return;
	}
	if (w == NULL) {
		if ((w = calloc(1, sizeof(*w))) == NULL) {
			return; /* the query will time out */
		}
		w->fd = fd;
		if (uv_poll_init_socket(ik_loop(), &w->poll, fd) != 0) {
			free(w);
			return;
		}
		w->poll.data = w;
		ik_list_append(&R.watches, &w->node);
	}
	uv_poll_start(&w->poll, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0), poll_cb);
}

static int
ensure_channel(void)
{
	struct ares_options opts;
	static int lib_ready;
	if (R.ready) {
		return 0;
	}
	if (!lib_ready) {
		if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
			return IOK_ENOMEM;
		}
		lib_ready = 1;
	}
	memset(&opts, 0, sizeof(opts));
	opts.sock_state_cb      = sock_state_cb;
	opts.sock_state_cb_data = NULL;
	opts.timeout            = 2000; /* ms per try */
	opts.tries              = 2;
	if (ares_init_options(&R.channel, &opts, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES) !=
	    ARES_SUCCESS) {
		return IOK_ENOMEM;
	}
	ik_list_init(&R.watches);
	uv_timer_init(ik_loop(), &R.timer);
	uv_unref((uv_handle_t *) &R.timer);
	R.ready = 1;
	return 0;
}

static int
map_ares(int status)
{
	switch (status) {
	case ARES_ENOTFOUND:
	case ARES_ENODATA:
	case ARES_ENONAME:
	case ARES_EBADNAME:
		return IOK_EADDRINVAL;
	case ARES_ENOMEM:
		return IOK_ENOMEM;
	case ARES_ECANCELLED:
	case ARES_EDESTRUCTION:
		return IOK_ECANCELED;
	case ARES_ETIMEOUT:
		return IOK_ETIMEDOUT;
	default:
		return IOK_EUNREACHABLE;
	}
}

static void
answer_task(ik_task *t)
{
	ik_resolve *r = ik_container_of(t, ik_resolve, task);
	if (!r->cancelled) {
		r->cb(r->arg, r->err, r->addrs, r->n);
	}
	free(r);
}

/* c-ares may call this from inside ares_getaddrinfo (an /etc/hosts hit)
 * or ares_destroy; the answer is passed on from a task so callers are
 * never re-entered. */
static void
gai_cb(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	ik_resolve *r = arg;
	(void) timeouts;

	if (status == ARES_SUCCESS && res != NULL) {
		for (struct ares_addrinfo_node *ai = res->nodes; ai != NULL && r->n < IK_RESOLVE_MAX;
		     ai = ai->ai_next) {
			if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
			    ai->ai_addrlen <= sizeof(r->addrs[0])) {
				memset(&r->addrs[r->n], 0, sizeof(r->addrs[0]));
				memcpy(&r->addrs[r->n], ai->ai_addr, ai->ai_addrlen);
				r->n++;
			}
		}
	}
	if (res != NULL) {
		ares_freeaddrinfo(res);
	}
	if (r->cancelled) {
		free(r);
		return;
	}
	r->err = status != ARES_SUCCESS ? map_ares(status) : r->n == 0 ? IOK_EADDRINVAL : 0;
	ik_task_schedule(&r->task);
}

ik_resolve *
ik_resolve_start(const char *host, uint16_t port, int family, ik_resolve_cb cb, void *arg)
{
	struct ares_addrinfo_hints hints;
	char                       service[8];
	ik_resolve                *r;

	if (ensure_channel() != 0 || (r = calloc(1, sizeof(*r))) == NULL) {
		return NULL;
	}
	r->cb  = cb;
	r->arg = arg;
	ik_task_init(&r->task, answer_task);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family   = family;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags    = ARES_AI_NUMERICSERV;
	snprintf(service, sizeof(service), "%u", port);
	ares_getaddrinfo(R.channel, host, service, &hints, gai_cb, r);
	arm_timer();
	return r;
}

void
ik_resolve_cancel(ik_resolve *r)
{
	r->cancelled = 1;
}

static void
destroy_channel(void)
{
	ik_node *n, *tmp;
	if (!R.ready) {
		return;
	}
	R.ready = 0;
	ares_destroy(R.channel); /* pending lookups fail with EDESTRUCTION */
	ik_list_foreach_safe(&R.watches, n, tmp)
	{
		watch *w = ik_container_of(n, watch, node);
		ik_list_remove(n);
		uv_close((uv_handle_t *) &w->poll, watch_closed);
	}
	uv_close((uv_handle_t *) &R.timer, NULL);
}

void
ik_resolver_fork_child(void)
{
	/* The channel's sockets are shared with the parent: drop ours and
	 * start a fresh channel on next use. */
	destroy_channel();
}

void
ik_resolver_shutdown(void)
{
	destroy_channel();
}
