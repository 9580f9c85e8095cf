// LOOKUP answered by the JS-thread request loop (js-loop.c) in directories marked
// (node-opens.h, lf_node_opens_mark): a name the directory's writable-layer part (if any)
// has no entry for — no object, no whiteout — is what the lower index says at the
// directory's index path (if any): an entry, or a cached miss. Anything on the writable
// layer is JS's. native-notes/engine.md "LOOKUP in C" has the design;
// src/engine/formats/loop-lookups.ts the shared numbers.
//
// Node identity. The kernel must get one node id per name for as long as it holds the
// node, whoever answers. The loop hands out ids from LF_LOOKUP_ID_FIRST (JS's counter never
// gets there) and keeps, per marked directory, the names it has an id for: its own, and
// those JS made there (lf_lookups_child: a READDIRPLUS, a LOOKUP the loop left to JS). JS
// files every node the loop makes or looks up again from a record (the batch the loop hands
// it before any other request), so JS's node table stays whole: FORGET, and every later
// request of such a node, is JS's as for its own nodes. When JS forgets one, the loop drops
// its name (lf_lookups_forget).
//
// What ends a mark is what ends a registration (node-opens.h): the epoch, or the directory's
// own registration ending (a copy-up of it, a change below it). A name outlives its
// directory's mark: JS pushes every name it holds there before it marks the directory again,
// and a name JS let go of while its node lives is hidden by a whiteout the lstat finds, or
// absent from the index. While JS has a request in flight that may change the writable
// layer, every LOOKUP is JS's.
//
// JS thread only: no lock.
#ifndef LAYERFS_LOOKUP_H
#define LAYERFS_LOOKUP_H

#include <stddef.h>
#include <stdint.h>

#include "fuse-kernel.h"
#include "lower-index.h"
#include "node-flags.h"
#include "node-opens.h"

typedef struct lf_lookup_name lf_lookup_name;

typedef struct lf_lookups {
  lf_index_t *idx;             // NULL: every LOOKUP is JS's
  uint64_t entry_valid, attr_valid, negative_valid;  // seconds, as JS answers
  uint8_t register_files;      // lower files found are registered for their opens in C
  uint8_t cached;              // ... answered with the page cache kept (no passthrough)
  uint8_t copy_up;             // ... and may be copied up in C (union_at), as JS decides
  uint64_t next_id;
  lf_lookup_name **by_name;    // chained: (parent, name) → id
  lf_lookup_name **by_id;      // chained: id → the same entries
  size_t cap, count;
  char *rec;                   // records not yet taken by JS (loop-lookups.ts's layout)
  size_t nrec, caprec;
  uint64_t answered;           // LOOKUPs answered (SIGUSR2's counts)
} lf_lookups;

// Answers LOOKUP `in` (body: the name, NUL-terminated, `n` bytes) if its directory is
// marked: 1, the reply sent and, for an entry, a record queued. 0: JS answers.
int lf_lookup_answer(lf_lookups *lk, lf_node_opens *opens, lf_node_flags *no_xattrs, int devfd, const struct fuse_in_header *in,
                     const char *body, size_t n);

// JS made node `id` for `name` in `parent` (a marked directory): the loop answers that
// name with it. 0 or ENOMEM (then the mark must end).
int lf_lookups_child(lf_lookups *lk, uint64_t parent, const char *name, size_t len, uint64_t id);

// JS forgot node `id`: its name goes.
void lf_lookups_forget(lf_lookups *lk, uint64_t id);

// Uses the index at `data` (borrowed: the caller keeps it alive and unchanged until
// lf_lookups_free; NULL: no LOOKUP in C). 0, or a negative errno with `err` set.
int lf_lookups_configure(lf_lookups *lk, const void *data, size_t size, uint64_t entry_valid, uint64_t attr_valid,
                         uint64_t negative_valid, int register_files, int cached, int copy_up, char *err, size_t err_size);

// Hands the queued records to the caller (a malloc'd buffer and its size; NULL when none),
// which frees them.
char *lf_lookups_take(lf_lookups *lk, size_t *size);

void lf_lookups_free(lf_lookups *lk);

#endif
