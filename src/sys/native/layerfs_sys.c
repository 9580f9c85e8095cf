/*
 * layerfs_sys: the Linux syscalls Node.js does not expose (xattrs, mknod, utimensat with
 * nanoseconds and AT_SYMLINK_NOFOLLOW, renameat2, FICLONE, copy_file_range, lseek for
 * SEEK_DATA/SEEK_HOLE, posix_fadvise).
 *
 * Every asynchronous call copies its arguments into a request, runs the syscall on libuv's
 * thread pool (napi_async_work) and settles a Promise — or, once setInline(1) was called,
 * runs a cheap call (xattrs, mknod, utimens, renameat2, fadvise, a copy_file_range of at
 * most 64 KiB) right away on
 * the calling thread and returns a settled Promise: in a FUSE server each pool hop is two
 * thread wake-ups, which cost more than the syscall itself (native-notes/sys-addon.md). Failures reject with an Error shaped
 * like Node's own system errors (code, negative errno, syscall, path[, dest]) so callers
 * treat them exactly like node:fs errors. Invalid argument TYPES throw synchronously: they
 * are programming errors, not filesystem outcomes.
 *
 * Paths are a string (UTF-8) or a Buffer (raw bytes, passed unchanged) so that names which
 * are not valid UTF-8 stay reachable.
 */
#include <node_api.h>
#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "copy-up-small.h"
#include "dir-stamps.h"
#include "lower-index.h"

#ifndef FICLONE
#define FICLONE _IOW(0x94, 9, int)
#endif

/* Attempts for the size-probe/read dance of lgetxattr/llistxattr: the value can grow
 * between the two calls (ERANGE), so probe again; a bound keeps a hostile writer from
 * spinning us forever. */
#define XATTR_RETRIES 16

typedef enum {
  OP_LGETXATTR, OP_LLISTXATTR, OP_LSETXATTR, OP_LREMOVEXATTR, OP_MKNOD,
  OP_UTIMENS, OP_FUTIMENS, OP_RENAMEAT2, OP_FICLONE, OP_COPY_FILE_RANGE, OP_LSEEK,
  OP_FADVISE
} op_t;

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  op_t op;
  const char *syscall;
  char *path, *path2, *name;
  char *value;
  size_t value_len;
  int flags;
  int fd1, fd2;
  int64_t off1, off2;
  int has_off1, has_off2;
  size_t len;
  mode_t mode;
  dev_t dev;
  struct timespec ts[2];
  /* results */
  int err;            /* positive errno, 0 on success */
  int absent;         /* lgetxattr: ENODATA */
  int64_t count;      /* copy_file_range: bytes; lseek: the resulting offset */
  char *out;          /* lgetxattr value / llistxattr list */
  size_t out_len;
} req_t;

#define CHECK(call)                                                     \
  do {                                                                  \
    if ((call) != napi_ok) {                                            \
      const napi_extended_error_info *info_ = NULL;                     \
      napi_get_last_error_info(env, &info_);                            \
      bool pending_ = false;                                            \
      napi_is_exception_pending(env, &pending_);                        \
      if (!pending_)                                                    \
        napi_throw_error(env, NULL,                                     \
                         info_ && info_->error_message                  \
                             ? info_->error_message                     \
                             : "layerfs_sys: N-API call failed");       \
      return NULL;                                                      \
    }                                                                   \
  } while (0)

static void req_free(req_t *r) {
  free(r->path);
  free(r->path2);
  free(r->name);
  free(r->value);
  free(r->out);
  free(r);
}

/* ---------- argument conversion (main thread) ---------- */

/* A NUL-terminated copy of a string (UTF-8) or Buffer argument. NULL + pending TypeError
 * on failure. Embedded NULs are refused: the kernel would silently truncate the name. */
static char *get_bytes(napi_env env, napi_value v, const char *what) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return NULL;
  char *s = NULL;
  size_t n = 0;
  if (t == napi_string) {
    if (napi_get_value_string_utf8(env, v, NULL, 0, &n) != napi_ok) return NULL;
    s = malloc(n + 1);
    if (!s) { napi_throw_error(env, "ENOMEM", "out of memory"); return NULL; }
    if (napi_get_value_string_utf8(env, v, s, n + 1, &n) != napi_ok) { free(s); return NULL; }
  } else {
    bool is_buf = false;
    napi_is_buffer(env, v, &is_buf);
    if (!is_buf) {
      char msg[96];
      snprintf(msg, sizeof msg, "%s must be a string or a Buffer", what);
      napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
      return NULL;
    }
    void *data = NULL;
    if (napi_get_buffer_info(env, v, &data, &n) != napi_ok) return NULL;
    s = malloc(n + 1);
    if (!s) { napi_throw_error(env, "ENOMEM", "out of memory"); return NULL; }
    if (n) memcpy(s, data, n);
    s[n] = '\0';
  }
  if (strlen(s) != n) {
    free(s);
    char msg[96];
    snprintf(msg, sizeof msg, "%s must not contain NUL bytes", what);
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", msg);
    return NULL;
  }
  return s;
}

