// `snapfs events`: the change feed of a mount (docs/user-guide.md,
// "Watching a tree"), against the real daemon, as root and as ordinary
// users. Label `mount`; every test tears down its mounts and followers in
// Scratch.
#include "cli_support.hpp"

#include "exit_codes.hpp"
#include "report.hpp"
#include "support/peer.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

namespace snapfs::clitest {
namespace {

namespace ec = snapfs::cli::exit_code;

constexpr uid_t kUser = 61001;  // no account needed
constexpr uid_t kOther = 61002;

struct Dirs {
  Scratch s;
  fs::path b, m;
  Dirs() : b(s.mkdir("b")), m(s.mkdir("m")) {}
};

// The JSON lines of `snapfs events --json` (each parsed).
std::vector<cli::Json> lines_of(const std::string& out) {
  std::vector<cli::Json> v;
  std::size_t start = 0;
  for (std::size_t nl; (nl = out.find('\n', start)) != std::string::npos; start = nl + 1)
    v.push_back(cli::parse_json(out.substr(start, nl - start)));
  return v;
}

std::string field(const cli::Json& e, const char* key) {
  const cli::Json* v = e.find(key);
  return v == nullptr ? std::string("<none>") : v->text;
}

// "event path[ -> to]" of each line, for comparing sequences.
std::vector<std::string> summary(const std::vector<cli::Json>& events) {
  std::vector<std::string> v;
  for (const auto& e : events) {
    std::string s = field(e, "event") + " " + field(e, "path");
    if (e.find("to") != nullptr) s += " -> " + field(e, "to");
    v.push_back(s);
  }
  return v;
}

std::string own_command() {
  std::string c = read_file("/proc/self/comm");
  if (!c.empty() && c.back() == '\n') c.pop_back();
  return c;
}

// The seq of the newest event (0 if none).
std::string last_seq(const fs::path& m) {
  const Outcome r = run({snapfs_bin(), "events", "--json", m});
  const auto events = lines_of(r.out);
  return events.empty() ? "0" : field(events.back(), "seq");
}

TEST(MountEvents, EveryKindOfChangeInOrderWithWhoMadeIt) {
  SNAPFS_REQUIRE_DAEMON();
  Dirs d;
  ASSERT_EQ(run({snapfs_bin(), "mount", d.b, d.m}).code, 0);
  const std::string m = d.m.string();
  // Each a syscall of this process through M.
  const int fd = ::open((d.m / "a").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "hello\n", 6), 6);
  ASSERT_EQ(::close(fd), 0);
  ASSERT_EQ(::mkdir((d.m / "dir").c_str(), 0755), 0);
  ASSERT_EQ(::rename((d.m / "a").c_str(), (d.m / "dir" / "b").c_str()), 0);
  ASSERT_EQ(::link((d.m / "dir" / "b").c_str(), (d.m / "c").c_str()), 0);
  ASSERT_EQ(::symlink("dir/b", (d.m / "s").c_str()), 0);
  ASSERT_EQ(::truncate((d.m / "c").c_str(), 2), 0);
  ASSERT_EQ(::unlink((d.m / "s").c_str()), 0);
  ASSERT_EQ(::unlink((d.m / "c").c_str()), 0);
  ASSERT_EQ(::unlink((d.m / "dir" / "b").c_str()), 0);
  ASSERT_EQ(::rmdir((d.m / "dir").c_str()), 0);

