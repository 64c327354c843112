// docs/core.md: a commit keeps the published file's mode, owner, group and
// extended attributes, POSIX ACLs included, on every path: commit() and
// commit_and_close(), by reflink (xfs, btrfs) and by copy (ext4, tmpfs).
// The seed's copy path published mode 0600 owned by the committer.
#include "fs_test.hpp"

#include <sys/xattr.h>

#include <map>

namespace snapfs::test {
namespace {

// posix_acl_xattr tags
constexpr std::uint16_t kUserObj = 0x01, kUser = 0x02, kGroupObj = 0x04, kGroup = 0x08,
                        kMask = 0x10, kOther = 0x20;

enum class How { commit, commit_and_close, create_then_commit, commit_twice };
constexpr How kAllWays[] = {How::commit, How::commit_and_close, How::create_then_commit,
                            How::commit_twice};

const char* name_of(How h) {
  switch (h) {
    case How::commit: return "commit()";
    case How::commit_and_close: return "commit_and_close()";
    case How::create_then_commit: return "create() + commit()";
    case How::commit_twice: return "commit() twice";
  }
  return "?";
}

// Replaces the content of `p` with `content` the given way.
core::Result<void> publish_content(const std::filesystem::path& p, How how,
                                   std::string_view content) {
  auto m = how == How::create_then_commit ? MmapMut::create(p) : MmapMut::open(p);
  if (!m) return std::move(m).error();
  SNAPFS_TRY(m->resize(content.size()));
  store(*m, 0, content);
  switch (how) {
    case How::commit:
    case How::create_then_commit: return m->commit();
    case How::commit_and_close: return m->commit_and_close();
    case How::commit_twice:
      SNAPFS_TRY(m->commit());
      store(*m, 0, "2");
      return m->commit();
  }
  return {};
}

struct Meta {
  mode_t mode;
  uid_t uid;
  gid_t gid;
  std::map<std::string, std::string> xattrs;
  friend bool operator==(const Meta&, const Meta&) = default;
};

Meta meta_of(const std::filesystem::path& p) {
  const struct stat st = lstat_of(p);
  return {st.st_mode, st.st_uid, st.st_gid, xattrs_of(p)};
}

std::ostream& operator<<(std::ostream& os, const Meta& m) {
  os << "mode " << std::oct << m.mode << std::dec << " owner " << m.uid << ":" << m.gid
     << " xattrs {";
  for (const auto& [k, v] : m.xattrs) os << " " << k << "(" << v.size() << " bytes)";
  return os << " }";
}

void set_xattr(const std::filesystem::path& p, const char* name, const std::string& value) {
  if (::lsetxattr(p.c_str(), name, value.data(), value.size(), 0) == -1)
    throw std::system_error(errno, std::system_category(), std::string("lsetxattr ") + name);
}

class Metadata : public LoopFsTest {
protected:
  // Makes `p` with content, owner kUid:kGid, optional xattrs/ACL, and `mode`
  // (last, as chmod also sets the ACL mask). Returns its metadata.
  Meta prepare(const std::filesystem::path& p, mode_t mode, bool user_xattrs, bool acl) {
    write_file(p, "the old content", 0644);
    EXPECT_EQ(::chown(p.c_str(), kUid, kGid), 0) << errno_name(errno);
    if (user_xattrs) {
      set_xattr(p, "user.snapfs.text", "alpha");
      set_xattr(p, "user.snapfs.binary", std::string("\0\1\2\xff", 4));
      set_xattr(p, "user.snapfs.empty", "");
    }
    if (acl) {
      set_xattr(p, "system.posix_acl_access",
                acl_xattr({{kUserObj, 6}, {kUser, 6, kUid}, {kUser, 4, 4321}, {kGroupObj, 4},
                           {kGroup, 4, kGid}, {kMask, 6}, {kOther, 0}}));
    }
    EXPECT_EQ(::chmod(p.c_str(), mode), 0) << errno_name(errno);
    return meta_of(p);
  }

