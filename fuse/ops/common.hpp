// Helpers shared by the handlers: the lookup of one final component and the
// ownership of what we create.
#pragma once

#include "cache.hpp"
#include "daemon_state.hpp"
#include "handle.hpp"
#include "handoff.hpp"

#include <snapfs/core/result.hpp>

#include <memory>

namespace snapfs::fuse::ops {

// Looks `name` up in `parent` (one component, O_PATH|O_NOFOLLOW, beneath the
// parent: never follows a symlink or ".."), counts a kernel lookup and fills
// `e`. The caller must reply with `e` (or forget the lookup). `caller`: the
// thread that looks up (InodeTable::intern()).
// The live version of backing inode (dev, ino) that thread `caller`'s
// process owns and sees at a name holding `st` (null: at any name), if any
// (docs/design-own-writes.md); `held`: some process holds the inode
// privately. May throw std::bad_alloc.
std::shared_ptr<Version> own_version(Conn& c, dev_t dev, ino_t ino, pid_t caller,
                                     const struct stat* st, bool& held);

// A LOOKUP of a regular file whose inode is `st` by thread `caller`
// (docs/design-own-writes.md, "Routing"): whether some process holds the
// inode privately, and the caller's own version of it, if that is what the
// caller sees there (kept alive in `keep`). May throw std::bad_alloc.
Route route_for(Conn& c, const struct stat& st, pid_t caller, std::shared_ptr<Version>& keep);

core::Result<std::shared_ptr<Node>> lookup_child(Conn& c, const std::shared_ptr<Node>& parent,
                                                 const char* name, fuse_entry_param& e,
                                                 pid_t caller = 0) noexcept;

// Registers the backing inode `fd` (O_PATH, or any fd of a file we just
// created) as `name` in `parent`, counts a kernel lookup and fills `e`.
// `intent`: Intent::open for CREATE (a fresh node, bound, not cached).
core::Result<std::shared_ptr<Node>> intern_fd(Conn& c, const std::shared_ptr<Node>& parent,
                                              const char* name, core::UniqueFd fd,
                                              fuse_entry_param& e,
                                              Intent intent = Intent::lookup,
                                              pid_t caller = 0) noexcept;

// As root, gives the just-created inode `fd` (in directory `dirfd`) to the
// caller: its uid, and its gid unless the directory is setgid. Acts on the
// held descriptor (AT_EMPTY_PATH), never on a name.
core::Result<void> chown_created(Daemon& d, fuse_req_t req, int dirfd, int fd) noexcept;

// The mode to create a file or directory with in the directory `dirfd`,
// from the mode the kernel sent. With POSIX ACLs on (Conn::posix_acl) the
// kernel leaves the caller's umask to the filesystem: B applies the
// directory's default ACL if it has one (the daemon's own umask is 0), and
// otherwise the caller's umask is applied here, as a local filesystem would.
mode_t creation_mode(Conn& c, fuse_req_t req, int dirfd, mode_t mode) noexcept;

// The node's path for a log line, or "ino N" where there is no memory for
// it (logging from a noexcept handler must not throw).
std::string path_for_log(Conn& c, const Node& node) noexcept;

// Records in the change feed (events.hpp) that the caller of `req` made
// `kind` on `name` in `parent` (and, for a rename or link, `to_name` in
// `to_parent`). Called before the reply, so the event is in the feed when
// the caller's syscall returns. A change the daemon has no memory to
// describe is a counted gap.
void note_change(Conn& c, fuse_req_t req, EventKind kind, const Node& parent, const char* name,
                 const Node* to_parent = nullptr, const char* to_name = nullptr) noexcept;

// Likewise for a LINK of `node` (its path) as `to_name` in `to_parent`.
void note_link(Conn& c, fuse_req_t req, const Node& node, const Node& to_parent,
               const char* to_name) noexcept;

// Whether a regular file `name` in `parent` falls under -o shared=GLOB.
bool is_shared_path(Conn& c, const Node& parent, const char* name);

// fi->fh holds a heap-allocated std::shared_ptr<Handle> (made in open/create,
// deleted in release), so a GETATTR that found the version through its node
// keeps it alive while RELEASE runs. The copy is taken between handoff_take
// and handoff_give (handoff.hpp): RELEASE, which deletes the holder, comes
// after the reply to this request.
inline std::shared_ptr<Handle> handle_ref(const fuse_file_info* fi) {
  const auto* holder =
      reinterpret_cast<const std::shared_ptr<Handle>*>(static_cast<uintptr_t>(fi->fh));
  handoff_take(holder);
  std::shared_ptr<Handle> h = *holder;
  handoff_give(holder);
  return h;
}
// Handlers hold their own copy of the shared_ptr (never a bare reference):
// a lock or reference still alive after the reply would outlive the Handle
// and its Version if the application closes the file and RELEASE runs
// meanwhile.

// What GETATTR shows for a node (its open snapshot's view, or B/p).
core::Result<struct stat> node_attr(Conn& c, const Node& node, const fuse_file_info* fi) noexcept;

}  // namespace snapfs::fuse::ops
