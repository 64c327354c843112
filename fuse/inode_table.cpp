// Node lifetime and indexes. See inode_table.hpp for the lock order.
#include "inode_table.hpp"

#include "handle.hpp"
#include "warm.hpp"

#include <algorithm>
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

// How long a thread whose OPEN of a name was answered ESTALE keeps getting
// fresh, uncached nodes from its lookups of that name (contend(); its
// re-walk normally ends with its next OPEN, which clears the mark).
constexpr std::chrono::seconds kContention{1};

NodeKind kind_of(const struct stat& st, bool shared_file) noexcept {
  if (S_ISDIR(st.st_mode)) return NodeKind::dir;
  if (S_ISREG(st.st_mode)) return shared_file ? NodeKind::shared_file : NodeKind::file;
  return NodeKind::other;
}

}  // namespace

void InodeTable::init_root(core::UniqueFd fd, const struct stat& st, double cache) {
  std::lock_guard lk(mu_);
  cache_ = cache;
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
                                         const struct stat& st, bool shared_file, Intent intent,
                                         Timeouts& t, pid_t caller, std::uint64_t seen,
                                         const Route& route) {
  const NodeKind kind = kind_of(st, shared_file);
  const InoKey key{st.st_dev, st.st_ino};
  std::lock_guard lk(mu_);
  std::shared_ptr<Node> node;
  bool keep_fd = true;
  t = Timeouts{};
  if (kind == NodeKind::file && intent == Intent::lookup && route.to) {
    // The caller's own version (docs/design-own-writes.md, "Routing"), if
    // it is still open on its node and the node still stands for this
    // inode: the reply names that node, uncached, its place unchanged.
    // A re-walk after an ESTALE towards it ends here (its mark is used up).
    const std::shared_ptr<Node>& n = route.to->node;
    const bool open_there = std::any_of(n->opens_.begin(), n->opens_.end(), [&](const auto& w) {
      return w.lock().get() == route.to;
    });
    if (open_there && !n->unlinked_ && n->dev_ == st.st_dev && n->ino_ == st.st_ino) {
      (void)contended_locked(*parent, name, caller, std::chrono::steady_clock::now());
      ++n->nlookup_;
      return n;
    }
  }
  if (kind == NodeKind::file) {
    // One kernel inode per open, except for readers that share one warm
    // snapshot (docs/design-passthrough.md, "Kernel facts" 2 and 3;
    // docs/design-fuse.md "Caching"):
    // - Caching is off, or this caller's OPEN of the name was just answered
    //   ESTALE (it is walking again, and its retry is the kernel's last):
    //   a fresh node, timeouts 0, that no other lookup is handed.
    // - Otherwise a node of the name that is pinned by shared readers to
    //   exactly the version B/p holds now (`st`) is reused, or else an
    //   idle node, or else a new one, with positive timeouts: the kernel's
    //   dentry revalidation succeeds and repeated stats are served from its
    //   cache. Nodes with other opens (a writer's, a reader's of an older
    //   version) are never handed out: an OPEN that meets one is answered
    //   ESTALE and contend()s.
    // - A node the kernel does not know yet gets attr_timeout 0 unless its
    //   attributes are known to be current or repaired by the dentry epoch
    //   (set_cold_cacheable()): if a commit invalidated it before the kernel
    //   made its inode, the notification found nothing and this reply's
    //   (older) attributes would stick.
    const auto now = std::chrono::steady_clock::now();
    const bool fresh = cache_ <= 0 || intent == Intent::open ||
                       contended_locked(*parent, name, caller, now);
    // An inode some process holds privately: never cached (Route::held).
    const double cache = route.held ? 0 : cache_;
    std::shared_ptr<Node> reuse;
    if (!fresh) {
      std::shared_ptr<Node> idle;
      auto [b, e] = names_.equal_range(NameKey{parent->id(), name});
      for (auto it = b; it != e; ++it) {
        const auto& n = nodes_.at(it->second);
        if (n->kind() != NodeKind::file || n->holds_ > 0 || n->reserved_) continue;
        if (busy_locked(*n)) {
          if (!reuse && n->pin_ && n->pin_exact_ && WarmSnapshots::same_version(n->pin_version_, st))
            reuse = n;
        } else if (!idle || (idle->nlookup_ == 0 && n->nlookup_ > 0)) {
          idle = n;
        }
      }
      if (!reuse) reuse = idle;
    }
    if (fresh) {
      node = make_locked(kind, st);
      node->reserved_ = intent == Intent::lookup;
      keep_fd = intent == Intent::open;
    } else {
      node = reuse ? reuse : make_locked(kind, st);
      rekey_locked(*node, st.st_dev, st.st_ino);  // a no-op for a pinned node (same version)
      t.entry = cache;
      // changes_ is read under mu_, after the stat (`seen` before it): a
      // change noted before this read makes the reply uncacheable; one
      // noted after it collects this node (file_nodes_*() take mu_), which
      // by then is known_to_kernel() (below).
      const bool cold_ok = seen != kNoChanges &&
                           cold_cacheable_.load(std::memory_order_acquire) &&
                           seen == changes_.load(std::memory_order_seq_cst);
      t.attr = node->nlookup_ > 0 || cold_ok ? cache : 0;
      if (t.entry > 0) node->entry_cached_ = true;
      if (t.attr > 0) {
        node->attr_cached_ = true;
        node->cached_version_ = st;
      }
      keep_fd = false;
    }
  } else {
    auto it = shared_.find(key);
    if (it != shared_.end()) {
      auto& n = nodes_.at(it->second);
      if (n->kind() == kind) node = n;
    }
    if (!node) node = make_locked(kind, st);
    if (kind == NodeKind::dir) {
      t.entry = t.attr = cache_ > 0 ? cache_ : 1.0;
    } else if (kind == NodeKind::other) {
      t.entry = t.attr = cache_;
    }  // shared_file: 0, coherent with B for processes sharing it directly
  }
  if (keep_fd && !node->fd_) node->fd_ = std::make_shared<const core::UniqueFd>(std::move(fd));
  // else: `fd` is another handle of the same inode, or an idle file node's
  // (which resolves its name when it needs the inode); it closes here.
  if (node->id() != FUSE_ROOT_ID) set_place_locked(*node, parent, name);
  ++node->nlookup_;
  return node;
}

