// TmpFile: a private, unnamed file (O_TMPFILE) and the clone that fills it.
#pragma once

#include <snapfs/core/result.hpp>
#include <snapfs/core/unique_fd.hpp>

#include <sys/types.h>

#include <string>
#include <string_view>


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
  // For a filesystem without O_TMPFILE (FUSE and network filesystems): a
  // regular file made under a new random name, `<prefix><16 hex digits>.tmp`
  // (O_EXCL, 0600), in `dirfd`, which should be a directory that only its
  // owner may enter and that nothing else lists (the daemon's
  // B/.snapfs/staging): the name exists while this object holds it.
  // publish() gives the file its final name by renaming it; otherwise the
  // name is removed when this object goes. After a crash it stays: whoever
  // made `prefix` unique removes it (the daemon's recovery does).
  [[nodiscard]] static Result<TmpFile> create_named_in(int dirfd, std::string_view prefix) noexcept;

  TmpFile(TmpFile&& o) noexcept;
  TmpFile& operator=(TmpFile&& o) noexcept;
  TmpFile(const TmpFile&) = delete;
  TmpFile& operator=(const TmpFile&) = delete;
  ~TmpFile();

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
  // Made by create_named_in() and not published yet: the file has the
  // temporary name staged_name() in staged_dir().
  bool staged() const noexcept { return !staged_name_.empty(); }
  int staged_dir() const noexcept { return staged_dir_.get(); }
  const std::string& staged_name() const noexcept { return staged_name_; }
  // publish() moved the temporary name away: nothing to remove any more.
  void forget_staged_name() noexcept { staged_name_.clear(); }

private:
  explicit TmpFile(UniqueFd fd) noexcept : fd_(std::move(fd)) {}
  void remove_staged_name() noexcept;
  UniqueFd fd_;
  bool anonymous_ = true;
  UniqueFd staged_dir_;  // O_PATH, while staged()
  std::string staged_name_;
};

// Fills empty `dst` with all of `src`; see TmpFile::clone_from.
Result<CloneMethod> clone_contents(int dst, int src) noexcept;

}  // namespace snapfs::core
