// Where a path of the union is served from, as far as native code can tell without
// JavaScript: the read-only lower index (lower-index.h) minus everything the writable
// layer holds or hides (upper-set.h). The same decision as the fuse-native patch's fast
// path has made since patch level 3 (lf_resolve_full), now shared by both engines.
//
// Pure C (no libfuse, no N-API). Thread-safe: takes the upper set's read lock for the
// duration of one call; the index needs none.
#ifndef LAYERFS_RESOLVE_H
#define LAYERFS_RESOLVE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "generated/inode-numbers.h"
#include "lower-index.h"
#include "upper-set.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  // Native code cannot tell: ask JavaScript (below a path that hides the lower layers,
  // a component longer than NAME_MAX, no index, a relative path).
  LF_DEFER = 0,
  // Served by the lower layers alone: *entry is filled.
  LF_FOUND = 1,
  // Neither the upper set nor the lower index has it, and nothing hides it: ENOENT.
  LF_MISSING = 2,
  // The path itself is in the upper set: *facts is filled (only when facts != NULL;
  // with facts == NULL an upper path answers LF_DEFER).
  LF_UPPER = 3,
} lf_answer_t;

// Resolves `path` (NUL-terminated, "/"-rooted). `upper` may be NULL (no writable layer);
// `idx` NULL answers LF_DEFER. `entry` must not be NULL; `facts` may be.
lf_answer_t lf_resolve (const lf_index_t *idx, lf_upper_set_t *upper, const char *path, lf_entry_t *entry, lf_upper_facts_t *facts);

// lstat of an LF_UPPER_OWN_STAT path in the upper root, with st_ino as the union numbers
// it (facts->origin_ino, else lf_ino_upper). Returns 0, -errno from lstat(2), or
// LF_ASK_JS when native code cannot stat it (no upper root set, or root + path longer
// than its buffer): the caller then asks JavaScript.
#define LF_ASK_JS 1
int lf_resolve_upper_lstat (lf_upper_set_t *upper, const char *path, const lf_upper_facts_t *facts, struct stat *st);

// st_ino numbering (src/overlay/inode.ts; constants in generated/inode-numbers.h):
// tag * 2^40 + backing inode mod 2^40, tag 1 for the writable layer, 2 + i for lower layer i.
static inline uint64_t lf_ino_lower (uint32_t layer, uint64_t backing_ino) {
  return ((uint64_t) layer + LF_INO_TAG_LOWER_FIRST) << LF_INO_SPAN_BITS | (backing_ino & ((1ULL << LF_INO_SPAN_BITS) - 1));
}
static inline uint64_t lf_ino_upper (uint64_t backing_ino) {
  return (uint64_t) LF_INO_TAG_UPPER << LF_INO_SPAN_BITS | (backing_ino & ((1ULL << LF_INO_SPAN_BITS) - 1));
}

#ifdef __cplusplus
}
#endif

#endif
