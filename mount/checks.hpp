// Checks of the command's paths before anything is changed
// (docs/semantics.md#bad-input): every failure throws Failure with a one-line
// message and a named exit code.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace snapfs::cli {

// One line of /proc/self/mountinfo (proc(5)), the fields we use.
struct MountEntry {
  std::string mountpoint;  // unescaped (\040 → ' ')
  std::string fstype;      // "fuse.snapfs" for ours
  std::string source;      // the fsname
};

// Parses mountinfo text; malformed lines are skipped.
std::vector<MountEntry> parse_mountinfo(std::string_view text);
// Reads /proc/self/mountinfo; throws Failure(failure) if it cannot.
std::vector<MountEntry> read_mountinfo();
// The topmost mount at exactly `path` (the last one listed there), if any.
std::optional<MountEntry> mount_at(const std::vector<MountEntry>& mounts, std::string_view path);

// True if canonical absolute path `inner` equals `outer` or lies below it,
// comparing whole components ("/a/bc" is not inside "/a/b").
bool path_within(std::string_view inner, std::string_view outer);

inline constexpr std::string_view kSnapfsFsType = "fuse.snapfs";

struct MountPaths {
  std::string backing;     // canonical
  std::string mountpoint;  // canonical
};

// -o cache_dir=`dir` of a mount of B at M (both canonical): an existing
// directory the caller may write, not B or M nor inside either (its files
// would show in the view, or go through it). Its canonical path, or
// Failure(usage).
std::string check_cache_dir(const std::string& dir, const std::string& backing,
                            const std::string& mountpoint);

// All the checks of `snapfs mount B M`, in this order: B exists, is a
// directory and readable (exit_code::bad_backing); M exists and is a
// directory, and a non-root caller may write it (bad_mountpoint); B and M do
// not overlap (overlap); M is not already a mount point (bad_mountpoint);
// allow_other as a user needs user_allow_other in `fuse_conf`
// (not_permitted).
MountPaths check_mount_paths(const std::string& backing, const std::string& mountpoint,
                             bool as_root, bool allow_other,
                             const std::string& fuse_conf = "/etc/fuse.conf");

// True if `fuse_conf` has a `user_allow_other` line (fuse(8)).
bool fuse_conf_allows_other(const std::string& fuse_conf);

// For umount/status/conflicts: the absolute path of the snapfs mount at `m`
// without stat'ing `m` itself when that fails (a dead daemon answers
// ENOTCONN). Throws Failure(not_snapfs) unless the topmost mount there has
// type fuse.snapfs.
std::string locate_snapfs_mount(const std::string& m);

}  // namespace snapfs::cli
