// Nodes (FUSE nodeids) and their lifetime: lookup counts, the (dev, ino) and
// (parent, name) indexes, the one-open-per-node rule, and which replies may
// let the kernel cache a node (docs/design-fuse.md "Caching").
//
// Lock order (docs/design-fuse.md): Version::mu -> commit stripe -> Daemon::ns_mu ->
// InodeTable::mu -> Node::fd_mu. InodeTable::mu guards map and node-field
// updates only; no I/O and no reply ever happens under it.
#pragma once

#include "fuse_api.hpp"

#include <snapfs/core/unique_fd.hpp>

#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

namespace snapfs::fuse {

struct Version;

enum class NodeKind {
  dir,          // shared by (dev, ino)
  file,         // a regular file served from per-open snapshots: one node per open;
                // without an open ("idle") it stands for its name (parent, name)
                // and holds no descriptor
  shared_file,  // a regular file matching -o shared=GLOB: shared by (dev, ino)
  other,        // symlink, fifo, socket, device: shared by (dev, ino)
};

using FdRef = std::shared_ptr<const core::UniqueFd>;

class Node {
public:
  Node(fuse_ino_t id, NodeKind kind, mode_t type) noexcept : id_(id), kind_(kind), type_(type) {}

  fuse_ino_t id() const noexcept { return id_; }
  NodeKind kind() const noexcept { return kind_; }
  mode_t type() const noexcept { return type_; }  // S_IFMT bits
  bool is_dir() const noexcept { return kind_ == NodeKind::dir; }

  // The O_PATH|O_NOFOLLOW handle of the backing inode. Callers keep the
  // returned reference for as long as they use the descriptor: a commit may
  // swap in the published inode meanwhile.
  // Null for an idle kind-file node: it holds no descriptor (so a walk over
  // more files than RLIMIT_NOFILE works) and is resolved by name when needed
  // (ops::node_fd()). A kind-file node is bound while it has an open, while
  // an OPEN or truncate(path) holds it (InodeTable::hold) and once it was
  // unlinked through M (an unlinked open file must stay reachable).
  FdRef fd() const {
    std::lock_guard lk(fd_mu_);
    return fd_;
  }

private:
  friend class InodeTable;
  const fuse_ino_t id_;
  const NodeKind kind_;
  const mode_t type_;
  mutable std::mutex fd_mu_;  // leaf lock
  FdRef fd_;
  // Guarded by InodeTable::mu.
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  std::shared_ptr<Node> parent_;
  std::string name_;
  bool unlinked_ = false;  // unlinked or replaced through M: commits go nowhere
  std::uint64_t nlookup_ = 0;
  // The opens of this node. A kind-file node has one, or several read-only
  // opens that share one snapshot inode (so fstat is the same for all).
  std::vector<std::weak_ptr<Version>> opens_;
  unsigned open_count_ = 0;
  // Requests that need the node bound: OPENs in progress (`opening_`, which
  // also count as "open" for the cache rules) and other holders.
  unsigned opening_ = 0;
  unsigned holds_ = 0;
  // A reply let the kernel cache its dentry (cache_timeout > 0): an OPEN
  // never takes this node (begin_open sends it back to walk again), so no
  // cached dentry ever leads to an open node. Its attributes: its next
  // first open invalidates them.
  bool entry_cached_ = false;
  bool attr_cached_ = false;
  // Made for a caller walking again after an ESTALE (contend()): no other
  // lookup is handed it before an OPEN takes it.
  bool reserved_ = false;
  struct stat cached_version_ {};  // what the last reply with attr timeout > 0 said
  // Kernel passthrough readers that share this node (docs/design-fuse.md
  // "Shared readers"): while `pin_` is set every open of the node reads
  // that one warm snapshot (the kernel allows one backing file per inode),
  // which is version `pin_version_` of the name if `pin_exact_`.
  const void* pin_ = nullptr;
  bool pin_exact_ = false;
  struct stat pin_version_ {};
  // The inode a commit's rebind replaced (for after_commit's invalidation).
  dev_t replaced_dev_ = 0;
  ino_t replaced_ino_ = 0;
};

// Where a commit of a node goes, read atomically under the table mutex.
struct NodePlace {
  std::shared_ptr<Node> parent;  // null for the root and for unlinked nodes
  std::string name;
  bool unlinked = false;
};

// The timeouts of one reply about a node.
struct Timeouts {
  double entry = 0;
  double attr = 0;
};

enum class Intent {
  lookup,  // LOOKUP, LINK, MKNOD...: an idle node of the name may be reused
  open,    // CREATE: a fresh node, bound, that is opened before the reply
};

// A LOOKUP about an inode of which some process holds a private version
// (docs/design-own-writes.md, "Routing"), decided by lookup_child() before
// intern(): `to`, the caller's own version, whose node the reply names if
// it is still open there; `held`, the inode has such versions: the reply's
// timeouts are 0, so every walk of its names asks the daemon again.
struct Route {
  const Version* to = nullptr;
  bool held = false;
};

// What an OPEN learnt when it took its node (InodeTable::begin_open).
struct OpenStart {
  bool retire = false;         // not taken: answer ESTALE (the kernel may cache its dentry)
  bool was_idle = false;       // no open and no other OPEN in progress
  bool attr_cached = false;    // the kernel may hold its attributes: invalidate
};

// The one snapshot that every open of a shared-reader node reads
// (InodeTable::attach_open): its identity (a WarmSnapshot) and, if it is
// exactly one version of B/p, that version (an fstat of B/p).
struct Pin {
  const void* id = nullptr;
  const struct stat* version = nullptr;  // null: a version at least as new, not shared
};

// What InodeTable::pin_of() reports about a node.
struct PinState {
  bool pinned = false;
  bool exact = false;
  struct stat version {};
};

class InodeTable {
public:
  // The root node (FUSE_ROOT_ID) for the O_PATH handle of B. `cache`:
  // Config::cache_timeout.
  void init_root(core::UniqueFd fd, const struct stat& st, double cache = 0);

