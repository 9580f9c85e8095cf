// See lookup.h.
#include "lookup.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "generated/loop-lookups.h"
#include "reply.h"

struct lf_lookup_name {
  uint64_t parent, id;
  lf_lookup_name *next_name, *next_id;
  uint32_t len;
  char name[];
};

static size_t name_slot(uint64_t parent, const char *name, size_t len, size_t cap) {
  // FNV-1a over the name, then the parent id mixed in.
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t) name[i]) * 0x100000001b3ULL;
  h ^= parent * 0x9e3779b97f4a7c15ULL;
  h ^= h >> 32;
  return (size_t) h & (cap - 1);
}

static size_t id_slot(uint64_t id, size_t cap) {
  id ^= id >> 33;
  id *= 0xff51afd7ed558ccdULL;
  id ^= id >> 33;
  return (size_t) id & (cap - 1);
}

static int grow(lf_lookups *lk) {
  size_t cap = lk->cap ? lk->cap * 2 : 4096;
  lf_lookup_name **by_name = calloc(cap, sizeof *by_name), **by_id = calloc(cap, sizeof *by_id);
  if (!by_name || !by_id) {
    free(by_name);
    free(by_id);
    return ENOMEM;
  }
  for (size_t i = 0; i < lk->cap; i++) {
    for (lf_lookup_name *e = lk->by_name[i], *next; e; e = next) {
      next = e->next_name;
      size_t s = name_slot(e->parent, e->name, e->len, cap);
      e->next_name = by_name[s];
      by_name[s] = e;
    }
    for (lf_lookup_name *e = lk->by_id[i], *next; e; e = next) {
      next = e->next_id;
      size_t s = id_slot(e->id, cap);
      e->next_id = by_id[s];
      by_id[s] = e;
    }
  }
  free(lk->by_name);
  free(lk->by_id);
  lk->by_name = by_name;
  lk->by_id = by_id;
  lk->cap = cap;
  return 0;
}

static lf_lookup_name *find(const lf_lookups *lk, uint64_t parent, const char *name, size_t len) {
  if (lk->cap == 0) return NULL;
  for (lf_lookup_name *e = lk->by_name[name_slot(parent, name, len, lk->cap)]; e; e = e->next_name)
    if (e->parent == parent && e->len == len && memcmp(e->name, name, len) == 0) return e;
  return NULL;
}

static void unlink_id(lf_lookups *lk, lf_lookup_name *gone) {
  for (lf_lookup_name **p = &lk->by_id[id_slot(gone->id, lk->cap)]; *p; p = &(*p)->next_id) {
    if (*p == gone) {
      *p = gone->next_id;
      return;
    }
  }
}

static void link_id(lf_lookups *lk, lf_lookup_name *e) {
  size_t s = id_slot(e->id, lk->cap);
  e->next_id = lk->by_id[s];
  lk->by_id[s] = e;
}

// (parent, name) → id, made or moved. 0 or ENOMEM.
static int put(lf_lookups *lk, uint64_t parent, const char *name, size_t len, uint64_t id) {
  lf_lookup_name *e = find(lk, parent, name, len);
  if (e) {
    if (e->id == id) return 0;
    unlink_id(lk, e);
    e->id = id;
    link_id(lk, e);
    return 0;
  }
  // At most one entry a slot on average: chains stay short.
  if (lk->count + 1 > lk->cap && grow(lk) != 0) return ENOMEM;
  if (!(e = malloc(sizeof *e + len))) return ENOMEM;
  e->parent = parent;
  e->id = id;
  e->len = (uint32_t) len;
  memcpy(e->name, name, len);
  size_t s = name_slot(parent, name, len, lk->cap);
  e->next_name = lk->by_name[s];
  lk->by_name[s] = e;
  link_id(lk, e);
  lk->count++;
  return 0;
}

int lf_lookups_child(lf_lookups *lk, uint64_t parent, const char *name, size_t len, uint64_t id) {
  return put(lk, parent, name, len, id);
}

void lf_lookups_forget(lf_lookups *lk, uint64_t id) {
  if (lk->cap == 0) return;
  for (lf_lookup_name **p = &lk->by_id[id_slot(id, lk->cap)]; *p;) {
    lf_lookup_name *e = *p;
    if (e->id != id) {
      p = &e->next_id;
      continue;
    }
    *p = e->next_id;
    for (lf_lookup_name **q = &lk->by_name[name_slot(e->parent, e->name, e->len, lk->cap)]; *q; q = &(*q)->next_name) {
      if (*q == e) {
        *q = e->next_name;
        break;
      }
    }
    free(e);
    lk->count--;
  }
}

