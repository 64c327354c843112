// The attribute invalidation (see notifier.hpp).
#include "notifier.hpp"

#include "kernel_io.hpp"

#include <cerrno>

namespace snapfs::fuse {

bool Notifier::inval_inode(fuse_ino_t ino) noexcept {
  fuse_session* se = se_.load(std::memory_order_acquire);
  if (!se) return false;
  inodes_.fetch_add(1, std::memory_order_relaxed);
  // Offset -1: attributes only; no page-cache range (and so no page lock).
  return fuse_lowlevel_notify_inval_inode(se, ino, -1, 0) == -ENOENT;
}

bool Notifier::inc_epoch() noexcept {
  fuse_session* se = se_.load(std::memory_order_acquire);
  if (!se || !epochs()) return false;
  epochs_sent_.fetch_add(1, std::memory_order_relaxed);
  return static_cast<bool>(kernel::notify_inc_epoch(fuse_session_fd(se)));
}

}  // namespace snapfs::fuse
