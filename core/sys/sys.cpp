#include "sys.hpp"

#include <linux/fs.h>
#include <linux/openat2.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace snapfs::core::sys {

Result<UniqueFd> openat(int dirfd, const char* path, int flags, mode_t mode) noexcept {
  const int fd = retry([&] { return ::openat(dirfd, path, flags | O_CLOEXEC, mode); });
  if (fd == -1) return Error::from_errno("openat", path);
  return UniqueFd(fd);
}

Result<UniqueFd> openat_beneath(int dirfd, const char* path, int flags, mode_t mode,
                                std::uint64_t extra_resolve) noexcept {
  struct open_how how {};
  how.flags = static_cast<unsigned>(flags | O_CLOEXEC);
  how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | extra_resolve;
  const long fd = retry([&] { return ::syscall(SYS_openat2, dirfd, path, &how, sizeof how); });
  if (fd == -1) return Error::from_errno("openat2", path);
  return UniqueFd(static_cast<int>(fd));
}

Result<struct stat> fstat(int fd) noexcept {
  struct stat st {};
  if (::fstat(fd, &st) == -1) return Error::from_errno("fstat");
  return st;
}

Result<struct stat> fstatat(int dirfd, const char* path, int flags) noexcept {
  struct stat st {};
  if (::fstatat(dirfd, path, &st, flags) == -1) return Error::from_errno("fstatat", path);
  return st;
}

Result<void> ftruncate(int fd, std::uint64_t len) noexcept {
  return ok_or(retry([&] { return ::ftruncate(fd, static_cast<off_t>(len)); }), "ftruncate");
}
Result<void> fsync(int fd) noexcept { return ok_or(retry([&] { return ::fsync(fd); }), "fsync"); }
Result<void> fdatasync(int fd) noexcept {
  return ok_or(retry([&] { return ::fdatasync(fd); }), "fdatasync");
}
Result<void> fchmod(int fd, mode_t mode) noexcept { return ok_or(::fchmod(fd, mode), "fchmod"); }
Result<void> fchown(int fd, uid_t uid, gid_t gid) noexcept {
  return ok_or(::fchown(fd, uid, gid), "fchown");
}
Result<void> futimens(int fd, const struct timespec times[2]) noexcept {
  return ok_or(::futimens(fd, times), "futimens");
}

Result<void> linkat(int olddirfd, const char* oldpath, int newdirfd, const char* newpath,
                    int flags) noexcept {
  return ok_or(::linkat(olddirfd, oldpath, newdirfd, newpath, flags), "linkat", newpath);
}

Result<void> renameat(int olddirfd, const char* oldpath, int newdirfd, const char* newpath,
                      unsigned flags) noexcept {
  return ok_or(::renameat2(olddirfd, oldpath, newdirfd, newpath, flags), "renameat2", newpath);
}

Result<void> unlinkat(int dirfd, const char* path, int flags) noexcept {
  return ok_or(::unlinkat(dirfd, path, flags), "unlinkat", path);
}

Result<void> mkdirat(int dirfd, const char* name, mode_t mode) noexcept {
  return ok_or(::mkdirat(dirfd, name, mode), "mkdirat", name);
}

Result<void> symlinkat(const char* target, int dirfd, const char* name) noexcept {
  return ok_or(::symlinkat(target, dirfd, name), "symlinkat", name);
}

Result<void> mknodat(int dirfd, const char* name, mode_t mode, dev_t rdev) noexcept {
  return ok_or(::mknodat(dirfd, name, mode, rdev), "mknodat", name);
}

Result<void> fchownat(int dirfd, const char* name, uid_t uid, gid_t gid, int flags) noexcept {
  return ok_or(::fchownat(dirfd, name, uid, gid, flags), "fchownat", name);
}

Result<void> chmod_fd(int fd, mode_t mode) noexcept {
  const auto proc = proc_fd_path(fd);
  return ok_or(::fchmodat(AT_FDCWD, proc.c_str(), mode, 0), "chmod", proc.c_str());
}

