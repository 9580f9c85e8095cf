/* Directory stamps for layerfs-overlay's index-cache name: see dir-stamps.c. */
#ifndef LAYERFS_DIR_STAMPS_H
#define LAYERFS_DIR_STAMPS_H

#include <stddef.h>

/* Walks `root`; on success *out (malloc'ed, the caller frees) holds the lines, *out_len
 * their length, and 0 is returned; else a positive errno. */
int lf_dir_stamps(const char *root, char **out, size_t *out_len);

#endif
