// B/.snapfs as a privilege boundary (fuse/conflicts.cpp): the daemon runs as
// root and serves every user, so it must never use a .snapfs someone else
// made, never block on or follow what is planted in it, never show one user
// another's conflicts, and never write a raw control character of a name to
// its log. The `snapfs` command's side is in tests/cli/meta_dir_test.cpp.
#include "fuse_mount.hpp"
#include "mount_util.hpp"
#include "support/peer.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace snapfs::test {
namespace {

using namespace std::chrono_literals;

// ---------------------------------------------------------------------------
// The mount is refused. Both front ends: snapfs_testd calls serve() directly
// (the daemon's own check, fuse/conflicts.cpp prepare_meta_dir()), and
// `snapfs mount -f` (which checks before it starts the daemon,
// mount/mount_cmd.cpp).

struct Attempt {
  bool mounted = false;    // it mounted (then it was unmounted again)
  bool exited = false;
  int status = 0;          // waitpid status, if exited
  std::string log;
};

// Runs the front end on B and M in the foreground until it exits or the
// mount appears (deadline 20 s, polled: no sleep-and-hope); a mount that
// appears is taken down again so that the test leaves nothing behind.
Attempt try_mount(const std::string& front, const fs::path& b, const fs::path& m,
                  const fs::path& log) {
  std::vector<std::string> args;
  if (front == "cli") {
#ifdef SNAPFS_CLI
    args = {SNAPFS_CLI, "mount", "-f"};
#endif
  } else {
    args = {SNAPFS_TESTD, "-f"};
  }
  args.push_back(b.string());
  args.push_back(m.string());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  Attempt at;
  const int logfd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (logfd < 0) return at;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(logfd, 1);
    ::dup2(logfd, 2);
    const int nul = ::open("/dev/null", O_RDONLY);
    ::dup2(nul, 0);
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  ::close(logfd);
  if (pid < 0) return at;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid, &at.status, WNOHANG) == pid) {
      at.exited = true;
      break;
    }
    if (is_mounted(m, "fuse.snapfs")) {
      at.mounted = true;
      run_command({"fusermount3", "-u", m.string()}, 20s);
      break;
    }
    std::this_thread::sleep_for(5ms);
  }
  if (!at.exited) {
    int st = 0;
    pid_t r = 0;
    const auto stop = std::chrono::steady_clock::now() + 10s;
    while ((r = ::waitpid(pid, &st, WNOHANG)) == 0 && std::chrono::steady_clock::now() < stop)
      std::this_thread::sleep_for(5ms);
    if (r == 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
    }
    if (is_mounted(m)) run_command({"umount", "-l", m.string()}, 20s);
  }
  at.log = read_file(log);
  return at;
}

class BackingMetaRefused : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (to own and chown B/.snapfs)";
    if (::access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "needs /dev/fuse";
#ifndef SNAPFS_CLI
    if (GetParam() == "cli") GTEST_SKIP() << "the snapfs command was not built";
#endif
    dir_ = std::make_unique<TempDir>("snapfs-meta-");
    b_ = *dir_ / "b";
    m_ = *dir_ / "m";
    fs::create_directory(b_);
    fs::create_directory(m_);
    write_file(b_ / "f", "published\n");
  }

  // Mounting must fail, with one error line naming `path` and containing
  // `what`, and change nothing in B.
  void expect_refused(const fs::path& path, const std::string& what) {
    const auto before = tree_digest(b_);
    const Attempt at = try_mount(GetParam(), b_, m_, *dir_ / "log");
    EXPECT_FALSE(at.mounted) << "mounted over a " << path << " that is not the daemon's:\n"
                             << at.log;
    EXPECT_TRUE(at.exited && !(WIFEXITED(at.status) && WEXITSTATUS(at.status) == 0))
        << "status " << at.status << "\n" << at.log;
    const std::string line = path.string() + what;
    EXPECT_NE(at.log.find(line), std::string::npos) << "no \"" << line << "\" in:\n" << at.log;
    // Said once, on one line (the command passes the last error line on).
    std::size_t lines = 0;
    for (std::size_t p = 0; (p = at.log.find(line, p)) != std::string::npos; p += line.size())
      ++lines;
    EXPECT_EQ(lines, 1u) << at.log;
    EXPECT_EQ(tree_digest(b_), before) << "the refused mount changed B";
  }

  std::unique_ptr<TempDir> dir_;
  fs::path b_, m_;
};

