"""iok - nng-style sockets whose network I/O runs on one background C thread.

All network I/O of the process happens on iok's kernel thread, which never
takes the GIL; Python hands it whole messages and takes whole messages back.

Sync::

    with iok.Rep(listen="tcp://127.0.0.1:5555") as rep:
        rep.send(rep.recv().upper())

asyncio (thousands of requests in flight on one socket)::

    async with iok.Req(dial="tcp://127.0.0.1:5555") as req:
        replies = await asyncio.gather(*(req.request(b"x%d" % i) for i in range(1000)))

Timeouts and durations are in milliseconds, as in iok's (and nng's) options.
"""

import asyncio
import os

from . import _iok, _watch
from ._iok import strerror, fini, debug_listen, debug_close, marker, metrics_listen, statsd
from ._iok import Counter as counter, Timer as timer

__all__ = [
    "Socket", "Dialer", "Listener", "Message", "device", "fini", "strerror",
    "debug_listen", "debug_close", "metrics_listen", "statsd", "stats", "counter", "timer", "marker", "markers",
    "Pair0", "Pair1", "Pair", "Push0", "Push", "Pull0", "Pull", "Req0", "Req",
    "Rep0", "Rep", "Pub0", "Pub", "Sub0", "Sub", "Surveyor0", "Surveyor",
    "Respondent0", "Respondent", "Bus0", "Bus", "Db",
    "Error", "Interrupted", "OutOfMemory", "InvalidArgument", "Busy", "Timeout",
    "ConnectionRefused", "Closed", "TryAgain", "NotSupported", "AddressInUse",
    "BadState", "NoEntry", "ProtocolError", "DestinationUnreachable",
    "AddressInvalid", "PermissionDenied", "MessageTooLarge", "ConnectionAborted",
    "ConnectionReset", "Canceled", "OutOfFiles", "OutOfSpace", "AlreadyExists",
    "ReadOnly", "WriteOnly", "CryptoError", "PeerAuthError", "NoArgument",
    "Ambiguous", "BadType", "ConnectionShutdown", "InternalError", "UnknownOption",
    "Poller", "POLLIN", "POLLOUT", "INFINITE",
]

__version__ = _iok.version
INFINITE = -1  # a timeout that never expires


# ----------------------------------------------------------------- errors

class Error(Exception):
    """An error iok reported.  ``errno`` is the IOK_E* code (nng's numbers),
    ``message`` iok's description of it."""

    errno = 0

    def __init__(self, errno=None, message=None):
        if errno is None:
            errno = type(self).errno
        if message is None:
            message = _iok.strerror(errno)
        super().__init__(errno, message)
        self.errno = errno
        self.message = message

    def __str__(self):
        return self.message

    def __reduce__(self):
        return (type(self), (self.errno, self.message))


_ERRORS = {}


def _error(name, code, doc, builtin=None):
    # builtin: the standard exception it also is, so `except TimeoutError`
    # and `except ConnectionError` catch iok's (and asyncio.wait_for's
    # habits carry over).
    bases = (Error,) if builtin is None else (Error, builtin)
    cls = type(name, bases, {"errno": code, "__doc__": doc, "__module__": __name__})
    _ERRORS[code] = cls
    return cls


Interrupted = _error("Interrupted", _iok.IOK_EINTR, "Interrupted.")
OutOfMemory = _error("OutOfMemory", _iok.IOK_ENOMEM, "Out of memory.")
InvalidArgument = _error("InvalidArgument", _iok.IOK_EINVAL, "Invalid argument or option value.")
Busy = _error("Busy", _iok.IOK_EBUSY, "Resource busy.")
Timeout = _error("Timeout", _iok.IOK_ETIMEDOUT, "The operation timed out (also a TimeoutError).",
                 TimeoutError)
ConnectionRefused = _error("ConnectionRefused", _iok.IOK_ECONNREFUSED,
                           "Connection refused (also a ConnectionRefusedError).",
                           ConnectionRefusedError)
