#!/usr/bin/env bash
# Load check for `layerfs run` (a benchmark that prints numbers, not a timed test):
# N containers of the sample image started at once (default 20), each writing 100 files
# into its own writable layer and exiting with --rm. Afterwards: every exit code 0, no
# container folder, no mount and no runc state left. Prints the wall time and the peak
# resident memory of the layerfs processes per container (the union mount process + the
# `run` process that monitors it), sampled every 100 ms.
#
#   sudo scripts/bench-run.sh [N]            (needs root, /dev/fuse, runc, umoci; uses dist/)
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

# Peak RSS (kB) of every process whose command line names this store root or one of its containers.
sample_rss() {
  local total=0 pid rss
  for pid in $(pgrep -f "$ROOT" || true); do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    total=$((total + ${rss:-0}))
  done
  echo "$total"
}
peak=0
( while :; do sample_rss; sleep 0.1; done ) >"$WORK/rss.log" &
SAMPLER=$!

start=$(date +%s.%N)
pids=()
for i in $(seq 1 "$N"); do
  "${LAYERFS[@]}" --root "$ROOT" run --rm --name "bench$i" sample \
    sh -c 'mkdir -p /root/out && i=0; while [ $i -lt 100 ]; do echo "file $i" > /root/out/f$i; i=$((i+1)); done; ls /root/out | wc -l' \
    >"$WORK/out.$i" 2>&1 &
  pids+=($!)
done
failed=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then failed=$((failed + 1)); echo "container $((i + 1)) failed: $(cat "$WORK/out.$((i + 1))")" >&2; fi
done
end=$(date +%s.%N)
kill "$SAMPLER" 2>/dev/null || true
wait "$SAMPLER" 2>/dev/null || true

wrong=0
for i in $(seq 1 "$N"); do [ "$(tr -d ' \n' <"$WORK/out.$i")" = 100 ] || wrong=$((wrong + 1)); done
peak=$(sort -n "$WORK/rss.log" | tail -1)
left_dirs=$(ls "$ROOT/containers" 2>/dev/null | wc -l)
left_mounts=$(grep -c " $ROOT/" /proc/self/mountinfo || true)
left_state=$(runc --root "$ROOT/runtime/runc" list -q 2>/dev/null | wc -l)

printf 'containers:            %d (failed: %d, wrong file count: %d)\n' "$N" "$failed" "$wrong"
printf 'wall time:             %.2f s\n' "$(echo "$end - $start" | bc)"
printf 'peak RSS, all:         %d MiB\n' "$((peak / 1024))"
printf 'peak RSS per container: %d MiB (union mount process + run process)\n' "$((peak / 1024 / N))"
printf 'left behind:           %d container folders, %d mounts, %d runc states\n' "$left_dirs" "$left_mounts" "$left_state"
[ "$failed" = 0 ] && [ "$wrong" = 0 ] && [ "$left_dirs" = 0 ] && [ "$left_mounts" = 0 ] && [ "$left_state" = 0 ]
