// Mapping (docs/code-style.md §2): owns one mmap region, unmaps it exactly once, moves
// leave the source empty, remap() follows the length in both directions.
#include "support/proc_counts.hpp"
#include "support/result_check.hpp"

#include <snapfs/core/mapping.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <type_traits>

namespace snapfs::core {
namespace {

using test::address_is_mapped;
using test::ok;

static_assert(std::is_nothrow_move_constructible_v<Mapping>);
static_assert(std::is_nothrow_move_assignable_v<Mapping>);
static_assert(!std::is_copy_constructible_v<Mapping>);

// A memfd with `content`: no filesystem needed.
class Memfd {
public:
  explicit Memfd(const std::string& content) : fd_(::memfd_create("snapfs-unit", MFD_CLOEXEC)) {
    if (fd_ >= 0 && !content.empty())
      written_ = ::pwrite(fd_, content.data(), content.size(), 0) ==
                 static_cast<ssize_t>(content.size());
  }
  Memfd(const Memfd&) = delete;
  Memfd& operator=(const Memfd&) = delete;
  ~Memfd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  bool good() const { return fd_ >= 0 && written_; }
  std::string read(std::size_t n) const {
    std::string s(n, '\0');
    const ssize_t r = ::pread(fd_, s.data(), n, 0);
    s.resize(r < 0 ? 0 : static_cast<std::size_t>(r));
    return s;
  }

private:
  int fd_;
  bool written_ = true;
};

std::string_view view(const Mapping& m) {
  return {reinterpret_cast<const char*>(m.data()), m.size()};
}

TEST(Mapping, MapsTheFileBytes) {
  Memfd f("hello mapping");
  ASSERT_TRUE(f.good());
  auto m = Mapping::map(f.get(), 13, false);
  ASSERT_TRUE(ok(m));
  EXPECT_EQ(m->size(), 13u);
  EXPECT_EQ(view(*m), "hello mapping");
  EXPECT_EQ(m->bytes().size(), 13u);
}

TEST(Mapping, ZeroLengthIsEmptyAndMapsNothing) {
  Memfd f("");
  auto m = Mapping::map(f.get(), 0, true);
  ASSERT_TRUE(ok(m));
  EXPECT_EQ(m->size(), 0u);
  EXPECT_EQ(m->data(), nullptr);
  EXPECT_TRUE(m->bytes().empty());
  EXPECT_TRUE(ok(m->sync()));
}

TEST(Mapping, BadDescriptorIsAnError) {
  auto m = Mapping::map(-1, 4096, false);
  EXPECT_TRUE(test::fails_with(m, EBADF));
}

TEST(Mapping, UnmapsOnDestruction) {
  Memfd f(std::string(8192, 'a'));
  const void* addr = nullptr;
  {
    auto m = Mapping::map(f.get(), 8192, false);
    ASSERT_TRUE(ok(m));
    addr = m->data();
    EXPECT_TRUE(address_is_mapped(addr));
  }
  EXPECT_FALSE(address_is_mapped(addr)) << "the destructor did not unmap";
}

TEST(Mapping, MoveConstructionTransfersTheRegion) {
  Memfd f(std::string(4096, 'b'));
  auto m = Mapping::map(f.get(), 4096, false);
  ASSERT_TRUE(ok(m));
  const std::byte* addr = m->data();
  {
    Mapping moved(std::move(*m));
    EXPECT_EQ(moved.data(), addr);
    EXPECT_EQ(moved.size(), 4096u);
    EXPECT_EQ(m->data(), nullptr);  // NOLINT(bugprone-use-after-move)
    EXPECT_EQ(m->size(), 0u);
    EXPECT_TRUE(address_is_mapped(addr));
  }
  EXPECT_FALSE(address_is_mapped(addr));
}

TEST(Mapping, MoveAssignmentUnmapsTheOldRegion) {
  Memfd f(std::string(4096, 'c'));
  auto a = Mapping::map(f.get(), 4096, false);
  auto b = Mapping::map(f.get(), 4096, false);
  ASSERT_TRUE(ok(a));
  ASSERT_TRUE(ok(b));
  const std::byte* old_a = a->data();
  const std::byte* old_b = b->data();
  *a = std::move(*b);
  EXPECT_FALSE(address_is_mapped(old_a)) << "the overwritten mapping leaked";
  EXPECT_EQ(a->data(), old_b);
  EXPECT_EQ(b->size(), 0u);  // NOLINT(bugprone-use-after-move)
  Mapping& alias = *a;
  *a = std::move(alias);
  EXPECT_EQ(a->data(), old_b) << "self-move-assignment dropped the region";
  EXPECT_TRUE(address_is_mapped(old_b));
}

TEST(Mapping, ResetUnmaps) {
  Memfd f(std::string(4096, 'd'));
  auto m = Mapping::map(f.get(), 4096, false);
  ASSERT_TRUE(ok(m));
  const std::byte* addr = m->data();
  m->reset();
  EXPECT_EQ(m->size(), 0u);
  EXPECT_EQ(m->data(), nullptr);
  EXPECT_FALSE(address_is_mapped(addr));
  m->reset();  // twice is fine
}

TEST(Mapping, WritableMappingWritesTheFile) {
  Memfd f(std::string(100, '.'));
  auto m = Mapping::map(f.get(), 100, true);
  ASSERT_TRUE(ok(m));
  std::memcpy(m->data() + 10, "written", 7);
  ASSERT_TRUE(ok(m->sync()));
  EXPECT_EQ(f.read(100).substr(10, 7), "written");
}

TEST(Mapping, RemapFollowsTheLength) {
  Memfd f(std::string(3 * 4096, 'e'));
  auto m = Mapping::map(f.get(), 100, true);
  ASSERT_TRUE(ok(m));
  ASSERT_TRUE(ok(m->remap(f.get(), 3 * 4096, true)));
  EXPECT_EQ(m->size(), 3u * 4096);
  m->data()[3 * 4096 - 1] = std::byte{'Z'};  // the new last page is usable
  EXPECT_EQ(f.read(3 * 4096).back(), 'Z');
  ASSERT_TRUE(ok(m->remap(f.get(), 5000, true)));
  EXPECT_EQ(m->size(), 5000u);
  EXPECT_EQ(view(*m), std::string(5000, 'e'));
  const std::byte* addr = m->data();
  ASSERT_TRUE(ok(m->remap(f.get(), 0, true)));
  EXPECT_EQ(m->size(), 0u);
  EXPECT_EQ(m->data(), nullptr);
  EXPECT_FALSE(address_is_mapped(addr));
  ASSERT_TRUE(ok(m->remap(f.get(), 4096, false)));
  EXPECT_EQ(m->size(), 4096u);
  EXPECT_EQ(view(*m), std::string(4096, 'e'));
}

}  // namespace
}  // namespace snapfs::core
