// UniqueFd owns one file descriptor; DirFd owns one directory descriptor
// against which every path operation is an *at() call.
#pragma once

#include <utility>

namespace snapfs::core {

class UniqueFd {
public:
  UniqueFd() noexcept = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
  // Closes the current descriptor (never retried; EBADF aborts: it means two
  // owners) and takes `fd`.
  void reset(int fd = -1) noexcept;

private:
  int fd_ = -1;
};

// A directory, opened O_PATH|O_DIRECTORY (or O_RDONLY|O_DIRECTORY where
// fsync/readdir is needed). Having a distinct type keeps "a directory to
// resolve names against" apart from "a file with content" in signatures.
class DirFd {
public:
  DirFd() noexcept = default;
  explicit DirFd(UniqueFd fd) noexcept : fd_(std::move(fd)) {}
  int get() const noexcept { return fd_.get(); }
  bool valid() const noexcept { return fd_.valid(); }

private:
  UniqueFd fd_;
};

}  // namespace snapfs::core
