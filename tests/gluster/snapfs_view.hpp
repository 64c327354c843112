// SnapfsView: `snapfs mount -f B M` (the built binary) as a child of the
// test, its log in a file, for the GlusterFS tests. Stopped with `snapfs
// umount M`, as a user would, and reaped with a deadline; killed and
// detached lazily if that fails. Also on a failed test (the destructor).
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <string>
#include <utility>

namespace snapfs::test {

class SnapfsView {
public:
  // Mounts `b` at `m` (both existing directories) with `-o options` (none
  // if empty) and its log in `log`; returns once /proc/self/mountinfo
  // shows the mount, or null with `why`.
  static std::unique_ptr<SnapfsView> start(const std::filesystem::path& b,
                                           const std::filesystem::path& m,
                                           const std::string& options,
                                           const std::filesystem::path& log, std::string& why);
  SnapfsView(const SnapfsView&) = delete;
  SnapfsView& operator=(const SnapfsView&) = delete;
  // stop(); problems are printed on stderr.
  ~SnapfsView();

  // `snapfs umount M`, then the daemon must exit 0. False with the reason
  // (and the daemon killed, M detached) otherwise. Idempotent.
  bool stop(std::string& why);

  const std::filesystem::path& mnt() const noexcept { return m_; }
  std::string log() const;
  // The daemon's log lines at warn or worse, one per line.
  std::string bad_lines() const;

private:
  SnapfsView(std::filesystem::path m, std::filesystem::path log)
      : m_(std::move(m)), log_(std::move(log)) {}
  std::filesystem::path m_, log_;
  pid_t pid_ = -1;
  bool mounted_ = false;
};

}  // namespace snapfs::test
