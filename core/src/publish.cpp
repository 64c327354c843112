// publish(): an unnamed private file becomes the file `name`, atomically.
// Step by step, with what a crash at each step leaves: docs/commit-protocol.md.
#include <snapfs/core/publish.hpp>

#include "sys/sys.hpp"

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace snapfs::core {
namespace {

bool is_single_component(std::string_view name) noexcept {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos;
}

// The NUL-separated names of an xattr list.
std::vector<std::string_view> split_names(const std::vector<char>& list) {
  std::vector<std::string_view> names;
  std::size_t start = 0;
  for (std::size_t i = 0; i < list.size(); ++i) {
    if (list[i] == '\0') {
      if (i > start) names.emplace_back(list.data() + start, i - start);
      start = i + 1;
    }
  }
  return names;
}

bool contains(const std::vector<std::string_view>& names, std::string_view n) {
  for (auto x : names)
    if (x == n) return true;
  return false;
}

// A temporary name nobody can predict: `prefix` (".snapfs-" by default, at
// most 32 bytes) and 16 random hex digits. Its bounded length keeps it under
// NAME_MAX whatever the target is called, and the prefix lets recovery at
// mount find leftovers (and tell whose they are).
Result<void> temp_name(char (&out)[64], std::string_view prefix) noexcept {
  if (prefix.size() > 32) return Error::of(ENAMETOOLONG, "publish", prefix);
  std::byte rnd[8];
  SNAPFS_TRY(sys::random_bytes(rnd));
  static constexpr char kHex[] = "0123456789abcdef";
  std::memcpy(out, prefix.data(), prefix.size());
  char* at = out + prefix.size();
  for (std::size_t i = 0; i < 8; ++i) {
    const auto b = std::to_integer<unsigned>(rnd[i]);
    *at++ = kHex[b >> 4];
    *at++ = kHex[b & 15];
  }
  std::memcpy(at, ".tmp", 5);
  return {};
}

// linkat() of an unnamed file into `dirfd` under `name`.
Result<void> link_anonymous(int fd, int dirfd, const char* name) noexcept {
  // ATOMICITY: linkat gives the inode its first name in one step; it never
  // replaces an existing name (EEXIST), which is why publishing over a target
  // needs the temporary name and the rename below.
  // We link through /proc/self/fd/N with AT_SYMLINK_FOLLOW rather than
  // linkat(fd, "", ..., AT_EMPTY_PATH): linkat(2) says AT_EMPTY_PATH needs
  // CAP_DAC_READ_SEARCH, and we must work for ordinary users. The magic link
  // resolves to the open file itself, not to a path, so no race can swap it.
  const auto proc = sys::proc_fd_path(fd);
  auto r = sys::linkat(AT_FDCWD, proc.c_str(), dirfd, name, AT_SYMLINK_FOLLOW);
  if (r || r.error().value() != ENOENT) return r;
  // ENOENT can also mean /proc is not mounted: try AT_EMPTY_PATH, which works
  // where we hold CAP_DAC_READ_SEARCH.
  auto e = sys::linkat(fd, "", dirfd, name, AT_EMPTY_PATH);
  return e ? e : r;  // if both fail, the /proc attempt's error says more
}

}  // namespace

namespace {

// The mode a write by someone without CAP_FSETID leaves: no setuid, and
// no setgid where the group may execute (setgid without group execute is
// mandatory locking, which the kernel leaves alone).
mode_t killed_setid(mode_t mode) noexcept {
  mode &= ~static_cast<mode_t>(S_ISUID);
  if (mode & S_IXGRP) mode &= ~static_cast<mode_t>(S_ISGID);
  return mode;
}

constexpr std::string_view kCapsXattr = "security.capability";

}  // namespace

Result<void> copy_metadata(int from, int to) noexcept { return copy_metadata(from, to, {}); }

Result<void> copy_metadata(int from, int to, const PublishOptions& opts) noexcept {
  auto src = sys::fstat(from);
  if (!src) return std::move(src).error();
  auto dst = sys::fstat(to);
  if (!dst) return std::move(dst).error();

  // Owner first: chown clears setuid/setgid bits and security.capability, so
  // both are restored after it. An ordinary user can only "give" a file to
  // itself; if the file belongs to someone else, replacing it would change
  // its owner, and we refuse (EPERM) rather than do that silently.
  if (src->st_uid != dst->st_uid || src->st_gid != dst->st_gid)
    SNAPFS_TRY(sys::fchown(to, src->st_uid, src->st_gid));

  // Extended attributes, POSIX ACLs (system.posix_acl_*) included. `from` may
  // be an O_PATH descriptor, on which f*xattr() fail with EBADF; its /proc
  // magic link reaches the same inode.
  const auto from_path = sys::proc_fd_path(from);
  auto src_list = sys::listxattr_path(from_path.c_str());
  if (!src_list && src_list.error().value() != EOPNOTSUPP) return std::move(src_list).error();
  auto dst_list = sys::flistxattr(to);
  if (!dst_list && dst_list.error().value() != EOPNOTSUPP) return std::move(dst_list).error();
  try {
    const auto src_names = src_list ? split_names(*src_list) : std::vector<std::string_view>{};
    const auto dst_names = dst_list ? split_names(*dst_list) : std::vector<std::string_view>{};
    // The private file may have inherited attributes (a default ACL of the
    // directory): those the original did not have must go.
    for (auto n : dst_names) {
      if (contains(src_names, n)) continue;
      const std::string name(n);
      // ENODATA: already gone. XFS shows root a POSIX ACL twice, as
      // system.posix_acl_access and trusted.SGI_ACL_FILE, and removing one
      // removes the other.
      if (auto r = sys::fremovexattr(to, name.c_str()); !r && r.error().value() != ENODATA)
        return r;
    }
    for (auto n : src_names) {
      // SECURITY: file capabilities never survive new content (kill_caps).
      if (opts.kill_caps && n == kCapsXattr) continue;
      const std::string name(n);
      auto value = sys::getxattr_path(from_path.c_str(), name.c_str());
      if (!value) {
        if (value.error().value() == ENODATA) continue;  // removed meanwhile
        return std::move(value).error();
      }
      SNAPFS_TRY(sys::fsetxattr(to, name.c_str(), *value, 0));
    }
  } catch (const std::bad_alloc&) {
    return Error::of(ENOMEM, "copy_metadata");
  }

  // Mode last: it restores setuid/setgid after chown, and it is the mode of
  // the original even where setting an ACL above recomputed group bits.
  const mode_t mode = opts.kill_setid ? killed_setid(src->st_mode) : src->st_mode;
  SNAPFS_TRY(sys::fchmod(to, mode & 07777));
  return {};
}

namespace {

// publish_impl's last step for a file made by TmpFile::create_named_in():
// its temporary name becomes `name` in `dirfd`.
Result<void> publish_staged(TmpFile& file, int dirfd, const char* name, bool no_replace) noexcept {
  const char* tmp = file.staged_name().c_str();
  if (no_replace) {
    // ATOMICITY: link(2) makes `name` in one step, and never over an
    // existing one (EEXIST); the temporary name is removed after. Not
    // rename(RENAME_NOREPLACE), which the filesystems without O_TMPFILE
    // this is for (FUSE, GlusterFS) mostly refuse.
    SNAPFS_TRY(sys::linkat(file.staged_dir(), tmp, dirfd, name, 0));
    (void)sys::unlinkat(file.staged_dir(), tmp, 0);
  } else {
    // ATOMICITY: rename(2) replaces the target in one step, as for a
    // linked temporary name below. A crash before it leaves the old file
    // and the temporary name (removed by recovery); after it, the new file.
    SNAPFS_TRY(sys::renameat(file.staged_dir(), tmp, dirfd, name));
  }
  file.forget_staged_name();
  return {};
}

Result<void> publish_impl(TmpFile& file, int dirfd, const char* name,
                          const PublishOptions& opts) noexcept {
  if (!file.valid() || !file.anonymous()) return Error::of(EINVAL, "publish", name);
  if (!is_single_component(name)) return Error::of(EINVAL, "publish", name);

  // 1. Metadata of the file being replaced, or of a new file.
  auto target = sys::openat(dirfd, name, O_PATH | O_NOFOLLOW);
  if (target) {
    auto st = sys::fstat(target->get());
    if (!st) return std::move(st).error();
    if (opts.no_replace) return Error::of(EEXIST, "publish", name);
    if (S_ISREG(st->st_mode)) SNAPFS_TRY(copy_metadata(target->get(), file.fd(), opts));
    // Anything else (a directory, a symlink) keeps the private file's
    // metadata: renameat below gives EISDIR for a directory and replaces a
    // symlink as rename(2) does.
  } else if (target.error().value() == ENOENT) {
    SNAPFS_TRY(sys::fchmod(file.fd(), opts.create_mode & ~sys::current_umask() & 07777));
  } else {
    return std::move(target).error();
  }

  // 2. DURABILITY: the data must be on disk before the name points at it.
  // Otherwise a power loss after a journalled rename can show the new name
  // with blocks that were never written (zeros or a short file). fdatasync
  // also writes back pages dirtied through a MAP_SHARED mapping of the file:
  // they are the file's page cache. Metadata set in step 1 is ordered before
  // the rename by the journal of XFS, btrfs and ext4.
  if (opts.durability == Durability::full) {
    SNAPFS_TRY(sys::fsync(file.fd()));
  } else if (opts.durability == Durability::atomic) {
    SNAPFS_TRY(sys::fdatasync(file.fd()));
  }

  if (file.staged()) {
    SNAPFS_TRY(publish_staged(file, dirfd, name, opts.no_replace));
  } else if (opts.no_replace) {
    // O_EXCL-like publish: the final name directly, EEXIST if it exists.
    SNAPFS_TRY(link_anonymous(file.fd(), dirfd, name));
  } else {
    // 3. A temporary name in the staging directory or the target's own
    // directory: on the target's filesystem, so the rename below cannot
    // fail with EXDEV.
    char tmp[64];
    int tmpdir = opts.staging_dir >= 0 ? opts.staging_dir : dirfd;
    Result<void> linked = Error::of(EEXIST, "linkat");
    for (int attempt = 0; attempt < 8 && !linked && linked.error().value() == EEXIST; ++attempt) {
      SNAPFS_TRY(temp_name(tmp, opts.temp_prefix));
      linked = link_anonymous(file.fd(), tmpdir, tmp);
      if (!linked && linked.error().value() == EXDEV && tmpdir != dirfd) {
        tmpdir = dirfd;  // the staging directory is on another filesystem
        linked = Error::of(EEXIST, "linkat");
      }
    }
    if (!linked) return std::move(linked).error();

    // 4. ATOMICITY: rename(2) replaces the target in one step: every opener
    // of `name` gets the old inode or the new one, never a mix, never
    // nothing. A crash before this line leaves the old file and the
    // temporary name (removed by the next mount's recovery); after it, the
    // new file.
    auto renamed = sys::renameat(tmpdir, tmp, dirfd, name);
    if (!renamed) {
      // Nothing was replaced; take the temporary name away again. If even
      // that fails, report the first error: it is the cause.
      (void)sys::unlinkat(tmpdir, tmp, 0);
      return std::move(renamed).error();
    }
  }
  file.mark_named();

  // 5. DURABILITY (full): make the new directory entry itself durable.
  // fsync needs a real descriptor; `dirfd` may be O_PATH.
  if (opts.durability == Durability::full) {
    auto dir = sys::openat(dirfd, ".", O_RDONLY | O_DIRECTORY);
    if (!dir) return std::move(dir).error();
    SNAPFS_TRY(sys::fsync(dir->get()));
  }
  return {};
}

}  // namespace

Result<TmpFile> TmpFile::create_named_in(int dirfd, std::string_view prefix) noexcept {
  try {
    auto dir = sys::reopen(dirfd, O_PATH | O_DIRECTORY);
    if (!dir) return std::move(dir).error();
    char name[64];
    for (int attempt = 0;; ++attempt) {
      SNAPFS_TRY(temp_name(name, prefix));
      // ISOLATION: a new inode (O_EXCL: never a file someone else made
      // there, nor one a symlink points at), 0600, in a directory only its
      // owner may enter: nobody else can open it by this name.
      auto fd = sys::openat(dir->get(), name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
      if (fd) {
        TmpFile f(std::move(*fd));
        f.staged_dir_ = std::move(*dir);
        f.staged_name_ = name;
        return f;
      }
      if (fd.error().value() != EEXIST || attempt == 7) return std::move(fd).error();
    }
  } catch (const std::bad_alloc&) {
    return Error::of(ENOMEM, "create_named_in");
  }
}

Result<void> publish(TmpFile& file, int dirfd, const char* name,
                     const PublishOptions& opts) noexcept {
  auto r = publish_impl(file, dirfd, name, opts);
  if (r) return r;
  return std::move(r).error().with_path(name);
}

Result<void> publish_in_place(TmpFile& file, int target, Durability durability) noexcept {
  PublishOptions opts;
  opts.durability = durability;
  return publish_in_place(file, target, opts);
}

Result<void> publish_in_place(TmpFile& file, int target, const PublishOptions& opts) noexcept {
  const Durability durability = opts.durability;
  if (!file.valid() || !file.anonymous()) return Error::of(EINVAL, "publish_in_place");
  auto src = sys::fstat(file.fd());
  if (!src) return std::move(src).error();
  auto dst = sys::fstat(target);
  if (!dst) return std::move(dst).error();
  if (!S_ISREG(dst->st_mode)) return Error::of(EINVAL, "publish_in_place");
  if (src->st_size < dst->st_size) return Error::of(EOPNOTSUPP, "publish_in_place");
  if (durability != Durability::fast) SNAPFS_TRY(sys::fdatasync(file.fd()));
  // ATOMICITY: a whole-file FICLONE remaps every block of `target` to the
  // snapshot's and sets its size, under the filesystem's exclusive I/O and
  // mmap locks on both inodes (XFS: IOLOCK_EXCL + MMAPLOCK_EXCL; btrfs: the
  // inode and extent locks): a read(2) or a clone of `target` sees all old
  // or all new. The target is not longer than the snapshot, so there is no
  // old tail to keep or unaligned end to refuse (EINVAL). Filesystems
  // without reflinks say EOPNOTSUPP and the caller renames instead.
  auto r = sys::ficlone(target, file.fd());
  if (!r) {
    const int e = r.error().value();
    if (e == EOPNOTSUPP || e == EXDEV || e == EINVAL || e == ENOTTY || e == ENOSYS)
      return Error::of(EOPNOTSUPP, "publish_in_place");
    return r;
  }
  // SECURITY: what a write(2) to `target` would have dropped. FICLONE
  // drops it only for a caller without CAP_FSETID, and we may hold it.
  // Before the fsync below, so that it is as durable as the new content.
  if (opts.kill_caps) {
    if (auto rm = sys::fremovexattr(target, std::string(kCapsXattr).c_str());
        !rm && rm.error().value() != ENODATA && rm.error().value() != EOPNOTSUPP)
      return rm;
  }
  if (opts.kill_setid && (dst->st_mode & (S_ISUID | S_ISGID))) {
    const mode_t mode = killed_setid(dst->st_mode);
    if (mode != dst->st_mode) SNAPFS_TRY(sys::fchmod(target, mode & 07777));
  }
  // DURABILITY: the remap is metadata of `target`; fsync makes it durable.
  if (durability != Durability::fast) SNAPFS_TRY(sys::fsync(target));
  return {};
}

}  // namespace snapfs::core
