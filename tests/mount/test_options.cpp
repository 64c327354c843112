// docs/semantics.md#shared-paths: -o shared=GLOB (ordinary shared
// semantics) and docs/semantics.md#exclusive-mode: -o exclusive (readers share
// the published file).
#include "fuse_mount.hpp"
#include "mount_util.hpp"

namespace snapfs::test {
namespace {

class Passthrough : public FuseMount {
protected:
  std::string mount_options() const override { return "shared=*.db:logs/*"; }
};

TEST_P(Passthrough, MatchingFilesAreShared) {
  ASSERT_EQ(::mkdir(m("logs").c_str(), 0755), 0);
  const int w = xopen(m("x.db"), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(w, 0);
  ASSERT_TRUE(pwrite_str(w, "abc", 0));
  EXPECT_EQ(read_file(b("x.db")), "abc");  // in B at once
  const int r = xopen(m("x.db"), O_RDONLY);
  ASSERT_GE(r, 0);
  ASSERT_TRUE(pwrite_str(w, "def", 3));
  EXPECT_EQ(pread_all(r), "abcdef");  // another open sees it before close
  ::close(r);
  ASSERT_EQ(xclose(w), 0);

  // A log followed while it grows.
  const int l = xopen(m("logs/app.log"), O_WRONLY | O_CREAT | O_APPEND, 0644);
  const int t = xopen(m("logs/app.log"), O_RDONLY);
  ASSERT_GE(l, 0);
  ASSERT_GE(t, 0);
  ASSERT_TRUE(write_str(l, "line1\n"));
  ASSERT_TRUE(write_str(l, "line2\n"));
  EXPECT_EQ(pread_all(t), "line1\nline2\n");
  EXPECT_EQ(fstat_of(t).st_size, 12);
  ::close(t);
  ::close(l);

  // Anything else keeps snapshot semantics.
  write_file(b("plain"), "old");
  const int p = xopen(m("plain"), O_RDWR);
  ASSERT_GE(p, 0);
  ASSERT_TRUE(pwrite_str(p, "new", 0));
  EXPECT_EQ(read_file(b("plain")), "old");
  ASSERT_EQ(xclose(p), 0);
  EXPECT_EQ(read_file(b("plain")), "new");
}

class Exclusive : public FuseMount {
protected:
  std::string mount_options() const override { return "exclusive"; }
};

TEST_P(Exclusive, ReadersKeepTheirVersion) {
  write_file(b("f"), "version 1");
  const int r = xopen(m("f"), O_RDONLY);
  ASSERT_GE(r, 0);
  const int w = xopen(m("f"), O_WRONLY | O_TRUNC);
  ASSERT_GE(w, 0);
  ASSERT_TRUE(write_str(w, "version 2, longer"));
  ASSERT_EQ(xclose(w), 0);
  EXPECT_EQ(read_file(b("f")), "version 2, longer");
  EXPECT_EQ(pread_all(r), "version 1");
  EXPECT_EQ(fstat_of(r).st_size, 9);
  ::close(r);
  EXPECT_EQ(read_file(m("f")), "version 2, longer");
}

class DurabilityFull : public FuseMount {
protected:
  std::string mount_options() const override { return "durability=full"; }
};

TEST_P(DurabilityFull, CommitsAsUsual) {
  write_file(b("f"), "old");
  const int w = xopen(m("f"), O_WRONLY | O_TRUNC);
  ASSERT_GE(w, 0);
  ASSERT_TRUE(write_str(w, "new"));
  ASSERT_EQ(xclose(w), 0);
  EXPECT_EQ(read_file(b("f")), "new");
}

class DurabilityFast : public DurabilityFull {
protected:
  std::string mount_options() const override { return "durability=fast"; }
};

TEST_P(DurabilityFast, CommitsAsUsual) {
  write_file(b("f"), "old");
  const int w = xopen(m("f"), O_WRONLY | O_APPEND);
  ASSERT_GE(w, 0);
  ASSERT_TRUE(write_str(w, "+new"));
  ASSERT_EQ(xclose(w), 0);
  EXPECT_EQ(read_file(b("f")), "old+new");
}

SNAPFS_INSTANTIATE_MOUNT(DurabilityFull);
SNAPFS_INSTANTIATE_MOUNT(DurabilityFast);
SNAPFS_INSTANTIATE_MOUNT(Passthrough);
SNAPFS_INSTANTIATE_MOUNT(Exclusive);

}  // namespace
}  // namespace snapfs::test
