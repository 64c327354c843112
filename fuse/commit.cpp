// Commits and the atomic truncate(path): the commit side of a Version. The
// protocol inside core::publish is docs/commit-protocol.md; this file decides
// *when* and *where* (the rules themselves: commit_decision.hpp).
#include "handle.hpp"

#include "cache.hpp"
#include "commit_decision.hpp"
#include "conflicts.hpp"
#include "peers.hpp"

#include "sys/sys.hpp"

#include <snapfs/core/publish.hpp>

#include <fcntl.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <shared_mutex>
#include <span>
#include <string>
#include <vector>

namespace snapfs::fuse {

using core::Error;
using core::Result;
namespace sys = core::sys;

namespace {

// `writer`: whose content this is (Version::who). New content drops file
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
  // Named as this daemon's, so that another daemon's recovery leaves an
  // in-flight commit alone (peers.hpp).
  if (d.staging_dir && !d.staging_prefix.empty()) o.temp_prefix = d.staging_prefix;
  return o;
}

// The place of `node` with its path's commit stripe and the namespace lock
// (shared) held, in the lock order stripe -> ns_mu. The stripe depends on
// the place, so a rename between reading it and locking is retried.
struct LockedPlace {
  std::unique_lock<std::mutex> stripe;
  core::UniqueFd across;  // the path's lock among the daemons over B (peers.hpp)
  std::shared_lock<std::shared_mutex> ns;
  NodePlace place;
  FdRef pfd;
};


Result<LockedPlace> lock_place(Conn& c, const Node& node) noexcept {
  Daemon& d = c.d;
  for (;;) {
    NodePlace p0 = c.table.place(node);
    if (p0.unlinked || !p0.parent) return LockedPlace{{}, {}, {}, std::move(p0), nullptr};
    FdRef pfd = p0.parent->fd();
    auto pst = sys::fstat(pfd->get());
    if (!pst) return std::move(pst).error();
    std::unique_lock stripe(d.stripes.of(pst->st_dev, pst->st_ino, p0.name));
    // ATOMICITY: the check of B/p and the publish over it happen under
    // this lock in every daemon over B, so first committer wins across
    // daemons as the stripe makes it within one. Taken before ns_mu: the
    // wait for another daemon's commit never holds up this daemon's
    // renames and unlinks.
    auto across = lock_name(d, pst->st_ino, p0.name);
    if (!across) return std::move(across).error();
    std::shared_lock ns(d.ns_mu);
    NodePlace p = c.table.place(node);
    if (p.unlinked || !p.parent || (p.parent == p0.parent && p.name == p0.name))
      return LockedPlace{std::move(stripe), std::move(*across), std::move(ns), std::move(p),
                         std::move(pfd)};
  }
}

// Rebase (docs/semantics.md#conflicts): a new private file <- the current B/p (O(1) with
// reflinks), then our tail (base.size .. end of the snapshot) at its end.
Result<core::TmpFile> rebase(Conn& c, Version& h, int pfd, const char* name,
                             core::CloneMethod& method) noexcept {
  Daemon& d = c.d;
  // Symlink-safe: one component beneath the parent, never followed.
  auto cur = sys::openat_beneath(pfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, 0);
  if (!cur) return std::move(cur).error();
  // SECURITY: B/p is now a file someone else published, possibly another
  // user's made at this name after ours went away. The writer's lines go
  // into it, and its content into the writer's description, only if the
  // writer may read and write that very inode (`cur`, used below).
  SNAPFS_TRY(may_access(d, h.who, cur->get(), R_OK | W_OK));
  auto tmp = make_private(c, *h.node, true);
  if (!tmp) return std::move(tmp).error();
  // ISOLATION: one instant of the current B/p (FICLONE), into a file nobody
  // else can reach.
  auto m = core::clone_contents(tmp->fd(), cur->get());
  if (!m) return std::move(m).error();
  method = *m;
  auto merged = sys::fstat(tmp->fd());
  if (!merged) return std::move(merged).error();
  auto ours = sys::fstat(h.snap.fd());
  if (!ours) return std::move(ours).error();
  if (ours->st_size > h.base.size) {
    SNAPFS_TRY(sys::copy_range_at(tmp->fd(), static_cast<std::uint64_t>(merged->st_size),
                                  h.snap.fd(), static_cast<std::uint64_t>(h.base.size),
                                  static_cast<std::uint64_t>(ours->st_size - h.base.size)));
  }
  if (d.cfg.durability != core::Durability::fast) SNAPFS_TRY(sys::fdatasync(tmp->fd()));
  return std::move(*tmp);
}

// Publishes `file` into the existing inode `cur` of `name` (core's
// publish_in_place): true if done, false where it cannot be one atomic step
// (no reflinks, a shrink, the name changed meanwhile, no write access), and
// the caller renames instead.
Result<bool> publish_into(Daemon& d, core::TmpFile& file, int pfd, const char* name,
                          const struct stat& cur, const Identity& writer) noexcept {
  auto target = sys::openat(pfd, name, O_WRONLY | O_NOFOLLOW | O_NONBLOCK);
  if (!target) return false;
  auto st = sys::fstat(target->get());
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
bool may_replace(Daemon& d, const Version& h, int pfd, const char* name) noexcept {
  auto cur = sys::openat_beneath(pfd, name, O_PATH | O_NOFOLLOW, 0);
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
      auto nx = sys::pread(a, std::span(x.data(), want), off);
      auto ny = sys::pread(b, std::span(y.data(), want), off);
      if (!nx || !ny || *nx != *ny || *nx == 0) return false;
      if (std::memcmp(x.data(), y.data(), *nx) != 0) return false;
      off += *nx;
    }
  }
  return true;
}

