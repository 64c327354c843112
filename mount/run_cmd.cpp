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
#include "run_child.hpp"

#include <snapfs/fuse/control.hpp>
#include <snapfs/fuse/daemon.hpp>
#include <snapfs/fuse/printable.hpp>
#include <sys/sys.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace snapfs::cli {
namespace {

using run::ChildPlan;
using run::Forwarding;
using run::Record;
using run::RunProcess;
using run::Step;
using run::child_main;
using run::next_record;
using run::send_datagram;

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
