// Support for snapfs_bench_core: the data files it measures and small helpers.
#pragma once

#include <snapfs/core/tmpfile.hpp>

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace snapfs::bench {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

inline constexpr std::size_t KiB = 1024;
inline constexpr std::size_t MiB = 1024 * KiB;
inline constexpr std::size_t GiB = 1024 * MiB;
inline constexpr std::size_t kPage = 4096;

// One filesystem under test.
struct Target {
  std::string name;  // "xfs": the column of the table
  fs::path dir;      // a directory on that filesystem we may fill
  core::CloneMethod method = core::CloneMethod::copy;  // as the probe found it
};

[[noreturn]] void die(const std::string& msg);

inline double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// 4096 -> "4KiB"; "4K", "4KiB" or "4096" -> 4096.
std::string size_label(std::size_t n);
std::size_t parse_size(const std::string& s);
std::vector<std::string> split_list(const std::string& s, char sep);
// The median of `v` (0 if empty).
double median(std::vector<double> v);

// Writes `size` pseudo-random bytes and fsyncs them (see the definition).
void write_file(const fs::path& path, std::size_t size);
// The number of extents of a file (FIEMAP), or -1 without FIEMAP (tmpfs).
double extent_count(const fs::path& path);
// syncfs() of the filesystem holding `dir`.
void settle(const fs::path& dir);

// One data file per filesystem, of the size the running benchmark wants.
// Benchmarks run in registration order, grouped by filesystem and size, so
// each file is written once; the previous size is removed first so that a
// 1 GiB file and the copies its commit makes fit the filesystem.
class DataFiles {
public:
  const fs::path& get(const Target& t, std::size_t size);
  // Writes the file again even if it has the right size.
  const fs::path& fresh(const Target& t, std::size_t size);
  void remove_all();

private:
  struct Current {
    fs::path path;
    std::size_t size = 0;
  };
  std::map<std::string, Current> current_;
};

// Times each syscall of the sequence Mmap::open makes on a file of `size`
// bytes and writes "fs,size,step,median_us" lines to `out`.
void split_costs(const Target& t, int reps, std::size_t size, std::FILE* out);

}  // namespace snapfs::bench
