/*
 * reqrep.c - the SP request/reply helpers REQ, REP/RESPONDENT and SURVEYOR
 * share (reqrep.h).
 *
 * Wire format (as nng): a message's SP header is a backtrace of 32-bit
 * big-endian words.  The last word is the request (or survey) id and has
 * its high bit set; the words before it are pipe ids that devices pushed
 * on the way (high bit clear).  A receiver reads at most ttl-max words; a
 * longer backtrace is dropped (stat:rx-dropped), one that ends before its
 * id word is malformed (stat:rx-malformed).  Either way only the message
 * goes: the connection and the socket keep serving.
 */
#include <sys/random.h>
#include <unistd.h>

#include "reqrep.h"

/* Move the backtrace from the front of m's body to the end of its header:
 * words up to and including the first with the high bit set, at most ttl
 * of them (nng's rule: a message with more hops is dropped, one that ends
 * early is malformed). */
int
ik_rr_bt_parse(iok_msg *m, int ttl)
{
	for (int hops = 0;; hops++) {
		if (hops >= ttl) {
			return IK_RR_BT_HOPS;
		}
		if (m->len < 4) {
			return IK_RR_BT_SHORT;
		}
		uint32_t w = ik_get_u32(m->body);
		if (iok_msg_header_append(m, m->body, 4) != 0) {
			return IK_RR_BT_HOPS; /* cannot happen: ttl-max <= 15 */
		}
		(void) iok_msg_trim(m, 4);
		if (w & 0x80000000u) {
			return IK_RR_BT_OK;
		}
	}
}

bool
ik_rr_reply_parse(ik_sock *sock, iok_msg *m, bool raw)
{
	if (m->flags & IK_MSG_PARSED) {
		return true; /* offered before, refused, offered again */
	}
	iok_msg_header_clear(m);
	if (raw) {
		int rv = ik_rr_bt_parse(m, ik_sock_max_ttl(sock));
		if (rv != IK_RR_BT_OK) {
			iok_msg_free(m);
			ik_sock_stat(sock,
			    rv == IK_RR_BT_HOPS ? IK_STAT_RX_DROPPED : IK_STAT_RX_MALFORMED, 1);
			return false;
		}
	} else {
		if (m->len < 4 || !(ik_get_u32(m->body) & 0x80000000u)) {
			iok_msg_free(m);
			ik_sock_stat(sock, IK_STAT_RX_MALFORMED, 1);
			return false;
		}
		(void) iok_msg_header_append(m, m->body, 4);
		(void) iok_msg_trim(m, 4);
	}
	m->flags = IK_MSG_PARSED;
	return true;
}

/* A random 32-bit start for id counters, so ids from a restarted process
 * do not collide with its predecessor's late replies (as nng). */
uint32_t
ik_rr_seed(const void *salt)
{
	uint32_t v = 0;
	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t) sizeof(v)) {
		uint64_t x =
		    (uint64_t) (uintptr_t) salt ^ ((uint64_t) getpid() << 32) ^ ik_now_ms();
		x ^= x >> 33;
		x *= 0xff51afd7ed558ccdULL;
		x ^= x >> 33;
		v = (uint32_t) x;
	}
	return v;
}

/* A message leaving for a pipe carries only header and body: none of the
 * routing facts it had on this side (a received message a device forwards
 * still says IK_MSG_PARSED). */
void
ik_rr_clean(iok_msg *m)
{
	m->flags  = 0;
	m->token  = 0;
	m->status = 0;
}
