// LOOKUP, FORGET, GETATTR.
// Symlink-safe: lookups open one component beneath the parent's O_PATH fd
// with O_NOFOLLOW (ops/common.cpp); GETATTR fstat()s held descriptors only.
#include "ops/common.hpp"
#include "ops/ops.hpp"
#include "reply.hpp"

namespace snapfs::fuse::ops {

void lookup(fuse_req_t req, fuse_ino_t parent, const char* name) noexcept {
  Daemon& d = daemon_of(req);
  fuse_entry_param e{};
  auto node = lookup_child(d, d.table.get(parent), name, e);
  if (!node) {
    // ENOENT is the common answer and is not worth a log line per request.
    if (node.error().value() == ENOENT) return reply_errno(req, ENOENT, "lookup", parent);
    return reply_error(req, node.error(), "lookup", parent);
  }
  reply_entry(req, e);
}

void forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) noexcept {
  daemon_of(req).table.forget(ino, nlookup);
  reply_none(req);
}

void forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets) noexcept {
  Daemon& d = daemon_of(req);
  for (size_t i = 0; i < count; ++i) d.table.forget(forgets[i].ino, forgets[i].nlookup);
  reply_none(req);
}

void getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept {
  Daemon& d = daemon_of(req);
  auto node = d.table.get(ino);
  // fstat() arrives without fi (FUSE-NOTES §5): node_attr() then finds the
  // node's own open, which is why each open has its own node.
  auto st = node_attr(d, *node, fi);
  if (!st) return reply_error(req, st.error(), "getattr", ino);
  reply_attr(req, *st, attr_timeout(*node));
}

}  // namespace snapfs::fuse::ops
