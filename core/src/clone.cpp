// Filling a private snapshot file: reflink where we can, in-kernel copy where not.
#include <snapfs/core/tmpfile.hpp>

#include "sys/sys.hpp"

#include <cerrno>

namespace snapfs::core {

const char* to_string(CloneMethod m) noexcept {
  return m == CloneMethod::reflink ? "reflink" : "copy";
}

Result<TmpFile> TmpFile::create_in(int dirfd) noexcept {
  // ISOLATION: O_TMPFILE makes an inode with no name in any directory, so no
  // other process can open it by path. The only ways in are this descriptor,
  // which never leaves its owner, and /proc/<our pid>/fd/N, which needs
  // ptrace-level access to this process (PTRACE_MODE_READ_FSCREDS) — the
  // stated exception. Mode 0600 keeps it private to its owner even then.
  // It is opened without O_EXCL on purpose: O_TMPFILE|O_EXCL forbids ever
  // linking it, and publish() links it to commit.
  auto fd = sys::openat(dirfd, ".", O_TMPFILE | O_RDWR, 0600);
  // "." says nothing to a reader of the error: leave the path to the caller,
  // who knows which file the snapshot is for (Error::with_path).
  if (!fd) return Error(fd.error().code(), "openat(O_TMPFILE)");
  return TmpFile(std::move(*fd));
}

TmpFile::TmpFile(TmpFile&& o) noexcept
    : fd_(std::move(o.fd_)),
      anonymous_(o.anonymous_),
      staged_dir_(std::move(o.staged_dir_)),
      staged_name_(std::move(o.staged_name_)) {
  o.staged_name_.clear();
}

TmpFile& TmpFile::operator=(TmpFile&& o) noexcept {
  if (this != &o) {
    remove_staged_name();
    fd_ = std::move(o.fd_);
    anonymous_ = o.anonymous_;
    staged_dir_ = std::move(o.staged_dir_);
    staged_name_ = std::move(o.staged_name_);
    o.staged_name_.clear();
  }
  return *this;
}

TmpFile::~TmpFile() { remove_staged_name(); }

void TmpFile::remove_staged_name() noexcept {
  if (staged_name_.empty()) return;
  (void)sys::unlinkat(staged_dir_.get(), staged_name_.c_str(), 0);
  staged_name_.clear();
}

Result<TmpFile> TmpFile::create_in_memory() noexcept {
  // ISOLATION: a memfd has no name in any filesystem either; same argument.
  auto fd = sys::memfd_create("snapfs-snapshot");
  if (!fd) return std::move(fd).error();
  return TmpFile(std::move(*fd));
}

Result<CloneMethod> TmpFile::clone_from(int src) noexcept {
  return clone_contents(fd(), src);
}

namespace {

// errnos of FICLONE that mean "no reflinks between these two files here",
// after which an ordinary copy gives the same result (docs/fs-matrix.md):
//   EOPNOTSUPP  ext4, tmpfs, XFS without reflink=1: no remap_file_range.
//   EXDEV       source and destination on different mounts or filesystems
//               (a memfd snapshot, or overlayfs across layers).
//   EINVAL      the filesystem has the op but not for these files (btrfs
//               nodatacow against datacow, inline extents on some kernels).
//   ENOTTY, ENOSYS  filesystems or kernels without the ioctl at all.
bool clone_unsupported(int err) noexcept {
  return err == EOPNOTSUPP || err == EXDEV || err == EINVAL || err == ENOTTY || err == ENOSYS;
}

// The same list for copy_file_range, after which read/write is the only way.
bool copy_unsupported(int err) noexcept {
  return err == EOPNOTSUPP || err == EXDEV || err == EINVAL || err == ENOSYS;
}

}  // namespace

Result<CloneMethod> clone_contents(int dst, int src) noexcept {
  // ISOLATION: FICLONE makes `dst` share `src`'s extents copy-on-write: a
  // later write to either gets new blocks, so neither ever sees the other's
  // writes. It clones the whole file as of one instant (the filesystem holds
  // both inodes' I/O locks), so a concurrent writer of `src` cannot tear it.
  // `dst` is empty, which avoids the EINVAL/tail problem of cloning onto a
  // longer file.
  auto cloned = sys::ficlone(dst, src);
  if (cloned) return CloneMethod::reflink;
  if (!clone_unsupported(cloned.error().value())) return std::move(cloned).error();

  // ISOLATION: an in-kernel copy into the private file. Unlike FICLONE it is
  // not one instant: a process writing `src` in place meanwhile can make the
  // copy mix old and new bytes, exactly as it would for any reader of `src`.
  // The copy itself is private from the start.
  auto copied = sys::copy_range(dst, src);
  if (copied) return CloneMethod::copy;
  if (!copy_unsupported(copied.error().value())) return std::move(copied).error();
  // copy_file_range may have copied a prefix before failing; start over.
  SNAPFS_TRY(sys::ftruncate(dst, 0));
  auto rw = sys::copy_rw(dst, src);
  if (!rw) return std::move(rw).error();
  return CloneMethod::copy;
}

}  // namespace snapfs::core
