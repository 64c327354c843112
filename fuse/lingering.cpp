#include "lingering.hpp"

#include "daemon_state.hpp"
#include "handle.hpp"
#include "sys/sys.hpp"

#include <fcntl.h>

#include <chrono>
#include <cstring>
#include <new>
#include <shared_mutex>
#include <vector>

namespace snapfs::fuse {

namespace sys = core::sys;

namespace {

// How often parked snapshots are asked whether they are still mapped: a
// munmap is published within this time (the caller of munmap has no result
// to wait for; msync(MS_SYNC) syncs the snapshot, not B).
constexpr auto kPoll = std::chrono::milliseconds(10);

}  // namespace

Lingering::Lingering(Conn& c) : c_(c), watcher_([this] { run(); }) {}

Lingering::~Lingering() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  watcher_.join();
  for (const auto& p : parked_) settle(*p.h);
}

bool Lingering::park_if_mapped(const std::shared_ptr<Version>& h) {
  auto sole = sys::sole_writer(h->snap.fd());
  // An error asking: treat as unmapped (publish now, as before passthrough).
  if (!sole) c_.d.log->debug("release: lease probe: {}", sole.error().message());
  if (!sole || *sole) return false;
  auto claim = hold_node(c_, h->node);
  if (!claim) return false;  // publish now, as if unmapped
  {
    std::lock_guard lk(mu_);
    try {
      parked_.push_back(Parked{h, std::move(*claim)});
    } catch (const std::bad_alloc&) {
      return false;
    }
  }
  cv_.notify_all();
  c_.d.log->debug("release of {}: snapshot still mapped for writing; commit deferred",
                c_.table.path_of(*h->node));
  return true;
}

std::size_t Lingering::size() const {
  std::lock_guard lk(mu_);
  return parked_.size();
}

void Lingering::settle(Version& h) noexcept {
  CommitCaller caller;
  caller.release = true;
  try {
    caller.mapped_stores = mapped_stores_unseen(c_, h);
  } catch (const std::bad_alloc&) {
    caller.mapped_stores = true;  // cannot compare: publish (identical content at worst)
  }
  auto r = commit(c_, h, caller);
  {
    std::unique_lock lk(h.mu);
    settle_truncation(c_, h);
  }
  if (!r)
    c_.d.log->error("commit of {} after its last mapping went away failed: {}",
                  c_.table.path_of(*h.node), r.error().message());
  else if (*r == CommitOutcome::conflict)
    c_.d.log->warn("commit of {} after its last mapping went away: conflict (kept)",
                 c_.table.path_of(*h.node));
}

void Lingering::run() {
  std::unique_lock lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] { return stop_ || !parked_.empty(); });
    if (stop_) return;
    cv_.wait_for(lk, kPoll, [&] { return stop_; });
    if (stop_) return;
    std::vector<Parked> done;
    for (std::size_t i = 0; i < parked_.size();) {
      auto sole = sys::sole_writer(parked_[i].h->snap.fd());
      if (!sole || *sole) {
        done.push_back(std::move(parked_[i]));
        parked_[i] = std::move(parked_.back());
        parked_.pop_back();
      } else {
        ++i;
      }
    }
    lk.unlock();
    for (const auto& p : done) settle(*p.h);
    done.clear();  // the snapshots go with the last reference; the nodes unbind
    lk.lock();
  }
}

}  // namespace snapfs::fuse
