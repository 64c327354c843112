// CountUp (count_up.hpp).
#include "count_up.hpp"

#include "peer.hpp"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>

namespace snapfs::test {

void CountUp::run(const std::filesystem::path& file, int rounds) {
  Peer p;
  for (int i = 0; i < rounds; ++i) {
    const int fd = p.open(file, O_RDWR);
    if (fd < 0) {
      error("open: " + std::to_string(fd));
      continue;
    }
    const long n = std::stol(p.pread_all(fd));
    const bool wrote = p.pwrite(fd, std::to_string(n + 1) + "\n", 0);
    const int rc = p.close(fd);
    if (wrote && rc == 0) {
      std::lock_guard lk(mu);
      published.push_back(n + 1);
    } else if (rc == -ESTALE) {
      ++lost;
    } else {
      error("close: " + std::to_string(rc));
    }
  }
}

void CountUp::error(const std::string& what) {
  std::lock_guard lk(mu);
  ++errors;
  if (first_error.empty()) first_error = what;
}

::testing::AssertionResult CountUp::none_lost(const std::string& final) {
  std::vector<long> sorted = published;
  std::sort(sorted.begin(), sorted.end());
  if (auto dup = std::adjacent_find(sorted.begin(), sorted.end()); dup != sorted.end())
    return ::testing::AssertionFailure()
           << "two successful closes published " << *dup << ": an acknowledged update was lost ("
           << published.size() << " successes, " << lost.load() << " told they lost)";
  if (final != std::to_string(published.size()) + "\n")
    return ::testing::AssertionFailure()
           << "the file says " << final << " after " << published.size() << " successes";
  return ::testing::AssertionSuccess();
}

}  // namespace snapfs::test
