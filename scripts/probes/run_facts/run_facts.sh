#!/usr/bin/env bash
# Measures the kernel facts of docs/design-run.md ("Kernel facts") on this
# machine: builds run_facts.cpp into a private scratch directory under
# /var/tmp and runs one probe per fact, each printing "R<n>: ...".
#
#   sudo scripts/probes/run_facts/run_facts.sh [FACT...]   (default: all)
#
# Needs root, g++ (C++20), libfuse3-dev (pkg-config fuse3), unshare(1),
# losetup(8) and, for R12, mkfs.xfs, mkfs.ext4 and mkfs.btrfs (a missing one
# is skipped). Everything runs in a private mount namespace: the probes'
# mounts are never visible outside it and go with it. The only things made
# outside it are the scratch directory and R12's loop devices; both are
# removed on exit, also on failure. Exit status: 0 every fact holds as the
# design states it, 1 some fact differs, 2 a probe failed.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)

if [[ ${1:-} == --inside ]]; then
  # In the private mount namespace. $2: the scratch directory.
  T=$2
  shift 2
  facts=("$@")
  # The scratch directory becomes a shared mount, as / is on a systemd
  # host, so that a run's namespace made with MS_REC|MS_SLAVE gets slave
  # copies of what is mounted under it (R7).
  mount --bind "$T" "$T" && mount --make-shared "$T" || { echo "cannot make $T a shared mount" >&2; exit 2; }
  mounted=()
  cleanup_inside() {
    local m
    for m in "${mounted[@]}"; do umount -l "$m" 2>/dev/null; done
    umount -l "$T" 2>/dev/null
  }
  trap cleanup_inside EXIT
  status=0
  record() { # the exit status of one fact
    case $1 in 0) ;; 1) [[ $status == 0 ]] && status=1 ;; *) status=2 ;; esac
  }
  for f in "${facts[@]}"; do
    case $f in
      r5)
        "$T/run_facts" r5 "$T" 61001 self; record $?
        "$T/run_facts" r5 "$T" 61001 root; record $?
        "$T/run_facts" r5 "$T" 61001 passthrough; record $?
        "$T/run_facts" r5 "$T" 61001 refusals; record $?
        ;;
      r11)
        echo "R11: not measured: needs Ubuntu 23.10+ with AppArmor and kernel.apparmor_restrict_unprivileged_userns=1; this machine has $( [[ -e /sys/kernel/security/apparmor ]] && echo AppArmor || echo no AppArmor) ($(. /etc/os-release; echo "$PRETTY_NAME"))"
        ;;
      r12)
        for fs in xfs ext4 btrfs tmpfs; do
          mp=$(mktemp -d "$T/r12-$fs.XXXX")
          if [[ $fs == tmpfs ]]; then
            mount -t tmpfs probe-r12 "$mp" || { echo "R12: $fs: cannot mount" ; status=2; continue; }
          else
            if ! command -v "mkfs.$fs" >/dev/null; then echo "R12: $fs: skipped, no mkfs.$fs"; continue; fi
            img="$T/$fs.img"
            truncate -s 512M "$img"
            case $fs in
              xfs) mkfs.xfs -q -m reflink=1 "$img" ;;
              ext4) mkfs.ext4 -q -F "$img" ;;
              btrfs) mkfs.btrfs -q "$img" ;;
            esac >/dev/null 2>&1 || { echo "R12: $fs: mkfs failed"; status=2; continue; }
            dev=$(losetup -f --show "$img") || { echo "R12: $fs: losetup failed"; status=2; continue; }
            echo "$dev" >>"$T/loops"
            mount "$dev" "$mp" || { echo "R12: $fs: mount failed"; status=2; continue; }
          fi
          mounted+=("$mp")
          "$T/run_facts" r12 "$mp" "$fs"; record $?
          umount "$mp" && mounted=("${mounted[@]/$mp}")
          if [[ $fs != tmpfs ]]; then losetup -d "$dev"; fi
        done
        ;;
      *)
        "$T/run_facts" "$f" "$T"; record $?
        ;;
    esac
  done
  exit $status
fi

if [[ $(id -u) != 0 ]]; then echo "run_facts.sh: needs root" >&2; exit 2; fi
facts=("$@")
[[ ${#facts[@]} == 0 ]] && facts=(r1 r2 r3 r4 r5 r6 r7 r8 r9 r10 r11 r12)

T=$(mktemp -d /var/tmp/run_facts.XXXXXX) || exit 2
inner=
cleanup() {
  [[ -n $inner ]] && kill -KILL "$inner" 2>/dev/null && wait "$inner" 2>/dev/null
  # Loop devices still bound to our images (the namespace is gone, so
  # nothing is mounted from them any more).
  local img dev
  for img in "$T"/*.img; do
    [[ -e $img ]] || continue
    for dev in $(losetup -j "$img" -O NAME -n 2>/dev/null); do losetup -d "$dev"; done
  done
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 2' INT TERM HUP

# The scratch directory must be reachable by uid 61001 (R5).
chmod 0755 "$T"
g++ -std=c++20 -O1 -g -Wall -Wextra -pthread -o "$T/run_facts" "$here/run_facts.cpp" \
  $(pkg-config --cflags --libs fuse3) || exit 2

echo "# $(uname -sr), libfuse $(pkg-config --modversion fuse3), $(. /etc/os-release; echo "$PRETTY_NAME"), $(date -u +%Y-%m-%d)"
unshare --mount --propagation private -- "$here/run_facts.sh" --inside "$T" "${facts[@]}" &
inner=$!
wait "$inner"
rc=$?
inner=
exit $rc
