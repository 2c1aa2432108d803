"""iok.pg's C decoder and encoder, without iok's transport: replies made by
hand (hostile ones too) and replies a real server sent to a raw-socket
client (pg_fixtures.Wire), in text and in binary format, decoded with
iok._iok.pg_decode; Records; parameters the encoder refuses."""
import datetime
import decimal
import json
import pickle
import struct
import uuid

import pytest

import iok
import iok.pg
from iok import _iok

from pg_fixtures import (TYPES, complete, data_row, error_response, msg, pg, ready,  # noqa: F401
                         row_description, same, wire)

decode = _iok.pg_decode


def reply(cols, rows, tag="SELECT 1", status=b"I"):
    return row_description(cols) + b"".join(data_row(r) for r in rows) + complete(tag) + ready(status)


# ------------------------------------------------------------ from a server

@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
@pytest.mark.parametrize("expr,typ,want", TYPES, ids=["%s:%s" % (t[1], t[0][:30]) for t in TYPES])
def test_server_values(wire, expr, typ, want, binary):
    rows, tag, status = decode(wire.raw("SELECT (%s)::%s AS v" % (expr, typ), binary))
    assert tag == "SELECT 1" and status == "I"
    got = rows[0]["v"]
    assert same(got, want), (got, want)


def test_server_null_and_columns(wire):
    for binary in (False, True):
        rows, tag, _ = decode(wire.raw("SELECT NULL::int AS a, 2 AS b, 'x' AS a "
                                       "FROM generate_series(1, 3)", binary))
        assert tag == "SELECT 3" and len(rows) == 3
        r = rows[0]
        assert r[0] is None and r["b"] == 2 and r[2] == "x"
        assert r["a"] is None  # a repeated name: the first column
        assert list(r.keys()) == ["a", "b", "a"]


def test_server_unknown_type_is_text(wire):
    rows, _, _ = decode(wire.raw("SELECT '10.1.2.0/24'::inet AS v, '(1,2)'::point AS p"))
    assert rows[0]["v"] == "10.1.2.0/24" and rows[0]["p"] == "(1,2)"


def test_server_error(wire):
    with pytest.raises(iok.pg.DivisionByZeroError) as ei:
        decode(wire.raw("SELECT 1/0"))
    e = ei.value
    assert e.sqlstate == "22012" and "division by zero" in str(e)
    assert isinstance(e, iok.pg.DataError) and isinstance(e, iok.pg.PostgresError)
    assert isinstance(e, iok.Error)
    wire.query("CREATE TABLE IF NOT EXISTS codec_u (k int PRIMARY KEY)")
    wire.query("INSERT INTO codec_u VALUES (1) ON CONFLICT DO NOTHING")
    with pytest.raises(iok.pg.UniqueViolation) as ei:
        decode(wire.raw("INSERT INTO codec_u VALUES (1)"))
    e = ei.value
    assert isinstance(e, iok.pg.IntegrityError)
    assert e.sqlstate == "23505" and e.detail == "Key (k)=(1) already exists."
    assert e.constraint_name == "codec_u_pkey" and e.table_name == "codec_u"
    e2 = pickle.loads(pickle.dumps(e))
    assert type(e2) is type(e) and e2.detail == e.detail


def test_json_hook(wire):
    rows, _, _ = decode(wire.raw("SELECT '{\"a\": [1, 2]}'::jsonb AS j, "
                                 "ARRAY['[1]'::json] AS l", True), json.loads)
    assert rows[0]["j"] == {"a": [1, 2]} and rows[0]["l"] == [[1]]
    rows, _, _ = decode(wire.raw("SELECT '{\"a\": [1, 2]}'::json AS j"), json.loads)
    assert rows[0]["j"] == {"a": [1, 2]}


def test_hook_error_fails_the_reply(wire):
    def bad(s):
        raise KeyError("hook says no")
    with pytest.raises(KeyError, match="hook says no"):
        decode(wire.raw("SELECT '1'::json AS j FROM generate_series(1, 3)"), bad)


