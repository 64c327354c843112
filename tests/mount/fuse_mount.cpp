#include "fuse_mount.hpp"

#include <fcntl.h>
#include <sys/xattr.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <regex>
#include <sstream>
#include <thread>

namespace snapfs::test {

using namespace std::chrono_literals;

namespace {

// mountinfo escapes ' ', '\t', '\n' and '\\' as octal.
std::string unescape(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

bool is_mounted(const fs::path& mnt, std::string_view fstype) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // id parent major:minor root mountpoint opts... - fstype source superopts
    std::istringstream ls(line);
    std::string id, parent, dev, root, mp;
    ls >> id >> parent >> dev >> root >> mp;
    if (unescape(mp) != mnt.string()) continue;
    if (fstype.empty()) return true;
    const auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream rest(line.substr(dash + 3));
    std::string type;
    rest >> type;
    if (type == fstype) return true;
  }
  return false;
}

std::string param_name(const ::testing::TestParamInfo<FsKind>& info) {
  return fs_name(info.param);
}

void FuseMount::SetUp() {
  if (::geteuid() != 0) GTEST_SKIP() << "mount tests need root (FUSE mount, loop devices)";
  if (::access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "/dev/fuse is not available";
  LoopFs::Outcome outcome{};
  std::string why;
  LoopFsOptions fo;
  fo.size = fs_size();
  fo.mount_options = fs_mount_options();
  fs_ = LoopFs::make(kind(), fo, outcome, why);
  if (outcome == LoopFs::Outcome::skipped) GTEST_SKIP() << fs_name(kind()) << ": " << why;
  ASSERT_EQ(outcome, LoopFs::Outcome::mounted) << why;
  dir_ = std::make_unique<TempDir>("snapfs-mount-");
  // Other users (the allow_other test) must be able to reach M.
  ::chmod(dir_->path().c_str(), 0755);
  b_ = fs_->root() / "b";
  m_ = dir_->path() / "m";
  outside_ = dir_->path() / "outside";
  log_ = dir_->path() / "daemon.log";
  fs::create_directory(b_);
  fs::create_directory(m_);
  fs::create_directory(outside_);
  ::chmod(b_.c_str(), 0755);
  ASSERT_TRUE(start_daemon(why)) << why << "\n--- daemon log ---\n" << daemon_log();
  start_watchdog();
}

void FuseMount::start_watchdog() {
  wd_stop_ = false;
  wd_fired_ = false;
  const pid_t pid = daemon_;
  // Deadline: $SNAPFS_TEST_WATCHDOG_S (tests/mount sets 45 s, under its ctest
  // TIMEOUT), else 200 s for longer suites that reuse this fixture.
  std::chrono::seconds limit = 200s;
  if (const char* e = std::getenv("SNAPFS_TEST_WATCHDOG_S"); e && std::atoi(e) > 0)
    limit = std::chrono::seconds(std::atoi(e));
  wd_waiting_ = false;
  watchdog_ = std::thread([this, pid, limit] {
    std::unique_lock lk(wd_mu_);
    wd_waiting_ = true;
    wd_cv_.notify_all();
    if (wd_cv_.wait_for(lk, limit, [this] { return wd_stop_; })) return;
    wd_fired_ = true;
    // SIGKILL aborts the FUSE connection: blocked requests fail with
    // ENOTCONN/ECONNABORTED and the test can finish (docs/design-fuse.md,
    // "Kernel facts" 7).
    ::kill(pid, SIGKILL);
  });
  // Tests fork right after SetUp. Under AddressSanitizer (GCC 12's runtime
  // does not lock its allocator around fork) a fork while this new thread
  // is still starting, and allocating, can leave the child stuck on an
  // allocator lock forever: wait until the thread sleeps in its wait.
  std::unique_lock lk(wd_mu_);
  wd_cv_.wait(lk, [this] { return wd_waiting_; });
}

void FuseMount::stop_watchdog() {
  if (!watchdog_.joinable()) return;
  {
    std::lock_guard lk(wd_mu_);
    wd_stop_ = true;
  }
  wd_cv_.notify_all();
  watchdog_.join();
  EXPECT_FALSE(wd_fired_) << "the test hung past the watchdog deadline; the daemon was killed";
}

bool FuseMount::spawn_view(const fs::path& m, const fs::path& log, pid_t& pid, bool& mounted,
                           std::string& why) {
  // The daemon: `snapfs mount -f` (the CLI) if it was built, else the
  // test front end; SNAPFS_MOUNT_VIA=testd|cli chooses, and SNAPFS_TESTD
  // runs another build of the test front end (e.g. a ThreadSanitizer one).
  std::vector<std::string> args;
  const char* via = std::getenv("SNAPFS_MOUNT_VIA");
  const char* testd = std::getenv("SNAPFS_TESTD");
#ifdef SNAPFS_CLI
  const bool cli = !(via && std::string_view(via) == "testd") && !(testd && *testd) &&
                   !needs_testd();
#else
  const bool cli = false;
  if (via && std::string_view(via) == "cli" && !needs_testd()) {
    why = "SNAPFS_MOUNT_VIA=cli, but the snapfs command was not built";
    return false;
  }
#endif
  if (cli) {
#ifdef SNAPFS_CLI
    args = {SNAPFS_CLI, "mount", "-f"};
#endif
  } else {
    args = {testd && *testd ? testd : SNAPFS_TESTD, "-f"};
  }
  std::string opts = mount_options();
  // The whole suite runs a second time with the daemon serving every open
  // (tests/mount/CMakeLists.txt): the path used without root or on kernels
  // before 6.9.
  if (const char* k = std::getenv("SNAPFS_TEST_KERNEL_IO"); k && *k)
    opts += (opts.empty() ? "" : ",") + std::string("kernel_io=") + k;
  if (!opts.empty()) {
    args.push_back("-o");
    args.push_back(opts);
  }
  args.push_back(b_.string());
  args.push_back(m.string());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const unsigned nofile = daemon_nofile();
  const int logfd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (logfd < 0) {
    why = "cannot create the daemon log";
    return false;
  }
  pid = ::fork();
  if (pid == 0) {
    ::dup2(logfd, 1);
    ::dup2(logfd, 2);
    const int nul = ::open("/dev/null", O_RDONLY);
    ::dup2(nul, 0);
    if (nofile > 0) {
      const struct rlimit rl{nofile, nofile};
      if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) _exit(126);
    }
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  ::close(logfd);
  if (pid < 0) {
    why = "fork failed";
    return false;
  }
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (is_mounted(m, "fuse.snapfs")) {
      mounted = true;
      return true;
    }
    int st = 0;
    if (::waitpid(pid, &st, WNOHANG) == pid) {
      pid = -1;
      why = "the daemon exited before mounting (status " + std::to_string(st) + ")";
      return false;
    }
    std::this_thread::sleep_for(5ms);
  }
  why = "the mount did not appear within 10 s";
  return false;
}

bool FuseMount::start_daemon(std::string& why) {
  if (!spawn_view(m_, log_, daemon_, mounted_, why)) return false;
  char buf[2048];
  const ssize_t n = ::getxattr(m_.c_str(), "user.snapfs.status", buf, sizeof buf);
  kernel_passthrough_ =
      n > 0 && std::string_view(buf, static_cast<std::size_t>(n))
                       .find("\"data_path\":\"kernel passthrough\"") != std::string_view::npos;
  return true;
}

bool FuseMount::stop_daemon(std::string& why) {
  return stop_view(m_, daemon_, mounted_, why);
}

bool FuseMount::stop_view(const fs::path& m, pid_t& pid, bool& mounted, std::string& why) {
  bool ok = true;
  if (is_mounted(m)) {
    auto r = run_command({"fusermount3", "-u", m.string()}, 20s);
    if (!r.status.ok()) {
      ok = false;
      why += "fusermount3 -u: " + r.status.describe() + ": " + r.output;
      run_command({"umount", "-l", m.string()}, 20s);
    }
    mounted = false;
  }
  if (pid > 0) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    int st = 0;
    pid_t r = 0;
    while ((r = ::waitpid(pid, &st, WNOHANG)) == 0 &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(5ms);
    if (r == 0) {
      ok = false;
      why += " daemon did not exit after unmount; killed.";
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
      if (is_mounted(m)) run_command({"umount", "-l", m.string()}, 20s);
    } else if (r == pid && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
      ok = false;
      why += " daemon exit status " + std::to_string(st) + ".";
    }
    pid = -1;
  }
  return ok;
}

fs::path FuseMount::add_view(std::string& why) {
  View v;
  const std::string n = std::to_string(views_.size() + 2);
  v.m = dir_->path() / ("m" + n);
  v.log = dir_->path() / ("daemon" + n + ".log");
  std::error_code ec;
  fs::create_directory(v.m, ec);
  if (ec) {
    why = "cannot make " + v.m.string() + ": " + ec.message();
    return {};
  }
  const bool ok = spawn_view(v.m, v.log, v.pid, v.mounted, why);
  views_.push_back(v);  // stopped at teardown, also after a failed start
  return ok ? v.m : fs::path();
}

void FuseMount::kill_view(const fs::path& m) {
  for (auto& v : views_) {
    if (v.m != m || v.pid <= 0) continue;
    ::kill(v.pid, SIGKILL);
    int st = 0;
    ::waitpid(v.pid, &st, 0);
    v.pid = -1;
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (is_mounted(v.m) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(5ms);
    if (is_mounted(v.m)) run_command({"umount", "-l", v.m.string()}, 20s);
    v.mounted = false;
  }
}

void FuseMount::kill_daemon() {
  if (daemon_ <= 0) return;
  ::kill(daemon_, SIGKILL);
  int st = 0;
  ::waitpid(daemon_, &st, 0);
  daemon_ = -1;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (is_mounted(m_) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  if (is_mounted(m_)) run_command({"umount", "-l", m_.string()}, 20s);
  mounted_ = false;
}

bool FuseMount::remount(std::string& why) {
  if (daemon_ > 0 || mounted_) {
    why = "remount: the daemon is still running";
    return false;
  }
  stop_watchdog();
  if (!start_daemon(why)) return false;
  start_watchdog();
  return true;
}

std::string FuseMount::daemon_log() const {
  std::ifstream in(log_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void FuseMount::TearDown() {
  stop_watchdog();
  std::string why;
  for (auto& v : views_) {
    std::string vwhy;
    if (v.pid > 0 || v.mounted) {
      EXPECT_TRUE(stop_view(v.m, v.pid, v.mounted, vwhy)) << vwhy << " (" << v.m << ")";
    }
  }
  if (daemon_ > 0 || mounted_) {
    EXPECT_TRUE(stop_daemon(why)) << why << "\n--- daemon log ---\n" << daemon_log();
  }
  if (dir_) {
    std::string log = daemon_log();
    for (const auto& v : views_) {
      std::ifstream in(v.log);
      std::stringstream ss;
      ss << in.rdbuf();
      log += ss.str();
    }
    // A failed test shows what the daemon said (its last 100 lines).
    if (HasFailure()) {
      std::size_t at = log.size();
      for (int n = 0; n <= 100 && at != 0 && at != std::string::npos; ++n) at = log.rfind('\n', at - 1);
      std::cerr << "--- daemon log (end) ---\n" << log.substr(at == std::string::npos ? 0 : at + 1);
    }
    std::istringstream in(log);
    std::string line;
    std::string bad;
    // snapfs_testd: "<time> [<level>] <logger>: ..."; the CLI:
    // "<date> <time> <logger> <level>: ...".
    static const std::regex level_re(
        R"(^(\S+ \[(warning|error|critical)\] |\S+ \S+ \S+ (warning|error|critical): ))");
    while (std::getline(in, line)) {
      std::smatch mt;
      if (!std::regex_search(line, mt, level_re)) continue;
      const std::string lvl = mt[2].matched ? mt[2].str() : mt[3].str();
      if (lvl == "error" && allow_errors_) continue;
      bad += line + "\n";
    }
    EXPECT_TRUE(bad.empty()) << "the daemon logged at warn or worse:\n" << bad;
  }
  dir_.reset();
  if (fs_) {
    std::string fwhy;
    EXPECT_TRUE(fs_->teardown(fwhy)) << fwhy;
    fs_.reset();
  }
}

std::string FuseMount::status_field(std::string_view name) const {
  char buf[4096];
  const ssize_t n = ::getxattr(m_.c_str(), "user.snapfs.status", buf, sizeof buf);
  if (n <= 0) return "";
  const std::string s(buf, static_cast<std::size_t>(n));
  const std::string key = "\"" + std::string(name) + "\":";
  auto at = s.find(key);
  if (at == std::string::npos) return "";
  at += key.size();
  if (at < s.size() && s[at] == '"') {
    const auto end = s.find('"', at + 1);
    return end == std::string::npos ? "" : s.substr(at + 1, end - at - 1);
  }
  const auto end = s.find_first_of(",}", at);
  return end == std::string::npos ? "" : s.substr(at, end - at);
}

}  // namespace snapfs::test