// Room for one more record of a `len`-byte name. 0 or ENOMEM.
static int reserve(lf_lookups *lk, size_t len) {
  size_t need = lk->nrec + LF_REC_NAME + ((len + 7) & ~(size_t) 7);
  if (need <= lk->caprec) return 0;
  size_t cap = lk->caprec ? lk->caprec * 2 : 16384;
  while (cap < need) cap *= 2;
  char *rec = realloc(lk->rec, cap);
  if (!rec) return ENOMEM;
  lk->rec = rec;
  lk->caprec = cap;
  return 0;
}

static void put_f64(char *at, uint64_t v) {
  double d = (double) v;
  memcpy(at, &d, sizeof d);
}

static void record(lf_lookups *lk, uint64_t parent, uint64_t id, uint64_t ino, uint32_t flags, const char *name, size_t len) {
  char *at = lk->rec + lk->nrec;
  size_t size = LF_REC_NAME + ((len + 7) & ~(size_t) 7);
  memset(at, 0, size);
  put_f64(at + LF_REC_PARENT, parent);
  put_f64(at + LF_REC_ID, id);
  put_f64(at + LF_REC_INO, ino);
  uint32_t n32 = (uint32_t) len;
  memcpy(at + LF_REC_FLAGS, &flags, 4);
  memcpy(at + LF_REC_NAME_LEN, &n32, 4);
  memcpy(at + LF_REC_NAME, name, len);
  lk->nrec += size;
}

// As wire.ts's writeAttr shapes JS's answers.
static void attr_of(const struct stat *st, struct fuse_attr *a) {
  memset(a, 0, sizeof *a);
  a->ino = (uint64_t) st->st_ino;
  a->size = (uint64_t) st->st_size;
  a->blocks = (uint64_t) st->st_blocks;
  a->atime = (uint64_t) st->st_atim.tv_sec;
  a->mtime = (uint64_t) st->st_mtim.tv_sec;
  a->ctime = (uint64_t) st->st_ctim.tv_sec;
  a->atimensec = (uint32_t) st->st_atim.tv_nsec;
  a->mtimensec = (uint32_t) st->st_mtim.tv_nsec;
  a->ctimensec = (uint32_t) st->st_ctim.tv_nsec;
  a->mode = st->st_mode;
  a->nlink = (uint32_t) st->st_nlink;
  a->uid = st->st_uid;
  a->gid = st->st_gid;
  a->rdev = (uint32_t) st->st_rdev;
  a->blksize = (uint32_t) st->st_blksize;
}