static bool get_int64(napi_env env, napi_value v, const char *what, int64_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return false;
  if (t != napi_number) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a number", what);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return false;
  }
  double d;
  napi_get_value_double(env, v, &d);
  /* Range first: casting a double outside int64 to int64 is undefined behaviour. */
  if (d != d || d > 9007199254740991.0 || d < -9007199254740991.0 || d != (double)(int64_t)d) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be an integer", what);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
    return false;
  }
  *out = (int64_t)d;
  return true;
}

static bool get_nonneg(napi_env env, napi_value v, const char *what, int64_t *out) {
  if (!get_int64(env, v, what, out)) return false;
  if (*out < 0) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be >= 0", what);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
    return false;
  }
  return true;
}

static bool get_fd(napi_env env, napi_value v, const char *what, int *out) {
  int64_t x;
  if (!get_nonneg(env, v, what, &x)) return false;
  if (x > INT32_MAX) { napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "fd out of range"); return false; }
  *out = (int)x;
  return true;
}

/* Timespec = { sec, nsec } | 'now' | 'omit'. */
static bool get_timespec(napi_env env, napi_value v, const char *what, struct timespec *ts) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return false;
  if (t == napi_string) {
    char buf[8];
    size_t n = 0;
    napi_get_value_string_utf8(env, v, buf, sizeof buf, &n);
    if (strcmp(buf, "now") == 0) { ts->tv_sec = 0; ts->tv_nsec = UTIME_NOW; return true; }
    if (strcmp(buf, "omit") == 0) { ts->tv_sec = 0; ts->tv_nsec = UTIME_OMIT; return true; }
  } else if (t == napi_object) {
    napi_value sec, nsec;
    int64_t s, ns;
    if (napi_get_named_property(env, v, "sec", &sec) != napi_ok) return false;
    if (napi_get_named_property(env, v, "nsec", &nsec) != napi_ok) return false;
    if (!get_int64(env, sec, "sec", &s) || !get_int64(env, nsec, "nsec", &ns)) return false;
    if (ns < 0 || ns > 999999999) {
      napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "nsec must be in 0..999999999");
      return false;
    }
    ts->tv_sec = (time_t)s;
    ts->tv_nsec = (long)ns;
    return true;
  }
  char msg[128];
  snprintf(msg, sizeof msg, "%s must be {sec, nsec}, 'now' or 'omit'", what);
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return false;
}

static napi_value *get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < want) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "missing arguments");
    return NULL;
  }
  return argv;
}

/* ---------- the syscalls (thread pool) ---------- */

static void do_getxattr_like(req_t *r, int list) {
  for (int attempt = 0; attempt < XATTR_RETRIES; attempt++) {
    ssize_t size = list ? llistxattr(r->path, NULL, 0) : lgetxattr(r->path, r->name, NULL, 0);
    if (size < 0) break;
    free(r->out);
    r->out = malloc(size > 0 ? (size_t)size : 1);
    if (!r->out) { r->err = ENOMEM; return; }
    ssize_t got = list ? llistxattr(r->path, r->out, (size_t)size)
                       : lgetxattr(r->path, r->name, r->out, (size_t)size);
    if (got >= 0) { r->out_len = (size_t)got; return; }
    if (errno != ERANGE) break;
  }
  r->err = errno ? errno : ERANGE;
  if (!list && r->err == ENODATA) { r->err = 0; r->absent = 1; }
}