Closed = _error("Closed", _iok.IOK_ECLOSED, "The socket (or dialer, listener) is closed.")
TryAgain = _error("TryAgain", _iok.IOK_EAGAIN, "The operation would block (timeout=0).")
NotSupported = _error("NotSupported", _iok.IOK_ENOTSUP,
                      "Not supported: unknown pattern, option or scheme, or an operation the "
                      "pattern does not have.")
AddressInUse = _error("AddressInUse", _iok.IOK_EADDRINUSE, "Address in use.")
BadState = _error("BadState", _iok.IOK_ESTATE, "Operation not valid in this state.")
NoEntry = _error("NoEntry", _iok.IOK_ENOENT, "No such entry.")
ProtocolError = _error("ProtocolError", _iok.IOK_EPROTO, "Protocol error.")
DestinationUnreachable = _error("DestinationUnreachable", _iok.IOK_EUNREACHABLE,
                                "Destination unreachable.")
AddressInvalid = _error("AddressInvalid", _iok.IOK_EADDRINVAL, "Invalid address (bad URL).")
PermissionDenied = _error("PermissionDenied", _iok.IOK_EPERM, "Permission denied.")
MessageTooLarge = _error("MessageTooLarge", _iok.IOK_EMSGSIZE, "Message too large.")
ConnectionAborted = _error("ConnectionAborted", _iok.IOK_ECONNABORTED,
                           "Connection aborted (also a ConnectionAbortedError).",
                           ConnectionAbortedError)
ConnectionReset = _error("ConnectionReset", _iok.IOK_ECONNRESET,
                         "Connection reset or lost (also a ConnectionResetError).",
                         ConnectionResetError)
Canceled = _error("Canceled", _iok.IOK_ECANCELED, "Operation canceled.")
OutOfFiles = _error("OutOfFiles", _iok.IOK_ENOFILES, "Out of file descriptors.")
OutOfSpace = _error("OutOfSpace", _iok.IOK_ENOSPC, "Out of space.")
AlreadyExists = _error("AlreadyExists", _iok.IOK_EEXIST, "Already exists.")
ReadOnly = _error("ReadOnly", _iok.IOK_EREADONLY, "The option is read-only.")
WriteOnly = _error("WriteOnly", _iok.IOK_EWRITEONLY, "The option is write-only.")
CryptoError = _error("CryptoError", _iok.IOK_ECRYPTO, "Cryptographic error.")
PeerAuthError = _error("PeerAuthError", _iok.IOK_EPEERAUTH, "The peer refused our credentials.")
NoArgument = _error("NoArgument", _iok.IOK_ENOARG, "The option needs an argument.")
Ambiguous = _error("Ambiguous", _iok.IOK_EAMBIGUOUS, "Ambiguous option.")
BadType = _error("BadType", _iok.IOK_EBADTYPE, "Option accessed with the wrong type.")
ConnectionShutdown = _error("ConnectionShutdown", _iok.IOK_ECONNSHUT,
                            "Connection shut down (also a ConnectionError).", ConnectionError)
InternalError = _error("InternalError", _iok.IOK_EINTERNAL, "Internal error.")
del _error


class UnknownOption(NotSupported, TypeError):
    """An unknown keyword (option name) passed to a constructor: a TypeError
    naming it (and an iok.NotSupported, as before)."""


def _unknown_keyword(where, name):
    return UnknownOption(NotSupported.errno, "%s() got an unexpected keyword argument %r "
                         "(options: see iok.OPTIONS)" % (where, name))


# --------------------------------------------------------------- messages

class Message:
    """A received message with its routing facts: ``data`` (bytes), ``token``
    (the request it answers or is, for reply()), ``pipe`` (connection id) and
    ``header`` (SP header bytes; empty on cooked sockets)."""

    __slots__ = ("data", "token", "pipe", "header")

    def __init__(self, data, token=0, pipe=0, header=b""):
        self.data = data
        self.token = token
        self.pipe = pipe
        self.header = header

    def __bytes__(self):
        return self.data

    def __repr__(self):
        return "Message(%r, token=%d, pipe=%d)" % (self.data, self.token, self.pipe)


_iok._setup(Error, _ERRORS, Message, __import__("threading").main_thread().ident)