int lf_lookup_answer(lf_lookups *lk, lf_node_opens *opens, lf_node_flags *no_xattrs, int devfd, const struct fuse_in_header *in,
                     const char *body, size_t n) {
  if (!lk->idx) return 0;
  lf_node_open *d = lf_node_opens_get(opens, in->nodeid);
  if (!d || !d->marked || d->epoch != opens->epoch) return 0;
  size_t len = strnlen(body, n);
  // No NUL, or a name the index cannot hold: JS says what it is.
  if (len == 0 || len == n || len > NAME_MAX || memchr(body, '/', len) || (body[0] == '.' && (len == 1 || (len == 2 && body[1] == '.'))))
    return 0;
  char path[PATH_MAX];
  if (d->up_path) {
    // Anything the writable layer has under that name (an object, a whiteout) is JS's to
    // answer; only "nothing there" lets the lower layers show through.
    size_t ulen = (size_t) d->up_len + 1 + len;
    if (ulen >= sizeof path) return 0;
    memcpy(path, d->up_path, d->up_len);
    path[d->up_len] = '/';
    memcpy(path + d->up_len + 1, body, len);
    path[ulen] = 0;
    struct stat st;
    if (lstat(path, &st) == 0 || errno != ENOENT) return 0;
  }
  size_t plen = 0;
  lf_entry_t e;
  int found = 0;
  if (d->ix_path) {
    size_t dlen = d->ix_len == 1 ? 0 : d->ix_len;  // the index's root is "/"
    plen = dlen + 1 + len;
    if (plen >= sizeof path) return 0;
    memcpy(path, d->ix_path, dlen);
    path[dlen] = '/';
    memcpy(path + dlen + 1, body, len);
    path[plen] = 0;
    found = lf_index_lookup(lk->idx, path, plen, &e);
  }
  if (!found) {
    // As JS's LOOKUP of a miss: a cached negative entry, or ENOENT when none is cached.
    struct fuse_entry_out neg = { .entry_valid = lk->negative_valid };
    struct iovec part = { .iov_base = &neg, .iov_len = sizeof neg };
    if (lk->negative_valid > 0) lf_reply(devfd, in->unique, 0, &part, 1);
    else lf_reply(devfd, in->unique, -ENOENT, NULL, 0);
    lk->answered++;
    return 1;
  }
  if (reserve(lk, len) != 0) return 0;
  lf_lookup_name *known = find(lk, in->nodeid, body, len);
  uint64_t id = known ? known->id : lk->next_id;
  if (!known && put(lk, in->nodeid, body, len, id) != 0) return 0;
  if (!known) lk->next_id++;

  struct fuse_entry_out out = { .nodeid = id, .entry_valid = lk->entry_valid, .attr_valid = lk->attr_valid };
  attr_of(&e.st, &out.attr);
  struct fuse_attr_out ao = { .attr_valid = lk->attr_valid, .attr = out.attr };
  uint32_t flags = 0;
  mode_t type = e.st.st_mode & S_IFMT;
  // What JS would register at a LOOKUP, or at the first request that reaches it
  // (lower-opens.ts): a failure (no memory) leaves that request to JS.
  if (type == S_IFDIR) {
    // Nothing of the writable layer is there (lstat said so, or its parent has none). Only
    // a new node: JS may hold names in one the loop made before (a listing ended its mark),
    // which the loop does not know.
    if (!known && lf_node_opens_mark(opens, id, path, plen, NULL, 0, d->same_path) == 0) flags |= LF_REC_F_MARKED;
    if (lf_node_opens_register_attr(opens, id, &ao, 1) == 0) flags |= LF_REC_F_ATTR;
  } else if (type == S_IFLNK) {
    if (lf_node_opens_register_attr(opens, id, &ao, 0) == 0) flags |= LF_REC_F_ATTR;
  } else if (type == S_IFREG && lk->register_files) {
    char backing[PATH_MAX];
    if (lf_index_backing_path(lk->idx, &e, backing, sizeof backing)) {
      size_t blen = strlen(backing);
      // As union-fs.ts lowerFileOf: what the small copy-up in one call copies from the
      // index's facts alone, to the same name on the writable layer.
      int32_t union_at = lk->copy_up && d->same_path && !(e.flags & LF_IX_FLAG_XATTRS) && e.st.st_nlink <= 1 && !(e.st.st_mode & 06000)
                           ? (int32_t) (blen - plen)
                           : -1;
      if (lf_node_opens_register(opens, id, backing, blen, (uint64_t) e.st.st_size, &ao, lk->cached, union_at) == 0)
        flags |= LF_REC_F_FILE;
    }
  }
  if (!(e.flags & LF_IX_FLAG_XATTRS) && lf_node_flags_set(no_xattrs, id, 1) == 0) flags |= LF_REC_F_NO_XATTRS;
  record(lk, in->nodeid, id, (uint64_t) e.st.st_ino, flags, body, len);
  struct iovec part = { .iov_base = &out, .iov_len = sizeof out };
  lf_reply(devfd, in->unique, 0, &part, 1);
  lk->answered++;
  return 1;
}

int lf_lookups_configure(lf_lookups *lk, const void *data, size_t size, uint64_t entry_valid, uint64_t attr_valid,
                         uint64_t negative_valid, int register_files, int cached, int copy_up, char *err, size_t err_size) {
  lf_index_close(lk->idx);
  lk->idx = NULL;
  if (!data) return 0;
  // The bytes were checked when JS mapped them (mapIndexCache): offsets only here.
  int rc = lf_index_open_memory(data, size, 0, &lk->idx, err, err_size);
  if (rc != 0) return rc;
  lk->entry_valid = entry_valid;
  lk->attr_valid = attr_valid;
  lk->negative_valid = negative_valid;
  lk->register_files = register_files != 0;
  lk->cached = cached != 0;
  lk->copy_up = copy_up != 0;
  if (lk->next_id == 0) lk->next_id = LF_LOOKUP_ID_FIRST;
  return 0;
}

char *lf_lookups_take(lf_lookups *lk, size_t *size) {
  if (lk->nrec == 0) return NULL;
  char *out = lk->rec;
  *size = lk->nrec;
  lk->rec = NULL;
  lk->nrec = lk->caprec = 0;
  return out;
}

void lf_lookups_free(lf_lookups *lk) {
  lf_index_close(lk->idx);
  lk->idx = NULL;
  for (size_t i = 0; i < lk->cap; i++) {
    for (lf_lookup_name *e = lk->by_name[i], *next; e; e = next) {
      next = e->next_name;
      free(e);
    }
  }
  free(lk->by_name);
  free(lk->by_id);
  free(lk->rec);
  lk->by_name = lk->by_id = NULL;
  lk->rec = NULL;
  lk->cap = lk->count = lk->nrec = lk->caprec = 0;
}
