#!/usr/bin/env bash
# Sets up, builds and runs snapfs on a demo directory:
#   DIR/backing  the backing directory B (real files)
#   DIR/view     the snapfs view M of it, left mounted for you to try
# Usage: scripts/demo.sh [DIR]   (default /tmp/snapfs-demo; needs root)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
dir=$(realpath -m "${1:-/tmp/snapfs-demo}")
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" >/dev/null
snapfs=$PWD/build/release/mount/snapfs

b=$dir/backing
m=$dir/view
# A previous demo's mount of the same directory goes first.
if grep -q " $m fuse.snapfs " /proc/mounts; then "$snapfs" umount "$m"; fi
mkdir -p "$b" "$m"
printf 'version 1\n' >"$b/hello.txt"

"$snapfs" mount "$b" "$m"
echo "== mounted $b at $m"

exec 3<"$m/hello.txt"                     # a reader opens: it gets a snapshot
printf 'version 2, written through the view\n' >"$m/hello.txt"
echo "-- a new open sees the committed file:  $(cat "$m/hello.txt")"
echo "-- the backing file holds it too:       $(cat "$b/hello.txt")"
echo "-- the earlier reader still sees:       $(cat <&3)"
exec 3<&-

echo "== snapfs status $m"
"$snapfs" status "$m"
echo
echo "The view stays mounted. Try it, then: $snapfs umount $m"
