// GETXATTR, SETXATTR, LISTXATTR, REMOVEXATTR, and the virtual status
// attributes of the root (user.snapfs.status, user.snapfs.daemon,
// user.snapfs.conflicts).
// Symlink-safe: every call goes through /proc/self/fd/N of the node's O_PATH
// handle (held, or for an idle file node opened for this request one
// component beneath its parent with O_NOFOLLOW), which names the inode
// itself, never a path in B.
#include "conflicts.hpp"
#include "identity.hpp"
#include "lingering.hpp"
#include "ops/common.hpp"
#include "ops/ops.hpp"
#include "reply.hpp"
#include "run.hpp"
#include "sys/sys.hpp"

#include <linux/capability.h>
#include <linux/openat2.h>
#include <sys/resource.h>
#include <sys/utsname.h>

#include <charconv>
#include <chrono>
#include <cstring>
#include <mutex>
#include <new>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#ifndef SNAPFS_VERSION
#define SNAPFS_VERSION "unknown"
#endif

namespace snapfs::fuse::ops {

namespace sys = core::sys;

namespace {

// XATTR_SIZE_MAX: the most a getxattr(2) can ask for.
constexpr std::size_t kMaxXattrValue = 65536;

bool is_events(const char* name) {
  return std::strncmp(name, kEventsXattrPrefix, std::strlen(kEventsXattrPrefix)) == 0;
}

bool is_virtual(fuse_ino_t ino, const char* name) {
  return ino == FUSE_ROOT_ID &&
         (std::strcmp(name, kStatusXattr) == 0 || std::strcmp(name, kDaemonXattr) == 0 ||
          std::strcmp(name, kConflictsXattr) == 0 || is_events(name));
}

const char* durability_name(core::Durability v) noexcept {
  switch (v) {
    case core::Durability::fast: return "fast";
    case core::Durability::atomic: return "atomic";
    case core::Durability::full: return "full";
  }
  return "atomic";
}

std::string json_bool(bool b) { return b ? "true" : "false"; }

// The options this daemon serves with, as `snapfs mount --help` names them,
// with the defaults resolved (fsname, max_user_opens).
std::string options_json(const Daemon& d) {
  const Config& c = d.cfg;
  std::string shared = "[";
  for (const auto& g : c.shared_globs) shared += (shared.size() > 1 ? "," : "") + json_string(g);
  shared += "]";
  std::string j = "{";
  j += "\"fsname\":" + json_string(c.fsname.empty() ? c.backing : c.fsname);
  j += ",\"shared\":" + shared;
  j += ",\"exclusive\":" + json_bool(c.exclusive);
  j += ",\"kernel_io\":" + json_string(c.kernel_io ? "auto" : "off");
  j += ",\"durability\":" + json_string(durability_name(c.durability));
  j += ",\"on_conflict\":" + json_string(c.on_conflict == OnConflict::fail ? "fail" : "overwrite");
  j += ",\"allow_other\":" + json_bool(c.allow_other);
  j += ",\"default_permissions\":" + json_bool(c.default_permissions);
  j += ",\"auto_unmount\":" + json_bool(c.auto_unmount);
  j += ",\"cache_timeout\":" + fmt::format("{}", c.cache_timeout);
  j += ",\"cache_dir\":" + json_string(c.cache_dir);
  j += ",\"max_user_opens\":" + std::to_string(d.user_opens.limit());
  j += ",\"threads\":" + std::to_string(c.threads);  // 0: libfuse's default
  j += ",\"debug\":" + json_bool(c.debug);
  return j + "}";
}

// Replies that carried an errno, by name ("ENOENT"; those beyond the
// table as "other"), errnos never sent left out.
std::string errors_json(const Stats& st) {
  std::string j;
  auto add = [&](const std::string& name, std::uint64_t n) {
    if (n != 0) j += (j.empty() ? "\"" : ",\"") + name + "\":" + std::to_string(n);
  };
  for (int e = 1; e < Stats::kErrnoSlots; ++e) {
    const auto n = st.errors[static_cast<std::size_t>(e)].load(std::memory_order_relaxed);
    if (n == 0) continue;
    const char* name = ::strerrorname_np(e);
    add(name ? name : std::to_string(e), n);
  }
  add("other", st.errors[0].load(std::memory_order_relaxed));
  return "{" + j + "}";
}

// Descriptors the daemon holds now (its snapshots, nodes' O_PATH handles,
// warm snapshots, the FUSE device...): the entries of /proc/self/fd but the
// one this count reads it through. -1 if /proc cannot be read.
long descriptors_held() noexcept {
  auto dir = sys::openat(AT_FDCWD, "/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (!dir) return -1;
  auto stream = sys::DirStream::open(dir->get());
  if (!stream) return -1;
  dir->reset();
  long n = 0;
  for (;;) {
    auto e = stream->next();
    if (!e) return -1;
    if (*e == nullptr) break;
    if ((*e)->d_name[0] != '.') ++n;
  }
  return n - 1;  // the stream's own
}

// The daemon's soft RLIMIT_NOFILE (raised to the hard one at start), or -1.
long long descriptor_limit() noexcept {
  struct rlimit rl {};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
  return rl.rlim_cur == RLIM_INFINITY ? -1 : static_cast<long long>(rl.rlim_cur);
}

std::string seconds_since_epoch(std::chrono::system_clock::time_point t) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  return fmt::format("{}.{:03}", ms / 1000, ms % 1000);
}

// The daemon itself (user.snapfs.daemon): what serves the mount, with what
// options, and what it holds. Keys are never renamed or dropped (scripts
// read them); new ones are added.
std::string daemon_json(const Conn& c) {
  const Daemon& d = c.d;
  std::string j = "{";
  j += "\"version\":" + json_string(SNAPFS_VERSION);
  j += ",\"pid\":" + std::to_string(sys::getpid());
  // Which pid namespace `pid` is a number in ("pid:[inode]"): `snapfs
  // umount` waits for the daemon to exit only when it is in its own.
  auto ns = sys::readlinkat(AT_FDCWD, "/proc/self/ns/pid");
  j += ",\"pid_namespace\":" + json_string(ns ? *ns : std::string());
  j += ",\"started\":" + seconds_since_epoch(d.stats.started);
  j += ",\"uptime_seconds\":" +
       std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::steady_clock::now() - d.stats.started_steady)
                          .count());
  struct utsname un {};
  j += ",\"kernel\":" + json_string(::uname(&un) == 0 ? un.release : "");
  const std::uint32_t proto = d.stats.fuse_protocol.load(std::memory_order_relaxed);
  j += ",\"fuse_protocol\":" + json_string(std::to_string(proto >> 16) + "." +
                                           std::to_string(proto & 0xffff));
  j += ",\"libfuse\":" + json_string(::fuse_pkgversion());
  j += ",\"options\":" + options_json(d);
  j += ",\"conflicts_since_start\":" + std::to_string(d.stats.conflicts.load());
  j += ",\"descriptors\":" + std::to_string(descriptors_held());
  j += ",\"descriptor_limit\":" + std::to_string(descriptor_limit());
  j += ",\"errors\":" + errors_json(d.stats);
  // How snapshots are made on B (probed at start): by reflink or by copy,
  // into unnamed files or named ones (new_private_file()).
  j += ",\"snapshots\":" + json_string(d.reflink ? "reflink" : "copy");
  j += ",\"private_files\":" + json_string(d.private_files);
  // `snapfs run` (run.hpp): where to ask for one, how many there are, and
  // which run this connection serves (null: none, the mount at M).
  j += ",\"control\":" + json_string(d.runs ? d.runs->control_path() : std::string());
  j += ",\"runs\":" + std::to_string(d.runs ? d.runs->live() : 0);
  j += ",\"run_connections\":" + std::to_string(d.runs ? d.runs->connections() : 0);
  j += ",\"run\":" + Runs::run_json(c);
  j += "}";
  return j;
}

