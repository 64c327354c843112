// Support for snapfs_bench_core: the data files it measures and small helpers.
#include "bench_support.hpp"

#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>

namespace snapfs::bench {

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "snapfs_bench_core: %s\n", msg.c_str());
  std::exit(2);
}

std::string size_label(std::size_t n) {
  if (n >= GiB && n % GiB == 0) return std::to_string(n / GiB) + "GiB";
  if (n >= MiB && n % MiB == 0) return std::to_string(n / MiB) + "MiB";
  if (n >= KiB && n % KiB == 0) return std::to_string(n / KiB) + "KiB";
  return std::to_string(n) + "B";
}

std::size_t parse_size(const std::string& s) {
  std::size_t pos = 0;
  const auto n = static_cast<std::size_t>(std::stoull(s, &pos));
  const std::string unit = s.substr(pos);
  if (unit.empty()) return n;
  if (unit == "K" || unit == "KiB") return n * KiB;
  if (unit == "M" || unit == "MiB") return n * MiB;
  if (unit == "G" || unit == "GiB") return n * GiB;
  die("bad size: " + s);
}

std::vector<std::string> split_list(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, sep);)
    if (!item.empty()) out.push_back(item);
  return out;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  const auto mid = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  return *mid;
}

// Writes `size` pseudo-random bytes (no holes, nothing a filesystem could
// compress or deduplicate within a block) and fsyncs them, so that no
// benchmark pays for writing back the file it snapshots. The pages stay in
// the page cache: every measurement below is warm.
void write_file(const fs::path& path, std::size_t size) {
  std::vector<std::byte> buf(std::min(size, MiB));
  std::mt19937_64 rng(42);
  for (std::size_t i = 0; i + 8 <= buf.size(); i += 8) {
    const std::uint64_t v = rng();
    std::memcpy(buf.data() + i, &v, 8);
  }
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd == -1) die("open " + path.string() + ": " + std::strerror(errno));
  std::size_t done = 0;
  while (done < size) {
    // Make each MiB different from the last.
    const std::uint64_t tag = done;
    std::memcpy(buf.data(), &tag, sizeof tag);
    const std::size_t want = std::min(buf.size(), size - done);
    const ssize_t n = write(fd, buf.data(), want);
    if (n == -1 && errno == EINTR) continue;
    if (n <= 0) die("write " + path.string() + ": " + std::strerror(errno));
    done += static_cast<std::size_t>(n);
  }
  if (fsync(fd) == -1) die("fsync " + path.string() + ": " + std::strerror(errno));
  close(fd);
}

double extent_count(const fs::path& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd == -1) return -1;
  fiemap fm{};
  fm.fm_start = 0;
  fm.fm_length = FIEMAP_MAX_OFFSET;
  fm.fm_flags = FIEMAP_FLAG_SYNC;
  fm.fm_extent_count = 0;  // count only
  const int r = ioctl(fd, FS_IOC_FIEMAP, &fm);
  close(fd);
  return r == -1 ? -1 : static_cast<double>(fm.fm_mapped_extents);
}

// Writes back what the previous benchmarks left dirty on this filesystem
// (copies published without a sync), so that the next size does not compete
// with that writeback for the disk and the two CPUs. syncfs, not sync: other
// people's filesystems are none of our business.
void settle(const fs::path& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd == -1) die("open " + dir.string() + ": " + std::strerror(errno));
  syncfs(fd);
  close(fd);
}

const fs::path& DataFiles::get(const Target& t, std::size_t size) {
  auto& cur = current_[t.name];
  if (cur.size == size && !cur.path.empty()) return cur.path;
  if (!cur.path.empty()) fs::remove(cur.path);
  settle(t.dir);
  cur.path = t.dir / ("data-" + size_label(size));
  cur.size = size;
  write_file(cur.path, size);
  return cur.path;
}

const fs::path& DataFiles::fresh(const Target& t, std::size_t size) {
  current_.erase(t.name);  // the file itself is rewritten (O_TRUNC)
  return get(t, size);
}

void DataFiles::remove_all() {
  for (auto& [name, cur] : current_)
    if (!cur.path.empty()) fs::remove(cur.path);
  current_.clear();
}

}  // namespace snapfs::bench
