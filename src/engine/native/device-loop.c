// The reader threads: each blocks in poll() on the device and an eventfd, reads one
// request into its own 1 MiB buffer, copies it into an exact-size allocation and hands
// that to JS through the thread-safe function (which wraps it as an external Buffer, no
// second copy). Several readers keep the kernel's queue drained while JS is busy; there is
// one JS thread, so more than a few buys nothing.
//
// Why poll() and a non-blocking fd: a thread blocked in read() on /dev/fuse cannot be woken
// except by a request or the end of the connection, and a lazily unmounted mount whose
// files are still open lives on. The eventfd lets unmount() stop the readers and close the
// device, which aborts the connection for good. Several readers waking for one request is
// harmless: the losers get EAGAIN and poll again.
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "device.h"
#include "reply.h"

typedef struct {
  lf_device *dev;
  int index;
} reader_arg;

static void *reader(void *p) {
  reader_arg arg = *(reader_arg *) p;
  free(p);
  lf_device *dev = arg.dev;
  char *buf = malloc(LF_REQUEST_BUFFER);
  int ended_by_kernel = 0;
  while (buf) {
    struct pollfd fds[2] = { { .fd = dev->mount.fd, .events = POLLIN }, { .fd = dev->wake_fd, .events = POLLIN } };
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents) break;  // unmount() is stopping us
    ssize_t n = read(dev->mount.fd, buf, LF_REQUEST_BUFFER);
    if (n < 0) {
      // EAGAIN: another reader took it. ENOENT: the request was interrupted before we read
      // it. EINTR: a signal.
      if (errno == EAGAIN || errno == EINTR || errno == ENOENT) continue;
      // ENODEV: unmounted and the connection ended. ECONNABORTED: aborted (FUSE_ABORT_ERROR).
      if (errno != ENODEV && errno != ECONNABORTED) fprintf(stderr, "layerfs engine: reading /dev/fuse: %s\n", strerror(errno));
      if (errno == ENODEV) atomic_store(&dev->unmounted, 1);
      ended_by_kernel = 1;
      break;
    }
    if (n == 0) {  // a socket standing in for the device (tests): the peer closed it
      ended_by_kernel = 1;
      break;
    }
    void *copy = malloc((size_t) n + sizeof(uint32_t));
    if (!copy) {
      lf_reply_enomem(dev->mount.fd, buf, (size_t) n);
      continue;
    }
    // The length travels in front so the JS side can wrap exactly these bytes.
    uint32_t len = (uint32_t) n;
    memcpy(copy, &len, sizeof len);
    memcpy((char *) copy + sizeof len, buf, (size_t) n);
    if (napi_call_threadsafe_function(dev->to_js, copy, napi_tsfn_blocking) != napi_ok) {
      free(copy);
      break;  // the function is closing: the device is being torn down
    }
  }
  free(buf);
  // The last reader out after the kernel ended the connection tells JS (NULL = end marker),
  // so the device tears itself down without an unmount() call.
  if (atomic_fetch_sub(&dev->readers_left, 1) == 1 && ended_by_kernel) {
    napi_call_threadsafe_function(dev->to_js, NULL, napi_tsfn_blocking);
  }
  return NULL;
}

int lf_readers_start(lf_device *dev, int n) {
  dev->readers = calloc((size_t) n, sizeof(pthread_t));
  if (!dev->readers) return ENOMEM;
  atomic_store(&dev->readers_left, n);
  for (int i = 0; i < n; i++) {
    reader_arg *arg = malloc(sizeof *arg);
    int err = arg ? 0 : ENOMEM;
    if (arg) {
      arg->dev = dev;
      arg->index = i;
      err = pthread_create(&dev->readers[i], NULL, reader, arg);
      if (err) free(arg);
    }
    if (err) {
      atomic_fetch_sub(&dev->readers_left, n - i);
      lf_readers_stop(dev);
      return err;
    }
    dev->nreaders++;
  }
  return 0;
}

void lf_readers_stop(lf_device *dev) {
  if (!dev->readers) return;
  uint64_t one = 1;
  ssize_t ignored = write(dev->wake_fd, &one, sizeof one);
  (void) ignored;
  for (int i = 0; i < dev->nreaders; i++) pthread_join(dev->readers[i], NULL);
  free(dev->readers);
  dev->readers = NULL;
  dev->nreaders = 0;
}
