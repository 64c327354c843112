// Lookup of one component, ownership of created inodes, GETATTR views.
// Symlink-safe: openat2(RESOLVE_BENEATH) of a single name with O_NOFOLLOW;
// everything else acts on held descriptors (AT_EMPTY_PATH, /proc/self/fd).
#include "ops/common.hpp"

#include "sys/sys.hpp"

#include <fcntl.h>
#include <fnmatch.h>

#include <cstdio>
#include <cstring>
#include <new>
#include <shared_mutex>

namespace snapfs::fuse::ops {

namespace sys = core::sys;

using core::Error;
using core::Result;

namespace {

bool matches_glob(const Daemon& d, const std::string& path) {
  for (const auto& g : d.cfg.shared_globs) {
    const char* pat = g.c_str();
    while (*pat == '/') ++pat;  // globs are relative to M; accept "/x" too
    if (::fnmatch(pat, path.c_str(), FNM_PATHNAME) == 0) return true;
  }
  return false;
}

}  // namespace

bool is_shared_path(Conn& c, const Node& parent, const char* name) {
  Daemon& d = c.d;
  if (d.cfg.shared_globs.empty()) return false;
  std::string path = c.table.path_of(parent);
  if (!path.empty()) path += '/';
  path += name;
  return matches_glob(d, path);
}

namespace {

// intern_fd() with the inode's attributes `st` already read (`fd` may be
// empty for a kind-file node looked up: it keeps no descriptor). `seen`:
// InodeTable::changes() before `st` was read.
Result<std::shared_ptr<Node>> intern_stat(Conn& c, const std::shared_ptr<Node>& parent,
                                          const char* name, core::UniqueFd fd,
                                          const struct stat& st, bool glob, fuse_entry_param& e,
                                          Intent intent, pid_t caller,
                                          std::uint64_t seen, const Route& route = {}) noexcept {
  try {
    Timeouts t;
    auto node =
        c.table.intern(parent, name, std::move(fd), st, glob, intent, t, caller, seen, route);
    std::memset(&e, 0, sizeof e);
    e.ino = node->id();
    e.generation = 0;  // node ids are never reused
    e.attr = st;
    // Only fresh or idle nodes, or nodes whose shared readers read the
    // version B/p holds, come back from a lookup of a snapshot file
    // (inode_table.cpp): `st` is their view. A shared (glob) node may have
    // opens, whose view is B/p.
    // (A CREATE's node gets its open after this.)
    if (node->kind() == NodeKind::shared_file) {
      if (auto h = c.table.open_of(*node)) {
        std::shared_lock lk(h->mu);
        if (auto a = handle_attr(*h)) e.attr = *a;
      }
    }
    // Routed to the caller's own version: its view (timeouts 0).
    if (route.to && node.get() == route.to->node.get()) {
      std::shared_lock lk(route.to->mu);
      if (auto a = handle_attr(*route.to)) e.attr = *a;
    }
    e.attr_timeout = t.attr;
    e.entry_timeout = t.entry;
    return node;
  } catch (const std::bad_alloc&) {
    return Error::of(ENOMEM, "lookup", name);
  }
}

}  // namespace

Result<std::shared_ptr<Node>> intern_fd(Conn& c, const std::shared_ptr<Node>& parent,
                                        const char* name, core::UniqueFd fd,
                                        fuse_entry_param& e, Intent intent, pid_t caller) noexcept {
  auto st = sys::fstat(fd.get());
  if (!st) return std::move(st).error();
  bool glob = false;
  try {
    glob = S_ISREG(st->st_mode) && is_shared_path(c, *parent, name);
  } catch (const std::bad_alloc&) {
    return Error::of(ENOMEM, "lookup", name);
  }
  return intern_stat(c, parent, name, std::move(fd), *st, glob, e, intent, caller,
                     InodeTable::kNoChanges);
}

namespace {

// Whether the owner's version `v` is what its process sees at a name that
// holds `st` (null: any name of the inode): while it is open, and changed
// since it was taken, or unchanged with B/p still its base. A clean version
// whose file someone else has published since is stale: the owner sees the
// published file.
bool shows_own(const Version& v, const struct stat* st) noexcept {
  std::shared_lock lk(v.mu);
  if (v.descs == 0) return false;
  if (!st || v.dirty) return true;
  if (v.kernel_writes()) {
    auto now = sys::fstat(v.snap.fd());
    if (!now || !v.seen.same(SnapState::of(*now))) return true;
  }
  return v.base.same(*st);
}

}  // namespace

std::shared_ptr<Version> own_version(Conn& c, dev_t dev, ino_t ino, pid_t caller,
                                     const struct stat* st, bool& held) {
  held = false;
  if (!c.table.any_owned()) return nullptr;
  auto vs = c.table.owned_versions_of(dev, ino);
  if (vs.empty()) return nullptr;
  held = true;
  if (caller == 0) return nullptr;
  // No lock held: tgid_of may read /proc.
  auto tgid = sys::tgid_of(caller);
  if (!tgid) return nullptr;
  for (auto& v : vs)
    if (v->owner.is(*tgid) && shows_own(*v, st)) return std::move(v);
  return nullptr;
}

Route route_for(Conn& c, const struct stat& st, pid_t caller,
                std::shared_ptr<Version>& keep) {
  Route r;
  keep = own_version(c, st.st_dev, st.st_ino, caller, &st, r.held);
  r.to = keep.get();
  return r;
}

Result<std::shared_ptr<Node>> lookup_child(Conn& c, const std::shared_ptr<Node>& parent,
                                           const char* name, fuse_entry_param& e,
                                           pid_t caller) noexcept {
  Daemon& d = c.d;
  if (!valid_name(name)) return Error::of(EINVAL, "lookup", name ? name : "");
  const FdRef pfd = parent->fd();
  // Before the stat: a change noted from here on makes a reply for a node
  // new to the kernel uncacheable (InodeTable::set_cold_cacheable()).
  const std::uint64_t seen = c.table.changes();
  // A regular file's node keeps no descriptor when looked up (idle nodes
  // are resolved by name): its attributes are all we need.
  // SAFETY: one final component (valid_name(): no '/', '.' or '..') and
  // AT_SYMLINK_NOFOLLOW: nothing outside the parent is reached.
  auto st = sys::fstatat(pfd->get(), name, AT_SYMLINK_NOFOLLOW);
  if (!st) return std::move(st).error();
  try {
    if (S_ISREG(st->st_mode) && !is_shared_path(c, *parent, name)) {
      if (d.cfg.test_pause) d.cfg.test_pause("lookup.stat", name);
      // A process's own version of this inode (docs/design-own-writes.md).
      std::shared_ptr<Version> own;
      const Route route = route_for(c, *st, caller, own);
      auto node = intern_stat(c, parent, name, core::UniqueFd{}, *st, false, e, Intent::lookup,
                              caller, seen, route);
      if (route.to && node && node->get() == own->node.get())
        d.stats.own_routes.fetch_add(1, std::memory_order_relaxed);
      if (node && d.cfg.test_pause) d.cfg.test_pause("lookup.intern", name);
      return node;
    }
  } catch (const std::bad_alloc&) {
    return Error::of(ENOMEM, "lookup", name);
  }
  // Directories and the rest keep an O_PATH descriptor; intern_fd() stats
  // that descriptor again (the name may have changed since the fstatat:
  // what the node holds is what counts). Files, the common LOOKUP, pay one
  // stat and no open.
  // SAFETY: one component, O_NOFOLLOW (a symlink is opened as itself) and
  // RESOLVE_BENEATH (a ".." or absolute walk fails with EXDEV).
  auto fd = sys::openat_beneath(pfd->get(), name, O_PATH | O_NOFOLLOW, 0);
  if (!fd) return std::move(fd).error();
  return intern_fd(c, parent, name, std::move(*fd), e, Intent::lookup, caller);
}

Result<void> chown_created(Daemon& d, fuse_req_t req, int dirfd, int fd) noexcept {
  if (!d.as_root) return {};
  const fuse_ctx* ctx = fuse_req_ctx(req);
  auto dir = sys::fstat(dirfd);
  if (!dir) return std::move(dir).error();
  // A setgid directory hands its group down (the kernel already did that).
  const gid_t gid = (dir->st_mode & S_ISGID) ? static_cast<gid_t>(-1) : ctx->gid;
  if (ctx->uid == 0 && (gid == static_cast<gid_t>(-1) || gid == 0)) return {};
  return sys::fchownat(fd, "", ctx->uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
}

mode_t creation_mode(Conn& c, fuse_req_t req, int dirfd, mode_t mode) noexcept {
  if (!c.posix_acl) return mode;
  const auto proc = sys::proc_fd_path(dirfd);
  auto acl = sys::getxattr_path(proc.c_str(), "system.posix_acl_default");
  if (acl) return mode;  // B inherits the default ACL and ignores the umask
  return mode & ~(fuse_req_ctx(req)->umask & 0777);
}

std::string path_for_log(Conn& c, const Node& node) noexcept {
  try {
    return c.table.path_of(node);
  } catch (const std::bad_alloc&) {
    // Short enough for the small-string buffer: no allocation.
    char buf[16];  // "ino " and at most 11 digits
    std::snprintf(buf, sizeof buf, "ino %llu",
                  static_cast<unsigned long long>(node.id() % 100000000000ULL));
    return std::string(buf);
  }
}

namespace {

void note(Conn& c, fuse_req_t req, EventKind kind, const Node& dir, const char* name,
          const Node* to_parent, const char* to_name) noexcept {
  Daemon& d = c.d;
  const fuse_ctx* ctx = fuse_req_ctx(req);
  Event e = event_by(ctx->pid, ctx->uid);
  e.kind = kind;
  try {
    auto at = c.table.locate(dir, name);
    e.path = std::move(at.path);
    e.dir = dir_of(at.dir_dev, at.dir_ino, at.dir_fd ? at.dir_fd->get() : -1);
    if (to_parent && to_name) {
      auto to = c.table.locate(*to_parent, to_name);
      e.to = std::move(to.path);
      e.to_dir = dir_of(to.dir_dev, to.dir_ino, to.dir_fd ? to.dir_fd->get() : -1);
    }
  } catch (const std::bad_alloc&) {
    return d.events.skip();
  }
  d.events.record(std::move(e));
}

}  // namespace

void note_change(Conn& c, fuse_req_t req, EventKind kind, const Node& parent, const char* name,
                 const Node* to_parent, const char* to_name) noexcept {
  note(c, req, kind, parent, name, to_parent, to_name);
}

void note_link(Conn& c, fuse_req_t req, const Node& node, const Node& to_parent,
               const char* to_name) noexcept {
  note(c, req, EventKind::link, node, nullptr, &to_parent, to_name);
}

Result<struct stat> node_attr(Conn& c, const Node& node, const fuse_file_info* fi) noexcept {
  std::shared_ptr<Version> h;
  if (fi && fi->fh) h = handle_ref(fi)->v;
  const bool own = static_cast<bool>(h);
  if (!h) h = c.table.open_of(node);
  if (h) {
    std::shared_lock lk(h->mu);
    auto st = handle_attr(*h);
    // The node's open went away since open_of() (RELEASE) and left it
    // unbound: it stands for its name again.
    if (st || own || st.error().value() != ESTALE) return st;
  }
  // Idle file nodes: whatever their name holds now (cache.hpp).
  return node_stat(c, node);
}

}  // namespace snapfs::fuse::ops
