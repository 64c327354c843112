// SnapfsView (snapfs_view.hpp).
#include "snapfs_view.hpp"

#include "support/gluster.hpp"
#include "support/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>
#include <vector>

namespace snapfs::test {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr auto kMountDeadline = 20s;
constexpr auto kExitDeadline = 20s;

bool mounted_as(const fs::path& m, const std::string& fstype) {
  std::ifstream in("/proc/self/mountinfo");
  bool found = false;
  for (std::string line; std::getline(in, line);) {
    std::istringstream ls(line);
    std::string id, parent, devno, root, point;
    ls >> id >> parent >> devno >> root >> point;
    if (point != m.string()) continue;
    const auto sep = line.find(" - ");
    std::string type;
    if (sep != std::string::npos) std::istringstream(line.substr(sep + 3)) >> type;
    found = type == fstype;  // the topmost one counts
  }
  return found;
}

// waitpid with a deadline: the status, or -1 if still running.
int wait_for(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    int st = 0;
    const pid_t r = ::waitpid(pid, &st, WNOHANG);
    if (r == pid) return st;
    if (r == -1 && errno != EINTR) return 0;
    if (Clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(5ms);
  }
}

}  // namespace

std::unique_ptr<SnapfsView> SnapfsView::start(const fs::path& b, const fs::path& m,
                                              const std::string& options, const fs::path& log,
                                              std::string& why) {
  std::unique_ptr<SnapfsView> v(new SnapfsView(m, log));
  std::vector<std::string> args = {SNAPFS_TEST_BIN, "mount", "-f"};
  if (!options.empty()) args.insert(args.end(), {"-o", options});
  args.insert(args.end(), {b.string(), m.string()});
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd == -1) {
    why = "cannot create " + log.string();
    return nullptr;
  }
  std::fflush(nullptr);
  v->pid_ = ::fork();
  if (v->pid_ == 0) {
    const int nul = ::open("/dev/null", O_RDONLY);
    if (nul == -1 || ::dup2(nul, 0) == -1 || ::dup2(fd, 1) == -1 || ::dup2(fd, 2) == -1)
      ::_exit(127);
    ::close_range(3, ~0U, 0);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(fd);
  if (v->pid_ == -1) {
    why = "fork failed";
    return nullptr;
  }
  const auto deadline = Clock::now() + kMountDeadline;
  for (;;) {
    if (mounted_as(m, "fuse.snapfs")) {
      v->mounted_ = true;
      return v;
    }
    const int st = wait_for(v->pid_, 0ms);
    if (st != -1) {
      v->pid_ = -1;
      why = "snapfs mount -f exited before mounting (status " + std::to_string(st) + "):\n" +
            v->log();
      return nullptr;
    }
    if (Clock::now() >= deadline) {
      why = "the mount did not appear at " + m.string() + " within 20 s:\n" + v->log();
      return nullptr;  // the destructor kills the daemon
    }
    std::this_thread::sleep_for(5ms);
  }
}

bool SnapfsView::stop(std::string& why) {
  bool ok = true;
  if (mounted_) {
    const CommandResult r = run_command({SNAPFS_TEST_BIN, "umount", m_.string()}, kExitDeadline);
    if (!r.status.ok()) {
      ok = false;
      why += "snapfs umount " + m_.string() + ": " + r.status.describe() + ": " + r.output;
    }
    mounted_ = false;
  }
  if (pid_ > 0) {
    int st = wait_for(pid_, ok ? kExitDeadline : 0ms);
    if (st == -1) {
      ok = false;
      why += (why.empty() ? "" : "; ") + std::string("the daemon did not exit; killed");
      ::kill(pid_, SIGKILL);
      st = wait_for(pid_, kExitDeadline);
    } else if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
      ok = false;
      why += (why.empty() ? "" : "; ") + std::string("the daemon's exit status ") +
             std::to_string(st);
    }
    pid_ = -1;
  }
  // fusermount3's auto_unmount helper exits once the daemon has: wait for
  // it, so that nothing of this view outlives stop().
  for (const pid_t helper : processes_naming(m_)) {
    if (!wait_exited(helper, kExitDeadline)) {
      ok = false;
      why += (why.empty() ? "" : "; ") + ("process " + std::to_string(helper) + " still names " +
                                          m_.string() + "; killed");
      ::kill(helper, SIGKILL);
    }
  }
  // A daemon gone without its mount (killed, or stuck): detach it.
  if (mounted_as(m_, "fuse.snapfs")) {
    ok = false;
    why += (why.empty() ? "" : "; ") + std::string("still mounted; detached lazily");
    ::umount2(m_.c_str(), MNT_DETACH);
  }
  return ok;
}

SnapfsView::~SnapfsView() {
  std::string why;
  if (!stop(why)) std::fprintf(stderr, "SnapfsView(%s): %s\n", m_.c_str(), why.c_str());
}

std::string SnapfsView::log() const {
  std::ifstream in(log_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string SnapfsView::bad_lines() const {
  // "<date> <time> <logger> <level>: ..." (mount/main.cpp's stderr format).
  static const std::regex level_re(R"(^\S+ \S+ \S+ (warning|error|critical): )");
  std::istringstream in(log());
  std::string bad;
  for (std::string line; std::getline(in, line);)
    if (std::regex_search(line, level_re)) bad += line + "\n";
  return bad;
}

}  // namespace snapfs::test
