/*
 * layerfs_engine: the N-API face of the FUSE engine's native side. JS gets an opaque
 * handle per mounted connection and these calls (src/engine/device.ts wraps them):
 *
 *   mount(req) -> handle                      throws Error{errno, code} when it cannot mount
 *   start(h, onRequest(buf|null), readers)    null = the kernel ended the connection
 *   reply(h, unique: bigint, error, parts: Uint8Array[]) -> 0 | -errno
 *   replyFromFd(h, unique, fd, offset: bigint, size) -> 0 | -errno (queued)
 *   writeToFd(h, unique, fd, offset: bigint, data: Uint8Array) -> 0 | -errno (queued)
 *   backingOpen(h, fd) -> id | -errno ; backingClose(h, id) -> 0 | -errno
 *   backingShare(h, nodeid, fd, write) -> id | -ENOENT (none) | -EBUSY (not shareable)
 *   backingAdopt(h, nodeid, fd, writable) -> id | -errno ; backingRelease(h, nodeid)
 *   openRegister(h, nodeid, path | null, size, attr | null, cached) -> 0 | -errno ; openEpoch(h)
 *   nativeOpenFd(h, nodeid) -> an fd C holds for the node, or -1
 *   lookupConfigure(h, index | null, entryValid, attrValid, negativeValid, registerFiles, cached, copyUp, cb(records)) -> 0 | -errno
 *   lookupMark(h, nodeid, indexPath | null, upperDir | null, samePath) ; lookupChild(h, parent, name, nodeid) ; lookupForget(h, nodeid)
 *   answerOpen(h, unique, nodeid, flags) -> whether C answered that OPEN (a registered node)
 *   notifyInvalEntry(h, parent: bigint | number, name: Uint8Array) -> Promise<0 | -errno>
 *   notifyInvalInode(h, nodeid: bigint | number, offset: bigint, length: bigint) -> Promise<0 | -errno>
 *   teardown(h, detach: boolean) -> Promise<void>   (once per handle)
 *   fd(h) -> number ; unmountPath(mountpoint, fusermount) -> 0 | -errno
 *   socketDevice() -> [handle, peerFd]        a device on a socketpair, for tests
 *   fusermount(req) -> { fd, helper } ; releaseFusermount(helper) ; attach(fd, mountpoint, detach) -> handle
 *
 * Argument TYPE errors throw (programming errors); outcomes are errno numbers, which the
 * TS wrapper turns into errors where the caller needs one.
 */
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "device.h"
#include "fd-reply.h"
#include "fuse-kernel.h"
#include "js-loop.h"
#include "notify.h"
#include "passthrough.h"
#include "reply.h"

#define CHECK(call)                                                   \
  do {                                                                \
    if ((call) != napi_ok) {                                          \
      napi_throw_error(env, "EINVAL", "layerfs_engine: " #call " failed"); \
      return NULL;                                                    \
    }                                                                 \
  } while (0)

#define ARGS(n)                                                       \
  size_t argc = n;                                                    \
  napi_value argv[n];                                                 \
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));        \
  if (argc < n) {                                                     \
    napi_throw_type_error(env, "EINVAL", "layerfs_engine: expected " #n " arguments"); \
    return NULL;                                                      \
  }

static napi_value number(napi_env env, double v) {
  napi_value out;
  napi_create_double(env, v, &out);
  return out;
}

static napi_value undefined(napi_env env) {
  napi_value out;
  napi_get_undefined(env, &out);
  return out;
}

static int get_device(napi_env env, napi_value v, lf_device **dev) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || !p) {
    napi_throw_type_error(env, "EINVAL", "layerfs_engine: not a device handle");
    return 0;
  }
  *dev = p;
  return 1;
}

// Throws "<what> must be <expected>" and returns 0, for the get_* helpers below.
static int type_error(napi_env env, const char *what, const char *expected) {
  char msg[128];
  snprintf(msg, sizeof msg, "layerfs_engine: %s must be %s", what, expected);
  napi_throw_type_error(env, "EINVAL", msg);
  return 0;
}

static int get_u64(napi_env env, napi_value v, uint64_t *out, const char *what) {
  bool lossless;
  return (napi_get_value_bigint_uint64(env, v, out, &lossless) == napi_ok && lossless) || type_error(env, what, "a bigint in 0..2^64-1");
}

// A node id: a number (JS keeps them as exact integers below 2^53, no BigInt per
// request) or a bigint.
static int get_nodeid(napi_env env, napi_value v, uint64_t *out, const char *what) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return get_u64(env, v, out, what);
  double d;
  if (napi_get_value_double(env, v, &d) == napi_ok && d >= 0 && d <= 9007199254740992.0 && d == (double) (uint64_t) d) {
    *out = (uint64_t) d;
    return 1;
  }
  return type_error(env, what, "an integer in 0..2^53 or a bigint");
}

static int get_i64(napi_env env, napi_value v, int64_t *out, const char *what) {
  bool lossless;
  return (napi_get_value_bigint_int64(env, v, out, &lossless) == napi_ok && lossless) || type_error(env, what, "a 64-bit bigint");
}

static int get_i32(napi_env env, napi_value v, int32_t *out, const char *what) {
  return napi_get_value_int32(env, v, out) == napi_ok || type_error(env, what, "a number");
}

static int get_bytes(napi_env env, napi_value v, void **data, size_t *len, const char *what) {
  bool is_ta = false;
  napi_typedarray_type type;
  napi_value ab;
  size_t offset;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, v, &type, len, data, &ab, &offset) != napi_ok || type != napi_uint8_array) {
    return type_error(env, what, "a Buffer or Uint8Array");
  }
  if (!*data) *data = "";  // an empty view may have no backing store
  return 1;
}

// A string property of `obj` into a malloc'd C string; NULL when absent (*ok stays 1) or
// on a type error (*ok = 0, exception pending).
static char *get_string_prop(napi_env env, napi_value obj, const char *name, int required, int *ok) {
  napi_value v;
  napi_valuetype t;
  if (napi_get_named_property(env, obj, name, &v) != napi_ok || napi_typeof(env, v, &t) != napi_ok) {
    *ok = 0;
    return NULL;
  }
  if (t == napi_undefined && !required) return NULL;
  size_t len;
  if (t != napi_string || napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
    *ok = type_error(env, name, "a string");
    return NULL;
  }
  char *s = malloc(len + 1);
  if (!s || napi_get_value_string_utf8(env, v, s, len + 1, &len) != napi_ok || strlen(s) != len) {
    free(s);
    napi_throw_type_error(env, "EINVAL", "layerfs_engine: strings must not contain NUL");
    *ok = 0;
    return NULL;
  }
  return s;
}

static int get_bool_prop(napi_env env, napi_value obj, const char *name) {
  napi_value v;
  bool b = false;
  if (napi_get_named_property(env, obj, name, &v) == napi_ok) napi_get_value_bool(env, v, &b);
  return b;
}

static napi_value errno_error(napi_env env, int negerrno, const char *message) {
  napi_value msg, code, err, num;
  const char *name = strerrorname_np(-negerrno);
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_string_utf8(env, name ? name : "EIO", NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, msg, &err);
  napi_create_int32(env, negerrno, &num);
  napi_set_named_property(env, err, "errno", num);
  napi_set_named_property(env, err, "code", code);
  return err;
}

