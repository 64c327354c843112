// Node lifetime and indexes. See inode_table.hpp for the lock order.
#include "inode_table.hpp"

#include <cstdio>
#include <cstdlib>
#include <vector>

namespace snapfs::fuse {

namespace {

[[noreturn]] void broken(const char* what, fuse_ino_t id) {
  // A broken invariant between us and the kernel (passthrough_hp aborts too):
  // continuing would act on the wrong inode.
  std::fprintf(stderr, "snapfs: inode table: %s (ino %llu)\n", what,
               static_cast<unsigned long long>(id));
  std::abort();
}

NodeKind kind_of(const struct stat& st, bool shared_file) noexcept {
  if (S_ISDIR(st.st_mode)) return NodeKind::dir;
  if (S_ISREG(st.st_mode)) return shared_file ? NodeKind::shared_file : NodeKind::file;
  return NodeKind::other;
}

}  // namespace

void InodeTable::init_root(core::UniqueFd fd, const struct stat& st) {
  std::lock_guard lk(mu_);
  auto root = std::make_shared<Node>(FUSE_ROOT_ID, NodeKind::dir, S_IFDIR);
  root->fd_ = std::make_shared<const core::UniqueFd>(std::move(fd));
  root->dev_ = st.st_dev;
  root->ino_ = st.st_ino;
  root->nlookup_ = 1;  // the kernel never forgets the root
  nodes_.emplace(FUSE_ROOT_ID, root);
}

std::shared_ptr<Node> InodeTable::get(fuse_ino_t id) const {
  std::lock_guard lk(mu_);
  auto it = nodes_.find(id);
  if (it == nodes_.end()) broken("request for an unknown node", id);
  return it->second;
}

std::shared_ptr<Node> InodeTable::make_locked(NodeKind kind, const struct stat& st) {
  auto n = std::make_shared<Node>(next_id_++, kind, st.st_mode & S_IFMT);
  n->dev_ = st.st_dev;
  n->ino_ = st.st_ino;
  nodes_.emplace(n->id(), n);
  index_ino_locked(*n);
  return n;
}

void InodeTable::index_ino_locked(Node& n) {
  const InoKey key{n.dev_, n.ino_};
  if (n.kind() == NodeKind::file)
    files_.emplace(key, n.id());
  else
    shared_[key] = n.id();
}

void InodeTable::unindex_ino_locked(Node& n) {
  const InoKey key{n.dev_, n.ino_};
  if (n.kind() == NodeKind::file) {
    auto [b, e] = files_.equal_range(key);
    for (auto it = b; it != e; ++it)
      if (it->second == n.id()) {
        files_.erase(it);
        break;
      }
  } else {
    auto it = shared_.find(key);
    if (it != shared_.end() && it->second == n.id()) shared_.erase(it);
  }
}

void InodeTable::index_name_locked(Node& n) {
  if (n.parent_ && !n.unlinked_) names_.emplace(NameKey{n.parent_->id(), n.name_}, n.id());
}

void InodeTable::unindex_name_locked(Node& n) {
  if (!n.parent_) return;
  auto [b, e] = names_.equal_range(NameKey{n.parent_->id(), n.name_});
  for (auto it = b; it != e; ++it)
    if (it->second == n.id()) {
      names_.erase(it);
      return;
    }
}

void InodeTable::set_place_locked(Node& n, const std::shared_ptr<Node>& parent,
                                  const std::string& name) {
  unindex_name_locked(n);
  n.parent_ = parent;
  n.name_ = name;
  n.unlinked_ = false;
  index_name_locked(n);
}

std::shared_ptr<Node> InodeTable::intern(const std::shared_ptr<Node>& parent,
                                         const std::string& name, core::UniqueFd fd,
                                         const struct stat& st, bool shared_file) {
  const NodeKind kind = kind_of(st, shared_file);
  const InoKey key{st.st_dev, st.st_ino};
  std::lock_guard lk(mu_);
  std::shared_ptr<Node> node;
  if (kind == NodeKind::file) {
    // One kernel inode per open (PASSTHROUGH-NOTES): every lookup of a
    // snapshot file gets a fresh nodeid. With entry_timeout 0 the kernel
    // revalidates each path walk with a LOOKUP; a different nodeid makes it
    // drop the dentry and look up again, so every open lands on a node that
    // only its own walk was given. Reusing idle nodes is not safe: a walk
    // could get a node that a concurrent walk is about to open, and the
    // kernel's single ESTALE re-walk could then collide again (measured:
    // ESTALE reached applications under 4 readers + 1 writer). Cost: two
    // LOOKUPs and a FORGET per walk that ends at a regular file.
  } else {
    auto it = shared_.find(key);
    if (it != shared_.end()) {
      auto& n = nodes_.at(it->second);
      if (n->kind() == kind) node = n;
    }
  }
  if (!node) {
    node = make_locked(kind, st);  // kind file: always
    node->fd_ = std::make_shared<const core::UniqueFd>(std::move(fd));
  }
  // else: `fd` is another handle of the same inode; it closes here.
  if (node->id() != FUSE_ROOT_ID) set_place_locked(*node, parent, name);
  ++node->nlookup_;
  return node;
}

void InodeTable::forget(fuse_ino_t id, std::uint64_t n) {
  std::shared_ptr<Node> dead;  // destroyed after the lock is dropped
  {
    std::lock_guard lk(mu_);
    auto it = nodes_.find(id);
    if (it == nodes_.end()) broken("forget of an unknown node", id);
    Node& node = *it->second;
    if (node.nlookup_ < n) broken("negative lookup count", id);
    node.nlookup_ -= n;
    if (node.nlookup_ > 0 || id == FUSE_ROOT_ID) return;
    dead = it->second;
    unindex_ino_locked(node);
    unindex_name_locked(node);
    nodes_.erase(it);
  }
}

bool InodeTable::second_open_after_estale(Node& node) {
  std::lock_guard lk(mu_);
  return std::exchange(node.estaled_, true);
}

bool InodeTable::attach_open(Node& node, const std::shared_ptr<Handle>& h,
                             const Handle* share_with, bool force) {
  std::lock_guard lk(mu_);
  if (node.kind() == NodeKind::file && node.open_count_ > 0 && !force) {
    bool found = false;
    for (const auto& w : node.opens_)
      if (share_with && w.lock().get() == share_with) found = true;
    if (!found) return false;
  }
  node.opens_.emplace_back(h);
  ++node.open_count_;
  return true;
}

void InodeTable::detach_open(Node& node, const Handle* h) {
  std::lock_guard lk(mu_);
  if (node.open_count_ == 0) broken("release without open", node.id());
  --node.open_count_;
  for (auto it = node.opens_.begin(); it != node.opens_.end();) {
    auto cur = it->lock();
    if (!cur || cur.get() == h)
      it = node.opens_.erase(it);
    else
      ++it;
  }
}

std::vector<std::shared_ptr<Handle>> InodeTable::opens_of_inode(dev_t dev, ino_t ino) const {
  std::vector<std::shared_ptr<Handle>> out;
  std::lock_guard lk(mu_);
  auto [b, e] = files_.equal_range(InoKey{dev, ino});
  for (auto it = b; it != e; ++it) {
    auto n = nodes_.find(it->second);
    if (n == nodes_.end()) continue;
    for (const auto& w : n->second->opens_)
      if (auto h = w.lock()) out.push_back(std::move(h));
  }
  return out;
}

std::shared_ptr<Handle> InodeTable::open_of(const Node& node) const {
  std::lock_guard lk(mu_);
  if (node.kind() != NodeKind::file) return nullptr;
  for (const auto& w : node.opens_)
    if (auto h = w.lock()) return h;
  return nullptr;
}

NodePlace InodeTable::place(const Node& node) const {
  std::lock_guard lk(mu_);
  return NodePlace{node.unlinked_ ? nullptr : node.parent_, node.name_, node.unlinked_};
}

std::string InodeTable::path_of(const Node& node) const {
  std::lock_guard lk(mu_);
  std::vector<const Node*> chain;
  for (const Node* n = &node; n && n->id() != FUSE_ROOT_ID; n = n->parent_.get()) {
    chain.push_back(n);
    if (chain.size() > 4096) break;  // a cycle would be a bug; do not spin
  }
  std::string path;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    if (!path.empty()) path += '/';
    path += (*it)->name_;
  }
  return path;
}

