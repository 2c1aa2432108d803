/*
 * bench_main.c - command line, process/thread roles and the scenarios that
 * are the same for every library.  See bench/README.md for the CLI.
 *
 * Each measurement has a listening side and a dialing side.  The runner
 * (bench/run) starts them as two processes of the same binary; for inproc
 * (which cannot cross processes) role "both" runs every side as a thread of
 * one process.  Receivers time from their first message to their last, so
 * connection setup and process start never count.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define L bench_lib

/* ------------------------------------------------------ harness state */

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

/* "both" mode: the listener thread signals ready; everyone meets at the
 * barrier in bench_hold; clients_done tells open-ended servers to stop. */
static struct {
	pthread_mutex_t   mu;
	pthread_cond_t    cv;
	pthread_barrier_t barrier;
	int               ready;
	int               nclients;
	atomic_int        clients_done;
} both = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

/* process mode with --wait-stdin: the runner closes our stdin when every
 * party has reported, which is when we may disconnect. */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t  cv;
	atomic_int      eof;
} in = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static int both_mode;

/* Messages done by the main loop of this process's role (of the last
 * thread to store it in "both" mode), shown when the alarm fires so a hang
 * says how far it got. */
static atomic_long progress;

static void
set_progress(long v)
{
	atomic_store_explicit(&progress, v, memory_order_relaxed);
}

uint64_t
bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

void
bench_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0) {
	}
}

void
bench_ready(const struct bopts *o)
{
	if (o->both) {
		pthread_mutex_lock(&both.mu);
		both.ready = 1;
		pthread_cond_broadcast(&both.cv);
		pthread_mutex_unlock(&both.mu);
		return;
	}
	pthread_mutex_lock(&out_mu);
	printf("READY\n");
	fflush(stdout);
	pthread_mutex_unlock(&out_mu);
}

void
bench_hold(const struct bopts *o)
{
	if (o->both) {
		if (o->is_client)
			atomic_fetch_add(&both.clients_done, 1);
		pthread_barrier_wait(&both.barrier);
	} else if (o->wait_stdin) {
		pthread_mutex_lock(&in.mu);
		while (!atomic_load(&in.eof))
			pthread_cond_wait(&in.cv, &in.mu);
		pthread_mutex_unlock(&in.mu);
	} else {
		bench_sleep_ms(o->linger_ms);
	}
}

int
bench_stop_requested(void)
{
	if (both_mode)
		return atomic_load(&both.clients_done) >= both.nclients;
	return atomic_load(&in.eof);
}

void
bench_result(const struct bopts *o, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&out_mu);
	printf("RESULT lib=%s test=%s role=%s id=%d ", L.name, o->test, o->role, o->id);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	pthread_mutex_unlock(&out_mu);
}

