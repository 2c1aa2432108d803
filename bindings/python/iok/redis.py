"""iok.redis - a Redis client whose connection lives on iok's kernel thread.

Every command of a client goes, pipelined, over ONE connection (per pool
slot) that the kernel thread owns: 1,000 concurrent coroutines make one
Redis connection, not 1,000.  Commands are encoded into RESP and replies
decoded into Python objects in C; replies are matched to their requests in
C (FIFO per connection).

Sync::

    r = iok.redis.Client("redis://127.0.0.1:6379/0")
    r.set("k", "v")
    r.get("k")                       # b'v'

asyncio (uvloop works too)::

    r = iok.redis.AsyncClient("redis://127.0.0.1:6379")
    await r.execute("GET", "k")
    await asyncio.gather(*(r.incr("n") for _ in range(1000)))   # one connection

Pub/sub on the same connection as the commands, transactions on a pinned
connection::

    async with r.pubsub() as ps:
        await ps.subscribe("news")   # returns once the server confirmed
        async for msg in ps:
            print(msg.channel, msg.data)

    async with r.transaction() as tx:
        tx.set("a", 1)
        tx.incr("a")
    tx.results                       # [True, 2]

Timeouts are milliseconds, as everywhere in iok.
"""

import asyncio
import collections
import threading
import urllib.parse

from . import _aio, _iok
import time

from . import AddressInvalid, Closed, Db, Error, ProtocolError, Sub, Timeout, TryAgain

__all__ = [
    "Client", "AsyncClient", "PubSub", "AsyncPubSub", "PubSubMessage",
    "Pipeline", "AsyncPipeline", "Session", "AsyncSession",
    "RedisError", "ResponseError", "ExecAbortError", "WatchError", "NoScriptError",
    "ReadOnlyError", "WrongTypeError", "BusyLoadingError", "AuthenticationError", "DataError",
    "resp_encode", "resp_decode",
]

DEFAULT_URL = "redis://127.0.0.1:6379"
_DECODE = _iok.RESP_DECODE
_IDEMPOTENT = _iok.FLAG_IDEMPOTENT


# ----------------------------------------------------------------- errors

class RedisError(Error):
    """Base of the errors iok.redis itself raises (an iok.Error, errno 0).
    Connection failures, timeouts and a closed client are the usual iok
    errors: iok.ConnectionReset, iok.Timeout, iok.Closed, iok.PeerAuthError
    (credentials refused at connect), iok.ConnectionRefused..."""

    errno = 0

    def __init__(self, message=""):
        Exception.__init__(self, message)
        self.errno = 0
        self.message = message

    def __str__(self):
        return self.message

    def __reduce__(self):
        return (type(self), (self.message,))


class ResponseError(RedisError):
    """An error reply from the server.  ``code`` is its first word ("ERR",
    "WRONGTYPE", ...).  Raised for a reply that is an error; inside an
    aggregate (EXEC's results) the instance is the element."""

    @property
    def code(self):
        return self.message.split(" ", 1)[0]


class ExecAbortError(ResponseError):
    """EXECABORT: a command of the transaction was refused when queued."""


class NoScriptError(ResponseError):
    """NOSCRIPT: no script with that SHA1 (EVALSHA)."""


class ReadOnlyError(ResponseError):
    """READONLY: a write sent to a replica."""


class WrongTypeError(ResponseError):
    """WRONGTYPE: the key holds another kind of value."""


class BusyLoadingError(ResponseError):
    """LOADING: the server is loading its dataset."""


class AuthenticationError(ResponseError):
    """NOAUTH / WRONGPASS returned to a command (credentials refused at
    connect are iok.PeerAuthError)."""


class WatchError(RedisError):
    """A watched key changed: EXEC did nothing."""


class DataError(RedisError):
    """A reply Python cannot represent (a big number over the int
    conversion limit, sys.get_int_max_str_digits)."""


_ERROR_CODES = {
    "EXECABORT": ExecAbortError, "NOSCRIPT": NoScriptError, "READONLY": ReadOnlyError,
    "WRONGTYPE": WrongTypeError, "LOADING": BusyLoadingError, "NOAUTH": AuthenticationError,
    "WRONGPASS": AuthenticationError,
}
_iok._redis_setup(ResponseError, _ERROR_CODES, ProtocolError, DataError)


def resp_encode(*args):
    """The RESP bytes of one command (str, bytes-like, int, float)."""
    return _iok.resp_encode(args)


def resp_decode(data, decode_responses=False):
    """Decode one complete RESP2/RESP3 reply; an error reply raises
    ResponseError."""
    return _iok.resp_decode(data, _DECODE if decode_responses else 0)


# Commands sent again on a new connection if the one they were in flight on
# dropped (IOK_FLAG_IDEMPOTENT): the read-only ones.
_READS = (
    "GET MGET EXISTS TTL PTTL TYPE STRLEN GETRANGE HGET HMGET HGETALL HEXISTS HLEN HKEYS "
    "HVALS HSTRLEN LRANGE LLEN LINDEX SMEMBERS SISMEMBER SMISMEMBER SCARD SRANDMEMBER ZRANGE "
    "ZSCORE ZMSCORE ZCARD ZRANK ZREVRANK ZCOUNT ZREVRANGE ZRANGEBYSCORE KEYS SCAN HSCAN SSCAN "
    "ZSCAN PING ECHO DBSIZE TIME INFO RANDOMKEY OBJECT BITCOUNT GETBIT PFCOUNT XLEN XRANGE"
).split()
_IDEM = {}
for _c in _READS:
    for _v in (_c, _c.lower()):
        _IDEM[_v] = _IDEMPOTENT
        _IDEM[_v.encode()] = _IDEMPOTENT
del _c, _v
R = _IDEMPOTENT  # flags of the read-only convenience methods below