Result<void> utimensat(int dirfd, const char* name, const struct timespec times[2],
                       int flags) noexcept {
  return ok_or(::utimensat(dirfd, name, times, flags), "utimensat", name);
}

Result<struct statvfs> fstatvfs(int fd) noexcept {
  struct statvfs st {};
  if (retry([&] { return ::fstatvfs(fd, &st); }) == -1) return Error::from_errno("fstatvfs");
  return st;
}

Result<void> fallocate(int fd, int mode, std::uint64_t off, std::uint64_t len) noexcept {
  return ok_or(retry([&] {
                 return ::fallocate(fd, mode, static_cast<off_t>(off), static_cast<off_t>(len));
               }),
               "fallocate");
}

Result<std::uint64_t> lseek(int fd, std::int64_t off, int whence) noexcept {
  const off_t r = ::lseek(fd, static_cast<off_t>(off), whence);
  if (r == -1) return Error::from_errno("lseek");
  return static_cast<std::uint64_t>(r);
}

Result<void> flock(int fd, int op) noexcept {
  return ok_or(retry([&] { return ::flock(fd, op); }), "flock");
}

Result<void> ofd_setlk(int fd, struct flock& lk) noexcept {
  lk.l_pid = 0;  // required for OFD locks
  return ok_or(retry([&] { return ::fcntl(fd, F_OFD_SETLK, &lk); }), "fcntl(F_OFD_SETLK)");
}

Result<struct timespec> birth_time(int fd) noexcept {
  struct statx stx {};
  if (retry([&] { return ::statx(fd, "", AT_EMPTY_PATH, STATX_BTIME, &stx); }) == -1)
    return Error::from_errno("statx");
  struct timespec t {};
  if (stx.stx_mask & STATX_BTIME) {
    t.tv_sec = stx.stx_btime.tv_sec;
    t.tv_nsec = stx.stx_btime.tv_nsec;
  }
  return t;
}

Result<void> ofd_setlkw(int fd, struct flock& lk) noexcept {
  lk.l_pid = 0;
  return ok_or(retry([&] { return ::fcntl(fd, F_OFD_SETLKW, &lk); }), "fcntl(F_OFD_SETLKW)");
}

Result<void> ofd_getlk(int fd, struct flock& lk) noexcept {
  lk.l_pid = 0;
  return ok_or(retry([&] { return ::fcntl(fd, F_OFD_GETLK, &lk); }), "fcntl(F_OFD_GETLK)");
}

Result<bool> sole_writer(int fd) noexcept {
  if (::fcntl(fd, F_SETLEASE, F_WRLCK) == -1) {
    if (errno == EAGAIN || errno == EBUSY) return false;
    return Error::from_errno("fcntl(F_SETLEASE)");
  }
  (void)::fcntl(fd, F_SETLEASE, F_UNLCK);
  return true;
}

Result<void> writeback(int fd) noexcept {
  return ok_or(retry([&] {
                 return ::sync_file_range(fd, 0, 0,
                                          SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                              SYNC_FILE_RANGE_WAIT_AFTER);
               }),
               "sync_file_range");
}

Result<void> ficlone(int dst, int src) noexcept {
  return ok_or(retry([&] { return ::ioctl(dst, FICLONE, src); }), "ioctl(FICLONE)");
}

