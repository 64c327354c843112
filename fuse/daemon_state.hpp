// The state of the daemon (Daemon) and of each FUSE connection it serves
// (Conn, reached from every request through fuse_req_userdata()).
#pragma once

#include "events.hpp"
#include "fuse_api.hpp"
#include "inode_table.hpp"
#include "passthrough.hpp"
#include "warm.hpp"
#include "notifier.hpp"

#include <snapfs/fuse/daemon.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace snapfs::fuse {

struct Stats {
  std::atomic<std::uint64_t> open_snapshots{0};
  std::atomic<std::uint64_t> commits{0};
  std::atomic<std::uint64_t> bytes_published{0};
  std::atomic<std::uint64_t> rebases{0};
  std::atomic<std::uint64_t> daemon_opens{0};  // opens served by the daemon (direct_io)
  std::atomic<std::uint64_t> own_joins{0};     // opens that joined their process's version
  std::atomic<std::uint64_t> own_routes{0};    // lookups answered with the caller's own version
  std::atomic<std::uint64_t> own_misses{0};    // opens by an owner served a snapshot of B/p
                                               // (its retry after an ESTALE met another node)
  // Requests that the kernel's caches would have saved: a test
  // counts them to see that a repeated stat is served by the kernel.
  std::atomic<std::uint64_t> lookups{0};
  std::atomic<std::uint64_t> getattrs{0};
  std::atomic<std::uint64_t> readdirs{0};  // READDIR requests (the kernel's cache missed)
  // Commits that lost a conflict since the daemon started (keep_conflict);
  // status's "conflicts" counts the records kept in B, which outlive us.
  std::atomic<std::uint64_t> conflicts{0};
  // Replies that carried an errno (reply_errno), by errno; slot 0 counts
  // those beyond the table. Relaxed increments: a few nanoseconds on the
  // error path, read only by `snapfs status`.
  static constexpr int kErrnoSlots = 134;  // Linux's errnos end at EHWPOISON, 133
  std::array<std::atomic<std::uint64_t>, kErrnoSlots> errors{};
  void count_error(int err) noexcept {
    errors[err > 0 && err < kErrnoSlots ? static_cast<std::size_t>(err) : 0].fetch_add(
        1, std::memory_order_relaxed);
  }
  // The FUSE protocol the kernel speaks (major << 16 | minor), from INIT.
  std::atomic<std::uint32_t> fuse_protocol{0};
  // When the daemon's state was made, just before the mount: status's start
  // time, and its uptime by the clock that NTP does not step.
  const std::chrono::system_clock::time_point started = std::chrono::system_clock::now();
  const std::chrono::steady_clock::time_point started_steady = std::chrono::steady_clock::now();
};

// The hidden directory B/.snapfs (docs/design-conflicts.md): invisible
// through M, made at mount, cleaned by the recovery before serving.
inline constexpr const char* kMetaDir = ".snapfs";

// Per-path commit locks: a commit (and truncate(path)) to a path holds the
// stripe of hash(parent dev, parent ino, name), so the conflict check and
// the rename that publishes are one step for everything going through M.
class CommitStripes {
public:
  std::mutex& of(dev_t dev, ino_t ino, std::string_view name) noexcept {
    std::size_t h = std::hash<std::string_view>()(name);
    h ^= std::hash<std::uint64_t>()(static_cast<std::uint64_t>(ino)) + 0x9e3779b97f4a7c15ull +
         (h << 6) + (h >> 2);
    h ^= std::hash<std::uint64_t>()(static_cast<std::uint64_t>(dev)) + (h << 6) + (h >> 2);
    return mu_[h % mu_.size()];
  }

private:
  std::array<std::mutex, 256> mu_;
};

