// The attribute invalidation (see notifier.hpp).
#include "notifier.hpp"

namespace snapfs::fuse {

void Notifier::inval_inode(fuse_ino_t ino) noexcept {
  fuse_session* se = se_.load(std::memory_order_acquire);
  if (!se) return;
  inodes_.fetch_add(1, std::memory_order_relaxed);
  // Offset -1: attributes only; no page-cache range (and so no page lock).
  (void)fuse_lowlevel_notify_inval_inode(se, ino, -1, 0);
}

}  // namespace snapfs::fuse