static void execute(napi_env env, void *data) {
  req_t *r = data;
  int rc = 0;
  errno = 0;
  switch (r->op) {
    case OP_LGETXATTR: do_getxattr_like(r, 0); return;
    case OP_LLISTXATTR: do_getxattr_like(r, 1); return;
    case OP_LSETXATTR: rc = lsetxattr(r->path, r->name, r->value, r->value_len, r->flags); break;
    case OP_LREMOVEXATTR: rc = lremovexattr(r->path, r->name); break;
    case OP_MKNOD: rc = mknodat(AT_FDCWD, r->path, r->mode, r->dev); break;
    case OP_UTIMENS: rc = utimensat(AT_FDCWD, r->path, r->ts, AT_SYMLINK_NOFOLLOW); break;
    case OP_FUTIMENS: rc = futimens(r->fd1, r->ts); break;
    /* The raw syscall: older glibc (< 2.28) has no renameat2() wrapper. */
    case OP_RENAMEAT2:
      rc = (int)syscall(SYS_renameat2, AT_FDCWD, r->path, AT_FDCWD, r->path2, (unsigned)r->flags);
      break;
    case OP_FICLONE: rc = ioctl(r->fd2, FICLONE, r->fd1); break;
    case OP_COPY_FILE_RANGE: {
      loff_t in = r->off1, out = r->off2;
      ssize_t n = copy_file_range(r->fd1, r->has_off1 ? &in : NULL, r->fd2,
                                  r->has_off2 ? &out : NULL, r->len, 0);
      if (n < 0) rc = -1; else r->count = n;
      break;
    }
    case OP_LSEEK: {
      off_t o = lseek(r->fd1, (off_t)r->off1, r->flags);
      if (o < 0) rc = -1; else r->count = o;
      break;
    }
    /* posix_fadvise returns the error number instead of setting errno. */
    case OP_FADVISE: r->err = posix_fadvise(r->fd1, (off_t)r->off1, (off_t)r->len, r->flags); return;
  }
  if (rc < 0) r->err = errno;
}

/* ---------- results (main thread) ---------- */

static napi_value make_error(napi_env env, req_t *r) {
  int e = r->err;
  /* libuv names errno 95 'ENOTSUP'; layerfs (core/errors Errno) and the contract use
   * Linux's own name for it, EOPNOTSUPP. */
  const char *code = e == EOPNOTSUPP ? "EOPNOTSUPP" : uv_err_name(-e);
  const char *desc = uv_strerror(-e);
  size_t cap = strlen(code) + strlen(desc) + strlen(r->syscall) +
               (r->path ? strlen(r->path) : 0) + (r->path2 ? strlen(r->path2) : 0) + 32;
  char *msg = malloc(cap);
  if (!msg) return NULL;
  if (r->path && r->path2)
    snprintf(msg, cap, "%s: %s, %s '%s' -> '%s'", code, desc, r->syscall, r->path, r->path2);
  else if (r->path)
    snprintf(msg, cap, "%s: %s, %s '%s'", code, desc, r->syscall, r->path);
  else
    snprintf(msg, cap, "%s: %s, %s", code, desc, r->syscall);

  napi_value jmsg, jcode, err, v;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &jmsg);
  free(msg);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &jcode);
  napi_create_error(env, jcode, jmsg, &err);
  napi_create_int32(env, -e, &v);
  napi_set_named_property(env, err, "errno", v);
  napi_create_string_utf8(env, r->syscall, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, err, "syscall", v);
  if (r->path) {
    napi_create_string_utf8(env, r->path, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, err, "path", v);
  }
  if (r->path2) {
    napi_create_string_utf8(env, r->path2, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, err, "dest", v);
  }
  return err;
}

static napi_value make_result(napi_env env, req_t *r) {
  napi_value v = NULL;
  switch (r->op) {
    case OP_LGETXATTR:
      if (r->absent) napi_get_null(env, &v);
      else napi_create_buffer_copy(env, r->out_len, r->out ? r->out : "", NULL, &v);
      break;
    case OP_LLISTXATTR: {
      napi_create_array(env, &v);
      uint32_t i = 0;
      size_t pos = 0;
      while (pos < r->out_len) {
        size_t n = strnlen(r->out + pos, r->out_len - pos);
        if (n > 0) {
          napi_value s;
          napi_create_string_utf8(env, r->out + pos, n, &s);
          napi_set_element(env, v, i++, s);
        }
        pos += n + 1;
      }
      break;
    }
    case OP_COPY_FILE_RANGE:
    case OP_LSEEK: napi_create_int64(env, r->count, &v); break;
    default: napi_get_undefined(env, &v); break;
  }
  return v;
}

/* Rejects `deferred` with the failure `r` describes (an "out of memory" Error if it cannot be made). */
static void reject_with(napi_env env, napi_deferred deferred, req_t *r) {
  napi_value err = make_error(env, r);
  if (!err) { napi_value m; napi_create_string_utf8(env, "out of memory", NAPI_AUTO_LENGTH, &m); napi_create_error(env, NULL, m, &err); }
  napi_reject_deferred(env, deferred, err);
}

