/*
 * test_pubsub.c - pub0/sub0 over inproc, ipc and tcp: subscriptions
 * (prefixes, empty prefix, overlaps, unsubscribe, many topics against a
 * brute-force matcher), fan-out to many subscribers, slow and stalled
 * subscribers (never blocking the publisher or the others, drops counted,
 * memory bounded), prefnew, raw sockets and a pub/sub device.
 *
 * Nothing here sleeps to synchronise: tests wait on statistics or receive
 * with a timeout that only bounds a failure.  Absence of a message is
 * shown by order: a later message that must arrive arrives first.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

#define T_MS 10000 /* bounds a failure; success never waits for it */

enum { T_INPROC, T_IPC, T_TCP, T_COUNT };
static const char *const tnames[T_COUNT] = { "inproc", "ipc", "tcp" };

/* Listen on a fresh address of transport t and put the URL to dial in
 * url; returns the TCP port for tcp. */
static int
listen_on(iok_socket s, int t, char *url, size_t cap)
{
	static int   seq;
	iok_listener l;
	int          port = 0;
	switch (t) {
	case T_INPROC:
		snprintf(url, cap, "inproc://pubsub-%d-%d", (int) getpid(), seq++);
		IOK_OK(iok_listen(s, url, NULL, 0));
		break;
	case T_IPC:
		snprintf(url, cap, "%s", tu_ipc_url("ps"));
		IOK_OK(iok_listen(s, url, NULL, 0));
		break;
	default:
		IOK_OK(iok_listen(s, "tcp://127.0.0.1:0", &l, 0));
		IOK_OK(iok_listener_get_int(l, IOK_OPT_TCP_BOUND_PORT, &port));
		snprintf(url, cap, "tcp://127.0.0.1:%d", port);
		break;
	}
	return port;
}

static void
wait_pipes(iok_socket s, uint64_t n)
{
	if (!tu_wait_stat(s, "stat:pipes", n, T_MS)) {
		fail_msg("socket never got %d pipes", (int) n);
	}
}

static void
sub_str(iok_socket s, const char *topic)
{
	IOK_OK(iok_socket_set(s, IOK_OPT_SUB_SUBSCRIBE, topic, strlen(topic)));
}

static void
unsub_str(iok_socket s, const char *topic)
{
	IOK_OK(iok_socket_set(s, IOK_OPT_SUB_UNSUBSCRIBE, topic, strlen(topic)));
}

static void
pub_str(iok_socket s, const char *str)
{
	IOK_OK(iok_send(s, str, strlen(str), 0));
}

/* The next message must be exactly want. */
static void
expect(iok_socket s, const char *want)
{
	char buf[512];
	int  rv = tu_recv_str(s, buf, sizeof(buf), T_MS);
	if (rv != 0) {
		fail_msg("waiting for '%s': %s", want, iok_strerror(rv));
	}
	if (strcmp(buf, want) != 0) {
		fail_msg("got '%s', want '%s'", buf, want);
	}
}

static void
expect_none_now(iok_socket s)
{
	char   buf[64];
	size_t len = sizeof(buf);
	assert_int_equal(iok_recv(s, buf, &len, IOK_FLAG_NONBLOCK), IOK_EAGAIN);
}

static void
pair_up(int t, iok_socket *pub, iok_socket *sub)
{
	char url[256];
	IOK_OK(iok_pub0_open(pub));
	IOK_OK(iok_sub0_open(sub));
	listen_on(*pub, t, url, sizeof(url));
	IOK_OK(iok_dial(*sub, url, NULL, IOK_FLAG_NONBLOCK));
	wait_pipes(*pub, 1);
	wait_pipes(*sub, 1);
}

/* ------------------------------------------------------------ options */

static void
test_options(void **state)
{
	(void) state;
	iok_socket pub, sub, rsub, rpub;
	int        v;
	bool       b;
	uint64_t   u;
	size_t     sz = 4;
	char       buf[4];

	IOK_OK(iok_pub0_open(&pub));
	IOK_OK(iok_sub0_open(&sub));
	IOK_OK(iok_sub0_open_raw(&rsub));
	IOK_OK(iok_pub0_open_raw(&rpub));

	IOK_OK(iok_socket_get_int(pub, IOK_OPT_PROTO, &v));
	assert_int_equal(v, 0x20);
	IOK_OK(iok_socket_get_int(pub, IOK_OPT_PEER, &v));
	assert_int_equal(v, 0x21);
	IOK_OK(iok_socket_get_int(sub, IOK_OPT_PROTO, &v));
	assert_int_equal(v, 0x21);
	IOK_OK(iok_socket_get_int(sub, IOK_OPT_PEER, &v));
	assert_int_equal(v, 0x20);
	IOK_OK(iok_socket_get_bool(rsub, IOK_OPT_RAW, &b));
	assert_true(b);
	IOK_OK(iok_socket_get_bool(rpub, IOK_OPT_RAW, &b));
	assert_true(b);

	/* pub queue: default 16, range 1..2^20; drop-oldest default on. */
	IOK_OK(iok_socket_get_int(pub, "pub:queue-length", &v));
	assert_int_equal(v, 16);
	IOK_OK(iok_socket_set_int(pub, "pub:queue-length", 4));
	IOK_OK(iok_socket_get_int(pub, "pub:queue-length", &v));
	assert_int_equal(v, 4);
	assert_int_equal(iok_socket_set_int(pub, "pub:queue-length", 0), IOK_EINVAL);
	assert_int_equal(iok_socket_set_int(pub, "pub:queue-length", (1 << 20) + 1), IOK_EINVAL);
	IOK_OK(iok_socket_get_bool(pub, "pub:drop-oldest", &b));
	assert_true(b);
	IOK_OK(iok_socket_set_bool(pub, "pub:drop-oldest", 0));
	IOK_OK(iok_socket_get_bool(pub, "pub:drop-oldest", &b));
	assert_false(b);
	assert_int_equal(iok_socket_set_string(pub, "pub:drop-oldest", "yes"), IOK_EBADTYPE);

	/* sub: prefnew true by default (nng), false on raw (nng's xsub). */
	IOK_OK(iok_socket_get_bool(sub, IOK_OPT_SUB_PREFNEW, &b));
	assert_true(b);
	IOK_OK(iok_socket_get_bool(rsub, IOK_OPT_SUB_PREFNEW, &b));
	assert_false(b);
	IOK_OK(iok_socket_set_bool(sub, IOK_OPT_SUB_PREFNEW, 0));
	IOK_OK(iok_socket_get_bool(sub, IOK_OPT_SUB_PREFNEW, &b));
	assert_false(b);

	/* subscribe: bytes or string; write-only; other types refused. */
	IOK_OK(iok_socket_set(sub, IOK_OPT_SUB_SUBSCRIBE, "", 0));
	IOK_OK(iok_socket_set(sub, IOK_OPT_SUB_SUBSCRIBE, NULL, 0));
	IOK_OK(iok_socket_set_string(sub, IOK_OPT_SUB_SUBSCRIBE, "abc"));
	IOK_OK(iok_socket_set(sub, IOK_OPT_SUB_SUBSCRIBE, "abc", 3)); /* again: fine */
	IOK_OK(iok_socket_set(sub, IOK_OPT_SUB_UNSUBSCRIBE, "abc", 3));
	assert_int_equal(iok_socket_set_string(sub, IOK_OPT_SUB_UNSUBSCRIBE, "abc"), IOK_ENOENT);
	assert_int_equal(iok_socket_set_int(sub, IOK_OPT_SUB_SUBSCRIBE, 1), IOK_EBADTYPE);
	assert_int_equal(iok_socket_get(sub, IOK_OPT_SUB_SUBSCRIBE, buf, &sz), IOK_EWRITEONLY);
	IOK_OK(iok_socket_get_uint64(sub, "sub:filtered", &u));
	assert_int_equal(u, 0);
	assert_int_equal(iok_socket_set_uint64(sub, "sub:filtered", 1), IOK_EREADONLY);
	/* Raw sub does not filter, so it has no subscriptions (as nng). */
	assert_int_equal(iok_socket_set(rsub, IOK_OPT_SUB_SUBSCRIBE, "", 0), IOK_ENOTSUP);

	/* Directions. */
	assert_int_equal(iok_send(sub, "x", 1, 0), IOK_ENOTSUP);
	sz = sizeof(buf);
	assert_int_equal(iok_recv(pub, buf, &sz, IOK_FLAG_NONBLOCK), IOK_ENOTSUP);
	/* By name too, with and without the version. */
	iok_socket s2;
	IOK_OK(iok_socket_open(&s2, "pub"));
	IOK_OK(iok_close(s2));
	IOK_OK(iok_socket_open(&s2, "sub"));
	IOK_OK(iok_close(s2));

	IOK_OK(iok_close(pub));
	IOK_OK(iok_close(sub));
	IOK_OK(iok_close(rsub));
	IOK_OK(iok_close(rpub));
}

