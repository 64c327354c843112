#include "support/loopfs.hpp"

#include "support/files.hpp"
#include "support/process.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>
#include <thread>
#include <vector>

namespace snapfs::test {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::uint64_t MiB = 1024 * 1024;
constexpr auto kUnmountDeadline = 5s;
constexpr auto kDetachDeadline = 5s;

std::string sys_error(const char* op, const std::string& what, int err) {
  return std::string(op) + "(" + what + "): " + errno_name(err);
}

// /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_mountinfo(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      const std::string oct = s.substr(i + 1, 3);
      if (oct.size() == 3 && oct.find_first_not_of("01234567") == std::string::npos) {
        out.push_back(static_cast<char>(std::stoi(oct, nullptr, 8)));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

// The source ("/dev/loop3", "tmpfs") of the mount at `mnt`, or empty.
std::string mount_source(const std::filesystem::path& mnt) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  std::string found;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string id, parent, devno, root, point;
    ls >> id >> parent >> devno >> root >> point;
    if (unescape_mountinfo(point) != mnt.string()) continue;
    const auto sep = line.find(" - ");
    if (sep == std::string::npos) continue;
    std::istringstream rest(line.substr(sep + 3));
    std::string fstype, source;
    rest >> fstype >> source;
    found = unescape_mountinfo(source);  // the last one is the top of the stack
  }
  return found;
}

std::string read_small(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

// "/sys/block/loop3/loop/backing_file" for "/dev/loop3".
std::string backing_file_of(const std::string& dev) {
  const auto slash = dev.rfind('/');
  return "/sys/block/" + dev.substr(slash + 1) + "/loop/backing_file";
}

}  // namespace

const char* fs_name(FsKind kind) noexcept {
  switch (kind) {
    case FsKind::xfs: return "xfs";
    case FsKind::btrfs: return "btrfs";
    case FsKind::ext4: return "ext4";
    case FsKind::tmpfs: return "tmpfs";
  }
  return "?";
}

void PrintTo(FsKind kind, std::ostream* os) { *os << fs_name(kind); }

std::uint64_t min_size(FsKind kind) noexcept {
  switch (kind) {
    case FsKind::xfs: return 300 * MiB;
    case FsKind::btrfs: return 109 * MiB;  // "minimum size ... is 114294784"
    case FsKind::ext4: return MiB / 2;
    case FsKind::tmpfs: return 4096;
  }
  return 0;
}

std::uint64_t default_size(FsKind kind) noexcept {
  switch (kind) {
    case FsKind::xfs: return 300 * MiB;
    case FsKind::btrfs: return 128 * MiB;
    case FsKind::ext4: return 32 * MiB;
    case FsKind::tmpfs: return 64 * MiB;
  }
  return 0;
}

std::uint64_t tiny_size(FsKind kind) noexcept {
  switch (kind) {
    case FsKind::xfs:
    case FsKind::btrfs: return min_size(kind);
    case FsKind::ext4:
    case FsKind::tmpfs: return 4 * MiB;
  }
  return 0;
}

LoopFs::LoopFs(FsKind kind, TempDir dir) noexcept
    : kind_(kind), dir_(std::move(dir)), image_(dir_ / "image"), mnt_(dir_ / "mnt") {}

std::unique_ptr<LoopFs> LoopFs::make(FsKind kind, const LoopFsOptions& opts, Outcome& outcome,
                                     std::string& why) {
  outcome = Outcome::failed;
  if (::geteuid() != 0) {
    outcome = Outcome::skipped;
    why = std::string("needs root to mount a ") + fs_name(kind) + " filesystem";
    return nullptr;
  }
  std::unique_ptr<LoopFs> fs;
  try {
    fs.reset(new LoopFs(kind, TempDir("snapfs-test-")));
    why = fs->mount_it(opts, outcome);
  } catch (const std::exception& e) {
    outcome = Outcome::failed;
    why = std::string("LoopFs setup: ") + e.what();
  }
  if (outcome != Outcome::mounted) return nullptr;  // the destructor cleans up
  fs->probe_features();
  return fs;
}

