// CLI11 front end of snapfs (see cli.hpp and mount/README.md).
#include "cli.hpp"

#include "exit_codes.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string_view>

#ifndef SNAPFS_VERSION
#define SNAPFS_VERSION "unknown"
#endif

namespace snapfs::cli {
namespace {

constexpr std::array kSubcommands{"mount",     "umount", "unmount", "status",
                                  "conflicts", "events", "run",     "runs"};

constexpr const char* kOptionsHelp = R"(
Mount options (-o, comma-separated, repeatable; later ones win; flags above
override -o):
  shared=GLOB[:GLOB...]       paths (relative to M, fnmatch with FNM_PATHNAME)
                              with ordinary shared semantics, no snapshot
                              (passthrough=GLOB is an older name for it)
  exclusive                   promise that B changes only through M or by
                              whole-file rename: readers share the published file
  kernel_io=auto|off          auto (default): the kernel serves read, write and
                              mmap of each open from its snapshot where it can
                              (root, Linux >= 6.9); off: the daemon serves them
  durability=fast|atomic|full fast: no sync; atomic (default): sync data before
                              publishing; full: also sync the directory
  on-conflict=fail|overwrite  fail (default): first committer wins, the loser's
                              content is kept (snapfs conflicts); overwrite: last wins
  allow_other                 let other users in (root: on by default; a user
                              needs user_allow_other in /etc/fuse.conf); always
                              brings default_permissions
  default_permissions         the kernel checks mode bits (root: on by default)
  auto_unmount, noauto_unmount  unmount when the daemon dies (default: auto_unmount)
  fsname=NAME                 the source shown in /proc/mounts (default: B)
  cache_timeout=SECONDS       how long the kernel may cache names, attributes of
                              files nobody has open and directory listings
                              (default 1; 0: none).
                              Changes through M show at once; changes made
                              directly in B may show this much later
  cache_dir=PATH              a directory on a local file system for the
                              snapshots of read-only opens, where B is slow
                              to copy into (a network file system without
                              reflinks); writers' snapshots stay in B
  max_user_opens=N            files one user other than root may hold open
                              through M at once; beyond it open() fails with
                              EMFILE for that user alone (default: a sixteenth
                              of the daemon's descriptor limit, at least 64;
                              0: no cap)
  threads=N, log_level=L, debug  as --threads, --log-level, libfuse's trace
Accepted without effect (what the mount already is, or fstab-only): rw,
  defaults, auto, noauto, nofail, user, user=*, users, nouser, owner, group,
  _netdev, x-*, comment=*, dev, suid, nodev, nosuid, exec, async, atime,
  noatime, relatime, strictatime, diratime, nodiratime, lazytime (and no*
  forms), loud, silent, nonempty. The mount is always nosuid,nodev.
Refused: ro, noexec, sync, dirsync, mand (not supported yet).

/etc/fstab:  /srv/data  /mnt/data  fuse.snapfs  defaults,durability=full  0 0
)";

constexpr const char* kExitCodesHelp = R"(
`snapfs B M [-f] [-d] [-o opts]` (no subcommand) mounts too: the libfuse
program form that mount.fuse3 runs for `mount -t fuse.snapfs B M`.
Exit codes: 0 ok, 1 runtime failure (the daemon could not mount, a syscall
failed), 2 usage, 3 bad backing directory, 4 bad mount point (missing, not a
directory, already a mount), 5 backing directory and mount point overlap,
6 not a snapfs mount, 7 busy (try umount --lazy), 8 not permitted,
10 the host lacks what a run needs (mount namespaces, /dev/fuse).
`snapfs run` exits with CMD's status (128+N if signal N ended it; 126 CMD
could not be executed, 127 not found) once CMD has started.
Environment: SPDLOG_LEVEL sets log levels (e.g. SPDLOG_LEVEL=debug or
fuse=trace,mount=info); --log-level overrides it.
)";

bool is_subcommand(std::string_view a) {
  for (const char* s : kSubcommands) {
    if (a == s) return true;
  }
  return false;
}

constexpr const char* kHelperHelp =
    R"(Usage: mount.snapfs B M [-sfnv] [-o opts]   (run by mount -t fuse.snapfs B M)
       snapfs B M [-f] [-d] [-o opts]         (run by mount.fuse3)
mount(8) helper flags: -f fake (check, mount nothing), -s sloppy (ignore
unknown options), -n, -v. As a libfuse program: -f foreground, -d debug.
The -o options are those of `snapfs mount`; see snapfs mount --help.
Exit codes of mount.snapfs, as mount(8)'s: 0 ok, 1 bad invocation or not
permitted, 32 mount failure (the message says which check failed).
)";

