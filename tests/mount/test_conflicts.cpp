// Nothing lost (docs/semantics.md#conflicts: conflicts and appends;
// #crashes-and-power-loss: crash recovery), and the hidden directory B/.snapfs
// (docs/design-conflicts.md).
//
// Two writers of one file are two processes: a process's own opens of a
// file it writes share one version (docs/semantics.md, "A process's own
// opens"), so two descriptors of one process never conflict. The other
// side is a Peer (a child that opens, writes and closes on request, in
// the test's order) or, where several write at once, Child processes.
#include "fuse_mount.hpp"
#include "mount_util.hpp"
#include "support/peer.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace snapfs::test {
namespace {

using namespace std::chrono_literals;

// A self-checking version: "V <writer> <iter> <len>\n" + `len` bytes +
// "\n<hash of all before>\n". A torn or mixed file never checks out.
std::string make_version(int writer, int iter, std::size_t len) {
  char head[64];
  std::snprintf(head, sizeof head, "V %d %d %zu\n", writer, iter, len);
  std::string v = head;
  v += pattern(len, static_cast<std::uint32_t>(writer * 1000 + iter));
  v += '\n';
  char tail[32];
  std::snprintf(tail, sizeof tail, "%016llx\n", static_cast<unsigned long long>(fnv1a(v)));
  return v + tail;
}

bool whole_version(const std::string& v) {
  const auto nl = v.find('\n');
  if (v.size() < 2 || v[0] != 'V' || nl == std::string::npos) return false;
  int w = 0, i = 0;
  std::size_t len = 0;
  if (std::sscanf(v.c_str(), "V %d %d %zu\n", &w, &i, &len) != 3) return false;
  if (v.size() != nl + 1 + len + 1 + 17) return false;
  const std::string body = v.substr(0, nl + 1 + len + 1);
  char tail[32];
  std::snprintf(tail, sizeof tail, "%016llx\n", static_cast<unsigned long long>(fnv1a(body)));
  return v.compare(body.size(), std::string::npos, tail) == 0;
}

// The conflict records and contents in B/.snapfs/conflicts.
struct Kept {
  std::vector<std::string> records;   // "<id>.json"
  std::vector<std::string> contents;  // "<id>"
};
Kept kept_in(const fs::path& b) {
  Kept k;
  for (const auto& n : list_dir(b / ".snapfs" / "conflicts")) {
    if (n.size() > 5 && n.compare(n.size() - 5, 5, ".json") == 0)
      k.records.push_back(n);
    else
      k.contents.push_back(n);
  }
  return k;
}

// A T in an anonymous shared mapping: the counters that the test and its
// child processes update together (lock-free atomics work across
// processes). Made before the fork.
template <typename T>
class Shared {
public:
  Shared() {
    void* p = ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap of the shared counters");
    t_ = new (p) T{};
  }
  Shared(const Shared&) = delete;
  Shared& operator=(const Shared&) = delete;
  ~Shared() {
    t_->~T();
    ::munmap(t_, sizeof(T));
  }
  T* operator->() const noexcept { return t_; }

private:
  T* t_ = nullptr;
};
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<bool>::is_always_lock_free);

class Conflicts : public FuseMount {};

