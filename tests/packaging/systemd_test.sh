#!/usr/bin/env bash
# Checks the systemd examples of docs/install.md with systemd's own tools:
#   1. `systemd-analyze verify` accepts docs/examples/mnt-data.mount and
#      mnt-data.automount;
#   2. systemd-fstab-generator turns docs/examples/fstab into the units the
#      documentation describes (a local view in local-fs.target, the _netdev
#      one behind an automount in remote-fs.target, RequiresMountsFor= from
#      x-systemd.requires-mounts-for), and `systemd-analyze verify` accepts
#      them.
# Nothing is installed or started: both tools work on files. Skipped (77)
# without systemd-analyze; step 2 is skipped, loudly, without the generator.
# Usage: systemd_test.sh SOURCE_DIR
set -euo pipefail

src=$1
examples=$src/docs/examples

command -v systemd-analyze >/dev/null || { echo "SKIPPED: systemd-analyze not found (package systemd)"; exit 77; }

work=$(mktemp -d "${SNAPFS_TEST_TMPDIR:-/tmp}/snapfs-test-systemd-XXXXXX")
trap 'rm -rf -- "$work"' EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# verify UNIT_FILE...: systemd-analyze verify must succeed and say nothing
# about these units (it may also talk about the host's own units, which
# are not this test's business, so those lines are shown but do not fail).
verify() {
  local out status=0 f name
  out=$(systemd-analyze verify --man=no "$@" 2>&1) || status=$?
  [[ -z "$out" ]] || echo "$out"
  [[ $status -eq 0 ]] || fail "systemd-analyze verify failed on $*"
  for f in "$@"; do
    name=$(basename "$f")
    if grep -qF "$name" <<<"$out"; then
      fail "systemd-analyze verify complains about $name"
    fi
  done
}

verify "$examples/mnt-data.mount" "$examples/mnt-data.automount"
echo "OK: systemd-analyze verify accepts docs/examples/mnt-data.mount and mnt-data.automount"

generator=''
for g in /usr/lib/systemd/system-generators/systemd-fstab-generator \
  /lib/systemd/system-generators/systemd-fstab-generator; do
  if [[ -x "$g" ]]; then
    generator=$g
    break
  fi
done
if [[ -z "$generator" ]]; then
  echo "SKIPPED part: systemd-fstab-generator not found; docs/examples/fstab not checked"
  exit 0
fi

out=$work/units
mkdir -p "$out/normal" "$out/early" "$out/late"
# SYSTEMD_FSTAB points the generator at the example instead of /etc/fstab;
# SYSTEMD_PROC_CMDLINE keeps the host's kernel command line out of it.
SYSTEMD_FSTAB=$examples/fstab SYSTEMD_PROC_CMDLINE='' SYSTEMD_LOG_LEVEL=warning \
  "$generator" "$out/normal" "$out/early" "$out/late"
u=$out/normal

[[ -f "$u/mnt-data.mount" ]] || fail "no mnt-data.mount from the local fstab line"
grep -qx 'Type=fuse.snapfs' "$u/mnt-data.mount" || fail "mnt-data.mount: Type= is not fuse.snapfs"
grep -qx 'What=/srv/data' "$u/mnt-data.mount" || fail "mnt-data.mount: What= is not /srv/data"
grep -qx 'RequiresMountsFor=/srv/data' "$u/mnt-data.mount" ||
  fail "mnt-data.mount: x-systemd.requires-mounts-for did not become RequiresMountsFor="
compgen -G "$u/local-fs.target.*/mnt-data.mount" >/dev/null ||
  fail "mnt-data.mount is not pulled in by local-fs.target"

[[ -f "$u/mnt-shared.mount" && -f "$u/mnt-shared.automount" ]] ||
  fail "no mnt-shared.mount and .automount from the remote fstab line"
grep -qx 'TimeoutIdleSec=10min' "$u/mnt-shared.automount" ||
  fail "mnt-shared.automount: x-systemd.idle-timeout did not become TimeoutIdleSec="
[[ -e "$u/remote-fs.target.wants/mnt-shared.automount" ]] ||
  fail "_netdev did not put mnt-shared.automount in remote-fs.target"
grep -qx 'RequiresMountsFor=/net/share/data' "$u/mnt-shared.mount" ||
  fail "mnt-shared.mount: no RequiresMountsFor=/net/share/data"

verify "$u/mnt-data.mount" "$u/mnt-shared.mount" "$u/mnt-shared.automount"
echo "OK: docs/examples/fstab makes the documented units, and systemd-analyze verify accepts them"
