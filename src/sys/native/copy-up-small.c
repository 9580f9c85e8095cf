/*
 * The copy-up of a small regular file (union/copy-up.ts decides which) as one call, on the
 * mount process's JS thread or (when it flushes) a pool thread: open the lower file, create
 * the temp file O_EXCL in the work dir, copy the data (reflink, else copy_file_range, else
 * read/write), flush it (fdatasync) if asked, owner, mode, origin xattr, atime/mtime, rename
 * into place, and the parent's times restored.
 * The same steps in the same order as copy-up.ts's general path (which keeps files with
 * xattrs to copy, large or sparse data, and owner overrides); its 12 awaited
 * calls for an empty file, each a JS -> native round trip with Buffer conversions and a
 * Promise, become one (native-notes/performance.md, "Copy-up of small files").
 *
 * Differences that change no result: the origin and the times are set through the open fd
 * (fsetxattr/futimens) before it is closed, not by path after; an empty file's source is
 * not opened; the temp file is created with its final mode where the umask allows (no
 * fchmod); no POSIX_FADV_SEQUENTIAL
 * (advice for a read that is at most 64 KiB); on a failure only a temp file this call
 * created is removed.
 */
#include "copy-up-small.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#ifndef FICLONE
#define FICLONE _IOW(0x94, 9, int)
#endif

static int fail(lf_copy_up_result_t *res, const char *syscall, const char *path) {
  res->err = errno ? errno : EIO;
  res->syscall = syscall;
  res->path = path;
  return -1;
}

/* copy_file_range errors that mean "not between these two files" (copy-up.ts RANGE_UNSUPPORTED). */
static int range_unsupported(int e) { return e == EXDEV || e == EOPNOTSUPP || e == ENOSYS || e == EINVAL; }

static int copy_data(const lf_copy_up_t *a, int in, int out, lf_copy_up_result_t *res) {
  if (a->reflink) {
    if (ioctl(out, FICLONE, in) == 0) return 0;
    /* Any failure falls through to a copy; these three mean "never on this pair". */
    if (errno == EOPNOTSUPP || errno == EXDEV || errno == EINVAL) res->reflink_refused = 1;
  }
  loff_t off = 0;
  while (off < a->size) {
    loff_t o_in = off, o_out = off;
    ssize_t n = copy_file_range(in, &o_in, out, &o_out, (size_t)(a->size - off), 0);
    if (n > 0) { off += n; continue; }
    if (n == 0) return 0; /* the source is shorter than its index entry says */
    if (!range_unsupported(errno)) return fail(res, "copy_file_range", a->src);
    break;
  }
  char buf[LF_COPY_UP_SMALL_MAX];
  while (off < a->size) {
    ssize_t n = pread(in, buf, (size_t)(a->size - off), off);
    if (n < 0) return fail(res, "read", a->src);
    if (n == 0) break;
    for (ssize_t w = 0; w < n;) {
      ssize_t m = pwrite(out, buf + w, (size_t)(n - w), off + w);
      if (m < 0) return fail(res, "write", a->tmp);
      w += m;
    }
    off += n;
  }
  return 0;
}

/* The temp file, complete and closed; -1 with res filled on failure. */
static int build(const lf_copy_up_t *a, int *in, int *out, int *created, lf_copy_up_result_t *res) {
  /* An empty file has no data to read: its lower inode is never touched (on a cold cache,
   * a disk read saved per copy-up; the index already answered everything else about it). */
  if (a->size > 0 && (*in = open(a->src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) return fail(res, "open", a->src);
  /* Created with its final permissions when the umask keeps them and chown cannot clear
   * any (no set-id bits): the fchmod is saved. The work dir is private, so the file is
   * reachable by nobody else before the rename either way. */
  int exact = (a->perm & 07000) == 0 && a->umask >= 0 && (a->perm & (mode_t)a->umask) == 0;
  if ((*out = open(a->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, exact ? a->perm : 0600)) < 0) return fail(res, "open", a->tmp);
  *created = 1;
  if (a->size > 0 && copy_data(a, *in, *out, res) < 0) return -1;
  /* Before the rename: no crash may leave the name renamed and its data not yet on disk. */
  if (a->flush && fdatasync(*out) < 0) return fail(res, "fdatasync", a->tmp);
  if (fchown(*out, a->uid, a->gid) < 0) return fail(res, "fchown", a->tmp);
  /* Not `perm == 0600`: the umask may have taken bits from the fallback's 0600 too. */
  if (!exact && fchmod(*out, a->perm) < 0) return fail(res, "fchmod", a->tmp);
  if (a->origin_name && fsetxattr(*out, a->origin_name, a->origin_value, a->origin_len, 0) < 0)
    return fail(res, "lsetxattr", a->tmp);
  /* Last on the file: nothing after this changes its data. */
  if (futimens(*out, a->times) < 0) return fail(res, "utimensat", a->tmp);
  int fd = *out;
  *out = -1;
  if (close(fd) < 0) return fail(res, "close", a->tmp);
  if (*in >= 0) {
    close(*in); /* read-only: nothing to lose */
    *in = -1;
  }
  return 0;
}

void lf_copy_up_small_build(const lf_copy_up_t *a, lf_copy_up_result_t *res) {
  *res = (lf_copy_up_result_t){0};
  errno = 0;
  int in = -1, out = -1, created = 0;
  if (build(a, &in, &out, &created, res) < 0) {
    if (out >= 0) close(out);
    if (in >= 0) close(in);
    if (created) unlink(a->tmp);
  }
}

void lf_copy_up_small_place(const lf_copy_up_t *a, lf_copy_up_result_t *res) {
  errno = 0;
  struct stat pst;
  if (a->parent && lstat(a->parent, &pst) < 0) {
    fail(res, "lstat", a->parent);
    unlink(a->tmp);
    return;
  }
  if (rename(a->tmp, a->dest) < 0) {
    fail(res, "rename", a->tmp);
    res->path2 = a->dest;
    unlink(a->tmp);
    return;
  }
  /* The rename changed the parent's times; the kernel's overlayfs restores them too. */
  struct timespec pt[2] = {pst.st_atim, pst.st_mtim};
  if (a->parent && utimensat(AT_FDCWD, a->parent, pt, AT_SYMLINK_NOFOLLOW) < 0) fail(res, "utimensat", a->parent);
}

void lf_copy_up_small(const lf_copy_up_t *a, lf_copy_up_result_t *res) {
  lf_copy_up_small_build(a, res);
  if (!res->err) lf_copy_up_small_place(a, res);
}
