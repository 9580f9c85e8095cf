// Getting a /dev/fuse connection mounted, and detaching it again. As root: open
// /dev/fuse and mount(2) with fd=N. Otherwise (or when mount(2) is refused): the setuid
// fusermount3, which mounts and hands the device fd back over a unix socket (SCM_RIGHTS).
#ifndef LAYERFS_MOUNT_H
#define LAYERFS_MOUNT_H

#include <stddef.h>
#include <sys/types.h>

typedef struct {
  const char *mountpoint;
  const char *fsname;        // the source column of /proc/mounts
  const char *subtype;       // type shows as fuse.<subtype>; NULL: plain "fuse"
  unsigned root_mode;        // S_IFDIR | permission bits of the root before the first GETATTR
  int allow_other;           // let other users in (the kernel still checks modes)
  int default_permissions;   // the kernel checks permissions against the attributes we return
  int read_only;
  int suid;                  // honour setuid bits (default: nosuid, as libfuse)
  int dev;                   // honour device nodes (default: nodev, as libfuse)
  int force_fusermount;      // use fusermount3 even as root (tests; rootless code paths)
} lf_mount_request;

typedef struct {
  int fd;           // the /dev/fuse connection
  int fusermount;   // 1: mounted by fusermount3, so unmounted by fusermount3 too
  int commfd;       // fusermount3's socket, held open: closing it (or dying) unmounts (auto_unmount)
  pid_t helper;     // that fusermount3 process (0 when none)
} lf_mount_result;

// Mounts; 0 or a negative errno with a message in `err`.
int lf_mount(const lf_mount_request *req, lf_mount_result *out, char *err, size_t errlen);

// Detaches whatever is mounted at `mountpoint` (MNT_DETACH: a busy mount goes too, its open
// files keep working until closed). `fusermount`: through `fusermount3 -u -z`, for mounts
// made by it as non-root. 0 or a negative errno; -EINVAL means nothing is mounted there.
int lf_unmount(const char *mountpoint, int fusermount, char *err, size_t errlen);

// Ends a fusermount3 helper kept for auto_unmount: closes its socket, reaps it.
void lf_mount_release_helper(lf_mount_result *m);

#endif
