/*
 * transport.h - the transport interface: a sans-I/O codec over bytes.
 *
 * A transport never touches a socket, a loop or a pattern.  The pipe
 * (src/pipe.c) owns the libuv stream and drives the codec: it feeds received
 * bytes to handshake() until it says done, then cuts frames with frame(),
 * asks classify() where each frame goes, and writes each outgoing message
 * as encode()'s prefix followed by the message's header and body.
 * Everything here runs on the kernel thread; there are no locks.
 */
#ifndef IK_TRANSPORT_H
#define IK_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../src/buf.h"
#include "../src/tflags.h"
#include "../src/url.h"

/* How the pipe reaches the peer. */
enum ik_addr_kind {
	IK_ADDR_NONE = 0, /* inproc */
	IK_ADDR_TCP,      /* host:port, IPv4 or IPv6 */
	IK_ADDR_TCP4,
	IK_ADDR_TCP6,
	IK_ADDR_UNIX /* unix-domain socket path */
};

/* handshake() results (negative values are -IOK_E* errors). */
#define IK_HS_MORE 0 /* feed me more bytes */
#define IK_HS_DONE 1 /* handshake complete; frames follow */

/* classify() results. */
#define IK_FRAME_REPLY 0 /* a reply, or an ordinary message */
#define IK_FRAME_PUSH 1  /* unsolicited (RESP3 push, PG notification) */
#define IK_FRAME_SKIP 2  /* consumed by the codec (e.g. PG notice) */
#define IK_FRAME_LAST \
	3 /* a reply, after which the connection closes: the
                            server is no longer what the URL asked for
                            (e.g. a Redis primary demoted to a replica) */
#define IK_FRAME_SKIP_LAST \
	4 /* consumed by the codec, then the connection closes
                            (e.g. a PostgreSQL standby reported promoted) */

/* Largest prefix encode() may write. */
#define IK_PREFIX_MAX 16

/* What the pipe knows about the connection, given to init(). */
typedef struct ik_tran_params {
	uint16_t      self_proto; /* SP protocol id of our socket (0 = none) */
	int           dialer;     /* 1 if we connected, 0 if we accepted */
	size_t        recv_max;   /* largest frame accepted, 0 = no limit */
	const ik_url *url;        /* credentials, database, query options */
	int           shared;     /* a second socket takes this connection's
	                             pushes (iok_dialer_share) */
} ik_tran_params;

/* A frame found by frame(): bytes [body_off, body_off + body_len) of the
 * buffer are the message; the whole frame is the return value's length. */
typedef struct ik_frame {
	size_t body_off;
	size_t body_len;
	size_t need; /* when frame() returns 0: total bytes needed, if known
	                (lets the pipe size its buffer), else 0 */
} ik_frame;

