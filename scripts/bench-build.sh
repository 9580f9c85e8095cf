#!/usr/bin/env bash
# Build benchmark (issue 13): `layerfs build` vs `buildah bud --layers` (overlay driver, once
# with fuse-overlayfs as mount_program and once on the kernel's overlayfs) on the same
# Dockerfile and context, interleaved, in one run. Not a test: it prints numbers.
#
#   sudo scripts/bench-build.sh [RUNS]        (default 3 rounds)
#
# The Dockerfile: FROM a Debian-minbase-like image (scripts/make-minbase-image; no network),
# three RUN steps writing thousands of files (one also deletes), two COPY steps (2,000 small
# files; 20 MB in 10 files). Each round, for each builder, from an empty store holding only
# the base image: a cold build; a fully cached rebuild; a rebuild after one file of the
# second COPY changed (only that COPY and the RUN above it should run again). Times are wall
# seconds of the build command; for layerfs the cached rebuild is also given in CPU seconds
# (user+sys of the `layerfs build` process) and split into start-up (`layerfs --help`) and
# the build itself. RUN steps use runc for both (buildah's default OCI isolation) and no network.
set -Eeuo pipefail
RUNS=${1:-3}
REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=$REPO/.cache/bench-build
LAYERFS=(node "$REPO/dist/cli/main.js")
[ -f "$REPO/dist/cli/main.js" ] || (cd "$REPO" && npx tsc -p tsconfig.json)
mkdir -p "$CACHE"
if [ ! -f "$CACHE/oci/index.json" ]; then
  echo "bench: building the minbase-like image (once)…" >&2
  "$REPO/scripts/make-minbase-image" "$CACHE" >/dev/null
fi

