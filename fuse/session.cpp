// serve(): fuse_session_new / mount / multithreaded loop / unmount, the INIT
// negotiation, and libfuse's log messages routed into spdlog.
#include "conflicts.hpp"
#include "peers.hpp"
#include "daemon_state.hpp"
#include "handle.hpp"
#include "lingering.hpp"
#include "ops/ops.hpp"
#include "sys/sys.hpp"
#include "kernel_io.hpp"
#include "run.hpp"
#include "session.hpp"

#include <snapfs/core/tmpfile.hpp>
#include <snapfs/fuse/daemon.hpp>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace snapfs::fuse {

namespace sys = core::sys;

namespace {

// libfuse's log callback has no user data; one daemon per process.
std::shared_ptr<spdlog::logger> g_fuse_log;

void log_from_libfuse(enum fuse_log_level level, const char* fmt, va_list ap) {
  char buf[2048];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
  std::vsnprintf(buf, sizeof buf, fmt, ap);
#pragma GCC diagnostic pop
  std::size_t n = std::strlen(buf);
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = '\0';
  auto log = g_fuse_log ? g_fuse_log : spdlog::default_logger();
  spdlog::level::level_enum l = spdlog::level::debug;
  switch (level) {
    case FUSE_LOG_EMERG:
    case FUSE_LOG_ALERT:
    case FUSE_LOG_CRIT: l = spdlog::level::critical; break;
    case FUSE_LOG_ERR: l = spdlog::level::err; break;
    case FUSE_LOG_WARNING: l = spdlog::level::warn; break;
    case FUSE_LOG_NOTICE:
    case FUSE_LOG_INFO: l = spdlog::level::info; break;
    case FUSE_LOG_DEBUG: l = spdlog::level::debug; break;
  }
  try {
    log->log(l, "libfuse: {}", buf);
  } catch (...) {
  }
}

void init(void* userdata, fuse_conn_info* conn) {
  auto& c = *static_cast<Conn*>(userdata);
  Daemon& d = c.d;
  // 255 pages: WRITEs then arrive by splice; a larger max_write kills the mount
  // with libfuse 3.14's 1 MiB + 4 KiB buffer (docs/design-fuse.md,
  // "Kernel facts" 6).
  if (conn->max_write > 1044480 || conn->max_write == 0) conn->max_write = 1044480;
  // The writeback cache would let the kernel merge writes of different
  // opens in one page cache; it also rules out kernel passthrough later.
  conn->want &= ~static_cast<unsigned>(FUSE_CAP_WRITEBACK_CACHE);
  // O_TRUNC must arrive in OPEN, not as a path SETATTR (docs/design-fuse.md,
  // "Kernel facts" 4).
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  if (conn->capable & FUSE_CAP_SPLICE_WRITE) conn->want |= FUSE_CAP_SPLICE_WRITE;
  if (conn->capable & FUSE_CAP_SPLICE_MOVE) conn->want |= FUSE_CAP_SPLICE_MOVE;
  // Requests received by splice would bypass the custom I/O layer that
  // kernel passthrough needs (passthrough.hpp): then they are read().
  if ((conn->capable & FUSE_CAP_SPLICE_READ) && !c.kpt.installed())
    conn->want |= FUSE_CAP_SPLICE_READ;
  else
    conn->want &= ~static_cast<unsigned>(FUSE_CAP_SPLICE_READ);
  if (conn->capable & FUSE_CAP_POSIX_LOCKS) conn->want |= FUSE_CAP_POSIX_LOCKS;
  if (conn->capable & FUSE_CAP_FLOCK_LOCKS) conn->want |= FUSE_CAP_FLOCK_LOCKS;
  // POSIX ACLs checked by the kernel as on the backing filesystem
  // (docs/security.md); it needs default_permissions, and leaves the umask
  // of a new file to the daemon (ops::creation_mode()).
  if ((conn->capable & FUSE_CAP_POSIX_ACL) && d.cfg.default_permissions) {
    conn->want |= FUSE_CAP_POSIX_ACL;
    c.posix_acl = true;
  }
  conn->time_gran = 1;
  // Shared readers and cacheable cold lookups (docs/design-fuse.md) need
  // FUSE_NOTIFY_INC_EPOCH (7.44).
  const bool epochs = conn->proto_major > 7 || (conn->proto_major == 7 && conn->proto_minor >= 44);
  c.notifier.set_epochs(epochs);
  d.stats.fuse_protocol.store(conn->proto_major << 16 | (conn->proto_minor & 0xffff),
                              std::memory_order_relaxed);
  c.table.set_cold_cacheable(epochs);
  if (c.run_id != 0) {
    d.log->info("snapfs: serving run {} at {} (kernel passthrough {})", c.run_id,
                d.cfg.mountpoint, c.kpt.installed() ? "requested" : c.kpt.state());
    return;
  }
  d.log->info("snapfs: serving {} at {} (protocol {}.{}, max_write {}, reflink {}, "
              "private files {}, kernel passthrough {})",
              d.cfg.backing, d.cfg.mountpoint, conn->proto_major, conn->proto_minor,
              conn->max_write, d.reflink ? "yes" : "no", d.private_files,
              c.kpt.installed() ? "requested" : c.kpt.state());
  if (d.cfg.on_init) {
    // The INIT reply written after this returns makes an offered
    // passthrough active (passthrough.cpp).
    const std::string state =
        c.kpt.installed() && c.kpt.offered() ? std::string("active") : c.kpt.state();
    try {
      d.cfg.on_init(state);
    } catch (...) {
      d.log->debug("on_init failed");
    }
  }
}

fuse_lowlevel_ops make_ops() noexcept {
  fuse_lowlevel_ops o{};
  o.init = init;
  o.lookup = ops::lookup;
  o.forget = ops::forget;
  o.forget_multi = ops::forget_multi;
  o.getattr = ops::getattr;
  o.setattr = ops::setattr;
  o.readlink = ops::readlink;
  o.mknod = ops::mknod;
  o.mkdir = ops::mkdir;
  o.unlink = ops::unlink;
  o.rmdir = ops::rmdir;
  o.symlink = ops::symlink;
  o.rename = ops::rename;
  o.link = ops::link;
  o.open = ops::open;
  o.read = ops::read;
  o.write_buf = ops::write_buf;
  o.flush = ops::flush;
  o.release = ops::release;
  o.fsync = ops::fsync;
  o.opendir = ops::opendir;
  o.readdir = ops::readdir;
  o.releasedir = ops::releasedir;
  o.fsyncdir = ops::fsyncdir;
  o.statfs = ops::statfs;
  o.setxattr = ops::setxattr;
  o.getxattr = ops::getxattr;
  o.listxattr = ops::listxattr;
  o.removexattr = ops::removexattr;
  o.access = ops::access;
  o.create = ops::create;
  o.fallocate = ops::fallocate;
  o.lseek = ops::lseek;
  o.ioctl = ops::ioctl;
  // Locks are ours, not the kernel's: with one kernel inode per open, locks
  // kept by the kernel would never conflict between two opens (ops/lock.cpp).
  o.getlk = ops::getlk;
  o.setlk = ops::setlk;
  o.flock = ops::flock;
  return o;
}

// Whether B makes O_TMPFILEs; if not, private files are named ones in
// B/.snapfs/staging (new_private_file()). A refusal that is not about the
// filesystem (read-only B, no write permission) keeps O_TMPFILE: read-only
// opens then snapshot into memory, as they always did.
void probe_tmpfile(Daemon& d, int rootfd) {
  auto t = core::TmpFile::create_in(rootfd);
  if (t) return;
  const int e = t.error().value();
  if (e != EOPNOTSUPP && e != EISDIR && e != EINVAL) return;
  if (!d.staging_dir.valid()) return;
  d.tmpfile = false;
  d.private_files = "named files in B/" + std::string(kMetaDir) + "/staging (O_TMPFILE: " +
                    std::strerror(e) + ")";
}

// -o cache_dir: opened once, and it must make unnamed files (a local file
// system does). False (logged) if not: the mount is refused.
bool open_cache_dir(Daemon& d) {
  auto fd = sys::openat(AT_FDCWD, d.cfg.cache_dir.c_str(), O_PATH | O_DIRECTORY);
  if (!fd) {
    d.log->error("snapfs: cache_dir {}: {}", d.cfg.cache_dir, fd.error().message());
    return false;
  }
  if (auto t = core::TmpFile::create_in(fd->get()); !t) {
    d.log->error("snapfs: cache_dir {} cannot hold snapshots: {}", d.cfg.cache_dir,
                 t.error().message());
    return false;
  }
  // Where B reflinks, a snapshot in B costs nothing to make, and one in
  // the cache directory would be a copy: unused then.
  if (d.reflink) {
    d.private_files += ", cache_dir unused (B reflinks)";
    return true;
  }
  d.cache_dir = std::move(*fd);
  d.private_files += ", read-only snapshots in " + d.cfg.cache_dir;
  return true;
}

// Whether B can reflink: two private files, one FICLONE.
bool probe_reflink(const Daemon& d, int rootfd) {
  auto a = new_private_file(d, rootfd);
  auto b = new_private_file(d, rootfd);
  if (!a || !b) return false;
  std::vector<std::byte> block(4096, std::byte{0x5a});
  if (!sys::pwrite_all(a->fd(), block, 0)) return false;
  auto m = core::clone_contents(b->fd(), a->fd());
  return m && *m == core::CloneMethod::reflink;
}

// How many warm entries only the kernel holds (a backing file each, no
// descriptor of ours). A reflinked snapshot shares its blocks; what it costs
// is 3-3.5 KiB of kernel memory (its inode, dentry and file; measured over
// 10 000 entries, docs/performance.md), so: 1 % of RAM, at least 1024, at
// most 16384 (a large build's headers; 56 MiB). A copy (ext4, tmpfs) takes
// the file's size: 1024.
std::size_t warm_capacity(bool reflink) noexcept {
  constexpr std::size_t floor = 1024, ceiling = 16384, per_entry = 3584;
  if (!reflink) return floor;
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return floor;
  const std::size_t ram = static_cast<std::size_t>(pages) * static_cast<std::size_t>(page);
  return std::clamp(ram / 100 / per_entry, floor, ceiling);
}

// "a,b" -> "a\,b" for libfuse's option parser.
std::string escape_opt(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == ',' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// The daemon's state before the mount: its identity, descriptor limit and
// per-user share, B's root, B/.snapfs with the recovery of a previous
// daemon's leftovers, the reflink probe and the warm cache. nullptr (logged)
// if B cannot be served.
std::unique_ptr<Daemon> make_daemon(const Config& cfg,
                                    const std::shared_ptr<spdlog::logger>& log) {
  auto d = std::make_unique<Daemon>();
  d->cfg = cfg;
  d->log = log;
  d->as_root = sys::geteuid() == 0;
  d->own_uid = sys::geteuid();
  d->own_gid = sys::getegid();
  if (auto g = sys::groups_of(sys::getpid())) d->own_groups = std::move(*g);
  // The kernel already applied the caller's umask to every mode we get;
  // ours must not apply a second one.
  sys::set_umask(0);
  // The daemon holds one O_PATH descriptor per node the kernel has cached
  // (like libfuse's passthrough_hp), so a walk over many files needs many
  // descriptors: take all the soft limit may have. The hard limit stays a
  // limit (docs/user-guide.md, "Limits").
  std::uint64_t fd_limit = 1024;
  if (auto n = sys::raise_nofile_limit()) {
    log->debug("snapfs: up to {} open descriptors", *n);
    d->warm.limit_fd_capacity(static_cast<std::size_t>(*n / 10));
    fd_limit = *n;
  }
  // Each open holds up to three descriptors (its snapshot, its base, a
  // lock): a sixteenth of the limit per user leaves the others most of it.
  d->user_opens.set_limit(cfg.max_user_opens >= 0
                              ? static_cast<std::size_t>(cfg.max_user_opens)
                              : std::max<std::size_t>(64, static_cast<std::size_t>(fd_limit / 16)));

  auto root = sys::openat(AT_FDCWD, cfg.backing.c_str(), O_PATH | O_DIRECTORY);
  if (!root) {
    log->error("snapfs: cannot open {}: {}", cfg.backing, root.error().message());
    return nullptr;
  }
  auto root_st = sys::fstat(root->get());
  if (!root_st) {
    log->error("snapfs: cannot stat {}: {}", cfg.backing, root_st.error().message());
    return nullptr;
  }
  // B/.snapfs and the recovery of a previous daemon's leftovers, before
  // any request is served (docs/design-conflicts.md).
  if (!prepare_meta_dir(*d, root->get())) return nullptr;
  probe_tmpfile(*d, root->get());
  d->reflink = probe_reflink(*d, root->get());
  if (!cfg.cache_dir.empty() && !open_cache_dir(*d)) return nullptr;
  // Warm snapshots (warm.hpp): a reflinked one shares every block with the
  // version it was taken from, and everything done through M that replaces
  // or changes a file evicts its entries at once, so they stay 5 minutes
  // after their last use (a build's headers between two builds). A copy
  // (ext4, tmpfs) takes as much room as the file: 10 s.
  d->warm.set_ttl(d->reflink ? std::chrono::seconds(300) : std::chrono::seconds(10));
  d->warm.set_capacity(warm_capacity(d->reflink));
  // Copies take room of their own: the warm ones at most a tenth of what
  // is free where they are made (B, or the cache directory; memory for
  // tmpfs), and never more than 4 GiB.
  if (!d->reflink) {
    const int where = d->cache_dir.valid() ? d->cache_dir.get() : root->get();
    if (auto vfs = sys::fstatvfs(where))
      d->warm.set_byte_capacity(std::min<std::uint64_t>(
          std::uint64_t{4} << 30,
          static_cast<std::uint64_t>(vfs->f_bavail) * vfs->f_frsize / 10));
  }
  if (!d->reflink)
    log->info("snapfs: {} has no reflinks: snapshots are copies (O(size) per open)",
              cfg.backing);
  if (!d->tmpfile)
    log->info("snapfs: {} has no O_TMPFILE: private files are {}", cfg.backing,
              d->private_files);
  d->root = std::move(*root);
  d->root_st = *root_st;
  return d;
}

KernelPassthrough* passthrough_of(void* userdata) noexcept {
  return &static_cast<Conn*>(userdata)->kpt;
}

}  // namespace

std::unique_ptr<Conn> make_conn(Daemon& d) {
  auto root = sys::reopen(d.root.get(), O_PATH | O_DIRECTORY);
  if (!root) {
    d.log->error("snapfs: cannot open {} again: {}", d.cfg.backing, root.error().message());
    return nullptr;
  }
  auto c = std::make_unique<Conn>(d);
  c->table.init_root(std::move(*root), d.root_st, d.cfg.cache_timeout);
  return c;
}

const fuse_lowlevel_ops& lowlevel_ops() noexcept {
  static const fuse_lowlevel_ops ops = make_ops();
  return ops;
}

void start_serving(Conn& c, fuse_session* se) {
  Daemon& d = c.d;
  // Before the first request (INIT) is read.
  c.kpt.install(se, d.cfg.kernel_io, d.as_root, passthrough_of);
  c.lingering = std::make_unique<Lingering>(c);
}

int loop(Conn& c, fuse_session* se) {
  fuse_loop_config* lc = fuse_loop_cfg_create();
  fuse_loop_cfg_set_clone_fd(lc, 0);
  fuse_loop_cfg_set_idle_threads(lc, 10);
  if (c.d.cfg.threads > 0) fuse_loop_cfg_set_max_threads(lc, c.d.cfg.threads);
  const int ret = fuse_session_loop_mt(se, lc);
  fuse_loop_cfg_destroy(lc);
  return ret;
}

void end_serving(Conn& c) noexcept {
  // Snapshots still mapped after their close: published now.
  c.lingering.reset();
  // No request runs any more: free the handles of files that were still
  // open when the loop stopped (their unpublished snapshots vanish, as after
  // a crash; nothing in B changes). Before the FUSE descriptor closes: their
  // backing ids are released on it.
  for (void* holder : c.live_handles.take()) delete static_cast<std::shared_ptr<Handle>*>(holder);
  ops::free_dir_handles(c);
}

int serve(const Config& cfg, const std::function<void()>& on_mounted) {
  auto log = spdlog::get("fuse");
  if (!log) log = spdlog::default_logger();
  g_fuse_log = log;
  fuse_set_log_func(log_from_libfuse);

  auto d = make_daemon(cfg, log);
  if (!d) return 1;
  auto c = make_conn(*d);
  if (!c) return 1;

  std::vector<std::string> argv_s{"snapfs"};
  std::string opts = "fsname=" + escape_opt(cfg.fsname.empty() ? cfg.backing : cfg.fsname) +
                     ",subtype=snapfs";
  if (cfg.allow_other) opts += ",allow_other";
  if (cfg.default_permissions) opts += ",default_permissions";
  if (cfg.auto_unmount) opts += ",auto_unmount";
  argv_s.push_back("-o");
  argv_s.push_back(opts);
  if (cfg.debug) argv_s.push_back("-d");
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());

