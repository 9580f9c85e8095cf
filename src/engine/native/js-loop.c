// See js-loop.h. One wake-up reads up to BATCH requests until the device says EAGAIN, so
// a burst costs one epoll round, and each request is delivered through napi_make_callback
// (promise jobs the handler queues run right after it, as for any libuv callback).
#include "js-loop.h"

#include "fd-reply.h"
#include "fuse-kernel.h"
#include "generated/engine-handles.h"
#include "passthrough.h"
#include "reply.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

// Requests read per wake-up before yielding to the rest of the event loop.
#define BATCH 64

typedef struct lf_js_reader {
  uv_poll_t poll;
  lf_device *dev;
  napi_env env;
  napi_ref cb;
  napi_async_context actx;
  char *buf;
  int stopped;
} lf_js_reader;

static void closed(uv_handle_t *h) {
  lf_js_reader *r = h->data;
  free(r->buf);
  free(r);
}

static void free_given(napi_env env, void *data, void *hint) {
  (void) env;
  (void) hint;
  free(data);
}

static void call(lf_js_reader *r, napi_value arg) {
  napi_value cb, recv;
  napi_get_reference_value(r->env, r->cb, &cb);
  napi_get_global(r->env, &recv);
  if (napi_make_callback(r->env, r->actx, recv, cb, 1, &arg, NULL) == napi_pending_exception) {
    napi_value exc;
    napi_get_and_clear_last_exception(r->env, &exc);
    fprintf(stderr, "layerfs engine: the request handler threw\n");
  }
}

// GETXATTR / LISTXATTR of a node JS marked as having no xattr (node-flags.h): answered
// here, as the dispatcher would (ENODATA; an empty list, or its size 0), without the cost
// of reaching JS; OPEN / READ / RELEASE / GETATTR of registered lower files and OPENDIR /
// RELEASEDIR of registered directories (below), GETATTR of registered writable-layer
// directories (an lstat, node-opens.h). Returns whether it answered (or, an OPEN whose
// copy-up is being built, LF_COPY_UP_BUILDING: taken, answered later). On this
// thread only, so the sets are exact: JS changes them before it answers anything that
// could change what they say.
static int open_natively(lf_device *dev, const struct fuse_in_header *in, const char *body, size_t n);
static int release_natively(lf_device *dev, const struct fuse_in_header *in, const char *body, size_t n);
static int read_natively(lf_device *dev, const struct fuse_in_header *in, const char *body, size_t n);
static int opendir_natively(lf_device *dev, const struct fuse_in_header *in);
static int releasedir_natively(lf_device *dev, const struct fuse_in_header *in, const char *body, size_t n);

