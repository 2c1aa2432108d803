"""Fixtures for the iok.pg tests: one private PostgreSQL cluster per pytest
session (tests/pgcluster.py: initdb in a temp dir, a free 127.0.0.1 port,
SCRAM/md5/password/trust roles), and a tiny independent client speaking
the wire protocol on a raw socket (no iok), to administer the server and to
fetch a reply's raw bytes in text or binary format for the decoder tests.

Without PostgreSQL's binaries the fixture ERRORS (it does not skip): CI
installs postgresql, and a silently skipped suite would hide that.
"""
import os
import socket
import struct
import sys

import pytest

from conftest import DEADLINE

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pgcluster  # noqa: E402


@pytest.fixture(scope="session")
def pg():
    """The session's cluster (started on first use, removed at the end)."""
    c = pgcluster.Cluster()  # RuntimeError if postgresql is not installed
    try:
        c.start()
        # PostgreSQL 15+: only the owner may create in public; the tests'
        # roles make their own tables.
        c.psql("GRANT CREATE ON SCHEMA public TO PUBLIC")
        yield c
    finally:
        c.cleanup()


@pytest.fixture(scope="session")
def pg_standby(pg):
    """A hot standby streaming from the session's cluster (pg_basebackup
    -R), made on first use."""
    sb = pg.make_standby()
    try:
        yield sb
    finally:
        sb.cleanup()


# ------------------------------------------------------------ wire helpers

def msg(t, body=b""):
    """One backend/frontend message: type byte, length, body."""
    return t + struct.pack("!I", len(body) + 4) + body


def cstr(s):
    return (s.encode() if isinstance(s, str) else s) + b"\0"


def row_description(cols):
    """cols: [(name, oid, format)]"""
    body = struct.pack("!H", len(cols))
    for name, oid, fmt in cols:
        body += cstr(name) + struct.pack("!IhIhih", 0, 0, oid, -1, -1, fmt)
    return msg(b"T", body)


def data_row(values):
    """values: [bytes or None]"""
    body = struct.pack("!H", len(values))
    for v in values:
        body += struct.pack("!i", -1) if v is None else struct.pack("!i", len(v)) + v
    return msg(b"D", body)


def complete(tag):
    return msg(b"C", cstr(tag))


def ready(status=b"I"):
    return msg(b"Z", status)


def error_response(fields):
    """fields: {code letter: text}"""
    return msg(b"E", b"".join(k.encode() + cstr(v) for k, v in fields.items()) + b"\0")


