// The kernel's FUSE protocol as layerfs's engine speaks it: Debian 12's <linux/fuse.h>
// (protocol 7.38) plus what 7.39/7.40 added that the engine uses (FUSE passthrough).
// Written from the kernel's include/uapi/linux/fuse.h (7.40 changelog: "add max_stack_depth
// to fuse_init_out, add FUSE_PASSTHROUGH init flag; add backing_id to fuse_open_out, add
// FOPEN_PASSTHROUGH open flag"). Struct names stay the kernel's, so a C test and wire.ts can
// compare sizeof/offsetof against this one header.
#ifndef LAYERFS_FUSE_KERNEL_H
#define LAYERFS_FUSE_KERNEL_H

#include <stdint.h>
#include <sys/ioctl.h>

// The two structs whose 7.38 layout differs (a padding field became backing_id; part of
// `unused` became max_stack_depth) are renamed on the way in and defined below with the
// 7.40 layout. On a system whose header is already 7.40+, the renamed copies are identical
// and unused.
#define fuse_open_out lf_fuse_open_out_system
#define fuse_init_out lf_fuse_init_out_system
#include <linux/fuse.h>
#undef fuse_open_out
#undef fuse_init_out

// The protocol version the engine implements (the INIT reply may offer less).
#define LF_FUSE_KERNEL_VERSION 7
#define LF_FUSE_KERNEL_MINOR_VERSION 40

struct fuse_open_out {
  uint64_t fh;
  uint32_t open_flags;
  int32_t backing_id;      // 7.40: with FOPEN_PASSTHROUGH, from FUSE_DEV_IOC_BACKING_OPEN
};

struct fuse_init_out {
  uint32_t major;
  uint32_t minor;
  uint32_t max_readahead;
  uint32_t flags;
  uint16_t max_background;
  uint16_t congestion_threshold;
  uint32_t max_write;
  uint32_t time_gran;
  uint16_t max_pages;
  uint16_t map_alignment;
  uint32_t flags2;
  uint32_t max_stack_depth;  // 7.40: how many stacked filesystems may sit under a backing file
  uint32_t unused[6];
};

_Static_assert(sizeof(struct fuse_open_out) == 16, "fuse_open_out is 16 bytes");
_Static_assert(sizeof(struct fuse_init_out) == 64, "fuse_init_out is 64 bytes");
_Static_assert(sizeof(struct lf_fuse_init_out_system) == 64, "the system's fuse_init_out is 64 bytes too");

// Open flags (fuse_open_out.open_flags).
#ifndef FOPEN_PASSTHROUGH
#define FOPEN_PASSTHROUGH (1 << 7)
#endif

// INIT flags above bit 31 travel in flags2 (bit N here is bit N-32 of flags2).
#ifndef FUSE_DIRECT_IO_ALLOW_MMAP
#define FUSE_DIRECT_IO_ALLOW_MMAP (1ULL << 36)
#endif
#ifndef FUSE_PASSTHROUGH
#define FUSE_PASSTHROUGH (1ULL << 37)
#endif
#ifndef FUSE_NO_EXPORT_SUPPORT
#define FUSE_NO_EXPORT_SUPPORT (1ULL << 38)
#endif
#ifndef FUSE_HAS_RESEND
#define FUSE_HAS_RESEND (1ULL << 39)
#endif

// 7.39 opcode (statx); the engine answers ENOSYS for it, the kernel then uses GETATTR.
#ifndef FUSE_STATX
#define FUSE_STATX 52
#endif

// 7.40 notification: the kernel resends every request still pending (not used).
#ifndef FUSE_NOTIFY_RESEND
#define FUSE_NOTIFY_RESEND 7
#endif

// Passthrough backing files (7.40): the server registers an open fd with the connection
// and names it in its OPEN/CREATE reply by the returned id.
struct lf_fuse_backing_map {
  int32_t fd;
  uint32_t flags;    // must be 0
  uint64_t padding;  // must be 0
};
_Static_assert(sizeof(struct lf_fuse_backing_map) == 16, "fuse_backing_map is 16 bytes");

#ifndef FUSE_DEV_IOC_MAGIC
#define FUSE_DEV_IOC_MAGIC 229
#endif
#ifndef FUSE_DEV_IOC_CLONE
#define FUSE_DEV_IOC_CLONE _IOR(FUSE_DEV_IOC_MAGIC, 0, uint32_t)
#endif
#ifndef FUSE_DEV_IOC_BACKING_OPEN
#define FUSE_DEV_IOC_BACKING_OPEN _IOW(FUSE_DEV_IOC_MAGIC, 1, struct lf_fuse_backing_map)
#define FUSE_DEV_IOC_BACKING_CLOSE _IOW(FUSE_DEV_IOC_MAGIC, 2, uint32_t)
#endif

// How deep filesystems may stack under a passthrough backing file: the kernel refuses a
// max_stack_depth above FILESYSTEM_MAX_STACK_DEPTH (2), and a FUSE mount with depth N may
// only take backing files from filesystems of depth < N (ext4/xfs/tmpfs: 0; overlayfs over
// those: 1).
#define LF_FUSE_MAX_STACK_DEPTH 2

#endif