/* Settles a request's Promise by its outcome (main thread). */
static void settle(napi_env env, req_t *r) {
  if (r->err) {
    reject_with(env, r->deferred, r);
  } else {
    napi_resolve_deferred(env, r->deferred, make_result(env, r));
  }
}

static void complete(napi_env env, napi_status status, void *data) {
  req_t *r = data;
  if (status != napi_ok && r->err == 0) r->err = ECANCELED;
  settle(env, r);
  napi_delete_async_work(env, r->work);
  req_free(r);
}

/* setInline(): the process-wide choice of running cheap calls on the JS thread. */
static int run_inline = 0;

/* Copies of up to this many bytes run inline too: a small file's copy-up is a page-cache
 * copy of microseconds, less than the pool hop around it. */
#define INLINE_COPY_MAX (64 * 1024)

/* Calls that stay on the pool even inline: their time grows with the file (clones, big
 * copies, a SEEK_DATA walk of a long extent list), so one could stall every other request. */
static int may_run_inline(const req_t *r) {
  if (r->op == OP_COPY_FILE_RANGE) return r->len <= INLINE_COPY_MAX;
  return r->op != OP_FICLONE && r->op != OP_LSEEK;
}

static napi_value queue(napi_env env, req_t *r) {
  napi_value promise, name;
  if (napi_create_promise(env, &r->deferred, &promise) != napi_ok) { req_free(r); return NULL; }
  if (run_inline && may_run_inline(r)) {
    execute(env, r);
    settle(env, r);
    req_free(r);
    return promise;
  }
  napi_create_string_utf8(env, r->syscall, NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, execute, complete, r, &r->work) != napi_ok ||
      napi_queue_async_work(env, r->work) != napi_ok) {
    r->err = EIO;
    reject_with(env, r->deferred, r);
    req_free(r);
  }
  return promise;
}

static req_t *req_new(napi_env env, op_t op, const char *syscall) {
  req_t *r = calloc(1, sizeof *r);
  if (!r) { napi_throw_error(env, "ENOMEM", "out of memory"); return NULL; }
  r->op = op;
  r->syscall = syscall;
  return r;
}

#define FAIL(r) do { req_free(r); return NULL; } while (0)

/* ---------- exported functions ---------- */

static napi_value js_lgetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  req_t *r = req_new(env, OP_LGETXATTR, "lgetxattr");
  if (!r) return NULL;
  if (!(r->path = get_bytes(env, argv[0], "path"))) FAIL(r);
  if (!(r->name = get_bytes(env, argv[1], "name"))) FAIL(r);
  return queue(env, r);
}

static napi_value js_llistxattr(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  req_t *r = req_new(env, OP_LLISTXATTR, "llistxattr");
  if (!r) return NULL;
  if (!(r->path = get_bytes(env, argv[0], "path"))) FAIL(r);
  return queue(env, r);
}

static napi_value js_lsetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return NULL;
  req_t *r = req_new(env, OP_LSETXATTR, "lsetxattr");
  if (!r) return NULL;
  int64_t flags;
  if (!(r->path = get_bytes(env, argv[0], "path"))) FAIL(r);
  if (!(r->name = get_bytes(env, argv[1], "name"))) FAIL(r);
  bool is_buf = false;
  napi_is_buffer(env, argv[2], &is_buf);
  if (!is_buf) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "value must be a Buffer");
    FAIL(r);
  }
  void *data = NULL;
  if (napi_get_buffer_info(env, argv[2], &data, &r->value_len) != napi_ok) FAIL(r);
  /* Copied: the JS buffer may be mutated while the thread pool runs. */
  r->value = malloc(r->value_len ? r->value_len : 1);
  if (!r->value) { napi_throw_error(env, "ENOMEM", "out of memory"); FAIL(r); }
  if (r->value_len) memcpy(r->value, data, r->value_len);
  if (!get_nonneg(env, argv[3], "flags", &flags)) FAIL(r);
  r->flags = (int)flags;
  return queue(env, r);
}

static napi_value js_lremovexattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  req_t *r = req_new(env, OP_LREMOVEXATTR, "lremovexattr");
  if (!r) return NULL;
  if (!(r->path = get_bytes(env, argv[0], "path"))) FAIL(r);
  if (!(r->name = get_bytes(env, argv[1], "name"))) FAIL(r);
  return queue(env, r);
}

