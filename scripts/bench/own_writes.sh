#!/usr/bin/env bash
# What a process's own version costs (docs/performance.md, "Where the
# remaining cost is"): makes a small XFS image (reflink=1) on a loop device
# under a private mktemp directory, mounts a snapfs view of it with the
# snapfs of build/ci (or $SNAPFS), and runs scripts/bench/own_writes.cpp
# there --runs times (default 5), printing each metric's median in µs.
# Needs root; unmounts and detaches exactly what it made (trap).
#
#   scripts/bench/own_writes.sh [--runs N]
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
runs=5
while (($#)); do
  case $1 in
    --runs) runs=${2:?--runs needs a number}; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "own_writes.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "own_writes.sh: --runs takes a positive number" >&2; exit 2; }
((EUID == 0)) || { echo "own_writes.sh: needs root (loop device, mount)" >&2; exit 77; }
snapfs=${SNAPFS:-$repo/build/ci/mount/snapfs}
[[ -x $snapfs ]] || { echo "own_writes.sh: no snapfs at $snapfs (cmake --preset ci && cmake --build --preset ci, or set SNAPFS)" >&2; exit 1; }
command -v mkfs.xfs >/dev/null || { echo "own_writes.sh: needs mkfs.xfs (xfsprogs)" >&2; exit 1; }

work=$(mktemp -d /var/tmp/snapfs-own-writes.XXXXXX)
mounted_x=0 mounted_m=0
cleanup() {
  ((mounted_m)) && { "$snapfs" umount "$work/m" || umount -l "$work/m"; } || true
  ((mounted_x)) && umount "$work/x" || true
  rm -rf "$work"
}
trap cleanup EXIT
g++ -std=c++20 -O2 -Wall -Wextra -o "$work/own_writes" "$repo/scripts/bench/own_writes.cpp"
truncate -s 512M "$work/img"
mkfs.xfs -q -m reflink=1 "$work/img"
mkdir -p "$work/x" "$work/m"
mount -o loop "$work/img" "$work/x" && mounted_x=1
mkdir "$work/x/b"
echo hello >"$work/x/b/f"
echo hello >"$work/x/b/g"
"$snapfs" mount "$work/x/b" "$work/m" && mounted_m=1
echo "==> $runs runs, load $(cut -d' ' -f1 /proc/loadavg), $(uname -r)"
for ((i = 0; i < runs; ++i)); do "$work/own_writes" "$work/m"; done >"$work/out"
for k in $(cut -d' ' -f1 "$work/out" | sort -u); do
  mapfile -t vals < <(awk -v k="$k" '$1 == k {print $2}' "$work/out" | sort -g)
  printf '%-12s %8s us (median of %d)\n' "$k" "${vals[$(((${#vals[@]} - 1) / 2))]}" "${#vals[@]}"
done
