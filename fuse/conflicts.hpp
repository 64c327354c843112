// The hidden directory B/.snapfs (docs/design-conflicts.md): made at mount,
// recovered before the first request, and the home of conflicts that lost.
//
//   B/.snapfs/staging/      temporary names of commits in flight
//   B/.snapfs/conflicts/ID       a losing commit's content (0600)
//   B/.snapfs/conflicts/ID.json  its record
#pragma once

#include "daemon_state.hpp"

#include <snapfs/core/result.hpp>
#include <snapfs/fuse/printable.hpp>
#include <snapfs/core/tmpfile.hpp>

#include <sys/types.h>

#include <cstddef>
#include <string>

namespace snapfs::fuse {

// Makes B/.snapfs/{staging,conflicts} (mode 0700 whatever the umask;
// existing ones are reused if they are ours) and recovers from a crash:
// every regular file in staging/ is a commit that died between link and
// rename (its target still holds the old complete version) and is removed;
// a record in conflicts/ without its content is a conflict whose close()
// never returned and is removed. Logged at info. Sets d.staging_dir and
// d.conflicts_dir; if B refuses (read-only), they stay invalid and the
// reason is logged as a warning.
// Returns false, after logging one error line that names the path, what is
// wrong and the fix, if an existing .snapfs, staging or conflicts is not a
// real directory owned by the daemon's effective uid with mode exactly 0700:
// then the mount must not go on (serve() returns 1).
bool prepare_meta_dir(Daemon& d, int rootfd) noexcept;

// Who lost, for the record.
struct ConflictWho {
  std::string path;  // relative to M
  pid_t pid = 0;
  uid_t uid = 0;
};

// Keeps the losing snapshot `snap` in conflicts/: the record first (so a
// crash leaves a record without content, which recovery removes), then the
// content, linked in O(1) where `snap` is on B's filesystem and copied
// otherwise. On success `snap` may be named (no longer anonymous); returns
// the absolute path of the kept content.
core::Result<std::string> keep_conflict(Daemon& d, core::TmpFile& snap,
                                        const ConflictWho& who) noexcept;

// The records `viewer` may see, oldest first, as a JSON array
// (user.snapfs.conflicts): the newest that fit in 64 KiB, the most an xattr
// value can hold. `viewer` is the uid of the process asking (the request's
// fuse_ctx uid): 0 sees every record, anyone else only the records of their
// own losing commits (the record's "uid"), since a record names a path and
// where another user's content is kept. May throw std::bad_alloc.
std::string conflicts_json(const Daemon& d, uid_t viewer);
// How many records `viewer` may see (the status field "conflicts").
std::size_t conflict_count(const Daemon& d, uid_t viewer) noexcept;
// Every record (viewer 0). Kept for callers not yet passing the viewer.
std::string conflicts_json(const Daemon& d);
std::size_t conflict_count(const Daemon& d) noexcept;


}  // namespace snapfs::fuse