// Whether a passthrough writer only appended: its snapshot still starts
// with the base's bytes (Version::base_file). O(base size), and only asked
// when someone else published since the snapshot was taken.
bool only_appended(const Version& h) noexcept {
  if (!h.append_only) return false;  // truncated or fallocated: no
  if (h.all_append) return true;     // O_APPEND: every write went to the end
  if (h.base.size == 0) return true;
  if (!h.base_file) return false;
  auto bst = sys::fstat(h.base_file.get());
  auto sst = sys::fstat(h.snap.fd());
  if (!bst || !sst || bst->st_size < h.base.size || sst->st_size < h.base.size) return false;
  auto same = same_bytes(h.snap.fd(), h.base_file.get(), static_cast<std::uint64_t>(h.base.size));
  return same && *same;
}

}  // namespace

void settle_truncation(Conn& c, Version& h) noexcept {
  if (!h.truncate_announced) return;
  c.pending_truncations.remove({h.base.dev, h.base.ino});
  h.truncate_announced = false;
}

namespace {

// Who closes: the lock owner of the FLUSH, or for a passthrough writer
// (whose writes the daemon never sees) the process, compared with the
// one that opened; true if it is one of the writers (CloseFacts).
bool closer_wrote(const Version& h, const CommitCaller& c, bool kernel_writes,
                  pid_t closer_tgid) noexcept {
  std::uint64_t who = c.owner;
  if (kernel_writes) who = h.owner.closes(closer_tgid) ? static_cast<std::uint64_t>(closer_tgid) : 0;
  bool wrote = false;
  for (auto w : h.writers) wrote = wrote || w == who;
  return wrote;
}

// A FLUSH of a description whose only change is its O_TRUNC: registered in
// Conn::pending_truncations until RELEASE publishes it (see
// Version::pending_truncate).
void announce_truncation(Conn& c, Version& h) noexcept {
  if (h.truncate_announced) return;
  try {
    c.pending_truncations.add({h.base.dev, h.base.ino});
    h.truncate_announced = true;
  } catch (const std::bad_alloc&) {
    // Without the entry a LOOKUP does not wait for the RELEASE; harmless.
  }
}

// ISOLATION: the kernel keeps writing a passthrough snapshot after this
// commit (the backing file of the open cannot change), so what is
// published is a clone of it (O(1) with reflinks), never the snapshot
// itself. The snapshot's dirty pages are written back first: that makes
// a later store through a shared mapping fault again and move the ctime
// that tells us about it (SnapState). `snap_st`: the snapshot's fstat
// when this close looked at it.
Result<core::TmpFile> freeze(Conn& c, Version& h, const struct stat& snap_st) noexcept {
  Daemon& d = c.d;
  if (d.cfg.durability == core::Durability::fast) SNAPFS_TRY(sys::writeback(h.snap.fd()));
  auto tmp = make_private(c, *h.node, true);
  if (!tmp) return std::move(tmp).error();
  auto m = core::clone_contents(tmp->fd(), h.snap.fd());
  if (!m) return std::move(m).error();
  // The published file carries the snapshot's times: its last write, or
  // what futimens set (cp -p), not the time of this clone. (As of `now`:
  // a write since then moved the ctime too, and publishes again later.)
  const struct timespec times[2] = {snap_st.st_atim, snap_st.st_mtim};
  SNAPFS_TRY(sys::futimens(tmp->fd(), times));
  return std::move(*tmp);
}

// Records a commit (or a conflict) of `node`, `size` bytes, made by the
// thread or process `pid` of `uid`, in the change feed (events.hpp).
void note_commit(Conn& c, EventKind kind, const Node& node, pid_t pid, uid_t uid,
                 std::int64_t size) noexcept {
  Daemon& d = c.d;
  Event e = event_by(pid, uid);
  e.kind = kind;
  e.size = size;
  try {
    auto at = c.table.locate(node, nullptr);
    e.path = std::move(at.path);
    e.dir = dir_of(at.dir_dev, at.dir_ino, at.dir_fd ? at.dir_fd->get() : -1);
  } catch (const std::bad_alloc&) {
    return d.events.skip();
  }
  d.events.record(std::move(e));
}

// What publish_locked() did.
struct Published {
  CommitOutcome out = CommitOutcome::nothing;
  struct stat st {};  // the inode that holds the content at B/p now
  std::string path;   // for the log, unless simply published
};

// Compares B/p with the base and publishes `mine` (or the rebased file)
// under the path's commit stripe and the namespace lock (design-fuse.md
// "Locks"); a conflict publishes nothing.
Result<Published> publish_locked(Conn& c, Version& h, core::TmpFile& mine,
                                 bool kernel_writes) noexcept {
  Daemon& d = c.d;
  Published res;
  auto lp = lock_place(c, *h.node);
  if (!lp) return std::move(lp).error();
  PublishFacts f;
  f.unlinked = lp->place.unlinked || !lp->place.parent;
  const int pfd = f.unlinked ? -1 : lp->pfd->get();
  const char* name = lp->place.name.c_str();
  if (!f.unlinked) {
    // The check and the rename below happen under the path's stripe: two
    // commits through M to one path are serialised and each sees the
    // other's result. A change made directly in B between this fstatat and
    // the rename is not seen (no compare-and-rename exists): documented.
    auto cur = sys::fstatat(pfd, name, AT_SYMLINK_NOFOLLOW);
    if (!cur && cur.error().value() != ENOENT) return std::move(cur).error();
    if (cur) f.current = *cur;
  }
  f.base = h.base;
  f.kernel_writes = kernel_writes;
  f.append_only = h.append_only;
  f.on_conflict = d.cfg.on_conflict;
  const CommitStep step = decide_publish(
      f, [&] { return only_appended(h); }, [&] { return may_replace(d, h, pfd, name); });
  if (step == CommitStep::nothing) return res;  // unlinked: commits nothing
  const auto& cur = f.current;
  core::TmpFile merged;
  core::CloneMethod merged_method = h.method;
  if (step == CommitStep::publish) {
    res.out = CommitOutcome::published;
  } else if (step == CommitStep::rebase) {
    auto r = rebase(c, h, pfd, name, merged_method);
    if (r) {
      merged = std::move(*r);
      res.out = CommitOutcome::rebased;
    } else if (r.error().value() == EACCES) {
      res.out = CommitOutcome::conflict;  // not the writer's to extend: kept aside
    } else {
      return std::move(r).error();
    }
  } else if (step == CommitStep::overwrite) {
    res.out = CommitOutcome::overwrote;
  } else {
    res.out = CommitOutcome::conflict;
  }
  if (res.out != CommitOutcome::conflict && d.cfg.test_fault &&
      d.cfg.test_fault("commit.stale", name))
    return Error::of(ESTALE, "publish", name);  // as a network file system's stale handle
  if (res.out != CommitOutcome::conflict) {
    core::TmpFile& file = res.out == CommitOutcome::rebased ? merged : mine;
    // docs/semantics.md#hard-links: a file with several names keeps sharing content, so it is
    // published into its own inode where that is one atomic step.
    auto in_place = cur && S_ISREG(cur->st_mode) && cur->st_nlink > 1
                        ? publish_into(d, file, pfd, name, *cur, h.who)
                        : Result<bool>(false);
    if (!in_place) return std::move(in_place).error();
    if (!*in_place) {
      const FdRef old = h.node->fd();
      auto old_st = sys::fstat(old->get());
      const mode_t mode = old_st ? old_st->st_mode : 0644;
      // ATOMICITY: core::publish links the file under a temporary name in
      // B/.snapfs/staging and renames it over B/p: readers see old or new.
      SNAPFS_TRY(core::publish(file, pfd, name, publish_options(d, mode, h.who)));
      file.mark_named();
    }
    // The inode that now holds the content at B/p (unless in place).
    const int published_fd = file.fd();
    if (res.out == CommitOutcome::rebased && !kernel_writes) {
      // The description now sees the merged file: its next append extends it.
      h.snap = std::move(merged);
      h.method = merged_method;
    }
    if (*in_place) {
      // B/p is still the inode the node holds; the snapshot stays private.
      const FdRef cur_fd = h.node->fd();
      auto st = sys::fstat(cur_fd->get());
      if (!st) return std::move(st).error();
      res.st = *st;
    } else {
      auto st = sys::fstat(published_fd);
      if (!st) return std::move(st).error();
      res.st = *st;
      // The node now stands for the inode it published, so stat, chmod and
      // xattrs through this open reach the new B/p.
      auto pathfd = sys::reopen(published_fd, O_PATH);
      if (!pathfd) return std::move(pathfd).error();
      try {
        c.table.rebind(*h.node, std::make_shared<const core::UniqueFd>(std::move(*pathfd)),
                       res.st);
      } catch (const std::bad_alloc&) {
        return Error::of(ENOMEM, "commit");
      }
    }
  }
  try {
    if (res.out != CommitOutcome::published) res.path = c.table.path_of(*h.node);
  } catch (const std::bad_alloc&) {
  }
  return res;
}

// First committer wins: this content is kept whole in conflicts/ and
// close() fails with ESTALE. The description is clean afterwards (a
// further FLUSH publishes nothing); new writes start a new attempt
// against the same old base.
Result<CommitOutcome> keep_after_conflict(Conn& c, Version& h, const CommitCaller& by,
                                          core::TmpFile& mine, const std::string& path) noexcept {
  Daemon& d = c.d;
  auto kept = keep_conflict(d, mine, ConflictWho{path, by.pid, by.uid});
  if (!kept) return std::move(kept).error();
  {
    auto st = sys::fstat(mine.fd());
    note_commit(c, EventKind::conflict, *h.node, by.pid != 0 ? by.pid : h.owner.tgid,
                by.pid != 0 ? by.uid : h.who.uid, st ? st->st_size : -1);
  }
  d.log->info("conflict: {} changed since it was opened (pid {}); kept at {}", path, by.pid,
              *kept);
  h.dirty = false;
  h.writers.clear();
  h.dirtied_by_anyone = false;
  h.published = !h.snap.anonymous();  // named in conflicts/: re-clone before writing
  return CommitOutcome::conflict;
}

// After a publish: caches, stats, and the description starts a new attempt
// from what it published. `frozen`: the clone a passthrough writer published.
Result<CommitOutcome> settle_after_publish(Conn& c, Version& h, const Published& p,
                                           bool kernel_writes,
                                           const core::TmpFile& frozen) noexcept {
  Daemon& d = c.d;
  const CommitOutcome out = p.out;
  const struct stat& published = p.st;
  after_commit(c, *h.node, published);  // before FLUSH replies (cache.hpp)
  if (out == CommitOutcome::overwrote)
    d.log->info("commit of {} overwrote a version published since it was opened", p.path);
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
    auto fd = sys::reopen(frozen.fd(), O_RDONLY);
    if (!fd) return std::move(fd).error();
    h.base_file = std::move(*fd);
  }
  if (kernel_writes && out == CommitOutcome::rebased) {
    // The snapshot could not become the merged file (the kernel holds it),
    // so this description does not see what it was rebased onto. Its next
    // commit must rebase again from where its tail now starts: a base that
    // matches no file forces that (or a conflict, if it stops appending).
    auto st = sys::fstat(frozen.fd());
    if (!st) return std::move(st).error();
    h.base = Base{};
    h.base.size = st->st_size;
  }
  // A description that stays open (dup, fork) needs a private snapshot again.
  // With reflinks that is O(1): do it now. Otherwise it would copy the whole
  // file at every close; defer it to the next change (design doc).
  if (h.published && h.method == core::CloneMethod::reflink) {
    if (auto r = ensure_private(c, h); !r)
      d.log->debug("commit: re-clone deferred: {}", r.error().message());
  }
  return out;
}

}  // namespace

