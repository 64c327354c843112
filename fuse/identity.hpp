// Who a request acts for, and acting as them (docs/security.md).
//
// The daemon runs as root and serves every local user. Whatever it does on
// a caller's behalf to an object in B it does either as that caller (the
// thread's filesystem uid, gid and supplementary groups switched to the
// caller's for the one syscall), or after the backing filesystem has said,
// for the caller and for the very inode the daemon is about to use, that
// the caller may (may_access()). Both let B's own rules decide, mode bits
// and POSIX ACLs included, on the inode acted on: never on a name resolved
// again later, and never on attributes the kernel cached for another inode.
#pragma once

#include "daemon_state.hpp"

#include <snapfs/core/result.hpp>

#include <sys/types.h>

#include <optional>
#include <span>
#include <utility>
#include <vector>

namespace snapfs::fuse {

// The caller of a request as the kernel names it: its filesystem uid and
// gid, and its thread (0 if in a pid namespace the daemon cannot see).
struct Identity {
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t tid = 0;
  // uid 0 stands for "has the filesystem capabilities" (CAP_DAC_OVERRIDE,
  // CAP_FOWNER, CAP_FSETID): the daemon does not read every caller's
  // capability sets (docs/security.md, "What is trusted").
  bool privileged() const noexcept { return uid == 0; }
};

Identity identity_of(fuse_req_t req) noexcept;

// While alive, the calling thread's filesystem identity is `who`'s: fsuid,
// fsgid and supplementary groups (read from /proc/<tid>/status; none if
// they cannot be read, see docs/security.md). Restores the daemon's own at
// destruction. ok() is false if the switch failed: then nothing may be done
// on the caller's behalf.
class ActingAs {
public:
  ActingAs(const Daemon& d, const Identity& who) noexcept;
  ~ActingAs();
  ActingAs(const ActingAs&) = delete;
  ActingAs& operator=(const ActingAs&) = delete;
  bool ok() const noexcept { return ok_; }
  const core::Error& error() const noexcept { return err_; }

private:
  const Daemon* d_ = nullptr;
  bool switched_ = false;
  bool ok_ = true;
  core::Error err_ = core::Error::of(0, "");
};

// Whether a switch is needed at all: a daemon that is not root has no more
// rights than its own user, and a privileged caller has all of them.
inline bool acts_for_others(const Daemon& d, const Identity& who) noexcept {
  return d.as_root && !who.privileged();
}

// Runs `f` (one syscall on an object the daemon holds) as `who`.
template <typename F>
auto acting_as(const Daemon& d, const Identity& who, F&& f) noexcept -> decltype(f()) {
  if (!acts_for_others(d, who)) return f();
  ActingAs as(d, who);
  if (!as.ok()) return as.error();
  return f();
}

// Whether `who` may access the inode of `fd` (any descriptor, O_PATH too)
// with `mask` (R_OK, W_OK, X_OK): faccessat(fd, "", mask, AT_EMPTY_PATH |
// AT_EACCESS) as `who`, so that the backing filesystem decides for that
// inode exactly as it would for an open(2) by the caller. EACCES if not.
core::Result<void> may_access(const Daemon& d, const Identity& who, int fd, int mask) noexcept;

// The access mask an open(2) with `flags` needs: R_OK and/or W_OK, and
// W_OK for O_TRUNC.
int access_mask(int flags) noexcept;

}  // namespace snapfs::fuse