Result<std::uint64_t> copy_range(int dst, int src) noexcept {
  // Only the data segments are copied (SEEK_DATA/SEEK_HOLE): a sparse file
  // stays sparse in its snapshot, instead of having its holes written out
  // as zeros. The length is the source's at the start; ftruncate at the end
  // restores a trailing hole. Filesystems without hole tracking report the
  // whole file as one data segment.
  struct stat st {};
  if (::fstat(src, &st) == -1) return Error::from_errno("fstat");
  const auto size = static_cast<std::uint64_t>(st.st_size);
  std::uint64_t pos = 0;
  while (pos < size) {
    const off_t data = ::lseek(src, static_cast<off_t>(pos), SEEK_DATA);
    if (data == -1 && errno == ENXIO) break;  // only a hole is left
    if (data == -1) return Error::from_errno("lseek(SEEK_DATA)");
    const off_t hole = ::lseek(src, data, SEEK_HOLE);
    if (hole == -1) return Error::from_errno("lseek(SEEK_HOLE)");
    loff_t off_in = data;
    loff_t off_out = data;
    while (off_in < hole) {
      const auto want = static_cast<std::size_t>(hole - off_in);
      const ssize_t n =
          retry([&] { return ::copy_file_range(src, &off_in, dst, &off_out, want, 0); });
      if (n == -1) return Error::from_errno("copy_file_range");
      if (n == 0) break;  // the source shrank under us
    }
    pos = static_cast<std::uint64_t>(hole);
  }
  if (::ftruncate(dst, static_cast<off_t>(size)) == -1) return Error::from_errno("ftruncate");
  return size;
}

Result<std::uint64_t> copy_rw(int dst, int src) noexcept {
  constexpr std::size_t kChunk = std::size_t{1} << 20;
  std::vector<std::byte> buf;
  try {
    buf.resize(kChunk);
  } catch (const std::bad_alloc&) {
    return Error::of(ENOMEM, "copy");
  }
  std::uint64_t off = 0;
  for (;;) {
    auto n = pread(src, std::span(buf), off);
    if (!n) return std::move(n).error();
    if (*n == 0) return off;
    SNAPFS_TRY(pwrite_all(dst, std::span<const std::byte>(buf.data(), *n), off));
    off += *n;
  }
}

Result<std::size_t> pread(int fd, std::span<std::byte> buf, std::uint64_t off) noexcept {
  const ssize_t n =
      retry([&] { return ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(off)); });
  if (n == -1) return Error::from_errno("pread");
  return static_cast<std::size_t>(n);
}

Result<std::size_t> pwrite(int fd, std::span<const std::byte> buf, std::uint64_t off) noexcept {
  const ssize_t n =
      retry([&] { return ::pwrite(fd, buf.data(), buf.size(), static_cast<off_t>(off)); });
  if (n == -1) return Error::from_errno("pwrite");
  return static_cast<std::size_t>(n);
}

Result<void> pwrite_all(int fd, std::span<const std::byte> buf, std::uint64_t off) noexcept {
  while (!buf.empty()) {
    auto n = pwrite(fd, buf, off);
    if (!n) return std::move(n).error();
    buf = buf.subspan(*n);
    off += *n;
  }
  return {};
}

Result<std::size_t> read(int fd, std::span<std::byte> buf) noexcept {
  const ssize_t n = retry([&] { return ::read(fd, buf.data(), buf.size()); });
  if (n == -1) return Error::from_errno("read");
  return static_cast<std::size_t>(n);
}

Result<std::size_t> write(int fd, std::span<const std::byte> buf) noexcept {
  const ssize_t n = retry([&] { return ::write(fd, buf.data(), buf.size()); });
  if (n == -1) return Error::from_errno("write");
  return static_cast<std::size_t>(n);
}

Result<void> copy_range_at(int dst, std::uint64_t dst_off, int src, std::uint64_t src_off,
                           std::uint64_t len) noexcept {
  bool fallback = false;
  while (len > 0) {
    const std::size_t chunk = len > (std::uint64_t{1} << 30) ? (std::size_t{1} << 30)
                                                               : static_cast<std::size_t>(len);
    std::size_t n = 0;
    if (!fallback) {
      auto in = static_cast<off_t>(src_off);
      auto out = static_cast<off_t>(dst_off);
      const ssize_t r = retry([&] { return ::copy_file_range(src, &in, dst, &out, chunk, 0); });
      if (r == -1 && (errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP ||
                      errno == ENOSYS)) {
        fallback = true;
        continue;
      }
      if (r == -1) return Error::from_errno("copy_file_range");
      n = static_cast<std::size_t>(r);
    } else {
      std::byte buf[65536];
      auto r = pread(src, std::span(buf, std::min(chunk, sizeof buf)), src_off);
      if (!r) return std::move(r).error();
      SNAPFS_TRY(pwrite_all(dst, std::span<const std::byte>(buf, *r), dst_off));
      n = *r;
    }
    if (n == 0) break;  // the source ended early
    src_off += n;
    dst_off += n;
    len -= n;
  }
  return {};
}

