/*
 * iokcat - a drop-in replacement for nngcat (nng-utils 1.5.2) over iok.
 *
 * iokcat takes nngcat's command line (the same option names, aliases,
 * abbreviations and "--opt=value" forms), prints received messages in
 * nngcat's formats byte for byte, and exits with nngcat's codes: 0 when the
 * exchange ran to its end (count reached, receive timeout, reply or survey
 * done), 1 on any error, with nngcat's messages on stderr.  Scripts can swap
 * one for the other.
 *
 * Deliberate differences, each where nngcat 1.5.2 is broken or where iok has
 * no equivalent:
 *   --pair     nngcat ignores it ("No protocol specified."); iokcat does what
 *              its help says: pair1, or pair0 with --compat.
 *   --count N without --interval on a sending req/surveyor/pair/bus socket:
 *              nngcat fails with "Cannot set recv timeout: Invalid argument"
 *              once a millisecond has passed; iokcat sends N times, each time
 *              receiving until the exchange ends (req reply, survey end) or
 *              --recv-timeout.
 *   --socket-name nngcat parses and ignores it; iokcat names the socket.
 *   TLS (--insecure, --cacert, --cert, --key) and ZeroTier (--zt-home): iok
 *              has neither transport, so they are refused with a clear error
 *              rather than silently ignored.
 *   --help     the same layout, naming iokcat and listing --bus0.
 *   an unknown or malformed option prints nngcat's message, then a hint to
 *              use --help.
 *
 * Where iok differs from nng underneath, iokcat makes up for it so that the
 * observable behaviour stays nngcat's:
 *   - push and pair sends wait for a connected peer, and push waits for its
 *     messages to leave before exiting (see send_data);
 *   - no receive size limit unless --recv-maxsz (see setup_socket);
 *   - dialers are synchronous unless --async (below).
 *
 * Dialing: nngcat starts dialers synchronously unless --async (or --compat)
 * is given, so "iokcat --push --dial tcp://host:port" fails at once with
 * "Unable to dial on ...: Connection refused" when nobody listens.  iok's
 * dial has the same default, so iokcat passes 0, and IOK_FLAG_NONBLOCK
 * (retry in the background) with --async/--compat, as nngcat does.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "iok.h"

/* ------------------------------------------------------------ settings */

/* What a protocol does with data, which decides both the checks nngcat
 * applies to the options and the loop that runs. */
enum kind {
	K_NONE = 0,
	K_RECV,   /* pull, sub: print what arrives */
	K_SEND,   /* push, pub: send --data */
	K_ASK,    /* req, surveyor: send, then print the answers */
	K_ANSWER, /* rep, respondent: print, and answer with --data if given */
	K_PEER,   /* pair, bus: send if --data, print what arrives */
};

enum format {
	F_UNSET = 0, /* no format option: nngcat prints nothing */
	F_NO,        /* --format no */
	F_RAW,
	F_ASCII,
	F_QUOTED,
	F_MSGPACK,
	F_HEX,
};

enum addr_mode { A_DIAL, A_LISTEN };

struct addr {
	enum addr_mode mode;
	char          *url;
};

/* Durations are milliseconds; -1 means "not given" as in nngcat. */
static struct {
	const char  *pattern; /* iok pattern name, NULL until a protocol */
	enum kind    kind;
	bool         send_blocks; /* push0, pair0, pair1: see send_data */
	enum format  format;
	int          verbose; /* flags are ints: the option table points at them */
	int          compat;
	int          async;
	int          count;
	int          delay;
	int          interval;
	int          sendtimeo;
	int          recvtimeo;
	long long    recvmaxsz; /* -1: not given (no limit, as nngcat) */
	const char  *sockname;
	char        *data; /* NULL: no --data / --file */
	size_t       datalen;
	struct addr *addrs;
	size_t       naddrs;
	char       **topics;
	size_t       ntopics;
	uint64_t     nsent;
} cfg = {
	.interval  = -1,
	.sendtimeo = -1,
	.recvtimeo = -1,
	.recvmaxsz = -1,
};

/* ------------------------------------------------------------- helpers */

static void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void *
xrealloc(void *p, size_t n)
{
	if ((p = realloc(p, n == 0 ? 1 : n)) == NULL) {
		fatal("Out of memory.");
	}
	return p;
}

