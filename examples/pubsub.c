/* pubsub.c - a publisher and two subscribers with different prefixes. */
#include <iok.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int
main(void)
{
	iok_socket pub, weather, all;
	char       buf[64];
	size_t     len;

	iok_pub0_open(&pub);
	iok_listen(pub, "tcp://127.0.0.1:5556", NULL, 0);
	iok_sub0_open(&weather);
	iok_sub0_open(&all);
	iok_socket_set(weather, IOK_OPT_SUB_SUBSCRIBE, "weather.", 8);
	iok_socket_set(all, IOK_OPT_SUB_SUBSCRIBE, "", 0); /* everything */
	iok_dial(weather, "tcp://127.0.0.1:5556", NULL, 0);
	iok_dial(all, "tcp://127.0.0.1:5556", NULL, 0);
	/* A publisher never waits for subscribers: wait until both are
	 * connected, or early messages go nowhere (as with nng and zmq). */
	for (uint64_t n = 0; n < 2;) {
		struct timespec ms = { 0, 1000000 };
		iok_socket_get_uint64(pub, "stat:pipes", &n);
		nanosleep(&ms, NULL);
	}
	iok_send(pub, "weather.paris sunny", 19, 0);
	iok_send(pub, "stocks.acme 42", 14, 0);
	iok_socket_set_ms(weather, IOK_OPT_RECVTIMEO, 2000);
	iok_socket_set_ms(all, IOK_OPT_RECVTIMEO, 2000);
	len = sizeof(buf);
	if (iok_recv(weather, buf, &len, 0) == 0) {
		printf("weather got: %.*s\n", (int) len, buf);
	}
	for (int i = 0; i < 2; i++) {
		len = sizeof(buf);
		if (iok_recv(all, buf, &len, 0) == 0) {
			printf("all got:     %.*s\n", (int) len, buf);
		}
	}
	iok_close(pub);
	iok_close(weather);
	iok_close(all);
	return 0;
}
