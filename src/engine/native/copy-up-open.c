// See copy-up-open.h.
#include "copy-up-open.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "generated/engine-handles.h"
#include "passthrough.h"
#include "reply.h"

static char *dup_or_null(const char *s) {
  return s ? strdup(s) : NULL;
}

int lf_copy_up_configure(lf_copy_up_state *cs, const char *upper, const char *work, const char *origin_name, int umask,
                         int durable) {
  char *u = dup_or_null(upper), *w = dup_or_null(work), *o = dup_or_null(origin_name);
  if ((upper && !u) || (work && !w) || (origin_name && !o)) {
    free(u);
    free(w);
    free(o);
    return ENOMEM;
  }
  free(cs->upper);
  free(cs->work);
  free(cs->origin_name);
  cs->upper = u && w && o ? u : NULL;
  if (!cs->upper) free(u);
  cs->work = w;
  cs->origin_name = o;
  cs->umask = umask;
  cs->durable = durable != 0;
  cs->reflink = 1;
  return 0;
}

void lf_copy_up_free(lf_copy_up_state *cs) {
  free(cs->upper);
  free(cs->work);
  free(cs->origin_name);
  // Opens JS never took (an LF_RELEASED record's fd is closed already).
  for (size_t i = 0; i < cs->ndone; i++)
    if (cs->done[i].kind == LF_COPIED && cs->done[i].fd >= 0 && !lf_node_flags_has(&cs->adopted, LF_OPEN_NATIVE + (uint64_t) cs->done[i].fd))
      close(cs->done[i].fd);
  free(cs->done);
  lf_node_flags_free(&cs->adopted);
  if (cs->pending) {
    // Its build is done (teardown stops the queues first), its hand-back still queued: the
    // temp file goes now, before the process may end; whoever gets the job frees it.
    lf_copy_up_pending *p = cs->pending;
    if (p->tmp[0] && !p->res.err) unlink(p->tmp);
    p->tmp[0] = 0;
    p->orphan = 1;
  }
  memset(cs, 0, sizeof *cs);
}

// Room for one more record, made before a copy-up so that recording it cannot fail.
static int reserve(lf_copy_up_state *cs) {
  if (cs->ndone < cs->capdone) return 0;
  size_t cap = cs->capdone ? cs->capdone * 2 : 16;
  lf_copied_up *done = realloc(cs->done, cap * sizeof *done);
  if (!done) return ENOMEM;
  cs->done = done;
  cs->capdone = cap;
  return 0;
}

// "a/b" + "/c/d" into buf; 0, or -1 when it does not fit.
static int join2(char *buf, size_t size, const char *a, const char *b, size_t blen) {
  size_t alen = strlen(a);
  if (alen + blen + 1 > size) return -1;
  memcpy(buf, a, alen);
  memcpy(buf + alen, b, blen);
  buf[alen + blen] = 0;
  return 0;
}

// The copy of `r`'s file for the OPEN `in`/`oin`, ready to build into p (its paths and
// lf_copy_up_t); 0 when JS must copy it (see copy-up-open.h), else 1.
static int prepare(lf_copy_up_state *cs, const struct fuse_in_header *in, const lf_node_open *r, const struct fuse_open_in *oin,
                   lf_copy_up_pending *p) {
  if (!cs->upper || cs->js_changing || cs->pending || !r->path || r->cached || r->union_at < 0 || r->refs > 0 || r->nfds > 0 ||
      reserve(cs) != 0)
    return 0;
  const struct fuse_attr *a = &r->attr.attr;
  int flags = (int) oin->flags;
  // What the union would copy some other way, or must see first (a write clears set-id
  // bits; another name of the file would keep the lower one).
  if ((a->mode & S_IFMT) != S_IFREG || (a->mode & (S_ISUID | S_ISGID)) || a->nlink > 1) return 0;
  uint64_t size = (flags & O_TRUNC) ? 0 : r->size;
  if (size > LF_COPY_UP_SMALL_MAX || (size > 0 && a->blocks * 512 < size)) return 0;

  const char *upath = r->path + r->union_at;
  const char *slash = strrchr(upath, '/');
  if (join2(p->dest, sizeof p->dest, cs->upper, upath, strlen(upath)) ||
      join2(p->parent, sizeof p->parent, cs->upper, upath, (size_t) (slash - upath)))
    return 0;
  // The parent not on the writable layer yet: JS copies it up (and learns of it).
  struct stat pst;
  if (lstat(p->parent, &pst) != 0 || !S_ISDIR(pst.st_mode)) return 0;
  if (snprintf(p->tmp, sizeof p->tmp, "%s/#c%d.%" PRIu64, cs->work, (int) getpid(), ++cs->seq) >= (int) sizeof p->tmp) return 0;

  int origin_len = snprintf(p->origin, sizeof p->origin, "%" PRIu64, (uint64_t) a->ino);
  p->in = *in;
  p->oin = *oin;
  p->res = (lf_copy_up_result_t) { 0 };
  p->orphan = 0;
  p->changes = cs->changes;
  p->c = (lf_copy_up_t) {
    .src = r->path, .tmp = p->tmp, .dest = p->dest, .parent = p->parent,
    .uid = a->uid, .gid = a->gid, .perm = a->mode & 07777,
    .times = { { .tv_sec = (time_t) a->atime, .tv_nsec = a->atimensec }, { .tv_sec = (time_t) a->mtime, .tv_nsec = a->mtimensec } },
    .origin_name = cs->origin_name, .origin_value = p->origin, .origin_len = (size_t) origin_len,
    .size = (int64_t) size, .reflink = cs->reflink, .umask = cs->umask,
    // Before the rename, so that no crash leaves the name in place and its data not on disk.
    .flush = cs->durable && size > 0,
  };
  return 1;
}

