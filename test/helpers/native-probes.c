// Syscalls with exact arguments that no shell tool makes: xattr calls with a chosen
// buffer size, bursts of concurrent lstat(2) from many threads (which make libfuse
// start and stop worker threads), and cachestat(2), the only way to see whether a file's
// pages are still dirty (not yet on disk). Built by the test setup with the machine's gcc.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#ifndef __NR_cachestat
#define __NR_cachestat 451 /* the same number on every architecture (Linux 6.5) */
#endif

struct probe_cachestat_range { uint64_t off, len; };
struct probe_cachestat { uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted; };

static const char *name_of(int e) {
  const char *n = strerrorname_np(e);
  return n ? n : "E?";
}

static const char *burst_path;
static int burst_stats;

// Mount with attr_timeout=0 so that every lstat becomes a GETATTR request; unlike
// lookups, getattrs of one file are not serialized by the kernel's directory lock.
static void *burst_worker(void *arg) {
  (void) arg;
  struct stat st;
  for (int i = 0; i < burst_stats; i++) lstat(burst_path, &st);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc >= 5 && strcmp(argv[1], "getxattr") == 0) {
    size_t size = strtoul(argv[4], NULL, 10);
    char *buf = size ? malloc(size) : NULL;
    ssize_t r = getxattr(argv[2], argv[3], buf, size);
    if (r < 0) printf("err %s\n", name_of(errno)); else printf("ok %zd\n", r);
    return 0;
  }
  if (argc >= 4 && strcmp(argv[1], "listxattr") == 0) {
    size_t size = strtoul(argv[3], NULL, 10);
    char *buf = size ? malloc(size) : NULL;
    ssize_t r = listxattr(argv[2], buf, size);
    if (r < 0) printf("err %s\n", name_of(errno)); else printf("ok %zd\n", r);
    return 0;
  }
  if (argc >= 6 && strcmp(argv[1], "burst") == 0) {
    burst_path = argv[2];
    int threads = atoi(argv[3]), rounds = atoi(argv[4]);
    burst_stats = atoi(argv[5]);
    pthread_t *t = calloc(threads, sizeof(pthread_t));
    for (int r = 0; r < rounds; r++) {
      for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, burst_worker, (void *) (intptr_t) i);
      for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    }
    printf("ok\n");
    return 0;
  }
  if (argc >= 3 && strcmp(argv[1], "cachestat") == 0) {
    int fd = open(argv[2], O_RDONLY);
    if (fd < 0) { printf("err %s\n", name_of(errno)); return 0; }
    struct probe_cachestat_range range = { 0, 0 }; /* len 0: to the end of the file */
    struct probe_cachestat cs;
    if (syscall(__NR_cachestat, fd, &range, &cs, 0) < 0) printf("err %s\n", name_of(errno));
    else printf("ok cache %llu dirty %llu writeback %llu\n", (unsigned long long) cs.nr_cache,
                (unsigned long long) cs.nr_dirty, (unsigned long long) cs.nr_writeback);
    close(fd);
    return 0;
  }
  fprintf(stderr, "usage: native-probes getxattr PATH NAME SIZE | listxattr PATH SIZE | burst PATH THREADS ROUNDS STATS | cachestat PATH\n");
  return 2;
}
