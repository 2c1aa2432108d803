/*
 * reqrep.h - what REQ (req.c), REP/RESPONDENT (rep.c) and SURVEYOR
 * (survey.c) share: the SP backtrace and request ids (reqrep.c).
 */
#ifndef IK_REQREP_H
#define IK_REQREP_H

#include <stdbool.h>
#include <stdint.h>

#include "pattern.h"

/* ik_rr_bt_parse results. */
#define IK_RR_BT_OK 0
#define IK_RR_BT_SHORT 1 /* ended before its id word: malformed */
#define IK_RR_BT_HOPS 2  /* more than ttl-max words */

/* ik_rr_bt_parse moves the backtrace from the front of m's body to the end
 * of its header: words up to and including the first with the high bit
 * set, at most ttl of them.  IK_RR_BT_*. */
int ik_rr_bt_parse(iok_msg *m, int ttl);
/* ik_rr_reply_parse readies a reply (req) or a response (surveyor) that
 * arrived on sock, once: raw sockets keep the whole backtrace, cooked ones
 * the id word alone (a reply to us has no hops left).  False if m was not
 * one (freed, counted as dropped or malformed). */
bool ik_rr_reply_parse(ik_sock *sock, iok_msg *m, bool raw);
/* ik_rr_seed: a random 32-bit start for id counters (salt: used only if
 * the system has no randomness to give). */
uint32_t ik_rr_seed(const void *salt);
/* ik_rr_clean strips the routing facts (flags, token, status) from a
 * message leaving for a pipe. */
void ik_rr_clean(iok_msg *m);

#endif /* IK_REQREP_H */
