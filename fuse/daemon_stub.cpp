// Placeholder until the daemon lands (issue #3): refuses to mount.
#include <snapfs/fuse/daemon.hpp>

#include <spdlog/spdlog.h>

namespace snapfs::fuse {

int serve(const Config& cfg, const std::function<void()>&) {
  spdlog::error("snapfs: cannot mount {}: the FUSE daemon is not built yet", cfg.mountpoint);
  return 1;
}

}  // namespace snapfs::fuse
