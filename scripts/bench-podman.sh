#!/usr/bin/env bash
# podman (Debian's 4.3, as root) with three overlay flavours, interleaved in one run:
#   layerfs         mount_program = this checkout's layerfs-overlay
#   fuse-overlayfs  mount_program = /usr/bin/fuse-overlayfs
#   overlay         the kernel's overlayfs (no mount program)
#   layerfs-spare   with BENCH_SPARE=1: layerfs-overlay with LAYERFS_OVERLAY_SPARE=1 (a
#                   pre-started mount process, native-notes/podman.md), its spares in
#                   $WORK/spare-xdg; replaces the kernel's overlay flavour
# Each flavour has its own store and config in a fresh /tmp/lfpb-XXXXXX (short on purpose:
# podman 4.3 waits 20 s per container when its run root path is ~50 characters or longer);
# neither /var/lib/containers/storage nor the machine's containers.conf is used.
# Image: the Debian-minbase-like image of scripts/make-minbase-image (no network).
# Measured, per round (ROUNDS, default 10), flavours in rotating order:
#   true   `podman run --rm IMAGE true`
#   files  `podman run --rm IMAGE sh -c …`: writes 2000 small files, reads every file of
#          /usr/share/doc and /etc (cat > /dev/null), lists the tree, copies up and deletes
#   bud    `buildah bud --isolation chroot` of a 3-RUN Dockerfile (write, delete, recreate)
# Prints the median and mean wall time per flavour and command, and the load average.
#
#   sudo scripts/bench-podman.sh [ROUNDS]    (needs root, /dev/fuse, podman, buildah, fuse-overlayfs, umoci; uses dist/)
#   sudo BENCH_USER=layerfs-rootless scripts/bench-podman.sh [ROUNDS]
#        rootless: podman and buildah run as that user (it needs /etc/subuid and /etc/subgid
#        ranges), in a private mount namespace whose /dev/fuse is a 0666 node of the same
#        device (as test/helpers/user-fuse-ns.ts does; nothing outside it changes)
#   sudo BENCH_SPARE=1 [BENCH_USER=…] [BENCH_SPARE_DELAY_MS=N] scripts/bench-podman.sh [ROUNDS]
#        layerfs-overlay cold, with spares, and fuse-overlayfs (no kernel overlay): a mount
#        process whose mount ended waits as the spare; with BENCH_SPARE_DELAY_MS, a fresh
#        spare also starts N ms after a mount is ready (LAYERFS_OVERLAY_SPARE_DELAY_MS)
set -euo pipefail
ROUNDS=${1:-10}
REPO=$(cd "$(dirname "$0")/.." && pwd)
[ -f "$REPO/dist/cli/layerfs-overlay" ] || (cd "$REPO" && npm run build >/dev/null)
WORK=$(mktemp -d /tmp/lfpb-XXXXXX)
FLAVOURS=(layerfs fuse-overlayfs overlay)
[ "${BENCH_SPARE:-}" = 1 ] && FLAVOURS=(layerfs fuse-overlayfs layerfs-spare)
declare -A SHORT=([layerfs]=lf [fuse-overlayfs]=fo [overlay]=ov [layerfs-spare]=ls)
declare -A PROGRAM=([layerfs]="$WORK/bin/layerfs-overlay" [fuse-overlayfs]=/usr/bin/fuse-overlayfs [overlay]= [layerfs-spare]="$WORK/bin/layerfs-overlay-spare")

BENCH_USER=${BENCH_USER:-}
HOLDER=
as_user() { # as_user ENV… -- CMD…: CMD as BENCH_USER in the FUSE namespace, or as root
  local env=()
  while [ "$1" != -- ]; do env+=("$1"); shift; done
  shift
  if [ -n "$BENCH_USER" ]; then
    nsenter -t "$HOLDER" -m -- env -i PATH="$PATH" HOME="$WORK/home" USER="$BENCH_USER" LOGNAME="$BENCH_USER" \
      XDG_RUNTIME_DIR="$WORK/xdg" "${env[@]}" setpriv --reuid="$BENCH_USER" --regid="$BENCH_USER" --clear-groups "$@"
  else
    env "${env[@]}" "$@"
  fi
}
tool() { # tool podman|buildah FLAVOUR ARGS…
  local cmd=$1 f=$2; shift 2
  local extra=()
  [ "$cmd" = podman ] && extra=(--tmpdir "$WORK/${SHORT[$f]}/tmp")
  as_user CONTAINERS_CONF="$WORK/containers.conf" CONTAINERS_STORAGE_CONF="$WORK/storage-$f.conf" TMPDIR="$WORK/tmp" -- \
    "$cmd" "${extra[@]}" "$@"
}
pod() { tool podman "$@"; }
cleanup() {
  set +e # every step, even after one fails (grep finding no mount is one)
  for f in "${FLAVOURS[@]}"; do pod "$f" rm -af -t 0 >/dev/null 2>&1; tool buildah "$f" rm -a >/dev/null 2>&1; done
  if [ -n "$BENCH_USER" ]; then
    for f in "${FLAVOURS[@]}"; do p=$(cat "$WORK/${SHORT[$f]}/tmp/pause.pid" 2>/dev/null) && [ -n "$p" ] && kill "$p" 2>/dev/null; done
    [ -n "$HOLDER" ] && kill "$HOLDER" 2>/dev/null
  fi
  # Spares wait with their own directory as cwd (src/cli/overlay-spare.ts).
  for p in /proc/[0-9]*; do
    case $(readlink "$p/cwd" 2>/dev/null) in "$WORK/spare-xdg/"*) kill "${p#/proc/}" 2>/dev/null ;; esac
  done
  awk -v w="$WORK/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/bin" "$WORK/tmp"