static napi_value js_mknod(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  req_t *r = req_new(env, OP_MKNOD, "mknod");
  if (!r) return NULL;
  int64_t mode, dev;
  if (!(r->path = get_bytes(env, argv[0], "path"))) FAIL(r);
  if (!get_nonneg(env, argv[1], "mode", &mode) || !get_nonneg(env, argv[2], "dev", &dev)) FAIL(r);
  r->mode = (mode_t)mode;
  r->dev = (dev_t)dev;
  return queue(env, r);
}

static napi_value js_utimens(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  req_t *r = req_new(env, OP_UTIMENS, "utimensat");
  if (!r) return NULL;
  if (!(r->path = get_bytes(env, argv[0], "path"))) FAIL(r);
  if (!get_timespec(env, argv[1], "atime", &r->ts[0]) ||
      !get_timespec(env, argv[2], "mtime", &r->ts[1])) FAIL(r);
  return queue(env, r);
}

static napi_value js_futimens(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  req_t *r = req_new(env, OP_FUTIMENS, "futimens");
  if (!r) return NULL;
  if (!get_fd(env, argv[0], "fd", &r->fd1)) FAIL(r);
  if (!get_timespec(env, argv[1], "atime", &r->ts[0]) ||
      !get_timespec(env, argv[2], "mtime", &r->ts[1])) FAIL(r);
  return queue(env, r);
}

static napi_value js_renameat2(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  req_t *r = req_new(env, OP_RENAMEAT2, "renameat2");
  if (!r) return NULL;
  int64_t flags;
  if (!(r->path = get_bytes(env, argv[0], "from"))) FAIL(r);
  if (!(r->path2 = get_bytes(env, argv[1], "to"))) FAIL(r);
  if (!get_nonneg(env, argv[2], "flags", &flags)) FAIL(r);
  r->flags = (int)flags;
  return queue(env, r);
}

static napi_value js_ficlone(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  req_t *r = req_new(env, OP_FICLONE, "ioctl(FICLONE)");
  if (!r) return NULL;
  if (!get_fd(env, argv[0], "srcFd", &r->fd1) || !get_fd(env, argv[1], "dstFd", &r->fd2)) FAIL(r);
  return queue(env, r);
}

/* An offset of null means "use and advance the fd's own file position". */
static bool get_offset(napi_env env, napi_value v, const char *what, int64_t *off, int *has) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return false;
  if (t == napi_null || t == napi_undefined) { *has = 0; return true; }
  *has = 1;
  return get_nonneg(env, v, what, off);
}

static napi_value js_copy_file_range(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!get_args(env, info, 5, argv)) return NULL;
  req_t *r = req_new(env, OP_COPY_FILE_RANGE, "copy_file_range");
  if (!r) return NULL;
  int64_t len;
  if (!get_fd(env, argv[0], "srcFd", &r->fd1) ||
      !get_offset(env, argv[1], "srcOff", &r->off1, &r->has_off1) ||
      !get_fd(env, argv[2], "dstFd", &r->fd2) ||
      !get_offset(env, argv[3], "dstOff", &r->off2, &r->has_off2) ||
      !get_nonneg(env, argv[4], "len", &len)) FAIL(r);
  r->len = (size_t)len;
  return queue(env, r);
}

/* Only SEEK_SET/CUR/END/DATA/HOLE: other values would be silently accepted by some
 * filesystems with unrelated meanings. */
static napi_value js_lseek(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  req_t *r = req_new(env, OP_LSEEK, "lseek");
  if (!r) return NULL;
  int64_t whence;
  if (!get_fd(env, argv[0], "fd", &r->fd1) || !get_int64(env, argv[1], "offset", &r->off1) ||
      !get_nonneg(env, argv[2], "whence", &whence)) FAIL(r);
  if (whence != SEEK_SET && whence != SEEK_CUR && whence != SEEK_END && whence != SEEK_DATA &&
      whence != SEEK_HOLE) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "whence must be SEEK_SET, SEEK_CUR, SEEK_END, SEEK_DATA or SEEK_HOLE");
    FAIL(r);
  }
  r->flags = (int)whence;
  return queue(env, r);
}

