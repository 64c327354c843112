// The state of one mounted daemon, reached from every request through
// fuse_req_userdata().
#pragma once

#include "fuse_api.hpp"
#include "inode_table.hpp"

#include <snapfs/fuse/daemon.hpp>

#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <shared_mutex>

namespace snapfs::fuse {

struct Stats {
  std::atomic<std::uint64_t> open_snapshots{0};
  std::atomic<std::uint64_t> commits{0};
  std::atomic<std::uint64_t> bytes_published{0};
};

struct Daemon {
  Config cfg;
  std::shared_ptr<spdlog::logger> log;
  InodeTable table;
  // Namespace lock: commits (shared) against unlink/rmdir/rename (exclusive),
  // so a commit never lands on a name that was just moved or removed.
  // Lock order: Handle::mu -> ns_mu -> InodeTable::mu -> Node::fd_mu.
  std::shared_mutex ns_mu;
  Stats stats;
  bool reflink = false;  // B can FICLONE (probed at start)
  bool as_root = false;  // chown what we create to the caller
};

inline Daemon& daemon_of(fuse_req_t req) {
  return *static_cast<Daemon*>(fuse_req_userdata(req));
}

// Timeouts (docs/design-fuse.md): nothing about a file is cached by the
// kernel, so a commit needs no invalidation; directories may be cached 1 s.
inline double entry_timeout(const Node& n) { return n.is_dir() ? 1.0 : 0.0; }
inline double attr_timeout(const Node& n) { return n.is_dir() ? 1.0 : 0.0; }

// Final components only: the kernel never sends others, and anything else
// would let a request walk out of its parent.
inline bool valid_name(const char* name) {
  if (!name || !*name) return false;
  if ((name[0] == '.' && name[1] == '\0') || (name[0] == '.' && name[1] == '.' && name[2] == '\0'))
    return false;
  for (const char* p = name; *p; ++p)
    if (*p == '/') return false;
  return true;
}

}  // namespace snapfs::fuse