static int answered_natively(lf_device *dev, const char *frame, size_t n) {
  struct fuse_in_header in;
  if (n < sizeof in) return 0;
  memcpy(&in, frame, sizeof in);
  // Not while a change of JS's is in flight: a name may be between two states.
  if (in.opcode == FUSE_LOOKUP)
    return !dev->copy_up.js_changing && lf_lookup_answer(&dev->lookups, &dev->opens, &dev->no_xattrs, dev->mount.fd, &in, frame + sizeof in, n - sizeof in);
  if (n < sizeof in + sizeof(struct fuse_getxattr_in)) return 0;
  if (in.opcode == FUSE_OPEN) return open_natively(dev, &in, frame + sizeof in, n - sizeof in);
  if (in.opcode == FUSE_READ) return read_natively(dev, &in, frame + sizeof in, n - sizeof in);
  if (in.opcode == FUSE_GETATTR) {
    lf_node_open *r = lf_node_opens_get(&dev->opens, in.nodeid);
    if (!r || !lf_node_opens_live(&dev->opens, r)) return 0;
    struct fuse_attr_out live;
    const struct fuse_attr_out *attr = &r->attr;
    if (r->stat_path && !r->has_attr) {
      // A writable-layer directory: what it is now (a create inside changed its times).
      if (lf_node_opens_stat(r, &live) != 0) return 0;
      attr = &live;
    } else if (!r->path && !r->has_attr) {
      return 0;
    }
    struct iovec part = { .iov_base = (void *) attr, .iov_len = sizeof *attr };
    lf_reply(dev->mount.fd, in.unique, 0, &part, 1);
    return 1;
  }
  if (in.opcode == FUSE_RELEASE) return release_natively(dev, &in, frame + sizeof in, n - sizeof in);
  if (in.opcode == FUSE_OPENDIR) return opendir_natively(dev, &in);
  if (in.opcode == FUSE_RELEASEDIR) return releasedir_natively(dev, &in, frame + sizeof in, n - sizeof in);
  if (in.opcode != FUSE_GETXATTR && in.opcode != FUSE_LISTXATTR) return 0;
  if (!lf_node_flags_has(&dev->no_xattrs, in.nodeid)) return 0;
  if (in.opcode == FUSE_GETXATTR) {
    lf_reply(dev->mount.fd, in.unique, -ENODATA, NULL, 0);
    dev->native_answers[0]++;
    return 1;
  }
  dev->native_answers[1]++;
  struct fuse_getxattr_in gin;
  memcpy(&gin, frame + sizeof in, sizeof gin);
  struct fuse_getxattr_out out = { .size = 0 };
  struct iovec part = { .iov_base = &out, .iov_len = gin.size == 0 ? sizeof out : 0 };
  lf_reply(dev->mount.fd, in.unique, 0, &part, 1);
  return 1;
}

// OPEN of a node JS registered as a lower-layer regular file (node-opens.h), read-only:
// opened here as the union would open it (the kernel's flags without O_DIRECT, which is the
// kernel's business, plus O_NOFOLLOW), checked against the index as the union checks it
// (a regular file of the indexed size: else JS answers and reports the damage), and
// answered by passthrough on the node's one backing — or, for a node registered `cached`
// (no passthrough on this mount), with the page cache kept, as JS answers it there. Anything
// unusual goes to JS.
static int open_natively(lf_device *dev, const struct fuse_in_header *in, const char *body, size_t n) {
  if (n < sizeof(struct fuse_open_in)) return 0;
  lf_node_open *r = lf_node_opens_get(&dev->opens, in->nodeid);
  if (!r || !r->path || !lf_node_opens_live(&dev->opens, r)) return 0;
  struct fuse_open_in oin;
  memcpy(&oin, body, sizeof oin);
  int flags = (int) oin.flags;
  // One that may write: copied up here if the union said C may (copy-up-open.h).
  if ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | O_CREAT)))
    return lf_copy_up_open(&dev->copy_up, dev->mount.fd, in, r, &oin);
  int fd = open(r->path, (flags & ~(O_DIRECT | O_CREAT | O_EXCL | O_NOCTTY)) | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  // A backing id made for another file than this open's must not serve it.
  int shared = !r->cached && r->backing_id >= 0;
  if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t) st.st_size != r->size ||
      (shared && (r->bdev != (uint64_t) st.st_dev || r->bino != (uint64_t) st.st_ino)) || lf_node_opens_add_fd(r, fd) != 0) {
    if (fd >= 0) close(fd);
    // Not what the index promised (damage, for JS to report), or no memory: JS answers
    // this node from now on, GETATTR included.
    lf_node_opens_register(&dev->opens, in->nodeid, NULL, 0, 0, NULL, 0, -1);
    return 0;
  }
  struct fuse_open_out out = { .fh = LF_OPEN_NATIVE + (uint64_t) fd };
  if (r->cached) {
    out.open_flags = FOPEN_KEEP_CACHE;
  } else {
    if (!shared) {
      int id = lf_backing_open(dev->mount.fd, fd);
      if (id < 0) {
        lf_node_opens_remove_fd(r, fd);
        close(fd);
        // A file the kernel will not pass through (a layer on a filesystem it cannot stack
        // on): JS answers its opens (direct I/O) without this attempt before each.
        lf_node_opens_register(&dev->opens, in->nodeid, NULL, 0, 0, NULL, 0, -1);
        return 0;
      }
      r->backing_id = id;
      r->bdev = (uint64_t) st.st_dev;
      r->bino = (uint64_t) st.st_ino;
      r->writable = 0;
    }
    r->refs++;
    out.open_flags = FOPEN_PASSTHROUGH;
    out.backing_id = r->backing_id;
  }
  struct iovec part = { .iov_base = &out, .iov_len = sizeof out };
  if (lf_reply(dev->mount.fd, in->unique, 0, &part, 1) != 0) {
    // Nobody took the open (interrupted): no RELEASE will come for it.
    lf_node_opens_remove_fd(r, fd);
    close(fd);
    lf_node_opens_unref(&dev->opens, r, dev->mount.fd);
  }
  return 1;
}

