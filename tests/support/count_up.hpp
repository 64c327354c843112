// CountUp: processes that count one file up through views of snapfs, to
// check that first committer wins (tests/mount/test_daemons.cpp, and the
// same over GlusterFS).
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

namespace snapfs::test {

// Processes that each read a counter file, add one and write it back,
// over and over, through their views: what each successful close
// published, and how many were told they lost (ESTALE: first committer
// wins).
struct CountUp {
  std::mutex mu;
  std::vector<long> published;
  std::atomic<int> lost{0}, errors{0};
  std::string first_error;

  // `rounds` read-increment-writes of `file` in a process of its own.
  void run(const std::filesystem::path& file, int rounds);
  void error(const std::string& what);
  // No two successful closes published the same value (that would be an
  // acknowledged update lost), and `final` (the file) counts them all.
  ::testing::AssertionResult none_lost(const std::string& final);
};

}  // namespace snapfs::test
