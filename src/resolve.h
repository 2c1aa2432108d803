/*
 * resolve.h - name resolution on the kernel loop with c-ares: nothing
 * blocks the kernel thread, and there is no getaddrinfo anywhere.
 * Kernel thread only.
 */
#ifndef IK_RESOLVE_H
#define IK_RESOLVE_H

#include <stdint.h>
#include <sys/socket.h>

#define IK_RESOLVE_MAX 16 /* addresses kept per name */

typedef struct ik_resolve ik_resolve;
/* cb gets 0 and the addresses (port filled in), or an IOK_E* error. */
typedef void (*ik_resolve_cb)(void *arg, int err, const struct sockaddr_storage *addrs, int n);

/* ik_resolve_numeric fills *out if host is an IP literal (or "" with
 * passive, meaning "any address"); returns 0, or IOK_ENOENT if host is a
 * name that needs resolving, IOK_EADDRINVAL if it cannot be used with
 * family. */
int ik_resolve_numeric(const char *host, uint16_t port, int family, int passive,
    struct sockaddr_storage *out);

/* ik_resolve_start looks host up asynchronously (family AF_UNSPEC,
 * AF_INET or AF_INET6); cb runs later on the kernel thread, never from
 * inside this call.  NULL if out of memory. */
ik_resolve *ik_resolve_start(const char *host, uint16_t port, int family, ik_resolve_cb cb, void *arg);
/* ik_resolve_cancel: cb will not be called. */
void ik_resolve_cancel(ik_resolve *r);

#endif