// Process exit with a device still up: detach its mount(2)-made mount, which would
// otherwise stay behind answering ENOTCONN (fusermount3's auto_unmount covers the rest).
// Node's process.exit() skips environment cleanup hooks but not exit()'s atexit handlers,
// so live devices are kept in a list an atexit handler walks; the env cleanup hook covers
// an environment torn down without exit() (a worker thread).
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static lf_device *live_head;
static pthread_once_t atexit_once = PTHREAD_ONCE_INIT;

static void detach_at_exit(lf_device *dev) {
  if (dev->torn_down || dev->mount.fusermount || dev->no_detach || !dev->mountpoint[0] || atomic_load(&dev->unmounted)) return;
  char err[256];
  lf_unmount_own(&dev->mount, dev->mountpoint, err, sizeof err);
}

static void detach_all_at_exit(void) {
  pthread_mutex_lock(&live_lock);
  for (lf_device *d = live_head; d; d = d->live_next) detach_at_exit(d);
  pthread_mutex_unlock(&live_lock);
}

static void register_atexit(void) { atexit(detach_all_at_exit); }

static void live_add(lf_device *dev) {
  pthread_once(&atexit_once, register_atexit);
  pthread_mutex_lock(&live_lock);
  dev->live_next = live_head;
  live_head = dev;
  pthread_mutex_unlock(&live_lock);
}

static void live_remove(lf_device *dev) {
  pthread_mutex_lock(&live_lock);
  for (lf_device **p = &live_head; *p; p = &(*p)->live_next) {
    if (*p == dev) {
      *p = dev->live_next;
      break;
    }
  }
  pthread_mutex_unlock(&live_lock);
}

static void cleanup_hook(void *arg) { detach_at_exit(arg); }

static void free_device(lf_device *dev) {
  if (dev->wake_fd >= 0) close(dev->wake_fd);
  lf_node_flags_free(&dev->no_xattrs);
  lf_node_flags_free(&dev->js_dirs);
  lf_node_opens_free(&dev->opens);
  lf_copy_up_free(&dev->copy_up);
  free(dev->mountpoint);
  free(dev);
}

static void handle_finalize(napi_env env, void *data, void *hint) {
  (void) env;
  (void) hint;
  lf_device *dev = data;
  // A device that is still serving is owned by its threads; only a finished one is freed.
  if (dev->torn_down) free_device(dev);
}

// The strings of a MountRequest, owned by the caller of parse_request (free_request).
typedef struct {
  char *mountpoint, *fsname, *subtype;
} request_strings;

static void free_request(request_strings *r) {
  free(r->mountpoint);
  free(r->fsname);
  free(r->subtype);
}

// A JS MountRequest into `req`; 0 with an exception pending on a type error.
static int parse_request(napi_env env, napi_value obj, lf_mount_request *req, request_strings *strs) {
  int ok = 1;
  memset(strs, 0, sizeof *strs);
  strs->mountpoint = get_string_prop(env, obj, "mountpoint", 1, &ok);
  if (ok) strs->fsname = get_string_prop(env, obj, "fsname", 1, &ok);
  if (ok) strs->subtype = get_string_prop(env, obj, "subtype", 0, &ok);
  if (!ok) {
    free_request(strs);
    return 0;
  }
  int32_t root_mode = 040755;
  napi_value v;
  napi_valuetype t;
  if (napi_get_named_property(env, obj, "rootMode", &v) == napi_ok && napi_typeof(env, v, &t) == napi_ok && t == napi_number) {
    napi_get_value_int32(env, v, &root_mode);
  }
  *req = (lf_mount_request) {
    .mountpoint = strs->mountpoint, .fsname = strs->fsname, .subtype = strs->subtype, .root_mode = (unsigned) root_mode,
    .allow_other = get_bool_prop(env, obj, "allowOther"),
    .default_permissions = get_bool_prop(env, obj, "defaultPermissions"),
    .read_only = get_bool_prop(env, obj, "readOnly"),
    .suid = get_bool_prop(env, obj, "suid"),
    .dev = get_bool_prop(env, obj, "dev"),
    .force_fusermount = get_bool_prop(env, obj, "useFusermount"),
  };
  return 1;
}

// A device over an open connection fd (taken over: closed at teardown). `mountpoint` is
// taken over too ("" for none). NULL with an exception pending on failure (both freed).
static napi_value new_device(napi_env env, lf_mount_result *m, char *mountpoint, lf_device **out) {
  lf_device *dev = calloc(1, sizeof *dev);
  int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (!dev || wake < 0) {
    int e = wake < 0 ? -errno : -ENOMEM;
    if (wake >= 0) close(wake);
    free(dev);
    free(mountpoint);
    close(m->fd);
    lf_mount_release_helper(m);
    napi_throw(env, errno_error(env, e, "layerfs_engine: cannot set up the device"));
    return NULL;
  }
  dev->wake_fd = wake;
  dev->mount = *m;
  dev->mountpoint = mountpoint;
  // Readers poll: a read that finds the queue empty (another reader took the request)
  // must return EAGAIN instead of sleeping with no way to be woken.
  int fl = fcntl(dev->mount.fd, F_GETFL);
  if (fl >= 0) fcntl(dev->mount.fd, F_SETFL, fl | O_NONBLOCK);
  napi_value handle;
  if (napi_create_external(env, dev, handle_finalize, NULL, &handle) != napi_ok) {
    close(dev->mount.fd);
    free_device(dev);
    napi_throw_error(env, "EINVAL", "layerfs_engine: cannot create a device handle");
    return NULL;
  }
  if (mountpoint[0]) {
    napi_add_env_cleanup_hook(env, cleanup_hook, dev);
    dev->has_cleanup_hook = 1;
    live_add(dev);
  }
  *out = dev;
  return handle;
}

static napi_value js_mount(napi_env env, napi_callback_info info) {
  ARGS(1);
  lf_mount_request req;
  request_strings strs;
  if (!parse_request(env, argv[0], &req, &strs)) return NULL;
  char err[512];
  lf_mount_result m;
  int rc = lf_mount(&req, &m, err, sizeof err);
  char *mountpoint = strs.mountpoint;
  strs.mountpoint = NULL;
  free_request(&strs);
  if (rc != 0) {
    free(mountpoint);
    napi_throw(env, errno_error(env, rc, err));
    return NULL;
  }
  lf_device *dev;
  return new_device(env, &m, mountpoint, &dev);
}

// fusermount3's helper (auto_unmount) as JS holds it apart from a device.
static void helper_finalize(napi_env env, void *data, void *hint) {
  (void) env;
  (void) hint;
  free(data);  // an unreleased helper's socket stays open: the mount lives until this process exits
}