# ----------------------------------------------------------------- records

def test_record():
    rows, tag, status = decode(reply([("a", 23, 0), ("b", 25, 0)], [[b"1", b"x"], [None, b"y"]],
                                     "SELECT 2", b"T"))
    assert tag == "SELECT 2" and status == "T"
    r = rows[0]
    assert isinstance(r, iok.pg.Record)
    assert r[0] == 1 and r[-1] == "x" and r["b"] == "x" and r[0:2] == (1, "x")
    assert dict(r) == {"a": 1, "b": "x"}
    assert list(r) == [1, "x"] and list(r.values()) == [1, "x"]
    assert list(r.keys()) == ["a", "b"] and list(r.items()) == [("a", 1), ("b", "x")]
    assert len(r) == 2 and "a" in r and "z" not in r
    assert r.get("z") is None and r.get("z", 5) == 5 and r.get("a") == 1
    assert repr(r) == "<Record a=1 b='x'>"
    assert r == (1, "x") and r != rows[1] and hash(r) == hash((1, "x"))
    assert rows[1]["a"] is None
    with pytest.raises(KeyError):
        r["z"]
    with pytest.raises(IndexError):
        r[2]
    with pytest.raises(TypeError):
        r[1.0]
    with pytest.raises(TypeError):
        iok.pg.Record()
    # the description is shared, not copied
    assert list(rows[1].keys()) == ["a", "b"]


def test_empty_results():
    rows, tag, _ = decode(msg(b"n") + complete("INSERT 0 1") + ready())
    assert rows == [] and tag == "INSERT 0 1"
    rows, tag, _ = decode(msg(b"I") + ready())
    assert rows == [] and tag is None
    rows, _, _ = decode(reply([], [[]], "SELECT 1"))
    assert len(rows) == 1 and len(rows[0]) == 0 and repr(rows[0]) == "<Record>"


def test_script_keeps_last_result():
    data = (reply([("a", 23, 0)], [[b"1"]])[:-6] + reply([("b", 25, 0)], [[b"x"], [b"y"]], "SELECT 2"))
    rows, tag, _ = decode(data)
    assert [r["b"] for r in rows] == ["x", "y"] and tag == "SELECT 2"


def test_error_wins_and_reply_is_read_to_the_end():
    data = (row_description([("a", 23, 0)]) + data_row([b"1"]) +
            error_response({"S": "ERROR", "C": "23505", "M": "dup", "D": "Key (k)=(1)", "H": "hint"}) +
            ready(b"E"))
    with pytest.raises(iok.pg.UniqueViolationError) as ei:
        decode(data)
    e = ei.value
    assert (e.sqlstate, e.message, e.detail, e.hint, e.severity) == ("23505", "dup", "Key (k)=(1)",
                                                                      "hint", "ERROR")
    with pytest.raises(iok.pg.PostgresError) as ei:  # unknown SQLSTATE: the base
        decode(error_response({"C": "ZZ999", "M": "odd"}) + ready())
    assert type(ei.value) is iok.pg.PostgresError and ei.value.sqlstate == "ZZ999"
    with pytest.raises(iok.pg.PostgresSyntaxError):  # by class: 42xxx
        decode(error_response({"C": "42601", "M": "syntax"}) + ready())
    with pytest.raises(iok.pg.SyntaxOrAccessError):
        decode(error_response({"C": "42999", "M": "class only"}) + ready())


# ---------------------------------------------------------------- binary

def b_numeric(ndigits, weight, sign, dscale, digits):
    return struct.pack("!hhHh", ndigits, weight, sign, dscale) + b"".join(struct.pack("!h", d) for d in digits)


