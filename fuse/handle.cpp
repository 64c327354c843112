// Snapshots: the open side of a Version (open_handle, warm readers,
// share_reader, the re-clone before a change, fstat). The commit side, which
// publishes them, is commit.cpp.
#include "handle.hpp"

#include "sys/sys.hpp"

#include <fcntl.h>

#include <memory>
#include <mutex>
#include <new>
#include <shared_mutex>

namespace snapfs::fuse {

using core::Error;
using core::Result;
namespace sys = core::sys;

// A private file on the filesystem of the node's directory, so that publish
// can link it there (new_private_file()). Read-only opens fall back to
// memory where the directory refuses one (read-only B, no write permission);
// with -o cache_dir they go there (nothing of theirs is published).
Result<core::TmpFile> make_private(Conn& c, const Node& node, bool for_write) noexcept {
  if (!for_write && c.d.cache_dir.valid()) return core::TmpFile::create_in(c.d.cache_dir.get());
  const NodePlace place = c.table.place(node);
  if (place.parent) {
    const FdRef pfd = place.parent->fd();
    auto tmp = new_private_file(c.d, pfd->get());
    if (tmp || for_write) return tmp;
  } else if (for_write && !place.unlinked) {
    return Error::of(EIO, "snapshot", place.name);
  }
  // An unlinked node never commits, so memory will do for writers too.
  return core::TmpFile::create_in_memory();
}

namespace {

// A read-only open of version `st` of B/p (`pathfd`: its O_PATH handle):
// shares the warm snapshot of that version, or makes it (warm.hpp).
Result<std::unique_ptr<Version>> open_warm_reader(Conn& c, std::unique_ptr<Version> h,
                                                 int pathfd, const struct stat& st) noexcept {
  Daemon& d = c.d;
  // The cache is the main connection's: a snapshot's backing id belongs to
  // the /dev/fuse descriptor that registered it, and a run's connection
  // ends before the daemon does (run.hpp). A run's reader shares its
  // snapshot within the run's opens of its node only.
  const bool cached = c.run_id == 0;
  std::shared_ptr<WarmSnapshot> w;
  try {
    if (cached) w = d.warm.find(st);
    if (!w) {
      auto src = sys::reopen(pathfd, O_RDONLY);
      if (!src) return std::move(src).error();
      auto tmp = make_private(c, *h->node, false);
      if (!tmp) return std::move(tmp).error();
      // ISOLATION: one instant of B/p, into a file nobody writes (below).
      auto m = core::clone_contents(tmp->fd(), src->get());
      if (!m) return std::move(m).error();
      auto snap_st = sys::fstat(tmp->fd());
      if (!snap_st) return std::move(snap_st).error();
      w = std::make_shared<WarmSnapshot>();
      w->size = snap_st->st_size;
      w->blocks = snap_st->st_blocks;
      // Registered now, the kernel keeps the snapshot once an OPEN reply
      // hands it over; the daemon then lets its descriptor go
      // (WarmSnapshot::confirm). Without passthrough it keeps it to serve
      // the reads. A file that may have holes keeps its descriptor too:
      // SEEK_DATA and SEEK_HOLE must find them (cp and tar keep sparse
      // files sparse).
      // A named private file (a B without O_TMPFILE: FUSE, GlusterFS)
      // keeps its descriptor, and so its name, too: the kernel opens a
      // backing file anew for each passthrough open, and such a filesystem
      // opens no file that has lost its last name (GlusterFS: EIO).
      w->backing = c.kpt.open_backing(tmp->fd());
      const bool sparse = snap_st->st_blocks * 512 < snap_st->st_size;
      w->keeps_file = !w->backing || sparse || tmp->staged();
      w->file = std::move(*tmp);
      // Shared only if B/p did not change since `st` was taken (before the
      // clone): the snapshot then is exactly version `st`. Otherwise this
      // reader keeps it alone, as a snapshot of a version at least as new.
      auto after = sys::fstat(src->get());
      if (after && WarmSnapshots::same_version(*after, st)) {
        w->exact = true;
        w->version = st;
        if (cached) d.warm.insert(st, w);
      }
    }
  } catch (const std::bad_alloc&) {
    return Error::of(ENOMEM, "open");
  }
  // ISOLATION: read-only, and nobody ever writes `w` after its clone. The
  // handle reads through the snapshot's own descriptor (Version::fd()): no
  // descriptor per open (reads are preads; the offset is never used).
  h->kind = HandleKind::reader_share;
  h->warm = std::move(w);
  return h;
}

}  // namespace

Result<void> charge_to_writer(const Daemon& d, Version& h) noexcept {
  if (h.kind != HandleKind::snapshot || !h.writable || !h.snap.valid()) return {};
  if (!acts_for_others(d, h.who)) return {};
  // The snapshot is unnamed and reachable only through the daemon's
  // descriptor: giving it to the writer gives them nothing they can open.
  return sys::fchown(h.snap.fd(), h.who.uid, h.who.gid);
}

Result<std::unique_ptr<Version>> open_handle(Conn& c, const std::shared_ptr<Node>& node,
                                            int flags, bool fresh_empty) noexcept {
  Daemon& d = c.d;
  std::unique_ptr<Version> h;
  try {
    h = std::make_unique<Version>();
  } catch (const std::bad_alloc&) {
    return Error::of(ENOMEM, "open");
  }
  const int acc = flags & O_ACCMODE;
  h->node = node;
  h->writable = acc != O_RDONLY;
  h->append = (flags & O_APPEND) != 0;
  const FdRef fdref = node->fd();

  if (node->kind() == NodeKind::shared_file) {
    // -o shared=GLOB: ordinary shared semantics on B/p itself. O_TRUNC
    // and O_APPEND act in B as they would without snapfs.
    h->kind = HandleKind::shared;
    auto fd = sys::reopen(fdref->get(), flags & (O_ACCMODE | O_APPEND | O_TRUNC));
    if (!fd) return std::move(fd).error();
    h->direct = std::move(*fd);
    return h;
  }

  if (d.cfg.exclusive && acc == O_RDONLY && !(flags & O_TRUNC) && !fresh_empty) {
    // -o exclusive: B/p changes only by whole-file replacement, so the inode
    // this reader holds never changes: no clone needed.
    h->kind = HandleKind::exclusive_reader;
    auto fd = sys::reopen(fdref->get(), O_RDONLY);
    if (!fd) return std::move(fd).error();
    auto st = sys::fstat(fd->get());
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
    // changed in B until the commit at close (docs/design-fuse.md, "Kernel facts" 4).
    auto st = sys::fstat(fdref->get());
    if (!st) return std::move(st).error();
    h->base_mtime = st->st_mtim;
    h->base.set(*st);
    if (!fresh_empty && st->st_size > 0) {
      h->mark_dirty(0);
      h->pending_truncate = true;  // published at RELEASE unless written first
      h->append_only = false;      // it dropped the old content
    }
    auto tmp = make_private(c, *node, h->writable || h->dirty);
    if (!tmp) return std::move(tmp).error();
    h->snap = std::move(*tmp);
    return h;
  }
  if (!h->writable && d.warm.enabled()) {
    // A reader of a version that has a warm snapshot opens nothing: the
    // version is read off the held O_PATH descriptor (fstat works on it).
    auto st = sys::fstat(fdref->get());
    if (!st) return std::move(st).error();
    if (!S_ISREG(st->st_mode)) return Error::of(EINVAL, "open");
    h->base_mtime = st->st_mtim;
    h->base.set(*st);
    return open_warm_reader(c, std::move(h), fdref->get(), *st);
  }
  auto src = sys::reopen(fdref->get(), O_RDONLY);
  if (!src) return std::move(src).error();
  // The base is taken before the clone: a change in place between the two
  // then shows as a conflict (safe), never the other way round.
  auto st = sys::fstat(src->get());
  if (!st) return std::move(st).error();
  h->base_mtime = st->st_mtim;
  h->base.set(*st);
  auto tmp = make_private(c, *node, h->writable);
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

Result<void> prepare_change(Conn& c, Version& h) noexcept {
  if (h.kind == HandleKind::exclusive_reader || h.kind == HandleKind::reader_share)
    return Error::of(EBADF, "write");
  return ensure_private(c, h);
}

Result<void> ensure_private(Conn& c, Version& h) noexcept {
  if (h.kind != HandleKind::snapshot || !h.published) return {};
  // ISOLATION: after a commit `snap` *is* B/p; writing through it would change
  // the published file in place. Clone it into a new private file first.
  auto tmp = make_private(c, *h.node, true);
  if (!tmp) return std::move(tmp).error();
  auto m = core::clone_contents(tmp->fd(), h.snap.fd());
  if (!m) return std::move(m).error();
  h.snap = std::move(*tmp);
  h.method = *m;
  h.published = false;
  return {};
}

Result<std::unique_ptr<Version>> share_reader(const std::shared_ptr<Node>& node,
                                             Version& cur, bool view_of_writer) noexcept {
  std::unique_ptr<Version> h;
  try {
    h = std::make_unique<Version>();
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
  auto fd = sys::reopen(cur.fd(), O_RDONLY);
  if (!fd) return std::move(fd).error();
  h->direct = std::move(*fd);
  return h;
}

Result<struct stat> handle_attr(const Version& h) noexcept {
  const FdRef fdref = h.node->fd();
  // Unbound: the node's last open went away meanwhile (a GETATTR racing
  // with RELEASE); the kernel walks again.
  if (!fdref) return Error::of(ESTALE, "getattr");
  auto st = sys::fstat(fdref->get());
  if (!st) return st;
  if (h.kind == HandleKind::shared) return st;
  if (h.warm && h.fd() < 0) {
    // A warm snapshot the kernel holds alone (WarmSnapshot): never changes.
    st->st_size = h.warm->size;
    st->st_blocks = h.warm->blocks;
    st->st_mtim = h.base_mtime;
    return st;
  }
  auto s = sys::fstat(h.fd());
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

}  // namespace snapfs::fuse
