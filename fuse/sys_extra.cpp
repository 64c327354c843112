// Raw syscalls for the daemon that core/sys lacks (see sys_extra.hpp).
#include "sys_extra.hpp"

#include <sys/resource.h>
#include <sys/syscall.h>

#include "sys/sys.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <sys/xattr.h>
#include <sys/fsuid.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <utility>

namespace snapfs::fuse::sys {

using core::Error;

namespace {

using core::sys::ok_or;
using core::sys::retry;

// <linux/fuse.h> of Debian 12 (protocol 7.38) predates passthrough (7.40):
// the ioctl ABI, as the kernel defines it in include/uapi/linux/fuse.h.
struct FuseBackingMap {
  std::int32_t fd;
  std::uint32_t flags;
  std::uint64_t padding;
};
static_assert(sizeof(FuseBackingMap) == 16);
constexpr unsigned kFuseDevIocMagic = 229;
constexpr unsigned long kBackingOpen = _IOW(kFuseDevIocMagic, 1, FuseBackingMap);
constexpr unsigned long kBackingClose = _IOW(kFuseDevIocMagic, 2, std::uint32_t);

// struct fuse_out_header, and FUSE_NOTIFY_INC_EPOCH (protocol 7.44).
struct FuseOutHeader {
  std::uint32_t len;
  std::int32_t error;    // a notification: its code
  std::uint64_t unique;  // 0: a notification
};
static_assert(sizeof(FuseOutHeader) == 16);
constexpr std::int32_t kNotifyIncEpoch = 8;

}  // namespace

Result<void> notify_inc_epoch(int devfd) noexcept {
  const FuseOutHeader h{sizeof h, kNotifyIncEpoch, 0};
  const ssize_t n = retry([&] { return ::write(devfd, &h, sizeof h); });
  if (n < 0) return Error::from_errno("write(FUSE_NOTIFY_INC_EPOCH)");
  if (static_cast<std::size_t>(n) != sizeof h) return Error::of(EIO, "write(FUSE_NOTIFY_INC_EPOCH)");
  return {};
}

Result<int> backing_open(int devfd, int fd) noexcept {
  FuseBackingMap map{};
  map.fd = fd;
  const int id = ::ioctl(devfd, kBackingOpen, &map);
  if (id < 0) return Error::from_errno("ioctl(FUSE_DEV_IOC_BACKING_OPEN)");
  return id;
}

Result<void> backing_close(int devfd, int id) noexcept {
  auto bid = static_cast<std::uint32_t>(id);
  return ok_or(::ioctl(devfd, kBackingClose, &bid), "ioctl(FUSE_DEV_IOC_BACKING_CLOSE)");
}

Result<bool> sole_writer(int fd) noexcept {
  if (::fcntl(fd, F_SETLEASE, F_WRLCK) == -1) {
    if (errno == EAGAIN || errno == EBUSY) return false;
    return Error::from_errno("fcntl(F_SETLEASE)");
  }
  (void)::fcntl(fd, F_SETLEASE, F_UNLCK);
  return true;
}

bool is_fuse_mount(const char* path) noexcept {
  constexpr long kFuseSuperMagic = 0x65735546;
  struct statfs sfs {};
  if (::statfs(path, &sfs) == -1) return errno == ENOTCONN;
  return sfs.f_type == kFuseSuperMagic;
}

Result<void> writeback(int fd) noexcept {
  return ok_or(retry([&] {
                 return ::sync_file_range(fd, 0, 0,
                                          SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                              SYNC_FILE_RANGE_WAIT_AFTER);
               }),
               "sync_file_range");
}

Result<void> set_fs_identity(uid_t uid, gid_t gid, std::span<const gid_t> groups) noexcept {
  // SECURITY: the raw syscall, not glibc's setgroups(), which signals every
  // thread of the process to change theirs too (the credentials of the
  // other worker threads must not move).
  if (::syscall(SYS_setgroups, static_cast<long>(groups.size()), groups.data()) == -1)
    return Error::from_errno("setgroups");
  // setfsuid/setfsgid report no error: they return the previous id, and a
  // second call with an invalid id (-1) reads back the current one.
  (void)::setfsgid(gid);
  (void)::setfsuid(uid);
  if (static_cast<uid_t>(::setfsuid(static_cast<uid_t>(-1))) != uid ||
      static_cast<gid_t>(::setfsgid(static_cast<gid_t>(-1))) != gid)
    return Error::of(EPERM, "setfsuid");
  return {};
}

namespace {

// The text of /proc/<tid>/status (a few hundred bytes; bounded).
Result<std::string> proc_status(pid_t tid) noexcept {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/status", static_cast<int>(tid));
  const int fd = retry([&] { return ::open(path, O_RDONLY | O_CLOEXEC); });
  if (fd == -1) return Error::from_errno("open", path);
  std::string text;
  char buf[4096];
  Result<std::string> out = Error::of(EIO, "read", path);
  try {
    for (;;) {
      const ssize_t n = retry([&] { return ::read(fd, buf, sizeof buf); });
      if (n < 0) {
        out = Error::from_errno("read", path);
        break;
      }
      if (n == 0 || text.size() > (1u << 20)) {
        out = std::move(text);
        break;
      }
      text.append(buf, static_cast<std::size_t>(n));
    }
  } catch (const std::bad_alloc&) {
    out = Error::of(ENOMEM, "read", path);
  }
  (void)::close(fd);
  return out;
}

// The value of field `key` ("Groups:") up to the end of its line.
Result<std::string_view> status_field(const std::string& text, const char* key) noexcept {
  std::size_t pos = std::string::npos;
  for (std::size_t p = text.find(key); p != std::string::npos; p = text.find(key, p + 1))
    if (p == 0 || text[p - 1] == '\n') {
      pos = p;
      break;
    }
  if (pos == std::string::npos) return Error::of(EINVAL, "read", key);
  const std::size_t start = pos + std::strlen(key);
  const std::size_t end = text.find('\n', start);
  if (end == std::string::npos) return Error::of(EINVAL, "read", key);
  return std::string_view(text).substr(start, end - start);
}

}  // namespace

Result<std::vector<gid_t>> groups_of(pid_t tid) noexcept {
  auto text = proc_status(tid);
  if (!text) return std::move(text).error();
  auto field = status_field(*text, "Groups:");
  if (!field) return std::move(field).error();
  std::vector<gid_t> groups;
  try {
    const std::string s(*field);
    const char* p = s.c_str();
    for (;;) {
      char* end = nullptr;
      errno = 0;
      const unsigned long g = std::strtoul(p, &end, 10);
      if (end == p) break;
      if (errno != 0 || g > UINT32_MAX) return Error::of(EINVAL, "read", "Groups:");
      groups.push_back(static_cast<gid_t>(g));
      p = end;
    }
  } catch (const std::bad_alloc&) {
    return Error::of(ENOMEM, "groups_of");
  }
  return groups;
}

Result<bool> has_capability(pid_t tid, int cap) noexcept {
  auto text = proc_status(tid);
  if (!text) return std::move(text).error();
  auto field = status_field(*text, "CapEff:");
  if (!field) return std::move(field).error();
  const std::string s(field->begin(), field->end());
  char* end = nullptr;
  const unsigned long long bits = std::strtoull(s.c_str(), &end, 16);
  if (end == s.c_str()) return Error::of(EINVAL, "read", "CapEff:");
  return cap >= 0 && cap < 64 && ((bits >> cap) & 1u) != 0;
}

Result<pid_t> tgid_of(pid_t tid) noexcept {
  // The usual caller is a process's main thread: pidfd_open(2) without
  // PIDFD_THREAD succeeds only for a thread-group leader, whose tid is the
  // tgid. Two syscalls instead of formatting /proc/<tid>/status (every
  // writable open asks this).
  if (const long pfd = ::syscall(SYS_pidfd_open, static_cast<long>(tid), 0L); pfd >= 0) {
    (void)::close(static_cast<int>(pfd));
    return tid;
  }
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/status", static_cast<int>(tid));
  const int fd = retry([&] { return ::open(path, O_RDONLY | O_CLOEXEC); });
  if (fd == -1) return Error::from_errno("open", path);
  char buf[1024];
  const ssize_t n = retry([&] { return ::read(fd, buf, sizeof buf - 1); });
  const int saved = errno;
  (void)::close(fd);
  if (n < 0) return Error::of(saved, "read", path);
  buf[n] = '\0';
  const char* t = std::strstr(buf, "\nTgid:");
  if (!t) return Error::of(EINVAL, "read", path);
  return static_cast<pid_t>(std::strtol(t + 6, nullptr, 10));
}

ssize_t raw_read(int fd, void* buf, std::size_t len) { return ::read(fd, buf, len); }

ssize_t raw_writev(int fd, const struct iovec* iov, int count) {
  return ::writev(fd, iov, count);
}

ssize_t raw_splice(int fd_in, loff_t* off_in, int fd_out, loff_t* off_out, std::size_t len,
                   unsigned flags) {
  return ::splice(fd_in, off_in, fd_out, off_out, len, flags);
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

Result<void> copy_range_at(int dst, std::uint64_t dst_off, int src, std::uint64_t src_off,
                           std::uint64_t len) noexcept {
  bool fallback = false;
  while (len > 0) {
    const std::size_t chunk = len > (std::uint64_t{1} << 30) ? (std::size_t{1} << 30)
                                                               : static_cast<std::size_t>(len);
    ssize_t n = -1;
    if (!fallback) {
      auto in = static_cast<off_t>(src_off);
      auto out = static_cast<off_t>(dst_off);
      n = retry([&] { return ::copy_file_range(src, &in, dst, &out, chunk, 0); });
      if (n == -1 && (errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP ||
                      errno == ENOSYS)) {
        fallback = true;
        continue;
      }
      if (n == -1) return Error::from_errno("copy_file_range");
    } else {
      char buf[65536];
      const std::size_t want = chunk < sizeof buf ? chunk : sizeof buf;
      n = retry([&] { return ::pread(src, buf, want, static_cast<off_t>(src_off)); });
      if (n == -1) return Error::from_errno("pread");
      std::size_t done = 0;
      while (done < static_cast<std::size_t>(n)) {
        const ssize_t w = retry([&] {
          return ::pwrite(dst, buf + done, static_cast<std::size_t>(n) - done,
                          static_cast<off_t>(dst_off + done));
        });
        if (w == -1) return Error::from_errno("pwrite");
        done += static_cast<std::size_t>(w);
      }
    }
    if (n == 0) break;  // the source ended early
    src_off += static_cast<std::uint64_t>(n);
    dst_off += static_cast<std::uint64_t>(n);
    len -= static_cast<std::uint64_t>(n);
  }
  return {};
}

Result<std::string> readlink_fd(int fd) noexcept {
  char buf[PATH_MAX + 1];
  const ssize_t n = ::readlinkat(fd, "", buf, sizeof buf);
  if (n == -1) return Error::from_errno("readlinkat");
  if (static_cast<std::size_t>(n) >= sizeof buf) return Error::of(ENAMETOOLONG, "readlinkat");
  try {
    return std::string(buf, static_cast<std::size_t>(n));
  } catch (const std::bad_alloc&) {
    return Error::of(ENOMEM, "readlinkat");
  }
}

Result<void> fchownat(int dirfd, const char* name, uid_t uid, gid_t gid, int flags) noexcept {
  return ok_or(::fchownat(dirfd, name, uid, gid, flags), "fchownat", name);
}

Result<void> chmod_fd(int fd, mode_t mode) noexcept {
  const auto proc = core::sys::proc_fd_path(fd);
  return ok_or(::fchmodat(AT_FDCWD, proc.c_str(), mode, 0), "chmod", proc.c_str());
}

Result<void> utimensat(int dirfd, const char* name, const struct timespec times[2],
                       int flags) noexcept {
  return ok_or(::utimensat(dirfd, name, times, flags), "utimensat", name);
}

Result<void> faccessat(int dirfd, const char* name, int mode, int flags) noexcept {
  return ok_or(::faccessat(dirfd, name, mode, flags), "faccessat", name);
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

Result<void> ofd_getlk(int fd, struct flock& lk) noexcept {
  lk.l_pid = 0;
  return ok_or(retry([&] { return ::fcntl(fd, F_OFD_GETLK, &lk); }), "fcntl(F_OFD_GETLK)");
}

Result<std::uint64_t> raise_nofile_limit() noexcept {
  struct rlimit rl {};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == -1) return Error::from_errno("getrlimit");
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &rl) == -1) return Error::from_errno("setrlimit");
  }
  return static_cast<std::uint64_t>(rl.rlim_cur);
}

