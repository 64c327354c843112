// main() of snapfs_gluster_tests: a mount namespace of our own before
// anything else (tests/support/gluster.hpp), then GoogleTest. Without it
// (not root) every test skips, saying why.
#include "support/gluster.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  // First: unshare(CLONE_NEWNS) moves the calling thread, and the threads
  // and processes it makes afterwards share its namespace (a sanitizer's
  // own thread, made before main(), stays behind; it mounts nothing).
  const std::string why = snapfs::test::enter_private_mount_namespace();
  ::testing::InitGoogleTest(&argc, argv);
  if (!why.empty())
    std::fprintf(stderr, "snapfs_gluster_tests: every test skips: %s\n", why.c_str());
  return RUN_ALL_TESTS();
}
