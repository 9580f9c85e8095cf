{
  "targets": [
    {
      "target_name": "layerfs_sys",
      # lower-index.c: the lower-index cache reader shared with the FUSE engines (mapIndexCache).
      "sources": ["layerfs_sys.c", "dir-stamps.c", "copy-up-small.c", "../../engine/native/lower-index.c"],
      "include_dirs": ["../../engine/native"],
      "libraries": ["-lz"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"],
      "defines": ["_GNU_SOURCE", "_FILE_OFFSET_BITS=64", "NAPI_VERSION=8"]
    }
  ]
}
