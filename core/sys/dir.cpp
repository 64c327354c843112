// core/sys: DirStream, a directory stream over a descriptor of its own.
#include "sys.hpp"

#include <dirent.h>

#include <cerrno>
#include <utility>

namespace snapfs::core::sys {

DirStream::DirStream(DirStream&& o) noexcept : dir_(std::exchange(o.dir_, nullptr)) {}

DirStream& DirStream::operator=(DirStream&& o) noexcept {
  if (this != &o) {
    if (dir_) ::closedir(dir_);
    dir_ = std::exchange(o.dir_, nullptr);
  }
  return *this;
}

DirStream::~DirStream() {
  if (dir_) ::closedir(dir_);
}

Result<DirStream> DirStream::open(int dirfd) noexcept {
  // "." relative to the O_PATH handle: the directory inode we hold, never a
  // name that could have been swapped.
  auto fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY);
  if (!fd) return std::move(fd).error();
  DIR* d = ::fdopendir(fd->get());
  if (!d) return Error::from_errno("fdopendir");
  (void)fd->release();  // the DIR owns it now
  DirStream s;
  s.dir_ = d;
  return s;
}

int DirStream::fd() const noexcept { return ::dirfd(dir_); }

void DirStream::seek(std::int64_t off) noexcept { ::seekdir(dir_, static_cast<long>(off)); }

Result<struct dirent*> DirStream::next() noexcept {
  errno = 0;
  struct dirent* e = ::readdir(dir_);
  if (!e && errno != 0) return Error::from_errno("readdir");
  return e;
}

}  // namespace snapfs::core::sys
