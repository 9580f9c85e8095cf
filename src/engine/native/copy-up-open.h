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
// A copy with data on a durable mount is flushed before its rename, and the flush waits for
// the disk: that copy is built on a queue thread (lf_copy_up_pending) while the loop goes on
// answering, and placed, opened and answered back on the JS thread
// (lf_copy_up_place_pending) — unless JS began a change of the writable layer meanwhile
// (`changes`), or the node is not as it was: then the temp file goes and JS gets the OPEN.
//
// JS keeps what it must decide: a file whose parent directory is not on the writable layer
// yet (the union copies directories up), a node whose backing is in use (the union retires
// it), a mount without passthrough, and any request while a request of JS's that may
// change the writable layer is unanswered (`js_changing`).
// JS thread only, but for a pending copy's build: no lock.
#ifndef LAYERFS_COPY_UP_OPEN_H
#define LAYERFS_COPY_UP_OPEN_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "../../sys/native/copy-up-small.h"
#include "fuse-kernel.h"
#include "node-flags.h"
#include "node-opens.h"
#include "work-queue.h"

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

// A copy-up whose temp file is being built on a queue thread. The request loop pushes
// `job` (which builds, then calls `built`, still on the queue thread, to hand it back to the
// JS thread for lf_copy_up_place_pending). `changes`: the state's count when it began.
// `in`, `oin`: the OPEN, for JS when the copy is not placed after all.
typedef struct lf_copy_up_pending {
  lf_job job;
  void (*built)(struct lf_copy_up_pending *p);
  void *ctx, *carrier;   // the caller's, for `built` (carrier: made before the push, so
                         // that handing it back needs no memory)
  int orphan;            // the mount went away first: only the temp file is removed
  uint64_t changes;
  struct fuse_in_header in;
  struct fuse_open_in oin;
  char *src, *origin_name;  // its own copies: the record's path, the configuration may go
  lf_copy_up_t c;
  lf_copy_up_result_t res;
  char origin[24];
  char tmp[PATH_MAX], dest[PATH_MAX], parent[PATH_MAX];
} lf_copy_up_pending;

typedef struct lf_copy_up_state {
  char *upper;         // the writable layer's root directory; NULL: every copy-up is JS's
  char *work;          // a private directory on the same filesystem for temp files
  char *origin_name;   // the origin xattr's name (trusted. or user.overlay.origin)
  int umask;           // the process umask (fixed while the mount serves)
  int durable;         // a copy with data is flushed first (built on a queue thread)
  int reflink;         // FICLONE worked so far
  uint64_t seq;        // temp names
  int js_changing;     // JS has a request in flight that may change the writable layer
  uint64_t changes;    // how often js_changing was set: a pending copy begun before is void
  lf_copied_up *done;  // not yet taken by JS
  size_t ndone, capdone;
  lf_node_flags adopted;  // handles of copy-ups made here whose RELEASE is answered here
  uint64_t copied;        // copy-ups made here (SIGUSR2's counts)
  lf_copy_up_pending *pending;  // being built (one at a time: another goes to JS)
} lf_copy_up_state;

// Whether the OPEN `oin` (one that may write) of `r` was copied up and answered here (1),
// or its copy is being built (2: cs->pending, for the caller to push with its `built` and
// `ctx` filled in; answered by lf_copy_up_place_pending); 0: JS answers it, as before.
// `devfd`: the FUSE device, for the backing id and the reply.
enum { LF_COPY_UP_DECLINED = 0, LF_COPY_UP_ANSWERED = 1, LF_COPY_UP_BUILDING = 2 };
int lf_copy_up_open(lf_copy_up_state *cs, int devfd, const struct fuse_in_header *in, lf_node_open *r, const struct fuse_open_in *oin);

// On the JS thread, after cs->pending was built: if JS began no change since and the node's
// registration still holds, the copy is renamed into place, opened and answered as
// lf_copy_up_open answers (1). Else (0) the OPEN (cs->pending->in, oin) is the caller's to
// hand to JS. Either way cs->pending is the caller's to free (lf_copy_up_pending_free,
// which removes a temp file left unplaced).
int lf_copy_up_place_pending(lf_copy_up_state *cs, lf_node_opens *opens, int devfd);

// Removes an unplaced build's temp file and frees `p` (any thread: touches nothing else).
void lf_copy_up_pending_free(lf_copy_up_pending *p);

// RELEASE of handle `fh` of `r`'s node: if it is a copy-up's made here, closes its fd,
// drops its backing reference, answers, and tells JS (LF_RELEASED): 1. Else 0.
int lf_copy_up_release(lf_copy_up_state *cs, lf_node_opens *opens, int devfd, const struct fuse_in_header *in, lf_node_open *r,
                       uint64_t fh);

// JS has (on) or no longer has a request in flight that may change the writable layer.
void lf_copy_up_set_changing(lf_copy_up_state *cs, int on);

// Sets the configuration (copies the strings). 0 or ENOMEM.
int lf_copy_up_configure(lf_copy_up_state *cs, const char *upper, const char *work, const char *origin_name, int umask,
                         int durable);

// Frees the state, after the queue that builds pending copies has stopped. A pending
// build's temp file is removed; the job, still to be handed back, is left an orphan: whoever
// gets it frees it (lf_copy_up_pending_free).
void lf_copy_up_free(lf_copy_up_state *cs);

#endif
