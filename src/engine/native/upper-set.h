// The writable layer's path set: every path the upper directory holds, with what the
// union knows of it (the facts of src/core/filesystem.ts UpperFacts, as LF_UPPER_* flag
// bits generated from src/engine/formats/upper-facts.ts into generated/upper-facts.h).
// JavaScript is the only writer of the upper directory, so it keeps this set exact:
// lf_upper_set before it replies to the op that created or changed a path,
// lf_upper_remove when a path (and, for a directory, everything below) goes.
//
// Pure C (no libfuse, no N-API).
//
// Thread-safety: one readers-writer lock per set. lf_upper_set / lf_upper_remove /
// lf_upper_set_root take it for writing; readers (resolve.c) take it for reading with
// lf_upper_rdlock and then use the *_locked functions until lf_upper_unlock. A set may be
// used by any number of threads; lf_upper_free must not race with any other call.
//
// Ownership: the set copies every path it is given; callers keep nothing alive.
//
// Errors: functions that allocate return 0 or -ENOMEM (the set is then unchanged, and a
// caller that cannot tell the set a change must stop answering from it); -EINVAL for a
// path that is empty or does not start with "/".
#ifndef LAYERFS_UPPER_SET_H
#define LAYERFS_UPPER_SET_H

#include <stddef.h>
#include <stdint.h>

#include "generated/upper-facts.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lf_upper_set lf_upper_set_t;

// What the set records of one path.
typedef struct {
  // LF_UPPER_HIDES_LOWER | LF_UPPER_NO_XATTRS | LF_UPPER_OWN_STAT | LF_UPPER_WHITEOUT.
  uint32_t flags;
  // st_ino to report for an LF_UPPER_OWN_STAT object copied up from a lower one (its
  // origin's number); 0: none, report lf_ino_upper(backing inode).
  uint64_t origin_ino;
} lf_upper_facts_t;

// A new empty set with no upper root; NULL on ENOMEM.
lf_upper_set_t * lf_upper_new (void);
void lf_upper_free (lf_upper_set_t *s);

// Records (or replaces) the facts of `path` (len bytes, "/"-rooted).
int lf_upper_set (lf_upper_set_t *s, const char *path, size_t len, const lf_upper_facts_t *facts);

// Forgets `path`; with `subtree`, also every path below it ("/" with subtree: all).
void lf_upper_remove (lf_upper_set_t *s, const char *path, size_t len, int subtree);

// The upper directory (where an LF_UPPER_OWN_STAT path is lstat'ed); copied.
int lf_upper_set_root (lf_upper_set_t *s, const char *dir, size_t len);

// Number of paths in the set (a snapshot; takes the lock).
uint32_t lf_upper_count (lf_upper_set_t *s);

// ---- Readers: hold the read lock across the *_locked calls ----
void lf_upper_rdlock (lf_upper_set_t *s);
void lf_upper_unlock (lf_upper_set_t *s);

// 1 and *facts filled when `path` is in the set, else 0.
int lf_upper_get_locked (const lf_upper_set_t *s, const char *path, size_t len, lf_upper_facts_t *facts);

// 1 when a proper ancestor of `path` ("/" included) is in the set with
// LF_UPPER_HIDES_LOWER, else 0.
int lf_upper_blocked_locked (const lf_upper_set_t *s, const char *path, size_t len);

// 1 when the set is empty (lets a reader skip hashing).
int lf_upper_empty_locked (const lf_upper_set_t *s);

// The upper root (not NUL-terminated) or NULL when none was set; valid while locked.
const char * lf_upper_root_locked (const lf_upper_set_t *s, size_t *len);

#ifdef __cplusplus
}
#endif

#endif
