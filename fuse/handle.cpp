// Snapshots, commits and the atomic truncate(path). The protocol inside
// core::publish is docs/commit-protocol.md; this file decides *when* and *where*.
#include "handle.hpp"

#include "cache.hpp"
#include "conflicts.hpp"

#include "sys/sys.hpp"
#include "sys_extra.hpp"

#include <snapfs/core/publish.hpp>

#include <fcntl.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <span>
#include <vector>
#include <new>
#include <shared_mutex>

namespace snapfs::fuse {

using core::Error;
using core::Result;
namespace csys = core::sys;

namespace {

// Re-opens the inode behind an O_PATH handle. ISOLATION/SAFETY: the
// /proc/self/fd magic link resolves to the open file itself, not to a path,
// so no rename or symlink swap in B can redirect it; the handle was taken
// with O_NOFOLLOW on a regular file.
Result<core::UniqueFd> reopen(int fd, int flags) noexcept {
  const auto proc = csys::proc_fd_path(fd);
  return csys::openat(AT_FDCWD, proc.c_str(), flags);
}

// A private file on the filesystem of the node's directory, so that publish
// can link it there. Read-only opens fall back to memory where the directory
// refuses an O_TMPFILE (read-only B, no write permission, no O_TMPFILE).
Result<core::TmpFile> make_private(Daemon& d, const Node& node, bool for_write) noexcept {
  const NodePlace place = d.table.place(node);
  if (place.parent) {
    const FdRef pfd = place.parent->fd();
    auto tmp = core::TmpFile::create_in(pfd->get());
    if (tmp || for_write) return tmp;
  } else if (for_write && !place.unlinked) {
    return Error::of(EIO, "snapshot", place.name);
  }
  // An unlinked node never commits, so memory will do for writers too.
  return core::TmpFile::create_in_memory();
}

// `writer`: whose content this is (Handle::who). New content drops file
// capabilities whoever wrote it, and setuid/setgid if the writer is not
// privileged, as write(2) and truncate(2) do (core::PublishOptions).
core::PublishOptions publish_options(const Daemon& d, mode_t mode,
                                     const Identity& writer) noexcept {
  core::PublishOptions o;
  o.kill_caps = true;
  o.kill_setid = !writer.privileged();
  o.durability = d.cfg.durability;
  o.no_replace = false;
  o.create_mode = mode & 07777;
  // Temporary names go to B/.snapfs/staging, where the next mount's
  // recovery finds them; publish falls back to the target's directory if
  // that is another filesystem (EXDEV).
  o.staging_dir = d.staging_dir ? d.staging_dir.get() : -1;
  return o;
}

// The place of `node` with its path's commit stripe and the namespace lock
// (shared) held, in the lock order stripe -> ns_mu. The stripe depends on
// the place, so a rename between reading it and locking is retried.
struct LockedPlace {
  std::unique_lock<std::mutex> stripe;
  std::shared_lock<std::shared_mutex> ns;
  NodePlace place;
  FdRef pfd;
};

Result<LockedPlace> lock_place(Daemon& d, const Node& node) noexcept {
  for (;;) {
    NodePlace p0 = d.table.place(node);
    if (p0.unlinked || !p0.parent) return LockedPlace{{}, {}, std::move(p0), nullptr};
    FdRef pfd = p0.parent->fd();
    auto pst = csys::fstat(pfd->get());
    if (!pst) return std::move(pst).error();
    std::unique_lock stripe(d.stripes.of(pst->st_dev, pst->st_ino, p0.name));
    std::shared_lock ns(d.ns_mu);
    NodePlace p = d.table.place(node);
    if (p.unlinked || !p.parent || (p.parent == p0.parent && p.name == p0.name))
      return LockedPlace{std::move(stripe), std::move(ns), std::move(p), std::move(pfd)};
  }
}

// Rebase (SPEC §2.5): a new private file <- the current B/p (O(1) with
// reflinks), then our tail (base.size .. end of the snapshot) at its end.
Result<core::TmpFile> rebase(Daemon& d, Handle& h, int pfd, const char* name,
                             core::CloneMethod& method) noexcept {
  // Symlink-safe: one component beneath the parent, never followed.
  auto cur = csys::openat_beneath(pfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, 0);
  if (!cur) return std::move(cur).error();
  // SECURITY: B/p is now a file someone else published, possibly another
  // user's made at this name after ours went away. The writer's lines go
  // into it, and its content into the writer's description, only if the
  // writer may read and write that very inode (`cur`, used below).
  SNAPFS_TRY(may_access(d, h.who, cur->get(), R_OK | W_OK));
  auto tmp = make_private(d, *h.node, true);
  if (!tmp) return std::move(tmp).error();
  // ISOLATION: one instant of the current B/p (FICLONE), into a file nobody
  // else can reach.
  auto m = core::clone_contents(tmp->fd(), cur->get());
  if (!m) return std::move(m).error();
  method = *m;
  auto merged = csys::fstat(tmp->fd());
  if (!merged) return std::move(merged).error();
  auto ours = csys::fstat(h.snap.fd());
  if (!ours) return std::move(ours).error();
  if (ours->st_size > h.base.size) {
    SNAPFS_TRY(sys::copy_range_at(tmp->fd(), static_cast<std::uint64_t>(merged->st_size),
                                  h.snap.fd(), static_cast<std::uint64_t>(h.base.size),
                                  static_cast<std::uint64_t>(ours->st_size - h.base.size)));
  }
  if (d.cfg.durability != core::Durability::fast) SNAPFS_TRY(csys::fdatasync(tmp->fd()));
  return std::move(*tmp);
}

// A read-only open of version `st` of B/p (`pathfd`: its O_PATH handle):
// shares the warm snapshot of that version, or makes it (warm.hpp).
Result<std::unique_ptr<Handle>> open_warm_reader(Daemon& d, std::unique_ptr<Handle> h,
                                                 int pathfd, const struct stat& st) noexcept {
  std::shared_ptr<WarmSnapshot> w;
  try {
    w = d.warm.find(st);
    if (!w) {
      auto src = reopen(pathfd, O_RDONLY);
      if (!src) return std::move(src).error();
      auto tmp = make_private(d, *h->node, false);
      if (!tmp) return std::move(tmp).error();
      // ISOLATION: one instant of B/p, into a file nobody writes (below).
      auto m = core::clone_contents(tmp->fd(), src->get());
      if (!m) return std::move(m).error();
      auto snap_st = csys::fstat(tmp->fd());
      if (!snap_st) return std::move(snap_st).error();
      w = std::make_shared<WarmSnapshot>();
      w->size = snap_st->st_size;
      w->blocks = snap_st->st_blocks;
      // Registered now, the kernel keeps the snapshot; the daemon lets its
      // descriptor go (WarmSnapshot). Without passthrough it keeps it to
      // serve the reads.
      w->backing = d.kpt.open_backing(tmp->fd());
      // A file that may have holes keeps its descriptor: SEEK_DATA and
      // SEEK_HOLE must find them (cp and tar keep sparse files sparse).
      const bool sparse = snap_st->st_blocks * 512 < snap_st->st_size;
      if (!w->backing || sparse) w->file = std::move(*tmp);
      // Shared only if B/p did not change since `st` was taken (before the
      // clone): the snapshot then is exactly version `st`. Otherwise this
      // reader keeps it alone, as a snapshot of a version at least as new.
      auto after = csys::fstat(src->get());
      if (after && WarmSnapshots::same_version(*after, st)) {
        w->exact = true;
        w->version = st;
        d.warm.insert(st, w);
      }
    }
  } catch (const std::bad_alloc&) {
    return Error::of(ENOMEM, "open");
  }
  // ISOLATION: read-only, and nobody ever writes `w` after its clone. The
  // handle reads through the snapshot's own descriptor (Handle::fd()): no
  // descriptor per open (reads are preads; the offset is never used).
  h->kind = HandleKind::reader_share;
  h->warm = std::move(w);
  return h;
}

}  // namespace

Result<std::unique_ptr<Handle>> open_handle(Daemon& d, const std::shared_ptr<Node>& node,
                                            int flags, bool fresh_empty) noexcept {
  std::unique_ptr<Handle> h;
  try {
    h = std::make_unique<Handle>();
  } catch (const std::bad_alloc&) {
    return Error::of(ENOMEM, "open");
  }
  const int acc = flags & O_ACCMODE;
  h->node = node;
  h->writable = acc != O_RDONLY;
  h->append = (flags & O_APPEND) != 0;
  const FdRef fdref = node->fd();

  if (node->kind() == NodeKind::shared_file) {
    // -o passthrough=GLOB: ordinary shared semantics on B/p itself. O_TRUNC
    // and O_APPEND act in B as they would without snapfs.
    h->kind = HandleKind::shared;
    auto fd = reopen(fdref->get(), flags & (O_ACCMODE | O_APPEND | O_TRUNC));
    if (!fd) return std::move(fd).error();
    h->direct = std::move(*fd);
    return h;
  }

  if (d.cfg.exclusive && acc == O_RDONLY && !(flags & O_TRUNC) && !fresh_empty) {
    // -o exclusive: B/p changes only by whole-file replacement, so the inode
    // this reader holds never changes: no clone needed.
    h->kind = HandleKind::exclusive_reader;
    auto fd = reopen(fdref->get(), O_RDONLY);
    if (!fd) return std::move(fd).error();
    auto st = csys::fstat(fd->get());
    if (!st) return std::move(st).error();
    h->base_mtime = st->st_mtim;
    h->direct = std::move(*fd);
    return h;
  }

  h->kind = HandleKind::snapshot;
  if (!fresh_empty && (h->writable || (flags & O_TRUNC)) && !d.cfg.default_permissions) {
    // Without default_permissions the kernel checks nothing and nothing
    // below opens B/p for writing: ask the backing filesystem, as the
    // daemon's user, whether this open would be allowed.
    SNAPFS_TRY(sys::faccessat(fdref->get(), "", W_OK, AT_EMPTY_PATH | AT_EACCESS));
  }
  if (fresh_empty || (flags & O_TRUNC)) {
    // O_TRUNC (ATOMIC_O_TRUNC): an empty snapshot, nothing copied, nothing
    // changed in B until the commit at close (FUSE-NOTES §4).
    auto st = csys::fstat(fdref->get());
    if (!st) return std::move(st).error();
    h->base_mtime = st->st_mtim;
    h->base.set(*st);
    if (!fresh_empty && st->st_size > 0) {
      h->mark_dirty(0);
      h->pending_truncate = true;  // published at RELEASE unless written first
      h->append_only = false;      // it dropped the old content
    }
    auto tmp = make_private(d, *node, h->writable || h->dirty);
    if (!tmp) return std::move(tmp).error();
    h->snap = std::move(*tmp);
    return h;
  }
  if (!h->writable && d.warm.enabled()) {
    // A reader of a version that has a warm snapshot opens nothing: the
    // version is read off the held O_PATH descriptor (fstat works on it).
    auto st = csys::fstat(fdref->get());
    if (!st) return std::move(st).error();
    if (!S_ISREG(st->st_mode)) return Error::of(EINVAL, "open");
    h->base_mtime = st->st_mtim;
    h->base.set(*st);
    return open_warm_reader(d, std::move(h), fdref->get(), *st);
  }
  auto src = reopen(fdref->get(), O_RDONLY);
  if (!src) return std::move(src).error();
  // The base is taken before the clone: a change in place between the two
  // then shows as a conflict (safe), never the other way round.
  auto st = csys::fstat(src->get());
  if (!st) return std::move(st).error();
  h->base_mtime = st->st_mtim;
  h->base.set(*st);
  auto tmp = make_private(d, *node, h->writable);
  if (!tmp) return std::move(tmp).error();
  // ISOLATION: the private clone of the file as of this open (FICLONE is one
  // instant; the copy fallback is documented in core/src/clone.cpp).
  auto m = core::clone_contents(tmp->fd(), src->get());
  if (!m) return std::move(m).error();
  h->method = *m;
  h->snap = std::move(*tmp);
  if (h->writable) h->base_file = std::move(*src);
  return h;
}

Result<void> prepare_change(Daemon& d, Handle& h) noexcept {
  if (h.kind == HandleKind::exclusive_reader || h.kind == HandleKind::reader_share)
    return Error::of(EBADF, "write");
  return ensure_private(d, h);
}

Result<void> ensure_private(Daemon& d, Handle& h) noexcept {
  if (h.kind != HandleKind::snapshot || !h.published) return {};
  // ISOLATION: after a commit `snap` *is* B/p; writing through it would change
  // the published file in place. Clone it into a new private file first.
  auto tmp = make_private(d, *h.node, true);
  if (!tmp) return std::move(tmp).error();
  auto m = core::clone_contents(tmp->fd(), h.snap.fd());
  if (!m) return std::move(m).error();
  h.snap = std::move(*tmp);
  h.method = *m;
  h.published = false;
  return {};
}

Result<std::unique_ptr<Handle>> share_reader(const std::shared_ptr<Node>& node,
                                             Handle& cur, bool view_of_writer) noexcept {
  std::unique_ptr<Handle> h;
  try {
    h = std::make_unique<Handle>();
  } catch (const std::bad_alloc&) {
    return Error::of(ENOMEM, "open");
  }
  std::shared_lock lk(cur.mu);
  if (!cur.read_only_clean() && !view_of_writer) return Error::of(ESTALE, "open");
  // ISOLATION: cur is read-only and clean, so its snapshot (or, for an
  // exclusive reader, the published inode) never changes: sharing it is the
  // same as cloning it again.
  h->node = node;
  h->kind = HandleKind::reader_share;
  h->base_mtime = cur.base_mtime;
  if (cur.warm) {
    h->warm = cur.warm;
    return h;
  }
  auto fd = reopen(cur.fd(), O_RDONLY);
  if (!fd) return std::move(fd).error();
  h->direct = std::move(*fd);
  return h;
}

namespace {

// Publishes `file` into the existing inode `cur` of `name` (core's
// publish_in_place): true if done, false where it cannot be one atomic step
// (no reflinks, a shrink, the name changed meanwhile, no write access), and
// the caller renames instead.
Result<bool> publish_into(Daemon& d, core::TmpFile& file, int pfd, const char* name,
                          const struct stat& cur, const Identity& writer) noexcept {
  auto target = csys::openat(pfd, name, O_WRONLY | O_NOFOLLOW | O_NONBLOCK);
  if (!target) return false;
  auto st = csys::fstat(target->get());
  if (!st || st->st_dev != cur.st_dev || st->st_ino != cur.st_ino) return false;
  auto r = core::publish_in_place(file, target->get(), publish_options(d, st->st_mode, writer));
  if (r) return true;
  if (r.error().value() == EOPNOTSUPP) return false;
  return std::move(r).error();
}

// --on-conflict=overwrite replaces what someone else published at B/p
// only if this open's opener could write that file itself: never another
// user's private file made at the name since (it would take our content
// with its owner and mode).
bool may_replace(Daemon& d, const Handle& h, int pfd, const char* name) noexcept {
  auto cur = csys::openat_beneath(pfd, name, O_PATH | O_NOFOLLOW, 0);
  if (!cur) return cur.error().value() == ENOENT;  // nothing to replace: a create
  return static_cast<bool>(may_access(d, h.who, cur->get(), W_OK));
}

// The next offset at or after `off` where `fd` changes between data and
// hole: SEEK_HOLE if `off` is in data, SEEK_DATA if in a hole; `len` if
// nothing changes before it. `in_data` says which `off` is in.
Result<std::uint64_t> next_edge(int fd, std::uint64_t off, std::uint64_t len,
                                bool& in_data) noexcept {
  auto data = sys::lseek(fd, static_cast<std::int64_t>(off), SEEK_DATA);
  if (!data) {
    if (data.error().value() != ENXIO) return std::move(data).error();
    in_data = false;  // only a hole is left
    return len;
  }
  if (*data > off) {
    in_data = false;
    return std::min(*data, len);
  }
  in_data = true;
  auto hole = sys::lseek(fd, static_cast<std::int64_t>(off), SEEK_HOLE);
  if (!hole) return std::move(hole).error();
  return std::min(*hole, len);
}

// Whether the first `len` bytes of `a` and `b` are equal (both files hold
// at least that many); an error reading counts as "not equal". The cost
// follows the data the two files hold, not `len`: a stretch where both have
// a hole is equal without reading it (a 4 EiB sparse file with one page of
// data costs a few lseeks, not a read of 4 EiB of zeros).
Result<bool> same_bytes(int a, int b, std::uint64_t len) noexcept {
  std::vector<std::byte> x, y;
  try {
    x.resize(1 << 16);
    y.resize(1 << 16);
  } catch (const std::bad_alloc&) {
    return Error::of(ENOMEM, "compare");
  }
  for (std::uint64_t off = 0; off < len;) {
    bool a_data = true, b_data = true;
    auto ea = next_edge(a, off, len, a_data);
    auto eb = next_edge(b, off, len, b_data);
    if (!ea || !eb) return false;
    const std::uint64_t end = std::min(*ea, *eb);
    if (!a_data && !b_data) {
      off = end;  // a hole in both: zeros in both
      continue;
    }
    // Data in one or both: pread reads a hole as zeros.
    while (off < end) {
      const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(x.size(), end - off));
      auto nx = csys::pread(a, std::span(x.data(), want), off);
      auto ny = csys::pread(b, std::span(y.data(), want), off);
      if (!nx || !ny || *nx != *ny || *nx == 0) return false;
      if (std::memcmp(x.data(), y.data(), *nx) != 0) return false;
      off += *nx;
    }
  }
  return true;
}

// Whether a passthrough writer only appended: its snapshot still starts
// with the base's bytes (Handle::base_file). O(base size), and only asked
// when someone else published since the snapshot was taken.
bool only_appended(const Handle& h) noexcept {
  if (!h.append_only) return false;  // truncated or fallocated: no
  if (h.append) return true;         // O_APPEND: every write went to the end
  if (h.base.size == 0) return true;
  if (!h.base_file) return false;
  auto bst = csys::fstat(h.base_file.get());
  auto sst = csys::fstat(h.snap.fd());
  if (!bst || !sst || bst->st_size < h.base.size || sst->st_size < h.base.size) return false;
  auto same = same_bytes(h.snap.fd(), h.base_file.get(), static_cast<std::uint64_t>(h.base.size));
  return same && *same;
}

}  // namespace

