// `snapfs mount`: check, then serve in the foreground or as a daemon.
//
// Daemonizing (libfuse `fuse_daemonize`, gocryptfs `-notifypid`): the parent
// forks before any thread exists, and the child calls setsid(), chdir("/"),
// points stdio at /dev/null, switches logging to syslog and calls serve().
// serve()'s on_mounted callback writes 'M' to a pipe; the parent exits 0 on
// that byte, so `snapfs mount` returns only once the mount is live. The
// child closes every other inherited descriptor (daemon(7)). A child
// that fails first writes 'E' and its one-line reason instead, and the parent
// prints it and exits 1. If the child dies without a word, EOF tells the
// parent and waitpid() says how it died.
//
// Once the mount is live, `snapfs mount` says in one line on stderr when
// opens are served by the daemon rather than by kernel passthrough, and
// why (note_data_path()). The daemon knows that only after FUSE INIT (the
// kernel's offer comes with it), which follows 'M'. A getxattr of the status
// attribute on M waits for exactly that (the kernel holds every request
// until INIT is answered), so the parent reads it after 'M' and the pipe
// protocol stays as it is. In the foreground the daemon is this process and
// says it from INIT itself (Config::on_init): a getxattr through M from a
// thread here would hold the mount, and an umount right after the mount
// would fail with EBUSY.
//
// The pipe is O_CLOEXEC: fusermount3, which libfuse spawns for auto_unmount
// and which outlives the mount, must not hold its write end (the parent would
// then never see EOF from a dead child).
//
// Until the mount is live the child's stderr is a memfd rather than
// /dev/null: fusermount3 reports why it refused ("failed to open /dev/fuse:
// Permission denied") only on stderr, and a failed child appends that to its
// reason. A pipe to the parent would not do: the auto_unmount fusermount3
// keeps its stderr for the life of the mount, long after the parent is gone.
#include "checks.hpp"
#include "commands.hpp"
#include "exit_codes.hpp"
#include "report.hpp"

#include <snapfs/core/unique_fd.hpp>
#include <sys/sys.hpp>
#include <snapfs/fuse/daemon.hpp>
#include <snapfs/fuse/meta_dir.hpp>
#include <snapfs/fuse/printable.hpp>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <system_error>

#include <fcntl.h>
#include <linux/magic.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

