// docs/core.md: after commit(), the path holds exactly the snapshot's bytes and
// length (also after shrinking to an unaligned length: the seed's whole-file
// FICLONE onto a longer file kept its tail or failed with EINVAL); the
// mapping stays usable and private; dropping publishes nothing.
#include "fs_test.hpp"

#include <fcntl.h>

#include <algorithm>
#include <initializer_list>

namespace snapfs::test {
namespace {

class Commit : public LoopFsTest {
protected:
  // The published file must be the snapshot, byte for byte and in length.
  void expect_published(const std::filesystem::path& p, std::string_view expected) {
    const std::string got = read_file(p);
    EXPECT_EQ(got.size(), expected.size());
    EXPECT_TRUE(got == expected) << "published content differs from the snapshot";
    EXPECT_EQ(static_cast<std::size_t>(stat_of(p).st_size), expected.size());
  }
};

struct Resize {
  std::size_t from, to;
};

// Every shape of resize: grow, shrink to aligned and unaligned lengths, to
// zero and from zero, by one byte across a page boundary.
constexpr Resize kResizes[] = {
    {3, 3 * 4096 + 17},  {4096 * 3, 5000}, {4096 * 3, 8192}, {4096 * 3, 0},
    {0, 4096},           {5000, 12288},    {4096, 4095},     {4095, 4097},
    {1 << 20, 4096 + 1},
};

TEST_P(Commit, AfterResizeHoldsExactlyTheSnapshot) {
  for (const auto& [from, to] : kResizes) {
    SCOPED_TRACE("resize " + std::to_string(from) + " -> " + std::to_string(to));
    const auto p = path("f" + std::to_string(from) + "-" + std::to_string(to));
    write_file(p, pattern(from, 1));
    auto m = MmapMut::open(p);
    ASSERT_TRUE(ok(m));
    ASSERT_TRUE(ok(m->resize(to)));
    ASSERT_EQ(m->size(), to);
    // Growth is zero-filled; then overwrite a middle stretch.
    std::string expected = pattern(from, 1).substr(0, std::min(from, to));
    expected.resize(to, '\0');
    EXPECT_TRUE(m->chars() == expected) << "the resized mapping is not the old prefix + zeros";
    if (to > 10) {
      const std::string mid = pattern(to / 2, 2);
      store(*m, to / 4, mid);
      expected.replace(to / 4, mid.size(), mid);
    }
    ASSERT_TRUE(ok(m->commit()));
    expect_published(p, expected);
    EXPECT_TRUE(m->chars() == expected) << "commit changed the mapping";
  }
}

TEST_P(Commit, AfterResizeByCommitAndClose) {
  for (const auto& [from, to] : kResizes) {
    SCOPED_TRACE("resize " + std::to_string(from) + " -> " + std::to_string(to));
    const auto p = path("f" + std::to_string(from) + "-" + std::to_string(to));
    write_file(p, pattern(from, 3));
    auto m = MmapMut::open(p);
    ASSERT_TRUE(ok(m));
    ASSERT_TRUE(ok(m->resize(to)));
    std::string expected = pattern(from, 3).substr(0, std::min(from, to));
    expected.resize(to, '\0');
    if (to > 0) {
      store(*m, to - 1, "!");
      expected.back() = '!';
    }
    ASSERT_TRUE(ok(m->commit_and_close()));
    expect_published(p, expected);
    EXPECT_EQ(m->size(), 0u) << "commit_and_close leaves the object empty";
  }
}

TEST_P(Commit, ShrinkThenGrowZeroFillsInsteadOfResurrecting) {
  const auto p = path("f");
  const std::string old = pattern(4096 * 3, 4);
  write_file(p, old);
  auto m = MmapMut::open(p);
  ASSERT_TRUE(ok(m));
  ASSERT_TRUE(ok(m->resize(5000)));
  ASSERT_TRUE(ok(m->resize(4096 * 3)));
  std::string expected = old.substr(0, 5000);
  expected.resize(4096 * 3, '\0');
  EXPECT_TRUE(m->chars() == expected) << "old bytes came back after shrink + grow";
  ASSERT_TRUE(ok(m->commit()));
  expect_published(p, expected);
}

TEST_P(Commit, RepeatedCommitsFollowEveryLength) {
  const auto p = path("f");
  write_file(p, pattern(4096 * 3, 5));
  auto m = MmapMut::open(p);
  ASSERT_TRUE(ok(m));
  std::uint32_t seed = 100;
  for (std::size_t len : std::initializer_list<std::size_t>{5000, 8192, 0, 1, 4096 * 4 + 3, 4096,
                                                           12287, 0, 7}) {
    SCOPED_TRACE("length " + std::to_string(len));
    ASSERT_TRUE(ok(m->resize(len)));
    const std::string content = pattern(len, seed++);
    store(*m, 0, content);
    ASSERT_TRUE(ok(m->commit()));
    expect_published(p, content);
  }
}

TEST_P(Commit, WritesAfterCommitStayPrivateUntilTheNextCommit) {
  const auto p = path("f");
  write_file(p, pattern(10000, 6));
  auto m = MmapMut::open(p);
  ASSERT_TRUE(ok(m));
  const std::string v1 = pattern(10000, 7);
  store(*m, 0, v1);
  ASSERT_TRUE(ok(m->commit()));
  expect_published(p, v1);

  // With reflinks the published file shares extents with the mapping: these
  // stores must copy on write, not land in the published file.
  const std::string v2 = pattern(10000, 8);
  store(*m, 0, v2);
  EXPECT_TRUE(read_file(p) == v1) << "a store after commit reached the published file";
  auto reader = Mmap::open(p);
  ASSERT_TRUE(ok(reader));
  EXPECT_TRUE(reader->chars() == v1);
  ASSERT_TRUE(ok(m->write_at(9000, as_bytes("via write_at"))));
  EXPECT_TRUE(read_file(p) == v1) << "write_at after commit reached the published file";

  std::string v2w = v2;
  v2w.replace(9000, 12, "via write_at");
  ASSERT_TRUE(ok(m->commit()));
  expect_published(p, v2w);
  EXPECT_TRUE(reader->chars() == v1) << "an earlier reader saw the second commit";
}

TEST_P(Commit, ChangesToThePublishedFileDoNotShowInTheMapping) {
  const auto p = path("f");
  write_file(p, pattern(9000, 9));
  auto m = MmapMut::open(p);
  ASSERT_TRUE(ok(m));
  const std::string mine = pattern(9000, 10);
  store(*m, 0, mine);
  ASSERT_TRUE(ok(m->commit()));
  pwrite_file(p, 100, std::string(5000, 'O'));  // someone else, in place
  EXPECT_TRUE(m->chars() == mine) << "the mapping is not private after commit";
  ASSERT_TRUE(ok(m->commit()));
  expect_published(p, mine);
}

TEST_P(Commit, DropWithoutCommitPublishesNothing) {
  const auto p = path("f");
  const std::string old = pattern(6000, 11);
  write_file(p, old);
  const struct stat before = stat_of(p);
  {
    auto m = MmapMut::open(p);
    ASSERT_TRUE(ok(m));
    store(*m, 0, "changed");
    ASSERT_TRUE(ok(m->resize(100000)));
    ASSERT_TRUE(ok(m->write_at(50000, as_bytes("more"))));
  }
  const struct stat after = stat_of(p);
  EXPECT_TRUE(read_file(p) == old);
  EXPECT_EQ(after.st_ino, before.st_ino);
  EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
  EXPECT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
  EXPECT_EQ(list_dir(work()), std::vector<std::string>{"f"});
}

TEST_P(Commit, WriteAtGrowsTheSnapshot) {
  const auto p = path("f");
  write_file(p, "abc");
  auto m = MmapMut::open(p);
  ASSERT_TRUE(ok(m));
  ASSERT_TRUE(ok(m->write_at(1, as_bytes("XY"))));
  EXPECT_EQ(m->chars(), "aXY");
  ASSERT_TRUE(ok(m->write_at(8190, as_bytes("tail"))));
  std::string expected = "aXY";
  expected.resize(8190, '\0');
  expected += "tail";
  EXPECT_EQ(m->size(), expected.size());
  EXPECT_TRUE(m->chars() == expected);
  ASSERT_TRUE(ok(m->commit()));
  expect_published(p, expected);
}

TEST_P(Commit, CreateLeavesNothingUntilCommit) {
  const auto p = path("new");
  {
    auto m = MmapMut::create(p);
    ASSERT_TRUE(ok(m));
    EXPECT_EQ(m->size(), 0u);
    EXPECT_EQ(list_dir(work()), std::vector<std::string>{});
    ASSERT_TRUE(ok(m->resize(5000)));
    store(*m, 0, "data");
    EXPECT_EQ(list_dir(work()), std::vector<std::string>{});
  }
  EXPECT_EQ(list_dir(work()), std::vector<std::string>{}) << "create() + drop left a file";
}

TEST_P(Commit, CreateThenCommitPublishesANewFile) {
  const UmaskGuard umask_guard(022);
  const auto p = path("new");
  auto m = MmapMut::create(p);
  ASSERT_TRUE(ok(m));
  ASSERT_TRUE(ok(m->write_at(0, as_bytes("Hello world!"))));
  ASSERT_TRUE(ok(m->commit()));
  expect_published(p, "Hello world!");
  const struct stat st = stat_of(p);
  EXPECT_EQ(st.st_mode & 07777, 0644u) << "a new file gets 0666 & ~umask";
  EXPECT_EQ(st.st_uid, ::geteuid());
  EXPECT_EQ(list_dir(work()), std::vector<std::string>{"new"});
}

TEST_P(Commit, CreateCommitOfNothingMakesAnEmptyFile) {
  const auto p = path("empty");
  auto m = MmapMut::create(p);
  ASSERT_TRUE(ok(m));
  ASSERT_TRUE(ok(m->commit()));
  expect_published(p, "");
}

TEST_P(Commit, CreateDoesNotTruncateAnExistingFileBeforeCommit) {
  const auto p = path("f");
  const std::string old = pattern(20000, 12);
  write_file(p, old);
  const ino_t ino = stat_of(p).st_ino;
  auto m = MmapMut::create(p);
  ASSERT_TRUE(ok(m));
  EXPECT_EQ(m->size(), 0u) << "create() starts empty";
  EXPECT_TRUE(read_file(p) == old) << "create() truncated the file";
  EXPECT_EQ(stat_of(p).st_ino, ino);
  ASSERT_TRUE(ok(m->write_at(0, as_bytes("short"))));
  EXPECT_TRUE(read_file(p) == old);
  ASSERT_TRUE(ok(m->commit()));
  expect_published(p, "short");
}

TEST_P(Commit, CreateReplacesAFileThatAppearedMeanwhile) {
  const auto p = path("f");
  auto m = MmapMut::create(p);
  ASSERT_TRUE(ok(m));
  write_file(p, "someone else's much longer content");
  ASSERT_TRUE(ok(m->write_at(0, as_bytes("mine"))));
  ASSERT_TRUE(ok(m->commit()));
  expect_published(p, "mine");
  EXPECT_EQ(list_dir(work()), std::vector<std::string>{"f"});
}

TEST_P(Commit, CreateInAMissingDirectoryFails) {
  auto m = MmapMut::create(path("no-such-dir") / "f");
  EXPECT_TRUE(fails_with(m, ENOENT));
  EXPECT_EQ(list_dir(work()), std::vector<std::string>{});
}

TEST_P(Commit, CommitOntoADirectoryFailsAndLeavesNoLitter) {
  const auto d = path("d");
  ASSERT_EQ(::mkdir(d.c_str(), 0755), 0);
  write_file(d / "inside", "x");
  auto m = MmapMut::create(d);
  ASSERT_TRUE(ok(m));
  ASSERT_TRUE(ok(m->write_at(0, as_bytes("data"))));
  EXPECT_TRUE(fails_with(m->commit(), EISDIR));
  EXPECT_TRUE(S_ISDIR(lstat_of(d).st_mode));
  EXPECT_EQ(read_file(d / "inside"), "x");
  EXPECT_EQ(list_dir(work()), std::vector<std::string>{"d"});
}

TEST_P(Commit, LinkPublishesUnderANewName) {
  const auto p = path("f");
  const auto q = path("g");
  write_file(p, "original");
  auto m = MmapMut::open(p);
  ASSERT_TRUE(ok(m));
  store(*m, 0, "ORIG");
  ASSERT_TRUE(ok(m->link(q)));
  EXPECT_EQ(read_file(q), "ORIGinal");
  EXPECT_EQ(read_file(p), "original") << "link() changed the original";
  EXPECT_EQ(m->size(), 0u) << "link() closes the snapshot";
  EXPECT_EQ(list_dir(work()), (std::vector<std::string>{"f", "g"}));
  EXPECT_EQ(stat_of(q).st_nlink, 1u);
}

TEST_P(Commit, LinkToAnotherFilesystemLeavesNoLitter) {
  const auto p = path("f");
  write_file(p, "original");
  TempDir elsewhere("snapfs-test-other-");
  auto m = MmapMut::open(p);
  ASSERT_TRUE(ok(m));
  store(*m, 0, "ORIG");
  auto r = m->link(elsewhere / "g");
  if (r) {
    EXPECT_EQ(read_file(elsewhere / "g"), "ORIGinal");
  } else {
    EXPECT_TRUE(fails_with(r, EXDEV));
    EXPECT_EQ(list_dir(elsewhere.path()), std::vector<std::string>{});
    EXPECT_EQ(m->chars(), "ORIGinal") << "a failed link() lost the snapshot";
    ASSERT_TRUE(ok(m->commit()));
    EXPECT_EQ(read_file(p), "ORIGinal");
  }
  EXPECT_EQ(list_dir(work()), std::vector<std::string>{"f"});
}

TEST_P(Commit, SymlinkCommitsToTheTargetAndStaysALink) {
  const auto sub = path("sub");
  ASSERT_EQ(::mkdir(sub.c_str(), 0755), 0);
  write_file(sub / "target", "target content");
  const auto link = path("link");
  ASSERT_EQ(::symlink("sub/target", link.c_str()), 0);

  auto m = MmapMut::open(link);
  ASSERT_TRUE(ok(m));
  EXPECT_EQ(m->chars(), "target content");
  store(*m, 0, "TARGET");
  ASSERT_TRUE(ok(m->commit()));
  EXPECT_EQ(read_file(sub / "target"), "TARGET content");
  EXPECT_TRUE(S_ISLNK(lstat_of(link).st_mode)) << "commit replaced the symlink";
  EXPECT_EQ(std::filesystem::read_symlink(link), "sub/target");
  EXPECT_EQ(list_dir(work()), (std::vector<std::string>{"link", "sub"}));
  EXPECT_EQ(list_dir(sub), std::vector<std::string>{"target"});

  ASSERT_TRUE(ok(m->write_at(0, as_bytes("closed"))));
  ASSERT_TRUE(ok(m->commit_and_close()));
  EXPECT_EQ(read_file(sub / "target"), "closed content");
  EXPECT_TRUE(S_ISLNK(lstat_of(link).st_mode));
}

TEST_P(Commit, RelativePathsResolveAgainstTheWorkingDirectory) {
  struct Cwd {  // restored even if an assertion returns early
    int fd = ::open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ~Cwd() {
      if (fd >= 0) {
        (void)!::fchdir(fd);
        ::close(fd);
      }
    }
  } cwd;
  ASSERT_GE(cwd.fd, 0);
  ASSERT_EQ(::chdir(work().c_str()), 0);
  write_file(path("rel"), "relative");
  {
    auto m = MmapMut::open("rel");
    ASSERT_TRUE(ok(m));
    store(*m, 0, "RELA");
    ASSERT_TRUE(ok(m->commit()));
    auto c = MmapMut::create("created");
    ASSERT_TRUE(ok(c));
    ASSERT_TRUE(ok(c->write_at(0, as_bytes("x"))));
    ASSERT_TRUE(ok(c->commit_and_close()));
    auto r = Mmap::open("rel");
    ASSERT_TRUE(ok(r));
    EXPECT_EQ(r->chars(), "RELAtive");
  }
  EXPECT_EQ(read_file(path("rel")), "RELAtive");
  EXPECT_EQ(read_file(path("created")), "x");
}

SNAPFS_INSTANTIATE_ALL_FS(Commit);

}  // namespace
}  // namespace snapfs::test

