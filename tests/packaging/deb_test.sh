#!/usr/bin/env bash
# Tests of the Debian packages (packaging/CMakeLists.txt), one step per
# ctest test:
#   deb_test.sh build BUILD_DIR OUT_DIR [CPACK]
#       makes the packages with cpack (default: cpack from PATH) into OUT_DIR
#   deb_test.sh contents OUT_DIR VERSION
#       what they hold and declare; runs the extracted snapfs --version
#   deb_test.sh mount OUT_DIR
#       mounts and unmounts a view with the extracted binaries (root, /dev/fuse)
#   deb_test.sh lintian OUT_DIR
#       lintian reports no error
# Nothing is installed on the system: the packages are unpacked with
# `dpkg-deb -x` into a temporary directory, removed at exit. A step that
# lacks what it needs exits 77 (skipped) and says why.
set -euo pipefail

skip() {
  echo "SKIPPED: $*"
  exit 77
}
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

base=${SNAPFS_TEST_TMPDIR:-/tmp}
work=''
cleanup() {
  [[ -n "$work" ]] && rm -rf --one-file-system -- "$work"
  return 0
}
trap cleanup EXIT

# The two packages in $1, as "runtime dev" paths; fails unless both are there.
find_debs() {
  local out=$1 arch
  arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
  runtime_deb=$(compgen -G "$out/snapfs_*_${arch}.deb" || true)
  dev_deb=$(compgen -G "$out/snapfs-dev_*_${arch}.deb" || true)
  [[ -n "$runtime_deb" && -n "$dev_deb" ]] ||
    fail "no snapfs_*_${arch}.deb and snapfs-dev_*_${arch}.deb in $out (did the build step run?)"
}

# Unpacks both packages into a new temporary directory, $work/root.
unpack() {
  work=$(mktemp -d "$base/snapfs-test-deb-XXXXXX")
  mkdir "$work/root"
  dpkg-deb -x "$runtime_deb" "$work/root"
  dpkg-deb -x "$dev_deb" "$work/root"
}

step_build() {
  local build=$1 out=$2 cpack=${3:-cpack}
  rm -rf -- "$out"
  mkdir -p "$out"
  # cpack runs the build's preinstall target (up to date after a build), then
  # the install rules of each component into its own staging directory.
  if ! "$cpack" -G DEB --config "$build/CPackConfig.cmake" -B "$out" >"$out/cpack.log" 2>&1; then
    cat "$out/cpack.log" >&2
    fail "cpack failed"
  fi
  grep -E 'package: .* generated' "$out/cpack.log"
  find_debs "$out"
}

step_contents() {
  local out=$1 version=$2 arch f
  command -v dpkg-deb >/dev/null || skip "dpkg-deb not found (package dpkg)"
  find_debs "$out"
  arch=$(dpkg --print-architecture)
  [[ "$(basename "$runtime_deb")" == "snapfs_${version}_${arch}.deb" ]] ||
    fail "package file name $(basename "$runtime_deb"), expected snapfs_${version}_${arch}.deb"

  local depends
  depends=$(dpkg-deb -f "$runtime_deb" Depends)
  echo "Depends: $depends"
  # The package names, one a line, without version constraints.
  local names
  names=$(sed -E 's/ *\([^)]*\)//g; s/, */\n/g' <<<"$depends")
  grep -qxF fuse3 <<<"$names" || fail "snapfs does not depend on fuse3"
  if command -v dpkg-shlibdeps >/dev/null; then
    # dpkg-shlibdeps was there at configure time too (same machine).
    for lib in libfuse3-3 libc6 libstdc++6; do
      grep -qxF "$lib" <<<"$names" || fail "snapfs does not depend on $lib"
    done
  else
    echo "SKIPPED part: dpkg-shlibdeps not found, library dependencies not checked"
  fi
  [[ "$(dpkg-deb -f "$runtime_deb" Package)" == snapfs ]] || fail "runtime package is not named snapfs"
  [[ "$(dpkg-deb -f "$dev_deb" Package)" == snapfs-dev ]] || fail "dev package is not named snapfs-dev"

  unpack
  local r=$work/root
  for f in usr/bin/snapfs usr/sbin/mount.snapfs; do
    [[ -x "$r/$f" && ! -L "$r/$f" ]] || fail "$f missing from snapfs"
  done
  [[ "$(readlink "$r/usr/sbin/mount.fuse.snapfs")" == mount.snapfs ]] ||
    fail "usr/sbin/mount.fuse.snapfs is not a link to mount.snapfs"
  [[ "$(readlink "$r/usr/share/man/man8/mount.fuse.snapfs.8.gz")" == mount.snapfs.8.gz ]] ||
    fail "mount.fuse.snapfs(8) is not a link to mount.snapfs(8)"
  for f in usr/share/man/man1/snapfs.1.gz usr/share/man/man8/mount.snapfs.8.gz; do
    [[ -f "$r/$f" ]] || fail "$f missing from snapfs"
    gzip -dc "$r/$f" | grep -q '^\.TH ' || fail "$f is not a manual page"
    gzip -dc "$r/$f" | grep -q "\"snapfs $version\"" || fail "$f does not name version $version"
  done
  for f in usr/share/bash-completion/completions/snapfs usr/share/doc/snapfs/README.md \
    usr/share/doc/snapfs/user-guide.md usr/share/doc/snapfs/install.md \
    usr/share/doc/snapfs/examples/mnt-data.mount usr/share/doc/snapfs/examples/fstab \
    usr/share/doc/snapfs/copyright usr/share/doc/snapfs/changelog.gz \
    usr/include/snapfs/core.hpp usr/lib/libsnapfs_core.a \
    usr/lib/cmake/snapfs/snapfsConfig.cmake usr/lib/cmake/snapfs/snapfsTargets.cmake \
    usr/share/doc/snapfs-dev/copyright; do
    [[ -f "$r/$f" ]] || fail "$f missing from the packages"
  done
  # Each file in exactly one package: the library is not in snapfs, the
  # programs are not in snapfs-dev.
  if dpkg-deb -c "$runtime_deb" | grep -Eq '/usr/(include|lib)/'; then
    fail "snapfs holds development files"
  fi
  if dpkg-deb -c "$dev_deb" | grep -Eq '/usr/s?bin/'; then
    fail "snapfs-dev holds programs"
  fi

  # The extracted programs run, with the system's libraries.
  if ldd "$r/usr/bin/snapfs" | grep -q 'not found'; then
    ldd "$r/usr/bin/snapfs" >&2
    fail "the extracted snapfs misses libraries"
  fi
  local got
  got=$("$r/usr/bin/snapfs" --version)
  echo "extracted snapfs --version: $got"
  [[ "$got" == "snapfs $version" ]] || fail "snapfs --version printed '$got', expected 'snapfs $version'"
  "$r/usr/sbin/mount.snapfs" --help | grep -q 'mount.snapfs' || fail "mount.snapfs --help"
  echo "OK: snapfs and snapfs-dev $version"
}

