// Kernel cache coherence (cache.hpp, docs/design-fuse.md "Caching").
// Symlink-safe: names are resolved one component beneath the parent's held
// directory descriptor, with O_NOFOLLOW / AT_SYMLINK_NOFOLLOW.
#include "cache.hpp"

#include "handle.hpp"
#include "sys/sys.hpp"

#include <fcntl.h>

#include <algorithm>
#include <new>
#include <shared_mutex>
#include <vector>

namespace snapfs::fuse {

namespace sys = core::sys;

using core::Error;
using core::Result;

namespace {

bool caching(const Daemon& d) noexcept { return d.cfg.cache_timeout > 0; }

// A name that no longer leads to a regular file: the kernel's dentry is
// stale, and ESTALE makes it walk again (path syscalls retry once with
// LOOKUP_REVAL) instead of failing with what the old name held.
Error stale(const char* op, const std::string& name) { return Error::of(ESTALE, op, name); }

bool gone(int err) noexcept { return err == ENOENT || err == ENOTDIR || err == ELOOP; }

// Drops the kernel's cached attributes of `ids` (but `except`) after a
// change noted with InodeTable::note_change(). `epoch`: bump the dentry
// epoch anyway. It is bumped too if the kernel holds no inode for a node
// the daemon counted a lookup for: a LOOKUP reply that the kernel has not
// turned into an inode yet, whose attributes may predate this change
// (InodeTable::set_cold_cacheable()); its dentry is then looked up again at
// its next use, and that reply's attributes replace these.
void inval_all(Conn& c, std::vector<fuse_ino_t>& ids, fuse_ino_t except, bool epoch) noexcept {
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  for (auto id : ids)
    if (id != except && c.notifier.inval_inode(id) && !epoch) epoch = c.table.known_to_kernel(id);
  if (epoch) c.notifier.inc_epoch();
}

}  // namespace

Result<FdRef> node_fd(Conn& c, const Node& node, const char* pause) noexcept {
  Daemon& d = c.d;
  if (FdRef fd = node.fd()) return fd;
  try {
    const NodePlace p = c.table.place(node);
    if (!p.parent) return stale("resolve", p.name);
    const FdRef pfd = p.parent->fd();
    // SAFETY: one component, O_NOFOLLOW, RESOLVE_BENEATH (ops/common.cpp).
    auto fd = sys::openat_beneath(pfd->get(), p.name.c_str(), O_PATH | O_NOFOLLOW, 0);
    if (!fd) return gone(fd.error().value()) ? stale("resolve", p.name) : std::move(fd).error();
    auto st = sys::fstat(fd->get());
    if (!st) return std::move(st).error();
    if (!S_ISREG(st->st_mode)) return stale("resolve", p.name);
    if (pause && d.cfg.test_pause) d.cfg.test_pause(pause, p.name.c_str());
    c.table.observe(node, *st);
    return FdRef(std::make_shared<const core::UniqueFd>(std::move(*fd)));
  } catch (const std::bad_alloc&) {
    return Error::of(ENOMEM, "resolve");
  }
}

Result<struct stat> name_stat(Conn& c, const Node& node) noexcept {
  try {
    const NodePlace p = c.table.place(node);
    if (!p.parent) return stale("stat", p.name);
    const FdRef pfd = p.parent->fd();
    // One final component (never '/', '.' or '..': valid_name()) and no
    // symlink followed: cannot leave the parent.
    auto st = sys::fstatat(pfd->get(), p.name.c_str(), AT_SYMLINK_NOFOLLOW);
    if (!st) return gone(st.error().value()) ? stale("stat", p.name) : std::move(st).error();
    if (!S_ISREG(st->st_mode)) return stale("stat", p.name);
    return st;
  } catch (const std::bad_alloc&) {
    return Error::of(ENOMEM, "stat");
  }
}

Result<struct stat> node_stat(Conn& c, const Node& node) noexcept {
  if (FdRef fd = node.fd()) return sys::fstat(fd->get());
  auto st = name_stat(c, node);
  if (st) c.table.observe(node, *st);
  return st;
}

NodeClaim::~NodeClaim() {
  if (!c_) return;
  if (open_)
    c_->table.end_open(*node_);
  else
    c_->table.release(*node_);
}

Result<NodeClaim> before_open(Conn& c, const std::shared_ptr<Node>& node, bool shared_reader,
                              pid_t caller) noexcept {
  if (node->kind() != NodeKind::file) return NodeClaim{};
  auto fd = node_fd(c, *node);
  if (!fd) return std::move(fd).error();
  OpenStart s;
  try {
    s = c.table.begin_open(*node, std::move(*fd), shared_reader, caller);
  } catch (const std::bad_alloc&) {
    return Error::of(ENOMEM, "open");
  }
  // A node the kernel may cache a dentry for: walk again (InodeTable::begin_open).
  if (s.retire) return Error::of(ESTALE, "open");
  NodeClaim claim(c, node, true);
  // Attributes cached from its idle time (a GETATTR or LOOKUP reply with a
  // positive timeout): dropped now, synchronously (no lock in the kernel);
  // from now on every reply about this node has timeout 0
  // (InodeTable::attr_timeout), and one sent before this point is discarded
  // by the kernel's attr_version check.
  if (s.was_idle && s.attr_cached && caching(c.d)) c.notifier.inval_inode(node->id());
  return claim;
}

Result<struct stat> shared_reader_attr(Conn& c, Node& node, double& timeout) noexcept {
  timeout = 0;
  const PinState pin = c.table.pin_of(node);
  auto now = name_stat(c, node);
  if (now && pin.exact && WarmSnapshots::same_version(*now, pin.version)) {
    // B/p still is the readers' version: one answer for everyone.
    timeout = c.table.shared_attr_timeout(node, *now);
    return now;
  }
  // B/p changed: only the readers reach this node now (a change through M
  // bumped the kernel's dentry epoch, after_commit), or someone through a
  // dentry that expires within cache_timeout (a change made directly in B).
  if (const auto h = c.table.open_of(node)) {
    std::shared_lock lk(h->mu);
    if (auto mine = handle_attr(*h)) return mine;
  }
  return node_stat(c, node);  // the readers went away meanwhile
}

Result<NodeClaim> hold_node(Conn& c, const std::shared_ptr<Node>& node,
                           const char* pause) noexcept {
  if (node->kind() != NodeKind::file) return NodeClaim{};
  auto fd = node_fd(c, *node, pause);
  if (!fd) return std::move(fd).error();
  c.table.hold(*node, std::move(*fd));
  return NodeClaim(c, node, false);
}

void after_commit(Conn& c, Node& node, const struct stat& published) noexcept {
  Daemon& d = c.d;
  const auto replaced = c.table.take_replaced(node);
  // Warm snapshots of what this commit replaced (or changed in place)
  // serve no open any more: their blocks are freed now, not at expiry.
  if (replaced.second != 0) d.warm.evict_inode(replaced.first, replaced.second);
  d.warm.evict_inode(published.st_dev, published.st_ino);
  if (!caching(d)) return;
  c.table.note_change();
  try {
    const NodePlace p = c.table.place(node);
    std::vector<fuse_ino_t> ids = c.table.file_nodes_of(published.st_dev, published.st_ino);
    if (replaced.second != 0) {
      auto more = c.table.file_nodes_of(replaced.first, replaced.second);
      ids.insert(ids.end(), more.begin(), more.end());
    }
    if (p.parent) {
      auto more = c.table.file_nodes_named(p.parent->id(), p.name);
      ids.insert(ids.end(), more.begin(), more.end());
      ids.push_back(p.parent->id());  // its mtime and ctime changed (rename)
    }
    // Shared readers of the version this commit replaced: their node is
    // cached under the name (InodeTable::attach_open) and must not show
    // through it any more. Every cached dentry is looked up again at its
    // next use (the epoch); the LOOKUP of this name then gets another node.
    // Sent before the reply, like the invalidations: stat after close()
    // returns sees the new file.
    inval_all(c, ids, 0, c.table.any_pinned(ids));
  } catch (const std::bad_alloc&) {
    // Without the lists nothing can be targeted: the cached attributes of
    // those nodes may lag by up to cache_timeout (logged; not expected).
    d.log->debug("commit: no memory for the cache invalidation of ino {}", node.id());
  }
}

void after_inode_change(Conn& c, dev_t dev, ino_t ino, fuse_ino_t except) noexcept {
  Daemon& d = c.d;
  if (!caching(d)) return;
  c.table.note_change();
  try {
    auto ids = c.table.file_nodes_of(dev, ino);
    inval_all(c, ids, except, false);
  } catch (const std::bad_alloc&) {
    d.log->debug("no memory for the cache invalidation of inode {}", static_cast<unsigned long>(ino));
  }
}

}  // namespace snapfs::fuse
