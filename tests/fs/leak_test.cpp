// docs/core.md: no call leaks a descriptor or a mapping, successful or not.
// Counts /proc/self/fd and /proc/self/maps around a batch of operations,
// after one warm-up round (first calls may set up lazily allocated state).
#include "fs_test.hpp"

#include <fcntl.h>

#include "support/proc_counts.hpp"

namespace snapfs::test {
namespace {

class Leaks : public LoopFsTest {
protected:
  // FailedCommitsLeakNothing fills it.
  LoopFsOptions options() const override { return {.size = tiny_size(kind())}; }

  // One round of everything, failures included. Returns how many calls
  // behaved unexpectedly (the leak check is the point, not the results).
  int round(int i) {
    int odd = 0;
    const auto p = path("f");
    write_file(p, pattern(20000, static_cast<std::uint32_t>(i)));
    {
      auto r = Mmap::open(p);
      odd += !r;
      auto e = Mmap::open(path("missing"));
      odd += !!e;
      auto d = Mmap::open(work());
      odd += !!d;
    }
    {
      auto m = MmapMut::open(p);
      if (!m) return odd + 1;
      odd += !m->resize(50000);
      odd += !m->write_at(60000, as_bytes("x"));
      odd += !m->commit();
      odd += !m->resize(3000);
      odd += !m->commit();
      odd += !m->resize(0);
      odd += !m->commit();
      odd += !m->resize(9000);
      odd += !m->commit_and_close();
      odd += !!m->commit();  // closed: fails
    }
    {
      auto m = MmapMut::open(p);
      if (!m) return odd + 1;
      odd += !m->link(path("g" + std::to_string(i)));
    }
    {
      auto m = MmapMut::open(p);
      if (!m) return odd + 1;
      odd += !m->resize(5000);
    }  // dropped without commit
    {
      auto c = MmapMut::create(path("c"));
      if (!c) return odd + 1;
      odd += !c->write_at(0, as_bytes("created"));
      odd += !c->commit();
      auto bad = MmapMut::create(path("no-dir") / "x");
      odd += !!bad;
      // A commit that fails: a directory is in the way.
      const auto d = path("d");
      ::mkdir(d.c_str(), 0755);
      auto over = MmapMut::create(d);
      if (over) {
        odd += !over->write_at(0, as_bytes("y"));
        odd += !!over->commit();
        odd += !!over->commit_and_close();
      }
    }
    return odd;
  }
};

TEST_P(Leaks, NoDescriptorOrMappingIsLeaked) {
  ASSERT_EQ(round(0), 0);
  const auto fds_before = open_fd_targets();
  const auto maps_before = file_mapping_lines();
  const ProcCounts before = ProcCounts::now();
  for (int i = 1; i <= 10; ++i) ASSERT_EQ(round(i), 0) << "round " << i;
  const ProcCounts after = ProcCounts::now();
  EXPECT_EQ(after.fds, before.fds) << "new descriptors:\n"
                                   << added_lines(fds_before, open_fd_targets());
  EXPECT_EQ(after.maps, before.maps) << "new mappings:\n"
                                     << added_lines(maps_before, file_mapping_lines());
}

TEST_P(Leaks, FailedCommitsLeakNothing) {
  const auto p = path("f");
  write_file(p, pattern(30000, 1));
  auto m = MmapMut::open(p);
  ASSERT_TRUE(ok(m));
  // Fill the filesystem so that every commit that needs space fails.
  fill_filesystem(fs().root());
  const std::string more(1 << 16, 'z');
  auto attempt = [&] {
    (void)m->commit();
    (void)m->write_at(m->size(), as_bytes(more));
    auto r = Mmap::open(p);
    auto c = MmapMut::open(p);
  };
  attempt();  // warm-up: allocator arenas and the like appear once
  const auto fds_before = open_fd_targets();
  const auto maps_before = file_mapping_lines();
  const ProcCounts before = ProcCounts::now();
  for (int i = 0; i < 10; ++i) attempt();
  const ProcCounts after = ProcCounts::now();
  EXPECT_EQ(after.fds, before.fds) << added_lines(fds_before, open_fd_targets());
  EXPECT_EQ(after.maps, before.maps) << added_lines(maps_before, file_mapping_lines());
  EXPECT_EQ(list_dir(work()), std::vector<std::string>{"f"});
}

SNAPFS_INSTANTIATE_ALL_FS(Leaks);

}  // namespace
}  // namespace snapfs::test
