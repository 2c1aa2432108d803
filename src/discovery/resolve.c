/*
 * resolve.c - c-ares driven by the kernel loop (see resolve.h): c-ares
 * tells us which sockets to watch; uv_poll watches them and a uv_timer
 * covers c-ares's timeouts.  Channels are few (one per server list) and
 * live until the kernel stops.
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

typedef struct chan chan;

struct ik_resolve {
	ik_resolve_cb           cb;
	ik_query_cb             qcb;
	void                   *arg;
	chan                   *ch;
	int                     cancelled;
	int                     err;
	int                     n;
	uint32_t                ttl;
	uint8_t                *msg; /* raw answer (queries) */
	int                     msglen;
	ik_task                 task; /* answers reach the caller from here */
	struct sockaddr_storage addrs[IK_RESOLVE_MAX];
};

typedef struct watch {
	uv_poll_t     poll;
	ares_socket_t fd;
	chan         *ch;
	ik_node       node;
} watch;

struct chan {
	ares_channel channel;
	uv_timer_t   timer;
	ik_list      watches;
	char        *servers; /* "" = the default */
	ik_node      node;
};

static struct {
	int     lib_ready;
	ik_list chans;
	int     chans_ready;
} R;

int
ik_resolve_numeric(
    const char *host, uint16_t port, int family, int passive, struct sockaddr_storage *out)
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

static void arm_timer(chan *ch);

static void
timer_cb(uv_timer_t *t)
{
	chan *ch = t->data;
	ares_process_fd(ch->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	arm_timer(ch);
}

static void
arm_timer(chan *ch)
{
	struct timeval tv, *tvp;
	tvp = ares_timeout(ch->channel, NULL, &tv);
	if (tvp == NULL) {
		uv_timer_stop(&ch->timer);
		return;
	}
	uint64_t ms = (uint64_t) tvp->tv_sec * 1000 + (uint64_t) tvp->tv_usec / 1000;
	uv_timer_start(&ch->timer, timer_cb, ms + 1, 0);
}

static void
poll_cb(uv_poll_t *h, int status, int events)
{
	watch        *w   = h->data;
	ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;
	if (status < 0 || (events & UV_READABLE)) {
		rfd = w->fd;
	}
	if (status < 0 || (events & UV_WRITABLE)) {
		wfd = w->fd;
	}
	ares_process_fd(w->ch->channel, rfd, wfd);
	arm_timer(w->ch);
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
	watch   *w  = NULL;
	chan    *ch = data;
	for (n = ik_list_first(&ch->watches); n != NULL; n = ik_list_next(&ch->watches, n)) {
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
		w->ch = ch;
		if (uv_poll_init_socket(ik_loop(), &w->poll, fd) != 0) {
			free(w);
			return;
		}
		w->poll.data = w;
		ik_list_append(&ch->watches, &w->node);
	}
	uv_poll_start(
	    &w->poll, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0), poll_cb);
}

/* The process default: IOK_DNS_SERVERS="host:port,host:port" points
 * every dialer without its own dns:servers at, e.g., a test server. */
static const char *
default_servers(void)
{
	const char *e = getenv("IOK_DNS_SERVERS");
	return e != NULL ? e : "";
}