// fusermount(req) -> { fd, helper }: the mount made by fusermount3, its /dev/fuse fd, and
// the auto_unmount helper to release (closing its socket unmounts).
static napi_value js_fusermount(napi_env env, napi_callback_info info) {
  ARGS(1);
  lf_mount_request req;
  request_strings strs;
  if (!parse_request(env, argv[0], &req, &strs)) return NULL;
  req.force_fusermount = 1;
  char err[512];
  lf_mount_result *m = calloc(1, sizeof *m);
  int rc = m ? lf_mount(&req, m, err, sizeof err) : -ENOMEM;
  if (!m) snprintf(err, sizeof err, "out of memory");
  free_request(&strs);
  if (rc != 0) {
    free(m);
    napi_throw(env, errno_error(env, rc, err));
    return NULL;
  }
  napi_value out, fd, helper;
  napi_create_object(env, &out);
  napi_create_int32(env, m->fd, &fd);
  m->fd = -1;  // the caller owns the fd now
  CHECK(napi_create_external(env, m, helper_finalize, NULL, &helper));
  napi_set_named_property(env, out, "fd", fd);
  napi_set_named_property(env, out, "helper", helper);
  return out;
}

static napi_value js_release_fusermount(napi_env env, napi_callback_info info) {
  ARGS(1);
  void *p = NULL;
  if (napi_get_value_external(env, argv[0], &p) != napi_ok || !p) return type_error(env, "helper", "a fusermount helper"), NULL;
  lf_mount_release_helper(p);
  return undefined(env);
}

// attach(fd, mountpoint, detach) -> handle: a device over a connection fd obtained
// elsewhere (fusermount() here or in a parent; inherited across a user namespace). With
// detach false, unmount() only stops serving and closes the fd: whoever made the mount
// removes it (e.g. by releasing fusermount3's helper).
static napi_value js_attach(napi_env env, napi_callback_info info) {
  ARGS(3);
  int32_t fd;
  bool detach = true;
  if (!get_i32(env, argv[0], &fd, "fd")) return NULL;
  napi_get_value_bool(env, argv[2], &detach);
  size_t len;
  char *mountpoint = NULL;
  if (napi_get_value_string_utf8(env, argv[1], NULL, 0, &len) != napi_ok || !(mountpoint = malloc(len + 1)) ||
      napi_get_value_string_utf8(env, argv[1], mountpoint, len + 1, &len) != napi_ok) {
    free(mountpoint);
    return type_error(env, "mountpoint", "a string"), NULL;
  }
  if (fcntl(fd, F_GETFD) < 0) {
    free(mountpoint);
    napi_throw(env, errno_error(env, -EBADF, "layerfs_engine: attach: not an open fd"));
    return NULL;
  }
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  lf_mount_result m = { .fd = fd, .fusermount = geteuid() != 0, .commfd = -1, .helper = 0 };
  lf_device *dev;
  napi_value handle = new_device(env, &m, mountpoint, &dev);
  if (handle) dev->no_detach = !detach;
  return handle;
}

static void free_base(napi_env env, void *view, void *base) {
  (void) env;
  (void) view;
  free(base);
}

// A device on one end of a SOCK_SEQPACKET socketpair instead of /dev/fuse (message
// boundaries kept, as the device keeps them): tests feed it frames, random or truncated
// ones included, from the other end and read the replies there. Returns [handle, peerFd].
static napi_value js_socket_device(napi_env env, napi_callback_info info) {
  (void) info;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    napi_throw(env, errno_error(env, -errno, "socketpair"));
    return NULL;
  }
  char *none = strdup("");
  lf_mount_result m = { .fd = sv[0], .fusermount = 0, .commfd = -1, .helper = 0 };
  lf_device *dev;
  napi_value handle = none ? new_device(env, &m, none, &dev) : NULL;
  if (!handle) {
    if (!none) close(sv[0]);
    close(sv[1]);
    if (!none) napi_throw_error(env, "ENOMEM", "layerfs_engine: out of memory");
    return NULL;
  }
  napi_value peer, pair;
  napi_create_int32(env, sv[1], &peer);
  napi_create_array_with_length(env, 2, &pair);
  napi_set_element(env, pair, 0, handle);
  napi_set_element(env, pair, 1, peer);
  return pair;
}

// Requests reach JS here, on the JS thread. data: [u32 length][request bytes], or NULL
// for "the kernel ended the connection".
static void deliver(napi_env env, napi_value js_cb, void *context, void *data) {
  lf_device *dev = context;
  if (!env) {  // the function is being torn down with items still queued
    free(data);
    return;
  }
  napi_value arg, global;
  napi_get_global(env, &global);
  if (!data) {
    napi_get_null(env, &arg);
  } else {
    if (dev->closing) {  // unmount() began: nobody will answer
      free(data);
      return;
    }
    uint32_t len;
    memcpy(&len, data, sizeof len);
    char *frame = (char *) data + sizeof len;
    // Most requests are a few hundred bytes: a copy costs less than a finalizer. A WRITE's
    // data: the Buffer views the reader's allocation (freed with the Buffer).
    napi_status st = len <= LF_SMALL_REQUEST ? napi_create_buffer_copy(env, len, frame, NULL, &arg)
                                             : napi_create_external_buffer(env, len, frame, free_base, data, &arg);
    if (st != napi_ok) lf_reply_enomem(dev->mount.fd, frame, len);
    if (st != napi_ok || len <= LF_SMALL_REQUEST) free(data);
    if (st != napi_ok) return;
  }
  if (napi_call_function(env, global, js_cb, 1, &arg, NULL) == napi_pending_exception) {
    // The TS wrapper catches everything; this is the last line against a crash.
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    fprintf(stderr, "layerfs engine: the request handler threw\n");
  }
}

static void post_settle(lf_device *dev, int kind, void *job) {
  lf_settle_item *item = malloc(sizeof *item);
  if (item) {
    item->kind = kind;
    item->job = job;
  }
  // Without memory (or while closing) the item is dropped: a notification's promise stays
  // pending, a WRITE's request Buffer stays referenced; neither is unsafe.
  if (!item || napi_call_threadsafe_function(dev->settle, item, napi_tsfn_blocking) != napi_ok) free(item);
}

// On the JS thread: settle a notification's promise, let go of a WRITE's data, or place a
// copy-up built on a queue thread (js-loop.c).
static void settle(napi_env env, napi_value js_cb, void *context, void *data) {
  (void) js_cb;
  lf_settle_item *item = data;
  if (item->kind == LF_SETTLE_COPY_UP) {
    lf_js_copy_up_built(env, context, item->job);
  } else if (item->kind == LF_SETTLE_NOTIFY) {
    lf_notify_job *job = item->job;
    if (env) napi_resolve_deferred(env, (napi_deferred) job->user, number(env, job->rc));
    free(job);
  } else {
    lf_write_job *job = item->job;
    if (env) napi_delete_reference(env, (napi_ref) job->user);
    free(job);
  }
  free(item);
}

// On the notify thread, after the write: hand the result to the JS thread.
static void notify_done(lf_notify_job *job) { post_settle(job->ctx, LF_SETTLE_NOTIFY, job); }

static void write_done(lf_write_job *job) { post_settle(job->ctx, LF_SETTLE_WRITE, job); }

