// Handle: one open file description (fi->fh) and its private snapshot, with
// the commit that publishes it (docs/design-fuse.md "Commit").
#pragma once

#include "daemon_state.hpp"
#include "inode_table.hpp"

#include <snapfs/core/result.hpp>
#include <snapfs/core/tmpfile.hpp>
#include <snapfs/core/unique_fd.hpp>

#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <new>
#include <mutex>
#include <shared_mutex>
#include <vector>

namespace snapfs::fuse {

enum class HandleKind {
  snapshot,          // private O_TMPFILE clone; commits on FLUSH when dirty
  shared,            // -o passthrough=GLOB: B/p itself, ordinary shared semantics
  exclusive_reader,  // -o exclusive, read-only open: B/p itself (never changes in place)
  reader_share,      // a read-only open sharing the snapshot of a reader on the same node
};

struct Handle {
  std::shared_ptr<Node> node;
  HandleKind kind = HandleKind::snapshot;
  bool writable = false;
  bool append = false;

  // Lock order: first. read/fsync/getattr shared; anything that changes the
  // snapshot or replaces `snap` exclusive.
  mutable std::shared_mutex mu;
  core::TmpFile snap;     // kind snapshot
  core::UniqueFd direct;  // the other kinds
  bool dirty = false;
  // Who dirtied the snapshot since the last commit: the lock owners (the
  // caller's files_struct) of WRITEs, or "anyone" for changes that carry no
  // owner (ftruncate, fallocate, O_TRUNC). A FLUSH commits only for one of
  // them, so a forked child that merely inherited the descriptor does not
  // publish its parent's half-written file when it exits (design doc).
  std::vector<std::uint64_t> writers;
  bool dirtied_by_anyone = false;
  // `snap` was given a name by the last commit: it is the published file now
  // and must be re-cloned before the next change (ensure_private()).
  bool published = false;
  core::CloneMethod method = core::CloneMethod::reflink;
  struct timespec base_mtime {};  // shown while not dirty

  // flock/fcntl locks are taken on B/p itself through this descriptor of
  // the node's backing inode (ops/lock.cpp), made at the first lock request.
  std::mutex lock_mu;
  core::UniqueFd lock_fd;

  int fd() const noexcept { return kind == HandleKind::snapshot ? snap.fd() : direct.get(); }
  bool read_only_clean() const noexcept { return !writable && !dirty && kind != HandleKind::shared; }

  // Needs `mu` held exclusively. `owner` 0: unknown.
  void mark_dirty(std::uint64_t owner) {
    dirty = true;
    if (owner == 0) {
      dirtied_by_anyone = true;
    } else {
      for (auto w : writers)
        if (w == owner) return;
      try {
        writers.push_back(owner);
      } catch (const std::bad_alloc&) {
        dirtied_by_anyone = true;
      }
    }
  }
};

// Opens `node` for `flags` (O_ACCMODE, O_TRUNC, O_APPEND): a snapshot, or B/p
// itself for passthrough globs and exclusive readers. `fresh_empty`: the
// file was just created empty by us (CREATE): no clone.
core::Result<std::unique_ptr<Handle>> open_handle(Daemon& d, const std::shared_ptr<Node>& node,
                                                  int flags, bool fresh_empty) noexcept;

// Another read-only open of a node whose open `cur` is a clean reader: it
// shares cur's snapshot inode (read-only, never changes), so the node's
// fstat is right for both.
core::Result<std::unique_ptr<Handle>> share_reader(const std::shared_ptr<Node>& node,
                                                   Handle& cur) noexcept;

// Publishes a dirty snapshot to the node's current name (FLUSH by lock owner
// `owner`). Idempotent: a clean or shared handle, or a FLUSH from an owner
// that did not write, publishes nothing. Takes h.mu exclusively.
core::Result<void> commit(Daemon& d, Handle& h, std::uint64_t owner) noexcept;

// Before changing a snapshot: a published one is replaced by a fresh private
// clone. Needs h.mu held exclusively.
core::Result<void> ensure_private(Daemon& d, Handle& h) noexcept;

// What fstat shows for a node with this open (h.mu held, any mode).
core::Result<struct stat> handle_attr(const Handle& h) noexcept;

// truncate(path): snapshot -> ftruncate -> publish, atomically (design doc).
core::Result<void> truncate_published(Daemon& d, const std::shared_ptr<Node>& node,
                                      std::uint64_t size) noexcept;

}  // namespace snapfs::fuse
