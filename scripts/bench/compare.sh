#!/usr/bin/env bash
# The mounted view, side by side (issue #5 item 1, docs/performance.md):
#   1. builds snapfs (Release) in build/bench-compare and the timing helper
#      scripts/bench/compare_ops.cpp; installs bindfs, mergerfs (and
#      python3-matplotlib for the plot) with apt-get if missing,
#   2. makes ONE XFS image (mkfs.xfs -m reflink=1, 8 GiB sparse) on a loop
#      device under a private mktemp directory and puts the data in it:
#      a 1 GiB random file, 1000 files of 4 KiB, the commit files
#      (4 KiB, 1 MiB, 64 MiB, 1 GiB) and a git tree of 20 000 files (15 000
#      when RLIMIT_NOFILE cannot be raised: see below),
#   3. mounts that same backing directory B with bindfs, mergerfs (one branch)
#      and snapfs (all with their default options), and snapfs a second time
#      with --durability fast (no fdatasync before publishing; bindfs and
#      mergerfs never sync at close either),
#   4. measures native (B itself) and each mount INTERLEAVED: every repetition
#      runs each metric on every target in turn (the order rotates with the
#      repetition), so load from other work spreads over all targets alike,
#   5. prints medians over the repetitions and ratios to native, writes
#      build/bench-compare/results/compare-<time>{,-raw}.csv and, when
#      matplotlib is there, compare-<time>.png,
#   6. unmounts and detaches exactly what it made, whatever happens (trap).
# Needs root (loop device, mount, drop_caches). Full run: 4-8 minutes, depending on load.
#
#   scripts/bench/compare.sh           native, bindfs, mergerfs, snapfs, snapfs-fast; 7 repetitions
#   scripts/bench/compare.sh --quick   native and snapfs only, smaller sizes (about 1 minute)
#
# Environment: SNAPFS_COMPARE_REPS (repetitions, default 7),
#              SNAPFS_COMPARE_OUT (results directory).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

quick=0
for a in "$@"; do
  case $a in
    --quick) quick=1 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown argument $a (try --help)" >&2; exit 2 ;;
  esac
done

if [[ $(id -u) -ne 0 ]]; then
  echo "compare.sh: needs root (loop device, mounts, drop_caches)" >&2
  exit 77
fi

reps=${SNAPFS_COMPARE_REPS:-7}
if ((quick)); then
  targets=(native snapfs)
  seq_mib=256; commit_sizes=(4K 1M 64M); tree_files=5000
  publish_n=200; small_n=500; stat_passes=4; orc_n=1000; rand_n=5000; commit_n=3
else
  # snapfs-fast: the same daemon with --durability fast (no fdatasync before a
  # publish), to show what the default durability costs next to bindfs/mergerfs,
  # which never sync on close.
  targets=(native bindfs mergerfs snapfs snapfs-fast)
  seq_mib=1024; commit_sizes=(4K 1M 64M 1G); tree_files=20000
  publish_n=500; small_n=1000; stat_passes=5; orc_n=2000; rand_n=10000; commit_n=5
fi

build=$repo/build/bench-compare
out=${SNAPFS_COMPARE_OUT:-$build/results}
py=/usr/bin/python3   # Debian's, where python3-matplotlib installs

# --- tools -----------------------------------------------------------------
need=()
command -v mkfs.xfs >/dev/null || need+=(xfsprogs)
command -v git >/dev/null || need+=(git)
[[ -x $py ]] || need+=(python3)
if ((!quick)); then
  command -v bindfs >/dev/null || need+=(bindfs)
  command -v mergerfs >/dev/null || need+=(mergerfs)
