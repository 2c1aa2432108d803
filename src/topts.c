/*
 * topts.c - the transport options (ik_tran_opts, ep.h) by name: set and get
 * with the option calls' types and ranges, for sockets, dialers and
 * listeners alike.  Kernel thread.
 */
#include <string.h>

#include "ep.h"

int
ik_topts_set(ik_tran_opts *o, const char *name, const void *v, size_t sz, int type)
{
	iok_duration ms;
	int          rv;
	if (strcmp(name, IOK_OPT_RECVMAXSZ) == 0) {
		return ik_opt_get_size(v, sz, type, 0, (size_t) 1 << 40, &o->recv_max);
	}
	if (strcmp(name, IOK_OPT_RECONNMINT) == 0 || strcmp(name, IOK_OPT_RECONNMAXT) == 0) {
		if ((rv = ik_opt_get_ms(v, sz, type, &ms)) == 0) {
			if (ms < 0) {
				return IOK_EINVAL;
			}
			*(strcmp(name, IOK_OPT_RECONNMINT) == 0 ? &o->reconn_min : &o->reconn_max) =
			    ms;
		}
		return rv;
	}
	if (strcmp(name, IOK_OPT_TCP_NODELAY) == 0) {
		return ik_opt_get_bool(v, sz, type, &o->nodelay);
	}
	if (strcmp(name, IOK_OPT_TCP_KEEPALIVE) == 0) {
		return ik_opt_get_bool(v, sz, type, &o->keepalive);
	}
	if (strcmp(name, IOK_OPT_POOL_SIZE) == 0) {
		return ik_opt_get_int(v, sz, type, 1, 1024, &o->pool);
	}
	if (strcmp(name, IOK_OPT_CONNECT_TIMEOUT) == 0) {
		if ((rv = ik_opt_get_ms(v, sz, type, &ms)) == 0) {
			if (ms == 0 || ms < IOK_DURATION_INFINITE) {
				return IOK_EINVAL;
			}
			o->conn_timeo = ms;
		}
		return rv;
	}
	if (strcmp(name, IOK_OPT_DNS_TTL_MIN) == 0 || strcmp(name, IOK_OPT_DNS_TTL_MAX) == 0) {
		if ((rv = ik_opt_get_ms(v, sz, type, &ms)) == 0) {
			if (ms <= 0) {
				return IOK_EINVAL;
			}
			*(strcmp(name, IOK_OPT_DNS_TTL_MIN) == 0 ? &o->ttl_min : &o->ttl_max) = ms;
		}
		return rv;
	}
	if (strcmp(name, IOK_OPT_HEALTH_INTERVAL) == 0 ||
	    strcmp(name, IOK_OPT_HEALTH_TIMEOUT) == 0 ||
	    strcmp(name, IOK_OPT_HEALTH_EJECT_MS) == 0) {
		bool ivl = strcmp(name, IOK_OPT_HEALTH_INTERVAL) == 0;
		if ((rv = ik_opt_get_ms(v, sz, type, &ms)) == 0) {
			if (ms < 0 || (ms == 0 && !ivl)) {
				return IOK_EINVAL; /* only the interval has an "off" */
			}
			*(ivl                                           ? &o->health_ivl
			    : strcmp(name, IOK_OPT_HEALTH_TIMEOUT) == 0 ? &o->health_timeo
			                                                : &o->eject_ms) = ms;
		}
		return rv;
	}
	if (strcmp(name, IOK_OPT_HEALTH_EJECT_ERRORS) == 0) {
		return ik_opt_get_int(v, sz, type, 0, 1000000, &o->eject_errors);
	}
	if (strcmp(name, IOK_OPT_DNS_SERVERS) == 0) {
		if (type != IK_OPT_STRING) {
			return IOK_EBADTYPE;
		}
		if (sz == 0 || sz > sizeof(o->dns_servers) || memchr(v, '\0', sz) == NULL) {
			return IOK_EINVAL;
		}
		memcpy(o->dns_servers, v, sz);
		return 0;
	}
	return IOK_ENOTSUP;
}

int
ik_topts_get(const ik_tran_opts *o, const char *name, void *v, size_t *sz, int type)
{
	if (strcmp(name, IOK_OPT_RECVMAXSZ) == 0) {
		return ik_opt_put_size(o->recv_max, v, sz, type);
	}
	if (strcmp(name, IOK_OPT_RECONNMINT) == 0) {
		return ik_opt_put_ms(o->reconn_min, v, sz, type);
	}
	if (strcmp(name, IOK_OPT_RECONNMAXT) == 0) {
		return ik_opt_put_ms(o->reconn_max, v, sz, type);
	}
	if (strcmp(name, IOK_OPT_TCP_NODELAY) == 0) {
		return ik_opt_put_bool(o->nodelay, v, sz, type);
	}
	if (strcmp(name, IOK_OPT_TCP_KEEPALIVE) == 0) {
		return ik_opt_put_bool(o->keepalive, v, sz, type);
	}
	if (strcmp(name, IOK_OPT_POOL_SIZE) == 0) {
		return ik_opt_put_int(o->pool, v, sz, type);
	}
	if (strcmp(name, IOK_OPT_CONNECT_TIMEOUT) == 0) {
		return ik_opt_put_ms(o->conn_timeo, v, sz, type);
	}
	if (strcmp(name, IOK_OPT_HEALTH_INTERVAL) == 0) {
		return ik_opt_put_ms(o->health_ivl, v, sz, type);
	}
	if (strcmp(name, IOK_OPT_HEALTH_TIMEOUT) == 0) {
		return ik_opt_put_ms(o->health_timeo, v, sz, type);
	}
	if (strcmp(name, IOK_OPT_HEALTH_EJECT_MS) == 0) {
		return ik_opt_put_ms(o->eject_ms, v, sz, type);
	}
	if (strcmp(name, IOK_OPT_HEALTH_EJECT_ERRORS) == 0) {
		return ik_opt_put_int(o->eject_errors, v, sz, type);
	}
	if (strcmp(name, IOK_OPT_DNS_TTL_MIN) == 0) {
		return ik_opt_put_ms(o->ttl_min, v, sz, type);
	}
	if (strcmp(name, IOK_OPT_DNS_TTL_MAX) == 0) {
		return ik_opt_put_ms(o->ttl_max, v, sz, type);
	}
	if (strcmp(name, IOK_OPT_DNS_SERVERS) == 0) {
		return ik_put_string(o->dns_servers, v, sz, type);
	}
	return IOK_ENOTSUP;
}

int
ik_put_string(const char *str, void *v, size_t *sz, int type)
{
	size_t n = strlen(str) + 1;
	if (type != IK_OPT_STRING && type != IK_OPT_BYTES) {
		return IOK_EBADTYPE;
	}
	memcpy(v, str, n < *sz ? n : *sz);
	*sz = n;
	return 0;
}