/* ns on CPU of thread tid of this process, 0 if unknown. */
static uint64_t
thread_cpu_ns(const char *tid)
{
	char               path[300];
	unsigned long long ns = 0;
	FILE              *f;
	snprintf(path, sizeof(path), "/proc/self/task/%s/schedstat", tid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	if (fscanf(f, "%llu", &ns) != 1)
		ns = 0;
	fclose(f);
	return ns;
}

void
bench_cpu_read(struct bench_cpu *c)
{
	struct timespec ts;
	DIR            *d;
	struct dirent  *e;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	c->process_ns = (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
	c->io_ns      = 0;
	if (L.io_thread == NULL || (d = opendir("/proc/self/task")) == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		char  path[300], comm[64] = "";
		FILE *f;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		if (fgets(comm, sizeof(comm), f) != NULL &&
		    strncmp(comm, L.io_thread, strlen(L.io_thread)) == 0)
			c->io_ns += thread_cpu_ns(e->d_name);
		fclose(f);
	}
	closedir(d);
}

void
bench_rr_result(
    const struct bopts *o, const struct bench_cpu *c0, uint64_t t0, uint64_t t1, const char *extra)
{
	struct bench_cpu c1;
	double           secs = (double) (t1 - t0) / 1e9;
	double           n    = (double) o->count;

	bench_cpu_read(&c1);
	bench_result(o,
	    "n=%ld par=%d size=%zu secs=%.6f req_per_s=%.1f cpu_us_per_req=%.3f "
	    "io_us_per_req=%.3f%s%s",
	    o->count, o->par, o->size, secs, n / secs,
	    (double) (c1.process_ns - c0->process_ns) / 1e3 / n,
	    (double) (c1.io_ns - c0->io_ns) / 1e3 / n, *extra ? " " : "", extra);
}

int
bench_fail(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&out_mu);
	fprintf(stderr, "bench_%s: error: ", L.name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	fflush(stderr);
	pthread_mutex_unlock(&out_mu);
	return 1;
}

void
bench_fill(void *buf, size_t len, uint64_t seq)
{
	memset(buf, 0, len);
	memcpy(buf, &seq, len < 8 ? len : 8);
}

uint64_t
bench_seq(const void *buf, size_t len)
{
	uint64_t seq = 0;

	memcpy(&seq, buf, len < 8 ? len : 8);
	return seq;
}

/* The process's peak RSS, from VmHWM: unlike getrusage's ru_maxrss it
 * starts afresh at exec, so the runner's own memory never counts. */
static void
report_peak(void)
{
	char  line[256];
	FILE *f  = fopen("/proc/self/status", "r");
	long  kb = -1;

	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
			break;
	fclose(f);
	pthread_mutex_lock(&out_mu);
	printf("PEAK hwm_kb=%ld\n", kb);
	pthread_mutex_unlock(&out_mu);
}

static int
lib_fail(const char *what, int rv)
{
	return bench_fail("%s: %s", what, rv == BENCH_TIMEOUT ? "timed out" : L.strerror(rv));
}

/* ------------------------------------------------- process measurements */

static int
count_fds(void)
{
	DIR           *d = opendir("/proc/self/fd");
	struct dirent *e;
	int            n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own descriptor */
}

static long
rss_bytes(void)
{
	long  size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f == NULL)
		return -1;
	if (fscanf(f, "%ld %ld", &size, &resident) != 2)
		resident = -1;
	fclose(f);
	return resident * sysconf(_SC_PAGESIZE);
}

/* Every library holds one descriptor per tcp/ipc connection, so counting
 * our descriptors tells, without any library API, how many connections
 * are up.  Waits for n more than base, then for the count to settle. */
static int
wait_conns(int base, long n, int timeout_ms)
{
	uint64_t deadline = bench_now_ns() + (uint64_t) timeout_ms * 1000000u;
	int      last = -1, stable_ms = 0;

	while (count_fds() - base < n && bench_now_ns() < deadline)
		bench_sleep_ms(10);
	while (stable_ms < 300 && bench_now_ns() < deadline) {
		int c = count_fds();

		stable_ms = c == last ? stable_ms + 20 : 0;
		last      = c;
		bench_sleep_ms(20);
	}
	return count_fds() - base;
}

static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* ------------------------------------------------------ socket helpers */

static int
open_listen(const struct bopts *o, const char *kind, void **sp)
{
	int rv;

	if ((rv = L.open(sp, kind)) != 0)
		return lib_fail("open", rv);
	if ((rv = L.listen(*sp, o->url)) != 0) {
		L.close(*sp);
		return lib_fail("listen", rv);
	}
	return 0;
}

static int
open_dial(const struct bopts *o, const char *kind, void **sp)
{
	int rv;

	if ((rv = L.open(sp, kind)) != 0)
		return lib_fail("open", rv);
	if ((rv = L.dial(*sp, o->url)) != 0) {
		L.close(*sp);
		return lib_fail("dial", rv);
	}
	return 0;
}

static double
secs_between(uint64_t t0, uint64_t t1)
{
	return (double) (t1 - t0) / 1e9;
}

/* ------------------------------------------------- push/pull throughput */

static int
thr_pull(const struct bopts *o)
{
	uint64_t t0 = 0, t1;
	size_t   len;
	void    *s;
	int      rv = 0;

	if (o->count < 2)
		return bench_fail("thr needs --count >= 2");
	if (open_listen(o, "pull", &s) != 0)
		return 1;
	bench_ready(o);
	for (long i = 0; i < o->count; i++) {
		if ((rv = L.recv(s, NULL, 0, &len)) != 0) {
			lib_fail("recv", rv);
			break;
		}
		if (len != o->size) {
			rv = bench_fail("message %ld has %zu bytes, not %zu", i, len, o->size);
			break;
		}
		if (i == 0)
			t0 = bench_now_ns(); /* the clock starts at the first message */
		set_progress(i + 1);
	}
	t1 = bench_now_ns();
	if (rv == 0) {
		double secs = secs_between(t0, t1), msgs = (double) (o->count - 1);

		bench_result(o, "msgs=%ld size=%zu secs=%.6f msgs_per_s=%.1f mb_per_s=%.3f",
		    o->count, o->size, secs, msgs / secs, msgs * (double) o->size / secs / 1e6);
	}
	bench_hold(o);
	L.close(s);
	return rv != 0;
}

static int
thr_push(const struct bopts *o)
{
	char *buf = calloc(1, o->size + 1);
	void *s;
	int   rv = 0;

	if (open_dial(o, "push", &s) != 0) {
		free(buf);
		return 1;
	}
	for (long i = 0; i < o->count; i++) {
		if ((rv = L.send(s, buf, o->size)) != 0) {
			lib_fail("send", rv);
			break;
		}
		set_progress(i + 1);
	}
	if (rv == 0 && L.flush && (rv = L.flush(s)) != 0)
		lib_fail("flush", rv);
	bench_hold(o);
	L.close(s);
	free(buf);
	return rv != 0;
}

/* ------------------------------------------------ req/rep round trips */

static int
lat_rep(const struct bopts *o)
{
	char  *buf   = calloc(1, o->size + 1);
	long   total = o->warmup + o->count;
	size_t len;
	void  *s;
	int    rv = 0;

	if (open_listen(o, "rep", &s) != 0) {
		free(buf);
		return 1;
	}
	bench_ready(o);
	for (long i = 0; i < total && rv == 0; i++) {
		if ((rv = L.recv(s, buf, o->size, &len)) != 0)
			lib_fail("recv", rv);
		else if ((rv = L.send(s, buf, len)) != 0)
			lib_fail("send", rv);
	}
	bench_hold(o);
	L.close(s);
	free(buf);
	return rv != 0;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

	return x < y ? -1 : x > y;
}

static void
report_lat(const struct bopts *o, uint64_t *ns, long n)
{
	double sum = 0, median;

	qsort(ns, (size_t) n, sizeof(*ns), cmp_u64);
	for (long i = 0; i < n; i++)
		sum += (double) ns[i];
	median = n % 2 ? (double) ns[n / 2] : ((double) ns[n / 2 - 1] + (double) ns[n / 2]) / 2;
	bench_result(o,
	    "n=%ld size=%zu median_us=%.2f mean_us=%.2f p99_us=%.2f min_us=%.2f max_us=%.2f", n,
	    o->size, median / 1e3, sum / (double) n / 1e3, (double) ns[n * 99 / 100] / 1e3,
	    (double) ns[0] / 1e3, (double) ns[n - 1] / 1e3);
}

/* One request, one reply; returns the round trip in ns or 0 on error. */
static uint64_t
round_trip(const struct bopts *o, void *s, char *buf, uint64_t seq)
{
	uint64_t t0 = bench_now_ns();
	size_t   len;
	int      rv;

	bench_fill(buf, o->size, seq);
	if ((rv = L.send(s, buf, o->size)) != 0)
		return lib_fail("send", rv), 0;
	if ((rv = L.recv(s, buf, o->size, &len)) != 0)
		return lib_fail("recv", rv), 0;
	if (len != o->size || bench_seq(buf, len) != seq)
		return bench_fail("reply %llu does not echo its request", (unsigned long long) seq),
		       0;
	return bench_now_ns() - t0;
}

static int
lat_req(const struct bopts *o)
{
	uint64_t *ns  = calloc((size_t) o->count + 1, sizeof(*ns));
	char     *buf = calloc(1, o->size + 8);
	long      i, total = o->warmup + o->count;
	void     *s;

	if (o->count < 1 || open_dial(o, "req", &s) != 0) {
		free(ns);
		free(buf);
		return 1;
	}
	for (i = 0; i < total; i++) {
		uint64_t t = round_trip(o, s, buf, (uint64_t) i);

		if (t == 0)
			break;
		if (i >= o->warmup)
			ns[i - o->warmup] = t;
		set_progress(i + 1);
	}
	if (i == total)
		report_lat(o, ns, o->count);
	bench_hold(o);
	L.close(s);
	free(ns);
	free(buf);
	return i != total;
}

/* rr: the drivers do it with their own concurrency tools. */
static int
rr_req(const struct bopts *o)
{
	return L.rr_req(o);
}

static int
rr_rep(const struct bopts *o)
{
	return L.rr_rep(o);
}

/* ------------------------------------------------------ pub/sub fan-out */

/* Data messages start with 'D'; after them the publisher repeats an 'E'
 * marker for a while so every subscriber learns the end even when a lossy
 * pattern dropped some of them. */
static int
fan_pub(const struct bopts *o)
{
	char    *buf = calloc(1, o->size + 1);
	uint64_t t0, t1;
	void    *s;
	int      rv;

	if (open_listen(o, o->nodrop ? "pub-nodrop" : "pub", &s) != 0) {
		free(buf);
		return 1;
	}
	bench_ready(o);
	if ((rv = L.wait_peers(s, o->subs, 20000)) != 0) {
		lib_fail("waiting for subscribers", rv);
		goto out;
	}
	buf[0] = 'D';
	t0     = bench_now_ns();
	for (long i = 0; i < o->count && rv == 0; i++) {
		if ((rv = L.send(s, buf, o->size)) != 0)
			lib_fail("send", rv);
		set_progress(i + 1);
	}
	t1     = bench_now_ns();
	buf[0] = 'E';
	for (int i = 0; i < 30 && rv == 0; i++) {
		bench_sleep_ms(10);
		if ((rv = L.send(s, buf, o->size)) != 0)
			lib_fail("send end marker", rv);
	}
	/* Absolute CLOCK_MONOTONIC times, the same in every process of the
	 * machine: the runner measures delivery from the first publish. */
	if (rv == 0)
		bench_result(o, "sent=%ld secs=%.6f send_per_s=%.1f start_ns=%llu", o->count,
		    secs_between(t0, t1), (double) o->count / secs_between(t0, t1),
		    (unsigned long long) t0);
out:
	bench_hold(o);
	L.close(s);
	free(buf);
	return rv != 0;
}

static int
fan_sub(const struct bopts *o)
{
	uint64_t start = bench_now_ns(), t0 = 0, t1 = 0;
	long     got = 0;
	size_t   len;
	char     c;
	void    *s;
	int      rv;

	if (open_dial(o, "sub", &s) != 0)
		return 1;
	if ((rv = L.set_recv_timeout(s, 100)) != 0) {
		L.close(s);
		return lib_fail("set recv timeout", rv);
	}
	for (;;) {
		uint64_t now;

		rv  = L.recv(s, &c, 1, &len);
		now = bench_now_ns();
		if (rv == BENCH_TIMEOUT) {
			rv = 0;
			if (got > 0 && now - t1 > 1000000000u)
				break; /* the end markers were lost: idle for 1 s */
			if (got == 0 && now - start > 30000000000u) {
				rv = bench_fail("no message in 30 s");
				break;
			}
			continue;
		}
		if (rv != 0) {
			lib_fail("recv", rv);
			break;
		}
		if (c == 'E')
			break;
		if (got++ == 0)
			t0 = now;
		set_progress(got);
		t1 = now;
	}
	if (rv == 0 && got < 2)
		rv = bench_fail("only %ld messages", got);
	if (rv == 0)
		bench_result(o,
		    "recvd=%ld sent=%ld secs=%.6f msgs_per_s=%.1f first_ns=%llu last_ns=%llu", got,
		    o->count, secs_between(t0, t1), (double) (got - 1) / secs_between(t0, t1),
		    (unsigned long long) t0, (unsigned long long) t1);
	bench_hold(o);
	L.close(s);
	return rv != 0;
}

/* ------------------------------------------------ memory per connection */

static void
report_mem(const struct bopts *o, int conns, long rss0, long rss1)
{
	bench_result(o, "conns=%d rss_before=%ld rss_after=%ld per_conn=%.0f", conns, rss0, rss1,
	    conns > 0 ? (double) (rss1 - rss0) / conns : 0.0);
}

static int
mem_server(const struct bopts *o)
{
	long  rss0;
	int   fds0, conns;
	void *s;

	if (open_listen(o, "pull", &s) != 0)
		return 1;
	fds0 = count_fds();
	rss0 = rss_bytes();
	bench_ready(o);
	conns = wait_conns(fds0, o->count, 30000);
	report_mem(o, conns, rss0, rss_bytes());
	bench_hold(o);
	L.close(s);
	return 0;
}

static int
mem_client(const struct bopts *o)
{
	long  rss0;
	int   fds0, conns, rv = 0;
	void *s;

	if ((rv = L.open(&s, "push")) != 0)
		return lib_fail("open", rv);
	fds0 = count_fds();
	rss0 = rss_bytes();
	for (long i = 0; i < o->count && rv == 0; i++)
		if ((rv = L.dial(s, o->url)) != 0)
			lib_fail("dial", rv);
	conns = wait_conns(fds0, o->count, 30000);
	if (rv == 0)
		report_mem(o, conns, rss0, rss_bytes());
	bench_hold(o);
	L.close(s);
	return rv != 0;
}

/* --------------------------------------------------------- role table */

struct role {
	const char *test, *role;
	int (*fn)(const struct bopts *o);
	int listens;
};

static const struct role roles[] = {
	{ "thr", "pull", thr_pull, 1 },
	{ "thr", "push", thr_push, 0 },
	{ "lat", "rep", lat_rep, 1 },
	{ "lat", "req", lat_req, 0 },
	{ "rr", "rep", rr_rep, 1 },
	{ "rr", "req", rr_req, 0 },
	{ "fan", "pub", fan_pub, 1 },
	{ "fan", "sub", fan_sub, 0 },
	{ "mem", "server", mem_server, 1 },
	{ "mem", "client", mem_client, 0 },
};

static const struct role *
find_role(const char *test, const char *role, int listens)
{
	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
		if (strcmp(roles[i].test, test) != 0)
			continue;
		if (role != NULL ? strcmp(roles[i].role, role) == 0 : roles[i].listens == listens)
			return &roles[i];
	}
	return NULL;
}

