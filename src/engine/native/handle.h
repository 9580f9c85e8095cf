// Packing an open file into the fuse-native binding's 64-bit fi->fh (the bits are defined
// once in src/engine/formats/handle-bits.ts, generated into generated/handle-bits.h).
// Pure functions: thread-safe, no ownership.
#ifndef LAYERFS_HANDLE_H
#define LAYERFS_HANDLE_H

#include <stdint.h>

#include "generated/handle-bits.h"

// The backing fd in `fh`, or -1 when none.
static inline int lf_fh_fd (uint64_t fh) {
  return (int) ((fh >> LF_FH_FD_SHIFT) & LF_FH_FD_MASK) - 1;
}

// Whether `fd` fits the fd field (fd + 1 must be at most LF_FH_FD_MASK).
static inline int lf_fh_fd_fits (int fd) {
  return fd >= 0 && (uint64_t) fd < LF_FH_FD_MASK;
}

// Packs a JS handle and, when it fits, an fd with its write/upper-ino bits. An fd that
// does not fit is left out (its bits too): the op then goes to JS.
static inline uint64_t lf_fh_pack (uint64_t js_fh, int fd, int direct_write, int native, int upper_ino) {
  uint64_t fh = js_fh & LF_FH_JS_MASK;
  if (lf_fh_fd_fits(fd)) {
    fh |= ((uint64_t) (fd + 1)) << LF_FH_FD_SHIFT;
    if (direct_write) fh |= LF_FH_WRITE;
    if (upper_ino) fh |= LF_FH_UPPER_INO;
  }
  if (native) fh |= LF_FH_NATIVE;
  return fh;
}

#endif