int lf_js_answer_open(lf_device *dev, uint64_t unique, uint64_t nodeid, uint32_t flags) {
  // JS hands over read-only opens only: a copy-up is the loop's own decision.
  if (!dev->js_reader || dev->closing || (flags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | O_CREAT))) return 0;
  struct fuse_in_header in = { .opcode = FUSE_OPEN, .unique = unique, .nodeid = nodeid };
  struct fuse_open_in oin = { .flags = flags };
  return open_natively(dev, &in, (const char *) &oin, sizeof oin);
}

// The fd behind a handle open_natively made, or -1 (a handle of JS's, or a directory's).
static int native_open_fd(uint64_t fh) {
  return fh >= LF_OPEN_NATIVE && fh < 2 * LF_OPEN_NATIVE ? (int) (fh - LF_OPEN_NATIVE) : -1;
}

// READ of an open answered above without passthrough: from its fd on an I/O thread, as JS
// answers the reads of its own opens (replyFromFd). RELEASE comes only after the kernel
// has every READ's answer, so the fd outlives the job.
static int read_natively(lf_device *dev, const struct fuse_in_header *in, const char *body, size_t n) {
  if (n < sizeof(struct fuse_read_in)) return 0;
  struct fuse_read_in rin;
  memcpy(&rin, body, sizeof rin);
  int fd = native_open_fd(rin.fh);
  lf_node_open *r = lf_node_opens_get(&dev->opens, in->nodeid);
  // Only an fd this node's record holds is read: never one C does not own.
  if (fd < 0 || !r || !lf_node_opens_has_fd(r, fd)) return 0;
  lf_job *job = lf_fd_reply_job(dev->mount.fd, in->unique, fd, rin.offset, rin.size < LF_MAX_READ ? rin.size : LF_MAX_READ);
  if (!job) {
    lf_reply(dev->mount.fd, in->unique, -ENOMEM, NULL, 0);
    return 1;
  }
  lf_queue_push(&dev->io, job);
  return 1;
}

// RELEASE of an open answered above: close its fd and drop its backing reference.
static int release_natively(lf_device *dev, const struct fuse_in_header *in, const char *body, size_t n) {
  if (n < sizeof(struct fuse_release_in)) return 0;
  struct fuse_release_in rin;
  memcpy(&rin, body, sizeof rin);
  int fd = native_open_fd(rin.fh);
  if (fd < 0) return 0;
  lf_node_open *r = lf_node_opens_get(&dev->opens, in->nodeid);
  // The open of a copy-up made here, which JS adopted: closed here, JS told.
  if (lf_copy_up_release(&dev->copy_up, &dev->opens, dev->mount.fd, in, r, rin.fh)) return 1;
  // Only an fd this node's record holds is closed here: never one C does not own. Any
  // other is JS's to release.
  if (!r || !lf_node_opens_remove_fd(r, fd)) return 0;
  close(fd);
  lf_node_opens_unref(&dev->opens, r, dev->mount.fd);
  lf_reply(dev->mount.fd, in->unique, 0, NULL, 0);
  return 1;
}