void settle_truncation(Daemon& d, Handle& h) noexcept {
  if (!h.truncate_announced) return;
  d.pending_truncations.remove({h.base.dev, h.base.ino});
  h.truncate_announced = false;
}

Result<CommitOutcome> commit(Daemon& d, Handle& h, const CommitCaller& c) noexcept {
  std::unique_lock lk(h.mu);
  if (h.kind != HandleKind::snapshot) return CommitOutcome::nothing;
  // Kernel passthrough: writes (and stores through a shared mapping) never
  // reach the daemon; a snapshot whose size or ctime moved since we last
  // looked was changed, by its opener as far as we can tell.
  const bool kernel_writes = h.kernel_writes();
  bool late = false;  // changed since the last close that looked at it
  SnapState now;
  struct stat snap_st {};
  if (kernel_writes) {
    auto st = csys::fstat(h.snap.fd());
    if (!st) return std::move(st).error();
    snap_st = *st;
    now = SnapState::of(*st);
    if (!h.seen.same(now) || c.mapped_stores) {
      h.mark_dirty(static_cast<std::uint64_t>(h.opener));
      late = true;
    }
  }
  if (!h.dirty) return CommitOutcome::nothing;
  // RELEASE publishes a pending truncation and nothing else: anything else
  // dirty had its FLUSH, and if that commit failed, close() reported it; a
  // later retry would publish after the application was told it failed.
  // The exception is a passthrough snapshot changed after every close that
  // could commit it: a forked child that wrote and exited after its parent
  // closed, or stores through a mapping that outlived close().
  if (c.release && !h.pending_truncate && !late) return CommitOutcome::nothing;
  if (h.pending_truncate && !c.release) {  // see Handle::pending_truncate
    if (!h.truncate_announced) {
      try {
        d.pending_truncations.add({h.base.dev, h.base.ino});
        h.truncate_announced = true;
      } catch (const std::bad_alloc&) {
        // Without the entry a LOOKUP does not wait for the RELEASE; harmless.
      }
    }
    return CommitOutcome::nothing;
  }
  // Appends known as such: the daemon saw every write, or O_APPEND.
  const bool appends = h.append_only && (!kernel_writes || h.append);
  if (!h.dirtied_by_anyone && !appends && !c.release) {
    // Who closes: the lock owner of the FLUSH, or for a passthrough writer
    // (whose writes the daemon never sees) the process, compared with the
    // one that opened. A child that inherited the descriptor does not
    // publish its parent's half-written file when it exits.
    std::uint64_t who = c.owner;
    if (kernel_writes) {
      auto tgid = c.pid == h.opener ? Result<pid_t>(c.pid) : sys::tgid_of(c.pid);
      who = tgid ? static_cast<std::uint64_t>(*tgid) : 0;
    }
    bool wrote = false;
    for (auto w : h.writers) wrote = wrote || w == who;
    // A close by a process that never wrote through it (design-fuse.md).
    if (!wrote) return CommitOutcome::nothing;
  }
  // This close decides about everything written so far; RELEASE only
  // publishes what changes after it.
  if (kernel_writes) h.seen = now;
  // An append-only description commits at every close, whoever closes: on
  // an ordinary filesystem its appends would already be visible to all, and
  // a shell's `{ ...; sh -c 'echo x >> log'; ...; } >> log` relies on the
  // group's lines reaching the log before the child's (the child's dup2
  // closes its inherited copy first). Rebasing makes this safe.

  if (d.table.place(*h.node).unlinked) return CommitOutcome::nothing;  // commits nothing

  // DURABILITY: the data sync (the slow part) happens before the locks;
  // publish's own fdatasync then finds nothing left to write.
  if (d.cfg.durability != core::Durability::fast) SNAPFS_TRY(csys::fdatasync(h.snap.fd()));

  // ISOLATION: the kernel keeps writing a passthrough snapshot after this
  // commit (the backing file of the open cannot change), so what is
  // published is a clone of it (O(1) with reflinks), never the snapshot
  // itself. The snapshot's dirty pages are written back first: that makes
  // a later store through a shared mapping fault again and move the ctime
  // that tells us about it (SnapState).
  core::TmpFile frozen;
  if (kernel_writes) {
    if (d.cfg.durability == core::Durability::fast) SNAPFS_TRY(sys::writeback(h.snap.fd()));
    auto tmp = make_private(d, *h.node, true);
    if (!tmp) return std::move(tmp).error();
    auto m = core::clone_contents(tmp->fd(), h.snap.fd());
    if (!m) return std::move(m).error();
    // The published file carries the snapshot's times: its last write, or
    // what futimens set (cp -p), not the time of this clone. (As of `now`:
    // a write since then moved the ctime too, and publishes again later.)
    const struct timespec times[2] = {snap_st.st_atim, snap_st.st_mtim};
    SNAPFS_TRY(csys::futimens(tmp->fd(), times));
    frozen = std::move(*tmp);
  }
  core::TmpFile& mine = kernel_writes ? frozen : h.snap;

  CommitOutcome out = CommitOutcome::published;
  struct stat published {};
  std::string path;
  {
    auto lp = lock_place(d, *h.node);
    if (!lp) return std::move(lp).error();
    if (lp->place.unlinked || !lp->place.parent) return CommitOutcome::nothing;
    const int pfd = lp->pfd->get();
    const char* name = lp->place.name.c_str();
    // The check and the rename below happen under the path's stripe: two
    // commits through M to one path are serialised and each sees the
    // other's result. A change made directly in B between this fstatat and
    // the rename is not seen (no compare-and-rename exists): documented.
    auto cur = csys::fstatat(pfd, name, AT_SYMLINK_NOFOLLOW);
    if (!cur && cur.error().value() != ENOENT) return std::move(cur).error();
    core::TmpFile merged;
    core::CloneMethod merged_method = h.method;
    if (cur && h.base.same(*cur)) {
      out = CommitOutcome::published;
    } else if (cur && S_ISREG(cur->st_mode) &&
               (kernel_writes ? only_appended(h) : h.append_only)) {
      auto r = rebase(d, h, pfd, name, merged_method);
      if (r) {
        merged = std::move(*r);
        out = CommitOutcome::rebased;
      } else if (r.error().value() == EACCES) {
        out = CommitOutcome::conflict;  // not the writer's to extend: kept aside
      } else {
        return std::move(r).error();
      }
    } else if (d.cfg.on_conflict == OnConflict::overwrite && may_replace(d, h, pfd, name)) {
      out = CommitOutcome::overwrote;
    } else {
      out = CommitOutcome::conflict;
    }
    if (out != CommitOutcome::conflict) {
      core::TmpFile& file = out == CommitOutcome::rebased ? merged : mine;
      // SPEC §2.4: a file with several names keeps sharing content, so it is
      // published into its own inode where that is one atomic step.
      auto in_place = cur && S_ISREG(cur->st_mode) && cur->st_nlink > 1
                          ? publish_into(d, file, pfd, name, *cur, h.who)
                          : Result<bool>(false);
      if (!in_place) return std::move(in_place).error();
      if (!*in_place) {
        const FdRef old = h.node->fd();
        auto old_st = csys::fstat(old->get());
        const mode_t mode = old_st ? old_st->st_mode : 0644;
        // ATOMICITY: core::publish links the file under a temporary name in
        // B/.snapfs/staging and renames it over B/p: readers see old or new.
        SNAPFS_TRY(core::publish(file, pfd, name, publish_options(d, mode, h.who)));
        file.mark_named();
      }
      // The inode that now holds the content at B/p (unless in place).
      const int published_fd = file.fd();
      if (out == CommitOutcome::rebased && !kernel_writes) {
        // The description now sees the merged file: its next append extends it.
        h.snap = std::move(merged);
        h.method = merged_method;
      }
      if (*in_place) {
        // B/p is still the inode the node holds; the snapshot stays private.
        const FdRef cur_fd = h.node->fd();
        auto st = csys::fstat(cur_fd->get());
        if (!st) return std::move(st).error();
        published = *st;
      } else {
        auto st = csys::fstat(published_fd);
        if (!st) return std::move(st).error();
        published = *st;
        // The node now stands for the inode it published, so stat, chmod and
        // xattrs through this open reach the new B/p.
        auto pathfd = reopen(published_fd, O_PATH);
        if (!pathfd) return std::move(pathfd).error();
        try {
          d.table.rebind(*h.node, std::make_shared<const core::UniqueFd>(std::move(*pathfd)),
                         published);
        } catch (const std::bad_alloc&) {
          return Error::of(ENOMEM, "commit");
        }
      }
    }
    try {
      if (out != CommitOutcome::published) path = d.table.path_of(*h.node);
    } catch (const std::bad_alloc&) {
    }
  }

  if (out == CommitOutcome::conflict) {
    // First committer wins: this content is kept whole in conflicts/ and
    // close() fails with ESTALE. The description is clean afterwards (a
    // further FLUSH publishes nothing); new writes start a new attempt
    // against the same old base.
    auto kept = keep_conflict(d, mine, ConflictWho{path, c.pid, c.uid});
    if (!kept) return std::move(kept).error();
    d.log->info("conflict: {} changed since it was opened (pid {}); kept at {}", path, c.pid,
                *kept);
    h.dirty = false;
    h.writers.clear();
    h.dirtied_by_anyone = false;
    h.published = !h.snap.anonymous();  // named in conflicts/: re-clone before writing
    return out;
  }
  after_commit(d, *h.node, published);  // issue #5: before FLUSH replies (cache.hpp)
  if (out == CommitOutcome::overwrote)
    d.log->info("commit of {} overwrote a version published since it was opened", path);
  if (out == CommitOutcome::rebased) d.stats.rebases.fetch_add(1, std::memory_order_relaxed);
  d.stats.commits.fetch_add(1, std::memory_order_relaxed);
  d.stats.bytes_published.fetch_add(static_cast<std::uint64_t>(published.st_size),
                                    std::memory_order_relaxed);
  h.dirty = false;
  h.writers.clear();
  h.dirtied_by_anyone = false;
  h.pending_truncate = false;
  h.published = !h.snap.anonymous();  // renamed into place: re-clone before writing
  h.base_mtime = published.st_mtim;
  h.base.set(published);
  h.append_only = true;  // a new attempt starts from what we published
  if (kernel_writes) {
    // What the next only_appended() compares with: the snapshot as of
    // this commit (`frozen`, published or not).
    auto fd = reopen(frozen.fd(), O_RDONLY);
    if (!fd) return std::move(fd).error();
    h.base_file = std::move(*fd);
  }
  if (kernel_writes && out == CommitOutcome::rebased) {
    // The snapshot could not become the merged file (the kernel holds it),
    // so this description does not see what it was rebased onto. Its next
    // commit must rebase again from where its tail now starts: a base that
    // matches no file forces that (or a conflict, if it stops appending).
    auto st = csys::fstat(frozen.fd());
    if (!st) return std::move(st).error();
    h.base = Base{};
    h.base.size = st->st_size;
  }
  // A description that stays open (dup, fork) needs a private snapshot again.
  // With reflinks that is O(1): do it now. Otherwise it would copy the whole
  // file at every close; defer it to the next change (design doc).
  if (h.published && h.method == core::CloneMethod::reflink) {
    if (auto r = ensure_private(d, h); !r)
      d.log->debug("commit: re-clone deferred: {}", r.error().message());
  }
  return out;
}

