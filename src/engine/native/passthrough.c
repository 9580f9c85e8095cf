// See passthrough.h.
#include "passthrough.h"

#include <errno.h>
#include <stdint.h>
#include <sys/ioctl.h>

#include "fuse-kernel.h"

int lf_backing_open(int devfd, int fd) {
  struct lf_fuse_backing_map map = { .fd = fd, .flags = 0, .padding = 0 };
  int id = ioctl(devfd, FUSE_DEV_IOC_BACKING_OPEN, &map);
  return id < 0 ? -errno : id;
}

int lf_backing_close(int devfd, int id) {
  uint32_t backing_id = (uint32_t) id;
  return ioctl(devfd, FUSE_DEV_IOC_BACKING_CLOSE, &backing_id) < 0 ? -errno : 0;
}
