// The run's own process, and P's side of it (run_child.hpp).
#include "run_child.hpp"

#include "exit_codes.hpp"

#include <sys/sys.hpp>

#include <charconv>
#include <cerrno>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace snapfs::cli::run {

namespace {

constexpr std::array kForwarded{SIGINT, SIGTERM, SIGHUP, SIGQUIT};

void report(int sock, Step step, int err, int fd = -1) noexcept {
  const Record r{step, err};
  (void)send_datagram(sock, &r, sizeof r, fd);
}

[[noreturn]] void child_fails(int sock, Step step, int err) noexcept {
  report(sock, step, err);
  ::_exit(step == Step::exec    ? 127
          : step == Step::chdir ? exit_code::failure
                                : exit_code::host_lacks);
}

// "fd=<fd><rest>" into `out` (no allocation between fork and exec).
bool fuse_options(char* out, std::size_t size, int fd, const char* rest) noexcept {
  char digits[16];
  const auto [end, ec] = std::to_chars(digits, digits + sizeof digits, fd);
  const std::size_t n = static_cast<std::size_t>(end - digits), r = std::strlen(rest);
  if (ec != std::errc() || 3 + n + r + 1 > size) return false;
  std::memcpy(out, "fd=", 3);
  std::memcpy(out + 3, digits, n);
  std::memcpy(out + 3 + n, rest, r + 1);
  return true;
}

}  // namespace

[[noreturn]] void child_main(const ChildPlan& p, int sock) noexcept {
  p.signals->child_defaults();
  ::close(p.close_control);
  ::close(p.close_parent_end);
  if (::unshare(CLONE_NEWNS) != 0) child_fails(sock, Step::unshare, errno);
  // ISOLATION: the run's mount must stay in its namespace: with / shared
  // (systemd makes it so), a mount at M would propagate to the peers of
  // its mount and every process would see the run's view.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0)
    child_fails(sock, Step::private_mounts, errno);
  // SECURITY: M is resolved once, here, without following a symlink, and
  // must be the root P checked (the snapfs mount): whoever may rename a
  // directory above M cannot make the steps below act on another place
  // (the run's view mounted over /tmp, say). Its mount point's directory
  // is ".." of that root, and the mount goes onto the directory found
  // there, by descriptor (/proc/self/fd/N): no path is resolved again.
  auto root = core::sys::openat(AT_FDCWD, "/", O_PATH | O_DIRECTORY);
  if (!root) child_fails(sock, Step::detach, root.error().value());
  auto m = core::sys::openat_beneath(root->get(), p.target, O_PATH | O_DIRECTORY, 0,
                                     RESOLVE_NO_SYMLINKS);
  if (!m) child_fails(sock, Step::detach, m.error().value());
  struct stat mst {};
  if (::fstat(m->get(), &mst) != 0) child_fails(sock, Step::detach, errno);
  if (mst.st_dev != p.m_dev || mst.st_ino != p.m_ino) child_fails(sock, Step::detach, ESTALE);
  auto parent = core::sys::openat(m->get(), "..", O_PATH | O_DIRECTORY);
  if (!parent) child_fails(sock, Step::detach, parent.error().value());
  // The namespace's copy of M's own mount goes, and the run's view takes
  // its place: the run then holds nothing of M's connection, so `umount M`
  // outside ends that connection and its daemon (which ends the run) even
  // where / is not shared and no unmount propagates into this namespace.
  if (::umount2(core::sys::proc_fd_path(m->get()).c_str(), MNT_DETACH) != 0)
    child_fails(sock, Step::detach, errno);
  m->reset();  // it held the detached mount, and M's connection with it
  auto under = core::sys::openat(parent->get(), p.name, O_PATH | O_DIRECTORY | O_NOFOLLOW);
  if (!under) child_fails(sock, Step::detach, under.error().value());
  // Opened here, after unshare: the kernel refuses a /dev/fuse descriptor
  // opened in another user namespace than the mount's (fuse_fill_super),
  // which matters once ordinary users' runs make one.
  auto dev = core::sys::openat(AT_FDCWD, "/dev/fuse", O_RDWR);
  if (!dev) child_fails(sock, Step::open_fuse, dev.error().value());
  char options[256];
  if (!fuse_options(options, sizeof options, dev->get(), p.options))
    child_fails(sock, Step::mount, ENAMETOOLONG);
  if (::mount(p.source, core::sys::proc_fd_path(under->get()).c_str(), "fuse.snapfs",
              MS_NOSUID | MS_NODEV, options) != 0)
    child_fails(sock, Step::mount, errno);
  under->reset();
  parent->reset();
  root->reset();
  report(sock, Step::mounted, 0, dev->get());
  dev->reset();
  char go = 0;
  if (core::sys::retry([&] { return ::recv(sock, &go, 1, 0); }) != 1) ::_exit(exit_code::failure);
  // A cwd in M is on the main connection until it is looked up anew; only
  // now, as the daemon serves the run's connection, can that be done.
  if (p.cwd != nullptr && ::chdir(p.cwd) != 0) child_fails(sock, Step::chdir, errno);
  ::execvp(p.argv[0], p.argv);
  child_fails(sock, Step::exec, errno);
}