std::string LoopFs::mount_it(const LoopFsOptions& opts, Outcome& outcome) {
  const std::uint64_t size = opts.size != 0 ? opts.size : default_size(kind_);
  // mkdtemp made it 0700; tests that drop privileges must reach the mount.
  if (::chmod(dir_.path().c_str(), 0755) == -1) return sys_error("chmod", dir_.path().string(), errno);
  if (::mkdir(mnt_.c_str(), 0755) == -1) return sys_error("mkdir", mnt_.string(), errno);
  mnt_ = std::filesystem::canonical(mnt_);  // as /proc/self/mountinfo spells it

  crash_cleanup_ = CrashCleanup({mnt_}, dir_.path());
  if (kind_ == FsKind::tmpfs) {
    const std::string data = "size=" + std::to_string(size) + ",mode=0755";
    if (::mount("snapfs-test", mnt_.c_str(), "tmpfs", 0, data.c_str()) == -1) {
      const int e = errno;
      outcome = Outcome::skipped;
      return "the kernel refused to mount tmpfs: " + sys_error("mount", mnt_.string(), e);
    }
    mounted_ = true;
    device_ = "tmpfs";
    outcome = Outcome::mounted;
    return {};
  }

  std::vector<std::string> mkfs;
  switch (kind_) {
    case FsKind::xfs: mkfs = {"mkfs.xfs", "-q", "-m", "reflink=1"}; break;
    case FsKind::btrfs: mkfs = {"mkfs.btrfs", "-q"}; break;
    case FsKind::ext4: mkfs = {"mkfs.ext4", "-q", "-F"}; break;
    case FsKind::tmpfs: break;
  }
  if (find_program(mkfs[0]).empty()) {
    outcome = Outcome::skipped;
    return mkfs[0] + " not found (install " +
           (kind_ == FsKind::xfs ? "xfsprogs" : kind_ == FsKind::btrfs ? "btrfs-progs" : "e2fsprogs") +
           ")";
  }
  if (find_program("mount").empty()) {
    outcome = Outcome::skipped;
    return "mount(8) not found";
  }
  {  // A sparse image: only what mkfs and the test write takes disk space.
    const int fd = ::open(image_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd == -1) return sys_error("open", image_.string(), errno);
    const int r = ::ftruncate(fd, static_cast<off_t>(size));
    const int e = errno;
    ::close(fd);
    if (r == -1) return sys_error("ftruncate", image_.string(), e);
  }
  mkfs.push_back(image_.string());
  // mkfs.btrfs first checks that the image is not mounted by looking at
  // every mounted filesystem; while another test has an XFS shut down
  // (test_reliability.cpp) that look fails with EIO ("cannot check mount
  // status"). Such a shutdown lasts about a second: retry for a while.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (;;) {
    auto r = run_command(mkfs);
    if (r.status.ok()) break;
    const bool transient = r.output.find("cannot check mount status") != std::string::npos;
    if (!transient || std::chrono::steady_clock::now() > deadline)
      return mkfs[0] + " failed (" + r.status.describe() + "): " + r.output;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }

  const std::string mopts = opts.mount_options.empty() ? "loop" : "loop," + opts.mount_options;
  auto r = run_command({"mount", "-o", mopts, image_.string(), mnt_.string()});
  if (!r.status.ok()) {
    // No loop devices, no kernel module, a container without CAP_SYS_ADMIN...
    outcome = Outcome::skipped;
    return std::string("mount -o loop of a ") + fs_name(kind_) + " image was refused (" +
           r.status.describe() + "): " + r.output;
  }
  mounted_ = true;
  device_ = mount_source(mnt_);
  if (device_.rfind("/dev/loop", 0) != 0)
    return "mounted, but /proc/self/mountinfo shows source '" + device_ + "' for " + mnt_.string();
  loop_backing_ = read_small(backing_file_of(device_));
  outcome = Outcome::mounted;
  return {};
}

