/* A user's program: built against an installed iok, nothing else. */
#include <iok.h>
#include <stdio.h>

int
main(void)
{
	iok_socket a, b;
	char       buf[16];
	size_t     n = sizeof(buf);
	if (iok_pair0_open(&a) || iok_pair0_open(&b) || iok_listen(a, "inproc://x", NULL, 0) ||
	    iok_dial(b, "inproc://x", NULL, IOK_FLAG_NONBLOCK) || iok_send(b, "installed", 9, 0) ||
	    iok_recv(a, buf, &n, 0)) {
		return 1;
	}
	printf("%.*s %s\n", (int) n, buf, iok_version());
	return 0;
}
