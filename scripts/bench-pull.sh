#!/usr/bin/env bash
# Side-by-side timing: `layerfs pull` from a loopback distribution registry vs
# `skopeo copy docker://… oci:…` + `umoci unpack` of the same Debian bookworm minbase image,
# in one run. Not a test: it prints numbers and the ratio.
#
#   sudo scripts/bench-pull.sh [runs]        (default 5 runs each, alternating)
#
# Reuses the OCI image scripts/bench-load.sh builds (debootstrap minbase, cached under
# $BENCH_DIR, default /var/tmp/layerfs-bench); run that once first if it is missing.
set -euo pipefail
RUNS=${1:-5}
BENCH_DIR=${BENCH_DIR:-/var/tmp/layerfs-bench}
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$BENCH_DIR"
[ -f oci/index.json ] || { echo "no $BENCH_DIR/oci: run scripts/bench-load.sh once first" >&2; exit 1; }

# The layerfs CLI bundled from src/ with esbuild (never stale), as bench-load.sh does.
CLI="$REPO/node_modules/.cache/layerfs-bench/cli.mjs"
"$REPO/node_modules/.bin/esbuild" "$REPO/src/cli/main.ts" --bundle --platform=node --format=esm \
  --packages=external --target=node20 --log-level=error --outfile="$CLI"
LAYERFS=(node "$CLI")

# A registry on a free loopback port, its storage in a temp dir; stopped on exit.
PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
REG=$(mktemp -d)
cat >"$REG/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $REG/data
http:
  addr: 127.0.0.1:$PORT
EOF
/usr/bin/docker-registry serve "$REG/config.yml" >"$REG/log" 2>&1 &
REG_PID=$!
trap 'kill $REG_PID 2>/dev/null; rm -rf "$REG" "$BENCH_DIR/pull-store" "$BENCH_DIR/pull-oci" "$BENCH_DIR/pull-bundle"' EXIT
for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.05; done
REF="127.0.0.1:$PORT/minbase:bench"
skopeo copy --quiet --dest-tls-verify=false oci:oci:minbase "docker://$REF"

now() { date +%s.%N; }
declare -a T_LAYERFS T_SKOPEO
for i in $(seq 1 "$RUNS"); do
  rm -rf pull-store pull-oci pull-bundle; sync
  t0=$(now); "${LAYERFS[@]}" --root "$BENCH_DIR/pull-store" pull "$REF" >/dev/null; t1=$(now)
  T_LAYERFS+=("$(echo "$t1 - $t0" | bc)")
  rm -rf pull-store pull-oci pull-bundle; sync
  t0=$(now)
  skopeo copy --quiet --src-tls-verify=false "docker://$REF" oci:pull-oci:bench
  umoci unpack --image pull-oci:bench pull-bundle >/dev/null
  t1=$(now)
  T_SKOPEO+=("$(echo "$t1 - $t0" | bc)")
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ML=$(median "${T_LAYERFS[@]}")
MS=$(median "${T_SKOPEO[@]}")
echo "image: debian bookworm minbase from a loopback registry, $RUNS runs each"
echo "layerfs pull               : median ${ML}s  (${T_LAYERFS[*]})"
echo "skopeo copy + umoci unpack : median ${MS}s  (${T_SKOPEO[*]})"
echo "ratio layerfs/(skopeo+umoci): $(echo "scale=2; $ML / $MS" | bc)"
