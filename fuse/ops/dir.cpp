// OPENDIR, READDIR, RELEASEDIR, FSYNCDIR, STATFS, ACCESS.
// Symlink-safe: the directory stream is opened as "." relative to the node's
// held O_PATH handle; STATFS/ACCESS act on the node's handle (AT_EMPTY_PATH;
// an idle file node's is opened for the request, cache.hpp).
#include "ops/common.hpp"
#include "ops/ops.hpp"
#include "reply.hpp"
#include "sys/sys.hpp"

#include <fcntl.h>

#include <mutex>
#include <new>
#include <vector>

namespace snapfs::fuse::ops {

namespace sys = core::sys;

namespace {

struct DirHandle {
  std::mutex mu;
  sys::DirStream stream;
  std::int64_t offset = 0;
  struct dirent* pending = nullptr;  // read but did not fit in the last reply
};

// The kernel brings an OPENDIR's handle back after its reply (handoff.hpp);
// requests on one handle take its mutex.
DirHandle& dir_of(const fuse_file_info* fi) {
  auto* dh = reinterpret_cast<DirHandle*>(static_cast<uintptr_t>(fi->fh));
  handoff_take(dh);
  return *dh;
}

}  // namespace

void opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept {
  Conn& c = conn_of(req);
  Daemon& d = c.d;
  auto node = c.table.get(ino);
  const FdRef fd = node->fd();
  auto s = sys::DirStream::open(fd->get());
  if (!s) return reply_error(req, s.error(), "opendir", ino);
  auto* dh = new (std::nothrow) DirHandle;
  if (!dh) return reply_errno(req, ENOMEM, "opendir", ino);
  dh->stream = std::move(*s);
  fi->fh = reinterpret_cast<uintptr_t>(dh);
  // With caching on, the kernel keeps what READDIR returned across opens
  // and serves the next listing itself (git status lists every directory).
  // It resets that cache at an opendir/rewind when the directory's inode
  // version (bumped by every entry change through M) or its mtime changed;
  // the mtime is refreshed first (auto_inval_data), from attributes that a
  // commit through M invalidates (after_commit: its rename in B changed the
  // directory) and that expire after the directory timeout, so a change
  // made directly in B shows within that time, as for names.
  // cache_timeout=0: every listing asks the daemon, as before.
  const bool cache = d.cfg.cache_timeout > 0;
  fi->cache_readdir = cache ? 1 : 0;
  fi->keep_cache = cache ? 1 : 0;
  // Freed at RELEASEDIR, or by free_dir_handles() if the connection ends
  // first (a run's, while its processes still had directories open).
  try {
    c.live_dirs.add(dh);
  } catch (const std::bad_alloc&) {
    delete dh;
    return reply_errno(req, ENOMEM, "opendir", ino);
  }
  handoff_give(dh);
  if (!reply_open(req, fi)) {
    c.live_dirs.remove(dh);
    delete dh;
  }
}

void readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) noexcept {
  daemon_of(req).stats.readdirs.fetch_add(1, std::memory_order_relaxed);
  DirHandle& dh = dir_of(fi);
  std::vector<char> buf;
  try {
    buf.resize(size);
  } catch (const std::bad_alloc&) {
    return reply_errno(req, ENOMEM, "readdir", ino);
  }
  std::unique_lock lk(dh.mu);
  if (off != dh.offset) {
    dh.stream.seek(off);
    dh.pending = nullptr;
    dh.offset = off;
  }
  char* p = buf.data();
  size_t rem = size;
  for (;;) {
    struct dirent* e = dh.pending;
    if (!e) {
      auto n = dh.stream.next();
      if (!n) {
        if (rem < size) break;  // send what we have; the error comes next time
        lk.unlock();
        return reply_error(req, n.error(), "readdir", ino);
      }
      e = *n;
    }
    if (!e) break;
    if (ino == FUSE_ROOT_ID && is_meta_name(ino, e->d_name)) {
      // B/.snapfs is not part of the view; the next entry's d_off resumes.
      dh.offset = e->d_off;
      dh.pending = nullptr;
      continue;
    }
    struct stat st {};
    st.st_ino = e->d_ino;
    st.st_mode = static_cast<mode_t>(DTTOIF(e->d_type));
    const size_t need = fuse_add_direntry(req, p, rem, e->d_name, &st, e->d_off);
    if (need > rem) {
      dh.pending = e;
      break;
    }
    p += need;
    rem -= need;
    dh.pending = nullptr;
    dh.offset = e->d_off;
  }
  // Unlock before the reply: once it is sent, closedir() and RELEASEDIR may
  // free `dh` on another thread.
  lk.unlock();
  handoff_give(&dh);
  reply_buf(req, buf.data(), size - rem);
}

void releasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept {
  (void)ino;
  DirHandle* dh = &dir_of(fi);
  conn_of(req).live_dirs.remove(dh);
  delete dh;
  reply_ok(req);
}

void free_dir_handles(Conn& c) noexcept {
  for (void* dh : c.live_dirs.take()) delete static_cast<DirHandle*>(dh);
}

void fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) noexcept {
  DirHandle& dh = dir_of(fi);
  const int fd = dh.stream.fd();
  handoff_give(&dh);
  auto r = datasync ? sys::fdatasync(fd) : sys::fsync(fd);
  if (!r) return reply_error(req, r.error(), "fsyncdir", ino);
  reply_ok(req);
}

void statfs(fuse_req_t req, fuse_ino_t ino) noexcept {
  Conn& c = conn_of(req);
  auto node = c.table.get(ino ? ino : FUSE_ROOT_ID);
  auto fdr = node_fd(c, *node);
  if (!fdr) return reply_error(req, fdr.error(), "statfs", ino);
  const FdRef fd = std::move(*fdr);
  auto st = sys::fstatvfs(fd->get());
  if (!st) return reply_error(req, st.error(), "statfs", ino);
  reply_statfs(req, *st);
}

void access(fuse_req_t req, fuse_ino_t ino, int mask) noexcept {
  // Only sent without default_permissions, i.e. when the daemon runs as the
  // mounting user, whose rights are then the ones that count.
  Conn& c = conn_of(req);
  auto node = c.table.get(ino);
  auto fdr = node_fd(c, *node);
  if (!fdr) return reply_error(req, fdr.error(), "access", ino);
  const FdRef fd = std::move(*fdr);
  auto r = sys::faccessat(fd->get(), "", mask, AT_EMPTY_PATH | AT_EACCESS);
  if (!r) return reply_error(req, r.error(), "access", ino);
  reply_ok(req);
}

}  // namespace snapfs::fuse::ops