Result<CommitOutcome> commit(Conn& c, Version& h, const CommitCaller& by) noexcept {
  Daemon& d = c.d;
  std::unique_lock lk(h.mu);
  if (h.kind != HandleKind::snapshot) return CommitOutcome::nothing;
  // Kernel passthrough: writes (and stores through a shared mapping) never
  // reach the daemon; a snapshot whose size or ctime moved since we last
  // looked was changed, by its opener as far as we can tell.
  const bool kernel_writes = h.kernel_writes();
  // The closing process: its thread group, asked once and only if a rule
  // needs it (a pidfd_open, or a read of /proc for a thread).
  pid_t closer = -1;
  const auto closer_tgid = [&] {
    if (closer < 0) {
      auto t = by.pid == h.owner.tgid ? Result<pid_t>(by.pid) : sys::tgid_of(by.pid);
      closer = t ? *t : 0;
    }
    return closer;
  };
  // A close by the owner of one of its descriptions: marked, so that the
  // others' closes know it is closed.
  bool others_open = false;
  if (by.desc && h.owner.tgid != 0 && by.pid != 0) {
    if (!by.desc->closed_by_owner && h.owner.closes(closer_tgid())) {
      by.desc->closed_by_owner = true;
      --h.unclosed;
    }
    others_open = h.unclosed > (by.desc->closed_by_owner ? 0u : 1u);
  }
  bool late = false;  // changed since the last close that looked at it
  SnapState now;
  struct stat snap_st {};
  if (kernel_writes) {
    auto st = sys::fstat(h.snap.fd());
    if (!st) return std::move(st).error();
    snap_st = *st;
    now = SnapState::of(*st);
    if (!h.seen.same(now) || by.mapped_stores) {
      h.mark_dirty(static_cast<std::uint64_t>(h.owner.tgid));
      late = true;
    }
  }
  const CloseFacts f{.dirty = h.dirty,
                     .late = late,
                     .kernel_writes = kernel_writes,
                     .release = by.release,
                     .pending_truncate = h.pending_truncate,
                     .append_only = h.append_only,
                     .append = h.all_append,
                     .dirtied_by_anyone = h.dirtied_by_anyone,
                     .others_open = others_open};
  switch (decide_close(f, [&] { return closer_wrote(h, by, kernel_writes, closer_tgid()); })) {
    case CommitStep::publish:
      break;
    case CommitStep::defer_truncation:
      announce_truncation(c, h);
      return CommitOutcome::nothing;
    default:
      return CommitOutcome::nothing;
  }
  // This close decides about everything written so far; RELEASE only
  // publishes what changes after it.
  if (kernel_writes) h.seen = now;

  if (c.table.place(*h.node).unlinked) return CommitOutcome::nothing;  // commits nothing

  // DURABILITY: the data sync (the slow part) happens before the locks;
  // publish's own fdatasync then finds nothing left to write.
  if (d.cfg.durability != core::Durability::fast) SNAPFS_TRY(sys::fdatasync(h.snap.fd()));

  core::TmpFile frozen;
  if (kernel_writes) {
    auto fz = freeze(c, h, snap_st);
    if (!fz) return std::move(fz).error();
    frozen = std::move(*fz);
  }
  core::TmpFile& mine = kernel_writes ? frozen : h.snap;

  auto p = publish_locked(c, h, mine, kernel_writes);
  if (!p) return std::move(p).error();
  if (p->out == CommitOutcome::nothing) return CommitOutcome::nothing;
  if (p->out == CommitOutcome::conflict) return keep_after_conflict(c, h, by, mine, p->path);
  // The closing process publishes; a RELEASE (no process) for the opener.
  note_commit(c, EventKind::commit, *h.node, by.pid != 0 ? closer_tgid() : h.owner.tgid,
              by.pid != 0 ? by.uid : h.who.uid, static_cast<std::int64_t>(p->st.st_size));
  return settle_after_publish(c, h, *p, kernel_writes, frozen);
}