// Truncations that wait for their RELEASE (Version::pending_truncate): the
// file was opened with O_TRUNC, flushed without a write, and may still be
// held by a dup'd descriptor that writes next (a shell's `cmd > f`), so
// FLUSH did not publish the empty file. If nothing writes, RELEASE publishes
// it, asynchronously to close(2). A LOOKUP of such a file meanwhile waits a
// little for that RELEASE, so `: > f; wc -c < f` sees the empty file.
class PendingTruncations {
public:
  using Key = std::pair<dev_t, ino_t>;
  void add(Key k) {
    std::lock_guard lk(mu_);
    keys_.push_back(k);
    count_.fetch_add(1, std::memory_order_release);
  }
  void remove(Key k) {
    {
      std::lock_guard lk(mu_);
      auto it = std::find(keys_.begin(), keys_.end(), k);
      if (it == keys_.end()) return;
      keys_.erase(it);
      count_.fetch_sub(1, std::memory_order_release);
    }
    cv_.notify_all();
  }
  bool empty() const { return count_.load(std::memory_order_acquire) == 0; }
  // Waits until `k` has no pending truncation or `limit` has passed.
  void settle(Key k, std::chrono::milliseconds limit) {
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, limit, [&] { return std::find(keys_.begin(), keys_.end(), k) == keys_.end(); });
  }

private:
  std::mutex mu_;  // leaf lock
  std::condition_variable cv_;
  std::vector<Key> keys_;
  std::atomic<std::size_t> count_{0};
};

// The handles the kernel holds (fi->fh of every open it has not released).
// When the daemon stops with files still open (SIGTERM, a lazy unmount that
// never drained) no RELEASE comes for them: serve() frees what is left here.
class LiveHandles {
public:
  void add(void* holder) {
    std::lock_guard lk(mu_);
    holders_.push_back(holder);
  }
  void remove(void* holder) {
    std::lock_guard lk(mu_);
    auto it = std::find(holders_.begin(), holders_.end(), holder);
    if (it != holders_.end()) {
      *it = holders_.back();
      holders_.pop_back();
    }
  }
  std::vector<void*> take() {
    std::lock_guard lk(mu_);
    return std::exchange(holders_, {});
  }

private:
  std::mutex mu_;  // leaf lock
  std::vector<void*> holders_;
};

// Fairness: how many opens each user has through M, so that one user
// cannot take every descriptor the daemon has (docs/security.md). Root
// (uid 0) is not counted. A slot is taken at OPEN/CREATE and given back
// when the open's handle goes away.
class UserOpens {
public:
  // At most `n` opens per user; 0: no cap.
  void set_limit(std::size_t n) noexcept { limit_.store(n, std::memory_order_relaxed); }
  std::size_t limit() const noexcept { return limit_.load(std::memory_order_relaxed); }

  // A slot for `uid`, or false if it has `limit()` already (EMFILE).
  // No memory for the count: refused too.
  bool acquire(uid_t uid) noexcept {
    if (uid == 0) return true;
    std::lock_guard lk(mu_);
    try {
      std::size_t& n = counts_[uid];
      const std::size_t cap = limit();
      if (cap != 0 && n >= cap) return false;
      ++n;
      return true;
    } catch (const std::bad_alloc&) {
      return false;
    }
  }
  void release(uid_t uid) noexcept {
    if (uid == 0) return;
    std::lock_guard lk(mu_);
    auto it = counts_.find(uid);
    if (it == counts_.end()) return;
    if (--it->second == 0) counts_.erase(it);
  }

private:
  std::mutex mu_;  // leaf lock
  std::unordered_map<uid_t, std::size_t> counts_;
  std::atomic<std::size_t> limit_{0};
};

// One user's slot in UserOpens, given back when destroyed.
class UserSlot {
public:
  UserSlot() = default;
  UserSlot(UserOpens& pool, uid_t uid) noexcept : pool_(&pool), uid_(uid) {}
  UserSlot(UserSlot&& o) noexcept : pool_(std::exchange(o.pool_, nullptr)), uid_(o.uid_) {}
  UserSlot& operator=(UserSlot&& o) noexcept {
    if (this != &o) {
      reset();
      pool_ = std::exchange(o.pool_, nullptr);
      uid_ = o.uid_;
    }
    return *this;
  }
  UserSlot(const UserSlot&) = delete;
  UserSlot& operator=(const UserSlot&) = delete;
  ~UserSlot() { reset(); }
  void reset() noexcept {
    if (pool_) std::exchange(pool_, nullptr)->release(uid_);
  }

private:
  UserOpens* pool_ = nullptr;
  uid_t uid_ = 0;
};

