// Small file helpers for tests. They use plain read(2)/write(2) (never mmap,
// so checking a file cannot raise SIGBUS) and throw std::system_error on
// failure, which GoogleTest reports as a failed test.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace snapfs::test {

namespace fs = std::filesystem;

// Creates or truncates `path` and writes `content`; then sets `mode` exactly
// (fchmod, so the umask does not matter).
void write_file(const fs::path& path, std::string_view content, mode_t mode = 0644);
// Writes `content` at `off` without truncating (an in-place update).
void pwrite_file(const fs::path& path, std::uint64_t off, std::string_view content);
// The whole file, read with read(2).
std::string read_file(const fs::path& path);
// lstat(2).
struct stat lstat_of(const fs::path& path);
struct stat stat_of(const fs::path& path);
// The names in a directory, sorted, without "." and "..".
std::vector<std::string> list_dir(const fs::path& dir);
// Every extended attribute of `path` (not following a symlink): name -> value.
std::map<std::string, std::string> xattrs_of(const fs::path& path);
// Everything below `dir`, symlinks not followed: relative path -> mode,
// owner, size (and with `with_mtime` the mtime) and a regular file's
// content. Two equal digests: a command or mount changed nothing there.
std::map<std::string, std::string> tree_digest(const fs::path& dir, bool with_mtime = false);

// A POSIX ACL entry and its on-disk xattr encoding (system.posix_acl_access):
// the format of linux/posix_acl_xattr.h, version 2, little-endian.
struct AclEntry {
  std::uint16_t tag;   // ACL_USER_OBJ 0x01, ACL_USER 0x02, ACL_GROUP_OBJ 0x04,
                       // ACL_GROUP 0x08, ACL_MASK 0x10, ACL_OTHER 0x20
  std::uint16_t perm;  // rwx bits
  std::uint32_t id = 0xffffffffu;
};
std::string acl_xattr(const std::vector<AclEntry>& entries);

// Fills the filesystem that holds `dir` by creating `dir`/name and growing it
// with fallocate (then write) until ENOSPC, so that no data block is left.
// Returns the number of bytes it took. Fast on every filesystem: fallocate
// does not write data, so a sparse loop image stays sparse.
std::uint64_t fill_filesystem(const fs::path& dir, std::string_view name = "filler");

// Views of text as bytes and back.
inline std::span<const std::byte> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}
inline std::string to_string(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// Deterministic content: `n` bytes that depend on `seed` and the offset, so
// that a misplaced block or a stale tail shows up in a comparison.
std::string pattern(std::size_t n, std::uint32_t seed);

// FNV-1a, 64 bit: a checksum that tells two test contents apart, with no
// dependency.
std::uint64_t fnv1a(std::string_view s);

// "<name> (<strerror>)" for an errno value, e.g. "ENOSPC (No space left on device)".
std::string errno_name(int err);

}  // namespace snapfs::test
