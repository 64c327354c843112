// The built snapfs and mount.snapfs binaries, without root and without
// mounting: --help, --version, usage errors and their exit codes; and
// scripts/test.sh's checks for leftover test mounts. Label `unit`.
#include "cli_support.hpp"

#include "checks.hpp"
#include "exit_codes.hpp"

#include <unistd.h>

namespace snapfs::clitest {
namespace {

namespace ec = snapfs::cli::exit_code;

TEST(UnitCommand, HelpDocumentsEveryOption) {
  const Outcome top = run({snapfs_bin(), "--help"});
  ASSERT_EQ(top.code, 0) << top.describe();
  for (const char* s :
       {"mount", "umount", "status", "conflicts", "--version", "Exit codes", "SPDLOG_LEVEL"}) {
    EXPECT_NE(top.out.find(s), std::string::npos) << s << "\n" << top.out;
  }
  const Outcome m = run({snapfs_bin(), "mount", "--help"});
  ASSERT_EQ(m.code, 0) << m.describe();
  for (const char* s : {"-o",
                        "-f,--foreground",
                        "--log-level",
                        "--shared,--passthrough",
                        "--exclusive",
                        "--durability",
                        "--on-conflict",
                        "--threads",
                        "-d,--debug",
                        "shared=GLOB[:GLOB...]",
                        "exclusive",
                        "durability=fast|atomic|full",
                        "on-conflict=fail|overwrite",
                        "allow_other",
                        "default_permissions",
                        "auto_unmount",
                        "noauto_unmount",
                        "fsname=",
                        "threads=",
                        "log_level=",
                        "defaults",
                        "nofail",
                        "noauto",
                        "users",
                        "_netdev",
                        "x-*",
                        "nosuid",
                        "noexec",
                        "relatime",
                        "ro,",
                        "fuse.snapfs"}) {
    EXPECT_NE(m.out.find(s), std::string::npos) << s << "\n" << m.out;
  }
  const Outcome u = run({snapfs_bin(), "umount", "--help"});
  EXPECT_NE(u.out.find("--lazy"), std::string::npos) << u.describe();
  for (const char* sub : {"status", "conflicts"}) {
    const Outcome s = run({snapfs_bin(), sub, "--help"});
    EXPECT_NE(s.out.find("--json"), std::string::npos) << s.describe();
  }
}

TEST(UnitCommand, Version) {
  const Outcome r = run({snapfs_bin(), "--version"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out.rfind("snapfs ", 0), 0u) << r.describe();
}

TEST(UnitCommand, UsageErrorsAreOneLineWithExitCode2) {
  Scratch s;
  const auto b = s.mkdir("b"), m = s.mkdir("m");
  const std::vector<std::vector<std::string>> cases{
      {},
      {"bogus"},
      {"--bogus"},
      {"mount"},
      {"mount", b},
      {"mount", b, m, "--bogus"},
      {"mount", b, m, "-o", "bogus"},
      {"mount", b, m, "-o", "rw,allow_other,bogus=1"},
      {"mount", b, m, "-o", "ro"},
      {"mount", b, m, "--durability", "slow"},
      {"mount", b, m, "--on-conflict", "merge"},
      {"mount", b, m, "--threads", "many"},
      {"mount", b, m, "--log-level", "loud"},
      {"mount", b, m, "--shared,--passthrough", ""},
      {"umount"},
      {"status"},
      {"status", m, "extra"},
  };
  for (auto args : cases) {
    args.insert(args.begin(), snapfs_bin());
    const Outcome r = run(args);
    EXPECT_EQ(r.code, ec::usage) << r.describe();
    EXPECT_TRUE(one_line_error(r));
  }
  EXPECT_TRUE(mounts_under(s.path()).empty());
}

TEST(UnitCommand, BadPathsWithoutRoot) {
  // The checks come before any mount attempt, so they work for anyone.
  Scratch s;
  const auto b = s.mkdir("b"), m = s.mkdir("m");
  write_file(b / "f", "x");
  struct Case {
    std::vector<std::string> args;
    int code;
  };
  const std::vector<Case> cases{
      {{"mount", (s / "nope").string(), m}, ec::bad_backing},
      {{"mount", (b / "f").string(), m}, ec::bad_backing},
      {{"mount", b, (s / "nope").string()}, ec::bad_mountpoint},
      {{"mount", b, (b / "f").string()}, ec::bad_mountpoint},
      {{"mount", b, b}, ec::overlap},
      {{"mount", b, (s.path() / "m" / ".." / "b").string()}, ec::overlap},
      {{"mount", s.path(), m}, ec::overlap},
      {{"mount", b, "/proc"}, ec::bad_mountpoint},
  };
  const auto before = tree_digest(s.path());
  for (auto c : cases) {
    c.args.insert(c.args.begin(), snapfs_bin());
    const Outcome r = run(c.args);
    EXPECT_EQ(r.code, c.code) << r.describe();
    EXPECT_TRUE(one_line_error(r));
  }
  EXPECT_EQ(tree_digest(s.path()), before);
  EXPECT_TRUE(mounts_under(s.path()).empty());
}

TEST(UnitCommand, NotASnapfsMount) {
  Scratch s;
  const auto d = s.mkdir("d");
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"umount", d},
                                             {"umount", "--lazy", d},
                                             {"status", d},
                                             {"status", "--json", d},
                                             {"conflicts", d},
                                             {"status", "/proc"},
                                             {"umount", (s / "missing").string()}}) {
    std::vector<std::string> argv{snapfs_bin()};
    argv.insert(argv.end(), args.begin(), args.end());
    const Outcome r = run(argv);
    EXPECT_EQ(r.code, ec::not_snapfs) << r.describe();
    EXPECT_TRUE(one_line_error(r));
  }
}

