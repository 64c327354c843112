// Fixtures for the command tests (see cli_support.hpp).
#include "cli_support.hpp"

#include "checks.hpp"
#include "support/files.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

namespace snapfs::clitest {
namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void child_fail(const char* what) {
  const char* msg = std::strerror(errno);
  (void)!::write(2, what, std::strlen(what));
  (void)!::write(2, ": ", 2);
  (void)!::write(2, msg, std::strlen(msg));
  (void)!::write(2, "\n", 1);
  ::_exit(127);
}

// In the forked child, before exec: only async-signal-safe calls (the test
// process may have threads, e.g. from a previous test).
[[noreturn]] void exec_child(const std::vector<char*>& argv, const std::vector<char*>& envp,
                             int out, int err, const RunOptions& opts) {
  const int null = ::open("/dev/null", O_RDONLY);
  if (null < 0 || ::dup2(null, 0) < 0) child_fail("stdin");
  if (::dup2(out, 1) < 0 || ::dup2(err, 2) < 0) child_fail("dup2");
  if (opts.uid) {
    if (::setgroups(0, nullptr) != 0) child_fail("setgroups");
    if (::setresgid(opts.gid, opts.gid, opts.gid) != 0) child_fail("setresgid");
    if (::setresuid(*opts.uid, *opts.uid, *opts.uid) != 0) child_fail("setresuid");
  }
  ::execvpe(argv[0], argv.data(), envp.data());
  child_fail(argv[0]);
}

struct Argv {
  std::vector<std::string> args, envs;
  std::vector<char*> argv, envp;
  Argv(const std::vector<std::string>& a, const RunOptions& opts) : args(a) {
    for (char** e = environ; *e != nullptr; ++e) {
      std::string s(*e);
      bool replaced = false;
      for (const auto& [k, v] : opts.env) replaced = replaced || s.rfind(k + "=", 0) == 0;
      if (!replaced) envs.push_back(s);
    }
    for (const auto& [k, v] : opts.env) envs.push_back(k + "=" + v);
    for (auto& s : args) argv.push_back(s.data());
    argv.push_back(nullptr);
    for (auto& s : envs) envp.push_back(s.data());
    envp.push_back(nullptr);
  }
};

bool within(const std::string& p, const std::string& dir) {
  return p.size() > dir.size() && p.compare(0, dir.size(), dir) == 0 && p[dir.size()] == '/';
}

}  // namespace

std::string snapfs_bin() {
  return SNAPFS_TEST_BIN;
}
std::string mount_helper_bin() {
  return SNAPFS_TEST_HELPER_BIN;
}

std::string Outcome::describe() const {
  std::ostringstream s;
  if (timed_out) s << "timed out; ";
  if (signal != 0) s << "signal " << signal << "; ";
  s << "exit " << code << "\n--- stdout:\n" << out << "--- stderr:\n" << err << "---";
  return s.str();
}

Outcome run(const std::vector<std::string>& args, const RunOptions& opts) {
  Outcome r;
  Argv a(args, opts);
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    r.err = "pipe failed";
    return r;
  }
  const pid_t pid = ::fork();
  if (pid == 0) exec_child(a.argv, a.envp, out[1], err[1], opts);
  ::close(out[1]);
  ::close(err[1]);
  const auto deadline = Clock::now() + opts.timeout;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  std::string* bufs[2] = {&r.out, &r.err};
  int open_fds = 2;
  while (open_fds > 0) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      r.timed_out = true;
      break;
    }
    const int n = ::poll(fds, 2, static_cast<int>(left));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      const ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        bufs[i]->append(buf, static_cast<std::size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) ::close(f.fd);
  }
  auto status = wait_exit(pid, r.timed_out ? 0ms
                                           : std::chrono::duration_cast<std::chrono::milliseconds>(
                                                 deadline - Clock::now() + 1s));
  if (!status) {
    r.timed_out = true;
    ::kill(pid, SIGKILL);
    status = wait_exit(pid, 10s);
  }
  if (status) {
    if (WIFEXITED(*status)) r.code = WEXITSTATUS(*status);
    if (WIFSIGNALED(*status)) r.signal = WTERMSIG(*status);
  }
  return r;
}

pid_t spawn(const std::vector<std::string>& args, const fs::path& log, const RunOptions& opts) {
  Argv a(args, opts);
  const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  const pid_t pid = ::fork();
  if (pid == 0) exec_child(a.argv, a.envp, fd, fd, opts);
  ::close(fd);
  return pid;
}

