// fuse/sys_extra: syscall wrappers the daemon needs that core/sys does not
// have yet (mkdirat, symlinkat, path-based xattrs through /proc/self/fd, ...).
// Same shape as core/sys: EINTR retried where repeatable, Result<T> carrying
// the syscall name. Candidates to move into core/sys once the lead agrees.
#pragma once

#include <snapfs/core/result.hpp>
#include <snapfs/core/unique_fd.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace snapfs::fuse::sys {

using core::Result;

Result<void> mkdirat(int dirfd, const char* name, mode_t mode) noexcept;
Result<void> symlinkat(const char* target, int dirfd, const char* name) noexcept;
Result<void> mknodat(int dirfd, const char* name, mode_t mode, dev_t rdev) noexcept;
// readlinkat(fd, "") of an O_PATH symlink handle.
Result<std::string> readlink_fd(int fd) noexcept;
Result<void> fchownat(int dirfd, const char* name, uid_t uid, gid_t gid, int flags) noexcept;
// chmod through /proc/self/fd/N: fchmod refuses O_PATH descriptors.
Result<void> chmod_fd(int fd, mode_t mode) noexcept;
Result<void> utimensat(int dirfd, const char* name, const struct timespec times[2],
                       int flags) noexcept;
Result<void> faccessat(int dirfd, const char* name, int mode, int flags) noexcept;
Result<struct statvfs> fstatvfs(int fd) noexcept;
Result<void> fallocate(int fd, int mode, std::uint64_t off, std::uint64_t len) noexcept;
Result<std::uint64_t> lseek(int fd, std::int64_t off, int whence) noexcept;
// flock(2).
Result<void> flock(int fd, int op) noexcept;
// Open file description locks (F_OFD_SETLK / F_OFD_GETLK) on `fd`.
Result<void> ofd_setlk(int fd, struct flock& lk) noexcept;
Result<void> ofd_getlk(int fd, struct flock& lk) noexcept;
// Raises the soft limit on open descriptors to the hard limit; returns the
// new soft limit.
Result<std::uint64_t> raise_nofile_limit() noexcept;
// The daemon's umask; returns the previous one.
mode_t set_umask(mode_t mask) noexcept;
// Copies `len` bytes of `src` from `src_off` to `dst` at `dst_off`:
// copy_file_range, falling back to pread/pwrite where the kernel refuses
// (EXDEV, EINVAL, EOPNOTSUPP, ENOSYS). Stops early at src's end of file.
Result<void> copy_range_at(int dst, std::uint64_t dst_off, int src, std::uint64_t src_off,
                           std::uint64_t len) noexcept;
uid_t geteuid() noexcept;
gid_t getegid() noexcept;
pid_t getpid() noexcept;

// Kernel FUSE passthrough (Linux >= 6.9, CAP_SYS_ADMIN): registers `fd` as a
// backing file on the /dev/fuse descriptor `devfd` and returns its id
// (FUSE_DEV_IOC_BACKING_OPEN); the id is released with backing_close.
Result<int> backing_open(int devfd, int fd) noexcept;
Result<void> backing_close(int devfd, int id) noexcept;
// FUSE_NOTIFY_INC_EPOCH on the /dev/fuse descriptor `devfd` (Linux >= 6.16,
// protocol 7.44): every dentry the kernel holds for the mount is looked up
// again at its next use. The kernel only bumps a counter: no lock, no wait.
Result<void> notify_inc_epoch(int devfd) noexcept;
// Whether the open file `fd` (opened for writing) is the only open file
// description with write access to its inode: a write lease can be taken
// only then (fcntl F_SETLEASE F_WRLCK, released at once). EAGAIN -> false.
Result<bool> sole_writer(int fd) noexcept;
// Writes back the dirty pages of `fd` and waits (sync_file_range), without
// a device flush: what fdatasync does minus durability.
Result<void> writeback(int fd) noexcept;
// Whether `path` is (still) the root of a FUSE mount: statfs(2) answers
// with FUSE's magic, or fails with ENOTCONN (a connection aborted while
// mounted). false once the mount is gone.
bool is_fuse_mount(const char* path) noexcept;
// The calling thread's filesystem identity (setfsuid(2), setfsgid(2) and
// the raw setgroups(2) syscall, which unlike glibc's setgroups() changes
// this thread alone). A thread whose fsuid leaves 0 loses CAP_DAC_OVERRIDE,
// CAP_FOWNER, CAP_CHOWN, CAP_FSETID and the other filesystem capabilities
// from its effective set; back at 0 it has them again (capabilities(7),
// "Effect of user ID changes on capabilities"). Fails (EPERM) if the
// kernel did not take the ids.
Result<void> set_fs_identity(uid_t uid, gid_t gid, std::span<const gid_t> groups) noexcept;
// The supplementary groups of thread `tid` (the "Groups:" line of
// /proc/<tid>/status).
Result<std::vector<gid_t>> groups_of(pid_t tid) noexcept;
// Whether thread `tid` has capability `cap` in its effective set (CapEff
// in /proc/<tid>/status).
Result<bool> has_capability(pid_t tid, int cap) noexcept;
// The thread group (process) of thread `tid`: itself if it leads one (a
// pidfd opens), else from /proc/<tid>/status.
Result<pid_t> tgid_of(pid_t tid) noexcept;
// read(2) and writev(2) of the /dev/fuse descriptor, for the custom I/O of
// fuse/passthrough.cpp: -1 and errno on error, as libfuse expects. Not
// noexcept: libfuse cancels its worker threads (pthread_cancel) while they
// block here, and the forced unwind must be able to pass.
ssize_t raw_read(int fd, void* buf, std::size_t len);
ssize_t raw_writev(int fd, const struct iovec* iov, int count);
ssize_t raw_splice(int fd_in, loff_t* off_in, int fd_out, loff_t* off_out, std::size_t len,
                   unsigned flags);

// Extended attributes of the inode behind an fd of any kind (O_PATH
// included), through /proc/self/fd/N. `size` 0 asks for the length only.
Result<std::size_t> getxattr_fd(int fd, const char* name, std::span<char> out) noexcept;
Result<std::size_t> listxattr_fd(int fd, std::span<char> out) noexcept;
Result<void> setxattr_fd(int fd, const char* name, std::span<const char> value,
                         int flags) noexcept;
Result<void> removexattr_fd(int fd, const char* name) noexcept;

// A directory stream over its own O_RDONLY descriptor (fdopendir).
class DirStream {
public:
  DirStream() noexcept = default;
  DirStream(DirStream&& o) noexcept;
  DirStream& operator=(DirStream&& o) noexcept;
  DirStream(const DirStream&) = delete;
  DirStream& operator=(const DirStream&) = delete;
  ~DirStream();

  // Opens the directory behind the O_PATH handle `dirfd`.
  [[nodiscard]] static Result<DirStream> open(int dirfd) noexcept;
  int fd() const noexcept;
  void seek(std::int64_t off) noexcept;
  // The next entry, nullptr at the end; errors come back as an Error.
  Result<struct dirent*> next() noexcept;

private:
  DIR* dir_ = nullptr;
};

}  // namespace snapfs::fuse::sys
