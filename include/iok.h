/*
 * iok.h - the whole public API of iok, the I/O kernel.
 *
 * iok moves all of a process's network I/O onto ONE background thread (the
 * "kernel thread", a libuv loop) and gives the application nanomsg/nng-style
 * scalability-protocol sockets over it.  The application never touches a
 * connection: it hands whole messages to the kernel and takes whole messages
 * back, through per-socket queues.
 *
 * Conventions
 *   - Every function returns 0 on success or a positive IOK_E* code, except
 *     where documented otherwise.  iok_strerror() explains a code.
 *   - Handles (iok_socket, iok_dialer, iok_listener) are small structs holding
 *     an id.  A stale or closed handle gives IOK_ECLOSED, never a crash.
 *   - "Any thread" means any application thread.  No iok function may be
 *     called from a signal handler.  The kernel thread never runs application
 *     code, so there are no callbacks.
 *   - Names and error numbers follow nng's so nng users feel at home: option
 *     names are the same strings, error codes the same numbers.
 *
 * Threads: every function here may be called from any application thread
 * unless its comment says otherwise.  Blocking calls release nothing of
 * yours: they wait on a condition variable, or use the pollable descriptors
 * (IOK_OPT_RECVFD / IOK_OPT_SENDFD) and IOK_FLAG_NONBLOCK to integrate with
 * an event loop.
 *
 * Spinning: after the kernel thread wakes an application thread that can
 * answer (a receiver of a socket that can also send: rep, req, pair, bus,
 * surveyor, respondent, database), it spins for up to IOK_KERNEL_SPIN_US
 * microseconds (environment, read when the kernel thread starts; default
 * 20, 0 turns it off; a value that is not a whole number from 0 to
 * 1000000 keeps the default) before it sleeps, so an answer sent meanwhile costs
 * no wake-up.  I/O ends the spin at once,
 * and a spin that catches nothing makes the next ones rarer (up to 1 in
 * 64).  The debug endpoint's "kernel" line counts what the spins found,
 * and how many sends had to wake the kernel thread ("wakeups") and how many
 * found it awake and were taken before it slept, with no wake-up
 * ("posted-awake").
 *
 * Watching the wire: a blocking receive on a request/reply socket (req0,
 * rep0, surveyor0, respondent0, pipelined-db) with exactly one tcp or ipc
 * connection, to another process, whose application sent since it last
 * received and has at most one answer outstanding (a req waiting for its
 * reply, a rep for the next request), sleeps in ppoll on that connection's
 * descriptor (and an eventfd of the socket's) instead of the futex, the
 * first time it sleeps after a send (after its spin, below, if the spin
 * caught nothing): the arriving bytes wake it together with the kernel
 * thread, and it spins up to 50 us while the kernel thread reads and
 * delivers them.  A thread that only receives, or has many requests in
 * flight, a pair or bus socket, and a connection whose other end is in
 * this process (one kernel thread serves both ends) sleep on the futex as
 * before.  Timeouts, close and fork behave the same either way;
 * iok_recv_wait waits the same way.  IOK_RECV_WATCH=0 (environment, read
 * once) turns it off; "stat:recv-watches" counts the receives that
 * watched.
 *
 * Spinning for the answer: a blocking receive (iok_recv, iok_recvmsg,
 * iok_recv_wait) on a socket that can also send (req0, rep0, pair, bus,
 * surveyor0, respondent0, pipelined-db) that finds nothing queued spins,
 * before it watches the wire or sleeps, for up to IOK_RECV_SPIN_US
 * microseconds (environment, read when the kernel thread starts; default
 * 50, 0 turns it off, a value that is not a whole number from 0 to 1000000
 * keeps the default; IOK_OPT_RECV_SPIN_US sets it per socket), giving up
 * the CPU now and then (sched_yield) so the thread that will answer can
 * run.  One receiver of a socket spins at a time; a spin that catches
 * nothing makes the next ones rarer (the next 1, 2, 4 ... up to 64
 * receives that wait do not spin).  The spin ends at the receive's
 * deadline, and a close, like a message, ends it at once; with
 * iok_recv_wait's signal mask it runs before the ppoll, so a signal that
 * comes meanwhile ends that ppoll.  Receivers that only receive (pull,
 * sub) never spin.  "stat:recv-spins" counts the receives that spun and
 * "stat:recv-spin-hits" those whose spin caught their message.
 *
 * The kernel thread is named "iok-kernel" (ps -L, top -H, perf, gdb).
 *
 * Fork: handles survive fork().  In the child, the kernel thread restarts on
 * first use; established connections stay the parent's (the child closes its
 * copies), dialers re-dial, listeners keep accepting, and messages queued
 * before the fork are dropped in the child (they belong to the parent).
 */
#ifndef IOK_H
#define IOK_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && !defined(IOK_STATIC_BUILD)
#define IOK_API __attribute__((visibility("default")))
#else
#define IOK_API
#endif

#define IOK_VERSION_MAJOR 0
#define IOK_VERSION_MINOR 1
#define IOK_VERSION_PATCH 0

/* ---------------------------------------------------------------- errors */

/* Error codes.  The numbers are nng's, so code that maps nng errors maps
 * these. */
enum iok_errno {
	IOK_EINTR        = 1,  /* interrupted */
	IOK_ENOMEM       = 2,  /* out of memory */
	IOK_EINVAL       = 3,  /* invalid argument */
	IOK_EBUSY        = 4,  /* resource busy (e.g. pair already paired) */
	IOK_ETIMEDOUT    = 5,  /* timed out */
	IOK_ECONNREFUSED = 6,  /* connection refused */
	IOK_ECLOSED      = 7,  /* object closed, or handle stale */
	IOK_EAGAIN       = 8,  /* would block (non-blocking operation) */
	IOK_ENOTSUP      = 9,  /* not supported (unknown option, pattern...) */
	IOK_EADDRINUSE   = 10, /* address in use */
	IOK_ESTATE       = 11, /* operation not valid in this state */
	IOK_ENOENT       = 12, /* no such entry (unknown scheme, name...) */
	IOK_EPROTO       = 13, /* protocol error (peer sent bad data) */
	IOK_EUNREACHABLE = 14, /* destination unreachable */
	IOK_EADDRINVAL   = 15, /* invalid address (bad URL) */
	IOK_EPERM        = 16, /* permission denied */
	IOK_EMSGSIZE     = 17, /* message too large */
	IOK_ECONNABORTED = 18, /* connection aborted */
	IOK_ECONNRESET   = 19, /* connection reset or lost */
	IOK_ECANCELED    = 20, /* operation canceled */
	IOK_ENOFILES     = 21, /* out of file descriptors */
	IOK_ENOSPC       = 22, /* out of space */
	IOK_EEXIST       = 23, /* already exists */
	IOK_EREADONLY    = 24, /* option is read-only */
	IOK_EWRITEONLY   = 25, /* option is write-only */
	IOK_ECRYPTO      = 26, /* cryptographic error */
	IOK_EPEERAUTH    = 27, /* peer refused our credentials */
	IOK_ENOARG       = 28, /* option needs an argument */
	IOK_EAMBIGUOUS   = 29, /* ambiguous option */
	IOK_EBADTYPE     = 30, /* option accessed with the wrong type */
	IOK_ECONNSHUT    = 31, /* connection shut down */
	IOK_EINTERNAL    = 1000
};

/* iok_strerror returns a static English description of an IOK_E* code (or
 * "Unknown error #N").  Never NULL.  Any thread. */
IOK_API const char *iok_strerror(int err);

/* iok_version returns the library version as "MAJOR.MINOR.PATCH".  Any
 * thread. */
IOK_API const char *iok_version(void);

/* -------------------------------------------------------------- handles */

typedef struct iok_socket_s {
	uint32_t id;
} iok_socket;
typedef struct iok_dialer_s {
	uint32_t id;
} iok_dialer;
typedef struct iok_listener_s {
	uint32_t id;
} iok_listener;
typedef struct iok_msg iok_msg;

#define IOK_SOCKET_INITIALIZER \
	{                      \
		0              \
	}
#define IOK_DIALER_INITIALIZER \
	{                      \
		0              \
	}
#define IOK_LISTENER_INITIALIZER \
	{                        \
		0                \
	}

/* Durations are milliseconds. */
typedef int32_t iok_duration;
#define IOK_DURATION_INFINITE (-1)
#define IOK_DURATION_DEFAULT (-2)
#define IOK_DURATION_ZERO 0

/* Flags for send/recv/dial/listen (the first two have nng's values). */
#define IOK_FLAG_ALLOC 1u /* iok_recv/iok_send: buffer from iok_alloc */
#define IOK_FLAG_NONBLOCK \
	2u /* do not wait: IOK_EAGAIN instead; iok_dial:
                                connect in the background */
/* IOK_FLAG_SYNC is accepted and ignored: a dial without IOK_FLAG_NONBLOCK
 * already waits for its first connection attempt (nng's default).  Kept so
 * code written when dialing was asynchronous by default still builds. */
#define IOK_FLAG_SYNC 4u
#define IOK_FLAG_IDEMPOTENT 8u /* iok_request: safe to send again */

/* ------------------------------------------------------------- sockets */

/* iok_socket_open opens a socket of the named pattern.  Names: "pair0",
 * "pair1", "push0", "pull0", "req0", "rep0", "pub0", "sub0", "surveyor0",
 * "respondent0", "bus0", "pipelined-db" (each also without its version
 * suffix, e.g. "pair" = "pair1", "push" = "push0").  Patterns registered with
 * iok_pattern_register (see "user-defined patterns") are found too.  The
 * first socket starts the kernel thread.
 * Errors: IOK_ENOTSUP unknown pattern, IOK_ENOMEM, IOK_ENOFILES.
 * Any thread. */
IOK_API int iok_socket_open(iok_socket *s, const char *pattern);

/* iok_socket_open_raw opens the raw flavour of a pattern: SP headers stay
 * visible in iok_msg_header(), no request matching or filtering is done.
 * Raw sockets are what devices (iok_device) forward between.
 * Errors: as iok_socket_open; IOK_ENOTSUP if the pattern has no raw mode. */
IOK_API int iok_socket_open_raw(iok_socket *s, const char *pattern);

/* Per-pattern helpers, as nng's nng_<proto>_open.  Same errors as
 * iok_socket_open. */
IOK_API int iok_pair0_open(iok_socket *s);
IOK_API int iok_pair0_open_raw(iok_socket *s);
IOK_API int iok_pair1_open(iok_socket *s);
IOK_API int iok_pair1_open_raw(iok_socket *s);
IOK_API int iok_pair1_open_poly(iok_socket *s);
IOK_API int iok_push0_open(iok_socket *s);
IOK_API int iok_push0_open_raw(iok_socket *s);
IOK_API int iok_pull0_open(iok_socket *s);
IOK_API int iok_pull0_open_raw(iok_socket *s);
IOK_API int iok_req0_open(iok_socket *s);
IOK_API int iok_req0_open_raw(iok_socket *s);
IOK_API int iok_rep0_open(iok_socket *s);
IOK_API int iok_rep0_open_raw(iok_socket *s);
IOK_API int iok_pub0_open(iok_socket *s);
IOK_API int iok_pub0_open_raw(iok_socket *s);
IOK_API int iok_sub0_open(iok_socket *s);
IOK_API int iok_sub0_open_raw(iok_socket *s);
IOK_API int iok_surveyor0_open(iok_socket *s);
IOK_API int iok_surveyor0_open_raw(iok_socket *s);
IOK_API int iok_respondent0_open(iok_socket *s);
IOK_API int iok_respondent0_open_raw(iok_socket *s);
IOK_API int iok_bus0_open(iok_socket *s);
IOK_API int iok_bus0_open_raw(iok_socket *s);
IOK_API int iok_db_open(iok_socket *s); /* "pipelined-db" */