def _check_url(url):
    """Refuse URL options the transport would refuse on every connection.
    (The C core checks them only once connected, and a blocking dial with
    one of them never returns: this makes it iok.AddressInvalid at once.)"""
    try:
        u = urllib.parse.urlsplit(url)
    except ValueError:
        raise AddressInvalid() from None
    q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
    dbs = q.get("db", [])
    if u.scheme == "redis" and u.path not in ("", "/"):
        dbs.append(u.path[1:])
    for db in dbs:
        if not (db.isdigit() and db.isascii() and len(db) <= 9):
            raise AddressInvalid(message="invalid database number %r in %s" % (db, url))
    for p in q.get("protocol", []):
        if p not in ("2", "3"):
            raise AddressInvalid(message="protocol must be 2 or 3 in %s" % url)
    for n in q.get("name", []):
        if not all("!" <= ch <= "~" for ch in n):
            raise AddressInvalid(message="a client name has no spaces or special characters")


def _url(url, name, db):
    _check_url(url)
    extra = []
    if name is not None:
        extra.append("name=" + urllib.parse.quote(str(name), safe=""))
    if db is not None:
        extra.append("db=%d" % int(db))
    if not extra:
        return url
    url = url + ("&" if "?" in url else "?") + "&".join(extra)
    _check_url(url)
    return url


def _b(x):
    """A channel name as bytes (how subscriptions are tracked)."""
    if isinstance(x, str):
        return x.encode()
    return bytes(x)


def _cmdname(args):
    c = args[0]
    if isinstance(c, (bytes, bytearray)):
        c = bytes(c).decode("latin-1")
    return c.upper() if isinstance(c, str) else ""


# ------------------------------------------------------- reply transforms

def _ok(v):
    return True if v == b"OK" or v == "OK" else v


def _ok_or_none(v):
    return True if v == b"OK" or v == "OK" else None


def _bool(v):
    return bool(v)


def _pong(v):
    return v == "PONG" or v == b"PONG" or v


def _pairs(v):
    """HGETALL and the like: a RESP3 map, or RESP2's flat list."""
    if isinstance(v, dict) or v is None:
        return v
    it = iter(v)
    return dict(zip(it, it))


def _as_set(v):
    return v if isinstance(v, set) or v is None else set(v)


def _scored(v):
    """ZRANGE ... WITHSCORES: [(member, score)] from RESP3's pairs or
    RESP2's flat list."""
    if not v:
        return v
    if isinstance(v[0], list):
        return [(m, float(s)) for m, s in v]
    it = iter(v)
    return [(m, float(s)) for m, s in zip(it, it)]


def _float(v):
    return None if v is None else float(v)


def _scan(v):
    cursor, keys = v
    return int(cursor), keys


# -------------------------------------------------------------- commands

