// The kernel caches names and attributes of files nobody has open
// (-o cache_timeout), and everything done through M still shows at once
// (docs/semantics.md#writers: stat by anyone else shows the published file;
// #namespace-and-metadata-operations). Also: a walk over more files than the
// daemon may open descriptors.
#include "fuse_mount.hpp"
#include "mount_util.hpp"
#include "support/peer.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

namespace snapfs::test {
namespace {

using namespace std::chrono_literals;

// A long timeout: whatever the daemon forgets to invalidate stays wrong
// for the whole test, so these tests see it.
class Cache : public FuseMount {
protected:
  std::string mount_options() const override { return "cache_timeout=30"; }
};
class NoCache : public FuseMount {
protected:
  std::string mount_options() const override { return "cache_timeout=0"; }
};
class ShortCache : public FuseMount {
protected:
  std::string mount_options() const override { return "cache_timeout=0.2"; }
};
// The default timeout, and a daemon allowed 1000 descriptors.
class CacheFdLimit : public FuseMount {
protected:
  unsigned daemon_nofile() const override { return 1000; }
};

struct stat stat_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p << ": " << errno_name(errno);
  return st;
}

int stat_errno(const fs::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 ? 0 : errno;
}

// What stat through M must show for a file nobody is writing: B's stat.
void expect_same_stat(const fs::path& m, const fs::path& b) {
  const struct stat ms = stat_of(m), bs = stat_of(b);
  EXPECT_EQ(ms.st_ino, bs.st_ino) << m;
  EXPECT_EQ(ms.st_size, bs.st_size) << m;
  EXPECT_EQ(ms.st_mode, bs.st_mode) << m;
  EXPECT_EQ(ms.st_nlink, bs.st_nlink) << m;
  EXPECT_TRUE(same_time(ms.st_mtim, bs.st_mtim)) << m;
  EXPECT_TRUE(same_time(ms.st_ctim, bs.st_ctim)) << m;
}

// FUSE_NOTIFY_INC_EPOCH (protocol 7.44) came with Linux 6.16.
bool kernel_has_epochs() {
  struct utsname u {};
  if (::uname(&u) != 0) return false;
  int major = 0, minor = 0;
  if (std::sscanf(u.release, "%d.%d", &major, &minor) != 2) return false;
  return major > 6 || (major == 6 && minor >= 16);
}

// A counter from the daemon's status attribute (Stats in daemon_state.hpp).
std::uint64_t counter(const fs::path& mnt, const std::string& key) {
  std::string buf(1 << 16, '\0');
  const ssize_t n = ::getxattr(mnt.c_str(), "user.snapfs.status", buf.data(), buf.size());
  if (n < 0) return ~0ull;
  buf.resize(static_cast<std::size_t>(n));
  const auto at = buf.find("\"" + key + "\":");
  if (at == std::string::npos) return ~0ull;
  return std::stoull(buf.substr(at + key.size() + 3));
}

std::uint64_t requests(const fs::path& mnt) {
  return counter(mnt, "lookups") + counter(mnt, "getattrs");
}

TEST_P(Cache, RepeatedStatIsServedByTheKernel) {
  write_file(b("f"), "abc");
  ASSERT_EQ(stat_of(m("f")).st_size, 3);
  const auto before = requests(mnt());
  for (int i = 0; i < 20; ++i) EXPECT_EQ(stat_of(m("f")).st_size, 3);
  EXPECT_EQ(requests(mnt()), before) << "a cached stat reached the daemon";
  // An open of the file does not make later stats by path slower for long:
  // once its (asynchronous) RELEASE is done, a walk finds an idle node again
  // and the kernel caches it. Until then lookups get fresh, uncached nodes.
  const int fd = xopen(m("f"), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(xclose(fd), 0);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  bool cached = false;
  while (!cached && std::chrono::steady_clock::now() < deadline) {
    ASSERT_EQ(stat_of(m("f")).st_size, 3);
    const auto again = requests(mnt());
    for (int i = 0; i < 20; ++i) EXPECT_EQ(stat_of(m("f")).st_size, 3);
    cached = requests(mnt()) == again;
  }
  EXPECT_TRUE(cached) << "stats after an open and close never became kernel-served";
}

// Linux >= 6.16: a LOOKUP that makes a new kernel inode is answered with
// cacheable attributes too (a commit racing it is repaired by the dentry
// epoch: the ColdLookupRace tests), so the first stat of a name costs one
// LOOKUP and no GETATTR.
TEST_P(Cache, FirstStatOfANameAsksOneLookupAndNoGetattr) {
  if (!kernel_has_epochs()) GTEST_SKIP() << "Linux < 6.16: a node new to the kernel is not cached";
  write_file(b("f"), "abc");
  const auto lookups = counter(mnt(), "lookups"), getattrs = counter(mnt(), "getattrs");
  EXPECT_EQ(stat_of(m("f")).st_size, 3);
  EXPECT_EQ(stat_of(m("f")).st_size, 3);
  EXPECT_EQ(counter(mnt(), "lookups"), lookups + 1);
  EXPECT_EQ(counter(mnt(), "getattrs"), getattrs) << "the first stat asked GETATTR after its LOOKUP";
}

// A CREATE answers attributes the kernel may keep, so the permission check
// that ends open(O_CREAT) (default_permissions) asks no GETATTR of the new
// file; the writer's fstat still shows its own writes, and a stat by path
// after close() the published file.
TEST_P(Cache, CreatingAFileAsksNoGetattrOfIt) {
  fs::create_directory(b("d"));
  ASSERT_TRUE(fs::is_directory(m("d")));
  const auto getattrs = counter(mnt(), "getattrs");
  const int fd = ::open(m("d/new").c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0640);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  EXPECT_EQ(counter(mnt(), "getattrs"), getattrs) << "open(O_CREAT) asked GETATTR of the new file";
  ASSERT_TRUE(write_str(fd, "fresh data"));
  const struct stat own = fstat_of(fd);
  EXPECT_EQ(own.st_size, 10);
  EXPECT_EQ(own.st_mode & 07777, 0640u);
  EXPECT_EQ(stat_of(b("d/new")).st_size, 0) << "the writer's data reached B before close";
  ASSERT_EQ(xclose(fd), 0);
  EXPECT_EQ(stat_of(m("d/new")).st_size, 10);
  expect_same_stat(m("d/new"), b("d/new"));
  EXPECT_EQ(read_file(m("d/new")), "fresh data");
}

// The kernel keeps a directory's listing across opens (git status lists
// every directory): a second listing asks the daemon nothing, and every
// change through M shows in the next one at once, a commit's new inode
// number included.
TEST_P(Cache, RepeatedListingIsServedByTheKernelAndChangesThroughMShowAtOnce) {
  fs::create_directory(b("d"));
  write_file(b("d/a"), "a");
  write_file(b("d/b"), "b");
  const auto names = [&] { return list_dir(m("d")); };
  const auto ino_listed = [&](const std::string& name) {  // d_ino of `name`
    DIR* dir = ::opendir(m("d").c_str());
    ino_t ino = 0;
    if (!dir) return ino;
    while (const struct dirent* e = ::readdir(dir))
      if (name == e->d_name) ino = e->d_ino;
    ::closedir(dir);
    return ino;
  };
  EXPECT_EQ(names(), (std::vector<std::string>{"a", "b"}));
  const auto before = counter(mnt(), "readdirs");
  EXPECT_EQ(names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(counter(mnt(), "readdirs"), before) << "a repeated listing reached the daemon";
  write_file(m("d/c"), "c");  // create through M
  EXPECT_EQ(names(), (std::vector<std::string>{"a", "b", "c"}));
  ASSERT_EQ(::unlink(m("d/a").c_str()), 0);
  EXPECT_EQ(names(), (std::vector<std::string>{"b", "c"}));
  ASSERT_EQ(::rename(m("d/b").c_str(), m("d/e").c_str()), 0);
  EXPECT_EQ(names(), (std::vector<std::string>{"c", "e"}));
  EXPECT_EQ(ino_listed("c"), stat_of(b("d/c")).st_ino);
  // A commit replaces the inode behind the name; the names stay the same.
  const int fd = xopen(m("d/c"), O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(write_str(fd, "new"));
  ASSERT_EQ(xclose(fd), 0);
  EXPECT_EQ(ino_listed("c"), stat_of(b("d/c")).st_ino) << "the listing kept the old inode number";
  EXPECT_EQ(names(), (std::vector<std::string>{"c", "e"}));
}

// Changes made directly in B show in a listing once the directory's
// attributes expire (cache_timeout, here 0.2 s).
TEST_P(ShortCache, ListingShowsChangesMadeDirectlyInBAfterTheTimeout) {
  fs::create_directory(b("d"));
  write_file(b("d/a"), "a");
  EXPECT_EQ(list_dir(m("d")), std::vector<std::string>{"a"});
  write_file(b("d/b"), "b");
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (list_dir(m("d")).size() != 2 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(list_dir(m("d")), (std::vector<std::string>{"a", "b"}));
}

TEST_P(NoCache, EveryListingAsksTheDaemon) {
  fs::create_directory(b("d"));
  write_file(b("d/a"), "a");
  EXPECT_EQ(list_dir(m("d")), std::vector<std::string>{"a"});
  const auto before = counter(mnt(), "readdirs");
  EXPECT_EQ(list_dir(m("d")), std::vector<std::string>{"a"});
  EXPECT_GT(counter(mnt(), "readdirs"), before);
  write_file(b("d/b"), "b");
  EXPECT_EQ(list_dir(m("d")), (std::vector<std::string>{"a", "b"}));
}

TEST_P(NoCache, EveryStatAsksTheDaemon) {
  write_file(b("f"), "abc");
  ASSERT_EQ(stat_of(m("f")).st_size, 3);
  const auto before = requests(mnt());
  for (int i = 0; i < 20; ++i) EXPECT_EQ(stat_of(m("f")).st_size, 3);
  EXPECT_GE(requests(mnt()) - before, 20u);
}

// A commit replaces the inode behind a cached name: stat right after
// close() returns shows the new size, times and inode, and the directory's
// new mtime.
TEST_P(Cache, StatAfterCommitShowsTheNewFile) {
  fs::create_directory(b("d"));
  write_file(b("d/f"), "old");
  expect_same_stat(m("d/f"), b("d/f"));
  expect_same_stat(m("d"), b("d"));
  for (int round = 0; round < 3; ++round) {
    const int fd = xopen(m("d/f"), O_RDWR);
    ASSERT_GE(fd, 0);
    const std::string v = "new content " + std::string(static_cast<std::size_t>(round) * 7, 'x');
    ASSERT_TRUE(pwrite_str(fd, v, 0));
    ASSERT_EQ(xclose(fd), 0);
    EXPECT_EQ(stat_of(m("d/f")).st_size, static_cast<off_t>(v.size())) << "round " << round;
    expect_same_stat(m("d/f"), b("d/f"));
    expect_same_stat(m("d"), b("d"));
    EXPECT_EQ(read_file(m("d/f")), v);
  }
}

// docs/semantics.md#writers with a cached name: once a writer has the file
// open, stat by anyone else (here: another process, by path) shows the
// published file, while fstat of the writer shows its own snapshot.
TEST_P(Cache, StatByOthersWhileAWriterHasItOpenShowsThePublishedFile) {
  write_file(b("f"), "published");
  expect_same_stat(m("f"), b("f"));
  ASSERT_EQ(stat_of(m("f")).st_size, 9);  // cached now
  const int fd = xopen(m("f"), O_RDWR);
  ASSERT_GE(fd, 0);
  const std::string priv = "a much longer private content";
  ASSERT_TRUE(pwrite_str(fd, priv, 0));
  EXPECT_EQ(fstat_of(fd).st_size, static_cast<off_t>(priv.size()));
  const pid_t pid = ::fork();
  if (pid == 0) {
    struct stat st {};
    if (::stat(m("f").c_str(), &st) != 0) _exit(2);
    _exit(st.st_size == 9 ? 0 : 3);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  // The writer's own stat by path shows its version (docs/semantics.md,
  // "A process's own opens").
  EXPECT_EQ(stat_of(m("f")).st_size, static_cast<off_t>(priv.size()));
  EXPECT_EQ(stat_of(b("f")).st_size, 9);
  ASSERT_EQ(xclose(fd), 0);
  EXPECT_EQ(stat_of(m("f")).st_size, static_cast<off_t>(priv.size()));
  expect_same_stat(m("f"), b("f"));
}

TEST_P(Cache, RenameAndUnlinkThroughMAreSeenAtOnce) {
  write_file(b("a"), "aaaa");
  write_file(b("c"), "cc");
  ASSERT_EQ(stat_of(m("a")).st_size, 4);
  ASSERT_EQ(stat_of(m("c")).st_size, 2);
  ASSERT_EQ(::rename(m("a").c_str(), m("b").c_str()), 0);
  EXPECT_EQ(stat_errno(m("a")), ENOENT);
  EXPECT_EQ(stat_of(m("b")).st_size, 4);
  ASSERT_EQ(::rename(m("b").c_str(), m("c").c_str()), 0);  // replaces c
  EXPECT_EQ(stat_errno(m("b")), ENOENT);
  expect_same_stat(m("c"), b("c"));
  ASSERT_EQ(::unlink(m("c").c_str()), 0);
  EXPECT_EQ(stat_errno(m("c")), ENOENT);
  // A new file under a name whose old node the kernel still caches.
  write_file(m("c"), "new");
  expect_same_stat(m("c"), b("c"));
}

// Changes through one name of a file reach the cached attributes of its
// other names (each name has its own node).
TEST_P(Cache, HardLinksSeeEachOthersChanges) {
  write_file(b("a"), "x");
  ASSERT_EQ(stat_of(m("a")).st_nlink, 1u);
  ASSERT_EQ(::link(m("a").c_str(), m("b").c_str()), 0);
  EXPECT_EQ(stat_of(m("a")).st_nlink, 2u);
  expect_same_stat(m("b"), b("b"));
  ASSERT_EQ(::chmod(m("b").c_str(), 0600), 0);
  expect_same_stat(m("a"), b("a"));
  EXPECT_EQ(stat_of(m("a")).st_mode & 07777, 0600u);
  const struct timespec times[2] = {{1000, 0}, {2000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, m("b").c_str(), times, 0), 0);
  expect_same_stat(m("a"), b("a"));
  ASSERT_EQ(::setxattr(m("b").c_str(), "user.k", "v", 1, 0), 0);
  expect_same_stat(m("a"), b("a"));
  ASSERT_EQ(::truncate(m("b").c_str(), 0), 0);  // publishes a new inode at b
  expect_same_stat(m("a"), b("a"));
  expect_same_stat(m("b"), b("b"));
  ASSERT_EQ(::unlink(m("b").c_str()), 0);
  expect_same_stat(m("a"), b("a"));
}

// A commit to one name of a hard-linked file: on XFS it is published into
// the shared inode (both names show it), elsewhere by rename (the other
// name keeps the old file, one link less). Either way stat through M
// equals B at once.
TEST_P(Cache, CommitToAHardLinkedFile) {
  write_file(b("a"), "old");
  ASSERT_EQ(::link(b("a").c_str(), b("b").c_str()), 0);
  expect_same_stat(m("a"), b("a"));
  expect_same_stat(m("b"), b("b"));
  const int fd = xopen(m("a"), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(pwrite_str(fd, "new and longer", 0));
  ASSERT_EQ(xclose(fd), 0);
  expect_same_stat(m("a"), b("a"));
  expect_same_stat(m("b"), b("b"));
}

// Changes made directly in B are not notified: they show once the cached
// entry and attributes expire (cache_timeout, here 0.2 s).
TEST_P(ShortCache, ChangesMadeDirectlyInBShowAfterTheTimeout) {
  write_file(b("f"), "abc");
  ASSERT_EQ(stat_of(m("f")).st_size, 3);
  write_file(b("tmp"), "abcdef");
  ASSERT_EQ(::rename(b("tmp").c_str(), b("f").c_str()), 0);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (stat_of(m("f")).st_size != 6 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  expect_same_stat(m("f"), b("f"));
  ASSERT_EQ(::unlink(b("f").c_str()), 0);
  while (stat_errno(m("f")) != ENOENT && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(stat_errno(m("f")), ENOENT);
  // A name that became a directory in B: the stale file node is refused
  // (ESTALE), the kernel walks again and finds the directory.
  write_file(b("g"), "x");
  ASSERT_EQ(stat_of(m("g")).st_size, 1);
  ASSERT_EQ(::unlink(b("g").c_str()), 0);
  fs::create_directory(b("g"));
  while (!S_ISDIR(stat_of(m("g")).st_mode) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(S_ISDIR(stat_of(m("g")).st_mode));
}

// Shared readers (docs/design-fuse.md): under kernel passthrough a
// read-only open of an unchanged file takes the node its name is cached
// with, so repeated opens cost no LOOKUP (no ESTALE re-walk) and stat
// between them stays kernel-served.
TEST_P(Cache, ReadOnlyOpensOfAnUnchangedFileTakeItsCachedNode) {
  if (!kernel_passthrough())
    GTEST_SKIP() << "kernel passthrough is not active here: read-only opens get nodes of their own";
  write_file(b("f"), "content");
  EXPECT_EQ(read_file(m("f")), "content");  // name, node and warm snapshot
  EXPECT_EQ(stat_of(m("f")).st_size, 7);
  const auto lookups = counter(mnt(), "lookups");
  const auto opens = counter(mnt(), "passthrough_opens");
  for (int i = 0; i < 20; ++i) {
    const int fd = xopen(m("f"), O_RDONLY);
    ASSERT_GE(fd, 0);
    EXPECT_EQ(pread_all(fd), "content");
    EXPECT_EQ(fstat_of(fd).st_size, 7);
    EXPECT_EQ(stat_of(m("f")).st_size, 7);
    ASSERT_EQ(xclose(fd), 0);
  }
  EXPECT_EQ(counter(mnt(), "lookups"), lookups) << "an open walked again";
  EXPECT_EQ(counter(mnt(), "passthrough_opens"), opens + 20);
  // (A read makes the kernel ask for the atime once; stats alone do not.)
  const int fd = xopen(m("f"), O_RDONLY);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(stat_of(m("f")).st_size, 7);
  const auto getattrs = counter(mnt(), "getattrs");
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(fstat_of(fd).st_size, 7);
    EXPECT_EQ(stat_of(m("f")).st_size, 7);
  }
  EXPECT_EQ(counter(mnt(), "getattrs"), getattrs) << "stat of an open file was not kernel-served";
  ASSERT_EQ(xclose(fd), 0);
}

// A commit through M replaces a file that readers share a cached node of: stat by
// path, the readers' own process included, shows the new file as soon as close()
// returned (the daemon bumps the kernel's dentry epoch), while the readers' fstat
// and reads keep their version (docs/semantics.md#readers, #writers).
// The writer opens first, so that its open does not itself send the kernel
// to look the name up again: only the epoch does.
TEST_P(Cache, CommitOverSharedReadersShowsAtOnceToStatByPath) {
  write_file(b("f"), "version one");
  Peer writer;  // another process: the readers' opens are not its own
  ASSERT_EQ(stat_of(m("f")).st_size, 11);  // cached now
  const int w = writer.open(m("f"), O_WRONLY | O_TRUNC);
  ASSERT_GE(w, 0);
  const int r1 = xopen(m("f"), O_RDONLY);
  const int r2 = xopen(m("f"), O_RDONLY);
  ASSERT_GE(r1, 0);
  ASSERT_GE(r2, 0);
  EXPECT_EQ(stat_of(m("f")).st_size, 11);  // the readers' node, cached
  const std::string v2 = "the second version, a longer one";
  ASSERT_TRUE(writer.write(w, v2));
  ASSERT_EQ(writer.close(w), 0);
  EXPECT_EQ(stat_of(m("f")).st_size, static_cast<off_t>(v2.size()));
  expect_same_stat(m("f"), b("f"));
  EXPECT_EQ(fstat_of(r1).st_size, 11);
  EXPECT_EQ(fstat_of(r2).st_size, 11);
  EXPECT_EQ(::lseek(r2, 0, SEEK_END), 11);
  EXPECT_EQ(pread_all(r1), "version one");
  EXPECT_EQ(read_file(m("f")), v2);

  // Again with the commit from another process whose open comes after the
  // readers' (its ESTALE re-walk replaces the name's dentry itself).
  const std::string v3 = "third";
  auto st = run_in_child([&] {
    const int w2 = xopen(m("f"), O_WRONLY | O_TRUNC);
    if (w2 < 0 || !write_str(w2, v3)) return 1;
    return xclose(w2) == 0 ? 0 : 2;
  });
  ASSERT_TRUE(st.ok()) << st.describe();
  EXPECT_EQ(stat_of(m("f")).st_size, 5);
  expect_same_stat(m("f"), b("f"));
  EXPECT_EQ(fstat_of(r1).st_size, 11);
  EXPECT_EQ(pread_all(r2), "version one");
  ASSERT_EQ(xclose(r1), 0);
  ASSERT_EQ(xclose(r2), 0);
  expect_same_stat(m("f"), b("f"));
}

// A change made directly in B to a file whose attributes the kernel holds:
// a read-only open afterwards reads the new version, and its fstat shows
// that version's size, not the cached one.
TEST_P(Cache, AReaderOfAFileChangedInBSeesItsOwnSize) {
  write_file(b("f"), "short");
  ASSERT_EQ(stat_of(m("f")).st_size, 5);  // cached for 30 s
  write_file(b("f"), "a much longer content");
  const int r = xopen(m("f"), O_RDONLY);
  ASSERT_GE(r, 0);
  // fstat first: a read makes the kernel ask for the atime again, which
  // would hide attributes left cached.
  EXPECT_EQ(fstat_of(r).st_size, 21);
  EXPECT_EQ(::lseek(r, 0, SEEK_END), 21);
  EXPECT_EQ(pread_all(r), "a much longer content");
  ASSERT_EQ(xclose(r), 0);
}

// Idle files hold no descriptor in the daemon: a walk over five times more
// files than it may open works (when idle files held one, it failed with
// EMFILE once the kernel cached ~1000 of them).
TEST_P(CacheFdLimit, WalkBeyondTheDescriptorLimit) {
  constexpr int kDirs = 50, kPerDir = 100;
  for (int d = 0; d < kDirs; ++d) {
    const fs::path dir = b("d" + std::to_string(d));
    fs::create_directory(dir);
    for (int i = 0; i < kPerDir; ++i) {
      const int fd = xopen(dir / ("f" + std::to_string(i)), O_WRONLY | O_CREAT, 0644);
      ASSERT_GE(fd, 0);
      ::close(fd);
    }
  }
  int failed = 0, first_errno = 0;
  for (int pass = 0; pass < 2; ++pass) {
    for (int d = 0; d < kDirs; ++d) {
      for (int i = 0; i < kPerDir; ++i) {
        const fs::path p = m("d" + std::to_string(d) + "/f" + std::to_string(i));
        if (const int e = stat_errno(p); e != 0) {
          ++failed;
          if (!first_errno) first_errno = e;
        }
        if (i % 10 == 0) {  // and some opens, which bind a descriptor while open
          const int fd = xopen(p, O_RDONLY);
          if (fd < 0) {
            ++failed;
            if (!first_errno) first_errno = -fd;
          } else {
            ::close(fd);
          }
        }
      }
    }
  }
  EXPECT_EQ(failed, 0) << "first error: " << errno_name(first_errno);
  const auto fds = list_dir("/proc/" + std::to_string(daemon_pid()) + "/fd").size();
  EXPECT_LT(fds, 500u) << "the daemon holds a descriptor per cached file";
}

// A reader costs the daemon one descriptor under kernel passthrough (its
// node's O_PATH handle; the kernel alone keeps the warm snapshot): 900 files
// open at once with a daemon limited to 1000 (two per open would need 1800).
TEST_P(CacheFdLimit, ManyReadersOpenAtOnce) {
  if (!kernel_passthrough()) GTEST_SKIP() << "needs kernel passthrough";
  constexpr int kFiles = 900;  // the daemon may open 1000
  fs::create_directory(b("many"));
  for (int i = 0; i < kFiles; ++i) write_file(b("many/f" + std::to_string(i)), std::to_string(i));
  std::vector<int> fds;
  int first_errno = 0;
  for (int i = 0; i < kFiles; ++i) {
    const int fd = xopen(m("many/f" + std::to_string(i)), O_RDONLY);
    if (fd < 0) {
      first_errno = -fd;
      break;
    }
    fds.push_back(fd);
  }
  EXPECT_EQ(fds.size(), static_cast<std::size_t>(kFiles)) << errno_name(first_errno);
  for (std::size_t i = 0; i < fds.size(); ++i) {
    char buf[8] = {};
    const ssize_t n = ::pread(fds[i], buf, sizeof buf, 0);
    EXPECT_EQ(std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0), std::to_string(i));
    struct stat st {};
    EXPECT_EQ(::fstat(fds[i], &st), 0);
    EXPECT_EQ(st.st_size, static_cast<off_t>(std::to_string(i).size()));
    EXPECT_EQ(::lseek(fds[i], 0, SEEK_HOLE), st.st_size);
  }
  for (int fd : fds) ::close(fd);
}

// A commit through M that races a LOOKUP making a new kernel inode for the
// same file: the daemon holds the LOOKUP of "f" (snapfs_testd's
// test_pause) after its stat, or after its node was chosen, while a commit
// through the hard link "d/h" rewrites the shared inode (in place, where B
// has reflinks). Whatever the paused stat returns, stat right after the
// commit's close() shows the new file; without the repair the old
// attributes would stay cached for the whole cache_timeout. ("h" is in
// another directory, already looked up: the kernel may serialize LOOKUPs
// in one directory.)
class ColdLookupRace : public FuseMount {
protected:
  bool needs_testd() const override { return true; }
  std::string mount_options() const override {
    return "cache_timeout=30,test_pause=" + point() + ":f:" + outside().string();
  }
  virtual std::string point() const = 0;

  void TearDown() override {
    resume();  // never leave the walker blocked in the daemon
    FuseMount::TearDown();
  }

  // stat(M/f) in another thread, whose LOOKUP the daemon holds at point();
  // true once it is held (at most 10 s).
  bool start_held_stat() {
    walker_ = std::thread([this] {
      struct stat st {};
      if (::stat(m("f").c_str(), &st) == 0) seen_ = st.st_size;
      walked_ = true;
    });
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!fs::exists(outside() / "paused") && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(1ms);
    return fs::exists(outside() / "paused");
  }
  // Lets the held LOOKUP go on and waits for its stat to return.
  void resume() {
    if (!walker_.joinable()) return;
    write_file(outside() / "go", "");
    walker_.join();
  }
  bool walked() const { return walked_; }
  off_t seen() const { return seen_; }

  void commit_during_lookup() {
    if (!kernel_has_epochs()) GTEST_SKIP() << "Linux < 6.16: a node new to the kernel is not cached";
    write_file(b("f"), "old");
    fs::create_directory(b("d"));
    ASSERT_EQ(::link(b("f").c_str(), b("d/h").c_str()), 0);
    if (status_field("reflink") != "true")
      GTEST_SKIP() << "no reflinks: a commit to \"d/h\" does not change \"f\"";
    // Opened before the race: its open retires the node "d/h" was cached
    // with, and an inode the kernel evicts during a LOOKUP makes that
    // LOOKUP's attributes uncacheable (the kernel's evict counter), which
    // would hide what this test looks at.
    const int fd = xopen(m("d/h"), O_WRONLY | O_TRUNC);
    ASSERT_GE(fd, 0);
    const bool held = start_held_stat();
    const bool wrote = held && write_str(fd, "new and longer");
    const int closed = xclose(fd);
    const bool raced = !walked();
    resume();
    ASSERT_TRUE(held) << "the LOOKUP of f never reached " << point();
    ASSERT_TRUE(wrote);
    ASSERT_EQ(closed, 0);
    ASSERT_TRUE(raced) << "the commit waited for the paused LOOKUP";
    EXPECT_TRUE(seen() == 3 || seen() == 14) << seen();
    EXPECT_EQ(read_file(b("f")), "new and longer");
    EXPECT_EQ(stat_of(m("f")).st_size, 14) << "the raced LOOKUP's attributes stuck";
    expect_same_stat(m("f"), b("f"));
  }

private:
  std::thread walker_;
  std::atomic<bool> walked_{false};
  std::atomic<off_t> seen_{-1};
};
class ColdLookupRaceAfterStat : public ColdLookupRace {
  std::string point() const override { return "lookup.stat"; }
};
class ColdLookupRaceAfterIntern : public ColdLookupRace {
  std::string point() const override { return "lookup.intern"; }
};
TEST_P(ColdLookupRaceAfterStat, CommitShowsAtOnce) { commit_during_lookup(); }
// With the passthrough hook in, the INIT reply asks for parallel directory
// operations (libfuse 3.14 does not): a LOOKUP in a directory does not wait
// for another one in the same directory (here: held in the daemon).
TEST_P(ColdLookupRaceAfterStat, LookupsInOneDirectoryDoNotWaitForEachOther) {
  if (!kernel_passthrough())
    GTEST_SKIP() << "no passthrough hook: libfuse 3.14 alone lets the kernel serialize them";
  write_file(b("f"), "f");
  write_file(b("g"), "gg");
  const bool held = start_held_stat();
  const off_t g = held ? stat_of(m("g")).st_size : -1;
  const bool overtook = !walked();
  resume();
  ASSERT_TRUE(held) << "the LOOKUP of f never reached lookup.stat";
  EXPECT_EQ(g, 2);
  EXPECT_TRUE(overtook) << "the LOOKUP of g waited for the one of f";
}
TEST_P(ColdLookupRaceAfterIntern, CommitShowsAtOnce) { commit_during_lookup(); }

SNAPFS_INSTANTIATE_MOUNT(Cache);
SNAPFS_INSTANTIATE_MOUNT(ColdLookupRaceAfterStat);
SNAPFS_INSTANTIATE_MOUNT(ColdLookupRaceAfterIntern);
SNAPFS_INSTANTIATE_MOUNT(NoCache);
SNAPFS_INSTANTIATE_MOUNT(ShortCache);
INSTANTIATE_TEST_SUITE_P(Fs, CacheFdLimit, ::testing::Values(FsKind::tmpfs), param_name);

}  // namespace
}  // namespace snapfs::test