/* iok_close closes a socket: its dialers, listeners and connections go, any
 * thread blocked in a send or receive on it returns IOK_ECLOSED, and its
 * pollable descriptors become readable (so pollers wake up) and are closed
 * once no call is using the socket: for a thread other than the closing
 * one that sent or received on it, that is at that thread's next iok call
 * or its exit (each thread keeps its last few sockets at hand).  Messages still queued for sending are
 * flushed for up to IOK_OPT_LINGER ms while a connection can take them: one
 * that is up, or one a dialer is making.  When nothing can (a dial refused
 * and backing off, a peer that closed, a listener nobody connected to), the
 * close returns at once and those messages are dropped.
 * Errors: IOK_ECLOSED if already closed or stale.
 * Any thread. */
IOK_API int iok_close(iok_socket s);

/* iok_socket_id returns the socket's id (> 0), or -1 for a handle that was
 * never opened.  Any thread. */
IOK_API int iok_socket_id(iok_socket s);

/* iok_fini closes every socket and stops the kernel thread.  It runs by
 * itself at exit.  Later calls to iok functions start a new kernel thread.
 * Call it from one thread when no other thread is using iok. */
IOK_API void iok_fini(void);

/* ------------------------------------------------- dialers and listeners */

/* iok_listen binds url and accepts connections on it for socket s.
 * URLs: tcp://host:port (host "*" or empty = all IPv4 addresses, port 0 =
 * ephemeral; see IOK_OPT_TCP_BOUND_PORT), tcp4://, tcp6://, tcp://[::1]:port,
 * ipc:///path/to/socket, ipc://relative/path, inproc://name.  Host names are
 * resolved on the kernel thread with c-ares.  The call returns once the
 * address is bound.  lp may be NULL.  flags: 0 or IOK_FLAG_NONBLOCK, which
 * is accepted and changes nothing (as with nng: binding is always waited
 * for, since its error is the point of the call); IOK_EINVAL otherwise.
 * Errors: IOK_EADDRINVAL bad URL, IOK_ENOTSUP unknown scheme,
 * IOK_EADDRINUSE address in use, IOK_EPERM, IOK_ECLOSED socket closed.
 * Any thread. */
IOK_API int iok_listen(iok_socket s, const char *url, iok_listener *lp, int flags);

/* iok_listener_create/iok_listener_start split iok_listen so options (e.g.
 * IOK_OPT_RECVMAXSZ) can be set on the listener before it binds.  Errors as
 * iok_listen. */
IOK_API int iok_listener_create(iok_listener *lp, iok_socket s, const char *url);
IOK_API int iok_listener_start(iok_listener l, int flags);

/* iok_dial connects socket s to url (same URL forms as iok_listen, plus the
 * the database schemes: redis://[user:password@]host[:port][/db] and
 * redis+unix:///path/to/socket, both taking ?db=N, ?name=client-name,
 * ?protocol=2 (skip HELLO) and ?role=primary|replica|any (default any: a
 * server in another role, as its HELLO reply says, is refused and retried
 * with backoff, so with several addresses the dialer keeps connections to
 * the ones in that role; with role=primary a READONLY error reply is
 * delivered and then closes its connection, so writes follow a failover
 * within the reconnect time); a pipelined-db socket sends RESP-encoded
 * commands on them and receives each reply as one RESP frame, and a sub
 * socket sharing the dialer gets the pushes; and
 * postgresql://[user[:password]@][host][:port][/db] (also postgres://,
 * several hosts h1:p1,h2:p2 and ?target_session_attrs=; see "PostgreSQL"
 * below).  As with nng, the call waits
 * for the first connection attempt (including the database handshake) and
 * returns its error (IOK_ECONNREFUSED, IOK_EUNREACHABLE, IOK_EPEERAUTH,
 * IOK_ETIMEDOUT when the connect or the handshake outlasts
 * IOK_OPT_CONNECT_TIMEOUT); a failed dial leaves no dialer behind.  Once
 * connected, every lost connection is redialed with exponential backoff
 * between IOK_OPT_RECONNMINT and IOK_OPT_RECONNMAXT.  With
 * IOK_FLAG_NONBLOCK the call only validates the URL and returns:
 * connecting happens on the kernel thread, and a target that is not there
 * yet (no listener, refused) is retried with the same backoff, so dialing
 * before listening works.  IOK_FLAG_SYNC is accepted (the default).  dp
 * may be NULL.  To make a synchronous dial cancellable, split it:
 * iok_dialer_create, then iok_dialer_start; another thread's
 * iok_dialer_close (or iok_close of the socket) ends that wait at once
 * with IOK_ECLOSED.
 * Errors: IOK_EADDRINVAL bad URL, IOK_ENOTSUP unknown scheme,
 * IOK_ECLOSED socket closed, IOK_EINVAL unknown flags; without
 * IOK_FLAG_NONBLOCK also connection errors.
 * Any thread. */
IOK_API int iok_dial(iok_socket s, const char *url, iok_dialer *dp, int flags);

/* iok_dialer_create/iok_dialer_start split iok_dial so per-dialer options
 * can be set first.  iok_dialer_start takes iok_dial's flags (waits for the
 * first attempt unless IOK_FLAG_NONBLOCK); unlike iok_dial, a failed start
 * leaves the dialer to be closed by the caller.  Errors as iok_dial. */
IOK_API int iok_dialer_create(iok_dialer *dp, iok_socket s, const char *url);
IOK_API int iok_dialer_start(iok_dialer d, int flags);

/* iok_dialer_close / iok_listener_close stop one endpoint and close its
 * connections; the socket stays open.  Errors: IOK_ECLOSED.  Any thread. */
IOK_API int iok_dialer_close(iok_dialer d);
IOK_API int iok_listener_close(iok_listener l);

/* iok_dialer_share makes socket s a second user of the connections of
 * dialer d (a dialer of another socket), so two patterns share one
 * connection: frames the transport marks as pushes go to s, replies to
 * d's socket, and s may write on the connection.  Example: a sub socket
 * sharing the Redis connection of a pipelined-db socket: its subscribe
 * option becomes SUBSCRIBE commands and published messages reach it, while
 * commands flow on the same TCP connection.  Subscriptions are sent again
 * after every reconnect.  Closing s detaches it; closing d's socket ends
 * the sharing.
 * Errors: IOK_ENOTSUP (the transport has no pushes, e.g. SP over tcp),
 * IOK_EBUSY (d already shared), IOK_EINVAL (s owns d), IOK_ECLOSED.
 * Any thread. */
IOK_API int iok_dialer_share(iok_dialer d, iok_socket s);

/* iok_dialer_id / iok_listener_id return the id (> 0) or -1. */
IOK_API int iok_dialer_id(iok_dialer d);
IOK_API int iok_listener_id(iok_listener l);

/* ------------------------------------------------------------ discovery */

/* A dial target is a name that keeps being resolved on the kernel thread;
 * the dialer keeps IOK_OPT_POOL_SIZE connections to EVERY address of the
 * current set, dials addresses that appear and closes connections to
 * addresses that leave.  pipelined-db drains them first: no new request
 * goes there, those in flight complete, then the connection closes (after
 * 10 s at most: what is still in flight then fails with IOK_ECONNRESET,
 * or is retried elsewhere when idempotent).  Other patterns close them at
 * once (req resends elsewhere).  No request is lost silently.  Dial URL
 * forms (tcp shown; any transport scheme works):
 *
 *   tcp://name:5555             A/AAAA records, re-resolved on their TTL
 *                               (clamped to IOK_OPT_DNS_TTL_MIN/MAX) and
 *                               at once after a connection fails
 *   tcp://10.0.0.1:5555,10.0.0.2:5555   a static list (libpq's comma
 *                               form; also redis://h1,h2:6380/0 and
 *                               postgresql://u@h1:5432,h2/db); names in the
 *                               list are resolved as above
 *   tcp+srv://_svc._tcp.name    DNS SRV: the targets of the records with
 *                               the lowest priority, their ports and
 *                               weights, re-read on the answer's TTL
 *   tcp+file:///path/peers      a watched file: one "host:port[ weight]"
 *                               per line, '#' comments; re-read when the
 *                               file (or its directory) changes; a file
 *                               with a malformed line is ignored whole
 *   tcp+zk://10.0.0.5:2181,10.0.0.6:2181/services/db
 *                               ZooKeeper (built when libzookeeper-st was
 *                               found at build time; else IOK_ENOENT): the
 *                               NAMES of the children of the znode are the
 *                               addresses, "host:port" or "host:port:weight"
 *                               ("[v6]:port[:weight]"); their data is not
 *                               read.  Re-read on a child watch, on every
 *                               (re)connection and after an expired session
 *                               (a new one is made).  A child name of any
 *                               other form is ignored and counted
 *                               (IOK_OPT_DISC_REJECTED); the others still
 *                               count.  The servers must be IP literals (the
 *                               ZooKeeper client would resolve names with a
 *                               blocking call).  While ZooKeeper is
 *                               unreachable, or the znode is missing, the
 *                               last set is kept.  The client library
 *                               (libzookeeper_st) keeps static buffers: the
 *                               application must not use it on another
 *                               thread itself.
 *   tcp+NAME://target           a backend registered as NAME
 *
 * DNS servers: the dialer option IOK_OPT_DNS_SERVERS, else the environment
 * variable IOK_DNS_SERVERS ("host:port,host:port", read when the first
 * lookup through the default servers happens), else /etc/resolv.conf.
 * A failed lookup keeps the last known set. */

/* One address a backend reports.  host is an IP literal or a DNS name (iok
 * resolves names itself, A/AAAA, following their TTL); port 0 means the
 * transport's default port; weight 0 counts as 1. */
typedef struct iok_discovery_addr {
	const char *host;
	uint16_t    port;
	uint16_t    weight;
} iok_discovery_addr;

/* One target being watched by a backend (opaque; valid from start until
 * stop returns). */
typedef struct iok_discovery_watch iok_discovery_watch;

/* A discovery backend.  EVERY function runs on the kernel thread, the one
 * thread that does all of iok's I/O: it must not block (no blocking
 * network calls; reading a small local file is fine) and must not call
 * iok functions other than the iok_discovery_* ones documented as
 * "kernel thread".
 *   start    begin watching target (the URL after "scheme+NAME://", before
 *            any '?', without "user@"); store your state in *state.
 *            Report (iok_discovery_update) now or later.  Return 0 or an
 *            IOK_E* code (the dial fails with it).
 *   refresh  look again now: a connection to one of the addresses failed,
 *            or the ttl of the last report ran out.  May be NULL.
 *   stop     the dialer is gone: cancel everything, free state.  No
 *            iok_discovery_* call with this watch after it returns. */
typedef struct iok_discovery_backend {
	const char *name; /* [a-z0-9-]+, the "+NAME" of the URL scheme */
	int (*start)(iok_discovery_watch *w, const char *target, void **state);
	void (*refresh)(void *state);
	void (*stop)(void *state);
} iok_discovery_backend;

/* iok_discovery_register adds a backend; b must stay valid until the
 * process exits.  Errors: IOK_EINVAL (bad name or NULL start/stop),
 * IOK_EEXIST (name taken, including the built-in "srv", "file", "static",
 * "dns"), IOK_ENOSPC (table full: 16 user backends).  Any thread. */
IOK_API int iok_discovery_register(const iok_discovery_backend *b);

