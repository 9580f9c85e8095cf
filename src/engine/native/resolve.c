// Path -> DEFER / FOUND / MISSING / UPPER (see resolve.h).
#define _GNU_SOURCE
#include "resolve.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

lf_answer_t lf_resolve (const lf_index_t *idx, lf_upper_set_t *upper, const char *path, lf_entry_t *entry, lf_upper_facts_t *facts) {
  if (idx == NULL || path == NULL || path[0] != '/') return LF_DEFER;
  size_t len = strlen(path);
  // A component over NAME_MAX is ENAMETOOLONG, not a miss: JavaScript says which.
  for (size_t i = 0, start = 1; i <= len; i++) {
    if (i == len || path[i] == '/') {
      if (i > start && i - start > NAME_MAX) return LF_DEFER;
      start = i + 1;
    }
  }
  if (upper == NULL) return lf_index_lookup(idx, path, len, entry) ? LF_FOUND : LF_MISSING;
  lf_answer_t answer;
  lf_upper_rdlock(upper);
  if (!lf_upper_empty_locked(upper) && lf_upper_get_locked(upper, path, len, facts)) {
    answer = facts != NULL ? LF_UPPER : LF_DEFER;
  } else if (lf_upper_blocked_locked(upper, path, len)) {
    answer = LF_DEFER;
  } else {
    // Under the lock, so a path the writable layer gains meanwhile is not answered
    // from the lower layers after the op that made it has replied.
    answer = lf_index_lookup(idx, path, len, entry) ? LF_FOUND : LF_MISSING;
  }
  lf_upper_unlock(upper);
  return answer;
}

int lf_resolve_upper_lstat (lf_upper_set_t *upper, const char *path, const lf_upper_facts_t *facts, struct stat *st) {
  // A backing path of PATH_MAX bytes or more is refused by lstat (ENAMETOOLONG) though the
  // object exists: JavaScript reaches it in steps (src/union/backing-path.ts).
  char real[PATH_MAX];
  size_t len = strlen(path);
  lf_upper_rdlock(upper);
  size_t root_len;
  const char *root = lf_upper_root_locked(upper, &root_len);
  int r = 0;
  if (root == NULL || root_len + len + 1 > sizeof(real)) r = LF_ASK_JS;
  else {
    memcpy(real, root, root_len);
    memcpy(real + root_len, path, len + 1);
  }
  lf_upper_unlock(upper);
  if (r != 0) return r;
  if (lstat(real, st) != 0) return -errno;
  st->st_ino = facts->origin_ino > 0 ? (ino_t) facts->origin_ino : (ino_t) lf_ino_upper((uint64_t) st->st_ino);
  return 0;
}
