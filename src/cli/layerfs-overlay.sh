#!/bin/sh
# layerfs-overlay: fuse-overlayfs's command line (containers-storage's mount_program,
# mount.fuse3 -t layerfs-overlay, mount -t fuse.layerfs), returning once the mount is ready.
#
# A shell, not node, on purpose: podman waits for its mount program to exit, and node cannot
# fork after mounting, so a node front end would cost a second node start-up per mount
# (~170 ms). This starts the one node process, the mount process (overlay-main.js beside
# this file's real path, or its bundle), detached in its own session, with the argv
# unchanged; that process parses it, writes notes and errors to this stderr, and on fd 3
# says "READY" (exit 0) or "EXIT <code>" (exit with it once fd 3 closes, i.e. once the
# process is gone). -f, -d, --version and --help run node in the foreground instead.
#
# node: $LAYERFS_NODE (scripts/install-bin pins the one that built dist/), else a `node`
# beside the name this was run by (npm -g links bins beside node), else node on PATH.
# Installed as dist/cli/layerfs-overlay by scripts/mark-bins.mjs (part of `npm run build`).

self=$0
while [ -L "$self" ]; do # npm -g runs this through a symlink: overlay-main.js is beside the target
  link=$(readlink "$self") || break
  case $link in
    /*) self=$link ;;
    *) self=${self%/*}/$link ;;
  esac
done
case $self in
  */*) dir=${self%/*} ;;
  *) dir=. ;;
esac
# The build's one-file bundle of the mount process (scripts/bundle-mount.mjs) starts faster.
entry=$dir/overlay-main.bundle.cjs
[ -f "$entry" ] || entry=$dir/overlay-main.js

# The mount process's node flags: MOUNT_PROCESS_NODE_FLAGS in src/fuse/mount-process.ts
# (the supervisor's launcher passes the same; keep the two alike).
flags=--max-semi-space-size=1
# Nor does it need NODE_EXTRA_CA_CERTS, which node parses at every start (~40 ms CPU):
# mountProcessEnv in src/fuse/mount-process.ts.
unset NODE_EXTRA_CA_CERTS

node=${LAYERFS_NODE:-}
if [ -z "$node" ]; then
  case $0 in */*) [ -x "${0%/*}/node" ] && node=${0%/*}/node ;; esac
fi
if [ -z "$node" ]; then
  node=$(command -v node) || {
    echo "layerfs: node not found on PATH" >&2
    echo "hint: set LAYERFS_NODE to the node that runs layerfs" >&2
    exit 1
  }
fi

skip=
for a in "$@"; do
  if [ -n "$skip" ]; then skip=; continue; fi
  case $a in
    -o) skip=1 ;; # its value is options, whatever it looks like
    -f | -d | -V | --version | -h | --help) exec "$node" $flags "$entry" "$@" ;;
  esac
done

# LAYERFS_OVERLAY_SPARE=1: a spare, a mount process started and loaded ahead by an earlier
# mount (src/cli/overlay-spare.ts), serves this one, saving node's start-up. Claimed by
# renaming its directory (one claimant wins), if it runs this build in these namespaces
# (its cwd is its directory while it waits: a live spare, not a stale directory). It reads
# the argv, environment, cwd and umask from /proc/$$, refuses (closes `reply` without
# TAKEN) a caller it cannot serve as a cold start would, and answers as fd 3 below, its
# notes and errors as "E LINE". Refused, or none to claim: the cold start below, at once.
# Builtins only, but the one mv (`-O` and `-ef` are dash's, bash's and busybox's test, not
# POSIX's: a shell without them fails the checks into the cold start).
if [ "${LAYERFS_OVERLAY_SPARE:-}" = 1 ]; then
  spares=${XDG_RUNTIME_DIR:-/run}/layerfs/spares
  case $spares in /*) ;; *) spares= ;; esac
  if [ -n "$spares" ] && [ -O "$spares" ]; then
    for d in "$spares"/s.*; do
      pid=${d##*.}
      [ "$d/entry" -ef "$entry" ] && [ "$d/node" -ef "$node" ] &&
        [ /proc/self/ns/user -ef "/proc/$pid/ns/user" ] && [ /proc/self/ns/mnt -ef "/proc/$pid/ns/mnt" ] &&
        [ "/proc/$pid/cwd" -ef "$d" ] || continue
      c=$spares/c.$$.$pid
      mv "$d" "$c" 2>/dev/null && [ "/proc/$pid/cwd" -ef "$c" ] || continue
      taken= code=
      { # `reply` opens at once (the spare holds it open) and ends when the spare does
        printf '%s %s\n' "$$" "$#" >&4
        while IFS= read -r line; do
          case $line in
            READY) exit 0 ;;
            TAKEN) taken=1 ;;
            'EXIT '*) code=${line#EXIT } ;;
            'E '*) printf '%s\n' "${line#E }" >&2 ;;
          esac
        done
      } <"$c/reply" 4<>"$c/req"
      [ -z "$taken" ] && break
      if [ -z "$code" ]; then
        echo "layerfs: the mount process ended before the mount was ready" >&2
        code=1
      fi
      exit "$code"
    done
  fi
fi

detach=
command -v setsid >/dev/null 2>&1 && detach=setsid
# The mount process keeps no end of this program's stdout (podman reads its mount
# program's output to the end); its stderr is this stderr until the mount is ready.
{ $detach "$node" $flags "$entry" --ready-fd 3 "$@" 3>&1 >/dev/null </dev/null & } | {
  code=
  while IFS= read -r line || [ -n "$line" ]; do
    case $line in
      READY) exit 0 ;;
      'EXIT '*) code=${line#EXIT } ;;
    esac
    line=
  done
  if [ -z "$code" ]; then
    echo "layerfs: the mount process ended before the mount was ready" >&2
    code=1
  fi
  exit "$code"
}
