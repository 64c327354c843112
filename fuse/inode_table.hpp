// Nodes (FUSE nodeids) and their lifetime: lookup counts, the (dev, ino) and
// (parent, name) indexes, and the one-open-per-node rule.
//
// Lock order (docs/design-fuse.md): Handle::mu -> commit stripe -> Daemon::ns_mu ->
// InodeTable::mu -> Node::fd_mu. InodeTable::mu guards map and node-field
// updates only; no I/O and no reply ever happens under it.
#pragma once

#include "fuse_api.hpp"

#include <snapfs/core/unique_fd.hpp>

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace snapfs::fuse {

struct Handle;

enum class NodeKind {
  dir,          // shared by (dev, ino)
  file,         // a regular file served from per-open snapshots: one node per open
  shared_file,  // a regular file matching -o passthrough=GLOB: shared by (dev, ino)
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
  FdRef fd() const {
    std::lock_guard lk(fd_mu_);
    return fd_;
  }
  void set_fd(FdRef fd) {
    std::lock_guard lk(fd_mu_);
    fd_ = std::move(fd);
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
  std::vector<std::weak_ptr<Handle>> opens_;
  unsigned open_count_ = 0;
  bool estaled_ = false;  // an OPEN on this node was answered ESTALE
};

// Where a commit of a node goes, read atomically under the table mutex.
struct NodePlace {
  std::shared_ptr<Node> parent;  // null for the root and for unlinked nodes
  std::string name;
  bool unlinked = false;
};

class InodeTable {
public:
  // The root node (FUSE_ROOT_ID) for the O_PATH handle of B.
  void init_root(core::UniqueFd fd, const struct stat& st);

  // The node for `id`; aborts on an id the kernel should not have.
  std::shared_ptr<Node> get(fuse_ino_t id) const;

  // Finds or makes the node for `name` in `parent` whose backing inode is
  // `fd`/`st`, and counts one kernel lookup on it. `shared_file`: the path
  // matches a passthrough glob.
  std::shared_ptr<Node> intern(const std::shared_ptr<Node>& parent, const std::string& name,
                               core::UniqueFd fd, const struct stat& st, bool shared_file);

  void forget(fuse_ino_t id, std::uint64_t n);

  // Registers an open on `node`. For a kind-file node that already has an
  // open this succeeds only if `share_with` is one of them (a reader sharing
  // its snapshot); otherwise false, and the caller answers ESTALE so that the
  // kernel re-walks to a fresh node.
  // `force`: attach regardless (see second_open_after_estale()).
  bool attach_open(Node& node, const std::shared_ptr<Handle>& h, const Handle* share_with,
                   bool force = false);
  // An OPEN on a busy node got ESTALE once already: a path walk would have
  // come back on a fresh node, so this one re-opens without a walk (e.g.
  // /proc/PID/fd/N) and would get ESTALE forever. True the second time.
  bool second_open_after_estale(Node& node);
  void detach_open(Node& node, const Handle* h);
  // The open of a kind-file node (null if none): kept alive by the caller's reference.
  std::shared_ptr<Handle> open_of(const Node& node) const;

  // Every open of kind-file nodes that stand for the backing inode (dev, ino).
  // May throw std::bad_alloc.
  std::vector<std::shared_ptr<Handle>> opens_of_inode(dev_t dev, ino_t ino) const;

  NodePlace place(const Node& node) const;
  // "dir/sub/name" relative to the root, for passthrough globs.
  std::string path_of(const Node& node) const;

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

  mutable std::mutex mu_;
  fuse_ino_t next_id_ = FUSE_ROOT_ID + 1;
  std::unordered_map<fuse_ino_t, std::shared_ptr<Node>> nodes_;
  std::unordered_map<InoKey, fuse_ino_t, InoHash> shared_;         // dir, other, shared_file
  std::unordered_multimap<InoKey, fuse_ino_t, InoHash> files_;     // kind file
  std::multimap<NameKey, fuse_ino_t> names_;
};

}  // namespace snapfs::fuse
