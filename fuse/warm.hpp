// Warm read-only snapshots (docs/design-passthrough.md, "Warm read-only
// snapshots").
//
// A snapshot is a new inode, so its page cache starts cold: every open of
// an unchanged header in a build would read the disk again. Read-only opens
// of the same published version therefore share one snapshot, which stays
// here for a while after its last use. ISOLATION is unchanged: nobody ever
// writes a shared snapshot (read-only opens only; the kernel opens the
// backing file with the opener's O_RDONLY, the daemon refuses WRITE on such
// handles), and a version is identified by everything that changes when
// B/p changes: device, inode, size, mtime and ctime. Timestamps are
// fine-grained once queried (Linux >= 6.13), and every open queries them,
// so a change made in place after an open always gets a new ctime.
#pragma once

#include "passthrough.hpp"

#include <snapfs/core/tmpfile.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace snapfs::fuse {

// One shared snapshot: an unnamed private file (never written after its clone),
// and the backing file the kernel reads it through (registered at the
// first passthrough open, then shared by every later one).
// With kernel passthrough the backing file is registered when the snapshot
// is made, and once the kernel has taken it in an OPEN reply the daemon
// keeps no descriptor of it: the kernel holds the file, and what the daemon
// answers itself (fstat size, SEEK_DATA/SEEK_HOLE of a file without holes)
// comes from `size`/`blocks`. So a reader open costs the daemon no
// descriptor of its own (10,000 files open at once). A file that may have
// holes (fewer blocks than its size), or one the kernel cannot take, keeps
// `file` for good (`keeps_file`).
struct WarmSnapshot {
  // With `keeps_file` the snapshot's descriptor for its whole life, read by
  // its readers without a lock. Otherwise held, under `backing_mu`, only
  // until the first OPEN reply armed with `backing` was patched (confirm()):
  // until then every reader takes a descriptor of its own from it, so an
  // open whose reply the kernel did not take is served by the daemon
  // (Version::fd()) instead of failing every READ.
  core::TmpFile file;
  bool keeps_file = true;  // set before the snapshot is shared, never changed after
  off_t size = 0;
  blkcnt_t blocks = 0;
  // Exactly the published version `version` (an fstat of B/p), and then
  // in the cache; otherwise a version at least as new, one reader's alone.
  // Both set before the snapshot is shared, never changed after.
  bool exact = false;
  struct stat version {};
  std::mutex backing_mu;  // leaf lock
  std::shared_ptr<BackingFile> backing;

  // The kernel took `backing` in an OPEN reply: it holds the snapshot now,
  // and a snapshot without `keeps_file` lets the daemon's descriptor go.
  void confirm() noexcept {
    if (keeps_file) return;
    core::TmpFile dead;  // closed after the lock is released
    std::lock_guard lk(backing_mu);
    dead = std::move(file);
  }
};

class WarmSnapshots {
public:
  using Clock = std::chrono::steady_clock;

  // `ttl`: how long an entry stays after its last use; `capacity`: entries
  // whose snapshot only the kernel holds (kernel passthrough: a backing
  // file, no descriptor of the daemon's); `fd_capacity`: entries that hold
  // a descriptor of the daemon's (no passthrough, or a file with holes).
  // ttl 0 disables the cache.
  WarmSnapshots(Clock::duration ttl, std::size_t capacity, std::size_t fd_capacity)
      : ttl_(ttl), capacity_{capacity, fd_capacity} {}

  bool enabled() const noexcept { return ttl_.count() > 0 && capacity_[0] + capacity_[1] > 0; }
  // At start, before any request: how long an entry stays after its last
  // use, and how many entries the kernel alone holds.
  void set_ttl(Clock::duration ttl) noexcept { ttl_ = ttl; }
  void set_capacity(std::size_t n) noexcept { capacity_[0] = n; }
  // At start, before any request: entries that hold a descriptor take at
  // most a tenth of what the daemon may open.
  void limit_fd_capacity(std::size_t n) noexcept { capacity_[1] = std::min(capacity_[1], n); }
  // At start, before any request: the sizes of all entries together stay
  // at most `n` bytes (the least recently used go first). For copies, which
  // take room of their own; unbounded by default.
  void set_byte_capacity(std::uint64_t n) noexcept { byte_capacity_ = n; }
  std::uint64_t bytes() const;

  // The shared snapshot of the version `st` (an fstat of B/p), if any.
  std::shared_ptr<WarmSnapshot> find(const struct stat& st);
  // Keeps `snap` as the snapshot of version `st` (replacing any other
  // version of that inode: at most one entry per inode).
  void insert(const struct stat& st, std::shared_ptr<WarmSnapshot> snap);
  std::size_t size() const;
  // Drops the entry of the inode (dev, ino): a commit, unlink or rename
  // through M replaced or changed it, so it can serve no open any more and
  // would only keep its old blocks allocated. O(1).
  void evict_inode(dev_t dev, ino_t ino) noexcept;
  // Whether two fstats of B/p show the same version (the cache's key).
  static bool same_version(const struct stat& a, const struct stat& b) noexcept {
    return key_of(a) == key_of(b);
  }
  // Drops every entry (daemon exit, before the FUSE device is closed).
  void clear();
  // Opens served by an existing warm snapshot: found here, or shared with
  // an open that still holds it (note_shared()).
  std::uint64_t hits() const noexcept { return hits_.load(std::memory_order_relaxed); }
  void note_shared() noexcept { hits_.fetch_add(1, std::memory_order_relaxed); }

private:
  struct Key {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
    bool operator==(const Key& o) const noexcept;
  };
  struct Inode {
    dev_t dev;
    ino_t ino;
    bool operator==(const Inode& o) const noexcept { return dev == o.dev && ino == o.ino; }
  };
  struct InodeHash {
    std::size_t operator()(const Inode& k) const noexcept;
  };
  struct Entry {
    Key key;
    std::shared_ptr<WarmSnapshot> snap;
    Clock::time_point last_used;
    int cls;  // index into lru_/capacity_: 0 kernel-held, 1 holds a descriptor
  };
  using List = std::list<Entry>;

  static Key key_of(const struct stat& st) noexcept;
  // Moves entry `it` to `dead` (destroyed by the caller after unlocking:
  // closing a snapshot may be slow).
  void drop_locked(List::iterator it, List& dead);
  // Moves the entries past their time, or beyond their class's capacity,
  // to `dead`.
  void expire_locked(Clock::time_point now, List& dead);

  Clock::duration ttl_;
  std::size_t capacity_[2];
  std::uint64_t byte_capacity_ = UINT64_MAX;
  std::uint64_t bytes_ = 0;  // the entries' sizes together, under mu_
  mutable std::mutex mu_;  // leaf lock
  List lru_[2];            // per class, most recently used first
  std::unordered_map<Inode, List::iterator, InodeHash> index_;
  std::atomic<std::uint64_t> hits_{0};
};

}  // namespace snapfs::fuse
