// Result<T> and Error (docs/code-style.md §3): errno kept exactly in system_category, the
// failing call and path kept, message() for humans, SNAPFS_TRY propagation.
#include <snapfs/core/result.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>
#include <type_traits>

namespace snapfs::core {
namespace {

TEST(Error, KeepsEveryErrnoExactly) {
  // Including the ones a leveldb-style Status would squeeze into "IOError".
  for (int e : {EPERM, ENOENT, EIO, EBADF, EACCES, EEXIST, EXDEV, EISDIR, EINVAL, EFBIG, ENOSPC,
                EROFS, ENAMETOOLONG, ENOTEMPTY, ELOOP, EOPNOTSUPP, EDQUOT, ESTALE, ENOTRECOVERABLE,
                EHWPOISON}) {
    const Error err = Error::of(e, "op");
    EXPECT_EQ(err.value(), e);
    EXPECT_EQ(err.code().value(), e);
    EXPECT_EQ(&err.code().category(), &std::system_category()) << e;
    EXPECT_EQ(static_cast<std::error_code>(err), std::error_code(e, std::system_category()));
  }
}

TEST(Error, FromErrnoReadsErrnoBeforeAnythingElse) {
  const std::string long_path(5000, 'p');  // the copy allocates
  errno = EXDEV;
  const Error err = Error::from_errno("renameat", long_path);
  EXPECT_EQ(err.value(), EXDEV);
  EXPECT_STREQ(err.op(), "renameat");
  EXPECT_EQ(err.path(), long_path);
}

TEST(Error, MessageNamesTheCallThePathAndTheReason) {
  EXPECT_EQ(Error::of(ENOSPC, "linkat", "/x/.snapfs-0123.tmp").message(),
            "linkat(/x/.snapfs-0123.tmp): No space left on device");
  EXPECT_EQ(Error::of(EIO, "fsync").message(), "fsync: Input/output error");
  EXPECT_EQ(Error::of(EACCES, "openat", "").message(),
            std::string("openat: ") + std::strerror(EACCES));
}

TEST(Error, ComparesWithErrcAndErrorCode) {
  const Error err = Error::of(ENOSPC, "write");
  EXPECT_TRUE(err == std::errc::no_space_on_device);
  EXPECT_FALSE(err == std::errc::io_error);
  EXPECT_TRUE(err == std::error_code(ENOSPC, std::system_category()));
  const std::error_code ec = err;
  EXPECT_EQ(ec, std::errc::no_space_on_device);
}

TEST(Error, DefaultIsNoError) {
  const Error err;
  EXPECT_EQ(err.value(), 0);
  EXPECT_FALSE(err.code());
  EXPECT_STREQ(err.op(), "");
  EXPECT_EQ(err.path(), "");
}

TEST(Result, HoldsAValue) {
  Result<int> r = 42;
  ASSERT_TRUE(r);
  EXPECT_TRUE(r.has_value());
  EXPECT_EQ(*r, 42);
  EXPECT_EQ(r.value(), 42);
  *r = 7;
  EXPECT_EQ(*r, 7);
  Result<std::string> s = std::string("abc");
  EXPECT_EQ(s->size(), 3u);
}

TEST(Result, HoldsAnError) {
  Result<int> r = Error::of(EEXIST, "linkat", "/a/b");
  ASSERT_FALSE(r);
  EXPECT_FALSE(r.has_value());
  EXPECT_EQ(r.error().value(), EEXIST);
  EXPECT_STREQ(r.error().op(), "linkat");
  EXPECT_EQ(r.error().path(), "/a/b");
  const Error moved = std::move(r).error();
  EXPECT_EQ(moved.value(), EEXIST);
  EXPECT_EQ(moved.path(), "/a/b");
}

TEST(Result, CarriesMoveOnlyValues) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(5);
  ASSERT_TRUE(r);
  std::unique_ptr<int> p = std::move(r).value();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 5);
  static_assert(!std::is_copy_constructible_v<Result<std::unique_ptr<int>>>);
  static_assert(std::is_nothrow_move_constructible_v<Result<std::unique_ptr<int>>>);
}

TEST(Result, VoidResult) {
  Result<void> good;
  EXPECT_TRUE(good);
  Result<void> bad = Error::of(EROFS, "renameat", "f");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().value(), EROFS);
  EXPECT_EQ(bad.error().path(), "f");
}

Result<int> parse_digit(char c) {
  if (c < '0' || c > '9') return Error::of(EINVAL, "parse_digit", std::string(1, c));
  return c - '0';
}

Result<void> sum_digits(const char* s, int& sum, int& steps) {
  for (; *s != '\0'; ++s) {
    ++steps;
    SNAPFS_TRY(parse_digit(*s));
    sum += *parse_digit(*s);
  }
  return {};
}

TEST(Result, TryReturnsTheFirstErrorAndStopsThere) {
  int sum = 0, steps = 0;
  EXPECT_TRUE(sum_digits("123", sum, steps));
  EXPECT_EQ(sum, 6);
  sum = steps = 0;
  auto r = sum_digits("12x45", sum, steps);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().value(), EINVAL);
  EXPECT_EQ(r.error().path(), "x");
  EXPECT_EQ(steps, 3) << "SNAPFS_TRY did not return at the first error";
  EXPECT_EQ(sum, 3);
}

}  // namespace
}  // namespace snapfs::core