static napi_value js_start(napi_env env, napi_callback_info info) {
  ARGS(3);
  lf_device *dev;
  int32_t readers;
  if (!get_device(env, argv[0], &dev) || !get_i32(env, argv[2], &readers, "readers")) return NULL;
  if (dev->started || dev->closing) {
    napi_throw_error(env, "EINVAL", "layerfs_engine: start() runs once, before unmount()");
    return NULL;
  }
  if (readers < 0 || readers > 64) readers = 2;
  napi_value name;
  napi_create_string_utf8(env, "layerfs-engine", NAPI_AUTO_LENGTH, &name);
  CHECK(napi_create_threadsafe_function(env, argv[1], NULL, name, 0, 1, NULL, NULL, dev, deliver, &dev->to_js));
  CHECK(napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, NULL, NULL, dev, settle, &dev->settle));
  // Only the request function keeps the process alive (while mounted, serving is the job).
  napi_unref_threadsafe_function(env, dev->settle);
  int err = lf_queue_start(&dev->io, LF_IO_THREADS, LF_MAX_READ);
  if (!err) {
    err = lf_queue_start(&dev->notify, 1, 0);
    if (err) lf_queue_stop(&dev->io);
  }
  if (!err) {
    err = readers == 0 ? lf_js_reader_start(dev, env, argv[1]) : lf_readers_start(dev, readers);
    if (err) {
      lf_queue_stop(&dev->io);
      lf_queue_stop(&dev->notify);
    }
  }
  if (err) {
    napi_release_threadsafe_function(dev->to_js, napi_tsfn_abort);
    napi_release_threadsafe_function(dev->settle, napi_tsfn_abort);
    napi_throw(env, errno_error(env, -err, "layerfs_engine: cannot start the engine's threads"));
    return NULL;
  }
  dev->started = 1;
  return undefined(env);
}

static napi_value js_reply(napi_env env, napi_callback_info info) {
  ARGS(4);
  lf_device *dev;
  uint64_t unique;
  int32_t error;
  if (!get_device(env, argv[0], &dev) || !get_u64(env, argv[1], &unique, "unique") || !get_i32(env, argv[2], &error, "error")) return NULL;
  bool is_array = false;
  uint32_t nparts = 0;
  if (napi_is_array(env, argv[3], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[3], &nparts) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "layerfs_engine: reply parts must be an array");
    return NULL;
  }
  if (nparts > LF_REPLY_MAX_PARTS) {
    napi_throw_range_error(env, "EINVAL", "layerfs_engine: too many reply parts");
    return NULL;
  }
  if (error > 0 || error < -4095) {
    napi_throw_range_error(env, "EINVAL", "layerfs_engine: error must be 0 or a negative errno");
    return NULL;
  }
  struct iovec parts[LF_REPLY_MAX_PARTS];
  for (uint32_t i = 0; i < nparts; i++) {
    napi_value el;
    CHECK(napi_get_element(env, argv[3], i, &el));
    if (!get_bytes(env, el, &parts[i].iov_base, &parts[i].iov_len, "a reply part")) return NULL;
  }
  if (dev->closing || !dev->started) return number(env, -EBADF);
  return number(env, lf_reply(dev->mount.fd, unique, error, parts, (int) nparts));
}

static napi_value js_reply_from_fd(napi_env env, napi_callback_info info) {
  ARGS(5);
  lf_device *dev;
  uint64_t unique, offset;
  int32_t fd, size;
  if (!get_device(env, argv[0], &dev) || !get_u64(env, argv[1], &unique, "unique") || !get_i32(env, argv[2], &fd, "fd") ||
      !get_u64(env, argv[3], &offset, "offset") || !get_i32(env, argv[4], &size, "size")) return NULL;
  if (size < 0) {
    napi_throw_range_error(env, "EINVAL", "layerfs_engine: size must not be negative");
    return NULL;
  }
  if (dev->closing || !dev->started) return number(env, -EBADF);
  lf_job *job = lf_fd_reply_job(dev->mount.fd, unique, fd, offset, (uint32_t) size);
  if (!job) return number(env, lf_reply(dev->mount.fd, unique, -ENOMEM, NULL, 0));
  lf_queue_push(&dev->io, job);
  return number(env, 0);
}

// writeToFd(h, unique, fd, offset, data): WRITE answered by pwrite on an IO thread; `data`
// (a view into the request Buffer) stays referenced until the write is done.
static napi_value js_write_to_fd(napi_env env, napi_callback_info info) {
  ARGS(5);
  lf_device *dev;
  uint64_t unique, offset;
  int32_t fd;
  void *data;
  size_t len;
  if (!get_device(env, argv[0], &dev) || !get_u64(env, argv[1], &unique, "unique") || !get_i32(env, argv[2], &fd, "fd") ||
      !get_u64(env, argv[3], &offset, "offset") || !get_bytes(env, argv[4], &data, &len, "data")) return NULL;
  if (dev->closing || !dev->started) return number(env, -EBADF);
  lf_write_job *job = lf_fd_write_job(dev->mount.fd, unique, fd, offset, data, len);
  napi_ref ref;
  if (!job || napi_create_reference(env, argv[4], 1, &ref) != napi_ok) {
    free(job);
    return number(env, lf_reply(dev->mount.fd, unique, -ENOMEM, NULL, 0));
  }
  job->user = ref;
  job->ctx = dev;
  job->done = write_done;
  lf_queue_push(&dev->io, &job->job);
  return number(env, 0);
}

static napi_value js_backing_open(napi_env env, napi_callback_info info) {
  ARGS(2);
  lf_device *dev;
  int32_t fd;
  if (!get_device(env, argv[0], &dev) || !get_i32(env, argv[1], &fd, "fd")) return NULL;
  if (dev->closing) return number(env, -EBADF);
  return number(env, lf_backing_open(dev->mount.fd, fd));
}

static napi_value js_backing_close(napi_env env, napi_callback_info info) {
  ARGS(2);
  lf_device *dev;
  int32_t id;
  if (!get_device(env, argv[0], &dev) || !get_i32(env, argv[1], &id, "id")) return NULL;
  if (dev->closing) return number(env, -EBADF);
  return number(env, lf_backing_close(dev->mount.fd, id));
}

// setNoXattrs(h, nodeid, on): whether the object of `nodeid` has no xattr at all, so the
// JS-thread request loop answers its GETXATTR (ENODATA) and LISTXATTR (empty) itself.
static napi_value js_set_no_xattrs(napi_env env, napi_callback_info info) {
  ARGS(3);
  lf_device *dev;
  uint64_t nodeid;
  bool on = false;
  if (!get_device(env, argv[0], &dev) || !get_nodeid(env, argv[1], &nodeid, "nodeid")) return NULL;
  CHECK(napi_get_value_bool(env, argv[2], &on));
  return number(env, -lf_node_flags_set(&dev->no_xattrs, nodeid, on));
}

// [GETXATTR, LISTXATTR] answered by js-loop.c without reaching JS (read on the JS thread,
// which wrote them).
static napi_value js_native_answers(napi_env env, napi_callback_info info) {
  ARGS(1);
  lf_device *dev;
  if (!get_device(env, argv[0], &dev)) return NULL;
  napi_value arr;
  CHECK(napi_create_array_with_length(env, 4, &arr));
  for (uint32_t i = 0; i < 2; i++) CHECK(napi_set_element(env, arr, i, number(env, (double) dev->native_answers[i])));
  CHECK(napi_set_element(env, arr, 2, number(env, (double) dev->copy_up.copied)));
  CHECK(napi_set_element(env, arr, 3, number(env, (double) dev->lookups.answered)));
  return arr;
}

