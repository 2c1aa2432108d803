/* hello.c - two pair sockets over TCP, one message each way. */
#include <iok.h>
#include <stdio.h>

int
main(void)
{
	iok_socket a, b;
	char       buf[64];
	size_t     len = sizeof(buf);
	int        rv;

	if ((rv = iok_pair1_open(&a)) != 0 || (rv = iok_pair1_open(&b)) != 0 ||
	    (rv = iok_listen(a, "tcp://127.0.0.1:5555", NULL, 0)) != 0 ||
	    (rv = iok_dial(b, "tcp://127.0.0.1:5555", NULL, IOK_FLAG_NONBLOCK)) != 0 ||
	    (rv = iok_send(b, "hello", 5, 0)) != 0 || (rv = iok_recv(a, buf, &len, 0)) != 0) {
		fprintf(stderr, "hello: %s\n", iok_strerror(rv));
		return 1;
	}
	printf("a got: %.*s\n", (int) len, buf);
	iok_close(a);
	iok_close(b);
	return 0;
}
