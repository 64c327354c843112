// The test harness itself (tests/support): if it silently did nothing, every
// filesystem test would pass for the wrong reason, or leave mounts behind.
#include "support/crash_cleanup.hpp"
#include "support/files.hpp"
#include "support/process.hpp"
#include "support/proc_counts.hpp"
#include "support/tempdir.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

namespace snapfs::test {
namespace {

bool path_exists(const std::filesystem::path& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0;
}

// Polls with a deadline: the helper runs asynchronously by design.
bool gone_within(const std::filesystem::path& p, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (path_exists(p)) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

TEST(TempDir, IsUniqueAndRemovedWithEverythingInIt) {
  std::filesystem::path kept;
  {
    TempDir a("snapfs-unit-");
    TempDir b("snapfs-unit-");
    EXPECT_NE(a.path(), b.path());
    kept = a.path();
    ASSERT_EQ(::mkdir((a / "sub").c_str(), 0755), 0);
    write_file(a / "sub" / "file", "x");
    ASSERT_EQ(::symlink("/", (a / "link-to-root").c_str()), 0);  // must not be followed
    ASSERT_EQ(::chmod((a / "sub").c_str(), 0555), 0);             // a test may leave this
  }
  EXPECT_FALSE(path_exists(kept));
}

TEST(Process, RunCommandReportsStatusAndOutput) {
  auto r = run_command({"sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_TRUE(r.status.exited);
  EXPECT_EQ(r.status.code, 3);
  EXPECT_NE(r.output.find("out"), std::string::npos);
  EXPECT_NE(r.output.find("err"), std::string::npos);
  auto missing = run_command({"snapfs-no-such-program"});
  EXPECT_EQ(missing.status.code, 127);
}

TEST(Process, ArgumentsAreNotInterpretedByAShell) {
  auto r = run_command({"echo", "$HOME;", "a b", "'quoted'"});
  ASSERT_TRUE(r.status.ok()) << r.status.describe();
  EXPECT_EQ(r.output, "$HOME; a b 'quoted'\n");
}

TEST(Process, TimeoutKillsInsteadOfHanging) {
  const auto start = std::chrono::steady_clock::now();
  auto r = run_command({"sleep", "30"}, 200ms);
  EXPECT_TRUE(r.status.timed_out);
  EXPECT_EQ(r.status.signal, SIGKILL);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  auto c = run_in_child([] { return ::pause(); }, 200ms);
  EXPECT_TRUE(c.timed_out);
}

TEST(Process, ChildStatusShowsSignals) {
  // SIGTERM: sanitizers catch SIGBUS/SIGSEGV themselves and exit(1) instead.
  auto s = run_in_child([] { return ::raise(SIGTERM); });
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.signal, SIGTERM);
  EXPECT_EQ(s.describe(), "signal SIGTERM");
  EXPECT_FALSE(run_in_child([] { return ::raise(SIGBUS); }).ok());
  EXPECT_EQ(run_in_child([] { return 7; }).code, 7);
}

TEST(CrashCleanup, CleansUpWhenTheProcessDies) {
  TempDir base("snapfs-unit-");
  const auto dir = base / "victim";
  // A child arms a cleanup and dies without disarming it.
  auto s = run_in_child([&] {
    if (::mkdir(dir.c_str(), 0755) == -1) return 1;
    write_file(dir / "f", "x");
    CrashCleanup c({}, dir);
    ::raise(SIGKILL);
    return 2;
  });
  EXPECT_EQ(s.signal, SIGKILL) << s.describe();
  EXPECT_TRUE(gone_within(dir, 10s)) << "the helper did not remove " << dir;
}

TEST(CrashCleanup, DisarmedDoesNothing) {
  TempDir base("snapfs-unit-");
  const auto kept = base / "kept";
  const auto victim = base / "victim";
  ASSERT_EQ(::mkdir(kept.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(victim.c_str(), 0755), 0);
  // One disarmed and one armed helper, the disarmed one told first; once the
  // armed one has acted, the disarmed one has had its chance to misbehave.
  auto s = run_in_child([&] {
    CrashCleanup a({}, kept);
    CrashCleanup b({}, victim);
    a.disarm();
    ::raise(SIGKILL);
    return 2;
  });
  EXPECT_EQ(s.signal, SIGKILL) << s.describe();
  ASSERT_TRUE(gone_within(victim, 10s));
  EXPECT_TRUE(path_exists(kept)) << "a disarmed helper removed its directory";
}

TEST(ProcCounts, SeesANewFileMappingButNotAnonymousMemory) {
  const auto before = ProcCounts::now();
  void* anon = ::mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(anon, MAP_FAILED);
  EXPECT_EQ(ProcCounts::now().maps, before.maps);
  const int fd = ::open("/dev/zero", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  void* file = ::mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  ASSERT_NE(file, MAP_FAILED);
  EXPECT_EQ(ProcCounts::now().maps, before.maps + 1);
  ::munmap(file, 4096);
  ::munmap(anon, 1 << 20);
  EXPECT_EQ(ProcCounts::now().maps, before.maps);
}

TEST(ProcCounts, SeesANewDescriptor) {
  const auto before = ProcCounts::now();
  const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(ProcCounts::now().fds, before.fds + 1);
  const auto lines = open_fd_targets();
  EXPECT_NE(added_lines({}, lines).find("/dev/null"), std::string::npos);
  ::close(fd);
  EXPECT_EQ(ProcCounts::now().fds, before.fds);
}

}  // namespace
}  // namespace snapfs::test