/* iok_discovery_update replaces the set watch w reports with n addresses
 * (copied; n 0 empties it).  refresh is called after ttl ms (clamped to
 * the dialer's IOK_OPT_DNS_TTL_MIN/MAX), or never with
 * IOK_DURATION_INFINITE.  Errors: IOK_EINVAL (n < 0, more than 64
 * addresses, an empty or too long host).  Kernel thread only (from a
 * backend function, or a libuv callback on iok_discovery_loop). */
IOK_API int iok_discovery_update(
    iok_discovery_watch *w, const iok_discovery_addr *addrs, int n, iok_duration ttl);

/* iok_discovery_fail says a look-up failed with err (an IOK_E* code): the
 * last set is kept, a dialer that never had one reports err (a
 * synchronous dial returns it), and refresh is called again after retry
 * ms (clamped as above; IOK_DURATION_DEFAULT = IOK_OPT_DNS_TTL_MIN).
 * Kernel thread only. */
IOK_API void iok_discovery_fail(iok_discovery_watch *w, int err, iok_duration retry);

/* iok_discovery_reject says the backend ignored one entry of what it
 * read (malformed, out of range): it counts in the dialer's
 * IOK_OPT_DISC_REJECTED, so a bad entry is visible without failing the
 * good ones.  entry may be NULL.  Kernel thread (as iok_discovery_update). */
IOK_API void iok_discovery_reject(iok_discovery_watch *w, const char *entry);

/* iok_discovery_loop returns the kernel thread's libuv loop (a uv_loop_t
 * *), so a backend can watch its own descriptors and timers.  Kernel
 * thread only (NULL elsewhere). */
IOK_API void *iok_discovery_loop(void);

/* ---------------------------------------------------------- send, recv */

/* iok_send copies size bytes from data into a new message and queues it for
 * sending.  With IOK_FLAG_ALLOC (as nng), data is a buffer of size bytes
 * from iok_alloc that becomes the message without a copy: on success it
 * belongs to iok (do not touch or free it), on failure it is still the
 * caller's.  It blocks while the socket's send queue is full (up to
 * IOK_OPT_SENDTIMEO), unless flags has IOK_FLAG_NONBLOCK.
 * Errors: IOK_EAGAIN (non-blocking and full), IOK_ETIMEDOUT, IOK_ECLOSED,
 * IOK_ENOMEM, IOK_ESTATE (pattern cannot send now, e.g. rep with no
 * request), IOK_ENOTSUP (pattern never sends, e.g. pull, sub),
 * IOK_EMSGSIZE (every peer is inproc and none accepts a message this big:
 * see IOK_OPT_RECVMAXSZ).
 * Any thread. */
IOK_API int iok_send(iok_socket s, const void *data, size_t size, int flags);

/* iok_recv takes the next message.  Without IOK_FLAG_ALLOC, data is a
 * buffer of *sizep bytes: up to *sizep bytes are copied and *sizep is set to
 * the message's full length (greater than the buffer if it was cut short).
 * With IOK_FLAG_ALLOC, data is a void ** that receives a buffer iok
 * allocated (free it with iok_free(ptr, *sizep)).  Blocks while the receive
 * queue is empty (up to IOK_OPT_RECVTIMEO) unless IOK_FLAG_NONBLOCK.
 * Errors: IOK_EAGAIN, IOK_ETIMEDOUT, IOK_ECLOSED, IOK_ENOMEM, IOK_ESTATE
 * (req/surveyor used plainly with no request outstanding, as nng),
 * IOK_ENOTSUP (pattern never receives, e.g. push, pub), and for replies that
 * the kernel completed with an error (see iok_msg_status) that error: a
 * plain surveyor's receive ends with IOK_ETIMEDOUT when the survey does.
 * Any thread. */
IOK_API int iok_recv(iok_socket s, void *data, size_t *sizep, int flags);

/* iok_sendmsg queues a message without copying; on success the message now
 * belongs to iok.  On failure the caller still owns it.
 * Errors: as iok_send.  Any thread. */
IOK_API int iok_sendmsg(iok_socket s, iok_msg *m, int flags);

/* iok_recvmsg takes the next message; the caller owns it and frees it with
 * iok_msg_free.  Errors: as iok_recv (a kernel-completed error reply is
 * still returned as a message with iok_msg_status != 0, and the call
 * returns 0).  Any thread. */
IOK_API int iok_recvmsg(iok_socket s, iok_msg **mp, int flags);

/* iok_recvmsg_many waits like iok_recvmsg for a message, then takes up to
 * max of the messages waiting, oldest first, in one go, into mv[0..*np);
 * each is the caller's, as from iok_recvmsg.  Taking several is the same
 * as calling iok_recvmsg that many times in a row, without the per-call
 * cost (for bindings and consumers that drain a queue).  It takes max, or
 * every message waiting: a shorter answer means the queue is empty now.
 * On a socket whose plain receive decides what the next plain send means
 * (cooked rep0 and respondent0; req0 and surveyor0 until iok_request is
 * first used on them) it takes one message at a time.  Returns 0 with
 * *np >= 1, or an error of iok_recvmsg with *np == 0; IOK_EINVAL for
 * max == 0 or NULL pointers.
 * Any thread. */
IOK_API int iok_recvmsg_many(iok_socket s, iok_msg **mv, size_t max, size_t *np, int flags);

/* iok_recv_wait waits until a receive on s may find a message, without
 * taking it: for bindings and event loops that receive with
 * IOK_FLAG_NONBLOCK and must stay interruptible.  timeout in ms (< 0: no
 * limit, 0: only look; the receive timeout option does not apply).  It
 * watches the wire, or spins for the answer, as a blocking receive does
 * (see the top of this file).
 * With sigmask NULL it returns once a message waits.  With a signal mask
 * it waits in ppoll(2) with that mask, as pselect(2) does: block the
 * signals you handle, check your flags, then call this with the mask to
 * wait under; a signal caught meanwhile returns IOK_EINTR.  Such a wait
 * may also return 0 with nothing to take (another thread took it, or the
 * receive descriptor, IOK_OPT_RECVFD, was written to, which wakes it too,
 * as a binding that keeps its own batch does): receive with
 * IOK_FLAG_NONBLOCK, and on IOK_EAGAIN wait again.
 * Returns 0, IOK_ETIMEDOUT, IOK_EINTR (sigmask only), IOK_ECLOSED,
 * IOK_ENOTSUP (the pattern cannot receive), IOK_ESTATE (as iok_recv:
 * nothing can arrive), IOK_ENOFILES (sigmask: no descriptor could be
 * made).  Any thread; several may wait at once. */
IOK_API int iok_recv_wait(iok_socket s, iok_duration timeout, const sigset_t *sigmask);

/* ------------------------------------------------ many requests at once */

/* iok_request sends a request on a req0, surveyor0 or pipelined-db socket
 * and returns at once with a token identifying it; any number of requests
 * may be outstanding on one socket.  Each reply arrives through iok_recvmsg
 * carrying the request's token (iok_msg_token), in whatever order replies
 * come.  If the pattern gives up on a request (IOK_OPT_REQ_TIMEOUT expired,
 * connection lost while it was in flight on a pattern that does not
 * resend), a message with that token and iok_msg_status() set to the error
 * is delivered instead, so every request completes exactly once (a surveyor
 * delivers each respondent's reply and then one IOK_ETIMEDOUT message when
 * the survey ends).  Do not mix with plain iok_send/iok_recv on the same
 * socket.
 * On success m belongs to iok.  Errors: as iok_sendmsg, IOK_ENOTSUP for
 * other patterns. Any thread. */
IOK_API int iok_request(iok_socket s, iok_msg *m, uint64_t *token, int flags);

/* With IOK_FLAG_IDEMPOTENT, a pipelined-db request that was in flight on a
 * connection that dropped is sent once more on a new connection instead of
 * completing with IOK_ECONNRESET. */

/* iok_cancel gives up on a request: a reply arriving later is dropped, and
 * no completion is delivered for it.  A reply already queued for the
 * application may still be received; ignore unknown tokens.
 * Errors: IOK_ECLOSED.  Any thread. */
IOK_API int iok_cancel(iok_socket s, uint64_t token);

/* iok_reply answers the request that arrived as a message with this token
 * on a rep0 or respondent0 socket, so one socket can serve many requests
 * concurrently.  On success m belongs to iok.  The reply travels
 * asynchronously: one for an unknown token, or whose connection is gone,
 * is dropped and counted in "stat:tx-dropped".  A second reply to one
 * request is dropped too: on respondent0, and on rep0 for a request that
 * came through a device, here ("stat:tx-dropped"); on rep0 for a request
 * straight from its requester, by the requester, as a late reply (its
 * "stat:rx-dropped"), since such a request leaves no state on this side.
 * Errors: IOK_EINVAL (token 0), IOK_ENOTSUP (not rep/respondent), others
 * as iok_sendmsg.  Any thread. */
IOK_API int iok_reply(iok_socket s, iok_msg *m, uint64_t token, int flags);

/* ------------------------------------------------ sessions (affinity) */

/* A session pins one connection of a pipelined-db socket: requests whose
 * message carries the session id (iok_msg_set_session) all go, in order, on
 * the same connection, and nobody else's requests are sent on it until
 * the session is closed.  That is what MULTI/EXEC, WATCH or a PostgreSQL
 * transaction need.  If the pinned connection drops, the session's
 * in-flight and later requests complete with IOK_ECONNRESET until it is
 * closed.
 * iok_session_open returns a new session id (no I/O happens until its
 * first request).  iok_session_close releases it once its requests are
 * done.  Errors: IOK_ENOTSUP (not a pipelined-db socket), IOK_ECLOSED.
 * Any thread. */
IOK_API int iok_session_open(iok_socket s, uint32_t *session);
IOK_API int iok_session_close(iok_socket s, uint32_t session);

/* --------------------------------------------------------------- devices */

/* iok_device forwards every message received on raw socket a to raw
 * socket b, and every message received on b to a, entirely on the kernel
 * thread (no application thread is involved).  With b's id 0
 * (IOK_SOCKET_INITIALIZER), or b == a, a is a reflector: what arrives on
 * it goes back out of it (for self-peered patterns: pair, bus).
 *
 * Against nng_device(s1, s2):
 *   same:   both sockets must be raw and each one's protocol the other's
 *           peer (else IOK_EINVAL); one invalid socket makes a reflector;
 *           SP headers (backtraces, hop counts limited by IOK_OPT_MAXTTL)
 *           pass through unchanged, so devices chain as in nng.
 *   differs: nng_device blocks the calling thread until a socket closes and
 *           then returns that error (nng_device_aio is the asynchronous
 *           form); iok_device returns 0 at once, like nng_device_aio
 *           started, and the device stops, silently, when either socket
 *           closes.  A socket can be in one device at a time (IOK_EBUSY).
 *           Messages already queued for the application when the device
 *           starts stay there for iok_recv; only later ones are forwarded.
 * Errors: IOK_EINVAL (a socket not raw, or not a compatible pair),
 * IOK_ECLOSED, IOK_EBUSY (a socket is already in a device).
 * Any thread. */
IOK_API int iok_device(iok_socket a, iok_socket b);

/* ------------------------------------------------ user-defined patterns */

/* A pattern is the protocol logic of a socket (who a message goes to, what
 * is delivered).  iok_pattern_register adds one from outside the library,
 * the same way the built-in ones are plugged in; iok_socket_open then
 * opens sockets of it by name.  Every function of the table runs on the
 * kernel thread, one call at a time, so a pattern needs no locks; it must
 * never block, and may call only the iok_pattern_* services below (not
 * the application calls: iok_send, iok_recv, iok_close...).
 *
 * This is a reduced public form of the internal pattern table: no options
 * of its own (names the core does not know give IOK_ENOTSUP), no timers,
 * no request tokens (iok_request/iok_reply stay the built-in patterns').
 * Messages arriving on a pipe still carry the peer's SP header at the
 * front of the body, exactly as on the wire; messages a pattern sends go
 * out as they are (header, then body). */