  // The node for `id`; aborts on an id the kernel should not have.
  std::shared_ptr<Node> get(fuse_ino_t id) const;

  // Finds or makes the node for `name` in `parent` whose backing inode is
  // `fd`/`st`, counts one kernel lookup on it and says how long the reply
  // may let the kernel cache it. `shared_file`: the path matches a
  // passthrough glob. Kind file (docs/design-fuse.md "Caching"): with
  // Intent::lookup a node of the name that shared readers pinned to
  // version `st`, or else an idle one, is reused (cached); nodes with other
  // opens never are; `fd` is dropped unless the node is bound.
  // Intent::open: a fresh, bound node, not cached.
  // `caller`: the thread that looks up (the FUSE request's pid; 0 unknown):
  // after an OPEN of this name by it was answered ESTALE it gets a fresh,
  // uncached node (contend()).
  // `seen`: changes() read before `st` was taken (kNoChanges: unknown). A
  // node the kernel does not know yet gets cacheable attributes only if no
  // change was noted since then and cold nodes are cacheable (see there).
  static constexpr std::uint64_t kNoChanges = ~std::uint64_t{0};
  // `route`: see Route; a routed reply names the version's node as it is
  // (its place does not move: a hard link's name is not the commit target).
  std::shared_ptr<Node> intern(const std::shared_ptr<Node>& parent, const std::string& name,
                               core::UniqueFd fd, const struct stat& st, bool shared_file,
                               Intent intent, Timeouts& t, pid_t caller = 0,
                               std::uint64_t seen = kNoChanges, const Route& route = {});

  // Private versions (Version::owner set) attached to nodes: whether there
  // are any (one atomic load, for every LOOKUP and OPEN), and those whose
  // node stands for the backing inode (dev, ino). May throw std::bad_alloc.
  bool any_owned() const noexcept { return owned_.load(std::memory_order_acquire) > 0; }
  std::vector<std::shared_ptr<Version>> owned_versions_of(dev_t dev, ino_t ino) const;

  // Attribute changes made through M, and nodes new to the kernel
  // (docs/design-fuse.md "Caching", cold lookups). A LOOKUP reply that
  // makes a new kernel inode cannot be reached by an invalidation sent
  // before the kernel made that inode (ENOENT), so its attributes may be
  // older than a change made meanwhile. Such a reply is still cacheable if
  //  - no change was noted between its stat and its intern() (`seen`), and
  //  - whoever notes a change afterwards, and finds the kernel without an
  //    inode the daemon already counted a lookup for (known_to_kernel()),
  //    bumps the dentry epoch, so the next walk looks the name up again.
  // Changers call note_change() after changing B and before collecting the
  // nodes to invalidate. With set_cold_cacheable(false) (no epochs: Linux
  // < 6.16) nodes new to the kernel get attr_timeout 0, and the kernel asks
  // GETATTR right after the LOOKUP.
  void set_cold_cacheable(bool on) noexcept { cold_cacheable_.store(on, std::memory_order_release); }
  std::uint64_t changes() const noexcept { return changes_.load(std::memory_order_seq_cst); }
  void note_change() noexcept { changes_.fetch_add(1, std::memory_order_seq_cst); }
  // Whether a lookup of `id` was counted and not forgotten (the kernel holds
  // its inode, or is about to make it, or to forget it).
  bool known_to_kernel(fuse_ino_t id) const;

