// `snapfs umount`, `snapfs status`, `snapfs conflicts`.
#include "commands.hpp"

#include "checks.hpp"
#include "exit_codes.hpp"
#include "report.hpp"

#include <snapfs/fuse/daemon.hpp>
#include <snapfs/fuse/printable.hpp>
#include <sys/sys.hpp>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string_view>
#include <thread>
#include <variant>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace snapfs::cli {
namespace {

const char* kBusyHint =
    "files or directories are open in it; close them, or run "
    "`snapfs umount --lazy` to detach it now (the daemon exits after the "
    "last file is closed)";

// Runs fusermount3 and returns (exit status, first line of its stderr).
std::pair<int, std::string> run_fusermount(const std::vector<std::string>& args) {
  int err[2];
  if (::pipe2(err, O_CLOEXEC) != 0)
    throw Failure(exit_code::failure, std::string("pipe: ") + std::strerror(errno));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  std::vector<char*> argv;
  std::vector<std::string> storage{"fusermount3"};
  storage.insert(storage.end(), args.begin(), args.end());
  for (auto& s : storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = ::posix_spawnp(&pid, "fusermount3", &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(err[1]);
  if (rc != 0) {
    ::close(err[0]);
    throw Failure(exit_code::failure, std::string("cannot run fusermount3: ") + std::strerror(rc));
  }
  std::string text;
  std::byte buf[512];
  for (;;) {
    const auto n = core::sys::read(err[0], buf);  // EINTR retried
    if (!n || *n == 0) break;
    text.append(reinterpret_cast<const char*>(buf), *n);
  }
  ::close(err[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  const auto nl = text.find('\n');
  if (nl != std::string::npos) text.resize(nl);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128, text};
}

// The daemon serving the snapfs mount at `path`, as a pidfd, found without
// a single FUSE request (a hung daemon must not stop its own unmount, and a
// request it has read but not answered cannot be interrupted): each daemon
// registers in B/.snapfs/daemons/<id> as "<pid> <pid namespace> <mount
// point>" (fuse/peers.hpp), and B is the mount's source unless fsname= named
// it otherwise. Only a registration for this very mount point, in our pid
// namespace (else its pid means another process here), counts.
std::optional<core::UniqueFd> daemon_of(const std::string& path) {
  const auto m = mount_at(read_mountinfo(), path);
  if (!m || m->source.empty() || m->source[0] != '/') return std::nullopt;
  auto ours = core::sys::readlinkat(AT_FDCWD, "/proc/self/ns/pid");
  if (!ours) return std::nullopt;
  std::error_code ec;
  const std::filesystem::path dir = std::filesystem::path(m->source) / ".snapfs" / "daemons";
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() != 16 || name[0] == '.') continue;
    std::ifstream in(e.path());
    std::string pid, ns, mountpoint;
    if (!(in >> pid >> ns) || ns != *ours) continue;
    std::getline(in >> std::ws, mountpoint);
    if (mountpoint != path) continue;
    pid_t n = 0;
    const auto [end, err] = std::from_chars(pid.data(), pid.data() + pid.size(), n);
    if (err != std::errc() || end != pid.data() + pid.size() || n <= 0) continue;
    if (auto fd = core::sys::pidfd_open(n)) return std::move(*fd);
  }
  return std::nullopt;
}

// Waits (at most 10 s) for the process of `pidfd` to exit. The daemon
// exits soon after its mount is gone, and closes B as it does: a script
// that unmounts M and then B (or a shutdown in that order) finds B busy
// until then.
void wait_for_exit(const std::optional<core::UniqueFd>& pidfd, const std::string& shown) {
  if (!pidfd) return;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  // A pidfd polls readable once its process has exited.
  while (core::sys::process_alive(pidfd->get())) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      std::cerr << "snapfs: " << shown << " is unmounted; its daemon has not exited after 10 s\n";
      return;
    }
    struct pollfd p {pidfd->get(), POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(left.count()));
  }
}

}  // namespace

