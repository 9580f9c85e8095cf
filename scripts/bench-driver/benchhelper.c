/*
 * The bench's client-side helper: a separate process from every FUSE server, so what it
 * times is the kernel + server round trip, not an in-process shortcut.
 *
 *   benchhelper stat LIST      lstat every path of LIST (one per line, relative to the cwd);
 *                              prints "found N missing M other K"
 *   benchhelper churn DIR N    create N small files in DIR, lstat each, unlink each
 *   benchhelper append LIST    open every path of LIST with O_APPEND and write one byte
 *                              (overlay copy-up of a lower file)
 * Exit status 0 unless a call failed in a way the workload does not expect.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int stat_list(const char *list) {
  FILE *f = fopen(list, "r");
  if (!f) { perror(list); return 2; }
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  long found = 0, missing = 0, other = 0;
  struct stat st;
  while ((n = getline(&line, &cap, f)) > 0) {
    if (line[n - 1] == '\n') line[--n] = 0;
    if (n == 0) continue;
    if (lstat(line, &st) == 0) found++;
    else if (errno == ENOENT) missing++;
    else { other++; if (other < 5) fprintf(stderr, "lstat %s: %s\n", line, strerror(errno)); }
  }
  free(line);
  fclose(f);
  printf("found %ld missing %ld other %ld\n", found, missing, other);
  return other ? 1 : 0;
}

static int churn(const char *dir, long count) {
  char path[4096];
  struct stat st;
  for (long i = 0; i < count; i++) {
    snprintf(path, sizeof path, "%s/churn-%06ld", dir, i);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) { perror(path); return 1; }
    if (write(fd, path, 16) != 16) { perror("write"); return 1; }
    close(fd);
  }
  for (long i = 0; i < count; i++) {
    snprintf(path, sizeof path, "%s/churn-%06ld", dir, i);
    if (lstat(path, &st) != 0 || st.st_size != 16) { fprintf(stderr, "lstat %s: bad\n", path); return 1; }
  }
  for (long i = 0; i < count; i++) {
    snprintf(path, sizeof path, "%s/churn-%06ld", dir, i);
    if (unlink(path) != 0) { perror(path); return 1; }
  }
  return 0;
}

static int append_list(const char *list) {
  FILE *f = fopen(list, "r");
  if (!f) { perror(list); return 2; }
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  int rc = 0;
  while ((n = getline(&line, &cap, f)) > 0) {
    if (line[n - 1] == '\n') line[--n] = 0;
    if (n == 0) continue;
    int fd = open(line, O_WRONLY | O_APPEND);
    if (fd < 0 || write(fd, "+", 1) != 1) { perror(line); rc = 1; }
    if (fd >= 0 && close(fd) != 0) { perror(line); rc = 1; }
  }
  free(line);
  fclose(f);
  return rc;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "stat") == 0) return stat_list(argv[2]);
  if (argc == 4 && strcmp(argv[1], "churn") == 0) return churn(argv[2], atol(argv[3]));
  if (argc == 3 && strcmp(argv[1], "append") == 0) return append_list(argv[2]);
  fprintf(stderr, "usage: benchhelper stat LIST | churn DIR N | append LIST\n");
  return 2;
}
