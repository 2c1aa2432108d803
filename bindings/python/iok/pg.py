"""iok.pg - a PostgreSQL client whose connection lives on iok's kernel thread.

Every query of a client goes, pipelined, over ONE server connection (per
pool slot) that the kernel thread owns: 1,000 concurrent coroutines make
one backend process, not 1,000.  Each query is self-contained on the wire
(extended protocol, statements prepared once per connection), so a failing
query fails alone.  Parameters are encoded and replies decoded in C.

asyncio (uvloop works too), with asyncpg's method names::

    db = iok.pg.AsyncClient("postgresql://user:pw@127.0.0.1:5432/app")
    await db.fetchval("SELECT $1::int + 1", 41)              # 42
    rows = await asyncio.gather(*(db.fetchrow("SELECT $1::int AS n", i)
                                  for i in range(1000)))       # one connection
    rows[0]["n"], dict(rows[0])
    await db.execute("CREATE TABLE t (k int PRIMARY KEY, v text)")  # 'CREATE TABLE'
    await db.executemany("INSERT INTO t VALUES ($1, $2)", [(1, "a"), (2, "b")])

    async with db.transaction():          # pinned connection, BEGIN .. COMMIT
        await db.execute("UPDATE t SET v = $1 WHERE k = $2", "c", 1)
        # an exception here rolls back instead

    async with db.listen("events") as events:   # LISTEN on the same connection
        async for n in events:            # Notification, or a Reconnected marker
            print(n.channel, n.payload)

Sync: ``iok.pg.Client`` has the same methods, blocking.

Types (both directions): None/NULL, bool, int (int2/int4/int8), float
(float4/8), Decimal (numeric, NaN and +-Infinity too), str (text,
varchar, name, char), bytes (bytea), date, time, datetime (timestamp:
naive; timestamptz: aware, UTC), timedelta (interval; a month counts 30
days, as asyncpg), uuid.UUID, json/jsonb (str, or json_loads(text) with
AsyncClient(json_loads=json.loads)), and arrays of these (nested lists,
None for NULL).  Other types come back as str.  Parameters: bool and bytes
go in binary with their type; the rest go as text and the server infers
their type from the statement (write ``$1::int`` where it cannot); a dict
is sent as JSON text, ``Json(value)`` sends any value as JSON, a list or
tuple is an array.

Errors: the server's errors raise PostgresError subclasses chosen by
SQLSTATE (asyncpg's names: UniqueViolationError under
IntegrityConstraintViolationError...; short aliases such as
UniqueViolation under IntegrityError), with .sqlstate, .message, .detail,
.hint.  A query that outlived the client's timeout raises QueryTimeoutError
(a TimeoutError), one whose connection dropped ConnectionLostError (a
ConnectionError), refused credentials InvalidPasswordError (also an
iok.PeerAuthError; never showing the password).

Timeouts are milliseconds, as everywhere in iok.
"""

import asyncio
import contextvars
import json as _json
import threading
import urllib.parse

from . import _aio, _iok
from ._iok import Reply as _Reply
from . import Closed, Db, Error, Sub
from . import ConnectionReset, PeerAuthError, ProtocolError as _IokProtocolError, Timeout
from . import ConnectionRefused, _ERRORS

__all__ = [
    "AsyncClient", "Client", "Record", "Json", "Notification", "Reconnected", "Listener",
    "AsyncListener", "Transaction", "AsyncTransaction",
    "PostgresError", "InterfaceError", "QueryTimeoutError", "ConnectionLostError",
    "CannotConnectError", "TargetSessionAttrsError", "ProtocolError", "error_class",
]

Record = _iok.PgRecord


class Json:
    """A parameter sent as JSON text: Json([1, 2]) (a bare list would be
    an array)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __repr__(self):
        return "Json(%r)" % (self.value,)


# ----------------------------------------------------------------- errors

_FIELDS = ("severity", "sqlstate", "message", "detail", "hint", "position", "where",
           "schema_name", "table_name", "column_name", "constraint_name")


class PostgresError(Error):
    """An error the server reported (ErrorResponse).  Attributes: sqlstate
    (5 characters), message, detail, hint, severity, position, where,
    schema_name, table_name, column_name, constraint_name (None when the
    server did not send them).  str() is the server's message."""

    sqlstate = None

    def __init__(self, message="", **fields):
        Exception.__init__(self, message)
        self.errno = type(self).errno
        self.message = message
        for f in _FIELDS:
            if f != "message" and (f in fields or f not in type(self).__dict__):
                setattr(self, f, fields.get(f, getattr(type(self), f, None)))

    def __str__(self):
        return self.message

    def __reduce__(self):
        return (_rebuild, (type(self), self.as_dict()))

    def as_dict(self):
        """The server's fields, as a dict."""
        return {f: getattr(self, f, None) for f in _FIELDS}


