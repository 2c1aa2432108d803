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
    await _asyncio_std.gather(*(r.incr("n") for _ in range(1000)))   # one connection

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

import asyncio as _asyncio_std
import builtins
import collections
import dis
import functools
import logging
import os
import threading
import time
import urllib.parse
import weakref

from . import _aio, _iok

from . import AddressInvalid, Closed, Db, Dialer, Error, ProtocolError, Sub, Timeout, TryAgain

__all__ = [
    "Client", "AsyncClient", "Redis", "StrictRedis", "AsyncRedis", "from_url", "Script",
    "AsyncScript", "Lock", "AsyncLock", "ConnectionError", "TimeoutError", "DataError",
    "InvalidResponse", "PubSubError", "LockError", "LockNotOwnedError",
    "DEFAULT_SOCKET_TIMEOUT", "DEFAULT_CONNECT_TIMEOUT", "PubSub", "AsyncPubSub", "PubSubMessage",
    "Pipeline", "AsyncPipeline", "Session", "AsyncSession",
    "RedisError", "ResponseError", "ExecAbortError", "WatchError", "NoScriptError",
    "ReadOnlyError", "WrongTypeError", "BusyLoadingError", "AuthenticationError",
    "resp_encode", "resp_decode",
]

DEFAULT_URL = "redis://127.0.0.1:6379"
_DECODE = _iok.RESP_DECODE
_IDEMPOTENT = _iok.FLAG_IDEMPOTENT


# ----------------------------------------------------------------- errors
#
# redis-py's hierarchy, so ``except redis.ConnectionError`` code ports by
# changing the import:
#   RedisError > ConnectionError > AuthenticationError, BusyLoadingError
#              > TimeoutError, ResponseError > (ExecAbortError, NoScriptError,
#              ReadOnlyError, WrongTypeError), DataError, InvalidResponse,
#              PubSubError, WatchError, LockError > LockNotOwnedError
# Every one is also an iok.Error; ConnectionError and TimeoutError are also
# the builtin ones.  A failure iok reports (iok.ConnectionReset,
# iok.Timeout...) reaches iok.redis users as a class that is both: the iok
# class and the redis-py one (e.g. ConnectionError and iok.ConnectionReset),
# with the client's URL (password hidden) in its message.

class RedisError(Error):
    """Base of every error iok.redis raises (also an iok.Error)."""

    errno = 0

    def __init__(self, message=""):
        Exception.__init__(self, message)
        self.errno = type(self).errno
        self.message = message

    def __str__(self):
        return self.message

    def __reduce__(self):
        return (type(self), (self.message,))


class ConnectionError(RedisError, builtins.ConnectionError):
    """No connection to the server (refused, lost, closed client); also the
    builtin ConnectionError."""


class TimeoutError(RedisError, builtins.TimeoutError):
    """No reply (or no connection) within socket_timeout /
    socket_connect_timeout; also the builtin TimeoutError."""


class ResponseError(RedisError):
    """An error reply from the server.  ``code`` is its first word ("ERR",
    "WRONGTYPE", ...).  Raised for a reply that is an error; inside an
    aggregate (EXEC's results) the instance is the element."""

    @property
    def code(self):
        return self.message.split(" ", 1)[0]


class AuthenticationError(ConnectionError, ResponseError):
    """Credentials refused (at connect, or NOAUTH / WRONGPASS to a
    command); the message is the server's."""


class BusyLoadingError(ConnectionError, ResponseError):
    """LOADING: the server is loading its dataset."""


class DataError(RedisError):
    """A value that cannot be sent or represented."""


class InvalidResponse(RedisError):
    """The server sent something that is not valid RESP (protocol error)."""


class PubSubError(RedisError):
    """Misuse of a PubSub."""


class ExecAbortError(ResponseError):
    """EXECABORT: a command of the transaction was refused when queued."""


class NoScriptError(ResponseError):
    """NOSCRIPT: no script with that SHA1 (EVALSHA)."""


class ReadOnlyError(ResponseError):
    """READONLY: a write sent to a replica."""


class WrongTypeError(ResponseError):
    """WRONGTYPE: the key holds another kind of value."""


class WatchError(RedisError):
    """A watched key changed: EXEC did nothing."""


class LockError(RedisError, ValueError):
    """A lock could not be acquired, released or extended."""


class LockNotOwnedError(LockError):
    """The lock is no longer ours (it expired, another holder took it)."""


def _flavour(base, iokcls):
    """A class that is both the redis-py style base and the iok class."""
    name = "_" + iokcls.__name__

    def __init__(self, *a):
        # (message) from Python, (errno, message) from the C layer
        msg = a[-1] if a else _iok.strerror(iokcls.errno)
        RedisError.__init__(self, msg)

    cls = type(name, (base, iokcls), {"__module__": __name__, "errno": iokcls.errno,
                                      "__init__": __init__,
                                      "__doc__": "%s, raised by iok.redis" % iokcls.__name__})
    globals()[name] = cls  # picklable by name
    return cls


import iok as _iokpkg  # noqa: E402

_FLAVOURS = {}
for _ic, _base in ((_iokpkg.Timeout, TimeoutError), (_iokpkg.ConnectionReset, ConnectionError),
                   (_iokpkg.ConnectionRefused, ConnectionError),
                   (_iokpkg.ConnectionShutdown, ConnectionError),
                   (_iokpkg.ConnectionAborted, ConnectionError),
                   (_iokpkg.DestinationUnreachable, ConnectionError),
                   (_iokpkg.Closed, ConnectionError), (_iokpkg.PeerAuthError, AuthenticationError),
                   (_iokpkg.ProtocolError, InvalidResponse),
                   (_iokpkg.MessageTooLarge, DataError),
                   (_iokpkg.AddressInvalid, DataError)):
    _FLAVOURS[_ic] = _flavour(_base, _ic)
del _ic, _base


def _lost_class():
    # Reset or shut down by the peer is one fault whose code depends on a
    # race (was our write or our read first?): one class for both, so the
    # same fault gives the same class from Client and AsyncClient.
    def __init__(self, *a):
        RedisError.__init__(self, a[-1] if a else "Connection lost")

    cls = type("_ConnectionLost", (ConnectionError, _iokpkg.ConnectionReset,
                                   _iokpkg.ConnectionShutdown),
               {"__module__": __name__, "errno": _iokpkg.ConnectionReset.errno,
                "__init__": __init__,
                "__doc__": "The connection was reset or shut down by the peer."})
    globals()[cls.__name__] = cls
    return cls


_FLAVOURS[_iokpkg.ConnectionReset] = _FLAVOURS[_iokpkg.ConnectionShutdown] = _lost_class()
_CONN_ERRORS = (_iokpkg.Timeout, _iokpkg.ConnectionReset, _iokpkg.ConnectionShutdown,
                _iokpkg.ConnectionAborted, _iokpkg.ConnectionRefused)


def _redis_error(e, where):
    """e (an iok.Error) as iok.redis raises it: the flavoured class, the
    URL in the message.  ResponseErrors (the server's words) pass as is."""
    if isinstance(e, RedisError):
        return e
    cls = _FLAVOURS.get(type(e))
    if cls is None:
        return e
    msg = getattr(e, "message", None) or str(e)
    new = cls("%s (%s)" % (msg, where) if where else msg)
    new.__cause__ = None
    new.__suppress_context__ = True
    return new


_ERROR_CODES = {
    "EXECABORT": ExecAbortError, "NOSCRIPT": NoScriptError, "READONLY": ReadOnlyError,
    "WRONGTYPE": WrongTypeError, "LOADING": BusyLoadingError, "NOAUTH": AuthenticationError,
    "WRONGPASS": AuthenticationError,
}
_iok._redis_setup(ResponseError, _ERROR_CODES, _FLAVOURS[ProtocolError], DataError)


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
    """A channel name as bytes (how subscriptions are tracked); str or
    bytes-like only (bytes(123) would be 123 NUL bytes)."""
    if isinstance(x, str):
        return x.encode()
    if isinstance(x, (bytes, bytearray, memoryview)):
        return bytes(x)
    raise TypeError("a channel or pattern is a str or bytes, not %s" % type(x).__name__)


def _cmdname(args):
    c = args[0]
    if isinstance(c, (bytes, bytearray)):
        c = bytes(c).decode("latin-1")
    return c.upper() if isinstance(c, str) else ""


# ------------------------------------------------------- reply transforms

# True for an "OK" status (str or bytes), else the reply; True or None.
# In C: every SET runs one, and a Python function was a frame per reply.
_ok = _iok._redis_ok
_ok_or_none = _iok._redis_ok_or_none
_bool = bool


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


def _unix(when):
    if hasattr(when, "timestamp"):
        return int(when.timestamp())
    return when


def _keys(k):
    """A key, or a list/tuple of keys, as a tuple."""
    if isinstance(k, (list, tuple)):
        return tuple(k)
    return (k,)


def _scan_args(cursor, match, count):
    args = [cursor]
    if match is not None:
        args += ("MATCH", match)
    if count is not None:
        args += ("COUNT", count)
    return args


def _hscan(v):
    cursor, items = v
    return int(cursor), _pairs(items) or {}


def _zscan(v):
    cursor, items = v
    return int(cursor), _scored(items) or []


def _tuple(v):
    return None if v is None else tuple(v)


def _bzpop(v):
    return None if v is None else (v[0], v[1], float(v[2]))


def _str(v):
    return v.decode() if isinstance(v, bytes) else v


def _entries(v):
    """Stream entries -> [(id, {field: value})]."""
    if v is None:
        return []
    out = []
    for e in v:
        eid, fields = e[0], e[1]
        out.append((eid, _pairs(fields) if fields is not None else None))
    return out


def _xread(v):
    """XREAD's reply (RESP3 map or RESP2 list) -> [[stream, entries]]."""
    if v is None:
        return []
    if isinstance(v, dict):
        return [[k, _entries(e)] for k, e in v.items()]
    return [[s, _entries(e)] for s, e in v]


def _config(v):
    d = _pairs(v) or {}
    return {_str(k): _str(x) for k, x in d.items()}


def _info_value(v):
    if "," in v and "=" in v:
        return dict((k, _info_value(x)) for k, x in
                    (p.split("=", 1) for p in v.split(",") if "=" in p))
    try:
        return int(v)
    except ValueError:
        pass
    try:
        return float(v)
    except ValueError:
        return v


def _info(v):
    """INFO's text -> {name: value} (numbers as int/float, dbN as dicts),
    as redis-py parses it."""
    if isinstance(v, bytes):
        v = v.decode()
    out = {}
    for line in v.splitlines():
        if not line or line.startswith("#"):
            continue
        if ":" in line:
            k, x = line.split(":", 1)
            out[k] = _info_value(x)
    return out


# -------------------------------------------------------------- commands

def _passes_on(fn):
    """Marks a command method that, given only its required arguments (or
    only its *args), passes them on as they are after the command's name:
    set(name, value) -> ("SET", name, value).  Its AsyncClient coroutine
    plans that call in C (_pass_through_plan); options take the method."""
    fn._passes_on = True
    return fn


