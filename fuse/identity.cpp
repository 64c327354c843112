// Acting as the caller (identity.hpp, docs/security.md).
#include "identity.hpp"

#include "sys/sys.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>

namespace snapfs::fuse {

namespace sys = core::sys;

Identity identity_of(fuse_req_t req) noexcept {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  Identity who;
  who.uid = ctx->uid;
  who.gid = ctx->gid;
  who.tid = ctx->pid;
  return who;
}

ActingAs::ActingAs(const Daemon& d, const Identity& who) noexcept : d_(&d) {
  // The caller's groups: from the kernel's view of its thread. A caller the
  // daemon cannot see (another pid namespace, or gone) acts with its fsgid
  // alone (docs/security.md, "Limits").
  std::vector<gid_t> groups;
  if (who.tid > 0) {
    if (auto g = sys::groups_of(who.tid)) groups = std::move(*g);
  }
  switched_ = true;
  if (auto r = sys::set_fs_identity(who.uid, who.gid, groups); !r) {
    ok_ = false;
    err_ = std::move(r).error();
  }
}

ActingAs::~ActingAs() {
  if (!switched_) return;
  // Back to the daemon's own identity. A thread that could not get it back
  // would serve the next request with a stranger's rights, or without the
  // daemon's: that must never happen, so the daemon stops.
  if (!sys::set_fs_identity(d_->own_uid, d_->own_gid, d_->own_groups)) std::abort();
}

core::Result<void> may_access(const Daemon& d, const Identity& who, int fd, int mask) noexcept {
  if (!acts_for_others(d, who) || mask == 0) return {};
  // The owner's access is decided by the owner's bits (or ACL_USER_OBJ)
  // alone: no need to read the caller's groups.
  auto st = sys::fstat(fd);
  if (!st) return std::move(st).error();
  std::vector<gid_t> none;
  if (st->st_uid == who.uid) {
    auto r = sys::set_fs_identity(who.uid, who.gid, none);
    if (!r) return r;
    auto ok = sys::faccessat(fd, "", mask, AT_EMPTY_PATH | AT_EACCESS);
    if (!sys::set_fs_identity(d.own_uid, d.own_gid, d.own_groups)) std::abort();
    return ok;
  }
  ActingAs as(d, who);
  if (!as.ok()) return as.error();
  // SECURITY: AT_EACCESS makes faccessat use the thread's filesystem ids
  // and groups (set above), not the real ids; AT_EMPTY_PATH asks about the
  // inode `fd` refers to, so no name is resolved between this check and
  // the use of `fd`.
  return sys::faccessat(fd, "", mask, AT_EMPTY_PATH | AT_EACCESS);
}

int access_mask(int flags) noexcept {
  int mask = 0;
  const int acc = flags & O_ACCMODE;
  if (acc == O_RDONLY || acc == O_RDWR) mask |= R_OK;
  if (acc == O_WRONLY || acc == O_RDWR || (flags & O_TRUNC)) mask |= W_OK;
  return mask;
}

}  // namespace snapfs::fuse