// After the copy is in place (res: how its placing went): record it, open it and answer
// `in` with it. 1: answered; 0: the OPEN goes on to JS (which opens the copy, or makes its
// own when nothing was placed).
static int finish(lf_copy_up_state *cs, int devfd, const struct fuse_in_header *in, lf_node_open *r, uint32_t open_flags,
                  const char *dest, const lf_copy_up_result_t *res) {
  if (res->reflink_refused) cs->reflink = 0;
  if (res->err) {
    // Nothing of it is in place (or only the parent's times are left unrestored): JS tries
    // again its own way and reports what goes wrong.
    return 0;
  }
  cs->copied++;
  // In place: from here on JS must learn of it, whatever else happens (reserved before).
  lf_copied_up *done = &cs->done[cs->ndone++];
  *done = (lf_copied_up) { .node = in->nodeid, .fd = -1, .uid = in->uid, .kind = LF_COPIED };
  // The lower file's registration ends (as for a write OPEN in JS): the name is the copy's.
  free(r->path);
  r->path = NULL;
  int flags = (int) open_flags;
  int fd = open(dest, (flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_DIRECT)) | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    if (fd >= 0) close(fd);
    // JS opens the copy: the OPEN goes on to JS, after it learnt of the copy.
    return 0;
  }
  if (r->backing_id >= 0) {
    // The lower file's idle backing (refs == 0): the node's backing is the copy's now.
    lf_backing_close(devfd, r->backing_id);
    r->backing_id = -1;
  }
  struct fuse_open_out out = { .fh = LF_OPEN_NATIVE + (uint64_t) fd };
  int id = lf_backing_open(devfd, fd);
  if (id >= 0) {
    r->backing_id = id;
    r->bdev = (uint64_t) st.st_dev;
    r->bino = (uint64_t) st.st_ino;
    r->writable = 1;
    r->refs = 1;
    out.open_flags = FOPEN_PASSTHROUGH;
    out.backing_id = id;
    done->passthrough = 1;
  } else {
    // Reads and writes through JS's handle instead (direct I/O, as JS answers such opens).
    out.open_flags = FOPEN_DIRECT_IO;
  }
  done->fd = fd;
  // Its RELEASE is answered here when the node's record holds the fd (else JS's).
  int here = lf_node_opens_add_fd(r, fd) == 0;
  if (here && lf_node_flags_set(&cs->adopted, out.fh, 1) != 0) {
    lf_node_opens_remove_fd(r, fd);
    here = 0;
  }
  struct iovec part = { .iov_base = &out, .iov_len = sizeof out };
  if (lf_reply(devfd, in->unique, 0, &part, 1) != 0) {
    // Nobody took the open (interrupted): no RELEASE will come; JS adopts and releases it.
    done->unanswered = 1;
    if (here) {
      lf_node_opens_remove_fd(r, fd);
      lf_node_flags_set(&cs->adopted, out.fh, 0);
    }
  }
  return 1;
}