/* ---------------------------------------------------------- both mode */

struct thread_arg {
	const struct role *r;
	struct bopts       o;
	pthread_t          tid;
};

static void *
role_thread(void *p)
{
	struct thread_arg *a = p;

	if (a->r->fn(&a->o) != 0) {
		/* The others would wait for us at the barrier forever. */
		fflush(stdout);
		_exit(2);
	}
	return NULL;
}

static int
run_both(const struct bopts *o)
{
	const struct role *srv = find_role(o->test, NULL, 1), *cli = find_role(o->test, NULL, 0);
	int                ncli = strcmp(o->test, "fan") == 0 ? o->subs : 1;
	struct thread_arg *a    = calloc((size_t) ncli + 1, sizeof(*a));

	if (srv == NULL || cli == NULL || strcmp(o->test, "mem") == 0)
		return bench_fail("test %s cannot run as threads of one process", o->test);
	both_mode     = 1;
	both.nclients = ncli;
	pthread_barrier_init(&both.barrier, NULL, (unsigned) ncli + 1);
	for (int i = 0; i <= ncli; i++) {
		a[i].r           = i == 0 ? srv : cli;
		a[i].o           = *o;
		a[i].o.role      = a[i].r->role;
		a[i].o.is_client = i > 0;
		a[i].o.id        = i > 0 ? i - 1 : 0;
		pthread_create(&a[i].tid, NULL, role_thread, &a[i]);
		if (i == 0) { /* dialers start once the listener is bound */
			pthread_mutex_lock(&both.mu);
			while (!both.ready)
				pthread_cond_wait(&both.cv, &both.mu);
			pthread_mutex_unlock(&both.mu);
		}
	}
	for (int i = 0; i <= ncli; i++)
		pthread_join(a[i].tid, NULL);
	free(a);
	return 0;
}