TEST(UnitCommand, HelperFakeMountChecksOnly) {
  // mount(8) -f: everything but the mount. The helper exits with mount(8)'s
  // codes: 1 bad invocation, 32 mount failure.
  Scratch s;
  const auto b = s.mkdir("b"), m = s.mkdir("m");
  const Outcome ok = run({mount_helper_bin(), b, m, "-f", "-o", "rw,durability=full,nofail,_netdev"});
  EXPECT_EQ(ok.code, 0) << ok.describe();
  EXPECT_TRUE(mounts_under(s.path()).empty());
  const Outcome bad = run({mount_helper_bin(), (s / "nope").string(), m, "-f"});
  EXPECT_EQ(bad.code, 32) << bad.describe();
  EXPECT_TRUE(one_line_error(bad));
  const Outcome opt = run({mount_helper_bin(), b, m, "-f", "-o", "bogus"});
  EXPECT_EQ(opt.code, 1) << opt.describe();
  EXPECT_TRUE(one_line_error(opt));
  const Outcome sloppy = run({mount_helper_bin(), b, m, "-fs", "-o", "bogus"});
  EXPECT_EQ(sloppy.code, 0) << sloppy.describe();
  const Outcome help = run({mount_helper_bin(), "--help"});
  EXPECT_EQ(help.code, 0) << help.describe();
  EXPECT_NE(help.out.find("fake"), std::string::npos) << help.describe();
  const Outcome noargs = run({mount_helper_bin()});
  EXPECT_EQ(noargs.code, 1) << noargs.describe();
  EXPECT_TRUE(one_line_error(noargs));
}

TEST(UnitCommand, LogLevelFromEnvironmentAndFlag) {
  // mount.snapfs -f (fake) logs the Config at debug level and mounts nothing.
  Scratch s;
  const auto b = s.mkdir("b"), m = s.mkdir("m");
  RunOptions debug_env;
  debug_env.env = {{"SPDLOG_LEVEL", "debug"}};
  const Outcome env = run({mount_helper_bin(), b, m, "-f"}, debug_env);
  EXPECT_EQ(env.code, 0) << env.describe();
  EXPECT_NE(env.err.find("mount debug: backing="), std::string::npos) << env.describe();
  // The option given on the command line wins over the environment.
  const Outcome flag = run({mount_helper_bin(), b, m, "-f", "-o", "log_level=info"}, debug_env);
  EXPECT_EQ(flag.code, 0) << flag.describe();
  EXPECT_EQ(flag.err.find("debug"), std::string::npos) << flag.describe();
  const Outcome quiet = run({mount_helper_bin(), b, m, "-f"});
  EXPECT_EQ(quiet.err, "") << quiet.describe();
  RunOptions per_logger;
  per_logger.env = {{"SPDLOG_LEVEL", "core=debug,mount=debug"}};
  const Outcome named = run({mount_helper_bin(), b, m, "-f"}, per_logger);
  EXPECT_NE(named.err.find("mount debug:"), std::string::npos) << named.describe();
}

