// A backing filesystem without O_TMPFILE (FUSE and network filesystems,
// GlusterFS among them): private files are named ones in B/.snapfs/staging
// (docs/design-shared-storage.md), and everything a user relies on still
// holds. B is a bindfs mount here, a real FUSE filesystem that refuses
// O_TMPFILE as every FUSE filesystem does. Label `mount`; every test tears
// down its mounts in Scratch.
#include "cli_support.hpp"

#include "report.hpp"
#include "support/gluster.hpp"
#include "support/peer.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace snapfs::clitest {
namespace {

// src (a plain directory) seen through bindfs at b, b through snapfs at m.
struct OverFuse {
  Scratch s;
  fs::path src, b, m;
  OverFuse() : src(s.mkdir("src")), b(s.mkdir("b")), m(s.mkdir("m")) {}
  // bindfs at b, then snapfs at m (with `options`, if any); false (and
  // why) if either fails.
  bool mount(std::string& why, const std::string& options = "") {
    const Outcome r = run({"bindfs", src, b});
    if (r.code != 0) {
      why = "bindfs " + src.string() + " " + b.string() + ": " + r.describe();
      return false;
    }
    std::vector<std::string> argv{snapfs_bin(), "mount"};
    if (!options.empty()) argv.insert(argv.end(), {"-o", options});
    argv.insert(argv.end(), {b.string(), m.string()});
    const Outcome v = run(argv);
    if (v.code != 0) why = "snapfs mount: " + v.describe();
    return v.code == 0;
  }
  fs::path staging() const { return src / ".snapfs" / "staging"; }
};

bool have_bindfs() { return ::access("/usr/bin/bindfs", X_OK) == 0; }

#define SNAPFS_REQUIRE_BINDFS()                                                         \
  do {                                                                                  \
    SNAPFS_REQUIRE_DAEMON();                                                            \
    if (!have_bindfs()) GTEST_SKIP() << "needs bindfs (scripts/setup.sh installs it)"; \
  } while (0)

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> v;
  for (const auto& e : fs::directory_iterator(dir)) v.push_back(e.path().filename().string());
  return v;
}

std::string field(const cli::Json& j, const char* key) {
  const cli::Json* v = j.find(key);
  return v == nullptr ? std::string("<none>") : v->text;
}