bool InodeTable::known_to_kernel(fuse_ino_t id) const {
  std::lock_guard lk(mu_);
  auto it = nodes_.find(id);
  return it != nodes_.end() && it->second->nlookup_ > 0;
}

bool InodeTable::contended_locked(const Node& parent, const std::string& name, pid_t caller,
                                  std::chrono::steady_clock::time_point now) {
  if (contended_.empty()) return false;
  bool hit = false;
  for (pid_t who : {caller, pid_t{0}}) {
    auto c = contended_.find(contend_key(parent, name, who));
    if (c != contended_.end()) {
      if (c->second.until > now) {
        hit = true;
        c->second.walked = true;
      } else {
        contended_.erase(c);
      }
    }
    if (who == 0) break;
  }
  return hit;
}

void InodeTable::contend_locked(const Node& n, pid_t caller) {
  if (!n.parent_ || n.unlinked_) return;
  const auto now = std::chrono::steady_clock::now();
  try {
    if (contended_.size() > 4096)
      std::erase_if(contended_, [&](const auto& kv) { return kv.second.until <= now; });
    contended_[contend_key(*n.parent_, n.name_, caller)] = Contention{now + kContention, false};
  } catch (const std::bad_alloc&) {
    // Then the re-walk may meet another open once more (ESTALE): not worse
    // than without caching.
  }
}

bool InodeTable::contended_for(const Node& node, pid_t caller) const {
  std::lock_guard lk(mu_);
  if (contended_.empty() || !node.parent_ || node.unlinked_) return false;
  auto c = contended_.find(contend_key(*node.parent_, node.name_, caller));
  return c != contended_.end() && c->second.until > std::chrono::steady_clock::now();
}

void InodeTable::contend(const Node& node, pid_t caller) {
  std::lock_guard lk(mu_);
  contend_locked(node, caller);
}

