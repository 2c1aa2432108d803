/*
 * pg_auth.c - PostgreSQL password authentication: md5 and SCRAM-SHA-256
 * (RFC 5802, RFC 7677), on libcrypto.  Secrets live only as long as the
 * exchange and are wiped (OPENSSL_cleanse) when done.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "iok.h"
#include "pg_codec.h"

#define SCRAM_KEY 32
#define SCRAM_ITER_MAX 10000000 /* refuses a server asking for hours of work */

int
ik_pg_md5_password(const char *user, const char *password, const uint8_t salt[4], char out[36])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char     d[EVP_MAX_MD_SIZE];
	unsigned int      dl = 0;
	char              h1[33];
	EVP_MD_CTX       *c  = EVP_MD_CTX_new();
	int               ok = c != NULL;

	ok = ok && EVP_DigestInit_ex(c, EVP_md5(), NULL) &&
	     EVP_DigestUpdate(c, password, strlen(password)) &&
	     EVP_DigestUpdate(c, user, strlen(user)) && EVP_DigestFinal_ex(c, d, &dl) && dl == 16;
	if (ok) {
		for (int i = 0; i < 16; i++) {
			h1[2 * i]     = hex[d[i] >> 4];
			h1[2 * i + 1] = hex[d[i] & 15];
		}
		ok = EVP_DigestInit_ex(c, EVP_md5(), NULL) && EVP_DigestUpdate(c, h1, 32) &&
		     EVP_DigestUpdate(c, salt, 4) && EVP_DigestFinal_ex(c, d, &dl) && dl == 16;
	}
	EVP_MD_CTX_free(c);
	OPENSSL_cleanse(h1, sizeof(h1));
	if (!ok) {
		return IOK_ECRYPTO;
	}
	memcpy(out, "md5", 3);
	for (int i = 0; i < 16; i++) {
		out[3 + 2 * i]     = hex[d[i] >> 4];
		out[3 + 2 * i + 1] = hex[d[i] & 15];
	}
	out[35] = '\0';
	OPENSSL_cleanse(d, sizeof(d));
	return 0;
}

static int
append_str(ik_buf *out, const char *s)
{
	return ik_buf_append(out, s, strlen(s));
}

int
ik_pg_scram_start(ik_pg_scram *sc, const char *nonce, ik_buf *out)
{
	memset(sc, 0, sizeof(*sc));
	if (nonce != NULL) {
		if (strlen(nonce) >= sizeof(sc->nonce) || strchr(nonce, ',') != NULL) {
			return IOK_EINVAL;
		}
		strcpy(sc->nonce, nonce);
	} else {
		uint8_t raw[18];
		if (RAND_bytes(raw, sizeof(raw)) != 1) {
			return IOK_ECRYPTO;
		}
		/* base64 of 18 bytes: 24 printable characters, no ',' */
		EVP_EncodeBlock((unsigned char *) sc->nonce, raw, sizeof(raw));
	}
	size_t n = strlen(sc->nonce) + 6;
	if ((sc->client_first_bare = malloc(n)) == NULL) {
		return IOK_ENOMEM;
	}
	snprintf(sc->client_first_bare, n, "n=,r=%s", sc->nonce);
	if (append_str(out, "n,,") != 0 || append_str(out, sc->client_first_bare) != 0) {
		return IOK_ENOMEM;
	}
	sc->step = 1;
	return 0;
}

/* attr finds "k=value" among the comma-separated attributes of s[0..len)
 * and returns value's start and length. */
static const char *
attr(const char *s, size_t len, char k, size_t *vlen)
{
	size_t i = 0;
	while (i < len) {
		size_t j = i;
		while (j < len && s[j] != ',') {
			j++;
		}
		if (j - i >= 2 && s[i] == k && s[i + 1] == '=') {
			*vlen = j - i - 2;
			return s + i + 2;
		}
		i = j + 1;
	}
	return NULL;
}

static int
hmac(const uint8_t *key, size_t klen, const void *msg, size_t mlen, uint8_t out[SCRAM_KEY])
{
	unsigned int n = 0;
	return HMAC(EVP_sha256(), key, (int) klen, msg, mlen, out, &n) != NULL && n == SCRAM_KEY
	           ? 0
	           : IOK_ECRYPTO;
}

