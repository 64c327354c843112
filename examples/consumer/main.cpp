// snapfs-demo FILE: shows a snapshot staying put while the file changes,
// then an atomic commit. Builds against the installed snapfs::core.
#include <snapfs/core.hpp>

#include <cstdio>
#include <cstring>
#include <fstream>

namespace core = snapfs::core;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: snapfs-demo FILE\n");
    return 2;
  }
  const char* path = argv[1];
  std::ofstream(path) << "Hello world!";

  auto snap = core::Mmap::open(path);
  if (!snap) {
    std::fprintf(stderr, "snapfs-demo: %s\n", snap.error().message().c_str());
    return 1;
  }
  std::ofstream(path) << "Goodbye, world";  // rewrite the file in place
  std::printf("snapshot (%s): %.*s\n", core::to_string(snap->clone_method()),
              static_cast<int>(snap->size()), snap->chars().data());

  auto mut = core::MmapMut::open(path);
  if (!mut) {
    std::fprintf(stderr, "snapfs-demo: %s\n", mut.error().message().c_str());
    return 1;
  }
  if (auto r = mut->resize(12); !r) {
    std::fprintf(stderr, "snapfs-demo: %s\n", r.error().message().c_str());
    return 1;
  }
  std::memcpy(mut->data(), "Hello sekai!", 12);
  if (auto r = mut->commit_and_close(); !r) {
    std::fprintf(stderr, "snapfs-demo: %s\n", r.error().message().c_str());
    return 1;
  }
  std::ifstream in(path);
  std::string now((std::istreambuf_iterator<char>(in)), {});
  std::printf("after commit: %s\n", now.c_str());
  return now == "Hello sekai!" ? 0 : 1;
}
