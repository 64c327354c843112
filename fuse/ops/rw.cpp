// READ, WRITE (write_buf), FALLOCATE, LSEEK: all on the description's own
// snapshot fd (or B/p itself for passthrough globs).
// Symlink-safe: no path is resolved here; only descriptors held by the handle.
#include "ops/common.hpp"
#include "ops/ops.hpp"
#include "reply.hpp"
#include "sys/sys.hpp"

#include <fcntl.h>
#include <linux/falloc.h>

#include <mutex>
#include <optional>
#include <shared_mutex>

namespace snapfs::fuse::ops {

namespace sys = core::sys;

void read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) noexcept {
  (void)ino;
  // Owned for the whole handler: once the reply is sent the application
  // may close the file, and RELEASE (another thread) drops fi->fh's reference.
  const std::shared_ptr<Handle> hp = handle_ref(fi);
  Version& h = *hp->v;
  // Held across the reply: fuse_reply_data reads from the snapshot fd, which
  // a concurrent re-clone must not close meanwhile. Only Version::mu is held.
  std::shared_lock lk(h.mu);
  // A reader whose warm snapshot only the kernel holds is always served by
  // the kernel; a READ for it would mean the passthrough reply was refused.
  if (h.fd() < 0) return reply_errno(req, EIO, "read", ino);
  reply_fd_data(req, h.fd(), size, off);
}

namespace {

// A change through a description (WRITE, FALLOCATE): its version locked
// exclusively and made ready for the change (prepare_change). The Handle
// is owned for the whole handler: once the reply is sent the application
// may close the file, and RELEASE (another thread) drops fi->fh's
// reference. Empty, with the error replied, if the change is refused.
struct Change {
  std::shared_ptr<Handle> hp;
  std::unique_lock<std::shared_mutex> lk;
};

std::optional<Change> begin_change(Conn& c, fuse_req_t req, fuse_ino_t ino,
                                   const fuse_file_info* fi, const char* what) noexcept {
  Change ch{handle_ref(fi), {}};
  ch.lk = std::unique_lock(ch.hp->v->mu);
  if (auto r = prepare_change(c, *ch.hp->v); !r) {
    ch.lk.unlock();
    reply_error(req, r.error(), what, ino);
    return std::nullopt;
  }
  return ch;
}

}  // namespace

void write_buf(fuse_req_t req, fuse_ino_t ino, fuse_bufvec* bufv, off_t off,
               fuse_file_info* fi) noexcept {
  Conn& c = conn_of(req);
  auto ch = begin_change(c, req, ino, fi, "write");
  if (!ch) return;
  const std::shared_ptr<Handle>& hp = ch->hp;
  Version& h = *hp->v;
  auto& lk = ch->lk;
  if (h.kind == HandleKind::snapshot && hp->append) {
    // O_APPEND: the kernel's offset comes from an i_size other opens can reset
    // (docs/design-fuse.md, "Kernel facts" 5); the end of *this* snapshot is
    // what counts.
    auto st = sys::fstat(h.snap.fd());
    if (!st) return reply_error(req, st.error(), "write", ino);
    off = st->st_size;
  }
  // A write before the base's end changes published bytes: no rebase then.
  if (off < h.base.size) h.append_only = false;
  const size_t size = fuse_buf_size(bufv);
  fuse_bufvec dst = FUSE_BUFVEC_INIT(size);
  dst.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  dst.buf[0].fd = h.fd();
  dst.buf[0].pos = off;
  const ssize_t n = fuse_buf_copy(&dst, bufv, static_cast<fuse_buf_copy_flags>(0));
  if (n < 0) return reply_errno(req, static_cast<int>(-n), "write", ino);
  if (h.kind == HandleKind::snapshot) h.mark_dirty(fi->lock_owner);
  lk.unlock();
  reply_write(req, static_cast<size_t>(n));
}

void fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
               fuse_file_info* fi) noexcept {
  Conn& c = conn_of(req);
  auto ch = begin_change(c, req, ino, fi, "fallocate");
  if (!ch) return;
  Version& h = *ch->hp->v;
  auto& lk = ch->lk;
  auto r = sys::fallocate(h.fd(), mode, static_cast<std::uint64_t>(off),
                          static_cast<std::uint64_t>(len));
  if (!r) return reply_error(req, r.error(), "fallocate", ino);
  // Pure preallocation changes no byte and no size; anything else does.
  if (h.kind == HandleKind::snapshot && mode != FALLOC_FL_KEEP_SIZE) {
    h.mark_dirty(0);
    h.append_only = false;
  }
  lk.unlock();
  reply_ok(req);
}

void lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info* fi) noexcept {
  // Owned for the whole handler: once the reply is sent the application
  // may close the file, and RELEASE (another thread) drops fi->fh's reference.
  const std::shared_ptr<Handle> hp = handle_ref(fi);
  Version& h = *hp->v;
  std::shared_lock lk(h.mu);
  if (h.fd() < 0 && h.warm) {
    // A warm snapshot only the kernel holds (WarmSnapshot): reported as all
    // data, no holes, which lseek(2) allows.
    lk.unlock();
    const off_t size = h.warm->size;
    if (off < 0 || off >= size) return reply_errno(req, ENXIO, "lseek", ino);
    return reply_lseek(req, whence == SEEK_DATA ? off : size);
  }
  // SEEK_DATA/SEEK_HOLE of the snapshot (the kernel answers SET/CUR/END).
  auto r = sys::lseek(h.fd(), off, whence);
  if (!r) return reply_error(req, r.error(), "lseek", ino);
  lk.unlock();
  reply_lseek(req, static_cast<off_t>(*r));
}

void ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void* arg, fuse_file_info* fi,
           unsigned flags, const void* in_buf, size_t in_bufsz, size_t out_bufsz) noexcept {
  (void)cmd, (void)arg, (void)fi, (void)flags, (void)in_buf, (void)in_bufsz, (void)out_bufsz;
  // No ioctl is passed to B (a snapshot has no inode flags of its own, and
  // forwarding arbitrary ioctls as root is no place to be generous). ENOTTY
  // is what an application expects; libfuse's default would be ENOSYS.
  reply_errno(req, ENOTTY, "ioctl", ino);
}

}  // namespace snapfs::fuse::ops
