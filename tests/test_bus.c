/*
 * test_bus.c - bus0 over inproc, ipc and tcp: a full mesh where every
 * message reaches every other peer exactly once and never its sender; a
 * bus never blocks (a peer that does not read costs counted drops, not
 * the others' messages); raw mode (pipe id header in, exclusion out); bus
 * devices (one-socket reflector, two-socket, and chained over inproc).
 *
 * Nothing here sleeps to synchronise: tests wait on statistics or receive
 * with a timeout that only bounds a failure.  Absence of a message is
 * shown by order: a later message that must arrive arrives first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define T_MS 10000 /* bounds a failure; success never waits for it */

enum { T_INPROC, T_IPC, T_TCP, T_COUNT };
static const char *const tnames[T_COUNT] = { "inproc", "ipc", "tcp" };

static void
listen_on(iok_socket s, int t, char *url, size_t cap)
{
	static int   seq;
	iok_listener l;
	int          port = 0;
	switch (t) {
	case T_INPROC:
		snprintf(url, cap, "inproc://bus-%d-%d", (int) getpid(), seq++);
		IOK_OK(iok_listen(s, url, NULL, 0));
		break;
	case T_IPC:
		snprintf(url, cap, "%s", tu_ipc_url("bus"));
		IOK_OK(iok_listen(s, url, NULL, 0));
		break;
	default:
		IOK_OK(iok_listen(s, "tcp://127.0.0.1:0", &l, 0));
		IOK_OK(iok_listener_get_int(l, IOK_OPT_TCP_BOUND_PORT, &port));
		snprintf(url, cap, "tcp://127.0.0.1:%d", port);
		break;
	}
}

static void
wait_pipes(iok_socket s, uint64_t n)
{
	if (!tu_wait_stat(s, "stat:pipes", n, T_MS)) {
		fail_msg("socket never got %d pipes", (int) n);
	}
}

static void
send_str(iok_socket s, const char *str)
{
	IOK_OK(iok_send(s, str, strlen(str), 0));
}

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

/* ------------------------------------------------------------ options */

static void
test_options(void **state)
{
	(void) state;
	iok_socket b, r;
	int        v;
	bool       raw;
	IOK_OK(iok_bus0_open(&b));
	IOK_OK(iok_bus0_open_raw(&r));
	IOK_OK(iok_socket_get_int(b, IOK_OPT_PROTO, &v));
	assert_int_equal(v, 0x70);
	IOK_OK(iok_socket_get_int(b, IOK_OPT_PEER, &v));
	assert_int_equal(v, 0x70);
	IOK_OK(iok_socket_get_bool(b, IOK_OPT_RAW, &raw));
	assert_false(raw);
	IOK_OK(iok_socket_get_bool(r, IOK_OPT_RAW, &raw));
	assert_true(raw);
	assert_int_equal(iok_device(b, b), IOK_EINVAL); /* cooked */
	assert_int_equal(iok_device(r, b), IOK_EINVAL);
	iok_socket s2;
	IOK_OK(iok_socket_open(&s2, "bus"));
	IOK_OK(iok_close(s2));
	/* With no peer a send goes nowhere, and does not wait. */
	send_str(b, "into the void");
	IOK_OK(iok_close(b));
	IOK_OK(iok_close(r));
}

/* --------------------------------------------------------------- mesh */

#define NPEERS 4
#define NMSG 50

