// core/sys: the process and the calling thread (limits, umask, ids, the
// filesystem identity of a thread, what /proc/<tid>/status says).
#include "sys.hpp"

#include <poll.h>
#include <sys/fsuid.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>

namespace snapfs::core::sys {

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
  auto text = proc_status(tid);
  if (!text) return std::move(text).error();
  auto field = status_field(*text, "Tgid:");
  if (!field) return std::move(field).error();
  const std::string s(field->begin(), field->end());
  return static_cast<pid_t>(std::strtol(s.c_str(), nullptr, 10));
}

Result<std::string> command_of(pid_t pid) noexcept {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/comm", static_cast<int>(pid));
  const int fd = retry([&] { return ::open(path, O_RDONLY | O_CLOEXEC); });
  if (fd == -1) return Error::from_errno("open", path);
  char buf[64];  // TASK_COMM_LEN is 16
  const ssize_t n = retry([&] { return ::read(fd, buf, sizeof buf); });
  const int e = errno;
  (void)::close(fd);
  if (n < 0) return Error::of(e, "read", path);
  std::size_t len = static_cast<std::size_t>(n);
  if (len > 0 && buf[len - 1] == '\n') --len;
  try {
    return std::string(buf, len);
  } catch (const std::bad_alloc&) {
    return Error::of(ENOMEM, "read", path);
  }
}

Result<UniqueFd> pidfd_open(pid_t pid) noexcept {
  const long fd = ::syscall(SYS_pidfd_open, static_cast<long>(pid), 0L);
  if (fd < 0) return Error::from_errno("pidfd_open");
  return UniqueFd(static_cast<int>(fd));
}

bool process_alive(int pidfd) noexcept {
  struct pollfd p {};
  p.fd = pidfd;
  p.events = POLLIN;
  int n;
  do {
    n = ::poll(&p, 1, 0);
  } while (n < 0 && errno == EINTR);
  return n == 0;
}

}  // namespace snapfs::core::sys