for _f in _FIELDS:
    if _f not in ("sqlstate", "message"):
        setattr(PostgresError, _f, None)


def _rebuild(cls, fields):
    fields = dict(fields)
    return cls(fields.pop("message", ""), **fields)


_BY_STATE = {}   # "23505" -> class
_BY_CLASS = {}   # "23" -> class


def _err(name, base, state, doc=None, extra=()):
    cls = type(name, (base,) + tuple(extra), {"__module__": __name__, "__doc__": doc or name})
    if state is not None:
        cls.sqlstate = state
        if state.endswith("000"):
            _BY_CLASS[state[:2]] = cls
        else:
            _BY_STATE[state] = cls
    globals()[name] = cls
    __all__.append(name)
    return cls


# SQLSTATE classes and the commonest conditions, asyncpg's names.
_err("PostgresWarning", PostgresError, "01000")
_err("PostgresConnectionError", PostgresError, "08000")
_err("FeatureNotSupportedError", PostgresError, "0A000")
_err("CardinalityViolationError", PostgresError, "21000")
_err("DataError", PostgresError, "22000")
_err("StringDataRightTruncationError", DataError, "22001")  # noqa: F821
_err("NumericValueOutOfRangeError", DataError, "22003")  # noqa: F821
_err("InvalidDatetimeFormatError", DataError, "22007")  # noqa: F821
_err("DatetimeFieldOverflowError", DataError, "22008")  # noqa: F821
_err("DivisionByZeroError", DataError, "22012")  # noqa: F821
_err("InvalidTextRepresentationError", DataError, "22P02")  # noqa: F821
_err("IntegrityConstraintViolationError", PostgresError, "23000")
_err("RestrictViolationError", IntegrityConstraintViolationError, "23001")  # noqa: F821
_err("NotNullViolationError", IntegrityConstraintViolationError, "23502")  # noqa: F821
_err("ForeignKeyViolationError", IntegrityConstraintViolationError, "23503")  # noqa: F821
_err("UniqueViolationError", IntegrityConstraintViolationError, "23505")  # noqa: F821
_err("CheckViolationError", IntegrityConstraintViolationError, "23514")  # noqa: F821
_err("ExclusionViolationError", IntegrityConstraintViolationError, "23P01")  # noqa: F821
_err("InvalidTransactionStateError", PostgresError, "25000")
_err("ActiveSQLTransactionError", InvalidTransactionStateError, "25001")  # noqa: F821
_err("NoActiveSQLTransactionError", InvalidTransactionStateError, "25P01")  # noqa: F821
_err("InFailedSQLTransactionError", InvalidTransactionStateError, "25P02")  # noqa: F821
_err("InvalidAuthorizationSpecificationError", PostgresError, "28000",
     "The server refused the connection's credentials (also an iok.PeerAuthError).",
     extra=(PeerAuthError,))
_err("InvalidPasswordError", InvalidAuthorizationSpecificationError, "28P01")  # noqa: F821
_err("TransactionRollbackError", PostgresError, "40000")
_err("SerializationError", TransactionRollbackError, "40001")  # noqa: F821
_err("DeadlockDetectedError", TransactionRollbackError, "40P01")  # noqa: F821
_err("SyntaxOrAccessError", PostgresError, "42000")
_err("InsufficientPrivilegeError", SyntaxOrAccessError, "42501")  # noqa: F821
_err("PostgresSyntaxError", SyntaxOrAccessError, "42601")  # noqa: F821
_err("UndefinedColumnError", SyntaxOrAccessError, "42703")  # noqa: F821
_err("UndefinedFunctionError", SyntaxOrAccessError, "42883")  # noqa: F821
_err("UndefinedTableError", SyntaxOrAccessError, "42P01")  # noqa: F821
_err("DuplicateTableError", SyntaxOrAccessError, "42P07")  # noqa: F821
_err("InsufficientResourcesError", PostgresError, "53000")
_err("ProgramLimitExceededError", PostgresError, "54000")
_err("ObjectNotInPrerequisiteStateError", PostgresError, "55000")
_err("LockNotAvailableError", ObjectNotInPrerequisiteStateError, "55P03")  # noqa: F821
_err("OperatorInterventionError", PostgresError, "57000")
_err("QueryCanceledError", OperatorInterventionError, "57014",  # noqa: F821
     "The query was cancelled (statement_timeout, a cancel request).")
