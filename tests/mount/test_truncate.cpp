// O_TRUNC through M never publishes an empty file on its own
// (docs/semantics.md#truncation): shells open with O_TRUNC, dup2 the descriptor
// and close the original before writing a byte, so a FLUSH arrives for a
// description that is truncated but not yet written. That FLUSH must publish
// nothing; the truncation alone is published only once the last reference is gone.
#include "fuse_mount.hpp"
#include "mount_util.hpp"

#include <chrono>
#include <thread>

namespace snapfs::test {
namespace {

using Truncation = FuseMount;

TEST_P(Truncation, ShellRedirectNeverPublishesAnEmptyFile) {
  write_file(b("out"), "old content\n");
  // What `printf new > out` does in bash: open(O_TRUNC) = 3; dup2(3, 1); close(3).
  const int fd = xopen(m("out"), O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0);
  const int dup = ::dup(fd);
  ASSERT_GE(dup, 0);
  ASSERT_EQ(xclose(fd), 0);
  EXPECT_EQ(read_file(b("out")), "old content\n") << "a truncated, unwritten description was published";
  EXPECT_TRUE(other_process_reads(m("out"), "old content\n"));
  EXPECT_EQ(read_file(m("out")), "");  // its own process sees its truncation
  ASSERT_TRUE(write_str(dup, "new\n"));
  ASSERT_EQ(xclose(dup), 0);
  EXPECT_EQ(read_file(b("out")), "new\n");
}

TEST_P(Truncation, ATruncationAloneIsPublishedAfterTheLastClose) {
  write_file(b("log"), "lines\n");
  const int fd = xopen(m("log"), O_WRONLY | O_TRUNC);  // `: > log`
  ASSERT_GE(fd, 0);
  ASSERT_EQ(xclose(fd), 0);
  // The release that publishes it is asynchronous to close(2)
  // (docs/design-fuse.md, "Kernel facts" 1).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (read_file(b("log")) != "" && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_EQ(read_file(b("log")), "");
  EXPECT_EQ(read_file(m("log")), "");
}

TEST_P(Truncation, TruncateThenReadInAScriptSeesTheEmptyFile) {
  // `: > f && wc -c < f`: the truncation's RELEASE may still be in flight
  // when wc looks the file up; the lookup waits for it.
  write_file(b("f"), "abc");
  for (int i = 0; i < 20; ++i) {
    auto r = run_command({"/bin/sh", "-c", ": > \"$1\" && wc -c < \"$1\" && printf abc > \"$1\"",
                          "sh", m("f").string()});
    ASSERT_TRUE(r.status.ok()) << r.status.describe() << r.output;
    EXPECT_EQ(r.output, "0\n") << "round " << i;
  }
}

TEST_P(Truncation, ShellRedirectThroughARealShell) {
  write_file(b("f"), "old\n");
  const std::string cmd = "printf 'new\\n' > \"$1\"";
  auto r = run_command({"/bin/sh", "-c", cmd, "sh", m("f").string()});
  ASSERT_TRUE(r.status.ok()) << r.status.describe() << r.output;
  EXPECT_EQ(read_file(b("f")), "new\n");
}

// docs/reliability.md finding 1: truncate, write half, fork+exec a child
// (whose exec closes its inherited copy, sending a FLUSH with the child's
// lock owner), write the rest. The child's FLUSH must publish nothing.
TEST_P(Truncation, AChildsCloseDoesNotPublishAHalfRewrittenFile) {
  for (const bool use_ftruncate : {false, true}) {
    SCOPED_TRACE(use_ftruncate ? "ftruncate(0)" : "O_TRUNC");
    write_file(b("f"), "ORIGINAL-CONTENT");
    const int fd = xopen(m("f"), use_ftruncate ? O_RDWR : (O_WRONLY | O_TRUNC));
    ASSERT_GE(fd, 0);
    if (use_ftruncate) {
      ASSERT_EQ(::ftruncate(fd, 0), 0);
    }
    ASSERT_TRUE(write_str(fd, "FIRST-HALF;"));
    auto r = run_command({"/bin/true"});  // fork+exec: closes its copy of fd
    ASSERT_TRUE(r.status.ok()) << r.status.describe();
    EXPECT_EQ(read_file(b("f")), "ORIGINAL-CONTENT") << "a child's close published a half-written file";
    ASSERT_TRUE(write_str(fd, "SECOND-HALF"));
    ASSERT_EQ(xclose(fd), 0);
    EXPECT_EQ(read_file(b("f")), "FIRST-HALF;SECOND-HALF");
  }
}

SNAPFS_INSTANTIATE_MOUNT(Truncation);

}  // namespace
}  // namespace snapfs::test
