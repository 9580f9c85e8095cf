#!/usr/bin/env bash
# How much concurrent `layerfs run --rm` serialise (issue 18, point 6): the wall time of
# one `run --rm sample true` (median of 3), then of N of them started at once (default 20),
# with the 1-minute load average before and after, and the machine's core count: on a
# shared machine a busy neighbour changes the figures, so they are printed with the load.
# Where a cgroup-v1 cpuacct hierarchy is writable, the CPU time the runs used (CLI, mount
# and monitor processes; they inherit the cgroup) is printed too: N runs cannot finish
# faster than N x that / cores, whatever the locking — the floor the N-at-once time is
# compared with.
#
#   sudo scripts/bench-parallel-run.sh [N]     (needs root, /dev/fuse, runc, umoci; uses dist/)
set -euo pipefail
N=${1:-20}
# LAYERFS_REPO=DIR measures another checkout's dist/ (e.g. main, for a before/after figure).
REPO=${LAYERFS_REPO:-$(cd "$(dirname "$0")/.." && pwd)}
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
CG=/sys/fs/cgroup/cpuacct/layerfs-bench-$$
cpu_ns() { if [ -d "$CG" ]; then cat "$CG/cpuacct.usage"; else echo 0; fi; }
if mkdir "$CG" 2>/dev/null; then
  echo $$ >"$CG/cgroup.procs"
  trap 'cleanup; echo $$ >/sys/fs/cgroup/cpuacct/cgroup.procs; rmdir "$CG" 2>/dev/null || true' EXIT
fi
load1() { cut -d' ' -f1 /proc/loadavg; }

singles=()
c0=$(cpu_ns)
for i in 1 2 3; do
  t0=$(now)
  "${LAYERFS[@]}" --root "$ROOT" run --rm sample true
  singles+=("$(echo "$(now) - $t0" | bc)")
done
one=$(printf '%s\n' "${singles[@]}" | sort -n | sed -n 2p)
cpu_one=$(echo "($(cpu_ns) - $c0) / 3 / 1000000000" | bc -l)

before=$(load1)
c0=$(cpu_ns)
t0=$(now)
pids=()
for i in $(seq 1 "$N"); do
  "${LAYERFS[@]}" --root "$ROOT" run --rm --name "par$i" sample true >"$WORK/out$i" 2>&1 &
  pids+=($!)
done
fails=0
for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
all=$(echo "$(now) - $t0" | bc)
cpu_all=$(echo "($(cpu_ns) - $c0) / 1000000000" | bc -l)
after=$(load1)
left=$(ls "$ROOT/containers" | wc -l)

printf 'cores: %s\n' "$(nproc)"
printf 'one run --rm (median of 3: %s): %.2f s\n' "${singles[*]}" "$one"
printf '%d run --rm at once: %.2f s (%.1f x one), %d failed, %d container folders left\n' "$N" "$all" "$(echo "$all / $one" | bc -l)" "$fails" "$left"
printf 'load average (1 min) before: %s, after: %s\n' "$before" "$after"
if [ -d "$CG" ]; then
  printf 'CPU per run alone: %.2f s; CPU of the %d at once: %.1f s, so on %s cores they need at least %.1f s\n' "$cpu_one" "$N" "$cpu_all" "$(nproc)" "$(echo "$cpu_all / $(nproc)" | bc -l)"
fi
[ "$fails" -eq 0 ] || { for i in $(seq 1 "$N"); do cat "$WORK/out$i"; done; exit 1; }
