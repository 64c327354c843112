// docs/core.md: errors are values with the failing syscall and path; a failed
// call changes nothing and leaves no temporary name behind. Injected here:
// a directory the committer may not write (as an ordinary user: root passes
// every permission check), a read-only mount, and a full filesystem.
#include "fs_test.hpp"

#include <fcntl.h>
#include <sys/statvfs.h>

#include <cstdio>

namespace snapfs::test {
namespace {

// Collects failures inside a forked child, which cannot use gtest: they are
// printed on stderr and turned into the exit code.
class ChildChecks {
public:
  bool check(bool cond, const std::string& what) {
    if (!cond) {
      std::fprintf(stderr, "child check failed: %s\n", what.c_str());
      failed_ = true;
    }
    return cond;
  }
  template <typename T>
  bool fails_with(const core::Result<T>& r, int err, const std::string& what) {
    auto a = test::fails_with(r, err);
    return check(static_cast<bool>(a), what + ": " + a.message());
  }
  template <typename T>
  bool ok(const core::Result<T>& r, const std::string& what) {
    return check(static_cast<bool>(r), what + ": " + describe(r));
  }
  int exit_code() const { return failed_ ? 1 : 0; }

private:
  bool failed_ = false;
};

class Failure : public LoopFsTest {};

TEST_P(Failure, CommitIntoAReadOnlyDirectoryFailsAndChangesNothing) {
  const auto p = path("f");
  const std::string old = pattern(9000, 1);
  write_file(p, old);
  ASSERT_EQ(::chown(work().c_str(), kUid, kGid), 0);
  ASSERT_EQ(::chown(p.c_str(), kUid, kGid), 0);
  const std::string mine = pattern(7000, 2);

  const auto status = run_as(kUid, kGid, [&] {
    ChildChecks c;
    auto m = MmapMut::open(p);
    if (!c.ok(m, "MmapMut::open as the owner")) return 1;
    if (!c.ok(m->resize(mine.size()), "resize")) return 1;
    store(*m, 0, mine);
    c.check(::chmod(work().c_str(), 0555) == 0, "chmod 0555");
    c.fails_with(m->commit(), EACCES, "commit() into a 0555 directory");
    c.fails_with(m->link(path("g")), EACCES, "link() into a 0555 directory");
    c.check(m->chars() == mine, "the snapshot survives the failed calls");
    c.fails_with(m->commit_and_close(), EACCES, "commit_and_close() into a 0555 directory");
    c.check(read_file(p) == old, "the file is unchanged");
    c.check(list_dir(work()) == std::vector<std::string>{"f"}, "no temporary name left");
    // Writable again: the same object can still commit.
    c.check(::chmod(work().c_str(), 0755) == 0, "chmod 0755");
    c.ok(m->commit(), "commit() after the directory is writable again");
    return c.exit_code();
  });
  ASSERT_TRUE(status.ok()) << "child: " << status.describe();
  EXPECT_TRUE(read_file(p) == mine);
  EXPECT_EQ(list_dir(work()), std::vector<std::string>{"f"});
  EXPECT_EQ(stat_of(p).st_uid, kUid);
}

TEST_P(Failure, WithoutWritePermissionMmapWorksAndMmapMutIsRefused) {
  // Owned by root, 0644 in a 0755 root directory: an ordinary user can read
  // the file but can neither write it nor make an O_TMPFILE next to it.
  const auto p = path("f");
  write_file(p, "readable by all");
  const auto status = run_as(kUid, kGid, [&] {
    ChildChecks c;
    auto r = Mmap::open(p);
    if (c.ok(r, "Mmap::open of a readable file in an unwritable directory"))
      c.check(r->chars() == "readable by all", "Mmap content");
    c.fails_with(MmapMut::open(p), EACCES, "MmapMut::open without write permission");
    c.fails_with(MmapMut::create(path("new")), EACCES, "MmapMut::create in an unwritable dir");
    c.check(list_dir(work()) == std::vector<std::string>{"f"}, "no litter");
    return c.exit_code();
  });
  ASSERT_TRUE(status.ok()) << "child: " << status.describe();
}

TEST_P(Failure, ReadOnlyMount) {
  const auto p = path("f");
  write_file(p, "on a read-only mount");
  ASSERT_EQ(fs().remount(true), "");
  {
    auto r = Mmap::open(p);
    ASSERT_TRUE(ok(r)) << "a read-only snapshot does not need a writable filesystem";
    EXPECT_EQ(r->chars(), "on a read-only mount");
    EXPECT_TRUE(fails_with(MmapMut::open(p), EROFS));
    EXPECT_TRUE(fails_with(MmapMut::create(path("new")), EROFS));
  }
  ASSERT_EQ(fs().remount(false), "");
  EXPECT_EQ(list_dir(work()), std::vector<std::string>{"f"});
}

class FullFs : public LoopFsTest {
protected:
  LoopFsOptions options() const override { return {.size = tiny_size(kind())}; }