# Mounted views of this test, unmounted at exit if a check failed midway.
mounted=()
unmount_ours() {
  local m
  for m in "${mounted[@]}"; do
    if mountpoint -q -- "$m"; then umount -l -- "$m" || true; fi
  done
  cleanup
}

step_mount() {
  local out=$1
  command -v dpkg-deb >/dev/null || skip "dpkg-deb not found (package dpkg)"
  [[ $(id -u) -eq 0 ]] || skip "mounting needs root (this test mounts as root only)"
  [[ -c /dev/fuse ]] || skip "/dev/fuse is missing"
  command -v mountpoint >/dev/null || skip "mountpoint (util-linux) not found"
  find_debs "$out"
  unpack
  trap unmount_ours EXIT
  local r=$work/root b=$work/backing m=$work/view
  mkdir "$b" "$m"
  printf 'old\n' >"$b/file"
  mounted=("$m")

  # snapfs mount / umount, as a user of the package runs them.
  "$r/usr/bin/snapfs" mount "$b" "$m"
  grep -qF " $m " /proc/self/mountinfo || fail "no mount at $m after snapfs mount"
  awk -v m="$m" '$5 == m { for (i = 7; i < NF; i++) if ($i == "-") print $(i + 1) }' \
    /proc/self/mountinfo | grep -qx fuse.snapfs || fail "$m is not a fuse.snapfs mount"
  [[ "$(cat "$m/file")" == old ]] || fail "reading through the view"
  printf 'new\n' >"$m/file"
  [[ "$(cat "$b/file")" == new ]] || fail "a write through the view was not published to B"
  "$r/usr/bin/snapfs" status "$m" >/dev/null || fail "snapfs status"
  "$r/usr/bin/snapfs" umount "$m"
  ! mountpoint -q -- "$m" || fail "$m still mounted after snapfs umount"

  # mount.fuse.snapfs, as mount(8) runs it for an fstab line.
  "$r/usr/sbin/mount.fuse.snapfs" "$b" "$m" -o defaults,durability=full,x-systemd.automount
  mountpoint -q -- "$m" || fail "no mount at $m after mount.fuse.snapfs"
  [[ "$(cat "$m/file")" == new ]] || fail "reading through the helper's view"
  "$r/usr/bin/snapfs" umount "$m"
  ! mountpoint -q -- "$m" || fail "$m still mounted after snapfs umount"
  echo "OK: mounted and unmounted with the packaged snapfs and mount.fuse.snapfs"
}

step_lintian() {
  local out=$1
  command -v lintian >/dev/null || skip "lintian not found (apt-get install lintian)"
  find_debs "$out"
  # Errors fail; warnings and the rest are shown.
  lintian --fail-on error --tag-display-limit 0 "$runtime_deb" "$dev_deb" ||
    fail "lintian reports errors"
  echo "OK: lintian reports no error"
}

case "${1:-}" in
  build) step_build "$2" "$3" "${4:-}" ;;
  contents) step_contents "$2" "$3" ;;
  mount) step_mount "$2" ;;
  lintian) step_lintian "$2" ;;
  *)
    echo "usage: $0 build BUILD_DIR OUT_DIR [CPACK] | contents OUT_DIR VERSION | mount OUT_DIR | lintian OUT_DIR" >&2
    exit 2
    ;;
esac