namespace snapfs::cli {
namespace {

std::shared_ptr<spdlog::logger> mount_log() {
  auto l = spdlog::get("mount");
  return l ? l : spdlog::default_logger();
}

const char* durability_name(core::Durability d) {
  switch (d) {
    case core::Durability::fast: return "fast";
    case core::Durability::atomic: return "atomic";
    case core::Durability::full: return "full";
  }
  return "?";
}

std::string last_error_or(const LogControl& log, const std::string& fallback) {
  std::string e = log.last_error ? log.last_error() : std::string();
  return e.empty() ? fallback : e;
}

void write_all(int fd, const std::string& data) {
  auto rest = std::as_bytes(std::span(data));
  while (!rest.empty()) {
    const auto n = core::sys::write(fd, rest);  // EINTR retried
    if (!n || *n == 0) return;  // the parent is gone: nobody to tell
    rest = rest.subspan(*n);
  }
}

// The last non-empty line written to the startup stderr memfd, if any.
std::string captured_stderr(int fd) {
  if (fd < 0 || ::lseek(fd, 0, SEEK_SET) != 0) return {};
  std::string text;
  std::byte buf[1024];
  for (auto n = core::sys::read(fd, buf); n && *n > 0 && text.size() < 65536;
       n = core::sys::read(fd, buf))
    text.append(reinterpret_cast<const char*>(buf), *n);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  const auto nl = text.rfind('\n');
  return nl == std::string::npos ? text : text.substr(nl + 1);
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return std::string("was killed by signal ") + ::strsignal(WTERMSIG(status));
  }
  return "stopped";
}

// Whether B is on overlayfs (a container's own file system): the kernel
// refuses backing files from a stacked file system (ELOOP), so every open
// falls back to the daemon although INIT agreed on passthrough.
bool on_overlayfs(const std::string& backing) {
  struct statfs sfs{};
  return ::statfs(backing.c_str(), &sfs) == 0 &&
         static_cast<unsigned long>(sfs.f_type) == OVERLAYFS_SUPER_MAGIC;
}

// The data path line (module comment): read from the daemon's status on the
// live mount; nothing if it cannot be read (the mount itself succeeded).
void note_data_path(const std::string& mountpoint, const std::string& backing) {
  std::string state;
  try {
    const Json status = parse_json(read_daemon_xattr(mountpoint, fuse::kStatusXattr, mountpoint));
    const Json* k = status.find("kernel_passthrough");
    if (k == nullptr || k->type != Json::Type::string) return;  // an older daemon
    state = k->text;
  } catch (const std::exception& e) {
    mount_log()->debug("the data path of {} is unknown: {}", mountpoint, e.what());
    return;
  }
  const std::string note = data_path_note(mountpoint, backing, state, on_overlayfs(backing));
  if (!note.empty()) std::fprintf(stderr, "snapfs: %s\n", fuse::printable(note).c_str());
}

// The parent's half: wait for 'M', or for 'E' + reason, or for EOF.
int await_child(core::UniqueFd rfd, pid_t child, const std::string& mountpoint) {
  std::string msg;
  char buf[512];
  while (true) {
    const auto n = core::sys::read(rfd.get(), std::as_writable_bytes(std::span(buf)));
    if (!n)
      throw Failure(exit_code::failure,
                    std::string("reading from the daemon: ") + std::strerror(n.error().value()));
    if (*n == 0) break;
    msg.append(buf, *n);
    if (msg.front() == 'M') break;  // live: don't wait for the daemon to close
  }
  rfd.reset();
  if (!msg.empty() && msg.front() == 'M') return exit_code::ok;

  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (!msg.empty() && msg.front() == 'E') {
    std::string reason = msg.substr(1);
    while (!reason.empty() && (reason.back() == '\n' || reason.back() == ' ')) reason.pop_back();
    if (reason.rfind("snapfs: ", 0) == 0) reason.erase(0, 8);
    for (auto& c : reason) {
      if (c == '\n') c = ' ';  // one line, whatever the child sent
    }
    throw Failure(exit_code::failure, reason);
  }
  throw Failure(exit_code::failure, "the daemon for " + mountpoint + " " + describe_status(status) +
                                        " before the mount was live (see syslog)");
}

// The child's half; returns the daemon's exit code.
// Every descriptor but stdio and `wfd` is closed first (close_range), so the
// caller must own no other descriptor by then.
int daemon_child(core::UniqueFd wfd, const fuse::Config& cfg, const LogControl& log) {
  bool mounted = false;
  core::UniqueFd startup_err;
  // The reason for a failure before the mount, with what fusermount3 said.
  auto reason = [&](const std::string& what) {
    const std::string extra = captured_stderr(startup_err.get());
    return extra.empty() || what.find(extra) != std::string::npos ? what
                                                                  : what + " (" + extra + ")";
  };
  try {
    // daemon(7): keep nothing the caller gave us but stdio (a pipe a shell
    // or a test harness waits on must not stay open for the mount's life).
    if (wfd.get() > 3) ::close_range(3, static_cast<unsigned>(wfd.get()) - 1, 0);
    ::close_range(static_cast<unsigned>(wfd.get()) + 1, ~0U, 0);
    if (::setsid() < 0)
      throw Failure(exit_code::failure, std::string("setsid: ") + std::strerror(errno));
    // After the checks, which resolved every path: nothing below needs the
    // caller's working directory, and it must not keep a file system busy.
    if (::chdir("/") != 0)
      throw Failure(exit_code::failure, std::string("chdir /: ") + std::strerror(errno));
    auto opened = core::sys::openat(AT_FDCWD, "/dev/null", O_RDWR);  // O_CLOEXEC added
    if (!opened)
      throw Failure(exit_code::failure,
                    std::string("/dev/null: ") + std::strerror(opened.error().value()));
    core::UniqueFd null = std::move(*opened);
    startup_err.reset(::memfd_create("snapfs-startup-stderr", MFD_CLOEXEC));
    if (::dup2(null.get(), 0) < 0 || ::dup2(null.get(), 1) < 0 ||
        ::dup2(startup_err ? startup_err.get() : null.get(), 2) < 0) {
      throw Failure(exit_code::failure, std::string("dup2: ") + std::strerror(errno));
    }
    null.reset();
    // A parent killed while we mount must not kill us through the pipe.
    std::signal(SIGPIPE, SIG_IGN);
    if (log.to_syslog) log.to_syslog();

    const int rc = fuse::serve(cfg, [&] {
      mounted = true;
      // From now on nobody reads our stderr.
      if (const auto devnull = core::sys::openat(AT_FDCWD, "/dev/null", O_WRONLY); devnull)
        ::dup2(devnull->get(), 2);
      startup_err.reset();
      write_all(wfd.get(), "M");
      wfd.reset();
    });
    if (!mounted) {
      write_all(wfd.get(), "E" + reason(last_error_or(log, "cannot mount " + cfg.mountpoint +
                                                               ": the daemon stopped (status " +
                                                               std::to_string(rc) + ")")));
    }
    wfd.reset();
    return rc == 0 ? exit_code::ok : exit_code::failure;
  } catch (const Failure& f) {
    if (!mounted && wfd) write_all(wfd.get(), "E" + reason(f.what()));
    mount_log()->error("{}", f.what());
    wfd.reset();
    return f.code();
  } catch (const std::exception& e) {
    if (!mounted && wfd) write_all(wfd.get(), "E" + reason(e.what()));
    mount_log()->error("{}", e.what());
    wfd.reset();
    return exit_code::failure;
  }
}

}  // namespace