WORK=$(mktemp -d /var/tmp/layerfs-bench-build.XXXXXX)
cleanup() {
  { grep -o " $WORK[^ ]*" /proc/self/mountinfo || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "bench: failed at line $LINENO: $BASH_COMMAND" >&2; tail -n 20 "$WORK"/*.log "$WORK"/*.err >&2 2>/dev/null || true' ERR

# --- the context --------------------------------------------------------------------
CTX=$WORK/ctx
mkdir -p "$CTX/app" "$CTX/data"
for i in $(seq 1 2000); do printf 'app file %s\n' "$i" > "$CTX/app/f$i.txt"; done
for i in $(seq 1 10); do head -c 2000000 /dev/urandom > "$CTX/data/blob$i.bin"; done
cat > "$CTX/Dockerfile" <<'EOF'
FROM minbase
RUN mkdir -p /opt/a && cd /opt/a && for i in $(seq 1 3000); do echo "a $i" > f$i; done
COPY app/ /app/
RUN mkdir -p /opt/b && for i in $(seq 1 3000); do echo "b $i" > /opt/b/f$i; done && rm -f /opt/a/f1*
COPY data/ /data/
RUN for i in $(seq 1 2000); do cp /app/f$i.txt /opt/b/copy$i; done && cat /data/*.bin | md5sum > /data.md5
ENV BENCH=1
CMD ["/bin/sh"]
EOF
# Older than the two seconds after which layerfs trusts a file's stat (digest cache).
touch -d '-1 minute' "$CTX"/app/* "$CTX"/data/* "$CTX/Dockerfile"
sleep 0.1

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc; }
declare -A T

# --- layerfs ------------------------------------------------------------------------
lf_round() {
  local root=$WORK/lf-store t0 t1 cpu
  rm -rf "$root"
  "${LAYERFS[@]}" --root "$root" load -i "$CACHE/oci" --name minbase >/dev/null
  t0=$(now); "${LAYERFS[@]}" --root "$root" build --progress plain -t bench "$CTX" >"$WORK/lf-cold.log" 2>&1; t1=$(now)
  T[lf_cold]+="$(elapsed "$t0" "$t1") "
  t0=$(now)
  cpu=$( { /usr/bin/time -f '%U %S' "${LAYERFS[@]}" --root "$root" build --progress plain -t bench "$CTX" >"$WORK/lf-cached.log" 2>"$WORK/lf-cached.err"; } 2>&1; tail -1 "$WORK/lf-cached.err")
  t1=$(now)
  T[lf_cached]+="$(elapsed "$t0" "$t1") "
  T[lf_cached_cpu]+="$(echo "$cpu" | awk '{print $1 + $2}') "
  grep -c ' CACHED$' "$WORK/lf-cached.err" >"$WORK/lf-cached.count" || true
  echo "changed $(date +%s%N)" >> "$CTX/data/blob3.bin"
  t0=$(now); "${LAYERFS[@]}" --root "$root" build --progress plain -t bench "$CTX" >"$WORK/lf-edit.log" 2>&1; t1=$(now)
  T[lf_edit]+="$(elapsed "$t0" "$t1") "
  T[lf_edit_reran]="$(grep -c '^#[0-9]* MISS' "$WORK/lf-edit.log" || true)"
  T[lf_edit_first]="$(grep -m1 '^#[0-9]* MISS' "$WORK/lf-edit.log" || true)"
  rm -rf "$root"
}

# --- buildah ------------------------------------------------------------------------
bh_round() {
  local name=$1 opts=$2 root=$WORK/bh-$1 t0 t1
  local storage=(--root "$root/root" --runroot "$root/run" --storage-driver overlay)
  [ -n "$opts" ] && storage+=(--storage-opt "$opts")
  rm -rf "$root"
  # An explicit name: buildah cannot pull an oci: path with a dot or capitals in it.
  skopeo copy -q "oci:$CACHE/oci:latest" "containers-storage:[overlay@$root/root+$root/run${opts:+:$opts}]localhost/minbase:latest" >/dev/null
  # runc as for layerfs (buildah's default crun refuses this host's hybrid cgroups).
  local bud=(buildah "${storage[@]}" bud --runtime runc --layers --network none -q -t bench "$CTX")
  t0=$(now); "${bud[@]}" >"$WORK/bh-cold.log" 2>&1; t1=$(now)
  T[bh_${name}_cold]+="$(elapsed "$t0" "$t1") "
  t0=$(now); "${bud[@]}" >"$WORK/bh-cached.log" 2>&1; t1=$(now)
  T[bh_${name}_cached]+="$(elapsed "$t0" "$t1") "
  echo "changed $(date +%s%N)" >> "$CTX/data/blob3.bin"
  t0=$(now); "${bud[@]}" >"$WORK/bh-edit.log" 2>&1; t1=$(now)
  T[bh_${name}_edit]+="$(elapsed "$t0" "$t1") "
  buildah "${storage[@]}" rm -a >/dev/null 2>&1 || true
  buildah "${storage[@]}" rmi -a -f >/dev/null 2>&1 || true
  { grep -o " $root[^ ]*" /proc/self/mountinfo || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$root"
}

for r in $(seq 1 "$RUNS"); do
  echo "bench: round $r/$RUNS" >&2
  lf_round
  bh_round fuse overlay.mount_program=/usr/bin/fuse-overlayfs
  bh_round kernel ""
done

median() { printf '%s\n' $1 | sort -n | awk '{a[NR]=$1} END {printf "%.2f", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
startup=$( { /usr/bin/time -f '%U %S' "${LAYERFS[@]}" --help >/dev/null; } 2>&1 | awk '{print $1 + $2}')
fuse_cold=$(median "${T[bh_fuse_cold]}")
lf_cold=$(median "${T[lf_cold]}")
echo
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $RUNS rounds, medians (all values)"
echo
echo "| | layerfs build | buildah, overlay + fuse-overlayfs | buildah, kernel overlayfs |"
echo "|---|---|---|---|"
echo "| cold build | $lf_cold s | $fuse_cold s | $(median "${T[bh_kernel_cold]}") s |"
echo "| fully cached rebuild | $(median "${T[lf_cached]}") s | $(median "${T[bh_fuse_cached]}") s | $(median "${T[bh_kernel_cached]}") s |"
echo "| one file of the 2nd COPY changed | $(median "${T[lf_edit]}") s | $(median "${T[bh_fuse_edit]}") s | $(median "${T[bh_kernel_edit]}") s |"
echo
echo "layerfs / buildah-on-fuse-overlayfs, cold: $(echo "scale=2; $lf_cold / $fuse_cold" | bc)x"
echo "layerfs cached rebuild CPU (user+sys): $(median "${T[lf_cached_cpu]}") s, of which start-up (layerfs --help) $startup s; steps CACHED: $(cat "$WORK/lf-cached.count")"
echo "layerfs after the edit: $(echo "${T[lf_edit_reran]}") steps ran again, the first: ${T[lf_edit_first]}"
echo "raw: $(for k in "${!T[@]}"; do printf '%s=[%s] ' "$k" "${T[$k]}"; done)"
