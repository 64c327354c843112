// WarmSnapshots (fuse/warm.hpp): the byte bound on copies kept warm.
#include "warm.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>

namespace snapfs::fuse {
namespace {

struct stat version(ino_t ino, off_t size) {
  struct stat st {};
  st.st_dev = 1;
  st.st_ino = ino;
  st.st_size = size;
  st.st_mtim = {100, 0};
  st.st_ctim = {100, 0};
  return st;
}

std::shared_ptr<WarmSnapshot> snapshot_of(off_t size) {
  auto w = std::make_shared<WarmSnapshot>();
  w->size = size;
  return w;
}

TEST(UnitWarmSnapshots, CopiesKeptWarmStayWithinTheirByteBoundLeastRecentlyUsedFirst) {
  WarmSnapshots w(std::chrono::seconds(60), 100, 100);
  w.set_byte_capacity(10000);
  w.insert(version(1, 4000), snapshot_of(4000));
  w.insert(version(2, 4000), snapshot_of(4000));
  ASSERT_NE(w.find(version(1, 4000)), nullptr);  // 1 is now the most recently used
  w.insert(version(3, 4000), snapshot_of(4000));
  EXPECT_EQ(w.bytes(), 8000u);
  EXPECT_EQ(w.find(version(2, 4000)), nullptr) << "the least recently used goes first";
  EXPECT_NE(w.find(version(1, 4000)), nullptr);
  EXPECT_NE(w.find(version(3, 4000)), nullptr);
  w.evict_inode(1, 1);
  EXPECT_EQ(w.bytes(), 4000u);
  // One larger than the whole bound is not kept at all.
  w.insert(version(4, 20000), snapshot_of(20000));
  EXPECT_EQ(w.find(version(4, 20000)), nullptr);
  EXPECT_LE(w.bytes(), 10000u);
  w.clear();
  EXPECT_EQ(w.bytes(), 0u);
  EXPECT_EQ(w.size(), 0u);
}

}  // namespace
}  // namespace snapfs::fuse