static void
mesh_on(int t)
{
	iok_socket n[NPEERS];
	char       url[NPEERS][256], msg[64];

	for (int i = 0; i < NPEERS; i++) {
		IOK_OK(iok_bus0_open(&n[i]));
		listen_on(n[i], t, url[i], sizeof(url[i]));
	}
	/* Each pair connected once: i dials every j < i. */
	for (int i = 0; i < NPEERS; i++) {
		for (int j = 0; j < i; j++) {
			IOK_OK(iok_dial(n[i], url[j], NULL, IOK_FLAG_NONBLOCK));
		}
	}
	for (int i = 0; i < NPEERS; i++) {
		wait_pipes(n[i], NPEERS - 1);
	}
	/* Everyone talks at once. */
	for (int k = 0; k < NMSG; k++) {
		for (int i = 0; i < NPEERS; i++) {
			snprintf(msg, sizeof(msg), "from%d/%d", i, k);
			send_str(n[i], msg);
		}
	}
	for (int i = 0; i < NPEERS; i++) {
		snprintf(msg, sizeof(msg), "end%d", i);
		send_str(n[i], msg);
	}
	/* Each peer gets every other peer's messages, in that peer's order,
	 * once, and none of its own: after all the end markers, nothing. */
	for (int i = 0; i < NPEERS; i++) {
		int next[NPEERS] = { 0 }, ends = 0;
		IOK_OK(iok_socket_set_ms(n[i], IOK_OPT_RECVTIMEO, T_MS));
		while (ends < NPEERS - 1) {
			char buf[64];
			int  from, k;
			IOK_OK(tu_recv_str(n[i], buf, sizeof(buf), T_MS));
			if (sscanf(buf, "from%d/%d", &from, &k) == 2) {
				assert_true(from != i);
				assert_true(from >= 0 && from < NPEERS);
				assert_int_equal(k, next[from]);
				next[from]++;
			} else {
				assert_int_equal(sscanf(buf, "end%d", &from), 1);
				assert_true(from != i);
				assert_int_equal(next[from], NMSG);
				next[from]++;
				ends++;
			}
		}
		expect_none_now(n[i]);
		assert_int_equal(tu_stat(n[i], "stat:rx-msgs"), (NPEERS - 1) * (NMSG + 1));
		assert_int_equal(tu_stat(n[i], "stat:tx-dropped"), 0);
	}
	/* Nothing arrives late either (e.g. forwarded copies): a new round
	 * from peer 0 is the next thing everyone else sees. */
	send_str(n[0], "last");
	for (int i = 1; i < NPEERS; i++) {
		expect(n[i], "last");
	}
	for (int i = 0; i < NPEERS; i++) {
		IOK_OK(iok_close(n[i]));
	}
}

static void
test_mesh(void **state)
{
	(void) state;
	for (int t = 0; t < T_COUNT; t++) {
		print_message("  %s\n", tnames[t]);
		mesh_on(t);
	}
}

/* ----------------------------------------------------------- slow peer */

#define TOTAL 20000
#define ROUND 16
#define PAD 1000

struct acct {
	iok_socket slow, sender;
	int        got, last;
};

/* A peer that does not read pauses its pipe (lossless within its queue);
 * the sender's pipe to it fills and the sender drops for it, counted,
 * while another peer, paced, gets everything. */