std::string data_path_note(const std::string& mountpoint, const std::string& backing,
                           const std::string& kernel_passthrough, bool backing_on_overlayfs) {
  std::string why;
  if (kernel_passthrough != "active") why = "kernel passthrough " + kernel_passthrough;
  else if (backing_on_overlayfs)
    why = "kernel passthrough unavailable: " + backing +
          " is on overlayfs, a stacked file system the kernel takes no backing files from";
  if (why.empty()) return {};
  return mountpoint + ": opens are served by the daemon (" + why +
         "); mmap(MAP_SHARED) fails with ENODEV";
}

int run_mount(const MountCommand& cmd, const LogControl& log) {
  const bool as_root = ::geteuid() == 0;
  const auto paths =
      check_mount_paths(cmd.backing, cmd.mountpoint, as_root, cmd.options.allow_other);
  fuse::Config cfg = make_config(cmd.options, paths.backing, paths.mountpoint, as_root);
  if (!cmd.options.cache_dir.empty())
    cfg.cache_dir = check_cache_dir(cmd.options.cache_dir, cfg.backing, cfg.mountpoint);
  auto l = mount_log();
  if (!cmd.options.ignored.empty()) {
    std::string list;
    for (const auto& o : cmd.options.ignored) list += (list.empty() ? "" : ",") + o;
    l->debug("options accepted without effect: {}", list);
  }
  l->debug(
      "backing={} mountpoint={} allow_other={} default_permissions={} auto_unmount={} "
      "exclusive={} durability={} on_conflict={} threads={} cache_timeout={} shared={}",
      cfg.backing, cfg.mountpoint, cfg.allow_other, cfg.default_permissions, cfg.auto_unmount,
      cfg.exclusive, durability_name(cfg.durability),
      cfg.on_conflict == fuse::OnConflict::fail ? "fail" : "overwrite", cfg.threads,
      cfg.cache_timeout, cfg.shared_globs.size());
  if (cmd.fake) return exit_code::ok;

  // B/.snapfs must be the daemon's own (a directory of our euid, mode 0700):
  // refused here, before any fork, with the one line that says how to fix
  // it. The daemon checks again as it makes the directory (a change in
  // between is refused there: fuse/conflicts.cpp prepare_meta_dir()).
  if (const std::string problem = fuse::check_meta_dir(cfg.backing); !problem.empty())
    throw Failure(exit_code::failure, problem);

  if (cmd.foreground) {
    bool mounted = false;
    // The daemon is this process: it says what serves opens at INIT. (A
    // getxattr through M from here would hold the mount, and a quick
    // umount would fail with EBUSY.)
    cfg.on_init = [mp = cfg.mountpoint, b = cfg.backing](const std::string& state) {
      const std::string note = data_path_note(mp, b, state, on_overlayfs(b));
      if (!note.empty()) std::fprintf(stderr, "snapfs: %s\n", fuse::printable(note).c_str());
    };
    const int rc = fuse::serve(cfg, [&] {
      mounted = true;  // serve() logs "mounted" itself
    });
    if (rc == 0) return exit_code::ok;
    // serve() logged the reason to stderr already; add a line only if it did not.
    if (log.last_error && !log.last_error().empty()) return exit_code::failure;
    throw Failure(exit_code::failure,
                  mounted ? "the daemon for " + cfg.mountpoint + " stopped with an error"
                          : "cannot mount " + cfg.mountpoint);
  }

  core::UniqueFd rfd, wfd;
  if (int fds[2]; ::pipe2(fds, O_CLOEXEC) == 0) {
    rfd.reset(fds[0]);
    wfd.reset(fds[1]);
  } else {
    throw Failure(exit_code::failure, std::string("pipe: ") + std::strerror(errno));
  }
  std::fflush(nullptr);  // or the child would write our buffered output again
  const pid_t pid = ::fork();
  if (pid < 0) throw Failure(exit_code::failure, std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    rfd.reset();  // before daemon_child's close_range: nothing else may own a descriptor
    return daemon_child(std::move(wfd), cfg, log);
  }
  wfd.reset();
  const int rc = await_child(std::move(rfd), pid, cfg.mountpoint);
  if (rc == exit_code::ok) note_data_path(cfg.mountpoint, cfg.backing);
  return rc;
}

}  // namespace snapfs::cli