// mount(8) and mount.fuse3 conventions: parse, apply the options sloppily if
// asked, daemonize unless -f/-d as a libfuse program (mount(8) waits for the
// helper to return).
int run_helper(const std::vector<std::string>& args, Convention convention,
               const LogControl& log) {
  const HelperArgs h = parse_helper_args(args, convention);
  if (h.help) {
    std::fputs(kHelperHelp, stdout);
    return exit_code::ok;
  }
  MountCommand cmd;
  cmd.backing = h.backing;
  cmd.mountpoint = h.mountpoint;
  cmd.fake = h.fake;
  cmd.foreground = h.foreground;
  cmd.options.debug = h.debug;
  for (const auto& list : h.option_lists) apply_option_list(list, cmd.options, h.sloppy);
  if (cmd.options.log_level && log.set_level) log.set_level(*cmd.options.log_level);
  return run_mount(cmd, log);
}

}  // namespace

Personality personality_of(const char* argv0) {
  std::string_view name = argv0 == nullptr ? "" : argv0;
  if (const auto slash = name.rfind('/'); slash != std::string_view::npos)
    name.remove_prefix(slash + 1);
  return name == "mount.snapfs" || name == "mount.fuse.snapfs" ? Personality::mount_helper
                                                               : Personality::command;
}