fi
if ((${#need[@]})); then
  echo "==> apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
plot=1
if ! "$py" -c 'import matplotlib' 2>/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-matplotlib >/dev/null 2>&1 || true
  "$py" -c 'import matplotlib' 2>/dev/null || plot=0
fi

echo "==> build (Release, build/bench-compare)"
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSNAPFS_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" --target snapfs -j "$(nproc)" >/dev/null
snapfs=$build/mount/snapfs
ops=$build/compare_ops
if [[ ! -x $ops || $repo/scripts/bench/compare_ops.cpp -nt $ops ]]; then
  g++ -std=c++20 -O2 -Wall -Wextra -o "$ops" "$repo/scripts/bench/compare_ops.cpp"
fi

# --- scratch filesystem, cleaned up by the trap ------------------------------
# cleanup() undoes exactly what we made: mounts below $work (FUSE ones first,
# deepest first) and the loop device backed by $work/xfs.img, found afresh so
# that an interruption between losetup and mount leaves nothing either.
work=$(mktemp -d /var/tmp/snapfs-compare.XXXXXX)
cleanup() {
  local rc=$?
  set +e
  trap - INT TERM
  local m l
  awk -v w="$work/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r |
    while IFS= read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
  for l in $(losetup -nO NAME -j "$work/xfs.img"); do losetup -d "$l"; done
  if awk -v w="$work/" 'index($2, w) == 1 {f=1} END {exit !f}' /proc/mounts; then
    echo "compare.sh: something is still mounted below $work; left in place" >&2
  else
    rm -rf "$work"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The snapfs daemon keeps an O_PATH descriptor per kernel inode it was asked
# about, and the kernel keeps inodes until memory pressure or drop_caches. A
# 20 000-file git tree needs ~20 000 of them at once, and with this machine's
# RLIMIT_NOFILE of 20000 (which the daemon inherits, and which root here may
# not raise: no CAP_SYS_RESOURCE) git status through snapfs failed with EMFILE
# ("Too many open files"). So: try to raise the limit; if it stays below
# 65536, the tree has 15 000 files instead of 20 000 (recorded in .info).
nofile_before=$(ulimit -n)
if ulimit -Hn "$(cat /proc/sys/fs/nr_open)" 2>/dev/null; then ulimit -Sn "$(ulimit -Hn)"; fi

truncate -s 8G "$work/xfs.img"      # sparse; 8G so an allocation group holds 1 GiB in one extent
mkfs.xfs -q -m reflink=1 "$work/xfs.img"
loop=$(losetup -f --show "$work/xfs.img")
mkdir -p "$work/xfs"
mount "$loop" "$work/xfs"
B=$work/xfs/data
mkdir -p "$B"
if ((tree_files > 15000)) && (($(ulimit -n) < 65536)); then tree_files=15000; fi

echo "==> data in $B (XFS on $loop)"
dd if=/dev/urandom of="$B/big" bs=1M count="$seq_mib" status=none
for s in "${commit_sizes[@]}"; do
  if [[ $s == 1G && $seq_mib -eq 1024 ]]; then
    cp --reflink=always "$B/big" "$B/c-$s"      # same 1 GiB of data, shared extents
  else
    head -c "$s" /dev/urandom >"$B/c-$s" 2>/dev/null || dd if=/dev/urandom of="$B/c-$s" bs="$s" count=1 status=none
  fi
done
mkdir "$B/small" "$B/pub" "$B/tree"
"$ops" mkfiles "$B/small" "$small_n" >/dev/null
"$ops" mktree "$B/tree" "$tree_files" >/dev/null
(
  cd "$B/tree"
  git init -q
  git add -A
  git -c user.name=bench -c user.email=bench@localhost commit -q -m tree
)
sync

declare -A dir
dir[native]=$B
for t in "${targets[@]}"; do
  [[ $t == native ]] && continue
  mkdir -p "$work/m/$t"
  dir[$t]=$work/m/$t
  case $t in
    bindfs) bindfs "$B" "${dir[$t]}" ;;
    mergerfs) mergerfs -o fsname=mergerfs-bench "$B" "${dir[$t]}" ;;
    snapfs) "$snapfs" mount "$B" "${dir[$t]}" ;;
    snapfs-fast) "$snapfs" mount --durability fast "$B" "${dir[$t]}" ;;
  esac
done
for t in "${targets[@]}"; do
  [[ -f ${dir[$t]}/big ]] || { echo "compare.sh: ${dir[$t]} does not show B" >&2; exit 1; }
done

# --- measurement ---------------------------------------------------------------
mkdir -p "$out"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
raw=$out/compare-$stamp-raw.csv
echo "metric,unit,better,target,rep,value" >"$raw"
record() { echo "$1,$2,$3,$4,$5,$6" >>"$raw"; }
now() { date +%s.%N; }
mibs() { awk -v b="$seq_mib" -v t0="$1" -v t1="$2" 'BEGIN {printf "%.1f", b / (t1 - t0)}'; }
secs() { awk -v t0="$1" -v t1="$2" 'BEGIN {printf "%.4f", t1 - t0}'; }
git_status() { git -C "$1/tree" -c safe.directory='*' status --porcelain >/dev/null; }