// The node's one passthrough backing (node-opens.h), shared by JS's opens and C's.
// backingShare(h, nodeid, fd, write): takes a reference when the node's backing is the
// file `fd` is open on, and writable if `write`; fd -1 only asks whether there is one.
static napi_value js_backing_share(napi_env env, napi_callback_info info) {
  ARGS(4);
  lf_device *dev;
  uint64_t nodeid;
  int32_t fd;
  bool write = false;
  if (!get_device(env, argv[0], &dev) || !get_nodeid(env, argv[1], &nodeid, "nodeid") || !get_i32(env, argv[2], &fd, "fd")) return NULL;
  CHECK(napi_get_value_bool(env, argv[3], &write));
  lf_node_open *r = dev->closing ? NULL : lf_node_opens_get(&dev->opens, nodeid);
  if (r && r->refs == 0 && r->backing_id >= 0) {
    lf_node_opens_drop_idle(&dev->opens, r, dev->mount.fd);
    r = lf_node_opens_get(&dev->opens, nodeid);
  }
  if (dev->closing || !r || r->backing_id < 0) return number(env, -ENOENT);
  struct stat st;
  if (fd < 0 || (write && !r->writable)) return number(env, -EBUSY);
  if (fstat(fd, &st) != 0) return number(env, -errno);
  if ((uint64_t) st.st_dev != r->bdev || (uint64_t) st.st_ino != r->bino) return number(env, -EBUSY);
  r->refs++;
  return number(env, r->backing_id);
}

// backingAdopt(h, nodeid, fd, writable): a new backing for a node that has none, on `fd`
// (the caller keeps its fd; the backing id holds its own reference), with one reference.
static napi_value js_backing_adopt(napi_env env, napi_callback_info info) {
  ARGS(4);
  lf_device *dev;
  uint64_t nodeid;
  int32_t fd;
  bool writable = false;
  if (!get_device(env, argv[0], &dev) || !get_nodeid(env, argv[1], &nodeid, "nodeid") || !get_i32(env, argv[2], &fd, "fd")) return NULL;
  CHECK(napi_get_value_bool(env, argv[3], &writable));
  if (dev->closing) return number(env, -EBADF);
  struct stat st;
  if (fstat(fd, &st) != 0) return number(env, -errno);
  lf_node_open *r = lf_node_opens_get(&dev->opens, nodeid);
  if (r && r->refs == 0 && r->backing_id >= 0) lf_node_opens_drop_idle(&dev->opens, r, dev->mount.fd);
  r = lf_node_opens_make(&dev->opens, nodeid);
  if (!r) return number(env, -ENOMEM);
  if (r->backing_id >= 0) return number(env, -EBUSY);
  int id = lf_backing_open(dev->mount.fd, fd);
  if (id < 0) {
    lf_node_opens_tidy(&dev->opens, r);
    return number(env, id);
  }
  r->backing_id = id;
  r->bdev = (uint64_t) st.st_dev;
  r->bino = (uint64_t) st.st_ino;
  r->writable = writable;
  r->refs = 1;
  return number(env, id);
}

// backingRelease(h, nodeid): one reference less; the last closes the backing id.
static napi_value js_backing_release(napi_env env, napi_callback_info info) {
  ARGS(2);
  lf_device *dev;
  uint64_t nodeid;
  if (!get_device(env, argv[0], &dev) || !get_nodeid(env, argv[1], &nodeid, "nodeid")) return NULL;
  lf_node_open *r = lf_node_opens_get(&dev->opens, nodeid);
  if (!dev->closing && r) lf_node_opens_unref(&dev->opens, r, dev->mount.fd);
  return number(env, 0);
}

// openRegister(h, nodeid, path | null, size, attr | null, cached, unionAt): the node is a
// lower-layer regular file at `path` (of `size` bytes, as indexed) whose GETATTR answer is
// `attr` (a fuse_attr_out), until the next openEpoch; null unregisters it. `cached`: its
// opens are answered without passthrough (FOPEN_KEEP_CACHE; READs from C's fd). `unionAt`:
// where in `path` the union path begins when its first write open may be copied up in C
// (copy-up-open.h), else -1.
static napi_value js_open_register(napi_env env, napi_callback_info info) {
  ARGS(7);
  lf_device *dev;
  uint64_t nodeid;
  int64_t size = 0;
  void *data = NULL, *attr = NULL;
  size_t len = 0, attr_len = 0;
  napi_valuetype type;
  if (!get_device(env, argv[0], &dev) || !get_nodeid(env, argv[1], &nodeid, "nodeid")) return NULL;
  CHECK(napi_typeof(env, argv[2], &type));
  if (type != napi_null && (!get_bytes(env, argv[2], &data, &len, "path") || !get_bytes(env, argv[4], &attr, &attr_len, "attr"))) return NULL;
  CHECK(napi_get_value_int64(env, argv[3], &size));
  bool cached = false;
  int32_t union_at = -1;
  if (data) {
    CHECK(napi_get_value_bool(env, argv[5], &cached));
    if (!get_i32(env, argv[6], &union_at, "unionAt")) return NULL;
  }
  if (dev->closing) return number(env, -EBADF);
  if (data && (size < 0 || memchr(data, 0, len) || attr_len != sizeof(struct fuse_attr_out))) return number(env, -EINVAL);
  if (!data) {
    lf_node_open *r = lf_node_opens_get(&dev->opens, nodeid);
    if (r) lf_node_opens_drop_idle(&dev->opens, r, dev->mount.fd);
  }
  return number(env, -lf_node_opens_register(&dev->opens, nodeid, data, len, (uint64_t) size, attr, cached, union_at));
}

// attrRegister(h, nodeid, attr | null, dir): until the next openEpoch the JS-thread request
// loop answers the node's GETATTR with `attr` (a fuse_attr_out) when given, and its
// OPENDIR if `dir`; openRegister(h, nodeid, null, …) unregisters it.
static napi_value js_attr_register(napi_env env, napi_callback_info info) {
  ARGS(4);
  lf_device *dev;
  uint64_t nodeid;
  void *attr = NULL;
  size_t attr_len = 0;
  bool dir = false;
  napi_valuetype type;
  if (!get_device(env, argv[0], &dev) || !get_nodeid(env, argv[1], &nodeid, "nodeid")) return NULL;
  CHECK(napi_get_value_bool(env, argv[3], &dir));
  CHECK(napi_typeof(env, argv[2], &type));
  if (type != napi_null && !get_bytes(env, argv[2], &attr, &attr_len, "attr")) return NULL;
  if (dev->closing) return number(env, -EBADF);
  if (attr && attr_len != sizeof(struct fuse_attr_out)) return number(env, -EINVAL);
  return number(env, -lf_node_opens_register_attr(&dev->opens, nodeid, attr, dir));
}

