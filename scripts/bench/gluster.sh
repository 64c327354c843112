#!/usr/bin/env bash
# snapfs over GlusterFS next to local XFS (docs/performance.md, "Shared and
# network storage"), as root:
#   1. builds snapfs (Release, build/bench-compare, as compare.sh does) and
#      scripts/bench/compare_ops.cpp;
#   2. in a private mount namespace (so that GlusterFS writes its logs and
#      sockets into our own directory, bound over /var/log/glusterfs and
#      /var/run/gluster, and every mount vanishes with us): one XFS image
#      (reflink) holding a local B, and another as the brick of a
#      single-node GlusterFS volume on 127.0.0.1, mounted by one client C,
#      volume, client and snapfs with the settings the user guide asks for;
#   3. mounts snapfs over the local B, over C, and over C with
#      -o cache_dir on the local image;
#   4. measures, interleaved over --reps repetitions (the order rotating):
#      open+read 4 KiB+close (µs/op) and small-file publish (create, write
#      4 KiB, close: files/s) on the local B itself, snapfs over it, C
#      itself, snapfs over C, and snapfs over C with cache_dir;
#   5. prints the medians; unmounts and kills exactly what it started.
# Usage: scripts/bench/gluster.sh [--reps N]
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
reps=3
while (($#)); do
  case $1 in
    --reps) reps=$2; shift 2 ;;
    *) echo "gluster.sh: unknown argument '$1' (usage: gluster.sh [--reps N])" >&2; exit 2 ;;
  esac
done
[[ $(id -u) -eq 0 ]] || { echo "gluster.sh: needs root (loop devices, mounts)" >&2; exit 77; }
for c in glusterd gluster mount.glusterfs mkfs.xfs g++ cmake; do
  command -v "$c" >/dev/null ||
    { echo "gluster.sh: $c is missing (apt-get install glusterfs-server glusterfs-client xfsprogs)" >&2; exit 1; }
done

if [[ ${SNAPFS_GLUSTER_BENCH_NS:-} != 1 ]]; then
  build=$repo/build/bench-compare
  echo "==> build (Release, $build)"
  cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSNAPFS_BUILD_TESTS=OFF >/dev/null
  cmake --build "$build" --target snapfs -j2 >"$build/gluster-build.log" 2>&1 ||
    { cat "$build/gluster-build.log" >&2; exit 1; }
  if [[ ! -x $build/compare_ops || $repo/scripts/bench/compare_ops.cpp -nt $build/compare_ops ]]; then
    g++ -std=c++20 -O2 -Wall -Wextra -o "$build/compare_ops" "$repo/scripts/bench/compare_ops.cpp"
  fi
  # The rest in a mount namespace of our own, nothing propagating out.
  exec env SNAPFS_GLUSTER_BENCH_NS=1 SNAPFS_BENCH_BUILD="$build" \
    unshare --mount --propagation private "$0" --reps "$reps"
fi

snapfs=$SNAPFS_BENCH_BUILD/mount/snapfs
ops=$SNAPFS_BENCH_BUILD/compare_ops
w=$(mktemp -d /var/tmp/snapfs-gluster-bench-XXXXXX)
pids=()
cleanup() {
  set +e
  for m in "$w"/m-*; do [[ -d $m ]] && "$snapfs" umount "$m" >/dev/null 2>&1; done
  mountpoint -q "$w/c" && umount "$w/c"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for f in "$w"/run/vols/*/*.pid; do [[ -f $f ]] && kill "$(cat "$f")" 2>/dev/null; done
  sleep 0.5
  for d in "$w/brick" "$w/local"; do mountpoint -q "$d" && umount "$d"; done
  rm -rf "$w"
}
trap cleanup EXIT

mkdir -p "$w"/{lib,run,log,brick,local,c,cache}
mount --bind "$w/log" /var/log/glusterfs 2>/dev/null || { mkdir -p /var/log/glusterfs; mount --bind "$w/log" /var/log/glusterfs; }
mkdir -p /var/run/gluster && mount --bind "$w/run" /var/run/gluster
mkdir -p "$w/varlib" /var/lib/glusterd && mount --bind "$w/varlib" /var/lib/glusterd
for img in brick local; do
  truncate -s 2G "$w/$img.img"
  mkfs.xfs -q -m reflink=1 "$w/$img.img"
  mount -o loop "$w/$img.img" "$w/$img"
done
mkdir "$w/brick/b" "$w/local/b" "$w/local/cache"
cat >"$w/glusterd.vol" <<EOF
volume management
    type mgmt/glusterd
    option working-directory $w/lib
    option run-directory $w/run
    option transport-type socket
    option transport.socket.bind-address 127.0.0.1
    option transport.socket.listen-port 24007
    option ping-timeout 0
    option event-threads 1
    option glusterd-sockfile $w/run/glusterd.socket
end-volume
EOF
glusterd --volfile="$w/glusterd.vol" -p "$w/run/glusterd.pid" --log-file="$w/log/glusterd.log"
for _ in $(seq 100); do [[ -S $w/run/glusterd.socket ]] && break; sleep 0.1; done
pids+=("$(cat "$w/run/glusterd.pid")")
g() { gluster --glusterd-sock="$w/run/glusterd.socket" --mode=script "$@" >/dev/null; }
g volume create snapfs-bench "$(hostname):$w/brick/b" force
g volume set snapfs-bench performance.stat-prefetch off
g volume set snapfs-bench performance.md-cache-timeout 0
g volume set snapfs-bench performance.open-behind off
g volume start snapfs-bench
mount -t glusterfs -o log-file="$w/log/client.log",entry-timeout=0,attribute-timeout=0 \
  127.0.0.1:/snapfs-bench "$w/c"

# Targets: name -> directory measured.
declare -A dir=([xfs]=$w/local/b [snapfs-xfs]=$w/m-xfs [gluster]=$w/c
                [snapfs-gluster]=$w/m-gluster [snapfs-gluster-cache]=$w/m-cache)
targets=(xfs snapfs-xfs gluster snapfs-gluster snapfs-gluster-cache)
mkdir -p "$w/m-xfs" "$w/m-gluster" "$w/m-cache"
"$snapfs" mount "$w/local/b" "$w/m-xfs"
# Over GlusterFS with the settings the user guide asks for.
"$snapfs" mount -o cache_timeout=0 "$w/c" "$w/m-gluster"
"$snapfs" mount -o "cache_timeout=0,cache_dir=$w/local/cache" "$w/c" "$w/m-cache"
mkdir "$w/local/b/orc" "$w/c/orc"
"$ops" mkfiles "$w/local/b/orc" 200 >/dev/null
"$ops" mkfiles "$w/c/orc" 200 >/dev/null

declare -A orc pub
for ((r = 0; r < reps; r++)); do
  for ((i = 0; i < ${#targets[@]}; i++)); do
    t=${targets[(i + r) % ${#targets[@]}]}
    orc[$t]+="$("$ops" orc "${dir[$t]}/orc" 200 1000) "
    mkdir -p "${dir[$t]}/pub-$t-$r"  # three targets share the volume
    pub[$t]+="$("$ops" publish "${dir[$t]}/pub-$t-$r" 100) "
  done
done
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
printf '%-22s %22s %26s\n' target "open+read+close µs/op" "publish 4 KiB files/s"
for t in "${targets[@]}"; do
  printf '%-22s %22s %26s\n' "$t" "$(median <<<"${orc[$t]}")" "$(median <<<"${pub[$t]}")"
done
echo "(medians of $reps; every run: $(uname -r), $(date -u +%F))"