class Wire:
    """A blocking PostgreSQL client on a raw socket (trust authentication
    only): what the tests check does not go through iok."""

    def __init__(self, cluster, user="postgres", database="postgres", application_name="pg-wire"):
        self.s = socket.create_connection((cluster.host, cluster.port), timeout=DEADLINE)
        self.buf = b""
        params = b"".join(cstr(k) + cstr(v) for k, v in (
            ("user", user), ("database", database), ("application_name", application_name),
            ("client_encoding", "UTF8"), ("DateStyle", "ISO"), ("TimeZone", "UTC")))
        body = struct.pack("!I", 196608) + params + b"\0"
        self.s.sendall(struct.pack("!I", len(body) + 4) + body)
        while True:
            t, b = self._read()
            if t == b"R" and struct.unpack("!I", b[:4])[0] != 0:
                raise RuntimeError("Wire: only trust authentication is supported")
            if t == b"E":
                raise RuntimeError("Wire: %r" % b)
            if t == b"Z":
                break

    def close(self):
        try:
            self.s.sendall(msg(b"X"))
        except OSError:
            pass
        self.s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _read(self):
        while len(self.buf) < 5 or len(self.buf) < 1 + struct.unpack("!I", self.buf[1:5])[0]:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("Wire: server closed the connection")
            self.buf += chunk
        n = struct.unpack("!I", self.buf[1:5])[0]
        t, body, self.buf = self.buf[:1], self.buf[5:1 + n], self.buf[1 + n:]
        return t, body

    def _reply(self):
        out = b""
        while True:
            t, b = self._read()
            out += msg(t, b)
            if t == b"Z":
                return out

    def raw(self, sql, binary=False):
        """The reply's bytes (up to ReadyForQuery) of sql run with the
        extended protocol, every result column in binary or text."""
        fmt = struct.pack("!Hh", 1, 1 if binary else 0)
        self.s.sendall(msg(b"P", cstr("") + cstr(sql) + struct.pack("!H", 0)) +
                       msg(b"B", cstr("") + cstr("") + struct.pack("!HH", 0, 0) + fmt) +
                       msg(b"D", b"P" + cstr("")) + msg(b"E", cstr("") + struct.pack("!I", 0)) +
                       msg(b"S"))
        return self._reply()

    def query(self, sql):
        """Simple query: rows as lists of str/None (text), or raises
        RuntimeError with the server's message."""
        self.s.sendall(msg(b"Q", cstr(sql)))
        rows, err = [], None
        for t, b in self._split(self._reply()):
            if t == b"D":
                n = struct.unpack("!H", b[:2])[0]
                pos, row = 2, []
                for _ in range(n):
                    ln = struct.unpack("!i", b[pos:pos + 4])[0]
                    pos += 4
                    if ln < 0:
                        row.append(None)
                    else:
                        row.append(b[pos:pos + ln].decode())
                        pos += ln
                rows.append(row)
            elif t == b"E" and err is None:
                err = b
        if err is not None:
            fields = {f[:1]: f[1:].decode() for f in err.split(b"\0") if f}
            raise RuntimeError("%s: %s" % (fields.get(b"C"), fields.get(b"M")))
        return rows

    def value(self, sql):
        rows = self.query(sql)
        return rows[0][0] if rows else None

    @staticmethod
    def _split(data):
        pos = 0
        while pos < len(data):
            n = struct.unpack("!I", data[pos + 1:pos + 5])[0]
            yield data[pos:pos + 1], data[pos + 5:pos + 1 + n]
            pos += 1 + n


@pytest.fixture
def wire(pg):
    with Wire(pg) as w:
        yield w


def backends(wire, application_name):
    """The server's client connections named application_name."""
    return int(wire.value("SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s'"
                          % application_name.replace("'", "''")))


# ---------------------------------------------------------------- the types

import datetime as _dt  # noqa: E402
import decimal as _dec  # noqa: E402
import uuid as _uuid  # noqa: E402

_UTC = _dt.timezone.utc
_U = _uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
D = _dec.Decimal

