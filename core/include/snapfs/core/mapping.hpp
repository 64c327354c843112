// Mapping owns one mmap(2) region and unmaps it in its destructor.
#pragma once

#include <snapfs/core/result.hpp>

#include <cstddef>
#include <span>
#include <utility>

namespace snapfs::core {

class Mapping {
public:
  Mapping() noexcept = default;
  Mapping(Mapping&& o) noexcept
      : addr_(std::exchange(o.addr_, nullptr)), len_(std::exchange(o.len_, 0)) {}
  Mapping& operator=(Mapping&& o) noexcept {
    if (this != &o) {
      reset();
      addr_ = std::exchange(o.addr_, nullptr);
      len_ = std::exchange(o.len_, 0);
    }
    return *this;
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() { reset(); }

  // Maps `len` bytes of `fd` from offset 0 with MAP_SHARED. A zero length
  // gives an empty Mapping (mmap refuses len 0). The caller's comment says why
  // nobody else can change what is mapped.
  [[nodiscard]] static Result<Mapping> map(int fd, std::size_t len, bool writable) noexcept;

  // Changes the length to `new_len` (mremap, mmap or munmap as needed).
  // Every pointer and span taken before the call is dead after it: the region
  // may move.
  Result<void> remap(int fd, std::size_t new_len, bool writable) noexcept;

  // msync(MS_SYNC): waits until dirty pages of the region are written back.
  Result<void> sync() noexcept;

  std::byte* data() noexcept { return static_cast<std::byte*>(addr_); }
  const std::byte* data() const noexcept { return static_cast<const std::byte*>(addr_); }
  std::size_t size() const noexcept { return len_; }
  std::span<std::byte> bytes() noexcept { return {data(), len_}; }
  std::span<const std::byte> bytes() const noexcept { return {data(), len_}; }

  void reset() noexcept;

private:
  void* addr_ = nullptr;  // null iff len_ == 0
  std::size_t len_ = 0;
};

}  // namespace snapfs::core
