#include "peers.hpp"

#include "daemon_state.hpp"
#include "sys/sys.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string>

namespace snapfs::fuse {

namespace sys = core::sys;
using core::Error;
using core::Result;

namespace {

constexpr const char* kCommitLock = "commit.lock";
constexpr std::size_t kIdLen = 16;

bool is_id(std::string_view s) noexcept {
  if (s.size() != kIdLen) return false;
  for (char ch : s)
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) return false;
  return true;
}

Result<std::string> random_id() noexcept {
  std::array<std::byte, kIdLen / 2> rnd{};
  SNAPFS_TRY(sys::random_bytes(rnd));
  static constexpr char kHex[] = "0123456789abcdef";
  try {
    std::string id;
    for (auto b : rnd) {
      id += kHex[static_cast<unsigned>(b) >> 4];
      id += kHex[static_cast<unsigned>(b) & 15];
    }
    return id;
  } catch (const std::bad_alloc&) {
    return Error::of(ENOMEM, "daemon id");
  }
}

// A write lock on all of `fd`'s file, without waiting: false if someone
// else holds one.
Result<bool> try_lock_all(int fd) noexcept {
  struct flock lk {};
  lk.l_type = F_WRLCK;
  lk.l_whence = SEEK_SET;
  lk.l_start = 0;
  lk.l_len = 0;  // to the end, however large
  auto r = sys::ofd_setlk(fd, lk);
  if (r) return true;
  if (r.error().value() == EAGAIN || r.error().value() == EACCES) return false;
  return std::move(r).error();
}

// FNV-1a of (directory inode, name): the same name gives the same byte in
// every daemon, on every host (std::hash may differ between builds).
std::uint64_t name_hash(ino_t dir_ino, std::string_view name) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ull;
  const auto mix = [&](unsigned char ch) {
    h ^= ch;
    h *= 0x100000001b3ull;
  };
  auto ino = static_cast<std::uint64_t>(dir_ino);
  for (int i = 0; i < 8; ++i, ino >>= 8) mix(static_cast<unsigned char>(ino & 0xff));
  for (const char ch : name) mix(static_cast<unsigned char>(ch));
  return h;
}

}  // namespace

std::string_view owner_of(std::string_view name) noexcept {
  if (name.size() <= kIdLen || name[kIdLen] != '-') return {};
  const std::string_view id = name.substr(0, kIdLen);
  return is_id(id) ? id : std::string_view();
}

