// The four tests of the Rust seed (seed/lib.rs, mod tests), ported: the seed
// ran them in /tmp and /var/tmp; here they run on each filesystem.
#include "fs_test.hpp"

namespace snapfs::test {
namespace {

class Seed : public LoopFsTest {};

TEST_P(Seed, Mmap) {
  const auto p = path("mmap");
  write_file(p, "Hello world!");
  auto f = Mmap::open(p);
  ASSERT_TRUE(ok(f));
  write_file(p, "Goodbye world!");
  EXPECT_EQ(f->chars(), "Hello world!");
  ASSERT_EQ(::unlink(p.c_str()), 0);
  EXPECT_EQ(f->chars(), "Hello world!");
}

TEST_P(Seed, MmapMut) {
  const auto p = path("mmap_mut");
  write_file(p, "Hello world!");
  {
    auto f = MmapMut::open(p);
    ASSERT_TRUE(ok(f));
    EXPECT_EQ(f->chars(), "Hello world!");
    store(*f, 6, "sekai");
    EXPECT_EQ(f->chars(), "Hello sekai!");
    EXPECT_EQ(read_file(p), "Hello world!");
    ASSERT_TRUE(ok(f->commit()));
  }  // dropped, as the seed's std::mem::drop(f)
  EXPECT_EQ(read_file(p), "Hello sekai!");
  ASSERT_EQ(::unlink(p.c_str()), 0);
}

TEST_P(Seed, ZeroLen) {
  const auto p = path("zero_len");
  write_file(p, "");
  auto f = Mmap::open(p);
  ASSERT_TRUE(ok(f));
  EXPECT_EQ(f->chars(), "");
  EXPECT_TRUE(f->empty());
  ASSERT_EQ(::unlink(p.c_str()), 0);
  EXPECT_EQ(f->chars(), "");
}

TEST_P(Seed, ZeroLenMut) {
  const auto p = path("zero_len_mut");
  write_file(p, "");
  {
    auto f = MmapMut::open(p);
    ASSERT_TRUE(ok(f));
    EXPECT_EQ(f->chars(), "");
    ASSERT_TRUE(ok(f->resize(12)));
    store(*f, 0, "Hello world!");
    EXPECT_EQ(read_file(p), "");
    ASSERT_TRUE(ok(f->commit()));
    EXPECT_EQ(read_file(p), "Hello world!");
    store(*f, 6, "sekai");
    EXPECT_EQ(f->chars(), "Hello sekai!");
    EXPECT_EQ(read_file(p), "Hello world!");
    ASSERT_TRUE(ok(f->commit()));
  }
  EXPECT_EQ(read_file(p), "Hello sekai!");
  ASSERT_EQ(::unlink(p.c_str()), 0);
}

SNAPFS_INSTANTIATE_ALL_FS(Seed);

}  // namespace
}  // namespace snapfs::test
