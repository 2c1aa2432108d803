/*
 * _pg.c - PostgreSQL for the Python bindings: parameters encoded into a
 * request (iok_pg_query_new / iok_pg_query_param / iok_pg_simple_query)
 * and replies decoded (iok_pg_reader) into Python objects, in C; plus the
 * request, dispatch and blocking-receive calls iok.pg runs on.  Only
 * include/iok.h is used.
 *
 * A reply decodes to (rows, tag, status): rows a list of iok.pg.Record,
 * tag the last command tag ("SELECT 3", "INSERT 0 1"), status the
 * ReadyForQuery byte ('I', 'T', 'E').  An ErrorResponse makes the reply a
 * failure: the exception built by iok.pg's factory from its fields.
 *
 * Types (text and binary, the transport picks per column):
 *   bool int2 int4 int8 oid -> bool/int   float4 float8 -> float
 *   numeric -> Decimal (NaN, +-Infinity)   text varchar name bpchar char -> str
 *   bytea -> bytes   date time timestamp -> date/time/naive datetime
 *   timestamptz -> aware datetime (UTC)   interval -> timedelta (a month
 *   is 30 days, as asyncpg)   uuid -> UUID   json jsonb -> str or the
 *   json_loads hook's value   arrays of these -> (nested) lists, NULL ->
 *   None   anything else -> str (text) or bytes (binary).
 *
 * Parameters: None -> NULL; bool -> binary bool; bytes-like -> binary
 * bytea; everything else as text with type oid 0 (the server infers the
 * type from the statement, as for a literal): int, float, Decimal, str,
 * date, time, datetime (ISO 8601, with the offset when aware), timedelta,
 * UUID, dict (json text), iok.pg.Json(value) (json text of any value),
 * list/tuple (an array literal).
 *
 * Limited API (abi3): the datetime C API is not part of it, so dates and
 * times are made by calling the classes.
 */
#define PY_SSIZE_T_CLEAN
#ifndef Py_LIMITED_API
#define Py_LIMITED_API 0x030B0000
#endif
#include <Python.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "iok.h"
#include "_pg.h"
#include "_reply.h"

/* Defined in _iok.c (declared in _resp.h, which is not ours to include
 * here twice): iok error code -> raised exception. */
PyObject *ikpy_raise_iok(int code);

/* Set by iok.pg (_pg_setup). */
static PyObject     *g_record_type;
static PyObject     *g_error_factory; /* f(fields dict) -> PostgresError instance */
static PyObject     *g_error_base_pg; /* iok.pg.PostgresError */
static PyObject     *g_kernel_error;  /* f(iok code) -> exception instance */
static PyObject     *g_json_type;     /* iok.pg.Json */
static PyObject     *g_json_dumps;    /* json.dumps */
static PyObject     *g_decimal, *g_date, *g_time, *g_datetime, *g_timedelta, *g_utc, *g_uuid;
static PyObject     *g_date_min, *g_date_max, *g_dt_min, *g_dt_max;
static PyObject     *g_str_isoformat, *g_str_value;
static unsigned long g_main_thread;

enum {
	OID_BOOL        = 16,
	OID_BYTEA       = 17,
	OID_CHAR        = 18,
	OID_NAME        = 19,
	OID_INT8        = 20,
	OID_INT2        = 21,
	OID_INT4        = 23,
	OID_TEXT        = 25,
	OID_OID         = 26,
	OID_JSON        = 114,
	OID_FLOAT4      = 700,
	OID_FLOAT8      = 701,
	OID_UNKNOWN     = 705,
	OID_BPCHAR      = 1042,
	OID_VARCHAR     = 1043,
	OID_DATE        = 1082,
	OID_TIME        = 1083,
	OID_TIMESTAMP   = 1114,
	OID_TIMESTAMPTZ = 1184,
	OID_INTERVAL    = 1186,
	OID_NUMERIC     = 1700,
	OID_UUID        = 2950,
	OID_JSONB       = 3802
};

/* array type oid -> element type oid */
static const uint32_t g_arrays[][2] = {
	{ 1000, OID_BOOL },
	{ 1001, OID_BYTEA },
	{ 1002, OID_CHAR },
	{ 1003, OID_NAME },
	{ 1005, OID_INT2 },
	{ 1007, OID_INT4 },
	{ 1009, OID_TEXT },
	{ 1014, OID_BPCHAR },
	{ 1015, OID_VARCHAR },
	{ 1016, OID_INT8 },
	{ 1021, OID_FLOAT4 },
	{ 1022, OID_FLOAT8 },
	{ 1028, OID_OID },
	{ 1115, OID_TIMESTAMP },
	{ 1182, OID_DATE },
	{ 1183, OID_TIME },
	{ 1185, OID_TIMESTAMPTZ },
	{ 1187, OID_INTERVAL },
	{ 1231, OID_NUMERIC },
	{ 2951, OID_UUID },
	{ 199, OID_JSON },
	{ 3807, OID_JSONB },
};

static uint32_t
array_elem(uint32_t oid)
{
	for (size_t i = 0; i < sizeof g_arrays / sizeof g_arrays[0]; i++) {
		if (g_arrays[i][0] == oid) {
			return g_arrays[i][1];
		}
	}
	return 0;
}

static int
ready(void)
{
	if (g_record_type == NULL || g_decimal == NULL) {
		PyErr_SetString(PyExc_RuntimeError, "iok.pg is not set up (import iok.pg)");
		return 0;
	}
	return 1;
}

static PyObject *
bad(const char *what)
{
	PyErr_Format(PyExc_ValueError, "malformed PostgreSQL value: %s", what);
	return NULL;
}

/* ------------------------------------------------------ dates and times */

#define USEC_PER_DAY INT64_C(86400000000)
#define PG_EPOCH_JDN 2451545 /* 2000-01-01 as a Julian day number */

/* Gregorian date <-> Julian day number (valid for all years we accept). */
static int64_t
date_to_jdn(int64_t y, int64_t m, int64_t d)
{
	int64_t a = (14 - m) / 12, yy = y + 4800 - a, mm = m + 12 * a - 3;
	return d + (153 * mm + 2) / 5 + 365 * yy + yy / 4 - yy / 100 + yy / 400 - 32045;
}

static void
jdn_to_date(int64_t j, int *y, int *m, int *d)
{
	int64_t a = j + 32044, b = (4 * a + 3) / 146097, c = a - 146097 * b / 4;
	int64_t dd = (4 * c + 3) / 1461, e = c - 1461 * dd / 4, mm = (5 * e + 2) / 153;
	*d = (int) (e - (153 * mm + 2) / 5 + 1);
	*m = (int) (mm + 3 - 12 * (mm / 10));
	*y = (int) (100 * b + dd - 4800 + mm / 10);
}

static PyObject *
make_date(int64_t days)
{
	int y, m, d;
	if (days == INT32_MAX) {
		return Py_NewRef(g_date_max);
	}
	if (days == INT32_MIN) {
		return Py_NewRef(g_date_min);
	}
	jdn_to_date(days + PG_EPOCH_JDN, &y, &m, &d);
	return PyObject_CallFunction(g_date, "iii", y, m, d);
}

