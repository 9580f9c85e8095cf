// Getting a /dev/fuse connection mounted, and detaching it again. As root: open
// /dev/fuse and mount(2) with fd=N. Otherwise (or when mount(2) is refused): the setuid
// fusermount3, which mounts and hands the device fd back over a unix socket (SCM_RIGHTS).
#ifndef LAYERFS_MOUNT_H
#define LAYERFS_MOUNT_H

#include <limits.h>
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
  // Which mount in /proc/self/mountinfo is ours, so that detaching removes only that: the
  // mountpoint as the table shows it (resolved before mounting: resolving it afterwards
  // would ask this very mount, which nobody serves yet) and the device the kernel gave
  // the mount. own_dev 0: unknown (a connection made elsewhere); detached by path alone.
  char where[PATH_MAX];
  dev_t own_dev;
} lf_mount_result;

// Mounts; 0 or a negative errno with a message in `err`.
int lf_mount(const lf_mount_request *req, lf_mount_result *out, char *err, size_t errlen);

// Detaches whatever is mounted at `mountpoint` (MNT_DETACH: a busy mount goes too, its open
// files keep working until closed). `fusermount`: through `fusermount3 -u -z`, for mounts
// made by it as non-root. 0 or a negative errno; -EINVAL means nothing is mounted there.
int lf_unmount(const char *mountpoint, int fusermount, char *err, size_t errlen);

// lf_unmount of `mountpoint` if the mount on top there is still the one `m` made; -EINVAL
// (nothing of ours there) when another mount is on top or none is. Detaching by path
// removes the top one, and once ours is gone (someone else unmounted it) that may be
// another process's mount of the same path: containerd's shim, retrying a mount helper,
// unmounts the first mount and makes a second; the first server, exiting, must not take
// the second with it.
int lf_unmount_own(const lf_mount_result *m, const char *mountpoint, char *err, size_t errlen);

// Ends a fusermount3 helper kept for auto_unmount: closes its socket, reaps it.
void lf_mount_release_helper(lf_mount_result *m);

#endif