void InodeTable::rebind(Node& node, FdRef fd, const struct stat& st) {
  std::lock_guard lk(mu_);
  // Every node that stood for the replaced inode under the same name follows
  // it to the published one (not other hard links of it). A chmod or setxattr
  // whose lookup happened before the commit then reaches the new B/p: the
  // caller holds the namespace lock, so such a change runs wholly before the
  // commit read the metadata or wholly after this rebind (handle.cpp).
  std::vector<Node*> follow{&node};
  if (node.kind() == NodeKind::file) {
    auto [b, e] = files_.equal_range(InoKey{node.dev_, node.ino_});
    for (auto it = b; it != e; ++it) {
      Node* n = nodes_.at(it->second).get();
      if (n != &node && !n->unlinked_ && n->parent_ == node.parent_ && n->name_ == node.name_)
        follow.push_back(n);
    }
  }
  for (Node* n : follow) {
    unindex_ino_locked(*n);
    n->dev_ = st.st_dev;
    n->ino_ = st.st_ino;
    index_ino_locked(*n);
    n->set_fd(fd);
  }
}

void InodeTable::on_unlink(fuse_ino_t parent, const std::string& name) {
  std::lock_guard lk(mu_);
  auto [b, e] = names_.equal_range(NameKey{parent, name});
  for (auto it = b; it != e; ++it) nodes_.at(it->second)->unlinked_ = true;
  names_.erase(b, e);
}

void InodeTable::on_rename(const std::shared_ptr<Node>& from_parent, const std::string& from_name,
                           const std::shared_ptr<Node>& to_parent, const std::string& to_name,
                           bool exchange) {
  std::lock_guard lk(mu_);
  auto take = [&](fuse_ino_t p, const std::string& n) {
    std::vector<fuse_ino_t> ids;
    auto [b, e] = names_.equal_range(NameKey{p, n});
    for (auto it = b; it != e; ++it) ids.push_back(it->second);
    names_.erase(b, e);
    return ids;
  };
  const auto moved = take(from_parent->id(), from_name);
  const auto target = take(to_parent->id(), to_name);
  for (auto id : target) {
    auto& n = nodes_.at(id);
    if (exchange) {
      n->parent_ = from_parent;
      n->name_ = from_name;
      index_name_locked(*n);
    } else {
      n->unlinked_ = true;  // replaced: its commits would resurrect a dead name
    }
  }
  for (auto id : moved) {
    auto& n = nodes_.at(id);
    n->parent_ = to_parent;
    n->name_ = to_name;
    index_name_locked(*n);
  }
}

std::size_t InodeTable::size() const {
  std::lock_guard lk(mu_);
  return nodes_.size();
}

}  // namespace snapfs::fuse
