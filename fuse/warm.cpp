#include "warm.hpp"

#include <functional>
#include <iterator>

namespace snapfs::fuse {

bool WarmSnapshots::Key::operator==(const Key& o) const noexcept {
  return dev == o.dev && ino == o.ino && size == o.size && mtime.tv_sec == o.mtime.tv_sec &&
         mtime.tv_nsec == o.mtime.tv_nsec && ctime.tv_sec == o.ctime.tv_sec &&
         ctime.tv_nsec == o.ctime.tv_nsec;
}

std::size_t WarmSnapshots::KeyHash::operator()(const Key& k) const noexcept {
  std::size_t h = std::hash<std::uint64_t>()(static_cast<std::uint64_t>(k.ino));
  auto mix = [&](std::uint64_t v) {
    h ^= std::hash<std::uint64_t>()(v) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  };
  mix(static_cast<std::uint64_t>(k.dev));
  mix(static_cast<std::uint64_t>(k.ctime.tv_nsec));
  return h;
}

WarmSnapshots::Key WarmSnapshots::key_of(const struct stat& st) noexcept {
  return Key{st.st_dev, st.st_ino, st.st_size, st.st_mtim, st.st_ctim};
}

void WarmSnapshots::expire_locked(Clock::time_point now, std::list<Entry>& dead) {
  while (!lru_.empty() && (lru_.size() > capacity_ || now - lru_.back().last_used > ttl_)) {
    index_.erase(lru_.back().key);
    dead.splice(dead.begin(), lru_, std::prev(lru_.end()));
  }
}

std::shared_ptr<WarmSnapshot> WarmSnapshots::find(const struct stat& st) {
  if (!enabled()) return nullptr;
  const auto now = Clock::now();
  std::list<Entry> dead;  // destroyed after the lock is released
  std::lock_guard lk(mu_);
  expire_locked(now, dead);
  auto it = index_.find(key_of(st));
  if (it == index_.end()) return nullptr;
  it->second->last_used = now;
  lru_.splice(lru_.begin(), lru_, it->second);
  hits_.fetch_add(1, std::memory_order_relaxed);
  return it->second->snap;
}

void WarmSnapshots::insert(const struct stat& st, std::shared_ptr<WarmSnapshot> snap) {
  if (!enabled()) return;
  const auto now = Clock::now();
  const Key k = key_of(st);
  std::list<Entry> dead;  // destroyed after the lock is released
  std::lock_guard lk(mu_);
  // Other versions of the same inode (it changed in place): no open will
  // ask for them again.
  for (auto it = lru_.begin(); it != lru_.end();) {
    auto next = std::next(it);
    if (it->key.dev == k.dev && it->key.ino == k.ino) {
      index_.erase(it->key);
      dead.splice(dead.begin(), lru_, it);
    }
    it = next;
  }
  lru_.push_front(Entry{k, std::move(snap), now});
  try {
    index_.emplace(k, lru_.begin());
  } catch (...) {
    lru_.pop_front();
    throw;
  }
  expire_locked(now, dead);
}

void WarmSnapshots::evict_inode(dev_t dev, ino_t ino) noexcept {
  std::list<Entry> dead;  // destroyed after the lock is released
  std::lock_guard lk(mu_);
  for (auto it = lru_.begin(); it != lru_.end();) {
    auto next = std::next(it);
    if (it->key.dev == dev && it->key.ino == ino) {
      index_.erase(it->key);
      dead.splice(dead.begin(), lru_, it);
    }
    it = next;
  }
}

void WarmSnapshots::clear() {
  std::list<Entry> dead;
  {
    std::lock_guard lk(mu_);
    index_.clear();
    dead.swap(lru_);
  }
}

std::size_t WarmSnapshots::size() const {
  std::lock_guard lk(mu_);
  return lru_.size();
}

}  // namespace snapfs::fuse
