// docs/semantics.md#a-processs-own-opens: while a process has a file open
// for writing, its other opens of that file (by name, through a hard link,
// after a rename, /proc/self/fd) read and write one private version, which
// its last close publishes; other processes see the published file until
// then. On every backing filesystem, on both data paths (the daemon_io.
// prefix of tests/mount/CMakeLists.txt).
#include "fuse_mount.hpp"
#include "mount_util.hpp"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <thread>
#include <vector>

namespace snapfs::test {
namespace {

using OwnWrites = FuseMount;

TEST_P(OwnWrites, WriteThenReopenByNameReads) {
  write_file(b("f"), "published");
  const int w = xopen(m("f"), O_RDWR);
  ASSERT_GE(w, 0);
  ASSERT_TRUE(pwrite_str(w, "MINE, and longer", 0));
  // By name: the process's own version, content, size and times.
  EXPECT_EQ(read_file(m("f")), "MINE, and longer");
  EXPECT_EQ(stat_of(m("f")).st_size, 16);
  const int r = xopen(m("f"), O_RDONLY);
  ASSERT_GE(r, 0);
  EXPECT_EQ(pread_all(r), "MINE, and longer");
  EXPECT_EQ(fstat_of(r).st_size, 16);
  EXPECT_EQ(::lseek(r, 0, SEEK_END), 16);
  // Another process: the published file, by name and in B.
  EXPECT_TRUE(other_process_reads(m("f"), "published"));
  EXPECT_EQ(read_file(b("f")), "published");
  ASSERT_EQ(xclose(r), 0);
  ASSERT_EQ(xclose(w), 0);
  EXPECT_EQ(read_file(b("f")), "MINE, and longer");
  EXPECT_TRUE(other_process_reads(m("f"), "MINE, and longer"));
}

// A write through the second open is part of the version too, and the
// version is published by the process's last close, in either order.
TEST_P(OwnWrites, LastCloseInEitherOrderPublishes) {
  for (const bool first_closes_first : {true, false}) {
    SCOPED_TRACE(first_closes_first ? "first closes first" : "second closes first");
    write_file(b("f"), "0123456789");
    const int a = xopen(m("f"), O_RDWR);
    ASSERT_GE(a, 0);
    ASSERT_TRUE(pwrite_str(a, "A", 0));
    const int c = xopen(m("f"), O_RDWR);
    ASSERT_GE(c, 0);
    EXPECT_EQ(pread_all(c), "A123456789");
    ASSERT_TRUE(pwrite_str(c, "C", 9));
    EXPECT_EQ(pread_all(a), "A12345678C");
    ASSERT_EQ(xclose(first_closes_first ? a : c), 0);
    EXPECT_EQ(read_file(b("f")), "0123456789") << "published before the last close";
    ASSERT_EQ(xclose(first_closes_first ? c : a), 0);
    EXPECT_EQ(read_file(b("f")), "A12345678C");
  }
}

// First committer wins across processes: if another process published
// meanwhile, the last close of the version fails (ESTALE) and B keeps the
// other's file.
TEST_P(OwnWrites, ALostConflictFailsTheLastClose) {
  write_file(b("f"), "base");
  const int a = xopen(m("f"), O_RDWR);
  ASSERT_GE(a, 0);
  ASSERT_TRUE(pwrite_str(a, "mine", 0));
  const int c = xopen(m("f"), O_RDONLY);
  ASSERT_GE(c, 0);
  auto other = run_in_child([&] {
    const int fd = xopen(m("f"), O_RDWR);
    if (fd < 0) return 1;
    if (!pwrite_str(fd, "THEIRS", 0)) return 2;
    return xclose(fd) == 0 ? 0 : 3;
  });
  ASSERT_TRUE(other.ok()) << other.describe();
  EXPECT_EQ(pread_all(c), "mine");  // still the process's own version
  ASSERT_EQ(xclose(a), 0);          // not the last: decides nothing
  EXPECT_EQ(xclose(c), -ESTALE);
  EXPECT_EQ(read_file(b("f")), "THEIRS");
}

TEST_P(OwnWrites, ThroughAHardLinkAndAfterARename) {
  write_file(b("f"), "published");
  ASSERT_EQ(::link(b("f").c_str(), b("g").c_str()), 0);
  const int w = xopen(m("f"), O_RDWR);
  ASSERT_GE(w, 0);
  ASSERT_TRUE(pwrite_str(w, "PRIVATE", 0));
  EXPECT_EQ(read_file(m("g")), "PRIVATEed");
  ASSERT_EQ(::rename(m("f").c_str(), m("h").c_str()), 0);
  EXPECT_EQ(read_file(m("h")), "PRIVATEed");
  const int r = xopen(m("h"), O_RDWR);
  ASSERT_GE(r, 0);
  ASSERT_TRUE(pwrite_str(r, "p", 0));
  EXPECT_EQ(pread_all(w), "pRIVATEed");
  EXPECT_TRUE(other_process_reads(m("h"), "published"));
  ASSERT_EQ(xclose(w), 0);
  ASSERT_EQ(xclose(r), 0);
  EXPECT_EQ(read_file(b("h")), "pRIVATEed");
  // Published into the inode where that is one atomic step (reflinks);
  // elsewhere the names part at the commit (docs/semantics.md#hard-links).
  const bool reflinks = kind() == FsKind::xfs || kind() == FsKind::btrfs;
  EXPECT_EQ(read_file(b("g")), reflinks ? "pRIVATEed" : "published");
}

// A hard link's name whose dentry and attributes the kernel cached before
// the writer's open: the writer's stat through it shows its version at
// once, another process's the published file.
TEST_P(OwnWrites, StatThroughANameCachedBeforeShowsTheVersion) {
  write_file(b("f"), "published");
  ASSERT_EQ(::link(b("f").c_str(), b("g").c_str()), 0);
  ASSERT_EQ(stat_of(m("g")).st_size, 9);  // cached now (cache_timeout 1 s)
  const int w = xopen(m("f"), O_RDWR);
  ASSERT_GE(w, 0);
  ASSERT_TRUE(pwrite_str(w, "a longer private version", 0));
  EXPECT_EQ(stat_of(m("g")).st_size, 24);
  auto other = run_in_child([&] { return stat_of(m("g")).st_size == 9 ? 0 : 1; });
  EXPECT_TRUE(other.ok()) << other.describe();
  EXPECT_EQ(stat_of(m("g")).st_size, 24);
  ASSERT_EQ(xclose(w), 0);
  EXPECT_EQ(stat_of(m("f")).st_size, 24);
}

// copy_file_range and splice into a file still open, then a re-open by
// name reads what they wrote (a file on M as the source, which the kernel
// copies by splice; and a pipe).
TEST_P(OwnWrites, CopyFileRangeAndSpliceThenReopen) {
  write_file(b("src"), pattern(10000, 3));
  const int out = xopen(m("out"), O_WRONLY | O_CREAT | O_TRUNC);
  ASSERT_GE(out, 0);
  const int in = xopen(m("src"), O_RDONLY);
  ASSERT_GE(in, 0);
  loff_t ioff = 0, ooff = 0;
  std::size_t copied = 0;
  while (copied < 10000) {
    const ssize_t n = ::copy_file_range(in, &ioff, out, &ooff, 10000 - copied, 0);
    ASSERT_GT(n, 0) << std::strerror(errno);
    copied += static_cast<std::size_t>(n);
  }
  ASSERT_EQ(xclose(in), 0);
  EXPECT_EQ(read_file(m("out")), pattern(10000, 3));
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  ASSERT_EQ(::write(p[1], "TAIL", 4), 4);
  loff_t at = 10000;
  ASSERT_EQ(::splice(p[0], nullptr, out, &at, 4, 0), 4) << std::strerror(errno);
  ::close(p[0]);
  ::close(p[1]);
  EXPECT_EQ(read_file(m("out")), pattern(10000, 3) + "TAIL");
  EXPECT_EQ(stat_of(m("out")).st_size, 10004);
  ASSERT_EQ(xclose(out), 0);
  EXPECT_EQ(read_file(b("out")), pattern(10000, 3) + "TAIL");
}

// ftruncate (an mmap resize) then stat and a re-open by name show the new
// size and content.
TEST_P(OwnWrites, FtruncateAndMmapResizeThenStatAndReopen) {
  write_file(b("f"), pattern(8192, 4));
  const int fd = xopen(m("f"), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 512), 0);
  EXPECT_EQ(stat_of(m("f")).st_size, 512);
  // Where the kernel serves the open (passthrough), a shared mapping;
  // otherwise the daemon's direct I/O allows private mappings only.
  const int prot = PROT_READ | PROT_WRITE;
  if (kernel_passthrough()) {
    void* p = ::mmap(nullptr, 512, prot, MAP_SHARED, fd, 0);
    ASSERT_NE(p, MAP_FAILED) << std::strerror(errno);
    std::memcpy(p, "MAPPED", 6);
    ASSERT_EQ(::msync(p, 512, MS_SYNC), 0);
    ::munmap(p, 512);
  } else {
    ASSERT_TRUE(pwrite_str(fd, "MAPPED", 0));
  }
  std::string want = pattern(8192, 4).substr(0, 512);
  want.replace(0, 6, "MAPPED");
  EXPECT_EQ(read_file(m("f")), want);
  const int r = xopen(m("f"), O_RDONLY);
  ASSERT_GE(r, 0);
  EXPECT_EQ(fstat_of(r).st_size, 512);
  ASSERT_EQ(xclose(r), 0);
  EXPECT_EQ(stat_of(b("f")).st_size, 8192);
  ASSERT_EQ(xclose(fd), 0);
  EXPECT_EQ(read_file(b("f")), want);
}

// O_TRUNC on a second open empties the version (what the first wrote too).
TEST_P(OwnWrites, OTruncJoinTruncatesTheVersion) {
  write_file(b("f"), "published");
  const int a = xopen(m("f"), O_RDWR);
  ASSERT_GE(a, 0);
  ASSERT_TRUE(pwrite_str(a, "FIRST", 0));
  const int c = xopen(m("f"), O_WRONLY | O_TRUNC);
  ASSERT_GE(c, 0);
  EXPECT_EQ(fstat_of(a).st_size, 0);
  EXPECT_EQ(read_file(m("f")), "");
  ASSERT_TRUE(write_str(c, "second"));
  EXPECT_EQ(pread_all(a), "second");
  EXPECT_TRUE(other_process_reads(m("f"), "published"));
  ASSERT_EQ(xclose(c), 0);
  ASSERT_EQ(xclose(a), 0);
  EXPECT_EQ(read_file(b("f")), "second");
}

// Two O_APPEND descriptors of one process append to one version, in the
// order written, as on a local file; an appending version is published at
// every close (docs/semantics.md#commit-at-close).
TEST_P(OwnWrites, TwoAppendersInOneProcessShareTheEnd) {
  write_file(b("log"), "start\n");
  const int a = xopen(m("log"), O_WRONLY | O_APPEND);
  const int c = xopen(m("log"), O_WRONLY | O_APPEND);
  ASSERT_GE(a, 0);
  ASSERT_GE(c, 0);
  ASSERT_TRUE(write_str(a, "a1\n"));
  ASSERT_TRUE(write_str(c, "c1\n"));
  ASSERT_TRUE(write_str(a, "a2\n"));
  EXPECT_EQ(fstat_of(c).st_size, 15);
  ASSERT_EQ(xclose(a), 0);
  EXPECT_EQ(read_file(b("log")), "start\na1\nc1\na2\n");
  ASSERT_TRUE(write_str(c, "c2\n"));
  ASSERT_EQ(xclose(c), 0);
  EXPECT_EQ(read_file(b("log")), "start\na1\nc1\na2\nc2\n");
}

// A child is another process: its own opens by name see the published
// file, and its exit does not publish the parent's unfinished version.
TEST_P(OwnWrites, ChildOpensItsOwnSnapshot) {
  write_file(b("f"), "published");
  const int w = xopen(m("f"), O_RDWR);
  ASSERT_GE(w, 0);
  ASSERT_TRUE(pwrite_str(w, "PARENT", 0));
  EXPECT_TRUE(other_process_reads(m("f"), "published"));
  EXPECT_EQ(read_file(b("f")), "published");
  EXPECT_EQ(read_file(m("f")), "PARENThed");
  ASSERT_EQ(xclose(w), 0);
  EXPECT_EQ(read_file(b("f")), "PARENThed");
}

// Threads are one process: each sees the others' writes by name.
TEST_P(OwnWrites, ThreadsShareTheVersion) {
  write_file(b("f"), "published");
  const int w = xopen(m("f"), O_RDWR);
  ASSERT_GE(w, 0);
  ASSERT_TRUE(pwrite_str(w, "THREADS", 0));
  std::string seen;
  bool wrote = false;
  std::thread t([&] {
    seen = read_file(m("f"));
    const int fd = xopen(m("f"), O_WRONLY | O_APPEND);
    if (fd < 0) return;
    wrote = write_str(fd, "+t") && xclose(fd) == 0;
  });
  t.join();
  EXPECT_EQ(seen, "THREADSed");
  EXPECT_TRUE(wrote);
  EXPECT_EQ(pread_all(w), "THREADSed+t");
  ASSERT_EQ(xclose(w), 0);
  EXPECT_EQ(read_file(b("f")), "THREADSed+t");
}

// As an unprivileged user (docs/security.md): the writer's own opens see
// its writes, another user's process the published file.
TEST_P(OwnWrites, AnUnprivilegedWritersOwnOpensSeeItsWrites) {
  constexpr uid_t kUser = 61001, kOther = 61002;
  write_file(b("f"), "published");
  ASSERT_EQ(::chown(b("f").c_str(), kUser, kUser), 0);
  int ready[2], go[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(go), 0);
  Child writer(kUser, kUser, [&] {
    const int w = xopen(m("f"), O_RDWR);
    if (w < 0) return 10;
    if (!pwrite_str(w, "MINE", 0)) return 11;
    if (read_file(m("f")) != "MINEished") return 12;
    if (stat_of(m("f")).st_size != 9) return 13;
    char c = 0;
    if (::write(ready[1], "r", 1) != 1 || ::read(go[0], &c, 1) != 1) return 14;
    return xclose(w) == 0 ? 0 : 15;
  });
  // Only the child writes `ready` and reads `go`: its exit ends both.
  ::close(ready[1]);
  ::close(go[0]);
  char c = 0;
  const bool started = ::read(ready[0], &c, 1) == 1;
  EXPECT_TRUE(started) << "the writer stopped before it was ready";
  if (started) {
    auto other = run_as(kOther, kOther, [&] { return read_file(m("f")) == "published" ? 0 : 1; });
    EXPECT_TRUE(other.ok()) << other.describe();
  }
  ::signal(SIGPIPE, SIG_IGN);  // a writer that is gone already
  (void)::write(go[1], "g", 1);
  ::close(go[1]);
  const auto st = writer.wait();
  ::close(ready[0]);
  EXPECT_TRUE(st.ok()) << st.describe();
  EXPECT_EQ(read_file(b("f")), "MINEished");
}

// SECURITY: a process that opened a setuid file as root and wrote it after
// dropping to an ordinary user publishes it without setuid, as write(2)
// by that user would leave it (the version acts for its least privileged
// writer).
TEST_P(OwnWrites, AWriteAfterDroppingRootDropsSetuid) {
  constexpr uid_t kUser = 61001;
  write_file(b("f"), "published");
  ASSERT_EQ(::chown(b("f").c_str(), kUser, kUser), 0);
  ASSERT_EQ(::chmod(b("f").c_str(), 04755), 0);
  auto st = run_in_child([&] {
    const int root_fd = xopen(m("f"), O_RDWR);
    if (root_fd < 0) return 10;
    if (::setgroups(0, nullptr) != 0 || ::setresgid(kUser, kUser, kUser) != 0 ||
        ::setresuid(kUser, kUser, kUser) != 0)
      return 11;
    const int w = xopen(m("f"), O_RDWR);  // joins the version, as the user
    if (w < 0) return 12;
    if (!pwrite_str(w, "USER", 0)) return 13;
    if (xclose(w) != 0) return 14;
    return xclose(root_fd) == 0 ? 0 : 15;
  });
  ASSERT_TRUE(st.ok()) << st.describe();
  EXPECT_EQ(read_file(b("f")), "USERished");
  EXPECT_EQ(stat_of(b("f")).st_mode & 07777, 0755u);
}

// A shell's `cmd > f; cat f`: the child running cmd owns its version and
// its exit publishes it before the shell's wait returns.
TEST_P(OwnWrites, ShellRedirectThenCat) {
  const std::string sh = find_program("sh");
  if (sh.empty()) GTEST_SKIP() << "no sh";
  const std::string script = "cd '" + mnt().string() +
                             "' && echo one > f && test \"$(cat f)\" = one && "
                             "exec 3>g && echo two >&3 && read l < g && test \"$l\" = two";
  auto r = run_command({sh, "-c", script});
  EXPECT_TRUE(r.status.ok()) << r.status.describe() << "\n" << r.output;
  EXPECT_EQ(read_file(b("f")), "one\n");
  EXPECT_EQ(read_file(b("g")), "two\n");
}

// Several processes, each rewriting its own file and reading it back by
// name at once, while another stats and reads all of them: each always
// reads its own write, nobody gets an error (an ESTALE the kernel did not
// retry), and no owner's open missed its version.
TEST_P(OwnWrites, RacingReopensAndStats) {
  constexpr int kWriters = 3;
  constexpr int kRounds = 60;
  for (int p = 0; p < kWriters; ++p) write_file(b("f" + std::to_string(p)), "initial");
  std::vector<std::unique_ptr<Child>> kids;
  for (int p = 0; p < kWriters; ++p) {
    kids.push_back(std::make_unique<Child>([this, p] {
      const fs::path mine = m("f" + std::to_string(p));
      const fs::path next = m("f" + std::to_string((p + 1) % kWriters));
      for (int r = 0; r < kRounds; ++r) {
        const std::string content = "writer " + std::to_string(p) + " round " + std::to_string(r);
        const int w = xopen(mine, O_WRONLY | O_TRUNC);
        if (w < 0) return 100 - w;  // 100 + errno
        if (!write_str(w, content)) return 11;
        const int rd = xopen(mine, O_RDONLY);
        if (rd < 0) return 12;
        if (pread_all(rd) != content) return 13;
        struct stat st {};
        if (::stat(mine.c_str(), &st) != 0 || st.st_size != static_cast<off_t>(content.size()))
          return 14;
        if (::stat(next.c_str(), &st) != 0) return 15;
        if (xclose(rd) != 0 || xclose(w) != 0) return 16;
        if (read_file(b("f" + std::to_string(p))) != content) return 17;
      }
      return 0;
    }));
  }
  kids.push_back(std::make_unique<Child>([this] {
    for (int r = 0; r < kRounds * 2; ++r) {
      for (int p = 0; p < kWriters; ++p) {
        const fs::path f = m("f" + std::to_string(p));
        struct stat st {};
        if (::stat(f.c_str(), &st) != 0) return 20;
        const int fd = xopen(f, O_RDONLY);
        if (fd < 0) return 21;
        // A whole published version: never empty, never torn.
        const std::string got = pread_all(fd);
        if (got != "initial" && got.rfind("writer ", 0) != 0) return 22;
        if (xclose(fd) != 0) return 23;
      }
    }
    return 0;
  }));
  for (auto& k : kids) {
    auto st = k->wait(120s);
    EXPECT_TRUE(st.ok()) << st.describe();
  }
  EXPECT_EQ(status_field("own_misses"), "0");
  EXPECT_NE(status_field("own_joins"), "0");
}

SNAPFS_INSTANTIATE_MOUNT_ALL_FS(OwnWrites);

}  // namespace
}  // namespace snapfs::test
