/*
 * discovery.c - the core of discovery (see discovery.h): watches, the
 * per-name A/AAAA children, merging everything into one set, and telling
 * the dialer about changes from a task.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "discovery.h"
#include "kernel.h"
#include "resolve.h"
#include "../patterns/pattern.h"

struct iok_discovery_watch {
	ik_disc                     *d;
	iok_discovery_watch         *parent; /* NULL for the top watch */
	const iok_discovery_backend *b;
	void                        *state;
	ik_timer                    *timer;        /* refresh after the ttl */
	char                        *host;         /* a child: the name it resolves */
	uint16_t                     port, weight; /* a child: its entry's */
	ik_disc_entry               *ents;         /* addresses reported (numeric) */
	int                          nents;
	iok_discovery_watch        **kids; /* the top: one per name reported */
	int                          nkids;
	bool                         started;
};

struct ik_disc {
	iok_discovery_watch *top;
	ik_disc_cb           cb;
	void                *arg;
	ik_disc_params       p;
	char                 servers[256];
	ik_task              task;
	ik_disc_entry       *set; /* what the dialer was last told */
	int                  nset;
	bool                 changed;
	int                  err;      /* a failure to report, if nothing is known */
	int                  rejected; /* entries a backend refused (counted) */
};

static void watch_free(iok_discovery_watch *w);

/* ----------------------------------------------------------- the set */

static int
entry_cmp(const void *a, const void *b)
{
	return memcmp(&((const ik_disc_entry *) a)->sa, &((const ik_disc_entry *) b)->sa,
	    sizeof(struct sockaddr_storage));
}

/* Entries are compared and sorted with memcmp, so every byte of one is
 * defined: padding and the unused tail of the address are zero. */
static void
entry_set(ik_disc_entry *e, const struct sockaddr_storage *sa, uint16_t weight)
{
	size_t len = sizeof(*sa);
	if (sa->ss_family == AF_INET) {
		len = sizeof(struct sockaddr_in);
	} else if (sa->ss_family == AF_INET6) {
		len = sizeof(struct sockaddr_in6);
	}
	memset(e, 0, sizeof(*e));
	memcpy(&e->sa, sa, len);
	e->weight = weight;
}

static int
add_entry(ik_disc_entry *out, int n, const struct sockaddr_storage *sa, uint16_t weight)
{
	ik_disc_entry e;
	entry_set(&e, sa, weight);
	for (int i = 0; i < n; i++) {
		if (memcmp(&out[i].sa, &e.sa, sizeof(e.sa)) == 0) {
			return n; /* listed twice (two names, one address) */
		}
	}
	if (n == IK_DISC_MAX) {
		return n;
	}
	out[n] = e;
	return n + 1;
}

/* Recompute the flat set; tell the dialer (from the task) if it changed. */
static void
merge(ik_disc *d)
{
	ik_disc_entry        tmp[IK_DISC_MAX];
	int                  n   = 0;
	iok_discovery_watch *top = d->top;

	for (int i = 0; i < top->nents; i++) {
		n = add_entry(tmp, n, &top->ents[i].sa, top->ents[i].weight);
	}
	for (int k = 0; k < top->nkids; k++) {
		iok_discovery_watch *c = top->kids[k];
		for (int i = 0; i < c->nents; i++) {
			n = add_entry(tmp, n, &c->ents[i].sa, c->weight);
		}
	}
	qsort(tmp, (size_t) n, sizeof(tmp[0]), entry_cmp);
	if (n == d->nset && (n == 0 || memcmp(tmp, d->set, (size_t) n * sizeof(tmp[0])) == 0)) {
		return;
	}
	ik_disc_entry *ns = NULL;
	if (n > 0 && (ns = malloc((size_t) n * sizeof(*ns))) == NULL) {
		return; /* keep the old set; the next report tries again */
	}
	if (n > 0) {
		memcpy(ns, tmp, (size_t) n * sizeof(*ns));
	}
	free(d->set);
	d->set     = ns;
	d->nset    = n;
	d->changed = true;
	d->err     = 0;
	ik_task_schedule(&d->task);
}

static void
notify_task(ik_task *t)
{
	ik_disc *d = ik_container_of(t, ik_disc, task);
	if (d->changed) {
		d->changed = false;
		d->err     = 0;
		d->cb(d->arg, 0, d->set, d->nset); /* last use of d: cb may stop it */
	} else if (d->err != 0 && d->nset == 0) {
		int err = d->err;
		d->err  = 0;
		d->cb(d->arg, err, NULL, 0);
	}
}

/* ------------------------------------------------------------- timers */

static void
refresh_fire(void *arg)
{
	iok_discovery_watch *w = arg;
	if (w->b->refresh != NULL) {
		w->b->refresh(w->state);
	}
}