typedef struct iok_pattern_socket iok_pattern_socket; /* opaque */
typedef struct iok_pattern_pipe   iok_pattern_pipe;   /* opaque */

/* Return values of send, recv and iok_pattern_deliver. */
#define IOK_PATTERN_OK 0   /* taken (sent, delivered, queued or dropped) */
#define IOK_PATTERN_BUSY 1 /* not now: the core keeps the message */

/* Flags. */
#define IOK_PATTERN_SEND 0x01 /* the application may send */
#define IOK_PATTERN_RECV 0x02 /* the application may receive */

typedef struct iok_pattern {
	const char *name;      /* as iok_socket_open takes it, < 32 bytes */
	const char *peer_name; /* the peer pattern's name (IOK_OPT_PEERNAME) */
	uint16_t    proto;     /* SP protocol id sent in the handshake */
	uint16_t    peer;      /* SP protocol id a peer must announce */
	unsigned    flags;     /* IOK_PATTERN_* */
	size_t      sock_size; /* per-socket state the core allocates, zeroed */
	size_t      pipe_size; /* per-connection state, zeroed */

	/* init: a socket opened (raw is always 0: no raw mode).  ps is its
	 * state; s identifies it to the services.  0, or an IOK_E* code that
	 * iok_socket_open returns.  May be NULL. */
	int (*init)(void *ps, iok_pattern_socket *s, int raw);
	/* fini: the socket is gone (every pipe was removed first); free what
	 * the state owns.  May be NULL. */
	void (*fini)(void *ps);
	/* pipe_add: a connection joined (handshake done, peer id checked).
	 * 0 accepts it; IOK_EBUSY or IOK_EPROTO refuses it and the core
	 * closes it.  pipe_rm: it left; forget p (messages it held were
	 * freed by the core). */
	int (*pipe_add)(void *ps, void *pp, iok_pattern_pipe *p);
	void (*pipe_rm)(void *ps, void *pp);
	/* send: the application sent m.  IOK_PATTERN_OK: the pattern took it
	 * (and owns it); IOK_PATTERN_BUSY: the core keeps it at the head of
	 * the send queue and offers it again after pipe_add, pipe_ready or
	 * iok_pattern_send_ready.  Required if flags has IOK_PATTERN_SEND. */
	int (*send)(void *ps, iok_msg *m);
	/* recv: a whole message arrived on a pipe.  IOK_PATTERN_OK: taken;
	 * IOK_PATTERN_BUSY: the core keeps it, pauses that pipe and offers
	 * it again when the receive queue has room.  Required. */
	int (*recv)(void *ps, void *pp, iok_msg *m);
	/* pipe_ready: p's write queue drained (may be NULL). */
	void (*pipe_ready)(void *ps, void *pp);
} iok_pattern;

/* iok_pattern_register adds pattern p under p->name (and under the name
 * without a trailing version digit, "echo0" -> "echo", when that is free).
 * The table is copied, but its strings and functions are used in place:
 * they must stay valid for the life of the process.
 * Typically called once at start-up.
 * Errors: IOK_EINVAL (NULL, no name, no recv, IOK_PATTERN_SEND without
 * send, unknown flags), IOK_EEXIST (the name is taken, built-in names
 * included), IOK_ENOSPC (the table is full or the name too long),
 * IOK_ENOMEM.  Any thread. */
IOK_API int iok_pattern_register(const iok_pattern *p);

/* Services for pattern functions (kernel thread only, from inside a
 * function of the table, with the socket or pipe it was given): */
/* iok_pattern_pipe_id: the pipe's id, as iok_msg_get_pipe reports it. */
IOK_API uint32_t iok_pattern_pipe_id(const iok_pattern_pipe *p);
/* iok_pattern_pipe_send queues m for writing on p and always takes it.
 * 0 if queued; otherwise it was dropped (counted in stat:tx-dropped):
 * IOK_ECLOSED (p is closing), IOK_ENOMEM. */
IOK_API int iok_pattern_pipe_send(iok_pattern_pipe *p, iok_msg *m);
/* iok_pattern_pipe_writable: nonzero while p's write queue is below its
 * high-water mark (a send then will not pile up). */
IOK_API int iok_pattern_pipe_writable(const iok_pattern_pipe *p);
/* iok_pattern_pipe_close drops the connection (e.g. malformed input);
 * pipe_rm follows later, never from inside this call. */
IOK_API void iok_pattern_pipe_close(iok_pattern_pipe *p, int err);
/* iok_pattern_deliver queues m for the application's iok_recv.
 * IOK_PATTERN_OK: taken.  IOK_PATTERN_BUSY: the receive queue is full and
 * m is still the caller's (from recv, return IOK_PATTERN_BUSY). */
IOK_API int iok_pattern_deliver(iok_pattern_socket *s, iok_msg *m);
/* iok_pattern_send_ready: the pattern can take messages again (after
 * refusing with IOK_PATTERN_BUSY for a reason the core cannot see). */
IOK_API void iok_pattern_send_ready(iok_pattern_socket *s);

/* ------------------------------------------------------------- messages */

/* iok_msg_alloc makes a message with a body of size bytes (uninitialised).
 * Errors: IOK_ENOMEM. */
IOK_API int iok_msg_alloc(iok_msg **mp, size_t size);
/* iok_msg_free frees a message (NULL is ignored). */
IOK_API void iok_msg_free(iok_msg *m);
/* iok_msg_realloc resizes the body, keeping its contents. IOK_ENOMEM. */
IOK_API int iok_msg_realloc(iok_msg *m, size_t size);
/* iok_msg_dup copies a message, header and body. IOK_ENOMEM. */
IOK_API int iok_msg_dup(iok_msg **dup, const iok_msg *m);

IOK_API void  *iok_msg_body(iok_msg *m);
IOK_API size_t iok_msg_len(const iok_msg *m);
/* Body editing: append at the end, insert at the front, trim from the
 * front, chop from the end.  trim/chop: IOK_EINVAL if len is too long. */
IOK_API int  iok_msg_append(iok_msg *m, const void *data, size_t len);
IOK_API int  iok_msg_insert(iok_msg *m, const void *data, size_t len);
IOK_API int  iok_msg_trim(iok_msg *m, size_t len);
IOK_API int  iok_msg_chop(iok_msg *m, size_t len);
IOK_API void iok_msg_clear(iok_msg *m);
/* Big-endian (network order) integers, as nng's: append/insert put v at
 * the end/front of the body; trim/chop take one off the front/end into *v.
 * Errors: IOK_ENOMEM (append/insert), IOK_EINVAL (trim/chop: body shorter
 * than the integer, or v NULL; the message is left unchanged).  Whoever
 * owns the message may call them. */
IOK_API int iok_msg_append_u16(iok_msg *m, uint16_t v);
IOK_API int iok_msg_append_u32(iok_msg *m, uint32_t v);
IOK_API int iok_msg_append_u64(iok_msg *m, uint64_t v);
IOK_API int iok_msg_insert_u16(iok_msg *m, uint16_t v);
IOK_API int iok_msg_insert_u32(iok_msg *m, uint32_t v);
IOK_API int iok_msg_insert_u64(iok_msg *m, uint64_t v);
IOK_API int iok_msg_trim_u16(iok_msg *m, uint16_t *v);
IOK_API int iok_msg_trim_u32(iok_msg *m, uint32_t *v);
IOK_API int iok_msg_trim_u64(iok_msg *m, uint64_t *v);
IOK_API int iok_msg_chop_u16(iok_msg *m, uint16_t *v);
IOK_API int iok_msg_chop_u32(iok_msg *m, uint32_t *v);
IOK_API int iok_msg_chop_u64(iok_msg *m, uint64_t *v);

/* The SP header (request ids, backtraces, hop counts): empty on cooked
 * sockets, visible on raw ones.  At most IOK_MSG_HEADER_MAX bytes
 * (IOK_EMSGSIZE beyond). */
#define IOK_MSG_HEADER_MAX 64
IOK_API void  *iok_msg_header(iok_msg *m);
IOK_API size_t iok_msg_header_len(const iok_msg *m);
IOK_API int    iok_msg_header_append(iok_msg *m, const void *data, size_t len);
IOK_API int    iok_msg_header_insert(iok_msg *m, const void *data, size_t len);
IOK_API int    iok_msg_header_trim(iok_msg *m, size_t len);
IOK_API int    iok_msg_header_chop(iok_msg *m, size_t len);
IOK_API void   iok_msg_header_clear(iok_msg *m);
/* The same integer calls on the header.  Errors: IOK_EMSGSIZE (the header
 * would exceed IOK_MSG_HEADER_MAX), IOK_EINVAL (header shorter than the
 * integer, or v NULL). */
IOK_API int iok_msg_header_append_u16(iok_msg *m, uint16_t v);
IOK_API int iok_msg_header_append_u32(iok_msg *m, uint32_t v);
IOK_API int iok_msg_header_append_u64(iok_msg *m, uint64_t v);
IOK_API int iok_msg_header_insert_u16(iok_msg *m, uint16_t v);
IOK_API int iok_msg_header_insert_u32(iok_msg *m, uint32_t v);
IOK_API int iok_msg_header_insert_u64(iok_msg *m, uint64_t v);
IOK_API int iok_msg_header_trim_u16(iok_msg *m, uint16_t *v);
IOK_API int iok_msg_header_trim_u32(iok_msg *m, uint32_t *v);
IOK_API int iok_msg_header_trim_u64(iok_msg *m, uint64_t *v);
IOK_API int iok_msg_header_chop_u16(iok_msg *m, uint16_t *v);
IOK_API int iok_msg_header_chop_u32(iok_msg *m, uint32_t *v);
IOK_API int iok_msg_header_chop_u64(iok_msg *m, uint64_t *v);

/* The id of the connection ("pipe") a received message came on, 0 if none.
 * Setting it on a message sent on a raw/polyamorous socket picks the pipe. */
IOK_API uint32_t iok_msg_get_pipe(const iok_msg *m);
IOK_API void     iok_msg_set_pipe(iok_msg *m, uint32_t pipe_id);
/* The session a request belongs to (see iok_session_open), 0 = none. */
IOK_API void     iok_msg_set_session(iok_msg *m, uint32_t session);
IOK_API uint32_t iok_msg_get_session(const iok_msg *m);
/* Whether a message arrived as an unsolicited push frame (a Redis RESP3
 * push, a PostgreSQL notification) rather than as a reply. */
IOK_API int iok_msg_is_push(const iok_msg *m);
/* The request token of a reply (see iok_request / iok_reply), else 0. */
IOK_API uint64_t iok_msg_token(const iok_msg *m);
/* 0 for a real message; an IOK_E* code for a completion the kernel made
 * because a request failed (timeout, connection lost). */
IOK_API int iok_msg_status(const iok_msg *m);

/* iok_alloc / iok_free: memory for iok_recv and iok_send with
 * IOK_FLAG_ALLOC.  iok_alloc returns NULL when out of memory.  Any
 * thread. */
IOK_API void *iok_alloc(size_t size);
IOK_API void  iok_free(void *ptr, size_t size);
/* iok_strfree frees a string returned by a *_get_string call. */
IOK_API void iok_strfree(char *s);

/* --------------------------------------------------------- Redis (RESP) */

