// docs/semantics.md (readers, writers, commit at close): snapshot at open,
// private writes, commit on close.
#include "fuse_mount.hpp"
#include "mount_util.hpp"
#include "support/peer.hpp"

#include <sys/mman.h>
#include <sys/wait.h>

#include <chrono>
#include <cstring>
#include <thread>

namespace snapfs::test {
namespace {

using Snapshot = FuseMount;

TEST_P(Snapshot, MountShowsBacking) {
  write_file(b("hello"), "hello world\n");
  EXPECT_EQ(read_file(m("hello")), "hello world\n");
  EXPECT_EQ(list_dir(mnt()), std::vector<std::string>{"hello"});
}

// A reader sees its open's content byte for byte while another process
// writes and commits through M, and while B/p is changed in place.
TEST_P(Snapshot, ReaderIsolatedFromWriterAndFromB) {
  const std::string old_content = pattern(200000, 1);
  write_file(b("f"), old_content);
  const int r = xopen(m("f"), O_RDONLY);
  ASSERT_GE(r, 0);

  // Another process rewrites the file through M and closes (commits).
  auto st = run_in_child([&] {
    const int w = xopen(m("f"), O_RDWR);
    if (w < 0) return 1;
    if (!pwrite_str(w, pattern(300000, 2), 0)) return 2;
    return xclose(w) == 0 ? 0 : 3;
  });
  ASSERT_TRUE(st.ok()) << st.describe();
  EXPECT_EQ(read_file(b("f")), pattern(300000, 2));

  // In-place writes directly in B (to the newly published inode) as well.
  pwrite_file(b("f"), 10, "INPLACE");

  EXPECT_EQ(pread_all(r), old_content);
  EXPECT_EQ(fstat_of(r).st_size, static_cast<off_t>(old_content.size()));
  EXPECT_EQ(::lseek(r, 0, SEEK_END), static_cast<off_t>(old_content.size()));
  ASSERT_EQ(xclose(r), 0);
  // A new open sees what B holds now.
  std::string now = pattern(300000, 2);
  now.replace(10, 7, "INPLACE");
  EXPECT_EQ(read_file(m("f")), now);
}

// Warm snapshots: read-only opens of an unchanged version share
// one snapshot; any change to B/p, through M or in place in B, even one
// that keeps the size, gives the next open a new one.
TEST_P(Snapshot, ReadersOfAnUnchangedVersionShareOneWarmSnapshot) {
  write_file(b("f"), pattern(100000, 5));
  const auto hits = [&] { return std::stoull("0" + status_field("warm_hits")); };
  const auto h0 = hits();
  EXPECT_EQ(read_file(m("f")), pattern(100000, 5));
  EXPECT_EQ(read_file(m("f")), pattern(100000, 5));
  EXPECT_EQ(read_file(m("f")), pattern(100000, 5));
  EXPECT_GE(hits(), h0 + 2);
  // Opens while another reader of the version still holds its snapshot
  // share it: hits too. (Whether a reader's RELEASE, which is asynchronous,
  // arrived before the next OPEN decides which of the two ways an open
  // takes; the count must not depend on it.)
  {
    const int held = xopen(m("f"), O_RDONLY);
    ASSERT_GE(held, 0);
    const auto h1 = hits();
    EXPECT_EQ(read_file(m("f")), pattern(100000, 5));
    EXPECT_EQ(read_file(m("f")), pattern(100000, 5));
    EXPECT_GE(hits(), h1 + 2);
    ASSERT_EQ(xclose(held), 0);
  }

  // In place in B, same size, immediately after a read: the new ctime
  // (fine-grained once queried) gives a new version.
  const int r = xopen(m("f"), O_RDONLY);  // holds the old warm snapshot
  ASSERT_GE(r, 0);
  pwrite_file(b("f"), 7, "CHANGED");
  std::string now = pattern(100000, 5);
  now.replace(7, 7, "CHANGED");
  EXPECT_EQ(read_file(m("f")), now);
  EXPECT_EQ(pread_all(r), pattern(100000, 5));  // the earlier open keeps its version

  // A commit through M.
  const int w = xopen(m("f"), O_RDWR);
  ASSERT_GE(w, 0);
  ASSERT_TRUE(pwrite_str(w, "AGAIN", 0));
  ASSERT_EQ(xclose(w), 0);
  now.replace(0, 5, "AGAIN");
  EXPECT_EQ(read_file(m("f")), now);
  EXPECT_EQ(pread_all(r), pattern(100000, 5));
  ASSERT_EQ(xclose(r), 0);
}

// A warm snapshot stays minutes after its last use where it is a reflink
// (it shares the file's blocks), so whatever replaces or removes the file
// through M drops it at once: no old version keeps blocks allocated.
TEST_P(Snapshot, ReplacingOrRemovingAFileDropsItsWarmSnapshots) {
  const auto warm = [&] { return std::stoull("0" + status_field("warm_snapshots")); };
  write_file(b("f"), pattern(50000, 1));
  EXPECT_EQ(read_file(m("f")), pattern(50000, 1));
  ASSERT_EQ(warm(), 1u);
  const int w = xopen(m("f"), O_WRONLY | O_TRUNC);  // a commit replaces f
  ASSERT_GE(w, 0);
  ASSERT_TRUE(write_str(w, "new"));
  ASSERT_EQ(xclose(w), 0);
  EXPECT_EQ(warm(), 0u) << "the replaced version's snapshot is still kept";
  EXPECT_EQ(read_file(m("f")), "new");
  ASSERT_EQ(warm(), 1u);
  ASSERT_EQ(::unlink(m("f").c_str()), 0);
  EXPECT_EQ(warm(), 0u) << "an unlinked file's snapshot is still kept";
  write_file(b("g"), "gg");
  write_file(b("h"), "hh");
  EXPECT_EQ(read_file(m("g")), "gg");
  ASSERT_EQ(warm(), 1u);
  ASSERT_EQ(::rename(m("h").c_str(), m("g").c_str()), 0);
  EXPECT_EQ(warm(), 0u) << "a renamed-over file's snapshot is still kept";
}

// Warm snapshots that only the kernel holds (reflinks under kernel
// passthrough: no descriptor of the daemon's) are not held to 1024 entries,
// so a build's headers beyond 1024 stay warm; copies, and snapshots the
// daemon serves itself, are (session.cpp warm_capacity()).
TEST_P(Snapshot, MoreThan1024ReflinkedFilesStayWarm) {
  constexpr unsigned n = 1100;
  const auto name = [](unsigned i) { return "f" + std::to_string(i); };
  for (unsigned i = 0; i < n; ++i) write_file(b(name(i)), name(i));
  for (unsigned i = 0; i < n; ++i) ASSERT_EQ(read_file(m(name(i))), name(i));
  const auto warm = std::stoull("0" + status_field("warm_snapshots"));
  const auto hits = [&] { return std::stoull("0" + status_field("warm_hits")); };
  if (status_field("reflink") != "true" || status_field("kernel_passthrough") != "active") {
    EXPECT_LE(warm, 1024u);
    return;
  }
  EXPECT_EQ(warm, n);
  // The least recently used one is still there.
  const auto h0 = hits();
  EXPECT_EQ(read_file(m(name(0))), name(0));
  EXPECT_EQ(hits(), h0 + 1);
}

TEST_P(Snapshot, ReaderIsolatedFromTruncateInB) {
  write_file(b("f"), pattern(100000, 3));
  const int r = xopen(m("f"), O_RDONLY);
  ASSERT_GE(r, 0);
  ASSERT_EQ(::truncate(b("f").c_str(), 0), 0);
  EXPECT_EQ(pread_all(r), pattern(100000, 3));
  ASSERT_EQ(xclose(r), 0);
}

// The writer reads its own writes and fstat shows its size and mtime;
// nobody else sees them before close; everybody sees all of them after.
TEST_P(Snapshot, PrivateWritesThenCommitOnClose) {
  write_file(b("f"), "0123456789");
  const struct stat before = stat_of(b("f"));
  const int w = xopen(m("f"), O_RDWR);
  ASSERT_GE(w, 0);
  ASSERT_TRUE(pwrite_str(w, "abcdefghijklmnopqrstuvwxyz", 5));
  char buf[64] = {};
  ASSERT_EQ(::pread(w, buf, sizeof buf, 0), 31);
  EXPECT_EQ(std::string(buf, 31), "01234abcdefghijklmnopqrstuvwxyz");
  EXPECT_EQ(fstat_of(w).st_size, 31);
  // Not visible in B, nor through M to another process.
  EXPECT_EQ(read_file(b("f")), "0123456789");
  auto st = run_in_child([&] {
    if (read_file(m("f")) != "0123456789") return 1;
    struct stat s {};
    if (::stat(m("f").c_str(), &s) != 0 || s.st_size != 10) return 2;
    return 0;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
  EXPECT_EQ(stat_of(b("f")).st_ino, before.st_ino);
  ASSERT_EQ(xclose(w), 0);
  // Right after close() returns, another process sees all of it.
  st = run_in_child([&] { return read_file(m("f")) == "01234abcdefghijklmnopqrstuvwxyz" ? 0 : 1; });
  EXPECT_TRUE(st.ok()) << st.describe();
  EXPECT_EQ(read_file(b("f")), "01234abcdefghijklmnopqrstuvwxyz");
}

TEST_P(Snapshot, UnmodifiedCloseChangesNothing) {
  write_file(b("f"), "content");
  const struct stat before = stat_of(b("f"));
  for (int flags : {O_RDONLY, O_RDWR, O_WRONLY}) {
    const int fd = xopen(m("f"), flags);
    ASSERT_GE(fd, 0);
    if (flags != O_WRONLY) {
      EXPECT_EQ(pread_all(fd), "content");
    }
    ASSERT_EQ(xclose(fd), 0);
  }
  const struct stat after = stat_of(b("f"));
  EXPECT_EQ(after.st_ino, before.st_ino);
  EXPECT_TRUE(same_time(after.st_mtim, before.st_mtim));
  EXPECT_TRUE(same_time(after.st_ctim, before.st_ctim));
}

TEST_P(Snapshot, TruncOpenDoesNotEmptyBeforeClose) {
  write_file(b("f"), "old content");
  const int w = xopen(m("f"), O_WRONLY | O_TRUNC);
  ASSERT_GE(w, 0);
  EXPECT_EQ(fstat_of(w).st_size, 0);
  EXPECT_EQ(read_file(b("f")), "old content");
  EXPECT_TRUE(other_process_reads(m("f"), "old content"));
  EXPECT_EQ(read_file(m("f")), "");  // its own process sees its truncation
  ASSERT_TRUE(write_str(w, "new"));
  EXPECT_EQ(read_file(b("f")), "old content");
  ASSERT_EQ(xclose(w), 0);
  EXPECT_EQ(read_file(b("f")), "new");

  // O_TRUNC and nothing written: the file is empty after the last close.
  // That truncation is published at RELEASE (test_truncate.cpp says why),
  // which a path walk through M waits for.
  const int t = xopen(m("f"), O_WRONLY | O_TRUNC);
  ASSERT_GE(t, 0);
  EXPECT_EQ(read_file(b("f")), "new");
  ASSERT_EQ(xclose(t), 0);
  EXPECT_EQ(stat_of(m("f")).st_size, 0);
  EXPECT_EQ(stat_of(b("f")).st_size, 0);
}

TEST_P(Snapshot, CreateAppearsEmptyAtOpen) {
  const int w = xopen(m("new"), O_WRONLY | O_CREAT, 0640);
  ASSERT_GE(w, 0);
  const struct stat s = stat_of(b("new"));
  EXPECT_EQ(s.st_size, 0);
  EXPECT_EQ(s.st_mode & 07777, 0640u);
  ASSERT_TRUE(write_str(w, "data"));
  EXPECT_EQ(stat_of(b("new")).st_size, 0);
  ASSERT_EQ(xclose(w), 0);
  EXPECT_EQ(read_file(b("new")), "data");
  EXPECT_EQ(stat_of(b("new")).st_mode & 07777, 0640u);
}

TEST_P(Snapshot, ExclusiveCreateAcrossProcesses) {
  const int l = xopen(m("lock"), O_WRONLY | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(l, 0);
  EXPECT_TRUE(fs::exists(b("lock")));
  auto st = run_in_child([&] { return xopen(m("lock"), O_WRONLY | O_CREAT | O_EXCL) == -EEXIST ? 0 : 1; });
  EXPECT_TRUE(st.ok()) << st.describe();
  ASSERT_EQ(xclose(l), 0);
  // A lock taken directly in B counts too.
  const int bl = xopen(b("lock2"), O_WRONLY | O_CREAT | O_EXCL);
  ASSERT_GE(bl, 0);
  EXPECT_EQ(xopen(m("lock2"), O_WRONLY | O_CREAT | O_EXCL), -EEXIST);
  ::close(bl);
  // Releasing the lock (unlink) lets the next one in.
  ASSERT_EQ(::unlink(m("lock").c_str()), 0);
  const int l2 = xopen(m("lock"), O_WRONLY | O_CREAT | O_EXCL, 0600);
  EXPECT_GE(l2, 0);
  ::close(l2);
}

TEST_P(Snapshot, DupAndForkCloses) {
  write_file(b("f"), "..........");
  const int fd = xopen(m("f"), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(pwrite_str(fd, "A", 0));
  const int fd2 = ::dup(fd);
  ASSERT_GE(fd2, 0);
  ASSERT_EQ(xclose(fd), 0);  // one FLUSH: commits "A"
  EXPECT_EQ(read_file(b("f")), "A.........");
  // The description stays open with a private snapshot again.
  ASSERT_TRUE(pwrite_str(fd2, "B", 1));
  EXPECT_EQ(read_file(b("f")), "A.........");
  EXPECT_EQ(pread_all(fd2), "AB........");

  // A forked child writes and exits. The daemon sees who wrote only when it
  // serves the writes: then the child's close commits. With kernel
  // passthrough only the opener's closes (and the last one) commit.
  const pid_t pid = ::fork();
  if (pid == 0) {
    const bool ok = pwrite_str(fd2, "C", 2);
    _exit(ok && ::close(fd2) == 0 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(read_file(b("f")), kernel_passthrough() ? "A........." : "ABC.......");
  ASSERT_TRUE(pwrite_str(fd2, "D", 3));
  ASSERT_EQ(xclose(fd2), 0);
  EXPECT_EQ(read_file(b("f")), "ABCD......");
}

// Threads are one process: a file opened and written by one thread commits
// when another closes it, whichever of them leads the thread group (with
// kernel passthrough the daemon compares the closer's process with the
// opener's: sys::tgid_of()).
TEST_P(Snapshot, AnotherThreadOfTheOpenerCommitsAtClose) {
  write_file(b("f"), "old");
  int fd = -1;
  std::thread opener([&] {
    fd = xopen(m("f"), O_RDWR);
    if (fd >= 0 && !pwrite_str(fd, "by a worker", 0)) {
      ::close(fd);
      fd = -1;
    }
  });
  opener.join();
  ASSERT_GE(fd, 0);
  ASSERT_EQ(xclose(fd), 0);  // the main thread closes
  EXPECT_EQ(read_file(b("f")), "by a worker");

  fd = xopen(m("f"), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(pwrite_str(fd, "by the main", 0));
  int closed = -1;
  std::thread closer([&] { closed = xclose(fd); });
  closer.join();
  ASSERT_EQ(closed, 0);
  EXPECT_EQ(read_file(b("f")), "by the main");
}

// A child that inherited a dirty descriptor and exits without writing does
// not publish the parent's unfinished file; the parent's close does.
TEST_P(Snapshot, InheritingChildDoesNotCommit) {
  write_file(b("f"), "old");
  const int fd = xopen(m("f"), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(pwrite_str(fd, "half", 0));
  auto st = run_in_child([] { return 0; });  // exits: closes its copy (FLUSH)
  ASSERT_TRUE(st.ok()) << st.describe();
  EXPECT_EQ(read_file(b("f")), "old");
  ASSERT_TRUE(pwrite_str(fd, "whole", 0));
  ASSERT_EQ(xclose(fd), 0);
  EXPECT_EQ(read_file(b("f")), "whole");
}

TEST_P(Snapshot, RenameWhileOpenCommitsToNewName) {
  write_file(b("a"), "old");
  const int fd = xopen(m("a"), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(pwrite_str(fd, "new", 0));
  ASSERT_EQ(::rename(m("a").c_str(), m("b").c_str()), 0);
  ASSERT_EQ(xclose(fd), 0);
  EXPECT_FALSE(fs::exists(b("a")));
  EXPECT_EQ(read_file(b("b")), "new");
}

TEST_P(Snapshot, UnlinkWhileOpenCommitsNothing) {
  write_file(b("a"), "old");
  const int fd = xopen(m("a"), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(pwrite_str(fd, "new", 0));
  ASSERT_EQ(::unlink(m("a").c_str()), 0);
  EXPECT_EQ(pread_all(fd), "new");
  ASSERT_EQ(xclose(fd), 0);
  EXPECT_FALSE(fs::exists(b("a")));
  EXPECT_EQ(list_backing(backing()), std::vector<std::string>{});
}

TEST_P(Snapshot, RenameOverOpenFileCommitsNothing) {
  write_file(b("a"), "victim");
  write_file(b("c"), "replacement");
  const int fd = xopen(m("a"), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(pwrite_str(fd, "VICTIM", 0));
  ASSERT_EQ(::rename(m("c").c_str(), m("a").c_str()), 0);
  ASSERT_EQ(xclose(fd), 0);
  EXPECT_EQ(read_file(b("a")), "replacement");
}

// Appends go to the end of each description's own snapshot, whatever the
// kernel thinks the size is (docs/design-fuse.md, "Kernel facts" 5): two
// processes appending to one file (OwnWrites.TwoAppendersInOneProcess...
// for one process).
TEST_P(Snapshot, AppendFromTwoDescriptors) {
  write_file(b("log"), "start\n");
  Peer other;
  const int a = xopen(m("log"), O_WRONLY | O_APPEND);
  const int c = other.open(m("log"), O_WRONLY | O_APPEND);
  ASSERT_GE(a, 0);
  ASSERT_GE(c, 0);
  ASSERT_TRUE(write_str(a, "a1\n"));
  EXPECT_EQ(fstat_of(a).st_size, 9);
  ASSERT_TRUE(other.write(c, "c1\n"));
  (void)other.size(c);
  ASSERT_TRUE(write_str(a, "a2\n"));
  ASSERT_TRUE(other.write(c, "c2\n"));
  ASSERT_EQ(xclose(a), 0);
  EXPECT_EQ(read_file(b("log")), "start\na1\na2\n");
  // docs/semantics.md#conflicts: c only appended, so its commit is rebased onto
  // a's result: every line is kept, in commit order.
  ASSERT_EQ(other.close(c), 0);
  EXPECT_EQ(read_file(b("log")), "start\na1\na2\nc1\nc2\n");
}

TEST_P(Snapshot, MmapPrivateWorks) {
  write_file(b("f"), pattern(8192, 4));
  const int fd = xopen(m("f"), O_RDWR);
  ASSERT_GE(fd, 0);
  void* p = ::mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  ASSERT_NE(p, MAP_FAILED) << std::strerror(errno);
  EXPECT_EQ(std::string(static_cast<char*>(p), 8192), pattern(8192, 4));
  static_cast<char*>(p)[0] = 'Z';  // copy-on-write, private
  ::munmap(p, 8192);
  ASSERT_EQ(xclose(fd), 0);
  EXPECT_EQ(read_file(b("f")), pattern(8192, 4));
}

// docs/semantics.md#mmap: MAP_SHARED works, isolated per open (of two
// processes), where the kernel passes opens through to their snapshots;
// elsewhere it fails with ENODEV.
TEST_P(Snapshot, MmapSharedIsIsolatedPerOpenOrENODEV) {
  write_file(b("f"), pattern(8192, 4));
  const int fd1 = xopen(m("f"), O_RDWR);
  ASSERT_GE(fd1, 0);
  errno = 0;
  void* p1 = ::mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd1, 0);
  if (!kernel_passthrough()) {
    EXPECT_EQ(p1, MAP_FAILED);
    EXPECT_EQ(errno, ENODEV);
    ASSERT_EQ(xclose(fd1), 0);
    return;
  }
  ASSERT_NE(p1, MAP_FAILED) << std::strerror(errno);
  auto* c1 = static_cast<char*>(p1);
  c1[100] = 'x';
  // Another process maps its own open: each mapping is its open's
  // snapshot; read() of that open sees it, the other open and B do not.
  auto other = run_in_child([&] {
    const int fd2 = xopen(m("f"), O_RDWR);
    if (fd2 < 0) return 1;
    void* p2 = ::mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd2, 0);
    if (p2 == MAP_FAILED) return 2;
    auto* c2 = static_cast<char*>(p2);
    if (c2[100] != pattern(8192, 4)[100]) return 3;  // not the other open's store
    c2[100] = 'y';
    if (pread_all(fd2)[100] != 'y') return 4;
    if (!pwrite_str(fd2, "Z", 200) || c2[200] != 'Z') return 5;
    if (read_file(b("f")) != pattern(8192, 4)) return 6;
    ::munmap(p2, 8192);
    return xclose(fd2) == 0 ? 0 : 7;  // commits 'y' and 'Z'
  });
  ASSERT_TRUE(other.ok()) << other.describe();
  EXPECT_EQ(pread_all(fd1)[100], 'x');
  EXPECT_EQ(c1[200], pattern(8192, 4)[200]);
  std::string theirs = pattern(8192, 4);
  theirs[100] = 'y';
  theirs[200] = 'Z';
  EXPECT_EQ(read_file(b("f")), theirs);
  ::munmap(p1, 8192);
  EXPECT_EQ(xclose(fd1), -ESTALE);  // B/p changed since fd1's open
}

// docs/semantics.md#mmap: stores through a shared mapping after close() are
// published when the last mapping goes away (the common mmap-then-close
// pattern). "hello world" in f, opened read-write through M and mapped shared;
// the first store ('H') made. Needs kernel passthrough.
#define SNAPFS_MAP_HELLO(fd, p)                                                              \
  if (!kernel_passthrough()) GTEST_SKIP() << "MAP_SHARED needs kernel passthrough (ENODEV here)"; \
  write_file(b("f"), "hello world");                                                         \
  const int fd = xopen(m("f"), O_RDWR);                                                      \
  ASSERT_GE(fd, 0);                                                                          \
  void* p = ::mmap(nullptr, 11, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);                  \
  ASSERT_NE(p, MAP_FAILED) << std::strerror(errno);                                          \
  static_cast<char*>(p)[0] = 'H'

TEST_P(Snapshot, MmapStoresAfterCloseArePublishedAtMunmap) {
  SNAPFS_MAP_HELLO(fd, p);
  auto* c = static_cast<char*>(p);
  ASSERT_EQ(xclose(fd), 0);
  EXPECT_EQ(read_file(b("f")), "Hello world");  // the close published the first store
  c[6] = 'W';
  EXPECT_EQ(read_file(b("f")), "Hello world");  // still mapped: not yet
  ASSERT_EQ(::munmap(p, 11), 0);
  // The daemon learns of the munmap by asking the kernel (a lease probe);
  // wait for it with a deadline.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (read_file(b("f")) != "Hello World" && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(read_file(b("f")), "Hello World");
}

// A mapping that never stores after close publishes nothing more.
TEST_P(Snapshot, MmapReadOnlyAfterClosePublishesNothingMore) {
  SNAPFS_MAP_HELLO(fd, p);
  ASSERT_EQ(xclose(fd), 0);
  const struct stat before = stat_of(b("f"));
  EXPECT_EQ(static_cast<char*>(p)[1], 'e');
  ASSERT_EQ(::munmap(p, 11), 0);
  // The parked snapshot is settled within milliseconds: the status shows
  // no more opens once it is; then B/p must be the same inode.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (status_field("lingering") != "0" && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(status_field("lingering"), "0");
  const struct stat after = stat_of(b("f"));
  EXPECT_EQ(after.st_ino, before.st_ino);
  EXPECT_EQ(read_file(b("f")), "Hello world");
}

TEST_P(Snapshot, FtruncateAndTruncatePath) {
  write_file(b("f"), "0123456789");
  const int fd = xopen(m("f"), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 4), 0);
  EXPECT_EQ(fstat_of(fd).st_size, 4);
  EXPECT_EQ(read_file(b("f")), "0123456789");
  // truncate(path) changes the published file (atomically), not the snapshot.
  ASSERT_EQ(::truncate(m("f").c_str(), 7), 0);
  EXPECT_EQ(read_file(b("f")), "0123456");
  EXPECT_EQ(pread_all(fd), "0123");
  // The truncate(path) published a version this description did not start from:
  // with the default --on-conflict=fail its commit loses
  // (docs/semantics.md#conflicts), and its content is kept in the conflicts
  // directory.
  EXPECT_EQ(xclose(fd), -ESTALE);
  EXPECT_EQ(read_file(b("f")), "0123456");
  EXPECT_EQ(list_backing(b(".snapfs/conflicts")).size(), 2u);
}

// The file (and its directory) removed directly in B while open: with the
// default --on-conflict=fail that is a conflict (docs/semantics.md#conflicts):
// close() fails with ESTALE, nothing is resurrected, the content is kept. (With
// overwrite, close() returns the commit's error: Conflicts.OverwriteReports...)
TEST_P(Snapshot, CloseReportsCommitError) {
  ASSERT_EQ(::mkdir(b("d").c_str(), 0755), 0);
  write_file(b("d/f"), "old");
  const int fd = xopen(m("d/f"), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(pwrite_str(fd, "new", 0));
  ASSERT_EQ(::unlink(b("d/f").c_str()), 0);
  ASSERT_EQ(::rmdir(b("d").c_str()), 0);
  EXPECT_EQ(xclose(fd), -ESTALE);
  EXPECT_FALSE(fs::exists(b("d")));
  EXPECT_NE(daemon_log().find("conflict: d/f changed"), std::string::npos) << daemon_log();
}

TEST_P(Snapshot, TmpfileIsEOPNOTSUPP) {
  EXPECT_EQ(xopen(mnt(), O_TMPFILE | O_RDWR, 0600), -EOPNOTSUPP);
}

// Many processes open, read and close while another keeps committing: every
// read sees one whole version (the ESTALE re-walk path included).
TEST_P(Snapshot, ConcurrentOpensSeeWholeVersions) {
  const std::size_t n = 50000;
  write_file(b("f"), std::string(n, 'a'));
  std::vector<pid_t> kids;
  for (int k = 0; k < 4; ++k) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      for (int i = 0; i < 40; ++i) {
        const int fd = xopen(m("f"), O_RDONLY);
        if (fd < 0) _exit(10 + (-fd) % 100);
        const std::string s = pread_all(fd);
        ::close(fd);
        if (s.size() != n || s.find_first_not_of(s[0]) != std::string::npos) _exit(2);
      }
      _exit(0);
    }
    kids.push_back(pid);
  }
  for (int i = 0; i < 20; ++i) {
    const int fd = xopen(m("f"), O_RDWR);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(pwrite_str(fd, std::string(n, static_cast<char>('b' + i % 20)), 0));
    ASSERT_EQ(xclose(fd), 0);
  }
  for (pid_t pid : kids) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  }
}

SNAPFS_INSTANTIATE_MOUNT(Snapshot);

// Every OPEN reply for "f" goes out without the backing file it was armed
// with (snapfs_testd's test_fault), as if the kernel had not taken it.
class SnapshotUnpatched : public FuseMount {
protected:
  std::string mount_options() const override { return "test_fault=open.unpatched:f"; }
  bool needs_testd() const override { return true; }
};

// A reader of a warm snapshot whose OPEN reply the kernel did not take is
// served by the daemon, from a descriptor of the snapshot the daemon kept
// for that case, and reads its version; readers of other files, whose
// replies were taken, are unaffected.
TEST_P(SnapshotUnpatched, AWarmReaderTheKernelDidNotTakeIsServedByTheDaemon) {
  if (!kernel_passthrough())
    GTEST_SKIP() << "needs kernel passthrough (root, Linux >= 6.9): without it no OPEN reply "
                    "carries a backing file";
  write_file(b("f"), pattern(100000, 7));
  write_file(b("g"), pattern(5000, 8));
  const auto hits = [&] { return std::stoull("0" + status_field("warm_hits")); };
  EXPECT_EQ(read_file(m("g")), pattern(5000, 8));  // the kernel took this one
  EXPECT_EQ(read_file(m("f")), pattern(100000, 7));  // makes f's warm snapshot
  const auto h0 = hits();
  EXPECT_EQ(read_file(m("f")), pattern(100000, 7));  // a warm hit
  EXPECT_GE(hits(), h0 + 1);
  {
    const int held = xopen(m("f"), O_RDONLY);
    ASSERT_GE(held, 0);
    EXPECT_EQ(read_file(m("f")), pattern(100000, 7));  // shares the held one's node
    EXPECT_EQ(pread_all(held), pattern(100000, 7));
    ASSERT_EQ(xclose(held), 0);
  }
  EXPECT_EQ(read_file(m("g")), pattern(5000, 8));  // a warm hit the kernel took
}

SNAPFS_INSTANTIATE_MOUNT(SnapshotUnpatched);

}  // namespace
}  // namespace snapfs::test

namespace snapfs::test {
namespace {

// Re-opening an open file through /proc/self/fd (no path walk, so the same
// kernel inode): the writer's own re-opens, read-only or writable, are more
// descriptions of its version (docs/semantics.md#a-process-sees-its-own-writes):
// they read its writes, their writes are its, and the version is published
// by the process's last close of them. A child is another process: its
// re-open of an inherited descriptor reads the writer's snapshot (the
// kernel's one backing file per inode) under passthrough and cannot write
// it (EBUSY); served by the daemon it gets its own snapshot of B/p.
TEST_P(Snapshot, ReopenThroughProcFd) {
  write_file(b("f"), "published");
  const int fd = xopen(m("f"), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(pwrite_str(fd, "PRIVATE", 0));
  const std::string proc = "/proc/self/fd/" + std::to_string(fd);

  auto child = run_in_child([&] {
    const int r = xopen(proc, O_RDONLY);
    if (r < 0) return 10;
    const std::string want = kernel_passthrough() ? "PRIVATEed" : "published";
    if (pread_all(r) != want) return 11;
    if (xclose(r) != 0) return 12;
    const int w = xopen(proc, O_RDWR);
    if (kernel_passthrough()) return w == -EBUSY ? 0 : 13;
    if (w < 0) return 14;
    if (pread_all(w) != "published") return 15;
    return xclose(w) == 0 ? 0 : 16;
  });
  ASSERT_TRUE(child.ok()) << child.describe();

  const int r = xopen(proc, O_RDONLY);
  ASSERT_GE(r, 0) << "errno " << -r;
  EXPECT_EQ(pread_all(r), "PRIVATEed");
  const int w = xopen(proc, O_RDWR);
  ASSERT_GE(w, 0) << "errno " << -w;
  ASSERT_TRUE(pwrite_str(w, "JOINED", 0));
  EXPECT_EQ(pread_all(fd), "JOINEDEed");
  EXPECT_EQ(pread_all(r), "JOINEDEed");
  EXPECT_EQ(fstat_of(r).st_size, 9);
  // Not published while another of the process's descriptions is open.
  ASSERT_EQ(xclose(fd), 0);
  EXPECT_EQ(read_file(b("f")), "published");
  ASSERT_EQ(xclose(w), 0);
  EXPECT_EQ(read_file(b("f")), "published");
  ASSERT_EQ(xclose(r), 0);
  EXPECT_EQ(read_file(b("f")), "JOINEDEed");
}

}  // namespace
}  // namespace snapfs::test
