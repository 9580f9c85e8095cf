// The lower-index cache file read in place (see lower-index.h; the layout is
// src/engine/formats/index-cache.ts). Opening validates everything a lookup may follow,
// so after it no read can leave the file's bytes and no probe can loop forever.
#define _GNU_SOURCE
#include "lower-index.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include "resolve.h"

struct lf_index {
  const uint8_t *data;
  size_t size;
  // Non-zero when data is our mapping (munmap at close).
  int mapped;
  uint32_t rows;
  uint32_t slot_mask;
  uint32_t dir_words;
  uint32_t pool_bytes;
  uint32_t root_count;
  const double *f64[LF_IX_F64_COLUMNS];
  const uint32_t *u32[LF_IX_U32_COLUMNS];
  const uint32_t *slots;
  const uint32_t *dir_layers;
  const uint8_t *flags;
  const char *pool;
  // Per root: its path inside data, and the length (malloc'ed arrays).
  const char **roots;
  uint32_t *root_lens;
};

static int fail (char *err, size_t err_size, int code, const char *fmt, ...) {
  if (err != NULL && err_size > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
  }
  return code;
}

static uint32_t rd32 (const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

static uint64_t rd64 (const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

#define COL(idx, c) ((idx)->u32[LF_IX_U32_##c])
#define F64(idx, c) ((idx)->f64[LF_IX_F64_##c])

// The roots section: LF_IX_ROOT records, each padded to 8 bytes.
static int parse_roots (lf_index_t *idx, const uint8_t *p, uint32_t bytes, unsigned flags, char *err, size_t err_size) {
  idx->roots = calloc(idx->root_count > 0 ? idx->root_count : 1, sizeof(*idx->roots));
  idx->root_lens = calloc(idx->root_count > 0 ? idx->root_count : 1, sizeof(*idx->root_lens));
  if (idx->roots == NULL || idx->root_lens == NULL) return fail(err, err_size, -ENOMEM, "out of memory");
  uint64_t o = 0;
  for (uint32_t i = 0; i < idx->root_count; i++) {
    if (o + LF_IX_ROOT_PATH > bytes) return fail(err, err_size, -EINVAL, "bad roots record");
    uint32_t len = rd32(p + o + LF_IX_ROOT_PATH_LEN);
    if (len == 0 || len > PATH_MAX || o + LF_IX_ROOT_PATH + len > bytes) return fail(err, err_size, -EINVAL, "bad roots record");
    idx->roots[i] = (const char *) p + o + LF_IX_ROOT_PATH;
    idx->root_lens[i] = len;
    if (flags & LF_INDEX_CHECK_ROOTS) {
      char path[PATH_MAX + 1];
      memcpy(path, idx->roots[i], len);
      path[len] = '\0';
      struct stat st;
      if (lstat(path, &st) != 0) return fail(err, err_size, -ESTALE, "cannot stat layer %u: %s", i, strerror(errno));
      int64_t ctime_ns = (int64_t) st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec;
      if ((uint64_t) st.st_ino != rd64(p + o + LF_IX_ROOT_INO) || ctime_ns != (int64_t) rd64(p + o + LF_IX_ROOT_CTIME_NS)) {
        return fail(err, err_size, -ESTALE, "layer %u changed since the cache was written", i);
      }
    }
    o += (LF_IX_ROOT_PATH + len + 7) & ~7ULL;
  }
  if (o != bytes) return fail(err, err_size, -EINVAL, "bad roots record");
  return 0;
}

// Every offset a reader may follow, row by row.
static int check_rows (const lf_index_t *idx, char *err, size_t err_size) {
  const uint32_t *mode = COL(idx, MODE), *poff = COL(idx, PATH_OFF), *plen = COL(idx, PATH_LEN);
  const uint32_t *aux0 = COL(idx, AUX0), *aux1 = COL(idx, AUX1), *dlo = COL(idx, DIR_LAYERS_OFF), *layer = COL(idx, LAYER);
  for (uint32_t row = 0; row < idx->rows; row++) {
    if (plen[row] == 0 || (uint64_t) poff[row] + plen[row] > idx->pool_bytes || idx->pool[poff[row]] != '/') {
      return fail(err, err_size, -EINVAL, "row %u: path out of range", row);
    }
    if (layer[row] >= idx->root_count) return fail(err, err_size, -EINVAL, "row %u: layer out of range", row);
    if (S_ISDIR(mode[row])) {
      if (aux1[row] > 0 && (uint64_t) aux0[row] + aux1[row] > idx->rows) return fail(err, err_size, -EINVAL, "row %u: children out of range", row);
      if (dlo[row] >= idx->dir_words || (uint64_t) dlo[row] + 1 + idx->dir_layers[dlo[row]] > idx->dir_words) {
        return fail(err, err_size, -EINVAL, "row %u: dir layers out of range", row);
      }
    } else if (S_ISLNK(mode[row]) && aux0[row] != LF_IX_NONE && (uint64_t) aux0[row] + aux1[row] > idx->pool_bytes) {
      return fail(err, err_size, -EINVAL, "row %u: target out of range", row);
    }
  }
  // A probe stops at an empty slot: there must be one, and every other names a row.
  uint32_t empty = 0;
  for (uint32_t i = 0; i <= idx->slot_mask; i++) {
    if (idx->slots[i] == 0) empty++;
    else if (idx->slots[i] > idx->rows) return fail(err, err_size, -EINVAL, "hash slot %u out of range", i);
  }
  if (empty == 0) return fail(err, err_size, -EINVAL, "hash table full");
  return 0;
}

static int open_bytes (lf_index_t *idx, unsigned flags, char *err, size_t err_size) {
  const uint8_t *d = idx->data;
  if (((uintptr_t) d & 7) != 0) return fail(err, err_size, -EINVAL, "index bytes not 8-aligned");
  if (idx->size < LF_IX_HEADER_BYTES) return fail(err, err_size, -EINVAL, "truncated cache");
  if (rd32(d + LF_IX_HDR_MAGIC) != LF_IX_MAGIC) return fail(err, err_size, -EINVAL, "not an index cache");
  uint32_t version = rd32(d + LF_IX_HDR_VERSION);
  if (version != LF_IX_VERSION) return fail(err, err_size, -EINVAL, "cache version %u, not %u", version, LF_IX_VERSION);
  uint32_t rows = rd32(d + LF_IX_HDR_ROWS), slots = rd32(d + LF_IX_HDR_SLOTS);
  uint32_t words = rd32(d + LF_IX_HDR_DIR_LAYER_WORDS), pool = rd32(d + LF_IX_HDR_POOL_BYTES);
  uint32_t roots_bytes = rd32(d + LF_IX_HDR_ROOTS_BYTES);
  uint64_t start = LF_IX_HEADER_BYTES + (uint64_t) roots_bytes;
  uint64_t expect = start + (uint64_t) rows * (LF_IX_F64_COLUMNS * 8 + LF_IX_U32_COLUMNS * 4 + 1) + ((uint64_t) slots + words) * 4 + pool;
  if (expect != idx->size || start % 8 != 0) return fail(err, err_size, -EINVAL, "cache size %zu, header says %llu", idx->size, (unsigned long long) expect);
  if (slots <= rows || (slots & (slots - 1)) != 0) return fail(err, err_size, -EINVAL, "bad hash table size");
  if (flags & LF_INDEX_VERIFY_CRC) {
    uLong crc = crc32(0L, Z_NULL, 0);
    // In 1 MiB steps; a mapping drops each step's pages from the resident set at once
    // (they stay in the page cache), so checking 15 MB never makes the process 15 MB bigger.
    for (size_t o = LF_IX_CRC_FROM; o < idx->size;) {
      size_t end = (o & ~(size_t) 0xfffff) + 0x100000;
      if (end > idx->size) end = idx->size;
      crc = crc32(crc, d + o, (uInt) (end - o));
      if (idx->mapped && (end & 0xfffff) == 0) madvise((void *) (d + end - 0x100000), 0x100000, MADV_DONTNEED);
      o = end;
    }
    if ((uint32_t) crc != rd32(d + LF_IX_HDR_CRC)) return fail(err, err_size, -EINVAL, "checksum mismatch");
  }
  idx->rows = rows;
  idx->slot_mask = slots - 1;
  idx->dir_words = words;
  idx->pool_bytes = pool;
  idx->root_count = rd32(d + LF_IX_HDR_ROOT_COUNT);
  if (idx->root_count > 65536 || (idx->root_count == 0 && rows > 0)) return fail(err, err_size, -EINVAL, "bad root count");
  int r = parse_roots(idx, d + LF_IX_HEADER_BYTES, roots_bytes, flags, err, err_size);
  if (r != 0) return r;
  const uint8_t *p = d + start;
  for (unsigned c = 0; c < LF_IX_F64_COLUMNS; c++, p += (size_t) rows * 8) idx->f64[c] = (const double *) p;
  for (unsigned c = 0; c < LF_IX_U32_COLUMNS; c++, p += (size_t) rows * 4) idx->u32[c] = (const uint32_t *) p;
  idx->slots = (const uint32_t *) p;
  p += (size_t) slots * 4;
  idx->dir_layers = (const uint32_t *) p;
  p += (size_t) words * 4;
  idx->flags = p;
  p += rows;
  idx->pool = (const char *) p;
  return check_rows(idx, err, err_size);
}

static int finish_open (lf_index_t *idx, unsigned flags, lf_index_t **out, char *err, size_t err_size) {
  int r = open_bytes(idx, flags, err, err_size);
  if (r != 0) {
    lf_index_close(idx);
    return r;
  }
  *out = idx;
  return 0;
}

int lf_index_open_memory (const void *data, size_t size, unsigned flags, lf_index_t **out, char *err, size_t err_size) {
  lf_index_t *idx = calloc(1, sizeof(*idx));
  if (idx == NULL) return fail(err, err_size, -ENOMEM, "out of memory");
  idx->data = data;
  idx->size = size;
  return finish_open(idx, flags, out, err, err_size);
}

int lf_index_open_file (const char *file, unsigned flags, lf_index_t **out, char *err, size_t err_size) {
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(err, err_size, -errno, "cannot open %s: %s", file, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return fail(err, err_size, -e, "cannot stat %s: %s", file, strerror(e));
  }
  if (st.st_size < LF_IX_HEADER_BYTES) {
    close(fd);
    return fail(err, err_size, -EINVAL, "truncated cache");
  }
  void *map = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  close(fd);
  if (map == MAP_FAILED) return fail(err, err_size, -e, "cannot map %s: %s", file, strerror(e));
  lf_index_t *idx = calloc(1, sizeof(*idx));
  if (idx == NULL) {
    munmap(map, (size_t) st.st_size);
    return fail(err, err_size, -ENOMEM, "out of memory");
  }
  idx->data = map;
  idx->size = (size_t) st.st_size;
  idx->mapped = 1;
  int r = finish_open(idx, flags, out, err, err_size);
  // The checks read pages lookups may never need: drop them all from the resident set
  // (they stay in the page cache, clean), so the process holds only what it touches.
  if (r == 0) madvise(map, (size_t) st.st_size, MADV_DONTNEED);
  return r;
}

void lf_index_close (lf_index_t *idx) {
  if (idx == NULL) return;
  if (idx->mapped) munmap((void *) idx->data, idx->size);
  free(idx->roots);
  free(idx->root_lens);
  free(idx);
}

uint32_t lf_index_count (const lf_index_t *idx) {
  return idx->rows;
}

uint32_t lf_index_root_count (const lf_index_t *idx) {
  return idx->root_count;
}

const char * lf_index_root (const lf_index_t *idx, uint32_t layer, uint32_t *len) {
  if (layer >= idx->root_count) return NULL;
  if (len != NULL) *len = idx->root_lens[layer];
  return idx->roots[layer];
}

const void * lf_index_data (const lf_index_t *idx, size_t *size) {
  if (size != NULL) *size = idx->size;
  return idx->data;
}

static uint32_t path_hash (const char *s, size_t n) {
  uint32_t h = LF_IX_FNV_OFFSET;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char) s[i]) * LF_IX_FNV_PRIME;
  return h;
}

