#!/usr/bin/env bash
# Reliability soak for snapfs (scenarios (c), (d), (f)); see docs/reliability.md.
#
#   scripts/soak/run.sh [--rounds N] [--seconds S] [--only kill|shutdown|fail|storm]
#                       [--atomic-every K] [--keep]
#
#   kill      (c) SIGKILL the daemon during a commit storm, remount, verify
#   shutdown  (d) xfs_io shutdown (power loss, no log flush) during a storm with
#                 durability=full (every K-th round durability=atomic), remount
#                 the XFS image (log recovery), verify wholeness + acknowledged commits
#   fail      (f) descriptors open through M, shut down the backing XFS: every
#                 operation errors, never wrong data, daemon survives, umount works
#   storm     no fault: a commit storm; readers must only ever see whole versions
#
# --rounds N rounds per scenario (default 20; fail and storm at most 5),
# --seconds S stops a scenario
# after S seconds (default: no limit). Default: all four. Needs root.
# Everything it creates (an XFS image on a loop device, mounts, daemons,
# workers) lives under one temp dir and is removed on every exit path.
# Results: build/soak/results-<UTC time>/ (summary.txt, evidence of failures).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD="$ROOT/build/soak"
ROUNDS=20
SECONDS_LIMIT=0
ONLY=""
ATOMIC_EVERY=10
KEEP=0
NFILES=20
NWRITERS=4
NREADERS=2

while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --seconds) SECONDS_LIMIT=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --atomic-every) ATOMIC_EVERY=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$ONLY" in ""|kill|shutdown|fail|storm) ;; *) echo "run.sh: --only kill|shutdown|fail|storm" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (loop devices, mounts)" >&2; exit 2; }
for t in xfs_io mkfs.xfs fusermount3 losetup findmnt g++ cmake; do
  command -v "$t" >/dev/null || { echo "run.sh: $t not found" >&2; exit 2; }
done

# ---- build ------------------------------------------------------------------
mkdir -p "$BUILD"
SNAPFS="$BUILD/mount/snapfs"
if [ ! -x "$SNAPFS" ] || [ -n "$(find "$ROOT/core" "$ROOT/fuse" "$ROOT/mount" -newer "$SNAPFS" -name '*.[ch]pp' 2>/dev/null | head -1)" ]; then
  echo "building snapfs into $BUILD ..."
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSNAPFS_BUILD_BENCH=OFF >"$BUILD/cmake.log" 2>&1 &&
    cmake --build "$BUILD" -j2 --target snapfs >>"$BUILD/cmake.log" 2>&1 ||
    { echo "run.sh: build failed, see $BUILD/cmake.log" >&2; exit 2; }
fi
WORKER="$BUILD/soak_worker"
if [ ! -x "$WORKER" ] || [ "$ROOT/scripts/soak/soak_worker.cpp" -nt "$WORKER" ] ||
   [ "$ROOT/scripts/soak/soak_format.hpp" -nt "$WORKER" ]; then
  g++ -O2 -std=c++20 -Wall -Wextra -o "$WORKER" "$ROOT/scripts/soak/soak_worker.cpp" ||
    { echo "run.sh: cannot build soak_worker" >&2; exit 2; }
fi

# ---- our resources; cleanup on every exit path ---------------------------------
T=$(mktemp -d /var/tmp/snapfs-soak.XXXXXX)
IMG="$T/xfs.img"; X="$T/x"; B="$X/b"; M="$T/m"
RES="$BUILD/results-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$X" "$M" "$RES"
DPID=""            # the current snapfs daemon (ours)
WPIDS=()           # current writers/readers (ours)

mounted() { findmnt -n --mountpoint "$1" >/dev/null 2>&1; }

