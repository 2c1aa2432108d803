/*
 * throttle.c - a socket's send-rate limit: a token bucket (send-rate
 * messages per second, send-burst at once) checked by the send pump for
 * each message it hands to the pattern.  When the bucket is empty the
 * message stays in the send queue, which fills, so senders wait (up to
 * their send timeout, then IOK_ETIMEDOUT) or get IOK_EAGAIN exactly as
 * for a full queue; a timer pumps again when the next token is due.
 * Kernel thread only.
 */
#include "sock.h"
#include "stats.h"

static void
rate_cb(void *arg)
{
	ik_sock_pump(arg);
}

bool
ik_throttle_take(ik_sock *s)
{
	uint64_t now, ms;
	if (s->send_rate == 0) {
		return true;
	}
	now = ik_clock_ns();
	if (now > s->tokens_ns) {
		s->tokens += (double) (now - s->tokens_ns) * (double) s->send_rate / 1e9;
		if (s->tokens > (double) s->send_burst) {
			s->tokens = (double) s->send_burst;
		}
		s->tokens_ns = now;
	}
	if (s->tokens >= 1.0) {
		s->tokens -= 1.0;
		return true;
	}
	if (s->rate_timer == NULL && (s->rate_timer = ik_timer_new(rate_cb, s)) == NULL) {
		return true; /* out of memory: better unthrottled than stuck */
	}
	ms = (uint64_t) ((1.0 - s->tokens) * 1000.0 / (double) s->send_rate) + 1; /* rounded up */
	ik_timer_start(s->rate_timer, ms);
	s->stats[IK_STAT_RATE_DELAYS]++;
	return false;
}

void
ik_throttle_set(ik_sock *s, uint32_t rate, uint32_t burst)
{
	s->send_rate  = rate;
	s->send_burst = burst > 0 ? burst : 1;
	s->tokens     = (double) s->send_burst;
	s->tokens_ns  = ik_clock_ns();
	if (rate == 0 && s->rate_timer != NULL) {
		ik_timer_stop(s->rate_timer);
	}
}

void
ik_throttle_fini(ik_sock *s)
{
	if (s->rate_timer != NULL) {
		ik_timer_free(s->rate_timer);
		s->rate_timer = NULL;
	}
}