// statRegister(h, nodeid, path, ino, nlinkOne, attrValid): until the next openEpoch the
// JS-thread request loop answers the node's GETATTR with an lstat of `path` (a directory of
// the writable layer), showing st_ino `ino` (0: the writable layer's number of its own)
// and, if `nlinkOne`, one link; openRegister(h, nodeid, null, …) unregisters it.
static napi_value js_stat_register(napi_env env, napi_callback_info info) {
  ARGS(6);
  lf_device *dev;
  uint64_t nodeid, ino, valid;
  void *path = NULL;
  size_t len = 0;
  bool nlink_one = false;
  if (!get_device(env, argv[0], &dev) || !get_nodeid(env, argv[1], &nodeid, "nodeid") || !get_bytes(env, argv[2], &path, &len, "path") ||
      !get_nodeid(env, argv[3], &ino, "ino") || !get_nodeid(env, argv[5], &valid, "attrValid"))
    return NULL;
  CHECK(napi_get_value_bool(env, argv[4], &nlink_one));
  if (dev->closing) return number(env, -EBADF);
  return number(env, -lf_node_opens_register_stat(&dev->opens, nodeid, path, len, ino, nlink_one, valid));
}

// copyUpConfigure(h, upper, work, originName, umask, durable, cb): the request loop copies
// up the write opens of lower files registered with a unionAt (copy-up-open.h) into
// `upper`, building them in `work`, and calls cb(kind, node, fd, uid, flags) for each, and
// for each RELEASE of their handles it answers, before JS runs anything else; upper null:
// it copies nothing up.
static napi_value js_copy_up_configure(napi_env env, napi_callback_info info) {
  ARGS(7);
  lf_device *dev;
  if (!get_device(env, argv[0], &dev)) return NULL;
  char *str[3] = { NULL, NULL, NULL };
  napi_valuetype type;
  CHECK(napi_typeof(env, argv[1], &type));
  int configured = type != napi_null;
  for (int i = 0; configured && i < 3; i++) {
    void *data;
    size_t len;
    if (!get_bytes(env, argv[1 + i], &data, &len, "path")) goto fail;
    if (!(str[i] = malloc(len + 1))) goto fail;
    memcpy(str[i], data, len);
    str[i][len] = 0;
    if (memchr(data, 0, len)) {
      napi_throw_type_error(env, "EINVAL", "layerfs_engine: a path with a NUL byte");
      goto fail;
    }
  }
  int32_t umask_bits = 022;
  bool durable = true;
  if (configured) {
    if (!get_i32(env, argv[4], &umask_bits, "umask")) goto fail;
    CHECK(napi_get_value_bool(env, argv[5], &durable));
    if (dev->copied_up_cb) napi_delete_reference(env, dev->copied_up_cb);
    dev->copied_up_cb = NULL;
    CHECK(napi_create_reference(env, argv[6], 1, &dev->copied_up_cb));
  }
  int err = lf_copy_up_configure(&dev->copy_up, str[0], str[1], str[2], umask_bits, durable);
  for (int i = 0; i < 3; i++) free(str[i]);
  return number(env, -err);
fail:
  for (int i = 0; i < 3; i++) free(str[i]);
  return NULL;
}

// lookupConfigure(h, index | null, entryValid, attrValid, negativeValid, registerFiles, cached,
// copyUp, cb): the request loop answers LOOKUPs in the directories JS marks (lookupMark)
// from `index` (the lower-index cache file's bytes, kept referenced until teardown), with
// these validities (seconds), registering lower files for their opens in C if
// `registerFiles` (with the page cache kept if `cached`; copied up in C if `copyUp` allows),
// and calls cb(records: Buffer) with the nodes it made (loop-lookups.ts) before JS runs
// anything else. index null: no LOOKUP in C. Returns 0 or -errno (a bad index).
static napi_value js_lookup_configure(napi_env env, napi_callback_info info) {
  ARGS(9);
  lf_device *dev;
  if (!get_device(env, argv[0], &dev)) return NULL;
  napi_valuetype type;
  CHECK(napi_typeof(env, argv[1], &type));
  void *data = NULL;
  size_t len = 0;
  if (type != napi_null && !get_bytes(env, argv[1], &data, &len, "index")) return NULL;
  uint64_t valid[3];
  for (int i = 0; i < 3; i++)
    if (!get_nodeid(env, argv[2 + i], &valid[i], "validity")) return NULL;
  bool flags[3] = { false, false, false };
  for (int i = 0; i < 3; i++) CHECK(napi_get_value_bool(env, argv[5 + i], &flags[i]));
  if (dev->closing) return number(env, -EBADF);
  if (data && ((uintptr_t) data & 7)) return number(env, -EINVAL);
  char err[256] = "";
  int rc = lf_lookups_configure(&dev->lookups, data, len, valid[0], valid[1], valid[2], flags[0], flags[1], flags[2], err, sizeof err);
  if (dev->lookup_index) napi_delete_reference(env, dev->lookup_index);
  if (dev->looked_up_cb) napi_delete_reference(env, dev->looked_up_cb);
  dev->lookup_index = dev->looked_up_cb = NULL;
  if (rc == 0 && data) {
    CHECK(napi_create_reference(env, argv[1], 1, &dev->lookup_index));
    CHECK(napi_create_reference(env, argv[8], 1, &dev->looked_up_cb));
  }
  return number(env, rc);
}

// lookupMark(h, nodeid, indexPath | null, upperDir | null, samePath): the request loop
// answers LOOKUPs in directory `nodeid`: a name its writable-layer directory `upperDir` has no
// entry for is what the index says at `indexPath` (null: nothing of the lower layers shows
// there); samePath: its union path is `indexPath`. Until the epoch or its registration ends.
// Both null: no longer (its other registrations stay). 0 or -errno.
static napi_value js_lookup_mark(napi_env env, napi_callback_info info) {
  ARGS(5);
  lf_device *dev;
  uint64_t nodeid;
  void *ix = NULL, *up = NULL;
  size_t ix_len = 0, up_len = 0;
  bool same = false;
  napi_valuetype ix_type, up_type;
  if (!get_device(env, argv[0], &dev) || !get_nodeid(env, argv[1], &nodeid, "nodeid")) return NULL;
  CHECK(napi_typeof(env, argv[2], &ix_type));
  CHECK(napi_typeof(env, argv[3], &up_type));
  if (ix_type == napi_null && up_type == napi_null) {
    if (!dev->closing) lf_node_opens_unmark(&dev->opens, nodeid);
    return number(env, 0);
  }
  if ((ix_type != napi_null && !get_bytes(env, argv[2], &ix, &ix_len, "indexPath")) ||
      (up_type != napi_null && !get_bytes(env, argv[3], &up, &up_len, "upperDir")))
    return NULL;
  CHECK(napi_get_value_bool(env, argv[4], &same));
  if (dev->closing) return number(env, -EBADF);
  if (!dev->lookups.idx) return number(env, -ENOSYS);
  if (ix && (ix_len == 0 || ((const char *) ix)[0] != '/' || memchr(ix, 0, ix_len))) return number(env, -EINVAL);
  if (up && (up_len == 0 || ((const char *) up)[0] != '/' || memchr(up, 0, up_len))) return number(env, -EINVAL);
  return number(env, -lf_node_opens_mark(&dev->opens, nodeid, ix, ix_len, up, up_len, same));
}

