// `snapfs run M -- CMD [ARGS...]` and `snapfs runs M`: the client side of
// runs (docs/design-run.md, "How a run starts"). A run is CMD, and
// everything it starts, seeing M through a FUSE connection of its own: the
// run's process C enters a mount namespace of its own, mounts a new
// connection of /dev/fuse at M there, hands the descriptor to this process
// (P) and executes CMD once P has given it to the daemon over its control
// socket. P forwards signals to C and tells the daemon how CMD ended.
//
// The messages: fuse/include/snapfs/fuse/control.hpp.
#include "commands.hpp"

#include "checks.hpp"
#include "exit_codes.hpp"
#include "report.hpp"

#include <snapfs/fuse/control.hpp>
#include <snapfs/fuse/daemon.hpp>
#include <snapfs/fuse/printable.hpp>
#include <sys/sys.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <sched.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace snapfs::cli {
namespace {

std::string err_text(int e) { return std::strerror(e); }

bool decimal(std::string_view s) {
  return !s.empty() && s.size() <= 19 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// What the daemon's description (kDaemonXattr) says about runs.
struct Daemon {
  std::optional<std::string> control;  // its control socket ("": none); none: older
  std::optional<std::string> run;  // the run whose view M is, as seen from here
  bool default_permissions = true;
  std::string pid, pid_namespace;  // who serves M (in which pid namespace)
};

[[noreturn]] void older(const char* what, const std::string& shown) {
  throw Failure(exit_code::failure, std::string(what) + ": the daemon of " + shown +
                                        " does not take runs (it is older than this snapfs)");
}

// The control socket of `d`, or why there is none.
const std::string& control_of(const Daemon& d, const char* what, const std::string& shown) {
  if (!d.control) older(what, shown);
  if (d.control->empty())
    throw Failure(exit_code::failure, std::string(what) + ": the daemon of " + shown +
                                          " takes no runs (it could not make its control "
                                          "socket; its log says why)");
  return *d.control;
}

Daemon describe(const std::string& path, const char* what, const std::string& shown) {
  std::string text;
  if (auto r = core::sys::getxattr_path(path.c_str(), fuse::kDaemonXattr)) {
    text.assign(r->begin(), r->end());
  } else if (const int e = r.error().value(); e == ENODATA || e == ENOTSUP) {
    older(what, shown);
  } else {
    text = read_daemon_xattr(path, fuse::kDaemonXattr, shown);  // says why, as status does
  }
  const Json doc = parse_json(text);
  if (doc.type != Json::Type::object)
    throw Failure(exit_code::failure,
                  "the daemon of " + shown + " sent a description that is not a JSON object");
  Daemon d;
  if (const Json* c = doc.find("control"); c != nullptr)
    d.control = c->type == Json::Type::string ? c->text : std::string();
  if (const Json* r = doc.find("run"); r != nullptr && r->type != Json::Type::null) {
    const Json* id = r->find("id");
    d.run = id != nullptr && id->type == Json::Type::number ? id->text : std::string("?");
  }
  if (const Json* p = doc.find("pid"); p != nullptr && p->type == Json::Type::number)
    d.pid = p->text;
  if (const Json* n = doc.find("pid_namespace"); n != nullptr && n->type == Json::Type::string)
    d.pid_namespace = n->text;
  if (const Json* o = doc.find("options"); o != nullptr) {
    if (const Json* dp = o->find("default_permissions");
        dp != nullptr && dp->type == Json::Type::boolean)
      d.default_permissions = dp->boolean;
  }
  return d;
}

// Async-signal-safe (C sends its reports between fork and exec).
bool send_datagram(int sock, const void* data, std::size_t len, int pass_fd) noexcept {
  return core::sys::send_message(sock, std::string_view(static_cast<const char*>(data), len),
                                 pass_fd)
      .has_value();
}

// The daemon's control socket, and the request/reply exchange on it.
class Control {
 public:
  // SECURITY: the socket is found by a path in B, and whoever may write
  // B's top directory can put a socket of their own there: it is the
  // daemon's only if the process listening is the one that serves M (its
  // pid as M's own answer gives it, in our pid namespace). Otherwise that
  // process would get root's begin and its /dev/fuse descriptor, and serve
  // root's command whatever it likes.
  Control(const Daemon& daemon, const std::string& socket_path, const char* what,
          std::string shown)
      : what_(what), shown_(std::move(shown)) {
    auto fd = core::sys::seqpacket_connect(socket_path);
    if (!fd) unreachable(fd.error().value());
    fd_ = std::move(*fd);
    auto ns = core::sys::readlinkat(AT_FDCWD, "/proc/self/ns/pid");
    if (!ns || daemon.pid_namespace != *ns || daemon.pid.empty())
      throw Failure(exit_code::failure, std::string(what_) + ": the daemon of " + shown_ +
                                            " is in another pid namespace: cannot tell that "
                                            "its control socket is its own");
    auto peer = core::sys::peer_credentials(fd_.get());
    if (!peer || std::to_string(peer->pid) != daemon.pid)
      throw Failure(exit_code::failure,
                    std::string(what_) + ": " + socket_path + " is not the control socket of " +
                        "the daemon of " + shown_ + " (another process listens there)");
  }

  [[nodiscard]] int fd() const noexcept { return fd_.get(); }

  // A reply: "ok" and its fields, "error" and its errno and message, or
  // nothing (the daemon closed the connection or could not be written to).
  struct Reply {
    enum class Kind { ok, error, gone } kind = Kind::gone;
    std::vector<std::string> fields;  // after "ok"
    int err = 0;
    std::string message;
  };

  Reply exchange(const std::vector<std::string>& request, int pass_fd = -1) {
    const std::string msg = fuse::control::join(request);
    if (msg.size() > fuse::control::kMessageMax)
      throw Failure(exit_code::failure, std::string(what_) + ": the request is too long for " +
                                            "the daemon (" + std::to_string(msg.size()) +
                                            " bytes, at most " +
                                            std::to_string(fuse::control::kMessageMax) + ")");
    if (!core::sys::send_message(fd_.get(), msg, pass_fd)) return {};
    // Descriptors are never part of a reply: one that came is closed.
    auto in = core::sys::recv_message(fd_.get(), fuse::control::kMessageMax);
    if (!in && in.error().value() == EMSGSIZE) malformed();
    if (!in || in->eof) return {};
    auto fields = fuse::control::split(in->data);
    Reply r;
    if (!fields.empty() && fields[0] == "ok") {
      r.kind = Reply::Kind::ok;
      r.fields.assign(fields.begin() + 1, fields.end());
      return r;
    }
    if (fields.size() != 3 || fields[0] != "error") malformed();
    const auto [p, ec] =
        std::from_chars(fields[1].data(), fields[1].data() + fields[1].size(), r.err);
    if (ec != std::errc() || p != fields[1].data() + fields[1].size()) malformed();
    r.kind = Reply::Kind::error;
    r.message = fields[2];
    return r;
  }

  // The fields of the `ok` reply to `request`; anything else throws.
  std::vector<std::string> ask(const std::vector<std::string>& request, int pass_fd = -1) {
    Reply r = exchange(request, pass_fd);
    if (r.kind == Reply::Kind::gone)
      throw Failure(exit_code::failure,
                    std::string(what_) + ": the daemon of " + shown_ + " closed the connection");
    if (r.kind == Reply::Kind::error) refused(r);
    return std::move(r.fields);
  }

  [[noreturn]] void refused(const Reply& r) const {
    throw Failure(r.err == EACCES || r.err == EPERM ? exit_code::not_permitted : exit_code::failure,
                  std::string(what_) + ": " + r.message);
  }

  [[noreturn]] void malformed() const {
    throw Failure(exit_code::failure,
                  std::string(what_) + ": the daemon of " + shown_ + " sent a malformed reply");
  }

 private:
  [[noreturn]] void unreachable(int e) const {
    throw Failure(
        e == EACCES || e == EPERM ? exit_code::not_permitted : exit_code::failure,
        std::string(what_) + ": cannot reach the daemon of " + shown_ + ": " + err_text(e));
  }

  const char* what_;
  std::string shown_;
  core::UniqueFd fd_;
};

// ---- Signals: P forwards these to C while C runs.

constexpr std::array kForwarded{SIGINT, SIGTERM, SIGHUP, SIGQUIT};

// P keeps the forwarded signals blocked from before the fork to its exit
// and reads them from a signalfd while it waits for C (RunProcess::wait):
// no handler runs at an arbitrary point, and none is lost between the fork
// and the wait. A signal P ignores stays ignored, for CMD too (exec keeps
// SIG_IGN), and is not forwarded. The destructor puts the mask back.
class Forwarding {
 public:
  Forwarding() {
    sigemptyset(&set_);
    for (int s : kForwarded) {
      struct sigaction old {};
      ::sigaction(s, nullptr, &old);
      if (old.sa_handler != SIG_IGN) sigaddset(&set_, s);
    }
    ::sigprocmask(SIG_BLOCK, &set_, &mask_);
    session_leader_ = ::getsid(0) == ::getpid();
    fd_.reset(::signalfd(-1, &set_, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!fd_) throw Failure(exit_code::failure, "run: signalfd: " + err_text(errno));
  }
  Forwarding(const Forwarding&) = delete;
  Forwarding& operator=(const Forwarding&) = delete;
  ~Forwarding() { ::sigprocmask(SIG_SETMASK, &mask_, nullptr); }

  int fd() const noexcept { return fd_.get(); }

  // Every signal waiting on the signalfd, passed on to `child`. A signal
  // from the terminal (^C, ^\: si_code SI_KERNEL) went to the whole
  // foreground process group, C included: forwarded, it would reach C
  // twice (a program that counts them would see two). A hangup is the
  // exception when P leads its session: then the kernel sent it to P alone.
  void forward(pid_t child) const noexcept {
    signalfd_siginfo si{};
    const std::span<std::byte> buf(reinterpret_cast<std::byte*>(&si), sizeof si);
    for (auto n = core::sys::read(fd_.get(), buf); n && *n == sizeof si;
         n = core::sys::read(fd_.get(), buf)) {
      const int sig = static_cast<int>(si.ssi_signo);
      if (si.ssi_code == SI_KERNEL && !(sig == SIGHUP && session_leader_)) continue;
      ::kill(child, sig);
    }
  }

  // In C, right after fork (async-signal-safe): the mask P had.
  void child_defaults() const noexcept { ::sigprocmask(SIG_SETMASK, &mask_, nullptr); }

 private:
  sigset_t set_{};
  sigset_t mask_{};
  bool session_leader_ = false;
  core::UniqueFd fd_;
};

// ---- C, the run's process

// What C tells P on their socket pair before CMD runs: that the view is
// mounted (with its /dev/fuse descriptor), or which step failed with which
// errno. A successful exec closes C's end (SOCK_CLOEXEC): P reads EOF.
enum class Step : int { mounted, unshare, private_mounts, detach, open_fuse, mount, chdir, exec };
struct Record {
  Step step;
  int err;
};

// Everything C needs, prepared by P before fork: C keeps to syscalls
// (P has no other thread, so the allocation of a failed openat's Error
// would be safe too).
struct ChildPlan {
  const Forwarding* signals;
  int close_control;     // P's descriptors C must not keep: the control socket
  int close_parent_end;  // and P's end of the pair (EOF for C when P dies)
  const char* source;    // "snapfs-run-<id>"
  const char* target;    // M, canonical, without its leading '/'
  const char* name;      // its last component
  dev_t m_dev;           // M's root as P found it (the snapfs mount's root)
  ino_t m_ino;
  const char* options;   // the mount options after "fd=N"
  const char* cwd;       // chdir here once the daemon serves the view, or nullptr
  char* const* argv;
};

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

// The next record from C (with the descriptor that came with it, if any),
// or nothing at EOF.
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

// C from P's side: killed and reaped unless waited for.
class RunProcess {
 public:
  RunProcess(pid_t pid, const Forwarding& signals) : pid_(pid), signals_(signals) {}
  RunProcess(const RunProcess&) = delete;
  RunProcess& operator=(const RunProcess&) = delete;
  ~RunProcess() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    reap();
  }

  // Waits for C to end, forwarding signals meanwhile; its status as a
  // shell gives it (128 + N if signal N ended it).
  int wait() {
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

 private:
  int reap() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = 0;
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
  }

  pid_t pid_;
  const Forwarding& signals_;
};

// Why C could not get as far as CMD (step, errno): message and exit code.
[[noreturn]] void setup_failed(const Record& r, const std::string& shown) {
  const std::string e = err_text(r.err);
  switch (r.step) {
    case Step::unshare:
      throw Failure(exit_code::host_lacks,
                    "run: cannot make a mount namespace (unshare: " + e + ")");
    case Step::private_mounts:
      throw Failure(exit_code::host_lacks,
                    "run: cannot keep the run's mount private (mount --make-rslave /: " + e + ")");
    case Step::detach:
      if (r.err == ESTALE)
        throw Failure(exit_code::failure, "run: " + shown +
                                              " is no longer the snapfs mount it was (moved or "
                                              "replaced while the run started)");
      throw Failure(exit_code::failure,
                    "run: cannot put the run's view at " + shown + " (" + e + ")");
    case Step::open_fuse:
      throw Failure(exit_code::host_lacks, "run: cannot open /dev/fuse (" + e + ")");
    case Step::mount:
      throw Failure(exit_code::host_lacks,
                    "run: cannot mount the run's view at " + shown + " (mount: " + e + ")");
    default:
      throw Failure(exit_code::failure, "run: the run's process failed before CMD (" + e + ")");
  }
}

std::string current_dir() {
  std::error_code ec;
  auto cwd = std::filesystem::current_path(ec);
  if (ec)
    throw Failure(exit_code::failure, "run: cannot tell the current directory: " + ec.message());
  return cwd.string();
}

void warn(const std::string& line) {
  std::fprintf(stderr, "snapfs: %s\n", fuse::printable(line).c_str());
}

// `end`: how CMD ended. The daemon may be gone by now; CMD's status stands.
void end_run(Control& control, int status) {
  try {
    const auto r = control.exchange({"end", std::to_string(status)});
    if (r.kind == Control::Reply::Kind::error) warn("run: " + r.message);
  } catch (const Failure& f) {
    warn(f.what());  // a malformed reply
  }
}

}  // namespace

int run_run(const std::string& mountpoint, const std::vector<std::string>& command) {
  if (command.empty()) throw Failure(exit_code::usage, "run: no command given");
  const std::string path = locate_snapfs_mount(mountpoint);
  const Daemon daemon = describe(path, "run", mountpoint);
  if (daemon.run)
    throw Failure(exit_code::not_permitted,
                  "runs do not nest: " + mountpoint + " is the view of run " + *daemon.run);
  const std::string& socket_path = control_of(daemon, "run", mountpoint);
  if (core::sys::geteuid() != 0)
    throw Failure(exit_code::not_permitted, "run: only root can start a run yet");

  const std::string cwd = current_dir();
  Control control(daemon, socket_path, "run", mountpoint);
  std::vector<std::string> begin{"begin", cwd};
  begin.insert(begin.end(), command.begin(), command.end());
  const auto id = control.ask(begin);
  if (id.size() != 1 || !decimal(id[0])) control.malformed();

  const std::string source = "snapfs-run-" + id[0];
  const std::string options = std::string(",rootmode=40000,user_id=0,group_id=0") +
                              (daemon.default_permissions ? ",default_permissions" : "") +
                              ",allow_other";
  std::vector<std::string> args = command;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  auto pair = core::sys::seqpacket_pair();
  if (!pair) throw Failure(exit_code::failure, "run: " + pair.error().message());
  core::UniqueFd ours = std::move(pair->first), theirs = std::move(pair->second);

  Forwarding signals;
  // What the child must find at M: the root of the mount checked above.
  struct stat m_root {};
  if (::stat(path.c_str(), &m_root) != 0)
    throw Failure(exit_code::failure, "run: cannot stat " + mountpoint + ": " + err_text(errno));
  const std::string name = std::filesystem::path(path).filename().string();
  if (path.size() < 2 || path[0] != '/' || name.empty())
    throw Failure(exit_code::failure, "run: cannot run with a view at " + mountpoint);
  const ChildPlan plan{.signals = &signals,
                       .close_control = control.fd(),
                       .close_parent_end = ours.get(),
                       .source = source.c_str(),
                       .target = path.c_str() + 1,
                       .name = name.c_str(),
                       .m_dev = m_root.st_dev,
                       .m_ino = m_root.st_ino,
                       .options = options.c_str(),
                       .cwd = path_within(cwd, path) ? cwd.c_str() : nullptr,
                       .argv = argv.data()};
  const pid_t pid = ::fork();
  if (pid < 0) throw Failure(exit_code::failure, "run: fork: " + err_text(errno));
  if (pid == 0) child_main(plan, theirs.get());
  // From here on every way out kills and reaps C (RunProcess), and the
  // daemon, seeing the control socket close without `end`, drops the run.
  RunProcess child(pid, signals);
  theirs.reset();

  core::UniqueFd dev;
  const auto mounted = next_record(ours.get(), dev);
  if (!mounted) {
    const int status = child.wait();
    throw Failure(status > 128 ? status : exit_code::failure,
                  status > 128 ? "run: the run's process was killed by signal " +
                                     std::to_string(status - 128) + " before CMD started"
                               : "run: the run's process ended before CMD started");
  }
  if (mounted->step != Step::mounted) setup_failed(*mounted, mountpoint);
  if (!dev)
    throw Failure(exit_code::failure, "run: the run's process sent no /dev/fuse descriptor");
  control.ask({"attach"}, dev.get());
  dev.reset();
  const char go = 'g';
  (void)send_datagram(ours.get(), &go, 1, -1);  // if C is gone, the next read says so

  // EOF: CMD is running (C's end closed at exec), or C died on the way.
  int status = 0;
  core::UniqueFd none;
  if (const auto failed = next_record(ours.get(), none)) {
    if (failed->step == Step::exec) {
      warn("run: cannot execute " + command[0] + ": " + err_text(failed->err));
      status = failed->err == ENOENT ? 127 : 126;
    } else if (failed->step == Step::chdir) {
      warn("run: cannot enter " + cwd + " in the run's view (chdir: " + err_text(failed->err) +
           ")");
      status = exit_code::failure;
    } else {
      setup_failed(*failed, mountpoint);
    }
    child.wait();
  } else {
    status = child.wait();
  }
  end_run(control, status);
  return status;
}

int run_runs(const std::string& mountpoint, bool json) {
  const std::string path = locate_snapfs_mount(mountpoint);
  const Daemon daemon = describe(path, "runs", mountpoint);
  Control control(daemon, control_of(daemon, "runs", mountpoint), "runs", mountpoint);
  const auto reply = control.ask({"list"});
  if (reply.size() != 1) control.malformed();
  if (json) {
    const std::string shown = fuse::json_printable(reply[0]);
    std::cout << shown << (shown.empty() || shown.back() != '\n' ? "\n" : "");
    return exit_code::ok;
  }
  std::cout << render_runs(parse_json(reply[0]));
  return exit_code::ok;
}

}  // namespace snapfs::cli