class Commands:
    """Convenience methods, one per common command.  Each builds the
    command and hands it to _cmd(args, transform, flags): a Client runs it
    and returns the reply, an AsyncClient returns an awaitable, a pipeline
    queues it.  Anything else: execute("CMD", *args)."""

    __slots__ = ()

    def _cmd(self, args, transform=None, flags=0):
        raise NotImplementedError

    # -- connection, server
    def ping(self):
        """True if the server answered PONG."""
        return self._cmd(("PING",), _pong, R)

    def echo(self, value):
        return self._cmd(("ECHO", value), None, R)

    def flushdb(self, asynchronous=False):
        return self._cmd(("FLUSHDB", "ASYNC") if asynchronous else ("FLUSHDB",), _ok)

    def dbsize(self):
        return self._cmd(("DBSIZE",), None, R)

    def info(self, section=None):
        """The INFO text (a str)."""
        args = ("INFO",) if section is None else ("INFO", section)
        return self._cmd(args, lambda v: v.decode() if isinstance(v, bytes) else v, R)

    # -- keys, strings
    def get(self, name):
        return self._cmd(("GET", name), None, R)

    def set(self, name, value, ex=None, px=None, nx=False, xx=False, keepttl=False,
            get=False, exat=None, pxat=None):
        """SET; True when set, None when nx/xx prevented it (with
        get=True: the old value)."""
        args = ["SET", name, value]
        if ex is not None:
            args += ("EX", ex)
        if px is not None:
            args += ("PX", px)
        if exat is not None:
            args += ("EXAT", exat)
        if pxat is not None:
            args += ("PXAT", pxat)
        if nx:
            args.append("NX")
        if xx:
            args.append("XX")
        if keepttl:
            args.append("KEEPTTL")
        if get:
            args.append("GET")
            return self._cmd(args)
        return self._cmd(args, _ok_or_none)

    def setex(self, name, seconds, value):
        return self._cmd(("SETEX", name, seconds, value), _ok)

    def getdel(self, name):
        return self._cmd(("GETDEL", name))

    def mget(self, keys, *args):
        """MGET: mget(["a", "b"]) or mget("a", "b")."""
        names = list(keys) if isinstance(keys, (list, tuple)) else [keys]
        names.extend(args)
        return self._cmd(["MGET"] + names, None, R)

    def mset(self, mapping):
        args = ["MSET"]
        for k, v in mapping.items():
            args += (k, v)
        return self._cmd(args, _ok)

    def delete(self, *names):
        """DEL: the number of keys removed."""
        return self._cmd(("DEL",) + names)

    def exists(self, *names):
        """The number of the names that exist."""
        return self._cmd(("EXISTS",) + names, None, R)

    def type(self, name):
        return self._cmd(("TYPE", name), None, R)

    def incr(self, name, amount=1):
        return self._cmd(("INCR", name) if amount == 1 else ("INCRBY", name, amount))

    def incrby(self, name, amount=1):
        return self._cmd(("INCRBY", name, amount))

    def incrbyfloat(self, name, amount=1.0):
        return self._cmd(("INCRBYFLOAT", name, amount), _float)

    def decr(self, name, amount=1):
        return self._cmd(("DECR", name) if amount == 1 else ("DECRBY", name, amount))

    def decrby(self, name, amount=1):
        return self._cmd(("DECRBY", name, amount))

    def append(self, name, value):
        return self._cmd(("APPEND", name, value))

    def strlen(self, name):
        return self._cmd(("STRLEN", name), None, R)

    def expire(self, name, seconds):
        return self._cmd(("EXPIRE", name, seconds), _bool)

    def pexpire(self, name, ms):
        return self._cmd(("PEXPIRE", name, ms), _bool)

    def persist(self, name):
        return self._cmd(("PERSIST", name), _bool)

    def ttl(self, name):
        return self._cmd(("TTL", name), None, R)

    def pttl(self, name):
        return self._cmd(("PTTL", name), None, R)

    def keys(self, pattern="*"):
        return self._cmd(("KEYS", pattern), None, R)

    def scan(self, cursor=0, match=None, count=None, _type=None):
        """One SCAN step: (next cursor, keys)."""
        args = ["SCAN", cursor]
        if match is not None:
            args += ("MATCH", match)
        if count is not None:
            args += ("COUNT", count)
        if _type is not None:
            args += ("TYPE", _type)
        return self._cmd(args, _scan, R)

    # -- hashes
    def hget(self, name, key):
        return self._cmd(("HGET", name, key), None, R)

    def hmget(self, name, keys, *args):
        names = list(keys) if isinstance(keys, (list, tuple)) else [keys]
        names.extend(args)
        return self._cmd(["HMGET", name] + names, None, R)

    def hset(self, name, key=None, value=None, mapping=None):
        """HSET name key value, and/or every pair of mapping: the number of
        fields added."""
        args = ["HSET", name]
        if key is not None:
            args += (key, value)
        if mapping:
            for k, v in mapping.items():
                args += (k, v)
        if len(args) == 2:
            raise ValueError("hset needs key and value, or a mapping")
        return self._cmd(args)

    def hgetall(self, name):
        return self._cmd(("HGETALL", name), _pairs, R)

    def hdel(self, name, *keys):
        return self._cmd(("HDEL", name) + keys)

    def hexists(self, name, key):
        return self._cmd(("HEXISTS", name, key), _bool, R)

    def hincrby(self, name, key, amount=1):
        return self._cmd(("HINCRBY", name, key, amount))

    def hkeys(self, name):
        return self._cmd(("HKEYS", name), None, R)

    def hvals(self, name):
        return self._cmd(("HVALS", name), None, R)

    def hlen(self, name):
        return self._cmd(("HLEN", name), None, R)

    # -- lists
    def lpush(self, name, *values):
        return self._cmd(("LPUSH", name) + values)

    def rpush(self, name, *values):
        return self._cmd(("RPUSH", name) + values)

    def lpop(self, name, count=None):
        return self._cmd(("LPOP", name) if count is None else ("LPOP", name, count))

    def rpop(self, name, count=None):
        return self._cmd(("RPOP", name) if count is None else ("RPOP", name, count))

    def lrange(self, name, start, end):
        return self._cmd(("LRANGE", name, start, end), None, R)

    def llen(self, name):
        return self._cmd(("LLEN", name), None, R)

    def lindex(self, name, index):
        return self._cmd(("LINDEX", name, index), None, R)

    def lrem(self, name, count, value):
        return self._cmd(("LREM", name, count, value))

    def ltrim(self, name, start, end):
        return self._cmd(("LTRIM", name, start, end), _ok)

    # -- sets
    def sadd(self, name, *values):
        return self._cmd(("SADD", name) + values)

    def srem(self, name, *values):
        return self._cmd(("SREM", name) + values)

    def smembers(self, name):
        return self._cmd(("SMEMBERS", name), _as_set, R)

    def sismember(self, name, value):
        return self._cmd(("SISMEMBER", name, value), _bool, R)

    def scard(self, name):
        return self._cmd(("SCARD", name), None, R)

    # -- sorted sets
    def zadd(self, name, mapping, nx=False, xx=False, gt=False, lt=False, ch=False):
        """ZADD name {member: score}: the number of members added (changed,
        with ch=True)."""
        args = ["ZADD", name]
        for flag, word in ((nx, "NX"), (xx, "XX"), (gt, "GT"), (lt, "LT"), (ch, "CH")):
            if flag:
                args.append(word)
        for m, s in mapping.items():
            args += (s, m)
        return self._cmd(args)

    def zrange(self, name, start, end, withscores=False, desc=False):
        """Members by rank; withscores=True: [(member, score)]."""
        args = ["ZRANGE", name, start, end]
        if desc:
            args.append("REV")
        if withscores:
            args.append("WITHSCORES")
            return self._cmd(args, _scored, R)
        return self._cmd(args, None, R)

    def zscore(self, name, member):
        return self._cmd(("ZSCORE", name, member), _float, R)

    def zincrby(self, name, amount, member):
        return self._cmd(("ZINCRBY", name, amount, member), _float)

    def zrem(self, name, *members):
        return self._cmd(("ZREM", name) + members)

    def zcard(self, name):
        return self._cmd(("ZCARD", name), None, R)

    # -- pub/sub (publishing; receiving: pubsub())
    def publish(self, channel, message):
        """The number of subscribers that received the message."""
        return self._cmd(("PUBLISH", channel, message))


# ---------------------------------------------------------- the connection

class _DbSocket(Db):
    """The pipelined-db socket of a client; asyncio's reader decodes
    replies in C."""

    __slots__ = ("_rflags",)

    def _dispatch(self, pending):
        return self._redis_dispatch(pending, self._rflags)


class _Base(Commands):
    __slots__ = ("url", "decode_responses", "timeout", "_sock", "_dialer", "_flags",
                 "_retry", "_pubsub", "__weakref__")

    def __init__(self, url=DEFAULT_URL, *, pool_size=1, timeout=None, name=None, db=None,
                 decode_responses=False, wait=True, retry_reads=True, max_inflight=None,
                 **options):
        self._sock = None
        self._pubsub = None
        self.url = url
        self.decode_responses = bool(decode_responses)
        self.timeout = timeout
        self._flags = _DECODE if decode_responses else 0
        self._retry = bool(retry_reads)
        sock = _DbSocket(**options)
        sock._rflags = self._flags
        try:
            if pool_size != 1:
                sock.setopt("pool-size", int(pool_size))
            if timeout is not None:
                sock.setopt("req:timeout", timeout)
            if max_inflight is not None:
                sock.setopt("db:max-inflight", int(max_inflight))
            self._dialer = sock.dial(_url(url, name, db), block=wait)
        except BaseException:
            sock.close()
            raise
        self._sock = sock

    def __repr__(self):
        return "<%s %s%s>" % (type(self).__name__, self.url, " closed" if self.closed else "")

    @property
    def closed(self):
        return self._sock is None or self._sock.closed

    @property
    def socket(self):
        """The underlying iok.Db socket (options, stats)."""
        return self._sock

    @property
    def stats(self):
        """The socket's counters (connections now: "pipes")."""
        return self._sock.stats

    def _flags_of(self, args):
        return _IDEM.get(args[0], 0) if self._retry else 0

    def _close(self):
        ps, self._pubsub = self._pubsub, None
        if ps is not None:
            ps._close_sub()
        if self._sock is not None:
            self._sock.close()