cleanup() {
  set +e
  touch "$T/stop" 2>/dev/null
  for p in "${WPIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  if mounted "$M"; then fusermount3 -uz "$M" 2>/dev/null || umount -l "$M" 2>/dev/null; fi
  if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then kill -9 "$DPID"; fi
  [ -n "$DPID" ] && wait "$DPID" 2>/dev/null
  for p in "${WPIDS[@]}"; do wait "$p" 2>/dev/null; done
  if mounted "$X"; then
    for _ in 1 2 3 4 5 6 7 8 9 10; do umount "$X" 2>/dev/null && break; sleep 0.5; done
    mounted "$X" && umount -l "$X"
  fi
  # Only the loop device(s) backed by our image.
  for dev in $(losetup -j "$IMG" -O NAME -n 2>/dev/null); do losetup -d "$dev" 2>/dev/null; done
  if [ "$KEEP" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$RES/run.log"; }

truncate -s 512M "$IMG" && mkfs.xfs -q -f -m reflink=1 "$IMG" 2>"$RES/mkfs.log" || { log "mkfs.xfs failed"; exit 2; }
mount_xfs() { mount -o loop "$IMG" "$X"; }
umount_xfs() {
  local i
  for i in $(seq 1 40); do umount "$X" 2>/dev/null && return 0; sleep 0.25; done
  log "umount $X: still busy after 10 s"; return 1
}
mount_xfs || { log "mount of the XFS image failed"; exit 2; }
mkdir -p "$B"
"$WORKER" init "$B" "$NFILES" || exit 2

# start_daemon OPTIONS LOGFILE: snapfs mount -f in the background; waits for M.
start_daemon() {
  "$SNAPFS" mount -f -o "$1" "$B" "$M" >"$2" 2>&1 &
  DPID=$!
  local i
  for i in $(seq 1 400); do
    mounted "$M" && return 0
    kill -0 "$DPID" 2>/dev/null || { wait "$DPID"; DPID=""; return 1; }
    sleep 0.025
  done
  return 1
}
# wait_daemon_exit SECONDS: 0 if it exited (status in DSTATUS), 1 if it had to be killed.
wait_daemon_exit() {
  local i n=$(( $1 * 20 ))
  for i in $(seq 1 "$n"); do
    kill -0 "$DPID" 2>/dev/null || { wait "$DPID"; DSTATUS=$?; DPID=""; return 0; }
    sleep 0.05
  done
  kill -9 "$DPID" 2>/dev/null; wait "$DPID"; DSTATUS=$?; DPID=""; return 1
}
ensure_m_unmounted() {
  local i
  for i in $(seq 1 100); do mounted "$M" || return 0; sleep 0.05; done
  fusermount3 -uz "$M" 2>/dev/null || umount -l "$M"
}
# start_workers MODE(shared|own) VBASE ACKLOG
start_workers() {
  rm -f "$T/stop"; WPIDS=()
  local w
  for w in $(seq 0 $((NWRITERS - 1))); do
    "$WORKER" writer "$M" "$NFILES" "$w" "$NWRITERS" "$2" "$3" "$T/stop" "$RANDOM$RANDOM" "$1" >>"$T/stats" 2>>"$T/worker.err" &
    WPIDS+=($!)
  done
  for w in $(seq 1 "$NREADERS"); do
    "$WORKER" reader "$M" "$NFILES" "$T/stop" "$T/evidence" "$RANDOM$RANDOM" >>"$T/stats" 2>>"$T/worker.err" &
    WPIDS+=($!)
  done
}
# wait_workers SECONDS: the number of workers that had to be SIGKILLed (hung).
wait_workers() {
  local deadline=$(( $(date +%s) + $1 )) hung=0 p
  for p in "${WPIDS[@]}"; do
    while kill -0 "$p" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.05; done
    if kill -0 "$p" 2>/dev/null; then kill -9 "$p"; hung=$((hung + 1)); fi
    wait "$p" 2>/dev/null
  done
  WPIDS=(); echo "$hung"
}
rand_delay() { # seconds in [$1, $2) with ms resolution
  awk -v a="$1" -v b="$2" -v r="$RANDOM$RANDOM" 'BEGIN{srand(r); printf "%.3f", a + (b - a) * rand()}'
}
leftovers() { # entries in staging, plus temporary names anywhere else in B
  local tmp st
  tmp=$(find "$B" -path "$B/.snapfs/staging" -prune -o -name '.snapfs-*.tmp' -print 2>/dev/null | wc -l)
  st=$(find "$B/.snapfs/staging" -mindepth 1 2>/dev/null | wc -l)
  echo "$((tmp + st))"
}
sum_stat() { awk -v k="$1" '{for(i=1;i<=NF;i++){split($i,a,"="); if(a[1]==k) s+=a[2]}} END{print s+0}' "$T/stats"; }

# Failure bookkeeping: evidence of a failing round goes to $RES/<scenario>-<round>/.
FAILS=0
keep_evidence() { # scenario round reason
  local d="$RES/$1-$2"
  mkdir -p "$d"
  echo "$3" >>"$d/reason.txt"
  cp -a "$T"/daemon*.log "$T/worker.err" "$T/stats" "$T"/ack* "$T"/verify*.txt "$d/" 2>/dev/null
  [ -d "$T/evidence" ] && cp -a "$T/evidence" "$d/" 2>/dev/null
  find "$B" -name '.snapfs-*.tmp' -exec cp -a {} "$d/" \; 2>/dev/null
  cp -a "$B/.snapfs/staging" "$d/staging" 2>/dev/null
  log "FAIL $1 round $2: $3 (evidence in $d)"
  FAILS=$((FAILS + 1))
}
new_round() { rm -rf "$T/evidence" "$T"/ack* "$T/stats" "$T/worker.err" "$T"/verify*.txt; mkdir -p "$T/evidence"; : >"$T/stats"; }
time_up() { [ "$SECONDS_LIMIT" -gt 0 ] && [ $(( $(date +%s) - SCEN_START )) -ge "$SECONDS_LIMIT" ]; }
SUMMARY=()

# ---- (c) SIGKILL --------------------------------------------------------------
scenario_kill() {
  local r=0 fails0=$FAILS torn=0 lost=0 left_after=0 left_before=0 commits=0 conflicts=0 tornreads=0 hung=0 crashed=0
  local durs=(atomic fast full) opts mode
  SCEN_START=$(date +%s)
  start_daemon "durability=atomic" "$T/daemon.log" || { keep_evidence kill 0 "first mount failed"; return; }
  while [ "$r" -lt "$ROUNDS" ] && ! time_up; do
    r=$((r + 1)); new_round
    mode=$([ $((r % 2)) = 0 ] && echo shared || echo own)
    start_workers "$mode" $((r * 10000000)) "$T/ack"
    sleep "$(rand_delay 0.02 0.8)"
    if ! kill -0 "$DPID" 2>/dev/null; then crashed=$((crashed + 1)); keep_evidence kill "$r" "daemon died before the SIGKILL"; fi
    kill -9 "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null; DPID=""
    ensure_m_unmounted
    hung=$((hung + $(wait_workers 20)))
    left_before=$((left_before + $(leftovers)))
    # The state the crash left, read directly in B (acks only in own mode: one writer per file).
    local ackarg=(); [ "$mode" = own ] && ackarg=(--ack "$T/ack")
    if ! "$WORKER" verify "$B" "$NFILES" "$T/evidence" "${ackarg[@]}" --conflicts "$B/.snapfs/conflicts" >"$T/verify-b.txt"; then
      torn=$((torn + $(grep -c '^TORN' "$T/verify-b.txt"))); lost=$((lost + $(grep -c '^LOST' "$T/verify-b.txt")))
      keep_evidence kill "$r" "verify in B after the crash: $(grep -v '^VERIFY' "$T/verify-b.txt" | head -3 | tr '\n' ';')"
    fi
    # The next mount: recovery, then the same check through M.
    opts="durability=${durs[$((r % 3))]}"; [ $((r % 4)) = 0 ] && opts="$opts,on_conflict=overwrite"
    if ! start_daemon "$opts" "$T/daemon.log"; then keep_evidence kill "$r" "remount failed"; break; fi
    local la; la=$(leftovers)
    if [ "$la" != 0 ]; then left_after=$((left_after + la)); keep_evidence kill "$r" "$la leftover(s) after the remount"; fi
    if ! "$WORKER" verify "$M" "$NFILES" "$T/evidence" >"$T/verify-m.txt"; then
      keep_evidence kill "$r" "verify through M after the remount: $(grep -v '^VERIFY' "$T/verify-m.txt" | head -3 | tr '\n' ';')"
    fi
    if grep -qiE '\b(warn|warning|error|critical)\b' "$T/daemon.log"; then
      keep_evidence kill "$r" "the recovery mount logged: $(grep -iE '\b(warn|warning|error|critical)\b' "$T/daemon.log" | head -2 | tr '\n' ';')"
    fi
    commits=$((commits + $(sum_stat commits))); conflicts=$((conflicts + $(sum_stat conflicts)))
    tornreads=$((tornreads + $(sum_stat torn)))
    if [ "$(sum_stat torn)" != 0 ]; then keep_evidence kill "$r" "a reader saw a torn version through M"; fi
    # Kept conflicts were checked above; the user may delete them (keeps the image small).
    find "$B/.snapfs/conflicts" -mindepth 1 -delete 2>/dev/null
    [ $((r % 50)) = 0 ] && log "kill: $r rounds, $((FAILS - fails0)) failing, $commits commits"
  done
  [ -n "$DPID" ] && { "$SNAPFS" umount "$M" >/dev/null 2>&1 || fusermount3 -uz "$M"; wait_daemon_exit 10 >/dev/null; }
  SUMMARY+=("kill: rounds=$r failing_rounds=$((FAILS - fails0)) torn_files=$torn lost_acked=$lost torn_reads=$tornreads staging_before_remount=$left_before leftovers_after_remount=$left_after daemon_crashes=$crashed hung_workers=$hung commits=$commits conflicts=$conflicts seconds=$(( $(date +%s) - SCEN_START ))")
  log "${SUMMARY[-1]}"
}

# ---- (d) power loss: xfs_io shutdown (no log flush) --------------------------------
scenario_shutdown() {
  local r=0 fails0=$FAILS torn=0 lost=0 left_after=0 left_before=0 commits=0 tornreads=0 hung=0 crashed=0 full=0 atomic=0 dur rolled=0
  SCEN_START=$(date +%s)
  while [ "$r" -lt "$ROUNDS" ] && ! time_up; do
    r=$((r + 1)); new_round
    if [ "$ATOMIC_EVERY" -gt 0 ] && [ $((r % ATOMIC_EVERY)) = 0 ]; then dur=atomic; atomic=$((atomic + 1)); else dur=full; full=$((full + 1)); fi
    start_daemon "durability=$dur" "$T/daemon.log" || { keep_evidence shutdown "$r" "mount failed"; break; }
    start_workers own $((r * 10000000)) "$T/ack"
    sleep "$(rand_delay 0.1 1.0)"
    xfs_io -x -c shutdown "$X" || { keep_evidence shutdown "$r" "xfs_io shutdown failed"; break; }
    sleep 0.2
    if ! kill -0 "$DPID" 2>/dev/null; then crashed=$((crashed + 1)); keep_evidence shutdown "$r" "daemon died after the shutdown"; fi
    touch "$T/stop"
    hung=$((hung + $(wait_workers 20)))
    if [ -n "$DPID" ]; then
      "$SNAPFS" umount "$M" >>"$T/daemon-umount.log" 2>&1 || { echo "snapfs umount failed" >>"$T/daemon-umount.log"; fusermount3 -uz "$M" 2>/dev/null; }
      wait_daemon_exit 10 || keep_evidence shutdown "$r" "daemon did not exit after umount"
    fi
    ensure_m_unmounted
    cp "$T/daemon.log" "$T/daemon-shutdown.log"
    umount_xfs || { keep_evidence shutdown "$r" "cannot unmount the shut-down XFS"; break; }
    mount_xfs || { keep_evidence shutdown "$r" "XFS log recovery mount failed"; break; }
    left_before=$((left_before + $(leftovers)))
    local ackarg=(); [ "$dur" = full ] && ackarg=(--ack "$T/ack")
    if ! "$WORKER" verify "$B" "$NFILES" "$T/evidence" "${ackarg[@]}" --conflicts "$B/.snapfs/conflicts" >"$T/verify-b.txt"; then
      torn=$((torn + $(grep -c '^TORN' "$T/verify-b.txt"))); lost=$((lost + $(grep -c '^LOST' "$T/verify-b.txt")))
      keep_evidence shutdown "$r" "durability=$dur verify after log recovery: $(grep -v '^VERIFY' "$T/verify-b.txt" | head -3 | tr '\n' ';')"
    fi
    if [ "$dur" = atomic ]; then
      # Not a failure with atomic (the rename is durable only at the next log
      # commit): counted to show that the shutdown really loses the log tail.
      "$WORKER" verify "$B" "$NFILES" "" --ack "$T/ack" >"$T/verify-atomic.txt"
      rolled=$((rolled + $(grep -c '^LOST' "$T/verify-atomic.txt")))
    fi
    start_daemon "durability=$dur" "$T/daemon.log" || { keep_evidence shutdown "$r" "recovery mount failed"; break; }
    local la; la=$(leftovers)
    if [ "$la" != 0 ]; then left_after=$((left_after + la)); keep_evidence shutdown "$r" "$la leftover(s) after the recovery mount"; fi
    "$WORKER" verify "$M" "$NFILES" "$T/evidence" >"$T/verify-m.txt" || keep_evidence shutdown "$r" "verify through M after recovery"
    "$SNAPFS" umount "$M" >/dev/null 2>&1 || fusermount3 -uz "$M"; wait_daemon_exit 10 >/dev/null
    commits=$((commits + $(sum_stat commits))); tornreads=$((tornreads + $(sum_stat torn)))
    [ "$(sum_stat torn)" != 0 ] && keep_evidence shutdown "$r" "a reader saw a torn version through M"
    [ $((r % 25)) = 0 ] && log "shutdown: $r rounds, $((FAILS - fails0)) failing, $commits commits"
  done
  SUMMARY+=("shutdown: rounds=$r (durability=full $full, atomic $atomic) failing_rounds=$((FAILS - fails0)) torn_files=$torn lost_acked=$lost torn_reads=$tornreads staging_after_log_recovery=$left_before leftovers_after_remount=$left_after daemon_crashes=$crashed hung_workers=$hung acked_commits=$commits atomic_acked_versions_rolled_back=$rolled seconds=$(( $(date +%s) - SCEN_START ))")
  log "${SUMMARY[-1]}"
}

# ---- (f) backing filesystem fails under open descriptors ----------------------------
scenario_fail() {
  local r=0 fails0=$FAILS n=$(( ROUNDS < 5 ? ROUNDS : 5 ))
  SCEN_START=$(date +%s)
  while [ "$r" -lt "$n" ] && ! time_up; do
    r=$((r + 1)); new_round
    start_daemon "durability=atomic" "$T/daemon.log" || { keep_evidence fail "$r" "mount failed"; break; }
    "$WORKER" failcheck "$M" "$NFILES" "$X" >"$T/verify-fail.txt" 2>&1 || keep_evidence fail "$r" "failcheck: $(tail -1 "$T/verify-fail.txt")"
    grep -q 'ok_ops=0 ' "$T/verify-fail.txt" || keep_evidence fail "$r" "an operation through M succeeded on the shut-down fs: $(grep 'OK (' "$T/verify-fail.txt" | head -3 | tr '\n' ';')"
    kill -0 "$DPID" 2>/dev/null || keep_evidence fail "$r" "daemon died after the shutdown"
    "$SNAPFS" umount "$M" >"$T/daemon-umount.log" 2>&1 || keep_evidence fail "$r" "snapfs umount failed: $(cat "$T/daemon-umount.log")"
    wait_daemon_exit 10 || keep_evidence fail "$r" "daemon did not exit after umount"
    [ "${DSTATUS:-0}" = 0 ] || keep_evidence fail "$r" "daemon exit status $DSTATUS"
    ensure_m_unmounted
    cp "$T/verify-fail.txt" "$RES/fail-$r-ops.txt"; cp "$T/daemon.log" "$RES/fail-$r-daemon.log"
    umount_xfs || { keep_evidence fail "$r" "cannot unmount the XFS"; break; }
    mount_xfs || { keep_evidence fail "$r" "XFS remount failed"; break; }
    "$WORKER" verify "$B" "$NFILES" "$T/evidence" >"$T/verify-b.txt" || keep_evidence fail "$r" "files not whole after the failure"
    start_daemon "durability=atomic" "$T/daemon.log" || { keep_evidence fail "$r" "recovery mount failed"; break; }
    [ "$(leftovers)" = 0 ] || keep_evidence fail "$r" "leftovers after the recovery mount"
    "$SNAPFS" umount "$M" >/dev/null 2>&1 || fusermount3 -uz "$M"; wait_daemon_exit 10 >/dev/null
  done
  SUMMARY+=("fail: rounds=$r failing_rounds=$((FAILS - fails0)) ($(grep '^FAILCHECK' "$RES/fail-1-ops.txt" 2>/dev/null)) seconds=$(( $(date +%s) - SCEN_START ))")
  log "${SUMMARY[-1]}"
}

# ---- no fault: storm ---------------------------------------------------------
scenario_storm() {
  local r=0 fails0=$FAILS commits=0 conflicts=0 tornreads=0 n=$(( ROUNDS < 5 ? ROUNDS : 5 ))
  SCEN_START=$(date +%s)
  while [ "$r" -lt "$n" ] && ! time_up; do
    r=$((r + 1)); new_round
    start_daemon "durability=atomic" "$T/daemon.log" || { keep_evidence storm "$r" "mount failed"; break; }
    start_workers shared $((r * 10000000 + 900000000)) "$T/ack"
    sleep 3; touch "$T/stop"; wait_workers 20 >/dev/null
    "$SNAPFS" umount "$M" >/dev/null 2>&1 || fusermount3 -uz "$M"; wait_daemon_exit 10 >/dev/null
    "$WORKER" verify "$B" "$NFILES" "$T/evidence" --conflicts "$B/.snapfs/conflicts" >"$T/verify-b.txt" || keep_evidence storm "$r" "verify"
    [ "$(leftovers)" = 0 ] || keep_evidence storm "$r" "leftovers without a crash"
    [ "$(sum_stat torn)" = 0 ] || keep_evidence storm "$r" "a reader saw a torn version"
    commits=$((commits + $(sum_stat commits))); conflicts=$((conflicts + $(sum_stat conflicts))); tornreads=$((tornreads + $(sum_stat torn)))
    find "$B/.snapfs/conflicts" -mindepth 1 -delete 2>/dev/null
  done
  SUMMARY+=("storm: rounds=$r failing_rounds=$((FAILS - fails0)) commits=$commits conflicts=$conflicts torn_reads=$tornreads seconds=$(( $(date +%s) - SCEN_START ))")
  log "${SUMMARY[-1]}"
}

log "snapfs soak: $(uname -r), $(nproc) cores, snapfs $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null), results in $RES"
for s in kill shutdown fail storm; do
  if [ -z "$ONLY" ] || [ "$ONLY" = "$s" ]; then "scenario_$s"; fi
done
{
  echo "snapfs soak summary ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -n), kernel $(uname -r), $(nproc) cores)"
  for l in "${SUMMARY[@]}"; do echo "  $l"; done
  echo "  failing rounds total: $FAILS"
} | tee "$RES/summary.txt"
[ "$FAILS" = 0 ]
