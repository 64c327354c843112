// Coherence of the kernel's name and attribute caches with what snapfs does
// (docs/design-fuse.md "Caching"):
// - idle kind-file nodes hold no descriptor and are resolved by name;
// - an OPEN never takes a node the kernel may cache a dentry for (ESTALE,
//   the re-walk gets a fresh node: before_open);
// - a commit, and metadata and link-count changes made through M, drop the
//   attributes the kernel holds for every node they made stale.
// Everything here is a no-op for invalidations when cache_timeout is 0:
// nothing about a file is cached then.
#pragma once

#include "daemon_state.hpp"

#include <snapfs/core/result.hpp>

#include <sys/stat.h>

#include <memory>
#include <utility>

namespace snapfs::fuse {

// The descriptor of `node`'s backing inode: the node's own if it is bound,
// else B/<parent>/<name> resolved now (openat2 RESOLVE_BENEATH, O_NOFOLLOW,
// one component beneath the parent's descriptor). ESTALE if the name no
// longer holds a regular file (or was unlinked through M): the kernel then
// walks the path again (LOOKUP_REVAL) and finds what is there now.
// `pause`: a test-only point (Config::test_pause) between the name's
// resolution and its use, for tests that race it.
core::Result<FdRef> node_fd(Conn& c, const Node& node, const char* pause = nullptr) noexcept;

// fstat of node_fd() without opening anything for an idle node (fstatat of
// the single name, AT_SYMLINK_NOFOLLOW).
core::Result<struct stat> node_stat(Conn& c, const Node& node) noexcept;
// What the node's name holds now (fstatat as above), bound or not.
core::Result<struct stat> name_stat(Conn& c, const Node& node) noexcept;

// Keeps a node bound (InodeTable::begin_open/hold) for as long as it lives.
class NodeClaim {
public:
  NodeClaim() = default;
  NodeClaim(Conn& c, std::shared_ptr<Node> n, bool open) noexcept
      : c_(&c), node_(std::move(n)), open_(open) {}
  NodeClaim(NodeClaim&& o) noexcept
      : c_(std::exchange(o.c_, nullptr)), node_(std::move(o.node_)), open_(o.open_) {}
  NodeClaim& operator=(NodeClaim&& o) noexcept {
    if (this != &o) {
      NodeClaim old(std::move(*this));  // released at the end of this scope
      c_ = std::exchange(o.c_, nullptr);
      node_ = std::move(o.node_);
      open_ = o.open_;
    }
    return *this;
  }
  NodeClaim(const NodeClaim&) = delete;
  ~NodeClaim();

private:
  Conn* c_ = nullptr;
  std::shared_ptr<Node> node_;
  bool open_ = false;
};

// OPEN of `node` by thread `caller` (before the snapshot is made). A node
// the kernel may hold a cached dentry for is never opened (unless
// `shared_reader`, see below): ESTALE, and the kernel's re-walk
// (LOOKUP_REVAL) gets a fresh node and drops that dentry itself, so no path
// walk by others ever reaches an open node (stat by anyone else shows the
// published file, docs/semantics.md#writers). Otherwise binds an idle node to
// the inode its name holds now and drops the attributes the kernel may have
// cached for it. The claim keeps the node "open" for the cache rules until the
// OPEN handler returns.
// `shared_reader`: a read-only open that kernel passthrough will serve from
// the warm snapshot of the version B/p holds: it may take a cached node,
// whose other opens (if any) read that same snapshot, and whose stat is
// that version's as long as B/p is (docs/design-fuse.md "Shared readers").
core::Result<NodeClaim> before_open(Conn& c, const std::shared_ptr<Node>& node,
                                    bool shared_reader = false, pid_t caller = 0) noexcept;

// GETATTR without a file handle (fstat and stat carry none, docs/design-fuse.md,
// "Kernel facts" 5) of a node pinned by shared readers. While B/p still is their
// version, that is the answer for everyone, cacheable (`timeout`). Once it
// changed, the readers' version, timeout 0: after a commit through M only they
// reach the node (after_commit bumps the dentry epoch); after a change made
// directly in B others may for up to cache_timeout, as with any cached name.
core::Result<struct stat> shared_reader_attr(Conn& c, Node& node, double& timeout) noexcept;

// Keeps a file node bound while a handler calls code that uses node->fd()
// (truncate(path)). Not an open: the cache rules do not change.
// (`pause`: see node_fd().)
core::Result<NodeClaim> hold_node(Conn& c, const std::shared_ptr<Node>& node,
                                  const char* pause = nullptr) noexcept;

// After a publish to `node`'s name (commit, truncate(path)), before the
// reply: the attributes cached for every node of that name, of the
// published inode (other hard links, for an in-place publish) and of the
// replaced inode (its link count fell), and of the parent directory
// (mtime), are dropped. Synchronous (no directory lock, notifier.hpp).
void after_commit(Conn& c, Node& node, const struct stat& published) noexcept;

// A change of the inode (dev, ino) made through M (chmod, chown, utimens,
// xattrs, link, unlink, rename) that the kernel applied to one node only:
// drop the cached attributes of every other kind-file node of it.
void after_inode_change(Conn& c, dev_t dev, ino_t ino, fuse_ino_t except = 0) noexcept;

}  // namespace snapfs::fuse
