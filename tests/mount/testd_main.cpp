// snapfs_testd: a test-only front end that calls snapfs::fuse::serve()
// directly, so the mount tests do not depend on the CLI in mount/.
//
//   snapfs_testd [-o opt[,opt...]] B M
//
// Options: passthrough=GLOB[:GLOB...], exclusive, durability=fast|atomic|full,
// on-conflict=fail|overwrite, cache_timeout=SECONDS,
// noallow_other, debug. Always in the foreground; logs go to stderr as
// "<time> [<level>] <message>" so the fixture can fail on warn-or-worse lines.
#include <snapfs/fuse/daemon.hpp>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <string>

namespace {

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
        if (o.rfind("passthrough=", 0) == 0) {
          cfg.passthrough_globs = split(o.substr(12), ':');
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
    l->set_pattern("%H:%M:%S.%f [%l] %n: %v");
    const char* lvl = std::getenv("SNAPFS_TEST_LOG_LEVEL");
    l->set_level(lvl ? spdlog::level::from_str(lvl) : spdlog::level::info);
    l->flush_on(spdlog::level::trace);
    spdlog::register_logger(l);
  }
  return snapfs::fuse::serve(cfg, [] {});
}
