/*
 * file.c - the watched-file backend ("tcp+file:///etc/app/peers"): one
 * "host:port[ weight]" per line.  libuv watches the file's directory, not
 * the file, because editors and deploy tools replace a file by renaming
 * a new one over it, which a watch on the old inode would miss.  A file
 * with a malformed line is ignored whole (a half-written edit never
 * empties the set); a missing file is looked for again every
 * dns:ttl-min.  The file is small and local, so it is read synchronously.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "discovery.h"
#include "kernel.h"

#define FILE_MAX (256 * 1024)

typedef struct file_state {
	iok_discovery_watch *w; /* NULL once stopped (the handle is closing) */
	char                *path;
	const char          *base; /* the file's name within its directory */
	uv_fs_event_t        ev;
	bool                 ev_on;
} file_state;

static void
read_file(file_state *st)
{
	iok_discovery_addr a[IK_DISC_MAX];
	char              *buf, *storage = NULL;
	ssize_t            len = 0, r;
	int                fd, n;

	if ((fd = open(st->path, O_RDONLY | O_CLOEXEC)) < 0) {
		iok_discovery_fail(st->w, IOK_ENOENT, IOK_DURATION_DEFAULT);
		return;
	}
	if ((buf = malloc(FILE_MAX)) == NULL) {
		close(fd);
		iok_discovery_fail(st->w, IOK_ENOMEM, IOK_DURATION_DEFAULT);
		return;
	}
	while (len < FILE_MAX && (r = read(fd, buf + len, (size_t) (FILE_MAX - len))) > 0) {
		len += r;
	}
	close(fd);
	n = len >= FILE_MAX ? -IOK_EMSGSIZE
	                    : ik_disc_parse_lines(buf, (size_t) len, a, IK_DISC_MAX, &storage);
	free(buf);
	if (n < 0) {
		iok_discovery_fail(st->w, -n, IOK_DURATION_INFINITE); /* until the next edit */
		return;
	}
	(void) iok_discovery_update(st->w, a, n, IOK_DURATION_INFINITE);
	free(storage);
}

static void
changed(uv_fs_event_t *h, const char *filename, int events, int status)
{
	file_state *st = h->data;
	(void) events;
	if (st->w == NULL || status < 0) {
		return;
	}
	if (filename == NULL || strcmp(filename, st->base) == 0) {
		read_file(st);
	}
}

static void
file_refresh(void *arg)
{
	read_file(arg);
}

static int
file_start(iok_discovery_watch *w, const char *target, void **state)
{
	file_state *st;
	char       *slash;
	if (target[0] != '/' || target[strlen(target) - 1] == '/') {
		return IOK_EADDRINVAL; /* an absolute path to a file */
	}
	if ((st = calloc(1, sizeof(*st))) == NULL || (st->path = strdup(target)) == NULL) {
		free(st);
		return IOK_ENOMEM;
	}
	st->w    = w;
	slash    = strrchr(st->path, '/');
	st->base = slash + 1;
	/* Watch the directory ("/" for a file at the root). */
	char   dir[4096];
	size_t dl = slash == st->path ? 1 : (size_t) (slash - st->path);
	if (dl >= sizeof(dir)) {
		free(st->path);
		free(st);
		return IOK_EADDRINVAL;
	}
	memcpy(dir, st->path, dl);
	dir[dl] = '\0';
	uv_fs_event_init(ik_loop(), &st->ev);
	st->ev.data = st;
	st->ev_on   = uv_fs_event_start(&st->ev, changed, dir, 0) == 0;
	*state      = st;
	read_file(st);
	return 0;
}

static void
ev_closed(uv_handle_t *h)
{
	file_state *st = h->data;
	free(st->path);
	free(st);
}

static void
file_stop(void *arg)
{
	file_state *st = arg;
	st->w          = NULL;
	uv_close((uv_handle_t *) &st->ev, ev_closed);
}

const iok_discovery_backend ik_disc_backend_file = {
	.name    = "file",
	.start   = file_start,
	.refresh = file_refresh,
	.stop    = file_stop,
};
