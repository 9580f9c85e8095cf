#!/usr/bin/env bash
# Side-by-side timing: `layerfs load` vs `umoci unpack` of the same Debian bookworm minbase
# image (made with debootstrap), on this machine, in one run. Not a test: it prints numbers.
#
#   sudo scripts/bench-load.sh [runs]        (default 5 runs each, alternating)
#
# Needs root, debootstrap, umoci and access to the Debian mirror the first time
# (the rootfs and the OCI image are cached under $BENCH_DIR, default /var/tmp/layerfs-bench).
set -euo pipefail
RUNS=${1:-5}
BENCH_DIR=${BENCH_DIR:-/var/tmp/layerfs-bench}
REPO=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$BENCH_DIR"
cd "$BENCH_DIR"

if [ ! -x rootfs/bin/sh ]; then
  echo "debootstrap --variant=minbase bookworm (once)…" >&2
  rm -rf rootfs
  debootstrap --variant=minbase bookworm rootfs >debootstrap.log 2>&1
fi

if [ ! -f oci/index.json ]; then
  echo "building the OCI image with umoci (once)…" >&2
  rm -rf oci bundle
  umoci init --layout oci
  umoci new --image oci:minbase
  umoci unpack --image oci:minbase bundle >/dev/null
  cp -a rootfs/. bundle/rootfs/
  umoci repack --image oci:minbase bundle
  rm -rf bundle
fi

# The layerfs CLI bundled from src/ with esbuild (what `npm run build` would produce, but
# never stale), or the store's test entry when the main CLI is not there.
CLI="$REPO/node_modules/.cache/layerfs-bench/cli.mjs"
ENTRY="$REPO/src/cli/main.ts"
[ -f "$ENTRY" ] || ENTRY="$REPO/test/store/cli-entry.ts"
"$REPO/node_modules/.bin/esbuild" "$ENTRY" --bundle --platform=node --format=esm \
  --packages=external --target=node20 --log-level=error --outfile="$CLI"
LAYERFS=(node "$CLI")

now() { date +%s.%N; }
declare -a T_LAYERFS T_UMOCI
for i in $(seq 1 "$RUNS"); do
  rm -rf store bundle; sync
  t0=$(now); "${LAYERFS[@]}" --root "$BENCH_DIR/store" load -i oci --name minbase >/dev/null; t1=$(now)
  T_LAYERFS+=("$(echo "$t1 - $t0" | bc)")
  rm -rf store bundle; sync
  t0=$(now); umoci unpack --image oci:minbase bundle >/dev/null; t1=$(now)
  T_UMOCI+=("$(echo "$t1 - $t0" | bc)")
done
rm -rf store bundle

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ML=$(median "${T_LAYERFS[@]}")
MU=$(median "${T_UMOCI[@]}")
SIZE=$(du -sh rootfs | cut -f1)
FILES=$(find rootfs | wc -l)
echo "image: debian bookworm minbase ($SIZE, $FILES paths), $RUNS runs each"
echo "layerfs load : median ${ML}s  (${T_LAYERFS[*]})"
echo "umoci unpack : median ${MU}s  (${T_UMOCI[*]})"
echo "ratio layerfs/umoci: $(echo "scale=2; $ML / $MU" | bc)"
