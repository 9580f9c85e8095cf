// READ and WRITE answered from/to an fd on a queue thread. READ: pread into the thread's
// 1 MiB scratch buffer, writev the reply (the file's bytes never become a JS Buffer).
// WRITE: pwrite the request's data (which JS keeps alive until `done`), reply the count.
#ifndef LAYERFS_FD_REPLY_H
#define LAYERFS_FD_REPLY_H

#include <stdint.h>

#include "work-queue.h"

// The largest READ the kernel sends with max_pages 256.
#define LF_MAX_READ (1024 * 1024)

// A job that answers READ `unique` with up to `size` bytes of `fd` at `offset` (short at
// end of file; -errno if pread fails). NULL when out of memory.
lf_job *lf_fd_reply_job(int devfd, uint64_t unique, int fd, uint64_t offset, uint32_t size);

typedef struct lf_write_job {
  lf_job job;
  int devfd, fd;
  uint64_t unique, offset;
  const char *data;
  size_t len;
  void (*done)(struct lf_write_job *job);  // on the queue thread after the reply; owns the job then
  void *user;  // the caller's: a reference keeping `data` alive
  void *ctx;   // the caller's: the device
} lf_write_job;

// A job that writes `len` bytes at `offset` of `fd` and answers WRITE `unique` with the
// count (a short count if an error came after some bytes; -errno if none were written).
lf_write_job *lf_fd_write_job(int devfd, uint64_t unique, int fd, uint64_t offset, const void *data, size_t len);

#endif