{
  echo "mode=$([[ $quick == 1 ]] && echo quick || echo full) reps=$reps targets=${targets[*]}"
  echo "date=$(date -u '+%F %T UTC') host=$(uname -r) cpus=$(nproc) load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "commit=$(git -C "$repo" rev-parse --short HEAD) dirty_paths=$(git -C "$repo" status --porcelain | wc -l)"
  echo "nofile_inherited=$nofile_before nofile_daemons=$(ulimit -n) tree_files=$tree_files"
  echo "bindfs=$(bindfs --version 2>/dev/null | head -1) mergerfs=$(mergerfs --version 2>/dev/null | head -1)"
} >"$out/compare-$stamp.info" 2>/dev/null || true
echo "==> run: ${targets[*]}, $reps repetitions, $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg)"
t_start=$(date +%s)

for ((r = 1; r <= reps; r++)); do
  # rotate the order of the targets with the repetition
  order=()
  for ((i = 0; i < ${#targets[@]}; i++)); do
    order+=("${targets[(i + r - 1) % ${#targets[@]}]}")
  done
  echo "    rep $r/$reps (${order[*]}), load $(cut -d' ' -f1 /proc/loadavg)"
  for t in "${order[@]}"; do
    d=${dir[$t]}
    # sequential read: cold (all caches dropped), then warm (a new open)
    sync; echo 3 >/proc/sys/vm/drop_caches
    t0=$(now); dd if="$d/big" of=/dev/null bs=1M status=none; t1=$(now)
    record seq_read_cold MiB/s higher "$t" "$r" "$(mibs "$t0" "$t1")"
    t0=$(now); dd if="$d/big" of=/dev/null bs=1M status=none; t1=$(now)
    record seq_read_warm MiB/s higher "$t" "$r" "$(mibs "$t0" "$t1")"
  done
  for t in "${order[@]}"; do
    d=${dir[$t]}
    rm -f "$B/w.dat"; sync
    t0=$(now); dd if=/dev/zero of="$d/w.dat" bs=1M count="$seq_mib" conv=fsync status=none; t1=$(now)
    record seq_write_fsync MiB/s higher "$t" "$r" "$(mibs "$t0" "$t1")"
    rm -f "$B/w.dat"
  done
  for t in "${order[@]}"; do
    record randread_4k IOPS higher "$t" "$r" "$("$ops" randread "${dir[$t]}/big" "$rand_n")"
  done
  for t in "${order[@]}"; do
    record open_read_close_4k us/op lower "$t" "$r" "$("$ops" orc "${dir[$t]}/small" "$small_n" "$orc_n")"
  done
  for t in "${order[@]}"; do
    mkdir "$B/pub/$t-$r"
    record publish_4k files/s higher "$t" "$r" "$("$ops" publish "${dir[$t]}/pub/$t-$r" "$publish_n")"
    rm -rf "${B:?}/pub/$t-$r"
  done
  for t in "${order[@]}"; do
    record stat_warm stats/s higher "$t" "$r" "$("$ops" stat "${dir[$t]}/small" "$small_n" "$stat_passes")"
  done
  sync
  for s in "${commit_sizes[@]}"; do
    for t in "${order[@]}"; do
      record "commit_$s" ms lower "$t" "$r" "$("$ops" commit "${dir[$t]}/c-$s" "$commit_n")"
    done
  done
  # Let the kernel forget the inodes of the metrics above (and with them the
  # snapfs daemons' descriptors, see RLIMIT_NOFILE above); each target's first,
  # untimed git status warms its own view again.
  sync; echo 2 >/proc/sys/vm/drop_caches
  for t in "${order[@]}"; do
    git_status "${dir[$t]}"                 # first run: refreshes the index for this view
    t0=$(now); git_status "${dir[$t]}"; t1=$(now)
    record git_status s lower "$t" "$r" "$(secs "$t0" "$t1")"
  done
done
t_end=$(date +%s)
echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg) measure_seconds=$((t_end - t_start))" >>"$out/compare-$stamp.info"
echo "==> measured in $((t_end - t_start)) s, load $(cut -d' ' -f1-3 /proc/loadavg)"

plot_arg=()
((plot)) && plot_arg=(--png "$out/compare-$stamp.png")
"$py" "$repo/scripts/bench/compare_report.py" "$raw" --csv "$out/compare-$stamp.csv" "${plot_arg[@]}"
((plot)) || echo "(no plot: python3-matplotlib is not installable here)"
echo "==> $out/compare-$stamp.csv, $raw$( ((plot)) && echo ", $out/compare-$stamp.png")"
