// Several daemons over one B (docs/design-shared-storage.md): two views of
// one backing directory, each served by a daemon of its own, as two
// containers or two machines over shared storage would have them. First
// committer wins across daemons as within one; recovery at a mount never
// touches a live daemon's commit in flight.
#include "fuse_mount.hpp"
#include "mount_util.hpp"
#include "support/count_up.hpp"
#include "support/peer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <ctime>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace snapfs::test {
namespace {

using Daemons = FuseMount;

// The ids of B/.snapfs/daemons (live or not).
std::vector<std::string> registered(const fs::path& b) {
  std::vector<std::string> ids;
  for (const auto& e : fs::directory_iterator(b / ".snapfs" / "daemons")) {
    const std::string n = e.path().filename().string();
    if (n.size() == 16 && n[0] != '.') ids.push_back(n);
  }
  return ids;
}

// Three processes count up one file: two through the first view, one
// through the second.
TEST_P(Daemons, NoAcknowledgedUpdateIsLostBetweenTwoDaemons) {
  std::string why;
  const fs::path m2 = add_view(why);
  ASSERT_FALSE(m2.empty()) << why;
  write_file(b("counter"), "0\n");
  constexpr int kRounds = 120;
  CountUp c;
  std::vector<std::thread> ts;
  for (const fs::path& view : {mnt(), mnt(), m2})
    ts.emplace_back([&c, file = view / "counter"] { c.run(file, kRounds); });
  for (auto& t : ts) t.join();
  EXPECT_EQ(c.errors.load(), 0) << c.first_error;
  EXPECT_TRUE(c.none_lost(read_file(b("counter"))));
  EXPECT_EQ(c.published.size() + static_cast<std::size_t>(c.lost.load()), 3u * kRounds);
}

// The daemons may spell a directory differently: one renamed it, the other
// still holds it under its old name (a process keeps it open there). A
// commit of one file through both must still be one at a time.
TEST_P(Daemons, NoUpdateIsLostWhenTheDaemonsNameADirectoryDifferently) {
  std::string why;
  const fs::path m2 = add_view(why);
  ASSERT_FALSE(m2.empty()) << why;
  fs::create_directory(b("d"));
  write_file(b("d/counter"), "0\n");
  // Held through the second view before the rename: that daemon's node for
  // it keeps the name "d".
  const int held = ::open((m2 / "d").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(held, 0);
  ASSERT_EQ(::rename(m("d").c_str(), m("e").c_str()), 0);
  const fs::path old_name =
      fs::path("/proc") / std::to_string(::getpid()) / "fd" / std::to_string(held) / "counter";
  CountUp c;
  std::thread a([&] { c.run(m("e/counter"), 150); });
  std::thread o([&] { c.run(old_name, 150); });
  a.join();
  o.join();
  ::close(held);
  EXPECT_EQ(c.errors.load(), 0) << c.first_error;
  EXPECT_TRUE(c.none_lost(read_file(b("e/counter"))));
}

// Appenders through different daemons: each close is rebased onto what
// the other published (docs/semantics.md#conflicts), so no line is lost.
TEST_P(Daemons, AppendersThroughTwoDaemonsLoseNoLine) {
  std::string why;
  const fs::path m2 = add_view(why);
  ASSERT_FALSE(m2.empty()) << why;
  write_file(b("log"), "");
  constexpr int kLines = 150;
  std::atomic<int> failed{0};
  const auto appender = [&](const fs::path& view, char who) {
    Peer p;
    for (int i = 0; i < kLines; ++i) {
      const int fd = p.open(view / "log", O_WRONLY | O_APPEND);
      if (fd < 0 || !p.write(fd, std::string(1, who) + std::to_string(i) + "\n") ||
          p.close(fd) != 0)
        ++failed;
    }
  };
  std::thread a(appender, mnt(), 'a');
  std::thread c(appender, m2, 'c');
  a.join();
  c.join();
  EXPECT_EQ(failed.load(), 0);
  const std::string text = read_file(b("log"));
  std::set<std::string> lines;
  std::size_t start = 0;
  for (std::size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1)
    lines.insert(text.substr(start, nl - start));
  for (char who : {'a', 'c'}) {
    for (int i = 0; i < kLines; ++i) {
      EXPECT_EQ(lines.count(std::string(1, who) + std::to_string(i)), 1u)
          << "line " << who << i << " was lost";
    }
  }
}

// A daemon mounting over B while another lives removes the leftovers of
// daemons that are gone, never the other's commit in flight (its staging
// name, or its conflict record before the content is linked).
TEST_P(Daemons, RecoveryLeavesALiveDaemonsCommitsAlone) {
  std::string why;
  const fs::path m2 = add_view(why);
  ASSERT_FALSE(m2.empty()) << why;
  const auto live = registered(backing());
  ASSERT_EQ(live.size(), 2u) << "each daemon registers in B/.snapfs/daemons";
  const fs::path staging = b(".snapfs/staging"), conflicts = b(".snapfs/conflicts");
  for (const auto& id : live) {
    write_file(staging / (id + "-0123456789abcdef.tmp"), "in flight");
    write_file(conflicts / (id + "-record.json"),
               "{\"id\":\"x\",\"path\":\"f\",\"daemon\":\"" + id + "\"}\n");
  }
  const std::string dead = "0000000000000000";
  write_file(staging / (dead + "-0123456789abcdef.tmp"), "left by a crash");
  write_file(conflicts / (dead + "-record.json"),
             "{\"id\":\"x\",\"path\":\"f\",\"daemon\":\"" + dead + "\"}\n");
  write_file(staging / ".snapfs-0123456789abcdef.tmp", "left by an older daemon");
  // Registrations in the making (created, not yet locked): a fresh one may
  // be a daemon starting now; one older than a minute died so.
  const fs::path fresh = b(".snapfs/daemons/.1111111111111111");
  const fs::path stale = b(".snapfs/daemons/.2222222222222222");
  write_file(fresh, "");
  write_file(stale, "");
  const struct timespec old_times[2] = {{0, UTIME_OMIT}, {std::time(nullptr) - 120, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, stale.c_str(), old_times, 0), 0);

  const fs::path m3 = add_view(why);
  ASSERT_FALSE(m3.empty()) << why;
  for (const auto& id : live) {
    EXPECT_TRUE(fs::exists(staging / (id + "-0123456789abcdef.tmp")))
        << "recovery removed a live daemon's commit in flight";
    EXPECT_TRUE(fs::exists(conflicts / (id + "-record.json")))
        << "recovery removed a live daemon's conflict record";
  }
  EXPECT_FALSE(fs::exists(staging / (dead + "-0123456789abcdef.tmp")));
  EXPECT_FALSE(fs::exists(conflicts / (dead + "-record.json")));
  EXPECT_FALSE(fs::exists(staging / ".snapfs-0123456789abcdef.tmp"));
  EXPECT_TRUE(fs::exists(fresh)) << "a registration in the making was taken for a dead one";
  EXPECT_FALSE(fs::exists(stale));

  // Once the second daemon is gone (killed), the next mount takes its
  // leftovers and its registration away, and still leaves the others'.
  std::string second;  // its id: its registration names its mount point
  for (const auto& id : live)
    if (read_file(b(".snapfs/daemons/" + id)).find(m2.string()) != std::string::npos) second = id;
  ASSERT_FALSE(second.empty()) << "no registration names " << m2;
  kill_view(m2);
  const fs::path m4 = add_view(why);
  ASSERT_FALSE(m4.empty()) << why;
  for (const auto& id : live) {
    EXPECT_EQ(fs::exists(staging / (id + "-0123456789abcdef.tmp")), id != second) << id;
    EXPECT_EQ(fs::exists(b(".snapfs/daemons/" + id)), id != second) << id;
    EXPECT_EQ(fs::exists(b(".snapfs/daemons/" + id + ".control")), id != second)
        << "the control socket of a daemon that is gone stays: " << id;
  }
}

// "v<seq>\n" over and over, 64 KiB: a version of `whole` a reader can check
// for tearing (one token throughout) and order (its seq).
std::string whole_version(int seq) {
  const std::string token = "v" + std::to_string(seq) + "\n";
  std::string out;
  while (out.size() + token.size() <= 65536) out += token;
  return out;
}

// The seq of a whole version, or -1 if `text` is not one (torn, mixed).
int seq_of(const std::string& text) {
  const auto nl = text.find('\n');
  if (text.empty() || text[0] != 'v' || nl == std::string::npos) return -1;
  const std::string token = text.substr(0, nl + 1);
  for (std::size_t at = 0; at < text.size(); at += token.size())
    if (text.compare(at, token.size(), token) != 0) return -1;
  return std::stoi(text.substr(1, nl - 1));
}

// One daemon is SIGKILLed again and again while it publishes, while two
// processes commit through another daemon over the same B: the survivor
// never fails a request nor loses an update, no file in B is ever torn,
// an acknowledged version is never lost, and recovery leaves nothing of
// the killed daemons behind.
TEST_P(Daemons, KillingOneDaemonAgainAndAgainHarmsNeitherBNorTheOther) {
  write_file(b("counter"), "0\n");
  write_file(b("whole"), whole_version(0));
  constexpr int kRounds = 150, kKills = 5;
  CountUp survivors;
  std::vector<std::thread> counting;
  for (int i = 0; i < 2; ++i)
    counting.emplace_back([&, file = mnt() / "counter"] { survivors.run(file, kRounds); });

  std::mt19937 rnd(std::random_device{}());
  int seq = 0, acked = 0;
  for (int k = 0; k < kKills; ++k) {
    std::string why;
    const fs::path m2 = add_view(why);
    ASSERT_FALSE(m2.empty()) << why;
    std::atomic<bool> stop{false};
    std::atomic<int> attempted{seq};
    std::thread writer([&, file = m2 / "whole"] {
      Peer p;
      while (!stop.load()) {
        const int next = attempted.load() + 1;
        attempted.store(next);
        const int fd = p.open(file, O_WRONLY | O_TRUNC);
        if (fd < 0) break;  // the daemon is gone
        const bool wrote = p.write(fd, whole_version(next));
        if (p.close(fd) != 0 || !wrote) break;
        acked = next;
      }
    });
    // Killed at a moment nobody chose: mid-write, mid-commit or idle.
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + rnd() % 80));
    kill_view(m2);
    stop = true;
    writer.join();
    seq = attempted.load();
    const int now = seq_of(read_file(b("whole")));
    EXPECT_GE(now, acked) << "an acknowledged version was lost (kill " << k << ")";
    EXPECT_LE(now, seq) << "kill " << k;
  }
  for (auto& t : counting) t.join();
  EXPECT_EQ(survivors.errors.load(), 0) << survivors.first_error;
  EXPECT_TRUE(survivors.none_lost(read_file(b("counter"))));
  EXPECT_GE(seq_of(read_file(mnt() / "whole")), acked);

