// READ answered from an fd on a queue thread: pread into the thread's 1 MiB scratch
// buffer, writev the reply. The file's bytes never become a JS Buffer.
#ifndef LAYERFS_FD_REPLY_H
#define LAYERFS_FD_REPLY_H

#include <stdint.h>

#include "work-queue.h"

// The largest READ the kernel sends with max_pages 256.
#define LF_MAX_READ (1024 * 1024)

// A job that answers READ `unique` with up to `size` bytes of `fd` at `offset` (short at
// end of file; -errno if pread fails). NULL when out of memory.
lf_job *lf_fd_reply_job(int devfd, uint64_t unique, int fd, uint64_t offset, uint32_t size);

#endif