def _register_stack_dump():
    """The debug endpoint's "stack" shows every Python thread's traceback:
    faulthandler dumps them from its C signal handler, without the GIL (so
    a main thread spinning in Python code answers too), into the pipe the
    kernel thread reads.  iok's own handler raises this signal, then
    writes the C stack: no chaining (faulthandler's chain swaps handlers
    around each call, and a request in between got the C stack alone)."""
    import faulthandler
    try:
        sig, fd = _iok._debug_stack_pipe()
        faulthandler.register(sig, file=fd, all_threads=True)
    except (Error, RuntimeError, ValueError, OSError):  # pragma: no cover
        pass  # "stack" then shows the C stack only


_register_stack_dump()


_FIELD = __import__("re").compile(r'([A-Za-z_][\w-]*)=("(?:[^"\\]|\\.)*"|\S+)')


def _value(v):
    if v.startswith('"'):
        return v[1:-1]
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return v


def markers():
    """Every application marker: ``{name: {"passes": n, "last_thread": tid,
    "ago_ms": ms, ...}}`` (``left``, ``inside_avg_us``, ``inside_max_us``
    once a ``with iok.marker(name):`` block has exited)."""
    out = {}
    for line in _iok._debug_text("markers").splitlines():
        d = {k: _value(v) for k, v in _FIELD.findall(line)}
        if "marker" in d:
            out[d.pop("marker")] = d
    return out


def stats():
    """Every socket's statistics as the kernel thread sees them now:
    ``{socket id: {name: value}}`` with the pattern, queue depths
    (``send_queue``/``recv_queue`` as "len/cap"), ``inflight``, every
    ``stat:*`` counter (without the prefix: ``tx-msgs``...), error
    completions by kind (``err_timedout``...) and, once replies were
    matched, latency quantiles in microseconds (``latency_p50_us``,
    ``latency_p90_us``, ``latency_p99_us``, ``latency_max_us``) and
    ``latency_count``.  Application counters are under ``"counters"``
    (name -> value) and timers under ``"timers"`` (name -> count, sum_us,
    p50_us, p90_us, p99_us, max_us).  ``"kernel"`` says what the kernel
    loop's spins before sleeping found (``spin_us`` the budget, ``spins``,
    ``spin-caught``, ``spin-io``, ``spin-timed-out``) and how commands
    reached it (``wakeups`` through its eventfd, ``posted-awake`` while it
    ran, with no wake-up)."""
    out = {}
    for line in _iok._debug_text("stats").splitlines():
        d = {k: _value(v) for k, v in _FIELD.findall(line)}
        if "socket" in d:
            out[d["socket"]] = d
        elif "counter" in d:
            out.setdefault("counters", {})[d["counter"]] = d["value"]
        elif "timer" in d:
            out.setdefault("timers", {})[d.pop("timer")] = d
        elif line.startswith("kernel "):
            out["kernel"] = d
    return out


# ---------------------------------------------------------------- options

# Python name -> (iok option name, kind).  Kinds: bool int ms size uint64
# string bytes.  Every one is a property of Socket and a keyword argument of
# its constructor.
OPTIONS = {
    "recv_timeout": ("recv-timeout", "ms"),
    "send_timeout": ("send-timeout", "ms"),
    "recv_buffer": ("recv-buffer", "int"),
    "recv_spin_us": ("recv-spin-us", "int"),
    "send_buffer": ("send-buffer", "int"),
    "recv_max_size": ("recv-size-max", "size"),
    "reconnect_time_min": ("reconnect-time-min", "ms"),
    "reconnect_time_max": ("reconnect-time-max", "ms"),
    "connect_timeout": ("connect-timeout", "ms"),
    "tcp_nodelay": ("tcp-nodelay", "bool"),
    "tcp_keepalive": ("tcp-keepalive", "bool"),
    "health_interval": ("health:interval", "ms"),
    "health_timeout": ("health:timeout", "ms"),
    "health_eject_errors": ("health:eject-errors", "int"),
    "health_eject_ms": ("health:eject-ms", "ms"),
    "linger": ("linger", "ms"),
    "name": ("socket-name", "string"),
    "ttl_max": ("ttl-max", "int"),
    "raw": ("raw", "bool"),
    "protocol": ("protocol", "int"),
    "peer": ("peer", "int"),
    "protocol_name": ("protocol-name", "string"),
    "peer_name": ("peer-name", "string"),
    # pattern options
    "polyamorous": ("pair1:polyamorous", "bool"),
    "prefer_new": ("sub:prefnew", "bool"),
    "resend_time": ("req:resend-time", "ms"),
    "request_timeout": ("req:timeout", "ms"),
    "survey_time": ("surveyor:survey-time", "ms"),
    "max_inflight_per_upstream": ("db:max-inflight-per-upstream", "int"),
}
_READ_ONLY = {"raw", "protocol", "peer", "protocol_name", "peer_name"}

