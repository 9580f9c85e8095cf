#!/usr/bin/env bash
# containerd benchmark (issue 15): `ctr run --rm` start-to-exit, and 20 containers started at
# once (100 files written each), on three snapshotters of one containerd, interleaved:
#   layerfs          `layerfs snapshotter` (fuse3.layerfs-overlay mounts)
#   fuse-overlayfs   `layerfs snapshotter --mount-program fuse-overlayfs` (same helper
#                    path, same layout: only the FUSE program differs)
#   overlayfs        containerd's own kernel overlayfs snapshotter
# and the two ways a snapshotter can hand containerd a layerfs mount (native-notes/
# containerd-snapshotter.md): through mount.fuse3 (what layerfs does) or by launching
# the mount process itself from a resident process (what a bind-mount design would do).
#
#   sudo scripts/bench-containerd.sh [ROUNDS] [LOAD_ROUNDS]      (default 10 and 3)
#
# The image: scripts/make-minbase-image (a Debian-minbase-like rootfs from this host's own
# files, in three layers), built once under .cache/bench-containerd/. No network.
set -euo pipefail
ROUNDS=${1:-10}
LOAD_ROUNDS=${2:-3}
REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=$REPO/.cache/bench-containerd
[ -f "$REPO/dist/cli/main.js" ] || (cd "$REPO" && npx tsc -p tsconfig.json)
mkdir -p "$CACHE"

# --- the image --------------------------------------------------------------------
if [ ! -f "$CACHE/minbase.tar" ]; then
  echo "bench: building the minbase-like image (once)…" >&2
  "$REPO/scripts/make-minbase-image" "$CACHE"
fi
IMAGE=docker.io/library/minbase:latest

