// Writing replies and notifications to /dev/fuse: one writev per message, a
// fuse_out_header in front of the caller's parts.
#ifndef LAYERFS_REPLY_H
#define LAYERFS_REPLY_H

#include <stdint.h>
#include <sys/uio.h>

// The most parts a reply may carry after its header.
#define LF_REPLY_MAX_PARTS 64

// Writes the reply to request `unique`: `error` 0 with `parts` (the answer), or a negative
// errno alone (the kernel rejects an error reply that carries a body, so parts are dropped).
// Returns 0, or a negative errno. -ENOENT means the request is gone (interrupted, or its
// caller was killed): nobody waits for the answer, which is not an error.
int lf_reply(int fd, uint64_t unique, int32_t error, const struct iovec *parts, int nparts);

// Answers a request that could not be handed to JS (no memory) with ENOMEM, so its caller
// does not wait forever. `frame` is the request as read (its unique sits at offset 8).
void lf_reply_enomem(int fd, const void *frame, size_t len);

// Writes a notification (unique 0, error = the FUSE_NOTIFY_* code). Returns 0 or -errno.
int lf_notify(int fd, int32_t code, const struct iovec *parts, int nparts);

#endif
