// Notifier: the daemon's messages to the kernel's attribute cache
// (docs/design-fuse.md "Caching").
//
// Only fuse_lowlevel_notify_inval_inode(ino, -1, 0) is used. The kernel's
// fuse_reverse_inval_inode() with offset -1 drops the cached attributes (and
// ACLs) of one kernel inode; it takes no inode or directory lock and waits
// for no request, so any handler may send it synchronously, e.g. a FLUSH
// before its reply.
// FUSE_NOTIFY_INC_EPOCH (Linux >= 6.16) is used too: it only bumps the
// connection's epoch, after which every cached dentry is looked up again at
// its next use; no lock, no wait. Sent when a commit replaces a file that
// shared readers hold open (cache.cpp after_commit): their node must not
// stay reachable by path.
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

  // True if the kernel answered ENOENT: it holds no inode `ino` (the common
  // answer; see InodeTable::note_change() for when it is not harmless).
  bool inval_inode(fuse_ino_t ino) noexcept;

  // Whether the kernel takes FUSE_NOTIFY_INC_EPOCH (set at INIT: protocol >= 7.44).
  void set_epochs(bool on) noexcept { epochs_.store(on, std::memory_order_release); }
  bool epochs() const noexcept { return epochs_.load(std::memory_order_acquire); }
  // Every dentry of the mount is revalidated (LOOKUP) at its next use.
  // False if it could not be sent.
  bool inc_epoch() noexcept;

  std::uint64_t inode_count() const noexcept { return inodes_.load(std::memory_order_relaxed); }
  std::uint64_t epoch_count() const noexcept { return epochs_sent_.load(std::memory_order_relaxed); }

private:
  std::atomic<fuse_session*> se_{nullptr};
  std::atomic<bool> epochs_{false};
  std::atomic<std::uint64_t> epochs_sent_{0};
  std::atomic<std::uint64_t> inodes_{0};
};

}  // namespace snapfs::fuse