// lookupChild(h, parent, name, nodeid): JS made node `nodeid` for `name` in the marked
// directory `parent`; the loop's LOOKUPs of that name answer it. 0 or -ENOMEM (then JS
// ends the mark).
static napi_value js_lookup_child(napi_env env, napi_callback_info info) {
  ARGS(4);
  lf_device *dev;
  uint64_t parent, nodeid;
  void *name = NULL;
  size_t len = 0;
  if (!get_device(env, argv[0], &dev) || !get_nodeid(env, argv[1], &parent, "parent") || !get_bytes(env, argv[2], &name, &len, "name") ||
      !get_nodeid(env, argv[3], &nodeid, "nodeid"))
    return NULL;
  if (dev->closing) return number(env, -EBADF);
  return number(env, -lf_lookups_child(&dev->lookups, parent, name, len, nodeid));
}

// lookupForget(h, nodeid): JS forgot a node the loop knows a name of.
static napi_value js_lookup_forget(napi_env env, napi_callback_info info) {
  ARGS(2);
  lf_device *dev;
  uint64_t nodeid;
  if (!get_device(env, argv[0], &dev) || !get_nodeid(env, argv[1], &nodeid, "nodeid")) return NULL;
  if (!dev->closing) lf_lookups_forget(&dev->lookups, nodeid);
  return undefined(env);
}

// setChanging(h, on): JS has (or no longer has) a request in flight that may change the
// writable layer; meanwhile the request loop copies nothing up.
static napi_value js_set_changing(napi_env env, napi_callback_info info) {
  ARGS(2);
  lf_device *dev;
  bool on;
  if (!get_device(env, argv[0], &dev)) return NULL;
  CHECK(napi_get_value_bool(env, argv[1], &on));
  lf_copy_up_set_changing(&dev->copy_up, on);
  return undefined(env);
}

// dirAdopt(h, fh): JS took over the directory handle `fh` the request loop made (a READDIR
// of it reached JS), so its RELEASEDIR goes to JS.
static napi_value js_dir_adopt(napi_env env, napi_callback_info info) {
  ARGS(2);
  lf_device *dev;
  uint64_t fh;
  if (!get_device(env, argv[0], &dev) || !get_nodeid(env, argv[1], &fh, "fh")) return NULL;
  if (dev->closing) return number(env, -EBADF);
  return number(env, -lf_node_flags_set(&dev->js_dirs, fh, 1));
}

// openEpoch(h): every registration ends (a request that may change what names resolve to).
static napi_value js_open_epoch(napi_env env, napi_callback_info info) {
  ARGS(1);
  lf_device *dev;
  if (!get_device(env, argv[0], &dev)) return NULL;
  dev->opens.epoch++;
  return number(env, 0);
}

static napi_value js_native_open_fd(napi_env env, napi_callback_info info) {
  ARGS(2);
  lf_device *dev;
  uint64_t nodeid;
  if (!get_device(env, argv[0], &dev) || !get_nodeid(env, argv[1], &nodeid, "nodeid")) return NULL;
  lf_node_open *r = lf_node_opens_get(&dev->opens, nodeid);
  return number(env, r && r->nfds > 0 ? r->fds[0] : -1);
}

// answerOpen(h, unique, nodeid, flags): JS's OPEN of a lower file it has just registered,
// answered as the request loop answers the node's next ones (lf_js_answer_open).
static napi_value js_answer_open(napi_env env, napi_callback_info info) {
  ARGS(4);
  lf_device *dev;
  uint64_t unique, nodeid;
  int32_t flags;
  if (!get_device(env, argv[0], &dev) || !get_u64(env, argv[1], &unique, "unique") || !get_nodeid(env, argv[2], &nodeid, "nodeid") ||
      !get_i32(env, argv[3], &flags, "flags")) return NULL;
  napi_value answered;
  CHECK(napi_get_boolean(env, lf_js_answer_open(dev, unique, nodeid, (uint32_t) flags) != 0, &answered));
  return answered;
}

static napi_value queue_notify(napi_env env, lf_device *dev, lf_notify_job *job) {
  napi_deferred deferred;
  napi_value promise;
  if (!job) {
    napi_throw_error(env, "ENOMEM", "layerfs_engine: out of memory");
    return NULL;
  }
  if (napi_create_promise(env, &deferred, &promise) != napi_ok) {
    free(job);
    return NULL;
  }
  if (dev->closing || !dev->started) {
    free(job);
    napi_resolve_deferred(env, deferred, number(env, -EBADF));
    return promise;
  }
  job->user = deferred;
  job->ctx = dev;
  job->done = notify_done;
  lf_queue_push(&dev->notify, &job->job);
  return promise;
}

static napi_value js_notify_inval_entry(napi_env env, napi_callback_info info) {
  ARGS(3);
  lf_device *dev;
  uint64_t parent;
  void *name;
  size_t len;
  if (!get_device(env, argv[0], &dev) || !get_nodeid(env, argv[1], &parent, "parent") || !get_bytes(env, argv[2], &name, &len, "name")) return NULL;
  if (len == 0 || len > 1024 || memchr(name, 0, len) || memchr(name, '/', len)) {
    napi_throw_range_error(env, "EINVAL", "layerfs_engine: a name is 1..1024 bytes without NUL or '/'");
    return NULL;
  }
  return queue_notify(env, dev, lf_notify_inval_entry(dev->mount.fd, parent, name, (uint32_t) len));
}

static napi_value js_notify_inval_inode(napi_env env, napi_callback_info info) {
  ARGS(4);
  lf_device *dev;
  uint64_t nodeid;
  int64_t offset, length;
  if (!get_device(env, argv[0], &dev) || !get_nodeid(env, argv[1], &nodeid, "nodeid") || !get_i64(env, argv[2], &offset, "offset") ||
      !get_i64(env, argv[3], &length, "length")) return NULL;
  return queue_notify(env, dev, lf_notify_inval_inode(dev->mount.fd, nodeid, offset, length));
}

// Teardown, off the JS thread: detach (unless the kernel already ended it), stop the
// readers, finish queued replies and notifications, close the device (which ends the
// connection: anything still open on a lazily detached mount gets ENOTCONN, nothing
// hangs), and let a fusermount3 helper go.
static void teardown_execute(napi_env env, void *data) {
  (void) env;
  lf_device *dev = data;
  if (dev->detach_on_teardown && !dev->no_detach && dev->mountpoint[0] && !atomic_load(&dev->unmounted)) {
    int rc = lf_unmount_own(&dev->mount, dev->mountpoint, dev->teardown_msg, sizeof dev->teardown_msg);
    if (rc != 0 && rc != -EINVAL && rc != -ENOENT) dev->teardown_err = rc;
  }
  lf_readers_stop(dev);
  lf_queue_stop(&dev->io);
  lf_queue_stop(&dev->notify);
  close(dev->mount.fd);
  dev->mount.fd = -1;
  lf_mount_release_helper(&dev->mount);
}

