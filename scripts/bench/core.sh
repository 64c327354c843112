#!/usr/bin/env bash
# One command for the core benchmark (docs/performance.md):
#   1. builds snapfs_bench_core (Release) in build/bench,
#   2. makes XFS (reflink=1), btrfs and ext4 on sparse loop images and a tmpfs,
#      all under one private temporary directory,
#   3. runs the benchmark on each, after checking that XFS and btrfs really
#      clone with reflinks (it aborts otherwise),
#   4. prints the table (median µs per operation, per size, per filesystem;
#      the overhead over a plain open()+close() of the same file; the
#      1GiB/4KiB ratio) and writes it as CSV,
#   5. unmounts and detaches everything it made, whatever happens (trap).
# Needs root (mount, losetup). Takes about 3-5 minutes.
#
# Environment:
#   SNAPFS_BENCH_OUT    output directory (default build/bench/results)
#   SNAPFS_BENCH_FS     which filesystems (default "xfs btrfs ext4 tmpfs")
#   SNAPFS_BENCH_SIZES  sizes (default 4K,64K,1M,16M,256M,1G)
#   SNAPFS_BENCH_SCATTER commits in the fragmentation run (default 1000; 0 = off)
#   SNAPFS_BENCH_SPLIT  repetitions of the Mmap::open cost split, for 4 KiB and
#                       (XFS, btrfs) the largest size (default 1000; 0 = off)
# Extra arguments go to the benchmark binary (e.g. --benchmark_filter=xfs/).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

if [[ $(id -u) -ne 0 ]]; then
  echo "core.sh: needs root for loop mounts" >&2
  exit 77
fi

out=${SNAPFS_BENCH_OUT:-$repo/build/bench/results}
filesystems=${SNAPFS_BENCH_FS:-xfs btrfs ext4 tmpfs}
sizes=${SNAPFS_BENCH_SIZES:-4K,64K,1M,16M,256M,1G}
scatter=${SNAPFS_BENCH_SCATTER:-1000}
split=${SNAPFS_BENCH_SPLIT:-1000}

echo "==> build (Release, build/bench)"
cmake -S "$repo" -B "$repo/build/bench" -DCMAKE_BUILD_TYPE=Release \
  -DSNAPFS_BUILD_TESTS=OFF -DSNAPFS_BUILD_FUSE=OFF -DSNAPFS_BUILD_BENCH=ON >/dev/null
cmake --build "$repo/build/bench" --target snapfs_bench_core -j "$(nproc)" >/dev/null
bin=$repo/build/bench/scripts/bench/snapfs_bench_core

# Everything below lives in $work; cleanup() undoes exactly what we made and
# only that: mounts below $work and loop devices backed by images in $work,
# found afresh so that an interruption between losetup and mount leaves
# nothing either. Other people's mounts and loop devices are left alone.
work=$(mktemp -d /var/tmp/snapfs-bench.XXXXXX)
cleanup() {
  local rc=$?
  set +e
  local l
  # The benchmark runs in the background so that a signal reaches this trap
  # at once; stop it before taking its filesystems away.
  if [[ -n ${bench_pid:-} ]] && kill -0 "$bench_pid" 2>/dev/null; then
    kill "$bench_pid"
    wait "$bench_pid"
  fi
  awk -v w="$work/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r |
    while IFS= read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
  for l in $(losetup -nO NAME -j "$work/xfs.img"; losetup -nO NAME -j "$work/btrfs.img";
             losetup -nO NAME -j "$work/ext4.img"); do
    losetup -d "$l"
  done
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Sparse images of 8 GiB (they cost only what is written): a 1 GiB file plus
# the two copies a commit makes on ext4 (original, snapshot, clone being
# published) must fit, and on XFS the allocation groups (a quarter of the
# filesystem) must hold a 1 GiB file in one extent, as on any real-sized
# disk. With 4 GiB, the 1 GiB file had 4 extents and every FICLONE of it
# paid for each (docs/performance.md).
make_fs() {
  local fs=$1 mnt=$work/$1
  mkdir -p "$mnt"
  case $fs in
    tmpfs)
      # 4G, not 3G: a 1 GiB commit holds three 1 GiB copies at its peak.
      mount -t tmpfs -o size=4G,mode=0755 snapfs-bench "$mnt"
      return
      ;;
  esac
  truncate -s 8G "$work/$fs.img"
  case $fs in
    xfs) mkfs.xfs -q -m reflink=1 "$work/$fs.img" ;;
    btrfs) mkfs.btrfs -q "$work/$fs.img" >/dev/null ;;
    ext4) mkfs.ext4 -q -F "$work/$fs.img" ;;
    *) echo "core.sh: unknown filesystem $fs" >&2; return 1 ;;
  esac
  local loop
  loop=$(losetup -f --show "$work/$fs.img")
  mount "$loop" "$mnt"
}

echo "==> filesystems under $work"
fsargs=()
required=()
for fs in $filesystems; do
  make_fs "$fs"
  fsargs+=("--fs=$fs=$work/$fs")
  [[ $fs == xfs || $fs == btrfs ]] && required+=("$fs")
done
required_csv=$(IFS=,; echo "${required[*]:-}")

mkdir -p "$out"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
json=$out/core-$stamp.json
csv=$out/core-$stamp.csv
splitcsv=$out/core-$stamp-split.csv

echo "==> run ($(nproc) cpus, load: $(cut -d' ' -f1-3 /proc/loadavg)); page cache warm"
"$bin" "${fsargs[@]}" --require-reflink="$required_csv" --sizes="$sizes" \
  --split-reps="$split" --split-sizes="4K,${sizes##*,}" --split-out="$splitcsv" \
  --scatter-commits="$scatter" \
  --benchmark_out="$json" --benchmark_out_format=json \
  --benchmark_format=console --benchmark_counters_tabular=false "$@" >"$out/core-$stamp.log" &
bench_pid=$!
wait "$bench_pid"
bench_pid=

python3 "$repo/scripts/bench/report.py" "$json" "$csv" "$splitcsv"
echo "==> results: $csv (raw: $json, log: $out/core-$stamp.log)"
