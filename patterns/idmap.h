/*
 * idmap.h - a hash table from non-zero 64-bit keys (request ids, tokens,
 * pipe ids, session ids) to pointers, for the patterns.  Kernel thread
 * only, like everything in patterns/.
 */
#ifndef IK_IDMAP_H
#define IK_IDMAP_H

#include <stdbool.h>
#include <stdint.h>

typedef struct ik_idmap ik_idmap;

/* ik_idmap_new: an empty map, NULL if out of memory. */
ik_idmap *ik_idmap_new(void);
void      ik_idmap_free(ik_idmap *m); /* NULL is fine */
/* ik_idmap_put inserts or replaces key (non-zero): 0 or IOK_ENOMEM. */
int ik_idmap_put(ik_idmap *m, uint64_t key, void *val);
/* ik_idmap_add inserts key (non-zero) only if it is absent, in one probe
 * where a get and a put take two: 0, IOK_EEXIST (the map is unchanged)
 * or IOK_ENOMEM. */
int ik_idmap_add(ik_idmap *m, uint64_t key, void *val);
/* ik_idmap_get: key's value, NULL if absent. */
void *ik_idmap_get(const ik_idmap *m, uint64_t key);
/* ik_idmap_del removes key and returns its value (NULL if absent). */
void *ik_idmap_del(ik_idmap *m, uint64_t key);
/* ik_idmap_del_if removes key only if its value is val (one probe where
 * a get and a del take two): true if it did. */
bool     ik_idmap_del_if(ik_idmap *m, uint64_t key, const void *val);
uint32_t ik_idmap_count(const ik_idmap *m);

#endif /* IK_IDMAP_H */
