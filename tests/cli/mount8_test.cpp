// mount(8), /etc/fstab and non-root mounts. Label `mount`.
//
// mount(8) finds helpers only in /sbin (and drops PATH before running them),
// so these tests never install anything: each runs its scenario in a private
// mount namespace (unshare -m) where an overlay adds our binary to /usr/sbin
// or /usr/local/bin. Nothing is visible outside; the daemon lives in that
// namespace and Scratch kills it by its command line if the test fails.
#include "cli_support.hpp"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace snapfs::clitest {
namespace {

constexpr uid_t kNobody = 65534;

enum class Route {
  helper,      // /sbin/mount.fuse.snapfs -> mount.snapfs
  mount_fuse3  // /sbin/mount.fuse3 runs `snapfs B M -o ...` from the default PATH
};

// Runs `mount_cmd` (with $T, $SNAPFS available) in a private mount namespace
// with our binary injected for `route`, then checks the mount, reads through
// it, asks status, unmounts. Prints OK on success, FAIL: ... otherwise.
Outcome mount8_scenario(const Scratch& s, Route route, const std::string& mount_cmd) {
  const fs::path inject = s.mkdir("inject");
  std::string target;
  if (route == Route::helper) {
    fs::create_symlink(mount_helper_bin(), inject / "mount.fuse.snapfs");
    target = "/usr/sbin";
  } else {
    fs::create_symlink(snapfs_bin(), inject / "snapfs");
    target = "/usr/local/bin";
  }
  const std::string script = R"SH(
set -u
fail() { echo "FAIL: $*"; grep -F "$T" /proc/self/mountinfo; "$SNAPFS" umount --lazy "$T/m" >/dev/null 2>&1; exit 1; }
snapfs_at_m() { awk -v m="$T/m" '$5 == m' /proc/self/mountinfo | grep -q ' - fuse\.snapfs '; }
mount -t overlay -o "lowerdir=$T/inject:$TARGET" snapfs-test-inject "$TARGET" || { echo "no overlayfs"; exit 77; }
)SH" + mount_cmd + R"SH( || fail "mount command"
snapfs_at_m || fail "no fuse.snapfs mount at $T/m after mount returned"
[ "$(cat "$T/m/f")" = published ] || fail "reading through the mount"
"$SNAPFS" status "$T/m" >/dev/null || fail "snapfs status"
"$SNAPFS" umount "$T/m" || fail "snapfs umount"
snapfs_at_m && fail "still mounted after umount"
echo OK
)SH";
  RunOptions opts;
  opts.env = {{"T", s.path().string()}, {"SNAPFS", snapfs_bin()}, {"TARGET", target}};
  return run({"unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script}, opts);
}

class MountHelper : public ::testing::Test {
 protected:
  void SetUp() override {
    SNAPFS_REQUIRE_DAEMON();
    if (access("/usr/bin/unshare", X_OK) != 0) GTEST_SKIP() << "needs unshare(1)";
    s_.mkdir("b");
    s_.mkdir("m");
    write_file(s_ / "b" / "f", "published\n");
  }
  void expect_ok(const Outcome& r) {
    if (r.code == 77) GTEST_SKIP() << "cannot put our helper into " << r.describe();
    EXPECT_EQ(r.code, 0) << r.describe();
    EXPECT_NE(r.out.find("OK"), std::string::npos) << r.describe();
    EXPECT_TRUE(wait_until([&] { return processes_mentioning(s_.path().string()).empty(); }, 10s))
        << "a daemon outlived its mount";
  }
  Scratch s_;
};

TEST_F(MountHelper, MountTypeFuseSnapfsThroughMountSnapfs) {
  if (access("/sbin/mount.fuse.snapfs", F_OK) == 0)
    GTEST_SKIP() << "an installed mount.fuse.snapfs would be tested";
  expect_ok(mount8_scenario(s_, Route::helper,
                            R"(mount -t fuse.snapfs -o durability=full,nofail "$T/b" "$T/m")"));
}

TEST_F(MountHelper, MountTypeFuseSnapfsThroughMountFuse3) {
  if (access("/sbin/mount.fuse.snapfs", F_OK) == 0)
    GTEST_SKIP() << "mount.fuse.snapfs is installed and wins";
  if (access("/sbin/mount.fuse3", X_OK) != 0) GTEST_SKIP() << "needs mount.fuse3";
  expect_ok(mount8_scenario(s_, Route::mount_fuse3, R"(mount -t fuse.snapfs "$T/b" "$T/m")"));
}

TEST_F(MountHelper, FstabLine) {
  // A copy of fstab with our line appended; mount -T reads it instead of /etc/fstab.
  const std::string fstab =
      read_file("/etc/fstab") + "\n" + (s_ / "b").string() + " " + (s_ / "m").string() +
      " fuse.snapfs defaults,durability=full,x-systemd.automount,_netdev 0 0\n";
  write_file(s_ / "fstab", fstab);
  expect_ok(mount8_scenario(s_, Route::helper, R"(mount -T "$T/fstab" "$T/m")"));
}

TEST_F(MountHelper, FstabLineThroughMountFuse3) {
  if (access("/sbin/mount.fuse.snapfs", F_OK) == 0)
    GTEST_SKIP() << "mount.fuse.snapfs is installed and wins";
  const std::string fstab =
      (s_ / "b").string() + " " + (s_ / "m").string() + " fuse.snapfs defaults 0 0\n";
  write_file(s_ / "fstab", fstab);
  expect_ok(mount8_scenario(s_, Route::mount_fuse3, R"(mount -T "$T/fstab" "$T/m")"));
}

// fusermount3 opens /dev/fuse with the user's rights (it drops them for
// that), so a user mount needs /dev/fuse to be 0666, as distributions ship
// it. Where it is not (some containers and VMs make it 0600), the scenario
// runs in a private mount namespace with a 0666 node for the same device
// bound over /dev/fuse: nothing changes outside the test.
constexpr const char* kUserScenario = R"SH(
set -u
AS="setpriv --reuid 65534 --regid 65534 --clear-groups"
fail() { echo "FAIL: $*"; grep -F "$T" /proc/self/mountinfo; "$SNAPFS" umount --lazy "$T/um" >/dev/null 2>&1; exit 1; }
at_um() { awk -v m="$T/um" '$5 == m' /proc/self/mountinfo; }
if [ -n "$BIND_FUSE" ]; then mount --bind "$T/fuse" /dev/fuse || fail "bind /dev/fuse"; fi
$AS "$SNAPFS" mount "$T/ub" "$T/um" 2>"$T/err" || fail "user mount: $(cat "$T/err")"
line=$(at_um)
echo "$line" | grep -q ' - fuse\.snapfs ' || fail "no fuse.snapfs mount after a user mount"
echo "$line" | grep -q 'user_id=65534' || fail "not the user's mount: $line"
echo "$line" | grep -q 'allow_other' && fail "a user mount let others in: $line"
[ "$($AS cat "$T/um/f")" = published ] || fail "reading through the mount as the user"
$AS "$SNAPFS" status "$T/um" >/dev/null || fail "snapfs status as the user"
"$SNAPFS" status "$T/um" 2>/dev/null && fail "root could ask a mount without allow_other"
$AS sh -c 'echo new > "$1"' sh "$T/um/n" || fail "writing through the mount as the user"
$AS "$SNAPFS" events "$T/um" | grep -q " commit $T/um/n size=4 pid=[0-9]* uid=65534 command=sh$" ||
  fail "the user's change feed: $($AS "$SNAPFS" events "$T/um" 2>&1)"
pid=$($AS "$SNAPFS" status --format=json "$T/um" | sed -n 's/.*"pid":\([0-9]*\).*/\1/p')
[ -n "$pid" ] || fail "no daemon pid in snapfs status"
$AS "$SNAPFS" umount "$T/um" || fail "snapfs umount as the user (fusermount3 -u)"
[ -z "$(at_um)" ] || fail "still mounted after umount"
# Exited (gone, or a zombie not reaped yet) when umount returns.
state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1)
[ -z "$state" ] || [ "$state" = Z ] || fail "snapfs umount returned while its daemon ran ($state)"
echo OK
)SH";

