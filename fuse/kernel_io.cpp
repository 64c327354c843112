// The raw calls to the FUSE kernel module (see kernel_io.hpp); the layouts
// they send are in kernel_abi.hpp.
#include "kernel_io.hpp"

#include "kernel_abi.hpp"
#include "sys/sys.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace snapfs::fuse::kernel {

using core::Error;
using core::sys::ok_or;
using core::sys::retry;

Result<void> notify_inc_epoch(int devfd) noexcept {
  const abi::OutHeader h{sizeof h, abi::kNotifyIncEpoch, 0};
  const ssize_t n = retry([&] { return ::write(devfd, &h, sizeof h); });
  if (n < 0) return Error::from_errno("write(FUSE_NOTIFY_INC_EPOCH)");
  if (static_cast<std::size_t>(n) != sizeof h) return Error::of(EIO, "write(FUSE_NOTIFY_INC_EPOCH)");
  return {};
}

Result<int> backing_open(int devfd, int fd) noexcept {
  abi::BackingMap map{};
  map.fd = fd;
  const int id = ::ioctl(devfd, abi::kDevIocBackingOpen, &map);
  if (id < 0) return Error::from_errno("ioctl(FUSE_DEV_IOC_BACKING_OPEN)");
  return id;
}

Result<void> backing_close(int devfd, int id) noexcept {
  auto bid = static_cast<std::uint32_t>(id);
  return ok_or(::ioctl(devfd, abi::kDevIocBackingClose, &bid), "ioctl(FUSE_DEV_IOC_BACKING_CLOSE)");
}

bool is_fuse_mount(const char* path) noexcept {
  constexpr long kFuseSuperMagic = 0x65735546;
  struct statfs sfs {};
  if (::statfs(path, &sfs) == -1) return errno == ENOTCONN;
  return sfs.f_type == kFuseSuperMagic;
}

ssize_t raw_read(int fd, void* buf, std::size_t len) { return ::read(fd, buf, len); }

ssize_t raw_writev(int fd, const struct iovec* iov, int count) {
  return ::writev(fd, iov, count);
}

ssize_t raw_splice(int fd_in, loff_t* off_in, int fd_out, loff_t* off_out, std::size_t len,
                   unsigned flags) {
  return ::splice(fd_in, off_in, fd_out, off_out, len, flags);
}

}  // namespace snapfs::fuse::kernel