std::optional<int> wait_exit(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return std::nullopt;
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(5ms);
  }
}

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!pred()) {
    if (Clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

std::vector<MountLine> parse_mounts(std::string_view mountinfo) {
  std::vector<MountLine> out;
  std::istringstream lines{std::string(mountinfo)};
  for (std::string line; std::getline(lines, line);) {
    // The command's parser decides the line and its fields, one line at a time.
    auto parsed = cli::parse_mountinfo(line);
    if (parsed.size() != 1) continue;
    MountLine m;
    m.mountpoint = std::move(parsed[0].mountpoint);
    m.fstype = std::move(parsed[0].fstype);
    m.source = std::move(parsed[0].source);
    // The super options, which the command does not read: after "- fstype source".
    std::istringstream ls{line};
    const std::vector<std::string> f{std::istream_iterator<std::string>(ls), {}};
    const auto dash =
        std::find(f.begin() + std::min<std::ptrdiff_t>(6, static_cast<std::ptrdiff_t>(f.size())),
                  f.end(), "-");
    if (f.end() - dash > 3) m.options = *(dash + 3);
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<MountLine> mounts() {
  std::ifstream in("/proc/self/mountinfo");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_mounts(text.str());
}

std::optional<MountLine> mount_at(const fs::path& mountpoint) {
  std::optional<MountLine> top;
  for (auto& m : mounts()) {
    if (m.mountpoint == mountpoint.string()) top = m;
  }
  return top;
}

std::vector<MountLine> mounts_under(const fs::path& dir) {
  std::vector<MountLine> out;
  for (auto& m : mounts()) {
    if (within(m.mountpoint, dir.string())) out.push_back(m);
  }
  return out;
}

bool is_snapfs_mount(const fs::path& mountpoint) {
  const auto m = mount_at(mountpoint);
  return m && m->fstype == "fuse.snapfs";
}

std::vector<pid_t> processes_mentioning(const std::string& needle) {
  std::vector<pid_t> out;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return out;
  while (dirent* e = ::readdir(proc)) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0 || pid == ::getpid()) continue;
    // Plain read(2): the process may exit while we read, and libstdc++'s
    // filebuf throws on the ESRCH that read then returns.
    const std::string path = "/proc/" + std::string(e->d_name) + "/cmdline";
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd == -1) continue;
    std::string cmdline;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) cmdline.append(buf, static_cast<std::size_t>(n));
    ::close(fd);
    if (cmdline.find(needle) != std::string::npos) out.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(proc);
  return out;
}

std::map<std::string, std::string> tree_digest(const fs::path& dir) {
  return test::tree_digest(dir, /*with_mtime=*/true);
}

void write_file(const fs::path& p, const std::string& content) {
  std::ofstream o(p, std::ios::binary | std::ios::trunc);
  o << content;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

Scratch::Scratch() {
  std::string tmpl = "/tmp/snapfs-cli-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
  ::chmod(path_.c_str(), 0755);
}

Scratch::~Scratch() {
  const std::string what = cleanup();
  if (!what.empty())
    std::fprintf(stderr, "[cli fixture] cleaned up after the test: %s\n", what.c_str());
}

fs::path Scratch::mkdir(const std::string& name, mode_t mode, uid_t uid, gid_t gid) const {
  const fs::path p = path_ / name;
  fs::create_directories(p);
  ::chmod(p.c_str(), mode);
  if (uid != 0 || gid != 0) (void)!::chown(p.c_str(), uid, gid);
  return p;
}

std::string Scratch::cleanup() {
  if (path_.empty()) return {};
  std::string what;
  // Detach mounts, deepest (latest) first; lazily, so open files cannot stop it.
  for (int round = 0; round < 5; ++round) {
    auto ms = mounts_under(path_);
    if (ms.empty()) break;
    for (auto it = ms.rbegin(); it != ms.rend(); ++it) {
      what += "mount " + it->mountpoint + " (" + it->fstype + "); ";
      ::umount2(it->mountpoint.c_str(), MNT_DETACH);
    }
  }
  // Daemons (also in other mount namespaces) and helpers that mention us.
  auto pids = processes_mentioning(path_.string());
  for (pid_t p : pids) {
    what += "process " + std::to_string(p) + "; ";
    ::kill(p, SIGTERM);
  }
  if (!pids.empty() &&
      !wait_until([&] { return processes_mentioning(path_.string()).empty(); }, 5s)) {
    for (pid_t p : processes_mentioning(path_.string())) ::kill(p, SIGKILL);
    wait_until([&] { return processes_mentioning(path_.string()).empty(); }, 5s);
  }
  if (!mounts_under(path_).empty()) {
    what += "mounts remain, directory left in place";
    return what;
  }
  std::error_code ec;
  // Give a dropped uid's 0000 directories back before removing.
  for (auto it = fs::recursive_directory_iterator(path_, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec) && !it->is_symlink(ec)) ::chmod(it->path().c_str(), 0755);
  }
  fs::remove_all(path_, ec);
  path_.clear();
  return what;
}

bool have_fuse() {
  return ::geteuid() == 0 && ::access("/dev/fuse", R_OK | W_OK) == 0 &&
         (::access("/usr/bin/fusermount3", X_OK) == 0 || ::access("/bin/fusermount3", X_OK) == 0);
}

const DaemonProbe& probe_daemon() {
  static const DaemonProbe probe = [] {
    DaemonProbe p;
    Scratch s;
    const auto b = s.mkdir("b");
    const auto m = s.mkdir("m");
    const Outcome r = run({snapfs_bin(), "mount", b.string(), m.string()});
    if (r.code == 0 && is_snapfs_mount(m)) {
      const Outcome u = run({snapfs_bin(), "umount", m.string()});
      p.works = u.code == 0;
      if (!p.works) p.reason = "snapfs umount failed: " + u.describe();
    } else {
      p.reason = "snapfs mount failed: " + r.describe();
    }
    const std::string left = s.cleanup();
    if (!left.empty()) p.reason += " (probe left: " + left + ")";
    return p;
  }();
  return probe;
}

::testing::AssertionResult one_line_error(const Outcome& r) {
  if (r.timed_out) return ::testing::AssertionFailure() << "timed out: " << r.describe();
  if (r.code == 0) return ::testing::AssertionFailure() << "exit 0: " << r.describe();
  if (!r.out.empty()) return ::testing::AssertionFailure() << "stdout not empty: " << r.describe();
  if (r.err.rfind("snapfs: ", 0) != 0)
    return ::testing::AssertionFailure() << "no 'snapfs: ' prefix: " << r.describe();
  if (r.err.empty() || r.err.back() != '\n' || r.err.find('\n') != r.err.size() - 1) {
    return ::testing::AssertionFailure() << "not exactly one line: " << r.describe();
  }
  return ::testing::AssertionSuccess();
}

}  // namespace snapfs::clitest
