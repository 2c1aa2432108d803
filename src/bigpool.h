/*
 * bigpool.h - big storage blocks (64 KiB to 16 MiB) kept for reuse.
 *
 * A big message is allocated by one thread and freed by another, and
 * malloc gives each one fresh pages: at 1 MiB a message, faulting in and
 * zeroing 256 pages on each side cost more than the copies (tcp push/pull
 * ran at 0.2-0.3x libzmq).  Freed blocks wait here, by size class, up to a
 * byte budget, and the next message of that class gets one whose pages are
 * mapped.  Any thread; one mutex (a block's copy dwarfs it).
 */
#ifndef IK_BIGPOOL_H
#define IK_BIGPOOL_H

#include <stdbool.h>
#include <stddef.h>

#define IK_BIG_MIN ((size_t) 64 * 1024) /* the smallest class's power of two */
#define IK_BIG_NCLASS 9                 /* 64 KiB .. 16 MiB */
/* A class holds 2^k bytes and this much more, so that a message's header
 * and headroom, or a frame's header, fit beside a 2^k body. */
#define IK_BIG_SLACK ((size_t) 16 * 1024)
/* Bytes kept at most, all classes (a queue's default byte limit: with 8
 * MiB, 1 MiB push/pull faulted 9x more pages at the same rate). */
#define IK_BIG_BUDGET ((size_t) 16 * 1024 * 1024)

/* ik_big_class: the class of the smallest block of at least size bytes,
 * or -1 if size is below IK_BIG_MIN or above the largest class (malloc's
 * business then). */
int ik_big_class(size_t size);
/* ik_big_cap: the bytes a block of class c holds. */
size_t ik_big_cap(int c);
/* ik_big_get: a block of class c (ik_big_cap(c) bytes), NULL if out of
 * memory. */
void *ik_big_get(int c);
/* ik_big_put: take back a block of class c from ik_big_get. */
void ik_big_put(int c, void *p);
/* Giving blocks back.  Kept blocks are pages the process holds for the
 * next burst; after IK_BIG_IDLE_MS with no block taken they go back to
 * malloc (and glibc's arenas to the system), so a process that moved big
 * messages once does not keep 16 MiB for good.  The kernel's timer drives
 * it (kernel.c). */
#define IK_BIG_IDLE_MS 2000
/* ik_big_kept_any: are blocks kept?  A relaxed read, for the kernel's
 * loop to decide whether to watch; any thread. */
bool ik_big_kept_any(void);
/* ik_big_kept_bytes: the bytes kept now (tests, stats). */
size_t ik_big_kept_bytes(void);
/* ik_big_trim: called every IK_BIG_IDLE_MS while blocks are kept: gives
 * every kept block back if none was taken since the last call.  True if
 * blocks are still kept (call again later). */
bool ik_big_trim(void);
/* ik_big_on_first_keep: fn runs (outside the pool's lock, on the thread
 * that put the block) when a block is kept while none was, so a sleeping
 * loop can start watching. */
void ik_big_on_first_keep(void (*fn)(void));
/* Fork: held across fork with the small pool's lock (msg.h). */
void ik_big_lock(void);
void ik_big_unlock(void);
void ik_big_fork_child(void);

#endif
