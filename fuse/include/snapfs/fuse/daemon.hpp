// The interface between the snapfs daemon (fuse/) and the command (mount/).
// fuse/ knows nothing of the command line: mount/ parses options into a
// Config, validates nothing FUSE-specific itself, and calls serve().
#pragma once

#include <snapfs/core/publish.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace snapfs::fuse {

enum class OnConflict { fail, overwrite };

struct Config {
  std::string backing;      // B: absolute, canonical path of an existing directory
  std::string mountpoint;   // M: absolute, canonical path of an existing directory
  // Kernel-side options.
  bool allow_other = false;          // root mounts set this (with default_permissions)
  bool default_permissions = false;
  bool auto_unmount = true;          // unmount if the daemon dies
                                     // (docs/design-fuse.md, "Kernel facts" 7)
  // Semantics (docs/semantics.md#conflicts, #crashes-and-power-loss,
  // #shared-paths, #exclusive-mode).
  std::vector<std::string> shared_globs;  // paths relative to M, fnmatch(FNM_PATHNAME)
  bool exclusive = false;
  // Kernel passthrough (docs/design-passthrough.md): where the kernel and
  // the daemon's privileges allow it, reads, writes and mmap of an open go
  // straight to its snapshot. false: every open is served by the daemon.
  bool kernel_io = true;
  OnConflict on_conflict = OnConflict::fail;
  core::Durability durability = core::Durability::atomic;
  // Seconds the kernel may keep names and attributes of files nobody has
  // open (and of directories, symlinks, specials). Changes made through M
  // are invalidated exactly; changes made directly in B show after at most
  // this long (docs/design-fuse.md "Caching"). 0: nothing about a file is
  // cached and every path walk asks the daemon (directories: 1 s).
  double cache_timeout = 1.0;
  // Opens one user (other than root) may hold through M at once; beyond
  // it open() fails with EMFILE for that user alone. -1: a sixteenth of
  // the daemon's descriptor limit, at least 64; 0: no cap.
  long max_user_opens = -1;
  // A directory on a local file system for the snapshots of read-only
  // opens (-o cache_dir=PATH, absolute and canonical; empty: none): where B
  // is slow to copy into (a network file system without reflinks), a
  // reader's snapshot is copied out of B once into an unnamed file here,
  // and read from here. Writers' snapshots stay in B, where they publish.
  // Unused where B reflinks (a snapshot there costs nothing).
  std::string cache_dir;
  unsigned threads = 0;              // 0: libfuse's default for the multithreaded loop
  bool debug = false;                // libfuse's request trace (-d)
  std::string fsname;                // shown in /proc/mounts; default: backing
  // Tests only (tests/mount/testd_main.cpp; empty in the snapfs command):
  // called at named points of a request with the name it is about, and may
  // block there to hold a race window open. Points: "lookup.stat" (a
  // regular file's LOOKUP, after its stat), "lookup.intern" (after its node
  // was chosen, before the reply).
  std::function<void(std::string_view point, std::string_view name)> test_pause;
  // Test-only: whether to make a fault at `point` for the file at `path`
  // (relative to the mount). Points: "open.unpatched" (an OPEN reply that
  // would hand the kernel a backing file goes out without it, as if the
  // kernel had not taken it: the open is served by the daemon);
  // "commit.stale" (a commit's publish fails with ESTALE, as B's stale
  // handle would make it, after its check found no conflict).
  std::function<bool(std::string_view point, std::string_view path)> test_fault;
  // Called once from the INIT handler with what serves opens: "active"
  // (kernel passthrough) or why not, as status's kernel_passthrough says
  // it. Runs on a request thread; must not touch the mount.
  std::function<void(const std::string& kernel_passthrough)> on_init;
};

// Mounts `cfg.backing` at `cfg.mountpoint` and serves requests until the file
// system is unmounted or SIGINT/SIGTERM/SIGHUP arrives (then unmounts).
// `on_mounted` runs once, after the mount is live and before the first
// request is served (the command uses it to let its parent exit when
// daemonizing). Returns 0 after a clean unmount; otherwise logs the reason to
// the "fuse" logger and returns a non-zero value.
int serve(const Config& cfg, const std::function<void()>& on_mounted);

// The daemon answers the virtual extended attribute `kStatusXattr` on the
// root of the mount with a JSON object (open snapshots, commits, bytes
// published, conflicts, reflink support of B, active data path). It is not
// listed by listxattr and not stored anywhere. `snapfs status` reads it.
inline constexpr const char* kStatusXattr = "user.snapfs.status";
// Likewise, a JSON object describing the daemon itself (version, pid, start
// time, kernel and libfuse versions, the options in force, descriptors,
// replies by errno). `snapfs status` shows it together with kStatusXattr;
// it is a separate attribute so that the counters' document stays as small
// as readers with a fixed buffer expect. A daemon older than it answers
// ENODATA.
inline constexpr const char* kDaemonXattr = "user.snapfs.daemon";
// Likewise, a JSON array of conflict records for `snapfs conflicts`.
inline constexpr const char* kConflictsXattr = "user.snapfs.conflicts";
// The change feed for `snapfs events` (fuse/events.hpp): the attribute
// kEventsXattrPrefix + N answers the events after sequence number N, and
// kEventsXattrPrefix + "end" none, with the cursor of the newest: a JSON
// object {"pid", "next", "dropped", "more", "events": [...]} of at most the
// buffer's size (64 KiB at most). "next" is the N to ask next; "dropped"
// counts events the daemon no longer kept; "more": ask again at once.
inline constexpr const char* kEventsXattrPrefix = "user.snapfs.events.";

}  // namespace snapfs::fuse