class Commands:
    """Convenience methods, one per common command.  Each builds the
    command and hands it to _cmd(args, transform, flags): a Client runs it
    and returns the reply, an AsyncClient returns an awaitable, a pipeline
    queues it.  Anything else: execute("CMD", *args)."""

    __slots__ = ()

    def _cmd(self, args, transform=None, flags=0):
        raise NotImplementedError

    def _cmd_blocking(self, args, transform=None):
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
        """INFO parsed into a dict, as redis-py returns it."""
        args = ("INFO",) if section is None else ("INFO", section)
        return self._cmd(args, _info, R)

    # -- keys, strings
    def get(self, name):
        return self._cmd(("GET", name), None, R)

    @_passes_on
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

    @_passes_on
    def delete(self, *names):
        """DEL: the number of keys removed."""
        return self._cmd(("DEL",) + names)

    @_passes_on
    def exists(self, *names):
        """The number of the names that exist."""
        return self._cmd(("EXISTS",) + names, None, R)

    def type(self, name):
        return self._cmd(("TYPE", name), None, R)

    @_passes_on
    def incr(self, name, amount=1):
        return self._cmd(("INCR", name) if amount == 1 else ("INCRBY", name, amount))

    def incrby(self, name, amount=1):
        return self._cmd(("INCRBY", name, amount))

    def incrbyfloat(self, name, amount=1.0):
        return self._cmd(("INCRBYFLOAT", name, amount), _float)

    @_passes_on
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

    # -- more keys, strings (redis-py's names and reply shapes)
    def execute_command(self, *args, **options):
        """Run any command (redis-py's name for execute)."""
        return self.execute(*args, **options)

    def rename(self, src, dst):
        return self._cmd(("RENAME", src, dst), _ok)

    def renamenx(self, src, dst):
        return self._cmd(("RENAMENX", src, dst), _bool)

    def unlink(self, *names):
        """UNLINK: the number of keys removed (freed in the background)."""
        return self._cmd(("UNLINK",) + names)

    def expireat(self, name, when):
        return self._cmd(("EXPIREAT", name, _unix(when)), _bool)

    def getset(self, name, value):
        return self._cmd(("GETSET", name, value))

    def setnx(self, name, value):
        return self._cmd(("SETNX", name, value), _bool)

    def msetnx(self, mapping):
        args = ["MSETNX"]
        for k, v in mapping.items():
            args += (k, v)
        return self._cmd(args, _bool)

    def getrange(self, key, start, end):
        return self._cmd(("GETRANGE", key, start, end), None, R)

    def setrange(self, name, offset, value):
        return self._cmd(("SETRANGE", name, offset, value))

    def randomkey(self):
        return self._cmd(("RANDOMKEY",), None, R)

    def time(self):
        """(seconds, microseconds) of the server's clock."""
        return self._cmd(("TIME",), lambda v: (int(v[0]), int(v[1])), R)

    def hscan(self, name, cursor=0, match=None, count=None):
        """One HSCAN step: (next cursor, {field: value})."""
        return self._cmd(["HSCAN", name] + _scan_args(cursor, match, count), _hscan, R)

    def sscan(self, name, cursor=0, match=None, count=None):
        """One SSCAN step: (next cursor, [member])."""
        return self._cmd(["SSCAN", name] + _scan_args(cursor, match, count), _scan, R)

    def zscan(self, name, cursor=0, match=None, count=None):
        """One ZSCAN step: (next cursor, [(member, score)])."""
        return self._cmd(["ZSCAN", name] + _scan_args(cursor, match, count), _zscan, R)

    # -- more hashes
    def hsetnx(self, name, key, value):
        return self._cmd(("HSETNX", name, key, value), _bool)

    def hincrbyfloat(self, name, key, amount=1.0):
        return self._cmd(("HINCRBYFLOAT", name, key, amount), _float)

    def hmset(self, name, mapping):
        """HMSET (deprecated by Redis; hset(name, mapping=) does the same)."""
        args = ["HMSET", name]
        for k, v in mapping.items():
            args += (k, v)
        return self._cmd(args, _ok)

    def hstrlen(self, name, key):
        return self._cmd(("HSTRLEN", name, key), None, R)

    # -- more lists (blocking ones on a connection of their own)
    def blpop(self, keys, timeout=0):
        """BLPOP: (key, value), or None after timeout seconds (0: for ever)."""
        return self._cmd_blocking(("BLPOP",) + _keys(keys) + (timeout,), _tuple)

    def brpop(self, keys, timeout=0):
        """BRPOP: (key, value), or None after timeout seconds (0: for ever)."""
        return self._cmd_blocking(("BRPOP",) + _keys(keys) + (timeout,), _tuple)

    def blmove(self, first_list, second_list, timeout, src="LEFT", dest="RIGHT"):
        return self._cmd_blocking(("BLMOVE", first_list, second_list, src, dest, timeout))

    def brpoplpush(self, src, dst, timeout=0):
        return self._cmd_blocking(("BRPOPLPUSH", src, dst, timeout))

    def lmove(self, first_list, second_list, src="LEFT", dest="RIGHT"):
        return self._cmd(("LMOVE", first_list, second_list, src, dest))

    def rpoplpush(self, src, dst):
        return self._cmd(("RPOPLPUSH", src, dst))

    def linsert(self, name, where, refvalue, value):
        return self._cmd(("LINSERT", name, where, refvalue, value))

    def lset(self, name, index, value):
        return self._cmd(("LSET", name, index, value), _ok)

    def lpushx(self, name, *values):
        return self._cmd(("LPUSHX", name) + values)

    def rpushx(self, name, *values):
        return self._cmd(("RPUSHX", name) + values)

    def lpos(self, name, value, rank=None, count=None, maxlen=None):
        args = ["LPOS", name, value]
        for word, v in (("RANK", rank), ("COUNT", count), ("MAXLEN", maxlen)):
            if v is not None:
                args += (word, v)
        return self._cmd(args, None, R)

    # -- more sets
    def sinter(self, keys, *args):
        return self._cmd(("SINTER",) + _keys(keys) + args, _as_set, R)

    def sunion(self, keys, *args):
        return self._cmd(("SUNION",) + _keys(keys) + args, _as_set, R)

    def sdiff(self, keys, *args):
        return self._cmd(("SDIFF",) + _keys(keys) + args, _as_set, R)

    def sinterstore(self, dest, keys, *args):
        return self._cmd(("SINTERSTORE", dest) + _keys(keys) + args)

    def sunionstore(self, dest, keys, *args):
        return self._cmd(("SUNIONSTORE", dest) + _keys(keys) + args)

    def sdiffstore(self, dest, keys, *args):
        return self._cmd(("SDIFFSTORE", dest) + _keys(keys) + args)

    def smove(self, src, dst, value):
        return self._cmd(("SMOVE", src, dst, value), _bool)

    def spop(self, name, count=None):
        return self._cmd(("SPOP", name) if count is None else ("SPOP", name, count))

    def srandmember(self, name, number=None):
        return self._cmd(("SRANDMEMBER", name) if number is None else
                         ("SRANDMEMBER", name, number), None, R)

    def smismember(self, name, values, *args):
        return self._cmd(("SMISMEMBER", name) + _keys(values) + args,
                         lambda v: [bool(x) for x in v], R)

    # -- more sorted sets
    def zrevrange(self, name, start, end, withscores=False):
        args = ["ZREVRANGE", name, start, end]
        if withscores:
            args.append("WITHSCORES")
            return self._cmd(args, _scored, R)
        return self._cmd(args, None, R)

    def zrangebyscore(self, name, min, max, start=None, num=None, withscores=False):
        args = ["ZRANGEBYSCORE", name, min, max]
        if start is not None and num is not None:
            args += ("LIMIT", start, num)
        if withscores:
            args.append("WITHSCORES")
            return self._cmd(args, _scored, R)
        return self._cmd(args, None, R)

    def zrevrangebyscore(self, name, max, min, start=None, num=None, withscores=False):
        args = ["ZREVRANGEBYSCORE", name, max, min]
        if start is not None and num is not None:
            args += ("LIMIT", start, num)
        if withscores:
            args.append("WITHSCORES")
            return self._cmd(args, _scored, R)
        return self._cmd(args, None, R)

    def zrank(self, name, value):
        return self._cmd(("ZRANK", name, value), None, R)

    def zrevrank(self, name, value):
        return self._cmd(("ZREVRANK", name, value), None, R)

    def zcount(self, name, min, max):
        return self._cmd(("ZCOUNT", name, min, max), None, R)

    def zmscore(self, key, members):
        return self._cmd(("ZMSCORE", key) + _keys(members),
                         lambda v: [None if x is None else float(x) for x in v], R)

    def zpopmin(self, name, count=None):
        """[(member, score)] of the lowest."""
        return self._cmd(("ZPOPMIN", name) if count is None else ("ZPOPMIN", name, count),
                         _scored)

    def zpopmax(self, name, count=None):
        return self._cmd(("ZPOPMAX", name) if count is None else ("ZPOPMAX", name, count),
                         _scored)

    def bzpopmin(self, keys, timeout=0):
        """(key, member, score), or None after timeout seconds."""
        return self._cmd_blocking(("BZPOPMIN",) + _keys(keys) + (timeout,), _bzpop)

    def bzpopmax(self, keys, timeout=0):
        return self._cmd_blocking(("BZPOPMAX",) + _keys(keys) + (timeout,), _bzpop)

    def zremrangebyscore(self, name, min, max):
        return self._cmd(("ZREMRANGEBYSCORE", name, min, max))

    def zremrangebyrank(self, name, min, max):
        return self._cmd(("ZREMRANGEBYRANK", name, min, max))

    # -- streams
    def xadd(self, name, fields, id="*", maxlen=None, approximate=True, nomkstream=False,
             minid=None, limit=None):
        """XADD: the new entry's id."""
        args = ["XADD", name]
        if nomkstream:
            args.append("NOMKSTREAM")
        if maxlen is not None:
            args += ("MAXLEN", "~" if approximate else "=", maxlen)
        elif minid is not None:
            args += ("MINID", "~" if approximate else "=", minid)
        if limit is not None:
            args += ("LIMIT", limit)
        args.append(id)
        for k, v in fields.items():
            args += (k, v)
        return self._cmd(args)

    def xlen(self, name):
        return self._cmd(("XLEN", name), None, R)

    def xrange(self, name, min="-", max="+", count=None):
        """[(id, {field: value})]."""
        args = ["XRANGE", name, min, max]
        if count is not None:
            args += ("COUNT", count)
        return self._cmd(args, _entries, R)

    def xrevrange(self, name, max="+", min="-", count=None):
        args = ["XREVRANGE", name, max, min]
        if count is not None:
            args += ("COUNT", count)
        return self._cmd(args, _entries, R)

    def xdel(self, name, *ids):
        return self._cmd(("XDEL", name) + ids)

    def xtrim(self, name, maxlen=None, approximate=True, minid=None, limit=None):
        args = ["XTRIM", name]
        if maxlen is not None:
            args += ("MAXLEN", "~" if approximate else "=", maxlen)
        elif minid is not None:
            args += ("MINID", "~" if approximate else "=", minid)
        if limit is not None:
            args += ("LIMIT", limit)
        return self._cmd(args)

    def xread(self, streams, count=None, block=None):
        """XREAD {stream: last_id}: [[stream, [(id, {field: value})]]] (redis-py's
        shape); block (ms) waits on a connection of its own."""
        args = ["XREAD"]
        if count is not None:
            args += ("COUNT", count)
        if block is not None:
            args += ("BLOCK", block)
        args.append("STREAMS")
        args += list(streams.keys())
        args += list(streams.values())
        if block is not None:
            return self._cmd_blocking(args, _xread)
        return self._cmd(args, _xread)

    def xreadgroup(self, groupname, consumername, streams, count=None, block=None, noack=False):
        args = ["XREADGROUP", "GROUP", groupname, consumername]
        if count is not None:
            args += ("COUNT", count)
        if block is not None:
            args += ("BLOCK", block)
        if noack:
            args.append("NOACK")
        args.append("STREAMS")
        args += list(streams.keys())
        args += list(streams.values())
        if block is not None:
            return self._cmd_blocking(args, _xread)
        return self._cmd(args, _xread)

    def xack(self, name, groupname, *ids):
        return self._cmd(("XACK", name, groupname) + ids)

    def xgroup_create(self, name, groupname, id="$", mkstream=False):
        args = ["XGROUP", "CREATE", name, groupname, id]
        if mkstream:
            args.append("MKSTREAM")
        return self._cmd(args, _ok)

    def xgroup_destroy(self, name, groupname):
        return self._cmd(("XGROUP", "DESTROY", name, groupname), _bool)

    # -- scripting
    def eval(self, script, numkeys, *keys_and_args):
        return self._cmd(("EVAL", script, numkeys) + keys_and_args)

    def evalsha(self, sha, numkeys, *keys_and_args):
        return self._cmd(("EVALSHA", sha, numkeys) + keys_and_args)

    def script_load(self, script):
        """The script's SHA1 (a str)."""
        return self._cmd(("SCRIPT", "LOAD", script), _str)

    def script_exists(self, *args):
        return self._cmd(("SCRIPT", "EXISTS") + args, lambda v: [bool(x) for x in v])

    def script_flush(self, sync_type=None):
        return self._cmd(("SCRIPT", "FLUSH") if sync_type is None else
                         ("SCRIPT", "FLUSH", sync_type), _ok)

    # -- server
    def config_get(self, pattern="*"):
        """{name: value} (str keys and values)."""
        return self._cmd(("CONFIG", "GET", pattern), _config)

    def config_set(self, name, value):
        return self._cmd(("CONFIG", "SET", name, value), _ok)

    def client_setname(self, name):
        return self._cmd(("CLIENT", "SETNAME", name), _ok)

    def client_getname(self):
        return self._cmd(("CLIENT", "GETNAME"), None, R)

    def flushall(self, asynchronous=False):
        return self._cmd(("FLUSHALL", "ASYNC") if asynchronous else ("FLUSHALL",), _ok)

    def select(self, index):
        raise RedisError("SELECT would move the shared connection: give db= (or /N in the "
                         "URL) to the client instead")


