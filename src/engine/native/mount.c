// See mount.h.
#include "mount.h"

#include "mountinfo.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

// fusermount3's fd in the child, and the variable that tells it so (libfuse's protocol).
#define COMMFD_CHILD 3
#define COMMFD_ENV "_FUSE_COMMFD"

static int fail(char *err, size_t errlen, int negerrno, const char *fmt, const char *arg) {
  snprintf(err, errlen, fmt, arg, strerror(-negerrno));
  return negerrno;
}

// Option values are comma-separated for both mount(2) and fusermount3: a comma in a
// name would smuggle in another option.
static int has_comma(const char *s) { return s && strchr(s, ','); }

static int mount_with_syscall(const lf_mount_request *req, lf_mount_result *out, char *err, size_t errlen) {
  int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fd < 0) return fail(err, errlen, -errno, "cannot open %s: %s", "/dev/fuse");
  char opts[512], type[128];
  int n = snprintf(opts, sizeof opts, "fd=%d,rootmode=%o,user_id=%u,group_id=%u%s%s", fd, req->root_mode,
                   (unsigned) getuid(), (unsigned) getgid(), req->allow_other ? ",allow_other" : "",
                   req->default_permissions ? ",default_permissions" : "");
  int t = snprintf(type, sizeof type, "fuse%s%s", req->subtype ? "." : "", req->subtype ? req->subtype : "");
  if (n < 0 || (size_t) n >= sizeof opts || t < 0 || (size_t) t >= sizeof type) {
    close(fd);
    return fail(err, errlen, -ENAMETOOLONG, "mount options too long for %s: %s", req->mountpoint);
  }
  unsigned long flags = (req->suid ? 0 : MS_NOSUID) | (req->dev ? 0 : MS_NODEV) | (req->read_only ? MS_RDONLY : 0);
  if (mount(req->fsname, req->mountpoint, type, flags, opts) != 0) {
    int e = -errno;
    close(fd);
    return fail(err, errlen, e, "mount(2) on %s: %s", req->mountpoint);
  }
  out->fd = fd;
  out->fusermount = 0;
  out->commfd = -1;
  out->helper = 0;
  return 0;
}

// environ with _FUSE_COMMFD=3 in place of any inherited value; free() the result only.
static char **child_env(char *commfd_var) {
  size_t n = 0;
  while (environ[n]) n++;
  char **env = calloc(n + 2, sizeof(char *));
  if (!env) return NULL;
  size_t j = 0;
  for (size_t i = 0; i < n; i++) {
    if (strncmp(environ[i], COMMFD_ENV "=", sizeof COMMFD_ENV) != 0) env[j++] = environ[i];
  }
  env[j++] = commfd_var;
  env[j] = NULL;
  return env;
}

static pid_t spawn_fusermount(char *const argv[], int commfd, int errpipe) {
  // A source fd that already is number 3 would be dup2'ed onto itself, which keeps its
  // close-on-exec flag: move it out of the way first.
  int moved = -1;
  if (commfd == COMMFD_CHILD) {
    moved = fcntl(commfd, F_DUPFD_CLOEXEC, 10);
    if (moved < 0) return -1;
    commfd = moved;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, errpipe, 1);
  posix_spawn_file_actions_adddup2(&fa, errpipe, 2);
  // dup2 onto a different number clears close-on-exec on the copy: only this fd crosses.
  if (commfd >= 0) posix_spawn_file_actions_adddup2(&fa, commfd, COMMFD_CHILD);
  char var[32];
  snprintf(var, sizeof var, COMMFD_ENV "=%d", COMMFD_CHILD);
  char **env = commfd >= 0 ? child_env(var) : environ;
  pid_t pid = -1;
  int rc = env ? posix_spawnp(&pid, "fusermount3", &fa, NULL, argv, env) : ENOMEM;
  if (commfd >= 0) free(env);
  posix_spawn_file_actions_destroy(&fa);
  if (moved >= 0) close(moved);
  if (rc != 0) {
    errno = rc;
    return -1;
  }
  return pid;
}

// The child's stderr (after it exited or failed), as the message of a failure.
static void drain_messages(int fd, char *buf, size_t len) {
  size_t used = 0;
  while (used + 1 < len) {
    ssize_t n = read(fd, buf + used, len - 1 - used);
    if (n <= 0) break;
    used += (size_t) n;
  }
  while (used > 0 && (buf[used - 1] == '\n' || buf[used - 1] == ' ')) used--;
  buf[used] = 0;
}

static int receive_fd(int sock) {
  char byte;
  struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
  union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } ctl;
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf };
  ssize_t n;
  do n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  if (n == 0) return -ECONNRESET;  // fusermount3 exited without sending: it failed
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int))) return -EPROTO;
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

