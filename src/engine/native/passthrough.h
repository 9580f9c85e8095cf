// FUSE passthrough (protocol 7.40): an open file registered with the connection is read
// and written by the kernel itself, with no READ/WRITE requests reaching the engine.
#ifndef LAYERFS_PASSTHROUGH_H
#define LAYERFS_PASSTHROUGH_H

// FUSE_DEV_IOC_BACKING_OPEN: the backing id for `fd` (> 0), or a negative errno:
// -EPERM  passthrough was not negotiated in INIT, or the caller lacks CAP_SYS_ADMIN;
// -EINVAL not a regular file (-EISDIR: a directory);
// -ELOOP  `fd`'s filesystem stacks too deep for the max_stack_depth sent in INIT;
// -EBADF  not an open fd; -ENOTTY: the kernel has no passthrough at all.
int lf_backing_open(int devfd, int fd);

// FUSE_DEV_IOC_BACKING_CLOSE: 0 or a negative errno (-ENOENT: no such id).
int lf_backing_close(int devfd, int id);

#endif