void InodeTable::rekey_locked(Node& n, dev_t dev, ino_t ino) {
  if (n.dev_ == dev && n.ino_ == ino) return;
  unindex_ino_locked(n);
  n.dev_ = dev;
  n.ino_ = ino;
  index_ino_locked(n);
}

FdRef InodeTable::unbind_if_idle_locked(Node& n) {
  if (n.kind() != NodeKind::file || busy_locked(n) || n.holds_ > 0 || n.unlinked_) return nullptr;
  std::lock_guard fl(n.fd_mu_);
  return std::exchange(n.fd_, nullptr);
}

double InodeTable::attr_timeout(Node& node, const struct stat& st) {
  std::lock_guard lk(mu_);
  switch (node.kind()) {
    case NodeKind::dir:
      return cache_ > 0 ? cache_ : 1.0;
    case NodeKind::other:
      return cache_;
    case NodeKind::shared_file:
      return 0;
    case NodeKind::file:
      break;
  }
  // Nodes with an open: every reply about them has timeout 0 (fstat shows the
  // open's own snapshot, docs/design-fuse.md, "Kernel facts" 5). Unlinked
  // nodes: nothing to cache.
  if (busy_locked(node) || node.unlinked_ || cache_ <= 0) return 0;
  node.attr_cached_ = true;
  node.cached_version_ = st;
  return cache_;
}

OpenStart InodeTable::begin_open(Node& node, FdRef fd, bool shared_reader, pid_t caller) {
  OpenStart out;
  std::lock_guard lk(mu_);
  out.was_idle = !busy_locked(node);
  // The kernel may hold a dentry for this node: opening it would let later
  // path walks by others (stat) reach an open node, whose attributes are
  // the open's own (docs/semantics.md#writers). So it is not opened: ESTALE
  // makes the kernel walk again with LOOKUP_REVAL; that LOOKUP by the same
  // thread gets a fresh, uncached node (contend()), the kernel drops this
  // dentry itself, and the open lands on the fresh node. No dentry notification
  // is needed (notify_inval_entry would take the parent's lock, and a daemon
  // blocked in it cannot even be killed while that lock's holder waits for it).
  // The exception: shared readers, whose view is the published version
  // that path walks show anyway (attach_open(), docs/design-fuse.md).
  if (out.was_idle && node.entry_cached_ && !shared_reader) {
    contend_locked(node, caller);
    out.retire = true;
    return out;
  }
  node.reserved_ = false;
  // This caller's re-walk after an ESTALE ended here (an OPEN without a
  // lookup since keeps the mark: second_open_after_estale()).
  if (caller != 0 && !contended_.empty() && node.parent_) {
    auto c = contended_.find(contend_key(*node.parent_, node.name_, caller));
    if (c != contended_.end() && c->second.walked) contended_.erase(c);
  }
  // A shared reader keeps the attributes the kernel holds if they are its
  // version's (stale_cached_attrs()).
  if (out.was_idle && !shared_reader) out.attr_cached = std::exchange(node.attr_cached_, false);
  ++node.opening_;
  std::lock_guard fl(node.fd_mu_);
  if (!node.fd_) node.fd_ = std::move(fd);
  return out;
}

bool InodeTable::stale_cached_attrs(Node& node, const struct stat* v) {
  std::lock_guard lk(mu_);
  if (!node.attr_cached_ || (v && WarmSnapshots::same_version(node.cached_version_, *v)))
    return false;
  node.attr_cached_ = false;
  return true;
}

bool InodeTable::entry_cached(const Node& node) const {
  std::lock_guard lk(mu_);
  return node.entry_cached_;
}

bool InodeTable::any_pinned(const std::vector<fuse_ino_t>& ids) const {
  std::lock_guard lk(mu_);
  for (auto id : ids) {
    auto it = nodes_.find(id);
    if (it != nodes_.end() && it->second->pin_) return true;
  }
  return false;
}

double InodeTable::shared_attr_timeout(Node& node, const struct stat& st) {
  std::lock_guard lk(mu_);
  if (cache_ <= 0 || node.unlinked_) return 0;
  node.attr_cached_ = true;
  node.cached_version_ = st;
  return cache_;
}

