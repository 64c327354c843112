// The daemon runs as root for every user: it must never open, create,
// change or reveal anything on a caller's behalf with more rights than the
// caller has (docs/security.md). Every test here runs the attacker as a
// real unprivileged uid (run_as: setgroups({}), setresgid, setresuid) and
// plays the victim's changes directly in B, as a user who can write a
// shared project directory would.
#include "fuse_mount.hpp"
#include "mount_util.hpp"

#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace snapfs::test {
namespace {

using namespace std::chrono_literals;

constexpr uid_t kVictim = 61001;
constexpr uid_t kAttacker = 61002;
constexpr gid_t kTeam = 61100;  // a group both are in (as their gid)

// B/proj: a project directory everyone may write (0777).
void make_project(const fs::path& dir) {
  ASSERT_EQ(::mkdir(dir.c_str(), 0777), 0);
  ASSERT_EQ(::chmod(dir.c_str(), 0777), 0);
}

// A file of the victim's: 0600, content `secret`.
void victims_file(const fs::path& p, std::string_view secret) {
  write_file(p, secret, 0600);
  ASSERT_EQ(::chown(p.c_str(), kVictim, kVictim), 0);
  ASSERT_EQ(::chmod(p.c_str(), 0600), 0);
}

bool wait_exists(const fs::path& p, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!fs::exists(p)) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

class Privilege : public FuseMount {};

// Attributes the kernel keeps for 30 s: a name swapped in B stays behind
// the inode the kernel checked, for as long as the test needs.
class PrivilegeCached : public FuseMount {
protected:
  std::string mount_options() const override { return "cache_timeout=30"; }
};

// A CREATE held before it makes the file, so that the test can put another
// user's file at the name between the kernel's LOOKUP and the daemon's
// O_EXCL create.
class CreateRace : public FuseMount {
protected:
  bool needs_testd() const override { return true; }
  std::string mount_options() const override {
    return "test_pause=create.begin:v.key:" + outside().string();
  }
};

// open(O_CREAT) without O_EXCL of a name that another user's private file
// took after the kernel looked it up: the daemon opens that file only if
// the caller could (EACCES here); it never hands it over.
TEST_P(CreateRace, CreateOfAFileThatAppearedChecksPermission) {
  make_project(b("proj"));
  ASSERT_TRUE(fs::is_directory(m("proj")));
  Child attacker(kAttacker, kAttacker, [&] {
    const int fd = xopen(m("proj/v.key"), O_RDWR | O_CREAT, 0644);
    if (fd == -EACCES) return 0;
    if (fd < 0) return 10;
    const std::string got = pread_all(fd);
    (void)write_str(fd, "owned\n");
    ::close(fd);
    return got.find("secret") != std::string::npos ? 1 : 2;
  });
  const bool paused = wait_exists(outside() / "paused", 10s);
  if (paused) victims_file(b("proj/v.key"), "secret\n");
  write_file(outside() / "go", "");
  const ExitStatus st = attacker.wait();
  ASSERT_TRUE(paused) << "the CREATE never reached create.begin";
  EXPECT_TRUE(st.ok()) << st.describe() << " (1: read the victim's key; 2: opened it)";
  EXPECT_EQ(read_file(b("proj/v.key")), "secret\n");
  EXPECT_EQ(stat_of(b("proj/v.key")).st_mode & 07777, 0600u);
  EXPECT_EQ(stat_of(b("proj/v.key")).st_uid, kVictim);
}

// How long the loop races below run: a few seconds in CI;
// scripts/soak/races.sh sets SNAPFS_RACE_SECONDS for a long run.
std::chrono::milliseconds race_time() {
  if (const char* s = std::getenv("SNAPFS_RACE_SECONDS"); s && *s)
    return std::chrono::milliseconds(static_cast<long>(std::atof(s) * 1000));
  return 2s;
}

// The same attack as CreateRace, as an attacker would run it: open(O_CREAT)
// in a loop while the victim's key comes and goes under the name in B. Not
// one open may read the key or get it open; the key stays as it was.
TEST_P(Privilege, CreatesRacingNameFlipsNeverReachAnotherUsersFile) {
  make_project(b("proj"));
  victims_file(b("proj/.v.key"), "secret\n");
  const fs::path sync = outside() / "sync";
  ASSERT_EQ(::mkdir(sync.c_str(), 0777), 0);
  ASSERT_EQ(::chmod(sync.c_str(), 0777), 0);
  const auto limit = race_time();
  const auto until = std::chrono::steady_clock::now() + limit;
  const std::string hidden = b("proj/.v.key").string(), shown = b("proj/v.key").string();
  // The victim's key appears at the name and goes again, over and over
  // (renames in B, as a user who can write B would do): a process of its
  // own, so that nothing forks while another thread runs.
  Child flipper([&] {
    long flips = 0;
    while (std::chrono::steady_clock::now() < until) {
      if (::rename(hidden.c_str(), shown.c_str()) == 0) ++flips;
      ::rename(shown.c_str(), hidden.c_str());
      // The attacker's own file, if its create won, goes (never the key).
      struct stat s {};
      if (::lstat(shown.c_str(), &s) == 0 && s.st_uid == kAttacker) ::unlink(shown.c_str());
    }
    return flips > 0 ? 0 : 1;
  });
  auto st = run_as(kAttacker, kAttacker, [&] {
    const auto end = std::chrono::steady_clock::now() + limit;
    int leaks = 0;
    while (std::chrono::steady_clock::now() < end) {
      const int fd = xopen(m("proj/v.key"), O_RDWR | O_CREAT, 0644);
      if (fd < 0) continue;
      struct stat s {};
      if (::fstat(fd, &s) == 0 && s.st_uid != kAttacker) ++leaks;
      if (pread_all(fd).find("secret") != std::string::npos) ++leaks;
      ::close(fd);
    }
    return leaks == 0 ? 0 : 1;
  }, limit + 30s);
  const ExitStatus flipped = flipper.wait(limit + 30s);
  if (!fs::exists(b("proj/.v.key"))) ::rename(b("proj/v.key").c_str(), b("proj/.v.key").c_str());
  EXPECT_TRUE(st.ok()) << st.describe() << " (1: an open reached the victim's key)";
  EXPECT_TRUE(flipped.ok()) << flipped.describe() << " (1: the key never moved)";
  EXPECT_EQ(read_file(b("proj/.v.key")), "secret\n");
  EXPECT_EQ(stat_of(b("proj/.v.key")).st_mode & 07777, 0600u);
  EXPECT_EQ(stat_of(b("proj/.v.key")).st_uid, kVictim);
}

// The kernel checks a chmod, truncate, setxattr or open against the
// attributes it cached for the attacker's own file; meanwhile the name in B
// holds the victim's. The daemon acts as the caller on the inode it
// resolves: the backing filesystem refuses.
TEST_P(PrivilegeCached, ANameSwappedInBAfterTheKernelsCheckIsNotActedOn) {
  make_project(b("proj"));
  victims_file(b("proj/v.key"), "secret\n");
  auto st = run_as(kAttacker, kAttacker, [&] {
    const int fd = xopen(m("proj/bait"), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0 || !write_str(fd, "bait\n") || xclose(fd) != 0) return 10;
    struct stat s {};
    if (::stat(m("proj/bait").c_str(), &s) != 0 || s.st_uid != kAttacker) return 11;
    return 0;
  });
  ASSERT_TRUE(st.ok()) << st.describe();
  // The swap, directly in B, within the kernel's attribute timeout.
  ASSERT_EQ(::rename(b("proj/v.key").c_str(), b("proj/bait").c_str()), 0);
  st = run_as(kAttacker, kAttacker, [&] {
    int bad = 0;
    if (::chmod(m("proj/bait").c_str(), 0666) == 0) bad |= 1;
    if (::truncate(m("proj/bait").c_str(), 0) == 0) bad |= 2;
    if (::setxattr(m("proj/bait").c_str(), "user.owned", "1", 1, 0) == 0) bad |= 4;
    const int fd = xopen(m("proj/bait"), O_RDONLY);
    if (fd >= 0) {
      if (pread_all(fd).find("secret") != std::string::npos) bad |= 8;
      ::close(fd);
    }
    char v[16];
    if (::getxattr(m("proj/bait").c_str(), "user.x", v, sizeof v) >= 0 || errno == ENODATA)
      bad |= 16;  // reading user.* needs read permission
    return bad;
  });
  EXPECT_TRUE(st.ok()) << st.describe() << " (1 chmod, 2 truncate, 4 setxattr, 8 read, 16 getxattr)";
  const struct stat key = stat_of(b("proj/bait"));
  EXPECT_EQ(key.st_mode & 07777, 0600u);
  EXPECT_EQ(key.st_uid, kVictim);
  EXPECT_EQ(read_file(b("proj/bait")), "secret\n");
  EXPECT_TRUE(xattrs_of(b("proj/bait")).empty());
}

// An O_APPEND writer whose file was removed and made again by another user
// (0600) is not rebased onto it: its lines are kept as a conflict, its close
// fails, and the other user's file stays as it was.
TEST_P(Privilege, AnAppenderIsNotRebasedOntoAnotherUsersFile) {
  expect_daemon_errors();
  make_project(b("proj"));
  write_file(b("proj/log"), "start\n", 0666);
  ASSERT_EQ(::chmod(b("proj/log").c_str(), 0666), 0);
  // Flags between the two sides, in a directory of the test's the
  // attacker may write.
  const fs::path sync = outside() / "sync";
  ASSERT_EQ(::mkdir(sync.c_str(), 0777), 0);
  ASSERT_EQ(::chmod(sync.c_str(), 0777), 0);
  const fs::path flag = sync / "swapped";
  const fs::path ready = sync / "ready";
  Child attacker(kAttacker, kAttacker, [&] {
    const int fd = xopen(m("proj/log"), O_WRONLY | O_APPEND);
    if (fd < 0 || !write_str(fd, "x line 1\n")) return 10;
    write_file(ready, "");
    if (!wait_exists(flag, 20s)) return 11;
    if (!write_str(fd, "x line 2\n")) return 12;
    // The close fails: the file changed and cannot be extended by us.
    const int rc = xclose(fd);
    return rc == 0 ? 1 : 0;
  });
  // The victim, meanwhile: removes the name and makes its own private file.
  const bool ready_seen = wait_exists(ready, 20s);
  if (ready_seen) {
    ::unlink(b("proj/log").c_str());
    victims_file(b("proj/log"), "v private\n");
    write_file(flag, "");
  }
  const ExitStatus st = attacker.wait();
  ASSERT_TRUE(ready_seen) << st.describe();
  EXPECT_TRUE(st.ok()) << st.describe() << " (1: the close published)";
  EXPECT_EQ(read_file(b("proj/log")), "v private\n");
  EXPECT_EQ(stat_of(b("proj/log")).st_uid, kVictim);
  EXPECT_EQ(stat_of(b("proj/log")).st_mode & 07777, 0600u);
}

// A valid file capability (VFS_CAP_REVISION_2, CAP_NET_RAW permitted).
std::string file_caps() {
  std::string v(20, '\0');
  const std::uint32_t words[5] = {0x02000000u, 1u << 13, 0, 0, 0};
  std::memcpy(v.data(), words, sizeof words);
  return v;
}

bool has_caps(const fs::path& p) {
  char buf[64];
  return ::getxattr(p.c_str(), "security.capability", buf, sizeof buf) > 0;
}

// What write(2) and truncate(2) drop on a local filesystem, snapfs drops at
// the commit: setuid, setgid (group-executable) for a writer without
// privileges, on both data paths; file capabilities for any writer.
TEST_P(Privilege, AWriteByAnotherUserDropsSetuidSetgidAndCapabilities) {
  for (const char* n : {"w", "t"}) {
    write_file(b(n), "#!/bin/sh\necho root\n", 0755);
    ASSERT_EQ(::chmod(b(n).c_str(), 06777), 0);
  }
  const std::string caps = file_caps();
  const bool caps_ok =
      ::setxattr(b("w").c_str(), "security.capability", caps.data(), caps.size(), 0) == 0;
  auto st = run_as(kAttacker, kAttacker, [&] {
    const int fd = xopen(m("w"), O_WRONLY | O_TRUNC);
    if (fd < 0 || !write_str(fd, "#!/bin/sh\necho x\n") || xclose(fd) != 0) return 1;
    // `: > t`: an O_TRUNC open and nothing written.
    const int t = xopen(m("t"), O_WRONLY | O_TRUNC);
    if (t < 0 || xclose(t) != 0) return 2;
    return 0;
  });
  ASSERT_TRUE(st.ok()) << st.describe();
  EXPECT_EQ(read_file(b("w")), "#!/bin/sh\necho x\n");
  EXPECT_EQ(stat_of(b("w")).st_mode & 07777, 0777u);
  if (caps_ok) {
    EXPECT_FALSE(has_caps(b("w")));
  }
  // The truncation is published at RELEASE (asynchronous): wait for it.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (stat_of(b("t")).st_size != 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  EXPECT_EQ(stat_of(b("t")).st_size, 0);
  EXPECT_EQ(stat_of(b("t")).st_mode & 07777, 0777u);
}

// Root (CAP_FSETID) keeps setuid when it writes, as on a local filesystem;
// a file capability goes whoever writes; setgid without group execute is
// not a privilege and stays.
TEST_P(Privilege, ARootWriteKeepsSetuidButNotCapabilities) {
  write_file(b("r"), "old", 0755);
  ASSERT_EQ(::chmod(b("r").c_str(), 04755), 0);
  write_file(b("g"), "old", 0666);
  ASSERT_EQ(::chmod(b("g").c_str(), 02666), 0);
  const std::string caps = file_caps();
  const bool caps_ok =
      ::setxattr(b("r").c_str(), "security.capability", caps.data(), caps.size(), 0) == 0;
  int fd = xopen(m("r"), O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(write_str(fd, "new"));
  ASSERT_EQ(xclose(fd), 0);
  EXPECT_EQ(stat_of(b("r")).st_mode & 07777, 04755u);
  if (caps_ok) {
    EXPECT_FALSE(has_caps(b("r")));
  }
  auto st = run_as(kAttacker, kAttacker, [&] {
    const int w = xopen(m("g"), O_WRONLY | O_TRUNC);
    return (w >= 0 && write_str(w, "new") && xclose(w) == 0) ? 0 : 1;
  });
  ASSERT_TRUE(st.ok()) << st.describe();
  EXPECT_EQ(stat_of(b("g")).st_mode & 07777, 02666u);
}

// POSIX ACLs decide as on the backing filesystem: a named user's empty
// entry shuts that user out of a file its group may read.
TEST_P(Privilege, AclEntriesAreEnforced) {
  write_file(b("g"), "team only\n", 0640);
  ASSERT_EQ(::chown(b("g").c_str(), 0, kTeam), 0);
  const auto r = run_command({"setfacl", "-m", "u:" + std::to_string(kAttacker) + ":---",
                              b("g").string()});
  if (!r.status.ok()) GTEST_SKIP() << "setfacl failed (no ACL support here?): " << r.output;
  auto st = run_as(kVictim, kTeam, [&] {  // a team member: may read
    const int fd = xopen(m("g"), O_RDONLY);
    if (fd < 0) return 1;
    const bool ok = pread_all(fd) == "team only\n";
    ::close(fd);
    return ok ? 0 : 2;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
  st = run_as(kAttacker, kTeam, [&] {  // in the team, but named with no rights
    return xopen(m("g"), O_RDONLY) == -EACCES ? 0 : 1;
  });
  EXPECT_TRUE(st.ok()) << st.describe() << " (the ACL entry was ignored)";
}

// A new file through M inherits its directory's default ACL, and without
// one gets the caller's umask, as on the backing filesystem.
TEST_P(Privilege, NewFilesInheritDefaultAclsAndHonourTheUmask) {
  ASSERT_EQ(::mkdir(b("dacl").c_str(), 0777), 0);
  const auto r = run_command({"setfacl", "-d", "-m", "u:" + std::to_string(kVictim) + ":rw",
                              b("dacl").string()});
  if (!r.status.ok()) GTEST_SKIP() << "setfacl failed (no ACL support here?): " << r.output;
  ASSERT_EQ(::mkdir(b("plain").c_str(), 0777), 0);
  ASSERT_EQ(::chmod(b("plain").c_str(), 0777), 0);
  ASSERT_EQ(::chmod(b("dacl").c_str(), 0777), 0);
  auto st = run_as(kAttacker, kAttacker, [&] {
    ::umask(027);
    for (const char* p : {"dacl/f", "plain/f"}) {
      const int fd = xopen(m(p), O_WRONLY | O_CREAT | O_EXCL, 0666);
      if (fd < 0 || !write_str(fd, "x") || xclose(fd) != 0) return 1;
    }
    if (::mkdir(m("plain/d").c_str(), 0777) != 0) return 2;
    return 0;
  });
  ASSERT_TRUE(st.ok()) << st.describe();
  EXPECT_EQ(stat_of(b("plain/f")).st_mode & 0777, 0640u);
  EXPECT_EQ(stat_of(b("plain/d")).st_mode & 0777, 0750u);
  const auto g = run_command({"getfacl", "-cp", b("dacl/f").string()});
  EXPECT_NE(g.output.find("user:" + std::to_string(kVictim) + ":rw-"), std::string::npos)
      << g.output;
}

// listxattr shows trusted.* names only to a caller with CAP_SYS_ADMIN, as
// the backing filesystem would.
TEST_P(Privilege, TrustedXattrNamesAreHiddenFromUsers) {
  write_file(b("f"), "x", 0644);
  ASSERT_EQ(::setxattr(b("f").c_str(), "trusted.secret", "1", 1, 0), 0);
  ASSERT_EQ(::setxattr(b("f").c_str(), "user.plain", "1", 1, 0), 0);
  char list[4096];
  const ssize_t n = ::listxattr(m("f").c_str(), list, sizeof list);
  ASSERT_GT(n, 0);
  EXPECT_NE(std::string(list, static_cast<std::size_t>(n)).find("trusted.secret"),
            std::string::npos);
  auto st = run_as(kAttacker, kAttacker, [&] {
    char l[4096];
    const ssize_t size = ::listxattr(m("f").c_str(), nullptr, 0);
    const ssize_t k = ::listxattr(m("f").c_str(), l, sizeof l);
    if (k < 0 || size != k) return 1;
    const std::string names(l, static_cast<std::size_t>(k));
    if (names.find("trusted.") != std::string::npos) return 2;
    return names.find("user.plain") != std::string::npos ? 0 : 3;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
}

// A read-write open of a huge sparse file costs what the file holds, not
// its apparent size: four of them closed one after the other leave the
// daemon free (each used to pin a worker thread in a whole-file compare at
// RELEASE where the backing filesystem has no reflinks).
TEST_P(Privilege, ClosingAHugeSparseFileCostsWhatItHolds) {
  {
    const int fd = ::open(b("huge").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(1ull << 62)), 0) << std::strerror(errno);
    ASSERT_TRUE(pwrite_str(fd, "data", 4096));
    ::close(fd);
  }
  ASSERT_EQ(::chmod(b("huge").c_str(), 0666), 0);
  auto st = run_as(kAttacker, kAttacker, [&] {
    for (int i = 0; i < 4; ++i) {
      const int fd = xopen(m("huge"), O_RDWR);
      if (fd < 0 || xclose(fd) != 0) return 1;
    }
    return 0;
  }, 20s);
  ASSERT_TRUE(st.ok()) << st.describe();
  // Every RELEASE (asynchronous) has been handled, within a deadline.
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (status_field("open_snapshots") != "0" && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(status_field("open_snapshots"), "0");
  EXPECT_EQ(stat_of(b("huge")).st_size, static_cast<off_t>(1ull << 62));
}

// A lock through a read-only description never opens B/p for writing:
// B/p can still be executed while the lock is held.
TEST_P(Privilege, ALockDoesNotStopBFromBeingExecuted) {
  const std::string truebin = find_program("true");
  ASSERT_FALSE(truebin.empty());
  fs::copy_file(truebin, b("prog"));
  ASSERT_EQ(::chmod(b("prog").c_str(), 0755), 0);
  const int fd = xopen(m("prog"), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_SH | LOCK_NB), 0) << std::strerror(errno);
  struct flock rd {};
  rd.l_type = F_RDLCK;
  rd.l_whence = SEEK_SET;
  EXPECT_EQ(::fcntl(fd, F_OFD_SETLK, &rd), 0) << std::strerror(errno);
  const auto r = run_command({b("prog").string()}, 10s);
  ::close(fd);
  EXPECT_TRUE(r.status.ok()) << r.status.describe() << ": " << r.output;
}

// A daemon whose users may each hold four opens.
class UserCap : public FuseMount {
protected:
  std::string mount_options() const override { return "max_user_opens=4"; }
};

// One user at the cap gets EMFILE; the others, and root, still open; the
// user opens again once one of its files is closed.
TEST_P(UserCap, OneUserCannotTakeEveryDescriptor) {
  for (int i = 0; i < 6; ++i) write_file(b("f" + std::to_string(i)), "x", 0644);
  ASSERT_EQ(::chmod(backing().c_str(), 0777), 0);
  const fs::path sync = outside() / "sync";
  ASSERT_EQ(::mkdir(sync.c_str(), 0777), 0);
  ASSERT_EQ(::chmod(sync.c_str(), 0777), 0);
  Child user(kAttacker, kAttacker, [&] {
      int fds[4];
      for (int i = 0; i < 4; ++i) {
        fds[i] = xopen(m("f" + std::to_string(i)), O_RDONLY);
        if (fds[i] < 0) return 1;
      }
      if (xopen(m("f4"), O_RDONLY) != -EMFILE) return 2;
      if (xopen(m("mine"), O_WRONLY | O_CREAT, 0644) != -EMFILE) return 3;
      write_file(sync / "full", "");
      if (!wait_exists(sync / "go", 20s)) return 4;
      ::close(fds[0]);
      // The RELEASE of the close is asynchronous: the slot comes back soon.
      const auto deadline = std::chrono::steady_clock::now() + 10s;
      int again = -1;
      while ((again = xopen(m("f4"), O_RDONLY)) == -EMFILE &&
             std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(1ms);
      return again >= 0 ? 0 : 5;
  });
  const bool full = wait_exists(sync / "full", 20s);
  // Meanwhile another user and root are not held back.
  auto other = run_as(kVictim, kVictim, [&] {
    const int fd = xopen(m("f5"), O_RDONLY);
    return fd >= 0 && xclose(fd) == 0 ? 0 : 1;
  });
  const int fd = xopen(m("f5"), O_RDONLY);
  write_file(sync / "go", "");
  const ExitStatus st = user.wait();
  ASSERT_TRUE(full) << st.describe();
  EXPECT_TRUE(st.ok()) << st.describe() << " (2/3: not refused at the cap; 5: no open after a close)";
  EXPECT_TRUE(other.ok()) << other.describe();
  EXPECT_GE(fd, 0);
  if (fd >= 0) ::close(fd);
}

// A backing XFS with user quotas on.
class Quota : public FuseMount {
protected:
  std::string fs_mount_options() const override { return "uquota"; }
};

// While a file is open for writing, its new content lives in the open's
// snapshot: that snapshot belongs to the writer, so the writer's quota
// applies to it as to a file it wrote directly (EDQUOT at the write).
TEST_P(Quota, AWritersSnapshotCountsAgainstItsQuota) {
  if (kind() != FsKind::xfs) GTEST_SKIP() << "quota limits are set with xfs_quota (XFS only)";
  if (find_program("xfs_quota").empty()) GTEST_SKIP() << "xfs_quota not found (xfsprogs)";
  ASSERT_EQ(::chmod(backing().c_str(), 0777), 0);
  const auto q = run_command({"xfs_quota", "-x", "-c",
                              "limit -u bhard=1m " + std::to_string(kAttacker),
                              backing().parent_path().string()});
  ASSERT_TRUE(q.status.ok()) << q.output;
  auto st = run_as(kAttacker, kAttacker, [&] {
    const int fd = xopen(m("big"), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) return 10;
    const std::string chunk(64 * 1024, 'q');
    int err = 0;
    for (int i = 0; i < 64 && err == 0; ++i)  // 4 MiB, four times the limit
      if (::write(fd, chunk.data(), chunk.size()) < 0) err = errno;
    const int rc = xclose(fd);
    if (err == 0 && rc < 0) err = -rc;
    return err == EDQUOT ? 0 : (err == 0 ? 1 : 100 + err);
  });
  EXPECT_TRUE(st.ok()) << st.describe() << " (1: 4 MiB written past a 1 MiB quota)";
}

// The mechanism behind the quota test above, checked where the kernel has
// no quotas: while a user's file is open for writing, the unnamed snapshot
// the daemon holds for it belongs to that user (the filesystem charges its
// blocks to them), and it goes back to the file's owner when published.
TEST_P(Privilege, AWritersSnapshotBelongsToTheWriter) {
  ASSERT_EQ(::chmod(backing().c_str(), 0777), 0);
  const fs::path sync = outside() / "sync";
  ASSERT_EQ(::mkdir(sync.c_str(), 0777), 0);
  ASSERT_EQ(::chmod(sync.c_str(), 0777), 0);
  write_file(b("shared"), "old", 0666);
  ASSERT_EQ(::chmod(b("shared").c_str(), 0666), 0);
  const dev_t dev = stat_of(backing()).st_dev;
  Child writer(kAttacker, kAttacker, [&] {
    const int fd = xopen(m("shared"), O_RDWR);
    if (fd < 0 || !pwrite_str(fd, "new content", 0)) return 1;
    write_file(sync / "open", "");
    if (!wait_exists(sync / "go", 20s)) return 2;
    return xclose(fd) == 0 ? 0 : 3;
  });
  const bool open = wait_exists(sync / "open", 20s);
  // The daemon's unnamed regular files on B's filesystem, and their owners.
  std::vector<uid_t> owners;
  const fs::path fds = "/proc/" + std::to_string(daemon_pid()) + "/fd";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fds, ec)) {
    struct stat s {};
    if (::stat(e.path().c_str(), &s) == 0 && S_ISREG(s.st_mode) && s.st_dev == dev &&
        s.st_nlink == 0)
      owners.push_back(s.st_uid);
  }
  write_file(sync / "go", "");
  const ExitStatus st = writer.wait();
  ASSERT_TRUE(open) << st.describe();
  EXPECT_TRUE(st.ok()) << st.describe();
  EXPECT_NE(std::find(owners.begin(), owners.end(), kAttacker), owners.end())
      << "no snapshot of the writer's belongs to it";
  EXPECT_EQ(read_file(b("shared")), "new content");
  EXPECT_EQ(stat_of(b("shared")).st_uid, 0u);  // published with the file's own owner
}

SNAPFS_INSTANTIATE_MOUNT(UserCap);
SNAPFS_INSTANTIATE_MOUNT(Quota);
SNAPFS_INSTANTIATE_MOUNT(Privilege);
SNAPFS_INSTANTIATE_MOUNT(PrivilegeCached);
SNAPFS_INSTANTIATE_MOUNT(CreateRace);

}  // namespace
}  // namespace snapfs::test
