// snapfs_testd: a test-only front end that calls snapfs::fuse::serve()
// directly, so the mount tests do not depend on the CLI in mount/.
//
//   snapfs_testd [-o opt[,opt...]] B M
//
// Options: shared=GLOB[:GLOB...] (or passthrough=), exclusive, durability=fast|atomic|full,
// on-conflict=fail|overwrite, cache_timeout=SECONDS,
// max_user_opens=N, noallow_other, debug, and test_pause=POINT:NAME:DIR: the first time a
// request about NAME reaches POINT (Config::test_pause) it creates
// DIR/paused and waits there until DIR/go exists (at most 10 s); test_fault=POINT:PATH: every
// request about PATH (relative to M) that reaches POINT fails there (Config::test_fault). Always in the foreground; logs go to stderr as
// "<time> [<level>] <message>" so the fixture can fail on warn-or-worse lines.
#include <snapfs/fuse/daemon.hpp>
#include <snapfs/fuse/printable.hpp>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

namespace {

// Config::test_pause for test_pause=POINT:NAME:DIR (once).
struct Pause {
  std::string point, name, dir;
  std::shared_ptr<std::atomic<bool>> fired = std::make_shared<std::atomic<bool>>(false);

  void operator()(std::string_view at, std::string_view about) const {
    if (at != point || about != name || fired->exchange(true)) return;
    std::FILE* f = std::fopen((dir + "/paused").c_str(), "w");
    if (f) std::fclose(f);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!std::filesystem::exists(dir + "/go") && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep))
    if (!cur.empty()) out.push_back(cur);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  snapfs::fuse::Config cfg;
  const bool root = ::geteuid() == 0;
  cfg.allow_other = root;
  cfg.default_permissions = root;
  cfg.auto_unmount = true;
  std::vector<std::string> pos;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-o" && i + 1 < argc) {
      for (const auto& o : split(argv[++i], ',')) {
        if (o.rfind("shared=", 0) == 0) {
          cfg.shared_globs = split(o.substr(7), ':');
        } else if (o.rfind("passthrough=", 0) == 0) {  // the older name
          cfg.shared_globs = split(o.substr(12), ':');
        } else if (o == "exclusive") {
          cfg.exclusive = true;
        } else if (o == "durability=fast") {
          cfg.durability = snapfs::core::Durability::fast;
        } else if (o == "durability=atomic") {
          cfg.durability = snapfs::core::Durability::atomic;
        } else if (o == "durability=full") {
          cfg.durability = snapfs::core::Durability::full;
        } else if (o == "on-conflict=fail") {
          cfg.on_conflict = snapfs::fuse::OnConflict::fail;
        } else if (o == "on-conflict=overwrite") {
          cfg.on_conflict = snapfs::fuse::OnConflict::overwrite;
        } else if (o == "kernel_io=off") {
          cfg.kernel_io = false;
        } else if (o == "kernel_io=auto") {
          cfg.kernel_io = true;
        } else if (o.rfind("cache_timeout=", 0) == 0) {
          cfg.cache_timeout = std::stod(o.substr(14));
        } else if (o.rfind("test_pause=", 0) == 0) {
          const auto f = split(o.substr(11), ':');
          if (f.size() != 3) {
            std::fprintf(stderr, "snapfs_testd: test_pause=POINT:NAME:DIR\n");
            return 2;
          }
          cfg.test_pause = Pause{f[0], f[1], f[2]};
        } else if (o.rfind("test_fault=", 0) == 0) {
          const auto f = split(o.substr(11), ':');
          if (f.size() != 2) {
            std::fprintf(stderr, "snapfs_testd: test_fault=POINT:PATH\n");
            return 2;
          }
          cfg.test_fault = [point = f[0], path = f[1]](std::string_view at, std::string_view p) {
            return at == point && p == path;
          };
        } else if (o.rfind("max_user_opens=", 0) == 0) {
          cfg.max_user_opens = std::stol(o.substr(15));
        } else if (o == "noallow_other") {
          cfg.allow_other = cfg.default_permissions = false;
        } else if (o == "debug") {
          cfg.debug = true;
        } else {
          std::fprintf(stderr, "snapfs_testd: unknown option %s\n", o.c_str());
          return 2;
        }
      }
    } else if (a == "-f") {
      // always foreground
    } else {
      pos.push_back(a);
    }
  }
  if (pos.size() != 2) {
    std::fprintf(stderr, "usage: snapfs_testd [-o opts] B M\n");
    return 2;
  }
  if (std::getenv("SNAPFS_TEST_FUSE_DEBUG")) cfg.debug = true;
  cfg.backing = std::filesystem::canonical(pos[0]).string();
  cfg.mountpoint = std::filesystem::canonical(pos[1]).string();

  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  for (const char* name : {"fuse", "core"}) {
    auto l = std::make_shared<spdlog::logger>(name, sink);
    // Names in messages escaped, as the snapfs command does (mount/main.cpp).
    l->set_formatter(
        std::make_unique<snapfs::fuse::EscapingFormatter>("%H:%M:%S.%f [%l] %n: %v"));
    const char* lvl = std::getenv("SNAPFS_TEST_LOG_LEVEL");
    l->set_level(lvl ? spdlog::level::from_str(lvl) : spdlog::level::info);
    l->flush_on(spdlog::level::trace);
    spdlog::register_logger(l);
  }
  return snapfs::fuse::serve(cfg, [] {});
}