_err("AdminShutdownError", OperatorInterventionError, "57P01")  # noqa: F821
_err("CrashShutdownError", OperatorInterventionError, "57P02")  # noqa: F821
_err("CannotConnectNowError", OperatorInterventionError, "57P03")  # noqa: F821
_err("PostgresSystemError", PostgresError, "58000")
_err("PLPGSQLError", PostgresError, "P0000")
_err("RaiseError", PLPGSQLError, "P0001")  # noqa: F821
_err("InternalServerError", PostgresError, "XX000")

# The short names (psycopg-like) some code uses.
IntegrityError = IntegrityConstraintViolationError  # noqa: F821
UniqueViolation = UniqueViolationError  # noqa: F821
ForeignKeyViolation = ForeignKeyViolationError  # noqa: F821
NotNullViolation = NotNullViolationError  # noqa: F821
CheckViolation = CheckViolationError  # noqa: F821
DivisionByZero = DivisionByZeroError  # noqa: F821
UndefinedTable = UndefinedTableError  # noqa: F821
SerializationFailure = SerializationError  # noqa: F821
DeadlockDetected = DeadlockDetectedError  # noqa: F821
QueryCanceled = QueryCanceledError  # noqa: F821
__all__ += ["IntegrityError", "UniqueViolation", "ForeignKeyViolation", "NotNullViolation",
            "CheckViolation", "DivisionByZero", "UndefinedTable", "SerializationFailure",
            "DeadlockDetected", "QueryCanceled"]


def error_class(sqlstate):
    """The PostgresError subclass for a SQLSTATE: the condition's own, else
    its class's (first two characters), else PostgresError."""
    return _BY_STATE.get(sqlstate) or _BY_CLASS.get((sqlstate or "")[:2]) or PostgresError


def _server_error(fields):
    fields = dict(fields)
    return error_class(fields.get("sqlstate"))(fields.pop("message", ""), **fields)


class InterfaceError(Error):
    """Misuse of the client (e.g. a transaction used after it ended)."""

    def __init__(self, message):
        Exception.__init__(self, message)
        self.errno = 0
        self.message = message


class QueryTimeoutError(Timeout, TimeoutError):
    """The query got no reply within the client's timeout (it is then
    cancelled)."""


class ConnectionLostError(ConnectionReset, ConnectionError):
    """The connection dropped while the query was in flight (it may or may
    not have run).  errno tells how (IOK_ECONNRESET, IOK_ECONNSHUT...)."""


class CannotConnectError(ConnectionRefused, ConnectionRefusedError):
    """The server could not be reached."""


class TargetSessionAttrsError(CannotConnectError):
    """No server of the URL fits its ?target_session_attrs= (e.g.
    read-write, and every host is a standby or read-only).  The client
    keeps trying in the background: a server that comes to fit (a standby
    promoted) is used without a new client."""


class ProtocolError(_IokProtocolError):
    """A malformed reply (its request fails; the connection is dropped)."""


_KERNEL = {
    _iok.IOK_ETIMEDOUT: QueryTimeoutError,
    _iok.IOK_ECONNRESET: ConnectionLostError,
    _iok.IOK_ECONNSHUT: ConnectionLostError,
    _iok.IOK_ECONNABORTED: ConnectionLostError,
    _iok.IOK_ECONNREFUSED: CannotConnectError,
    _iok.IOK_EUNREACHABLE: CannotConnectError,
    _iok.IOK_EPROTO: ProtocolError,
    _iok.IOK_ESTATE: TargetSessionAttrsError,  # refused for its role
}


def _kernel_error(code):
    if code == _iok.IOK_EPEERAUTH:
        return InvalidPasswordError(  # noqa: F821
            "the server refused the credentials (wrong password, or no pg_hba.conf entry "
            "allows this user)")
    cls = _KERNEL.get(code)
    if cls is not None:
        return cls(code)
    return _ERRORS.get(code, Error)(code)