namespace snapfs::test {
namespace {

// publish() with a staging directory (the daemon's B/.snapfs/staging): the
// temporary name lives there, never in the target's directory, and is gone
// after success and after a failed rename.
class Staging : public LoopFsTest {};

core::UniqueFd open_dir(const std::filesystem::path& p) {
  return core::UniqueFd(::open(p.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
}

TEST_P(Staging, TemporaryNameLivesInTheStagingDirectory) {
  const auto dir = path("d");
  const auto staging = path("staging");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(staging.c_str(), 0700), 0);
  write_file(dir / "f", "old", 0640);
  auto dirfd = open_dir(dir);
  auto stagingfd = open_dir(staging);
  ASSERT_TRUE(dirfd.valid() && stagingfd.valid());

  auto file = core::TmpFile::create_in(dirfd.get());
  ASSERT_TRUE(ok(file));
  ASSERT_EQ(::pwrite(file->fd(), "new content", 11, 0), 11);
  core::PublishOptions opts;
  opts.staging_dir = stagingfd.get();
  ASSERT_TRUE(ok(core::publish(*file, dirfd.get(), "f", opts)));
  EXPECT_EQ(read_file(dir / "f"), "new content");
  EXPECT_EQ(stat_of(dir / "f").st_mode & 07777, 0640u) << "metadata of the replaced file";
  EXPECT_EQ(list_dir(dir), std::vector<std::string>{"f"});
  EXPECT_EQ(list_dir(staging), std::vector<std::string>{});

  // A rename that fails (the target is a directory) leaves no name anywhere.
  ASSERT_EQ(::mkdir((dir / "sub").c_str(), 0755), 0);
  auto file2 = core::TmpFile::create_in(dirfd.get());
  ASSERT_TRUE(ok(file2));
  EXPECT_TRUE(fails_with(core::publish(*file2, dirfd.get(), "sub", opts), EISDIR));
  EXPECT_EQ(list_dir(staging), std::vector<std::string>{});
  EXPECT_EQ(list_dir(dir), (std::vector<std::string>{"f", "sub"}));
}

TEST_P(Staging, AStagingDirectoryOnAnotherFilesystemFallsBackToTheTargetDirectory) {
  TempDir elsewhere("snapfs-test-staging-");
  const auto dir = path("d");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  auto dirfd = open_dir(dir);
  auto stagingfd = open_dir(elsewhere.path());
  auto file = core::TmpFile::create_in(dirfd.get());
  ASSERT_TRUE(ok(file));
  ASSERT_EQ(::pwrite(file->fd(), "x", 1, 0), 1);
  core::PublishOptions opts;
  opts.staging_dir = stagingfd.get();
  ASSERT_TRUE(ok(core::publish(*file, dirfd.get(), "f", opts)));
  EXPECT_EQ(read_file(dir / "f"), "x");
  EXPECT_EQ(list_dir(dir), std::vector<std::string>{"f"});
  EXPECT_EQ(list_dir(elsewhere.path()), std::vector<std::string>{});
}

SNAPFS_INSTANTIATE_ALL_FS(Staging);

}  // namespace
}  // namespace snapfs::test

namespace snapfs::test {
namespace {

// A sparse file stays sparse through a snapshot and a commit, whether the
// filesystem clones (XFS, btrfs) or copies (ext4, tmpfs: the copy skips holes
// with SEEK_DATA/SEEK_HOLE instead of writing them out as zeros).
class Sparse : public LoopFsTest {};

TEST_P(Sparse, SnapshotAndCommitKeepHoles) {
  const auto p = path("sparse");
  constexpr std::size_t kSize = 8u << 20;  // 8 MiB, data only in the last 4 bytes
  {
    core::UniqueFd fd(::open(p.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(::pwrite(fd.get(), "tail", 4, kSize - 4), 4);
  }
  const auto blocks_before = stat_of(p).st_blocks;
  ASSERT_LT(blocks_before, 256) << "the filesystem did not make a sparse file";

  auto m = MmapMut::open(p);
  ASSERT_TRUE(ok(m));
  ASSERT_EQ(m->size(), kSize);
  // Only the two ends are touched: on tmpfs, even a read fault of a hole in
  // a MAP_SHARED mapping allocates a page, which is not what is tested here.
  EXPECT_EQ(m->chars().substr(kSize - 4), "tail");
  store(*m, 0, "head");
  ASSERT_TRUE(ok(m->commit_and_close()));

  const auto st = stat_of(p);
  EXPECT_EQ(static_cast<std::size_t>(st.st_size), kSize);
  EXPECT_LT(st.st_blocks, 512) << "holes were written out as data";
  const std::string got = read_file(p);
  EXPECT_EQ(got.substr(0, 4), "head");
  EXPECT_EQ(got.substr(kSize - 4), "tail");
  EXPECT_EQ(got.find_first_not_of('\0', 4), kSize - 4);
}

SNAPFS_INSTANTIATE_ALL_FS(Sparse);

}  // namespace
}  // namespace snapfs::test

namespace snapfs::test {
namespace {

// publish_in_place(): new contents in the existing inode, so every hard link
// sees them (docs/semantics.md#hard-links); only where that is one step
// (reflinks, not shrinking).
class InPlace : public LoopFsTest {};

TEST_P(InPlace, HardLinksShareTheNewContent) {
  const auto a = path("a");
  const auto b = path("b");
  write_file(a, "one\n", 0640);
  ASSERT_EQ(::link(a.c_str(), b.c_str()), 0);
  const auto ino = stat_of(a).st_ino;
  core::UniqueFd target(::open(b.c_str(), O_WRONLY | O_CLOEXEC));
  ASSERT_TRUE(target.valid());
  core::UniqueFd dir(::open(work().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  auto file = core::TmpFile::create_in(dir.get());
  ASSERT_TRUE(ok(file));
  ASSERT_EQ(::pwrite(file->fd(), "one\ntwo\n", 8, 0), 8);

  auto r = core::publish_in_place(*file, target.get());
  if (!expects_reflink()) {
    EXPECT_TRUE(fails_with(r, EOPNOTSUPP));
    EXPECT_EQ(read_file(a), "one\n") << "a refused in-place publish changed the file";
    return;
  }
  ASSERT_TRUE(ok(r));
  EXPECT_EQ(read_file(a), "one\ntwo\n");
  EXPECT_EQ(read_file(b), "one\ntwo\n");
  EXPECT_EQ(stat_of(a).st_ino, ino);
  EXPECT_EQ(stat_of(a).st_nlink, 2u);
  EXPECT_EQ(stat_of(a).st_mode & 07777, 0640u);
  EXPECT_EQ(list_dir(work()), (std::vector<std::string>{"a", "b"}));
}

TEST_P(InPlace, AShrinkIsRefusedAndChangesNothing) {
  const auto a = path("a");
  write_file(a, std::string(10000, 'x'));
  core::UniqueFd target(::open(a.c_str(), O_WRONLY | O_CLOEXEC));
  core::UniqueFd dir(::open(work().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  auto file = core::TmpFile::create_in(dir.get());
  ASSERT_TRUE(ok(file));
  ASSERT_EQ(::pwrite(file->fd(), "short", 5, 0), 5);
  EXPECT_TRUE(fails_with(core::publish_in_place(*file, target.get()), EOPNOTSUPP));
  EXPECT_EQ(read_file(a), std::string(10000, 'x'));
}

SNAPFS_INSTANTIATE_ALL_FS(InPlace);

}  // namespace
}  // namespace snapfs::test
