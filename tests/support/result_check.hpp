// GoogleTest predicates for core::Result: failures print the Error's
// message() ("linkat(/x/.snapfs-tmp-1): No space left on device") and the
// errno's name, so a failing test says which syscall failed and why.
//
//   ASSERT_TRUE(ok(m.commit()));
//   EXPECT_TRUE(fails_with(Mmap::open(dir), EISDIR));
#pragma once

#include "support/files.hpp"

#include <snapfs/core/result.hpp>

#include <gtest/gtest.h>

#include <string>

namespace snapfs::test {

template <typename T>
std::string describe(const core::Result<T>& r) {
  if (r) return "success";
  return r.error().message() + " [" + errno_name(r.error().value()) + "]";
}

template <typename T>
::testing::AssertionResult ok(const core::Result<T>& r) {
  if (r) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << describe(r);
}

// Fails unless `r` holds an Error with exactly errno `err` in system_category.
template <typename T>
::testing::AssertionResult fails_with(const core::Result<T>& r, int err) {
  if (r) return ::testing::AssertionFailure() << "succeeded, expected " << errno_name(err);
  if (r.error().code().category() != std::system_category())
    return ::testing::AssertionFailure() << "error in category " << r.error().code().category().name()
                                         << ": " << describe(r);
  if (r.error().value() != err)
    return ::testing::AssertionFailure() << "expected " << errno_name(err) << ", got " << describe(r);
  return ::testing::AssertionSuccess();
}

}  // namespace snapfs::test
