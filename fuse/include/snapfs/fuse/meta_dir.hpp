// The check of B/.snapfs that the snapfs command runs before it starts a
// daemon (mount/mount_cmd.cpp), so that a refused mount says why at once;
// the daemon checks again when it makes the directory (fuse/conflicts.cpp
// prepare_meta_dir()), which is the check that counts.
#pragma once

#include <string>

namespace snapfs::fuse {

// Empty if B/.snapfs and its staging/ and conflicts/ are absent or are real
// directories owned by this process's effective uid with mode 0700;
// otherwise one line naming the path, what is wrong and how to fix it
// ("B/.snapfs is owned by uid 1000, not by the daemon's user (uid 0); ...").
// Creates and changes nothing. May not throw.
std::string check_meta_dir(const std::string& backing) noexcept;

}  // namespace snapfs::fuse
