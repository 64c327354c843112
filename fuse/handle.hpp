// Version: an open's private snapshot and its commit state, with the commit
// that publishes it (docs/design-fuse.md "Commit"); Handle: one open file
// description (fi->fh), which reads and writes its Version. The open side is
// handle.cpp, the commit side commit.cpp (its rules: commit_decision.hpp).
#pragma once

#include "commit_decision.hpp"
#include "daemon_state.hpp"
#include "identity.hpp"
#include "inode_table.hpp"
#include "passthrough.hpp"
#include "sys/sys.hpp"

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
  shared,            // -o shared=GLOB: B/p itself, ordinary shared semantics
  exclusive_reader,  // -o exclusive, read-only open: B/p itself (never changes in place)
  reader_share,      // a read-only open sharing the snapshot of a reader on the same node
};

// What a snapshot looked like when the daemon last took account of it
// (kernel passthrough: writes never reach the daemon, so a change is seen
// as a new size or ctime; ctime is fine-grained once queried, so a write
// after the fstat that recorded it always shows).
struct SnapState {
  off_t size = -1;
  struct timespec ctime {};

  static SnapState of(const struct stat& st) noexcept { return {st.st_size, st.st_ctim}; }
  bool same(const SnapState& o) const noexcept {
    return size == o.size && ctime.tv_sec == o.ctime.tv_sec && ctime.tv_nsec == o.ctime.tv_nsec;
  }
};

// The process (thread group) whose private version a Version is; tgid 0:
// nobody's (readers, callers in a pid namespace the daemon cannot see). The
// pidfd tells it from a later process given the same number.
struct Owner {
  pid_t tgid = 0;
  core::UniqueFd pidfd;

  // Whether `tgid` (a caller's thread group) is this owner, still running.
  bool is(pid_t t) const noexcept {
    return tgid != 0 && t == tgid && pidfd && core::sys::process_alive(pidfd.get());
  }
  // Whether a close by thread group `t` is the owner's: as is(), but an
  // owner without a pidfd counts by number (as before pidfds).
  bool closes(pid_t t) const noexcept {
    if (tgid == 0 || t != tgid) return false;
    return !pidfd || core::sys::process_alive(pidfd.get());
  }
};

struct Version {
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
  // Dirty only because the open truncated a non-empty file (O_TRUNC), with
  // no change since. FLUSH does not publish that: shells open with O_TRUNC,
  // dup2 and close the original descriptor before writing a byte, and that
  // FLUSH would publish an empty file for others to see (docs/semantics.md#truncation). The
  // truncation alone is published at RELEASE, after the last close.
  bool pending_truncate = false;
  bool truncate_announced = false;  // in Conn::pending_truncations (key: base)
  // `snap` was given a name by the last commit: it is the published file now
  // and must be re-cloned before the next change (ensure_private()).
  bool published = false;
  core::CloneMethod method = core::CloneMethod::reflink;
  struct timespec base_mtime {};  // shown while not dirty
  // Conflict detection (docs/semantics.md#conflicts): the version this attempt started from,
  // and whether every change since was a write at or past base.size (no
  // truncate, no fallocate): such a description is rebased, not refused.
  Base base;
  bool append_only = true;
  // Kernel passthrough hides where writes land, so whether a writer only
  // appended is decided at a conflict by comparing the snapshot's first
  // base.size bytes with this file: the version the snapshot started from
  // (kept open, so a rename over B/p does not take it away), or after a
  // commit the copy this description published.
  core::UniqueFd base_file;