TEST(MountUser, NonRootMountThroughFusermount3) {
  SNAPFS_REQUIRE_DAEMON();
  if (access("/usr/bin/unshare", X_OK) != 0 || access("/usr/bin/setpriv", X_OK) != 0) {
    GTEST_SKIP() << "needs unshare(1) and setpriv(1)";
  }
  Scratch s;
  const auto b = s.mkdir("ub", 0755, kNobody, kNobody);
  s.mkdir("um", 0755, kNobody, kNobody);
  write_file(b / "f", "published\n");
  ASSERT_EQ(::chown((b / "f").c_str(), kNobody, kNobody), 0);
  RunOptions as_nobody;
  as_nobody.uid = kNobody;
  as_nobody.gid = kNobody;
  const Outcome probe = run({snapfs_bin(), "--version"}, as_nobody);
  if (probe.code != 0)
    GTEST_SKIP() << "uid 65534 cannot run " << snapfs_bin() << ": " << probe.describe();

  struct stat fuse_dev {};
  ASSERT_EQ(::stat("/dev/fuse", &fuse_dev), 0);
  const bool bind_fuse = (fuse_dev.st_mode & 0006) != 0006;
  if (bind_fuse) {
    ASSERT_EQ(::mknod((s / "fuse").c_str(), S_IFCHR | 0666, fuse_dev.st_rdev), 0)
        << std::strerror(errno);
    ::chmod((s / "fuse").c_str(), 0666);
  }
  RunOptions opts;
  opts.env = {
      {"T", s.path().string()}, {"SNAPFS", snapfs_bin()}, {"BIND_FUSE", bind_fuse ? "1" : ""}};
  const Outcome r =
      run({"unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", kUserScenario}, opts);
  EXPECT_EQ(r.code, 0) << r.describe();
  EXPECT_NE(r.out.find("OK"), std::string::npos) << r.describe();
  EXPECT_TRUE(wait_until([&] { return processes_mentioning(s.path().string()).empty(); }, 10s))
      << "the user's daemon outlived its mount";
}

}  // namespace
}  // namespace snapfs::clitest