PinState InodeTable::pin_of(const Node& node) const {
  std::lock_guard lk(mu_);
  PinState p;
  p.pinned = node.pin_ != nullptr;
  p.exact = p.pinned && node.pin_exact_;
  if (p.exact) p.version = node.pin_version_;
  return p;
}

void InodeTable::end_open(Node& node) {
  FdRef dropped;  // closed after the lock is dropped
  std::lock_guard lk(mu_);
  if (node.opening_ == 0) broken("end_open without begin_open", node.id());
  --node.opening_;
  dropped = unbind_if_idle_locked(node);
}

void InodeTable::hold(Node& node, FdRef fd) {
  std::lock_guard lk(mu_);
  ++node.holds_;
  std::lock_guard fl(node.fd_mu_);
  if (!node.fd_) node.fd_ = std::move(fd);
}

void InodeTable::release(Node& node) {
  FdRef dropped;
  std::lock_guard lk(mu_);
  if (node.holds_ == 0) broken("release without hold", node.id());
  --node.holds_;
  dropped = unbind_if_idle_locked(node);
}

void InodeTable::observe(const Node& node, const struct stat& st) {
  std::lock_guard lk(mu_);
  // Nodes are never const objects (make_locked); the index is the table's.
  Node& n = const_cast<Node&>(node);
  if (n.kind() == NodeKind::file && !n.unlinked_ && !n.fd_) rekey_locked(n, st.st_dev, st.st_ino);
}

std::vector<fuse_ino_t> InodeTable::file_nodes_of(dev_t dev, ino_t ino) const {
  std::vector<fuse_ino_t> out;
  std::lock_guard lk(mu_);
  auto [b, e] = files_.equal_range(InoKey{dev, ino});
  for (auto it = b; it != e; ++it) out.push_back(it->second);
  return out;
}

std::vector<fuse_ino_t> InodeTable::file_nodes_named(fuse_ino_t parent,
                                                     const std::string& name) const {
  std::vector<fuse_ino_t> out;
  std::lock_guard lk(mu_);
  auto [b, e] = names_.equal_range(NameKey{parent, name});
  for (auto it = b; it != e; ++it)
    if (nodes_.at(it->second)->kind() == NodeKind::file) out.push_back(it->second);
  return out;
}

std::pair<dev_t, ino_t> InodeTable::take_replaced(Node& node) {
  std::lock_guard lk(mu_);
  return {std::exchange(node.replaced_dev_, 0), std::exchange(node.replaced_ino_, 0)};
}

std::pair<dev_t, ino_t> InodeTable::key_of(const Node& node) const {
  std::lock_guard lk(mu_);
  return {node.dev_, node.ino_};
}

