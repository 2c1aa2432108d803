/* fuzz_sp.c - libFuzzer target for the SP codec: the first byte picks tcp
 * or ipc framing and a receive limit; the rest is a peer's byte stream
 * (handshake, then frames), fed in pieces the next bytes decide.  Every
 * frame found must lie inside the bytes and obey the limit. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "../transports/sp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t            st[16];
	ik_buf              out, in;
	size_t              used;
	const ik_transport *t;
	if (size < 2) {
		return 0;
	}
	t                       = (data[0] & 1) ? &ik_tran_ipc : &ik_tran_tcp;
	size_t         recv_max = (data[0] >> 1) * 97u;
	ik_tran_params p        = { .self_proto = 0x50, .recv_max = recv_max };
	memset(st, 0, sizeof(st));
	t->init(st, &p);
	ik_buf_init(&out);
	ik_buf_init(&in);
	data++;
	size--;
	int    state = t->handshake(st, NULL, 0, &used, &out);
	size_t off   = 0;
	while (size > 0 && state >= 0) {
		size_t chunk = 1 + data[0] % 17;
		if (chunk > size) {
			chunk = size;
		}
		ik_buf_append(&in, data, chunk);
		data += chunk;
		size -= chunk;
		if (state == IK_HS_MORE) {
			state = t->handshake(st, in.data + off, in.len - off, &used, &out);
			off += used;
			if (state < 0) {
				break;
			}
		}
		while (state == IK_HS_DONE && off < in.len) {
			ik_frame f = { 0 };
			ssize_t  n = t->frame(st, in.data + off, in.len - off, &f);
			if (n < 0) {
				state = -1;
				break;
			}
			if (n == 0) {
				break;
			}
			if ((size_t) n > in.len - off || f.body_off + f.body_len != (size_t) n ||
			    (recv_max > 0 && f.body_len > recv_max)) {
				abort();
			}
			off += (size_t) n;
		}
	}
	ik_buf_fini(&out);
	ik_buf_fini(&in);
	return 0;
}