  // Kernel passthrough (docs/design-passthrough.md). `backing` is the
  // registered backing file (this open's snapshot, or the file shared with
  // other readers), kept until RELEASE. `passthrough`: the OPEN reply
  // carried it, so the kernel reads, writes and maps `fd()` itself and no
  // READ or WRITE reaches the daemon; set right after the reply, before
  // any other request of this open. `seen`: see SnapState.
  std::shared_ptr<BackingFile> backing;
  std::atomic<bool> passthrough{false};
  // A reader of a shared warm snapshot (kind reader_share): its backing
  // file is the snapshot's, registered once for all its readers.
  std::shared_ptr<WarmSnapshot> warm;
  // Whose private version this is (Owner): for a passthrough writer its
  // closes are the ones that commit (the daemon cannot see who wrote), and
  // its other opens of the node join this version.
  Owner owner;
  // Descriptions of this version not yet released, and of those the ones
  // no FLUSH by the owner has reached (Handle::closed_by_owner): while
  // another is open, a close by the owner publishes nothing
  // (CloseFacts::others_open). `all_append`: each writable one has O_APPEND.
  unsigned descs = 0;
  unsigned unclosed = 0;
  bool all_append = false;
  // Who writes it (identity.hpp): its first writer, or a later writable
  // description's caller that is not privileged (join()). What it may do
  // in B later, when a commit rebases it onto, or overwrites, a file
  // someone else published, and whether its writes drop setuid, setgid and
  // file capabilities.
  Identity who;
  SnapState seen;

  // The descriptor the daemon serves this open from; -1 for a warm reader
  // whose snapshot only the kernel holds (it never sends READ for it).
  int fd() const noexcept {
    if (kind == HandleKind::snapshot) return snap.fd();
    if (direct.valid() || !warm) return direct.get();
    return warm->keeps_file ? warm->file.fd() : -1;
  }
  // The kernel writes this snapshot without telling the daemon.
  bool kernel_writes() const noexcept {
    return kind == HandleKind::snapshot && writable && passthrough.load(std::memory_order_acquire);
  }
  bool read_only_clean() const noexcept { return !writable && !dirty && kind != HandleKind::shared; }

  // Needs `mu` held exclusively. `writer`: a lock owner, or
  // for a passthrough writer its process; 0: unknown.
  void mark_dirty(std::uint64_t writer) {
    dirty = true;
    pending_truncate = false;
    if (writer == 0) {
      dirtied_by_anyone = true;
    } else {
      // A write by a known owner after an owner-less change (ftruncate,
      // O_TRUNC): the truncate-then-rewrite is that writer's, so a child
      // that merely inherited the descriptor does not publish it half-written
      // when it exits (docs/reliability.md, finding 1).
      dirtied_by_anyone = false;
      for (auto w : writers)
        if (w == writer) return;
      try {
        writers.push_back(writer);
      } catch (const std::bad_alloc&) {
        dirtied_by_anyone = true;
      }
    }
  }
};

// One open file description: what the kernel's fi->fh names. Its content,
// size and commit state are its Version's (`v`, never null); what POSIX
// gives each description of its own is here.
struct Handle {
  std::shared_ptr<Version> v;
  bool writable = false;
  bool append = false;  // O_APPEND: every WRITE of this description goes to the end
  Identity who;         // the caller of the OPEN or CREATE that made it
  // This open's place in the opener's share of the daemon (UserOpens).
  UserSlot slot;
  // flock/fcntl locks are taken on B/p itself through this descriptor of
  // the node's backing inode (ops/lock.cpp), made at the first lock request.
  std::mutex lock_mu;
  core::UniqueFd lock_fd;
  // A FLUSH by the version's owner reached this description (guarded by
  // v->mu): it no longer holds back the owner's publish.
  bool closed_by_owner = false;
};

// A private file on the filesystem of the node's directory, so that publish
// can link it there; readers may get one in memory (handle.cpp).
core::Result<core::TmpFile> make_private(Conn& c, const Node& node, bool for_write) noexcept;

// Opens `node` for `flags` (O_ACCMODE, O_TRUNC, O_APPEND): a snapshot, or B/p
// itself for passthrough globs and exclusive readers. `fresh_empty`: the
// file was just created empty by us (CREATE): no clone.
core::Result<std::unique_ptr<Version>> open_handle(Conn& c, const std::shared_ptr<Node>& node,
                                                  int flags, bool fresh_empty) noexcept;

