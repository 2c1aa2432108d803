/*
 * srv.c - the DNS SRV backend ("tcp+srv://_svc._tcp.name"): the targets,
 * ports and weights of the records with the lowest priority (RFC 2782:
 * higher priorities are fallbacks), re-read on the answer's TTL.  The
 * targets are names the core resolves and follows like any other.
 */
#include <ares.h>
#include <stdlib.h>
#include <string.h>

#include "discovery.h"
#include "resolve.h"

#define T_SRV_TYPE 33

typedef struct srv_state {
	iok_discovery_watch *w;
	char                *name;
	ik_resolve          *q;
} srv_state;

static void
answered(void *arg, int err, const uint8_t *msg, int len)
{
	srv_state             *st    = arg;
	struct ares_srv_reply *reply = NULL;
	iok_discovery_addr     a[IK_DISC_MAX];
	uint32_t               ttl  = 0;
	int                    n    = 0;
	unsigned               best = 0x10000;

	st->q = NULL;
	if (err == 0 && (msg == NULL || ares_parse_srv_reply(msg, len, &reply) != ARES_SUCCESS)) {
		err = IOK_EPROTO;
	}
	if (err == 0 && ik_dns_min_ttl(msg, (size_t) len, &ttl) != 0) {
		ttl = 0; /* the core clamps to dns:ttl-min */
	}
	if (err != 0) {
		iok_discovery_fail(st->w, err, IOK_DURATION_DEFAULT);
		return;
	}
	for (struct ares_srv_reply *r = reply; r != NULL; r = r->next) {
		if (r->priority < best) {
			best = r->priority;
		}
	}
	for (struct ares_srv_reply *r = reply; r != NULL && n < IK_DISC_MAX; r = r->next) {
		/* "." as the target: the service is decidedly not available. */
		if (r->priority == best && r->port != 0 && strcmp(r->host, ".") != 0 &&
		    r->host[0] != '\0') {
			a[n].host   = r->host;
			a[n].port   = r->port;
			a[n].weight = r->weight;
			n++;
		}
	}
	(void) iok_discovery_update(
	    st->w, a, n, ttl > 86400 ? 86400000 : (iok_duration) ttl * 1000);
	ares_free_data(reply);
}

static void
srv_refresh(void *arg)
{
	srv_state *st = arg;
	if (st->q != NULL) {
		return;
	}
	if ((st->q = ik_resolve_query(
	         ik_disc_watch_servers(st->w), st->name, T_SRV_TYPE, answered, st)) == NULL) {
		iok_discovery_fail(st->w, IOK_ENOMEM, IOK_DURATION_DEFAULT);
	}
}

static int
srv_start(iok_discovery_watch *w, const char *target, void **state)
{
	srv_state *st;
	if (target[0] == '\0' || strchr(target, '/') != NULL || strchr(target, ':') != NULL) {
		return IOK_EADDRINVAL; /* a name, nothing else */
	}
	if ((st = calloc(1, sizeof(*st))) == NULL || (st->name = strdup(target)) == NULL) {
		free(st);
		return IOK_ENOMEM;
	}
	st->w  = w;
	*state = st;
	srv_refresh(st);
	return 0;
}

static void
srv_stop(void *arg)
{
	srv_state *st = arg;
	if (st->q != NULL) {
		ik_resolve_cancel(st->q);
	}
	free(st->name);
	free(st);
}

const iok_discovery_backend ik_disc_backend_srv = {
	.name    = "srv",
	.start   = srv_start,
	.refresh = srv_refresh,
	.stop    = srv_stop,
};