// Stores through a shared mapping move the ctime where the filesystem has
// page_mkwrite (XFS, btrfs, ext4) once the page was written back, which the
// commit at close does. tmpfs has none: there, a snapshot whose ctime did
// not move is compared with B/p, if B/p is still what this description
// published last.
bool mapped_stores_unseen(Daemon& d, Handle& h) {
  std::shared_lock lk(h.mu);
  auto st = core::sys::fstat(h.snap.fd());
  if (!st || !h.seen.same(SnapState::of(*st))) return false;  // commit() will see it
  const NodePlace place = d.table.place(*h.node);
  if (!place.parent || place.unlinked) return false;
  const FdRef pfd = place.parent->fd();
  auto cur = core::sys::openat_beneath(pfd->get(), place.name.c_str(),
                                       O_RDONLY | O_NOFOLLOW | O_NONBLOCK, 0);
  if (!cur) return false;
  auto cst = core::sys::fstat(cur->get());
  if (!cst || !h.base.same(*cst)) return false;  // published by someone else since
  if (cst->st_size != st->st_size) return true;
  auto same = same_bytes(h.snap.fd(), cur->get(), static_cast<std::uint64_t>(st->st_size));
  return !same || !*same;  // cannot compare: publish (identical content at worst)
}

void touch_bases(Daemon& d, const struct stat& st) noexcept {
  std::vector<std::shared_ptr<Handle>> hs;
  try {
    hs = d.table.opens_of_inode(st.st_dev, st.st_ino);
  } catch (const std::bad_alloc&) {
    return;
  }
  for (const auto& h : hs) {
    std::unique_lock lk(h->mu);
    if (h->base.dev == st.st_dev && h->base.ino == st.st_ino && h->base.size == st.st_size)
      h->base.mtime = st.st_mtim;
  }
}