/* ------------------------------------------------------ subscriptions */

static void
subscriptions_on(int t)
{
	iok_socket pub, sub;
	uint64_t   filtered;
	pair_up(t, &pub, &sub);

	/* No subscription: nothing arrives (sub:filtered counts them). */
	pub_str(pub, "nothing");
	sub_str(sub, "a");
	pub_str(pub, "apple");
	pub_str(pub, "banana");
	pub_str(pub, "");
	pub_str(pub, "avocado");
	pub_str(pub, "a");
	expect(sub, "apple");
	expect(sub, "avocado"); /* banana and "" were filtered */
	expect(sub, "a");

	/* Unsubscribe; a different topic. */
	unsub_str(sub, "a");
	sub_str(sub, "b");
	pub_str(pub, "apple");
	pub_str(pub, "banana");
	expect(sub, "banana");

	/* Overlapping prefixes: delivered once, whichever match. */
	sub_str(sub, "ab");
	sub_str(sub, "abc");
	sub_str(sub, "a");
	pub_str(pub, "abcd");
	pub_str(pub, "abx");
	pub_str(pub, "ax");
	pub_str(pub, "b-end");
	expect(sub, "abcd");
	expect(sub, "abx");
	expect(sub, "ax");
	expect(sub, "b-end");
	unsub_str(sub, "a"); /* "ab" and "abc" still match their extensions */
	pub_str(pub, "ax");
	pub_str(pub, "abx");
	pub_str(pub, "abcx");
	pub_str(pub, "b-end");
	expect(sub, "abx");
	expect(sub, "abcx");
	expect(sub, "b-end");
	unsub_str(sub, "ab");
	pub_str(pub, "abx");
	pub_str(pub, "abcx");
	pub_str(pub, "b-end");
	expect(sub, "abcx");
	expect(sub, "b-end");

	/* Empty prefix: everything, including empty messages. */
	sub_str(sub, "");
	pub_str(pub, "zzz");
	pub_str(pub, "");
	pub_str(pub, "abcx");
	expect(sub, "zzz");
	expect(sub, "");
	expect(sub, "abcx"); /* once, though "abc" matches too */
	unsub_str(sub, "");
	pub_str(pub, "zzz");
	pub_str(pub, "b-end");
	expect(sub, "b-end");

	/* Binary topics with NULs, and a topic longer than the message. */
	IOK_OK(iok_socket_set(sub, IOK_OPT_SUB_SUBSCRIBE, "\0\1", 2));
	IOK_OK(iok_send(pub, "\0", 1, 0));
	IOK_OK(iok_send(pub, "\0\1\2", 3, 0));
	{
		iok_msg *m;
		IOK_OK(iok_socket_set_ms(sub, IOK_OPT_RECVTIMEO, T_MS));
		IOK_OK(iok_recvmsg(sub, &m, 0));
		assert_int_equal(iok_msg_len(m), 3);
		assert_memory_equal(iok_msg_body(m), "\0\1\2", 3);
		iok_msg_free(m);
	}
	expect_none_now(sub);

	IOK_OK(iok_socket_get_uint64(sub, "sub:filtered", &filtered));
	/* nothing, banana, "", apple, ax, abx, zzz, "\0" */
	assert_int_equal(filtered, 8);
	assert_int_equal(tu_stat(sub, "stat:rx-dropped"), 0);
	assert_int_equal(tu_stat(pub, "stat:tx-dropped"), 0);
	IOK_OK(iok_close(sub));
	IOK_OK(iok_close(pub));
}

static void
test_subscriptions(void **state)
{
	(void) state;
	for (int t = 0; t < T_COUNT; t++) {
		print_message("  %s\n", tnames[t]);
		subscriptions_on(t);
	}
}

/* Many overlapping topics, subscribed and unsubscribed at random, checked
 * message by message against a brute-force matcher. */
static uint32_t rng = 12345;
static uint32_t
rnd(void)
{
	rng = rng * 1103515245u + 12345u;
	return rng >> 8;
}

#define NTOPICS 10000
#define NMSGS 1000
static char topics[NTOPICS][16];
static int  subscribed[NTOPICS];
static int  ntopics;

