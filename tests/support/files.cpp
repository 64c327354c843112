#include "support/files.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>
#include <system_error>

namespace snapfs::test {
namespace {

[[noreturn]] void fail(const char* op, const fs::path& p) {
  throw std::system_error(errno, std::system_category(), std::string(op) + "(" + p.string() + ")");
}

class Fd {
public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

private:
  int fd_;
};

void write_all(int fd, std::string_view content, off_t off, const fs::path& p) {
  while (!content.empty()) {
    const ssize_t n = ::pwrite(fd, content.data(), content.size(), off);
    if (n == -1 && errno == EINTR) continue;
    if (n == -1) fail("pwrite", p);
    content.remove_prefix(static_cast<std::size_t>(n));
    off += n;
  }
}

}  // namespace

void write_file(const fs::path& path, std::string_view content, mode_t mode) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (fd.get() == -1) fail("open", path);
  write_all(fd.get(), content, 0, path);
  if (::fchmod(fd.get(), mode) == -1) fail("fchmod", path);
}

void pwrite_file(const fs::path& path, std::uint64_t off, std::string_view content) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (fd.get() == -1) fail("open", path);
  write_all(fd.get(), content, static_cast<off_t>(off), path);
}

std::string read_file(const fs::path& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (fd.get() == -1) fail("open", path);
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n == -1 && errno == EINTR) continue;
    if (n == -1) fail("read", path);
    if (n == 0) return out;
    out.append(buf, static_cast<std::size_t>(n));
  }
}

struct stat lstat_of(const fs::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) == -1) fail("lstat", path);
  return st;
}

struct stat stat_of(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == -1) fail("stat", path);
  return st;
}

std::vector<std::string> list_dir(const fs::path& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) fail("opendir", dir);
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(d)) {
    const std::string_view n = e->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

std::map<std::string, std::string> tree_digest(const fs::path& dir, bool with_mtime) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0) continue;
    std::ostringstream d;
    d << std::oct << st.st_mode << std::dec << " " << st.st_uid << ":" << st.st_gid << " "
      << st.st_size;
    if (with_mtime) d << " " << st.st_mtim.tv_sec << "." << st.st_mtim.tv_nsec;
    if (S_ISREG(st.st_mode)) d << " " << read_file(it->path());
    out[fs::relative(it->path(), dir).string()] = d.str();
  }
  return out;
}

std::map<std::string, std::string> xattrs_of(const fs::path& path) {
  std::map<std::string, std::string> out;
  ssize_t n = ::llistxattr(path.c_str(), nullptr, 0);
  if (n == -1) fail("llistxattr", path);
  std::string names(static_cast<std::size_t>(n), '\0');
  n = ::llistxattr(path.c_str(), names.data(), names.size());
  if (n == -1) fail("llistxattr", path);
  names.resize(static_cast<std::size_t>(n));
  for (std::size_t pos = 0; pos < names.size();) {
    const std::string name(names.c_str() + pos);
    pos += name.size() + 1;
    if (name.empty()) continue;
    ssize_t vn = ::lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
    if (vn == -1) fail(("lgetxattr " + name).c_str(), path);
    std::string value(static_cast<std::size_t>(vn), '\0');
    vn = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
    if (vn == -1) fail(("lgetxattr " + name).c_str(), path);
    value.resize(static_cast<std::size_t>(vn));
    out.emplace(name, std::move(value));
  }
  return out;
}

std::string acl_xattr(const std::vector<AclEntry>& entries) {
  std::string out;
  auto put16 = [&](std::uint16_t v) {
    out.push_back(static_cast<char>(v & 0xff));
    out.push_back(static_cast<char>(v >> 8));
  };
  auto put32 = [&](std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  put32(2);  // POSIX_ACL_XATTR_VERSION
  for (const auto& e : entries) {
    put16(e.tag);
    put16(e.perm);
    put32(e.id);
  }
  return out;
}

std::uint64_t fill_filesystem(const fs::path& dir, std::string_view name) {
  const fs::path path = dir / name;
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
  if (fd.get() == -1) fail("open", path);
  off_t off = ::lseek(fd.get(), 0, SEEK_END);
  // Reserve blocks in shrinking chunks: fallocate is all-or-nothing per call.
  for (off_t chunk = off_t{1} << 30; chunk >= 4096;) {
    if (::fallocate(fd.get(), 0, off, chunk) == 0) {
      off += chunk;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != ENOSPC && errno != EFBIG && errno != EOPNOTSUPP) fail("fallocate", path);
    if (errno == EOPNOTSUPP) break;  // write below does the whole job
    chunk /= 2;
  }
  // Then take what is left (a partial block, or everything where fallocate
  // is unsupported) with plain writes until the filesystem says ENOSPC.
  const std::string block(65536, 'f');
  std::size_t len = block.size();
  while (len >= 1) {
    const ssize_t n = ::pwrite(fd.get(), block.data(), len, off);
    if (n > 0) {
      off += n;
      continue;
    }
    if (n == -1 && errno == EINTR) continue;
    if (n == -1 && errno != ENOSPC) fail("pwrite", path);
    len /= 2;
  }
  // Make delayed allocation real now, so the next writer gets ENOSPC at once.
  if (::fsync(fd.get()) == -1 && errno != ENOSPC) fail("fsync", path);
  return static_cast<std::uint64_t>(off);
}

std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 14695981039346656037ull;
  for (const char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

std::string pattern(std::size_t n, std::uint32_t seed) {
  std::string out(n, '\0');
  std::uint32_t x = seed * 2654435761u + 0x9e3779b9u;
  if (x == 0) x = 1;  // xorshift's one fixed point
  for (std::size_t i = 0; i < n; ++i) {
    // xorshift32: cheap, and every offset of every seed differs
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    out[i] = static_cast<char>(x & 0xff);
  }
  return out;
}

std::string errno_name(int err) {
  const char* name = ::strerrorname_np(err);
  return std::string(name != nullptr ? name : ("errno " + std::to_string(err)).c_str()) + " (" +
         std::strerror(err) + ")";
}

}  // namespace snapfs::test