Result<void*> mmap(std::size_t len, int prot, int flags, int fd) noexcept {
  void* p = ::mmap(nullptr, len, prot, flags, fd, 0);
  if (p == MAP_FAILED) return Error::from_errno("mmap");
  return p;
}

void munmap(void* addr, std::size_t len) noexcept {
  // munmap only fails for arguments that did not come from mmap (EINVAL) or
  // when splitting a mapping needs memory we never ask for (we unmap whole
  // mappings). Either is an ownership bug.
  if (::munmap(addr, len) == -1) {
    std::fprintf(stderr, "snapfs: munmap(%p, %zu): %s\n", addr, len, std::strerror(errno));
    std::abort();
  }
}

Result<void*> mremap(void* addr, std::size_t old_len, std::size_t new_len) noexcept {
  void* p = ::mremap(addr, old_len, new_len, MREMAP_MAYMOVE);
  if (p == MAP_FAILED) return Error::from_errno("mremap");
  return p;
}

Result<void> msync(void* addr, std::size_t len) noexcept {
  return ok_or(::msync(addr, len, MS_SYNC), "msync");
}

Result<UniqueFd> memfd_create(const char* name) noexcept {
  const int fd = ::memfd_create(name, MFD_CLOEXEC);
  if (fd == -1) return Error::from_errno("memfd_create", name);
  return UniqueFd(fd);
}

Result<void> faccessat(int dirfd, const char* path, int mode, int flags) noexcept {
  return ok_or(::faccessat(dirfd, path, mode, flags), "faccessat", path);
}

Result<std::string> readlinkat(int dirfd, const char* path) noexcept {
  try {
    std::string buf(256, '\0');
    for (;;) {
      const ssize_t n = ::readlinkat(dirfd, path, buf.data(), buf.size());
      if (n == -1) return Error::from_errno("readlinkat", path);
      if (static_cast<std::size_t>(n) < buf.size()) {
        buf.resize(static_cast<std::size_t>(n));
        return buf;
      }
      buf.resize(buf.size() * 2);
    }
  } catch (const std::bad_alloc&) {
    return Error::of(ENOMEM, "readlinkat", path);
  }
}

namespace {
// The size-probe-then-read loop shared by every *xattr getter: the value can
// grow between the two calls (ERANGE), so retry.
template <typename F>
Result<std::vector<char>> read_xattr_buffer(F call, const char* op, const char* what) noexcept {
  for (;;) {
    const ssize_t size = call(nullptr, 0);
    if (size == -1) return Error::from_errno(op, what);
    std::vector<char> buf;
    try {
      buf.resize(static_cast<std::size_t>(size));
    } catch (const std::bad_alloc&) {
      return Error::of(ENOMEM, op, what);
    }
    if (size == 0) return buf;
    const ssize_t n = call(buf.data(), buf.size());
    if (n == -1 && errno == ERANGE) continue;
    if (n == -1) return Error::from_errno(op, what);
    buf.resize(static_cast<std::size_t>(n));
    return buf;
  }
}
}  // namespace

Result<std::vector<char>> listxattr_path(const char* path) noexcept {
  return read_xattr_buffer(
      [&](char* b, std::size_t n) { return ::listxattr(path, b, n); }, "listxattr", path);
}