// A writer's snapshot belongs to the writer (Version::who), so that what it
// writes before its close counts against its disk quota, as a file it wrote
// directly would (docs/security.md). Nothing for readers, root, or a daemon
// that is not root.
core::Result<void> charge_to_writer(const Daemon& d, Version& h) noexcept;

// Another read-only open of a node whose open `cur` is a clean reader: it
// shares cur's snapshot inode (read-only, never changes), so the node's
// fstat is right for both.
// `view_of_writer`: a read-only re-open of a node whose open is a kernel
// passthrough writer (/proc/PID/fd/N, /dev/stdin): the kernel allows one
// backing file per inode, so it reads that open's snapshot, as a re-open of
// the same inode would on any filesystem.
core::Result<std::unique_ptr<Version>> share_reader(const std::shared_ptr<Node>& node,
                                                   Version& cur,
                                                   bool view_of_writer = false) noexcept;

enum class CommitOutcome {
  nothing,    // clean, not the writer's close, or unlinked: nothing published
  published,  // B/p was still the base: published
  rebased,    // B/p changed, the description only appended: our tail added to it
  overwrote,  // B/p changed, --on-conflict=overwrite: published anyway
  conflict,   // B/p changed, --on-conflict=fail: kept in conflicts/, close() fails
};

// The FLUSH (or RELEASE) that asks for a commit.
struct CommitCaller {
  std::uint64_t owner = 0;  // lock owner (the caller's files_struct)
  pid_t pid = 0;
  uid_t uid = 0;
  bool release = false;     // the version's last description is gone: publish a pending
                            // truncation too
  Handle* desc = nullptr;   // FLUSH: the description closed (its closed_by_owner is marked)
  // The last mapping of a passthrough snapshot went away and its content
  // differs from what this description last published, though its ctime
  // did not move (tmpfs has no page_mkwrite): publish it (Lingering).
  bool mapped_stores = false;
};

// Publishes a dirty snapshot to the node's current name (FLUSH by lock owner
// `c.owner`), checking under the path's commit stripe that B/p is still the
// version the snapshot started from (docs/design-conflicts.md). Idempotent:
// a clean or shared handle, or a FLUSH from an owner that did not write,
// publishes nothing. Takes h.mu exclusively.
core::Result<CommitOutcome> commit(Conn& c, Version& h, const CommitCaller& by) noexcept;

// Takes a flushed, unpublished truncation of `h` out of
// Conn::pending_truncations (RELEASE, or a commit that published). Needs
// h.mu held exclusively.
void settle_truncation(Conn& c, Version& h) noexcept;

// Whether a released passthrough writer's snapshot holds stores through a
// shared mapping that its ctime does not show (filesystems without
// page_mkwrite: tmpfs): it differs from B/p while B/p is still what this
// description last published. O(size); may throw std::bad_alloc.
bool mapped_stores_unseen(Conn& c, Version& h);

// utimens through M changed the mtime of the published inode `st` (not its
// content): open descriptors whose base is that inode take the new mtime,
// so their commits do not see a conflict. Takes each handle's mu.
void touch_bases(Conn& c, const struct stat& st) noexcept;

// Before changing a snapshot: a published one is replaced by a fresh private
// clone. Needs h.mu held exclusively.
core::Result<void> ensure_private(Conn& c, Version& h) noexcept;

// Before a change through a description (write, fallocate, ftruncate),
// h.mu held exclusively: a reader refuses it (EBADF), a published
// snapshot is replaced by a private clone (ensure_private).
core::Result<void> prepare_change(Conn& c, Version& h) noexcept;

// What fstat shows for a node with this open (h.mu held, any mode).
core::Result<struct stat> handle_attr(const Version& h) noexcept;

// truncate(path): snapshot -> ftruncate -> publish, atomically (design doc).
core::Result<void> truncate_published(Conn& c, const std::shared_ptr<Node>& node,
                                      std::uint64_t size, const Identity& who) noexcept;

}  // namespace snapfs::fuse