# ------------------------------------------------------------------ sync

class _SyncDemux:
    """Routes replies to the threads waiting for them (leader/follower): one
    thread at a time reads (GIL released while it waits); replies for others
    are handed over and wake them; when the reader's own reply comes it
    passes the role on to a waiting thread."""

    __slots__ = ("sock", "flags", "lock", "reading", "results", "waiting", "dropped")

    def __init__(self, sock, flags):
        self.sock = sock
        self.flags = flags
        self.lock = threading.Lock()
        self.reading = False
        self.results = {}   # token -> (value, failed), for a thread not yet waiting
        self.waiting = {}   # token -> a held Lock its thread blocks on
        self.dropped = set()  # tokens given up on, whose completion may still come

    def wait(self, token):
        """(value, failed) for the request with this token."""
        lock = self.lock
        with lock:
            r = self.results.pop(token, None)
            if r is not None:
                return r
            if self.reading:
                ev = threading.Lock()
                ev.acquire()
                self.waiting[token] = ev
            else:
                ev = None
                self.reading = True
        if ev is not None:
            try:
                ev.acquire()
            except BaseException:
                self.abandon(token, promoted_ok=True)
                raise
            with lock:
                r = self.results.pop(token, None)
            if r is not None:
                return r
            # else: promoted; self.reading was kept True for us
        return self._read(token)

    def _read(self, token):
        sock, flags, lock = self.sock, self.flags, self.lock
        try:
            while True:
                batch = sock._redis_recv(-1, flags, 512)
                mine = None
                with lock:
                    for tok, val, failed in batch:
                        if tok == token:
                            mine = (val, failed)
                            continue
                        ev = self.waiting.pop(tok, None)
                        if ev is not None:
                            self.results[tok] = (val, failed)
                            ev.release()
                        elif tok in self.dropped:
                            self.dropped.discard(tok)
                        elif tok:
                            self.results[tok] = (val, failed)  # its thread is on its way
                if mine is not None:
                    return mine
        except BaseException:
            with lock:
                self.dropped.add(token)
            try:
                sock.cancel(token)
            except Error:
                pass
            raise
        finally:
            with lock:
                self._handover()

    def _handover(self):
        # lock held
        if self.waiting:
            tok = next(iter(self.waiting))
            self.waiting.pop(tok).release()  # it reads now; reading stays True
        else:
            self.reading = False

    def abandon(self, token, promoted_ok=False):
        with self.lock:
            if self.waiting.pop(token, None) is None and self.results.pop(token, None) is None:
                if promoted_ok:
                    self._handover()  # we were made the reader: pass it on
                self.dropped.add(token)
            else:
                self.dropped.discard(token)
        try:
            self.sock.cancel(token)
        except Error:
            pass


class _SyncRunner:
    """Sync execution shared by Client, Session and Pipeline."""

    __slots__ = ()

    def _call(self, args, session=0, flags=0):
        c = self._client
        tok = c._sock._redis_request(args, session, flags, None)
        value, failed = c._demux.wait(tok)
        if failed:
            raise value
        return value

    def _call_many(self, cmds, session=0, close_session=False):
        """Send every command, then wait for each: [(value, failed)].  With
        close_session, the session is released once they are all sent."""
        c = self._client
        sock, demux = c._sock, c._demux
        toks = []
        try:
            for args, flags in cmds:
                toks.append(sock._redis_request(args, session, flags, None))
        except BaseException:
            if session and toks and close_session:
                _end_session_early(sock, session, cmds, len(toks))
            for t in toks:
                demux.abandon(t)
            if close_session:
                _session_close(sock, session)
            raise
        if close_session:
            _session_close(sock, session)
        out = []
        try:
            for t in toks:
                out.append(demux.wait(t))
        except BaseException:
            for t in toks[len(out) + 1:]:
                demux.abandon(t)
            raise
        return out


def _session_close(sock, session):
    try:
        _iok.session_close(sock.id, session)
    except Closed:
        pass


def _end_session_early(sock, session, cmds, sent):
    """Sending a transaction stopped part-way (interrupted): leave the
    connection out of MULTI before the session lets others on it."""
    names = [_cmdname(a) for a, _ in cmds[:sent]]
    if "MULTI" in names and "EXEC" not in names[names.index("MULTI"):]:
        try:
            sock._redis_request(("DISCARD",), session, 0, -1)
        except Error:
            pass