static napi_value js_fadvise(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return NULL;
  req_t *r = req_new(env, OP_FADVISE, "posix_fadvise");
  if (!r) return NULL;
  int64_t len, advice;
  if (!get_fd(env, argv[0], "fd", &r->fd1) || !get_nonneg(env, argv[1], "offset", &r->off1) ||
      !get_nonneg(env, argv[2], "len", &len) || !get_nonneg(env, argv[3], "advice", &advice)) FAIL(r);
  if (advice > POSIX_FADV_NOREUSE) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "advice must be one of POSIX_FADV_NORMAL..POSIX_FADV_NOREUSE (0..5)");
    FAIL(r);
  }
  r->len = (size_t)len;
  r->flags = (int)advice;
  return queue(env, r);
}

static napi_value js_makedev(napi_env env, napi_callback_info info) {
  napi_value argv[2], out;
  if (!get_args(env, info, 2, argv)) return NULL;
  int64_t ma, mi;
  if (!get_nonneg(env, argv[0], "major", &ma) || !get_nonneg(env, argv[1], "minor", &mi)) return NULL;
  if (ma > UINT32_MAX || mi > UINT32_MAX) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "major/minor must fit in 32 bits");
    return NULL;
  }
  dev_t d = makedev((unsigned)ma, (unsigned)mi);
  /* A number, like fs.Stats.rdev; exact for every major < 2^21. */
  CHECK(napi_create_double(env, (double)d, &out));
  return out;
}

static napi_value js_major_minor(napi_env env, napi_callback_info info, int want_major) {
  napi_value argv[1], out;
  if (!get_args(env, info, 1, argv)) return NULL;
  int64_t d;
  if (!get_nonneg(env, argv[0], "dev", &d)) return NULL;
  unsigned v = want_major ? major((dev_t)d) : minor((dev_t)d);
  CHECK(napi_create_uint32(env, v, &out));
  return out;
}
static napi_value js_major(napi_env env, napi_callback_info info) { return js_major_minor(env, info, 1); }
static napi_value js_minor(napi_env env, napi_callback_info info) { return js_major_minor(env, info, 0); }

/* ---------- the lower-index cache file, mapped (synchronous: mmap + checks, ~15 ms for 15 MB) ---------- */

static void unmap_index(napi_env env, void *data, void *hint) {
  lf_index_close((lf_index_t *)hint);
}

/* mapIndexCache(path): ArrayBuffer over the mapped file, after lf_index_open_file checked
 * it (CRC-32, layer roots' st_ino and ctime, every offset). Read-only memory: a write
 * from JS would fault. Unmapped when the ArrayBuffer is collected. Throws an Error whose
 * `errno` is the negative errno and message the reason. */
static napi_value js_map_index_cache(napi_env env, napi_callback_info info) {
  napi_value argv[1], out;
  if (!get_args(env, info, 1, argv)) return NULL;
  char *path = get_bytes(env, argv[0], "path");
  if (!path) return NULL;
  char err[256] = "";
  lf_index_t *idx = NULL;
  int rc = lf_index_open_file(path, LF_INDEX_VERIFY_CRC | LF_INDEX_CHECK_ROOTS, &idx, err, sizeof err);
  free(path);
  if (rc != 0) {
    napi_value msg, error, code;
    CHECK(napi_create_string_utf8(env, err, NAPI_AUTO_LENGTH, &msg));
    CHECK(napi_create_error(env, NULL, msg, &error));
    CHECK(napi_create_int32(env, rc, &code));
    CHECK(napi_set_named_property(env, error, "errno", code));
    napi_throw(env, error);
    return NULL;
  }
  size_t size = 0;
  void *data = (void *)lf_index_data(idx, &size);
  if (napi_create_external_arraybuffer(env, data, size, unmap_index, idx, &out) != napi_ok) {
    lf_index_close(idx);
    napi_throw_error(env, NULL, "cannot wrap the mapped index (external ArrayBuffers unsupported?)");
    return NULL;
  }
  return out;
}

/* ---------- directory stamps of a tree (synchronous: dir-stamps.c says why) ---------- */

static void free_stamps(napi_env env, void *data, void *hint) { free(data); }

