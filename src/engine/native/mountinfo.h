// Reading this process's mount table (/proc/self/mountinfo, proc(5)): which mount is on
// top at a path. Detaching by path removes whatever is on top there, which need not be
// ours any more (mount.c asks this first).
#ifndef LAYERFS_MOUNTINFO_H
#define LAYERFS_MOUNTINFO_H

#include <sys/types.h>

// The device (st_dev) of the mount on top at `where`, a path as the kernel shows it
// (resolved, no trailing slash): of the mounts at that path, the one no other of them
// sits on. 0 and *dev set; -ENOENT when nothing is mounted there; another -errno when the
// table cannot be read.
int lf_mountinfo_top_device(const char *where, dev_t *dev);

#endif
