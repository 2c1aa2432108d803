/* all.c - the built-in transports, by scheme. */
#include <stddef.h>

#include "pg_codec.h"
#include "resp.h"
#include "sp.h"

const ik_transport *const ik_transports_builtin[] = {
	&ik_tran_tcp,
	&ik_tran_tcp4,
	&ik_tran_tcp6,
	&ik_tran_ipc,
	&ik_tran_inproc,
	&ik_tran_redis,
	&ik_tran_redis_unix,
	&ik_tran_postgresql,
	&ik_tran_postgres,
	&ik_tran_postgresql_unix,
	NULL,
};
