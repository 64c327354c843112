// Reliability under failure of the backing filesystem (scenarios (d) and
// (f)): the short CI versions of scripts/soak/run.sh (docs/reliability.md).
//
// Both run on XFS only (a loop-mounted image, reflink=1) and shut it down
// the way `xfs_io -x -c shutdown X` does (XFS_IOC_GOINGDOWN with
// XFS_FSOP_GOING_FLAGS_NOLOGFLUSH: the in-memory log is thrown away, like a
// power loss). The ioctl is issued directly rather than by running xfs_io:
// a fork would give the child copies of the writers' open descriptors, and
// its exec's close of them sends FLUSHes from another process, which commit
// snapshots that ftruncate marked "dirty for anyone" (design-fuse.md) —
// a harness artefact, not what these tests are about. They skip loudly when
// the kernel refuses the ioctl.
#include "fuse_mount.hpp"

#include "../../scripts/soak/soak_format.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace snapfs::test {
namespace {

using namespace std::chrono_literals;

constexpr unsigned kFiles = 12;

std::string fname(unsigned f) { return "f" + std::to_string(f); }

// XFS_IOC_GOINGDOWN, XFS_FSOP_GOING_FLAGS_NOLOGFLUSH: what `xfs_io -x -c
// shutdown` (without -f) does. 0 or errno.
int shutdown_xfs(const fs::path& mnt) {
  const int fd = ::open(mnt.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  std::uint32_t flags = 2;
  const int r = ::ioctl(fd, _IOR('X', 125, std::uint32_t), &flags);
  const int e = r == 0 ? 0 : errno;
  ::close(fd);
  return e;
}

// The source device of the mount at `mnt` (/proc/self/mountinfo).
std::string mount_source(const fs::path& mnt) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string id, parent, dev, root, mp;
    ls >> id >> parent >> dev >> root >> mp;
    if (mp != mnt.string()) continue;
    const auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream rest(line.substr(dash + 3));
    std::string type, source;
    rest >> type >> source;
    return source;
  }
  return {};
}

// Unmounts the (shut down) XFS at `mnt` and mounts its image again: XFS log
// recovery, as after a power loss. Empty on success, else what failed.
std::string cycle_xfs(const fs::path& mnt) {
  const std::string dev = mount_source(mnt);
  if (dev.rfind("/dev/loop", 0) != 0) return "not a loop mount: '" + dev + "'";
  std::ifstream bf("/sys/block/" + dev.substr(5) + "/loop/backing_file");
  std::string image;
  std::getline(bf, image);
  if (image.empty()) return "no backing file for " + dev;
  CommandResult r;
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  do {
    r = run_command({"umount", mnt.string()}, 20s);
    if (r.status.ok()) break;
    std::this_thread::sleep_for(100ms);
  } while (std::chrono::steady_clock::now() < deadline);
  if (!r.status.ok()) return "umount " + mnt.string() + ": " + r.output;
  r = run_command({"mount", "-o", "loop", image, mnt.string()}, 30s);
  if (!r.status.ok()) return "mount " + image + ": " + r.output;
  return {};
}

// Temporary names of commits anywhere in B, and anything in staging.
std::vector<std::string> leftovers(const fs::path& b) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(b, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    const std::string n = it->path().filename().string();
    if ((n.rfind(".snapfs-", 0) == 0 && n.size() > 4 && n.ends_with(".tmp")) ||
        it->path().parent_path() == b / ".snapfs" / "staging")
      out.push_back(it->path().string());
  }
  return out;
}

// Reads `path` (0, or -errno).
int slurp(const fs::path& path, std::string& out) {
  out.clear();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      return -e;
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return 0;
}

bool write_version(int fd, const std::string& v) {
  return ::pwrite(fd, v.data(), v.size(), 0) == static_cast<ssize_t>(v.size()) &&
         ::ftruncate(fd, static_cast<off_t>(v.size())) == 0;
}

// (d) power loss: the backing XFS is shut down (log not flushed) during a
// commit storm with durability=full. After log recovery every file is one
// whole version, and at least the last version whose close() returned 0.
class PowerLoss : public FuseMount {
protected:
  std::string mount_options() const override { return "durability=full"; }
};