_iok._pg_setup(PostgresError, _server_error, _kernel_error, Json, _json.dumps,
               threading.main_thread().ident)


# ------------------------------------------------------------ URLs, socket

def _redact(url):
    """url without its password (for repr and messages).  The host part is
    kept as written: it may list several hosts (h1:p1,h2:p2)."""
    try:
        p = urllib.parse.urlsplit(url)
    except ValueError:
        return "<invalid url>"
    userinfo, at, hosts = p.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    netloc = "%s@%s" % (userinfo.split(":", 1)[0], hosts)
    return urllib.parse.urlunsplit((p.scheme, netloc, p.path, p.query, p.fragment))


class _PgSocket(Db):
    """The pipelined-db socket of a client; asyncio's reader decodes
    replies in C."""

    __slots__ = ("_loads",)
    _log_name = "iok.pg"  # in log records (logger "iok", see iok/_watch.py)

    def _dispatch(self, pending):
        return _iok.pg_dispatch(self.id, pending, self._loads)


_tx_var = contextvars.ContextVar("iok_pg_transaction", default=None)


class _Base:
    __slots__ = ("url", "timeout", "_sock", "_dialer", "_loads", "_listeners", "__weakref__")

    def __init__(self, url, *, pool_size=1, timeout=None, json_loads=None, wait=True, **options):
        self._sock = None
        self._listeners = []
        self.url = _redact(url)
        self.timeout = timeout
        self._loads = json_loads
        sock = _PgSocket(**options)
        sock._loads = json_loads
        try:
            if pool_size != 1:
                sock.setopt("pool-size", int(pool_size))
            if timeout is not None:
                sock.setopt("req:timeout", timeout)
            try:
                self._dialer = sock.dial(url, block=wait)
            except Error as e:
                if isinstance(e, (PostgresError, InterfaceError)):
                    raise
                # Our classes (not iok's bare ones), and nothing of the URL:
                # it may hold the password.
                err = _kernel_error(e.errno)
                if e.errno == _iok.IOK_ESTATE:
                    # Which server did not fit, and why (no secrets).
                    why = sock.getopt("last-error", "string")
                    err = TargetSessionAttrsError(e.errno, why or err.message)
                raise err from None
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
        return self._sock.stats

    def _session(self):
        tx = _tx_var.get()
        if tx is not None and tx._client is self and tx._session:
            return tx._session
        return 0

    def _close(self):
        for lst in self._listeners:
            lst._close_sub()
        self._listeners = []
        if self._sock is not None:
            self._sock.close()


def _first_row(res):
    rows = res[0]
    return rows[0] if rows else None


def _raise_first(results):
    """results: [(value, failed)]; raise the first real failure (one that is
    not just 'the transaction is aborted' fallout of an earlier one)."""
    first = None
    for v, failed in results:
        if failed:
            if first is None or (isinstance(first, InFailedSQLTransactionError)  # noqa: F821
                                 and not isinstance(v, InFailedSQLTransactionError)):  # noqa: F821
                first = v
    if first is not None:
        raise first


def _many_plan(sql, args_seq, in_tx):
    """The requests executemany sends: (sql, args, simple)."""
    reqs = [(sql, tuple(a), False) for a in args_seq]
    if not reqs:
        return reqs
    if not in_tx:  # atomic, as asyncpg's: the whole batch or nothing
        reqs = [("BEGIN", None, True)] + reqs + [("COMMIT", None, True)]
    return reqs


# ---------------------------------------------------------------- asyncio

class _AsyncQueries:
    """fetch/fetchrow/fetchval/execute/executemany, on _run/_run_many."""

    __slots__ = ()

    async def fetch(self, query, *args):
        """Rows (list of Record) of query with $1.. set to args."""
        return (await self._run(query, args, False))[0]

    async def fetchrow(self, query, *args):
        """The first row (Record), or None."""
        return _first_row(await self._run(query, args, False))

    async def fetchval(self, query, *args, column=0):
        """One value of the first row (column: index or name), or None if
        there is no row."""
        row = _first_row(await self._run(query, args, False))
        return None if row is None else row[column]

    async def execute(self, query, *args):
        """Run query; returns its command tag ("INSERT 0 1").  Without
        args it runs with the simple protocol: several statements
        separated by ';' work (the last one's tag is returned)."""
        return (await self._run(query, args, not args))[1]

    async def executemany(self, command, args):
        """Run command once per argument tuple in args, pipelined (all sent,
        one round trip), atomically: inside a transaction of its own
        (BEGIN .. COMMIT), or the current one.  Raises the first error;
        then nothing of the batch is kept."""
        sess, own = self._many_session()
        reqs = _many_plan(command, args, not own)
        if not reqs:
            if own:
                _iok.session_close(self._client._sock.id, sess)
            return None
        _raise_first(await self._run_many(reqs, sess, own))
        return None


