// Mmap and MmapMut: a mapping of a private snapshot, committed by publish().
#include <snapfs/core/snapshot.hpp>

#include "sys/sys.hpp"

#include <cerrno>
#include <cstdint>
#include <limits>

namespace snapfs::core {
namespace {

constexpr auto kMaxLen = static_cast<std::uint64_t>(std::numeric_limits<std::ptrdiff_t>::max());

// A path split into an open parent directory (O_PATH) and a final name.
struct Target {
  DirFd dir;
  std::string name;
};

Result<Target> split(const std::filesystem::path& path) noexcept {
  try {
    std::string name = path.filename().string();
    // "dir/", ".", ".." name directories, never files.
    if (name.empty() || name == "." || name == "..")
      return Error::of(EISDIR, "open", path.native());
    const auto parent = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
    auto dir = sys::openat(AT_FDCWD, parent.c_str(), O_PATH | O_DIRECTORY);
    if (!dir) return std::move(dir).error();
    return Target{DirFd(std::move(*dir)), std::move(name)};
  } catch (const std::bad_alloc&) {
    return Error::of(ENOMEM, "open", path.native());
  }
}

// Like split(), but if the final component is a symlink, the target is the
// file it points to: commits replace that file and leave the link a link.
Result<Target> resolve(const std::filesystem::path& path) noexcept {
  auto t = split(path);
  if (!t) return t;
  auto st = sys::fstatat(t->dir.get(), t->name.c_str(), AT_SYMLINK_NOFOLLOW);
  if (!st || !S_ISLNK(st->st_mode)) return t;
  // Open through the link, then ask /proc where we landed.
  auto fd = sys::openat(t->dir.get(), t->name.c_str(), O_PATH);
  if (!fd) return std::move(fd).error();
  auto real = sys::readlinkat(AT_FDCWD, sys::proc_fd_path(fd->get()).c_str());
  if (!real) return std::move(real).error();
  return split(*real);
}

Result<UniqueFd> open_regular(int dirfd, const char* name, const std::string& shown) noexcept {
  // O_NONBLOCK: opening a FIFO must not block; it is refused just below.
  auto fd = sys::openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_NOCTTY);
  if (!fd) return Error(fd.error().code(), "open", shown);
  auto st = sys::fstat(fd->get());
  if (!st) return std::move(st).error();
  if (S_ISDIR(st->st_mode)) return Error::of(EISDIR, "open", shown);
  if (!S_ISREG(st->st_mode)) return Error::of(EINVAL, "open", shown);
  return fd;
}

// Maps all of a snapshot, at the length the clone left it (the original
// may have changed size since the caller looked).
Result<Mapping> map_all(int fd, bool writable) noexcept {
  auto st = sys::fstat(fd);
  if (!st) return std::move(st).error();
  const auto len = static_cast<std::uint64_t>(st->st_size);
  if (len > kMaxLen) return Error::of(EFBIG, "mmap");
  return Mapping::map(fd, static_cast<std::size_t>(len), writable);
}

// errnos of O_TMPFILE that mean "not in this directory" rather than a
// failure of the file itself: read-only filesystem or directory, or a
// filesystem without O_TMPFILE support.
bool tmpfile_refused(int err) noexcept {
  return err == EACCES || err == EPERM || err == EROFS || err == EOPNOTSUPP || err == EISDIR;
}

}  // namespace

Result<Mmap> Mmap::open_impl(const std::filesystem::path& path) noexcept {
  auto t = split(path);
  if (!t) return std::move(t).error();
  auto original = open_regular(t->dir.get(), t->name.c_str(), path.native());
  if (!original) return std::move(original).error();

  // The snapshot lives on the original's filesystem so that it can share
  // its extents. Where that directory refuses us a private file (read-only,
  // not ours), a read-only snapshot can live in memory instead, at O(n).
  auto priv = TmpFile::create_in(t->dir.get());
  if (!priv && tmpfile_refused(priv.error().value())) priv = TmpFile::create_in_memory();
  if (!priv) return std::move(priv).error();

  auto method = priv->clone_from(original->get());
  if (!method) return std::move(method).error();
  // ISOLATION: see Mapping::map. We keep no descriptor: once both fds close
  // at the end of this function, the mapping is the only reference to the
  // unnamed inode, so nothing can ever change what it maps, and unmapping
  // frees it.
  auto map = map_all(priv->fd(), /*writable=*/false);
  if (!map) return std::move(map).error();
  return Mmap(std::move(*map), *method);
}

Result<MmapMut> MmapMut::open_impl(const std::filesystem::path& path, MmapMutOptions opts) noexcept {
  auto t = resolve(path);
  if (!t) return std::move(t).error();
  auto original = open_regular(t->dir.get(), t->name.c_str(), path.native());
  if (!original) return std::move(original).error();
  // Writing a snapshot back needs what writing the file needs: the same
  // answer open(O_RDWR) would give, without opening it for writing (which
  // fails with ETXTBSY for a running program we could replace by rename).
  if (auto w = sys::faccessat(t->dir.get(), t->name.c_str(), W_OK, AT_EACCESS); !w)
    return Error(w.error().code(), "open", path.native());

  auto priv = TmpFile::create_in(t->dir.get());
  if (!priv) return std::move(priv).error();
  auto method = priv->clone_from(original->get());
  if (!method) return std::move(method).error();
  // ISOLATION: see Mapping::map; the descriptor stays inside this object.
  auto map = map_all(priv->fd(), /*writable=*/true);
  if (!map) return std::move(map).error();

  MmapMut m;
  m.dir_ = std::move(t->dir);
  m.name_ = std::move(t->name);
  m.private_ = std::move(*priv);
  m.map_ = std::move(*map);
  m.opts_ = opts;
  m.method_ = *method;
  return m;
}