static void teardown_complete(napi_env env, napi_status status, void *data) {
  lf_device *dev = data;
  if (dev->started) {
    napi_release_threadsafe_function(dev->to_js, napi_tsfn_release);
    napi_release_threadsafe_function(dev->settle, napi_tsfn_release);
  }
  if (dev->has_cleanup_hook) {
    napi_remove_env_cleanup_hook(env, cleanup_hook, dev);
    live_remove(dev);
  }
  // The device fd is closed (every backing id with it): C's own opens go now, and any
  // copy-up's open JS never took.
  lf_node_opens_free(&dev->opens);
  lf_copy_up_free(&dev->copy_up);
  if (dev->copied_up_cb) {
    napi_delete_reference(env, dev->copied_up_cb);
    dev->copied_up_cb = NULL;
  }
  lf_lookups_free(&dev->lookups);
  if (dev->lookup_index) napi_delete_reference(env, dev->lookup_index);
  if (dev->looked_up_cb) napi_delete_reference(env, dev->looked_up_cb);
  dev->lookup_index = dev->looked_up_cb = NULL;
  dev->torn_down = 1;
  if (dev->teardown_err) napi_reject_deferred(env, dev->unmount_done, errno_error(env, dev->teardown_err, dev->teardown_msg));
  else napi_resolve_deferred(env, dev->unmount_done, undefined(env));
  napi_delete_async_work(env, dev->teardown_work);
}

static napi_value js_teardown(napi_env env, napi_callback_info info) {
  ARGS(2);
  lf_device *dev;
  bool detach = false;
  if (!get_device(env, argv[0], &dev)) return NULL;
  napi_get_value_bool(env, argv[1], &detach);
  if (dev->closing) {
    napi_throw_error(env, "EINVAL", "layerfs_engine: teardown runs once per device");
    return NULL;
  }
  dev->closing = 1;
  lf_js_reader_stop(dev);  // a JS-thread reader stops here: libuv handles belong to this thread
  dev->detach_on_teardown = detach;
  napi_value promise, name;
  CHECK(napi_create_promise(env, &dev->unmount_done, &promise));
  napi_create_string_utf8(env, "layerfs-engine-teardown", NAPI_AUTO_LENGTH, &name);
  CHECK(napi_create_async_work(env, NULL, name, teardown_execute, teardown_complete, dev, &dev->teardown_work));
  CHECK(napi_queue_async_work(env, dev->teardown_work));
  return promise;
}

static napi_value js_fd(napi_env env, napi_callback_info info) {
  ARGS(1);
  lf_device *dev;
  if (!get_device(env, argv[0], &dev)) return NULL;
  return number(env, dev->mount.fd);
}

static napi_value js_unmount_path(napi_env env, napi_callback_info info) {
  ARGS(2);
  int ok = 1;
  size_t len;
  bool fusermount = false;
  napi_get_value_bool(env, argv[1], &fusermount);
  if (napi_get_value_string_utf8(env, argv[0], NULL, 0, &len) != napi_ok) ok = 0;
  char *path = ok ? malloc(len + 1) : NULL;
  if (!path || napi_get_value_string_utf8(env, argv[0], path, len + 1, &len) != napi_ok) {
    free(path);
    napi_throw_type_error(env, "EINVAL", "layerfs_engine: mountpoint must be a string");
    return NULL;
  }
  char err[256];
  int rc = lf_unmount(path, fusermount, err, sizeof err);
  free(path);
  return number(env, rc);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "mount", NULL, js_mount, NULL, NULL, NULL, napi_default, NULL },
    { "start", NULL, js_start, NULL, NULL, NULL, napi_default, NULL },
    { "reply", NULL, js_reply, NULL, NULL, NULL, napi_default, NULL },
    { "replyFromFd", NULL, js_reply_from_fd, NULL, NULL, NULL, napi_default, NULL },
    { "writeToFd", NULL, js_write_to_fd, NULL, NULL, NULL, napi_default, NULL },
    { "backingOpen", NULL, js_backing_open, NULL, NULL, NULL, napi_default, NULL },
    { "backingClose", NULL, js_backing_close, NULL, NULL, NULL, napi_default, NULL },
    { "setNoXattrs", NULL, js_set_no_xattrs, NULL, NULL, NULL, napi_default, NULL },
    { "nativeAnswers", NULL, js_native_answers, NULL, NULL, NULL, napi_default, NULL },
    { "backingShare", NULL, js_backing_share, NULL, NULL, NULL, napi_default, NULL },
    { "backingAdopt", NULL, js_backing_adopt, NULL, NULL, NULL, napi_default, NULL },
    { "backingRelease", NULL, js_backing_release, NULL, NULL, NULL, napi_default, NULL },
    { "openRegister", NULL, js_open_register, NULL, NULL, NULL, napi_default, NULL },
    { "openEpoch", NULL, js_open_epoch, NULL, NULL, NULL, napi_default, NULL },
    { "attrRegister", NULL, js_attr_register, NULL, NULL, NULL, napi_default, NULL },
    { "statRegister", NULL, js_stat_register, NULL, NULL, NULL, napi_default, NULL },
    { "copyUpConfigure", NULL, js_copy_up_configure, NULL, NULL, NULL, napi_default, NULL },
    { "setChanging", NULL, js_set_changing, NULL, NULL, NULL, napi_default, NULL },
    { "lookupConfigure", NULL, js_lookup_configure, NULL, NULL, NULL, napi_default, NULL },
    { "lookupMark", NULL, js_lookup_mark, NULL, NULL, NULL, napi_default, NULL },
    { "lookupChild", NULL, js_lookup_child, NULL, NULL, NULL, napi_default, NULL },
    { "lookupForget", NULL, js_lookup_forget, NULL, NULL, NULL, napi_default, NULL },
    { "dirAdopt", NULL, js_dir_adopt, NULL, NULL, NULL, napi_default, NULL },
    { "nativeOpenFd", NULL, js_native_open_fd, NULL, NULL, NULL, napi_default, NULL },
    { "answerOpen", NULL, js_answer_open, NULL, NULL, NULL, napi_default, NULL },
    { "notifyInvalEntry", NULL, js_notify_inval_entry, NULL, NULL, NULL, napi_default, NULL },
    { "notifyInvalInode", NULL, js_notify_inval_inode, NULL, NULL, NULL, napi_default, NULL },
    { "teardown", NULL, js_teardown, NULL, NULL, NULL, napi_default, NULL },
    { "fd", NULL, js_fd, NULL, NULL, NULL, napi_default, NULL },
    { "unmountPath", NULL, js_unmount_path, NULL, NULL, NULL, napi_default, NULL },
    { "socketDevice", NULL, js_socket_device, NULL, NULL, NULL, napi_default, NULL },
    { "fusermount", NULL, js_fusermount, NULL, NULL, NULL, napi_default, NULL },
    { "releaseFusermount", NULL, js_release_fusermount, NULL, NULL, NULL, napi_default, NULL },
    { "attach", NULL, js_attach, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_value version;
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  napi_create_uint32(env, LF_FUSE_KERNEL_MINOR_VERSION, &version);
  napi_set_named_property(env, exports, "protocolMinor", version);
  napi_create_uint32(env, LF_REQUEST_BUFFER, &version);
  napi_set_named_property(env, exports, "requestBufferSize", version);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
