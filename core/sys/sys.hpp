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

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace snapfs::core::sys {

// Retries a call that returns -1/EINTR. Only for calls that are safe to
// repeat; close(2) is never one of them. (Also used by fuse/kernel_io.)
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
// The birth time of the inode of `fd` (statx STATX_BTIME), or {0, 0} where
// the file system keeps none.
Result<struct timespec> birth_time(int fd) noexcept;
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
Result<void> mkdirat(int dirfd, const char* name, mode_t mode) noexcept;
Result<void> symlinkat(const char* target, int dirfd, const char* name) noexcept;
Result<void> mknodat(int dirfd, const char* name, mode_t mode, dev_t rdev) noexcept;
Result<void> fchownat(int dirfd, const char* name, uid_t uid, gid_t gid, int flags) noexcept;
// chmod through /proc/self/fd/N: fchmod refuses O_PATH descriptors.
Result<void> chmod_fd(int fd, mode_t mode) noexcept;
Result<void> utimensat(int dirfd, const char* name, const struct timespec times[2],
                       int flags) noexcept;
Result<struct statvfs> fstatvfs(int fd) noexcept;
Result<void> fallocate(int fd, int mode, std::uint64_t off, std::uint64_t len) noexcept;
Result<std::uint64_t> lseek(int fd, std::int64_t off, int whence) noexcept;
// flock(2).
Result<void> flock(int fd, int op) noexcept;
// Open file description locks (F_OFD_SETLK / F_OFD_GETLK) on `fd`.
Result<void> ofd_setlk(int fd, struct flock& lk) noexcept;
Result<void> ofd_getlk(int fd, struct flock& lk) noexcept;
// F_OFD_SETLKW: waits for the lock (EINTR is retried).
Result<void> ofd_setlkw(int fd, struct flock& lk) noexcept;
// Whether the open file `fd` (opened for writing) is the only open file
// description with write access to its inode: a write lease can be taken
// only then (fcntl F_SETLEASE F_WRLCK, released at once). EAGAIN -> false.
Result<bool> sole_writer(int fd) noexcept;
// Writes back the dirty pages of `fd` and waits (sync_file_range), without
// a device flush: what fdatasync does minus durability.
Result<void> writeback(int fd) noexcept;

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
// read(2) and write(2) at the file position (pipes, memfds), EINTR retried.
Result<std::size_t> read(int fd, std::span<std::byte> buf) noexcept;
Result<std::size_t> write(int fd, std::span<const std::byte> buf) noexcept;
// Copies `len` bytes of `src` from `src_off` to `dst` at `dst_off`:
// copy_file_range, falling back to pread/pwrite where the kernel refuses
// (EXDEV, EINVAL, EOPNOTSUPP, ENOSYS). Stops early at src's end of file.
Result<void> copy_range_at(int dst, std::uint64_t dst_off, int src, std::uint64_t src_off,
                           std::uint64_t len) noexcept;

Result<void*> mmap(std::size_t len, int prot, int flags, int fd) noexcept;
void munmap(void* addr, std::size_t len) noexcept;  // failure is a broken invariant: aborts
Result<void*> mremap(void* addr, std::size_t old_len, std::size_t new_len) noexcept;
Result<void> msync(void* addr, std::size_t len) noexcept;

Result<UniqueFd> memfd_create(const char* name) noexcept;

// faccessat(2) with AT_EACCESS (effective ids, as open(2) checks).
Result<void> faccessat(int dirfd, const char* path, int mode, int flags) noexcept;
// readlink(2) into a string (for /proc/self/fd/N; `path` "" reads the
// target of an O_PATH symlink handle `dirfd`).
Result<std::string> readlinkat(int dirfd, const char* path) noexcept;

// Extended attributes of a file named by path, not following a final
// symlink except a /proc magic link (which is how O_PATH fds are read).
Result<std::vector<char>> listxattr_path(const char* path) noexcept;
Result<std::vector<char>> getxattr_path(const char* path, const char* name) noexcept;
// Into `out` in one call, without asking the size first (ERANGE if the
// value does not fit): for values that change between two calls.
Result<std::size_t> getxattr_path(const char* path, const char* name, std::span<char> out) noexcept;

// Extended attributes of an open file. flistxattr returns the raw NUL-separated list.
Result<std::vector<char>> flistxattr(int fd) noexcept;
Result<std::vector<char>> fgetxattr(int fd, const char* name) noexcept;
Result<void> fsetxattr(int fd, const char* name, std::span<const char> value, int flags) noexcept;
Result<void> fremovexattr(int fd, const char* name) noexcept;

// Extended attributes of the inode behind an fd of any kind (O_PATH
// included), through /proc/self/fd/N. An empty `out` asks for the length only.
Result<std::size_t> getxattr_fd(int fd, const char* name, std::span<char> out) noexcept;
Result<std::size_t> listxattr_fd(int fd, std::span<char> out) noexcept;
Result<void> setxattr_fd(int fd, const char* name, std::span<const char> value,
                         int flags) noexcept;
Result<void> removexattr_fd(int fd, const char* name) noexcept;

// Fills `out` with bytes from getrandom(2).
Result<void> random_bytes(std::span<std::byte> out) noexcept;

// The calling process's umask, read from /proc/self/status without changing
// it (umask(2) can only be read by setting it, which races with other threads).
mode_t current_umask() noexcept;

// "/proc/self/fd/N", for the calls that need a path rather than a
// descriptor: linkat(AT_SYMLINK_FOLLOW) (see publish.cpp for why), xattrs
// and chmod of an O_PATH handle.
struct ProcFdPath {
  char buf[32];
  const char* c_str() const noexcept { return buf; }
};
ProcFdPath proc_fd_path(int fd) noexcept;

// Opens the inode behind `fd` (typically an O_PATH handle) anew with
// `flags`, through /proc/self/fd/N. ISOLATION/SAFETY: the /proc/self/fd
// magic link resolves to the open file itself, not to a path, so no rename
// or symlink swap can redirect it to another inode.
Result<UniqueFd> reopen(int fd, int flags) noexcept;

// The process and the calling thread (process.cpp).

// Raises the soft limit on open descriptors to the hard limit; returns the
// new soft limit.
Result<std::uint64_t> raise_nofile_limit() noexcept;
// The process's umask; returns the previous one.
mode_t set_umask(mode_t mask) noexcept;
uid_t geteuid() noexcept;
gid_t getegid() noexcept;
pid_t getpid() noexcept;
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
// The command name of process `pid` (its comm, as ps -o comm shows it: at
// most 15 bytes, set at exec or by prctl(PR_SET_NAME)).
Result<std::string> command_of(pid_t pid) noexcept;
// A pidfd of process `pid` (a thread-group leader): it refers to that
// process only, never to a later one given the same number.
Result<UniqueFd> pidfd_open(pid_t pid) noexcept;
// Whether the process of `pidfd` has not exited yet (poll(2): a pidfd
// becomes readable when its process exits). An error asking counts as
// exited.
bool process_alive(int pidfd) noexcept;

// Local SOCK_SEQPACKET sockets (socket.cpp): one datagram per message, with
// at most one descriptor passed alongside (SCM_RIGHTS).
// A socket bound to `name` in the directory `dirfd` (through /proc/self/fd,
// so the directory's path may be longer than sun_path), of mode `mode`,
// listening.
Result<UniqueFd> seqpacket_listen(int dirfd, const char* name, mode_t mode, int backlog) noexcept;
// A socket connected to the socket at `path` (a path too long for sun_path
// is reached through its directory's descriptor).
Result<UniqueFd> seqpacket_connect(const std::string& path) noexcept;
// accept4(2), the new socket close-on-exec.
Result<UniqueFd> accept(int listen_fd) noexcept;
// Sends `data` as one message, with the descriptor `fd` if it is not -1.
Result<void> send_message(int sock, std::string_view data, int fd = -1) noexcept;
struct Message {
  std::string data;
  UniqueFd fd;       // the descriptor that came with it, if any
  bool eof = false;  // the peer closed its end: no message
};
// The next message, at most `max` bytes (a longer one: EMSGSIZE). Any
// descriptor beyond the first is closed.
Result<Message> recv_message(int sock, std::size_t max) noexcept;
// Who is at the other end of a connected local socket (SO_PEERCRED: as
// they were when they connected).
struct PeerCred {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};
Result<PeerCred> peer_credentials(int sock) noexcept;
// A pair of connected SOCK_SEQPACKET sockets, close-on-exec.
Result<std::pair<UniqueFd, UniqueFd>> seqpacket_pair() noexcept;

// A directory stream over its own O_RDONLY descriptor (fdopendir; dir.cpp).
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

}  // namespace snapfs::core::sys