/* ------------------------------------------------------ command line */

static void
usage(void)
{
	fprintf(stderr,
	    "usage: bench_%s TEST ROLE URL [options]\n"
	    "       bench_%s version\n"
	    "  thr pull|push|both   push/pull throughput (pull listens, reports)\n"
	    "  lat rep|req|both     req/rep round-trip latency (req reports)\n"
	    "  rr  rep|req|both     requests/s with --par outstanding (req reports)\n"
	    "  fan pub|sub|both     pub/sub fan-out (pub listens, each sub reports)\n"
	    "  mem server|client    RSS per idle connection (--count conns)\n"
	    "options: --size B (64) --count N (100000) --par K (1) --subs N (8)\n"
	    "  --warmup N (1000) --id N --wait-stdin --linger MS (500)\n"
	    "  --timeout S (120, the process is killed after this)\n"
	    "  --nodrop (fan: the publisher waits for subscribers, never drops)\n"
	    "  --raw (rr: raw sockets where the library has both kinds; iok's\n"
	    "         raw req0/rep0 do what libzmq's DEALER/ROUTER do)\n",
	    L.name, L.name);
	exit(64);
}

static long
num_arg(int argc, char **argv, int *i)
{
	char *end;
	long  v;

	if (*i + 1 >= argc)
		usage();
	v = strtol(argv[++*i], &end, 10);
	if (*end != '\0' || v < 0)
		usage();
	return v;
}