static void
arm(iok_discovery_watch *w, iok_duration ms)
{
	const ik_disc_params *p = &w->d->p;
	if (ms == IOK_DURATION_INFINITE || w->b->refresh == NULL) {
		if (w->timer != NULL) {
			ik_timer_stop(w->timer);
		}
		return;
	}
	if (ms < p->ttl_min) {
		ms = p->ttl_min;
	}
	if (ms > p->ttl_max) {
		ms = p->ttl_max;
	}
	if (w->timer == NULL && (w->timer = ik_timer_new(refresh_fire, w)) == NULL) {
		return;
	}
	ik_timer_start(w->timer, (uint64_t) ms);
}

/* ------------------------------------------------------------ watches */

static iok_discovery_watch *
watch_start(ik_disc *d, iok_discovery_watch *parent, const iok_discovery_backend *b,
    const char *target, int *err)
{
	iok_discovery_watch *w = calloc(1, sizeof(*w));
	if (w == NULL) {
		*err = IOK_ENOMEM;
		return NULL;
	}
	w->d      = d;
	w->parent = parent;
	w->b      = b;
	if (parent == NULL) {
		d->top = w; /* a report from inside start merges into it */
	}
	if ((*err = b->start(w, target, &w->state)) != 0) {
		if (parent == NULL) {
			d->top = NULL;
		}
		watch_free(w);
		return NULL;
	}
	w->started = true;
	return w;
}

static void
watch_free(iok_discovery_watch *w)
{
	for (int k = 0; k < w->nkids; k++) {
		watch_free(w->kids[k]);
	}
	if (w->started) {
		w->b->stop(w->state);
	}
	ik_timer_free(w->timer);
	free(w->kids);
	free(w->ents);
	free(w->host);
	free(w);
}

static iok_discovery_watch *
kid_find(iok_discovery_watch *w, const char *host, uint16_t port, uint16_t weight)
{
	for (int k = 0; k < w->nkids; k++) {
		iok_discovery_watch *c = w->kids[k];
		if (c != NULL && c->port == port && c->weight == weight &&
		    strcmp(c->host, host) == 0) {
			return c;
		}
	}
	return NULL;
}

static iok_discovery_watch *
kid_new(iok_discovery_watch *w, const char *host, uint16_t port, uint16_t weight)
{
	iok_discovery_watch *c;
	char                *h = strdup(host);
	int                  err;
	if (h == NULL) {
		return NULL;
	}
	if ((c = watch_start(w->d, w, &ik_disc_backend_dns, host, &err)) == NULL) {
		free(h);
		return NULL;
	}
	c->host   = h;
	c->port   = port;
	c->weight = weight;
	return c;
}

int
iok_discovery_update(
    iok_discovery_watch *w, const iok_discovery_addr *addrs, int n, iok_duration ttl)
{
	ik_disc_entry        ents[IK_DISC_MAX];
	iok_discovery_watch *kids[IK_DISC_MAX];
	int                  ne = 0, nk = 0;
	ik_disc             *d;

	if (w == NULL || n < 0 || n > IK_DISC_MAX || (n > 0 && addrs == NULL)) {
		return IOK_EINVAL;
	}
	d = w->d;
	for (int i = 0; i < n; i++) {
		const char *h = addrs[i].host;
		if (h == NULL || h[0] == '\0' || strlen(h) >= IK_DISC_HOST_MAX) {
			return IOK_EINVAL;
		}
	}
	for (int i = 0; i < n; i++) {
		struct sockaddr_storage sa;
		uint16_t                port   = addrs[i].port != 0 ? addrs[i].port : d->p.def_port;
		uint16_t                weight = addrs[i].weight != 0 ? addrs[i].weight : 1;
		if (port == 0) {
			continue; /* nowhere to connect */
		}
		int rv = ik_resolve_numeric(addrs[i].host, port, d->p.family, 0, &sa);
		if (rv == 0) {
			ne = add_entry(ents, ne, &sa, weight);
		} else if (rv == IOK_ENOENT && w->parent == NULL) {
			/* A name: its own A/AAAA watch, kept across reports. */
			iok_discovery_watch *c   = kid_find(w, addrs[i].host, port, weight);
			bool                 dup = false;
			for (int k = 0; k < nk; k++) {
				dup = dup || kids[k] == c;
			}
			if (c != NULL && !dup) {
				for (int k = 0; k < w->nkids; k++) {
					if (w->kids[k] == c) {
						w->kids[k] = NULL; /* moved to the new list */
					}
				}
				kids[nk++] = c;
			} else if (c == NULL &&
			           (c = kid_new(w, addrs[i].host, port, weight)) != NULL) {
				kids[nk++] = c;
			}
		} /* else: a literal of the wrong family, skipped */
	}
	/* Names no longer reported stop being watched. */
	for (int k = 0; k < w->nkids; k++) {
		if (w->kids[k] != NULL) {
			watch_free(w->kids[k]);
		}
	}
	free(w->kids);
	w->kids  = NULL;
	w->nkids = 0;
	if (nk > 0 && (w->kids = malloc((size_t) nk * sizeof(*w->kids))) != NULL) {
		memcpy(w->kids, kids, (size_t) nk * sizeof(*kids));
		w->nkids = nk;
	} else {
		for (int k = 0; k < nk; k++) {
			watch_free(kids[k]);
		}
	}
	free(w->ents);
	w->ents  = NULL;
	w->nents = 0;
	if (ne > 0 && (w->ents = malloc((size_t) ne * sizeof(*ents))) != NULL) {
		memcpy(w->ents, ents, (size_t) ne * sizeof(*ents));
		w->nents = ne;
	}
	arm(w, ttl);
	if (d->top != NULL) {
		merge(d);
	}
	return 0;
}