int
ik_pg_scram_final(ik_pg_scram *sc, const char *password, const uint8_t *sf, size_t len, ik_buf *out)
{
	const char *s = (const char *) sf;
	const char *r, *salt64, *iter;
	size_t      rl, sl, il;
	uint8_t salt[128], salted[SCRAM_KEY], ckey[SCRAM_KEY], skey[SCRAM_KEY], stored[SCRAM_KEY];
	uint8_t csig[SCRAM_KEY], proof[SCRAM_KEY];
	char    proof64[64], *cfinal = NULL, *auth = NULL;
	long    iters = 0;
	int     rv    = IOK_EPROTO;

	if (sc->step != 1 || len == 0 || len > 4096 || memchr(s, '\0', len) != NULL) {
		return IOK_EPROTO;
	}
	if ((r = attr(s, len, 'r', &rl)) == NULL || (salt64 = attr(s, len, 's', &sl)) == NULL ||
	    (iter = attr(s, len, 'i', &il)) == NULL) {
		return IOK_EPROTO;
	}
	/* The server's nonce must extend ours. */
	size_t cn = strlen(sc->nonce);
	if (rl <= cn || memcmp(r, sc->nonce, cn) != 0 || il == 0 || il > 8 || sl == 0 ||
	    sl % 4 != 0 || sl / 4 * 3 > sizeof(salt)) {
		return IOK_EPROTO;
	}
	for (size_t i = 0; i < il; i++) {
		if (iter[i] < '0' || iter[i] > '9') {
			return IOK_EPROTO;
		}
		iters = iters * 10 + (iter[i] - '0');
	}
	if (iters < 1 || iters > SCRAM_ITER_MAX) {
		return IOK_EPROTO;
	}
	char s64[180];
	memcpy(s64, salt64, sl);
	s64[sl]  = '\0';
	int slen = EVP_DecodeBlock(salt, (const unsigned char *) s64, (int) sl);
	if (slen < 0) {
		return IOK_EPROTO;
	}
	slen -= (sl >= 1 && salt64[sl - 1] == '=') + (sl >= 2 && salt64[sl - 2] == '=');
	if ((sc->server_first = malloc(len + 1)) == NULL) {
		return IOK_ENOMEM;
	}
	memcpy(sc->server_first, s, len);
	sc->server_first[len] = '\0';

	/* client-final-message-without-proof: c=biws (base64 "n,,"), r=... */
	size_t cfl = 9 + rl + 1;
	size_t al  = strlen(sc->client_first_bare) + 1 + len + 1 + cfl;
	if ((cfinal = malloc(cfl)) == NULL || (auth = malloc(al)) == NULL) {
		rv = IOK_ENOMEM;
		goto out;
	}
	snprintf(cfinal, cfl, "c=biws,r=%.*s", (int) rl, r);
	snprintf(auth, al, "%s,%s,%s", sc->client_first_bare, sc->server_first, cfinal);

	rv = IOK_ECRYPTO;
	if (PKCS5_PBKDF2_HMAC(password, (int) strlen(password), salt, slen, (int) iters,
	        EVP_sha256(), SCRAM_KEY, salted) != 1) {
		goto out;
	}
	if (hmac(salted, SCRAM_KEY, "Client Key", 10, ckey) != 0 ||
	    SHA256(ckey, SCRAM_KEY, stored) == NULL ||
	    hmac(stored, SCRAM_KEY, auth, strlen(auth), csig) != 0 ||
	    hmac(salted, SCRAM_KEY, "Server Key", 10, skey) != 0 ||
	    hmac(skey, SCRAM_KEY, auth, strlen(auth), sc->server_sig) != 0) {
		goto out;
	}
	for (int i = 0; i < SCRAM_KEY; i++) {
		proof[i] = ckey[i] ^ csig[i];
	}
	EVP_EncodeBlock((unsigned char *) proof64, proof, SCRAM_KEY);
	rv = append_str(out, cfinal) || append_str(out, ",p=") || append_str(out, proof64)
	         ? IOK_ENOMEM
	         : 0;
	if (rv == 0) {
		sc->step = 2;
	}
out:
	OPENSSL_cleanse(salted, sizeof(salted));
	OPENSSL_cleanse(ckey, sizeof(ckey));
	OPENSSL_cleanse(skey, sizeof(skey));
	OPENSSL_cleanse(stored, sizeof(stored));
	OPENSSL_cleanse(proof, sizeof(proof));
	OPENSSL_cleanse(proof64, sizeof(proof64));
	free(cfinal);
	free(auth);
	return rv;
}

int
ik_pg_scram_verify(ik_pg_scram *sc, const uint8_t *sfin, size_t len)
{
	const char *s = (const char *) sfin;
	const char *v;
	size_t      vl;
	uint8_t     sig[64];
	char        v64[64];

	if (sc->step != 2 || len > 1024) {
		return IOK_EPROTO;
	}
	if (attr(s, len, 'e', &vl) != NULL) {
		return IOK_EPEERAUTH;
	}
	if ((v = attr(s, len, 'v', &vl)) == NULL || vl != 44) {
		return IOK_EPROTO;
	}
	memcpy(v64, v, vl);
	v64[vl] = '\0';
	if (EVP_DecodeBlock(sig, (const unsigned char *) v64, (int) vl) != 33) { /* 32 + padding */
		return IOK_EPROTO;
	}
	if (CRYPTO_memcmp(sig, sc->server_sig, SCRAM_KEY) != 0) {
		return IOK_EPEERAUTH; /* not the server that knows our verifier */
	}
	sc->step = 3;
	return 0;
}

void
ik_pg_scram_fini(ik_pg_scram *sc)
{
	free(sc->client_first_bare);
	free(sc->server_first);
	OPENSSL_cleanse(sc, sizeof(*sc));
}