typedef struct ik_transport {
	const char *scheme;   /* "tcp", "ipc", "redis", ... */
	unsigned    flags;    /* IK_TF_* */
	int         addr;     /* enum ik_addr_kind */
	uint16_t    def_port; /* port used when the URL has none (0 = needed) */
	size_t      state_size;

	/* init prepares the codec state (state_size bytes, zeroed): 0 or
	 * -IOK_E* (e.g. -IOK_EADDRINVAL for unusable URL options). */
	int (*init)(void *st, const ik_tran_params *p);
	void (*fini)(void *st);

	/* handshake is called first with in == NULL, len == 0 so the codec
	 * can queue its opening bytes into out, then with the bytes received
	 * so far (the pipe keeps unconsumed bytes and offers them again with
	 * more appended).  It sets *used to the bytes it consumed and
	 * returns IK_HS_MORE, IK_HS_DONE, or -IOK_E* (IOK_EPROTO malformed or
	 * wrong peer, IOK_EPEERAUTH refused credentials...).  Bytes left
	 * after IK_HS_DONE are frames. */
	int (*handshake)(void *st, const uint8_t *in, size_t len, size_t *used, ik_buf *out);

	/* peer_proto returns the peer's SP protocol id after the handshake
	 * (IK_TF_SP transports only). */
	uint16_t (*peer_proto)(void *st);

	/* frame looks at buf, which always starts at the first byte of the
	 * next frame, and returns the total length of that frame if it is
	 * complete (filling *f), 0 if more bytes are needed (len only grows
	 * between such calls, so a codec may remember its progress), or
	 * -IOK_EMSGSIZE (over recv_max) / -IOK_EPROTO (malformed).  buf is
	 * the pipe's own buffer: a codec may reorder whole protocol messages
	 * inside buf[0..len) (PostgreSQL moves a notification that arrived
	 * inside a reply ahead of it, so each can be a contiguous frame). */
	ssize_t (*frame)(void *st, const uint8_t *buf, size_t len, ik_frame *f);

	/* classify says where a complete frame goes (IK_FRAME_*); NULL means
	 * every frame is IK_FRAME_REPLY. */
	int (*classify)(void *st, const uint8_t *body, size_t len);

	/* encode writes the framing prefix for a message whose header and
	 * body have the given lengths into prefix (IK_PREFIX_MAX bytes) and
	 * returns its length, or -IOK_EINVAL if the message cannot be sent
	 * on this transport (e.g. not one well-formed command). */
	ssize_t (*encode)(void *st, const uint8_t *hdr, size_t hdr_len, const uint8_t *body,
	    size_t body_len, uint8_t *prefix);

	/* skip (may be NULL: an oversize frame then closes the connection)
	 * lets the pipe step over a frame frame() refused with -IOK_EMSGSIZE
	 * without holding it whole, so that only the request it answers
	 * fails.  skip(st, NULL, 0) starts: the codec forgets its partial
	 * frame and reads that frame again from its first byte with no size
	 * limit.  Then, after each frame() call returning 0 on buf[0..len),
	 * skip(st, buf, len) returns how many bytes at the front of buf the
	 * codec will never look at again and forgets them (the pipe drops
	 * them).  The frame() call that returns the frame's (remaining)
	 * length ends the skip; the limit applies again from the next frame. */
	size_t (*skip)(void *st, const uint8_t *buf, size_t len);

	/* set_recv_max changes the largest frame accepted (0 = no limit) on
	 * a live connection (IOK_OPT_RECVMAXSZ set at runtime); NULL if the
	 * codec has no limit of its own. */
	void (*set_recv_max)(void *st, size_t recv_max);

	/* subscribe appends to out the bytes asking the server to start
	 * (how & 1) or stop pushing topic (how & 2: topic is a pattern), e.g.
	 * SUBSCRIBE / PUNSUBSCRIBE or LISTEN / UNLISTEN.  0 or -IOK_E*.  NULL
	 * for transports without pushes. */
	int (*subscribe)(void *st, const uint8_t *topic, size_t len, unsigned how, ik_buf *out);

	/* Optional hooks (NULL when unused). */

	/* encode_full, when set, replaces encode: it appends the whole wire
	 * form of the message to out (for protocols whose requests are not
	 * the message's bytes behind a prefix, e.g. PostgreSQL's extended
	 * query from iok's compact request).  0 or -IOK_E* (-IOK_EINVAL: not
	 * a request this transport can send); on error out may hold a partial
	 * write, which the pipe discards. */
	int (*encode_full)(void *st, const uint8_t *hdr, size_t hdr_len, const uint8_t *body,
	    size_t body_len, ik_buf *out);

	/* release is called when a pinned session lets go of the connection:
	 * it appends bytes that return the connection to a clean state before
	 * anyone else uses it (PostgreSQL: ROLLBACK if a transaction is
	 * open), whose replies the codec consumes itself.  0 or -IOK_E*. */
	int (*release)(void *st, ik_buf *out);

	/* cancel_packet writes the 16 bytes that, sent on a NEW connection to
	 * the same server, cancel what this connection is running
	 * (PostgreSQL's CancelRequest).  0, or -IOK_ENOTSUP (nothing to
	 * cancel, or no key). */
	int (*cancel_packet)(void *st, uint8_t out[16]);

	/* error_text writes a NUL-terminated, human-readable reason for the
	 * failure the codec just returned (e.g. the server's refusal of our
	 * credentials) into buf, "" if it has none.  Never a secret. */
	void (*error_text)(void *st, char *buf, size_t cap);

	/* probe appends a request that costs the server next to nothing
	 * (Redis PING, PostgreSQL an empty Query) and that gets exactly one
	 * reply frame, classified IK_FRAME_REPLY like any other: an active
	 * health check of an idle connection, which the pattern owns (it
	 * sends it only when nothing else is in flight, and consumes its
	 * reply).  0 or -IOK_E*.  probe_ok says whether a reply frame is a
	 * probe's answer (1) or not (0: the stream is out of step).  NULL:
	 * the transport has no probe (TCP keepalive is then the health
	 * check). */
	int (*probe)(void *st, ik_buf *out);
	int (*probe_ok)(void *st, const uint8_t *body, size_t len);
	/* rank says how well the server fits what the URL asked, now (it may
	 * change during the connection): 0 fits; higher is to be used only
	 * while no connection of a lower rank is up (PostgreSQL's
	 * prefer-standby ranks a primary 1).  NULL: always 0. */
	int (*rank)(void *st);
} ik_transport;

#endif /* IK_TRANSPORT_H */
