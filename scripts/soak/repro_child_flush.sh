#!/usr/bin/env bash
# Finding 1 of docs/reliability.md: after ftruncate or O_TRUNC, a FLUSH from
# *any* process (here a child's exec closing its inherited descriptor)
# publishes the writer's half-written snapshot. Needs root (FUSE mount).
# Usage: scripts/soak/repro_child_flush.sh [path/to/snapfs]
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
S=${1:-$ROOT/build/soak/mount/snapfs}
T=$(mktemp -d /var/tmp/snapfs-repro.XXXXXX)
D=""
cleanup() {
  findmnt -n --mountpoint "$T/m" >/dev/null 2>&1 && { "$S" umount "$T/m" 2>/dev/null || fusermount3 -uz "$T/m"; }
  [ -n "$D" ] && { kill "$D" 2>/dev/null; wait "$D" 2>/dev/null; }
  rm -rf "$T"
}
trap cleanup EXIT
g++ -O1 -std=c++20 -o "$T/repro" "$ROOT/scripts/soak/repro_child_flush.cpp" || exit 2
mkdir "$T/b" "$T/m"
"$S" mount -f "$T/b" "$T/m" >"$T/d.log" 2>&1 & D=$!
for _ in $(seq 200); do findmnt -n --mountpoint "$T/m" >/dev/null && break; sleep 0.05; done
for v in 0 1 2; do
  printf 'ORIGINAL-CONTENT-OF-F' >"$T/b/f"
  "$T/repro" "$T/m" "$T/b" "$v"
done
