// Small syscall helpers for the mount tests: they return -errno instead of
// throwing, because the errno is usually what a test checks.
#pragma once

#include "support/files.hpp"
#include "support/process.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace snapfs::test {

inline int xopen(const std::filesystem::path& p, int flags, mode_t mode = 0644) {
  const int fd = ::open(p.c_str(), flags | O_CLOEXEC, mode);
  return fd >= 0 ? fd : -errno;
}

// 0 or -errno.
inline int xclose(int fd) { return ::close(fd) == 0 ? 0 : -errno; }

// Whether another process (a child) reads `want` at `path`: a process's
// own opens of a file it writes read its own version (docs/semantics.md,
// "A process's own opens"), so what others see is asked of another.
inline bool other_process_reads(const std::filesystem::path& path, const std::string& want) {
  auto st = run_in_child([&] {
    try {
      return read_file(path) == want ? 0 : 1;
    } catch (...) {
      return 2;
    }
  });
  return st.ok();
}

// The whole content of `fd` read with pread from offset 0.
inline std::string pread_all(int fd) {
  std::string out;
  char buf[65536];
  off_t off = 0;
  for (;;) {
    const ssize_t n = ::pread(fd, buf, sizeof buf, off);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    off += n;
  }
  return out;
}

inline bool pwrite_str(int fd, std::string_view s, off_t off) {
  return ::pwrite(fd, s.data(), s.size(), off) == static_cast<ssize_t>(s.size());
}

inline bool write_str(int fd, std::string_view s) {
  return ::write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size());
}

inline struct stat fstat_of(int fd) {
  struct stat st {};
  ::fstat(fd, &st);
  return st;
}

// The names in B without the daemon's own hidden directory B/.snapfs
// (docs/design-conflicts.md), which the view never shows.
inline std::vector<std::string> list_backing(const std::filesystem::path& b) {
  auto v = list_dir(b);
  std::erase(v, std::string(".snapfs"));
  return v;
}

// The daemon's virtual attributes of the mount's root (fuse/ops/xattr.cpp),
// which `snapfs status` and `snapfs conflicts` read.
inline constexpr const char* kConflictsXattr = "user.snapfs.conflicts";
inline constexpr const char* kStatusXattr = "user.snapfs.status";

// The value of the attribute `name` of `p` (up to 64 KiB), or
// "error: <errno name>".
inline std::string xattr_of(const std::filesystem::path& p, const char* name) {
  std::string buf(1 << 16, '\0');
  const ssize_t n = ::getxattr(p.c_str(), name, buf.data(), buf.size());
  if (n < 0) return "error: " + errno_name(errno);
  buf.resize(static_cast<std::size_t>(n));
  return buf;
}

inline bool same_time(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

}  // namespace snapfs::test