Result<void> register_daemon(Daemon& d, int meta_dir, int daemons_dir) noexcept {
  auto id = random_id();
  if (!id) return std::move(id).error();
  try {
    // ATOMICITY: made under a dot name, locked, and only then renamed to
    // its id: every daemon that finds daemons/<id> finds it locked while
    // this daemon lives. (A crash before the rename leaves an unlocked dot
    // name, which forget_dead_daemons() removes.)
    const std::string draft = "." + *id;
    auto fd = sys::openat(daemons_dir, draft.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
    if (!fd) return std::move(fd).error();
    auto locked = try_lock_all(fd->get());
    if (!locked || !*locked) {
      (void)sys::unlinkat(daemons_dir, draft.c_str(), 0);
      return locked ? Error::of(EAGAIN, "lock", draft) : std::move(locked).error();
    }
    // Who this is, for people and for `snapfs umount` (which waits for this
    // pid to exit, and must ask no FUSE request of a daemon that may hang):
    // "<pid> <pid namespace> <mount point>".
    auto ns = sys::readlinkat(AT_FDCWD, "/proc/self/ns/pid");
    const std::string who = std::to_string(sys::getpid()) + " " + (ns ? *ns : "-") + " " +
                            d.cfg.mountpoint + "\n";
    (void)sys::pwrite_all(fd->get(),
                          std::span<const std::byte>(
                              reinterpret_cast<const std::byte*>(who.data()), who.size()),
                          0);
    if (auto r = sys::renameat(daemons_dir, draft.c_str(), daemons_dir, id->c_str(), 0); !r) {
      (void)sys::unlinkat(daemons_dir, draft.c_str(), 0);
      return std::move(r).error();
    }
    auto lock = sys::openat(meta_dir, kCommitLock, O_RDWR | O_CREAT | O_NOFOLLOW, 0600);
    if (!lock) return std::move(lock).error();
    // Reopened (O_RDWR) per commit from this O_PATH handle: each commit's
    // lock is owned by an open of its own.
    auto path = sys::reopen(lock->get(), O_PATH);
    if (!path) return std::move(path).error();
    auto dir = sys::reopen(daemons_dir, O_PATH | O_DIRECTORY);
    if (!dir) return std::move(dir).error();
    d.commit_lock = std::move(*path);
    d.daemons_dir = std::move(*dir);
    d.alive = std::move(*fd);
    d.staging_prefix = *id + "-";
    d.id = std::move(*id);
    return {};
  } catch (const std::bad_alloc&) {
    return Error::of(ENOMEM, "register");
  }
}

bool daemon_alive(int daemons_dir, std::string_view id) noexcept {
  if (!is_id(id)) return false;
  char name[kIdLen + 1];
  id.copy(name, kIdLen);
  name[kIdLen] = '\0';
  auto fd = sys::openat(daemons_dir, name, O_RDWR | O_NOFOLLOW | O_NONBLOCK);
  if (!fd) return fd.error().value() != ENOENT;  // gone: dead; cannot tell: alive
  struct flock lk {};
  lk.l_type = F_WRLCK;
  lk.l_whence = SEEK_SET;
  lk.l_start = 0;
  lk.l_len = 0;
  if (!sys::ofd_getlk(fd->get(), lk)) return true;
  return lk.l_type != F_UNLCK;
}

void forget_dead_daemons(Daemon& d, int daemons_dir) noexcept {
  auto dup = sys::reopen(daemons_dir, O_RDONLY | O_DIRECTORY);
  if (!dup) return;
  auto stream = sys::DirStream::open(dup->get());
  if (!stream) return;
  dup->reset();
  for (;;) {
    auto e = stream->next();
    if (!e || *e == nullptr) break;
    const std::string_view n = (*e)->d_name;
    const bool draft = n.size() == kIdLen + 1 && n[0] == '.' && is_id(n.substr(1));
    if (n.size() == kIdLen + 8 && n.ends_with(".control") && is_id(n.substr(0, kIdLen))) {
      // A control socket (run.hpp) outlives a daemon that was killed.
      if (n.substr(0, kIdLen) != d.id && !daemon_alive(daemons_dir, n.substr(0, kIdLen)))
        (void)sys::unlinkat(daemons_dir, std::string(n).c_str(), 0);
      continue;
    }
    if (!is_id(n) && !draft) continue;
    if (n == d.id) continue;
    const std::string name(n);
    if (draft) {
      // A draft is unlocked between its O_EXCL create and its lock: one
      // younger than a minute may be a daemon registering right now.
      auto st = sys::fstatat(daemons_dir, name.c_str(), AT_SYMLINK_NOFOLLOW);
      if (!st || std::time(nullptr) - st->st_mtim.tv_sec < 60) continue;
    }
    auto fd = sys::openat(daemons_dir, name.c_str(), O_RDWR | O_NOFOLLOW | O_NONBLOCK);
    if (!fd) continue;
    // Ours to remove only while we hold its lock: its daemon is gone.
    auto mine = try_lock_all(fd->get());
    if (!mine || !*mine) continue;
    if (sys::unlinkat(daemons_dir, name.c_str(), 0))
      d.log->info("snapfs: forgot the daemon {} of B (it is gone)", name);
  }
}

void unregister_daemon(Daemon& d) noexcept {
  if (d.id.empty() || !d.daemons_dir) return;
  // Still locked by us while the name goes: nobody takes it for a dead
  // daemon's in between.
  (void)sys::unlinkat(d.daemons_dir.get(), d.id.c_str(), 0);
  d.alive.reset();
}

Result<core::UniqueFd> lock_name(const Daemon& d, ino_t dir_ino, std::string_view name) noexcept {
  if (!d.commit_lock) return core::UniqueFd();
  auto fd = sys::reopen(d.commit_lock.get(), O_RDWR);
  if (!fd) return std::move(fd).error();
  struct flock lk {};
  lk.l_type = F_WRLCK;
  lk.l_whence = SEEK_SET;
  // One byte per hash, in the first 2^40: collisions only serialise two
  // names' commits, never let two of one name through.
  lk.l_start = static_cast<off_t>(name_hash(dir_ino, name) & ((1ull << 40) - 1));
  lk.l_len = 1;
  SNAPFS_TRY(sys::ofd_setlkw(fd->get(), lk));
  return std::move(*fd);
}

}  // namespace snapfs::fuse
