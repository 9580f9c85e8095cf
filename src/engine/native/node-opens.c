// See node-opens.h.
#include "node-opens.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "passthrough.h"
#include "resolve.h"

#include "node-id-hash.h"

static int grow(lf_node_opens *t) {
  size_t cap = t->cap ? t->cap * 2 : 1024;
  lf_node_open **slots = calloc(cap, sizeof *slots);
  if (!slots) return ENOMEM;
  for (size_t i = 0; i < t->cap; i++) {
    if (!t->slots[i]) continue;
    size_t j = lf_node_slot(t->slots[i]->node, cap);
    while (slots[j]) j = (j + 1) & (cap - 1);
    slots[j] = t->slots[i];
  }
  free(t->slots);
  t->slots = slots;
  t->cap = cap;
  return 0;
}

lf_node_open *lf_node_opens_get(lf_node_opens *t, uint64_t node) {
  if (t->cap == 0 || node == 0) return NULL;
  for (size_t i = lf_node_slot(node, t->cap);; i = (i + 1) & (t->cap - 1)) {
    if (!t->slots[i]) return NULL;
    if (t->slots[i]->node == node) return t->slots[i];
  }
}

lf_node_open *lf_node_opens_make(lf_node_opens *t, uint64_t node) {
  lf_node_open *r = lf_node_opens_get(t, node);
  if (r || node == 0) return r;
  // At most half full: probes stay short and an empty slot always ends them.
  if ((t->count + 1) * 2 > t->cap && grow(t) != 0) return NULL;
  if (!(r = calloc(1, sizeof *r))) return NULL;
  r->node = node;
  r->backing_id = -1;
  size_t i = lf_node_slot(node, t->cap);
  while (t->slots[i]) i = (i + 1) & (t->cap - 1);
  t->slots[i] = r;
  t->count++;
  return r;
}

void lf_node_opens_tidy(lf_node_opens *t, lf_node_open *r) {
  if (r->path || r->stat_path || r->marked || r->dir || r->has_attr || r->backing_id >= 0 || r->refs > 0 || r->nfds > 0) return;
  size_t i = lf_node_slot(r->node, t->cap);
  while (t->slots[i] != r) i = (i + 1) & (t->cap - 1);
  // Backward-shift deletion (as node-flags.c): no tombstones.
  size_t hole = i;
  for (size_t j = (i + 1) & (t->cap - 1); t->slots[j]; j = (j + 1) & (t->cap - 1)) {
    size_t home = lf_node_slot(t->slots[j]->node, t->cap);
    int stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (stays) continue;
    t->slots[hole] = t->slots[j];
    hole = j;
  }
  t->slots[hole] = NULL;
  t->count--;
  free(r->fds);
  free(r);
}

static void unmark(lf_node_open *r) {
  free(r->ix_path);
  free(r->up_path);
  r->ix_path = r->up_path = NULL;
  r->marked = 0;
}

// Whatever `r` was registered as in an ended epoch must not come back to life with a
// registration of another kind in this one.
static void forget_stale(const lf_node_opens *t, lf_node_open *r) {
  if (r->epoch == t->epoch) return;
  free(r->path);
  free(r->stat_path);
  r->path = r->stat_path = NULL;
  unmark(r);
  r->dir = r->has_attr = 0;
}

// The record of `node`, made if absent and cleared of an ended epoch's registrations (*r),
// and a NUL-terminated copy of `path` for it; NULL: no memory (nothing changed).
static char *current_with_path(lf_node_opens *t, uint64_t node, const char *path, size_t len, lf_node_open **r) {
  char *copy = malloc(len + 1);
  if (!copy) return NULL;
  memcpy(copy, path, len);
  copy[len] = 0;
  if (!(*r = lf_node_opens_make(t, node))) {
    free(copy);
    return NULL;
  }
  forget_stale(t, *r);
  return copy;
}

int lf_node_opens_register(lf_node_opens *t, uint64_t node, const char *path, size_t len, uint64_t size,
                           const struct fuse_attr_out *attr, int cached, int32_t union_at) {
  if (!path) {
    lf_node_open *r = lf_node_opens_get(t, node);
    if (!r) return 0;
    free(r->path);
    free(r->stat_path);
    r->path = r->stat_path = NULL;
    unmark(r);
    r->dir = r->has_attr = 0;
    lf_node_opens_tidy(t, r);
    return 0;
  }
  lf_node_open *r;
  char *copy = current_with_path(t, node, path, len, &r);
  if (!copy) return ENOMEM;
  free(r->path);
  r->path = copy;
  r->size = size;
  r->attr = *attr;
  r->cached = cached != 0;
  r->union_at = union_at >= 0 && (size_t) union_at < len && path[union_at] == '/' ? union_at : -1;
  r->epoch = t->epoch;
  return 0;
}

int lf_node_opens_register_attr(lf_node_opens *t, uint64_t node, const struct fuse_attr_out *attr, int dir) {
  lf_node_open *r = lf_node_opens_make(t, node);
  if (!r) return ENOMEM;
  forget_stale(t, r);
  r->dir = dir != 0;
  r->has_attr = attr != NULL;
  if (attr) r->attr = *attr;
  r->epoch = t->epoch;
  return 0;
}