int lf_index_entry (const lf_index_t *idx, uint32_t row, lf_entry_t *e) {
  if (row >= idx->rows) return 0;
  memset(e, 0, sizeof(*e));
  uint32_t mode = COL(idx, MODE)[row];
  e->row = row;
  e->path = idx->pool + COL(idx, PATH_OFF)[row];
  e->path_len = COL(idx, PATH_LEN)[row];
  e->layer = COL(idx, LAYER)[row];
  e->flags = idx->flags[row];
  if (S_ISDIR(mode)) {
    e->child_first = COL(idx, AUX0)[row];
    e->child_count = COL(idx, AUX1)[row];
    e->dir_layer_count = idx->dir_layers[COL(idx, DIR_LAYERS_OFF)[row]];
  } else if (S_ISLNK(mode) && COL(idx, AUX0)[row] != LF_IX_NONE) {
    e->target = idx->pool + COL(idx, AUX0)[row];
    e->target_len = COL(idx, AUX1)[row];
  }
  struct stat *st = &e->st;
  st->st_mode = mode;
  st->st_uid = COL(idx, UID)[row];
  st->st_gid = COL(idx, GID)[row];
  // A directory merged from several layers has no single link count: UnionView says 1.
  st->st_nlink = e->dir_layer_count > 1 ? 1 : COL(idx, NLINK)[row];
  st->st_blksize = COL(idx, BLKSIZE)[row];
  st->st_size = (off_t) F64(idx, SIZE)[row];
  st->st_blocks = (blkcnt_t) F64(idx, BLOCKS)[row];
  st->st_rdev = (dev_t) F64(idx, RDEV)[row];
  st->st_ino = (ino_t) lf_ino_lower(e->layer, (uint64_t) F64(idx, INO)[row]);
  st->st_atim.tv_sec = (time_t) F64(idx, ATIME_SEC)[row];
  st->st_mtim.tv_sec = (time_t) F64(idx, MTIME_SEC)[row];
  st->st_ctim.tv_sec = (time_t) F64(idx, CTIME_SEC)[row];
  st->st_atim.tv_nsec = COL(idx, ATIME_NSEC)[row];
  st->st_mtim.tv_nsec = COL(idx, MTIME_NSEC)[row];
  st->st_ctim.tv_nsec = COL(idx, CTIME_NSEC)[row];
  return 1;
}