// Stores through a shared mapping move the ctime where the filesystem has
// page_mkwrite (XFS, btrfs, ext4) once the page was written back, which the
// commit at close does. tmpfs has none: there, a snapshot whose ctime did
// not move is compared with B/p, if B/p is still what this description
// published last.
bool mapped_stores_unseen(Conn& c, Version& h) {
  std::shared_lock lk(h.mu);
  auto st = sys::fstat(h.snap.fd());
  if (!st || !h.seen.same(SnapState::of(*st))) return false;  // commit() will see it
  const NodePlace place = c.table.place(*h.node);
  if (!place.parent || place.unlinked) return false;
  const FdRef pfd = place.parent->fd();
  auto cur = sys::openat_beneath(pfd->get(), place.name.c_str(),
                                       O_RDONLY | O_NOFOLLOW | O_NONBLOCK, 0);
  if (!cur) return false;
  auto cst = sys::fstat(cur->get());
  if (!cst || !h.base.same(*cst)) return false;  // published by someone else since
  if (cst->st_size != st->st_size) return true;
  auto same = same_bytes(h.snap.fd(), cur->get(), static_cast<std::uint64_t>(st->st_size));
  return !same || !*same;  // cannot compare: publish (identical content at worst)
}

void touch_bases(Conn& c, const struct stat& st) noexcept {
  std::vector<std::shared_ptr<Version>> hs;
  try {
    hs = c.table.opens_of_inode(st.st_dev, st.st_ino);
  } catch (const std::bad_alloc&) {
    return;
  }
  for (const auto& h : hs) {
    std::unique_lock lk(h->mu);
    if (h->base.dev == st.st_dev && h->base.ino == st.st_ino && h->base.size == st.st_size)
      h->base.mtime = st.st_mtim;
  }
}

