// docs/core.md: a snapshot is point-in-time. Later writes, truncations,
// replacements or deletion of the file never change the bytes a caller sees,
// and truncation of the original cannot raise SIGBUS.
#include "fs_test.hpp"

#include <fcntl.h>

namespace snapfs::test {
namespace {

class Isolation : public LoopFsTest {
protected:
  // Three blocks and a bit: several pages, an unaligned tail.
  const std::string original_ = pattern(3 * 4096 + 100, 1);
};

TEST_P(Isolation, InPlaceWritesDoNotShowThroughMmap) {
  const auto p = path("f");
  write_file(p, original_);
  auto snap = Mmap::open(p);
  ASSERT_TRUE(ok(snap));
  // In place, no truncation: with reflinks this is the copy-on-write case.
  pwrite_file(p, 0, "XXXXXXXX");
  pwrite_file(p, 4096 + 7, std::string(5000, 'Y'));
  pwrite_file(p, original_.size(), "appended past the end");
  EXPECT_EQ(snap->size(), original_.size());
  EXPECT_TRUE(snap->chars() == original_) << "the snapshot changed after in-place writes";
  EXPECT_NE(read_file(p), original_);  // the writes did happen
}

TEST_P(Isolation, InPlaceWritesDoNotShowThroughMmapMut) {
  const auto p = path("f");
  write_file(p, original_);
  auto snap = MmapMut::open(p);
  ASSERT_TRUE(ok(snap));
  pwrite_file(p, 0, "XXXXXXXX");
  pwrite_file(p, 8000, std::string(300, 'Y'));
  EXPECT_TRUE(snap->chars() == original_) << "the writable snapshot changed";
}

TEST_P(Isolation, SnapshotWritesDoNotShowInTheFile) {
  const auto p = path("f");
  write_file(p, original_);
  auto snap = MmapMut::open(p);
  ASSERT_TRUE(ok(snap));
  std::memset(snap->data(), 'Z', snap->size());
  EXPECT_TRUE(read_file(p) == original_) << "a store into the mapping reached the file";
  auto other = Mmap::open(p);
  ASSERT_TRUE(ok(other));
  EXPECT_TRUE(other->chars() == original_);
}

TEST_P(Isolation, TruncationDoesNotRaiseSigbus) {
  const auto p = path("f");
  write_file(p, original_);
  auto snap = Mmap::open(p);
  ASSERT_TRUE(ok(snap));
  auto mut = MmapMut::open(p);
  ASSERT_TRUE(ok(mut));
  ASSERT_EQ(::truncate(p.c_str(), 0), 0);
  // A direct MAP_SHARED mapping of `p` would now raise SIGBUS on every page.
  auto st = read_all_in_child(snap->bytes(), original_);
  EXPECT_TRUE(st.ok()) << "reading the Mmap after truncation: " << st.describe();
  st = read_all_in_child(mut->bytes(), original_);
  EXPECT_TRUE(st.ok()) << "reading the MmapMut after truncation: " << st.describe();
  // Shrink to mid-page, then grow with a hole: still the old bytes.
  write_file(p, original_);
  auto snap2 = Mmap::open(p);
  ASSERT_TRUE(ok(snap2));
  ASSERT_EQ(::truncate(p.c_str(), 5000), 0);
  ASSERT_EQ(::truncate(p.c_str(), 1 << 20), 0);
  st = read_all_in_child(snap2->bytes(), original_);
  EXPECT_TRUE(st.ok()) << "reading after shrink + grow: " << st.describe();
  // Writing every page of the writable snapshot must not fault either.
  st = run_in_child([&] {
    for (std::size_t i = 0; i < mut->size(); i += 512) mut->data()[i] = std::byte{'w'};
    return 0;
  });
  EXPECT_TRUE(st.ok()) << "writing the MmapMut after truncation: " << st.describe();
}

TEST_P(Isolation, ReplacementDoesNotShowThrough) {
  const auto p = path("f");
  const auto q = path("f.new");
  write_file(p, original_);
  auto snap = Mmap::open(p);
  ASSERT_TRUE(ok(snap));
  auto mut = MmapMut::open(p);
  ASSERT_TRUE(ok(mut));
  write_file(q, "the replacement");
  ASSERT_EQ(::rename(q.c_str(), p.c_str()), 0);
  EXPECT_EQ(read_file(p), "the replacement");
  EXPECT_TRUE(snap->chars() == original_);
  EXPECT_TRUE(mut->chars() == original_);
}

TEST_P(Isolation, DeletionDoesNotShowThrough) {
  const auto p = path("f");
  write_file(p, original_);
  auto snap = Mmap::open(p);
  ASSERT_TRUE(ok(snap));
  auto mut = MmapMut::open(p);
  ASSERT_TRUE(ok(mut));
  ASSERT_EQ(::unlink(p.c_str()), 0);
  // The directory is empty: the snapshots have no names.
  EXPECT_EQ(list_dir(work()), std::vector<std::string>{});
  auto st = read_all_in_child(snap->bytes(), original_);
  EXPECT_TRUE(st.ok()) << st.describe();
  st = read_all_in_child(mut->bytes(), original_);
  EXPECT_TRUE(st.ok()) << st.describe();
}

TEST_P(Isolation, SnapshotsHaveNoName) {
  const auto p = path("f");
  write_file(p, original_);
  const struct stat before = stat_of(p);
  const auto root_before = list_dir(fs().root());
  auto snap = Mmap::open(p);
  ASSERT_TRUE(ok(snap));
  auto mut = MmapMut::open(p);
  ASSERT_TRUE(ok(mut));
  ASSERT_TRUE(ok(mut->resize(100)));
  EXPECT_EQ(list_dir(work()), std::vector<std::string>{"f"});
  EXPECT_EQ(list_dir(fs().root()), root_before);
  // Opening a snapshot is a read: the file itself is untouched.
  const struct stat after = stat_of(p);
  EXPECT_EQ(after.st_ino, before.st_ino);
  EXPECT_EQ(after.st_size, before.st_size);
  EXPECT_EQ(after.st_nlink, 1u);
  EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
  EXPECT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
}

TEST_P(Isolation, ManySnapshotsOfOneFileAreIndependent) {
  const auto p = path("f");
  std::vector<Mmap> snaps;
  std::vector<std::string> expected;
  for (std::uint32_t i = 0; i < 8; ++i) {
    expected.push_back(pattern(1000 + 3000 * i, 10 + i));
    write_file(p, expected.back());
    auto s = Mmap::open(p);
    ASSERT_TRUE(ok(s));
    snaps.push_back(std::move(*s));
  }
  for (std::size_t i = 0; i < snaps.size(); ++i)
    EXPECT_TRUE(snaps[i].chars() == expected[i]) << "snapshot " << i;
}

SNAPFS_INSTANTIATE_ALL_FS(Isolation);

}  // namespace
}  // namespace snapfs::test