// Every lock of the daemon, by rank. A thread holding a lock takes only
// locks of a higher rank; "leaf" locks are held around memory updates or one
// syscall and nothing is taken under them. No reply to the kernel is sent
// while a lock of rank 2 or more is held (a READ holds its Version::mu shared
// while fuse_reply_data copies from the snapshot). Why each exists:
// docs/design-fuse.md, "Locks".
//
//  rank  lock                                     kind           guards
//  1     Version::mu (handle.hpp)                 shared_mutex   a version's snapshot: reads shared;
//                                                                writes, truncation, commit exclusive;
//                                                                its descriptions' count and marks
//                                                                (Handle::closed_by_owner). Never
//                                                                two versions' at once
//  2     CommitStripes, 256 (below)               mutex          one path's check-then-publish
//  2b    B/.snapfs/commit.lock, a byte per path   OFD lock       the same among the daemons over B
//        hash (peers.hpp; one open per commit)                   (waits for another daemon's publish)
//  3     Daemon::ns_mu                            shared_mutex   names: commits shared; rename,
//                                                                unlink, chmod/chown/xattr exclusive
//  4     InodeTable::mu (inode_table.hpp)         mutex          the node maps and node fields
//  5     Node::fd_mu (inode_table.hpp)            mutex, leaf    a node's O_PATH descriptor
//  leaf  Handle::lock_mu (handle.hpp)              mutex          the lazily made lock descriptor
//  leaf  WarmSnapshot::backing_mu (warm.hpp)      mutex          one warm snapshot's backing file
//                                                                (taken under Version::mu)
//  leaf  WarmSnapshots::mu_ (warm.hpp)            mutex          the warm cache's index
//  leaf  Lingering::mu_ (lingering.hpp)           mutex          parked writers (commits run outside)
//  leaf  DirHandle::mu (ops/dir.cpp)              mutex          one directory stream's position
//  leaf  PendingTruncations::mu_, LiveHandles::mu_, UserOpens::mu_ (here)
//                                                 mutex          their own lists
// What every connection of the daemon shares: B, the options, the
// commit locks, the counters, the warm snapshots, the change feed. The
// daemon serves the mount at M, and each `snapfs run` a connection of its
// own over the same Daemon (run.hpp, docs/design-run.md).
struct Daemon {
  Config cfg;
  std::shared_ptr<spdlog::logger> log;
  // B's root (O_PATH) as the daemon opened it at start; each connection's
  // table holds a descriptor of its own.
  core::UniqueFd root;
  struct stat root_st {};
  // Namespace lock: commits (shared) against unlink/rmdir/rename (exclusive),
  // so a commit never lands on a name that was just moved or removed. Its
  // rank among the daemon's locks: the table above Daemon.
  std::shared_mutex ns_mu;
  CommitStripes stripes;
  Stats stats;
  UserOpens user_opens;
  // B/.snapfs/staging and B/.snapfs/conflicts (O_PATH directories); invalid
  // if B refused them (read-only B): commits then use temporary names in the
  // target's directory and a conflict cannot be kept (close() still fails).
  core::UniqueFd staging_dir;
  core::UniqueFd conflicts_dir;
  // Among the daemons over B (peers.hpp): this one's id, its registration
  // (B/.snapfs/daemons/<id>, locked while it lives), the prefix of its
  // staging names ("<id>-"), and B/.snapfs/commit.lock (O_PATH). Empty or
  // invalid where B refused B/.snapfs.
  std::string id;
  core::UniqueFd alive;
  core::UniqueFd daemons_dir;  // B/.snapfs/daemons (O_PATH)
  std::string staging_prefix;
  core::UniqueFd commit_lock;
  // Read-only opens of an unchanged version share one snapshot, kept warm
  // after its last use: 5 min with reflinks, 10 s for copies (set at
  // start, session.cpp; warm.hpp). Entries that hold a descriptor: at most
  // 1024, and a tenth of the fd limit; the others: see session.cpp.
  WarmSnapshots warm{std::chrono::seconds(10), 1024, 1024};
  // The change feed (events.hpp): the newest changes made through M.
  EventLog events{8192};
  bool reflink = false;  // B can FICLONE (probed at start)
  // B can make O_TMPFILEs (probed at start). Where it cannot (FUSE and
  // network filesystems), private files are named ones in staging_dir
  // (new_private_file()); `private_files` says which, for status and log.
  bool tmpfile = true;
  std::string private_files = "O_TMPFILE";
  // -o cache_dir (Config::cache_dir): read-only opens snapshot into
  // unnamed files there (O_PATH; invalid without the option).
  core::UniqueFd cache_dir;
  bool as_root = false;  // chown what we create to the caller
  // The daemon's own filesystem identity, restored after acting as a
  // caller (identity.hpp).
  uid_t own_uid = 0;
  gid_t own_gid = 0;
  std::vector<gid_t> own_groups;
  // `snapfs run` (run.hpp): the control socket and the runs' connections.
  // Made once M is mounted; stopped before the daemon exits.
  std::unique_ptr<class Runs> runs;
};