// The counters (user.snapfs.status). Readers with a fixed buffer of 1 KiB
// read it whole: what is new goes to daemon_json().
// `viewer`: whose conflicts are counted (root: everyone's).
std::string status_json(Conn& c, uid_t viewer) {
  Daemon& d = c.d;
  std::string j = "{";
  j += "\"backing\":" + json_string(d.cfg.backing);
  j += ",\"mountpoint\":" + json_string(d.cfg.mountpoint);
  j += ",\"open_snapshots\":" + std::to_string(d.stats.open_snapshots.load());
  j += ",\"commits\":" + std::to_string(d.stats.commits.load());
  j += ",\"bytes_published\":" + std::to_string(d.stats.bytes_published.load());
  j += ",\"conflicts\":" + std::to_string(conflict_count(d, viewer));
  j += ",\"rebases\":" + std::to_string(d.stats.rebases.load());
  j += std::string(",\"reflink\":") + (d.reflink ? "true" : "false");
  j += std::string(",\"data_path\":") +
       (c.kpt.state() == "active" ? "\"kernel passthrough\"" : "\"daemon (direct_io)\"");
  j += ",\"kernel_passthrough\":" + json_string(c.kpt.state());
  j += ",\"passthrough_opens\":" + std::to_string(c.kpt.opens());
  j += ",\"daemon_opens\":" + std::to_string(d.stats.daemon_opens.load());
  j += ",\"own_joins\":" + std::to_string(d.stats.own_joins.load());
  j += ",\"own_routes\":" + std::to_string(d.stats.own_routes.load());
  j += ",\"own_misses\":" + std::to_string(d.stats.own_misses.load());
  j += ",\"warm_snapshots\":" + std::to_string(d.warm.size());
  j += ",\"warm_hits\":" + std::to_string(d.warm.hits());
  j += ",\"lingering\":" + std::to_string(c.lingering ? c.lingering->size() : 0);
  j += ",\"lookups\":" + std::to_string(d.stats.lookups.load());
  j += ",\"getattrs\":" + std::to_string(d.stats.getattrs.load());
  j += ",\"readdirs\":" + std::to_string(d.stats.readdirs.load());
  j += ",\"inval_inodes\":" + std::to_string(c.notifier.inode_count());
  j += ",\"dentry_epochs\":" + std::to_string(c.notifier.epoch_count());
  j += "}";
  return j;
}