bool InodeTable::busy(const Node& node) const {
  std::lock_guard lk(mu_);
  return busy_locked(node);
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

bool InodeTable::second_open_after_estale(const Node& node, pid_t caller) {
  std::lock_guard lk(mu_);
  // No path walk reaches a node unlinked through M: any OPEN of it is a re-open.
  if (!node.parent_ || node.unlinked_) return true;
  auto c = contended_.find(contend_key(*node.parent_, node.name_, caller));
  if (c == contended_.end() || c->second.walked ||
      c->second.until <= std::chrono::steady_clock::now())
    return false;
  contended_.erase(c);
  return true;
}

bool InodeTable::attach_open(Node& node, const std::shared_ptr<Version>& h,
                             const Version* share_with, bool force, const Pin& pin) {
  std::lock_guard lk(mu_);
  const bool first = node.open_count_ == 0;
  if (node.kind() == NodeKind::file && !first && !force) {
    if (pin.id) {
      // Shared readers: the kernel serves every open of the node from one
      // backing file, so only the node's own snapshot may join.
      if (node.pin_ != pin.id) return false;
    } else {
      bool found = false;
      for (const auto& w : node.opens_)
        if (share_with && w.lock().get() == share_with) found = true;
      if (!found) return false;
    }
  }
  node.opens_.emplace_back(h);
  ++node.open_count_;
  if (h->owner.tgid != 0) owned_.fetch_add(1, std::memory_order_release);
  if (node.kind() == NodeKind::file) {
    if (first) {
      node.pin_ = pin.id;
      node.pin_exact_ = pin.id && pin.version;
      if (node.pin_exact_) node.pin_version_ = *pin.version;
    } else if (node.pin_ != pin.id) {
      node.pin_ = nullptr;  // another kind of open joined: no longer shared readers only
    }
  }
  return true;
}

void InodeTable::detach_open(Node& node, const Version* h) {
  FdRef dropped;  // closed after the lock is dropped
  std::lock_guard lk(mu_);
  if (node.open_count_ == 0) broken("release without open", node.id());
  if (--node.open_count_ == 0) node.pin_ = nullptr;
  if (h->owner.tgid != 0) owned_.fetch_sub(1, std::memory_order_release);
  dropped = unbind_if_idle_locked(node);
  for (auto it = node.opens_.begin(); it != node.opens_.end();) {
    auto cur = it->lock();
    if (!cur || cur.get() == h)
      it = node.opens_.erase(it);
    else
      ++it;
  }
}

std::vector<std::shared_ptr<Version>> InodeTable::opens_of_inode(dev_t dev, ino_t ino) const {
  std::vector<std::shared_ptr<Version>> out;
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

std::shared_ptr<Version> InodeTable::open_of(const Node& node) const {
  std::lock_guard lk(mu_);
  if (node.kind() != NodeKind::file) return nullptr;
  for (const auto& w : node.opens_)
    if (auto h = w.lock()) return h;
  return nullptr;
}

std::vector<std::shared_ptr<Version>> InodeTable::owned_versions_of(dev_t dev, ino_t ino) const {
  std::vector<std::shared_ptr<Version>> out;
  if (!any_owned()) return out;
  std::lock_guard lk(mu_);
  auto [b, e] = files_.equal_range(InoKey{dev, ino});
  for (auto it = b; it != e; ++it) {
    auto n = nodes_.find(it->second);
    if (n == nodes_.end()) continue;
    for (const auto& w : n->second->opens_) {
      // Version::owner is set before the version is attached, never after.
      if (auto v = w.lock(); v && v->owner.tgid != 0) out.push_back(std::move(v));
    }
  }
  return out;
}

NodePlace InodeTable::place(const Node& node) const {
  std::lock_guard lk(mu_);
  return NodePlace{node.unlinked_ ? nullptr : node.parent_, node.name_, node.unlinked_};
}

InodeTable::Located InodeTable::locate(const Node& node, const char* name) const {
  Located l;
  {
    std::lock_guard lk(mu_);
    const Node* dir = name != nullptr ? &node : node.parent_.get();
    if (dir != nullptr) {
      l.dir_dev = dir->dev_;
      l.dir_ino = dir->ino_;
      l.dir_fd = dir->fd();  // Node::fd_mu is a leaf below this table's mutex
    }
  }
  // (A rename between the two reads leaves a path whose directory is not
  // the one recorded: the feed then hides the event, never shows more.)
  l.path = path_of(node);
  if (name != nullptr) l.path = l.path.empty() ? std::string(name) : l.path + "/" + name;
  return l;
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
  // commit read the metadata or wholly after this rebind (commit.cpp).
  std::vector<Node*> follow{&node};
  if (node.kind() == NodeKind::file) {
    auto [b, e] = files_.equal_range(InoKey{node.dev_, node.ino_});
    for (auto it = b; it != e; ++it) {
      Node* n = nodes_.at(it->second).get();
      if (n != &node && !n->unlinked_ && n->parent_ == node.parent_ && n->name_ == node.name_)
        follow.push_back(n);
    }
  }
  node.replaced_dev_ = node.dev_;
  node.replaced_ino_ = node.ino_;
  for (Node* n : follow) {
    rekey_locked(*n, st.st_dev, st.st_ino);
    // Idle nodes hold no descriptor: they resolve their name, which now
    // holds the published inode.
    std::lock_guard fl(n->fd_mu_);
    if (n == &node || n->fd_) n->fd_ = fd;
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
