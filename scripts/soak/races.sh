#!/usr/bin/env bash
# The privilege and open races of the mount tests, for a long time
# (docs/security.md): the same tests CI runs for a few seconds each.
#
#   scripts/soak/races.sh [--seconds S] [--repeat N] [--snapfs PATH]
#
# --seconds S    how long each loop race runs per repetition (default 60)
# --repeat N     repetitions of the whole set (default 5)
# --snapfs PATH  mount with this snapfs binary (`PATH mount -f ...`) instead
#                of the one built here, e.g. an earlier revision built in a
#                git worktree: this tree's tests against another daemon.
#                Fs/CreateRace.* is then left out: it holds a CREATE at a
#                pause point of snapfs_testd built with these tests, which
#                another binary does not have.
# Each test makes its own backing filesystems and mounts under a temp
# directory and removes them on every exit path. Needs root. Prints, per
# data path, each test's runs, failures and median and longest time (the
# open stress does a fixed number of operations: its time is its
# throughput); the logs go to build/soak-races/results-<UTC time>/.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD="$ROOT/build/soak-races"
SECONDS_EACH=60
REPEAT=5
SNAPFS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_EACH=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --snapfs) SNAPFS=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "races.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ "$SECONDS_EACH" =~ ^[0-9]+$ && "$REPEAT" =~ ^[0-9]+$ ]] ||
  { echo "races.sh: --seconds and --repeat take whole numbers" >&2; exit 2; }
if [ -n "$SNAPFS" ]; then
  SNAPFS=$(realpath -e -- "$SNAPFS" 2>/dev/null) && [ -f "$SNAPFS" ] && [ -x "$SNAPFS" ] ||
    { echo "races.sh: --snapfs needs an executable snapfs binary" >&2; exit 2; }
fi
[ "$(id -u)" = 0 ] || { echo "races.sh: needs root (loop devices, mounts, other uids)" >&2; exit 2; }

echo "building the mount tests into $BUILD ..."
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSNAPFS_BUILD_BENCH=OFF \
  >"$BUILD.log" 2>&1 && cmake --build "$BUILD" -j"$(nproc)" --target snapfs_mount_tests \
  >>"$BUILD.log" 2>&1 || { echo "races.sh: build failed, see $BUILD.log" >&2; exit 2; }

# The loop races (SNAPFS_RACE_SECONDS long), the held-window races, and the
# open stress (ESTALE): all on tmpfs and XFS, on both data paths.
filter='Fs/Privilege.Creates*:Fs/CreateRace.*:Fs/PrivilegeCached.*:Fs/Privilege.AnAppender*:Fs/Stress.*'
RES="$BUILD/results-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$RES"
if [ -n "$SNAPFS" ]; then
  # The fixture runs $SNAPFS_TESTD as `X -f [-o OPTS] B M`: a wrapper makes
  # that `snapfs mount -f [-o OPTS] B M`, as it runs this tree's snapfs.
  filter=${filter/Fs\/CreateRace.\*:/}
  printf '#!/bin/sh\nexec %q mount "$@"\n' "$SNAPFS" >"$RES/snapfs-mount"
  chmod 755 "$RES/snapfs-mount"
  export SNAPFS_TESTD="$RES/snapfs-mount"
  echo "daemon: $SNAPFS (Fs/CreateRace.* left out)"
else
  echo "daemon: $BUILD/mount/snapfs"
fi
echo "filter: $filter" >"$RES/summary.txt"
echo "daemon: ${SNAPFS:-$BUILD/mount/snapfs}, loop races ${SECONDS_EACH}s, $REPEAT repetitions" >>"$RES/summary.txt"
status=0
for io in "" off; do
  echo "==> kernel_io=${io:-auto}: $REPEAT repetitions, loop races ${SECONDS_EACH}s each"
  SNAPFS_RACE_SECONDS=$SECONDS_EACH SNAPFS_TEST_KERNEL_IO=$io \
    SNAPFS_TEST_WATCHDOG_S=$((SECONDS_EACH + 120)) \
    "$BUILD/tests/mount/snapfs_mount_tests" --gtest_filter="$filter" \
    --gtest_repeat="$REPEAT" 2>&1 | tee "$RES/kernel_io-${io:-auto}.log" |
    { grep -v -E '^\[( RUN |       OK |----------|==========)|^$' || true; } || status=1
done

# Per data path and test: runs, failures, median and longest time (ms).
summary=$(awk '
  FNR == 1 { io = FILENAME; sub(/.*kernel_io-/, "", io); sub(/\.log$/, "", io) }
  /^\[ +(OK|FAILED|SKIPPED) +\] .* \([0-9]+ ms\)$/ {
    r = $2
    name = $0; sub(/^\[[^]]*\] /, "", name); sub(/ \([0-9]+ ms\)$/, "", name); sub(/,.*/, "", name)
    ms = $0; sub(/.*\(/, "", ms); sub(/ ms\)$/, "", ms)
    k = io SUBSEP name
    if (!(k in runs)) order[++n] = k
    runs[k]++; if (r == "FAILED") fails[k]++; if (r == "SKIPPED") skips[k]++
    t[k, runs[k]] = ms + 0
  }
  END {
    print "| kernel_io | test | runs | failed | skipped | median ms | max ms |"
    print "|---|---|---|---|---|---|---|"
    for (i = 1; i <= n; i++) {
      k = order[i]; split(k, p, SUBSEP); m = runs[k]
      for (a = 1; a <= m; a++) v[a] = t[k, a]
      for (a = 1; a <= m; a++) for (b = a + 1; b <= m; b++) if (v[b] < v[a]) { x = v[a]; v[a] = v[b]; v[b] = x }
      med = (m % 2) ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
      printf "| %s | %s | %d | %d | %d | %d | %d |\n", p[1], p[2], m, fails[k] + 0, skips[k] + 0, med, v[m]
    }
  }' "$RES"/kernel_io-*.log)
echo "$summary" | tee -a "$RES/summary.txt"
echo "==> $RES (status $status)"
exit $status