STATS = ("tx-msgs", "rx-msgs", "tx-bytes", "rx-bytes", "pipes", "pipes-opened",
         "reconnects", "rx-oversize", "proto-errors", "rx-malformed", "rx-dropped",
         "tx-dropped", "tx-oversize", "requests", "replies", "latency-p50", "latency-p90",
         "latency-p99", "latency-max", "latency-count", "err-timedout", "err-connreset",
         "err-connrefused", "err-closed", "err-inval", "err-nomem", "err-proto", "err-canceled",
         "send-waits", "rate-delays", "probes", "probe-timeouts", "ejections",
         "upstream-waits", "tx-writes", "recv-watches", "recv-spins",
         "recv-spin-hits")


def _coerce(pyname, kind, value):
    """A value for an option of this kind.  Durations ("ms") are whole
    milliseconds: None or a negative number means infinite; a float with a
    fraction of a millisecond is refused rather than truncated silently."""
    if kind == "ms":
        if value is None:
            return INFINITE
        if isinstance(value, float) and value >= 0 and value != int(value):
            raise ValueError("%s is in milliseconds (a whole number, None or -1 = infinite); "
                             "got %r" % (pyname, value))
    return value


def _option_property(pyname, name, kind):
    def get(self):
        return self.getopt(name, kind)

    def set(self, value):
        try:
            self.setopt(name, _coerce(pyname, kind, value))
        except Error as e:
            raise _say(e, "option %s = %r" % (pyname, value)) from None

    doc = "iok option %r (%s)" % (name, kind)
    if pyname in _READ_ONLY:
        return property(get, doc=doc)
    return property(get, set, doc=doc)


def _prefix(v):
    """str or bytes-like -> bytes; anything else (an int would make
    bytes(5) = five NUL bytes) is a TypeError."""
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    raise TypeError("expected str or bytes, not %s" % type(v).__name__)


def _say(e, where):
    """e again, its message saying where (the URL, the option)."""
    if type(e).__module__ != __name__ or where in e.message:
        return e
    new = type(e)(e.errno, "%s (%s)" % (e.message, where))
    return new


def _redact(url):
    """url without the password of its user:password@ part."""
    if not isinstance(url, str) or "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    userinfo, sep, host = rest.partition("@")
    if "/" in userinfo or ":" not in userinfo:
        return url
    return "%s://%s:***@%s" % (scheme, userinfo.split(":", 1)[0], host)


def _interruptible(dial, sock, url, block):
    """A blocking dial on a helper thread, so this thread's wait can be
    interrupted (Ctrl+C) at once; an abandoned dial's dialer is closed
    when it completes."""
    import threading
    box = []
    lock = threading.Lock()
    done = threading.Event()

    def run():
        try:
            r = (True, dial(sock, url, block))
        except BaseException as e:  # noqa: B902 - handed to the waiting thread
            r = (False, e)
        with lock:
            box.append(r)
            abandoned = len(box) > 1
        done.set()
        if abandoned and r[0]:
            try:
                _iok.dialer_close(r[1])
            except Error:
                pass

    threading.Thread(target=run, name="iok-dial", daemon=True).start()
    try:
        done.wait()
    except BaseException:
        with lock:
            box.append(None)  # abandoned
            first = box[0]
        if first is not None and first[0]:
            try:
                _iok.dialer_close(first[1])
            except Error:
                pass
        raise
    ok, v = box[0]
    if ok:
        return v
    raise v