class AsyncClient(_AsyncQueries, _Base):
    """AsyncClient(url, *, pool_size=1, timeout=None, json_loads=None,
    wait=True, **socket_options)

    url: postgresql://user:password@host:port/database (also postgres://,
    ?application_name=, ?options=, ?host=/unix/socket/dir), as libpq reads
    it; several hosts (host1:port1,host2:port2) with
    ?target_session_attrs=any|read-write|read-only|primary|standby|
    prefer-standby use the servers that fit (TargetSessionAttrsError if
    none does; a server that comes to fit later is taken).  pool_size: server connections (queries spread over them; 1 is
    usually plenty: they pipeline).  timeout: ms per query, from the call
    to its reply (QueryTimeoutError; the query is cancelled on the
    server); None: no limit.  json_loads: decodes json/jsonb values (else
    they come as str).  wait: connect in the constructor (GIL released)
    and raise InvalidPasswordError, CannotConnectError...; False: connect
    in the background, queries wait for the connection.

    Any number of coroutines may use one client at once; each gets its
    own reply.  Cancelling an awaiting task abandons its query's reply
    (the query itself may already have run).
    """

    __slots__ = ()

    @property
    def _client(self):
        return self

    def _run(self, query, args, simple):
        sock = self._sock
        return _aio.call(sock, _iok.pg_request, sock.id, query, args, self._session(), 0, simple)

    def _many_session(self):
        s = self._session()
        return (s, False) if s else (_iok.session_open(self._sock.id), True)

    async def _run_many(self, reqs, session, close_session):
        """Send every request, then await each: [(value, failed)]."""
        sock = self._sock
        aio = _aio.state(sock)
        loop, pending = aio.loop, aio.pending
        sent = []
        try:
            for q, a, simple in reqs:
                tok = _iok.pg_request(sock.id, q, a, session, 0, simple)
                while not tok:
                    await aio.writable(sock)
                    tok = _iok.pg_request(sock.id, q, a, session, 0, simple)
                fut = _Reply(loop)
                pending[tok] = fut
                sent.append((tok, fut))
        except BaseException:
            _aio.forget(sock, aio, sent)
            if close_session:  # the kernel rolls back what was begun
                _session_close(sock, session)
            raise
        if close_session:
            _session_close(sock, session)
        if not aio.reading:
            aio.start_reading(sock)
        out = []
        try:
            for tok, fut in sent:
                try:
                    out.append((await fut, False))
                except Error as e:
                    out.append((e, True))
        except BaseException:
            _aio.forget(sock, aio, sent[len(out):])
            raise
        return out

    def transaction(self, isolation=None, readonly=False, deferrable=False):
        """``async with db.transaction():`` BEGIN on a connection pinned for
        this task (the client's methods called from it, and the object
        returned, run inside), COMMIT at the end, ROLLBACK if the block
        raises.  Nested: a savepoint.  Other tasks' queries are not in it
        (they run on the client's other connections, or wait: with
        pool_size=1 the pinned connection serves nobody else until the
        end, so keep transactions short)."""
        return AsyncTransaction(self, isolation, readonly, deferrable)

    def listen(self, channel):
        """An AsyncListener: ``async with db.listen("ch") as l: async for n
        in l`` (LISTEN on the client's connection, re-issued after a
        reconnect)."""
        lst = AsyncListener(self, channel)
        self._listeners.append(lst)
        return lst

    async def close(self):
        """Close the connection(s) and listeners; waiting queries raise
        iok.Closed."""
        self._close()

    def terminate(self):
        """close(), without awaiting."""
        self._close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self._close()


def _session_close(sock, session):
    try:
        _iok.session_close(sock.id, session)
    except Closed:
        pass


