// Resource counters for leak checks: open descriptors and mappings of this
// process, read from /proc/self.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace snapfs::test {

struct ProcCounts {
  std::size_t fds = 0;   // entries of /proc/self/fd (the directory's own fd excluded)
  // File-backed lines of /proc/self/maps (inode != 0): every snapshot is a
  // mapping of a file. Anonymous memory is left out on purpose: malloc and
  // sanitizer allocators grow and split it at will.
  std::size_t maps = 0;

  static ProcCounts now();
  friend bool operator==(const ProcCounts&, const ProcCounts&) = default;
};

// "fd -> target" for every open descriptor, sorted; for failure messages.
std::vector<std::string> open_fd_targets();
// The lines of /proc/self/maps.
std::vector<std::string> mapping_lines();
// Those of them that map a file (what ProcCounts::maps counts).
std::vector<std::string> file_mapping_lines();

// Whether `addr` lies in one of this process's mappings.
bool address_is_mapped(const void* addr);

// Entries of `after` that are not in `before` (multiset difference), joined
// by newlines: what a leak check prints.
std::string added_lines(const std::vector<std::string>& before,
                        const std::vector<std::string>& after);

}  // namespace snapfs::test
