// Cache invalidations the engine sends the kernel (FUSE_NOTIFY_INVAL_ENTRY/INODE), as jobs
// for a queue thread. Why not on the JS thread: the kernel takes the parent directory's
// lock for INVAL_ENTRY and page locks for INVAL_INODE, which a request waiting for a JS
// answer may hold; writing from the JS thread could then wait for itself.
#ifndef LAYERFS_NOTIFY_H
#define LAYERFS_NOTIFY_H

#include <stdint.h>

#include "work-queue.h"

typedef struct lf_notify_job {
  lf_job job;
  int devfd;
  int code;
  int rc;                                   // the write's result: 0 or a negative errno (-ENOENT: not cached, fine)
  void (*done)(struct lf_notify_job *job);  // called on the queue thread after the write; owns the job then
  void *user;                               // the caller's: the promise to settle
  void *ctx;                                // the caller's: the device
  uint32_t body_len;
  char body[];                              // the notification's struct, then a name and its NUL
} lf_notify_job;

// Forget the name `name` in directory `parent` (and the entry's attributes). NULL: no memory.
lf_notify_job *lf_notify_inval_entry(int devfd, uint64_t parent, const char *name, uint32_t namelen);
// Drop the cached attributes of `nodeid` and its page cache in [offset, offset+length)
// (length 0: to the end; offset -1: attributes only).
lf_notify_job *lf_notify_inval_inode(int devfd, uint64_t nodeid, int64_t offset, int64_t length);

#endif
