/* sp.h - the SP codec's functions, for unit tests and other SP-framed
 * transports. */
#ifndef IK_SP_H
#define IK_SP_H

#include "transport.h"

extern const ik_transport ik_tran_tcp, ik_tran_tcp4, ik_tran_tcp6, ik_tran_ipc, ik_tran_inproc;

int      ik_sp_handshake(void *st, const uint8_t *in, size_t len, size_t *used, ik_buf *out);
uint16_t ik_sp_peer_proto(void *st);
ssize_t  ik_sp_frame(void *st, const uint8_t *buf, size_t len, ik_frame *f);
ssize_t  ik_sp_encode(void *st, const uint8_t *hdr, size_t hdr_len, const uint8_t *body,
     size_t body_len, uint8_t *prefix);

#endif
