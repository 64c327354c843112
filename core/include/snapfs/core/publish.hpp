// publish(): the atomic commit of a private file to a name.
// The protocol, and what a crash at each step leaves, is docs/commit-protocol.md.
#pragma once

#include <snapfs/core/result.hpp>
#include <snapfs/core/tmpfile.hpp>

#include <sys/stat.h>

namespace snapfs::core {

// How much a successful publish survives (docs/semantics.md#crashes-and-power-loss).
enum class Durability {
  fast,    // no sync: atomic against process crashes only
  atomic,  // fdatasync the data before the rename: after a power loss the
           // name holds the old or the new content, never a mix or zeros
  full,    // also fsync the directory: a publish that returned survives power loss
};

struct PublishOptions {
  Durability durability = Durability::atomic;
  // Fail with EEXIST instead of replacing an existing file.
  bool no_replace = false;
  // Metadata for the new file when there is no file to replace:
  // 0666 & ~umask, owned by the caller.
  mode_t create_mode = 0666;
  // Where the temporary name lives between link and rename: a directory on
  // the target's filesystem that holds nothing else, so that whoever
  // recovers after a crash finds every leftover there instead of walking a
  // tree (the daemon uses B/.snapfs/staging). -1: the target's directory.
  // If it is on another filesystem (EXDEV), the target's directory is used.
  int staging_dir = -1;
  // How the temporary name starts (at most 32 bytes; 16 random hex digits
  // and ".tmp" follow): a daemon puts its own id here so that another
  // daemon's recovery can tell an in-flight commit of a live daemon from a
  // leftover.
  std::string_view temp_prefix = ".snapfs-";
  // What a write(2) to the replaced file would have dropped (the kernel's
  // file_remove_privs()): new content written by someone without
  // CAP_FSETID loses setuid, and setgid where the group may execute it
  // (`kill_setid`); new content, by anyone, loses its file capabilities
  // (security.capability, `kill_caps`). Otherwise a setuid-root program
  // that another user may write would keep running as root with their code.
  bool kill_setid = false;
  bool kill_caps = false;
};

// Gives `file` the metadata of the file it replaces (mode, owner, group,
// extended attributes including POSIX ACLs), then atomically makes it the
// file `name` in `dirfd`. On success `file` is no longer anonymous. On failure
// `dirfd` is unchanged and no temporary name is left.
Result<void> publish(TmpFile& file, int dirfd, const char* name,
                     const PublishOptions& opts = {}) noexcept;

// Replaces the contents of the existing regular file `target` (an fd open
// for writing) with those of `file`, keeping the target's inode: its hard
// links, owner, mode and xattrs. For a file with several names, which a
// rename would split (docs/semantics.md#hard-links). Only where it is one
// atomic step for readers: a whole-file FICLONE onto a target no longer than
// `file` (XFS, btrfs). Otherwise it fails with EOPNOTSUPP and changes nothing,
// and the caller publishes by rename instead: a shrink would need a truncate
// and a clone, and a reader could see the state between them. A power loss
// during the clone of a file with many extents can leave it part old, part new
// (the filesystem remaps extent by extent); a process crash cannot.
// `opts`: its durability and privilege dropping (kill_setid, kill_caps)
// apply to `target`; the rest is unused.
Result<void> publish_in_place(TmpFile& file, int target,
                              Durability durability = Durability::atomic) noexcept;
Result<void> publish_in_place(TmpFile& file, int target, const PublishOptions& opts) noexcept;

// Copies mode, owner, group and extended attributes of `from` (any fd,
// O_PATH included) onto `to` (an fd open for writing). With `opts`, drops
// what opts.kill_setid and opts.kill_caps say on the way.
Result<void> copy_metadata(int from, int to) noexcept;
Result<void> copy_metadata(int from, int to, const PublishOptions& opts) noexcept;

}  // namespace snapfs::core
