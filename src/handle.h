/*
 * handle.h - the handle table: ids to objects, for app threads.
 *
 * Ids are never reused (a 32-bit counter), so a stale handle simply finds
 * nothing: IOK_ECLOSED, never someone else's object.  Objects are
 * reference counted; the table holds one reference while registered.
 */
#ifndef IK_HANDLE_H
#define IK_HANDLE_H

#include <stdatomic.h>
#include <stdint.h>

enum ik_obj_type { IK_OBJ_SOCK = 1, IK_OBJ_DIALER, IK_OBJ_LISTENER };

typedef struct ik_obj ik_obj;
struct ik_obj {
	uint32_t   id;
	int        type;
	atomic_int refs;
	ik_obj    *hnext;          /* hash chain */
	void (*destroy)(ik_obj *); /* called when refs reaches 0 */
};

/* ik_obj_init sets refs to 1 (the creator's reference). */
void ik_obj_init(ik_obj *o, int type, void (*destroy)(ik_obj *));
/* ik_obj_register gives o an id and makes it findable; the table takes a
 * reference.  0 or IOK_ENOMEM. */
int ik_obj_register(ik_obj *o);
/* ik_obj_unregister makes o unfindable and drops the table's reference.
 * Returns 0, or IOK_ECLOSED if it was not registered (already closed). */
int ik_obj_unregister(ik_obj *o);
/* ik_obj_hold finds id of the given type and takes a reference; NULL if
 * there is none (closed, stale, wrong type). */
ik_obj *ik_obj_hold(uint32_t id, int type);
void    ik_obj_ref(ik_obj *o);
void    ik_obj_rele(ik_obj *o);

/* ik_obj_use finds id as ik_obj_hold does, for the calls on the hot path
 * (send, receive): the object stays alive through a reference the calling
 * thread's small cache holds, so a hit takes no lock and no reference of
 * its own, and nothing is released after.  Valid until this thread's next
 * ik_obj_use or ik_obj_cache_drop: never hold two this way at once.
 * A closed object's memory (not its connections) waits for the next
 * ik_obj_use of each thread that used it, or that thread's exit. */
ik_obj *ik_obj_use(uint32_t id, int type);
/* ik_obj_cache_drop releases the calling thread's cached references. */
void ik_obj_cache_drop(void);

/* Fork support: lock the table, visit every object of a type, unlock.  The
 * child reinitialises the lock instead of unlocking it. */
void ik_table_lock(void);
void ik_table_unlock(void);
void ik_table_fork_child(void);
void ik_table_foreach(int type, void (*fn)(ik_obj *, void *), void *arg);

#endif