int run_umount(const std::string& mountpoint, bool lazy) {
  const std::string path = locate_snapfs_mount(mountpoint);
  // After a lazy unmount the daemon serves what is still open: not waited for.
  const std::optional<core::UniqueFd> daemon = lazy ? std::nullopt : daemon_of(path);
  if (::geteuid() == 0) {
    if (::umount2(path.c_str(), lazy ? MNT_DETACH : 0) == 0) {
      wait_for_exit(daemon, mountpoint);
      return exit_code::ok;
    }
    const int e = errno;
    if (e == EBUSY) throw Failure(exit_code::busy, "cannot unmount " + path + ": " + kBusyHint);
    if (e == EPERM)
      throw Failure(exit_code::not_permitted, "cannot unmount " + path + ": " + std::strerror(e));
    throw Failure(exit_code::failure, "cannot unmount " + path + ": " + std::strerror(e));
  }
  // fusermount3 checks that the mount is the caller's (its user_id=).
  const auto [status, message] = run_fusermount({lazy ? "-uz" : "-u", "--", path});
  if (status == 0) {
    wait_for_exit(daemon, mountpoint);
    return exit_code::ok;
  }
  if (message.find("busy") != std::string::npos) {
    throw Failure(exit_code::busy, "cannot unmount " + path + ": " + kBusyHint);
  }
  if (message.find("ermitted") != std::string::npos ||
      message.find("not owned") != std::string::npos) {
    throw Failure(exit_code::not_permitted, "cannot unmount " + path + ": " + message);
  }
  throw Failure(exit_code::failure, "cannot unmount " + path + ": " +
                                        (message.empty() ? "fusermount3 failed" : message));
}

namespace {

// Why the daemon of `shown` did not answer `name` (errno `e`).
[[noreturn]] void cannot_read(int e, const char* name, const std::string& shown) {
  switch (e) {
    case ENOTCONN:      // the daemon is gone
    case ECONNABORTED:  // ... and we asked while the kernel was aborting it
      throw Failure(exit_code::failure, "the daemon of " + shown + " is gone (" + std::strerror(e) +
                                            "); run `snapfs umount " + shown + "`");
    case ENODATA:
    case ENOTSUP:
      throw Failure(exit_code::failure, "the daemon of " + shown + " does not answer " + name +
                                            " (" + std::strerror(e) + ")");
    case EACCES:
    case EPERM:
      throw Failure(exit_code::not_permitted,
                    "cannot ask the daemon of " + shown + ": " + std::strerror(e) +
                        " (a mount without allow_other serves only its owner)");
    default:
      throw Failure(exit_code::failure,
                    "cannot read " + std::string(name) + " of " + shown + ": " + std::strerror(e));
  }
}

// As sent, but never a raw control or non-UTF-8 byte on the terminal (a
// daemon older than json_string's escaping, or a record it kept): those
// become JSON \u escapes (printable.hpp), the document stays valid.
void print_json(const std::string& text) {
  const std::string shown = fuse::json_printable(text);
  std::cout << shown << (shown.empty() || shown.back() != '\n' ? "\n" : "");
}

// `snapfs conflicts`: the daemon's document in the attribute `xattr` of the
// mount at `mountpoint`, as sent (--json) or rendered for a person.
int show_document(const std::string& mountpoint, const char* xattr, bool json,
                  std::string (*render)(const Json&)) {
  const std::string path = locate_snapfs_mount(mountpoint);
  const std::string text = read_daemon_xattr(path, xattr, mountpoint);
  if (json) {
    print_json(text);
    return exit_code::ok;
  }
  std::cout << render(parse_json(text));
  return exit_code::ok;
}

// `text` without blanks at its ends.
std::string_view trimmed(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n");
  return text.substr(first, last - first + 1);
}

}  // namespace

std::string read_daemon_xattr(const std::string& path, const char* name, const std::string& shown) {
  auto r = core::sys::getxattr_path(path.c_str(), name);
  if (!r) cannot_read(r.error().code().value(), name, shown);
  return std::string(r->begin(), r->end());
}

int run_status(const std::string& mountpoint, StatusFormat format) {
  const std::string path = locate_snapfs_mount(mountpoint);
  // Two documents, shown as one: the counters, and the daemon's description
  // (daemon.hpp kDaemonXattr), which a daemon older than it does not have.
  const std::string counters = read_daemon_xattr(path, fuse::kStatusXattr, mountpoint);
  std::string described;
  if (auto r = core::sys::getxattr_path(path.c_str(), fuse::kDaemonXattr)) {
    described.assign(r->begin(), r->end());
  } else if (const int e = r.error().code().value(); e != ENODATA && e != ENOTSUP) {
    cannot_read(e, fuse::kDaemonXattr, mountpoint);
  }
  const Json status = parse_json(counters);
  const Json daemon = described.empty() ? Json{} : parse_json(described);
  if (status.type != Json::Type::object ||
      (daemon.type != Json::Type::object && !described.empty())) {
    throw Failure(exit_code::failure, "the daemon of " + mountpoint +
                                          " sent a status that is not a JSON object");
  }
  if (format == StatusFormat::json) {
    // One object: the counters' members, then the description's. Both
    // were parsed above, so joining their text keeps the document valid.
    if (daemon.members.empty()) {
      print_json(counters);
    } else if (status.members.empty()) {
      print_json(described);
    } else {
      const std::string_view c = trimmed(counters), dsc = trimmed(described);
      print_json(std::string(c.substr(0, c.size() - 1)) + "," + std::string(dsc.substr(1)));
    }
    return exit_code::ok;
  }
  // For people and Prometheus: what serves the mount (the description)
  // right after which mount it is (backing, mountpoint), then the counters.
  Json merged;
  merged.type = Json::Type::object;
  std::size_t i = 0;
  for (; i < status.members.size() &&
         (status.members[i].first == "backing" || status.members[i].first == "mountpoint");
       ++i) {
    merged.members.push_back(status.members[i]);
  }
  for (const auto& m : daemon.members) merged.members.push_back(m);
  for (; i < status.members.size(); ++i) merged.members.push_back(status.members[i]);
  std::cout << (format == StatusFormat::prometheus ? render_prometheus(merged)
                                                   : render_status(merged));
  return exit_code::ok;
}