TEST_P(BackingMetaRefused, SymlinkAtMetaDir) {
  const fs::path elsewhere = *dir_ / "elsewhere";
  fs::create_directory(elsewhere);
  ::chmod(elsewhere.c_str(), 0700);
  fs::create_directory_symlink(elsewhere, b_ / ".snapfs");
  expect_refused(b_ / ".snapfs", " is a symbolic link, not a directory; remove it");
  EXPECT_TRUE(fs::is_empty(elsewhere)) << "something was made through the symlink";
}

TEST_P(BackingMetaRefused, MetaDirOwnedByAnotherUid) {
  ASSERT_EQ(::mkdir((b_ / ".snapfs").c_str(), 0700), 0);
  ASSERT_EQ(::chown((b_ / ".snapfs").c_str(), 1000, 1000), 0);
  expect_refused(b_ / ".snapfs",
                 " is owned by uid 1000, not by the daemon's user (uid 0); remove it or chown it");
}

TEST_P(BackingMetaRefused, MetaDirWithMode0755) {
  ASSERT_EQ(::mkdir((b_ / ".snapfs").c_str(), 0700), 0);
  ASSERT_EQ(::chmod((b_ / ".snapfs").c_str(), 0755), 0);
  expect_refused(b_ / ".snapfs", " has mode 0755, not 0700");
}