int
ik_disc_update_resolved(
    iok_discovery_watch *w, const struct sockaddr_storage *a, int n, iok_duration ttl)
{
	ik_disc_entry ents[IK_DISC_MAX];
	int           ne   = 0;
	uint16_t      port = w->port != 0 ? w->port : w->d->p.def_port;

	for (int i = 0; i < n; i++) {
		struct sockaddr_storage sa;
		memset(&sa, 0, sizeof(sa));
		if (a[i].ss_family == AF_INET) {
			struct sockaddr_in *in = (struct sockaddr_in *) &sa;
			in->sin_family         = AF_INET;
			in->sin_addr           = ((const struct sockaddr_in *) &a[i])->sin_addr;
			in->sin_port           = htons(port);
		} else if (a[i].ss_family == AF_INET6) {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &sa;
			in6->sin6_family         = AF_INET6;
			in6->sin6_addr           = ((const struct sockaddr_in6 *) &a[i])->sin6_addr;
			in6->sin6_scope_id = ((const struct sockaddr_in6 *) &a[i])->sin6_scope_id;
			in6->sin6_port     = htons(port);
		} else {
			continue;
		}
		ne = add_entry(ents, ne, &sa, w->weight != 0 ? w->weight : 1);
	}
	free(w->ents);
	w->ents  = NULL;
	w->nents = 0;
	if (ne > 0 && (w->ents = malloc((size_t) ne * sizeof(*ents))) != NULL) {
		memcpy(w->ents, ents, (size_t) ne * sizeof(*ents));
		w->nents = ne;
	}
	arm(w, ttl);
	if (w->d->top != NULL) {
		merge(w->d);
	}
	return 0;
}

void
iok_discovery_fail(iok_discovery_watch *w, int err, iok_duration retry)
{
	ik_disc *d;
	if (w == NULL) {
		return;
	}
	d = w->d;
	arm(w, retry == IOK_DURATION_DEFAULT ? d->p.ttl_min : retry);
	if (d->nset == 0 && err != 0) {
		d->err = err;
		ik_task_schedule(&d->task);
	}
}

void
iok_discovery_reject(iok_discovery_watch *w, const char *entry)
{
	(void) entry; /* the count is what the application can see */
	if (w != NULL && w->d->rejected < INT_MAX) {
		w->d->rejected++;
	}
}

int
ik_disc_rejected(const ik_disc *d)
{
	return d != NULL ? d->rejected : 0;
}

void *
iok_discovery_loop(void)
{
	return ik_on_kernel() ? (void *) ik_loop() : NULL;
}

const char *
ik_disc_watch_servers(const iok_discovery_watch *w)
{
	return w->d->servers;
}

int
ik_disc_watch_family(const iok_discovery_watch *w)
{
	return w->d->p.family;
}

/* ------------------------------------------------------------ the API */

int
ik_disc_start(ik_disc **out, const ik_disc_params *p, ik_disc_cb cb, void *arg)
{
	const iok_discovery_backend *b = ik_disc_backend_find(p->backend);
	ik_disc                     *d;
	int                          err;

	if (b == NULL) {
		return IOK_ENOENT;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		return IOK_ENOMEM;
	}
	d->cb  = cb;
	d->arg = arg;
	d->p   = *p;
	if (d->p.ttl_max < d->p.ttl_min) {
		d->p.ttl_max = d->p.ttl_min;
	}
	if (p->dns_servers != NULL) {
		strncpy(d->servers, p->dns_servers, sizeof(d->servers) - 1);
	}
	d->p.dns_servers = d->servers;
	d->p.target      = NULL; /* the caller's; the backend copies it */
	ik_task_init(&d->task, notify_task);
	if (watch_start(d, NULL, b, p->target, &err) == NULL) {
		ik_task_cancel(&d->task);
		free(d->set);
		free(d);
		return err;
	}
	*out = d;
	return 0;
}

void
ik_disc_refresh(ik_disc *d)
{
	iok_discovery_watch *top = d->top;
	/* Children first: the top's refresh may report at once and replace
	 * them (the name children only ever answer later, from a task). */
	for (int k = 0; k < top->nkids; k++) {
		iok_discovery_watch *c = top->kids[k];
		c->b->refresh(c->state);
	}
	if (top->b->refresh != NULL) {
		top->b->refresh(top->state);
	}
}

void
ik_disc_stop(ik_disc *d)
{
	if (d == NULL) {
		return;
	}
	ik_task_cancel(&d->task);
	watch_free(d->top);
	free(d->set);
	free(d);
}
