// The C side of test/unit/native-formats.test.ts: reads what TypeScript wrote (a lower-index
// cache file, upper facts, packed handles) through src/engine/native/ and prints what it
// sees as JSON lines, so the test compares both sides field by field.
//
//   formats-reader open FILE [crc]   one line: {"ok":…,"err":…} (validation only)
//   formats-reader dump FILE         every row, then one line per layer root
//   formats-reader script FILE       commands on stdin, one answer line each:
//     set FLAGS ORIGIN HEXPATH | rm SUBTREE HEXPATH | resolve HEXPATH
//     | fh HEX | pack JS FD WRITE NATIVE UPPER_INO | root HEXDIR
// Paths cross as hex, so every byte (not only UTF-8) round-trips.
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handle.h"
#include "lower-index.h"
#include "resolve.h"
#include "upper-set.h"

static void hex (const char *s, size_t n) {
  putchar('"');
  for (size_t i = 0; i < n; i++) printf("%02x", (unsigned char) s[i]);
  putchar('"');
}

static size_t unhex (const char *in, char *out, size_t size) {
  size_t n = 0;
  for (; in[0] != '\0' && in[1] != '\0' && n + 1 < size; in += 2) {
    unsigned v;
    if (sscanf(in, "%2x", &v) != 1) break;
    out[n++] = (char) v;
  }
  out[n] = '\0';
  return n;
}

static void print_entry (const lf_index_t *idx, const lf_entry_t *e) {
  const struct stat *st = &e->st;
  printf("{\"row\":%u,\"path\":", e->row);
  hex(e->path, e->path_len);
  printf(",\"layer\":%u,\"xattrs\":%s,\"mode\":%u,\"uid\":%u,\"gid\":%u,\"nlink\":%" PRIu64 ",\"size\":%" PRId64
         ",\"blocks\":%" PRId64 ",\"blksize\":%" PRId64 ",\"rdev\":%" PRIu64 ",\"ino\":\"%" PRIu64 "\""
         ",\"atime\":[%" PRId64 ",%ld],\"mtime\":[%" PRId64 ",%ld],\"ctime\":[%" PRId64 ",%ld]",
         e->layer, (e->flags & LF_IX_FLAG_XATTRS) ? "true" : "false", (unsigned) st->st_mode, (unsigned) st->st_uid,
         (unsigned) st->st_gid, (uint64_t) st->st_nlink, (int64_t) st->st_size, (int64_t) st->st_blocks,
         (int64_t) st->st_blksize, (uint64_t) st->st_rdev, (uint64_t) st->st_ino, (int64_t) st->st_atim.tv_sec,
         st->st_atim.tv_nsec, (int64_t) st->st_mtim.tv_sec, st->st_mtim.tv_nsec, (int64_t) st->st_ctim.tv_sec, st->st_ctim.tv_nsec);
  if (e->target != NULL) {
    printf(",\"target\":");
    hex(e->target, e->target_len);
  }
  if (S_ISDIR(st->st_mode)) {
    printf(",\"children\":[");
    for (uint32_t k = 0; k < e->child_count; k++) {
      lf_entry_t c;
      uint32_t len = 0;
      const char *name = lf_index_entry(idx, e->child_first + k, &c) ? lf_index_child_name(e, &c, &len) : NULL;
      if (k > 0) putchar(',');
      if (name != NULL) hex(name, len);
      else printf("null");
    }
    putchar(']');
  }
  char real[8192];
  if (lf_index_backing_path(idx, e, real, sizeof(real)) != NULL) {
    printf(",\"backing\":");
    hex(real, strlen(real));
  }
  printf("}\n");
}

