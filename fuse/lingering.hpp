// Passthrough writers whose snapshot is still mapped after RELEASE.
//
// With kernel passthrough, a MAP_SHARED mapping holds the snapshot itself,
// not the FUSE file: RELEASE comes at close(2) even while the mapping lives
// on and keeps writing (docs/design-passthrough.md, "Kernel facts" 7).
// docs/semantics.md#mmap wants those writes published when the last mapping
// goes away. RELEASE parks such a handle here; a watcher thread asks the kernel
// every few milliseconds whether anyone else still has the snapshot open for
// writing (a write lease is granted only then: sys::sole_writer) and, once
// nobody has, commits what changed (as RELEASE would) and frees the handle.
#pragma once

#include "cache.hpp"

#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace snapfs::fuse {

struct Version;

class Lingering {
public:
  explicit Lingering(Conn& c);
  Lingering(const Lingering&) = delete;
  Lingering& operator=(const Lingering&) = delete;
  // Stops the watcher; what is still parked is committed now (the daemon is
  // going away; a mapping that outlives it keeps only its private copy).
  ~Lingering();

  // Whether `h` (released, kernel-written) must wait for its mappings; if
  // so it is parked and true is returned.
  bool park_if_mapped(const std::shared_ptr<Version>& h);
  std::size_t size() const;

private:
  void run();
  void settle(Version& h) noexcept;

  Conn& c_;
  mutable std::mutex mu_;  // leaf lock (commit() runs outside it)
  std::condition_variable cv_;
  // Each parked handle keeps its node bound (an idle node gives up its
  // descriptor, which the commit needs).
  struct Parked {
    std::shared_ptr<Version> h;
    NodeClaim claim;
  };
  std::vector<Parked> parked_;
  bool stop_ = false;
  std::thread watcher_;
};

}  // namespace snapfs::fuse
