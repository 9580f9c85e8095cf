{
  "targets": [
    {
      # The layerfs FUSE engine's native side (src/engine/device.ts loads it). Only the
      # engine's own files and the lower-index reader (LOOKUP in C, lookup.c): upper-set.c
      # and resolve.c here belong to the patched fuse-native and layerfs_sys builds. copy-up-small.c is the union's small-file
      # copy-up (layerfs_sys), which the request loop runs too (copy-up-open.c).
      "target_name": "layerfs_engine",
      "sources": [
        "engine-addon.c", "mount.c", "mountinfo.c", "device-loop.c", "reply.c", "fd-reply.c",
        "passthrough.c", "notify.c", "work-queue.c", "js-loop.c", "node-flags.c", "node-opens.c",
        "copy-up-open.c", "lookup.c", "lower-index.c", "../../sys/native/copy-up-small.c"
      ],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2", "-pthread"],
      "ldflags": ["-pthread"],
      "defines": ["_GNU_SOURCE", "_FILE_OFFSET_BITS=64", "NAPI_VERSION=8"]
    }
  ]
}