# ---------------------------------------------------------- the connection
#
# The model (see bindings/python/README.md):
# * The client's commands go, pipelined, over its main pipelined-db socket
#   (pool_size connections, default 1), owned by iok's kernel thread.
# * Whatever would hold a connection for a while takes a connection of its
#   own, made on demand and kept (up to _SIDE_IDLE idle) for the next one:
#   blocking commands (BLPOP, XREAD BLOCK, ...), sessions (WATCH ...
#   MULTI/EXEC), a pipeline after watch(), and every pubsub but the first.
#   So none of them stalls the pipelined connection or each other; a
#   cancelled or interrupted blocking command closes its connection.
# * Connecting is bounded by socket_connect_timeout (seconds), each command
#   by socket_timeout (seconds; a blocking command: its own block time
#   plus socket_timeout).  The dial runs on a helper thread (sync) or the
#   loop's executor (asyncio), so the caller's wait is interruptible and
#   never blocks an event loop.
# * Once connected, a lost connection is redialled in the background; while
#   there is none, commands fail at once with ConnectionError.

log = logging.getLogger("iok")
log.addHandler(logging.NullHandler())  # a library: silent unless the application configures logging

DEFAULT_SOCKET_TIMEOUT = 30.0   # seconds
DEFAULT_CONNECT_TIMEOUT = 5.0   # seconds
_SIDE_IDLE = 4                  # idle side connections kept per client
_CHECK_EVERY = 1.0              # s: how often an idle client looks at its link
_UNSET = object()
# redis-py keywords accepted and ignored (iok reconnects by itself).
_IGNORED_KW = frozenset(("health_check_interval", "retry_on_timeout", "retry_on_error", "retry",
                         "single_connection_client", "auto_close_connection_pool",
                         "encoding_errors", "socket_keepalive_options"))
_monotonic = time.monotonic
_CLIENTS = weakref.WeakSet()
_DEMUXES = weakref.WeakSet()


def _seconds(what, v):
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v < 0:
        raise ValueError("%s is in seconds (a number >= 0, or None for no limit); got %r"
                         % (what, v))
    return float(v)


def _ms(seconds):
    """seconds (None: no limit) -> the ms iok's options take (-1: none)."""
    if seconds is None:
        return -1
    return max(1, int(seconds * 1000 + 0.999))


def _redact(url):
    """url with its password replaced by ***."""
    try:
        u = urllib.parse.urlsplit(url)
        if u.password is None:
            return url
        userinfo, host = u.netloc.rsplit("@", 1)
        return urllib.parse.urlunsplit(u._replace(netloc=userinfo.split(":", 1)[0] + ":***@" + host))
    except ValueError:
        return "<a redis URL>"


def _build_url(url, host, port, username, password, unix_socket_path):
    if url is None:
        if unix_socket_path is not None:
            url = "redis+unix://" + unix_socket_path
        else:
            h = host or "127.0.0.1"
            if ":" in h and not h.startswith("["):
                h = "[%s]" % h
            url = "redis://%s:%d" % (h, 6379 if port is None else int(port))
    elif host is not None or port is not None:
        raise TypeError("give url or host/port, not both")
    if not isinstance(url, str):
        raise TypeError("url must be a str, not %s" % type(url).__name__)
    if username is not None or password is not None:
        u = urllib.parse.urlsplit(url)
        if u.username is not None or u.password is not None:
            raise TypeError("credentials both in the URL and as keywords")
        cred = urllib.parse.quote(username or "", safe="")
        if password is not None:
            cred += ":" + urllib.parse.quote(str(password), safe="")
        url = urllib.parse.urlunsplit(u._replace(netloc=cred + "@" + u.netloc))
    return url


def _dial(sock, url, timeout, where):
    """A blocking dial (iok_dial SYNC) on a helper thread; the calling
    thread waits up to timeout seconds, interruptible (Ctrl+C).  Returns the
    Dialer; raises the dial's iok error, or TimeoutError (sock is closed)."""
    box = []
    done = threading.Event()

    def run():
        try:
            # the C call itself: this thread is the interruptible waiter
            box.append((True, Dialer(_iok.Socket.dial(sock, url, True), sock)))
        except BaseException as e:  # noqa: B902 - handed to the caller
            box.append((False, e))
        finally:
            done.set()

    threading.Thread(target=run, name="iok-connect", daemon=True).start()
    try:
        finished = done.wait(timeout)
    except BaseException:
        sock.close()
        raise
    if not finished:
        sock.close()
        log.warning("connecting to %s: no answer within %ss", where, timeout)
        raise _FLAVOURS[_iokpkg.Timeout](
            "Timeout connecting to %s (no answer within socket_connect_timeout=%ss)"
            % (where, timeout))
    ok, v = box[0]
    if ok:
        return v
    raise v


async def _adial(sock, url, timeout, where):
    """_dial for asyncio: the dial runs in the loop's executor."""
    loop = _asyncio_std.get_running_loop()
    fut = loop.run_in_executor(None, functools.partial(_iok.Socket.dial, sock, url, True))
    try:
        if timeout is None:
            return Dialer(await fut, sock)
        return Dialer(await _asyncio_std.wait_for(fut, timeout), sock)
    except Error:
        raise
    except builtins.TimeoutError:
        sock.close()
        log.warning("connecting to %s: no answer within %ss", where, timeout)
        raise _FLAVOURS[_iokpkg.Timeout](
            "Timeout connecting to %s (no answer within socket_connect_timeout=%ss)"
            % (where, timeout)) from None
    except BaseException:
        sock.close()
        raise


def _server_says(url, timeout):
    """After a refused handshake (iok.ProtocolError / PeerAuthError, which
    lose the server's words): connect plainly and replay the handshake's
    steps one by one; the ResponseError of the first the server refuses,
    or None."""
    try:
        u = urllib.parse.urlsplit(url)
        q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        steps = []
        if u.password is not None:
            user = urllib.parse.unquote(u.username or "")
            pw = urllib.parse.unquote(u.password)
            steps.append(("AUTH", user, pw) if user else ("AUTH", pw))
        db = (q.get("db") or [""])[-1]
        if u.scheme == "redis" and u.path not in ("", "/"):
            db = u.path[1:]
        if db:
            steps.append(("SELECT", db))
        if (q.get("protocol") or ["3"])[-1] == "3":
            steps.append(("HELLO", "3"))
        for n in q.get("name", []):
            steps.append(("CLIENT", "SETNAME", n))
        rest = [(k, v) for k, vs in q.items() if k not in ("db", "name", "protocol") for v in vs]
        rest.append(("protocol", "2"))
        netloc = u.netloc.rsplit("@", 1)[-1]
        path = "" if u.scheme == "redis" else u.path
        plain = urllib.parse.urlunsplit((u.scheme, netloc, path, urllib.parse.urlencode(rest), ""))
    except ValueError:
        return None
    sock = _DbSocket()
    sock._rflags = 0
    try:
        _dial(sock, plain, timeout, "")
        for step in steps:
            tok = sock._redis_request(step, 0, 0, None)
            for t, v, failed in sock._redis_recv(_ms(timeout), 0, 1):
                if t == tok and failed:
                    return v if isinstance(v, ResponseError) else None
    except Error:
        return None
    finally:
        sock.close()
    return None


class _DbSocket(Db):
    """A pipelined-db socket of a client; asyncio's reader decodes replies
    in C."""

    __slots__ = ("_rflags",)
    # The client logs its connects itself (with the server's refusal when
    # there is one); the watcher (iok/_watch.py) logs drops and reconnects
    # as they happen, idle or not.
    _log_links = "no-connects"
    _log_name = "iok.redis"

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        # The client's own timeouts and reconnect handling decide when a
        # command gives up for want of a connection, not the kernel's.
        self.setopt("db:fail-fast", False)

    def _dispatch(self, pending):
        return self._redis_dispatch(pending, self._rflags)


class _Side:
    """A connection of its own (blocking commands, sessions, pubsubs)."""

    __slots__ = ("sock", "dialer", "demux")

    def __init__(self, sock, dialer, flags):
        self.sock = sock
        self.dialer = dialer
        self.demux = _SyncDemux(sock, flags)


_BLOCKING = frozenset(("BLPOP", "BRPOP", "BLMOVE", "BRPOPLPUSH", "BZPOPMIN", "BZPOPMAX",
                       "BLMPOP", "BZMPOP", "WAIT", "WAITAOF"))


def _is_blocking(args):
    c = _cmdname(args)
    if c in _BLOCKING:
        return True
    if c in ("XREAD", "XREADGROUP"):
        return any(isinstance(a, (str, bytes)) and a.upper() in ("BLOCK", b"BLOCK")
                   for a in args[1:])
    return False


def _block_seconds(args):
    """How long the server may hold this blocking command (None: for
    ever), from its own arguments."""
    c = _cmdname(args)
    try:
        if c in ("XREAD", "XREADGROUP"):
            for i, a in enumerate(args):
                if isinstance(a, (str, bytes)) and a.upper() in ("BLOCK", b"BLOCK"):
                    ms = float(args[i + 1])
                    return None if ms == 0 else ms / 1000.0
        if c in ("WAIT", "WAITAOF"):
            ms = float(args[-1])
            return None if ms == 0 else ms / 1000.0
        v = float(args[1] if c in ("BLMPOP", "BZMPOP") else args[-1])
        return None if v == 0 else v
    except (ValueError, TypeError, IndexError):
        return None