static int script (lf_index_t *idx) {
  lf_upper_set_t *up = lf_upper_new();
  if (up == NULL) return 1;
  char line[16384], path[8192];
  while (fgets(line, sizeof(line), stdin) != NULL) {
    line[strcspn(line, "\n")] = '\0';
    char *cmd = strtok(line, " ");
    if (cmd == NULL) continue;
    if (strcmp(cmd, "set") == 0) {
      lf_upper_facts_t f = { (uint32_t) strtoul(strtok(NULL, " "), NULL, 10), strtoull(strtok(NULL, " "), NULL, 10) };
      size_t n = unhex(strtok(NULL, " "), path, sizeof(path));
      printf("{\"set\":%d}\n", lf_upper_set(up, path, n, &f));
    } else if (strcmp(cmd, "rm") == 0) {
      int subtree = atoi(strtok(NULL, " "));
      size_t n = unhex(strtok(NULL, " "), path, sizeof(path));
      lf_upper_remove(up, path, n, subtree);
      printf("{\"count\":%u}\n", lf_upper_count(up));
    } else if (strcmp(cmd, "root") == 0) {
      size_t n = unhex(strtok(NULL, " "), path, sizeof(path));
      printf("{\"root\":%d}\n", lf_upper_set_root(up, path, n));
    } else if (strcmp(cmd, "resolve") == 0) {
      unhex(strtok(NULL, " "), path, sizeof(path));
      lf_entry_t e;
      lf_upper_facts_t f;
      lf_answer_t a = lf_resolve(idx, up, path, &e, &f);
      static const char *names[] = { "defer", "found", "missing", "upper" };
      printf("{\"answer\":\"%s\"", names[a]);
      if (a == LF_FOUND) printf(",\"row\":%u,\"ino\":\"%" PRIu64 "\"", e.row, (uint64_t) e.st.st_ino);
      if (a == LF_UPPER) {
        printf(",\"flags\":%u,\"origin\":\"%" PRIu64 "\"", f.flags, f.origin_ino);
        struct stat st;
        int rc = (f.flags & LF_UPPER_OWN_STAT) ? lf_resolve_upper_lstat(up, path, &f, &st) : -1;
        if (f.flags & LF_UPPER_OWN_STAT) printf(",\"lstatRc\":%d", rc);
        if (rc == 0) printf(",\"lstatIno\":\"%" PRIu64 "\",\"lstatMode\":%u", (uint64_t) st.st_ino, (unsigned) st.st_mode);
      }
      printf("}\n");
    } else if (strcmp(cmd, "fh") == 0) {
      uint64_t fh = strtoull(strtok(NULL, " "), NULL, 16);
      printf("{\"js\":%" PRIu64 ",\"fd\":%d,\"write\":%s,\"native\":%s,\"upperIno\":%s}\n", (uint64_t) (fh & LF_FH_JS_MASK), lf_fh_fd(fh),
             (fh & LF_FH_WRITE) ? "true" : "false", (fh & LF_FH_NATIVE) ? "true" : "false", (fh & LF_FH_UPPER_INO) ? "true" : "false");
    } else if (strcmp(cmd, "pack") == 0) {
      uint64_t js = strtoull(strtok(NULL, " "), NULL, 10);
      int fd = atoi(strtok(NULL, " "));
      int w = atoi(strtok(NULL, " ")), nat = atoi(strtok(NULL, " ")), ui = atoi(strtok(NULL, " "));
      printf("{\"fh\":\"%" PRIx64 "\"}\n", (uint64_t) lf_fh_pack(js, fd, w, nat, ui));
    } else {
      printf("{\"error\":\"unknown command %s\"}\n", cmd);
    }
    fflush(stdout);
  }
  lf_upper_free(up);
  return 0;
}

int main (int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: formats-reader open|dump|script FILE [crc]\n");
    return 2;
  }
  char err[256] = "";
  lf_index_t *idx = NULL;
  unsigned flags = LF_INDEX_CHECK_ROOTS | (argc > 3 && strcmp(argv[3], "crc") == 0 ? LF_INDEX_VERIFY_CRC : 0);
  int r = lf_index_open_file(argv[2], flags, &idx, err, sizeof(err));
  if (strcmp(argv[1], "open") == 0) {
    printf("{\"ok\":%s,\"code\":%d,\"err\":\"%s\"}\n", r == 0 ? "true" : "false", r, err);
    lf_index_close(idx);
    return 0;
  }
  if (r != 0) {
    fprintf(stderr, "formats-reader: %s (%d)\n", err, r);
    return 1;
  }
  if (strcmp(argv[1], "dump") == 0) {
    for (uint32_t row = 0; row < lf_index_count(idx); row++) {
      lf_entry_t e;
      lf_index_entry(idx, row, &e);
      print_entry(idx, &e);
    }
    for (uint32_t l = 0; l < lf_index_root_count(idx); l++) {
      uint32_t len;
      const char *root = lf_index_root(idx, l, &len);
      printf("{\"root\":");
      hex(root, len);
      printf("}\n");
    }
  } else if (strcmp(argv[1], "script") == 0) {
    r = script(idx);
  }
  lf_index_close(idx);
  return r;
}
