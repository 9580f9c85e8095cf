# The script of test/mount/long-paths.test.ts, run by bash with MNT set to a mount's root.
#   long-paths.sh make-lower   (in a lower layer dir) builds ldeep/, a 4,095-byte path to a file
#   long-paths.sh              (at MNT) the transcript: deep paths made through the mount, and ldeep/
#   long-paths.sh check        (at MNT) what must still be there after a remount
set -u
exec 2>&1
shorten() { sed -E 's/[a-z0-9]{40,}/<name>/g'; }
say() { echo "$*" | shorten; }
try() { local out; out=$("$@" 2>&1); echo "$1 rc=$? $out" | shorten; }
# An engine with a known lag of a hard link's other names (known-differences.ts) waits it out.
settle() { [ -z "${ATTR_SETTLE:-}" ] || sleep "$ATTR_SETTLE"; }
comp() { printf 'd%02d' "$1"; head -c 197 /dev/zero | tr '\0' x; }
chain() { local r=$1; for i in $(seq 1 20); do r="$r/$(comp "$i")"; done; echo "$r"; }
# The name that brings relative path $1 plus "/" plus it to 4,095 bytes.
fill() { head -c $((4095 - ${#1} - 1)) /dev/zero | tr '\0' "$2"; }
LREL=$(chain ldeep)
LAST=$(fill "$LREL" g)
Q="$LREL/$LAST"
C1=$(comp 1)
QMOVED="ldeep/moved/${Q#ldeep/$C1/}"

if [ "${1:-}" = make-lower ]; then
  mkdir ldeep && cd ldeep || exit 9
  for i in $(seq 1 20); do mkdir "$(comp "$i")" && cd "$(comp "$i")" || exit 9; done
  echo 'lower deep' > "$LAST"
  exit 0
fi

if [ "${1:-}" = check ]; then
  try stat -c '%s %h %a %F' "$QMOVED"
  try cat "$QMOVED"
  try ls ldeep
  try ls "${QMOVED%/*}"
  exit 0
fi

cd low || exit 9
rel=low
for i in $(seq 1 20); do
  c=$(comp "$i")
  try mkdir "$c"
  cd "$c" || { say "cd $i failed"; break; }
  rel="$rel/$c"
done
# The last name brings the whole relative path to 4,095 bytes.
last=$(head -c $((4095 - ${#rel} - 1)) /dev/zero | tr '\0' f)
P="$rel/$last"
say "path length ${#P}"
try sh -c "echo hello > '$last'"
try stat -c '%s %h %a %F' "$last"
try cat "$last"
try sh -c "echo more >> '$last'"
try cat "$last"
try truncate -s 3 "$last"
try stat -c '%s' "$last"
try chmod 600 "$last"
try touch -d '2001-02-03 04:05:06' "$last"
try stat -c '%a %Y' "$last"
try ln "$last" hard
settle
try stat -c '%h' "$last" hard
try ln -s "$last" soft
try readlink soft
try cat soft
try stat -c '%F' soft
try mv hard hard2
try ls
try mkdir sub
try mv sub sub2
try mknod fifo p
try stat -c '%F' fifo
try rm fifo
try setfattr -n user.k -v v "$last"
try getfattr --absolute-names -n user.k --only-values "$last"
# From the mount root, through the whole 4,095-byte path (one byte under PATH_MAX).
cd "$MNT" || exit 9
try stat -c '%s %h %a' "$P"
try cat "$P"
try ln "$P" top-link
try stat -c '%s %h' top-link
try mv top-link "$rel/back"
settle
try stat -c '%h' "$P"
try mv "$P" "$rel/renamed"
try cat "$rel/renamed"
try mv "$rel/renamed" "$P"
try ls "$rel"
try rm "$rel/back"
# A directory high in the chain renamed with its deep subtree, and back.
c1=$(comp 1)
try mv "low/$c1" "low/moved"
try cat "low/moved/${P#low/$c1/}"
try mv "low/moved" "low/$c1"
# A path one byte too long from here: the kernel refuses it before any filesystem sees it.
try stat "$P"x
# A name of 256 bytes, in the deepest directory and at the top.
n256=$(head -c 256 /dev/zero | tr '\0' n)
cd "$rel" || exit 9
try mkdir "$n256"
try touch "$n256"
try touch "$(head -c 255 /dev/zero | tr '\0' n)"
try rm "$(head -c 255 /dev/zero | tr '\0' n)"
cd "$MNT" || exit 9
try mkdir "$n256"
# Removal, deepest first.
cd "$rel" || exit 9
try rm "$last" soft hard2
try rmdir sub2
try ls -A
for i in $(seq 20 -1 1); do
  cd .. || break
  try rmdir "$(comp "$i")"
done
cd "$MNT" || exit 9
try ls -A low
try cat low/file
# A 4,095-byte path that only a lower layer holds: read, copied up with its 20 parents,
# its top directory renamed with everything below.
try stat -c '%s %h %a %F' "$Q"
try cat "$Q"
try getfattr --absolute-names -d "$Q"
try sh -c "echo appended >> '$Q'"
try cat "$Q"
try stat -c '%s %h %a %F' "$Q"
try mv "ldeep/$C1" ldeep/moved
try cat "$QMOVED"
try ls ldeep
try stat "$Q"