TEST(UnitCommand, FuseHelperFormIsAMount) {
  // mount.fuse3 runs `snapfs B M -o opts` for type fuse.snapfs; a bad
  // option there must be a usage error, not "unknown command".
  Scratch s;
  const auto b = s.mkdir("b"), m = s.mkdir("m");
  const Outcome r = run({snapfs_bin(), b, m, "-o", "rw,dev,suid,bogus"});
  EXPECT_EQ(r.code, ec::usage) << r.describe();
  EXPECT_NE(r.err.find("bogus"), std::string::npos) << r.describe();
  const Outcome missing = run({snapfs_bin(), (s / "nope").string(), m, "-o", "rw,dev,suid"});
  EXPECT_EQ(missing.code, ec::bad_backing) << missing.describe();
}

TEST(UnitCliSupport, MountsAreParsedByTheCommandsParser) {
  // The tests' view of mountinfo is the command's (cli::parse_mountinfo):
  // only octal escapes \[0-3][0-7][0-7] are decoded, anything else is kept.
  const std::string text =
      "40 22 0:35 / /tmp/with\\040space rw shared:2 master:3 - tmpfs tmpfs rw,size=1k\n"
      "41 22 0:36 / /mnt/a\\400b\\9xy\\13 rw - fuse.snapfs /srv/d\\134e rw,user_id=0,allow_other\n"
      "garbage line\n"
      "42 22 0:37 / /mnt/no-options rw - tmpfs\n";
  const auto ours = parse_mounts(text);
  const auto theirs = cli::parse_mountinfo(text);
  ASSERT_EQ(ours.size(), theirs.size());
  for (std::size_t i = 0; i < ours.size(); ++i) {
    EXPECT_EQ(ours[i].mountpoint, theirs[i].mountpoint) << i;
    EXPECT_EQ(ours[i].fstype, theirs[i].fstype) << i;
    EXPECT_EQ(ours[i].source, theirs[i].source) << i;
  }
  ASSERT_EQ(ours.size(), 3u);
  EXPECT_EQ(ours[0].mountpoint, "/tmp/with space");
  EXPECT_EQ(ours[0].options, "rw,size=1k");
  EXPECT_EQ(ours[1].mountpoint, "/mnt/a\\400b\\9xy\\13");
  EXPECT_EQ(ours[1].source, "/srv/d\\e");
  EXPECT_EQ(ours[1].options, "rw,user_id=0,allow_other");
  EXPECT_EQ(ours[2].options, "");
}

// scripts/test.sh's mount checks, against mountinfo files: only mounts in
// the tests' own directories (<base>/snapfs-{test,mount,cli}-*, base /tmp or
// $SNAPFS_TEST_TMPDIR) count; a user's own snapfs mounts never do.
std::string test_sh() {
  return (fs::path(__FILE__).parent_path().parent_path().parent_path() / "scripts" / "test.sh")
      .string();
}

constexpr const char* kUserMounts =
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "41 22 0:36 / /mnt/data rw,nosuid,nodev shared:4 - fuse.snapfs /srv/data rw,user_id=0\n"
    "42 22 0:37 / /tmp/mine/m rw,nosuid,nodev - fuse.snapfs /tmp/mine/b rw,user_id=0\n"
    "43 22 0:38 / /tmp/snapfs-testing/m rw - fuse.snapfs /srv/x rw\n"
    "44 22 0:39 / /home/u/snapfs-test-abc/m rw - fuse.snapfs /srv/y rw\n";