// docs/semantics.md#conflicts, --on-conflict=fail (the default): first committer
// wins; the loser's close() fails with ESTALE and its content is kept whole.
// The first writer is another process (a Peer); the loser is this one.
TEST_P(Conflicts, SecondWriterLosesAndIsKept) {
  Peer first;
  write_file(b("f"), "original\n");
  const int a = first.open(m("f"), O_RDWR);
  const int c = xopen(m("f"), O_RDWR);
  ASSERT_GE(a, 0);
  ASSERT_GE(c, 0);
  ASSERT_TRUE(first.pwrite(a, "first writer\n", 0));
  ASSERT_TRUE(pwrite_str(c, "second writer, longer\n", 0));
  ASSERT_EQ(first.close(a), 0);
  EXPECT_EQ(xclose(c), -ESTALE);
  EXPECT_EQ(read_file(b("f")), "first writer\n");
  EXPECT_EQ(read_file(m("f")), "first writer\n");

  const Kept k = kept_in(backing());
  ASSERT_EQ(k.records.size(), 1u);
  ASSERT_EQ(k.contents.size(), 1u);
  EXPECT_EQ(k.records[0], k.contents[0] + ".json");
  const fs::path content = b(".snapfs/conflicts/" + k.contents[0]);
  EXPECT_EQ(read_file(content), "second writer, longer\n");
  EXPECT_EQ(stat_of(content).st_mode & 07777, 0600u);

  // `snapfs conflicts` reads this: the fields of mount/report.cpp.
  const std::string j = xattr_of(mnt(), kConflictsXattr);
  EXPECT_EQ(j.front(), '[') << j;
  EXPECT_EQ(j.back(), ']') << j;
  EXPECT_NE(j.find("\"path\":\"f\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"size\":22"), std::string::npos) << j;
  EXPECT_NE(j.find("\"pid\":" + std::to_string(::getpid())), std::string::npos) << j;
  EXPECT_NE(j.find("\"time\":"), std::string::npos) << j;
  EXPECT_NE(j.find("\"kept_at\":\"" + content.string() + "\""), std::string::npos) << j;
  EXPECT_NE(xattr_of(mnt(), kStatusXattr).find("\"conflicts\":1"), std::string::npos);

  // A later open sees the winner; a new commit from it is no conflict.
  const int d = xopen(m("f"), O_RDWR | O_APPEND);
  ASSERT_GE(d, 0);
  ASSERT_TRUE(write_str(d, "more\n"));
  ASSERT_EQ(xclose(d), 0);
  EXPECT_EQ(read_file(b("f")), "first writer\nmore\n");
}

// The winner (c) is another process.
TEST_P(Conflicts, RecordNamesTheRelativePath) {
  Peer winner;
  ASSERT_EQ(::mkdir(b("dir").c_str(), 0755), 0);
  write_file(b("dir/g"), "x");
  const int a = xopen(m("dir/g"), O_RDWR);
  const int c = winner.open(m("dir/g"), O_WRONLY | O_TRUNC);
  ASSERT_GE(a, 0);
  ASSERT_GE(c, 0);
  ASSERT_TRUE(pwrite_str(a, "A", 0));
  ASSERT_TRUE(winner.write(c, "CC"));
  ASSERT_EQ(winner.close(c), 0);
  EXPECT_EQ(xclose(a), -ESTALE);
  EXPECT_EQ(read_file(b("dir/g")), "CC");
  EXPECT_NE(xattr_of(mnt(), kConflictsXattr).find("\"path\":\"dir/g\""), std::string::npos);
}