/* A pipelined-db socket dialed to redis:// sends one command per message
 * (build it with iok_resp_command) and receives each reply as one message
 * holding one complete RESP2/RESP3 reply in wire format (an attribute and
 * the value it annotates count as one reply).  Read it with
 * iok_resp_reader, hiredis's redisReader in pull form. */

/* iok_resp_command makes a message holding one command: a RESP array of
 * argc bulk strings, argv[i] being lens[i] bytes (any bytes, NULs
 * included), or a NUL-terminated string when lens is NULL.  An argument
 * may be NULL only with length 0.
 * Errors: IOK_EINVAL (argc < 1, argv NULL, a NULL argument with a
 * length), IOK_ENOMEM; *mp is untouched on error.  Any thread. */
IOK_API int iok_resp_command(iok_msg **mp, int argc, const char *const *argv, const size_t *lens);

/* Item types: the RESP type byte itself. */
enum iok_resp_type {
	IOK_RESP_SIMPLE   = '+', /* simple string (status): str/len */
	IOK_RESP_ERROR    = '-', /* simple error: str/len */
	IOK_RESP_INTEGER  = ':', /* integer */
	IOK_RESP_BULK     = '$', /* bulk string: str/len; null for $-1 */
	IOK_RESP_ARRAY    = '*', /* count elements follow; null for *-1 */
	IOK_RESP_NULL     = '_', /* RESP3 null (null is set) */
	IOK_RESP_MAP      = '%', /* count pairs (2 * count items) follow */
	IOK_RESP_SET      = '~', /* count elements follow */
	IOK_RESP_DOUBLE   = ',', /* dval; str/len holds the text */
	IOK_RESP_BOOL     = '#', /* boolean */
	IOK_RESP_BIGNUM   = '(', /* big number: its digits in str/len */
	IOK_RESP_VERBATIM = '=', /* verbatim string: fmt, and str/len the
	                            text after "fmt:" */
	IOK_RESP_PUSH     = '>', /* out-of-band push: count elements follow */
	IOK_RESP_ATTR     = '|', /* attribute: count pairs follow, then the
	                            value it annotates, at the attribute's
	                            own depth */
	IOK_RESP_BLOBERR  = '!'  /* blob error: str/len */
};

/* Deepest nesting a reply may have (aggregates inside aggregates). */
#define IOK_RESP_DEPTH_MAX 128

/* One item of a reply.  str points into the reply (valid while it lives;
 * not NUL-terminated).  Fields a type does not use are 0/NULL. */
typedef struct iok_resp_item {
	int            type;  /* enum iok_resp_type */
	int            null;  /* 1 for $-1, *-1 and _ */
	unsigned       depth; /* 0 = the reply's top level; the elements of
	                           an aggregate at depth d are at d + 1 */
	const uint8_t *str;   /* + - $ ! ( , = */
	size_t         len;
	int64_t        integer; /* : */
	double         dval;    /* , (in the C locale, whatever LC_NUMERIC) */
	int            boolean; /* #: 0 or 1 */
	size_t         count;   /* * ~ >: elements; % |: pairs */
	char           fmt[4];  /* =: the format, e.g. "txt", NUL-terminated */
} iok_resp_item;

/* The reader: a pure state machine over one complete reply (no
 * allocation, no I/O), meant to live on the stack.  Fields are private
 * (their layout is the library's, checked when it is built). */
typedef struct iok_resp_reader {
	const uint8_t *buf_;
	size_t         len_, pos_;
	int            done_;
	struct {
		unsigned depth_;
		uint64_t pending_;
		uint32_t left_[IOK_RESP_DEPTH_MAX + 1];
	} nest_;
} iok_resp_reader;

/* iok_resp_reader_init prepares r to read the reply buf[0..len) (e.g. a
 * message body).  Nothing is read until iok_resp_next.  Any thread. */
IOK_API void iok_resp_reader_init(iok_resp_reader *r, const void *buf, size_t len);
/* iok_resp_next fills *it with the next item in pre-order (an aggregate's
 * header, then its elements) and returns 1; returns 0 once the reply is
 * complete and ends exactly at len; or -IOK_EPROTO if the bytes are
 * malformed, truncated, followed by anything, nested deeper than
 * IOK_RESP_DEPTH_MAX or declaring over 2^24 elements.  Never reads outside
 * the buffer.  After an error or 0, it keeps returning the same.
 * Any thread (one reader per thread). */
IOK_API int iok_resp_next(iok_resp_reader *r, iok_resp_item *it);

/* ---------------------------------------------------------- PostgreSQL */

/* A pipelined-db socket dialed to postgresql://user:password@host:port/db
 * (also postgres://, ?application_name=, ?options=, ?host=/unix/dir as
 * libpq reads them) sends PostgreSQL requests built by the calls below and
 * receives each reply as ONE message: every backend message the request
 * produced, up to and including its ReadyForQuery, in wire format.  Read a
 * reply with iok_pg_reader.  Requests are pipelined on the connection; each
 * one is self-contained (extended protocol: Parse when the statement is not
 * yet prepared on that connection, Bind, Describe, Execute, Sync), so an
 * error fails its own request only.
 *
 * URLs, as libpq reads them: user, password (percent-decoded) and database
 * from the URL (or ?user=, ?password=, ?dbname=); default port 5432
 * (?port= overrides); ?host= overrides the host, and a host that starts
 * with '/' (?host=/dir, or percent-encoded %2Fdir in the authority) is the
 * directory of a unix socket DIR/.s.PGSQL.PORT; no host at all means
 * /var/run/postgresql.  ?application_name= and ?options= (e.g.
 * "-c statement_timeout=100", percent-encoded) go into the startup
 * message; client_encoding is always UTF8.  A user is required.
 * Authentication: trust, cleartext password, md5 and SCRAM-SHA-256 (the
 * server must prove it knows the verifier).  Refused credentials make a
 * synchronous dial fail with IOK_EPEERAUTH (the server's refusal, class 28;
 * other startup refusals such as an unknown database give
 * IOK_ECONNREFUSED); IOK_EPEERAUTH counts in "stat:proto-errors".  The password is
 * never logged, echoed or kept after authentication.
 *
 * Several servers and roles: postgresql://u@h1:5432,h2:5433/db (or
 * libpq's ?host=h1,h2&port=5432,5433, one port or one per host) lists
 * servers (see "discovery"); the dialer keeps
 * connections to each one that fits ?target_session_attrs= (libpq's
 * names): any (default), read-write (not in hot standby and
 * default_transaction_read_only off), read-only (the opposite), primary
 * (not in hot standby), standby (in hot standby), prefer-standby (any
 * server, but requests go to a standby while one is up, to a primary
 * only while none is).  The role is read from the in_hot_standby and
 * default_transaction_read_only the server reports (PostgreSQL 14+; an
 * older server is asked with one query at the end of the handshake).  A
 * server that does not fit fails its handshake with IOK_ESTATE (a
 * synchronous dial returns it when no server fits; "last-error" names the
 * server's state) and is retried with backoff, so a server that comes to
 * fit (a standby promoted) is used within IOK_OPT_RECONNMAXT.  A role
 * change reported during a connection (a standby promoted, a primary
 * made read-only) is judged again: a connection that no longer fits
 * delivers the reply that told it and closes; on a read-write
 * connection, a write refused with SQLSTATE 25006 outside a transaction
 * block is delivered (the server's error) and closes the connection too.
 * Requests in flight on a closed connection complete with
 * IOK_ECONNRESET (idempotent ones are retried), never silently.  An
 * unknown value is IOK_EADDRINVAL.
 *
 * Limits: a whole reply (all its rows) must fit IOK_OPT_RECVMAXSZ (default
 * 1 MiB; raise it for big results): a bigger one drops the connection,
 * counted in "stat:rx-oversize", and the requests in flight on it complete
 * with IOK_ECONNRESET.  COPY ... TO STDOUT works (its data messages are in
 * the reply, skipped by iok_pg_next); COPY ... FROM STDIN is not supported
 * (the server would wait for data until the request times out and is
 * cancelled).
 *
 * Prepared statements: a statement (SQL text + parameter oids) is prepared
 * once per connection under a generated name and kept in a per-connection
 * LRU cache (256); a new connection prepares again.  A statement whose
 * Parse failed is forgotten; "cached plan must not change result type"
 * (SQLSTATE 0A000) fails that request and the statement is prepared anew
 * for the next one.
 *
 * Timeouts: a request that IOK_OPT_REQ_TIMEOUT gives up on while the server
 * is running it (the oldest in flight on its connection) is cancelled on
 * the server: the kernel opens a side connection and sends a CancelRequest
 * with the connection's BackendKeyData.  As with libpq's PQcancel, the
 * cancel acts on whatever the backend runs when it arrives.
 *
 * Sessions (iok_session_open): BEGIN ... COMMIT run on the pinned
 * connection with nothing interleaved.  When a session is released while
 * its connection is inside a transaction (ReadyForQuery status 'T' or 'E'),
 * the kernel sends ROLLBACK (its reply consumed) before the connection
 * serves anyone else.
 *
 * LISTEN/NOTIFY: a sub socket shared onto the dialer (iok_dialer_share)
 * turns IOK_OPT_SUB_SUBSCRIBE / UNSUBSCRIBE into LISTEN "channel" /
 * UNLISTEN "channel" (a quoted identifier: any name, case kept) on the same
 * connection as the queries, their replies consumed by the transport; no
 * patterns (IOK_OPT_SUB_PSUBSCRIBE: IOK_ENOTSUP).  Each notification
 * arrives as one push message (iok_msg_is_push) holding one
 * NotificationResponse: iok_pg_next gives IOK_PG_NOTIFY.  Channels are
 * LISTENed again after a reconnect, and every connection that starts
 * while a sub socket shares the dialer first delivers to it the RECONNECT
 * MARKER: a push message holding a single ReadyForQuery (iok_pg_next gives
 * IOK_PG_READY), meaning "a new connection: notifications sent while
 * there was none may have been lost".  (A connection already up when the
 * sharing starts gives none.)  A pipelined-db socket with no sharer
 * receives notifications itself, as token-0 push messages in token mode. */

#define IOK_PG_TEXT 0   /* format code: text */
#define IOK_PG_BINARY 1 /* format code: binary */

/* iok_pg_query_new makes a request message for one SQL statement with
 * $1..$n parameters, added in order with iok_pg_query_param.  Results come
 * back in binary for types iok has a binary codec for (once the statement's
 * columns are known on that connection), in text otherwise; each column's
 * format is in the reply's row description.
 * Errors: IOK_EINVAL (sql NULL or holding a NUL), IOK_ENOMEM.  Any thread. */
IOK_API int iok_pg_query_new(iok_msg **mp, const char *sql, size_t sql_len);
/* iok_pg_query_param appends one parameter: its type oid (0 = let the
 * server infer it, text format only), format (IOK_PG_TEXT/IOK_PG_BINARY)
 * and value (len -1 = SQL NULL, data ignored).
 * Errors: IOK_EINVAL (not a query message, bad format, over 65535
 * parameters), IOK_ENOMEM.  Any thread. */
IOK_API int iok_pg_query_param(iok_msg *m, uint32_t oid, int format, const void *data, int32_t len);
/* iok_pg_simple_query makes a simple-protocol request: one or more
 * statements separated by ';', no parameters, text results (what BEGIN,
 * LISTEN or a script need).  Errors: IOK_EINVAL, IOK_ENOMEM.  Any thread. */
IOK_API int iok_pg_simple_query(iok_msg **mp, const char *sql, size_t sql_len);