static void
rand_str(char *out, int minlen, int maxlen)
{
	int len = minlen + (int) (rnd() % (unsigned) (maxlen - minlen + 1));
	for (int i = 0; i < len; i++) {
		out[i] = "abcdefghij"[rnd() % 10]; /* short topics overlap a lot */
	}
	out[len] = '\0';
}

static int
cmp_topic(const void *a, const void *b)
{
	return strcmp(a, b);
}

static int
brute_match(const char *msg)
{
	for (int i = 0; i < ntopics; i++) {
		if (subscribed[i] && strncmp(topics[i], msg, strlen(topics[i])) == 0) {
			return 1;
		}
	}
	return 0;
}

static void
test_many_topics(void **state)
{
	(void) state;
	iok_socket  pub, sub;
	char        msg[32];
	int         total = 0, nsub = 0;
	static char want[NMSGS][32];

	pair_up(T_INPROC, &pub, &sub);
	IOK_OK(iok_socket_set_int(sub, IOK_OPT_RECVBUF, 4096));
	/* Distinct topics (the model is a set, as subscriptions are). */
	for (int i = 0; i < NTOPICS; i++) {
		rand_str(topics[i], i % 200 == 0 ? 2 : 3, 12);
	}
	qsort(topics, NTOPICS, sizeof(topics[0]), cmp_topic);
	ntopics = 0;
	for (int i = 0; i < NTOPICS; i++) {
		if (ntopics == 0 || strcmp(topics[ntopics - 1], topics[i]) != 0) {
			memmove(topics[ntopics++], topics[i], sizeof(topics[0]));
		}
	}
	/* Subscribe in random order, not sorted order. */
	for (int round = 0; round < 4; round++) {
		for (int i = 0; i < ntopics; i++) {
			int k = (int) (rnd() % (unsigned) ntopics);
			if (rnd() % 3 != 0) {
				continue;
			}
			if (subscribed[k]) {
				unsub_str(sub, topics[k]);
				nsub--;
			} else {
				sub_str(sub, topics[k]);
				nsub++;
			}
			subscribed[k] = !subscribed[k];
		}
		int nwant = 0;
		for (int k = 0; k < NMSGS; k++) {
			rand_str(msg, 0, 15);
			pub_str(pub, msg);
			if (brute_match(msg)) {
				snprintf(want[nwant++], sizeof(want[0]), "%s", msg);
			}
		}
		sub_str(sub, "END");
		pub_str(pub, "END");
		for (int k = 0; k < nwant; k++) {
			expect(sub, want[k]);
		}
		expect(sub, "END"); /* and nothing that should have been filtered */
		unsub_str(sub, "END");
		print_message("  round %d: %d subscriptions, %d of %d messages matched\n", round,
		    nsub, nwant, NMSGS);
		assert_true(nwant > NMSGS / 10 && nwant < NMSGS - NMSGS / 10); /* a real mix */
		total += nwant;
	}
	assert_int_equal(tu_stat(sub, "stat:rx-dropped"), 0);
	uint64_t filtered;
	IOK_OK(iok_socket_get_uint64(sub, "sub:filtered", &filtered));
	assert_int_equal(filtered, 4 * NMSGS - total);
	IOK_OK(iok_close(sub));
	IOK_OK(iok_close(pub));
}

/* ---------------------------------------------------------- fan-out */

#define NSUBS 8
#define PER_TOPIC 100

static void
eight_subscribers_on(int t)
{
	iok_socket pub, subs[NSUBS], all;
	char       url[256], topic[16], msg[64];

	IOK_OK(iok_pub0_open(&pub));
	listen_on(pub, t, url, sizeof(url));
	for (int i = 0; i < NSUBS; i++) {
		IOK_OK(iok_sub0_open(&subs[i]));
		snprintf(topic, sizeof(topic), "t%d/", i);
		sub_str(subs[i], topic);
		if (i == 3) {
			sub_str(subs[i], "t3/"); /* twice: still once per message */
			sub_str(subs[i], "t3/x");
		}
		IOK_OK(iok_dial(subs[i], url, NULL, IOK_FLAG_NONBLOCK));
	}
	IOK_OK(iok_sub0_open(&all));
	IOK_OK(iok_socket_set_int(all, IOK_OPT_RECVBUF, 4096));
	sub_str(all, "");
	IOK_OK(iok_dial(all, url, NULL, IOK_FLAG_NONBLOCK));
	wait_pipes(pub, NSUBS + 1);
	for (int i = 0; i < NSUBS; i++) {
		wait_pipes(subs[i], 1);
	}
	wait_pipes(all, 1);

	for (int k = 0; k < PER_TOPIC; k++) {
		for (int i = 0; i < NSUBS; i++) {
			snprintf(msg, sizeof(msg), "t%d/%d", i, k);
			pub_str(pub, msg);
		}
		pub_str(pub, "t8/nobody"); /* only `all` wants this */
	}
	for (int i = 0; i < NSUBS; i++) {
		snprintf(msg, sizeof(msg), "t%d/end", i);
		pub_str(pub, msg);
	}
	for (int i = 0; i < NSUBS; i++) {
		for (int k = 0; k < PER_TOPIC; k++) {
			snprintf(msg, sizeof(msg), "t%d/%d", i, k);
			expect(subs[i], msg);
		}
		snprintf(msg, sizeof(msg), "t%d/end", i);
		expect(subs[i], msg); /* nothing else came in between */
		expect_none_now(subs[i]);
	}
	for (int k = 0; k < PER_TOPIC; k++) {
		for (int i = 0; i < NSUBS; i++) {
			snprintf(msg, sizeof(msg), "t%d/%d", i, k);
			expect(all, msg);
		}
		expect(all, "t8/nobody");
	}
	for (int i = 0; i < NSUBS; i++) {
		snprintf(msg, sizeof(msg), "t%d/end", i);
		expect(all, msg);
	}
	assert_int_equal(tu_stat(pub, "stat:tx-dropped"), 0);
	assert_int_equal(tu_stat(pub, "stat:tx-msgs"), PER_TOPIC * (NSUBS + 1) + NSUBS);
	for (int i = 0; i < NSUBS; i++) {
		assert_int_equal(tu_stat(subs[i], "stat:rx-msgs"), PER_TOPIC + 1);
		IOK_OK(iok_close(subs[i]));
	}
	IOK_OK(iok_close(all));
	IOK_OK(iok_close(pub));
}

static void
test_eight_subscribers(void **state)
{
	(void) state;
	for (int t = 0; t < T_COUNT; t++) {
		print_message("  %s\n", tnames[t]);
		eight_subscribers_on(t);
	}
}

