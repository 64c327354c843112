// SETATTR: chmod, chown, truncate/ftruncate, utimens.
// Symlink-safe: acts on the node's O_PATH handle (AT_EMPTY_PATH or
// /proc/self/fd/N), held or, for an idle file node, opened for this request
// one component beneath its parent with O_NOFOLLOW (cache.hpp);
// AT_SYMLINK_NOFOLLOW throughout.
#include "identity.hpp"
#include "ops/common.hpp"
#include "ops/ops.hpp"
#include "reply.hpp"
#include "sys/sys.hpp"

#include <fcntl.h>

#include <mutex>
#include <shared_mutex>

namespace snapfs::fuse::ops {

namespace sys = core::sys;

using core::Result;

namespace {

Result<void> ftruncate_handle(Conn& c, Version& h, std::uint64_t size) noexcept {
  std::unique_lock lk(h.mu);
  if (h.kind == HandleKind::shared) return sys::ftruncate(h.direct.get(), size);
  // ISOLATION: only this description's snapshot changes (docs/semantics.md#writers).
  SNAPFS_TRY(prepare_change(c, h));
  SNAPFS_TRY(sys::ftruncate(h.snap.fd(), size));
  h.mark_dirty(0);  // SETATTR carries no lock owner in libfuse 3.14
  h.append_only = false;  // not an append: never rebased
  return {};
}

// utimens while a snapshot is open: the commit publishes the snapshot inode,
// so its times must carry what the caller set (cp -p sets them before close).
Result<void> times_on_snapshot(Conn& c, Version& h, const struct timespec times[2],
                               const struct timespec& mtime_now) noexcept {
  std::unique_lock lk(h.mu);
  if (h.kind != HandleKind::snapshot) return {};
  if (times[1].tv_nsec != UTIME_OMIT)
    h.base_mtime = times[1].tv_nsec == UTIME_NOW ? mtime_now : times[1];
  bool changed = false;  // a passthrough writer's writes are not marked before its close
  if (h.kernel_writes()) {
    auto st = sys::fstat(h.snap.fd());
    changed = st && !h.seen.same(SnapState::of(*st));
  }
  if (!h.dirty && !changed) return {};
  SNAPFS_TRY(ensure_private(c, h));
  return sys::utimensat(h.snap.fd(), "", times, AT_EMPTY_PATH);
}

// Whether chmod to `mode` would only clear setuid and/or setgid of the
// inode `fd` and change nothing else.
bool only_drops_setid(int fd, mode_t mode) noexcept {
  auto st = sys::fstat(fd);
  if (!st) return false;
  const mode_t old = st->st_mode & 07777;
  const mode_t setid = S_ISUID | S_ISGID;
  return (mode & ~old) == 0 && ((old ^ mode) & ~setid) == 0 && old != mode;
}

// chmod and chown of the inode `fd` as the caller `who` (identity.hpp), so
// that the backing filesystem applies its own rules (owner, CAP_FOWNER,
// group membership, clearing setgid) to the inode actually changed.
Result<void> change_mode_and_owner(Daemon& d, const Identity& who, int fd,
                                   const struct stat& attr, int to_set) noexcept {
  if (to_set & FUSE_SET_ATTR_MODE) {
    const mode_t mode = attr.st_mode & 07777;
    auto r = acting_as(d, who, [&] { return sys::chmod_fd(fd, mode); });
    if (!r && r.error().value() == EPERM && only_drops_setid(fd, mode) &&
        may_access(d, who, fd, W_OK)) {
      // The kernel drops setuid/setgid before a write or truncate by
      // someone who is not the owner (it sends that as a mode change): a
      // writer of the inode may always take privileges away.
      r = sys::chmod_fd(fd, mode);
    }
    if (!r) return r;
  }
  if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
    const uid_t uid = (to_set & FUSE_SET_ATTR_UID) ? attr.st_uid : static_cast<uid_t>(-1);
    const gid_t gid = (to_set & FUSE_SET_ATTR_GID) ? attr.st_gid : static_cast<gid_t>(-1);
    return acting_as(d, who, [&] {
      return sys::fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
    });
  }
  return {};
}

// The times a SETATTR asks for, UTIME_OMIT for those it leaves alone.
void times_of(const struct stat& attr, int to_set, struct timespec (&times)[2]) noexcept {
  times[0].tv_sec = times[1].tv_sec = 0;
  times[0].tv_nsec = times[1].tv_nsec = UTIME_OMIT;
  if (to_set & FUSE_SET_ATTR_ATIME_NOW)
    times[0].tv_nsec = UTIME_NOW;
  else if (to_set & FUSE_SET_ATTR_ATIME)
    times[0] = attr.st_atim;
  if (to_set & FUSE_SET_ATTR_MTIME_NOW)
    times[1].tv_nsec = UTIME_NOW;
  else if (to_set & FUSE_SET_ATTR_MTIME)
    times[1] = attr.st_mtim;
}

}  // namespace

void setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
             fuse_file_info* fi) noexcept {
  Conn& c = conn_of(req);
  Daemon& d = c.d;
  auto node = c.table.get(ino);
  const bool file = node->kind() == NodeKind::file || node->kind() == NodeKind::shared_file;
  // Metadata changes of a file exclude commits (Daemon::ns_mu): a commit
  // copies the metadata of the file it replaces, and a chmod landing between
  // that copy and the rename would be lost (docs/commit-protocol.md).
  // Without a size change the lock comes first, before the node is bound.
  // Binding an idle node resolves its name and then records the inode
  // (node_fd(), InodeTable::hold()); a commit that renamed over the name
  // between the two would rebind() the node's other names but not this
  // binding, and the chmod would go to the replaced inode and be lost
  // (found by the tsan preset: Namespace.ChmodRacingCommitsIsKept; made
  // certain by ChmodRace). A truncate(path) publishes under the path's
  // stripe, which comes before ns_mu: it binds first.
  const bool sized = (to_set & FUSE_SET_ATTR_SIZE) != 0;
  std::unique_lock ns(d.ns_mu, std::defer_lock);
  if (file && !sized) ns.lock();
  // An idle file node is bound to what its name holds now for the whole
  // request (truncate_published() and rebind() use node->fd()).
  auto claim = hold_node(c, node, "setattr.resolved");
  // Every reply goes out with no lock held (docs/design-fuse.md, "Locks").
  const auto fail = [&](const core::Error& e, const char* op) {
    if (ns.owns_lock()) ns.unlock();
    reply_error(req, e, op, ino);
  };
  if (!claim) return fail(claim.error(), "setattr");
  if (file && (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) &&
      !ns.owns_lock())
    ns.lock();
  const FdRef fd = node->fd();  // after the lock: a commit may have rebound it
  // SECURITY: the kernel checked this change against the attributes it
  // holds for the node; the node's name may hold another inode by now (a
  // rename in B). Every change below is made as the caller, or checked for
  // the caller on the inode it changes (identity.hpp).
  const Identity who = identity_of(req);
  if (auto r = change_mode_and_owner(d, who, fd->get(), *attr, to_set); !r)
    return fail(r.error(), "setattr(mode, owner)");
  if (sized && ns.owns_lock()) ns.unlock();  // truncate_published() takes the stripe first
  bool published = false;
  if (to_set & FUSE_SET_ATTR_SIZE) {
    const auto size = static_cast<std::uint64_t>(attr->st_size);
    Result<void> r;
    if (node->is_dir()) {
      r = core::Error::of(EISDIR, "truncate");
    } else if (fi && fi->fh) {
      const std::shared_ptr<Handle> hp = handle_ref(fi);
      r = ftruncate_handle(c, *hp->v, size);  // ftruncate(fd)
    } else {
      // truncate(path), even by a process that has the file open: it is the
      // published file's size that changes (docs/design-fuse.md,
      // "Kernel facts" 4), atomically.
      // SECURITY: only if the caller may write the inode the node is bound
      // to (the one truncate_published() replaces), whatever the kernel
      // cached.
      r = may_access(d, who, fd->get(), W_OK);
      if (r) r = truncate_published(c, node, size, who);
      published = r.has_value();
    }
    if (!r) return fail(r.error(), "setattr(size)");
  }
  if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
    struct timespec times[2];
    times_of(*attr, to_set, times);
    if (file && !ns.owns_lock()) ns.lock();
    const FdRef now_fd = node->fd();  // a truncate or commit may have published a new inode
    if (auto r = acting_as(d, who,
                           [&] {
                             return sys::utimensat(now_fd->get(), "", times,
                                                   AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
                           });
        !r)
      return fail(r.error(), "setattr(times)");
    if (ns.owns_lock()) ns.unlock();  // Version::mu comes before ns_mu
    if (file) {
      // Not a content change: open descriptors based on this inode keep
      // it as their base (docs/design-conflicts.md).
      if (auto now = sys::fstat(now_fd->get())) touch_bases(c, *now);
    }
    std::shared_ptr<Version> h;
    if (file) h = (fi && fi->fh) ? handle_ref(fi)->v : c.table.open_of(*node);
    if (h && h->writable) {
      auto now = sys::fstat(now_fd->get());
      const struct timespec mnow = now ? now->st_mtim : times[1];
      if (auto r = times_on_snapshot(c, *h, times, mnow); !r)
        return fail(r.error(), "setattr(times)");
    }
  }
  if (ns.owns_lock()) ns.unlock();
  auto st = node_attr(c, *node, fi);
  if (!st) return reply_error(req, st.error(), "setattr", ino);
  if (node->kind() == NodeKind::file) {
    // The kernel updates this node from the reply; other nodes of the
    // inode (hard links), and after truncate(path) every node of the name
    // and of the replaced inode, hold stale attributes (cache.hpp).
    if (published) {
      if (auto pst = sys::fstat(node->fd()->get())) after_commit(c, *node, *pst);
    }
    const auto [dev, ino_b] = c.table.key_of(*node);
    after_inode_change(c, dev, ino_b, node->id());
  }
  reply_attr(req, *st, c.table.attr_timeout(*node, *st));
}

}  // namespace snapfs::fuse::ops
