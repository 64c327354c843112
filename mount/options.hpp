// Mount options: `-o` lists, the flags of `snapfs mount`, and the argument
// conventions of mount(8) helpers. Pure functions (no I/O) so that the unit
// tests can cover every option without mounting anything.
#pragma once

#include <snapfs/fuse/daemon.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace snapfs::cli {

// What the command line asked for, before any defaults that depend on who
// runs the command (root or not) are applied.
struct MountOptions {
  std::vector<std::string> shared;  // globs, in the order given
  bool exclusive = false;
  bool kernel_io = true;  // -o kernel_io=auto|off: kernel passthrough where possible
  fuse::OnConflict on_conflict = fuse::OnConflict::fail;
  core::Durability durability = core::Durability::atomic;
  unsigned threads = 0;
  long max_user_opens = -1;  // -1: the daemon's default (fuse::Config)
  double cache_timeout = 1.0;  // seconds; fuse::Config::cache_timeout
  std::string cache_dir;       // as given; checked and made canonical at mount
  bool debug = false;
  bool allow_other = false;          // asked for explicitly
  bool default_permissions = false;  // asked for explicitly
  bool auto_unmount = true;
  std::string fsname;
  std::optional<std::string> log_level;
  // Options accepted without effect (fstab and mount(8) noise), for a debug log.
  std::vector<std::string> ignored;
};

// Applies one `-o` argument (a comma-separated list; a value may be quoted
// with double quotes to contain commas) to `opts`. Later options override
// earlier ones, as with mount(8). Throws Failure(usage) on an unknown option
// or a bad value, unless `sloppy` (mount -s), which only records unknown
// options in `opts.ignored`.
void apply_option_list(std::string_view list, MountOptions& opts, bool sloppy = false);

// Value parsers shared by `-o name=value` and `--name value`; they throw
// Failure(usage) with a message that lists the accepted values.
core::Durability parse_durability(std::string_view value);
fuse::OnConflict parse_on_conflict(std::string_view value);
unsigned parse_threads(std::string_view value);
long parse_max_user_opens(std::string_view value);
// Seconds, a decimal number from 0 to 3600 ("0", "1", "0.5").
double parse_cache_timeout(std::string_view value);
std::string parse_log_level(std::string_view value);  // returns the canonical name
// Splits `a:b:c`, drops one leading '/' from each glob (globs are relative to
// M), rejects empty globs.
std::vector<std::string> parse_shared_globs(std::string_view value);

// Who mounts: root gets allow_other + default_permissions by default
// (docs/design-fuse.md, "Kernel facts" 8); a user gets them only when asked,
// and allow_other always brings default_permissions (otherwise other users
// would act with the daemon's rights, docs/security.md).
fuse::Config make_config(const MountOptions& opts, std::string backing_canonical,
                         std::string mountpoint_canonical, bool as_root);

// Two argument conventions for `SPEC DIR [flags] [-o opts]`:
// - mount8: a mount(8) helper (mount(8) "External helpers"):
//   `mount.snapfs SPEC DIR [-sfnv] [-N ns] [-o opts] [-t type]`, where -f is
//   mount(8)'s fake mode and -s sloppy;
// - fuse_program: what mount.fuse3 runs for type fuse.snapfs, `snapfs SPEC
//   DIR -o opts`, where, as for every libfuse program, -f means foreground
//   and -d debug (so `snapfs B M -f` does not silently mount nothing).
enum class Convention { mount8, fuse_program };
struct HelperArgs {
  std::string backing;
  std::string mountpoint;
  std::vector<std::string> option_lists;  // each `-o` argument
  bool fake = false;        // mount8 -f: do everything but mount
  bool sloppy = false;      // mount8 -s: ignore unknown options
  bool verbose = false;     // mount8 -v
  bool foreground = false;  // fuse_program -f (and -d)
  bool debug = false;       // fuse_program -d
  bool help = false;        // -h, --help
};
HelperArgs parse_helper_args(const std::vector<std::string>& args,
                             Convention convention = Convention::mount8);

}  // namespace snapfs::cli