mode_t set_umask(mode_t mask) noexcept { return ::umask(mask); }

pid_t getpid() noexcept { return ::getpid(); }

uid_t geteuid() noexcept { return ::geteuid(); }

gid_t getegid() noexcept { return ::getegid(); }

Result<std::size_t> getxattr_fd(int fd, const char* name, std::span<char> out) noexcept {
  const auto proc = core::sys::proc_fd_path(fd);
  const ssize_t n = ::getxattr(proc.c_str(), name, out.data(), out.size());
  if (n == -1) return Error::from_errno("getxattr", name);
  return static_cast<std::size_t>(n);
}

Result<std::size_t> listxattr_fd(int fd, std::span<char> out) noexcept {
  const auto proc = core::sys::proc_fd_path(fd);
  const ssize_t n = ::listxattr(proc.c_str(), out.data(), out.size());
  if (n == -1) return Error::from_errno("listxattr");
  return static_cast<std::size_t>(n);
}

Result<void> setxattr_fd(int fd, const char* name, std::span<const char> value,
                         int flags) noexcept {
  const auto proc = core::sys::proc_fd_path(fd);
  return ok_or(::setxattr(proc.c_str(), name, value.data(), value.size(), flags), "setxattr",
               name);
}

Result<void> removexattr_fd(int fd, const char* name) noexcept {
  const auto proc = core::sys::proc_fd_path(fd);
  return ok_or(::removexattr(proc.c_str(), name), "removexattr", name);
}

