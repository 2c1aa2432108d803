/*
 * pg_codec.h - PostgreSQL wire protocol (v3) pieces shared by the
 * "postgresql" transport (postgres.c), its authentication (pg_auth.c), the
 * public request builder and reply reader (src/pg_api.c) and the tests.
 *
 * A request message body is iok's own compact encoding, read only by the
 * transport's encoder (big-endian integers):
 *   extended: "\0IKq" u16 nparams, u32 sql_len, sql,
 *             nparams x (u32 oid, u8 format, i32 len (-1 NULL), bytes)
 *   simple:   "\0IKs" u32 sql_len, sql
 * The leading NUL keeps it from ever looking like SQL or a wire message.
 * Pure functions; any thread.
 */
#ifndef IK_PG_CODEC_H
#define IK_PG_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "transport.h"

#define IK_PG_MAGIC_EXT "\0IKq"
#define IK_PG_MAGIC_SIMPLE "\0IKs"
#define IK_PG_MAGIC_LEN 4
#define IK_PG_EXT_HDR (IK_PG_MAGIC_LEN + 2 + 4) /* magic, nparams, sql_len */
#define IK_PG_MAX_PARAMS 65535

#define IK_PG_PROTO_V3 196608u      /* 3.0 */
#define IK_PG_CANCEL_CODE 80877102u /* CancelRequest */
#define IK_PG_MSG_MAX (1u << 30)    /* the server's own sanity limit */

/* Authentication request codes ('R'). */
#define IK_PG_AUTH_OK 0
#define IK_PG_AUTH_CLEARTEXT 3
#define IK_PG_AUTH_MD5 5
#define IK_PG_AUTH_SASL 10
#define IK_PG_AUTH_SASL_CONT 11
#define IK_PG_AUTH_SASL_FINAL 12

static inline uint32_t
ik_pg_u32(const uint8_t *p)
{
	return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8) | p[3];
}

static inline uint16_t
ik_pg_u16(const uint8_t *p)
{
	return (uint16_t) (((unsigned) p[0] << 8) | p[1]);
}

static inline void
ik_pg_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t) (v >> 24);
	p[1] = (uint8_t) (v >> 16);
	p[2] = (uint8_t) (v >> 8);
	p[3] = (uint8_t) v;
}

static inline void
ik_pg_put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t) (v >> 8);
	p[1] = (uint8_t) v;
}

/* ik_pg_backend_type_ok says whether c is a backend message type byte. */
int ik_pg_backend_type_ok(uint8_t c);

/* ik_pg_err_field finds field code in an ErrorResponse/NoticeResponse body
 * (the bytes after the length): a NUL-terminated string inside body, or
 * NULL (also when the body is malformed). */
const char *ik_pg_err_field(const uint8_t *body, size_t len, char code);

/* ---------------------------------------------------------------- auth */

/* ik_pg_md5_password writes "md5" + 32 hex digits + NUL into out (36
 * bytes): md5(md5(password + user) + salt).  0 or IOK_ECRYPTO. */
int ik_pg_md5_password(const char *user, const char *password, const uint8_t salt[4], char out[36]);

/* SCRAM-SHA-256 client (RFC 5802/7677, no channel binding). */
typedef struct ik_pg_scram {
	char    nonce[64];         /* client nonce (printable) */
	char   *client_first_bare; /* "n=,r=<nonce>" */
	char   *server_first;
	uint8_t server_sig[32]; /* expected ServerSignature */
	int     step;           /* 0 new, 1 first sent, 2 final sent, 3 verified */
} ik_pg_scram;

/* ik_pg_scram_start fills *sc and appends the client-first-message
 * ("n,,n=,r=<nonce>"; user "" as PostgreSQL wants) to out.  nonce NULL
 * picks a random one (RAND_bytes).  0, IOK_ENOMEM, IOK_ECRYPTO. */
int ik_pg_scram_start(ik_pg_scram *sc, const char *nonce, ik_buf *out);
/* ik_pg_scram_final reads server-first-message sf[0..len) and appends the
 * client-final-message to out.  0, IOK_EPROTO (malformed, nonce not
 * ours, silly iteration count), IOK_ENOMEM, IOK_ECRYPTO. */
int ik_pg_scram_final(
    ik_pg_scram *sc, const char *password, const uint8_t *sf, size_t len, ik_buf *out);
/* ik_pg_scram_verify checks server-final-message "v=..." against the
 * expected signature.  0, IOK_EPEERAUTH (wrong or "e=" error), IOK_EPROTO. */
int ik_pg_scram_verify(ik_pg_scram *sc, const uint8_t *sfin, size_t len);
/* ik_pg_scram_fini frees and wipes *sc. */
void ik_pg_scram_fini(ik_pg_scram *sc);

/* -------------------------------------------------------------- codec */

/* The transports; tests and the fuzzer drive the codec through them. */
extern const ik_transport ik_tran_postgresql;      /* "postgresql", TCP, 5432 */
extern const ik_transport ik_tran_postgres;        /* "postgres", the same */
extern const ik_transport ik_tran_postgresql_unix; /* ?host=/dir URLs */

/* Kernel services (the pattern reaches them through the pipe):
 * ik_pg_txstatus is the last ReadyForQuery status ('I', 'T', 'E', or 0
 * before the first); ik_pg_backend_key fills pid and secret (0 if the
 * server sent none); ik_pg_rollback appends a ROLLBACK request whose
 * reply the codec consumes itself. */
char ik_pg_txstatus(void *st);
int  ik_pg_backend_key(void *st, uint32_t *pid, uint32_t *secret);
int  ik_pg_rollback(void *st, ik_buf *out);
/* ik_pg_cancel_request writes the 16-byte CancelRequest packet. */
void ik_pg_cancel_request(uint32_t pid, uint32_t secret, uint8_t out[16]);

#endif /* IK_PG_CODEC_H */
