// See reply.h.
#include "reply.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "fuse-kernel.h"

static int write_message(int fd, struct fuse_out_header *out, const struct iovec *parts, int nparts) {
  if (nparts < 0 || nparts > LF_REPLY_MAX_PARTS) return -EINVAL;
  struct iovec iov[LF_REPLY_MAX_PARTS + 1];
  size_t len = sizeof *out;
  iov[0].iov_base = out;
  iov[0].iov_len = sizeof *out;
  for (int i = 0; i < nparts; i++) {
    iov[i + 1] = parts[i];
    len += parts[i].iov_len;
  }
  if (len > UINT32_MAX) return -E2BIG;
  out->len = (uint32_t) len;
  for (;;) {
    // The device takes a message whole or not at all: no short writes to resume.
    ssize_t n = writev(fd, iov, nparts + 1);
    if (n >= 0) return 0;
    if (errno == EINTR) continue;
    return -errno;
  }
}

int lf_reply(int fd, uint64_t unique, int32_t error, const struct iovec *parts, int nparts) {
  struct fuse_out_header out = { .error = error, .unique = unique };
  return write_message(fd, &out, error ? NULL : parts, error ? 0 : nparts);
}

int lf_notify(int fd, int32_t code, const struct iovec *parts, int nparts) {
  struct fuse_out_header out = { .error = code, .unique = 0 };
  return write_message(fd, &out, parts, nparts);
}

void lf_reply_enomem(int fd, const void *frame, size_t len) {
  uint64_t unique;
  if (len < sizeof(struct fuse_in_header)) return;
  memcpy(&unique, (const char *) frame + offsetof(struct fuse_in_header, unique), sizeof unique);
  lf_reply(fd, unique, -ENOMEM, NULL, 0);
}