# --- containerd + two snapshotters in a temp dir ----------------------------------
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done
  { grep -o " $WORK[^ ]*" /proc/self/mountinfo || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/bin"
printf '#!/bin/sh\nLAYERFS_NODE="%s" exec "%s" "$@"\n' "$(command -v node)" "$REPO/dist/cli/layerfs-overlay" > "$WORK/bin/layerfs-overlay"
chmod 755 "$WORK/bin/layerfs-overlay"
export PATH=$WORK/bin:$PATH
cat > "$WORK/config.toml" <<EOF
version = 2
root = "$WORK/root"
state = "$WORK/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$WORK/containerd.sock"
[ttrpc]
  address = "$WORK/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$WORK/opt"
[proxy_plugins]
  [proxy_plugins.layerfs]
    type = "snapshot"
    address = "$WORK/layerfs.sock"
  [proxy_plugins.fuse-overlayfs]
    type = "snapshot"
    address = "$WORK/fuse-overlayfs.sock"
EOF
node "$REPO/dist/cli/main.js" snapshotter --root "$WORK/lf" --address "$WORK/layerfs.sock" > "$WORK/lf.log" 2>&1 & PIDS+=($!)
node "$REPO/dist/cli/main.js" snapshotter --root "$WORK/fo" --address "$WORK/fuse-overlayfs.sock" --mount-program fuse-overlayfs > "$WORK/fo.log" 2>&1 & PIDS+=($!)
for _ in $(seq 300); do [ -S "$WORK/layerfs.sock" ] && [ -S "$WORK/fuse-overlayfs.sock" ] && break; sleep 0.1; done
containerd --config "$WORK/config.toml" > "$WORK/containerd.log" 2>&1 & PIDS+=($!)
CTR=(ctr -a "$WORK/containerd.sock")
for _ in $(seq 100); do "${CTR[@]}" version >/dev/null 2>&1 && break; sleep 0.1; done
SYSTEMS=(layerfs fuse-overlayfs overlayfs)
"${CTR[@]}" images import --base-name docker.io/library/minbase --snapshotter layerfs "$CACHE/minbase.tar" >/dev/null
for s in "${SYSTEMS[@]}"; do "${CTR[@]}" run --rm --snapshotter "$s" "$IMAGE" "warm-$s" /bin/true; done

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.0f", m / 1e6}'; }

# --- ctr run --rm start-to-exit -------------------------------------------------------
declare -A RUN
for i in $(seq "$ROUNDS"); do
  for s in "${SYSTEMS[@]}"; do
    t0=$(now); "${CTR[@]}" run --rm --snapshotter "$s" "$IMAGE" "run-$s-$i" /bin/true; t1=$(now)
    RUN[$s]+="$((t1 - t0)) "
  done
done

# --- 20 containers at once, 100 files each ------------------------------------------
declare -A LOAD
script='i=0; while [ $i -lt 100 ]; do echo $i > /tmp/f$i; i=$((i+1)); done'
for i in $(seq "$LOAD_ROUNDS"); do
  for s in "${SYSTEMS[@]}"; do
    t0=$(now)
    pids=()
    for n in $(seq 20); do "${CTR[@]}" run --rm --snapshotter "$s" "$IMAGE" "load-$s-$i-$n" sh -c "$script" & pids+=($!); done
    fails=0; for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
    t1=$(now)
    [ "$fails" -eq 0 ] || echo "bench: $fails of 20 $s containers failed" >&2
    LOAD[$s]+="$((t1 - t0)) "
  done
done

# --- mount paths: mount.fuse3 -> layerfs-overlay vs a resident launcher ---------------
meta=$WORK/lf/snapshotter/metadata.json
lowers=$(node -e '
  const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).snapshots;
  const byName = Object.entries(m); const top = byName.find(([n]) => !byName.some(([, s]) => s.parent === n))[0];
  const out = []; for (let p = top; p; p = m[p].parent) out.push(process.argv[2] + "/" + m[p].id + "/fs");
  console.log(out.join(":"));' "$meta" "$WORK/lf/snapshotter/snapshots")
mkdir -p "$WORK/m" "$WORK/u" "$WORK/w"
HELPER=""
for i in $(seq "$ROUNDS"); do
  rm -rf "$WORK/u" "$WORK/w"; mkdir -p "$WORK/u" "$WORK/w"
  t0=$(now); mount.fuse3 layerfs "$WORK/m" -o "lowerdir=$lowers,upperdir=$WORK/u,workdir=$WORK/w" -t layerfs-overlay 2>/dev/null; t1=$(now)
  ls "$WORK/m" >/dev/null; umount "$WORK/m"; sleep 1.2
  HELPER+="$((t1 - t0)) "
done
RESIDENT=$(node --input-type=module -e '
  import { launchUnionMount } from "'"$REPO"'/dist/supervisor/mount-launcher.js";
  import { execFileSync } from "node:child_process";
  import { rmSync, mkdirSync } from "node:fs";
  const [lowers, work, rounds] = [process.argv[1], process.argv[2], Number(process.argv[3])];
  const out = [];
  for (let i = 0; i < rounds; i++) {
    rmSync(work + "/u", { recursive: true, force: true }); rmSync(work + "/w", { recursive: true, force: true });
    mkdirSync(work + "/u"); mkdirSync(work + "/w");
    const t0 = process.hrtime.bigint();
    await launchUnionMount({ mountpoint: work + "/m", lowerDirs: lowers.split(":"), upperDir: work + "/u", workDir: work + "/w", fsname: "layerfs" }, work + "/resident.log");
    out.push(Number(process.hrtime.bigint() - t0));
    execFileSync("umount", [work + "/m"]); await new Promise((r) => setTimeout(r, 1200));
  }
  console.log(out.join(" "));' "$lowers" "$WORK" "$ROUNDS")

files=$(find "$WORK/lf/snapshotter/snapshots" -mindepth 2 | wc -l)
echo
echo "containerd $(containerd --version | awk '{print $3}'), image: $(echo "$lowers" | tr ':' '\n' | wc -l) layers, ~$files paths; medians in ms"
printf '%-16s %22s %32s\n' system "ctr run --rm (x$ROUNDS)" "20 at once, 100 files (x$LOAD_ROUNDS)"
for s in "${SYSTEMS[@]}"; do
  printf '%-16s %22s %32s\n' "$s" "$(echo "${RUN[$s]}" | tr ' ' '\n' | grep . | median)" "$(echo "${LOAD[$s]}" | tr ' ' '\n' | grep . | median)"
done
echo
printf 'mount of the image with a writable layer: via mount.fuse3 -> layerfs-overlay %s ms, launched by a resident process %s ms (median of %s)\n' \
  "$(echo "$HELPER" | tr ' ' '\n' | grep . | median)" "$(echo "$RESIDENT" | tr ' ' '\n' | grep . | median)" "$ROUNDS"
