// Notifier: the daemon's messages to the kernel's attribute cache (issue #5).
//
// Only fuse_lowlevel_notify_inval_inode(ino, -1, 0) is used. The kernel's
// fuse_reverse_inval_inode() with offset -1 drops the cached attributes (and
// ACLs) of one kernel inode; it takes no inode or directory lock and waits
// for no request, so any handler may send it synchronously, e.g. a FLUSH
// before its reply.
// Deliberately not used: notify_inval_entry / notify_delete. They take the
// parent directory's inode lock, which the kernel holds while it waits for
// our replies (CREATE, LOOKUP in that directory, RENAME...): sent from a
// handler that can deadlock, and a daemon thread blocked in one cannot exit
// after SIGKILL (the lock's holder waits for a reply that never comes, the
// connection stays up: measured, the crash tests hung). Dentries of nodes
// that get opened are dropped by the kernel itself instead (ESTALE and
// LOOKUP_REVAL, InodeTable::begin_open).
#pragma once

#include "fuse_api.hpp"

#include <atomic>
#include <cstdint>

namespace snapfs::fuse {

class Notifier {
public:
  // Notifications go to `se` from now on (nullptr: dropped; nothing is
  // mounted to notify). Set after fuse_session_new, cleared before
  // fuse_session_destroy.
  void attach(fuse_session* se) noexcept { se_.store(se, std::memory_order_release); }

  // ENOENT (the kernel does not hold the inode) is the common, harmless answer.
  void inval_inode(fuse_ino_t ino) noexcept;

  std::uint64_t inode_count() const noexcept { return inodes_.load(std::memory_order_relaxed); }

private:
  std::atomic<fuse_session*> se_{nullptr};
  std::atomic<std::uint64_t> inodes_{0};
};

}  // namespace snapfs::fuse
