/*
 * msgpool.h - recycling of small message allocations across threads (see
 * msgpool.c).  Sizes are classes; the caller remembers the class.
 */
#ifndef IK_MSGPOOL_H
#define IK_MSGPOOL_H

#include <stddef.h>

/* The sanitizer builds bypass recycling so use-after-free stays visible. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define IK_NO_RECYCLE 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define IK_NO_RECYCLE 1
#endif
#endif

#define IK_POOL_NCLASS 4
#define IK_POOL_VIEW 3 /* the class of views (a header, no storage) */

/* ik_pool_get returns a block of `size` bytes for class c (any thread),
 * or NULL when out of memory. */
void *ik_pool_get(int c, size_t size);
/* ik_pool_put takes back a block of class c got from ik_pool_get (any
 * thread, not necessarily the one that got it). */
void ik_pool_put(int c, void *p);

#endif
