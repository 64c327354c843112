// Bulk I/O through M (spliced WRITEs, READs from the snapshot fd), large
// directories, and programs executed from M.
#include "fuse_mount.hpp"
#include "mount_util.hpp"

#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <thread>

#include <string>

namespace snapfs::test {
namespace {

using Io = FuseMount;

TEST_P(Io, LargeFileRoundTrip) {
  const std::string data = pattern(5 * 1024 * 1024 + 123, 9);
  const int w = xopen(m("big"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(w, 0);
  std::size_t off = 0;
  while (off < data.size()) {  // 1 MiB writes: more than max_write per request
    const std::size_t n = std::min<std::size_t>(1 << 20, data.size() - off);
    ASSERT_TRUE(write_str(w, std::string_view(data).substr(off, n)));
    off += n;
  }
  EXPECT_EQ(fstat_of(w).st_size, static_cast<off_t>(data.size()));
  ASSERT_EQ(xclose(w), 0);
  EXPECT_EQ(read_file(b("big")), data);
  EXPECT_EQ(read_file(m("big")), data);
  // Unaligned overwrite in the middle, read back through the snapshot.
  const int rw = xopen(m("big"), O_RDWR);
  ASSERT_GE(rw, 0);
  ASSERT_TRUE(pwrite_str(rw, "MIDDLE", 3 * 1024 * 1024 + 7));
  std::string want = data;
  want.replace(3 * 1024 * 1024 + 7, 6, "MIDDLE");
  EXPECT_EQ(pread_all(rw), want);
  EXPECT_EQ(read_file(b("big")), data);
  ASSERT_EQ(xclose(rw), 0);
  EXPECT_EQ(read_file(b("big")), want);
}

TEST_P(Io, LargeDirectoryListing) {
  for (int i = 0; i < 600; ++i) write_file(b("file-with-a-longish-name-" + std::to_string(i)), "");
  EXPECT_EQ(list_dir(mnt()), list_backing(backing()));
  EXPECT_EQ(list_dir(mnt()).size(), 600u);
}

TEST_P(Io, ExecuteFromMount) {
  fs::copy_file("/bin/true", b("true"));
  ASSERT_EQ(::chmod(b("true").c_str(), 0755), 0);
  write_file(b("script.sh"), "#!/bin/sh\necho \"hello $1\"\n", 0755);
  auto r = run_command({m("true").string()});
  EXPECT_TRUE(r.status.ok()) << r.status.describe() << r.output;
  r = run_command({m("script.sh").string(), "world"});
  EXPECT_TRUE(r.status.ok()) << r.status.describe() << r.output;
  EXPECT_EQ(r.output, "hello world\n");
}

SNAPFS_INSTANTIATE_MOUNT(Io);

}  // namespace
}  // namespace snapfs::test

namespace snapfs::test {
namespace {

// SIGTERM: serve() unmounts and returns 0 (its signal handlers end the loop).
TEST_P(Io, SigtermUnmountsCleanly) {
  write_file(b("f"), "x");
  EXPECT_EQ(read_file(m("f")), "x");
  ASSERT_EQ(::kill(daemon_pid(), SIGTERM), 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (is_mounted(mnt()) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_FALSE(is_mounted(mnt()));
  EXPECT_EQ(read_file(b("f")), "x");
}

// A daemon crash loses uncommitted writes and nothing else: B keeps the old
// content, no temporary file is left, the application gets an error.
TEST_P(Io, DaemonCrashLeavesBackingIntact) {
  write_file(b("f"), "committed");
  const int fd = xopen(m("f"), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(pwrite_str(fd, "uncommitted", 0));
  kill_daemon();
  const int rc = xclose(fd);
  EXPECT_TRUE(rc == -ENOTCONN || rc == -ECONNABORTED) << rc;
  EXPECT_EQ(read_file(b("f")), "committed");
  EXPECT_EQ(list_backing(backing()), std::vector<std::string>{"f"});
  EXPECT_FALSE(is_mounted(mnt()));
}

}  // namespace
}  // namespace snapfs::test