Result<void> truncate_published(Conn& c, const std::shared_ptr<Node>& node,
                                std::uint64_t size, const Identity& who) noexcept {
  Daemon& d = c.d;
  const FdRef fdref = node->fd();
  if (node->kind() == NodeKind::shared_file) {
    auto fd = sys::reopen(fdref->get(), O_WRONLY);
    if (!fd) return std::move(fd).error();
    return sys::ftruncate(fd->get(), size);
  }
  auto src = sys::reopen(fdref->get(), O_RDONLY);
  if (!src) return std::move(src).error();
  auto st = sys::fstat(src->get());
  if (!st) return std::move(st).error();
  auto tmp = make_private(c, *node, true);
  if (!tmp) return std::move(tmp).error();
  // Size 0 (the usual `truncate -s 0`, `: > file` goes through O_TRUNC) is
  // O(1) everywhere; otherwise a clone, O(1) with reflinks.
  if (size > 0 && st->st_size > 0) {
    auto m = core::clone_contents(tmp->fd(), src->get());
    if (!m) return std::move(m).error();
  }
  SNAPFS_TRY(sys::ftruncate(tmp->fd(), size));
  // Under the path's commit stripe like a commit: descriptors open on the
  // old version see this as someone else's publish (docs/semantics.md#conflicts).
  auto lp = lock_place(c, *node);
  if (!lp) return std::move(lp).error();
  const NodePlace& place = lp->place;
  if (place.unlinked || !place.parent) return Error::of(ENOENT, "truncate", place.name);
  const FdRef pfd = lp->pfd;
  SNAPFS_TRY(core::publish(*tmp, pfd->get(), place.name.c_str(),
                           publish_options(d, st->st_mode, who)));
  tmp->mark_named();
  auto pst = sys::fstat(tmp->fd());
  if (!pst) return std::move(pst).error();
  auto path = sys::reopen(tmp->fd(), O_PATH);
  if (!path) return std::move(path).error();
  try {
    c.table.rebind(*node, std::make_shared<const core::UniqueFd>(std::move(*path)), *pst);
  } catch (const std::bad_alloc&) {
    return Error::of(ENOMEM, "truncate");
  }
  d.stats.commits.fetch_add(1, std::memory_order_relaxed);
  d.stats.bytes_published.fetch_add(size, std::memory_order_relaxed);
  note_commit(c, EventKind::commit, *node, who.tid, who.uid, static_cast<std::int64_t>(size));
  return {};
}

}  // namespace snapfs::fuse