// An xattr change (ctime; a POSIX ACL also changes the mode) of a file's
// inode: every node of it, this one included, drops its cached attributes.
void changed(Conn& c, const Node& node, int fd) {
  if (node.kind() != NodeKind::file) return;
  if (auto st = sys::fstat(fd)) after_inode_change(c, st->st_dev, st->st_ino);
}

// Whether trusted.* names are hidden from `who`: xattr(7) shows them only
// to a process with CAP_SYS_ADMIN.
bool hides_trusted(const Identity& who) noexcept {
  if (who.privileged()) return false;
  if (who.tid <= 0) return true;
  auto cap = sys::has_capability(who.tid, CAP_SYS_ADMIN);
  return !cap || !*cap;
}

// A NUL-separated xattr name list without the trusted.* names. May throw
// bad_alloc.
std::vector<char> without_trusted(const std::vector<char>& list) {
  std::vector<char> out;
  out.reserve(list.size());
  std::size_t start = 0;
  for (std::size_t i = 0; i < list.size(); ++i) {
    if (list[i] != '\0') continue;
    const std::string_view n(list.data() + start, i - start);
    if (!n.empty() && n.substr(0, 8) != "trusted.") {
      out.insert(out.end(), n.begin(), n.end());
      out.push_back('\0');
    }
    start = i + 1;
  }
  return out;
}

// What GETXATTR and LISTXATTR read into: the node's descriptor, and a
// buffer of the `size` bytes the kernel asked for (0: it asks for the size
// only).
struct ReadTarget {
  FdRef fd;
  std::vector<char> buf;
};

core::Result<ReadTarget> read_target(Conn& c, fuse_ino_t ino, size_t size) noexcept {
  auto node = c.table.get(ino);
  auto fdr = node_fd(c, *node);
  if (!fdr) return std::move(fdr).error();
  ReadTarget t{std::move(*fdr), {}};
  try {
    t.buf.resize(size);
  } catch (const std::bad_alloc&) {
    return core::Error::of(ENOMEM, "xattr buffer");
  }
  return t;
}

void reply_value(fuse_req_t req, const char* data, size_t len, size_t size) noexcept {
  if (size == 0) return reply_xattr_size(req, len);
  if (len > size) return reply_errno(req, ERANGE, "getxattr");
  reply_buf(req, data, len);
}

