// LOOKUP, FORGET, GETATTR.
// Symlink-safe: lookups open one component beneath the parent's O_PATH fd
// with O_NOFOLLOW (ops/common.cpp); GETATTR fstat()s held descriptors, or,
// for an idle file node, fstatat()s its one name with AT_SYMLINK_NOFOLLOW.
#include "ops/common.hpp"
#include "ops/ops.hpp"
#include "reply.hpp"
#include "cache.hpp"

#include "sys/sys.hpp"

#include <sys/stat.h>

#include <chrono>
#include <new>
#include <shared_mutex>

namespace snapfs::fuse::ops {

namespace sys = core::sys;

void lookup(fuse_req_t req, fuse_ino_t parent, const char* name) noexcept {
  Conn& c = conn_of(req);
  Daemon& d = c.d;
  d.stats.lookups.fetch_add(1, std::memory_order_relaxed);
  // B/.snapfs is not part of the view.
  if (is_meta_name(parent, name)) return reply_errno(req, ENOENT, "lookup", parent);
  fuse_entry_param e{};
  const auto parent_node = c.table.get(parent);
  if (!c.pending_truncations.empty()) {
    // A truncation of this file may be waiting for its RELEASE
    // (PendingTruncations): give it a moment, so that what we answer is
    // the file as its last close left it. Bounded: a descriptor that is
    // still open and about to write keeps the old version visible, as it
    // should.
    const FdRef pfd = parent_node->fd();
    if (auto st = sys::fstatat(pfd->get(), name, AT_SYMLINK_NOFOLLOW); st && S_ISREG(st->st_mode))
      c.pending_truncations.settle({st->st_dev, st->st_ino}, std::chrono::milliseconds(50));
  }
  auto node = lookup_child(c, parent_node, name, e, fuse_req_ctx(req)->pid);
  if (!node) {
    // ENOENT is the common answer and is not worth a log line per request.
    if (node.error().value() == ENOENT) return reply_errno(req, ENOENT, "lookup", parent);
    return reply_error(req, node.error(), "lookup", parent);
  }
  reply_entry(req, e);
}

void forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) noexcept {
  conn_of(req).table.forget(ino, nlookup);
  reply_none(req);
}

void forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets) noexcept {
  Conn& c = conn_of(req);
  for (size_t i = 0; i < count; ++i) c.table.forget(forgets[i].ino, forgets[i].nlookup);
  reply_none(req);
}

void getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept {
  Conn& c = conn_of(req);
  Daemon& d = c.d;
  d.stats.getattrs.fetch_add(1, std::memory_order_relaxed);
  auto node = c.table.get(ino);
  if (!fi && node->kind() == NodeKind::file && c.table.pin_of(*node).pinned) {
    // Shared readers (cache.hpp).
    double timeout = 0;
    auto st = shared_reader_attr(c, *node, timeout);
    if (!st) return reply_error(req, st.error(), "getattr", ino);
    return reply_attr(req, *st, timeout);
  }
  // fstat() arrives without fi (docs/design-fuse.md, "Kernel facts" 5):
  // node_attr() then finds the node's own open, which is why each open has its
  // own node. An idle file node shows what its name holds now (ESTALE if that
  // is no regular file: the kernel then walks again).
  auto st = node_attr(c, *node, fi);
  if (!st) return reply_error(req, st.error(), "getattr", ino);
  // The timeout is decided after the attributes were read: an OPEN that
  // starts in between invalidates them (cache.hpp), and the kernel drops
  // this older reply (attr_version).
  double timeout = c.table.attr_timeout(*node, *st);
  if (!fi && node->kind() == NodeKind::file && c.table.any_owned() && !c.table.busy(*node)) {
    // An idle node of an inode some process holds privately (a hard link's
    // name the kernel cached before, docs/design-own-writes.md): its owner
    // sees its version, others the published file; nobody's is cached.
    try {
      std::shared_ptr<Version> own;
      const Route r = route_for(c, *st, fuse_req_ctx(req)->pid, own);
      if (r.to) {
        std::shared_lock lk(own->mu);
        if (auto a = handle_attr(*own)) *st = *a;
      }
      if (r.held) timeout = 0;
    } catch (const std::bad_alloc&) {
      timeout = 0;
    }
  }
  reply_attr(req, *st, timeout);
}

}  // namespace snapfs::fuse::ops
