/*
 * registry.c - patterns and transports by name.  The built-in lists live
 * in patterns/all.c and transports/all.c, so adding one touches only its
 * own directory.
 */
#include <pthread.h>
#include <string.h>

#include "ep.h"
#include "discovery/discovery.h"

#define MAX_PATTERNS 64

void                             ik_patterns_builtin(void);
extern const ik_transport *const ik_transports_builtin[];

static struct {
	char              name[32];
	const ik_pattern *pat;
} patterns[MAX_PATTERNS];
static int             npatterns;
static pthread_mutex_t reg_mu       = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t  builtin_once = PTHREAD_ONCE_INIT;

static int
add_name(const char *name, const ik_pattern *p)
{
	for (int i = 0; i < npatterns; i++) {
		if (strcmp(patterns[i].name, name) == 0) {
			return IOK_EEXIST;
		}
	}
	if (npatterns == MAX_PATTERNS || strlen(name) >= sizeof(patterns[0].name)) {
		return IOK_ENOSPC;
	}
	strcpy(patterns[npatterns].name, name);
	patterns[npatterns++].pat = p;
	return 0;
}

int
ik_pattern_register(const ik_pattern *p)
{
	int rv;
	pthread_mutex_lock(&reg_mu);
	rv = add_name(p->name, p);
	if (rv == 0) {
		/* "push0" is also "push"; a later pattern may claim the alias. */
		size_t n = strlen(p->name);
		if (n > 1 && p->name[n - 1] >= '0' && p->name[n - 1] <= '9') {
			char alias[32];
			memcpy(alias, p->name, n - 1);
			alias[n - 1] = '\0';
			(void) add_name(alias, p);
		}
	}
	pthread_mutex_unlock(&reg_mu);
	return rv;
}

/* Aliases that do not follow the strip-the-digit rule. */
void
ik_pattern_alias(const char *alias, const char *name)
{
	pthread_mutex_lock(&reg_mu);
	for (int i = 0; i < npatterns; i++) {
		if (strcmp(patterns[i].name, alias) == 0) {
			patterns[i].pat = NULL; /* re-pointed below */
			for (int j = 0; j < npatterns; j++) {
				if (strcmp(patterns[j].name, name) == 0) {
					patterns[i].pat = patterns[j].pat;
				}
			}
			pthread_mutex_unlock(&reg_mu);
			return;
		}
	}
	for (int j = 0; j < npatterns; j++) {
		if (strcmp(patterns[j].name, name) == 0) {
			(void) add_name(alias, patterns[j].pat);
			break;
		}
	}
	pthread_mutex_unlock(&reg_mu);
}

const ik_pattern *
ik_pattern_find(const char *name)
{
	const ik_pattern *p = NULL;
	pthread_once(&builtin_once, ik_patterns_builtin);
	if (name == NULL) {
		return NULL;
	}
	pthread_mutex_lock(&reg_mu);
	for (int i = 0; i < npatterns; i++) {
		if (strcmp(patterns[i].name, name) == 0) {
			p = patterns[i].pat;
			break;
		}
	}
	pthread_mutex_unlock(&reg_mu);
	return p;
}

const ik_transport *
ik_transport_find(const char *scheme)
{
	for (int i = 0; ik_transports_builtin[i] != NULL; i++) {
		if (strcmp(ik_transports_builtin[i]->scheme, scheme) == 0) {
			return ik_transports_builtin[i];
		}
	}
	return NULL;
}

/* ------------------------------------------------- discovery backends */

#define MAX_DISC_USER 16

static const iok_discovery_backend *disc_user[MAX_DISC_USER];
static int                          ndisc_user;

static const iok_discovery_backend *const disc_builtin[] = {
	&ik_disc_backend_static,
	&ik_disc_backend_dns,
	&ik_disc_backend_srv,
	&ik_disc_backend_file,
#ifdef IOK_HAVE_ZOOKEEPER
	&ik_disc_backend_zk,
#endif
};

static const iok_discovery_backend *
disc_find_locked(const char *name)
{
	for (size_t i = 0; i < sizeof(disc_builtin) / sizeof(disc_builtin[0]); i++) {
		if (strcmp(disc_builtin[i]->name, name) == 0) {
			return disc_builtin[i];
		}
	}
	for (int i = 0; i < ndisc_user; i++) {
		if (strcmp(disc_user[i]->name, name) == 0) {
			return disc_user[i];
		}
	}
	return NULL;
}

const iok_discovery_backend *
ik_disc_backend_find(const char *name)
{
	const iok_discovery_backend *b;
	pthread_mutex_lock(&reg_mu);
	b = disc_find_locked(name);
	pthread_mutex_unlock(&reg_mu);
	return b;
}

int
iok_discovery_register(const iok_discovery_backend *b)
{
	int rv = 0;
	if (b == NULL || b->name == NULL || b->start == NULL || b->stop == NULL ||
	    b->name[0] == '\0' || strlen(b->name) > 31) {
		return IOK_EINVAL;
	}
	for (const char *c = b->name; *c; c++) {
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-')) {
			return IOK_EINVAL; /* it is part of a URL scheme */
		}
	}
	pthread_mutex_lock(&reg_mu);
	if (disc_find_locked(b->name) != NULL) {
		rv = IOK_EEXIST;
	} else if (ndisc_user == MAX_DISC_USER) {
		rv = IOK_ENOSPC;
	} else {
		disc_user[ndisc_user++] = b;
	}
	pthread_mutex_unlock(&reg_mu);
	return rv;
}
