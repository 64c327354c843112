// TempDir: a unique directory for one test, removed with everything in it.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace snapfs::test {

// Where test directories go: $SNAPFS_TEST_TMPDIR if it is set and not
// empty, else /tmp.
std::filesystem::path test_tmp_base();

// Removes `dir` and everything below it without crossing into another
// filesystem (a mount that could not be taken down is left alone, not
// emptied). Directories are made writable first, so a test that chmod'ed one
// to 0555 does not keep a non-root run from cleaning up. Returns false, and
// fills `why`, if anything was left behind.
bool remove_tree(const std::filesystem::path& dir, std::string& why) noexcept;

class TempDir {
public:
  // mkdtemp(<test_tmp_base()>/<prefix>XXXXXX). Throws std::system_error.
  explicit TempDir(std::string_view prefix = "snapfs-test-");
  TempDir(TempDir&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
  TempDir& operator=(TempDir&& o) noexcept;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  // Removes the tree; what cannot be removed is reported on stderr.
  ~TempDir();

  const std::filesystem::path& path() const noexcept { return path_; }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

  // Removes the tree now (the destructor then does nothing).
  bool remove(std::string& why) noexcept;

private:
  std::filesystem::path path_;
};

}  // namespace snapfs::test
