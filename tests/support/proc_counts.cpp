#include "support/proc_counts.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <system_error>

namespace snapfs::test {
namespace {

// Reads a /proc file with read(2) (no stdio buffering that could itself
// allocate a mapping while we count them).
std::string slurp_proc(const char* path) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd == -1) throw std::system_error(errno, std::system_category(), path);
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == -1 && errno == EINTR) continue;
    if (n == -1) {
      const int e = errno;
      ::close(fd);
      throw std::system_error(e, std::system_category(), path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < s.size()) {
    const std::size_t end = s.find('\n', start);
    const std::size_t stop = end == std::string::npos ? s.size() : end;
    lines.emplace_back(s, start, stop - start);
    start = stop + 1;
  }
  return lines;
}

template <typename F>
void for_each_fd(F f) {
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) throw std::system_error(errno, std::system_category(), "/proc/self/fd");
  const int own = ::dirfd(d);
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const int fd = std::atoi(e->d_name);
    if (fd != own) f(fd);
  }
  ::closedir(d);
}

}  // namespace

ProcCounts ProcCounts::now() {
  ProcCounts c;
  for_each_fd([&](int) { ++c.fds; });
  c.maps = file_mapping_lines().size();
  return c;
}

std::vector<std::string> open_fd_targets() {
  std::vector<std::string> out;
  for_each_fd([&](int fd) {
    const std::string link = "/proc/self/fd/" + std::to_string(fd);
    char target[4096];
    const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
    out.push_back(std::to_string(fd) + " -> " +
                  (n >= 0 ? std::string(target, static_cast<std::size_t>(n)) : "?"));
  });
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> mapping_lines() { return split_lines(slurp_proc("/proc/self/maps")); }

std::vector<std::string> file_mapping_lines() {
  std::vector<std::string> out;
  for (auto& line : mapping_lines()) {
    // address perms offset dev inode [path]
    std::istringstream fields(line);
    std::string addr, perms, offset, dev, inode;
    fields >> addr >> perms >> offset >> dev >> inode;
    if (!inode.empty() && inode != "0") out.push_back(std::move(line));
  }
  return out;
}

bool address_is_mapped(const void* addr) {
  const auto a = reinterpret_cast<std::uintptr_t>(addr);
  for (const auto& line : mapping_lines()) {
    // "7f1c2a000000-7f1c2a021000 rw-p ..."
    const auto dash = line.find('-');
    if (dash == std::string::npos) continue;
    const auto lo = std::stoull(line.substr(0, dash), nullptr, 16);
    const auto hi = std::stoull(line.substr(dash + 1), nullptr, 16);
    if (a >= lo && a < hi) return true;
  }
  return false;
}

std::string added_lines(const std::vector<std::string>& before,
                        const std::vector<std::string>& after) {
  std::map<std::string, int> seen;
  for (const auto& l : before) ++seen[l];
  std::string out;
  for (const auto& l : after) {
    if (auto it = seen.find(l); it != seen.end() && it->second > 0) {
      --it->second;
      continue;
    }
    out += l;
    out += '\n';
  }
  return out;
}

}  // namespace snapfs::test