TEST_P(PowerLoss, AcknowledgedCommitsSurviveXfsShutdown) {
  const fs::path xfs = backing().parent_path();
  for (unsigned f = 0; f < kFiles; ++f) write_file(b(fname(f)), soak::make_version(f, 0, 99, 100));
  ::sync();
  constexpr unsigned kWriters = 3;
  for (unsigned round = 1; round <= 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    std::array<std::atomic<unsigned long long>, kFiles> acked{};
    std::atomic<bool> stop{false};
    std::atomic<int> commits{0};
    std::vector<std::thread> ts;
    for (unsigned w = 0; w < kWriters; ++w) {
      ts.emplace_back([&, w] {
        for (unsigned long long i = 1; !stop.load(); ++i) {
          const unsigned f = w + kWriters * static_cast<unsigned>(i % (kFiles / kWriters));
          const unsigned long long v = round * 1000000ULL + i;
          const int fd = ::open(m(fname(f)).c_str(), O_RDWR | O_CLOEXEC);
          if (fd < 0) {
            if (errno == ENOENT || errno == ENOTCONN || errno == ECONNABORTED) return;
            std::this_thread::sleep_for(1ms);
            continue;
          }
          const bool wrote = write_version(fd, soak::make_version(f, v, w, 500 + (i % 13) * 2500));
          // Only after close() returned 0 does the commit count as acknowledged.
          if (::close(fd) == 0 && wrote) {
            acked[f].store(v);
            ++commits;
          }
        }
      });
    }
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (commits.load() < 20 + static_cast<int>(round) * 7 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(1ms);
    const int e = shutdown_xfs(xfs);
    if (e == ENOTTY || e == EOPNOTSUPP || e == EPERM || e == ENOSYS) {
      stop = true;
      for (auto& t : ts) t.join();
      GTEST_SKIP() << "the kernel refuses XFS_IOC_GOINGDOWN (what xfs_io -x -c shutdown uses): "
                   << std::strerror(e);
    }
    ASSERT_EQ(e, 0) << std::strerror(e);
    std::this_thread::sleep_for(50ms);
    stop = true;
    for (auto& t : ts) t.join();
    EXPECT_GE(commits.load(), 20) << "too few commits before the shutdown";
    EXPECT_EQ(::kill(daemon_pid(), 0), 0) << "the daemon died when its backing fs shut down";
    kill_daemon();
    const std::string why_cycle = cycle_xfs(xfs);
    ASSERT_TRUE(why_cycle.empty()) << why_cycle;
    for (unsigned f = 0; f < kFiles; ++f) {
      std::string data;
      ASSERT_EQ(slurp(b(fname(f)), data), 0) << fname(f);
      const soak::Parsed p = soak::parse(data);
      EXPECT_TRUE(p.whole && p.f == f) << fname(f) << ": " << p.why;
      EXPECT_GE(p.v, acked[f].load()) << fname(f) << ": an acknowledged commit was lost";
    }
    std::string why;
    ASSERT_TRUE(remount(why)) << why << "\n" << daemon_log();
    EXPECT_EQ(leftovers(backing()), std::vector<std::string>{});
    for (unsigned f = 0; f < kFiles; f += 5) EXPECT_EQ(read_file(m(fname(f))), read_file(b(fname(f))));
  }
}

// (f) the backing filesystem fails under open descriptors: every operation
// through M errors (never wrong data, never a close() that claims a commit),
// the daemon stays up, and unmounting makes it exit normally.
class FailingBacking : public FuseMount {};

TEST_P(FailingBacking, EveryOperationErrorsAndUnmountWorks) {
  const fs::path xfs = backing().parent_path();
  for (unsigned f = 0; f < kFiles; ++f) write_file(b(fname(f)), soak::make_version(f, 0, 99, 3000 + f));
  ::sync();
  std::vector<std::pair<int, unsigned>> ro, rw;
  for (unsigned f = 0; f < kFiles; ++f) {
    const int fd = ::open(m(fname(f)).c_str(), (f % 2 ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    ASSERT_GE(fd, 0) << fname(f) << ": " << std::strerror(errno);
    if (f % 2) {
      ASSERT_TRUE(write_version(fd, soak::make_version(f, 7, 1, 4000)));
      rw.emplace_back(fd, f);
    } else {
      char c;
      ASSERT_EQ(::pread(fd, &c, 1, 0), 1);
      ro.emplace_back(fd, f);
    }
  }
  const int e = shutdown_xfs(xfs);
  if (e == ENOTTY || e == EOPNOTSUPP || e == EPERM || e == ENOSYS) {
    for (auto& [fd, f] : ro) ::close(fd);
    for (auto& [fd, f] : rw) ::close(fd);
    GTEST_SKIP() << "the kernel refuses XFS_IOC_GOINGDOWN (what xfs_io -x -c shutdown uses): "
                 << std::strerror(e);
  }
  ASSERT_EQ(e, 0) << std::strerror(e);
  for (auto& [fd, f] : ro) {
    std::string buf(65536, '\0');
    const ssize_t n = ::pread(fd, buf.data(), buf.size(), 0);
    if (n > 0) {
      // Data after the failure would have to be the snapshot's, exactly.
      const std::string want = soak::make_version(f, 0, 99, 3000 + f);
      EXPECT_EQ(buf.substr(0, static_cast<std::size_t>(n)), want.substr(0, static_cast<std::size_t>(n)))
          << fname(f) << ": wrong data after the shutdown";
    }
    EXPECT_LT(n, 0) << fname(f) << ": read succeeded on a shut-down backing fs";
    struct stat st {};
    EXPECT_NE(::fstat(fd, &st), 0) << fname(f);
    ::close(fd);
  }
  for (auto& [fd, f] : rw) {
    EXPECT_LT(::pwrite(fd, "x", 1, 0), 0) << fname(f);
    struct stat st {};
    EXPECT_NE(::fstat(fd, &st), 0) << fname(f);
    errno = 0;
    EXPECT_NE(::close(fd), 0) << fname(f) << ": close() acknowledged a commit on a dead fs";
  }
  for (unsigned f = 0; f < kFiles; f += 3) {
    struct stat st {};
    EXPECT_NE(::stat(m(fname(f)).c_str(), &st), 0) << fname(f);
    std::string data;
    EXPECT_LT(slurp(m(fname(f)), data), 0) << fname(f);
  }
  const pid_t pid = daemon_pid();
  EXPECT_EQ(::kill(pid, 0), 0) << "the daemon died when its backing fs shut down";
#ifdef SNAPFS_CLI
  const auto um = run_command({SNAPFS_CLI, "umount", mnt().string()}, 20s);
#else
  const auto um = run_command({"fusermount3", "-u", mnt().string()}, 20s);
#endif
  EXPECT_TRUE(um.status.ok()) << um.status.describe() << ": " << um.output;
  // The daemon exits by itself (exit status 0), observed without reaping it
  // so that the fixture's kill_daemon() can reap it.
  siginfo_t si{};
  bool exited = false;
  for (auto deadline = std::chrono::steady_clock::now() + 10s;
       std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(10ms)) {
    si = {};
    if (::waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        si.si_pid == pid) {
      exited = true;
      break;
    }
  }
  EXPECT_TRUE(exited) << "the daemon did not exit after the unmount";
  if (exited) {
    EXPECT_TRUE(si.si_code == CLD_EXITED && si.si_status == 0)
        << "si_code " << si.si_code << " status " << si.si_status;
  }
  kill_daemon();  // reaps (or ends it, if it hung)
  const std::string why_cycle = cycle_xfs(xfs);
  ASSERT_TRUE(why_cycle.empty()) << why_cycle;
  for (unsigned f = 0; f < kFiles; ++f) {
    std::string data;
    ASSERT_EQ(slurp(b(fname(f)), data), 0);
    EXPECT_EQ(data, soak::make_version(f, 0, 99, 3000 + f)) << fname(f) << ": changed by a failed commit";
  }
  std::string why;
  ASSERT_TRUE(remount(why)) << why << "\n" << daemon_log();
  EXPECT_EQ(leftovers(backing()), std::vector<std::string>{});
  EXPECT_EQ(read_file(m(fname(1))), soak::make_version(1, 0, 99, 3001));
}

INSTANTIATE_TEST_SUITE_P(Fs, PowerLoss, ::testing::Values(FsKind::xfs), param_name);
INSTANTIATE_TEST_SUITE_P(Fs, FailingBacking, ::testing::Values(FsKind::xfs), param_name);

}  // namespace
}  // namespace snapfs::test
