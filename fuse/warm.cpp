#include "warm.hpp"

#include <functional>
#include <iterator>

namespace snapfs::fuse {

bool WarmSnapshots::Key::operator==(const Key& o) const noexcept {
  return dev == o.dev && ino == o.ino && size == o.size && mtime.tv_sec == o.mtime.tv_sec &&
         mtime.tv_nsec == o.mtime.tv_nsec && ctime.tv_sec == o.ctime.tv_sec &&
         ctime.tv_nsec == o.ctime.tv_nsec;
}

std::size_t WarmSnapshots::InodeHash::operator()(const Inode& k) const noexcept {
  std::size_t h = std::hash<std::uint64_t>()(static_cast<std::uint64_t>(k.ino));
  return h ^ (std::hash<std::uint64_t>()(static_cast<std::uint64_t>(k.dev)) +
              0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2));
}

WarmSnapshots::Key WarmSnapshots::key_of(const struct stat& st) noexcept {
  return Key{st.st_dev, st.st_ino, st.st_size, st.st_mtim, st.st_ctim};
}

void WarmSnapshots::drop_locked(List::iterator it, List& dead) {
  index_.erase(Inode{it->key.dev, it->key.ino});
  bytes_ -= static_cast<std::uint64_t>(it->snap->size);
  dead.splice(dead.begin(), lru_[it->cls], it);
}

void WarmSnapshots::expire_locked(Clock::time_point now, List& dead) {
  for (int c = 0; c < 2; ++c) {
    List& l = lru_[c];
    while (!l.empty() && (l.size() > capacity_[c] || now - l.back().last_used > ttl_))
      drop_locked(std::prev(l.end()), dead);
  }
  // Over the byte bound: the least recently used of both classes first.
  while (bytes_ > byte_capacity_ && !(lru_[0].empty() && lru_[1].empty())) {
    const int c = lru_[0].empty()                                          ? 1
                  : lru_[1].empty()                                        ? 0
                  : lru_[0].back().last_used <= lru_[1].back().last_used ? 0
                                                                           : 1;
    drop_locked(std::prev(lru_[c].end()), dead);
  }
}

std::shared_ptr<WarmSnapshot> WarmSnapshots::find(const struct stat& st) {
  if (!enabled()) return nullptr;
  const auto now = Clock::now();
  List dead;  // destroyed after the lock is released
  std::lock_guard lk(mu_);
  expire_locked(now, dead);
  auto it = index_.find(Inode{st.st_dev, st.st_ino});
  if (it == index_.end() || !(it->second->key == key_of(st))) return nullptr;
  Entry& e = *it->second;
  e.last_used = now;
  lru_[e.cls].splice(lru_[e.cls].begin(), lru_[e.cls], it->second);
  hits_.fetch_add(1, std::memory_order_relaxed);
  return e.snap;
}

void WarmSnapshots::insert(const struct stat& st, std::shared_ptr<WarmSnapshot> snap) {
  if (!enabled()) return;
  const auto now = Clock::now();
  const int cls = snap->keeps_file ? 1 : 0;
  if (capacity_[cls] == 0) return;
  List dead;  // destroyed after the lock is released
  std::lock_guard lk(mu_);
  const Inode inode{st.st_dev, st.st_ino};
  // Another version of the same inode (it changed in place): no open will
  // ask for it again.
  if (auto it = index_.find(inode); it != index_.end()) drop_locked(it->second, dead);
  List& l = lru_[cls];
  const auto size = static_cast<std::uint64_t>(snap->size);
  l.push_front(Entry{key_of(st), std::move(snap), now, cls});
  try {
    index_.emplace(inode, l.begin());
  } catch (...) {
    l.pop_front();
    throw;
  }
  bytes_ += size;
  expire_locked(now, dead);
}

void WarmSnapshots::evict_inode(dev_t dev, ino_t ino) noexcept {
  List dead;  // destroyed after the lock is released
  std::lock_guard lk(mu_);
  if (auto it = index_.find(Inode{dev, ino}); it != index_.end()) drop_locked(it->second, dead);
}

void WarmSnapshots::clear() {
  List dead[2];
  {
    std::lock_guard lk(mu_);
    index_.clear();
    bytes_ = 0;
    dead[0].swap(lru_[0]);
    dead[1].swap(lru_[1]);
  }
}

std::uint64_t WarmSnapshots::bytes() const {
  std::lock_guard lk(mu_);
  return bytes_;
}

std::size_t WarmSnapshots::size() const {
  std::lock_guard lk(mu_);
  return lru_[0].size() + lru_[1].size();
}

}  // namespace snapfs::fuse