class _Base(_iok.ClientBase, Commands):
    # _sock, _retry, _suspect and _check_at are ClientBase's (C fields an
    # asyncio command reads without a lookup).
    __slots__ = ("url", "decode_responses", "timeout", "connect_timeout", "_dial_url",
                 "_dialer", "_flags", "_pubsubs", "_sockopts", "_pool_size",
                 "_max_inflight", "_side_idle", "_side_lock", "_connect_lock", "_connecting",
                 "_up_once", "_proto_base", "_ignore_default", "_demux", "_shut", "__weakref__")
    _lazy_default = False

    def __init__(self, url=None, *, host=None, port=None, db=None, username=None, password=None,
                 unix_socket_path=None, socket_timeout=_UNSET, socket_connect_timeout=_UNSET,
                 timeout=_UNSET, decode_responses=False, name=None, client_name=None,
                 pool_size=1, wait=_UNSET, retry_reads=True, max_inflight=None,
                 encoding="utf-8", socket_keepalive=None, **options):
        self._sock = self._dialer = self._demux = None
        self._shut = False
        self._pubsubs = weakref.WeakSet()
        self._side_idle = []
        self._side_lock = threading.Lock()
        self._connect_lock = threading.Lock()
        self._connecting = None
        self._suspect = self._up_once = False
        self._check_at = 0.0
        self._proto_base = 0
        where = type(self).__name__
        sockopts = {}
        for k, v in options.items():
            if k in _IGNORED_KW:
                continue
            if k not in _iokpkg.OPTIONS:
                raise _iokpkg._unknown_keyword(where, k)
            sockopts[k] = v
        if socket_keepalive is not None:
            sockopts["tcp_keepalive"] = bool(socket_keepalive)
        if str(encoding).replace("-", "").lower() != "utf8":
            raise ValueError("iok.redis decodes UTF-8 only (encoding=%r)" % (encoding,))
        if timeout is not _UNSET:
            if socket_timeout is not _UNSET:
                raise TypeError("give socket_timeout or timeout, not both")
            socket_timeout = timeout
        self.timeout = _seconds("socket_timeout",
                                DEFAULT_SOCKET_TIMEOUT if socket_timeout is _UNSET else socket_timeout)
        self.connect_timeout = _seconds(
            "socket_connect_timeout",
            DEFAULT_CONNECT_TIMEOUT if socket_connect_timeout is _UNSET else socket_connect_timeout)
        self.decode_responses = bool(decode_responses)
        self._ignore_default = True
        self._flags = _DECODE if decode_responses else 0
        self._retry = bool(retry_reads)
        self._sockopts = sockopts
        self._pool_size = int(pool_size)
        self._max_inflight = max_inflight
        full = _url(_build_url(url, host, port, username, password, unix_socket_path),
                    name if name is not None else client_name, db)
        self._dial_url = full
        self.url = _redact(full)
        _CLIENTS.add(self)
        if wait is _UNSET:
            wait = None if self._lazy_default else True
        if wait is False:
            sock = self._new_sock()
            try:
                d = sock.dial(full, block=False)
            except Error as e:
                sock.close()
                raise _redis_error(e, self.url) from None
            self._install(sock, d, up=False)
        elif wait:
            self._connect_now()

    def __repr__(self):
        return "<%s %s%s>" % (type(self).__name__, self.url, " closed" if self.closed else "")

    @property
    def closed(self):
        return self._sock is not None and self._sock.closed

    @property
    def socket(self):
        """The underlying iok.Db socket (options, stats); None before the
        first connection."""
        return self._sock

    @property
    def stats(self):
        """The socket's counters (connections now: "pipes")."""
        return self._sock.stats if self._sock is not None else {}

    def _flags_of(self, args):
        return _IDEM.get(args[0], 0) if self._retry else 0

    def _new_sock(self, side=False):
        sock = _DbSocket(**self._sockopts)
        sock._rflags = self._flags
        sock._where.append(("dial %s" if not side else "dial %s (own connection)") % self.url)
        try:
            if not side and self._pool_size != 1:
                sock.setopt("pool-size", self._pool_size)
            if self._max_inflight is not None:
                sock.setopt("db:max-inflight", int(self._max_inflight))
            sock.setopt("req:timeout", _ms(self.timeout))
        except BaseException:
            sock.close()
            raise
        return sock

    def _install(self, sock, dialer, up=True):
        if self._shut:  # closed while connecting
            sock.close()
            raise _FLAVOURS[Closed]("the client is closed (%s)" % self.url)
        self._dialer = dialer
        self._demux = _SyncDemux(sock, self._flags)
        self._sock = sock
        self._check_at = _monotonic() + _CHECK_EVERY
        if up:
            self._up_once = True
            log.info("connected to %s", self.url)

    def _connect_error(self, e, said):
        """The exception for a failed connect (e: iok's; said: the server's
        own refusal, from _server_says)."""
        log.warning("connecting to %s failed: %s", self.url, said or e)
        if said is not None:
            cls = type(said)
            if isinstance(e, _iokpkg.PeerAuthError):
                cls = _FLAVOURS[_iokpkg.PeerAuthError]  # AuthenticationError too
            return cls("%s (connecting to %s)" % (said.message, self.url))
        return _redis_error(e, "connecting to " + self.url)

    def _why(self, e):
        if isinstance(e, (_iokpkg.ProtocolError, _iokpkg.PeerAuthError)):
            return _server_says(self._dial_url, self.connect_timeout)
        return None

    def _connect_sock(self, side):
        if self._shut:
            raise _FLAVOURS[Closed]("the client is closed (%s)" % self.url)
        sock = self._new_sock(side)
        try:
            return sock, _dial(sock, self._dial_url, self.connect_timeout, self.url)
        except Error as e:
            sock.close()
            raise self._connect_error(e, self._why(e)) from None
        except BaseException:
            sock.close()
            raise

    async def _aconnect_sock(self, side):
        if self._shut:
            raise _FLAVOURS[Closed]("the client is closed (%s)" % self.url)
        sock = self._new_sock(side)
        try:
            return sock, await _adial(sock, self._dial_url, self.connect_timeout, self.url)
        except Error as e:
            sock.close()
            said = None
            if isinstance(e, (_iokpkg.ProtocolError, _iokpkg.PeerAuthError)):
                said = await _asyncio_std.get_running_loop().run_in_executor(
                    None, _server_says, self._dial_url, self.connect_timeout)
            raise self._connect_error(e, said) from None

    def _connect_now(self):
        with self._connect_lock:
            if self._sock is None:
                self._install(*self._connect_sock(False))
        return self._sock

    async def _aensure(self):
        """The main socket, connected first if need be (once, shared by
        the coroutines that ask meanwhile)."""
        loop = _asyncio_std.get_running_loop()
        while self._sock is None:
            fut = self._connecting
            if fut is not None and fut.get_loop() is loop and not fut.done():
                await _asyncio_std.shield(fut)
                continue
            fut = self._connecting = loop.create_future()
            try:
                self._install(*(await self._aconnect_sock(False)))
                fut.set_result(None)
            except BaseException as e:
                if isinstance(e, Exception):
                    fut.set_exception(e)
                    fut.exception()  # retrieved: no "never retrieved" warning
                else:
                    fut.cancel()
                raise
            finally:
                self._connecting = None
        return self._sock

    def _check_link(self, sock):
        """Fail fast while the client has no connection (it had one, the
        kernel thread redials in the background)."""
        self._check_at = _monotonic() + _CHECK_EVERY
        if not self._up_once:
            return
        try:
            pipes = sock.getopt("stat:pipes", "uint64")
        except Error as e:
            raise _redis_error(e, self.url) from None
        if pipes == 0:
            if not self._suspect:  # the watcher logged the drop itself
                log.debug("connection to %s lost; reconnecting in the background", self.url)
            self._suspect = True
            raise _FLAVOURS[_iokpkg.ConnectionReset](
                "no connection to %s (lost; iok reconnects in the background)" % self.url)
        if self._suspect:
            log.debug("reconnected to %s", self.url)
            self._suspect = False
            try:
                self._proto_base = sock.getopt("stat:proto-errors", "uint64")
            except Error:
                pass

    def _fail(self, e, sock=None):
        """The exception to raise for a failed command (e from iok)."""
        if isinstance(e, ResponseError) or not isinstance(e, Error):
            return e
        if isinstance(e, _iokpkg.Timeout):
            self._suspect = True  # the next command looks at the link first
        elif isinstance(e, _CONN_ERRORS):
            if not self._suspect:
                log.warning("connection to %s dropped: %s", self.url, e)
            self._suspect = True
            s = sock if sock is not None else self._sock
            if isinstance(e, _iokpkg.ConnectionReset) and s is not None:
                # The transport drops a connection that sent malformed RESP:
                # say so rather than "reset".
                try:
                    n = s.getopt("stat:proto-errors", "uint64")
                except Error:
                    n = 0
                if n > self._proto_base:
                    return _FLAVOURS[_iokpkg.ProtocolError](
                        "malformed reply from the server: connection dropped (%s)" % self.url)
        return _redis_error(e, self.url)

    def _side_take(self):
        while True:
            with self._side_lock:
                if not self._side_idle:
                    return None
                side = self._side_idle.pop()
            try:  # an idle connection may have dropped meanwhile
                if side.sock.getopt("stat:pipes", "uint64") > 0:
                    return side
            except Error:
                pass
            side.sock.close()

    def _side_get(self):
        side = self._side_take()
        if side is None:
            sock, d = self._connect_sock(True)
            side = _Side(sock, d, self._flags)
        return side

    async def _aside_get(self):
        side = self._side_take()
        if side is None:
            sock, d = await self._aconnect_sock(True)
            side = _Side(sock, d, self._flags)
        return side

    def _side_put(self, side, ok):
        if ok and not self._shut and not side.sock.closed:
            with self._side_lock:
                if len(self._side_idle) < _SIDE_IDLE:
                    self._side_idle.append(side)
                    return
        side.sock.close()

    def _close(self):
        self._shut = True
        for ps in list(self._pubsubs):
            ps._close_sub()
        with self._side_lock:
            idle, self._side_idle = self._side_idle, []
        for side in idle:
            side.sock.close()
        if self._sock is not None:
            self._sock.close()
        else:  # never connected: closed from now on
            sock = _DbSocket()
            sock.close()
            self._sock = sock


def _after_fork_in_child():
    # A parent thread may have held any of these at the fork: the child
    # starts them afresh (its iok sockets are the C layer's business).
    for d in list(_DEMUXES):
        d._reset()
    for c in list(_CLIENTS):
        # The child's iok redials on its own: its commands wait for that
        # connection (up to socket_timeout) rather than failing fast.
        c._up_once = c._suspect = False
        c._side_lock = threading.Lock()
        c._connect_lock = threading.Lock()
        c._side_idle = []
        c._connecting = None


os.register_at_fork(after_in_child=_after_fork_in_child)

# ------------------------------------------------------------------ sync

