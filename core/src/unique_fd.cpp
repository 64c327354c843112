#include <snapfs/core/unique_fd.hpp>

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace snapfs::core {

void UniqueFd::reset(int fd) noexcept {
  const int old = std::exchange(fd_, fd);
  if (old < 0) return;
  // close(2) is never retried: on Linux the descriptor is gone even when it
  // reports EINTR, and a retry could close a descriptor another thread just
  // received. EBADF means two owners of one descriptor: an ownership bug that
  // would otherwise close someone else's file later, so stop here.
  if (::close(old) == -1 && errno == EBADF) {
    std::fprintf(stderr, "snapfs: close(%d): EBADF: descriptor owned twice\n", old);
    std::abort();
  }
}

}  // namespace snapfs::core
