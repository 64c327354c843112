#!/usr/bin/env bash
# The mounted view, side by side (docs/performance.md):
#   1. builds snapfs (Release) in build/bench-compare and the timing helper
#      scripts/bench/compare_ops.cpp; installs bindfs, mergerfs, btrfs-progs
#      (and python3-matplotlib for the plot) with apt-get if missing, and
#      refuses with a message naming what is still missing,
#   2. makes ONE XFS image (mkfs.xfs -m reflink=1, 8 GiB sparse) on a loop
#      device under a private mktemp directory and puts the data in it:
#      a 1 GiB random file, 1000 files of 4 KiB, 10 000 files of 1 byte, the
#      commit files (4 KiB, 1 MiB, 64 MiB, 1 GiB) and a git tree of 20 000
#      small files (--tree-files), plus a btrfs image with the commit files
#      only (commit latency on btrfs, native and snapfs),
#   3. mounts that same backing directory B with bindfs, mergerfs (one branch)
#      and snapfs (all with their default options), and snapfs a second time
#      with --durability fast (no fdatasync before publishing; bindfs and
#      mergerfs never sync at close either),
#   4. measures native (B itself) and each mount INTERLEAVED: every repetition
#      runs each metric on every target in turn (the order rotates with the
#      repetition), so load from other work spreads over all targets alike:
#      seq read cold/warm, seq write+fsync, 4K random reads, open+read+close
#      (one cold pass after dropping the caches, then warm passes, timed apart),
#      small-file publish, stat, commit latency against size (XFS, and btrfs
#      for native and snapfs), 10 000 files held open at once, git status;
#   5. then, in each target, a real build: this repository's sources (git
#      archive HEAD) copied into the target, configured there once
#      (CMAKE_BUILD_TYPE empty, i.e. -O0 without -g; no tests, no benchmarks),
#      and per build repetition a timed `cmake --build build -j2 --target
#      snapfs_core snapfs` after a `clean`, and a no-op rebuild (median of 3);
#   6. then, once, the snapfs daemon's RSS (/proc/PID/status VmRSS) across
#      --cycles open+close cycles of one file: at the start, every tenth and
#      at the end,
#   7. prints medians over the repetitions, ratios to native and the
#      targets of docs/performance.md, "Targets" (met/missed), writes
#      build/bench-compare/results/
#      compare-<time>{.csv,-raw.csv,-rss.csv,.info} and, with matplotlib, .png,
#   8. unmounts and detaches exactly what it made, whatever happens (trap).
# With --base REV it also builds snapfs at git revision REV (Release, the
# snapfs target only) in a git worktree, build/bench-compare/base-<short id>,
# mounts B with that binary too (target snapfs-base: default options) and
# measures it interleaved with the others; the report adds a "snapfs/base"
# column. The trap removes that worktree (and the build in it) at exit.
# Needs root (loop devices, mount, drop_caches). Full run: 16-19 minutes on
# 2 busy CPUs (load 3-8), about 25 with --base; --quick: about 2.
#
#   scripts/bench/compare.sh                  native, bindfs, mergerfs, snapfs, snapfs-fast
#   scripts/bench/compare.sh --quick          native and snapfs only, smaller sizes, 3 repetitions,
#                                             1 build, 100 000 cycles
#   scripts/bench/compare.sh --only snapfs    these targets (comma-separated; native is always
#                                             measured) at the full sizes
#   scripts/bench/compare.sh --base d784773   also snapfs built at that revision (target
#                                             snapfs-base), interleaved: an A/B in one run
# Options (any mode):
#   --base REV        also measure snapfs as built at git revision REV (target snapfs-base;
#                     combines with --quick and --only)
#   --cycles N        open+close cycles for the RSS check (default 1000000; quick 100000)
#   --tree-files N    files in the git status tree (default 20000; quick 5000)
#   --build-reps N    real-build repetitions (default 2; quick 1)
#   --skip LIST       leave out phases: build, btrfs, rss, hold (comma-separated)
# Environment: SNAPFS_COMPARE_REPS (repetitions, default 7; quick 3),
#              SNAPFS_COMPARE_OUT (results directory).
# The snapfs target is built from the working tree as it is (uncommitted
# changes included; .info records how many paths differ from HEAD). To
# measure a commit exactly, run the script from a git worktree of it.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