// OPENDIR of a directory JS registered (node-opens.h): a new handle and the open flags JS
// gives every directory (the listing kept in the kernel's page cache, which drops it itself
// at any change through the mount). JS's OPENDIR only notes the directory's name for its
// first READDIR, which takes the listing by the name the node has then; a READDIR of a
// handle made here reaches JS, which adopts the handle (dirAdopt) and does the same.
static int opendir_natively(lf_device *dev, const struct fuse_in_header *in) {
  lf_node_open *r = lf_node_opens_get(&dev->opens, in->nodeid);
  if (!r || !r->dir || !lf_node_opens_live(&dev->opens, r)) return 0;
  uint64_t fh = LF_DIR_NATIVE + (++dev->dir_seq & (LF_DIR_NATIVE - 1));
  struct fuse_open_out out = { .fh = fh, .open_flags = FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE };
  struct iovec part = { .iov_base = &out, .iov_len = sizeof out };
  lf_reply(dev->mount.fd, in->unique, 0, &part, 1);
  return 1;
}

// RELEASEDIR of a handle made above that JS never adopted: nothing to free.
static int releasedir_natively(lf_device *dev, const struct fuse_in_header *in, const char *body, size_t n) {
  if (n < sizeof(struct fuse_release_in)) return 0;
  struct fuse_release_in rin;
  memcpy(&rin, body, sizeof rin);
  if (rin.fh < LF_DIR_NATIVE || rin.fh >= 2 * LF_DIR_NATIVE) return 0;
  if (lf_node_flags_has(&dev->js_dirs, rin.fh)) {
    // JS's now: it frees its listing.
    lf_node_flags_set(&dev->js_dirs, rin.fh, 0);
    return 0;
  }
  lf_reply(dev->mount.fd, in->unique, 0, NULL, 0);
  return 1;
}

// Tells JS of the nodes LOOKUPs made above (lookup.h), in one batch.
static void report_looked_up(lf_js_reader *r) {
  lf_device *dev = r->dev;
  if (dev->lookups.nrec == 0) return;
  napi_value cb, recv, buf;
  if (!dev->looked_up_cb || napi_get_reference_value(r->env, dev->looked_up_cb, &cb) != napi_ok || !cb) return;
  size_t size = 0;
  char *rec = lf_lookups_take(&dev->lookups, &size);
  if (napi_create_external_buffer(r->env, size, rec, free_given, NULL, &buf) != napi_ok) {
    free(rec);
    fprintf(stderr, "layerfs engine: LOOKUP records lost (no memory)\n");
    return;
  }
  napi_get_global(r->env, &recv);
  if (napi_make_callback(r->env, r->actx, recv, cb, 1, &buf, NULL) == napi_pending_exception) {
    napi_value exc;
    napi_get_and_clear_last_exception(r->env, &exc);
    fprintf(stderr, "layerfs engine: the LOOKUP record handler threw\n");
  }
}