static void
parse(int argc, char **argv, struct bopts *o)
{
	*o = (struct bopts) { .size = 64,
		.count              = 100000,
		.par                = 1,
		.subs               = 8,
		.warmup             = 1000,
		.linger_ms          = 500,
		.timeout_s          = 120 };
	if (argc < 4)
		usage();
	o->test = argv[1];
	o->role = argv[2];
	o->url  = argv[3];
	for (int i = 4; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--size") == 0)
			o->size = (size_t) num_arg(argc, argv, &i);
		else if (strcmp(a, "--count") == 0)
			o->count = num_arg(argc, argv, &i);
		else if (strcmp(a, "--par") == 0)
			o->par = (int) num_arg(argc, argv, &i);
		else if (strcmp(a, "--subs") == 0)
			o->subs = (int) num_arg(argc, argv, &i);
		else if (strcmp(a, "--warmup") == 0)
			o->warmup = num_arg(argc, argv, &i);
		else if (strcmp(a, "--id") == 0)
			o->id = (int) num_arg(argc, argv, &i);
		else if (strcmp(a, "--linger") == 0)
			o->linger_ms = (int) num_arg(argc, argv, &i);
		else if (strcmp(a, "--timeout") == 0)
			o->timeout_s = (int) num_arg(argc, argv, &i);
		else if (strcmp(a, "--wait-stdin") == 0)
			o->wait_stdin = 1;
		else if (strcmp(a, "--nodrop") == 0)
			o->nodrop = 1;
		else if (strcmp(a, "--raw") == 0)
			o->raw = 1;
		else
			usage();
	}
	if (o->par < 1 || o->subs < 1 || o->size < 1)
		usage();
}