// One FUSE connection the daemon serves (fuse_req_userdata): what the
// kernel keeps per connection has its counterpart here. The kernel's node
// ids, lookup counts and FORGETs are per connection (the InodeTable), so
// are its caches (the Notifier's invalidations) and the backing files
// registered for kernel passthrough (KernelPassthrough: an id is valid on
// the /dev/fuse descriptor that registered it only).
struct Conn {
  // Out of line (session.cpp), where Lingering is complete.
  explicit Conn(Daemon& daemon);
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  Daemon& d;
  InodeTable table;
  PendingTruncations pending_truncations;
  LiveHandles live_handles;
  LiveHandles live_dirs;  // ops/dir.cpp's DirHandles
  // Invalidations of the kernel's attribute cache (cache.hpp); attached once
  // the session exists, detached before it is destroyed.
  Notifier notifier;
  KernelPassthrough kpt;
  // Passthrough writers released while a shared writable mapping of their
  // snapshot is still alive (session.cpp): published when it goes away.
  std::unique_ptr<class Lingering> lingering;
  // The kernel checks POSIX ACLs (FUSE_CAP_POSIX_ACL was granted at INIT).
  bool posix_acl = false;
  // 0: the mount at M; else the run (run.hpp) this connection serves, set
  // before its first request.
  std::uint64_t run_id = 0;
};

// A private file on the filesystem of the directory `dirfd`: unnamed
// (O_TMPFILE) where B has them, else a file of its own name in
// B/.snapfs/staging (core::TmpFile::create_named_in: 0600 in the daemon's
// 0700 directory, named with this daemon's prefix so that recovery removes
// what a crash leaves). Such a file can be published only on B's own
// filesystem (a rename from staging), not on one mounted below B.
inline core::Result<core::TmpFile> new_private_file(const Daemon& d, int dirfd) noexcept {
  if (d.tmpfile || !d.staging_dir.valid()) return core::TmpFile::create_in(dirfd);
  return core::TmpFile::create_named_in(d.staging_dir.get(), d.staging_prefix);
}

inline Conn& conn_of(fuse_req_t req) { return *static_cast<Conn*>(fuse_req_userdata(req)); }
inline Daemon& daemon_of(fuse_req_t req) { return conn_of(req).d; }

// Final components only: the kernel never sends others, and anything else
// would let a request walk out of its parent.
// `.snapfs` in the root: the view neither shows nor makes it.
inline bool is_meta_name(fuse_ino_t parent, const char* name) {
  return parent == FUSE_ROOT_ID && name && std::strcmp(name, kMetaDir) == 0;
}

inline bool valid_name(const char* name) {
  if (!name || !*name) return false;
  if ((name[0] == '.' && name[1] == '\0') || (name[0] == '.' && name[1] == '.' && name[2] == '\0'))
    return false;
  for (const char* p = name; *p; ++p)
    if (*p == '/') return false;
  return true;
}

}  // namespace snapfs::fuse
