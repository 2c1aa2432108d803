/* reqrep.c - one req socket with 1000 requests in flight at once, served
 * by a rep socket that answers them in whatever order it likes.  No
 * threads on the client side: each reply carries its request's token. */
#include <iok.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define N 1000

static void *
server(void *arg)
{
	iok_socket rep = *(iok_socket *) arg;
	iok_msg   *req;
	while (iok_recvmsg(rep, &req, 0) == 0) {
		uint64_t token = iok_msg_token(req);
		iok_msg_insert(req, "echo: ", 6); /* reuse the message as reply */
		if (iok_reply(rep, req, token, 0) != 0) {
			iok_msg_free(req);
		}
	}
	return NULL; /* the socket was closed */
}

int
main(void)
{
	iok_socket req, rep;
	pthread_t  t;
	uint64_t   tokens[N];
	int        ok = 0;

	iok_rep0_open(&rep);
	iok_listen(rep, "ipc:///tmp/iok-reqrep-example.sock", NULL, 0);
	pthread_create(&t, NULL, server, &rep);

	iok_req0_open(&req);
	iok_socket_set_ms(req, IOK_OPT_RECVTIMEO, 5000);
	iok_dial(req, "ipc:///tmp/iok-reqrep-example.sock", NULL, IOK_FLAG_NONBLOCK);
	for (int i = 0; i < N; i++) {
		iok_msg *m;
		char     body[32];
		int      n = snprintf(body, sizeof(body), "request %d", i);
		iok_msg_alloc(&m, 0);
		iok_msg_append(m, body, (size_t) n);
		iok_request(req, m, &tokens[i], 0); /* returns at once */
	}
	for (int i = 0; i < N; i++) {
		iok_msg *r;
		if (iok_recvmsg(req, &r, 0) != 0) {
			break;
		}
		/* Find which request this answers: its token says. */
		for (int k = 0; k < N; k++) {
			char want[48];
			int  n = snprintf(want, sizeof(want), "echo: request %d", k);
			if (tokens[k] == iok_msg_token(r)) {
				ok += iok_msg_len(r) == (size_t) n &&
				      memcmp(iok_msg_body(r), want, (size_t) n) == 0;
				break;
			}
		}
		iok_msg_free(r);
	}
	printf("%d of %d replies matched their requests\n", ok, N);
	iok_close(req);
	iok_close(rep); /* the server thread's recv returns IOK_ECLOSED */
	pthread_join(t, NULL);
	return ok == N ? 0 : 1;
}