// A change made directly in B after the open, in place (same inode, same
// size: only the mtime tells), is a conflict too.
TEST_P(Conflicts, ChangeInBackingAfterOpen) {
  write_file(b("f"), "0123456789");
  const struct timespec old[2] = {{1000000000, 0}, {1000000000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, b("f").c_str(), old, 0), 0);
  const int fd = xopen(m("f"), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(pwrite_str(fd, "mine", 0));
  pwrite_file(b("f"), 0, "ABCDEFGHIJ");
  EXPECT_EQ(xclose(fd), -ESTALE);
  EXPECT_EQ(read_file(b("f")), "ABCDEFGHIJ");
  EXPECT_EQ(kept_in(backing()).records.size(), 1u);
}

// Metadata is not content: chmod (in B or through M) and utimens through M
// while a description is open are no conflict
// (docs/semantics.md#commit-at-close: they survive).
TEST_P(Conflicts, MetadataChangesAreNoConflict) {
  write_file(b("f"), "old");
  const int fd = xopen(m("f"), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(pwrite_str(fd, "new", 0));
  ASSERT_EQ(::chmod(b("f").c_str(), 0640), 0);
  ASSERT_EQ(::chmod(m("f").c_str(), 0600), 0);
  const struct timespec t[2] = {{1234567890, 0}, {1234567890, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, m("f").c_str(), t, 0), 0);
  EXPECT_EQ(xclose(fd), 0);
  EXPECT_EQ(read_file(b("f")), "new");
  EXPECT_EQ(stat_of(b("f")).st_mode & 07777, 0600u);
  EXPECT_TRUE(kept_in(backing()).records.empty());
}

// After a conflict the description is clean; a further close of a dup
// publishes nothing, and B/p keeps the winner (another process's).
TEST_P(Conflicts, LoserIsCleanAfterwards) {
  Peer winner;
  write_file(b("f"), "base");
  const int a = winner.open(m("f"), O_RDWR);
  const int c = xopen(m("f"), O_RDWR);
  ASSERT_GE(a, 0);
  ASSERT_GE(c, 0);
  const int c2 = ::dup(c);
  ASSERT_TRUE(winner.pwrite(a, "AAAA", 0));
  ASSERT_TRUE(pwrite_str(c, "CCCC", 0));
  ASSERT_EQ(winner.close(a), 0);
  EXPECT_EQ(xclose(c), -ESTALE);
  EXPECT_EQ(pread_all(c2), "CCCC");  // it still reads its own version
  EXPECT_EQ(xclose(c2), 0);
  EXPECT_EQ(read_file(b("f")), "AAAA");
  EXPECT_EQ(kept_in(backing()).records.size(), 1u);
}

// (a') Bounded stress: writers replace the whole file, readers check every
// read is one whole version; every attempt either committed or is kept.
// Each writer and each reader is its own process (Child): writers that
// were threads of one process would share one version.
TEST_P(Conflicts, WritersAndReadersStress) {
  constexpr int kWriters = 3, kIters = 12, kReaders = 2;
  write_file(b("f"), make_version(99, 0, 100));
  struct Tally {
    std::atomic<int> ok, lost, bad, reads, torn, writers_left;
  };
  const Shared<Tally> t;
  t->writers_left = kWriters;
  std::vector<std::unique_ptr<Child>> writers, readers;
  for (int w = 0; w < kWriters; ++w) {
    writers.push_back(std::make_unique<Child>([&, w] {
      for (int i = 0; i < kIters; ++i) {
        int fd = -ESTALE;
        for (int tries = 0; tries < 5 && fd == -ESTALE; ++tries) fd = xopen(m("f"), O_RDWR);
        if (fd < 0) {
          ++t->bad;
          continue;
        }
        const std::string v = make_version(w, i, 1000 + static_cast<std::size_t>(w * 3000 + i * 97));
        const bool wrote = pwrite_str(fd, v, 0) && ::ftruncate(fd, static_cast<off_t>(v.size())) == 0;
        const int r = xclose(fd);
        if (!wrote) ++t->bad;
        if (r == 0)
          ++t->ok;
        else if (r == -ESTALE)
          ++t->lost;
        else
          ++t->bad;
      }
      --t->writers_left;
      return 0;
    }));
  }
  for (int rd = 0; rd < kReaders; ++rd) {
    readers.push_back(std::make_unique<Child>([&] {
      while (t->writers_left.load() > 0 || t->reads.load() < 4) {
        const int fd = xopen(m("f"), O_RDONLY);
        if (fd < 0) continue;  // ESTALE twice on a re-walk: not a wrong read
        const std::string v = pread_all(fd);
        ::close(fd);
        ++t->reads;
        if (!whole_version(v)) ++t->torn;
      }
      return 0;
    }));
  }
  for (auto& c : writers) {
    const ExitStatus st = c->wait(30s);
    EXPECT_TRUE(st.ok()) << "writer: " << st.describe();
  }
  t->writers_left = 0;  // also if a writer died: the readers stop
  for (auto& c : readers) {
    const ExitStatus st = c->wait(30s);
    EXPECT_TRUE(st.ok()) << "reader: " << st.describe();
  }
  EXPECT_EQ(t->bad.load(), 0);
  EXPECT_EQ(t->torn.load(), 0) << "a reader saw a version that is not whole";
  EXPECT_EQ(t->ok.load() + t->lost.load(), kWriters * kIters);
  EXPECT_GT(t->ok.load(), 0);
  const int lost = t->lost.load();
  const Kept k = kept_in(backing());
  EXPECT_EQ(static_cast<int>(k.records.size()), lost);
  EXPECT_EQ(static_cast<int>(k.contents.size()), lost);
  for (const auto& c : k.contents)
    EXPECT_TRUE(whole_version(read_file(b(".snapfs/conflicts/" + c)))) << c;
  EXPECT_TRUE(whole_version(read_file(b("f"))));
  EXPECT_NE(xattr_of(mnt(), kStatusXattr).find("\"conflicts\":" + std::to_string(lost)),
            std::string::npos);
  EXPECT_TRUE(list_dir(b(".snapfs/staging")).empty());
}

// (b) Concurrent appenders in two processes, each line with its own
// open(O_APPEND)/write/close: every line lands exactly once (rebase).
void expect_each_line_once(const std::string& text, int procs, int lines) {
  std::map<std::string, int> seen;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) ++seen[line];
  for (int p = 0; p < procs; ++p)
    for (int i = 0; i < lines; ++i) {
      char want[32];
      std::snprintf(want, sizeof want, "P%d line %d", p, i);
      EXPECT_EQ(seen[want], 1) << want;
    }
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(procs * lines));
}