  // The attribute timeout of a reply about `node` (GETATTR, SETATTR) that
  // says `st`, and records that the kernel may cache it.
  double attr_timeout(Node& node, const struct stat& st);

  // An OPEN of a kind-file node: binds `fd` if the node is idle and keeps
  // it bound (and "open" for the cache rules) until end_open(). Unless the
  // kernel may cache the node's dentry and the OPEN is not a `shared_reader`
  // (a read-only open served by kernel passthrough from a warm snapshot,
  // which may share a cached node: attach_open()): then nothing is taken,
  // the name is contended for `caller` and OpenStart::retire says to answer ESTALE.
  OpenStart begin_open(Node& node, FdRef fd, bool shared_reader = false, pid_t caller = 0);
  // An OPEN of `node` by `caller` is answered ESTALE: the kernel walks the
  // path again, and that walk's LOOKUPs by `caller` (the same thread) get
  // a fresh node, not cached, that no other walk is handed (intern()), so
  // the retry cannot meet another open again. Caller 0 (a pid the daemon
  // cannot see): every LOOKUP of the name, for a second.
  void contend(const Node& node, pid_t caller);
  // Whether an OPEN of `node`'s name by `caller` was answered ESTALE within
  // the last second (contend()) and that walk has not opened since: this
  // OPEN is the kernel's retry, its last.
  bool contended_for(const Node& node, pid_t caller) const;
  // A shared reader was attached with version `v` (null: not known): true
  // if the kernel may hold attributes of another version for the node
  // (then they must be dropped before the reply).
  bool stale_cached_attrs(Node& node, const struct stat* v);
  // Whether a reply let the kernel cache the node's dentry.
  bool entry_cached(const Node& node) const;
  PinState pin_of(const Node& node) const;
  // Whether any of these nodes (ids the kernel may have forgotten since are
  // skipped) is pinned by shared readers.
  bool any_pinned(const std::vector<fuse_ino_t>& ids) const;
  // The attribute timeout of a GETATTR reply about a node pinned by shared
  // readers that says `st`, B/p's current version and theirs: cacheable.
  double shared_attr_timeout(Node& node, const struct stat& st);
  void end_open(Node& node);
  // Keeps a kind-file node bound (binding `fd` if it is idle) until release().
  void hold(Node& node, FdRef fd);
  void release(Node& node);

  // An idle node was resolved by name to the inode `st`: index it there.
  void observe(const Node& node, const struct stat& st);

  // The kind-file nodes that stand for (dev, ino) (their last known inode),
  // and those of one name; for invalidations. May throw std::bad_alloc.
  std::vector<fuse_ino_t> file_nodes_of(dev_t dev, ino_t ino) const;
  std::vector<fuse_ino_t> file_nodes_named(fuse_ino_t parent, const std::string& name) const;
  // The inode replaced by the last rebind() of `node` ({0, 0} if none), cleared.
  std::pair<dev_t, ino_t> take_replaced(Node& node);
  // (dev, ino) the node stands for (its last known inode if idle).
  std::pair<dev_t, ino_t> key_of(const Node& node) const;

  void forget(fuse_ino_t id, std::uint64_t n);

  // Whether the node has opens (or an OPEN in progress).
  bool busy(const Node& node) const;

  // Registers an open on `node`. For a kind-file node that already has an
  // open this succeeds only if `share_with` is one of them (a reader sharing
  // its snapshot); otherwise false, and the caller answers ESTALE so that the
  // kernel re-walks to a fresh node.
  // `force`: attach regardless (see second_open_after_estale()).
  // `pin`: the open is a shared reader of that snapshot: it is attached to
  // a node without opens (which is then pinned to it) or to a node pinned
  // to the same snapshot, never to another.
  bool attach_open(Node& node, const std::shared_ptr<Version>& h, const Version* share_with,
                   bool force = false, const Pin& pin = {});
  // An OPEN of a busy node by `caller` got ESTALE (contend()) and no lookup
  // of the name by it followed: a path walk would have looked it up again
  // and come back on a fresh node, so this one re-opens without a walk
  // (e.g. /proc/PID/fd/N) and would get ESTALE forever. True then (once).
  bool second_open_after_estale(const Node& node, pid_t caller);
  void detach_open(Node& node, const Version* h);
  // The open of a kind-file node (null if none): kept alive by the caller's reference.
  std::shared_ptr<Version> open_of(const Node& node) const;

