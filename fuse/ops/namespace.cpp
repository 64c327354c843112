// MKDIR, MKNOD, SYMLINK, LINK, UNLINK, RMDIR, READLINK: straight to B.
// Symlink-safe: every call is an *at() on the parent's held O_PATH directory
// handle with one final component (valid_name()); new entries are re-opened
// with O_PATH|O_NOFOLLOW beneath the parent; LINK and READLINK act on the
// node's handle (AT_EMPTY_PATH, /proc/self/fd), never on a path (an idle
// file node's handle is opened for the request, cache.hpp).
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

// After a create-like call made `name` in `parent`: give it to the caller,
// register it and reply with its entry.
void finish_new(fuse_req_t req, Conn& c, const std::shared_ptr<Node>& parent, int pfd,
                const char* name, const char* op, EventKind kind) noexcept {
  // Made in B: in the feed whatever the rest of this does.
  note_change(c, req, kind, *parent, name);
  auto fd = sys::openat_beneath(pfd, name, O_PATH | O_NOFOLLOW, 0);
  if (!fd) return reply_error(req, fd.error(), op, parent->id());
  if (auto r = chown_created(c.d, req, pfd, fd->get()); !r)
    return reply_error(req, r.error(), op, parent->id());
  fuse_entry_param e{};
  auto node = intern_fd(c, parent, name, std::move(*fd), e);
  if (!node) return reply_error(req, node.error(), op, parent->id());
  reply_entry(req, e);
}

}  // namespace

void mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) noexcept {
  Conn& c = conn_of(req);
  if (!valid_name(name)) return reply_errno(req, EINVAL, "mkdir", parent);
  if (is_meta_name(parent, name)) return reply_errno(req, EPERM, "mkdir", parent);
  auto pnode = c.table.get(parent);
  const FdRef pfd = pnode->fd();
  if (auto r = sys::mkdirat(pfd->get(), name, creation_mode(c, req, pfd->get(), mode) & 07777); !r)
    return reply_error(req, r.error(), "mkdir", parent);
  finish_new(req, c, pnode, pfd->get(), name, "mkdir", EventKind::mkdir);
}

void mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
           dev_t rdev) noexcept {
  Conn& c = conn_of(req);
  if (!valid_name(name)) return reply_errno(req, EINVAL, "mknod", parent);
  if (is_meta_name(parent, name)) return reply_errno(req, EPERM, "mknod", parent);
  auto pnode = c.table.get(parent);
  const FdRef pfd = pnode->fd();
  // Devices need CAP_MKNOD of the caller, which the kernel checks before
  // sending MKNOD (vfs_mknod); fifos and sockets are anyone's.
  if (auto r = sys::mknodat(pfd->get(), name, creation_mode(c, req, pfd->get(), mode), rdev); !r)
    return reply_error(req, r.error(), "mknod", parent);
  finish_new(req, c, pnode, pfd->get(), name, "mknod", EventKind::create);
}

void symlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) noexcept {
  Conn& c = conn_of(req);
  if (!valid_name(name)) return reply_errno(req, EINVAL, "symlink", parent);
  if (is_meta_name(parent, name)) return reply_errno(req, EPERM, "symlink", parent);
  auto pnode = c.table.get(parent);
  const FdRef pfd = pnode->fd();
  // The target is only text: it is stored, never resolved by the daemon.
  if (auto r = sys::symlinkat(target, pfd->get(), name); !r)
    return reply_error(req, r.error(), "symlink", parent);
  finish_new(req, c, pnode, pfd->get(), name, "symlink", EventKind::symlink);
}