/* dirStamps(root): Buffer of dir-stamps.c's lines; throws a system error (code, errno, syscall 'dirStamps', path). */
static napi_value js_dir_stamps(napi_env env, napi_callback_info info) {
  napi_value argv[1], out;
  if (!get_args(env, info, 1, argv)) return NULL;
  char *root = get_bytes(env, argv[0], "root");
  if (!root) return NULL;
  char *data = NULL;
  size_t len = 0;
  int err = lf_dir_stamps(root, &data, &len);
  if (err) {
    req_t r = {.err = err, .syscall = "dirStamps", .path = root};
    napi_value e = make_error(env, &r);
    free(root);
    if (e) napi_throw(env, e);
    else napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  free(root);
  if (len == 0) { /* unreachable (the root's own line), but an external buffer needs data */
    CHECK(napi_create_buffer(env, 0, NULL, &out));
    free(data);
    return out;
  }
  if (napi_create_external_buffer(env, len, data, free_stamps, NULL, &out) != napi_ok) {
    free(data);
    napi_throw_error(env, NULL, "cannot wrap the stamps");
    return NULL;
  }
  return out;
}

/* ---------- a small file's copy-up in one call (synchronous: copy-up-small.c says why) ---------- */

/* A path argument that may be null. */
static bool get_opt_bytes(napi_env env, napi_value v, const char *what, char **out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return false;
  if (t == napi_null || t == napi_undefined) { *out = NULL; return true; }
  return (*out = get_bytes(env, v, what)) != NULL;
}

/* One small copy-up's arguments and outcome, owned by the call (its strings are copies). */
typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  lf_copy_up_t a;
  lf_copy_up_result_t res;
  char *src, *tmp, *dest, *parent, *oname;
  void *ovalue;
} copy_up_req_t;

static void copy_up_free(copy_up_req_t *c) {
  free(c->src); free(c->tmp); free(c->dest); free(c->parent); free(c->oname); free(c->ovalue);
  free(c);
}

static void copy_up_execute(napi_env env, void *data) {
  (void)env;
  copy_up_req_t *c = data;
  lf_copy_up_small_build(&c->a, &c->res);
}

/* Resolves with 1 when FICLONE was refused (EOPNOTSUPP, EXDEV, EINVAL), else 0; rejects
 * with a system error like node:fs's (code, errno, syscall, path[, dest]). */
static void copy_up_settle(napi_env env, copy_up_req_t *c) {
  napi_value v;
  if (c->res.err) {
    req_t r = {.err = c->res.err, .syscall = c->res.syscall, .path = (char *)c->res.path, .path2 = (char *)c->res.path2};
    reject_with(env, c->deferred, &r);
  } else {
    napi_create_int32(env, c->res.reflink_refused, &v);
    napi_resolve_deferred(env, c->deferred, v);
  }
}

static void copy_up_complete(napi_env env, napi_status status, void *data) {
  copy_up_req_t *c = data;
  /* Cancelled before it ran: nothing was built. */
  if (status != napi_ok && c->res.err == 0) { c->res.err = ECANCELED; c->res.syscall = "copyUpSmall"; }
  /* Here, on the JS thread, so no request sees the copy in place before the union knows it. */
  if (!c->res.err) lf_copy_up_small_place(&c->a, &c->res);
  copy_up_settle(env, c);
  napi_delete_async_work(env, c->work);
  copy_up_free(c);
}

/* copyUpSmall(src, tmp, dest, parent|null, uid, gid, perm, atime, mtime, originName|null,
 * originValue|null, size, reflink, umask|-1, flush): a Promise (see copy_up_settle). Inline
 * (setInline) it runs at once and returns a settled Promise — unless it flushes: an
 * fdatasync waits for the disk, which would stall every other request of a mount, so the
 * temp file is built on the pool, and put in place back on this thread. */