static chan *
get_chan(const char *servers)
{
	struct ares_options opts;
	ik_node            *n;
	chan               *ch;

	if (servers == NULL || servers[0] == '\0') {
		servers = default_servers();
	}
	if (!R.lib_ready) {
		if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
			return NULL;
		}
		R.lib_ready = 1;
	}
	if (!R.chans_ready) {
		ik_list_init(&R.chans);
		R.chans_ready = 1;
	}
	for (n = ik_list_first(&R.chans); n != NULL; n = ik_list_next(&R.chans, n)) {
		ch = ik_container_of(n, chan, node);
		if (strcmp(ch->servers, servers) == 0) {
			return ch;
		}
	}
	if ((ch = calloc(1, sizeof(*ch))) == NULL || (ch->servers = strdup(servers)) == NULL) {
		free(ch);
		return NULL;
	}
	memset(&opts, 0, sizeof(opts));
	opts.sock_state_cb      = sock_state_cb;
	opts.sock_state_cb_data = ch;
	opts.timeout            = 2000; /* ms per try */
	opts.tries              = 2;
	if (ares_init_options(&ch->channel, &opts,
	        ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES) != ARES_SUCCESS) {
		free(ch->servers);
		free(ch);
		return NULL;
	}
	if (servers[0] != '\0' &&
	    ares_set_servers_ports_csv(ch->channel, servers) != ARES_SUCCESS) {
		ares_destroy(ch->channel);
		free(ch->servers);
		free(ch);
		return NULL;
	}
	ik_list_init(&ch->watches);
	uv_timer_init(ik_loop(), &ch->timer);
	ch->timer.data = ch;
	uv_unref((uv_handle_t *) &ch->timer);
	ik_list_append(&R.chans, &ch->node);
	return ch;
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
		if (r->qcb != NULL) {
			r->qcb(r->arg, r->err, r->msg, r->msglen);
		} else {
			r->cb(r->arg, r->err, r->addrs, r->n, r->ttl);
		}
	}
	free(r->msg);
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

	r->ttl = UINT32_MAX;
	if (status == ARES_SUCCESS && res != NULL) {
		for (struct ares_addrinfo_node *ai           = res->nodes;
		     ai != NULL && r->n < IK_RESOLVE_MAX; ai = ai->ai_next) {
			if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
			    ai->ai_addrlen <= sizeof(r->addrs[0])) {
				memset(&r->addrs[r->n], 0, sizeof(r->addrs[0]));
				memcpy(&r->addrs[r->n], ai->ai_addr, ai->ai_addrlen);
				r->n++;
				if (ai->ai_ttl >= 0 && (uint32_t) ai->ai_ttl < r->ttl) {
					r->ttl = (uint32_t) ai->ai_ttl;
				}
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
ik_resolve_start(
    const char *servers, const char *host, uint16_t port, int family, ik_resolve_cb cb, void *arg)
{
	struct ares_addrinfo_hints hints;
	char                       service[8];
	ik_resolve                *r;
	chan                      *ch;

	if ((ch = get_chan(servers)) == NULL || (r = calloc(1, sizeof(*r))) == NULL) {
		return NULL;
	}
	r->cb  = cb;
	r->arg = arg;
	r->ch  = ch;
	ik_task_init(&r->task, answer_task);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family   = family;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags    = ARES_AI_NUMERICSERV;
	snprintf(service, sizeof(service), "%u", port);
	ares_getaddrinfo(ch->channel, host, service, &hints, gai_cb, r);
	arm_timer(ch);
	return r;
}

static void
query_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	ik_resolve *r = arg;
	(void) timeouts;
	if (r->cancelled) {
		free(r);
		return;
	}
	r->err = status != ARES_SUCCESS ? map_ares(status) : 0;
	if (r->err == 0 && abuf != NULL && alen > 0) {
		if ((r->msg = malloc((size_t) alen)) == NULL) {
			r->err = IOK_ENOMEM;
		} else {
			memcpy(r->msg, abuf, (size_t) alen);
			r->msglen = alen;
		}
	}
	ik_task_schedule(&r->task);
}

ik_resolve *
ik_resolve_query(const char *servers, const char *name, int type, ik_query_cb cb, void *arg)
{
	ik_resolve *r;
	chan       *ch;
	if ((ch = get_chan(servers)) == NULL || (r = calloc(1, sizeof(*r))) == NULL) {
		return NULL;
	}
	r->qcb = cb;
	r->arg = arg;
	r->ch  = ch;
	ik_task_init(&r->task, answer_task);
	ares_query(ch->channel, name, 1 /* class IN */, type, query_cb, r);
	arm_timer(ch);
	return r;
}

void
ik_resolve_cancel(ik_resolve *r)
{
	r->cancelled = 1;
}

static void
chan_closed(uv_handle_t *h)
{
	chan *ch = h->data;
	free(ch->servers);
	free(ch);
}

static void
destroy_channels(void)
{
	ik_node *n, *tmp, *cn, *ctmp;
	if (!R.chans_ready) {
		return;
	}
	ik_list_foreach_safe(&R.chans, cn, ctmp)
	{
		chan *ch = ik_container_of(cn, chan, node);
		ik_list_remove(cn);
		ares_destroy(ch->channel); /* pending lookups fail with EDESTRUCTION */
		ik_list_foreach_safe(&ch->watches, n, tmp)
		{
			watch *w = ik_container_of(n, watch, node);
			ik_list_remove(n);
			uv_close((uv_handle_t *) &w->poll, watch_closed);
		}
		uv_close((uv_handle_t *) &ch->timer, chan_closed);
	}
}

void
ik_resolver_fork_child(void)
{
	/* The channel's sockets are shared with the parent: drop ours and
	 * start a fresh channel on next use. */
	destroy_channels();
}

void
ik_resolver_shutdown(void)
{
	destroy_channels();
}