usage() { awk 'NR > 1 { if (!/^#/) exit; print }' "$0"; }
die_usage() { echo "compare.sh: $*  (try --help)" >&2; exit 2; }
posint() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die_usage "$1 needs a positive integer, not '$2'"; }

all_args=$*
quick=0 only="" cycles="" tree_files="" build_reps="" skip="" base=""
while (($#)); do
  a=$1; shift
  val=""
  case $a in
    --*=*) val=${a#*=}; a=${a%%=*} ;;
    --only|--cycles|--tree-files|--build-reps|--skip|--base)
      (($#)) || die_usage "$a needs a value"
      val=$1; shift ;;
  esac
  case $a in
    --quick) quick=1 ;;
    --only) only=$val ;;
    --cycles) posint "$a" "$val"; cycles=$val ;;
    --tree-files) posint "$a" "$val"; tree_files=$val ;;
    --build-reps) posint "$a" "$val"; build_reps=$val ;;
    --skip) skip=$val ;;
    --base) base=$val ;;
    -h|--help) usage; exit 0 ;;
    *) die_usage "unknown argument $a" ;;
  esac
done
for p in ${skip//,/ }; do
  [[ $p =~ ^(build|btrfs|rss|hold)$ ]] || die_usage "--skip: unknown phase '$p' (build, btrfs, rss, hold)"
done
skipped() { [[ ,$skip, == *,$1,* ]]; }
if [[ -n $base ]]; then
  base_sha=$(git -C "$repo" rev-parse -q --verify "$base^{commit}" 2>/dev/null) ||
    die_usage "--base: '$base' is not a commit of $repo"
  base_short=$(git -C "$repo" rev-parse --short=7 "$base_sha")
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "compare.sh: needs root (loop devices, mounts, drop_caches)" >&2
  exit 77
fi

if ((quick)); then
  reps=${SNAPFS_COMPARE_REPS:-3}
  targets=(native snapfs)
  seq_mib=256; commit_sizes=(4K 1M 64M); : "${tree_files:=5000}"
  publish_n=200; small_n=500; stat_passes=4; orc_n=1000; rand_n=5000; commit_n=3
  : "${cycles:=100000}" "${build_reps:=1}"
else
  reps=${SNAPFS_COMPARE_REPS:-7}
  # snapfs-fast: the same daemon with --durability fast (no fdatasync before a
  # publish), to show what the default durability costs next to bindfs/mergerfs,
  # which never sync on close.
  targets=(native bindfs mergerfs snapfs snapfs-fast)
  seq_mib=1024; commit_sizes=(4K 1M 64M 1G); : "${tree_files:=20000}"
  publish_n=500; small_n=1000; stat_passes=5; orc_n=2000; rand_n=10000; commit_n=5
  : "${cycles:=1000000}" "${build_reps:=2}"
fi
if [[ -n $only ]]; then
  targets=(native)
  for t in ${only//,/ }; do
    [[ $t =~ ^(bindfs|mergerfs|snapfs|snapfs-fast)$ ]] ||
      die_usage "--only: unknown target '$t' (bindfs, mergerfs, snapfs, snapfs-fast; --base adds snapfs-base)"
    [[ " ${targets[*]} " == *" $t "* ]] || targets+=("$t")
  done
fi
[[ -z $base ]] || targets+=(snapfs-base)
has() { [[ " ${targets[*]} " == *" $1 "* ]]; }
hold_n=10000

build=$repo/build/bench-compare
out=${SNAPFS_COMPARE_OUT:-$build/results}
py=/usr/bin/python3   # Debian's, where python3-matplotlib installs

# --- prerequisites ---------------------------------------------------------
# cmd:package pairs; apt-get installs what is missing, then everything is
# checked again and the run refuses, naming what is still missing.
prereq=(mkfs.xfs:xfsprogs losetup:mount git:git cmake:cmake g++:g++ make:make
        fusermount3:fuse3 "$py":python3)
has bindfs && prereq+=(bindfs:bindfs)
has mergerfs && prereq+=(mergerfs:mergerfs)
skipped btrfs || prereq+=(mkfs.btrfs:btrfs-progs)
missing() {
  local p
  for p in "${prereq[@]}"; do command -v "${p%%:*}" >/dev/null || echo "${p#*:}"; done
}
need=($(missing))
if ((${#need[@]})); then
  echo "==> apt-get install ${need[*]}"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; } >/dev/null 2>&1 || true
  need=($(missing))
  if ((${#need[@]})); then
    echo "compare.sh: missing prerequisites (not installable here): ${need[*]}" >&2
    exit 1
  fi
fi
[[ -e /dev/fuse ]] || { echo "compare.sh: /dev/fuse is missing" >&2; exit 1; }
[[ -w /proc/sys/vm/drop_caches ]] || { echo "compare.sh: cannot write /proc/sys/vm/drop_caches" >&2; exit 1; }
if ! skipped build && ! git -C "$repo" rev-parse -q --verify HEAD >/dev/null; then
  echo "compare.sh: the real build copies 'git archive HEAD' of $repo, which is not a git work tree" >&2
  exit 1
fi
plot=1
if ! "$py" -c 'import matplotlib' 2>/dev/null; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-matplotlib; } >/dev/null 2>&1 || true
  "$py" -c 'import matplotlib' 2>/dev/null || plot=0
fi

echo "==> build (Release, build/bench-compare)"
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSNAPFS_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" --target snapfs -j2 >/dev/null
snapfs=$build/mount/snapfs
ops=$build/compare_ops
if [[ ! -x $ops || $repo/scripts/bench/compare_ops.cpp -nt $ops ]]; then
  g++ -std=c++20 -O2 -Wall -Wextra -o "$ops" "$repo/scripts/bench/compare_ops.cpp"
fi

# --- scratch filesystems, cleaned up by the trap -----------------------------
# cleanup() undoes exactly what we made: mounts below $work (FUSE ones first,
# deepest first; their daemons exit with the unmount) and the loop devices
# backed by $work/xfs.img and $work/btrfs.img, found afresh so that an
# interruption between losetup and mount leaves nothing either. Nothing
# outside $work is touched.
made_wt=0
work=$(mktemp -d /var/tmp/snapfs-compare.XXXXXX)
# A daemon is the `snapfs mount` process itself, forked (no exec): its
# /proc/PID/exe is the snapfs binary that was mounted with.
is_our_snapfs() {  # is_our_snapfs EXE: one of the snapfs binaries this run mounts with
  [[ $1 == "${snapfs:-/nonexistent}" || $1 == "${snapfs_base:-/nonexistent}" ]]
}
our_daemons() {  # pids of the snapfs daemons serving a mount point below $work
  local p
  for p in /proc/[0-9]*; do
    is_our_snapfs "$(readlink "$p/exe" 2>/dev/null)" || continue
    tr '\0' '\n' <"$p/cmdline" 2>/dev/null | grep -q "^$work/" && echo "${p#/proc/}"
  done
  return 0
}
cleanup() {
  local rc=$?
  set +e
  trap - INT TERM
  local m l i
  cd /
  # A long job (build, cycles) runs in its own process group: stop all of it,
  # and let it go, before taking its filesystem away.
  if [[ -n ${job_pid:-} ]]; then
    kill -- -"$job_pid" 2>/dev/null
    for ((i = 0; i < 100; i++)); do kill -0 -- -"$job_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  # FUSE mounts first (their daemons exit with the unmount and then let go of
  # the backing filesystem), then the rest, deepest first.
  awk -v w="$work/" 'index($2, w) == 1 && $3 ~ /^fuse/ {print $2}' /proc/mounts | sort -r |
    while IFS= read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
  for ((i = 0; i < 100; i++)); do [[ -z $(our_daemons) ]] && break; sleep 0.1; done
  awk -v w="$work/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r |
    while IFS= read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
  for l in $(losetup -nO NAME -j "$work/xfs.img"; losetup -nO NAME -j "$work/btrfs.img"); do
    losetup -d "$l"
  done
  if awk -v w="$work/" 'index($2, w) == 1 {f=1} END {exit !f}' /proc/mounts; then
    echo "compare.sh: something is still mounted below $work; left in place" >&2
  else
    rm -rf "$work"
  fi
  # The worktree of --base, with the build in it: only if this run made it
  # (its daemons are gone by now, see above).
  if [[ -n ${base_wt:-} ]] && ((made_wt)); then
    git -C "$repo" worktree remove --force "$base_wt" 2>/dev/null ||
      echo "compare.sh: could not remove the worktree $base_wt; remove it with: git worktree remove --force $base_wt" >&2
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --base REV: snapfs at REV, built in a worktree of its own (made here, so
# that the trap above removes it), with the options and target of the
# current build. A path that exists already is not ours: refuse.
snapfs_base=""
if [[ -n $base ]]; then
  base_wt=$build/base-$base_short
  if [[ -e $base_wt ]]; then
    echo "compare.sh: $base_wt exists (left by an interrupted run?);" \
         "remove it with: git worktree remove --force $base_wt" >&2
    exit 1
  fi
  echo "==> build $base_short (Release, git worktree ${base_wt#"$repo"/})"
  made_wt=1
  if ! git -C "$repo" worktree add --detach "$base_wt" "$base_sha" >"$work/base-build.log" 2>&1 ||
     ! cmake -S "$base_wt" -B "$base_wt/build" -DCMAKE_BUILD_TYPE=Release -DSNAPFS_BUILD_TESTS=OFF \
             -DSNAPFS_BUILD_BENCH=OFF >>"$work/base-build.log" 2>&1 ||
     ! cmake --build "$base_wt/build" --target snapfs -j2 >>"$work/base-build.log" 2>&1; then
    echo "compare.sh: building $base_short failed:" >&2
    tail -15 "$work/base-build.log" >&2
    exit 1
  fi
  snapfs_base=$base_wt/build/mount/snapfs
  [[ -x $snapfs_base ]] || { echo "compare.sh: $base_short built no $snapfs_base" >&2; exit 1; }
fi

# The snapfs daemon keeps an O_PATH descriptor per kernel inode it was asked
# about, and the kernel keeps inodes until memory pressure or drop_caches; it
# raises its soft RLIMIT_NOFILE to the hard one, which it inherits from us.
# Raise ours as far as we may (root here may lack CAP_SYS_RESOURCE: this
# machine's hard limit is 20000) and record it; a git tree or a set of held
# files beyond the daemon's limit fails with EMFILE, which is recorded as a
# failure of that metric, not hidden by a smaller size.
nofile_before=$(ulimit -n)
if ulimit -Hn "$(cat /proc/sys/fs/nr_open)" 2>/dev/null; then ulimit -Sn "$(ulimit -Hn)"; fi
ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true

make_img() {  # make_img FS: mounts $work/FS.img at $work/FS; the loop device in $img_loop
  truncate -s 8G "$work/$1.img"    # sparse; 8G so an XFS allocation group holds 1 GiB in one extent
  case $1 in
    xfs) mkfs.xfs -q -m reflink=1 "$work/$1.img" ;;
    btrfs) mkfs.btrfs -q "$work/$1.img" >/dev/null ;;
  esac
  img_loop=$(losetup -f --show "$work/$1.img")
  mkdir -p "$work/$1"
  mount "$img_loop" "$work/$1"
}
make_commit_files() {  # make_commit_files DIR
  local s
  for s in "${commit_sizes[@]}"; do
    if [[ $s == 1G && -f $1/big && $seq_mib -eq 1024 ]]; then
      cp --reflink=always "$1/big" "$1/c-$s"      # same 1 GiB of data, shared extents
    else
      dd if=/dev/urandom of="$1/c-$s" bs="$s" count=1 iflag=fullblock status=none
    fi
  done
}

make_img xfs
loop=$img_loop
B=$work/xfs/data
mkdir -p "$B"
echo "==> data in $B (XFS on $loop)"
dd if=/dev/urandom of="$B/big" bs=1M count="$seq_mib" status=none
make_commit_files "$B"
mkdir "$B/small" "$B/many" "$B/pub" "$B/tree" "$B/rb"
"$ops" mkfiles "$B/small" "$small_n" >/dev/null
"$ops" mkfiles "$B/many" "$hold_n" 1 >/dev/null
"$ops" mktree "$B/tree" "$tree_files" >/dev/null
(
  cd "$B/tree"
  git init -q
  git add -A
  git -c user.name=bench -c user.email=bench@localhost commit -q -m tree
)
if ! skipped btrfs; then
  make_img btrfs
  loop2=$img_loop
  B2=$work/btrfs/data
  mkdir -p "$B2"
  echo "==> commit files in $B2 (btrfs on $loop2)"
  make_commit_files "$B2"
fi
if ! skipped build; then
  git -C "$repo" archive -o "$work/src.tar" HEAD
fi
sync

declare -A dir
dir[native]=$B
mount_target() {  # mount_target NAME BACKING MOUNTPOINT
  mkdir -p "$3"
  case $1 in
    bindfs) bindfs "$2" "$3" ;;
    # use_ino,inodecalc=passthrough: B's inode numbers, as every other
    # target shows. Without them (libfuse's node ids) each mergerfs git
    # status rewrote the shared index with other inode numbers, and the
    # target after it in the rotation re-hashed the whole tree in its
    # untimed run (about 2 s, so its kernel caches of 1 s had expired
    # when its timed run began).
    mergerfs) mergerfs -o fsname=mergerfs-bench,use_ino,inodecalc=passthrough "$2" "$3" ;;
    snapfs|snapfs-btrfs) "$snapfs" mount "$2" "$3" ;;
    snapfs-fast) "$snapfs" mount --durability fast "$2" "$3" ;;
    snapfs-base|snapfs-base-btrfs) "$snapfs_base" mount "$2" "$3" ;;
  esac
}
for t in "${targets[@]}"; do
  [[ $t == native ]] && continue
  dir[$t]=$work/m/$t
  mount_target "$t" "$B" "${dir[$t]}"
done
for t in "${targets[@]}"; do
  [[ -f ${dir[$t]}/big ]] || { echo "compare.sh: ${dir[$t]} does not show B" >&2; exit 1; }
done
# btrfs: native, snapfs and snapfs-base only (the commit rows)
declare -A bdir
btrfs_targets=(native)
if ! skipped btrfs; then
  bdir[native]=$B2
  for t in snapfs snapfs-base; do
    has "$t" || continue
    bdir[$t]=$work/m/$t-btrfs
    mount_target "$t-btrfs" "$B2" "${bdir[$t]}"
    [[ -f ${bdir[$t]}/c-4K ]] || { echo "compare.sh: ${bdir[$t]} does not show $B2" >&2; exit 1; }
    btrfs_targets+=("$t")
  done
fi

# run_job CMD...: CMD in its own session and process group, in the
# background, so that a signal reaches the trap at once (bash runs a trap only
# after the foreground command ends) and cleanup can stop the whole group.
run_job() {
  setsid "$@" &
  job_pid=$!
  local rc=0
  wait "$job_pid" || rc=$?
  job_pid=
  return $rc
}

# The daemon serving mount point $1: the process whose command line has $1
# as an argument and runs $snapfs (snapfs status --json reports no pid).
daemon_pid() {
  local p exe
  for p in /proc/[0-9]*; do
    exe=$(readlink "$p/exe" 2>/dev/null) || continue
    is_our_snapfs "$exe" || continue
    if tr '\0' '\n' <"$p/cmdline" 2>/dev/null | grep -qxF -- "$1"; then
      echo "${p#/proc/}"; return 0
    fi
  done
  return 1
}

# --- measurement ---------------------------------------------------------------
mkdir -p "$out"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
raw=$out/compare-$stamp-raw.csv
info=$out/compare-$stamp.info
echo "metric,unit,better,target,rep,value" >"$raw"
# record METRIC UNIT BETTER TARGET REP VALUE; VALUE "fail" marks a failed run
record() { echo "$1,$2,$3,$4,$5,${6:-fail}" >>"$raw"; }
now() { date +%s.%N; }
mibs() { awk -v b="$seq_mib" -v t0="$1" -v t1="$2" 'BEGIN {printf "%.1f", b / (t1 - t0)}'; }
secs() { awk -v t0="$1" -v t1="$2" 'BEGIN {printf "%.4f", t1 - t0}'; }
note() { echo "$*" | tee -a "$info" >&2; }
git_status() { git -C "$1/tree" -c safe.directory='*' status --porcelain >/dev/null 2>"$work/git.err"; }
# All targets share B/tree/.git. A git that failed through a mount (EMFILE in
# the daemon) can leave its lock files behind (it could not unlink them), and
# a stale index.lock keeps every later git status, on every target, from
# writing back its refreshed index: each run would then re-hash the whole
# tree. So after each run, with no git running, remove (and note) any lock.
git_locks() {
  local f found=""
  while IFS= read -r f; do
    found+=" ${f#"$B/tree/"}"; rm -f "$f"
  done < <(find "$B/tree/.git" -maxdepth 3 -name '*.lock')
  [[ -z $found ]] || note "rep $r $1: git left$found behind (removed)"
}

{
  echo "mode=$([[ $quick == 1 ]] && echo quick || echo full) reps=$reps targets=${targets[*]} skip=${skip:-none}"
  echo "command=scripts/bench/compare.sh $all_args"
  echo "date=$(date -u '+%F %T UTC') host=$(uname -r) cpus=$(nproc) load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "commit=$(git -C "$repo" rev-parse --short HEAD) dirty_paths=$(git -C "$repo" status --porcelain | wc -l)"
  [[ -z $base ]] || echo "base=$base_short $(git -C "$repo" log -1 --format='%cs %s' "$base_sha" | cut -c1-100)"
  echo "nofile_inherited=$nofile_before nofile_daemons=$(ulimit -n) tree_files=$tree_files hold_files=$hold_n"
  echo "cycles=$cycles build_reps=$build_reps"
  echo "bindfs=$(bindfs --version 2>/dev/null | head -1) mergerfs=$(mergerfs --version 2>/dev/null | head -1)"
  echo "gcc=$(g++ -dumpfullversion) cmake=$(cmake --version | head -1) git=$(git --version)"
} >"$info" 2>/dev/null || true
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
  # open+read+close: first one pass right after dropping every cache, so
  # that each target pays its own cold reads (native, bindfs and mergerfs
  # share B's page cache and inodes, a snapfs reader reads its snapshot's:
  # without the drop, whoever came first in the rotation warmed the files
  # for the ones after it). Then the target's figure, an unchanged file
  # already opened once (a build's headers): orc_n more, timed.
  for t in "${order[@]}"; do
    sync; echo 3 >/proc/sys/vm/drop_caches
    record open_read_close_4k_cold us/op lower "$t" "$r" "$("$ops" orc "${dir[$t]}/small" "$small_n" "$small_n")"
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
  if ! skipped btrfs; then
    for s in "${commit_sizes[@]}"; do
      for t in "${btrfs_targets[@]}"; do
        record "commit_btrfs_$s" ms lower "$t" "$r" "$("$ops" commit "${bdir[$t]}/c-$s" "$commit_n")"
      done
    done
  fi
  # Let the kernel forget the inodes of the metrics above (and with them the
  # snapfs daemons' descriptors, see RLIMIT_NOFILE above) before the phases
  # that need many of them at once.
  if ! skipped hold; then
    for t in "${order[@]}"; do
      sync; echo 2 >/proc/sys/vm/drop_caches
      rc=0; res=$("$ops" hold "${dir[$t]}/many" "$hold_n" 2>"$work/hold.err") || rc=$?
      read -r opened hs <<<"${res:-0 0}"
      record hold_opened files higher "$t" "$r" "$opened"
      if ((rc == 0)); then
        record hold_10k s lower "$t" "$r" "$hs"
      else
        record hold_10k s lower "$t" "$r" fail
        note "rep $r $t: hold of $hold_n files failed (rc $rc): $(head -c 300 "$work/hold.err" | tr '\n' ' ')"
      fi
    done
  fi
  # Each target's first, untimed git status warms its own view again (and
  # refreshes the index's stat data for this view).
  sync; echo 2 >/proc/sys/vm/drop_caches
  for t in "${order[@]}"; do
    ok=0 which="first (untimed)"
    if git_status "${dir[$t]}"; then
      git_locks "$t"
      which="second (timed)"
      t0=$(now)
      git_status "${dir[$t]}" && ok=1
      t1=$(now)
    fi
    git_locks "$t"
    if ((ok)); then
      record git_status s lower "$t" "$r" "$(secs "$t0" "$t1")"
    else
      record git_status s lower "$t" "$r" fail
      note "rep $r $t: $which git status of $tree_files files failed: $(head -c 300 "$work/git.err" | tr '\n' ' ')"
      sync; echo 2 >/proc/sys/vm/drop_caches
    fi
  done
done

# --- real build ---------------------------------------------------------------
# This repository at HEAD, copied into each target (through the mount), with
# its build directory there too. Configure once per target (untimed); per
# build repetition: `clean` (untimed), sync, a timed build of snapfs_core and
# snapfs, then a no-op rebuild three times (median recorded).
bcmd=(--target snapfs_core snapfs -j2)
if ! skipped build; then
  echo "==> real build: configure in each target"
  declare -A bok
  for t in "${targets[@]}"; do
    rb=${dir[$t]}/rb/$t
    bok[$t]=0
    if mkdir -p "$rb/src" && tar -x -C "$rb/src" -f "$work/src.tar" &&
       cmake -S "$rb/src" -B "$rb/build" -DCMAKE_BUILD_TYPE= -DSNAPFS_BUILD_TESTS=OFF \
             -DSNAPFS_BUILD_BENCH=OFF >"$work/configure-$t.log" 2>&1; then
      bok[$t]=1
    else
      note "real build: copy or configure in $t failed: $(tail -3 "$work/configure-$t.log" 2>/dev/null | tr '\n' ' ')"
    fi
  done
  for ((r = 1; r <= build_reps; r++)); do
    order=()
    for ((i = 0; i < ${#targets[@]}; i++)); do
      order+=("${targets[(i + r - 1) % ${#targets[@]}]}")
    done
    echo "    build $r/$build_reps (${order[*]}), load $(cut -d' ' -f1 /proc/loadavg)"
    for t in "${order[@]}"; do
      rb=${dir[$t]}/rb/$t
      if ((bok[$t])) && cmake --build "$rb/build" --target clean >/dev/null 2>&1 && sync &&
         { t0=$(now); run_job cmake --build "$rb/build" "${bcmd[@]}" >"$work/build-$t.log" 2>&1; }; then
        t1=$(now)
        record build_full s lower "$t" "$r" "$(secs "$t0" "$t1")"
        noop=()
        for k in 1 2 3; do
          t0=$(now); run_job cmake --build "$rb/build" "${bcmd[@]}" >"$work/noop-$t.log" 2>&1 || { noop=(); break; }
          t1=$(now); noop+=("$(secs "$t0" "$t1")")
        done
        record build_noop s lower "$t" "$r" "$( ((${#noop[@]})) && printf '%s\n' "${noop[@]}" | sort -g | sed -n 2p)"
        ((${#noop[@]})) || note "build $r $t: no-op rebuild failed: $(tail -3 "$work/noop-$t.log" | tr '\n' ' ')"
      else
        record build_full s lower "$t" "$r" fail
        record build_noop s lower "$t" "$r" fail
        note "build $r $t: failed: $(tail -3 "$work/build-$t.log" 2>/dev/null | tr '\n' ' ')"
      fi
    done
  done
fi

# --- daemon RSS across open+close cycles -----------------------------------------
rss=$out/compare-$stamp-rss.csv
if ! skipped rss && has snapfs; then
  sync; echo 2 >/proc/sys/vm/drop_caches
  if pid=$(daemon_pid "${dir[snapfs]}"); then
    echo "==> RSS of the snapfs daemon (pid $pid) across $cycles open+close cycles"
    echo "cycles,rss_kib,seconds" >"$rss"
    step=$(( cycles >= 10 ? cycles / 10 : 1 ))
    rc=0; run_job "$ops" cycles "${dir[snapfs]}/small/f00000" "$cycles" "$step" "$pid" >>"$rss" || rc=$?
    if ((rc)); then
      note "RSS: the cycles stopped early (rc $rc); the samples so far are in $rss"
    fi
    awk -F, -v n="$cycles" 'NR > 1 && $1 == n {printf "%.3f\n", $3 * 1e6 / n}' "$rss" |
      { read -r us && record open_close_cycle us/op lower snapfs 1 "$us" || record open_close_cycle us/op lower snapfs 1 fail; }
  else
    note "RSS: no snapfs daemon found for ${dir[snapfs]}"
    rss=""
  fi
else
  rss=""
fi

t_end=$(date +%s)
echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg) measure_seconds=$((t_end - t_start))" >>"$info"
# Each snapfs daemon's counters at the end (lookups, getattrs, warm hits,
# dentry epochs...): what the run cost it, for reading the figures.
for t in snapfs snapfs-fast snapfs-base; do
  has "$t" || continue
  bin=$snapfs; [[ $t == snapfs-base ]] && bin=$snapfs_base
  echo "status_$t=$("$bin" status --json "${dir[$t]}" 2>/dev/null | tr -d '\n')" >>"$info"
done
echo "==> measured in $((t_end - t_start)) s, load $(cut -d' ' -f1-3 /proc/loadavg)"

report_args=(--csv "$out/compare-$stamp.csv" --hold-files "$hold_n" --tree-files "$tree_files" --cycles "$cycles")
((plot)) && report_args+=(--png "$out/compare-$stamp.png")
[[ -z $base ]] || report_args+=(--base-label "$base_short")
[[ -n $rss ]] && report_args+=(--rss "$rss")
"$py" "$repo/scripts/bench/compare_report.py" "$raw" "${report_args[@]}"
((plot)) || echo "(no plot: python3-matplotlib is not installable here)"
echo "==> $out/compare-$stamp.csv, $raw, $info$( [[ -n $rss ]] && echo ", $rss")$( ((plot)) && echo ", $out/compare-$stamp.png")"