/* What iok_pg_next returns, one backend message at a time. */
enum iok_pg_kind {
	IOK_PG_COLUMNS = 1, /* row description: count = number of columns */
	IOK_PG_COLUMN,      /* one column: name, oid, format, index, typmod */
	IOK_PG_NODATA,      /* the statement returns no rows */
	IOK_PG_ROW,         /* a data row: count = number of fields */
	IOK_PG_FIELD,       /* one field: data/len (len -1 = NULL), index */
	IOK_PG_COMPLETE,    /* command complete: tag ("INSERT 0 5"), rows */
	IOK_PG_EMPTY,       /* empty query */
	IOK_PG_ERROR,       /* error: sqlstate, message, detail, hint... */
	IOK_PG_NOTICE,      /* notice: same fields as an error */
	IOK_PG_NOTIFY,      /* notification: pid, channel, payload */
	IOK_PG_READY        /* ReadyForQuery: status 'I', 'T' or 'E' */
};

/* One item.  Pointers point into the reply (valid while it lives); the
 * strings named _z are NUL-terminated, the others have a length. */
typedef struct iok_pg_item {
	int            kind;   /* enum iok_pg_kind */
	uint32_t       count;  /* COLUMNS, ROW */
	uint32_t       index;  /* COLUMN, FIELD: 0-based position */
	const char    *name_z; /* COLUMN: name; NOTIFY: channel */
	uint32_t       oid;    /* COLUMN: type oid */
	int32_t        typmod; /* COLUMN */
	int            format; /* COLUMN: IOK_PG_TEXT or IOK_PG_BINARY */
	const uint8_t *data;   /* FIELD: value bytes; NOTIFY: payload */
	int32_t        len;    /* FIELD: length, -1 = NULL; NOTIFY: payload */
	const char    *tag_z;  /* COMPLETE: command tag */
	uint64_t       rows;   /* COMPLETE: rows affected/returned, from tag */
	uint32_t       pid;    /* NOTIFY: sending backend */
	char           status; /* READY: 'I' idle, 'T' in transaction,
	                          'E' failed transaction */
	/* ERROR, NOTICE: the server's fields (NULL when absent) */
	const char *severity_z, *sqlstate_z, *message_z, *detail_z, *hint_z;
	const char *position_z, *where_z, *schema_z, *table_z, *column_z;
	const char *constraint_z;
} iok_pg_item;

/* The reader: a pure state machine over one reply (no allocation, no
 * I/O), like iok_resp_reader.  Fields are private. */
typedef struct iok_pg_reader {
	const uint8_t *buf_;
	size_t         len_, pos_;
	uint32_t       left_; /* fields or columns still owed by the message */
	size_t         sub_;  /* offset inside the current message */
	size_t         end_;  /* end of the current message */
	int            state_;
} iok_pg_reader;

/* iok_pg_reader_init prepares r to read the reply buf[0..len) (e.g. a
 * message body). */
IOK_API void iok_pg_reader_init(iok_pg_reader *r, const void *buf, size_t len);
/* iok_pg_next fills *it with the next item and returns 1, returns 0 at
 * the end of the reply, or -IOK_EPROTO if the bytes are malformed or
 * truncated (never reads outside the buffer).  Any thread. */
IOK_API int iok_pg_next(iok_pg_reader *r, iok_pg_item *it);

/* -------------------------------------------------------------- options */

/* Options are named by strings (nng's names where nng has one).  Each has a
 * type, and must be accessed through the matching typed call (else
 * IOK_EBADTYPE); "bool" options take C bool (<stdbool.h>), as nng's.  Unknown names give IOK_ENOTSUP; read-only ones
 * IOK_EREADONLY on set; bad values IOK_EINVAL.
 *
 * Socket options (dialers and listeners inherit the transport ones when
 * they are made, and may override them on their own; a later change on the
 * socket reaches those that did not, for IOK_OPT_RECVMAXSZ, with their
 * open connections, and the health: options; the others stay as the
 * endpoint was made):
 *   IOK_OPT_RECVMAXSZ   size   largest frame accepted, 0 = no limit
 *                              (default 1 MiB for SP patterns, none for
 *                              pipelined-db: a reply is as big as the value
 *                              asked for).  SP: a bigger frame drops the
 *                              connection and counts stat:rx-oversize;
 *                              over inproc, where the peer's limit is
 *                              known, the sender refuses it instead
 *                              (iok_send gives IOK_EMSGSIZE, or the kernel
 *                              drops it) and counts stat:tx-oversize.
 *                              pipelined-db over Redis: only the request
 *                              whose reply is too big fails, with
 *                              IOK_EMSGSIZE; the reply is skipped without
 *                              being held and the connection carries on.
 *                              Set on a socket at any time, it applies to
 *                              its dialers, listeners and open connections
 *                              (from their next frame), except endpoints
 *                              that set their own
 *   IOK_OPT_RECVTIMEO   ms     receive timeout (default infinite)
 *   IOK_OPT_SENDTIMEO   ms     send timeout (default infinite)
 *   IOK_OPT_RECV_SPIN_US int   how long a blocking receive spins for its
 *                              message before it sleeps, microseconds
 *                              (0..1000000; 0: never; -1: the process's
 *                              IOK_RECV_SPIN_US, the default).  Reads back
 *                              the budget in force.  Only sockets that
 *                              can also send spin (see "Spinning for the
 *                              answer" at the top of this file)
 *   IOK_OPT_RECVBUF     int    receive queue length, messages (0..65536,
 *                              default 1024)
 *   IOK_OPT_SENDBUF     int    send queue length, messages (0..65536,
 *                              default 1024).  As nng's, but nng stops at
 *                              8192: iok allows more because a queue is
 *                              also how many messages one kernel-thread
 *                              wakeup moves, and bulk senders gain from
 *                              it.  0 means nng's "unbuffered" as far as
 *                              iok can: one message in the hand-off to
 *                              the kernel thread (it reads back as 1).
 *   IOK_OPT_SENDBUF_BYTES size the send queue's limit in bytes of message
 *                              bodies as well (default 16 MiB; 0: none); a
 *                              message always fits in an empty queue
 *   IOK_OPT_RECVBUF_BYTES size the receive queue's limit in bytes as well
 *                              (default 16 MiB; 0: none); when it is
 *                              reached the connections stop reading (TCP
 *                              pushes back on the sender) or, on lossy
 *                              patterns, the oldest message is dropped.
 *                              A message always fits in an empty queue.
 *   IOK_OPT_SEND_RATE   int    token bucket: at most this many messages a
 *                              second leave the send queue (0: no limit,
 *                              the default); counts stat:rate-delays
 *   IOK_OPT_SEND_BURST  int    the bucket's size, messages (default 1)
 *                              Throttling, in one place: whatever holds
 *                              messages back (a full queue by count or by
 *                              bytes, the rate limit, req:max-inflight,
 *                              db:max-inflight) leaves them in the send
 *                              queue, so a blocking send waits up to
 *                              IOK_OPT_SENDTIMEO and then says
 *                              IOK_ETIMEDOUT, IOK_FLAG_NONBLOCK says
 *                              IOK_EAGAIN, asyncio waits on the send fd;
 *                              each such send counts stat:send-waits
 *   IOK_OPT_RECONNMINT  ms     first reconnect delay (default 100)
 *   IOK_OPT_RECONNMAXT  ms     largest reconnect delay (default 2000; the
 *                              delay doubles up to it)
 *   IOK_OPT_TCP_NODELAY bool   (default true)
 *   IOK_OPT_TCP_KEEPALIVE bool (default false): TCP keepalive, the health
 *                              check of SP connections (the SP protocols
 *                              have no ping of their own): once idle for
 *                              IOK_OPT_HEALTH_INTERVAL (60 s when that is
 *                              0) the kernel sends keepalive probes every
 *                              IOK_OPT_HEALTH_TIMEOUT (at least 1 s), and
 *                              3 unanswered ones reset the connection
 *   IOK_OPT_HEALTH_INTERVAL ms active health checks (default 5000; 0 =
 *                              off): a pipelined-db connection with nothing
 *                              in flight and nothing received for this
 *                              long gets the transport's probe (Redis
 *                              PING, PostgreSQL an empty query), owned by
 *                              the pattern: its reply is never delivered.
 *                              Connections pinned by a session are not
 *                              probed; one with requests in flight is
 *                              watched by IOK_OPT_REQ_TIMEOUT instead.
 *                              Set from any thread, on the socket (before
 *                              dialing: dialers copy it) or on a dialer;
 *                              the kernel thread reads it at each check
 *   IOK_OPT_HEALTH_TIMEOUT ms  a probe not answered within it (default
 *                              2000, > 0) closes its connection with
 *                              IOK_ETIMEDOUT (requests sent behind it fail
 *                              with IOK_ECONNRESET or are retried, as for
 *                              any lost connection), counts
 *                              stat:probe-timeouts and a connection error
 *                              of the upstream (below)
 *   IOK_OPT_HEALTH_EJECT_ERRORS int outlier ejection (Envoy's): this many
 *                              consecutive connection-level errors of one
 *                              upstream (failed connects and handshakes,
 *                              connections reset or closed by the peer,
 *                              probe timeouts, protocol errors; not the
 *                              server's error replies) eject it from
 *                              pipelined-db's routing: its connections stay
 *                              (and reconnect) but get no new requests.
 *                              A reply or answered probe resets the count.
 *                              The last upstream with a live connection is
 *                              never ejected, and if only ejected ones are
 *                              left they are used.  Default 5; 0 = off;
 *                              counts stat:ejections
 *   IOK_OPT_HEALTH_EJECT_MS ms how long an ejection lasts (default 30000,
 *                              > 0); it doubles for each ejection that
 *                              follows without a reply in between, up to
 *                              300000 (or this value if larger).  All
 *                              four health options: any thread, on the
 *                              socket before dialing or on a dialer
 *   IOK_OPT_LINGER      ms     how long iok_close flushes (default 1000)
 *   IOK_OPT_POOL_SIZE   int    connections each dialer keeps (1..1024,
 *                              default 1; pipelined-db spreads over them):
 *                              per address of the dial target
 *   IOK_OPT_CONNECT_TIMEOUT ms a connection attempt's bound: the TCP (or
 *                              unix) connect, and then the transport's
 *                              handshake (SP header exchange, Redis HELLO /
 *                              AUTH ...), must each finish within it, else
 *                              the attempt fails with IOK_ETIMEDOUT (a
 *                              synchronous dial returns it; the dialer
 *                              retries after its backoff).  Default 10000;
 *                              IOK_DURATION_INFINITE (-1) = no bound; 0 is
 *                              IOK_EINVAL.  Set on the socket before
 *                              dialing, or on one dialer
 *   IOK_OPT_DNS_TTL_MIN ms     shortest re-resolve interval (default 1000;
 *                              also the retry delay of a failed lookup)
 *   IOK_OPT_DNS_TTL_MAX ms     longest one, whatever the TTL (def. 60000)
 *   IOK_OPT_DNS_SERVERS string "host:port,..." servers for this dialer's
 *                              look-ups (default "": IOK_DNS_SERVERS or
 *                              the system's); set before starting it
 *   IOK_OPT_RECVFD      int    read-only: a descriptor that is readable
 *                              exactly while a message is waiting
 *                              (level-triggered; never read or close it)
 *   IOK_OPT_SENDFD      int    read-only: readable exactly while a send
 *                              would not block
 *   IOK_OPT_RAW         bool   read-only
 *   IOK_OPT_PROTO, IOK_OPT_PEER int read-only SP protocol numbers
 *   IOK_OPT_PROTONAME, IOK_OPT_PEERNAME string read-only
 *   IOK_OPT_SOCKNAME    string a name for the socket (default its id)
 *   IOK_OPT_LAST_ERROR  string read-only: why the last connection failed,
 *                              as the transport tells it (e.g. PostgreSQL's
 *                              refusal "FATAL 28P01 password authentication
 *                              failed for user ..."), "" if none; never a
 *                              password
 *   IOK_OPT_MAXTTL      int    hops allowed through devices (1..15, def. 8)
 *   IOK_OPT_PEERS_LIVE  int    read-only: connections the socket can use
 *                              now (handshake done), over all its dialers
 *                              and listeners.  Dialers connect as soon as
 *                              their target resolves, so this says whether
 *                              a service is there before anything is sent.
 *   IOK_OPT_PEERS_FD    int    read-only: a descriptor (level-triggered,
 *                              never read or close it) that turns readable
 *                              when peers-live goes from 0 to non-zero or
 *                              back to 0, and stays readable until
 *                              peers-live is read again.  Poll it, then
 *                              read peers-live: no transition is missed.
 * Statistics (uint64, read-only, counted on the kernel thread):
 *   "stat:tx-msgs", "stat:rx-msgs", "stat:tx-bytes", "stat:rx-bytes",
 *   "stat:pipes" (connections now), "stat:pipes-opened", "stat:reconnects"
 *   (a dialer's connections that replaced one it lost; not the first
 *   connection to each address of a list, nor a pool's next one),
 *   "stat:rx-oversize", "stat:proto-errors" (bad handshake, wrong peer
 *   protocol, malformed frames), "stat:rx-malformed" (bad SP headers),
 *   "stat:rx-dropped" (discarded: full queue on a lossy pattern, late
 *   replies, filtered), "stat:tx-dropped", "stat:tx-oversize" (refused:
 *   over the peer's known IOK_OPT_RECVMAXSZ), "stat:requests" (requests
 *   written: req, surveyor, pipelined-db; resends count), "stat:replies"
 *   (replies matched to a request), "stat:latency-p50", "-p90", "-p99",
 *   "-max", "-count" (ns from a request's write to its reply's read, both
 *   timed on the kernel thread, once per batch it handles: the requests
 *   it writes in one turn share a start, the replies one read brings
 *   share an end; log-bucketed, within 12.5%),
 *   "stat:err-timedout", "-connreset", "-connrefused", "-closed",
 *   "-inval", "-nomem", "-proto", "-canceled", "-unreachable",
 *   "-connshut" (error completions delivered, by kind), "stat:send-waits"
 *   (sends that found the send queue full: they waited or said
 *   IOK_EAGAIN), "stat:rate-delays" (times the send-rate limit held the
 *   queue), "stat:probes" (health probes sent), "stat:probe-timeouts"
 *   (connections closed for an unanswered probe), "stat:ejections"
 *   (upstreams ejected by outlier detection), "stat:upstream-waits"
 *   (requests that found every upstream at db:max-inflight-per-upstream),
 *   "stat:tx-writes" (writes to tcp, ipc and database connections, the
 *   handshake's included: each carries every message queued since the
 *   last, so tx-msgs / tx-writes is about the batch size),
 *   "stat:recv-watches" (blocking receives that slept watching the
 *   socket's one tcp or ipc connection, see iok_recv),
 *   "stat:recv-spins" (blocking receives that spun before sleeping) and
 *   "stat:recv-spin-hits" (of those, the ones whose spin caught their
 *   message; see "Spinning for the answer" above).
 * Dialer/listener options: the transport ones above, plus IOK_OPT_URL
 * (string, read-only) and, on tcp listeners, IOK_OPT_TCP_BOUND_PORT (int,
 * read-only).  Dialers: IOK_OPT_UPSTREAMS (string, read-only): one line per
 * address of the current set (and per address that left it while its
 * connections drain), "ADDR:PORT state=live|draining weight=W pipes=N
 * connects=C errors=E drops=D connect-us=U replies=R latency-us=L"
 * (errors: failed connection attempts, drops: established connections
 * lost, connect-us: the last connect's duration, replies and latency-us:
 * replies matched by pipelined-db and their moving-average latency), then
 * " inflight=I health=ok|ejected consec-errors=K ejections=J
 * probe-timeouts=T eject-ms-left=M" (pipelined-db's requests in flight
 * there, outlier ejection, above), so the application can see which
 * upstream is slow or failing;
 * IOK_OPT_DISC_REJECTED (int, read-only): entries of the discovery source
 * ignored as malformed so far (e.g. a bad ZooKeeper child name; counted
 * each time the source is read).
 *
 * Pattern options:
 *   IOK_OPT_PAIR1_POLY        bool  pair1 talks to many peers (set before
 *                                   connecting); route sends with
 *                                   iok_msg_set_pipe
 *   IOK_OPT_REQ_RESENDTIME    ms    req: resend an unanswered request
 *                                   (default 60000, <= 0 never)
 *   IOK_OPT_REQ_TIMEOUT       ms    req, pipelined-db: complete a request
 *                                   with IOK_ETIMEDOUT after this (default
 *                                   infinite)
 *   IOK_OPT_REQ_MAXINFLIGHT   int   req: requests outstanding at once
 *                                   (1..16M, default 65536); more wait in
 *                                   the send queue (see throttling above)
 *   IOK_OPT_SURVEYOR_SURVEYTIME ms  surveyor: how long a survey collects
 *                                   responses (default 1000)
 *   IOK_OPT_SUB_SUBSCRIBE / IOK_OPT_SUB_UNSUBSCRIBE  bytes (iok_socket_set)
 *                                   or string: a prefix; "" = everything.
 *                                   On a connection shared with a Redis
 *                                   pipelined-db socket: SUBSCRIBE /
 *                                   UNSUBSCRIBE channel
 *   IOK_OPT_SUB_PSUBSCRIBE / IOK_OPT_SUB_PUNSUBSCRIBE  bytes: PSUBSCRIBE
 *                                   patterns (push transports only)
 *   IOK_OPT_SUB_PREFNEW       bool  full receive queue: true (default)
 *                                   drops the oldest; false keeps the old
 *                                   and pushes back (the publisher drops)
 *   IOK_OPT_PUB_QUEUE_LEN     int   messages queued per slow subscriber
 *                                   (1..2^20, default 16)
 *   IOK_OPT_PUB_DROP_OLDEST   bool  which one a full queue drops (default
 *                                   true)
 *   IOK_OPT_PUB_NODROP        bool  never drop (libzmq's ZMQ_XPUB_NODROP;
 *                                   default false): while a subscriber's
 *                                   queue is full, sends wait in the send
 *                                   queue, then block up to IOK_OPT_SENDTIMEO
 *                                   (IOK_ETIMEDOUT); one stuck subscriber
 *                                   holds the publisher until it drains or
 *                                   leaves.  With no subscriber, a message
 *                                   still goes nowhere; shrinking
 *                                   IOK_OPT_PUB_QUEUE_LEN still drops what
 *                                   no longer fits.
 *   IOK_OPT_DB_MAX_INFLIGHT   int   pipelined-db: requests in flight per
 *                                   connection (default 1024)
 *   IOK_OPT_DB_MAX_INFLIGHT_UPSTREAM int pipelined-db: requests in flight
 *                                   per upstream (one address of a dialer's
 *                                   target, all its pooled connections
 *                                   together; an accepted connection counts
 *                                   alone).  Routing skips an upstream at
 *                                   its limit; when all are, requests wait
 *                                   in the pattern's queue (1024), then in
 *                                   the send queue: a send waits up to
 *                                   IOK_OPT_SENDTIMEO then IOK_ETIMEDOUT,
 *                                   IOK_EAGAIN if non-blocking.  Each
 *                                   request that found every upstream at
 *                                   its limit counts stat:upstream-waits.
 *                                   0..65536, default 0 (no limit); any
 *                                   thread, takes effect at once
 *   IOK_OPT_DB_FAIL_FAST      bool  pipelined-db: while no connection is up
 *                                   and every dialer's last attempt failed
 *                                   (after the first attempt, or the first
 *                                   reconnect attempt, has failed), a
 *                                   request completes at once with that
 *                                   attempt's error (IOK_ECONNREFUSED,
 *                                   IOK_EUNREACHABLE, IOK_ETIMEDOUT,
 *                                   IOK_EPEERAUTH...), and requests already
 *                                   waiting for a connection fail with it
 *                                   when the attempt fails.  Default true;
 *                                   false: requests wait for a reconnect
 *                                   (up to IOK_OPT_REQ_TIMEOUT)
 *   "sub:filtered", "db:inflight", "db:queued"  uint64, read-only counts
 */
