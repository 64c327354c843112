// TmpFile: a private, unnamed file (O_TMPFILE) and the clone that fills it.
#pragma once

#include <snapfs/core/result.hpp>
#include <snapfs/core/unique_fd.hpp>

#include <sys/types.h>


namespace snapfs::core {

// How a snapshot got its bytes.
enum class CloneMethod {
  reflink,  // FICLONE: the extents are shared copy-on-write, O(1) in size
  copy,     // copy_file_range: an in-kernel copy, O(n)
};

const char* to_string(CloneMethod m) noexcept;

class TmpFile {
public:
  TmpFile() noexcept = default;

  // Makes an unnamed regular file on the filesystem of directory `dirfd`,
  // readable and writable by its owner only (0600).
  [[nodiscard]] static Result<TmpFile> create_in(int dirfd) noexcept;
  // The same, but in memory (memfd): for read-only snapshots where the file's
  // directory refuses an O_TMPFILE (read-only filesystem, no write permission).
  [[nodiscard]] static Result<TmpFile> create_in_memory() noexcept;

  // Fills this (empty) file with all of `src`: a reflink where the
  // filesystem has them, else an in-kernel copy. fstat() the result for the
  // size: `src` may have changed since the caller last looked.
  Result<CloneMethod> clone_from(int src) noexcept;

  int fd() const noexcept { return fd_.get(); }
  bool valid() const noexcept { return fd_.valid(); }
  // False once publish() gave the inode a name: from then on it is a
  // published file and must not be written through this object.
  bool anonymous() const noexcept { return anonymous_; }
  void mark_named() noexcept { anonymous_ = false; }

private:
  explicit TmpFile(UniqueFd fd) noexcept : fd_(std::move(fd)) {}
  UniqueFd fd_;
  bool anonymous_ = true;
};

// Fills empty `dst` with all of `src`; see TmpFile::clone_from.
Result<CloneMethod> clone_contents(int dst, int src) noexcept;

}  // namespace snapfs::core
