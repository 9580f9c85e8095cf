// See node-flags.h.
#include "node-flags.h"

#include <errno.h>
#include <stdlib.h>

#include "node-id-hash.h"

static int grow(lf_node_flags *s) {
  size_t cap = s->cap ? s->cap * 2 : 1024;
  uint64_t *ids = calloc(cap, sizeof *ids);
  if (!ids) return ENOMEM;
  for (size_t i = 0; i < s->cap; i++) {
    if (s->ids[i] == 0) continue;
    size_t j = lf_node_slot(s->ids[i], cap);
    while (ids[j] != 0) j = (j + 1) & (cap - 1);
    ids[j] = s->ids[i];
  }
  free(s->ids);
  s->ids = ids;
  s->cap = cap;
  return 0;
}

int lf_node_flags_has(const lf_node_flags *s, uint64_t id) {
  if (s->cap == 0 || id == 0) return 0;
  for (size_t i = lf_node_slot(id, s->cap);; i = (i + 1) & (s->cap - 1)) {
    if (s->ids[i] == id) return 1;
    if (s->ids[i] == 0) return 0;
  }
}

int lf_node_flags_set(lf_node_flags *s, uint64_t id, int on) {
  if (id == 0) return 0;
  if (on) {
    if (lf_node_flags_has(s, id)) return 0;
    // At most half full: probes stay short and an empty slot always ends them.
    if ((s->count + 1) * 2 > s->cap && grow(s) != 0) return ENOMEM;
    size_t i = lf_node_slot(id, s->cap);
    while (s->ids[i] != 0) i = (i + 1) & (s->cap - 1);
    s->ids[i] = id;
    s->count++;
    return 0;
  }
  if (s->cap == 0) return 0;
  size_t i = lf_node_slot(id, s->cap);
  while (s->ids[i] != id) {
    if (s->ids[i] == 0) return 0;
    i = (i + 1) & (s->cap - 1);
  }
  // Backward-shift deletion: move later members of the run into the hole, so lookups
  // never need tombstones.
  size_t hole = i;
  for (size_t j = (i + 1) & (s->cap - 1); s->ids[j] != 0; j = (j + 1) & (s->cap - 1)) {
    size_t home = lf_node_slot(s->ids[j], s->cap);
    // Move j into the hole unless its home lies cyclically in (hole, j].
    int stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (stays) continue;
    s->ids[hole] = s->ids[j];
    hole = j;
  }
  s->ids[hole] = 0;
  s->count--;
  return 0;
}

void lf_node_flags_free(lf_node_flags *s) {
  free(s->ids);
  s->ids = NULL;
  s->cap = s->count = 0;
}
