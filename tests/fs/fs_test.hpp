// Shared includes and helpers of the core filesystem tests.
#pragma once

#include "support/files.hpp"
#include "support/loopfs.hpp"
#include "support/process.hpp"
#include "support/result_check.hpp"

#include <snapfs/core.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <string_view>

namespace snapfs::test {

using core::CloneMethod;
using core::Mmap;
using core::MmapMut;

// A uid/gid that owns nothing on these filesystems (tests chown to it and
// drop privileges to it).
constexpr uid_t kUid = 1234;
constexpr gid_t kGid = 5678;

// Copies `s` into a writable mapping at `off` (the caller has sized it).
inline void store(MmapMut& m, std::size_t off, std::string_view s) {
  if (s.empty()) return;  // data() is null for an empty snapshot: no memcpy(nullptr, ...)
  std::memcpy(m.data() + off, s.data(), s.size());
}

// Sets the umask for one scope (tests are single-threaded when they do it).
class UmaskGuard {
public:
  explicit UmaskGuard(mode_t m) : old_(::umask(m)) {}
  UmaskGuard(const UmaskGuard&) = delete;
  UmaskGuard& operator=(const UmaskGuard&) = delete;
  ~UmaskGuard() { ::umask(old_); }

private:
  mode_t old_;
};

// Runs `fn` in a forked child that reads every byte of `bytes` and compares
// them with `expected`: a SIGBUS shows up as a failed status instead of
// killing the test binary. Exit 0 = equal, 1 = different.
inline ExitStatus read_all_in_child(std::span<const std::byte> bytes, std::string_view expected) {
  return run_in_child([&] {
    if (bytes.size() != expected.size()) return 1;
    volatile unsigned sum = 0;  // touch every byte even where memcmp would stop early
    for (std::byte b : bytes) sum = sum + std::to_integer<unsigned>(b);
    (void)sum;
    return std::memcmp(bytes.data(), expected.data(), expected.size()) == 0 ? 0 : 1;
  });
}

}  // namespace snapfs::test