def _begin_sql(isolation, readonly, deferrable):
    sql = "BEGIN"
    if isolation is not None:
        if isolation not in ("read_committed", "repeatable_read", "serializable", "read_uncommitted"):
            raise ValueError("isolation: read_committed, repeatable_read or serializable")
        sql += " ISOLATION LEVEL " + isolation.replace("_", " ").upper()
    if readonly:
        sql += " READ ONLY"
    if deferrable:
        sql += " DEFERRABLE"
    return sql


class _TxBase:
    __slots__ = ("_client", "_session", "_own", "_token", "_sql", "_savepoint", "_state")

    def __init__(self, client, isolation, readonly, deferrable):
        self._client = client
        self._session = 0
        self._own = False
        self._token = None
        self._sql = _begin_sql(isolation, readonly, deferrable)
        self._savepoint = None
        self._state = "new"

    def _plan_start(self):
        if self._state != "new":
            raise InterfaceError("this transaction was already started")
        outer = _tx_var.get()
        if outer is not None and outer._client is self._client and outer._state == "started":
            self._session = outer._session
            self._savepoint = "iok_sp_%d" % id(self)
            return "SAVEPOINT " + self._savepoint
        self._session = _iok.session_open(self._client._sock.id)
        self._own = True
        return self._sql

    def _end_sql(self, commit):
        if self._savepoint:
            return ("RELEASE SAVEPOINT " if commit else "ROLLBACK TO SAVEPOINT ") + self._savepoint
        return "COMMIT" if commit else "ROLLBACK"

    def _release(self):
        if self._token is not None:
            _tx_var.reset(self._token)
            self._token = None
        if self._own and self._session:
            sess, self._session = self._session, 0
            if not self._client.closed:
                _session_close(self._client._sock, sess)

    def __del__(self):
        # Abandoned without an end: releasing the session makes the kernel
        # roll the transaction back before the connection serves others.
        if self._own and self._session and not self._client.closed:
            try:
                _iok.session_close(self._client._sock.id, self._session)
            except Exception:
                pass


class AsyncTransaction(_AsyncQueries, _TxBase):
    """A transaction (see AsyncClient.transaction); its fetch/execute...
    run inside it, as the client's do from the task that entered it."""

    __slots__ = ()

    def _run(self, query, args, simple):
        if self._state != "started":
            raise InterfaceError("the transaction is not active")
        sock = self._client._sock
        return _aio.call(sock, _iok.pg_request, sock.id, query, args, self._session, 0, simple)

    def _many_session(self):
        if self._state != "started":
            raise InterfaceError("the transaction is not active")
        return self._session, False

    def _run_many(self, reqs, session, close_session):
        return self._client._run_many(reqs, session, close_session)

    async def start(self):
        sql = self._plan_start()
        sock = self._client._sock
        try:
            await _aio.call(sock, _iok.pg_request, sock.id, sql, None, self._session, 0, True)
        except BaseException:
            self._state = "failed"
            self._release()
            raise
        self._state = "started"
        self._token = _tx_var.set(self)

    async def _end(self, commit):
        if self._state != "started":
            raise InterfaceError("the transaction is not active")
        self._state = "committed" if commit else "rolled_back"
        sock = self._client._sock
        try:
            res = await _aio.call(sock, _iok.pg_request, sock.id, self._end_sql(commit), None,
                                  self._session, 0, True)
        finally:
            self._release()
        if commit and res[1] == "ROLLBACK":  # COMMIT of a failed transaction
            raise InFailedSQLTransactionError(  # noqa: F821
                "the transaction was rolled back (a statement in it failed)", sqlstate="25P02")

    async def commit(self):
        await self._end(True)

    async def rollback(self):
        await self._end(False)

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, et, e, tb):
        if self._state != "started":
            self._release()
            return
        if et is None:
            await self._end(True)
        elif et is asyncio.CancelledError or self._client.closed:
            # Abandoned: no await in a cancelled task; the kernel rolls back.
            self._state = "rolled_back"
            self._release()
        else:
            try:
                await self._end(False)
            except Error:
                pass


# ------------------------------------------------------------ notifications

