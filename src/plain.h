/*
 * plain.h - app-side hooks (ik_app_hooks) for the nng-style plain use of
 * request/reply patterns: iok_send/iok_recv with no tokens, one request at
 * a time (req, surveyor, pipelined-db) or answering the last request
 * received (rep, respondent).  Called by the core on application threads,
 * under the socket's lock (rep's receive hook: under take_mu).
 */
#ifndef IK_PLAIN_H
#define IK_PLAIN_H

#include "../patterns/pattern.h"

/* A plain request replaces the previous one (its queued replies are
 * stale); a receive with none outstanding is IOK_ESTATE, as nng's, once a
 * plain request was ever sent (before that it waits, so a receiver thread
 * may start first).  iok_request turns all of it off for the socket. */
extern const ik_app_hooks ik_plain_request;
/* The same, for patterns whose request gets many replies ended by a status
 * completion (surveyor): only that completion ends the request. */
extern const ik_app_hooks ik_plain_request_multi;
/* A plain send answers the last request received (IOK_ESTATE if none). */
extern const ik_app_hooks ik_plain_reply;

#endif /* IK_PLAIN_H */