// The change feed after the cursor in `name` (daemon.hpp kEventsXattrPrefix).
void get_events(fuse_req_t req, Daemon& d, const char* name, size_t size) noexcept {
  const std::string_view cursor(name + std::strlen(kEventsXattrPrefix));
  std::uint64_t after = 0;
  if (cursor == "end") {
    after = d.events.last();
  } else {
    const auto [end, ec] = std::from_chars(cursor.data(), cursor.data() + cursor.size(), after);
    if (ec != std::errc() || end != cursor.data() + cursor.size() || cursor.empty())
      return reply_errno(req, ENODATA, "getxattr(events)");
  }
  // Asked for its size only: the most a reply holds (it may be less when
  // read, as events keep coming).
  if (size == 0) return reply_xattr_size(req, kMaxXattrValue);
  const Identity viewer = identity_of(req);
  // SECURITY: a user mount's daemon cannot take another user's identity to
  // decide what they may see: only its own user (and root) read the feed.
  if (!d.as_root && !viewer.privileged() && viewer.uid != d.own_uid)
    return reply_errno(req, EACCES, "getxattr(events)");
  try {
    // An event shows a viewer only what watching the tree would have shown
    // them: a name in a directory they may list (read and search it, and
    // search every directory above it), decided by B for their identity
    // now, and only while its path still leads to the directory that held
    // the name (a directory renamed away and replaced by a listable one of
    // the same name hides its past). Who made it (pid, uid, command) only
    // to that uid and to root.
    const int root = d.root.get();
    std::unordered_map<std::string, Dir> dirs;  // parent path -> which one they may list
    const auto visible = [&](const std::string& path, const Dir& dir) {
      if (viewer.privileged()) return true;
      const auto slash = path.rfind('/');
      const std::string parent = slash == std::string::npos ? "." : path.substr(0, slash);
      // "<dir>/.": resolving "." in it needs search permission, the open
      // read permission (ls -l of a name needs both).
      auto it = dirs.find(parent);
      if (it == dirs.end()) {
        auto fd = acting_as(d, viewer, [&] {
          return sys::openat_beneath(root, (parent + "/.").c_str(),
                                     O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, RESOLVE_NO_SYMLINKS);
        });
        Dir listable;  // ino 0: none
        if (fd) {
          if (auto st = sys::fstat(fd->get()))
            listable = dir_of(st->st_dev, st->st_ino, fd->get());
        }
        it = dirs.emplace(parent, listable).first;
      }
      return it->second.ino != 0 && it->second == dir;
    };
    const auto show_who = [&](const Event& e) {
      return viewer.privileged() || e.uid == viewer.uid;
    };
    const std::size_t limit = std::min(size, kMaxXattrValue);
    // A reply of 64 KiB holds a few hundred events: ask for no more.
    const auto slice = d.events.after(after, 2048);
    const std::string v = events_json(slice, after, sys::getpid(), limit, visible, show_who);
    return reply_value(req, v.data(), v.size(), size);
  } catch (const std::bad_alloc&) {
    return reply_errno(req, ENOMEM, "getxattr(events)");
  }
}

}  // namespace

void getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) noexcept {
  Conn& c = conn_of(req);
  Daemon& d = c.d;
  if (ino == FUSE_ROOT_ID && is_events(name)) return get_events(req, d, name, size);
  if (is_virtual(ino, name)) {
    try {
      // SECURITY: a user sees their own conflicts only (paths, sizes, uids
      // of others' are theirs); root sees all.
      const uid_t viewer = fuse_req_ctx(req)->uid;
      const std::string v = std::strcmp(name, kStatusXattr) == 0   ? status_json(c, viewer)
                             : std::strcmp(name, kDaemonXattr) == 0 ? daemon_json(c)
                                                                    : conflicts_json(d, viewer);
      return reply_value(req, v.data(), v.size(), size);
    } catch (const std::bad_alloc&) {
      return reply_errno(req, ENOMEM, "getxattr", ino);
    }
  }
  auto t = read_target(c, ino, size);
  if (!t) return reply_error(req, t.error(), "getxattr", ino);
  // SECURITY: as the caller (identity.hpp): reading user.* needs read
  // permission on the inode the node is bound to now, decided by B.
  auto n = acting_as(d, identity_of(req),
                     [&] { return sys::getxattr_fd(t->fd->get(), name, t->buf); });
  if (!n) return reply_error(req, n.error(), "getxattr", ino);
  if (size == 0) return reply_xattr_size(req, *n);
  reply_buf(req, t->buf.data(), *n);
}

void listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) noexcept {
  Conn& c = conn_of(req);
  Daemon& d = c.d;
  auto t = read_target(c, ino, size);
  if (!t) return reply_error(req, t.error(), "listxattr", ino);
  // The virtual status attributes are not stored and not listed.
  const Identity who = identity_of(req);
  if (hides_trusted(who)) {
    // SECURITY: the daemon keeps CAP_SYS_ADMIN while acting as the caller,
    // so B lists trusted.* names that it hides from the caller (xattr(7)):
    // the whole list is read and those names are taken out; the caller is
    // told the filtered size.
    const auto proc = sys::proc_fd_path(t->fd->get());
    auto all = acting_as(d, who, [&] { return sys::listxattr_path(proc.c_str()); });
    if (!all) return reply_error(req, all.error(), "listxattr", ino);
    std::vector<char> out;
    try {
      out = without_trusted(*all);
    } catch (const std::bad_alloc&) {
      return reply_errno(req, ENOMEM, "listxattr", ino);
    }
    if (size == 0) return reply_xattr_size(req, out.size());
    if (out.size() > size) return reply_errno(req, ERANGE, "listxattr", ino);
    return reply_buf(req, out.data(), out.size());
  }
  auto n = sys::listxattr_fd(t->fd->get(), t->buf);
  if (!n) return reply_error(req, n.error(), "listxattr", ino);
  if (size == 0) return reply_xattr_size(req, *n);
  reply_buf(req, t->buf.data(), *n);
}

void setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
              int flags) noexcept {
  Conn& c = conn_of(req);
  Daemon& d = c.d;
  if (is_virtual(ino, name)) return reply_errno(req, EPERM, "setxattr", ino);
  auto node = c.table.get(ino);
  // On the backing inode: a commit keeps the attributes of the file it replaces
  // (core::publish), so this survives a later close
  // (docs/semantics.md#commit-at-close); ordered against commits like chmod
  // (ops/setattr.cpp).
  std::unique_lock ns(d.ns_mu, std::defer_lock);
  if (!node->is_dir()) ns.lock();
  auto fdr = node_fd(c, *node);  // under the lock: a commit may have rebound it
  if (!fdr) {
    if (ns.owns_lock()) ns.unlock();  // replies go out with no lock held
    return reply_error(req, fdr.error(), "setxattr", ino);
  }
  const FdRef fd = std::move(*fdr);
  // SECURITY: as the caller: B decides on the inode the node is bound to
  // now (write permission for user.*, ownership for POSIX ACLs). The
  // kernel already refused trusted.* and security.* to callers without
  // the capability (xattr(7)) before this request was sent.
  auto r = acting_as(d, identity_of(req), [&] {
    return sys::setxattr_fd(fd->get(), name, std::span<const char>(value, size), flags);
  });
  if (ns.owns_lock()) ns.unlock();
  if (!r) return reply_error(req, r.error(), "setxattr", ino);
  changed(c, *node, fd->get());
  reply_ok(req);
}

void removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) noexcept {
  Conn& c = conn_of(req);
  Daemon& d = c.d;
  if (is_virtual(ino, name)) return reply_errno(req, EPERM, "removexattr", ino);
  auto node = c.table.get(ino);
  std::unique_lock ns(d.ns_mu, std::defer_lock);
  if (!node->is_dir()) ns.lock();
  auto fdr = node_fd(c, *node);
  if (!fdr) {
    if (ns.owns_lock()) ns.unlock();  // replies go out with no lock held
    return reply_error(req, fdr.error(), "removexattr", ino);
  }
  const FdRef fd = std::move(*fdr);
  auto r = acting_as(d, identity_of(req), [&] { return sys::removexattr_fd(fd->get(), name); });
  if (ns.owns_lock()) ns.unlock();
  if (!r) return reply_error(req, r.error(), "removexattr", ino);
  changed(c, *node, fd->get());
  reply_ok(req);
}

}  // namespace snapfs::fuse::ops