class Client(_SyncRunner, _Base):
    """Client(url="redis://127.0.0.1:6379", *, pool_size=1, timeout=None,
    name=None, db=None, decode_responses=False, wait=True, retry_reads=True,
    max_inflight=None, **socket_options)

    A synchronous Redis client; thread-safe: any number of threads share
    its one connection, their commands pipelined.

    url: redis://[user:password@]host:port/db or
    redis+unix:///path/to/socket?db=N (also ?protocol=2, ?name=).
    pool_size: connections (commands spread over them; default 1).
    timeout: ms per command, from the call to its reply (iok.Timeout);
    None: no limit.  name: CLIENT SETNAME.  decode_responses: bulk strings
    as str instead of bytes.  wait: connect before returning (and raise
    iok.ConnectionRefused, iok.PeerAuthError...); False: connect in the
    background, commands wait for the connection.  retry_reads: a
    read-only command in flight when the connection dropped is sent again
    on the next one (else it raises iok.ConnectionReset, as writes do).
    """

    __slots__ = ("_demux",)

    def __init__(self, url=DEFAULT_URL, **kw):
        self._demux = None
        _Base.__init__(self, url, **kw)
        self._demux = _SyncDemux(self._sock, self._flags)

    @property
    def _client(self):
        return self

    def execute(self, *args):
        """Run one command: execute("SET", "k", b"v", "EX", 10).  Arguments:
        str (UTF-8), bytes-like, int, float.  Returns the decoded reply;
        an error reply raises ResponseError."""
        return self._call(args, 0, _IDEM.get(args[0], 0) if self._retry else 0)

    def _cmd(self, args, transform=None, flags=0):
        v = self._call(args, 0, flags if self._retry else 0)
        return v if transform is None else transform(v)

    def scan_iter(self, match=None, count=None, _type=None):
        """Every key (SCAN until the cursor comes back to 0)."""
        cursor = None
        while cursor != 0:
            cursor, keys = self.scan(cursor or 0, match, count, _type)
            yield from keys

    def pipeline(self, transaction=False):
        """Commands queued, then sent together by execute() (or at the end
        of a with block); transaction=True wraps them in MULTI/EXEC on a
        pinned connection."""
        return Pipeline(self, transaction)

    def transaction(self):
        """``with r.transaction() as tx: tx.set(...); tx.incr(...)``: MULTI,
        the commands, EXEC on one pinned connection, nothing else
        interleaved; tx.results holds EXEC's (transformed) results."""
        return Pipeline(self, True)

    def session(self):
        """A Session: every command on one pinned connection (WATCH,
        optimistic transactions).  Close it (with block) soon: while it is
        open, no other command uses its connection."""
        return Session(self)

    def pubsub(self, ignore_subscribe_messages=True):
        """A PubSub on the client's own connection (one per client)."""
        if self._pubsub is not None and not self._pubsub.closed:
            raise RuntimeError("this client already has a pubsub; close it first")
        self._pubsub = PubSub(self, ignore_subscribe_messages)
        return self._pubsub

    def close(self):
        """Close the connection (and the pubsub).  Threads waiting for
        replies raise iok.Closed."""
        self._close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Session(_SyncRunner, Commands):
    """Commands on one pinned connection, in order, with nothing else
    interleaved, until close().  For WATCH / MULTI / EXEC::

        with r.session() as s:
            s.watch("balance")
            v = int(s.get("balance"))
            with s.transaction() as tx:      # WatchError if it changed
                tx.set("balance", v + 1)
    """

    __slots__ = ("_client", "_id", "_watching", "_in_multi", "_closed")

    def __init__(self, client):
        self._client = client
        self._id = _iok.session_open(client._sock.id)
        self._watching = self._in_multi = self._closed = False

    def _track(self, args):
        c = _cmdname(args)
        if c == "WATCH":
            self._watching = True
        elif c == "MULTI":
            self._in_multi = True
        elif c in ("EXEC", "DISCARD"):
            self._watching = self._in_multi = False
        elif c == "UNWATCH":
            self._watching = False

    def _check(self):
        if self._closed:
            raise Closed(message="the session is closed")

    def execute(self, *args):
        self._check()
        self._track(args)
        return self._call(args, self._id, 0)

    def _cmd(self, args, transform=None, flags=0):
        self._check()
        v = self._call(args, self._id, 0)
        return v if transform is None else transform(v)

    def watch(self, *names):
        return self.execute("WATCH", *names)

    def unwatch(self):
        return self.execute("UNWATCH")

    def pipeline(self, transaction=False):
        return Pipeline(self._client, transaction, self)

    def transaction(self):
        return Pipeline(self._client, True, self)

    def close(self):
        """End the session: a WATCH still standing is undone, an open MULTI
        discarded, and the connection goes back to everyone."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._in_multi:
                self._call(("DISCARD",), self._id)
            elif self._watching:
                self._call(("UNWATCH",), self._id)
        except Error:
            pass
        finally:
            _session_close(self._client._sock, self._id)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _tx_results(pipe, replies):
    """Results of a pipeline from [(value, failed)] (transaction: MULTI,
    the commands, EXEC)."""
    cmds = pipe._cmds
    if not pipe._transaction:
        out = []
        for (args, transform, _), (v, failed) in zip(cmds, replies):
            out.append(v if failed or transform is None else transform(v))
        pipe.results = out
        if pipe._raise:
            for v, failed in replies:
                if failed:
                    raise v
        return out
    multi, queued, (execv, efailed) = replies[0], replies[1:-1], replies[-1]
    if multi[1]:
        raise multi[0]
    if efailed:
        if isinstance(execv, ResponseError):
            for i, (v, failed) in enumerate(queued):
                if failed and isinstance(v, ResponseError):
                    raise type(execv)("%s (command %d, %s: %s)" % (
                        execv.message, i + 1, _cmdname(cmds[i][0]), v.message)) from v
        raise execv
    if execv is None:
        raise WatchError("a watched key changed: the transaction was not executed")
    out = []
    for (args, transform, _), v in zip(cmds, execv):
        out.append(v if transform is None or isinstance(v, ResponseError) else transform(v))
    pipe.results = out
    if pipe._raise:
        for v in out:
            if isinstance(v, ResponseError):
                raise v
    return out


class _PipelineBase(Commands):
    __slots__ = ("_client", "_transaction", "_session", "_cmds", "_raise", "results")

    def __init__(self, client, transaction, session=None, raise_on_error=True):
        self._client = client
        self._transaction = transaction
        self._session = session
        self._cmds = []
        self._raise = raise_on_error
        self.results = None

    def _cmd(self, args, transform=None, flags=0):
        self._cmds.append((args, transform, flags))
        return self

    def execute_command(self, *args):
        """Queue any command (its reply comes untransformed)."""
        self._cmds.append((args, None, 0))
        return self

    def __len__(self):
        return len(self._cmds)

    def _plan(self):
        """(commands to send as (args, flags), session, close_session)."""
        if self._session is not None:
            self._session._check()
            sess, own = self._session._id, False
        elif self._transaction:
            sess, own = _iok.session_open(self._client._sock.id), True
        else:
            sess, own = 0, False
        if self._transaction:
            cmds = [(("MULTI",), 0)] + [(a, 0) for a, _, _ in self._cmds] + [(("EXEC",), 0)]
        else:
            retry = self._client._retry and sess == 0
            cmds = [(a, f if retry else 0) for a, _, f in self._cmds]
        return cmds, sess, own

    def _finish(self, replies):
        if self._session is not None and self._transaction:
            self._session._watching = self._session._in_multi = False
        try:
            return _tx_results(self, replies)
        finally:
            self._cmds = []


class Pipeline(_SyncRunner, _PipelineBase):
    """Queued commands sent together (see Client.pipeline/transaction)."""

    __slots__ = ()

    def execute(self, raise_on_error=True):
        """Send the queued commands and return their results (a transaction:
        EXEC's).  An error reply raises (the first one) unless
        raise_on_error=False, which puts the exceptions in the list."""
        self._raise = raise_on_error
        if not self._cmds:
            self.results = []
            return []
        cmds, sess, own = self._plan()
        return self._finish(self._call_many(cmds, sess, own))

    def __enter__(self):
        return self

    def __exit__(self, et, e, tb):
        if et is None and self._cmds:
            self.execute(self._raise)


# ---------------------------------------------------------------- asyncio

class _AsyncRunner:
    __slots__ = ()

    def _acall(self, args, session=0, flags=0):
        sock = self._client._sock
        return _aio.call(sock, sock._redis_request, args, session, flags)

    async def _acall_t(self, args, transform, session=0, flags=0):
        return transform(await self._acall(args, session, flags))

    async def _acall_many(self, cmds, session=0, close_session=False):
        sock = self._client._sock
        aio = _aio.state(sock)
        loop = aio.loop
        pending = aio.pending
        sent = []  # (token, future)
        try:
            for args, flags in cmds:
                token = sock._redis_request(args, session, flags)
                while not token:
                    await aio.writable(sock)
                    token = sock._redis_request(args, session, flags)
                fut = loop.create_future()
                pending[token] = fut
                sent.append((token, fut))
        except BaseException:
            if session and sent and close_session:
                _end_session_early(sock, session, cmds, len(sent))
            self._forget(sock, aio, sent)
            if close_session:
                _session_close(sock, session)
            raise
        if close_session:
            _session_close(sock, session)
        if not aio.reading:
            aio.start_reading(sock)
        out = []
        try:
            for token, fut in sent:
                try:
                    out.append((await fut, False))
                except (Error, UnicodeDecodeError) as e:
                    out.append((e, True))
        except BaseException:
            self._forget(sock, aio, sent[len(out):])
            raise
        return out

    @staticmethod
    def _forget(sock, aio, sent):
        pending = aio.pending
        for token, fut in sent:
            if pending.pop(token, None) is not None:
                try:
                    sock.cancel(token)
                except Error:
                    pass
        if not pending:
            aio.maybe_idle(sock)


class AsyncClient(_AsyncRunner, _Base):
    """AsyncClient(url="redis://127.0.0.1:6379", *, pool_size=1,
    timeout=None, name=None, db=None, decode_responses=False, wait=True,
    retry_reads=True, max_inflight=None, **socket_options)

    The asyncio client: every method is a coroutine (``await r.get("k")``),
    and any number of them may run concurrently, pipelined over one
    connection; each gets its own reply.  Works with uvloop.  Options as
    Client (wait=True connects in the constructor, GIL released).
    Cancelling an awaiting task cancels its command's reply (the command
    itself may already have run).
    """

    __slots__ = ()

    @property
    def _client(self):
        return self

    def execute(self, *args):
        """``await r.execute("GET", "k")``: one command, its decoded reply;
        an error reply raises ResponseError."""
        return self._acall(args, 0, _IDEM.get(args[0], 0) if self._retry else 0)

    def _cmd(self, args, transform=None, flags=0):
        if not self._retry:
            flags = 0
        if transform is None:
            return self._acall(args, 0, flags)
        return self._acall_t(args, transform, 0, flags)

    async def scan_iter(self, match=None, count=None, _type=None):
        """``async for key in r.scan_iter(): ...``"""
        cursor = None
        while cursor != 0:
            cursor, keys = await self.scan(cursor or 0, match, count, _type)
            for k in keys:
                yield k

    def pipeline(self, transaction=False):
        return AsyncPipeline(self, transaction)

    def transaction(self):
        """``async with r.transaction() as tx: tx.set(...); tx.incr(...)``:
        MULTI, the commands, EXEC on one pinned connection, nothing else
        interleaved; tx.results holds EXEC's results."""
        return AsyncPipeline(self, True)

    def session(self):
        """An AsyncSession (``async with r.session() as s:``)."""
        return AsyncSession(self)

    def pubsub(self, ignore_subscribe_messages=True):
        """An AsyncPubSub on the client's own connection (one per client)."""
        if self._pubsub is not None and not self._pubsub.closed:
            raise RuntimeError("this client already has a pubsub; close it first")
        self._pubsub = AsyncPubSub(self, ignore_subscribe_messages)
        return self._pubsub

    def close(self):
        """Close the connection; awaiting commands raise iok.Closed."""
        self._close()

    async def aclose(self):
        self._close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()