int lf_index_lookup (const lf_index_t *idx, const char *path, size_t len, lf_entry_t *out) {
  if (idx->rows == 0) return 0;
  uint32_t h = path_hash(path, len);
  const uint32_t *hash = COL(idx, HASH), *plen = COL(idx, PATH_LEN), *poff = COL(idx, PATH_OFF);
  for (uint32_t i = h & idx->slot_mask;; i = (i + 1) & idx->slot_mask) {
    uint32_t s = idx->slots[i];
    if (s == 0) return 0;
    uint32_t row = s - 1;
    if (hash[row] == h && plen[row] == len && memcmp(idx->pool + poff[row], path, len) == 0) return lf_index_entry(idx, row, out);
  }
}

const char * lf_index_child_name (const lf_entry_t *dir, const lf_entry_t *child, uint32_t *len) {
  // "/" + name under the root, dir + "/" + name elsewhere.
  uint32_t skip = dir->path_len == 1 ? 1 : dir->path_len + 1;
  if (child->path_len <= skip) return NULL;
  *len = child->path_len - skip;
  return child->path + skip;
}

char * lf_index_backing_path (const lf_index_t *idx, const lf_entry_t *e, char *buf, size_t size) {
  if (e->layer >= idx->root_count) return NULL;
  size_t rl = idx->root_lens[e->layer];
  // "/" is the root itself (as src/overlay/paths.ts inRoot has it).
  size_t pl = e->path_len == 1 ? 0 : e->path_len;
  if (rl + pl + 1 > size) return NULL;
  memcpy(buf, idx->roots[e->layer], rl);
  memcpy(buf + rl, e->path, pl);
  buf[rl + pl] = '\0';
  return buf;
}