@pytest.mark.parametrize("oid,data,want", [
    (16, b"\x01", True), (21, struct.pack("!h", -2), -2), (23, struct.pack("!i", -7), -7),
    (20, struct.pack("!q", 2 ** 62), 2 ** 62), (700, struct.pack("!f", 0.25), 0.25),
    (701, struct.pack("!d", -1e-300), -1e-300), (26, struct.pack("!I", 4000000000), 4000000000),
    (1700, b_numeric(2, 0, 0, 4, [12, 3400]), decimal.Decimal("12.3400")),
    (1700, b_numeric(0, 0, 0, 0, []), decimal.Decimal("0")),
    (1700, b_numeric(1, 1, 0x4000, 0, [1]), decimal.Decimal("-10000")),
    (1700, b_numeric(0, 0, 0xD000, 0, []), decimal.Decimal("Infinity")),
    (1082, struct.pack("!i", 0), datetime.date(2000, 1, 1)),
    (1082, struct.pack("!i", 2 ** 31 - 1), datetime.date.max),
    (1082, struct.pack("!i", -2 ** 31), datetime.date.min),
    (1114, struct.pack("!q", -1), datetime.datetime(1999, 12, 31, 23, 59, 59, 999999)),
    (1114, struct.pack("!q", 2 ** 63 - 1), datetime.datetime.max),
    (1184, struct.pack("!q", 86400 * 10 ** 6), datetime.datetime(2000, 1, 2, tzinfo=datetime.timezone.utc)),
    (1083, struct.pack("!q", 86400 * 10 ** 6), datetime.time(23, 59, 59, 999999)),  # 24:00:00
    (1186, struct.pack("!qii", 1, 2, 3), datetime.timedelta(days=92, microseconds=1)),
    (2950, bytes(range(16)), uuid.UUID(bytes=bytes(range(16)))),
    (3802, b"\x01[1]", "[1]"),
    (17, b"\x00\x01", b"\x00\x01"),
    (1007, struct.pack("!iiIii", 1, 1, 23, 2, 1) + struct.pack("!ii", 4, 5) + struct.pack("!i", -1),
     [5, None]),
    (1007, struct.pack("!iiI", 0, 0, 23), []),
    (600, b"\x00" * 16, b"\x00" * 16),  # a type without a codec: bytes
])
def test_binary_values(oid, data, want):
    rows, _, _ = decode(reply([("v", oid, 1)], [[data]]))
    assert same(rows[0]["v"], want)


# ----------------------------------------------------------------- hostile

@pytest.mark.parametrize("oid,data", [
    (16, b""), (21, b"\x00"), (23, b"\x00" * 5), (20, b"\x00" * 7), (700, b"\x00"), (701, b"\x00" * 9),
    (1700, b"\x00" * 7), (1700, b_numeric(2, 0, 0, 0, [1])), (1700, b_numeric(1, 0, 0x1234, 0, [1])),
    (1700, b_numeric(1, 0, 0, 0, [10000])), (1082, b"\x00"), (1114, b"\x00" * 9), (1186, b"\x00" * 15),
    (2950, b"\x00" * 15), (3802, b"\x02{}"), (3802, b""),
    (1007, b"\x00" * 11),
    (1007, struct.pack("!iiI", 7, 0, 23) + b"\x00" * 56),  # too many dimensions
    (1007, struct.pack("!iiIii", 1, 0, 23, 3, 1) + struct.pack("!ii", 4, 1)),  # truncated
    (1007, struct.pack("!iiIii", 1, 0, 23, 1, 1) + struct.pack("!ii", 4, 1) + b"x"),  # trailing
    (1007, struct.pack("!iiIii", 1, 0, 23, 1, 1) + struct.pack("!ii", 99, 1)),  # element too long
    (1007, struct.pack("!iiIii", 1, 0, 23, -1, 1)),  # negative size
    (1007, struct.pack("!iiIii", 2, 0, 23, 65536, 1) + struct.pack("!ii", 65536, 1)),  # huge
])
def test_binary_malformed_values(oid, data):
    with pytest.raises(ValueError, match="malformed PostgreSQL value"):
        decode(reply([("v", oid, 1)], [[data]]))