class _SyncDemux:
    """Routes replies to the threads waiting for them (leader/follower): one
    thread at a time reads (GIL released while it waits); replies for others
    are handed over and wake them; when the reader's own reply comes it
    passes the role on to a waiting thread."""

    __slots__ = ("sock", "flags", "lock", "reading", "results", "waiting", "dropped",
                 "__weakref__")

    def __init__(self, sock, flags):
        self.sock = sock
        self.flags = flags
        self._reset()
        _DEMUXES.add(self)

    def _reset(self):
        # also in a forked child: the reader may be a parent thread
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
    """Sync execution shared by Client, Session and Pipeline; _link() says
    on which socket (and its demultiplexer)."""

    __slots__ = ()

    def _call(self, args, session=0, flags=0):
        c = self._client
        sock, demux = self._link()
        try:
            tok = sock._redis_request(args, session, flags, None)
            value, failed = demux.wait(tok)
        except Error as e:
            raise c._fail(e, sock) from None
        if failed:
            raise c._fail(value, sock)
        return value

    def _call_many(self, cmds, session=0, close_session=False, link=None):
        """Send every command, then wait for each: [(value, failed)].  With
        close_session, the session is released once they are all sent."""
        sock, demux = link or self._link()
        toks = []
        try:
            for args, flags in cmds:
                toks.append(sock._redis_request(args, session, flags, None))
        except BaseException as e:
            if session and toks and close_session:
                _end_session_early(sock, session, cmds, len(toks))
            for t in toks:
                demux.abandon(t)
            if close_session:
                _session_close(sock, session)
            if isinstance(e, Error):
                raise self._client._fail(e, sock) from None
            raise
        if close_session:
            _session_close(sock, session)
        out = []
        try:
            for t in toks:
                v, failed = demux.wait(t)
                if failed and not isinstance(v, ResponseError):
                    v = self._client._fail(v, sock)
                out.append((v, failed))
        except BaseException as e:
            for t in toks[len(out) + 1:]:
                demux.abandon(t)
            if isinstance(e, Error):
                raise self._client._fail(e, sock) from None
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
    """Client(url="redis://127.0.0.1:6379", *, host=None, port=None, db=None,
    username=None, password=None, socket_timeout=30.0,
    socket_connect_timeout=5.0, decode_responses=False, name=None,
    pool_size=1, wait=True, retry_reads=True, max_inflight=None,
    **socket_options)

    A synchronous Redis client; thread-safe: any number of threads share
    its connection, their commands pipelined.

    url: redis://[user:password@]host:port/db or
    redis+unix:///path/to/socket?db=N (also ?protocol=2, ?name=); or
    host/port/db/username/password as redis-py takes them.
    socket_timeout: seconds per command, from the call to its reply
    (TimeoutError); None: no limit.  socket_connect_timeout: seconds to
    connect.  (timeout= is socket_timeout's other name.)  Blocking commands
    (BLPOP, XREAD BLOCK...) and sessions run on connections of their own.
    wait: True connects now (and raises ConnectionError,
    AuthenticationError, ResponseError with the server's words...); None
    connects at the first command (redis-py's way); False dials in the
    background (commands wait for the connection, up to socket_timeout).
    retry_reads: a read-only command in flight when the connection dropped
    is sent again on the next one.  Once connected, while the connection
    is lost (redialled in the background) commands fail at once with
    ConnectionError.
    """

    __slots__ = ()

    @property
    def _client(self):
        return self

    def _link(self):
        sock = self._sock
        if sock is None:
            sock = self._connect_now()
        if self._suspect or _monotonic() > self._check_at:
            self._check_link(sock)
        return sock, self._demux

    def execute(self, *args, **options):
        """Run one command: execute("SET", "k", b"v", "EX", 10).  Arguments:
        str (UTF-8), bytes-like, int, float.  Returns the decoded reply;
        an error reply raises ResponseError.  Blocking commands (BLPOP,
        XREAD BLOCK...) run on a connection of their own."""
        if options:
            raise TypeError("execute() got unexpected keyword arguments %s" % sorted(options))
        if not args:
            raise TypeError("execute() needs a command")
        if _is_blocking(args):
            return self._cmd_blocking(args)
        return self._call(args, 0, _IDEM.get(args[0], 0) if self._retry else 0)

    execute_command = execute

    def _cmd(self, args, transform=None, flags=0):
        v = self._call(args, 0, flags if self._retry else 0)
        return v if transform is None else transform(v)

    def _cmd_blocking(self, args, transform=None):
        side = self._side_get()
        ok = False
        try:
            block = _block_seconds(args)
            side.sock.setopt("req:timeout", _ms(None if block is None or self.timeout is None
                                                else block + self.timeout))
            try:
                tok = side.sock._redis_request(args, 0, 0, None)
                value, failed = side.demux.wait(tok)
            except Error as e:
                raise self._fail(e, side.sock) from None
            if failed:
                ok = isinstance(value, ResponseError)
                raise self._fail(value, side.sock)
            ok = True
        finally:
            self._side_put(side, ok)
        return value if transform is None else transform(value)

    def _iter(self, step, cursor_key):
        cursor = None
        while cursor != 0:
            cursor, items = step(cursor or 0)
            yield from items

    def scan_iter(self, match=None, count=None, _type=None):
        """Every key (SCAN until the cursor comes back to 0)."""
        return self._iter(lambda c: self.scan(c, match, count, _type), None)

    def hscan_iter(self, name, match=None, count=None):
        """Every (field, value) of a hash (HSCAN)."""
        return self._iter(lambda c: _items(self.hscan(name, c, match, count)), None)

    def sscan_iter(self, name, match=None, count=None):
        """Every member of a set (SSCAN)."""
        return self._iter(lambda c: self.sscan(name, c, match, count), None)

    def zscan_iter(self, name, match=None, count=None):
        """Every (member, score) of a sorted set (ZSCAN)."""
        return self._iter(lambda c: self.zscan(name, c, match, count), None)

    def pipeline(self, transaction=True, shard_hint=None):
        """Commands queued, then sent together by execute().  transaction
        (redis-py's default True): MULTI/EXEC around them.  watch() first
        for optimistic locking (redis-py's way): the pipeline then runs
        its commands at once on a connection of its own until multi()."""
        return Pipeline(self, transaction)

    def transaction(self, func=None, *watches, value_from_callable=False, watch_delay=None,
                    **kw):
        """transaction(func, *watches): redis-py's retry loop (func(pipe)
        after WATCH, EXEC, again on WatchError).  transaction() alone: a
        pipeline with MULTI/EXEC (``with r.transaction() as tx:``)."""
        if func is None:
            return Pipeline(self, True)
        while True:
            with self.pipeline(True) as pipe:
                try:
                    if watches:
                        pipe.watch(*watches)
                    v = func(pipe)
                    res = pipe.execute()
                    return v if value_from_callable else res
                except WatchError:
                    if watch_delay:
                        time.sleep(watch_delay)

    def session(self):
        """A Session: commands on a connection of its own, in order (WATCH,
        optimistic transactions).  Close it (with block) to give the
        connection back."""
        return Session(self)

    def pubsub(self, ignore_subscribe_messages=None):
        """A PubSub.  The first shares the client's connection; others get
        connections of their own."""
        if ignore_subscribe_messages is None:
            ignore_subscribe_messages = self._ignore_default
        ps = PubSub(self, ignore_subscribe_messages)
        self._pubsubs.add(ps)
        return ps

    def register_script(self, script):
        """A Script: call it with keys=[...], args=[...] (EVALSHA, loading
        it on NOSCRIPT)."""
        return Script(self, script)

    def lock(self, name, timeout=None, sleep=0.1, blocking=True, blocking_timeout=None,
             thread_local=True):
        """A Lock (redis-py's): SET NX PX with a random token; released only
        by its holder."""
        return Lock(self, name, timeout, sleep, blocking, blocking_timeout)

    def close(self):
        """Close the connections (and the pubsubs).  Threads waiting for
        replies raise ConnectionError."""
        self._close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _items(v):
    cursor, d = v
    return cursor, list(d.items())


class Session(_SyncRunner, Commands):
    """Commands on a connection of its own, in order, until close().  For
    WATCH / MULTI / EXEC::

        with r.session() as s:
            s.watch("balance")
            v = int(s.get("balance"))
            with s.transaction() as tx:      # WatchError if it changed
                tx.set("balance", v + 1)
    """

    __slots__ = ("_client", "_id", "_watching", "_in_multi", "_closed", "_side")

    def __init__(self, client):
        self._client = client
        self._side = None
        self._watching = self._in_multi = False
        self._closed = False
        self._id = 0
        side = client._side_get()
        try:
            self._id = _iok.session_open(side.sock.id)
        except BaseException:
            client._side_put(side, False)
            raise
        self._side = side

    def _link(self):
        self._check()
        return self._side.sock, self._side.demux

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
            raise _FLAVOURS[Closed]("the session is closed")

    def execute(self, *args):
        self._check()
        self._track(args)
        return self._call(args, self._id, 0)

    execute_command = execute

    def _cmd(self, args, transform=None, flags=0):
        self._check()
        self._track(args)
        v = self._call(args, self._id, 0)
        return v if transform is None else transform(v)

    _cmd_blocking = _cmd

    def watch(self, *names):
        return self.execute("WATCH", *names)

    def unwatch(self):
        return self.execute("UNWATCH")

    def pipeline(self, transaction=True):
        return Pipeline(self._client, transaction, self)

    def transaction(self):
        return Pipeline(self._client, True, self)

    def close(self):
        """End the session: a WATCH still standing is undone, an open MULTI
        discarded, and the connection goes back to the client."""
        if self._closed:
            return
        ok = True
        try:
            if self._in_multi:
                self._call(("DISCARD",), self._id)
            elif self._watching:
                self._call(("UNWATCH",), self._id)
        except BaseException:
            ok = False
            raise
        finally:
            self._closed = True
            if self._side is not None:
                _session_close(self._side.sock, self._id)
                self._client._side_put(self._side, ok)
                self._side = None

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
    __slots__ = ("_client", "_transaction", "_session", "_cmds", "_raise", "results",
                 "_own_session", "_immediate")

    def __init__(self, client, transaction, session=None, raise_on_error=True):
        self._client = client
        self._transaction = transaction
        self._session = session
        self._own_session = False
        self._immediate = False
        self._cmds = []
        self._raise = raise_on_error
        self.results = None

    def _cmd(self, args, transform=None, flags=0):
        if self._immediate:  # after watch(), before multi(): run now
            return self._session._cmd(args, transform, flags)
        self._cmds.append((args, transform, flags))
        return self

    _cmd_blocking = _cmd

    def execute_command(self, *args):
        """Queue any command (its reply comes untransformed); after watch()
        and before multi(), run it at once."""
        if self._immediate:
            return self._session.execute(*args)
        self._cmds.append((args, None, 0))
        return self

    def multi(self):
        """After watch(): queue the commands from here on (MULTI/EXEC at
        execute())."""
        if self._cmds:
            raise RedisError("multi() after commands were queued")
        self._immediate = False
        self._transaction = True

    def __len__(self):
        return len(self._cmds)

    def _plan(self, sock):
        """(commands to send as (args, flags), session, close_session)."""
        if self._session is not None:
            self._session._check()
            sess, own = self._session._id, False
        elif self._transaction:
            sess, own = _iok.session_open(sock.id), True
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

    def _link(self):
        if self._session is not None:
            return self._session._link()
        return self._client._link()

    def watch(self, *names):
        """WATCH names on a connection of the pipeline's own; commands run
        at once until multi()."""
        if self._session is None:
            self._session = Session(self._client)
            self._own_session = True
        self._immediate = True
        return self._session.watch(*names)

    def unwatch(self):
        if self._session is not None:
            return self._session.unwatch()
        return True

    def reset(self):
        """Forget queued commands, undo watch(), give the connection back."""
        self._cmds = []
        self._immediate = False
        if self._own_session and self._session is not None:
            s, self._session = self._session, None
            self._own_session = False
            s.close()

    def execute(self, raise_on_error=True):
        """Send the queued commands and return their results (a transaction:
        EXEC's).  An error reply raises (the first one) unless
        raise_on_error=False, which puts the exceptions in the list."""
        self._raise = raise_on_error
        try:
            if not self._cmds:
                self.results = []
                return []
            link = self._link()
            cmds, sess, own = self._plan(link[0])
            return self._finish(self._call_many(cmds, sess, own, link))
        finally:
            if self._own_session:
                self.reset()

    def __enter__(self):
        return self

    def __exit__(self, et, e, tb):
        try:
            if et is None and self._cmds:
                self.execute(self._raise)
        finally:
            self.reset()


# ---------------------------------------------------------------- asyncio