  void expect_kept_by_every_way(mode_t mode, bool user_xattrs, bool acl) {
    int n = 0;
    for (How how : kAllWays) {
      SCOPED_TRACE(std::string(name_of(how)) + ", mode " + std::to_string(mode));
      const auto p = path("f" + std::to_string(n++));
      const Meta before = prepare(p, mode, user_xattrs, acl);
      if (acl) {
        ASSERT_TRUE(before.xattrs.count("system.posix_acl_access")) << before;
      }
      const std::string content = pattern(5000, static_cast<std::uint32_t>(n));
      ASSERT_TRUE(ok(publish_content(p, how, content)));
      EXPECT_EQ(meta_of(p), before);
      std::string expected = content;
      if (how == How::commit_twice) expected[0] = '2';
      EXPECT_TRUE(read_file(p) == expected) << "content was not published";
    }
    std::vector<std::string> names;
    for (int i = 0; i < n; ++i) names.push_back("f" + std::to_string(i));
    EXPECT_EQ(list_dir(work()), names) << "a temporary name was left behind";
  }
};

TEST_P(Metadata, ModeOwnerAndGroupAreKept) {
  for (mode_t mode : {0640u, 0751u, 0600u, 0444u, 0604u}) expect_kept_by_every_way(mode, false, false);
}

// chown(2) clears setuid/setgid even for root, so a commit that sets the
// owner after the mode loses them.
TEST_P(Metadata, SetuidAndSetgidBitsAreKept) {
  for (mode_t mode : {04755u, 02755u, 06750u}) expect_kept_by_every_way(mode, false, false);
}

TEST_P(Metadata, UserXattrsAreKept) {
  if (!fs().features().user_xattr) GTEST_SKIP() << fs().name() << " refuses user.* xattrs";
  expect_kept_by_every_way(0640, true, false);
}

TEST_P(Metadata, PosixAclsAreKept) {
  if (!fs().features().posix_acl) GTEST_SKIP() << fs().name() << " has no POSIX ACLs";
  expect_kept_by_every_way(0660, fs().features().user_xattr, true);
}

TEST_P(Metadata, ADefaultAclOfTheDirectoryIsNotAddedToTheFile) {
  if (!fs().features().posix_acl) GTEST_SKIP() << fs().name() << " has no POSIX ACLs";
  const auto p = path("f");
  const Meta before = prepare(p, 0640, false, false);
  ASSERT_FALSE(before.xattrs.count("system.posix_acl_access"));
  // From now on every new inode in work/ (our O_TMPFILE too) inherits an ACL
  // granting user 4321 rwx; the published file must not.
  set_xattr(work(), "system.posix_acl_default",
            acl_xattr({{kUserObj, 7}, {kUser, 7, 4321}, {kGroupObj, 5}, {kMask, 7}, {kOther, 5}}));
  for (How how : kAllWays) {
    SCOPED_TRACE(name_of(how));
    ASSERT_TRUE(ok(publish_content(p, how, "new")));
    EXPECT_EQ(meta_of(p), before);
  }
}

TEST_P(Metadata, ChangesMadeWhileOpenAreKept) {
  const auto p = path("f");
  prepare(p, 0640, false, false);
  auto m = MmapMut::open(p);
  ASSERT_TRUE(ok(m));
  ASSERT_EQ(::chown(p.c_str(), 4321, 8765), 0);
  ASSERT_EQ(::chmod(p.c_str(), 0604), 0);
  if (fs().features().user_xattr) set_xattr(p, "user.snapfs.later", "set while open");
  const Meta changed = meta_of(p);
  ASSERT_TRUE(ok(m->write_at(0, as_bytes("NEW"))));
  ASSERT_TRUE(ok(m->commit()));
  EXPECT_EQ(meta_of(p), changed);
  EXPECT_EQ(read_file(p), "NEW old content");
}

TEST_P(Metadata, ANewFileGetsTheUmaskModeAndTheCallersIds) {
  const UmaskGuard umask_guard(027);
  const auto p = path("new");
  ASSERT_TRUE(ok(publish_content(p, How::create_then_commit, "x")));
  const struct stat st = lstat_of(p);
  EXPECT_EQ(st.st_mode, S_IFREG | 0640u);
  EXPECT_EQ(st.st_uid, ::geteuid());
  EXPECT_EQ(st.st_gid, ::getegid());
}

SNAPFS_INSTANTIATE_ALL_FS(Metadata);

}  // namespace
}  // namespace snapfs::test
