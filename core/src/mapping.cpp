#include <snapfs/core/mapping.hpp>

#include "sys/sys.hpp"

#include <sys/mman.h>

namespace snapfs::core {
namespace {
int prot_for(bool writable) noexcept { return writable ? PROT_READ | PROT_WRITE : PROT_READ; }
}  // namespace

Result<Mapping> Mapping::map(int fd, std::size_t len, bool writable) noexcept {
  Mapping m;
  if (len == 0) return m;
  // ISOLATION: MAP_SHARED of a private snapshot inode. "Shared" is with the
  // snapshot file only, which has no name and whose descriptor never leaves
  // its owner, so the only writer of these pages is whoever holds this
  // Mapping. (MAP_PRIVATE would not do: its untouched pages still follow
  // later writes to the file.)
  auto p = sys::mmap(len, prot_for(writable), MAP_SHARED, fd);
  if (!p) return std::move(p).error();
  m.addr_ = *p;
  m.len_ = len;
  return m;
}

Result<void> Mapping::remap(int fd, std::size_t new_len, bool writable) noexcept {
  if (new_len == len_) return {};
  if (new_len == 0) {
    reset();
    return {};
  }
  if (len_ == 0) {
    auto m = map(fd, new_len, writable);
    if (!m) return std::move(m).error();
    *this = std::move(*m);
    return {};
  }
  auto p = sys::mremap(addr_, len_, new_len);
  if (!p) return std::move(p).error();
  addr_ = *p;
  len_ = new_len;
  return {};
}

Result<void> Mapping::sync() noexcept {
  if (len_ == 0) return {};
  return sys::msync(addr_, len_);
}

void Mapping::reset() noexcept {
  if (len_ != 0) sys::munmap(addr_, len_);
  addr_ = nullptr;
  len_ = 0;
}

}  // namespace snapfs::core
