#include "support/tempdir.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>
#include <vector>

namespace snapfs::test {
namespace {

void note(std::string& why, const std::string& path, const char* what, int err) {
  if (!why.empty()) why += "; ";
  why += std::string(what) + "(" + path + "): " + std::strerror(err);
}

// Empties the directory open as `dfd` (which lives on device `dev`).
// Works on descriptors so that a rename during cleanup cannot redirect it.
bool empty_dir(int dfd, dev_t dev, const std::string& shown, std::string& why) {
  const int iter_fd = ::dup(dfd);
  if (iter_fd == -1) {
    note(why, shown, "dup", errno);
    return false;
  }
  DIR* d = ::fdopendir(iter_fd);
  if (d == nullptr) {
    note(why, shown, "fdopendir", errno);
    ::close(iter_fd);
    return false;
  }
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(d)) {
    const std::string_view n = e->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  ::closedir(d);

  bool ok = true;
  for (const auto& name : names) {
    const std::string child = shown + "/" + name;
    struct stat st {};
    if (::fstatat(dfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == -1) {
      if (errno != ENOENT) {
        note(why, child, "fstatat", errno);
        ok = false;
      }
      continue;
    }
    if (S_ISDIR(st.st_mode)) {
      if (st.st_dev != dev) {
        // Still a mount point: never empty a filesystem we did not unmount.
        note(why, child, "still mounted, left alone", EBUSY);
        ok = false;
        continue;
      }
      // A test may have left it 0555; make it ours again (a no-op for root).
      ::fchmodat(dfd, name.c_str(), 0700, 0);
      const int cfd = ::openat(dfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (cfd == -1) {
        note(why, child, "openat", errno);
        ok = false;
        continue;
      }
      ok = empty_dir(cfd, dev, child, why) && ok;
      ::close(cfd);
      if (::unlinkat(dfd, name.c_str(), AT_REMOVEDIR) == -1 && errno != ENOENT) {
        note(why, child, "rmdir", errno);
        ok = false;
      }
    } else if (::unlinkat(dfd, name.c_str(), 0) == -1 && errno != ENOENT) {
      note(why, child, "unlink", errno);
      ok = false;
    }
  }
  return ok;
}

}  // namespace

std::filesystem::path test_tmp_base() {
  const char* env = std::getenv("SNAPFS_TEST_TMPDIR");
  if (env != nullptr && *env != '\0') return env;
  return "/tmp";
}

bool remove_tree(const std::filesystem::path& dir, std::string& why) noexcept {
  try {
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd == -1) {
      if (errno == ENOENT) return true;
      note(why, dir.string(), "open", errno);
      return false;
    }
    struct stat st {};
    bool ok = ::fstat(dfd, &st) == 0;
    if (!ok) note(why, dir.string(), "fstat", errno);
    if (ok) {
      ::fchmod(dfd, 0700);
      ok = empty_dir(dfd, st.st_dev, dir.string(), why);
    }
    ::close(dfd);
    if (ok && ::rmdir(dir.c_str()) == -1 && errno != ENOENT) {
      note(why, dir.string(), "rmdir", errno);
      ok = false;
    }
    return ok;
  } catch (const std::exception& e) {
    why += e.what();
    return false;
  }
}

TempDir::TempDir(std::string_view prefix) {
  std::string tmpl = (test_tmp_base() / prefix).string() + "XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr)
    throw std::system_error(errno, std::system_category(), "mkdtemp(" + tmpl + ")");
  path_ = tmpl;
}

TempDir& TempDir::operator=(TempDir&& o) noexcept {
  if (this != &o) {
    std::string why;
    if (!path_.empty()) remove(why);
    path_ = std::move(o.path_);
    o.path_.clear();
  }
  return *this;
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::string why;
  if (!remove(why)) std::fprintf(stderr, "TempDir: could not remove everything: %s\n", why.c_str());
}

bool TempDir::remove(std::string& why) noexcept {
  if (path_.empty()) return true;
  const bool ok = remove_tree(path_, why);
  if (ok) path_.clear();
  return ok;
}

}  // namespace snapfs::test