void LoopFs::probe_features() {
  const int a = ::open(mnt_.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (a == -1) return;  // no O_TMPFILE; nothing else is probed
  features_.tmpfile = true;
  const std::string block(4096, 'p');
  const bool wrote = ::pwrite(a, block.data(), block.size(), 0) == static_cast<ssize_t>(block.size());
  const int b = ::open(mnt_.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (b != -1 && wrote) {
    features_.reflink = ::ioctl(b, FICLONE, a) == 0;
    features_.reflink_errno = features_.reflink ? 0 : errno;
  }
  features_.user_xattr = ::fsetxattr(a, "user.snapfs.probe", "1", 1, 0) == 0;
  const std::string acl = acl_xattr({{0x01, 6}, {0x02, 4, 1234}, {0x04, 4}, {0x10, 4}, {0x20, 0}});
  features_.posix_acl =
      ::fsetxattr(a, "system.posix_acl_access", acl.data(), acl.size(), 0) == 0;
  if (b != -1) ::close(b);
  ::close(a);
}

std::string LoopFs::remount(bool read_only) {
  unsigned long flags = MS_REMOUNT;
  if (read_only) flags |= MS_RDONLY;
  if (::mount(nullptr, mnt_.c_str(), nullptr, flags, nullptr) == -1)
    return sys_error("mount(MS_REMOUNT)", mnt_.string(), errno);
  return {};
}

bool LoopFs::wait_loop_detached(std::string& why) noexcept {
  if (device_.rfind("/dev/loop", 0) != 0 || loop_backing_.empty()) return true;
  const std::string sysfile = backing_file_of(device_);
  // umount closes the device and autoclear detaches it; the detach may
  // finish just after umount2() returns, so wait for it with a deadline.
  const auto deadline = Clock::now() + kDetachDeadline;
  for (;;) {
    const std::string now = read_small(sysfile);
    if (now != loop_backing_) return true;  // detached, or reused by someone else
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(5ms);
  }
  // Still ours: detach it by hand.
  const int fd = ::open(device_.c_str(), O_RDONLY | O_CLOEXEC);
  const bool cleared = fd != -1 && ::ioctl(fd, LOOP_CLR_FD, 0) == 0;
  if (fd != -1) ::close(fd);
  why += (why.empty() ? "" : "; ") + device_ + " was still attached to " + loop_backing_ +
         (cleared ? " after unmount; detached it with LOOP_CLR_FD" : " and LOOP_CLR_FD failed");
  return false;
}

bool LoopFs::teardown(std::string& why) noexcept {
  bool ok = true;
  try {
    if (mounted_) {
      const auto deadline = Clock::now() + kUnmountDeadline;
      int busy_tries = 0;
      for (;;) {
        if (::umount2(mnt_.c_str(), UMOUNT_NOFOLLOW) == 0 || errno == EINVAL) {
          mounted_ = false;
          break;
        }
        const int e = errno;
        if (e != EBUSY || Clock::now() >= deadline) {
          // Something still uses it (a leaked fd or mapping, a child that is
          // still running): detach it lazily so the test run goes on.
          ok = false;
          why += (why.empty() ? "" : "; ") + sys_error("umount2", mnt_.string(), e) + " after " +
                 std::to_string(busy_tries) + " tries; unmounted lazily (MNT_DETACH)";
          if (::umount2(mnt_.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) == 0 || errno == EINVAL)
            mounted_ = false;
          break;
        }
        ++busy_tries;
        std::this_thread::sleep_for(10ms);
      }
      if (mounted_) return false;  // never delete below a live mount
      if (!wait_loop_detached(why)) ok = false;
    }
    std::string rm_why;
    if (!dir_.remove(rm_why)) {
      ok = false;
      why += (why.empty() ? "" : "; ") + rm_why;
    }
    // Only a complete cleanup disarms the helper; otherwise it tries again
    // (lazily) when this object goes away.
    if (ok) crash_cleanup_.disarm();
  } catch (const std::exception& e) {
    why += e.what();
    ok = false;
  }
  return ok;
}

LoopFs::~LoopFs() {
  std::string why;
  if (!teardown(why)) std::fprintf(stderr, "LoopFs(%s): teardown: %s\n", name(), why.c_str());
}

void LoopFsTest::SetUp() {
  LoopFs::Outcome outcome{};
  std::string why;
  fs_ = LoopFs::make(GetParam(), options(), outcome, why);
  if (outcome == LoopFs::Outcome::skipped) GTEST_SKIP() << why;
  ASSERT_EQ(outcome, LoopFs::Outcome::mounted) << why;
  work_ = fs_->root() / "work";
  ASSERT_EQ(::mkdir(work_.c_str(), 0755), 0) << errno_name(errno);
  ASSERT_EQ(::chmod(work_.c_str(), 0755), 0) << errno_name(errno);  // whatever the umask
}

void LoopFsTest::TearDown() {
  if (!fs_) return;
  std::string why;
  const bool ok = fs_->teardown(why);
  fs_.reset();
  EXPECT_TRUE(ok) << "LoopFs teardown: " << why;
}

std::string fs_param_name(const ::testing::TestParamInfo<FsKind>& info) {
  return fs_name(info.param);
}

}  // namespace snapfs::test