#define IOK_OPT_SOCKNAME "socket-name"
#define IOK_OPT_LAST_ERROR "last-error"
#define IOK_OPT_RAW "raw"
#define IOK_OPT_PROTO "protocol"
#define IOK_OPT_PROTONAME "protocol-name"
#define IOK_OPT_PEER "peer"
#define IOK_OPT_PEERNAME "peer-name"
#define IOK_OPT_RECVBUF "recv-buffer"
#define IOK_OPT_SENDBUF "send-buffer"
#define IOK_OPT_SENDBUF_BYTES "send-buffer-bytes" /* size */
#define IOK_OPT_RECVBUF_BYTES "recv-buffer-bytes" /* size */
#define IOK_OPT_SEND_RATE "send-rate"             /* int, messages/s */
#define IOK_OPT_SEND_BURST "send-burst"           /* int, messages */
#define IOK_OPT_RECVFD "recv-fd"
#define IOK_OPT_SENDFD "send-fd"
#define IOK_OPT_RECVTIMEO "recv-timeout"
#define IOK_OPT_RECV_SPIN_US "recv-spin-us" /* int, microseconds */
#define IOK_OPT_SENDTIMEO "send-timeout"
#define IOK_OPT_URL "url"
#define IOK_OPT_MAXTTL "ttl-max"
#define IOK_OPT_RECVMAXSZ "recv-size-max"
#define IOK_OPT_RECONNMINT "reconnect-time-min"
#define IOK_OPT_RECONNMAXT "reconnect-time-max"
#define IOK_OPT_TCP_NODELAY "tcp-nodelay"
#define IOK_OPT_TCP_KEEPALIVE "tcp-keepalive"
#define IOK_OPT_TCP_BOUND_PORT "tcp-bound-port"
#define IOK_OPT_LINGER "linger"
#define IOK_OPT_POOL_SIZE "pool-size"
#define IOK_OPT_CONNECT_TIMEOUT "connect-timeout"
#define IOK_OPT_DNS_TTL_MIN "dns:ttl-min"                 /* ms */
#define IOK_OPT_DNS_TTL_MAX "dns:ttl-max"                 /* ms */
#define IOK_OPT_DNS_SERVERS "dns:servers"                 /* string "host:port,..." */
#define IOK_OPT_UPSTREAMS "upstreams"                     /* string, read-only, dialers */
#define IOK_OPT_PEERS_LIVE "peers-live"                   /* int, read-only */
#define IOK_OPT_PEERS_FD "peers-fd"                       /* int, read-only */
#define IOK_OPT_HEALTH_INTERVAL "health:interval"         /* ms, 0 = off */
#define IOK_OPT_HEALTH_TIMEOUT "health:timeout"           /* ms */
#define IOK_OPT_HEALTH_EJECT_ERRORS "health:eject-errors" /* int, 0 = off */
#define IOK_OPT_HEALTH_EJECT_MS "health:eject-ms"         /* ms */

