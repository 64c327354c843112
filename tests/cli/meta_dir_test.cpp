// `snapfs mount` and B/.snapfs (fuse/conflicts.cpp, docs/design-conflicts.md):
// a .snapfs that is not the daemon's own is refused with one line that says
// why and how to fix it; records the daemon cannot trust never hang
// `snapfs conflicts`; names are printed escaped. Label mount: as root.
#include "cli_support.hpp"

#include "exit_codes.hpp"
#include "report.hpp"
#include "support/peer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

namespace snapfs::clitest {
namespace {

RunOptions within(std::chrono::milliseconds t) {
  RunOptions o;
  o.timeout = t;
  return o;
}

struct Dirs {
  Scratch s;
  fs::path b, m;
  Dirs() : b(s.mkdir("b")), m(s.mkdir("m")) { write_file(b / "f", "published\n"); }
};

// The daemons of `s` have exited (at most 10 s after their unmount).
bool daemon_gone(const Scratch& s) {
  return wait_until([&] { return processes_mentioning(s.path().string()).empty(); }, 10s);
}

// Mounts (daemonized, then in the foreground) and expects the refusal: exit
// 1, one line on stderr containing `what`, nothing mounted, B unchanged.
void expect_refused(const Dirs& d, const std::string& what) {
  const auto before = tree_digest(d.b);
  for (const bool foreground : {false, true}) {
    std::vector<std::string> argv{snapfs_bin(), "mount"};
    if (foreground) argv.push_back("-f");
    argv.push_back(d.b.string());
    argv.push_back(d.m.string());
    const Outcome r = run(argv, within(20s));
    SCOPED_TRACE(foreground ? "snapfs mount -f" : "snapfs mount");
    EXPECT_EQ(r.code, cli::exit_code::failure) << r.describe();
    EXPECT_TRUE(one_line_error(r)) << r.describe();
    EXPECT_NE(r.err.find(what), std::string::npos) << r.describe();
    EXPECT_FALSE(mount_at(d.m)) << "mounted anyway";
    EXPECT_EQ(tree_digest(d.b), before) << "the refused mount changed B";
  }
}

// A B made read-only after it was served (its B/.snapfs exists) still
// mounts: the daemon cannot register among the daemons over B, and needs
// not, since nothing can commit.
TEST(MountMetaDir, AReadOnlyBackingServedBeforeStillMounts) {
  SNAPFS_REQUIRE_DAEMON();
  Scratch s;
  const fs::path b = s.mkdir("b"), m = s.mkdir("m");
  ASSERT_EQ(::mount("snapfs-test", b.c_str(), "tmpfs", 0, "size=4m"), 0) << std::strerror(errno);
  write_file(b / "f", "published\n");
  ASSERT_EQ(run({snapfs_bin(), "mount", b, m}).code, 0);
  ASSERT_EQ(run({snapfs_bin(), "umount", m}).code, 0);
  ASSERT_TRUE(fs::is_directory(b / ".snapfs" / "daemons"));
  ASSERT_EQ(::mount(nullptr, b.c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr), 0)
      << std::strerror(errno);
  const Outcome r = run({snapfs_bin(), "mount", b, m});
  EXPECT_EQ(r.code, 0) << r.describe();
  EXPECT_EQ(read_file(m / "f"), "published\n");
  EXPECT_EQ(run({snapfs_bin(), "umount", m}).code, 0);
  ::umount2(b.c_str(), 0);
}

TEST(MountMetaDir, SymlinkIsRefused) {
  SNAPFS_REQUIRE_DAEMON();
  Dirs d;
  const fs::path elsewhere = d.s.mkdir("elsewhere", 0700);
  fs::create_directory_symlink(elsewhere, d.b / ".snapfs");
  expect_refused(d, (d.b / ".snapfs").string() + " is a symbolic link, not a directory; remove it");
  EXPECT_TRUE(fs::is_empty(elsewhere)) << "something was made through the symlink";
}

TEST(MountMetaDir, AnotherUsersDirectoryIsRefused) {
  SNAPFS_REQUIRE_DAEMON();
  Dirs d;
  d.s.mkdir("b/.snapfs", 0700, 1000, 1000);
  expect_refused(d, (d.b / ".snapfs").string() +
                        " is owned by uid 1000, not by the daemon's user (uid 0); remove it or "
                        "chown it");
}

TEST(MountMetaDir, GroupOrOtherAccessIsRefused) {
  SNAPFS_REQUIRE_DAEMON();
  Dirs d;
  d.s.mkdir("b/.snapfs", 0755);
  expect_refused(d, (d.b / ".snapfs").string() +
                        " has mode 0755, not 0700 (no access for group or others); remove it or "
                        "chmod it to 0700");
}

TEST(MountMetaDir, ForeignConflictsDirectoryIsRefused) {
  SNAPFS_REQUIRE_DAEMON();
  Dirs d;
  d.s.mkdir("b/.snapfs", 0700);
  d.s.mkdir("b/.snapfs/conflicts", 0777);
  ASSERT_EQ(::chmod((d.b / ".snapfs/conflicts").c_str(), 0777), 0);
  expect_refused(d, (d.b / ".snapfs/conflicts").string() + " has mode 0777");
}

TEST(MountMetaDir, OwnDirectoryIsMade0700EvenInASetgidBacking) {
  SNAPFS_REQUIRE_DAEMON();
  Dirs d;
  // mkdir in a setgid directory makes a setgid directory (02700): the daemon
  // must set the mode it checks for, not refuse what it just made.
  ASSERT_EQ(::chmod(d.b.c_str(), 02755), 0);
  const Outcome r = run({snapfs_bin(), "mount", d.b, d.m});
  ASSERT_EQ(r.code, 0) << r.describe();
  EXPECT_EQ(run({snapfs_bin(), "umount", d.m}).code, 0);
  EXPECT_TRUE(daemon_gone(d.s));
  for (const char* p : {".snapfs", ".snapfs/staging", ".snapfs/conflicts"}) {
    struct stat st {};
    ASSERT_EQ(::lstat((d.b / p).c_str(), &st), 0) << p;
    EXPECT_TRUE(S_ISDIR(st.st_mode)) << p;
    EXPECT_EQ(st.st_mode & 07777, 0700u) << p;
    EXPECT_EQ(st.st_uid, 0u) << p;
  }
  // And a second mount accepts what the first made.
  ASSERT_EQ(run({snapfs_bin(), "mount", d.b, d.m}).code, 0);
  EXPECT_EQ(run({snapfs_bin(), "umount", d.m}).code, 0);
  EXPECT_TRUE(daemon_gone(d.s));
}

TEST(MountMetaDir, PlantedFifoAndSymlinkRecordsDoNotHangConflicts) {
  SNAPFS_REQUIRE_DAEMON();
  Dirs d;
  ASSERT_EQ(run({snapfs_bin(), "mount", d.b, d.m}).code, 0);
  // What only root could plant in the daemon's 0700 directory; the daemon
  // must still never block on it (a FIFO's open waits for a writer) nor
  // follow it (a record elsewhere would show what it points at).
  const fs::path c = d.b / ".snapfs/conflicts";
  ASSERT_EQ(::mkfifo((c / "x.json").c_str(), 0600), 0);
  write_file(d.s / "outside.json",
             "{\"id\":\"planted\",\"path\":\"secret\",\"uid\":0,\"size\":1}\n");
  fs::create_symlink(d.s / "outside.json", c / "y.json");
  // A deadline, not a sleep: a blocked daemon would answer never.
  const Outcome r = run({snapfs_bin(), "conflicts", d.m}, within(10s));
  const Outcome j = run({snapfs_bin(), "conflicts", "--json", d.m}, within(10s));
  const Outcome st = run({snapfs_bin(), "status", "--json", d.m}, within(10s));
  EXPECT_EQ(run({snapfs_bin(), "umount", d.m}, within(20s)).code, 0);
  EXPECT_TRUE(daemon_gone(d.s));
  EXPECT_FALSE(r.timed_out) << "snapfs conflicts hung on a FIFO: " << r.describe();
  EXPECT_EQ(r.code, 0) << r.describe();
  EXPECT_EQ(r.out, "no conflicts\n") << r.describe();
  EXPECT_EQ(j.out, "[]\n") << j.describe();
  EXPECT_EQ(st.code, 0) << st.describe();
  EXPECT_NE(st.out.find("\"conflicts\":0"), std::string::npos) << st.describe();
  // Recovery at the next mount leaves both alone: neither is a record of ours.
  ASSERT_EQ(run({snapfs_bin(), "mount", d.b, d.m}, within(20s)).code, 0);
  EXPECT_EQ(run({snapfs_bin(), "umount", d.m}).code, 0);
  EXPECT_TRUE(daemon_gone(d.s));
  EXPECT_TRUE(fs::is_fifo(fs::symlink_status(c / "x.json")));
  EXPECT_TRUE(fs::is_symlink(fs::symlink_status(c / "y.json")));
  EXPECT_EQ(read_file(d.s / "outside.json").substr(0, 6), "{\"id\":");
}

TEST(MountMetaDir, ConflictsShowsAnEvilNameEscaped) {
  SNAPFS_REQUIRE_DAEMON();
  Dirs d;
  // ESC ] 0 ; ... BEL sets a terminal's title; CSI (U+009B) and a raw 0x9B
  // byte start control sequences; 0xff is not UTF-8; \n would forge a line.
  const std::string evil = "t\x1b]0;pwned\x07\xc2\x9b" "2J\x9b\xff\nx";
  write_file(d.b / evil, "v1\n");
  // The losing writer is another process: one process's opens share its
  // version and never conflict.
  test::Peer peer;  // before any file is open
  ASSERT_EQ(run({snapfs_bin(), "mount", d.b, d.m}).code, 0);
  const int a = ::open((d.m / evil).c_str(), O_WRONLY | O_CLOEXEC);
  const int b = peer.open(d.m / evil, O_WRONLY);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  ASSERT_EQ(::write(a, "first\n", 6), 6);
  ASSERT_TRUE(peer.write(b, "second\n"));
  EXPECT_EQ(::close(a), 0);
  EXPECT_NE(peer.close(b), 0) << "the second close() should lose";
  const Outcome c = run({snapfs_bin(), "conflicts", d.m});
  const Outcome cj = run({snapfs_bin(), "conflicts", "--json", d.m});
  EXPECT_EQ(run({snapfs_bin(), "umount", d.m}).code, 0);
  EXPECT_TRUE(daemon_gone(d.s));
  ASSERT_EQ(c.code, 0) << c.describe();
  EXPECT_NE(c.out.find("t\\x1b]0;pwned\\x07\\u009b2J\\x9b\\xff\\x0ax"), std::string::npos)
      << c.describe();
  for (const std::string* out : {&c.out, &cj.out}) {
    for (const char ch : *out) {
      const auto u = static_cast<unsigned char>(ch);
      EXPECT_TRUE(ch == '\n' || (u >= 0x20 && u < 0x7f)) << "raw byte " << static_cast<int>(u)
                                                          << " in " << *out;
    }
  }
  // The JSON keeps the name exactly (\udcNN for the bytes that are not UTF-8).
  const auto doc = cli::parse_json(cj.out);
  ASSERT_EQ(doc.items.size(), 1u) << cj.out;
  EXPECT_EQ(doc.items[0].find("path")->text, evil);
}

}  // namespace
}  // namespace snapfs::clitest