class Notification:
    """A NOTIFY: channel, payload (str), pid (the notifying backend)."""

    __slots__ = ("channel", "payload", "pid")

    def __init__(self, channel, payload, pid):
        self.channel = channel
        self.payload = payload
        self.pid = pid

    def __eq__(self, other):
        return isinstance(other, Notification) and (self.channel, self.payload, self.pid) == \
            (other.channel, other.payload, other.pid)

    __hash__ = None

    def __repr__(self):
        return "Notification(channel=%r, payload=%r, pid=%d)" % (self.channel, self.payload, self.pid)


class Reconnected:
    """Yielded by a listener when its connection was (re)made: LISTEN was
    issued again, but notifications sent while there was no connection
    are lost."""

    __slots__ = ()

    def __repr__(self):
        return "iok.pg.Reconnected()"


def _note(data):
    if data[:1] == b"Z":
        return Reconnected()
    n = _iok.pg_notification(data)
    return None if n is None else Notification(n[1], n[2], n[0])


class _ListenerBase:
    def __init__(self, client, channel):
        if not isinstance(channel, str) or not channel or "\0" in channel:
            raise ValueError("channel: a non-empty str")
        self._client = client
        self.channel = channel
        sub = Sub()
        try:
            _iok.dialer_share(client._dialer.id, sub.id)
            sub.setopt("sub:subscribe", channel.encode())
        except BaseException:
            sub.close()
            raise
        self._sub = sub

    @property
    def closed(self):
        return self._sub.closed

    def _close_sub(self):
        self._sub.close()

    def _unlink(self):
        try:
            self._client._listeners.remove(self)
        except ValueError:
            pass


class AsyncListener(_ListenerBase):
    """LISTEN channel on an AsyncClient's connection (see
    AsyncClient.listen): an async iterator of Notification, and of
    Reconnected markers after the connection was remade."""

    async def ready(self):
        """Return once the server listens (a round trip behind the LISTEN
        on the same connection; with pool_size > 1 best effort)."""
        await self._client.fetchval("SELECT 1")

    def __aiter__(self):
        return self

    async def __anext__(self):
        while True:
            try:
                data = await self._sub.arecv()
            except Closed:
                raise StopAsyncIteration from None
            n = _note(data)
            if n is not None:
                return n

    async def get(self):
        """The next Notification (or Reconnected)."""
        return await self.__anext__()

    async def close(self):
        """UNLISTEN (the subscription ends with the sub socket)."""
        self._unlink()
        self._close_sub()

    async def __aenter__(self):
        await self.ready()
        return self

    async def __aexit__(self, *exc):
        await self.close()


class Listener(_ListenerBase):
    """LISTEN on a sync Client's connection: get(timeout) or iteration."""

    def ready(self):
        self._client.fetchval("SELECT 1")

    def get(self, timeout=None):
        """The next Notification or Reconnected; iok.Timeout after timeout
        ms (None: wait for ever)."""
        while True:
            n = _note(self._sub.recv(timeout if timeout is not None else -1))
            if n is not None:
                return n

    def __iter__(self):
        while True:
            try:
                yield self.get()
            except Closed:
                return

    def close(self):
        self._unlink()
        self._close_sub()

    def __enter__(self):
        self.ready()
        return self

    def __exit__(self, *exc):
        self.close()


# ------------------------------------------------------------------- sync

class _SyncDemux:
    """Hands replies to the threads waiting for them: one thread at a time
    reads (GIL released while it waits for the socket), keeps every reply
    but those of abandoned requests, and wakes the others to look for
    theirs."""

    __slots__ = ("sock", "loads", "cond", "reading", "results", "dropped")

    def __init__(self, sock, loads):
        self.sock = sock
        self.loads = loads
        self.cond = threading.Condition(threading.Lock())
        self.reading = False
        self.results = {}     # token -> (value, failed)
        self.dropped = set()  # tokens given up on, whose reply may still come

    def wait(self, toks):
        cond, results, sock = self.cond, self.results, self.sock
        while True:
            with cond:
                while True:
                    if all(t in results for t in toks):
                        return [results.pop(t) for t in toks]
                    if not self.reading:
                        self.reading = True
                        break
                    cond.wait()
            batch = None
            sock._pin_fds(1)
            try:
                batch = _iok.pg_take(sock.id, 512, self.loads)
                if not batch:
                    _iok.pg_wait(sock.recv_fd, -1)
            finally:
                sock._pin_fds(-1)
                with cond:
                    for tok, v, failed in batch or ():
                        if tok in self.dropped:
                            self.dropped.discard(tok)
                        elif tok:
                            results[tok] = (v, failed)
                    self.reading = False
                    cond.notify_all()

    def abandon(self, toks):
        with self.cond:
            for t in toks:
                if self.results.pop(t, None) is None:
                    self.dropped.add(t)
        for t in toks:
            try:
                self.sock.cancel(t)
            except Error:
                pass


