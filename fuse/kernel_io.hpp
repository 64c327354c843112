// fuse/kernel_io: the raw calls that speak to the FUSE kernel module itself
// (the /dev/fuse descriptor, the FUSE superblock). Every other syscall goes
// through core/sys. Same shape: Result<T> carrying the syscall's name.
#pragma once

#include <snapfs/core/result.hpp>

#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>

namespace snapfs::fuse::kernel {

using core::Result;

// Kernel FUSE passthrough (Linux >= 6.9, CAP_SYS_ADMIN): registers `fd` as a
// backing file on the /dev/fuse descriptor `devfd` and returns its id
// (FUSE_DEV_IOC_BACKING_OPEN); the id is released with backing_close.
Result<int> backing_open(int devfd, int fd) noexcept;
Result<void> backing_close(int devfd, int id) noexcept;
// FUSE_NOTIFY_INC_EPOCH on the /dev/fuse descriptor `devfd` (Linux >= 6.16,
// protocol 7.44): every dentry the kernel holds for the mount is looked up
// again at its next use. The kernel only bumps a counter: no lock, no wait.
Result<void> notify_inc_epoch(int devfd) noexcept;
// Whether `path` is (still) the root of a FUSE mount: statfs(2) answers
// with FUSE's magic, or fails with ENOTCONN (a connection aborted while
// mounted). false once the mount is gone.
bool is_fuse_mount(const char* path) noexcept;
// read(2) and writev(2) of the /dev/fuse descriptor, for the custom I/O of
// fuse/passthrough.cpp: -1 and errno on error, as libfuse expects. Not
// noexcept: libfuse cancels its worker threads (pthread_cancel) while they
// block here, and the forced unwind must be able to pass.
ssize_t raw_read(int fd, void* buf, std::size_t len);
ssize_t raw_writev(int fd, const struct iovec* iov, int count);
ssize_t raw_splice(int fd_in, loff_t* off_in, int fd_out, loff_t* off_out, std::size_t len,
                   unsigned flags);

}  // namespace snapfs::fuse::kernel
