// Mount option parsing (see options.hpp). Decisions, also in mount/README.md:
// - Options that describe what the mount already is are accepted silently:
//   rw, async, exec, the atime family, nosuid and nodev (libfuse mounts
//   nosuid,nodev), dev and suid (mount.fuse3 appends them to every option
//   list; they are not passed on, so the mount stays nosuid,nodev), and the
//   fstab/mount(8) options the kernel never sees (defaults, auto, noauto,
//   nofail, user, user=*, users, nouser, owner, group, _netdev, x-*,
//   comment=*).
// - Options that would promise something the daemon does not do are refused
//   with a clear message instead of being dropped: ro, noexec, sync, dirsync,
//   mand. fuse::Config has no field for them yet.
#include "options.hpp"

#include "exit_codes.hpp"

#include <algorithm>
#include <array>
#include <charconv>

namespace snapfs::cli {
namespace {

[[noreturn]] void usage_error(const std::string& message) {
  throw Failure(exit_code::usage, message);
}

// Splits at commas outside double quotes and removes the quotes, as
// libmount's optstr does (`-o shared="a,b"`).
std::vector<std::string> split_options(std::string_view list) {
  std::vector<std::string> out;
  std::string current;
  bool quoted = false;
  for (const char c : list) {
    if (c == '"') {
      quoted = !quoted;
    } else if (c == ',' && !quoted) {
      out.push_back(std::move(current));
      current.clear();
    } else {
      current.push_back(c);
    }
  }
  if (quoted) usage_error("unbalanced double quote in mount options '" + std::string(list) + "'");
  out.push_back(std::move(current));
  return out;
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// Accepted without effect; see the file comment.
constexpr std::array kNoOps{"rw",         "defaults",    "auto",          "noauto",
                            "nofail",     "user",        "users",         "nouser",
                            "owner",      "group",       "_netdev",       "dev",
                            "suid",       "nodev",       "nosuid",        "exec",
                            "async",      "atime",       "noatime",       "relatime",
                            "norelatime", "strictatime", "nostrictatime", "diratime",
                            "nodiratime", "lazytime",    "nolazytime",    "loud",
                            "silent",     "nonempty",    "subtype=snapfs"};

// Refused, with the reason shown to the user.
struct Refused {
  const char* name;
  const char* why;
};
constexpr std::array kRefused{
    Refused{"ro",
            "read-only snapfs mounts are not supported yet (for a read-only view of B, "
            "use `mount --bind -o ro B M`)"},
    Refused{"noexec", "snapfs cannot pass 'noexec' to the kernel yet"},
    Refused{"sync", "snapfs cannot pass 'sync' to the kernel yet; see durability=full"},
    Refused{"dirsync", "snapfs cannot pass 'dirsync' to the kernel yet; see durability=full"},
    Refused{"mand", "mandatory locks are not supported"},
};

bool is_no_op(std::string_view opt) {
  // mount(8) turns fstab's `user` into `user=<name>` for a user mount.
  if (starts_with(opt, "x-") || starts_with(opt, "comment=") || starts_with(opt, "user=")) {
    return true;
  }
  return std::find(kNoOps.begin(), kNoOps.end(), opt) != kNoOps.end();
}

// Returns the value of `name=value` if `opt` has that name.
std::optional<std::string_view> value_of(std::string_view opt, std::string_view name) {
  if (opt.size() > name.size() && starts_with(opt, name) && opt[name.size()] == '=') {
    return opt.substr(name.size() + 1);
  }
  return std::nullopt;
}

// The same for an option with two spellings of its name (`alias`: the older
// or the other one).
std::optional<std::string_view> value_of(std::string_view opt, std::string_view name,
                                         std::string_view alias) {
  if (auto v = value_of(opt, name)) return v;
  return value_of(opt, alias);
}

void apply_one(std::string_view opt, MountOptions& opts, bool sloppy) {
  if (opt.empty()) return;  // "a,,b" and a trailing comma, as libmount allows
  if (is_no_op(opt)) {
    opts.ignored.emplace_back(opt);
    return;
  }
  for (const auto& r : kRefused) {
    if (opt == r.name) usage_error("mount option '" + std::string(opt) + "' refused: " + r.why);
  }
  if (auto v = value_of(opt, "shared", "passthrough")) {
    // `passthrough=` is the older name of `shared=` (kept as an alias: it
    // is not kernel passthrough, the data path).
    auto globs = parse_shared_globs(*v);
    opts.shared.insert(opts.shared.end(), globs.begin(), globs.end());
  } else if (opt == "exclusive") {
    opts.exclusive = true;
  } else if (auto k = value_of(opt, "kernel_io")) {
    if (*k == "auto") opts.kernel_io = true;
    else if (*k == "off") opts.kernel_io = false;
    else usage_error("bad value '" + std::string(*k) + "' for kernel_io (auto or off)");
  } else if (auto d = value_of(opt, "durability")) {
    opts.durability = parse_durability(*d);
  } else if (auto c = value_of(opt, "on-conflict", "on_conflict")) {
    opts.on_conflict = parse_on_conflict(*c);
  } else if (opt == "allow_other") {
    opts.allow_other = true;
  } else if (opt == "default_permissions") {
    opts.default_permissions = true;
  } else if (opt == "auto_unmount") {
    opts.auto_unmount = true;
  } else if (opt == "noauto_unmount") {
    opts.auto_unmount = false;
  } else if (auto f = value_of(opt, "fsname")) {
    opts.fsname = std::string(*f);
  } else if (auto t = value_of(opt, "threads")) {
    opts.threads = parse_threads(*t);
  } else if (auto u = value_of(opt, "max_user_opens")) {
    opts.max_user_opens = parse_max_user_opens(*u);
  } else if (auto cd = value_of(opt, "cache_dir", "cache-dir")) {
    if (cd->empty()) usage_error("cache_dir needs a directory (cache_dir=PATH)");
    opts.cache_dir = std::string(*cd);
  } else if (auto ct = value_of(opt, "cache_timeout", "cache-timeout")) {
    opts.cache_timeout = parse_cache_timeout(*ct);
  } else if (auto l = value_of(opt, "log_level", "log-level")) {
    opts.log_level = parse_log_level(*l);
  } else if (opt == "debug") {
    opts.debug = true;
  } else if (starts_with(opt, "subtype=")) {
    usage_error("mount option '" + std::string(opt) +
                "' refused: the subtype is always 'snapfs' (umount and status look for it)");
  } else if (opt == "fsname" || opt == "shared" || opt == "passthrough" || opt == "durability" ||
             opt == "on-conflict" || opt == "threads" || opt == "log_level" ||
             opt == "kernel_io" || opt == "cache_timeout" || opt == "max_user_opens" ||
             opt == "cache_dir") {
    usage_error("mount option '" + std::string(opt) + "' needs a value (" + std::string(opt) +
                "=...)");
  } else if (sloppy) {
    opts.ignored.emplace_back(opt);
  } else {
    usage_error("unknown mount option '" + std::string(opt) + "' (see snapfs mount --help)");
  }
}

}  // namespace

void apply_option_list(std::string_view list, MountOptions& opts, bool sloppy) {
  for (const auto& opt : split_options(list)) apply_one(opt, opts, sloppy);
}

core::Durability parse_durability(std::string_view value) {
  if (value == "fast") return core::Durability::fast;
  if (value == "atomic") return core::Durability::atomic;
  if (value == "full") return core::Durability::full;
  usage_error("invalid durability '" + std::string(value) + "' (expected fast, atomic or full)");
}

fuse::OnConflict parse_on_conflict(std::string_view value) {
  if (value == "fail") return fuse::OnConflict::fail;
  if (value == "overwrite") return fuse::OnConflict::overwrite;
  usage_error("invalid on-conflict '" + std::string(value) + "' (expected fail or overwrite)");
}

unsigned parse_threads(std::string_view value) {
  unsigned n = 0;
  const auto* end = value.data() + value.size();
  const auto [ptr, ec] = std::from_chars(value.data(), end, n);
  // An upper bound that no machine needs keeps a typo from starting 10^9 threads.
  constexpr unsigned kMaxThreads = 1024;
  if (value.empty() || ec != std::errc() || ptr != end || n > kMaxThreads) {
    usage_error("invalid threads '" + std::string(value) + "' (expected 0 to " +
                std::to_string(kMaxThreads) + "; 0 means libfuse's default)");
  }
  return n;
}

long parse_max_user_opens(std::string_view value) {
  long n = 0;
  const auto* end = value.data() + value.size();
  const auto [ptr, ec] = std::from_chars(value.data(), end, n);
  constexpr long kMax = 1L << 30;
  if (value.empty() || ec != std::errc() || ptr != end || n < 0 || n > kMax) {
    usage_error("invalid max_user_opens '" + std::string(value) +
                "' (expected a number of opens, 0 for no cap)");
  }
  return n;
}

double parse_cache_timeout(std::string_view value) {
  // Digits with at most one inner '.': no sign, no exponent, no "inf".
  constexpr double kMax = 3600;
  bool ok = !value.empty() && value.size() <= 16 && value.front() != '.' && value.back() != '.' &&
            std::count(value.begin(), value.end(), '.') <= 1 &&
            std::all_of(value.begin(), value.end(),
                        [](char c) { return c == '.' || (c >= '0' && c <= '9'); });
  double v = 0;
  if (ok) {
    const auto* end = value.data() + value.size();
    const auto [ptr, ec] = std::from_chars(value.data(), end, v);  // locale-independent
    ok = ec == std::errc() && ptr == end && v <= kMax;
  }
  if (!ok) {
    usage_error("invalid cache_timeout '" + std::string(value) +
                "' (expected seconds from 0 to 3600, e.g. 1 or 0.5; 0 caches nothing)");
  }
  return v;
}

std::string parse_log_level(std::string_view value) {
  constexpr std::array kLevels{"trace", "debug", "info", "warn", "error", "critical", "off"};
  for (const char* l : kLevels) {
    if (value == l) return l;
  }
  if (value == "warning") return "warn";
  usage_error("invalid log level '" + std::string(value) +
              "' (expected trace, debug, info, warn, error, critical or off)");
}

std::vector<std::string> parse_shared_globs(std::string_view value) {
  std::vector<std::string> globs;
  std::size_t start = 0;
  while (true) {
    const std::size_t colon = value.find(':', start);
    std::string_view glob = value.substr(
        start, colon == std::string_view::npos ? std::string_view::npos : colon - start);
    if (!glob.empty() && glob.front() == '/') glob.remove_prefix(1);
    if (glob.empty()) {
      usage_error("empty glob in shared '" + std::string(value) +
                  "' (expected GLOB[:GLOB...], relative to the mount point)");
    }
    globs.emplace_back(glob);
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  return globs;
}

fuse::Config make_config(const MountOptions& opts, std::string backing_canonical,
                         std::string mountpoint_canonical, bool as_root) {
  fuse::Config cfg;
  cfg.backing = std::move(backing_canonical);
  cfg.mountpoint = std::move(mountpoint_canonical);
  cfg.allow_other = as_root || opts.allow_other;
  cfg.default_permissions = cfg.allow_other || opts.default_permissions;
  cfg.auto_unmount = opts.auto_unmount;
  cfg.shared_globs = opts.shared;
  cfg.exclusive = opts.exclusive;
  cfg.kernel_io = opts.kernel_io;
  cfg.on_conflict = opts.on_conflict;
  cfg.durability = opts.durability;
  cfg.threads = opts.threads;
  cfg.max_user_opens = opts.max_user_opens;
  cfg.cache_timeout = opts.cache_timeout;
  cfg.debug = opts.debug;
  cfg.fsname = opts.fsname.empty() ? cfg.backing : opts.fsname;
  return cfg;
}

HelperArgs parse_helper_args(const std::vector<std::string>& args, Convention convention) {
  HelperArgs out;
  const bool mount8 = convention == Convention::mount8;
  std::vector<std::string> positional;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto next = [&](const char* flag) -> const std::string& {
      if (i + 1 >= args.size()) usage_error(std::string("option ") + flag + " needs an argument");
      return args[++i];
    };
    if (a == "-o") {
      out.option_lists.push_back(next("-o"));
    } else if (starts_with(a, "-o") && a.size() > 2) {
      out.option_lists.push_back(a.substr(2));
    } else if (a == "-h" || a == "--help") {
      out.help = true;
    } else if (a == "-t" && mount8) {
      const std::string& type = next("-t");
      if (type != "fuse.snapfs" && type != "snapfs") {
        usage_error("file system type '" + type + "' is not snapfs (expected fuse.snapfs)");
      }
    } else if (mount8 && (a == "-N" || starts_with(a, "--namespace"))) {
      usage_error("mounting into another namespace (-N) is not supported");
    } else if (a.size() > 1 && a[0] == '-' && a[1] != '-') {
      for (const char c : a.substr(1)) {
        if (mount8 && c == 'f') {
          out.fake = true;
        } else if (mount8 && c == 's') {
          out.sloppy = true;
        } else if (mount8 && c == 'v') {
          out.verbose = true;
        } else if (mount8 && c == 'n') {
          // No /etc/mtab to leave alone: it is /proc/self/mounts.
        } else if (!mount8 && c == 'f') {
          out.foreground = true;
        } else if (!mount8 && c == 'd') {
          out.debug = out.foreground = true;
        } else {
          usage_error(std::string("unknown option -") + c);
        }
      }
    } else if (a == "--") {
      positional.insert(positional.end(), args.begin() + static_cast<long>(i) + 1, args.end());
      break;
    } else if (starts_with(a, "--")) {
      usage_error("unknown option " + a);
    } else {
      positional.push_back(a);
    }
  }
  if (out.help) return out;
  if (positional.size() != 2) {
    usage_error("expected a backing directory and a mount point (got " +
                std::to_string(positional.size()) + " arguments)");
  }
  out.backing = positional[0];
  // mount.fuse3's legacy `type#source` spelling.
  if (starts_with(out.backing, "snapfs#")) out.backing.erase(0, 7);
  out.mountpoint = positional[1];
  return out;
}

}  // namespace snapfs::cli
