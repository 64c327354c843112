#include "support/process.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace snapfs::test {
namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const char* what) {
  // Only async-signal-safe calls between fork and exec/_exit.
  const int e = errno;
  const char* msg = std::strerror(e);
  (void)!::write(2, what, std::strlen(what));
  (void)!::write(2, ": ", 2);
  (void)!::write(2, msg, std::strlen(msg));
  (void)!::write(2, "\n", 1);
  ::_exit(127);
}

int pidfd_open(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

int remaining_ms(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1 << 30));
}

ExitStatus decode(int wstatus) {
  ExitStatus s;
  if (WIFEXITED(wstatus)) {
    s.exited = true;
    s.code = WEXITSTATUS(wstatus);
  } else if (WIFSIGNALED(wstatus)) {
    s.signal = WTERMSIG(wstatus);
  }
  return s;
}

// Waits for `pid` until `deadline`, reading `out_fd` (if >= 0) into `out`.
// Kills the child with SIGKILL when the deadline passes.
ExitStatus wait_child(pid_t pid, int out_fd, std::string* out, Clock::time_point deadline) {
  const int pidfd = pidfd_open(pid);
  if (pidfd == -1) {
    const int e = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    throw std::system_error(e, std::system_category(), "pidfd_open");
  }
  bool exited = false;
  bool timed_out = false;
  bool eof = out_fd < 0;
  while (!exited) {
    pollfd fds[2] = {{pidfd, POLLIN, 0}, {eof ? -1 : out_fd, POLLIN, 0}};
    const int ms = remaining_ms(deadline);
    if (ms == 0) {
      timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    const int n = ::poll(fds, 2, ms);
    if (n == -1 && errno == EINTR) continue;
    if (n == -1) break;
    if (fds[1].revents != 0) {
      char buf[4096];
      const ssize_t r = ::read(out_fd, buf, sizeof buf);
      if (r > 0 && out != nullptr) out->append(buf, static_cast<std::size_t>(r));
      if (r == 0 || (r == -1 && errno != EINTR && errno != EAGAIN)) eof = true;
    }
    if (fds[0].revents != 0) exited = true;
  }
  // What the child wrote before it exited is all in the pipe now.
  if (!eof) {
    ::fcntl(out_fd, F_SETFL, O_NONBLOCK);
    char buf[4096];
    ssize_t r;
    while ((r = ::read(out_fd, buf, sizeof buf)) > 0)
      if (out != nullptr) out->append(buf, static_cast<std::size_t>(r));
  }
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) == -1 && errno == EINTR) {
  }
  ::close(pidfd);
  ExitStatus s = decode(wstatus);
  s.timed_out = timed_out;
  return s;
}

// Forks a child that runs `fn` (after `prepare`) and _exit()s with its
// result; returns its pid.
pid_t fork_child(const std::function<int()>& fn, const std::function<bool()>& prepare) {
  std::fflush(nullptr);  // the child must not flush the parent's buffers twice
  const pid_t pid = ::fork();
  if (pid == -1) throw std::system_error(errno, std::system_category(), "fork");
  if (pid == 0) {
    int code = 125;
    try {
      if (prepare && !prepare()) ::_exit(124);
      code = fn();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: exception: %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "child: unknown exception\n");
    }
    std::fflush(nullptr);
    ::_exit(code);
  }
  return pid;
}

bool drop_to(uid_t uid, gid_t gid) {
  if (::setgroups(0, nullptr) == -1 || ::setresgid(gid, gid, gid) == -1 ||
      ::setresuid(uid, uid, uid) == -1) {
    std::perror("run_as: dropping privileges");
    return false;
  }
  return true;
}

ExitStatus fork_and_run(const std::function<int()>& fn, std::chrono::milliseconds timeout,
                        const std::function<bool()>& prepare) {
  const auto deadline = Clock::now() + timeout;
  const pid_t pid = fork_child(fn, prepare);
  return wait_child(pid, -1, nullptr, deadline);
}

}  // namespace

std::string ExitStatus::describe() const {
  std::string s;
  if (exited) {
    s = "exit " + std::to_string(code);
  } else if (signal != 0) {
    const char* name = ::sigabbrev_np(signal);
    s = std::string("signal SIG") + (name != nullptr ? name : std::to_string(signal).c_str());
  } else {
    s = "unknown status";
  }
  if (timed_out) s += " (timed out and killed)";
  return s;
}

std::string find_program(std::string_view name) {
  if (name.find('/') != std::string_view::npos)
    return ::access(std::string(name).c_str(), X_OK) == 0 ? std::string(name) : std::string();
  std::string dirs;
  if (const char* p = std::getenv("PATH")) dirs = p;
  dirs += ":/usr/local/sbin:/usr/sbin:/sbin:/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    const std::size_t end = std::min(dirs.find(':', start), dirs.size());
    const std::string dir = dirs.substr(start, end - start);
    if (!dir.empty()) {
      const std::string cand = dir + "/" + std::string(name);
      if (::access(cand.c_str(), X_OK) == 0) return cand;
    }
    start = end + 1;
  }
  return {};
}

CommandResult run_command(const std::vector<std::string>& argv,
                          std::chrono::milliseconds timeout) {
  CommandResult res;
  if (argv.empty()) throw std::invalid_argument("run_command: empty argv");
  const std::string prog = find_program(argv[0]);
  if (prog.empty()) {
    res.status.exited = true;
    res.status.code = 127;
    res.output = argv[0] + ": not found";
    return res;
  }
  // Everything the child needs is allocated before fork().
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));  // execv takes char*const*
  cargv.push_back(nullptr);

  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) == -1) throw std::system_error(errno, std::system_category(), "pipe2");
  std::fflush(nullptr);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const pid_t pid = ::fork();
  if (pid == -1) {
    const int e = errno;
    ::close(pipefd[0]);
    ::close(pipefd[1]);
    throw std::system_error(e, std::system_category(), "fork");
  }
  if (pid == 0) {
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull == -1 || ::dup2(devnull, 0) == -1) die("stdin");
    if (::dup2(pipefd[1], 1) == -1 || ::dup2(pipefd[1], 2) == -1) die("dup2");
    ::execv(prog.c_str(), cargv.data());
    die(prog.c_str());
  }
  ::close(pipefd[1]);
  res.status = wait_child(pid, pipefd[0], &res.output, deadline);
  ::close(pipefd[0]);
  return res;
}

ExitStatus run_in_child(const std::function<int()>& fn, std::chrono::milliseconds timeout) {
  return fork_and_run(fn, timeout, {});
}

ExitStatus run_as(uid_t uid, gid_t gid, const std::function<int()>& fn,
                  std::chrono::milliseconds timeout) {
  return fork_and_run(fn, timeout, [uid, gid] { return drop_to(uid, gid); });
}

Child::Child(uid_t uid, gid_t gid, const std::function<int()>& fn) {
  pid_ = fork_child(fn, [uid, gid] { return drop_to(uid, gid); });
}

Child::Child(const std::function<int()>& fn) { pid_ = fork_child(fn, {}); }

Child::~Child() {
  if (pid_ > 0) (void)wait(std::chrono::milliseconds(0));
}

ExitStatus Child::wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return status_;
  status_ = wait_child(std::exchange(pid_, -1), -1, nullptr, Clock::now() + timeout);
  return status_;
}

}  // namespace snapfs::test