// Runs fn(p) in `procs` child processes at once; true if all exit 0.
template <typename F>
bool in_processes(int procs, F fn) {
  std::vector<pid_t> kids;
  for (int p = 0; p < procs; ++p) {
    const pid_t pid = ::fork();
    if (pid == 0) _exit(fn(p));
    kids.push_back(pid);
  }
  bool all = true;
  for (pid_t k : kids) {
    int st = 0;
    ::waitpid(k, &st, 0);
    all = all && WIFEXITED(st) && WEXITSTATUS(st) == 0;
  }
  return all;
}

TEST_P(Conflicts, ConcurrentAppendersOpenPerLine) {
  constexpr int kProcs = 2, kLines = 60;
  const std::string log = m("log").string();
  ASSERT_TRUE(in_processes(kProcs, [&](int p) {
    for (int i = 0; i < kLines; ++i) {
      char line[32];
      const int n = std::snprintf(line, sizeof line, "P%d line %d\n", p, i);
      const int fd = ::open(log.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
      if (fd < 0) return 10;
      if (::write(fd, line, static_cast<std::size_t>(n)) != n) return 11;
      if (::close(fd) != 0) return 12;
    }
    return 0;
  }));
  expect_each_line_once(read_file(b("log")), kProcs, kLines);
  EXPECT_TRUE(kept_in(backing()).records.empty());
}

// Long-lived O_APPEND descriptors, each closed (through a dup) after every
// line: one description is rebased again and again and keeps extending the
// merged file.
TEST_P(Conflicts, ConcurrentAppendersLongLivedDescriptors) {
  constexpr int kProcs = 2, kLines = 60;
  write_file(b("log"), "");
  const std::string log = m("log").string();
  ASSERT_TRUE(in_processes(kProcs, [&](int p) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) return 10;
    for (int i = 0; i < kLines; ++i) {
      char line[32];
      const int n = std::snprintf(line, sizeof line, "P%d line %d\n", p, i);
      if (::write(fd, line, static_cast<std::size_t>(n)) != n) return 11;
      const int d = ::dup(fd);
      if (d < 0 || ::close(d) != 0) return 12;  // FLUSH: commit (rebased if needed)
    }
    return ::close(fd) == 0 ? 0 : 13;
  }));
  expect_each_line_once(read_file(b("log")), kProcs, kLines);
  EXPECT_TRUE(kept_in(backing()).records.empty());
}

