/*
 * discutil.h - helpers for the discovery tests: rep servers on loopback
 * addresses (the whole of 127/8 is loopback, so 127.0.0.2 and 127.0.0.3
 * are two "hosts"), a req client that keeps traffic flowing from its own
 * thread and counts who answered and what failed, a dnsmasq run by the
 * test on a free loopback port, and file writes that replace a file
 * atomically (as deploy tools do).  Only iok.h is used, so a test built
 * on this reaches the library through its public API alone.
 *
 * Header-only (static functions), like redisutil.h.  Waiting is always on
 * a condition (a statistic, dnsmasq's port being taken), never a sleep.
 */
#ifndef IOK_DISCUTIL_H
#define IOK_DISCUTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define DU_UNUSED __attribute__((unused))
#define DU_MS 15000 /* generous bound for what must happen */

/* ------------------------------------------------------- rep servers */

typedef struct du_server {
	iok_socket rep;
	pthread_t  th;
	char       name[32];
	char       url[64];
} du_server;

static void *
du_serve(void *arg)
{
	du_server *sv = arg;
	for (;;) {
		char   buf[64];
		size_t len = sizeof(buf);
		int    rv  = iok_recv(sv->rep, buf, &len, 0);
		if (rv == IOK_ETIMEDOUT) {
			continue;
		}
		if (rv != 0) {
			return NULL; /* closed */
		}
		(void) iok_send(sv->rep, sv->name, strlen(sv->name) + 1, 0);
	}
}

/* A rep socket on host:port answering every request with its name. */
static DU_UNUSED void
du_server_start(du_server *sv, const char *host, int port)
{
	snprintf(sv->name, sizeof(sv->name), "%s", host);
	snprintf(sv->url, sizeof(sv->url), "tcp://%s:%d", host, port);
	IOK_OK(iok_rep0_open(&sv->rep));
	IOK_OK(iok_socket_set_ms(sv->rep, IOK_OPT_RECVTIMEO, 200));
	IOK_OK(iok_listen(sv->rep, sv->url, NULL, 0));
	assert_int_equal(pthread_create(&sv->th, NULL, du_serve, sv), 0);
}

static DU_UNUSED void
du_server_stop(du_server *sv)
{
	IOK_OK(iok_close(sv->rep));
	pthread_join(sv->th, NULL);
}

static DU_UNUSED uint64_t
du_pipes(const du_server *sv)
{
	return tu_stat(sv->rep, "stat:pipes");
}

/* ------------------------------------------------- traffic from a req */

typedef struct du_client {
	iok_socket  req;
	pthread_t   th;
	atomic_bool stop;
	atomic_int  answered[2]; /* by server 0 / server 1 */
	atomic_int  failed;
	const char *names[2];
} du_client;

static void *
du_traffic(void *arg)
{
	du_client *c = arg;
	while (!atomic_load(&c->stop)) {
		char   buf[64];
		size_t len = sizeof(buf);
		int    rv  = iok_send(c->req, "q", 1, 0);
		if (rv == 0) {
			rv = iok_recv(c->req, buf, &len, 0);
		}
		if (rv != 0) {
			atomic_fetch_add(&c->failed, 1);
			continue;
		}
		buf[len < sizeof(buf) ? len : sizeof(buf) - 1] = '\0';
		for (int i = 0; i < 2; i++) {
			if (c->names[i] != NULL && strcmp(buf, c->names[i]) == 0) {
				atomic_fetch_add(&c->answered[i], 1);
			}
		}
	}
	return NULL;
}

static DU_UNUSED void
du_client_run(du_client *c, iok_socket req, const char *name0, const char *name1)
{
	c->req      = req;
	c->names[0] = name0;
	c->names[1] = name1;
	atomic_store(&c->stop, false);
	atomic_store(&c->answered[0], 0);
	atomic_store(&c->answered[1], 0);
	atomic_store(&c->failed, 0);
	IOK_OK(iok_socket_set_ms(req, IOK_OPT_RECVTIMEO, DU_MS));
	IOK_OK(iok_socket_set_ms(req, IOK_OPT_SENDTIMEO, DU_MS));
	assert_int_equal(pthread_create(&c->th, NULL, du_traffic, c), 0);
}

static DU_UNUSED void
du_client_stop(du_client *c)
{
	atomic_store(&c->stop, true);
	pthread_join(c->th, NULL);
}

typedef struct du_cond {
	du_client *c;
	int        idx, n;
} du_cond;

static int
du_answered_cond(void *arg)
{
	du_cond *k = arg;
	return atomic_load(&k->c->answered[k->idx]) >= k->n;
}

/* Wait until server idx answered n more requests than it has so far. */
static DU_UNUSED int
du_wait_answers(du_client *c, int idx, int more)
{
	du_cond k = { c, idx, atomic_load(&c->answered[idx]) + more };
	return tu_wait_for(du_answered_cond, &k, DU_MS);
}

typedef struct du_pipes_cond {
	const du_server *a, *b;
	uint64_t         na, nb;
} du_pipes_cond;

static int
du_pipes_cond_fn(void *arg)
{
	du_pipes_cond *k = arg;
	return du_pipes(k->a) == k->na && (k->b == NULL || du_pipes(k->b) == k->nb);
}

