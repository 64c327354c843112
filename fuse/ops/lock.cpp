// GETLK, SETLK/SETLKW, FLOCK.
//
// Why the daemon takes locks itself: each open has its own kernel inode (one
// nodeid per open), and the kernel's own lock table is per inode, so locks
// it kept would never conflict between two opens of one file. Instead every
// description gets a descriptor of the backing inode (Handle::lock_fd) and
// the lock is taken there: flock(2) for flock, open-file-description locks
// (F_OFD_SETLK) for fcntl locks. They conflict across opens through M and
// with processes locking B/p directly.
// Differences from local POSIX locks (design doc): fcntl locks belong to the
// description, not the process (two descriptions of one process conflict,
// closing another descriptor does not release them; they go at RELEASE);
// a lock is on the inode B/p had when the description opened or last
// committed, and a commit by someone else replaces that inode.
// Symlink-safe: the lock descriptor re-opens the node's held O_PATH handle of
// a regular file through /proc/self/fd; no path is resolved.
#include "ops/common.hpp"
#include "ops/ops.hpp"
#include "reply.hpp"
#include "sys/sys.hpp"

#include <fcntl.h>
#include <sys/file.h>

#include <chrono>
#include <mutex>
#include <thread>

namespace snapfs::fuse::ops {

namespace sys = core::sys;

using core::Result;
using namespace std::chrono_literals;

namespace {

Result<int> lock_fd_of(Handle& h) noexcept {
  std::lock_guard lk(h.lock_mu);
  if (!h.lock_fd) {
    const FdRef fd = h.v->node->fd();
    // F_WRLCK needs a descriptor open for writing; flock and read locks do
    // not. The kernel sends F_WRLCK only for a description open for
    // writing (fcntl(2): EBADF otherwise), so B/p is opened for writing
    // only for a writer, whom open already allowed to write it. Any other
    // lock never opens it for writing: that would make exec of B/p fail
    // with ETXTBSY while the lock is held.
    const int acc = h.writable ? O_RDWR : O_RDONLY;
    auto f = sys::reopen(fd->get(), acc | O_NOCTTY | O_NONBLOCK);
    if (!f && h.writable)
      f = sys::reopen(fd->get(), O_RDONLY | O_NOCTTY | O_NONBLOCK);
    if (!f) return std::move(f).error();
    h.lock_fd = std::move(*f);
  }
  return h.lock_fd.get();
}

// A blocking request polls so that the worker thread notices an interrupted
// request (the application got a signal) instead of sleeping in the kernel.
template <typename F>
Result<void> wait_for(fuse_req_t req, bool sleep, F attempt) noexcept {
  for (;;) {
    auto r = attempt();
    if (r || !sleep) return r;
    const int e = r.error().value();
    if (e != EAGAIN && e != EWOULDBLOCK && e != EACCES) return r;
    if (fuse_req_interrupted(req)) return core::Error::of(EINTR, "lock");
    std::this_thread::sleep_for(5ms);
  }
}

}  // namespace

void getlk(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, struct flock* lock) noexcept {
  const std::shared_ptr<Handle> hp = handle_ref(fi);
  auto fd = lock_fd_of(*hp);
  if (!fd) return reply_error(req, fd.error(), "getlk", ino);
  struct flock l = *lock;
  if (auto r = sys::ofd_getlk(*fd, l); !r) return reply_error(req, r.error(), "getlk", ino);
  l.l_pid = 0;  // the holder may be anywhere (another open, or B directly)
  reply_lock(req, l);
}

void setlk(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, struct flock* lock,
           int sleep) noexcept {
  const std::shared_ptr<Handle> hp = handle_ref(fi);
  auto fd = lock_fd_of(*hp);
  if (!fd) return reply_error(req, fd.error(), "setlk", ino);
  const struct flock want = *lock;
  auto r = wait_for(req, sleep != 0, [&] {
    struct flock l = want;
    return sys::ofd_setlk(*fd, l);
  });
  if (!r) return reply_error(req, r.error(), "setlk", ino);
  reply_ok(req);
}

void flock(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, int op) noexcept {
  const std::shared_ptr<Handle> hp = handle_ref(fi);
  auto fd = lock_fd_of(*hp);
  if (!fd) return reply_error(req, fd.error(), "flock", ino);
  const bool sleep = !(op & LOCK_NB);
  auto r = wait_for(req, sleep, [&] { return sys::flock(*fd, op | LOCK_NB); });
  if (!r) return reply_error(req, r.error(), "flock", ino);
  reply_ok(req);
}

}  // namespace snapfs::fuse::ops