DirStream::DirStream(DirStream&& o) noexcept : dir_(std::exchange(o.dir_, nullptr)) {}

DirStream& DirStream::operator=(DirStream&& o) noexcept {
  if (this != &o) {
    if (dir_) ::closedir(dir_);
    dir_ = std::exchange(o.dir_, nullptr);
  }
  return *this;
}

DirStream::~DirStream() {
  if (dir_) ::closedir(dir_);
}

Result<DirStream> DirStream::open(int dirfd) noexcept {
  // "." relative to the O_PATH handle: the directory inode we hold, never a
  // name that could have been swapped.
  auto fd = core::sys::openat(dirfd, ".", O_RDONLY | O_DIRECTORY);
  if (!fd) return std::move(fd).error();
  DIR* d = ::fdopendir(fd->get());
  if (!d) return Error::from_errno("fdopendir");
  (void)fd->release();  // the DIR owns it now
  DirStream s;
  s.dir_ = d;
  return s;
}

int DirStream::fd() const noexcept { return ::dirfd(dir_); }

void DirStream::seek(std::int64_t off) noexcept { ::seekdir(dir_, static_cast<long>(off)); }

Result<struct dirent*> DirStream::next() noexcept {
  errno = 0;
  struct dirent* e = ::readdir(dir_);
  if (!e && errno != 0) return Error::from_errno("readdir");
  return e;
}

}  // namespace snapfs::fuse::sys
