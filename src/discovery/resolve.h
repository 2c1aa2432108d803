/*
 * resolve.h - DNS on the kernel loop with c-ares: nothing blocks the kernel
 * thread, and there is no getaddrinfo anywhere.  One c-ares channel per
 * distinct server list (a dialer's dns:servers option, else IOK_DNS_SERVERS,
 * else the system's resolv.conf).  Kernel thread only.
 */
#ifndef IK_RESOLVE_H
#define IK_RESOLVE_H

#include <stdint.h>
#include <sys/socket.h>

#define IK_RESOLVE_MAX 16 /* addresses kept per name */

typedef struct ik_resolve ik_resolve;
/* cb gets 0, the addresses (port filled in) and the smallest TTL of the
 * answer in seconds, or an IOK_E* error. */
typedef void (*ik_resolve_cb)(
    void *arg, int err, const struct sockaddr_storage *addrs, int n, uint32_t ttl);
/* A raw answer (the whole DNS message), for record types c-ares's
 * getaddrinfo does not cover (SRV). */
typedef void (*ik_query_cb)(void *arg, int err, const uint8_t *msg, int len);

/* ik_resolve_numeric fills *out if host is an IP literal (or "" with
 * passive, meaning "any address"); returns 0, or IOK_ENOENT if host is a
 * name that needs resolving, IOK_EADDRINVAL if it cannot be used with
 * family. */
int ik_resolve_numeric(
    const char *host, uint16_t port, int family, int passive, struct sockaddr_storage *out);

/* ik_resolve_start looks host up asynchronously (family AF_UNSPEC,
 * AF_INET or AF_INET6) through the servers given ("host:port,..."; NULL or
 * "" for the process default); cb runs later on the kernel thread, never
 * from inside this call.  NULL if out of memory or servers is malformed. */
ik_resolve *ik_resolve_start(
    const char *servers, const char *host, uint16_t port, int family, ik_resolve_cb cb, void *arg);
/* ik_resolve_query asks for records of class IN and the given type. */
ik_resolve *ik_resolve_query(
    const char *servers, const char *name, int type, ik_query_cb cb, void *arg);
/* ik_resolve_cancel: cb will not be called. */
void ik_resolve_cancel(ik_resolve *r);

#endif