// Tells JS of the copy-ups made above (copy-up-open.h), before it runs anything else —
// after the nodes it may name.
static void report_copied_up(lf_js_reader *r) {
  report_looked_up(r);
  lf_copy_up_state *cs = &r->dev->copy_up;
  if (cs->ndone == 0) return;
  napi_value cb, recv, args[5];
  // cb(kind, node, fd, uid, flags): flags 1 passthrough, 2 unanswered (copy-up-open.h).
  if (!r->dev->copied_up_cb || napi_get_reference_value(r->env, r->dev->copied_up_cb, &cb) != napi_ok || !cb) return;
  napi_get_global(r->env, &recv);
  // Taken first: a callback may not see its own records again.
  size_t n = cs->ndone;
  lf_copied_up *done = malloc(n * sizeof *done);
  if (!done) return; // stays queued: the next request or wake-up reports it
  memcpy(done, cs->done, n * sizeof *done);
  cs->ndone = 0;
  for (size_t i = 0; i < n; i++) {
    napi_create_uint32(r->env, done[i].kind, &args[0]);
    napi_create_double(r->env, (double) done[i].node, &args[1]);
    napi_create_int32(r->env, done[i].fd, &args[2]);
    napi_create_uint32(r->env, done[i].uid, &args[3]);
    napi_create_uint32(r->env, (uint32_t) done[i].passthrough | (uint32_t) done[i].unanswered << 1, &args[4]);
    if (napi_make_callback(r->env, r->actx, recv, cb, 5, args, NULL) == napi_pending_exception) {
      napi_value exc;
      napi_get_and_clear_last_exception(r->env, &exc);
      fprintf(stderr, "layerfs engine: the copy-up handler threw\n");
    }
  }
  free(done);
}

// After a pending copy-up's build: placed and answered, or its OPEN handed to JS — after JS
// learnt of any copy made (report_copied_up).
static void place_pending(lf_js_reader *r) {
  lf_device *dev = r->dev;
  lf_copy_up_pending *p = dev->copy_up.pending;
  napi_handle_scope scope;
  napi_open_handle_scope(r->env, &scope);
  int answered = lf_copy_up_place_pending(&dev->copy_up, &dev->opens, dev->mount.fd);
  dev->copy_up.pending = NULL;
  report_copied_up(r);
  if (!answered) {
    // The OPEN as the kernel sent it: its header and fuse_open_in.
    char frame[sizeof p->in + sizeof p->oin];
    struct fuse_in_header h = p->in;
    h.len = sizeof frame;
    memcpy(frame, &h, sizeof h);
    memcpy(frame + sizeof h, &p->oin, sizeof p->oin);
    napi_value buf;
    if (napi_create_buffer_copy(r->env, sizeof frame, frame, NULL, &buf) == napi_ok) call(r, buf);
    else lf_reply_enomem(dev->mount.fd, frame, sizeof frame);
  }
  lf_copy_up_pending_free(p);
  napi_close_handle_scope(r->env, scope);
}

// On a queue thread, the build done: back to the JS thread through the device's settle
// function, with the item made before the push. Its release waits for the queue's threads
// (teardown), so the call cannot find it closed.
static void hand_back(lf_copy_up_pending *p) {
  lf_device *dev = p->ctx;
  if (napi_call_threadsafe_function(dev->settle, p->carrier, napi_tsfn_blocking) != napi_ok)
    fprintf(stderr, "layerfs engine: a copy-up could not be handed back; its OPEN stays unanswered\n");
}

// The copy-up lf_copy_up_open left pending: built on a queue thread (the flush waits for
// the disk) while the loop goes on.
static void build_pending(lf_js_reader *r) {
  lf_device *dev = r->dev;
  lf_copy_up_pending *p = dev->copy_up.pending;
  lf_settle_item *item = malloc(sizeof *item);
  if (!item) {
    // No memory to hand it back: built here, the JS thread waiting for the disk this once.
    lf_copy_up_small_build(&p->c, &p->res);
    place_pending(r);
    return;
  }
  *item = (lf_settle_item) { .kind = LF_SETTLE_COPY_UP, .job = p };
  p->carrier = item;
  p->ctx = dev;
  p->built = hand_back;
  lf_queue_push(&dev->io, &p->job);
}

void lf_js_copy_up_built(napi_env env, lf_device *dev, lf_copy_up_pending *p) {
  // An orphan's device may be gone: nothing of it is touched.
  if (p->orphan || !env || dev->closing || !dev->js_reader || dev->copy_up.pending != p) {
    if (!p->orphan && dev->copy_up.pending == p) dev->copy_up.pending = NULL;
    lf_copy_up_pending_free(p);
    return;
  }
  place_pending(dev->js_reader);
}

