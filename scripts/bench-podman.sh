#!/usr/bin/env bash
# podman (Debian's 4.3, as root) with three overlay flavours, interleaved in one run:
#   layerfs         mount_program = this checkout's layerfs-overlay
#   fuse-overlayfs  mount_program = /usr/bin/fuse-overlayfs
#   overlay         the kernel's overlayfs (no mount program)
# Each flavour has its own store and config in a fresh /tmp/lfpb-XXXXXX (short on purpose:
# podman 4.3 waits 20 s per container when its run root path is ~50 characters or longer);
# neither /var/lib/containers/storage nor the machine's containers.conf is used.
# Image: the Debian-minbase-like image of scripts/make-minbase-image (no network).
# Measured, per round (ROUNDS, default 10), flavours in rotating order:
#   true   `podman run --rm IMAGE true`
#   files  `podman run --rm IMAGE sh -c …`: writes 2000 small files, reads every file of
#          /usr/share/doc and /etc (cat > /dev/null), lists the tree, copies up and deletes
# Prints the median and mean wall time per flavour and command.
#
#   sudo scripts/bench-podman.sh [ROUNDS]    (needs root, /dev/fuse, podman, fuse-overlayfs, umoci; uses dist/)
set -euo pipefail
ROUNDS=${1:-10}
REPO=$(cd "$(dirname "$0")/.." && pwd)
[ -f "$REPO/dist/cli/overlay-main.js" ] || (cd "$REPO" && npm run build >/dev/null)
WORK=$(mktemp -d /tmp/lfpb-XXXXXX)
FLAVOURS=(layerfs fuse-overlayfs overlay)
declare -A SHORT=([layerfs]=lf [fuse-overlayfs]=fo [overlay]=ov)
declare -A PROGRAM=([layerfs]="$WORK/bin/layerfs-overlay" [fuse-overlayfs]=/usr/bin/fuse-overlayfs [overlay]=)

pod() { # pod FLAVOUR ARGS…
  local f=$1; shift
  CONTAINERS_CONF="$WORK/containers.conf" CONTAINERS_STORAGE_CONF="$WORK/storage-$f.conf" TMPDIR="$WORK/tmp" \
    podman --tmpdir "$WORK/${SHORT[$f]}/tmp" "$@"
}
cleanup() {
  set +e # every step, even after one fails (grep finding no mount is one)
  for f in "${FLAVOURS[@]}"; do pod "$f" rm -af -t 0 >/dev/null 2>&1; done
  awk -v w="$WORK/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/bin" "$WORK/tmp"
printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$(command -v node)" "$REPO/dist/cli/overlay-main.js" > "$WORK/bin/layerfs-overlay"
chmod 755 "$WORK/bin/layerfs-overlay"
cap() { local n; n=$(bash -c "ulimit -H$1"); [ "$n" = unlimited ] && n=$2; [ "$n" -gt "$2" ] && n=$2; echo "$n"; }
cat > "$WORK/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$(cap n 65536):$(cap n 65536)", "nproc=$(cap u 4096):$(cap u 4096)"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$WORK/events.log"
image_copy_tmp_dir = "$WORK/tmp"
[network]
network_config_dir = "$WORK/net"
EOF
for f in "${FLAVOURS[@]}"; do
  {
    printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n[storage.options.overlay]\nmountopt = "nodev"\n' "$WORK/${SHORT[$f]}/root" "$WORK/${SHORT[$f]}/run"
    [ -n "${PROGRAM[$f]}" ] && printf 'mount_program = "%s"\n' "${PROGRAM[$f]}"
  } > "$WORK/storage-$f.conf"
done

echo "bench-podman: making the minbase image…" >&2
"$REPO/scripts/make-minbase-image" "$WORK/img" >/dev/null 2>&1
tar -C "$WORK/img/oci" -cf "$WORK/minbase-oci.tar" .
for f in "${FLAVOURS[@]}"; do
  id=$(pod "$f" pull -q "oci-archive:$WORK/minbase-oci.tar")
  pod "$f" tag "$id" localhost/minbase:latest
done

FILES='mkdir /tmp/w && i=0; while [ $i -lt 2000 ]; do echo "$i" > /tmp/w/f$i; i=$((i+1)); done;
find /usr/share/doc /etc -type f -exec cat {} + > /dev/null 2>&1;
find / -xdev | wc -l; for f in /etc/*.conf; do echo x >> "$f"; done; rm -rf /usr/share/doc; ls /tmp/w | wc -l'
declare -A T
run_one() { # run_one FLAVOUR NAME ARGS…: appends the wall time in ms to T[FLAVOUR/NAME]
  local f=$1 name=$2; shift 2
  local s e
  s=$(date +%s%N)
  pod "$f" run --rm --network none localhost/minbase:latest "$@" >/dev/null
  e=$(date +%s%N)
  T[$f/$name]+="$(( (e - s) / 1000000 )) "
}
for r in $(seq 1 "$ROUNDS"); do
  echo "bench-podman: round $r/$ROUNDS" >&2
  for k in 0 1 2; do
    f=${FLAVOURS[$(( (r + k) % 3 ))]}
    run_one "$f" true true
    run_one "$f" files sh -c "$FILES"
  done
done

stats() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1; s+=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%7.0f %7.0f", m, s/NR}'; }
printf '%-16s %-6s %7s %7s   (ms, %d rounds)\n' flavour cmd median mean "$ROUNDS"
for f in "${FLAVOURS[@]}"; do
  for name in true files; do printf '%-16s %-6s %s\n' "$f" "$name" "$(echo "${T[$f/$name]}" | stats)"; done
done
left=$(awk -v w="$WORK/" 'index($5, w) == 1 && ($0 ~ / - fuse/ || $0 ~ / - overlay /)' /proc/self/mountinfo | wc -l)
echo "container mounts left: $left"