Result<std::vector<char>> getxattr_path(const char* path, const char* name) noexcept {
  return read_xattr_buffer(
      [&](char* b, std::size_t n) { return ::getxattr(path, name, b, n); }, "getxattr", name);
}

Result<std::vector<char>> flistxattr(int fd) noexcept {
  return read_xattr_buffer(
      [&](char* b, std::size_t n) { return ::flistxattr(fd, b, n); }, "flistxattr", "");
}

Result<std::vector<char>> fgetxattr(int fd, const char* name) noexcept {
  return read_xattr_buffer(
      [&](char* b, std::size_t n) { return ::fgetxattr(fd, name, b, n); }, "fgetxattr", name);
}

Result<void> fsetxattr(int fd, const char* name, std::span<const char> value, int flags) noexcept {
  return ok_or(::fsetxattr(fd, name, value.data(), value.size(), flags), "fsetxattr", name);
}

Result<void> fremovexattr(int fd, const char* name) noexcept {
  return ok_or(::fremovexattr(fd, name), "fremovexattr", name);
}

Result<std::size_t> getxattr_path(const char* path, const char* name,
                                  std::span<char> out) noexcept {
  const ssize_t n = retry([&] { return ::getxattr(path, name, out.data(), out.size()); });
  if (n == -1) return Error::from_errno("getxattr", name);
  return static_cast<std::size_t>(n);
}

Result<std::size_t> getxattr_fd(int fd, const char* name, std::span<char> out) noexcept {
  const auto proc = proc_fd_path(fd);
  const ssize_t n = ::getxattr(proc.c_str(), name, out.data(), out.size());
  if (n == -1) return Error::from_errno("getxattr", name);
  return static_cast<std::size_t>(n);
}

Result<std::size_t> listxattr_fd(int fd, std::span<char> out) noexcept {
  const auto proc = proc_fd_path(fd);
  const ssize_t n = ::listxattr(proc.c_str(), out.data(), out.size());
  if (n == -1) return Error::from_errno("listxattr");
  return static_cast<std::size_t>(n);
}

Result<void> setxattr_fd(int fd, const char* name, std::span<const char> value,
                         int flags) noexcept {
  const auto proc = proc_fd_path(fd);
  return ok_or(::setxattr(proc.c_str(), name, value.data(), value.size(), flags), "setxattr",
               name);
}

Result<void> removexattr_fd(int fd, const char* name) noexcept {
  const auto proc = proc_fd_path(fd);
  return ok_or(::removexattr(proc.c_str(), name), "removexattr", name);
}

Result<void> random_bytes(std::span<std::byte> out) noexcept {
  while (!out.empty()) {
    const ssize_t n = ::getrandom(out.data(), out.size(), 0);
    if (n == -1 && errno == EINTR) continue;
    if (n == -1) return Error::from_errno("getrandom");
    out = out.subspan(static_cast<std::size_t>(n));
  }
  return {};
}

mode_t current_umask() noexcept {
  // /proc/self/status has "Umask:\t0022" since Linux 4.7.
  if (FILE* f = std::fopen("/proc/self/status", "re")) {
    char line[256];
    unsigned mask = 0;
    bool found = false;
    while (std::fgets(line, sizeof line, f)) {
      if (std::sscanf(line, "Umask: %o", &mask) == 1) {
        found = true;
        break;
      }
    }
    std::fclose(f);
    if (found) return static_cast<mode_t>(mask & 0777);
  }
  return 022;
}

ProcFdPath proc_fd_path(int fd) noexcept {
  ProcFdPath p{};
  std::snprintf(p.buf, sizeof p.buf, "/proc/self/fd/%d", fd);
  return p;
}

Result<UniqueFd> reopen(int fd, int flags) noexcept {
  // ISOLATION/SAFETY: the magic link names the open file itself, not a path
  // (see sys.hpp): nothing done to the names meanwhile can redirect it.
  const auto proc = proc_fd_path(fd);
  return openat(AT_FDCWD, proc.c_str(), flags);
}

}  // namespace snapfs::core::sys