class AsyncSession(_AsyncRunner, Commands):
    """Session for AsyncClient (``async with r.session() as s:``)."""

    __slots__ = ("_client", "_id", "_watching", "_in_multi", "_closed")

    def __init__(self, client):
        self._client = client
        self._id = _iok.session_open(client._sock.id)
        self._watching = self._in_multi = self._closed = False

    _track = Session._track
    _check = Session._check

    def execute(self, *args):
        self._check()
        self._track(args)
        return self._acall(args, self._id, 0)

    def _cmd(self, args, transform=None, flags=0):
        self._check()
        if transform is None:
            return self._acall(args, self._id, 0)
        return self._acall_t(args, transform, self._id, 0)

    def watch(self, *names):
        return self.execute("WATCH", *names)

    def unwatch(self):
        return self.execute("UNWATCH")

    def pipeline(self, transaction=False):
        return AsyncPipeline(self._client, transaction, self)

    def transaction(self):
        return AsyncPipeline(self._client, True, self)

    async def close(self):
        if self._closed:
            return
        self._closed = True
        try:
            if self._in_multi:
                await self._acall(("DISCARD",), self._id)
            elif self._watching:
                await self._acall(("UNWATCH",), self._id)
        except Error:
            pass
        finally:
            _session_close(self._client._sock, self._id)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()