static int64_t
floordiv(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* usec since 2000-01-01 00:00 -> datetime (aware UTC when tz). */
static PyObject *
make_timestamp(int64_t us, int tz)
{
	int64_t days, rest;
	int     y, m, d;
	if (us == INT64_MAX || us == INT64_MIN) { /* +-infinity, as asyncpg */
		if (!tz) {
			return Py_NewRef(us == INT64_MAX ? g_dt_max : g_dt_min);
		}
		return us == INT64_MAX ? PyObject_CallFunction(g_datetime, "iiiiiiiO", 9999, 12, 31,
		                             23, 59, 59, 999999, g_utc)
		                       : PyObject_CallFunction(
		                             g_datetime, "iiiiiiiO", 1, 1, 1, 0, 0, 0, 0, g_utc);
	}
	days = floordiv(us, USEC_PER_DAY);
	rest = us - days * USEC_PER_DAY;
	jdn_to_date(days + PG_EPOCH_JDN, &y, &m, &d);
	return PyObject_CallFunction(g_datetime, "iiiiiiiO", y, m, d, (int) (rest / 3600000000),
	    (int) (rest / 60000000 % 60), (int) (rest / 1000000 % 60), (int) (rest % 1000000),
	    tz ? g_utc : Py_None);
}

static PyObject *
make_time(int64_t us)
{
	if (us < 0 || us > USEC_PER_DAY) {
		return bad("time");
	}
	if (us == USEC_PER_DAY) { /* 24:00:00 is a valid PostgreSQL time */
		us -= 1;
	}
	return PyObject_CallFunction(g_time, "iiii", (int) (us / 3600000000),
	    (int) (us / 60000000 % 60), (int) (us / 1000000 % 60), (int) (us % 1000000));
}

static PyObject *
make_interval(int64_t us, int64_t days, int64_t months)
{
	return PyObject_CallFunction(
	    g_timedelta, "LiL", (long long) (days + months * 30), 0, (long long) us);
}

/* Text parsing helpers over [p, e). */
static int
take_int(const char **pp, const char *e, int64_t *out, int min_digits)
{
	const char *p = *pp;
	int64_t     v = 0;
	int         n = 0;
	while (p < e && *p >= '0' && *p <= '9') {
		if (v > (INT64_MAX - 9) / 10) {
			return -1;
		}
		v = v * 10 + (*p++ - '0');
		n++;
	}
	if (n < min_digits) {
		return -1;
	}
	*pp  = p;
	*out = v;
	return 0;
}

static int
take_char(const char **pp, const char *e, char c)
{
	if (*pp < e && **pp == c) {
		(*pp)++;
		return 0;
	}
	return -1;
}

/* HH:MM:SS[.ffffff] -> usec */
static int
take_clock(const char **pp, const char *e, int64_t *us)
{
	int64_t h, mi, s, frac = 0;
	if (take_int(pp, e, &h, 1) || take_char(pp, e, ':') || take_int(pp, e, &mi, 2) ||
	    take_char(pp, e, ':') || take_int(pp, e, &s, 2)) {
		return -1;
	}
	if (*pp < e && **pp == '.') {
		int n = 0;
		(*pp)++;
		while (*pp < e && **pp >= '0' && **pp <= '9') {
			if (n < 6) {
				frac = frac * 10 + (**pp - '0');
			}
			n++;
			(*pp)++;
		}
		if (n == 0) {
			return -1;
		}
		for (; n < 6; n++) {
			frac *= 10;
		}
	}
	if (h > 2562047788) {
		return -1;
	}
	*us = ((h * 60 + mi) * 60 + s) * 1000000 + frac;
	return 0;
}

/* YYYY-MM-DD -> days since 2000-01-01 */
static int
take_date(const char **pp, const char *e, int64_t *days)
{
	int64_t y, m, d;
	if (take_int(pp, e, &y, 4) || take_char(pp, e, '-') || take_int(pp, e, &m, 2) ||
	    take_char(pp, e, '-') || take_int(pp, e, &d, 2) || m < 1 || m > 12 || d < 1 || d > 31 ||
	    y > 9999999) {
		return -1;
	}
	*days = date_to_jdn(y, m, d) - PG_EPOCH_JDN;
	return 0;
}

static int
is_word(const char *p, const char *e, const char *w)
{
	size_t n = strlen(w);
	return (size_t) (e - p) == n && strncasecmp(p, w, n) == 0;
}

static PyObject *
text_date(const char *p, const char *e)
{
	int64_t days;
	if (is_word(p, e, "infinity")) {
		return Py_NewRef(g_date_max);
	}
	if (is_word(p, e, "-infinity")) {
		return Py_NewRef(g_date_min);
	}
	if (take_date(&p, e, &days) || p != e) {
		return bad("date (only ISO dates of years 1-9999 are supported)");
	}
	return make_date(days);
}

static PyObject *
text_time(const char *p, const char *e)
{
	int64_t us;
	if (take_clock(&p, e, &us) || p != e) {
		return bad("time");
	}
	return make_time(us);
}

static PyObject *
text_timestamp(const char *p, const char *e, int tz)
{
	int64_t days, us;
	if (is_word(p, e, "infinity") || is_word(p, e, "-infinity")) {
		return make_timestamp(*p == '-' ? INT64_MIN : INT64_MAX, tz);
	}
	if (take_date(&p, e, &days) || (take_char(&p, e, ' ') && take_char(&p, e, 'T')) ||
	    take_clock(&p, e, &us)) {
		return bad("timestamp (only ISO timestamps of years 1-9999 are supported)");
	}
	us += days * USEC_PER_DAY;
	if (tz) {
		int64_t sign, h, mi = 0, s = 0;
		if (p >= e || (*p != '+' && *p != '-')) {
			return bad("timestamptz offset");
		}
		sign = *p++ == '-' ? -1 : 1;
		if (take_int(&p, e, &h, 2)) {
			return bad("timestamptz offset");
		}
		if (p < e && *p == ':') {
			p++;
			if (take_int(&p, e, &mi, 2)) {
				return bad("timestamptz offset");
			}
			if (p < e && *p == ':') {
				p++;
				if (take_int(&p, e, &s, 2)) {
					return bad("timestamptz offset");
				}
			}
		}
		us -= sign * ((h * 60 + mi) * 60 + s) * 1000000;
	}
	if (p != e) {
		return bad("timestamp");
	}
	return make_timestamp(us, tz);
}

/* IntervalStyle postgres (the default): "1 year 2 mons -3 days +04:05:06.5" */
static PyObject *
text_interval(const char *p, const char *e)
{
	int64_t months = 0, days = 0, us = 0;
	while (p < e) {
		int64_t sign = 1, v;
		if (*p == ' ') {
			p++;
			continue;
		}
		if (*p == '-' || *p == '+') {
			sign = *p++ == '-' ? -1 : 1;
		}
		const char *q = p;
		while (q < e && *q >= '0' && *q <= '9') {
			q++;
		}
		if (q < e && *q == ':') {
			int64_t t;
			if (take_clock(&p, e, &t)) {
				return bad("interval");
			}
			us += sign * t;
			continue;
		}
		if (take_int(&p, e, &v, 1) || take_char(&p, e, ' ')) {
			return bad("interval");
		}
		q = p;
		while (q < e && *q != ' ') {
			q++;
		}
		if (is_word(p, q, "year") || is_word(p, q, "years")) {
			months += sign * v * 12;
		} else if (is_word(p, q, "mon") || is_word(p, q, "mons")) {
			months += sign * v;
		} else if (is_word(p, q, "day") || is_word(p, q, "days")) {
			days += sign * v;
		} else {
			return bad("interval (only IntervalStyle postgres is supported)");
		}
		p = q;
	}
	return make_interval(us, days, months);
}

/* ---------------------------------------------------------------- values */

static uint32_t
be32(const uint8_t *p)
{
	return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

static uint64_t
be64(const uint8_t *p)
{
	return (uint64_t) be32(p) << 32 | be32(p + 4);
}

static int16_t
be16s(const uint8_t *p)
{
	return (int16_t) (uint16_t) ((unsigned) p[0] << 8 | p[1]);
}

static PyObject *
utf8(const uint8_t *p, Py_ssize_t n)
{
	return PyUnicode_DecodeUTF8((const char *) p, n, "surrogateescape");
}

static PyObject *
call1(PyObject *f, PyObject *arg) /* steals arg */
{
	PyObject *v;
	if (arg == NULL) {
		return NULL;
	}
	v = PyObject_CallFunctionObjArgs(f, arg, NULL);
	Py_DECREF(arg);
	return v;
}

static PyObject *
hex_uuid(const uint8_t *p)
{
	char s[33];
	for (int i = 0; i < 16; i++) {
		snprintf(s + 2 * i, 3, "%02x", p[i]);
	}
	return call1(g_uuid, PyUnicode_FromStringAndSize(s, 32));
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	if (c >= 'A' && c <= 'F') {
		return c - 'A' + 10;
	}
	return -1;
}

/* bytea text output: hex (\x...) or the old escape format. */
static PyObject *
text_bytea(const char *p, const char *e)
{
	PyObject *b;
	char     *o;
	size_t    n = 0;
	if (e - p >= 2 && p[0] == '\\' && p[1] == 'x') {
		if ((e - p) % 2 != 0) {
			return bad("bytea");
		}
		if ((b = PyBytes_FromStringAndSize(NULL, (e - p - 2) / 2)) == NULL) {
			return NULL;
		}
		o = PyBytes_AsString(b);
		for (p += 2; p < e; p += 2) {
			int hi = hexval(p[0]), lo = hexval(p[1]);
			if (hi < 0 || lo < 0) {
				Py_DECREF(b);
				return bad("bytea");
			}
			o[n++] = (char) (hi << 4 | lo);
		}
		return b;
	}
	if ((b = PyBytes_FromStringAndSize(NULL, e - p)) == NULL) {
		return NULL;
	}
	o = PyBytes_AsString(b);
	while (p < e) {
		if (*p != '\\') {
			o[n++] = *p++;
		} else if (e - p >= 2 && p[1] == '\\') {
			o[n++] = '\\';
			p += 2;
		} else if (e - p >= 4 && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
		           p[3] >= '0' && p[3] <= '7') {
			o[n++] = (char) ((p[1] - '0') << 6 | (p[2] - '0') << 3 | (p[3] - '0'));
			p += 4;
		} else {
			Py_DECREF(b);
			return bad("bytea");
		}
	}
	/* Shrink: the limited API has no _PyBytes_Resize; copy. */
	PyObject *out = PyBytes_FromStringAndSize(o, (Py_ssize_t) n);
	Py_DECREF(b);
	return out;
}

static PyObject *
text_int(const char *p, const char *e)
{
	char buf[32];
	if (e - p <= 0 || e - p >= (Py_ssize_t) sizeof buf) {
		return bad("integer");
	}
	memcpy(buf, p, (size_t) (e - p));
	buf[e - p] = 0;
	return PyLong_FromString(buf, NULL, 10);
}

static PyObject *
text_float(const char *p, const char *e)
{
	char   buf[64], *end;
	double d;
	if (e - p <= 0 || e - p >= (Py_ssize_t) sizeof buf) {
		return bad("float");
	}
	memcpy(buf, p, (size_t) (e - p));
	buf[e - p] = 0;
	errno      = 0;
	d          = strtod(buf, &end);
	if (*end != 0) {
		return bad("float");
	}
	return PyFloat_FromDouble(d);
}

static PyObject *
json_value(PyObject *s, PyObject *loads) /* steals s */
{
	if (s == NULL || loads == NULL || loads == Py_None) {
		return s;
	}
	return call1(loads, s);
}

static PyObject *decode_text_array(const char *p, const char *e, uint32_t elem, PyObject *loads);

/* A value in text format. */
static PyObject *
decode_text(uint32_t oid, const uint8_t *d, int32_t len, PyObject *loads)
{
	const char *p = (const char *) d, *e = p + len;
	uint32_t    elem;
	switch (oid) {
	case OID_BOOL:
		if (len == 1 && (*p == 't' || *p == 'f')) {
			return PyBool_FromLong(*p == 't');
		}
		return bad("bool");
	case OID_INT2:
	case OID_INT4:
	case OID_INT8:
	case OID_OID:
		return text_int(p, e);
	case OID_FLOAT4:
	case OID_FLOAT8:
		return text_float(p, e);
	case OID_NUMERIC:
		return call1(g_decimal, utf8(d, len));
	case OID_BYTEA:
		return text_bytea(p, e);
	case OID_DATE:
		return text_date(p, e);
	case OID_TIME:
		return text_time(p, e);
	case OID_TIMESTAMP:
		return text_timestamp(p, e, 0);
	case OID_TIMESTAMPTZ:
		return text_timestamp(p, e, 1);
	case OID_INTERVAL:
		return text_interval(p, e);
	case OID_UUID:
		return call1(g_uuid, utf8(d, len));
	case OID_JSON:
	case OID_JSONB:
		return json_value(utf8(d, len), loads);
	default:
		if ((elem = array_elem(oid)) != 0) {
			return decode_text_array(p, e, elem, loads);
		}
		return utf8(d, len);
	}
}

/* numeric's binary form -> Decimal (through its text: exact). */
static PyObject *
binary_numeric(const uint8_t *d, int32_t len)
{
	int16_t   ndigits, weight, dscale;
	uint16_t  sign;
	char     *s, *o;
	PyObject *v;
	if (len < 8) {
		return bad("numeric");
	}
	ndigits = be16s(d);
	weight  = be16s(d + 2);
	sign    = (uint16_t) be16s(d + 4);
	dscale  = be16s(d + 6);
	if (ndigits < 0 || len != 8 + 2 * ndigits || dscale < 0) {
		return bad("numeric");
	}
	if (sign == 0xC000) {
		return call1(g_decimal, PyUnicode_FromString("NaN"));
	}
	if (sign == 0xD000 || sign == 0xF000) {
		return call1(
		    g_decimal, PyUnicode_FromString(sign == 0xD000 ? "Infinity" : "-Infinity"));
	}
	if (sign != 0 && sign != 0x4000) {
		return bad("numeric sign");
	}
	/* Digits are base 10000; digit i has weight (weight - i).  Write
	 * them all out, then a scientific exponent places the point. */
	if ((s = malloc((size_t) ndigits * 4 + 32)) == NULL) {
		return PyErr_NoMemory();
	}
	o = s;
	if (sign == 0x4000) {
		*o++ = '-';
	}
	if (ndigits == 0) {
		*o++ = '0';
	}
	for (int i = 0; i < ndigits; i++) {
		int16_t g = be16s(d + 8 + 2 * i);
		if (g < 0 || g > 9999) {
			free(s);
			return bad("numeric digit");
		}
		o += sprintf(o, "%04d", g);
	}
	/* value = digits * 10^(4*(weight - ndigits + 1)) */
	o += sprintf(o, "E%d", ndigits == 0 ? 0 : 4 * ((int) weight - ndigits + 1));
	v = call1(g_decimal, PyUnicode_FromStringAndSize(s, o - s));
	free(s);
	if (v != NULL) { /* the scale the server reports (trailing zeros kept) */
		PyObject *q = PyObject_CallMethod(v, "quantize", "N",
		    call1(g_decimal, PyUnicode_FromFormat("1E-%d", (int) dscale)));
		if (q == NULL) { /* too many digits for the context: keep v */
			PyErr_Clear();
		} else {
			Py_DECREF(v);
			v = q;
		}
	}
	return v;
}

static PyObject *decode_binary_array(const uint8_t *d, int32_t len, PyObject *loads);

/* A value in binary format. */
static PyObject *
decode_binary(uint32_t oid, const uint8_t *d, int32_t len, PyObject *loads)
{
	switch (oid) {
	case OID_BOOL:
		return len == 1 ? PyBool_FromLong(d[0] != 0) : bad("bool");
	case OID_INT2:
		return len == 2 ? PyLong_FromLong(be16s(d)) : bad("int2");
	case OID_INT4:
		return len == 4 ? PyLong_FromLong((int32_t) be32(d)) : bad("int4");
	case OID_OID:
		return len == 4 ? PyLong_FromUnsignedLong(be32(d)) : bad("oid");
	case OID_INT8:
		return len == 8 ? PyLong_FromLongLong((int64_t) be64(d)) : bad("int8");
	case OID_FLOAT4: {
		uint32_t u;
		float    f;
		if (len != 4) {
			return bad("float4");
		}
		u = be32(d);
		memcpy(&f, &u, 4);
		return PyFloat_FromDouble(f);
	}
	case OID_FLOAT8: {
		uint64_t u;
		double   f;
		if (len != 8) {
			return bad("float8");
		}
		u = be64(d);
		memcpy(&f, &u, 8);
		return PyFloat_FromDouble(f);
	}
	case OID_NUMERIC:
		return binary_numeric(d, len);
	case OID_BYTEA:
		return PyBytes_FromStringAndSize((const char *) d, len);
	case OID_DATE:
		return len == 4 ? make_date((int32_t) be32(d)) : bad("date");
	case OID_TIME:
		return len == 8 ? make_time((int64_t) be64(d)) : bad("time");
	case OID_TIMESTAMP:
	case OID_TIMESTAMPTZ:
		return len == 8 ? make_timestamp((int64_t) be64(d), oid == OID_TIMESTAMPTZ)
		                : bad("timestamp");
	case OID_INTERVAL:
		if (len != 16) {
			return bad("interval");
		}
		return make_interval(
		    (int64_t) be64(d), (int32_t) be32(d + 8), (int32_t) be32(d + 12));
	case OID_UUID:
		return len == 16 ? hex_uuid(d) : bad("uuid");
	case OID_JSONB:
		if (len < 1 || d[0] != 1) {
			return bad("jsonb version");
		}
		return json_value(utf8(d + 1, len - 1), loads);
	case OID_JSON:
	case OID_TEXT:
	case OID_VARCHAR:
	case OID_NAME:
	case OID_BPCHAR:
	case OID_CHAR:
	case OID_UNKNOWN:
		return oid == OID_JSON ? json_value(utf8(d, len), loads) : utf8(d, len);
	default:
		if (array_elem(oid) != 0) {
			return decode_binary_array(d, len, loads);
		}
		return PyBytes_FromStringAndSize((const char *) d, len);
	}
}

static PyObject *
decode_field(uint32_t oid, int format, const uint8_t *d, int32_t len, PyObject *loads)
{
	if (len < 0) {
		return Py_NewRef(Py_None);
	}
	return format == IOK_PG_BINARY ? decode_binary(oid, d, len, loads)
	                               : decode_text(oid, d, len, loads);
}

/* ---------------------------------------------------------------- arrays */

#define MAXDIM 6

struct barr {
	const uint8_t *p, *e;
	uint32_t       elem;
	int32_t        dims[MAXDIM];
	int            ndim;
	PyObject      *loads;
};

static PyObject *
barr_level(struct barr *a, int level)
{
	PyObject *l = PyList_New(a->dims[level]);
	if (l == NULL) {
		return NULL;
	}
	for (int32_t i = 0; i < a->dims[level]; i++) {
		PyObject *v;
		if (level + 1 < a->ndim) {
			v = barr_level(a, level + 1);
		} else {
			int32_t n;
			if (a->e - a->p < 4) {
				Py_DECREF(l);
				return bad("array (truncated)");
			}
			n = (int32_t) be32(a->p);
			a->p += 4;
			if (n >= 0 && a->e - a->p < n) {
				Py_DECREF(l);
				return bad("array (truncated)");
			}
			v = decode_field(a->elem, IOK_PG_BINARY, a->p, n, a->loads);
			if (n > 0) {
				a->p += n;
			}
		}
		if (v == NULL) {
			Py_DECREF(l);
			return NULL;
		}
		PyList_SetItem(l, i, v);
	}
	return l;
}

static PyObject *
decode_binary_array(const uint8_t *d, int32_t len, PyObject *loads)
{
	struct barr a     = { .p = d + 12, .e = d + len, .loads = loads };
	int64_t     total = 1;
	PyObject   *v;
	if (len < 12) {
		return bad("array header");
	}
	a.ndim = (int32_t) be32(d);
	a.elem = be32(d + 8);
	if (a.ndim == 0) {
		return PyList_New(0);
	}
	if (a.ndim < 0 || a.ndim > MAXDIM || len - 12 < 8 * a.ndim) {
		return bad("array dimensions");
	}
	for (int i = 0; i < a.ndim; i++) {
		a.dims[i] = (int32_t) be32(a.p);
		a.p += 8; /* size, lower bound */
		total *= a.dims[i] < 0 ? -1 : a.dims[i];
		if (a.dims[i] < 0 || total > len) { /* each element takes >= 4 bytes */
			return bad("array dimensions");
		}
	}
	v = barr_level(&a, 0);
	if (v != NULL && a.p != a.e) {
		Py_DECREF(v);
		return bad("array (trailing bytes)");
	}
	return v;
}

struct tarr {
	const char *p, *e;
	uint32_t    elem;
	PyObject   *loads;
	char       *buf; /* unescaped element */
	int         depth;
};

static PyObject *
tarr_list(struct tarr *a)
{
	PyObject *l;
	if (a->p >= a->e || *a->p != '{' || ++a->depth > MAXDIM) {
		return bad("array literal");
	}
	a->p++;
	if ((l = PyList_New(0)) == NULL) {
		return NULL;
	}
	if (a->p < a->e && *a->p == '}') {
		a->p++;
		a->depth--;
		return l;
	}
	for (;;) {
		PyObject *v;
		if (a->p >= a->e) {
			goto malformed;
		}
		if (*a->p == '{') {
			v = tarr_list(a);
		} else if (*a->p == '"') {
			size_t n = 0;
			a->p++;
			while (a->p < a->e && *a->p != '"') {
				if (*a->p == '\\' && a->p + 1 < a->e) {
					a->p++;
				}
				a->buf[n++] = *a->p++;
			}
			if (a->p >= a->e) {
				goto malformed;
			}
			a->p++;
			v = decode_text(a->elem, (const uint8_t *) a->buf, (int32_t) n, a->loads);
		} else {
			const char *s = a->p;
			while (a->p < a->e && *a->p != ',' && *a->p != '}') {
				a->p++;
			}
			if (is_word(s, a->p, "NULL")) {
				v = Py_NewRef(Py_None);
			} else {
				v = decode_text(
				    a->elem, (const uint8_t *) s, (int32_t) (a->p - s), a->loads);
			}
		}
		if (v == NULL || PyList_Append(l, v) < 0) {
			Py_XDECREF(v);
			Py_DECREF(l);
			return NULL;
		}
		Py_DECREF(v);
		if (a->p < a->e && *a->p == ',') {
			a->p++;
			continue;
		}
		if (a->p < a->e && *a->p == '}') {
			a->p++;
			a->depth--;
			return l;
		}
		goto malformed;
	}
malformed:
	Py_DECREF(l);
	return bad("array literal");
}

static PyObject *
decode_text_array(const char *p, const char *e, uint32_t elem, PyObject *loads)
{
	struct tarr a = { .p = p, .e = e, .elem = elem, .loads = loads };
	PyObject   *v;
	if (p < e && *p == '[') { /* explicit bounds "[0:1]={...}": skipped */
		while (a.p < e && *a.p != '=') {
			a.p++;
		}
		a.p++;
	}
	if ((a.buf = malloc((size_t) (e - p) + 1)) == NULL) {
		return PyErr_NoMemory();
	}
	v = tarr_list(&a);
	free(a.buf);
	if (v != NULL && a.p != e) {
		Py_DECREF(v);
		return bad("array literal (trailing bytes)");
	}
	return v;
}

/* ---------------------------------------------------------------- replies */

#define MAXCOLS 1664 /* PostgreSQL's own limit on a row's columns */

struct cols {
	uint32_t  n;
	uint32_t *oid;
	int      *format;
	PyObject *desc; /* (names, {name: index}) */
};

static void
cols_free(struct cols *c)
{
	free(c->oid);
	free(c->format);
	Py_CLEAR(c->desc);
	c->oid    = NULL;
	c->format = NULL;
	c->n      = 0;
}

static int
set_field(PyObject *d, const char *k, const char *v)
{
	PyObject *s;
	int       rv;
	if (v == NULL) {
		return 0;
	}
	if ((s = PyUnicode_DecodeUTF8(v, (Py_ssize_t) strlen(v), "replace")) == NULL) {
		return -1;
	}
	rv = PyDict_SetItemString(d, k, s);
	Py_DECREF(s);
	return rv;
}

/* The server's error as the exception instance iok.pg's factory makes. */
static PyObject *
error_value(const iok_pg_item *it)
{
	PyObject *d = PyDict_New(), *exc;
	if (d == NULL) {
		return NULL;
	}
	if (set_field(d, "severity", it->severity_z) || set_field(d, "sqlstate", it->sqlstate_z) ||
	    set_field(d, "message", it->message_z) || set_field(d, "detail", it->detail_z) ||
	    set_field(d, "hint", it->hint_z) || set_field(d, "position", it->position_z) ||
	    set_field(d, "where", it->where_z) || set_field(d, "schema_name", it->schema_z) ||
	    set_field(d, "table_name", it->table_z) || set_field(d, "column_name", it->column_z) ||
	    set_field(d, "constraint_name", it->constraint_z)) {
		Py_DECREF(d);
		return NULL;
	}
	exc = PyObject_CallFunctionObjArgs(g_error_factory, d, NULL);
	Py_DECREF(d);
	return exc;
}

/* Decodes one whole reply.  Returns (rows, tag, status), or with *failed
 * = 1 the exception instance; NULL only if even that could not be made.
 * A value that cannot be decoded (or a hook that raised) fails the
 * reply with that exception; malformed bytes fail it with
 * iok.pg.ProtocolError. */
static PyObject *
decode_reply(const uint8_t *buf, size_t len, PyObject *loads, int *failed)
{
	iok_pg_reader r;
	iok_pg_item   it;
	struct cols   c    = { 0 };
	PyObject     *rows = PyList_New(0), *tag = NULL, *err = NULL, *rec = NULL;
	uint32_t      seen = 0, fi = 0; /* columns described; next field */
	int           in_row = 0, rv, malformed = 0;
	char          status = 0;
	*failed              = 0;
	if (rows == NULL) {
		return NULL;
	}
	iok_pg_reader_init(&r, buf, len);
	while ((rv = iok_pg_next(&r, &it)) == 1) {
		switch (it.kind) {
		case IOK_PG_COLUMNS: {
			PyObject *names, *map;
			if (in_row || it.count > MAXCOLS) {
				goto bad_reply;
			}
			cols_free(&c);
			Py_CLEAR(rows); /* a script's last result set is the one kept */
			if ((rows = PyList_New(0)) == NULL) {
				goto fail;
			}
			c.n      = it.count;
			seen     = 0;
			c.oid    = calloc(c.n + 1, sizeof *c.oid);
			c.format = calloc(c.n + 1, sizeof *c.format);
			if (c.oid == NULL || c.format == NULL) {
				PyErr_NoMemory();
				goto fail;
			}
			names = PyTuple_New(c.n);
			map   = PyDict_New();
			if (names != NULL && map != NULL) {
				c.desc = PyTuple_Pack(2, names, map);
			}
			Py_XDECREF(names); /* filled below, through c.desc */
			Py_XDECREF(map);
			if (c.desc == NULL) {
				goto fail;
			}
			break;
		}
		case IOK_PG_COLUMN: {
			PyObject *name, *ix;
			if (c.desc == NULL || it.index != seen || seen >= c.n ||
			    it.name_z == NULL) {
				goto bad_reply;
			}
			seen++;
			c.oid[it.index]    = it.oid;
			c.format[it.index] = it.format;
			name               = PyUnicode_DecodeUTF8(
			                  it.name_z, (Py_ssize_t) strlen(it.name_z), "replace");
			ix = PyLong_FromUnsignedLong(it.index);
			if (name == NULL || ix == NULL) {
				Py_XDECREF(name);
				Py_XDECREF(ix);
				goto fail;
			}
			/* A repeated name keeps its first column, as asyncpg. */
			rv = PyDict_Contains(PyTuple_GetItem(c.desc, 1), name);
			if (rv < 0 ||
			    (rv == 0 && PyDict_SetItem(PyTuple_GetItem(c.desc, 1), name, ix) < 0)) {
				Py_DECREF(name);
				Py_DECREF(ix);
				goto fail;
			}
			Py_DECREF(ix);
			PyTuple_SetItem(PyTuple_GetItem(c.desc, 0), it.index, name);
			break;
		}
		case IOK_PG_ROW:
			if (in_row || c.desc == NULL || seen != c.n || it.count != c.n) {
				goto bad_reply;
			}
			in_row = 1;
			fi     = 0;
			if (err == NULL &&
			    (rec = ikpy_record_new(g_record_type, c.desc, c.n)) == NULL) {
				goto fail;
			}
			if (c.n == 0) {
				goto row_done;
			}
			break;
		case IOK_PG_FIELD:
			if (!in_row || it.index != fi) {
				goto bad_reply;
			}
			fi++;
			if (rec != NULL) {
				PyObject *v = decode_field(
				    c.oid[it.index], c.format[it.index], it.data, it.len, loads);
				if (v == NULL) { /* this reply's failure; keep reading */
					Py_CLEAR(rec);
					if ((err = ikpy_take_exception()) == NULL) {
						goto fail;
					}
				} else {
					ikpy_record_set(rec, it.index, v);
				}
			}
			if (fi < c.n) {
				break;
			}
		row_done:
			in_row = 0;
			if (rec != NULL) {
				rv = PyList_Append(rows, rec);
				Py_CLEAR(rec);
				if (rv < 0) {
					goto fail;
				}
			}
			break;
		case IOK_PG_COMPLETE:
			if (in_row || it.tag_z == NULL) {
				goto bad_reply;
			}
			Py_XDECREF(tag);
			if ((tag = PyUnicode_DecodeUTF8(
			         it.tag_z, (Py_ssize_t) strlen(it.tag_z), "replace")) == NULL) {
				goto fail;
			}
			break;
		case IOK_PG_ERROR:
			if (in_row) {
				goto bad_reply;
			}
			/* The server's error wins over a value we could not decode. */
			if (err == NULL || !PyObject_IsInstance(err, g_error_base_pg)) {
				PyObject *e = error_value(&it);
				if (e == NULL) {
					goto fail;
				}
				Py_XDECREF(err);
				err = e;
			}
			break;
		case IOK_PG_READY:
			status = it.status;
			break;
		default: /* NODATA, EMPTY, NOTICE, NOTIFY */
			break;
		}
	}
	if (rv < 0 || in_row || status == 0) { /* a reply ends with ReadyForQuery */
		goto bad_reply;
	}
	cols_free(&c);
	if (err != NULL) {
		Py_DECREF(rows);
		Py_XDECREF(tag);
		*failed = 1;
		return err;
	}
	return Py_BuildValue("(NNC)", rows, tag != NULL ? tag : Py_NewRef(Py_None), status);
bad_reply:
	malformed = 1;
fail:
	cols_free(&c);
	Py_XDECREF(rows);
	Py_XDECREF(tag);
	Py_XDECREF(err);
	Py_XDECREF(rec);
	*failed = 1;
	if (malformed) {
		return PyObject_CallFunction(g_kernel_error, "i", IOK_EPROTO);
	}
	return ikpy_take_exception();
}

/* A received message as (value, failed); frees m.  A kernel-made
 * completion (timeout, lost connection) gives iok.pg's exception for it. */
static PyObject *
reply_value(iok_msg *m, PyObject *loads, int *failed)
{
	int       st = iok_msg_status(m);
	PyObject *v;
	if (st != 0) {
		iok_msg_free(m);
		*failed = 1;
		return PyObject_CallFunction(g_kernel_error, "i", st);
	}
	v = decode_reply(iok_msg_body(m), iok_msg_len(m), loads, failed);
	iok_msg_free(m);
	return v;
}

/* ---------------------------------------------------------------- encoding */

/* Growable byte buffer for text parameters (array literals). */
struct sbuf {
	char  *p;
	size_t n, cap;
};

static int
sb_put(struct sbuf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		char  *p;
		while (cap < b->n + n + 1) {
			cap *= 2;
		}
		if ((p = realloc(b->p, cap)) == NULL) {
			PyErr_NoMemory();
			return -1;
		}
		b->p   = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	return 0;
}

static int
is_instance(PyObject *o, PyObject *cls)
{
	return cls != NULL && PyObject_IsInstance(o, cls) == 1;
}

/* A Python value as text, or NULL with an exception (TypeError for a
 * type with no PostgreSQL form). */
static PyObject *
param_text(PyObject *o)
{
	if (PyLong_Check(o) || PyFloat_Check(o) || is_instance(o, g_decimal) ||
	    is_instance(o, g_uuid)) {
		return PyObject_Str(o);
	}
	if (is_instance(o, g_datetime)) {
		return PyObject_CallMethod(o, "isoformat", NULL);
	}
	if (is_instance(o, g_date) || is_instance(o, g_time)) {
		return PyObject_CallMethodObjArgs(o, g_str_isoformat, NULL);
	}
	if (is_instance(o, g_timedelta)) {
		PyObject *days = PyObject_GetAttrString(o, "days"),
		         *secs = PyObject_GetAttrString(o, "seconds"),
		         *us = PyObject_GetAttrString(o, "microseconds"), *s = NULL;
		if (days != NULL && secs != NULL && us != NULL) {
			s = PyUnicode_FromFormat(
			    "%S days %S.%06ld seconds", days, secs, PyLong_AsLong(us));
		}
		Py_XDECREF(days);
		Py_XDECREF(secs);
		Py_XDECREF(us);
		return s;
	}
	if (PyDict_Check(o)) {
		return PyObject_CallFunctionObjArgs(g_json_dumps, o, NULL);
	}
	if (is_instance(o, g_json_type)) {
		PyObject *v = PyObject_GetAttr(o, g_str_value), *s;
		if (v == NULL) {
			return NULL;
		}
		s = PyObject_CallFunctionObjArgs(g_json_dumps, v, NULL);
		Py_DECREF(v);
		return s;
	}
	PyErr_Format(PyExc_TypeError, "iok.pg: cannot send %R as a query parameter",
	    (PyObject *) Py_TYPE(o));
	return NULL;
}

static int
array_literal(struct sbuf *b, PyObject *seq, int depth)
{
	PyObject  *fast;
	Py_ssize_t n;
	if (depth > MAXDIM) {
		PyErr_SetString(PyExc_ValueError, "iok.pg: arrays have at most 6 dimensions");
		return -1;
	}
	if ((fast = PySequence_Tuple(seq)) == NULL) {
		return -1;
	}
	n = PyTuple_Size(fast);
	if (sb_put(b, "{", 1) < 0) {
		goto fail;
	}
	for (Py_ssize_t i = 0; i < n; i++) {
		PyObject *o = PyTuple_GetItem(fast, i), *s = NULL;
		if (i > 0 && sb_put(b, ",", 1) < 0) {
			goto fail;
		}
		if (o == Py_None) {
			if (sb_put(b, "NULL", 4) < 0) {
				goto fail;
			}
			continue;
		}
		if (PyList_Check(o) || PyTuple_Check(o)) {
			if (array_literal(b, o, depth + 1) < 0) {
				goto fail;
			}
			continue;
		}
		if (PyBool_Check(o)) {
			if (sb_put(b, o == Py_True ? "t" : "f", 1) < 0) {
				goto fail;
			}
			continue;
		}
		if (PyBytes_Check(o) || PyByteArray_Check(o)) {
			Py_buffer v;
			if (PyObject_GetBuffer(o, &v, PyBUF_SIMPLE) < 0 ||
			    sb_put(b, "\"\\\\x", 4) < 0) {
				goto fail;
			}
			for (Py_ssize_t k = 0; k < v.len; k++) {
				char h[3];
				snprintf(h, sizeof h, "%02x", ((unsigned char *) v.buf)[k]);
				if (sb_put(b, h, 2) < 0) {
					PyBuffer_Release(&v);
					goto fail;
				}
			}
			PyBuffer_Release(&v);
			if (sb_put(b, "\"", 1) < 0) {
				goto fail;
			}
			continue;
		}
		s = PyUnicode_Check(o) ? Py_NewRef(o) : param_text(o);
		if (s == NULL) {
			goto fail;
		}
		Py_ssize_t  sl;
		const char *sp = PyUnicode_AsUTF8AndSize(s, &sl);
		if (sp == NULL || sb_put(b, "\"", 1) < 0) {
			Py_DECREF(s);
			goto fail;
		}
		for (Py_ssize_t k = 0; k < sl; k++) {
			if ((sp[k] == '"' || sp[k] == '\\') && sb_put(b, "\\", 1) < 0) {
				Py_DECREF(s);
				goto fail;
			}
			if (sb_put(b, sp + k, 1) < 0) {
				Py_DECREF(s);
				goto fail;
			}
		}
		Py_DECREF(s);
		if (sb_put(b, "\"", 1) < 0) {
			goto fail;
		}
	}
	if (sb_put(b, "}", 1) < 0) {
		goto fail;
	}
	Py_DECREF(fast);
	return 0;
fail:
	Py_DECREF(fast);
	return -1;
}

static int
add_param(iok_msg *m, PyObject *o)
{
	int rv;
	if (o == Py_None) {
		rv = iok_pg_query_param(m, 0, IOK_PG_TEXT, NULL, -1);
	} else if (PyBool_Check(o)) {
		uint8_t v = o == Py_True;
		rv        = iok_pg_query_param(m, OID_BOOL, IOK_PG_BINARY, &v, 1);
	} else if (PyUnicode_Check(o)) {
		Py_ssize_t  n;
		const char *s = PyUnicode_AsUTF8AndSize(o, &n);
		if (s == NULL) {
			return -1;
		}
		if (n > INT32_MAX) {
			PyErr_SetString(PyExc_OverflowError, "iok.pg: parameter too long");
			return -1;
		}
		rv = iok_pg_query_param(m, 0, IOK_PG_TEXT, s, (int32_t) n);
	} else if (PyBytes_Check(o) || PyByteArray_Check(o) || PyMemoryView_Check(o)) {
		Py_buffer v;
		if (PyObject_GetBuffer(o, &v, PyBUF_SIMPLE) < 0) {
			return -1;
		}
		if (v.len > INT32_MAX) {
			PyBuffer_Release(&v);
			PyErr_SetString(PyExc_OverflowError, "iok.pg: parameter too long");
			return -1;
		}
		rv = iok_pg_query_param(m, OID_BYTEA, IOK_PG_BINARY, v.buf, (int32_t) v.len);
		PyBuffer_Release(&v);
	} else if (PyList_Check(o) || PyTuple_Check(o)) {
		struct sbuf b = { 0 };
		if (array_literal(&b, o, 1) < 0) {
			free(b.p);
			return -1;
		}
		rv = iok_pg_query_param(m, 0, IOK_PG_TEXT, b.p, (int32_t) b.n);
		free(b.p);
	} else {
		PyObject   *s = param_text(o);
		Py_ssize_t  n;
		const char *p;
		if (s == NULL) {
			return -1;
		}
		if ((p = PyUnicode_AsUTF8AndSize(s, &n)) == NULL) {
			Py_DECREF(s);
			return -1;
		}
		rv = iok_pg_query_param(m, 0, IOK_PG_TEXT, p, (int32_t) n);
		Py_DECREF(s);
	}
	if (rv != 0) {
		ikpy_raise_iok(rv);
		return -1;
	}
	return 0;
}

/* A request message for sql with the parameters in args (a tuple);
 * simple: the simple protocol (no parameters allowed).  NULL with an
 * exception. */
static iok_msg *
build_request(PyObject *sql, PyObject *args, int simple)
{
	Py_ssize_t  n, na = args == Py_None ? 0 : PyTuple_Size(args);
	const char *s = PyUnicode_AsUTF8AndSize(sql, &n);
	iok_msg    *m = NULL;
	int         rv;
	if (s == NULL || na < 0) {
		return NULL;
	}
	if (simple && na > 0) {
		PyErr_SetString(
		    PyExc_ValueError, "iok.pg: the simple protocol takes no parameters");
		return NULL;
	}
	if (na > 65535) {
		PyErr_SetString(PyExc_ValueError, "iok.pg: at most 65535 parameters");
		return NULL;
	}
	rv = simple ? iok_pg_simple_query(&m, s, (size_t) n) : iok_pg_query_new(&m, s, (size_t) n);
	if (rv != 0) {
		if (rv == IOK_EINVAL) {
			PyErr_SetString(
			    PyExc_ValueError, "iok.pg: the query holds a NUL character");
		} else {
			ikpy_raise_iok(rv);
		}
		return NULL;
	}
	for (Py_ssize_t i = 0; i < na; i++) {
		if (add_param(m, PyTuple_GetItem(args, i)) < 0) {
			iok_msg_free(m);
			return NULL;
		}
	}
	return m;
}

/* ---------------------------------------------------------- module calls */

static int
have_pg(void)
{
	return ready();
}

/* pg_request(socket_id, sql, args, session, flags, simple) -> token, or 0
 * when the send queue is full (wait until writable and try again). */
static PyObject *
mod_pg_request(PyObject *mod, PyObject *const *a, Py_ssize_t na)
{
	unsigned long sid, sess;
	long          flags;
	int           simple, rv;
	uint64_t      tok = 0;
	iok_msg      *m;
	if (na != 6 || !PyUnicode_Check(a[1]) || (a[2] != Py_None && !PyTuple_Check(a[2]))) {
		PyErr_SetString(
		    PyExc_TypeError, "pg_request(socket_id, sql, args, session, flags, simple)");
		return NULL;
	}
	if (!have_pg()) {
		return NULL;
	}
	if (((sid = PyLong_AsUnsignedLong(a[0])) == (unsigned long) -1 && PyErr_Occurred()) ||
	    ((sess = PyLong_AsUnsignedLong(a[3])) == (unsigned long) -1 && PyErr_Occurred()) ||
	    ((flags = PyLong_AsLong(a[4])) == -1 && PyErr_Occurred()) ||
	    (simple = PyObject_IsTrue(a[5])) < 0) {
		return NULL;
	}
	if ((m = build_request(a[1], a[2], simple)) == NULL) {
		return NULL;
	}
	if (sess != 0) {
		iok_msg_set_session(m, (uint32_t) sess);
	}
	rv = iok_request((iok_socket) { (uint32_t) sid }, m, &tok,
	    IOK_FLAG_NONBLOCK | (int) (flags & IOK_FLAG_IDEMPOTENT));
	if (rv == 0) {
		return PyLong_FromUnsignedLongLong(tok);
	}
	iok_msg_free(m);
	if (rv == IOK_EAGAIN) {
		return PyLong_FromLong(0);
	}
	return ikpy_raise_iok(rv);
}

/* pg_dispatch(socket_id, pending, json_loads) -> n: every waiting reply
 * completes pending.pop(token) (a Reply or a future: _reply.h) with its
 * (rows, tag, status) or its exception; unknown tokens (cancelled
 * requests) are dropped. */
static PyObject *
mod_pg_dispatch(PyObject *mod, PyObject *const *a, Py_ssize_t na)
{
	unsigned long sid;
	long          n     = 0;
	int           rv    = 0;
	int           eager = -2;
	if (na != 3 || !PyDict_Check(a[1])) {
		PyErr_SetString(PyExc_TypeError, "pg_dispatch(socket_id, pending, json_loads)");
		return NULL;
	}
	if (!have_pg() ||
	    ((sid = PyLong_AsUnsignedLong(a[0])) == (unsigned long) -1 && PyErr_Occurred())) {
		return NULL;
	}
	while (n < IKPY_DISPATCH_MAX) {
		iok_msg  *m;
		PyObject *w, *val;
		int       failed = 0, err;
		if ((rv = iok_recvmsg((iok_socket) { (uint32_t) sid }, &m, IOK_FLAG_NONBLOCK)) !=
		    0) {
			break;
		}
		n++;
		if ((w = ikpy_pending_pop(a[1], iok_msg_token(m), &err)) == NULL) {
			iok_msg_free(m);
			if (err < 0) {
				return NULL;
			}
			continue;
		}
		val = reply_value(m, a[2], &failed);
		err = ikpy_pending_settle(w, val, failed, &eager);
		Py_XDECREF(val);
		if (err < 0) {
			return NULL; /* KeyboardInterrupt in a woken task */
		}
	}
	if (rv != IOK_EAGAIN && n == 0) {
		return ikpy_raise_iok(rv);
	}
	return PyLong_FromLong(n);
}

/* Wait (GIL released) until fd is readable or timeo ms pass (< 0: for
 * ever).  0 ready, IOK_ETIMEDOUT, or -1 with an exception (a signal
 * handler raised).  Signals reach the main thread's handlers without a
 * lost wake-up: they are blocked while we look, and ppoll unblocks them
 * atomically for the wait. */
static int
wait_fd(int fd, int timeo)
{
	static sigset_t block;
	static int      block_ready;
	sigset_t        old, wait_mask;
	int             main = PyThread_get_thread_ident() == g_main_thread, rv = 0, interrupted;
	struct timespec deadline;
	if (!block_ready) {
		sigfillset(&block);
		sigdelset(&block, SIGSEGV);
		sigdelset(&block, SIGBUS);
		sigdelset(&block, SIGFPE);
		sigdelset(&block, SIGILL);
		sigdelset(&block, SIGABRT);
		block_ready = 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeo / 1000;
	deadline.tv_nsec += (long) (timeo % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	if (main) {
		pthread_sigmask(SIG_BLOCK, &block, &old);
		wait_mask = old;
	} else {
		pthread_sigmask(SIG_BLOCK, NULL, &old);
		sigorset(&wait_mask, &old, &block);
	}
	do {
		if (main && PyErr_CheckSignals() < 0) {
			rv = -1;
			break;
		}
		interrupted                              = 0;
		Py_BEGIN_ALLOW_THREADS struct pollfd pfd = { .fd = fd, .events = POLLIN };
		struct timespec                      ts, now, *tsp = NULL;
		if (timeo >= 0) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			ts.tv_sec  = deadline.tv_sec - now.tv_sec;
			ts.tv_nsec = deadline.tv_nsec - now.tv_nsec;
			if (ts.tv_nsec < 0) {
				ts.tv_sec--;
				ts.tv_nsec += 1000000000;
			}
			if (ts.tv_sec < 0) {
				ts.tv_sec = ts.tv_nsec = 0;
			}
			tsp = &ts;
		}
		int n = ppoll(&pfd, 1, tsp, &wait_mask);
		if (n < 0 && errno == EINTR) {
			interrupted = 1;
		} else if (n == 0) {
			rv = IOK_ETIMEDOUT;
		}
		Py_END_ALLOW_THREADS
	} while (interrupted);
	if (main) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	return rv;
}

/* pg_wait(fd, timeout_ms) -> bool: wait for fd (a socket's recv or send
 * descriptor) to be readable; False on timeout. */
static PyObject *
mod_pg_wait(PyObject *mod, PyObject *args)
{
	int fd, timeo, rv;
	if (!PyArg_ParseTuple(args, "ii:pg_wait", &fd, &timeo)) {
		return NULL;
	}
	if ((rv = wait_fd(fd, timeo)) < 0) {
		return NULL;
	}
	return PyBool_FromLong(rv == 0);
}

/* pg_take(socket_id, max, json_loads) -> [(token, value, failed)]: the
 * replies waiting now (up to max), decoded; [] if none. */
static PyObject *
mod_pg_take(PyObject *mod, PyObject *const *a, Py_ssize_t na)
{
	unsigned long sid;
	Py_ssize_t    max;
	PyObject     *list;
	int           rv = 0;
	if (na != 3) {
		PyErr_SetString(PyExc_TypeError, "pg_take(socket_id, max, json_loads)");
		return NULL;
	}
	if (!have_pg() ||
	    ((sid = PyLong_AsUnsignedLong(a[0])) == (unsigned long) -1 && PyErr_Occurred()) ||
	    ((max = PyLong_AsSsize_t(a[1])) == -1 && PyErr_Occurred())) {
		return NULL;
	}
	if ((list = PyList_New(0)) == NULL) {
		return NULL;
	}
	for (Py_ssize_t i = 0; i < max; i++) {
		iok_msg           *m;
		unsigned long long tok;
		int                failed = 0;
		PyObject          *val, *t;
		if ((rv = iok_recvmsg((iok_socket) { (uint32_t) sid }, &m, IOK_FLAG_NONBLOCK)) !=
		    0) {
			break;
		}
		tok = iok_msg_token(m);
		val = reply_value(m, a[2], &failed);
		if (val == NULL ||
		    (t = Py_BuildValue("(KNO)", tok, val, failed ? Py_True : Py_False)) == NULL) {
			Py_DECREF(list);
			return NULL;
		}
		rv = PyList_Append(list, t);
		Py_DECREF(t);
		if (rv < 0) {
			Py_DECREF(list);
			return NULL;
		}
	}
	if (rv != 0 && rv != IOK_EAGAIN && PyList_Size(list) == 0) {
		Py_DECREF(list);
		return ikpy_raise_iok(rv);
	}
	return list;
}

/* pg_decode(data, json_loads=None) -> (rows, tag, status): decode one
 * reply (what a pipelined-db socket delivers); raises the server's error
 * as iok.pg's exception, ValueError for malformed bytes. */
static PyObject *
mod_pg_decode(PyObject *mod, PyObject *args)
{
	Py_buffer view;
	PyObject *loads = Py_None, *v;
	int       failed;
	if (!PyArg_ParseTuple(args, "y*|O:pg_decode", &view, &loads)) {
		return NULL;
	}
	if (!have_pg()) {
		PyBuffer_Release(&view);
		return NULL;
	}
	v = decode_reply(view.buf, (size_t) view.len, loads, &failed);
	PyBuffer_Release(&view);
	if (v != NULL && failed) {
		PyErr_SetObject((PyObject *) Py_TYPE(v), v);
		Py_DECREF(v);
		return NULL;
	}
	return v;
}

/* pg_notification(data) -> (pid, channel, payload) for a message holding
 * a NotificationResponse, else None. */
static PyObject *
mod_pg_notification(PyObject *mod, PyObject *args)
{
	Py_buffer     view;
	iok_pg_reader r;
	iok_pg_item   it;
	PyObject     *out = NULL;
	int           rv;
	if (!PyArg_ParseTuple(args, "y*:pg_notification", &view)) {
		return NULL;
	}
	iok_pg_reader_init(&r, view.buf, (size_t) view.len);
	while ((rv = iok_pg_next(&r, &it)) == 1) {
		if (it.kind == IOK_PG_NOTIFY) {
			out = Py_BuildValue("(kNN)", (unsigned long) it.pid,
			    PyUnicode_DecodeUTF8(
			        it.name_z, (Py_ssize_t) strlen(it.name_z), "replace"),
			    PyUnicode_DecodeUTF8((const char *) it.data, it.len, "replace"));
			break;
		}
	}
	PyBuffer_Release(&view);
	if (out == NULL && !PyErr_Occurred()) {
		out = Py_NewRef(Py_None);
	}
	return out;
}

/* pg_encode(sql, args, simple=False) -> bytes: the request message's body
 * (what pg_request would send), for tests. */
static PyObject *
mod_pg_encode(PyObject *mod, PyObject *args)
{
	PyObject *sql, *params, *out;
	int       simple = 0;
	iok_msg  *m;
	if (!PyArg_ParseTuple(args, "UO!|p:pg_encode", &sql, &PyTuple_Type, &params, &simple)) {
		return NULL;
	}
	if (!have_pg() || (m = build_request(sql, params, simple)) == NULL) {
		return NULL;
	}
	out = PyBytes_FromStringAndSize(iok_msg_body(m), (Py_ssize_t) iok_msg_len(m));
	iok_msg_free(m);
	return out;
}

static void
set_global(PyObject **g, PyObject *v)
{
	Py_XDECREF(*g);
	*g = Py_XNewRef(v);
}

static PyObject *
attr(const char *module, const char *name)
{
	PyObject *m = PyImport_ImportModule(module), *v;
	if (m == NULL) {
		return NULL;
	}
	v = PyObject_GetAttrString(m, name);
	Py_DECREF(m);
	return v;
}

/* _pg_setup(PostgresError, error_factory, kernel_error, Json, json_dumps,
 *           main_thread_ident) */
static PyObject *
mod_pg_setup(PyObject *mod, PyObject *args)
{
	PyObject     *eb, *ef, *ke, *jt, *jd, *v;
	unsigned long main_ident;
	if (!PyArg_ParseTuple(args, "OOOOOk:_pg_setup", &eb, &ef, &ke, &jt, &jd, &main_ident)) {
		return NULL;
	}
	set_global(&g_error_base_pg, eb);
	set_global(&g_error_factory, ef);
	set_global(&g_kernel_error, ke);
	set_global(&g_json_type, jt);
	set_global(&g_json_dumps, jd);
	g_main_thread = main_ident;
#define IMPORT(g, mod_, name)                 \
	if ((v = attr(mod_, name)) == NULL) { \
		return NULL;                  \
	}                                     \
	Py_XDECREF(g);                        \
	g = v;
	IMPORT(g_decimal, "decimal", "Decimal")
	IMPORT(g_date, "datetime", "date")
	IMPORT(g_time, "datetime", "time")
	IMPORT(g_datetime, "datetime", "datetime")
	IMPORT(g_timedelta, "datetime", "timedelta")
	IMPORT(g_uuid, "uuid", "UUID")
#undef IMPORT
	set_global(&g_utc, NULL);
	set_global(&g_date_min, NULL);
	set_global(&g_date_max, NULL);
	set_global(&g_dt_min, NULL);
	set_global(&g_dt_max, NULL);
	if ((v = attr("datetime", "timezone")) == NULL) {
		return NULL;
	}
	g_utc = PyObject_GetAttrString(v, "utc");
	Py_DECREF(v);
	g_date_min = PyObject_GetAttrString(g_date, "min");
	g_date_max = PyObject_GetAttrString(g_date, "max");
	g_dt_min   = PyObject_GetAttrString(g_datetime, "min");
	g_dt_max   = PyObject_GetAttrString(g_datetime, "max");
	if (g_utc == NULL || g_date_min == NULL || g_date_max == NULL || g_dt_min == NULL ||
	    g_dt_max == NULL) {
		return NULL;
	}
	Py_RETURN_NONE;
}

static PyMethodDef pg_methods[] = {
	{ "_pg_setup", mod_pg_setup, METH_VARARGS, NULL },
	{ "pg_request", (PyCFunction) (void (*)(void)) mod_pg_request, METH_FASTCALL, NULL },
	{ "pg_dispatch", (PyCFunction) (void (*)(void)) mod_pg_dispatch, METH_FASTCALL, NULL },
	{ "pg_take", (PyCFunction) (void (*)(void)) mod_pg_take, METH_FASTCALL, NULL },
	{ "pg_wait", mod_pg_wait, METH_VARARGS, NULL },
	{ "pg_decode", mod_pg_decode, METH_VARARGS,
	    "pg_decode(data, json_loads=None) -> (rows, tag, status): one PostgreSQL reply" },
	{ "pg_encode", mod_pg_encode, METH_VARARGS,
	    "pg_encode(sql, args, simple=False) -> bytes: the request iok.pg would send" },
	{ "pg_notification", mod_pg_notification, METH_VARARGS,
	    "pg_notification(data) -> (pid, channel, payload) or None" },
	{ NULL, NULL, 0, NULL },
};

int
ikpy_pg_init(PyObject *module)
{
	PyObject *t;
	if (g_str_isoformat == NULL) {
		g_str_isoformat = PyUnicode_InternFromString("isoformat");
		g_str_value     = PyUnicode_InternFromString("value");
		if (g_str_isoformat == NULL || g_str_value == NULL) {
			return -1;
		}
	}
	if ((t = ikpy_record_type_init()) == NULL) {
		return -1;
	}
	if (PyModule_AddObjectRef(module, "PgRecord", t) < 0) {
		Py_DECREF(t);
		return -1;
	}
	set_global(&g_record_type, t);
	Py_DECREF(t);
	return PyModule_AddFunctions(module, pg_methods);
}
