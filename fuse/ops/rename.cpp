// RENAME (flags 0, RENAME_NOREPLACE, RENAME_EXCHANGE).
// Symlink-safe: renameat2() between the two parents' held O_PATH directory
// handles with one final component each; nothing is resolved by path.
#include "ops/common.hpp"
#include "ops/ops.hpp"
#include "reply.hpp"
#include "sys/sys.hpp"

#include <linux/fs.h>

#include <mutex>
#include <new>
#include <shared_mutex>

namespace snapfs::fuse::ops {

namespace sys = core::sys;

void rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
            const char* newname, unsigned int flags) noexcept {
  Conn& c = conn_of(req);
  Daemon& d = c.d;
  if (!valid_name(name) || !valid_name(newname)) return reply_errno(req, EINVAL, "rename", parent);
  // B/.snapfs is not in the view: it cannot be renamed, replaced or exchanged.
  if (is_meta_name(parent, name)) return reply_errno(req, ENOENT, "rename", parent);
  if (is_meta_name(newparent, newname)) return reply_errno(req, EPERM, "rename", parent);
  // RENAME_WHITEOUT is for overlay filesystems; refuse it rather than pass
  // a device-node trick through to B.
  if (flags & ~static_cast<unsigned>(RENAME_NOREPLACE | RENAME_EXCHANGE))
    return reply_errno(req, EINVAL, "rename", parent);
  auto from = c.table.get(parent);
  auto to = c.table.get(newparent);
  const FdRef from_fd = from->fd();
  const FdRef to_fd = to->fd();
  core::Result<struct stat> moved = core::Error::of(ENOENT, "rename");
  core::Result<struct stat> target = core::Error::of(ENOENT, "rename");
  {
    // Exclusive against commits: an open description follows its file to the new
    // name (docs/semantics.md#rename), and one whose name was replaced commits
    // nothing; a commit in flight finishes before or after, never between.
    std::unique_lock ns(d.ns_mu);
    moved = sys::fstatat(from_fd->get(), name, AT_SYMLINK_NOFOLLOW);
    target = sys::fstatat(to_fd->get(), newname, AT_SYMLINK_NOFOLLOW);
    if (auto r = sys::renameat(from_fd->get(), name, to_fd->get(), newname, flags); !r) {
      ns.unlock();  // never reply to the kernel holding a lock (docs/design-fuse.md)
      return reply_error(req, r.error(), "rename", parent);
    }
    try {
      c.table.on_rename(from, name, to, newname, (flags & RENAME_EXCHANGE) != 0);
    } catch (const std::bad_alloc&) {
      // B has the new names; the daemon's index of names does not. Said,
      // so that a commit of the file through its old node is not a mystery.
      d.log->error("rename of {} in ino {}: no memory to record the new name; nodes of it "
                   "still name the old place until the kernel looks them up again",
                   name, parent);
    }
  }
  // The kernel moves the dentries and fixes the nodes it renamed or
  // replaced; other names (hard links) of those files have nodes of their
  // own whose ctime or link count is now stale (cache.hpp).
  if (moved && S_ISREG(moved->st_mode) && moved->st_nlink > 1)
    after_inode_change(c, moved->st_dev, moved->st_ino);
  if (target && S_ISREG(target->st_mode) && target->st_nlink > 1)
    after_inode_change(c, target->st_dev, target->st_ino);
  // Warm snapshots of both: a rename changes the ctime (no open asks for
  // those versions again) and a replaced file's blocks are freed now.
  if (moved && S_ISREG(moved->st_mode)) d.warm.evict_inode(moved->st_dev, moved->st_ino);
  if (target && S_ISREG(target->st_mode)) d.warm.evict_inode(target->st_dev, target->st_ino);
  // An exchange is two renames, each name now the other's file.
  note_change(c, req, EventKind::rename, *from, name, to.get(), newname);
  if (flags & RENAME_EXCHANGE) note_change(c, req, EventKind::rename, *to, newname, from.get(), name);
  reply_ok(req);
}

}  // namespace snapfs::fuse::ops
