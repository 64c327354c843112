// UniqueFd (docs/code-style.md §2): closes exactly once, moves are noexcept and leave the
// source empty, release() gives ownership away, a double owner aborts.
#include <snapfs/core/unique_fd.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <type_traits>

namespace snapfs::core {
namespace {

int open_null() { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }
bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

static_assert(std::is_nothrow_move_constructible_v<UniqueFd>);
static_assert(std::is_nothrow_move_assignable_v<UniqueFd>);
static_assert(!std::is_copy_constructible_v<UniqueFd>);
static_assert(!std::is_copy_assignable_v<UniqueFd>);

TEST(UniqueFd, DefaultOwnsNothing) {
  const UniqueFd f;
  EXPECT_EQ(f.get(), -1);
  EXPECT_FALSE(f.valid());
  EXPECT_FALSE(f);
}

TEST(UniqueFd, ClosesOnDestruction) {
  const int raw = open_null();
  ASSERT_GE(raw, 0);
  {
    const UniqueFd f(raw);
    EXPECT_TRUE(f.valid());
    EXPECT_EQ(f.get(), raw);
  }
  EXPECT_FALSE(is_open(raw));
}

TEST(UniqueFd, MoveConstructionTransfersOwnership) {
  const int raw = open_null();
  ASSERT_GE(raw, 0);
  UniqueFd a(raw);
  {
    UniqueFd b(std::move(a));
    EXPECT_EQ(b.get(), raw);
    EXPECT_EQ(a.get(), -1);  // NOLINT(bugprone-use-after-move): the point of the test
    EXPECT_TRUE(is_open(raw));
  }
  EXPECT_FALSE(is_open(raw)) << "the new owner did not close it";
}

TEST(UniqueFd, MoveAssignmentClosesTheOldDescriptor) {
  const int first = open_null();
  const int second = open_null();
  ASSERT_GE(first, 0);
  ASSERT_GE(second, 0);
  UniqueFd a(first);
  UniqueFd b(second);
  a = std::move(b);
  EXPECT_FALSE(is_open(first)) << "the overwritten descriptor leaked";
  EXPECT_TRUE(is_open(second));
  EXPECT_EQ(a.get(), second);
  EXPECT_EQ(b.get(), -1);  // NOLINT(bugprone-use-after-move)
}

TEST(UniqueFd, SelfMoveAssignmentKeepsTheDescriptor) {
  const int raw = open_null();
  ASSERT_GE(raw, 0);
  UniqueFd a(raw);
  UniqueFd& alias = a;  // spelled through a reference so the compiler lets us
  a = std::move(alias);
  EXPECT_EQ(a.get(), raw);
  EXPECT_TRUE(is_open(raw));
}

TEST(UniqueFd, ReleaseGivesUpOwnershipWithoutClosing) {
  const int raw = open_null();
  ASSERT_GE(raw, 0);
  {
    UniqueFd f(raw);
    EXPECT_EQ(f.release(), raw);
    EXPECT_FALSE(f.valid());
  }
  EXPECT_TRUE(is_open(raw)) << "release() closed it";
  ::close(raw);
}

TEST(UniqueFd, ResetClosesAndTakesTheNewOne) {
  const int first = open_null();
  const int second = open_null();
  ASSERT_GE(first, 0);
  ASSERT_GE(second, 0);
  UniqueFd f(first);
  f.reset(second);
  EXPECT_FALSE(is_open(first));
  EXPECT_EQ(f.get(), second);
  f.reset();
  EXPECT_FALSE(is_open(second));
  EXPECT_FALSE(f.valid());
}

TEST(UniqueFdDeathTest, ClosingADescriptorSomeoneElseClosedAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        UniqueFd f(open_null());
        ::close(f.get());  // a second owner closed it: EBADF in reset()
      },
      "EBADF");
}

TEST(DirFd, OwnsItsDescriptor) {
  const int raw = ::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(raw, 0);
  {
    DirFd d(UniqueFd{raw});
    EXPECT_TRUE(d.valid());
    EXPECT_EQ(d.get(), raw);
    DirFd moved = std::move(d);
    EXPECT_EQ(moved.get(), raw);
    EXPECT_FALSE(d.valid());  // NOLINT(bugprone-use-after-move)
  }
  EXPECT_FALSE(is_open(raw));
}

}  // namespace
}  // namespace snapfs::core