def _urls(v):
    if v is None:
        return ()
    if isinstance(v, str):
        return (v,)
    return tuple(v)


# ---------------------------------------------------------------- sockets

class Socket(_iok.Socket):
    """Socket(pattern, *, raw=False, dial=None, listen=None, **options)

    pattern: "pair0", "pair1", "push0", "pull0", "req0", "rep0", "pub0",
    "sub0", "surveyor0", "respondent0", "bus0", "pipelined-db" (or the name
    without its version digit).  dial/listen: a URL or a list of URLs.
    options: any name of iok.OPTIONS, e.g. recv_timeout=1000 (ms).

    Blocking calls (send, recv) release the GIL and are interrupted by
    Ctrl+C.  asyncio: asend, arecv, arecv_msg, areply, and request (req,
    surveyor, pipelined-db), many outstanding on one socket.
    """

    __slots__ = ("_aio", "_where", "__weakref__")
    _pattern = None

    def __init__(self, pattern=None, *, raw=False, dial=None, listen=None, **options):
        if pattern is None:
            pattern = self._pattern
            if pattern is None:
                raise TypeError("Socket() needs a pattern name")
        self._aio = None
        self._where = []
        for k in options:
            if k not in OPTIONS:
                raise _unknown_keyword(type(self).__name__, k)
        super().__init__(pattern, raw)
        _watch.watch(self)  # logging records of its connections (logger "iok")
        try:
            for k, v in options.items():
                self.set_option(k, v)
            for url in _urls(listen):
                self.listen(url)
            for url in _urls(dial):
                self.dial(url)
        except BaseException:
            self.close()
            raise

    def __repr__(self):
        try:
            state = "closed" if self.closed else "id=%d" % self.id
            return "<%s %s %s>" % (type(self).__name__, self.getopt("protocol-name", "string"), state)
        except Error:
            return "<%s closed>" % type(self).__name__

    def _where_text(self):
        """The socket and its endpoints, for log records (no secrets)."""
        name = getattr(self, "_log_name", None) or type(self).__name__
        return "%s %s" % (name, " ".join(self._where) or "(no endpoint)")

    # -- lifetime
    def close(self):
        """Close the socket.  Threads blocked in send/recv on it raise
        iok.Closed, as do awaiting coroutines.  Idempotent."""
        aio = self._aio
        if aio is not None:
            self._aio = None
            aio.detach(self)
        _iok.Socket.close(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()

    # -- endpoints
    def dial(self, url, block=False):
        """Connect to url (tcp://host:port, ipc:///path, inproc://name...).
        Asynchronous by default (retries in the background); block=True
        waits for the first connection and raises its error (the wait is
        interrupted by Ctrl+C at once; the attempt is then abandoned)."""
        try:
            self._where.append("dial %s" % str(_redact(url)).split("?")[0])
            if not block:
                return Dialer(_iok.Socket.dial(self, url, False), self)
            return Dialer(_interruptible(_iok.Socket.dial, self, url, True), self)
        except Error as e:
            raise _say(e, "dialing " + _redact(url)) from None

    def listen(self, url):
        """Bind url and accept connections; returns a Listener (.port tells
        the port bound for tcp://host:0)."""
        try:
            self._where.append("listen %s" % str(_redact(url)).split("?")[0])
            return Listener(_iok.Socket.listen(self, url), self)
        except Error as e:
            raise _say(e, "listening on " + _redact(url)) from None

    # -- options
    def set_option(self, name, value):
        """Set an option by Python name (iok.OPTIONS) or iok name."""
        opt = OPTIONS.get(name)
        if opt is not None:
            if name in _READ_ONLY:
                raise ReadOnly(message="option %r is read-only" % name)
            value = _coerce(name, opt[1], value)
            pyname, name = name, opt[0]
        else:
            pyname = name
        try:
            self.setopt(name, value)
        except Error as e:
            raise _say(e, "option %s = %r" % (pyname, value)) from None

    def get_option(self, name, kind=None):
        """Get an option by Python name (iok.OPTIONS) or iok name."""
        opt = OPTIONS.get(name)
        if opt is not None:
            name, k = opt
            kind = kind or k
        return self.getopt(name, kind or "auto")

    @property
    def stats(self):
        """The socket's counters (kernel-side), as a dict."""
        return {s: self.getopt("stat:" + s, "uint64") for s in STATS}

    # -- health
    @property
    def peers_live(self):
        """Connections the socket can use now (iok "peers-live"), over all
        its dialers and listeners.  Dialers connect as soon as their
        target resolves, so this tells whether a service is there before
        anything is sent."""
        return self.getopt("peers-live", "int")

    async def wait_peers(self, live=True):
        """Wait until the socket has a live peer (live=True) or none
        (live=False), without blocking the event loop; returns
        peers_live.  Woken by iok's "peers-fd" (readable when the count
        crosses zero), never by polling."""
        loop = asyncio.get_running_loop()
        # Our own descriptor: iok's is closed with the socket, and the
        # loop must never watch a number that could be reused.
        fd = os.dup(self.getopt("peers-fd", "int"))
        try:
            while True:
                n = self.peers_live  # reading the count re-arms peers-fd
                if (n > 0) == bool(live):
                    return n
                ready = loop.create_future()
                loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
                try:
                    await ready
                finally:
                    loop.remove_reader(fd)
        finally:
            os.close(fd)

    # -- messages
    def recv_msg(self, timeout=None):
        """Like recv(), but returns a Message with token, pipe and header
        (rep/respondent: pass msg.token to reply() to answer it, in any
        order, from any thread)."""
        return self._recv_msg(timeout)

    def subscribe(self, prefix):
        """sub: receive messages starting with prefix (str or bytes-like;
        b"" = all)."""
        self.setopt("sub:subscribe", _prefix(prefix))

    def unsubscribe(self, prefix):
        """sub: undo subscribe(prefix)."""
        self.setopt("sub:unsubscribe", _prefix(prefix))

    # -- pyzmq-style helpers
    def fileno(self):
        """A descriptor readable while a message is waiting (recv_fd), for
        select/poll/selectors (iok.Poller).  Never read or close it."""
        return self.recv_fd

    def send_string(self, s, encoding="utf-8", timeout=None):
        """Send a str, encoded (pyzmq's send_string)."""
        if not isinstance(s, str):
            raise TypeError("send_string() needs a str, not %s" % type(s).__name__)
        self.send(s.encode(encoding), timeout=timeout)

    def recv_string(self, encoding="utf-8", timeout=None):
        """Receive a message decoded to str (pyzmq's recv_string)."""
        return self.recv(timeout=timeout).decode(encoding)

    def send_multipart(self, parts, timeout=None):
        """Send several frames as ONE message (iok messages have no frames):
        each part is prefixed by its length as 4 big-endian bytes; only
        recv_multipart on the other side splits it again."""
        out = []
        for p in parts:
            b = p.encode() if isinstance(p, str) else _prefix(p)
            out.append(len(b).to_bytes(4, "big"))
            out.append(b)
        self.send(b"".join(out), timeout=timeout)

    def recv_multipart(self, timeout=None):
        """Receive a message sent by send_multipart: a list of bytes."""
        data = self.recv(timeout=timeout)
        parts, i, n = [], 0, len(data)
        while i < n:
            if i + 4 > n:
                raise ProtocolError(message="not a send_multipart message (truncated length)")
            ln = int.from_bytes(data[i:i + 4], "big")
            i += 4
            if i + ln > n:
                raise ProtocolError(message="not a send_multipart message (truncated part)")
            parts.append(data[i:i + ln])
            i += ln
        return parts

    # -- asyncio (see _aio.py)
    async def asend(self, data):
        """Send without blocking the event loop."""
        if self._try_send(data):
            return
        aio = _aio.state(self)
        while not self._try_send(data):
            await aio.writable(self)

    async def areply(self, token, data):
        """Answer the request with this token (see arecv_msg)."""
        if self._try_reply(token, data):
            return
        aio = _aio.state(self)
        while not self._try_reply(token, data):
            await aio.writable(self)

    async def arecv(self):
        """Receive the next message without blocking the event loop."""
        aio = self._aio
        if aio is None or not aio.waiters:
            data = self._try_recv()
            if data is not None:
                return data
        return await _aio.state(self).wait_message(self, False)

    async def arecv_msg(self):
        """arecv() returning a Message (with the token to areply() to)."""
        aio = self._aio
        if aio is None or not aio.waiters:
            try:
                return self._recv_msg(0)
            except TryAgain:
                pass
        return await _aio.state(self).wait_message(self, True)

    def request(self, data):
        """``await sock.request(b)``: send a request, await its reply (req, surveyor: first
        reply, pipelined-db).  Any number may be in flight on one socket;
        each caller gets its own reply.  Cancelling the awaiting task
        cancels the request: a late reply is dropped."""
        return _aio.call(self, self._try_request, data)

    arequest = request

    async def survey(self, data):
        """surveyor: send a survey and return the list of every reply that
        arrives before the survey ends (survey_time)."""
        aio = _aio.state(self)
        token = self._try_request(data)
        while not token:
            await aio.writable(self)
            token = self._try_request(data)
        col = _aio.Collector(aio.loop, aio.pending, token)
        aio.pending[token] = col
        if not aio.reading:
            aio.start_reading(self)
        try:
            return await col.fut
        except BaseException:
            if aio.pending.pop(token, None) is not None:
                try:
                    self.cancel(token)
                except Error:
                    pass
                if not aio.pending:
                    aio.maybe_idle(self)
            raise


for _name, (_opt, _kind) in OPTIONS.items():
    setattr(Socket, _name, _option_property(_name, _opt, _kind))
del _name, _opt, _kind


class _Endpoint:
    __slots__ = ("id", "socket", "__weakref__")
    _get = _set = _close = None

    def __init__(self, id, socket=None):
        self.id = id
        self.socket = socket

    def close(self):
        type(self)._close(self.id)

    @property
    def url(self):
        return type(self)._get(self.id, "url", "string")

    def get_option(self, name, kind=None):
        opt = OPTIONS.get(name)
        if opt is not None:
            name, k = opt
            kind = kind or k
        return type(self)._get(self.id, name, kind or "auto")

    def set_option(self, name, value):
        opt = OPTIONS.get(name)
        if opt is not None:
            name = opt[0]
        type(self)._set(self.id, name, value)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.close()
        except Closed:
            pass

    def __repr__(self):
        return "<%s id=%d>" % (type(self).__name__, self.id)


class Dialer(_Endpoint):
    """A socket's connection to one URL (returned by Socket.dial)."""
    __slots__ = ()
    _get = staticmethod(_iok.dialer_getopt)
    _set = staticmethod(_iok.dialer_setopt)
    _close = staticmethod(_iok.dialer_close)


class Listener(_Endpoint):
    """A socket's bound address (returned by Socket.listen)."""
    __slots__ = ()
    _get = staticmethod(_iok.listener_getopt)
    _set = staticmethod(_iok.listener_setopt)
    _close = staticmethod(_iok.listener_close)

    @property
    def port(self):
        """The TCP port bound (useful with tcp://127.0.0.1:0)."""
        return _iok.listener_getopt(self.id, "tcp-bound-port", "int")


def device(a, b=None):
    """Forward between two raw sockets on the kernel thread (b=None: a
    reflector).  Returns at once; stops when either socket closes."""
    _iok._device(a, b)


def _pattern_class(name, pattern, doc):
    cls = type(name, (Socket,), {"__slots__": (), "_pattern": pattern, "__doc__": doc,
                                 "__module__": __name__})

    def __init__(self, **kw):
        Socket.__init__(self, None, **kw)

    __init__.__doc__ = "%s(*, raw=False, dial=None, listen=None, **options)" % name
    cls.__init__ = __init__
    return cls


Pair0 = _pattern_class("Pair0", "pair0", "PAIR v0: one peer, messages both ways.")
Pair1 = _pattern_class("Pair1", "pair1", "PAIR v1 (polyamorous=True: many peers).")
Pair = Pair1
Push0 = _pattern_class("Push0", "push0", "PUSH: send to one ready pull peer, round-robin.")
Push = Push0
Pull0 = _pattern_class("Pull0", "pull0", "PULL: receive from every push peer, fair queue.")
Pull = Pull0


class Req0(Socket):
    """REQ: send a request, receive its reply; await request() for many in
    flight.  recv() with no request sent raises iok.BadState at once."""

    __slots__ = ("_outstanding",)
    _pattern = "req0"

    def __init__(self, **kw):
        """Req0(*, raw=False, dial=None, listen=None, **options)"""
        self._outstanding = False
        Socket.__init__(self, None, **kw)

    def send(self, data, timeout=None):
        """Send a request (a new one replaces an unanswered one)."""
        _iok.Socket.send(self, data, timeout=timeout)
        self._outstanding = True

    def _check_outstanding(self):
        if not self._outstanding and not self.raw:
            raise BadState(message="recv() on a req socket with no request outstanding "
                           "(send() one first)")

    def recv(self, timeout=None):
        """The reply to the last request sent (iok.BadState if none)."""
        self._check_outstanding()
        data = _iok.Socket.recv(self, timeout=timeout)
        self._outstanding = False
        return data

    def recv_msg(self, timeout=None):
        self._check_outstanding()
        m = self._recv_msg(timeout)
        self._outstanding = False
        return m


Req = Req0
Rep0 = _pattern_class("Rep0", "rep0", "REP: receive requests, send replies (reply() by token "
                      "for many at once).")
Rep = Rep0
Pub0 = _pattern_class("Pub0", "pub0", "PUB: send to every subscriber.")
Pub = Pub0
Sub0 = _pattern_class("Sub0", "sub0", "SUB: receive what matches subscribe(prefix).")
Sub = Sub0
Surveyor0 = _pattern_class("Surveyor0", "surveyor0", "SURVEYOR: ask every respondent, gather "
                           "replies until survey_time.")
Surveyor = Surveyor0
Respondent0 = _pattern_class("Respondent0", "respondent0", "RESPONDENT: answer surveys.")
Respondent = Respondent0
Bus0 = _pattern_class("Bus0", "bus0", "BUS: every message to every directly connected peer.")
Bus = Bus0
Db = _pattern_class("Db", "pipelined-db", "pipelined-db: requests without SP headers, replies "
                    "in order per connection, many in flight.")



POLLIN, POLLOUT = 1, 2


class Poller:
    """pyzmq-style readiness for sync users: register sockets, then
    poll(timeout ms; None = for ever) returns [(socket, events)] where
    events has POLLIN (a message is waiting) and/or POLLOUT (a send would
    not block).  Interrupted by Ctrl+C like any wait."""

    def __init__(self):
        self._socks = {}  # socket -> events

    def register(self, sock, flags=POLLIN):
        """Watch sock for flags (POLLIN | POLLOUT); flags=0 unregisters."""
        if flags:
            self._socks[sock] = flags
        else:
            self._socks.pop(sock, None)

    def modify(self, sock, flags=POLLIN):
        self.register(sock, flags)

    def unregister(self, sock):
        del self._socks[sock]

    def poll(self, timeout=None):
        import select
        p = select.poll()
        fds = {}
        for sock, ev in self._socks.items():
            if ev & POLLIN:
                fds.setdefault(sock.recv_fd, []).append((sock, POLLIN))
            if ev & POLLOUT:
                fds.setdefault(sock.send_fd, []).append((sock, POLLOUT))
        for fd in fds:
            p.register(fd, select.POLLIN)
        ready = {}
        ms = None if timeout is None or timeout < 0 else timeout
        for fd, _ in p.poll(ms):
            for sock, ev in fds[fd]:
                ready[sock] = ready.get(sock, 0) | ev
        return list(ready.items())


from . import _aio  # noqa: E402  (needs Socket's errors)
