// Per-node open state shared by JS and the JS-thread request loop (js-loop.c):
//   - the ONE passthrough backing of a node (FUSE_DEV_IOC_BACKING_OPEN id, the backing
//     file's dev/ino, whether it is writable, how many open files use it): the kernel
//     allows one backing file per inode, so JS's opens and C's must share it;
//   - for a node JS registered as a lower-layer regular file, its backing path and its
//     attributes: a read-only OPEN of it is answered here without JS (open, passthrough,
//     reply), and so are its RELEASE and its GETATTR (a lower file's attributes are the
//     index's, constant until something changes through the mount). Where the kernel
//     gives no passthrough (a mount made in a user namespace), such an open keeps the
//     page cache instead and its READs are answered from C's fd too. The fds C holds are
//     kept per node (JS fstats one for GETATTR of a node whose names are gone).
//   - for a node JS registered as a directory: its OPENDIR is answered here (a handle in
//     LF_DIR_NATIVE's range, the open flags JS gives); and for a directory or symlink JS
//     gave the attributes of (a lower-only one's, constant until something changes through
//     the mount), its GETATTR.
//   - for a directory of the writable layer JS gave the stat rule of (its backing path, the
//     st_ino the union shows for it, whether it shows one link: a merged directory), its
//     GETATTR: an lstat of that path here, shaped as the union shapes it. The rule holds
//     while the directory is where it was; its attributes (a create inside changes them)
//     are read live.
// Registrations carry the epoch they were made in; JS bumps the epoch before any request
// that may change what a name resolves to (lf_node_opens_bump), which retires them all.
// JS thread only (JS calls in, js-loop.c reads): no lock.
#ifndef LAYERFS_NODE_OPENS_H
#define LAYERFS_NODE_OPENS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fuse-kernel.h"

typedef struct lf_node_open {
  uint64_t node;
  char *path;        // registered backing path (NUL-terminated), or NULL
  uint64_t size;     // the file's size as the index has it (else: damage, JS reports it)
  uint64_t epoch;    // epoch of the registration
  struct fuse_attr_out attr;  // the GETATTR answer, as JS would send it
  int backing_id;    // -1: none
  uint64_t bdev, bino;
  int writable;
  uint32_t refs;     // open files (JS's and C's) using backing_id
  int nfds, capfds;
  int *fds;          // fds of C's own opens of this node
  uint8_t dir;       // registered as a directory (OPENDIR answered here)
  uint8_t has_attr;  // registered without a path, with its GETATTR answer (attr)
  uint8_t cached;    // with a path: opens are FOPEN_KEEP_CACHE with no backing, READs C's
  int32_t union_at;  // with a path: where the union path starts in it (the layer's root
                     // ends), when a write open may be copied up here (copy-up-open.h); -1: JS's
  char *stat_path;   // a writable-layer directory whose GETATTR is an lstat of this, or NULL
  uint64_t stat_ino; // the st_ino it shows; 0: the writable layer's number of its own
  uint64_t stat_valid;  // attr_valid of the answer (seconds)
  uint8_t nlink_one; // shows one link (a merged directory, as the kernel's overlayfs)
  // A directory whose LOOKUPs C answers (a mark, lookup.h): its path in the lower index
  // (NUL-terminated; NULL: nothing of the lower layers shows in it), and its backing
  // directory on the writable layer (NULL: it has none, only the lower layers hold it).
  uint8_t marked;
  uint8_t same_path; // the union path below it is the index path (no redirect)
  uint32_t ix_len, up_len;
  char *ix_path, *up_path;
} lf_node_open;

typedef struct lf_node_opens {
  lf_node_open **slots;  // open addressing, linear probing; NULL = empty
  size_t cap, count;
  uint64_t epoch;
} lf_node_opens;

lf_node_open *lf_node_opens_get(lf_node_opens *t, uint64_t node);
// The record of `node`, made if absent (NULL: no memory).
lf_node_open *lf_node_opens_make(lf_node_opens *t, uint64_t node);
// Drops the record if it holds nothing any more (no path, no backing, no fds).
void lf_node_opens_tidy(lf_node_opens *t, lf_node_open *r);
// Registers (path != NULL) or unregisters `node`'s backing path and attributes; `cached`:
// its opens are answered without passthrough; `union_at` as in lf_node_open. 0 or ENOMEM.
int lf_node_opens_register(lf_node_opens *t, uint64_t node, const char *path, size_t len, uint64_t size,
                           const struct fuse_attr_out *attr, int cached, int32_t union_at);
// Registers `node` (not a regular file) with its GETATTR answer if `attr` != NULL, and as a
// directory whose OPENDIR is answered here if `dir`. 0 or ENOMEM.
// lf_node_opens_register(…, NULL, …) ends it too.
int lf_node_opens_register_attr(lf_node_opens *t, uint64_t node, const struct fuse_attr_out *attr, int dir);
// Registers `node` as a writable-layer directory whose GETATTR is an lstat of `path`
// (stat_ino / nlink_one / valid as in lf_node_open). 0, EINVAL or ENOMEM.
// lf_node_opens_register(…, NULL, …) ends it too.
int lf_node_opens_register_stat(lf_node_opens *t, uint64_t node, const char *path, size_t len, uint64_t ino, int nlink_one,
                                uint64_t valid);
// GETATTR of a node registered by lf_node_opens_register_stat: fills `out` from an lstat of
// its path. 0, or -1 when JS must answer (the lstat failed, or it is no directory now).
int lf_node_opens_stat(const lf_node_open *r, struct fuse_attr_out *out);
// Marks directory `node` as one whose LOOKUPs the loop answers (lookup.h): from the index at
// `ix` (NULL: none shows there) after no entry was found in its writable-layer directory `up`
// (NULL: it has none); `same_path`: its union path is `ix`. 0 or ENOMEM.
// lf_node_opens_register(…, NULL, …) ends it too.
int lf_node_opens_mark(lf_node_opens *t, uint64_t node, const char *ix, size_t ix_len, const char *up, size_t up_len, int same_path);
// Ends `node`'s mark only (its other registrations stay).
void lf_node_opens_unmark(lf_node_opens *t, uint64_t node);
// Whether `r` is registered (as a file or a directory) in the current epoch.
int lf_node_opens_live(const lf_node_opens *t, const lf_node_open *r);
// Adds / removes one of C's fds. 0 or ENOMEM; remove says whether it was there.
int lf_node_opens_add_fd(lf_node_open *r, int fd);
int lf_node_opens_remove_fd(lf_node_open *r, int fd);
// Whether `fd` is one of C's fds of `r`.
int lf_node_opens_has_fd(const lf_node_open *r, int fd);
// One backing reference less; at 0 the backing id is closed on `devfd`, unless the node is
// a lower file registered in the current epoch: then it stays, idle, for C's next open.
void lf_node_opens_unref(lf_node_opens *t, lf_node_open *r, int devfd);
// Closes an idle backing (no references) of `r`, which may be freed. JS never sees one:
// every JS use of a node's backing (share, adopt, unregister) drops it first.
void lf_node_opens_drop_idle(lf_node_opens *t, lf_node_open *r, int devfd);
// Closes every fd C holds and frees the table (teardown: the device fd goes too).
void lf_node_opens_free(lf_node_opens *t);

#endif