int lf_node_opens_register_stat(lf_node_opens *t, uint64_t node, const char *path, size_t len, uint64_t ino, int nlink_one,
                                uint64_t valid) {
  if (len == 0 || path[0] != '/' || memchr(path, 0, len)) return EINVAL;
  lf_node_open *r;
  char *copy = current_with_path(t, node, path, len, &r);
  if (!copy) return ENOMEM;
  free(r->stat_path);
  r->stat_path = copy;
  r->stat_ino = ino;
  r->nlink_one = nlink_one != 0;
  r->stat_valid = valid;
  r->epoch = t->epoch;
  return 0;
}

static char *copy_of(const char *s, size_t len) {
  char *c = malloc(len + 1);
  if (c) {
    memcpy(c, s, len);
    c[len] = 0;
  }
  return c;
}

int lf_node_opens_mark(lf_node_opens *t, uint64_t node, const char *ix, size_t ix_len, const char *up, size_t up_len, int same_path) {
  char *ixc = ix ? copy_of(ix, ix_len) : NULL, *upc = up ? copy_of(up, up_len) : NULL;
  lf_node_open *r = (!ix || ixc) && (!up || upc) ? lf_node_opens_make(t, node) : NULL;
  if (!r) {
    free(ixc);
    free(upc);
    return ENOMEM;
  }
  forget_stale(t, r);
  unmark(r);
  r->ix_path = ixc;
  r->ix_len = (uint32_t) ix_len;
  r->up_path = upc;
  r->up_len = (uint32_t) up_len;
  r->marked = 1;
  r->same_path = same_path != 0;
  r->epoch = t->epoch;
  return 0;
}

void lf_node_opens_unmark(lf_node_opens *t, uint64_t node) {
  lf_node_open *r = lf_node_opens_get(t, node);
  if (!r || !r->marked) return;
  unmark(r);
  lf_node_opens_tidy(t, r);
}

int lf_node_opens_stat(const lf_node_open *r, struct fuse_attr_out *out) {
  struct stat st;
  if (!r->stat_path || lstat(r->stat_path, &st) != 0 || !S_ISDIR(st.st_mode)) return -1;
  memset(out, 0, sizeof *out);
  out->attr_valid = r->stat_valid;
  struct fuse_attr *a = &out->attr;
  // As the union's upperStat (src/union/union-view.ts) and wire.ts's writeAttr shape it.
  a->ino = r->stat_ino ? r->stat_ino : lf_ino_upper((uint64_t) st.st_ino);
  a->size = (uint64_t) st.st_size;
  a->blocks = (uint64_t) st.st_blocks;
  a->atime = (uint64_t) st.st_atim.tv_sec;
  a->mtime = (uint64_t) st.st_mtim.tv_sec;
  a->ctime = (uint64_t) st.st_ctim.tv_sec;
  a->atimensec = (uint32_t) st.st_atim.tv_nsec;
  a->mtimensec = (uint32_t) st.st_mtim.tv_nsec;
  a->ctimensec = (uint32_t) st.st_ctim.tv_nsec;
  a->mode = st.st_mode;
  a->nlink = r->nlink_one ? 1 : (uint32_t) st.st_nlink;
  a->uid = st.st_uid;
  a->gid = st.st_gid;
  a->rdev = (uint32_t) st.st_rdev;
  a->blksize = (uint32_t) st.st_blksize;
  return 0;
}

int lf_node_opens_live(const lf_node_opens *t, const lf_node_open *r) {
  return (r->path != NULL || r->stat_path != NULL || r->marked || r->dir || r->has_attr) && r->epoch == t->epoch;
}

int lf_node_opens_add_fd(lf_node_open *r, int fd) {
  if (r->nfds == r->capfds) {
    int cap = r->capfds ? r->capfds * 2 : 2;
    int *fds = realloc(r->fds, (size_t) cap * sizeof *fds);
    if (!fds) return ENOMEM;
    r->fds = fds;
    r->capfds = cap;
  }
  r->fds[r->nfds++] = fd;
  return 0;
}

int lf_node_opens_has_fd(const lf_node_open *r, int fd) {
  for (int i = 0; i < r->nfds; i++)
    if (r->fds[i] == fd) return 1;
  return 0;
}

int lf_node_opens_remove_fd(lf_node_open *r, int fd) {
  for (int i = 0; i < r->nfds; i++) {
    if (r->fds[i] != fd) continue;
    r->fds[i] = r->fds[--r->nfds];
    return 1;
  }
  return 0;
}

void lf_node_opens_unref(lf_node_opens *t, lf_node_open *r, int devfd) {
  // A registered lower file keeps its backing id idle (lf_node_opens_drop_idle): its next
  // open in C is a reply, not a FUSE_DEV_IOC_BACKING_OPEN (and its release no CLOSE).
  if (r->refs > 0 && --r->refs == 0 && r->backing_id >= 0 && !(r->path && lf_node_opens_live(t, r))) {
    lf_backing_close(devfd, r->backing_id);
    r->backing_id = -1;
  }
  lf_node_opens_tidy(t, r);
}

void lf_node_opens_drop_idle(lf_node_opens *t, lf_node_open *r, int devfd) {
  if (r->refs > 0 || r->backing_id < 0) return;
  lf_backing_close(devfd, r->backing_id);
  r->backing_id = -1;
  lf_node_opens_tidy(t, r);
}

void lf_node_opens_free(lf_node_opens *t) {
  for (size_t i = 0; i < t->cap; i++) {
    lf_node_open *r = t->slots[i];
    if (!r) continue;
    for (int k = 0; k < r->nfds; k++) close(r->fds[k]);
    free(r->fds);
    free(r->path);
    free(r->stat_path);
    unmark(r);
    free(r);
  }
  free(t->slots);
  t->slots = NULL;
  t->cap = t->count = 0;
}
