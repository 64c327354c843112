// The data path line of `snapfs mount`: once the mount is live, one line on
// stderr when opens are served by the daemon rather than by kernel
// passthrough, naming why; nothing when kernel passthrough is active.
// UnitDataPath: the wording (label `unit`). MountDataPath: the real daemon,
// as root (label `mount`): -o kernel_io=off, root of a user namespace (what a
// rootless container's root is), B on overlayfs (a container's own file
// system), the foreground, and the quiet success where the kernel passes
// through (root, Linux >= 6.9; skipped loudly elsewhere).
#include "cli_support.hpp"

#include "commands.hpp"
#include "report.hpp"

#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

namespace snapfs::clitest {
namespace {

constexpr const char* kOffReason = "kernel passthrough off (-o kernel_io=off)";
constexpr const char* kUserNsReason =
    "kernel passthrough unavailable: needs CAP_SYS_ADMIN in the initial user namespace";

std::string expected_line(const fs::path& m, const std::string& why) {
  return "snapfs: " + m.string() + ": opens are served by the daemon (" + why +
         "); mmap(MAP_SHARED) fails with ENODEV\n";
}

// The daemon's kernel_passthrough state, from `snapfs status --json`.
std::string passthrough_state(const fs::path& m) {
  const Outcome st = run({snapfs_bin(), "status", "--json", m});
  if (st.code != 0) return "(status failed: " + st.describe() + ")";
  const cli::Json j = cli::parse_json(st.out);
  const cli::Json* k = j.find("kernel_passthrough");
  return k ? k->text : "(no kernel_passthrough in the status)";
}

bool on_overlayfs(const fs::path& p) {
  struct statfs sfs{};
  return ::statfs(p.c_str(), &sfs) == 0 &&
         static_cast<unsigned long>(sfs.f_type) == OVERLAYFS_SUPER_MAGIC;
}

struct Dirs {
  Scratch s;
  fs::path b, m;
  Dirs() : b(s.mkdir("b")), m(s.mkdir("m")) { write_file(b / "f", "published\n"); }
};

TEST(UnitDataPath, NamesTheReasonAndWhatFails) {
  EXPECT_EQ(cli::data_path_note("/mnt/data", "/srv/data", "off (-o kernel_io=off)", false) + "\n",
            expected_line("/mnt/data", kOffReason).substr(8));
  EXPECT_EQ(cli::data_path_note("/mnt/data", "/srv/data",
                                "unavailable: needs root (CAP_SYS_ADMIN)", false),
            "/mnt/data: opens are served by the daemon (kernel passthrough unavailable: needs "
            "root (CAP_SYS_ADMIN)); mmap(MAP_SHARED) fails with ENODEV");
  // INIT agreed, but the kernel will refuse every backing file on overlayfs.
  const std::string ovl = cli::data_path_note("/mnt/data", "/srv/data", "active", true);
  EXPECT_NE(ovl.find("/srv/data is on overlayfs"), std::string::npos) << ovl;
  EXPECT_NE(ovl.find("opens are served by the daemon"), std::string::npos) << ovl;
  // Quiet success.
  EXPECT_EQ(cli::data_path_note("/mnt/data", "/srv/data", "active", false), "");
}

TEST(MountDataPath, KernelIoOffSaysSoInOneLine) {
  SNAPFS_REQUIRE_DAEMON();
  Dirs d;
  const Outcome r = run({snapfs_bin(), "mount", "-o", "kernel_io=off", d.b, d.m});
  ASSERT_EQ(r.code, 0) << r.describe();
  EXPECT_TRUE(r.out.empty()) << r.describe();
  EXPECT_EQ(r.err, expected_line(d.m, kOffReason));
  // What `snapfs status` says too.
  EXPECT_EQ(passthrough_state(d.m), "off (-o kernel_io=off)");
  EXPECT_EQ(read_file(d.m / "f"), "published\n");
  EXPECT_EQ(run({snapfs_bin(), "umount", d.m}).code, 0);
}

TEST(MountDataPath, QuietWhenKernelPassthroughIsActive) {
  SNAPFS_REQUIRE_DAEMON();
  Dirs d;
  if (on_overlayfs(d.b))
    GTEST_SKIP() << "SKIPPED LOUDLY: the scratch directory is on overlayfs, which the kernel "
                    "takes no backing files from";
  const Outcome r = run({snapfs_bin(), "mount", d.b, d.m});
  ASSERT_EQ(r.code, 0) << r.describe();
  const std::string state = passthrough_state(d.m);
  if (state != "active") {
    EXPECT_EQ(r.err, expected_line(d.m, "kernel passthrough " + state));
    GTEST_SKIP() << "SKIPPED LOUDLY: kernel passthrough is not active here (" << state
                 << "; it needs root with CAP_SYS_ADMIN and Linux >= 6.9): the quiet case is "
                    "untested";
  }
  EXPECT_TRUE(r.out.empty() && r.err.empty()) << r.describe();
  EXPECT_EQ(read_file(d.m / "f"), "published\n");
  EXPECT_EQ(passthrough_state(d.m), "active") << "the first open fell back to the daemon";
  EXPECT_EQ(run({snapfs_bin(), "umount", d.m}).code, 0);
}

// The root of a user namespace has euid 0 and CAP_SYS_ADMIN there, but the
// kernel wants the capability in the initial user namespace to register a
// backing file: rootless Docker and Podman run the daemon like this.
TEST(MountDataPath, UserNamespaceRootIsServedByTheDaemon) {
  SNAPFS_REQUIRE_DAEMON();
  if (::access("/usr/bin/unshare", X_OK) != 0) GTEST_SKIP() << "SKIPPED LOUDLY: needs unshare(1)";
  if (run({"unshare", "--user", "--map-root-user", "true"}).code != 0)
    GTEST_SKIP() << "SKIPPED LOUDLY: this kernel or sandbox allows no user namespaces";
  Dirs d;
  RunOptions opts;
  opts.env = {{"T", d.s.path().string()}, {"SNAPFS", snapfs_bin()}};
  // A user namespace with its own mount namespace (FUSE mounts there since
  // Linux 4.18); stdout carries the three results, the mount's stderr a file.
  const Outcome r = run({"unshare", "--user", "--map-root-user", "--mount", "--propagation",
                         "private", "/bin/sh", "-c",
                         R"SH("$SNAPFS" mount "$T/b" "$T/m" 2>"$T/err" || exit 91
                              cat "$T/m/f" || exit 92
                              "$SNAPFS" status "$T/m" | grep '^kernel_passthrough: '
                              "$SNAPFS" umount "$T/m" || exit 93)SH"},
                        opts);
  if (r.code == 91 && read_file(d.s / "err").find("/dev/fuse") != std::string::npos)
    GTEST_SKIP() << "SKIPPED LOUDLY: no FUSE mounts in a user namespace here: "
                 << read_file(d.s / "err");
  ASSERT_EQ(r.code, 0) << r.describe() << "\nmount's stderr: " << read_file(d.s / "err");
  const std::string err = read_file(d.s / "err");
  EXPECT_EQ(err.find('\n'), err.size() - 1) << "not one line: " << err;
  EXPECT_EQ(err.rfind(expected_line(d.m, kUserNsReason).substr(0, 60), 0), 0u) << err;
  EXPECT_NE(err.find(kUserNsReason), std::string::npos) << err;
  EXPECT_NE(err.find("mmap(MAP_SHARED) fails with ENODEV"), std::string::npos) << err;
  EXPECT_NE(r.out.find("published\n"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("kernel_passthrough: unavailable: needs CAP_SYS_ADMIN in the initial "
                       "user namespace"),
            std::string::npos)
      << "status and the mount line disagree: " << r.describe();
}

// A container's own file system is overlayfs: INIT agrees on passthrough,
// but the kernel refuses every backing file from B (ELOOP).
TEST(MountDataPath, BackingOnOverlayfsIsServedByTheDaemon) {
  SNAPFS_REQUIRE_DAEMON();
  if (::access("/usr/bin/unshare", X_OK) != 0) GTEST_SKIP() << "SKIPPED LOUDLY: needs unshare(1)";
  Dirs d;
  for (const char* dir : {"lower", "upper", "work", "o"}) d.s.mkdir(dir);
  write_file(d.s / "lower" / "f", "published\n");
  RunOptions opts;
  opts.env = {{"T", d.s.path().string()}, {"SNAPFS", snapfs_bin()}};
  const Outcome r = run(
      {"unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
       R"SH(mount -t overlay overlay -o "lowerdir=$T/lower,upperdir=$T/upper,workdir=$T/work" "$T/o" || exit 90
            "$SNAPFS" mount "$T/o" "$T/m" 2>"$T/err" || exit 91
            cat "$T/m/f" || exit 92
            "$SNAPFS" umount "$T/m" || exit 93
            umount "$T/o")SH"},
      opts);
  if (r.code == 90) GTEST_SKIP() << "SKIPPED LOUDLY: cannot mount overlayfs here: " << r.describe();
  ASSERT_EQ(r.code, 0) << r.describe() << "\nmount's stderr: " << read_file(d.s / "err");
  EXPECT_EQ(read_file(d.s / "err"),
            expected_line(d.m, "kernel passthrough unavailable: " + (d.s / "o").string() +
                                   " is on overlayfs, a stacked file system the kernel takes "
                                   "no backing files from"));
  EXPECT_EQ(r.out, "published\n");
}

TEST(MountDataPath, ForegroundSaysItToo) {
  SNAPFS_REQUIRE_DAEMON();
  Dirs d;
  const fs::path log = d.s / "log";
  const pid_t pid = spawn({snapfs_bin(), "mount", "-f", "-o", "kernel_io=off", d.b, d.m}, log);
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(wait_until([&] { return is_snapfs_mount(d.m); }, 10s)) << read_file(log);
  const std::string line = expected_line(d.m, kOffReason);
  EXPECT_TRUE(wait_until([&] { return read_file(log).find(line) != std::string::npos; }, 10s))
      << read_file(log);
  EXPECT_EQ(run({snapfs_bin(), "umount", d.m}).code, 0);
  const auto status = wait_exit(pid, 10s);
  ASSERT_TRUE(status) << "still running after umount";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << read_file(log);
  const std::string text = read_file(log);
  EXPECT_EQ(text.find(line), text.rfind(line)) << "printed twice: " << text;
}

}  // namespace
}  // namespace snapfs::clitest