static napi_value js_copy_up_small(napi_env env, napi_callback_info info) {
  napi_value argv[15], promise, name;
  if (!get_args(env, info, 15, argv)) return NULL;
  copy_up_req_t *c = calloc(1, sizeof *c);
  if (!c) { napi_throw_error(env, "ENOMEM", "out of memory"); return NULL; }
  lf_copy_up_t *a = &c->a;
  int64_t uid, gid, perm, size;
  int32_t umask_arg = -1;
  bool reflink = false, flush = false;
  if (!(c->src = get_bytes(env, argv[0], "src")) || !(c->tmp = get_bytes(env, argv[1], "tmp")) ||
      !(c->dest = get_bytes(env, argv[2], "dest")) || !get_opt_bytes(env, argv[3], "parent", &c->parent) ||
      !get_nonneg(env, argv[4], "uid", &uid) || !get_nonneg(env, argv[5], "gid", &gid) ||
      !get_nonneg(env, argv[6], "perm", &perm) || !get_timespec(env, argv[7], "atime", &a->times[0]) ||
      !get_timespec(env, argv[8], "mtime", &a->times[1]) || !get_opt_bytes(env, argv[9], "originName", &c->oname) ||
      !get_nonneg(env, argv[11], "size", &size) || napi_get_value_bool(env, argv[12], &reflink) != napi_ok ||
      napi_get_value_bool(env, argv[14], &flush) != napi_ok)
    goto fail;
  if (napi_get_value_int32(env, argv[13], &umask_arg) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "umask must be a number (-1: unknown)");
    goto fail;
  }
  if (c->oname) {
    bool is_buf = false;
    void *data = NULL;
    napi_is_buffer(env, argv[10], &is_buf);
    if (!is_buf) { napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "originValue must be a Buffer"); goto fail; }
    napi_get_buffer_info(env, argv[10], &data, &a->origin_len);
    /* A copy: the pool thread may run after the Buffer is gone. */
    if (!(c->ovalue = malloc(a->origin_len ? a->origin_len : 1))) { napi_throw_error(env, "ENOMEM", "out of memory"); goto fail; }
    memcpy(c->ovalue, data, a->origin_len);
  }
  if (size > LF_COPY_UP_SMALL_MAX) { napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "size must be <= 64 KiB"); goto fail; }
  a->src = c->src; a->tmp = c->tmp; a->dest = c->dest; a->parent = c->parent;
  a->uid = (uid_t)uid; a->gid = (gid_t)gid; a->perm = (mode_t)(perm & 07777);
  a->origin_name = c->oname; a->origin_value = c->ovalue;
  a->size = size; a->reflink = reflink; a->umask = umask_arg < 0 ? -1 : (umask_arg & 0777);
  a->flush = flush;
  if (napi_create_promise(env, &c->deferred, &promise) != napi_ok) goto fail;
  if (run_inline && !flush) {
    lf_copy_up_small(a, &c->res);
    copy_up_settle(env, c);
    copy_up_free(c);
    return promise;
  }
  napi_create_string_utf8(env, "copyUpSmall", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, copy_up_execute, copy_up_complete, c, &c->work) != napi_ok ||
      napi_queue_async_work(env, c->work) != napi_ok) {
    c->res.err = EIO;
    c->res.syscall = "copyUpSmall";
    copy_up_settle(env, c);
    copy_up_free(c);
  }
  return promise;
fail:
  copy_up_free(c);
  return NULL;
}

static napi_value js_set_inline(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  bool on = false;
  CHECK(napi_get_value_bool(env, argv[0], &on));
  run_inline = on;
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"lgetxattr", NULL, js_lgetxattr, NULL, NULL, NULL, napi_enumerable, NULL},
    {"llistxattr", NULL, js_llistxattr, NULL, NULL, NULL, napi_enumerable, NULL},
    {"lsetxattr", NULL, js_lsetxattr, NULL, NULL, NULL, napi_enumerable, NULL},
    {"lremovexattr", NULL, js_lremovexattr, NULL, NULL, NULL, napi_enumerable, NULL},
    {"mknod", NULL, js_mknod, NULL, NULL, NULL, napi_enumerable, NULL},
    {"utimens", NULL, js_utimens, NULL, NULL, NULL, napi_enumerable, NULL},
    {"futimens", NULL, js_futimens, NULL, NULL, NULL, napi_enumerable, NULL},
    {"renameat2", NULL, js_renameat2, NULL, NULL, NULL, napi_enumerable, NULL},
    {"ficlone", NULL, js_ficlone, NULL, NULL, NULL, napi_enumerable, NULL},
    {"copyFileRange", NULL, js_copy_file_range, NULL, NULL, NULL, napi_enumerable, NULL},
    {"lseek", NULL, js_lseek, NULL, NULL, NULL, napi_enumerable, NULL},
    {"fadvise", NULL, js_fadvise, NULL, NULL, NULL, napi_enumerable, NULL},
    {"makedev", NULL, js_makedev, NULL, NULL, NULL, napi_enumerable, NULL},
    {"major", NULL, js_major, NULL, NULL, NULL, napi_enumerable, NULL},
    {"minor", NULL, js_minor, NULL, NULL, NULL, napi_enumerable, NULL},
    {"mapIndexCache", NULL, js_map_index_cache, NULL, NULL, NULL, napi_enumerable, NULL},
    {"setInline", NULL, js_set_inline, NULL, NULL, NULL, napi_enumerable, NULL},
    {"dirStamps", NULL, js_dir_stamps, NULL, NULL, NULL, napi_enumerable, NULL},
    {"copyUpSmall", NULL, js_copy_up_small, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
