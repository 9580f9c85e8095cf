// One mounted FUSE connection as the engine holds it: the device fd, the reader threads
// that hand requests to JS, the queues that answer off the JS thread, and its teardown.
#ifndef LAYERFS_DEVICE_H
#define LAYERFS_DEVICE_H

#include <node_api.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "copy-up-open.h"
#include "lookup.h"
#include "mount.h"
#include "node-flags.h"
#include "node-opens.h"
#include "work-queue.h"

// A request as read: 1 MiB of WRITE data (max_pages 256) + its headers fit, with room to
// spare. The kernel refuses reads into a buffer smaller than max_write + the headers.
#define LF_REQUEST_BUFFER (1024 * 1024 + 4096)
// Requests up to this size reach JS as a copy (cheaper than a finalizer); larger ones
// (WRITE data) as an external Buffer over the memory they were read into.
#define LF_SMALL_REQUEST (16 * 1024)
// Threads for READ replies from an fd (pread + writev).
#define LF_IO_THREADS 4

typedef struct lf_device {
  lf_mount_result mount;
  char *mountpoint;
  int wake_fd;                   // eventfd: written once to stop the reader threads
  int nreaders;
  pthread_t *readers;
  atomic_int readers_left;       // the last reader to leave because the kernel ended the connection reports it
  napi_threadsafe_function to_js;  // requests (and the end marker) to the JS callback
  napi_threadsafe_function settle; // settles promises of queued work (notifications)
  struct lf_js_reader *js_reader;  // readers == 0: requests read on the JS thread (js-loop.c)
  lf_work_queue io;              // READ replies from an fd
  lf_work_queue notify;          // notifications, in order
  int started;
  int closing;                   // JS thread only: unmount began; late replies are dropped
  int torn_down;
  napi_deferred unmount_done;    // pending unmount() promise, if any
  napi_async_work teardown_work;
  int detach_on_teardown;
  int has_cleanup_hook;
  struct lf_device *live_next;   // the list of live devices detached at process exit
  int no_detach;                 // attached to someone else's mount: teardown never detaches
  // A reader saw ENODEV: our superblock is gone from every namespace, so our device
  // number may already be another mount's (lf_unmount_own could take that for ours).
  atomic_int unmounted;
  lf_node_flags no_xattrs;       // nodes whose getxattr/listxattr js-loop.c answers itself
  uint64_t native_answers[2];    // GETXATTR, LISTXATTR js-loop.c answered (JS thread only)
  lf_node_opens opens;           // per-node backing ids, and lower files js-loop.c opens itself
  uint64_t dir_seq;              // the last directory handle js-loop.c made (LF_DIR_NATIVE + n)
  lf_node_flags js_dirs;         // of those, the ones JS adopted (a READDIR reached it)
  lf_copy_up_state copy_up;      // write opens of lower files copied up by js-loop.c
  napi_ref copied_up_cb;         // tells JS of each (copyUpConfigure), before anything else
  lf_lookups lookups;            // LOOKUPs in marked directories (lookup.h)
  napi_ref lookup_index;         // the index bytes lookups reads (JS's Buffer, kept alive)
  napi_ref looked_up_cb;         // tells JS of the nodes it made (lookupConfigure), before anything else
  int teardown_err;
  char teardown_msg[256];
} lf_device;

// What the queue threads hand back to the JS thread through dev->settle (engine-addon.c).
typedef struct lf_settle_item {
  enum { LF_SETTLE_NOTIFY, LF_SETTLE_WRITE, LF_SETTLE_COPY_UP } kind;
  void *job;
} lf_settle_item;

// Reader threads (device-loop.c). Starts `n` readers delivering through dev->to_js.
int lf_readers_start(lf_device *dev, int n);
// Stops and joins them (they leave poll() at once). Safe when none were started.
void lf_readers_stop(lf_device *dev);

#endif