/* int, read-only, dialers */
#define IOK_OPT_DISC_REJECTED "disc:rejected"
/* Pattern options. */
#define IOK_OPT_PAIR1_POLY "pair1:polyamorous"
#define IOK_OPT_SUB_SUBSCRIBE "sub:subscribe"              /* bytes, write-only */
#define IOK_OPT_SUB_UNSUBSCRIBE "sub:unsubscribe"          /* bytes, write-only */
#define IOK_OPT_SUB_PREFNEW "sub:prefnew"                  /* bool: full queue drops oldest */
#define IOK_OPT_REQ_RESENDTIME "req:resend-time"           /* ms */
#define IOK_OPT_REQ_TIMEOUT "req:timeout"                  /* ms, per request (iok_request) */
#define IOK_OPT_REQ_MAXINFLIGHT "req:max-inflight"         /* int */
#define IOK_OPT_SURVEYOR_SURVEYTIME "surveyor:survey-time" /* ms */
#define IOK_OPT_SUB_PSUBSCRIBE "sub:psubscribe"            /* push transports */
#define IOK_OPT_SUB_PUNSUBSCRIBE "sub:punsubscribe"        /* push transports */
#define IOK_OPT_PUB_QUEUE_LEN "pub:queue-length"           /* int, per subscriber */
#define IOK_OPT_PUB_DROP_OLDEST "pub:drop-oldest"          /* bool */
#define IOK_OPT_PUB_NODROP "pub:nodrop"                    /* bool */
#define IOK_OPT_DB_MAX_INFLIGHT "db:max-inflight"          /* int, per connection */
#define IOK_OPT_DB_FAIL_FAST "db:fail-fast"                /* bool, default true */
#define IOK_OPT_DB_MAX_INFLIGHT_UPSTREAM "db:max-inflight-per-upstream" /* int, 0 = none */

IOK_API int iok_socket_set(iok_socket s, const char *name, const void *val, size_t size);
/* iok_setopt is iok_socket_set under nng's older name (nng_setopt, from
 * before nng 1.2 and still in nng's getting-started guide), so code written
 * against it ports unchanged.  Same errors.  Any thread. */
IOK_API int iok_setopt(iok_socket s, const char *name, const void *val, size_t size);
IOK_API int iok_socket_set_bool(iok_socket s, const char *name, bool val);
IOK_API int iok_socket_set_int(iok_socket s, const char *name, int val);
IOK_API int iok_socket_set_ms(iok_socket s, const char *name, iok_duration val);
IOK_API int iok_socket_set_size(iok_socket s, const char *name, size_t val);
IOK_API int iok_socket_set_uint64(iok_socket s, const char *name, uint64_t val);
IOK_API int iok_socket_set_string(iok_socket s, const char *name, const char *val);
/* iok_socket_get copies up to *size bytes of a bytes/string option into
 * val and sets *size to its length. */
IOK_API int iok_socket_get(iok_socket s, const char *name, void *val, size_t *size);
IOK_API int iok_socket_get_bool(iok_socket s, const char *name, bool *val);
IOK_API int iok_socket_get_int(iok_socket s, const char *name, int *val);
IOK_API int iok_socket_get_ms(iok_socket s, const char *name, iok_duration *val);
IOK_API int iok_socket_get_size(iok_socket s, const char *name, size_t *val);
IOK_API int iok_socket_get_uint64(iok_socket s, const char *name, uint64_t *val);
/* The returned string is freed with iok_strfree. */
IOK_API int iok_socket_get_string(iok_socket s, const char *name, char **val);

IOK_API int iok_dialer_set_bool(iok_dialer d, const char *name, bool val);
IOK_API int iok_dialer_set_int(iok_dialer d, const char *name, int val);
IOK_API int iok_dialer_set_ms(iok_dialer d, const char *name, iok_duration val);
IOK_API int iok_dialer_set_size(iok_dialer d, const char *name, size_t val);
IOK_API int iok_dialer_set_string(iok_dialer d, const char *name, const char *val);
IOK_API int iok_dialer_get_bool(iok_dialer d, const char *name, bool *val);
IOK_API int iok_dialer_get_int(iok_dialer d, const char *name, int *val);
IOK_API int iok_dialer_get_ms(iok_dialer d, const char *name, iok_duration *val);
IOK_API int iok_dialer_get_size(iok_dialer d, const char *name, size_t *val);
IOK_API int iok_dialer_get_uint64(iok_dialer d, const char *name, uint64_t *val);
IOK_API int iok_dialer_get_string(iok_dialer d, const char *name, char **val);

IOK_API int iok_listener_set_bool(iok_listener l, const char *name, bool val);
IOK_API int iok_listener_set_int(iok_listener l, const char *name, int val);
IOK_API int iok_listener_set_ms(iok_listener l, const char *name, iok_duration val);
IOK_API int iok_listener_set_size(iok_listener l, const char *name, size_t val);
IOK_API int iok_listener_set_string(iok_listener l, const char *name, const char *val);
IOK_API int iok_listener_get_bool(iok_listener l, const char *name, bool *val);
IOK_API int iok_listener_get_int(iok_listener l, const char *name, int *val);
IOK_API int iok_listener_get_ms(iok_listener l, const char *name, iok_duration *val);
IOK_API int iok_listener_get_size(iok_listener l, const char *name, size_t *val);
IOK_API int iok_listener_get_uint64(iok_listener l, const char *name, uint64_t *val);
IOK_API int iok_listener_get_string(iok_listener l, const char *name, char **val);

/* ------------------------------------- application counters and markers
 *
 * Named counters, timers and markers the application updates on its hot
 * paths, in a memory region of the process: updates are relaxed atomic
 * operations, with no lock, no system call and nothing sent to the kernel
 * thread, which reads them when it reports (the debug endpoint's "stats"
 * and "markers", iok_debug_text, export).  Look a name up once (the
 * *_get calls take a lock and scan the names), keep the handle, and
 * update it as often as you like from any thread.  A handle is valid for
 * the life of the process.  Names are 1..63 bytes; a counter, a timer and
 * a marker may share a name.  At most 1,024 names per process.
 * *_get errors: IOK_EINVAL bad name or NULL handle pointer, IOK_ENOSPC
 * table full, IOK_ENOMEM.  Any thread.
 */
typedef struct iok_counter {
	uint64_t *v;
} iok_counter;
typedef struct iok_timer {
	void *p;
} iok_timer;
typedef struct iok_marker {
	void *p;
} iok_marker;

IOK_API int iok_counter_get(const char *name, iok_counter *c);
/* iok_counter_add adds n (one relaxed atomic add). Any thread. */
static inline void
iok_counter_add(iok_counter c, uint64_t n)
{
	__atomic_fetch_add(c.v, n, __ATOMIC_RELAXED);
}
/* iok_counter_value reads a counter. Any thread. */
static inline uint64_t
iok_counter_value(iok_counter c)
{
	return __atomic_load_n(c.v, __ATOMIC_RELAXED);
}

/* A timer records durations (ns): count, total, max and a histogram by
 * power of two, reported as p50/p90/p99 (within a factor of 2). */
IOK_API int  iok_timer_get(const char *name, iok_timer *t);
IOK_API void iok_timer_record(iok_timer t, uint64_t ns);

/* A marker says where the application is: iok_marker_pass records the
 * time and the calling thread ("handling request", "rendering"), so a
 * hung process shows which marker was passed last, by which thread and
 * how long ago.  It returns the time it recorded (iok_clock_ns); give it
 * to iok_marker_leave at the end of the marked section to record the time
 * spent inside (optional). */
IOK_API int      iok_marker_get(const char *name, iok_marker *m);
IOK_API uint64_t iok_marker_pass(iok_marker m);
IOK_API void     iok_marker_leave(iok_marker m, uint64_t passed_ns);
/* iok_clock_ns: the monotonic clock markers and timers use, in ns. */
IOK_API uint64_t iok_clock_ns(void);

/* ---------------------------------------------------------- debugging */

/* iok_debug_listen serves the debug endpoint on a unix socket at path
 * (mode 0600; connections from other users are refused), on the kernel
 * thread, so it answers while the application's threads compute or hang.
 * Setting IOK_DEBUG=<path> in the environment does the same when the
 * kernel thread starts.  A line protocol: send "stats", "peers",
 * "inflight", "markers" or "stack" and a newline, read lines up to one holding a lone
 * "." (tools/iok-debug does this; see README).  "stack" interrupts the
 * process's main thread with a real-time signal (iok_debug_stack_pipe)
 * whose handler prints its C backtrace.
 * Errors: IOK_EINVAL path NULL, empty or too long; IOK_EBUSY already
 * serving; IOK_EADDRINUSE path exists and is not a stale socket of this
 * user (a live one, another user's, or not a socket); IOK_EPERM cannot
 * bind or replace it; IOK_ENOFILES, IOK_ENOMEM.  Any application thread. */
IOK_API int iok_debug_listen(const char *path);
/* iok_debug_close stops the endpoint and removes its socket file (0 even
 * if it was not serving).  Any application thread. */
IOK_API int iok_debug_close(void);
/* iok_debug_text gives the answer the debug endpoint would give to
 * "stats", "peers", "inflight" or "markers", as one string (lines ending in '\n';
 * free it with iok_strfree), without any endpoint.  The "stats" line of a
 * socket holds pattern, queue depths, requests in flight, every stat:*
 * counter, error completions by kind (err_timedout=...) and, once replies
 * were matched, latency quantiles (latency_p50_us= latency_p90_us=
 * latency_p99_us= latency_max_us= latency_count=).  Errors: IOK_EINVAL unknown what or NULL argument,
 * IOK_ENOMEM.  Any application thread. */
IOK_API int iok_debug_text(const char *what, char **text);
/* ------------------------------------------------------------- export */

/* iok_metrics_listen serves the statistics (every socket's counters,
 * queues, requests in flight, errors by kind and request latency
 * histograms, and the application's counters, timers and markers) as a
 * Prometheus text exposition (format 0.0.4, with HELP and TYPE lines) at
 * GET /metrics over HTTP on url ("tcp://127.0.0.1:9464"; a numeric
 * address), from the kernel thread: scrapes are answered while the
 * application computes.  url NULL stops it.  Errors: IOK_EADDRINVAL bad
 * URL or not a numeric tcp address, IOK_EADDRINUSE, IOK_EPERM, IOK_EBUSY
 * already serving, IOK_ENOMEM.  Any application thread. */
IOK_API int iok_metrics_listen(const char *url);
/* iok_statsd pushes the statistics in statsd's line protocol to url
 * ("udp://127.0.0.1:8125"; a numeric address) every period_ms (>= 10),
 * from the kernel thread: counters as deltas ("|c"), queue depths,
 * connections, requests in flight and latency quantiles as gauges
 * ("|g"), named <prefix>.socket.<socket name>.<stat> and
 * <prefix>.app.<name> (prefix NULL: "iok").  The first push carries the
 * totals so far.  A new call replaces the previous target; url NULL
 * stops.  Datagrams stay under 1,400 bytes; a full socket buffer drops
 * one (UDP).  Errors: IOK_EADDRINVAL bad URL, IOK_EINVAL period below 10
 * ms or prefix over 63 bytes.  Any application thread. */
IOK_API int iok_statsd(const char *url, iok_duration period_ms, const char *prefix);

/* iok_debug_stack_pipe installs the stack dumper (once per process) and
 * gives the pipe it writes to and a signal for a language runtime's own
 * dump: a handler the runtime registers for *sig that writes to *fd
 * (e.g. Python: faulthandler.register(sig, file=fd, all_threads=True),
 * which the Python binding does on import).  iok's handler, on a signal
 * of its own, raises *sig first, so "stack" shows the runtime's output
 * before the C backtrace; the handler need not chain to anything (*sig
 * is ignored until one is registered).  Errors: IOK_EINVAL NULL
 * argument, IOK_ENOFILES, IOK_EINTERNAL.  Any thread. */
IOK_API int iok_debug_stack_pipe(int *sig, int *fd);

#ifdef __cplusplus
}
#endif

#endif /* IOK_H */