class AsyncPipeline(_AsyncRunner, _PipelineBase):
    """Queued commands sent together (AsyncClient.pipeline/transaction)."""

    __slots__ = ()

    async def execute(self, raise_on_error=True):
        self._raise = raise_on_error
        if not self._cmds:
            self.results = []
            return []
        cmds, sess, own = self._plan()
        return self._finish(await self._acall_many(cmds, sess, own))

    async def __aenter__(self):
        return self

    async def __aexit__(self, et, e, tb):
        if et is None and self._cmds:
            await self.execute(self._raise)


# ---------------------------------------------------------------- pub/sub

class PubSubMessage:
    """A message from a subscription: ``type`` ("message", "pmessage", or
    for other pushes their kind, e.g. "subscribe" when confirmations are
    not ignored), ``channel``, ``data`` and ``pattern`` (pmessage; else
    None).  Also readable as msg["data"], like redis-py's dicts."""

    __slots__ = ("type", "channel", "data", "pattern")

    def __init__(self, type, channel, data, pattern=None):
        self.type = type
        self.channel = channel
        self.data = data
        self.pattern = pattern

    def __getitem__(self, key):
        try:
            return getattr(self, key)
        except (AttributeError, TypeError):
            raise KeyError(key) from None

    def __eq__(self, other):
        if not isinstance(other, PubSubMessage):
            return NotImplemented
        return (self.type, self.channel, self.data, self.pattern) == \
            (other.type, other.channel, other.data, other.pattern)

    def __repr__(self):
        return "PubSubMessage(type=%r, channel=%r, data=%r, pattern=%r)" % (
            self.type, self.channel, self.data, self.pattern)


_CONFIRMS = {"subscribe", "unsubscribe", "psubscribe", "punsubscribe"}


class _PubSubBase:
    """State shared by PubSub and AsyncPubSub: a sub socket sharing the
    client's Redis connection (iok_dialer_share), so subscriptions ride on
    the connection that carries the commands; the C side sends them again
    after every reconnect."""

    def __init__(self, client, ignore_subscribe_messages):
        self._client = client
        self._flags = client._flags
        self._ignore = ignore_subscribe_messages
        sub = Sub()
        try:
            _iok.dialer_share(client._dialer.id, sub.id)
        except BaseException:
            sub.close()
            raise
        self._sub = sub
        self.channels = {}  # bytes -> True (confirmed) or False (waiting)
        self.patterns = {}
        self._waits = {}    # ("subscribe", name) -> [waiters]

    @property
    def closed(self):
        return self._sub.closed

    @property
    def subscribed(self):
        return bool(self.channels or self.patterns)

    def _set(self, pattern):
        return self.patterns if pattern else self.channels

    def _request(self, pattern, names):
        """Ask for the subscriptions not already made: the names to wait
        for."""
        table = self._set(pattern)
        opt = "sub:psubscribe" if pattern else "sub:subscribe"
        new = []
        for n in names:
            k = _b(n)
            if k in table:
                if not table[k]:
                    new.append(k)
                continue
            table[k] = False
            try:
                self._sub.setopt(opt, k)
            except BaseException:
                del table[k]
                raise
            new.append(k)
        return new

    def _drop(self, pattern, names):
        table = self._set(pattern)
        opt = "sub:punsubscribe" if pattern else "sub:unsubscribe"
        names = [_b(n) for n in names] if names else list(table)
        for k in names:
            if table.pop(k, None) is not None:
                try:
                    self._sub.setopt(opt, k)
                except Error:
                    pass

    def _route(self, v):
        """A decoded push -> a PubSubMessage to deliver, or None."""
        if not isinstance(v, list) or not v:
            return None
        kind = v[0]
        if isinstance(kind, bytes):
            kind = kind.decode("latin-1")
        if kind == "message" and len(v) == 3:
            if _b(v[1]) not in self.channels:
                return None  # unsubscribed since
            return PubSubMessage("message", v[1], v[2])
        if kind == "pmessage" and len(v) == 4:
            if _b(v[1]) not in self.patterns:
                return None
            return PubSubMessage("pmessage", v[2], v[3], v[1])
        if kind in _CONFIRMS and len(v) == 3:
            if kind == "subscribe" or kind == "psubscribe":
                k = _b(v[1]) if v[1] is not None else None
                table = self.patterns if kind[0] == "p" else self.channels
                if k in table:
                    table[k] = True
                self._confirmed((kind, k), v[2])
            if self._ignore:
                return None
            return PubSubMessage(kind, v[1], v[2])
        return PubSubMessage(kind, None, v[1:])  # another push (e.g. tracking)


