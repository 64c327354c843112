#!/usr/bin/env bash
# Installs everything snapfs needs to build and test on Debian 12, with
# apt-get. Idempotent: prints nothing and changes nothing when all is there.
set -euo pipefail

packages=(
  # build
  cmake g++ make pkg-config
  libfuse3-dev fuse3 libspdlog-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # the Debian package's library dependencies (dpkg-shlibdeps), and the
  # manual page tests (groff, man)
  dpkg-dev groff-base man-db
  # filesystems the tests make on loop devices, and the tools they use
  xfsprogs btrfs-progs e2fsprogs util-linux mount acl attr
  # unmodified programs the mount tests run through the view
  coreutils rsync git sqlite3 python3 tar sed
  # a FUSE filesystem as B (no O_TMPFILE, as on network filesystems)
  bindfs
  # a single-node GlusterFS volume on loopback as B (tests/gluster): glusterd
  # and the gluster CLI, and mount.glusterfs for the client mounts
  glusterfs-server glusterfs-client
)

missing=()
for p in "${packages[@]}"; do
  # dpkg-query prints "install ok installed" for a package that is fully there.
  if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]]; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "setup.sh: missing packages: ${missing[*]} (run as root, or: sudo $0)" >&2
  exit 1
fi
echo "setup.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
