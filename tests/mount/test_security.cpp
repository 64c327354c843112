// docs/security.md: the daemon never follows a symlink or ".." out of B; with
// allow_other the kernel checks permissions and files created by a user
// belong to that user.
#include "fuse_mount.hpp"
#include "mount_util.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <cstring>

namespace snapfs::test {
namespace {

using Security = FuseMount;

// A directory of B is swapped for a symlink to a directory outside B while
// a process holds it open through M. Everything the process then does
// relative to that descriptor lands in the real directory (the inode the
// daemon holds), never outside.
TEST_P(Security, SymlinkSwapCannotRedirectTheDaemon) {
  ASSERT_EQ(::mkdir(b("d").c_str(), 0755), 0);
  write_file(b("d/x"), "inside");
  write_file(outside() / "x", "outside");
  const int dfd = ::open(m("d").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dfd, 0);
  // The swap, made directly in B.
  ASSERT_EQ(::rename(b("d").c_str(), b("d.real").c_str()), 0);
  ASSERT_EQ(::symlink(outside().c_str(), b("d").c_str()), 0);

  int fd = ::openat(dfd, "x", O_WRONLY | O_TRUNC | O_CLOEXEC);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_TRUE(write_str(fd, "written"));
  ASSERT_EQ(xclose(fd), 0);
  fd = ::openat(dfd, "new", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_TRUE(write_str(fd, "new"));
  ASSERT_EQ(xclose(fd), 0);
  ASSERT_EQ(::mkdirat(dfd, "sub", 0755), 0);
  ASSERT_EQ(::renameat(dfd, "new", dfd, "new2"), 0);
  ASSERT_EQ(::symlinkat("/etc/passwd", dfd, "ln"), 0);
  ASSERT_EQ(::truncate(("/proc/self/fd/" + std::to_string(dfd) + "/x").c_str(), 3), 0);
  ::close(dfd);

  EXPECT_EQ(read_file(outside() / "x"), "outside");
  EXPECT_EQ(list_dir(outside()), std::vector<std::string>{"x"});
  EXPECT_EQ(read_file(b("d.real/x")), "wri");
  EXPECT_EQ(read_file(b("d.real/new2")), "new");
  EXPECT_TRUE(fs::is_directory(b("d.real/sub")));
  EXPECT_TRUE(fs::is_symlink(b("d.real/ln")));
  // (Through M the swapped name shows up as a symlink once the kernel's
  // 1 s directory entry cache expires; following it is the caller's walk.)
}

// A symlink in B pointing outside is shown as a symlink; the daemon never
// reads or writes through it (the kernel resolves it for the caller).
TEST_P(Security, SymlinksAreNotFollowedByTheDaemon) {
  write_file(outside() / "secret", "outside");
  ASSERT_EQ(::symlink((outside() / "secret").c_str(), b("ln").c_str()), 0);
  EXPECT_TRUE(S_ISLNK(lstat_of(m("ln")).st_mode));
  // chmod/xattr on the link name act on the link itself or fail; the target
  // outside B is untouched.
  const struct stat before = stat_of(outside() / "secret");
  (void)::lchown(m("ln").c_str(), 65534, 65534);
  (void)::lsetxattr(m("ln").c_str(), "user.k", "v", 1, 0);
  const struct stat after = stat_of(outside() / "secret");
  EXPECT_EQ(after.st_uid, before.st_uid);
  EXPECT_EQ(after.st_mode, before.st_mode);
  EXPECT_TRUE(xattrs_of(outside() / "secret").empty());
}

TEST_P(Security, PermissionsAndOwnershipForOtherUsers) {
  write_file(b("secret"), "s", 0600);
  write_file(b("pub"), "p", 0644);
  ASSERT_EQ(::mkdir(b("shared").c_str(), 0777), 0);
  ASSERT_EQ(::chmod(b("shared").c_str(), 0777), 0);
  auto st = run_as(65534, 65534, [&] {
    if (xopen(m("secret"), O_RDONLY) != -EACCES) return 1;
    if (xopen(m("pub"), O_WRONLY) != -EACCES) return 2;
    const int r = xopen(m("pub"), O_RDONLY);
    if (r < 0 || pread_all(r) != "p") return 3;
    ::close(r);
    if (::chmod(m("pub").c_str(), 0666) != -1 || errno != EPERM) return 4;
    const int w = xopen(m("shared/mine"), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (w < 0 || !write_str(w, "mine") || xclose(w) != 0) return 5;
    if (::mkdir(m("shared/dir").c_str(), 0755) != 0) return 6;
    if (::symlink("mine", m("shared/ln").c_str()) != 0) return 7;
    if (::mkfifo(m("shared/fifo").c_str(), 0600) != 0) return 8;
    // Rewriting its own file through a snapshot works and keeps the owner.
    const int w2 = xopen(m("shared/mine"), O_WRONLY | O_TRUNC);
    if (w2 < 0 || !write_str(w2, "mine2") || xclose(w2) != 0) return 9;
    return 0;
  });
  ASSERT_TRUE(st.ok()) << st.describe();
  for (const char* n : {"shared/mine", "shared/dir", "shared/ln", "shared/fifo"}) {
    const struct stat s = lstat_of(b(n));
    EXPECT_EQ(s.st_uid, 65534u) << n;
    EXPECT_EQ(s.st_gid, 65534u) << n;
  }
  EXPECT_EQ(read_file(b("shared/mine")), "mine2");
  EXPECT_EQ(read_file(b("secret")), "s");
}

// Snapshots are unnamed 0600 files held by the daemon: another user can
// neither find them in B nor reach them through /proc/<daemon>/fd.
TEST_P(Security, SnapshotsAreNotReachableByOtherUsers) {
  write_file(b("f"), "secret snapshot", 0644);
  const int fd = xopen(m("f"), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(pwrite_str(fd, "private", 0));
  EXPECT_EQ(list_backing(backing()), std::vector<std::string>{"f"});
  const std::string fds = "/proc/" + std::to_string(daemon_pid()) + "/fd";
  auto st = run_as(65534, 65534, [&] {
    if (::opendir(fds.c_str()) != nullptr) return 1;
    return errno == EACCES ? 0 : 2;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
  ASSERT_EQ(xclose(fd), 0);
}

SNAPFS_INSTANTIATE_MOUNT(Security);

}  // namespace
}  // namespace snapfs::test