class PubSub(_PubSubBase):
    """Sync pub/sub on a Client's connection::

        ps = r.pubsub()
        ps.subscribe("news")                 # returns once confirmed
        for msg in ps.listen():
            print(msg.channel, msg.data)

    Not thread-safe (one thread reads it); the client's commands go on from
    any thread meanwhile.
    """

    def __init__(self, client, ignore_subscribe_messages=True):
        _PubSubBase.__init__(self, client, ignore_subscribe_messages)
        self._buf = collections.deque()

    def _confirmed(self, key, count):
        pass  # subscribe() watches the tables

    def _wait_confirms(self, pattern, keys, timeout):
        table = self._set(pattern)
        if timeout is None:
            timeout = self._client.timeout
        end = None if timeout is None or timeout < 0 else time.monotonic() + timeout / 1000.0
        while not all(table.get(k) for k in keys):
            left = -1 if end is None else max(0, int((end - time.monotonic()) * 1000))
            if left == 0 and end is not None:
                raise Timeout()
            self._pump(left)

    def _pump(self, timeout):
        """Read what the sub socket has (waiting up to timeout ms, -1: for
        ever); buffer the messages.  Raises iok.Timeout / TryAgain."""
        for _, v, failed in self._sub._redis_recv(timeout, self._flags, 256):
            if not failed:
                m = self._route(v)
                if m is not None:
                    self._buf.append(m)

    def subscribe(self, *channels, timeout=None):
        """Subscribe and wait (up to timeout ms; default: the client's
        timeout) until the server confirmed every channel."""
        self._wait_confirms(False, self._request(False, channels), timeout)

    def psubscribe(self, *patterns, timeout=None):
        self._wait_confirms(True, self._request(True, patterns), timeout)

    def unsubscribe(self, *channels):
        """Stop (all channels if none given).  Returns at once; no message
        of these channels is returned after it."""
        self._drop(False, channels)

    def punsubscribe(self, *patterns):
        self._drop(True, patterns)

    def get_message(self, timeout=None):
        """The next message, waiting up to timeout ms (None: for ever, 0:
        not at all); None if none came."""
        buf = self._buf
        end = None if timeout is None or timeout < 0 else time.monotonic() + timeout / 1000.0
        while True:
            while buf:
                m = buf.popleft()
                if m.type == "message" and _b(m.channel) not in self.channels:
                    continue
                if m.type == "pmessage" and _b(m.pattern) not in self.patterns:
                    continue
                return m
            left = -1 if end is None else max(0, int((end - time.monotonic()) * 1000))
            try:
                self._pump(left)
            except (Timeout, TryAgain):
                return None

    def listen(self):
        """Every message, for ever (until closed: iok.Closed ends it)."""
        while True:
            try:
                m = self.get_message()
            except Closed:
                return
            if m is not None:
                yield m

    __iter__ = listen

    def _close_sub(self):
        self._sub.close()

    def close(self):
        """Leave every subscription and detach from the connection."""
        self._sub.close()
        if self._client._pubsub is self:
            self._client._pubsub = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class AsyncPubSub(_PubSubBase):
    """asyncio pub/sub on an AsyncClient's connection::

        async with r.pubsub() as ps:
            await ps.subscribe("news")       # returns once confirmed
            async for msg in ps:
                print(msg.channel, msg.data)

    A reader task (started by the first subscribe or read) takes the
    pushes as they come and queues the messages (up to max_queue; then it
    stops reading and iok's receive queue drops the oldest).
    """

    def __init__(self, client, ignore_subscribe_messages=True, max_queue=65536):
        _PubSubBase.__init__(self, client, ignore_subscribe_messages)
        self._queue = collections.deque()
        self._max_queue = max_queue
        self._getter = None   # future of a reader waiting for a message
        self._room = None     # future of the reader task waiting for room
        self._task = None
        self._error = None
        self._confirm_waits = {}  # (kind, name) -> [futures]

    def _start(self):
        if self._error is not None:
            raise self._error
        if self._task is None:
            if self._sub.closed:
                raise Closed()
            self._task = asyncio.get_running_loop().create_task(self._reader())

    async def _reader(self):
        sub, flags = self._sub, self._flags
        try:
            while True:
                data = await sub.arecv()
                try:
                    v = _iok.resp_decode(data, flags)
                except (Error, UnicodeDecodeError):
                    continue
                m = self._route(v)
                if m is None:
                    continue
                while len(self._queue) >= self._max_queue:
                    self._room = asyncio.get_running_loop().create_future()
                    await self._room
                self._queue.append(m)
                g = self._getter
                if g is not None and not g.done():
                    g.set_result(None)
        except asyncio.CancelledError:
            self._fail(Closed())
            raise
        except Error as e:
            self._fail(e)

    def _fail(self, e):
        self._error = e
        for waits in self._confirm_waits.values():
            for f in waits:
                if not f.done():
                    f.set_exception(e)
        self._confirm_waits.clear()
        g = self._getter
        if g is not None and not g.done():
            g.set_exception(e)

    def _confirmed(self, key, count):
        for f in self._confirm_waits.pop(key, ()):
            if not f.done():
                f.set_result(count)

    async def _wait_confirms(self, kind, keys, timeout):
        if not keys:
            return
        loop = asyncio.get_running_loop()
        futs = []
        for k in keys:
            table = self.patterns if kind[0] == "p" else self.channels
            if table.get(k):
                continue
            f = loop.create_future()
            self._confirm_waits.setdefault((kind, k), []).append(f)
            futs.append(f)
        if timeout is None:
            timeout = self._client.timeout
        wait = asyncio.gather(*futs)
        if timeout is None or timeout < 0:
            await wait
        else:
            try:
                await asyncio.wait_for(wait, timeout / 1000.0)
            except asyncio.TimeoutError:
                raise Timeout() from None

    async def subscribe(self, *channels, timeout=None):
        """Subscribe and return once the server confirmed every channel (a
        message published after that is received).  timeout: ms (default:
        the client's timeout)."""
        self._start()
        await self._wait_confirms("subscribe", self._request(False, channels), timeout)

    async def psubscribe(self, *patterns, timeout=None):
        self._start()
        await self._wait_confirms("psubscribe", self._request(True, patterns), timeout)

    async def unsubscribe(self, *channels):
        """Stop (all channels if none given); no message of them is
        returned after this."""
        self._drop(False, channels)

    async def punsubscribe(self, *patterns):
        self._drop(True, patterns)

    async def get_message(self, timeout=None):
        """The next message; with timeout (ms), None if none came in time."""
        self._start()
        q = self._queue
        while True:
            while q:
                m = q.popleft()
                r = self._room
                if r is not None and not r.done():
                    r.set_result(None)
                if m.type == "message" and _b(m.channel) not in self.channels:
                    continue
                if m.type == "pmessage" and _b(m.pattern) not in self.patterns:
                    continue
                return m
            if self._error is not None:
                raise self._error
            self._getter = g = asyncio.get_running_loop().create_future()
            try:
                if timeout is None:
                    await g
                else:
                    try:
                        await asyncio.wait_for(g, max(timeout, 0) / 1000.0)
                    except asyncio.TimeoutError:
                        return None
            finally:
                self._getter = None

    def __aiter__(self):
        return self

    async def __anext__(self):
        try:
            return await self.get_message()
        except Closed:
            raise StopAsyncIteration from None

    def _close_sub(self):
        t, self._task = self._task, None
        if t is not None and not t.done():
            try:
                t.cancel()
            except RuntimeError:  # its loop is closed
                pass
        self._sub.close()
        if self._error is None:
            self._fail(Closed())

    async def aclose(self):
        self.close()

    def close(self):
        """Leave every subscription and detach from the connection;
        iteration ends."""
        self._close_sub()
        if self._client._pubsub is self:
            self._client._pubsub = None

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()

