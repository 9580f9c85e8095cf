/* A small regular file's whole copy-up in one call: see copy-up-small.c. */
#ifndef LAYERFS_COPY_UP_SMALL_H
#define LAYERFS_COPY_UP_SMALL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* The most data bytes one call copies (the same bound as an inline copy_file_range). */
#define LF_COPY_UP_SMALL_MAX (64 * 1024)

typedef struct {
  const char *src;    /* the lower file */
  const char *tmp;    /* a fresh name in the work dir, created O_EXCL */
  const char *dest;   /* the upper name it is renamed to */
  const char *parent; /* dest's directory, whose atime/mtime are restored; NULL: leave them */
  uid_t uid;
  gid_t gid;
  mode_t perm;                 /* permission bits, set after the owner (chown clears set-id bits) */
  struct timespec times[2];    /* atime, mtime */
  const char *origin_name;     /* NULL: no origin xattr */
  const void *origin_value;
  size_t origin_len;
  int64_t size;                /* data bytes to copy, 0..LF_COPY_UP_SMALL_MAX */
  int reflink;                 /* try FICLONE first */
  int umask;                   /* the process umask, -1 unknown (then always fchmod) */
  int flush;                   /* fdatasync the data before the rename (a durable copy-up) */
} lf_copy_up_t;

typedef struct {
  int err;                /* positive errno, 0 on success */
  const char *syscall;    /* the call that failed */
  const char *path;       /* its path (one of the arguments' strings) */
  const char *path2;      /* rename's destination */
  int reflink_refused;    /* FICLONE said "not here" (EOPNOTSUPP, EXDEV, EINVAL) */
} lf_copy_up_result_t;

/* Copies up: build, then place. On any failure before the rename is done the temp file is
 * removed (an existing temp name, EEXIST, is left alone: it is not ours). */
void lf_copy_up_small(const lf_copy_up_t *a, lf_copy_up_result_t *res);

/* The temp file complete and closed — everything that nobody can see, which may wait for
 * the disk (the flush): the part a pool thread may do. */
void lf_copy_up_small_build(const lf_copy_up_t *a, lf_copy_up_result_t *res);

/* After a build: the rename into place and the parent's times restored — the part that
 * changes what the union shows, so it runs where the union's state is kept (the JS
 * thread), with nothing between it and the caller learning of it. */
void lf_copy_up_small_place(const lf_copy_up_t *a, lf_copy_up_result_t *res);

#endif