  // Every open of kind-file nodes that stand for the backing inode (dev, ino).
  // May throw std::bad_alloc.
  std::vector<std::shared_ptr<Version>> opens_of_inode(dev_t dev, ino_t ino) const;

  NodePlace place(const Node& node) const;
  // "dir/sub/name" relative to the root, for passthrough globs.
  std::string path_of(const Node& node) const;
  // For the change feed (events.hpp): the path of `name` in directory
  // `node` (of `node` itself if `name` is null) and the (dev, ino) of the
  // directory that holds it, read together. May throw std::bad_alloc.
  struct Located {
    std::string path;
    dev_t dir_dev = 0;
    ino_t dir_ino = 0;
    FdRef dir_fd;  // the directory's handle (its birth time is asked through it)
  };
  Located locate(const Node& node, const char* name) const;

  // After a commit the node stands for the inode it published.
  void rebind(Node& node, FdRef fd, const struct stat& st);

  // Namespace changes made through M.
  void on_unlink(fuse_ino_t parent, const std::string& name);
  void on_rename(const std::shared_ptr<Node>& from_parent, const std::string& from_name,
                 const std::shared_ptr<Node>& to_parent, const std::string& to_name,
                 bool exchange);

  std::size_t size() const;

private:
  using InoKey = std::pair<dev_t, ino_t>;
  struct InoHash {
    std::size_t operator()(const InoKey& k) const noexcept {
      return std::hash<std::uint64_t>()(static_cast<std::uint64_t>(k.second) * 31u +
                                        static_cast<std::uint64_t>(k.first));
    }
  };
  using NameKey = std::pair<fuse_ino_t, std::string>;

  std::shared_ptr<Node> make_locked(NodeKind kind, const struct stat& st);
  void index_name_locked(Node& n);
  void unindex_name_locked(Node& n);
  void unindex_ino_locked(Node& n);
  void index_ino_locked(Node& n);
  void set_place_locked(Node& n, const std::shared_ptr<Node>& parent, const std::string& name);
  void rekey_locked(Node& n, dev_t dev, ino_t ino);
  bool busy_locked(const Node& n) const noexcept { return n.open_count_ > 0 || n.opening_ > 0; }
  // An idle kind-file node gives up its descriptor (returned, to be closed
  // by the caller after unlocking).
  FdRef unbind_if_idle_locked(Node& n);

  mutable std::mutex mu_;
  double cache_ = 0;  // Config::cache_timeout
  std::atomic<std::uint64_t> changes_{0};
  std::atomic<bool> cold_cacheable_{false};
  fuse_ino_t next_id_ = FUSE_ROOT_ID + 1;
  std::unordered_map<fuse_ino_t, std::shared_ptr<Node>> nodes_;
  std::unordered_map<InoKey, fuse_ino_t, InoHash> shared_;         // dir, other, shared_file
  std::unordered_multimap<InoKey, fuse_ino_t, InoHash> files_;     // kind file
  std::multimap<NameKey, fuse_ino_t> names_;
  // Names whose OPEN by a thread was answered ESTALE, until when that
  // thread's lookups of them make fresh, uncached nodes (contend(),
  // intern()), and whether it has looked the name up since (`walked`).
  // Kept by name: the nodes involved are often forgotten by the kernel
  // before the ESTALE'd open walks again. The parent is named by its
  // backing directory (device, inode), not its node id: the re-walk
  // (LOOKUP_REVAL) revalidates every component, and a directory whose
  // kernel inode was evicted meanwhile (its dentry invalidated by a dentry
  // epoch, memory pressure) comes back under a new node id; keyed by that
  // id, the mark was missed, the name's cached node was handed out again,
  // and the kernel's last retry failed with ESTALE in the program.
  // Thread 0: everyone.
  using ContendKey = std::tuple<dev_t, ino_t, std::string, pid_t>;
  static ContendKey contend_key(const Node& parent, const std::string& name, pid_t who) {
    return ContendKey{parent.dev_, parent.ino_, name, who};
  }
  struct Contention {
    std::chrono::steady_clock::time_point until;
    bool walked = false;
  };
  bool contended_locked(const Node& parent, const std::string& name, pid_t caller,
                        std::chrono::steady_clock::time_point now);
  void contend_locked(const Node& n, pid_t caller);
  std::map<ContendKey, Contention> contended_;
  std::atomic<long> owned_{0};  // attached versions with an owner
};

}  // namespace snapfs::fuse