static void
slow_peer_on(int t)
{
	iok_socket sender, fast, slow;
	char       url[256], msg[PAD + 16], buf[PAD + 16];

	IOK_OK(iok_bus0_open(&sender));
	IOK_OK(iok_bus0_open(&fast));
	IOK_OK(iok_bus0_open(&slow));
	IOK_OK(iok_socket_set_int(slow, IOK_OPT_RECVBUF, 4));
	IOK_OK(iok_socket_set_int(fast, IOK_OPT_RECVBUF, ROUND));
	listen_on(sender, t, url, sizeof(url));
	IOK_OK(iok_dial(fast, url, NULL, IOK_FLAG_NONBLOCK));
	IOK_OK(iok_dial(slow, url, NULL, IOK_FLAG_NONBLOCK));
	wait_pipes(sender, 2);
	wait_pipes(fast, 1);
	wait_pipes(slow, 1);
	IOK_OK(iok_socket_set_ms(sender, IOK_OPT_SENDTIMEO, T_MS)); /* never hit */
	IOK_OK(iok_socket_set_ms(fast, IOK_OPT_RECVTIMEO, T_MS));
	memset(msg, '.', sizeof(msg));
	for (int base = 0; base < TOTAL; base += ROUND) {
		for (int k = base; k < base + ROUND; k++) {
			snprintf(msg, sizeof(msg), "%08d", k);
			msg[8] = '.';
			IOK_OK(iok_send(sender, msg, PAD, 0));
		}
		for (int k = base; k < base + ROUND; k++) {
			size_t len = sizeof(buf);
			IOK_OK(iok_recv(fast, buf, &len, 0));
			assert_int_equal(len, PAD);
			assert_int_equal(atoi(buf), k);
		}
	}
	uint64_t dropped = tu_stat(sender, "stat:tx-dropped");
	assert_true(dropped > 0);
	/* Now the slow peer reads: what it gets plus what was dropped for it
	 * is everything, in order. */
	IOK_OK(iok_socket_set_ms(slow, IOK_OPT_RECVTIMEO, T_MS));
	int prev = -1;
	for (uint64_t i = 0; i < TOTAL - dropped; i++) {
		size_t len = sizeof(buf);
		int    rv  = iok_recv(slow, buf, &len, 0);
		if (rv != 0) {
			fail_msg("slow peer: message %d of %d: %s", (int) i,
			    (int) (TOTAL - dropped), iok_strerror(rv));
		}
		assert_int_equal(len, PAD);
		assert_true(atoi(buf) > prev);
		prev = atoi(buf);
	}
	expect_none_now(slow);
	assert_true(prev < TOTAL - 1); /* the newest were the ones dropped */
	assert_int_equal(tu_stat(slow, "stat:rx-dropped"), 0);
	assert_int_equal(tu_stat(fast, "stat:rx-msgs"), TOTAL);
	/* And the link works again. */
	send_str(sender, "again");
	expect(slow, "again");
	expect(fast, "again");
	IOK_OK(iok_close(sender));
	IOK_OK(iok_close(fast));
	IOK_OK(iok_close(slow));
}

static void
test_slow_peer(void **state)
{
	(void) state;
	for (int t = 0; t < T_COUNT; t++) {
		print_message("  %s\n", tnames[t]);
		slow_peer_on(t);
	}
}

/* ---------------------------------------------------------------- raw */

static iok_msg *
recv_msg(iok_socket s)
{
	iok_msg *m;
	IOK_OK(iok_socket_set_ms(s, IOK_OPT_RECVTIMEO, T_MS));
	IOK_OK(iok_recvmsg(s, &m, 0));
	return m;
}

