// reply.*: the only caller of fuse_reply_*. Every handler ends in exactly one
// of these. errno translation lives here: positive errno to libfuse, never
// ENOSYS (the kernel would stop sending that request type), and anything that
// is not a system errno becomes EIO with an error log line.
#pragma once

#include "fuse_api.hpp"

#include <snapfs/core/result.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cstddef>
#include <string_view>

namespace snapfs::fuse {

void reply_ok(fuse_req_t req) noexcept;
// `err` > 0. `op` names the request for the debug log.
void reply_errno(fuse_req_t req, int err, const char* op, fuse_ino_t ino = 0) noexcept;
void reply_error(fuse_req_t req, const core::Error& e, const char* op, fuse_ino_t ino = 0) noexcept;
void reply_entry(fuse_req_t req, const fuse_entry_param& e) noexcept;
// false: the kernel no longer waits (interrupted); no RELEASE will come.
bool reply_create(fuse_req_t req, const fuse_entry_param& e, const fuse_file_info* fi) noexcept;
void reply_attr(fuse_req_t req, const struct stat& st, double timeout) noexcept;
bool reply_open(fuse_req_t req, const fuse_file_info* fi) noexcept;
void reply_write(fuse_req_t req, std::size_t n) noexcept;
void reply_buf(fuse_req_t req, const char* data, std::size_t size) noexcept;
// Sends `size` bytes of `fd` from `off` (spliced where possible).
void reply_fd_data(fuse_req_t req, int fd, std::size_t size, off_t off) noexcept;
void reply_readlink(fuse_req_t req, const char* target) noexcept;
void reply_statfs(fuse_req_t req, const struct statvfs& st) noexcept;
void reply_xattr_size(fuse_req_t req, std::size_t size) noexcept;
void reply_lseek(fuse_req_t req, off_t off) noexcept;
void reply_lock(fuse_req_t req, const struct flock& lock) noexcept;
void reply_none(fuse_req_t req) noexcept;

// The errno name for logs ("ENOENT"), or the number.
const char* errno_name(int err) noexcept;

}  // namespace snapfs::fuse