static int mount_with_fusermount(const lf_mount_request *req, lf_mount_result *out, char *err, size_t errlen) {
  char opts[512];
  // auto_unmount: fusermount3 stays alive holding its end of the socket and unmounts when
  // ours closes, which is also what happens when this process dies, however it dies.
  int n = snprintf(opts, sizeof opts, "fsname=%s%s%s,auto_unmount%s%s%s%s%s", req->fsname,
                   req->subtype ? ",subtype=" : "", req->subtype ? req->subtype : "",
                   req->allow_other ? ",allow_other" : "", req->default_permissions ? ",default_permissions" : "",
                   req->read_only ? ",ro" : "", req->suid ? ",suid" : ",nosuid", req->dev ? ",dev" : ",nodev");
  if (n < 0 || (size_t) n >= sizeof opts) return fail(err, errlen, -ENAMETOOLONG, "mount options too long for %s: %s", req->mountpoint);
  int sv[2], errpipe[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return fail(err, errlen, -errno, "socketpair for %s: %s", "fusermount3");
  if (pipe2(errpipe, O_CLOEXEC) != 0) {
    int e = -errno;
    close(sv[0]);
    close(sv[1]);
    return fail(err, errlen, e, "pipe for %s: %s", "fusermount3");
  }
  char *argv[] = { "fusermount3", "-o", opts, "--", (char *) req->mountpoint, NULL };
  pid_t pid = spawn_fusermount(argv, sv[0], errpipe[1]);
  int spawn_errno = errno;
  close(sv[0]);
  close(errpipe[1]);
  if (pid < 0) {
    close(sv[1]);
    close(errpipe[0]);
    return fail(err, errlen, -spawn_errno, "cannot run %s: %s", "fusermount3");
  }
  int fd = receive_fd(sv[1]);
  if (fd < 0) {
    close(sv[1]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    char msg[400];
    drain_messages(errpipe[0], msg, sizeof msg);
    close(errpipe[0]);
    snprintf(err, errlen, "fusermount3 could not mount %s: %s", req->mountpoint, msg[0] ? msg : strerror(-fd));
    return -EPERM;
  }
  close(errpipe[0]);
  out->fd = fd;
  out->fusermount = 1;
  out->commfd = sv[1];
  out->helper = pid;
  return 0;
}

static int mount_either(const lf_mount_request *req, lf_mount_result *out, char *err, size_t errlen) {
  if (!req->force_fusermount && geteuid() == 0) {
    int rc = mount_with_syscall(req, out, err, errlen);
    // EPERM as uid 0: a user namespace without mount rights; fusermount3 may still work.
    if (rc != -EPERM) return rc;
  }
  return mount_with_fusermount(req, out, err, errlen);
}

int lf_mount(const lf_mount_request *req, lf_mount_result *out, char *err, size_t errlen) {
  if (has_comma(req->fsname) || has_comma(req->subtype)) {
    return fail(err, errlen, -EINVAL, "fsname/subtype of %s must not contain a comma: %s", req->mountpoint);
  }
  char where[PATH_MAX];
  int resolved = realpath(req->mountpoint, where) != NULL;
  int rc = mount_either(req, out, err, errlen);
  if (rc != 0) return rc;
  // Just mounted, so the top mount there is ours (a mount stacked on it in between by
  // someone else would need to come in these few microseconds).
  out->own_dev = 0;
  out->where[0] = 0;
  if (resolved && lf_mountinfo_top_device(where, &out->own_dev) == 0) memcpy(out->where, where, sizeof where);
  return 0;
}

int lf_unmount(const char *mountpoint, int fusermount, char *err, size_t errlen) {
  if (!fusermount) {
    if (umount2(mountpoint, MNT_DETACH) == 0) return 0;
    if (errno != EPERM) return fail(err, errlen, -errno, "umount %s: %s", mountpoint);
  }
  int errpipe[2];
  if (pipe2(errpipe, O_CLOEXEC) != 0) return fail(err, errlen, -errno, "pipe for %s: %s", "fusermount3");
  char *argv[] = { "fusermount3", "-u", "-z", "--", (char *) mountpoint, NULL };
  pid_t pid = spawn_fusermount(argv, -1, errpipe[1]);
  int spawn_errno = errno;
  close(errpipe[1]);
  if (pid < 0) {
    close(errpipe[0]);
    return fail(err, errlen, -spawn_errno, "cannot run %s: %s", "fusermount3");
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  char msg[400];
  drain_messages(errpipe[0], msg, sizeof msg);
  close(errpipe[0]);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
  snprintf(err, errlen, "fusermount3 -u %s: %s", mountpoint, msg[0] ? msg : "failed");
  // fusermount3 says "not mounted" / "entry for ... not found" when nothing is there.
  return strstr(msg, "not found") || strstr(msg, "not mounted") ? -EINVAL : -EPERM;
}

int lf_unmount_own(const lf_mount_result *m, const char *mountpoint, char *err, size_t errlen) {
  if (m->own_dev) {
    dev_t top;
    int rc = lf_mountinfo_top_device(m->where, &top);
    // Our device number is ours while our superblock lives, and it lives while any mount
    // of it does (in any namespace); so another device on top is another mount. A table
    // that cannot be read: detach by path, as without the check.
    if (rc == -ENOENT || (rc == 0 && top != m->own_dev)) {
      snprintf(err, errlen, "%s: not detached, this mount is no longer on top there", mountpoint);
      return -EINVAL;
    }
  }
  return lf_unmount(mountpoint, m->fusermount, err, errlen);
}

void lf_mount_release_helper(lf_mount_result *m) {
  if (m->commfd >= 0) {
    close(m->commfd);
    m->commfd = -1;
  }
  if (m->helper > 0) {
    int status;
    while (waitpid(m->helper, &status, 0) < 0 && errno == EINTR) {}
    m->helper = 0;
  }
}