  // Frees the filler and waits until the space is really back (btrfs frees
  // extents at transaction commit; syncfs forces it).
  void free_space() {
    ASSERT_EQ(::unlink((fs().root() / "filler").c_str()), 0);
    const int fd = ::open(fs().root().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    EXPECT_EQ(::syncfs(fd), 0);
    ::close(fd);
  }
};

// docs/core.md: errors are reported as values with the failing syscall and
// path: a path a human can use, not "." or nothing.
::testing::AssertionResult names_the_file(const core::Error& e, const std::filesystem::path& p) {
  if (e.path().find(p.filename().string()) != std::string::npos ||
      e.path().find(p.parent_path().string()) != std::string::npos)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << e.message() << "\" names neither "
                                       << p.filename() << " nor " << p.parent_path();
}

TEST_P(FullFs, CommitFailsWithEnospcAndLeavesTheOriginal) {
  const auto p = path("target-file");
  const std::string old = pattern(256 * 1024, 1);
  const std::string mine = pattern(256 * 1024, 2);
  write_file(p, old);
  auto m = MmapMut::open(p);
  ASSERT_TRUE(ok(m));
  // write_at, not stores: the blocks are allocated now, while there is room.
  ASSERT_TRUE(ok(m->write_at(0, as_bytes(mine))));
  fill_filesystem(fs().root());

  auto r = m->commit();
  RecordProperty("commit_on_full_fs", describe(r));
  if (m->clone_method() == CloneMethod::copy || !r) {
    // A copy needs 256 KiB that do not exist. With reflinks the commit needs
    // no data blocks and may succeed; if it fails it must be ENOSPC too.
    EXPECT_TRUE(fails_with(r, ENOSPC));
    if (!r) {
      EXPECT_TRUE(names_the_file(r.error(), p));
    }
    EXPECT_TRUE(read_file(p) == old) << "a failed commit changed the file";
  } else {
    EXPECT_TRUE(read_file(p) == mine) << "a reflink commit on a full filesystem published junk";
  }
  EXPECT_EQ(list_dir(work()), std::vector<std::string>{"target-file"})
      << "litter after a commit on a full fs";
  EXPECT_TRUE(m->chars() == mine) << "the failed commit changed the snapshot";

  free_space();
  ASSERT_TRUE(ok(m->commit())) << "the snapshot can be committed once there is room";
  EXPECT_TRUE(read_file(p) == mine);
  EXPECT_EQ(list_dir(work()), std::vector<std::string>{"target-file"});
}

TEST_P(FullFs, WriteAtReportsEnospcAsAValue) {
  const auto p = path("f");
  write_file(p, "small");
  auto m = MmapMut::open(p);
  ASSERT_TRUE(ok(m));
  fill_filesystem(fs().root());
  const std::string big(1 << 20, 'B');
  EXPECT_TRUE(fails_with(m->write_at(m->size(), as_bytes(big)), ENOSPC));
  EXPECT_EQ(read_file(p), "small");
  EXPECT_EQ(list_dir(work()), std::vector<std::string>{"f"});
  // Whatever write_at left, the object stays consistent: readable without
  // SIGBUS, and what it shows is what a commit publishes.
  const std::string shown(m->chars());
  auto st = read_all_in_child(m->bytes(), shown);
  EXPECT_TRUE(st.ok()) << "reading the snapshot after ENOSPC: " << st.describe();
  free_space();
  ASSERT_TRUE(ok(m->commit()));
  EXPECT_TRUE(read_file(p) == shown) << "the commit published bytes the mapping does not show ("
                                     << read_file(p).size() << " bytes vs " << shown.size() << ")";
  ASSERT_TRUE(ok(m->write_at(m->size(), as_bytes("+more"))));
  ASSERT_TRUE(ok(m->commit()));
  EXPECT_TRUE(read_file(p) == shown + "+more");
}

TEST_P(FullFs, SnapshotOnAFullFilesystem) {
  const auto p = path("target-file");
  const std::string old = pattern(512 * 1024, 3);
  write_file(p, old);
  fill_filesystem(fs().root());
  // A reflink needs no data blocks; a copy needs 512 KiB that do not exist.
  auto m = MmapMut::open(p);
  RecordProperty("mmapmut_open_on_full_fs", describe(m));
  if (m) {
    EXPECT_TRUE(m->chars() == old);
    EXPECT_EQ(m->clone_method(), CloneMethod::reflink) << "a copy cannot fit";
  } else {
    EXPECT_TRUE(fails_with(m, ENOSPC));
    EXPECT_TRUE(names_the_file(m.error(), p));
  }
  auto r = Mmap::open(p);
  RecordProperty("mmap_open_on_full_fs", describe(r));
  if (r) {
    EXPECT_TRUE(r->chars() == old);
  } else {
    EXPECT_TRUE(fails_with(r, ENOSPC));
    EXPECT_TRUE(names_the_file(r.error(), p));
  }
  EXPECT_TRUE(read_file(p) == old);
  EXPECT_EQ(list_dir(work()), std::vector<std::string>{"target-file"});
}

SNAPFS_INSTANTIATE_ALL_FS(Failure);
SNAPFS_INSTANTIATE_ALL_FS(FullFs);

}  // namespace
}  // namespace snapfs::test