Result<struct stat> handle_attr(const Handle& h) noexcept {
  const FdRef fdref = h.node->fd();
  // Unbound: the node's last open went away meanwhile (a GETATTR racing
  // with RELEASE); the kernel walks again.
  if (!fdref) return Error::of(ESTALE, "getattr");
  auto st = csys::fstat(fdref->get());
  if (!st) return st;
  if (h.kind == HandleKind::shared) return st;
  if (h.warm && h.fd() < 0) {
    // A warm snapshot the kernel holds alone (WarmSnapshot): never changes.
    st->st_size = h.warm->size;
    st->st_blocks = h.warm->blocks;
    st->st_mtim = h.base_mtime;
    return st;
  }
  auto s = csys::fstat(h.fd());
  if (!s) return s;
  st->st_size = s->st_size;
  st->st_blocks = s->st_blocks;
  // A passthrough writer's changes are not marked until a close looks: a
  // snapshot that moved since then is dirty too.
  const bool changed = h.kernel_writes() && !h.seen.same(SnapState::of(*s));
  st->st_mtim = (h.kind == HandleKind::snapshot && (h.dirty || changed)) ? s->st_mtim
                                                                        : h.base_mtime;
  return st;
}

Result<void> truncate_published(Daemon& d, const std::shared_ptr<Node>& node,
                                std::uint64_t size, const Identity& who) noexcept {
  const FdRef fdref = node->fd();
  if (node->kind() == NodeKind::shared_file) {
    auto fd = reopen(fdref->get(), O_WRONLY);
    if (!fd) return std::move(fd).error();
    return csys::ftruncate(fd->get(), size);
  }
  auto src = reopen(fdref->get(), O_RDONLY);
  if (!src) return std::move(src).error();
  auto st = csys::fstat(src->get());
  if (!st) return std::move(st).error();
  auto tmp = make_private(d, *node, true);
  if (!tmp) return std::move(tmp).error();
  // Size 0 (the usual `truncate -s 0`, `: > file` goes through O_TRUNC) is
  // O(1) everywhere; otherwise a clone, O(1) with reflinks.
  if (size > 0 && st->st_size > 0) {
    auto m = core::clone_contents(tmp->fd(), src->get());
    if (!m) return std::move(m).error();
  }
  SNAPFS_TRY(csys::ftruncate(tmp->fd(), size));
  // Under the path's commit stripe like a commit: descriptors open on the
  // old version see this as someone else's publish (SPEC §2.5).
  auto lp = lock_place(d, *node);
  if (!lp) return std::move(lp).error();
  const NodePlace& place = lp->place;
  if (place.unlinked || !place.parent) return Error::of(ENOENT, "truncate", place.name);
  const FdRef pfd = lp->pfd;
  SNAPFS_TRY(core::publish(*tmp, pfd->get(), place.name.c_str(),
                           publish_options(d, st->st_mode, who)));
  tmp->mark_named();
  auto pst = csys::fstat(tmp->fd());
  if (!pst) return std::move(pst).error();
  auto path = reopen(tmp->fd(), O_PATH);
  if (!path) return std::move(path).error();
  try {
    d.table.rebind(*node, std::make_shared<const core::UniqueFd>(std::move(*path)), *pst);
  } catch (const std::bad_alloc&) {
    return Error::of(ENOMEM, "truncate");
  }
  d.stats.commits.fetch_add(1, std::memory_order_relaxed);
  d.stats.bytes_published.fetch_add(size, std::memory_order_relaxed);
  return {};
}

}  // namespace snapfs::fuse