class _SyncQueries:
    __slots__ = ()

    def fetch(self, query, *args):
        return self._run(query, args, False)[0]

    def fetchrow(self, query, *args):
        return _first_row(self._run(query, args, False))

    def fetchval(self, query, *args, column=0):
        row = _first_row(self._run(query, args, False))
        return None if row is None else row[column]

    def execute(self, query, *args):
        return self._run(query, args, not args)[1]

    def executemany(self, command, args):
        sess, own = self._many_session()
        reqs = _many_plan(command, args, not own)
        if not reqs:
            if own:
                _iok.session_close(self._client._sock.id, sess)
            return None
        _raise_first(self._client._run_many(reqs, sess, own))
        return None


class Client(_SyncQueries, _Base):
    """Client(url, *, pool_size=1, timeout=None, json_loads=None, wait=True,
    **socket_options): the blocking client, with AsyncClient's methods.
    Thread-safe: any number of threads share the connection, their
    queries pipelined; executemany pipelines its batch."""

    __slots__ = ("_demux",)

    def __init__(self, url, **kw):
        _Base.__init__(self, url, **kw)
        self._demux = _SyncDemux(self._sock, self._loads)

    @property
    def _client(self):
        return self

    def _many_session(self):
        s = self._session()
        return (s, False) if s else (_iok.session_open(self._sock.id), True)

    def _run(self, query, args, simple, session=None):
        v, failed = self._run_many(((query, args, simple),),
                                   self._session() if session is None else session, False)[0]
        if failed:
            raise v
        return v

    def _run_many(self, reqs, session, close_session):
        """Send every request, then wait for each: [(value, failed)]."""
        sock = self._sock
        if sock is None or sock.closed:
            raise Closed()
        sid = sock.id
        toks = []
        try:
            try:
                for q, a, simple in reqs:
                    tok = _iok.pg_request(sid, q, a, session, 0, simple)
                    while not tok:
                        _iok.pg_wait(sock.send_fd, -1)
                        tok = _iok.pg_request(sid, q, a, session, 0, simple)
                    toks.append(tok)
            finally:
                if close_session:
                    _session_close(sock, session)
            return self._demux.wait(toks)
        except BaseException:
            self._demux.abandon(toks)
            raise

    def transaction(self, isolation=None, readonly=False, deferrable=False):
        """``with db.transaction():`` as AsyncClient.transaction."""
        return Transaction(self, isolation, readonly, deferrable)

    def listen(self, channel):
        lst = Listener(self, channel)
        self._listeners.append(lst)
        return lst

    def close(self):
        self._close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._close()


class Transaction(_SyncQueries, _TxBase):
    """A sync transaction (see Client.transaction)."""

    __slots__ = ()

    def _run(self, query, args, simple):
        if self._state != "started":
            raise InterfaceError("the transaction is not active")
        return self._client._run(query, args, simple, self._session)

    def _many_session(self):
        if self._state != "started":
            raise InterfaceError("the transaction is not active")
        return self._session, False

    def start(self):
        sql = self._plan_start()
        try:
            self._client._run(sql, None, True, self._session)
        except BaseException:
            self._state = "failed"
            self._release()
            raise
        self._state = "started"
        self._token = _tx_var.set(self)

    def _end(self, commit):
        if self._state != "started":
            raise InterfaceError("the transaction is not active")
        self._state = "committed" if commit else "rolled_back"
        try:
            res = self._client._run(self._end_sql(commit), None, True, self._session)
        finally:
            self._release()
        if commit and res[1] == "ROLLBACK":
            raise InFailedSQLTransactionError(  # noqa: F821
                "the transaction was rolled back (a statement in it failed)", sqlstate="25P02")

    def commit(self):
        self._end(True)

    def rollback(self):
        self._end(False)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, et, e, tb):
        if self._state != "started":
            self._release()
            return
        if et is None:
            self._end(True)
        else:
            try:
                self._end(False)
            except Error:
                pass
