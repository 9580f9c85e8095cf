// The other way to read requests: on the JS thread itself, woken by libuv's poll of the
// device fd, with no reader threads and no hop between threads (start(h, cb, 0)).
#ifndef LAYERFS_JS_LOOP_H
#define LAYERFS_JS_LOOP_H

#include <node_api.h>

#include "device.h"

// Starts polling dev's fd on env's loop and calling `cb` with each request (a Buffer), or
// with null once the kernel ended the connection. 0 or a positive errno.
int lf_js_reader_start(lf_device *dev, napi_env env, napi_value cb);
// Stops polling (JS thread only; the handle is closed asynchronously). Idempotent.
void lf_js_reader_stop(lf_device *dev);
// Answers OPEN `unique` of `nodeid` (the kernel's `flags`) as the loop answers a registered
// lower file's open, for JS, which has just registered it: 1 if answered, else 0 and the
// caller answers. Only while this loop reads requests (it alone answers such an open's
// READ and RELEASE). JS thread only.
int lf_js_answer_open(lf_device *dev, uint64_t unique, uint64_t nodeid, uint32_t flags);

// On the JS thread (dev->settle), a copy-up built on a queue thread (copy-up-open.h): placed,
// opened and answered, or its OPEN handed to JS. `env` NULL (the environment is going), or
// the device closing: only freed.
void lf_js_copy_up_built(napi_env env, lf_device *dev, lf_copy_up_pending *p);

#endif
