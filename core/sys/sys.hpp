// core/sys: the only home of raw syscalls in snapfs (scripts/lint-bans.sh
// enforces it). Each wrapper retries EINTR where the call can be interrupted,
// and returns Result<T> with the syscall's name and the path it acted on.
//
// Paths here are always relative to a directory descriptor: nothing in snapfs
// resolves an absolute path except the library's convenience entry points,
// which split it into (parent directory, final name) first.
#pragma once

#include <snapfs/core/result.hpp>
#include <snapfs/core/unique_fd.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace snapfs::core::sys {

// Retries a call that returns -1/EINTR. Only for calls that are safe to
// repeat; close(2) is never one of them. (Also used by fuse/sys_extra.)
template <typename F>
auto retry(F f) noexcept {
  decltype(f()) r;
  do {
    r = f();
  } while (r == -1 && errno == EINTR);
  return r;
}

// -1 becomes an Error with errno, the call's name and the path.
inline Result<void> ok_or(int r, const char* op, std::string_view path = {}) noexcept {
  if (r == -1) return Error::from_errno(op, path);
  return {};
}

// openat(2). O_CLOEXEC is always added.
Result<UniqueFd> openat(int dirfd, const char* path, int flags, mode_t mode = 0) noexcept;
// openat2(2) with RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS (and the given extra
// resolve flags): the kernel refuses any walk that leaves `dirfd`, by ".."
// or by a symlink, with EXDEV. Used by the daemon for every backing path.
Result<UniqueFd> openat_beneath(int dirfd, const char* path, int flags, mode_t mode,
                                std::uint64_t extra_resolve = 0) noexcept;
Result<struct stat> fstat(int fd) noexcept;
Result<struct stat> fstatat(int dirfd, const char* path, int flags) noexcept;
Result<void> ftruncate(int fd, std::uint64_t len) noexcept;
Result<void> fsync(int fd) noexcept;
Result<void> fdatasync(int fd) noexcept;
Result<void> fchmod(int fd, mode_t mode) noexcept;
Result<void> fchown(int fd, uid_t uid, gid_t gid) noexcept;
Result<void> futimens(int fd, const struct timespec times[2]) noexcept;
Result<void> linkat(int olddirfd, const char* oldpath, int newdirfd, const char* newpath,
                    int flags) noexcept;
// renameat2(2); flags 0, RENAME_NOREPLACE or RENAME_EXCHANGE.
Result<void> renameat(int olddirfd, const char* oldpath, int newdirfd, const char* newpath,
                      unsigned flags = 0) noexcept;
Result<void> unlinkat(int dirfd, const char* path, int flags) noexcept;

// ioctl(FICLONE): makes `dst` share all of `src`'s extents.
Result<void> ficlone(int dst, int src) noexcept;
// copy_file_range(2) of `src`'s data segments to the same offsets of `dst`,
// which ends up as long as `src` was when the copy started, holes kept.
// Returns that length.
Result<std::uint64_t> copy_range(int dst, int src) noexcept;
// The same through pread/pwrite, for the pairs copy_file_range refuses
// (across filesystems, memfd, procfs...).
Result<std::uint64_t> copy_rw(int dst, int src) noexcept;

Result<std::size_t> pread(int fd, std::span<std::byte> buf, std::uint64_t off) noexcept;
Result<std::size_t> pwrite(int fd, std::span<const std::byte> buf, std::uint64_t off) noexcept;
// Writes all of `buf` (loops over short writes).
Result<void> pwrite_all(int fd, std::span<const std::byte> buf, std::uint64_t off) noexcept;

Result<void*> mmap(std::size_t len, int prot, int flags, int fd) noexcept;
void munmap(void* addr, std::size_t len) noexcept;  // failure is a broken invariant: aborts
Result<void*> mremap(void* addr, std::size_t old_len, std::size_t new_len) noexcept;
Result<void> msync(void* addr, std::size_t len) noexcept;

Result<UniqueFd> memfd_create(const char* name) noexcept;

// faccessat(2) with AT_EACCESS (effective ids, as open(2) checks).
Result<void> faccessat(int dirfd, const char* path, int mode, int flags) noexcept;
// readlink(2) into a string (for /proc/self/fd/N).
Result<std::string> readlinkat(int dirfd, const char* path) noexcept;

// Extended attributes of a file named by path, not following a final
// symlink except a /proc magic link (which is how O_PATH fds are read).
Result<std::vector<char>> listxattr_path(const char* path) noexcept;
Result<std::vector<char>> getxattr_path(const char* path, const char* name) noexcept;

// Extended attributes of an open file. flistxattr returns the raw NUL-separated list.
Result<std::vector<char>> flistxattr(int fd) noexcept;
Result<std::vector<char>> fgetxattr(int fd, const char* name) noexcept;
Result<void> fsetxattr(int fd, const char* name, std::span<const char> value, int flags) noexcept;
Result<void> fremovexattr(int fd, const char* name) noexcept;

// Fills `out` with bytes from getrandom(2).
Result<void> random_bytes(std::span<std::byte> out) noexcept;

// The calling process's umask, read from /proc/self/status without changing
// it (umask(2) can only be read by setting it, which races with other threads).
mode_t current_umask() noexcept;

// "/proc/self/fd/N" for linkat(AT_SYMLINK_FOLLOW): see publish.cpp for why.
struct ProcFdPath {
  char buf[32];
  const char* c_str() const noexcept { return buf; }
};
ProcFdPath proc_fd_path(int fd) noexcept;

}  // namespace snapfs::core::sys
