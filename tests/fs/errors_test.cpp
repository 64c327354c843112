// docs/core.md: errors are values carrying the exact errno, the failing call and
// the path; files that are not regular files are refused without blocking;
// each filesystem gets the clone method it can do.
#include "fs_test.hpp"

#include <snapfs/core/publish.hpp>

#include <fcntl.h>

#include <sys/sysmacros.h>

namespace snapfs::test {
namespace {

class Errors : public LoopFsTest {};

TEST_P(Errors, MissingFileIsEnoentWithOpAndPath) {
  const auto p = path("missing-file");
  for (int i = 0; i < 2; ++i) {
    auto r = i == 0 ? Mmap::open(p).error() : MmapMut::open(p).error();
    SCOPED_TRACE(i == 0 ? "Mmap::open" : "MmapMut::open");
    EXPECT_EQ(r.value(), ENOENT) << r.message();
    EXPECT_EQ(r.code(), std::errc::no_such_file_or_directory);
    EXPECT_STRNE(r.op(), "") << "the Error does not say which call failed";
    EXPECT_NE(r.path().find("missing-file"), std::string::npos) << "path: " << r.path();
    EXPECT_NE(r.message().find("missing-file"), std::string::npos) << r.message();
    EXPECT_NE(r.message().find(std::strerror(ENOENT)), std::string::npos) << r.message();
  }
  EXPECT_TRUE(fails_with(MmapMut::open(path("no-dir") / "f"), ENOENT));
  EXPECT_EQ(list_dir(work()), std::vector<std::string>{});
}

TEST_P(Errors, DirectoryIsEisdir) {
  const auto d = path("dir");
  ASSERT_EQ(::mkdir(d.c_str(), 0755), 0);
  EXPECT_TRUE(fails_with(Mmap::open(d), EISDIR));
  EXPECT_TRUE(fails_with(MmapMut::open(d), EISDIR));
  EXPECT_TRUE(fails_with(Mmap::open(work()), EISDIR));
  EXPECT_EQ(list_dir(work()), std::vector<std::string>{"dir"});
  EXPECT_EQ(list_dir(d), std::vector<std::string>{});
}

// open(2) of a FIFO without a writer blocks; the engine must not (it would
// hang the caller, or a daemon thread). Run in a child with a deadline so a
// regression fails the test instead of hanging it.
TEST_P(Errors, FifoIsEinvalAndDoesNotBlock) {
  const auto f = path("fifo");
  ASSERT_EQ(::mkfifo(f.c_str(), 0644), 0);
  const auto status = run_in_child(
      [&] {
        auto a = fails_with(Mmap::open(f), EINVAL);
        auto b = fails_with(MmapMut::open(f), EINVAL);
        if (!a) std::fprintf(stderr, "Mmap::open(fifo): %s\n", a.message());
        if (!b) std::fprintf(stderr, "MmapMut::open(fifo): %s\n", b.message());
        return a && b ? 0 : 1;
      },
      10s);
  EXPECT_FALSE(status.timed_out) << "opening a FIFO blocked";
  EXPECT_TRUE(status.ok()) << status.describe();
  EXPECT_TRUE(S_ISFIFO(lstat_of(f).st_mode));
  EXPECT_EQ(list_dir(work()), std::vector<std::string>{"fifo"});
}

TEST_P(Errors, DeviceNodeIsEinval) {
  const auto dev = path("null");
  ASSERT_EQ(::mknod(dev.c_str(), S_IFCHR | 0666, makedev(1, 3)), 0) << errno_name(errno);
  EXPECT_TRUE(fails_with(Mmap::open(dev), EINVAL));
  EXPECT_TRUE(fails_with(MmapMut::open(dev), EINVAL));
}

TEST_P(Errors, DanglingSymlinkIsEnoent) {
  const auto l = path("dangling");
  ASSERT_EQ(::symlink("nowhere", l.c_str()), 0);
  EXPECT_TRUE(fails_with(Mmap::open(l), ENOENT));
  EXPECT_TRUE(fails_with(MmapMut::open(l), ENOENT));
  EXPECT_TRUE(S_ISLNK(lstat_of(l).st_mode));
  EXPECT_EQ(list_dir(work()), std::vector<std::string>{"dangling"});
}

TEST_P(Errors, CallsOnAClosedSnapshotFailWithoutCrashing) {
  const auto p = path("f");
  write_file(p, "content");
  auto m = MmapMut::open(p);
  ASSERT_TRUE(ok(m));
  ASSERT_TRUE(ok(m->commit_and_close()));
  EXPECT_EQ(m->size(), 0u);
  EXPECT_FALSE(m->commit());
  EXPECT_FALSE(m->commit_and_close());
  EXPECT_FALSE(m->resize(10));
  EXPECT_FALSE(m->write_at(0, as_bytes("x")));
  EXPECT_FALSE(m->link(path("g")));
  EXPECT_EQ(read_file(p), "content");
  EXPECT_EQ(list_dir(work()), std::vector<std::string>{"f"});
}

// Gate on what the filesystem can do (probed by the fixture), and check the
// probe against what we built: xfs with reflink=1 and btrfs must reflink.
TEST_P(Errors, CloneMethodMatchesTheFilesystem) {
  const auto& feat = fs().features();
  ASSERT_TRUE(feat.tmpfile) << fs().name() << " has no O_TMPFILE";
  if (expects_reflink()) {
    EXPECT_TRUE(feat.reflink) << "FICLONE failed: " << errno_name(feat.reflink_errno);
  } else {
    EXPECT_FALSE(feat.reflink);
    EXPECT_EQ(feat.reflink_errno, EOPNOTSUPP) << errno_name(feat.reflink_errno);
  }
  RecordProperty("ficlone", feat.reflink ? "ok" : errno_name(feat.reflink_errno));
  const CloneMethod expected = feat.reflink ? CloneMethod::reflink : CloneMethod::copy;

  const auto p = path("f");
  write_file(p, pattern(100000, 1));
  auto r = Mmap::open(p);
  ASSERT_TRUE(ok(r));
  EXPECT_EQ(r->clone_method(), expected) << core::to_string(r->clone_method());
  auto m = MmapMut::open(p);
  ASSERT_TRUE(ok(m));
  EXPECT_EQ(m->clone_method(), expected) << core::to_string(m->clone_method());
  ASSERT_TRUE(ok(m->commit()));
  EXPECT_EQ(m->clone_method(), expected) << "after commit";
  EXPECT_STREQ(core::to_string(CloneMethod::reflink), "reflink");
  EXPECT_STREQ(core::to_string(CloneMethod::copy), "copy");
}

// clone_contents() and TmpFile directly: the primitives under every snapshot.
TEST_P(Errors, TmpFileIsUnnamedAndPrivate) {
  const int dfd = ::open(work().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dfd, 0);
  auto t = core::TmpFile::create_in(dfd);
  ::close(dfd);
  ASSERT_TRUE(ok(t));
  EXPECT_TRUE(t->anonymous());
  struct stat st {};
  ASSERT_EQ(::fstat(t->fd(), &st), 0);
  EXPECT_EQ(st.st_nlink, 0u) << "an O_TMPFILE has no name";
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(list_dir(work()), std::vector<std::string>{});

  const std::string content = pattern(3 * 4096 + 5, 9);
  write_file(path("src"), content);
  const int src = ::open(path("src").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(src, 0);
  auto method = core::clone_contents(t->fd(), src);
  ::close(src);
  ASSERT_TRUE(ok(method));
  ASSERT_EQ(::fstat(t->fd(), &st), 0);
  EXPECT_EQ(static_cast<std::size_t>(st.st_size), content.size());
  std::string back(content.size(), '\0');
  EXPECT_EQ(::pread(t->fd(), back.data(), back.size(), 0), static_cast<ssize_t>(back.size()));
  EXPECT_TRUE(back == content);
}

// The fallback for filesystems without O_TMPFILE: a named private file. Its
// name exists while the object holds it; publish moves it into place (or
// links it, no_replace), and a file never published leaves nothing.
TEST_P(Errors, NamedTmpFileLeavesOnlyWhatWasPublished) {
  std::filesystem::create_directory(path("staging"));
  const int sfd = ::open(path("staging").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  const int dfd = ::open(work().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(sfd, 0);
  ASSERT_GE(dfd, 0);
  {
    auto dropped = core::TmpFile::create_named_in(sfd, "id-");
    ASSERT_TRUE(ok(dropped));
    EXPECT_TRUE(dropped->staged());
    const auto names = list_dir(path("staging"));
    ASSERT_EQ(names.size(), 1u);
    EXPECT_EQ(names[0].rfind("id-", 0), 0u) << names[0];
    EXPECT_EQ(names[0].size(), 3u + 16u + 4u) << names[0];
    struct stat st {};
    ASSERT_EQ(::fstat(dropped->fd(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    core::TmpFile moved = std::move(*dropped);  // the name goes with the file
    EXPECT_EQ(list_dir(path("staging")).size(), 1u);
  }
  EXPECT_EQ(list_dir(path("staging")), std::vector<std::string>{}) << "dropped: no name left";

  write_file(path("f"), "old");
  auto mine = core::TmpFile::create_named_in(sfd, "id-");
  ASSERT_TRUE(ok(mine));
  ASSERT_EQ(::pwrite(mine->fd(), "new", 3, 0), 3);
  ASSERT_TRUE(ok(core::publish(*mine, dfd, "f", core::PublishOptions{})));
  EXPECT_FALSE(mine->staged());
  EXPECT_EQ(read_file(path("f")), "new");
  EXPECT_EQ(list_dir(path("staging")), std::vector<std::string>{});

  auto excl = core::TmpFile::create_named_in(sfd, "id-");
  ASSERT_TRUE(ok(excl));
  core::PublishOptions no_replace;
  no_replace.no_replace = true;
  auto refused = core::publish(*excl, dfd, "f", no_replace);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().value(), EEXIST);
  EXPECT_EQ(read_file(path("f")), "new");
  ASSERT_TRUE(ok(core::publish(*excl, dfd, "g", no_replace)));
  EXPECT_EQ(list_dir(path("staging")), std::vector<std::string>{});
  struct stat g {};
  ASSERT_EQ(::stat(path("g").c_str(), &g), 0);
  EXPECT_EQ(g.st_nlink, 1u) << "linked to its name, its temporary one removed";
  ::close(sfd);
  ::close(dfd);
}

SNAPFS_INSTANTIATE_ALL_FS(Errors);

}  // namespace
}  // namespace snapfs::test