static void build_job(lf_job *job, void *scratch) {
  (void) scratch;
  lf_copy_up_pending *p = (lf_copy_up_pending *) job;
  lf_copy_up_small_build(&p->c, &p->res);
  p->built(p);
}

int lf_copy_up_open(lf_copy_up_state *cs, int devfd, const struct fuse_in_header *in, lf_node_open *r, const struct fuse_open_in *oin) {
  lf_copy_up_pending one;
  if (!prepare(cs, in, r, oin, &one)) return LF_COPY_UP_DECLINED;
  if (!one.c.flush) {
    lf_copy_up_result_t res = { 0 };
    lf_copy_up_small(&one.c, &res);
    return finish(cs, devfd, in, r, oin->flags, one.dest, &res) ? LF_COPY_UP_ANSWERED : LF_COPY_UP_DECLINED;
  }
  // The flush waits for the disk: built on a queue thread.
  lf_copy_up_pending *p = malloc(sizeof *p);
  char *src = strdup(r->path), *origin_name = one.c.origin_name ? strdup(one.c.origin_name) : NULL;
  if (!p || !src || (one.c.origin_name && !origin_name)) {
    free(p);
    free(src);
    free(origin_name);
    return LF_COPY_UP_DECLINED;
  }
  *p = one;
  p->src = src;
  p->origin_name = origin_name;
  // Its own strings: the record's path (and the configuration) may go before the build ends.
  p->c.src = p->src;
  p->c.origin_name = p->origin_name;
  p->c.tmp = p->tmp;
  p->c.dest = p->dest;
  p->c.parent = p->parent;
  p->c.origin_value = p->origin;
  p->job.run = build_job;
  cs->pending = p;
  return LF_COPY_UP_BUILDING;
}

int lf_copy_up_place_pending(lf_copy_up_state *cs, lf_node_opens *opens, int devfd) {
  lf_copy_up_pending *p = cs->pending;
  if (p->res.err) {
    if (p->res.reflink_refused) cs->reflink = 0;
    return 0;
  }
  // A change JS began meanwhile (an unlink of the name, a rename of a directory above, its
  // own copy-up of the file) may make the copy wrong where it would go; an open of the
  // lower file answered meanwhile holds the node's backing (JS retires such a node).
  lf_node_open *r = lf_node_opens_get(opens, p->in.nodeid);
  int holds = cs->changes == p->changes && !cs->js_changing && r && r->path && lf_node_opens_live(opens, r) &&
              strcmp(r->path, p->src) == 0 && r->refs == 0 && r->nfds == 0 && reserve(cs) == 0;
  if (!holds) return 0;
  lf_copy_up_small_place(&p->c, &p->res);
  // Placed (or failed and removed): the temp name is not ours to remove any more.
  p->tmp[0] = 0;
  return finish(cs, devfd, &p->in, r, p->oin.flags, p->dest, &p->res);
}

void lf_copy_up_set_changing(lf_copy_up_state *cs, int on) {
  if (on && !cs->js_changing) cs->changes++;
  cs->js_changing = on != 0;
}

void lf_copy_up_pending_free(lf_copy_up_pending *p) {
  if (!p) return;
  // Built but never placed (lf_copy_up_small_build removes its own failures).
  if (p->tmp[0] && !p->res.err) unlink(p->tmp);
  free(p->src);
  free(p->origin_name);
  free(p);
}

int lf_copy_up_release(lf_copy_up_state *cs, lf_node_opens *opens, int devfd, const struct fuse_in_header *in, lf_node_open *r,
                       uint64_t fh) {
  if (!lf_node_flags_has(&cs->adopted, fh)) return 0;
  int fd = (int) (fh - LF_OPEN_NATIVE);
  lf_node_flags_set(&cs->adopted, fh, 0);
  if (!r || !lf_node_opens_remove_fd(r, fd)) return 0;
  if (reserve(cs) != 0) {
    // No room to tell JS: JS releases it as any handle of its own (fd, backing reference).
    return 0;
  }
  close(fd);
  lf_node_opens_unref(opens, r, devfd);
  cs->done[cs->ndone++] = (lf_copied_up) { .node = in->nodeid, .fd = fd, .kind = LF_RELEASED };
  lf_reply(devfd, in->unique, 0, NULL, 0);
  return 1;
}