static char *
xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;

	return memcpy(xrealloc(NULL, n), s, n);
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(int64_t ms)
{
	struct timespec ts = {
		.tv_sec  = (time_t) (ms / 1000),
		.tv_nsec = (long) (ms % 1000) * 1000000,
	};

	while (ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

/* nngcat's integer arguments: decimal digits only, at most maxv.  nngcat
 * accumulates in an int that wraps, which is where its "overflow" message
 * comes from; the same arithmetic gives the same message here. */
static int
intarg(const char *val, int maxv)
{
	uint32_t u = 0;

	if (val[0] == '\0') {
		fatal("Empty integer argument.");
	}
	for (; *val != '\0'; val++) {
		if (!isdigit((unsigned char) *val)) {
			fatal("Integer argument expected.");
		}
		u = u * 10 + (uint32_t) (*val - '0');
		if ((int32_t) u > maxv) {
			fatal("Integer argument too large.");
		}
	}
	if ((int32_t) u < 0) {
		fatal("Integer argument overflow.");
	}
	return (int) u;
}

/* Reads a whole file ("-" is standard input) into cfg.data. */
static void
loadfile(const char *path)
{
	FILE  *f   = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	char  *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (f == NULL) {
		fatal("Cannot open file %s: %s", path, strerror(errno));
	}
	do {
		if (len == cap) {
			cap = cap ? cap * 2 : 4096;
			buf = xrealloc(buf, cap);
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	if (ferror(f)) {
		fatal("Read from %s failed: %s", path, strerror(errno));
	}
	if (f != stdin) {
		fclose(f);
	}
	cfg.data    = buf;
	cfg.datalen = len;
}

/* ------------------------------------------------------------- options */

struct optspec;
typedef void (*opt_fn)(const struct optspec *o, const char *arg);

/* One command-line option: its long name, short letter (0 for none),
 * whether it takes an argument, the handler, and the handler's operands. */
struct optspec {
	const char *name;
	char        sname;
	bool        arg;
	opt_fn      fn;
	int         val;
	const char *str;
	int        *ip;
};

static void
opt_help(const struct optspec *o, const char *arg)
{
	static const char *const lines[] = {
		"Usage: iokcat <proto> <addr>... [<fmt>] [<opts>...] [<src>]",
		"",
		"<proto> must be one of:",
		"  --req0                 (or alias --req)",
		"  --rep0                 (or alias --rep)",
		"  --pub0                 (or alias --pub)",
		"  --sub0                 (or alias --sub)",
		"  --push0                (or alias --push)",
		"  --pull0                (or alias --pull)",
		"  --surveyor0            (or alias --surveyor)",
		"  --respondent0          (or alias --respondent)",
		"  --bus0                 (or alias --bus)",
		"  --pair0",
		"  --pair1",
		"  --pair                 (alias for pair1, or pair0 with --compat)",
		"",
		"<addr> must be one or more of:",
		"  --dial <url>           (or alias --connect <url>)",
		"  --listen <url>         (or alias --bind <url>)",
		"  --bind-local <port>    (or alias -L <port>)",
		"  --connect-local <port> (or alias -l <port>)",
		"  --bind-ipc <path>      (or alias -X <path>)",
		"  --connect-ipc <path>   (or alias -x <path>)",
		"",
		"<fmt> may be one or none of:",
		"  --format <no|ascii|hex|msgpack|quoted|raw>",
		"  --ascii                (or alias -A)",
		"  --quoted               (or alias -Q)",
		"  --hex",
		"  --msgpack",
		"  --raw",
		"",
		"<opts> may be any of:",
		"  --subscribe <topic>    (only with --sub protocol)",
		"  --silent               (or alias -q)",
		"  --verbose              (or alias -v)",
		"  --count <num>          (or alias -C <num>)",
		"  --delay <secs>         (or alias -d <secs>)",
		"  --interval <secs>      (or alias -i <secs>)",
		"  --recv-timeout <secs>",
		"  --send-timeout <secs>",
		"  --recv-maxsz <size>    (or alias -Z <size>)",
		"  --socket-name <name>",
		"  --compat",
		"  --async",
		"  --version              (or alias -V)",
		"  (--insecure, --cacert, --cert, --key and --zt-home are refused:",
		"   iok has no TLS or ZeroTier transport)",
		"",
		"<src> may be one of:",
		"  --file <file>          (or alias -F <file>). Use - for standard input.",
		"  --data <data>          (or alias -D <data>)",
	};

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		puts(lines[i]);
	}
	exit(1); /* as nngcat */
}

static void
opt_version(const struct optspec *o, const char *arg)
{
	printf("%s\n", iok_version());
	exit(0);
}

static void
opt_proto(const struct optspec *o, const char *arg)
{
	if (cfg.pattern != NULL) {
		fatal("Only one protocol may be specified.");
	}
	cfg.pattern = o->str;
	cfg.kind    = (enum kind) o->val;
}

static void
add_addr(enum addr_mode mode, const char *url)
{
	cfg.addrs                   = xrealloc(cfg.addrs, (cfg.naddrs + 1) * sizeof(*cfg.addrs));
	cfg.addrs[cfg.naddrs].mode  = mode;
	cfg.addrs[cfg.naddrs++].url = xstrdup(url);
}

static void
opt_addr(const struct optspec *o, const char *arg)
{
	add_addr((enum addr_mode) o->val, arg);
}

/* --bind-ipc / --connect-ipc: nngcat prefixes "ipc:///" whatever the path
 * looks like, so "-X /tmp/s" is ipc:////tmp/s (still /tmp/s). */
static void
opt_addr_ipc(const struct optspec *o, const char *arg)
{
	char *url = xrealloc(NULL, strlen(arg) + sizeof("ipc:///"));

	sprintf(url, "ipc:///%s", arg);
	add_addr((enum addr_mode) o->val, url);
	free(url);
}

static void
opt_addr_local(const struct optspec *o, const char *arg)
{
	char url[64];

	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", intarg(arg, 65536));
	add_addr((enum addr_mode) o->val, url);
}

static void
opt_source(const struct optspec *o, const char *arg)
{
	if (cfg.data != NULL) {
		fatal("Data (--file, --data) may be specified only once.");
	}
	if (o->val) { /* --file */
		loadfile(arg);
		return;
	}
	cfg.data    = xstrdup(arg);
	cfg.datalen = strlen(arg);
}

static void
opt_subscribe(const struct optspec *o, const char *arg)
{
	cfg.topics                = xrealloc(cfg.topics, (cfg.ntopics + 1) * sizeof(char *));
	cfg.topics[cfg.ntopics++] = xstrdup(arg);
}

static void
set_format(enum format f)
{
	if (cfg.format != F_UNSET) {
		fatal("Format may be specified only once.");
	}
	cfg.format = f;
}

static void
opt_format(const struct optspec *o, const char *arg)
{
	set_format((enum format) o->val);
}

static void
opt_format_name(const struct optspec *o, const char *arg)
{
	static const struct {
		const char *name;
		enum format fmt;
	} names[] = {
		{ "no", F_NO },
		{ "ascii", F_ASCII },
		{ "hex", F_HEX },
		{ "quoted", F_QUOTED },
		{ "raw", F_RAW },
		{ "msgpack", F_MSGPACK },
	};

	if (cfg.format != F_UNSET) {
		fatal("Format may be specified only once.");
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(arg, names[i].name) == 0) {
			set_format(names[i].fmt);
			return;
		}
	}
	fatal("Invalid format specified.");
}

/* Flags (--verbose, --silent, --compat, --async) store val in *ip. */
static void
opt_flag(const struct optspec *o, const char *arg)
{
	*o->ip = o->val;
}

/* Whole seconds, at most a day, as nngcat; stored in milliseconds. */
static void
opt_secs(const struct optspec *o, const char *arg)
{
	*o->ip = intarg(arg, 86400) * 1000;
}

static void
opt_count(const struct optspec *o, const char *arg)
{
	cfg.count = intarg(arg, 0x7fffffff);
}

static void
opt_recvmaxsz(const struct optspec *o, const char *arg)
{
	cfg.recvmaxsz = intarg(arg, 0x7fffffff); /* 0: no limit, in both */
}

static void
opt_sockname(const struct optspec *o, const char *arg)
{
	cfg.sockname = arg;
}

static void
opt_unsupported(const struct optspec *o, const char *arg)
{
	fatal("Option --%s is not supported: iok has no %s transport.", o->name, o->str);
}

/* nngcat's option table, name for name (abbreviations resolve against the
 * whole table, so adding a name here can make an abbreviation ambiguous). */
static const struct optspec optspecs[] = {
	{ "help", 'h', false, opt_help, 0, NULL, NULL },
	{ "verbose", 'v', false, opt_flag, 1, NULL, &cfg.verbose },
	{ "silent", 'q', false, opt_flag, 0, NULL, &cfg.verbose },
	{ "req0", 0, false, opt_proto, K_ASK, "req0", NULL },
	{ "rep0", 0, false, opt_proto, K_ANSWER, "rep0", NULL },
	{ "push0", 0, false, opt_proto, K_SEND, "push0", NULL },
	{ "pull0", 0, false, opt_proto, K_RECV, "pull0", NULL },
	{ "pub0", 0, false, opt_proto, K_SEND, "pub0", NULL },
	{ "sub", 0, false, opt_proto, K_RECV, "sub0", NULL }, /* vs subscribe */
	{ "sub0", 0, false, opt_proto, K_RECV, "sub0", NULL },
	{ "surveyor0", 0, false, opt_proto, K_ASK, "surveyor0", NULL },
	{ "respondent0", 0, false, opt_proto, K_ANSWER, "respondent0", NULL },
	{ "pair", 0, false, opt_proto, K_PEER, "pair", NULL }, /* see main */
	{ "pair0", 0, false, opt_proto, K_PEER, "pair0", NULL },
	{ "pair1", 0, false, opt_proto, K_PEER, "pair1", NULL },
	{ "bus0", 0, false, opt_proto, K_PEER, "bus0", NULL },
	{ "dial", 0, true, opt_addr, A_DIAL, NULL, NULL },
	{ "listen", 0, true, opt_addr, A_LISTEN, NULL, NULL },
	{ "data", 'D', true, opt_source, 0, NULL, NULL },
	{ "file", 'F', true, opt_source, 1, NULL, NULL },
	{ "subscribe", 0, true, opt_subscribe, 0, NULL, NULL },
	{ "format", 0, true, opt_format_name, 0, NULL, NULL },
	{ "ascii", 'A', false, opt_format, F_ASCII, NULL, NULL },
	{ "quoted", 'Q', false, opt_format, F_QUOTED, NULL, NULL },
	{ "raw", 0, false, opt_format, F_RAW, NULL, NULL },
	{ "hex", 0, false, opt_format, F_HEX, NULL, NULL },
	{ "compat", 0, false, opt_flag, 1, NULL, &cfg.compat },
	{ "async", 0, false, opt_flag, 1, NULL, &cfg.async },
	{ "msgpack", 0, false, opt_format, F_MSGPACK, NULL, NULL },
	{ "recv-maxsz", 'Z', true, opt_recvmaxsz, 0, NULL, NULL },
	{ "count", 'C', true, opt_count, 0, NULL, NULL },
	{ "delay", 'd', true, opt_secs, 0, NULL, &cfg.delay },
	{ "interval", 'i', true, opt_secs, 0, NULL, &cfg.interval },
	{ "recv-timeout", 0, true, opt_secs, 0, NULL, &cfg.recvtimeo },
	{ "send-timeout", 0, true, opt_secs, 0, NULL, &cfg.sendtimeo },
	{ "socket-name", 0, true, opt_sockname, 0, NULL, NULL },
	/* nanocat's names */
	{ "bind", 0, true, opt_addr, A_LISTEN, NULL, NULL },
	{ "connect", 0, true, opt_addr, A_DIAL, NULL, NULL },
	{ "bind-ipc", 'X', true, opt_addr_ipc, A_LISTEN, NULL, NULL },
	{ "connect-ipc", 'x', true, opt_addr_ipc, A_DIAL, NULL, NULL },
	{ "bind-local", 'L', true, opt_addr_local, A_LISTEN, NULL, NULL },
	{ "connect-local", 'l', true, opt_addr_local, A_DIAL, NULL, NULL },
	/* accepted by nngcat, refused here */
	{ "insecure", 'k', false, opt_unsupported, 0, "TLS", NULL },
	{ "cacert", 0, true, opt_unsupported, 0, "TLS", NULL },
	{ "key", 0, true, opt_unsupported, 0, "TLS", NULL },
	{ "cert", 'E', true, opt_unsupported, 0, "TLS", NULL },
	{ "zt-home", 0, true, opt_unsupported, 0, "ZeroTier", NULL },
	{ "version", 'V', false, opt_version, 0, NULL, NULL },
	{ NULL, 0, false, NULL, 0, NULL, NULL },
};

/* Finds the option a "--name" (name of namelen bytes) or "-c" refers to:
 * an exact long name wins, else a unique prefix.  Returns 0 and sets *op,
 * or IOK_EINVAL (no such option) / IOK_EAMBIGUOUS. */
static int
opt_lookup(const char *name, size_t namelen, bool shortopt, const struct optspec **op)
{
	const struct optspec *found   = NULL;
	int                   matches = 0;

	for (const struct optspec *o = optspecs; o->name != NULL; o++) {
		if (shortopt) {
			if (o->sname != 0 && o->sname == name[0]) {
				*op = o;
				return 0;
			}
		} else if (strncmp(name, o->name, namelen) == 0) {
			if (strlen(o->name) == namelen) {
				*op = o;
				return 0;
			}
			found = o;
			matches++;
		}
	}
	if (matches == 0) {
		return IOK_EINVAL;
	}
	*op = found;
	return matches == 1 ? 0 : IOK_EAMBIGUOUS;
}

/* Parses argv[*idx] (and its argument) as nngcat does: "--name",
 * "--name=value", "--name:value", "--name value", "-c value", "-cvalue".
 * Returns 0 with *op and *arg set, -1 at the end of the options (the first
 * word not starting with '-', or a lone "-"), or an IOK_E* error. */
static int
opt_next(int argc, char **argv, int *idx, const struct optspec **op, const char **arg)
{
	const char *a;
	size_t      l;
	bool        shortopt;
	int         rv;

	if (*idx >= argc || argv[*idx][0] != '-') {
		return -1;
	}
	a = argv[*idx];
	if (a[1] == '\0') {
		(*idx)++;
		return -1;
	}
	shortopt = a[1] != '-';
	a += shortopt ? 1 : 2;
	l = shortopt ? 1 : strcspn(a, "=:");
	if ((rv = opt_lookup(a, l, shortopt, op)) != 0) {
		return rv;
	}
	*arg = NULL;
	if (!(*op)->arg) {
		if (a[l] != '\0') { /* no clustering of short options */
			return IOK_EINVAL;
		}
	} else if (a[l] != '\0') {
		*arg = a + l + (shortopt ? 0 : 1);
	} else if (*idx + 1 >= argc) {
		return IOK_ENOARG;
	} else {
		*arg = argv[++*idx];
	}
	(*idx)++;
	return 0;
}

static void
bad_option(const char *fmt, const char *word)
{
	fprintf(stderr, fmt, word);
	fprintf(stderr, "\nUse --help for usage.\n");
	exit(1);
}

static void
parse_args(int argc, char **argv)
{
	const struct optspec *o;
	const char           *arg;
	int                   idx = 1, rv;

	while ((rv = opt_next(argc, argv, &idx, &o, &arg)) == 0) {
		o->fn(o, arg);
	}
	switch (rv) {
	case IOK_EINVAL:
		bad_option("Option %s is invalid.", argv[idx]);
		break;
	case IOK_EAMBIGUOUS:
		bad_option("Option %s is ambiguous (specify in full).", argv[idx]);
		break;
	case IOK_ENOARG:
		bad_option("Option %s requires argument.", argv[idx]);
		break;
	default: /* words after the options are ignored, as by nngcat */
		break;
	}
}

/* The combination checks nngcat makes after parsing, in its order and with
 * its messages. */
static void
check_args(void)
{
	if (cfg.naddrs == 0) {
		fatal("No address specified.");
	}
	if (cfg.compat) {
		if (cfg.async) {
			fatal("Options --async and --compat are incompatible.");
		}
		if (cfg.count != 0) {
			fatal("Options --count and --compat are incompatible.");
		}
		if (cfg.pattern != NULL && strcmp(cfg.pattern, "pair1") == 0) {
			fatal("Protocol does not support --compat.");
		}
		cfg.async = 1; /* nanocat connected in the background */
	}
	if (cfg.pattern != NULL && strcmp(cfg.pattern, "pair") == 0) {
		cfg.pattern = cfg.compat ? "pair0" : "pair1";
	}
	cfg.send_blocks = cfg.pattern != NULL &&
	                  (strcmp(cfg.pattern, "push0") == 0 || strcmp(cfg.pattern, "pair0") == 0 ||
	                      strcmp(cfg.pattern, "pair1") == 0);
	if (cfg.pattern != NULL && strcmp(cfg.pattern, "sub0") == 0) {
		if (cfg.ntopics == 0) {
			opt_subscribe(NULL, ""); /* everything */
		}
	} else if (cfg.ntopics != 0) {
		fatal("Protocol does not support --subscribe.");
	}
	switch (cfg.kind) {
	case K_RECV:
		if (cfg.data != NULL) {
			fatal("Protocol does not support --file or --data.");
		}
		if (cfg.interval >= 0) {
			fatal("Protocol does not support --interval.");
		}
		break;
	case K_SEND:
		if (cfg.format != F_UNSET) {
			fatal("Protocol does not support --format options.");
		}
		/* fall through */
	case K_ASK:
		if (cfg.data == NULL) {
			fatal("Protocol requires either --file or --data.");
		}
		break;
	case K_ANSWER:
		if (cfg.interval >= 0) {
			fatal("Protocol does not support --interval.");
		}
		break;
	case K_PEER:
		if (cfg.interval >= 0 && cfg.data == NULL) {
			fatal("Option --interval requires either --file or --data.");
		}
		break;
	case K_NONE:
		fatal("No protocol specified.");
	}
}

/* -------------------------------------------------------------- output */

static void
print_quoted(const unsigned char *b, size_t len)
{
	putchar('"');
	for (size_t i = 0; i < len; i++) {
		switch (b[i]) {
		case '\n':
			fputs("\\n", stdout);
			break;
		case '\r':
			fputs("\\r", stdout);
			break;
		case '\t':
			fputs("\\t", stdout);
			break;
		case '"':
		case '\\':
			putchar('\\');
			putchar(b[i]);
			break;
		default:
			if (isprint(b[i])) {
				putchar(b[i]);
			} else {
				printf("\\x%02x", b[i]);
			}
		}
	}
	fputs("\"\n", stdout);
}

/* MessagePack bin 8/16/32: a type byte and a big-endian length, then the
 * bytes, so a stream of messages can be split again. */
static void
print_msgpack(const unsigned char *b, size_t len)
{
	int nbytes = len < 256 ? 1 : len < 65536 ? 2 : 4;

	putchar(nbytes == 1 ? 0xc4 : nbytes == 2 ? 0xc5 : 0xc6);
	for (int i = nbytes - 1; i >= 0; i--) {
		putchar((int) ((len >> (8 * i)) & 0xff));
	}
	fwrite(b, 1, len, stdout);
}

/* Prints one message body in the chosen format, exactly as nngcat does
 * (--ascii and --raw add no newline; --quoted and --hex end each message
 * with one). */
static void
printmsg(const void *buf, size_t len)
{
	const unsigned char *b = buf;

	switch (cfg.format) {
	case F_UNSET:
	case F_NO:
		return;
	case F_RAW:
		fwrite(b, 1, len, stdout);
		break;
	case F_ASCII:
		for (size_t i = 0; i < len; i++) {
			putchar(isprint(b[i]) ? b[i] : '.');
		}
		break;
	case F_QUOTED:
		print_quoted(b, len);
		break;
	case F_MSGPACK:
		print_msgpack(b, len);
		break;
	case F_HEX:
		putchar('"');
		for (size_t i = 0; i < len; i++) {
			printf("\\x%02x", b[i]);
		}
		fputs("\"\n", stdout);
		break;
	}
	fflush(stdout);
}

/* --------------------------------------------------------------- loops */

/* Receives one message and prints it.  Returns 0 or the iok error; a
 * message the kernel completed with an error (iok_msg_status) counts as
 * that error, so a survey's end reads as IOK_ETIMEDOUT however it comes. */
static int
recv_print(iok_socket s)
{
	iok_msg *m;
	int      rv;

	if ((rv = iok_recvmsg(s, &m, 0)) != 0) {
		return rv;
	}
	if ((rv = iok_msg_status(m)) == 0) {
		printmsg(iok_msg_body(m), iok_msg_len(m));
	}
	iok_msg_free(m);
	return rv;
}

/* The end of an exchange rather than a failure: a receive timeout, a
 * survey that ended, or a req socket with no request outstanding. */
static bool
exchange_over(int rv)
{
	return rv == IOK_ETIMEDOUT || rv == IOK_ESTATE;
}

static void
recvloop(iok_socket s)
{
	for (int iters = 0; cfg.count == 0 || iters < cfg.count; iters++) {
		int rv = recv_print(s);

		if (exchange_over(rv)) {
			return;
		}
		if (rv != 0) {
			fatal("Receive error: %s", iok_strerror(rv));
		}
	}
}

/*
 * nng's push and pair sockets have no send queue: a send blocks until a
 * peer is connected, so nngcat neither sends into the void nor exits before
 * its message has left.  iok queues sends (IOK_OPT_SENDBUF) whether or not
 * a peer is there, and reports connections and transmissions only through
 * statistics, so for these patterns iokcat polls "stat:pipes" before each
 * send and "stat:tx-msgs" before exiting.  If the statistics cannot be read
 * it falls back to iok_close's linger.
 */

static bool
stat_at_least(iok_socket s, const char *name, const char *name2, uint64_t want)
{
	uint64_t a = 0, b = 0;

	if (iok_socket_get_uint64(s, name, &a) != 0 ||
	    (name2 != NULL && iok_socket_get_uint64(s, name2, &b) != 0)) {
		return true; /* no statistics: do not wait */
	}
	return a + b >= want;
}

static bool
has_peer(iok_socket s)
{
	return stat_at_least(s, "stat:pipes", NULL, 1);
}

/* Every message sent has been written or dropped by the kernel. */
static bool
all_sent(iok_socket s)
{
	return stat_at_least(s, "stat:tx-msgs", "stat:tx-dropped", cfg.nsent);
}

/* Polls cond (1 ms, doubling to 32 ms) until it holds or timeout_ms
 * (negative: never) passes.  Returns 0 or IOK_ETIMEDOUT. */
static int
poll_until(iok_socket s, bool (*cond)(iok_socket), int timeout_ms)
{
	int64_t deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : INT64_MAX;
	int64_t pause    = 1;

	while (!cond(s)) {
		if (now_ms() >= deadline) {
			return IOK_ETIMEDOUT;
		}
		sleep_ms(pause);
		pause = pause < 32 ? pause * 2 : pause;
	}
	return 0;
}

static void
send_data(iok_socket s)
{
	int rv = 0;

	if (cfg.send_blocks) {
		rv = poll_until(s, has_peer, cfg.sendtimeo > 0 ? cfg.sendtimeo : -1);
	}
	if (rv == 0) {
		rv = iok_send(s, cfg.data, cfg.datalen, 0);
	}
	if (rv != 0) {
		fatal("Send error: %s", iok_strerror(rv));
	}
	cfg.nsent++;
}

/* rep/respondent with --data: print each request, answer with the data. */
static void
resploop(iok_socket s)
{
	for (int iters = 0; cfg.count == 0 || iters < cfg.count; iters++) {
		int rv = recv_print(s);

		if (rv != 0) {
			fatal("Receive error: %s", iok_strerror(rv));
		}
		send_data(s);
	}
}

/* Waits out the rest of an --interval period that began at start. */
static void
sleep_rest(int64_t start)
{
	int64_t delta = now_ms() - start;

	if (delta >= 0 && delta < cfg.interval) {
		sleep_ms(cfg.interval - delta);
	}
}

static bool
last_iteration(int iters)
{
	return (cfg.interval < 0 && cfg.count == 0) || (cfg.count > 0 && iters >= cfg.count);
}

/* push/pub: send the data once, --count times, or every --interval. */
static void
sendloop(iok_socket s)
{
	sleep_ms(cfg.delay);
	for (int iters = 1;; iters++) {
		int64_t start = now_ms();

		send_data(s);
		if (last_iteration(iters)) {
			break;
		}
		sleep_rest(start);
	}
	if (cfg.send_blocks) { /* a message accepted is a message delivered */
		(void) poll_until(s, all_sent, cfg.sendtimeo > 0 ? cfg.sendtimeo : -1);
	}
}

/* Prints what arrives until the --interval period that began at start ends
 * (capped by --recv-timeout), or the exchange ends.  Without --interval the
 * socket's own receive timeout applies. */
static void
recv_period(iok_socket s, int64_t start)
{
	for (;;) {
		int rv;

		if (cfg.interval >= 0) {
			int64_t expire = cfg.interval - (now_ms() - start);

			if (expire < 0) {
				expire = 0;
			}
			if (cfg.recvtimeo >= 0 && expire > cfg.recvtimeo) {
				expire = cfg.recvtimeo;
			}
			rv = iok_socket_set_ms(s, IOK_OPT_RECVTIMEO, (iok_duration) expire);
			if (rv != 0) {
				fatal("Cannot set recv timeout: %s", iok_strerror(rv));
			}
		}
		rv = recv_print(s);
		if (exchange_over(rv)) {
			return;
		}
		if (rv != 0) {
			fatal("Cannot receive: %s", iok_strerror(rv));
		}
	}
}

/* req/surveyor, and pair/bus with data: send, then print what comes back;
 * once, or --count times, or every --interval. */
static void
sendrecv(iok_socket s)
{
	sleep_ms(cfg.delay);
	for (int iters = 1;; iters++) {
		int64_t start = now_ms();

		send_data(s);
		if (cfg.interval < 0 && cfg.count == 0) {
			recvloop(s);
			break;
		}
		recv_period(s, start);
		if (last_iteration(iters)) {
			break;
		}
		sleep_rest(start);
	}
}

static void
run(iok_socket s)
{
	switch (cfg.kind) {
	case K_RECV:
		recvloop(s);
		break;
	case K_SEND:
		sendloop(s);
		break;
	case K_ASK:
		sendrecv(s);
		break;
	case K_ANSWER:
		if (cfg.data != NULL) {
			resploop(s);
		} else {
			recvloop(s);
		}
		break;
	case K_PEER:
		if (cfg.data != NULL) {
			sendrecv(s);
		} else {
			recvloop(s);
		}
		break;
	case K_NONE:
		break;
	}
}

/* ------------------------------------------------------------- sockets */

static void
setup_socket(iok_socket *s)
{
	int rv;

	if ((rv = iok_socket_open(s, cfg.pattern)) != 0) {
		fatal("Unable to open socket: %s", iok_strerror(rv));
	}
	for (size_t i = 0; i < cfg.ntopics; i++) {
		const char *t = cfg.topics[i];

		rv = iok_socket_set(*s, IOK_OPT_SUB_SUBSCRIBE, t, strlen(t));
		if (rv != 0) {
			fatal("Unable to subscribe to topic %s: %s", t, iok_strerror(rv));
		}
	}
	/* As nngcat, a zero timeout means "not set" (wait forever). */
	if (cfg.sendtimeo > 0 &&
	    (rv = iok_socket_set_ms(*s, IOK_OPT_SENDTIMEO, cfg.sendtimeo)) != 0) {
		fatal("Unable to set send timeout: %s", iok_strerror(rv));
	}
	if (cfg.recvtimeo > 0 &&
	    (rv = iok_socket_set_ms(*s, IOK_OPT_RECVTIMEO, cfg.recvtimeo)) != 0) {
		fatal("Unable to set recv timeout: %s", iok_strerror(rv));
	}
	/* nngcat 1.5.2 without --recv-maxsz takes messages of any size over
	 * tcp and ipc (20 MB tried), where iok's default limit is 1 MiB; a
	 * drop-in must not lose what nngcat would print, so no limit here. */
	if ((rv = iok_socket_set_size(
	         *s, IOK_OPT_RECVMAXSZ, cfg.recvmaxsz >= 0 ? (size_t) cfg.recvmaxsz : 0)) != 0) {
		fatal("Unable to set max receive size: %s", iok_strerror(rv));
	}
	if (cfg.sockname != NULL &&
	    (rv = iok_socket_set_string(*s, IOK_OPT_SOCKNAME, cfg.sockname)) != 0) {
		fatal("Unable to set socket name: %s", iok_strerror(rv));
	}
}

/* The listener's URL for --verbose; a tcp port 0 becomes the bound port,
 * as nng reports it. */
static void
print_listening(iok_listener l, const char *url)
{
	char  *u = NULL;
	int    port;
	size_t n;

	if (iok_listener_get_string(l, IOK_OPT_URL, &u) == 0) {
		url = u;
	}
	n = strlen(url);
	if (strncmp(url, "tcp", 3) == 0 && n >= 2 && strcmp(url + n - 2, ":0") == 0 &&
	    iok_listener_get_int(l, IOK_OPT_TCP_BOUND_PORT, &port) == 0) {
		printf("Listening at: %.*s:%d\n", (int) (n - 2), url, port);
	} else {
		printf("Listening at: %s\n", url);
	}
	if (u != NULL) {
		iok_strfree(u);
	}
}

static void
print_connected(iok_dialer d, const char *url)
{
	char *u = NULL;

	if (iok_dialer_get_string(d, IOK_OPT_URL, &u) == 0) {
		url = u;
	}
	printf("Connected to: %s\n", url);
	if (u != NULL) {
		iok_strfree(u);
	}
}

static void
start_dialer(iok_socket s, const char *url)
{
	iok_dialer d;
	int        rv;

	if ((rv = iok_dialer_create(&d, s, url)) != 0) {
		fatal("Unable to create dialer for %s: %s", url, iok_strerror(rv));
	}
	/* Synchronous unless --async, as nngcat: see the top of the file. */
	if ((rv = iok_dialer_start(d, cfg.async ? IOK_FLAG_NONBLOCK : 0)) != 0) {
		fatal("Unable to dial on %s: %s", url, iok_strerror(rv));
	}
	if (cfg.verbose) {
		print_connected(d, url);
	}
}

static void
start_listener(iok_socket s, const char *url)
{
	iok_listener l;
	int          rv;

	if ((rv = iok_listener_create(&l, s, url)) != 0) {
		fatal("Unable to create listener for %s: %s", url, iok_strerror(rv));
	}
	if ((rv = iok_listener_start(l, 0)) != 0) {
		fatal("Unable to listen on %s: %s", url, iok_strerror(rv));
	}
	if (cfg.verbose) {
		print_listening(l, url);
	}
}

int
main(int argc, char **argv)
{
	iok_socket s;

	parse_args(argc, argv);
	check_args();
	setup_socket(&s);
	for (size_t i = 0; i < cfg.naddrs; i++) {
		if (cfg.addrs[i].mode == A_DIAL) {
			start_dialer(s, cfg.addrs[i].url);
		} else {
			start_listener(s, cfg.addrs[i].url);
		}
	}
	run(s);
	/* Closing flushes what is still queued (up to IOK_OPT_LINGER), where
	 * nngcat sleeps 200 ms after its last send for the same reason. */
	iok_close(s);
	return 0;
}
