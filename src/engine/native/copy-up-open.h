// The first write OPEN of a lower file, copied up in the JS-thread request loop (js-loop.c)
// instead of in JS: a registered lower file (node-opens.h) that the union marked as one C
// may copy (union_at >= 0: a regular file with no xattrs, no set-id bit, one link, no
// holes, at most LF_COPY_UP_SMALL_MAX bytes, reached by its own lower path) is copied with
// the union's own small-file copy (src/sys/native/copy-up-small.c), opened, and answered
// by passthrough — the three requests a copy-up cost in JS (LOOKUP, OPEN, RELEASE) become
// one (the LOOKUP). JS learns of each before it runs anything else (lf_copied_up_take):
// it records the copy in the union's writable-layer state and adopts the open file as a
// handle of its own, whose later requests (FLUSH, FSYNC, SETATTR, RELEASE) it answers.
//
// JS keeps what it must decide: a file whose parent directory is not on the writable layer
// yet (the union copies directories up), a copy with data that must be flushed before it
// is renamed into place (the flush waits for the disk: the pool's job), a node whose
// backing is in use (the union retires it), a mount without passthrough, and any request
// while a request of JS's that may change the writable layer is unanswered (`js_changing`).
// JS thread only: no lock.
#ifndef LAYERFS_COPY_UP_OPEN_H
#define LAYERFS_COPY_UP_OPEN_H

#include <stddef.h>
#include <stdint.h>

#include "fuse-kernel.h"
#include "node-flags.h"
#include "node-opens.h"

// What JS must learn from the request loop, in order:
//  - LF_COPIED: a copy-up made here of `node`'s file; `fd` its open file, whose handle is
//    LF_OPEN_NATIVE + fd (-1: copied but not opened: the OPEN goes on to JS, which opens the
//    copy), opened by uid `uid`, with passthrough or not; `unanswered`: the open's reply
//    found nobody (interrupted), so no RELEASE will come: JS releases the handle itself.
//    JS adopts the handle (its FLUSH, FSYNC, SETATTR… reach JS), but its RELEASE is
//    answered here (`adopted`), which closes `fd` and drops its backing reference, then:
//  - LF_RELEASED: JS forgets handle LF_OPEN_NATIVE + fd of `node` without closing anything.
enum { LF_COPIED = 0, LF_RELEASED = 1 };
typedef struct lf_copied_up {
  uint64_t node;
  int32_t fd;
  uint32_t uid;
  uint8_t kind;
  uint8_t passthrough;
  uint8_t unanswered;
} lf_copied_up;

typedef struct lf_copy_up_state {
  char *upper;         // the writable layer's root directory; NULL: every copy-up is JS's
  char *work;          // a private directory on the same filesystem for temp files
  char *origin_name;   // the origin xattr's name (trusted. or user.overlay.origin)
  int umask;           // the process umask (fixed while the mount serves)
  int durable;         // a copy with data is flushed first: then JS copies it
  int reflink;         // FICLONE worked so far
  uint64_t seq;        // temp names
  int js_changing;     // JS has a request in flight that may change the writable layer
  lf_copied_up *done;  // not yet taken by JS
  size_t ndone, capdone;
  lf_node_flags adopted;  // handles of copy-ups made here whose RELEASE is answered here
  uint64_t copied;        // copy-ups made here (SIGUSR2's counts)
} lf_copy_up_state;

// Whether the OPEN `oin` (one that may write) of `r` was copied up and answered here; 0:
// JS answers it, as before. `devfd`: the FUSE device, for the backing id and the reply.
int lf_copy_up_open(lf_copy_up_state *cs, int devfd, const struct fuse_in_header *in, lf_node_open *r, const struct fuse_open_in *oin);

// RELEASE of handle `fh` of `r`'s node: if it is a copy-up's made here, closes its fd,
// drops its backing reference, answers, and tells JS (LF_RELEASED): 1. Else 0.
int lf_copy_up_release(lf_copy_up_state *cs, lf_node_opens *opens, int devfd, const struct fuse_in_header *in, lf_node_open *r,
                       uint64_t fh);

// Sets the configuration (copies the strings). 0 or ENOMEM.
int lf_copy_up_configure(lf_copy_up_state *cs, const char *upper, const char *work, const char *origin_name, int umask,
                         int durable);

void lf_copy_up_free(lf_copy_up_state *cs);

#endif