void link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) noexcept {
  Conn& c = conn_of(req);
  if (!valid_name(newname)) return reply_errno(req, EINVAL, "link", ino);
  if (is_meta_name(newparent, newname)) return reply_errno(req, EPERM, "link", ino);
  auto node = c.table.get(ino);
  auto pnode = c.table.get(newparent);
  auto fdr = node_fd(c, *node);
  if (!fdr) return reply_error(req, fdr.error(), "link", ino);
  const FdRef fd = std::move(*fdr);
  const FdRef pfd = pnode->fd();
  Result<void> r;
  if (node->type() == S_IFLNK) {
    // A symlink cannot be reached through /proc/self/fd without following
    // it; AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH (root daemons have it).
    r = sys::linkat(fd->get(), "", pfd->get(), newname, AT_EMPTY_PATH);
  } else {
    const auto proc = sys::proc_fd_path(fd->get());
    r = sys::linkat(AT_FDCWD, proc.c_str(), pfd->get(), newname, AT_SYMLINK_FOLLOW);
  }
  if (!r) return reply_error(req, r.error(), "link", ino);
  note_link(c, req, *node, *pnode, newname);
  // The link count changed for every node of the inode.
  if (node->kind() == NodeKind::file) {
    if (auto st = sys::fstat(fd->get())) after_inode_change(c, st->st_dev, st->st_ino);
  }
  fuse_entry_param e{};
  auto n = lookup_child(c, pnode, newname, e);
  if (!n) return reply_error(req, n.error(), "link", ino);
  reply_entry(req, e);
}

namespace {

void remove(fuse_req_t req, fuse_ino_t parent, const char* name, int flags,
            const char* op) noexcept {
  Conn& c = conn_of(req);
  Daemon& d = c.d;
  if (!valid_name(name)) return reply_errno(req, EINVAL, op, parent);
  if (is_meta_name(parent, name)) return reply_errno(req, ENOENT, op, parent);  // not in the view
  auto pnode = c.table.get(parent);
  const FdRef pfd = pnode->fd();
  core::Result<struct stat> gone = core::Error::of(ENOENT, op);
  {
    // Exclusive against commits: once the name is gone, an open description of
    // it commits nothing (docs/semantics.md#unlink) and is never resurrected.
    std::unique_lock ns(d.ns_mu);
    if (!flags) gone = sys::fstatat(pfd->get(), name, AT_SYMLINK_NOFOLLOW);
    if (auto r = sys::unlinkat(pfd->get(), name, flags); !r) {
      ns.unlock();  // never reply to the kernel holding a lock (docs/design-fuse.md)
      return reply_error(req, r.error(), op, parent);
    }
    try {
      c.table.on_unlink(parent, name);
    } catch (const std::bad_alloc&) {
      d.log->error("{} of {} in ino {}: no memory to record it; an open description of it "
                   "may still commit to the name",
                   op, name, parent);
    }
  }
  // The kernel drops this name's dentry and counts one link less on its
  // node; the file's other names (hard links) have nodes of their own.
  if (gone && S_ISREG(gone->st_mode) && gone->st_nlink > 1)
    after_inode_change(c, gone->st_dev, gone->st_ino);
  // Its warm snapshots would keep the removed file's blocks allocated (and
  // its new ctime makes them serve no open anyway).
  if (gone && S_ISREG(gone->st_mode)) d.warm.evict_inode(gone->st_dev, gone->st_ino);
  note_change(c, req, flags ? EventKind::rmdir : EventKind::unlink, *pnode, name);
  reply_ok(req);
}

}  // namespace

void unlink(fuse_req_t req, fuse_ino_t parent, const char* name) noexcept {
  remove(req, parent, name, 0, "unlink");
}

void rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) noexcept {
  remove(req, parent, name, AT_REMOVEDIR, "rmdir");
}

void readlink(fuse_req_t req, fuse_ino_t ino) noexcept {
  Conn& c = conn_of(req);
  auto node = c.table.get(ino);
  const FdRef fd = node->fd();
  auto target = sys::readlinkat(fd->get(), "");
  if (!target) return reply_error(req, target.error(), "readlink", ino);
  reply_readlink(req, target->c_str());
}

}  // namespace snapfs::fuse::ops