static void on_readable(uv_poll_t *h, int status, int events) {
  (void) events;
  lf_js_reader *r = h->data;
  lf_device *dev = r->dev;
  napi_handle_scope scope;
  napi_open_handle_scope(r->env, &scope);
  int ended = status < 0;
  for (int i = 0; i < BATCH && !ended && !dev->closing && !r->stopped; i++) {
    ssize_t n = read(dev->mount.fd, r->buf, LF_REQUEST_BUFFER);
    if (n < 0) {
      if (errno == EAGAIN) break;
      if (errno == EINTR || errno == ENOENT) continue;
      if (errno != ENODEV && errno != ECONNABORTED) fprintf(stderr, "layerfs engine: reading /dev/fuse: %s\n", strerror(errno));
      if (errno == ENODEV) atomic_store(&dev->unmounted, 1);
      ended = 1;
      break;
    }
    if (n == 0) {
      ended = 1;
      break;
    }
    int answered = answered_natively(dev, r->buf, (size_t) n);
    // LF_COPY_UP_BUILDING: taken, answered once its copy is built (copy-up-open.h).
    if (answered == LF_COPY_UP_BUILDING) build_pending(r);
    if (answered) continue;
    report_copied_up(r);
    napi_value buf;
    char *fresh = n > LF_SMALL_REQUEST ? malloc(LF_REQUEST_BUFFER) : NULL;
    if (fresh) {
      // WRITE data: hand the read buffer itself to JS (shrunk to fit) and take the new one.
      char *given = realloc(r->buf, (size_t) n);
      if (!given) given = r->buf;
      r->buf = fresh;
      if (napi_create_external_buffer(r->env, (size_t) n, given, free_given, NULL, &buf) != napi_ok) {
        lf_reply_enomem(dev->mount.fd, given, (size_t) n);
        free(given);
        continue;
      }
    } else if (napi_create_buffer_copy(r->env, (size_t) n, r->buf, NULL, &buf) != napi_ok) {
      lf_reply_enomem(dev->mount.fd, r->buf, (size_t) n);
      continue;
    }
    call(r, buf);
  }
  if (!r->stopped) report_copied_up(r);
  if (ended && !r->stopped) {
    uv_poll_stop(&r->poll);
    napi_value null;
    napi_get_null(r->env, &null);
    call(r, null);
  }
  napi_close_handle_scope(r->env, scope);
}

int lf_js_reader_start(lf_device *dev, napi_env env, napi_value cb) {
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return EINVAL;
  lf_js_reader *r = calloc(1, sizeof *r);
  if (!r || !(r->buf = malloc(LF_REQUEST_BUFFER))) {
    free(r);
    return ENOMEM;
  }
  r->dev = dev;
  r->env = env;
  napi_value name;
  napi_create_string_utf8(env, "layerfs-engine-request", NAPI_AUTO_LENGTH, &name);
  if (napi_create_reference(env, cb, 1, &r->cb) != napi_ok || napi_async_init(env, NULL, name, &r->actx) != napi_ok) {
    free(r->buf);
    free(r);
    return EINVAL;
  }
  int err = uv_poll_init(loop, &r->poll, dev->mount.fd);
  if (!err) {
    r->poll.data = r;
    err = uv_poll_start(&r->poll, UV_READABLE, on_readable);
    if (err) uv_close((uv_handle_t *) &r->poll, closed);
  } else {
    free(r->buf);
    free(r);
  }
  if (err) return -err;
  dev->js_reader = r;
  return 0;
}

void lf_js_reader_stop(lf_device *dev) {
  lf_js_reader *r = dev->js_reader;
  if (!r) return;
  dev->js_reader = NULL;
  r->stopped = 1;
  napi_delete_reference(r->env, r->cb);
  napi_async_destroy(r->env, r->actx);
  uv_poll_stop(&r->poll);
  uv_close((uv_handle_t *) &r->poll, closed);
}