Result<MmapMut> MmapMut::create_impl(const std::filesystem::path& path, MmapMutOptions opts) noexcept {
  // Nothing is opened, created or truncated at `path`: the seed's create()
  // truncated the file at once, losing it if the caller never committed.
  auto t = resolve(path);
  if (!t) return std::move(t).error();
  auto priv = TmpFile::create_in(t->dir.get());
  if (!priv) return std::move(priv).error();
  MmapMut m;
  m.dir_ = std::move(t->dir);
  m.name_ = std::move(t->name);
  m.private_ = std::move(*priv);
  m.opts_ = opts;
  return m;
}

Result<void> MmapMut::resize(std::size_t new_len) noexcept {
  if (!private_.valid()) return Error::of(EBADF, "resize");
  if (new_len > kMaxLen) return Error::of(EFBIG, "resize");
  const std::size_t old_len = map_.size();
  if (new_len == old_len) return {};
  // Growing: the file first, so the mapping never covers pages past EOF
  // (touching those raises SIGBUS). Shrinking: the mapping first, same reason.
  if (new_len > old_len) {
    SNAPFS_TRY(sys::ftruncate(private_.fd(), new_len));
    if (auto r = map_.remap(private_.fd(), new_len, true); !r) {
      (void)sys::ftruncate(private_.fd(), old_len);
      return r;
    }
  } else {
    SNAPFS_TRY(map_.remap(private_.fd(), new_len, true));
    if (auto r = sys::ftruncate(private_.fd(), new_len); !r) {
      // The file keeps its old length; map it all again so size() and the
      // file agree. If even that fails, size() is the smaller length and
      // the commit publishes the file's (longer) content: report the first error.
      (void)map_.remap(private_.fd(), old_len, true);
      return r;
    }
  }
  return {};
}

Result<void> MmapMut::write_at(std::size_t off, std::span<const std::byte> bytes) noexcept {
  if (!private_.valid()) return Error::of(EBADF, "write_at");
  if (off > kMaxLen || bytes.size() > kMaxLen - off) return Error::of(EFBIG, "write_at");
  // Nothing to write changes nothing, not even the length (pwrite of 0
  // bytes does not extend a file, so neither may the mapping).
  if (bytes.empty()) return {};
  // write(2) goes through the same page cache the mapping shows, so the
  // mapping sees these bytes at once; unlike a store into the mapping, a
  // block that cannot be allocated is an error value here.
  if (auto w = sys::pwrite_all(private_.fd(), bytes, off); !w) {
    // A write that failed part way may have extended the file: cut it back,
    // so that size(), the mapping and what a commit publishes still agree.
    // The bytes it did write inside the old length stay, as after a short
    // write(2).
    (void)sys::ftruncate(private_.fd(), map_.size());
    return w;
  }
  const std::size_t end = off + bytes.size();
  if (end > map_.size()) SNAPFS_TRY(map_.remap(private_.fd(), end, true));
  return {};
}

Result<void> MmapMut::commit() noexcept {
  if (!private_.valid()) return Error::of(EBADF, "commit", name_);
  // The published file must not be `private_` itself: the mapping would
  // then write straight into the published file. So publish a clone of it:
  // O(1) with reflinks (FICLONE writes back our dirty pages first), an
  // in-kernel copy elsewhere (which reads them from the page cache).
  auto next = TmpFile::create_in(dir_.get());
  if (!next) return std::move(next).error().with_path(name_);
  auto method = next->clone_from(private_.fd());
  if (!method) return std::move(method).error().with_path(name_);
  SNAPFS_TRY(publish(*next, dir_.get(), name_.c_str(), {.durability = opts_.durability}));
  method_ = *method;
  return {};
}

Result<void> MmapMut::commit_and_close() noexcept {
  if (!private_.valid()) return Error::of(EBADF, "commit", name_);
  // The snapshot itself becomes the file. Dirty pages stay in the page
  // cache and publish() writes them back before the rename.
  return publish_and_close(dir_.get(), name_.c_str());
}

Result<void> MmapMut::link(const std::filesystem::path& newpath) noexcept {
  if (!private_.valid()) return Error::of(EBADF, "link");
  auto t = split(newpath);
  if (!t) return std::move(t).error();
  return publish_and_close(t->dir.get(), t->name.c_str());
}

Result<void> MmapMut::publish_and_close(int dirfd, const char* name) noexcept {
  // The mapping goes first: no store may reach the inode once it has a name.
  const std::size_t len = map_.size();
  map_.reset();
  auto r = publish(private_, dirfd, name, {.durability = opts_.durability});
  if (!r) {
    // Still unnamed and still ours: map it again, so the caller can retry.
    if (auto m = Mapping::map(private_.fd(), len, true)) map_ = std::move(*m);
    return r;
  }
  private_ = TmpFile();
  dir_ = DirFd();
  return {};
}

namespace {
template <typename T>
Result<T> about(Result<T> r, const std::string& path) noexcept {
  if (r) return r;
  return std::move(r).error().with_path(path);
}
}  // namespace

Result<Mmap> Mmap::open(const std::filesystem::path& path) noexcept {
  return about(open_impl(path), path.native());
}
Result<MmapMut> MmapMut::open(const std::filesystem::path& path, MmapMutOptions opts) noexcept {
  return about(open_impl(path, opts), path.native());
}
Result<MmapMut> MmapMut::create(const std::filesystem::path& path, MmapMutOptions opts) noexcept {
  return about(create_impl(path, opts), path.native());
}

}  // namespace snapfs::core
