/* fuzz_disc.c - libFuzzer target for discovery's parsers: the first byte
 * picks one (peers file, host list, host:port, dialer URL, DNS answer
 * TTL, ZooKeeper child name); the rest is its input.  Whatever they accept must be well formed:
 * hosts NUL-terminated inside their storage, counts within bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "discovery/discovery.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
known(const char *s)
{
	return strcmp(s, "tcp") == 0 || strcmp(s, "redis") == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	iok_discovery_addr a[IK_DISC_MAX];
	char               host[IK_DISC_HOST_MAX], *st = NULL, *text;
	uint16_t           port;
	uint32_t           ttl;
	int                n = 0;
	if (size < 1) {
		return 0;
	}
	const uint8_t *in  = data + 1;
	size_t         len = size - 1;
	if ((text = malloc(len + 1)) == NULL) {
		return 0;
	}
	memcpy(text, in, len);
	text[len] = '\0';
	switch (data[0] % 6) {
	case 0:
		n = ik_disc_parse_lines(text, len, a, IK_DISC_MAX, &st);
		break;
	case 1:
		n = ik_disc_parse_list(text, a, IK_DISC_MAX, &st);
		break;
	case 2:
		if (ik_disc_parse_hostport(text, len, host, &port) == 0 &&
		    strlen(host) >= IK_DISC_HOST_MAX) {
			abort();
		}
		break;
	case 3: {
		char *b, *t, *u;
		if (ik_disc_split_url(text, known, &b, &t, &u) == 0) {
			free(b);
			free(t);
			free(u);
		}
		break;
	}
	case 5: {
		uint16_t w;
		if (ik_disc_parse_zk_child(text, len, host, &port, &w) == 0 &&
		    (strlen(host) >= IK_DISC_HOST_MAX || port == 0 || w == 0)) {
			abort();
		}
		break;
	}
	default:
		(void) ik_dns_min_ttl(in, len, &ttl);
		break;
	}
	if (n > IK_DISC_MAX) {
		abort();
	}
	for (int i = 0; i < n; i++) {
		if (a[i].host == NULL || strlen(a[i].host) == 0 ||
		    strlen(a[i].host) >= IK_DISC_HOST_MAX) {
			abort();
		}
	}
	free(st);
	free(text);
	return 0;
}
