// The subcommands of snapfs. Each returns an exit code or throws Failure.
#pragma once

#include "options.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace snapfs::cli {

// How the command steers logging; main.cpp owns the loggers (docs/code-style.md §4)
// and fills this in. Every member may be empty (the unit tests leave them so).
struct LogControl {
  std::function<void(const std::string& level)> set_level;  // a parse_log_level() name
  std::function<void()> to_syslog;                          // once daemonized
  std::function<std::string()> last_error;                  // the last error-level message, or ""
};

struct MountCommand {
  std::string backing;
  std::string mountpoint;
  MountOptions options;
  bool foreground = false;
  bool fake = false;  // mount(8) -f: check everything, mount nothing
};

// Checks the paths (checks.hpp), then serves: in the foreground, or in a
// daemon child while the parent waits until the mount is live (exit 0) or
// the child failed (exit 1 with the child's one-line reason).
int run_mount(const MountCommand& cmd, const LogControl& log);
// The line `snapfs mount` prints (after "snapfs: ") once the mount is live
// when opens are not served by kernel passthrough: M, that the daemon serves
// them, why (the daemon's kernel_passthrough state, or B on overlayfs, which
// the kernel refuses backing files from), and that mmap(MAP_SHARED) fails.
// Empty when the state is "active" and B is not on overlayfs.
std::string data_path_note(const std::string& mountpoint, const std::string& backing,
                           const std::string& kernel_passthrough, bool backing_on_overlayfs);
int run_umount(const std::string& mountpoint, bool lazy);
// `snapfs status --format=`: key: value lines (the default, what the
// command printed before it had --format), the daemon's JSON as sent (its
// two documents, kStatusXattr and kDaemonXattr, as one object), or the
// Prometheus text exposition format (report.hpp).
enum class StatusFormat { text, json, prometheus };
int run_status(const std::string& mountpoint, StatusFormat format);
int run_conflicts(const std::string& mountpoint, bool json);
// `snapfs events`: the change feed of the mount, a line per event
// (report.hpp render_event). Without `follow`, the events the daemon still
// keeps (after `after`) and exit; with it, the events from now on (or after
// `after`) until M is unmounted.
struct EventsOptions {
  bool follow = false;
  bool json = false;
  std::optional<std::uint64_t> after;
};
int run_events(const std::string& mountpoint, const EventsOptions& o);

// `snapfs run M -- CMD...` (run_cmd.cpp): runs `command` (execvp) in a mount
// namespace of its own where M is a new FUSE connection of the daemon of M,
// which the daemon serves for this run alone. Root only. Returns CMD's exit
// status (128 + N if signal N ended it; 127 not found, 126 not executable);
// throws Failure before CMD starts: not_snapfs, not_permitted (not root, M
// is a run's view, the daemon refuses with EACCES/EPERM), host_lacks (no
// mount namespace, /dev/fuse or FUSE mount), failure otherwise.
int run_run(const std::string& mountpoint, const std::vector<std::string>& command);
// `snapfs runs M`: the daemon's runs, a table or its JSON array as sent.
int run_runs(const std::string& mountpoint, bool json);

// Reads a virtual xattr of the daemon (daemon.hpp) from the mount at the
// canonical `path`; throws Failure with a message that names `shown`.
std::string read_daemon_xattr(const std::string& path, const char* name, const std::string& shown);

}  // namespace snapfs::cli
