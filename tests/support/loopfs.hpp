// LoopFs: a real, freshly made filesystem for one test.
//
// In its own directory (<test_tmp_base()>/snapfs-test-XXXXXX) it makes a
// sparse image, runs mkfs and mounts it with `mount -o loop` (util-linux sets
// LO_FLAGS_AUTOCLEAR, so unmounting detaches the loop device), or mounts a
// tmpfs. Destruction unmounts (retrying EBUSY until a deadline, then lazily),
// makes sure the loop device is gone, and deletes the directory: also when
// the test failed, and (through CrashCleanup) when the test process died. Each test has its own image and loop device, so tests run
// in parallel.
//
// LoopFsTest is the GoogleTest fixture: TEST_P over FsKind, skipping loudly
// (GTEST_SKIP with the reason) when we are not root, mkfs is missing or the
// kernel refuses the mount. Features are probed, never inferred from versions.
#pragma once

#include "support/crash_cleanup.hpp"
#include "support/tempdir.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>

namespace snapfs::test {

enum class FsKind { xfs, btrfs, ext4, tmpfs };

const char* fs_name(FsKind kind) noexcept;
// So that test names and ctest entries say "xfs", not "4-byte object <00-00 00-00>".
void PrintTo(FsKind kind, std::ostream* os);

// The smallest images mkfs accepts (measured with xfsprogs 6.1 and
// btrfs-progs 6.2): mkfs.xfs refuses less than 300 MiB, mkfs.btrfs less than
// 114 MiB (with DUP metadata only ~33 MiB of it is usable for data).
std::uint64_t min_size(FsKind kind) noexcept;
// What tests get by default: the minimum where there is one, 32 MiB for
// ext4 and 64 MiB for tmpfs.
std::uint64_t default_size(FsKind kind) noexcept;
// For ENOSPC tests: as small as mkfs allows (xfs, btrfs), 4 MiB for ext4
// and tmpfs, so that filling it is quick and costs little memory.
std::uint64_t tiny_size(FsKind kind) noexcept;

struct LoopFsOptions {
  // Image size, or tmpfs size=. 0 means default_size(kind); tiny_size(kind)
  // for ENOSPC tests. At least min_size(kind).
  std::uint64_t size = 0;
  // Extra options for mount(8) of an image ("uquota" for XFS quotas); empty
  // for none. Not used for tmpfs.
  std::string mount_options = {};
};

// What the filesystem can do, found by trying it on O_TMPFILE files.
struct FsFeatures {
  bool tmpfile = false;     // open(O_TMPFILE) works
  bool reflink = false;     // ioctl(FICLONE) between two files works
  int reflink_errno = 0;    // what FICLONE said when it did not
  bool user_xattr = false;  // fsetxattr("user.*") works
  bool posix_acl = false;   // fsetxattr("system.posix_acl_access") works
};

class LoopFs {
public:
  enum class Outcome { mounted, skipped, failed };

  // Makes and mounts a filesystem. On `skipped` or `failed` the result is
  // null and `why` says what happened (e.g. "mkfs.btrfs not found").
  static std::unique_ptr<LoopFs> make(FsKind kind, const LoopFsOptions& opts, Outcome& outcome,
                                      std::string& why);

  LoopFs(const LoopFs&) = delete;
  LoopFs& operator=(const LoopFs&) = delete;
  // teardown(); problems are printed on stderr.
  ~LoopFs();

  // Unmounts, detaches the loop device and deletes everything. Returns false
  // with the reason when something had to be forced (EBUSY until the
  // deadline: something still holds the filesystem, e.g. a leaked fd or
  // mapping) or was left behind. Idempotent.
  bool teardown(std::string& why) noexcept;

  FsKind kind() const noexcept { return kind_; }
  const char* name() const noexcept { return fs_name(kind_); }
  // The mount point.
  const std::filesystem::path& root() const noexcept { return mnt_; }
  // "/dev/loopN", or "tmpfs".
  const std::string& device() const noexcept { return device_; }
  const FsFeatures& features() const noexcept { return features_; }

  // mount -o remount,ro / rw. Returns the error text, empty on success.
  std::string remount(bool read_only);

private:
  LoopFs(FsKind kind, TempDir dir) noexcept;
  std::string mount_it(const LoopFsOptions& opts, Outcome& outcome);
  void probe_features();
  bool wait_loop_detached(std::string& why) noexcept;

  FsKind kind_;
  TempDir dir_;
  std::filesystem::path image_;
  std::filesystem::path mnt_;
  std::string device_;
  std::string loop_backing_;  // /sys/block/loopN/loop/backing_file at mount time
  bool mounted_ = false;
  FsFeatures features_;
  // Armed before mounting; disarmed once teardown() has cleaned up. If this
  // process dies first, it unmounts and deletes for us.
  CrashCleanup crash_cleanup_;
};

// The fixture. Each test gets root()/"work" (mode 0755), a directory of its
// own so that "no litter" checks can list it without lost+found and friends.
class LoopFsTest : public ::testing::TestWithParam<FsKind> {
protected:
  void SetUp() override;
  void TearDown() override;

  // Override to ask for another image size.
  virtual LoopFsOptions options() const { return {}; }

  LoopFs& fs() { return *fs_; }
  const std::filesystem::path& work() const { return work_; }
  std::filesystem::path path(std::string_view name) const { return work_ / name; }
  FsKind kind() const { return GetParam(); }
  // xfs (made with -m reflink=1) and btrfs must be able to reflink.
  bool expects_reflink() const { return kind() == FsKind::xfs || kind() == FsKind::btrfs; }

private:
  std::unique_ptr<LoopFs> fs_;
  std::filesystem::path work_;
};

// Test names like "AllFs/Commit.ShrinkUnaligned/xfs".
std::string fs_param_name(const ::testing::TestParamInfo<FsKind>& info);

}  // namespace snapfs::test

// Instantiates a LoopFsTest-derived suite on the four filesystems of the
// seed's performance table.
#define SNAPFS_INSTANTIATE_ALL_FS(suite)                                                  \
  INSTANTIATE_TEST_SUITE_P(AllFs, suite,                                                  \
                           ::testing::Values(::snapfs::test::FsKind::xfs,                 \
                                             ::snapfs::test::FsKind::btrfs,               \
                                             ::snapfs::test::FsKind::ext4,                \
                                             ::snapfs::test::FsKind::tmpfs),              \
                           ::snapfs::test::fs_param_name)