  const fuse_lowlevel_ops& ops = lowlevel_ops();
  fuse_session* se = fuse_session_new(&args, &ops, sizeof ops, c.get());
  if (!se) {
    log->error("snapfs: fuse_session_new failed (options: {})", opts);
    return 1;
  }
  c->notifier.attach(se);  // see notifier.hpp
  int ret = 1;
  if (fuse_set_signal_handlers(se) != 0) {
    log->error("snapfs: cannot install signal handlers");
  } else {
    if (fuse_session_mount(se, cfg.mountpoint.c_str()) != 0) {
      log->error("snapfs: cannot mount {} at {}", cfg.backing, cfg.mountpoint);
    } else {
      log->info("snapfs: mounted {} at {}", cfg.backing, cfg.mountpoint);
      if (on_mounted) on_mounted();  // may fork (daemonize): threads come after
      start_serving(*c, se);
      d->runs = std::make_unique<Runs>(*d);
      (void)d->runs->start();  // logged; the mount is served without runs
      ret = loop(*c, se);
      // The kernel ends the connection when the mount goes away. With
      // requests in flight at that moment (the RELEASEs of many closes) the
      // device read may fail with ECONNABORTED rather than ENODEV: still an
      // unmount, which the mount point shows (libfuse: "check if the
      // filesystem is still mounted"). Aborted while mounted stays an error.
      if (ret == -ECONNABORTED && !kernel::is_fuse_mount(cfg.mountpoint.c_str())) ret = 0;
      fuse_session_unmount(se);
      // Snapshots still mapped after their close: published now.
      c->lingering.reset();
      // libfuse's signal handler leaves the signal number as the loop's
      // result: SIGINT/SIGTERM/SIGHUP are the documented way to stop.
      const bool by_signal = ret == SIGINT || ret == SIGTERM || ret == SIGHUP;
      if (ret == 0 || by_signal) {
        log->info("snapfs: unmounted {}{}", cfg.mountpoint,
                  by_signal ? fmt::format(" (signal {})", ret) : std::string());
        ret = 0;
      } else {
        log->error("snapfs: the request loop of {} failed ({}); unmounted", cfg.mountpoint, ret);
        ret = 1;
      }
    }
    fuse_remove_signal_handlers(se);
  }
  // The runs' connections end with M's (docs/design-run.md).
  if (d->runs) d->runs->stop();
  end_serving(*c);
  // The warm snapshots, before the FUSE descriptor closes: their backing
  // ids are released on it.
  d->warm.clear();
  unregister_daemon(*d);  // nothing of ours is in flight any more
  c->notifier.attach(nullptr);  // before the session goes (notifier.hpp)
  fuse_session_destroy(se);
  fuse_opt_free_args(&args);
  return ret;
}

Conn::Conn(Daemon& daemon) : d(daemon) {}
Conn::~Conn() = default;

}  // namespace snapfs::fuse