@pytest.mark.parametrize("oid,text", [
    (16, b"x"), (23, b"12a"), (23, b""), (23, b"9" * 40), (701, b"1.5x"), (1082, b"2024-13-01"),
    (1082, b"2024-01-01 BC"), (1083, b"25:61"), (1114, b"2024-01-01"), (1184, b"2024-01-01 00:00:00"),
    (1186, b"1 fortnight"), (1186, b"@ 1 day"), (17, b"\\x0"), (17, b"\\xzz"), (17, b"\\9"),
    (1007, b"{1,2"), (1007, b"1,2}"), (1007, b"{1,2}x"), (1007, b'{"1}'), (1007, b"{{{{{{{1}}}}}}}"),
])
def test_text_malformed_values(oid, text):
    with pytest.raises((ValueError, decimal.InvalidOperation)):
        decode(reply([("v", oid, 0)], [[text]]))


@pytest.mark.parametrize("data", [
    b"", b"Z", b"Z\x00\x00\x00\x05", ready()[:-1],  # truncated ReadyForQuery
    msg(b"T", b"\x00\x01") + ready(),  # a column promised, none described
    row_description([("a", 23, 0)]) + data_row([b"1", b"2"]) + ready(),  # row wider than columns
    data_row([b"1"]) + ready(),  # a row without description
    row_description([("a", 23, 0)]) + msg(b"D", b"\x00\x01\x00\x00\x00\x09ab") + ready(),  # field past end
    row_description([("a", 23, 0)]) + msg(b"D", b"\x00\x01") + ready(),  # field missing
    b"C\xff\xff\xff\xffSELECT",  # length beyond the buffer
    msg(b"C", b"no terminator") + ready(),
    msg(b"T", b"\xff\xff") + ready(),  # 65535 columns
])
def test_malformed_replies(data):
    with pytest.raises((iok.pg.ProtocolError, ValueError)):
        decode(data)


def test_malformed_fuzz_never_crashes():
    import random
    rnd = random.Random(1234)
    good = (reply([("a", 23, 1), ("b", 1009, 0), ("c", 1700, 1)],
                  [[struct.pack("!i", 1), b'{a,"b c",NULL}', b_numeric(1, 0, 0, 0, [7])]] * 3) +
            error_response({"C": "22012", "M": "x"}) + ready())
    decode(good[:-len(error_response({"C": "22012", "M": "x"}) + ready())] + ready())
    for _ in range(3000):
        b = bytearray(good)
        for _ in range(rnd.randint(1, 4)):
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        b = bytes(b[:rnd.randint(0, len(b))]) if rnd.random() < 0.3 else bytes(b)
        try:
            decode(b)
        except (iok.pg.PostgresError, iok.pg.ProtocolError, ValueError, decimal.InvalidOperation):
            pass


# ---------------------------------------------------------------- encoding

def test_encode_refuses_unknown_types():
    with pytest.raises(TypeError, match="cannot send"):
        _iok.pg_encode("SELECT $1", (object(),))
    with pytest.raises(TypeError):
        _iok.pg_encode("SELECT $1", ([object()],))
    with pytest.raises(ValueError, match="NUL"):
        _iok.pg_encode("SELECT 1\0", ())
    with pytest.raises(ValueError, match="simple protocol"):
        _iok.pg_encode("SELECT 1", (1,), True)
    with pytest.raises(ValueError, match="dimensions"):
        _iok.pg_encode("SELECT $1", ([[[[[[[1]]]]]]],))
    with pytest.raises(ValueError, match="65535"):
        _iok.pg_encode("SELECT 1", (None,) * 65536)


def test_encode_accepts_every_type():
    values = (None, True, 1, 2 ** 70, 1.5, decimal.Decimal("1.10"), "s", b"b", bytearray(b"ba"),
              memoryview(b"mv"), datetime.date(2024, 1, 2), datetime.time(1, 2, 3),
              datetime.datetime(2024, 1, 2, 3, 4, 5), datetime.datetime.now(datetime.timezone.utc),
              datetime.timedelta(days=-1, seconds=5), uuid.uuid4(), {"a": 1}, iok.pg.Json([1]),
              [1, None, [2]], ("a", b"\x00", True, 1.5))
    assert isinstance(_iok.pg_encode("SELECT 1", values), bytes)