constexpr const char* kLeftovers =
    "50 22 7:3 / /tmp/snapfs-test-Ab12Cd rw - xfs /dev/loop3 rw\n"
    "51 22 0:41 / /tmp/snapfs-mount-Zz9Yy8/m rw - fuse.snapfs /tmp/snapfs-test-Ab12Cd/b rw\n"
    "52 22 0:42 / /tmp/snapfs-cli-q1\\040w2/m rw - tmpfs tmpfs rw\n";

Outcome test_sh_check(const std::vector<std::string>& args, const std::string& tmpdir = "") {
  RunOptions opts;
  opts.env = {{"SNAPFS_TEST_TMPDIR", tmpdir}};
  std::vector<std::string> argv = {"bash", test_sh()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, opts);
}

TEST(UnitTestSh, UsersOwnSnapfsMountsAreNotLeftovers) {
  ASSERT_TRUE(fs::exists(test_sh())) << test_sh();
  Scratch s;
  write_file(s / "mountinfo", kUserMounts);
  const Outcome r = test_sh_check({"--check-leftovers", (s / "mountinfo").string()});
  EXPECT_EQ(r.code, 0) << r.describe();
  EXPECT_EQ(r.err, "") << r.describe();
}

TEST(UnitTestSh, LeftoversInTestDirectoriesAreNamed) {
  Scratch s;
  write_file(s / "mountinfo", std::string(kUserMounts) + kLeftovers);
  const Outcome r = test_sh_check({"--check-leftovers", (s / "mountinfo").string()});
  EXPECT_EQ(r.code, 1) << r.describe();
  for (const char* m : {"/tmp/snapfs-test-Ab12Cd (xfs)", "/tmp/snapfs-mount-Zz9Yy8/m (fuse.snapfs)",
                        "/tmp/snapfs-cli-q1\\040w2/m (tmpfs)"}) {
    EXPECT_NE(r.err.find(m), std::string::npos) << m << "\n" << r.describe();
  }
  for (const char* m : {"/mnt/data", "/tmp/mine", "snapfs-testing", "/home/u"}) {
    EXPECT_EQ(r.err.find(m), std::string::npos) << m << "\n" << r.describe();
  }
}

TEST(UnitTestSh, TestTmpdirIsATestBase) {
  Scratch s;
  write_file(s / "mountinfo", std::string(kUserMounts) +
                                  "60 22 0:50 / /var/t\\040t/snapfs-test-xyz/m rw - tmpfs t rw\n");
  const auto info = (s / "mountinfo").string();
  EXPECT_EQ(test_sh_check({"--check-leftovers", info}).code, 0);
  const Outcome r = test_sh_check({"--check-leftovers", info}, "/var/t t/");
  EXPECT_EQ(r.code, 1) << r.describe();
  EXPECT_NE(r.err.find("/var/t\\040t/snapfs-test-xyz/m (tmpfs)"), std::string::npos)
      << r.describe();
}

TEST(UnitTestSh, AtTheEndOnlyNewTestMountsFail) {
  Scratch s;
  const std::string before = std::string(kUserMounts) + kLeftovers;
  write_file(s / "before", before);
  // The run's own mounts are gone; the user mounted another snapfs meanwhile.
  write_file(s / "clean", before + "70 22 0:60 / /srv/m2 rw - fuse.snapfs /srv/b2 rw\n");
  const Outcome clean =
      test_sh_check({"--check-new", (s / "before").string(), (s / "clean").string()});
  EXPECT_EQ(clean.code, 0) << clean.describe();
  EXPECT_EQ(clean.err, "") << clean.describe();
  // A test left a mount behind: only that one is named.
  write_file(s / "left", before + "71 22 0:61 / /tmp/snapfs-cli-N3w/m rw - fuse.snapfs b rw\n");
  const Outcome left =
      test_sh_check({"--check-new", (s / "before").string(), (s / "left").string()});
  EXPECT_EQ(left.code, 1) << left.describe();
  EXPECT_NE(left.err.find("/tmp/snapfs-cli-N3w/m (fuse.snapfs)"), std::string::npos)
      << left.describe();
  EXPECT_EQ(left.err.find("snapfs-test-Ab12Cd"), std::string::npos) << left.describe();
  EXPECT_EQ(left.err.find("/srv"), std::string::npos) << left.describe();
}

}  // namespace
}  // namespace snapfs::clitest
