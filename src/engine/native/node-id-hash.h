// The slot of a node id in a power-of-two open-addressing table (node-flags.c, node-opens.c).
#ifndef LAYERFS_NODE_ID_HASH_H
#define LAYERFS_NODE_ID_HASH_H

#include <stddef.h>
#include <stdint.h>

static inline size_t lf_node_slot(uint64_t id, size_t cap) {
  // Node ids are a counter: mix them so neighbours do not form runs.
  id ^= id >> 33;
  id *= 0xff51afd7ed558ccdULL;
  id ^= id >> 33;
  return (size_t) id & (cap - 1);
}

#endif