int run(int argc, char** argv, Personality who, const LogControl& log) {
  std::vector<std::string> rest(argv + std::min(argc, 1), argv + argc);
  if (who == Personality::mount_helper) return run_helper(rest, Convention::mount8, log);
  // `snapfs B M -o opts`: what mount.fuse3 executes for `mount -t fuse.snapfs`.
  if (rest.size() >= 2 && !rest[0].empty() && rest[0][0] != '-' && !is_subcommand(rest[0]) &&
      !rest[1].empty() && rest[1][0] != '-') {
    return run_helper(rest, Convention::fuse_program, log);
  }
  if (!rest.empty() && !rest[0].empty() && rest[0][0] != '-' && !is_subcommand(rest[0])) {
    throw Failure(exit_code::usage,
                  "unknown command '" + rest[0] +
                      "' (expected mount, umount, status, conflicts, events, run or runs; see "
                      "snapfs --help)");
  }

  CLI::App app{
      "snapfs: a view of a directory in which every open file is a private snapshot,\n"
      "published atomically when it is closed.",
      "snapfs"};
  app.set_version_flag("-V,--version", "snapfs " SNAPFS_VERSION);
  app.require_subcommand(1);
  app.footer(kExitCodesHelp);

  MountCommand mc;
  std::vector<std::string> option_lists;
  std::vector<std::string> shared;
  std::string durability, on_conflict, log_level, threads;
  bool exclusive = false, debug = false;

  CLI::App* mount = app.add_subcommand("mount", "Mount backing directory B at mount point M.");
  mount->add_option("B", mc.backing, "Backing directory (must exist, readable)")->required();
  mount->add_option("M", mc.mountpoint, "Mount point (an existing directory, not a mount)")
      ->required();
  mount->add_option("-o", option_lists, "Mount options opt[,opt...]; see below")
      ->allow_extra_args(false)
      ->type_name("OPTS");
  mount->add_flag("-f,--foreground", mc.foreground,
                  "Stay in the foreground, log to stderr (default: daemon, syslog)");
  mount
      ->add_option("--log-level", log_level,
                   "trace, debug, info (default), warn, error, critical or off")
      ->type_name("LEVEL");
  mount
      ->add_option("--shared,--passthrough", shared,
                   "Paths with ordinary shared semantics, no snapshot (repeatable; "
                   "--passthrough is an older name)")
      ->allow_extra_args(false)
      ->type_name("GLOB[:GLOB...]");
  mount->add_flag("--exclusive", exclusive,
                  "B changes only through M: readers share published files");
  mount->add_option("--durability", durability, "fast, atomic (default) or full")
      ->type_name("MODE");
  mount->add_option("--on-conflict", on_conflict, "fail (default) or overwrite")
      ->type_name("POLICY");
  mount->add_option("--threads", threads, "Worker threads; 0 (default) is libfuse's default")
      ->type_name("N");
  mount->add_flag("-d,--debug", debug, "libfuse's request trace; implies --foreground");
  mount->footer(kOptionsHelp);

  std::string target;
  bool lazy = false, json = false;
  CLI::App* umount =
      app.add_subcommand("umount", "Unmount the snapfs mount at M (fusermount3 -u as a user).");
  umount->alias("unmount");
  umount->add_option("M", target, "Mount point")->required();
  umount->add_flag("-l,--lazy", lazy,
                   "Detach now even if files are open; the daemon exits after the last close");
  CLI::App* status = app.add_subcommand(
      "status",
      "Show the daemon of the mount at M: pid, version, uptime, options, data path, counters.");
  status->add_option("M", target, "Mount point")->required();
  std::string format = "text";
  CLI::Option* format_opt =
      status
          ->add_option("--format", format,
                       "text (default): key: value lines; json: the daemon's JSON as is; "
                       "prometheus: the Prometheus text exposition format")
          ->type_name("FORMAT")
          ->check(CLI::IsMember({"text", "json", "prometheus"}));
  status->add_flag("--json", json, "Same as --format=json")->excludes(format_opt);
  CLI::App* conflicts = app.add_subcommand("conflicts", "List commits that lost a conflict at M.");
  conflicts->add_option("M", target, "Mount point")->required();
  conflicts->add_flag("--json", json, "Print the daemon's JSON array as is");

  CLI::App* events = app.add_subcommand(
      "events", "Show what was published, created, renamed and removed through M.");
  events->add_option("M", target, "Mount point")->required();
  EventsOptions eo;
  events->add_flag("-f,--follow", eo.follow,
                   "Keep printing new events until M is unmounted (from now on, or after --after)");
  events->add_flag("--json", eo.json, "One JSON object per line");
  std::uint64_t after = 0;
  CLI::Option* after_opt =
      events->add_option("--after", after, "Start after the event with this seq number")
          ->type_name("SEQ");

  std::vector<std::string> command;
  CLI::App* run_cmd = app.add_subcommand(
      "run", "Run CMD and everything it starts through a private connection to the daemon of M.");
  run_cmd->add_option("M", target, "Mount point")->required();
  run_cmd->add_option("CMD", command, "The command and its arguments, after --")->required();
  run_cmd->footer(
      "Usage: snapfs run M -- CMD [ARGS...]\n"
      "CMD runs in a mount namespace of its own, where M is a new connection of\n"
      "the daemon of M. Only root can start a run. Exit status: CMD's.");
  CLI::App* runs_cmd = app.add_subcommand("runs", "List the runs of the daemon of M.");
  runs_cmd->add_option("M", target, "Mount point")->required();
  runs_cmd->add_flag("--json", json, "Print the daemon's JSON array as is");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::string msg = e.what();
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    for (auto& c : msg) {
      if (c == '\n') c = ' ';
    }
    throw Failure(exit_code::usage, msg + " (see snapfs --help)");
  }

  if (mount->parsed()) {
    auto& o = mc.options;
    for (const auto& list : option_lists) apply_option_list(list, o);
    for (const auto& p : shared) {
      auto globs = parse_shared_globs(p);
      o.shared.insert(o.shared.end(), globs.begin(), globs.end());
    }
    if (exclusive) o.exclusive = true;
    if (mount->count("--durability") > 0) o.durability = parse_durability(durability);
    if (mount->count("--on-conflict") > 0) o.on_conflict = parse_on_conflict(on_conflict);
    if (mount->count("--threads") > 0) o.threads = parse_threads(threads);
    if (mount->count("--log-level") > 0) o.log_level = parse_log_level(log_level);
    if (debug) {
      o.debug = true;
      mc.foreground = true;
    }
    if (o.log_level && log.set_level) log.set_level(*o.log_level);
    return run_mount(mc, log);
  }
  if (umount->parsed()) return run_umount(target, lazy);
  if (status->parsed()) {
    const StatusFormat f = json || format == "json" ? StatusFormat::json
                           : format == "prometheus" ? StatusFormat::prometheus
                                                    : StatusFormat::text;
    return run_status(target, f);
  }
  if (conflicts->parsed()) return run_conflicts(target, json);
  if (run_cmd->parsed()) {
    // CMD is exactly what follows the first `--`: CLI11 would also take
    // words before it (`snapfs run M ls -- -l`) and options there are its
    // own, so without `--` an option of CMD would be a usage error or worse.
    const std::vector<std::string> args(argv + std::min(argc, 1), argv + argc);
    const auto dash = std::find(args.begin(), args.end(), "--");
    if (dash == args.end() || std::vector<std::string>(dash + 1, args.end()) != command) {
      throw Failure(exit_code::usage,
                    "run: CMD follows `--`: snapfs run M -- CMD [ARGS...] (see snapfs run --help)");
    }
    return run_run(target, command);
  }
  if (runs_cmd->parsed()) return run_runs(target, json);
  if (events->parsed()) {
    if (after_opt->count() > 0) eo.after = after;
    return run_events(target, eo);
  }
  return exit_code::usage;  // unreachable: require_subcommand(1)
}

}  // namespace snapfs::cli
