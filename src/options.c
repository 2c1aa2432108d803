/*
 * options.c - typed option values.  Numeric types convert among each
 * other (a Python int can set a duration), but a string is never a number:
 * that is IOK_EBADTYPE, as in nng.
 */
#include <limits.h>
#include <string.h>

#include "../patterns/pattern.h"

static int
get_number(const void *v, size_t sz, int type, int64_t *out)
{
	switch (type) {
	case IK_OPT_BOOL:
	case IK_OPT_INT:
		if (sz != sizeof(int))
			return IOK_EINVAL;
		*out = *(const int *) v;
		return 0;
	case IK_OPT_MS:
		if (sz != sizeof(iok_duration))
			return IOK_EINVAL;
		*out = *(const iok_duration *) v;
		return 0;
	case IK_OPT_SIZE:
		if (sz != sizeof(size_t))
			return IOK_EINVAL;
		if (*(const size_t *) v > (size_t) INT64_MAX)
			return IOK_EINVAL;
		*out = (int64_t) * (const size_t *) v;
		return 0;
	case IK_OPT_UINT64:
		if (sz != sizeof(uint64_t))
			return IOK_EINVAL;
		if (*(const uint64_t *) v > (uint64_t) INT64_MAX)
			return IOK_EINVAL;
		*out = (int64_t) * (const uint64_t *) v;
		return 0;
	default:
		return IOK_EBADTYPE;
	}
}

int
ik_opt_get_bool(const void *v, size_t sz, int type, int *out)
{
	int64_t n;
	int     rv = get_number(v, sz, type, &n);
	if (rv == 0) {
		*out = n != 0;
	}
	return rv;
}

int
ik_opt_get_int(const void *v, size_t sz, int type, int min, int max, int *out)
{
	int64_t n;
	int     rv = get_number(v, sz, type, &n);
	if (rv == 0) {
		if (n < min || n > max)
			return IOK_EINVAL;
		*out = (int) n;
	}
	return rv;
}

int
ik_opt_get_ms(const void *v, size_t sz, int type, iok_duration *out)
{
	int64_t n;
	int     rv = get_number(v, sz, type, &n);
	if (rv == 0) {
		if (n < IOK_DURATION_INFINITE || n > INT32_MAX)
			return IOK_EINVAL;
		*out = (iok_duration) n;
	}
	return rv;
}

int
ik_opt_get_size(const void *v, size_t sz, int type, size_t min, size_t max, size_t *out)
{
	int64_t n;
	int     rv = get_number(v, sz, type, &n);
	if (rv == 0) {
		if (n < 0 || (uint64_t) n < min || (uint64_t) n > max)
			return IOK_EINVAL;
		*out = (size_t) n;
	}
	return rv;
}

static int
put_number(int64_t n, void *v, size_t *sz, int type)
{
	switch (type) {
	case IK_OPT_BOOL:
		if (*sz < sizeof(int))
			return IOK_EINVAL;
		*(int *) v = n != 0;
		*sz        = sizeof(int);
		return 0;
	case IK_OPT_INT:
		if (*sz < sizeof(int))
			return IOK_EINVAL;
		if (n < INT_MIN || n > INT_MAX)
			return IOK_EINVAL;
		*(int *) v = (int) n;
		*sz        = sizeof(int);
		return 0;
	case IK_OPT_MS:
		if (*sz < sizeof(iok_duration))
			return IOK_EINVAL;
		if (n < INT32_MIN || n > INT32_MAX)
			return IOK_EINVAL;
		*(iok_duration *) v = (iok_duration) n;
		*sz                 = sizeof(iok_duration);
		return 0;
	case IK_OPT_SIZE:
		if (*sz < sizeof(size_t) || n < 0)
			return IOK_EINVAL;
		*(size_t *) v = (size_t) n;
		*sz           = sizeof(size_t);
		return 0;
	case IK_OPT_UINT64:
		if (*sz < sizeof(uint64_t) || n < 0)
			return IOK_EINVAL;
		*(uint64_t *) v = (uint64_t) n;
		*sz             = sizeof(uint64_t);
		return 0;
	default:
		return IOK_EBADTYPE;
	}
}

int
ik_opt_put_bool(int val, void *v, size_t *sz, int type)
{
	return put_number(val != 0, v, sz, type);
}

int
ik_opt_put_int(int val, void *v, size_t *sz, int type)
{
	return put_number(val, v, sz, type);
}

int
ik_opt_put_ms(iok_duration val, void *v, size_t *sz, int type)
{
	return put_number(val, v, sz, type);
}

int
ik_opt_put_size(size_t val, void *v, size_t *sz, int type)
{
	if (val > (size_t) INT64_MAX)
		return IOK_EINVAL;
	return put_number((int64_t) val, v, sz, type);
}

int
ik_opt_put_uint64(uint64_t val, void *v, size_t *sz, int type)
{
	if (type == IK_OPT_UINT64) {
		if (*sz < sizeof(uint64_t))
			return IOK_EINVAL;
		*(uint64_t *) v = val;
		*sz             = sizeof(uint64_t);
		return 0;
	}
	if (val > (uint64_t) INT64_MAX)
		return IOK_EINVAL;
	return put_number((int64_t) val, v, sz, type);
}