class _AsyncRunner:
    __slots__ = ()

    async def _acall(self, args, session=0, flags=0, transform=None):
        c = self._client
        sock = await self._alink()
        try:
            v = await _aio.call(sock, sock._redis_request, args, session, flags)
        except ResponseError:
            raise
        except Error as e:
            raise c._fail(e, sock) from None
        return v if transform is None else transform(v)

    async def _acall_many(self, cmds, session=0, close_session=False, sock=None):
        c = self._client
        if sock is None:
            sock = await self._alink()
        aio = _aio.state(sock)
        loop = aio.loop
        pending = aio.pending
        sent = []  # (token, future)
        try:
            for args, flags in cmds:
                one = sock._redis_submit(args, session, flags, pending, loop)  # (token, Reply)
                while one is None:
                    await aio.writable(sock)
                    one = sock._redis_submit(args, session, flags, pending, loop)
                sent.append(one)
        except BaseException as e:
            if session and sent and close_session:
                _end_session_early(sock, session, cmds, len(sent))
            self._forget(sock, aio, sent)
            if close_session:
                _session_close(sock, session)
            if isinstance(e, Error):
                raise c._fail(e, sock) from None
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
                except ResponseError as e:
                    out.append((e, True))
                except (Error, UnicodeDecodeError) as e:
                    out.append((c._fail(e, sock), True))
        except BaseException:
            self._forget(sock, aio, sent[len(out):])
            raise
        return out

    _forget = staticmethod(_aio.forget)


class AsyncClient(_AsyncRunner, _Base):
    """AsyncClient(url="redis://127.0.0.1:6379", *, host=None, port=None,
    db=None, username=None, password=None, socket_timeout=30.0,
    socket_connect_timeout=5.0, decode_responses=False, name=None,
    pool_size=1, wait=None, retry_reads=True, max_inflight=None,
    **socket_options)

    The asyncio client (redis.asyncio.Redis's surface): every command is a
    coroutine function (``await r.get("k")``), and any number of them may
    run concurrently, pipelined over one connection; each gets its own
    reply.  Works with uvloop.  The constructor never blocks: the
    connection is made (on the loop's executor, bounded by
    socket_connect_timeout) by ``async with``, ``await r.initialize()`` or
    the first command; wait=False dials in the background instead.
    Cancelling an awaiting task cancels its command's reply (the command
    itself may already have run); a cancelled blocking command closes its
    own connection and delays nothing.  Options as Client.
    """

    __slots__ = ()
    _lazy_default = True

    def __init__(self, url=None, **kw):
        if kw.get("wait") is True:
            kw["wait"] = None  # connecting here would block the event loop
        _Base.__init__(self, url, **kw)

    @property
    def _client(self):
        return self

    async def _alink(self):
        sock = self._sock
        if sock is None:
            sock = await self._aensure()
        if self._suspect or _monotonic() > self._check_at:
            self._check_link(sock)
        return sock

    async def initialize(self):
        """Connect now (raises what connecting raises); returns self."""
        await self._alink()
        return self

    def __await__(self):
        return self.initialize().__await__()

    async def execute(self, *args, **options):
        """``await r.execute("GET", "k")``: one command, its decoded reply;
        an error reply raises ResponseError.  Blocking commands run on a
        connection of their own."""
        if options:
            raise TypeError("execute() got unexpected keyword arguments %s" % sorted(options))
        if not args:
            raise TypeError("execute() needs a command")
        if _is_blocking(args):
            return await self._cmd_blocking(args)
        return await self._arun(args, _IDEM.get(args[0], 0) if self._retry else 0, None)

    execute_command = execute

    def _cmd(self, args, transform=None, flags=0):
        return self._arun(args, flags if self._retry else 0, transform)

    # _arun(args, flags, transform): defined below, with the commands.

    async def _cmd_blocking(self, args, transform=None):
        if self._sock is None:
            await self._aensure()
        side = await self._aside_get()
        ok = False
        try:
            block = _block_seconds(args)
            side.sock.setopt("req:timeout", _ms(None if block is None or self.timeout is None
                                                else block + self.timeout))
            try:
                v = await _aio.call(side.sock, side.sock._redis_request, args, 0, 0)
            except ResponseError:
                ok = True
                raise
            except Error as e:
                raise self._fail(e, side.sock) from None
            ok = True
        finally:
            self._side_put(side, ok)
        return v if transform is None else transform(v)

    async def scan_iter(self, match=None, count=None, _type=None):
        """``async for key in r.scan_iter(): ...``"""
        cursor = None
        while cursor != 0:
            cursor, keys = await self.scan(cursor or 0, match, count, _type)
            for k in keys:
                yield k

    async def hscan_iter(self, name, match=None, count=None):
        cursor = None
        while cursor != 0:
            cursor, d = await self.hscan(name, cursor or 0, match, count)
            for kv in d.items():
                yield kv

    async def sscan_iter(self, name, match=None, count=None):
        cursor = None
        while cursor != 0:
            cursor, items = await self.sscan(name, cursor or 0, match, count)
            for m in items:
                yield m

    async def zscan_iter(self, name, match=None, count=None):
        cursor = None
        while cursor != 0:
            cursor, items = await self.zscan(name, cursor or 0, match, count)
            for m in items:
                yield m

    def pipeline(self, transaction=True, shard_hint=None):
        """An AsyncPipeline (redis.asyncio's): commands queued (not awaited),
        ``await pipe.execute()``; transaction=True wraps them in MULTI/EXEC;
        ``await pipe.watch(...)`` first for optimistic locking."""
        return AsyncPipeline(self, transaction)

    def transaction(self, func=None, *watches, value_from_callable=False, watch_delay=None,
                    **kw):
        """transaction(): ``async with r.transaction() as tx:`` MULTI/EXEC.
        transaction(func, *watches): a coroutine, redis-py's retry loop
        (await func(pipe) after WATCH, EXEC, again on WatchError)."""
        if func is None:
            return AsyncPipeline(self, True)
        return self._transaction_loop(func, watches, value_from_callable, watch_delay)

    async def _transaction_loop(self, func, watches, value_from_callable, watch_delay):
        while True:
            async with self.pipeline(True) as pipe:
                try:
                    if watches:
                        await pipe.watch(*watches)
                    v = func(pipe)
                    if _asyncio_std.iscoroutine(v):
                        v = await v
                    res = await pipe.execute()
                    return v if value_from_callable else res
                except WatchError:
                    if watch_delay:
                        await _asyncio_std.sleep(watch_delay)

    def session(self):
        """An AsyncSession (``async with r.session() as s:``) on a
        connection of its own."""
        return AsyncSession(self)

    def pubsub(self, ignore_subscribe_messages=None):
        """An AsyncPubSub.  The first shares the client's connection;
        others get connections of their own."""
        if ignore_subscribe_messages is None:
            ignore_subscribe_messages = self._ignore_default
        ps = AsyncPubSub(self, ignore_subscribe_messages)
        self._pubsubs.add(ps)
        return ps

    def register_script(self, script):
        """An AsyncScript: ``await script(keys=[...], args=[...])``."""
        return AsyncScript(self, script)

    def lock(self, name, timeout=None, sleep=0.1, blocking=True, blocking_timeout=None,
             thread_local=True):
        """An AsyncLock (``async with r.lock("name", timeout=10):``)."""
        return AsyncLock(self, name, timeout, sleep, blocking, blocking_timeout)

    def close(self, close_connection_pool=None):
        """Close the connections; awaiting commands raise ConnectionError.
        Closes at once; awaitable too (``await r.close()``, redis.asyncio's
        way)."""
        self._close()
        return _done()

    async def aclose(self, close_connection_pool=None):
        """close() (redis-py >= 5 spells it aclose)."""
        self._close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._close()

    async def __aenter__(self):
        return await self.initialize()

    async def __aexit__(self, *exc):
        self._close()


class AsyncSession(_AsyncRunner, Commands):
    """Session for AsyncClient (``async with r.session() as s:``), on a
    connection of its own (taken at the first command)."""

    __slots__ = ("_client", "_id", "_watching", "_in_multi", "_closed", "_side")

    def __init__(self, client):
        self._client = client
        self._id = 0
        self._side = None
        self._watching = self._in_multi = self._closed = False

    _track = Session._track
    _check = Session._check

    async def _alink(self):
        self._check()
        if self._side is None:
            c = self._client
            if c._sock is None:
                await c._aensure()
            side = await c._aside_get()
            try:
                self._id = _iok.session_open(side.sock.id)
            except BaseException:
                c._side_put(side, False)
                raise
            self._side = side
        return self._side.sock

    def execute(self, *args):
        self._check()
        self._track(args)
        return self._acall(args, self._id, 0)

    execute_command = execute

    def _cmd(self, args, transform=None, flags=0):
        self._check()
        self._track(args)
        return self._acall(args, self._id, 0, transform)

    _cmd_blocking = _cmd

    def watch(self, *names):
        return self.execute("WATCH", *names)

    def unwatch(self):
        return self.execute("UNWATCH")

    def pipeline(self, transaction=True):
        return AsyncPipeline(self._client, transaction, self)

    def transaction(self):
        return AsyncPipeline(self._client, True, self)

    async def close(self):
        if self._closed:
            return
        ok = True
        try:
            if self._side is not None:
                if self._in_multi:
                    await self._acall(("DISCARD",), self._id)
                elif self._watching:
                    await self._acall(("UNWATCH",), self._id)
        except BaseException:
            ok = False
            raise
        finally:
            self._closed = True
            if self._side is not None:
                _session_close(self._side.sock, self._id)
                self._client._side_put(self._side, ok)
                self._side = None

    async def __aenter__(self):
        await self._alink()
        return self

    async def __aexit__(self, *exc):
        await self.close()


