#!/usr/bin/env bash
# The privilege and open races of the mount tests, for a long time
# (docs/security.md): the same tests CI runs for a few seconds each.
#
#   scripts/soak/races.sh [--seconds S] [--repeat N]
#
# --seconds S  how long each loop race runs per repetition (default 60)
# --repeat N   repetitions of the whole set (default 5)
# Each test makes its own backing filesystems and mounts under a temp
# directory and removes them on every exit path. Needs root.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD="$ROOT/build/soak-races"
SECONDS_EACH=60
REPEAT=5
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_EACH=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "races.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ "$SECONDS_EACH" =~ ^[0-9]+$ && "$REPEAT" =~ ^[0-9]+$ ]] ||
  { echo "races.sh: --seconds and --repeat take whole numbers" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "races.sh: needs root (loop devices, mounts, other uids)" >&2; exit 2; }

echo "building the mount tests into $BUILD ..."
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSNAPFS_BUILD_BENCH=OFF \
  >"$BUILD.log" 2>&1 && cmake --build "$BUILD" -j"$(nproc)" --target snapfs_mount_tests \
  >>"$BUILD.log" 2>&1 || { echo "races.sh: build failed, see $BUILD.log" >&2; exit 2; }

# The loop races (SNAPFS_RACE_SECONDS long), the held-window races, and the
# open stress (ESTALE): all on tmpfs and XFS, on both data paths.
filter='Fs/Privilege.Creates*:Fs/CreateRace.*:Fs/PrivilegeCached.*:Fs/Privilege.AnAppender*:Fs/Stress.*'
status=0
for io in "" off; do
  echo "==> kernel_io=${io:-auto}: $REPEAT repetitions, loop races ${SECONDS_EACH}s each"
  SNAPFS_RACE_SECONDS=$SECONDS_EACH SNAPFS_TEST_KERNEL_IO=$io \
    SNAPFS_TEST_WATCHDOG_S=$((SECONDS_EACH + 120)) \
    "$BUILD/tests/mount/snapfs_mount_tests" --gtest_filter="$filter" \
    --gtest_repeat="$REPEAT" --gtest_brief=1 || status=1
done
exit $status
