// See node-opens.h.
#include "node-opens.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "passthrough.h"

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
  if (r->path || r->dir || r->has_attr || r->backing_id >= 0 || r->refs > 0 || r->nfds > 0) return;
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

int lf_node_opens_register(lf_node_opens *t, uint64_t node, const char *path, size_t len, uint64_t size,
                           const struct fuse_attr_out *attr, int cached) {
  if (!path) {
    lf_node_open *r = lf_node_opens_get(t, node);
    if (!r) return 0;
    free(r->path);
    r->path = NULL;
    r->dir = r->has_attr = 0;
    lf_node_opens_tidy(t, r);
    return 0;
  }
  char *copy = malloc(len + 1);
  if (!copy) return ENOMEM;
  memcpy(copy, path, len);
  copy[len] = 0;
  lf_node_open *r = lf_node_opens_make(t, node);
  if (!r) {
    free(copy);
    return ENOMEM;
  }
  free(r->path);
  r->path = copy;
  r->size = size;
  r->attr = *attr;
  r->cached = cached != 0;
  r->epoch = t->epoch;
  return 0;
}

int lf_node_opens_register_attr(lf_node_opens *t, uint64_t node, const struct fuse_attr_out *attr, int dir) {
  lf_node_open *r = lf_node_opens_make(t, node);
  if (!r) return ENOMEM;
  if (r->path && r->epoch != t->epoch) {
    // A file registration of an ended epoch must not come back to life with this one.
    free(r->path);
    r->path = NULL;
  }
  r->dir = dir != 0;
  r->has_attr = attr != NULL;
  if (attr) r->attr = *attr;
  r->epoch = t->epoch;
  return 0;
}

int lf_node_opens_live(const lf_node_opens *t, const lf_node_open *r) {
  return (r->path != NULL || r->dir || r->has_attr) && r->epoch == t->epoch;
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
    free(r);
  }
  free(t->slots);
  t->slots = NULL;
  t->cap = t->count = 0;
}
