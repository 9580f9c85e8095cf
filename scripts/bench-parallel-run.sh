#!/usr/bin/env bash
# How much concurrent `layerfs run --rm` serialise (issue 18, point 6): the wall time of
# one `run --rm sample true` (median of 3), then of N of them started at once (default 20),
# with the 1-minute load average before and after, and the machine's core count: on a
# shared machine a busy neighbour changes the figures, so they are printed with the load.
#
#   sudo scripts/bench-parallel-run.sh [N]     (needs root, /dev/fuse, runc, umoci; uses dist/)
set -euo pipefail
N=${1:-20}
REPO=$(cd "$(dirname "$0")/.." && pwd)
LAYERFS=(node "$REPO/dist/cli/main.js")
[ -f "$REPO/dist/cli/main.js" ] || (cd "$REPO" && npx tsc -p tsconfig.json)
WORK=$(mktemp -d)
ROOT="$WORK/store"
cleanup() { "${LAYERFS[@]}" --root "$ROOT" ps --json >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

"$REPO/scripts/make-sample-image" "$WORK/oci" >/dev/null
"${LAYERFS[@]}" --root "$ROOT" load -i "$WORK/oci" --name sample >/dev/null
# First run builds the image's lower-index cache; not part of any figure.
"${LAYERFS[@]}" --root "$ROOT" run --rm sample true

now() { date +%s.%N; }
load1() { cut -d' ' -f1 /proc/loadavg; }

singles=()
for i in 1 2 3; do
  t0=$(now)
  "${LAYERFS[@]}" --root "$ROOT" run --rm sample true
  singles+=("$(echo "$(now) - $t0" | bc)")
done
one=$(printf '%s\n' "${singles[@]}" | sort -n | sed -n 2p)

before=$(load1)
t0=$(now)
pids=()
for i in $(seq 1 "$N"); do
  "${LAYERFS[@]}" --root "$ROOT" run --rm --name "par$i" sample true >"$WORK/out$i" 2>&1 &
  pids+=($!)
done
fails=0
for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
all=$(echo "$(now) - $t0" | bc)
after=$(load1)
left=$(ls "$ROOT/containers" | wc -l)

printf 'cores: %s\n' "$(nproc)"
printf 'one run --rm (median of 3: %s): %.2f s\n' "${singles[*]}" "$one"
printf '%d run --rm at once: %.2f s (%.1f x one), %d failed, %d container folders left\n' "$N" "$all" "$(echo "$all / $one" | bc -l)" "$fails" "$left"
printf 'load average (1 min) before: %s, after: %s\n' "$before" "$after"
[ "$fails" -eq 0 ] || { for i in $(seq 1 "$N"); do cat "$WORK/out$i"; done; exit 1; }