/* ----------------------------------------------- slow subscribers */

#define NFAST 3
#define FAST_BUF 16
#define SLOW_BUF 4
#define TOTAL 100000

static void
fmt_seq(char *out, size_t cap, int seq)
{
	snprintf(out, cap, "m%08d", seq);
}

/* Publish TOTAL messages in rounds of FAST_BUF; after each round every
 * fast subscriber must have received the whole round, in order (each has
 * room for exactly one round, so any loss on the way would show). */
static void
publish_paced(iok_socket pub, iok_socket *fast, int nfast, size_t pad)
{
	char msg[256], want[32];
	memset(msg, '.', sizeof(msg));
	for (int i = 0; i < nfast; i++) {
		IOK_OK(iok_socket_set_ms(fast[i], IOK_OPT_RECVTIMEO, T_MS));
	}
	for (int base = 0; base < TOTAL; base += FAST_BUF) {
		for (int k = base; k < base + FAST_BUF; k++) {
			char head[16];
			fmt_seq(head, sizeof(head), k);
			memcpy(msg, head, 9);
			IOK_OK(iok_send(pub, msg, 9 + pad, 0));
		}
		for (int i = 0; i < nfast; i++) {
			for (int k = base; k < base + FAST_BUF; k++) {
				char   got[256];
				size_t len = sizeof(got);
				IOK_OK(iok_recv(fast[i], got, &len, 0));
				fmt_seq(want, sizeof(want), k);
				if (len != 9 + pad || memcmp(got, want, 9) != 0) {
					fail_msg(
					    "fast subscriber %d: got %.9s, want %s", i, got, want);
				}
			}
		}
	}
}

struct drop_sum {
	iok_socket pub, slow;
	uint64_t   want;
};

static int
drops_reach(void *arg)
{
	struct drop_sum *d = arg;
	return tu_stat(d->pub, "stat:tx-dropped") + tu_stat(d->slow, "stat:rx-dropped") >= d->want;
}

/* An iok subscriber that never reads, with a tiny receive queue: its
 * queue overflows at the subscriber (never pushing back on the pipe), the
 * publisher and the fast subscribers carry on, and the losses add up
 * exactly. */
static void
slow_subscriber_on(int t)
{
	iok_socket pub, slow, fast[NFAST];
	char       url[256], want[32];

	IOK_OK(iok_pub0_open(&pub));
	listen_on(pub, t, url, sizeof(url));
	for (int i = 0; i < NFAST; i++) {
		IOK_OK(iok_sub0_open(&fast[i]));
		IOK_OK(iok_socket_set_int(fast[i], IOK_OPT_RECVBUF, FAST_BUF));
		sub_str(fast[i], "m");
		IOK_OK(iok_dial(fast[i], url, NULL, IOK_FLAG_NONBLOCK));
	}
	IOK_OK(iok_sub0_open(&slow));
	IOK_OK(iok_socket_set_int(slow, IOK_OPT_RECVBUF, SLOW_BUF));
	sub_str(slow, "");
	IOK_OK(iok_dial(slow, url, NULL, IOK_FLAG_NONBLOCK));
	wait_pipes(pub, NFAST + 1);
	wait_pipes(slow, 1);
	for (int i = 0; i < NFAST; i++) {
		wait_pipes(fast[i], 1);
	}

	publish_paced(pub, fast, NFAST, 0);

	/* Every message reached the slow subscriber's queue or was counted
	 * as dropped on the way: SLOW_BUF stay queued. */
	struct drop_sum d = { pub, slow, TOTAL - SLOW_BUF };
	if (!tu_wait_for(drops_reach, &d, T_MS)) {
		fail_msg("drops: pub %d + sub %d, want %d", (int) tu_stat(pub, "stat:tx-dropped"),
		    (int) tu_stat(slow, "stat:rx-dropped"), TOTAL - SLOW_BUF);
	}
	assert_int_equal(
	    tu_stat(pub, "stat:tx-dropped") + tu_stat(slow, "stat:rx-dropped"), TOTAL - SLOW_BUF);
	assert_true(tu_stat(slow, "stat:rx-dropped") > 0);
	/* prefnew (the default): what remains are the newest. */
	for (int k = TOTAL - SLOW_BUF; k < TOTAL; k++) {
		fmt_seq(want, sizeof(want), k);
		expect(slow, want);
	}
	expect_none_now(slow);
	for (int i = 0; i < NFAST; i++) {
		assert_int_equal(tu_stat(fast[i], "stat:rx-dropped"), 0);
		assert_int_equal(tu_stat(fast[i], "stat:rx-msgs"), TOTAL);
		IOK_OK(iok_close(fast[i]));
	}
	assert_int_equal(tu_stat(pub, "stat:tx-msgs"), TOTAL);
	IOK_OK(iok_close(slow));
	IOK_OK(iok_close(pub));
}

static void
test_slow_subscriber(void **state)
{
	(void) state;
	for (int t = 0; t < T_COUNT; t++) {
		print_message("  %s\n", tnames[t]);
		slow_subscriber_on(t);
	}
}

/* A raw TCP peer that speaks the SP handshake as a sub and then never
 * reads (tiny receive buffer): the publisher's pipe to it fills, and the
 * publisher must drop for it (counted) instead of blocking or buffering
 * without bound. */
