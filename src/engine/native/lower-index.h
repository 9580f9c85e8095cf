// The merged read-only lower index, read from the lower-index cache file exactly as it is
// on disk (src/union/lower-index-cache.ts writes it; its layout is defined once, in
// src/engine/formats/index-cache.ts, and generated into generated/index-cache-format.h).
//
// The file is a column table: one row per merged lower path, the columns as arrays of
// f64 / u32, an open-addressing hash table from path to row, the layers merged into each
// directory, one flag byte per row and a byte pool of paths and symlink targets. Rows are
// numbered so a directory's children are one contiguous run of rows. Nothing is decoded
// or copied at open: opening validates the header and every offset a reader may follow
// (so a corrupt or hostile file can make lookups answer "missing", never read out of
// bounds or loop), then lookups read the columns in place.
//
// Pure C (no libfuse, no N-API). Compiled into the fuse-native binding and into the
// layerfs engine.
//
// Thread-safety: an lf_index_t is immutable after lf_index_open_*; every function below
// except lf_index_close may be called from any number of threads at once without locks.
// lf_index_close must not run while another thread still uses the index.
//
// Ownership: lf_index_open_file maps the file (MAP_PRIVATE, PROT_READ) and owns the
// mapping; lf_index_open_memory borrows the caller's bytes, which must stay alive and
// unchanged until lf_index_close. Entries (lf_entry_t) point into the index's memory and
// stay valid until lf_index_close.
//
// Errors: the open functions return 0 or a negative errno (-ENOENT/-EACCES/... from
// open(2) and mmap(2), -EINVAL for a file that is not a valid cache of this version,
// -ESTALE when a layer root changed since the file was written, -ENOMEM), and write a
// one-line reason to `err` (NUL-terminated, truncated to err_size) when err is not NULL.
#ifndef LAYERFS_LOWER_INDEX_H
#define LAYERFS_LOWER_INDEX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "generated/index-cache-format.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lf_index lf_index_t;

// lf_index_open_* flags.
// Verify the CRC-32 of the whole file (reads every byte: ~17 MB for 102k entries).
// Without it only the header and every offset are checked.
#define LF_INDEX_VERIFY_CRC 1u
// lstat each recorded layer root and compare its st_ino and st_ctime with the record
// (-ESTALE when they differ): the file describes these very directories.
#define LF_INDEX_CHECK_ROOTS 2u

// One merged lower path, as UnionView (src/union/union-view.ts lowerStat) answers it.
typedef struct {
  uint32_t row;
  // The path, "/"-rooted, NOT NUL-terminated (a view into the pool).
  const char *path;
  uint32_t path_len;
  // Symlinks: the target (not NUL-terminated) when it was read at build; else NULL.
  const char *target;
  uint32_t target_len;
  // Index of the layer serving the path (0 = top lower layer).
  uint32_t layer;
  // LF_IX_FLAG_* (generated): LF_IX_FLAG_XATTRS when the backing object has any xattr.
  uint32_t flags;
  // Directories: their children are rows child_first .. child_first + child_count - 1,
  // in readdir order. 0/0 for everything else.
  uint32_t child_first;
  uint32_t child_count;
  // Directories: how many layers are merged into it (>1: nlink is reported as 1).
  uint32_t dir_layer_count;
  // The stat UnionView answers: st_ino = lf_ino_lower(layer, backing ino), nlink 1 for a
  // merged directory, times with nanoseconds.
  struct stat st;
} lf_entry_t;

// Maps `file` and validates it (flags: LF_INDEX_*). *out is set only on success. The pages
// the checks read are dropped from the process's resident set afterwards (MADV_DONTNEED;
// they stay in the page cache), so the process holds only what lookups touch.
int lf_index_open_file (const char *file, unsigned flags, lf_index_t **out, char *err, size_t err_size);

// Uses `size` bytes at `data` (the whole cache file's content, 8-byte aligned) without
// copying; validates them like lf_index_open_file.
int lf_index_open_memory (const void *data, size_t size, unsigned flags, lf_index_t **out, char *err, size_t err_size);

// Unmaps (open_file) and frees. NULL is ignored.
void lf_index_close (lf_index_t *idx);

// Number of rows (merged paths); row 0 is "/".
uint32_t lf_index_count (const lf_index_t *idx);

// Number of layer roots, and root `layer`'s path (not NUL-terminated) and its length;
// NULL when layer is out of range.
uint32_t lf_index_root_count (const lf_index_t *idx);
const char * lf_index_root (const lf_index_t *idx, uint32_t layer, uint32_t *len);

// Finds `path` (len bytes, "/"-rooted, no trailing slash except "/" itself).
// Returns 1 and fills *out when found, 0 when not.
int lf_index_lookup (const lf_index_t *idx, const char *path, size_t len, lf_entry_t *out);

// Fills *out with row `row`. Returns 0 when row >= lf_index_count.
int lf_index_entry (const lf_index_t *idx, uint32_t row, lf_entry_t *out);

// The name of row `child` inside directory entry `dir` (its path after dir's path and
// a slash), not NUL-terminated; *len set. `child` must be one of dir's children.
const char * lf_index_child_name (const lf_entry_t *dir, const lf_entry_t *child, uint32_t *len);

// Writes root(layer) + path + NUL into buf ("/" is the root alone). Returns buf, or NULL when it does not fit.
char * lf_index_backing_path (const lf_index_t *idx, const lf_entry_t *e, char *buf, size_t size);

// The bytes the index reads (the whole file), e.g. to hand them to JavaScript.
const void * lf_index_data (const lf_index_t *idx, size_t *size);

#ifdef __cplusplus
}
#endif

#endif