int run_conflicts(const std::string& mountpoint, bool json) {
  return show_document(mountpoint, fuse::kConflictsXattr, json, render_conflicts);
}

namespace {

// One answer of the change feed (daemon.hpp kEventsXattrPrefix).
struct FeedAnswer {
  Json doc;
  std::uint64_t next = 0;
  std::uint64_t dropped = 0;
  bool more = false;
  std::string pid;  // the daemon's: a new one starts its feed over
};

std::uint64_t number(const Json* v) {
  std::uint64_t n = 0;
  if (v != nullptr && v->type == Json::Type::number)
    std::from_chars(v->text.data(), v->text.data() + v->text.size(), n);
  return n;
}

// Asks the feed of the mount at `path` for the events after `cursor` (a
// number, or "end"). An error is returned as its errno for the caller to
// judge; a malformed answer throws.
std::variant<FeedAnswer, int> ask_feed(const std::string& path, const std::string& cursor,
                                       std::vector<char>& buf, const std::string& shown) {
  const std::string name = fuse::kEventsXattrPrefix + cursor;
  auto n = core::sys::getxattr_path(path.c_str(), name.c_str(), buf);
  if (!n) return n.error().value();
  FeedAnswer a;
  a.doc = parse_json(std::string_view(buf.data(), *n));
  const Json* events = a.doc.find("events");
  if (a.doc.type != Json::Type::object || events == nullptr ||
      events->type != Json::Type::array || a.doc.find("next") == nullptr) {
    throw Failure(exit_code::failure, "the daemon of " + shown + " sent events that are not "
                                      "the feed's JSON object");
  }
  a.next = number(a.doc.find("next"));
  a.dropped = number(a.doc.find("dropped"));
  const Json* more = a.doc.find("more");
  a.more = more != nullptr && more->type == Json::Type::boolean && more->boolean;
  if (const Json* pid = a.doc.find("pid")) a.pid = pid->text;
  return a;
}

}  // namespace

int run_events(const std::string& mountpoint, const EventsOptions& o) {
  const std::string path = locate_snapfs_mount(mountpoint);
  // XATTR_SIZE_MAX: every answer fits, however many events arrived since.
  std::vector<char> buf(65536);
  std::string cursor = o.after ? std::to_string(*o.after) : o.follow ? "end" : "0";
  std::string daemon;  // the pid of the daemon answering so far
  for (bool first = true;; first = false) {
    auto r = ask_feed(path, cursor, buf, mountpoint);
    if (const int* e = std::get_if<int>(&r)) {
      // Unmounted while we followed it: over. (Anything else is an error,
      // said as status says it.)
      if (!first && (*e == ENODATA || *e == ENOTSUP || *e == ENOTCONN || *e == ECONNABORTED ||
                     *e == ENOENT)) {
        std::cerr << "snapfs: " << fuse::printable(mountpoint) << " is no longer mounted\n";
        return exit_code::ok;
      }
      cannot_read(*e, "its change feed", mountpoint);
    }
    FeedAnswer& a = std::get<FeedAnswer>(r);
    if (!daemon.empty() && a.pid != daemon) {
      // Mounted again by another daemon: its feed starts over, and everything
      // in it came after what this one showed.
      daemon = a.pid;
      cursor = "0";
      continue;
    }
    daemon = a.pid;
    std::string out;
    if (a.dropped != 0) out += render_dropped(a.dropped, o.json);
    for (const Json& e : a.doc.find("events")->items) out += render_event(e, path, o.json);
    std::cout << out << std::flush;
    if (!std::cout) return exit_code::failure;  // stdout is gone
    cursor = std::to_string(a.next);
    if (a.more) continue;
    if (!o.follow) return exit_code::ok;
    // Nothing new: look again soon. A request every 100 ms costs the daemon
    // next to nothing and holds no request open (an unmount is never kept
    // waiting by a follower).
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace snapfs::cli