TEST_P(BackingMetaRefused, StagingOwnedByAnotherUid) {
  ASSERT_EQ(::mkdir((b_ / ".snapfs").c_str(), 0700), 0);
  ASSERT_EQ(::chmod((b_ / ".snapfs").c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((b_ / ".snapfs/staging").c_str(), 0700), 0);
  ASSERT_EQ(::chown((b_ / ".snapfs/staging").c_str(), 1000, 1000), 0);
  expect_refused(b_ / ".snapfs/staging", " is owned by uid 1000");
}

TEST_P(BackingMetaRefused, RegularFileAtConflicts) {
  ASSERT_EQ(::mkdir((b_ / ".snapfs").c_str(), 0700), 0);
  ASSERT_EQ(::chmod((b_ / ".snapfs").c_str(), 0700), 0);
  write_file(b_ / ".snapfs/conflicts", "not a directory");
  expect_refused(b_ / ".snapfs/conflicts", " is a regular file, not a directory");
}

std::string front_name(const ::testing::TestParamInfo<std::string>& p) { return p.param; }

INSTANTIATE_TEST_SUITE_P(Via, BackingMetaRefused,
                         ::testing::Values(std::string("testd"), std::string("cli")), front_name);

// ---------------------------------------------------------------------------
// A mounted daemon and what is in B/.snapfs.

class BackingMeta : public FuseMount {};

TEST_P(BackingMeta, MadeWithMode0700AndOwnedByTheDaemon) {
  for (const char* p : {".snapfs", ".snapfs/staging", ".snapfs/conflicts"}) {
    struct stat st {};
    ASSERT_EQ(::lstat(b(p).c_str(), &st), 0) << p;
    EXPECT_TRUE(S_ISDIR(st.st_mode)) << p;
    EXPECT_EQ(st.st_mode & 07777, 0700u) << p;
    EXPECT_EQ(st.st_uid, ::geteuid()) << p;
  }
}

TEST_P(BackingMeta, PlantedFifoAndSymlinkRecordsNeitherBlockNorLeak) {
  // Only the daemon's user (root) can write here (0700); a FIFO or a
  // symlink named like a record must still never block a request (a FIFO's
  // open waits for a writer) nor be followed.
  const fs::path c = b(".snapfs/conflicts");
  ASSERT_EQ(::mkfifo((c / "x.json").c_str(), 0600), 0);
  write_file(outside() / "planted.json",
             "{\"id\":\"planted\",\"path\":\"secret\",\"uid\":0,\"size\":1}\n");
  fs::create_symlink(outside() / "planted.json", c / "y.json");
  // In a child with a deadline: a blocked request would never answer, and
  // the test must fail rather than hang.
  const fs::path m_root = mnt();
  const auto st = run_in_child(
      [&] {
        const std::string j = xattr_of(m_root, kConflictsXattr);
        if (j != "[]") return 1;
        const std::string s = xattr_of(m_root, kStatusXattr);
        if (s.find("\"conflicts\":0") == std::string::npos) return 2;
        return 0;
      },
      15s);
  EXPECT_FALSE(st.timed_out) << "reading the conflicts blocked on a FIFO";
  EXPECT_TRUE(st.ok()) << st.describe() << " (1: listed, 2: counted a planted entry)";
  // A record that is a symlink is not listed; the FIFO is still there.
  EXPECT_TRUE(fs::is_fifo(fs::symlink_status(c / "x.json")));
}

TEST_P(BackingMeta, RecoveryRemovesOnlyRegularStagingEntries) {
  kill_daemon();
  const fs::path s = b(".snapfs/staging");
  write_file(s / "leftover", "an interrupted commit");
  ASSERT_EQ(::mkfifo((s / "fifo").c_str(), 0600), 0);
  write_file(outside() / "target", "keep me");
  fs::create_symlink(outside() / "target", s / "link");
  std::string why;
  ASSERT_TRUE(remount(why)) << why;
  EXPECT_FALSE(fs::exists(fs::symlink_status(s / "leftover"))) << "the leftover was not removed";
  EXPECT_TRUE(fs::is_fifo(fs::symlink_status(s / "fifo"))) << "a FIFO was removed";
  EXPECT_TRUE(fs::is_symlink(fs::symlink_status(s / "link"))) << "a symlink was removed";
  EXPECT_EQ(read_file(outside() / "target"), "keep me");
  EXPECT_NE(daemon_log().find("removed an interrupted commit: leftover"), std::string::npos)
      << daemon_log();
}

TEST_P(BackingMeta, DaemonLogShowsNamesEscaped) {
  // A name that would set the terminal's title (OSC ... BEL), clear the
  // screen (C1 CSI, as UTF-8 and as a raw byte) and forge a log line. The
  // first writer is another process: one process's two opens would share
  // one version (docs/semantics.md, "A process's own opens").
  Peer first;
  const std::string evil = "t\x1b]0;pwned\x07\xc2\x9b" "2J\x9b\xff\nsnapfs: error";
  write_file(b(evil), "v1\n");
  const int a = first.open(m(evil), O_RDWR);
  const int c = xopen(m(evil), O_RDWR);
  ASSERT_GE(a, 0);
  ASSERT_GE(c, 0);
  ASSERT_TRUE(first.pwrite(a, "first\n", 0));
  ASSERT_TRUE(pwrite_str(c, "second\n", 0));
  ASSERT_EQ(first.close(a), 0);
  ASSERT_EQ(xclose(c), -ESTALE);
  // The loss is logged at info (docs/design-conflicts.md), with the name.
  const std::string log = daemon_log();
  EXPECT_NE(log.find("t\\x1b]0;pwned\\x07\\u009b2J\\x9b\\xff\\x0asnapfs: error"), std::string::npos)
      << log;
  for (const char ch : log) {
    const auto u = static_cast<unsigned char>(ch);
    ASSERT_TRUE(ch == '\n' || (u >= 0x20 && u < 0x7f))
        << "raw byte " << static_cast<int>(u) << " in the daemon log:\n" << log;
  }
  // And the JSON carries the name losslessly, as printable text.
  const std::string j = xattr_of(mnt(), kConflictsXattr);
  EXPECT_NE(j.find("t\\u001b]0;pwned\\u0007\\u009b2J\\udc9b\\udcff\\u000asnapfs: error"),
            std::string::npos)
      << j;
}

SNAPFS_INSTANTIATE_MOUNT(BackingMeta);

// ---------------------------------------------------------------------------
// Each user sees only their own conflicts; root sees all.

class BackingMetaUsers : public FuseMount {};

// As `uid`: two processes rewrite `file`; the second close() loses. The
// first writer is a Peer of the same user (one process's two opens would
// share one version: docs/semantics.md, "A process's own opens").
ExitStatus lose_a_conflict(uid_t uid, const fs::path& file) {
  return run_as(uid, uid, [&] {
    Peer first;
    const int a = first.open(file, O_RDWR);
    const int c = xopen(file, O_RDWR);
    if (a < 0 || c < 0) return 1;
    if (!first.pwrite(a, "first\n", 0) || !pwrite_str(c, "second\n", 0)) return 2;
    if (first.close(a) != 0) return 3;
    return xclose(c) == -ESTALE ? 0 : 4;
  });
}

// As `uid`: the conflicts array and the status's count it is shown.
ExitStatus sees(uid_t uid, const fs::path& root, const std::string& own,
                const std::string& other) {
  return run_as(
      uid, uid,
      [&] {
        const std::string j = xattr_of(root, kConflictsXattr);
        if (j.find("\"path\":\"" + own + "\"") == std::string::npos) return 1;
        if (j.find(other) != std::string::npos) return 2;
        if (xattr_of(root, kStatusXattr).find("\"conflicts\":1") == std::string::npos) return 3;
        return 0;
      },
      15s);
}

TEST_P(BackingMetaUsers, EachUserSeesOnlyTheirOwnConflicts) {
  constexpr uid_t kAlice = 61001, kBob = 61002;
  for (const auto& [uid, dir] : {std::pair{kAlice, "alice"}, std::pair{kBob, "bob"}}) {
    ASSERT_EQ(::mkdir(b(dir).c_str(), 0700), 0);
    ASSERT_EQ(::chown(b(dir).c_str(), uid, uid), 0);
    write_file(b(std::string(dir) + "/f"), "original\n", 0600);
    ASSERT_EQ(::chown(b(std::string(dir) + "/f").c_str(), uid, uid), 0);
  }
  auto st = lose_a_conflict(kAlice, m("alice/f"));
  ASSERT_TRUE(st.ok()) << "alice: " << st.describe();
  st = lose_a_conflict(kBob, m("bob/f"));
  ASSERT_TRUE(st.ok()) << "bob: " << st.describe();

  st = sees(kAlice, mnt(), "alice/f", "bob/f");
  EXPECT_TRUE(st.ok()) << "alice: " << st.describe()
                       << " (1: own missing, 2: sees bob's, 3: status count not 1)";
  st = sees(kBob, mnt(), "bob/f", "alice/f");
  EXPECT_TRUE(st.ok()) << "bob: " << st.describe()
                       << " (1: own missing, 2: sees alice's, 3: status count not 1)";
  const std::string all = xattr_of(mnt(), kConflictsXattr);
  EXPECT_NE(all.find("\"path\":\"alice/f\""), std::string::npos) << all;
  EXPECT_NE(all.find("\"path\":\"bob/f\""), std::string::npos) << all;
  EXPECT_NE(xattr_of(mnt(), kStatusXattr).find("\"conflicts\":2"), std::string::npos);
}

SNAPFS_INSTANTIATE_MOUNT(BackingMetaUsers);

}  // namespace
}  // namespace snapfs::test
