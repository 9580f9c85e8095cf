// See mountinfo.h.
#include "mountinfo.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

// mountinfo escapes space, tab, newline and backslash in paths as \ooo; undone in place.
static void unescape(char *s) {
  char *out = s;
  for (char *in = s; *in; in++) {
    if (in[0] == '\\' && in[1] >= '0' && in[1] <= '3' && in[2] >= '0' && in[2] <= '7' && in[3] >= '0' && in[3] <= '7') {
      *out++ = (char) (((in[1] - '0') << 6) | ((in[2] - '0') << 3) | (in[3] - '0'));
      in += 3;
    } else {
      *out++ = *in;
    }
  }
  *out = 0;
}

typedef struct {
  unsigned long id, parent;
  dev_t dev;
} entry;

int lf_mountinfo_top_device(const char *where, dev_t *dev) {
  FILE *f = fopen("/proc/self/mountinfo", "re");
  if (!f) return -errno;
  entry *at = NULL;  // the mounts at `where`, in table order (usually one; more when stacked)
  size_t n = 0, cap = 0;
  char *line = NULL;
  size_t len = 0;
  int rc = 0;
  while (getline(&line, &len, f) >= 0) {
    unsigned long id, parent;
    unsigned major, minor;
    int path_at = 0;
    // "36 35 98:0 /root /mountpoint options …": id, parent id, device, root, mountpoint.
    if (sscanf(line, "%lu %lu %u:%u %*s %n", &id, &parent, &major, &minor, &path_at) != 4 || !path_at) continue;
    char *path = line + path_at;
    path[strcspn(path, " \n")] = 0;
    unescape(path);
    if (strcmp(path, where) != 0) continue;
    if (n == cap) {
      entry *grown = realloc(at, (cap = cap ? cap * 2 : 4) * sizeof *at);
      if (!grown) {
        rc = -ENOMEM;
        break;
      }
      at = grown;
    }
    at[n++] = (entry) { id, parent, makedev(major, minor) };
  }
  free(line);
  fclose(f);
  if (rc == 0) rc = -ENOENT;
  // The top one has none of the others on it; of several such (a table changing while
  // read), the last listed, as mount(2) appends.
  for (size_t i = n; rc == -ENOENT && i-- > 0;) {
    int covered = 0;
    for (size_t j = 0; j < n && !covered; j++) covered = j != i && at[j].parent == at[i].id;
    if (!covered) {
      *dev = at[i].dev;
      rc = 0;
    }
  }
  free(at);
  return rc;
}