  // The next mount's recovery: nothing of the killed daemons stays.
  std::string why;
  const fs::path last = add_view(why);
  ASSERT_FALSE(last.empty()) << why;
  const auto live = registered(backing());
  for (const auto& e : fs::directory_iterator(b(".snapfs/staging"))) {
    const std::string n = e.path().filename().string();
    EXPECT_TRUE(std::any_of(live.begin(), live.end(),
                            [&](const std::string& id) { return n.rfind(id + "-", 0) == 0; }))
        << "left in staging by a killed daemon: " << n;
  }
  EXPECT_EQ(live.size(), 2u) << "the killed daemons' registrations are gone";
}

TEST_P(Daemons, ACleanExitTakesItsRegistrationAway) {
  std::string why;
  const fs::path m2 = add_view(why);
  ASSERT_FALSE(m2.empty()) << why;
  ASSERT_EQ(registered(backing()).size(), 2u);
  ASSERT_TRUE(run_command({"fusermount3", "-u", m2.string()}, 20s).status.ok());
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (registered(backing()).size() != 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(registered(backing()).size(), 1u) << "the unmounted daemon is still registered";
  std::size_t sockets = 0;
  for (const auto& e : fs::directory_iterator(b(".snapfs/daemons")))
    if (e.path().extension() == ".control" && e.is_socket()) ++sockets;
  EXPECT_EQ(sockets, 1u) << "one control socket per live daemon";
}

SNAPFS_INSTANTIATE_MOUNT_ALL_FS(Daemons);

}  // namespace
}  // namespace snapfs::test