bool send_datagram(int sock, const void* data, std::size_t len, int pass_fd) noexcept {
  return core::sys::send_message(sock, std::string_view(static_cast<const char*>(data), len),
                                 pass_fd)
      .has_value();
}

Forwarding::Forwarding() {
  sigemptyset(&set_);
  for (int s : kForwarded) {
    struct sigaction old {};
    ::sigaction(s, nullptr, &old);
    if (old.sa_handler != SIG_IGN) sigaddset(&set_, s);
  }
  ::sigprocmask(SIG_BLOCK, &set_, &mask_);
  session_leader_ = ::getsid(0) == ::getpid();
  fd_.reset(::signalfd(-1, &set_, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!fd_)
    throw Failure(exit_code::failure, std::string("run: signalfd: ") + std::strerror(errno));
}

Forwarding::~Forwarding() { ::sigprocmask(SIG_SETMASK, &mask_, nullptr); }

void Forwarding::forward(pid_t child) const noexcept {
  // A signal from the terminal (^C, ^\: si_code SI_KERNEL) went to the
  // whole foreground process group, C included: forwarded, it would reach
  // C twice (a program that counts them would see two). A hangup is the
  // exception when P leads its session: then the kernel sent it to P alone.
  signalfd_siginfo si{};
  const std::span<std::byte> buf(reinterpret_cast<std::byte*>(&si), sizeof si);
  for (auto n = core::sys::read(fd_.get(), buf); n && *n == sizeof si;
       n = core::sys::read(fd_.get(), buf)) {
    const int sig = static_cast<int>(si.ssi_signo);
    if (si.ssi_code == SI_KERNEL && !(sig == SIGHUP && session_leader_)) continue;
    ::kill(child, sig);
  }
}

void Forwarding::child_defaults() const noexcept { ::sigprocmask(SIG_SETMASK, &mask_, nullptr); }

std::optional<Record> next_record(int sock, core::UniqueFd& fd) {
  auto in = core::sys::recv_message(sock, sizeof(Record));
  if (!in && in.error().value() != EMSGSIZE) return std::nullopt;
  if (in && in->eof) return std::nullopt;
  Record r{};
  if (!in || in->data.size() != sizeof r)
    throw Failure(exit_code::failure, "run: the run's process sent a malformed report");
  std::memcpy(&r, in->data.data(), sizeof r);
  if (static_cast<int>(r.step) < 0 || r.step > Step::exec)
    throw Failure(exit_code::failure, "run: the run's process sent a malformed report");
  fd = std::move(in->fd);
  return r;
}

RunProcess::~RunProcess() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  reap();
}

int RunProcess::wait() {
  // A pidfd: it refers to C only, and becomes readable when C exits.
  auto pidfd = core::sys::pidfd_open(pid_);
  if (!pidfd) return reap();  // C is unwaited for: its pid is still ours
  pollfd fds[2] = {{pidfd->get(), POLLIN, 0}, {signals_.fd(), POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) break;
    if (fds[1].revents & POLLIN) signals_.forward(pid_);
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) break;
  }
  return reap();
}

int RunProcess::reap() {
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = 0;
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

}  // namespace snapfs::cli::run