TEST(MountNoTmpfile, WritesArePublishedAndReadersIsolatedWithNamedPrivateFiles) {
  SNAPFS_REQUIRE_BINDFS();
  OverFuse d;
  test::Peer peer;  // before any file is open
  std::string why;
  ASSERT_TRUE(d.mount(why)) << why;
  const Outcome st = run({snapfs_bin(), "status", "--json", d.m});
  ASSERT_EQ(st.code, 0) << st.describe();
  EXPECT_EQ(field(cli::parse_json(st.out), "private_files").rfind("named files in B/.snapfs/staging", 0),
            0u)
      << st.out;

  write_file(d.m / "f", "first\n");
  EXPECT_EQ(read_file(d.src / "f"), "first\n");
  // A reader keeps the version it opened while a writer publishes another.
  const int r = ::open((d.m / "f").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(r, 0);
  const int w = peer.open(d.m / "f", O_WRONLY | O_TRUNC);
  ASSERT_GE(w, 0);
  EXPECT_FALSE(names_in(d.staging()).empty()) << "the writer's snapshot is a named file";
  ASSERT_TRUE(peer.write(w, "second version\n"));
  EXPECT_EQ(peer.close(w), 0);
  char buf[64] = {};
  EXPECT_EQ(::pread(r, buf, sizeof buf, 0), 6);
  EXPECT_EQ(std::string(buf, 6), "first\n");
  ::close(r);
  EXPECT_EQ(read_file(d.m / "f"), "second version\n");
  EXPECT_EQ(read_file(d.src / "f"), "second version\n");
  // Every private file's name goes with its file: published, or dropped
  // (a reader's snapshot may stay warm for the next reader until then).
  EXPECT_EQ(run({snapfs_bin(), "umount", d.m}).code, 0);
  EXPECT_TRUE(names_in(d.staging()).empty()) << names_in(d.staging()).front();
}

TEST(MountNoTmpfile, ALosingCommitIsKeptInTheConflictsStore) {
  SNAPFS_REQUIRE_BINDFS();
  OverFuse d;
  write_file(d.src / "f", "published\n");
  test::Peer peer;
  std::string why;
  ASSERT_TRUE(d.mount(why)) << why;
  const int a = ::open((d.m / "f").c_str(), O_WRONLY | O_CLOEXEC);
  const int b = peer.open(d.m / "f", O_WRONLY | O_TRUNC);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  ASSERT_EQ(::write(a, "first\n", 6), 6);
  ASSERT_TRUE(peer.write(b, "second!\n"));
  EXPECT_EQ(::close(a), 0);
  EXPECT_NE(peer.close(b), 0) << "the second close must lose";
  EXPECT_EQ(read_file(d.src / "f"), "first\nhed\n") << "the first close published";
  const Outcome c = run({snapfs_bin(), "conflicts", "--json", d.m});
  ASSERT_EQ(c.code, 0) << c.describe();
  const cli::Json kept = cli::parse_json(c.out);
  ASSERT_EQ(kept.items.size(), 1u) << c.out;
  EXPECT_EQ(read_file(field(kept.items[0], "kept_at")), "second!\n");
  // The loser's snapshot goes at its RELEASE, which follows its close.
  EXPECT_TRUE(wait_until([&] { return names_in(d.staging()).empty(); }));
  EXPECT_EQ(run({snapfs_bin(), "umount", d.m}).code, 0);
}

TEST(MountNoTmpfile, WhatAKilledDaemonLeftIsRemovedAtTheNextMount) {
  SNAPFS_REQUIRE_BINDFS();
  OverFuse d;
  write_file(d.src / "f", "published\n");
  test::Peer peer;
  std::string why;
  // noauto_unmount: the dead mount stays until `snapfs umount`, as after
  // a crash without fusermount3's helper (which unmounts at its own pace).
  ASSERT_TRUE(d.mount(why, "noauto_unmount")) << why;
  const Outcome st = run({snapfs_bin(), "status", "--json", d.m});
  const pid_t daemon = std::stoi(field(cli::parse_json(st.out), "pid"));
  const int w = peer.open(d.m / "f", O_WRONLY | O_TRUNC);
  ASSERT_GE(w, 0);
  ASSERT_TRUE(peer.write(w, "never published\n"));
  ASSERT_FALSE(names_in(d.staging()).empty());
  ASSERT_EQ(::kill(daemon, SIGKILL), 0);
  ASSERT_TRUE(test::wait_exited(daemon, 10s));  // a pidfd: a zombie counts as gone
  (void)peer.close(w);  // fails: the daemon is gone
  const Outcome u = run({snapfs_bin(), "umount", d.m});
  ASSERT_EQ(u.code, 0) << u.describe();
  ASSERT_FALSE(is_snapfs_mount(d.m));
  ASSERT_FALSE(names_in(d.staging()).empty()) << "a crash leaves the private file";
  ASSERT_EQ(run({snapfs_bin(), "mount", d.b, d.m}).code, 0);
  EXPECT_TRUE(names_in(d.staging()).empty()) << names_in(d.staging()).front();
  EXPECT_EQ(read_file(d.m / "f"), "published\n");
  EXPECT_EQ(run({snapfs_bin(), "umount", d.m}).code, 0);
}

// -o cache_dir: a read-only open snapshots into unnamed files of a local
// directory, not into B (where each one would be a copy through the
// network); writers still make theirs in B, where they publish.
TEST(MountNoTmpfile, ReadOnlyOpensSnapshotIntoTheCacheDirectory) {
  SNAPFS_REQUIRE_BINDFS();
  OverFuse d;
  const fs::path cache = d.s.mkdir("cache");
  const Outcome bind = run({"bindfs", d.src, d.b});
  ASSERT_EQ(bind.code, 0) << bind.describe();
  test::Peer peer;
  const Outcome mnt = run({snapfs_bin(), "mount", "-o", "cache_dir=" + cache.string(), d.b, d.m});
  ASSERT_EQ(mnt.code, 0) << mnt.describe();
  const Outcome st = run({snapfs_bin(), "status", "--json", d.m});
  EXPECT_NE(field(cli::parse_json(st.out), "private_files").find("read-only snapshots in " +
                                                                  cache.string()),
            std::string::npos)
      << st.out;
  write_file(d.m / "f", std::string(1 << 20, 'a'));
  const int r = ::open((d.m / "f").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(r, 0);
  EXPECT_TRUE(wait_until([&] { return names_in(d.staging()).empty(); }))
      << "a reader's snapshot is not made in B: " << names_in(d.staging()).front();
  const int w = peer.open(d.m / "f", O_WRONLY | O_TRUNC);
  ASSERT_GE(w, 0);
  EXPECT_EQ(names_in(d.staging()).size(), 1u) << "a writer's is";
  ASSERT_TRUE(peer.write(w, "b"));
  EXPECT_EQ(peer.close(w), 0);
  std::string got(1 << 20, '\0');
  EXPECT_EQ(::pread(r, got.data(), got.size(), 0), 1 << 20);
  EXPECT_EQ(got, std::string(1 << 20, 'a')) << "the reader keeps its version";
  ::close(r);
  EXPECT_EQ(read_file(d.src / "f"), "b");
  EXPECT_TRUE(names_in(cache).empty()) << "unnamed files only";
  EXPECT_EQ(run({snapfs_bin(), "umount", d.m}).code, 0);
}

}  // namespace
}  // namespace snapfs::clitest