# (SQL expression of the server's own making, its type, the Python value
# iok.pg must decode it to).  The type is what a parameter is cast to in
# the round-trip tests.
TYPES = [
    ("true", "bool", True),
    ("false", "bool", False),
    ("-32768", "int2", -32768),
    ("2147483647", "int4", 2147483647),
    ("-9223372036854775808", "int8", -9223372036854775808),
    ("1.5", "float4", 1.5),
    ("-2.5e300", "float8", -2.5e300),
    ("'Infinity'", "float8", float("inf")),
    ("'-Infinity'", "float4", float("-inf")),
    ("'NaN'", "float8", float("nan")),
    ("123.4500", "numeric", D("123.4500")),
    ("0", "numeric", D("0")),
    ("-0.000001234", "numeric", D("-0.000001234")),
    ("12345678901234567890.123456789", "numeric", D("12345678901234567890.123456789")),
    ("10000", "numeric", D("10000")),
    ("'NaN'", "numeric", D("NaN")),
    ("'Infinity'", "numeric", D("Infinity")),
    ("'-Infinity'", "numeric", D("-Infinity")),
    ("'héllo wörld ✓'", "text", "héllo wörld ✓"),
    ("''", "text", ""),
    ("'varying'", "varchar", "varying"),
    ("'pg_class'", "name", "pg_class"),
    ("'ab'", "char(4)", "ab  "),
    ("'\\x00ff10'", "bytea", b"\x00\xff\x10"),
    ("''", "bytea", b""),
    ("'2024-02-29'", "date", _dt.date(2024, 2, 29)),
    ("'0001-01-01'", "date", _dt.date(1, 1, 1)),
    ("'9999-12-31'", "date", _dt.date(9999, 12, 31)),
    ("'1970-01-01'", "date", _dt.date(1970, 1, 1)),
    ("'13:45:06.123456'", "time", _dt.time(13, 45, 6, 123456)),
    ("'00:00:00'", "time", _dt.time(0, 0)),
    ("'2024-02-29 13:45:06.5'", "timestamp", _dt.datetime(2024, 2, 29, 13, 45, 6, 500000)),
    ("'1999-12-31 23:59:59.999999'", "timestamp", _dt.datetime(1999, 12, 31, 23, 59, 59, 999999)),
    ("'1900-03-01 00:00:00'", "timestamp", _dt.datetime(1900, 3, 1)),
    ("'2024-02-29 13:45:06.5+05:30'", "timestamptz",
     _dt.datetime(2024, 2, 29, 8, 15, 6, 500000, tzinfo=_UTC)),
    ("'1969-07-20 20:17:40-00'", "timestamptz", _dt.datetime(1969, 7, 20, 20, 17, 40, tzinfo=_UTC)),
    ("'1 year 2 mons 3 days 04:05:06.5'", "interval",
     _dt.timedelta(days=360 + 60 + 3, hours=4, minutes=5, seconds=6.5)),
    ("'-1 days +02:03:00'", "interval", _dt.timedelta(days=-1, hours=2, minutes=3)),
    ("'-00:00:01'", "interval", _dt.timedelta(seconds=-1)),
    ("'0'", "interval", _dt.timedelta(0)),
    ("'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "uuid", _U),
    ("'{\"a\": [1, 2], \"b\": null}'", "json", '{"a": [1, 2], "b": null}'),
    ("'{\"a\": [1, 2], \"b\": null}'", "jsonb", '{"a": [1, 2], "b": null}'),
    ("ARRAY[1, NULL, 3]", "int4[]", [1, None, 3]),
    ("'{{1,2},{3,4}}'", "int8[]", [[1, 2], [3, 4]]),
    ("ARRAY['a b', NULL, 'c\"d\\e', 'NULL', '', '{x}']", "text[]",
     ["a b", None, 'c"d\\e', "NULL", "", "{x}"]),
    ("'{}'", "int4[]", []),
    ("ARRAY[true, false, NULL]", "bool[]", [True, False, None]),
    ("ARRAY[1.5, NULL, 'NaN']", "numeric[]", [D("1.5"), None, D("NaN")]),
    ("ARRAY['\\x01'::bytea, '\\x']", "bytea[]", [b"\x01", b""]),
    ("ARRAY['2024-01-02'::date]", "date[]", [_dt.date(2024, 1, 2)]),
    ("ARRAY['2024-01-02 03:04:05+00'::timestamptz]", "timestamptz[]",
     [_dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=_UTC)]),
    ("ARRAY['1 day'::interval]", "interval[]", [_dt.timedelta(days=1)]),
    ("ARRAY['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid]", "uuid[]", [_U]),
    ("ARRAY['{\"a\": 1}'::jsonb]", "jsonb[]", ['{"a": 1}']),
    ("ARRAY[1.5::float8, 'Infinity']", "float8[]", [1.5, float("inf")]),
    ("'{{{1},{2}},{{3},{4}}}'", "int2[]", [[[1], [2]], [[3], [4]]]),
    ("'[0:1]={5,6}'", "int4[]", [5, 6]),
]


def same(a, b):
    """Equality that also holds for NaN (float and Decimal) and compares
    types (True is not 1, 1.0 is not 1)."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and a != a:
        return b != b
    if isinstance(a, _dec.Decimal) and a.is_nan():
        return b.is_nan()
    if isinstance(a, _dt.datetime):
        return a == b and (a.tzinfo is None) == (b.tzinfo is None)
    return a == b