class AsyncPipeline(_AsyncRunner, _PipelineBase):
    """Queued commands sent together (AsyncClient.pipeline/transaction)."""

    __slots__ = ()

    async def _alink(self):
        if self._session is not None:
            return await self._session._alink()
        return await self._client._alink()

    async def watch(self, *names):
        """WATCH names on a connection of the pipeline's own; commands run
        at once (await them) until multi()."""
        if self._session is None:
            self._session = AsyncSession(self._client)
            self._own_session = True
        self._immediate = True
        return await self._session.watch(*names)

    async def unwatch(self):
        if self._session is not None:
            return await self._session.unwatch()
        return True

    async def reset(self):
        """Forget queued commands, undo watch(), give the connection back."""
        self._cmds = []
        self._immediate = False
        if self._own_session and self._session is not None:
            s, self._session = self._session, None
            self._own_session = False
            await s.close()

    async def execute(self, raise_on_error=True):
        self._raise = raise_on_error
        try:
            if not self._cmds:
                self.results = []
                return []
            sock = await self._alink()
            cmds, sess, own = self._plan(sock)
            return self._finish(await self._acall_many(cmds, sess, own, sock))
        finally:
            if self._own_session:
                await self.reset()

    async def __aenter__(self):
        return self

    async def __aexit__(self, et, e, tb):
        try:
            if et is None and self._cmds:
                await self.execute(self._raise)
        finally:
            await self.reset()


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
        self._sub = Sub()
        self._linked = False
        self._side = None
        self.channels = {}  # bytes -> True (confirmed) or False (waiting)
        self.patterns = {}
        self._waits = {}    # ("subscribe", name) -> [waiters]

    @property
    def closed(self):
        return self._sub.closed

    def _share(self, dialer):
        try:
            _iok.dialer_share(dialer.id, self._sub.id)
        except _iokpkg.Busy:
            return False
        self._linked = True
        return True

    def _link(self):
        """Attach to the client's connection, or (taken by another pubsub)
        to one of our own."""
        if self._linked:
            return
        c = self._client
        if c._sock is None:
            c._connect_now()
        if not self._share(c._dialer):
            side = c._side_get()
            self._side = side
            self._share(side.dialer)

    async def _alink(self):
        if self._linked:
            return
        c = self._client
        if c._sock is None:
            await c._aensure()
        if not self._share(c._dialer):
            side = await c._aside_get()
            self._side = side
            self._share(side.dialer)

    def _close_side(self):
        side, self._side = self._side, None
        if side is not None:
            side.sock.close()

    def _skip(self, m, ignore):
        if m.type == "message" and _b(m.channel) not in self.channels:
            return True
        if m.type == "pmessage" and _b(m.pattern) not in self.patterns:
            return True
        return ignore and m.type in _CONFIRMS

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
        if timeout is _UNSET:
            timeout = self._client.timeout
        timeout = _seconds("timeout", timeout)
        end = None if timeout is None else time.monotonic() + timeout
        while not all(table.get(k) for k in keys):
            left = -1 if end is None else max(0, int((end - time.monotonic()) * 1000))
            if left == 0 and end is not None:
                raise _FLAVOURS[Timeout]("subscribing: no confirmation within %ss (%s)"
                                         % (timeout, self._client.url))
            try:
                self._pump(left)
            except (Timeout, TryAgain):
                pass
            except Error as e:
                raise self._client._fail(e) from None

    def _pump(self, timeout):
        """Read what the sub socket has (waiting up to timeout ms, -1: for
        ever); buffer the messages.  Raises iok.Timeout / TryAgain."""
        for _, v, failed in self._sub._redis_recv(timeout, self._flags, 256):
            if not failed:
                m = self._route(v)
                if m is not None:
                    self._buf.append(m)

    def subscribe(self, *channels, timeout=_UNSET, **handlers):
        """Subscribe and wait (up to timeout seconds; default: the client's
        socket_timeout) until the server confirmed every channel."""
        if handlers:
            raise TypeError("message handlers are not supported: %s" % sorted(handlers))
        keys = [_b(c) for c in channels]
        self._link()
        self._wait_confirms(False, self._request(False, keys), timeout)

    def psubscribe(self, *patterns, timeout=_UNSET, **handlers):
        if handlers:
            raise TypeError("message handlers are not supported: %s" % sorted(handlers))
        keys = [_b(c) for c in patterns]
        self._link()
        self._wait_confirms(True, self._request(True, keys), timeout)

    def unsubscribe(self, *channels):
        """Stop (all channels if none given).  Returns at once; no message
        of these channels is returned after it."""
        self._drop(False, channels)

    def punsubscribe(self, *patterns):
        self._drop(True, patterns)

    def get_message(self, ignore_subscribe_messages=False, timeout=0.0):
        """The next message, waiting up to timeout seconds (redis-py's
        default 0.0: not at all; None: for ever); None if none came.
        ignore_subscribe_messages: skip (un)subscribe confirmations."""
        timeout = _seconds("timeout", timeout)
        buf = self._buf
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            while buf:
                m = buf.popleft()
                if not self._skip(m, ignore_subscribe_messages):
                    return m
            if not self._linked:
                if not self.subscribed:
                    return None
                self._link()
            left = -1 if end is None else max(0, int((end - time.monotonic()) * 1000))
            try:
                self._pump(left)
            except (Timeout, TryAgain):
                return None
            except Closed:
                raise
            except Error as e:
                raise self._client._fail(e) from None
            if left == 0 and not buf:
                return None

    def listen(self):
        """Every message, for ever (until closed: iok.Closed ends it)."""
        while True:
            try:
                m = self.get_message(timeout=None)
            except Closed:
                return
            if m is not None:
                yield m

    __iter__ = listen

    def _close_sub(self):
        self._sub.close()
        self._close_side()

    def close(self):
        """Leave every subscription and detach from the connection."""
        self._close_sub()

    reset = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Done:
    """close() works both called and awaited."""
    __slots__ = ()

    def __await__(self):
        return iter(())


def _done():
    return _Done()


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
            self._task = _asyncio_std.get_running_loop().create_task(self._reader())

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
                    self._room = _asyncio_std.get_running_loop().create_future()
                    await self._room
                self._queue.append(m)
                g = self._getter
                if g is not None and not g.done():
                    g.set_result(None)
        except _asyncio_std.CancelledError:
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
        loop = _asyncio_std.get_running_loop()
        futs = []
        for k in keys:
            table = self.patterns if kind[0] == "p" else self.channels
            if table.get(k):
                continue
            f = loop.create_future()
            self._confirm_waits.setdefault((kind, k), []).append(f)
            futs.append(f)
        if timeout is _UNSET:
            timeout = self._client.timeout
        timeout = _seconds("timeout", timeout)
        wait = _asyncio_std.gather(*futs)
        if timeout is None:
            await wait
        else:
            try:
                await _asyncio_std.wait_for(wait, timeout)
            except builtins.TimeoutError:
                raise _FLAVOURS[Timeout]("subscribing: no confirmation within %ss (%s)"
                                         % (timeout, self._client.url)) from None

    async def subscribe(self, *channels, timeout=_UNSET, **handlers):
        """Subscribe and return once the server confirmed every channel (a
        message published after that is received).  timeout: seconds
        (default: the client's socket_timeout)."""
        if handlers:
            raise TypeError("message handlers are not supported: %s" % sorted(handlers))
        keys = [_b(c) for c in channels]
        await self._alink()
        self._start()
        await self._wait_confirms("subscribe", self._request(False, keys), timeout)

    async def psubscribe(self, *patterns, timeout=_UNSET, **handlers):
        if handlers:
            raise TypeError("message handlers are not supported: %s" % sorted(handlers))
        keys = [_b(c) for c in patterns]
        await self._alink()
        self._start()
        await self._wait_confirms("psubscribe", self._request(True, keys), timeout)

    async def unsubscribe(self, *channels):
        """Stop (all channels if none given); no message of them is
        returned after this."""
        self._drop(False, channels)

    async def punsubscribe(self, *patterns):
        self._drop(True, patterns)

    async def get_message(self, ignore_subscribe_messages=False, timeout=0.0):
        """The next message, waiting up to timeout seconds (redis-py's
        default 0.0: not at all; None: for ever); None if none came.
        ignore_subscribe_messages: skip (un)subscribe confirmations."""
        timeout = _seconds("timeout", timeout)
        if not self._linked:
            await self._alink()
        self._start()
        q = self._queue
        end = None if timeout is None else _monotonic() + timeout
        while True:
            while q:
                m = q.popleft()
                r = self._room
                if r is not None and not r.done():
                    r.set_result(None)
                if not self._skip(m, ignore_subscribe_messages):
                    return m
            if self._error is not None:
                raise self._error
            self._getter = g = _asyncio_std.get_running_loop().create_future()
            try:
                if end is None:
                    await g
                else:
                    left = end - _monotonic()
                    if left <= 0:
                        await _asyncio_std.sleep(0)  # let the reader take what is there
                        if not g.done():
                            return None
                    try:
                        await _asyncio_std.wait_for(g, max(left, 0))
                    except builtins.TimeoutError:
                        if not q:
                            return None
            finally:
                self._getter = None

    async def listen(self):
        """``async for msg in ps.listen():`` every message until closed."""
        while True:
            try:
                m = await self.get_message(timeout=None)
            except Closed:
                return
            if m is not None:
                yield m

    def __aiter__(self):
        return self

    async def __anext__(self):
        try:
            return await self.get_message(timeout=None)
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
        self._close_side()
        if self._error is None:
            self._fail(Closed())

    async def aclose(self):
        """Leave every subscription, detach (redis.asyncio's aclose)."""
        self._close_sub()

    async def reset(self):
        self._close_sub()

    def close(self):
        """Leave every subscription and detach from the connection;
        iteration ends.  Awaitable too (``await ps.close()``)."""
        self._close_sub()
        return _done()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()



# ------------------------------------------------------- scripts and locks

class Script:
    """register_script's result: ``script(keys=[...], args=[...])`` runs
    EVALSHA, loading the script first on NOSCRIPT."""

    def __init__(self, client, script):
        self.registered_client = client
        self.script = script
        import hashlib
        b = script.encode() if isinstance(script, str) else bytes(script)
        self.sha = hashlib.sha1(b).hexdigest()

    def __call__(self, keys=(), args=(), client=None):
        c = client if client is not None else self.registered_client
        keys, args = tuple(keys), tuple(args)
        if isinstance(c, _PipelineBase):
            return c.eval(self.script, len(keys), *(keys + args))
        try:
            return c.evalsha(self.sha, len(keys), *(keys + args))
        except NoScriptError:
            self.sha = c.script_load(self.script)
            return c.evalsha(self.sha, len(keys), *(keys + args))


class AsyncScript(Script):
    """Script for AsyncClient: ``await script(keys=[...], args=[...])``."""

    async def __call__(self, keys=(), args=(), client=None):
        c = client if client is not None else self.registered_client
        keys, args = tuple(keys), tuple(args)
        if isinstance(c, _PipelineBase):
            return c.eval(self.script, len(keys), *(keys + args))
        try:
            return await c.evalsha(self.sha, len(keys), *(keys + args))
        except NoScriptError:
            self.sha = await c.script_load(self.script)
            return await c.evalsha(self.sha, len(keys), *(keys + args))


_UNLOCK = """if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1])
else return 0 end"""
_EXTEND = """if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
local ttl = redis.call('pttl', KEYS[1])
if ARGV[3] == '0' and ttl > 0 then return redis.call('pexpire', KEYS[1], ttl + ARGV[2]) end
return redis.call('pexpire', KEYS[1], ARGV[2])"""


class Lock:
    """redis-py's Lock: SET name token NX PX timeout; released (or
    extended) only by the holder of the token.  timeout, sleep and
    blocking_timeout in seconds."""

    def __init__(self, client, name, timeout=None, sleep=0.1, blocking=True,
                 blocking_timeout=None):
        self.redis = client
        self.name = name
        self.timeout = timeout
        self.sleep = sleep
        self.blocking = blocking
        self.blocking_timeout = blocking_timeout
        self.token = None

    def _set_args(self, token):
        args = ["SET", self.name, token, "NX"]
        if self.timeout is not None:
            args += ("PX", _ms(self.timeout))
        return args

    def _new_token(self):
        import uuid
        return uuid.uuid1().hex.encode()

    def acquire(self, blocking=None, blocking_timeout=None, token=None):
        """True once held; False if not within blocking_timeout (or at once
        with blocking=False)."""
        blocking = self.blocking if blocking is None else blocking
        bt = self.blocking_timeout if blocking_timeout is None else blocking_timeout
        token = self._new_token() if token is None else _b(token)
        stop = None if bt is None else _monotonic() + bt
        while True:
            if self.redis.execute(*self._set_args(token)) is not None:
                self.token = token
                return True
            if not blocking or (stop is not None and _monotonic() > stop):
                return False
            time.sleep(self.sleep)

    def locked(self):
        return self.redis.get(self.name) is not None

    def owned(self):
        v = self.redis.get(self.name)
        return v is not None and self.token is not None and _b(v) == self.token

    def release(self):
        token, self.token = self.token, None
        if token is None:
            raise LockError("cannot release an unlocked lock")
        if not self.redis.eval(_UNLOCK, 1, self.name, token):
            raise LockNotOwnedError("cannot release a lock that's no longer owned")

    def extend(self, additional_time, replace_ttl=False):
        if self.token is None:
            raise LockError("cannot extend an unlocked lock")
        if self.timeout is None:
            raise LockError("cannot extend a lock with no timeout")
        if not self.redis.eval(_EXTEND, 1, self.name, self.token, _ms(additional_time),
                               "1" if replace_ttl else "0"):
            raise LockNotOwnedError("cannot extend a lock that's no longer owned")
        return True

    def __enter__(self):
        if self.acquire():
            return self
        raise LockError("unable to acquire lock within the time specified")

    def __exit__(self, *exc):
        self.release()


