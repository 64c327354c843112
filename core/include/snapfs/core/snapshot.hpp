// Mmap and MmapMut: the safe mmap of a file through a private snapshot.
//
// The snapshot is an unnamed file (O_TMPFILE) cloned from the original. No
// other process can open it, so the mapped bytes change only through this
// object: later writes, truncation, replacement or deletion of the original
// never show through, and truncation of the original cannot raise SIGBUS.
//
// What can still raise SIGBUS: an I/O error while a page is read in from disk,
// and (MmapMut) a write fault that needs a new block on a full filesystem,
// including the copy-on-write of a reflinked block. Use MmapMut::write_at() to
// get those as ENOSPC/EIO values instead of a signal.
#pragma once

#include <snapfs/core/mapping.hpp>
#include <snapfs/core/publish.hpp>
#include <snapfs/core/result.hpp>
#include <snapfs/core/tmpfile.hpp>
#include <snapfs/core/unique_fd.hpp>

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

namespace snapfs::core {

// A read-only, point-in-time snapshot of a file.
class Mmap {
public:
  // Snapshots `path` (following symlinks, as open(2) does) and maps it.
  // EISDIR for a directory, EINVAL for anything else that is not a regular file.
  [[nodiscard]] static Result<Mmap> open(const std::filesystem::path& path) noexcept;

  const std::byte* data() const noexcept { return map_.data(); }
  std::size_t size() const noexcept { return map_.size(); }
  bool empty() const noexcept { return map_.size() == 0; }
  std::span<const std::byte> bytes() const noexcept { return map_.bytes(); }
  std::string_view chars() const noexcept {
    return {reinterpret_cast<const char*>(data()), size()};
  }
  CloneMethod clone_method() const noexcept { return method_; }

private:
  static Result<Mmap> open_impl(const std::filesystem::path& path) noexcept;
  Mmap(Mapping m, CloneMethod method) noexcept : map_(std::move(m)), method_(method) {}
  // The mapping alone keeps the private inode alive; no descriptor is kept.
  Mapping map_;
  CloneMethod method_ = CloneMethod::reflink;
};

struct MmapMutOptions {
  Durability durability = Durability::atomic;
};

// A private, writable snapshot that commit() publishes atomically.
class MmapMut {
public:
  // Snapshots an existing file. Needs write permission on it (EACCES as
  // open(O_RDWR) would give) and an O_TMPFILE in its directory. A symlink is
  // resolved: commits go to the file it points to, the link stays a link.
  [[nodiscard]] static Result<MmapMut> open(const std::filesystem::path& path,
                                            MmapMutOptions opts = {}) noexcept;
  // Starts an empty snapshot for `path`. Nothing is created or truncated
  // until the first commit; a file that appears meanwhile is replaced then.
  [[nodiscard]] static Result<MmapMut> create(const std::filesystem::path& path,
                                              MmapMutOptions opts = {}) noexcept;

  MmapMut(MmapMut&&) noexcept = default;
  MmapMut& operator=(MmapMut&&) noexcept = default;

  std::byte* data() noexcept { return map_.data(); }
  const std::byte* data() const noexcept { return map_.data(); }
  std::size_t size() const noexcept { return map_.size(); }
  bool empty() const noexcept { return map_.size() == 0; }
  std::span<std::byte> bytes() noexcept { return map_.bytes(); }
  std::span<const std::byte> bytes() const noexcept { return map_.bytes(); }
  std::string_view chars() const noexcept {
    return {reinterpret_cast<const char*>(data()), size()};
  }

  // Grows (zero fill) or shrinks the snapshot. Every pointer and span taken
  // before the call is dead after it: the mapping may move.
  Result<void> resize(std::size_t new_len) noexcept;

  // Copies `bytes` into the snapshot at `off` through write(2), growing it if
  // needed, so that a full filesystem is an ENOSPC value, not a SIGBUS. Like
  // resize(), it may move the mapping.
  Result<void> write_at(std::size_t off, std::span<const std::byte> bytes) noexcept;

  // Publishes the snapshot's current bytes to the path atomically, keeping
  // the published file's mode, owner, group and xattrs. The mapping stays
  // usable and private: later writes publish nothing until the next commit.
  // O(1) with reflinks, O(n) elsewhere (the published copy must not share
  // pages with the mapping).
  Result<void> commit() noexcept;
  // Publishes and closes: the snapshot itself becomes the file, so snapfs
  // copies nothing. (The filesystem may still do work in the size of the
  // file: ext4 writes back the data at a rename over a file, auto_da_alloc,
  // and tmpfs frees the replaced file's pages; see docs/performance.md.) The object is empty afterwards, whether or not it succeeded.
  Result<void> commit_and_close() noexcept;
  // Publishes the snapshot under `newpath` (same filesystem) and closes.
  Result<void> link(const std::filesystem::path& newpath) noexcept;

  CloneMethod clone_method() const noexcept { return method_; }
  const std::string& name() const noexcept { return name_; }

private:
  MmapMut() noexcept = default;
  static Result<MmapMut> open_impl(const std::filesystem::path& path, MmapMutOptions opts) noexcept;
  static Result<MmapMut> create_impl(const std::filesystem::path& path,
                                     MmapMutOptions opts) noexcept;
  // commit_and_close() and link(): publishes the snapshot itself as `name`
  // in `dirfd` and empties the object. On failure it stays unnamed and ours.
  Result<void> publish_and_close(int dirfd, const char* name) noexcept;

  DirFd dir_;          // the parent directory of the target, O_PATH
  std::string name_;   // the target's final component
  TmpFile private_;    // the snapshot; never named while mapped
  Mapping map_;
  MmapMutOptions opts_;
  CloneMethod method_ = CloneMethod::reflink;
};

}  // namespace snapfs::core