  const Outcome r = run({snapfs_bin(), "events", "--json", d.m});
  ASSERT_EQ(r.code, 0) << r.describe();
  const auto events = lines_of(r.out);
  EXPECT_EQ(summary(events), (std::vector<std::string>{
                                 "create " + m + "/a",
                                 "commit " + m + "/a",
                                 "mkdir " + m + "/dir",
                                 "rename " + m + "/a -> " + m + "/dir/b",
                                 "link " + m + "/dir/b -> " + m + "/c",
                                 "symlink " + m + "/s",
                                 "commit " + m + "/c",
                                 "unlink " + m + "/s",
                                 "unlink " + m + "/c",
                                 "unlink " + m + "/dir/b",
                                 "rmdir " + m + "/dir",
                             }))
      << r.out;
  ASSERT_EQ(events.size(), 11u);
  EXPECT_EQ(field(events[1], "size"), "6") << "the published size";
  EXPECT_EQ(field(events[6], "size"), "2") << "a truncate by name publishes";
  std::string seq = "0";
  for (const auto& e : events) {
    EXPECT_EQ(field(e, "pid"), std::to_string(::getpid())) << r.out;
    EXPECT_EQ(field(e, "uid"), "0") << r.out;
    EXPECT_EQ(field(e, "command"), own_command()) << r.out;
    EXPECT_GT(std::stoull(field(e, "seq")), std::stoull(seq)) << "seqs rise: " << r.out;
    seq = field(e, "seq");
  }
  // The text form: a line per event, the time first, paths under M.
  const Outcome t = run({snapfs_bin(), "events", d.m});
  ASSERT_EQ(t.code, 0) << t.describe();
  EXPECT_NE(t.out.find(" commit " + m + "/a size=6 pid=" + std::to_string(::getpid()) +
                       " uid=0 command=" + own_command() + "\n"),
            std::string::npos)
      << t.out;
  EXPECT_NE(t.out.find(" rename " + m + "/a -> " + m + "/dir/b "), std::string::npos) << t.out;
  EXPECT_EQ(t.out.rfind("20", 0), 0u) << "each line starts with its UTC time: " << t.out;
  // --after: only what came after that event.
  const Outcome after = run({snapfs_bin(), "events", "--json", "--after",
                             field(events[8], "seq"), d.m});
  EXPECT_EQ(summary(lines_of(after.out)),
            (std::vector<std::string>{"unlink " + m + "/dir/b", "rmdir " + m + "/dir"}))
      << after.describe();
  EXPECT_EQ(run({snapfs_bin(), "umount", d.m}).code, 0);
}

TEST(MountEvents, ALosingCommitIsAConflictOfTheProcessThatClosedIt) {
  SNAPFS_REQUIRE_DAEMON();
  Dirs d;
  write_file(d.b / "f", "published\n");
  test::Peer peer;  // before any file is open
  ASSERT_EQ(run({snapfs_bin(), "mount", d.b, d.m}).code, 0);
  const int a = ::open((d.m / "f").c_str(), O_WRONLY | O_CLOEXEC);
  const int b = peer.open(d.m / "f", O_WRONLY | O_TRUNC);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  ASSERT_EQ(::write(a, "first\n", 6), 6);
  ASSERT_TRUE(peer.write(b, "second!\n"));
  EXPECT_EQ(::close(a), 0);
  EXPECT_NE(peer.close(b), 0) << "the second close must lose";
  const Outcome r = run({snapfs_bin(), "events", "--json", d.m});
  const auto events = lines_of(r.out);
  const std::string f = d.m.string() + "/f";
  ASSERT_EQ(summary(events), (std::vector<std::string>{"commit " + f, "conflict " + f}))
      << r.describe();
  EXPECT_EQ(field(events[0], "pid"), std::to_string(::getpid()));
  EXPECT_EQ(field(events[1], "pid"), std::to_string(peer.pid()));
  EXPECT_EQ(field(events[1], "size"), "8") << "the size of the content that lost";
  EXPECT_EQ(run({snapfs_bin(), "umount", d.m}).code, 0);
}

// --follow prints what is published while it runs, and ends when M is
// unmounted; a follower never keeps M busy.
TEST(MountEvents, FollowShowsChangesAsTheyHappenAndEndsAtUnmount) {
  SNAPFS_REQUIRE_DAEMON();
  Dirs d;
  ASSERT_EQ(run({snapfs_bin(), "mount", d.b, d.m}).code, 0);
  write_file(d.m / "before", "x");
  const fs::path log = d.s / "follow.log";
  const pid_t follower = spawn(
      {snapfs_bin(), "events", "--follow", "--after", last_seq(d.m), d.m}, log);
  ASSERT_GT(follower, 0);
  const std::string line = " commit " + d.m.string() + "/later size=5 ";
  test::Peer peer;
  const int fd = peer.open(d.m / "later", O_CREAT | O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(peer.write(fd, "later"));
  ASSERT_EQ(peer.close(fd), 0);
  EXPECT_TRUE(wait_until([&] { return read_file(log).find(line) != std::string::npos; }, 10s))
      << read_file(log);
  EXPECT_EQ(read_file(log).find("/before"), std::string::npos)
      << "--after showed an older event: " << read_file(log);
  const Outcome u = run({snapfs_bin(), "umount", d.m});
  EXPECT_EQ(u.code, 0) << "a follower kept M busy: " << u.describe();
  const auto status = wait_exit(follower, 10s);
  ASSERT_TRUE(status) << "the follower still runs after the unmount";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << read_file(log);
  EXPECT_NE(read_file(log).find("is no longer mounted"), std::string::npos) << read_file(log);
}

// A reader that stops reading never stops the daemon: the ring moves on and
// the reader is told how many events it missed.
TEST(MountEvents, AStoppedReaderGetsACountedGapAndNeverBlocksChanges) {
  SNAPFS_REQUIRE_DAEMON();
  Dirs d;
  ASSERT_EQ(run({snapfs_bin(), "mount", d.b, d.m}).code, 0);
  const std::string start = last_seq(d.m);
  const fs::path log = d.s / "follow.log";
  const pid_t follower =
      spawn({snapfs_bin(), "events", "--follow", "--json", "--after", start, d.m}, log);
  ASSERT_GT(follower, 0);
  ASSERT_EQ(::kill(follower, SIGSTOP), 0);
  // More events than the daemon keeps (8192), while the reader sleeps.
  constexpr int kPairs = 4500;
  for (int i = 0; i < kPairs; ++i) {
    const fs::path dir = d.m / ("d" + std::to_string(i));
    ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0) << i;
    ASSERT_EQ(::rmdir(dir.c_str()), 0) << i;
  }
  ASSERT_EQ(::kill(follower, SIGCONT), 0);
  // Every event is either shown or counted in a gap, exactly once.
  std::uint64_t shown = 0, dropped = 0;
  const auto tally = [&] {
    shown = dropped = 0;
    const std::string text = read_file(log);
    for (const auto& e : lines_of(text.substr(0, text.rfind('\n') + 1))) {
      if (field(e, "event") == "dropped")
        dropped += std::stoull(field(e, "count"));
      else
        ++shown;
    }
    return shown + dropped == 2 * kPairs;
  };
  EXPECT_TRUE(wait_until(tally, 30s)) << shown << " shown, " << dropped << " dropped";
  EXPECT_GE(dropped, 2u * kPairs - 8192) << "the ring keeps 8192 events";
  EXPECT_GT(shown, 0u);
  ::kill(follower, SIGTERM);
  wait_exit(follower, 10s);
  EXPECT_EQ(run({snapfs_bin(), "umount", d.m}).code, 0);
}

// An event shows a user only what watching the tree would have shown them,
// and who made it only if it was them.
TEST(MountEvents, AUserSeesOnlyWhatTheyCouldListAndOnlyTheirOwnPids) {
  SNAPFS_REQUIRE_DAEMON();
  Dirs d;
  RunOptions as_user;
  as_user.uid = kUser;
  as_user.gid = kUser;
  const Outcome probe = run({snapfs_bin(), "--version"}, as_user);
  if (probe.code != 0)
    GTEST_SKIP() << "SKIPPED LOUDLY: uid " << kUser << " cannot run " << snapfs_bin() << ": "
                 << probe.describe();
  ::chmod(d.s.path().c_str(), 0755);
  d.s.mkdir("b/open", 0755);
  d.s.mkdir("b/closed", 0700);
  d.s.mkdir("b/listonly", 0744);  // others may read it but not search it
  d.s.mkdir("b/pub", 0777);
  d.s.mkdir("b/other", 0700, kOther, kOther);
  ASSERT_EQ(run({snapfs_bin(), "mount", d.b, d.m}).code, 0);
  write_file(d.m / "open" / "f", "root's\n");
  write_file(d.m / "closed" / "g", "root's secret name\n");
  write_file(d.m / "listonly" / "salary", "123456\n");
  ASSERT_EQ(::rename((d.m / "closed" / "g").c_str(), (d.m / "open" / "g").c_str()), 0)
      << "a rename out of a hidden directory";
  RunOptions as_other;
  as_other.uid = kOther;
  as_other.gid = kOther;
  ASSERT_EQ(run({"sh", "-c", "echo x > \"$1\"", "sh", (d.m / "other" / "h").string()}, as_other)
                .code,
            0);
  ASSERT_EQ(run({"sh", "-c", "echo mine > \"$1\"", "sh", (d.m / "pub" / "mine").string()},
                as_user)
                .code,
            0);
  // A hidden directory renamed away and replaced by a listable one of the
  // same name: what was made in the old one stays hidden.
  ASSERT_EQ(::mkdir((d.m / "secret").c_str(), 0700), 0);
  write_file(d.m / "secret" / "plans", "root's\n");
  ASSERT_EQ(::rename((d.m / "secret").c_str(), (d.m / "old").c_str()), 0);
  ASSERT_EQ(::mkdir((d.m / "secret").c_str(), 0755), 0);
  ASSERT_EQ(::chmod((d.m / "secret").c_str(), 0755), 0);
  const Outcome r = run({snapfs_bin(), "events", "--json", d.m}, as_user);
  ASSERT_EQ(r.code, 0) << r.describe();
  const auto events = lines_of(r.out);
  const std::string m = d.m.string();
  EXPECT_EQ(summary(events), (std::vector<std::string>{"create " + m + "/open/f",
                                                       "commit " + m + "/open/f",
                                                       "create " + m + "/pub/mine",
                                                       "commit " + m + "/pub/mine",
                                                       "mkdir " + m + "/secret",
                                                       "rename " + m + "/secret -> " + m + "/old",
                                                       "mkdir " + m + "/secret"}))
      << "names in directories uid " << kUser << " cannot list leaked: " << r.out;
  for (const auto& e : events) {
    const bool mine = field(e, "path").find("/pub/mine") != std::string::npos;
    EXPECT_EQ(e.find("pid") != nullptr, mine) << r.out;
    EXPECT_EQ(e.find("command") != nullptr, mine) << r.out;
    if (mine) {
      EXPECT_EQ(field(e, "uid"), std::to_string(kUser)) << r.out;
    }
  }
  // Root sees everything, with who made it.
  const auto all = lines_of(run({snapfs_bin(), "events", "--json", d.m}).out);
  EXPECT_EQ(all.size(), 16u) << "the 7 above, g's create, commit and rename, h's, plans' and "
                                "salary's create and commit";
  EXPECT_EQ(run({snapfs_bin(), "umount", d.m}).code, 0);
}

// A file system gives a removed directory's inode number to the next
// directory it makes: a user who makes one where another user's private
// directory was must not be shown what was made in that one.
TEST(MountEvents, ADirectoryThatReusesARemovedOnesInodeShowsNothingOfIt) {
  SNAPFS_REQUIRE_DAEMON();
  Dirs d;
  RunOptions as_user, as_other;
  as_user.uid = as_user.gid = kUser;
  as_other.uid = as_other.gid = kOther;
  const Outcome probe = run({snapfs_bin(), "--version"}, as_user);
  if (probe.code != 0)
    GTEST_SKIP() << "SKIPPED LOUDLY: uid " << kUser << " cannot run " << snapfs_bin();
  ::chmod(d.s.path().c_str(), 0755);
  d.s.mkdir("b/tmp", 01777);
  ASSERT_EQ(run({snapfs_bin(), "mount", d.b, d.m}).code, 0);
  const fs::path dir = d.m / "tmp" / "d";
  ASSERT_EQ(run({"sh", "-c", "mkdir -m 700 \"$1\" && echo x > \"$1/plan\"", "sh", dir.string()},
                as_other)
                .code,
            0);
  struct stat st {};
  ASSERT_EQ(::stat((d.b / "tmp" / "d").c_str(), &st), 0);
  const ino_t old_ino = st.st_ino;
  ASSERT_EQ(run({"rm", "-rf", dir.string()}, as_other).code, 0);
  // Made again until the file system hands out the same number.
  bool reused = false;
  for (int i = 0; i < 50 && !reused; ++i) {
    ASSERT_EQ(run({"mkdir", "-m", "755", dir.string()}, as_user).code, 0);
    reused = ::stat((d.b / "tmp" / "d").c_str(), &st) == 0 && st.st_ino == old_ino;
    if (!reused) {
      ASSERT_EQ(run({"rmdir", dir.string()}, as_user).code, 0);
    }
  }
  if (!reused) {
    EXPECT_EQ(run({snapfs_bin(), "umount", d.m}).code, 0);
    GTEST_SKIP() << "SKIPPED LOUDLY: this file system did not reuse the inode number in 50 tries";
  }
  const Outcome r = run({snapfs_bin(), "events", d.m}, as_user);
  EXPECT_EQ(r.code, 0) << r.describe();
  EXPECT_EQ(r.out.find("plan"), std::string::npos)
      << "what another user made in a removed private directory shows: " << r.out;
  EXPECT_EQ(run({snapfs_bin(), "umount", d.m}).code, 0);
}

TEST(MountEvents, BadInputIsAOneLineError) {
  SNAPFS_REQUIRE_DAEMON();
  Dirs d;
  const Outcome not_mounted = run({snapfs_bin(), "events", d.m});
  EXPECT_EQ(not_mounted.code, ec::not_snapfs) << not_mounted.describe();
  EXPECT_TRUE(one_line_error(not_mounted));
  ASSERT_EQ(run({snapfs_bin(), "mount", d.b, d.m}).code, 0);
  const Outcome bad = run({snapfs_bin(), "events", "--after", "soon", d.m});
  EXPECT_EQ(bad.code, ec::usage) << bad.describe();
  EXPECT_TRUE(one_line_error(bad));
  EXPECT_EQ(run({snapfs_bin(), "umount", d.m}).code, 0);
}

}  // namespace
}  // namespace snapfs::clitest