// Hiding: B/.snapfs exists (0700) but the view neither shows nor makes it.
TEST_P(Conflicts, MetaDirIsHidden) {
  EXPECT_TRUE(fs::is_directory(b(".snapfs/staging")));
  EXPECT_TRUE(fs::is_directory(b(".snapfs/conflicts")));
  EXPECT_EQ(stat_of(b(".snapfs")).st_mode & 07777, 0700u);
  write_file(b("a"), "a");
  struct stat st {};
  errno = 0;
  EXPECT_EQ(::lstat(m(".snapfs").c_str(), &st), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(list_dir(mnt()), std::vector<std::string>{"a"});
  auto fails = [](int r, int want) { return r == -1 && errno == want; };
  EXPECT_TRUE(fails(::mkdir(m(".snapfs").c_str(), 0755), EPERM)) << errno;
  EXPECT_EQ(xopen(m(".snapfs"), O_WRONLY | O_CREAT, 0644), -EPERM);
  EXPECT_TRUE(fails(::symlink("a", m(".snapfs").c_str()), EPERM)) << errno;
  EXPECT_TRUE(fails(::mkfifo(m(".snapfs").c_str(), 0644), EPERM)) << errno;
  EXPECT_TRUE(fails(::link(m("a").c_str(), m(".snapfs").c_str()), EPERM)) << errno;
  EXPECT_TRUE(fails(::rename(m("a").c_str(), m(".snapfs").c_str()), EPERM)) << errno;
  EXPECT_TRUE(fails(::unlink(m(".snapfs").c_str()), ENOENT)) << errno;
  EXPECT_TRUE(fails(::rmdir(m(".snapfs").c_str()), ENOENT)) << errno;
  EXPECT_EQ(xattr_of(mnt(), kConflictsXattr), "[]");
  // Only the root's: elsewhere it is an ordinary name.
  ASSERT_EQ(::mkdir(m("sub").c_str(), 0755), 0);
  EXPECT_EQ(::mkdir(m("sub/.snapfs").c_str(), 0755), 0);
  EXPECT_TRUE(fs::is_directory(b("sub/.snapfs")));
  EXPECT_TRUE(fs::is_directory(b(".snapfs/staging")));
  EXPECT_EQ(read_file(b("a")), "a");
}

// (c) SIGKILL of the daemon during a commit storm, then the next mount on
// the same B: its recovery empties staging and drops records without
// content; every file is one whole version. The writers are processes
// (Child), several of them writing each file, as independent writers.
TEST_P(Conflicts, CrashDuringCommitStormThenRecovery) {
  constexpr int kFiles = 4;
  for (int round = 0; round < 2; ++round) {
    for (int f = 0; f < kFiles; ++f)
      if (round == 0) write_file(b("f" + std::to_string(f)), make_version(f, 0, 500));
    struct Storm {
      std::atomic<bool> stop;
      std::atomic<int> commits;
    };
    const Shared<Storm> s;
    std::vector<std::unique_ptr<Child>> writers;
    for (int w = 0; w < kFiles; ++w) {
      writers.push_back(std::make_unique<Child>([&, w] {
        for (int i = 1; !s->stop.load(); ++i) {
          // No O_CREAT: once the mount is gone, M is an empty directory.
          const int fd = xopen(m("f" + std::to_string((w + i) % kFiles)), O_RDWR);
          if (fd == -ESTALE) continue;
          if (fd < 0) return 0;
          const std::string v = make_version(w, i, 2000 + static_cast<std::size_t>(i % 7) * 1500);
          const bool wrote = pwrite_str(fd, v, 0) && ::ftruncate(fd, static_cast<off_t>(v.size())) == 0;
          const int r = xclose(fd);
          if (!wrote || (r != 0 && r != -ESTALE)) return 0;  // the daemon is gone
          if (r == 0) ++s->commits;
        }
        return 0;
      }));
    }
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (s->commits.load() < 30 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(1ms);
    kill_daemon();
    s->stop = true;
    for (auto& c : writers) {
      const ExitStatus st = c->wait(20s);
      EXPECT_TRUE(st.ok()) << "writer: " << st.describe();
    }
    EXPECT_GE(s->commits.load(), 30);

    // What a crash between link and rename leaves, and a conflict whose
    // content never arrived: the recovery removes both.
    write_file(b(".snapfs/staging/.snapfs-0123456789abcdef.tmp"), "half a commit");
    write_file(b(".snapfs/conflicts/20200101T000000.000000000Z-1-deadbeef.json"), "{}");
    std::string why;
    ASSERT_TRUE(remount(why)) << why;
    EXPECT_TRUE(list_dir(b(".snapfs/staging")).empty());
    for (const auto& n : list_dir(b(".snapfs/conflicts")))
      EXPECT_EQ(n.find("deadbeef"), std::string::npos) << n;
    EXPECT_NE(daemon_log().find("removed an interrupted commit: .snapfs-0123456789abcdef.tmp"),
              std::string::npos)
        << daemon_log();
    for (int f = 0; f < kFiles; ++f) {
      const std::string name = "f" + std::to_string(f);
      EXPECT_TRUE(whole_version(read_file(b(name)))) << name;
      EXPECT_EQ(read_file(m(name)), read_file(b(name)));
    }
    EXPECT_EQ(list_backing(backing()).size(), static_cast<std::size_t>(kFiles));
  }
}

// Records live in B: the next daemon on the same B lists them too.
// The winner is another process.
TEST_P(Conflicts, RecordsSurviveARemount) {
  Peer winner;
  write_file(b("f"), "base");
  const int a = winner.open(m("f"), O_RDWR);
  const int c = xopen(m("f"), O_RDWR);
  ASSERT_GE(a, 0);
  ASSERT_GE(c, 0);
  ASSERT_TRUE(winner.pwrite(a, "AAAA", 0));
  ASSERT_TRUE(pwrite_str(c, "CCCC", 0));
  ASSERT_EQ(winner.close(a), 0);
  ASSERT_EQ(xclose(c), -ESTALE);
  const std::string before = xattr_of(mnt(), kConflictsXattr);
  kill_daemon();
  std::string why;
  ASSERT_TRUE(remount(why)) << why;
  EXPECT_EQ(xattr_of(mnt(), kConflictsXattr), before);
  EXPECT_NE(xattr_of(mnt(), kStatusXattr).find("\"conflicts\":1"), std::string::npos);
  EXPECT_EQ(read_file(m("f")), "AAAA");
}

// With durability=full every publish of a conflict (record, content) also
// syncs conflicts/; the outcome is the same. The appender and the winner
// are another process.
class ConflictsDurable : public FuseMount {
protected:
  std::string mount_options() const override { return "durability=full"; }
};

TEST_P(ConflictsDurable, LoserIsKept) {
  Peer other;
  write_file(b("f"), "base");
  const int a = other.open(m("f"), O_RDWR | O_APPEND);
  const int c = xopen(m("f"), O_RDWR);
  ASSERT_GE(a, 0);
  ASSERT_GE(c, 0);
  ASSERT_TRUE(other.write(a, "+a"));
  ASSERT_TRUE(pwrite_str(c, "CCCC", 0));
  ASSERT_EQ(xclose(c), 0);
  ASSERT_EQ(other.close(a), 0);  // only appended: rebased
  EXPECT_EQ(read_file(b("f")), "CCCC+a");
  const int d = other.open(m("f"), O_RDWR);
  const int e = xopen(m("f"), O_RDWR);
  ASSERT_GE(d, 0);
  ASSERT_GE(e, 0);
  ASSERT_TRUE(other.pwrite(d, "D", 0));
  ASSERT_TRUE(pwrite_str(e, "E", 0));
  ASSERT_EQ(other.close(d), 0);
  EXPECT_EQ(xclose(e), -ESTALE);
  EXPECT_EQ(read_file(b("f")), "DCCC+a");
  const Kept k = kept_in(backing());
  ASSERT_EQ(k.contents.size(), 1u);
  EXPECT_EQ(read_file(b(".snapfs/conflicts/" + k.contents[0])), "ECCC+a");
}

// --on-conflict=overwrite: last writer wins, both closes succeed. The first
// writer (or appender) is another process.
class ConflictsOverwrite : public FuseMount {
protected:
  std::string mount_options() const override { return "on-conflict=overwrite"; }
};

TEST_P(ConflictsOverwrite, LastWriterWins) {
  Peer first;
  write_file(b("f"), "original\n");
  const int a = first.open(m("f"), O_RDWR);
  const int c = xopen(m("f"), O_RDWR);
  ASSERT_GE(a, 0);
  ASSERT_GE(c, 0);
  ASSERT_TRUE(first.pwrite(a, "first writer\n", 0));
  ASSERT_TRUE(pwrite_str(c, "second writer, longer\n", 0));
  ASSERT_EQ(first.close(a), 0);
  ASSERT_EQ(xclose(c), 0);
  EXPECT_EQ(read_file(b("f")), "second writer, longer\n");
  EXPECT_TRUE(kept_in(backing()).records.empty());
  EXPECT_EQ(xattr_of(mnt(), kConflictsXattr), "[]");
  EXPECT_NE(daemon_log().find("overwrote"), std::string::npos) << daemon_log();
}

TEST_P(ConflictsOverwrite, AppendersAreStillRebased) {
  Peer first;
  write_file(b("log"), "start\n");
  const int a = first.open(m("log"), O_WRONLY | O_APPEND);
  const int c = xopen(m("log"), O_WRONLY | O_APPEND);
  ASSERT_GE(a, 0);
  ASSERT_GE(c, 0);
  ASSERT_TRUE(first.write(a, "a\n"));
  ASSERT_TRUE(write_str(c, "c\n"));
  ASSERT_EQ(xclose(c), 0);
  ASSERT_EQ(first.close(a), 0);
  EXPECT_EQ(read_file(b("log")), "start\nc\na\n");
  EXPECT_NE(xattr_of(mnt(), kStatusXattr).find("\"rebases\":1"), std::string::npos);
}

// close() returns the commit's error (FLUSH, docs/design-fuse.md,
// "Kernel facts" 1): with overwrite a file whose directory was removed directly
// in B has nowhere to go.
TEST_P(ConflictsOverwrite, CloseReportsCommitError) {
  expect_daemon_errors();
  ASSERT_EQ(::mkdir(b("d").c_str(), 0755), 0);
  write_file(b("d/f"), "old");
  const int fd = xopen(m("d/f"), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(pwrite_str(fd, "new", 0));
  ASSERT_EQ(::unlink(b("d/f").c_str()), 0);
  ASSERT_EQ(::rmdir(b("d").c_str()), 0);
  EXPECT_EQ(xclose(fd), -ENOENT);
  EXPECT_FALSE(fs::exists(b("d")));
  EXPECT_NE(daemon_log().find("commit of d/f failed"), std::string::npos) << daemon_log();
}

// (e) A full backing filesystem: the write fails with ENOSPC (or the open,
// whose snapshot needs space on tmpfs), and B/p is unchanged.
class ConflictsFull : public FuseMount {
protected:
  std::uint64_t fs_size() const override { return tiny_size(kind()); }
};

TEST_P(ConflictsFull, EnospcLeavesBackingUnchanged) {
  expect_daemon_errors();  // a commit that fails is logged at error
  write_file(b("f"), "old content");
  const int fd = xopen(m("f"), O_RDWR);
  ASSERT_GE(fd, 0);
  fill_filesystem(backing().parent_path(), "filler");
  const std::string big(256 * 1024, 'x');
  // Past the snapshot's first block, so nothing fits: no short write.
  errno = 0;
  const ssize_t w = ::pwrite(fd, big.data(), big.size(), 4096);
  const int werr = errno;
  const int c = xclose(fd);
  EXPECT_TRUE((w < 0 && werr == ENOSPC) || c == -ENOSPC)
      << "write " << w << " " << errno_name(werr) << ", close " << c;
  EXPECT_EQ(read_file(b("f")), "old content");

  const int again = xopen(m("f"), O_RDWR);
  if (again >= 0) {
    const ssize_t w2 = ::pwrite(again, big.data(), big.size(), 4096);
    const int c2 = xclose(again);
    EXPECT_TRUE(w2 < 0 || c2 == -ENOSPC);
  } else {
    EXPECT_EQ(again, -ENOSPC);
  }
  EXPECT_EQ(read_file(b("f")), "old content");
  EXPECT_TRUE(list_dir(b(".snapfs/staging")).empty());

  // With space again, the same change commits.
  fs::remove(backing().parent_path() / "filler");
  const int ok = xopen(m("f"), O_RDWR);
  ASSERT_GE(ok, 0);
  ASSERT_TRUE(pwrite_str(ok, "new", 0));
  ASSERT_EQ(xclose(ok), 0);
  EXPECT_EQ(read_file(b("f")), "new content");
}

SNAPFS_INSTANTIATE_MOUNT(Conflicts);
SNAPFS_INSTANTIATE_MOUNT(ConflictsOverwrite);
SNAPFS_INSTANTIATE_MOUNT(ConflictsDurable);
// tmpfs only: filling the smallest XFS (300 MiB) is not worth the time here.
INSTANTIATE_TEST_SUITE_P(Fs, ConflictsFull, ::testing::Values(FsKind::tmpfs), param_name);

// Every commit of "f" fails with ESTALE from B after its check (snapfs_testd's
// test_fault), as on a network file system whose handle went stale.
class CommitFailsStale : public FuseMount {
protected:
  std::string mount_options() const override { return "test_fault=commit.stale:f"; }
  bool needs_testd() const override { return true; }
};

// close() says ESTALE only for a lost conflict, whose content is kept: a
// commit that failed for another reason, even with ESTALE from B, is EIO.
TEST_P(CommitFailsStale, AFailedCommitIsNotReportedAsALostConflict) {
  expect_daemon_errors();
  write_file(b("f"), "original\n");
  const int fd = xopen(m("f"), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(pwrite_str(fd, "never published\n", 0));
  EXPECT_EQ(xclose(fd), -EIO);
  EXPECT_EQ(read_file(b("f")), "original\n");
  EXPECT_EQ(kept_in(backing()).records.size(), 0u);
}

SNAPFS_INSTANTIATE_MOUNT(CommitFailsStale);

}  // namespace
}  // namespace snapfs::test
