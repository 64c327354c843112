// Snapshots, commits and the atomic truncate(path). The protocol inside
// core::publish is docs/commit-protocol.md; this file decides *when* and *where*.
#include "handle.hpp"

#include "sys/sys.hpp"
#include "sys_extra.hpp"

#include <snapfs/core/publish.hpp>

#include <fcntl.h>

#include <mutex>
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

core::PublishOptions publish_options(const Daemon& d, mode_t mode) noexcept {
  core::PublishOptions o;
  o.durability = d.cfg.durability;
  o.no_replace = false;
  o.create_mode = mode & 07777;
  return o;
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
    if (!fresh_empty && st->st_size > 0) h->mark_dirty(0);
    auto tmp = make_private(d, *node, h->writable || h->dirty);
    if (!tmp) return std::move(tmp).error();
    h->snap = std::move(*tmp);
    return h;
  }
  auto src = reopen(fdref->get(), O_RDONLY);
  if (!src) return std::move(src).error();
  auto st = csys::fstat(src->get());
  if (!st) return std::move(st).error();
  h->base_mtime = st->st_mtim;
  auto tmp = make_private(d, *node, h->writable);
  if (!tmp) return std::move(tmp).error();
  // ISOLATION: the private clone of the file as of this open (FICLONE is one
  // instant; the copy fallback is documented in core/src/clone.cpp).
  auto m = core::clone_contents(tmp->fd(), src->get());
  if (!m) return std::move(m).error();
  h->method = *m;
  h->snap = std::move(*tmp);
  return h;
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
                                             Handle& cur) noexcept {
  std::unique_ptr<Handle> h;
  try {
    h = std::make_unique<Handle>();
  } catch (const std::bad_alloc&) {
    return Error::of(ENOMEM, "open");
  }
  std::shared_lock lk(cur.mu);
  if (!cur.read_only_clean()) return Error::of(ESTALE, "open");
  // ISOLATION: cur is read-only and clean, so its snapshot (or, for an
  // exclusive reader, the published inode) never changes: sharing it is the
  // same as cloning it again.
  auto fd = reopen(cur.fd(), O_RDONLY);
  if (!fd) return std::move(fd).error();
  h->node = node;
  h->kind = HandleKind::reader_share;
  h->direct = std::move(*fd);
  h->base_mtime = cur.base_mtime;
  return h;
}

Result<void> commit(Daemon& d, Handle& h, std::uint64_t owner) noexcept {
  std::unique_lock lk(h.mu);
  if (h.kind != HandleKind::snapshot || !h.dirty) return {};  // nothing to publish
  if (!h.dirtied_by_anyone) {
    bool wrote = false;
    for (auto w : h.writers) wrote = wrote || w == owner;
    if (!wrote) return {};  // a close by a process that never wrote through it
  }
  if (d.table.place(*h.node).unlinked) return {};  // unlinked while open: commits nothing

  // DURABILITY: the data sync (the slow part) happens before the namespace
  // lock; publish's own fdatasync then finds nothing left to write.
  if (d.cfg.durability != core::Durability::fast) SNAPFS_TRY(csys::fdatasync(h.snap.fd()));

  struct stat published {};
  {
    std::shared_lock ns(d.ns_mu);
    const NodePlace place = d.table.place(*h.node);
    if (place.unlinked || !place.parent) return {};
    const FdRef pfd = place.parent->fd();
    const FdRef old = h.node->fd();
    auto old_st = csys::fstat(old->get());
    const mode_t mode = old_st ? old_st->st_mode : 0644;
    // ATOMICITY: core::publish links the snapshot under a temporary name in
    // the same directory and renames it over B/p: readers see old or new.
    SNAPFS_TRY(core::publish(h.snap, pfd->get(), place.name.c_str(), publish_options(d, mode)));
    h.snap.mark_named();
    auto st = csys::fstat(h.snap.fd());
    if (!st) return std::move(st).error();
    published = *st;
    // The node now stands for the inode it published, so stat, chmod and
    // xattrs through this open reach the new B/p.
    auto path = reopen(h.snap.fd(), O_PATH);
    if (!path) return std::move(path).error();
    try {
      d.table.rebind(*h.node, std::make_shared<const core::UniqueFd>(std::move(*path)), published);
    } catch (const std::bad_alloc&) {
      return Error::of(ENOMEM, "commit");
    }
  }
  d.stats.commits.fetch_add(1, std::memory_order_relaxed);
  d.stats.bytes_published.fetch_add(static_cast<std::uint64_t>(published.st_size),
                                    std::memory_order_relaxed);
  h.dirty = false;
  h.writers.clear();
  h.dirtied_by_anyone = false;
  h.published = true;
  h.base_mtime = published.st_mtim;
  // A description that stays open (dup, fork) needs a private snapshot again.
  // With reflinks that is O(1): do it now. Otherwise it would copy the whole
  // file at every close; defer it to the next change (design doc).
  if (h.method == core::CloneMethod::reflink) {
    if (auto r = ensure_private(d, h); !r)
      d.log->debug("commit: re-clone deferred: {}", r.error().message());
  }
  return {};
}

Result<struct stat> handle_attr(const Handle& h) noexcept {
  const FdRef fdref = h.node->fd();
  auto st = csys::fstat(fdref->get());
  if (!st) return st;
  if (h.kind == HandleKind::shared) return st;
  auto s = csys::fstat(h.fd());
  if (!s) return s;
  st->st_size = s->st_size;
  st->st_blocks = s->st_blocks;
  st->st_mtim = (h.kind == HandleKind::snapshot && h.dirty) ? s->st_mtim : h.base_mtime;
  return st;
}

Result<void> truncate_published(Daemon& d, const std::shared_ptr<Node>& node,
                                std::uint64_t size) noexcept {
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
  std::shared_lock ns(d.ns_mu);
  const NodePlace place = d.table.place(*node);
  if (place.unlinked || !place.parent) return Error::of(ENOENT, "truncate", place.name);
  const FdRef pfd = place.parent->fd();
  SNAPFS_TRY(core::publish(*tmp, pfd->get(), place.name.c_str(),
                           publish_options(d, st->st_mode)));
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
