// Fixtures for the command tests: run the built snapfs binaries with
// separate stdout/stderr and a deadline, a scratch directory per test that
// takes down every mount and daemon it contains (also when the test failed),
// and a one-time probe of whether the FUSE daemon works yet.
#pragma once

#include <gtest/gtest.h>

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace snapfs::clitest {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// Built binaries (compile definitions from tests/cli/CMakeLists.txt).
std::string snapfs_bin();
std::string mount_helper_bin();

struct RunOptions {
  std::chrono::milliseconds timeout = 30s;
  std::optional<uid_t> uid;  // drop to this uid/gid (and no supplementary groups)
  gid_t gid = 0;
  std::vector<std::pair<std::string, std::string>> env;  // added or replaced
};

struct Outcome {
  int code = -1;           // exit code, or -1
  int signal = 0;          // killed by this signal
  bool timed_out = false;  // output still open or child alive at the deadline
  std::string out, err;
  std::string describe() const;  // for assertion messages
};

// fork + execvp (no shell); stdin from /dev/null. Waits until the child has
// exited AND both pipes are at EOF: a daemon that kept the caller's
// stdout/stderr open would make `$(snapfs mount ...)` hang, so that counts
// as a timeout.
Outcome run(const std::vector<std::string>& argv, const RunOptions& opts = {});

// Starts argv in the background with stdout+stderr appended to `log`.
pid_t spawn(const std::vector<std::string>& argv, const fs::path& log, const RunOptions& opts = {});
// waitpid with a deadline; nullopt if still running at the deadline.
std::optional<int> wait_exit(pid_t pid, std::chrono::milliseconds timeout);

// Polls `pred` every 10 ms until it is true or the deadline passes.
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 10s);

struct MountLine {
  std::string mountpoint, fstype, source;
  std::string options;  // the super options: user_id=, allow_other, default_permissions
};
// Lines of mountinfo text, parsed by the command's own parser
// (cli::parse_mountinfo, mount/checks.cpp) so that the tests cannot drift
// from it; `options` is the raw super-options field. Malformed lines are skipped.
std::vector<MountLine> parse_mounts(std::string_view mountinfo);
std::vector<MountLine> mounts();                                // /proc/self/mountinfo
std::optional<MountLine> mount_at(const fs::path& mountpoint);  // topmost there
std::vector<MountLine> mounts_under(const fs::path& dir);       // dir itself excluded
bool is_snapfs_mount(const fs::path& mountpoint);

// Processes (other than us) whose command line mentions `needle`: how the
// tests find daemons they started, also ones in another mount namespace.
std::vector<pid_t> processes_mentioning(const std::string& needle);

// Names, types, sizes, modes, mtimes and contents of everything below `dir`:
// "changes nothing" (test::tree_digest, support/files.hpp).
std::map<std::string, std::string> tree_digest(const fs::path& dir);

void write_file(const fs::path& p, const std::string& content);
std::string read_file(const fs::path& p);

// A fresh directory under /tmp, mode 0755 so that a dropped uid can reach
// what the test gives it. cleanup() detaches every mount below it, kills
// every process that mentions it, and only then removes it (never through a
// mount). Returns what it had to clean, empty if nothing.
class Scratch {
 public:
  Scratch();
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }
  fs::path mkdir(const std::string& name, mode_t mode = 0755, uid_t uid = 0, gid_t gid = 0) const;
  std::string cleanup();

 private:
  fs::path path_;
};

// Whether the daemon (fuse/, serve()) can mount yet; probed once per process
// by mounting and unmounting a scratch directory.
struct DaemonProbe {
  bool works = false;
  std::string reason;  // why not
};
const DaemonProbe& probe_daemon();

bool have_fuse();  // root, /dev/fuse and fusermount3

// One line on stderr, starting "snapfs: ", nothing on stdout.
::testing::AssertionResult one_line_error(const Outcome& r);

}  // namespace snapfs::clitest

#define SNAPFS_REQUIRE_ROOT()                                                                     \
  do {                                                                                            \
    if (!::snapfs::clitest::have_fuse()) GTEST_SKIP() << "needs root, /dev/fuse and fusermount3"; \
  } while (0)

#define SNAPFS_REQUIRE_DAEMON()                                                \
  do {                                                                         \
    SNAPFS_REQUIRE_ROOT();                                                     \
    const auto& probe_ = ::snapfs::clitest::probe_daemon();                    \
    ASSERT_TRUE(probe_.works) << "the daemon cannot mount: " << probe_.reason; \
  } while (0)
