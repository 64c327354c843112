#!/usr/bin/env bash
# The one command that sets up, builds and runs every snapfs test:
#   1. installs dependencies (scripts/setup.sh),
#   2. builds the `ci` preset (warnings are errors) and runs all tests,
#   3. builds the `asan` preset (AddressSanitizer + UBSan) and runs the core
#      and daemon tests again under it,
#   4. builds the `tsan` preset (ThreadSanitizer) and runs them once more:
#      the daemon's worker threads, commit locks and watcher thread.
# Filesystem and mount tests need root, /dev/fuse and loop devices; without
# them they are skipped, loudly. Set SNAPFS_SKIP_ASAN=1 or SNAPFS_SKIP_TSAN=1
# to skip step 3 or 4.
#
# Mounts: the tests make their mount points only in their own directories,
# <base>/snapfs-test-XXXXXX (tests/support/tempdir.cpp, loopfs.cpp),
# <base>/snapfs-mount-XXXXXX (tests/mount/fuse_mount.cpp), with <base>
# $SNAPFS_TEST_TMPDIR or /tmp, and /tmp/snapfs-cli-XXXXXX
# (tests/cli/cli_support.cpp). Only mounts there are this script's business:
# it refuses to start while any is left from an earlier run, and fails if the
# run adds one. Mounts anywhere else (a user's own snapfs mounts) do not count.
# Both checks can be run alone, against a mountinfo file (default
# /proc/self/mountinfo):
#   bash scripts/test.sh --check-leftovers [MOUNTINFO]
#   bash scripts/test.sh --check-new BEFORE_MOUNTINFO [MOUNTINFO]
set -euo pipefail

# The parents of the test directories, escaped as mountinfo escapes paths
# (proc(5): space, tab, newline and backslash as \ooo), one per line; as given
# and resolved (mount points are listed resolved).
test_bases() {
  local b seen=() out=()
  for b in /tmp "${SNAPFS_TEST_TMPDIR:-}"; do
    [[ -n "$b" ]] || continue
    seen+=("$b")
    seen+=("$(realpath -m -- "$b" 2>/dev/null || printf '%s' "$b")")
  done
  for b in "${seen[@]}"; do
    [[ "$b" == / ]] || b=${b%/}
    b=${b//\\/\\134}
    b=${b// /\\040}
    b=${b//$'\t'/\\011}
    b=${b//$'\n'/\\012}
    out+=("$b")
  done
  printf '%s\n' "${out[@]}" | LC_ALL=C sort -u
}

# Mounts in test directories, "MOUNTPOINT (FSTYPE)" (as escaped in
# mountinfo), sorted; from $1 or /proc/self/mountinfo. Status 2 if that
# cannot be read.
test_mounts() {
  local info=${1:-/proc/self/mountinfo} bases
  if [[ ! -r "$info" ]]; then
    echo "test.sh: cannot read $info" >&2
    return 2
  fi
  bases=$(test_bases)
  SNAPFS_TEST_BASES=$bases LC_ALL=C awk '
    BEGIN { n = split(ENVIRON["SNAPFS_TEST_BASES"], bases, "\n") }
    {
      fstype = ""
      for (i = 7; i < NF; i++) if ($i == "-") { fstype = $(i + 1); break }
      if (fstype == "") next
      for (j = 1; j <= n; j++) {
        b = bases[j]
        if (b == "") continue
        prefix = (b == "/") ? "/" : b "/"
        if (index($5, prefix) != 1) continue
        name = substr($5, length(prefix) + 1)
        sub(/\/.*/, "", name)
        if (name ~ /^snapfs-(test|mount|cli)-./) { print $5 " (" fstype ")"; break }
      }
    }' "$info" | LC_ALL=C sort
}

# Refuses (status 1) while test directories hold mounts: an earlier run's
# leftovers would be mistaken for this run's.
check_leftovers() {
  local left
  left=$(test_mounts "${1:-}") || return 2
  [[ -z "$left" ]] && return 0
  echo "test.sh: mounts left in test directories by an earlier run; unmount them first" \
    "(umount -l MOUNTPOINT):" >&2
  printf '%s\n' "$left" | sed 's/^/  /' >&2
  return 1
}

# Fails (status 1) if test directories hold mounts that `before` (the
# output of test_mounts at the start) did not list.
check_new() {
  local before=$1 now added
  now=$(test_mounts "${2:-}") || return 2
  added=$(LC_ALL=C comm -13 <(printf '%s\n' "$before" | sed '/^$/d') \
    <(printf '%s\n' "$now" | sed '/^$/d'))
  [[ -z "$added" ]] && return 0
  echo "test.sh: the tests left these mounts behind:" >&2
  printf '%s\n' "$added" | sed 's/^/  /' >&2
  return 1
}

case "${1:-}" in
  --check-leftovers)
    check_leftovers "${2:-}"
    exit
    ;;
  --check-new)
    [[ $# -ge 2 ]] || { echo "usage: $0 --check-new BEFORE_MOUNTINFO [MOUNTINFO]" >&2; exit 2; }
    before=$(test_mounts "$2") || exit 2
    check_new "$before" "${3:-}"
    exit
    ;;
  "") ;;
  *)
    echo "usage: $0 [--check-leftovers [MOUNTINFO] | --check-new BEFORE_MOUNTINFO [MOUNTINFO]]" >&2
    exit 2
    ;;
esac

cd "$(dirname "$0")/.."

bash scripts/setup.sh

check_leftovers || exit 1
mounts_before=$(test_mounts)

jobs=$(nproc)
run_preset() {
  local preset=$1
  shift
  echo "==> $preset: configure and build"
  cmake --preset "$preset" >/dev/null
  mkdir -p build
  if ! cmake --build --preset "$preset" -j "$jobs" >"build/$preset-build.log" 2>&1; then
    grep -E 'error|Error' -A5 "build/$preset-build.log" | head -80 >&2
    echo "test.sh: $preset build failed (full log: build/$preset-build.log)" >&2
    return 1
  fi
  echo "==> $preset: test"
  ctest --preset "$preset" "$@"
}

status=0
run_preset ci || status=1
if [[ "${SNAPFS_SKIP_ASAN:-0}" != 1 ]]; then
  run_preset asan -L 'unit|fs|mount' || status=1
fi
if [[ "${SNAPFS_SKIP_TSAN:-0}" != 1 ]]; then
  run_preset tsan -L 'unit|fs|mount' || status=1
fi

check_new "$mounts_before" || status=1
exit $status