static void *
stdin_thread(void *arg)
{
	char buf[256];

	while (read(0, buf, sizeof(buf)) > 0) {
	}
	pthread_mutex_lock(&in.mu);
	atomic_store(&in.eof, 1);
	pthread_cond_broadcast(&in.cv);
	pthread_mutex_unlock(&in.mu);
	return NULL;
}

/* Async-signal-safe: formats by hand and writes once. */
static void
on_alarm(int sig)
{
	char   msg[96] = "bench: timeout, giving up after ", num[24];
	long   v       = atomic_load_explicit(&progress, memory_order_relaxed);
	size_t n = strlen(msg), k = 0;

	do
		num[k++] = (char) ('0' + v % 10);
	while ((v /= 10) > 0 && k < sizeof(num));
	while (k > 0)
		msg[n++] = num[--k];
	memcpy(msg + n, " messages\n", 10);
	if (write(2, msg, n + 10) < 0) {
	}
	_exit(3);
}

int
main(int argc, char **argv)
{
	const struct role *r;
	struct bopts       o;
	pthread_t          tid;
	int                rv;

	if (argc == 2 && strcmp(argv[1], "version") == 0) {
		printf("VERSION %s %s\nRR_METHOD %s\n", L.name, L.version(), L.rr_method);
		return 0;
	}
	parse(argc, argv, &o);
	signal(SIGALRM, on_alarm);
	signal(SIGPIPE, SIG_IGN);
	alarm((unsigned) o.timeout_s);
	raise_nofile();
	o.both = strcmp(o.role, "both") == 0;
	r      = o.both ? NULL : find_role(o.test, o.role, 0);
	if (!o.both && r == NULL)
		usage();
	if (o.wait_stdin)
		pthread_create(&tid, NULL, stdin_thread, NULL);
	if ((rv = L.init()) != 0)
		return lib_fail("init", rv);
	if (o.both) {
		rv = run_both(&o);
	} else {
		o.is_client = !r->listens;
		rv          = r->fn(&o);
	}
	L.fini();
	report_peak();
	fflush(stdout);
	return rv ? 2 : 0;
}
