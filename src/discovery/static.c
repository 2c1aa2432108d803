/*
 * static.c - a fixed list of addresses ("h1:p1,h2:p2", libpq's comma
 * form).  Names in it are resolved and followed by the core, so a single
 * name ("tcp://svc:5555") is this backend too.
 */
#include <stdlib.h>

#include "discovery.h"

static int
static_start(iok_discovery_watch *w, const char *target, void **state)
{
	iok_discovery_addr a[IK_DISC_MAX];
	char              *storage = NULL;
	int                n       = ik_disc_parse_list(target, a, IK_DISC_MAX, &storage);
	int                rv;
	if (n < 0) {
		return -n;
	}
	rv = iok_discovery_update(w, a, n, IOK_DURATION_INFINITE);
	free(storage);
	*state = NULL;
	return rv;
}

static void
static_stop(void *state)
{
	(void) state;
}

const iok_discovery_backend ik_disc_backend_static = {
	.name  = "static",
	.start = static_start,
	.stop  = static_stop,
};
