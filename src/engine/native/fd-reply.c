// See fd-reply.h.
#include "fd-reply.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fuse-kernel.h"
#include "reply.h"

typedef struct {
  lf_job job;
  int devfd, fd;
  uint64_t unique, offset;
  uint32_t size;
} fd_reply_job;

static void run(lf_job *j, void *scratch) {
  fd_reply_job *job = (fd_reply_job *) j;
  // Without the queue's scratch (the job ran in the caller at shutdown) allocate.
  char *buf = scratch ? scratch : malloc(LF_MAX_READ);
  if (!buf) {
    lf_reply(job->devfd, job->unique, -ENOMEM, NULL, 0);
    free(job);
    return;
  }
  size_t done = 0;
  int err = 0;
  while (done < job->size) {
    ssize_t n = pread(job->fd, buf + done, job->size - done, (off_t) (job->offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      err = -errno;
      break;
    }
    if (n == 0) break;  // end of file: a short read is the answer
    done += (size_t) n;
  }
  struct iovec part = { .iov_base = buf, .iov_len = done };
  lf_reply(job->devfd, job->unique, err, &part, 1);
  if (!scratch) free(buf);
  free(job);
}

lf_job *lf_fd_reply_job(int devfd, uint64_t unique, int fd, uint64_t offset, uint32_t size) {
  fd_reply_job *job = malloc(sizeof *job);
  if (!job) return NULL;
  job->job.run = run;
  job->devfd = devfd;
  job->fd = fd;
  job->unique = unique;
  job->offset = offset;
  job->size = size > LF_MAX_READ ? LF_MAX_READ : size;
  return &job->job;
}

static void run_write(lf_job *j, void *scratch) {
  (void) scratch;
  lf_write_job *job = (lf_write_job *) j;
  size_t done = 0;
  int err = 0;
  while (done < job->len) {
    ssize_t n = pwrite(job->fd, job->data + done, job->len - done, (off_t) (job->offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      err = -errno;
      break;
    }
    done += (size_t) n;
  }
  struct fuse_write_out out = { .size = (uint32_t) done };
  struct iovec part = { .iov_base = &out, .iov_len = sizeof out };
  lf_reply(job->devfd, job->unique, done == 0 && err ? err : 0, &part, 1);
  job->done(job);
}

lf_write_job *lf_fd_write_job(int devfd, uint64_t unique, int fd, uint64_t offset, const void *data, size_t len) {
  lf_write_job *job = calloc(1, sizeof *job);
  if (!job) return NULL;
  job->job.run = run_write;
  job->devfd = devfd;
  job->fd = fd;
  job->unique = unique;
  job->offset = offset;
  job->data = data;
  job->len = len;
  return job;
}