class AsyncLock(Lock):
    """Lock for AsyncClient: ``async with r.lock("name", timeout=10):``."""

    async def acquire(self, blocking=None, blocking_timeout=None, token=None):
        blocking = self.blocking if blocking is None else blocking
        bt = self.blocking_timeout if blocking_timeout is None else blocking_timeout
        token = self._new_token() if token is None else _b(token)
        stop = None if bt is None else _monotonic() + bt
        while True:
            if await self.redis.execute(*self._set_args(token)) is not None:
                self.token = token
                return True
            if not blocking or (stop is not None and _monotonic() > stop):
                return False
            await _asyncio_std.sleep(self.sleep)

    async def locked(self):
        return await self.redis.get(self.name) is not None

    async def owned(self):
        v = await self.redis.get(self.name)
        return v is not None and self.token is not None and _b(v) == self.token

    async def release(self):
        token, self.token = self.token, None
        if token is None:
            raise LockError("cannot release an unlocked lock")
        if not await self.redis.eval(_UNLOCK, 1, self.name, token):
            raise LockNotOwnedError("cannot release a lock that's no longer owned")

    async def extend(self, additional_time, replace_ttl=False):
        if self.token is None:
            raise LockError("cannot extend an unlocked lock")
        if self.timeout is None:
            raise LockError("cannot extend a lock with no timeout")
        if not await self.redis.eval(_EXTEND, 1, self.name, self.token, _ms(additional_time),
                                     "1" if replace_ttl else "0"):
            raise LockNotOwnedError("cannot extend a lock that's no longer owned")
        return True

    async def __aenter__(self):
        if await self.acquire():
            return self
        raise LockError("unable to acquire lock within the time specified")

    async def __aexit__(self, *exc):
        await self.release()


# ------------------------------------- AsyncClient's commands as coroutines

def _doc(name):
    cmd = name.upper().replace("_", " ")
    return "%s: the Redis command, redis-py's arguments and reply shape." % cmd


for _n, _f in list(vars(Commands).items()):
    if not _n.startswith("_") and callable(_f) and not _f.__doc__:
        _f.__doc__ = _doc(_n)


class _Plan:
    """Stands in for the client while a command method builds its command:
    _cmd(args, transform=None, flags=0) hands back (args, transform, flags)
    instead of sending (in C: a builtin is not bound to the instance, and
    no Python frame is made per command)."""

    __slots__ = ()
    _cmd = _iok._redis_plan


def _command_coroutine(plan, name, doc):
    """An AsyncClient command as one coroutine, from the call to the
    decoded reply (plan(*args) -> (command, transform, flags)): the whole
    path, which _command_method's C method runs when its own does not
    apply (not connected yet, a link check due, another loop, a full send
    queue, an error); _iok.CommandMethod does the rest without it.
    _aio.call, inlined, is what the body does."""
    async def run(self, *args, **kwargs):
        cmd, transform, flags = plan(*args, **kwargs) if kwargs else plan(*args)
        sock = self._sock
        if sock is None:
            sock = await self._aensure()
        if self._suspect or _monotonic() > self._check_at:
            self._check_link(sock)
        if not self._retry:
            flags = 0
        # _aio.state's own first test, without its frame; a task the reply
        # dispatcher woke runs in the state's loop (one attribute to know)
        aio = sock._aio
        if aio is None or (sock._dispatch_pending is not aio.pending and not aio.runs_here()):
            aio = _aio.state(sock)
        try:
            sent = sock._redis_submit(cmd, 0, flags, aio.pending, aio.loop)  # a Reply in pending
            while sent is None:
                await aio.writable(sock)
                sent = sock._redis_submit(cmd, 0, flags, aio.pending, aio.loop)
        except Error as e:
            raise self._fail(e, sock) from None
        token, fut = sent
        if not aio.reading:
            aio.start_reading(sock)
        try:
            v = await fut
        except BaseException as e:
            raise_ = _command_failed(self, sock, aio, token, fut, e)  # the late reply dropped
            if raise_ is e:
                raise
            raise raise_ from None
        return v if transform is None else transform(v)
    run.__name__ = name
    run.__qualname__ = "AsyncClient." + name
    run.__doc__ = doc
    return run


AsyncClient._arun = _command_coroutine(lambda args, flags, transform: (args, transform, flags),
                                       "_arun", "Send args, await its decoded reply.")
_PLAN = _Plan()


# What an unmarked command method may be made of for its plan to be taken
# without running it: loads, a tuple and one call (its _cmd), so no
# argument's value can change what it does (names of CPython 3.11 to 3.13;
# any other opcode, or another version's, keeps the method's own plan).
_PLAIN_OPS = frozenset((
    "RESUME", "CACHE", "NOP", "LOAD_FAST", "LOAD_FAST_LOAD_FAST", "LOAD_CONST", "LOAD_GLOBAL",
    "LOAD_METHOD", "LOAD_ATTR", "PUSH_NULL", "BUILD_TUPLE", "KW_NAMES", "PRECALL", "CALL",
    "CALL_KW", "RETURN_VALUE"))
_CO_VARARGS, _CO_VARKEYWORDS = 0x04, 0x08  # inspect's names for these code flags
# Kinds of argument a pass-through is tried with (each a new object).
_STAND_INS = (object, list, dict, lambda: None, int, str, bytes)


def _pass_through_plan(fn):
    """A C CommandPlan for a command method that passes its arguments on
    after the command's name (get(name) -> ("GET", name)), or None.  Such
    a method is marked @_passes_on (its required arguments, or its *args,
    when no option is given), or has only positional parameters without
    defaults and only _PLAIN_OPS with one call; and for every kind of
    stand-in argument it plans (NAME, *args) with one transform and flags.
    The plan calls the method itself for keywords, options or a wrong
    count.  A marked method that does not pass its arguments on is an
    error."""
    code = fn.__code__
    marked = getattr(fn, "_passes_on", False)
    varargs = bool(code.co_flags & _CO_VARARGS)
    if marked:
        nargs = -1 if varargs else code.co_argcount - 1 - len(fn.__defaults__ or ())
        if varargs and code.co_argcount != 1:
            raise TypeError("@_passes_on %s: *args after other parameters" % fn.__name__)
    else:
        if fn.__defaults__ or fn.__kwdefaults__ or code.co_kwonlyargcount or varargs or \
                code.co_flags & _CO_VARKEYWORDS:
            return None
        ops = [i.opname for i in dis.get_instructions(fn)]
        if any(op not in _PLAIN_OPS for op in ops) or \
                ops.count("CALL") + ops.count("CALL_KW") != 1:
            return None
        nargs = code.co_argcount - 1
    plan = _passed_on(fn, nargs)
    if plan is None and marked:
        raise TypeError("@_passes_on %s does not pass its arguments on" % fn.__name__)
    if plan is None:
        return None
    return _iok.CommandPlan(plan[0], nargs, plan[1], plan[2], functools.partial(fn, _PLAN))


def _passed_on(fn, nargs):
    """(NAME, transform, flags) if fn plans (NAME, *args) for every kind of
    stand-in argument (nargs -1: 0, 1 and 3 of them), else None."""
    found = None
    for kind in _STAND_INS:
        for n in ((0, 1, 3) if nargs < 0 else (nargs,)):
            args = tuple(kind() for _ in range(n))
            try:
                cmd, transform, flags = fn(_PLAN, *args)
            except Exception:
                return None
            if type(cmd) not in (tuple, list) or len(cmd) != n + 1 or \
                    type(cmd[0]) is not str or not all(a is b for a, b in zip(cmd[1:], args)):
                return None
            if found is None:
                found = (cmd[0], transform, flags)
            elif found[0] != cmd[0] or found[1] is not transform or found[2] != flags:
                return None
    return found


def _command_failed(client, sock, aio, token, fut, e):
    """What an AsyncClient command raises when its reply failed with e
    (the except clause of _command_coroutine, for _iok.CommandMethod): the
    reply is forgotten; e, or what _fail makes of an iok error."""
    _aio.forget(sock, aio, ((token, fut),))
    if isinstance(e, Error) and not isinstance(e, ResponseError):
        return client._fail(e, sock)
    return e


def _command_method(plan, name, doc, fn):
    """AsyncClient.<name>: an _iok.CommandMethod, which sends its command
    and awaits the reply without a frame when all is well, and runs
    _command_coroutine when not.  inspect sees a coroutine function with
    fn's signature."""
    run = _command_coroutine(plan, name, doc)
    m = _iok.CommandMethod(plan, run, _command_failed, run.__qualname__)
    m.__name__, m.__doc__, m.__module__ = name, doc, __name__
    # What inspect reads of a function (its duck type for compiled ones).
    m.__code__, m.__defaults__, m.__kwdefaults__, m.__annotations__ = run.__code__, None, None, {}
    m.__wrapped__ = fn  # inspect.signature shows the command's arguments
    return m


def _coroutine_method(fn):
    doc = "``await r.%s(...)``.  %s" % (fn.__name__, fn.__doc__)
    names = fn.__code__.co_names
    if "_cmd" in names and "_cmd_blocking" not in names and "execute" not in names:
        plan = _pass_through_plan(fn) or functools.partial(fn, _PLAN)
        return _command_method(plan, fn.__name__, doc, fn)

    @functools.wraps(fn)
    async def method(self, *args, **kwargs):
        return await fn(self, *args, **kwargs)
    method.__doc__ = doc
    return method


for _n, _f in list(vars(Commands).items()):
    if not _n.startswith("_") and callable(_f) and _n not in AsyncClient.__dict__ \
            and _n != "execute_command":
        setattr(AsyncClient, _n, _coroutine_method(_f))
del _n, _f


# ------------------------------------------------- redis-py's spellings

class Redis(Client):
    """redis.Redis's spelling: connects at the first command (wait=None),
    pubsub() does not ignore subscribe messages by default."""

    __slots__ = ()
    _lazy_default = True

    def __init__(self, *args, **kw):
        Client.__init__(self, *args, **kw)
        self._ignore_default = False

    @classmethod
    def from_url(cls, url, **kw):
        """Redis.from_url("redis://[[user]:password@]host:port/db", ...)."""
        return cls(url, **kw)


StrictRedis = Redis


class AsyncRedis(AsyncClient):
    """redis.asyncio.Redis's spelling (iok.redis.asyncio.Redis)."""

    __slots__ = ()

    def __init__(self, *args, **kw):
        AsyncClient.__init__(self, *args, **kw)
        self._ignore_default = False

    @classmethod
    def from_url(cls, url, **kw):
        return cls(url, **kw)


def from_url(url, **kw):
    """A Redis (sync) for url, as redis.from_url."""
    return Redis(url, **kw)


def _asyncio_module():
    import sys
    import types
    m = types.ModuleType(__name__ + ".asyncio", "iok.redis's redis.asyncio surface: "
                         "``import iok.redis.asyncio as redis`` in place of "
                         "``import redis.asyncio as redis``.")
    m.Redis = m.StrictRedis = AsyncRedis
    m.from_url = AsyncRedis.from_url
    m.PubSub = AsyncPubSub
    m.Pipeline = AsyncPipeline
    m.Lock = AsyncLock
    for n in ("RedisError", "ConnectionError", "TimeoutError", "AuthenticationError",
              "BusyLoadingError", "DataError", "InvalidResponse", "PubSubError", "ReadOnlyError",
              "ResponseError", "WatchError", "NoScriptError", "ExecAbortError", "LockError",
              "LockNotOwnedError"):
        setattr(m, n, globals()[n])
    sys.modules[m.__name__] = m
    return m


asyncio = _asyncio_module()
