// See notify.h.
#include "notify.h"

#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "fuse-kernel.h"
#include "reply.h"

static void run(lf_job *j, void *scratch) {
  (void) scratch;
  lf_notify_job *job = (lf_notify_job *) j;
  struct iovec part = { .iov_base = job->body, .iov_len = job->body_len };
  job->rc = lf_notify(job->devfd, job->code, &part, 1);
  job->done(job);
}

static lf_notify_job *alloc_job(int devfd, int code, uint32_t body_len) {
  lf_notify_job *job = calloc(1, sizeof *job + body_len);
  if (!job) return NULL;
  job->job.run = run;
  job->devfd = devfd;
  job->code = code;
  job->body_len = body_len;
  return job;
}

lf_notify_job *lf_notify_inval_entry(int devfd, uint64_t parent, const char *name, uint32_t namelen) {
  struct fuse_notify_inval_entry_out out = { .parent = parent, .namelen = namelen };
  // The kernel wants the name followed by a NUL, not counted in namelen.
  lf_notify_job *job = alloc_job(devfd, FUSE_NOTIFY_INVAL_ENTRY, (uint32_t) sizeof out + namelen + 1);
  if (!job) return NULL;
  memcpy(job->body, &out, sizeof out);
  memcpy(job->body + sizeof out, name, namelen);
  job->body[sizeof out + namelen] = 0;
  return job;
}

lf_notify_job *lf_notify_inval_inode(int devfd, uint64_t nodeid, int64_t offset, int64_t length) {
  struct fuse_notify_inval_inode_out out = { .ino = nodeid, .off = offset, .len = length };
  lf_notify_job *job = alloc_job(devfd, FUSE_NOTIFY_INVAL_INODE, (uint32_t) sizeof out);
  if (!job) return NULL;
  memcpy(job->body, &out, sizeof out);
  return job;
}