static int
stalled_peer(int port)
{
	struct sockaddr_in sa;
	int                fd     = socket(AF_INET, SOCK_STREAM, 0);
	int                small  = 4096;
	uint8_t            hdr[8] = { 0, 'S', 'P', 0, 0x00, 0x21, 0, 0 };
	uint8_t            peer[8];
	struct timeval     tv = { T_MS / 1000, 0 };
	assert_true(fd >= 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family      = AF_INET;
	sa.sin_port        = htons((uint16_t) port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
	assert_int_equal(write(fd, hdr, 8), 8);
	assert_int_equal(recv(fd, peer, 8, MSG_WAITALL), 8);
	assert_memory_equal(peer, "\0SP\0\0\x20\0\0", 8); /* a pub0 */
	return fd;
}

static int
read_frame(int fd, char *buf, size_t cap, size_t *len)
{
	uint8_t  l[8];
	uint64_t n = 0;
	if (recv(fd, l, 8, MSG_WAITALL) != 8) {
		return -1;
	}
	for (int i = 0; i < 8; i++) {
		n = (n << 8) | l[i];
	}
	if (n > cap || recv(fd, buf, n, MSG_WAITALL) != (ssize_t) n) {
		return -1;
	}
	*len = n;
	return 0;
}

struct msgs_done {
	iok_socket pub;
	uint64_t   n;
};

static int
tx_msgs_reach(void *arg)
{
	struct msgs_done *d = arg;
	return tu_stat(d->pub, "stat:tx-msgs") >= d->n;
}

#define PAD 100 /* TOTAL frames of ~117 bytes: far more than the socket buffers */

static void
stalled_tcp_subscriber(int drop_oldest)
{
	iok_socket pub, fast[2];
	char       url[256];
	int        port, fd;

	IOK_OK(iok_pub0_open(&pub));
	IOK_OK(iok_socket_set_bool(pub, "pub:drop-oldest", drop_oldest));
	port = listen_on(pub, T_TCP, url, sizeof(url));
	for (int i = 0; i < 2; i++) {
		IOK_OK(iok_sub0_open(&fast[i]));
		IOK_OK(iok_socket_set_int(fast[i], IOK_OPT_RECVBUF, FAST_BUF));
		sub_str(fast[i], "");
		IOK_OK(iok_dial(fast[i], url, NULL, IOK_FLAG_NONBLOCK));
	}
	fd = stalled_peer(port);
	wait_pipes(pub, 3);
	wait_pipes(fast[0], 1);
	wait_pipes(fast[1], 1);

	/* A publisher never waits: a send timeout would show it did. */
	IOK_OK(iok_socket_set_ms(pub, IOK_OPT_SENDTIMEO, T_MS));
	publish_paced(pub, fast, 2, PAD);
	struct msgs_done md = { pub, TOTAL };
	assert_true(tu_wait_for(tx_msgs_reach, &md, T_MS));

	/* Everything the stalled peer will ever get was accepted by then;
	 * the rest was dropped and counted. */
	uint64_t dropped = tu_stat(pub, "stat:tx-dropped");
	assert_true(dropped > 0);
	assert_true(dropped < TOTAL);
	uint64_t expect_n = TOTAL - dropped;
	int      prev = -1, last16[16], nlast = 0;
	for (uint64_t i = 0; i < expect_n; i++) {
		char   buf[256];
		size_t len;
		if (read_frame(fd, buf, sizeof(buf), &len) != 0) {
			fail_msg("stalled peer: frame %d of %d missing", (int) i, (int) expect_n);
		}
		assert_int_equal(len, 9 + PAD);
		int seq = atoi(buf + 1);
		assert_true(seq > prev); /* in order, gaps only where dropped */
		prev                 = seq;
		last16[nlast++ % 16] = seq;
	}
	/* Nothing beyond what was accounted for. */
	struct pollfd pf = { fd, POLLIN, 0 };
	assert_int_equal(poll(&pf, 1, 0), 0);
	if (drop_oldest) {
		/* The queue kept the newest: the stream ends with the last 16. */
		for (int i = 0; i < 16; i++) {
			assert_int_equal(last16[(nlast + i) % 16], TOTAL - 16 + i);
		}
	} else {
		/* The queue kept what came first once full: the end was lost. */
		assert_true(prev < TOTAL - 1);
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(tu_stat(fast[i], "stat:rx-msgs"), TOTAL);
		IOK_OK(iok_close(fast[i]));
	}
	close(fd);
	IOK_OK(iok_close(pub));
}

static void
test_stalled_tcp_subscriber(void **state)
{
	(void) state;
	print_message("  drop oldest\n");
	stalled_tcp_subscriber(1);
	print_message("  drop newest\n");
	stalled_tcp_subscriber(0);
}

/* ------------------------------------------------------------- nodrop */

#define NODROP_PAD 1000 /* tcp/ipc: a few hundred fill the socket buffers */
#define NODROP_MAX 200000

#define HELD_MS 250 /* a send waiting this long: the publisher is held */

/* Send numbered messages until the publisher holds them back.  A full
 * send queue (IOK_EAGAIN) may only mean the kernel thread has not taken
 * them yet, so the next one is sent blocking for HELD_MS: held when it
 * times out.  Returns how many it took. */
static int
fill_until_held(iok_socket pub, int first)
{
	char msg[16 + NODROP_PAD];
	memset(msg, '.', sizeof(msg));
	for (int k = first; k < NODROP_MAX; k++) {
		fmt_seq(msg, sizeof(msg), k);
		msg[9] = '.';
		int rv = iok_send(pub, msg, sizeof(msg), IOK_FLAG_NONBLOCK);
		if (rv == IOK_EAGAIN) {
			IOK_OK(iok_socket_set_ms(pub, IOK_OPT_SENDTIMEO, HELD_MS));
			rv = iok_send(pub, msg, sizeof(msg), 0);
			IOK_OK(iok_socket_set_ms(pub, IOK_OPT_SENDTIMEO, T_MS));
			if (rv == IOK_ETIMEDOUT) {
				return k - first;
			}
		}
		IOK_OK(rv);
	}
	fail_msg("the publisher never held back (%d messages)", NODROP_MAX);
	return 0;
}

static void
expect_seq(iok_socket sub, int k)
{
	char   got[16 + NODROP_PAD], want[32];
	size_t len = sizeof(got);
	IOK_OK(iok_recv(sub, got, &len, 0));
	fmt_seq(want, sizeof(want), k);
	if (len != sizeof(got) || memcmp(got, want, 9) != 0) {
		fail_msg("got %.9s (%d bytes), want %s", got, (int) len, want);
	}
}

/* pub:nodrop: a subscriber that does not read holds the publisher back
 * (its sends fill the send queue, then are refused) instead of losing
 * messages; when it reads, every message arrives, in order.  A held
 * publisher is let go when the option is turned off and when the stuck
 * subscriber leaves. */
static void
nodrop_on(int t)
{
	iok_socket pub, sub;
	char       url[256];
	bool       on = true;

	IOK_OK(iok_pub0_open(&pub));
	IOK_OK(iok_socket_get_bool(pub, IOK_OPT_PUB_NODROP, &on));
	assert_false(on); /* nng's behaviour unless asked */
	IOK_OK(iok_socket_set_bool(pub, IOK_OPT_PUB_NODROP, true));
	IOK_OK(iok_socket_set_int(pub, IOK_OPT_PUB_QUEUE_LEN, 4));
	IOK_OK(iok_socket_set_int(pub, IOK_OPT_SENDBUF, 4));
	IOK_OK(iok_socket_set_ms(pub, IOK_OPT_SENDTIMEO, T_MS));
	IOK_OK(iok_sub0_open(&sub));
	IOK_OK(iok_socket_set_int(sub, IOK_OPT_RECVBUF, 8));
	IOK_OK(iok_socket_set_bool(sub, IOK_OPT_SUB_PREFNEW, false)); /* push back */
	IOK_OK(iok_socket_set_ms(sub, IOK_OPT_RECVTIMEO, T_MS));
	sub_str(sub, "");
	listen_on(pub, t, url, sizeof(url));
	IOK_OK(iok_dial(sub, url, NULL, IOK_FLAG_NONBLOCK));
	wait_pipes(pub, 1);
	wait_pipes(sub, 1);

	/* Held, twice: after draining, the publisher takes more. */
	int n = 0;
	for (int round = 0; round < 2; round++) {
		int took = fill_until_held(pub, n);
		assert_true(took > 0);
		for (int k = n; k < n + took; k++) {
			expect_seq(sub, k);
		}
		n += took;
	}
	assert_int_equal(tu_stat(pub, "stat:tx-dropped"), 0);
	assert_int_equal(tu_stat(sub, "stat:rx-dropped"), 0);

	/* Held again; turning the option off lets the publisher go on,
	 * dropping for the subscriber as usual (blocking sends: one would
	 * time out if it were still held). */
	n += fill_until_held(pub, n);
	IOK_OK(iok_socket_set_bool(pub, IOK_OPT_PUB_NODROP, false));
	for (int k = 0; k < NODROP_MAX && tu_stat(pub, "stat:tx-dropped") == 0; k++) {
		pub_str(pub, "after");
	}
	assert_true(tu_wait_stat(pub, "stat:tx-dropped", 1, T_MS));

	/* Held by a subscriber that leaves: its pipe goes, the publisher is
	 * free (what it held goes to nobody). */
	IOK_OK(iok_socket_set_bool(pub, IOK_OPT_PUB_NODROP, true));
	(void) fill_until_held(pub, n);
	IOK_OK(iok_close(sub));
	pub_str(pub, "after the subscriber left");
	IOK_OK(iok_close(pub));
}

static void
test_nodrop(void **state)
{
	(void) state;
	for (int t = 0; t < T_COUNT; t++) {
		print_message("  %s\n", tnames[t]);
		nodrop_on(t);
	}
}

/* A "subscriber" that sends is broken: the publisher drops it. */
static void
test_pub_rejects_data(void **state)
{
	(void) state;
	iok_socket pub;
	char       url[256];
	IOK_OK(iok_pub0_open(&pub));
	int port = listen_on(pub, T_TCP, url, sizeof(url));
	int fd   = stalled_peer(port);
	wait_pipes(pub, 1);
	uint8_t frame[9] = { 0, 0, 0, 0, 0, 0, 0, 1, 'x' };
	assert_int_equal(write(fd, frame, sizeof(frame)), (ssize_t) sizeof(frame));
	assert_true(tu_wait_stat(pub, "stat:proto-errors", 1, T_MS));
	/* The connection goes: the peer reads EOF. */
	uint8_t b;
	assert_int_equal(recv(fd, &b, 1, 0), 0);
	close(fd);
	IOK_OK(iok_close(pub));
}

/* ------------------------------------------------------------ prefnew */

struct dropped_arg {
	iok_socket s;
	uint64_t   n;
};

static void
prefnew_on(int t, int prefnew)
{
	iok_socket pub, sub;
	char       msg[16];
	pair_up(t, &pub, &sub);
	IOK_OK(iok_socket_set_int(sub, IOK_OPT_RECVBUF, 4));
	IOK_OK(iok_socket_set_bool(sub, IOK_OPT_SUB_PREFNEW, prefnew));
	sub_str(sub, "m");
	for (int i = 0; i < 20; i++) {
		snprintf(msg, sizeof(msg), "m%02d", i);
		pub_str(pub, msg);
	}
	if (prefnew) {
		/* All 20 arrived: 16 dropped at the subscriber, the newest 4
		 * queued; the pipe was never paused. */
		assert_true(tu_wait_stat(sub, "stat:rx-dropped", 16, T_MS));
		for (int i = 0; i < 4; i++) {
			snprintf(msg, sizeof(msg), "m%02d", 16 + i);
			expect(sub, msg);
		}
		expect_none_now(sub);
		assert_int_equal(tu_stat(sub, "stat:rx-dropped"), 16);
	} else {
		/* Keep the old: the subscriber pushed back, so its queue held
		 * the first 4 and the rest waited upstream (the publisher's
		 * queue and the connection had room for them): all 20 come, in
		 * order, none dropped anywhere. */
		for (int i = 0; i < 20; i++) {
			snprintf(msg, sizeof(msg), "m%02d", i);
			expect(sub, msg);
		}
		assert_int_equal(tu_stat(sub, "stat:rx-dropped"), 0);
	}
	assert_int_equal(tu_stat(pub, "stat:tx-dropped"), 0);
	/* Later messages still flow. */
	pub_str(pub, "m-after");
	expect(sub, "m-after");
	IOK_OK(iok_close(sub));
	IOK_OK(iok_close(pub));
}

static void
test_prefnew(void **state)
{
	(void) state;
	for (int t = 0; t < T_COUNT; t++) {
		print_message("  %s\n", tnames[t]);
		prefnew_on(t, 1);
		prefnew_on(t, 0);
	}
}

/* ---------------------------------------------------------------- raw */

static void
raw_on(int t)
{
	iok_socket pub, rsub, rpub, sub;
	char       url[256];
	iok_msg   *m;

	/* Raw sub: no filtering, no subscription needed. */
	IOK_OK(iok_pub0_open(&pub));
	IOK_OK(iok_sub0_open_raw(&rsub));
	listen_on(pub, t, url, sizeof(url));
	IOK_OK(iok_dial(rsub, url, NULL, IOK_FLAG_NONBLOCK));
	wait_pipes(pub, 1);
	wait_pipes(rsub, 1);
	pub_str(pub, "anything");
	pub_str(pub, "");
	IOK_OK(iok_socket_set_ms(rsub, IOK_OPT_RECVTIMEO, T_MS));
	IOK_OK(iok_recvmsg(rsub, &m, 0));
	assert_int_equal(iok_msg_header_len(m), 0);
	assert_int_equal(iok_msg_len(m), 8);
	assert_memory_equal(iok_msg_body(m), "anything", 8);
	assert_true(iok_msg_get_pipe(m) != 0);
	iok_msg_free(m);
	expect(rsub, "");

	/* Raw pub: the header goes on the wire in front of the body, as
	 * nng's raw pub; a cooked pub drops it. */
	IOK_OK(iok_pub0_open_raw(&rpub));
	IOK_OK(iok_sub0_open(&sub));
	sub_str(sub, "");
	listen_on(rpub, t, url, sizeof(url));
	IOK_OK(iok_dial(sub, url, NULL, IOK_FLAG_NONBLOCK));
	wait_pipes(rpub, 1);
	wait_pipes(sub, 1);
	IOK_OK(iok_msg_alloc(&m, 0));
	IOK_OK(iok_msg_append(m, "body", 4));
	IOK_OK(iok_msg_header_append(m, "HD", 2));
	IOK_OK(iok_sendmsg(rpub, m, 0));
	expect(sub, "HDbody");
	IOK_OK(iok_msg_alloc(&m, 0));
	IOK_OK(iok_msg_append(m, "body", 4));
	IOK_OK(iok_msg_header_append(m, "HD", 2));
	IOK_OK(iok_sendmsg(pub, m, 0)); /* cooked: header cleared */
	IOK_OK(iok_recvmsg(rsub, &m, 0));
	assert_int_equal(iok_msg_len(m), 4);
	iok_msg_free(m);

	IOK_OK(iok_close(pub));
	IOK_OK(iok_close(rsub));
	IOK_OK(iok_close(rpub));
	IOK_OK(iok_close(sub));
}

static void
test_raw(void **state)
{
	(void) state;
	for (int t = 0; t < T_COUNT; t++) {
		print_message("  %s\n", tnames[t]);
		raw_on(t);
	}
}

/* pub -> [raw sub => raw pub] -> subs, the forwarding on the kernel
 * thread; the downstream subscribers still filter. */
static void
device_on(int t)
{
	iok_socket pub, dsub, dpub, s1, s2;
	char       url1[256], url2[256];

	IOK_OK(iok_pub0_open(&pub));
	IOK_OK(iok_sub0_open_raw(&dsub));
	IOK_OK(iok_pub0_open_raw(&dpub));
	IOK_OK(iok_sub0_open(&s1));
	IOK_OK(iok_sub0_open(&s2));
	listen_on(pub, t, url1, sizeof(url1));
	listen_on(dpub, t, url2, sizeof(url2));
	assert_int_equal(iok_device(dsub, s1), IOK_EINVAL);   /* cooked */
	assert_int_equal(iok_device(dsub, dsub), IOK_EINVAL); /* sub is no peer of sub */
	IOK_OK(iok_device(dsub, dpub));
	assert_int_equal(iok_device(dsub, dpub), IOK_EBUSY);
	sub_str(s1, "one");
	sub_str(s2, "two");
	sub_str(s2, "one/");
	IOK_OK(iok_dial(dsub, url1, NULL, IOK_FLAG_NONBLOCK));
	IOK_OK(iok_dial(s1, url2, NULL, IOK_FLAG_NONBLOCK));
	IOK_OK(iok_dial(s2, url2, NULL, IOK_FLAG_NONBLOCK));
	wait_pipes(pub, 1);
	wait_pipes(dpub, 2);
	wait_pipes(s1, 1);
	wait_pipes(s2, 1);
	for (int i = 0; i < 100; i++) {
		char m[32];
		snprintf(m, sizeof(m), "%s/%d", i % 2 ? "two" : "one", i);
		pub_str(pub, m);
	}
	pub_str(pub, "one-end");
	pub_str(pub, "two-end");
	for (int i = 0; i < 100; i++) {
		char m[32];
		snprintf(m, sizeof(m), "%s/%d", i % 2 ? "two" : "one", i);
		if (i % 2 == 0) {
			expect(s1, m);
		}
		expect(s2, m);
	}
	expect(s1, "one-end");
	expect(s2, "two-end");
	IOK_OK(iok_close(s1));
	IOK_OK(iok_close(s2));
	IOK_OK(iok_close(dpub));
	IOK_OK(iok_close(dsub));
	IOK_OK(iok_close(pub));
}

static void
test_device(void **state)
{
	(void) state;
	for (int t = 0; t < T_COUNT; t++) {
		print_message("  %s\n", tnames[t]);
		device_on(t);
	}
}

/* ---------------------------------------------- shared fan-out bodies */

#define SH_SUBS 4

static const size_t sh_sizes[] = { 1, 64, 1000, 5000, 20000 };
#define SH_N (sizeof(sh_sizes) / sizeof(sh_sizes[0]))

static void
sh_fill(uint8_t *b, size_t len, size_t k)
{
	for (size_t i = 0; i < len; i++) {
		b[i] = (uint8_t) (k * 31 + i);
	}
}

static void
sh_check(iok_msg *m, size_t k, int sub)
{
	uint8_t *want = malloc(sh_sizes[k]);
	assert_non_null(want);
	sh_fill(want, sh_sizes[k], k);
	if (iok_msg_len(m) != sh_sizes[k] || memcmp(iok_msg_body(m), want, sh_sizes[k]) != 0) {
		fail_msg("subscriber %d, message %zu: changed by another subscriber", sub, k);
	}
	free(want);
}

/* The publisher's message is shared by its subscribers, not copied for
 * each (over inproc each gets a view of one body): a subscriber that
 * writes into, grows, trims or re-heads what it received changes nothing
 * the others receive, whether they read it before or after. */
static void
shared_bodies_on(int t)
{
	iok_socket pub, subs[SH_SUBS];
	char       url[256];
	uint8_t   *buf = malloc(20000);
	assert_non_null(buf);

	IOK_OK(iok_pub0_open(&pub));
	listen_on(pub, t, url, sizeof(url));
	for (int i = 0; i < SH_SUBS; i++) {
		IOK_OK(iok_sub0_open(&subs[i]));
		IOK_OK(iok_socket_set_ms(subs[i], IOK_OPT_RECVTIMEO, T_MS));
		sub_str(subs[i], "");
		IOK_OK(iok_dial(subs[i], url, NULL, IOK_FLAG_NONBLOCK));
	}
	wait_pipes(pub, SH_SUBS);
	for (int i = 0; i < SH_SUBS; i++) {
		wait_pipes(subs[i], 1);
	}
	for (size_t k = 0; k < SH_N; k++) {
		sh_fill(buf, sh_sizes[k], k);
		IOK_OK(iok_send(pub, buf, sh_sizes[k], 0));
	}
	/* Subscriber 0 changes every message while the others still hold
	 * theirs. */
	for (size_t k = 0; k < SH_N; k++) {
		iok_msg *m;
		IOK_OK(iok_recvmsg(subs[0], &m, 0));
		sh_check(m, k, 0);
		memset(iok_msg_body(m), 0xee, iok_msg_len(m));
		IOK_OK(iok_msg_append(m, "tail", 4));
		IOK_OK(iok_msg_insert(m, "head", 4));
		IOK_OK(iok_msg_header_append(m, "hd", 2));
		IOK_OK(iok_msg_trim(m, 2));
		IOK_OK(iok_msg_realloc(m, iok_msg_len(m) + 100));
		memset(iok_msg_body(m), 0xdd, iok_msg_len(m));
		iok_msg_free(m);
	}
	/* Subscriber 1 keeps all of its messages, and changes them only
	 * after 2 and 3 have read theirs. */
	iok_msg *kept[SH_N];
	for (size_t k = 0; k < SH_N; k++) {
		IOK_OK(iok_recvmsg(subs[1], &kept[k], 0));
		sh_check(kept[k], k, 1);
		assert_int_equal(iok_msg_header_len(kept[k]), 0);
	}
	for (size_t k = 0; k < SH_N; k++) {
		iok_msg *m;
		IOK_OK(iok_recvmsg(subs[2], &m, 0));
		sh_check(m, k, 2);
		iok_msg_free(m);
		size_t len = 20000;
		IOK_OK(iok_recv(subs[3], buf, &len, 0));
		assert_int_equal(len, sh_sizes[k]);
		uint8_t *want = malloc(len);
		sh_fill(want, len, k);
		assert_memory_equal(buf, want, len);
		free(want);
	}
	for (size_t k = 0; k < SH_N; k++) {
		memset(iok_msg_body(kept[k]), 0xcc, iok_msg_len(kept[k]));
		iok_msg_free(kept[k]);
	}
	for (int i = 0; i < SH_SUBS; i++) {
		expect_none_now(subs[i]);
		IOK_OK(iok_close(subs[i]));
	}
	assert_int_equal(tu_stat(pub, "stat:tx-dropped"), 0);
	IOK_OK(iok_close(pub));
	free(buf);
}

static void
test_shared_bodies(void **state)
{
	(void) state;
	for (int t = 0; t < T_COUNT; t++) {
		print_message("  %s\n", tnames[t]);
		shared_bodies_on(t);
	}
}

/* ------------------------------------------------ iok_recvmsg_many */

/* iok_recvmsg_many takes what waits, oldest first, up to max per call,
 * and blocks/fails as iok_recvmsg when nothing does; a cooked rep0 (whose
 * plain receive names the request the next send answers) gets one at a
 * time. */
static void
test_recvmsg_many(void **state)
{
	iok_socket pub, sub, rep, req;
	iok_msg   *mv[40];
	size_t     n, got = 0;
	char       url[256], want[16];
	(void) state;
	pair_up(T_INPROC, &pub, &sub);
	sub_str(sub, "");
	for (int i = 0; i < 100; i++) {
		snprintf(want, sizeof(want), "m%d", i);
		pub_str(pub, want);
	}
	if (!tu_wait_stat(sub, "stat:rx-msgs", 100, T_MS)) {
		fail_msg("messages never arrived");
	}
	assert_int_equal(iok_recvmsg_many(sub, mv, 0, &n, 0), IOK_EINVAL);
	assert_int_equal(iok_recvmsg_many(sub, NULL, 4, &n, 0), IOK_EINVAL);
	while (got < 100) {
		IOK_OK(iok_recvmsg_many(sub, mv, 40, &n, IOK_FLAG_NONBLOCK));
		assert_true(n >= 1 && n <= 40);
		for (size_t i = 0; i < n; i++, got++) {
			snprintf(want, sizeof(want), "m%zu", got);
			assert_int_equal(iok_msg_len(mv[i]), strlen(want));
			assert_memory_equal(iok_msg_body(mv[i]), want, strlen(want));
			iok_msg_free(mv[i]);
		}
	}
	assert_int_equal(iok_recvmsg_many(sub, mv, 40, &n, IOK_FLAG_NONBLOCK), IOK_EAGAIN);
	assert_int_equal(n, 0);
	IOK_OK(iok_close(sub));
	IOK_OK(iok_close(pub));

	IOK_OK(iok_rep0_open(&rep));
	IOK_OK(iok_req0_open(&req));
	snprintf(url, sizeof(url), "inproc://pubsub-many-%d", (int) getpid());
	IOK_OK(iok_listen(rep, url, NULL, 0));
	IOK_OK(iok_dial(req, url, NULL, 0));
	uint64_t tok[3];
	for (int i = 0; i < 3; i++) {
		iok_msg *m;
		IOK_OK(iok_msg_alloc(&m, 0));
		IOK_OK(iok_msg_append_u32(m, (uint32_t) i));
		IOK_OK(iok_request(req, m, &tok[i], 0));
	}
	if (!tu_wait_stat(rep, "stat:rx-msgs", 3, T_MS)) {
		fail_msg("requests never arrived");
	}
	for (uint32_t i = 0; i < 3; i++) {
		uint32_t v;
		IOK_OK(iok_recvmsg_many(rep, mv, 40, &n, 0));
		assert_int_equal(n, 1);
		IOK_OK(iok_msg_trim_u32(mv[0], &v));
		assert_int_equal(v, i);
		IOK_OK(iok_msg_append_u32(mv[0], v + 100));
		IOK_OK(iok_sendmsg(rep, mv[0], 0)); /* answers request i */
	}
	for (int i = 0; i < 3; i++) {
		iok_msg *m;
		uint32_t v;
		IOK_OK(iok_recvmsg(req, &m, 0));
		IOK_OK(iok_msg_trim_u32(m, &v));
		assert_int_equal(iok_msg_token(m), tok[v - 100]);
		iok_msg_free(m);
	}
	IOK_OK(iok_close(req));
	IOK_OK(iok_close(rep));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_subscriptions),
		cmocka_unit_test(test_many_topics),
		cmocka_unit_test(test_eight_subscribers),
		cmocka_unit_test(test_shared_bodies),
		cmocka_unit_test(test_recvmsg_many),
		cmocka_unit_test(test_prefnew),
		cmocka_unit_test(test_slow_subscriber),
		cmocka_unit_test(test_stalled_tcp_subscriber),
		cmocka_unit_test(test_nodrop),
		cmocka_unit_test(test_pub_rejects_data),
		cmocka_unit_test(test_raw),
		cmocka_unit_test(test_device),
	};
	int rv = cmocka_run_group_tests(tests, NULL, NULL);
	iok_fini();
	return rv;
}