static void
raw_on(int t)
{
	iok_socket r, a, b;
	char       url[256];
	iok_msg   *m;
	uint32_t   pa, pb, h;

	IOK_OK(iok_bus0_open_raw(&r));
	IOK_OK(iok_bus0_open(&a));
	IOK_OK(iok_bus0_open(&b));
	listen_on(r, t, url, sizeof(url));
	IOK_OK(iok_dial(a, url, NULL, IOK_FLAG_NONBLOCK));
	IOK_OK(iok_dial(b, url, NULL, IOK_FLAG_NONBLOCK));
	wait_pipes(r, 2);
	wait_pipes(a, 1);
	wait_pipes(b, 1);

	/* In: the header is the id of the pipe the message came on. */
	send_str(a, "hello from a");
	m = recv_msg(r);
	assert_int_equal(iok_msg_header_len(m), 4);
	pa = iok_msg_get_pipe(m);
	assert_true(pa != 0);
	h = (uint32_t) ((uint8_t *) iok_msg_header(m))[0] << 24 |
	    (uint32_t) ((uint8_t *) iok_msg_header(m))[1] << 16 |
	    (uint32_t) ((uint8_t *) iok_msg_header(m))[2] << 8 | ((uint8_t *) iok_msg_header(m))[3];
	assert_int_equal(h, pa);
	assert_int_equal(iok_msg_len(m), 12);
	assert_memory_equal(iok_msg_body(m), "hello from a", 12);

	/* Out: sending it back as it is excludes a (no echo)... */
	IOK_OK(iok_sendmsg(r, m, 0));
	expect(b, "hello from a");
	/* ...and without a header it goes to everyone. */
	send_str(r, "to all");
	expect(a, "to all"); /* first: the echo never came */
	expect(b, "to all");

	send_str(b, "from b");
	m = recv_msg(r);
	IOK_OK(iok_msg_header_trim_u32(m, &pb));
	assert_int_equal(pb, iok_msg_get_pipe(m));
	assert_true(pb != pa);
	iok_msg_free(m);

	/* Any pipe id can be excluded; an unknown one excludes nobody. */
	IOK_OK(iok_msg_alloc(&m, 0));
	IOK_OK(iok_msg_append(m, "not b", 5));
	IOK_OK(iok_msg_header_append_u32(m, pb));
	IOK_OK(iok_sendmsg(r, m, 0));
	IOK_OK(iok_msg_alloc(&m, 0));
	IOK_OK(iok_msg_append(m, "both", 4));
	IOK_OK(iok_msg_header_append_u32(m, 0x7fffffff));
	IOK_OK(iok_sendmsg(r, m, 0));
	expect(a, "not b");
	expect(a, "both");
	expect(b, "both");

	/* A cooked sender's header never reaches the wire. */
	IOK_OK(iok_msg_alloc(&m, 0));
	IOK_OK(iok_msg_append(m, "cooked", 6));
	IOK_OK(iok_msg_header_append_u32(m, 42));
	IOK_OK(iok_sendmsg(a, m, 0));
	m = recv_msg(r);
	assert_int_equal(iok_msg_header_len(m), 4);
	assert_int_equal(iok_msg_len(m), 6);
	iok_msg_free(m);

	IOK_OK(iok_close(r));
	IOK_OK(iok_close(a));
	IOK_OK(iok_close(b));
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

/* ------------------------------------------------------------- devices */

/* Clients c[0..n) on a hub (a one-socket bus device): each message
 * reaches every other client once, never its sender. */
static void
check_hub_clients(iok_socket *c, int n)
{
	char msg[32];
	for (int i = 0; i < n; i++) {
		snprintf(msg, sizeof(msg), "m%d", i);
		send_str(c[i], msg);
		for (int j = 0; j < n; j++) {
			if (j != i) {
				expect(c[j], msg);
			}
		}
	}
	/* No echo: the next thing each client sees is the next message. */
	for (int i = 0; i < n; i++) {
		snprintf(msg, sizeof(msg), "z%d", i);
		send_str(c[(i + 1) % n], msg);
		expect(c[i], msg);
		for (int j = 0; j < n; j++) {
			if (j != i && j != (i + 1) % n) {
				expect(c[j], msg);
			}
		}
	}
	for (int i = 0; i < n; i++) {
		expect_none_now(c[i]);
	}
}

static void
reflector_on(int t)
{
	iok_socket hub, c[3], other;
	char       url[256];
	IOK_OK(iok_bus0_open_raw(&hub));
	listen_on(hub, t, url, sizeof(url));
	iok_socket none = IOK_SOCKET_INITIALIZER;
	IOK_OK(iok_device(hub, none));
	IOK_OK(iok_bus0_open_raw(&other));
	assert_int_equal(iok_device(hub, other), IOK_EBUSY);
	IOK_OK(iok_close(other));
	for (int i = 0; i < 3; i++) {
		IOK_OK(iok_bus0_open(&c[i]));
		IOK_OK(iok_dial(c[i], url, NULL, IOK_FLAG_NONBLOCK));
	}
	wait_pipes(hub, 3);
	for (int i = 0; i < 3; i++) {
		wait_pipes(c[i], 1);
	}
	check_hub_clients(c, 3);
	for (int i = 0; i < 3; i++) {
		IOK_OK(iok_close(c[i]));
	}
	IOK_OK(iok_close(hub));
}

/* Two raw sockets joined: clients of either side hear each other. */
static void
two_socket_on(int t)
{
	iok_socket h1, h2, c[4];
	char       url1[256], url2[256];
	IOK_OK(iok_bus0_open_raw(&h1));
	IOK_OK(iok_bus0_open_raw(&h2));
	listen_on(h1, t, url1, sizeof(url1));
	listen_on(h2, t, url2, sizeof(url2));
	IOK_OK(iok_device(h1, h2));
	for (int i = 0; i < 4; i++) {
		IOK_OK(iok_bus0_open(&c[i]));
		IOK_OK(iok_dial(c[i], i < 2 ? url1 : url2, NULL, IOK_FLAG_NONBLOCK));
	}
	wait_pipes(h1, 2);
	wait_pipes(h2, 2);
	for (int i = 0; i < 4; i++) {
		wait_pipes(c[i], 1);
	}
	/* From side 1: the other client on side 1 does not hear it (a device
	 * forwards across; the same-side peer is excluded only on the side it
	 * came from, which is the whole point of the header), the two on side
	 * 2 do. */
	send_str(c[0], "x0");
	expect(c[2], "x0");
	expect(c[3], "x0");
	send_str(c[2], "y2");
	expect(c[0], "y2");
	expect(c[1], "y2");
	/* c[1] never saw x0, c[3] never saw y2: their next is z. */
	send_str(c[0], "z0");
	expect(c[2], "z0");
	expect(c[3], "z0");
	send_str(c[2], "w2");
	expect(c[0], "w2");
	expect(c[1], "w2");
	for (int i = 0; i < 4; i++) {
		expect_none_now(c[i]);
		IOK_OK(iok_close(c[i]));
	}
	IOK_OK(iok_close(h1));
	IOK_OK(iok_close(h2));
}

/* Two reflector hubs linked to each other: a raw hub receives messages a
 * device forwarded to it, and must still tag them with its own pipe id, or
 * they would bounce back to where they came from. */
static void
chained_on(int t)
{
	iok_socket hub1, hub2, a, b, c;
	char       url1[256], url2[256];
	iok_socket none = IOK_SOCKET_INITIALIZER;
	IOK_OK(iok_bus0_open_raw(&hub1));
	IOK_OK(iok_bus0_open_raw(&hub2));
	listen_on(hub1, t, url1, sizeof(url1));
	listen_on(hub2, t, url2, sizeof(url2));
	IOK_OK(iok_device(hub1, none));
	IOK_OK(iok_device(hub2, none));
	IOK_OK(iok_dial(hub2, url1, NULL, IOK_FLAG_NONBLOCK));
	IOK_OK(iok_bus0_open(&a));
	IOK_OK(iok_bus0_open(&b));
	IOK_OK(iok_bus0_open(&c));
	IOK_OK(iok_dial(a, url1, NULL, IOK_FLAG_NONBLOCK));
	IOK_OK(iok_dial(b, url2, NULL, IOK_FLAG_NONBLOCK));
	IOK_OK(iok_dial(c, url2, NULL, IOK_FLAG_NONBLOCK));
	wait_pipes(hub1, 2);
	wait_pipes(hub2, 3);
	wait_pipes(a, 1);
	wait_pipes(b, 1);
	wait_pipes(c, 1);
	send_str(a, "from a");
	expect(b, "from a");
	expect(c, "from a");
	send_str(b, "from b");
	expect(a, "from b"); /* not "from a" bounced back */
	expect(c, "from b");
	send_str(c, "from c");
	expect(a, "from c");
	expect(b, "from c"); /* not "from b" bounced back */
	expect_none_now(a);
	expect_none_now(b);
	expect_none_now(c);
	IOK_OK(iok_close(a));
	IOK_OK(iok_close(b));
	IOK_OK(iok_close(c));
	IOK_OK(iok_close(hub2));
	IOK_OK(iok_close(hub1));
}

static void
test_device(void **state)
{
	(void) state;
	for (int t = 0; t < T_COUNT; t++) {
		print_message("  %s reflector\n", tnames[t]);
		reflector_on(t);
		print_message("  %s two sockets\n", tnames[t]);
		two_socket_on(t);
		print_message("  %s chained\n", tnames[t]);
		chained_on(t);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_mesh),
		cmocka_unit_test(test_slow_peer),
		cmocka_unit_test(test_raw),
		cmocka_unit_test(test_device),
	};
	int rv = cmocka_run_group_tests(tests, NULL, NULL);
	iok_fini();
	return rv;
}
