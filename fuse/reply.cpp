// The only caller of fuse_reply_* (docs/code-style.md §1).
#include "reply.hpp"

#include "daemon_state.hpp"

#include <cerrno>
#include <cstring>
#include <system_error>

namespace snapfs::fuse {

namespace {

spdlog::logger& log_of(fuse_req_t req) { return *daemon_of(req).log; }

// A reply call itself failing means the request was interrupted (-ENOENT:
// the kernel no longer waits) or the connection is gone. Nothing to do but
// note it.
// `log` is taken before the reply: libfuse frees `req` when it replies.
void check(spdlog::logger& log, int r, const char* what) noexcept {
  if (r == 0) return;
  try {
    log.debug("{} failed: {}", what, errno_name(-r));
  } catch (...) {
  }
}

}  // namespace

const char* errno_name(int err) noexcept {
  switch (err) {
#define SNAPFS_E(x) \
  case x:           \
    return #x;
    SNAPFS_E(EPERM) SNAPFS_E(ENOENT) SNAPFS_E(EIO) SNAPFS_E(EBADF) SNAPFS_E(ENOMEM)
    SNAPFS_E(EACCES) SNAPFS_E(EBUSY) SNAPFS_E(EEXIST) SNAPFS_E(EXDEV) SNAPFS_E(ENOTDIR)
    SNAPFS_E(EISDIR) SNAPFS_E(EINVAL) SNAPFS_E(ENOSPC) SNAPFS_E(EROFS) SNAPFS_E(EMLINK)
    SNAPFS_E(ERANGE) SNAPFS_E(ENAMETOOLONG) SNAPFS_E(ENOSYS) SNAPFS_E(ENOTEMPTY)
    SNAPFS_E(ELOOP) SNAPFS_E(ENODATA) SNAPFS_E(EOPNOTSUPP) SNAPFS_E(ESTALE)
    SNAPFS_E(EDQUOT) SNAPFS_E(EFBIG) SNAPFS_E(ETXTBSY) SNAPFS_E(EAGAIN) SNAPFS_E(ENXIO)
    SNAPFS_E(ENOTTY) SNAPFS_E(EINTR) SNAPFS_E(ENOTCONN) SNAPFS_E(EOVERFLOW)
#undef SNAPFS_E
    default:
      return "errno";
  }
}

void reply_ok(fuse_req_t req) noexcept {
  spdlog::logger& lg = log_of(req);
  check(lg, fuse_reply_err(req, 0), "reply");
}

void reply_errno(fuse_req_t req, int err, const char* op, fuse_ino_t ino) noexcept {
  if (err < 0) err = -err;
  if (err == 0 || err == ENOSYS) {
    // Never forward ENOSYS: for flush/fsync/rename the kernel would stop
    // sending the request type for the whole mount (include/fuse_lowlevel.h).
    try {
      log_of(req).error("{} ino {}: internal {} replaced by EIO", op, ino,
                        err ? "ENOSYS" : "error 0");
    } catch (...) {
    }
    err = EIO;
  }
  daemon_of(req).stats.count_error(err);
  try {
    log_of(req).debug("{} ino {}: {} ({})", op, ino, errno_name(err), err);
  } catch (...) {
  }
  spdlog::logger& lg = log_of(req);
  check(lg, fuse_reply_err(req, err), "reply_err");
}

void reply_error(fuse_req_t req, const core::Error& e, const char* op, fuse_ino_t ino) noexcept {
  int err = EIO;
  if (e.code().category() == std::system_category() && e.value() > 0) {
    err = e.value();
  } else {
    try {
      log_of(req).error("{} ino {}: {} (EIO)", op, ino, e.message());
    } catch (...) {
    }
  }
  try {
    log_of(req).debug("{} ino {}: {}", op, ino, e.message());
  } catch (...) {
  }
  reply_errno(req, err, op, ino);
}

void reply_entry(fuse_req_t req, const fuse_entry_param& e) noexcept {
  spdlog::logger& lg = log_of(req);
  check(lg, fuse_reply_entry(req, &e), "reply_entry");
}

bool reply_create(fuse_req_t req, const fuse_entry_param& e, const fuse_file_info* fi) noexcept {
  spdlog::logger& lg = log_of(req);
  const int r = fuse_reply_create(req, &e, fi);
  check(lg, r, "reply_create");
  return r == 0;
}

void reply_attr(fuse_req_t req, const struct stat& st, double timeout) noexcept {
  spdlog::logger& lg = log_of(req);
  check(lg, fuse_reply_attr(req, &st, timeout), "reply_attr");
}

bool reply_open(fuse_req_t req, const fuse_file_info* fi) noexcept {
  spdlog::logger& lg = log_of(req);
  const int r = fuse_reply_open(req, fi);
  check(lg, r, "reply_open");
  return r == 0;
}

void reply_write(fuse_req_t req, std::size_t n) noexcept {
  spdlog::logger& lg = log_of(req);
  check(lg, fuse_reply_write(req, n), "reply_write");
}

void reply_buf(fuse_req_t req, const char* data, std::size_t size) noexcept {
  spdlog::logger& lg = log_of(req);
  check(lg, fuse_reply_buf(req, data, size), "reply_buf");
}

void reply_fd_data(fuse_req_t req, int fd, std::size_t size, off_t off) noexcept {
  fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
  buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  buf.buf[0].fd = fd;
  buf.buf[0].pos = off;
  // fuse_reply_data reads from the fd itself (splice where it can, short at
  // EOF) and answers the request with the error if the read fails.
  spdlog::logger& lg = log_of(req);
  check(lg, fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE), "reply_data");
}

void reply_readlink(fuse_req_t req, const char* target) noexcept {
  spdlog::logger& lg = log_of(req);
  check(lg, fuse_reply_readlink(req, target), "reply_readlink");
}

void reply_statfs(fuse_req_t req, const struct statvfs& st) noexcept {
  spdlog::logger& lg = log_of(req);
  check(lg, fuse_reply_statfs(req, &st), "reply_statfs");
}

void reply_xattr_size(fuse_req_t req, std::size_t size) noexcept {
  spdlog::logger& lg = log_of(req);
  check(lg, fuse_reply_xattr(req, size), "reply_xattr");
}

void reply_lseek(fuse_req_t req, off_t off) noexcept {
  spdlog::logger& lg = log_of(req);
  check(lg, fuse_reply_lseek(req, off), "reply_lseek");
}

void reply_lock(fuse_req_t req, const struct flock& lock) noexcept {
  spdlog::logger& lg = log_of(req);
  check(lg, fuse_reply_lock(req, &lock), "reply_lock");
}

void reply_none(fuse_req_t req) noexcept { fuse_reply_none(req); }

}  // namespace snapfs::fuse