/* Wait until server a has na connections and b (if given) nb. */
static DU_UNUSED int
du_wait_pipes(const du_server *a, uint64_t na, const du_server *b, uint64_t nb)
{
	du_pipes_cond k = { a, b, na, nb };
	return tu_wait_for(du_pipes_cond_fn, &k, DU_MS);
}

/* --------------------------------------------------------- files */

static DU_UNUSED char *
du_tmpdir(char *buf, size_t cap, const char *tag)
{
	const char *base = getenv("IOK_TEST_TMP");
	char        mk[400];
	if (base == NULL) {
		base = "/tmp";
	}
	snprintf(mk, sizeof(mk), "mkdir -p '%s'", base);
	if (system(mk) != 0) {
		base = "/tmp";
	}
	snprintf(buf, cap, "%s/iok-%s-XXXXXX", base, tag);
	assert_non_null(mkdtemp(buf));
	chmod(buf, 0755); /* dnsmasq reads its hosts file as another user */
	return buf;
}

/* Write text to path through a temporary file renamed over it. */
static DU_UNUSED void
du_write_file(const char *path, const char *text)
{
	char  tmp[600];
	FILE *f;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	assert_non_null(f = fopen(tmp, "w"));
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	chmod(tmp, 0644);
	assert_int_equal(rename(tmp, path), 0);
}

/* --------------------------------------------------------- dnsmasq */

static DU_UNUSED int
du_dnsmasq_available(void)
{
	return system("command -v dnsmasq >/dev/null 2>&1 || test -x /usr/sbin/dnsmasq") == 0;
}

/* dnsmasq changes credentials, which clears PR_SET_PDEATHSIG: servers
 * still running at exit (a failed assertion skipped the stop) are killed
 * here. */
static pid_t du_dns_pids[8];

static void
du_dnsmasq_reap_all(void)
{
	for (int i = 0; i < 8; i++) {
		if (du_dns_pids[i] > 0) {
			kill(du_dns_pids[i], SIGKILL);
			(void) waitpid(du_dns_pids[i], NULL, 0);
			du_dns_pids[i] = 0;
		}
	}
}

static void
du_dnsmasq_track(pid_t pid, bool add)
{
	static bool registered;
	if (!registered) {
		registered = true;
		atexit(du_dnsmasq_reap_all);
	}
	for (int i = 0; i < 8; i++) {
		if (add ? du_dns_pids[i] == 0 : du_dns_pids[i] == pid) {
			du_dns_pids[i] = add ? pid : 0;
			return;
		}
	}
}

/* The UDP port is taken (dnsmasq is listening). */
static int
du_udp_taken(void *arg)
{
	return tu_port_in_use(SOCK_DGRAM, *(int *) arg);
}

static DU_UNUSED void
du_dnsmasq_stop(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGKILL);
		(void) waitpid(pid, NULL, 0);
		du_dnsmasq_track(pid, false);
	}
}

/* Start dnsmasq on 127.0.0.1:port answering from hosts (an addn-hosts
 * file, re-read on SIGHUP) and the given --srv-host values (NULL ends),
 * with a TTL of 1 s on everything local and no upstream servers. */
static DU_UNUSED pid_t
du_dnsmasq_start(int port, const char *hosts, const char *const *srv, const char *log)
{
	char        portarg[32], hostsarg[600], logarg[600], srvargs[8][300];
	const char *argv[32];
	int         argc = 0;
	pid_t       pid;

	snprintf(portarg, sizeof(portarg), "--port=%d", port);
	snprintf(hostsarg, sizeof(hostsarg), "--addn-hosts=%s", hosts);
	snprintf(logarg, sizeof(logarg), "--log-facility=%s", log);
	argv[argc++] = "dnsmasq";
	argv[argc++] = "--keep-in-foreground";
	argv[argc++] = "--conf-file=/dev/null";
	argv[argc++] = "--no-resolv";
	argv[argc++] = "--no-hosts";
	argv[argc++] = "--no-poll";
	argv[argc++] = "--bind-interfaces";
	argv[argc++] = "--listen-address=127.0.0.1";
	argv[argc++] = "--pid-file=";
	argv[argc++] = "--user=root";
	argv[argc++] = "--local-ttl=1";
	argv[argc++] = "--log-queries";
	argv[argc++] = logarg;
	argv[argc++] = portarg;
	argv[argc++] = hostsarg;
	for (int i = 0; srv != NULL && srv[i] != NULL && i < 8; i++) {
		snprintf(srvargs[i], sizeof(srvargs[i]), "--srv-host=%s", srv[i]);
		argv[argc++] = srvargs[i];
	}
	argv[argc] = NULL;
	if ((pid = fork()) < 0) {
		return -1;
	}
	if (pid == 0) {
		(void) prctl(PR_SET_PDEATHSIG, SIGKILL);
		execvp("dnsmasq", (char *const *) argv);
		execv("/usr/sbin/dnsmasq", (char *const *) argv);
		_exit(127);
	}
	du_dnsmasq_track(pid, true);
	if (!tu_wait_for(du_udp_taken, &port, DU_MS)) {
		du_dnsmasq_stop(pid);
		return -1;
	}
	return pid;
}

#endif
