// FuseMount: the mount-test fixture (docs/code-style.md §6).
//
// Per test: a fresh backing filesystem (LoopFs: tmpfs or XFS with reflink=1)
// whose directory "b" is B, a mount point M in a TempDir, and the daemon
// (snapfs_testd, foreground) as a child process whose stderr goes to a log
// file. SetUp waits with a deadline until /proc/self/mountinfo shows M.
// TearDown unmounts (fusermount3 -u, falling back to umount -l), reaps the
// daemon, fails the test if the daemon logged anything at warn or worse, and
// removes everything: also when the test failed.
#pragma once

#include "support/files.hpp"
#include "support/loopfs.hpp"
#include "support/process.hpp"
#include "support/tempdir.hpp"

#include <gtest/gtest.h>

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <thread>
#include <memory>
#include <string>
#include <vector>

namespace snapfs::test {

class FuseMount : public ::testing::TestWithParam<FsKind> {
protected:
  void SetUp() override;
  void TearDown() override;

  // A test that provokes a daemon error (a failed commit) calls this so that
  // error lines in the daemon log do not fail it; warnings still do.
  void expect_daemon_errors() { allow_errors_ = true; }

  // Extra daemon options ("-o" list) for a derived fixture.
  virtual std::string mount_options() const { return ""; }
  // Size of the backing filesystem (LoopFsOptions::size); 0: the default.
  virtual std::uint64_t fs_size() const { return 0; }
  // Extra mount options of the backing filesystem (LoopFsOptions).
  virtual std::string fs_mount_options() const { return ""; }
  // RLIMIT_NOFILE (soft and hard) of the daemon; 0: inherited.
  virtual unsigned daemon_nofile() const { return 0; }
  // The fixture's options are snapfs_testd's own (test_pause=): mount with
  // it even where the suite mounts with the snapfs command.
  virtual bool needs_testd() const { return false; }

  const fs::path& backing() const { return b_; }
  const fs::path& mnt() const { return m_; }
  fs::path b(std::string_view name) const { return b_ / name; }
  fs::path m(std::string_view name) const { return m_ / name; }
  // A directory outside B (and outside M) on the test's own tree.
  fs::path outside() const { return outside_; }
  FsKind kind() const { return GetParam(); }
  std::string daemon_log() const;
  // SIGKILLs the daemon (a crash), reaps it and waits for auto_unmount to
  // take the mount away (umount -l after 5 s). Teardown then only cleans up.
  void kill_daemon();
  pid_t daemon_pid() const { return daemon_; }
  // The kernel serves this mount's opens from their snapshots (status
  // "data_path"); false: the daemon serves them (not root, an old kernel,
  // or -o kernel_io=off). Read once the mount is up.
  bool kernel_passthrough() const { return kernel_passthrough_; }
  // One field of the daemon's status (the user.snapfs.status attribute of
  // M): a number as its digits, a string without its quotes; "" if absent.
  std::string status_field(std::string_view name) const;
  // After kill_daemon(): a new daemon on the same B and M (the next mount,
  // whose recovery runs before it serves). False with `why` on failure.
  bool remount(std::string& why);

  // Another daemon over the same B, mounted at a new mount point beside
  // M (as a second container or machine would have it): its mount point,
  // or empty with `why`. Stopped at teardown, and its log checked, like
  // the first.
  fs::path add_view(std::string& why);
  // SIGKILLs the daemon of the view at `m` (as kill_daemon()).
  void kill_view(const fs::path& m);

private:
  struct View {
    fs::path m, log;
    pid_t pid = -1;
    bool mounted = false;
  };
  bool start_daemon(std::string& why);
  bool stop_daemon(std::string& why);
  bool spawn_view(const fs::path& m, const fs::path& log, pid_t& pid, bool& mounted,
                  std::string& why);
  static bool stop_view(const fs::path& m, pid_t& pid, bool& mounted, std::string& why);
  std::vector<View> views_;

  // Kills the daemon if the test runs past its deadline: a process blocked
  // in a FUSE request (D state) would otherwise outlive ctest's TIMEOUT.
  void start_watchdog();
  void stop_watchdog();

  std::unique_ptr<LoopFs> fs_;
  std::thread watchdog_;
  std::mutex wd_mu_;
  std::condition_variable wd_cv_;
  bool wd_stop_ = false;
  bool wd_waiting_ = false;  // the watchdog thread is in its wait
  bool wd_fired_ = false;
  std::unique_ptr<TempDir> dir_;
  fs::path b_, m_, outside_, log_;
  pid_t daemon_ = -1;
  bool mounted_ = false;
  bool kernel_passthrough_ = false;
  bool allow_errors_ = false;
};

// The mount point of the test, as /proc/self/mountinfo shows it: true if
// mounted (with fstype `fstype`, if given).
bool is_mounted(const fs::path& mnt, std::string_view fstype = {});

std::string param_name(const ::testing::TestParamInfo<FsKind>& info);

}  // namespace snapfs::test

#define SNAPFS_INSTANTIATE_MOUNT(suite)                                                   \
  INSTANTIATE_TEST_SUITE_P(Fs, suite,                                                     \
                           ::testing::Values(::snapfs::test::FsKind::tmpfs,               \
                                             ::snapfs::test::FsKind::xfs),                \
                           ::snapfs::test::param_name)

// The same on every backing filesystem snapfs supports (btrfs and ext4
// skip loudly where their mkfs is missing).
#define SNAPFS_INSTANTIATE_MOUNT_ALL_FS(suite)                                            \
  INSTANTIATE_TEST_SUITE_P(Fs, suite,                                                     \
                           ::testing::Values(::snapfs::test::FsKind::tmpfs,               \
                                             ::snapfs::test::FsKind::xfs,                 \
                                             ::snapfs::test::FsKind::btrfs,               \
                                             ::snapfs::test::FsKind::ext4),               \
                           ::snapfs::test::param_name)
