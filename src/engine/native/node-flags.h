// Facts about kernel node ids that let the request loop answer a request without JS:
// a hash set of node ids whose object has no xattr at all (`ls -l` asks two xattr names
// of every file, each a request). Written by JS (setNodeFlags), read by the JS-thread
// request loop only (js-loop.c), so it needs no lock.
#ifndef LAYERFS_NODE_FLAGS_H
#define LAYERFS_NODE_FLAGS_H

#include <stddef.h>
#include <stdint.h>

typedef struct lf_node_flags {
  uint64_t *ids;  // open addressing, linear probing; 0 = empty (node id 0 is never used)
  size_t cap;     // a power of two, or 0
  size_t count;
} lf_node_flags;

// Adds or removes `id`; returns 0, or ENOMEM (the set is then unchanged).
int lf_node_flags_set(lf_node_flags *s, uint64_t id, int on);
int lf_node_flags_has(const lf_node_flags *s, uint64_t id);
void lf_node_flags_free(lf_node_flags *s);

#endif
