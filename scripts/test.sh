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
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

# Our tests mount under directories named snapfs-test-*; refuse to start
# with leftovers from an earlier run (they would be mistaken for ours), and
# fail at the end if this run left any.
leftovers() {
  awk '$2 ~ /snapfs-test/ || $3 == "fuse.snapfs" {print $2" ("$3")"}' /proc/mounts
}
if [[ -n "$(leftovers)" ]]; then
  echo "test.sh: leftover test mounts; unmount them first:" >&2
  leftovers >&2
  exit 1
fi

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

if [[ -n "$(leftovers)" ]]; then
  echo "test.sh: tests left these mounts behind:" >&2
  leftovers >&2
  status=1
fi
exit $status