printf '#!/bin/sh\nLAYERFS_NODE="%s" exec "%s" "$@"\n' "$(command -v node)" "$REPO/dist/cli/layerfs-overlay" > "$WORK/bin/layerfs-overlay"
chmod 755 "$WORK/bin/layerfs-overlay"
mkdir -m 700 "$WORK/spare-xdg"
printf '#!/bin/sh\n%sLAYERFS_OVERLAY_SPARE=1 XDG_RUNTIME_DIR="%s" LAYERFS_NODE="%s" exec "%s" "$@"\n' "${BENCH_SPARE_DELAY_MS:+LAYERFS_OVERLAY_SPARE_DELAY_MS=$BENCH_SPARE_DELAY_MS }" "$WORK/spare-xdg" "$(command -v node)" "$REPO/dist/cli/layerfs-overlay" > "$WORK/bin/layerfs-overlay-spare"
chmod 755 "$WORK/bin/layerfs-overlay-spare"
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
    printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' "$WORK/${SHORT[$f]}/root" "$WORK/${SHORT[$f]}/run"
    [ -n "$BENCH_USER" ] && printf 'rootless_storage_path = "%s"\n' "$WORK/${SHORT[$f]}/root"
    printf '[storage.options.overlay]\nmountopt = "nodev"\n'
    [ -n "${PROGRAM[$f]}" ] && printf 'mount_program = "%s"\n' "${PROGRAM[$f]}"
  } > "$WORK/storage-$f.conf"
done

for f in "${FLAVOURS[@]}"; do mkdir -p "$WORK/${SHORT[$f]}/tmp"; done
echo "bench-podman: making the minbase image…" >&2
"$REPO/scripts/make-minbase-image" "$WORK/img" >/dev/null 2>&1
tar -C "$WORK/img/oci" -cf "$WORK/minbase-oci.tar" .
mkdir -p "$WORK/ctx"
cat > "$WORK/ctx/Dockerfile" <<'EOF'
FROM localhost/minbase:latest
RUN mkdir -p /app && echo one > /app/a.txt && seq 1 500 > /app/numbers.txt && echo more >> /etc/motd
RUN rm /app/a.txt && rm -rf /usr/share/doc && echo created > /app/new.txt
RUN rm -rf /app && mkdir /app && echo recreated > /app/again.txt && test ! -e /app/numbers.txt
EOF
if [ -n "$BENCH_USER" ]; then
  chmod 755 "$WORK"
  mkdir -p "$WORK/home" "$WORK/xdg" && chmod 700 "$WORK/xdg"
  chown -R "$BENCH_USER:" "$WORK"
  mkfifo "$WORK/holder-ready"
  unshare -m --propagation private sh -c "mknod -m 666 $WORK/fuse c 10 229 && mount --bind $WORK/fuse /dev/fuse && echo ready > $WORK/holder-ready && exec sleep 100000" &
  HOLDER=$!
  read -r _ < "$WORK/holder-ready"
fi
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
bud_one() { # bud_one FLAVOUR: appends the wall time of a 3-RUN build to T[FLAVOUR/bud]
  local f=$1 s e
  s=$(date +%s%N)
  tool buildah "$f" bud --isolation chroot -q -t localhost/built:latest "$WORK/ctx" >/dev/null
  e=$(date +%s%N)
  T[$f/bud]+="$(( (e - s) / 1000000 )) "
  tool buildah "$f" rmi -f localhost/built:latest >/dev/null 2>&1 || true
}
for r in $(seq 1 "$ROUNDS"); do
  echo "bench-podman: round $r/$ROUNDS" >&2
  for k in 0 1 2; do
    f=${FLAVOURS[$(( (r + k) % 3 ))]}
    run_one "$f" true true
    run_one "$f" files sh -c "$FILES"
    bud_one "$f"
  done
done

stats() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1; s+=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%7.0f %7.0f", m, s/NR}'; }
printf '%-16s %-6s %7s %7s   (ms, %d rounds, %s, load average %s)\n' flavour cmd median mean "$ROUNDS" "${BENCH_USER:-root}" "$(cut -d' ' -f1-3 /proc/loadavg)"
for f in "${FLAVOURS[@]}"; do
  for name in true files bud; do printf '%-16s %-6s %s\n' "$f" "$name" "$(echo "${T[$f/$name]}" | stats)"; done
done
if [ "${BENCH_SPARE:-}" = 1 ]; then
  # How many layerfs-spare mounts a spare served, and why the others started cold.
  logs=$(cat "$WORK/spare-xdg/layerfs/"overlay-*.log 2>/dev/null | grep ' serving ' || true)
  echo "layerfs-spare mounts served by a spare: $(grep -c '; by ' <<<"$logs" || true) of $(grep -c . <<<"$logs" || true)"
  # No spares.log when no mount started cold for a reason worth logging (pipefail).
  if [ -f "$WORK/spare-xdg/layerfs/spares.log" ]; then
    cut -d' ' -f2- "$WORK/spare-xdg/layerfs/spares.log" | sort | uniq -c | sort -rn | head -5 | sed 's/^/  cold because: /'
  fi
fi
left=$(awk -v w="$WORK/" 'index($5, w) == 1 && ($0 ~ / - fuse/ || $0 ~ / - overlay /)' /proc/self/mountinfo ${HOLDER:+/proc/$HOLDER/mountinfo} | wc -l)
echo "container mounts left: $left"
