/*
 * dns.c - the A/AAAA backend: one name, looked up through c-ares on the
 * kernel loop, reported with the answer's TTL (the core clamps it and
 * calls refresh when it runs out, or at once after a failed connection).
 */
#include <stdlib.h>
#include <string.h>

#include "discovery.h"
#include "resolve.h"

typedef struct dns_state {
	iok_discovery_watch *w;
	char                *host;
	ik_resolve          *q; /* a look-up in flight */
} dns_state;

static void
answered(void *arg, int err, const struct sockaddr_storage *addrs, int n, uint32_t ttl)
{
	dns_state *st = arg;
	st->q         = NULL;
	if (err != 0) {
		iok_discovery_fail(st->w, err, IOK_DURATION_DEFAULT);
		return;
	}
	if (ttl > 86400) {
		ttl = 86400; /* the core clamps to dns:ttl-max anyway */
	}
	(void) ik_disc_update_resolved(st->w, addrs, n, (iok_duration) ttl * 1000);
}

static void
dns_refresh(void *arg)
{
	dns_state *st = arg;
	if (st->q != NULL) {
		return; /* one look-up at a time */
	}
	/* The port is set by the core (each entry has its own); c-ares
	 * refuses service "0", so any other number does. */
	st->q = ik_resolve_start(
	    ik_disc_watch_servers(st->w), st->host, 1, ik_disc_watch_family(st->w), answered, st);
	if (st->q == NULL) {
		iok_discovery_fail(st->w, IOK_ENOMEM, IOK_DURATION_DEFAULT);
	}
}

static int
dns_start(iok_discovery_watch *w, const char *target, void **state)
{
	dns_state *st = calloc(1, sizeof(*st));
	if (st == NULL || (st->host = strdup(target)) == NULL) {
		free(st);
		return IOK_ENOMEM;
	}
	st->w  = w;
	*state = st;
	dns_refresh(st);
	return 0;
}

static void
dns_stop(void *arg)
{
	dns_state *st = arg;
	if (st->q != NULL) {
		ik_resolve_cancel(st->q);
	}
	free(st->host);
	free(st);
}

const iok_discovery_backend ik_disc_backend_dns = {
	.name    = "dns",
	.start   = dns_start,
	.refresh = dns_refresh,
	.stop    = dns_stop,
};
